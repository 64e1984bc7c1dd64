//! Records straight into column cells: a serde serializer for one record
//! (a struct, or a JSON object, of scalars, optional scalars, lists of
//! strings, and maps kept as JSON text), so writing a row builds no JSON
//! tree and looks up no key twice.

use serde::Serialize;
use serde::ser::{self, Impossible};

/// One value of a record, as the columns take it.
#[derive(Debug)]
pub(crate) enum Cell {
    Null,
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    List(Vec<String>),
    /// A map (counts by kind), kept as its JSON text.
    Json(String),
}

impl Cell {
    /// Text bytes it holds, as the row group's size cap counts them.
    pub(crate) fn text_bytes(&self) -> usize {
        match self {
            Cell::Str(s) | Cell::Json(s) => s.len() + 24,
            Cell::List(items) => items.iter().map(|s| s.len() + 24).sum::<usize>() + 24,
            _ => 16,
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => write!(f, "null"),
            Cell::Str(s) => write!(f, "{s:?}"),
            Cell::U64(n) => write!(f, "{n}"),
            Cell::I64(n) => write!(f, "{n}"),
            Cell::F64(x) => write!(f, "{x}"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::List(items) => write!(f, "{items:?}"),
            Cell::Json(s) => write!(f, "{s}"),
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

/// Serializes a record (a struct or a map) into `(field name, cell)`
/// pairs, in field order, handed to `put`.
pub(crate) fn cells<T: ?Sized + Serialize, F: FnMut(&str, Cell)>(record: &T, put: F) -> Result<(), Error> {
    record.serialize(RowSer { put })
}

struct RowSer<F> {
    put: F,
}

macro_rules! not_a_struct {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(self, _: $t) -> Result<(), Error> {
            Err(unsupported("a record that is not a struct"))
        }
    )*};
}

impl<F: FnMut(&str, Cell)> ser::Serializer for RowSer<F> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = RowMap<F>;
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
    fn serialize_map(self, _: Option<usize>) -> Result<RowMap<F>, Error> {
        Ok(RowMap { put: self.put, key: None })
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

impl<F: FnMut(&str, Cell)> ser::SerializeStruct for RowSer<F> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        let cell = value.serialize(CellSer)?;
        (self.put)(key, cell);
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// A record given as a map (a JSON object): text keys name the fields.
struct RowMap<F> {
    put: F,
    key: Option<String>,
}

impl<F: FnMut(&str, Cell)> ser::SerializeMap for RowMap<F> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        match key.serialize(CellSer)? {
            Cell::Str(k) => {
                self.key = Some(k);
                Ok(())
            }
            other => Err(Error(format!("a record's key is {other}, not text"))),
        }
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.key.take().unwrap_or_default();
        let cell = value.serialize(CellSer)?;
        (self.put)(&key, cell);
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// One field's value into a [`Cell`].
struct CellSer;

impl ser::Serializer for CellSer {
    type Ok = Cell;
    type Error = Error;
    type SerializeSeq = ListSer;
    type SerializeTuple = Impossible<Cell, Error>;
    type SerializeTupleStruct = Impossible<Cell, Error>;
    type SerializeTupleVariant = Impossible<Cell, Error>;
    type SerializeMap = MapSer;
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
        // As JSON numbers are: a non-negative integer is unsigned.
        Ok(u64::try_from(v).map_or(Cell::I64(v), Cell::U64))
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
        // As serde_json: a float that is not finite is null.
        Ok(if v.is_finite() { Cell::F64(v) } else { Cell::Null })
    }
    fn serialize_char(self, v: char) -> Result<Cell, Error> {
        Ok(Cell::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Cell, Error> {
        Ok(Cell::Str(v.to_string()))
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
        Ok(Cell::Str(variant.to_string()))
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
    fn serialize_seq(self, len: Option<usize>) -> Result<ListSer, Error> {
        Ok(ListSer(Vec::with_capacity(len.unwrap_or(0))))
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
    fn serialize_map(self, _: Option<usize>) -> Result<MapSer, Error> {
        Ok(MapSer(serde_json::Map::new(), None))
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

/// A list: of strings only.
struct ListSer(Vec<String>);

impl ser::SerializeSeq for ListSer {
    type Ok = Cell;
    type Error = Error;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        match v.serialize(CellSer)? {
            Cell::Str(s) => {
                self.0.push(s);
                Ok(())
            }
            other => Err(Error(format!("a list holds {other}, not text"))),
        }
    }

    fn end(self) -> Result<Cell, Error> {
        Ok(Cell::List(self.0))
    }
}

/// A map, kept as its JSON text (keys in the map's own order, as
/// serde_json writes a map).
struct MapSer(serde_json::Map<String, serde_json::Value>, Option<String>);

impl ser::SerializeMap for MapSer {
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
        Ok(Cell::Json(serde_json::Value::Object(self.0).to_string()))
    }
}
