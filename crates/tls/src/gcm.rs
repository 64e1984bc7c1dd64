//! AES-GCM record opening (NIST SP 800-38D) with a GHASH that folds
//! eight blocks per field reduction.
//!
//! Opening a record is GHASH over the additional data and the ciphertext,
//! the tag check, then AES in counter mode from the ciphertext straight
//! into the caller's buffer. The tag is checked first: a record opened
//! with the wrong sequence number (the tries after a loss) costs a GHASH,
//! not a decryption, and the ciphertext is never modified.
//!
//! # Why not the `aes-gcm` crate alone
//!
//! The `aes-gcm` 0.10 line that pov can use (the newer one changes crates
//! polars' build shares) multiplies and reduces one block at a time: its
//! GHASH was a third of all the CPU time of `pov transactions --keylog`.
//! Here GHASH follows the aggregated form of the Intel carry-less
//! multiplication white paper: with H^1..H^8 computed once per key, eight
//! blocks fold in as
//!
//! ```text
//! Y' = (Y ^ X1)·H^8 ^ X2·H^7 ^ ... ^ X8·H^1
//! ```
//!
//! where each product is three 64x64 carry-less multiplications
//! (Karatsuba), the eight 256-bit products are summed, and one reduction
//! modulo x^128 + x^7 + x^2 + x + 1 ends the group. On the development
//! machine (AMD EPYC) GHASH runs at about 8.5 GB/s per core this way,
//! bound by the number of multiplications (sixteen blocks per reduction
//! give the same). VPCLMULQDQ, two blocks per instruction, reached 14 GB/s
//! with sixteen blocks per reduction, but its intrinsics need Rust 1.89
//! and the workspace's minimum is 1.88. The keystream comes from the `aes`
//! crate (AES-NI, several blocks at once) through `ctr`.
//!
//! Blocks are handled byte-reversed (a block's first byte in the high
//! byte of a 128-bit lane), which puts the coefficient of x^0 in bit 127:
//! the carry-less product of two such values is the 255-bit product
//! reflected, one bit short of the 256-bit reflection, hence the one-bit
//! shift before the reduction.
//!
//! Where the CPU lacks PCLMULQDQ or SSSE3 (or is not x86-64), the
//! `aes-gcm` crate opens the record instead (same results, slower).

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockCipher, BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher, consts::U16};
use aes::{Aes128, Aes256};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm};

/// An AES-GCM key ready to open records.
// Boxed where it is kept (in a RecordKey): the variants' sizes differ, one
// pointer per key either way.
#[allow(clippy::large_enum_variant)]
pub(crate) enum GcmKey {
    /// AES-128 with the aggregated carry-less GHASH.
    Fast128(Fast<Aes128>),
    /// AES-256 with the aggregated carry-less GHASH.
    Fast256(Fast<Aes256>),
    /// The `aes-gcm` crate (CPUs without carry-less multiplication).
    Portable128(Aes128Gcm),
    /// The `aes-gcm` crate, AES-256.
    Portable256(Aes256Gcm),
}

impl GcmKey {
    /// A key of 16 or 32 bytes; the fast path when the CPU has it.
    pub(crate) fn new(key: &[u8]) -> Option<GcmKey> {
        if clmul::available() {
            match key.len() {
                16 => Some(GcmKey::Fast128(Fast::new(Aes128::new_from_slice(key).ok()?))),
                32 => Some(GcmKey::Fast256(Fast::new(Aes256::new_from_slice(key).ok()?))),
                _ => None,
            }
        } else {
            GcmKey::portable(key)
        }
    }

    /// A key that always uses the `aes-gcm` crate.
    pub(crate) fn portable(key: &[u8]) -> Option<GcmKey> {
        match key.len() {
            16 => Some(GcmKey::Portable128(Aes128Gcm::new_from_slice(key).ok()?)),
            32 => Some(GcmKey::Portable256(Aes256Gcm::new_from_slice(key).ok()?)),
            _ => None,
        }
    }

    /// Checks `tag` over `aad` and `ct`, and if it matches writes the
    /// plaintext to `out` (which must be as long as `ct`). False, with
    /// `out` unspecified, when the tag does not match or a length is wrong.
    pub(crate) fn open(&self, nonce: &[u8; 12], aad: &[u8], ct: &[u8], tag: &[u8], out: &mut [u8]) -> bool {
        if tag.len() != 16 || out.len() != ct.len() {
            return false;
        }
        match self {
            GcmKey::Fast128(k) => k.open(nonce, aad, ct, tag, out),
            GcmKey::Fast256(k) => k.open(nonce, aad, ct, tag, out),
            GcmKey::Portable128(k) => portable_open(k, nonce, aad, ct, tag, out),
            GcmKey::Portable256(k) => portable_open(k, nonce, aad, ct, tag, out),
        }
    }
}

fn portable_open<A: AeadInPlace>(a: &A, nonce: &[u8; 12], aad: &[u8], ct: &[u8], tag: &[u8], out: &mut [u8]) -> bool {
    out.copy_from_slice(ct);
    a.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, out, GenericArray::from_slice(tag)).is_ok()
}

/// The block ciphers the fast path runs on.
pub(crate) trait Aes: BlockEncrypt + BlockCipher + BlockSizeUser<BlockSize = U16> + Clone {}
impl Aes for Aes128 {}
impl Aes for Aes256 {}

/// AES with the GHASH key's powers.
pub(crate) struct Fast<C> {
    aes: C,
    ghash: clmul::Key,
}

impl<C: Aes> Fast<C> {
    fn new(aes: C) -> Fast<C> {
        // H = E_K(0^128).
        let mut h = GenericArray::default();
        aes.encrypt_block(&mut h);
        let h: [u8; 16] = h.into();
        Fast { aes, ghash: clmul::Key::new(&h) }
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct: &[u8], tag: &[u8], out: &mut [u8]) -> bool {
        let s = self.ghash.ghash(aad, ct);
        // The pre-counter block J0 = nonce || 0^31 || 1; the tag is
        // E_K(J0) ^ S.
        let mut j = [0u8; 16];
        j[..12].copy_from_slice(nonce);
        j[15] = 1;
        let mut ek = GenericArray::from(j);
        self.aes.encrypt_block(&mut ek);
        let mut diff = 0u8;
        for ((e, s), t) in ek.iter().zip(s).zip(tag) {
            diff |= e ^ s ^ t;
        }
        // Every byte compared, no early exit: the comparison takes the same
        // time whatever the tag.
        if std::hint::black_box(diff) != 0 {
            return false;
        }
        // The plaintext: counter blocks from inc32(J0).
        j[15] = 2;
        let core =
            ctr::CtrCore::<C, ctr::flavors::Ctr32BE>::inner_iv_init(self.aes.clone(), GenericArray::from_slice(&j));
        let mut ctr = ctr::Ctr32BE::<C>::from_core(core);
        ctr.apply_keystream_b2b(ct, out).is_ok()
    }
}

/// GHASH with PCLMULQDQ (x86-64).
#[cfg(target_arch = "x86_64")]
mod clmul {
    use std::arch::x86_64::{
        __m128i, _mm_clmulepi64_si128, _mm_loadu_si128, _mm_or_si128, _mm_set_epi8, _mm_setzero_si128,
        _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_epi64, _mm_slli_si128, _mm_srli_epi64, _mm_srli_si128,
        _mm_storeu_si128, _mm_xor_si128,
    };

    /// Blocks per reduction.
    const AGG: usize = 8;

    /// Whether this CPU runs the fast path (checked once, then cached by
    /// the standard library).
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("pclmulqdq") && is_x86_feature_detected!("ssse3")
    }

    /// The powers H^8..H^1 of a GHASH key (descending: the multipliers
    /// of any group's blocks are the run that ends at H^1), byte-reversed,
    /// and for each the xor of its two 64-bit halves (Karatsuba's middle
    /// operand).
    pub(super) struct Key {
        pow: [[u8; 16]; AGG],
        kar: [[u8; 16]; AGG],
    }

    impl Key {
        /// The powers of `h` (the block E_K(0^128)). Only called once
        /// `available()` said yes.
        pub(super) fn new(h: &[u8; 16]) -> Key {
            let mut k = Key { pow: [[0; 16]; AGG], kar: [[0; 16]; AGG] };
            // SAFETY: the caller checked the CPU features (`available`).
            unsafe { k.fill(h) };
            k
        }

        #[target_feature(enable = "sse2,ssse3,pclmulqdq")]
        fn fill(&mut self, h: &[u8; 16]) {
            let h1 = load_rev(h);
            let mut p = h1;
            for i in (0..AGG).rev() {
                store(&mut self.pow[i], p);
                store(&mut self.kar[i], _mm_xor_si128(p, _mm_shuffle_epi32::<0x4e>(p)));
                let mut acc = Acc::new();
                acc.mul(p, h1, _mm_xor_si128(h1, _mm_shuffle_epi32::<0x4e>(h1)));
                p = acc.reduce();
            }
        }

        /// GHASH_H(A || pad || C || pad || len(A) || len(C)) as a block.
        pub(super) fn ghash(&self, aad: &[u8], ct: &[u8]) -> [u8; 16] {
            // SAFETY: a Key exists only once `available()` said yes.
            unsafe { self.ghash_inner(aad, ct) }
        }

        #[target_feature(enable = "sse2,ssse3,pclmulqdq")]
        fn ghash_inner(&self, aad: &[u8], ct: &[u8]) -> [u8; 16] {
            let mut y = _mm_setzero_si128();
            for part in [aad, ct] {
                let whole = part.len() / 16 * 16;
                y = self.blocks(y, &part[..whole]);
                if whole < part.len() {
                    let mut last = [0u8; 16];
                    last[..part.len() - whole].copy_from_slice(&part[whole..]);
                    y = self.blocks(y, &last);
                }
            }
            let mut lens = [0u8; 16];
            lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
            lens[8..].copy_from_slice(&((ct.len() as u64) * 8).to_be_bytes());
            y = self.blocks(y, &lens);
            let mut s = [0u8; 16];
            store(&mut s, rev(y));
            s
        }

        /// Folds whole blocks (`data.len()` a multiple of 16) into `y`:
        /// eight at a time, then the rest with as many powers, one
        /// reduction per group.
        #[target_feature(enable = "sse2,ssse3,pclmulqdq")]
        fn blocks(&self, mut y: __m128i, data: &[u8]) -> __m128i {
            let mut groups = data.chunks_exact(16 * AGG);
            for g in &mut groups {
                y = self.group(y, g);
            }
            let rest = groups.remainder();
            if !rest.is_empty() {
                y = self.group(y, rest);
            }
            y
        }

        /// One group of n <= 8 blocks: (y ^ X1)·H^n ^ X2·H^(n-1) ^ ... ^ Xn·H.
        #[target_feature(enable = "sse2,ssse3,pclmulqdq")]
        fn group(&self, y: __m128i, g: &[u8]) -> __m128i {
            let n = g.len() / 16;
            let mut acc = Acc::new();
            for (i, b) in g.chunks_exact(16).enumerate() {
                let mut x = load_rev(b);
                if i == 0 {
                    x = _mm_xor_si128(x, y);
                }
                // Block i of n takes H^(n-i).
                let k = AGG - n + i;
                acc.mul(x, load(&self.pow[k]), load(&self.kar[k]));
            }
            acc.reduce()
        }
    }

    /// Sums of Karatsuba partial products, reduced once.
    struct Acc {
        lo: __m128i,
        hi: __m128i,
        mid: __m128i,
    }

    impl Acc {
        #[target_feature(enable = "sse2")]
        fn new() -> Acc {
            Acc { lo: _mm_setzero_si128(), hi: _mm_setzero_si128(), mid: _mm_setzero_si128() }
        }

        /// Adds x·h; `hk` holds h's halves xored (in its low half).
        #[inline]
        #[target_feature(enable = "sse2,pclmulqdq")]
        fn mul(&mut self, x: __m128i, h: __m128i, hk: __m128i) {
            self.lo = _mm_xor_si128(self.lo, _mm_clmulepi64_si128::<0x00>(x, h));
            self.hi = _mm_xor_si128(self.hi, _mm_clmulepi64_si128::<0x11>(x, h));
            let xk = _mm_xor_si128(x, _mm_shuffle_epi32::<0x4e>(x));
            self.mid = _mm_xor_si128(self.mid, _mm_clmulepi64_si128::<0x00>(xk, hk));
        }

        /// The sum's 256-bit product, shifted one bit and reduced modulo
        /// x^128 + x^7 + x^2 + x + 1 (byte-reversed form).
        #[inline]
        #[target_feature(enable = "sse2,pclmulqdq")]
        fn reduce(self) -> __m128i {
            // Karatsuba: middle = (x0^x1)(h0^h1) ^ lo ^ hi, added at bit 64.
            let mid = _mm_xor_si128(self.mid, _mm_xor_si128(self.lo, self.hi));
            let lo = _mm_xor_si128(self.lo, _mm_slli_si128::<8>(mid));
            let hi = _mm_xor_si128(self.hi, _mm_srli_si128::<8>(mid));
            // Shift the 256-bit [hi:lo] left by one bit.
            let clo = _mm_srli_epi64::<63>(lo);
            let chi = _mm_srli_epi64::<63>(hi);
            let lo = _mm_or_si128(_mm_slli_epi64::<1>(lo), _mm_slli_si128::<8>(clo));
            let hi =
                _mm_or_si128(_mm_or_si128(_mm_slli_epi64::<1>(hi), _mm_slli_si128::<8>(chi)), _mm_srli_si128::<8>(clo));
            // Now bit k of [hi:lo] is the coefficient of x^(255-k): the low
            // half D holds x^128..x^255. With x^128 = 1 + x + x^2 + x^7, a
            // bit at k < 128 folds onto k+128, k+127, k+126 and k+121.
            // First the few that land in the low half again (from D's low
            // seven bits): E = D ^ (D<<127 ^ D<<126 ^ D<<121) mod 2^128.
            let t = _mm_xor_si128(
                _mm_xor_si128(_mm_slli_epi64::<63>(lo), _mm_slli_epi64::<62>(lo)),
                _mm_slli_epi64::<57>(lo),
            );
            let e = _mm_xor_si128(lo, _mm_slli_si128::<8>(t));
            // Then all of E onto the high half: hi ^ E ^ E>>1 ^ E>>2 ^ E>>7
            // (128-bit shifts from 64-bit ones and a byte shift of the carries).
            let r =
                _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64::<1>(e), _mm_srli_epi64::<2>(e)), _mm_srli_epi64::<7>(e));
            let carries =
                _mm_xor_si128(_mm_xor_si128(_mm_slli_epi64::<63>(e), _mm_slli_epi64::<62>(e)), _mm_slli_epi64::<57>(e));
            let r = _mm_xor_si128(r, _mm_srli_si128::<8>(carries));
            _mm_xor_si128(hi, _mm_xor_si128(e, r))
        }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(b: &[u8; 16]) -> __m128i {
        // SAFETY: 16 readable bytes; loadu has no alignment requirement.
        unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn store(b: &mut [u8; 16], x: __m128i) {
        // SAFETY: 16 writable bytes; storeu has no alignment requirement.
        unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), x) }
    }

    /// A block byte-reversed (its first byte in the lane's top byte).
    #[inline]
    #[target_feature(enable = "sse2,ssse3")]
    fn load_rev(b: &[u8]) -> __m128i {
        let b: &[u8; 16] = b.try_into().unwrap_or(&[0; 16]);
        rev(load(b))
    }

    #[inline]
    #[target_feature(enable = "sse2,ssse3")]
    fn rev(x: __m128i) -> __m128i {
        _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
    }

    #[cfg(test)]
    impl Key {
        #[target_feature(enable = "sse2,ssse3,pclmulqdq")]
        fn mul_one(&self, a: &[u8; 16]) -> [u8; 16] {
            let mut s = [0u8; 16];
            store(&mut s, rev(self.group(_mm_setzero_si128(), a)));
            s
        }
    }

    #[cfg(test)]
    pub(super) mod test_access {
        /// GHASH's product of two blocks through the fast path.
        pub(in crate::gcm) fn mul(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
            let k = super::Key::new(b);
            // GHASH of one block with no lengths block: (0 ^ a)·b.
            // SAFETY: the tests call this only when `available()`.
            unsafe { k.mul_one(a) }
        }
    }
}

/// Other architectures: always the `aes-gcm` crate.
#[cfg(not(target_arch = "x86_64"))]
mod clmul {
    pub(super) fn available() -> bool {
        false
    }

    pub(super) struct Key;

    impl Key {
        pub(super) fn new(_h: &[u8; 16]) -> Key {
            Key
        }

        pub(super) fn ghash(&self, _aad: &[u8], _ct: &[u8]) -> [u8; 16] {
            [0; 16]
        }
    }

    #[cfg(test)]
    pub(super) mod test_access {
        pub(in crate::gcm) fn mul(_a: &[u8; 16], _b: &[u8; 16]) -> [u8; 16] {
            [0; 16]
        }
    }
}

#[cfg(test)]
mod tests {
    use aes_gcm::aead::{AeadInPlace, KeyInit};

    use super::*;
    use crate::crypto::tests::h;

    fn nist() -> Vec<[Vec<u8>; 6]> {
        include_str!("testdata/gcm_nist.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let f: Vec<Vec<u8>> = l.split(' ').map(|x| if x == "-" { Vec::new() } else { h(x) }).collect();
                [f[0].clone(), f[1].clone(), f[2].clone(), f[3].clone(), f[4].clone(), f[5].clone()]
            })
            .collect()
    }

    /// Every path this CPU runs: the `aes-gcm` crate, and the carry-less
    /// GHASH.
    fn keys(key: &[u8]) -> Vec<(&'static str, GcmKey)> {
        let mut v = vec![("portable", GcmKey::portable(key).expect("key"))];
        if clmul::available() {
            v.push(("fast", GcmKey::new(key).expect("key")));
        } else {
            eprintln!("no PCLMULQDQ/SSSE3 here: only the portable path is tested");
        }
        v
    }

    #[test]
    fn fast_path_is_used_where_available() {
        let k = GcmKey::new(&[7; 16]).expect("key");
        assert_eq!(matches!(k, GcmKey::Fast128(_)), clmul::available());
        let k = GcmKey::new(&[7; 32]).expect("key");
        assert_eq!(matches!(k, GcmKey::Fast256(_)), clmul::available());
        assert!(GcmKey::new(&[7; 24]).is_none());
    }

    #[test]
    fn nist_cavp_vectors_open_and_reject_tampering() {
        let vs = nist();
        assert_eq!(vs.len(), 41);
        let mut sizes = std::collections::BTreeSet::new();
        for [key, nonce, pt, aad, ct, tag] in &vs {
            sizes.insert((key.len(), pt.len(), aad.len()));
            let nonce: &[u8; 12] = nonce.as_slice().try_into().expect("96-bit nonce");
            for (name, k) in keys(key) {
                let mut out = vec![0xa5; ct.len()];
                assert!(k.open(nonce, aad, ct, tag, &mut out), "{name}: key {key:02x?}");
                assert_eq!(&out, pt, "{name}");
                let mut bad = tag.clone();
                bad[15] ^= 1;
                assert!(!k.open(nonce, aad, ct, &bad, &mut out), "{name}: bad tag");
                if let Some(&b) = ct.first() {
                    let mut c = ct.clone();
                    c[0] = b ^ 0x80;
                    assert!(!k.open(nonce, aad, &c, tag, &mut out), "{name}: bad ciphertext");
                }
                if !aad.is_empty() {
                    let mut a = aad.clone();
                    let last = a.len() - 1;
                    a[last] ^= 4;
                    assert!(!k.open(nonce, &a, ct, tag, &mut out), "{name}: bad aad");
                }
            }
        }
        // Both key sizes; empty input; partial last blocks (13 and 51
        // bytes); AAD longer than a block (20, 48, 90 bytes).
        assert!(sizes.contains(&(16, 0, 0)) && sizes.contains(&(32, 13, 90)) && sizes.contains(&(16, 51, 20)));
        assert!(sizes.iter().any(|s| s.0 == 32) && sizes.iter().any(|s| s.0 == 16));
    }

    /// SP 800-38D Algorithm 1, bit by bit (the spec's definition of the
    /// product, on blocks read big-endian).
    fn spec_mul(x: u128, y: u128) -> u128 {
        const R: u128 = 0xe1 << 120;
        let mut z = 0;
        let mut v = y;
        for i in 0..128 {
            if (x >> (127 - i)) & 1 == 1 {
                z ^= v;
            }
            v = if v & 1 == 0 { v >> 1 } else { (v >> 1) ^ R };
        }
        z
    }

    /// A small deterministic generator (SplitMix64) for the random tests.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        pub(crate) fn fill(&mut self, b: &mut [u8]) {
            for c in b.chunks_mut(8) {
                let r = self.next().to_le_bytes();
                c.copy_from_slice(&r[..c.len()]);
            }
        }
    }

    #[test]
    fn clmul_product_is_the_spec_product() {
        if !clmul::available() {
            eprintln!("no PCLMULQDQ/SSSE3 here: skipped");
            return;
        }
        let mut rng = Rng(17);
        let mut cases: Vec<(u128, u128)> = vec![(1 << 127, 1 << 127), (1, 1), (u128::MAX, u128::MAX), (1, 1 << 127)];
        for _ in 0..2000 {
            let a = (rng.next() as u128) << 64 | rng.next() as u128;
            let b = (rng.next() as u128) << 64 | rng.next() as u128;
            cases.push((a, b));
        }
        for (a, b) in cases {
            let got = clmul::test_access::mul(&a.to_be_bytes(), &b.to_be_bytes());
            assert_eq!(u128::from_be_bytes(got), spec_mul(a, b), "{a:032x} * {b:032x}");
        }
        // x^0 (the block 80 00 .. 00) is the field's one.
        let one = 1u128 << 127;
        assert_eq!(spec_mul(one, 0x1234), 0x1234);
    }

    /// Random keys, nonces, AAD and lengths 0..20,000 sealed by the
    /// `aes-gcm` crate: the fast path opens every one to the same
    /// plaintext, and both reject a changed tag, ciphertext byte or AAD
    /// byte.
    #[test]
    fn agrees_with_aes_gcm_on_random_records() {
        let mut rng = Rng(2026);
        let mut lens: Vec<usize> = (0..=300).collect();
        lens.extend([16 * 8 - 1, 16 * 8, 16 * 8 + 1, 16 * 16, 16384, 16385, 16400, 19999]);
        for _ in 0..300 {
            lens.push(rng.below(20_000) as usize);
        }
        for (i, &len) in lens.iter().enumerate() {
            let mut key = vec![0u8; if i % 2 == 0 { 16 } else { 32 }];
            rng.fill(&mut key);
            let mut nonce = [0u8; 12];
            rng.fill(&mut nonce);
            let mut aad = vec![0u8; [0, 5, 13, 16, 17, 100][i % 6]];
            rng.fill(&mut aad);
            let mut pt = vec![0u8; len];
            rng.fill(&mut pt);
            let mut ct = pt.clone();
            let n = GenericArray::from_slice(&nonce);
            let tag = if key.len() == 16 {
                Aes128Gcm::new_from_slice(&key).expect("key").encrypt_in_place_detached(n, &aad, &mut ct)
            } else {
                Aes256Gcm::new_from_slice(&key).expect("key").encrypt_in_place_detached(n, &aad, &mut ct)
            }
            .expect("seal");
            let tag = tag.to_vec();
            for (name, k) in keys(&key) {
                let mut out = vec![0u8; len];
                assert!(k.open(&nonce, &aad, &ct, &tag, &mut out), "{name} len {len}");
                assert!(out == pt, "{name} len {len}: plaintext differs");
                // Tampering: a random bit of the tag, the ciphertext, the AAD.
                let mut t = tag.clone();
                t[rng.below(16) as usize] ^= 1 << rng.below(8);
                assert!(!k.open(&nonce, &aad, &ct, &t, &mut out), "{name} len {len}: tag");
                if len > 0 {
                    let mut c = ct.clone();
                    c[rng.below(len as u64) as usize] ^= 1 << rng.below(8);
                    assert!(!k.open(&nonce, &aad, &c, &tag, &mut out), "{name} len {len}: ciphertext");
                }
                if !aad.is_empty() {
                    let mut a = aad.clone();
                    a[rng.below(aad.len() as u64) as usize] ^= 1 << rng.below(8);
                    assert!(!k.open(&nonce, &a, &ct, &tag, &mut out), "{name} len {len}: aad");
                }
                // The wrong nonce (another sequence number) fails too.
                let mut wrong = nonce;
                wrong[11] ^= 1;
                assert!(!k.open(&wrong, &aad, &ct, &tag, &mut out), "{name} len {len}: nonce");
            }
        }
    }

    /// A tag of the wrong size, or an output buffer of the wrong length,
    /// is a failure (not a panic).
    #[test]
    fn rejects_wrong_lengths() {
        let k = GcmKey::new(&[1; 16]).expect("key");
        let mut out = [0u8; 4];
        assert!(!k.open(&[0; 12], b"", &[0; 5], &[0; 16], &mut out));
        assert!(!k.open(&[0; 12], b"", &[0; 4], &[0; 15], &mut out));
    }
}
