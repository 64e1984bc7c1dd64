//! The keyed hash behind consistent masks: SipHash-2-4 (a keyed
//! pseudo-random function, written from its specification), and the key
//! of a run.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A 128-bit SipHash key.
pub(crate) type Key = [u64; 2];

/// SipHash-2-4 of `data` under `key`.
pub(crate) fn siphash(key: Key, data: &[u8]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let m = u64::from_le_bytes(b);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let rest = words.remainder();
    last[..rest.len()].copy_from_slice(rest);
    let m = u64::from_le_bytes(last) | ((data.len() as u64 & 0xff) << 56);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// The key derived from a configured `mask_key` (the same text gives the
/// same key on every machine and in every run).
pub(crate) fn from_text(text: &str) -> Key {
    const DOMAIN: Key = [0x706f_762d_7072_6976, 0x6163_792d_6d61_736b];
    let a = siphash(DOMAIN, text.as_bytes());
    let b = siphash([DOMAIN[0] ^ a, DOMAIN[1]], text.as_bytes());
    [a, b]
}

/// The key of this run: random, drawn once per process, so every output
/// of one run masks a value alike and no two runs do.
pub(crate) fn run_key() -> Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    *KEY.get_or_init(|| {
        // The standard library seeds RandomState from the operating
        // system's random source; two states give 128 random bits. The
        // time and process id are mixed in for good measure.
        let (a, b) = (std::collections::hash_map::RandomState::new(), std::collections::hash_map::RandomState::new());
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let mut h = a.build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        let k0 = h.finish();
        let mut h = b.build_hasher();
        h.write_u64(k0);
        h.write_u128(nanos);
        [k0, h.finish()]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's key: bytes 0, 1, ... 15.
    const SPEC_KEY: Key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];

    #[test]
    fn matches_the_reference_vectors() {
        // Vectors of the SipHash paper (appendix A) and its reference
        // implementation: messages 0, 1, ... n-1 under key 0..15.
        assert_eq!(siphash(SPEC_KEY, &[]), 0x726f_db47_dd0e_0e31);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash(SPEC_KEY, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    #[allow(deprecated)]
    fn agrees_with_the_standard_librarys_siphash_2_4() {
        // std keeps a (deprecated) SipHash-2-4: every length from 0 to 40
        // bytes, under two keys, gives the same value.
        for key in [SPEC_KEY, [0xdead_beef, 0x1234_5678_9abc_def0]] {
            for n in 0..=40u8 {
                let msg: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
                let mut h = std::hash::SipHasher::new_with_keys(key[0], key[1]);
                h.write(&msg);
                assert_eq!(siphash(key, &msg), h.finish(), "{n} bytes");
            }
        }
    }

    #[test]
    fn keys_from_text_are_stable_and_distinct() {
        assert_eq!(from_text("nightly"), from_text("nightly"));
        assert_ne!(from_text("nightly"), from_text("nightly2"));
        assert_eq!(run_key(), run_key());
        assert_ne!(run_key(), from_text(""));
    }
}
