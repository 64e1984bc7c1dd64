//! Exact TCP stream reassembly.
//!
//! # Brief overview
//!
//! [`Reassembler::process`] takes decoded [`TcpSegment`]s in capture order
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
//! * Memory is bounded: [`TcpConfig::max_connections`] (longest idle evicted),
//!   [`TcpConfig::max_ooo_bytes`] per direction and
//!   [`TcpConfig::max_ooo_total`] over all connections; every cap that acts
//!   is counted in [`TcpStats`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hashlink::LinkedHashMap;

use crate::budget::{Budget, Charge, Holder};
use crate::packet::TcpSegment;
use crate::time::{Dur, Ts};

/// Identifies a connection within one run; assigned in order of first
/// packet, from 1, never reused.
pub type ConnId = u64;

/// Which way bytes travel on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Direction {
    /// From the client (the side that sent the SYN) to the server.
    ClientToServer,
    /// From the server to the client.
    ServerToClient,
}

impl Direction {
    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }

    /// Short name: `c2s` or `s2c`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }

    /// The side that sends in this direction: `client` or `server`.
    pub fn sender(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client",
            Direction::ServerToClient => "server",
        }
    }
}

/// How pov decided which side is the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// The client's SYN was seen.
    Syn,
    /// Only the server's SYN-ACK was seen.
    SynAck,
    /// The first payload looked like an HTTP request or response.
    Payload,
    /// Port numbers: a well-known or common service port, else the lower.
    Port,
    /// Nothing else to go on: the first packet's sender is the client.
    FirstPacket,
}

/// Times of the three-way handshake, as captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Handshake {
    /// The client's (first) SYN.
    pub syn: Ts,
    /// The server's (first) SYN-ACK.
    pub syn_ack: Ts,
    /// The client's first ACK of the SYN-ACK.
    pub ack: Ts,
}

impl Handshake {
    /// Full handshake round trip as seen from the capture point (SYN to
    /// ACK), what tshark calls `tcp.analysis.initial_rtt`.
    pub fn rtt(&self) -> Dur {
        self.ack - self.syn
    }
    /// The server side of the round trip (SYN to SYN-ACK).
    pub fn server_rtt(&self) -> Dur {
        self.syn_ack - self.syn
    }
    /// The client side of the round trip (SYN-ACK to ACK).
    pub fn client_rtt(&self) -> Dur {
        self.ack - self.syn_ack
    }
}

/// What is known about a connection when it opens.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnMeta {
    /// Connection id.
    pub id: ConnId,
    /// Client address and port.
    pub client: SocketAddr,
    /// Server address and port.
    pub server: SocketAddr,
    /// Capture time of the connection's first packet.
    pub start: Ts,
    /// Frame of the connection's first packet.
    pub first_frame: u64,
    /// The handshake, when SYN, SYN-ACK and ACK were all seen.
    pub handshake: Option<Handshake>,
    /// How the client was told from the server.
    pub roles: RoleSource,
}

/// Bytes of one direction, in stream order.
#[derive(Clone, Copy, Debug)]
pub struct DataChunk<'a> {
    /// Connection.
    pub conn: ConnId,
    /// Direction.
    pub dir: Direction,
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub bytes: &'a [u8],
    /// Capture time of the first segment that carried these bytes.
    pub first_ts: Ts,
    /// Capture time of the last segment that carried these bytes.
    pub last_ts: Ts,
    /// Frame of the first segment.
    pub first_frame: u64,
    /// Frame of the last segment.
    pub last_frame: u64,
    /// How far the sender had acknowledged the other direction's stream
    /// (an offset in it) when it sent these bytes: for a request, how much
    /// of the server's answers the client had received.
    pub peer_ack: Option<u64>,
}

/// Why bytes are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The peer acknowledged bytes the capture never had.
    AckedUnseen,
    /// The capture cut the frame at its snapshot length.
    SnaplenCut,
    /// The out-of-order buffer hit its cap; pov moved on.
    BufferLimit,
    /// The connection ended (RST, FIN, timeout, end of capture) with a hole
    /// before later data or before the FIN.
    AtClose,
}

impl GapReason {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::AckedUnseen => "acked_unseen",
            GapReason::SnaplenCut => "snaplen_cut",
            GapReason::BufferLimit => "buffer_limit",
            GapReason::AtClose => "at_close",
        }
    }
}

/// Bytes of one direction missing from the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Connection.
    pub conn: ConnId,
    /// Direction.
    pub dir: Direction,
    /// Stream offset of the first missing byte.
    pub offset: u64,
    /// Number of missing bytes.
    pub len: u64,
    /// Capture time at which pov learned of the gap.
    pub ts: Ts,
    /// Why.
    pub reason: GapReason,
}

/// Bytes sent again that the stream already held: the sender had not seen
/// them acknowledged (the capture saw a copy the receiver may not have).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmission {
    /// Connection.
    pub conn: ConnId,
    /// Direction.
    pub dir: Direction,
    /// Stream offsets of the bytes sent again, `[start, end)`.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// Capture time of the copy.
    pub ts: Ts,
    /// Its frame.
    pub frame: u64,
}

/// One direction ended with a FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalfClose {
    /// Connection.
    pub conn: ConnId,
    /// The direction that ended.
    pub dir: Direction,
    /// Capture time of the FIN segment.
    pub ts: Ts,
    /// Frame of the FIN segment.
    pub frame: u64,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "how", content = "by")]
pub enum CloseHow {
    /// Both sides sent a FIN; `first` is the direction that closed first.
    Fin {
        /// The direction whose FIN came first.
        first: Direction,
    },
    /// A RST; `from` is the direction it travelled.
    Rst {
        /// The direction of the RST (`ClientToServer`: sent by the client).
        from: Direction,
    },
    /// No packet for [`TcpConfig::idle_timeout`].
    IdleTimeout,
    /// The capture ended with the connection open.
    EndOfCapture,
    /// Dropped to stay under [`TcpConfig::max_connections`].
    Evicted,
    /// A new SYN on the same addresses and ports started a new connection.
    Superseded,
}

impl CloseHow {
    /// Short text, e.g. `fin by client`, `rst by server`, `idle timeout`.
    pub fn describe(&self) -> String {
        match self {
            CloseHow::Fin { first } => format!("fin by {}", first.sender()),
            CloseHow::Rst { from } => format!("rst by {}", from.sender()),
            CloseHow::IdleTimeout => "idle timeout".into(),
            CloseHow::EndOfCapture => "end of capture".into(),
            CloseHow::Evicted => "evicted".into(),
            CloseHow::Superseded => "superseded".into(),
        }
    }
}

/// A connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    /// Connection.
    pub conn: ConnId,
    /// Capture time of the closing packet (for timeouts and end of capture,
    /// of the connection's last packet).
    pub ts: Ts,
    /// How.
    pub how: CloseHow,
}

/// Counters for one direction of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HalfStats {
    /// Packets sent in this direction (all of them, like tshark).
    pub packets: u64,
    /// Payload bytes as on the wire, retransmissions included (tshark's sum
    /// of `tcp.len`).
    pub payload_bytes: u64,
    /// Distinct stream bytes delivered as data.
    pub stream_bytes: u64,
    /// Bytes reported missing.
    pub gap_bytes: u64,
    /// Number of gaps.
    pub gaps: u64,
    /// Payload bytes that repeated bytes already seen.
    pub retransmitted_bytes: u64,
    /// Segments that carried only bytes already seen.
    pub retransmitted_segments: u64,
    /// Segments that arrived ahead of a hole.
    pub out_of_order_segments: u64,
    /// Repeated bytes that differed from the first copy still held.
    pub conflicting_overlap_bytes: u64,
    /// TCP keep-alive probes.
    pub keepalives: u64,
    /// Zero-window probes.
    pub zero_window_probes: u64,
    /// Payload bytes beyond this direction's FIN (ignored).
    pub data_after_fin_bytes: u64,
    /// Payload bytes that arrived after pov had already reported them
    /// missing (the capture reordered the directions).
    pub late_after_gap_bytes: u64,
    /// Payload bytes before the start of a stream picked up mid-way.
    pub before_start_bytes: u64,
    /// Payload bytes received after the connection closed (ignored).
    pub after_close_bytes: u64,
    /// Segments dropped because their sequence number jumped implausibly
    /// far ahead ([`TcpConfig::max_seq_jump`]).
    pub seq_jump_segments: u64,
    /// Acknowledgments that jumped implausibly far ahead (ignored).
    pub bogus_acks: u64,
    /// SYNs repeated with the same initial sequence number.
    pub syn_retransmissions: u64,
    /// SYN-ACKs with a new initial sequence number before any data: the
    /// stream restarted from the later one.
    pub syn_ack_restarts: u64,
    /// FINs whose sequence number differed from the first FIN.
    pub fin_mismatches: u64,
    /// FINs the capture missed, inferred from the peer acknowledging one
    /// sequence number beyond the last byte.
    pub unseen_fins: u64,
}

impl HalfStats {
    fn add(&mut self, o: &HalfStats) {
        self.packets += o.packets;
        self.payload_bytes += o.payload_bytes;
        self.stream_bytes += o.stream_bytes;
        self.gap_bytes += o.gap_bytes;
        self.gaps += o.gaps;
        self.retransmitted_bytes += o.retransmitted_bytes;
        self.retransmitted_segments += o.retransmitted_segments;
        self.out_of_order_segments += o.out_of_order_segments;
        self.conflicting_overlap_bytes += o.conflicting_overlap_bytes;
        self.keepalives += o.keepalives;
        self.zero_window_probes += o.zero_window_probes;
        self.data_after_fin_bytes += o.data_after_fin_bytes;
        self.late_after_gap_bytes += o.late_after_gap_bytes;
        self.before_start_bytes += o.before_start_bytes;
        self.after_close_bytes += o.after_close_bytes;
        self.seq_jump_segments += o.seq_jump_segments;
        self.bogus_acks += o.bogus_acks;
        self.syn_retransmissions += o.syn_retransmissions;
        self.syn_ack_restarts += o.syn_ack_restarts;
        self.fin_mismatches += o.fin_mismatches;
        self.unseen_fins += o.unseen_fins;
    }

    /// Names of the anomalies seen in this direction (for display).
    pub fn anomalies(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let checks: [(u64, &'static str); 15] = [
            (self.gaps, "gap"),
            (self.retransmitted_segments, "retransmission"),
            (self.out_of_order_segments, "out_of_order"),
            (self.conflicting_overlap_bytes, "conflicting_overlap"),
            (self.keepalives, "keepalive"),
            (self.zero_window_probes, "zero_window_probe"),
            (self.data_after_fin_bytes, "data_after_fin"),
            (self.late_after_gap_bytes, "late_after_gap"),
            (self.before_start_bytes, "before_start"),
            (self.after_close_bytes, "data_after_close"),
            (self.seq_jump_segments, "seq_jump"),
            (self.bogus_acks, "bogus_ack"),
            (self.fin_mismatches, "fin_mismatch"),
            (self.unseen_fins, "unseen_fin"),
            (self.syn_ack_restarts, "syn_ack_restart"),
        ];
        for (n, name) in checks {
            if n > 0 {
                v.push(name);
            }
        }
        v
    }
}

/// Connection state in Zeek's `conn_state` vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ConnState {
    /// SYN seen, no reply.
    S0,
    /// Established, not terminated.
    S1,
    /// Established and closed by both FINs.
    SF,
    /// SYN answered by RST.
    REJ,
    /// Established, the client sent a FIN, the server did not.
    S2,
    /// Established, the server sent a FIN, the client did not.
    S3,
    /// Established, the client reset.
    RSTO,
    /// Established, the server reset.
    RSTR,
    /// The client sent SYN then FIN, no SYN-ACK.
    SH,
    /// No SYN seen: picked up mid-stream.
    OTH,
}

/// The final record of a connection.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnSummary {
    /// Connection id.
    pub id: ConnId,
    /// Client address and port.
    pub client: SocketAddr,
    /// Server address and port.
    pub server: SocketAddr,
    /// How the roles were decided.
    pub roles: RoleSource,
    /// Capture time of the first packet.
    pub first_ts: Ts,
    /// Capture time of the last packet (stray packets after the close
    /// included).
    pub last_ts: Ts,
    /// Frame of the first packet.
    pub first_frame: u64,
    /// Frame of the last packet.
    pub last_frame: u64,
    /// The handshake, when complete.
    pub handshake: Option<Handshake>,
    /// The client's SYN was seen.
    pub syn_seen: bool,
    /// The server's SYN-ACK was seen.
    pub syn_ack_seen: bool,
    /// Client to server.
    pub to_server: HalfStats,
    /// Server to client.
    pub to_client: HalfStats,
    /// How it closed.
    pub close: CloseHow,
    /// When it closed.
    pub close_ts: Ts,
    /// Zeek-style connection state.
    pub state: ConnState,
}

impl ConnSummary {
    /// Duration from first to last packet.
    pub fn duration(&self) -> Dur {
        self.last_ts - self.first_ts
    }

    /// Anomalies of both directions, each prefixed with its direction.
    pub fn anomalies(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (d, h) in [("c2s", &self.to_server), ("s2c", &self.to_client)] {
            for a in h.anomalies() {
                v.push(format!("{d}:{a}"));
            }
        }
        v
    }
}

/// Run-wide reassembly counters, including every cap that acted.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TcpStats {
    /// Segments processed.
    pub segments: u64,
    /// Connections created.
    pub connections: u64,
    /// Of those, connections picked up without their SYN.
    pub mid_stream: u64,
    /// Largest number of open connections at once.
    pub peak_active: u64,
    /// Connections closed by both FINs.
    pub closed_fin: u64,
    /// Connections closed by a RST.
    pub closed_rst: u64,
    /// Connections closed by the idle timeout.
    pub closed_idle: u64,
    /// Connections still open at the end of the capture.
    pub closed_end_of_capture: u64,
    /// Connections evicted by the connection cap (`--max-connections`).
    pub evicted: u64,
    /// Connections replaced by a new SYN on the same addresses while open.
    pub superseded: u64,
    /// New connections on the addresses of a recently closed one.
    pub port_reuse: u64,
    /// Packets that arrived after their connection closed.
    pub packets_after_close: u64,
    /// Times a direction's out-of-order buffer hit `--max-ooo-bytes`.
    pub ooo_cap_hits: u64,
    /// Times the total out-of-order buffer hit `--max-ooo-total`.
    pub ooo_total_cap_hits: u64,
    /// Connections evicted (the longest idle) because the memory budget
    /// was full when a new one began (`--memory-budget`).
    pub budget_evictions: u64,
    /// Times a direction's out-of-order bytes were delivered early (as
    /// gaps) because the memory budget was nearly full.
    pub budget_flushes: u64,
    /// Largest total of out-of-order bytes held at once (with overhead).
    pub ooo_peak_bytes: u64,
    /// Gap bytes by reason.
    pub gap_bytes_acked_unseen: u64,
    /// Gap bytes from frames cut by the snapshot length.
    pub gap_bytes_snaplen: u64,
    /// Gap bytes skipped because a buffer cap was hit.
    pub gap_bytes_buffer_limit: u64,
    /// Gap bytes left when a connection ended with a hole.
    pub gap_bytes_at_close: u64,
    /// Sum of the per-direction counters of every finished connection.
    pub totals: HalfStats,
}

impl TcpStats {
    /// Adds the counters of another reassembler (a shard of the same
    /// capture). Peaks add up too: the sum of the shards' peaks bounds the
    /// whole run's from above (the shards need not peak at once).
    pub fn merge(&mut self, o: &TcpStats) {
        self.segments += o.segments;
        self.connections += o.connections;
        self.mid_stream += o.mid_stream;
        self.peak_active += o.peak_active;
        self.closed_fin += o.closed_fin;
        self.closed_rst += o.closed_rst;
        self.closed_idle += o.closed_idle;
        self.closed_end_of_capture += o.closed_end_of_capture;
        self.evicted += o.evicted;
        self.superseded += o.superseded;
        self.port_reuse += o.port_reuse;
        self.packets_after_close += o.packets_after_close;
        self.ooo_cap_hits += o.ooo_cap_hits;
        self.ooo_total_cap_hits += o.ooo_total_cap_hits;
        self.budget_evictions += o.budget_evictions;
        self.budget_flushes += o.budget_flushes;
        self.ooo_peak_bytes += o.ooo_peak_bytes;
        self.gap_bytes_acked_unseen += o.gap_bytes_acked_unseen;
        self.gap_bytes_snaplen += o.gap_bytes_snaplen;
        self.gap_bytes_buffer_limit += o.gap_bytes_buffer_limit;
        self.gap_bytes_at_close += o.gap_bytes_at_close;
        self.totals.add(&o.totals);
    }
}

/// Reassembly limits and timeouts.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Most connections tracked at once; beyond it the longest idle one is
    /// closed (`Evicted`) and counted.
    pub max_connections: usize,
    /// Most out-of-order bytes held per direction (each held piece also
    /// counts [`HELD_OVERHEAD`] bytes of bookkeeping).
    pub max_ooo_bytes: usize,
    /// Most out-of-order bytes held over all connections.
    pub max_ooo_total: usize,
    /// A connection with no packet for this long is closed.
    pub idle_timeout: Dur,
    /// How long a closed connection is remembered, so that stray packets
    /// after its close count toward it rather than start a new one.
    pub closed_linger: Dur,
    /// A segment or acknowledgment further ahead of the expected byte than
    /// this is treated as bogus and ignored (counted).
    pub max_seq_jump: u64,
    /// The run's memory budget: connections and out-of-order bytes are
    /// charged to it.
    pub budget: Budget,
}

impl Default for TcpConfig {
    fn default() -> TcpConfig {
        TcpConfig {
            max_connections: 1_000_000,
            max_ooo_bytes: 4 << 20,
            max_ooo_total: 512 << 20,
            idle_timeout: Dur::from_secs(300),
            closed_linger: Dur::from_secs(60),
            max_seq_jump: 1 << 30,
            budget: Budget::default(),
        }
    }
}

/// Bookkeeping bytes charged per held out-of-order piece, so a flood of
/// tiny segments cannot grow memory past the cap.
pub const HELD_OVERHEAD: usize = 64;

/// What one tracked connection costs the memory budget: its record here
/// (about 1 KiB) and in the HTTP layer (about 1.4 KiB), its first waiting
/// request (about 0.7 KiB), and their map entries: an estimate, measured
/// on x86-64. Buffers, further waiting requests and kept bodies are
/// charged on their own. At the default budget, about 40,000 connections
/// can be open at once; beyond, the longest idle is evicted.
pub const CONN_COST: usize = std::mem::size_of::<Conn>() + 3072;

/// What a closed connection remembered for stray packets costs the memory
/// budget (an estimate).
pub const TOMB_COST: usize = std::mem::size_of::<Tomb>() + 128;

/// Receives what the reassembler learns. Every method but `on_data` has a
/// no-op default.
pub trait StreamSink {
    /// A connection opened (always the first event of a connection).
    fn on_open(&mut self, _meta: &ConnMeta) {}
    /// Stream bytes, in order per direction.
    fn on_data(&mut self, chunk: &DataChunk<'_>);
    /// Bytes missing from the capture.
    fn on_gap(&mut self, _gap: &Gap) {}
    /// Bytes the stream already held, sent again.
    fn on_retransmission(&mut self, _r: &Retransmission) {}
    /// A direction ended with a FIN.
    fn on_half_close(&mut self, _hc: &HalfClose) {}
    /// The connection ended.
    fn on_close(&mut self, _close: &Close) {}
    /// The connection's final record; after this the id is not used again.
    fn on_summary(&mut self, _summary: &ConnSummary) {}
}

/// Addresses of a connection in a canonical order (lower first), so both
/// directions find the same entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey(SocketAddr, SocketAddr);

impl FlowKey {
    fn new(a: SocketAddr, b: SocketAddr) -> FlowKey {
        if a <= b { FlowKey(a, b) } else { FlowKey(b, a) }
    }
}

/// An out-of-order piece of one direction.
struct Held {
    /// The bytes; empty for a phantom piece (bytes the capture cut).
    data: Vec<u8>,
    /// Length in the stream (equals `data.len()` unless phantom).
    len: u64,
    phantom: bool,
    ts: Ts,
    frame: u64,
    peer_ack: Option<u64>,
}

impl Held {
    fn cost(&self) -> usize {
        self.data.len() + HELD_OVERHEAD
    }
}

/// One direction of a connection: what one side sent.
#[derive(Default)]
struct Half {
    /// Sequence number of stream offset 0.
    base: Option<u32>,
    /// ISN of this side's SYN, if seen.
    syn_isn: Option<u32>,
    /// Offset of the next byte to deliver: every byte below it has been
    /// delivered or reported missing.
    next: u64,
    /// Held pieces beyond `next`, disjoint, keyed by offset.
    ooo: BTreeMap<u64, Held>,
    /// Cost of `ooo`.
    ooo_cost: usize,
    /// Offset of this side's FIN.
    fin: Option<u64>,
    fin_ts: Ts,
    fin_frame: u64,
    /// HalfClose emitted.
    ended: bool,
    /// Last window this side advertised (unscaled).
    window: u16,
    /// The most recent gap, to recognise data that arrives after it.
    last_gap: (u64, u64),
    /// The peer acknowledged one sequence number beyond everything seen: a
    /// FIN the capture missed, or one lost byte.
    fin_suspect: Option<Suspect>,
    /// Where this side's RST said its stream ended (its sequence number is
    /// the next byte it would have sent).
    rst_end: Option<u64>,
    stats: HalfStats,
}

impl Half {
    /// Unwraps a sequence number to a stream offset relative to `next`.
    fn offset_of(&self, seq: u32) -> Option<i64> {
        let base = self.base?;
        let next_seq = base.wrapping_add(self.next as u32);
        let delta = seq.wrapping_sub(next_seq) as i32 as i64;
        Some(self.next as i64 + delta)
    }

    fn untouched(&self) -> bool {
        self.next == 0 && self.ooo.is_empty() && self.syn_isn.is_none() && self.fin.is_none()
    }
}

/// The last sequence number an acknowledgment covered, when it may be a FIN
/// the capture missed rather than a lost byte.
#[derive(Clone, Copy)]
struct Suspect {
    /// Its stream offset.
    off: u64,
    /// The acknowledgment's capture time and frame.
    ts: Ts,
    frame: u64,
}

/// A connection being reassembled.
struct Conn {
    id: ConnId,
    /// Side 0 sent the first packet seen.
    addr: [SocketAddr; 2],
    /// Which side is the client, once decided.
    client: Option<usize>,
    roles: RoleSource,
    meta: Option<ConnMeta>,
    syn_ts: Option<Ts>,
    syn_ack_ts: Option<Ts>,
    /// The ISN the server put in its SYN-ACK.
    syn_ack_isn: Option<u32>,
    hs_ack_ts: Option<Ts>,
    half: [Half; 2],
    first_ts: Ts,
    last_ts: Ts,
    first_frame: u64,
    last_frame: u64,
    fin_first: Option<usize>,
    /// First payload seen and its side, for the role heuristic.
    first_payload: Option<(usize, [u8; 8], usize)>,
    /// Its share of the memory budget.
    charge: Charge,
}

/// What remains of a closed connection while stray packets may still come.
struct Tomb {
    /// Its share of the memory budget.
    charge: Charge,
    summary: ConnSummary,
    /// Side 0 address (to tell directions apart).
    client: SocketAddr,
    client_isn: Option<u32>,
}

/// Shared mutable state a connection needs while processing.
struct Ctx<'c> {
    cfg: &'c TcpConfig,
    stats: &'c mut TcpStats,
    ooo_total: &'c mut usize,
}

/// Rebuilds TCP byte streams from segments. See the module docs.
pub struct Reassembler {
    cfg: TcpConfig,
    /// Boxed, so that a map's spare capacity costs a pointer a slot, not a
    /// connection.
    active: LinkedHashMap<FlowKey, Box<Conn>>,
    closed: LinkedHashMap<FlowKey, Box<Tomb>>,
    next_id: ConnId,
    now: Ts,
    ooo_total: usize,
    stats: TcpStats,
}

impl Reassembler {
    /// A reassembler with the given limits.
    pub fn new(cfg: TcpConfig) -> Reassembler {
        Reassembler {
            cfg,
            active: LinkedHashMap::new(),
            closed: LinkedHashMap::new(),
            next_id: 1,
            now: Ts(i64::MIN),
            ooo_total: 0,
            stats: TcpStats::default(),
        }
    }

    /// Counters so far (complete after [`Reassembler::finish`]).
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Connections currently open.
    pub fn active_connections(&self) -> usize {
        self.active.len()
    }

    /// Out-of-order bytes currently held (with overhead).
    pub fn ooo_bytes(&self) -> usize {
        self.ooo_total
    }

    /// Processes one segment. Segments must come in capture order.
    pub fn process<S: StreamSink + ?Sized>(&mut self, seg: &TcpSegment<'_>, sink: &mut S) {
        self.stats.segments += 1;
        if seg.ts > self.now {
            self.now = seg.ts;
        }
        self.expire(sink);
        let key = FlowKey::new(seg.src, seg.dst);
        let syn_only = seg.flags.syn() && !seg.flags.ack();

        if !self.active.contains_key(&key) {
            if let Some(tomb) = self.closed.get_mut(&key) {
                let reuse = syn_only && tomb.client_isn != Some(seg.seq);
                if !reuse {
                    absorb(tomb, seg);
                    self.stats.packets_after_close += 1;
                    self.closed.to_back(&key);
                    return;
                }
                if let Some(t) = self.closed.remove(&key) {
                    self.finish_tomb(t, sink);
                }
                self.stats.port_reuse += 1;
            }
        } else if syn_only {
            let supersede = self.active.get(&key).is_some_and(|c| c.is_new_connection_syn(c.side_of(seg.src), seg.seq));
            if supersede {
                if let Some(conn) = self.active.remove(&key) {
                    self.stats.superseded += 1;
                    let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
                    let tomb = conn.close(CloseHow::Superseded, seg.ts, &mut ctx, sink);
                    self.finish_tomb(tomb, sink);
                }
                self.stats.port_reuse += 1;
            }
        }

        if !self.active.contains_key(&key) {
            if self.active.len() >= self.cfg.max_connections.max(1) {
                self.evict_one(sink);
            }
            // A new connection is always tracked; when the memory budget
            // has no room for it, the longest idle one makes room.
            let charge = match self.cfg.budget.try_charge(Holder::Connections, CONN_COST) {
                Some(c) => c,
                None => {
                    if !self.active.is_empty() {
                        self.stats.budget_evictions += 1;
                        self.evict_one(sink);
                    }
                    self.cfg.budget.charge(Holder::Connections, CONN_COST)
                }
            };
            // Named by the frame that opened it: the same name whichever
            // reassembler (shard) sees it, and one a user can find in
            // Wireshark (`frame.number == N`). Frames without numbers (0,
            // or repeated, as in hand-made segments) get the next free one.
            let id = seg.frame.max(self.next_id);
            let mut conn = Conn::new(id, seg);
            conn.charge = charge;
            self.next_id = id + 1;
            self.stats.connections += 1;
            self.active.insert(key, Box::new(conn));
            self.stats.peak_active = self.stats.peak_active.max(self.active.len() as u64);
        }

        let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
        let Some(conn) = self.active.to_back(&key) else {
            return;
        };
        let closed = conn.segment(seg, &mut ctx, sink);
        if ctx.stats.ooo_peak_bytes < *ctx.ooo_total as u64 {
            ctx.stats.ooo_peak_bytes = *ctx.ooo_total as u64;
        }
        if let Some(how) = closed
            && let Some(conn) = self.active.remove(&key)
        {
            let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
            let mut tomb = conn.close(how, seg.ts, &mut ctx, sink);
            if self.closed.len() >= self.cfg.max_connections.max(1)
                && let Some((_, old)) = self.closed.pop_front()
            {
                self.finish_tomb(old, sink);
            }
            // Remembering it for stray packets is worth less than anything
            // open: without room, the oldest closed one is forgotten.
            tomb.charge = match self.cfg.budget.try_charge(Holder::Connections, TOMB_COST) {
                Some(c) => c,
                None => {
                    if let Some((_, old)) = self.closed.pop_front() {
                        self.finish_tomb(old, sink);
                    }
                    self.cfg.budget.charge(Holder::Connections, TOMB_COST)
                }
            };
            self.closed.insert(key, tomb);
        }
    }

    /// Moves capture time on to `now` without a segment, for a reassembler
    /// that sees only some of a capture's connections (a shard): idle
    /// connections close, and closed ones are forgotten, as they would
    /// have on a segment of their own at that time.
    pub fn advance<S: StreamSink + ?Sized>(&mut self, now: Ts, sink: &mut S) {
        if now > self.now {
            self.now = now;
        }
        self.expire(sink);
    }

    /// Ends the capture: every open connection closes (`EndOfCapture`) and
    /// every connection's summary is emitted, in connection id order.
    pub fn finish<S: StreamSink + ?Sized>(&mut self, sink: &mut S) {
        let mut conns: Vec<Box<Conn>> = self.active.drain().map(|(_, c)| c).collect();
        conns.sort_by_key(|c| c.id);
        let mut tombs: Vec<Box<Tomb>> = Vec::with_capacity(conns.len() + self.closed.len());
        for conn in conns {
            let ts = conn.last_ts;
            let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
            tombs.push(conn.close(CloseHow::EndOfCapture, ts, &mut ctx, sink));
        }
        tombs.extend(self.closed.drain().map(|(_, t)| t));
        tombs.sort_by_key(|t| t.summary.id);
        for t in tombs {
            self.finish_tomb(t, sink);
        }
    }

    /// Closes idle connections and forgets closed ones past their linger.
    fn expire<S: StreamSink + ?Sized>(&mut self, sink: &mut S) {
        let idle_deadline = self.now - self.cfg.idle_timeout;
        while let Some((_, c)) = self.active.front() {
            if c.last_ts >= idle_deadline {
                break;
            }
            let Some((_, conn)) = self.active.pop_front() else {
                break;
            };
            let ts = conn.last_ts;
            let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
            let tomb = conn.close(CloseHow::IdleTimeout, ts, &mut ctx, sink);
            self.finish_tomb(tomb, sink);
        }
        let linger_deadline = self.now - self.cfg.closed_linger;
        while let Some((_, t)) = self.closed.front() {
            if t.summary.last_ts >= linger_deadline {
                break;
            }
            let Some((_, t)) = self.closed.pop_front() else {
                break;
            };
            self.finish_tomb(t, sink);
        }
    }

    fn evict_one<S: StreamSink + ?Sized>(&mut self, sink: &mut S) {
        if let Some((_, conn)) = self.active.pop_front() {
            self.stats.evicted += 1;
            let ts = conn.last_ts;
            let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
            let tomb = conn.close(CloseHow::Evicted, ts, &mut ctx, sink);
            self.finish_tomb(tomb, sink);
        }
    }

    fn finish_tomb<S: StreamSink + ?Sized>(&mut self, t: Box<Tomb>, sink: &mut S) {
        self.stats.totals.add(&t.summary.to_server);
        self.stats.totals.add(&t.summary.to_client);
        sink.on_summary(&t.summary);
    }
}

/// Counts a packet that arrived after its connection closed.
fn absorb(tomb: &mut Tomb, seg: &TcpSegment<'_>) {
    let s = &mut tomb.summary;
    let half = if seg.src == tomb.client { &mut s.to_server } else { &mut s.to_client };
    half.packets += 1;
    half.payload_bytes += u64::from(seg.payload_len);
    half.after_close_bytes += u64::from(seg.payload_len);
    if seg.ts > s.last_ts {
        s.last_ts = seg.ts;
    }
    s.last_frame = s.last_frame.max(seg.frame);
}

/// True if the first bytes of a payload look like an HTTP request line.
fn looks_like_request(p: &[u8]) -> bool {
    let token_len = p.iter().take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_').count();
    (3..=16).contains(&token_len) && p.get(token_len) == Some(&b' ')
}

/// True if the first bytes of a payload look like an HTTP status line.
fn looks_like_response(p: &[u8]) -> bool {
    p.starts_with(b"HTTP/")
}

/// Ports that are almost always the server side.
fn is_service_port(p: u16) -> bool {
    p < 1024
        || matches!(
            p,
            1080 | 1443
                | 3000
                | 3128
                | 5000
                | 5001
                | 8000
                | 8008
                | 8080
                | 8081
                | 8088
                | 8443
                | 8888
                | 9000
                | 9080
                | 9090
                | 9200
                | 9443
        )
}

impl Conn {
    fn new(id: ConnId, seg: &TcpSegment<'_>) -> Conn {
        Conn {
            id,
            addr: [seg.src, seg.dst],
            client: None,
            roles: RoleSource::FirstPacket,
            meta: None,
            syn_ts: None,
            syn_ack_ts: None,
            syn_ack_isn: None,
            hs_ack_ts: None,
            half: [Half::default(), Half::default()],
            first_ts: seg.ts,
            last_ts: seg.ts,
            first_frame: seg.frame,
            last_frame: seg.frame,
            fin_first: None,
            first_payload: None,
            charge: Charge::none(),
        }
    }

    fn side_of(&self, src: SocketAddr) -> usize {
        if src == self.addr[0] { 0 } else { 1 }
    }

    /// Direction of bytes sent by `side`. Valid once roles are decided.
    fn dir(&self, side: usize) -> Direction {
        if Some(side) == self.client { Direction::ClientToServer } else { Direction::ServerToClient }
    }

    /// Is a SYN (without ACK) from `side` with `isn` the start of a new
    /// connection on these addresses rather than part of this one?
    fn is_new_connection_syn(&self, side: usize, isn: u32) -> bool {
        let h = &self.half[side];
        if h.syn_isn == Some(isn) {
            return false; // a retransmitted SYN
        }
        if h.syn_isn.is_none() {
            // Never saw a SYN from this side: it is this connection's own
            // SYN arriving late only if the peer's SYN-ACK acknowledges it,
            // or if nothing at all came from this side yet.
            if self.syn_ack_ack_matches(side, isn) || h.base.is_none() {
                return false;
            }
        }
        true
    }

    fn syn_ack_ack_matches(&self, side: usize, isn: u32) -> bool {
        // The SYN-ACK's acknowledgment is isn+1; we kept the peer's base
        // only, so compare with what the client side's base would be.
        self.half[side].base == Some(isn.wrapping_add(1)) && self.syn_ack_ts.is_some()
    }

    /// Decides client and server if not yet done.
    fn decide_roles(&mut self) {
        if self.client.is_some() {
            return;
        }
        if let Some((side, head, n)) = self.first_payload {
            let head = &head[..n.min(8)];
            if looks_like_request(head) {
                self.client = Some(side);
                self.roles = RoleSource::Payload;
                return;
            }
            if looks_like_response(head) {
                self.client = Some(1 - side);
                self.roles = RoleSource::Payload;
                return;
            }
        }
        let p0 = self.addr[0].port();
        let p1 = self.addr[1].port();
        let (s0, s1) = (is_service_port(p0), is_service_port(p1));
        let server = if s0 != s1 {
            Some(if s0 { 0 } else { 1 })
        } else if p0 != p1 {
            Some(if p0 < p1 { 0 } else { 1 })
        } else {
            None
        };
        match server {
            Some(s) => {
                self.client = Some(1 - s);
                self.roles = RoleSource::Port;
            }
            None => {
                self.client = Some(0);
                self.roles = RoleSource::FirstPacket;
            }
        }
    }

    /// Emits `on_open` if not done yet.
    fn ensure_open<S: StreamSink + ?Sized>(&mut self, ctx: &mut Ctx<'_>, sink: &mut S) {
        if self.meta.is_some() {
            return;
        }
        self.decide_roles();
        let c = self.client.unwrap_or(0);
        let handshake = match (self.syn_ts, self.syn_ack_ts, self.hs_ack_ts) {
            (Some(syn), Some(syn_ack), Some(ack)) => Some(Handshake { syn, syn_ack, ack }),
            _ => None,
        };
        if self.syn_ts.is_none() {
            ctx.stats.mid_stream += 1;
        }
        let meta = ConnMeta {
            id: self.id,
            client: self.addr[c],
            server: self.addr[1 - c],
            start: self.first_ts,
            first_frame: self.first_frame,
            handshake,
            roles: self.roles,
        };
        sink.on_open(&meta);
        self.meta = Some(meta);
    }

    /// Processes one segment; returns how the connection closed, if it did.
    fn segment<S: StreamSink + ?Sized>(
        &mut self,
        seg: &TcpSegment<'_>,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) -> Option<CloseHow> {
        let s = self.side_of(seg.src);
        let p = 1 - s;
        if seg.ts > self.last_ts {
            self.last_ts = seg.ts;
        }
        self.last_frame = self.last_frame.max(seg.frame);
        let flags = seg.flags;
        {
            let h = &mut self.half[s];
            h.stats.packets += 1;
            h.stats.payload_bytes += u64::from(seg.payload_len);
        }

        // Handshake (RFC 9293 section 3.5).
        if flags.syn() {
            if !flags.ack() {
                let h = &mut self.half[s];
                match h.syn_isn {
                    Some(isn) if isn == seg.seq => h.stats.syn_retransmissions += 1,
                    Some(_) => {}
                    None => {
                        h.syn_isn = Some(seg.seq);
                        if h.untouched() || h.base.is_none() {
                            h.base = Some(seg.seq.wrapping_add(1));
                        }
                        if self.syn_ts.is_none() {
                            self.syn_ts = Some(seg.ts);
                        }
                        if self.client.is_none() && self.meta.is_none() {
                            self.client = Some(s);
                            self.roles = RoleSource::Syn;
                        }
                    }
                }
            } else {
                let h = &mut self.half[s];
                match h.syn_isn {
                    Some(isn) if isn == seg.seq => h.stats.syn_retransmissions += 1,
                    // Another SYN-ACK with another initial sequence number,
                    // before any data from this side: the server dropped the
                    // first half-open connection (SYN cookies under a full
                    // backlog do this) and answered the client's
                    // retransmitted SYN afresh. The later one is the
                    // handshake that completes; the client acknowledges it.
                    Some(_) if h.next == 0 && h.ooo.is_empty() && h.fin.is_none() => {
                        h.syn_isn = Some(seg.seq);
                        h.base = Some(seg.seq.wrapping_add(1));
                        h.stats.syn_ack_restarts += 1;
                        self.syn_ack_isn = Some(seg.seq);
                    }
                    Some(_) => {}
                    None => {
                        h.syn_isn = Some(seg.seq);
                        if h.untouched() || h.base.is_none() {
                            h.base = Some(seg.seq.wrapping_add(1));
                        }
                        self.syn_ack_isn = Some(seg.seq);
                        if self.syn_ack_ts.is_none() {
                            self.syn_ack_ts = Some(seg.ts);
                        }
                        if self.client.is_none() && self.meta.is_none() {
                            self.client = Some(p);
                            self.roles = RoleSource::SynAck;
                        }
                        // The SYN-ACK acknowledges the client's SYN: learn
                        // the client's base if its SYN was not captured.
                        if self.half[p].base.is_none() && flags.ack() {
                            self.half[p].base = Some(seg.ack);
                        }
                    }
                }
            }
        }

        // The client's first ACK of the SYN-ACK completes the handshake.
        if self.hs_ack_ts.is_none()
            && flags.ack()
            && !flags.syn()
            && self.syn_ts.is_some()
            && Some(s) == self.client
            && self.syn_ack_isn.is_some_and(|isn| seg.ack == isn.wrapping_add(1))
        {
            self.hs_ack_ts = Some(seg.ts);
            if self.meta.is_none() {
                self.ensure_open(ctx, sink);
            }
        }

        // Mid-stream pickup: the first sequence number seen is offset 0.
        let data_seq = seg.seq.wrapping_add(u32::from(flags.syn()));
        if self.half[s].base.is_none() {
            self.half[s].base = Some(data_seq);
        }

        // A keep-alive without payload: one byte before the next expected.
        if seg.payload_len == 0
            && !flags.syn()
            && !flags.fin()
            && !flags.rst()
            && let Some(off) = self.half[s].offset_of(seg.seq)
            && off + 1 == self.half[s].next as i64
        {
            self.half[s].stats.keepalives += 1;
        }

        // Keep the first payload bytes for the role heuristic.
        if self.first_payload.is_none() && !seg.payload.is_empty() {
            let mut head = [0u8; 8];
            let n = seg.payload.len().min(8);
            head[..n].copy_from_slice(&seg.payload[..n]);
            self.first_payload = Some((s, head, n));
        }

        // Acknowledgment of the peer's bytes: anything acknowledged that the
        // capture does not have is a gap now, not at the end.
        // How far this segment's sender had received the other direction.
        let peer_ack = if flags.ack() && !flags.syn() {
            self.half[p].offset_of(seg.ack).filter(|a| *a >= 0).map(|a| a as u64)
        } else {
            None
        };
        // (A SYN-ACK acknowledges only the SYN.)
        if flags.ack() && !flags.syn() {
            self.on_ack(s, seg.ack, seg.ts, seg.frame, ctx, sink);
        }

        if seg.payload_len > 0 {
            self.on_payload(s, seg, data_seq, peer_ack, ctx, sink);
        } else if !flags.fin() && !flags.rst() && !flags.syn() {
            // A bare segment one sequence number past everything its sender
            // sent: that number went to a FIN the capture missed (a lost
            // data byte would have come with more). Settled like an unseen
            // FIN the peer acknowledged.
            let h = &self.half[s];
            if h.fin.is_none()
                && h.fin_suspect.is_none()
                && h.ooo.is_empty()
                && h.offset_of(data_seq).is_some_and(|o| o == h.next as i64 + 1)
            {
                let off = h.next;
                self.half[s].fin_suspect = Some(Suspect { off, ts: seg.ts, frame: seg.frame });
                // The same segment may acknowledge the peer's unseen FIN:
                // then both sides are done.
                if self.half[p].fin_suspect.is_some() {
                    self.accept_unseen_fin(p, ctx, sink);
                }
                if self.half[p].ended {
                    self.accept_unseen_fin(s, ctx, sink);
                }
            }
        }

        if flags.rst() {
            // A RST's sequence number is evidence of how far its sender's
            // stream went: bytes before it that the capture lacks are gaps.
            let h = &mut self.half[s];
            if let Some(o) = h.offset_of(data_seq)
                && o > h.next as i64
                && (o as u64 - h.next) <= ctx.cfg.max_seq_jump
            {
                h.rst_end = Some(o as u64);
            }
            self.ensure_open(ctx, sink);
            return Some(CloseHow::Rst { from: self.dir(s) });
        }

        if flags.fin() {
            let fin_off = self.half[s].offset_of(data_seq).map(|o| o + i64::from(seg.payload_len));
            if let Some(f) = fin_off.filter(|f| *f >= 0) {
                let f = f as u64;
                let h = &mut self.half[s];
                match h.fin {
                    None => {
                        h.fin = Some(f);
                        h.fin_ts = seg.ts;
                        h.fin_frame = seg.frame;
                        if self.fin_first.is_none() {
                            self.fin_first = Some(s);
                        }
                    }
                    Some(old) if old != f => h.stats.fin_mismatches += 1,
                    Some(_) => {}
                }
                // Bytes held beyond the FIN were never part of the stream.
                self.drop_beyond_fin(s, ctx);
                self.check_fin(s, ctx, sink);
            }
        }

        if self.half[0].ended && self.half[1].ended {
            let first = self.fin_first.unwrap_or(s);
            self.ensure_open(ctx, sink);
            return Some(CloseHow::Fin { first: self.dir(first) });
        }
        None
    }

    fn on_ack<S: StreamSink + ?Sized>(
        &mut self,
        s: usize,
        ack: u32,
        ts: Ts,
        frame: u64,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) {
        let p = 1 - s;
        let h = &self.half[p];
        let Some(mut a) = h.offset_of(ack) else {
            return;
        };
        // Nothing follows a FIN: an ACK of the FIN (fin + 1), or a bogus one
        // beyond it, acknowledges the stream up to the FIN.
        if let Some(fin) = h.fin
            && a > fin as i64
        {
            a = fin as i64;
        }
        if a <= h.next as i64 {
            return;
        }
        let a = a as u64;
        if a - h.next > ctx.cfg.max_seq_jump {
            self.half[s].stats.bogus_acks += 1;
            return;
        }
        // An acknowledgment covers a FIN as well as bytes. When it goes
        // exactly one past every byte the capture has, with nothing beyond,
        // its last sequence number is most likely a FIN the capture missed,
        // not a lost byte: leave it open, and settle it later (a FIN if the
        // stream ends there, a lost byte if data follows). An acknowledgment
        // that also covers missing bytes makes its last one a byte too.
        let known_beyond = h.ooo.last_key_value().is_some_and(|(k, v)| k + v.len >= a);
        if h.fin.is_none() && !known_beyond && h.next + 1 == a {
            let sus = Suspect { off: a - 1, ts, frame };
            self.half[p].fin_suspect = Some(sus);
            if self.half[s].ended {
                // The usual end of a connection: the side that closed first
                // acknowledges the other's FIN.
                self.accept_unseen_fin(p, ctx, sink);
            }
            return;
        }
        self.advance_to(p, a, GapReason::AckedUnseen, ts, ctx, sink);
        self.deliver_ready(p, ctx, sink);
        self.check_fin(p, ctx, sink);
    }

    /// Moves `next` of side `side` up to `target`, delivering held pieces
    /// and reporting holes as gaps of `reason`.
    fn advance_to<S: StreamSink + ?Sized>(
        &mut self,
        side: usize,
        target: u64,
        reason: GapReason,
        ts: Ts,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) {
        while self.half[side].next < target {
            let next = self.half[side].next;
            let front = self.half[side].ooo.first_key_value().map(|(k, _)| *k);
            match front {
                Some(k) if k == next => self.deliver_front(side, ctx, sink),
                Some(k) => {
                    let end = k.min(target);
                    self.emit_gap(side, next, end - next, reason, ts, ctx, sink);
                }
                None => self.emit_gap(side, next, target - next, reason, ts, ctx, sink),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_gap<S: StreamSink + ?Sized>(
        &mut self,
        side: usize,
        offset: u64,
        len: u64,
        reason: GapReason,
        ts: Ts,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) {
        if len == 0 {
            return;
        }
        self.ensure_open(ctx, sink);
        let dir = self.dir(side);
        let h = &mut self.half[side];
        h.next = offset + len;
        h.stats.gaps += 1;
        h.stats.gap_bytes += len;
        h.last_gap = (offset, offset + len);
        match reason {
            GapReason::AckedUnseen => ctx.stats.gap_bytes_acked_unseen += len,
            GapReason::SnaplenCut => ctx.stats.gap_bytes_snaplen += len,
            GapReason::BufferLimit => ctx.stats.gap_bytes_buffer_limit += len,
            GapReason::AtClose => ctx.stats.gap_bytes_at_close += len,
        }
        sink.on_gap(&Gap { conn: self.id, dir, offset, len, ts, reason });
    }

    /// Delivers the first held piece (which must start at `next`).
    fn deliver_front<S: StreamSink + ?Sized>(&mut self, side: usize, ctx: &mut Ctx<'_>, sink: &mut S) {
        let Some((off, held)) = self.half[side].ooo.pop_first() else {
            return;
        };
        let cost = held.cost();
        self.half[side].ooo_cost -= cost;
        *ctx.ooo_total -= cost;
        ctx.cfg.budget.shrink(Holder::OutOfOrder, cost);
        if held.phantom {
            self.emit_gap(side, off, held.len, GapReason::SnaplenCut, held.ts, ctx, sink);
        } else {
            self.emit_data(side, off, &held.data, held.ts, held.frame, held.peer_ack, ctx, sink);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_data<S: StreamSink + ?Sized>(
        &mut self,
        side: usize,
        offset: u64,
        bytes: &[u8],
        ts: Ts,
        frame: u64,
        peer_ack: Option<u64>,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) {
        if bytes.is_empty() {
            return;
        }
        self.ensure_open(ctx, sink);
        let dir = self.dir(side);
        let h = &mut self.half[side];
        h.next = offset + bytes.len() as u64;
        h.stats.stream_bytes += bytes.len() as u64;
        sink.on_data(&DataChunk {
            conn: self.id,
            dir,
            offset,
            bytes,
            first_ts: ts,
            last_ts: ts,
            first_frame: frame,
            last_frame: frame,
            peer_ack,
        });
    }

    /// Delivers held pieces that have become contiguous.
    fn deliver_ready<S: StreamSink + ?Sized>(&mut self, side: usize, ctx: &mut Ctx<'_>, sink: &mut S) {
        while let Some((k, _)) = self.half[side].ooo.first_key_value() {
            if *k != self.half[side].next {
                break;
            }
            self.deliver_front(side, ctx, sink);
        }
    }

    /// Takes a suspected unseen FIN of `side` as its FIN (if nothing came
    /// after it) and emits the half-close.
    fn accept_unseen_fin<S: StreamSink + ?Sized>(&mut self, side: usize, ctx: &mut Ctx<'_>, sink: &mut S) {
        let h = &mut self.half[side];
        let Some(sus) = h.fin_suspect.take() else {
            return;
        };
        if h.fin.is_some() || h.next != sus.off || !h.ooo.is_empty() {
            return;
        }
        let h = &mut self.half[side];
        let (off, ts, frame) = (sus.off, sus.ts, sus.frame);
        h.fin = Some(off);
        h.fin_ts = ts;
        h.fin_frame = frame;
        h.stats.unseen_fins += 1;
        if self.fin_first.is_none() {
            self.fin_first = Some(side);
        }
        self.check_fin(side, ctx, sink);
    }

    /// Emits the half-close of `side` if its FIN is reached.
    fn check_fin<S: StreamSink + ?Sized>(&mut self, side: usize, ctx: &mut Ctx<'_>, sink: &mut S) {
        let h = &self.half[side];
        if h.ended {
            return;
        }
        let Some(fin) = h.fin else { return };
        if h.next < fin {
            return;
        }
        let (ts, frame) = (h.fin_ts, h.fin_frame);
        self.ensure_open(ctx, sink);
        let dir = self.dir(side);
        self.half[side].ended = true;
        sink.on_half_close(&HalfClose { conn: self.id, dir, ts, frame });
    }

    /// Drops held pieces at or beyond `side`'s FIN.
    fn drop_beyond_fin(&mut self, side: usize, ctx: &mut Ctx<'_>) {
        let h = &mut self.half[side];
        let Some(fin) = h.fin else { return };
        let beyond: Vec<u64> = h.ooo.range(..).filter(|(k, v)| **k + v.len > fin).map(|(k, _)| *k).collect();
        for k in beyond {
            let Some(mut held) = h.ooo.remove(&k) else {
                continue;
            };
            let cost = held.cost();
            h.ooo_cost -= cost;
            *ctx.ooo_total -= cost;
            ctx.cfg.budget.shrink(Holder::OutOfOrder, cost);
            if k < fin {
                let keep = (fin - k) as usize;
                h.stats.data_after_fin_bytes += held.len - keep as u64;
                held.len = keep as u64;
                if !held.phantom {
                    held.data.truncate(keep);
                }
                let cost = held.cost();
                h.ooo_cost += cost;
                *ctx.ooo_total += cost;
                ctx.cfg.budget.grow(Holder::OutOfOrder, cost);
                h.ooo.insert(k, held);
            } else {
                h.stats.data_after_fin_bytes += held.len;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_payload<S: StreamSink + ?Sized>(
        &mut self,
        s: usize,
        seg: &TcpSegment<'_>,
        data_seq: u32,
        peer_ack: Option<u64>,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) {
        let wire_len = u64::from(seg.payload_len);
        let Some(mut off) = self.half[s].offset_of(data_seq) else {
            return;
        };
        let mut bytes = seg.payload;
        if bytes.len() as u64 > wire_len {
            bytes = &bytes[..wire_len as usize];
        }

        // Zero-window probe: one byte sent while the peer advertised no room.
        let peer_window = self.half[1 - s].window;
        let (conn, dir) = (self.id, self.dir(s));
        let h = &mut self.half[s];
        if wire_len == 1 && peer_window == 0 && off == h.next as i64 && h.stats.packets > 1 {
            h.stats.zero_window_probes += 1;
        }
        h.window = seg.window;

        // A picked-up stream can see earlier bytes late: move offset 0 back
        // while nothing has been delivered yet.
        if off < 0 {
            let back = (-off) as u64;
            if h.next == 0 && h.stats.gaps == 0 && h.syn_isn.is_none() && h.fin.is_none() && back <= 1 << 20 {
                rebase(h, back);
                off = 0;
            } else {
                let end = off + wire_len as i64;
                let before = if end <= 0 { wire_len } else { back };
                h.stats.before_start_bytes += before;
                if end <= 0 {
                    return;
                }
                bytes = bytes.get(back as usize..).unwrap_or(&[]);
                off = 0;
            }
        }
        let mut off = off as u64;
        let mut end = off + wire_len;

        // Implausible jump ahead.
        if off > h.next && off - h.next > ctx.cfg.max_seq_jump {
            h.stats.seq_jump_segments += 1;
            return;
        }

        // Entirely old: a retransmission or a keep-alive.
        if end <= h.next {
            if wire_len <= 1 && off + 1 == h.next {
                h.stats.keepalives += 1;
            } else {
                h.stats.retransmitted_bytes += wire_len;
                h.stats.retransmitted_segments += 1;
                h.stats.late_after_gap_bytes += overlap(h.last_gap, (off, end));
                sink.on_retransmission(&Retransmission { conn, dir, start: off, end, ts: seg.ts, frame: seg.frame });
            }
            return;
        }
        // Partly old: trim the head.
        if off < h.next {
            let cut = h.next - off;
            h.stats.retransmitted_bytes += cut;
            h.stats.late_after_gap_bytes += overlap(h.last_gap, (off, h.next));
            sink.on_retransmission(&Retransmission {
                conn,
                dir,
                start: off,
                end: h.next,
                ts: seg.ts,
                frame: seg.frame,
            });
            bytes = bytes.get(cut as usize..).unwrap_or(&[]);
            off = h.next;
        }
        // Beyond the FIN: not part of the stream.
        if let Some(fin) = h.fin
            && end > fin
        {
            let from = off.max(fin);
            h.stats.data_after_fin_bytes += end - from;
            end = fin;
            if off >= end {
                return;
            }
            let keep = (end - off) as usize;
            if bytes.len() > keep {
                bytes = &bytes[..keep];
            }
        }
        let present_end = off + bytes.len() as u64;

        // Fast path: in order, nothing held.
        if off == h.next && h.ooo.is_empty() {
            self.emit_data(s, off, bytes, seg.ts, seg.frame, peer_ack, ctx, sink);
            if present_end < end {
                self.emit_gap(s, present_end, end - present_end, GapReason::SnaplenCut, seg.ts, ctx, sink);
            }
            self.check_fin(s, ctx, sink);
            return;
        }

        if off > h.next {
            h.stats.out_of_order_segments += 1;
        }
        insert_held(h, ctx, off, present_end, Some(bytes), seg.ts, seg.frame, peer_ack);
        if present_end < end {
            insert_held(h, ctx, present_end, end, None, seg.ts, seg.frame, peer_ack);
        }
        self.deliver_ready(s, ctx, sink);

        // Caps: per direction, then overall.
        if self.half[s].ooo_cost > ctx.cfg.max_ooo_bytes {
            ctx.stats.ooo_cap_hits += 1;
            while self.half[s].ooo_cost > ctx.cfg.max_ooo_bytes {
                let Some(k) = self.half[s].ooo.first_key_value().map(|(k, _)| *k) else {
                    break;
                };
                self.advance_to(s, k, GapReason::BufferLimit, seg.ts, ctx, sink);
                self.deliver_ready(s, ctx, sink);
            }
        }
        if *ctx.ooo_total > ctx.cfg.max_ooo_total {
            ctx.stats.ooo_total_cap_hits += 1;
            self.flush_half(s, GapReason::BufferLimit, seg.ts, ctx, sink);
        } else if ctx.cfg.budget.pressed() && self.half[s].ooo_cost > 0 {
            // The memory budget is nearly full: what this direction holds
            // goes out now, its holes reported as gaps.
            ctx.stats.budget_flushes += 1;
            ctx.cfg.budget.refused(Holder::OutOfOrder);
            self.flush_half(s, GapReason::BufferLimit, seg.ts, ctx, sink);
        }
        self.check_fin(s, ctx, sink);
    }

    /// Delivers everything held for `side`, reporting the holes.
    fn flush_half<S: StreamSink + ?Sized>(
        &mut self,
        side: usize,
        reason: GapReason,
        ts: Ts,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) {
        while let Some(k) = self.half[side].ooo.first_key_value().map(|(k, _)| *k) {
            self.advance_to(side, k, reason, ts, ctx, sink);
            self.deliver_ready(side, ctx, sink);
        }
    }

    /// Ends the connection: flushes both directions, emits `on_close`, and
    /// returns its tombstone.
    fn close<S: StreamSink + ?Sized>(mut self, how: CloseHow, ts: Ts, ctx: &mut Ctx<'_>, sink: &mut S) -> Box<Tomb> {
        self.ensure_open(ctx, sink);
        for side in 0..2 {
            self.accept_unseen_fin(side, ctx, sink);
            self.flush_half(side, GapReason::AtClose, ts, ctx, sink);
            let h = &self.half[side];
            let end = match (h.fin, h.rst_end) {
                (Some(f), _) => Some(f),
                (None, r) => r,
            };
            if let Some(end) = end
                && h.next < end
            {
                let next = h.next;
                self.emit_gap(side, next, end - next, GapReason::AtClose, ts, ctx, sink);
            }
            self.check_fin(side, ctx, sink);
        }
        match how {
            CloseHow::Fin { .. } => ctx.stats.closed_fin += 1,
            CloseHow::Rst { .. } => ctx.stats.closed_rst += 1,
            CloseHow::IdleTimeout => ctx.stats.closed_idle += 1,
            CloseHow::EndOfCapture => ctx.stats.closed_end_of_capture += 1,
            CloseHow::Evicted | CloseHow::Superseded => {}
        }
        sink.on_close(&Close { conn: self.id, ts, how });
        let c = self.client.unwrap_or(0);
        let state = self.state(how);
        let meta = self.meta.take();
        Box::new(Tomb {
            charge: Charge::none(),
            client: self.addr[c],
            client_isn: self.half[c].syn_isn,
            summary: ConnSummary {
                id: self.id,
                client: self.addr[c],
                server: self.addr[1 - c],
                roles: self.roles,
                first_ts: self.first_ts,
                last_ts: self.last_ts,
                first_frame: self.first_frame,
                last_frame: self.last_frame,
                handshake: meta.and_then(|m| m.handshake).or(match (self.syn_ts, self.syn_ack_ts, self.hs_ack_ts) {
                    (Some(syn), Some(syn_ack), Some(ack)) => Some(Handshake { syn, syn_ack, ack }),
                    _ => None,
                }),
                syn_seen: self.half[c].syn_isn.is_some(),
                syn_ack_seen: self.syn_ack_ts.is_some(),
                to_server: self.half[c].stats,
                to_client: self.half[1 - c].stats,
                close: how,
                close_ts: ts,
                state,
            },
        })
    }

    fn state(&self, how: CloseHow) -> ConnState {
        let c = self.client.unwrap_or(0);
        let syn = self.half[c].syn_isn.is_some();
        let syn_ack = self.syn_ack_ts.is_some();
        if !syn {
            return ConnState::OTH;
        }
        if !syn_ack {
            return match how {
                CloseHow::Rst { from: Direction::ServerToClient } => ConnState::REJ,
                _ if self.half[c].fin.is_some() => ConnState::SH,
                _ => ConnState::S0,
            };
        }
        match how {
            CloseHow::Fin { .. } => ConnState::SF,
            CloseHow::Rst { from: Direction::ClientToServer } => ConnState::RSTO,
            CloseHow::Rst { from: Direction::ServerToClient } => ConnState::RSTR,
            _ => match (self.half[c].fin.is_some(), self.half[1 - c].fin.is_some()) {
                (true, false) => ConnState::S2,
                (false, true) => ConnState::S3,
                _ => ConnState::S1,
            },
        }
    }
}

/// Moves a half's offset 0 back by `back` bytes (nothing delivered yet).
fn rebase(h: &mut Half, back: u64) {
    if let Some(b) = h.base {
        h.base = Some(b.wrapping_sub(back as u32));
    }
    let old = std::mem::take(&mut h.ooo);
    h.ooo = old.into_iter().map(|(k, v)| (k + back, v)).collect();
    if let Some(f) = h.fin.as_mut() {
        *f += back;
    }
}

/// Length of the intersection of two half-open ranges.
fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    let lo = a.0.max(b.0);
    let hi = a.1.min(b.1);
    hi.saturating_sub(lo)
}

/// Inserts `[start, end)` into a half's held pieces, first copy winning:
/// only the parts not already held are added; overlapping bytes that differ
/// from what is held are counted as conflicts. `data` is `None` for a
/// phantom (capture-cut) range.
#[allow(clippy::too_many_arguments)]
fn insert_held(
    h: &mut Half,
    ctx: &mut Ctx<'_>,
    start: u64,
    end: u64,
    data: Option<&[u8]>,
    ts: Ts,
    frame: u64,
    peer_ack: Option<u64>,
) {
    if start >= end {
        return;
    }
    // Held pieces that may overlap [start, end): the one starting before
    // `start`, then those starting inside.
    let mut overlapping: Vec<(u64, u64)> = Vec::new();
    if let Some((k, v)) = h.ooo.range(..start).next_back()
        && *k + v.len > start
    {
        overlapping.push((*k, *k + v.len));
    }
    overlapping.extend(h.ooo.range(start..end).map(|(k, v)| (*k, *k + v.len)));

    let mut cursor = start;
    let mut pieces: Vec<(u64, u64)> = Vec::new();
    for (k, kend) in &overlapping {
        if *k > cursor {
            pieces.push((cursor, (*k).min(end)));
        }
        let lo = cursor.max(*k);
        let hi = end.min(*kend);
        if hi > lo {
            h.stats.retransmitted_bytes += hi - lo;
            if let (Some(new), Some(held)) = (data, h.ooo.get(k))
                && !held.phantom
            {
                let a = new.get((lo - start) as usize..(hi - start) as usize).unwrap_or(&[]);
                let b = held.data.get((lo - k) as usize..(hi - k) as usize).unwrap_or(&[]);
                let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
                h.stats.conflicting_overlap_bytes += diff as u64;
            }
            cursor = hi;
        }
        if cursor >= end {
            break;
        }
    }
    if cursor < end {
        pieces.push((cursor, end));
    }
    if pieces.is_empty() {
        h.stats.retransmitted_segments += 1;
    }
    for (a, b) in pieces {
        let held = match data {
            Some(d) => Held {
                data: d.get((a - start) as usize..(b - start) as usize).unwrap_or(&[]).to_vec(),
                len: b - a,
                phantom: false,
                ts,
                frame,
                peer_ack,
            },
            None => Held { data: Vec::new(), len: b - a, phantom: true, ts, frame, peer_ack },
        };
        let cost = held.cost();
        h.ooo_cost += cost;
        *ctx.ooo_total += cost;
        ctx.cfg.budget.grow(Holder::OutOfOrder, cost);
        h.ooo.insert(a, held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{TcpFlags, TcpOptions};

    /// Everything a sink can see, owned.
    #[derive(Clone, Debug, PartialEq)]
    enum Ev {
        Open(ConnMeta),
        Data { conn: ConnId, dir: Direction, offset: u64, bytes: Vec<u8>, ts: Ts, frame: u64 },
        Gap(Gap),
        Half(HalfClose),
        Close(Close),
        Summary(Box<ConnSummary>),
    }

    impl PartialEq for ConnMeta {
        fn eq(&self, o: &ConnMeta) -> bool {
            self.id == o.id && self.client == o.client && self.server == o.server
        }
    }
    impl PartialEq for ConnSummary {
        fn eq(&self, o: &ConnSummary) -> bool {
            self.id == o.id
        }
    }

    /// The events, and the retransmissions apart.
    #[derive(Default)]
    struct Rec(Vec<Ev>, Vec<Retransmission>);

    impl StreamSink for Rec {
        fn on_retransmission(&mut self, r: &Retransmission) {
            self.1.push(*r);
        }
        fn on_open(&mut self, m: &ConnMeta) {
            self.0.push(Ev::Open(m.clone()));
        }
        fn on_data(&mut self, c: &DataChunk<'_>) {
            assert_eq!(c.first_ts, c.last_ts);
            self.0.push(Ev::Data {
                conn: c.conn,
                dir: c.dir,
                offset: c.offset,
                bytes: c.bytes.to_vec(),
                ts: c.first_ts,
                frame: c.first_frame,
            });
        }
        fn on_gap(&mut self, g: &Gap) {
            self.0.push(Ev::Gap(*g));
        }
        fn on_half_close(&mut self, h: &HalfClose) {
            self.0.push(Ev::Half(*h));
        }
        fn on_close(&mut self, c: &Close) {
            self.0.push(Ev::Close(*c));
        }
        fn on_summary(&mut self, s: &ConnSummary) {
            self.0.push(Ev::Summary(Box::new(s.clone())));
        }
    }

    impl Rec {
        /// The stream of one direction: bytes, with `None` for gap bytes.
        fn stream(&self, conn: ConnId, dir: Direction) -> Vec<Option<u8>> {
            let mut v: Vec<Option<u8>> = Vec::new();
            for e in &self.0 {
                match e {
                    Ev::Data { conn: c, dir: d, offset, bytes, .. } if *c == conn && *d == dir => {
                        assert_eq!(*offset, v.len() as u64, "data out of order");
                        v.extend(bytes.iter().map(|b| Some(*b)));
                    }
                    Ev::Gap(g) if g.conn == conn && g.dir == dir => {
                        assert_eq!(g.offset, v.len() as u64, "gap out of order");
                        v.extend(std::iter::repeat_n(None, g.len as usize));
                    }
                    _ => {}
                }
            }
            v
        }
        fn text(&self, conn: ConnId, dir: Direction) -> String {
            self.stream(conn, dir).iter().map(|b| b.map(|b| b as char).unwrap_or('~')).collect()
        }
        fn gaps(&self) -> Vec<Gap> {
            self.0.iter().filter_map(|e| if let Ev::Gap(g) = e { Some(*g) } else { None }).collect()
        }
        fn opens(&self) -> Vec<ConnMeta> {
            self.0.iter().filter_map(|e| if let Ev::Open(m) = e { Some(m.clone()) } else { None }).collect()
        }
        fn closes(&self) -> Vec<Close> {
            self.0.iter().filter_map(|e| if let Ev::Close(c) = e { Some(*c) } else { None }).collect()
        }
        fn halves(&self) -> Vec<HalfClose> {
            self.0.iter().filter_map(|e| if let Ev::Half(h) = e { Some(*h) } else { None }).collect()
        }
        fn summaries(&self) -> Vec<ConnSummary> {
            self.0.iter().filter_map(|e| if let Ev::Summary(s) = e { Some((**s).clone()) } else { None }).collect()
        }
        /// Every connection: exactly one open first, one close, one summary
        /// last; data only between open and close.
        fn check_lifecycle(&self) {
            use std::collections::HashMap;
            let mut state: HashMap<ConnId, u8> = HashMap::new();
            for e in &self.0 {
                let (id, kind) = match e {
                    Ev::Open(m) => (m.id, 0),
                    Ev::Data { conn, .. } => (*conn, 1),
                    Ev::Gap(g) => (g.conn, 1),
                    Ev::Half(h) => (h.conn, 1),
                    Ev::Close(c) => (c.conn, 2),
                    Ev::Summary(s) => (s.id, 3),
                };
                let st = state.entry(id).or_insert(255);
                match kind {
                    0 => {
                        assert_eq!(*st, 255, "conn {id} opened twice");
                        *st = 0;
                    }
                    1 => assert_eq!(*st, 0, "conn {id}: event outside open..close"),
                    2 => {
                        assert_eq!(*st, 0, "conn {id}: close without open");
                        *st = 2;
                    }
                    _ => {
                        assert_eq!(*st, 2, "conn {id}: summary before close");
                        *st = 3;
                    }
                }
            }
            for (id, st) in state {
                assert_eq!(st, 3, "conn {id} did not finish");
            }
        }
    }

    const C: &str = "10.0.0.1:40000";
    const S: &str = "10.0.0.2:80";
    const F: u8 = TcpFlags::FIN;
    const SY: u8 = TcpFlags::SYN;
    const R: u8 = TcpFlags::RST;
    const A: u8 = TcpFlags::ACK;
    const P: u8 = TcpFlags::PSH;

    /// Drives one connection with relative sequence numbers.
    struct Sim {
        r: Reassembler,
        rec: Rec,
        frame: u64,
        t: i64,
        cisn: u32,
        sisn: u32,
        c: SocketAddr,
        s: SocketAddr,
    }

    impl Sim {
        fn new() -> Sim {
            Sim::with(TcpConfig::default(), 1000, 5000)
        }
        fn with(cfg: TcpConfig, cisn: u32, sisn: u32) -> Sim {
            Sim {
                r: Reassembler::new(cfg),
                rec: Rec::default(),
                frame: 0,
                t: 1_000_000_000,
                cisn,
                sisn,
                c: C.parse().unwrap(),
                s: S.parse().unwrap(),
            }
        }
        /// Advances time by `ms` and sends a raw segment.
        #[allow(clippy::too_many_arguments)]
        fn raw(
            &mut self,
            from_client: bool,
            seq: u32,
            ack: u32,
            flags: u8,
            payload: &[u8],
            wire: u32,
            ms: i64,
            win: u16,
        ) {
            self.frame += 1;
            self.t += ms * 1_000_000;
            let (src, dst) = if from_client { (self.c, self.s) } else { (self.s, self.c) };
            let seg = TcpSegment {
                frame: self.frame,
                ts: Ts(self.t),
                src,
                dst,
                seq,
                ack,
                flags: TcpFlags(flags),
                window: win,
                options: TcpOptions::default(),
                payload,
                payload_len: wire,
            };
            self.r.process(&seg, &mut self.rec);
        }
        /// Client segment at relative seq `rs` (0 = first data byte), acking server rel `ra`.
        fn c(&mut self, rs: u32, ra: u32, flags: u8, payload: &[u8]) {
            let seq = if flags & SY != 0 { self.cisn } else { self.cisn.wrapping_add(1).wrapping_add(rs) };
            let ack = self.sisn.wrapping_add(1).wrapping_add(ra);
            self.raw(true, seq, ack, flags, payload, payload.len() as u32, 1, 1000);
        }
        fn s(&mut self, rs: u32, ra: u32, flags: u8, payload: &[u8]) {
            let seq = if flags & SY != 0 { self.sisn } else { self.sisn.wrapping_add(1).wrapping_add(rs) };
            let ack = self.cisn.wrapping_add(1).wrapping_add(ra);
            self.raw(false, seq, ack, flags, payload, payload.len() as u32, 1, 1000);
        }
        fn handshake(&mut self) {
            self.c(0, 0, SY, b"");
            self.s(0, 0, SY | A, b"");
            self.c(0, 0, A, b"");
        }
        fn finish(&mut self) {
            self.r.finish(&mut self.rec);
            self.rec.check_lifecycle();
        }
    }

    use Direction::{ClientToServer as C2S, ServerToClient as S2C};

    #[test]
    fn handshake_roles_rtt_and_clean_close() {
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, b"GET / HTTP/1.1\r\n\r\n");
        m.s(0, 18, A | P, b"HTTP/1.1 200 OK\r\n\r\n");
        m.s(19, 18, A | F, b"");
        m.c(18, 20, A | F, b"");
        m.s(20, 19, A, b"");
        m.finish();
        let opens = m.rec.opens();
        assert_eq!(opens.len(), 1);
        let o = &opens[0];
        assert_eq!((o.client, o.server), (m.c, m.s));
        assert_eq!(o.roles, RoleSource::Syn);
        let hs = o.handshake.expect("handshake");
        assert_eq!(hs.rtt(), Dur::from_millis(2));
        assert_eq!(hs.server_rtt(), Dur::from_millis(1));
        assert_eq!(m.rec.text(1, C2S), "GET / HTTP/1.1\r\n\r\n");
        assert_eq!(m.rec.text(1, S2C), "HTTP/1.1 200 OK\r\n\r\n");
        let closes = m.rec.closes();
        assert_eq!(closes.len(), 1);
        assert_eq!(closes[0].how, CloseHow::Fin { first: S2C });
        assert_eq!(m.rec.halves().len(), 2);
        let sum = &m.rec.summaries()[0];
        assert_eq!(sum.state, ConnState::SF);
        assert_eq!(sum.to_server.packets, 4);
        assert_eq!(sum.to_client.packets, 4, "the last ACK after close still counts");
        assert_eq!(sum.to_server.payload_bytes, 18);
        assert_eq!(sum.to_client.stream_bytes, 19);
        assert_eq!(m.r.stats().packets_after_close, 1);
        assert!(m.rec.gaps().is_empty());
    }

    #[test]
    fn out_of_order_delivered_in_order_with_original_times() {
        let mut m = Sim::new();
        m.handshake();
        m.s(5, 0, A, b"world"); // frame 4, arrives first
        m.s(0, 0, A, b"hello"); // frame 5 fills the hole
        m.finish();
        assert_eq!(m.rec.text(1, S2C), "helloworld");
        let data: Vec<(u64, u64)> = m
            .rec
            .0
            .iter()
            .filter_map(|e| if let Ev::Data { offset, frame, .. } = e { Some((*offset, *frame)) } else { None })
            .collect();
        assert_eq!(data, vec![(0, 5), (5, 4)], "each byte keeps the frame that carried it");
        let s = &m.rec.summaries()[0];
        assert_eq!(s.to_client.out_of_order_segments, 1);
        assert_eq!(s.to_client.gap_bytes, 0);
    }

    #[test]
    fn retransmission_is_counted_not_delivered_twice() {
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A, b"abcdef");
        m.c(0, 0, A, b"abcdef");
        m.c(3, 0, A, b"defghi"); // partial overlap with delivered data
        m.finish();
        assert_eq!(m.rec.text(1, C2S), "abcdefghi");
        let s = &m.rec.summaries()[0];
        assert_eq!(s.to_server.retransmitted_bytes, 9);
        assert_eq!(s.to_server.retransmitted_segments, 1);
        assert_eq!(s.to_server.payload_bytes, 18);
        assert_eq!(s.to_server.stream_bytes, 9);
    }

    #[test]
    fn overlap_first_copy_wins_and_conflicts_are_counted() {
        let mut m = Sim::new();
        m.handshake();
        m.c(4, 0, A, b"EFGH"); // held
        m.c(6, 0, A, b"xyIJ"); // overlaps held "GH" with different bytes
        m.c(0, 0, A, b"ABCD"); // fills the hole
        m.finish();
        assert_eq!(m.rec.text(1, C2S), "ABCDEFGHIJ");
        let s = &m.rec.summaries()[0];
        assert_eq!(s.to_server.conflicting_overlap_bytes, 2);
        assert!(s.anomalies().contains(&"c2s:conflicting_overlap".to_string()));
    }

    #[test]
    fn sequence_wraparound() {
        let mut m = Sim::with(TcpConfig::default(), u32::MAX - 3, u32::MAX);
        m.handshake();
        m.c(0, 0, A, b"0123456789"); // crosses 2^32
        m.c(14, 0, A, b"EF");
        m.c(10, 0, A, b"abcd");
        m.s(0, 16, A, b"ok"); // server seq starts at 0 after wrap
        m.finish();
        assert_eq!(m.rec.text(1, C2S), "0123456789abcdEF");
        assert_eq!(m.rec.text(1, S2C), "ok");
        assert!(m.rec.gaps().is_empty());
    }

    #[test]
    fn keepalive_and_zero_window_probe() {
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A, b"req");
        // Server advertises a zero window.
        m.raw(false, m.sisn + 1, m.cisn + 4, A, b"", 0, 1, 0);
        // Client probes with one new byte.
        m.c(3, 0, A, b"x");
        // Keep-alives: seq = next - 1, with 0 and with 1 garbage byte.
        m.c(3, 0, A, b"");
        m.c(3, 0, A, b"\0");
        m.finish();
        assert_eq!(m.rec.text(1, C2S), "reqx");
        let s = &m.rec.summaries()[0];
        assert_eq!(s.to_server.zero_window_probes, 1);
        assert_eq!(s.to_server.keepalives, 2);
        assert_eq!(s.to_server.retransmitted_bytes, 0);
    }

    #[test]
    fn data_before_fin_arriving_after_it_is_delivered() {
        let mut m = Sim::new();
        m.handshake();
        m.s(0, 0, A, b"abc");
        m.s(6, 0, A | F, b"ghi"); // FIN at 9, hole at 3..6
        assert!(m.rec.halves().is_empty(), "no half-close while a hole is open");
        m.s(3, 0, A, b"def");
        assert_eq!(m.rec.halves().len(), 1);
        assert_eq!(m.rec.halves()[0].dir, S2C);
        m.finish();
        assert_eq!(m.rec.text(1, S2C), "abcdefghi");
    }

    #[test]
    fn data_beyond_fin_is_dropped_and_counted() {
        let mut m = Sim::new();
        m.handshake();
        m.s(0, 0, A | F, b"abc");
        m.s(4, 0, A, b"zz"); // after the FIN's sequence number
        m.finish();
        assert_eq!(m.rec.text(1, S2C), "abc");
        assert_eq!(m.rec.summaries()[0].to_client.data_after_fin_bytes, 2);
    }

    #[test]
    fn rst_from_either_side() {
        for from_client in [true, false] {
            let mut m = Sim::new();
            m.handshake();
            m.c(0, 0, A, b"GET");
            if from_client {
                m.c(3, 0, R | A, b"");
            } else {
                m.s(0, 3, R | A, b"");
            }
            m.c(3, 0, A, b" /"); // stray data after the reset
            m.finish();
            let want = if from_client { C2S } else { S2C };
            assert_eq!(m.rec.closes()[0].how, CloseHow::Rst { from: want });
            let s = &m.rec.summaries()[0];
            assert_eq!(s.state, if from_client { ConnState::RSTO } else { ConnState::RSTR });
            assert_eq!(s.to_server.after_close_bytes, 2);
            assert_eq!(m.rec.text(1, C2S), "GET");
        }
    }

    #[test]
    fn refused_and_unanswered_connections() {
        let mut m = Sim::new();
        m.c(0, 0, SY, b"");
        m.raw(false, 0, m.cisn + 1, R | A, b"", 0, 1, 0);
        m.finish();
        let s = &m.rec.summaries()[0];
        assert_eq!(s.state, ConnState::REJ);
        assert_eq!(s.client, m.c);

        let mut m = Sim::new();
        m.c(0, 0, SY, b"");
        m.c(0, 0, SY, b"");
        m.finish();
        let s = &m.rec.summaries()[0];
        assert_eq!(s.state, ConnState::S0);
        assert_eq!(s.close, CloseHow::EndOfCapture);
        assert_eq!(s.to_server.syn_retransmissions, 1);
    }

    #[test]
    fn port_reuse_after_close_is_a_new_connection() {
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | F, b"one");
        m.s(0, 4, A | F, b"");
        m.c(4, 1, A, b"");
        // Same addresses, new ISN.
        m.cisn = 777_777;
        m.sisn = 888_888;
        m.handshake();
        m.c(0, 0, A, b"two");
        m.finish();
        let ids: Vec<ConnId> = m.rec.opens().iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] < ids[1], "named by their first frames: {ids:?}");
        assert_eq!(m.rec.text(ids[0], C2S), "one");
        assert_eq!(m.rec.text(ids[1], C2S), "two");
        assert_eq!(m.r.stats().port_reuse, 1);
        // The retransmitted SYN of the first connection would not have
        // started a third one.
        assert_eq!(m.r.stats().connections, 2);
    }

    #[test]
    fn new_syn_on_open_connection_supersedes_it() {
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A, b"one");
        m.cisn = 42;
        m.c(0, 0, SY, b"");
        m.finish();
        assert_eq!(m.rec.closes()[0].how, CloseHow::Superseded);
        assert_eq!(m.r.stats().superseded, 1);
        assert_eq!(m.rec.opens().len(), 2);
    }

    #[test]
    fn acked_but_missing_is_a_gap_right_away() {
        let mut m = Sim::new();
        m.handshake();
        m.s(0, 0, A, b"abc");
        // "def" (3..6) never captured; "ghi" held; the client ACKs 9.
        m.s(6, 0, A, b"ghi");
        let before = m.rec.gaps().len();
        m.c(0, 9, A, b"");
        let gaps = m.rec.gaps();
        assert_eq!(before, 0);
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].offset, gaps[0].len, gaps[0].reason), (3, 3, GapReason::AckedUnseen));
        assert_eq!(gaps[0].ts, Ts(m.t), "reported at the ACK, not at the end");
        // The held bytes after the hole are delivered at once too.
        assert_eq!(m.rec.text(1, S2C), "abc~~~ghi");
        // Late arrival of the lost bytes is recognised.
        m.s(3, 0, A, b"def");
        m.finish();
        let s = &m.rec.summaries()[0];
        assert_eq!(s.to_client.late_after_gap_bytes, 3);
        assert_eq!(s.to_client.gap_bytes, 3);
    }

    #[test]
    fn ack_beyond_everything_seen_gaps_the_tail_and_fin_ack() {
        let mut m = Sim::new();
        m.handshake();
        m.s(0, 0, A, b"abc");
        // Server's FIN (at 10) seen, bytes 3..10 not; then client ACKs FIN.
        m.s(10, 0, A | F, b"");
        m.c(0, 11, A, b"");
        let gaps = m.rec.gaps();
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].offset, gaps[0].len), (3, 7));
        assert_eq!(m.rec.halves().len(), 1);
        m.finish();
    }

    #[test]
    fn ack_beyond_the_fin_reports_nothing_after_it() {
        // Found by the mutation test: a bogus ACK past a FIN already
        // delivered produced a gap after the half-close.
        let mut m = Sim::new();
        m.handshake();
        m.s(0, 0, A | F, b"abc");
        assert_eq!(m.rec.halves().len(), 1);
        m.c(0, 500, A, b"");
        m.finish();
        assert!(m.rec.gaps().is_empty(), "{:?}", m.rec.gaps());
        assert_eq!(m.rec.text(1, S2C), "abc");
    }

    #[test]
    fn no_rebase_behind_a_fin() {
        // Found by fuzzing: a mid-stream half whose first packet is a FIN
        // ended at once; an earlier segment then moved offset 0 back and
        // delivered bytes after the half-close.
        let mut m = Sim::new();
        m.s(100, 0, A | F, b"");
        assert_eq!(m.rec.halves().len(), 1);
        m.s(90, 0, A, b"0123456789");
        m.finish();
        assert_eq!(m.rec.text(1, S2C), "");
        assert_eq!(m.rec.summaries()[0].to_client.before_start_bytes, 10);
    }

    #[test]
    fn a_fin_the_capture_missed_is_not_a_lost_byte() {
        // The server's FIN is seen, the client's FIN is not; the server's
        // ACK of it (one beyond the client's last byte) ends the stream.
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, b"GET / HTTP/1.0\r\n\r\n");
        m.s(0, 18, A | P | F, b"HTTP/1.0 200 OK\r\n\r\n");
        // (client FIN at 18 not captured)
        m.s(20, 19, A, b"");
        assert!(m.rec.gaps().is_empty(), "{:?}", m.rec.gaps());
        assert_eq!(m.rec.halves().len(), 2);
        assert_eq!(m.rec.closes()[0].how, CloseHow::Fin { first: S2C });
        m.finish();
        assert_eq!(m.rec.summaries()[0].to_server.unseen_fins, 1);

        // Without the other side's FIN, the suspicion is settled at close:
        // the acknowledgment moved one past the last (a FIN)...
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A, b"abc");
        m.s(0, 3, A, b"");
        m.s(0, 4, A, b"");
        assert!(m.rec.gaps().is_empty());
        m.finish();
        assert!(m.rec.gaps().is_empty());
        assert_eq!(m.rec.halves().len(), 1);

        // ... or jumped over missing bytes (so the last one is a byte too).
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A, b"abc");
        m.s(0, 3, A, b"");
        m.s(0, 10, A | R, b"");
        m.finish();
        let g: u64 = m.rec.gaps().iter().map(|g| g.len).sum();
        assert_eq!(g, 7, "{:?}", m.rec.gaps());
        assert!(m.rec.halves().is_empty());

        // One lost byte followed by more data is a one-byte gap.
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A, b"abc");
        m.s(0, 4, A, b"");
        m.c(4, 0, A, b"efg");
        m.s(0, 7, A, b"");
        let g = m.rec.gaps();
        assert_eq!((g.len(), g[0].offset, g[0].len), (1, 3, 1));
        assert_eq!(m.rec.text(1, C2S), "abc~efg");
        m.finish();
    }

    #[test]
    fn whole_request_missing_then_fins() {
        // Found by the synthetic lossy runs: a request the capture missed
        // entirely, then both FINs; every missing byte is reported.
        let mut m = Sim::new();
        m.handshake();
        m.s(0, 411, A, b"HTTP/1.1 200 OK\r\n");
        m.c(411, 17, A, b"");
        m.s(17, 411, A | F, b"");
        // A duplicate of the server's FIN (the capture saw it twice): it
        // acknowledges the same bytes as before, not an unseen client FIN.
        m.s(17, 411, A | F, b"");
        m.c(411, 18, A | F, b"");
        m.s(18, 412, A, b"");
        m.finish();
        assert_eq!(m.rec.summaries()[0].to_server.unseen_fins, 0);
        let g: u64 = m.rec.gaps().iter().filter(|g| g.dir == C2S).map(|g| g.len).sum();
        assert_eq!(g, 411, "{:?}", m.rec.gaps());
        assert_eq!(m.rec.closes()[0].how, CloseHow::Fin { first: S2C });
    }

    #[test]
    fn bytes_sent_again_are_reported_with_their_time() {
        // The request's copy the capture saw may never have reached the
        // server: the sink hears when it was sent again.
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, b"GET / HTTP/1.1\r\n\r\n");
        m.t += 2_000_000_000;
        m.c(0, 0, A | P, b"GET / HTTP/1.1\r\n\r\n");
        // A later segment that repeats the tail of the request and goes on.
        m.c(11, 0, A | P, b"1.1\r\n\r\nGET /b");
        m.s(0, 18, A | P, b"HTTP/1.1 200 OK\r\n");
        m.finish();
        let r: Vec<(Direction, u64, u64, u64)> = m.rec.1.iter().map(|r| (r.dir, r.start, r.end, r.frame)).collect();
        assert_eq!(r, vec![(C2S, 0, 18, 5), (C2S, 11, 18, 6)]);
        assert_eq!(
            m.rec.1[0].ts.0
                - m.rec
                    .0
                    .iter()
                    .find_map(|e| match e {
                        Ev::Data { ts, .. } => Some(ts.0),
                        _ => None,
                    })
                    .unwrap(),
            2_001_000_000
        );
        assert_eq!(m.rec.text(1, C2S), "GET / HTTP/1.1\r\n\r\nGET /b");
    }

    #[test]
    fn a_second_syn_ack_with_a_new_isn_restarts_the_servers_stream() {
        // Found on real traffic (benches/netem): the client lost the first
        // SYN-ACK, retransmitted its SYN, and the server (SYN cookies under
        // a full backlog) answered with another initial sequence number.
        // The server's bytes start after the second one, not 1.9 GB later.
        let mut m = Sim::new();
        m.c(0, 0, SY, b"");
        m.s(0, 0, SY | A, b"");
        m.c(0, 0, SY, b"");
        m.sisn = 3_000_000_000;
        m.s(0, 0, SY | A, b"");
        m.c(0, 0, A, b"");
        m.c(0, 0, A | P, b"GET / HTTP/1.1\r\n\r\n");
        m.s(0, 18, A | P, b"HTTP/1.1 200 OK\r\n");
        m.finish();
        assert_eq!(m.rec.text(1, S2C), "HTTP/1.1 200 OK\r\n");
        assert!(m.rec.gaps().is_empty(), "{:?}", m.rec.gaps());
        let sum = &m.rec.summaries()[0];
        assert_eq!(sum.to_client.syn_ack_restarts, 1);
        assert!(sum.handshake.is_some());
    }

    #[test]
    fn unseen_fin_from_the_senders_next_sequence_number() {
        // Found by the synthetic lossy runs: both FINs missed by the
        // capture. The client's is known from the server's acknowledgment;
        // the server's only from its own last segment, one sequence number
        // past its data.
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, b"GET / HTTP/1.0\r\n\r\n");
        m.s(0, 18, A | P, b"0123456789");
        m.c(18, 10, A, b"");
        m.s(11, 19, A, b"");
        m.finish();
        let sum = &m.rec.summaries()[0];
        assert_eq!(sum.to_client.unseen_fins, 1);
        assert_eq!(sum.to_server.unseen_fins, 1);
        assert!(matches!(m.rec.closes()[0].how, CloseHow::Fin { .. }), "{:?}", m.rec.closes());
        assert!(m.rec.gaps().is_empty(), "{:?}", m.rec.gaps());
    }

    #[test]
    fn lost_response_then_unseen_fin() {
        // Found by the synthetic lossy runs: a whole response missing (the
        // client acknowledges it), then the server's FIN missing too (the
        // client acknowledges it one further): the gap is the response,
        // the last sequence number is the FIN.
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, b"GET / HTTP/1.1\r\n\r\n");
        m.c(18, 800, A, b"");
        m.c(18, 801, A | F, b"");
        m.s(800, 19, A, b"");
        m.finish();
        let g: u64 = m.rec.gaps().iter().filter(|g| g.dir == S2C).map(|g| g.len).sum();
        assert_eq!(g, 800, "{:?}", m.rec.gaps());
        assert_eq!(m.rec.summaries()[0].to_client.unseen_fins, 1);
    }

    #[test]
    fn rst_sequence_number_reveals_missing_tail() {
        // The server sends a partial answer whose last segment the capture
        // missed, then resets: the RST's sequence number says how far the
        // stream went.
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, b"GET / HTTP/1.1\r\n\r\n");
        m.s(0, 18, A, b"HTTP/1.1 200 OK\r\n");
        m.s(200, 18, A | R, b"");
        m.finish();
        let g = m.rec.gaps();
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].dir, g[0].offset, g[0].len, g[0].reason), (S2C, 17, 183, GapReason::AtClose));
    }

    #[test]
    fn one_sided_capture() {
        let mut m = Sim::new();
        m.c(0, 0, SY, b"");
        m.c(0, 0, A, b"");
        m.c(0, 0, A, b"GET / HTTP/1.1\r\n\r\n");
        m.c(18, 700, A, b""); // acks server data we never see
        m.c(18, 700, A | F, b"");
        m.finish();
        assert_eq!(m.rec.text(1, C2S), "GET / HTTP/1.1\r\n\r\n");
        assert!(m.rec.stream(1, S2C).is_empty());
        let s = &m.rec.summaries()[0];
        assert_eq!(s.client, m.c);
        assert_eq!(s.to_client.packets, 0);
        assert!(m.rec.gaps().is_empty());
    }

    #[test]
    fn mid_stream_roles_from_payload_then_ports() {
        // A response seen first: its sender is the server, even on odd ports.
        let mut m = Sim::new();
        m.s = "10.0.0.2:40001".parse().unwrap();
        m.c = "10.0.0.1:22".parse().unwrap();
        m.s(0, 0, A, b"HTTP/1.1 200 OK\r\n");
        m.finish();
        let o = &m.rec.opens()[0];
        assert_eq!(o.roles, RoleSource::Payload);
        assert_eq!(o.server, "10.0.0.2:40001".parse().unwrap());
        assert_eq!(m.r.stats().mid_stream, 1);
        assert_eq!(m.rec.summaries()[0].state, ConnState::OTH);

        // Only ACKs: ports decide (80 is the service).
        let mut m = Sim::new();
        m.s(0, 0, A, b"");
        m.c(0, 0, A, b"");
        m.finish();
        let o = &m.rec.opens()[0];
        assert_eq!(o.roles, RoleSource::Port);
        assert_eq!(o.server, m.s);
    }

    #[test]
    fn mid_stream_earlier_segment_arriving_late_is_kept() {
        let mut m = Sim::new();
        m.s(100, 0, A, b"world"); // picked up here: offset 0 for now
        m.s(95, 0, A, b"hello"); // earlier bytes, before anything delivered? no: "world" was delivered
        m.finish();
        // "world" was delivered at once (in order from the pickup point), so
        // the earlier bytes are before the start.
        assert_eq!(m.rec.text(1, S2C), "world");
        assert_eq!(m.rec.summaries()[0].to_client.before_start_bytes, 5);

        // With only an ACK seen first, a late earlier segment rebases.
        let mut m = Sim::new();
        m.s(100, 0, A, b""); // base = 100
        m.s(105, 0, A, b"world"); // held at 5
        m.s(100, 0, A, b"hello");
        m.finish();
        assert_eq!(m.rec.text(1, S2C), "helloworld");
    }

    #[test]
    fn snaplen_cut_is_a_gap_of_its_own() {
        let mut m = Sim::new();
        m.handshake();
        let full = b"0123456789";
        m.raw(false, m.sisn + 1, m.cisn + 1, A, &full[..4], 10, 1, 1000);
        m.raw(false, m.sisn + 11, m.cisn + 1, A, b"ab", 2, 1, 1000);
        m.finish();
        assert_eq!(m.rec.text(1, S2C), "0123~~~~~~ab");
        let g = m.rec.gaps();
        assert_eq!(g[0].reason, GapReason::SnaplenCut);
        assert_eq!(m.r.stats().gap_bytes_snaplen, 6);
    }

    #[test]
    fn idle_timeout_closes_and_later_packets_start_anew() {
        let cfg = TcpConfig { idle_timeout: Dur::from_secs(10), ..TcpConfig::default() };
        let mut m = Sim::with(cfg, 1, 2);
        m.handshake();
        m.c(0, 0, A, b"a");
        m.raw(true, 3, 3, A, b"b", 1, 20_000, 1000); // 20 s later
        m.finish();
        let closes = m.rec.closes();
        assert_eq!(closes[0].how, CloseHow::IdleTimeout);
        assert_eq!(closes[1].how, CloseHow::EndOfCapture);
        assert_eq!(m.r.stats().closed_idle, 1);
        assert_eq!(m.rec.text(closes[1].conn, C2S), "b");
    }

    #[test]
    fn connection_cap_evicts_the_longest_idle() {
        let cfg = TcpConfig { max_connections: 2, ..TcpConfig::default() };
        let mut r = Reassembler::new(cfg);
        let mut rec = Rec::default();
        let mut t = 0;
        let mut send = |r: &mut Reassembler, rec: &mut Rec, port: u16, payload: &[u8], seq: u32| {
            t += 1_000_000;
            let seg = TcpSegment {
                frame: t as u64,
                ts: Ts(t),
                src: SocketAddr::from(([10, 0, 0, 1], port)),
                dst: SocketAddr::from(([10, 0, 0, 2], 80)),
                seq,
                ack: 1,
                flags: TcpFlags(A),
                window: 100,
                options: TcpOptions::default(),
                payload,
                payload_len: payload.len() as u32,
            };
            r.process(&seg, rec);
        };
        send(&mut r, &mut rec, 1, b"a", 10);
        send(&mut r, &mut rec, 2, b"b", 10);
        send(&mut r, &mut rec, 1, b"c", 11); // port 1 is now the most recent
        send(&mut r, &mut rec, 3, b"d", 10); // evicts port 2
        assert_eq!(r.active_connections(), 2);
        assert_eq!(r.stats().evicted, 1);
        r.finish(&mut rec);
        rec.check_lifecycle();
        let evicted: Vec<ConnId> = rec.closes().iter().filter(|c| c.how == CloseHow::Evicted).map(|c| c.conn).collect();
        // Named by its first frame (port 2's first packet).
        assert_eq!(evicted, vec![2_000_000]);
    }

    #[test]
    fn ooo_cap_per_direction_bounds_memory_and_reports_gap() {
        let cfg = TcpConfig { max_ooo_bytes: 1000, ..TcpConfig::default() };
        let mut m = Sim::with(cfg, 1, 2);
        m.handshake();
        let chunk = [7u8; 300];
        // Hole at 0..100, then 10 segments held.
        for i in 0..10u32 {
            m.s(100 + i * 300, 0, A, &chunk);
            assert!(m.r.ooo_bytes() <= 1000, "held {} > cap", m.r.ooo_bytes());
        }
        assert!(m.r.stats().ooo_cap_hits > 0);
        let g = m.rec.gaps();
        assert_eq!((g[0].offset, g[0].len, g[0].reason), (0, 100, GapReason::BufferLimit));
        m.finish();
        assert_eq!(m.rec.stream(1, S2C).len(), 100 + 3000);
        assert_eq!(m.r.ooo_bytes(), 0);
    }

    #[test]
    fn a_flood_of_new_connections_stays_within_the_budget() {
        let budget = Budget::new(4 << 20);
        let cfg = TcpConfig { budget: budget.clone(), ..TcpConfig::default() };
        let mut r = Reassembler::new(cfg);
        let mut rec = Rec::default();
        let n = 20_000u32;
        for i in 0..n {
            let seg = TcpSegment {
                frame: u64::from(i),
                ts: Ts(i64::from(i)),
                src: SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 40000)),
                dst: SocketAddr::from(([10, 0, 0, 2], 80)),
                seq: 7,
                ack: 0,
                flags: TcpFlags(SY),
                window: 100,
                options: TcpOptions::default(),
                payload: &[],
                payload_len: 0,
            };
            r.process(&seg, &mut rec);
            assert!(budget.used() <= (4 << 20) + CONN_COST);
        }
        let most = (4 << 20) / CONN_COST;
        assert!(r.active_connections() <= most, "{} open", r.active_connections());
        assert!(r.stats().budget_evictions >= u64::from(n) - most as u64);
        assert_eq!(r.stats().budget_evictions, r.stats().evicted);
        r.finish(&mut rec);
        rec.check_lifecycle();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn out_of_order_bytes_are_flushed_when_the_budget_is_pressed() {
        let budget = Budget::new(64 << 10);
        let cfg = TcpConfig { budget: budget.clone(), ..TcpConfig::default() };
        let mut r = Reassembler::new(cfg);
        let mut rec = Rec::default();
        for k in 0..400u32 {
            let seg = TcpSegment {
                frame: u64::from(k),
                ts: Ts(i64::from(k)),
                src: SocketAddr::from(([10, 0, 0, 1], 4000)),
                dst: SocketAddr::from(([10, 0, 0, 2], 80)),
                // Every segment but the first beyond a hole that never
                // fills.
                seq: if k == 0 { 0 } else { 5000 + k * 1000 },
                ack: 1,
                flags: TcpFlags(A),
                window: 100,
                options: TcpOptions::default(),
                payload: &[9u8; 1000],
                payload_len: 1000,
            };
            r.process(&seg, &mut rec);
            assert!(budget.used() <= 64 << 10, "{}", budget.used());
        }
        assert!(r.stats().budget_flushes > 0);
        r.finish(&mut rec);
        rec.check_lifecycle();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn ooo_total_cap_bounds_memory_over_connections() {
        let cfg = TcpConfig { max_ooo_total: 2000, ..TcpConfig::default() };
        let mut r = Reassembler::new(cfg);
        let mut rec = Rec::default();
        for port in 1..50u16 {
            for k in 0..3u32 {
                let seg = TcpSegment {
                    frame: u64::from(port) * 10 + u64::from(k),
                    ts: Ts(i64::from(port) * 1000 + i64::from(k)),
                    src: SocketAddr::from(([10, 0, 0, 1], port)),
                    dst: SocketAddr::from(([10, 0, 0, 2], 80)),
                    seq: if k == 0 { 0 } else { 1000 + k * 200 },
                    ack: 1,
                    flags: TcpFlags(A),
                    window: 100,
                    options: TcpOptions::default(),
                    payload: &[1u8; 200],
                    payload_len: 200,
                };
                r.process(&seg, &mut rec);
                assert!(r.ooo_bytes() <= 2000);
            }
        }
        assert!(r.stats().ooo_total_cap_hits > 0);
        r.finish(&mut rec);
        rec.check_lifecycle();
    }

    #[test]
    fn fin_and_payload_in_one_segment_with_syn_data() {
        // Data on the SYN (TCP Fast Open) is offset 0.
        let mut m = Sim::new();
        m.c(0, 0, SY, b"hi");
        m.s(0, 2, SY | A, b"");
        m.c(2, 0, A | F, b"!");
        m.finish();
        assert_eq!(m.rec.text(1, C2S), "hi!");
        assert_eq!(m.rec.halves().len(), 1);
    }

    /// A tiny deterministic generator (SplitMix64), so tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn chance(&mut self, pct: u64) -> bool {
            self.below(100) < pct
        }
    }

    /// Differential test: the reassembler against a naive byte map, over
    /// random segmentation, loss, duplication (with altered bytes) and
    /// reordering, with random ACKs from the receiver.
    #[test]
    fn differential_against_byte_map_model() {
        let mut totals = HalfStats::default();
        for seed in 0..300u64 {
            let mut rng = Rng(seed);
            let len = 1 + rng.below(3000) as usize;
            let stream: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            let isn = rng.next() as u32; // wraparound happens on some seeds
            // Segments: random cuts.
            let mut segs: Vec<(usize, usize)> = Vec::new();
            let mut at = 0;
            while at < len {
                let n = 1 + rng.below(400) as usize;
                let end = (at + n).min(len);
                segs.push((at, end));
                at = end;
            }
            // Transmission schedule: each segment sent once, maybe lost,
            // maybe repeated (sometimes with different bytes), overlapping
            // resends, shuffled locally.
            struct Tx {
                start: usize,
                bytes: Vec<u8>,
                ack: Option<usize>,
            }
            let mut txs: Vec<Tx> = Vec::new();
            for &(a, b) in &segs {
                if !rng.chance(15) {
                    txs.push(Tx { start: a, bytes: stream[a..b].to_vec(), ack: None });
                }
                if rng.chance(20) {
                    let a2 = a.saturating_sub(rng.below(50) as usize);
                    let b2 = (b + rng.below(50) as usize).min(len);
                    let mut bytes = stream[a2..b2].to_vec();
                    if rng.chance(30) && !bytes.is_empty() {
                        let i = rng.below(bytes.len() as u64) as usize;
                        bytes[i] ^= 0xFF;
                    }
                    txs.push(Tx { start: a2, bytes, ack: None });
                }
                if rng.chance(10) {
                    // An ACK from the receiver up to somewhere it has (in
                    // reality) received: never beyond what was sent.
                    let upto = (b as u64).min(rng.below(len as u64 + 1)) as usize;
                    txs.push(Tx { start: 0, bytes: Vec::new(), ack: Some(upto) });
                }
            }
            // Local reordering.
            for i in 0..txs.len() {
                let j = (i + rng.below(4) as usize).min(txs.len() - 1);
                txs.swap(i, j);
            }

            // The model: first copy of each byte wins, unless it came after
            // an ACK covering it made the position lost.
            let mut model: Vec<Option<(u8, u64)>> = vec![None; len];
            let mut lost = vec![false; len];
            let mut frontier = 0usize; // everything below is final
            let mut r = Reassembler::new(TcpConfig::default());
            let mut rec = Rec::default();
            let server: SocketAddr = "10.9.9.9:80".parse().unwrap();
            let client: SocketAddr = "10.1.1.1:5555".parse().unwrap();
            let mut frame = 0u64;
            // Start with the SYN so offset 0 is the first byte.
            let send =
                |r: &mut Reassembler, rec: &mut Rec, src, dst, seq: u32, ack: u32, flags: u8, p: &[u8], frame: u64| {
                    let seg = TcpSegment {
                        frame,
                        ts: Ts(frame as i64 * 1000),
                        src,
                        dst,
                        seq,
                        ack,
                        flags: TcpFlags(flags),
                        window: 1000,
                        options: TcpOptions::default(),
                        payload: p,
                        payload_len: p.len() as u32,
                    };
                    r.process(&seg, rec);
                };
            frame += 1;
            send(&mut r, &mut rec, server, client, isn, 0, SY, b"", frame);
            for tx in &txs {
                frame += 1;
                match tx.ack {
                    Some(upto) => {
                        let seq_ack = isn.wrapping_add(1).wrapping_add(upto as u32);
                        send(&mut r, &mut rec, client, server, 1, seq_ack, A, b"", frame);
                        // Model: the in-order frontier moves over what is
                        // present; holes below `upto` become lost, except
                        // the last acknowledged position when nothing has
                        // arrived at or beyond it (an ACK's last sequence
                        // number may be a FIN): it stays open.
                        if upto > frontier {
                            // The reassembler's next byte: the first one
                            // neither present nor given up.
                            let next = (0..len).find(|p| model[*p].is_none() && !lost[*p]).unwrap_or(len);
                            let known_beyond = model[upto - 1..].iter().any(Option::is_some);
                            let until = if !known_beyond && next + 1 == upto { upto - 1 } else { upto };
                            while frontier < until {
                                if model[frontier].is_none() {
                                    lost[frontier] = true;
                                }
                                frontier += 1;
                            }
                        }
                    }
                    None => {
                        let seq = isn.wrapping_add(1).wrapping_add(tx.start as u32);
                        send(&mut r, &mut rec, server, client, seq, 0, A, &tx.bytes, frame);
                        for (i, b) in tx.bytes.iter().enumerate() {
                            let o = tx.start + i;
                            if model[o].is_none() && !lost[o] {
                                model[o] = Some((*b, frame));
                            }
                        }
                    }
                }
            }
            r.finish(&mut rec);
            rec.check_lifecycle();
            // Where the reassembler's stream ends: last byte present in the
            // model (trailing unseen bytes are unknown to it).
            let got = rec.stream(1, C2S);
            let last_present = model.iter().rposition(|m| m.is_some()).map(|i| i + 1).unwrap_or(0);
            let expect_len = last_present.max(frontier);
            assert_eq!(got.len(), expect_len, "seed {seed}: stream length");
            for (o, g) in got.iter().enumerate() {
                let want = model[o].map(|(b, _)| b);
                assert_eq!(*g, want, "seed {seed}: offset {o}");
            }
            for sum in rec.summaries() {
                totals.add(&sum.to_server);
            }
            // Frames: every delivered byte carries the frame of its first copy.
            for e in &rec.0 {
                if let Ev::Data { offset, bytes, frame, .. } = e {
                    for i in 0..bytes.len() {
                        let o = *offset as usize + i;
                        assert_eq!(model[o].map(|(_, f)| f), Some(*frame), "seed {seed}: frame at {o}");
                    }
                }
            }
        }
        // The random schedule really exercised every path.
        assert!(totals.gaps > 50, "{totals:?}");
        assert!(totals.out_of_order_segments > 100, "{totals:?}");
        assert!(totals.conflicting_overlap_bytes > 5, "{totals:?}");
        assert!(totals.retransmitted_segments > 50, "{totals:?}");
        assert!(totals.late_after_gap_bytes > 0, "{totals:?}");
    }
}
