//! One connection's HTTP state: a framer per direction (`framing.rs`, the
//! same parser for both) and the queue of requests waiting for their
//! responses (`pairing.rs`). This module decides what the framers' events
//! mean: which request a response answers, how its body is framed, who
//! lost the bytes of a gap, and how each transaction ended.

use super::body::{self, BodyDecoder, BodyInfo, ContentEncoding, DecodeStop};
use super::framing::{self, Body, Event, Framer, Framing, GapAt, Role, Status};
use super::pairing::{Pending, Queue};
use super::{
    Anomaly, Done, FrameSpan, Headers, HttpConfig, HttpStats, HttpTransaction, Outcome, RequestHead, ResponseHead,
    TxTiming,
};
use crate::budget::{Charge, Holder};
use crate::tcp::{Close, CloseHow, ConnMeta, DataChunk, Direction, Gap, HalfClose, RoleSource};
use crate::time::Ts;

/// HTTP state of one connection.
pub(super) struct ConnHttp {
    meta: ConnMeta,
    req: Framer,
    resp: Framer,
    queue: Queue,
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
    /// missing while the parser looks for the next message. Boxed, as is
    /// `h2c`: both are rare, and inline they were two thirds of every
    /// connection's state (1,304 of 2,064 bytes).
    resync_owner: Option<Box<HttpTransaction>>,
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
    /// `held`'s share of the memory budget.
    held_charge: Charge,
    /// The connection outlived a RST; every transaction that ends from
    /// then on had bytes after it.
    after_rst: bool,
    /// The request that switched the connection to HTTP/2 by `Upgrade:
    /// h2c` and its 101 (the route takes it, with the server's bytes after
    /// the 101's head, and HTTP/2 goes on: [`ConnHttp::take_h2c`]).
    h2c: Option<Box<H2cSwitch>>,
}

// Every open connection holds one (tcp::CONN_COST counts about 0.8 KiB
// for it): what is rare stays behind a box.
const _: () = assert!(std::mem::size_of::<ConnHttp>() <= 1024);

/// A connection that switched to HTTP/2 by `Upgrade: h2c`.
pub(super) struct H2cSwitch {
    /// The request that asked for it (its response comes on stream 1).
    pub(super) tx: Box<HttpTransaction>,
    /// The server's bytes after the 101's head in the chunk that held it,
    /// with that chunk's time and frame.
    pub(super) rest: Vec<u8>,
    pub(super) at: (Ts, u64),
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

/// Whether `tx` asked for h2c (`Upgrade: h2c` with `HTTP2-Settings`) and
/// its 101 answer accepted it.
fn h2c_accepted(tx: &HttpTransaction) -> bool {
    let (Some(req), Some(resp)) = (tx.request.as_ref(), tx.response.as_ref()) else { return false };
    pov_http2::detect::h2c_upgrade_request(req.headers.iter()).is_some()
        && pov_http2::detect::h2c_upgrade_accepted(resp.status, resp.headers.iter())
}

fn encoding(h: &Headers) -> ContentEncoding {
    h.get("content-encoding").and_then(ContentEncoding::from_header).unwrap_or(ContentEncoding::Identity)
}

impl ConnHttp {
    pub(super) fn new(meta: &ConnMeta, cfg: &HttpConfig) -> ConnHttp {
        // A connection picked up mid-stream may begin inside a message:
        // both sides start by looking for one.
        let mid = !matches!(meta.roles, RoleSource::Syn | RoleSource::SynAck);
        ConnHttp {
            meta: meta.clone(),
            req: Framer::new(Role::Request, mid, &cfg.budget),
            resp: Framer::new(Role::Response, mid, &cfg.budget),
            held_charge: cfg.budget.empty(Holder::Heads),
            queue: Queue::default(),
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
            after_rst: false,
            h2c: None,
        }
    }

    /// The connection.
    pub(super) fn meta(&self) -> &ConnMeta {
        &self.meta
    }

    /// Marks transactions that end after the connection outlived a RST:
    /// they were still open at the RST, or began after it.
    pub(super) fn label_after_rst(&self, done: &mut [Box<HttpTransaction>]) {
        if !self.after_rst {
            return;
        }
        for tx in done {
            if !tx.anomalies.contains(&Anomaly::DataAfterRst) {
                // In the order settled transactions keep them.
                tx.anomalies.push(Anomaly::DataAfterRst);
                tx.anomalies.sort_unstable();
            }
        }
    }

    /// Start time of the earliest unfinished transaction (or message being
    /// received), for ordering.
    pub(super) fn earliest_open(&self) -> Option<Ts> {
        // Asked after every chunk of data: compared by hand (an iterator
        // over the three took 84 instructions).
        let min = |a: Option<Ts>, b: Option<Ts>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        };
        min(min(self.queue.earliest(), self.req.open_since()), self.resp.open_since())
    }

    fn new_tx(&mut self) -> Box<HttpTransaction> {
        let depth = self.next_depth;
        self.next_depth += 1;
        Box::new(HttpTransaction {
            timing: TxTiming { handshake_rtt: self.meta.handshake.map(|h| h.rtt()), ..TxTiming::default() },
            ..HttpTransaction::new(self.meta.id, self.meta.client, self.meta.server, depth)
        })
    }

    /// Queues `p`; past `--max-pending-requests`, or when the memory
    /// budget has no room for it, the oldest is given up.
    fn push(&mut self, mut p: Pending, cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) {
        let w = p.weight();
        p.charge = match cfg.budget.try_charge(Holder::Pending, w) {
            Some(c) => c,
            // Without room, the oldest waiting here is given up for it;
            // the first one a connection holds is part of the connection's
            // own cost (`tcp::CONN_COST`).
            None => match self.queue.pop_front() {
                Some(old) => {
                    give_up(old, Anomaly::MemoryBudget, stats, done);
                    cfg.budget.try_charge(Holder::Pending, w).unwrap_or_default()
                }
                None => Charge::none(),
            },
        };
        if let Some(old) = self.queue.push(p, cfg.max_pending) {
            give_up(old, Anomaly::PendingOverflow, stats, done);
        }
    }

    /// A connection picked up mid-stream in which no HTTP message was found
    /// in the first bytes of either side is left alone (TLS, other
    /// protocols).
    fn give_up_if_not_http(&mut self, cfg: &HttpConfig, stats: &mut HttpStats) {
        if self.fresh && self.req.skipped() + self.resp.skipped() > cfg.max_head_bytes as u64 {
            self.set_off();
            stats.not_http += 1;
        }
    }

    /// The switch to HTTP/2 by `Upgrade: h2c`, once its 101 was read.
    pub(super) fn take_h2c(&mut self) -> Option<H2cSwitch> {
        self.h2c.take().map(|b| *b)
    }

    fn set_off(&mut self) {
        self.off = true;
        self.req.set_off();
        self.resp.set_off();
        self.held = None;
        self.held_charge.set(0);
    }

    /// Bytes the client sent again: requests sent in full and not yet
    /// answered were still on their way to the server then.
    pub(super) fn retransmission(&mut self, r: &crate::tcp::Retransmission) {
        if r.dir != Direction::ClientToServer {
            return;
        }
        let Some(from) = self.queue.first_waiting() else { return };
        for p in self.queue.iter_mut().skip(from) {
            if p.req_done && !p.resp_head && p.tx.timing.req_end.is_some_and(|e| e <= r.ts) {
                p.tx.timing.req_resent = Some(r.ts);
            }
        }
    }

    /// Queued items looked at while pairing, so far (bounded per response;
    /// the tests check it).
    pub(super) fn pairing_steps(&self) -> u64 {
        self.queue.steps()
    }

    /// A chunk that is all body bytes of the message under way and does
    /// not end it (most chunks of a large body), taken as
    /// [`ConnHttp::data`] takes it, without its turns: nothing can finish
    /// or start, and what is open stays open since the same time. `false`,
    /// having taken nothing, for any other chunk.
    #[inline]
    pub(super) fn body_data(&mut self, c: &DataChunk<'_>) -> bool {
        if self.off || self.h2c.is_some() {
            return false;
        }
        let f = match c.dir {
            Direction::ClientToServer => &mut self.req,
            Direction::ServerToClient => &mut self.resp,
        };
        let end = c.offset + c.bytes.len() as u64;
        if !f.body_bytes(c.bytes, end, c.peer_ack, (c.first_ts, c.first_frame)) {
            return false;
        }
        self.after_rst |= c.after_rst;
        if c.dir == Direction::ServerToClient {
            self.accounted_end = self.resp.chunk_end();
        }
        true
    }

    pub(super) fn data(&mut self, c: &DataChunk<'_>, cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) {
        self.after_rst |= c.after_rst;
        if self.off {
            return;
        }
        let at = (c.first_ts, c.first_frame);
        let end = c.offset + c.bytes.len() as u64;
        match c.dir {
            Direction::ClientToServer => {
                self.req.chunk(end, c.peer_ack, at);
                self.req_bytes(c.bytes, at, cfg, stats, done);
            }
            Direction::ServerToClient => {
                self.resp.chunk(end, c.peer_ack, at);
                self.resp_bytes(c.bytes, at, cfg, stats, done);
            }
        }
    }

    // ----- requests -------------------------------------------------------

    fn req_bytes(&mut self, b: &[u8], at: (Ts, u64), cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) {
        let mut first: Vec<u8>;
        let mut b = b;
        if self.fresh && self.req.is_idle() {
            // Is this HTTP? A request that says so is parsed at once; bytes
            // that do not are held until the server's first bytes decide.
            self.held_charge.set(0);
            first = match self.held.take() {
                Some((mut h, _)) => {
                    h.extend_from_slice(b);
                    h
                }
                None => b.to_vec(),
            };
            let start = first.iter().position(|c| *c != b'\r' && *c != b'\n').unwrap_or(first.len());
            match framing::client_says_http(&first[start..]) {
                Some(true) => {
                    self.fresh = false;
                    b = &first;
                }
                _ if first.len() > cfg.max_head_bytes => {
                    self.set_off();
                    stats.not_http += 1;
                    return;
                }
                _ => {
                    self.held_charge.set(first.len());
                    self.held = Some((std::mem::take(&mut first), at));
                    return;
                }
            }
        }
        while !b.is_empty() && !self.off {
            let (n, ev) = match self.req.advance(b, cfg.max_head_bytes, &mut stats.resync_skipped_bytes) {
                Status::Partial => {
                    if self.req.is_resyncing() {
                        self.give_up_if_not_http(cfg, stats);
                    }
                    return;
                }
                Status::Complete(n, ev) => (n, ev),
            };
            let given = b;
            b = &b[n..];
            match ev {
                Event::Start => self.req.begin_head(b),
                Event::Http09(head) => {
                    let mut tx = self.new_tx();
                    tx.anomalies.push(Anomaly::Http09);
                    self.request_head(tx, head, at, cfg, stats, done);
                }
                Event::Head(h) => {
                    let tx = self.new_tx();
                    let bytes = h.bytes(given);
                    match framing::parse_request(bytes) {
                        Some(head) => self.request_head(tx, head, at, cfg, stats, done),
                        None => self.malformed_request(tx, bytes, Anomaly::BadHead, at, cfg, stats, done),
                    }
                }
                Event::HeadTooLarge { bytes, budget } => {
                    let why = if budget {
                        Anomaly::MemoryBudget
                    } else {
                        stats.heads_too_large += 1;
                        Anomaly::HeadTooLarge
                    };
                    let tx = self.new_tx();
                    self.malformed_request(tx, &bytes, why, at, cfg, stats, done);
                }
                Event::BodyEnd { .. } => self.end_request(at, done),
                Event::Found => self.fresh = false,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn malformed_request(
        &mut self,
        mut tx: Box<HttpTransaction>,
        head: &[u8],
        why: Anomaly,
        at: (Ts, u64),
        cfg: &HttpConfig,
        stats: &mut HttpStats,
        done: &mut Done,
    ) {
        // Keep what the request line says, for the record.
        let req = framing::salvage_request(head);
        tx.request = Some(req);
        let start = self.req.start().unwrap_or(at);
        let last = self.req.last();
        tx.timing.req_start = Some(start.0);
        tx.timing.req_end = Some(last.0);
        tx.req_frames = Some(FrameSpan { first: start.1, last: last.1 });
        tx.anomalies.push(why);
        tx.outcome = Outcome::Malformed;
        // Its response (if the server answers a bad request, it usually
        // does with 400) still pairs with it; it counts against the cap on
        // waiting requests like any other.
        let mut p = Pending::new(tx, self.req.msg_peer_ack());
        p.req_done = true;
        self.push(p, cfg, stats, done);
        self.req.lose_track();
    }

    fn request_head(
        &mut self,
        mut tx: Box<HttpTransaction>,
        head: RequestHead,
        at: (Ts, u64),
        cfg: &HttpConfig,
        stats: &mut HttpStats,
        done: &mut Done,
    ) {
        let start = self.req.start().unwrap_or(at);
        tx.timing.req_start = Some(start.0);
        tx.req_frames = Some(FrameSpan { first: start.1, last: at.1 });
        let chunked = is_chunked(&head.headers);
        let len = content_length(&head.headers);
        if chunked && len.is_some() {
            tx.anomalies.push(Anomaly::ConflictingLength);
        }
        let enc = encoding(&head.headers);
        if self.queue.any_unanswered() {
            tx.anomalies.push(Anomaly::Pipelined);
        }
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
        let mut p = Pending::new(tx, self.req.msg_peer_ack());
        p.lost_before = lost_before;
        p.lost_depth = lost_depth;
        self.push(p, cfg, stats, done);
        match framing {
            Some(f) => {
                let decoder = BodyDecoder::new(enc, cfg.body_keep_bytes, cfg.max_decoded_bytes, cfg.max_decode_ratio)
                    .budgeted(&cfg.budget);
                self.req.start_body(Body::new(f, decoder));
            }
            None => {
                self.req.set_idle();
                self.finish_request(None, at);
                if http09 {
                    // The answer to an HTTP/0.9 request has no status line.
                    self.resp.set_idle();
                }
            }
        }
        self.try_finish(done);
    }

    /// Marks the newest request complete (its body, if any, in `body`).
    fn finish_request(&mut self, body: Option<BodyInfo>, at: (Ts, u64)) {
        let last = self.req.last().max(at);
        if let Some(p) = self.queue.back_mut()
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
                label_budget(&mut p.tx, &b);
                p.tx.request_body = b;
            }
        }
    }

    fn end_request(&mut self, at: (Ts, u64), done: &mut Done) {
        if let Some(info) = self.req.finish_body() {
            self.finish_request(Some(info), at);
        }
        self.try_finish(done);
    }

    // ----- responses ------------------------------------------------------

    fn resp_bytes(&mut self, b: &[u8], at: (Ts, u64), cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) {
        let mut b = b;
        // Each turn consumes bytes or changes the framer's state; a turn
        // that does neither twice in a row would be a bug, never a reason
        // to spin.
        let mut idle_turns = 0;
        while !b.is_empty() && !self.off {
            let (n, ev) = match self.resp.advance(b, cfg.max_head_bytes, &mut stats.resync_skipped_bytes) {
                Status::Partial => {
                    if self.resp.in_body() {
                        self.accounted_end = self.resp.chunk_end();
                    } else if self.resp.is_resyncing() {
                        self.give_up_if_not_http(cfg, stats);
                    }
                    return;
                }
                Status::Complete(n, ev) => (n, ev),
            };
            let given = b;
            b = &b[n..];
            idle_turns = if n == 0 { idle_turns + 1 } else { 0 };
            if idle_turns > 2 {
                debug_assert!(false, "the response parser made no progress");
                return;
            }
            match ev {
                Event::Start => self.response_start(b, at, cfg, stats, done),
                Event::Head(h) => {
                    let head_end = self.resp.chunk_end() - b.len() as u64;
                    match framing::parse_response(h.bytes(given)) {
                        Some(head) => {
                            self.response_head(head, at, cfg, stats, done);
                            self.accounted_end = head_end;
                            if let Some(up) = self.h2c.as_mut() {
                                up.rest = b.to_vec();
                                return;
                            }
                        }
                        None => {
                            // A broken status line: the response is lost;
                            // find the next one.
                            self.resp_lost = true;
                            self.resp.lose_track();
                        }
                    }
                }
                Event::HeadTooLarge { budget, .. } => {
                    if !budget {
                        stats.heads_too_large += 1;
                    }
                    self.resp_lost = true;
                    self.resp.lose_track();
                }
                Event::BodyEnd { bad_chunk } => {
                    self.accounted_end = self.resp.chunk_end() - b.len() as u64;
                    if bad_chunk {
                        self.end_response(at, Some(Anomaly::BadChunk), done, stats);
                        self.resp.lose_track();
                        self.resp_lost = true;
                    } else {
                        self.end_response(at, None, done, stats);
                    }
                }
                Event::Found => {
                    self.release_resync_owner(done);
                    self.fresh = false;
                }
                // Request lines are the request framer's.
                Event::Http09(_) => {}
            }
        }
    }

    /// The server's bytes at `b` begin a message (or what it sends instead
    /// of one).
    fn response_start(&mut self, b: &[u8], at: (Ts, u64), cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) {
        let status_line = framing::looks_like_response(b);
        if self.fresh {
            // The server speaks first, or decides for the client's unclear
            // first bytes.
            if status_line == Some(false) && self.queue.is_empty() {
                self.set_off();
                stats.not_http += 1;
                return;
            }
            self.fresh = false;
            if let Some((held, held_at)) = self.held.take() {
                self.held_charge.set(0);
                self.req_bytes(&held, held_at, cfg, stats, done);
            }
            // Looked at again, no longer fresh, on the next turn.
            return;
        }
        self.end_bare_request(cfg, stats, done);
        // An answer without a status line: HTTP/0.9, or a server that sent
        // only a body. It runs until the server closes.
        if status_line == Some(false) {
            if self.queue.first_waiting().is_some() {
                self.http09_response(b, at, cfg);
            } else {
                // Bytes that belong to no message.
                self.resp.lose_track();
            }
            return;
        }
        self.resp.begin_head(b);
    }

    /// A request whose first line is a method alone (`OPTIONS`), still
    /// waiting for the end of its head when the server answers or the
    /// connection ends: it is over, a malformed request with its method
    /// (and whatever header fields came), in the queue before the answer.
    fn end_bare_request(&mut self, cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) {
        if let Some(head) = self.req.take_bare_request() {
            let tx = self.new_tx();
            let last = self.req.last();
            self.malformed_request(tx, &head, Anomaly::BadHead, last, cfg, stats, done);
        }
    }

    /// An answer without a status line to the oldest waiting request.
    fn http09_response(&mut self, b: &[u8], at: (Ts, u64), cfg: &HttpConfig) {
        let Some(i) = self.queue.first_waiting() else { return };
        let Some(p) = self.queue.get_mut(i) else { return };
        p.resp_head = true;
        p.tx.response =
            Some(ResponseHead { version: None, status: 0, reason: Vec::new(), headers: Headers::default() });
        p.tx.timing.resp_start = Some(at.0);
        p.tx.resp_frames = Some(FrameSpan { first: at.1, last: at.1 });
        if !p.tx.anomalies.contains(&Anomaly::Http09) {
            p.tx.anomalies.push(Anomaly::Http09);
        }
        self.queue.set_current(i);
        let decoder = BodyDecoder::new(
            ContentEncoding::Identity,
            cfg.body_keep_bytes,
            cfg.max_decoded_bytes,
            cfg.max_decode_ratio,
        )
        .budgeted(&cfg.budget);
        self.resp.begin_body(b, Body::new(Framing::Close, decoder));
    }

    /// Among the waiting requests (indexes in the queue, oldest first),
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
    fn owner_among(&self, waiting: &[usize], off: u64) -> Option<usize> {
        let first = *waiting.first()?;
        let floor = self.accounted_end;
        let best = waiting
            .iter()
            .copied()
            .filter_map(|i| self.queue.get(i)?.peer_ack.map(|a| (i, a)))
            .filter(|(_, a)| *a <= off && *a > floor)
            .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)));
        Some(best.map_or(first, |(i, _)| i))
    }

    /// Gives up the waiting requests before `owner` (their answers came
    /// before its answer, so in a gap); returns the owner's new index.
    fn lose_older(&mut self, waiting: &[usize], owner: usize, done: &mut Done) -> usize {
        let lost: Vec<usize> =
            waiting.iter().copied().filter(|i| *i < owner && self.queue.get(*i).is_some_and(|p| p.req_done)).collect();
        let n = lost.len();
        for mut p in self.queue.remove_all(&lost) {
            p.tx.outcome = Outcome::CaptureGap;
            p.tx.anomalies.push(Anomaly::ResponseGap);
            settle(&mut p.tx, None);
            done.push(p.tx);
        }
        owner - n
    }

    /// The head of a response fell in a gap of `len` bytes at server offset
    /// `off`: the request it answered will not get an answer the capture
    /// can show. Until the next message is found, bytes missing belong to
    /// it (it becomes the resynchronisation owner).
    fn lose_next_response(&mut self, len: u64, off: u64, done: &mut Done) {
        let first = self.queue.first_waiting();
        // The oldest request may itself have been lost to a gap: then the
        // lost answer was its answer, and neither is in the capture.
        let lost_request = match first.and_then(|i| self.queue.get_mut(i)) {
            Some(p) if p.lost_before > 0 => Some((std::mem::take(&mut p.lost_before), p.lost_depth.take())),
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
        let done_waiting = self.queue.waiting_where(|p| p.req_done);
        let Some(owner) = self.owner_among(&done_waiting, off) else {
            // Nobody known to be waiting: the request is probably not in
            // the capture yet (its bytes are held behind a gap).
            self.resp_gap_unclaimed += len;
            return;
        };
        let owner = self.lose_older(&done_waiting, owner, done);
        if let Some(mut p) = self.queue.remove(owner) {
            p.tx.missing_bytes += len;
            p.tx.anomalies.push(Anomaly::ResponseGap);
            p.tx.outcome = Outcome::CaptureGap;
            self.set_resync_owner(p.tx, p.peer_ack, done);
        }
    }

    fn set_resync_owner(&mut self, tx: Box<HttpTransaction>, ack: Option<u64>, done: &mut Done) {
        self.resync_owner_ack = ack;
        if let Some(mut old) = self.resync_owner.replace(tx) {
            settle(&mut old, None);
            done.push(old);
        }
    }

    /// Ends the attribution of resynchronisation losses.
    fn release_resync_owner(&mut self, done: &mut Done) {
        if let Some(mut tx) = self.resync_owner.take() {
            settle(&mut tx, None);
            done.push(tx);
        }
        self.resync_owner_ack = None;
    }

    /// Which queued transaction a final response (first byte at capture
    /// time `resp_start`, server offset `resp_off`) belongs to. `None`: an
    /// answer to a request the capture does not have.
    fn pair_index(&mut self, resp_start: Ts, resp_off: u64, done: &mut Done) -> Option<usize> {
        // A response can only answer a request that began before it; this
        // matters once requests were lost to a gap (the response may be the
        // answer to one of them).
        let req_lost = self.req_lost;
        let began_before = |p: &Pending| !req_lost || p.tx.timing.req_start.is_none_or(|t| t <= resp_start);
        let first =
            if req_lost { self.queue.first_waiting_where(began_before)? } else { self.queue.first_waiting()? };
        // Answers come in order: a request lost just before the oldest
        // candidate is answered first. Its answer is this one, unless there
        // was room for it before (server bytes between the last parsed
        // answer and this one, lost too) and the candidate's client had
        // not received past this answer's start when sending.
        let (lost, peer_ack) = self.queue.get(first).map(|p| (p.lost_before, p.peer_ack))?;
        if lost > 0 {
            let room_before = self.accounted_end < resp_off;
            let candidate_fits = peer_ack.is_none_or(|a| a <= resp_off);
            if !(room_before && candidate_fits) {
                return None;
            }
            let p = self.queue.get_mut(first)?;
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
        let candidates = self.queue.waiting_where(began_before);
        let owner = self.owner_among(&candidates, resp_off).unwrap_or(first);
        Some(self.lose_older(&candidates, owner, done))
    }

    fn response_head(
        &mut self,
        head: ResponseHead,
        at: (Ts, u64),
        cfg: &HttpConfig,
        stats: &mut HttpStats,
        done: &mut Done,
    ) {
        let start = self.resp.start().unwrap_or(at);
        let interim = (100..200).contains(&head.status) && head.status != 101;
        if interim {
            stats.interim_responses += 1;
            if let Some(p) = self.queue.first_waiting().and_then(|i| self.queue.get_mut(i)) {
                p.tx.interim.push(head.status);
                if !p.tx.anomalies.contains(&Anomaly::Interim) {
                    p.tx.anomalies.push(Anomaly::Interim);
                }
            }
            self.resp.set_idle();
            return;
        }
        let resp_off = self.resp.msg_off();
        let idx = match self.pair_index(start.0, resp_off, done) {
            Some(i) => i,
            None => self.orphan_response(start.0, cfg, stats, done),
        };
        self.resp_lost = false;
        let Some(p) = self.queue.get_mut(idx) else { return };
        p.resp_head = true;
        p.tx.timing.resp_start = Some(start.0);
        p.tx.resp_frames = Some(FrameSpan { first: start.1, last: at.1 });
        let status = head.status;
        let chunked = is_chunked(&head.headers);
        let len = content_length(&head.headers);
        if chunked && len.is_some() {
            p.tx.anomalies.push(Anomaly::ConflictingLength);
        }
        let enc = encoding(&head.headers);
        let upgrade = status == 101 || (p.connect && (200..300).contains(&status));
        let no_body = p.head || status == 204 || status == 304 || (100..200).contains(&status);
        let ct = head.headers.get("content-type");
        let keep = if body::worth_keeping(ct) || (cfg.keep_every_body && body::replay_renders(ct)) {
            cfg.body_keep_bytes
        } else if cfg.keep_every_body {
            cfg.body_keep_bytes.min(body::REPLAY_SNIFF_BYTES)
        } else {
            0
        };
        p.tx.response = Some(head);
        if status == 101 && h2c_accepted(&p.tx) {
            // HTTP/2 from here on (RFC 7540 3.2): this request is stream 1,
            // answered over HTTP/2; the route takes it and the bytes after
            // this head (see `resp_bytes`).
            if let Some(p) = self.queue.remove(idx) {
                self.h2c = Some(Box::new(H2cSwitch { tx: p.tx, rest: Vec::new(), at }));
            }
            self.set_off();
            return;
        }
        if upgrade {
            p.tx.anomalies.push(Anomaly::Tunnel);
            stats.tunnels += 1;
            p.resp_done = true;
            p.tx.timing.resp_end = Some(at.0);
            self.set_off();
            self.try_finish(done);
            return;
        }
        let framing = if no_body {
            None
        } else if chunked {
            Some(Framing::Chunked)
        } else if let Some(l) = len {
            (l > 0).then_some(Framing::Length(l))
        } else {
            Some(Framing::Close)
        };
        match framing {
            None => {
                p.resp_done = true;
                p.tx.timing.resp_end = Some(at.0);
                p.tx.response_body = BodyInfo { encoding: Some(enc), ..BodyInfo::default() };
                self.resp.set_idle();
                self.try_finish(done);
            }
            Some(f) => {
                self.queue.set_current(idx);
                let decoder =
                    BodyDecoder::new(enc, keep, cfg.max_decoded_bytes, cfg.max_decode_ratio).budgeted(&cfg.budget);
                self.resp.start_body(Body::new(f, decoder));
            }
        }
    }

    /// A response without a request: sent before the capture started, or
    /// its request was lost. Returns its place in the queue.
    fn orphan_response(&mut self, start: Ts, cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) -> usize {
        // The request bytes lost in a gap were most likely this response's
        // request (and it had the place before the request that followed
        // the gap).
        let (claimed, depth) = if self.req_lost {
            let i = self.queue.first_waiting_where(|p| p.lost_before > 0);
            match i.and_then(|i| self.queue.get_mut(i)) {
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
        // Its start time is its answer's: set before it is queued.
        tx.timing.resp_start = Some(start);
        let mut p = Pending::new(tx, None);
        p.req_done = true;
        self.push(p, cfg, stats, done);
        self.queue.len() - 1
    }

    fn end_response(&mut self, at: (Ts, u64), anomaly: Option<Anomaly>, done: &mut Done, stats: &mut HttpStats) {
        let last = self.resp.last().max(at);
        if let Some(info) = self.resp.finish_body()
            && let Some(p) = self.queue.current_mut()
        {
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
            label_budget(&mut p.tx, &info);
            p.tx.response_body = info;
        }
        self.try_finish(done);
    }

    /// Emits, in order, the transactions at the front that are complete.
    fn try_finish(&mut self, done: &mut Done) {
        while self.queue.front().is_some_and(|p| p.req_done && p.resp_done) {
            let Some(mut p) = self.queue.pop_front() else { break };
            settle(&mut p.tx, None);
            done.push(p.tx);
        }
    }

    // ----- loss and endings -------------------------------------------------

    pub(super) fn gap(&mut self, g: &Gap, cfg: &HttpConfig, stats: &mut HttpStats) -> Done {
        let mut done = Vec::new();
        if self.off {
            return done;
        }
        let at = (g.ts, 0);
        match g.dir {
            Direction::ClientToServer => self.req_gap(g.len, at, cfg, stats, &mut done),
            Direction::ServerToClient => self.resp_gap(g.len, g.offset, at, &mut done, stats),
        }
        done
    }

    fn req_gap(&mut self, len: u64, at: (Ts, u64), cfg: &HttpConfig, stats: &mut HttpStats, done: &mut Done) {
        match self.req.gap(len) {
            GapAt::Off => {}
            GapAt::Idle | GapAt::Resync => {
                // Whole requests may be in the gap.
                self.req_lost = true;
                self.req_gap_unclaimed += len;
            }
            GapAt::Head(buf) => {
                // A head cut by the gap: keep what its request line said.
                let mut tx = self.new_tx();
                let req = framing::partial_request(&buf);
                tx.request = Some(req);
                let start = self.req.start().unwrap_or(at);
                let last = self.req.last();
                tx.timing.req_start = Some(start.0);
                tx.timing.req_end = Some(last.0);
                tx.req_frames = Some(FrameSpan { first: start.1, last: last.1 });
                tx.anomalies.push(Anomaly::PartialRequestHead);
                tx.anomalies.push(Anomaly::RequestGap);
                tx.missing_bytes += len;
                let mut p = Pending::new(tx, self.req.msg_peer_ack());
                p.req_done = true;
                self.push(p, cfg, stats, done);
            }
            GapAt::Body { within, mine, beyond, finished } => {
                if let Some(p) = self.queue.back_mut() {
                    p.tx.missing_bytes += mine;
                    if !p.tx.anomalies.contains(&Anomaly::RequestGap) {
                        p.tx.anomalies.push(Anomaly::RequestGap);
                    }
                }
                if within {
                    if finished {
                        self.end_request(at, done);
                    }
                } else {
                    // The body's end is lost: finish it, find the next one.
                    // What the gap held beyond a known end began the next
                    // request.
                    self.req_gap_unclaimed += beyond;
                    let info = self.req.finish_body();
                    self.finish_request(info, at);
                    self.req.lose_track();
                    self.req_lost = true;
                    self.try_finish(done);
                }
            }
        }
    }

    fn resp_gap(&mut self, len: u64, off: u64, at: (Ts, u64), done: &mut Done, stats: &mut HttpStats) {
        match self.resp.gap(len) {
            GapAt::Off => {}
            GapAt::Resync => {
                self.resp_lost = true;
                // Whose answer were the missing bytes? The current owner's,
                // unless a request sent after it (a larger acknowledgment)
                // is answered at or before this offset.
                let waiting = self.queue.waiting_where(|p| p.req_done);
                let target = self.owner_among(&waiting, off).and_then(|t| self.queue.get(t));
                let newer = match (target, self.resync_owner.is_some()) {
                    (Some(t), true) => t.peer_ack.is_some_and(|a| self.resync_owner_ack.is_none_or(|o| a > o)),
                    (Some(t), false) => t.tx.timing.req_end.is_some_and(|e| e <= at.0),
                    (None, _) => false,
                };
                if newer {
                    self.release_resync_owner(done);
                    self.lose_next_response(len, off, done);
                } else if let Some(tx) = self.resync_owner.as_mut() {
                    tx.missing_bytes += len;
                }
            }
            GapAt::Idle | GapAt::Head(_) => {
                // The gap begins at (or inside) the head of the next
                // response: the oldest waiting request lost its answer.
                self.lose_next_response(len, off, done);
                self.resp_lost = true;
            }
            GapAt::Body { within, mine, beyond, finished } => {
                if let Some(p) = self.queue.current_mut() {
                    p.tx.missing_bytes += mine;
                    if !p.tx.anomalies.contains(&Anomaly::ResponseGap) {
                        p.tx.anomalies.push(Anomaly::ResponseGap);
                    }
                }
                if within {
                    if finished {
                        self.end_response(at, None, done, stats);
                    }
                } else {
                    // The body's end is lost: finish the response here. What
                    // the gap held beyond a known end began the next
                    // response.
                    self.end_response(at, None, done, stats);
                    if beyond > 0 {
                        self.lose_next_response(beyond, off + (len - beyond), done);
                    }
                    self.resp.lose_track();
                    self.resp_lost = true;
                }
            }
        }
    }

    pub(super) fn half_close(&mut self, hc: &HalfClose, _cfg: &HttpConfig, stats: &mut HttpStats) -> Done {
        let mut done = Vec::new();
        match hc.dir {
            Direction::ClientToServer => self.client_fin = Some(hc.ts),
            Direction::ServerToClient => {
                // The server is done sending: a close-delimited body ends
                // here; a body of known length that has not ended never will.
                match self.resp.body_framing() {
                    Some(Framing::Close) => self.end_response((hc.ts, hc.frame), None, &mut done, stats),
                    Some(_) => {
                        let info = self.resp.finish_body();
                        if let Some(p) = self.queue.current_mut() {
                            p.resp_done = true;
                            if let Some(info) = info {
                                label_budget(&mut p.tx, &info);
                                p.tx.response_body = info;
                            }
                            if p.tx.outcome == Outcome::Complete {
                                p.tx.outcome = Outcome::Truncated;
                            }
                        }
                        self.try_finish(&mut done);
                    }
                    None => {}
                }
            }
        }
        done
    }

    pub(super) fn close(&mut self, c: &Close, cfg: &HttpConfig, stats: &mut HttpStats) -> Done {
        let mut done = Vec::new();
        self.end_bare_request(cfg, stats, &mut done);
        // A body still being received ends with the connection.
        if let Some((info, _)) = self.req.shut()
            && let Some(p) = self.queue.back_mut()
            && !p.req_done
        {
            label_budget(&mut p.tx, &info);
            p.tx.request_body = info;
        }
        let last = self.resp.last().0;
        if let Some((info, framing)) = self.resp.shut()
            && let Some(p) = self.queue.current_mut()
        {
            label_budget(&mut p.tx, &info);
            p.tx.response_body = info;
            if framing == Framing::Close && matches!(c.how, CloseHow::Fin { .. }) {
                p.resp_done = true;
                p.tx.timing.resp_end = Some(last);
            }
        }
        self.held = None;
        self.held_charge.set(0);
        self.try_finish(&mut done);
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
        let stall_since = self.queue.iter_mut().find(|p| !p.resp_done).and_then(|p| p.tx.timing.req_end);
        while let Some(mut p) = self.queue.pop_front() {
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

/// A request that stops waiting for its answer: too many were waiting, or
/// the memory budget was full.
fn give_up(mut old: Pending, why: Anomaly, stats: &mut HttpStats, done: &mut Done) {
    stats.pending_overflow += 1;
    old.tx.anomalies.push(Anomaly::PendingOverflow);
    old.tx.anomalies.push(why);
    // Its answer will not be known; a malformed request stays malformed.
    if old.tx.outcome != Outcome::Malformed {
        old.tx.outcome = Outcome::CaptureGap;
    }
    settle(&mut old.tx, None);
    done.push(old.tx);
}

/// A body the memory budget cut short (not kept whole, or not decoded)
/// says so on its transaction.
fn label_budget(tx: &mut HttpTransaction, b: &BodyInfo) {
    if b.budget_cut || b.decode_stop == Some(DecodeStop::Budget) {
        tx.anomalies.push(Anomaly::MemoryBudget);
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
