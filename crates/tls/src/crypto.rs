//! Cipher suites, key derivation (TLS 1.3 HKDF-Expand-Label, TLS 1.2
//! PRF and key block) and record protection: AES-128-GCM, AES-256-GCM and
//! ChaCha20-Poly1305, and TLS 1.2's AES-CBC with HMAC (MAC-then-encrypt,
//! or encrypt-then-MAC when both hellos carry RFC 7366's extension).
//!
//! Everything here works on caller-provided buffers: opening a record
//! decrypts from the received bytes straight into a reused output buffer,
//! with no allocation per record.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::{Aes128, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, InnerIvInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha384};

use crate::gcm::GcmKey;
use crate::keylog::Secret;

/// The cipher a suite protects records with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherKind {
    /// AES-128 in Galois/Counter Mode.
    Aes128Gcm,
    /// AES-256 in Galois/Counter Mode.
    Aes256Gcm,
    /// ChaCha20 with Poly1305 (RFC 8439).
    ChaCha20Poly1305,
    /// AES-128-CBC with an HMAC (TLS 1.2 only).
    Aes128Cbc(MacKind),
    /// AES-256-CBC with an HMAC (TLS 1.2 only).
    Aes256Cbc(MacKind),
}

impl CipherKind {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            CipherKind::Aes128Gcm | CipherKind::Aes128Cbc(_) => 16,
            CipherKind::Aes256Gcm | CipherKind::ChaCha20Poly1305 | CipherKind::Aes256Cbc(_) => 32,
        }
    }
}

/// The HMAC of a CBC suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacKind {
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA384.
    Sha384,
}

impl MacKind {
    /// Key and output length in bytes.
    pub fn len(self) -> usize {
        match self {
            MacKind::Sha1 => 20,
            MacKind::Sha256 => 32,
            MacKind::Sha384 => 48,
        }
    }

    /// Always false.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// The hash of a suite's key schedule (and TLS 1.2 PRF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl HashKind {
    /// Output length in bytes.
    pub fn len(self) -> usize {
        match self {
            HashKind::Sha256 => 32,
            HashKind::Sha384 => 48,
        }
    }

    /// Always false (a hash has an output).
    pub fn is_empty(self) -> bool {
        false
    }
}

/// What pov knows of a cipher suite it can decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuiteInfo {
    /// IANA number.
    pub id: u16,
    /// IANA name.
    pub name: &'static str,
    /// A TLS 1.3 suite (else TLS 1.2).
    pub tls13: bool,
    /// Record protection.
    pub cipher: CipherKind,
    /// Key schedule hash.
    pub hash: HashKind,
}

macro_rules! suites {
    ($($id:literal $name:literal $tls13:literal $cipher:expr, $hash:ident;)*) => {
        /// Every suite pov decrypts.
        pub const SUITES: &[SuiteInfo] = &[$(SuiteInfo {
            id: $id, name: $name, tls13: $tls13, cipher: $cipher, hash: HashKind::$hash,
        }),*];
    };
}

use CipherKind::{Aes128Cbc, Aes128Gcm as A128, Aes256Cbc, Aes256Gcm as A256, ChaCha20Poly1305 as CC};

suites! {
    0x1301 "TLS_AES_128_GCM_SHA256" true A128, Sha256;
    0x1302 "TLS_AES_256_GCM_SHA384" true A256, Sha384;
    0x1303 "TLS_CHACHA20_POLY1305_SHA256" true CC, Sha256;
    0xc02b "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" false A128, Sha256;
    0xc02c "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" false A256, Sha384;
    0xc02f "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" false A128, Sha256;
    0xc030 "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" false A256, Sha384;
    0xcca8 "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" false CC, Sha256;
    0xcca9 "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" false CC, Sha256;
    0xccaa "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256" false CC, Sha256;
    0x009e "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" false A128, Sha256;
    0x009f "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384" false A256, Sha384;
    0x009c "TLS_RSA_WITH_AES_128_GCM_SHA256" false A128, Sha256;
    0x009d "TLS_RSA_WITH_AES_256_GCM_SHA384" false A256, Sha384;
    0xc013 "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" false Aes128Cbc(MacKind::Sha1), Sha256;
    0xc014 "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" false Aes256Cbc(MacKind::Sha1), Sha256;
    0xc009 "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" false Aes128Cbc(MacKind::Sha1), Sha256;
    0xc00a "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA" false Aes256Cbc(MacKind::Sha1), Sha256;
    0xc027 "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256" false Aes128Cbc(MacKind::Sha256), Sha256;
    0xc028 "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384" false Aes256Cbc(MacKind::Sha384), Sha384;
    0xc023 "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256" false Aes128Cbc(MacKind::Sha256), Sha256;
    0xc024 "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384" false Aes256Cbc(MacKind::Sha384), Sha384;
    0x002f "TLS_RSA_WITH_AES_128_CBC_SHA" false Aes128Cbc(MacKind::Sha1), Sha256;
    0x0035 "TLS_RSA_WITH_AES_256_CBC_SHA" false Aes256Cbc(MacKind::Sha1), Sha256;
    0x003c "TLS_RSA_WITH_AES_128_CBC_SHA256" false Aes128Cbc(MacKind::Sha256), Sha256;
    0x003d "TLS_RSA_WITH_AES_256_CBC_SHA256" false Aes256Cbc(MacKind::Sha256), Sha256;
}

/// The suite with this number, if pov can decrypt it.
pub fn suite_info(id: u16) -> Option<SuiteInfo> {
    SUITES.iter().copied().find(|s| s.id == id)
}

/// TLS 1.3 HKDF-Expand-Label (RFC 8446 section 7.1): `out.len()` bytes
/// expanded from `secret` with the label `"tls13 " + label` and
/// `context`. Returns false when `secret` is shorter than the hash or
/// `out` is too long (neither happens with the lengths TLS uses).
pub fn hkdf_expand_label(hash: HashKind, secret: &[u8], label: &[u8], context: &[u8], out: &mut [u8]) -> bool {
    if out.len() > u16::MAX as usize || label.len() + 6 > 255 || context.len() > 255 {
        return false;
    }
    let mut info = [0u8; 2 + 1 + 255 + 1 + 255];
    let mut n = 0;
    info[..2].copy_from_slice(&(out.len() as u16).to_be_bytes());
    n += 2;
    info[n] = (6 + label.len()) as u8;
    n += 1;
    info[n..n + 6].copy_from_slice(b"tls13 ");
    n += 6;
    info[n..n + label.len()].copy_from_slice(label);
    n += label.len();
    info[n] = context.len() as u8;
    n += 1;
    info[n..n + context.len()].copy_from_slice(context);
    n += context.len();
    let info = &info[..n];
    match hash {
        HashKind::Sha256 => hkdf::Hkdf::<Sha256>::from_prk(secret).map(|h| h.expand(info, out).is_ok()),
        HashKind::Sha384 => hkdf::Hkdf::<Sha384>::from_prk(secret).map(|h| h.expand(info, out).is_ok()),
    }
    .unwrap_or(false)
}

/// The TLS 1.2 PRF (RFC 5246 section 5): P_hash(secret, label + seed)
/// with the suite's hash, filling `out`.
pub fn prf(hash: HashKind, secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    match hash {
        HashKind::Sha256 => p_hash::<Hmac<Sha256>>(secret, label, seed, out),
        HashKind::Sha384 => p_hash::<Hmac<Sha384>>(secret, label, seed, out),
    }
}

fn p_hash<M: Mac + hmac::digest::KeyInit + Clone>(secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    let Ok(base) = <M as Mac>::new_from_slice(secret) else {
        // HMAC takes keys of every length; nothing to do if it did not.
        return;
    };
    // A(1) = HMAC(secret, label + seed).
    let mut m = base.clone();
    m.update(label);
    for s in seed {
        m.update(s);
    }
    let mut a = m.finalize().into_bytes();
    let mut filled = 0;
    while filled < out.len() {
        let mut m = base.clone();
        m.update(&a);
        m.update(label);
        for s in seed {
            m.update(s);
        }
        let block = m.finalize().into_bytes();
        let n = block.len().min(out.len() - filled);
        out[filled..filled + n].copy_from_slice(&block[..n]);
        filled += n;
        let mut m = base.clone();
        m.update(&a);
        a = m.finalize().into_bytes();
    }
}

/// How a record's nonce and additional data are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// TLS 1.3: nonce = iv XOR seq; AAD = the record header.
    Tls13,
    /// TLS 1.2 AES-GCM (RFC 5288): nonce = 4-byte salt + the record's
    /// 8-byte explicit nonce; AAD = seq, type, version, plaintext length.
    Tls12Gcm,
    /// TLS 1.2 ChaCha20-Poly1305 (RFC 7905): nonce = iv XOR seq; AAD as
    /// for GCM.
    Tls12ChaCha,
    /// TLS 1.2 CBC (RFC 5246 6.2.3.2): explicit IV, then the CBC
    /// ciphertext of content + MAC + padding; with encrypt-then-MAC (RFC
    /// 7366) the MAC follows the ciphertext and covers IV and ciphertext.
    Tls12Cbc {
        /// The HMAC.
        mac: MacKind,
        /// Encrypt-then-MAC.
        etm: bool,
    },
}

// Always boxed (in a RecordKey's KeyInner): the variants' sizes differ but
// a connection pays one pointer per key.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    /// AES-128-GCM or AES-256-GCM.
    Gcm(GcmKey),
    ChaCha(ChaCha20Poly1305),
    Aes128Cbc(Aes128),
    Aes256Cbc(Aes256),
}

/// Why a record could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the AEAD's overhead.
    TooShort,
    /// The authentication tag did not match: wrong key, wrong sequence
    /// number, or damaged bytes.
    BadTag,
}

/// The key of one direction of one epoch: an AEAD with its IV, ready to
/// open records. Holds expanded key material: it has no `Debug`.
pub struct RecordKey(Box<KeyInner>);

/// A key's parts, boxed so that a connection holding several keys (both
/// sides, this epoch and the next) stays small.
struct KeyInner {
    cipher: Cipher,
    iv: [u8; 12],
    mode: Mode,
    /// CBC suites' MAC key (its first `mac.len()` bytes).
    mac_key: [u8; 48],
}

impl RecordKey {
    /// A TLS 1.3 record key from a traffic secret (RFC 8446 section 7.3).
    pub fn tls13(suite: &SuiteInfo, secret: &Secret) -> Option<RecordKey> {
        let mut key = [0u8; 32];
        let key = &mut key[..suite.cipher.key_len()];
        let mut iv = [0u8; 12];
        if !hkdf_expand_label(suite.hash, secret.expose(), b"key", b"", key)
            || !hkdf_expand_label(suite.hash, secret.expose(), b"iv", b"", &mut iv)
        {
            return None;
        }
        let k = RecordKey::from_parts(suite.cipher, key, iv, Mode::Tls13, &[]);
        key.fill(0);
        k
    }

    /// The client's and server's TLS 1.2 record keys from the master
    /// secret (RFC 5246 section 6.3: key block = PRF(master, "key
    /// expansion", server_random + client_random): MAC keys (CBC suites),
    /// cipher keys, IVs (AEAD suites)). `etm`: both hellos agreed on
    /// encrypt-then-MAC (CBC suites only).
    pub fn tls12(
        suite: &SuiteInfo,
        master: &Secret,
        client_random: &[u8; 32],
        server_random: &[u8; 32],
        etm: bool,
    ) -> Option<(RecordKey, RecordKey)> {
        let kl = suite.cipher.key_len();
        let (ml, ivl, mode) = match suite.cipher {
            CipherKind::ChaCha20Poly1305 => (0, 12, Mode::Tls12ChaCha),
            CipherKind::Aes128Gcm | CipherKind::Aes256Gcm => (0, 4, Mode::Tls12Gcm),
            CipherKind::Aes128Cbc(mac) | CipherKind::Aes256Cbc(mac) => (mac.len(), 0, Mode::Tls12Cbc { mac, etm }),
        };
        let mut block = [0u8; 2 * 48 + 2 * 32 + 2 * 12];
        let block = &mut block[..2 * ml + 2 * kl + 2 * ivl];
        prf(suite.hash, master.expose(), b"key expansion", &[server_random, client_random], block);
        let (macs, rest) = block.split_at(2 * ml);
        let (keys, ivs) = rest.split_at(2 * kl);
        let mut civ = [0u8; 12];
        let mut siv = [0u8; 12];
        civ[..ivl].copy_from_slice(&ivs[..ivl]);
        siv[..ivl].copy_from_slice(&ivs[ivl..]);
        let c = RecordKey::from_parts(suite.cipher, &keys[..kl], civ, mode, &macs[..ml]);
        let s = RecordKey::from_parts(suite.cipher, &keys[kl..], siv, mode, &macs[ml..]);
        block.fill(0);
        Some((c?, s?))
    }

    fn from_parts(kind: CipherKind, key: &[u8], iv: [u8; 12], mode: Mode, mac_key: &[u8]) -> Option<RecordKey> {
        let cipher = match kind {
            CipherKind::Aes128Gcm | CipherKind::Aes256Gcm => Cipher::Gcm(GcmKey::new(key)?),
            CipherKind::ChaCha20Poly1305 => Cipher::ChaCha(ChaCha20Poly1305::new_from_slice(key).ok()?),
            CipherKind::Aes128Cbc(_) => Cipher::Aes128Cbc(Aes128::new_from_slice(key).ok()?),
            CipherKind::Aes256Cbc(_) => Cipher::Aes256Cbc(Aes256::new_from_slice(key).ok()?),
        };
        let mut mk = [0u8; 48];
        mk.get_mut(..mac_key.len())?.copy_from_slice(mac_key);
        Some(RecordKey(Box::new(KeyInner { cipher, iv, mode, mac_key: mk })))
    }

    /// Bytes a record carries besides its plaintext (explicit nonce and
    /// tag; for TLS 1.3 also the inner content type, padding not
    /// counted).
    pub fn overhead(&self) -> usize {
        match self.0.mode {
            Mode::Tls13 => 17,
            Mode::Tls12Gcm => 24,
            Mode::Tls12ChaCha => 16,
            // IV, MAC and at least one byte of padding.
            Mode::Tls12Cbc { mac, .. } => 16 + mac.len() + 1,
        }
    }

    /// The sequence number a TLS 1.2 GCM record's explicit nonce suggests
    /// (most implementations send the sequence number there), for
    /// resynchronising after a loss.
    pub fn seq_hint(&self, body: &[u8]) -> Option<u64> {
        if self.0.mode != Mode::Tls12Gcm {
            return None;
        }
        Some(u64::from_be_bytes(body.get(..8)?.try_into().ok()?))
    }

    /// Opens one record: `header` is its 5 bytes, `body` what follows.
    /// The plaintext goes to the start of `out` and its length `n` is
    /// returned: the plaintext is `out[..n]` (the buffer is reused and
    /// only grows; bytes after `n` are left from earlier records). For TLS 1.3 that is the inner
    /// plaintext: content, content type, zero padding. `body` is never
    /// modified, so a failed attempt can be retried with another sequence
    /// number or key.
    pub fn open(&self, seq: u64, header: &[u8; 5], body: &[u8], out: &mut Vec<u8>) -> Result<usize, OpenError> {
        if let Mode::Tls12Cbc { mac, etm } = self.0.mode {
            return self.open_cbc(mac, etm, seq, header, body, out);
        }
        let (ct, nonce) = match self.0.mode {
            Mode::Tls13 | Mode::Tls12ChaCha => {
                let mut nonce = self.0.iv;
                for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                    *n ^= s;
                }
                (body, nonce)
            }
            Mode::Tls12Gcm | Mode::Tls12Cbc { .. } => {
                if body.len() < 8 {
                    return Err(OpenError::TooShort);
                }
                let mut nonce = self.0.iv;
                nonce[4..].copy_from_slice(&body[..8]);
                (&body[8..], nonce)
            }
        };
        let Some(ct_len) = ct.len().checked_sub(16) else {
            return Err(OpenError::TooShort);
        };
        let (ct, tag) = ct.split_at(ct_len);
        let mut aad = [0u8; 13];
        let aad: &[u8] = match self.0.mode {
            Mode::Tls13 => header,
            Mode::Tls12Gcm | Mode::Tls12ChaCha | Mode::Tls12Cbc { .. } => {
                aad[..8].copy_from_slice(&seq.to_be_bytes());
                aad[8..11].copy_from_slice(&header[..3]);
                aad[11..].copy_from_slice(&(ct_len as u16).to_be_bytes());
                &aad
            }
        };
        // The reused buffer only grows (once, to a record's size): never
        // shrunk, so that a short record between long ones costs no zeroing
        // of the next long one's room.
        if out.len() < ct_len {
            out.resize(ct_len, 0);
        }
        let out = &mut out[..ct_len];
        let ok = match &self.0.cipher {
            // Out of place, from `body` into the buffer: one pass writes
            // the plaintext, and `body` stays intact for another attempt.
            Cipher::Gcm(k) => k.open(&nonce, aad, ct, tag, out),
            // The ChaCha20-Poly1305 crate works in place: the ciphertext
            // is copied first.
            Cipher::ChaCha(c) => {
                out.copy_from_slice(ct);
                open_with(c, &nonce, aad, tag, out)
            }
            Cipher::Aes128Cbc(_) | Cipher::Aes256Cbc(_) => false,
        };
        if ok { Ok(ct_len) } else { Err(OpenError::BadTag) }
    }
}

impl RecordKey {
    /// Opens a TLS 1.2 CBC record. Padding and MAC are checked (a record
    /// that fails either is `BadTag`); timing does not matter here, pov
    /// only reads.
    fn open_cbc(
        &self,
        mac: MacKind,
        etm: bool,
        seq: u64,
        header: &[u8; 5],
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, OpenError> {
        let ml = mac.len();
        let mac_key = &self.0.mac_key[..ml];
        let mac_input = |len: usize| {
            let mut pre = [0u8; 13];
            pre[..8].copy_from_slice(&seq.to_be_bytes());
            pre[8..11].copy_from_slice(&header[..3]);
            pre[11..].copy_from_slice(&(len as u16).to_be_bytes());
            pre
        };
        let (iv_ct, tag) = if etm {
            let Some(n) = body.len().checked_sub(ml) else { return Err(OpenError::TooShort) };
            let (iv_ct, tag) = body.split_at(n);
            if !hmac_ok(mac, mac_key, &[&mac_input(iv_ct.len()), iv_ct], tag) {
                return Err(OpenError::BadTag);
            }
            (iv_ct, Some(tag))
        } else {
            (body, None)
        };
        if iv_ct.len() < 32 || iv_ct.len() % 16 != 0 {
            return Err(OpenError::TooShort);
        }
        let (iv, ct) = iv_ct.split_at(16);
        out.clear();
        out.resize(ct.len(), 0);
        let ok = match &self.0.cipher {
            Cipher::Aes128Cbc(c) => cbc::Decryptor::inner_iv_slice_init(c.clone(), iv)
                .is_ok_and(|d| d.decrypt_padded_b2b_mut::<NoPadding>(ct, out).is_ok()),
            Cipher::Aes256Cbc(c) => cbc::Decryptor::inner_iv_slice_init(c.clone(), iv)
                .is_ok_and(|d| d.decrypt_padded_b2b_mut::<NoPadding>(ct, out).is_ok()),
            _ => false,
        };
        if !ok {
            return Err(OpenError::BadTag);
        }
        // Padding: its length byte, then that many bytes of the same value.
        let pad = *out.last().ok_or(OpenError::TooShort)? as usize;
        let unpadded = out.len().checked_sub(pad + 1).ok_or(OpenError::BadTag)?;
        if out[unpadded..].iter().any(|&b| b as usize != pad) {
            return Err(OpenError::BadTag);
        }
        if tag.is_some() {
            return Ok(unpadded);
        }
        let len = unpadded.checked_sub(ml).ok_or(OpenError::BadTag)?;
        let (content, tag) = out[..unpadded].split_at(len);
        if !hmac_ok(mac, mac_key, &[&mac_input(len), content], tag) {
            return Err(OpenError::BadTag);
        }
        Ok(len)
    }
}

fn hmac_ok(mac: MacKind, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    fn check<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        let Ok(mut m) = <M as Mac>::new_from_slice(key) else { return false };
        for p in parts {
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    }
    match mac {
        MacKind::Sha1 => check::<Hmac<Sha1>>(key, parts, tag),
        MacKind::Sha256 => check::<Hmac<Sha256>>(key, parts, tag),
        MacKind::Sha384 => check::<Hmac<Sha384>>(key, parts, tag),
    }
}

fn open_with<A: AeadInPlace>(a: &A, nonce: &[u8; 12], aad: &[u8], tag: &[u8], buf: &mut [u8]) -> bool {
    if tag.len() != 16 {
        return false;
    }
    a.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf, GenericArray::from_slice(tag)).is_ok()
}

/// The next TLS 1.3 application traffic secret after a KeyUpdate (RFC
/// 8446 section 7.2).
pub fn next_traffic_secret(hash: HashKind, secret: &Secret) -> Option<Secret> {
    let mut out = [0u8; 48];
    let out = &mut out[..hash.len()];
    if !hkdf_expand_label(hash, secret.expose(), b"traffic upd", b"", out) {
        return None;
    }
    let s = Secret::new(out);
    out.fill(0);
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Hex digits (spaces and newlines ignored) to bytes.
    pub(crate) fn h(s: &str) -> Vec<u8> {
        let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        assert_eq!(d.len() % 2, 0, "odd number of hex digits");
        d.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("zz"), 16).unwrap_or(0)).collect()
    }

    /// RFC 8448 section 3 (Simple 1-RTT Handshake), values as printed.
    pub(crate) mod rfc8448 {
        pub const CLIENT_RANDOM: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";
        pub const C_HS: &str =
            "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21";
        pub const S_HS: &str =
            "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38";
        pub const C_AP: &str =
            "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5";
        pub const S_AP: &str =
            "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43";
        pub const S_HS_KEY: &str = "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc";
        pub const S_HS_IV: &str = "5d 31 3e b2 67 12 76 ee 13 00 0b 30";
        pub const S_AP_KEY: &str = "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56";
        pub const S_AP_IV: &str = "cf 78 2b 88 dd 83 54 9a ad f1 e9 84";
        pub const C_HS_KEY: &str = "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01";
        pub const C_HS_IV: &str = "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f";
        pub const C_AP_KEY: &str = "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51";
        pub const C_AP_IV: &str = "5b 78 92 3d ee 08 57 90 33 e5 23 d9";
        pub const CLIENT_HELLO_RECORD: &str = "16 03 01 00 c4
            01 00 00 c0 03 03 cb 34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d ff a2
            1a 8d 99 12 ec 18 a2 ef 62 83 02 4d ec e7 00 00 06 13 01 13 03 13 02 01
            00 00 91 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01 00 01 00 00
            0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00
            23 00 00 00 33 00 26 00 24 00 1d 00 20 99 38 1d e5 60 e4 bd 43 d2 3d 8e
            43 5a 7d ba fe b3 c0 6e 51 c1 3c ae 4d 54 13 69 1e 52 9a af 2c 00 2b 00
            03 02 03 04 00 0d 00 20 00 1e 04 03 05 03 06 03 02 03 08 04 08 05 08 06
            04 01 05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c
            00 02 40 01";
        pub const SERVER_HELLO_RECORD: &str = "
            16 03 03 00 5a 02 00 00 56 03 03 a6 af 06 a4 12 18 60 dc 5e 6e 60 24 9c
            d3 4c 95 93 0c 8a c5 cb 14 34 da c1 55 77 2e d3 e2 69 28 00 13 01 00 00
            2e 00 33 00 24 00 1d 00 20 c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72
            e1 56 d6 cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f 00 2b 00 02 03 04";
        /// EncryptedExtensions, Certificate, CertificateVerify, Finished.
        pub const SERVER_FLIGHT_RECORD: &str = "
            17 03 03 02 a2 d1 ff 33 4a 56 f5 bf f6 59 4a 07 cc 87 b5 80 23 3f 50 0f
            45 e4 89 e7 f3 3a f3 5e df 78 69 fc f4 0a a4 0a a2 b8 ea 73 f8 48 a7 ca
            07 61 2e f9 f9 45 cb 96 0b 40 68 90 51 23 ea 78 b1 11 b4 29 ba 91 91 cd
            05 d2 a3 89 28 0f 52 61 34 aa dc 7f c7 8c 4b 72 9d f8 28 b5 ec f7 b1 3b
            d9 ae fb 0e 57 f2 71 58 5b 8e a9 bb 35 5c 7c 79 02 07 16 cf b9 b1 18 3e
            f3 ab 20 e3 7d 57 a6 b9 d7 47 76 09 ae e6 e1 22 a4 cf 51 42 73 25 25 0c
            7d 0e 50 92 89 44 4c 9b 3a 64 8f 1d 71 03 5d 2e d6 5b 0e 3c dd 0c ba e8
            bf 2d 0b 22 78 12 cb b3 60 98 72 55 cc 74 41 10 c4 53 ba a4 fc d6 10 92
            8d 80 98 10 e4 b7 ed 1a 8f d9 91 f0 6a a6 24 82 04 79 7e 36 a6 a7 3b 70
            a2 55 9c 09 ea d6 86 94 5b a2 46 ab 66 e5 ed d8 04 4b 4c 6d e3 fc f2 a8
            94 41 ac 66 27 2f d8 fb 33 0e f8 19 05 79 b3 68 45 96 c9 60 bd 59 6e ea
            52 0a 56 a8 d6 50 f5 63 aa d2 74 09 96 0d ca 63 d3 e6 88 61 1e a5 e2 2f
            44 15 cf 95 38 d5 1a 20 0c 27 03 42 72 96 8a 26 4e d6 54 0c 84 83 8d 89
            f7 2c 24 46 1a ad 6d 26 f5 9e ca ba 9a cb bb 31 7b 66 d9 02 f4 f2 92 a3
            6a c1 b6 39 c6 37 ce 34 31 17 b6 59 62 22 45 31 7b 49 ee da 0c 62 58 f1
            00 d7 d9 61 ff b1 38 64 7e 92 ea 33 0f ae ea 6d fa 31 c7 a8 4d c3 bd 7e
            1b 7a 6c 71 78 af 36 87 90 18 e3 f2 52 10 7f 24 3d 24 3d c7 33 9d 56 84
            c8 b0 37 8b f3 02 44 da 8c 87 c8 43 f5 e5 6e b4 c5 e8 28 0a 2b 48 05 2c
            f9 3b 16 49 9a 66 db 7c ca 71 e4 59 94 26 f7 d4 61 e6 6f 99 88 2b d8 9f
            c5 08 00 be cc a6 2d 6c 74 11 6d bd 29 72 fd a1 fa 80 f8 5d f8 81 ed be
            5a 37 66 89 36 b3 35 58 3b 59 91 86 dc 5c 69 18 a3 96 fa 48 a1 81 d6 b6
            fa 4f 9d 62 d5 13 af bb 99 2f 2b 99 2f 67 f8 af e6 7f 76 91 3f a3 88 cb
            56 30 c8 ca 01 e0 c6 5d 11 c6 6a 1e 2a c4 c8 59 77 b7 c7 a6 99 9b bf 10
            dc 35 ae 69 f5 51 56 14 63 6c 0b 9b 68 c1 9e d2 e3 1c 0b 3b 66 76 30 38
            eb ba 42 f3 b3 8e dc 03 99 f3 a9 f2 3f aa 63 97 8c 31 7f c9 fa 66 a7 3f
            60 f0 50 4d e9 3b 5b 84 5e 27 55 92 c1 23 35 ee 34 0b bc 4f dd d5 02 78
            40 16 e4 b3 be 7e f0 4d da 49 f4 b4 40 a3 0c b5 d2 af 93 98 28 fd 4a e3
            79 4e 44 f9 4d f5 a6 31 ed e4 2c 17 19 bf da bf 02 53 fe 51 75 be 89 8e
            75 0e dc 53 37 0d 2b";
        pub const CLIENT_FINISHED_RECORD: &str = "
            17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0
            51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c
            ae ac ab 68 67 d7 26 c4 05 46";
        /// The server's NewSessionTicket, under its application keys.
        pub const NEW_SESSION_TICKET_RECORD: &str = "
            17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24
            0e 6c ff ac 11 6e 95 d4 1d 6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a
            01 59 40 25 2f 55 71 3e 06 1d c1 3e 07 88 91 a3 8e fb cf 57 53 ad 8e f1
            70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0 d4 a3 d0 3f 75 e0
            9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13 06 46 15
            13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84 00 25 db 2f 0a 77
            f8 1b 5a b0 5b 94 c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac 87 aa c3
            47 d1 43 f9 60 5d 64 f6 50 db 4d 02 3e 70 e9 52 ca 49 fe 51 37 12 1c 74
            bc 26 97 68 7e 24 87 46 d6 df 35 30 05 f3 bc e1 86 96 12 9c 81 53 55 6b
            3b 6c 67 79 b3 7b f1 59 85 68 4f";
        pub const CLIENT_APP_RECORD: &str = "
            17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea
            42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b
            62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4";
        pub const SERVER_APP_RECORD: &str = "
            17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc
            32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8
            fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d";
        pub const CLIENT_ALERT_RECORD: &str = "17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3";
        pub const SERVER_ALERT_RECORD: &str = "17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9";
    }

    fn secret(hex: &str) -> Secret {
        Secret::new(&h(hex)).expect("secret")
    }

    #[test]
    fn rfc8448_traffic_keys_and_ivs() {
        let suite = suite_info(0x1301).expect("suite");
        for (sec, key, iv) in [
            (rfc8448::S_HS, rfc8448::S_HS_KEY, rfc8448::S_HS_IV),
            (rfc8448::C_HS, rfc8448::C_HS_KEY, rfc8448::C_HS_IV),
            (rfc8448::S_AP, rfc8448::S_AP_KEY, rfc8448::S_AP_IV),
            (rfc8448::C_AP, rfc8448::C_AP_KEY, rfc8448::C_AP_IV),
        ] {
            let mut k = [0u8; 16];
            let mut v = [0u8; 12];
            assert!(hkdf_expand_label(suite.hash, &h(sec), b"key", b"", &mut k));
            assert!(hkdf_expand_label(suite.hash, &h(sec), b"iv", b"", &mut v));
            assert_eq!((k.to_vec(), v.to_vec()), (h(key), h(iv)));
        }
    }

    fn split(record: &str) -> ([u8; 5], Vec<u8>) {
        let r = h(record);
        let hdr: [u8; 5] = r[..5].try_into().unwrap_or([0; 5]);
        (hdr, r[5..].to_vec())
    }

    #[test]
    fn rfc8448_application_data_records_open() {
        let suite = suite_info(0x1301).expect("suite");
        let mut out = Vec::new();
        let want: Vec<u8> = (0u8..50).chain([23]).collect();
        for (sec, rec) in [(rfc8448::C_AP, rfc8448::CLIENT_APP_RECORD), (rfc8448::S_AP, rfc8448::SERVER_APP_RECORD)] {
            let key = RecordKey::tls13(&suite, &secret(sec)).expect("key");
            let (hdr, body) = split(rec);
            // The server's app record follows its NewSessionTicket (seq 0).
            let seq = if sec == rfc8448::S_AP { 1 } else { 0 };
            assert_eq!(key.open(seq, &hdr, &body, &mut out), Ok(51));
            assert_eq!(out[..51], want);
            // Another sequence number fails the tag, leaving the input intact.
            out.fill(0);
            assert_eq!(key.open(seq + 1, &hdr, &body, &mut out), Err(OpenError::BadTag));
            assert_eq!(key.open(seq, &hdr, &body, &mut out), Ok(51));
            assert_eq!(out[..51], want);
        }
        // close_notify alerts: inner plaintext 01 00 15.
        for (sec, rec, seq) in
            [(rfc8448::C_AP, rfc8448::CLIENT_ALERT_RECORD, 1), (rfc8448::S_AP, rfc8448::SERVER_ALERT_RECORD, 2)]
        {
            let key = RecordKey::tls13(&suite, &secret(sec)).expect("key");
            let (hdr, body) = split(rec);
            assert_eq!(key.open(seq, &hdr, &body, &mut out), Ok(3));
            assert_eq!(out[..3], [1, 0, 21]);
        }
    }

    // RFC 5246 publishes no PRF vectors; the IETF TLS list's widely used
    // "TLS 1.2 PRF test vectors" (SHA-256, secret 9bbe436ba940f017b17652849a71db35,
    // seed a0ba9f936cda311827a6f796ffd5198c, label "test label", 100 bytes)
    // are checked here.
    #[test]
    fn tls12_prf_sha256_vector() {
        let mut out = [0u8; 100];
        prf(
            HashKind::Sha256,
            &h("9bbe436ba940f017b17652849a71db35"),
            b"test label",
            &[&h("a0ba9f936cda311827a6f796ffd5198c")],
            &mut out,
        );
        assert_eq!(
            out.to_vec(),
            h(
                "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"
            )
        );
    }
}
