//! pov: the pipeline driver.
//!
//! # Brief overview
//!
//! The `pov` binary is a thin shell over this library. [`pipeline`] opens
//! capture files and runs them through `pov_capture`'s stages (read, decode,
//! reassemble), pushing stream events into a caller's
//! [`pov_capture::tcp::StreamSink`] and returning a [`pipeline::RunReport`]
//! with every counter and every input problem. [`flows`] is the sink behind
//! `pov flows` (one record per TCP connection), [`transactions`] renders
//! HTTP transactions for `pov transactions`, and [`output`] renders
//! records as tables, JSON or CSV into any writer, and writes files
//! atomically. [`config`] reads `pov.toml`; [`users`] is the user stage
//! behind `pov users`, `pov sessions`, `pov pages` and `pov failures`
//! (pov-sessions ties transactions to users, sessions and page views;
//! pov-classify labels the failures). [`run`] is what each command does,
//! from its settings to its outputs (`pov analyze` and the replay pass
//! included); [`schema`] names every file and column pov writes.
//!
//! [`testing`] holds the invariant checks the fuzz targets (`fuzz/`) and
//! the corpus-replay tests (`tests/fuzz_corpus.rs`) share.
//!
//! Library code never prints or exits; problems with the input come back as
//! values naming the file and byte offset.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod analyze;
pub mod config;
pub mod dataset;
pub mod find;
pub mod flows;
pub mod interval;
pub mod output;
pub mod parallel;
pub mod pipeline;
pub mod replay;
pub mod report;
pub mod resend;
pub mod run;
pub mod stages;
pub mod store;
pub mod testing;
pub mod transactions;
pub mod users;

/// What pov writes: the files of a `pov analyze` run, and every record
/// type with its columns (pov-impact owns it).
pub use pov_impact::schema;
