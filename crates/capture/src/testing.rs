//! Invariant checks over the whole capture layer, shared by the fuzz
//! targets (`fuzz/`) and the mutation tests. Not part of the stable API.
//!
//! Each function runs bytes through reading, decoding and reassembly with
//! small caps (so the caps act) and panics if an invariant breaks: stream
//! events out of order or outside open..close, a packet not accounted for
//! by the decoder, memory above a cap.

use std::collections::HashMap;
use std::io::Cursor;

use crate::decode::{DecodeConfig, Decoder};
use crate::packet::{Linktype, Packet};
use crate::pcap::CaptureFile;
use crate::tcp::{
    Close, ConnId, ConnMeta, ConnSummary, DataChunk, Direction, Gap, HalfClose, Reassembler, StreamSink, TcpConfig,
};
use crate::time::{Dur, Ts};

/// Small caps so that fuzzing reaches the cap paths.
fn small_tcp() -> TcpConfig {
    TcpConfig {
        max_connections: 8,
        max_ooo_bytes: 4096,
        max_ooo_total: 16384,
        idle_timeout: Dur::from_secs(30),
        closed_linger: Dur::from_secs(5),
        max_seq_jump: 1 << 24,
        budget: crate::budget::Budget::default(),
    }
}

fn small_decode() -> DecodeConfig {
    DecodeConfig {
        max_frag_bytes: 16384,
        max_frag_datagrams: 8,
        frag_timeout: Dur::from_secs(5),
        ..DecodeConfig::default()
    }
}

/// A sink that checks the event contract of [`crate::tcp`].
#[derive(Default)]
pub struct CheckingSink {
    /// Per connection: 1 open, 2 closed, 3 summarised.
    state: HashMap<ConnId, u8>,
    /// Per connection and direction: next expected offset, ended.
    next: HashMap<(ConnId, bool), (u64, bool)>,
    /// Events seen.
    pub events: u64,
}

impl CheckingSink {
    fn live(&self, conn: ConnId) {
        assert_eq!(self.state.get(&conn), Some(&1), "event for conn {conn} outside open..close");
    }

    fn advance(&mut self, conn: ConnId, dir: Direction, offset: u64, len: u64) {
        self.live(conn);
        let e = self.next.entry((conn, dir == Direction::ClientToServer)).or_insert((0, false));
        assert!(!e.1, "conn {conn} {dir:?}: bytes after the half-close");
        assert_eq!(e.0, offset, "conn {conn} {dir:?}: offsets not contiguous");
        assert!(len > 0, "empty chunk or gap");
        e.0 = offset + len;
        self.events += 1;
    }
}

impl StreamSink for CheckingSink {
    fn on_open(&mut self, m: &ConnMeta) {
        assert!(self.state.insert(m.id, 1).is_none(), "conn {} opened twice", m.id);
        self.events += 1;
    }
    fn on_data(&mut self, c: &DataChunk<'_>) {
        assert!(c.first_ts <= c.last_ts && c.first_frame <= c.last_frame);
        self.advance(c.conn, c.dir, c.offset, c.bytes.len() as u64);
    }
    fn on_gap(&mut self, g: &Gap) {
        self.advance(g.conn, g.dir, g.offset, g.len);
    }
    fn on_half_close(&mut self, h: &HalfClose) {
        self.live(h.conn);
        let e = self.next.entry((h.conn, h.dir == Direction::ClientToServer)).or_insert((0, false));
        assert!(!e.1, "half-closed twice");
        e.1 = true;
    }
    fn on_close(&mut self, c: &Close) {
        self.live(c.conn);
        self.state.insert(c.conn, 2);
    }
    fn on_summary(&mut self, s: &ConnSummary) {
        assert_eq!(self.state.get(&s.id), Some(&2), "summary of conn {} before its close", s.id);
        self.state.insert(s.id, 3);
        for (h, dir) in [(&s.to_server, true), (&s.to_client, false)] {
            let delivered = self.next.get(&(s.id, dir)).map(|e| e.0).unwrap_or(0);
            assert_eq!(h.stream_bytes + h.gap_bytes, delivered, "conn {}: counters vs events", s.id);
        }
    }
}

impl CheckingSink {
    /// Checks that every connection finished.
    pub fn finish(&self) {
        for (id, st) in &self.state {
            assert_eq!(*st, 3, "conn {id} not finished");
        }
    }
}

/// Runs decode and reassembly over packets, checking invariants.
fn run_packets<'a>(mut next: impl FnMut() -> Option<Packet<'a>>) {
    let mut decoder = Decoder::new(small_decode());
    let cfg = small_tcp();
    let cap_total = cfg.max_ooo_total;
    let mut tcp = Reassembler::new(cfg);
    let mut sink = CheckingSink::default();
    while let Some(pkt) = next() {
        if let Some(seg) = decoder.decode(&pkt) {
            assert!(seg.payload.len() <= seg.payload_len as usize);
            tcp.process(&seg, &mut sink);
        }
        assert!(decoder.pending_fragment_bytes() <= 16384);
        assert!(tcp.ooo_bytes() <= cap_total, "ooo total {} > cap", tcp.ooo_bytes());
        assert_eq!(decoder.stats().unaccounted(), 0);
    }
    decoder.finish();
    tcp.finish(&mut sink);
    sink.finish();
    assert_eq!(tcp.ooo_bytes(), 0);
    assert_eq!(decoder.stats().unaccounted(), 0);
}

/// Treats `data` as a capture file and runs it through the whole layer.
pub fn check_capture_bytes(data: &[u8]) {
    let Ok(mut file) = CaptureFile::from_read("fuzz", Cursor::new(data.to_vec())) else {
        return;
    };
    let mut buf: Vec<(u64, Ts, Linktype, Vec<u8>, u32)> = Vec::new();
    // Packets borrow the reader; copy them out so the loop below owns them.
    while let Ok(Some(p)) = file.next_packet() {
        buf.push((p.frame, p.ts, p.linktype, p.data.to_vec(), p.orig_len));
        if buf.len() > 100_000 {
            break;
        }
    }
    let mut it = buf.iter();
    run_packets(|| {
        it.next().map(|(frame, ts, linktype, data, orig_len)| Packet {
            frame: *frame,
            source: 0,
            ts: *ts,
            linktype: *linktype,
            data,
            orig_len: *orig_len,
        })
    });
}

/// Treats `data` as a sequence of frames: each is a 2-byte length, a link
/// type selector byte, a time step byte, then the frame.
pub fn check_frames(data: &[u8]) {
    const LINKTYPES: [Linktype; 9] = [
        Linktype::ETHERNET,
        Linktype::RAW,
        Linktype::NULL,
        Linktype::LOOP,
        Linktype::LINUX_SLL,
        Linktype::LINUX_SLL2,
        Linktype::NFLOG,
        Linktype::IPV4,
        Linktype::IPV6,
    ];
    let mut frames: Vec<(Linktype, i64, &[u8])> = Vec::new();
    let mut rest = data;
    let mut t = 0i64;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let lt = LINKTYPES[usize::from(rest[2]) % LINKTYPES.len()];
        t += i64::from(rest[3]) * 100_000_000;
        let body = &rest[4..];
        let n = len.min(body.len());
        frames.push((lt, t, &body[..n]));
        rest = &body[n..];
    }
    let mut frame = 0u64;
    let mut it = frames.into_iter();
    run_packets(|| {
        let (linktype, t, data) = it.next()?;
        frame += 1;
        Some(Packet { frame, source: 0, ts: Ts(t), linktype, data, orig_len: data.len() as u32 })
    });
}

/// Drives the HTTP layer with a script decoded from `data`: each step is an
/// operation byte, then (for data) a length byte and that many bytes.
/// Checks that it never panics, that every transaction has a place in its
/// connection, and that missing bytes never exceed what was reported lost.
pub fn check_http(data: &[u8]) {
    use crate::http::{HttpAnalyzer, HttpConfig};
    use crate::tcp::{CloseHow, GapReason, HalfClose, RoleSource};
    let cfg = HttpConfig { max_head_bytes: 512, body_keep_bytes: 64, max_pending: 8, ..HttpConfig::default() };
    let mut a = HttpAnalyzer::new(cfg, Vec::new());
    let roles = if data.first().is_some_and(|b| b & 1 == 1) { RoleSource::Port } else { RoleSource::Syn };
    a.on_open(&ConnMeta {
        id: 1,
        client: std::net::SocketAddr::from(([10, 0, 0, 1], 40000)),
        server: std::net::SocketAddr::from(([10, 0, 0, 2], 80)),
        start: Ts(0),
        first_frame: 1,
        handshake: None,
        roles,
    });
    let (mut off, mut t, mut lost) = ([0u64; 2], 0i64, 0u64);
    let mut rest = data.get(1..).unwrap_or(&[]);
    let mut closed = false;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        t += 1_000_000;
        let i = usize::from(op & 1);
        let dir = if i == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
        match op % 8 {
            0..=3 => {
                let n = usize::from(rest.first().copied().unwrap_or(0)).min(rest.len().saturating_sub(1));
                let bytes = rest.get(1..1 + n).unwrap_or(&[]);
                rest = rest.get(1 + n..).unwrap_or(&[]);
                if bytes.is_empty() {
                    continue;
                }
                a.on_data(&DataChunk {
                    conn: 1,
                    dir,
                    offset: off[i],
                    bytes,
                    first_ts: Ts(t),
                    last_ts: Ts(t),
                    first_frame: 1,
                    last_frame: 1,
                    peer_ack: Some(off[1 - i]),
                });
                off[i] += bytes.len() as u64;
            }
            4 | 5 => {
                let n = u64::from(rest.first().copied().unwrap_or(1)).max(1);
                rest = rest.get(1..).unwrap_or(&[]);
                a.on_gap(&Gap { conn: 1, dir, offset: off[i], len: n, ts: Ts(t), reason: GapReason::AckedUnseen });
                off[i] += n;
                lost += n;
            }
            6 => a.on_half_close(&HalfClose { conn: 1, dir, ts: Ts(t), frame: 1 }),
            _ => {
                let how = match rest.first().copied().unwrap_or(0) % 4 {
                    0 => CloseHow::EndOfCapture,
                    1 => CloseHow::Rst { from: Direction::ServerToClient },
                    2 => CloseHow::Rst { from: Direction::ClientToServer },
                    _ => CloseHow::IdleTimeout,
                };
                a.on_close(&Close { conn: 1, ts: Ts(t), how });
                closed = true;
                break;
            }
        }
    }
    if !closed {
        a.on_close(&Close { conn: 1, ts: Ts(t + 1), how: CloseHow::EndOfCapture });
    }
    let (txs, stats) = a.finish();
    let mut depths = std::collections::HashSet::new();
    let mut missing = 0;
    for tx in &txs {
        assert!(tx.depth >= 1, "depth from 1");
        assert!(depths.insert(tx.depth), "depth {} twice", tx.depth);
        missing += tx.missing_bytes;
    }
    assert!(missing <= lost, "{missing} missing bytes reported, {lost} lost");
    assert_eq!(stats.transactions, txs.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus_file(name: &str) -> Vec<u8> {
        let dir = std::env::var_os("POV_CORPUS").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus"))
        });
        let p = dir.join("pcaps").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (set POV_CORPUS)", p.display()))
    }

    /// SplitMix64.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn corpus_captures_pass_the_invariants() {
        for name in [
            "sv__http-gap-simple.pcap",
            "zeek__zero-length-bodies-with-drops.pcap",
            "arkime__wireshark-retrans.pcap",
            "zeek__ayiya3.pcap",
            "zeek__mixed-vlan-mpls.pcap",
            "ndpi__http_starting_with_reply.pcapng",
        ] {
            check_capture_bytes(&corpus_file(name));
        }
    }

    /// Mutated real captures: byte flips (which hit sequence numbers,
    /// flags, lengths and headers), truncations and duplicated ranges.
    #[test]
    fn mutated_captures_keep_every_invariant() {
        let originals = [
            corpus_file("sv__http-gap-simple.pcap"),
            corpus_file("zeek__zero-length-bodies-with-drops.pcap"),
            corpus_file("ndpi__http_starting_with_reply.pcapng"),
            corpus_file("zeek__ayiya3.pcap"),
        ];
        let mut rng = Rng(7);
        for round in 0..400 {
            let mut data = originals[round % originals.len()].clone();
            let flips = 1 + rng.next() % 16;
            for _ in 0..flips {
                // Keep the file header so most mutants are read as captures.
                let i = 32 + (rng.next() as usize) % (data.len() - 32);
                data[i] ^= 1 << (rng.next() % 8);
            }
            if rng.next().is_multiple_of(4) {
                let cut = 24 + (rng.next() as usize) % (data.len() - 24);
                data.truncate(cut);
            }
            check_capture_bytes(&data);
        }
    }

    #[test]
    fn random_http_scripts_keep_every_invariant() {
        let mut rng = Rng(1234);
        // Scripts of real messages cut at random places, with gaps and
        // endings, plus pure noise.
        let msgs: [&[u8]; 6] = [
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nclose-delimited",
        ];
        for round in 0..2000 {
            let mut script = vec![rng.next() as u8];
            for _ in 0..(rng.next() % 12) {
                let op = (rng.next() % 8) as u8;
                script.push(op);
                match op {
                    0..=3 => {
                        let m = msgs[(rng.next() as usize) % msgs.len()];
                        let m = if op & 1 == 0 { &msgs[(rng.next() as usize) % 2] } else { &m };
                        let cut = (rng.next() as usize) % (m.len() + 1);
                        let piece = &m[..cut.max(1)];
                        script.push(piece.len() as u8);
                        script.extend_from_slice(piece);
                    }
                    4 | 5 => script.push((rng.next() % 40) as u8 + 1),
                    _ => script.push(rng.next() as u8),
                }
            }
            if round % 5 == 0 {
                for b in script.iter_mut().skip(1) {
                    if rng.next().is_multiple_of(10) {
                        *b ^= rng.next() as u8;
                    }
                }
            }
            check_http(&script);
        }
    }

    #[test]
    fn random_frames_keep_every_invariant() {
        let mut rng = Rng(99);
        for _ in 0..300 {
            let n = (rng.next() % 4000) as usize;
            let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            check_frames(&data);
        }
    }
}
