//! End-to-end tests of the `pov` binary, one test binary (ripgrep's layout).
//!
//! They run the real binary on `samples/` and on the shared public corpus
//! (`../shared/corpus`, or `POV_CORPUS`), and compare with figures derived
//! from tshark and committed under `tests/corpus/`.
#![forbid(unsafe_code)]

mod netns;
mod util;

mod analyze;
mod cli;
mod edges;
mod fleet;
mod flows;
mod fuzz_corpus;
mod http;
mod https;
mod identity;
mod live;
mod netem;
mod parallel;
mod privacy;
mod reassembly;
mod replay;
mod spark;
mod synth;
mod users;
