//! One TLS connection on a reassembled TCP stream: records per side,
//! handshake facts, keys looked up by client random, decryption, loss
//! handling, and the outcome.
//!
//! The caller pushes what its TCP reassembler gives, per side, in stream
//! order: byte chunks ([`TlsConn::data`]) and "N bytes missing" markers
//! ([`TlsConn::gap`]), then [`TlsConn::finish`]. Decrypted application
//! data goes to a [`TlsSink`] with gap markers, ready for an HTTP parser;
//! what the connection was (version, suite, SNI, ALPN, alerts, outcome)
//! is in [`TlsConn::facts`].
//!
//! # Loss
//!
//! A gap inside a record whose header was seen loses that record only: its
//! length says where the next one starts, and the next record's sequence
//! number is known (one more). A gap that swallows a record header loses an
//! unknown number of records: pov scans the following bytes for a
//! plausible header (content type 20-23, only 23 once TLS 1.3 application
//! data flows; version 0x0301-0x0304, the same record version as before
//! when known; length at most 2^14+256), confirmed
//! by the header that follows it when those bytes are there. The nonces of
//! TLS 1.3 and of TLS 1.2 ChaCha20 come from the record sequence number, and
//! TLS 1.2 binds it in the additional data, so the first record after such
//! a loss is opened with seq+1, seq+2, ... (at most [`MAX_SEQ_TRIES`]
//! numbers, starting from the fewest records the lost bytes can hold): the
//! AEAD tag (or the CBC suites' MAC) says which count is right, and then the
//! plaintext lost is known exactly (but for TLS 1.3 padding and CBC
//! padding). Only losses in the application epoch reach the sink as gaps:
//! lost handshake records are counted, not reported as missing data. TLS
//! 1.2 GCM records carry an explicit
//! nonce that implementations fill with the sequence number; it is tried
//! first. When no number fits, the record is counted as undecryptable and
//! the next record is tried the same way; after [`MAX_FAILS_IN_ROW`]
//! failures in a row the side stops trying (every later record is counted).

use std::mem;
use std::sync::Arc;

use crate::crypto::{RecordKey, SuiteInfo, next_traffic_secret, suite_info};
use crate::facts::is_alert_sized;
pub use crate::facts::{AlertEvent, KeyStatus, Outcome, SideStats, TlsFacts};
use crate::keylog::{KeyKind, KeyStore, Secret};
use crate::wire::{self, Alert, HEADER_LEN, Header, MAX_BODY, MAX_BODY_RESYNC, Version, content, handshake};

/// Sequence numbers tried for the first record after a loss of unknown
/// size.
pub const MAX_SEQ_TRIES: u64 = 64;
/// Records that fail to open in a row before a side stops trying.
pub const MAX_FAILS_IN_ROW: u32 = 16;
/// Handshake messages larger than this are skipped, not reassembled.
const MAX_HANDSHAKE_MSG: usize = 1 << 18;
/// At most this many alerts are kept per connection (all are counted).
pub const MAX_ALERTS_KEPT: usize = 16;

/// Who sent the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that opened the TCP connection.
    Client,
    /// The other side.
    Server,
}

impl Side {
    fn idx(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// Where decrypted application data goes (push model): plaintext chunks
/// and gaps per side, in stream order.
pub trait TlsSink {
    /// Decrypted application data of one record. `ts` is the capture time
    /// (nanoseconds) of the chunk that completed the record.
    fn plaintext(&mut self, side: Side, ts: i64, data: &[u8]);
    /// Application data lost: `len` plaintext bytes (exact when the lost
    /// records' count is known, see the module docs; else an estimate).
    fn gap(&mut self, side: Side, ts: i64, len: u64);
    /// An alert was seen (plaintext, or decrypted). Default: ignored.
    fn alert(&mut self, _event: &AlertEvent) {}
}

/// Per-thread decoding state shared by every connection: the key store
/// and the buffer records are decrypted into (so a connection holds no
/// buffer for plaintext).
pub struct Decoder<'k> {
    keys: Keys<'k>,
    out: Vec<u8>,
}

/// The key store a decoder reads: borrowed, or shared by the threads of a
/// run (which keep their decoder as long as their connections).
enum Keys<'k> {
    Borrowed(&'k KeyStore),
    Shared(Arc<KeyStore>),
}

impl Keys<'_> {
    fn store(&self) -> &KeyStore {
        match self {
            Keys::Borrowed(k) => k,
            Keys::Shared(k) => k,
        }
    }
}

impl<'k> Decoder<'k> {
    /// A decoder over a key store (which may be empty).
    pub fn new(keys: &'k KeyStore) -> Decoder<'k> {
        Decoder { keys: Keys::Borrowed(keys), out: Vec::with_capacity(MAX_BODY) }
    }
}

impl Decoder<'static> {
    /// A decoder over a key store shared with other threads: one a
    /// long-lived analyzer can own.
    pub fn shared(keys: Arc<KeyStore>) -> Decoder<'static> {
        Decoder { keys: Keys::Shared(keys), out: Vec::new() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// The next byte starts (or continues, see `pending`) a record.
    InStep,
    /// This many bytes remain of a record lost in a gap.
    Skip(u64),
    /// Searching for a record header.
    Hunting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Epoch {
    /// Before protection starts.
    Plain,
    /// TLS 1.3 handshake traffic keys.
    Handshake,
    /// Application traffic keys (TLS 1.3), or after ChangeCipherSpec
    /// (TLS 1.2).
    Application,
}

/// Records lost since the last record that opened.
#[derive(Clone, Copy, Debug, Default)]
struct Loss {
    /// Stream bytes of the lost records (headers included).
    wire: u64,
    /// Fewest records lost.
    min: u64,
    /// Exactly `min` (the gap fell inside known records).
    exact: bool,
}

struct Dir {
    pending: Vec<u8>,
    sync: Sync,
    /// Stream offset of the next byte to arrive.
    next_off: u64,
    seq: u64,
    loss: Option<Loss>,
    epoch: Epoch,
    /// Records from now on are protected.
    protected: bool,
    key: Option<RecordKey>,
    /// TLS 1.3: the application key (used at Finished); TLS 1.2: the key
    /// ChangeCipherSpec turns on.
    next: Option<RecordKey>,
    /// TLS 1.3 application traffic secret (for KeyUpdate).
    secret: Option<Secret>,
    /// The secret of `next` when it is a guessed KeyUpdate (committed
    /// when `next` opens a record).
    next_secret: Option<Secret>,
    /// Record-layer version once known (for stricter resync).
    rec_version: Option<u16>,
    fails_in_row: u32,
    hs: Vec<u8>,
    seen_record: bool,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            pending: Vec::new(),
            sync: Sync::InStep,
            next_off: 0,
            seq: 0,
            loss: None,
            epoch: Epoch::Plain,
            protected: false,
            key: None,
            next: None,
            secret: None,
            next_secret: None,
            rec_version: None,
            fails_in_row: 0,
            hs: Vec::new(),
            seen_record: false,
        }
    }
}

/// One TLS connection (both sides).
pub struct TlsConn {
    facts: TlsFacts,
    dirs: [Dir; 2],
    suite: Option<SuiteInfo>,
}

impl Default for TlsConn {
    fn default() -> TlsConn {
        TlsConn::new()
    }
}

/// A chunk of stream bytes that may start with a TLS record: a plausible
/// handshake record header (for callers deciding whether a connection is
/// TLS).
pub fn looks_like_tls(first: &[u8]) -> bool {
    Header::read(first).is_some_and(|h| h.ctype == content::HANDSHAKE && h.plausible(MAX_BODY))
}

impl TlsConn {
    /// A connection whose streams start now (at the first byte after the
    /// TCP handshake).
    pub fn new() -> TlsConn {
        TlsConn { facts: TlsFacts::default(), dirs: [Dir::new(), Dir::new()], suite: None }
    }

    /// A connection the capture joined after it started (no SYN seen) that
    /// the caller takes for TLS (by its port, say): each side starts by
    /// searching for a record boundary, and every record is protected.
    /// Nothing can be decrypted (the ClientHello, and so the client
    /// random, was not seen): the outcome is [`Outcome::NoClientHello`],
    /// with the records counted.
    pub fn new_midstream() -> TlsConn {
        let mut c = TlsConn::new();
        for d in &mut c.dirs {
            d.seen_record = true;
            d.sync = Sync::Hunting;
            d.protected = true;
            d.epoch = Epoch::Application;
        }
        c
    }

    /// What is known so far.
    pub fn facts(&self) -> &TlsFacts {
        &self.facts
    }

    /// Heap bytes the connection holds for records and handshake messages
    /// in progress (capacity, both sides): what a caller's memory budget
    /// should charge it besides its size.
    pub fn buffered(&self) -> usize {
        self.dirs.iter().map(|d| d.pending.capacity() + d.hs.capacity()).sum()
    }

    /// Bytes of `side`'s stream, in order. `ts` is their capture time in
    /// nanoseconds.
    pub fn data(&mut self, cx: &mut Decoder<'_>, side: Side, ts: i64, bytes: &[u8], sink: &mut dyn TlsSink) {
        if self.facts.not_tls || bytes.is_empty() {
            return;
        }
        let s = side.idx();
        self.facts.sides[s].bytes += bytes.len() as u64;
        let d = &mut self.dirs[s];
        let base = d.next_off;
        d.next_off += bytes.len() as u64;
        let mut input = bytes;
        match d.sync {
            Sync::Skip(n) => {
                let k = (n as usize).min(input.len());
                input = &input[k..];
                if let Some(l) = &mut d.loss {
                    l.wire += k as u64;
                }
                d.sync = if n as usize > k { Sync::Skip(n - k as u64) } else { Sync::InStep };
                if input.is_empty() {
                    return;
                }
            }
            Sync::Hunting => {
                d.pending.extend_from_slice(input);
                self.drive(cx, side, ts, false, sink);
                return;
            }
            Sync::InStep => {}
        }
        let start_off = base + (bytes.len() - input.len()) as u64;
        self.in_step(cx, side, ts, input, start_off, sink);
        self.drive(cx, side, ts, false, sink);
        // Between records (the end of a response, say) a side holds no
        // buffer: memory goes with records in progress, not with open
        // connections. A transfer in full flow always has part of a record
        // pending, so this frees (and later allocates) once per burst, not
        // per record.
        let d = &mut self.dirs[s];
        if d.pending.is_empty() && d.pending.capacity() > 0 {
            d.pending = Vec::new();
        }
        if d.hs.is_empty() && d.hs.capacity() > 0 {
            d.hs = Vec::new();
        }
    }

    /// While a side is searching for a record boundary: search, and
    /// parse in step from the boundary found (a loop, so no input makes
    /// it recurse).
    fn drive(&mut self, cx: &mut Decoder<'_>, side: Side, ts: i64, at_end: bool, sink: &mut dyn TlsSink) {
        let s = side.idx();
        while self.dirs[s].sync == Sync::Hunting && !self.facts.not_tls {
            if !self.hunt(side, at_end) {
                return;
            }
            let d = &mut self.dirs[s];
            let buf = mem::take(&mut d.pending);
            let off = d.next_off - buf.len() as u64;
            self.in_step(cx, side, ts, &buf, off, sink);
        }
    }

    /// `len` bytes of `side`'s stream were not captured.
    pub fn gap(&mut self, side: Side, len: u64) {
        if self.facts.not_tls || len == 0 {
            return;
        }
        let s = side.idx();
        let st = &mut self.facts.sides[s];
        st.gaps += 1;
        st.gap_bytes += len;
        let d = &mut self.dirs[s];
        d.next_off += len;
        let mut loss = d.loss.unwrap_or(Loss { wire: 0, min: 0, exact: true });
        match d.sync {
            Sync::Hunting => {
                // Bytes kept for the search cannot be joined across the
                // gap: they are part of the lost records too.
                loss.wire += len + d.pending.len() as u64;
                self.facts.sides[s].skipped_bytes += d.pending.len() as u64;
                d.pending.clear();
            }
            Sync::Skip(n) if len <= n => {
                loss.wire += len;
                d.sync = if len == n { Sync::InStep } else { Sync::Skip(n - len) };
            }
            Sync::Skip(_) => {
                // The rest of the gap starts another record (at least one).
                loss.wire += len;
                loss.min += 1;
                loss.exact = false;
                d.sync = Sync::Hunting;
            }
            Sync::InStep => match Header::read(&d.pending) {
                Some(h) => {
                    let total = (HEADER_LEN + h.len) as u64;
                    let remaining = total - d.pending.len() as u64;
                    loss.wire += d.pending.len() as u64 + len;
                    loss.min += 1;
                    if len < remaining {
                        d.sync = Sync::Skip(remaining - len);
                    } else if len > remaining {
                        loss.min += 1;
                        loss.exact = false;
                        d.sync = Sync::Hunting;
                    }
                    d.pending.clear();
                }
                None => {
                    // The header itself (or the whole next record) is lost.
                    loss.wire += d.pending.len() as u64 + len;
                    loss.min += 1;
                    loss.exact = false;
                    d.pending.clear();
                    d.sync = Sync::Hunting;
                }
            },
        }
        // A record is at most 5 + 2^14 + 2048 bytes: the lost bytes span at
        // least this many records.
        loss.min = loss.min.max(loss.wire.div_ceil((HEADER_LEN + MAX_BODY) as u64));
        d.loss = Some(loss);
    }

    /// The streams ended: resolves a pending search, counts bytes left in
    /// incomplete records, and settles the outcome.
    pub fn finish(&mut self, cx: &mut Decoder<'_>, ts: i64, sink: &mut dyn TlsSink) -> Outcome {
        for side in [Side::Client, Side::Server] {
            let s = side.idx();
            self.drive(cx, side, ts, true, sink);
            let d = &mut self.dirs[s];
            self.facts.sides[s].truncated_bytes += d.pending.len() as u64;
            d.pending.clear();
            if let Some(loss) = d.loss.take() {
                if !loss.exact {
                    self.facts.sides[s].unknown_losses += 1;
                } else {
                    self.facts.sides[s].lost_records += loss.min;
                }
            }
        }
        let o = self.facts.compute_outcome();
        self.facts.outcome = Some(o);
        o
    }

    /// Parses records from `input` (with whatever `pending` holds first).
    fn in_step(
        &mut self,
        cx: &mut Decoder<'_>,
        side: Side,
        ts: i64,
        mut input: &[u8],
        mut off: u64,
        sink: &mut dyn TlsSink,
    ) {
        let s = side.idx();
        if !self.dirs[s].pending.is_empty() {
            let d = &mut self.dirs[s];
            if d.pending.len() < HEADER_LEN {
                let k = (HEADER_LEN - d.pending.len()).min(input.len());
                d.pending.extend_from_slice(&input[..k]);
                input = &input[k..];
                off += k as u64;
                if d.pending.len() < HEADER_LEN {
                    return;
                }
            }
            let Some(h) = Header::read(&d.pending) else { return };
            if !self.header_ok(side, &h) {
                let d = &mut self.dirs[s];
                d.pending.extend_from_slice(input);
                self.lose_step(side);
                return;
            }
            let d = &mut self.dirs[s];
            let total = HEADER_LEN + h.len;
            let k = (total - d.pending.len()).min(input.len());
            // Room for the whole record at once (it is at most 5 + 2^14 +
            // 2048 bytes, `header_ok`), not a chain of doublings.
            d.pending.reserve(total - d.pending.len());
            d.pending.extend_from_slice(&input[..k]);
            input = &input[k..];
            off += k as u64;
            if d.pending.len() < total {
                return;
            }
            let rec = mem::take(&mut d.pending);
            let rec_off = off - total as u64;
            self.record(cx, side, ts, h, &rec, rec_off, sink);
            let d = &mut self.dirs[s];
            d.pending = rec;
            d.pending.clear();
            if self.facts.not_tls {
                return;
            }
        }
        while input.len() >= HEADER_LEN {
            let Some(h) = Header::read(input) else { break };
            if !self.header_ok(side, &h) {
                self.dirs[s].pending.extend_from_slice(input);
                self.lose_step(side);
                return;
            }
            let total = HEADER_LEN + h.len;
            if input.len() < total {
                break;
            }
            self.record(cx, side, ts, h, &input[..total], off, sink);
            if self.facts.not_tls {
                return;
            }
            input = &input[total..];
            off += total as u64;
        }
        // A record begun here: room for all of it (its header was found
        // plausible above, so its length is bounded).
        let d = &mut self.dirs[s];
        if let Some(h) = Header::read(input) {
            d.pending.reserve(HEADER_LEN + h.len);
        }
        d.pending.extend_from_slice(input);
    }

    /// Whether a header read in step is acceptable; the first header of
    /// a connection that is not decides it is not TLS.
    fn header_ok(&mut self, side: Side, h: &Header) -> bool {
        let any_seen = self.dirs.iter().any(|d| d.seen_record);
        if h.plausible(MAX_BODY) {
            return true;
        }
        if !any_seen {
            self.facts.not_tls = true;
            for d in &mut self.dirs {
                d.pending = Vec::new();
            }
            return false;
        }
        self.facts.sides[side.idx()].bad_headers += 1;
        false
    }

    /// Stepping failed on an implausible header: search from the byte
    /// after its start; what is scanned counts as lost records of unknown
    /// extent.
    fn lose_step(&mut self, side: Side) {
        let s = side.idx();
        let d = &mut self.dirs[s];
        if self.facts.not_tls {
            d.pending.clear();
            return;
        }
        // Not necessarily a loss (the bytes may be damage or junk): no
        // record is known lost, but the count is no longer known.
        let mut loss = d.loss.unwrap_or_default();
        loss.exact = false;
        let skip = 1.min(d.pending.len());
        d.pending.drain(..skip);
        loss.wire += skip as u64;
        self.facts.sides[s].skipped_bytes += skip as u64;
        d.loss = Some(loss);
        d.sync = Sync::Hunting;
    }

    /// Searches `pending` for a record boundary. At the end of the stream
    /// (`at_end`) a candidate needs no following header if it ends exactly
    /// at the end.
    fn hunt(&mut self, side: Side, at_end: bool) -> bool {
        let s = side.idx();
        let tls13 = self.facts.tls13();
        let d = &mut self.dirs[s];
        let version = d.rec_version;
        // Once application data flows, TLS 1.3 sends only content type 23,
        // and TLS 1.2 no more ChangeCipherSpec: fewer false boundaries.
        let ctype_ok = |t: u8| match (d.epoch, tls13) {
            (Epoch::Application, true) => t == content::APPLICATION_DATA,
            (Epoch::Application, false) => t != content::CHANGE_CIPHER_SPEC,
            _ => true,
        };
        let ok =
            |h: &Header| h.plausible(MAX_BODY_RESYNC) && version.is_none_or(|v| h.version == v) && ctype_ok(h.ctype);
        let buf = &d.pending;
        let mut found = None;
        let mut p = 0;
        let mut wait = false;
        while p + HEADER_LEN <= buf.len() {
            let Some(h) = Header::read(&buf[p..]) else { break };
            if ok(&h) {
                let next = p + HEADER_LEN + h.len;
                match Header::read(buf.get(next..).unwrap_or(&[])) {
                    Some(n) if ok(&n) => {
                        found = Some(p);
                        break;
                    }
                    Some(_) => {}
                    None if at_end && next == buf.len() => {
                        found = Some(p);
                        break;
                    }
                    None if !at_end => {
                        // Not enough bytes to confirm: wait for more.
                        wait = true;
                        break;
                    }
                    None => {}
                }
            }
            p += 1;
        }
        let scanned = if found.is_some() || wait { p } else { buf.len().saturating_sub(HEADER_LEN - 1) };
        if scanned > 0 {
            d.pending.drain(..scanned);
            let mut loss = d.loss.unwrap_or_default();
            loss.wire += scanned as u64;
            d.loss = Some(loss);
            self.facts.sides[s].skipped_bytes += scanned as u64;
        }
        if found.is_some() {
            self.dirs[s].sync = Sync::InStep;
            self.facts.sides[s].resyncs += 1;
            return true;
        }
        false
    }

    /// One whole record (header included).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        cx: &mut Decoder<'_>,
        side: Side,
        ts: i64,
        h: Header,
        rec: &[u8],
        off: u64,
        sink: &mut dyn TlsSink,
    ) {
        let s = side.idx();
        let body = &rec[HEADER_LEN..];
        let first = !self.dirs.iter().any(|d| d.seen_record);
        self.dirs[s].seen_record = true;
        if first && h.ctype != content::HANDSHAKE {
            self.facts.not_tls = true;
            return;
        }
        self.facts.sides[s].records += 1;
        if self.dirs[s].rec_version.is_none() && self.facts.server_hello.is_some() {
            self.dirs[s].rec_version = Some(h.version);
        }
        let tls13 = self.facts.tls13();
        let d = &self.dirs[s];
        let protected = if tls13 {
            h.ctype == content::APPLICATION_DATA && d.protected
        } else {
            d.protected && h.ctype != content::CHANGE_CIPHER_SPEC
        };
        if protected {
            let hdr: [u8; 5] = [rec[0], rec[1], rec[2], rec[3], rec[4]];
            self.protected(cx, side, ts, &hdr, body, off, sink);
            return;
        }
        self.facts.sides[s].plaintext_records += 1;
        // A loss before this record held records in the clear: they used
        // no sequence number, and none of them was application data.
        if let Some(loss) = self.dirs[s].loss.take() {
            let st = &mut self.facts.sides[s];
            if loss.exact {
                st.lost_records += loss.min;
            } else {
                st.unknown_losses += 1;
            }
        }
        match h.ctype {
            content::CHANGE_CIPHER_SPEC => {
                self.facts.ccs[s] = true;
                // TLS 1.2 turns protection on here. A ChangeCipherSpec
                // before any ServerHello is TLS 1.3's middlebox
                // compatibility one (after a HelloRetryRequest): ignored.
                if !tls13 && self.facts.server_hello.is_some() {
                    let d = &mut self.dirs[s];
                    d.protected = true;
                    d.epoch = Epoch::Application;
                    d.key = d.next.take();
                    d.seq = 0;
                }
            }
            content::ALERT => self.alert_bytes(side, ts, off, body, false, sink),
            content::HANDSHAKE => self.handshake_bytes(cx, side, body),
            _ => {}
        }
    }

    fn alert_bytes(&mut self, side: Side, ts: i64, off: u64, body: &[u8], encrypted: bool, sink: &mut dyn TlsSink) {
        let during_handshake = !self.facts.handshake_complete();
        // An alert record may carry several alerts (two bytes each).
        for pair in body.chunks(2) {
            let alert = Alert::read(pair);
            if alert.is_none() {
                self.facts.sides[side.idx()].bad_handshake += 1;
                continue;
            }
            self.push_alert(AlertEvent { side, ts, offset: off, alert, encrypted, during_handshake }, sink);
        }
    }

    fn push_alert(&mut self, ev: AlertEvent, sink: &mut dyn TlsSink) {
        sink.alert(&ev);
        self.facts.alert_count += 1;
        if self.facts.alerts.len() < MAX_ALERTS_KEPT {
            self.facts.alerts.push(ev);
        }
    }

    /// Handshake bytes (plaintext or decrypted): reassembles messages.
    fn handshake_bytes(&mut self, cx: &mut Decoder<'_>, side: Side, data: &[u8]) {
        let s = side.idx();
        let mut hs = mem::take(&mut self.dirs[s].hs);
        hs.extend_from_slice(data);
        let mut p = 0;
        while hs.len() - p >= 4 {
            let typ = hs[p];
            let len = u32::from_be_bytes([0, hs[p + 1], hs[p + 2], hs[p + 3]]) as usize;
            if len > MAX_HANDSHAKE_MSG {
                self.facts.sides[s].bad_handshake += 1;
                p = hs.len();
                break;
            }
            if hs.len() - p - 4 < len {
                break;
            }
            self.message(cx, side, typ, &hs[p + 4..p + 4 + len]);
            p += 4 + len;
        }
        hs.drain(..p);
        self.dirs[s].hs = hs;
    }

    #[allow(clippy::too_many_arguments)]
    /// One handshake message.
    fn message(&mut self, cx: &mut Decoder<'_>, side: Side, typ: u8, body: &[u8]) {
        let s = side.idx();
        match (side, typ) {
            (Side::Client, handshake::CLIENT_HELLO) => match wire::parse_client_hello(body) {
                Some(ch) => {
                    self.facts.client_hello = Some(ch);
                    // The capture may deliver the ServerHello first (the
                    // two directions are merged by capture time).
                    if self.facts.server_hello.is_some() && self.facts.keys != KeyStatus::Found {
                        self.setup_keys(cx);
                    }
                }
                None => self.facts.sides[s].bad_handshake += 1,
            },
            (Side::Server, handshake::SERVER_HELLO) => match wire::parse_server_hello(body) {
                Some(sh) if sh.hello_retry => self.facts.hello_retry = true,
                Some(sh) => {
                    if sh.alpn.is_some() {
                        self.facts.alpn = sh.alpn.clone();
                    }
                    self.facts.server_hello = Some(sh);
                    self.setup_keys(cx);
                }
                None => self.facts.sides[s].bad_handshake += 1,
            },
            (Side::Server, handshake::ENCRYPTED_EXTENSIONS) => {
                if let Some(a) = wire::parse_encrypted_extensions_alpn(body) {
                    self.facts.alpn = Some(a);
                }
            }
            (_, handshake::FINISHED) => {
                self.facts.finished[s] = true;
                let d = &mut self.dirs[s];
                if d.epoch == Epoch::Handshake {
                    d.key = d.next.take();
                    d.epoch = Epoch::Application;
                    d.seq = 0;
                }
            }
            (_, handshake::KEY_UPDATE) if self.facts.tls13() => self.key_update(side),
            _ => {}
        }
    }

    /// Looks the connection's keys up at the ServerHello.
    fn setup_keys(&mut self, cx: &mut Decoder<'_>) {
        let Some(sh) = &self.facts.server_hello else { return };
        let tls13 = sh.version() == Version::TLS13;
        if tls13 && !self.dirs.iter().any(|d| d.protected) {
            // From here both sides protect their records (content type 23).
            for d in &mut self.dirs {
                d.protected = true;
                d.epoch = Epoch::Handshake;
            }
        }
        let Some(ch) = &self.facts.client_hello else {
            self.facts.keys = KeyStatus::Missing;
            return;
        };
        let Some(suite) = suite_info(sh.cipher_suite).filter(|s| s.tls13 == tls13) else {
            self.facts.keys = KeyStatus::UnsupportedSuite;
            return;
        };
        self.suite = Some(suite);
        let Some(keys) = cx.keys.store().get(&ch.random) else {
            self.facts.keys = KeyStatus::Missing;
            return;
        };
        if tls13 {
            let mut any_app = 0;
            for (d, (hs_kind, ap_kind)) in self.dirs.iter_mut().zip([
                (KeyKind::ClientHandshake, KeyKind::ClientTraffic0),
                (KeyKind::ServerHandshake, KeyKind::ServerTraffic0),
            ]) {
                d.key = keys.get(hs_kind).and_then(|sec| RecordKey::tls13(&suite, sec));
                d.secret = keys.get(ap_kind).cloned();
                d.next = d.secret.as_ref().and_then(|sec| RecordKey::tls13(&suite, sec));
                any_app += d.next.is_some() as u32;
            }
            self.facts.keys = if any_app > 0 { KeyStatus::Found } else { KeyStatus::Missing };
        } else {
            match keys
                .get(KeyKind::MasterSecret)
                .and_then(|m| RecordKey::tls12(&suite, m, &ch.random, &sh.random, sh.encrypt_then_mac))
            {
                Some((c, s)) => {
                    self.dirs[0].next = Some(c);
                    self.dirs[1].next = Some(s);
                    self.facts.keys = KeyStatus::Found;
                }
                None => self.facts.keys = KeyStatus::Missing,
            }
        }
    }

    fn key_update(&mut self, side: Side) {
        let s = side.idx();
        let Some(suite) = self.suite else { return };
        let d = &mut self.dirs[s];
        let Some(next) = d.secret.as_ref().and_then(|sec| next_traffic_secret(suite.hash, sec)) else { return };
        d.key = RecordKey::tls13(&suite, &next);
        d.secret = Some(next);
        d.next = None;
        d.next_secret = None;
        d.seq = 0;
        self.facts.sides[s].key_updates += 1;
    }

    /// A protected record: open it (trying sequence numbers and key epochs
    /// after a loss), then hand its content on.
    #[allow(clippy::too_many_arguments)]
    fn protected(
        &mut self,
        cx: &mut Decoder<'_>,
        side: Side,
        ts: i64,
        hdr: &[u8; 5],
        body: &[u8],
        off: u64,
        sink: &mut dyn TlsSink,
    ) {
        let s = side.idx();
        self.facts.protected[s] += 1;
        if self.facts.first_protected[s].is_none() {
            self.facts.first_protected[s] = Some((body.len(), ts, off));
        }
        let tls13 = self.facts.tls13();
        let d = &mut self.dirs[s];
        let gave_up = d.fails_in_row >= MAX_FAILS_IN_ROW;
        if d.key.is_none() && d.next.is_none() || gave_up {
            let st = &mut self.facts.sides[s];
            if let Some(loss) = d.loss.take() {
                if loss.exact {
                    st.lost_records += loss.min;
                } else {
                    st.unknown_losses += 1;
                }
            }
            if gave_up {
                st.decrypt_failures += 1;
                sink.gap(side, ts, (body.len() as u64).saturating_sub(17));
                return;
            }
            st.undecrypted_records += 1;
            // Without keys an alert-sized first protected record while the
            // handshake is unfinished is the only trace of an encrypted
            // alert.
            if self.facts.keys != KeyStatus::Found
                && is_alert_sized(body.len(), tls13)
                && self.facts.protected[s] == 1
                && !self.facts.handshake_complete_before(side)
            {
                let ev = AlertEvent { side, ts, offset: off, alert: None, encrypted: true, during_handshake: true };
                self.push_alert(ev, sink);
            }
            return;
        }
        let Some(opened) = self.open_any(cx, side, hdr, body) else {
            let d = &mut self.dirs[s];
            if d.epoch == Epoch::Handshake && d.key.is_none() {
                // A handshake record and no handshake secret logged: only
                // the application key was tried, and it is not its key.
                self.facts.sides[s].undecrypted_records += 1;
                return;
            }
            d.fails_in_row += 1;
            self.facts.sides[s].decrypt_failures += 1;
            match &mut d.loss {
                // Part of the loss still to be resolved.
                Some(l) => {
                    l.wire += (HEADER_LEN + body.len()) as u64;
                    l.min += 1;
                }
                // This record used a sequence number too.
                None => {
                    d.seq += 1;
                    // Only application data records are data for the sink.
                    if d.epoch == Epoch::Application {
                        let overhead = d.key.as_ref().or(d.next.as_ref()).map_or(17, RecordKey::overhead) as u64;
                        sink.gap(side, ts, (body.len() as u64).saturating_sub(overhead));
                    }
                }
            }
            return;
        };
        let d = &mut self.dirs[s];
        d.fails_in_row = 0;
        // Records lost in the handshake epoch held no application data.
        let data_epoch = d.epoch == Epoch::Application;
        if opened.used_next {
            // The epoch's end (server Finished, or a KeyUpdate) was not
            // seen: the next key opened the record.
            d.key = d.next.take();
            d.epoch = Epoch::Application;
            if let Some(sec) = d.next_secret.take() {
                d.secret = Some(sec);
                self.facts.sides[s].key_updates += 1;
            }
        }
        d.seq = opened.seq + 1;
        let overhead = d.key.as_ref().map_or(17, RecordKey::overhead) as u64;
        if let Some(loss) = d.loss.take() {
            let k = opened.lost.unwrap_or(loss.min);
            self.facts.sides[s].lost_records += k;
            if data_epoch {
                sink.gap(side, ts, loss.wire.saturating_sub(k * (HEADER_LEN as u64 + overhead)));
            }
        }
        self.facts.sides[s].decrypted_records += 1;
        let n = opened.len;
        let (ctype, len) = if tls13 {
            // Inner plaintext: content, type, zero padding.
            match cx.out[..n].iter().rposition(|&b| b != 0) {
                Some(i) => (cx.out[i], i),
                None => (0, 0),
            }
        } else {
            (hdr[0], n)
        };
        let out = mem::take(&mut cx.out);
        match ctype {
            content::APPLICATION_DATA => {
                self.facts.sides[s].plaintext_bytes += len as u64;
                sink.plaintext(side, ts, &out[..len]);
            }
            content::HANDSHAKE => self.handshake_bytes(cx, side, &out[..len]),
            content::ALERT => self.alert_bytes(side, ts, off, &out[..len], true, sink),
            _ => self.facts.sides[s].bad_handshake += 1,
        }
        cx.out = out;
    }

    /// Tries the current key at the expected sequence number (after a loss:
    /// the plausible numbers, the explicit nonce's first), then the next
    /// epoch's key from 0. The plaintext is left in `cx.out`.
    fn open_any(&mut self, cx: &mut Decoder<'_>, side: Side, hdr: &[u8; 5], body: &[u8]) -> Option<Opened> {
        let s = side.idx();
        let tls13 = self.facts.tls13();
        let suite = self.suite;
        let d = &mut self.dirs[s];
        let mut tries = 0u64;
        let mut found = None;
        if let Some(key) = &d.key {
            let seqs: Vec<u64> = match d.loss {
                None => vec![d.seq],
                Some(l) if l.exact => vec![d.seq + l.min],
                Some(l) => {
                    // The fewest records the lost bytes can hold, then more.
                    let lo = l.min;
                    let hint = key.seq_hint(body).filter(|&h| h >= d.seq + lo && h < d.seq + lo + (1 << 20));
                    hint.into_iter().chain((lo..lo + MAX_SEQ_TRIES).map(|k| d.seq + k)).collect()
                }
            };
            for seq in seqs {
                tries += 1;
                if let Ok(len) = key.open(seq, hdr, body, &mut cx.out) {
                    let lost = d.loss.map(|_| seq - d.seq);
                    found = Some(Opened { seq, used_next: false, lost, len });
                    break;
                }
            }
        }
        if found.is_none() && tls13 {
            // A new epoch starts at sequence number 0: after the handshake
            // epoch, the application key; in the application epoch, the
            // key of a KeyUpdate that was not seen.
            if d.epoch == Epoch::Application
                && d.next.is_none()
                && let (Some(suite), Some(sec)) = (suite, d.secret.as_ref())
                && let Some(next) = next_traffic_secret(suite.hash, sec)
            {
                d.next = RecordKey::tls13(&suite, &next);
                d.next_secret = Some(next);
            }
            if let Some(key) = &d.next {
                let n = if d.loss.is_some() { MAX_SEQ_TRIES } else { 1 };
                for seq in 0..n {
                    tries += 1;
                    if let Ok(len) = key.open(seq, hdr, body, &mut cx.out) {
                        found = Some(Opened { seq, used_next: true, lost: None, len });
                        break;
                    }
                }
            }
        }
        self.facts.sides[s].trial_opens += tries.saturating_sub(1);
        found
    }
}

/// A record that opened.
struct Opened {
    /// Its sequence number.
    seq: u64,
    /// The next epoch's key opened it.
    used_next: bool,
    /// Records lost before it, when a loss was pending and the count is
    /// known from the sequence number.
    lost: Option<u64>,
    /// Plaintext length in the decoder's buffer.
    len: usize,
}
