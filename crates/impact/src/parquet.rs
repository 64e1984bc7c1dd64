//! Records to Parquet, one row group at a time.

use crate::file::{Group, ParquetFile, encodings_of, polars_err};
use crate::row::{Cell, Key};
use crate::schema::{FieldValues, Fields};
use std::any::TypeId;
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use polars::prelude::{
    ArrayRef, CompatLevel, DataType, Field, IntoSeries, ListBuilderTrait, ListStringChunkedBuilder, PlRandomState,
    PlSmallStr, Schema,
};
use polars_arrow::array::{BooleanArray, DictionaryArray, MutableBinaryViewArray, PrimitiveArray};
use polars_arrow::bitmap::{Bitmap, MutableBitmap};
use polars_arrow::datatypes::ArrowDataType;
use polars_arrow::types::NativeType;
use polars_parquet::write::Encoding;

/// The type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Str,
    /// Unsigned integer.
    U64,
    /// Signed integer.
    I64,
    /// Floating point.
    F64,
    /// true / false.
    Bool,
    /// A list of texts.
    StrList,
}

impl Kind {
    fn dtype(self) -> DataType {
        match self {
            Kind::Str => DataType::String,
            Kind::U64 => DataType::UInt64,
            Kind::I64 => DataType::Int64,
            Kind::F64 => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::StrList => DataType::List(Box::new(DataType::String)),
        }
    }

    /// Whether a value fits a column of this type.
    pub(crate) fn fits(self, c: &Cell) -> bool {
        matches!(
            (self, c),
            (_, Cell::Null)
                | (Kind::Str, Cell::Str(_) | Cell::Json(_))
                | (Kind::U64, Cell::U64(_))
                | (Kind::I64, Cell::I64(_))
                | (Kind::F64, Cell::F64(_) | Cell::U64(_) | Cell::I64(_))
                | (Kind::Bool, Cell::Bool(_))
                | (Kind::StrList, Cell::List(_))
        ) || matches!((self, c), (Kind::I64, Cell::U64(n)) if i64::try_from(*n).is_ok())
    }
}

/// Rows per row group: what the writer holds at most.
pub const ROW_GROUP_ROWS: usize = 16384;

/// Text bytes per row group: a row group ends at [`ROW_GROUP_ROWS`] rows or
/// once its rows hold this much text, whichever comes first, so that rows
/// with long texts (URLs of tens of kilobytes, say) do not make the writer
/// hold tens of thousands of them.
pub const ROW_GROUP_BYTES: usize = 8 << 20;

/// Text bytes per row group of the tables written beside the
/// transactions (sessions, pages, failures, users): a tenth of their size
/// or less, so smaller row groups cost their files little (a few per
/// cent) and cut what their four writers hold from 32 to 8 MiB.
pub const SIDE_TABLE_ROW_GROUP_BYTES: usize = 2 << 20;

/// Room for a record's texts kept from one record to the next.
const ROW_TEXT_KEPT: usize = 64 << 10;

/// Above this share of distinct values among its rows, a text column of
/// more than [`DICTIONARY_MIN_ROWS`] rows is written plain, not as a
/// dictionary: polars' rule, which polars applies to an estimate of the
/// count (a null counts as the empty text, as in polars' estimate).
const DICTIONARY_MAX_SHARE: f64 = 0.75;

/// Rows up to which a text column is always written as a dictionary.
const DICTIONARY_MIN_ROWS: usize = 128;

/// A free slot of [`StrCol`]'s index.
const FREE: u32 = u32::MAX;

/// A text column's values for the rows not yet written, kept as a
/// dictionary as they come: each distinct text once, in the order of its
/// first row, and each row as its text's index. Parquet writes a text
/// column as such a dictionary (or plain, when most values differ), so
/// polars neither estimates how many values differ nor hashes every value
/// again to build it; the pages are the ones polars writes from the whole
/// column.
struct StrCol {
    /// Each row's index into `values` (0 for a null row).
    keys: Vec<u32>,
    /// Which rows have a text.
    valid: MutableBitmap,
    nulls: usize,
    /// The distinct texts, in the order of their first rows.
    values: MutableBinaryViewArray<str>,
    /// Whether the empty text is among them.
    empty: bool,
    /// The last text's index, tried before the hash (neighbouring rows
    /// often share a method, version, host, type or outcome).
    last: Option<u32>,
    /// Each distinct text's hash.
    hashes: Vec<u64>,
    /// Open addressing over the distinct texts by hash: their indices, or
    /// [`FREE`]. A power of two long, at most half full.
    slots: Vec<u32>,
    state: PlRandomState,
}

impl StrCol {
    /// An empty column with room for `rows` rows.
    fn new(rows: usize) -> StrCol {
        StrCol {
            keys: Vec::with_capacity(rows),
            valid: MutableBitmap::with_capacity(rows),
            nulls: 0,
            values: MutableBinaryViewArray::new(),
            empty: false,
            last: None,
            hashes: Vec::new(),
            slots: Vec::new(),
            state: PlRandomState::default(),
        }
    }

    fn push(&mut self, v: Option<&str>) {
        let Some(text) = v else {
            self.keys.push(0);
            self.valid.push(false);
            self.nulls += 1;
            return;
        };
        if let Some(k) = self.last
            && self.values.value(k as usize) == text
        {
            self.keys.push(k);
            self.valid.push(true);
            return;
        }
        let hash = self.state.hash_one(text);
        if self.slots.len() < 2 * (self.hashes.len() + 1) {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        let key = loop {
            let k = self.slots[at];
            if k == FREE {
                // Fewer distinct texts than rows in a group (at most
                // ROW_GROUP_ROWS), so an index fits.
                let k = u32::try_from(self.hashes.len()).unwrap_or(FREE - 1);
                self.slots[at] = k;
                self.hashes.push(hash);
                self.values.push_value(text);
                self.empty |= text.is_empty();
                break k;
            }
            if self.hashes[k as usize] == hash && self.values.value(k as usize) == text {
                break k;
            }
            at = (at + 1) & mask;
        };
        self.last = Some(key);
        self.keys.push(key);
        self.valid.push(true);
    }

    /// Twice the slots (64 at first), the distinct texts placed again.
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(64);
        self.slots.clear();
        self.slots.resize(n, FREE);
        for (k, &hash) in self.hashes.iter().enumerate() {
            let mut at = hash as usize & (n - 1);
            while self.slots[at] != FREE {
                at = (at + 1) & (n - 1);
            }
            self.slots[at] = k as u32;
        }
    }

    /// The rows as an arrow array and its encoding (a dictionary, or
    /// plain when most texts differ), leaving the column empty with room
    /// for as many rows.
    fn take(&mut self) -> io::Result<(ArrayRef, Vec<Encoding>)> {
        let rows = self.keys.len();
        let col = std::mem::replace(self, StrCol::new(rows));
        let distinct = col.hashes.len() + usize::from(col.nulls > 0 && !col.empty);
        let validity: Option<Bitmap> = (col.nulls > 0).then(|| col.valid.into());
        if rows > DICTIONARY_MIN_ROWS && distinct as f64 / rows as f64 > DICTIONARY_MAX_SHARE {
            let mut plain = MutableBinaryViewArray::<str>::with_capacity(rows);
            for (i, &k) in col.keys.iter().enumerate() {
                match &validity {
                    Some(v) if !v.get_bit(i) => plain.push_null(),
                    _ => plain.push_value(col.values.value(k as usize)),
                }
            }
            return Ok((plain.freeze().boxed(), vec![Encoding::Plain]));
        }
        let keys = PrimitiveArray::<u32>::new(ArrowDataType::UInt32, col.keys.into(), validity);
        let dictionary =
            DictionaryArray::try_from_keys(keys, col.values.freeze().boxed(), false).map_err(polars_err)?;
        Ok((dictionary.boxed(), vec![Encoding::RleDictionary]))
    }
}

/// Values of one column for the rows not yet written.
enum Buffer {
    /// Boxed: a text column's dictionary is larger than a vector.
    Str(Box<StrCol>),
    U64(Prim<u64>),
    I64(Prim<i64>),
    F64(Prim<f64>),
    Bool(Prim<bool>),
    StrList(Vec<Option<Vec<String>>>),
}

impl Buffer {
    fn new(kind: Kind) -> Buffer {
        match kind {
            Kind::Str => Buffer::Str(Box::new(StrCol::new(0))),
            Kind::U64 => Buffer::U64(Prim::default()),
            Kind::I64 => Buffer::I64(Prim::default()),
            Kind::F64 => Buffer::F64(Prim::default()),
            Kind::Bool => Buffer::Bool(Prim::default()),
            Kind::StrList => Buffer::StrList(Vec::new()),
        }
    }

    /// Appends `c` (which [`Kind::fits`] the column; its text is in
    /// `text`).
    fn push_cell(&mut self, c: Cell, text: &str) {
        match (self, c) {
            (Buffer::Str(b), Cell::Str(r) | Cell::Json(r)) => b.push(Some(r.of(text))),
            (Buffer::U64(b), Cell::U64(n)) => b.push(Some(n)),
            (Buffer::I64(b), Cell::I64(n)) => b.push(Some(n)),
            (Buffer::I64(b), Cell::U64(n)) => b.push(i64::try_from(n).ok()),
            (Buffer::F64(b), Cell::F64(x)) => b.push(Some(x)),
            (Buffer::F64(b), Cell::U64(n)) => b.push(Some(n as f64)),
            (Buffer::F64(b), Cell::I64(n)) => b.push(Some(n as f64)),
            (Buffer::Bool(b), Cell::Bool(x)) => b.push(Some(x)),
            (Buffer::StrList(b), Cell::List(items)) => b.push(Some(*items)),
            (Buffer::Str(b), _) => b.push(None),
            (Buffer::U64(b), _) => b.push(None),
            (Buffer::I64(b), _) => b.push(None),
            (Buffer::F64(b), _) => b.push(None),
            (Buffer::Bool(b), _) => b.push(None),
            (Buffer::StrList(b), _) => b.push(None),
        }
    }

    /// The buffered values as an arrow array with its encoding, leaving
    /// the buffer empty (with room for as many: row groups are mostly of
    /// one size).
    fn take(&mut self, name: &str) -> io::Result<(ArrayRef, Vec<Encoding>)> {
        // Numbers and booleans become arrow arrays as they are (a series
        // of options made and rechunked was 208 M instructions of
        // `rh.pcap`'s `analyze`).
        let array: ArrayRef = match self {
            Buffer::Str(b) => return b.take(),
            Buffer::U64(b) => b.take_primitive(ArrowDataType::UInt64).boxed(),
            Buffer::I64(b) => b.take_primitive(ArrowDataType::Int64).boxed(),
            Buffer::F64(b) => b.take_primitive(ArrowDataType::Float64).boxed(),
            Buffer::Bool(b) => {
                let (values, validity) = b.take();
                BooleanArray::new(ArrowDataType::Boolean, Bitmap::from_iter(values), validity).boxed()
            }
            Buffer::StrList(b) => {
                let rows = std::mem::take(b);
                let values: usize = rows.iter().flatten().map(Vec::len).sum();
                let mut lb = ListStringChunkedBuilder::new(PlSmallStr::from(name), rows.len(), values.max(1));
                for r in rows {
                    match r {
                        Some(items) => lb.append_values_iter(items.iter().map(String::as_str)),
                        None => lb.append_null(),
                    }
                }
                // Built as one chunk; rechunked all the same, as `to_arrow`
                // takes one.
                lb.finish().into_series().rechunk().to_arrow(0, CompatLevel::newest())
            }
        };
        let encodings = encodings_of(array.dtype());
        Ok((array, encodings))
    }
}

/// A column of numbers or booleans for the rows not yet written: each
/// row's value (the type's default for a null row) and which rows have
/// one.
struct Prim<T> {
    values: Vec<T>,
    valid: MutableBitmap,
}

impl<T> Default for Prim<T> {
    fn default() -> Prim<T> {
        Prim { values: Vec::new(), valid: MutableBitmap::new() }
    }
}

impl<T: Copy + Default> Prim<T> {
    fn push(&mut self, v: Option<T>) {
        self.values.push(v.unwrap_or_default());
        self.valid.push(v.is_some());
    }

    /// The values and, if a row is null, which rows are not; leaving the
    /// column empty with room for as many rows.
    fn take(&mut self) -> (Vec<T>, Option<Bitmap>) {
        let rows = self.values.len();
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(rows));
        let valid = std::mem::replace(&mut self.valid, MutableBitmap::with_capacity(rows));
        (values, (valid.unset_bits() > 0).then(|| valid.into()))
    }
}

impl<T: Copy + Default + NativeType> Prim<T> {
    fn take_primitive(&mut self, dtype: ArrowDataType) -> PrimitiveArray<T> {
        let (values, validity) = self.take();
        PrimitiveArray::new(dtype, values.into(), validity)
    }
}

/// A record taken apart for the columns of a [`RowShape`]: its cells in
/// column order and its texts. Made ahead of the writer, on another
/// thread, so that the writer only appends it
/// ([`ParquetWriter::push_row`]).
#[derive(Debug)]
pub struct Row {
    cells: Vec<Cell>,
    text: String,
}

/// A cell of a [`Row`], borrowed: what its column takes of a record's
/// field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CellView<'r> {
    /// No value (none, unit, or a float that is not finite).
    Null,
    /// Text (a string, a character, an enum's unit variant).
    Text(&'r str),
    /// A non-negative integer.
    U64(u64),
    /// A negative integer.
    I64(i64),
    /// A finite float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A list of texts.
    List(&'r [String]),
    /// A map, as its JSON text (serde_json's, keys in its map's order).
    Json(&'r str),
}

impl Row {
    /// Its cells, in column order.
    pub fn cells(&self) -> impl Iterator<Item = CellView<'_>> + '_ {
        self.cells.iter().map(|c| match c {
            Cell::Null => CellView::Null,
            Cell::Str(r) => CellView::Text(r.of(&self.text)),
            Cell::U64(n) => CellView::U64(*n),
            Cell::I64(n) => CellView::I64(*n),
            Cell::F64(x) => CellView::F64(*x),
            Cell::Bool(b) => CellView::Bool(*b),
            Cell::List(items) => CellView::List(items),
            Cell::Json(r) => CellView::Json(r.of(&self.text)),
        })
    }

    /// Heap bytes it holds (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        let lists: usize = self
            .cells
            .iter()
            .map(|c| match c {
                Cell::List(items) => 24 + items.capacity() * 24 + items.iter().map(String::capacity).sum::<usize>(),
                _ => 0,
            })
            .sum();
        self.cells.capacity() * std::mem::size_of::<Cell>() + self.text.capacity() + lists
    }
}

/// Where a record's fields go among a writer's columns, and their types:
/// what takes records apart, on any thread ([`RowShape::row`]). Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct RowShape {
    columns: Arc<[(String, Kind)]>,
    /// Column indices in the order of their names, to find a key's column
    /// by binary search.
    by_name: Arc<[usize]>,
    /// For each column, the address of the struct field name last found to
    /// be its name (0: none yet). A struct's field names are `'static`
    /// texts: one at the same address and of the same length is the same
    /// name, so a record's fields are matched to their columns without
    /// comparing texts.
    fields: Arc<[AtomicUsize]>,
    /// The record type found to have exactly these columns
    /// ([`RowShape::record_row`]): its rows are taken apart by their
    /// values, in order, with no name to match.
    typed: Arc<OnceLock<TypeId>>,
}

thread_local! {
    /// Where [`RowShape::row`] gathers a row's text, kept from row to row:
    /// the row then gets it at its size in one allocation, where growing
    /// it from nothing took five or six. (Room made from the last row's
    /// size instead would depend on which thread took apart which row,
    /// and so would what the rows are reckoned to hold.)
    static ROW_TEXT: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}

impl RowShape {
    /// The shape of rows of these columns.
    pub fn new(columns: &[(&str, Kind)]) -> RowShape {
        let mut by_name: Vec<usize> = (0..columns.len()).collect();
        by_name.sort_by_key(|&i| columns[i].0);
        RowShape {
            columns: columns.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
            by_name: by_name.into(),
            fields: columns.iter().map(|_| AtomicUsize::new(0)).collect(),
            typed: Arc::new(OnceLock::new()),
        }
    }

    /// Whether `T`'s columns are these, in this order: its values then go
    /// to the columns one after another. Found once per shape.
    fn takes<T: Fields + 'static>(&self) -> bool {
        let id = TypeId::of::<T>();
        if self.typed.get() == Some(&id) {
            return true;
        }
        let same = self.columns.len() == T::FIELDS.len()
            && self.columns.iter().zip(T::FIELDS).all(|((n, k), (m, j))| n == m && k == j);
        same && *self.typed.get_or_init(|| id) == id
    }

    /// `record` taken apart into cells, as [`RowShape::row`] does, but by
    /// its values in field order when its type's columns are this shape's
    /// (what [`record!`](crate::record) declares): no field name is
    /// matched to its column. The same cells, the same errors.
    pub fn record_row<T: FieldValues + 'static>(&self, record: &T) -> io::Result<Row> {
        if !self.takes::<T>() {
            return self.row(record);
        }
        self.row_by(|cells, text| self.take_values(record, cells, text))
    }

    /// A row whose cells and text `take` fills (its text gathered in the
    /// thread's [`ROW_TEXT`]).
    fn row_by(&self, take: impl FnOnce(&mut [Cell], &mut String) -> io::Result<()>) -> io::Result<Row> {
        let mut cells: Vec<Cell> = self.columns.iter().map(|_| Cell::Null).collect();
        let mut scratch = ROW_TEXT.take();
        scratch.clear();
        let taken = take(&mut cells, &mut scratch);
        let text = scratch.as_str().to_owned();
        if scratch.capacity() <= ROW_TEXT_KEPT {
            ROW_TEXT.set(scratch);
        }
        taken?;
        Ok(Row { cells, text })
    }

    /// Takes `record`, whose columns are this shape's, apart into `cells`
    /// (one a column, all `Null`) and `text`. Every value fits its column
    /// without a check: each field's cell is made by its type's
    /// [`ColumnType`](crate::schema::ColumnType), of the type's column kind
    /// (or null), and the shape's kinds are the type's.
    fn take_values<T: FieldValues>(&self, record: &T, cells: &mut [Cell], text: &mut String) -> io::Result<()> {
        crate::row::values(record, cells, text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("parquet: {e}")))
    }

    /// `record` (a struct, or a JSON object) taken apart into cells; an
    /// error names the column when a value does not fit it.
    pub fn row<T: ?Sized + Serialize>(&self, record: &T) -> io::Result<Row> {
        self.row_by(|cells, text| self.take_apart(record, cells, text))
    }

    /// Takes `record` apart into `cells` (one a column, all `Null`) and
    /// `text`; checks that every value fits its column.
    fn take_apart<T: ?Sized + Serialize>(&self, record: &T, cells: &mut [Cell], text: &mut String) -> io::Result<()> {
        let (columns, by_name, fields) = (&self.columns, &self.by_name, &self.fields);
        // A struct's fields come in the columns' order: the next column is
        // tried first (by the field name's address once it is known), the
        // binary search by name is for the rest.
        let mut next = 0;
        let taken = crate::row::cells(record, text, |key, cell| {
            let known = match (key, columns.get(next), fields.get(next)) {
                (Key::Field(k), Some((name, _)), Some(seen)) => {
                    seen.load(Ordering::Relaxed) == k.as_ptr() as usize && name.len() == k.len()
                }
                _ => false,
            };
            let at = match columns.get(next) {
                _ if known => Some(next),
                Some((name, _)) if name == key.text() => Some(next),
                _ => by_name.binary_search_by(|&i| columns[i].0.as_str().cmp(key.text())).ok().map(|at| by_name[at]),
            };
            if let (Some(i), Key::Field(k), false) = (at, key, known)
                && let Some(seen) = fields.get(i)
            {
                seen.store(k.as_ptr() as usize, Ordering::Relaxed);
            }
            if let Some(i) = at {
                cells[i] = cell;
                next = i + 1;
            }
        });
        if let Err(e) = taken {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("parquet: {e}")));
        }
        self.fits(cells, text)
    }

    /// An error naming the first cell that does not fit its column.
    fn fits(&self, cells: &[Cell], text: &str) -> io::Result<()> {
        match self.columns.iter().zip(cells.iter()).find(|((_, kind), cell)| !kind.fits(cell)) {
            Some(((name, kind), cell)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("parquet: column {name} is {kind:?}, the record has {}", cell.show(text)),
            )),
            None => Ok(()),
        }
    }
}

/// Streams records into a Parquet file (row groups of [`ROW_GROUP_ROWS`]
/// rows, compressed with zstd at level 1).
///
/// Each record is a JSON object; the declared columns are read from it by
/// name, in order (a missing key is null). A value of the wrong type is an
/// error naming the column: the declared schema and the records must agree.
pub struct ParquetWriter<W: Write> {
    file: ParquetFile<W>,
    shape: RowShape,
    buffers: Vec<Buffer>,
    /// The record being taken apart: its cells by column (all `Null`
    /// between records) and its texts, kept from record to record so a
    /// row costs no allocation.
    cells: Vec<Cell>,
    text: String,
    rows: usize,
    /// Text bytes of the buffered rows.
    bytes: usize,
    total: u64,
    /// Text bytes that end a row group ([`ROW_GROUP_BYTES`] unless set).
    max_bytes: usize,
}

impl<W: Write> ParquetWriter<W> {
    /// A writer of these columns into `out`.
    pub fn new(out: W, columns: &[(&str, Kind)]) -> io::Result<ParquetWriter<W>> {
        let schema: Schema =
            columns.iter().map(|(n, k)| Field::new(PlSmallStr::from(*n), k.dtype())).collect::<Schema>();
        Ok(ParquetWriter {
            file: ParquetFile::new(out, schema)?,
            shape: RowShape::new(columns),
            buffers: columns.iter().map(|(_, k)| Buffer::new(*k)).collect(),
            cells: columns.iter().map(|_| Cell::Null).collect(),
            text: String::new(),
            rows: 0,
            bytes: 0,
            total: 0,
            max_bytes: ROW_GROUP_BYTES,
        })
    }

    /// Ends row groups at `bytes` of text instead of [`ROW_GROUP_BYTES`].
    pub fn set_row_group_bytes(&mut self, bytes: usize) {
        self.max_bytes = bytes.max(1);
    }

    /// Rows written or buffered so far.
    pub fn rows(&self) -> u64 {
        self.total
    }

    /// Row groups written so far.
    pub fn row_groups(&self) -> u64 {
        self.file.row_groups() as u64
    }

    /// Appends one record given as a JSON object (nothing of it when a
    /// value does not fit); the same as [`ParquetWriter::push_record`].
    pub fn push(&mut self, record: &serde_json::Value) -> io::Result<()> {
        self.push_record(record)
    }

    /// Appends one record (a struct, or a JSON object), taken apart field
    /// by field straight into the columns (no JSON tree is built); nothing
    /// of it when a value does not fit its column.
    pub fn push_record<T: ?Sized + Serialize>(&mut self, record: &T) -> io::Result<()> {
        self.text.clear();
        if let Err(e) = self.shape.take_apart(record, &mut self.cells, &mut self.text) {
            self.cells.iter_mut().for_each(|c| *c = Cell::Null);
            return Err(e);
        }
        self.push_taken()
    }

    /// Appends the record taken apart into `self.cells` and `self.text`.
    fn push_taken(&mut self) -> io::Result<()> {
        let (mut cells, text) = (std::mem::take(&mut self.cells), std::mem::take(&mut self.text));
        self.push_cells(&mut cells, &text);
        (self.cells, self.text) = (cells, text);
        if self.text.capacity() > ROW_TEXT_KEPT {
            // A record of very long texts does not keep its room.
            self.text = String::new();
        }
        self.row_done()
    }

    /// Appends one record as [`ParquetWriter::push_record`] does, taken
    /// apart by its values in field order when its type's columns are this
    /// writer's ([`RowShape::record_row`]).
    pub fn push_values<T: FieldValues + 'static>(&mut self, record: &T) -> io::Result<()> {
        if !self.shape.takes::<T>() {
            return self.push_record(record);
        }
        self.text.clear();
        if let Err(e) = self.shape.take_values(record, &mut self.cells, &mut self.text) {
            self.cells.iter_mut().for_each(|c| *c = Cell::Null);
            return Err(e);
        }
        self.push_taken()
    }

    /// Appends a record taken apart ahead of time by [`RowShape::row`]
    /// (for the columns this writer was made with).
    pub fn push_row(&mut self, mut row: Row) -> io::Result<()> {
        let columns = &self.shape.columns;
        if row.cells.len() != columns.len() || columns.iter().zip(&row.cells).any(|((_, k), c)| !k.fits(c)) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "parquet: a row taken apart for other columns"));
        }
        self.push_cells(&mut row.cells, &row.text);
        self.row_done()
    }

    /// The shape of this writer's rows, to take records apart elsewhere.
    pub fn shape(&self) -> RowShape {
        self.shape.clone()
    }

    /// Moves one record's cells (which fit their columns) into the
    /// buffers, leaving them `Null`.
    fn push_cells(&mut self, cells: &mut [Cell], text: &str) {
        for (buf, cell) in self.buffers.iter_mut().zip(cells.iter_mut()) {
            let cell = std::mem::take(cell);
            self.bytes += cell.text_bytes();
            buf.push_cell(cell, text);
        }
    }

    fn row_done(&mut self) -> io::Result<()> {
        self.rows += 1;
        self.total += 1;
        if self.rows >= ROW_GROUP_ROWS || self.bytes >= self.max_bytes {
            self.flush_rows()?;
        }
        Ok(())
    }

    fn flush_rows(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let columns = self
            .shape
            .columns
            .iter()
            .zip(self.buffers.iter_mut())
            .map(|((n, _), b)| b.take(n))
            .collect::<io::Result<Vec<_>>>()?;
        self.file.write_groups(vec![Group { rows: self.rows, columns }])?;
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_rows()?;
        self.file.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{DataFrame, NamedFrom, ParquetReader, SerReader, Series};

    const COLS: &[(&str, Kind)] = &[
        ("name", Kind::Str),
        ("n", Kind::U64),
        ("d", Kind::I64),
        ("x", Kind::F64),
        ("ok", Kind::Bool),
        ("tags", Kind::StrList),
    ];

    fn read(bytes: Vec<u8>) -> DataFrame {
        ParquetReader::new(io::Cursor::new(bytes)).finish().unwrap()
    }

    /// Rows with long texts end their row group early: the writer holds
    /// about [`ROW_GROUP_BYTES`] of them, not [`ROW_GROUP_ROWS`].
    #[test]
    fn long_texts_end_row_groups_by_bytes() {
        let mut w = ParquetWriter::new(Vec::new(), &[("url", Kind::Str)]).unwrap();
        let long = "u".repeat(1 << 20);
        for _ in 0..40 {
            w.push(&serde_json::json!({"url": long})).unwrap();
        }
        assert_eq!(w.row_groups(), 40 / 8, "a group every 8 rows of 1 MiB");
        let bytes = w.finish().unwrap();
        let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish().unwrap();
        assert_eq!(df.height(), 40);

        // A writer told a smaller size ends its groups sooner.
        let mut w = ParquetWriter::new(Vec::new(), &[("url", Kind::Str)]).unwrap();
        w.set_row_group_bytes(SIDE_TABLE_ROW_GROUP_BYTES);
        for _ in 0..40 {
            w.push(&serde_json::json!({"url": long})).unwrap();
        }
        assert_eq!(w.row_groups(), 40 / 2, "a group every 2 rows of 1 MiB");
        assert_eq!(read(w.finish().unwrap()).height(), 40);
    }

    #[test]
    fn round_trips_every_kind_with_nulls_across_row_groups() {
        let mut w = ParquetWriter::new(Vec::new(), COLS).unwrap();
        let rows = ROW_GROUP_ROWS + 3;
        for i in 0..rows {
            let rec = if i % 2 == 0 {
                serde_json::json!({"name": format!("r{i}"), "n": i, "d": -(i as i64), "x": i as f64 / 2.0,
                    "ok": i % 4 == 0, "tags": ["a", format!("t{i}")]})
            } else {
                serde_json::json!({"name": null, "n": null, "tags": []})
            };
            w.push(&rec).unwrap();
        }
        assert_eq!(w.rows(), rows as u64);
        let df = read(w.finish().unwrap());
        assert_eq!(df.height(), rows);
        assert_eq!(df.width(), COLS.len());
        let n = df.column("n").unwrap().u64().unwrap();
        assert_eq!(n.get(0), Some(0));
        assert_eq!(n.get(1), None);
        assert_eq!(n.get(rows - 1), Some((rows - 1) as u64), "the row after the first row group");
        assert_eq!(df.column("d").unwrap().i64().unwrap().get(2), Some(-2));
        assert_eq!(df.column("x").unwrap().f64().unwrap().get(4), Some(2.0));
        assert_eq!(df.column("ok").unwrap().bool().unwrap().get(4), Some(true));
        assert_eq!(df.column("name").unwrap().str().unwrap().get(2), Some("r2"));
        let tags = df.column("tags").unwrap().list().unwrap();
        let t2 = tags.get_as_series(2).unwrap();
        let t2 = t2.str().unwrap();
        assert_eq!((0..t2.len()).map(|i| t2.get(i)).collect::<Vec<_>>(), vec![Some("a"), Some("t2")]);
        assert_eq!(tags.get_as_series(1).unwrap().len(), 0);
    }

    /// `texts` written by polars' own writer as one row group of text
    /// columns `c0`, `c1`, ... (`None`: null).
    fn texts_by_polars(texts: &[Vec<Option<String>>]) -> Vec<u8> {
        use polars::prelude::Column;
        let rows = texts[0].len();
        let cols: Vec<Column> =
            texts.iter().enumerate().map(|(i, t)| Column::from(Series::new(format!("c{i}").into(), t))).collect();
        let mut df = DataFrame::new(rows, cols).unwrap();
        let mut out = Vec::new();
        polars::io::parquet::write::ParquetWriter::new(&mut out)
            .with_compression(crate::file::compression())
            .finish(&mut df)
            .unwrap();
        out
    }

    /// The same through [`ParquetWriter`], one record a row.
    fn texts_by_us(texts: &[Vec<Option<String>>]) -> Vec<u8> {
        let names: Vec<String> = (0..texts.len()).map(|i| format!("c{i}")).collect();
        let cols: Vec<(&str, Kind)> = names.iter().map(|n| (n.as_str(), Kind::Str)).collect();
        let mut w = ParquetWriter::new(Vec::new(), &cols).unwrap();
        for r in 0..texts[0].len() {
            let rec: serde_json::Map<String, serde_json::Value> =
                names.iter().zip(texts).map(|(n, t)| (n.clone(), serde_json::json!(t[r]))).collect();
            w.push(&serde_json::Value::Object(rec)).unwrap();
        }
        w.finish().unwrap()
    }

    /// Whether column `c` of the first row group has a dictionary.
    fn has_dictionary(file: &[u8], c: usize) -> bool {
        let meta = crate::file::footer(file).unwrap();
        let m = meta.row_groups[0].columns[c].meta_data.as_ref().unwrap();
        m.encodings.contains(&polars_parquet_format::Encoding::RLE_DICTIONARY)
    }

    /// Text columns, kept as dictionaries while their rows come, are
    /// written as the pages polars writes from the whole column: a
    /// dictionary of the texts in the order of their first rows when few
    /// differ, plain when most do.
    #[test]
    fn text_columns_are_the_pages_polars_writes() {
        let rows = 3000;
        let texts: Vec<Vec<Option<String>>> = vec![
            // Five texts and nulls: a dictionary.
            (0..rows).map(|i| (i % 11 != 0).then(|| ["a", "bb", "", "zz", "é"][i % 5].to_string())).collect(),
            // Every text its own, some longer than a view holds inline.
            (0..rows).map(|i| Some(format!("/item/{i}/{}", "x".repeat(i % 40)))).collect(),
            // Half of them repeated (0.5 of the rows distinct).
            (0..rows).map(|i| Some(format!("user-{}", i / 2))).collect(),
            // All null.
            (0..rows).map(|_| None).collect(),
            // Long texts of few values, with nulls and the empty text.
            (0..rows)
                .map(|i| (i % 3 != 0).then(|| ["", &"q".repeat(200), "ünïcödé text"][i % 3].to_string()))
                .collect(),
        ];
        let (theirs, ours) = (texts_by_polars(&texts), texts_by_us(&texts));
        let (a, b) = (read(theirs.clone()), read(ours.clone()));
        assert!(a.equals_missing(&b), "{a}\n{b}");
        assert_eq!(
            (0..texts.len()).map(|c| has_dictionary(&ours, c)).collect::<Vec<_>>(),
            [true, false, true, true, true]
        );
        // polars' page index starts where the last row group ends; up to
        // there the files are the same bytes.
        let meta = crate::file::footer(&theirs).unwrap();
        let data_end =
            meta.row_groups.iter().flat_map(|g| &g.columns).filter_map(|c| c.column_index_offset).min().unwrap();
        assert!(theirs[..data_end as usize] == ours[..data_end as usize], "the same pages");
    }

    /// The rule between a dictionary and plain texts: at most 128 rows, a
    /// dictionary; above, plain once more than three in four rows differ
    /// (a null counting as the empty text).
    #[test]
    fn most_texts_distinct_are_written_plain() {
        let distinct = |rows: usize, share: f64| -> Vec<Option<String>> {
            let n = ((rows as f64 * share) as usize).max(1);
            (0..rows).map(|i| Some(format!("v{}", i % n))).collect()
        };
        for (rows, share, dictionary) in
            [(128, 1.0, true), (129, 1.0, false), (1000, 0.74, true), (1000, 0.76, false), (1000, 0.75, true)]
        {
            let file = texts_by_us(&[distinct(rows, share)]);
            assert_eq!(has_dictionary(&file, 0), dictionary, "{rows} rows, {share} distinct");
            let back = read(file);
            let col = back.column("c0").unwrap().str().unwrap();
            assert_eq!(col.get(rows - 1), distinct(rows, share)[rows - 1].as_deref());
        }
        // 750 texts and nulls in 1000 rows: the nulls are one more value.
        let mut t = distinct(1000, 0.75);
        t[999] = None;
        t[998] = None;
        assert!(!has_dictionary(&texts_by_us(&[t.clone()]), 0), "750 texts and a null: 751 values");
        for v in t.iter_mut().filter(|v| v.as_deref() == Some("v0")) {
            *v = Some(String::new());
        }
        assert!(has_dictionary(&texts_by_us(&[t]), 0), "the empty text among the 750: 750 values");
    }

    #[test]
    fn an_empty_output_is_a_valid_file_with_the_columns() {
        let w = ParquetWriter::new(Vec::new(), COLS).unwrap();
        let df = read(w.finish().unwrap());
        assert_eq!((df.height(), df.width()), (0, COLS.len()));
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_column() {
        let mut w = ParquetWriter::new(Vec::new(), COLS).unwrap();
        let e = w.push(&serde_json::json!({"name": "a", "n": "seven"})).unwrap_err();
        assert!(e.to_string().contains("column n"), "{e}");
        // Nothing of the refused record was kept.
        w.push(&serde_json::json!({"name": "b", "n": 2})).unwrap();
        let df = read(w.finish().unwrap());
        assert_eq!(df.height(), 1);
        assert_eq!(df.column("name").unwrap().str().unwrap().get(0), Some("b"));
    }

    #[test]
    fn records_taken_apart_write_what_their_json_writes() {
        #[derive(serde::Serialize)]
        struct Rec {
            name: Option<String>,
            n: u32,
            d: i64,
            x: f64,
            ok: bool,
            tags: Vec<String>,
            by_kind: std::collections::BTreeMap<String, u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            unused: &'static str,
        }
        let cols: Vec<(&str, Kind)> =
            COLS.iter().copied().chain([("by_kind", Kind::Str), ("skipped", Kind::U64)]).collect();
        let recs = [
            Rec {
                name: Some("r0".into()),
                n: 7,
                d: -3,
                x: 0.25,
                ok: true,
                tags: vec!["a".into(), "b".into()],
                by_kind: [("slow".to_string(), 2)].into(),
                skipped: None,
                unused: "x",
            },
            Rec {
                name: None,
                n: 0,
                d: 9,
                x: f64::NAN,
                ok: false,
                tags: vec![],
                by_kind: Default::default(),
                skipped: Some(1),
                unused: "y",
            },
        ];
        let (mut a, mut b, mut c) = (
            ParquetWriter::new(Vec::new(), &cols).unwrap(),
            ParquetWriter::new(Vec::new(), &cols).unwrap(),
            ParquetWriter::new(Vec::new(), &cols).unwrap(),
        );
        // Rows taken apart elsewhere, by a shape made from the same columns
        // (as the shards make them), write the same file.
        let shape = RowShape::new(&cols);
        let rows: Vec<Row> =
            std::thread::scope(|s| s.spawn(|| recs.iter().map(|r| shape.row(r).unwrap()).collect()).join().unwrap());
        for (r, row) in recs.iter().zip(rows) {
            a.push(&serde_json::to_value(r).unwrap()).unwrap();
            b.push_record(r).unwrap();
            assert!(row.heap_bytes() >= cols.len() * 16);
            c.push_row(row).unwrap();
        }
        let (a, b, c) = (a.finish().unwrap(), b.finish().unwrap(), c.finish().unwrap());
        assert_eq!(b, c, "rows and records: the same bytes");
        let (a, b) = (read(a), read(b));
        assert!(a.equals_missing(&b), "{a}\n{b}");
        assert_eq!(b.column("by_kind").unwrap().str().unwrap().get(0), Some(r#"{"slow":2}"#));
        assert_eq!(b.column("d").unwrap().i64().unwrap().get(1), Some(9));
        assert_eq!(b.column("x").unwrap().f64().unwrap().get(1), None, "NaN is null, as in JSON");
        // A value of the wrong type is refused, naming the column.
        #[derive(serde::Serialize)]
        struct Bad {
            n: &'static str,
        }
        let mut w = ParquetWriter::new(Vec::new(), COLS).unwrap();
        let e = w.push_record(&Bad { n: "seven" }).unwrap_err();
        assert!(e.to_string().contains("column n"), "{e}");
        let e = RowShape::new(COLS).row(&Bad { n: "seven" }).unwrap_err();
        assert!(e.to_string().contains("column n"), "{e}");
        // A row taken apart for other columns is refused whole.
        let other = RowShape::new(&cols).row(&recs[0]).unwrap();
        assert!(w.push_row(other).is_err());
        assert_eq!(w.rows(), 0);
    }

    crate::record! {
        #[derive(Clone)]
        struct Declared {
            name: Option<String>,
            n: u32,
            #[serde(rename = "d.signed")]
            d: i64,
            x: f64,
            ok: Option<bool>,
            tags: Vec<String>,
            by_kind: std::collections::BTreeMap<String, u64>,
            word: std::borrow::Cow<'static, str>,
            small: i8,
            ratio: f32,
            count: usize,
            label: &'static str,
        }
        columns DeclaredColumns;
    }

    /// A record taken apart by its values in field order gives the cells
    /// its fields matched to columns by name give, and writes the same
    /// file; a shape of other columns takes it apart by name.
    #[test]
    fn records_taken_apart_by_their_values_are_taken_apart_by_name() {
        let recs = [
            Declared {
                name: Some("r0".into()),
                n: 7,
                d: -3,
                x: 0.25,
                ok: Some(true),
                tags: vec!["a".into(), "b".into()],
                by_kind: [("slow".to_string(), 2), ("error".to_string(), 1)].into(),
                word: "page".into(),
                small: -128,
                ratio: f32::NAN,
                count: usize::MAX,
                label: "",
            },
            Declared {
                name: None,
                n: u32::MAX,
                d: 9,
                x: f64::INFINITY,
                ok: None,
                tags: vec![],
                by_kind: Default::default(),
                word: String::from("é\u{0}\"").into(),
                small: 7,
                ratio: 0.5,
                count: 0,
                label: "a\nb",
            },
        ];
        let shape = RowShape::new(Declared::FIELDS);
        let (mut by_name, mut by_values) = (
            ParquetWriter::new(Vec::new(), Declared::FIELDS).unwrap(),
            ParquetWriter::new(Vec::new(), Declared::FIELDS).unwrap(),
        );
        for r in &recs {
            let (a, b) = (shape.row(r).unwrap(), shape.record_row(r).unwrap());
            assert_eq!(a.cells().collect::<Vec<_>>(), b.cells().collect::<Vec<_>>());
            assert_eq!(a.heap_bytes(), b.heap_bytes());
            by_name.push_record(r).unwrap();
            by_values.push_values(r).unwrap();
        }
        assert!(shape.takes::<Declared>());
        assert_eq!(by_name.finish().unwrap(), by_values.finish().unwrap(), "the same bytes");
        // Other columns (fewer, or the same names in another order): taken
        // apart by name.
        let fewer: Vec<(&str, Kind)> = Declared::FIELDS.iter().copied().filter(|(n, _)| *n != "x").collect();
        let mut turned = Declared::FIELDS.to_vec();
        turned.swap(0, 1);
        for cols in [fewer, turned] {
            let other = RowShape::new(&cols);
            for r in &recs {
                let (a, b) = (other.row(r).unwrap(), other.record_row(r).unwrap());
                assert_eq!(a.cells().collect::<Vec<_>>(), b.cells().collect::<Vec<_>>());
            }
            assert!(!other.takes::<Declared>());
        }
    }
}
