//! JSON documents: the values of fields with secret names (and everything
//! under them) become masks, string values are masked as text
//! ([`crate::text`]) and numbers that are card numbers masked; the rest of
//! the document, spacing and key order included, is written back as it
//! was. Iterative (an explicit stack), so nesting depth costs heap, not
//! stack. A document cut short (a kept body is a prefix) is masked as far
//! as it goes; one that is not JSON gives `None`.

use crate::{Masker, cards, text};

#[derive(Clone, Copy)]
enum Frame {
    /// An object: its values are secret as a whole, the key just read is
    /// secret, a key comes next.
    Obj { secret: bool, key_secret: bool, want_key: bool },
    /// An array.
    Arr { secret: bool },
}

fn value_is_secret(stack: &[Frame]) -> bool {
    match stack.last() {
        Some(Frame::Obj { secret, key_secret, .. }) => *secret || *key_secret,
        Some(Frame::Arr { secret }) => *secret,
        None => false,
    }
}

/// The masked document, or `None` when `s` is not JSON (does not start
/// with `{` or `[`, or holds a byte no JSON token starts with).
pub(crate) fn json(m: &Masker, s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    if s.starts_with("\u{feff}".as_bytes()) {
        out.extend_from_slice("\u{feff}".as_bytes());
        i = 3;
    }
    let first = s[i..].iter().find(|c| !c.is_ascii_whitespace())?;
    if !matches!(first, b'{' | b'[') {
        return None;
    }
    while i < s.len() {
        let c = s[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | b':' => {
                out.push(c);
                i += 1;
            }
            b'{' | b'[' => {
                let secret = value_is_secret(&stack);
                stack.push(if c == b'{' {
                    Frame::Obj { secret, key_secret: false, want_key: true }
                } else {
                    Frame::Arr { secret }
                });
                out.push(c);
                i += 1;
            }
            b'}' | b']' => {
                match (stack.pop(), c) {
                    (Some(Frame::Obj { .. }), b'}') | (Some(Frame::Arr { .. }), b']') => {}
                    _ => return None,
                }
                out.push(c);
                i += 1;
            }
            b',' => {
                if let Some(Frame::Obj { key_secret, want_key, .. }) = stack.last_mut() {
                    *want_key = true;
                    *key_secret = false;
                }
                out.push(c);
                i += 1;
            }
            b'"' => {
                let (end, closed) = string_end(s, i);
                let raw = &s[i + 1..end];
                let after = if closed { end + 1 } else { end };
                if let Some(Frame::Obj { key_secret, want_key: want_key @ true, .. }) = stack.last_mut() {
                    *key_secret = m.secret_name(&unescape(raw));
                    *want_key = false;
                    out.extend_from_slice(&s[i..after]);
                } else if value_is_secret(&stack) {
                    out.push(b'"');
                    if !raw.is_empty() {
                        out.extend_from_slice(m.tag(&unescape(raw)).as_bytes());
                    }
                    if closed {
                        out.push(b'"');
                    }
                } else if !raw.contains(&b'\\') && !crate::maybe_secret(raw) {
                    // Nothing text masking could find.
                    out.extend_from_slice(&s[i..after]);
                } else {
                    let plain = unescape(raw);
                    let masked = text::text(m, &plain);
                    if masked == plain {
                        out.extend_from_slice(&s[i..after]);
                    } else {
                        out.push(b'"');
                        escape(&masked, &mut out);
                        if closed {
                            out.push(b'"');
                        }
                    }
                }
                i = after;
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let end = s[i..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+')))
                    .map_or(s.len(), |k| i + k);
                let tok = &s[i..end];
                if value_is_secret(&stack) && tok != b"null" {
                    out.push(b'"');
                    out.extend_from_slice(m.tag(tok).as_bytes());
                    out.push(b'"');
                } else if (13..=19).contains(&tok.len()) && tok.iter().all(u8::is_ascii_digit) && cards::luhn(tok) {
                    // A card number written as a number: a masked string.
                    let mut t = tok.to_vec();
                    cards::mask_in_place(&mut t);
                    out.push(b'"');
                    out.extend_from_slice(&t);
                    out.push(b'"');
                } else {
                    out.extend_from_slice(tok);
                }
                i = end;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Where the string starting at `i` (a quote) ends: the index of its closing
/// quote and true, or the end of the text and false.
fn string_end(s: &[u8], i: usize) -> (usize, bool) {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return (j, true),
            _ => j += 1,
        }
    }
    (s.len(), false)
}

/// The bytes a JSON string's contents stand for (bad escapes are kept as
/// written; lone surrogates become U+FFFD).
pub(crate) fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            out.push(c);
            break;
        };
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            i += 2;
            continue;
        }
        if e == b'u'
            && let Some(hi) = hex4(raw, i + 2)
        {
            let mut used = 6;
            let ch = if (0xd800..0xdc00).contains(&hi) {
                match (raw.get(i + 6..i + 8), hex4(raw, i + 8)) {
                    (Some(b"\\u"), Some(lo)) if (0xdc00..0xe000).contains(&lo) => {
                        used = 12;
                        char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                    }
                    _ => None,
                }
            } else {
                char::from_u32(hi)
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.unwrap_or('\u{fffd}').encode_utf8(&mut buf).as_bytes());
            i += used;
            continue;
        }
        out.extend_from_slice(&raw[i..i + 2]);
        i += 2;
    }
    out
}

fn hex4(s: &[u8], at: usize) -> Option<u32> {
    let h = s.get(at..at + 4)?;
    let t = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(t, 16).ok().filter(|_| h.iter().all(u8::is_ascii_hexdigit))
}

/// Writes `s` as the contents of a JSON string (bytes that are not ASCII
/// are written as they are).
pub(crate) fn escape(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b => out.push(b),
        }
    }
}
