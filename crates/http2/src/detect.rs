//! Telling HTTP/2 apart: the client preface, and h2c by HTTP/1.1 Upgrade.

use crate::frame::PREFACE;

/// What the first client bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniff {
    /// They begin with the connection preface.
    H2,
    /// They do not.
    NotH2,
    /// Too few bytes to tell (a prefix of the preface).
    NeedMore,
}

/// Whether `first` (the first client bytes of a connection) begins with
/// the HTTP/2 connection preface.
pub fn sniff_preface(first: &[u8]) -> Sniff {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Sniff::NotH2
    } else if n < PREFACE.len() {
        Sniff::NeedMore
    } else {
        Sniff::H2
    }
}

/// Whether an HTTP/1.1 request with these fields asks to switch to h2c
/// (RFC 7540 3.2): an `Upgrade` field naming `h2c` and exactly one
/// `HTTP2-Settings` field. Returns the decoded settings payload.
pub fn h2c_upgrade_request<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Option<Vec<u8>> {
    let mut upgrade = false;
    let mut settings = None;
    let mut n_settings = 0;
    for (n, v) in fields {
        if n.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= tokens(v).any(|t| t.eq_ignore_ascii_case(b"h2c"));
        } else if n.eq_ignore_ascii_case(b"http2-settings") {
            n_settings += 1;
            settings = decode_base64url(v);
        }
    }
    if upgrade && n_settings == 1 { settings } else { None }
}

/// Whether a response with this status and these fields accepts the
/// switch to h2c: `101` with `Upgrade: h2c`. The caller's HTTP/1 parser
/// then hands the rest of the connection to [`crate::H2Conn`] with
/// [`crate::Start::Upgraded`]: client bytes after the upgrading request,
/// server bytes after this response's head.
pub fn h2c_upgrade_accepted<'a>(status: u16, fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    status == 101
        && fields
            .into_iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(b"upgrade") && tokens(v).any(|t| t.eq_ignore_ascii_case(b"h2c")))
}

fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(|t| t.trim_ascii())
}

/// Decodes base64url without padding (RFC 4648 5), as HTTP2-Settings is
/// sent (trailing `=` and surrounding spaces are tolerated). `None` on any
/// other character.
pub fn decode_base64url(v: &[u8]) -> Option<Vec<u8>> {
    let v = v.trim_ascii();
    let v = v.strip_suffix(b"==").or_else(|| v.strip_suffix(b"=")).unwrap_or(v);
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in v {
        let x = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(x);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface() {
        assert_eq!(sniff_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04"), Sniff::H2);
        assert_eq!(sniff_preface(b"PRI * HTTP/2"), Sniff::NeedMore);
        assert_eq!(sniff_preface(b""), Sniff::NeedMore);
        assert_eq!(sniff_preface(b"GET / HTTP/1.1\r\n"), Sniff::NotH2);
        assert_eq!(sniff_preface(b"PRI * HTTP/1.1\r\n"), Sniff::NotH2);
    }

    #[test]
    fn upgrade_requests() {
        // curl 7.88's HTTP2-Settings: max concurrent streams 100, initial
        // window 33554432, push disabled (RFC 4648 base64url).
        let f: Vec<(&[u8], &[u8])> = vec![
            (b"Host", b"h"),
            (b"Connection", b"Upgrade, HTTP2-Settings"),
            (b"Upgrade", b"h2c"),
            (b"HTTP2-Settings", b"AAMAAABkAAQCAAAAAAIAAAAA"),
        ];
        assert_eq!(h2c_upgrade_request(f.clone()), Some(vec![0, 3, 0, 0, 0, 0x64, 0, 4, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0]));
        // No Upgrade: h2c, or two HTTP2-Settings: not an h2c upgrade.
        assert_eq!(h2c_upgrade_request(f[..1].iter().copied().chain([f[3]])), None);
        let twice: Vec<_> = f.iter().copied().chain([f[3]]).collect();
        assert_eq!(h2c_upgrade_request(twice), None);
        assert!(h2c_upgrade_accepted(101, [(&b"upgrade"[..], &b"h2c"[..])]));
        assert!(!h2c_upgrade_accepted(101, [(&b"upgrade"[..], &b"websocket"[..])]));
        assert!(!h2c_upgrade_accepted(200, [(&b"upgrade"[..], &b"h2c"[..])]));
    }

    #[test]
    fn base64url() {
        // RFC 4648 10 test vectors (unpadded).
        for (enc, dec) in
            [("", ""), ("Zg", "f"), ("Zm8", "fo"), ("Zm9v", "foo"), ("Zm9vYg", "foob"), ("Zm9vYmE", "fooba")]
        {
            assert_eq!(decode_base64url(enc.as_bytes()).unwrap(), dec.as_bytes(), "{enc}");
        }
        assert_eq!(decode_base64url(b"Zm9vYmFy==").unwrap(), b"foobar");
        assert_eq!(decode_base64url(b"-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_base64url(b"a b"), None);
    }
}
