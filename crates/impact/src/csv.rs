//! A record's CSV line made from its values in field order
//! ([`FieldValues`]), as [`crate::json`] makes its JSON, and the rules for
//! a CSV cell.
//!
//! A cell is what the field's JSON value makes: empty for null, numbers
//! and booleans as serde_json writes them, text neutralised against
//! formula injection ([`push_text`]), a list's texts joined by spaces and
//! neutralised, a map as its JSON text, quoted where it needs it
//! ([`push_field`]). Made from the cells of the record's Parquet row, a
//! transaction's line took 15,700 instructions, a quarter of them taking
//! the record apart into that row first; each value writes its own cell
//! instead ([`ColumnType`](crate::schema::ColumnType)). `pov`'s
//! `testing::round_trip` compares the line with the one made from the
//! record's JSON value on generated records of every kind.

use std::any::TypeId;

use serde::Serialize;

use crate::schema::{ColumnType, FieldValues, Fields, ValueVisitor};

/// How records of one type become CSV lines. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CsvShape {
    columns: usize,
    /// The record type it was made for.
    of: TypeId,
}

impl CsvShape {
    /// The shape of `R`'s records.
    pub fn of<R: Fields + 'static>() -> CsvShape {
        CsvShape { columns: R::FIELDS.len(), of: TypeId::of::<R>() }
    }

    /// Appends `r`'s CSV line (its cells in column order, without the
    /// line's end) to `out`; `false`, with `out` as it was, for a record of
    /// another type than the shape's or a value serde_json would refuse.
    pub fn write<R: FieldValues + 'static>(&self, r: &R, out: &mut String) -> bool {
        struct Writer<'a> {
            cells: usize,
            out: &'a mut String,
        }
        impl ValueVisitor for Writer<'_> {
            type Error = ();
            #[inline]
            fn value<T: ColumnType + Serialize>(&mut self, value: &T) -> Result<(), ()> {
                if self.cells > 0 {
                    self.out.push(',');
                }
                self.cells += 1;
                if value.csv(self.out) { Ok(()) } else { Err(()) }
            }
        }
        if TypeId::of::<R>() != self.of {
            return false;
        }
        let at = out.len();
        let mut w = Writer { cells: 0, out };
        let done = r.visit_values(&mut w).is_ok() && w.cells == self.columns;
        if !done {
            out.truncate(at);
        }
        done
    }
}

/// A CSV cell of text, neutralised by OWASP's rule against formula
/// injection (CSV opened in a spreadsheet): a cell that begins with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a single quote in front
/// and is quoted, so it reads as text (`'=cmd|' /C calc'!A0`). Other cells
/// as [`push_field`].
pub fn push_text(out: &mut String, s: &str) {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push_str("\"'");
        push_doubled_quotes(out, s);
        out.push('"');
    } else {
        push_field(out, s);
    }
}

/// A CSV field, quoted when it needs it (RFC 4180).
pub fn push_field(out: &mut String, s: &str) {
    if needs_quotes(s.as_bytes()) {
        out.push('"');
        push_doubled_quotes(out, s);
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// `b` holds a comma, a quote or a line break. Every byte is looked at,
/// with no early way out, so that the loop is done many bytes at a time
/// (cells are short: `memchr`'s searches cost more than they saved, and
/// `str::contains` of four chars took some 10 instructions a byte).
#[inline]
fn needs_quotes(b: &[u8]) -> bool {
    let hits = b.iter().fold(0u8, |acc, &c| {
        acc | u8::from(c == b',') | u8::from(c == b'"') | u8::from(c == b'\n') | u8::from(c == b'\r')
    });
    hits != 0
}

/// Appends `s` with each `"` doubled.
fn push_doubled_quotes(out: &mut String, s: &str) {
    for (i, part) in s.split('"').enumerate() {
        if i > 0 {
            out.push_str("\"\"");
        }
        out.push_str(part);
    }
}

/// An integer as serde_json writes it (with the same `itoa`), without
/// its serializer: through a cursor, that took some 790 instructions a
/// number.
#[inline]
pub(crate) fn push_int<I: itoa::Integer>(out: &mut String, n: I) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// A float as serde_json writes it (by its shortest digits, with the same
/// `zmij`; an `f32` by its own), or nothing where it is not finite (JSON's
/// null).
#[inline]
pub(crate) fn push_float<F: zmij::Float>(out: &mut String, n: F, finite: bool) {
    if finite {
        out.push_str(zmij::Buffer::new().format_finite(n));
    }
}

/// A list of texts: joined by spaces, as one text cell.
pub(crate) fn push_texts(out: &mut String, items: &[String]) {
    push_text(out, &items.join(" "));
}

/// A value serde_json writes as a map: its JSON text, as a field.
pub(crate) fn push_serialized<T: ?Sized + Serialize>(out: &mut String, v: &T) -> bool {
    match serde_json::to_string(v) {
        Ok(text) => {
            push_field(out, &text);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, s);
        out
    }

    #[test]
    fn text_cannot_start_a_formula() {
        assert_eq!(text("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"");
        assert_eq!(text("+1+1"), "\"'+1+1\"");
        assert_eq!(text("-2+3"), "\"'-2+3\"");
        assert_eq!(text("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(text("\t=1"), "\"'\t=1\"");
        assert_eq!(text("\r=1"), "\"'\r=1\"");
        assert_eq!(text("=\"x\",y"), "\"'=\"\"x\"\",y\"");
        // Anything else as a field.
        assert_eq!(text("a=b"), "a=b");
        assert_eq!(text("a,b"), "\"a,b\"");
        assert_eq!(text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(text("a\nb"), "\"a\nb\"");
        assert_eq!(text("a\rb"), "\"a\rb\"");
        assert_eq!(text(""), "");
        // Each special byte anywhere in a long field (past a vector's
        // width), and none.
        let long = "x".repeat(70);
        for c in [',', '"', '\n', '\r'] {
            for at in [0, 31, 32, 69] {
                let mut s = long.clone();
                s.replace_range(at..=at, &c.to_string());
                let quoted = if c == '"' { s.replace('"', "\"\"") } else { s.clone() };
                assert_eq!(text(&format!("a{s}")), format!("\"a{quoted}\""), "{c:?} at {at}");
            }
        }
        assert_eq!(text(&long), long);
    }

    #[test]
    fn numbers_as_serde_json_writes_them_and_null_as_nothing() {
        let cell = |f: &dyn Fn(&mut String) -> bool| {
            let mut out = String::new();
            assert!(f(&mut out));
            out
        };
        // Through the column types, as the records write them.
        assert_eq!(cell(&|o| u64::MAX.csv(o)), "18446744073709551615");
        assert_eq!(cell(&|o| i64::MIN.csv(o)), "-9223372036854775808");
        assert_eq!(cell(&|o| 0u8.csv(o)), "0");
        assert_eq!(cell(&|o| usize::MAX.csv(o)), serde_json::to_string(&usize::MAX).unwrap());
        assert_eq!(cell(&|o| (-1.5f64).csv(o)), "-1.5");
        for x in [1e300f64, -2.5e-8, 0.1, 123_456.789, 1.0, 5e-324, f64::MAX, -0.0] {
            assert_eq!(cell(&|o| x.csv(o)), serde_json::to_string(&x).unwrap());
        }
        for x in [0.1f32, 1e-45, f32::MAX, 3.0, -7.25] {
            assert_eq!(cell(&|o| x.csv(o)), serde_json::to_string(&x).unwrap());
        }
        assert_eq!(cell(&|o| f64::NAN.csv(o)), "");
        assert_eq!(cell(&|o| f64::NEG_INFINITY.csv(o)), "");
        assert_eq!(cell(&|o| f32::INFINITY.csv(o)), "");
    }
}
