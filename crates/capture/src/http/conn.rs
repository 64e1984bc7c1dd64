//! One connection's HTTP state: a parser per direction and the queue of
//! requests waiting for their responses.

use std::collections::VecDeque;

use super::body::{self, BodyDecoder, BodyInfo, ContentEncoding, DecodeStop};
use super::{
    Anomaly, FrameSpan, Headers, HttpConfig, HttpStats, HttpTransaction, Outcome, RequestHead, ResponseHead, TxTiming,
};
use crate::tcp::{Close, CloseHow, ConnMeta, DataChunk, Direction, Gap, HalfClose, RoleSource};
use crate::time::Ts;

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes.
    Close,
}

/// Where the chunked decoder is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    /// Inside chunk data: bytes left.
    Data(u64),
    /// After chunk data: reading its CRLF (bytes of the line so far).
    DataEnd(Vec<u8>),
    /// Reading trailer lines after the last chunk (current line).
    Trailer(Vec<u8>),
}

/// A message body being received.
struct Body {
    framing: Framing,
    chunk: Chunk,
    decoder: BodyDecoder,
}

/// State of one direction's parser.
enum St {
    /// Between messages.
    Idle,
    /// Receiving a head.
    Head,
    /// Receiving a body.
    Body(Box<Body>),
    /// Lost track (after a gap or garbage): looking for the next message.
    Resync,
    /// Not HTTP (any more): bytes are ignored.
    Off,
}

/// One direction.
struct Side {
    st: St,
    /// Head bytes so far (or, resynchronising, the bytes being scanned).
    buf: Vec<u8>,
    /// Capture time and frame of the current message's first byte.
    start: Option<(Ts, u64)>,
    /// Capture time and frame of the last byte consumed.
    last: (Ts, u64),
    /// Bytes skipped while resynchronising.
    skipped: u64,
    /// Stream offset just past the chunk being parsed (every slice the
    /// parser works on ends there, so a slice `b` starts at
    /// `chunk_end - b.len()`).
    chunk_end: u64,
    /// The chunk's `peer_ack` (see [`DataChunk::peer_ack`]).
    chunk_peer_ack: Option<u64>,
    /// Stream offset and peer acknowledgment of the current message's
    /// first byte.
    msg_off: u64,
    msg_peer_ack: Option<u64>,
}

impl Side {
    fn new(st: St) -> Side {
        Side {
            st,
            buf: Vec::new(),
            start: None,
            last: (Ts(0), 0),
            skipped: 0,
            chunk_end: 0,
            chunk_peer_ack: None,
            msg_off: 0,
            msg_peer_ack: None,
        }
    }

    /// A message starts at the first byte of `b`.
    fn begin(&mut self, b: &[u8], at: (Ts, u64)) {
        self.start = Some(at);
        self.msg_off = self.chunk_end.saturating_sub(b.len() as u64);
        self.msg_peer_ack = self.chunk_peer_ack;
    }

    /// Starts looking for the next message.
    fn lose_track(&mut self) {
        self.st = St::Resync;
        self.buf.clear();
    }
}

/// A transaction not yet finished.
struct Pending {
    tx: HttpTransaction,
    req_done: bool,
    /// A final response head has been parsed.
    resp_head: bool,
    resp_done: bool,
    /// HEAD or CONNECT: decides the response framing.
    method: String,
    /// Request bytes lost to a gap just before this request: a request the
    /// capture missed, whose answer comes before this one's.
    lost_before: u64,
    /// The position in the connection reserved for that lost request.
    lost_depth: Option<u32>,
    /// How much of the server's stream the client had received when it
    /// began this request: its answer starts at or after that offset.
    peer_ack: Option<u64>,
}

/// HTTP state of one connection.
pub(super) struct ConnHttp {
    meta: ConnMeta,
    req: Side,
    resp: Side,
    pending: VecDeque<Pending>,
    next_depth: u32,
    /// The connection switched protocols or is not HTTP.
    off: bool,
    /// The client closed its side (FIN), at this time.
    client_fin: Option<Ts>,
    /// A request-side gap lost message boundaries.
    req_lost: bool,
    /// A response-side gap lost message boundaries since the last
    /// response head.
    resp_lost: bool,
    /// Nothing parsed yet on either side.
    fresh: bool,
    /// Request bytes lost between messages, not yet attributed to a
    /// transaction (a response without request takes them).
    req_gap_unclaimed: u64,
    /// A response whose head was lost, still taking the blame for bytes
    /// missing while the parser looks for the next message.
    resync_owner: Option<HttpTransaction>,
    /// The owner's request's `peer_ack`.
    resync_owner_ack: Option<u64>,
    /// Response bytes lost while no known request was waiting.
    resp_gap_unclaimed: u64,
    /// Server stream offset up to which every byte belongs to a response
    /// that was parsed (the end of the last one).
    accounted_end: u64,
    /// Client bytes held while it is not yet clear the connection is HTTP
    /// (a request line too broken to tell; the server's answer decides).
    held: Option<(Vec<u8>, (Ts, u64))>,
}

/// Methods recognised at the start of a connection even when the rest of
/// the request line is broken.
const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"CCM_POST",
];

/// Whether the first bytes of a client's stream say HTTP: `Some(true)`
/// yes, `Some(false)` unclear, `None` too few bytes to tell.
fn client_says_http(b: &[u8]) -> Option<bool> {
    if METHODS.iter().any(|m| b.len() >= m.len() && b[..m.len()].eq_ignore_ascii_case(m)) {
        return Some(true);
    }
    looks_like_request(&b[..b.len().min(25)])
}

/// True if `b` starts like a request line: an uppercase token and a space.
fn looks_like_request(b: &[u8]) -> Option<bool> {
    let n = b.iter().take_while(|c| c.is_ascii_uppercase() || **c == b'-' || **c == b'_').count();
    if n < b.len() {
        Some((3..=24).contains(&n) && b[n] == b' ')
    } else if n == b.len() && n <= 24 {
        None // undecided: need more bytes
    } else {
        Some(false)
    }
}

/// True if `b` starts like a status line.
fn looks_like_response(b: &[u8]) -> Option<bool> {
    const P: &[u8] = b"HTTP/";
    let n = b.len().min(P.len());
    if b[..n] != P[..n] {
        Some(false)
    } else if n < P.len() {
        None
    } else {
        Some(true)
    }
}

/// Finds the end of a head (after the blank line) in `buf`, searching from
/// `from`. Accepts CRLF CRLF and bare LF LF.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn headers_from(h: &[httparse::Header<'_>]) -> Headers {
    let mut out = Headers::default();
    let total: usize = h.iter().map(|h| h.name.len() + h.value.len()).sum();
    out.reserve(h.len(), total);
    for f in h {
        out.push(f.name.as_bytes(), f.value);
    }
    out
}

fn content_length(h: &Headers) -> Option<u64> {
    let v = h.get("content-length")?;
    let s = std::str::from_utf8(v).ok()?.trim();
    // A list of identical values is tolerated (RFC 9110 section 8.6).
    let first = s.split(',').next()?.trim();
    first.parse().ok()
}

fn is_chunked(h: &Headers) -> bool {
    h.get_all("transfer-encoding").any(|v| {
        let last = v.rsplit(|b| *b == b',').next().unwrap_or(v);
        String::from_utf8_lossy(last).trim().eq_ignore_ascii_case("chunked")
    })
}

/// Parses a request head. `Ok(None)`: malformed.
fn parse_request(buf: &[u8]) -> Option<RequestHead> {
    let mut n = 64;
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; n];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {
                return Some(RequestHead {
                    method: req.method.unwrap_or("").to_string(),
                    uri: req.path.unwrap_or("").as_bytes().to_vec(),
                    version: req.version,
                    headers: headers_from(req.headers),
                });
            }
            Err(httparse::Error::TooManyHeaders) if n < 4096 => n *= 4,
            _ => return None,
        }
    }
}

/// Parses a response head. `None`: malformed.
fn parse_response(buf: &[u8]) -> Option<ResponseHead> {
    let mut n = 64;
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; n];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {
                return Some(ResponseHead {
                    version: resp.version,
                    status: resp.code.unwrap_or(0),
                    reason: resp.reason.unwrap_or("").as_bytes().to_vec(),
                    headers: headers_from(resp.headers),
                });
            }
            Err(httparse::Error::TooManyHeaders) if n < 4096 => n *= 4,
            _ => return None,
        }
    }
}

/// A request line without a version (HTTP/0.9): `METHOD SP target`.
fn http09_request(line: &[u8]) -> Option<RequestHead> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sp = line.iter().position(|b| *b == b' ')?;
    let (method, rest) = (&line[..sp], &line[sp + 1..]);
    if method.is_empty() || !method.iter().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    if rest.is_empty() || rest.contains(&b' ') {
        return None;
    }
    Some(RequestHead {
        method: String::from_utf8_lossy(method).into_owned(),
        uri: rest.to_vec(),
        version: None,
        headers: Headers::default(),
    })
}

/// True if `line` (without its line end) can start a message: a request
/// line `METHOD SP target SP HTTP/1.x`, or a status line.
fn message_line(line: &[u8], request: bool) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if request {
        looks_like_request(line) == Some(true) && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
    } else {
        line.starts_with(b"HTTP/1.") && line.len() >= 12 && line[9..12].iter().all(u8::is_ascii_digit)
    }
}

/// Where, in `line` (without its line end), a message starts: a status
/// line may follow the last bytes of a body directly (no line end between),
/// and so may a request line (after a request body).
fn message_start_in(line: &[u8], request: bool) -> Option<usize> {
    if request {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if !(l.ends_with(b" HTTP/1.1") || l.ends_with(b" HTTP/1.0")) {
            return None;
        }
        if message_line(line, true) {
            return Some(0);
        }
        (1..line.len()).find(|i| {
            METHODS.iter().any(|m| line[*i..].starts_with(m) && line.get(*i + m.len()) == Some(&b' '))
                && message_line(&line[*i..], true)
        })
    } else {
        memchr::memmem::find_iter(line, b"HTTP/1.").find(|&i| message_line(&line[i..], false))
    }
}

/// Scans bytes for the start of the next message, line by line, looking at
/// each byte a bounded number of times. `side.buf` holds the last bytes
/// (at most `window`) of the current line. Returns the bytes from the
/// message start on, once its whole first line has been seen.
fn resync(side: &mut Side, b: &[u8], request: bool, window: usize, stats: &mut HttpStats) -> Option<Vec<u8>> {
    let mut pos = 0;
    while pos < b.len() {
        let rest = &b[pos..];
        let (piece, nl) = match memchr::memchr(b'\n', rest) {
            Some(nl) => (&rest[..nl], Some(nl)),
            None => (rest, None),
        };
        if side.buf.is_empty() && nl.is_some() {
            // A whole line in this chunk: look at it where it lies.
            let line = &piece[piece.len().saturating_sub(window)..];
            let cut = piece.len() - line.len();
            if let Some(start) = message_start_in(line, request) {
                let skipped = (cut + start) as u64;
                side.skipped += skipped;
                stats.resync_skipped_bytes += skipped;
                return Some(rest[cut + start..].to_vec());
            }
            let skipped = piece.len() as u64 + 1;
            side.skipped += skipped;
            stats.resync_skipped_bytes += skipped;
            pos += piece.len() + 1;
            continue;
        }
        side.buf.extend_from_slice(piece);
        if side.buf.len() > window {
            let drop = side.buf.len() - window;
            side.buf.drain(..drop);
            side.skipped += drop as u64;
            stats.resync_skipped_bytes += drop as u64;
        }
        let nl = nl?;
        if let Some(start) = message_start_in(&side.buf, request) {
            side.skipped += start as u64;
            stats.resync_skipped_bytes += start as u64;
            let mut out = side.buf.split_off(start);
            side.buf.clear();
            out.push(b'\n');
            out.extend_from_slice(&rest[nl + 1..]);
            return Some(out);
        }
        let skipped = side.buf.len() as u64 + 1;
        side.skipped += skipped;
        stats.resync_skipped_bytes += skipped;
        side.buf.clear();
        pos += nl + 1;
    }
    None
}

impl ConnHttp {
    pub(super) fn new(meta: &ConnMeta) -> ConnHttp {
        // A connection picked up mid-stream may begin inside a message:
        // both sides start by looking for one.
        let mid = !matches!(meta.roles, RoleSource::Syn | RoleSource::SynAck);
        let st = || if mid { St::Resync } else { St::Idle };
        ConnHttp {
            meta: meta.clone(),
            req: Side::new(st()),
            resp: Side::new(st()),
            pending: VecDeque::new(),
            next_depth: 1,
            off: false,
            client_fin: None,
            // Mid-stream, messages before the capture began are unknown.
            req_lost: mid,
            resp_lost: mid,
            fresh: true,
            req_gap_unclaimed: 0,
            resync_owner: None,
            resync_owner_ack: None,
            accounted_end: 0,
            resp_gap_unclaimed: 0,
            held: None,
        }
    }

    /// Start time of the earliest unfinished transaction (or request being
    /// received), for ordering.
    pub(super) fn earliest_open(&self) -> Option<Ts> {
        let p = self.pending.iter().map(|p| p.tx.timing.start()).min();
        let r = match self.req.st {
            St::Head | St::Body(_) => self.req.start.map(|s| s.0),
            _ => None,
        };
        let s = match self.resp.st {
            St::Head | St::Body(_) => self.resp.start.map(|s| s.0),
            _ => None,
        };
        [p, r, s].into_iter().flatten().min()
    }

    fn new_tx(&mut self) -> HttpTransaction {
        let depth = self.next_depth;
        self.next_depth += 1;
        HttpTransaction {
            conn: self.meta.id,
            client: self.meta.client,
            server: self.meta.server,
            depth,
            request: None,
            response: None,
            interim: Vec::new(),
            timing: TxTiming { handshake_rtt: self.meta.handshake.map(|h| h.rtt()), ..TxTiming::default() },
            req_frames: None,
            resp_frames: None,
            request_body: BodyInfo::default(),
            response_body: BodyInfo::default(),
            outcome: Outcome::Complete,
            waited: None,
            missing_bytes: 0,
            anomalies: Vec::new(),
        }
    }

    /// A connection picked up mid-stream in which no HTTP message was found
    /// in the first bytes of either side is left alone (TLS, other
    /// protocols).
    fn give_up_if_not_http(&mut self, cfg: &HttpConfig, stats: &mut HttpStats) {
        if self.fresh && self.req.skipped + self.resp.skipped > cfg.max_head_bytes as u64 {
            self.off = true;
            stats.not_http += 1;
        }
    }

    /// Bytes the client sent again: requests sent in full and not yet
    /// answered were still on their way to the server then.
    pub(super) fn retransmission(&mut self, r: &crate::tcp::Retransmission) {
        if r.dir != Direction::ClientToServer {
            return;
        }
        for p in self.pending.iter_mut() {
            if p.req_done && !p.resp_head && p.tx.timing.req_end.is_some_and(|e| e <= r.ts) {
                p.tx.timing.req_resent = Some(r.ts);
            }
        }
    }

    pub(super) fn data(&mut self, c: &DataChunk<'_>, cfg: &HttpConfig, stats: &mut HttpStats) -> Vec<HttpTransaction> {
        let mut done = Vec::new();
        if self.off {
            return done;
        }
        let at = (c.first_ts, c.first_frame);
        let side = if c.dir == Direction::ClientToServer { &mut self.req } else { &mut self.resp };
        side.chunk_end = c.offset + c.bytes.len() as u64;
        side.chunk_peer_ack = c.peer_ack;
        match c.dir {
            Direction::ClientToServer => self.req_bytes(c.bytes, at, cfg, stats, &mut done),
            Direction::ServerToClient => self.resp_bytes(c.bytes, at, cfg, stats, &mut done),
        }
        done
    }

    // ----- requests -------------------------------------------------------

    fn req_bytes(
        &mut self,
        mut b: &[u8],
        at: (Ts, u64),
        cfg: &HttpConfig,
        stats: &mut HttpStats,
        done: &mut Vec<HttpTransaction>,
    ) {
        if self.fresh && matches!(self.req.st, St::Idle) {
            // Is this HTTP? A request that says so is parsed at once; bytes
            // that do not are held until the server's first bytes decide.
            let mut bytes = match self.held.take() {
                Some((mut h, _)) => {
                    h.extend_from_slice(b);
                    h
                }
                None => b.to_vec(),
            };
            let start = bytes.iter().position(|c| *c != b'\r' && *c != b'\n').unwrap_or(bytes.len());
            match client_says_http(&bytes[start..]) {
                Some(true) => {
                    self.fresh = false;
                    let bytes = std::mem::take(&mut bytes);
                    return self.req_bytes(&bytes, at, cfg, stats, done);
                }
                _ if bytes.len() > cfg.max_head_bytes => {
                    self.off = true;
                    stats.not_http += 1;
                    return;
                }
                _ => {
                    self.held = Some((bytes, at));
                    return;
                }
            }
        }
        while !b.is_empty() && !self.off {
            match &mut self.req.st {
                St::Off => return,
                St::Idle => {
                    // Empty lines before a request are allowed (RFC 9112 2.2).
                    let skip = b.iter().take_while(|c| **c == b'\r' || **c == b'\n').count();
                    b = &b[skip..];
                    if b.is_empty() {
                        return;
                    }
                    self.req.st = St::Head;
                    self.req.buf.clear();
                    self.req.begin(b, at);
                }
                St::Head => {
                    let old = self.req.buf.len();
                    let room = cfg.max_head_bytes.saturating_sub(old).max(1);
                    let take = b.len().min(room);
                    self.req.buf.extend_from_slice(&b[..take]);
                    self.req.last = at;
                    // HTTP/0.9: a single request line without a version.
                    if let Some(eol) = self.req.buf.iter().position(|c| *c == b'\n')
                        && !self.req.buf[..eol].windows(5).any(|w| w == b"HTTP/")
                        && let Some(head) = http09_request(&self.req.buf[..eol])
                    {
                        let used = (eol + 1).saturating_sub(old).min(take);
                        b = &b[used..];
                        let mut tx = self.new_tx();
                        tx.anomalies.push(Anomaly::Http09);
                        self.request_head(tx, head, at, cfg, stats, done);
                        continue;
                    }
                    match head_end(&self.req.buf, old) {
                        Some(end) => {
                            let used = end - old;
                            b = &b[used..];
                            let head_bytes = std::mem::take(&mut self.req.buf);
                            let tx = self.new_tx();
                            match parse_request(&head_bytes[..end]) {
                                Some(head) => self.request_head(tx, head, at, cfg, stats, done),
                                None => self.malformed_request(tx, &head_bytes[..end], Anomaly::BadHead, at, done),
                            }
                        }
                        None => {
                            b = &b[take..];
                            if self.req.buf.len() >= cfg.max_head_bytes {
                                stats.heads_too_large += 1;
                                let head_bytes = std::mem::take(&mut self.req.buf);
                                let tx = self.new_tx();
                                self.malformed_request(tx, &head_bytes, Anomaly::HeadTooLarge, at, done);
                            }
                        }
                    }
                }
                St::Body(_) => {
                    let used = self.body_bytes(true, b, at);
                    b = &b[used..];
                    if self.body_finished(true) {
                        self.end_request(at, done, stats);
                    }
                }
                St::Resync => {
                    let found = resync(&mut self.req, b, true, 8192, stats);
                    b = &[];
                    match found {
                        Some(rest) => {
                            self.req.st = St::Idle;
                            self.fresh = false;
                            // Parse from the found message on.
                            self.req_bytes(&rest, at, cfg, stats, done);
                            return;
                        }
                        None => self.give_up_if_not_http(cfg, stats),
                    }
                }
            }
        }
    }

    fn malformed_request(
        &mut self,
        mut tx: HttpTransaction,
        head: &[u8],
        why: Anomaly,
        at: (Ts, u64),
        done: &mut Vec<HttpTransaction>,
    ) {
        // Keep what the request line says, for the record.
        let line = head.split(|c| *c == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let parts: Vec<&[u8]> = line.split(|c| *c == b' ').filter(|p| !p.is_empty()).collect();
        // A method only if the first word is a token; a second word that is
        // the version is not a target.
        let token =
            |w: &[u8]| !w.is_empty() && w.iter().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c));
        let method = match parts.first() {
            Some(m) if token(m) && parts.len() >= 2 => String::from_utf8_lossy(m).into_owned(),
            _ => String::new(),
        };
        let uri = match parts.get(1) {
            Some(u) if !method.is_empty() && !u.starts_with(b"HTTP/") => u.to_vec(),
            _ => Vec::new(),
        };
        // The header fields usually survive a broken request line.
        let mut headers = Headers::default();
        if !method.is_empty()
            && let Some(nl) = head.iter().position(|c| *c == b'\n')
        {
            let mut h = vec![httparse::EMPTY_HEADER; 128];
            if let Ok(httparse::Status::Complete((_, parsed))) = httparse::parse_headers(&head[nl + 1..], &mut h) {
                headers = headers_from(parsed);
            }
        }
        tx.request = Some(RequestHead { method: method.clone(), uri, version: None, headers });
        let start = self.req.start.unwrap_or(at);
        tx.timing.req_start = Some(start.0);
        tx.timing.req_end = Some(self.req.last.0);
        tx.req_frames = Some(FrameSpan { first: start.1, last: self.req.last.1 });
        tx.anomalies.push(why);
        tx.outcome = Outcome::Malformed;
        // Its response (if the server answers a bad request, it usually
        // does with 400) still pairs with it.
        self.pending.push_back(Pending {
            tx,
            req_done: true,
            resp_head: false,
            resp_done: false,
            method,
            lost_before: 0,
            lost_depth: None,
            peer_ack: self.req.msg_peer_ack,
        });
        self.req.lose_track();
        let _ = done;
    }

    fn request_head(
        &mut self,
        mut tx: HttpTransaction,
        head: RequestHead,
        at: (Ts, u64),
        cfg: &HttpConfig,
        stats: &mut HttpStats,
        done: &mut Vec<HttpTransaction>,
    ) {
        let start = self.req.start.unwrap_or(at);
        tx.timing.req_start = Some(start.0);
        tx.req_frames = Some(FrameSpan { first: start.1, last: at.1 });
        let chunked = is_chunked(&head.headers);
        let len = content_length(&head.headers);
        if chunked && len.is_some() {
            tx.anomalies.push(Anomaly::ConflictingLength);
        }
        let enc = head
            .headers
            .get("content-encoding")
            .and_then(ContentEncoding::from_header)
            .unwrap_or(ContentEncoding::Identity);
        if self.pending.iter().any(|p| !p.resp_done) {
            tx.anomalies.push(Anomaly::Pipelined);
        }
        let method = head.method.clone();
        let http09 = head.version.is_none();
        tx.request = Some(head);
        let lost_before = std::mem::take(&mut self.req_gap_unclaimed);
        let framing = if chunked { Some(Framing::Chunked) } else { len.filter(|l| *l > 0).map(Framing::Length) };
        // A request lost just before this one keeps its place in the count.
        let lost_depth = if lost_before > 0 {
            let d = tx.depth;
            tx.depth = self.next_depth;
            self.next_depth += 1;
            Some(d)
        } else {
            None
        };
        self.pending.push_back(Pending {
            tx,
            req_done: false,
            resp_head: false,
            resp_done: false,
            method,
            lost_before,
            lost_depth,
            peer_ack: self.req.msg_peer_ack,
        });
        if self.pending.len() > cfg.max_pending
            && let Some(mut old) = self.pending.pop_front()
        {
            stats.pending_overflow += 1;
            old.tx.anomalies.push(Anomaly::PendingOverflow);
            old.tx.outcome = Outcome::CaptureGap;
            done.push(old.tx);
        }
        match framing {
            Some(f) => {
                let body = Body {
                    framing: f,
                    chunk: Chunk::Size(Vec::new()),
                    decoder: BodyDecoder::new(enc, cfg.body_keep_bytes, cfg.max_decoded_bytes, cfg.max_decode_ratio),
                };
                self.req.st = St::Body(Box::new(body));
            }
            None => {
                self.req.st = St::Idle;
                self.finish_request(None, at);
                if http09 {
                    // The answer to an HTTP/0.9 request has no status line.
                    self.resp.st = St::Idle;
                }
            }
        }
        let _ = stats;
        self.try_finish(done, stats);
    }

    /// Marks the newest request complete (its body, if any, in `body`).
    fn finish_request(&mut self, body: Option<BodyInfo>, at: (Ts, u64)) {
        let last = self.req.last.max(at);
        if let Some(p) = self.pending.back_mut()
            && !p.req_done
        {
            p.req_done = true;
            p.tx.timing.req_end = Some(last.0);
            if let Some(f) = p.tx.req_frames.as_mut() {
                f.last = last.1;
            }
            if let Some(b) = body {
                if b.decode_stop.is_some() {
                    p.tx.anomalies.push(Anomaly::BodyDecode);
                }
                p.tx.request_body = b;
            }
        }
    }

    fn end_request(&mut self, at: (Ts, u64), done: &mut Vec<HttpTransaction>, stats: &mut HttpStats) {
        let st = std::mem::replace(&mut self.req.st, St::Idle);
        if let St::Body(b) = st {
            let info = b.decoder.finish();
            self.finish_request(Some(info), at);
        }
        self.try_finish(done, stats);
    }

    // ----- bodies ---------------------------------------------------------

    /// Consumes body bytes for the request (`request`) or response side;
    /// returns how many bytes of `b` belong to the body.
    fn body_bytes(&mut self, request: bool, b: &[u8], at: (Ts, u64)) -> usize {
        let side = if request { &mut self.req } else { &mut self.resp };
        side.last = at;
        let St::Body(body) = &mut side.st else { return 0 };
        match body.framing {
            Framing::Length(rem) => {
                let n = (rem.min(b.len() as u64)) as usize;
                body.decoder.push(&b[..n]);
                body.framing = Framing::Length(rem - n as u64);
                n
            }
            Framing::Close => {
                body.decoder.push(b);
                b.len()
            }
            Framing::Chunked => {
                let mut i = 0;
                while i < b.len() {
                    match &mut body.chunk {
                        Chunk::Size(line) => {
                            let c = b[i];
                            i += 1;
                            if c == b'\n' {
                                let l = std::mem::take(line);
                                let l = l.strip_suffix(b"\r").unwrap_or(&l);
                                // Chunk extensions follow a ';'.
                                let hex = l.split(|c| *c == b';').next().unwrap_or(&[]);
                                let hex = String::from_utf8_lossy(hex);
                                match u64::from_str_radix(hex.trim(), 16) {
                                    Ok(0) => body.chunk = Chunk::Trailer(Vec::new()),
                                    Ok(n) => body.chunk = Chunk::Data(n),
                                    Err(_) => {
                                        // Broken framing: end the body here.
                                        body.chunk = Chunk::Trailer(b"!bad".to_vec());
                                        return i;
                                    }
                                }
                            } else if line.len() < 1024 {
                                line.push(c);
                            } else {
                                body.chunk = Chunk::Trailer(b"!bad".to_vec());
                                return i;
                            }
                        }
                        Chunk::Data(rem) => {
                            let n = (*rem).min((b.len() - i) as u64) as usize;
                            body.decoder.push(&b[i..i + n]);
                            i += n;
                            *rem -= n as u64;
                            if *rem == 0 {
                                body.chunk = Chunk::DataEnd(Vec::new());
                            }
                        }
                        Chunk::DataEnd(seen) => {
                            let c = b[i];
                            i += 1;
                            if c == b'\n' {
                                body.chunk = Chunk::Size(Vec::new());
                            } else if c != b'\r' || !seen.is_empty() {
                                body.chunk = Chunk::Trailer(b"!bad".to_vec());
                                return i;
                            } else {
                                seen.push(c);
                            }
                        }
                        Chunk::Trailer(line) => {
                            if line.starts_with(b"!") {
                                return i;
                            }
                            let c = b[i];
                            i += 1;
                            if c == b'\n' {
                                let empty = line.is_empty() || line.as_slice() == b"\r";
                                line.clear();
                                if empty {
                                    line.extend_from_slice(b"!end");
                                    return i;
                                }
                            } else if line.len() < 8192 {
                                line.push(c);
                            }
                        }
                    }
                }
                i
            }
        }
    }

    fn body_finished(&self, request: bool) -> bool {
        let side = if request { &self.req } else { &self.resp };
        match &side.st {
            St::Body(b) => match b.framing {
                Framing::Length(rem) => rem == 0,
                Framing::Close => false,
                Framing::Chunked => matches!(&b.chunk, Chunk::Trailer(l) if l.starts_with(b"!")),
            },
            _ => false,
        }
    }

    fn chunk_broken(&self, request: bool) -> bool {
        let side = if request { &self.req } else { &self.resp };
        matches!(&side.st, St::Body(b) if matches!(&b.chunk, Chunk::Trailer(l) if l.as_slice() == b"!bad"))
    }

    // ----- responses ------------------------------------------------------

    fn resp_bytes(
        &mut self,
        mut b: &[u8],
        at: (Ts, u64),
        cfg: &HttpConfig,
        stats: &mut HttpStats,
        done: &mut Vec<HttpTransaction>,
    ) {
        while !b.is_empty() && !self.off {
            match &mut self.resp.st {
                St::Off => return,
                St::Idle => {
                    let skip = b.iter().take_while(|c| **c == b'\r' || **c == b'\n').count();
                    b = &b[skip..];
                    if b.is_empty() {
                        return;
                    }
                    // An answer without a status line: HTTP/0.9, or a server
                    // that sent only a body. It runs until the server closes.
                    if self.fresh {
                        // The server speaks first, or decides for the
                        // client's unclear first bytes.
                        if looks_like_response(&b[..b.len().min(5)]) == Some(false) && self.pending.is_empty() {
                            self.off = true;
                            stats.not_http += 1;
                            return;
                        }
                        self.fresh = false;
                        if let Some((held, held_at)) = self.held.take() {
                            self.req_bytes(&held, held_at, cfg, stats, done);
                        }
                        continue;
                    }
                    let waiting = self.pending.iter().any(|p| !p.resp_head);
                    if looks_like_response(&b[..b.len().min(5)]) == Some(false) {
                        if waiting {
                            self.http09_response(at, cfg);
                            continue;
                        }
                        // Bytes that belong to no message.
                        self.resp.lose_track();
                        continue;
                    }
                    self.fresh = false;
                    self.resp.st = St::Head;
                    self.resp.buf.clear();
                    self.resp.begin(b, at);
                }
                St::Head => {
                    let old = self.resp.buf.len();
                    let room = cfg.max_head_bytes.saturating_sub(old).max(1);
                    let take = b.len().min(room);
                    self.resp.buf.extend_from_slice(&b[..take]);
                    self.resp.last = at;
                    match head_end(&self.resp.buf, old) {
                        Some(end) => {
                            b = &b[end - old..];
                            let head_end = self.resp.chunk_end - b.len() as u64;
                            let head_bytes = std::mem::take(&mut self.resp.buf);
                            match parse_response(&head_bytes[..end]) {
                                Some(head) => {
                                    self.response_head(head, at, cfg, stats, done);
                                    self.accounted_end = head_end;
                                }
                                None => {
                                    // A broken status line: the response is
                                    // lost; find the next one.
                                    self.resp_lost = true;
                                    self.resp.lose_track();
                                }
                            }
                        }
                        None => {
                            b = &b[take..];
                            if self.resp.buf.len() >= cfg.max_head_bytes {
                                stats.heads_too_large += 1;
                                self.resp_lost = true;
                                self.resp.lose_track();
                            }
                        }
                    }
                }
                St::Body(_) => {
                    let used = self.body_bytes(false, b, at);
                    b = &b[used..];
                    self.accounted_end = self.resp.chunk_end - b.len() as u64;
                    if self.chunk_broken(false) {
                        self.end_response(at, Some(Anomaly::BadChunk), done, stats);
                        self.resp.lose_track();
                        self.resp_lost = true;
                    } else if self.body_finished(false) {
                        self.end_response(at, None, done, stats);
                    }
                }
                St::Resync => {
                    let found = resync(&mut self.resp, b, false, 8192, stats);
                    b = &[];
                    match found {
                        Some(rest) => {
                            self.release_resync_owner(done);
                            self.resp.st = St::Idle;
                            self.fresh = false;
                            self.resp_bytes(&rest, at, cfg, stats, done);
                            return;
                        }
                        None => self.give_up_if_not_http(cfg, stats),
                    }
                }
            }
        }
    }

    /// An answer without a status line to the oldest waiting request.
    fn http09_response(&mut self, at: (Ts, u64), cfg: &HttpConfig) {
        let Some(i) = self.pending.iter().position(|p| !p.resp_head) else { return };
        let p = &mut self.pending[i];
        p.resp_head = true;
        p.tx.response =
            Some(ResponseHead { version: None, status: 0, reason: Vec::new(), headers: Headers::default() });
        p.tx.timing.resp_start = Some(at.0);
        p.tx.resp_frames = Some(FrameSpan { first: at.1, last: at.1 });
        if !p.tx.anomalies.contains(&Anomaly::Http09) {
            p.tx.anomalies.push(Anomaly::Http09);
        }
        self.resp.start = Some(at);
        self.resp.st = St::Body(Box::new(Body {
            framing: Framing::Close,
            chunk: Chunk::Size(Vec::new()),
            decoder: BodyDecoder::new(
                ContentEncoding::Identity,
                cfg.body_keep_bytes,
                cfg.max_decoded_bytes,
                cfg.max_decode_ratio,
            ),
        }));
    }

    /// Among the waiting requests (indexes in `pending`, oldest first),
    /// the one whose answer begins at offset `off` of the server's stream,
    /// when the answers between the last one parsed (ending at
    /// `self.accounted_end`) and `off` are unknown. Answers come in order,
    /// so it is the oldest waiting request, unless older ones lost their
    /// answers in between. A request's `peer_ack` (how much of the server's
    /// stream its client had received when sending it) says: its answer
    /// starts at or after it; and a request sent after receiving more than
    /// the parsed answers (`peer_ack > accounted_end`) was sent once lost
    /// answers had arrived, so the requests before it were answered then.
    /// The owner is the request with the largest such `peer_ack` not beyond
    /// `off` (the oldest among equals: a pipelined burst); failing that, the
    /// oldest waiting request.
    fn owner_among(&self, waiting: &[usize], off: Option<u64>) -> Option<usize> {
        let first = *waiting.first()?;
        let Some(off) = off else { return Some(first) };
        let floor = self.accounted_end;
        let best = waiting
            .iter()
            .copied()
            .filter_map(|i| self.pending[i].peer_ack.map(|a| (i, a)))
            .filter(|(_, a)| *a <= off && *a > floor)
            .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)));
        Some(best.map_or(first, |(i, _)| i))
    }

    fn waiting(&self) -> Vec<usize> {
        (0..self.pending.len()).filter(|i| !self.pending[*i].resp_head).collect()
    }

    /// Marks the waiting requests before `owner` (their answers came before
    /// its answer, so in a gap) and removes them.
    fn lose_older(&mut self, waiting: &[usize], owner: usize, done: &mut Vec<HttpTransaction>) -> usize {
        let lost: Vec<usize> = waiting.iter().copied().filter(|i| *i < owner && self.pending[*i].req_done).collect();
        for i in lost.iter().rev() {
            if let Some(mut p) = self.pending.remove(*i) {
                p.tx.outcome = Outcome::CaptureGap;
                p.tx.anomalies.push(Anomaly::ResponseGap);
                settle(&mut p.tx, None);
                done.push(p.tx);
            }
        }
        owner - lost.len()
    }

    /// The head of a response fell in a gap of `len` bytes at server offset
    /// `off`: the request it answered will not get an answer the capture
    /// can show. Until the next message is found, bytes missing belong to
    /// it (it becomes the resynchronisation owner).
    fn lose_next_response(&mut self, len: u64, off: u64, done: &mut Vec<HttpTransaction>) {
        let waiting = self.waiting();
        // The oldest request may itself have been lost to a gap: then the
        // lost answer was its answer, and neither is in the capture.
        let lost_request = match waiting.first() {
            Some(&i) if self.pending[i].lost_before > 0 => {
                let p = &mut self.pending[i];
                Some((std::mem::take(&mut p.lost_before), p.lost_depth.take()))
            }
            None if self.req_gap_unclaimed > 0 => Some((std::mem::take(&mut self.req_gap_unclaimed), None)),
            _ => None,
        };
        if let Some((req_missing, depth)) = lost_request {
            let mut tx = self.new_tx();
            if let Some(d) = depth {
                tx.depth = d;
                self.next_depth -= 1;
            }
            tx.missing_bytes = req_missing + len;
            tx.anomalies.extend([Anomaly::NoRequest, Anomaly::RequestGap, Anomaly::ResponseGap]);
            tx.outcome = Outcome::CaptureGap;
            self.set_resync_owner(tx, None, done);
            return;
        }
        let done_waiting: Vec<usize> = waiting.iter().copied().filter(|i| self.pending[*i].req_done).collect();
        let Some(owner) = self.owner_among(&done_waiting, Some(off)) else {
            // Nobody known to be waiting: the request is probably not in
            // the capture yet (its bytes are held behind a gap).
            self.resp_gap_unclaimed += len;
            return;
        };
        let owner = self.lose_older(&done_waiting, owner, done);
        if let Some(mut p) = self.pending.remove(owner) {
            p.tx.missing_bytes += len;
            p.tx.anomalies.push(Anomaly::ResponseGap);
            p.tx.outcome = Outcome::CaptureGap;
            let ack = p.peer_ack;
            self.set_resync_owner(p.tx, ack, done);
        }
    }

    fn set_resync_owner(&mut self, tx: HttpTransaction, ack: Option<u64>, done: &mut Vec<HttpTransaction>) {
        self.resync_owner_ack = ack;
        if let Some(mut old) = self.resync_owner.replace(tx) {
            settle(&mut old, None);
            done.push(old);
        }
    }

    /// Ends the attribution of resynchronisation losses.
    fn release_resync_owner(&mut self, done: &mut Vec<HttpTransaction>) {
        if let Some(mut tx) = self.resync_owner.take() {
            settle(&mut tx, None);
            done.push(tx);
        }
        self.resync_owner_ack = None;
    }

    /// Which pending transaction a final response (first byte at capture
    /// time `resp_start`, server offset `resp_off`) belongs to. `None`: an
    /// answer to a request the capture does not have.
    fn pair_index(&mut self, resp_start: Ts, resp_off: u64, done: &mut Vec<HttpTransaction>) -> Option<usize> {
        // A response can only answer a request that began before it; this
        // matters once requests were lost to a gap (the response may be the
        // answer to one of them).
        let req_lost = self.req_lost;
        let candidates: Vec<usize> = self
            .waiting()
            .into_iter()
            .filter(|i| !req_lost || self.pending[*i].tx.timing.req_start.is_none_or(|t| t <= resp_start))
            .collect();
        let first = *candidates.first()?;
        // Answers come in order: a request lost just before the oldest
        // candidate is answered first. Its answer is this one, unless there
        // was room for it before (server bytes between the last parsed
        // answer and this one, lost too) and the candidate's client had
        // not received past this answer's start when sending.
        if self.pending[first].lost_before > 0 {
            let room_before = self.accounted_end < resp_off;
            let candidate_fits = self.pending[first].peer_ack.is_none_or(|a| a <= resp_off);
            if !(room_before && candidate_fits) {
                return None;
            }
            let p = &mut self.pending[first];
            let (lost, depth) = (std::mem::take(&mut p.lost_before), p.lost_depth.take());
            let mut tx = self.new_tx();
            if let Some(d) = depth {
                tx.depth = d;
                self.next_depth -= 1;
            }
            tx.missing_bytes = lost + std::mem::take(&mut self.resp_gap_unclaimed);
            tx.anomalies.extend([Anomaly::NoRequest, Anomaly::RequestGap]);
            tx.outcome = Outcome::CaptureGap;
            settle(&mut tx, None);
            done.push(tx);
        }
        if !self.resp_lost {
            return Some(first);
        }
        // Boundaries were lost on the response side and whole responses may
        // be in the gap: the acknowledgment numbers tell which request this
        // one answers; older waiting requests lost their answers.
        let owner = self.owner_among(&candidates, Some(resp_off)).unwrap_or(first);
        Some(self.lose_older(&candidates, owner, done))
    }

    fn response_head(
        &mut self,
        head: ResponseHead,
        at: (Ts, u64),
        cfg: &HttpConfig,
        stats: &mut HttpStats,
        done: &mut Vec<HttpTransaction>,
    ) {
        let start = self.resp.start.unwrap_or(at);
        let interim = (100..200).contains(&head.status) && head.status != 101;
        if interim {
            stats.interim_responses += 1;
            if let Some(p) = self.pending.iter_mut().find(|p| !p.resp_head) {
                p.tx.interim.push(head.status);
                if !p.tx.anomalies.contains(&Anomaly::Interim) {
                    p.tx.anomalies.push(Anomaly::Interim);
                }
            }
            self.resp.st = St::Idle;
            return;
        }
        let resp_off = self.resp.msg_off;
        let idx = match self.pair_index(start.0, resp_off, done) {
            Some(i) => i,
            None => {
                // A response without a request: sent before the capture
                // started, or its request was lost.
                // The request bytes lost in a gap were most likely this
                // response's request (and it had the place before the
                // request that followed the gap).
                let (claimed, depth) = if self.req_lost {
                    match self.pending.iter_mut().find(|p| !p.resp_head && p.lost_before > 0) {
                        Some(p) => (std::mem::take(&mut p.lost_before), p.lost_depth.take()),
                        None => (std::mem::take(&mut self.req_gap_unclaimed), None),
                    }
                } else {
                    (0, None)
                };
                let mut tx = self.new_tx();
                if let Some(d) = depth {
                    tx.depth = d;
                    self.next_depth -= 1;
                }
                tx.anomalies.push(Anomaly::NoRequest);
                if self.req_lost {
                    tx.anomalies.push(Anomaly::RequestGap);
                    tx.missing_bytes += claimed;
                }
                self.pending.push_back(Pending {
                    tx,
                    req_done: true,
                    resp_head: false,
                    resp_done: false,
                    method: String::new(),
                    lost_before: 0,
                    lost_depth: None,
                    peer_ack: None,
                });
                self.pending.len() - 1
            }
        };
        self.resp_lost = false;
        let p = &mut self.pending[idx];
        p.resp_head = true;
        p.tx.timing.resp_start = Some(start.0);
        p.tx.resp_frames = Some(FrameSpan { first: start.1, last: at.1 });
        let status = head.status;
        let chunked = is_chunked(&head.headers);
        let len = content_length(&head.headers);
        if chunked && len.is_some() {
            p.tx.anomalies.push(Anomaly::ConflictingLength);
        }
        let enc = head
            .headers
            .get("content-encoding")
            .and_then(ContentEncoding::from_header)
            .unwrap_or(ContentEncoding::Identity);
        let upgrade = status == 101 || (p.method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&status));
        let no_body =
            p.method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || (100..200).contains(&status);
        let http10 = head.version == Some(0);
        let keep = match &cfg.bodies_only_of {
            Some(conns) if conns.contains(&self.meta.id) => cfg.body_keep_bytes,
            Some(_) => 0,
            None if body::worth_keeping(head.headers.get("content-type")) => cfg.body_keep_bytes,
            None => 0,
        };
        p.tx.response = Some(head);
        if upgrade {
            p.tx.anomalies.push(Anomaly::Tunnel);
            stats.tunnels += 1;
            p.resp_done = true;
            p.tx.timing.resp_end = Some(at.0);
            self.off = true;
            self.req.st = St::Off;
            self.resp.st = St::Off;
            self.try_finish(done, stats);
            return;
        }
        let framing = if no_body {
            None
        } else if chunked {
            Some(Framing::Chunked)
        } else if let Some(l) = len {
            if l == 0 { None } else { Some(Framing::Length(l)) }
        } else {
            let _ = http10;
            Some(Framing::Close)
        };
        match framing {
            None => {
                self.resp.st = St::Idle;
                let p = &mut self.pending[idx];
                p.resp_done = true;
                p.tx.timing.resp_end = Some(at.0);
                p.tx.response_body = BodyInfo { encoding: Some(enc), ..BodyInfo::default() };
                self.try_finish(done, stats);
            }
            Some(f) => {
                self.resp.st = St::Body(Box::new(Body {
                    framing: f,
                    chunk: Chunk::Size(Vec::new()),
                    decoder: BodyDecoder::new(enc, keep, cfg.max_decoded_bytes, cfg.max_decode_ratio),
                }));
            }
        }
    }

    /// The response being received (the one with a head and not done).
    fn current_response(&mut self) -> Option<&mut Pending> {
        self.pending.iter_mut().find(|p| p.resp_head && !p.resp_done)
    }

    fn end_response(
        &mut self,
        at: (Ts, u64),
        anomaly: Option<Anomaly>,
        done: &mut Vec<HttpTransaction>,
        stats: &mut HttpStats,
    ) {
        let st = std::mem::replace(&mut self.resp.st, St::Idle);
        let last = self.resp.last.max(at);
        if let St::Body(b) = st {
            let info = b.decoder.finish();
            if let Some(p) = self.current_response() {
                p.resp_done = true;
                p.tx.timing.resp_end = Some(last.0);
                if let Some(f) = p.tx.resp_frames.as_mut() {
                    f.last = last.1;
                }
                if let Some(a) = anomaly {
                    p.tx.anomalies.push(a);
                    if a == Anomaly::BadChunk {
                        p.tx.outcome = Outcome::Malformed;
                    }
                }
                if matches!(info.decode_stop, Some(DecodeStop::SizeCap | DecodeStop::RatioCap)) {
                    p.tx.anomalies.push(Anomaly::DecodeCap);
                    stats.decode_caps += 1;
                } else if matches!(info.decode_stop, Some(DecodeStop::Corrupt)) {
                    p.tx.anomalies.push(Anomaly::BodyDecode);
                }
                p.tx.response_body = info;
            }
        }
        self.try_finish(done, stats);
    }

    /// Emits, in order, the transactions at the front that are complete.
    fn try_finish(&mut self, done: &mut Vec<HttpTransaction>, _stats: &mut HttpStats) {
        while let Some(p) = self.pending.front() {
            if !(p.req_done && p.resp_done) {
                break;
            }
            let Some(mut p) = self.pending.pop_front() else { break };
            settle(&mut p.tx, None);
            done.push(p.tx);
        }
    }

    // ----- loss and endings -------------------------------------------------

    pub(super) fn gap(&mut self, g: &Gap, _cfg: &HttpConfig, stats: &mut HttpStats) -> Vec<HttpTransaction> {
        let mut done = Vec::new();
        if self.off {
            return done;
        }
        let at = (g.ts, 0);
        match g.dir {
            Direction::ClientToServer => self.req_gap(g.len, at, &mut done, stats),
            Direction::ServerToClient => self.resp_gap(g.len, g.offset, at, &mut done, stats),
        }
        done
    }

    fn req_gap(&mut self, len: u64, at: (Ts, u64), done: &mut Vec<HttpTransaction>, stats: &mut HttpStats) {
        let st = std::mem::replace(&mut self.req.st, St::Resync);
        match st {
            St::Off => self.req.st = St::Off,
            St::Idle | St::Resync => {
                // Whole requests may be in the gap.
                self.req_lost = true;
                self.req_gap_unclaimed += len;
                self.req.buf.clear();
            }
            St::Head => {
                // A head cut by the gap: keep what its request line said.
                let mut tx = self.new_tx();
                let buf = std::mem::take(&mut self.req.buf);
                let mut headers = vec![httparse::EMPTY_HEADER; 64];
                let mut req = httparse::Request::new(&mut headers);
                let _ = req.parse(&buf);
                let method = req.method.unwrap_or("").to_string();
                tx.request = Some(RequestHead {
                    method: method.clone(),
                    uri: req.path.unwrap_or("").as_bytes().to_vec(),
                    version: req.version,
                    headers: Headers::default(),
                });
                let start = self.req.start.unwrap_or(at);
                tx.timing.req_start = Some(start.0);
                tx.timing.req_end = Some(self.req.last.0);
                tx.req_frames = Some(FrameSpan { first: start.1, last: self.req.last.1 });
                tx.anomalies.push(Anomaly::PartialRequestHead);
                tx.anomalies.push(Anomaly::RequestGap);
                tx.missing_bytes += len;
                self.pending.push_back(Pending {
                    tx,
                    req_done: true,
                    resp_head: false,
                    resp_done: false,
                    method,
                    lost_before: 0,
                    lost_depth: None,
                    peer_ack: self.req.msg_peer_ack,
                });
            }
            St::Body(mut body) => {
                let req_remaining_before_gap = match body.framing {
                    Framing::Length(rem) => Some(rem),
                    _ => None,
                };
                let data_part = body_data_in_gap(&body, len);
                let within = match (&mut body.framing, &mut body.chunk) {
                    (Framing::Length(rem), _) if len <= *rem => {
                        *rem -= len;
                        true
                    }
                    (Framing::Chunked, Chunk::Data(rem)) if len <= *rem => {
                        *rem -= len;
                        if *rem == 0 {
                            body.chunk = Chunk::DataEnd(Vec::new());
                        }
                        true
                    }
                    _ => false,
                };
                let mine = match req_remaining_before_gap {
                    Some(rem) => len.min(rem),
                    None => len,
                };
                body.decoder.gap(data_part);
                if let Some(p) = self.pending.back_mut() {
                    p.tx.missing_bytes += mine;
                    if !p.tx.anomalies.contains(&Anomaly::RequestGap) {
                        p.tx.anomalies.push(Anomaly::RequestGap);
                    }
                }
                if within {
                    self.req.st = St::Body(body);
                    if self.body_finished(true) {
                        self.end_request(at, done, stats);
                    }
                } else {
                    // The body's end is lost: finish it, find the next one.
                    // What the gap held beyond a known end began the next
                    // request.
                    if let Some(rem) = req_remaining_before_gap
                        && len > rem
                    {
                        self.req_gap_unclaimed += len - rem;
                    }
                    let info = body.decoder.finish();
                    self.finish_request(Some(info), at);
                    self.req.st = St::Resync;
                    self.req_lost = true;
                    self.try_finish(done, stats);
                }
            }
        }
        // Bytes after a gap may start a message as well as end a line:
        // the first line is examined like any other.
        if matches!(self.req.st, St::Resync) {
            self.req.buf.clear();
        }
    }

    fn resp_gap(&mut self, len: u64, off: u64, at: (Ts, u64), done: &mut Vec<HttpTransaction>, stats: &mut HttpStats) {
        let st = std::mem::replace(&mut self.resp.st, St::Resync);
        match st {
            St::Off => self.resp.st = St::Off,
            St::Resync => {
                self.resp_lost = true;
                self.resp.buf.clear();
                // Whose answer were the missing bytes? The current owner's,
                // unless a request sent after it (a larger acknowledgment)
                // is answered at or before this offset.
                let waiting: Vec<usize> = self.waiting().into_iter().filter(|i| self.pending[*i].req_done).collect();
                let target = self.owner_among(&waiting, Some(off));
                let newer = match (target, self.resync_owner.is_some()) {
                    (Some(t), true) => {
                        self.pending[t].peer_ack.is_some_and(|a| self.resync_owner_ack.is_none_or(|o| a > o))
                    }
                    (Some(t), false) => self.pending[t].tx.timing.req_end.is_some_and(|e| e <= at.0),
                    (None, _) => false,
                };
                if newer {
                    self.release_resync_owner(done);
                    self.lose_next_response(len, off, done);
                } else if let Some(tx) = self.resync_owner.as_mut() {
                    tx.missing_bytes += len;
                }
            }
            St::Idle | St::Head => {
                // The gap begins at (or inside) the head of the next
                // response: the oldest waiting request lost its answer.
                self.resp.buf.clear();
                self.lose_next_response(len, off, done);
                self.resp_lost = true;
            }
            St::Body(mut body) => {
                let body_remaining_before_gap = match body.framing {
                    Framing::Length(rem) => Some(rem),
                    _ => None,
                };
                let data_part = body_data_in_gap(&body, len);
                let within = match (&mut body.framing, &mut body.chunk) {
                    (Framing::Length(rem), _) if len <= *rem => {
                        *rem -= len;
                        true
                    }
                    (Framing::Chunked, Chunk::Data(rem)) if len <= *rem => {
                        *rem -= len;
                        if *rem == 0 {
                            body.chunk = Chunk::DataEnd(Vec::new());
                        }
                        true
                    }
                    (Framing::Close, _) => true,
                    _ => false,
                };
                let mine = match body_remaining_before_gap {
                    Some(rem) => len.min(rem),
                    None => len,
                };
                body.decoder.gap(data_part);
                if let Some(p) = self.current_response() {
                    p.tx.missing_bytes += mine;
                    if !p.tx.anomalies.contains(&Anomaly::ResponseGap) {
                        p.tx.anomalies.push(Anomaly::ResponseGap);
                    }
                }
                self.resp.st = St::Body(body);
                if within {
                    if self.body_finished(false) {
                        self.end_response(at, None, done, stats);
                    }
                } else {
                    // The body's end is lost: finish the response here. What
                    // the gap held beyond a known end began the next
                    // response.
                    let beyond = match body_remaining_before_gap {
                        Some(rem) if len > rem => len - rem,
                        _ => 0,
                    };
                    self.end_response(at, None, done, stats);
                    if beyond > 0 {
                        self.lose_next_response(beyond, off + (len - beyond), done);
                    }
                    self.resp.st = St::Resync;
                    self.resp_lost = true;
                }
            }
        }
        if matches!(self.resp.st, St::Resync) {
            self.resp.buf.clear();
        }
    }

    pub(super) fn half_close(
        &mut self,
        hc: &HalfClose,
        _cfg: &HttpConfig,
        stats: &mut HttpStats,
    ) -> Vec<HttpTransaction> {
        let mut done = Vec::new();
        match hc.dir {
            Direction::ClientToServer => self.client_fin = Some(hc.ts),
            Direction::ServerToClient => {
                // The server is done sending: a close-delimited body ends
                // here; a body of known length that has not ended never will.
                if let St::Body(b) = &self.resp.st {
                    if b.framing == Framing::Close {
                        self.end_response((hc.ts, hc.frame), None, &mut done, stats);
                    } else {
                        let st = std::mem::replace(&mut self.resp.st, St::Idle);
                        if let St::Body(b) = st {
                            let info = b.decoder.finish();
                            if let Some(p) = self.current_response() {
                                p.resp_done = true;
                                p.tx.response_body = info;
                                if p.tx.outcome == Outcome::Complete {
                                    p.tx.outcome = Outcome::Truncated;
                                }
                            }
                        }
                        self.try_finish(&mut done, stats);
                    }
                }
            }
        }
        done
    }

    pub(super) fn close(&mut self, c: &Close, cfg: &HttpConfig, stats: &mut HttpStats) -> Vec<HttpTransaction> {
        let mut done = Vec::new();
        // A body still being received ends with the connection.
        for request in [true, false] {
            let side = if request { &mut self.req } else { &mut self.resp };
            let st = std::mem::replace(&mut side.st, St::Off);
            if let St::Body(b) = st {
                let close_delimited = b.framing == Framing::Close;
                let info = b.decoder.finish();
                if request {
                    if let Some(p) = self.pending.back_mut()
                        && !p.req_done
                    {
                        p.tx.request_body = info;
                    }
                } else {
                    let last = self.resp.last.0;
                    if let Some(p) = self.current_response() {
                        p.tx.response_body = info;
                        if close_delimited && matches!(c.how, CloseHow::Fin { .. }) {
                            p.resp_done = true;
                            p.tx.timing.resp_end = Some(last);
                        }
                    }
                }
            }
        }
        self.try_finish(&mut done, stats);
        self.release_resync_owner(&mut done);
        // Requests the capture lost entirely, never answered: still
        // something the client sent.
        // (Fewer bytes than the shortest request are not one: an
        // acknowledged FIN the capture missed looks like one lost byte.)
        if self.req_gap_unclaimed >= 16 {
            let mut tx = self.new_tx();
            tx.missing_bytes =
                std::mem::take(&mut self.req_gap_unclaimed) + std::mem::take(&mut self.resp_gap_unclaimed);
            tx.anomalies.push(Anomaly::RequestGap);
            tx.outcome = Outcome::CaptureGap;
            tx.timing.req_start = Some(c.ts);
            settle(&mut tx, None);
            done.push(tx);
        }
        // The client has been waiting since the oldest unanswered request
        // (pipelined ones behind it wait with it).
        let stall_since = self.pending.iter().find(|p| !p.resp_done).and_then(|p| p.tx.timing.req_end);
        while let Some(mut p) = self.pending.pop_front() {
            // An outcome decided earlier (truncated at the server's FIN,
            // malformed) stands.
            let outcome = if p.tx.outcome == Outcome::Complete {
                self.unfinished_outcome(&p, c, cfg, stall_since)
            } else {
                p.tx.outcome
            };
            p.tx.outcome = outcome;
            if matches!(outcome, Outcome::ClientAbort | Outcome::NoResponse) && p.tx.waited.is_none() {
                let end_of_wait = self.client_fin.unwrap_or(c.ts);
                p.tx.waited = stall_since.or(p.tx.timing.req_end).map(|e| end_of_wait - e);
            }
            if outcome == Outcome::CaptureGap {
                match c.how {
                    CloseHow::EndOfCapture | CloseHow::Evicted | CloseHow::Superseded => {
                        p.tx.anomalies.push(Anomaly::CaptureEnded)
                    }
                    CloseHow::IdleTimeout => p.tx.anomalies.push(Anomaly::Stalled),
                    _ => {}
                }
            }
            settle(&mut p.tx, Some(outcome));
            done.push(p.tx);
        }
        done
    }

    /// The outcome of a transaction still open when the connection ended.
    fn unfinished_outcome(&self, p: &Pending, c: &Close, cfg: &HttpConfig, stall_since: Option<Ts>) -> Outcome {
        let started = p.resp_head;
        if p.tx.outcome == Outcome::Truncated {
            return Outcome::Truncated;
        }
        if p.resp_done && p.req_done {
            return Outcome::Complete;
        }
        let client_closed = self.client_fin.or(match c.how {
            CloseHow::Rst { from: Direction::ClientToServer } => Some(c.ts),
            _ => None,
        });
        match c.how {
            CloseHow::Rst { from: Direction::ServerToClient } => return Outcome::ServerReset,
            CloseHow::Fin { first: Direction::ServerToClient } if self.client_fin.is_none() || !started => {
                return if started { Outcome::Truncated } else { Outcome::NoResponse };
            }
            _ => {}
        }
        if let Some(t) = client_closed {
            if started {
                return Outcome::ClientAbort;
            }
            let waited = stall_since.or(p.tx.timing.req_end).map(|e| t - e).unwrap_or_default();
            return if waited >= cfg.client_timeout { Outcome::NoResponse } else { Outcome::ClientAbort };
        }
        match c.how {
            CloseHow::IdleTimeout if !started => Outcome::NoResponse,
            _ => Outcome::CaptureGap,
        }
    }
}

/// How many of `len` missing bytes were body data (not chunk framing), as
/// far as can be known: the rest of the current chunk or of a body of known
/// length; all of a close-delimited body.
fn body_data_in_gap(body: &Body, len: u64) -> u64 {
    match (&body.framing, &body.chunk) {
        (Framing::Length(rem), _) => len.min(*rem),
        (Framing::Chunked, Chunk::Data(rem)) => len.min(*rem),
        (Framing::Chunked, _) => 0,
        (Framing::Close, _) => len,
    }
}

/// Final outcome: missing bytes make any transaction a capture gap (unless
/// it is malformed); `fallback` is the outcome decided at close.
fn settle(tx: &mut HttpTransaction, fallback: Option<Outcome>) {
    if let Some(o) = fallback
        && tx.outcome == Outcome::Complete
    {
        tx.outcome = o;
    }
    if tx.missing_bytes > 0 && tx.outcome != Outcome::Malformed {
        tx.outcome = Outcome::CaptureGap;
    }
    if tx.anomalies.contains(&Anomaly::NoRequest) && tx.outcome != Outcome::Malformed {
        tx.outcome = Outcome::CaptureGap;
    }
    tx.anomalies.sort_unstable();
    tx.anomalies.dedup();
}
