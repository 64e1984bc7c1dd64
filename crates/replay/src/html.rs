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

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use pov_capture::Ts;
use pov_capture::http::HttpTransaction;
use serde_json::{Value, json};

use crate::rewrite::{Resolver, Use, rewrite_css, rewrite_html};
use crate::{HarEntry, Masker, base64, entry_with, is_text};

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
    mask: Masker,
}

/// Absolute URL of a transaction's request.
fn url_of(t: &HttpTransaction) -> Option<String> {
    let r = t.request.as_ref()?;
    let host = r.host().unwrap_or_else(|| t.server.to_string());
    Some(format!("{}://{}{}", t.scheme(), host.to_ascii_lowercase(), r.uri_text()))
}

fn mime_of(t: &HttpTransaction) -> String {
    let ct = t.response.as_ref().and_then(|r| r.headers.text("content-type")).unwrap_or_default();
    let m = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if m.is_empty() { "application/octet-stream".into() } else { m }
}

impl<'a> Resources<'a> {
    fn new(txs: &'a [&'a HttpTransaction], mask: Masker) -> Resources<'a> {
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
                let css = rewrite_css(&text, url, self);
                let css = self.mask.text(&css).replace("</style", "<\\/style");
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
fn document(t: &HttpTransaction, res: &mut Resources<'_>, m: &Masker) -> Option<String> {
    t.response.as_ref()?;
    let body = &t.response_body.kept;
    if body.is_empty() {
        return None;
    }
    let mime = mime_of(t);
    let text = String::from_utf8_lossy(body);
    Some(if mime.contains("html") || (mime == "application/octet-stream" && text.trim_start().starts_with('<')) {
        m.text(&rewrite_html(&text, &url_of(t)?, res)).into_owned()
    } else if is_text(&mime) {
        format!("<pre style=\"white-space:pre-wrap\">{}</pre>", escape(&m.body(&mime, body)))
    } else {
        format!("<p>{} body, {} bytes</p>", escape(&mime), t.response_body.decoded_len)
    })
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

/// JSON text made safe inside an HTML `<script>` element: `<`, `>` and
/// `&` (which can only be inside its strings) and the line separators
/// U+2028 and U+2029 written as `\u` escapes, so no captured text can end
/// the element (`</script>`), open an HTML comment that swallows its end
/// (`<!--<script`), or break a JavaScript reader. It parses back to the
/// same value. The HTML replay's data block and report.html use it.
pub fn script_json(json: &str) -> String {
    let mut o = Vec::with_capacity(json.len() + json.len() / 16);
    script_json_into(json.as_bytes(), &mut o);
    // Only ASCII escapes replace whole characters: still UTF-8.
    String::from_utf8(o).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`script_json`] on bytes, appended to `out`: the runs between the
/// characters to escape are copied whole.
fn script_json_into(json: &[u8], out: &mut Vec<u8>) {
    let mut from = 0;
    let mut i = 0;
    while i < json.len() {
        let esc: Option<(&[u8], usize)> = match json[i] {
            b'<' => Some((b"\\u003c", 1)),
            b'>' => Some((b"\\u003e", 1)),
            b'&' => Some((b"\\u0026", 1)),
            // U+2028 and U+2029 in UTF-8.
            0xE2 if json.get(i + 1) == Some(&0x80) && json.get(i + 2) == Some(&0xA8) => Some((b"\\u2028", 3)),
            0xE2 if json.get(i + 1) == Some(&0x80) && json.get(i + 2) == Some(&0xA9) => Some((b"\\u2029", 3)),
            _ => None,
        };
        match esc {
            Some((with, n)) => {
                out.extend_from_slice(&json[from..i]);
                out.extend_from_slice(with);
                i += n;
                from = i;
            }
            None => i += 1,
        }
    }
    out.extend_from_slice(&json[from..]);
}

/// A HAR-style entry for the details panel, with its body cut to a preview.
fn details(t: &HttpTransaction, session_start: Ts, m: &Masker) -> Value {
    let mut e = entry_with(&HarEntry { page: None, session: None, tx: t }, m, false);
    let content = &mut e["response"]["content"];
    let mime = content["mimeType"].as_str().unwrap_or("").to_string();
    let preview = if is_text(&mime) {
        let body = &t.response_body.kept;
        let cut = &body[..body.len().min(PREVIEW_BYTES)];
        // A preview cut inside a character: the bytes up to it.
        let cut = match std::str::from_utf8(cut) {
            Ok(_) => cut,
            Err(e) if e.error_len().is_none() => &cut[..e.valid_up_to()],
            Err(_) => cut,
        };
        Some(m.body(&mime, cut))
    } else {
        None
    };
    if let Some(p) = preview {
        content["preview"] = json!(p);
    }
    e["_at_ms"] = json!(ms_between(session_start, t.timing.start()));
    e
}

/// Most page views shown per session. A replay is for a person to step
/// through: a session of tens of thousands of page views (a robot, or
/// traffic made to be expensive) would make a page of tens of megabytes
/// that no browser opens, and cost time in proportion.
pub const MAX_PAGES: usize = 1000;

/// `s` with at most `max` page views: those with a failure first (in
/// order), then the earliest of the rest; with the failures and requests
/// of the pages kept (and failures on no page). Returns how many page
/// views were left out.
pub fn trim(s: &ReplaySession, max: usize) -> (Cow<'_, ReplaySession>, usize) {
    if s.pages.len() <= max {
        return (Cow::Borrowed(s), 0);
    }
    let failed: HashSet<usize> = s.failures.iter().filter_map(|f| f.page).collect();
    let mut keep: Vec<usize> = (0..s.pages.len()).filter(|p| failed.contains(p)).take(max).collect();
    let room = max - keep.len();
    keep.extend((0..s.pages.len()).filter(|p| !failed.contains(p)).take(room));
    keep.sort_unstable();
    let new_index: HashMap<usize, usize> = keep.iter().enumerate().map(|(new, &old)| (old, new)).collect();
    let pages: Vec<ReplayPage> = keep.iter().map(|&p| s.pages[p].clone()).collect();
    let failures: Vec<ReplayFailure> = s
        .failures
        .iter()
        .filter(|f| f.page.is_none_or(|p| new_index.contains_key(&p)))
        .map(|f| ReplayFailure { page: f.page.and_then(|p| new_index.get(&p).copied()), ..f.clone() })
        .collect();
    let wanted: HashSet<usize> = pages
        .iter()
        .flat_map(|p| p.txs.iter().copied().chain(p.document))
        .chain(failures.iter().filter_map(|f| f.tx))
        .collect();
    let txs = s.txs.iter().copied().filter(|i| wanted.contains(i)).collect();
    let left_out = s.pages.len() - pages.len();
    let (id, user, start, end) = (s.id.clone(), s.user.clone(), s.start, s.end);
    (Cow::Owned(ReplaySession { id, user, start, end, pages, failures, txs }), left_out)
}

/// The replay page for `sessions`, whose indices point into `txs`.
///
/// The page's data block is written piece by piece (each page view,
/// failure and request entry serialized on its own), not built as one JSON
/// tree first: the memory it takes is the page itself, not several times
/// it. A captured document that several page views show (the same error
/// page, say) is stored once.
pub fn html(sessions: &[ReplaySession], txs: &[&HttpTransaction], m: &Masker, version: &str) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail, and every piece is UTF-8.
    let _ = write(sessions, txs, m, version, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// As [`html`], written into `w` as it is made: the page is never held
/// whole.
pub fn write(
    sessions: &[ReplaySession],
    txs: &[&HttpTransaction],
    m: &Masker,
    version: &str,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut res = Resources::new(txs, m.clone());
    let mut docs = Docs::default();
    let trimmed: Vec<(Cow<'_, ReplaySession>, usize)> = sessions.iter().map(|s| trim(s, MAX_PAGES)).collect();
    let left_out: usize = trimmed.iter().map(|(_, n)| n).sum();
    let mut title = match sessions {
        [one] => format!("pov replay: session {}", one.id),
        _ => format!("pov replay: {} sessions", sessions.len()),
    };
    if left_out > 0 {
        title.push_str(&format!(
            " ({left_out} page views left out: at most {MAX_PAGES} per session, those with failures first)"
        ));
    }
    let sessions: Vec<&ReplaySession> = trimmed.iter().map(|(s, _)| s.as_ref()).collect();
    let (head, tail) = TEMPLATE.split_once("{{DATA}}").unwrap_or((TEMPLATE, ""));
    let out = &mut Out { w, err: None };
    out.push_str(&head.replace("{{TITLE}}", &escape(&title)));
    // Each value serialized into one reused buffer, then escaped into
    // another: no string per value.
    let (mut raw, mut safe) = (Vec::new(), Vec::new());
    let mut put = |out: &mut Out<'_>, v: &Value| {
        raw.clear();
        safe.clear();
        if serde_json::to_writer(&mut raw, v).is_ok() {
            script_json_into(&raw, &mut safe);
            out.push_bytes(&safe);
        }
    };
    out.push_str("{\"sessions\":[");
    for (si, s) in sessions.iter().enumerate() {
        if si > 0 {
            out.push(',');
        }
        // Entries of the session, by transaction index.
        let mut entry_of: HashMap<usize, usize> = HashMap::new();
        let mut order = Vec::with_capacity(s.txs.len());
        for &i in &s.txs {
            if i < txs.len() && !entry_of.contains_key(&i) {
                entry_of.insert(i, order.len());
                order.push(i);
            }
        }
        // Failures by page view, once (not a search per page).
        let mut failures_of: HashMap<usize, Vec<usize>> = HashMap::new();
        for (k, f) in s.failures.iter().enumerate() {
            if let Some(p) = f.page {
                failures_of.entry(p).or_default().push(k);
            }
        }
        let head = json!({
            "id": s.id,
            "user": s.user,
            "start": crate::iso8601(s.start),
            "duration_ms": ms_between(s.start, s.end),
        });
        let head = script_json(&head.to_string());
        // The session's fields, then its pages, failures and entries.
        out.push_str(head.strip_suffix('}').unwrap_or(&head));
        out.push_str(",\"pages\":[");
        for (pi, p) in s.pages.iter().enumerate() {
            res.at = p.start;
            let doc = p.document.and_then(|d| txs.get(d)).and_then(|t| document(t, &mut res, m));
            let doc_index = doc.map(|d| docs.add(d));
            if pi > 0 {
                out.push(',');
            }
            put(
                out,
                &json!({
                    "url": p.url,
                    "name": p.name,
                    "at_ms": ms_between(s.start, p.start),
                    "load_ms": (p.load_ms * 1000.0).round() / 1000.0,
                    "status": p.status,
                    "doc": doc_index,
                    "document": p.document.and_then(|d| entry_of.get(&d)),
                    "entries": p.txs.iter().filter_map(|i| entry_of.get(i)).collect::<Vec<_>>(),
                    "failures": failures_of.get(&pi).map_or(&[][..], |v| &v[..]),
                }),
            );
        }
        out.push_str("],\"failures\":[");
        for (k, f) in s.failures.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            put(
                out,
                &json!({
                    "kind": f.kind, "rule": f.rule, "severity": f.severity, "page": f.page,
                    "entry": f.tx.and_then(|i| entry_of.get(&i)), "url": f.url, "status": f.status,
                    "detail": m.text(&f.detail), "at_ms": ms_between(s.start, f.ts),
                }),
            );
        }
        out.push_str("],\"entries\":[");
        for (k, &i) in order.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            put(out, &details(txs[i], s.start, m));
        }
        out.push_str("]}");
    }
    out.push_str("],\"docs\":[");
    for (k, d) in docs.list.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        put(out, &Value::String(d.clone()));
    }
    out.push_str("],\"res\":[");
    for (k, r) in res.list.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        put(out, r);
    }
    out.push_str("],\"version\":");
    put(out, &json!(version));
    out.push('}');
    out.push_str(tail);
    match out.err.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The page's writer: the first error is kept, and nothing more is
/// written after it.
struct Out<'w> {
    w: &'w mut dyn std::io::Write,
    err: Option<std::io::Error>,
}

impl Out<'_> {
    fn push_str(&mut self, s: &str) {
        self.push_bytes(s.as_bytes());
    }

    fn push_bytes(&mut self, b: &[u8]) {
        if self.err.is_none()
            && let Err(e) = self.w.write_all(b)
        {
            self.err = Some(e);
        }
    }

    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }
}

/// The documents a replay shows, each stored once.
#[derive(Default)]
struct Docs {
    list: Vec<String>,
    by_content: HashMap<u64, Vec<usize>>,
}

impl Docs {
    /// The index of `doc`, stored if it is new.
    fn add(&mut self, doc: String) -> usize {
        let mut h = DefaultHasher::new();
        doc.hash(&mut h);
        let key = h.finish();
        let same = self.by_content.get(&key).and_then(|v| v.iter().copied().find(|&i| self.list[i] == doc));
        match same {
            Some(i) => i,
            None => {
                self.list.push(doc);
                let i = self.list.len() - 1;
                self.by_content.entry(key).or_default().push(i);
                i
            }
        }
    }
}

/// The replay page. The captured documents go into `sandbox=""` frames
/// (no script, no forms, no navigation of the top page); the page's own
/// policy lets nothing load from the network, and frames inherit it.
const TEMPLATE: &str = include_str!("replay.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_in_a_script_element_cannot_end_it() {
        let v = json!({"ua": "<!--<script>", "url": "/x?</script><b>&amp;", "ls": "a\u{2028}b\u{2029}c"});
        let safe = script_json(&v.to_string());
        assert!(!safe.contains(['<', '>', '&', '\u{2028}', '\u{2029}']), "{safe}");
        assert_eq!(
            safe,
            r#"{"ls":"a\u2028b\u2029c","ua":"\u003c!--\u003cscript\u003e","url":"/x?\u003c/script\u003e\u003cb\u003e\u0026amp;"}"#
        );
        // It parses back to the same strings.
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), v);
    }

    #[test]
    fn script_data_cannot_leave_its_element() {
        // The replay's data block, with a captured value that would have
        // left the page blank.
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
            &Masker::default(),
            "0",
        );
        let open = "<script type=\"application/json\" id=\"data\">";
        let start = page.find(open).unwrap() + open.len();
        let block = &page[start..start + page[start..].find("</script>").unwrap()];
        assert!(!block.contains('<'), "{block}");
        assert_eq!(serde_json::from_str::<Value>(block).unwrap()["sessions"][0]["id"], "<!--<script>");
    }

    #[test]
    fn a_long_session_keeps_its_failed_pages_and_the_earliest_others() {
        let page = |i: usize| ReplayPage {
            url: format!("http://shop.example/p/{i}"),
            name: None,
            start: Ts(i as i64),
            load_ms: 1.0,
            status: Some(200),
            document: Some(2 * i),
            txs: vec![2 * i, 2 * i + 1],
        };
        let failure = |page: Option<usize>, tx: Option<usize>| ReplayFailure {
            kind: "server_error".into(),
            rule: "status_5xx".into(),
            severity: "critical".into(),
            page,
            tx,
            ts: Ts(0),
            url: "/".into(),
            status: Some(500),
            detail: String::new(),
        };
        let s = ReplaySession {
            id: "u/1".into(),
            user: "u".into(),
            start: Ts(0),
            end: Ts(2500),
            pages: (0..2500).map(page).collect(),
            failures: vec![failure(Some(2400), Some(4800)), failure(Some(5), Some(10)), failure(None, Some(4999))],
            txs: (0..5000).collect(),
        };
        let (t, left_out) = trim(&s, 10);
        assert_eq!(left_out, 2490);
        let kept: Vec<usize> = t.pages.iter().map(|p| p.start.0 as usize).collect();
        assert_eq!(kept, [0, 1, 2, 3, 4, 5, 6, 7, 8, 2400], "failed pages first, then the earliest");
        let pages: Vec<Option<usize>> = t.failures.iter().map(|f| f.page).collect();
        assert_eq!(pages, [Some(9), Some(5), None], "failures follow their pages");
        assert_eq!(t.txs.len(), 21, "the kept pages' requests and the failure on no page");
        assert!(t.txs.contains(&4999) && t.txs.contains(&4801) && !t.txs.contains(&20));
        // Short sessions are not copied.
        assert!(matches!(trim(&s, 2500), (Cow::Borrowed(_), 0)));
        // The page says what it left out.
        let one = html(std::slice::from_ref(&s), &[], &Masker::default(), "0");
        assert!(one.contains(&format!("1500 page views left out: at most {MAX_PAGES} per session")), "title");
    }

    #[test]
    fn the_details_panel_shows_a_masked_preview_of_text_and_nothing_of_binary() {
        use pov_capture::http::{Headers, ResponseHead};
        let cfg = pov_privacy::PrivacyConfig { mask_key: Some("t".into()), ..Default::default() };
        let m = Masker::new(&cfg, true);
        let answer = |mime: &[u8], body: Vec<u8>| {
            let mut tx = HttpTransaction::new(1, "10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 1);
            tx.response = Some(ResponseHead {
                version: Some(1),
                status: 200,
                reason: b"OK".to_vec(),
                headers: Headers::from_pairs([(&b"Content-Type"[..], mime)]),
            });
            tx.response_body.decoded_len = body.len() as u64;
            tx.response_body.kept = body;
            tx
        };
        // A page whose first bytes hold a card number and whose end, past
        // the preview, a token.
        let mut page = b"<p>card 4111 1111 1111 1111</p>".to_vec();
        page.resize(3 * PREVIEW_BYTES, b'x');
        page.extend_from_slice(b"token=T41L");
        let text = details(&answer(b"text/html", page), Ts(0), &m);
        let content = &text["response"]["content"];
        let preview = content["preview"].as_str().unwrap();
        assert!(preview.len() <= PREVIEW_BYTES + 64, "{} bytes", preview.len());
        assert!(preview.starts_with("<p>card ") && !preview.contains("4111 1111 1111 1111"), "masked");
        assert_eq!(content["size"], 3 * PREVIEW_BYTES + 10);
        assert!(content.get("text").is_none() && content.get("encoding").is_none(), "{content}");
        assert!(!text.to_string().contains("T41L"));
        let image = details(&answer(b"image/png", vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3]), Ts(0), &m);
        let content = &image["response"]["content"];
        for key in ["text", "encoding", "preview"] {
            assert!(content.get(key).is_none(), "{key} in {content}");
        }
        assert_eq!(content["mimeType"], "image/png");
    }
}
