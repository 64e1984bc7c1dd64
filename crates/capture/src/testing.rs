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

/// The package folder of the test that runs: the one `cargo test` names
/// when it starts the test, else the one the test was built in. A test
/// binary built in another checkout and reused from a shared target folder
/// (cargo does not rebuild it for a moved checkout) then still reads this
/// checkout's samples.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

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

/// A cursor over fuzz input: every read succeeds, with what is left (an
/// exhausted input reads as zeros and empty slices).
#[derive(Clone, Copy, Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    /// The next `n` bytes, or what is left.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    /// The next byte (0 at the end).
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One of `items`, chosen by the next byte.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        let b = usize::from(self.u8());
        &items[b % items.len()]
    }
}

/// Connections a script can hold open at once.
pub const SCRIPT_CONNS: usize = 4;

/// Most stream bytes one script delivers (its repeat operation makes a few
/// bytes of input into a long chunk; this bounds the time of one run).
pub const SCRIPT_MAX_BYTES: usize = 4 << 20;

/// Capture time a script starts at (2023-11-14, so outputs show real dates).
pub const SCRIPT_START: Ts = Ts(1_700_000_000_000_000_000);

/// What a script delivered, for the checks that follow it.
#[derive(Clone, Debug, Default)]
pub struct ScriptRun {
    /// Connections opened.
    pub connections: u64,
    /// Stream bytes delivered.
    pub bytes: u64,
    /// Bytes reported missing (gaps).
    pub lost: u64,
    /// Capture time of the last event.
    pub end: Ts,
}

struct Live {
    id: ConnId,
    off: [u64; 2],
    ended: [bool; 2],
}

/// Drives a [`StreamSink`] with the stream events of a script decoded from
/// `data`, keeping the event contract of [`crate::tcp`] (offsets contiguous,
/// nothing after a half-close or close), and closes what is still open at
/// the end (end of capture). Connection summaries are not sent.
///
/// The first byte holds flags: bit 0, roles known from ports rather than a
/// SYN; bit 2, a handshake was seen. Then each step is an operation byte:
/// bits 0-2 the kind, bits 3-4 one of [`SCRIPT_CONNS`] connection slots
/// (a slot's first event opens a connection; after its close, the next opens
/// a new one), bit 5 the direction (0: client to server).
///
/// | kind | operation | operands |
/// |---|---|---|
/// | 0 | data | 2-byte length, that many bytes |
/// | 1 | repeated data, in one chunk | 2-byte count, 1-byte length, that many bytes |
/// | 2 | data in small chunks | 1-byte chunk size, 2-byte length, that many bytes |
/// | 3 | gap | 2-byte length |
/// | 4 | half-close | |
/// | 5 | close | 1 byte: FIN, RST (either side), idle timeout, end of capture |
/// | 6 | time passes | 1 byte: below 128, that many 10 ms; else its square in seconds |
/// | 7 | retransmission of delivered bytes | 2-byte length |
///
/// Every operation also advances capture time by 1 ms. Lengths are
/// big-endian; a length beyond the input takes what is left.
pub fn run_http_script<S: StreamSink + ?Sized>(data: &[u8], sink: &mut S) -> ScriptRun {
    run_http_script_upto(data, sink, SCRIPT_MAX_BYTES)
}

/// [`run_http_script`], delivering at most `max_bytes` stream bytes.
pub fn run_http_script_upto<S: StreamSink + ?Sized>(data: &[u8], sink: &mut S, max_bytes: usize) -> ScriptRun {
    use crate::tcp::{CloseHow, GapReason, HalfClose, Handshake, Retransmission, RoleSource};
    let flags = data.first().copied().unwrap_or(0);
    let roles = if flags & 1 == 1 { RoleSource::Port } else { RoleSource::Syn };
    let mut input = Bytes(data.get(1..).unwrap_or(&[]));
    let mut take = |n: usize| input.take(n);
    let mut slots: [Option<Live>; SCRIPT_CONNS] = Default::default();
    let mut run = ScriptRun { end: SCRIPT_START, ..ScriptRun::default() };
    let mut t = SCRIPT_START;
    let mut frame = 0u64;
    let mut next_id: ConnId = 0;
    let mut scratch: Vec<u8> = Vec::new();
    while let Some(&op) = take(1).first() {
        t = t + Dur::from_millis(1);
        frame += 1;
        let kind = op & 7;
        let slot = usize::from(op >> 3) % SCRIPT_CONNS;
        let dir = if op & 0x20 == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
        let i = usize::from(op & 0x20 != 0);
        let u16_at = |b: &[u8]| match b {
            [a, b] => usize::from(u16::from_be_bytes([*a, *b])),
            [a] => usize::from(*a),
            _ => 0,
        };
        if kind == 6 {
            let v = i64::from(take(1).first().copied().unwrap_or(0));
            t = t + if v < 128 { Dur::from_millis(10 * v) } else { Dur::from_secs((v - 127) * (v - 127)) };
            continue;
        }
        // Operands first, so that an operation skipped for the contract's
        // sake still consumes them.
        scratch.clear();
        let mut chunk_size = usize::MAX;
        let mut len = 0usize;
        match kind {
            0 => {
                let n = u16_at(take(2));
                scratch.extend_from_slice(take(n));
            }
            1 => {
                let count = u16_at(take(2)) + 1;
                let n = usize::from(take(1).first().copied().unwrap_or(0));
                let piece = take(n);
                let room = max_bytes.saturating_sub(run.bytes as usize);
                if !piece.is_empty() {
                    let times = count.min(room / piece.len());
                    for _ in 0..times {
                        scratch.extend_from_slice(piece);
                    }
                }
            }
            2 => {
                chunk_size = usize::from(take(1).first().copied().unwrap_or(0)) + 1;
                let n = u16_at(take(2));
                scratch.extend_from_slice(take(n));
            }
            3 | 7 => len = u16_at(take(2)),
            5 => len = usize::from(take(1).first().copied().unwrap_or(0)),
            _ => {}
        }
        let room = max_bytes.saturating_sub(run.bytes as usize);
        scratch.truncate(room);
        if slots[slot].is_none() {
            let client = std::net::SocketAddr::from(([10, 0, 0, 1 + (slot % 2) as u8], 40000 + next_id as u16));
            let handshake = (flags & 4 != 0).then_some(Handshake {
                syn: t - Dur::from_millis(20),
                syn_ack: t - Dur::from_millis(10),
                ack: t - Dur::from_millis(1),
            });
            next_id += 1;
            sink.on_open(&ConnMeta {
                id: next_id,
                client,
                server: std::net::SocketAddr::from(([10, 0, 0, 100], 80)),
                start: t,
                first_frame: frame,
                handshake,
                roles,
                vlan: None,
            });
            run.connections += 1;
            slots[slot] = Some(Live { id: next_id, off: [0, 0], ended: [false, false] });
        }
        let Some(live) = slots[slot].as_mut() else { continue };
        let conn = live.id;
        run.end = t;
        match kind {
            0..=2 => {
                if live.ended[i] || scratch.is_empty() {
                    continue;
                }
                for piece in scratch.chunks(chunk_size) {
                    sink.on_data(&DataChunk {
                        conn,
                        dir,
                        offset: live.off[i],
                        bytes: piece,
                        first_ts: t,
                        last_ts: t,
                        first_frame: frame,
                        last_frame: frame,
                        peer_ack: Some(live.off[1 - i]),
                        after_rst: false,
                    });
                    live.off[i] += piece.len() as u64;
                }
                run.bytes += scratch.len() as u64;
            }
            3 => {
                if live.ended[i] {
                    continue;
                }
                let n = len as u64 + 1;
                sink.on_gap(&Gap { conn, dir, offset: live.off[i], len: n, ts: t, reason: GapReason::AckedUnseen });
                live.off[i] += n;
                run.lost += n;
            }
            4 => {
                if !live.ended[i] {
                    live.ended[i] = true;
                    sink.on_half_close(&HalfClose { conn, dir, ts: t, frame });
                }
            }
            5 => {
                let how = match len % 5 {
                    0 => CloseHow::Fin { first: dir },
                    1 => CloseHow::Rst { from: Direction::ServerToClient },
                    2 => CloseHow::Rst { from: Direction::ClientToServer },
                    3 => CloseHow::IdleTimeout,
                    _ => CloseHow::EndOfCapture,
                };
                sink.on_close(&Close { conn, ts: t, how });
                slots[slot] = None;
            }
            _ => {
                let n = (len as u64).min(live.off[i]);
                if n > 0 {
                    let end = live.off[i];
                    sink.on_retransmission(&Retransmission { conn, dir, start: end - n, end, ts: t, frame });
                }
            }
        }
    }
    t = t + Dur::from_millis(1);
    for live in slots.iter_mut().filter_map(Option::take) {
        sink.on_close(&Close { conn: live.id, ts: t, how: CloseHow::EndOfCapture });
    }
    run.end = t;
    run
}

/// The caps a script's first byte chooses: bit 1 set, small caps (so that
/// the caps act on short inputs); clear, the defaults `pov` runs with.
pub fn script_http_config(data: &[u8]) -> crate::http::HttpConfig {
    use crate::http::HttpConfig;
    if data.first().is_some_and(|b| b & 2 != 0) {
        HttpConfig {
            max_head_bytes: 512,
            body_keep_bytes: 64,
            max_pending: 8,
            max_held: 4,
            max_held_bytes: 4096,
            ..HttpConfig::default()
        }
    } else {
        HttpConfig::default()
    }
}

/// Checks the HTTP layer's output against its counters and caps: every
/// transaction emitted is counted once under its outcome, responses without
/// request and missing bytes add up, positions in a connection are distinct
/// and count from 1, kept bodies stay under the keep cap, and no more bytes
/// are reported missing than `lost` (the gaps the layer was told of).
pub fn check_transactions(
    txs: &[crate::http::HttpTransaction],
    stats: &crate::http::HttpStats,
    cfg: &crate::http::HttpConfig,
    lost: u64,
) {
    assert_eq!(stats.transactions, txs.len() as u64, "transactions emitted vs counted");
    let by_outcome = stats.complete
        + stats.client_abort
        + stats.server_reset
        + stats.no_response
        + stats.truncated
        + stats.capture_gap
        + stats.malformed;
    assert_eq!(by_outcome, stats.transactions, "transactions by outcome do not add up");
    let orphans = txs.iter().filter(|t| t.request.is_none()).count() as u64;
    assert_eq!(stats.orphan_responses, orphans, "responses without request");
    let missing: u64 = txs.iter().map(|t| t.missing_bytes).sum();
    assert_eq!(stats.missing_bytes, missing, "missing bytes: counter vs transactions");
    assert!(missing <= lost, "{missing} missing bytes reported, {lost} lost");
    let mut seen = std::collections::HashSet::new();
    for t in txs {
        assert!(t.depth >= 1, "depth from 1");
        assert!(seen.insert((t.conn, t.depth)), "conn {} depth {} twice", t.conn, t.depth);
        for b in [&t.request_body, &t.response_body] {
            assert!(
                b.kept.len() <= cfg.body_keep_bytes,
                "kept {} body bytes, cap {}",
                b.kept.len(),
                cfg.body_keep_bytes
            );
            assert!(b.kept.len() as u64 <= b.decoded_len, "kept more than decoded");
        }
    }
}

/// Runs `drive` over an HTTP analyzer with `cfg`, then over one without
/// the shortcut for body bytes under way, and panics, naming `what`,
/// unless both give the same transactions (every field, as `Debug` prints
/// them) and the same counts. Returns the first run's, and what `drive`
/// returned for it.
pub(crate) fn both_ways<R>(
    cfg: &crate::http::HttpConfig,
    what: &str,
    mut drive: impl FnMut(&mut crate::http::HttpAnalyzer<Vec<crate::http::HttpTransaction>>) -> R,
) -> (Vec<crate::http::HttpTransaction>, crate::http::HttpStats, R) {
    use crate::http::HttpAnalyzer;
    let mut fast = HttpAnalyzer::new(cfg.clone(), Vec::new());
    let got = drive(&mut fast);
    let (txs, stats) = fast.finish();
    let mut turns = HttpAnalyzer::new(cfg.clone(), Vec::new()).without_body_shortcut();
    drive(&mut turns);
    let (turn_txs, turn_stats) = turns.finish();
    assert!(
        format!("{txs:?}") == format!("{turn_txs:?}"),
        "{what}: the shortcut for body bytes gave other transactions than the parser's turns"
    );
    assert!(
        format!("{stats:?}") == format!("{turn_stats:?}"),
        "{what}: the shortcut for body bytes gave other counts than the parser's turns"
    );
    (txs, stats, got)
}

/// Drives the HTTP layer with a script (see [`run_http_script`]) under the
/// caps its first byte chooses ([`script_http_config`]), then checks the
/// transactions ([`check_transactions`]), that request and response
/// times run forward (the script's clock does), and that a second run
/// without the shortcut for body bytes under way gives the same.
pub fn check_http(data: &[u8]) {
    check_http_upto(data, SCRIPT_MAX_BYTES);
}

fn check_http_upto(data: &[u8], max_bytes: usize) {
    let cfg = script_http_config(data);
    let (txs, stats, run) = both_ways(&cfg, "the script", |a| run_http_script_upto(data, a, max_bytes));
    check_transactions(&txs, &stats, &cfg, run.lost);
    for t in &txs {
        let tm = &t.timing;
        if let (Some(a), Some(b)) = (tm.req_start, tm.req_end) {
            assert!(a <= b, "request ends before it starts");
        }
        if let (Some(a), Some(b)) = (tm.resp_start, tm.resp_end) {
            assert!(a <= b, "response ends before it starts");
        }
        assert!(tm.start() <= run.end, "a transaction after the script ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus_file(name: &str) -> Vec<u8> {
        let dir = std::env::var_os("POV_CORPUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| manifest_dir().join("../../../shared/corpus"));
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

    /// A script step delivering `bytes` (operation 0).
    fn data_op(script: &mut Vec<u8>, slot: u8, server: bool, bytes: &[u8]) {
        script.push((slot << 3) | (u8::from(server) << 5));
        script.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        script.extend_from_slice(bytes);
    }

    #[test]
    fn random_http_scripts_keep_every_invariant() {
        let mut rng = Rng(1234);
        let mut scripts = Vec::new();
        // Scripts of real messages cut at random places, with gaps,
        // endings, repeats and time passing, plus pure noise.
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
                let slot = (rng.next() % 4) as u8;
                let server = rng.next().is_multiple_of(2);
                let m = if server { msgs[2 + (rng.next() as usize) % 4] } else { msgs[(rng.next() as usize) % 2] };
                let cut = 1 + (rng.next() as usize) % m.len();
                match rng.next() % 8 {
                    0..=2 => data_op(&mut script, slot, server, &m[..cut]),
                    3 => {
                        script.push(1 | (slot << 3) | (u8::from(server) << 5));
                        script.extend_from_slice(&((rng.next() % 8) as u16).to_be_bytes());
                        script.push(cut as u8);
                        script.extend_from_slice(&m[..cut]);
                    }
                    4 => {
                        script.push(2 | (slot << 3) | (u8::from(server) << 5));
                        script.push((rng.next() % 8) as u8);
                        script.extend_from_slice(&(m.len() as u16).to_be_bytes());
                        script.extend_from_slice(m);
                    }
                    5 => {
                        script.push(3 | (slot << 3) | (u8::from(server) << 5));
                        script.extend_from_slice(&((rng.next() % 40) as u16).to_be_bytes());
                    }
                    6 => script.extend_from_slice(&[6, rng.next() as u8]),
                    _ => script.extend_from_slice(&[(4 + (rng.next() % 2) as u8) | (slot << 3), rng.next() as u8]),
                }
            }
            if round % 5 == 0 {
                for b in script.iter_mut().skip(1) {
                    if rng.next().is_multiple_of(10) {
                        *b ^= rng.next() as u8;
                    }
                }
            }
            scripts.push(script);
        }
        // Mutated repeat counts make chunks of a megabyte of messages;
        // 64 KiB keep this test short (the fuzz target goes further).
        for s in &scripts {
            check_http_upto(s, 64 << 10);
        }
    }

    /// The repeat operation reaches long chunks from a short script, and
    /// the script's counters say what was delivered.
    #[test]
    fn scripts_reach_long_chunks() {
        struct Longest(usize, u64);
        impl StreamSink for Longest {
            fn on_data(&mut self, c: &DataChunk<'_>) {
                self.0 = self.0.max(c.bytes.len());
                self.1 += c.bytes.len() as u64;
            }
        }
        let msg = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut script = vec![0, 1];
        script.extend_from_slice(&3999u16.to_be_bytes());
        script.push(msg.len() as u8);
        script.extend_from_slice(msg);
        let mut sink = Longest(0, 0);
        let run = run_http_script(&script, &mut sink);
        assert_eq!(sink.0, 4000 * msg.len());
        assert_eq!((run.bytes, sink.1, run.connections), (4000 * msg.len() as u64, 4000 * msg.len() as u64, 1));
        // Pipelined requests with no answer: every one becomes a transaction.
        let mut a = crate::http::HttpAnalyzer::new(script_http_config(&script), Vec::new());
        run_http_script(&script, &mut a);
        let (txs, stats) = a.finish();
        assert_eq!(stats.transactions, txs.len() as u64);
        assert!(txs.len() >= 1000, "{} transactions", txs.len());
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
