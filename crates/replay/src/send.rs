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
//! What goes to the target is safe by default (docs/replay.md, "What is
//! sent and what is not"): the request-target is always a path on the
//! target (absolute-form is cut to its path and query), CONNECT, TRACE and
//! TRACK are withheld, routing headers (`Forwarded`, `X-Forwarded-*`,
//! `Proxy-*` ...) and headers the captured `Connection` names are dropped
//! unless [`SendConfig::keep_headers`] names them, and captured credentials
//! (`Authorization`, credential-named headers, captured cookie values, and
//! requests the caller marks as carrying a credential in their query or
//! body) stay home unless [`SendConfig::with_credentials`]. Cookies the
//! target itself sets during the replay are always sent back.
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
    /// The request-target as captured: origin-form (path and query),
    /// absolute-form (sent as its path and query), asterisk-form (`*`, sent
    /// with OPTIONS only) or authority-form (never sent).
    pub target: String,
    /// The captured request headers, raw, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The captured request body, decoded (may be empty).
    pub body: Vec<u8>,
    /// False if the capture did not keep the whole body: such a request is
    /// not sent (outcome `Skipped("body not captured whole")`).
    pub body_complete: bool,
    /// Where the request carries a credential outside its headers, if it
    /// does (`"query"`, `"form body"` ...: the caller decides by its
    /// privacy rules). Such a request is withheld unless
    /// [`SendConfig::with_credentials`].
    pub credential: Option<String>,
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
    /// Captured headers sent although a rule would drop them: routing
    /// headers, headers the captured `Connection` names, credential headers
    /// (names, any case). The headers pov always rebuilds or never forwards
    /// ([`never_forwarded`]) cannot be kept.
    pub keep_headers: Vec<String>,
    /// Send the captured credentials: `Authorization` and other
    /// credential headers, captured cookie values, and requests with a
    /// [`SendRequest::credential`].
    pub with_credentials: bool,
}

impl SendConfig {
    /// A configuration for `target`: `Host` set to the target's address,
    /// captured pacing, one worker, no request or time bound, a 10 s
    /// timeout, 1 MiB of each response body kept, no dropped header kept and
    /// no captured credential sent.
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
            keep_headers: Vec::new(),
            with_credentials: false,
        }
    }

    fn keeps(&self, lname: &str) -> bool {
        self.keep_headers.iter().any(|k| k.eq_ignore_ascii_case(lname))
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
    /// Not sent; the reason says why (a limit, a body not captured whole).
    Skipped(String),
    /// Not sent by a safety rule (CONNECT, TRACE, a request-target that is
    /// not a path, a credential in the query or body); the reason says
    /// which.
    Withheld(String),
}

impl SendOutcome {
    /// A short lower-case name for the outcome (`answered`, `refused`,
    /// `reset`, `timeout`, `closed`, `error`, `skipped`, `withheld`), the
    /// text left out.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendOutcome::Answered => "answered",
            SendOutcome::Refused => "refused",
            SendOutcome::Reset => "reset",
            SendOutcome::Timeout => "timeout",
            SendOutcome::Closed => "closed",
            SendOutcome::Error(_) => "error",
            SendOutcome::Skipped(_) => "skipped",
            SendOutcome::Withheld(_) => "withheld",
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
    /// Captured headers a safety rule kept from the target (lower-case
    /// names, each once, in captured order; `cookie` when captured cookie
    /// values were left out). Headers pov always rebuilds or never forwards
    /// (framing, hop-by-hop) are not listed.
    pub stripped: Vec<String>,
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
            stripped: Vec::new(),
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
        if let Err(why) = target_to_send(req, self.cfg) {
            return SendResult::new(index, SendOutcome::Withheld(why));
        }
        if !req.body_complete {
            return SendResult::skipped(index, "body not captured whole");
        }
        let due = self.due(req.start_ns);
        let late = |deadline: Instant| Instant::now() >= deadline || due.is_some_and(|d| d > deadline);
        if self.deadline.is_some_and(late) {
            return SendResult::skipped(index, "over --max-time");
        }
        let Wire { bytes: wire, stripped } = match request_bytes(req, self.cfg, &st.jar) {
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
        r.stripped = stripped;
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
// The request: what is sent and what is not

/// Methods never re-sent: CONNECT opens a tunnel to a host of the
/// capture's choosing; TRACE (and IIS's TRACK) echo the request, captured
/// credentials included, back.
const WITHHELD_METHODS: [&str; 3] = ["CONNECT", "TRACE", "TRACK"];

/// The request-target as sent, or why it cannot be: origin-form as
/// captured, absolute-form cut to its path and query
/// (`http://169.254.169.254/latest/?a` -> `/latest/?a`, an empty path
/// becomes `/`, a fragment goes), `*` with OPTIONS.
fn origin_form<'a>(method: &str, target: &'a str) -> Result<std::borrow::Cow<'a, str>, String> {
    use std::borrow::Cow;
    if target.starts_with('/') {
        return Ok(Cow::Borrowed(target));
    }
    if target == "*" {
        return if method.eq_ignore_ascii_case("OPTIONS") {
            Ok(Cow::Borrowed(target))
        } else {
            Err(format!("request-target * with {method}: only OPTIONS takes it"))
        };
    }
    // absolute-URI = scheme ":" hier-part; anything else is authority-form
    // (`host:port`, CONNECT's) or not a request-target.
    let scheme_end = target.find(':').filter(|&c| {
        let scheme = target.as_bytes().get(..c).unwrap_or_default();
        scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme.iter().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
    });
    let Some(c) = scheme_end else {
        return Err("authority-form request-target: never re-sent".into());
    };
    let rest = &target[c + 1..];
    let tail = match rest.strip_prefix("//") {
        // The authority (userinfo included) goes; the Host is the target's.
        Some(after) => &after[after.find(['/', '?', '#']).unwrap_or(after.len())..],
        None => rest,
    };
    let tail = &tail[..tail.find('#').unwrap_or(tail.len())];
    if tail.is_empty() {
        Ok(Cow::Borrowed("/"))
    } else if tail.starts_with('/') {
        Ok(Cow::Borrowed(tail))
    } else if tail.starts_with('?') {
        Ok(Cow::Owned(format!("/{tail}")))
    } else {
        // `host:port` parses as a scheme and a path with no slash.
        Err("authority-form request-target: never re-sent".into())
    }
}

/// The request-target of `req` as sent; or why the safety rules withhold
/// `req` (its method, its request-target, a credential in it).
fn target_to_send<'a>(req: &'a SendRequest, cfg: &SendConfig) -> Result<std::borrow::Cow<'a, str>, String> {
    if let Some(m) = WITHHELD_METHODS.iter().find(|m| req.method.eq_ignore_ascii_case(m)) {
        return Err(if *m == "CONNECT" {
            "CONNECT: a tunnel to another host, never re-sent".into()
        } else {
            format!("{m}: echoes the request back, never re-sent")
        });
    }
    let target = origin_form(&req.method, &req.target)?;
    if let Some(place) = &req.credential
        && !cfg.with_credentials
    {
        return Err(format!("a credential in the {place}: sent only with --with-credentials"));
    }
    Ok(target)
}

/// Captured headers never sent, whatever `keep_headers` says (lower-case):
/// `Host` and `Accept-Encoding` are rewritten, the framing is rebuilt from
/// the decoded body, and hop-by-hop headers belong to the captured
/// connection, not to the request.
const NEVER_FORWARDED: [&str; 12] = [
    "host",
    "accept-encoding",
    "content-length",
    "transfer-encoding",
    "expect",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
];

/// Whether pov never forwards a captured header of this name as captured
/// (`Host` and `Accept-Encoding` are rewritten, the framing rebuilt,
/// hop-by-hop headers dropped); `keep_headers` cannot bring it back.
pub fn never_forwarded(name: &str) -> bool {
    NEVER_FORWARDED.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Routing headers (lower-case exact names): they tell a proxy or the
/// application where the request is for, who sent it, or which method it
/// really is. Besides these, every `x-forwarded-*`, `x-original-*`,
/// `x-envoy-*` and `proxy-*` name.
const ROUTING: [&str; 17] = [
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "via",
    "max-forwards",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-host",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether a header (lower-case name) routes the request: dropped unless
/// kept.
pub fn is_routing_header(lname: &str) -> bool {
    ["x-forwarded-", "x-original-", "x-envoy-", "proxy-"].iter().any(|p| lname.starts_with(p))
        || ROUTING.contains(&lname)
}

/// Whether a header (lower-case name) carries a credential: the headers
/// whose values outputs mask ([`pov_privacy::is_secret_header_name`]:
/// `Authorization`, `X-Api-Key`, `X-Auth-Token`, `X-CSRF-Token`,
/// `X-Session-Id` ...) and any name with `cookie` in it. (`Cookie` itself is
/// handled apart: the target's own cookies are always sent.)
pub fn is_credential_header(lname: &str) -> bool {
    lname.contains("cookie") || pov_privacy::is_secret_header_name(lname)
}

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

/// A request as it goes on the wire.
struct Wire {
    bytes: Vec<u8>,
    /// What the safety rules kept back ([`SendResult::stripped`]).
    stripped: Vec<String>,
}

/// The bytes of `req` as re-sent: HTTP/1.1, the request-target as
/// [`origin_form`] makes it, `Host` the target's, `Accept-Encoding:
/// identity`, `Content-Length` when there is a body (or the method expects
/// one); framing and hop-by-hop headers dropped, and headers the captured
/// `Connection` names, routing headers and credential headers unless kept;
/// cookies mapped through `jar`, and the captured values of the others sent
/// only with credentials.
fn request_bytes(req: &SendRequest, cfg: &SendConfig, jar: &Jar) -> Result<Wire, String> {
    let host = cfg.host.as_str();
    if !is_token(req.method.as_bytes()) {
        return Err(format!("method {:?} not sendable", req.method));
    }
    let target = target_to_send(req, cfg)?;
    // The target is not echoed: it may hold a secret.
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("request-target not sendable (a blank or control byte in it)".into());
    }
    if host.is_empty() || !value_ok(host.as_bytes()) {
        return Err(format!("host {host:?} not sendable"));
    }
    let mut w = Vec::with_capacity(512 + req.body.len());
    for part in [req.method.as_bytes(), b" ", target.as_bytes(), b" HTTP/1.1\r\n"] {
        w.extend_from_slice(part);
    }
    if !req.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        push_header(&mut w, "Host", host.as_bytes());
    }
    // Headers the captured Connection header names are the captured
    // connection's (RFC 9110 7.6.1).
    let listed: Vec<String> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(trim(t)).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut stripped: Vec<String> = Vec::new();
    let mut strip = |lname: String| {
        if !stripped.contains(&lname) {
            stripped.push(lname);
        }
    };
    let (mut host_done, mut encoding_done) = (false, false);
    for (name, value) in &req.headers {
        if !is_token(name.as_bytes()) || !value_ok(value) {
            return Err(format!("captured header {name:?} not sendable"));
        }
        let lname = name.to_ascii_lowercase();
        let kept = cfg.keeps(&lname);
        if lname == "host" {
            if !host_done {
                push_header(&mut w, name, host.as_bytes());
                host_done = true;
            }
        } else if lname == "accept-encoding" {
            if !encoding_done {
                push_header(&mut w, name, b"identity");
                encoding_done = true;
            }
        } else if never_forwarded(&lname) {
            continue;
        } else if !kept && (listed.contains(&lname) || is_routing_header(&lname)) {
            strip(lname);
        } else if lname == "cookie" {
            let (mapped, left_out) = jar.map_cookies(value, cfg.with_credentials || kept);
            if left_out {
                strip(lname);
            }
            if !mapped.is_empty() {
                push_header(&mut w, name, &mapped);
            }
        } else if !kept && !cfg.with_credentials && is_credential_header(&lname) {
            strip(lname);
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
    Ok(Wire { bytes: w, stripped })
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
    /// replaced by the jar's, order kept. The other pieces go as captured
    /// with `captured`, else they are left out (and the second value says
    /// whether any was): then only the target's own cookies go back.
    fn map_cookies(&self, value: &[u8], captured: bool) -> (Vec<u8>, bool) {
        if captured && self.0.is_empty() {
            return (value.to_vec(), false);
        }
        let mut out = Vec::with_capacity(value.len() + 64);
        let mut left_out = false;
        for (k, piece) in value.split(|&b| b == b';').enumerate() {
            let lead = piece.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
            let pair = &piece[lead..];
            let ours = pair.iter().position(|&b| b == b'=').and_then(|eq| Some(eq).zip(self.get(trim(&pair[..eq]))));
            if captured {
                if k > 0 {
                    out.push(b';');
                }
                match ours {
                    Some((eq, v)) => {
                        out.extend_from_slice(&piece[..lead + eq + 1]);
                        out.extend_from_slice(v);
                    }
                    None => out.extend_from_slice(piece),
                }
            } else if let Some((eq, v)) = ours {
                if !out.is_empty() {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(trim(&pair[..eq]));
                out.push(b'=');
                out.extend_from_slice(v);
            } else if !trim(piece).is_empty() {
                left_out = true;
            }
        }
        (out, left_out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    use std::thread;

    /// A captured start for the tests: ms after this.
    const T0: i64 = 1_700_000_000_000_000_000;

    /// A request as a test server received it.
    #[derive(Clone, Debug)]
    struct Seen {
        /// The server's connection number (0, 1, ... in accept order).
        conn: usize,
        raw: Vec<u8>,
        target: String,
        headers: Vec<(String, Vec<u8>)>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<String> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        }
    }

    /// What a test server does with a request.
    enum Act {
        /// Writes these bytes and waits for the next request.
        Reply(Vec<u8>),
        /// Writes these bytes one at a time, then waits for the next request.
        Trickle(Vec<u8>),
        /// Writes these bytes and closes the connection.
        Close(Vec<u8>),
    }

    /// A loopback server that accepts for at most 20 s (or until dropped)
    /// and runs `handler` on each connection in its own thread.
    struct Server {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        accepted: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: Option<thread::JoinHandle<()>>,
    }

    impl Server {
        fn raw(handler: impl Fn(TcpStream, usize, &Mutex<Vec<Seen>>) + Send + Sync + 'static) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let accepted = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let handler = Arc::new(handler);
            let (seen2, accepted2, stop2) = (seen.clone(), accepted.clone(), stop.clone());
            let thread = thread::spawn(move || {
                let began = Instant::now();
                while !stop2.load(Ordering::SeqCst) && began.elapsed() < Duration::from_secs(20) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(false).unwrap();
                            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                            s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                            let conn = accepted2.fetch_add(1, Ordering::SeqCst);
                            let (seen, handler) = (seen2.clone(), handler.clone());
                            thread::spawn(move || handler(s, conn, &seen));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
                        Err(_) => break,
                    }
                }
            });
            Server { addr, seen, accepted, stop, thread: Some(thread) }
        }

        /// An HTTP server: records each request, then acts as `respond` says.
        fn start(respond: impl Fn(&Seen) -> Act + Send + Sync + 'static) -> Server {
            Server::raw(move |mut s, conn, seen| {
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut s, &mut buf, conn) {
                    seen.lock().unwrap().push(req.clone());
                    match respond(&req) {
                        Act::Reply(b) => {
                            if s.write_all(&b).is_err() {
                                return;
                            }
                        }
                        Act::Trickle(b) => {
                            s.set_nodelay(true).unwrap();
                            for byte in b {
                                if s.write_all(&[byte]).is_err() {
                                    return;
                                }
                                thread::sleep(Duration::from_micros(300));
                            }
                        }
                        Act::Close(b) => {
                            s.write_all(&b).ok();
                            return;
                        }
                    }
                }
            })
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn targets(&self) -> Vec<String> {
            self.seen().into_iter().map(|s| s.target).collect()
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                t.join().ok();
            }
        }
    }

    /// Reads one request (head and Content-Length body); None at EOF,
    /// timeout or error.
    fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, conn: usize) -> Option<Seen> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Request::new(&mut slots);
            if let Ok(httparse::Status::Complete(n)) = r.parse(buf) {
                let headers: Vec<(String, Vec<u8>)> =
                    r.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
                let target = r.path.unwrap_or("").to_string();
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| std::str::from_utf8(v).unwrap().parse::<usize>().unwrap());
                while buf.len() < n + len {
                    read_some(s, buf)?;
                }
                let raw = buf.drain(..n + len).collect();
                return Some(Seen { conn, raw, target, headers });
            }
            read_some(s, buf)?;
        }
    }

    fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
        let mut tmp = [0u8; 4096];
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                Some(())
            }
        }
    }

    /// Reads until the end of a request head (for the raw servers).
    fn read_head_raw(s: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if read_some(s, &mut buf).is_none() {
                break;
            }
        }
        buf
    }

    fn ok(body: &str) -> Act {
        Act::Reply(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes())
    }

    fn req(session: &str, conn: u64, start_ms: i64, method: &str, target: &str) -> SendRequest {
        SendRequest {
            session: session.into(),
            conn,
            start_ns: T0 + start_ms * 1_000_000,
            method: method.into(),
            target: target.into(),
            headers: vec![("Host".into(), b"shop.example".to_vec())],
            body: Vec::new(),
            body_complete: true,
            credential: None,
        }
    }

    fn get(session: &str, conn: u64, start_ms: i64, target: &str) -> SendRequest {
        req(session, conn, start_ms, "GET", target)
    }

    fn hdrs(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
    }

    /// No pacing, one worker, no bounds, a 3 s timeout.
    fn config(addr: SocketAddr) -> SendConfig {
        SendConfig {
            speed: 0.0,
            timeout: Duration::from_secs(3),
            max_time: Duration::from_secs(30),
            ..SendConfig::new(addr)
        }
    }

    fn run(reqs: &[SendRequest], cfg: &SendConfig) -> Vec<SendResult> {
        let res = send(reqs, cfg, &|_| {});
        assert_eq!(res.len(), reqs.len());
        for (i, r) in res.iter().enumerate() {
            assert_eq!(r.index, i);
        }
        res
    }

    fn outcomes(res: &[SendResult]) -> Vec<SendOutcome> {
        res.iter().map(|r| r.outcome.clone()).collect()
    }

    fn skipped(why: &str) -> SendOutcome {
        SendOutcome::Skipped(why.into())
    }

    #[test]
    fn host_rewritten_hop_headers_dropped_body_sent_as_captured() {
        let srv = Server::start(|_| ok("done"));
        let host = srv.addr.to_string();
        let mut post = req("s", 1, 0, "POST", "/cart/add?x=1&y=%20");
        post.headers = hdrs(&[
            ("Host", b"shop.example"),
            ("User-Agent", b"pov-test"),
            ("Connection", b"keep-alive"),
            ("Keep-Alive", b"timeout=5"),
            ("Accept-Encoding", b"gzip, br"),
            ("Content-Length", b"999"),
            ("Transfer-Encoding", b"chunked"),
            ("Expect", b"100-continue"),
            ("TE", b"trailers"),
            ("Upgrade", b"h2c"),
            ("Proxy-Connection", b"keep-alive"),
            ("Content-Type", b"application/x-www-form-urlencoded"),
            ("X-Raw", b"a\xffb"),
            ("accept-encoding", b"deflate"),
        ]);
        post.body = b"sku=42&qty=1".to_vec();
        let mut no_host = get("s", 1, 1, "/");
        no_host.headers = hdrs(&[("Accept", b"*/*")]);
        let mut empty_post = req("s", 1, 2, "POST", "/ping");
        empty_post.headers = hdrs(&[("host", b"shop.example"), ("X-A", b"1")]);
        let mut delete = req("s", 1, 3, "DELETE", "/item/7");
        delete.body = b"x".to_vec();
        let res = run(&[post, no_host, empty_post, delete], &config(srv.addr));
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 4]);
        assert!(res.iter().all(|r| r.status == Some(200) && r.body == b"done" && r.body_len == 4));
        let raw: Vec<Vec<u8>> = srv.seen().into_iter().map(|s| s.raw).collect();
        let mut want_post = format!(
            "POST /cart/add?x=1&y=%20 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pov-test\r\nAccept-Encoding: identity\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nX-Raw: a"
        )
        .into_bytes();
        want_post.extend_from_slice(b"\xffb\r\nContent-Length: 12\r\n\r\nsku=42&qty=1");
        assert_eq!(raw[0], want_post, "{}", String::from_utf8_lossy(&raw[0]));
        assert_eq!(String::from_utf8_lossy(&raw[1]), format!("GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n"));
        assert_eq!(
            String::from_utf8_lossy(&raw[2]),
            format!("POST /ping HTTP/1.1\r\nhost: {host}\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n")
        );
        assert_eq!(
            String::from_utf8_lossy(&raw[3]),
            format!("DELETE /item/7 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\n\r\nx")
        );
    }

    #[test]
    fn unsendable_requests_are_errors_not_sent() {
        let srv = Server::start(|_| ok(""));
        let bad_target = get("s", 1, 0, "/a b");
        let mut bad_header = get("s", 1, 1, "/");
        bad_header.headers.push(("X-Bad".into(), b"a\r\nInjected: 1".to_vec()));
        let bad_method = req("s", 1, 2, "GE T", "/");
        let res = run(&[bad_target, bad_header, bad_method, get("s", 1, 3, "/fine")], &config(srv.addr));
        for r in &res[..3] {
            assert!(matches!(&r.outcome, SendOutcome::Error(e) if e.contains("not sendable")), "{:?}", r.outcome);
        }
        assert_eq!(res[3].outcome, SendOutcome::Answered);
        assert_eq!(srv.targets(), vec!["/fine"]);
    }

    #[test]
    fn one_replay_connection_per_captured_connection() {
        let srv = Server::start(|s| ok(&s.target));
        let reqs = [
            get("s", 1, 0, "/a"),
            get("s", 1, 1, "/b"),
            get("s", 2, 2, "/c"),
            get("s", 1, 3, "/d"),
            // Another session's connection 1 is its own.
            get("t", 1, 4, "/e"),
        ];
        let res = run(&reqs, &config(srv.addr));
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 5]);
        assert_eq!(res[3].body, b"/d");
        let seen = srv.seen();
        let conn_of = |t: &str| seen.iter().find(|s| s.target == t).unwrap().conn;
        assert_eq!(srv.accepted(), 3);
        assert_eq!(conn_of("/a"), conn_of("/b"));
        assert_eq!(conn_of("/a"), conn_of("/d"));
        assert_ne!(conn_of("/a"), conn_of("/c"));
        assert_ne!(conn_of("/e"), conn_of("/a"));
        assert_ne!(conn_of("/e"), conn_of("/c"));
    }

    #[test]
    fn response_framings() {
        let srv = Server::start(|s| {
            match s.target.as_str() {
            "/cl" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc".to_vec()),
            "/head" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec()),
            "/204" => Act::Reply(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
            "/304" => Act::Reply(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n".to_vec()),
            "/continue" => Act::Reply(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
                    .to_vec(),
            ),
            "/chunked" => Act::Reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
                    .to_vec(),
            ),
            "/trickle" => Act::Trickle(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n".to_vec(),
            ),
            "/close" => Act::Close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec()),
            _ => ok("again"),
        }
        });
        let reqs = [
            get("s", 1, 0, "/cl"),
            req("s", 1, 1, "HEAD", "/head"),
            get("s", 1, 2, "/204"),
            get("s", 1, 3, "/304"),
            req("s", 1, 4, "POST", "/continue"),
            get("s", 1, 5, "/chunked"),
            get("s", 1, 6, "/trickle"),
            get("s", 1, 7, "/close"),
            get("s", 1, 8, "/after"),
        ];
        let cfg = SendConfig { max_body: 8, ..config(srv.addr) };
        let res = run(&reqs, &cfg);
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 9]);
        let got: Vec<(Option<u16>, &str, &[u8], u64)> =
            res.iter().map(|r| (r.status, r.reason.as_str(), r.body.as_slice(), r.body_len)).collect();
        assert_eq!(
            got,
            vec![
                (Some(200), "OK", &b"abc"[..], 3),
                (Some(200), "OK", &b""[..], 0),
                (Some(204), "No Content", &b""[..], 0),
                (Some(304), "Not Modified", &b""[..], 0),
                (Some(201), "Created", &b"ok"[..], 2),
                (Some(200), "OK", &b"hello, w"[..], 12),
                (Some(200), "OK", &b"abc01234"[..], 13),
                (Some(200), "OK", &b"until th"[..], 13),
                (Some(200), "OK", &b"again"[..], 5),
            ]
        );
        assert_eq!(res[0].headers, hdrs(&[("Content-Length", b"3"), ("X-A", b"1")]));
        for r in &res {
            let (ttfb, total) = (r.ttfb.unwrap(), r.total.unwrap());
            assert!(ttfb <= total, "{ttfb:?} > {total:?}");
        }
        // Each framing ended exactly where the answer did, so everything up
        // to the read-until-close answer shared one connection.
        assert_eq!(srv.accepted(), 2);
        let conns: Vec<usize> = srv.seen().iter().map(|s| s.conn).collect();
        assert_eq!(conns, vec![0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn connection_close_and_http10_are_not_reused() {
        let srv = Server::start(|s| match s.target.as_str() {
            "/close" => Act::Reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx".to_vec()),
            "/old" => Act::Reply(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\ny".to_vec()),
            "/old-ka" => {
                Act::Reply(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nz".to_vec())
            }
            _ => ok("w"),
        });
        let reqs =
            [get("s", 1, 0, "/close"), get("s", 1, 1, "/old"), get("s", 1, 2, "/old-ka"), get("s", 1, 3, "/last")];
        let res = run(&reqs, &config(srv.addr));
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 4]);
        let conns: Vec<usize> = srv.seen().iter().map(|s| s.conn).collect();
        assert_eq!(conns, vec![0, 1, 2, 2]);
    }

    #[test]
    fn cookies_follow_the_targets_set_cookie_per_session() {
        let login = |s: &Seen| {
            match s.target.as_str() {
            "/login" => Act::Reply(
                b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=NEW; Path=/\r\nset-cookie: cart=c1; HttpOnly\r\nContent-Length: 0\r\n\r\n"
                    .to_vec(),
            ),
            "/logout" => {
                Act::Reply(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=gone; Max-Age=0\r\nContent-Length: 0\r\n\r\n".to_vec())
            }
            _ => ok(""),
        }
        };
        // X-Who tells the sessions apart at the server (a name no rule drops).
        let with = |mut r: SendRequest, session: &str, cookie: &[u8]| {
            r.headers = hdrs(&[("X-Who", session.as_bytes()), ("Cookie", cookie)]);
            r
        };
        let reqs = [
            with(get("a", 1, 0, "/login"), "a", b"sid=OLD; theme=dark"),
            with(get("b", 1, 5, "/page"), "b", b"sid=OLD; theme=dark"),
            with(get("a", 1, 10, "/page"), "a", b"sid=OLD; theme=dark"),
            with(get("a", 1, 20, "/logout"), "a", b"theme=dark;sid=OLD"),
            with(get("a", 1, 30, "/after"), "a", b"sid=OLD; cart=old; x"),
            with(get("b", 1, 40, "/login"), "b", b"sid=OLD"),
        ];
        let cookies = |with_credentials: bool| {
            let srv = Server::start(login);
            let cfg = SendConfig { concurrency: 2, with_credentials, ..config(srv.addr) };
            let res = run(&reqs, &cfg);
            assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 6]);
            let seen = srv.seen();
            let cookie_of = |session: &str, target: &str| {
                let s =
                    seen.iter().find(|s| s.target == target && s.header("x-who").as_deref() == Some(session)).unwrap();
                s.header("cookie")
            };
            let got =
                [("a", "/login"), ("a", "/page"), ("a", "/logout"), ("a", "/after"), ("b", "/page"), ("b", "/login")]
                    .map(|(s, t)| cookie_of(s, t));
            (got, res.iter().map(|r| r.stripped.clone()).collect::<Vec<_>>())
        };
        let some = |c: &str| Some(c.to_string());
        // With the captured credentials: the captured cookies, with the
        // values the target set in their place.
        let (got, stripped) = cookies(true);
        assert_eq!(
            got,
            [
                some("sid=OLD; theme=dark"),
                some("sid=NEW; theme=dark"),
                some("theme=dark;sid=NEW"),
                // Max-Age=0 took sid out of the jar; cart is still the target's.
                some("sid=OLD; cart=c1; x"),
                // Session b never saw a's answers.
                some("sid=OLD; theme=dark"),
                some("sid=OLD"),
            ]
        );
        assert!(stripped.iter().all(Vec::is_empty), "{stripped:?}");
        // By default: only what the target itself set in this session.
        let (got, stripped) = cookies(false);
        assert_eq!(got, [None, some("sid=NEW"), some("sid=NEW"), some("cart=c1"), None, None]);
        assert_eq!(stripped, vec![vec!["cookie".to_string()]; 6]);
    }

    fn withheld(why: &str) -> SendOutcome {
        SendOutcome::Withheld(why.into())
    }

    fn raw_text(srv: &Server) -> Vec<String> {
        srv.seen().iter().map(|s| String::from_utf8_lossy(&s.raw).into_owned()).collect()
    }

    #[test]
    fn the_request_target_is_always_a_path_on_the_target() {
        let srv = Server::start(|_| ok(""));
        let host = srv.addr.to_string();
        let mut metadata = get("s", 1, 0, "http://169.254.169.254/latest/meta-data/");
        metadata.headers = hdrs(&[("Host", b"169.254.169.254")]);
        let targets = [
            "http://169.254.169.254/latest/meta-data/",
            "HTTPS://user:pw@internal.example:8443?q=1#frag",
            "http://internal.example",
            "http://internal.example/a/b?c=d#e",
            "ftp://h/x",
            "http:/rel?x",
            "/plain?x=http://169.254.169.254/",
        ];
        let mut reqs = vec![metadata];
        for (i, t) in targets.iter().enumerate().skip(1) {
            reqs.push(get("s", 1, i as i64, t));
        }
        let mut options = req("s", 1, 20, "OPTIONS", "*");
        options.headers = hdrs(&[("Host", b"internal.example"), ("Max-Forwards", b"0")]);
        reqs.push(options);
        // Not sent: asterisk-form with another method, authority-form (a
        // CONNECT's target on a GET), and URIs with no path.
        for (i, t) in ["*", "internal.example:80", "[::1]:8080", "urn:isbn:1", "mailto:a@b"].iter().enumerate() {
            reqs.push(get("s", 1, 30 + i as i64, t));
        }
        let res = run(&reqs, &config(srv.addr));
        let authority = withheld("authority-form request-target: never re-sent");
        let mut want = vec![SendOutcome::Answered; 8];
        want.extend([
            withheld("request-target * with GET: only OPTIONS takes it"),
            authority.clone(),
            authority.clone(),
            authority.clone(),
            authority,
        ]);
        assert_eq!(outcomes(&res), want);
        // The exact bytes of the metadata request: origin-form, the
        // target's Host.
        let raw = raw_text(&srv);
        assert_eq!(raw[0], format!("GET /latest/meta-data/ HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(
            srv.targets(),
            ["/latest/meta-data/", "/?q=1", "/", "/a/b?c=d", "/x", "/rel?x", "/plain?x=http://169.254.169.254/", "*"]
        );
        // No other host or credential reached the wire.
        assert!(raw.iter().all(|r| !r.contains("internal.example") && !r.contains("pw")), "{raw:?}");
        assert_eq!(raw[7], format!("OPTIONS * HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(res[7].stripped, ["max-forwards"]);
        assert!(res[8..].iter().all(|r| r.sent_at.is_none() && r.status.is_none()));
    }

    #[test]
    fn connect_trace_and_track_are_withheld() {
        let srv = Server::start(|_| ok("fine"));
        let mut connect = req("s", 1, 1, "CONNECT", "169.254.169.254:80");
        connect.headers = hdrs(&[("Host", b"169.254.169.254:80")]);
        let reqs = [
            get("s", 1, 0, "/a"),
            connect,
            req("s", 1, 2, "TRACE", "/"),
            req("s", 1, 3, "track", "/"),
            req("s", 1, 4, "CONNECT", "/looks-like-a-path"),
            get("s", 1, 5, "/b"),
        ];
        // Withheld requests are no attempt: two are allowed and both go.
        let res = run(&reqs, &SendConfig { max_requests: 2, ..config(srv.addr) });
        let tunnel = withheld("CONNECT: a tunnel to another host, never re-sent");
        assert_eq!(
            outcomes(&res),
            [
                SendOutcome::Answered,
                tunnel.clone(),
                withheld("TRACE: echoes the request back, never re-sent"),
                withheld("TRACK: echoes the request back, never re-sent"),
                tunnel,
                SendOutcome::Answered,
            ]
        );
        assert_eq!(srv.targets(), ["/a", "/b"]);
        assert_eq!(srv.accepted(), 1);
        assert_eq!(res[1].outcome.as_str(), "withheld");
    }

    #[test]
    fn routing_headers_are_dropped_unless_kept() {
        let routing: &[(&str, &[u8])] = &[
            ("Forwarded", b"for=1.2.3.4;host=evil.example"),
            ("X-Forwarded-Host", b"evil.example"),
            ("X-Forwarded-For", b"10.0.0.1"),
            ("x-forwarded-proto", b"https"),
            ("X-Real-IP", b"127.0.0.1"),
            ("X-Original-URL", b"/admin"),
            ("X-Rewrite-URL", b"/admin"),
            ("X-HTTP-Method-Override", b"DELETE"),
            ("X-HTTP-Method", b"DELETE"),
            ("X-Method-Override", b"DELETE"),
            ("Proxy-Authorization", b"Basic cHJveHk6cHc="),
            ("Via", b"1.1 proxy"),
            ("True-Client-IP", b"127.0.0.1"),
            ("X-Envoy-Original-Path", b"/admin"),
            ("Connection", b"keep-alive, X-Hop, x-internal"),
            ("X-Hop", b"1"),
            ("X-Internal", b"1"),
            ("Trailer", b"X-T"),
            ("Upgrade", b"websocket"),
            ("HTTP2-Settings", b"AAMAAABkAAQAAP__"),
        ];
        let mut r = get("s", 1, 0, "/x");
        r.headers = hdrs(&[("Host", b"shop.example"), ("Accept", b"*/*")]);
        r.headers.extend(hdrs(routing));
        r.headers.extend(hdrs(&[("User-Agent", b"ua")]));
        let sent = |keep: &[&str]| {
            let srv = Server::start(|_| ok(""));
            let cfg = SendConfig { keep_headers: keep.iter().map(|k| k.to_string()).collect(), ..config(srv.addr) };
            let res = run(std::slice::from_ref(&r), &cfg);
            assert_eq!(res[0].outcome, SendOutcome::Answered);
            (raw_text(&srv).remove(0), res[0].stripped.clone(), srv.addr.to_string())
        };
        let (raw, stripped, host) = sent(&[]);
        assert_eq!(raw, format!("GET /x HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nUser-Agent: ua\r\n\r\n"));
        assert_eq!(
            stripped,
            [
                "forwarded",
                "x-forwarded-host",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-real-ip",
                "x-original-url",
                "x-rewrite-url",
                "x-http-method-override",
                "x-http-method",
                "x-method-override",
                "proxy-authorization",
                "via",
                "true-client-ip",
                "x-envoy-original-path",
                "x-hop",
                "x-internal",
            ]
        );
        // Kept by name (any case); hop-by-hop ones never go.
        let (raw, stripped, host) =
            sent(&["x-forwarded-host", "X-ORIGINAL-URL", "X-Hop", "Proxy-Authorization", "Upgrade", "Connection"]);
        assert_eq!(
            raw,
            format!(
                "GET /x HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nX-Forwarded-Host: evil.example\r\n\
                 X-Original-URL: /admin\r\nProxy-Authorization: Basic cHJveHk6cHc=\r\nX-Hop: 1\r\nUser-Agent: ua\r\n\r\n"
            )
        );
        assert_eq!(stripped.len(), 12, "{stripped:?}");
        assert!(!stripped.iter().any(|s| ["x-forwarded-host", "x-original-url", "x-hop"].contains(&s.as_str())));
    }

    #[test]
    fn captured_credentials_go_only_when_asked() {
        let srv = Server::start(|_| ok(""));
        let host = srv.addr.to_string();
        let mut r = get("s", 1, 0, "/account");
        r.headers = hdrs(&[
            ("Host", b"shop.example"),
            ("Authorization", b"Bearer eyJhbGciOi.captured"),
            ("Cookie", b"sid=CAPTURED; theme=dark"),
            ("X-Api-Key", b"k-123"),
            ("X-Auth-Token", b"t-456"),
            ("X-CSRF-Token", b"c-789"),
            ("X-XSRF-TOKEN", b"x-000"),
            ("X-Session-Id", b"s-111"),
            ("Referer", b"http://shop.example/"),
        ]);
        let mut login = req("s", 1, 1, "POST", "/login");
        login.body = b"user=a&password=hunter2".to_vec();
        login.credential = Some("form body".into());
        let reqs = [r, login];
        let creds = ["eyJhbGciOi", "CAPTURED", "dark", "k-123", "t-456", "c-789", "x-000", "s-111", "hunter2"];

        // By default: none of them.
        let res = run(&reqs, &config(srv.addr));
        assert_eq!(
            outcomes(&res),
            [SendOutcome::Answered, withheld("a credential in the form body: sent only with --with-credentials")]
        );
        let raw = raw_text(&srv);
        assert_eq!(raw, [format!("GET /account HTTP/1.1\r\nHost: {host}\r\nReferer: http://shop.example/\r\n\r\n")]);
        assert_eq!(
            res[0].stripped,
            ["authorization", "cookie", "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token", "x-session-id"]
        );
        drop(srv);

        // One kept by name.
        let srv = Server::start(|_| ok(""));
        let res = run(&reqs[..1], &SendConfig { keep_headers: vec!["x-api-key".into()], ..config(srv.addr) });
        assert_eq!(res[0].outcome, SendOutcome::Answered);
        let raw = raw_text(&srv).remove(0);
        assert!(raw.contains("\r\nX-Api-Key: k-123\r\n"), "{raw}");
        assert!(!creds.iter().filter(|c| **c != "k-123").any(|c| raw.contains(c)), "{raw}");
        drop(srv);

        // With --with-credentials: all of them, as captured.
        let srv = Server::start(|_| ok(""));
        let host = srv.addr.to_string();
        let res = run(&reqs, &SendConfig { with_credentials: true, ..config(srv.addr) });
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 2]);
        assert!(res.iter().all(|r| r.stripped.is_empty()));
        let raw = raw_text(&srv);
        assert_eq!(
            raw[0],
            format!(
                "GET /account HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer eyJhbGciOi.captured\r\n\
                 Cookie: sid=CAPTURED; theme=dark\r\nX-Api-Key: k-123\r\nX-Auth-Token: t-456\r\nX-CSRF-Token: c-789\r\n\
                 X-XSRF-TOKEN: x-000\r\nX-Session-Id: s-111\r\nReferer: http://shop.example/\r\n\r\n"
            )
        );
        assert!(raw[1].ends_with("\r\n\r\nuser=a&password=hunter2"), "{}", raw[1]);
    }

    #[test]
    fn jar_rules() {
        let mut jar = Jar::default();
        jar.update(&hdrs(&[
            ("Set-Cookie", b" a = 1 ; Path=/"),
            ("Set-Cookie", b"b=2; Max-Age=60"),
            ("Set-Cookie", b"noequals; Path=/"),
            ("Set-Cookie", b"=v"),
            ("X-Other", b"c=3"),
        ]));
        assert_eq!(jar.0, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
        jar.update(&hdrs(&[("set-cookie", b"a=; max-age=-1"), ("Set-Cookie", b"b=22; Max-Age=x")]));
        assert_eq!(jar.0, vec![(b"b".to_vec(), b"22".to_vec())]);
        // With the captured values: the jar's replace theirs, all else as
        // captured.
        assert_eq!(jar.map_cookies(b"a=0;  b=0 ;c", true), (b"a=0;  b=22;c".to_vec(), false));
        assert_eq!(Jar::default().map_cookies(b" odd ;; x=1", true), (b" odd ;; x=1".to_vec(), false));
        // Without: only the jar's, and whether anything was left out.
        assert_eq!(jar.map_cookies(b"a=0;  b=0 ;c", false), (b"b=22".to_vec(), true));
        assert_eq!(jar.map_cookies(b" b = 1", false), (b"b=22".to_vec(), false));
        assert_eq!(Jar::default().map_cookies(b" odd ;; x=1", false), (Vec::new(), true));
        assert_eq!(Jar::default().map_cookies(b" ; ", false), (Vec::new(), false));
    }

    #[test]
    fn one_worker_sends_session_by_session_in_start_order() {
        let srv = Server::start(|_| ok(""));
        // Input order is neither session nor start order; /a3 and /a4 tie
        // on start and keep their input order.
        let reqs = [
            get("b", 1, 30, "/b2"),
            get("a", 1, 40, "/a3"),
            get("a", 1, 0, "/a1"),
            get("b", 1, 10, "/b1"),
            get("a", 2, 20, "/a2"),
            get("a", 1, 40, "/a4"),
            get("d", 1, 35, "/d1"),
            get("c", 1, 32, "/c1"),
            get("e", 1, 50, "/e1"),
            get("c", 1, 1, "/c0"),
        ];
        let calls = Mutex::new(Vec::new());
        let res = send(&reqs, &config(srv.addr), &|n| calls.lock().unwrap().push(n));
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 10]);
        assert_eq!(srv.targets(), ["/a1", "/a2", "/a3", "/a4", "/c0", "/c1", "/b1", "/b2", "/d1", "/e1"]);
        assert_eq!(*calls.lock().unwrap(), (1..=10).collect::<Vec<_>>());
        let sent_at = |i: usize| res[i].sent_at.unwrap();
        assert!(
            sent_at(2) <= sent_at(4)
                && sent_at(4) <= sent_at(1)
                && sent_at(5) <= sent_at(3)
                && sent_at(3) <= sent_at(0)
        );
    }

    #[test]
    fn pacing_follows_the_capture() {
        let srv = Server::start(|_| ok(""));
        let reqs = [get("s", 1, 0, "/p1"), get("s", 1, 300, "/p2")];
        let res = run(&reqs, &SendConfig { speed: 1.0, ..config(srv.addr) });
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 2]);
        assert!(res[1].sent_at.unwrap() >= Duration::from_millis(300), "{:?}", res[1].sent_at);

        let res = run(&reqs, &SendConfig { speed: 2.0, ..config(srv.addr) });
        assert!(res[1].sent_at.unwrap() >= Duration::from_millis(150), "{:?}", res[1].sent_at);

        let began = Instant::now();
        let res = run(&reqs, &config(srv.addr));
        assert!(began.elapsed() < Duration::from_millis(300), "{:?}", began.elapsed());
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 2]);
        assert!(res.iter().all(|r| r.sent_at.unwrap() < Duration::from_millis(300)));
    }

    #[test]
    fn max_requests_bounds_what_is_sent() {
        let srv = Server::start(|_| ok(""));
        let reqs: Vec<SendRequest> = (0..5).map(|i| get("s", 1, i, &format!("/{i}"))).collect();
        let res = run(&reqs, &SendConfig { max_requests: 2, ..config(srv.addr) });
        let over = skipped("over --max-requests");
        assert_eq!(
            outcomes(&res),
            vec![SendOutcome::Answered, SendOutcome::Answered, over.clone(), over.clone(), over]
        );
        assert_eq!(srv.targets(), vec!["/0", "/1"]);
        assert!(res[2].sent_at.is_none() && res[2].status.is_none());

        // Across workers too: five one-request sessions, two sent.
        let srv = Server::start(|_| ok(""));
        let reqs: Vec<SendRequest> = (0..5).map(|i| get(&format!("s{i}"), 1, i, "/")).collect();
        let res = run(&reqs, &SendConfig { max_requests: 2, concurrency: 3, ..config(srv.addr) });
        assert_eq!(res.iter().filter(|r| r.outcome == SendOutcome::Answered).count(), 2);
        assert_eq!(res.iter().filter(|r| r.outcome == skipped("over --max-requests")).count(), 3);
        assert_eq!(srv.seen().len(), 2);
    }

    #[test]
    fn max_time_skips_what_would_be_late() {
        let srv = Server::start(|_| ok(""));
        let reqs = [get("s", 1, 0, "/now"), get("s", 1, 1000, "/later"), get("t", 1, 2000, "/much-later")];
        let began = Instant::now();
        let cfg = SendConfig { speed: 1.0, max_time: Duration::from_millis(100), ..config(srv.addr) };
        let res = run(&reqs, &cfg);
        // The late ones were not waited for.
        assert!(began.elapsed() < Duration::from_millis(900), "{:?}", began.elapsed());
        let over = skipped("over --max-time");
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered, over.clone(), over]);
        assert_eq!(srv.targets(), vec!["/now"]);
    }

    #[test]
    fn refused() {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let res = run(&[get("s", 1, 0, "/")], &config(addr));
        assert_eq!(res[0].outcome, SendOutcome::Refused);
        assert_eq!(res[0].status, None);
        assert!(res[0].sent_at.is_some() && res[0].ttfb.is_none());
    }

    #[test]
    fn timeout_when_the_server_never_answers() {
        let srv = Server::raw(|mut s, _, _| {
            read_head_raw(&mut s);
            // Hold the connection until the client gives up.
            let mut tmp = [0u8; 64];
            while matches!(s.read(&mut tmp), Ok(n) if n > 0) {}
        });
        let cfg = SendConfig { timeout: Duration::from_millis(300), ..config(srv.addr) };
        let began = Instant::now();
        let res = run(&[get("s", 1, 0, "/")], &cfg);
        assert_eq!(res[0].outcome, SendOutcome::Timeout);
        assert!(res[0].total.unwrap() >= Duration::from_millis(250), "{:?}", res[0].total);
        assert!(began.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn closed_before_an_answer_and_mid_body() {
        let srv = Server::raw(|mut s, _, _| {
            let head = read_head_raw(&mut s);
            if head.starts_with(b"GET /half") {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap();
            }
        });
        // Separate captured connections: nothing is reused, nothing retried.
        let res = run(&[get("s", 1, 0, "/none"), get("s", 2, 1, "/half")], &config(srv.addr));
        assert_eq!(outcomes(&res), vec![SendOutcome::Closed, SendOutcome::Closed]);
        assert_eq!(res[0].status, None);
        assert_eq!((res[1].status, res[1].body.as_slice(), res[1].body_len), (Some(200), &b"abc"[..], 3));
        assert_eq!(srv.accepted(), 2);
    }

    #[test]
    fn reset_when_the_server_aborts() {
        // Closing a socket with unread data in its receive queue sends an RST.
        let srv = Server::raw(|s, _, _| {
            let mut one = [0u8; 1];
            s.peek(&mut one).ok();
            thread::sleep(Duration::from_millis(50));
        });
        let res = run(&[get("s", 1, 0, "/")], &config(srv.addr));
        if cfg!(target_os = "linux") {
            assert_eq!(res[0].outcome, SendOutcome::Reset);
        } else {
            assert!(matches!(res[0].outcome, SendOutcome::Reset | SendOutcome::Closed), "{:?}", res[0].outcome);
        }
    }

    #[test]
    fn oversized_head_is_an_error() {
        let srv = Server::raw(|mut s, _, _| {
            read_head_raw(&mut s);
            let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
            big.resize(big.len() + 70 * 1024, b'a');
            big.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            s.write_all(&big).ok();
        });
        let res = run(&[get("s", 1, 0, "/")], &config(srv.addr));
        assert_eq!(res[0].outcome, SendOutcome::Error("response head over 64 KiB".into()));
    }

    #[test]
    fn stale_keep_alive_is_reconnected_once() {
        // The first answer says nothing of closing, then the server closes.
        let srv = Server::start(|s| {
            if s.target == "/first" {
                Act::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst".to_vec())
            } else {
                ok("second")
            }
        });
        let reqs = [get("s", 1, 0, "/first"), get("s", 1, 1, "/second")];
        let res = run(&reqs, &config(srv.addr));
        assert_eq!(outcomes(&res), vec![SendOutcome::Answered; 2]);
        assert_eq!(res[1].body, b"second");
        assert_eq!(srv.accepted(), 2);
        let conns: Vec<usize> = srv.seen().iter().map(|s| s.conn).collect();
        assert_eq!(conns, vec![0, 1]);
    }

    #[test]
    fn body_not_captured_whole_is_not_sent() {
        let srv = Server::start(|_| ok(""));
        let mut upload = req("s", 1, 0, "POST", "/upload");
        upload.body = b"partial".to_vec();
        upload.body_complete = false;
        // It does not count against max_requests either.
        let res = run(&[upload, get("s", 1, 10, "/next")], &SendConfig { max_requests: 1, ..config(srv.addr) });
        assert_eq!(outcomes(&res), vec![skipped("body not captured whole"), SendOutcome::Answered]);
        assert_eq!(res[0].sent_at, None);
        assert_eq!(srv.targets(), vec!["/next"]);
    }

    #[test]
    fn conflicting_content_length_is_an_error() {
        let srv = Server::start(|_| {
            Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec())
        });
        let res = run(&[get("s", 1, 0, "/")], &config(srv.addr));
        assert_eq!(res[0].outcome, SendOutcome::Error("conflicting Content-Length in the response".into()));
        assert_eq!(res[0].status, Some(200));
    }

    #[test]
    fn nothing_to_send() {
        let cfg = SendConfig::new("127.0.0.1:9".parse().unwrap());
        assert!(send(&[], &cfg, &|_| {}).is_empty());
    }
}
