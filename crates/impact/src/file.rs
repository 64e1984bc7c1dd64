//! A Parquet file put together one row group at a time, keeping of each
//! only its entry in the footer.
//!
//! polars' `FileWriter` keeps, until it writes the footer, the write spec
//! of every page (for the page index it writes at the end) and the
//! metadata of every column chunk, as structs: about 4.4 KB a column chunk.
//! A night's `transactions.parquet` (59 columns) held 32 MB of them at
//! 16 GB of traffic, so the memory of every Parquet output grew with the
//! night's length.
//!
//! Here polars encodes each row group as a small file of its own, in
//! memory. Its pages are copied to the output unchanged, each column
//! chunk's metadata (which polars writes after the chunk's pages too, and
//! in the footer) with its offsets moved to where the pages now sit, and
//! the row group's entry in the footer is kept in Thrift's compact form,
//! 75 to 100 bytes a column chunk, until the footer is written. So the file
//! is byte for byte the one polars writes in one go, up to the page index
//! (the column and offset indexes), which is left out: the row groups'
//! metadata keeps its statistics, and readers do without it. With row
//! groups of one or two pages a column, the page index held little that
//! the row group's statistics do not.

use std::io::{self, Write};

#[cfg(test)]
use polars::prelude::DataFrame;
use polars::prelude::{ArrayRef, CompatLevel, ParquetCompression, Schema};
use polars_parquet::write::Encoding;
use polars_parquet_format::thrift::protocol::{
    TCompactInputProtocol, TCompactOutputProtocol, TFieldIdentifier, TListIdentifier, TOutputProtocol,
    TStructIdentifier, TType,
};
use polars_parquet_format::{ColumnChunk, FileMetaData, RowGroup};

/// What a Parquet file starts and ends with.
const MAGIC: &[u8; 4] = b"PAR1";

/// Scratch room kept from one row group to the next (more is given back).
const SCRATCH_KEPT: usize = 16 << 20;

/// A Parquet file written into `W` one row group at a time.
pub(crate) struct ParquetFile<W: Write> {
    out: W,
    /// Bytes written to `out` so far.
    offset: u64,
    schema: Schema,
    /// The file's metadata but its row groups (schema, key-value metadata,
    /// writer, column orders), as polars writes it for these columns.
    meta: FileMetaData,
    /// The metadata of the row groups written, one after another in
    /// Thrift's compact form.
    groups: Vec<u8>,
    n_groups: usize,
    rows: i64,
    /// Where polars writes each row group as a file of its own.
    scratch: Vec<u8>,
    /// A column chunk's metadata, as written after its pages.
    copy: Vec<u8>,
}

impl<W: Write> ParquetFile<W> {
    /// A file of these columns written into `out`.
    pub(crate) fn new(out: W, schema: Schema) -> io::Result<ParquetFile<W>> {
        let empty = encode(&schema, Vec::new(), Vec::new())?;
        let (meta, _) = footer_at(&empty)?;
        if !meta.row_groups.is_empty() {
            return Err(layout_err("an empty file with row groups"));
        }
        if meta.encryption_algorithm.is_some() || meta.footer_signing_key_metadata.is_some() {
            // Not written below: pov never encrypts.
            return Err(layout_err("an encrypted footer"));
        }
        Ok(ParquetFile {
            out,
            offset: 0,
            schema,
            meta,
            groups: Vec::new(),
            n_groups: 0,
            rows: 0,
            scratch: empty,
            copy: Vec::new(),
        })
    }

    /// Encodes `df` (one row group per chunk of its columns, encoded as
    /// [`encodings_of`] says) and writes it.
    #[cfg(test)]
    pub(crate) fn write(&mut self, df: &DataFrame) -> io::Result<()> {
        self.write_groups(groups_of(df))
    }

    /// Encodes these row groups (of this file's columns, in order) and
    /// writes them.
    pub(crate) fn write_groups(&mut self, groups: Vec<Group>) -> io::Result<()> {
        let mut bytes = encode(&self.schema, groups, std::mem::take(&mut self.scratch))?;
        let (meta, footer_at) = footer_at(&bytes)?;
        let layout = chunks(&meta.row_groups, footer_at)?;
        if self.offset == 0 {
            self.out.write_all(MAGIC)?;
            self.offset = MAGIC.len() as u64;
        }
        for (mut group, chunks) in meta.row_groups.into_iter().zip(layout) {
            let mut first = None;
            for (c, (start, pages_end, copy_end)) in group.columns.iter_mut().zip(chunks) {
                let too_long = || io::Error::other("parquet: a file past 2^63 bytes");
                let moved = i64::try_from(self.offset).map_err(|_| too_long())?
                    - i64::try_from(start).map_err(|_| too_long())?;
                let m = c.meta_data.as_mut().ok_or_else(|| layout_err("a column chunk without metadata"))?;
                // After its pages polars writes a copy of the chunk's
                // metadata, whose offsets move with the pages.
                self.copy.clear();
                m.write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut self.copy)).map_err(thrift_err)?;
                if bytes[pages_end..copy_end] != self.copy[..] {
                    return Err(layout_err("something else than a column chunk's metadata after its pages"));
                }
                relocate(c, moved);
                first.get_or_insert(moved);
                self.copy.clear();
                let m = c.meta_data.as_ref().ok_or_else(|| layout_err("a column chunk without metadata"))?;
                m.write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut self.copy)).map_err(thrift_err)?;
                self.out.write_all(&bytes[start..pages_end])?;
                self.out.write_all(&self.copy)?;
                self.offset += (pages_end - start + self.copy.len()) as u64;
            }
            group.file_offset = group.file_offset.zip(first).map(|(o, by)| o + by);
            group.ordinal = i16::try_from(self.n_groups).ok();
            self.rows += group.num_rows;
            self.n_groups += 1;
            group.write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut self.groups)).map_err(thrift_err)?;
        }
        if bytes.capacity() <= SCRATCH_KEPT {
            bytes.clear();
            self.scratch = bytes;
        }
        Ok(())
    }

    /// Row groups written so far.
    pub(crate) fn row_groups(&self) -> usize {
        self.n_groups
    }

    /// Writes the footer; returns the output.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.offset == 0 {
            self.out.write_all(MAGIC)?;
        }
        let mut counted = Counted { out: &mut self.out, n: 0 };
        write_footer(
            &mut TCompactOutputProtocol::new(&mut counted),
            &self.meta,
            &self.groups,
            self.n_groups,
            self.rows,
        )
        .map_err(thrift_err)?;
        let len = u32::try_from(counted.n).map_err(|_| layout_err("a footer of 4 GiB or more"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(MAGIC)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// zstd's level for every page: 1, not polars' default (3). On a
/// request-heavy night, 1.6 % fewer instructions in all (every page is
/// compressed on the thread that writes records in order) for files 1.1 %
/// larger (docs/PERFORMANCE.md).
const ZSTD_LEVEL: i32 = 1;

/// How pages are compressed.
pub(crate) fn compression() -> ParquetCompression {
    ParquetCompression::Zstd(polars_parquet::write::ZstdLevel::try_new(ZSTD_LEVEL).ok())
}

/// One row group: its columns as arrow arrays, in the file's order, each
/// with the encoding of each of its leaves.
pub(crate) struct Group {
    pub(crate) rows: usize,
    pub(crate) columns: Vec<(ArrayRef, Vec<Encoding>)>,
}

/// `df`'s row groups (one per chunk of its columns), as polars' batched
/// writer takes them apart, with the encodings of [`encodings_of`].
#[cfg(test)]
fn groups_of(df: &DataFrame) -> Vec<Group> {
    df.iter_chunks(CompatLevel::newest(), false)
        .map(|batch| Group {
            rows: batch.len(),
            columns: batch.columns().iter().map(|a| (a.clone(), encodings_of(a.dtype()))).collect(),
        })
        .collect()
}

/// `groups` (maybe none) as a whole Parquet file, written by polars into
/// `scratch` (cleared first), page by page as polars' batched writer
/// writes it, with the groups' encodings.
fn encode(schema: &Schema, groups: Vec<Group>, mut scratch: Vec<u8>) -> io::Result<Vec<u8>> {
    use polars_parquet::read::ParquetError;
    use polars_parquet::write::{
        DynIter, DynStreamingIterator, FileWriter, StatisticsOptions, Version, WriteOptions, array_to_columns,
        to_parquet_schema,
    };
    scratch.clear();
    let arrow = polars::io::schema_to_arrow_checked(schema, CompatLevel::newest(), "parquet").map_err(polars_err)?;
    let fields = to_parquet_schema(&arrow).map_err(polars_err)?;
    let options = WriteOptions {
        statistics: StatisticsOptions::default(),
        compression: compression().into(),
        version: Version::V1,
        data_page_size: None,
    };
    // On the calling thread: the pipeline's shards and the sessions need
    // the others (a run chooses its threads).
    let mut w = FileWriter::try_new(scratch, arrow, options).map_err(polars_err)?;
    let zstd = Zstd::default();
    for group in groups {
        if group.rows == 0 {
            continue;
        }
        if group.columns.len() != fields.fields().len() {
            return Err(layout_err("a row group of other columns"));
        }
        let mut columns = Vec::with_capacity(fields.fields().len());
        for ((array, encoding), field) in group.columns.iter().zip(fields.fields()) {
            for pages in array_to_columns(array, field.clone(), options, encoding).map_err(polars_err)? {
                // Compressed here, with one zstd context for the call, as
                // polars' `Compressor` would (which makes a context and
                // zero-fills the output's room for every page).
                // (A compression error reads as polars' own does: an I/O error.)
                let pages = pages.map(|p| {
                    p.map_err(|e| ParquetError::FeatureNotSupported(format!("{e}")))
                        .and_then(|p| compress_page(&zstd, p).map_err(ParquetError::from))
                });
                columns.push(Ok(DynStreamingIterator::new(Compressed { pages, current: None })));
            }
        }
        w.write(group.rows as u64, DynIter::new(columns.into_iter())).map_err(polars_err)?;
    }
    w.end(None).map_err(polars_err)?;
    Ok(w.into_inner())
}

/// A zstd context for the pages of one `encode` call (made at its first
/// page). Kept across calls, one a thread, it held 16 MiB more at the peak
/// of a request-heavy run.
/// (A mutex, never contended: polars' writer wants its page iterators
/// `Send`.)
type Zstd = std::sync::Mutex<Option<zstd::bulk::Compressor<'static>>>;

/// `input` compressed by zstd at [`ZSTD_LEVEL`], appended to `out`: the
/// bytes `zstd::bulk::compress_to_buffer` gives polars, from one context
/// for a row group's pages (one made for every page cost 21,000
/// instructions, most of them zeroing its tables, and polars zero-fills the
/// output's room).
fn zstd_into(zstd: &Zstd, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.reserve(zstd::zstd_safe::compress_bound(input.len()));
    let mut z = zstd.lock().map_err(|_| io::Error::other("parquet: zstd's context was left broken"))?;
    let c = match z.as_mut() {
        Some(c) => c,
        None => z.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
    };
    c.compress_to_buffer(input, out).map(|_| ())
}

/// A page compressed as polars' `Compressor` compresses it with zstd.
fn compress_page(
    zstd: &Zstd,
    page: polars_parquet::parquet::page::Page,
) -> io::Result<polars_parquet::parquet::page::CompressedPage> {
    use polars_parquet::parquet::CowBuffer;
    use polars_parquet::parquet::compression::Compression;
    use polars_parquet::parquet::page::{CompressedDataPage, CompressedDictPage, CompressedPage, DataPageHeader, Page};
    match page {
        Page::Data(p) => {
            let header = p.header().clone();
            if !matches!(header, DataPageHeader::V1(_)) {
                // (`encode` asks for version 1 pages.)
                return Err(layout_err("a version 2 data page"));
            }
            let mut out = Vec::new();
            zstd_into(zstd, p.buffer(), &mut out)?;
            let uncompressed = p.buffer().len();
            let rows = p.num_rows.ok_or_else(|| layout_err("a data page without its number of rows"))?;
            Ok(CompressedPage::Data(CompressedDataPage::new(
                header,
                CowBuffer::Owned(out),
                Compression::Zstd,
                uncompressed,
                p.descriptor,
                rows,
            )))
        }
        Page::Dict(d) => {
            let mut out = Vec::new();
            zstd_into(zstd, &d.buffer, &mut out)?;
            Ok(CompressedPage::Dict(CompressedDictPage::new(
                CowBuffer::Owned(out),
                Compression::Zstd,
                d.buffer.len(),
                d.num_values,
                d.is_sorted,
            )))
        }
    }
}

/// Compressed pages as polars' file writer takes them.
struct Compressed<I> {
    pages: I,
    current: Option<polars_parquet::parquet::page::CompressedPage>,
}

impl<I> polars_parquet::write::FallibleStreamingIterator for Compressed<I>
where
    I: Iterator<Item = Result<polars_parquet::parquet::page::CompressedPage, polars_parquet::read::ParquetError>>,
{
    type Item = polars_parquet::parquet::page::CompressedPage;
    type Error = polars::prelude::PolarsError;

    fn advance(&mut self) -> Result<(), Self::Error> {
        self.current = self.pages.next().transpose()?;
        Ok(())
    }

    fn get(&self) -> Option<&Self::Item> {
        self.current.as_ref()
    }
}

/// How a column of `dtype` is encoded: as polars chooses, but that
/// floating-point columns (times, durations, amounts: nearly every value
/// its own) are written plain, not first sized up for a dictionary.
pub(crate) fn encodings_of(dtype: &polars::prelude::ArrowDataType) -> Vec<Encoding> {
    use polars::prelude::ArrowDataType as A;
    match dtype {
        A::Float64 | A::Float32 => vec![Encoding::Plain],
        _ => polars_parquet::write::get_dtype_encoding(dtype),
    }
}

/// The metadata in a whole Parquet file's footer.
#[cfg(test)]
pub(crate) fn footer(file: &[u8]) -> io::Result<FileMetaData> {
    footer_at(file).map(|(meta, _)| meta)
}

/// The metadata in a whole Parquet file's footer, and where the footer
/// starts.
fn footer_at(file: &[u8]) -> io::Result<(FileMetaData, usize)> {
    let n = file.len();
    let tail = file.get(n.saturating_sub(8)..).filter(|t| t.len() == 8 && t[4..] == MAGIC[..]);
    let tail = tail.ok_or_else(|| layout_err("a file without its footer"))?;
    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    let start =
        (n - 8).checked_sub(len).filter(|s| *s >= MAGIC.len()).ok_or_else(|| layout_err("a footer too long"))?;
    let mut input = TCompactInputProtocol::new(&file[start..n - 8], read_limit(len));
    Ok((FileMetaData::read_from_in_protocol(&mut input).map_err(thrift_err)?, start))
}

/// What reading `len` bytes of Thrift may allocate: the reader charges 8
/// bytes an element of a list and 2 a struct, each at least a byte long.
fn read_limit(len: usize) -> usize {
    len.saturating_mul(16)
}

/// Where a column chunk's pages start: its dictionary page if it has one.
fn chunk_start(c: &ColumnChunk) -> Option<i64> {
    let m = c.meta_data.as_ref()?;
    Some(m.dictionary_page_offset.map_or(m.data_page_offset, |d| d.min(m.data_page_offset)))
}

/// Where each column chunk lies in a whole file whose footer starts at
/// `footer`, by row group: where its pages start, where they end, and where
/// what follows them (a copy of its metadata) ends: at the next chunk, or
/// for the last, at the page index or the footer. The chunks must follow
/// one another from the file's start.
fn chunks(groups: &[RowGroup], footer: usize) -> io::Result<Vec<Vec<(usize, usize, usize)>>> {
    let offset = |o: i64| usize::try_from(o).ok();
    let index = groups.iter().flat_map(|g| &g.columns).flat_map(|c| [c.column_index_offset, c.offset_index_offset]);
    let tail = index.flatten().try_fold(footer, |t, o| offset(o).map(|o| t.min(o)));
    let tail = tail.ok_or_else(|| layout_err("a negative offset"))?;
    let mut spans = Vec::new();
    for c in groups.iter().flat_map(|g| &g.columns) {
        let start = chunk_start(c).and_then(offset);
        let size = c.meta_data.as_ref().and_then(|m| usize::try_from(m.total_compressed_size).ok());
        let (Some(start), Some(size)) = (start, size) else {
            return Err(layout_err("a column chunk without its offsets"));
        };
        spans.push((start, start.checked_add(size).ok_or_else(|| layout_err("a column chunk too long"))?));
    }
    let mut at = MAGIC.len();
    let mut out = Vec::with_capacity(groups.len());
    let mut spans = spans.iter().peekable();
    for g in groups {
        let mut group = Vec::with_capacity(g.columns.len());
        for _ in &g.columns {
            let Some(&(start, end)) = spans.next() else { break };
            let copy_end = spans.peek().map_or(tail, |(next, _)| *next);
            if start != at || end > copy_end {
                return Err(layout_err("column chunks that do not follow one another"));
            }
            group.push((start, end, copy_end));
            at = copy_end;
        }
        out.push(group);
    }
    Ok(out)
}

/// Moves a column chunk's offsets by `by` bytes; drops its page index,
/// which is not written.
fn relocate(c: &mut ColumnChunk, by: i64) {
    c.file_offset += by;
    (c.offset_index_offset, c.offset_index_length) = (None, None);
    (c.column_index_offset, c.column_index_length) = (None, None);
    if let Some(m) = c.meta_data.as_mut() {
        m.data_page_offset += by;
        for o in [&mut m.index_page_offset, &mut m.dictionary_page_offset, &mut m.bloom_filter_offset] {
            *o = o.map(|o| o + by);
        }
    }
}

/// Writes `meta` with the `n` row groups kept in `groups` as its row
/// groups and `rows` as its row count, field by field as
/// `FileMetaData::write_to_out_protocol` does (but its encryption fields,
/// which `new` refuses), reading the row groups back one at a time.
fn write_footer<T: Write>(
    o: &mut TCompactOutputProtocol<T>,
    meta: &FileMetaData,
    groups: &[u8],
    n: usize,
    rows: i64,
) -> polars_parquet_format::thrift::Result<()> {
    o.write_struct_begin(&TStructIdentifier::new("FileMetaData"))?;
    o.write_field_begin(&TFieldIdentifier::new("version", TType::I32, 1))?;
    o.write_i32(meta.version)?;
    o.write_field_end()?;
    struct_list(o, "schema", 2, &meta.schema, |e, o| e.write_to_out_protocol(o))?;
    o.write_field_begin(&TFieldIdentifier::new("num_rows", TType::I64, 3))?;
    o.write_i64(rows)?;
    o.write_field_end()?;
    o.write_field_begin(&TFieldIdentifier::new("row_groups", TType::List, 4))?;
    o.write_list_begin(&TListIdentifier::new(TType::Struct, n.try_into()?))?;
    let mut input = TCompactInputProtocol::new(groups, read_limit(groups.len()));
    for _ in 0..n {
        RowGroup::read_from_in_protocol(&mut input)?.write_to_out_protocol(o)?;
    }
    o.write_list_end()?;
    o.write_field_end()?;
    if let Some(kv) = &meta.key_value_metadata {
        struct_list(o, "key_value_metadata", 5, kv, |e, o| e.write_to_out_protocol(o))?;
    }
    if let Some(by) = &meta.created_by {
        o.write_field_begin(&TFieldIdentifier::new("created_by", TType::String, 6))?;
        o.write_string(by)?;
        o.write_field_end()?;
    }
    if let Some(orders) = &meta.column_orders {
        struct_list(o, "column_orders", 7, orders, |e, o| e.write_to_out_protocol(o))?;
    }
    o.write_field_stop()?;
    o.write_struct_end()?;
    o.flush()
}

/// Writes field `id` (`name`) of a struct: a list of `items`, each written
/// by `write`.
fn struct_list<T: Write, E>(
    o: &mut TCompactOutputProtocol<T>,
    name: &'static str,
    id: i16,
    items: &[E],
    write: impl Fn(&E, &mut TCompactOutputProtocol<T>) -> polars_parquet_format::thrift::Result<usize>,
) -> polars_parquet_format::thrift::Result<()> {
    o.write_field_begin(&TFieldIdentifier::new(name, TType::List, id))?;
    o.write_list_begin(&TListIdentifier::new(TType::Struct, items.len().try_into()?))?;
    for e in items {
        write(e, o)?;
    }
    o.write_list_end()?;
    o.write_field_end()?;
    Ok(())
}

/// Counts the bytes written through it.
struct Counted<'a, W> {
    out: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn layout_err(what: &str) -> io::Error {
    io::Error::other(format!("parquet: polars wrote {what}"))
}

fn thrift_err(e: polars_parquet_format::thrift::Error) -> io::Error {
    io::Error::other(format!("parquet: footer: {e}"))
}

pub(crate) fn polars_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("parquet: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use polars::prelude::{Column, DataType, Field, NamedFrom, ParquetReader, PlSmallStr, SerReader, Series};

    fn schema() -> Schema {
        [("url", DataType::String), ("status", DataType::UInt64), ("ms", DataType::Float64)]
            .into_iter()
            .map(|(n, t)| Field::new(PlSmallStr::from(n), t))
            .collect()
    }

    /// Row group `g`: `rows` rows, with texts long enough for several pages.
    fn frame(g: usize, rows: usize) -> DataFrame {
        let urls: Vec<Option<String>> =
            (0..rows).map(|i| (i % 7 != 3).then(|| format!("/g{g}/item/{i}?q={}", "x".repeat(i % 300)))).collect();
        let status: Vec<u64> = (0..rows).map(|i| [200, 404, 500][(i + g) % 3]).collect();
        let ms: Vec<Option<f64>> = (0..rows).map(|i| (i % 5 != 0).then_some(i as f64 / 3.0)).collect();
        let cols = vec![
            Column::from(Series::new("url".into(), urls)),
            Column::from(Series::new("status".into(), status)),
            Column::from(Series::new("ms".into(), ms)),
        ];
        DataFrame::new(rows, cols).unwrap()
    }

    /// A writer shared between the test and polars, so the test gets it
    /// back when the file is done.
    struct Shared<W>(Arc<Mutex<W>>);

    impl<W: Write> Write for Shared<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The same row groups written by polars' own batched writer as one
    /// file (which `encode` writes row group by row group, as polars does
    /// but for the floats' encoding).
    fn by_polars(frames: &[DataFrame]) -> Vec<u8> {
        let shared = Arc::new(Mutex::new(Vec::new()));
        let mut w = polars::io::parquet::write::ParquetWriter::new(Shared(Arc::clone(&shared)))
            .with_compression(compression())
            .batched(&schema())
            .unwrap();
        for df in frames {
            w.write_batch(df).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        Arc::try_unwrap(shared).unwrap().into_inner().unwrap()
    }

    fn ours(frames: &[DataFrame]) -> Vec<u8> {
        let mut f = ParquetFile::new(Vec::new(), schema()).unwrap();
        for df in frames {
            f.write(df).unwrap();
        }
        assert_eq!(f.row_groups(), frames.len());
        f.finish().unwrap()
    }

    fn read(bytes: &[u8]) -> DataFrame {
        ParquetReader::new(io::Cursor::new(bytes.to_vec())).finish().unwrap()
    }

    /// The pages are polars' own, byte for byte and at the same offsets,
    /// and the footer is the one polars writes, less the page index.
    #[test]
    fn pages_and_footer_are_polars_own_less_the_page_index() {
        let frames: Vec<DataFrame> = (0..5).map(|g| frame(g, 3000 + 700 * g)).collect();
        let (theirs, ours) = (by_polars(&frames), ours(&frames));
        let (a, b) = (read(&theirs), read(&ours));
        assert_eq!(b.height(), frames.iter().map(|f| f.height()).sum::<usize>());
        assert!(a.equals_missing(&b));

        let mut want = footer(&theirs).unwrap();
        let got = footer(&ours).unwrap();
        assert_eq!(want.row_groups.len(), 5);
        // polars' page index starts where the last row group ends.
        let index = want
            .row_groups
            .iter()
            .flat_map(|g| &g.columns)
            .flat_map(|c| [c.column_index_offset, c.offset_index_offset]);
        let data_end = index.flatten().min().unwrap() as usize;
        assert!(theirs[..data_end] == ours[..data_end], "the same pages at the same offsets");
        let indexed = want.row_groups.iter().flat_map(|g| &g.columns).filter(|c| c.offset_index_offset.is_some());
        assert_eq!(indexed.count(), 15, "polars writes an offset index for every column chunk");
        want.row_groups.iter_mut().flat_map(|g| &mut g.columns).for_each(|c| relocate(c, 0));
        assert_eq!(got, want);

        // The footer streamed from the kept row groups is the one Thrift
        // writes for the whole struct.
        let mut whole = Vec::new();
        want.write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut whole)).unwrap();
        let len = u32::from_le_bytes(ours[ours.len() - 8..ours.len() - 4].try_into().unwrap()) as usize;
        assert_eq!(&ours[ours.len() - 8 - len..ours.len() - 8], &whole[..]);
        assert_eq!(ours.len(), data_end + len + 8);
    }

    /// Floating-point columns are written plain, even when their values
    /// repeat (polars would size them up for a dictionary first); the
    /// others as polars chooses, and every value reads back.
    #[test]
    fn floats_are_written_plain_and_the_rest_as_polars_chooses() {
        let rows = 4000;
        let ms: Vec<Option<f64>> = (0..rows).map(|i| Some([1.5, 2.5, 7.0][i % 3])).collect();
        let status: Vec<u64> = (0..rows).map(|i| [200, 404][i % 2]).collect();
        let urls: Vec<Option<String>> = (0..rows).map(|i| Some(format!("/p{}", i % 4))).collect();
        let df = DataFrame::new(
            rows,
            vec![
                Column::from(Series::new("url".into(), urls)),
                Column::from(Series::new("status".into(), status)),
                Column::from(Series::new("ms".into(), ms)),
            ],
        )
        .unwrap();
        let bytes = ours(std::slice::from_ref(&df));
        assert!(read(&bytes).equals_missing(&df));
        let meta = footer(&bytes).unwrap();
        let dictionary = |c: usize| {
            let m = meta.row_groups[0].columns[c].meta_data.as_ref().unwrap();
            m.encodings.contains(&polars_parquet_format::Encoding::RLE_DICTIONARY)
        };
        assert!(dictionary(0) && dictionary(1), "texts and integers of few values get a dictionary");
        assert!(!dictionary(2), "floats are plain");
    }

    /// An empty output is a file of the columns and no row group; a frame
    /// of no rows adds none.
    #[test]
    fn empty_files_and_frames() {
        let empty = ours(&[]);
        let df = read(&empty);
        assert_eq!((df.height(), df.width()), (0, 3));
        assert_eq!(footer(&empty).unwrap(), footer(&by_polars(&[])).unwrap());

        let mut f = ParquetFile::new(Vec::new(), schema()).unwrap();
        f.write(&frame(0, 0)).unwrap();
        f.write(&frame(1, 10)).unwrap();
        assert_eq!(f.row_groups(), 1);
        let df = read(&f.finish().unwrap());
        assert_eq!(df.height(), 10);
        assert_eq!(df.column("url").unwrap().str().unwrap().get(0), Some("/g1/item/0?q="));
    }

    /// What is kept of a row group is its footer entry: about 100 bytes a
    /// column chunk, whatever the rows.
    #[test]
    fn what_is_kept_of_a_row_group_is_small() {
        let mut f = ParquetFile::new(Vec::new(), schema()).unwrap();
        for g in 0..40 {
            f.write(&frame(g, 2000)).unwrap();
        }
        let per_chunk = f.groups.len() / (40 * 3);
        assert!((40..400).contains(&per_chunk), "{per_chunk} bytes a column chunk");
        let bytes = f.finish().unwrap();
        assert_eq!(read(&bytes).height(), 80_000);
    }

    /// A file that is not Parquet, or whose footer runs past its start, is
    /// an error, not a panic.
    #[test]
    fn footers_that_do_not_fit_are_errors() {
        assert!(footer(b"").is_err());
        assert!(footer(b"PAR1").is_err());
        let mut bad = b"PAR1".to_vec();
        bad.extend_from_slice(&1000u32.to_le_bytes());
        bad.extend_from_slice(b"PAR1");
        assert!(footer(&bad).unwrap_err().to_string().contains("footer"));
        let mut file = ours(&[frame(0, 10)]);
        let n = file.len();
        file[n - 9] ^= 0xff;
        assert!(footer(&file).is_err());
    }
}
