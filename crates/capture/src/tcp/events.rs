//! What the reassembler tells its sink: the [`StreamSink`] trait, the
//! events it receives, and the per-connection and run-wide records.

use std::net::SocketAddr;

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
    /// The outermost VLAN id the connection was found in, when VLANs are
    /// part of the flow key (see [`crate::Domain`]).
    pub vlan: Option<u16>,
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
    /// The connection had a RST before these bytes, which its receiver
    /// evidently ignored: the stream went on in sequence after it (see
    /// [`HalfStats::ignored_rsts`]).
    pub after_rst: bool,
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
    /// No packet for [`TcpConfig::idle_timeout`](super::TcpConfig::idle_timeout).
    IdleTimeout,
    /// The capture ended with the connection open.
    EndOfCapture,
    /// Dropped to stay under [`TcpConfig::max_connections`](super::TcpConfig::max_connections).
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
    /// far ahead ([`TcpConfig::max_seq_jump`](super::TcpConfig::max_seq_jump)).
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
    /// RSTs this side sent that the connection outlived: their sequence
    /// number was not the one the receiver expected, and the stream went
    /// on in sequence after them (Zeek's `data_after_reset`).
    pub ignored_rsts: u64,
    /// Payload bytes this side sent after a RST the connection outlived
    /// (reassembled and parsed like any other).
    pub data_after_rst_bytes: u64,
}

impl HalfStats {
    pub(super) fn add(&mut self, o: &HalfStats) {
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
        self.ignored_rsts += o.ignored_rsts;
        self.data_after_rst_bytes += o.data_after_rst_bytes;
    }

    /// Names of the anomalies seen in this direction (for display).
    pub fn anomalies(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let checks: [(u64, &'static str); 17] = [
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
            (self.ignored_rsts, "ignored_rst"),
            (self.data_after_rst_bytes, "data_after_rst"),
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
    /// The outermost VLAN id, as in [`ConnMeta::vlan`].
    pub vlan: Option<u16>,
    /// How its TLS handshake went, when the connection was TLS: not known
    /// to this layer, filled in by whoever ran the HTTP layer on it
    /// ([`crate::http::HttpAnalyzer::take_tls_end`]).
    #[serde(skip)]
    pub tls: Option<Box<crate::http::TlsEnd>>,
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
