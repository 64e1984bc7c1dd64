//! Records back from Parquet, a slice of rows at a time.
//!
//! [`RowReader`] reads a Parquet file written by
//! [`ParquetWriter`](crate::ParquetWriter) (or any file of the same column
//! types) as JSON objects, [`BATCH_ROWS`] rows at a time: memory holds one
//! slice of the file in columns (a row is made when it is read), never the
//! whole of it, so the customer stage can
//! merge the transactions of many files by time (`pov analyze
//! --from-transactions`) holding one slice of each.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use polars::prelude::{AnyValue, DataFrame, FileMetadataRef, ParquetReader, SerReader};
use serde_json::{Map, Value};

/// Rows read from a file at a time (one row group of the writer's).
pub const BATCH_ROWS: usize = crate::parquet::ROW_GROUP_ROWS;

fn named(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
}

fn open(path: &Path) -> io::Result<File> {
    File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The column names of a Parquet file, in order.
pub fn columns(path: &Path) -> io::Result<Vec<String>> {
    let mut r = ParquetReader::new(open(path)?);
    let schema = r.schema().map_err(|e| named(path, e))?;
    Ok(schema.iter_names().map(|n| n.to_string()).collect())
}

/// The rows of one Parquet file as JSON objects (column -> value; nulls
/// as `null`, lists as arrays), in file order.
pub struct RowReader {
    path: PathBuf,
    metadata: FileMetadataRef,
    total: usize,
    next: usize,
    batch: usize,
    /// Only these columns (those of them the file has), when set.
    columns: Option<Vec<String>>,
    /// The slice read, kept in columns; its rows are made one at a time.
    slice: Option<DataFrame>,
    /// The next row of `slice`.
    at: usize,
}

impl RowReader {
    /// Opens `path` (its footer is read; no row yet).
    pub fn open(path: &Path) -> io::Result<RowReader> {
        RowReader::with_batch(path, BATCH_ROWS)
    }

    /// As [`RowReader::open`], reading `batch` rows at a time.
    pub fn with_batch(path: &Path, batch: usize) -> io::Result<RowReader> {
        let mut r = ParquetReader::new(open(path)?);
        let metadata = r.get_metadata().map_err(|e| named(path, e))?.clone();
        let total = r.num_rows().map_err(|e| named(path, e))?;
        Ok(RowReader {
            path: path.to_path_buf(),
            metadata,
            total,
            next: 0,
            batch: batch.max(1),
            columns: None,
            slice: None,
            at: 0,
        })
    }

    /// Reads only `columns` (those of them the file has: a row has no key
    /// for the others), which costs only their bytes.
    pub fn project(mut self, columns: &[&str]) -> io::Result<RowReader> {
        let have = self::columns(&self.path)?;
        self.columns = Some(have.into_iter().filter(|c| columns.contains(&c.as_str())).collect());
        Ok(self)
    }

    /// Rows in the file.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fill(&mut self) -> io::Result<()> {
        let len = self.batch.min(self.total - self.next);
        let mut r = ParquetReader::new(open(&self.path)?);
        r.set_metadata(self.metadata.clone());
        let df = r
            .with_columns(self.columns.clone())
            .with_slice(Some((self.next, len)))
            .finish()
            .map_err(|e| named(&self.path, e))?;
        self.next += len;
        self.slice = Some(df);
        self.at = 0;
        Ok(())
    }
}

impl Iterator for RowReader {
    type Item = io::Result<Map<String, Value>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(df) = &self.slice {
                if self.at < df.height() {
                    let row = row(df, self.at).map_err(|e| named(&self.path, e));
                    self.at += 1;
                    return Some(row);
                }
                self.slice = None;
            }
            if self.next >= self.total {
                return None;
            }
            if let Err(e) = self.fill() {
                // No row comes after an error.
                self.next = self.total;
                return Some(Err(e));
            }
        }
    }
}

/// A cell as JSON.
fn json(v: AnyValue) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::UInt8(n) => n.into(),
        AnyValue::UInt16(n) => n.into(),
        AnyValue::UInt32(n) => n.into(),
        AnyValue::UInt64(n) => n.into(),
        AnyValue::Int8(n) => n.into(),
        AnyValue::Int16(n) => n.into(),
        AnyValue::Int32(n) => n.into(),
        AnyValue::Int64(n) => n.into(),
        AnyValue::Float32(x) => serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number),
        AnyValue::Float64(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
        AnyValue::List(s) => Value::Array(s.iter().map(json).collect()),
        other => Value::String(other.to_string()),
    }
}

/// Row `i` of `df` as a JSON object.
fn row(df: &DataFrame, i: usize) -> Result<Map<String, Value>, polars::prelude::PolarsError> {
    let cols = df.columns();
    let mut m = Map::with_capacity(cols.len());
    for c in cols {
        m.insert(c.name().to_string(), json(c.get(i)?));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::{Kind, ParquetWriter};

    #[test]
    fn reads_back_every_row_in_slices() {
        let dir = std::env::temp_dir().join(format!("pov-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.parquet");
        let cols = [("name", Kind::Str), ("n", Kind::U64), ("x", Kind::F64), ("tags", Kind::StrList)];
        let mut w = ParquetWriter::new(File::create(&path).unwrap(), &cols).unwrap();
        for i in 0..25u64 {
            let name = if i % 5 == 0 { Value::Null } else { Value::String(format!("r{i}")) };
            w.push(&serde_json::json!({"name": name, "n": i, "x": i as f64 / 4.0, "tags": [format!("t{i}")]})).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(columns(&path).unwrap(), ["name", "n", "x", "tags"]);
        let r = RowReader::with_batch(&path, 7).unwrap();
        assert_eq!(r.total(), 25);
        let rows: Vec<Map<String, Value>> = r.map(Result::unwrap).collect();
        assert_eq!(rows.len(), 25);
        assert_eq!(rows[0]["name"], Value::Null);
        assert_eq!(rows[8]["name"], "r8");
        assert_eq!(rows[24]["n"], 24);
        assert_eq!(rows[6]["x"], 1.5);
        assert_eq!(rows[13]["tags"], serde_json::json!(["t13"]));
        let some: Vec<Map<String, Value>> =
            RowReader::open(&path).unwrap().project(&["x", "n", "absent"]).unwrap().map(Result::unwrap).collect();
        assert_eq!(some.len(), 25);
        assert_eq!(some[6].keys().collect::<Vec<_>>(), ["n", "x"]);
        assert_eq!(some[6]["x"], 1.5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_not_parquet_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("pov-read-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.parquet");
        std::fs::write(&path, b"not parquet at all").unwrap();
        let e = RowReader::open(&path).err().unwrap();
        assert!(e.to_string().contains("bad.parquet"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
