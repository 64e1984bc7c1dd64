//! HTTP/2 connections (h2 inside TLS, h2c with prior knowledge) through
//! pov-http2, and its streams as [`HttpTransaction`]s: the same records
//! as HTTP/1, with the stream id in [`HttpTransaction::stream`].

use std::sync::Arc;

use pov_http2::{self as h2, H2Config, H2Conn, H2Transaction, KeepRule, Side, Start};

use super::body::{self, BodyDecoder, BodyInfo, ContentEncoding, DecodeStop};
use super::{
    Anomaly, Done, FrameSpan, Headers, HttpConfig, HttpTransaction, Outcome, RequestHead, ResponseHead, TxTiming,
};
use crate::tcp::{CloseHow, ConnMeta, Direction};
use crate::time::Ts;

/// The pov-http2 limits that follow the HTTP layer's (`--max-head-bytes`
/// bounds a header block as it bounds an HTTP/1 head), and the rule that
/// keeps only the body octets [`body_info`] will use: pov-http2 copies
/// no octet of a body that is not kept (a download's bulk), as the HTTP/1
/// parser skips them.
pub(super) fn h2_config(cfg: &HttpConfig) -> H2Config {
    let (every, cap) = (cfg.keep_every_body, cfg.body_keep_bytes);
    H2Config {
        max_header_block: cfg.max_head_bytes.max(16 << 10),
        max_header_list: cfg.max_head_bytes.max(16 << 10),
        body_keep_bytes: cfg.body_keep_bytes,
        keep_rule: Some(KeepRule(Arc::new(move |_, h: &h2::HeaderList| {
            match h.get("content-encoding").and_then(ContentEncoding::from_header) {
                // An encoded body is decoded from the kept octets (its
                // decoded length too): all of them, up to the cap.
                Some(enc) if enc != ContentEncoding::Identity => cap,
                _ => keep_octets(h.get("content-type"), every, cap),
            }
        }))),
        ..H2Config::default()
    }
}

/// Body octets a message keeps, from its content type (`every`:
/// `--keep-bodies`-style keeping of what a replay renders).
fn keep_octets(ct: Option<&[u8]>, every: bool, cap: usize) -> usize {
    if body::worth_keeping(ct) || (every && body::replay_renders(ct)) { cap } else { 0 }
}

/// One HTTP/2 connection and what its streams become.
pub(super) struct H2Route {
    conn: H2Conn,
    next_depth: u32,
    /// Since when at least one stream has been open (for ordering: no
    /// stream still open started before it; the start of a stream whose
    /// first bytes have not come yet).
    open_since: Option<Ts>,
    /// Counted into the analyzer's stats once, at the close.
    counted: bool,
    /// The last answer of [`H2Route::earliest_open`]: (the connection's
    /// stream changes, `after`, the answer). Asked after every segment,
    /// it is worked out again only when streams opened or finished, or
    /// when `after` passed it (a connection may have thousands open).
    earliest: std::cell::Cell<Option<(u64, Ts, Option<Ts>)>>,
}

/// The side of a TCP direction.
pub(super) fn side(dir: Direction) -> Side {
    match dir {
        Direction::ClientToServer => Side::Client,
        Direction::ServerToClient => Side::Server,
    }
}

impl H2Route {
    /// A connection whose client starts with the preface.
    pub(super) fn new(cfg: &HttpConfig) -> H2Route {
        H2Route {
            conn: H2Conn::new(h2_config(cfg), Start::Preface),
            next_depth: 1,
            open_since: None,
            counted: false,
            earliest: std::cell::Cell::new(None),
        }
    }

    /// A connection switched by `Upgrade: h2c`: `up`'s request is stream
    /// 1, the `depth`-th transaction of the connection, and the streams
    /// after it number on.
    pub(super) fn upgraded(cfg: &HttpConfig, up: &HttpTransaction) -> H2Route {
        let req = up.request.as_ref();
        let mut list = h2::HeaderList::default();
        for (n, v) in req.map(|r| r.headers.iter()).into_iter().flatten() {
            list.push(n, v);
        }
        let start = up.timing.start();
        let request = h2::UpgradeRequest {
            method: req.map(|r| r.method.clone()).unwrap_or_default(),
            path: req.map(|r| r.uri.clone()).unwrap_or_default(),
            authority: req.and_then(|r| r.host()),
            headers: list,
            body_bytes: up.request_body.wire_len,
            req_start: start.0,
            req_end: up.timing.req_end.unwrap_or(start).0,
            frames: up.req_frames.map(|f| h2::FrameSpan { first: f.first, last: f.last }),
        };
        H2Route {
            conn: H2Conn::new(h2_config(cfg), Start::Upgraded(Box::new(request))),
            next_depth: up.depth,
            open_since: Some(start),
            counted: false,
            earliest: std::cell::Cell::new(None),
        }
    }

    /// Bytes of one side, in stream order, with where they came from.
    pub(super) fn data(&mut self, dir: Direction, bytes: &[u8], ts: (Ts, Ts), frames: (u64, u64)) {
        let chunk = h2::Chunk { bytes, first_ts: ts.0.0, last_ts: ts.1.0, first_frame: frames.0, last_frame: frames.1 };
        self.conn.data(side(dir), &chunk);
        self.track(ts.0);
    }

    /// `len` bytes of one side lost.
    pub(super) fn gap(&mut self, dir: Direction, len: u64, ts: Ts) {
        self.conn.gap(side(dir), len, ts.0);
        self.track(ts);
    }

    fn track(&mut self, ts: Ts) {
        if self.conn.open_streams() == 0 {
            self.open_since = None;
        } else if self.open_since.is_none() {
            self.open_since = Some(ts);
        }
    }

    /// The connection ended.
    pub(super) fn close(&mut self, how: CloseHow, ts: Ts) {
        let how = match how {
            CloseHow::Fin { .. } => h2::CloseHow::Fin,
            CloseHow::Rst { from } => h2::CloseHow::Rst(side(from)),
            CloseHow::IdleTimeout => h2::CloseHow::Timeout,
            CloseHow::EndOfCapture | CloseHow::Evicted | CloseHow::Superseded => h2::CloseHow::EndOfCapture,
        };
        self.conn.close(how, ts.0);
        self.open_since = None;
    }

    /// Start of the earliest stream still open that began at or after
    /// `after` (a bound from below of what this connection finishes
    /// later, leaving out the streams that began earlier: a long-lived
    /// stream, once it has held the order for `max_order_wait`, no longer
    /// hides the streams that began after it).
    pub(super) fn earliest_open(&self, after: Ts) -> Option<Ts> {
        let since = self.open_since?;
        let changes = self.conn.stream_changes();
        // The earliest at or after an earlier `after` is the earliest at or
        // after this one too, if it is not before it. (A stream whose
        // start was unknown counts from `open_since`, earlier than its
        // start: an answer kept across its start is lower, never higher.)
        if let Some((c, a, found)) = self.earliest.get()
            && c == changes
            && a <= after
            && found.is_none_or(|f| f >= after)
        {
            return found;
        }
        let found = self.conn.open_starts().map(|s| s.map_or(since, Ts)).filter(|s| *s >= after).min();
        self.earliest.set(Some((changes, after, found)));
        found
    }

    /// Whether the client's first bytes were the preface (`None`: not
    /// known yet).
    pub(super) fn is_h2(&self) -> Option<bool> {
        self.conn.is_h2()
    }

    /// The connection's counters, once (at its close).
    pub(super) fn take_stats(&mut self) -> Option<h2::H2Stats> {
        if self.counted {
            return None;
        }
        self.counted = true;
        Some(self.conn.stats().clone())
    }

    /// Streams finished since the last call, as transactions.
    pub(super) fn take(&mut self, meta: &ConnMeta, cfg: &HttpConfig, done: &mut Done) {
        for s in self.conn.take() {
            let depth = self.next_depth;
            self.next_depth += 1;
            done.push(Box::new(transaction(s, meta, depth, cfg)));
        }
    }
}

fn frames(f: Option<h2::FrameSpan>) -> Option<FrameSpan> {
    f.map(|f| FrameSpan { first: f.first, last: f.last })
}

fn headers(list: &h2::HeaderList, extra: usize) -> Headers {
    let mut h = Headers::default();
    h.reserve(list.len() + extra, list.heap_bytes());
    for (n, v) in list.iter() {
        h.push(n, v);
    }
    h
}

/// A body's sizes and kept bytes, decoded with its content encoding as
/// HTTP/1 bodies are. When fewer octets were kept than sent (the keep
/// cap, or loss), the decoded length is what the kept octets gave and
/// the decoding is marked stopped.
fn body_info(b: h2::Body, ct: Option<&[u8]>, enc: Option<&[u8]>, cfg: &HttpConfig) -> BodyInfo {
    let enc = enc.and_then(ContentEncoding::from_header).unwrap_or(ContentEncoding::Identity);
    let keep = keep_octets(ct, cfg.keep_every_body, cfg.body_keep_bytes);
    let whole = b.kept.len() as u64 == b.wire_bytes;
    if enc == ContentEncoding::Identity {
        let mut kept = b.kept;
        kept.truncate(keep);
        return BodyInfo {
            wire_len: b.wire_bytes,
            decoded_len: b.wire_bytes,
            kept,
            decode_stop: (b.lost_bytes > 0).then_some(DecodeStop::Gap),
            ..BodyInfo::default()
        };
    }
    let mut d = BodyDecoder::new(enc, keep, cfg.max_decoded_bytes, cfg.max_decode_ratio);
    d.push(&b.kept);
    let mut info = d.finish();
    info.wire_len = b.wire_bytes;
    if !whole && info.decode_stop.is_none() {
        info.decode_stop = Some(if b.lost_bytes > 0 { DecodeStop::Gap } else { DecodeStop::SizeCap });
    }
    info
}

/// One stream as a transaction of connection `meta`, `depth`-th in it.
fn transaction(s: H2Transaction, meta: &ConnMeta, depth: u32, cfg: &HttpConfig) -> HttpTransaction {
    let mut tx = HttpTransaction::new(meta.id, meta.client, meta.server, depth);
    tx.stream = Some(s.stream);
    let ct = s.response_headers.get("content-type").map(<[u8]>::to_vec);
    let resp_enc = s.response_headers.get("content-encoding").map(<[u8]>::to_vec);
    let req_ct = s.request_headers.get("content-type").map(<[u8]>::to_vec);
    let req_enc = s.request_headers.get("content-encoding").map(<[u8]>::to_vec);
    if s.has_request {
        let has_host = s.request_headers.get("host").is_some();
        let mut h = headers(&s.request_headers, 1);
        // `:authority` is HTTP/1's Host (RFC 9113 8.3.1): records and
        // rules read it there.
        if let (false, Some(a)) = (has_host, s.authority.as_deref()) {
            h.push(b"host", a.as_bytes());
        }
        tx.request = Some(RequestHead {
            method: s.method.clone().unwrap_or_default(),
            uri: s.path.clone().unwrap_or_default(),
            // HTTP/2 carries HTTP/1.1's semantics (RFC 9113 8.1); the
            // stream id says it was HTTP/2.
            version: Some(1),
            headers: h,
        });
    }
    if let (true, Some(status)) = (s.has_response, s.status) {
        tx.response = Some(ResponseHead {
            version: Some(1),
            status,
            reason: Vec::new(),
            headers: headers(&s.response_headers, 0),
        });
    }
    tx.interim = s.interim.clone();
    tx.timing = TxTiming {
        req_start: s.timing.req_start.map(Ts),
        req_end: s.timing.req_end.map(Ts),
        resp_start: s.timing.resp_start.map(Ts),
        resp_end: s.timing.resp_end.map(Ts),
        handshake_rtt: meta.handshake.map(|h| h.rtt()),
        req_resent: None,
    };
    tx.req_frames = frames(s.req_frames);
    tx.resp_frames = frames(s.resp_frames);
    tx.request_body = body_info(s.request_body, req_ct.as_deref(), req_enc.as_deref(), cfg);
    tx.response_body = body_info(s.response_body, ct.as_deref(), resp_enc.as_deref(), cfg);
    tx.outcome = match s.outcome {
        h2::Outcome::Complete => Outcome::Complete,
        h2::Outcome::ClientAbort => Outcome::ClientAbort,
        h2::Outcome::ServerReset => Outcome::ServerReset,
        h2::Outcome::Refused => Outcome::Refused,
        h2::Outcome::RefusedByGoaway => Outcome::RefusedByGoaway,
        h2::Outcome::NoResponse => Outcome::NoResponse,
        h2::Outcome::Truncated => Outcome::Truncated,
        h2::Outcome::CaptureGap => Outcome::CaptureGap,
        h2::Outcome::Malformed => Outcome::Malformed,
    };
    tx.missing_bytes = s.missing_bytes;
    for a in &s.anomalies {
        let mine = match a {
            h2::Anomaly::RequestGap => Some(Anomaly::RequestGap),
            h2::Anomaly::ResponseGap => Some(Anomaly::ResponseGap),
            h2::Anomaly::HpackDesync => Some(Anomaly::HpackDesync),
            h2::Anomaly::NoRequest => Some(Anomaly::NoRequest),
            h2::Anomaly::CaptureEnded => Some(Anomaly::CaptureEnded),
            h2::Anomaly::HeaderListTooLarge | h2::Anomaly::HeaderBlockTooLarge => Some(Anomaly::HeadTooLarge),
            h2::Anomaly::Interim => Some(Anomaly::Interim),
            h2::Anomaly::BadPadding => Some(Anomaly::BadHead),
            h2::Anomaly::StreamReset => Some(Anomaly::StreamReset),
            h2::Anomaly::StreamOverflow => Some(Anomaly::PendingOverflow),
            h2::Anomaly::Pushed => Some(Anomaly::Pushed),
            // Said by the outcome, the reset, or nothing a record reads.
            h2::Anomaly::Trailers | h2::Anomaly::LateReset | h2::Anomaly::GoawayError | h2::Anomaly::Upgraded => None,
        };
        if let Some(m) = mine
            && !tx.anomalies.contains(&m)
        {
            tx.anomalies.push(m);
        }
    }
    tx.anomalies.sort_unstable();
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(fields: &[(&str, &str)]) -> h2::HeaderList {
        let mut l = h2::HeaderList::default();
        for (n, v) in fields {
            l.push(n.as_bytes(), v.as_bytes());
        }
        l
    }

    /// pov-http2 keeps only what `body_info` uses: for each kind of
    /// message, the record made from the octets the rule keeps equals the
    /// record made from every octet up to the cap.
    #[test]
    fn keep_rule_keeps_what_the_record_uses() {
        let body: Vec<u8> = (0..3000u32).map(|i| b"<p>ok</p>\n"[i as usize % 10]).collect();
        let gzipped = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).expect("gzip");
            e.finish().expect("gzip")
        };
        for every in [false, true] {
            let cfg = HttpConfig { body_keep_bytes: 1000, keep_every_body: every, ..HttpConfig::default() };
            let rule = h2_config(&cfg).keep_rule.expect("a keep rule");
            for (fields, wire, want_keep) in [
                (list(&[("content-type", "text/html")]), &body, 1000),
                (list(&[]), &body, 1000),
                (list(&[("content-type", "application/octet-stream")]), &body, 0),
                (list(&[("content-type", "image/png")]), &body, if every { 1000 } else { 0 }),
                (list(&[("content-type", "image/png"), ("content-encoding", "gzip")]), &gzipped, 1000),
                (list(&[("content-type", "text/html"), ("content-encoding", "identity")]), &body, 1000),
            ] {
                let keep = (rule.0)(Side::Server, &fields);
                assert_eq!(keep, want_keep, "{fields:?} every={every}");
                let full = h2::Body {
                    wire_bytes: wire.len() as u64,
                    kept: wire[..wire.len().min(cfg.body_keep_bytes)].to_vec(),
                    ..h2::Body::default()
                };
                let ruled = h2::Body { kept: wire[..wire.len().min(keep)].to_vec(), ..full.clone() };
                let (ct, enc) = (fields.get("content-type"), fields.get("content-encoding"));
                let a = body_info(full, ct, enc, &cfg);
                let b = body_info(ruled, ct, enc, &cfg);
                assert_eq!(
                    (a.wire_len, a.decoded_len, &a.kept, a.decode_stop),
                    (b.wire_len, b.decoded_len, &b.kept, b.decode_stop)
                );
            }
        }
    }
}
