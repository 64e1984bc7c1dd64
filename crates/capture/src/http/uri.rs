//! Request targets as Zeek logs them: percent-decoded, with bytes that are
//! not printable ASCII escaped as `\xNN`.

/// Percent-decodes `raw` and escapes non-printable bytes (and backslashes
/// that would be ambiguous) as `\xNN`, the way Zeek's http.log writes `uri`.
pub fn zeek_decode(raw: &[u8]) -> String {
    let mut out = String::new();
    zeek_decode_into(raw, &mut out);
    out
}

/// Appends [`zeek_decode`]`(raw)` to `out`.
pub fn zeek_decode_into(raw: &[u8], out: &mut String) {
    // Most targets hold no `%`: nothing to decode.
    if memchr::memchr(b'%', raw).is_none() {
        return escape_into(raw, out);
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (raw.get(i + 1).and_then(|c| hex(*c)), raw.get(i + 2).and_then(|c| hex(*c)))
        {
            bytes.push(h << 4 | l);
            i += 3;
            continue;
        }
        bytes.push(b);
        i += 1;
    }
    escape_into(&bytes, out)
}

/// Escapes bytes outside printable ASCII as `\xNN` (lower-case hex).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    escape_into(bytes, &mut out);
    out
}

/// Appends [`escape`]`(bytes)` to `out`.
pub fn escape_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        // A run of printable ASCII is copied whole.
        let n = rest.iter().position(|b| !(0x20..0x7f).contains(b)).unwrap_or(rest.len());
        out.push_str(std::str::from_utf8(&rest[..n]).unwrap_or_default());
        if let Some(&b) = rest.get(n) {
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        rest = rest.get(n + 1..).unwrap_or_default();
    }
}

fn hex(c: u8) -> Option<u8> {
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

    #[test]
    fn decodes_like_zeek() {
        assert_eq!(zeek_decode(b"/a%20b?x=%27or%271%27%3D%271"), "/a b?x='or'1'='1");
        assert_eq!(zeek_decode(b"/%zz%4"), "/%zz%4");
        assert_eq!(zeek_decode(b"/%00%ff"), "/\\x00\\xff");
        assert_eq!(zeek_decode("/é".as_bytes()), "/\\xc3\\xa9");
    }

    /// Escaping as it was written first, a byte at a time.
    fn escape_bytewise(bytes: &[u8]) -> String {
        let mut out = String::new();
        for &b in bytes {
            if (0x20..0x7f).contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }

    /// Zeek's decoding as it was written first, a byte at a time.
    fn zeek_bytewise(raw: &[u8]) -> String {
        let mut d = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            match (raw[i], raw.get(i + 1).and_then(|c| hex(*c)), raw.get(i + 2).and_then(|c| hex(*c))) {
                (b'%', Some(h), Some(l)) => {
                    d.push(h << 4 | l);
                    i += 3;
                }
                (b, _, _) => {
                    d.push(b);
                    i += 1;
                }
            }
        }
        escape_bytewise(&d)
    }

    #[test]
    fn escapes_runs_as_byte_by_byte() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len % 40)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly printable, some of every other byte.
                    if x.is_multiple_of(4) { (x >> 8) as u8 } else { b' ' + (x >> 8) as u8 % 95 }
                })
                .collect();
            assert_eq!(escape(&bytes), escape_bytewise(&bytes), "{bytes:?}");
            // With `%` and hex digits here and there: decoded as before.
            let mut pct = bytes.clone();
            for (i, ins) in [(len % 7, &b"%4"[..]), (len % 5, b"%"), (len % 3, b"%e9"), (len % 11, b"%zz")] {
                let at = i.min(pct.len());
                pct.splice(at..at, ins.iter().copied());
            }
            assert_eq!(zeek_decode(&pct), zeek_bytewise(&pct), "{pct:?}");
            assert_eq!(zeek_decode(&bytes), zeek_bytewise(&bytes), "{bytes:?}");
        }
        for b in 0..=255u8 {
            assert_eq!(escape(&[b, b'a', b]), escape_bytewise(&[b, b'a', b]));
        }
        assert_eq!(escape(b""), "");
        assert_eq!(zeek_decode(b"/plain path?x=1"), "/plain path?x=1");
    }
}
