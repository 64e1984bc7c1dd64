//! TLS wire formats: record headers, handshake messages (ClientHello,
//! ServerHello), alerts (RFC 5246, RFC 8446).
//!
//! Parsers here take whole messages and never panic: a message that does
//! not parse gives `None` and is counted by the caller.

use std::fmt;

/// Content type of a record.
pub mod content {
    /// change_cipher_spec.
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert.
    pub const ALERT: u8 = 21;
    /// handshake.
    pub const HANDSHAKE: u8 = 22;
    /// application_data.
    pub const APPLICATION_DATA: u8 = 23;
}

/// Handshake message types pov looks at.
pub mod handshake {
    /// client_hello.
    pub const CLIENT_HELLO: u8 = 1;
    /// server_hello (also HelloRetryRequest in TLS 1.3).
    pub const SERVER_HELLO: u8 = 2;
    /// new_session_ticket.
    pub const NEW_SESSION_TICKET: u8 = 4;
    /// encrypted_extensions (TLS 1.3).
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    /// finished.
    pub const FINISHED: u8 = 20;
    /// key_update (TLS 1.3).
    pub const KEY_UPDATE: u8 = 24;
}

/// Record header length.
pub const HEADER_LEN: usize = 5;
/// Largest record body pov accepts while in step (RFC 5246: 2^14 + 2048).
pub const MAX_BODY: usize = (1 << 14) + 2048;
/// Largest record body accepted when searching for a record boundary
/// after a loss (RFC 8446: 2^14 + 256; every AEAD record of TLS 1.2 fits
/// too).
pub const MAX_BODY_RESYNC: usize = (1 << 14) + 256;

/// A protocol version on the wire (0x0303 = TLS 1.2, 0x0304 = TLS 1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16);

impl Version {
    /// TLS 1.0.
    pub const TLS10: Version = Version(0x0301);
    /// TLS 1.1.
    pub const TLS11: Version = Version(0x0302);
    /// TLS 1.2.
    pub const TLS12: Version = Version(0x0303);
    /// TLS 1.3.
    pub const TLS13: Version = Version(0x0304);
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0x0300 => f.write_str("SSL 3.0"),
            0x0301 => f.write_str("TLS 1.0"),
            0x0302 => f.write_str("TLS 1.1"),
            0x0303 => f.write_str("TLS 1.2"),
            0x0304 => f.write_str("TLS 1.3"),
            v => write!(f, "0x{v:04x}"),
        }
    }
}

/// A record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Content type.
    pub ctype: u8,
    /// Record-layer version.
    pub version: u16,
    /// Body length.
    pub len: usize,
}

impl Header {
    /// Reads a header from the first 5 bytes.
    pub fn read(b: &[u8]) -> Option<Header> {
        let b: &[u8; 5] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            ctype: b[0],
            version: u16::from_be_bytes([b[1], b[2]]),
            len: u16::from_be_bytes([b[3], b[4]]) as usize,
        })
    }

    /// A header a TLS 1.0-1.3 peer could send: content type 20-23,
    /// version 0x0301-0x0304, body length at most `max_body`.
    pub fn plausible(&self, max_body: usize) -> bool {
        (content::CHANGE_CIPHER_SPEC..=content::APPLICATION_DATA).contains(&self.ctype)
            && (0x0301..=0x0304).contains(&self.version)
            && self.len <= max_body
    }
}

/// A ClientHello, as far as pov needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// legacy_version (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// The client random (names the connection in key logs; public).
    pub random: [u8; 32],
    /// Cipher suites offered, in the client's order (GREASE values kept).
    pub cipher_suites: Vec<u16>,
    /// server_name (SNI), the first host_name entry.
    pub sni: Option<String>,
    /// ALPN protocols offered, in order.
    pub alpn: Vec<String>,
    /// supported_versions offered (empty when the extension is absent).
    pub versions: Vec<u16>,
}

/// A ServerHello (or HelloRetryRequest).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// legacy_version.
    pub legacy_version: u16,
    /// The server random.
    pub random: [u8; 32],
    /// The selected suite.
    pub cipher_suite: u16,
    /// supported_versions' selected version, if sent (TLS 1.3).
    pub selected_version: Option<u16>,
    /// The ALPN protocol selected (TLS 1.2 puts it here; TLS 1.3 in
    /// EncryptedExtensions).
    pub alpn: Option<String>,
    /// A HelloRetryRequest (RFC 8446 section 4.1.3: the special random).
    pub hello_retry: bool,
    /// encrypt_then_mac (RFC 7366) accepted: TLS 1.2 CBC records carry
    /// their MAC after the ciphertext.
    pub encrypt_then_mac: bool,
}

impl ServerHello {
    /// The version the connection uses.
    pub fn version(&self) -> Version {
        Version(self.selected_version.unwrap_or(self.legacy_version))
    }
}

/// SHA-256("HelloRetryRequest"), the random of a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A cursor over a message: every read is checked.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// Extension numbers.
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_ENCRYPT_THEN_MAC: u16 = 22;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Parses a ClientHello body (after the 4-byte handshake header).
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut c = Cur { b: body };
    let mut ch = ClientHello { legacy_version: c.u16()?, ..ClientHello::default() };
    ch.random.copy_from_slice(c.take(32)?);
    c.vec8()?; // legacy_session_id
    let suites = c.vec16()?;
    ch.cipher_suites = suites.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
    c.vec8()?; // compression methods
    if c.b.is_empty() {
        return Some(ch); // no extensions (old clients)
    }
    let mut exts = Cur { b: c.vec16()? };
    while !exts.b.is_empty() {
        let kind = exts.u16()?;
        let mut data = Cur { b: exts.vec16()? };
        match kind {
            EXT_SERVER_NAME => {
                let mut list = Cur { b: data.vec16()? };
                while !list.b.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?;
                    if name_type == 0 && ch.sni.is_none() {
                        ch.sni = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            EXT_ALPN => ch.alpn = alpn_list(&mut data)?,
            EXT_SUPPORTED_VERSIONS => {
                ch.versions = data.vec8()?.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            }
            _ => {}
        }
    }
    Some(ch)
}

fn alpn_list(data: &mut Cur<'_>) -> Option<Vec<String>> {
    let mut list = Cur { b: data.vec16()? };
    let mut out = Vec::new();
    while !list.b.is_empty() {
        out.push(String::from_utf8_lossy(list.vec8()?).into_owned());
    }
    Some(out)
}

/// Parses a ServerHello body (after the 4-byte handshake header).
pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut c = Cur { b: body };
    let mut sh = ServerHello { legacy_version: c.u16()?, ..ServerHello::default() };
    sh.random.copy_from_slice(c.take(32)?);
    sh.hello_retry = sh.random == HRR_RANDOM;
    c.vec8()?; // legacy_session_id_echo
    sh.cipher_suite = c.u16()?;
    c.u8()?; // compression
    if c.b.is_empty() {
        return Some(sh);
    }
    let mut exts = Cur { b: c.vec16()? };
    while !exts.b.is_empty() {
        let kind = exts.u16()?;
        let mut data = Cur { b: exts.vec16()? };
        match kind {
            EXT_SUPPORTED_VERSIONS => sh.selected_version = Some(data.u16()?),
            EXT_ALPN => sh.alpn = alpn_list(&mut data)?.into_iter().next(),
            EXT_ENCRYPT_THEN_MAC => sh.encrypt_then_mac = true,
            _ => {}
        }
    }
    Some(sh)
}

/// The ALPN protocol selected in an EncryptedExtensions body (TLS 1.3).
pub fn parse_encrypted_extensions_alpn(body: &[u8]) -> Option<String> {
    let mut exts = Cur { b: Cur { b: body }.vec16()? };
    while !exts.b.is_empty() {
        let kind = exts.u16()?;
        let mut data = Cur { b: exts.vec16()? };
        if kind == EXT_ALPN {
            return alpn_list(&mut data)?.into_iter().next();
        }
    }
    None
}

/// Alert level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertLevel {
    /// 1.
    Warning,
    /// 2.
    Fatal,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for AlertLevel {
    fn from(v: u8) -> AlertLevel {
        match v {
            1 => AlertLevel::Warning,
            2 => AlertLevel::Fatal,
            v => AlertLevel::Unknown(v),
        }
    }
}

/// An alert: level and description number (RFC 8446 section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Alert {
    /// Level (TLS 1.3 ignores it: every alert but close_notify and
    /// user_canceled is fatal there).
    pub level: AlertLevel,
    /// Description number.
    pub description: u8,
}

impl Alert {
    /// Reads an alert's two bytes.
    pub fn read(b: &[u8]) -> Option<Alert> {
        match b {
            [l, d] => Some(Alert { level: AlertLevel::from(*l), description: *d }),
            _ => None,
        }
    }

    /// close_notify or user_canceled: an orderly end, not a failure.
    pub fn is_closure(&self) -> bool {
        matches!(self.description, 0 | 90)
    }

    /// An error alert: fatal level, or (TLS 1.3) any description but
    /// close_notify and user_canceled.
    pub fn is_error(&self) -> bool {
        !self.is_closure() && (self.level != AlertLevel::Warning || self.description != 100)
    }

    /// The description's name in the RFCs ("handshake_failure").
    pub fn name(&self) -> &'static str {
        alert_name(self.description)
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            AlertLevel::Warning => "warning",
            AlertLevel::Fatal => "fatal",
            AlertLevel::Unknown(_) => "unknown-level",
        };
        write!(f, "{level} {} ({})", self.name(), self.description)
    }
}

/// The name of an alert description.
pub fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        _ => "unknown",
    }
}

/// A certificate alert (bad_certificate .. unknown_ca, certificate_required).
pub fn is_certificate_alert(d: u8) -> bool {
    matches!(d, 41..=46 | 48 | 111 | 113 | 114 | 116)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tests::{h, rfc8448};

    #[test]
    fn rfc8448_client_and_server_hello() {
        let rec = h(rfc8448::CLIENT_HELLO_RECORD);
        let hdr = Header::read(&rec).expect("header");
        assert_eq!(hdr, Header { ctype: 22, version: 0x0301, len: 196 });
        assert!(hdr.plausible(MAX_BODY_RESYNC));
        assert_eq!(rec[5], handshake::CLIENT_HELLO);
        let ch = parse_client_hello(&rec[9..]).expect("client hello");
        assert_eq!(ch.random.to_vec(), h(rfc8448::CLIENT_RANDOM));
        assert_eq!(ch.cipher_suites, vec![0x1301, 0x1303, 0x1302]);
        assert_eq!(ch.sni.as_deref(), Some("server"));
        assert_eq!(ch.versions, vec![0x0304]);
        assert!(ch.alpn.is_empty());

        let rec = h(rfc8448::SERVER_HELLO_RECORD);
        let sh = parse_server_hello(&rec[9..]).expect("server hello");
        assert_eq!(sh.cipher_suite, 0x1301);
        assert_eq!(sh.version(), Version::TLS13);
        assert_eq!(&sh.random[..4], &[0xa6, 0xaf, 0x06, 0xa4]);
        assert!(!sh.hello_retry);
        // Every truncation: refused, except the one that ends where the
        // extensions would start (a ServerHello without extensions).
        let body = &rec[9..];
        for n in 0..body.len() {
            let got = parse_server_hello(&body[..n]);
            assert_eq!(got.is_some(), n == 38, "length {n}");
        }
        let chrec = h(rfc8448::CLIENT_HELLO_RECORD);
        let body = &chrec[9..];
        let parsed: Vec<usize> = (0..body.len()).filter(|&n| parse_client_hello(&body[..n]).is_some()).collect();
        // 2 + 32 + 1 + 2+6 + 1+1 = 45: the end of compression methods.
        assert_eq!(parsed, vec![45]);
    }

    #[test]
    fn alerts_named_and_classified() {
        let a = Alert::read(&[2, 40]).expect("alert");
        assert_eq!(a.to_string(), "fatal handshake_failure (40)");
        assert!(a.is_error() && !a.is_closure());
        let c = Alert::read(&[1, 0]).expect("alert");
        assert!(c.is_closure() && !c.is_error());
        assert!(is_certificate_alert(48) && !is_certificate_alert(40));
        assert_eq!(Alert::read(&[2]), None);
    }
}
