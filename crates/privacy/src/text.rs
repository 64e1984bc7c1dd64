//! Free text (page bodies, style sheets, error details, User-Agents): card
//! numbers, and secrets written the way URLs and JSON write them:
//! `?name=value`, `&name=value`, `;name=value` (also HTML-escaped, as
//! `&amp;name=value`) and `"name": "value"` (also with escaped quotes, as
//! JSON inside a JSON string has them), and the way HTML forms and meta
//! tags carry them: the `value` of an `<input>` whose `name` or `id` is
//! secret or whose `type` is `password`, the `content` of a `<meta>` whose
//! `name` or `property` is secret (Rails' `csrf-token`). One pass, each
//! byte looked at a bounded number of times.

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
        if c == b'<'
            && let Some(next) = html_tag(m, s, i, &mut out)
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

/// Longest HTML tag looked at.
const MAX_TAG: usize = 4096;

/// An `<input>` or `<meta>` tag at `i` that carries a secret value: writes
/// it with that value masked and returns where the tag ends. Other tags,
/// and these without a secret, are left to the byte-by-byte pass.
fn html_tag(m: &Masker, s: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    let rest = &s[i + 1..];
    let (is_input, name_len) = if starts_ci(rest, b"input") {
        (true, 5)
    } else if starts_ci(rest, b"meta") {
        (false, 4)
    } else {
        return None;
    };
    if !rest.get(name_len).is_some_and(|c| c.is_ascii_whitespace() || *c == b'/') {
        return None;
    }
    let attrs = attributes(&s[..s.len().min(i + MAX_TAG)], i + 1 + name_len)?;
    let value_of =
        |want: &[u8]| attrs.attrs.iter().find(|a| a.name.eq_ignore_ascii_case(want)).map(|a| &s[a.value.0..a.value.1]);
    let secret = |want: &[u8]| value_of(want).is_some_and(|v| !v.is_empty() && m.secret_name(v));
    let masked: &[u8] = if is_input {
        let password = value_of(b"type").is_some_and(|t| t.eq_ignore_ascii_case(b"password"));
        if !(password || secret(b"name") || secret(b"id")) {
            return None;
        }
        b"value"
    } else {
        if !(secret(b"name") || secret(b"property")) {
            return None;
        }
        b"content"
    };
    let mut at = i;
    let mut any = false;
    for a in attrs.attrs.iter().filter(|a| a.name.eq_ignore_ascii_case(masked)) {
        let (start, end) = a.value;
        if end == start {
            continue;
        }
        out.extend_from_slice(&s[at..start]);
        out.extend_from_slice(m.tag(&s[start..end]).as_bytes());
        at = end;
        any = true;
    }
    if !any {
        return None;
    }
    out.extend_from_slice(&s[at..attrs.end]);
    Some(attrs.end)
}

struct Attr<'a> {
    name: &'a [u8],
    /// The value's span in the text (quotes excluded).
    value: (usize, usize),
}

struct Attrs<'a> {
    attrs: Vec<Attr<'a>>,
    /// Just past the tag's `>`.
    end: usize,
}

/// The attributes of a tag from `j` (just past its name) to its `>`, or
/// `None` when `s` ends or another `<` comes first (so the search from one
/// `<` never passes the next: the pass stays linear).
fn attributes(s: &[u8], mut j: usize) -> Option<Attrs<'_>> {
    let mut attrs = Vec::new();
    loop {
        while s.get(j).is_some_and(|c| c.is_ascii_whitespace() || *c == b'/') {
            j += 1;
        }
        match s.get(j)? {
            b'>' => return Some(Attrs { attrs, end: j + 1 }),
            b'<' => return None,
            _ => {}
        }
        let n0 = j;
        while s.get(j).is_some_and(|c| !(c.is_ascii_whitespace() || matches!(c, b'=' | b'>' | b'/' | b'<'))) {
            j += 1;
        }
        let name = &s[n0..j];
        while s.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if s.get(j) != Some(&b'=') {
            attrs.push(Attr { name, value: (j, j) });
            continue;
        }
        j += 1;
        while s.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        let value = match s.get(j)? {
            q @ (b'"' | b'\'') => {
                let start = j + 1;
                // A value holding `<` is not taken for a tag's: so no
                // byte is looked at again past the next `<`.
                let len = s[start..].iter().position(|c| c == q || *c == b'<')?;
                if s[start + len] == b'<' {
                    return None;
                }
                j = start + len + 1;
                (start, start + len)
            }
            _ => {
                let start = j;
                while s.get(j).is_some_and(|c| !(c.is_ascii_whitespace() || matches!(c, b'>' | b'<'))) {
                    j += 1;
                }
                (start, j)
            }
        };
        attrs.push(Attr { name, value });
    }
}

fn starts_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}
