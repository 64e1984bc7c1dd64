//! HTTP/1.x transactions from reassembled TCP streams.
//!
//! # Brief overview
//!
//! [`HttpAnalyzer`] is a [`StreamSink`]: put it behind a
//! [`crate::tcp::Reassembler`] and it parses each connection's two byte
//! streams into requests and responses, pairs them (first in, first out,
//! which is how HTTP/1.x answers, pipelining included), and hands every
//! finished [`HttpTransaction`] to a [`TxSink`] in order of request time.
//!
//! Heads are parsed with httparse; partial input is not an error, the parser
//! waits for more bytes (up to [`HttpConfig::max_head_bytes`]). Body framing
//! is pov's own: Content-Length, chunked (extensions, trailers),
//! close-delimited, none for HEAD, 1xx, 204 and 304. Interim 1xx responses
//! (100 Continue) are recorded and the final response is the one paired.
//! Upgrade (101) and CONNECT end HTTP parsing on that connection.
//!
//! Loss is data, not a reason to stop: after a [`crate::tcp::Gap`] inside a
//! body of known length the parser skips the missing bytes and carries on;
//! inside a head or a body of unknown length it resynchronises at the next
//! request or status line. Transactions that lack bytes are
//! [`Outcome::CaptureGap`] with the count, never blamed on the application.

mod body;
mod conn;
mod order;
pub mod uri;

use std::collections::HashMap;
use std::net::SocketAddr;

pub use body::{BodyInfo, ContentEncoding, DecodeStop};

use crate::tcp::{Close, ConnId, ConnMeta, ConnSummary, DataChunk, Gap, HalfClose, StreamSink};
use crate::time::{Dur, Ts};

/// Limits of the HTTP layer. Each has a counter in [`HttpStats`].
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest request or response head; a longer one is malformed.
    pub max_head_bytes: usize,
    /// Decoded body bytes kept per message (for error-page rules, replay).
    pub body_keep_bytes: usize,
    /// Most decoded bytes counted per body; decoding stops beyond.
    pub max_decoded_bytes: u64,
    /// Largest decoded/wire ratio before decoding stops (decompression bomb).
    pub max_decode_ratio: u64,
    /// Most requests waiting for a response on one connection.
    pub max_pending: usize,
    /// A client that closes after waiting at least this long with no
    /// response byte timed out (`NoResponse`); sooner, it gave up
    /// (`ClientAbort`).
    pub client_timeout: Dur,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_head_bytes: 64 << 10,
            body_keep_bytes: 256 << 10,
            max_decoded_bytes: 64 << 20,
            max_decode_ratio: 1000,
            max_pending: 1024,
            client_timeout: Dur::from_secs(30),
        }
    }
}

/// One header field, kept as bytes (values may be any octets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Field name as sent.
    pub name: Vec<u8>,
    /// Field value as sent.
    pub value: Vec<u8>,
}

/// Header fields in order, with case-insensitive lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| h.value.as_slice())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0.iter().filter(move |h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| h.value.as_slice())
    }

    /// The first value of `name` as (lossy) text.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Cookie names and values from every `Cookie` field.
    pub fn cookies(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for v in self.get_all("cookie") {
            for part in v.split(|b| *b == b';') {
                let part = String::from_utf8_lossy(part);
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                match part.split_once('=') {
                    Some((k, v)) => out.push((k.trim().to_string(), v.trim().to_string())),
                    None => out.push((part.to_string(), String::new())),
                }
            }
        }
        out
    }

    /// Cookie names and values set by every `Set-Cookie` field (the
    /// attributes after the first `;` are left out).
    pub fn set_cookies(&self) -> Vec<(String, String)> {
        self.get_all("set-cookie")
            .filter_map(|v| {
                let v = String::from_utf8_lossy(v);
                let first = v.split(';').next()?.trim().to_string();
                let (k, val) = first.split_once('=')?;
                Some((k.trim().to_string(), val.trim().to_string()))
            })
            .collect()
    }
}

/// A request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Method (any token; unknown methods survive).
    pub method: String,
    /// Request target as sent (bytes).
    pub uri: Vec<u8>,
    /// Minor version: `Some(1)` for HTTP/1.1, `Some(0)` for 1.0, `None` for
    /// HTTP/0.9 (no version on the request line).
    pub version: Option<u8>,
    /// Header fields.
    pub headers: Headers,
}

impl RequestHead {
    /// The Host header.
    pub fn host(&self) -> Option<String> {
        self.headers.text("host")
    }
    /// The request target as (lossy) text.
    pub fn uri_text(&self) -> String {
        String::from_utf8_lossy(&self.uri).into_owned()
    }
    /// The query string (after `?`), if any.
    pub fn query(&self) -> Option<String> {
        let u = self.uri_text();
        u.split_once('?').map(|(_, q)| q.to_string())
    }
    /// The Referer header.
    pub fn referer(&self) -> Option<String> {
        self.headers.text("referer")
    }
    /// The User-Agent header.
    pub fn user_agent(&self) -> Option<String> {
        self.headers.text("user-agent")
    }
    /// The Content-Type header.
    pub fn content_type(&self) -> Option<String> {
        self.headers.text("content-type")
    }
    /// The X-Forwarded-For addresses, in order (client first).
    pub fn x_forwarded_for(&self) -> Vec<String> {
        self.headers
            .get_all("x-forwarded-for")
            .flat_map(|v| String::from_utf8_lossy(v).split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect()
    }
    /// `1.1`, `1.0` or `0.9`.
    pub fn version_text(&self) -> &'static str {
        match self.version {
            Some(1) => "1.1",
            Some(0) => "1.0",
            Some(_) => "1.x",
            None => "0.9",
        }
    }
}

/// A response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// Minor version (`None`: an HTTP/0.9 answer without a status line).
    pub version: Option<u8>,
    /// Status code (0 for an HTTP/0.9 answer).
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: Vec<u8>,
    /// Header fields.
    pub headers: Headers,
}

impl ResponseHead {
    /// The Content-Type header.
    pub fn content_type(&self) -> Option<String> {
        self.headers.text("content-type")
    }
    /// `1.1`, `1.0` or `0.9`.
    pub fn version_text(&self) -> &'static str {
        match self.version {
            Some(1) => "1.1",
            Some(0) => "1.0",
            Some(_) => "1.x",
            None => "0.9",
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Request and response complete.
    Complete,
    /// The client closed or reset before the response was complete.
    ClientAbort,
    /// The server reset the connection before the response was complete.
    ServerReset,
    /// No response: the server closed without answering, or the client gave
    /// up after waiting at least [`HttpConfig::client_timeout`].
    NoResponse,
    /// The server closed after fewer body bytes than announced.
    Truncated,
    /// Bytes of the transaction are missing from the capture, or the capture
    /// ended before it did: what happened cannot be known. Never a failure.
    CaptureGap,
    /// The request or response could not be parsed.
    Malformed,
}

impl Outcome {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientAbort => "client_abort",
            Outcome::ServerReset => "server_reset",
            Outcome::NoResponse => "no_response",
            Outcome::Truncated => "truncated",
            Outcome::CaptureGap => "capture_gap",
            Outcome::Malformed => "malformed",
        }
    }
}

/// Something unusual about a transaction (not necessarily a failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    /// Bytes of the request are missing from the capture.
    RequestGap,
    /// Bytes of the response are missing from the capture.
    ResponseGap,
    /// The request head was cut by a gap; what is known of it is partial.
    PartialRequestHead,
    /// The response came without a request in the capture (sent before
    /// the capture started, or lost in a gap).
    NoRequest,
    /// The capture ended (or the connection was forgotten) before the
    /// transaction did.
    CaptureEnded,
    /// The connection went idle (no packet for the idle timeout) in the
    /// middle of the response.
    Stalled,
    /// The head was larger than [`HttpConfig::max_head_bytes`].
    HeadTooLarge,
    /// The head did not parse.
    BadHead,
    /// Chunked framing did not parse.
    BadChunk,
    /// The body's content encoding did not decode (or stopped at a cap).
    BodyDecode,
    /// Decoding hit [`HttpConfig::max_decoded_bytes`] or the ratio cap.
    DecodeCap,
    /// The request or response was pipelined behind another.
    Pipelined,
    /// An interim 1xx response came before the final one.
    Interim,
    /// The connection switched protocols (101 or CONNECT): parsing ended.
    Tunnel,
    /// An HTTP/0.9 exchange (no version, no status line).
    Http09,
    /// Both Content-Length and Transfer-Encoding were sent (chunked wins).
    ConflictingLength,
    /// Bytes between messages that belong to none (skipped).
    Garbage,
    /// Too many requests were waiting for responses; the oldest was given
    /// up ([`HttpConfig::max_pending`]).
    PendingOverflow,
}

/// Capture times of a transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TxTiming {
    /// Capture time of the request's first byte.
    pub req_start: Option<Ts>,
    /// Capture time of the request's last byte.
    pub req_end: Option<Ts>,
    /// Capture time of the (final) response's first byte.
    pub resp_start: Option<Ts>,
    /// Capture time of the response's last byte.
    pub resp_end: Option<Ts>,
    /// The connection's handshake round trip, when the handshake was seen.
    pub handshake_rtt: Option<Dur>,
}

impl TxTiming {
    /// Time to first byte: request end to response start (server time).
    pub fn ttfb(&self) -> Option<Dur> {
        Some(self.resp_start? - self.req_end?)
    }
    /// Response transfer time: first to last response byte.
    pub fn transfer(&self) -> Option<Dur> {
        Some(self.resp_end? - self.resp_start?)
    }
    /// The time the transaction is ordered by: request start, or response
    /// start for a response without request.
    pub fn start(&self) -> Ts {
        self.req_start.or(self.resp_start).unwrap_or_default()
    }
}

/// Frame numbers of the first and last packet that carried a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameSpan {
    /// First frame.
    pub first: u64,
    /// Last frame.
    pub last: u64,
}

/// One request and its response.
#[derive(Clone, Debug)]
pub struct HttpTransaction {
    /// Connection id.
    pub conn: ConnId,
    /// Client address.
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// Position in the connection, from 1 (Zeek's `trans_depth`).
    pub depth: u32,
    /// The request, if the capture has it.
    pub request: Option<RequestHead>,
    /// The final response, if any.
    pub response: Option<ResponseHead>,
    /// Interim (1xx) status codes received before the final response.
    pub interim: Vec<u16>,
    /// Times.
    pub timing: TxTiming,
    /// Frames of the request.
    pub req_frames: Option<FrameSpan>,
    /// Frames of the response.
    pub resp_frames: Option<FrameSpan>,
    /// Request body.
    pub request_body: BodyInfo,
    /// Response body.
    pub response_body: BodyInfo,
    /// How it ended.
    pub outcome: Outcome,
    /// For a client abort or no response: how long the client had waited
    /// (from the end of its request to its close).
    pub waited: Option<Dur>,
    /// Bytes of the transaction missing from the capture.
    pub missing_bytes: u64,
    /// Unusual things about it.
    pub anomalies: Vec<Anomaly>,
}

/// Receives finished transactions.
pub trait TxSink {
    /// A finished transaction (in order of request time).
    fn on_transaction(&mut self, tx: HttpTransaction);
}

impl TxSink for Vec<HttpTransaction> {
    fn on_transaction(&mut self, tx: HttpTransaction) {
        self.push(tx);
    }
}

/// Counters of the HTTP layer, including every cap that acted.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HttpStats {
    /// Connections seen.
    pub connections: u64,
    /// Transactions emitted.
    pub transactions: u64,
    /// By outcome.
    pub complete: u64,
    /// Client aborts.
    pub client_abort: u64,
    /// Server resets.
    pub server_reset: u64,
    /// No responses.
    pub no_response: u64,
    /// Truncated responses.
    pub truncated: u64,
    /// Transactions with capture loss.
    pub capture_gap: u64,
    /// Malformed transactions.
    pub malformed: u64,
    /// Responses without a request.
    pub orphan_responses: u64,
    /// Interim (1xx) responses.
    pub interim_responses: u64,
    /// Connections that switched protocols (101, CONNECT).
    pub tunnels: u64,
    /// Connections whose first bytes were not HTTP (not parsed further).
    pub not_http: u64,
    /// Heads over `--max-head-bytes`.
    pub heads_too_large: u64,
    /// Bodies whose decoding stopped at the size or ratio cap.
    pub decode_caps: u64,
    /// Requests given up because too many were pending.
    pub pending_overflow: u64,
    /// Bytes skipped while resynchronising after a gap or garbage.
    pub resync_skipped_bytes: u64,
    /// Bytes of transactions missing from the capture.
    pub missing_bytes: u64,
    /// Largest number of finished transactions held for ordering.
    pub peak_order_buffer: u64,
    /// Transactions emitted after a later-starting one (their bytes came
    /// out of the reassembler long after they were captured).
    pub late_order: u64,
}

/// Parses HTTP from reassembled streams; see the module docs.
pub struct HttpAnalyzer<S: TxSink> {
    cfg: HttpConfig,
    conns: HashMap<ConnId, conn::ConnHttp>,
    order: order::Orderer,
    stats: HttpStats,
    sink: S,
    now: Ts,
    last_release: Ts,
}

/// Finished transactions are held this long (in capture time) before they
/// are released in order, for bytes delivered late by the reassembler.
const ORDER_GUARD: Dur = Dur::from_secs(10);

impl<S: TxSink> HttpAnalyzer<S> {
    /// An analyzer handing transactions to `sink`.
    pub fn new(cfg: HttpConfig, sink: S) -> HttpAnalyzer<S> {
        HttpAnalyzer {
            cfg,
            conns: HashMap::new(),
            order: order::Orderer::default(),
            stats: HttpStats::default(),
            sink,
            now: Ts(i64::MIN),
            last_release: Ts(i64::MIN),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Releases every transaction still held for ordering (call after the
    /// reassembler's `finish`) and returns the sink.
    pub fn finish(mut self) -> (S, HttpStats) {
        for tx in self.order.drain() {
            self.sink.on_transaction(tx);
        }
        self.stats.late_order = self.order.late();
        (self.sink, self.stats)
    }

    fn emit(&mut self, done: Vec<HttpTransaction>) {
        for tx in done {
            self.stats.transactions += 1;
            match tx.outcome {
                Outcome::Complete => self.stats.complete += 1,
                Outcome::ClientAbort => self.stats.client_abort += 1,
                Outcome::ServerReset => self.stats.server_reset += 1,
                Outcome::NoResponse => self.stats.no_response += 1,
                Outcome::Truncated => self.stats.truncated += 1,
                Outcome::CaptureGap => self.stats.capture_gap += 1,
                Outcome::Malformed => self.stats.malformed += 1,
            }
            if tx.request.is_none() {
                self.stats.orphan_responses += 1;
            }
            self.stats.missing_bytes += tx.missing_bytes;
            self.order.push(tx);
        }
        self.stats.peak_order_buffer = self.stats.peak_order_buffer.max(self.order.len() as u64);
    }

    fn release(&mut self, ts: Ts) {
        if ts > self.now {
            self.now = ts;
        }
        // Scanning the open connections costs their number: do it at most
        // once per second of capture time, or when many are waiting.
        if self.now < self.last_release + Dur::from_secs(1) && self.order.len() < 4096 {
            return;
        }
        self.last_release = self.now;
        let guard = self.now - ORDER_GUARD;
        let watermark = self.conns.values().filter_map(|c| c.earliest_open()).min().map_or(guard, |t| t.min(guard));
        for tx in self.order.release(watermark) {
            self.sink.on_transaction(tx);
        }
    }
}

impl<S: TxSink> StreamSink for HttpAnalyzer<S> {
    fn on_open(&mut self, meta: &ConnMeta) {
        self.stats.connections += 1;
        self.conns.insert(meta.id, conn::ConnHttp::new(meta));
    }

    fn on_data(&mut self, chunk: &DataChunk<'_>) {
        let Some(c) = self.conns.get_mut(&chunk.conn) else { return };
        let done = c.data(chunk, &self.cfg, &mut self.stats);
        self.emit(done);
        self.release(chunk.last_ts);
    }

    fn on_gap(&mut self, gap: &Gap) {
        let Some(c) = self.conns.get_mut(&gap.conn) else { return };
        let done = c.gap(gap, &self.cfg, &mut self.stats);
        self.emit(done);
        self.release(gap.ts);
    }

    fn on_half_close(&mut self, hc: &HalfClose) {
        let Some(c) = self.conns.get_mut(&hc.conn) else { return };
        let done = c.half_close(hc, &self.cfg, &mut self.stats);
        self.emit(done);
        self.release(hc.ts);
    }

    fn on_close(&mut self, close: &Close) {
        let Some(mut c) = self.conns.remove(&close.conn) else { return };
        let done = c.close(close, &self.cfg, &mut self.stats);
        self.emit(done);
        self.release(close.ts);
    }

    fn on_summary(&mut self, _summary: &ConnSummary) {}
}
