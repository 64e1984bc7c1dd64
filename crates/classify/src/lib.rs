//! pov-classify: what went wrong for each user, by rule, with evidence.
//!
//! [`Classifier::error_page`] reads a 2xx response body once, when the
//! transaction is reduced (bodies are not kept after that);
//! [`Classifier::classify`] labels a closed session's transactions, failed
//! connections and page views. Capture loss is never a failure: a
//! transaction whose evidence lies in bytes the capture missed is left
//! unlabelled and counted as capture loss.
#![forbid(unsafe_code)]

pub mod config;
mod hidden;
pub mod routes;
mod soft;

use std::collections::{HashMap, HashSet};

use pov_capture::http::{FrameSpan, HttpTransaction, Outcome};
use pov_capture::{Dur, FastMap, FastSet, Ts};
use pov_sessions::{BROWSER_RETRY, ErrorBody, FailedConnKind, ResourceClass, Session, Tx};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet, meta};

pub use config::{ErrorPageRule, FailuresConfig, SoftErrorRule};

/// Kinds of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A 5xx answer.
    ServerError,
    /// A 4xx answer to a page or an important resource.
    ClientError,
    /// A 2xx answer whose body is an error page, or says the call failed
    /// (an API's soft error: rule `api_error:NAME`).
    ErrorPage,
    /// An important transaction took more than 4 Apdex T.
    Slow,
    /// A page took more than 4 Apdex T to load (with no slow transaction).
    SlowPage,
    /// The user gave up waiting (closed or reset before the answer).
    ClientAbort,
    /// The server reset the connection before the answer was complete.
    ServerReset,
    /// No answer came.
    NoResponse,
    /// Fewer body bytes than announced, then the server closed.
    Truncated,
    /// A connection attempt answered with a reset.
    Refused,
    /// A connection attempt never answered.
    Unanswered,
    /// A TLS handshake that failed (an alert: a certificate refused, no
    /// common protocol), seen without keys.
    TlsHandshake,
    /// A TLS connection closed before its handshake completed.
    TlsIncomplete,
    /// A page view that kept being redirected.
    RedirectLoop,
    /// The same page again right after it failed (a signal, not a new
    /// failure).
    Struggle,
}

impl FailureKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FailureKind; 15] = [
        FailureKind::ServerError,
        FailureKind::ClientError,
        FailureKind::ErrorPage,
        FailureKind::Slow,
        FailureKind::SlowPage,
        FailureKind::ClientAbort,
        FailureKind::ServerReset,
        FailureKind::NoResponse,
        FailureKind::Truncated,
        FailureKind::Refused,
        FailureKind::Unanswered,
        FailureKind::TlsHandshake,
        FailureKind::TlsIncomplete,
        FailureKind::RedirectLoop,
        FailureKind::Struggle,
    ];

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ServerError => "server_error",
            FailureKind::ClientError => "client_error",
            FailureKind::ErrorPage => "error_page",
            FailureKind::Slow => "slow",
            FailureKind::SlowPage => "slow_page",
            FailureKind::ClientAbort => "client_abort",
            FailureKind::ServerReset => "server_reset",
            FailureKind::NoResponse => "no_response",
            FailureKind::Truncated => "truncated",
            FailureKind::Refused => "refused",
            FailureKind::Unanswered => "unanswered",
            FailureKind::TlsHandshake => "tls_handshake",
            FailureKind::TlsIncomplete => "tls_incomplete",
            FailureKind::RedirectLoop => "redirect_loop",
            FailureKind::Struggle => "struggle",
        }
    }
}

/// How much a failure hurts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A signal about behaviour (struggle); never counted as a failure.
    Info,
    /// On a resource most users do not notice (images): counted apart.
    Minor,
    /// On an important resource (script, style, API, font).
    Major,
    /// On the page itself or a form the user sent.
    Critical,
}

impl Severity {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    /// The user noticed it: it makes the user affected.
    pub fn noticed(self) -> bool {
        self >= Severity::Major
    }
}

/// One failure a user met.
#[derive(Clone, Debug)]
pub struct Failure {
    /// What.
    pub kind: FailureKind,
    /// The rule that decided (e.g. `status_5xx`, `error_page:stack_trace`).
    pub rule: String,
    /// How much it hurts.
    pub severity: Severity,
    /// When (request start, or the first SYN).
    pub ts: Ts,
    /// The page view (index in the session), if any.
    pub page: Option<u32>,
    /// The transaction (index into the session's `txs`), if any.
    pub tx: Option<usize>,
    /// Connection id.
    pub conn: u64,
    /// Client socket of the connection.
    pub client: Option<std::net::SocketAddr>,
    /// Server socket.
    pub server: Option<std::net::SocketAddr>,
    /// Position of the transaction in its connection.
    pub depth: Option<u32>,
    /// First and last frame of the evidence.
    pub frames: Option<FrameSpan>,
    /// Host.
    pub host: Option<String>,
    /// Path and query.
    pub url: String,
    /// Status, if answered.
    pub status: Option<u16>,
    /// What the evidence says, in words.
    pub detail: String,
}

/// Apdex zone of a page load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Apdex {
    /// Loaded within T.
    Satisfied,
    /// Within 4 T.
    Tolerating,
    /// Slower, or failed.
    Frustrated,
}

impl Apdex {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Apdex::Satisfied => "satisfied",
            Apdex::Tolerating => "tolerating",
            Apdex::Frustrated => "frustrated",
        }
    }
}

/// A session's labels.
#[derive(Clone, Debug, Default)]
pub struct Classified {
    /// Failures, by time.
    pub failures: Vec<Failure>,
    /// Apdex zone per page view (same order as the session's pages).
    pub apdex: Vec<Apdex>,
    /// Transactions with bytes missing from the capture.
    pub capture_loss: u64,
    /// Of those, transactions whose outcome the loss made unknowable.
    pub unknown: u64,
    /// Requests that died unanswered and that the browser sent again at
    /// once on another connection, answered there: not failures.
    pub silent_retries: u64,
}

impl Classified {
    /// The failures of each page view (by page index), in order: one pass,
    /// for writers that list every page's failures.
    pub fn by_page(&self) -> HashMap<u32, Vec<&Failure>> {
        let mut m: HashMap<u32, Vec<&Failure>> = HashMap::new();
        for f in &self.failures {
            if let Some(p) = f.page {
                m.entry(p).or_default().push(f);
            }
        }
        m
    }
}

/// The earliest `(began, conn)` among some answered requests, and the
/// earliest among those on another connection than it: enough to tell
/// whether one of them is on a connection other than a given one and began
/// by a deadline.
#[derive(Clone, Copy, Debug, Default)]
struct Earliest2 {
    first: Option<(Ts, u64)>,
    other: Option<(Ts, u64)>,
}

impl Earliest2 {
    fn merge(x: Earliest2, y: Earliest2) -> Earliest2 {
        let all = [x.first, x.other, y.first, y.other];
        let first = all.iter().flatten().min_by_key(|(t, _)| *t).copied();
        let other =
            first.and_then(|(_, c)| all.iter().flatten().filter(|(_, o)| *o != c).min_by_key(|(t, _)| *t).copied());
        Earliest2 { first, other }
    }

    /// Whether one of them is on a connection other than `conn` and began
    /// at or before `deadline`.
    fn other_conn_by(self, conn: u64, deadline: Ts) -> bool {
        let pick = match self.first {
            Some((_, c)) if c == conn => self.other,
            f => f,
        };
        pick.is_some_and(|(t, _)| t <= deadline)
    }
}

/// The answered requests of one method and target, in session order, with
/// a segment tree of [`Earliest2`] over them.
struct RetryGroup {
    idx: Vec<usize>,
    start: Vec<Ts>,
    tree: Vec<Earliest2>,
}

impl RetryGroup {
    fn build(&mut self, leaves: Vec<Earliest2>) {
        let n = leaves.len();
        self.tree = vec![Earliest2::default(); 2 * n];
        self.tree[n..].copy_from_slice(&leaves);
        for k in (1..n).rev() {
            self.tree[k] = Earliest2::merge(self.tree[2 * k], self.tree[2 * k + 1]);
        }
    }

    /// [`Earliest2`] of positions `l..r`.
    fn query(&self, l: usize, r: usize) -> Earliest2 {
        let n = self.idx.len();
        let (mut l, mut r) = (l + n, r.min(n) + n);
        let mut acc = Earliest2::default();
        while l < r {
            pov_sessions::work::step(1);
            if l & 1 == 1 {
                acc = Earliest2::merge(acc, self.tree[l]);
                l += 1;
            }
            if r & 1 == 1 {
                r -= 1;
                acc = Earliest2::merge(acc, self.tree[r]);
            }
            l >>= 1;
            r >>= 1;
        }
        acc
    }
}

/// Answered requests by method and target, so that a dead request's retry
/// is found in O(log n) rather than by looking at every later request.
struct RetryIndex<'a> {
    groups: FastMap<(&'a str, &'a str), RetryGroup>,
}

impl<'a> RetryIndex<'a> {
    fn new(txs: &'a [Tx]) -> RetryIndex<'a> {
        let mut groups: FastMap<(&str, &str), (RetryGroup, Vec<Earliest2>)> = FastMap::default();
        for (j, r) in txs.iter().enumerate() {
            pov_sessions::work::step(1);
            let (Some(m), Some(_)) = (r.method.as_deref(), r.status) else { continue };
            let (g, leaves) = groups
                .entry((m, r.target.as_str()))
                .or_insert_with(|| (RetryGroup { idx: Vec::new(), start: Vec::new(), tree: Vec::new() }, Vec::new()));
            g.idx.push(j);
            g.start.push(r.start);
            // The retry's connection may have taken a while to open (a lost
            // SYN costs 1 s): what counts is when the browser began it.
            let began = r.start - r.handshake.unwrap_or(Dur::ZERO);
            leaves.push(Earliest2 { first: Some((began, r.conn)), other: None });
        }
        let groups = groups
            .into_iter()
            .map(|(k, (mut g, leaves))| {
                pov_sessions::work::step(leaves.len() as u64);
                g.build(leaves);
                (k, g)
            })
            .collect();
        RetryIndex { groups }
    }
}

/// Whether transaction `i` (dead, unanswered) died at once and was sent
/// again on another connection within [`BROWSER_RETRY`], answered there. A
/// request that waited longer for its answer hurt the user, retried or not.
fn answered_retry(txs: &[Tx], i: usize, index: &RetryIndex<'_>) -> bool {
    let t = &txs[i];
    let waited = t.waited.unwrap_or(Dur::ZERO);
    if waited > BROWSER_RETRY {
        return false;
    }
    let Some(m) = t.method.as_deref() else { return false };
    let deadline = t.req_end.unwrap_or(t.start) + waited + BROWSER_RETRY;
    // Transactions are in request order; a retry starts after this one, by
    // the deadline (when the browser began it, its connection's handshake
    // included), within a few seconds more (that handshake).
    let horizon = deadline + Dur::from_secs(4);
    let Some(g) = index.groups.get(&(m, t.target.as_str())) else { return false };
    let l = g.idx.partition_point(|j| *j <= i);
    let r = g.start.partition_point(|s| *s <= horizon);
    l < r && g.query(l, r).other_conn_by(t.conn, deadline)
}

/// The first of `set`'s rules (in the order given) that matches `text`
/// anywhere.
fn first_rule(set: &meta::Regex, text: &str) -> Option<usize> {
    let mut found = PatternSet::new(set.pattern_len());
    set.which_overlapping_matches(&Input::new(text), &mut found);
    found.iter().next().map(|p| p.as_usize())
}

/// Compiled failure rules.
pub struct Classifier {
    cfg: FailuresConfig,
    /// The error page rules' names, in order.
    error_pages: Vec<String>,
    /// The same rules as one set: a body is scanned once, not once per
    /// rule (`None` if the set is too large to compile; then rule by rule).
    error_set: Option<meta::Regex>,
    /// Each rule alone, compiled only when the set could not be (to name
    /// a bad pattern's rule, or to go rule by rule).
    error_singles: Vec<meta::Regex>,
    /// API answers that say the call failed.
    soft: soft::SoftRules,
    minor: HashSet<String>,
}

/// Error-page patterns compiled as one set, case ignored (as a
/// `regex::RegexSet` would be), and with no literal prefilter: the default
/// rules' literals, in every case, make a prefilter that stops at nearly
/// every word and costs four times the lazy DFA's scan of the whole body.
fn page_rules(patterns: &[&str]) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .syntax(syntax::Config::new().case_insensitive(true))
        .configure(
            meta::Config::new()
                .match_kind(MatchKind::All)
                .which_captures(regex_automata::nfa::thompson::WhichCaptures::None)
                .auto_prefilter(false)
                .nfa_size_limit(Some((1 << 22) * patterns.len().max(1)))
                .hybrid_cache_capacity(2 << 20),
        )
        .build_many(patterns)
        .map_err(|e| match (e.syntax_error(), e.size_limit()) {
            // What is wrong with the pattern, as `regex` would say it.
            (Some(syntax), _) => syntax.to_string(),
            (None, Some(limit)) => format!("the compiled pattern exceeds the size limit of {limit} bytes"),
            (None, None) => e.to_string(),
        })
}

fn ms(x: f64) -> Dur {
    Dur((x.max(0.0) * 1e6) as i64)
}

impl Classifier {
    /// Compiles the rules; a bad pattern is an error naming its rule.
    pub fn new(cfg: &FailuresConfig) -> Result<Classifier, String> {
        let patterns: Vec<&str> = cfg.error_pages.iter().map(|r| r.pattern.as_str()).collect();
        let error_set = page_rules(&patterns).ok();
        // (Compiling the rules twice took half of the classifier's start.)
        let mut error_singles = Vec::new();
        if error_set.is_none() {
            for r in &cfg.error_pages {
                let re = page_rules(&[r.pattern.as_str()])
                    .map_err(|e| format!("[failures] error page rule `{}`: {e}", r.name))?;
                error_singles.push(re);
            }
        }
        Ok(Classifier {
            cfg: cfg.clone(),
            error_pages: cfg.error_pages.iter().map(|r| r.name.clone()).collect(),
            error_set,
            error_singles,
            soft: soft::SoftRules::new(cfg)?,
            minor: cfg.minor_classes.iter().map(|c| c.to_ascii_lowercase()).collect(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &FailuresConfig {
        &self.cfg
    }

    /// For a 2xx response of a page or API: the rule its body matches,
    /// with its evidence (`api_error:NAME` for an answer that says the call
    /// failed, `error_page:NAME` for an error page).
    pub fn error_page(&self, t: &HttpTransaction, class: ResourceClass) -> Option<ErrorBody> {
        let resp = t.response.as_ref()?;
        let ct = resp.headers.text_ref("content-type").unwrap_or_default();
        let target = t.request.as_ref().map(|r| pov_capture::text::lossy(&r.uri)).unwrap_or_default();
        self.error_body(&target, resp.status, &ct, &t.response_body.kept, class)
    }

    /// [`Classifier::error_page`] for an answer given as its parts (request
    /// target, status, Content-Type, decoded body): `pov replay send`
    /// checks a live answer.
    ///
    /// Only a 2xx answer of a document, API or other resource with a body
    /// is read. A body that looks like JSON (a JSON Content-Type, or not
    /// HTML and starting with `{` or `[`) is parsed once, for every rule; a
    /// body that parses is judged by the soft-error rules alone (its text
    /// may quote anything), and one cut short (by the body cap) is never a
    /// failure by its JSON or its text, only by a rule's own `pattern`.
    pub fn error_body(
        &self,
        target: &str,
        status: u16,
        content_type: &str,
        body: &[u8],
        class: ResourceClass,
    ) -> Option<ErrorBody> {
        if !(200..300).contains(&status) || body.is_empty() {
            return None;
        }
        if !matches!(class, ResourceClass::Document | ResourceClass::Api | ResourceClass::Other) {
            return None;
        }
        let body = pov_capture::text::lossy(body);
        let ct = content_type.to_ascii_lowercase();
        let trimmed = body.trim_start();
        let looks_json =
            ct.contains("json") || (!ct.contains("html") && (trimmed.starts_with('{') || trimmed.starts_with('[')));
        let (json, cut_short) = if looks_json {
            match serde_json::from_str::<serde_json::Value>(trimmed) {
                Ok(v) => (Some(v), false),
                Err(e) => (None, e.is_eof()),
            }
        } else {
            (None, false)
        };
        if let Some(e) = self.soft.judge(target, &ct, json.as_ref(), &body) {
            return Some(e);
        }
        if json.is_some() || cut_short {
            return None;
        }
        let text = if ct.contains("html") || trimmed.starts_with('<') { hidden::strip(&body) } else { body.clone() };
        // The first rule that matches names the failure.
        let first = match &self.error_set {
            // Most bodies match no rule: a yes/no search first, which is
            // cheaper than finding every rule that matches.
            Some(set) => set.is_match(text.as_ref()).then(|| first_rule(set, &text)).flatten(),
            None => self.error_singles.iter().position(|re| re.is_match(text.as_ref())),
        };
        first.and_then(|i| self.error_pages.get(i)).map(|n| ErrorBody::rule(format!("error_page:{n}")))
    }

    fn is_minor(&self, class: ResourceClass) -> bool {
        self.minor.contains(class.as_str())
    }

    /// Labels a session.
    pub fn classify(&self, s: &Session) -> Classified {
        let mut out = Classified::default();
        let page_of = page_index(s);
        let mut dead_conns: FastSet<u64> = FastSet::default();
        let mut aborted_pages: FastSet<u32> = FastSet::default();
        // A page's document tried again by the browser and failing the same
        // way is one failure the user met, not two.
        let mut doc_failures: FastSet<(u32, String, FailureKind)> = FastSet::default();
        // Pages with a noticed failure so far.
        let mut noticed: FastSet<u32> = FastSet::default();
        let mut retry: Option<RetryIndex<'_>> = None;
        let t_tx = ms(self.cfg.apdex_t_ms);
        for (i, t) in s.txs.iter().enumerate() {
            if t.capture_loss() {
                out.capture_loss += 1;
            }
            let page = page_of.get(i).copied().flatten();
            let is_doc = page.is_some_and(|p| s.pages[(p - 1) as usize].documents.contains(&i));
            let severity = if self.is_minor(t.class) {
                Severity::Minor
            } else if is_doc || t.method.as_deref().is_some_and(|m| m != "GET" && m != "HEAD") {
                Severity::Critical
            } else {
                Severity::Major
            };
            let mut push = |kind: FailureKind, rule: &str, detail: String| {
                if is_doc
                    && let Some(p) = page
                    && !doc_failures.insert((p, t.target.clone(), kind))
                {
                    return;
                }
                if severity.noticed()
                    && let Some(p) = page
                {
                    noticed.insert(p);
                }
                out.failures.push(Failure {
                    kind,
                    rule: rule.to_string(),
                    severity,
                    ts: t.start,
                    page,
                    tx: Some(i),
                    conn: t.conn,
                    client: Some(t.client),
                    server: Some(t.server),
                    depth: Some(t.depth),
                    frames: span(t),
                    host: t.host.clone(),
                    url: t.target.clone(),
                    status: t.status,
                    detail,
                })
            };
            // Without the request, what was asked for (a page? an image?)
            // is in bytes the capture missed: whether anything failed for
            // the user is unknown.
            if t.method.is_none() {
                out.unknown += 1;
                continue;
            }
            // The connection died under an earlier request: this one shares
            // that failure, it is not a new one.
            let follower = dead_conns.contains(&t.conn);
            // A request that died with no answer and that the browser sent
            // again at once on another connection, answered there: the
            // user saw nothing go wrong. (Browsers do this when a kept-alive
            // connection is closed or reset under a new request, the server
            // having timed it out just as the request left.)
            if t.status.is_none()
                && matches!(t.outcome, Outcome::ServerReset | Outcome::NoResponse)
                && answered_retry(&s.txs, i, retry.get_or_insert_with(|| RetryIndex::new(&s.txs)))
            {
                dead_conns.insert(t.conn);
                out.silent_retries += 1;
                continue;
            }
            match t.outcome {
                Outcome::CaptureGap => {
                    // What happened is in bytes the capture missed; a status
                    // line that was captured still tells.
                    out.unknown += 1;
                }
                Outcome::ServerReset if !follower => {
                    dead_conns.insert(t.conn);
                    push(FailureKind::ServerReset, "outcome", reset_detail(t));
                    continue;
                }
                Outcome::Truncated if !follower => {
                    dead_conns.insert(t.conn);
                    push(
                        FailureKind::Truncated,
                        "outcome",
                        format!("{} body bytes, then the server closed", t.response_body_len),
                    );
                    continue;
                }
                Outcome::ClientAbort if !follower => {
                    dead_conns.insert(t.conn);
                    // Leaving a page aborts all it was loading: once per page.
                    if page.is_none_or(|p| aborted_pages.insert(p)) {
                        push(FailureKind::ClientAbort, "outcome", waited(t, "gave up after"));
                    }
                    continue;
                }
                Outcome::NoResponse if !follower => {
                    dead_conns.insert(t.conn);
                    push(FailureKind::NoResponse, "outcome", waited(t, "no answer in"));
                    continue;
                }
                Outcome::ServerReset | Outcome::Truncated | Outcome::ClientAbort | Outcome::NoResponse => continue,
                // An HTTP/2 stream the server refused (REFUSED_STREAM, or
                // above its GOAWAY's last stream id) was never processed,
                // and clients send it again (RFC 9113 8.7): the retry is a
                // transaction of its own, judged on its own. The refusal
                // is no failure the customer met.
                Outcome::Refused | Outcome::RefusedByGoaway => continue,
                Outcome::Complete | Outcome::Malformed => {}
            }
            if let Some(st) = t.status {
                if st >= 500 {
                    push(FailureKind::ServerError, "status_5xx", format!("status {st}"));
                    continue;
                }
                if (400..500).contains(&st) && !self.cfg.client_error_ignore.contains(&st) {
                    push(FailureKind::ClientError, "status_4xx", format!("status {st}"));
                    continue;
                }
                if let Some(e) = &t.error_page {
                    push(FailureKind::ErrorPage, &e.rule, error_detail(st, e));
                    continue;
                }
            }
            // Slow: the request's first byte to the response's last.
            if matches!(t.outcome, Outcome::Complete | Outcome::CaptureGap)
                && t.method.is_some()
                && severity >= Severity::Major
            {
                let limit = Dur(t_tx.0.saturating_mul(4));
                // With bytes missing, the response's end may be only when
                // the connection closed: count up to its first byte, which
                // the capture does show.
                let d = if t.capture_loss() { t.resp_start.map(|r| r - t.start) } else { t.duration() };
                if let Some(d) = d
                    && d > limit
                {
                    // Where the time went: the server (request received to
                    // first answer byte) or the network (sending the request,
                    // again if it was lost, and receiving the answer).
                    let split = match t.server_time() {
                        Some(server) => format!(
                            ": server {:.0} ms, network {:.0} ms",
                            server.as_millis_f64(),
                            (d - server).as_millis_f64().max(0.0)
                        ),
                        None => String::new(),
                    };
                    push(
                        FailureKind::Slow,
                        "apdex_4t",
                        format!("{:.0} ms (4 T = {:.0} ms){split}", d.as_millis_f64(), limit.as_millis_f64()),
                    );
                }
            }
        }
        // The first page each failed attempt belongs to.
        let mut failed_page: FastMap<usize, u32> = FastMap::default();
        for p in &s.pages {
            pov_sessions::work::step(1 + p.failed.len() as u64);
            for fi in &p.failed {
                failed_page.entry(*fi).or_insert(p.index);
            }
        }
        for (fi, f) in s.failed.iter().enumerate() {
            let page = failed_page.get(&fi).copied();
            let (kind, detail) = match f.kind {
                FailedConnKind::Refused => (FailureKind::Refused, "SYN answered by RST".to_string()),
                FailedConnKind::Unanswered => (
                    FailureKind::Unanswered,
                    format!("{} SYN, no answer in {:.1} s", f.syns, (f.end - f.start).as_secs_f64()),
                ),
                FailedConnKind::TlsHandshakeFailed => {
                    (FailureKind::TlsHandshake, f.evidence.clone().unwrap_or_default())
                }
                FailedConnKind::TlsIncomplete => (FailureKind::TlsIncomplete, f.evidence.clone().unwrap_or_default()),
            };
            if let Some(p) = page {
                noticed.insert(p);
            }
            out.failures.push(Failure {
                kind,
                rule: "connection".into(),
                severity: Severity::Critical,
                ts: f.start,
                page,
                tx: None,
                conn: f.conn,
                client: Some(f.client),
                server: Some(f.server),
                depth: None,
                frames: Some(f.frames),
                host: f.sni.clone(),
                url: String::new(),
                status: None,
                detail,
            });
        }
        // Page-level rules.
        let struggle = Dur((self.cfg.struggle_window_secs.max(0.0) * 1e9) as i64);
        // The latest page so far with each URL.
        let mut last_by_url: FastMap<&str, &pov_sessions::PageView> = FastMap::default();
        for p in &s.pages {
            pov_sessions::work::step(1);
            let t_page = ms(p.apdex_t_ms.unwrap_or(self.cfg.page_apdex_t_ms));
            let failed_here = noticed.contains(&p.index);
            let zone = if failed_here || p.load > Dur(t_page.0.saturating_mul(4)) {
                Apdex::Frustrated
            } else if p.load > t_page {
                Apdex::Tolerating
            } else {
                Apdex::Satisfied
            };
            out.apdex.push(zone);
            let first_doc = p.documents.first().map(|d| &s.txs[*d]);
            if let Some(d) = first_doc {
                let redirects =
                    p.documents.iter().filter(|i| s.txs[**i].status.is_some_and(|x| (300..400).contains(&x))).count();
                let mut seen = FastSet::default();
                let revisits = p.documents.iter().any(|i| !seen.insert(s.txs[*i].target.as_str()));
                let still_redirected = p.status.is_some_and(|x| (300..400).contains(&x));
                if still_redirected && (revisits || redirects as u32 > self.cfg.redirect_limit) {
                    noticed.insert(p.index);
                    out.failures.push(page_failure(
                        p,
                        d,
                        FailureKind::RedirectLoop,
                        "redirects",
                        Severity::Critical,
                        format!("{redirects} redirects"),
                    ));
                }
                if !failed_here && p.load > Dur(t_page.0.saturating_mul(4)) && d.method.is_some() {
                    noticed.insert(p.index);
                    out.failures.push(page_failure(
                        p,
                        d,
                        FailureKind::SlowPage,
                        "apdex_4t",
                        Severity::Major,
                        format!(
                            "loaded in {:.0} ms (4 T = {:.0} ms)",
                            p.load.as_millis_f64(),
                            4.0 * t_page.as_millis_f64()
                        ),
                    ));
                }
            }
            // Struggle: the same page again, soon after it failed there.
            let prev = if p.url.is_empty() { None } else { last_by_url.insert(p.url.as_str(), p) };
            if let Some(prev) = prev.filter(|q| q.index < p.index) {
                let prev_failed = noticed.contains(&prev.index);
                if prev_failed
                    && p.start - prev.end <= struggle
                    && let Some(d) = first_doc.or_else(|| p.txs.first().map(|i| &s.txs[*i]))
                {
                    out.failures.push(page_failure(
                        p,
                        d,
                        FailureKind::Struggle,
                        "same_page_after_failure",
                        Severity::Info,
                        format!("again {:.1} s after page {} failed", (p.start - prev.end).as_secs_f64(), prev.index),
                    ));
                }
            }
        }
        out.failures.sort_by_key(|f| (f.ts, f.conn, f.depth));
        out
    }
}

fn page_failure(
    p: &pov_sessions::PageView,
    d: &Tx,
    kind: FailureKind,
    rule: &str,
    severity: Severity,
    detail: String,
) -> Failure {
    Failure {
        kind,
        rule: rule.into(),
        severity,
        ts: p.start,
        page: Some(p.index),
        tx: None,
        conn: d.conn,
        client: Some(d.client),
        server: Some(d.server),
        depth: Some(d.depth),
        frames: span(d),
        host: p.host.clone(),
        url: p.url.clone(),
        status: p.status,
        detail,
    }
}

/// The page each transaction belongs to.
fn page_index(s: &Session) -> Vec<Option<u32>> {
    let mut v = vec![None; s.txs.len()];
    for p in &s.pages {
        for i in &p.txs {
            if let Some(x) = v.get_mut(*i) {
                *x = Some(p.index);
            }
        }
    }
    v
}

fn span(t: &Tx) -> Option<FrameSpan> {
    match (t.req_frames, t.resp_frames) {
        (Some(a), Some(b)) => Some(FrameSpan { first: a.first.min(b.first), last: a.last.max(b.last) }),
        (a, b) => a.or(b),
    }
}

/// The detail of an `error_page` failure: the status, and what the body
/// shows when the rule has evidence (`status 200: "status": "error"`).
fn error_detail(status: u16, e: &ErrorBody) -> String {
    if e.evidence.is_empty() {
        format!("status {status} with an error body")
    } else {
        format!("status {status}: {}", e.evidence)
    }
}

fn waited(t: &Tx, what: &str) -> String {
    match t.waited {
        Some(w) => format!("{what} {:.1} s", w.as_secs_f64()),
        None => what.trim_end_matches(" after").trim_end_matches(" in").to_string(),
    }
}

fn reset_detail(t: &Tx) -> String {
    if t.resp_start.is_some() {
        format!("reset after {} body bytes", t.response_body_len)
    } else {
        "reset before any answer".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pov_capture::http::Outcome;
    use pov_sessions::{Sessionizer, SessionizerConfig};

    /// The first error page rule that matches names the failure; a rule
    /// whose pattern does not compile is an error naming it (the rules
    /// alone are compiled only then).
    #[test]
    fn the_first_error_page_rule_that_matches_names_it_and_a_bad_one_is_named() {
        let rule = |n: &str, p: &str| ErrorPageRule { name: n.into(), pattern: p.into() };
        let cfg = FailuresConfig {
            error_pages: vec![rule("stock", "out of stock"), rule("gone", "stock|gone")],
            ..FailuresConfig::default()
        };
        let c = Classifier::new(&cfg).unwrap();
        let rule_of = |body: &str| {
            c.error_body("/item", 200, "text/html", body.as_bytes(), ResourceClass::Document).map(|e| e.rule)
        };
        assert_eq!(rule_of("<p>Sorry, OUT of Stock</p>").as_deref(), Some("error_page:stock"));
        assert_eq!(rule_of("<p>The item is gone</p>").as_deref(), Some("error_page:gone"));
        assert_eq!(rule_of("<p>In stock</p>").as_deref(), Some("error_page:gone"));
        assert_eq!(rule_of("<p>Added to your basket</p>"), None);
        let bad = FailuresConfig {
            error_pages: vec![rule("fine", "fine"), rule("broken", "(unclosed")],
            ..FailuresConfig::default()
        };
        let err = Classifier::new(&bad).err().unwrap_or_default();
        assert!(err.starts_with("[failures] error page rule `broken`:") && err.contains("unclosed group"), "{err}");
    }

    /// PHP's fatal and parse errors, as text or as HTML, are the default
    /// `stack_trace` rule's; what lies between `error:` and `on line` stays
    /// on one line.
    #[test]
    fn php_errors_are_stack_traces_in_text_or_html_within_one_line() {
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        let rule_of =
            |body: &str| c.error_body("/", 200, "text/html", body.as_bytes(), ResourceClass::Document).map(|e| e.rule);
        for page in [
            "Parse error: syntax error, unexpected '}' in /var/www/html/index.php on line 12",
            "<p>PHP Fatal error:  Call to undefined function f() in /srv/app/a.php on line 3</p>",
            "<br />\n<b>Parse error</b>:  syntax error, unexpected end of file in <b>/var/www/x.php</b> on line <b>4</b><br />",
            "<b>Fatal error</b>:  Allowed memory size of 134217728 bytes exhausted in <b>/var/www/y.php</b> on line <b>88</b>",
            "Fatal error: Uncaught Exception: no stock in /app/cart.php:7\nStack trace:\n#0 {main}",
        ] {
            assert_eq!(rule_of(page).as_deref(), Some("error_page:stack_trace"), "{page}");
        }
        for page in [
            "<p>Fatal error: see the log.</p>\n<p>Listed in /faq on line 3 of the table.</p>",
            "<p>What does \"fatal error: \" mean in a game? Read on, line by line.</p>",
            "<pre>Fatal error: in x on line</pre>",
        ] {
            assert_eq!(rule_of(page), None, "{page}");
        }
    }

    fn tx(conn: u64, depth: u32, ms: i64, target: &str) -> Tx {
        let client = "10.0.0.1:1000".parse().unwrap();
        let mut t = Tx { depth, ..Tx::sample(conn, client, ms, target) };
        t.evidence_mut().cookie = Some(("sid".into(), "A".into()));
        t
    }

    fn failures(txs: Vec<Tx>) -> Vec<Failure> {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let mut sessions = Vec::new();
        for t in txs {
            sessions.extend(s.push(t));
        }
        sessions.extend(s.finish());
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        sessions.iter().flat_map(|s| c.classify(s).failures).collect()
    }

    fn kinds(txs: Vec<Tx>) -> Vec<(String, String)> {
        failures(txs).into_iter().map(|f| (f.kind.as_str().to_string(), f.severity.as_str().to_string())).collect()
    }

    fn with(mut t: Tx, f: impl FnOnce(&mut Tx)) -> Tx {
        f(&mut t);
        t
    }

    fn pair(k: &str, s: &str) -> (String, String) {
        (k.to_string(), s.to_string())
    }

    #[test]
    fn status_rules() {
        assert_eq!(
            kinds(vec![with(tx(1, 1, 0, "/"), |t| t.status = Some(503))]),
            vec![pair("server_error", "critical")]
        );
        assert_eq!(
            kinds(vec![with(tx(1, 1, 0, "/x"), |t| t.status = Some(404))]),
            vec![pair("client_error", "critical")]
        );
        // An authentication challenge is not a failure.
        assert!(kinds(vec![with(tx(1, 1, 0, "/x"), |t| t.status = Some(401))]).is_empty());
        // A broken image is minor; a broken script is major.
        let img = with(tx(1, 2, 40, "/a.png"), |t| {
            t.status = Some(404);
            t.class = ResourceClass::Image;
        });
        let js = with(tx(1, 3, 45, "/a.js"), |t| {
            t.status = Some(500);
            t.class = ResourceClass::Script;
        });
        assert_eq!(
            kinds(vec![tx(1, 1, 0, "/"), img, js]),
            vec![pair("client_error", "minor"), pair("server_error", "major")]
        );
        let err = with(tx(1, 1, 0, "/"), |t| t.error_page = Some(ErrorBody::rule("error_page:generic_error_text")));
        assert_eq!(kinds(vec![err]), vec![pair("error_page", "critical")]);
    }

    #[test]
    fn refused_http2_streams_are_not_failures_their_retries_are_judged() {
        // The server refused stream 1 (REFUSED_STREAM) and stream 3 was
        // above its GOAWAY; the browser sent both again on connection 2,
        // where one failed.
        let refused = with(tx(1, 1, 0, "/"), |t| {
            t.outcome = Outcome::Refused;
            t.status = None;
        });
        let goaway = with(tx(1, 2, 1, "/a.css"), |t| {
            t.outcome = Outcome::RefusedByGoaway;
            t.status = None;
        });
        assert_eq!(kinds(vec![refused.clone(), goaway.clone()]), vec![]);
        let retry = tx(2, 1, 5, "/");
        let failed_retry = with(tx(2, 2, 6, "/a.css"), |t| t.status = Some(503));
        assert_eq!(kinds(vec![refused, goaway, retry, failed_retry]), vec![pair("server_error", "critical")]);
    }

    #[test]
    fn outcome_rules_and_one_failure_per_dead_connection() {
        let reset = with(tx(1, 1, 0, "/"), |t| t.outcome = Outcome::ServerReset);
        // A pipelined request behind it died with it.
        let behind = with(tx(1, 2, 1, "/b.css"), |t| {
            t.outcome = Outcome::ServerReset;
            t.class = ResourceClass::Style;
            t.status = None;
        });
        assert_eq!(kinds(vec![reset, behind]), vec![pair("server_reset", "critical")]);
        let cut = with(tx(1, 1, 0, "/"), |t| t.outcome = Outcome::Truncated);
        assert_eq!(kinds(vec![cut]), vec![pair("truncated", "critical")]);
        let hung = with(tx(1, 1, 0, "/"), |t| {
            t.outcome = Outcome::NoResponse;
            t.status = None;
            t.waited = Some(Dur::from_secs(30));
        });
        assert_eq!(kinds(vec![hung]), vec![pair("no_response", "critical")]);
        // Leaving a page aborts everything it was loading: one abort.
        let left = with(tx(1, 1, 0, "/"), |t| {
            t.outcome = Outcome::ClientAbort;
            t.status = None;
        });
        let left2 = with(tx(2, 1, 5, "/api/x"), |t| {
            t.outcome = Outcome::ClientAbort;
            t.status = None;
            t.class = ResourceClass::Api;
        });
        assert_eq!(kinds(vec![left, left2]), vec![pair("client_abort", "critical")]);
    }

    #[test]
    fn capture_loss_is_never_a_failure() {
        let gap = with(tx(1, 1, 0, "/"), |t| {
            t.outcome = Outcome::CaptureGap;
            t.missing_bytes = 1460;
            t.resp_end = Some(t.start + Dur::from_secs(15));
        });
        assert!(kinds(vec![gap]).is_empty());
        // Without the request, even a 404 is unknown (was it an image?).
        let blind = with(tx(1, 1, 0, ""), |t| {
            t.method = None;
            t.status = Some(404);
            t.missing_bytes = 300;
        });
        assert!(kinds(vec![blind]).is_empty());
    }

    #[test]
    fn slow_transactions_and_pages() {
        let slow = with(tx(1, 1, 0, "/"), |t| {
            t.resp_start = Some(t.start + Dur::from_secs(6));
            t.resp_end = Some(t.start + Dur::from_secs(6));
        });
        assert_eq!(kinds(vec![slow]), vec![pair("slow", "critical")]);
        // The evidence says where the time went: here the server answered
        // at once and the answer took 5 s to arrive (a lossy network).
        let by_network = with(tx(1, 1, 0, "/"), |t| {
            t.req_end = Some(t.start + Dur::from_millis(40));
            t.resp_start = Some(t.start + Dur::from_millis(100));
            t.resp_end = Some(t.start + Dur::from_millis(5100));
        });
        let f = failures(vec![by_network.clone()]);
        assert_eq!(f[0].detail, "5100 ms (4 T = 4000 ms): server 60 ms, network 5040 ms");
        // The request was sent again 4.9 s in (the copy the capture saw
        // never reached the server): the wait before that was the network's.
        let resent = with(by_network, |t| {
            t.resp_start = Some(t.start + Dur::from_millis(5000));
            t.req_resent = Some(t.start + Dur::from_millis(4900));
        });
        let f = failures(vec![resent]);
        assert_eq!(f[0].detail, "5100 ms (4 T = 4000 ms): server 100 ms, network 5000 ms");
        // Fast requests, but the page took 13 s of back-to-back loading.
        let mut txs = vec![tx(1, 1, 0, "/")];
        for i in 0..14 {
            txs.push(with(tx(1, 2 + i, 30 + i as i64 * 950, "/x.js"), |t| {
                t.class = ResourceClass::Script;
                t.referer = Some("http://shop.example/".into());
                t.resp_end = Some(t.start + Dur::from_millis(900));
            }));
        }
        assert_eq!(kinds(txs), vec![pair("slow_page", "major")]);
    }

    #[test]
    fn a_request_the_browser_sent_again_at_once_and_got_answered_is_no_failure() {
        // The keep-alive race: the server closed an idle connection just as
        // a request left on it; the browser sent it again on a new one.
        let dead = with(tx(1, 2, 0, "/app.js"), |t| {
            t.class = ResourceClass::Script;
            t.status = None;
            t.resp_start = None;
            t.resp_end = None;
            t.outcome = Outcome::ServerReset;
        });
        let again = with(tx(2, 1, 3, "/app.js"), |t| t.class = ResourceClass::Script);
        let doc = tx(1, 1, -500, "/");
        assert_eq!(kinds(vec![doc.clone(), dead.clone(), again.clone()]), vec![]);
        // Not sent again (or sent again on the same connection, or only
        // after a wait the user felt): a failure.
        assert_eq!(kinds(vec![doc.clone(), dead.clone()]), vec![pair("server_reset", "major")]);
        let later = with(again.clone(), |t| t.start = t.start + Dur::from_secs(3));
        assert_eq!(kinds(vec![doc.clone(), dead.clone(), later.clone()]), vec![pair("server_reset", "major")]);
        // Begun at once, but its SYN was lost and retransmitted: the
        // connection opened 1 s later, still the browser's own retry.
        let slow_open = with(again.clone(), |t| {
            t.start = t.start + Dur::from_millis(1030);
            t.handshake = Some(Dur::from_millis(1025));
        });
        assert_eq!(kinds(vec![doc.clone(), dead.clone(), slow_open]), vec![]);
        let hung = with(dead, |t| {
            t.outcome = Outcome::NoResponse;
            t.waited = Some(Dur::from_secs(31));
        });
        assert_eq!(kinds(vec![doc, hung, again]), vec![pair("no_response", "major")]);
    }

    #[test]
    fn a_browsers_own_retries_of_a_reset_page_are_one_page_and_one_failure() {
        // Seen with Chromium: a page reset before any answer is asked for
        // twice more within milliseconds, each on a new connection. The user
        // saw one page fail once; it is not a struggle.
        let reset = |conn: u64, ms: i64| {
            with(tx(conn, 1, ms, "/p/1"), |t| {
                t.status = None;
                t.resp_start = None;
                t.resp_end = None;
                t.outcome = Outcome::ServerReset;
            })
        };
        let f = failures(vec![reset(1, 0), reset(2, 1), reset(3, 2)]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].kind, f[0].page), (FailureKind::ServerReset, Some(1)));
        // Asked for again by the user seconds later: a page view of its
        // own, and a struggle.
        let k = kinds(vec![reset(1, 0), reset(2, 4000)]);
        assert_eq!(
            k,
            vec![pair("server_reset", "critical"), pair("server_reset", "critical"), pair("struggle", "info")]
        );
    }

    fn session_of(txs: Vec<Tx>) -> Session {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let mut sessions = Vec::new();
        for t in txs {
            sessions.extend(s.push(t));
        }
        sessions.extend(s.finish());
        assert_eq!(sessions.len(), 1);
        sessions.remove(0)
    }

    #[test]
    fn classifying_a_long_failed_session_is_linear() {
        // One user, 10,000 pages 2 s apart, every one answered 500.
        let n = 10_000;
        let txs = (0..n).map(|i| with(tx(1, 1 + i as u32, i * 2000, &format!("/p/{i}")), |t| t.status = Some(500)));
        let s = session_of(txs.collect());
        assert_eq!(s.pages.len(), n as usize);
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        pov_sessions::work::take();
        let out = c.classify(&s);
        let steps = pov_sessions::work::take();
        assert_eq!(out.failures.len(), n as usize);
        assert!(out.failures.iter().all(|f| f.kind == FailureKind::ServerError && f.severity == Severity::Critical));
        assert!(out.apdex.iter().all(|a| *a == Apdex::Frustrated));
        // Linear (the page rules used to look at every failure and every
        // later page for each page: 200 million steps here).
        let items = (s.txs.len() + s.pages.len() + out.failures.len()) as u64;
        assert!(steps <= 10 * items, "{steps} steps for {items} items");
    }

    #[test]
    fn looking_for_a_browsers_retry_is_linear() {
        // 10,000 requests on 64 connections within a second, every one
        // reset unanswered; then 10,000 answered requests for the same URL
        // on one other connection from 3 s on: too late to be the browser's
        // own retries, yet within the 4 s a retry's connection may take.
        let n = 10_000i64;
        let mut txs = Vec::new();
        for i in 0..n {
            txs.push(with(tx(1 + (i % 64) as u64, 1 + (i / 64) as u32, i / 10, "/api/cart"), |t| {
                t.class = ResourceClass::Api;
                t.status = None;
                t.resp_start = None;
                t.resp_end = None;
                t.outcome = Outcome::ServerReset;
            }));
        }
        for i in 0..n {
            txs.push(with(tx(100, 1 + i as u32, 3000 + i / 10, "/api/cart"), |t| t.class = ResourceClass::Api));
        }
        let s = session_of(txs);
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        pov_sessions::work::take();
        let out = c.classify(&s);
        let steps = pov_sessions::work::take();
        // One reset per connection (the requests behind it share it).
        assert_eq!(out.failures.len(), 64);
        assert!(out.failures.iter().all(|f| f.kind == FailureKind::ServerReset && f.severity == Severity::Major));
        assert_eq!(out.silent_retries, 0);
        // Linear (each reset request used to look at every later request
        // within the window: 150 million steps here).
        let items = (s.txs.len() + s.pages.len()) as u64;
        assert!(steps <= 40 * items, "{steps} steps for {items} items");
    }

    // The classifier as it was before it was made linear: the model the
    // linear one must agree with.

    /// As [`answered_retry`] before it was indexed: whether transaction `i` died at once and was sent
    /// again on another connection within [`BROWSER_RETRY`], answered there. A
    /// request that waited longer for its answer hurt the user, retried or not.
    fn answered_retry_reference(txs: &[Tx], i: usize) -> bool {
        let t = &txs[i];
        let waited = t.waited.unwrap_or(Dur::ZERO);
        if waited > BROWSER_RETRY {
            return false;
        }
        let deadline = t.req_end.unwrap_or(t.start) + waited + BROWSER_RETRY;
        // Transactions are in request order; a retry starts after this one.
        // The retry's connection may have taken a while to open (a lost SYN
        // costs 1 s): what counts is when the browser began it.
        let began = |r: &Tx| r.start - r.handshake.unwrap_or(Dur::ZERO);
        let horizon = deadline + Dur::from_secs(4);
        txs.iter().skip(i + 1).take_while(|r| r.start <= horizon).any(|r| {
            r.conn != t.conn
                && r.method == t.method
                && r.target == t.target
                && r.status.is_some()
                && r.start >= t.start
                && began(r) <= deadline
        })
    }

    impl Classifier {
        /// How sessions were labelled before the linear rewrite.
        fn classify_reference(&self, s: &Session) -> Classified {
            let mut out = Classified::default();
            let page_of = page_index(s);
            let mut dead_conns: FastSet<u64> = FastSet::default();
            let mut aborted_pages: FastSet<u32> = FastSet::default();
            // A page's document tried again by the browser and failing the same
            // way is one failure the user met, not two.
            let mut doc_failures: FastSet<(u32, String, FailureKind)> = FastSet::default();
            let t_tx = ms(self.cfg.apdex_t_ms);
            for (i, t) in s.txs.iter().enumerate() {
                if t.capture_loss() {
                    out.capture_loss += 1;
                }
                let page = page_of.get(i).copied().flatten();
                let is_doc = page.is_some_and(|p| s.pages[(p - 1) as usize].documents.contains(&i));
                let severity = if self.is_minor(t.class) {
                    Severity::Minor
                } else if is_doc || t.method.as_deref().is_some_and(|m| m != "GET" && m != "HEAD") {
                    Severity::Critical
                } else {
                    Severity::Major
                };
                let mut push = |kind: FailureKind, rule: &str, detail: String| {
                    if is_doc
                        && let Some(p) = page
                        && !doc_failures.insert((p, t.target.clone(), kind))
                    {
                        return;
                    }
                    out.failures.push(Failure {
                        kind,
                        rule: rule.to_string(),
                        severity,
                        ts: t.start,
                        page,
                        tx: Some(i),
                        conn: t.conn,
                        client: Some(t.client),
                        server: Some(t.server),
                        depth: Some(t.depth),
                        frames: span(t),
                        host: t.host.clone(),
                        url: t.target.clone(),
                        status: t.status,
                        detail,
                    })
                };
                // Without the request, what was asked for (a page? an image?)
                // is in bytes the capture missed: whether anything failed for
                // the user is unknown.
                if t.method.is_none() {
                    out.unknown += 1;
                    continue;
                }
                // The connection died under an earlier request: this one shares
                // that failure, it is not a new one.
                let follower = dead_conns.contains(&t.conn);
                // A request that died with no answer and that the browser sent
                // again at once on another connection, answered there: the
                // user saw nothing go wrong. (Browsers do this when a kept-alive
                // connection is closed or reset under a new request, the server
                // having timed it out just as the request left.)
                if t.status.is_none()
                    && matches!(t.outcome, Outcome::ServerReset | Outcome::NoResponse)
                    && answered_retry_reference(&s.txs, i)
                {
                    dead_conns.insert(t.conn);
                    out.silent_retries += 1;
                    continue;
                }
                match t.outcome {
                    Outcome::CaptureGap => {
                        // What happened is in bytes the capture missed; a status
                        // line that was captured still tells.
                        out.unknown += 1;
                    }
                    Outcome::ServerReset if !follower => {
                        dead_conns.insert(t.conn);
                        push(FailureKind::ServerReset, "outcome", reset_detail(t));
                        continue;
                    }
                    Outcome::Truncated if !follower => {
                        dead_conns.insert(t.conn);
                        push(
                            FailureKind::Truncated,
                            "outcome",
                            format!("{} body bytes, then the server closed", t.response_body_len),
                        );
                        continue;
                    }
                    Outcome::ClientAbort if !follower => {
                        dead_conns.insert(t.conn);
                        // Leaving a page aborts all it was loading: once per page.
                        if page.is_none_or(|p| aborted_pages.insert(p)) {
                            push(FailureKind::ClientAbort, "outcome", waited(t, "gave up after"));
                        }
                        continue;
                    }
                    Outcome::NoResponse if !follower => {
                        dead_conns.insert(t.conn);
                        push(FailureKind::NoResponse, "outcome", waited(t, "no answer in"));
                        continue;
                    }
                    Outcome::ServerReset | Outcome::Truncated | Outcome::ClientAbort | Outcome::NoResponse => continue,
                    Outcome::Refused | Outcome::RefusedByGoaway => continue,
                    Outcome::Complete | Outcome::Malformed => {}
                }
                if let Some(st) = t.status {
                    if st >= 500 {
                        push(FailureKind::ServerError, "status_5xx", format!("status {st}"));
                        continue;
                    }
                    if (400..500).contains(&st) && !self.cfg.client_error_ignore.contains(&st) {
                        push(FailureKind::ClientError, "status_4xx", format!("status {st}"));
                        continue;
                    }
                    if let Some(e) = &t.error_page {
                        push(FailureKind::ErrorPage, &e.rule, error_detail(st, e));
                        continue;
                    }
                }
                // Slow: the request's first byte to the response's last.
                if matches!(t.outcome, Outcome::Complete | Outcome::CaptureGap)
                    && t.method.is_some()
                    && severity >= Severity::Major
                {
                    let limit = Dur(t_tx.0.saturating_mul(4));
                    // With bytes missing, the response's end may be only when
                    // the connection closed: count up to its first byte, which
                    // the capture does show.
                    let d = if t.capture_loss() { t.resp_start.map(|r| r - t.start) } else { t.duration() };
                    if let Some(d) = d
                        && d > limit
                    {
                        // Where the time went: the server (request received to
                        // first answer byte) or the network (sending the request,
                        // again if it was lost, and receiving the answer).
                        let split = match t.server_time() {
                            Some(server) => format!(
                                ": server {:.0} ms, network {:.0} ms",
                                server.as_millis_f64(),
                                (d - server).as_millis_f64().max(0.0)
                            ),
                            None => String::new(),
                        };
                        push(
                            FailureKind::Slow,
                            "apdex_4t",
                            format!("{:.0} ms (4 T = {:.0} ms){split}", d.as_millis_f64(), limit.as_millis_f64()),
                        );
                    }
                }
            }
            for (fi, f) in s.failed.iter().enumerate() {
                let page = s.pages.iter().find(|p| p.failed.contains(&fi)).map(|p| p.index);
                let (kind, detail) = match f.kind {
                    FailedConnKind::Refused => (FailureKind::Refused, "SYN answered by RST".to_string()),
                    FailedConnKind::Unanswered => (
                        FailureKind::Unanswered,
                        format!("{} SYN, no answer in {:.1} s", f.syns, (f.end - f.start).as_secs_f64()),
                    ),
                    FailedConnKind::TlsHandshakeFailed => {
                        (FailureKind::TlsHandshake, f.evidence.clone().unwrap_or_default())
                    }
                    FailedConnKind::TlsIncomplete => {
                        (FailureKind::TlsIncomplete, f.evidence.clone().unwrap_or_default())
                    }
                };
                out.failures.push(Failure {
                    kind,
                    rule: "connection".into(),
                    severity: Severity::Critical,
                    ts: f.start,
                    page,
                    tx: None,
                    conn: f.conn,
                    client: Some(f.client),
                    server: Some(f.server),
                    depth: None,
                    frames: Some(f.frames),
                    host: f.sni.clone(),
                    url: String::new(),
                    status: None,
                    detail,
                });
            }
            // Page-level rules.
            let struggle = Dur((self.cfg.struggle_window_secs.max(0.0) * 1e9) as i64);
            for p in &s.pages {
                let t_page = ms(p.apdex_t_ms.unwrap_or(self.cfg.page_apdex_t_ms));
                let failed_here = out.failures.iter().any(|f| f.page == Some(p.index) && f.severity.noticed());
                let zone = if failed_here || p.load > Dur(t_page.0.saturating_mul(4)) {
                    Apdex::Frustrated
                } else if p.load > t_page {
                    Apdex::Tolerating
                } else {
                    Apdex::Satisfied
                };
                out.apdex.push(zone);
                let first_doc = p.documents.first().map(|d| &s.txs[*d]);
                if let Some(d) = first_doc {
                    let redirects = p
                        .documents
                        .iter()
                        .filter(|i| s.txs[**i].status.is_some_and(|x| (300..400).contains(&x)))
                        .count();
                    let mut seen = HashSet::new();
                    let revisits = p.documents.iter().any(|i| !seen.insert(s.txs[*i].target.as_str()));
                    let still_redirected = p.status.is_some_and(|x| (300..400).contains(&x));
                    if still_redirected && (revisits || redirects as u32 > self.cfg.redirect_limit) {
                        out.failures.push(page_failure(
                            p,
                            d,
                            FailureKind::RedirectLoop,
                            "redirects",
                            Severity::Critical,
                            format!("{redirects} redirects"),
                        ));
                    }
                    if !failed_here && p.load > Dur(t_page.0.saturating_mul(4)) && d.method.is_some() {
                        out.failures.push(page_failure(
                            p,
                            d,
                            FailureKind::SlowPage,
                            "apdex_4t",
                            Severity::Major,
                            format!(
                                "loaded in {:.0} ms (4 T = {:.0} ms)",
                                p.load.as_millis_f64(),
                                4.0 * t_page.as_millis_f64()
                            ),
                        ));
                    }
                }
                // Struggle: the same page again, soon after it failed there.
                if let Some(prev) =
                    s.pages.iter().rev().find(|q| q.index < p.index && q.url == p.url && !p.url.is_empty())
                {
                    let prev_failed = out.failures.iter().any(|f| f.page == Some(prev.index) && f.severity.noticed());
                    if prev_failed
                        && p.start - prev.end <= struggle
                        && let Some(d) = first_doc.or_else(|| p.txs.first().map(|i| &s.txs[*i]))
                    {
                        out.failures.push(page_failure(
                            p,
                            d,
                            FailureKind::Struggle,
                            "same_page_after_failure",
                            Severity::Info,
                            format!(
                                "again {:.1} s after page {} failed",
                                (p.start - prev.end).as_secs_f64(),
                                prev.index
                            ),
                        ));
                    }
                }
            }
            out.failures.sort_by_key(|f| (f.ts, f.conn, f.depth));
            out
        }
    }

    /// A small deterministic generator (xorshift64*).
    struct Rand(u64);

    impl Rand {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % n.max(1)
        }
    }

    /// One user's random transactions: pages (some failing, redirected,
    /// slow, reset, retried at once or later), resources, dead requests
    /// sent again on other connections, failed connection attempts.
    fn random_session(seed: u64) -> Session {
        let mut r = Rand(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut txs = Vec::new();
        let mut at = 0i64;
        let n = 5 + r.below(80);
        for i in 0..n {
            at += [0, 1, 3, 40, 300, 900, 1500, 3000, 9000, 20_000][r.below(10) as usize];
            let target = format!("/p/{}", r.below(8));
            let mut t = tx(1 + r.below(5), 1 + i as u32, at, &target);
            t.resp_end = Some(t.start + Dur::from_millis([5, 30, 800, 3000, 6000][r.below(5) as usize]));
            t.resp_start = Some(t.start + Dur::from_millis(2));
            if r.below(3) > 0 {
                t.class = [ResourceClass::Image, ResourceClass::Style, ResourceClass::Api][r.below(3) as usize];
                if r.below(2) == 0 {
                    t.referer = Some(format!("http://shop.example/p/{}", r.below(8)));
                }
            }
            match r.below(12) {
                0 => t.status = Some(500),
                1 => t.status = Some(404),
                2 => {
                    t.status = Some(302);
                    t.location = Some(format!("http://shop.example/p/{}", r.below(8)));
                }
                3 | 4 => {
                    t.status = None;
                    t.resp_start = None;
                    t.resp_end = None;
                    t.outcome = [Outcome::ServerReset, Outcome::NoResponse, Outcome::ClientAbort][r.below(3) as usize];
                    t.waited = Some(Dur::from_millis([0, 500, 2000][r.below(3) as usize]));
                }
                5 => t.outcome = Outcome::Truncated,
                6 => t.error_page = Some(ErrorBody::rule("error_page:generic_error_text")),
                7 => {
                    t.missing_bytes = 100;
                    t.outcome = Outcome::CaptureGap;
                }
                8 => t.handshake = Some(Dur::from_millis(1000)),
                _ => {}
            }
            txs.push(t);
        }
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let mut out = Vec::new();
        for t in txs {
            out.extend(s.push(t));
        }
        for k in 0..r.below(6) {
            let start = pov_capture::Ts(1_700_000_000_000_000_000 + (r.below(at as u64 + 1) as i64) * 1_000_000);
            out.extend(s.push_failed(pov_sessions::FailedConn {
                conn: 1000 + k,
                client: "10.0.0.1:2000".parse().unwrap(),
                server: "192.0.2.10:80".parse().unwrap(),
                start,
                end: start + Dur::from_millis(1),
                kind: [FailedConnKind::Refused, FailedConnKind::TlsHandshakeFailed, FailedConnKind::TlsIncomplete]
                    [r.below(3) as usize],
                syns: 1,
                frames: FrameSpan { first: 1, last: 2 },
                sni: Some("shop.example".into()),
                evidence: Some("TLS handshake failed: alert unknown_ca (certificate refused) from the client".into()),
            }));
        }
        out.extend(s.finish());
        out.into_iter().max_by_key(|s| s.txs.len()).unwrap()
    }

    #[test]
    fn linear_classification_agrees_with_the_quadratic_one() {
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        let mut kinds = HashSet::new();
        let mut silent = 0;
        for seed in 0..1500 {
            let s = random_session(seed);
            let fast = c.classify(&s);
            let slow = c.classify_reference(&s);
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "seed {seed}");
            kinds.extend(fast.failures.iter().map(|f| f.kind));
            silent += fast.silent_retries;
        }
        // The sessions reach every kind but `unanswered`, and browsers'
        // own retries.
        assert_eq!(kinds.len(), FailureKind::ALL.len() - 1, "{kinds:?}");
        assert!(silent > 0);
    }

    #[test]
    fn a_failed_api_call_of_the_page_shown_is_a_failure_the_user_noticed() {
        let soft = |rule: &str, evidence: &str| Some(ErrorBody { rule: rule.into(), evidence: evidence.into() });
        let product = tx(1, 1, 0, "/product/7");
        // The page's script asks for recommendations: 200, but the body
        // says the call failed.
        let recs = with(tx(1, 2, 300, "/api/recommendations?product=7"), |t| {
            t.class = ResourceClass::Api;
            t.referer = Some("http://shop.example/product/7".into());
            t.error_page = soft("api_error:status", r#""status": "error""#);
        });
        // Twenty seconds later, still on the page, the user adds to the
        // cart (a form they sent): `{"success": false}`.
        let add = with(tx(2, 1, 20_000, "/cart/add"), |t| {
            t.method = Some("POST".into());
            t.class = ResourceClass::Api;
            t.referer = Some("http://shop.example/product/7".into());
            t.error_page = soft("api_error:success", r#""success": false"#);
        });
        let s = session_of(vec![product, recs, add]);
        assert_eq!(s.pages.len(), 1, "both calls belong to the product page");
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        let out = c.classify(&s);
        let got: Vec<_> = out.failures.iter().map(|f| (f.kind, f.rule.as_str(), f.severity, f.page)).collect();
        assert_eq!(
            got,
            vec![
                (FailureKind::ErrorPage, "api_error:status", Severity::Major, Some(1)),
                (FailureKind::ErrorPage, "api_error:success", Severity::Critical, Some(1)),
            ]
        );
        assert!(out.failures.iter().all(|f| f.severity.noticed()));
        assert_eq!(out.failures[0].detail, r#"status 200: "status": "error""#);
        assert_eq!(out.failures[1].detail, r#"status 200: "success": false"#);
        assert_eq!(out.apdex, vec![Apdex::Frustrated]);
        // Unless the class is configured as minor.
        let cfg = FailuresConfig { minor_classes: vec!["api".into()], ..FailuresConfig::default() };
        let out = Classifier::new(&cfg).unwrap().classify(&s);
        assert!(out.failures.iter().all(|f| f.severity == Severity::Minor));
        assert_eq!(out.apdex, vec![Apdex::Satisfied]);
    }

    #[test]
    fn struggle_and_redirect_loop() {
        let failed = with(tx(1, 1, 0, "/p/1"), |t| t.status = Some(500));
        let again = tx(1, 2, 3000, "/p/1");
        assert_eq!(kinds(vec![failed, again]), vec![pair("server_error", "critical"), pair("struggle", "info")]);
        let hop = |d: u32, ms: i64, from: &str, to: &str| {
            with(tx(1, d, ms, from), |t| {
                t.status = Some(302);
                t.location = Some(format!("http://shop.example{to}"));
            })
        };
        let k = kinds(vec![hop(1, 0, "/a", "/b"), hop(2, 100, "/b", "/a"), hop(3, 200, "/a", "/b")]);
        assert_eq!(k, vec![pair("redirect_loop", "critical")]);
    }
}
