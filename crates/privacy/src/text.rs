//! Free text (page bodies, style sheets, error details, User-Agents): card
//! numbers, and secrets written the way URLs and JSON write them:
//! `?name=value`, `&name=value`, `;name=value` (also HTML-escaped, as
//! `&amp;name=value`) and `"name": "value"` (also with escaped quotes, as
//! JSON inside a JSON string has them). One pass, each byte looked at a
//! bounded number of times.

use crate::names::percent_decode;
use crate::{Masker, cards};

/// Longest name looked at.
const MAX_NAME: usize = 64;

fn name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'[' | b']' | b'%' | b'+')
}

fn value_end(c: u8) -> bool {
    matches!(c, b'&' | b';' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`') || c.is_ascii_whitespace()
}

/// The text with its secrets masked.
pub(crate) fn text(m: &Masker, s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let starts_param = i == 0 || matches!(s[i - 1], b'?' | b'&' | b';');
        if starts_param && let Some(next) = param(m, s, i, &mut out) {
            i = next;
            continue;
        }
        if c == b'"'
            && let Some(next) = json_pair(m, s, i, &mut out)
        {
            i = next;
            continue;
        }
        out.push(c);
        i += 1;
    }
    cards::mask_in_place(&mut out);
    out
}

/// `name=value` at `i` with a secret name: writes it masked and returns
/// where it ends.
fn param(m: &Masker, s: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    let n = s[i..].iter().take(MAX_NAME + 1).position(|c| !name_byte(*c))?;
    if n == 0 || s.get(i + n) != Some(&b'=') {
        return None;
    }
    let name = &s[i..i + n];
    if !m.secret_name(name) {
        return None;
    }
    let start = i + n + 1;
    let end = s[start..].iter().position(|c| value_end(*c)).map_or(s.len(), |k| start + k);
    if end == start {
        return None;
    }
    out.extend_from_slice(&s[i..start]);
    out.extend_from_slice(m.tag(&percent_decode(&s[start..end], true)).as_bytes());
    Some(end)
}

/// `"name": "value"` (or `\"name\": \"value\"`, or a bare number or word as
/// the value) at `i` with a secret name: writes it masked and returns where
/// it ends.
fn json_pair(m: &Masker, s: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    let k = s[i + 1..].iter().take(MAX_NAME + 1).position(|c| *c == b'"')?;
    let mut key = &s[i + 1..i + 1 + k];
    // An escaped quote ends an escaped key.
    let escaped = key.last() == Some(&b'\\');
    if escaped {
        key = &key[..key.len() - 1];
    }
    if key.is_empty() || key.iter().any(|c| matches!(c, b'\\' | b'"' | b'\n')) || !m.secret_name(key) {
        return None;
    }
    let mut j = i + 1 + k + 1;
    let skip_ws = |mut j: usize| {
        while s.get(j).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')) {
            j += 1;
        }
        j
    };
    j = skip_ws(j);
    if s.get(j) != Some(&b':') {
        return None;
    }
    j = skip_ws(j + 1);
    let quote: &[u8] = if escaped { b"\\\"" } else { b"\"" };
    out.extend_from_slice(&s[i..j]);
    if s[j..].starts_with(quote) {
        // A string: up to its closing quote, or the end of a cut text.
        let start = j + quote.len();
        let mut e = start;
        let closed = loop {
            match s.get(e) {
                None => break false,
                Some(_) if s[e..].starts_with(quote) => break true,
                Some(b'\\') if !escaped => e += 2,
                Some(_) => e += 1,
            }
        };
        let e = e.min(s.len());
        out.extend_from_slice(quote);
        if e > start {
            out.extend_from_slice(m.tag(&s[start..e]).as_bytes());
        }
        if closed {
            out.extend_from_slice(quote);
            return Some(e + quote.len());
        }
        return Some(e);
    }
    // A number or a word (`true`); `null` hides nothing.
    let e = s[j..]
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+')))
        .map_or(s.len(), |e| j + e);
    if e == j || &s[j..e] == b"null" {
        out.truncate(out.len() - (j - i));
        return None;
    }
    out.push(b'"');
    out.extend_from_slice(m.tag(&s[j..e]).as_bytes());
    out.push(b'"');
    Some(e)
}
