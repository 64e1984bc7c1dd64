//! Re-sending captured requests to a live server (`pov replay send`).
//!
//! [`send`] replays captured HTTP/1.x requests against a target server the
//! way GoReplay does and returns what came back, one [`SendResult`] per
//! request. Requests are grouped by session; a pool of worker threads takes
//! whole sessions, oldest first, and sends each session's requests in their
//! captured order, paced like the capture (or faster), over keep-alive
//! connections that follow the captured ones, with the session's cookies
//! mapped to the ones the target issued during the replay.
//!
//! Only std networking is used (blocking sockets with timeouts); response
//! heads are parsed with `httparse`.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One captured request to re-send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRequest {
    /// Session id: the requests of one session are replayed in order by one
    /// worker and share a cookie jar.
    pub session: String,
    /// Captured connection id: the requests of one captured connection
    /// share one replay connection (keep-alive) when the server allows.
    pub conn: u64,
    /// Captured request start, ns since the epoch (for pacing).
    pub start_ns: i64,
    /// The request method, as captured.
    pub method: String,
    /// The request-target as captured (path and query).
    pub target: String,
    /// The captured request headers, raw, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The captured request body, decoded (may be empty).
    pub body: Vec<u8>,
    /// False if the capture did not keep the whole body: such a request is
    /// not sent (outcome `Skipped("body not captured whole")`).
    pub body_complete: bool,
}

/// How to re-send.
#[derive(Clone, Debug, PartialEq)]
pub struct SendConfig {
    /// Where to connect.
    pub target: SocketAddr,
    /// The `Host` header value to send (e.g. `127.0.0.1:8080`).
    pub host: String,
    /// 1.0 = captured pacing; 2.0 = twice as fast; 0 (or anything not
    /// positive and finite) = no pacing, as fast as possible.
    pub speed: f64,
    /// Worker threads (at least one is used); sessions are handed out in
    /// order of their first start.
    pub concurrency: usize,
    /// At most this many requests are sent (attempted); the rest are
    /// `Skipped("over --max-requests")`.
    pub max_requests: usize,
    /// After this much wall time since the replay began nothing new is sent;
    /// the rest are `Skipped("over --max-time")`.
    pub max_time: Duration,
    /// Per request: the connect, the write, and the wait for each read.
    pub timeout: Duration,
    /// Response body bytes kept per response (the length is still counted
    /// in full).
    pub max_body: usize,
}

impl SendConfig {
    /// A configuration for `target`: `Host` set to the target's address,
    /// captured pacing, one worker, no request or time bound, a 10 s
    /// timeout, and 1 MiB of each response body kept.
    pub fn new(target: SocketAddr) -> Self {
        SendConfig {
            target,
            host: target.to_string(),
            speed: 1.0,
            concurrency: 1,
            max_requests: usize::MAX,
            max_time: Duration::MAX,
            timeout: Duration::from_secs(10),
            max_body: 1 << 20,
        }
    }
}

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// A full answer came back.
    Answered,
    /// The connect was refused.
    Refused,
    /// The connection was reset (or the pipe broken, or the connection
    /// aborted) before the answer was complete.
    Reset,
    /// The connect, a write, or a wait for a read timed out.
    Timeout,
    /// The server closed the connection before a full answer.
    Closed,
    /// Anything else (a malformed answer, an unsendable request, ...).
    Error(String),
    /// Not sent; the reason says why.
    Skipped(String),
}

impl SendOutcome {
    /// A short lower-case name for the outcome (`answered`, `refused`,
    /// `reset`, `timeout`, `closed`, `error`, `skipped`), the text left out.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendOutcome::Answered => "answered",
            SendOutcome::Refused => "refused",
            SendOutcome::Reset => "reset",
            SendOutcome::Timeout => "timeout",
            SendOutcome::Closed => "closed",
            SendOutcome::Error(_) => "error",
            SendOutcome::Skipped(_) => "skipped",
        }
    }
}

/// What came back for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResult {
    /// Index into the input slice.
    pub index: usize,
    /// What became of the request.
    pub outcome: SendOutcome,
    /// The final (not 1xx-interim) status, if its head arrived.
    pub status: Option<u16>,
    /// The reason phrase of that status line.
    pub reason: String,
    /// The response headers, raw, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Up to `max_body` bytes of the de-chunked body.
    pub body: Vec<u8>,
    /// The full de-chunked body length (as far as it arrived).
    pub body_len: u64,
    /// From the request's last byte written to the response's first byte.
    pub ttfb: Option<Duration>,
    /// From sending (the connect included, when one was needed) to the
    /// answer's last byte, or to the failure.
    pub total: Option<Duration>,
    /// Wall time since the replay began when the request was sent.
    pub sent_at: Option<Duration>,
}

impl SendResult {
    /// An empty result for input `index` with `outcome`.
    pub fn new(index: usize, outcome: SendOutcome) -> Self {
        SendResult {
            index,
            outcome,
            status: None,
            reason: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            body_len: 0,
            ttfb: None,
            total: None,
            sent_at: None,
        }
    }

    fn skipped(index: usize, why: &str) -> Self {
        SendResult::new(index, SendOutcome::Skipped(why.to_string()))
    }
}

/// Re-sends `reqs` to `cfg.target` and returns one result per input, in
/// input order (`index` == position).
///
/// Requests are grouped by `session`; sessions go out in order of their
/// earliest `start_ns` (ties: input order), each session's requests in
/// `start_ns` order (ties: input order), whole sessions handed to
/// `cfg.concurrency` worker threads. With one worker the sending order is
/// exactly session by session. A request is not sent before
/// `replay begin + (start_ns - earliest start) / speed`.
///
/// `progress(n)` is called, from the worker threads, with the number of
/// requests done (sent or skipped) so far.
pub fn send(reqs: &[SendRequest], cfg: &SendConfig, progress: &(dyn Fn(usize) + Sync)) -> Vec<SendResult> {
    let sessions = sessions(reqs);
    let begin = Instant::now();
    let run = Run {
        reqs,
        cfg,
        begin,
        deadline: begin.checked_add(cfg.max_time),
        t0: reqs.iter().map(|r| r.start_ns).min().unwrap_or(0),
        next: AtomicUsize::new(0),
        attempted: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        progress,
    };
    let workers = cfg.concurrency.max(1).min(sessions.len());
    let mut slots: Vec<Option<SendResult>> = (0..reqs.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(|| run.worker(&sessions))).collect();
        for h in handles {
            // A worker that panicked leaves its slots empty (filled below);
            // joining it here keeps the panic from spreading to the caller.
            if let Ok(results) = h.join() {
                for r in results {
                    let i = r.index;
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(r);
                    }
                }
            }
        }
    });
    slots
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| SendResult::new(i, SendOutcome::Error("replay worker failed".into()))))
        .collect()
}

/// The sessions, each as input indices in sending order, oldest first.
fn sessions(reqs: &[SendRequest]) -> Vec<Vec<usize>> {
    let mut by: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in reqs.iter().enumerate() {
        by.entry(r.session.as_str()).or_default().push(i);
    }
    let mut list: Vec<Vec<usize>> = by.into_values().collect();
    for l in &mut list {
        l.sort_by_key(|&i| (reqs[i].start_ns, i));
    }
    list.sort_by_key(|l| l.first().map(|&i| (reqs[i].start_ns, i)));
    list
}

/// State shared by the workers of one replay.
struct Run<'a> {
    reqs: &'a [SendRequest],
    cfg: &'a SendConfig,
    begin: Instant,
    /// `begin + max_time`; None when that is beyond what an Instant holds.
    deadline: Option<Instant>,
    /// The earliest captured start.
    t0: i64,
    /// The next session to hand out.
    next: AtomicUsize,
    /// Requests attempted so far (for `max_requests`).
    attempted: AtomicUsize,
    /// Requests done so far (for `progress`).
    done: AtomicUsize,
    progress: &'a (dyn Fn(usize) + Sync),
}

/// A session's replay state: its cookie jar and its open connections.
#[derive(Default)]
struct Session {
    jar: Jar,
    conns: HashMap<u64, TcpStream>,
}

impl Run<'_> {
    /// Takes whole sessions until none is left; returns their results.
    fn worker(&self, sessions: &[Vec<usize>]) -> Vec<SendResult> {
        let mut out = Vec::new();
        while let Some(order) = sessions.get(self.next.fetch_add(1, Ordering::SeqCst)) {
            let mut st = Session::default();
            for &i in order {
                out.push(self.one(i, &mut st));
                let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
                (self.progress)(n);
            }
        }
        out
    }

    /// When a request captured at `start_ns` is due; None: no pacing.
    fn due(&self, start_ns: i64) -> Option<Instant> {
        let speed = self.cfg.speed;
        if !(speed.is_finite() && speed > 0.0) {
            return None;
        }
        let offset_ns = start_ns.saturating_sub(self.t0).max(0) as f64 / speed;
        // Capped at a year so that the addition cannot overflow.
        let offset = Duration::try_from_secs_f64(offset_ns / 1e9).unwrap_or(Duration::MAX);
        self.begin.checked_add(offset.min(Duration::from_secs(365 * 86_400)))
    }

    /// Sends request `index` (or skips it) within session state `st`.
    fn one(&self, index: usize, st: &mut Session) -> SendResult {
        let Some(req) = self.reqs.get(index) else {
            return SendResult::new(index, SendOutcome::Error("no such request".into()));
        };
        if !req.body_complete {
            return SendResult::skipped(index, "body not captured whole");
        }
        let due = self.due(req.start_ns);
        let late = |deadline: Instant| Instant::now() >= deadline || due.is_some_and(|d| d > deadline);
        if self.deadline.is_some_and(late) {
            return SendResult::skipped(index, "over --max-time");
        }
        let wire = match request_bytes(req, &self.cfg.host, &st.jar) {
            Ok(w) => w,
            Err(e) => return SendResult::new(index, SendOutcome::Error(e)),
        };
        let max = self.cfg.max_requests;
        if self.attempted.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| (a < max).then_some(a + 1)).is_err() {
            return SendResult::skipped(index, "over --max-requests");
        }
        if let Some(due) = due {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let sent = Instant::now();
        let head_req = req.method.eq_ignore_ascii_case("HEAD");
        let ex = exchange(self.cfg, &mut st.conns, req.conn, &wire, head_req);
        let mut r = SendResult::new(index, ex.outcome);
        r.total = Some(sent.elapsed());
        r.sent_at = Some(sent.saturating_duration_since(self.begin));
        r.ttfb = ex.ttfb;
        r.body = ex.body.kept;
        r.body_len = ex.body.len;
        if let Some(h) = ex.head {
            st.jar.update(&h.headers);
            r.status = Some(h.status);
            r.reason = h.reason;
            r.headers = h.headers;
        }
        r
    }
}

// ---------------------------------------------------------------------------
// The request

/// Captured headers never sent: hop-by-hop ones, and the framing, which is
/// rebuilt from the decoded body.
const DROPPED: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te", "upgrade", "expect"];

/// An RFC 9110 token (method, header name).
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value that can go on the wire as is.
fn value_ok(v: &[u8]) -> bool {
    !v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

fn push_header(w: &mut Vec<u8>, name: &str, value: &[u8]) {
    w.extend_from_slice(name.as_bytes());
    w.extend_from_slice(b": ");
    w.extend_from_slice(value);
    w.extend_from_slice(b"\r\n");
}

/// The bytes of `req` as re-sent: HTTP/1.1, `Host` rewritten, hop-by-hop
/// and framing headers dropped, `Accept-Encoding: identity`, cookies mapped
/// through `jar`, `Content-Length` when there is a body (or the method
/// expects one).
fn request_bytes(req: &SendRequest, host: &str, jar: &Jar) -> Result<Vec<u8>, String> {
    if !is_token(req.method.as_bytes()) {
        return Err(format!("method {:?} not sendable", req.method));
    }
    if req.target.is_empty() || req.target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("request-target {:?} not sendable", req.target));
    }
    if host.is_empty() || !value_ok(host.as_bytes()) {
        return Err(format!("host {host:?} not sendable"));
    }
    let mut w = Vec::with_capacity(512 + req.body.len());
    for part in [req.method.as_bytes(), b" ", req.target.as_bytes(), b" HTTP/1.1\r\n"] {
        w.extend_from_slice(part);
    }
    if !req.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        push_header(&mut w, "Host", host.as_bytes());
    }
    let (mut host_done, mut encoding_done) = (false, false);
    for (name, value) in &req.headers {
        if !is_token(name.as_bytes()) || !value_ok(value) {
            return Err(format!("captured header {name:?} not sendable"));
        }
        if name.eq_ignore_ascii_case("host") {
            if !host_done {
                push_header(&mut w, name, host.as_bytes());
                host_done = true;
            }
        } else if DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            continue;
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            if !encoding_done {
                push_header(&mut w, name, b"identity");
                encoding_done = true;
            }
        } else if name.eq_ignore_ascii_case("cookie") {
            push_header(&mut w, name, &jar.map_cookies(value));
        } else {
            push_header(&mut w, name, value);
        }
    }
    let wants_body = ["POST", "PUT", "PATCH"].iter().any(|m| req.method.eq_ignore_ascii_case(m));
    if !req.body.is_empty() || wants_body {
        push_header(&mut w, "Content-Length", req.body.len().to_string().as_bytes());
    }
    w.extend_from_slice(b"\r\n");
    w.extend_from_slice(&req.body);
    Ok(w)
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// A session's cookies as the target set them: name -> value, in the order
/// first set.
#[derive(Default, Debug)]
struct Jar(Vec<(Vec<u8>, Vec<u8>)>);

impl Jar {
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Takes in the `Set-Cookie` headers of a response: the first
    /// `name=value` of each is set, or removed when `Max-Age` is not
    /// positive.
    fn update(&mut self, headers: &[(String, Vec<u8>)]) {
        for (_, v) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")) {
            let mut parts = v.split(|&b| b == b';');
            let Some((name, value)) = parts.next().and_then(|p| {
                let eq = p.iter().position(|&b| b == b'=')?;
                Some((trim(&p[..eq]), trim(&p[eq + 1..])))
            }) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let expired = parts.any(|a| {
                let a = trim(a);
                let Some(eq) = a.iter().position(|&b| b == b'=') else { return false };
                trim(&a[..eq]).eq_ignore_ascii_case(b"max-age")
                    && std::str::from_utf8(trim(&a[eq + 1..]))
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .is_some_and(|n| n <= 0)
            });
            let at = self.0.iter().position(|(n, _)| n == name);
            match (at, expired) {
                (Some(i), true) => {
                    self.0.remove(i);
                }
                (Some(i), false) => self.0[i].1 = value.to_vec(),
                (None, false) => self.0.push((name.to_vec(), value.to_vec())),
                (None, true) => {}
            }
        }
    }

    /// A captured `Cookie` value with the values of the names the jar holds
    /// replaced by the jar's; everything else as captured, order kept.
    fn map_cookies(&self, captured: &[u8]) -> Vec<u8> {
        if self.0.is_empty() {
            return captured.to_vec();
        }
        let mut out = Vec::with_capacity(captured.len() + 64);
        for (k, piece) in captured.split(|&b| b == b';').enumerate() {
            if k > 0 {
                out.push(b';');
            }
            let lead = piece.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
            let pair = &piece[lead..];
            match pair.iter().position(|&b| b == b'=').and_then(|eq| Some(eq).zip(self.get(trim(&pair[..eq])))) {
                Some((eq, value)) => {
                    out.extend_from_slice(&piece[..lead + eq + 1]);
                    out.extend_from_slice(value);
                }
                None => out.extend_from_slice(piece),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The exchange

/// A parsed response head.
#[derive(Debug)]
struct Head {
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    status: u16,
    reason: String,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Whether a comma-separated header `name` lists `token`.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).flat_map(|v| v.split(|&b| b == b',')).any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Whether the server lets the connection stay open after this answer.
    fn persistent(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.version >= 1 || self.has_token("connection", "keep-alive")
    }
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

fn framing(head: &Head, head_req: bool) -> Result<Framing, String> {
    if head_req || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(Framing::Empty);
    }
    if let Some(te) = head.values("transfer-encoding").last() {
        let last = te.split(|&b| b == b',').map(trim).rfind(|t| !t.is_empty());
        let chunked = last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked { Framing::Chunked } else { Framing::Close });
    }
    let mut len = None;
    for part in head.values("content-length").flat_map(|v| v.split(|&b| b == b',')) {
        let n = parse_digits(trim(part), 10).ok_or("bad Content-Length in the response")?;
        if len.is_some_and(|l| l != n) {
            return Err("conflicting Content-Length in the response".into());
        }
        len = Some(n);
    }
    Ok(len.map_or(Framing::Close, Framing::Length))
}

/// A number of only digits of `radix` (no sign, no blanks).
fn parse_digits(b: &[u8], radix: u32) -> Option<u64> {
    if b.is_empty() || !b.iter().all(|&c| (c as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(b).ok()?, radix).ok()
}

/// Response head bytes allowed.
const HEAD_MAX: usize = 64 * 1024;
/// A chunk-size or trailer line's bytes allowed.
const LINE_MAX: usize = 8 * 1024;
/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why reading an answer stopped short.
enum Fail {
    Io(io::Error),
    Eof,
    Bad(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

fn io_outcome(e: &io::Error) -> SendOutcome {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => SendOutcome::Reset,
        ErrorKind::WouldBlock | ErrorKind::TimedOut => SendOutcome::Timeout,
        ErrorKind::ConnectionRefused => SendOutcome::Refused,
        ErrorKind::UnexpectedEof => SendOutcome::Closed,
        _ => SendOutcome::Error(e.to_string()),
    }
}

impl Fail {
    fn outcome(self) -> SendOutcome {
        match self {
            Fail::Io(e) => io_outcome(&e),
            Fail::Eof => SendOutcome::Closed,
            Fail::Bad(text) => SendOutcome::Error(text),
        }
    }
}

/// A buffered reader over a connection that notes its first byte.
struct Reader<'s> {
    stream: &'s mut TcpStream,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes read so far.
    got: u64,
    /// When the first byte arrived.
    first: Option<Instant>,
}

impl<'s> Reader<'s> {
    fn new(stream: &'s mut TcpStream) -> Self {
        Reader { stream, buf: Vec::new(), pos: 0, got: 0, first: None }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Reads more bytes; `Fail::Eof` when the peer has closed.
    fn fill(&mut self) -> Result<(), Fail> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let read = loop {
            match self.stream.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        match read {
            Ok(0) => Err(Fail::Eof),
            Ok(n) => {
                self.got += n as u64;
                self.first.get_or_insert_with(Instant::now);
                Ok(())
            }
            Err(e) => Err(Fail::Io(e)),
        }
    }

    /// One line, without its CRLF (or LF).
    fn line(&mut self) -> Result<Vec<u8>, Fail> {
        loop {
            if let Some(p) = self.avail().iter().position(|&b| b == b'\n') {
                let mut l = self.avail()[..p].to_vec();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                self.consume(p + 1);
                return Ok(l);
            }
            if self.avail().len() > LINE_MAX {
                return Err(Fail::Bad("chunk line over 8 KiB".into()));
            }
            self.fill()?;
        }
    }
}

/// The body as kept: up to `max` bytes, the length counted in full.
struct Body {
    kept: Vec<u8>,
    len: u64,
    max: usize,
}

impl Body {
    fn push(&mut self, b: &[u8]) {
        let room = self.max.saturating_sub(self.kept.len()).min(b.len());
        self.kept.extend_from_slice(&b[..room]);
        self.len += b.len() as u64;
    }
}

/// The parsed head and its length in `b`, None if more bytes are needed.
fn parse_head(b: &[u8]) -> Result<Option<(Head, usize)>, Fail> {
    if b.is_empty() {
        return Ok(None);
    }
    let mut room = 64;
    loop {
        let mut slots = vec![httparse::EMPTY_HEADER; room];
        let mut resp = httparse::Response::new(&mut slots);
        match resp.parse(b) {
            Ok(httparse::Status::Partial) => return Ok(None),
            Ok(httparse::Status::Complete(n)) => {
                if n > HEAD_MAX {
                    return Err(Fail::Bad("response head over 64 KiB".into()));
                }
                let head = Head {
                    version: resp.version.unwrap_or(1),
                    status: resp.code.unwrap_or(0),
                    reason: resp.reason.unwrap_or("").to_string(),
                    headers: resp.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect(),
                };
                return Ok(Some((head, n)));
            }
            Err(httparse::Error::TooManyHeaders) if room < HEAD_MAX / 4 => room *= 4,
            Err(e) => return Err(Fail::Bad(format!("bad response head: {e}"))),
        }
    }
}

/// The final head, interim 1xx answers (but 101) skipped.
fn read_head(r: &mut Reader<'_>) -> Result<Head, Fail> {
    loop {
        if let Some((head, n)) = parse_head(r.avail())? {
            r.consume(n);
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            return Ok(head);
        }
        if r.avail().len() > HEAD_MAX {
            return Err(Fail::Bad("response head over 64 KiB".into()));
        }
        r.fill()?;
    }
}

fn read_len(r: &mut Reader<'_>, mut left: u64, body: &mut Body) -> Result<(), Fail> {
    while left > 0 {
        if r.avail().is_empty() {
            r.fill()?;
        }
        let take = r.avail().len().min(usize::try_from(left).unwrap_or(usize::MAX));
        body.push(&r.avail()[..take]);
        r.consume(take);
        left -= take as u64;
    }
    Ok(())
}

fn read_chunked(r: &mut Reader<'_>, body: &mut Body) -> Result<(), Fail> {
    loop {
        let line = r.line()?;
        let size = line.split(|&b| b == b';').next().map(trim).unwrap_or_default();
        let size = parse_digits(size, 16).ok_or_else(|| Fail::Bad("bad chunk size".into()))?;
        if size == 0 {
            let mut trailers = 0;
            loop {
                let t = r.line()?;
                if t.is_empty() {
                    return Ok(());
                }
                trailers += t.len();
                if trailers > HEAD_MAX {
                    return Err(Fail::Bad("chunked trailers over 64 KiB".into()));
                }
            }
        }
        read_len(r, size, body)?;
        if !r.line()?.is_empty() {
            return Err(Fail::Bad("bad chunk end".into()));
        }
    }
}

fn read_close(r: &mut Reader<'_>, body: &mut Body) -> Result<(), Fail> {
    loop {
        let n = r.avail().len();
        body.push(r.avail());
        r.consume(n);
        match r.fill() {
            Ok(()) => {}
            Err(Fail::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Reads one answer into `head` and `body`; says whether the connection
/// can carry the next request.
fn read_answer(r: &mut Reader<'_>, head_req: bool, head: &mut Option<Head>, body: &mut Body) -> Result<bool, Fail> {
    let h = head.insert(read_head(r)?);
    let framing = framing(h, head_req).map_err(Fail::Bad)?;
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => read_len(r, n, body)?,
        Framing::Chunked => read_chunked(r, body)?,
        Framing::Close => read_close(r, body)?,
    }
    Ok(framing != Framing::Close && h.status != 101 && h.persistent() && r.avail().is_empty())
}

/// What one request's exchange gave.
struct Exchange {
    outcome: SendOutcome,
    head: Option<Head>,
    body: Body,
    ttfb: Option<Duration>,
}

fn timeout(cfg: &SendConfig) -> Duration {
    cfg.timeout.max(Duration::from_millis(1))
}

fn connect(cfg: &SendConfig) -> Result<TcpStream, SendOutcome> {
    let t = timeout(cfg);
    let s = TcpStream::connect_timeout(&cfg.target, t).map_err(|e| match e.kind() {
        ErrorKind::ConnectionRefused => SendOutcome::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => SendOutcome::Timeout,
        _ => SendOutcome::Error(format!("connect: {e}")),
    })?;
    s.set_read_timeout(Some(t))
        .and_then(|()| s.set_write_timeout(Some(t)))
        .map_err(|e| SendOutcome::Error(format!("socket setup: {e}")))?;
    // Only latency: a failure here changes nothing else.
    s.set_nodelay(true).ok();
    Ok(s)
}

/// Sends `wire` on the session's connection for captured `conn` (opening
/// one if needed) and reads the answer. A reused connection that fails the
/// write, or gives no byte back before closing or resetting (a keep-alive
/// the server dropped while idle), is replaced once and the request sent
/// again.
fn exchange(cfg: &SendConfig, conns: &mut HashMap<u64, TcpStream>, conn: u64, wire: &[u8], head_req: bool) -> Exchange {
    let failed =
        |outcome| Exchange { outcome, head: None, body: Body { kept: Vec::new(), len: 0, max: 0 }, ttfb: None };
    let mut retried = false;
    loop {
        let (mut stream, reused) = match conns.remove(&conn) {
            Some(s) => (s, true),
            None => match connect(cfg) {
                Ok(s) => (s, false),
                Err(outcome) => return failed(outcome),
            },
        };
        if let Err(e) = stream.write_all(wire).and_then(|()| stream.flush()) {
            if reused && !retried {
                retried = true;
                continue;
            }
            return failed(io_outcome(&e));
        }
        let wrote = Instant::now();
        let mut head = None;
        let mut body = Body { kept: Vec::new(), len: 0, max: cfg.max_body };
        let mut r = Reader::new(&mut stream);
        let read = read_answer(&mut r, head_req, &mut head, &mut body);
        let (got, first) = (r.got, r.first);
        let outcome = match read {
            Ok(reusable) => {
                if reusable {
                    conns.insert(conn, stream);
                }
                SendOutcome::Answered
            }
            Err(fail) => fail.outcome(),
        };
        if reused && !retried && got == 0 && matches!(outcome, SendOutcome::Closed | SendOutcome::Reset) {
            retried = true;
            continue;
        }
        let ttfb = first.map(|f| f.saturating_duration_since(wrote));
        return Exchange { outcome, head, body, ttfb };
    }
}
