//! pov-capture: the passive capture layer of pov.
//!
//! # Brief overview
//!
//! Bytes flow through four stages, each owned by one module:
//!
//! 1. [`pcap`] reads pcap and pcapng files (plain or gzip, or stdin), merges
//!    several files by timestamp, and yields one [`Packet`] per frame.
//! 2. [`decode`] walks link layers and tunnels down to the innermost IP
//!    header, reassembles IP fragments (bounded), and yields a
//!    [`TcpSegment`] for every TCP packet. Everything else is counted by
//!    reason in [`decode::DecodeStats`], never silently dropped.
//! 3. [`tcp`] rebuilds each connection's two byte streams exactly and pushes
//!    stream events (open, data, gap, half-close, close) into a
//!    [`tcp::StreamSink`], in capture-time order.
//! 4. [`http`] parses each connection's streams into HTTP/1.x transactions
//!    ([`http::HttpTransaction`]) and hands them out in request-time order.
//!
//! Times are capture times ([`Ts`]); nothing here reads the wall clock.
//! Library code never prints or exits: problems in the traffic are counted,
//! problems with the input are returned as errors naming the file and byte
//! offset.

#![deny(missing_docs)]
// Only `http::brotli_c` (the calls into the C brotli decoder), `hint`
// (the prefetch instruction) and the test build's counting allocator
// (`counting`) allow it.
#![deny(unsafe_code)]

pub mod budget;
pub mod decode;
pub mod hint;
pub mod http;
#[cfg(feature = "live")]
pub mod live;
pub mod packet;
pub mod pcap;
pub mod source;
pub mod tcp;
#[doc(hidden)]
pub mod testing;
pub mod text;
pub mod time;
pub mod units;

#[cfg(test)]
pub(crate) mod counting;

pub use budget::{Budget, BudgetReport, Holder};
pub use packet::{Block, Domain, Linktype, Packet, TcpFlags, TcpOptions, TcpSegment};
pub use source::{CaptureLoss, PacketFilter, PacketSource};
pub use time::{Dur, Ts};

/// A hash map for keys that traffic carries (addresses, connection ids,
/// user keys): hashed as the connection table hashes its flows (foldhash,
/// through hashbrown, seeded anew in every process), not with the
/// standard library's SipHash, which cost several times more a key.
pub type FastMap<K, V> = std::collections::HashMap<K, V, hashlink::DefaultHashBuilder>;

/// A hash set hashed as [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, hashlink::DefaultHashBuilder>;
