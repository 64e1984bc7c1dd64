//! `pov replay send`: the selected sessions' requests re-sent to a live
//! server (pov-replay's `send`), and the answers compared with the capture:
//! per request, status and body length then and now, and which of the
//! failures the users met happen again.

use std::collections::{BTreeMap, HashMap};

use pov_capture::http::{HttpTransaction, Outcome};
use pov_classify::Classifier;
use pov_replay::send::{SendOutcome, SendRequest, SendResult};
use pov_sessions::ResourceClass;

use crate::output::Record;
use crate::replay::{Keep, Selection, TxKey, in_order};
use pov_privacy::Masker;

/// Where a captured request carries a credential outside its headers: a
/// query or path parameter (`;name=value`), or a field of a form,
/// multipart or JSON body, whose name `is_secret` says holds a secret (the
/// names masking hides: a login's `password`, a checkout's `card_number`).
/// Names are percent-decoded first. `None` when there is none.
pub fn credential_in(
    target: &str,
    content_type: &str,
    body: &[u8],
    is_secret: &dyn Fn(&str) -> bool,
) -> Option<&'static str> {
    use pov_sessions::values::form_pairs;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    if form_pairs(query).any(|(k, _)| is_secret(&k)) {
        return Some("query");
    }
    if path.split('/').flat_map(|seg| seg.split(';').skip(1)).flat_map(form_pairs).any(|(k, _)| is_secret(&k)) {
        return Some("path parameters");
    }
    let ct = content_type.to_ascii_lowercase();
    if body.is_empty() {
        None
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        form_pairs(&String::from_utf8_lossy(body)).any(|(k, _)| is_secret(&k)).then_some("form body")
    } else if ct.starts_with("multipart/form-data") {
        // Every part's `Content-Disposition: form-data; name="..."`.
        let text = String::from_utf8_lossy(body);
        let secret = text.lines().filter(|l| l.to_ascii_lowercase().starts_with("content-disposition:")).any(|l| {
            l.split(';').filter_map(|p| p.trim().strip_prefix("name=")).any(|n| is_secret(n.trim_matches('"')))
        });
        secret.then_some("multipart body")
    } else if ct.contains("json") {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return None };
        // Every key at any depth, without recursion.
        let mut stack = vec![&v];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Object(m) => {
                    if m.keys().any(|k| is_secret(k)) {
                        return Some("JSON body");
                    }
                    stack.extend(m.values());
                }
                serde_json::Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
        None
    } else {
        None
    }
}

/// The requests to re-send (request order) and the captured transactions
/// they come from; transactions whose request head the capture lost are
/// left out (counted in the third value). Parameters and fields carry
/// credentials when `masker` (masking or not) calls their names secret
/// ([`credential_in`]): one rule for what outputs hide and what is kept
/// back from a live server.
pub fn requests<'a>(
    keep: &'a Keep,
    sel: &Selection,
    masker: &Masker,
) -> (Vec<SendRequest>, Vec<&'a HttpTransaction>, u64) {
    let is_secret = |name: &str| masker.is_secret_param(name.as_bytes());
    let (mut reqs, mut txs, mut lost) = (Vec::new(), Vec::new(), 0);
    for t in in_order(keep) {
        let Some(r) = t.request.as_ref() else {
            lost += 1;
            continue;
        };
        let session = keep
            .wanted
            .get(&(t.conn, t.depth))
            .and_then(|p| sel.sessions.get(p.session))
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let b = &t.request_body;
        let target = r.uri_text();
        let credential = credential_in(&target, &r.content_type().unwrap_or_default(), &b.kept, &is_secret);
        reqs.push(SendRequest {
            session,
            conn: t.conn,
            start_ns: t.timing.start().0,
            method: r.method.as_str().to_string(),
            target,
            headers: r.headers.iter().map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.to_vec())).collect(),
            body: b.kept.clone(),
            body_complete: b.kept.len() as u64 == b.decoded_len && b.decode_stop.is_none(),
            credential: credential.map(str::to_string),
        });
        txs.push(t);
    }
    (reqs, txs, lost)
}

pov_impact::record! {
    /// One request of `pov replay send`: the capture's answer and today's.
    #[derive(Clone, Debug, Default)]
    pub struct SendRecord {
        /// Session id.
        pub session: String,
        /// Captured request start, seconds since the epoch.
        pub ts: f64,
        /// Method.
        pub method: String,
        /// Path and query (secrets masked).
        pub url: String,
        /// Captured status.
        pub captured_status: Option<u16>,
        /// Captured decoded body length.
        pub captured_body_len: u64,
        /// Captured outcome (`complete`, `server_reset` ...).
        pub captured_outcome: String,
        /// Replay outcome (`answered`, `refused`, `reset`, `timeout`, `closed`,
        /// `error`, `skipped`, `withheld`).
        pub outcome: String,
        /// Why it was skipped, withheld or failed, if it was.
        pub note: Option<String>,
        /// Captured headers kept from the target by the safety rules
        /// (lower-case names; `cookie` when captured cookie values were left
        /// out).
        pub stripped: Vec<String>,
        /// Status now.
        pub status: Option<u16>,
        /// Body length now.
        pub body_len: Option<u64>,
        /// Time to first byte now, ms.
        pub ttfb_ms: Option<f64>,
        /// The status differs from the capture's.
        pub status_differs: bool,
        /// The body length differs from the capture's.
        pub length_differs: bool,
        /// Failures the capture shows on this request.
        pub failures: Vec<String>,
        /// Of those, the ones that happened again.
        pub reproduced: Vec<String>,
    }
    /// The column names of [`SendRecord`].
    pub columns SendColumns;
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

impl Record for SendRecord {
    const HEADER: &'static [&'static str] =
        &["session", "method", "url", "then", "now", "bytes then", "bytes now", "outcome", "failures", "again"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.session.clone(),
            self.method.clone(),
            self.url.clone(),
            opt(self.captured_status),
            opt(self.status),
            self.captured_body_len.to_string(),
            opt(self.body_len),
            self.outcome.clone(),
            self.failures.join(","),
            self.reproduced.join(","),
        ]
    }
}

/// What a replay found, in numbers.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SendSummary {
    /// Requests of the selected sessions.
    pub requests: u64,
    /// Left out: the capture lost their request head.
    pub head_lost: u64,
    /// Sent (attempted).
    pub sent: u64,
    /// Not sent (over a limit, body not captured whole).
    pub skipped: u64,
    /// Not sent by a safety rule (CONNECT, TRACE, a request-target that is
    /// not a path, a credential in the query or body).
    pub withheld: u64,
    /// Those by reason.
    pub withheld_by: BTreeMap<String, u64>,
    /// Requests sent without a captured header the safety rules kept back,
    /// by header (lower-case; `cookie`: captured cookie values).
    pub stripped: BTreeMap<String, u64>,
    /// Sent and answered in full.
    pub answered: u64,
    /// Sent and compared: same status and body length as captured.
    pub same: u64,
    /// Sent, with another status than captured.
    pub status_differs: u64,
    /// Sent, with the same status but another body length.
    pub length_differs: u64,
    /// Captured failures on re-sent requests, by kind: (seen, happened
    /// again).
    pub failures: BTreeMap<String, (u64, u64)>,
    /// Captured failures that re-sending cannot show (a user's give-up, a
    /// page-level or connection-level failure, a request not sent).
    pub not_replayable: u64,
}

/// Whether a failure of `kind` happened again in `r`, the answer to a
/// request for `target`; `None` when re-sending cannot show it (the user
/// gave up, a page-level verdict).
fn reproduces(kind: &str, target: &str, r: &SendResult, classifier: &Classifier) -> Option<bool> {
    let status = r.status.unwrap_or(0);
    let t = classifier.config().apdex_t_ms;
    Some(match kind {
        "server_error" => status >= 500,
        "client_error" => (400..500).contains(&status),
        "error_page" => {
            let ct = r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            classifier.error_body(target, status, &ct, &r.body, ResourceClass::Other).is_some()
        }
        "slow" => r.total.is_some_and(|d| d.as_secs_f64() * 1000.0 > 4.0 * t),
        "no_response" => r.outcome == SendOutcome::Timeout,
        "server_reset" => r.outcome == SendOutcome::Reset,
        "truncated" => matches!(r.outcome, SendOutcome::Closed | SendOutcome::Reset) && r.status.is_some(),
        _ => return None,
    })
}

/// Compares each result with its captured transaction. `failures` maps a
/// transaction to the failure kinds the capture shows on it (noticed and
/// minor; struggles are not failures).
pub fn compare(
    txs: &[&HttpTransaction],
    reqs: &[SendRequest],
    results: &[SendResult],
    failures: &HashMap<TxKey, Vec<String>>,
    classifier: &Classifier,
    masker: &Masker,
) -> (Vec<SendRecord>, SendSummary) {
    let mut sum = SendSummary { requests: txs.len() as u64, ..SendSummary::default() };
    let mut out = Vec::with_capacity(txs.len());
    for ((t, q), r) in txs.iter().zip(reqs).zip(results) {
        let captured_status = t.response.as_ref().map(|h| h.status);
        let kinds = failures.get(&(t.conn, t.depth)).cloned().unwrap_or_default();
        let (note, skipped) = match &r.outcome {
            SendOutcome::Skipped(why) | SendOutcome::Withheld(why) => (Some(masker.text(why).into_owned()), true),
            SendOutcome::Error(e) => (Some(masker.text(e).into_owned()), false),
            _ => (None, false),
        };
        for h in &r.stripped {
            *sum.stripped.entry(h.clone()).or_default() += 1;
        }
        let mut rec = SendRecord {
            session: q.session.clone(),
            ts: t.timing.start().as_secs_f64(),
            method: q.method.clone(),
            url: masker.url(&q.target),
            captured_status,
            captured_body_len: t.response_body.decoded_len,
            captured_outcome: t.outcome.as_str().to_string(),
            outcome: r.outcome.as_str().to_string(),
            note,
            stripped: r.stripped.clone(),
            status: r.status,
            body_len: (!skipped).then_some(r.body_len),
            ttfb_ms: r.ttfb.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
            status_differs: false,
            length_differs: false,
            failures: kinds.clone(),
            reproduced: Vec::new(),
        };
        if skipped {
            if let SendOutcome::Withheld(why) = &r.outcome {
                sum.withheld += 1;
                *sum.withheld_by.entry(why.clone()).or_default() += 1;
            } else {
                sum.skipped += 1;
            }
            sum.not_replayable += kinds.len() as u64;
        } else {
            sum.sent += 1;
            sum.answered += u64::from(r.outcome == SendOutcome::Answered);
            rec.status_differs = r.status != captured_status;
            // A body the capture lost part of has no length to compare.
            let captured_len_known = t.missing_bytes == 0 || t.outcome == Outcome::Complete;
            rec.length_differs = !rec.status_differs && captured_len_known && r.body_len != t.response_body.decoded_len;
            if rec.status_differs {
                sum.status_differs += 1;
            } else if rec.length_differs {
                sum.length_differs += 1;
            } else {
                sum.same += 1;
            }
            for k in &kinds {
                match reproduces(k, &q.target, r, classifier) {
                    Some(again) => {
                        let e = sum.failures.entry(k.clone()).or_default();
                        e.0 += 1;
                        if again {
                            e.1 += 1;
                            rec.reproduced.push(k.clone());
                        }
                    }
                    None => sum.not_replayable += 1,
                }
            }
        }
        out.push(rec);
    }
    (out, sum)
}

/// Failure kinds by transaction, over the selected sessions (struggles,
/// a signal rather than a failure, left out).
pub fn failures_by_tx(sel: &Selection) -> (HashMap<TxKey, Vec<String>>, u64) {
    let mut by: HashMap<TxKey, Vec<String>> = HashMap::new();
    let mut without_tx = 0;
    for s in &sel.sessions {
        for (f, k) in &s.failures {
            if f.kind == "struggle" {
                continue;
            }
            match k {
                Some(k) => by.entry(*k).or_default().push(f.kind.clone()),
                None => without_tx += 1,
            }
        }
    }
    (by, without_tx)
}

pub use pov_replay::send::{SendConfig, never_forwarded};

/// Re-sends the selected sessions' requests as `cfg` says and compares the
/// answers with the capture. `progress` hears how many are done.
pub fn resend(
    keep: &Keep,
    sel: &Selection,
    cfg: &SendConfig,
    pov_cfg: &crate::config::PovConfig,
    mask: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<SendRecord>, SendSummary), String> {
    let classifier = Classifier::new(&pov_cfg.failures)?;
    let masker = Masker::new(&pov_cfg.privacy, mask);
    let (reqs, txs, head_lost) = requests(keep, sel, &masker);
    let total = reqs.len();
    let results = pov_replay::send::send(&reqs, cfg, &|n| progress(n, total));
    let (by_tx, without_tx) = failures_by_tx(sel);
    let (records, mut sum) = compare(&txs, &reqs, &results, &by_tx, &classifier, &masker);
    sum.head_lost = head_lost;
    sum.requests += head_lost;
    sum.not_replayable += without_tx;
    Ok((records, sum))
}

/// `http://HOST:PORT` (`--target`) -> (socket address, Host header
/// value). Requests go to the target's own paths, so a path, query or user
/// name in it is refused rather than silently dropped.
pub fn parse_target(t: &str) -> Result<(std::net::SocketAddr, String), String> {
    use std::net::ToSocketAddrs;
    if t.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://")) {
        return Err(format!("--target {t}: pov re-sends plain HTTP/1.1; point it at an http:// listener"));
    }
    let rest = t.get(..7).filter(|p| p.eq_ignore_ascii_case("http://")).and_then(|_| t.get(7..)).unwrap_or(t);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(format!("--target {t}: only http://HOST:PORT; the captured paths are sent as they are"));
    }
    if rest.contains('@') || rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("--target {t}: only http://HOST:PORT (no user name, no blanks)"));
    }
    let authority = rest;
    if authority.is_empty() {
        return Err(format!("--target {t}: no host"));
    }
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("--target {t}: {e}"))?
        .next()
        .ok_or_else(|| format!("--target {t}: no address"))?;
    Ok((addr, authority.to_string()))
}

/// Checks a `--keep-header` name: a header name (RFC 9110 token), and not
/// one pov always rewrites or never forwards.
pub fn check_keep_header(h: &str) -> Result<(), String> {
    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        return Err(format!("--keep-header {h:?}: not a header name"));
    }
    if never_forwarded(h) {
        return Err(format!(
            "--keep-header {h}: pov always rewrites Host and Accept-Encoding, rebuilds the framing and never \
             forwards hop-by-hop headers"
        ));
    }
    Ok(())
}

/// Rows of a table printed by [`write_text`]; the rest are in the `-o`
/// file.
const ROWS_SHOWN: usize = 50;

/// What `pov replay send` prints: the counts, the failures that happened
/// again, what the safety rules withheld or kept back, and the requests
/// whose answer differs (`sessions` replayed against `target`).
pub fn write_text(
    w: &mut dyn std::io::Write,
    (sessions, target): (usize, &str),
    records: &[SendRecord],
    sum: &SendSummary,
) -> std::io::Result<()> {
    writeln!(
        w,
        "{} sessions, {} requests to {}: {} sent ({} answered), {} skipped, {} withheld, {} not sendable (request \
         head lost)",
        sessions, sum.requests, target, sum.sent, sum.answered, sum.skipped, sum.withheld, sum.head_lost
    )?;
    writeln!(
        w,
        "compared with the capture: {} same, {} with another status, {} with another body length",
        sum.same, sum.status_differs, sum.length_differs
    )?;
    for (kind, (seen, again)) in &sum.failures {
        writeln!(w, "  {kind}: {again} of {seen} happened again")?;
    }
    if sum.not_replayable > 0 {
        writeln!(
            w,
            "  {} failures re-sending cannot show (user gave up, page or connection level, not sent)",
            sum.not_replayable
        )?;
    }
    if sum.withheld > 0 {
        writeln!(w, "withheld by the safety rules (docs/replay.md, \"What is sent and what is not\"):")?;
        for (why, n) in &sum.withheld_by {
            writeln!(w, "  {why} ({n})")?;
        }
        let mut t = crate::output::Table::new(&["session", "method", "url", "why"]);
        let withheld: Vec<&SendRecord> = records.iter().filter(|r| r.outcome == "withheld").collect();
        for r in withheld.iter().take(ROWS_SHOWN) {
            t.row(vec![r.session.clone(), r.method.clone(), r.url.clone(), r.note.clone().unwrap_or_default()]);
        }
        t.write(w)?;
        if withheld.len() > ROWS_SHOWN {
            writeln!(w, "... {} more (all in -o FILE)", withheld.len() - ROWS_SHOWN)?;
        }
    }
    if !sum.stripped.is_empty() {
        let list: Vec<String> = sum.stripped.iter().map(|(h, n)| format!("{h} ({n})")).collect();
        writeln!(w, "kept back from the requests sent (--keep-header NAME, --with-credentials): {}", list.join(", "))?;
    }
    let differing: Vec<&SendRecord> = differing(records).collect();
    if !differing.is_empty() {
        let mut t = crate::output::Table::new(SendRecord::HEADER);
        for r in differing.iter().take(ROWS_SHOWN) {
            t.row(r.cells());
        }
        t.write(w)?;
        if differing.len() > ROWS_SHOWN {
            writeln!(w, "... {} more (all in -o FILE)", differing.len() - ROWS_SHOWN)?;
        }
    }
    Ok(())
}

/// The requests whose answer differs from the capture's (status or body
/// length).
pub fn differing(records: &[SendRecord]) -> impl Iterator<Item = &SendRecord> {
    records.iter().filter(|r| r.status_differs || r.length_differs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_host_and_port_only() {
        let (addr, host) = parse_target("http://127.0.0.1:8080/").unwrap();
        assert_eq!((addr.to_string().as_str(), host.as_str()), ("127.0.0.1:8080", "127.0.0.1:8080"));
        let (addr, host) = parse_target("127.0.0.1").unwrap();
        assert_eq!((addr.port(), host.as_str()), (80, "127.0.0.1"));
        for (bad, why) in [
            ("https://127.0.0.1:8443", "plain HTTP/1.1"),
            ("http://127.0.0.1:8080/shop", "only http://HOST:PORT;"),
            ("http://user@127.0.0.1", "no user name"),
            ("http://", "no host"),
        ] {
            let e = parse_target(bad).unwrap_err();
            assert!(e.starts_with(&format!("--target {bad}: ")) && e.contains(why), "{e}");
        }
        assert_eq!(check_keep_header("X-Forwarded-For"), Ok(()));
        assert!(check_keep_header("X Forwarded").unwrap_err().contains("not a header name"));
        assert!(check_keep_header("host").unwrap_err().contains("always rewrites Host"));
    }

    #[test]
    fn credentials_in_the_query_path_and_body_are_found() {
        let names = ["password".to_string(), "card_number".to_string(), "jsessionid".to_string()];
        let is_secret = |n: &str| names.iter().any(|p| p.eq_ignore_ascii_case(n));
        let find = |target: &str, ct: &str, body: &str| credential_in(target, ct, body.as_bytes(), &is_secret);
        let form = "application/x-www-form-urlencoded; charset=utf-8";
        assert_eq!(find("/login?user=a&Password=x", "", ""), Some("query"));
        assert_eq!(find("http://h/login?p%61ssword=x#f", "", ""), Some("query"));
        assert_eq!(find("/cart;jsessionid=ABC/view?x=1", "", ""), Some("path parameters"));
        assert_eq!(find("/login", form, "user=a&password=hunter2"), Some("form body"));
        assert_eq!(find("/pay", "Application/X-WWW-Form-Urlencoded", "card%5Fnumber=4111"), Some("form body"));
        let multipart = "--b\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(find("/login", "multipart/form-data; boundary=b", multipart), Some("multipart body"));
        assert_eq!(
            find("/api/login", "application/json", r#"{"user":{"name":"a","Password":"x"}}"#),
            Some("JSON body")
        );
        assert_eq!(find("/api/pay", "application/vnd.api+json", r#"[{"card_number":"4111"}]"#), Some("JSON body"));
        // Values, other names, and bodies of other types are not names.
        assert_eq!(find("/search?q=password", "", ""), None);
        assert_eq!(find("/cart/add", form, "product=1&qty=password"), None);
        assert_eq!(find("/api", "application/json", r#"{"note":"password"}"#), None);
        assert_eq!(find("/api", "application/json", r#"{"password":"#), None);
        assert_eq!(find("/upload", "text/plain", "password=x"), None);
        assert_eq!(find("/", form, ""), None);
    }
}
