//! URLs, query strings and form bodies: the values of secret parameters
//! (query, fragment, `;path` parameters, userinfo) become masks, and card
//! numbers anywhere in them are masked. Whatever is not masked is written
//! back byte for byte.

use crate::names::percent_decode;
use crate::{Masker, cards};

/// How deep URLs inside parameter values (`?next=https%3A...%3Ftoken%3D`)
/// are followed.
const NESTED: u8 = 3;

fn split_at_byte(s: &[u8], b: u8) -> (&[u8], Option<&[u8]>) {
    match memchr(b, s) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|c| *c == b)
}

/// Where the authority starts (after `scheme://` or `//`), if the URL has
/// one.
fn authority_start(s: &[u8]) -> Option<usize> {
    if s.starts_with(b"//") {
        return Some(2);
    }
    let first = *s.first()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let end = s.iter().position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-')))?;
    s[end..].starts_with(b"://").then_some(end + 3)
}

/// Masks the secrets of a URL: absolute (`http://u:p@h/p;k=v?q#f`),
/// scheme-relative, origin-form (`/p?q`) or a bare query (`?q`).
pub(crate) fn url(m: &Masker, u: &[u8], out: &mut Vec<u8>, depth: u8) {
    // Most targets have nothing a mask could take: no query, fragment,
    // `;` parameter, user info or escape, and no card number. Written
    // back whole, as the parts below would write them, after one look.
    if !u.iter().any(|c| matches!(c, b'?' | b'#' | b';' | b'@' | b'%')) && !cards::may_hold(u) {
        out.extend_from_slice(u);
        return;
    }
    url_parts(m, u, out, depth);
}

/// [`url`] part by part.
fn url_parts(m: &Masker, u: &[u8], out: &mut Vec<u8>, depth: u8) {
    let (before_frag, frag) = split_at_byte(u, b'#');
    let (mut rest, query) = split_at_byte(before_frag, b'?');
    if let Some(at) = authority_start(rest) {
        out.extend_from_slice(&rest[..at]);
        let after = &rest[at..];
        let end = memchr(b'/', after).unwrap_or(after.len());
        authority(m, &after[..end], out);
        rest = &after[end..];
    }
    path(m, rest, out, depth);
    if let Some(q) = query {
        out.push(b'?');
        params(m, q, out, depth);
    }
    if let Some(f) = frag {
        out.push(b'#');
        // Fragments carry parameters too (OAuth's implicit flow puts the
        // access token there).
        if memchr(b'=', f).is_some() {
            params(m, f, out, depth);
        } else {
            component(m, f, false, out, depth);
        }
    }
}

/// `user:password@host:port`: the password (or a bare user part, often a
/// token) is masked.
fn authority(m: &Masker, a: &[u8], out: &mut Vec<u8>) {
    let Some(at) = a.iter().rposition(|c| *c == b'@') else {
        out.extend_from_slice(a);
        return;
    };
    let info = &a[..at];
    match memchr(b':', info) {
        Some(colon) => {
            out.extend_from_slice(&info[..=colon]);
            let pass = &info[colon + 1..];
            if !pass.is_empty() {
                out.extend_from_slice(m.tag(&percent_decode(pass, false)).as_bytes());
            }
        }
        None if !info.is_empty() => out.extend_from_slice(m.tag(&percent_decode(info, false)).as_bytes()),
        None => {}
    }
    out.extend_from_slice(&a[at..]);
}

/// A path: each segment's `;name=value` parameters masked as query
/// parameters are, and card numbers in any segment.
fn path(m: &Masker, p: &[u8], out: &mut Vec<u8>, depth: u8) {
    for (i, seg) in p.split(|c| *c == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        for (j, piece) in seg.split(|c| *c == b';').enumerate() {
            if j == 0 {
                component(m, piece, false, out, depth);
            } else {
                out.push(b';');
                param(m, piece, false, out, depth);
            }
        }
    }
}

/// `name=value` pairs separated by `&` or `;` (a query, a fragment, a form
/// body).
pub(crate) fn params(m: &Masker, q: &[u8], out: &mut Vec<u8>, depth: u8) {
    let mut start = 0;
    for (i, c) in q.iter().enumerate() {
        if matches!(c, b'&' | b';') {
            param(m, &q[start..i], true, out, depth);
            out.push(*c);
            start = i + 1;
        }
    }
    param(m, &q[start..], true, out, depth);
}

/// One `name=value`: the value masked when the name is secret.
fn param(m: &Masker, piece: &[u8], plus: bool, out: &mut Vec<u8>, depth: u8) {
    match memchr(b'=', piece) {
        Some(eq) => {
            let (name, value) = (&piece[..eq], &piece[eq + 1..]);
            out.extend_from_slice(name);
            out.push(b'=');
            if !value.is_empty() && m.secret_name(name) {
                out.extend_from_slice(m.tag(&percent_decode(value, plus)).as_bytes());
            } else {
                component(m, value, plus, out, depth);
            }
        }
        None => component(m, piece, plus, out, depth),
    }
}

/// A value that is not secret by its name: card numbers in it are masked
/// (also when percent-encoded), and so are the secrets of a URL in it.
fn component(m: &Masker, raw: &[u8], plus: bool, out: &mut Vec<u8>, depth: u8) {
    let card = cards::may_hold(raw);
    let encoded = memchr(b'%', raw).is_some() || (plus && memchr(b'+', raw).is_some());
    let nested = depth < NESTED && looks_like_url(raw);
    if !card && !encoded && !nested {
        out.extend_from_slice(raw);
        return;
    }
    let decoded = percent_decode(raw, plus);
    let mut masked = if depth < NESTED && looks_like_url(&decoded) {
        let mut v = Vec::with_capacity(decoded.len());
        url(m, &decoded, &mut v, depth + 1);
        v
    } else {
        decoded.clone()
    };
    cards::mask_in_place(&mut masked);
    if masked == decoded {
        out.extend_from_slice(raw);
    } else {
        encode(&masked, out);
    }
}

/// A value that holds a URL with something to mask in it.
fn looks_like_url(s: &[u8]) -> bool {
    let starts = |p: &[u8]| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    (starts(b"http://") || starts(b"https://") || starts(b"/"))
        && s.iter().any(|c| matches!(c, b'?' | b';' | b'#' | b'@'))
}

/// Percent-encodes all but unreserved bytes (and `*`, which masks use).
fn encode(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'*') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut for targets with nothing to mask writes what the
    /// parts would: checked on generated targets of every special byte.
    #[test]
    fn a_target_with_nothing_to_mask_is_written_as_its_parts_would_be() {
        let m = Masker::new(&crate::PrivacyConfig::default(), true);
        const BYTES: &[u8] = b"/:.-_ 9a7Zh@%?#;=&+~";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut shortcut = 0;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut u: Vec<u8> = (0..len).map(|i| BYTES[((x >> (i % 50)) as usize + i * 7) % BYTES.len()]).collect();
            if x.is_multiple_of(3) {
                u.splice(0..0, b"https://shop.example/".iter().copied());
            }
            if x.is_multiple_of(5) {
                u.extend_from_slice(b"/4111 1111 1111 1111");
            }
            let (mut fast, mut parts) = (Vec::new(), Vec::new());
            url(&m, &u, &mut fast, 0);
            url_parts(&m, &u, &mut parts, 0);
            assert_eq!(fast, parts, "{}", String::from_utf8_lossy(&u));
            shortcut += usize::from(fast == u && !u.iter().any(|c| b"?#;@%".contains(c)));
        }
        assert!(shortcut > 1000, "the shortcut was taken {shortcut} times");
    }
}
