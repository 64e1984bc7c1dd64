//! A record's CSV line made from its cells as its Parquet row takes them
//! ([`pov_impact::RowShape`]), without building its JSON tree first.
//!
//! A CSV cell is what [`crate::output`] makes of the field's JSON value
//! (`csv_value`): empty for null, numbers and booleans as JSON writes them,
//! text neutralised against formula injection, lists joined by spaces, a
//! map as its JSON text. Going through `serde_json::to_value` built a tree
//! of sixty values for every transaction, then looked each column up in it
//! by name: 94,000 instructions a line. The row's cells are those values
//! already (a float that is not finite is null in both, a map's text is
//! serde_json's); a record the shape refuses (a field of another kind than
//! its column) is written the old way. A test compares both ways on
//! generated records of every kind.

use pov_impact::schema::FieldValues;
use pov_impact::{CellView, RowShape};

use crate::output::{push_csv_field, push_csv_text};

/// `r`'s CSV line (its cells, without the line's end) in the order of
/// `shape`'s columns, or `None` when the shape does not take `r`.
pub(crate) fn line<R: FieldValues + 'static>(shape: &RowShape, r: &R) -> Option<String> {
    let mut out = String::new();
    line_into(shape, r, &mut out).then_some(out)
}

/// Appends [`line`]`(shape, r)` to `out`; `false`, with `out` as it was,
/// when the shape does not take `r`.
pub(crate) fn line_into<R: FieldValues + 'static>(shape: &RowShape, r: &R, out: &mut String) -> bool {
    let at = out.len();
    let done = cells_into(shape, r, out).is_some();
    if !done {
        out.truncate(at);
    }
    done
}

fn cells_into<R: FieldValues + 'static>(shape: &RowShape, r: &R, out: &mut String) -> Option<()> {
    let row = shape.record_row(r).ok()?;
    for (i, cell) in row.cells().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Numbers as serde_json writes them: digits, `-`, `.`, `e`, nothing
        // a CSV field quotes.
        match cell {
            CellView::Null => {}
            CellView::Text(s) => push_csv_text(out, s),
            CellView::U64(n) => push_number(out, &n)?,
            CellView::I64(n) => push_number(out, &n)?,
            CellView::F64(x) => push_number(out, &x)?,
            CellView::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            CellView::List(items) => push_csv_text(out, &items.join(" ")),
            CellView::Json(text) => push_csv_field(out, text),
        }
    }
    Some(())
}

/// A number as serde_json writes it (a float by its shortest digits),
/// without `fmt`'s machinery (a transaction's CSV line, with its eight or
/// so numbers, takes 1,000 instructions fewer).
fn push_number<T: serde::Serialize>(out: &mut String, n: &T) -> Option<()> {
    // (An integer has at most 20 digits and a sign; a float's shortest
    // form at most 24 characters.)
    let mut buf = [0u8; 40];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    serde_json::to_writer(&mut cur, n).ok()?;
    let len = usize::try_from(cur.position()).ok()?;
    out.push_str(std::str::from_utf8(buf.get(..len)?).ok()?);
    Some(())
}
