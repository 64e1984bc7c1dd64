//! Rendering records as tables, JSON and CSV, and writing files atomically.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use pov_impact::Kind;
pub use pov_impact::schema::{FieldValues, Fields};

use pov_capture::tcp::ConnSummary;

/// Output formats for commands that print records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document (an array of records).
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
    /// Apache Parquet (typed columns, zstd), for polars, DuckDB, Spark.
    Parquet,
}

pov_impact::record! {
    /// One row of `pov flows`.
    #[derive(Clone, Debug, Default)]
    pub struct FlowRow {
        /// Connection id.
        pub id: u64,
        /// Capture time of the first packet (epoch seconds).
        pub ts: f64,
        /// Seconds from the first to the last packet.
        pub duration: f64,
        /// Client `address:port`.
        pub client: String,
        /// Server `address:port`.
        pub server: String,
        /// Packets client to server.
        pub c2s_packets: u64,
        /// Payload bytes client to server, retransmissions included.
        pub c2s_bytes: u64,
        /// Packets server to client.
        pub s2c_packets: u64,
        /// Payload bytes server to client, retransmissions included.
        pub s2c_bytes: u64,
        /// Distinct stream bytes delivered, client to server.
        pub c2s_stream_bytes: u64,
        /// Distinct stream bytes delivered, server to client.
        pub s2c_stream_bytes: u64,
        /// Bytes missing from the capture, client to server.
        pub c2s_gap_bytes: u64,
        /// Bytes missing from the capture, server to client.
        pub s2c_gap_bytes: u64,
        /// Handshake round trip in milliseconds (SYN to ACK), when seen.
        pub handshake_rtt_ms: Option<f64>,
        /// How the connection ended, e.g. `fin by server`, `rst by client`.
        pub close: String,
        /// Zeek-style connection state (SF, S0, REJ, RSTO, RSTR, OTH ...).
        pub state: String,
        /// How client and server were told apart.
        pub roles: String,
        /// First frame number.
        pub first_frame: u64,
        /// Last frame number.
        pub last_frame: u64,
        /// Anomalies, prefixed by direction (`c2s:retransmission` ...).
        pub anomalies: Vec<String>,
    }
    /// The column names of [`FlowRow`].
    pub columns FlowColumns;
}

impl FlowRow {
    /// The row for one connection summary.
    pub fn from_summary(s: &ConnSummary) -> FlowRow {
        FlowRow {
            id: s.id,
            ts: s.first_ts.as_secs_f64(),
            duration: s.duration().as_secs_f64(),
            client: s.client.to_string(),
            server: s.server.to_string(),
            c2s_packets: s.to_server.packets,
            c2s_bytes: s.to_server.payload_bytes,
            s2c_packets: s.to_client.packets,
            s2c_bytes: s.to_client.payload_bytes,
            c2s_stream_bytes: s.to_server.stream_bytes,
            s2c_stream_bytes: s.to_client.stream_bytes,
            c2s_gap_bytes: s.to_server.gap_bytes,
            s2c_gap_bytes: s.to_client.gap_bytes,
            handshake_rtt_ms: s.handshake.map(|h| h.rtt().as_millis_f64()),
            close: s.close.describe(),
            state: format!("{:?}", s.state),
            roles: serde_json::to_value(s.roles).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            first_frame: s.first_frame,
            last_frame: s.last_frame,
            anomalies: s.anomalies(),
        }
    }
}

impl Record for FlowRow {
    const HEADER: &'static [&'static str] = &[
        "#",
        "ts",
        "duration",
        "client",
        "server",
        "c2s pkts",
        "c2s bytes",
        "s2c pkts",
        "s2c bytes",
        "rtt ms",
        "close",
        "state",
        "gap bytes",
        "anomalies",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            format!("{:.6}", self.ts),
            format!("{:.6}", self.duration),
            self.client.clone(),
            self.server.clone(),
            self.c2s_packets.to_string(),
            self.c2s_bytes.to_string(),
            self.s2c_packets.to_string(),
            self.s2c_bytes.to_string(),
            self.handshake_rtt_ms.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into()),
            self.close.clone(),
            self.state.clone(),
            (self.c2s_gap_bytes + self.s2c_gap_bytes).to_string(),
            if self.anomalies.is_empty() { "-".into() } else { self.anomalies.join(",") },
        ]
    }
}

/// A record that [`RecordWriter`] can write in every [`Format`]: a type
/// declared with [`pov_impact::record!`] (its columns, [`Fields::FIELDS`],
/// are the JSON keys and the CSV and Parquet columns), and its table for
/// people.
pub trait Record: FieldValues + 'static {
    /// Column names of the table (a readable subset).
    const HEADER: &'static [&'static str];
    /// Text bytes that end a Parquet row group of these records.
    const ROW_GROUP_BYTES: usize = pov_impact::parquet::ROW_GROUP_BYTES;
    /// The table cells, one per column of [`Record::HEADER`].
    fn cells(&self) -> Vec<String>;
}

/// Rows a streamed table holds to choose its column widths; later rows
/// keep those widths (a wider cell pushes its line out).
pub const TABLE_SAMPLE_ROWS: usize = 1000;

/// Writes records one at a time in any [`Format`], holding at most
/// [`TABLE_SAMPLE_ROWS`] (for a table's widths) or one Parquet row group,
/// so memory does not grow with the number of records.
pub struct RecordWriter<W: Write, R: Record> {
    out: Out<W>,
    format: Format,
    count: u64,
    sample: Vec<Vec<String>>,
    layout: Option<Layout>,
    /// How records become text (JSON, JSON lines, CSV).
    text: Option<TextShape>,
    _record: std::marker::PhantomData<fn(&R)>,
}

enum Out<W: Write> {
    Text(W),
    Parquet(Box<pov_impact::ParquetWriter<W>>),
}

impl<W: Write, R: Record> RecordWriter<W, R> {
    /// A writer of `format` into `out`.
    pub fn new(out: W, format: Format) -> io::Result<RecordWriter<W, R>> {
        let out = match format {
            Format::Parquet => {
                let mut w = pov_impact::ParquetWriter::new(out, R::FIELDS)?;
                w.set_row_group_bytes(R::ROW_GROUP_BYTES);
                Out::Parquet(Box::new(w))
            }
            _ => Out::Text(out),
        };
        let text = match format {
            Format::Jsonl | Format::Json => Some(TextShape::Json(pov_impact::json::JsonShape::of::<R>())),
            Format::Csv => Some(TextShape::Csv(pov_impact::csv::CsvShape::of::<R>())),
            Format::Table | Format::Parquet => None,
        };
        Ok(RecordWriter {
            out,
            format,
            count: 0,
            sample: Vec::new(),
            layout: None,
            text,
            _record: std::marker::PhantomData,
        })
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The shape of this writer's Parquet rows, to take records apart on
    /// other threads ([`RecordWriter::write_row`]); `None` for the other
    /// formats.
    pub fn row_shape(&self) -> Option<pov_impact::RowShape> {
        match &self.out {
            Out::Parquet(p) => Some(p.shape()),
            Out::Text(_) => None,
        }
    }

    /// Writes one record taken apart by [`RecordWriter::row_shape`]'s
    /// shape (an error for a format other than Parquet).
    pub fn write_row(&mut self, row: pov_impact::Row) -> io::Result<()> {
        match &mut self.out {
            Out::Parquet(p) => {
                p.push_row(row)?;
                self.count += 1;
                Ok(())
            }
            Out::Text(_) => Err(io::Error::other("a row taken apart for Parquet, written as text")),
        }
    }

    /// How this writer's records become text on other threads
    /// ([`RecordWriter::write_text`]): for JSON, JSON lines and CSV, whose
    /// record's text depends on that record alone; `None` for a table
    /// (its widths come from the first rows) and Parquet.
    pub fn text_shape(&self) -> Option<TextShape> {
        self.text.clone()
    }

    /// Writes one record made text by [`RecordWriter::text_shape`]'s shape
    /// (an error for a table or Parquet).
    pub fn write_text(&mut self, text: &[u8]) -> io::Result<()> {
        let (Some(_), Out::Text(out)) = (self.text_shape(), &mut self.out) else {
            return Err(io::Error::other("a record made text, written as a table or as Parquet"));
        };
        framed::<W, R>(out, self.format, self.count, |out| out.write_all(text))?;
        self.count += 1;
        Ok(())
    }

    /// Writes one record.
    pub fn write(&mut self, r: &R) -> io::Result<()> {
        let out = match &mut self.out {
            Out::Parquet(p) => {
                p.push_values(r)?;
                self.count += 1;
                return Ok(());
            }
            Out::Text(out) => out,
        };
        match (&self.text, self.format) {
            (Some(shape), format) => framed::<W, R>(out, format, self.count, |out| shape.write(out, r))?,
            (None, Format::Table) => {
                let cells: Vec<String> = r.cells().iter().map(|c| printable(c)).collect();
                match &self.layout {
                    Some(l) => l.line(out, &cells)?,
                    None => {
                        self.sample.push(cells);
                        if self.sample.len() >= TABLE_SAMPLE_ROWS {
                            self.flush_sample()?;
                        }
                    }
                }
            }
            (None, _) => {}
        }
        self.count += 1;
        Ok(())
    }

    fn flush_sample(&mut self) -> io::Result<()> {
        let Out::Text(out) = &mut self.out else { return Ok(()) };
        let header: Vec<String> = R::HEADER.iter().map(|s| s.to_string()).collect();
        let layout = Layout::of(&header, &self.sample);
        layout.line(out, &header)?;
        for r in self.sample.drain(..) {
            layout.line(out, &r)?;
        }
        self.layout = Some(layout);
        Ok(())
    }

    /// Ends the output (closing a JSON array, writing a table or CSV
    /// header that had no rows, a Parquet footer) and flushes; returns the
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.format == Format::Table && self.layout.is_none() {
            self.flush_sample()?;
        }
        let mut out = match self.out {
            Out::Parquet(p) => return p.finish(),
            Out::Text(out) => out,
        };
        match self.format {
            Format::Json => out.write_all(if self.count == 0 { b"[]\n" } else { b"\n]\n" })?,
            Format::Csv if self.count == 0 => writeln!(out, "{}", csv_header::<R>())?,
            _ => {}
        }
        out.flush()?;
        Ok(out)
    }
}

thread_local! {
    /// Where [`TextShape::text`] makes a record's text.
    static TEXT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest buffer [`TEXT`] keeps (a record with a rare long text lets
/// its buffer go).
const TEXT_KEPT: usize = 64 << 10;

/// A record's text, as a JSON, JSON lines or CSV [`RecordWriter`] writes
/// it, made where the record is (a shard) rather than where it is written.
#[derive(Clone, Debug)]
pub enum TextShape {
    /// JSON and JSON lines: the record as serde_json writes it (made
    /// from its values, [`pov_impact::json`]).
    Json(pov_impact::json::JsonShape),
    /// CSV: a line of the record's cells, made from its values
    /// ([`pov_impact::csv`]).
    Csv(pov_impact::csv::CsvShape),
}

impl TextShape {
    /// `r` as text (without what separates records).
    ///
    /// Made in the thread's buffer, kept from record to record, and
    /// copied out at its size: one allocation a record, where a buffer of
    /// a guessed size was grown (and its bytes copied) for most
    /// transactions, and a record's held bytes are its text's length
    /// whichever thread made it.
    pub fn text<R: Record>(&self, r: &R) -> io::Result<Vec<u8>> {
        self.in_buffer(r, |text| Ok(text.to_vec()))
    }

    fn write<R: Record>(&self, out: &mut impl Write, r: &R) -> io::Result<()> {
        self.in_buffer(r, |text| out.write_all(text))
    }

    /// `then` of `r`'s text, made in the thread's buffer ([`TEXT`]).
    fn in_buffer<R: Record, T>(&self, r: &R, then: impl FnOnce(&[u8]) -> io::Result<T>) -> io::Result<T> {
        let mut buf = TEXT.take();
        buf.clear();
        let done = self.make(r, &mut buf).and_then(|()| then(&buf));
        if buf.capacity() <= TEXT_KEPT {
            TEXT.set(buf);
        }
        done
    }

    /// Makes `r`'s text in `buf` (empty): from its values by the shape, or
    /// (for a record the shape does not take) by serde_json.
    fn make<R: Record>(&self, r: &R, buf: &mut Vec<u8>) -> io::Result<()> {
        match self {
            TextShape::Json(shape) => {
                if !shape.write(r, buf) {
                    serde_json::to_writer(&mut *buf, r)?;
                }
                Ok(())
            }
            TextShape::Csv(shape) => {
                // The buffer as a string while the line is made in it (it
                // is empty, so it is text).
                let mut line = String::from_utf8(std::mem::take(buf)).unwrap_or_default();
                let made = if shape.write(r, &mut line) { Ok(()) } else { csv_by_value(r).map(|l| line.push_str(&l)) };
                *buf = line.into_bytes();
                made
            }
        }
    }
}

/// `r`'s CSV line made from its JSON value: each column looked up in it by
/// name ([`csv_value`]). What [`pov_impact::csv::CsvShape`] writes from
/// the record's values without the tree, and what a record the shape
/// refuses (one serde_json refuses) is written by.
pub(crate) fn csv_by_value<R: Record>(r: &R) -> io::Result<String> {
    let v = serde_json::to_value(r).map_err(io::Error::other)?;
    let cells: Vec<String> = R::FIELDS.iter().map(|(k, _)| csv_value(&v[*k])).collect();
    Ok(cells.join(","))
}

/// One record's text in `format` (JSON, JSON lines or CSV), written by
/// `body`, with what goes before and after it: the CSV header before the
/// first, a JSON array's opening or comma, a line's end.
fn framed<W: Write, R: Record>(
    out: &mut W,
    format: Format,
    count: u64,
    body: impl FnOnce(&mut W) -> io::Result<()>,
) -> io::Result<()> {
    match format {
        Format::Json => {
            out.write_all(if count == 0 { b"[\n" } else { b",\n" })?;
            body(out)
        }
        _ => {
            if format == Format::Csv && count == 0 {
                writeln!(out, "{}", csv_header::<R>())?;
            }
            body(out)?;
            out.write_all(b"\n")
        }
    }
}

fn csv_header<R: Record>() -> String {
    R::FIELDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(",")
}

/// One CSV cell for a JSON value: null is empty, lists are space-separated.
/// Text (strings and lists) is neutralised against formula injection
/// ([`csv_text`]); numbers and booleans are written as they are (a
/// negative number is a number, and no spreadsheet runs it).
pub(crate) fn csv_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => csv_text(s),
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|x| match x {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            csv_text(&items.join(" "))
        }
        other => csv_field(&other.to_string()),
    }
}

/// A CSV cell of text, neutralised by OWASP's rule against formula
/// injection (CSV opened in a spreadsheet): a cell that begins with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a single quote in front
/// and is quoted, so it reads as text (`'=cmd|' /C calc'!A0`). Other cells
/// as [`csv_field`].
pub fn csv_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    pov_impact::csv::push_text(&mut out, s);
    out
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    pov_impact::csv::push_field(&mut out, s);
    out
}

/// A table cell safe to print on a terminal: control characters (C0, DEL
/// and C1, which a captured Host header or URL can carry as UTF-8) become
/// `\xNN`, so no escape sequence reaches the terminal and no cell breaks
/// its line.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A plain text table: columns padded to their widest cell; cells that
/// look numeric are right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are blank, extra cells ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| printable(c)).collect());
    }

    /// Writes the table.
    pub fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        let layout = Layout::of(&self.header, &self.rows);
        layout.line(w, &self.header)?;
        for r in &self.rows {
            layout.line(w, r)?;
        }
        Ok(())
    }
}

/// Column widths and alignment, chosen from a header and some rows.
struct Layout {
    width: Vec<usize>,
    right: Vec<bool>,
}

impl Layout {
    fn of(header: &[String], rows: &[Vec<String>]) -> Layout {
        let n = header.len();
        let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in rows {
            for (i, c) in r.iter().take(n).enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-');
        // A column is right-aligned (header included) when every cell in
        // it is a number or "-".
        let right =
            (0..n).map(|i| !rows.is_empty() && rows.iter().all(|r| r.get(i).is_some_and(|c| numeric(c)))).collect();
        Layout { width, right }
    }

    fn line(&self, w: &mut dyn Write, cells: &[String]) -> io::Result<()> {
        let n = self.width.len();
        let mut out = String::new();
        for (i, wd) in self.width.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = wd.saturating_sub(c.chars().count());
            if i > 0 {
                out.push_str("  ");
            }
            if self.right[i] && i + 1 < n {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                if i + 1 < n {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(w, "{}", out.trim_end())
    }
}

/// A file written under a temporary name in the same folder and renamed
/// over its real name only by [`AtomicFile::commit`], so a killed or failed
/// run never leaves a half-written file. Dropping it uncommitted (an error,
/// an interrupted run) removes the temporary file, also when the commit
/// itself failed. Every error it returns names the file.
///
/// A path that already is something other than a file or a folder (a
/// device such as `/dev/null`, a named pipe, a socket) is written to
/// directly: renaming over it would replace it with a file.
pub struct AtomicFile {
    path: PathBuf,
    /// Where the bytes go: the temporary file, or `path` itself when it is
    /// written to directly.
    tmp: PathBuf,
    shown: PathBuf,
    file: Option<io::BufWriter<fs::File>>,
    committed: bool,
    direct: bool,
}

impl AtomicFile {
    /// Creates the temporary file for `path`.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        AtomicFile::create_as(path, path)
    }

    /// As [`AtomicFile::create`], naming the file `shown` in errors (for a
    /// file written in a staging folder and moved to `shown` later).
    pub fn create_as(path: &Path, shown: &Path) -> io::Result<AtomicFile> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        let direct = fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        let (tmp, file) = if direct {
            (path.to_path_buf(), fs::OpenOptions::new().write(true).open(path))
        } else {
            let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
            let file = fs::File::create(&tmp);
            (tmp, file)
        };
        let file = file.map_err(|e| named(e, shown))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            shown: shown.to_path_buf(),
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            committed: false,
            direct,
        })
    }

    /// Flushes, syncs and renames the file into place (flushes only, for a
    /// path written to directly).
    pub fn commit(mut self) -> io::Result<()> {
        let Some(w) = self.file.take() else { return Ok(()) };
        let f = w.into_inner().map_err(|e| named(e.into_error(), &self.shown))?;
        if self.direct {
            self.committed = true;
            return Ok(());
        }
        f.sync_all().map_err(|e| named(e, &self.shown))?;
        drop(f);
        fs::rename(&self.tmp, &self.path).map_err(|e| named(e, &self.shown))?;
        self.committed = true;
        Ok(())
    }
}

/// `e` with the file's name in front (its kind kept).
fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.as_mut() {
            Some(f) => f.write(buf).map_err(|e| named(e, &self.shown)),
            None => Err(io::Error::other(format!("{}: already committed", self.shown.display()))),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush().map_err(|e| named(e, &self.shown)),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(w) = self.file.take() {
            // Not flushed: the file is thrown away.
            drop(w.into_parts());
        }
        if !self.committed && !self.direct {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    write(&mut f)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records made text elsewhere and written with `write_text` come out
    /// as the same bytes as records written whole, in every format that
    /// has a text shape; a table and Parquet have none and refuse text.
    #[test]
    fn records_made_text_elsewhere_are_written_as_whole_ones() {
        let rows: Vec<FlowRow> = (0..3)
            .map(|i| FlowRow {
                id: i,
                ts: 1.5 + i as f64,
                client: format!("10.0.0.{i}:1000"),
                server: "=x,\"y\"".into(),
                anomalies: vec!["a".into(), "b,c".into()],
                ..FlowRow::default()
            })
            .collect();
        for format in [Format::Jsonl, Format::Json, Format::Csv] {
            for n in [0, 1, 3] {
                let mut whole = RecordWriter::<Vec<u8>, FlowRow>::new(Vec::new(), format).unwrap();
                let mut text = RecordWriter::<Vec<u8>, FlowRow>::new(Vec::new(), format).unwrap();
                let shape = text.text_shape().unwrap();
                for r in &rows[..n] {
                    whole.write(r).unwrap();
                    text.write_text(&shape.text(r).unwrap()).unwrap();
                }
                let (whole, text) = (whole.finish().unwrap(), text.finish().unwrap());
                assert!(n == 0 || !whole.is_empty());
                assert_eq!(String::from_utf8(text).unwrap(), String::from_utf8(whole).unwrap(), "{format:?} {n}");
            }
        }
        for format in [Format::Table, Format::Parquet] {
            let mut w = RecordWriter::<Vec<u8>, FlowRow>::new(Vec::new(), format).unwrap();
            assert!(w.text_shape().is_none());
            assert!(w.write_text(b"{}").is_err());
        }
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    /// The rule itself is tested where it lives (`pov_impact::csv`); here,
    /// that text and lists go through it and numbers do not.
    #[test]
    fn csv_text_cannot_start_a_formula() {
        assert_eq!(csv_text("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        // Numbers are not text: a negative number stays a number.
        assert_eq!(csv_value(&serde_json::json!(-1.5)), "-1.5");
        assert_eq!(csv_value(&serde_json::json!("-1.5")), "\"'-1.5\"");
        assert_eq!(csv_value(&serde_json::json!(["=a", "b"])), "\"'=a b\"");
        assert_eq!(csv_value(&serde_json::json!(null)), "");
    }

    #[test]
    fn table_cells_hold_no_control_characters() {
        let mut t = Table::new(&["host", "n"]);
        t.row(vec!["a\u{1b}[31mred\nx\u{9b}2J".into(), "1".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "host                     n\na\\x1b[31mred\\x0ax\\x9b2J  1\n");
        pov_impact::record! {
            #[derive(Default)]
            struct Cell {
                close: String,
            }
            columns CellColumns;
        }
        impl Record for Cell {
            const HEADER: &'static [&'static str] = &["close"];
            fn cells(&self) -> Vec<String> {
                vec![self.close.clone()]
            }
        }
        let mut w = RecordWriter::<Vec<u8>, Cell>::new(Vec::new(), Format::Table).unwrap();
        w.write(&Cell { close: "fin\r\u{7}".into() }).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(text, "close\nfin\\x0d\\x07\n");
    }

    /// Every record type's JSON keys are its columns (for the user stage's
    /// records, pov-impact's own tests check them).
    #[test]
    fn every_record_writes_its_columns() {
        use pov_impact::schema::check;
        check::<FlowRow>().unwrap();
        check::<crate::transactions::TxRecord>().unwrap();
        check::<crate::resend::SendRecord>().unwrap();
    }

    /// The columns docs/schema.md lists under `heading`, in order: a
    /// table whose rows name one or more columns in backticks, with their
    /// type (`text`, `u64`, `f64`, `bool`, `list`, `kind -> count` for a
    /// map kept as text; `, optional` when it may be absent) when the table
    /// has a type column.
    fn documented(doc: &str, heading: &str) -> (Vec<(String, Option<String>)>, bool) {
        let mut lines = doc.lines().skip_while(|l| *l != heading).skip(1).take_while(|l| !l.starts_with("## "));
        let mut typed = false;
        let mut out = Vec::new();
        for l in lines.by_ref() {
            typed |= l.starts_with("| field | type |");
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            if !l.starts_with("| `") || cells.len() < 3 {
                continue;
            }
            let ty = typed.then(|| cells[2].to_string());
            for name in cells[1].split('`').skip(1).step_by(2) {
                out.push((name.to_string(), ty.clone()));
            }
        }
        (out, typed)
    }

    /// Whether `doc` documents every column of `R` under `heading`, and
    /// nothing else: in a typed table one column a row, in order, each
    /// with its type and whether it is optional; otherwise the same names.
    fn documents<R: Fields>(doc: &str, heading: &str) -> Result<(), String> {
        let (rows, typed) = documented(doc, heading);
        let mut names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = R::names();
        if !typed {
            names.sort_unstable();
            want.sort_unstable();
            return if names == want { Ok(()) } else { Err(format!("{heading}: {names:?}, the columns {want:?}")) };
        }
        if names != want {
            return Err(format!("{heading}: {names:?}, the columns {want:?}"));
        }
        for (((name, ty), (_, kind)), optional) in rows.iter().zip(R::FIELDS).zip(R::OPTIONAL) {
            let ty = ty.as_deref().unwrap_or("");
            let (base, opt) = ty.strip_suffix(", optional").map_or((ty, false), |b| (b, true));
            let kind_of = match base {
                "text" | "kind -> count" => Kind::Str,
                "u64" => Kind::U64,
                "i64" => Kind::I64,
                "f64" => Kind::F64,
                "bool" => Kind::Bool,
                "list" => Kind::StrList,
                other => return Err(format!("{heading}: `{name}` has no type: {other:?}")),
            };
            if (kind_of, opt) != (*kind, *optional) {
                return Err(format!(
                    "{heading}: `{name}` is documented as {ty:?}, the column is {kind:?}{}",
                    if *optional { ", optional" } else { "" }
                ));
            }
        }
        Ok(())
    }

    /// docs/schema.md documents the columns of every record type, with
    /// their types, and no column that is not written.
    #[test]
    fn the_docs_list_every_column() {
        let doc = fs::read_to_string(pov_capture::testing::manifest_dir().join("../../docs/schema.md")).unwrap();
        documents::<crate::transactions::TxRecord>(&doc, "## pov transactions").unwrap();
        documents::<FlowRow>(&doc, "## pov flows").unwrap();
        documents::<crate::users::UserRecord>(&doc, "## pov users").unwrap();
        documents::<crate::users::SessionRecord>(&doc, "## pov sessions").unwrap();
        documents::<crate::users::PageRecord>(&doc, "## pov pages").unwrap();
        documents::<crate::users::FailureRecord>(&doc, "## pov failures").unwrap();
        documents::<crate::resend::SendRecord>(&doc, "## pov replay send").unwrap();
        documents::<pov_impact::schema::FailedConnRecord>(&doc, "## pov transactions --failed-connections").unwrap();
        // A column missing, one too many, one of another type: each found.
        let pages = doc.split("## pov pages").nth(1).and_then(|s| s.split("\n## ").next()).unwrap();
        let without = doc.replace("| `redirects` | u64 | redirects followed |\n", "");
        assert!(without.len() < doc.len() && pages.contains("| `redirects` | u64 |"));
        let e = documents::<crate::users::PageRecord>(&without, "## pov pages").unwrap_err();
        assert!(e.starts_with("## pov pages: [") && e.contains("\"requests\", \"load_ms\""), "{e}");
        let extra = doc.replace("| `close` | `fin by client`", "| `closed`, `close` | `fin by client`");
        assert!(documents::<FlowRow>(&extra, "## pov flows").unwrap_err().contains("\"closed\""));
        let retyped = doc.replace("| `redirects` | u64 |", "| `redirects` | u64, optional |");
        let e = documents::<crate::users::PageRecord>(&retyped, "## pov pages").unwrap_err();
        assert_eq!(e, "## pov pages: `redirects` is documented as \"u64, optional\", the column is U64");
    }

    #[test]
    fn table_aligns_numbers_right() {
        let mut t = Table::new(&["name", "n", "note"]);
        t.row(vec!["a".into(), "5".into(), "x".into()]);
        t.row(vec!["bbb".into(), "100".into(), "y".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name    n  note\na       5  x\nbbb   100  y\n");
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("pov-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.txt");
        write_atomic(&p, |w| w.write_all(b"one")).unwrap();
        write_atomic(&p, |w| w.write_all(b"two")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let err = write_atomic(&p, |_| Err(io::Error::other("boom")));
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"two", "a failed write leaves the old file");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary left behind");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A named pipe (as a device such as `/dev/null` would be) is written
    /// to, not replaced by a file; dropped uncommitted, it stays too.
    #[test]
    fn a_path_that_is_not_a_file_is_written_to_and_kept() {
        use std::os::unix::fs::FileTypeExt;
        let dir = std::env::temp_dir().join(format!("pov-atomic-fifo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils)");
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write_atomic(&fifo, |w| w.write_all(b"through the pipe")).unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a pipe");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        drop(AtomicFile::create(&fifo).unwrap());
        assert_eq!(reader.join().unwrap(), b"");
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a pipe");
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["pipe"], "no temporary beside it");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_commit_names_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("pov-atomic-commit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // The final name is taken by a folder that is not empty: the rename
        // fails after the data was written and synced.
        let path = dir.join("out.txt");
        fs::create_dir_all(path.join("inside")).unwrap();
        let mut f = AtomicFile::create_as(&path, Path::new("shown/out.txt")).unwrap();
        f.write_all(b"data").unwrap();
        let err = f.commit().unwrap_err();
        assert!(err.to_string().starts_with("shown/out.txt: "), "{err}");
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["out.txt"], "the temporary is removed");
        // Dropped uncommitted: removed too, without writing its buffer.
        let mut f = AtomicFile::create(&dir.join("other.txt")).unwrap();
        f.write_all(b"data").unwrap();
        drop(f);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
