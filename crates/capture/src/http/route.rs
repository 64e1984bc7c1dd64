//! What a connection speaks, decided on the client's first bytes: TLS
//! (decrypted with the run's key store into HTTP/1 or HTTP/2), HTTP/2
//! with prior knowledge (the preface), or HTTP/1 (everything else,
//! parsed by `conn.rs` as before this layer existed).
//!
//! The decision costs plaintext HTTP/1 one look at the first client chunk
//! of each connection; after it, its chunks go straight to `ConnHttp`.

use std::sync::Arc;

use pov_http2::detect::{Sniff, sniff_preface};
use pov_tls::{AlertEvent, Decoder, KeyStore, Outcome as TlsOutcome, Side, TlsConn, TlsFacts, TlsSink, looks_like_tls};

use super::conn::ConnHttp;
use super::h2::H2Route;
use super::{Done, HttpConfig, HttpStats, HttpTransaction};
use crate::tcp::{Close, ConnMeta, DataChunk, Direction, Gap, GapReason};
use crate::time::Ts;

/// Server plaintext held while it is not yet known whether the client
/// speaks HTTP/1 or HTTP/2 inside TLS (the server may speak first in
/// h2: its SETTINGS); beyond, the connection is taken for HTTP/1.
const MAX_EARLY_SERVER: usize = 64 << 10;

/// What a connection speaks.
pub(super) enum Route {
    /// No client byte yet.
    Unknown,
    /// Plaintext HTTP/1 (or not HTTP: `ConnHttp` decides).
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    H2(Box<(ConnMeta, H2Route)>),
    /// TLS.
    Tls(Box<TlsRoute>),
}

/// A TLS connection and what its plaintext goes to.
pub(super) struct TlsRoute {
    meta: ConnMeta,
    tls: TlsConn,
    plain: PlainState,
}

/// Where a TLS connection's plaintext stands.
struct PlainState {
    inner: Inner,
    /// Plaintext offsets per direction (client, server).
    offsets: [u64; 2],
    /// Server plaintext before the inner protocol is known (at most
    /// [`MAX_EARLY_SERVER`] bytes).
    early: Vec<(Ts, Vec<u8>)>,
}

enum Inner {
    Undecided,
    Http1,
    H2(Box<H2Route>),
}

/// Counters of TLS connections (every one, with or without keys), by
/// outcome (pov-tls's names), and of what the layer recovered.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsStats {
    /// TLS connections (first client bytes a TLS handshake record).
    pub connections: u64,
    /// Keys found, records opened.
    pub decrypted: u64,
    /// Handshake completed, no keys for its client random.
    pub encrypted_no_keys: u64,
    /// An error alert before the handshake completed.
    pub handshake_failed: u64,
    /// Closed before the handshake completed, without an alert.
    pub incomplete: u64,
    /// Handshake completed with a suite pov does not decrypt.
    pub unsupported_suite: u64,
    /// Keys found, but no record opened with them (wrong key log).
    pub keys_mismatch: u64,
    /// TLS records without the ClientHello.
    pub no_client_hello: u64,
    /// Began like TLS, turned out not to be.
    pub not_tls: u64,
    /// Of the decrypted, those whose plaintext was HTTP/2.
    pub h2: u64,
    /// Application data bytes decrypted.
    pub plaintext_bytes: u64,
    /// Records that did not open.
    pub decrypt_failures: u64,
    /// Records lost to capture gaps (counted exactly).
    pub lost_records: u64,
    /// Losses whose record count is unknown.
    pub unknown_losses: u64,
    /// Alerts seen (in the clear, or decrypted).
    pub alerts: u64,
}

impl TlsStats {
    /// Adds another analyzer's counters.
    pub fn merge(&mut self, o: &TlsStats) {
        let TlsStats {
            connections,
            decrypted,
            encrypted_no_keys,
            handshake_failed,
            incomplete,
            unsupported_suite,
            keys_mismatch,
            no_client_hello,
            not_tls,
            h2,
            plaintext_bytes,
            decrypt_failures,
            lost_records,
            unknown_losses,
            alerts,
        } = self;
        *connections += o.connections;
        *decrypted += o.decrypted;
        *encrypted_no_keys += o.encrypted_no_keys;
        *handshake_failed += o.handshake_failed;
        *incomplete += o.incomplete;
        *unsupported_suite += o.unsupported_suite;
        *keys_mismatch += o.keys_mismatch;
        *no_client_hello += o.no_client_hello;
        *not_tls += o.not_tls;
        *h2 += o.h2;
        *plaintext_bytes += o.plaintext_bytes;
        *decrypt_failures += o.decrypt_failures;
        *lost_records += o.lost_records;
        *unknown_losses += o.unknown_losses;
        *alerts += o.alerts;
    }

    fn count(&mut self, f: &TlsFacts, h2: bool) {
        use pov_tls::Outcome as O;
        self.connections += 1;
        match f.outcome() {
            O::Decrypted => self.decrypted += 1,
            O::EncryptedNoKeys => self.encrypted_no_keys += 1,
            O::HandshakeFailed => self.handshake_failed += 1,
            O::Incomplete => self.incomplete += 1,
            O::UnsupportedSuite => self.unsupported_suite += 1,
            O::KeysMismatch => self.keys_mismatch += 1,
            O::NoClientHello => self.no_client_hello += 1,
            O::NotTls => self.not_tls += 1,
        }
        self.h2 += u64::from(h2);
        for s in &f.sides {
            self.plaintext_bytes += s.plaintext_bytes;
            self.decrypt_failures += s.decrypt_failures;
            self.lost_records += s.lost_records;
            self.unknown_losses += s.unknown_losses;
        }
        self.alerts += f.alert_count;
    }
}

/// Counters of HTTP/2 connections (h2 in TLS and h2c), the stream
/// outcomes among them, and the losses pov-http2 reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct H2Counters {
    /// HTTP/2 connections.
    pub connections: u64,
    /// Of those, h2c (no TLS), by prior knowledge or by Upgrade.
    pub cleartext: u64,
    /// Of those, h2c by `Upgrade: h2c` (the request that asked is stream 1).
    pub upgrades: u64,
    /// Streams.
    pub streams: u64,
    /// Streams pushed by servers.
    pub pushes: u64,
    /// RST_STREAM frames from clients.
    pub client_resets: u64,
    /// RST_STREAM frames from servers.
    pub server_resets: u64,
    /// GOAWAY frames.
    pub goaways: u64,
    /// Directions whose HPACK table a gap took away.
    pub hpack_desyncs: u64,
    /// Directions whose frame boundaries a gap took away.
    pub lost_directions: u64,
    /// Octets not parsed after such a loss.
    pub unparsed_bytes: u64,
    /// Header blocks that did not decode though the capture had them.
    pub hpack_errors: u64,
}

impl H2Counters {
    /// Adds another analyzer's counters.
    pub fn merge(&mut self, o: &H2Counters) {
        self.connections += o.connections;
        self.cleartext += o.cleartext;
        self.upgrades += o.upgrades;
        self.streams += o.streams;
        self.pushes += o.pushes;
        self.client_resets += o.client_resets;
        self.server_resets += o.server_resets;
        self.goaways += o.goaways;
        self.hpack_desyncs += o.hpack_desyncs;
        self.lost_directions += o.lost_directions;
        self.unparsed_bytes += o.unparsed_bytes;
        self.hpack_errors += o.hpack_errors;
    }

    fn count(&mut self, s: &pov_http2::H2Stats, cleartext: bool) {
        self.connections += 1;
        self.cleartext += u64::from(cleartext);
        self.upgrades += s.upgrades;
        self.streams += s.streams;
        self.pushes += s.pushes;
        self.client_resets += s.resets[0];
        self.server_resets += s.resets[1];
        self.goaways += s.goaways;
        self.hpack_desyncs += s.hpack_desyncs;
        self.lost_directions += s.lost_directions;
        self.unparsed_bytes += s.unparsed_bytes;
        self.hpack_errors += s.hpack_errors;
    }
}

/// A TLS connection's end as the customer stage needs it: who, which
/// site, how it ended, and the alert that ended it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsEnd {
    /// Connection id.
    pub conn: crate::tcp::ConnId,
    /// Client address.
    pub client: std::net::SocketAddr,
    /// Server address.
    pub server: std::net::SocketAddr,
    /// Capture time of the connection's end.
    pub ts: Ts,
    /// First frame of the connection.
    pub first_frame: u64,
    /// How it ended (pov-tls's outcome; `name()` gives its text).
    pub outcome: TlsOutcome,
    /// Server name the client asked for.
    pub sni: Option<String>,
    /// The first error alert: its name, who sent it, when, at what
    /// stream offset.
    pub alert: Option<AlertEvent>,
}

impl TlsEnd {
    /// Whether the customer met a failure: the handshake failed (an
    /// alert, a certificate refused) or the connection closed before it
    /// completed.
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, TlsOutcome::HandshakeFailed | TlsOutcome::Incomplete)
    }

    /// What the capture shows of it, in words: the alert (its name, or
    /// that it was encrypted; a certificate refusal named so), who sent
    /// it, when, at what offset of the sender's stream; or that the
    /// connection closed first.
    pub fn evidence(&self) -> String {
        let sni = self.sni.as_deref().map(|s| format!(" (server name {s})")).unwrap_or_default();
        match &self.alert {
            Some(a) => {
                let who = match a.side {
                    Side::Client => "client",
                    Side::Server => "server",
                };
                let what = match a.alert {
                    Some(al) if pov_tls::wire::is_certificate_alert(al.description) => {
                        format!("alert {} (certificate refused)", al.name())
                    }
                    Some(al) => format!("alert {}", al.name()),
                    None => "an encrypted alert".to_string(),
                };
                format!(
                    "TLS handshake failed{sni}: {what} from the {who} at capture time {:.6} s, offset {} of its stream",
                    a.ts as f64 / 1e9,
                    a.offset
                )
            }
            None => format!("TLS connection closed before its handshake completed{sni}"),
        }
    }
}

/// The per-thread decoding state of a run: a decoder over the run's keys.
pub(super) fn decoder(keys: &Arc<KeyStore>) -> Decoder<'static> {
    Decoder::shared(Arc::clone(keys))
}

/// The routing of one chunk. Returns `false` when the chunk is for
/// `ConnHttp` as plaintext HTTP/1 (the caller parses it).
#[allow(clippy::too_many_arguments)]
pub(super) fn data(
    route: &mut Route,
    http: &mut ConnHttp,
    chunk: &DataChunk<'_>,
    cfg: &HttpConfig,
    stats: &mut HttpStats,
    cx: &mut Decoder<'static>,
    done: &mut Done,
) -> bool {
    if let Route::Unknown = route {
        *route = decide(chunk, http.meta(), cfg);
    }
    match route {
        Route::Unknown | Route::Http1 => false,
        Route::H2(b) => {
            let (meta, h) = &mut **b;
            h.data(chunk.dir, chunk.bytes, (chunk.first_ts, chunk.last_ts), (chunk.first_frame, chunk.last_frame));
            h.take(meta, cfg, done);
            true
        }
        Route::Tls(t) => {
            let side = tls_side(chunk.dir);
            let mut sink = Plain { st: &mut t.plain, http, meta: &t.meta, chunk: Some(chunk), cfg, stats, done };
            t.tls.data(cx, side, chunk.last_ts.0, chunk.bytes, &mut sink);
            true
        }
    }
}

/// HTTP/2 from here on for a connection that `ConnHttp` saw switch by
/// `Upgrade: h2c`: the request that asked is stream 1, and the server's
/// bytes after the 101 are its first HTTP/2 bytes. Client bytes that came
/// after that request but before the 101 (a client may not send its
/// preface before it) were `ConnHttp`'s and are not seen again.
pub(super) fn upgrade_h2c(
    route: &mut Route,
    up: super::conn::H2cSwitch,
    meta: &ConnMeta,
    cfg: &HttpConfig,
    done: &mut Done,
) {
    let mut h = H2Route::upgraded(cfg, &up.tx);
    if !up.rest.is_empty() {
        h.data(Direction::ServerToClient, &up.rest, (up.at.0, up.at.0), (up.at.1, up.at.1));
    }
    h.take(meta, cfg, done);
    *route = Route::H2(Box::new((meta.clone(), h)));
}

fn decide(chunk: &DataChunk<'_>, meta: &ConnMeta, cfg: &HttpConfig) -> Route {
    // Only the first bytes of a connection seen from its start say what
    // it is; a server speaking first is not TLS nor HTTP/2.
    if chunk.dir != Direction::ClientToServer || chunk.offset != 0 {
        return Route::Http1;
    }
    if looks_like_tls(chunk.bytes) {
        return Route::Tls(Box::new(TlsRoute {
            meta: meta.clone(),
            tls: TlsConn::new(),
            plain: PlainState { inner: Inner::Undecided, offsets: [0; 2], early: Vec::new() },
        }));
    }
    if sniff_preface(chunk.bytes) == Sniff::H2 {
        return Route::H2(Box::new((meta.clone(), H2Route::new(cfg))));
    }
    Route::Http1
}

fn tls_side(dir: Direction) -> Side {
    match dir {
        Direction::ClientToServer => Side::Client,
        Direction::ServerToClient => Side::Server,
    }
}

fn dir_of(side: Side) -> Direction {
    match side {
        Side::Client => Direction::ClientToServer,
        Side::Server => Direction::ServerToClient,
    }
}

/// A gap on a routed connection. Returns `false` for plaintext HTTP/1.
pub(super) fn gap(route: &mut Route, g: &Gap, cfg: &HttpConfig, done: &mut Done) -> bool {
    match route {
        Route::Unknown | Route::Http1 => false,
        Route::H2(b) => {
            let (meta, h) = &mut **b;
            h.gap(g.dir, g.len, g.ts);
            h.take(meta, cfg, done);
            true
        }
        Route::Tls(t) => {
            // The record layer finds out what the loss cost and tells the
            // sink (as a plaintext gap) when it knows.
            t.tls.gap(tls_side(g.dir), g.len);
            true
        }
    }
}

/// Marks transactions of a TLS connection as such.
pub(super) fn label_tls(route: &Route, done: &mut [Box<HttpTransaction>]) {
    if let Route::Tls(_) = route {
        for t in done {
            t.tls = true;
        }
    }
}

/// Whether a half close is for `ConnHttp` (plaintext or TLS-wrapped
/// HTTP/1: a close-delimited body ends there).
pub(super) fn half_close_is_http1(route: &Route) -> bool {
    match route {
        Route::Unknown | Route::Http1 => true,
        Route::H2(_) => false,
        Route::Tls(t) => matches!(t.plain.inner, Inner::Http1),
    }
}

/// Start of the earliest unfinished HTTP/2 stream that began at or after
/// `after`, when the connection is HTTP/2 (`None` for HTTP/1, which
/// `ConnHttp` answers).
pub(super) fn h2_earliest(route: &Route, after: Ts) -> Option<Option<Ts>> {
    match route {
        Route::H2(b) => Some(b.1.earliest_open(after)),
        Route::Tls(t) => match &t.plain.inner {
            Inner::H2(h) => Some(h.earliest_open(after)),
            _ => None,
        },
        _ => None,
    }
}

/// The connection ended: flushes TLS, closes HTTP/2, counts. Returns
/// `false` when `ConnHttp` must close the connection itself (HTTP/1,
/// plaintext or decrypted: its `close` runs after this).
#[allow(clippy::too_many_arguments)]
pub(super) fn close(
    route: &mut Route,
    http: &mut ConnHttp,
    c: &Close,
    cfg: &HttpConfig,
    stats: &mut HttpStats,
    cx: &mut Decoder<'static>,
    done: &mut Done,
) -> (bool, Option<TlsEnd>) {
    match route {
        Route::Unknown | Route::Http1 => (false, None),
        Route::H2(b) => {
            let (meta, h) = &mut **b;
            h.close(c.how, c.ts);
            h.take(meta, cfg, done);
            if let Some(s) = h.take_stats()
                && h.is_h2() == Some(true)
            {
                stats.h2.count(&s, true);
            }
            (true, None)
        }
        Route::Tls(t) => {
            let meta = &t.meta;
            {
                let mut sink =
                    Plain { st: &mut t.plain, http, meta, chunk: None, cfg, stats: &mut *stats, done: &mut *done };
                t.tls.finish(cx, c.ts.0, &mut sink);
                // Server plaintext still waiting for the client's: HTTP/1.
                if matches!(sink.st.inner, Inner::Undecided) && !sink.st.early.is_empty() {
                    sink.choose(false);
                }
            }
            let facts = t.tls.facts();
            let is_h2 = matches!(t.plain.inner, Inner::H2(_));
            stats.tls.count(facts, is_h2);
            let end = TlsEnd {
                conn: meta.id,
                client: meta.client,
                server: meta.server,
                ts: c.ts,
                first_frame: meta.first_frame,
                outcome: facts.outcome(),
                sni: facts.sni().map(str::to_owned),
                alert: facts.first_error_alert().cloned(),
            };
            match &mut t.plain.inner {
                Inner::H2(h) => {
                    h.close(c.how, c.ts);
                    h.take(meta, cfg, done);
                    if let Some(s) = h.take_stats() {
                        stats.h2.count(&s, false);
                    }
                    (true, Some(end))
                }
                // Decrypted HTTP/1 (or nothing decrypted: then `ConnHttp`
                // saw nothing and closes empty).
                Inner::Http1 | Inner::Undecided => (false, Some(end)),
            }
        }
    }
}

/// Where a TLS connection's plaintext goes.
struct Plain<'a, 'c> {
    st: &'a mut PlainState,
    http: &'a mut ConnHttp,
    meta: &'a ConnMeta,
    /// The TCP chunk being decrypted (its frames and flags), if any.
    chunk: Option<&'a DataChunk<'c>>,
    cfg: &'a HttpConfig,
    stats: &'a mut HttpStats,
    done: &'a mut Done,
}

impl Plain<'_, '_> {
    /// Decides the inner protocol and hands it the server's early
    /// plaintext.
    fn choose(&mut self, h2: bool) {
        self.st.inner = if h2 { Inner::H2(Box::new(H2Route::new(self.cfg))) } else { Inner::Http1 };
        for (ts, bytes) in std::mem::take(&mut self.st.early) {
            self.deliver(Side::Server, ts, &bytes);
        }
    }

    /// Where `side`'s next `len` plaintext bytes start; moves past them.
    fn advance(&mut self, side: Side, len: u64) -> u64 {
        let s = match side {
            Side::Client => 0,
            Side::Server => 1,
        };
        let offset = self.st.offsets[s];
        self.st.offsets[s] += len;
        offset
    }

    fn deliver(&mut self, side: Side, ts: Ts, data: &[u8]) {
        let offset = self.advance(side, data.len() as u64);
        let (frames, after_rst) = match self.chunk {
            Some(c) => ((c.first_frame, c.last_frame), c.after_rst),
            None => ((0, 0), false),
        };
        match &mut self.st.inner {
            Inner::H2(h) => {
                h.data(dir_of(side), data, (ts, ts), frames);
                h.take(self.meta, self.cfg, self.done);
            }
            Inner::Http1 | Inner::Undecided => {
                let c = DataChunk {
                    conn: self.meta.id,
                    dir: dir_of(side),
                    offset,
                    bytes: data,
                    first_ts: ts,
                    last_ts: ts,
                    first_frame: frames.0,
                    last_frame: frames.1,
                    // Acknowledgments count wire bytes, not plaintext.
                    peer_ack: None,
                    after_rst,
                };
                self.http.data(&c, self.cfg, self.stats, self.done);
            }
        }
    }
}

impl TlsSink for Plain<'_, '_> {
    fn plaintext(&mut self, side: Side, ts: i64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if matches!(self.st.inner, Inner::Undecided) {
            match side {
                // The client's first plaintext says HTTP/2 with the
                // preface (whatever ALPN said).
                Side::Client => self.choose(sniff_preface(data) != Sniff::NotH2),
                Side::Server
                    if self.st.early.iter().map(|(_, b)| b.len()).sum::<usize>() + data.len() <= MAX_EARLY_SERVER =>
                {
                    self.st.early.push((Ts(ts), data.to_vec()));
                    return;
                }
                Side::Server => self.choose(false),
            }
        }
        self.deliver(side, Ts(ts), data);
    }

    fn gap(&mut self, side: Side, ts: i64, len: u64) {
        if matches!(self.st.inner, Inner::Undecided) {
            // Loss before the first plaintext: HTTP/1's parser copes with
            // starting after a gap; HTTP/2's could not find its frames.
            self.choose(false);
        }
        let offset = self.advance(side, len);
        match &mut self.st.inner {
            Inner::H2(h) => {
                h.gap(dir_of(side), len, Ts(ts));
                h.take(self.meta, self.cfg, self.done);
            }
            Inner::Http1 | Inner::Undecided => {
                let g = Gap {
                    conn: self.meta.id,
                    dir: dir_of(side),
                    offset,
                    len,
                    ts: Ts(ts),
                    reason: GapReason::AckedUnseen,
                };
                self.done.extend(self.http.gap(&g, self.cfg, self.stats));
            }
        }
    }
}
