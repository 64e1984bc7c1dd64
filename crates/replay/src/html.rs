//! The HTML replay: one self-contained page that steps through sessions as
//! their user saw them.
//!
//! For each session: a timeline of its page views with their load bars, the
//! failures the user met, and each page rendered from its captured HTML in a
//! sandboxed frame (no script, no network) with the captured style sheets,
//! images and fonts put in place of their URLs. Every request of a page is
//! listed with its timings; a click shows its headers (secrets masked).
//!
//! Resources are stored once in the page (the same logo fetched by every
//! user is one entry) and joined to a document only when it is shown.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pov_capture::Ts;
use pov_capture::http::HttpTransaction;
use serde_json::{Value, json};

use crate::rewrite::{Resolver, Use, rewrite_css, rewrite_html};
use crate::{HarEntry, Masking, base64, entry, is_text, mask_cards};

/// A failure the user met, as the replay shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReplayFailure {
    /// Kind (`server_error` ...).
    pub kind: String,
    /// The rule that decided.
    pub rule: String,
    /// Severity (`critical` ...).
    pub severity: String,
    /// The page view (index into the session's pages), if any.
    pub page: Option<usize>,
    /// The transaction (index into the transactions given to [`html`]).
    pub tx: Option<usize>,
    /// When.
    pub ts: Ts,
    /// URL (path and query).
    pub url: String,
    /// Status, if answered.
    pub status: Option<u16>,
    /// The evidence, in words.
    pub detail: String,
}

/// A page view, as the replay shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReplayPage {
    /// Absolute URL of the page.
    pub url: String,
    /// Page class from the page rules, if any.
    pub name: Option<String>,
    /// When it started.
    pub start: Ts,
    /// Load time, ms.
    pub load_ms: f64,
    /// Status of its document.
    pub status: Option<u16>,
    /// Its final document (index into the transactions given to [`html`]).
    pub document: Option<usize>,
    /// Every transaction of the page view (indices, as `document`).
    pub txs: Vec<usize>,
}

/// A session, as the replay shows it.
#[derive(Clone, Debug)]
pub struct ReplaySession {
    /// Session id (`user/index`).
    pub id: String,
    /// User (pseudonym unless masking is off).
    pub user: String,
    /// Start.
    pub start: Ts,
    /// End.
    pub end: Ts,
    /// Page views, in order.
    pub pages: Vec<ReplayPage>,
    /// Failures, in order.
    pub failures: Vec<ReplayFailure>,
    /// Every transaction of the session (indices, as in [`ReplayPage`]).
    pub txs: Vec<usize>,
}

/// Body bytes of a request or response shown in the details panel.
const PREVIEW_BYTES: usize = 4096;

/// The captured copies of what pages load, each stored once.
struct Resources<'a> {
    txs: &'a [&'a HttpTransaction],
    /// Absolute URL -> transactions answering it with a body.
    by_url: HashMap<String, Vec<usize>>,
    /// Stored resources (`{"m": mime, "b": base64}` or `{"m", "t": css}`).
    list: Vec<Value>,
    /// Transaction -> stored media, and -> stored (rewritten) style sheet.
    media_of: HashMap<usize, usize>,
    style_of: HashMap<usize, usize>,
    /// Content hash -> stored media with that hash.
    by_content: HashMap<u64, Vec<(usize, usize)>>,
    /// Hash of a rewritten style sheet -> stored sheets with that hash.
    css_by_content: HashMap<u64, Vec<usize>>,
    /// The page being rewritten starts here (the nearest copy wins).
    at: Ts,
    mask: bool,
}

/// Absolute URL of a transaction's request.
fn url_of(t: &HttpTransaction) -> Option<String> {
    let r = t.request.as_ref()?;
    let host = r.host().unwrap_or_else(|| t.server.to_string());
    Some(format!("http://{}{}", host.to_ascii_lowercase(), r.uri_text()))
}

fn mime_of(t: &HttpTransaction) -> String {
    let ct = t.response.as_ref().and_then(|r| r.headers.text("content-type")).unwrap_or_default();
    let m = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if m.is_empty() { "application/octet-stream".into() } else { m }
}

impl<'a> Resources<'a> {
    fn new(txs: &'a [&'a HttpTransaction], mask: bool) -> Resources<'a> {
        let mut by_url: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in txs.iter().enumerate() {
            let ok = t.response.as_ref().is_some_and(|r| (200..300).contains(&r.status));
            if ok
                && !t.response_body.kept.is_empty()
                && let Some(u) = url_of(t)
            {
                by_url.entry(u).or_default().push(i);
            }
        }
        Resources {
            txs,
            by_url,
            list: Vec::new(),
            media_of: HashMap::new(),
            style_of: HashMap::new(),
            by_content: HashMap::new(),
            css_by_content: HashMap::new(),
            at: Ts(0),
            mask,
        }
    }

    /// The copy of `url` nearest the page's start (one fetched for the page,
    /// else the latest fetched before, else the first after).
    fn best(&self, url: &str) -> Option<usize> {
        let c = self.by_url.get(url)?;
        let at = self.at;
        c.iter().copied().min_by_key(|&i| {
            let s = self.txs[i].timing.start();
            if s >= at { (s - at).0 } else { (at - s).0.saturating_mul(2) }
        })
    }

    fn store_media(&mut self, i: usize) -> usize {
        if let Some(r) = self.media_of.get(&i) {
            return *r;
        }
        let t = self.txs[i];
        let body = &t.response_body.kept;
        let mime = mime_of(t);
        let mut h = DefaultHasher::new();
        (mime.as_str(), body).hash(&mut h);
        let key = h.finish();
        // The same bytes fetched again (by another user, on another page)
        // are stored once.
        let same = self.by_content.get(&key).and_then(|v| {
            v.iter().find(|(tx, _)| mime_of(self.txs[*tx]) == mime && self.txs[*tx].response_body.kept == *body)
        });
        let r = match same {
            Some((_, r)) => *r,
            None => {
                self.list.push(json!({"m": mime, "b": base64(body)}));
                let r = self.list.len() - 1;
                self.by_content.entry(key).or_default().push((i, r));
                r
            }
        };
        self.media_of.insert(i, r);
        r
    }
}

impl Resolver for Resources<'_> {
    fn resolve(&mut self, url: &str, how: Use) -> Option<String> {
        let i = self.best(url)?;
        match how {
            Use::Media => Some(format!("pov-res:{}", self.store_media(i))),
            Use::Style => {
                if let Some(r) = self.style_of.get(&i) {
                    return Some(format!("pov-css:{r}"));
                }
                let text = String::from_utf8_lossy(&self.txs[i].response_body.kept).into_owned();
                let css = rewrite_css(&text, url, self).replace("</style", "<\\/style");
                let css = if self.mask { mask_cards(&css) } else { css };
                // The same sheet fetched by many users is stored once.
                let mut h = DefaultHasher::new();
                css.hash(&mut h);
                let key = h.finish();
                let same =
                    self.css_by_content.get(&key).and_then(|v| v.iter().find(|r| self.list[**r]["t"] == css.as_str()));
                let r = match same {
                    Some(r) => *r,
                    None => {
                        self.list.push(json!({"m": "text/css", "t": css}));
                        let r = self.list.len() - 1;
                        self.css_by_content.entry(key).or_default().push(r);
                        r
                    }
                };
                self.style_of.insert(i, r);
                Some(format!("pov-css:{r}"))
            }
        }
    }
}

fn ms_between(a: Ts, b: Ts) -> f64 {
    ((b - a).as_millis_f64() * 1000.0).round() / 1000.0
}

/// The document a page view shows: its captured HTML made safe, or its
/// body as text, or `None` when nothing came back.
fn document(t: &HttpTransaction, res: &mut Resources<'_>, mask: bool) -> Option<String> {
    t.response.as_ref()?;
    let body = &t.response_body.kept;
    if body.is_empty() {
        return None;
    }
    let mime = mime_of(t);
    let text = String::from_utf8_lossy(body);
    let doc = if mime.contains("html") || (mime == "application/octet-stream" && text.trim_start().starts_with('<')) {
        rewrite_html(&text, &url_of(t)?, res)
    } else if is_text(&mime) {
        format!("<pre style=\"white-space:pre-wrap\">{}</pre>", escape(&text))
    } else {
        format!("<p>{} body, {} bytes</p>", escape(&mime), t.response_body.decoded_len)
    };
    Some(if mask { mask_cards(&doc) } else { doc })
}

/// JSON text safe inside a `<script>` element: `<`, `>` and `&` are
/// written as `\u003c`, `\u003e` and `\u0026`, and U+2028 and U+2029 as
/// `\u2028` and `\u2029` (they only occur inside JSON strings, so the text
/// is still JSON and parses to the same value). A captured `</script>` can
/// then not end the element, nor a `<!--<script` keep its real end tag from
/// ending it.
pub fn script_json(v: &Value) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A HAR-style entry for the details panel, with its body cut to a preview.
fn details(t: &HttpTransaction, session_start: Ts, m: Masking<'_>) -> Value {
    let mask = m.on;
    let mut e = entry(&HarEntry { page: None, session: None, tx: t }, m);
    let content = &mut e["response"]["content"];
    let preview = if is_text(content["mimeType"].as_str().unwrap_or("")) {
        let body = &t.response_body.kept;
        let cut = &body[..body.len().min(PREVIEW_BYTES)];
        let text = String::from_utf8_lossy(cut).into_owned();
        Some(if mask { mask_cards(&text) } else { text })
    } else {
        None
    };
    if let Some(o) = content.as_object_mut() {
        o.remove("text");
        o.remove("encoding");
    }
    if let Some(p) = preview {
        content["preview"] = json!(p);
    }
    e["_at_ms"] = json!(ms_between(session_start, t.timing.start()));
    e
}

/// The replay page for `sessions`, whose indices point into `txs`.
pub fn html(sessions: &[ReplaySession], txs: &[&HttpTransaction], m: Masking<'_>, version: &str) -> String {
    let mask = m.on;
    let mut res = Resources::new(txs, mask);
    let mut docs: Vec<String> = Vec::new();
    let mut out_sessions = Vec::with_capacity(sessions.len());
    for s in sessions {
        // Entries of the session, by transaction index.
        let mut entry_of: HashMap<usize, usize> = HashMap::new();
        let mut entries = Vec::with_capacity(s.txs.len());
        for &i in &s.txs {
            let Some(t) = txs.get(i) else { continue };
            entry_of.insert(i, entries.len());
            entries.push(details(t, s.start, m));
        }
        let mut pages = Vec::with_capacity(s.pages.len());
        for (pi, p) in s.pages.iter().enumerate() {
            res.at = p.start;
            let doc = p.document.and_then(|d| txs.get(d)).and_then(|t| document(t, &mut res, mask));
            let doc_index = doc.map(|d| {
                docs.push(d);
                docs.len() - 1
            });
            let failures: Vec<usize> =
                s.failures.iter().enumerate().filter(|(_, f)| f.page == Some(pi)).map(|(k, _)| k).collect();
            pages.push(json!({
                "url": p.url,
                "name": p.name,
                "at_ms": ms_between(s.start, p.start),
                "load_ms": (p.load_ms * 1000.0).round() / 1000.0,
                "status": p.status,
                "doc": doc_index,
                "document": p.document.and_then(|d| entry_of.get(&d)),
                "entries": p.txs.iter().filter_map(|i| entry_of.get(i)).collect::<Vec<_>>(),
                "failures": failures,
            }));
        }
        let failures: Vec<Value> = s
            .failures
            .iter()
            .map(|f| {
                json!({
                    "kind": f.kind, "rule": f.rule, "severity": f.severity, "page": f.page,
                    "entry": f.tx.and_then(|i| entry_of.get(&i)), "url": f.url, "status": f.status,
                    "detail": f.detail, "at_ms": ms_between(s.start, f.ts),
                })
            })
            .collect();
        out_sessions.push(json!({
            "id": s.id,
            "user": s.user,
            "start": crate::iso8601(s.start),
            "duration_ms": ms_between(s.start, s.end),
            "pages": pages,
            "failures": failures,
            "entries": entries,
        }));
    }
    let data = json!({"version": version, "sessions": out_sessions, "docs": docs, "res": res.list});
    let data = script_json(&data);
    let title = match sessions {
        [one] => format!("pov replay: session {}", one.id),
        _ => format!("pov replay: {} sessions", sessions.len()),
    };
    let (head, tail) = TEMPLATE.split_once("{{DATA}}").unwrap_or((TEMPLATE, ""));
    let mut out = head.replace("{{TITLE}}", &escape(&title));
    out.push_str(&data);
    out.push_str(tail);
    out
}

/// The replay page. The captured documents go into `sandbox=""` frames
/// (no script, no forms, no navigation of the top page); the page's own
/// policy lets nothing load from the network, and frames inherit it.
const TEMPLATE: &str = include_str!("replay.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_data_cannot_leave_its_element() {
        let v = json!({"ua": "<!--<script>x</script>&\u{2028}>", "n": 1});
        let s = script_json(&v);
        assert!(!s.contains(['<', '>', '&', '\u{2028}']), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
        // The replay's data block, with a captured User-Agent that would
        // have left the page blank.
        let page = html(
            &[ReplaySession {
                id: "<!--<script>".into(),
                user: "u".into(),
                start: Ts(0),
                end: Ts(0),
                pages: Vec::new(),
                failures: Vec::new(),
                txs: Vec::new(),
            }],
            &[],
            Masking { on: true, params: &[] },
            "0",
        );
        let open = "<script type=\"application/json\" id=\"data\">";
        let start = page.find(open).unwrap() + open.len();
        let block = &page[start..start + page[start..].find("</script>").unwrap()];
        assert!(!block.contains('<'), "{block}");
        assert_eq!(serde_json::from_str::<Value>(block).unwrap()["sessions"][0]["id"], "<!--<script>");
    }
}
