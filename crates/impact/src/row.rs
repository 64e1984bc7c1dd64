//! Records straight into column cells: a serde serializer for one record
//! (a struct, or a JSON object, of scalars, optional scalars, lists of
//! strings, and maps kept as JSON text), so writing a row builds no JSON
//! tree and looks up no key twice. The texts of a record go into one
//! buffer the writer keeps from record to record (a cell holds where its
//! text is), so a row of text cells costs no allocation.

use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::schema::{ColumnType, FieldValues, ValueVisitor};

/// Where a cell's text is in the record's text buffer (a record's texts
/// are well under 4 GiB: header and body caps bound them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span(u32, u32);

impl Span {
    /// The span of `text[at..]`.
    fn from(at: usize, text: &str) -> Result<Span, Error> {
        let fit = |n: usize| u32::try_from(n).map_err(|_| Error("a record's texts exceed 4 GiB".into()));
        Ok(Span(fit(at)?, fit(text.len())?))
    }

    /// Its text in `text`.
    pub(crate) fn of(self, text: &str) -> &str {
        text.get(self.0 as usize..self.1 as usize).unwrap_or("")
    }

    fn len(self) -> usize {
        self.1.saturating_sub(self.0) as usize
    }
}

/// One value of a record, as the columns take it. Texts are spans of the
/// record's text buffer (see [`cells`]). Sixteen bytes: a record taken
/// apart ahead of its writer holds one a column.
#[derive(Debug, Default)]
pub(crate) enum Cell {
    #[default]
    Null,
    Str(Span),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// Boxed, so that a cell is two words (lists are rare).
    #[allow(clippy::box_collection)]
    List(Box<Vec<String>>),
    /// A map (counts by kind), kept as its JSON text.
    Json(Span),
}

const _: () = assert!(std::mem::size_of::<Cell>() == 16);

impl Cell {
    /// Text bytes it holds, as the row group's size cap counts them.
    pub(crate) fn text_bytes(&self) -> usize {
        match self {
            Cell::Str(r) | Cell::Json(r) => r.len() + 24,
            Cell::List(items) => items.iter().map(|s| s.len() + 24).sum::<usize>() + 24,
            _ => 16,
        }
    }

    /// The cell as error messages show it (`text`: the record's texts).
    pub(crate) fn show(&self, text: &str) -> String {
        let part = |r: &Span| r.of(text);
        match self {
            Cell::Null => "null".to_string(),
            Cell::Str(r) => format!("{:?}", part(r)),
            Cell::U64(n) => n.to_string(),
            Cell::I64(n) => n.to_string(),
            Cell::F64(x) => x.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::List(items) => format!("{items:?}"),
            Cell::Json(r) => part(r).to_string(),
        }
    }
}

/// Why a record could not be taken apart.
#[derive(Debug)]
pub(crate) struct Error(pub(crate) String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Error {
        Error(msg.to_string())
    }
}

fn unsupported(what: &str) -> Error {
    Error(format!("a record field cannot be {what}"))
}

/// A field's name as the record gives it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Key<'a> {
    /// A struct field's name: the same `'static` text every time, so that
    /// its address and length identify it.
    Field(&'static str),
    /// A map key: text that lasts only for the call.
    Named(&'a str),
}

impl<'a> Key<'a> {
    /// The name.
    pub(crate) fn text(self) -> &'a str {
        match self {
            Key::Field(k) => k,
            Key::Named(k) => k,
        }
    }
}

/// Serializes a record (a struct or a map) into `(field name, cell)`
/// pairs, in field order, handed to `put`; the cells' texts are appended to
/// `text`.
pub(crate) fn cells<T: ?Sized + Serialize, F: FnMut(Key<'_>, Cell)>(
    record: &T,
    text: &mut String,
    put: F,
) -> Result<(), Error> {
    record.serialize(RowSer { put, text })
}

/// Takes a record apart through its [`FieldValues`]: the `i`-th field's
/// cell into `cells[i]`, its text appended to `text`. Each value becomes
/// the cell its type's [`ColumnType::cell`] makes, the one [`cells`] makes
/// of it (by the same rules: [`text_cell`], [`int_cell`], [`float_cell`]),
/// without matching field names to columns.
pub(crate) fn values<T: ?Sized + FieldValues>(record: &T, cells: &mut [Cell], text: &mut String) -> Result<(), Error> {
    struct Fill<'a> {
        cells: std::slice::IterMut<'a, Cell>,
        text: &'a mut String,
    }
    impl ValueVisitor for Fill<'_> {
        type Error = Error;
        #[inline]
        fn value<V: ColumnType + Serialize>(&mut self, v: &V) -> Result<(), Error> {
            let cell = v.cell(self.text).0?;
            match self.cells.next() {
                Some(slot) => {
                    *slot = cell;
                    Ok(())
                }
                None => Err(Error("a record with more fields than columns".to_string())),
            }
        }
    }
    record.visit_values(&mut Fill { cells: cells.iter_mut(), text })
}

struct RowSer<'t, F> {
    put: F,
    text: &'t mut String,
}

macro_rules! not_a_struct {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(self, _: $t) -> Result<(), Error> {
            Err(unsupported("a record that is not a struct"))
        }
    )*};
}

impl<'t, F: FnMut(Key<'_>, Cell)> ser::Serializer for RowSer<'t, F> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = RowMap<'t, F>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Error>;

    not_a_struct!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str);

    fn serialize_none(self) -> Result<(), Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("a record that is not a struct"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<RowMap<'t, F>, Error> {
        Ok(RowMap { put: self.put, text: self.text, key: String::new() })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("a record that is not a struct"))
    }
}

impl<F: FnMut(Key<'_>, Cell)> ser::SerializeStruct for RowSer<'_, F> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        let cell = value.serialize(CellSer { text: self.text })?;
        (self.put)(Key::Field(key), cell);
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// A record given as a map (a JSON object): text keys name the fields.
struct RowMap<'t, F> {
    put: F,
    text: &'t mut String,
    /// The key whose value comes next.
    key: String,
}

impl<F: FnMut(Key<'_>, Cell)> ser::SerializeMap for RowMap<'_, F> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        let at = self.text.len();
        let cell = key.serialize(CellSer { text: self.text })?;
        let r = match cell {
            Cell::Str(k) => {
                self.key.clear();
                self.key.push_str(k.of(self.text));
                Ok(())
            }
            other => Err(Error(format!("a record's key is {}, not text", other.show(self.text)))),
        };
        self.text.truncate(at);
        r
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let key = std::mem::take(&mut self.key);
        let cell = value.serialize(CellSer { text: self.text })?;
        (self.put)(Key::Named(&key), cell);
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// A text's cell (the text appended to `text`), as [`CellSer`] makes it.
#[inline]
pub(crate) fn text_cell(v: &str, text: &mut String) -> Result<Cell, Error> {
    let at = text.len();
    text.push_str(v);
    Ok(Cell::Str(Span::from(at, text)?))
}

/// A signed integer's cell, as [`CellSer`] makes it: as JSON numbers are,
/// a non-negative integer is unsigned.
#[inline]
pub(crate) fn int_cell(v: i64) -> Cell {
    u64::try_from(v).map_or(Cell::I64(v), Cell::U64)
}

/// A float's cell, as [`CellSer`] makes it: as serde_json, a float that is
/// not finite is null.
#[inline]
pub(crate) fn float_cell(v: f64) -> Cell {
    if v.is_finite() { Cell::F64(v) } else { Cell::Null }
}

/// The cell serde makes of `v` (through [`CellSer`]).
pub(crate) fn serialized_cell<T: ?Sized + Serialize>(v: &T, text: &mut String) -> Result<Cell, Error> {
    v.serialize(CellSer { text })
}

/// One field's value into a [`Cell`] (its text appended to `text`).
struct CellSer<'t> {
    text: &'t mut String,
}

impl CellSer<'_> {
    fn str(self, v: &str) -> Result<Cell, Error> {
        text_cell(v, self.text)
    }
}

impl<'t> ser::Serializer for CellSer<'t> {
    type Ok = Cell;
    type Error = Error;
    type SerializeSeq = ListSer<'t>;
    type SerializeTuple = Impossible<Cell, Error>;
    type SerializeTupleStruct = Impossible<Cell, Error>;
    type SerializeTupleVariant = Impossible<Cell, Error>;
    type SerializeMap = MapSer<'t>;
    type SerializeStruct = Impossible<Cell, Error>;
    type SerializeStructVariant = Impossible<Cell, Error>;

    fn serialize_bool(self, v: bool) -> Result<Cell, Error> {
        Ok(Cell::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Cell, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Cell, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Cell, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Cell, Error> {
        Ok(int_cell(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Cell, Error> {
        Ok(Cell::U64(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Cell, Error> {
        Ok(Cell::U64(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Cell, Error> {
        Ok(Cell::U64(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Cell, Error> {
        Ok(Cell::U64(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Cell, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<Cell, Error> {
        Ok(float_cell(v))
    }
    fn serialize_char(self, v: char) -> Result<Cell, Error> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Cell, Error> {
        self.str(v)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Cell, Error> {
        Err(unsupported("bytes"))
    }
    fn serialize_none(self) -> Result<Cell, Error> {
        Ok(Cell::Null)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<Cell, Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Cell, Error> {
        Ok(Cell::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Cell, Error> {
        Ok(Cell::Null)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<Cell, Error> {
        self.str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Result<Cell, Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Cell, Error> {
        Err(unsupported("an enum with data"))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ListSer<'t>, Error> {
        Ok(ListSer(Vec::with_capacity(len.unwrap_or(0)), self.text))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(unsupported("a tuple"))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(unsupported("a tuple"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("an enum with data"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapSer<'t>, Error> {
        Ok(MapSer(serde_json::Map::new(), None, self.text))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(unsupported("a nested struct"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("an enum with data"))
    }
}

/// A list: of strings only (the record's text buffer is only borrowed to
/// take each element apart).
struct ListSer<'t>(Vec<String>, &'t mut String);

impl ser::SerializeSeq for ListSer<'_> {
    type Ok = Cell;
    type Error = Error;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let at = self.1.len();
        let r = match v.serialize(CellSer { text: self.1 })? {
            Cell::Str(s) => {
                self.0.push(s.of(self.1).to_string());
                Ok(())
            }
            other => Err(Error(format!("a list holds {}, not text", other.show(self.1)))),
        };
        self.1.truncate(at);
        r
    }

    fn end(self) -> Result<Cell, Error> {
        Ok(Cell::List(Box::new(self.0)))
    }
}

/// A map, kept as its JSON text (keys in the map's own order, as
/// serde_json writes a map).
struct MapSer<'t>(serde_json::Map<String, serde_json::Value>, Option<String>, &'t mut String);

impl ser::SerializeMap for MapSer<'_> {
    type Ok = Cell;
    type Error = Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        match serde_json::to_value(key).map_err(|e| Error(e.to_string()))? {
            serde_json::Value::String(s) => self.1 = Some(s),
            other => self.1 = Some(other.to_string()),
        }
        Ok(())
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let key = self.1.take().unwrap_or_default();
        self.0.insert(key, serde_json::to_value(v).map_err(|e| Error(e.to_string()))?);
        Ok(())
    }

    fn end(self) -> Result<Cell, Error> {
        let json = serde_json::Value::Object(self.0).to_string();
        let at = self.2.len();
        self.2.push_str(&json);
        Ok(Cell::Json(Span::from(at, self.2)?))
    }
}
