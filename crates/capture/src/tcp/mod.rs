//! Exact TCP stream reassembly.
//!
//! # Brief overview
//!
//! [`Reassembler::process`] takes decoded [`TcpSegment`](crate::TcpSegment)s in capture order
//! and rebuilds, per connection and direction, the byte stream each side
//! sent. It pushes what it learns into a [`StreamSink`]:
//!
//! * `on_open` ([`ConnMeta`]): once per connection, before any other event
//!   of it, with client and server (from the handshake; for connections
//!   already open when the capture started, from the first payload, then
//!   ports) and the handshake round trip when SYN, SYN-ACK and ACK were seen;
//! * `on_data` ([`DataChunk`]): bytes in stream order, each chunk with the
//!   capture time and frame of the segment that carried it (so every byte
//!   has its own capture time);
//! * `on_gap` ([`Gap`]): bytes the capture does not have, by offset and
//!   length, as soon as pov can know they are missing: when the peer
//!   acknowledges them, when the capture cut the frame (snaplen), when the
//!   out-of-order buffer is full, or when the connection ends with a hole;
//! * `on_half_close` ([`HalfClose`]): a direction ended with a FIN and every
//!   byte before it was delivered or reported missing;
//! * `on_close` ([`Close`]): the connection ended (both FINs, a RST from one
//!   side, idle timeout, end of capture, eviction under the connection cap,
//!   or a new SYN on the same addresses);
//! * `on_summary` ([`ConnSummary`]): the connection's final record (counters
//!   per direction), emitted when pov forgets the connection, a little after
//!   its close so that stray packets after a close still count toward it.
//!
//! For one connection the order is always: one `on_open`, then data, gaps and
//! half-closes in stream order per direction, one `on_close`, one
//! `on_summary`. Offsets are 0 at the first byte after the SYN (or at the
//! first sequence number seen, for a connection picked up mid-stream).
//!
//! # Policies
//!
//! * Overlaps: the first copy of a byte in the capture wins; a later copy
//!   that disagrees with a byte still held out of order is counted as a
//!   conflicting overlap. Bytes already delivered are not kept, so
//!   retransmissions of them are counted but cannot be compared.
//! * Sequence numbers are unwrapped to 64-bit offsets relative to the
//!   expected next byte, so wraparound and streams beyond 4 GiB work.
//! * A RST closes the connection when its sequence number is the one its
//!   receiver expects next. Elsewhere (RFC 5961 receivers drop it) it is
//!   held: new bytes in sequence from either side mean it was ignored, and
//!   the connection goes on ([`HalfStats::ignored_rsts`],
//!   [`DataChunk::after_rst`]); otherwise it stands, and the connection
//!   closes as it said, at its time, once a tomb would be forgotten or a
//!   SYN comes.
//! * Memory is bounded: [`TcpConfig::max_connections`] (longest idle evicted),
//!   [`TcpConfig::max_ooo_bytes`] per direction and
//!   [`TcpConfig::max_ooo_total`] over all connections; every cap that acts
//!   is counted in [`TcpStats`].
//!
//! # Layout
//!
//! * `events`: the [`StreamSink`] trait and what it receives;
//! * `assembler`: one direction's byte stream (offsets, held pieces, gaps);
//! * `connection`: one connection (its two sides, handshake, roles,
//!   lifecycle);
//! * `table`: the [`Reassembler`] (connection table, idle expiry,
//!   eviction, closed connections remembered for stray packets).

mod assembler;
mod connection;
mod events;
mod table;

#[cfg(test)]
mod tests;

pub use assembler::HELD_OVERHEAD;
pub use events::{
    Close, CloseHow, ConnId, ConnMeta, ConnState, ConnSummary, DataChunk, Direction, Gap, GapReason, HalfClose,
    HalfStats, Handshake, Retransmission, RoleSource, StreamSink, TcpStats,
};
pub use table::{CONN_COST, Reassembler, TOMB_COST, TcpConfig, shard_hash};
