//! A record's JSON text, the bytes `serde_json::to_writer` writes, made
//! from its values in field order ([`FieldValues`]) without serde's calls.
//!
//! Through serde, each of a transaction's sixty fields went through
//! serde_json's map serializer, which escaped its key again, a byte at a
//! time, for every record: 15 % of `pov transactions`' time on
//! request-heavy traffic. A record's keys are its columns' names in column
//! order ([`record!`](crate::record) declares both from one field list and
//! refuses the attributes that would make them differ; [`check`] proves
//! it), so each key is written once, when the shape is made, with what
//! comes before it. Each value writes itself
//! ([`ColumnType`](crate::schema::ColumnType)): text escaped eight bytes at
//! a time where nothing needs it, numbers and maps by
//! serde_json itself. Tests compare both ways byte for byte on generated
//! records of every kind (`pov`'s `testing::round_trip`) and here.
//!
//! [`check`]: crate::schema::check

use std::any::TypeId;
use std::sync::Arc;

use serde::Serialize;

use crate::schema::{ColumnType, FieldValues, Fields, ValueVisitor};

/// How records of one type become JSON: for each column, the text before
/// its value (`{"name":` for the first, `,"name":` for the others). Cheap
/// to clone.
#[derive(Clone, Debug)]
pub struct JsonShape {
    keys: Arc<[Box<[u8]>]>,
    /// The record type the keys are of.
    of: TypeId,
}

impl JsonShape {
    /// The shape of `R`'s records.
    pub fn of<R: Fields + 'static>() -> JsonShape {
        let keys = R::FIELDS
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                push_str(&mut key, name);
                key.push(b':');
                key.into_boxed_slice()
            })
            .collect();
        JsonShape { keys, of: TypeId::of::<R>() }
    }

    /// Appends `r`'s JSON text to `out`, the bytes `serde_json::to_writer`
    /// writes; `false`, with `out` as it was, for a record of another type
    /// than the shape's or one serde_json would refuse.
    pub fn write<R: FieldValues + 'static>(&self, r: &R, out: &mut Vec<u8>) -> bool {
        struct Writer<'a> {
            keys: std::slice::Iter<'a, Box<[u8]>>,
            out: &'a mut Vec<u8>,
        }
        impl ValueVisitor for Writer<'_> {
            type Error = ();
            #[inline]
            fn value<T: ColumnType + Serialize>(&mut self, value: &T) -> Result<(), ()> {
                let key = self.keys.next().ok_or(())?;
                self.out.extend_from_slice(key);
                if value.json(self.out) { Ok(()) } else { Err(()) }
            }
        }
        if TypeId::of::<R>() != self.of {
            return false;
        }
        let at = out.len();
        let mut w = Writer { keys: self.keys.iter(), out };
        let done = r.visit_values(&mut w).is_ok() && w.keys.len() == 0;
        if !done {
            out.truncate(at);
            return false;
        }
        if self.keys.is_empty() {
            out.push(b'{');
        }
        out.push(b'}');
        true
    }
}

/// An integer as serde_json writes it (with the same `itoa`), without its
/// serializer.
#[inline]
pub(crate) fn push_int<I: itoa::Integer>(out: &mut Vec<u8>, n: I) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A float as serde_json writes it: by its shortest digits (the same
/// `zmij`; an `f32` by its own), null where it is not finite.
#[inline]
pub(crate) fn push_float<F: zmij::Float>(out: &mut Vec<u8>, n: F, finite: bool) {
    if finite {
        out.extend_from_slice(zmij::Buffer::new().format_finite(n).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// `v` as serde_json writes it; `false`, with `out` as it was, where
/// serde_json refuses it.
pub(crate) fn push_serialized<T: ?Sized + Serialize>(out: &mut Vec<u8>, v: &T) -> bool {
    let at = out.len();
    let ok = serde_json::to_writer(&mut *out, v).is_ok();
    if !ok {
        out.truncate(at);
    }
    ok
}

/// A list of texts as a JSON array.
pub(crate) fn push_strs(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, item);
    }
    out.push(b']');
}

/// `s` as a JSON string, escaped as serde_json escapes it: `"` and `\`,
/// and the control characters below U+0020 (`\b`, `\t`, `\n`, `\f`, `\r`
/// by name, the others as `\u00xx`); everything else as it is.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs escaping; the
        // last word of a text of eight bytes or more ends at its end
        // (bytes already looked at are looked at again), a shorter text
        // is padded with spaces.
        let end = (i + 8).min(bytes.len());
        let word = match bytes.get(i..i + 8) {
            Some(w) => word_of(w),
            None if bytes.len() >= 8 => word_of(&bytes[bytes.len() - 8..]),
            None => padded(&bytes[i..]),
        };
        if !needs_escape(word) {
            i = end;
            continue;
        }
        while i < end {
            let b = bytes[i];
            i += 1;
            let named = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                b'\t' => b't',
                b'\n' => b'n',
                0x0C => b'f',
                b'\r' => b'r',
                0x00..=0x1F => b'u',
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i - 1]);
            start = i;
            out.push(b'\\');
            out.push(named);
            if named == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Eight bytes as a word (little-endian).
#[inline]
fn word_of(w: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(w);
    u64::from_le_bytes(a)
}

/// Fewer than eight bytes as a word, the rest spaces.
#[inline]
fn padded(bytes: &[u8]) -> u64 {
    let mut w = u64::from_le_bytes([b' '; 8]);
    for (k, b) in bytes.iter().enumerate().take(8) {
        w = (w & !(0xFF << (8 * k))) | (u64::from(*b) << (8 * k));
    }
    w
}

/// Whether any byte of `w` is below 0x20, `"` or `\`. Exact, as a whole:
/// a byte's borrow reaches the bytes above it only when that byte itself
/// is below the limit.
#[inline]
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    (below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ASCII byte and a few others, alone and at every place of the
    /// words of texts of every length up to twenty: escaped as serde_json
    /// escapes it.
    #[test]
    fn strings_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = Vec::new();
        for c in (0u32..0x80).chain([0xA0, 0xE9, 0x2028, 0x1F600]) {
            let c = char::from_u32(c).unwrap_or('?');
            for len in 0..20 {
                for at in 0..len {
                    let s: String = (0..len).map(|k| if k == at { c } else { char::from(b'a' + k as u8) }).collect();
                    cases.push(s);
                }
            }
            cases.push(c.to_string());
        }
        cases.extend(["".into(), "\"\"\\\\".into(), "\u{7f}\u{1f}\u{20}".into(), "été \u{0}\u{1}".repeat(5)]);
        for s in cases {
            let mut out = Vec::new();
            push_str(&mut out, &s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    /// The word test against a byte-by-byte one, on words made of bytes at
    /// each side of the three limits.
    #[test]
    fn the_word_test_is_exact() {
        let edge = [0x00u8, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0x9F, 0xA0, 0xDC, 0xFF];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..500_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut w = [0u8; 8];
            for (k, b) in w.iter_mut().enumerate() {
                let pick = (seed >> (k * 8)) as u8;
                *b = if pick & 1 == 0 { edge[usize::from(pick >> 1) % edge.len()] } else { 0x24 + (pick >> 2) };
            }
            let want = w.iter().any(|b| *b < 0x20 || *b == b'"' || *b == b'\\');
            assert_eq!(needs_escape(u64::from_le_bytes(w)), want, "{w:?}");
        }
    }

    crate::record! {
        /// A record of every kind of column.
        #[derive(Clone, Debug, Default)]
        struct Every {
            /// Text.
            text: String,
            /// Renamed, to a key that needs escaping.
            #[serde(rename = "a \"renamed\"\\key")]
            renamed: Option<String>,
            /// Small unsigned.
            small: u16,
            /// Unsigned.
            big: Option<u64>,
            /// Signed.
            signed: i32,
            /// Float.
            x: f64,
            /// Short float.
            y: Option<f32>,
            /// Flag.
            flag: bool,
            /// List.
            list: Vec<String>,
            /// Map.
            map: std::collections::BTreeMap<String, u64>,
        }
        /// The column names of [`Every`].
        columns EveryColumns;
    }

    /// Records of every kind of value, each written as serde_json writes
    /// it; a shape refuses a record of another type.
    #[test]
    fn records_written_as_serde_json_writes_them() {
        let shape = JsonShape::of::<Every>();
        let mut records = vec![Every::default()];
        for k in 0..40u32 {
            let text: String = (0..k).map(|i| char::from_u32(0x1 + (i * 37 + k * 11) % 0x7F).unwrap_or('x')).collect();
            records.push(Every {
                text: text.clone(),
                renamed: (k % 3 != 0).then(|| format!("{text}é\u{2028}")),
                small: k as u16 * 997,
                big: (k % 2 == 0).then_some(u64::MAX - u64::from(k)),
                signed: -(k as i32) * 12_345 + 7,
                x: [f64::NAN, 0.0, -0.0, 1e300, 1.5, f64::INFINITY, 123_456.789][k as usize % 7],
                y: (k % 4 != 1).then_some(k as f32 / 7.0),
                flag: k % 2 == 1,
                list: (0..k % 4).map(|i| format!("{i}\"{text}")).collect(),
                map: (0..k % 3).map(|i| (format!("k{i}\n"), u64::from(i * k))).collect(),
            });
        }
        for r in &records {
            let mut out = b"before".to_vec();
            assert!(shape.write(r, &mut out));
            assert_eq!(out[6..], serde_json::to_vec(r).unwrap()[..], "{r:?}");
        }
        let other = JsonShape::of::<crate::schema::UserRecord>();
        let mut out = b"kept".to_vec();
        assert!(!other.write(&records[1], &mut out));
        assert_eq!(out, b"kept");
    }
}
