//! pov-synth: synthetic web-shop traffic with an exact answer key.
//!
//! # Brief overview
//!
//! [`generate`] simulates a shop's users ([`SynthConfig`]): they arrive,
//! browse, fill carts, sign in, check out, meet injected faults (5xx, 404,
//! error pages served with 200 OK, API calls answered 200 whose JSON says
//! they failed, slow answers, resets, truncated bodies, no answer, client
//! aborts, refused and unanswered connections) and react
//! (retry, carry on, give up). Every request travels over a simulated TCP
//! connection written as real stacks write it (handshake, MSS segments,
//! delayed ACKs, congestion-window flights, FIN and RST teardown), seen
//! from a capture point beside the server, optionally with network loss and
//! capture noise (missed packets, duplicates, reordering) that is not an
//! application failure. Frames go to a pcap or pcapng writer in capture-time
//! order; the answer key ([`key`]) goes to a JSON writer as each user ends.
//!
//! Output is deterministic: the same configuration and seed give the same
//! bytes. Memory holds only the frames of users whose visits overlap.
//!
//! The crate does not depend on pov's analysis crates, so the truth cannot
//! borrow from the code it checks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
mod generator;
pub mod hostile;
pub mod http;
pub mod key;
pub mod rng;
pub mod site;
pub mod tcp;
pub mod writer;

pub use config::{FaultRates, Profile, Reactions, SynthConfig};
pub use generator::generate;
pub use writer::CaptureFormat;
