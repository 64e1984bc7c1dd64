//! HTTP/2 transactions from reassembled TCP streams (h2 after TLS ALPN,
//! h2c with prior knowledge, h2c by Upgrade), with an HPACK decoder.
//!
//! # Brief overview
//!
//! [`H2Conn`] follows one connection. The caller (pov-capture's stream
//! layer, or a test) feeds it each direction's bytes in stream order as
//! [`Chunk`]s with their capture times, the bytes the capture lost
//! ([`H2Conn::gap`]) and the end ([`H2Conn::close`]); it hands back one
//! [`H2Transaction`] per stream ([`H2Conn::take`]): method, scheme,
//! authority, path, status, request and response header fields, body
//! sizes, times of the first and last byte of request and response,
//! stream id, whether it was pushed, how it ended ([`Outcome`]) and what
//! was unusual ([`Anomaly`]). It never sends anything and never prints.
//!
//! Layers, lowest first: [`huffman`] (RFC 7541 Appendix B) → [`hpack`]
//! (RFC 7541: tables, representations) → [`frame`] (RFC 9113 frame
//! layout) → `conn` (frame reader per direction, header blocks, streams).
//! [`detect`] tells the caller when a connection is HTTP/2.
//!
//! # How a connection becomes HTTP/2
//!
//! - **Prior knowledge** (h2c) and **TLS ALPN "h2"**: the client's first
//!   bytes are the 24-octet preface. [`Start::Preface`]; if they are not,
//!   [`H2Conn::is_h2`] says `Some(false)` and nothing more is parsed
//!   ([`detect::sniff_preface`] decides before building one).
//! - **Upgrade** (h2c, RFC 7540 3.2): the HTTP/1 parser sees a request
//!   with `Upgrade: h2c` and `HTTP2-Settings`
//!   ([`detect::h2c_upgrade_request`]) answered by `101`
//!   ([`detect::h2c_upgrade_accepted`]); it then builds the connection
//!   with [`Start::Upgraded`] and that request, which becomes stream 1,
//!   and feeds it client bytes from just after the request (they begin
//!   with the preface) and server bytes from just after the 101's head.
//!
//! # Outcomes
//!
//! Both sides sent END_STREAM: `Complete`. RST_STREAM from the client:
//! `ClientAbort` (its code, CANCEL for a user who went away, is in
//! [`H2Transaction::reset`]). From the server: `Refused` for
//! REFUSED_STREAM (no work done, the client may retry), otherwise
//! `ServerReset`; a reset after the whole response is `Complete` (a
//! server may stop a request body that way). Streams above the
//! last-stream-id of a GOAWAY are `RefusedByGoaway`: never processed,
//! not a failure of the application. When the connection closes, streams
//! still open are `NoResponse` (no response header yet), `Truncated`
//! (response begun), `ClientAbort`/`ServerReset` (TCP RST), or
//! `CaptureGap` when the capture ended first.
//!
//! # Loss, and what is recovered
//!
//! HPACK makes each direction's header blocks depend on every earlier
//! block of that direction (the dynamic table), and frames can only be
//! found by walking their lengths from the start. So:
//!
//! - A gap **inside a DATA frame's payload** (the frame header was seen,
//!   and the gap ends before the frame does) loses body bytes only: they
//!   are counted ([`Body::lost_bytes`], [`H2Transaction::missing_bytes`]),
//!   the frame's end is known, parsing carries on. The stream is
//!   `CaptureGap` with all its other fields.
//! - A gap **inside a HEADERS, CONTINUATION or PUSH_PROMISE payload**
//!   loses a header block: that stream is `CaptureGap`, and the
//!   direction's HPACK table can no longer be trusted (the lost block may
//!   have added entries). Every later header block of that direction is
//!   not decoded (never guessed): its stream is `CaptureGap` with anomaly
//!   `HpackDesync`; frames are still walked, so DATA sizes, END_STREAM
//!   and resets are still known. The other direction is unaffected (each
//!   direction has its own table).
//! - A gap **inside another frame** whose end is known (SETTINGS, PING,
//!   WINDOW_UPDATE, GOAWAY, RST_STREAM): that frame is lost (a lost
//!   RST_STREAM makes its stream `CaptureGap`), nothing else.
//! - A gap that **crosses a frame boundary** (or falls in a frame header):
//!   frame boundaries are lost for the rest of that direction. Nothing
//!   more of it is parsed (counted in [`H2Stats::unparsed_bytes`]); every
//!   stream open then is `CaptureGap`. If the client's direction is lost,
//!   responses the server still sends open streams of their own
//!   (`NoRequest`, `CaptureGap`); if the server's is, later requests are
//!   `CaptureGap` with no response.
//!
//! There is no resynchronisation inside a direction: a frame header has
//! no marker, so any position found by guessing could be wrong, and the
//! HPACK table would be wrong anyway.
//!
//! # Limits
//!
//! Every cap has a default in [`H2Config`] and a counter in [`H2Stats`]:
//! a hostile frame length never allocates beyond `max_frame_buffer`
//! (DATA payloads are never buffered), header blocks beyond
//! `max_header_block`, decoded header lists beyond `max_header_list`,
//! the dynamic table beyond `max_table_size`, open streams beyond
//! `max_streams`.
//!
//! # Bodies
//!
//! Body sizes are DATA payload octets without padding. Content encodings
//! (gzip, br ...) are not decoded here: the first `body_keep_bytes` wire
//! octets are kept and the caller decodes them as it does for HTTP/1. A
//! caller that keeps only some bodies (by content type, say) gives a
//! [`KeepRule`]: it sees each message's header fields and says how many
//! octets of its body to keep, so the bodies it would throw away are never
//! copied.
//!
//! # Mapping onto pov-capture's records
//!
//! Made to map one to one when pov-capture feeds this crate:
//! `DataChunk { dir, bytes, first_ts, last_ts, first_frame, last_frame }`
//! is a [`Chunk`] for [`Side`] `ClientToServer`/`ServerToClient` (`Ts.0`
//! is the nanoseconds used here); `Gap { dir, len, ts }` is
//! [`H2Conn::gap`]; `Close { how }` is [`CloseHow`]. An
//! [`H2Transaction`] becomes an `HttpTransaction` with `depth` = the
//! stream's order in the connection, `request` = method + path as `uri` +
//! `request_headers` (with `host` from `authority`) and version "2",
//! `response` = `status` + `response_headers`, `interim`, `timing`
//! (`req_start`, `req_end`, `resp_start`, `resp_end`), `req_frames`,
//! `resp_frames`, body sizes from [`Body`] (decoding the kept octets as
//! for HTTP/1), `missing_bytes`, and the outcome: `Refused` and
//! `RefusedByGoaway` have no HTTP/1 counterpart (they are not failures of
//! the application; the closest HTTP/1 reading would be `NoResponse`,
//! which is one), so the record needs them as values of its own.
//!
//! # Known limits
//!
//! - Frames of one direction are read in order of that direction only: a
//!   server HEADERS for a stream the client's bytes have not opened yet
//!   (a reassembler that delivers the request after the response) is
//!   counted in [`H2Stats::frames_on_closed_streams`] and dropped.
//! - Stream dependencies and weights (PRIORITY) are read past, not kept.
//!
//! # Example
//!
//! ```
//! use pov_http2::{Chunk, CloseHow, H2Config, H2Conn, Outcome, Side, Start};
//!
//! let mut c = H2Conn::new(H2Config::default(), Start::Preface);
//! let at = |bytes| Chunk { bytes, first_ts: 0, last_ts: 0, first_frame: 1, last_frame: 1 };
//! let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
//! // HEADERS on stream 1, END_STREAM|END_HEADERS: GET http://a/ (static
//! // table 2, 6, 4, and :authority "a" as a literal).
//! client.extend_from_slice(&[0, 0, 6, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 1, b'a']);
//! c.data(Side::Client, &at(&client));
//! // HEADERS :status 404 (static 13), then 3 octets of DATA with END_STREAM.
//! c.data(Side::Server, &at(&[0, 0, 1, 1, 4, 0, 0, 0, 1, 0x8d, 0, 0, 3, 0, 1, 0, 0, 0, 1, b'n', b'o', b'!']));
//! let tx = c.take().pop().unwrap();
//! assert_eq!((tx.method.as_deref(), tx.path.as_deref(), tx.status), (Some("GET"), Some(&b"/"[..]), Some(404)));
//! assert_eq!((tx.response_body.wire_bytes, tx.outcome), (3, Outcome::Complete));
//! c.close(CloseHow::Fin, 0);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod conn;
pub mod detect;
pub mod frame;
pub mod hpack;
pub mod huffman;
mod tx;

use std::sync::Arc;

pub use conn::{Chunk, CloseHow, H2Conn, Start, UpgradeRequest};
pub use tx::{Anomaly, Body, FrameSpan, H2Transaction, HeaderList, Outcome, Reset, Side, Timing};

/// Limits of the HTTP/2 layer. Each has a counter in [`H2Stats`].
#[derive(Clone, Debug)]
pub struct H2Config {
    /// Largest non-DATA frame payload buffered; a longer frame is skipped
    /// ([`H2Stats::oversized_frames`]; a header block in it is lost).
    pub max_frame_buffer: usize,
    /// Largest header block (HEADERS plus CONTINUATION fragments); a
    /// larger one is not decoded ([`H2Stats::header_blocks_too_large`])
    /// and its direction's HPACK table is lost.
    pub max_header_block: usize,
    /// Largest decoded header list (RFC 9113 size: names, values, 32 per
    /// field); fields beyond are dropped while decoding goes on
    /// ([`H2Stats::header_lists_too_large`]).
    pub max_header_list: usize,
    /// Largest HPACK dynamic table a size update may set; above, the
    /// direction's table is lost ([`H2Stats::hpack_errors`]).
    pub max_table_size: usize,
    /// Most streams open at once on a connection; beyond, the oldest is
    /// given up ([`H2Stats::stream_overflows`]).
    pub max_streams: usize,
    /// Body octets kept per message (wire bytes, before any content
    /// decoding).
    pub body_keep_bytes: usize,
    /// How many body octets to keep of each message, from its header
    /// fields (at most `body_keep_bytes`); `None`: `body_keep_bytes` of
    /// every body. A message whose header block was not decoded keeps
    /// `body_keep_bytes`.
    pub keep_rule: Option<KeepRule>,
}

/// A caller's rule for how many body octets of a message to keep, given
/// who sent it and its header fields (content type and encoding, say).
#[derive(Clone)]
pub struct KeepRule(pub Arc<KeepFn>);

/// The function a [`KeepRule`] holds: body octets to keep for a message
/// from `Side` with these header fields.
pub type KeepFn = dyn Fn(Side, &HeaderList) -> usize + Send + Sync;

impl std::fmt::Debug for KeepRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepRule(..)")
    }
}

impl Default for H2Config {
    fn default() -> H2Config {
        H2Config {
            max_frame_buffer: 256 << 10,
            max_header_block: 256 << 10,
            max_header_list: 256 << 10,
            max_table_size: 1 << 20,
            max_streams: 4096,
            body_keep_bytes: 256 << 10,
            keep_rule: None,
        }
    }
}

/// Counters of the HTTP/2 layer, including every cap that acted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct H2Stats {
    /// Connections followed.
    pub connections: u64,
    /// Of those, switched from HTTP/1.1 by Upgrade.
    pub upgrades: u64,
    /// Connections whose client did not send the preface.
    pub not_h2: u64,
    /// Frames by type: DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS,
    /// PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION, unknown
    /// (the order of [`frame::FrameType::index`]).
    pub frames: [u64; 11],
    /// Frames of unknown types (ignored, RFC 9113 5.5).
    pub unknown_frames: u64,
    /// Frames larger than the receiver's SETTINGS_MAX_FRAME_SIZE (parsed
    /// all the same, within the caps).
    pub frames_over_max_frame_size: u64,
    /// Non-DATA frames over [`H2Config::max_frame_buffer`] (skipped).
    pub oversized_frames: u64,
    /// Frames whose fixed-size payload had the wrong length, or sent on
    /// stream 0 when they need a stream (ignored).
    pub bad_frames: u64,
    /// Header blocks broken by a frame other than their CONTINUATION.
    pub continuation_errors: u64,
    /// DATA or HEADERS frames whose padding exceeded their payload.
    pub bad_padding: u64,
    /// Frames for streams already finished (late WINDOW_UPDATE,
    /// trailers after a reset ...), ignored.
    pub frames_on_closed_streams: u64,
    /// Header blocks ended (decoded or not).
    pub header_blocks: u64,
    /// Header blocks the capture had whole that did not decode.
    pub hpack_errors: u64,
    /// Directions whose HPACK table was lost (by a gap or a bad block).
    pub hpack_desyncs: u64,
    /// Table size updates above the receiver's known setting (obeyed).
    pub table_size_over_setting: u64,
    /// Header blocks over [`H2Config::max_header_block`].
    pub header_blocks_too_large: u64,
    /// Header lists over [`H2Config::max_header_list`].
    pub header_lists_too_large: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Directions whose frame boundaries a gap took away.
    pub lost_directions: u64,
    /// Octets not parsed because their direction's frame boundaries were
    /// lost.
    pub unparsed_bytes: u64,
    /// Body octets the capture lost inside DATA frames.
    pub lost_body_bytes: u64,
    /// SETTINGS frames a gap cut.
    pub settings_lost: u64,
    /// GOAWAY frames a gap cut.
    pub goaway_lost: u64,
    /// PUSH_PROMISE frames a gap cut (their promised stream is unknown).
    pub pushes_lost: u64,
    /// Frames cut by the end of the connection.
    pub truncated_frames: u64,
    /// Streams followed (pushed ones included).
    pub streams: u64,
    /// Streams pushed by servers.
    pub pushes: u64,
    /// RST_STREAM frames from clients, from servers.
    pub resets: [u64; 2],
    /// RST_STREAM frames for streams already finished.
    pub late_resets: u64,
    /// GOAWAY frames.
    pub goaways: u64,
    /// GOAWAY frames with an error code.
    pub goaway_errors: u64,
    /// Streams given up over [`H2Config::max_streams`].
    pub stream_overflows: u64,
    /// Transactions by outcome, in the order of [`Outcome`]'s variants.
    pub outcomes: [u64; 9],
}

impl H2Stats {
    /// Adds another connection's (or analyzer's) counters.
    pub fn merge(&mut self, o: &H2Stats) {
        let add = |a: &mut u64, b: u64| *a += b;
        add(&mut self.connections, o.connections);
        add(&mut self.upgrades, o.upgrades);
        add(&mut self.not_h2, o.not_h2);
        for (a, b) in self.frames.iter_mut().zip(o.frames) {
            *a += b;
        }
        add(&mut self.unknown_frames, o.unknown_frames);
        add(&mut self.frames_over_max_frame_size, o.frames_over_max_frame_size);
        add(&mut self.oversized_frames, o.oversized_frames);
        add(&mut self.bad_frames, o.bad_frames);
        add(&mut self.continuation_errors, o.continuation_errors);
        add(&mut self.bad_padding, o.bad_padding);
        add(&mut self.frames_on_closed_streams, o.frames_on_closed_streams);
        add(&mut self.header_blocks, o.header_blocks);
        add(&mut self.hpack_errors, o.hpack_errors);
        add(&mut self.hpack_desyncs, o.hpack_desyncs);
        add(&mut self.table_size_over_setting, o.table_size_over_setting);
        add(&mut self.header_blocks_too_large, o.header_blocks_too_large);
        add(&mut self.header_lists_too_large, o.header_lists_too_large);
        add(&mut self.gaps, o.gaps);
        add(&mut self.lost_directions, o.lost_directions);
        add(&mut self.unparsed_bytes, o.unparsed_bytes);
        add(&mut self.lost_body_bytes, o.lost_body_bytes);
        add(&mut self.settings_lost, o.settings_lost);
        add(&mut self.goaway_lost, o.goaway_lost);
        add(&mut self.pushes_lost, o.pushes_lost);
        add(&mut self.truncated_frames, o.truncated_frames);
        add(&mut self.streams, o.streams);
        add(&mut self.pushes, o.pushes);
        for (a, b) in self.resets.iter_mut().zip(o.resets) {
            *a += b;
        }
        add(&mut self.late_resets, o.late_resets);
        add(&mut self.goaways, o.goaways);
        add(&mut self.goaway_errors, o.goaway_errors);
        add(&mut self.stream_overflows, o.stream_overflows);
        for (a, b) in self.outcomes.iter_mut().zip(o.outcomes) {
            *a += b;
        }
    }

    /// Transactions emitted.
    pub fn transactions(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Transactions with outcome `o`.
    pub fn outcome(&self, o: Outcome) -> u64 {
        self.outcomes[o as usize]
    }

    pub(crate) fn count(&mut self, o: Outcome) {
        self.outcomes[o as usize] += 1;
    }
}
