//! One HTTP/2 connection: the frame reader of each direction, header
//! block assembly and decoding, and the streams.

use std::collections::BTreeMap;

use crate::frame::{self, FrameHeader, FrameType, HEADER_LEN, PREFACE, error_code, settings};
use crate::hpack::{Decoder, ENTRY_OVERHEAD};
use crate::tx::{Anomaly, Body, FrameSpan, H2Transaction, HeaderList, Outcome, Reset, Side};
use crate::{H2Config, H2Stats};

/// Bytes of one direction, in stream order, as a TCP reassembler hands
/// them on (pov-capture's `DataChunk` maps onto it field by field).
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Capture time (ns) of the first segment that carried them.
    pub first_ts: i64,
    /// Capture time (ns) of the last segment that carried them.
    pub last_ts: i64,
    /// Capture frame of the first segment.
    pub first_frame: u64,
    /// Capture frame of the last segment.
    pub last_frame: u64,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseHow {
    /// FIN (an orderly close).
    Fin,
    /// A TCP RST, sent by this side.
    Rst(Side),
    /// The reassembler forgot the idle connection.
    Timeout,
    /// The capture ended first.
    EndOfCapture,
}

/// How the connection became HTTP/2; the caller decides (it knows the
/// ports, the ALPN of the TLS handshake, or the HTTP/1 upgrade).
#[derive(Clone, Debug)]
pub enum Start {
    /// The client speaks first with the connection preface: h2c with
    /// prior knowledge, or h2 after TLS ALPN "h2". Client bytes from the
    /// first one, server bytes from the first one.
    Preface,
    /// h2c by `Upgrade: h2c` (RFC 7540 3.2): the HTTP/1.1 request that
    /// asked for it is stream 1 and its response comes as HTTP/2. Client
    /// bytes from the first one after that request (the preface), server
    /// bytes from the first one after the 101 response's head.
    Upgraded(Box<UpgradeRequest>),
}

/// The HTTP/1.1 request that switched a connection to h2c, as the HTTP/1
/// parser saw it.
#[derive(Clone, Debug, Default)]
pub struct UpgradeRequest {
    /// Method.
    pub method: String,
    /// Request target (becomes `:path`).
    pub path: Vec<u8>,
    /// Host header (becomes `:authority`).
    pub authority: Option<String>,
    /// Header fields (Upgrade, HTTP2-Settings and Connection included).
    pub headers: HeaderList,
    /// Body octets.
    pub body_bytes: u64,
    /// Capture time of its first byte.
    pub req_start: i64,
    /// Capture time of its last byte.
    pub req_end: i64,
    /// Its frames.
    pub frames: Option<FrameSpan>,
}

/// Why a direction's header blocks are no longer decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Desync {
    /// The capture lost bytes of a header block (or frame boundaries).
    Gap,
    /// A block the capture has whole did not decode.
    Malformed,
}

/// Where a direction's reader is.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// Inside the client preface, `have` octets read.
    Preface { have: usize },
    /// Inside a frame header.
    Header { have: usize },
    /// Inside a frame's payload, `at` octets read.
    Payload { h: FrameHeader, at: u32, damaged: bool },
    /// Frame boundaries lost: nothing more is read in this direction.
    Lost,
    /// The client did not send the preface: not HTTP/2.
    NotH2,
}

/// What kind of header block is being assembled.
#[derive(Clone, Copy, Debug)]
enum BlockKind {
    Headers { end_stream: bool },
    Push { promised: u32 },
}

/// Per-direction reader state.
struct Dir {
    read: Read,
    hdr: [u8; HEADER_LEN],
    /// Payload of a non-DATA frame (reused).
    buf: Vec<u8>,
    /// Header block being assembled (reused).
    block: Vec<u8>,
    block_kind: BlockKind,
    block_stream: u32,
    block_open: bool,
    block_damaged: bool,
    block_start: (i64, u64),
    /// DATA pad length once read (`None` before, or when it was lost).
    pad: Option<u8>,
    pad_lost: bool,
    /// Capture time and frame of the current frame's first octet.
    frame_start: (i64, u64),
    /// The most recent chunk's last time and frame.
    now: (i64, u64),
    hpack: Decoder,
    desync: Option<Desync>,
    /// SETTINGS_MAX_FRAME_SIZE this side announced (frames sent to it).
    max_frame: u32,
}

impl Dir {
    fn new(cfg: &H2Config, read: Read) -> Dir {
        Dir {
            read,
            hdr: [0; HEADER_LEN],
            buf: Vec::new(),
            block: Vec::new(),
            block_kind: BlockKind::Headers { end_stream: false },
            block_stream: 0,
            block_open: false,
            block_damaged: false,
            block_start: (0, 0),
            pad: None,
            pad_lost: false,
            frame_start: (0, 0),
            now: (0, 0),
            hpack: Decoder::new(cfg.max_table_size),
            desync: None,
            max_frame: 16_384,
        }
    }
}

/// A stream being followed.
#[derive(Default)]
struct Stream {
    tx: H2Transaction,
    req_done: bool,
    resp_started: bool,
    resp_done: bool,
    /// Bytes are missing or its header block was not decoded: the outcome
    /// is `CaptureGap` whatever else happens.
    gap: bool,
    malformed: bool,
    /// Opened above the server's GOAWAY last-stream-id.
    refused: bool,
    /// Body octets to keep per side, as the keep rule said from the
    /// message's header fields (`None`: `body_keep_bytes`).
    keep: [Option<usize>; 2],
}

/// Pseudo-header fields and regular fields of one decoded block.
#[derive(Default)]
struct Decoded {
    method: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    path: Option<Vec<u8>>,
    status: Option<u16>,
    fields: HeaderList,
    size: usize,
    too_large: bool,
}

/// One HTTP/2 connection. Feed it each direction's bytes in stream order
/// ([`H2Conn::data`]), the gaps ([`H2Conn::gap`]) and the end
/// ([`H2Conn::close`]); take finished streams with [`H2Conn::take`].
pub struct H2Conn {
    cfg: H2Config,
    dirs: [Dir; 2],
    streams: BTreeMap<u32, Stream>,
    done: Vec<H2Transaction>,
    /// Highest stream id each side has opened.
    last_opened: [u32; 2],
    /// Last-stream-id of the GOAWAY each side sent.
    goaway: [Option<(u32, u32)>; 2],
    stats: H2Stats,
    /// Streams opened and finished so far (the set of open streams has
    /// changed when this has).
    changes: u64,
    closed: bool,
}

impl H2Conn {
    /// A connection that starts as `start` says.
    pub fn new(cfg: H2Config, start: Start) -> H2Conn {
        let mut c = H2Conn {
            dirs: [Dir::new(&cfg, Read::Preface { have: 0 }), Dir::new(&cfg, Read::Header { have: 0 })],
            cfg,
            streams: BTreeMap::new(),
            done: Vec::new(),
            last_opened: [0; 2],
            goaway: [None; 2],
            stats: H2Stats { connections: 1, ..H2Stats::default() },
            changes: 0,
            closed: false,
        };
        if let Start::Upgraded(req) = start {
            c.stats.upgrades += 1;
            c.open_upgraded(*req);
        }
        c
    }

    /// Counters of this connection.
    pub fn stats(&self) -> &H2Stats {
        &self.stats
    }

    /// `Some(false)` once the client's first bytes turned out not to be the
    /// connection preface (nothing more is parsed; the caller may hand the
    /// connection to its HTTP/1 parser), `Some(true)` once they were, `None`
    /// before 24 octets came.
    pub fn is_h2(&self) -> Option<bool> {
        match self.dirs[0].read {
            Read::NotH2 => Some(false),
            Read::Preface { .. } => None,
            _ => Some(true),
        }
    }

    /// The HPACK decoder of the header blocks `side` sends (its table).
    pub fn hpack(&self, side: Side) -> &Decoder {
        &self.dirs[side.index()].hpack
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Streams opened and finished so far: when it has not moved, the
    /// open streams are the same.
    pub fn stream_changes(&self) -> u64 {
        self.changes
    }

    /// When each open stream began, in nanoseconds (its request's first
    /// byte, or its response's when the request is not in the capture;
    /// `None` while neither has come), in no particular order.
    pub fn open_starts(&self) -> impl Iterator<Item = Option<i64>> + '_ {
        self.streams.values().map(|s| s.tx.timing.req_start.or(s.tx.timing.resp_start))
    }

    /// Takes the streams finished so far, in the order they finished.
    pub fn take(&mut self) -> Vec<H2Transaction> {
        std::mem::take(&mut self.done)
    }

    /// Bytes of `side`, in stream order.
    pub fn data(&mut self, side: Side, chunk: &Chunk<'_>) {
        if self.closed {
            return;
        }
        let d = side.index();
        self.dirs[d].now = (chunk.last_ts, chunk.last_frame);
        let mut rest = chunk.bytes;
        let start = (chunk.first_ts, chunk.first_frame);
        while !rest.is_empty() {
            match self.dirs[d].read {
                Read::Lost | Read::NotH2 => {
                    if matches!(self.dirs[d].read, Read::Lost) {
                        self.stats.unparsed_bytes += rest.len() as u64;
                    }
                    return;
                }
                Read::Preface { have } => {
                    let n = (PREFACE.len() - have).min(rest.len());
                    if rest[..n] != PREFACE[have..have + n] {
                        self.stats.not_h2 += 1;
                        self.dirs[d].read = Read::NotH2;
                        return;
                    }
                    rest = &rest[n..];
                    self.dirs[d].read = if have + n == PREFACE.len() {
                        Read::Header { have: 0 }
                    } else {
                        Read::Preface { have: have + n }
                    };
                }
                Read::Header { have } => {
                    if have == 0 {
                        self.dirs[d].frame_start = start;
                    }
                    let n = (HEADER_LEN - have).min(rest.len());
                    self.dirs[d].hdr[have..have + n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if have + n < HEADER_LEN {
                        self.dirs[d].read = Read::Header { have: have + n };
                        continue;
                    }
                    let h = FrameHeader::parse(&self.dirs[d].hdr);
                    self.begin_frame(side, h);
                }
                Read::Payload { h, at, damaged } => {
                    let n = ((h.len - at) as usize).min(rest.len());
                    let (piece, after) = rest.split_at(n);
                    rest = after;
                    if h.kind == FrameType::Data {
                        self.data_payload(side, &h, at, Some(piece), n as u32);
                    } else if !damaged && self.dirs[d].buf.len() < self.cfg.max_frame_buffer {
                        self.dirs[d].buf.extend_from_slice(piece);
                    }
                    let at = at + n as u32;
                    self.dirs[d].read = Read::Payload { h, at, damaged };
                    if at == h.len {
                        self.end_frame(side);
                    }
                }
            }
        }
    }

    /// `len` bytes of `side` missing from the capture, at capture time `ts`.
    pub fn gap(&mut self, side: Side, len: u64, ts: i64) {
        if self.closed || len == 0 {
            return;
        }
        let d = side.index();
        self.dirs[d].now.0 = self.dirs[d].now.0.max(ts);
        self.stats.gaps += 1;
        match self.dirs[d].read {
            Read::NotH2 => {}
            Read::Lost => self.stats.unparsed_bytes += len,
            Read::Preface { have } if (PREFACE.len() - have) as u64 >= len => {
                // The preface has a fixed length: its boundaries survive.
                let have = have + len as usize;
                self.dirs[d].read =
                    if have == PREFACE.len() { Read::Header { have: 0 } } else { Read::Preface { have } };
            }
            Read::Payload { h, at, .. } if u64::from(h.len - at) >= len => {
                // Inside one frame: its end is still known.
                let n = len as u32;
                if h.kind == FrameType::Data {
                    self.data_payload(side, &h, at, None, n);
                } else {
                    self.damage_frame(side, &h, n);
                }
                let at = at + n;
                self.dirs[d].read = Read::Payload { h, at, damaged: h.kind != FrameType::Data };
                if at == h.len {
                    self.end_frame(side);
                }
            }
            prior => {
                // Frame boundaries are lost: nothing after can be placed.
                self.stats.lost_directions += 1;
                self.stats.unparsed_bytes += len;
                self.dirs[d].read = Read::Lost;
                if let Read::Payload { h, .. } = prior {
                    self.damage_frame(side, &h, 0);
                }
                self.desync(side, Desync::Gap);
                self.dirs[d].block_open = false;
                let ids: Vec<u32> = self.streams.keys().copied().collect();
                for id in ids {
                    self.mark_gap(id, side, 0);
                }
            }
        }
    }

    /// The connection ended: every stream still open finishes.
    pub fn close(&mut self, how: CloseHow, ts: i64) {
        if self.closed {
            return;
        }
        self.closed = true;
        for side in [Side::Client, Side::Server] {
            let d = side.index();
            let incomplete = match self.dirs[d].read {
                Read::Header { have } => have > 0,
                Read::Payload { .. } | Read::Preface { have: 1.. } => true,
                _ => false,
            };
            if incomplete {
                self.stats.truncated_frames += 1;
            }
            if self.dirs[d].block_open {
                let id = self.dirs[d].block_stream;
                if let Some(s) = self.streams.get_mut(&id) {
                    s.gap = true;
                }
            }
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            let Some(s) = self.streams.get_mut(&id) else { continue };
            let outcome = match how {
                _ if s.resp_done => Outcome::Complete,
                CloseHow::EndOfCapture | CloseHow::Timeout => {
                    s.tx.note(Anomaly::CaptureEnded);
                    Outcome::CaptureGap
                }
                CloseHow::Rst(Side::Client) => Outcome::ClientAbort,
                CloseHow::Rst(Side::Server) => Outcome::ServerReset,
                CloseHow::Fin if s.resp_started => Outcome::Truncated,
                CloseHow::Fin => Outcome::NoResponse,
            };
            self.finish(id, outcome, ts);
        }
    }

    // ---- frames ----

    /// A frame header was read: checks it and sets up its payload.
    fn begin_frame(&mut self, side: Side, h: FrameHeader) {
        let d = side.index();
        self.stats.frames[h.kind.index()] += 1;
        if h.len > self.dirs[side.other().index()].max_frame {
            self.stats.frames_over_max_frame_size += 1;
        }
        // A header block must go on in CONTINUATION frames of its stream
        // with nothing in between (RFC 9113 6.10).
        if self.dirs[d].block_open && (h.kind != FrameType::Continuation || h.stream != self.dirs[d].block_stream) {
            self.stats.continuation_errors += 1;
            self.dirs[d].block_open = false;
            let id = self.dirs[d].block_stream;
            self.desync(side, Desync::Malformed);
            if let Some(s) = self.streams.get_mut(&id) {
                s.malformed = true;
            }
        }
        if h.kind == FrameType::Headers && h.stream != 0 {
            // The stream opens with its HEADERS frame, so that a block
            // lost, too large or broken before its end still leaves a
            // transaction.
            let _ = self.stream_for_frame(side, h.stream, true);
        }
        let mut damaged = false;
        if h.kind != FrameType::Data && h.len as usize > self.cfg.max_frame_buffer {
            // Never buffered: skipped and counted.
            self.stats.oversized_frames += 1;
            damaged = true;
            if h.kind.has_header_block() {
                self.dirs[d].block_damaged = true;
                self.mark_block_too_large(side, &h);
            }
        }
        self.dirs[d].buf.clear();
        self.dirs[d].pad = None;
        self.dirs[d].pad_lost = false;
        self.dirs[d].read = Read::Payload { h, at: 0, damaged };
        if h.kind == FrameType::Data {
            self.data_start(side, &h);
        }
        if h.len == 0 {
            self.end_frame(side);
        }
    }

    /// A header block frame too large to buffer: the block is lost.
    fn mark_block_too_large(&mut self, side: Side, h: &FrameHeader) {
        self.desync(side, Desync::Gap);
        let id = if h.kind == FrameType::Continuation { self.dirs[side.index()].block_stream } else { h.stream };
        if let Some(s) = self.streams.get_mut(&id) {
            s.tx.note(Anomaly::HeaderBlockTooLarge);
        }
    }

    /// `n` octets of a non-DATA frame are missing from the capture.
    fn damage_frame(&mut self, side: Side, h: &FrameHeader, n: u32) {
        let d = side.index();
        match h.kind {
            FrameType::Headers | FrameType::Continuation => {
                self.dirs[d].block_damaged = true;
                self.desync(side, Desync::Gap);
                let id = if h.kind == FrameType::Continuation { self.dirs[d].block_stream } else { h.stream };
                self.mark_gap(id, side, u64::from(n));
            }
            FrameType::PushPromise => {
                // The promised stream is lost with the promise; the parent
                // stream's own bytes are not.
                self.dirs[d].block_damaged = true;
                self.desync(side, Desync::Gap);
            }
            FrameType::RstStream => self.mark_gap(h.stream, side, 0),
            FrameType::Settings => self.stats.settings_lost += 1,
            FrameType::Goaway => self.stats.goaway_lost += 1,
            _ => {}
        }
    }

    /// A whole frame was read (payload in `buf` unless DATA or damaged).
    fn end_frame(&mut self, side: Side) {
        let d = side.index();
        let Read::Payload { h, damaged, .. } = self.dirs[d].read else { return };
        self.dirs[d].read = Read::Header { have: 0 };
        let ts = self.dirs[d].now;
        let payload = std::mem::take(&mut self.dirs[d].buf);
        match h.kind {
            FrameType::Data if h.has(frame::END_STREAM) => self.end_side(h.stream, side, ts),
            FrameType::Headers | FrameType::PushPromise => {
                self.header_frame(side, &h, &payload, damaged);
            }
            FrameType::Continuation => {
                if !self.dirs[d].block_open && !self.dirs[d].block_damaged {
                    self.stats.continuation_errors += 1;
                } else {
                    self.append_block(side, &payload, damaged);
                    if h.has(frame::END_HEADERS) {
                        self.end_block(side);
                    }
                }
            }
            FrameType::RstStream if !damaged => {
                if payload.len() == 4 && h.stream != 0 {
                    let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    self.reset(h.stream, side, code, ts.0);
                } else {
                    self.stats.bad_frames += 1;
                }
            }
            FrameType::Settings if !damaged && !h.has(frame::ACK) => match frame::parse_settings(&payload) {
                Some(list) => {
                    let list: Vec<(u16, u32)> = list.collect();
                    self.apply_settings(side, &list);
                }
                None => self.stats.bad_frames += 1,
            },
            FrameType::Goaway if !damaged => {
                if payload.len() >= 8 {
                    let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                    self.goaway(side, last, code, ts.0);
                } else {
                    self.stats.bad_frames += 1;
                }
            }
            FrameType::Unknown(_) => self.stats.unknown_frames += 1,
            _ => {}
        }
        // Keep the buffer's capacity for the next frame.
        self.dirs[d].buf = payload;
        self.dirs[d].buf.clear();
    }

    /// SETTINGS sent by `side`: they bound what the other side sends.
    fn apply_settings(&mut self, side: Side, list: &[(u16, u32)]) {
        let other = side.other().index();
        for &(id, v) in list {
            match id {
                settings::HEADER_TABLE_SIZE => self.dirs[other].hpack.set_setting(v as usize),
                settings::MAX_FRAME_SIZE => self.dirs[side.index()].max_frame = v,
                _ => {}
            }
        }
    }

    // ---- DATA ----

    fn data_start(&mut self, side: Side, h: &FrameHeader) {
        if h.stream == 0 {
            self.stats.bad_frames += 1;
            return;
        }
        if let Some(s) = self.stream_for_frame(side, h.stream, side == Side::Server) {
            let body = body_of(s, side);
            body.frames += 1;
        }
    }

    /// DATA payload octets `[at, at + n)`: `bytes` when captured, `None`
    /// when lost.
    fn data_payload(&mut self, side: Side, h: &FrameHeader, at: u32, bytes: Option<&[u8]>, n: u32) {
        let d = side.index();
        let padded = h.has(frame::PADDED);
        let mut off = 0u32;
        if padded && at == 0 && n > 0 {
            match bytes {
                Some(b) => {
                    let pad = b[0];
                    if u32::from(pad) + 1 > h.len {
                        self.stats.bad_padding += 1;
                        if let Some(s) = self.streams.get_mut(&h.stream) {
                            s.tx.note(Anomaly::BadPadding);
                            s.malformed = true;
                        }
                        self.dirs[d].pad = Some((h.len - 1) as u8);
                    } else {
                        self.dirs[d].pad = Some(pad);
                    }
                }
                None => self.dirs[d].pad_lost = true,
            }
            off = 1;
        }
        // The data region of the payload.
        let start = u32::from(padded);
        let end = if padded && !self.dirs[d].pad_lost {
            h.len.saturating_sub(u32::from(self.dirs[d].pad.unwrap_or(0)))
        } else {
            h.len
        };
        let lo = (at + off).max(start);
        let hi = (at + n).min(end);
        if hi <= lo {
            // Only padding (or the pad length): lost padding is no loss of
            // content.
            return;
        }
        let count = u64::from(hi - lo);
        let Some(s) = self.streams.get_mut(&h.stream) else {
            if bytes.is_none() {
                self.stats.lost_body_bytes += count;
            }
            return;
        };
        let keep_cap = s.keep[d].unwrap_or(self.cfg.body_keep_bytes);
        let body = body_of(s, side);
        body.wire_bytes += count;
        match bytes {
            Some(b) => {
                if body.kept.len() < keep_cap {
                    let piece = &b[(lo - at) as usize..(hi - at) as usize];
                    let room = keep_cap - body.kept.len();
                    body.kept.extend_from_slice(&piece[..piece.len().min(room)]);
                }
            }
            None => {
                body.lost_bytes += count;
                s.tx.missing_bytes += count;
                s.gap = true;
                s.tx.note(if side == Side::Client { Anomaly::RequestGap } else { Anomaly::ResponseGap });
                self.stats.lost_body_bytes += count;
            }
        }
    }

    // ---- header blocks ----

    /// A HEADERS or PUSH_PROMISE frame: strips padding and priority, opens
    /// the block.
    fn header_frame(&mut self, side: Side, h: &FrameHeader, payload: &[u8], damaged: bool) {
        let d = side.index();
        if h.stream == 0 {
            self.stats.bad_frames += 1;
            return;
        }
        if h.kind == FrameType::PushPromise && side == Side::Client {
            self.stats.bad_frames += 1;
            return;
        }
        self.dirs[d].block_stream = h.stream;
        self.dirs[d].block_open = true;
        self.dirs[d].block_start = self.dirs[d].frame_start;
        self.dirs[d].block.clear();
        let mut fragment: &[u8] = &[];
        let mut kind = BlockKind::Headers { end_stream: h.has(frame::END_STREAM) };
        if damaged && h.kind == FrameType::PushPromise {
            kind = BlockKind::Push { promised: 0 };
        }
        if !damaged {
            let mut p = payload;
            let mut pad = 0usize;
            if h.has(frame::PADDED) {
                pad = p.first().copied().unwrap_or(0) as usize;
                p = p.get(1..).unwrap_or(&[]);
            }
            if h.kind == FrameType::Headers && h.has(frame::PRIORITY) {
                p = p.get(5..).unwrap_or(&[]);
            }
            if h.kind == FrameType::PushPromise {
                match p.get(..4) {
                    Some(b) => {
                        let promised = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
                        kind = BlockKind::Push { promised };
                        p = &p[4..];
                    }
                    None => p = &[],
                }
            }
            if pad > p.len() {
                self.stats.bad_padding += 1;
                self.dirs[d].block_open = false;
                self.desync(side, Desync::Malformed);
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    s.tx.note(Anomaly::BadPadding);
                    s.malformed = true;
                }
                return;
            }
            fragment = &p[..p.len() - pad];
        }
        self.dirs[d].block_kind = kind;
        self.dirs[d].block_damaged = damaged;
        self.append_block(side, fragment, damaged);
        if h.has(frame::END_HEADERS) {
            self.end_block(side);
        }
    }

    fn append_block(&mut self, side: Side, fragment: &[u8], damaged: bool) {
        let d = side.index();
        if damaged {
            self.dirs[d].block_damaged = true;
            return;
        }
        if self.dirs[d].block.len() + fragment.len() > self.cfg.max_header_block {
            if !self.dirs[d].block_damaged {
                self.stats.header_blocks_too_large += 1;
                let id = self.dirs[d].block_stream;
                self.desync(side, Desync::Gap);
                if let Some(s) = self.streams.get_mut(&id) {
                    s.tx.note(Anomaly::HeaderBlockTooLarge);
                }
            }
            self.dirs[d].block_damaged = true;
            return;
        }
        self.dirs[d].block.extend_from_slice(fragment);
    }

    /// END_HEADERS: decodes the block (unless the direction's table is
    /// lost) and applies it to its stream.
    fn end_block(&mut self, side: Side) {
        let d = side.index();
        self.dirs[d].block_open = false;
        let id = self.dirs[d].block_stream;
        let kind = self.dirs[d].block_kind;
        let start = self.dirs[d].block_start;
        let end = self.dirs[d].now;
        self.stats.header_blocks += 1;
        let mut dec = Decoded::default();
        let mut failed = None;
        if self.dirs[d].block_damaged {
            self.dirs[d].block_damaged = false;
            failed = Some(Desync::Gap);
        } else if let Some(why) = self.dirs[d].desync {
            failed = Some(why);
        } else {
            let cap = self.cfg.max_header_list;
            let dir = &mut self.dirs[d];
            let res = dir.hpack.decode(&dir.block, |n, v, _| {
                dec.size += n.len() + v.len() + ENTRY_OVERHEAD;
                if dec.size > cap {
                    dec.too_large = true;
                    return;
                }
                take_field(&mut dec, n, v);
            });
            match res {
                Ok(info) => {
                    if info.size_update_over_setting {
                        self.stats.table_size_over_setting += 1;
                    }
                }
                Err(_) => {
                    self.stats.hpack_errors += 1;
                    failed = Some(Desync::Malformed);
                    self.desync(side, Desync::Malformed);
                }
            }
        }
        if dec.too_large {
            self.stats.header_lists_too_large += 1;
        }
        match (side, kind) {
            (Side::Server, BlockKind::Push { promised }) => self.push_promise(id, promised, dec, failed, start, end),
            (_, BlockKind::Headers { end_stream }) => {
                self.headers(side, id, dec, failed, end_stream, start, end);
            }
            (Side::Client, BlockKind::Push { .. }) => {}
        }
    }

    /// A decoded (or undecodable) HEADERS block of `side` on stream `id`.
    #[allow(clippy::too_many_arguments)]
    fn headers(
        &mut self,
        side: Side,
        id: u32,
        dec: Decoded,
        failed: Option<Desync>,
        end_stream: bool,
        start: (i64, u64),
        end: (i64, u64),
    ) {
        // The caller's rule for the body that follows (applied below when
        // this block starts the message, not for trailers).
        let keep = match (&self.cfg.keep_rule, failed) {
            (Some(rule), None) => Some((rule.0)(side, &dec.fields).min(self.cfg.body_keep_bytes)),
            _ => None,
        };
        let Some(s) = self.stream_for_frame(side, id, true) else { return };
        if let Some(why) = failed {
            s.tx.note(Anomaly::HpackDesync);
            match why {
                Desync::Gap => s.gap = true,
                Desync::Malformed => s.malformed = true,
            }
        }
        if dec.too_large {
            s.tx.note(Anomaly::HeaderListTooLarge);
        }
        match side {
            Side::Client => {
                if s.tx.timing.req_start.is_some() {
                    // A second block from the client: trailers.
                    s.tx.note(Anomaly::Trailers);
                    s.tx.request_trailers = dec.fields;
                } else {
                    s.tx.timing.req_start = Some(start.0);
                    s.tx.req_frames = Some(FrameSpan { first: start.1, last: end.1 });
                    s.keep[side.index()] = keep;
                    if failed.is_none() {
                        s.tx.has_request = true;
                        s.tx.method = dec.method;
                        s.tx.scheme = dec.scheme;
                        s.tx.path = dec.path;
                        s.tx.authority = dec.authority.or_else(|| dec.fields.get("host").map(lossy));
                        s.tx.request_headers = dec.fields;
                    }
                }
            }
            Side::Server => {
                let interim = dec.status.is_some_and(|st| (100..200).contains(&st));
                if interim {
                    s.tx.note(Anomaly::Interim);
                    s.tx.interim.extend(dec.status);
                } else if s.resp_started {
                    s.tx.note(Anomaly::Trailers);
                    s.tx.response_trailers = dec.fields;
                } else {
                    s.resp_started = true;
                    s.tx.timing.resp_start = Some(start.0);
                    s.keep[side.index()] = keep;
                    if failed.is_none() {
                        s.tx.has_response = true;
                        s.tx.status = dec.status;
                        s.tx.response_headers = dec.fields;
                        if dec.status.is_none() {
                            s.malformed = true;
                        }
                    }
                }
                let span = s.tx.resp_frames.get_or_insert(FrameSpan { first: start.1, last: end.1 });
                span.last = end.1;
            }
        }
        if end_stream {
            self.end_side(id, side, end);
        }
        if self.streams.get(&id).is_some_and(|s| s.refused) {
            self.finish(id, Outcome::RefusedByGoaway, end.0);
        }
    }

    /// A PUSH_PROMISE on stream `parent` announcing stream `promised`: a
    /// new transaction whose request is the promise.
    fn push_promise(
        &mut self,
        parent: u32,
        promised: u32,
        dec: Decoded,
        failed: Option<Desync>,
        start: (i64, u64),
        end: (i64, u64),
    ) {
        if promised == 0 && failed.is_some() {
            self.stats.pushes_lost += 1;
            return;
        }
        if promised == 0 || promised % 2 == 1 || promised <= self.last_opened[1] {
            self.stats.bad_frames += 1;
            return;
        }
        self.last_opened[1] = promised;
        self.stats.pushes += 1;
        let mut s = Stream { req_done: true, ..Stream::default() };
        s.tx.stream = promised;
        s.tx.pushed_by = Some(parent);
        s.tx.note(Anomaly::Pushed);
        s.tx.timing.req_start = Some(start.0);
        s.tx.timing.req_end = Some(end.0);
        s.tx.req_frames = Some(FrameSpan { first: start.1, last: end.1 });
        match failed {
            Some(why) => {
                s.tx.note(Anomaly::HpackDesync);
                s.gap = why == Desync::Gap;
                s.malformed = why == Desync::Malformed;
            }
            None => {
                s.tx.has_request = true;
                s.tx.method = dec.method;
                s.tx.scheme = dec.scheme;
                s.tx.path = dec.path;
                s.tx.authority = dec.authority;
                s.tx.request_headers = dec.fields;
            }
        }
        self.insert_stream(promised, s);
    }
}

/// The body `side` sends on stream `s`.
fn body_of(s: &mut Stream, side: Side) -> &mut Body {
    match side {
        Side::Client => &mut s.tx.request_body,
        Side::Server => &mut s.tx.response_body,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Sorts a decoded field into pseudo-headers and regular fields.
fn take_field(dec: &mut Decoded, n: &[u8], v: &[u8]) {
    match n {
        b":method" => dec.method = Some(lossy(v)),
        b":scheme" => dec.scheme = Some(lossy(v)),
        b":authority" => dec.authority = Some(lossy(v)),
        b":path" => dec.path = Some(v.to_vec()),
        b":status" => dec.status = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
        _ => dec.fields.push(n, v),
    }
}

mod streams;
#[cfg(test)]
mod tests;
