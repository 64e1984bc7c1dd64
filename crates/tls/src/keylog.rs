//! Key logs: the NSS key log format (`SSLKEYLOGFILE`) and the pcapng
//! Decryption Secrets Block, both feeding one [`KeyStore`] looked up by
//! client random.
//!
//! A key log line is `LABEL <client random, 64 hex> <secret, hex>`
//! (NSS's format, written by browsers, curl, OpenSSL, Go, rustls, Java
//! agents). The labels pov uses:
//!
//! | label | TLS | what it is |
//! |---|---|---|
//! | `CLIENT_RANDOM` | 1.2 | the 48-byte master secret |
//! | `CLIENT_HANDSHAKE_TRAFFIC_SECRET` | 1.3 | client handshake traffic secret |
//! | `SERVER_HANDSHAKE_TRAFFIC_SECRET` | 1.3 | server handshake traffic secret |
//! | `CLIENT_TRAFFIC_SECRET_0` | 1.3 | first client application traffic secret |
//! | `SERVER_TRAFFIC_SECRET_0` | 1.3 | first server application traffic secret |
//!
//! `CLIENT_EARLY_TRAFFIC_SECRET`, `EXPORTER_SECRET` and
//! `EARLY_EXPORTER_SECRET` are recognised and counted but not kept (0-RTT
//! data is not decrypted; exporters protect nothing on the wire). Lines
//! starting with `#` and blank lines are comments. Anything else is a bad
//! line: counted with its line number, never fatal.
//!
//! Key material is secret: [`Secret`] has no `Debug` of its bytes, no
//! `Display`, is wiped when dropped, and nothing in this crate writes it
//! anywhere.

use std::collections::HashMap;
use std::fmt;

/// A client random: the 32 bytes of a ClientHello that name a TLS
/// connection in key logs. Public on the wire, not a secret.
pub type ClientRandom = [u8; 32];

/// Secret key material (a TLS 1.2 master secret or a TLS 1.3 traffic
/// secret, at most 48 bytes). Its `Debug` prints only its length; it is
/// overwritten with zeros when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: [u8; 48],
    len: u8,
}

impl Secret {
    /// A secret from its bytes, `None` when longer than 48 bytes or empty.
    pub fn new(bytes: &[u8]) -> Option<Secret> {
        if bytes.is_empty() || bytes.len() > 48 {
            return None;
        }
        let mut s = Secret { bytes: [0; 48], len: bytes.len() as u8 };
        s.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(s)
    }

    /// The secret's bytes (for key derivation inside this crate's callers
    /// and tests; never for output).
    pub fn expose(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a secret has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes, redacted>)", self.len)
    }
}

impl Drop for Secret {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        for b in self.bytes.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference; a
            // volatile write keeps the compiler from dropping the wipe.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// Which secret a key log line carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// `CLIENT_RANDOM`: TLS 1.2 master secret.
    MasterSecret,
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    ClientHandshake,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    ServerHandshake,
    /// `CLIENT_TRAFFIC_SECRET_0`.
    ClientTraffic0,
    /// `SERVER_TRAFFIC_SECRET_0`.
    ServerTraffic0,
}

impl KeyKind {
    /// The key log label.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::MasterSecret => "CLIENT_RANDOM",
            KeyKind::ClientHandshake => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            KeyKind::ServerHandshake => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            KeyKind::ClientTraffic0 => "CLIENT_TRAFFIC_SECRET_0",
            KeyKind::ServerTraffic0 => "SERVER_TRAFFIC_SECRET_0",
        }
    }

    fn index(self) -> usize {
        match self {
            KeyKind::MasterSecret => 0,
            KeyKind::ClientHandshake => 1,
            KeyKind::ServerHandshake => 2,
            KeyKind::ClientTraffic0 => 3,
            KeyKind::ServerTraffic0 => 4,
        }
    }
}

/// Labels recognised and counted but not kept.
const IGNORED_LABELS: [&str; 3] = ["CLIENT_EARLY_TRAFFIC_SECRET", "EXPORTER_SECRET", "EARLY_EXPORTER_SECRET"];

/// The secrets known for one client random.
#[derive(Clone, Default)]
pub struct SessionKeys {
    secrets: [Option<Secret>; 5],
}

impl SessionKeys {
    /// The secret of one kind, if logged.
    pub fn get(&self, kind: KeyKind) -> Option<&Secret> {
        self.secrets[kind.index()].as_ref()
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = [
            KeyKind::MasterSecret,
            KeyKind::ClientHandshake,
            KeyKind::ServerHandshake,
            KeyKind::ClientTraffic0,
            KeyKind::ServerTraffic0,
        ]
        .into_iter()
        .filter(|k| self.get(*k).is_some())
        .map(KeyKind::label)
        .collect();
        write!(f, "SessionKeys({kinds:?}, redacted)")
    }
}

/// Why a key log line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadLineKind {
    /// Not three space-separated fields.
    Fields,
    /// A label pov does not know.
    UnknownLabel,
    /// The client random is not 64 hex digits.
    ClientRandom,
    /// The secret is not hex, or has the wrong length for its label
    /// (48 bytes for `CLIENT_RANDOM`, 32 or 48 for TLS 1.3 secrets).
    Secret,
    /// Not UTF-8 text.
    NotText,
}

impl fmt::Display for BadLineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadLineKind::Fields => "not three fields",
            BadLineKind::UnknownLabel => "unknown label",
            BadLineKind::ClientRandom => "client random is not 64 hex digits",
            BadLineKind::Secret => "secret is not hex of the right length",
            BadLineKind::NotText => "not UTF-8 text",
        })
    }
}

/// A refused key log line: where and why (never its content: it may hold
/// a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in its source.
    pub line: u64,
    /// Why.
    pub kind: BadLineKind,
}

/// At most this many bad lines are kept with their numbers; the rest are
/// only counted.
pub const MAX_BAD_LINES_KEPT: usize = 100;

/// What loading key logs found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLogStats {
    /// Lines read (including comments and blank lines).
    pub lines: u64,
    /// Comments and blank lines.
    pub comments: u64,
    /// Secrets kept, per label: `CLIENT_RANDOM`, client/server handshake,
    /// client/server traffic 0.
    pub secrets: [u64; 5],
    /// Lines whose label is recognised but not used (early traffic,
    /// exporter secrets).
    pub ignored: u64,
    /// Lines repeating a secret already known with the same value.
    pub duplicates: u64,
    /// Lines giving another value for a secret already known (the first
    /// value is kept).
    pub conflicts: u64,
    /// Bad lines, counted.
    pub bad: u64,
    /// The first [`MAX_BAD_LINES_KEPT`] bad lines with their numbers.
    pub bad_lines: Vec<BadLine>,
    /// Decryption Secrets Blocks read, and those refused (truncated, or
    /// another secrets type than TLS key log).
    pub dsb_blocks: u64,
    /// Decryption Secrets Blocks that could not be used.
    pub dsb_refused: u64,
}

impl KeyLogStats {
    /// Secrets kept, all labels together.
    pub fn kept(&self) -> u64 {
        self.secrets.iter().sum()
    }

    fn bad_line(&mut self, line: u64, kind: BadLineKind) {
        self.bad += 1;
        if self.bad_lines.len() < MAX_BAD_LINES_KEPT {
            self.bad_lines.push(BadLine { line, kind });
        }
    }
}

/// Secrets from key logs, looked up by client random.
#[derive(Default)]
pub struct KeyStore {
    map: HashMap<ClientRandom, SessionKeys>,
    stats: KeyLogStats,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyStore({} client randoms, redacted)", self.map.len())
    }
}

/// The pcapng secrets type of a TLS key log in a Decryption Secrets
/// Block ("TLSK").
pub const DSB_TLS_KEY_LOG: u32 = 0x544c_534b;

impl KeyStore {
    /// An empty store.
    pub fn new() -> KeyStore {
        KeyStore::default()
    }

    /// Number of client randoms with at least one secret.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no secret is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The secrets of one connection.
    pub fn get(&self, client_random: &ClientRandom) -> Option<&SessionKeys> {
        self.map.get(client_random)
    }

    /// What every load so far found.
    pub fn stats(&self) -> &KeyLogStats {
        &self.stats
    }

    /// Adds one secret. Returns false when a different value was already
    /// known (the first is kept).
    pub fn insert(&mut self, client_random: ClientRandom, kind: KeyKind, secret: Secret) -> bool {
        let slot = &mut self.map.entry(client_random).or_default().secrets[kind.index()];
        match slot {
            Some(old) if *old == secret => {
                self.stats.duplicates += 1;
                true
            }
            Some(_) => {
                self.stats.conflicts += 1;
                false
            }
            None => {
                *slot = Some(secret);
                self.stats.secrets[kind.index()] += 1;
                true
            }
        }
    }

    /// Reads NSS key log text (a whole file or a Decryption Secrets
    /// Block's content). Bad lines are counted in [`KeyStore::stats`] with
    /// their line numbers; nothing here fails.
    pub fn load(&mut self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        // A final newline ends the last line; it does not start another.
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
            let line_no = i as u64 + 1;
            self.stats.lines += 1;
            self.load_line(line_no, raw);
        }
    }

    fn load_line(&mut self, line_no: u64, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            self.stats.bad_line(line_no, BadLineKind::NotText);
            return;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            self.stats.comments += 1;
            return;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(label), Some(random), Some(secret), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            self.stats.bad_line(line_no, BadLineKind::Fields);
            return;
        };
        let kind = match label {
            "CLIENT_RANDOM" => KeyKind::MasterSecret,
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => KeyKind::ClientHandshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" => KeyKind::ServerHandshake,
            "CLIENT_TRAFFIC_SECRET_0" => KeyKind::ClientTraffic0,
            "SERVER_TRAFFIC_SECRET_0" => KeyKind::ServerTraffic0,
            l if IGNORED_LABELS.contains(&l) => {
                self.stats.ignored += 1;
                return;
            }
            _ => {
                self.stats.bad_line(line_no, BadLineKind::UnknownLabel);
                return;
            }
        };
        let mut cr = [0u8; 32];
        if random.len() != 64 || !decode_hex(random, &mut cr) {
            self.stats.bad_line(line_no, BadLineKind::ClientRandom);
            return;
        }
        let mut buf = [0u8; 48];
        let n = secret.len() / 2;
        let len_ok = match kind {
            KeyKind::MasterSecret => n == 48,
            _ => n == 32 || n == 48,
        };
        if secret.len() % 2 != 0 || !len_ok || !decode_hex(secret, &mut buf[..n]) {
            self.stats.bad_line(line_no, BadLineKind::Secret);
            return;
        }
        let s = Secret::new(&buf[..n]);
        buf.fill(0);
        if let Some(s) = s {
            self.insert(cr, kind, s);
        }
    }

    /// Reads the body of a pcapng Decryption Secrets Block (block type
    /// 0x0000000A): everything between the block's total length and its
    /// trailing copy, that is secrets type (u32), secrets length (u32),
    /// the secrets, padding to 32 bits, options. `big_endian` is the
    /// byte order of the section (from its Section Header Block). A TLS
    /// key log ([`DSB_TLS_KEY_LOG`]) is loaded like a file; other secrets
    /// types and truncated blocks are counted as refused.
    pub fn load_dsb_body(&mut self, body: &[u8], big_endian: bool) {
        self.stats.dsb_blocks += 1;
        let word = |b: &[u8]| -> Option<u32> {
            let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
            Some(if big_endian { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
        };
        let (Some(kind), Some(len)) = (word(body), body.get(4..).and_then(word)) else {
            self.stats.dsb_refused += 1;
            return;
        };
        let Some(data) = body.get(8..).and_then(|rest| rest.get(..len as usize)) else {
            self.stats.dsb_refused += 1;
            return;
        };
        if kind != DSB_TLS_KEY_LOG {
            self.stats.dsb_refused += 1;
            return;
        }
        self.load(data);
    }
}

/// Decodes hex digits into `out` (exactly `out.len()` bytes).
fn decode_hex(s: &str, out: &mut [u8]) -> bool {
    let s = s.as_bytes();
    if s.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";

    fn cr() -> ClientRandom {
        let mut c = [0u8; 32];
        assert!(decode_hex(CR, &mut c));
        c
    }

    #[test]
    fn every_label_comments_and_bad_lines_with_numbers() {
        let ms = "ab".repeat(48);
        let ts = "cd".repeat(32);
        let text = format!(
            "# SSL/TLS secrets log file, generated by NSS\n\
             \n\
             CLIENT_RANDOM {CR} {ms}\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {CR} {ts}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {CR} {ts}\r\n\
             CLIENT_TRAFFIC_SECRET_0 {CR} {ts}\n\
             SERVER_TRAFFIC_SECRET_0 {CR} {}\n\
             EXPORTER_SECRET {CR} {ts}\n\
             CLIENT_EARLY_TRAFFIC_SECRET {CR} {ts}\n\
             CLIENT_RANDOM {CR}\n\
             RSA {CR} {ms}\n\
             CLIENT_RANDOM abcd {ms}\n\
             CLIENT_RANDOM {CR} {ts}\n\
             CLIENT_RANDOM {CR} {ms}\n\
             CLIENT_RANDOM {CR} {}\n\
             SERVER_TRAFFIC_SECRET_0 {CR} zz{}\n",
            "ef".repeat(48),
            "01".repeat(48),
            "0".repeat(62),
        );
        let mut ks = KeyStore::new();
        ks.load(text.as_bytes());
        let st = ks.stats();
        assert_eq!(st.lines, 16);
        assert_eq!(st.comments, 2);
        assert_eq!(st.secrets, [1, 1, 1, 1, 1]);
        assert_eq!(st.ignored, 2);
        assert_eq!(st.duplicates, 1);
        assert_eq!(st.conflicts, 1);
        assert_eq!(st.bad, 5);
        let got: Vec<(u64, BadLineKind)> = st.bad_lines.iter().map(|b| (b.line, b.kind)).collect();
        assert_eq!(
            got,
            vec![
                (10, BadLineKind::Fields),
                (11, BadLineKind::UnknownLabel),
                (12, BadLineKind::ClientRandom),
                (13, BadLineKind::Secret),
                (16, BadLineKind::Secret),
            ]
        );
        let keys = ks.get(&cr()).expect("keys for the client random");
        assert_eq!(keys.get(KeyKind::MasterSecret).map(Secret::expose), Some(&[0xab; 48][..]));
        assert_eq!(keys.get(KeyKind::ServerTraffic0).map(Secret::len), Some(48));
        assert_eq!(keys.get(KeyKind::ClientTraffic0).map(Secret::expose), Some(&[0xcd; 32][..]));
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let mut ks = KeyStore::new();
        ks.load(format!("CLIENT_RANDOM {CR} {}\n", "ab".repeat(48)).as_bytes());
        let keys = ks.get(&cr()).expect("keys");
        let shown = format!("{ks:?} {keys:?} {:?}", keys.get(KeyKind::MasterSecret));
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    fn dsb(kind: u32, data: &[u8], be: bool) -> Vec<u8> {
        let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut b = Vec::new();
        b.extend_from_slice(&w(kind));
        b.extend_from_slice(&w(data.len() as u32));
        b.extend_from_slice(data);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    #[test]
    fn decryption_secrets_block_both_byte_orders() {
        let line = format!("CLIENT_TRAFFIC_SECRET_0 {CR} {}\n", "11".repeat(32));
        for be in [false, true] {
            let mut ks = KeyStore::new();
            ks.load_dsb_body(&dsb(DSB_TLS_KEY_LOG, line.as_bytes(), be), be);
            assert_eq!(ks.stats().secrets[3], 1, "big endian {be}");
            assert_eq!(ks.stats().dsb_refused, 0);
            // WireGuard keys (another secrets type) and a truncated block.
            ks.load_dsb_body(&dsb(0x5747_4b4c, b"x", be), be);
            let mut cut = dsb(DSB_TLS_KEY_LOG, line.as_bytes(), be);
            cut.truncate(20);
            ks.load_dsb_body(&cut, be);
            assert_eq!((ks.stats().dsb_blocks, ks.stats().dsb_refused), (3, 2));
        }
    }
}
