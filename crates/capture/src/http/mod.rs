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
mod brotli_c;
pub mod codec;
mod conn;
mod decompress;
mod framing;
mod h2;
mod order;
mod pairing;
mod route;
pub mod uri;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

pub use body::{BodyInfo, ContentEncoding, DecodeStop};
pub use pov_tls::{KeyStore, Outcome as TlsOutcome};
pub use route::{H2Counters, TlsEnd, TlsStats};

use crate::budget::{Budget, Holder};
use crate::tcp::{Close, ConnId, ConnMeta, ConnSummary, DataChunk, Gap, HalfClose, StreamSink};
use crate::time::{Dur, Ts};

/// Limits of the HTTP layer. Each has a counter in [`HttpStats`].
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest request or response head; a longer one is malformed.
    pub max_head_bytes: usize,
    /// Decoded body bytes kept per message (for error-page rules, replay).
    pub body_keep_bytes: usize,
    /// Bodies a failure rule can read are kept; images, media, fonts,
    /// style sheets, scripts and archives are counted but not kept, unless
    /// this is set: then the bodies a replay renders are kept too (images,
    /// fonts, style sheets, scripts; of video, audio, archives and binary
    /// downloads, which a replay names with their size, the first KiB),
    /// for a tap ([`HttpAnalyzer::set_tap`]) that stores transactions
    /// whole and then drops what no failure rule reads
    /// ([`HttpTransaction::drop_unread_bodies`]).
    pub keep_every_body: bool,
    /// Most decoded bytes counted per body; decoding stops beyond.
    pub max_decoded_bytes: u64,
    /// Largest decoded/wire ratio before decoding stops (decompression bomb).
    pub max_decode_ratio: u64,
    /// Most requests waiting for a response on one connection.
    pub max_pending: usize,
    /// Most finished transactions held to be released in order of request
    /// time; beyond, the earliest held are released early (a transaction
    /// that started before them but finishes later comes out of order).
    pub max_held: usize,
    /// Most bytes (kept bodies, heads) of finished transactions held for
    /// ordering; beyond, the earliest held are released early.
    pub max_held_bytes: usize,
    /// Longest an unfinished transaction holds the others back: once its
    /// request started this long ago (in capture time), what started after
    /// it is released without waiting for it, and it comes out late when
    /// it finishes (a long download, a long poll, a request never
    /// answered on a connection that stays open; counted in
    /// [`HttpStats::order_wait_lapses`]). Without it, one such request
    /// makes every later transaction wait in memory.
    pub max_order_wait: Dur,
    /// A client that closes after waiting at least this long with no
    /// response byte timed out (`NoResponse`); sooner, it gave up
    /// (`ClientAbort`).
    pub client_timeout: Dur,
    /// The run's memory budget: heads, kept bodies, decompressors, waiting
    /// requests and transactions held for ordering are charged to it.
    pub budget: Budget,
    /// TLS secrets (`--keylog`, pcapng Decryption Secrets Blocks), shared
    /// by the threads of a run. Empty: TLS connections are counted and
    /// their handshakes read, not decrypted.
    pub keys: Arc<KeyStore>,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_head_bytes: 64 << 10,
            body_keep_bytes: 256 << 10,
            keep_every_body: false,
            max_decoded_bytes: 64 << 20,
            max_decode_ratio: 1000,
            max_pending: 1024,
            max_held: 65536,
            max_held_bytes: 128 << 20,
            max_order_wait: Dur::from_secs(60),
            client_timeout: Dur::from_secs(30),
            budget: Budget::default(),
            keys: Arc::new(KeyStore::new()),
        }
    }
}

/// Header fields in order, kept as bytes (values may be any octets), with
/// case-insensitive lookup. A head is one buffer and a list of offsets:
/// two allocations per message, whatever its number of fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    /// The fields' names and values, one after another (the replay
    /// store's codec writes and reads it whole).
    buf: Vec<u8>,
    /// Per field: where its name starts, where its value starts (the name
    /// ends there), where its value ends.
    fields: Vec<(u32, u32, u32)>,
}

impl Headers {
    /// Headers from (name, value) pairs, in order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Headers {
        let mut h = Headers::default();
        for (n, v) in pairs {
            h.push(n, v);
        }
        h
    }

    /// Makes room for `fields` more fields of `bytes` bytes in all.
    pub fn reserve(&mut self, fields: usize, bytes: usize) {
        self.fields.reserve(fields);
        self.buf.reserve(bytes);
    }

    /// Appends a field.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        // A head is capped far below 4 GiB (`HttpConfig::max_head_bytes`).
        let at = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
        let start = at(self.buf.len());
        self.buf.extend_from_slice(name);
        let mid = at(self.buf.len());
        self.buf.extend_from_slice(value);
        self.fields.push((start, mid, at(self.buf.len())));
    }

    /// The fields as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|&(a, b, c)| {
            let (a, b, c) = (a as usize, b as usize, c as usize);
            (self.buf.get(a..b).unwrap_or(&[]), self.buf.get(b..c).unwrap_or(&[]))
        })
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Bytes held (names, values and offsets), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.fields.capacity() * std::mem::size_of::<(u32, u32, u32)>()
    }

    /// The first value of `name` (case-insensitive).
    #[inline]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find_map(|&f| self.value_if(f, name.as_bytes()))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields.iter().filter_map(move |&f| self.value_if(f, name.as_bytes()))
    }

    /// The value of field `f` if its name is `name` (case-insensitive).
    /// Lookups are many (the record and the sessions' view each ask for a
    /// dozen fields): a name of another length is passed over on its
    /// offsets alone, without slicing the buffer.
    #[inline]
    fn value_if(&self, (a, b, c): (u32, u32, u32), name: &[u8]) -> Option<&[u8]> {
        let (a, b, c) = (a as usize, b as usize, c as usize);
        if b.wrapping_sub(a) != name.len() || !self.buf.get(a..b)?.eq_ignore_ascii_case(name) {
            return None;
        }
        Some(self.buf.get(b..c).unwrap_or(&[]))
    }

    /// The first value of `name` as (lossy) text.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| crate::text::lossy(v).into_owned())
    }

    /// [`Headers::text`] borrowed from the head when its bytes are UTF-8,
    /// for a value read and let go (no copy made to be dropped).
    pub fn text_ref(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(crate::text::lossy)
    }

    /// Cookie names and values from every `Cookie` field, borrowed from
    /// the head where its bytes are UTF-8 (of all a request's cookies, the
    /// sessions' view keeps one or two).
    pub fn cookies(&self) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
        /// `part` (trimmed) split at its first `=`, each side trimmed.
        fn pair(part: &str) -> Option<(&str, &str)> {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            Some(match part.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (part, ""),
            })
        }
        let mut out = Vec::new();
        for v in self.get_all("cookie") {
            for part in v.split(|b| *b == b';') {
                match crate::text::lossy(part) {
                    Cow::Borrowed(part) => {
                        out.extend(pair(part).map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v))));
                    }
                    Cow::Owned(part) => {
                        let owned = |s: &str| Cow::Owned(s.to_owned());
                        out.extend(pair(&part).map(|(k, v)| (owned(k), owned(v))));
                    }
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
                let v = crate::text::lossy(v);
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
        crate::text::lossy(&self.uri).into_owned()
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
            .flat_map(|v| crate::text::lossy(v).split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    /// HTTP/2: the server refused the stream (RST_STREAM REFUSED_STREAM)
    /// before doing any work on it; the client may send it again (RFC
    /// 9113 8.7). Not a failure of the application: a browser retries
    /// it, and the retry is a transaction of its own.
    Refused,
    /// HTTP/2: the stream was above the last stream id of the server's
    /// GOAWAY, so it was never processed (RFC 9113 6.8); the client
    /// retries it on a new connection. Not a failure of the application.
    RefusedByGoaway,
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
            Outcome::Refused => "refused",
            Outcome::RefusedByGoaway => "refused_by_goaway",
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
    /// The memory budget was full: a body was not kept (or not decoded),
    /// a head was not held whole, or the request was given up while
    /// waiting ([`HttpConfig::budget`], `--memory-budget`).
    MemoryBudget,
    /// Bytes of the transaction came after a RST on its connection that
    /// the connection outlived (its receiver ignored it: the stream went
    /// on in sequence). Zeek calls it `data_after_reset`.
    DataAfterRst,
    /// HTTP/2: a header block of this stream was not decoded because its
    /// direction's HPACK table was lost to a gap earlier (never guessed).
    HpackDesync,
    /// HTTP/2: the stream was reset with RST_STREAM.
    StreamReset,
    /// HTTP/2: the stream was pushed by the server (PUSH_PROMISE).
    Pushed,
}

impl Anomaly {
    /// Every anomaly, in declaration order.
    pub const ALL: [Anomaly; 23] = [
        Anomaly::RequestGap,
        Anomaly::ResponseGap,
        Anomaly::PartialRequestHead,
        Anomaly::NoRequest,
        Anomaly::CaptureEnded,
        Anomaly::Stalled,
        Anomaly::HeadTooLarge,
        Anomaly::BadHead,
        Anomaly::BadChunk,
        Anomaly::BodyDecode,
        Anomaly::DecodeCap,
        Anomaly::Pipelined,
        Anomaly::Interim,
        Anomaly::Tunnel,
        Anomaly::Http09,
        Anomaly::ConflictingLength,
        Anomaly::Garbage,
        Anomaly::PendingOverflow,
        Anomaly::MemoryBudget,
        Anomaly::DataAfterRst,
        Anomaly::HpackDesync,
        Anomaly::StreamReset,
        Anomaly::Pushed,
    ];

    /// Snake-case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::RequestGap => "request_gap",
            Anomaly::ResponseGap => "response_gap",
            Anomaly::PartialRequestHead => "partial_request_head",
            Anomaly::NoRequest => "no_request",
            Anomaly::CaptureEnded => "capture_ended",
            Anomaly::Stalled => "stalled",
            Anomaly::HeadTooLarge => "head_too_large",
            Anomaly::BadHead => "bad_head",
            Anomaly::BadChunk => "bad_chunk",
            Anomaly::BodyDecode => "body_decode",
            Anomaly::DecodeCap => "decode_cap",
            Anomaly::Pipelined => "pipelined",
            Anomaly::Interim => "interim",
            Anomaly::Tunnel => "tunnel",
            Anomaly::Http09 => "http09",
            Anomaly::ConflictingLength => "conflicting_length",
            Anomaly::Garbage => "garbage",
            Anomaly::PendingOverflow => "pending_overflow",
            Anomaly::MemoryBudget => "memory_budget",
            Anomaly::DataAfterRst => "data_after_rst",
            Anomaly::HpackDesync => "hpack_desync",
            Anomaly::StreamReset => "stream_reset",
            Anomaly::Pushed => "pushed",
        }
    }
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
    /// The last time the client sent the request's bytes again before the
    /// answer began: the server may only have had them from then on (the
    /// capture saw an earlier copy the server may not have received).
    pub req_resent: Option<Ts>,
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Position in the connection, from 1 (Zeek's `trans_depth`; for
    /// HTTP/2, in the order the streams finished).
    pub depth: u32,
    /// HTTP/2 stream id (`None` for HTTP/1.x).
    pub stream: Option<u32>,
    /// Decrypted from TLS (HTTPS).
    pub tls: bool,
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

impl HttpTransaction {
    /// `2` for an HTTP/2 stream, else the HTTP/1 version of the response
    /// (of the request when there is none): `1.1`, `1.0`, `0.9`.
    pub fn version_text(&self) -> Option<&'static str> {
        if self.stream.is_some() {
            return Some("2");
        }
        self.response.as_ref().map(|r| r.version_text()).or(self.request.as_ref().map(|r| r.version_text()))
    }

    /// `https` for a transaction decrypted from TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// Gives back the memory budget charges of its kept bodies (the bytes
    /// stay): for a transaction handed from one part of a run to another,
    /// which charges what it keeps to its own budget.
    pub fn uncharge(&mut self) {
        self.request_body.charge = crate::budget::Charge::none();
        self.response_body.charge = crate::budget::Charge::none();
    }

    /// Whether its response body is one visitors share (an image, font,
    /// style sheet or script), by its Content-Type.
    pub fn shared_asset(&self) -> bool {
        body::shared_asset(self.response.as_ref().and_then(|r| r.headers.get("content-type")))
    }

    /// Drops the kept response body if no failure rule reads its media
    /// type (images, fonts, style sheets, scripts, archives): what an
    /// analyzer without [`HttpConfig::keep_every_body`] keeps.
    pub fn drop_unread_bodies(&mut self) {
        let ct = self.response.as_ref().and_then(|r| r.headers.get("content-type"));
        if !body::worth_keeping(ct) {
            self.response_body.kept = Vec::new();
            self.response_body.charge = crate::budget::Charge::none();
        }
    }

    /// Transaction `depth` of connection `conn` with nothing known of it
    /// yet: no heads, no times, no bodies, no anomalies, outcome
    /// `complete` (until something says otherwise).
    pub fn new(conn: ConnId, client: SocketAddr, server: SocketAddr, depth: u32) -> HttpTransaction {
        HttpTransaction {
            conn,
            client,
            server,
            depth,
            stream: None,
            tls: false,
            request: None,
            response: None,
            interim: Vec::new(),
            timing: TxTiming::default(),
            req_frames: None,
            resp_frames: None,
            request_body: BodyInfo::default(),
            response_body: BodyInfo::default(),
            outcome: Outcome::Complete,
            waited: None,
            missing_bytes: 0,
            anomalies: Vec::new(),
        }
    }
}

/// Transactions finished by a turn, on their way to the ordering buffer.
/// Each is boxed when its request (or answer) begins: a transaction is
/// 632 bytes, and it moves from the parser to the queue of waiting
/// requests, to this list and into the ordering buffer.
#[allow(clippy::vec_box)]
type Done = Vec<Box<HttpTransaction>>;

/// Receives finished transactions.
pub trait TxSink {
    /// A finished transaction (in order of request time).
    fn on_transaction(&mut self, tx: HttpTransaction);

    /// The same, as the analyzer holds it: a sink that keeps or passes
    /// transactions on can take the box as it is instead of a copy of
    /// 632 bytes.
    fn on_boxed(&mut self, tx: Box<HttpTransaction>) {
        self.on_transaction(*tx);
    }
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
    /// HTTP/2 streams the server refused (REFUSED_STREAM).
    pub refused: u64,
    /// HTTP/2 streams above a GOAWAY's last stream id.
    pub refused_by_goaway: u64,
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
    /// Transactions released early because [`HttpConfig::max_held`] or
    /// [`HttpConfig::max_held_bytes`] were held.
    pub held_cap_releases: u64,
    /// Transactions still unfinished [`HttpConfig::max_order_wait`] after
    /// their request started: the others stopped waiting for them, and
    /// they come out after later-starting ones.
    pub order_wait_lapses: u64,
    /// Transactions written after one that started later: the disorder
    /// the outputs show, once every cap and late arrival is accounted for
    /// (counted where the transactions are finally written in order; a
    /// transaction let out early by a cap is not counted when nothing
    /// earlier came after it).
    pub written_out_of_order: u64,
    /// Largest number of bytes held for ordering.
    pub peak_held_bytes: u64,
    /// Transactions released early (out of order) because the memory
    /// budget was nearly full (`--memory-budget`).
    pub budget_releases: u64,
    /// Transactions with something left out because the memory budget
    /// was full: a body not kept or not decoded, a head not held whole, a
    /// request given up while waiting (anomaly `memory_budget`).
    pub budget_cuts: u64,
    /// TLS connections by outcome (with or without keys).
    pub tls: TlsStats,
    /// HTTP/2 connections and streams.
    pub h2: H2Counters,
}

impl HttpStats {
    /// Adds the counters of another analyzer (a shard of the same
    /// capture). Peaks add up too: the sum of the shards' peaks bounds the
    /// whole run's from above.
    pub fn merge(&mut self, o: &HttpStats) {
        self.connections += o.connections;
        self.transactions += o.transactions;
        self.complete += o.complete;
        self.client_abort += o.client_abort;
        self.server_reset += o.server_reset;
        self.no_response += o.no_response;
        self.truncated += o.truncated;
        self.capture_gap += o.capture_gap;
        self.malformed += o.malformed;
        self.orphan_responses += o.orphan_responses;
        self.interim_responses += o.interim_responses;
        self.tunnels += o.tunnels;
        self.not_http += o.not_http;
        self.heads_too_large += o.heads_too_large;
        self.decode_caps += o.decode_caps;
        self.pending_overflow += o.pending_overflow;
        self.resync_skipped_bytes += o.resync_skipped_bytes;
        self.missing_bytes += o.missing_bytes;
        self.peak_order_buffer += o.peak_order_buffer;
        self.late_order += o.late_order;
        self.held_cap_releases += o.held_cap_releases;
        self.order_wait_lapses += o.order_wait_lapses;
        self.written_out_of_order += o.written_out_of_order;
        self.peak_held_bytes += o.peak_held_bytes;
        self.budget_releases += o.budget_releases;
        self.budget_cuts += o.budget_cuts;
        self.refused += o.refused;
        self.refused_by_goaway += o.refused_by_goaway;
        self.tls.merge(&o.tls);
        self.h2.merge(&o.h2);
    }
}

/// A connection's HTTP state, the start time under which it is in
/// `HttpAnalyzer::open`, and what it speaks.
type ConnEntry = (conn::ConnHttp, Option<Ts>, route::Route);

/// Parses HTTP from reassembled streams; see the module docs.
pub struct HttpAnalyzer<S: TxSink> {
    cfg: HttpConfig,
    /// Each connection, and the start time under which it is in `open`.
    /// (Boxed, so that the map's spare capacity costs a pointer a slot.)
    /// And what the connection speaks (`route.rs`). Looked up twice for
    /// every chunk of data: hashed with hashbrown's seeded hasher rather
    /// than SipHash, which cost some 140 instructions a lookup.
    conns: HashMap<ConnId, Box<ConnEntry>, hashlink::DefaultHashBuilder>,
    /// The connections with an unfinished transaction, by its start time:
    /// the earliest bounds what can be released in order, without a scan
    /// of every connection.
    open: BTreeSet<(Ts, ConnId)>,
    /// The HTTP/2 connections among them: each is keyed by its earliest
    /// open stream that has not held the order for `max_order_wait` yet,
    /// and keyed again when that one does (a connection may carry a
    /// long-lived stream and short ones beside it).
    open_h2: BTreeSet<(Ts, ConnId)>,
    order: order::Orderer,
    stats: HttpStats,
    sink: S,
    now: Ts,
    last_release: Ts,
    /// Queued items looked at while pairing, over the closed connections.
    pairing_steps: u64,
    /// Sees every transaction as it finishes.
    tap: Option<Tap>,
    /// Decrypts TLS records with the run's keys (this thread's buffer).
    tls: pov_tls::Decoder<'static>,
    /// How each TLS connection ended, until its summary comes.
    tls_ends: crate::FastMap<ConnId, TlsEnd>,
    /// That of the last summary seen.
    last_tls_end: Option<TlsEnd>,
    /// The transactions a chunk of data finished, on their way to the
    /// ordering (kept from chunk to chunk, up to [`KEPT_DONE`]).
    done: Done,
    /// Chunks of body bytes under way taken by [`ConnHttp::body_data`]
    /// (always, but in the checks that compare the two ways).
    body_shortcut: bool,
}

/// Most transactions whose room [`HttpAnalyzer`]'s list of those a chunk
/// finished keeps (a chunk of pipelined answers may finish many; the list
/// does not keep that room).
const KEPT_DONE: usize = 16;

/// Sees every transaction as it finishes, before it is held for ordering
/// (it may store it and trim it).
pub type Tap = Box<dyn FnMut(&mut HttpTransaction) + Send>;

/// Finished transactions are held this long (in capture time) before they
/// are released in order, for bytes delivered late by the reassembler.
const ORDER_GUARD: Dur = Dur::from_secs(10);

impl<S: TxSink> HttpAnalyzer<S> {
    /// An analyzer handing transactions to `sink`.
    pub fn new(cfg: HttpConfig, sink: S) -> HttpAnalyzer<S> {
        let order = order::Orderer::new(&cfg.budget);
        HttpAnalyzer {
            conns: HashMap::default(),
            open: BTreeSet::new(),
            open_h2: BTreeSet::new(),
            order,
            stats: HttpStats::default(),
            sink,
            now: Ts(i64::MIN),
            last_release: Ts(i64::MIN),
            pairing_steps: 0,
            tap: None,
            tls: route::decoder(&cfg.keys),
            cfg,
            tls_ends: crate::FastMap::default(),
            last_tls_end: None,
            done: Vec::new(),
            body_shortcut: true,
        }
    }

    /// The analyzer without [`ConnHttp::body_data`] (which must not
    /// change what it gives: the tests and the HTTP fuzz check compare).
    pub(crate) fn without_body_shortcut(mut self) -> HttpAnalyzer<S> {
        self.body_shortcut = false;
        self
    }

    /// Calls `tap` with every transaction as it finishes, before it is held
    /// to be released in order.
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// Counters so far.
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// How the TLS handshake of the connection whose summary
    /// ([`StreamSink::on_summary`]) came last went, if it was TLS: call
    /// after passing the summary on, to put it in
    /// [`crate::tcp::ConnSummary::tls`].
    pub fn take_tls_end(&mut self) -> Option<TlsEnd> {
        self.last_tls_end.take()
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, to hand it things the HTTP layer does not see (such as
    /// connection summaries).
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Releases every transaction still held for ordering (call after the
    /// reassembler's `finish`) and returns the sink.
    pub fn finish(mut self) -> (S, HttpStats) {
        for tx in self.order.drain() {
            self.sink.on_boxed(tx);
        }
        self.stats.late_order = self.order.late();
        (self.sink, self.stats)
    }

    fn emit(&mut self, done: impl IntoIterator<Item = Box<HttpTransaction>>) {
        for mut tx in done {
            if let Some(tap) = &mut self.tap {
                tap(&mut tx);
            }
            self.stats.transactions += 1;
            match tx.outcome {
                Outcome::Complete => self.stats.complete += 1,
                Outcome::ClientAbort => self.stats.client_abort += 1,
                Outcome::ServerReset => self.stats.server_reset += 1,
                Outcome::NoResponse => self.stats.no_response += 1,
                Outcome::Truncated => self.stats.truncated += 1,
                Outcome::CaptureGap => self.stats.capture_gap += 1,
                Outcome::Malformed => self.stats.malformed += 1,
                Outcome::Refused => self.stats.refused += 1,
                Outcome::RefusedByGoaway => self.stats.refused_by_goaway += 1,
            }
            if tx.request.is_none() {
                self.stats.orphan_responses += 1;
            }
            if tx.anomalies.contains(&Anomaly::MemoryBudget) {
                self.stats.budget_cuts += 1;
            }
            self.stats.missing_bytes += tx.missing_bytes;
            if tx.timing.start() < self.now - self.cfg.max_order_wait {
                self.stats.order_wait_lapses += 1;
            }
            // Held for ordering within the memory budget: without room, the
            // earliest held go out now.
            let w = order::record_weight(&tx);
            if !self.cfg.budget.fits(w) {
                let budget = self.cfg.budget.clone();
                let early = self.order.release_while(|| !budget.fits(w));
                if !early.is_empty() {
                    budget.refused(Holder::Ordering);
                    self.stats.budget_releases += early.len() as u64;
                }
                for tx in early {
                    self.sink.on_boxed(tx);
                }
                if !budget.fits(w) {
                    // Nothing held to let go of: this one goes out at once.
                    self.stats.budget_releases += 1;
                    self.sink.on_boxed(tx);
                    continue;
                }
            }
            self.order.push(tx);
        }
        self.stats.peak_order_buffer = self.stats.peak_order_buffer.max(self.order.len() as u64);
        self.stats.peak_held_bytes = self.stats.peak_held_bytes.max(self.order.bytes() as u64);
    }

    /// Keeps `open` in step with the connection's earliest unfinished
    /// transaction.
    fn reindex(&mut self, id: ConnId) {
        let Some(e) = self.conns.get_mut(&id) else { return };
        reindex(&mut self.open, &mut self.open_h2, self.now - self.cfg.max_order_wait, id, e);
    }

    /// Moves capture time on to `now` (for an analyzer that sees only some
    /// of a capture's connections) and releases, in order, every held
    /// transaction that no unfinished one can precede. Returns the
    /// watermark: every transaction released later starts at or after it,
    /// unless it comes late (counted in [`HttpStats::late_order`]) or a cap
    /// or the memory budget lets it out early.
    pub fn advance(&mut self, now: Ts) -> Ts {
        self.release_at(now, true);
        self.watermark()
    }

    fn release(&mut self, ts: Ts) {
        self.release_at(ts, false);
    }

    /// What can be released in order: everything that started before the
    /// earliest unfinished transaction (one that has held the others back
    /// for `max_order_wait` no longer counts) and before the guard.
    fn watermark(&self) -> Ts {
        let guard = self.now - ORDER_GUARD;
        let lapse = self.now - self.cfg.max_order_wait;
        self.open.range((lapse, 0)..).next().map_or(guard, |(t, _)| (*t).min(guard))
    }

    /// Moves capture time on to `ts` and, when it is due (`force`, a
    /// second of capture time since the last time, many held, or the
    /// budget pressed), releases what [`HttpAnalyzer::watermark`] allows.
    #[inline]
    fn release_at(&mut self, ts: Ts, force: bool) {
        if ts > self.now {
            self.now = ts;
        }
        // Asked after every chunk of data, and nearly always nothing is
        // due: that is found here, the rest is out of line.
        if self.open_h2.is_empty() && !self.release_is_due(force, self.cfg.budget.pressed()) {
            return;
        }
        self.release_due(force);
    }

    /// Whether finding what to release is due: asked (`force`), a second
    /// of capture time since the last time, many held, or the budget
    /// `pressed`. (Finding it costs a look at the ordering buffer.)
    fn release_is_due(&self, force: bool, pressed: bool) -> bool {
        force
            || self.now >= self.last_release + Dur::from_secs(1)
            || self.order.len() >= self.cfg.max_held.clamp(1, 4096)
            || self.order.bytes() > self.cfg.max_held_bytes
            || pressed
    }

    /// [`HttpAnalyzer::release_at`] when something may be due.
    #[inline(never)]
    fn release_due(&mut self, force: bool) {
        // The earliest unfinished transaction holds the others back, for
        // `max_order_wait` at most.
        let lapse = self.now - self.cfg.max_order_wait;
        // An HTTP/2 connection whose earliest open stream lapsed is keyed
        // by the next one (each pass moves its key past the lapse, or
        // takes it out).
        while let Some(&(t, id)) = self.open_h2.first()
            && t < lapse
        {
            self.reindex(id);
            if self.open_h2.first() == Some(&(t, id)) {
                // Not re-keyed (no longer HTTP/2): it stays among `open`.
                self.open_h2.remove(&(t, id));
            }
        }
        let cap = self.cfg.max_held.max(1);
        let cap_bytes = self.cfg.max_held_bytes;
        let pressed = self.cfg.budget.pressed();
        if !self.release_is_due(force, pressed) {
            return;
        }
        self.last_release = self.now;
        let watermark = self.watermark();
        // Handed to the sink one by one, in their boxes (no list of them
        // on the way).
        let sink = &mut self.sink;
        self.order.release(watermark, |tx| sink.on_boxed(tx));
        // A connection that stays open with a request unanswered holds the
        // watermark back; memory must not grow with the capture for it.
        if self.order.len() > cap || self.order.bytes() > cap_bytes {
            let early = self.order.release_oldest(cap / 2, cap_bytes / 2);
            self.stats.held_cap_releases += early.len() as u64;
            for tx in early {
                self.sink.on_boxed(tx);
            }
        }
        // The memory budget is nearly full: what is held for ordering goes
        // out now (out of order if need be) until a quarter is free again.
        if pressed && self.order.len() > 0 {
            let budget = self.cfg.budget.clone();
            let early = self.order.release_while(|| !budget.relieved());
            if !early.is_empty() {
                budget.refused(Holder::Ordering);
                self.stats.budget_releases += early.len() as u64;
            }
            for tx in early {
                self.sink.on_boxed(tx);
            }
        }
    }
}

/// Keeps `open` (and `open_h2`) in step with connection `id`'s earliest
/// unfinished transaction (HTTP/2: its earliest open stream that started
/// at or after `lapse`), as `entry` has it now.
fn reindex(
    open: &mut BTreeSet<(Ts, ConnId)>,
    open_h2: &mut BTreeSet<(Ts, ConnId)>,
    lapse: Ts,
    id: ConnId,
    entry: &mut ConnEntry,
) {
    let (c, indexed, r) = entry;
    let h2 = route::h2_earliest(r, lapse);
    let now = h2.unwrap_or_else(|| c.earliest_open());
    if now == *indexed {
        return;
    }
    if let Some(t) = std::mem::replace(indexed, now) {
        open.remove(&(t, id));
        open_h2.remove(&(t, id));
    }
    if let Some(t) = now {
        open.insert((t, id));
        if h2.is_some() {
            open_h2.insert((t, id));
        }
    }
}

impl<S: TxSink> StreamSink for HttpAnalyzer<S> {
    fn on_open(&mut self, meta: &ConnMeta) {
        self.stats.connections += 1;
        let entry = Box::new((conn::ConnHttp::new(meta, &self.cfg), None, route::Route::Unknown));
        if let Some(old) = self.conns.insert(meta.id, entry)
            && let (_, Some(t), _) = *old
        {
            self.open.remove(&(t, meta.id));
            self.open_h2.remove(&(t, meta.id));
        }
    }

    fn on_data(&mut self, chunk: &DataChunk<'_>) {
        let Some(e) = self.conns.get_mut(&chunk.conn) else { return };
        let (c, _, r) = &mut **e;
        // Most chunks of a large body: nothing finishes, nothing starts,
        // what is open stays open since the same time (its place in `open`
        // stands); only the time moves on.
        if self.body_shortcut && matches!(r, route::Route::Http1) && c.body_data(chunk) {
            self.release(chunk.last_ts);
            return;
        }
        // The list is the analyzer's, kept from chunk to chunk rather than
        // made for each.
        let mut done = std::mem::take(&mut self.done);
        // One look at the first client bytes; plaintext HTTP/1 goes on as
        // before.
        if matches!(r, route::Route::Http1)
            || !route::data(r, c, chunk, &self.cfg, &mut self.stats, &mut self.tls, &mut done)
        {
            done.clear();
            c.data(chunk, &self.cfg, &mut self.stats, &mut done);
            if let Some(up) = c.take_h2c() {
                let meta = c.meta().clone();
                route::upgrade_h2c(r, up, &meta, &self.cfg, &mut done);
            }
        }
        route::label_tls(r, &mut done);
        c.label_after_rst(&mut done);
        // The connection in hand, not looked up again.
        reindex(&mut self.open, &mut self.open_h2, self.now - self.cfg.max_order_wait, chunk.conn, e);
        self.emit(done.drain(..));
        if done.capacity() <= KEPT_DONE {
            self.done = done;
        }
        self.release(chunk.last_ts);
    }

    fn on_gap(&mut self, gap: &Gap) {
        let Some(e) = self.conns.get_mut(&gap.conn) else { return };
        let (c, _, r) = &mut **e;
        let mut done = Vec::new();
        if !route::gap(r, gap, &self.cfg, &mut done) {
            done = c.gap(gap, &self.cfg, &mut self.stats);
        }
        route::label_tls(r, &mut done);
        c.label_after_rst(&mut done);
        self.reindex(gap.conn);
        self.emit(done);
        self.release(gap.ts);
    }

    fn on_retransmission(&mut self, r: &crate::tcp::Retransmission) {
        // (Offsets of TLS connections are not the plaintext's; the
        // retransmission's time is what `ConnHttp` reads.)
        if let Some(e) = self.conns.get_mut(&r.conn) {
            e.0.retransmission(r);
        }
    }

    fn on_half_close(&mut self, hc: &HalfClose) {
        let Some(e) = self.conns.get_mut(&hc.conn) else { return };
        let (c, _, r) = &mut **e;
        if !route::half_close_is_http1(r) {
            return;
        }
        let mut done = c.half_close(hc, &self.cfg, &mut self.stats);
        route::label_tls(r, &mut done);
        c.label_after_rst(&mut done);
        self.reindex(hc.conn);
        self.emit(done);
        self.release(hc.ts);
    }

    fn on_close(&mut self, close: &Close) {
        let Some(e) = self.conns.remove(&close.conn) else { return };
        let (mut c, indexed, mut r) = *e;
        if let Some(t) = indexed {
            self.open.remove(&(t, close.conn));
            self.open_h2.remove(&(t, close.conn));
        }
        let mut done = Vec::new();
        let (closed, end) = route::close(&mut r, &mut c, close, &self.cfg, &mut self.stats, &mut self.tls, &mut done);
        if !closed {
            done.extend(c.close(close, &self.cfg, &mut self.stats));
        }
        route::label_tls(&r, &mut done);
        if let Some(end) = end {
            self.tls_ends.insert(close.conn, end);
        }
        c.label_after_rst(&mut done);
        self.pairing_steps += c.pairing_steps();
        self.emit(done);
        self.release(close.ts);
    }

    fn on_summary(&mut self, summary: &ConnSummary) {
        // Summaries come after their close (the reassembler lets closed
        // connections linger): the TLS end waits for it, then for
        // `take_tls_end`.
        self.last_tls_end = self.tls_ends.remove(&summary.id);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn cookies_are_split_and_trimmed_as_text_whether_borrowed_or_not() {
        use super::Headers;
        use std::borrow::Cow;
        // What `cookies` gave when it made two strings a cookie: the part
        // as lossy text, trimmed, split at its first `=`, each side trimmed.
        fn owned(h: &Headers) -> Vec<(String, String)> {
            let mut out = Vec::new();
            for v in h.get_all("cookie") {
                for part in v.split(|b| *b == b';') {
                    let part = crate::text::lossy(part);
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
        let fields: [&[u8]; 6] = [
            b"sid=abc; theme = dark ;;lonely; a=b=c",
            b" =v; k= ; \xc2\xa0nb\xc2\xa0=\xc2\xa0sp\xc2\xa0",
            b"bad\xff=\xfe\xfdv; ok=1; cut\xe2\x82=x",
            b"",
            b";;; ",
            b"=; ==; x",
        ];
        let mut all = Headers::default();
        for (i, f) in fields.iter().enumerate() {
            let one = Headers::from_pairs([(&b"Cookie"[..], *f)]);
            let got: Vec<(String, String)> = one.cookies().into_iter().map(|(k, v)| (k.into(), v.into())).collect();
            assert_eq!(got, owned(&one), "field {i}");
            all.push(if i % 2 == 0 { b"cookie" } else { b"COOKIE" }, f);
        }
        let got: Vec<(String, String)> = all.cookies().into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        assert_eq!(got, owned(&all));
        assert_eq!(got.first(), Some(&("sid".to_string(), "abc".to_string())));
        assert!(got.contains(&("nb".to_string(), "sp".to_string())), "{got:?}");
        // UTF-8 parts are not copied.
        assert!(matches!(all.cookies().first(), Some((Cow::Borrowed(_), Cow::Borrowed(_)))));
    }

    #[test]
    fn anomaly_names_are_their_serialized_names() {
        for a in Anomaly::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str(), "{a:?}");
        }
    }
    use super::*;
    use crate::tcp::{CloseHow, Direction, GapReason, RoleSource};

    /// One thing that happens on a connection.
    #[derive(Clone, Copy)]
    enum Step<'a> {
        /// Client bytes.
        C(&'a [u8]),
        /// Server bytes.
        S(&'a [u8]),
        /// Client bytes missing.
        CGap(u64),
        /// Server bytes missing.
        SGap(u64),
        /// The client sends FIN.
        CFin,
        /// The server sends FIN.
        SFin,
        /// Capture time moves on (ms).
        Wait(i64),
        /// The connection ends.
        End(CloseHow),
        /// A RST came that the connection outlived: later bytes come after
        /// it.
        RstIgnored,
    }
    use Step::*;

    fn meta(roles: RoleSource) -> ConnMeta {
        ConnMeta {
            id: 7,
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            start: Ts(0),
            first_frame: 1,
            handshake: None,
            roles,
            vlan: None,
        }
    }

    /// Runs steps through an analyzer; the connection ends with a FIN
    /// exchange unless a step ends it.
    fn run_with(cfg: HttpConfig, roles: RoleSource, steps: &[Step<'_>]) -> Vec<HttpTransaction> {
        let mut a = HttpAnalyzer::new(cfg, Vec::new());
        drive(&mut a, roles, steps);
        a.finish().0
    }

    #[test]
    fn bodies_kept_for_a_store_are_what_a_replay_renders() {
        let body = vec![b'x'; 5000];
        let answer = |ct: &str| {
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: 5000\r\n\r\n").into_bytes();
            r.extend_from_slice(&body);
            r
        };
        let types = ["text/html", "image/png", "text/css", "application/octet-stream", "video/mp4"];
        let answers: Vec<Vec<u8>> = types.iter().map(|ct| answer(ct)).collect();
        let mut steps = Vec::new();
        for a in &answers {
            steps.push(C(GET_A));
            steps.push(S(a));
        }
        let kept = |cfg: HttpConfig| -> Vec<usize> {
            run_with(cfg, RoleSource::Syn, &steps).iter().map(|t| t.response_body.kept.len()).collect()
        };
        // By default only what a failure rule reads.
        assert_eq!(kept(HttpConfig::default()), [5000, 0, 0, 0, 0]);
        // For a store: what a replay renders, and the first KiB of the rest.
        let store = HttpConfig { keep_every_body: true, ..HttpConfig::default() };
        assert_eq!(kept(store.clone()), [5000, 5000, 5000, 1024, 1024]);
        // Dropped again as the transactions leave: as by default.
        let mut a = HttpAnalyzer::new(store, Vec::new());
        a.set_tap(Box::new(|t: &mut HttpTransaction| t.drop_unread_bodies()));
        drive(&mut a, RoleSource::Syn, &steps);
        let after: Vec<usize> = a.finish().0.iter().map(|t| t.response_body.kept.len()).collect();
        assert_eq!(after, [5000, 0, 0, 0, 0]);
    }

    fn drive(a: &mut HttpAnalyzer<Vec<HttpTransaction>>, roles: RoleSource, steps: &[Step<'_>]) {
        a.on_open(&meta(roles));
        let (mut off, mut t, mut frame) = ([0u64; 2], 1_000_000i64, 1u64);
        let mut ended = false;
        let mut after_rst = false;
        for s in steps {
            // Each step is a millisecond after the one before (a wait, its
            // own length).
            if !matches!(s, Wait(_)) {
                t += 1_000_000;
            }
            frame += 1;
            match *s {
                C(b) | S(b) => {
                    let (dir, i) =
                        if matches!(s, C(_)) { (Direction::ClientToServer, 0) } else { (Direction::ServerToClient, 1) };
                    a.on_data(&DataChunk {
                        conn: 7,
                        dir,
                        offset: off[i],
                        bytes: b,
                        first_ts: Ts(t),
                        last_ts: Ts(t),
                        first_frame: frame,
                        last_frame: frame,
                        peer_ack: Some(off[1 - i]),
                        after_rst,
                    });
                    off[i] += b.len() as u64;
                }
                CGap(n) | SGap(n) => {
                    let (dir, i) = if matches!(s, CGap(_)) {
                        (Direction::ClientToServer, 0)
                    } else {
                        (Direction::ServerToClient, 1)
                    };
                    a.on_gap(&Gap { conn: 7, dir, offset: off[i], len: n, ts: Ts(t), reason: GapReason::AckedUnseen });
                    off[i] += n;
                }
                CFin => a.on_half_close(&HalfClose { conn: 7, dir: Direction::ClientToServer, ts: Ts(t), frame }),
                SFin => a.on_half_close(&HalfClose { conn: 7, dir: Direction::ServerToClient, ts: Ts(t), frame }),
                Wait(ms) => t += ms * 1_000_000,
                RstIgnored => after_rst = true,
                End(how) => {
                    a.on_close(&Close { conn: 7, ts: Ts(t), how });
                    ended = true;
                }
            }
        }
        if !ended {
            a.on_close(&Close { conn: 7, ts: Ts(t + 1), how: CloseHow::Fin { first: Direction::ServerToClient } });
        }
    }

    fn run(steps: &[Step<'_>]) -> Vec<HttpTransaction> {
        run_with(HttpConfig::default(), RoleSource::Syn, steps)
    }

    /// Runs steps; returns the transactions, the counters, and the queued
    /// items looked at while pairing.
    fn run_counted(cfg: HttpConfig, steps: &[Step<'_>]) -> (Vec<HttpTransaction>, HttpStats, u64) {
        let mut a = HttpAnalyzer::new(cfg, Vec::new());
        drive(&mut a, RoleSource::Syn, steps);
        let pairing = a.pairing_steps;
        let (txs, stats) = a.finish();
        (txs, stats, pairing)
    }

    /// A compact view of a transaction for assertions.
    fn view(tx: &HttpTransaction) -> (String, String, Option<u16>, u64, Outcome) {
        let req = tx.request.as_ref();
        (
            req.map(|r| r.method.clone()).unwrap_or_default(),
            req.map(|r| r.uri_text()).unwrap_or_default(),
            tx.response.as_ref().map(|r| r.status),
            tx.response_body.decoded_len,
            tx.outcome,
        )
    }

    fn views(txs: &[HttpTransaction]) -> Vec<(String, String, Option<u16>, u64, Outcome)> {
        txs.iter().map(view).collect()
    }

    fn v(m: &str, u: &str, s: Option<u16>, len: u64, o: Outcome) -> (String, String, Option<u16>, u64, Outcome) {
        (m.into(), u.into(), s, len, o)
    }

    #[test]
    fn h2c_by_prior_knowledge_becomes_transactions_per_stream() {
        // The preface, then HEADERS (END_STREAM | END_HEADERS) on stream 1:
        // GET http://a/ (static entries 2, 6, 4; :authority "a" added to the
        // table), and on stream 3 the same with "a" from the table (62).
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        client.extend_from_slice(&[0, 0, 6, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 1, b'a']);
        client.extend_from_slice(&[0, 0, 4, 1, 5, 0, 0, 0, 3, 0x82, 0x86, 0x84, 0xbe]);
        // Stream 1: HEADERS :status 404 (static 13), DATA "no!" with
        // END_STREAM. Stream 3: RST_STREAM REFUSED_STREAM (7).
        let answer = [0, 0, 1, 1, 4, 0, 0, 0, 1, 0x8d, 0, 0, 3, 0, 1, 0, 0, 0, 1, b'n', b'o', b'!'];
        let refusal = [0, 0, 4, 3, 0, 0, 0, 0, 3, 0, 0, 0, 7];
        let (txs, stats, _) = run_counted(HttpConfig::default(), &[C(&client), S(&answer), S(&refusal)]);
        assert_eq!(
            views(&txs),
            [v("GET", "/", Some(404), 3, Outcome::Complete), v("GET", "/", None, 0, Outcome::Refused)]
        );
        assert_eq!(
            txs.iter().map(|t| (t.stream, t.depth, t.tls)).collect::<Vec<_>>(),
            [(Some(1), 1, false), (Some(3), 2, false)]
        );
        assert_eq!(txs[0].version_text(), Some("2"));
        // :authority is the Host the records and rules read.
        assert_eq!(txs[1].request.as_ref().and_then(|r| r.host()).as_deref(), Some("a"));
        assert_eq!(
            (stats.h2.connections, stats.h2.cleartext, stats.h2.streams, stats.refused, stats.tls.connections),
            (1, 1, 2, 1, 0)
        );
        // A client that is not HTTP/2 stays with the HTTP/1 parser.
        let (txs, stats, _) =
            run_counted(HttpConfig::default(), &[C(GET_A), S(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
        assert_eq!((txs.len(), txs[0].stream, stats.h2.connections), (1, None, 0));
    }

    #[test]
    fn h2c_by_upgrade_goes_on_as_http2_from_the_101() {
        // An HTTP/1.1 exchange, then a request asking for h2c.
        let upgrade = b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                        Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        // The 101 and, in the same segment, the server's SETTINGS and the
        // answer to the upgrading request on stream 1: HEADERS :status 200
        // (static 8), DATA "ok" with END_STREAM.
        let mut switched = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
        switched.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        switched.extend_from_slice(&[0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88]);
        switched.extend_from_slice(&[0, 0, 2, 0, 1, 0, 0, 0, 1, b'o', b'k']);
        // The client's preface and SETTINGS, then stream 3: GET /b on a
        // (:path and :authority literal, indexed names 4 and 1).
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        client.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        client.extend_from_slice(&[0, 0, 9, 1, 5, 0, 0, 0, 3, 0x82, 0x86, 0x44, 2, b'/', b'b', 0x41, 1, b'a']);
        // Stream 3: HEADERS :status 404 (static 13), DATA "no" END_STREAM.
        let answer = [0, 0, 1, 1, 4, 0, 0, 0, 3, 0x8d, 0, 0, 2, 0, 1, 0, 0, 0, 3, b'n', b'o'];
        let (txs, stats, _) =
            run_counted(HttpConfig::default(), &[C(GET_A), S(OK_5), C(upgrade), S(&switched), C(&client), S(&answer)]);
        assert_eq!(
            views(&txs),
            [
                v("GET", "/a", Some(200), 5, Outcome::Complete),
                v("GET", "/up", Some(200), 2, Outcome::Complete),
                v("GET", "/b", Some(404), 2, Outcome::Complete),
            ]
        );
        // The upgrading request is stream 1 and keeps its place in the
        // connection; the 101 is not a transaction of its own.
        assert_eq!(
            txs.iter().map(|t| (t.stream, t.depth, t.version_text())).collect::<Vec<_>>(),
            [(None, 1, Some("1.1")), (Some(1), 2, Some("2")), (Some(3), 3, Some("2"))]
        );
        assert_eq!(txs[2].request.as_ref().and_then(|r| r.host()).as_deref(), Some("a"));
        assert_eq!((stats.tunnels, stats.h2.connections, stats.h2.streams), (0, 1, 2));
        // An Upgrade to something else is still a tunnel.
        let ws = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let (txs, stats, _) = run_counted(
            HttpConfig::default(),
            &[C(ws), S(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi")],
        );
        assert_eq!((txs.len(), txs[0].stream, stats.tunnels, stats.h2.connections), (1, None, 1, 0));
        assert!(txs[0].anomalies.contains(&Anomaly::Tunnel));
    }

    /// `bytes` at `offset` of one direction of connection `conn`, all at
    /// `at`, in frame 1.
    fn chunk_at(conn: u64, dir: Direction, offset: u64, bytes: &[u8], at: Ts) -> DataChunk<'_> {
        DataChunk {
            conn,
            dir,
            offset,
            bytes,
            first_ts: at,
            last_ts: at,
            first_frame: 1,
            last_frame: 1,
            peer_ack: None,
            after_rst: false,
        }
    }

    /// A request left unanswered holds later transactions back for
    /// `max_order_wait` of capture time, not for as long as its connection
    /// stays open: after that they go on in order, it comes out late when
    /// its connection ends, and the lapse is counted.
    #[test]
    fn an_unanswered_request_holds_the_order_for_the_wait_bound_only() {
        let secs = |s: i64| Ts(s * 1_000_000_000);
        let cfg = HttpConfig { max_order_wait: Dur::from_secs(60), ..HttpConfig::default() };
        let mut a = HttpAnalyzer::new(cfg, Vec::new());
        // Connection 7 asks at 1 s and is never answered.
        a.on_open(&ConnMeta { start: secs(1), ..meta(RoleSource::Syn) });
        a.on_data(&chunk_at(7, Direction::ClientToServer, 0, GET_A, secs(1)));
        // Connection 8 gets an answer every 10 s.
        a.on_open(&ConnMeta { id: 8, client: "10.0.0.1:40001".parse().unwrap(), ..meta(RoleSource::Syn) });
        let mut off = [0u64; 2];
        let mut released = Vec::new();
        for i in 0..30i64 {
            let at = secs(2 + 10 * i);
            a.on_data(&chunk_at(8, Direction::ClientToServer, off[0], GET_B, at));
            a.on_data(&chunk_at(8, Direction::ServerToClient, off[1], OK_5, at + Dur::from_millis(5)));
            (off[0], off[1]) = (off[0] + GET_B.len() as u64, off[1] + OK_5.len() as u64);
            a.advance(at + Dur::from_millis(10));
            released.push((at, a.sink_mut().len()));
        }
        // Until 61 s nothing goes on (all wait behind the request of 1 s);
        // from then on, what started 10 s (the guard for late bytes) before
        // each answer has gone on.
        for (at, n) in &released {
            let expect = if *at < secs(62) { 0 } else { ((at.0 - secs(10).0 - secs(2).0) / secs(10).0 + 1) as usize };
            assert_eq!(*n, expect, "at {at:?}");
        }
        a.on_close(&Close { conn: 7, ts: secs(400), how: CloseHow::Fin { first: Direction::ClientToServer } });
        a.on_close(&Close { conn: 8, ts: secs(400), how: CloseHow::Fin { first: Direction::ServerToClient } });
        let (txs, stats) = a.finish();
        assert_eq!(txs.len(), 31);
        // The unanswered one comes after the 29 that had gone on, all of
        // which started later, and before the two still held.
        let (_, gone) = released[29];
        assert_eq!(gone, 29);
        assert_eq!((txs[gone].conn, txs[gone].response.is_none()), (7, true));
        let others: Vec<&HttpTransaction> = txs.iter().filter(|t| t.conn == 8).collect();
        assert!(others.iter().all(|t| t.outcome == Outcome::Complete && t.timing.start() > txs[gone].timing.start()));
        assert!(others.windows(2).all(|w| w[0].timing.start() < w[1].timing.start()));
        assert_eq!((stats.order_wait_lapses, stats.late_order, stats.held_cap_releases), (1, 1, 0));
        // Without the bound, everything waits for it.
        let cfg = HttpConfig { max_order_wait: Dur::from_secs(100_000), ..HttpConfig::default() };
        let mut a = HttpAnalyzer::new(cfg, Vec::new());
        a.on_open(&ConnMeta { start: secs(1), ..meta(RoleSource::Syn) });
        a.on_data(&chunk_at(7, Direction::ClientToServer, 0, GET_A, secs(1)));
        a.on_open(&ConnMeta { id: 8, client: "10.0.0.1:40001".parse().unwrap(), ..meta(RoleSource::Syn) });
        a.on_data(&chunk_at(8, Direction::ClientToServer, 0, GET_B, secs(2)));
        a.on_data(&chunk_at(8, Direction::ServerToClient, 0, OK_5, secs(2)));
        a.advance(secs(3_000));
        assert!(a.sink_mut().is_empty());
    }

    /// An HTTP/2 connection with a long-lived stream (a server push
    /// channel, a gRPC stream) and short ones beside it: once the long one
    /// has held the order for `max_order_wait`, the short ones still hold
    /// it while they are open, so nothing is written before them.
    #[test]
    fn a_long_lived_http2_stream_lapses_alone() {
        let ms = |m: i64| Ts(m * 1_000_000);
        let cfg = HttpConfig { max_order_wait: Dur::from_secs(60), ..HttpConfig::default() };
        let mut a = HttpAnalyzer::new(cfg, Vec::new());
        // Every event: (time, connection, direction, bytes, the short
        // stream it ends).
        type Event = (Ts, u64, Direction, Vec<u8>, Option<i64>);
        let mut ev: Vec<Event> = Vec::new();
        let (c2s, s2c) = (Direction::ClientToServer, Direction::ServerToClient);
        // Connection 7, HTTP/2: stream 1 asks at 1 s and its answer, begun
        // at once, ends at 300 s.
        let mut first = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        first.extend_from_slice(&[0, 0, 6, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 1, b'a']);
        ev.push((ms(1_000), 7, c2s, first, None));
        ev.push((ms(1_100), 7, s2c, vec![0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88], None));
        ev.push((ms(300_000), 7, s2c, vec![0, 0, 2, 0, 1, 0, 0, 0, 1, b'o', b'k'], None));
        // Stream 3 + 2i asks at 2 + 10i s; each answer takes 20 s (its head
        // at once, its end 20 s later). Connection 8, HTTP/1.1, has a quick
        // exchange 3 s after each ask.
        for i in 0..25u8 {
            let (sid, at) = (3 + 2 * i, 2_000 + 10_000 * i64::from(i));
            ev.push((ms(at), 7, c2s, vec![0, 0, 4, 1, 5, 0, 0, 0, sid, 0x82, 0x86, 0x84, 0xbe], None));
            ev.push((ms(at + 100), 7, s2c, vec![0, 0, 1, 1, 4, 0, 0, 0, sid, 0x88], None));
            ev.push((ms(at + 20_000), 7, s2c, vec![0, 0, 2, 0, 1, 0, 0, 0, sid, b'o', b'k'], Some(i64::from(i))));
            ev.push((ms(at + 3_000), 8, c2s, GET_B.to_vec(), None));
            ev.push((ms(at + 3_005), 8, s2c, OK_5.to_vec(), None));
        }
        ev.sort_by_key(|e| e.0);
        a.on_open(&ConnMeta { start: ms(1_000), ..meta(RoleSource::Syn) });
        a.on_open(&ConnMeta { id: 8, client: "10.0.0.1:40001".parse().unwrap(), ..meta(RoleSource::Syn) });
        let mut off = std::collections::HashMap::new();
        for (at, conn, dir, bytes, ends) in &ev {
            let o = off.entry((*conn, *dir == c2s)).or_insert(0u64);
            a.on_data(&chunk_at(*conn, *dir, *o, bytes, *at));
            *o += bytes.len() as u64;
            a.advance(*at);
            // Once stream 1 has held the order for 60 s (from the fifth
            // short stream's end), the end of short stream i lets out
            // everything that began before the next one: short streams 0
            // to i and the exchanges after them (the next short stream,
            // open, holds the rest back).
            if let Some(i) = ends {
                let expect = if *i >= 4 { 2 * (*i as usize + 1) } else { 0 };
                assert_eq!(a.sink_mut().len(), expect, "after short stream {i}");
            }
        }
        a.on_close(&Close { conn: 7, ts: ms(301_000), how: CloseHow::Fin { first: c2s } });
        a.on_close(&Close { conn: 8, ts: ms(301_000), how: CloseHow::Fin { first: c2s } });
        let (txs, stats) = a.finish();
        assert_eq!(txs.len(), 1 + 25 + 25);
        assert!(txs.iter().all(|t| t.outcome == Outcome::Complete));
        // Only the long stream comes out of order (after everything that
        // began later and ended before it).
        assert_eq!((stats.order_wait_lapses, stats.late_order, stats.held_cap_releases), (1, 1, 0));
        let late: Vec<Option<u32>> =
            txs.windows(2).filter(|w| w[1].timing.start() < w[0].timing.start()).map(|w| w[1].stream).collect();
        assert_eq!(late, [Some(1)]);
        // The short streams are written in the order they began.
        let short: Vec<Ts> = txs.iter().filter(|t| t.stream.is_some_and(|s| s > 1)).map(|t| t.timing.start()).collect();
        assert_eq!(short.len(), 25);
        assert!(short.windows(2).all(|w| w[0] < w[1]));
    }

    const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const OK_CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0A\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";

    #[test]
    fn keep_alive_content_length_and_chunked() {
        let t = run(&[C(GET_A), S(OK_5), C(GET_B), S(OK_CHUNKED)]);
        assert_eq!(
            views(&t),
            vec![v("GET", "/a", Some(200), 5, Outcome::Complete), v("GET", "/b", Some(200), 15, Outcome::Complete)]
        );
        assert_eq!(t[1].depth, 2);
        assert_eq!(t[1].response_body.kept, b"hello0123456789");
    }

    /// Every way of cutting the exchange in two pieces gives the same
    /// result: partial input is never an error.
    #[test]
    fn every_split_point_gives_the_same_transactions() {
        let client = [GET_A, GET_B].concat();
        let server = [OK_5, OK_CHUNKED].concat();
        let whole = views(&run(&[C(&client), S(&server)]));
        assert_eq!(whole.len(), 2);
        for i in 1..client.len() {
            let t = run(&[C(&client[..i]), C(&client[i..]), S(&server)]);
            assert_eq!(views(&t), whole, "client split at {i}");
        }
        for i in 1..server.len() {
            let t = run(&[C(&client), S(&server[..i]), S(&server[i..])]);
            assert_eq!(views(&t), whole, "server split at {i}");
        }
        // Byte by byte.
        let mut steps: Vec<Step<'_>> = client.chunks(1).map(C).collect();
        steps.extend(server.chunks(1).map(S));
        assert_eq!(views(&run(&steps)), whole);
    }

    #[test]
    fn every_prefix_is_partial_then_capture_gap_at_the_end() {
        // A response cut anywhere: the transaction is unfinished, never
        // malformed, and the capture ending makes it a capture gap.
        for i in 0..OK_CHUNKED.len() {
            let t = run(&[C(GET_A), S(&OK_CHUNKED[..i]), End(CloseHow::EndOfCapture)]);
            assert_eq!(t.len(), 1, "prefix {i}");
            assert_eq!(t[0].outcome, Outcome::CaptureGap, "prefix {i}");
            assert!(t[0].anomalies.contains(&Anomaly::CaptureEnded), "prefix {i}");
        }
    }

    #[test]
    fn pipelining_pairs_in_order() {
        let t = run(&[C(&[GET_A, GET_B, GET_A].concat()), S(&[OK_5, OK_CHUNKED, OK_5].concat())]);
        assert_eq!(
            views(&t),
            vec![
                v("GET", "/a", Some(200), 5, Outcome::Complete),
                v("GET", "/b", Some(200), 15, Outcome::Complete),
                v("GET", "/a", Some(200), 5, Outcome::Complete),
            ]
        );
        assert!(t[1].anomalies.contains(&Anomaly::Pipelined));
    }

    #[test]
    fn head_204_304_have_no_body() {
        let t = run(&[
            C(b"HEAD /h HTTP/1.1\r\n\r\n"),
            S(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
            C(GET_A),
            S(b"HTTP/1.1 204 No Content\r\n\r\n"),
            C(GET_B),
            S(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"),
            C(GET_A),
            S(OK_5),
        ]);
        assert_eq!(
            views(&t),
            vec![
                v("HEAD", "/h", Some(200), 0, Outcome::Complete),
                v("GET", "/a", Some(204), 0, Outcome::Complete),
                v("GET", "/b", Some(304), 0, Outcome::Complete),
                v("GET", "/a", Some(200), 5, Outcome::Complete),
            ]
        );
    }

    #[test]
    fn continue_100_is_interim_and_timing_is_the_final_answer() {
        let t = run(&[
            C(b"POST /up HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"),
            S(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Wait(50),
            C(b"data"),
            Wait(100),
            S(OK_5),
        ]);
        assert_eq!(views(&t), vec![v("POST", "/up", Some(200), 5, Outcome::Complete)]);
        assert_eq!(t[0].interim, vec![100]);
        assert_eq!(t[0].request_body.decoded_len, 4);
        let ttfb = t[0].timing.ttfb().unwrap();
        assert_eq!(ttfb, Dur::from_millis(101), "from the body's end to the final answer");
    }

    #[test]
    fn close_delimited_body_ends_at_the_server_fin() {
        let t = run(&[C(b"GET /old HTTP/1.0\r\n\r\n"), S(b"HTTP/1.0 200 OK\r\n\r\nabc"), S(b"defg"), SFin, CFin]);
        assert_eq!(views(&t), vec![v("GET", "/old", Some(200), 7, Outcome::Complete)]);
    }

    #[test]
    fn gap_in_a_body_of_known_length_is_skipped() {
        let t = run(&[
            C(GET_A),
            S(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"),
            SGap(5),
            S(b"hij"),
            C(GET_B),
            S(OK_5),
        ]);
        assert_eq!(
            views(&t),
            vec![v("GET", "/a", Some(200), 10, Outcome::CaptureGap), v("GET", "/b", Some(200), 5, Outcome::Complete)]
        );
        assert_eq!(t[0].missing_bytes, 5);
        assert!(t[0].anomalies.contains(&Anomaly::ResponseGap));
    }

    #[test]
    fn gap_in_a_head_resynchronises_at_the_next_message() {
        // The first answer's head is cut; the next answer still pairs with
        // its own request.
        let t = run(&[C(GET_A), S(b"HTTP/1.1 200 OK\r\nContent-Le"), SGap(40), S(b"tail of body"), C(GET_B), S(OK_5)]);
        assert_eq!(views(&t)[1], v("GET", "/b", Some(200), 5, Outcome::Complete));
        assert_eq!(t[0].outcome, Outcome::CaptureGap);
        assert_eq!(t[0].response, None);
        // A request head cut by a gap: what the request line said is kept,
        // and its answer pairs with it.
        let t = run(&[C(b"GET /partial HTTP/1.1\r\nHo"), CGap(30), C(GET_B), S(OK_5), S(OK_5)]);
        assert_eq!(views(&t)[0], v("GET", "/partial", Some(200), 5, Outcome::CaptureGap));
        assert!(t[0].anomalies.contains(&Anomaly::PartialRequestHead));
        assert_eq!(views(&t)[1], v("GET", "/b", Some(200), 5, Outcome::Complete));
    }

    #[test]
    fn gap_in_chunk_framing_ends_the_body_and_finds_the_next_answer() {
        let t = run(&[
            C(GET_A),
            S(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
            SGap(2),
            S(b"\r\n3"),
            SGap(5),
            S(b"\r\n0\r\n\r\n"),
            C(GET_B),
            S(OK_5),
        ]);
        let vs = views(&t);
        assert_eq!(vs[0].4, Outcome::CaptureGap);
        assert_eq!(t[0].missing_bytes, 7);
        assert_eq!(vs[1], v("GET", "/b", Some(200), 5, Outcome::Complete));
    }

    #[test]
    fn whole_answer_lost_does_not_shift_the_pairing() {
        // /a's answer is entirely missing; /b was sent after the client had
        // received it (its acknowledgment says so).
        let t = run(&[C(GET_A), SGap(OK_5.len() as u64), C(GET_B), S(OK_5)]);
        assert_eq!(
            views(&t),
            vec![v("GET", "/a", None, 0, Outcome::CaptureGap), v("GET", "/b", Some(200), 5, Outcome::Complete)]
        );
        assert_eq!(t[0].missing_bytes, OK_5.len() as u64);
        // A whole request lost: its answer comes back without a request.
        let t = run(&[CGap(GET_A.len() as u64), S(OK_5), C(GET_B), S(OK_CHUNKED)]);
        assert_eq!(
            views(&t),
            vec![v("", "", Some(200), 5, Outcome::CaptureGap), v("GET", "/b", Some(200), 15, Outcome::Complete)]
        );
        assert_eq!(t[0].missing_bytes, GET_A.len() as u64);
        assert!(t[0].anomalies.contains(&Anomaly::NoRequest));
    }

    #[test]
    fn garbage_between_messages_is_skipped() {
        let t = run(&[C(GET_A), S(OK_5), S(b"\r\n\r\nJUNK junk\r\nmore junk\r\n"), C(GET_B), S(OK_5)]);
        assert_eq!(views(&t).len(), 2);
        assert_eq!(views(&t)[1], v("GET", "/b", Some(200), 5, Outcome::Complete));
        // Empty lines before a request are allowed.
        let t = run(&[C(b"\r\n\r\nGET /c HTTP/1.1\r\n\r\n"), S(OK_5)]);
        assert_eq!(views(&t), vec![v("GET", "/c", Some(200), 5, Outcome::Complete)]);
    }

    #[test]
    fn endings_decide_the_outcome() {
        // The server resets mid-answer.
        let t = run(&[
            C(GET_A),
            S(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"),
            End(CloseHow::Rst { from: Direction::ServerToClient }),
        ]);
        assert_eq!(t[0].outcome, Outcome::ServerReset);
        // The server closes early: truncated.
        let t = run(&[C(GET_A), S(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"), SFin, CFin]);
        assert_eq!(t[0].outcome, Outcome::Truncated);
        // The client gives up quickly: client abort, with the wait.
        let t = run(&[C(GET_A), Wait(3000), End(CloseHow::Rst { from: Direction::ClientToServer })]);
        assert_eq!(t[0].outcome, Outcome::ClientAbort);
        assert!(t[0].waited.unwrap() >= Dur::from_millis(3000));
        // The client times out after 30 s: no response.
        let t = run(&[C(GET_A), Wait(31_000), CFin, End(CloseHow::IdleTimeout)]);
        assert_eq!(t[0].outcome, Outcome::NoResponse);
        // The server closes without answering.
        let t = run(&[C(GET_A), SFin, CFin]);
        assert_eq!(t[0].outcome, Outcome::NoResponse);
        // The capture ends first: unknown, never blamed.
        let t = run(&[C(GET_A), End(CloseHow::EndOfCapture)]);
        assert_eq!(t[0].outcome, Outcome::CaptureGap);
        // The client aborts a download in progress.
        let t = run(&[
            C(GET_A),
            S(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"),
            CFin,
            End(CloseHow::Rst { from: Direction::ClientToServer }),
        ]);
        assert_eq!(t[0].outcome, Outcome::ClientAbort);
    }

    #[test]
    fn upgrade_and_connect_end_parsing() {
        let t = run(&[
            C(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            S(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
            C(b"\x81\x05hello"),
            S(b"\x81\x02hi"),
        ]);
        assert_eq!(views(&t), vec![v("GET", "/ws", Some(101), 0, Outcome::Complete)]);
        assert!(t[0].anomalies.contains(&Anomaly::Tunnel));
        let t = run(&[C(b"CONNECT a:443 HTTP/1.1\r\n\r\n"), S(b"HTTP/1.1 200 OK\r\n\r\n"), C(b"\x16\x03\x01 tls")]);
        assert_eq!(views(&t), vec![v("CONNECT", "a:443", Some(200), 0, Outcome::Complete)]);
    }

    #[test]
    fn http09_and_malformed_and_not_http() {
        let t = run(&[C(b"GET /old\r\n"), S(b"<html>hi</html>"), SFin, CFin]);
        assert_eq!(views(&t), vec![v("GET", "/old", Some(0), 15, Outcome::Complete)]);
        assert!(t[0].anomalies.contains(&Anomaly::Http09));
        let t =
            run(&[C(b"GET / HTTP/1.\nHost: h\n\n"), S(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad")]);
        assert_eq!(views(&t), vec![v("GET", "/", Some(400), 3, Outcome::Malformed)]);
        assert_eq!(t[0].request.as_ref().unwrap().host().as_deref(), Some("h"));
        // TLS on port 80: not HTTP, nothing made up.
        let t = run(&[C(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), S(b"\x16\x03\x03\x00\x5a")]);
        assert!(t.is_empty());
    }

    /// A request line with a method and nothing else (no target, no
    /// version) is a malformed request that keeps its method, whether or
    /// not header fields or a blank line follow before the server's 400
    /// answers it. The next request is parsed as usual.
    #[test]
    fn a_method_alone_is_a_malformed_request_with_its_method() {
        const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        for options in [&b"OPTIONS\r\n"[..], b"OPTIONS\n", b"OPTIONS\r\n\r\n", b"OPTIONS\r\nHost: x\r\n\r\n"] {
            let t = run(&[C(GET_A), S(OK_5), C(options), S(BAD_REQUEST), C(GET_B), S(OK_5)]);
            let what = String::from_utf8_lossy(options);
            assert_eq!(
                views(&t),
                vec![
                    v("GET", "/a", Some(200), 5, Outcome::Complete),
                    v("OPTIONS", "", Some(400), 0, Outcome::Malformed),
                    v("GET", "/b", Some(200), 5, Outcome::Complete),
                ],
                "{what:?}"
            );
            assert_eq!(t[1].anomalies, [Anomaly::BadHead], "{what:?}");
            assert_eq!(t[1].depth, 2);
        }
        // The first thing on a connection, with nothing after it but the
        // server's answer and its close.
        let t = run(&[C(b"OPTIONS\r\n"), S(BAD_REQUEST), SFin, CFin]);
        assert_eq!(views(&t), vec![v("OPTIONS", "", Some(400), 0, Outcome::Malformed)]);
        // Header fields but no blank line before the answer: the fields
        // that came are kept.
        let t = run(&[C(b"OPTIONS\r\nHost: x\r\n"), S(BAD_REQUEST)]);
        assert_eq!(views(&t), vec![v("OPTIONS", "", Some(400), 0, Outcome::Malformed)]);
        assert_eq!(t[0].request.as_ref().and_then(|r| r.host()).as_deref(), Some("x"));
        // No answer: the client gives up.
        let t = run(&[C(b"OPTIONS\r\n"), End(CloseHow::Rst { from: Direction::ClientToServer })]);
        assert_eq!(views(&t), vec![v("OPTIONS", "", None, 0, Outcome::Malformed)]);
    }

    /// Transactions with bytes after a RST their connection outlived say
    /// so; those that ended before it do not.
    #[test]
    fn bytes_after_an_ignored_rst_are_labelled() {
        let t = run(&[C(GET_A), S(OK_5), RstIgnored, C(GET_B), S(OK_5)]);
        assert_eq!(views(&t).len(), 2);
        assert_eq!(t[0].anomalies, []);
        assert_eq!(t[1].anomalies, [Anomaly::DataAfterRst]);
        assert_eq!(t[1].outcome, Outcome::Complete);
        // The RST while the first request waited for its answer.
        let t = run(&[C(GET_A), RstIgnored, S(OK_5), C(GET_B), CGap(3), S(OK_5)]);
        assert_eq!(t[0].anomalies, [Anomaly::DataAfterRst]);
        assert!(t.iter().all(|t| t.anomalies.contains(&Anomaly::DataAfterRst)), "{:?}", t[1].anomalies);
    }

    #[test]
    fn mid_stream_pickup_starts_at_the_next_message() {
        let t = run_with(
            HttpConfig::default(),
            RoleSource::Port,
            &[C(b"rest of some body\r\n"), S(b"lo world"), C(GET_B), S(OK_5)],
        );
        assert_eq!(views(&t), vec![v("GET", "/b", Some(200), 5, Outcome::Complete)]);
    }

    /// One segment of about 100 KB made of malformed requests (it
    /// overflowed the stack when the resynchronisation called itself once
    /// per message, on a copy of the rest): every request is a record, and
    /// those beyond `--max-pending-requests` are given up like any other.
    #[test]
    fn a_segment_of_malformed_requests_is_parsed_in_a_loop() {
        const BAD: &[u8] = b"GET / HTTP/1.1\r\n:\r\n\r\n";
        let burst = BAD.repeat(5000);
        let cfg = HttpConfig::default();
        let (t, stats, _) = run_counted(cfg.clone(), &[C(&burst)]);
        assert_eq!(t.len(), 5000);
        assert!(t.iter().all(|t| t.outcome == Outcome::Malformed && t.anomalies.contains(&Anomaly::BadHead)));
        assert_eq!(stats.malformed, 5000);
        assert_eq!(stats.pending_overflow, 5000 - cfg.max_pending as u64);
        assert_eq!(t.iter().filter(|t| t.anomalies.contains(&Anomaly::PendingOverflow)).count(), 5000 - 1024);
        // In request order, each with its own place in the connection.
        assert!(t.windows(2).all(|w| w[0].depth + 1 == w[1].depth));
    }

    /// The same on the response side, after a valid exchange.
    #[test]
    fn a_segment_of_malformed_responses_is_parsed_in_a_loop() {
        const BAD: &[u8] = b"HTTP/1.1 200 OK\r\n:\r\n\r\n";
        let burst = BAD.repeat(5000);
        let t = run(&[C(GET_A), S(OK_5), S(&burst), C(GET_B), S(OK_5)]);
        assert_eq!(views(&t)[0], v("GET", "/a", Some(200), 5, Outcome::Complete));
        // The broken answers are lost; /b waits for an answer that the
        // capture cannot tell from the garbage, and the good one after
        // the burst is its answer.
        assert_eq!(views(&t)[1], v("GET", "/b", Some(200), 5, Outcome::Complete));
        assert_eq!(t.len(), 2);
    }

    /// Pairing looks at a bounded number of queued requests per response,
    /// however many are queued: a thousand pipelined requests answered one
    /// by one cost a few steps each, not a scan of the queue each.
    #[test]
    fn pairing_work_is_bounded_per_response() {
        let n = 1000;
        let reqs = GET_A.repeat(n);
        let resps = OK_5.repeat(n);
        let (t, _, steps) = run_counted(HttpConfig::default(), &[C(&reqs), S(&resps)]);
        assert_eq!(t.len(), n);
        assert!(t.iter().all(|t| t.outcome == Outcome::Complete));
        assert!(steps <= 4 * n as u64, "{steps} steps for {n} responses");
        // Malformed requests and their answers: the queue is capped, and
        // every answer beyond what is queued is an answer without request.
        const BAD: &[u8] = b"GET / HTTP/1.1\r\n:\r\n\r\n";
        let reqs = BAD.repeat(3000);
        let resps = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".repeat(3000);
        let (t, stats, steps) = run_counted(HttpConfig::default(), &[C(&reqs), S(&resps)]);
        assert_eq!(stats.pending_overflow, 3000 - 1024);
        assert_eq!(t.iter().filter(|t| t.request.is_none()).count(), 3000 - 1024);
        assert_eq!(t.len(), 3000 + 3000 - 1024);
        assert!(steps <= 4 * 6000, "{steps} steps");
    }

    /// The shortcut for body bytes under way ([`ConnHttp::body_data`])
    /// gives what the parser's turns give: the same transactions, every
    /// field, and the same counts. Bodies of every framing (a length,
    /// chunks, the close) and encoding, requests' and answers', cut into
    /// pieces of every size, with bytes missing, a FIN, a reset, an end or
    /// the next message in the middle.
    #[test]
    fn body_bytes_under_way_give_what_the_turns_give() {
        let both = |steps: &[Step<'_>], what: &str| {
            let (txs, _, ()) =
                crate::testing::both_ways(&HttpConfig::default(), what, |a| drive(a, RoleSource::Syn, steps));
            txs.len()
        };
        let body = b"<html>0123456789abcdef</html>\n".repeat(160);
        let gz = gzip(&body);
        let answer = |head: &str, body: &[u8]| [head.as_bytes(), body].concat();
        let length = |ct: &str, extra: &str, body: &[u8]| {
            answer(
                &format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\n{extra}Content-Length: {}\r\n\r\n", body.len()),
                body,
            )
        };
        let mut chunked =
            b"HTTP/1.1 500 Oops\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in body.chunks(1500) {
            chunked.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
            chunked.extend_from_slice(part);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        let answers: Vec<(&str, Vec<u8>)> = vec![
            ("length", length("text/html", "", &body)),
            ("gzip", length("text/html", "Content-Encoding: gzip\r\n", &gz)),
            ("image", length("image/png", "", &body)),
            ("chunked", chunked),
            ("close", answer("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", &body)),
        ];
        let post =
            [format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), &body]
                .concat();
        let mut txs = 0;
        for (name, a) in &answers {
            for piece in [1, 7, 100, 1460, 4000, a.len()] {
                let pieces: Vec<&[u8]> = a.chunks(piece).collect();
                let posted: Vec<&[u8]> = post.chunks(piece).collect();
                // Whole, and a second exchange after it.
                let mut steps: Vec<Step<'_>> = vec![C(GET_A)];
                steps.extend(pieces.iter().map(|p| S(p)));
                steps.extend(posted.iter().map(|p| C(p)));
                steps.extend(pieces.iter().map(|p| S(p)));
                txs += both(&steps, &format!("{name} in pieces of {piece}"));
                // Something else in the middle of the body.
                let mid = pieces.len() / 2;
                let breaks: [(&str, Vec<Step<'_>>); 6] = [
                    ("a gap", vec![SGap(10)]),
                    ("the server's FIN", vec![SFin]),
                    ("the client's FIN", vec![CFin]),
                    ("a reset outlived", vec![RstIgnored]),
                    ("a wait", vec![Wait(400_000)]),
                    ("a reset", vec![End(CloseHow::Rst { from: Direction::ServerToClient })]),
                ];
                for (b, extra) in breaks {
                    let mut steps: Vec<Step<'_>> = vec![C(GET_A)];
                    steps.extend(pieces[..mid].iter().map(|p| S(p)));
                    steps.extend(extra);
                    steps.extend(pieces[mid..].iter().map(|p| S(p)));
                    steps.push(C(GET_A));
                    steps.extend(pieces.iter().map(|p| S(p)));
                    both(&steps, &format!("{name} in pieces of {piece}, {b} in the middle"));
                }
                // Requests sent while the body comes, then the rest of it
                // and the next answer lost: whose is the answer after the
                // gap depends on how far the parsed answers went.
                let (third, two_thirds) = (pieces.len() / 3, 2 * pieces.len() / 3);
                let rest: usize = pieces[two_thirds..].iter().map(|p| p.len()).sum();
                let mut steps: Vec<Step<'_>> = vec![C(GET_A)];
                steps.extend(pieces[..third].iter().map(|p| S(p)));
                steps.push(C(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
                steps.extend(pieces[third..two_thirds].iter().map(|p| S(p)));
                steps.push(C(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"));
                steps.push(SGap((rest + a.len()) as u64));
                steps.extend(pieces.iter().map(|p| S(p)));
                both(&steps, &format!("{name} in pieces of {piece}, answers lost"));
            }
        }
        assert!(txs > 50, "{txs} transactions");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Feeds `steps` on connection `id` of an analyzer already running.
    fn feed(a: &mut HttpAnalyzer<Vec<HttpTransaction>>, id: u64, client: &[u8], t: i64) {
        let mut m = meta(RoleSource::Syn);
        m.id = id;
        m.client = SocketAddr::from(([10, 0, 0, 1], 40000 + id as u16));
        a.on_open(&m);
        a.on_data(&DataChunk {
            conn: id,
            dir: Direction::ClientToServer,
            offset: 0,
            bytes: client,
            first_ts: Ts(t),
            last_ts: Ts(t),
            first_frame: 1,
            last_frame: 1,
            peer_ack: Some(0),
            after_rst: false,
        });
    }

    /// Small gzip request bodies that expand to 256 KiB each, never
    /// answered, on three connections: what they keep stays within the
    /// memory budget, the bodies it could not keep say so, and the budget
    /// is whole again once the transactions are gone.
    #[test]
    fn kept_bodies_of_waiting_requests_stay_within_the_budget() {
        let body = gzip(&b"a".repeat(256 << 10));
        let head = format!("POST /up HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", body.len());
        let one = [head.as_bytes(), &body].concat();
        let stream = one.repeat(200);
        let budget = Budget::new(8 << 20);
        let cfg = HttpConfig { budget: budget.clone(), ..HttpConfig::default() };
        let mut a = HttpAnalyzer::new(cfg, Vec::new());
        for id in 1..=3 {
            feed(&mut a, id, &stream, id as i64 * 1_000_000);
        }
        let r = budget.report();
        assert!(r.peak_bytes <= 8 << 20, "peak {}", r.peak_bytes);
        assert!(r.refused.get("bodies").copied().unwrap_or(0) > 0, "{r:?}");
        for id in 1..=3 {
            a.on_close(&Close { conn: id, ts: Ts(9_000_000), how: CloseHow::EndOfCapture });
        }
        let (t, stats) = a.finish();
        assert_eq!(t.len(), 600);
        let cut = t.iter().filter(|t| t.anomalies.contains(&Anomaly::MemoryBudget)).count();
        assert_eq!(stats.budget_cuts, cut as u64);
        assert!(cut > 500, "{cut} of 600 cut");
        // Every body was still counted in full.
        assert!(t.iter().all(|t| t.request_body.decoded_len == 256 << 10 || t.request_body.decode_stop.is_some()));
        let kept: usize = t.iter().map(|t| t.request_body.kept.len()).sum();
        assert!(kept <= 8 << 20);
        drop(t);
        assert_eq!(budget.used(), 0, "every charge given back");
    }

    /// Thousands of connections each holding most of a head that never
    /// ends: heads stop at the budget and are given up as malformed,
    /// labelled.
    #[test]
    fn unfinished_heads_over_many_connections_stay_within_the_budget() {
        let head = format!("GET /x HTTP/1.1\r\nX-Pad: {}", "p".repeat(60_000));
        let budget = Budget::new(16 << 20);
        let cfg = HttpConfig { budget: budget.clone(), ..HttpConfig::default() };
        let mut a = HttpAnalyzer::new(cfg, Vec::new());
        for id in 1..=1000 {
            feed(&mut a, id, head.as_bytes(), id as i64);
        }
        assert!(budget.report().peak_bytes <= 16 << 20);
        for id in 1..=1000 {
            a.on_close(&Close { conn: id, ts: Ts(9_000_000), how: CloseHow::EndOfCapture });
        }
        let (t, _) = a.finish();
        let refused = t.iter().filter(|t| t.anomalies.contains(&Anomaly::MemoryBudget)).count();
        assert!(refused > 700, "{refused}");
        assert!(
            t.iter().filter(|t| t.anomalies.contains(&Anomaly::MemoryBudget)).all(|t| t.outcome == Outcome::Malformed)
        );
        drop(t);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn gzip_body_and_head_cap() {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&b"abc".repeat(1000)).unwrap();
        let gz = e.finish().unwrap();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", gz.len());
        let t = run(&[C(GET_A), S(head.as_bytes()), S(&gz)]);
        assert_eq!(t[0].response_body.decoded_len, 3000);
        assert_eq!(t[0].response_body.wire_len, gz.len() as u64);
        // A head beyond the cap is malformed, and parsing goes on.
        let cfg = HttpConfig { max_head_bytes: 100, ..HttpConfig::default() };
        let big = format!("GET /big HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(500));
        let t = run_with(cfg, RoleSource::Syn, &[C(big.as_bytes()), C(GET_B), S(OK_5), S(OK_5)]);
        assert_eq!(t[0].outcome, Outcome::Malformed);
        assert!(t[0].anomalies.contains(&Anomaly::HeadTooLarge));
    }
}
