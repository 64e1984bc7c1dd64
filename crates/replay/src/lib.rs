//! pov-replay: what the customer saw, rebuilt from the capture.
//!
//! Today: [`har`] turns a session's transactions (as pov-capture parsed
//! them, bodies included) into a HAR 1.2 document, one page per page view,
//! with timings mapped from the wire and secrets masked. The HTML replay
//! and re-sending come next (issue 7).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod html;
pub mod rewrite;
pub mod send;

use pov_capture::Ts;
use pov_capture::http::{Headers, HttpTransaction};
use serde_json::{Value, json};

pub use pov_privacy::Masker;

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

/// An ISO 8601 date-time (UTC, milliseconds) for a capture time.
pub fn iso8601(t: Ts) -> String {
    let (y, m, d, rem, nanos) = t.civil();
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, nanos / 1_000_000)
}

fn headers(h: &Headers, m: &Masker) -> Vec<Value> {
    h.iter()
        .map(|(n, v)| {
            let name = String::from_utf8_lossy(n).into_owned();
            let value = m.header_value(&name, v);
            json!({"name": name, "value": value})
        })
        .collect()
}

fn pairs(list: Vec<(String, String)>) -> Vec<Value> {
    list.into_iter().map(|(k, v)| json!({"name": k, "value": v})).collect()
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

pub(crate) fn entry(e: &HarEntry<'_>, m: &Masker) -> Value {
    entry_with(e, m, true)
}

/// [`entry`], with the response body's text (masked, or in base64) only
/// when `body` is set: the replay's details panel shows a preview of its
/// own, and making the text only to drop it was about a fifth of an
/// entry's instructions on a 500-user night.
pub(crate) fn entry_with(e: &HarEntry<'_>, m: &Masker, body: bool) -> Value {
    let t = e.tx;
    let req = t.request.as_ref();
    let resp = t.response.as_ref();
    let host = req.and_then(|r| r.host()).unwrap_or_else(|| t.server.to_string());
    let target = req.map(|r| r.uri_text()).unwrap_or_default();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let version = |v: Option<u8>| match v {
        _ if t.stream.is_some() => "HTTP/2.0",
        Some(1) => "HTTP/1.1",
        Some(0) => "HTTP/1.0",
        Some(_) => "HTTP/1.x",
        None => "HTTP/0.9",
    };
    let req_ct = req.and_then(|r| r.headers.text("content-type")).unwrap_or_default();
    let cookies = req
        .map(|r| r.headers.get_all("cookie").flat_map(|v| m.cookie_pairs(v)).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut request = json!({
        "method": req.map(|r| r.method.as_str()).unwrap_or("GET"),
        "url": m.url(&format!("{}://{host}{target}", t.scheme())),
        "httpVersion": version(req.and_then(|r| r.version)),
        "cookies": pairs(cookies),
        "headers": req.map(|r| headers(&r.headers, m)).unwrap_or_default(),
        "queryString": pairs(m.query_pairs(query)),
        "headersSize": -1,
        "bodySize": t.request_body.wire_len,
    });
    if t.request_body.decoded_len > 0 {
        request["postData"] = json!({"mimeType": req_ct, "text": m.body(&req_ct, &t.request_body.kept)});
    }
    let mime = resp.and_then(|r| r.headers.text("content-type")).unwrap_or_default();
    let kept = &t.response_body.kept;
    let mut content = json!({"size": t.response_body.decoded_len, "mimeType": mime});
    if body && !kept.is_empty() {
        if is_text(&mime) {
            content["text"] = json!(m.body(&mime, kept));
        } else {
            content["text"] = json!(base64(kept));
            content["encoding"] = json!("base64");
        }
    }
    let set_cookies = resp
        .map(|r| r.headers.get_all("set-cookie").map(|v| m.set_cookie_pair(v)).collect::<Vec<_>>())
        .unwrap_or_default();
    let response = json!({
        "status": resp.map(|r| r.status).unwrap_or(0),
        "statusText": resp.map(|r| m.text(&String::from_utf8_lossy(&r.reason)).into_owned()).unwrap_or_default(),
        "httpVersion": version(resp.and_then(|r| r.version)),
        "cookies": pairs(set_cookies),
        "headers": resp.map(|r| headers(&r.headers, m)).unwrap_or_default(),
        "content": content,
        "redirectURL": resp.and_then(|r| r.headers.get("location")).map(|l| m.header_value("location", l)).unwrap_or_default(),
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
pub fn har(pages: &[HarPage], entries: &[HarEntry<'_>], m: &Masker, version: &str) -> Value {
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
    fn entries_mask_every_place_a_secret_can_be() {
        use pov_capture::http::{RequestHead, ResponseHead};
        let cfg = pov_privacy::PrivacyConfig { mask_key: Some("t".into()), ..Default::default() };
        let m = Masker::new(&cfg, true);
        let mut tx = HttpTransaction::new(1, "10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 1);
        tx.request = Some(RequestHead {
            method: "POST".into(),
            uri: b"/login;jsessionid=J5?p%61ssword=Q1&next=%2Fa".to_vec(),
            version: Some(1),
            headers: Headers::from_pairs([
                (&b"Host"[..], &b"shop.example"[..]),
                (b"Cookie", b"sid=C00k; b4re"),
                (b"Authorization", b"Bearer T0k3n"),
                (b"Referer", b"http://shop.example/?token=R3f"),
                (b"Content-Type", b"application/x-www-form-urlencoded"),
            ]),
        });
        tx.request_body.kept = b"user=ann&password=F0rm".to_vec();
        tx.request_body.decoded_len = tx.request_body.kept.len() as u64;
        tx.response = Some(ResponseHead {
            version: Some(1),
            status: 302,
            reason: b"Found".to_vec(),
            headers: Headers::from_pairs([
                (&b"Location"[..], &b"/home?sid=L0c"[..]),
                (b"Set-Cookie", b"sid=N3w; Path=/"),
                (b"Content-Type", b"application/json"),
            ]),
        });
        tx.response_body.kept = br#"{"access_token":"A7","card":"4111 1111 1111 1111"}"#.to_vec();
        tx.response_body.decoded_len = tx.response_body.kept.len() as u64;
        let e = entry(&HarEntry { page: None, session: None, tx: &tx }, &m);
        let text = e.to_string();
        for secret in ["J5", "Q1", "C00k", "b4re", "T0k3n", "R3f", "F0rm", "L0c", "N3w", "A7", "4111 1111 1111 1111"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(
            e["request"]["url"],
            format!("http://shop.example/login;jsessionid={}?p%61ssword={}&next=%2Fa", m.mask(b"J5"), m.mask(b"Q1"))
        );
        assert_eq!(e["request"]["cookies"][1]["value"], m.mask(b"b4re"));
        assert_eq!(e["request"]["queryString"][1]["value"], "%2Fa");
        assert_eq!(e["response"]["redirectURL"], format!("/home?sid={}", m.mask(b"L0c")));
        assert_eq!(e["response"]["cookies"][0]["value"], m.mask(b"N3w"));
        // With masking off, every one is there.
        let open = entry(&HarEntry { page: None, session: None, tx: &tx }, &Masker::off()).to_string();
        for secret in ["J5", "Q1", "C00k", "b4re", "T0k3n", "R3f", "F0rm", "L0c", "N3w", "A7", "4111 1111 1111 1111"] {
            assert!(open.contains(secret), "{secret} missing from {open}");
        }
    }
}
