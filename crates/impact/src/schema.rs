//! The schema of pov's outputs, in one place: the names of the files a
//! `pov analyze` run writes ([`files`]), the records the impact stage reads
//! back ([`UserRecord`], [`SessionRecord`], [`PageRecord`],
//! [`FailureRecord`]), and the [`record!`](crate::record) macro that every
//! record type of pov is declared with.
//!
//! A record's columns are its fields: [`record!`](crate::record) declares
//! the struct (serde's `Serialize` derived), and from the same field list
//! its columns in order with their types ([`Fields::FIELDS`], the type of
//! each from its Rust type by [`ColumnType`]) and a struct of its column
//! names (`SessionRecord::COLUMN.affected`), which the readers use. The
//! JSON and JSON lines writers write what serde writes, the CSV writer and
//! the Parquet writer write [`Fields::FIELDS`]: the macro accepts no serde
//! attribute on a field but `rename` (which it reads too), so the two
//! cannot differ, and [`check`] proves it for a record type (each crate's
//! tests call it for its records).

use serde::Serialize;
use std::collections::BTreeMap;

use crate::row::{self, Cell};
use crate::{csv, json};

pub use crate::parquet::Kind;

/// The files of a `pov analyze` output folder (docs/schema.md).
pub mod files {
    /// One record per HTTP transaction.
    pub const TRANSACTIONS: &str = "transactions.parquet";
    /// One record per page view ([`super::PageRecord`]).
    pub const PAGES: &str = "pages.parquet";
    /// One record per session ([`super::SessionRecord`]).
    pub const SESSIONS: &str = "sessions.parquet";
    /// One record per user ([`super::UserRecord`]).
    pub const USERS: &str = "users.parquet";
    /// One record per failure ([`super::FailureRecord`]).
    pub const FAILURES: &str = "failures.parquet";
    /// The record files, in the order they are published.
    pub const RECORDS: [&str; 5] = [TRANSACTIONS, PAGES, SESSIONS, USERS, FAILURES];
    /// Who was hurt and what it likely cost.
    pub const SUMMARY: &str = "summary.json";
    /// The summary for people.
    pub const REPORT: &str = "report.html";
    /// The folder of the HTML replays of the most affected users
    /// (`replays/USER.html`).
    pub const REPLAYS: &str = "replays";
    /// Sessions with a failure, kept in the staging folder while the
    /// captures are read (never published).
    pub const REPLAY_CANDIDATES: &str = "replay-candidates.jsonl";
    /// Every summary of a run, in the order they are published after the
    /// record files.
    pub const SUMMARIES: [&str; 2] = [SUMMARY, REPORT];

    /// The path of a replay in the output folder, `replays/NAME`.
    pub fn replay(name: &str) -> String {
        format!("{REPLAYS}/{name}")
    }
}

/// A record type: its columns (JSON keys, CSV and Parquet columns) in
/// field order, with their types. Declared by [`record!`](crate::record),
/// never by hand.
pub trait Fields: Serialize {
    /// Column names and types, in field order.
    const FIELDS: &'static [(&'static str, Kind)];
    /// Whether each column may be null (its field is an `Option`), in
    /// field order.
    const OPTIONAL: &'static [bool];

    /// The column names, in order.
    fn names() -> Vec<&'static str> {
        Self::FIELDS.iter().map(|(n, _)| *n).collect()
    }
}

/// A record's field values, in field order: what takes a record apart for
/// its columns without serde's struct machinery (matching each field's
/// name to a column). Declared by [`record!`](crate::record) with
/// [`Fields`], never by hand: each value is the field serde's `Serialize`
/// writes, in the order it writes them, which is [`Fields::FIELDS`]' order
/// ([`check`] proves it).
pub trait FieldValues: Fields {
    /// Hands each field's value to `visit`, in field order; stops at the
    /// first error.
    fn visit_values<V: ValueVisitor>(&self, visit: &mut V) -> Result<(), V::Error>;
}

/// What [`FieldValues::visit_values`] hands a record's values to.
pub trait ValueVisitor {
    /// Why a value was refused.
    type Error;
    /// Takes the next field's value.
    fn value<T: ColumnType + Serialize>(&mut self, value: &T) -> Result<(), Self::Error>;
}

/// The column type of a field's Rust type, and the cell a value of it
/// makes.
pub trait ColumnType {
    /// Its column type.
    const KIND: Kind;
    /// Whether the column may be null.
    const OPTIONAL: bool = false;
    /// The cell of this value (its text appended to `text`): the one its
    /// `Serialize` makes (serde's cell serializer), without serde's calls.
    #[doc(hidden)]
    fn cell(&self, text: &mut String) -> CellOf;
    /// Appends the value's JSON text, the bytes its `Serialize` makes
    /// serde_json write, without serde's calls ([`crate::json`]); `false`
    /// where serde_json would refuse it.
    #[doc(hidden)]
    fn json(&self, out: &mut Vec<u8>) -> bool;
    /// Appends the value's CSV cell ([`crate::csv`]); `false` where
    /// serde_json would refuse the value.
    #[doc(hidden)]
    fn csv(&self, line: &mut String) -> bool;
}

/// A value's cell, as [`ColumnType::cell`] makes it (for the Parquet
/// rows; nothing outside this crate reads or makes one).
#[doc(hidden)]
pub struct CellOf(pub(crate) Result<Cell, row::Error>);

macro_rules! kinds {
    ($($kind:ident [$($t:ty),*] ($v:ident, $text:ident, $out:ident, $line:ident) => $cell:expr, $json:expr, $csv:expr;)*) => {$($(
        impl ColumnType for $t {
            const KIND: Kind = Kind::$kind;
            #[inline]
            // (`u64::from` of a `u64`: one rule for each kind's types.)
            #[allow(clippy::useless_conversion)]
            fn cell(&self, $text: &mut String) -> CellOf {
                let $v = self;
                CellOf($cell)
            }
            #[inline]
            #[allow(clippy::useless_conversion)]
            fn json(&self, $out: &mut Vec<u8>) -> bool {
                let $v = self;
                $json;
                true
            }
            #[inline]
            #[allow(clippy::useless_conversion)]
            fn csv(&self, $line: &mut String) -> bool {
                let $v = self;
                $csv
            }
        }
    )*)*};
}

kinds! {
    Str [String, &str, std::borrow::Cow<'static, str>] (v, text, out, line) =>
        row::text_cell(v, text), json::push_str(out, v), { csv::push_text(line, v); true };
    U64 [u8, u16, u32, u64] (v, _text, out, line) =>
        Ok(Cell::U64(u64::from(*v))), json::push_int(out, *v), { csv::push_int(line, *v); true };
    U64 [usize] (v, _text, out, line) =>
        Ok(Cell::U64(*v as u64)), json::push_int(out, *v), { csv::push_int(line, *v); true };
    I64 [i8, i16, i32, i64] (v, _text, out, line) =>
        Ok(row::int_cell(i64::from(*v))), json::push_int(out, *v), { csv::push_int(line, *v); true };
    // (serde_json writes an `f32` by its own shortest digits.)
    F64 [f32, f64] (v, _text, out, line) =>
        Ok(row::float_cell(f64::from(*v))), json::push_float(out, *v, v.is_finite()),
        { csv::push_float(line, *v, v.is_finite()); true };
    Bool [bool] (v, _text, out, line) =>
        Ok(Cell::Bool(*v)), out.extend_from_slice(if *v { b"true" } else { b"false" }),
        { line.push_str(if *v { "true" } else { "false" }); true };
    StrList [Vec<String>] (v, _text, out, line) =>
        Ok(Cell::List(Box::new(v.clone()))), json::push_strs(out, v), { csv::push_texts(line, v); true };
}

/// A map (failure kind -> count) is kept as its JSON text, made by serde.
impl<V: Serialize> ColumnType for BTreeMap<String, V> {
    const KIND: Kind = Kind::Str;
    fn cell(&self, text: &mut String) -> CellOf {
        CellOf(row::serialized_cell(self, text))
    }
    fn json(&self, out: &mut Vec<u8>) -> bool {
        json::push_serialized(out, self)
    }
    fn csv(&self, line: &mut String) -> bool {
        csv::push_serialized(line, self)
    }
}

/// An absent value is a null of the value's type.
impl<T: ColumnType> ColumnType for Option<T> {
    const KIND: Kind = T::KIND;
    const OPTIONAL: bool = true;
    #[inline]
    fn cell(&self, text: &mut String) -> CellOf {
        match self {
            Some(v) => v.cell(text),
            None => CellOf(Ok(Cell::Null)),
        }
    }
    #[inline]
    fn json(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Some(v) => v.json(out),
            None => {
                out.extend_from_slice(b"null");
                true
            }
        }
    }
    #[inline]
    fn csv(&self, line: &mut String) -> bool {
        match self {
            Some(v) => v.csv(line),
            None => true,
        }
    }
}

/// Declares a record type: the struct (with serde's `Serialize`), its
/// columns ([`schema::Fields`](crate::schema::Fields)), its values in
/// column order ([`schema::FieldValues`](crate::schema::FieldValues)) and a
/// struct of its column names, from one field list.
///
/// ```
/// pov_impact::record! {
///     /// One row.
///     #[derive(Clone, Debug, Default)]
///     pub struct Row {
///         /// When.
///         pub ts: f64,
///         /// Client address.
///         #[serde(rename = "id.orig_h")]
///         pub orig_h: Option<String>,
///     }
///     /// The column names of [`Row`].
///     pub columns RowColumns;
/// }
/// use pov_impact::schema::{Fields, Kind};
/// assert_eq!(Row::FIELDS, &[("ts", Kind::F64), ("id.orig_h", Kind::Str)]);
/// assert_eq!(Row::COLUMN.orig_h, "id.orig_h");
/// ```
///
/// A field takes doc comments and `#[serde(rename = "...")]`, nothing else:
/// an attribute that made serde write other keys (`skip`, `flatten`,
/// `skip_serializing_if`) would make the JSON and the columns differ, and is
/// refused when the macro is expanded.
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $(#[serde(rename = $col:literal)])?
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
        $(#[doc = $cdoc:literal])*
        $cvis:vis columns $cols:ident;
    ) => {
        $(#[$meta])*
        #[derive(::serde::Serialize)]
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                $(#[serde(rename = $col)])?
                $fvis $field: $ty,
            )*
        }

        $(#[doc = $cdoc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(dead_code)]
        $cvis struct $cols {
            $(
                #[doc = concat!("`", $crate::record!(@name $field $($col)?), "`")]
                pub $field: &'static str,
            )*
        }

        #[allow(dead_code)]
        impl $name {
            /// The name of each column.
            $cvis const COLUMN: $cols = $cols { $($field: $crate::record!(@name $field $($col)?),)* };
        }

        impl $crate::schema::Fields for $name {
            const FIELDS: &'static [(&'static str, $crate::schema::Kind)] = &[
                $(($crate::record!(@name $field $($col)?), <$ty as $crate::schema::ColumnType>::KIND),)*
            ];
            const OPTIONAL: &'static [bool] = &[$(<$ty as $crate::schema::ColumnType>::OPTIONAL,)*];
        }

        impl $crate::schema::FieldValues for $name {
            fn visit_values<V: $crate::schema::ValueVisitor>(&self, visit: &mut V) -> ::std::result::Result<(), V::Error> {
                $(visit.value(&self.$field)?;)*
                ::std::result::Result::Ok(())
            }
        }
    };
    (@name $field:ident) => {
        stringify!($field)
    };
    (@name $field:ident $col:literal) => {
        $col
    };
}

/// Checks that `T` writes what its columns say: serde's keys are
/// [`Fields::FIELDS`]' names, in order, and each value fits its column's
/// type. The error names the first difference (a field serde writes with no
/// column, a column serde does not write, a value of another type).
pub fn check<T: Fields + Default>() -> Result<(), String> {
    let mut text = String::new();
    let mut written: Vec<(String, Cell)> = Vec::new();
    row::cells(&T::default(), &mut text, |k, c| written.push((k.text().to_string(), c))).map_err(|e| e.to_string())?;
    let name = std::any::type_name::<T>();
    for (i, (key, cell)) in written.iter().enumerate() {
        match T::FIELDS.get(i) {
            Some((col, kind)) if col == key => {
                if !kind.fits(cell) {
                    return Err(format!("{name}: column {col} is {kind:?}, its field writes {}", cell.show(&text)));
                }
            }
            Some((col, _)) => return Err(format!("{name}: field {i} is written as {key}, its column is {col}")),
            None => return Err(format!("{name}: field {key} is written but has no column")),
        }
    }
    if let Some((col, _)) = T::FIELDS.get(written.len()) {
        return Err(format!("{name}: column {col} has no field"));
    }
    Ok(())
}

record! {
    /// One row of `pov users` and `users.parquet`.
    #[derive(Clone, Debug, Default)]
    pub struct UserRecord {
        /// Pseudonym (hash of the identity key), or the raw key with `--no-mask`.
        pub user: String,
        /// Rule that identified the user: cookie, header, query, login, client,
        /// address.
        pub id_rule: String,
        /// First activity (epoch seconds).
        pub first_ts: f64,
        /// Last activity.
        pub last_ts: f64,
        /// Client address of the first request.
        pub client_ip: Option<String>,
        /// User-Agent of the first request.
        pub user_agent: Option<String>,
        /// Sign-in name (hashed unless `--no-mask`).
        pub login: Option<String>,
        /// Sessions.
        pub sessions: u64,
        /// Page views.
        pub pages: u64,
        /// Transactions.
        pub transactions: u64,
        /// Noticed failures by kind.
        pub failures: BTreeMap<String, u64>,
        /// Noticed failures in all.
        pub failures_total: u64,
        /// Failures on resources users rarely notice (images).
        pub minor_failures: u64,
        /// Pages requested again right after they failed.
        pub struggles: u64,
        /// Transactions with bytes missing from the capture (never failures).
        pub capture_loss: u64,
        /// At least one noticed failure.
        pub affected: bool,
        /// Placed an order (or reached a conversion page).
        pub converted: bool,
        /// Orders placed.
        pub orders: u64,
        /// Last cart value seen.
        pub cart_value: Option<f64>,
        /// Value of the orders placed.
        pub order_value: Option<f64>,
    }
    /// The column names of [`UserRecord`].
    pub columns UserColumns;
}

record! {
    /// One row of `pov sessions` and `sessions.parquet`.
    #[derive(Clone, Debug, Default)]
    pub struct SessionRecord {
        /// `user/index`.
        pub session: String,
        /// The user's pseudonym.
        pub user: String,
        /// Position among the user's sessions, from 1.
        pub index: u32,
        /// Start (epoch seconds).
        pub start: f64,
        /// End.
        pub end: f64,
        /// Seconds from start to end.
        pub duration_s: f64,
        /// Client address.
        pub client_ip: Option<String>,
        /// User-Agent.
        pub user_agent: Option<String>,
        /// Page views.
        pub pages: u64,
        /// Transactions.
        pub transactions: u64,
        /// Transactions left out of the session (over
        /// `--max-session-transactions`, or the memory budget was full): its
        /// pages and failures are what the others show.
        pub transactions_left_out: u64,
        /// Funnel steps reached, in order of first reach.
        pub steps: Vec<String>,
        /// The last funnel step reached.
        pub last_step: Option<String>,
        /// The furthest step of `[revenue] funnel` reached.
        pub funnel_step: Option<String>,
        /// The step of the session's last page view.
        pub exit_step: Option<String>,
        /// The session ended on a page view with a noticed failure (the user
        /// left right after being hurt).
        pub left_after_failure: bool,
        /// The kind of that failure (the first noticed one on the last page).
        pub exit_failure: Option<String>,
        /// The last page view's path and query (sensitive values masked).
        pub exit_url: Option<String>,
        /// Its route (`/product/{id}`: docs/schema.md).
        pub exit_route: Option<String>,
        /// Noticed failures by kind.
        pub failures: BTreeMap<String, u64>,
        /// Minor failures.
        pub minor_failures: u64,
        /// Struggles.
        pub struggles: u64,
        /// Transactions with capture loss.
        pub capture_loss: u64,
        /// At least one noticed failure.
        pub affected: bool,
        /// Apdex score of its page views: (satisfied + tolerating / 2) / pages.
        pub apdex: Option<f64>,
        /// Converted.
        pub converted: bool,
        /// Orders.
        pub orders: u64,
        /// Last cart value seen.
        pub cart_value: Option<f64>,
        /// Order value.
        pub order_value: Option<f64>,
    }
    /// The column names of [`SessionRecord`].
    pub columns SessionColumns;
}

record! {
    /// One row of `pov pages` and `pages.parquet`.
    #[derive(Clone, Debug, Default)]
    pub struct PageRecord {
        /// `user/session/index`.
        pub page: String,
        /// `user/session`.
        pub session: String,
        /// The user's pseudonym.
        pub user: String,
        /// Start (epoch seconds).
        pub ts: f64,
        /// Host.
        pub host: Option<String>,
        /// Path and query of the final document (sensitive values masked).
        pub url: String,
        /// Its route (`/product/{id}`: docs/schema.md).
        pub route: String,
        /// `[[pages]]` rule name.
        pub name: Option<String>,
        /// Funnel step.
        pub step: Option<String>,
        /// Status of the final document.
        pub status: Option<u16>,
        /// Redirects followed.
        pub redirects: u64,
        /// Requests (documents included).
        pub requests: u64,
        /// Document request to the last response byte, ms.
        pub load_ms: f64,
        /// Of that, ms some request waited for the server.
        pub server_ms: f64,
        /// The rest, ms.
        pub network_ms: f64,
        /// Apdex zone.
        pub apdex: String,
        /// Failure kinds met on it (noticed and minor).
        pub failures: Vec<String>,
    }
    /// The column names of [`PageRecord`].
    pub columns PageColumns;
}

record! {
    /// One row of `pov failures` and `failures.parquet`.
    #[derive(Clone, Debug, Default)]
    pub struct FailureRecord {
        /// When (epoch seconds).
        pub ts: f64,
        /// The user's pseudonym.
        pub user: String,
        /// `user/session`.
        pub session: String,
        /// Page view index in the session.
        pub page: Option<u32>,
        /// Kind.
        pub kind: String,
        /// Rule that decided.
        pub rule: String,
        /// critical, major, minor or info.
        pub severity: String,
        /// Connection (`C` + id, as in `pov transactions`).
        pub uid: String,
        /// Client `address:port` of the connection.
        pub client: Option<String>,
        /// Server `address:port`.
        pub server: Option<String>,
        /// Position of the transaction in its connection.
        pub trans_depth: Option<u32>,
        /// First frame of the evidence.
        pub first_frame: Option<u64>,
        /// Last frame of the evidence.
        pub last_frame: Option<u64>,
        /// Host.
        pub host: Option<String>,
        /// The `[[pages]]` name of its page view.
        pub page_name: Option<String>,
        /// Path and query (sensitive values masked).
        pub url: String,
        /// Its route (`/api/stock/{id}`: docs/schema.md).
        pub route: String,
        /// Status.
        pub status: Option<u16>,
        /// The evidence in words.
        pub detail: String,
    }
    /// The column names of [`FailureRecord`].
    pub columns FailureColumns;
}

record! {
    /// One row of `pov transactions --failed-connections FILE`: a
    /// connection attempt that failed before any HTTP (refused, or its SYN
    /// never answered), which the customer stage counts as a failure of
    /// the user behind it (`pov analyze --from-transactions`).
    #[derive(Clone, Debug, Default, serde::Deserialize)]
    pub struct FailedConnRecord {
        /// First SYN (epoch seconds).
        pub ts: f64,
        /// Last packet.
        pub end: f64,
        /// The start of the last transaction the packet stage had written
        /// when it saw the attempt end (the customer stage reads it there).
        pub seen_after: Option<f64>,
        /// Connection (`C` + id, as in `pov transactions`).
        pub uid: String,
        /// Client address.
        #[serde(rename = "id.orig_h")]
        pub orig_h: String,
        /// Client port.
        #[serde(rename = "id.orig_p")]
        pub orig_p: u16,
        /// Server address.
        #[serde(rename = "id.resp_h")]
        pub resp_h: String,
        /// Server port.
        #[serde(rename = "id.resp_p")]
        pub resp_p: u16,
        /// `refused`, `unanswered`, `tls_handshake_failed` or
        /// `tls_incomplete`.
        pub kind: String,
        /// SYNs the client sent.
        pub syns: u64,
        /// First frame.
        pub first_frame: u64,
        /// Last frame.
        pub last_frame: u64,
        /// The capture file it was read from (when the run read one file).
        pub capture: Option<String>,
        /// For a TLS failure: the server name the client asked for.
        pub sni: Option<String>,
        /// For a TLS failure: the alert, who sent it, when, at what offset.
        pub evidence: Option<String>,
    }
    /// The column names of [`FailedConnRecord`].
    pub columns FailedConnColumns;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_writes_its_columns() {
        check::<UserRecord>().unwrap();
        check::<SessionRecord>().unwrap();
        check::<PageRecord>().unwrap();
        check::<FailureRecord>().unwrap();
        check::<FailedConnRecord>().unwrap();
    }

    /// What [`record!`](crate::record) makes impossible, written by hand:
    /// the check finds each way a column list can drift from its struct.
    #[test]
    fn a_field_without_its_column_is_found() {
        #[derive(Serialize, Default)]
        struct Added {
            user: String,
            affected: bool,
            added: u64,
        }
        impl Fields for Added {
            const FIELDS: &'static [(&'static str, Kind)] = &[("user", Kind::Str), ("affected", Kind::Bool)];
            const OPTIONAL: &'static [bool] = &[false, false];
        }
        assert_eq!(
            check::<Added>().unwrap_err(),
            format!("{}: field added is written but has no column", name::<Added>())
        );

        #[derive(Serialize, Default)]
        struct Removed {
            user: String,
        }
        impl Fields for Removed {
            const FIELDS: &'static [(&'static str, Kind)] = &[("user", Kind::Str), ("affected", Kind::Bool)];
            const OPTIONAL: &'static [bool] = &[false, false];
        }
        assert_eq!(check::<Removed>().unwrap_err(), format!("{}: column affected has no field", name::<Removed>()));

        #[derive(Serialize, Default)]
        struct Renamed {
            #[serde(rename = "who")]
            user: String,
        }
        impl Fields for Renamed {
            const FIELDS: &'static [(&'static str, Kind)] = &[("user", Kind::Str)];
            const OPTIONAL: &'static [bool] = &[false];
        }
        assert_eq!(
            check::<Renamed>().unwrap_err(),
            format!("{}: field 0 is written as who, its column is user", name::<Renamed>())
        );

        #[derive(Serialize, Default)]
        struct Retyped {
            sessions: f64,
        }
        impl Fields for Retyped {
            const FIELDS: &'static [(&'static str, Kind)] = &[("sessions", Kind::U64)];
            const OPTIONAL: &'static [bool] = &[false];
        }
        assert_eq!(
            check::<Retyped>().unwrap_err(),
            format!("{}: column sessions is U64, its field writes 0", name::<Retyped>())
        );
    }

    fn name<T>() -> &'static str {
        std::any::type_name::<T>()
    }

    #[test]
    fn columns_come_from_the_fields() {
        let s = SessionRecord::COLUMN;
        assert_eq!((s.session, s.exit_route, s.left_after_failure), ("session", "exit_route", "left_after_failure"));
        assert_eq!(SessionRecord::FIELDS.len(), 29);
        assert_eq!(SessionRecord::FIELDS[11], ("steps", Kind::StrList));
        assert_eq!(SessionRecord::FIELDS[19], ("failures", Kind::Str), "a map is its JSON text");
        assert_eq!(FailureRecord::FIELDS[3], ("page", Kind::U64), "an optional u32");
        assert!(FailureRecord::OPTIONAL[3] && !FailureRecord::OPTIONAL[4]);
        assert_eq!(FailureRecord::OPTIONAL.len(), FailureRecord::FIELDS.len());
        assert_eq!(UserRecord::FIELDS[18], ("cart_value", Kind::F64));
        assert_eq!(
            PageRecord::names(),
            [
                "page",
                "session",
                "user",
                "ts",
                "host",
                "url",
                "route",
                "name",
                "step",
                "status",
                "redirects",
                "requests",
                "load_ms",
                "server_ms",
                "network_ms",
                "apdex",
                "failures"
            ]
        );
    }

    #[test]
    fn file_names_are_distinct() {
        let mut all: Vec<&str> = files::RECORDS.iter().chain(&files::SUMMARIES).copied().collect();
        all.extend([files::REPLAYS, files::REPLAY_CANDIDATES]);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(files::replay("u.html"), "replays/u.html");
    }
}
