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

use std::fmt::Write as _;

use pov_impact::schema::FieldValues;
use pov_impact::{CellView, RowShape};

use crate::output::{push_csv_field, push_csv_text};

/// `r`'s CSV line (its cells, without the line's end) in the order of
/// `shape`'s columns, or `None` when the shape does not take `r`.
pub(crate) fn line<R: FieldValues + 'static>(shape: &RowShape, r: &R) -> Option<String> {
    let row = shape.record_row(r).ok()?;
    let mut out = String::with_capacity(512);
    for (i, cell) in row.cells().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Numbers as serde_json writes them: digits, `-`, `.`, `e`, nothing
        // a CSV field quotes.
        match cell {
            CellView::Null => {}
            CellView::Text(s) => push_csv_text(&mut out, s),
            CellView::U64(n) => write!(out, "{n}").ok()?,
            CellView::I64(n) => write!(out, "{n}").ok()?,
            CellView::F64(x) => write!(out, "{}", serde_json::Number::from_f64(x)?).ok()?,
            CellView::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            CellView::List(items) => push_csv_text(&mut out, &items.join(" ")),
            CellView::Json(text) => push_csv_field(&mut out, text),
        }
    }
    Some(out)
}
