//! Request targets as Zeek logs them: percent-decoded, with bytes that are
//! not printable ASCII escaped as `\xNN`.

/// Percent-decodes `raw` and escapes non-printable bytes (and backslashes
/// that would be ambiguous) as `\xNN`, the way Zeek's http.log writes `uri`.
pub fn zeek_decode(raw: &[u8]) -> String {
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
    escape(&bytes)
}

/// Escapes bytes outside printable ASCII as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
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
}
