//! Unit tests of the reassembler, on hand-built segments.

use std::net::SocketAddr;

use super::*;
use crate::budget::Budget;
use crate::packet::{Domain, TcpFlags, TcpOptions, TcpSegment};
use crate::time::{Dur, Ts};

/// Everything a sink can see, owned.
#[derive(Clone, Debug, PartialEq)]
enum Ev {
    Open(ConnMeta),
    Data { conn: ConnId, dir: Direction, offset: u64, bytes: Vec<u8>, ts: Ts, frame: u64, after_rst: bool },
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
            after_rst: c.after_rst,
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
    fn raw(&mut self, from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8], wire: u32, ms: i64, win: u16) {
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
            domain: Domain::default(),
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

/// A segment of `payload` from `src` to `dst`, window 1000, no options.
fn segment(
    frame: u64,
    ts: Ts,
    (src, dst): (SocketAddr, SocketAddr),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> TcpSegment<'_> {
    TcpSegment {
        frame,
        ts,
        src,
        dst,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 1000,
        options: TcpOptions::default(),
        payload,
        payload_len: payload.len() as u32,
        domain: Domain::default(),
    }
}

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

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

impl Rec {
    /// Per data chunk: its direction, first byte, and whether it came after
    /// a RST the connection outlived.
    fn after_rst(&self) -> Vec<(Direction, u8, bool)> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Ev::Data { dir, bytes, after_rst, .. } => Some((*dir, bytes[0], *after_rst)),
                _ => None,
            })
            .collect()
    }
}

/// A RST far outside the window (a middlebox's, or a stack's with a bad
/// sequence number) that the server drops: it goes on acknowledging, the
/// client sends its next request in sequence, the server answers. The
/// connection lives on, every byte is delivered, and the RST is counted.
#[test]
fn a_rst_the_receiver_ignored_is_outlived() {
    let (a, b, ok) = (GET_A.len() as u32, GET_B.len() as u32, OK.len() as u32);
    let mut m = Sim::new();
    m.handshake();
    m.c(0, 0, A | P, GET_A);
    m.s(0, a, A | P, OK);
    m.c(a, ok, A, b"");
    m.c(a + 1_000_000, ok, R | A, b"");
    m.s(ok, a, A, b""); // the challenge ACK (RFC 5961 section 3.2)
    m.c(a, ok, A | P, GET_B);
    m.s(ok, a + b, A | P, OK);
    m.c(a + b, 2 * ok, A | F, b"");
    m.s(2 * ok, a + b + 1, A | F, b"");
    m.c(a + b + 1, 2 * ok + 1, A, b"");
    m.finish();
    assert_eq!(m.rec.opens().len(), 1);
    assert_eq!(m.rec.text(1, C2S), "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    assert_eq!(m.rec.closes()[0].how, CloseHow::Fin { first: C2S });
    assert_eq!(m.rec.after_rst(), [(C2S, b'G', false), (S2C, b'H', false), (C2S, b'G', true), (S2C, b'H', true)]);
    let s = &m.rec.summaries()[0];
    assert_eq!(s.state, ConnState::SF);
    assert_eq!((s.to_server.ignored_rsts, s.to_client.ignored_rsts), (1, 0));
    assert_eq!((s.to_server.data_after_rst_bytes, s.to_client.data_after_rst_bytes), (u64::from(b), u64::from(ok)));
    assert_eq!(s.to_client.after_close_bytes, 0);
    assert_eq!(s.anomalies(), ["c2s:ignored_rst", "c2s:data_after_rst", "s2c:data_after_rst"]);
    assert_eq!(m.r.stats().closed_rst, 0);
    assert_eq!(m.r.stats().packets_after_close, 1 + 1, "the challenge ACK, and the last ACK");
    assert!(m.rec.gaps().is_empty());
}

/// The server ignores the RST and answers the request it already had: its
/// own bytes in sequence say the connection lives on.
#[test]
fn the_peer_going_on_outlives_a_rst() {
    let a = GET_A.len() as u32;
    let mut m = Sim::new();
    m.handshake();
    m.c(0, 0, A | P, GET_A);
    m.c(a + 70_000, 0, R, b"");
    m.s(0, a, A | P, OK);
    m.finish();
    assert_eq!(m.rec.text(1, S2C), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(m.rec.closes()[0].how, CloseHow::EndOfCapture);
    assert_eq!(m.rec.summaries()[0].to_server.ignored_rsts, 1);
}

/// A RST at the sequence number the receiver expects ends the connection
/// at once, whatever comes after (the server's answer already in flight,
/// the client's data in sequence): as before.
#[test]
fn a_rst_at_the_expected_sequence_number_ends_the_connection() {
    let a = GET_A.len() as u32;
    for from_client in [true, false] {
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, GET_A);
        if from_client {
            m.c(a, 0, R | A, b"");
        } else {
            m.s(0, a, R | A, b"");
        }
        let rst_ts = Ts(m.t);
        m.s(0, a, A | P, OK);
        m.c(a, 0, A | P, GET_B);
        m.finish();
        let closes = m.rec.closes();
        let want = if from_client { C2S } else { S2C };
        assert_eq!((closes[0].how, closes[0].ts), (CloseHow::Rst { from: want }, rst_ts));
        assert_eq!(m.rec.text(1, C2S), "GET /a HTTP/1.1\r\n\r\n");
        assert_eq!(m.rec.text(1, S2C), "");
        let s = &m.rec.summaries()[0];
        assert_eq!(s.to_server.after_close_bytes + s.to_client.after_close_bytes, u64::from(a) + OK.len() as u64);
        assert_eq!(s.to_server.ignored_rsts + s.to_client.ignored_rsts, 0);
        assert!(m.rec.after_rst().iter().all(|(_, _, after)| !after));
    }
}

/// A RST at an unexpected sequence number (in the window, or not) that
/// nothing continues stands: the connection closes as it said, at its
/// time, and what came after counts as after the close, exactly as when
/// every RST closed at once. A retransmission, a bare ACK or a FIN do not
/// continue a stream; a SYN with a new ISN starts a new connection.
#[test]
fn a_rst_nothing_continues_stands_as_at_its_time() {
    let a = GET_A.len() as u32;
    for rst_at in [a + 5, a + 1_000_000, 0] {
        let mut m = Sim::new();
        m.handshake();
        m.c(0, 0, A | P, GET_A);
        m.s(0, a, A | P, b"HTTP/1.1 200 OK\r\n");
        m.c(rst_at, 0, R, b"");
        let rst_ts = Ts(m.t);
        m.c(0, 17, A | P, GET_A); // a retransmission
        m.s(0, a, A, b""); // a bare ACK
        m.s(17, a, A | F, b""); // a FIN
        m.finish();
        let closes = m.rec.closes();
        assert_eq!((closes[0].how, closes[0].ts), (CloseHow::Rst { from: C2S }, rst_ts), "RST at {rst_at}");
        let s = &m.rec.summaries()[0];
        assert_eq!(s.state, ConnState::RSTO);
        assert_eq!((s.to_server.packets, s.to_client.packets), (5, 4));
        assert_eq!(s.to_server.after_close_bytes, u64::from(a));
        assert_eq!(s.to_server.ignored_rsts, 0);
        assert_eq!(m.r.stats().packets_after_close, 3);
        assert_eq!(m.r.stats().closed_rst, 1);
    }
    // A new connection on the same addresses after it.
    let mut m = Sim::new();
    m.handshake();
    m.c(0, 0, A | P, GET_A);
    m.c(a + 1_000_000, 0, R, b"");
    m.cisn = 777_777;
    m.sisn = 888_888;
    m.handshake();
    m.c(0, 0, A | P, GET_B);
    m.finish();
    let ids: Vec<ConnId> = m.rec.opens().iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(m.rec.closes()[0].how, CloseHow::Rst { from: C2S });
    assert_eq!(m.rec.text(ids[1], C2S), "GET /b HTTP/1.1\r\n\r\n");
    assert_eq!(m.r.stats().port_reuse, 1);
}

/// A held RST is given up on as a tomb would be forgotten: once the
/// connection has been quiet for `closed_linger`. Later bytes, even in
/// sequence, start a new connection (picked up mid-stream), as after any
/// close.
#[test]
fn a_held_rst_stands_after_the_linger() {
    let a = GET_A.len() as u32;
    let mut m = Sim::new();
    m.handshake();
    m.c(0, 0, A | P, GET_A);
    m.c(a + 1_000_000, 0, R, b"");
    let rst_ts = Ts(m.t);
    m.raw(true, m.cisn + 1 + a, m.sisn + 1, A | P, GET_B, GET_B.len() as u32, 61_000, 1000);
    m.finish();
    let closes = m.rec.closes();
    assert_eq!((closes[0].how, closes[0].ts), (CloseHow::Rst { from: C2S }, rst_ts));
    assert_eq!(m.rec.opens().len(), 2);
    assert_eq!(m.r.stats().packets_after_close, 0);
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
            domain: Domain::default(),
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
            domain: Domain::default(),
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
            domain: Domain::default(),
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
                domain: Domain::default(),
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
                r.process(&segment(frame, Ts(frame as i64 * 1000), (src, dst), seq, ack, flags, p), rec);
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

#[test]
fn shard_hash_is_symmetric_fixed_and_spreads() {
    let seg = |src: SocketAddr, dst: SocketAddr, domain: Domain| TcpSegment {
        frame: 1,
        ts: Ts(0),
        src,
        dst,
        seq: 1,
        ack: 0,
        flags: TcpFlags(SY),
        window: 0,
        options: TcpOptions::default(),
        payload: b"",
        payload_len: 0,
        domain,
    };
    let c: SocketAddr = C.parse().unwrap();
    let s: SocketAddr = S.parse().unwrap();
    let there = shard_hash(&seg(c, s, Domain::default()));
    // Both directions alike.
    assert_eq!(there, shard_hash(&seg(s, c, Domain::default())));
    // The same value on every run and platform (no random seed).
    assert_eq!(there, 0x5253_bd45_6fe0_02d8);
    // The domain is part of it, both directions alike too.
    let d = Domain { id: 42, vlan: Some(10) };
    assert_ne!(shard_hash(&seg(c, s, d)), there);
    assert_eq!(shard_hash(&seg(c, s, d)), shard_hash(&seg(s, c, d)));
    // Different client ports: all different, and spread evenly over shards.
    let hashes: Vec<u64> = (0..4000u16).map(|p| shard_hash(&seg(SocketAddr::new(c.ip(), 20000 + p), s, d))).collect();
    let distinct: std::collections::HashSet<u64> = hashes.iter().copied().collect();
    assert_eq!(distinct.len(), hashes.len());
    let mut shards = [0u32; 4];
    for h in &hashes {
        shards[(h % 4) as usize] += 1;
    }
    assert!(shards.iter().all(|n| (850..=1150).contains(n)), "{shards:?}");
    // So do different clients on one port of one server, over 16 shards,
    // in IPv4 and in IPv6; and an IPv6 end never hashes as an IPv4 one.
    for base in ["10.1.0.0", "2001:db8::"] {
        let base: std::net::IpAddr = base.parse().unwrap();
        let at = |i: u32| match base {
            std::net::IpAddr::V4(v4) => std::net::IpAddr::V4((v4.to_bits() + i).into()),
            std::net::IpAddr::V6(v6) => std::net::IpAddr::V6((v6.to_bits() + u128::from(i)).into()),
        };
        let mut shards = [0u32; 16];
        for i in 0..16_000 {
            let h = shard_hash(&seg(SocketAddr::new(at(i), 40000), s, Domain::default()));
            shards[(h % 16) as usize] += 1;
        }
        assert!(shards.iter().all(|n| (850..=1150).contains(n)), "{base}: {shards:?}");
    }
    let v4: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let v6: SocketAddr = "[::ffff:10.0.0.1]:80".parse().unwrap();
    assert_ne!(shard_hash(&seg(v4, s, Domain::default())), shard_hash(&seg(v6, s, Domain::default())));
}

/// A connection open and waiting on its first request (its records in the
/// TCP and HTTP layers, the request's record and head, the maps' entries)
/// holds no more than the budget is charged for it, counted by the test
/// build's allocator on a thread of its own.
#[test]
fn an_open_connection_with_a_waiting_request_holds_no_more_than_it_is_charged() {
    std::thread::spawn(|| {
        let budget = Budget::new(1 << 30);
        let before = crate::counting::held();
        let mut r = Reassembler::new(TcpConfig { budget: budget.clone(), ..TcpConfig::default() });
        let hcfg = crate::http::HttpConfig { budget: budget.clone(), ..crate::http::HttpConfig::default() };
        let mut a = crate::http::HttpAnalyzer::new(hcfg, Vec::new());
        let req: &[u8] = b"GET /product/17?ref=home HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\nAccept: text/html\r\nCookie: sid=0123456789abcdef\r\n\r\n";
        let n = 3000u32;
        let mut frame = 0;
        for i in 0..n {
            let client = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 40000));
            let server = SocketAddr::from(([10, 0, 0, 2], 80));
            for (from_client, seq, ack, flags, payload) in
                [(true, 7, 0, SY, &[][..]), (false, 900, 8, SY | A, &[][..]), (true, 8, 901, A | P, req)]
            {
                frame += 1;
                let (src, dst) = if from_client { (client, server) } else { (server, client) };
                r.process(&segment(frame, Ts(i64::from(i) * 1_000_000), (src, dst), seq, ack, flags, payload), &mut a);
            }
        }
        assert_eq!(r.active_connections(), n as usize);
        let held = crate::counting::held() - before;
        let charged = budget.used() as isize;
        let per = |b: isize| b / isize::try_from(n).unwrap();
        assert!(held <= charged, "{} bytes held a connection, {} charged", per(held), per(charged));
    })
    .join()
    .unwrap();
}
