//! pov-classify: what went wrong for each user, by rule, with evidence.
//!
//! [`Classifier::error_page`] reads a 2xx response body once, when the
//! transaction is reduced (bodies are not kept after that);
//! [`Classifier::classify`] labels a closed session's transactions, failed
//! connections and page views. Capture loss is never a failure: a
//! transaction whose evidence lies in bytes the capture missed is left
//! unlabelled and counted as capture loss.

pub mod config;

use std::collections::HashSet;

use pov_capture::http::{FrameSpan, HttpTransaction, Outcome};
use pov_capture::{Dur, Ts};
use pov_sessions::{BROWSER_RETRY, FailedConnKind, ResourceClass, Session, Tx};
use regex::{Regex, RegexBuilder};

pub use config::{ErrorPageRule, FailuresConfig};

/// Kinds of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A 5xx answer.
    ServerError,
    /// A 4xx answer to a page or an important resource.
    ClientError,
    /// A 2xx answer whose body is an error page or a JSON error.
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
    /// A page view that kept being redirected.
    RedirectLoop,
    /// The same page again right after it failed (a signal, not a new
    /// failure).
    Struggle,
}

impl FailureKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FailureKind; 13] = [
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

/// Whether transaction `i` (dead, unanswered) died at once and was sent
/// again on another connection within [`BROWSER_RETRY`], answered there. A
/// request that waited longer for its answer hurt the user, retried or not.
fn answered_retry(txs: &[Tx], i: usize) -> bool {
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

/// Compiled failure rules.
pub struct Classifier {
    cfg: FailuresConfig,
    error_pages: Vec<(String, Regex)>,
    minor: HashSet<String>,
    strip: Regex,
}

fn ms(x: f64) -> Dur {
    Dur((x.max(0.0) * 1e6) as i64)
}

impl Classifier {
    /// Compiles the rules; a bad pattern is an error naming its rule.
    pub fn new(cfg: &FailuresConfig) -> Result<Classifier, String> {
        let mut error_pages = Vec::new();
        for r in &cfg.error_pages {
            let re = RegexBuilder::new(&r.pattern)
                .case_insensitive(true)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| format!("[failures] error page rule `{}`: {e}", r.name))?;
            error_pages.push((r.name.clone(), re));
        }
        let strip = Regex::new(r"(?is)<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->")
            .map_err(|e| e.to_string())?;
        Ok(Classifier {
            cfg: cfg.clone(),
            error_pages,
            minor: cfg.minor_classes.iter().map(|c| c.to_ascii_lowercase()).collect(),
            strip,
        })
    }

    /// The settings.
    pub fn config(&self) -> &FailuresConfig {
        &self.cfg
    }

    /// For a 2xx response of a page or API: the error-page rule its body
    /// matches (`error_page:NAME`, or `error_json` for a JSON error).
    pub fn error_page(&self, t: &HttpTransaction, class: ResourceClass) -> Option<String> {
        let resp = t.response.as_ref()?;
        let ct = resp.headers.text("content-type").unwrap_or_default();
        self.error_body(resp.status, &ct, &t.response_body.kept, class)
    }

    /// [`Classifier::error_page`] for an answer given as its parts (status,
    /// Content-Type, decoded body): `pov replay send` checks a live answer.
    pub fn error_body(&self, status: u16, content_type: &str, body: &[u8], class: ResourceClass) -> Option<String> {
        if !(200..300).contains(&status) || body.is_empty() {
            return None;
        }
        if !matches!(class, ResourceClass::Document | ResourceClass::Api | ResourceClass::Other) {
            return None;
        }
        let body = String::from_utf8_lossy(body);
        let ct = content_type.to_ascii_lowercase();
        let trimmed = body.trim_start();
        if (ct.contains("json") || (!ct.contains("html") && (trimmed.starts_with('{'))))
            && let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(trimmed)
        {
            for k in &self.cfg.error_json_keys {
                let bad = match m.get(k) {
                    None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => false,
                    Some(serde_json::Value::String(s)) => !s.is_empty(),
                    Some(serde_json::Value::Array(a)) => !a.is_empty(),
                    Some(serde_json::Value::Object(o)) => !o.is_empty(),
                    Some(_) => true,
                };
                if bad {
                    return Some("error_json".into());
                }
            }
            return None;
        }
        let text = if ct.contains("html") || trimmed.starts_with('<') {
            self.strip.replace_all(&body, " ")
        } else {
            body.clone()
        };
        self.error_pages.iter().find(|(_, re)| re.is_match(&text)).map(|(n, _)| format!("error_page:{n}"))
    }

    fn is_minor(&self, class: ResourceClass) -> bool {
        self.minor.contains(class.as_str())
    }

    /// Labels a session.
    pub fn classify(&self, s: &Session) -> Classified {
        let mut out = Classified::default();
        let page_of = page_index(s);
        let mut dead_conns: HashSet<u64> = HashSet::new();
        let mut aborted_pages: HashSet<u32> = HashSet::new();
        // A page's document tried again by the browser and failing the same
        // way is one failure the user met, not two.
        let mut doc_failures: HashSet<(u32, String, FailureKind)> = HashSet::new();
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
                && answered_retry(&s.txs, i)
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
                if let Some(rule) = &t.error_page {
                    push(FailureKind::ErrorPage, rule, format!("status {st} with an error body"));
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
                host: None,
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
                let redirects =
                    p.documents.iter().filter(|i| s.txs[**i].status.is_some_and(|x| (300..400).contains(&x))).count();
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
            if let Some(prev) = s.pages.iter().rev().find(|q| q.index < p.index && q.url == p.url && !p.url.is_empty())
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

    fn tx(conn: u64, depth: u32, ms: i64, target: &str) -> Tx {
        let client = "10.0.0.1:1000".parse().unwrap();
        Tx { depth, cookie: Some(("sid".into(), "A".into())), ..Tx::sample(conn, client, ms, target) }
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
        let err = with(tx(1, 1, 0, "/"), |t| t.error_page = Some("error_page:generic_error_text".into()));
        assert_eq!(kinds(vec![err]), vec![pair("error_page", "critical")]);
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
