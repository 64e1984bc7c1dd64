//! A record's CSV line written as serde gives its fields, without building
//! its JSON tree first.
//!
//! A CSV cell is what [`crate::output`] makes of the field's JSON value
//! (`csv_value`): empty for null, numbers and booleans as JSON writes them,
//! text neutralised against formula injection, lists joined by spaces,
//! anything else as its JSON text. Going through `serde_json::to_value`
//! built a tree of sixty values for every transaction, then looked each
//! column up in it by name: 94,000 instructions a line. Here a scalar field
//! (most of them) is written straight into the line; a list, map or struct
//! field still goes through its JSON value, and a record whose fields do
//! not come in its columns' order is written the old way whole. A test
//! compares both ways on generated records of every kind.

use serde::Serialize;
use serde::ser::{self, Impossible};

/// `r`'s CSV line (its cells, without the line's end) in the order of
/// `fields`, or `None` when its fields do not come in that order (the
/// caller then writes it by its JSON value).
pub(crate) fn line<R: Serialize + ?Sized>(
    r: &R,
    fields: &[(&'static str, pov_impact::schema::Kind)],
) -> Option<String> {
    let mut w = Line { fields, next: 0, out: String::with_capacity(512) };
    r.serialize(&mut w).ok()?;
    (w.next == fields.len()).then_some(w.out)
}

/// Why a line or a cell is not written here.
#[derive(Debug)]
struct Other;

impl std::fmt::Display for Other {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("written by its JSON value")
    }
}

impl std::error::Error for Other {}

impl ser::Error for Other {
    fn custom<T: std::fmt::Display>(_: T) -> Other {
        Other
    }
}

/// The line being written: the next column expected, and the text so far.
struct Line<'f> {
    fields: &'f [(&'static str, pov_impact::schema::Kind)],
    next: usize,
    out: String,
}

macro_rules! not_a_record {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(self, _: $t) -> Result<(), Other> {
            Err(Other)
        }
    )*};
}

impl<'a, 'f> ser::Serializer for &'a mut Line<'f> {
    type Ok = ();
    type Error = Other;
    type SerializeSeq = Impossible<(), Other>;
    type SerializeTuple = Impossible<(), Other>;
    type SerializeTupleStruct = Impossible<(), Other>;
    type SerializeTupleVariant = Impossible<(), Other>;
    type SerializeMap = Impossible<(), Other>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Other>;

    not_a_record!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str);

    fn serialize_none(self) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_unit(self) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Other> {
        Err(Other)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Other> {
        Err(Other)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Other> {
        Err(Other)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Other> {
        Err(Other)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Other> {
        Err(Other)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Other> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Other> {
        Err(Other)
    }
}

impl ser::SerializeStruct for &mut Line<'_> {
    type Ok = ();
    type Error = Other;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Other> {
        match self.fields.get(self.next) {
            Some((name, _)) if *name == key => {}
            _ => return Err(Other),
        }
        if self.next > 0 {
            self.out.push(',');
        }
        let at = self.out.len();
        if value.serialize(Cell { out: &mut self.out }).is_err() {
            // A list, a map, a struct: its JSON value's cell.
            self.out.truncate(at);
            let v = serde_json::to_value(value).map_err(|_| Other)?;
            self.out.push_str(&crate::output::csv_value(&v));
        }
        self.next += 1;
        Ok(())
    }

    fn end(self) -> Result<(), Other> {
        Ok(())
    }
}

/// One scalar field's cell, as `csv_value` writes its JSON value.
struct Cell<'o> {
    out: &'o mut String,
}

impl Cell<'_> {
    fn text(self, s: &str) -> Result<(), Other> {
        crate::output::push_csv_text(self.out, s);
        Ok(())
    }

    fn number(self, n: serde_json::Number) -> Result<(), Other> {
        // Digits, `-`, `.`, `e`: nothing a CSV field quotes.
        use std::fmt::Write as _;
        write!(self.out, "{n}").map_err(|_| Other)
    }
}

impl ser::Serializer for Cell<'_> {
    type Ok = ();
    type Error = Other;
    type SerializeSeq = Impossible<(), Other>;
    type SerializeTuple = Impossible<(), Other>;
    type SerializeTupleStruct = Impossible<(), Other>;
    type SerializeTupleVariant = Impossible<(), Other>;
    type SerializeMap = Impossible<(), Other>;
    type SerializeStruct = Impossible<(), Other>;
    type SerializeStructVariant = Impossible<(), Other>;

    fn serialize_bool(self, v: bool) -> Result<(), Other> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Other> {
        self.number(v.into())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Other> {
        // As JSON values are: a number that is not finite is null.
        match serde_json::Number::from_f64(v) {
            Some(n) => self.number(n),
            None => Ok(()),
        }
    }
    fn serialize_char(self, v: char) -> Result<(), Other> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Other> {
        self.text(v)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_none(self) -> Result<(), Other> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), Other> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Other> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Other> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Other> {
        self.text(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Result<(), Other> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Other> {
        Err(Other)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Other> {
        Err(Other)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Other> {
        Err(Other)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Other> {
        Err(Other)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Other> {
        Err(Other)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Other> {
        Err(Other)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Other> {
        Err(Other)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Other> {
        Err(Other)
    }
}
