//! pov-replay: what the customer saw, rebuilt from the capture.
//!
//! Today: [`har`] turns a session's transactions (as pov-capture parsed
//! them, bodies included) into a HAR 1.2 document, one page per page view,
//! with timings mapped from the wire and secrets masked. The HTML replay
//! and re-sending come next (issue 7).

#![deny(missing_docs)]

pub mod html;
pub mod rewrite;
pub mod send;

use pov_capture::Ts;
use pov_capture::http::{Headers, HttpTransaction};
use serde_json::{Value, json};

/// A page view of the HAR.
#[derive(Clone, Debug)]
pub struct HarPage {
    /// Its id (`page_1` ...), which entries name.
    pub id: String,
    /// When it started.
    pub started: Ts,
    /// Its title (the document's URL).
    pub title: String,
    /// Load time, ms.
    pub on_load_ms: Option<f64>,
}

/// One transaction of the HAR.
#[derive(Clone, Debug)]
pub struct HarEntry<'a> {
    /// The page view it belongs to (`HarPage::id`).
    pub page: Option<String>,
    /// Its session's id (written as `_session`).
    pub session: Option<String>,
    /// The transaction.
    pub tx: &'a HttpTransaction,
}

const MASK: &str = "***";

/// What to mask in the outputs.
#[derive(Clone, Copy, Debug)]
pub struct Masking<'a> {
    /// Mask at all (`--no-mask` turns it off).
    pub on: bool,
    /// Query and form parameters to mask besides those whose names look
    /// secret (`[privacy] mask_params`).
    pub params: &'a [String],
}

impl Masking<'_> {
    fn param(&self, name: &str) -> bool {
        self.on && (secret_param(name) || self.params.iter().any(|p| p.eq_ignore_ascii_case(name)))
    }
}

/// Header names whose values are secrets.
fn secret_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "cookie" | "set-cookie" | "authorization" | "proxy-authorization" | "x-api-key" | "x-auth-token"
    )
}

/// Form and query parameter names whose values are secrets.
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "pwd", "token", "secret", "card", "cvv", "cvc", "ssn", "auth", "session", "sid"]
        .iter()
        .any(|s| n.contains(s))
}

/// Card numbers in `text` (13 to 19 digits, single spaces or dashes
/// between them allowed, passing the Luhn check) with all but their last
/// four digits masked.
pub fn mask_cards(text: &str) -> String {
    let b = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        // The run of digits and single separators from here.
        let mut j = i;
        let mut end = i;
        let mut digits = 0;
        while j < b.len() {
            if b[j].is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (b[j] == b' ' || b[j] == b'-') && j + 1 < b.len() && b[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        let alnum_after = end < b.len() && b[end].is_ascii_alphanumeric();
        if (13..=19).contains(&digits) && !alnum_after && luhn(&b[i..end]) {
            let o = out.get_or_insert_with(|| b.to_vec());
            let mut left = digits - 4;
            for k in i..end {
                if left > 0 && b[k].is_ascii_digit() {
                    o[k] = b'*';
                    left -= 1;
                }
            }
        }
        i = end.max(i + 1);
    }
    match out {
        Some(o) => String::from_utf8(o).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        None => text.to_string(),
    }
}

fn luhn(run: &[u8]) -> bool {
    let mut sum = 0;
    for (n, d) in run.iter().rev().filter(|c| c.is_ascii_digit()).map(|c| u32::from(c - b'0')).enumerate() {
        sum += if n % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d };
    }
    sum % 10 == 0
}

/// An ISO 8601 date-time (UTC, milliseconds) for a capture time.
pub fn iso8601(t: Ts) -> String {
    let ms = t.0.div_euclid(1_000_000);
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn headers(h: &Headers, mask: bool) -> Vec<Value> {
    h.iter()
        .map(|(n, v)| {
            let name = String::from_utf8_lossy(n).into_owned();
            let value =
                if mask && secret_header(&name) { MASK.to_string() } else { String::from_utf8_lossy(v).into_owned() };
            json!({"name": name, "value": value})
        })
        .collect()
}

fn pairs(text: &str, m: Masking<'_>) -> Vec<Value> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let v = if m.param(k) && !v.is_empty() { MASK } else { v };
            json!({"name": k, "value": v})
        })
        .collect()
}

/// `url` with the values of its secret query parameters masked.
fn mask_url(url: &str, m: Masking<'_>) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    if !m.on {
        return url.to_string();
    }
    let (query, frag) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let q: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if m.param(k) && !v.is_empty() => format!("{k}={MASK}"),
            _ => p.to_string(),
        })
        .collect();
    let mut out = format!("{base}?{}", q.join("&"));
    if let Some(f) = frag {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn cookies(list: Vec<(String, String)>, mask: bool) -> Vec<Value> {
    list.into_iter()
        .map(|(k, v)| json!({"name": k, "value": if mask && !v.is_empty() { MASK.to_string() } else { v }}))
        .collect()
}

pub(crate) fn is_text(mime: &str) -> bool {
    let m = mime.to_ascii_lowercase();
    m.starts_with("text/")
        || m.contains("json")
        || m.contains("javascript")
        || m.contains("xml")
        || m.contains("x-www-form-urlencoded")
}

pub(crate) fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { A[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { A[n as usize & 63] as char } else { '=' });
    }
    out
}

fn ms(d: Option<pov_capture::Dur>) -> f64 {
    d.map(|d| (d.as_millis_f64() * 1000.0).round() / 1000.0).unwrap_or(-1.0)
}

pub(crate) fn entry(e: &HarEntry<'_>, m: Masking<'_>) -> Value {
    let mask = m.on;
    let t = e.tx;
    let req = t.request.as_ref();
    let resp = t.response.as_ref();
    let host = req.and_then(|r| r.host()).unwrap_or_else(|| t.server.to_string());
    let target = req.map(|r| r.uri_text()).unwrap_or_default();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let version = |v: Option<u8>| match v {
        Some(1) => "HTTP/1.1",
        Some(0) => "HTTP/1.0",
        Some(_) => "HTTP/1.x",
        None => "HTTP/0.9",
    };
    let req_ct = req.and_then(|r| r.headers.text("content-type")).unwrap_or_default();
    let mut request = json!({
        "method": req.map(|r| r.method.as_str()).unwrap_or("GET"),
        "url": mask_url(&format!("http://{host}{target}"), m),
        "httpVersion": version(req.and_then(|r| r.version)),
        "cookies": cookies(req.map(|r| r.headers.cookies()).unwrap_or_default(), mask),
        "headers": req.map(|r| headers(&r.headers, mask)).unwrap_or_default(),
        "queryString": pairs(query, m),
        "headersSize": -1,
        "bodySize": t.request_body.wire_len,
    });
    if t.request_body.decoded_len > 0 {
        let text = String::from_utf8_lossy(&t.request_body.kept).into_owned();
        let text = if req_ct.starts_with("application/x-www-form-urlencoded") {
            pairs(&text, m)
                .iter()
                .map(|p| format!("{}={}", p["name"].as_str().unwrap_or(""), p["value"].as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("&")
        } else if mask {
            MASK.to_string()
        } else {
            text
        };
        request["postData"] = json!({"mimeType": req_ct, "text": text});
    }
    let mime = resp.and_then(|r| r.headers.text("content-type")).unwrap_or_default();
    let body = &t.response_body.kept;
    let mut content = json!({"size": t.response_body.decoded_len, "mimeType": mime});
    if !body.is_empty() {
        if is_text(&mime) {
            content["text"] = json!(String::from_utf8_lossy(body));
        } else {
            content["text"] = json!(base64(body));
            content["encoding"] = json!("base64");
        }
    }
    let response = json!({
        "status": resp.map(|r| r.status).unwrap_or(0),
        "statusText": resp.map(|r| String::from_utf8_lossy(&r.reason).into_owned()).unwrap_or_default(),
        "httpVersion": version(resp.and_then(|r| r.version)),
        "cookies": cookies(resp.map(|r| r.headers.set_cookies()).unwrap_or_default(), mask),
        "headers": resp.map(|r| headers(&r.headers, mask)).unwrap_or_default(),
        "content": content,
        "redirectURL": mask_url(&resp.and_then(|r| r.headers.text("location")).unwrap_or_default(), m),
        "headersSize": -1,
        "bodySize": if resp.is_some() { t.response_body.wire_len as i64 } else { -1 },
    });
    let tm = &t.timing;
    let send = match (tm.req_start, tm.req_end) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    // The connect time is the connection's first request's.
    let connect = if t.depth == 1 { tm.handshake_rtt } else { None };
    let (send, wait, receive) = (ms(send), ms(tm.ttfb()), ms(tm.transfer()));
    let total: f64 = [ms(connect), send, wait, receive].iter().filter(|x| **x > 0.0).sum();
    let mut v = json!({
        "startedDateTime": iso8601(tm.start()),
        "time": (total * 1000.0).round() / 1000.0,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": ms(connect), "send": send, "wait": wait, "receive": receive, "ssl": -1},
        "serverIPAddress": t.server.ip().to_string(),
        "connection": t.conn.to_string(),
        "_outcome": t.outcome.as_str(),
        "_startedEpoch": tm.start().as_secs_f64(),
    });
    if let Some(p) = &e.page {
        v["pageref"] = json!(p);
    }
    if let Some(s) = &e.session {
        v["_session"] = json!(s);
    }
    v
}

/// The HAR 1.2 document.
pub fn har(pages: &[HarPage], entries: &[HarEntry<'_>], m: Masking<'_>, version: &str) -> Value {
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "pov", "version": version},
            "pages": pages.iter().map(|p| json!({
                "startedDateTime": iso8601(p.started),
                "id": p.id,
                "title": p.title,
                "pageTimings": {"onContentLoad": -1, "onLoad": p.on_load_ms.unwrap_or(-1.0)},
            })).collect::<Vec<_>>(),
            "entries": entries.iter().map(|e| entry(e, m)).collect::<Vec<_>>(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_base64() {
        assert_eq!(iso8601(Ts(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(Ts(1_793_584_800_044_004_200)), "2026-11-02T02:00:00.044Z");
        assert_eq!(iso8601(Ts(951_782_400_000_000_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn card_numbers_are_masked() {
        assert_eq!(mask_cards("card 4111111111111111 ok"), "card ************1111 ok");
        assert_eq!(mask_cards("4111 1111 1111 1111."), "**** **** **** 1111.");
        assert_eq!(mask_cards("n=5500-0000-0000-0004&x"), "n=****-****-****-0004&x");
        // Not cards: fails Luhn, too short, part of a word, a timestamp.
        for keep in ["4111111111111112", "123456789012", "id4111111111111111", "1793584800044004200", "1 2 3"] {
            assert_eq!(mask_cards(keep), keep);
        }
    }

    #[test]
    fn secrets_are_masked() {
        assert!(secret_header("Cookie") && secret_header("authorization") && !secret_header("Accept"));
        let on = Masking { on: true, params: &[] };
        let p = pairs("user=a&password=x&card_number=4111", on);
        assert_eq!(p[1]["value"], "***");
        assert_eq!(p[2]["value"], "***");
        assert_eq!(p[0]["value"], "a");
        // Configured names too, in query strings and in URLs.
        let extra = ["email".to_string()];
        let m = Masking { on: true, params: &extra };
        assert_eq!(pairs("email=a@b&x=1", m)[0]["value"], "***");
        assert_eq!(mask_url("http://h/p?email=a@b&x=1&token=t#f", m), "http://h/p?email=***&x=1&token=***#f");
        assert_eq!(mask_url("http://h/p?email=a@b", Masking { on: false, params: &extra }), "http://h/p?email=a@b");
        assert_eq!(mask_url("http://h/p", m), "http://h/p");
    }
}
