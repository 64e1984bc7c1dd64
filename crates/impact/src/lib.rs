//! pov-impact: pov's polars stage.
//!
//! # Brief overview
//!
//! Everything pov writes in columns goes through polars here, the one crate
//! of the tree that depends on it. Today that is [`ParquetWriter`]: records
//! (JSON objects with a declared column list) streamed into a Parquet file
//! in row groups, so memory holds one row group, never the whole output;
//! [`summary`], the aggregation of affected users and lost revenue from
//! those files; and [`schema`], the one definition of what pov writes: the
//! files of a run, and every record type with its columns ([`record!`]).
//!
//! The crate never prints or exits; errors are `io::Error`s that say what
//! went wrong.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod csv;
mod file;
pub mod json;
pub mod parquet;
pub mod read;
mod row;
pub mod schema;
pub mod summary;

pub use parquet::{CellView, Kind, ParquetWriter, Row, RowShape};
pub use summary::{
    Estimate, FunnelRow, HourImpact, Impact, KindExits, PageApdex, RevenueModel, RouteImpact, StepImpact, TOP_USERS,
    TopUser, impact,
};
