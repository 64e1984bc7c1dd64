//! `pov transactions`: one record per HTTP transaction, with Zeek http.log
//! field names where Zeek has the field, and pov's own beside them.

use std::borrow::Cow;
use std::io::{self, Write};

use pov_capture::Ts;
use pov_capture::http::{HttpTransaction, uri};

pub use pov_privacy::Masker;

use crate::output::{Format, Record, RecordWriter};
use crate::parallel::{Downstream, Flow, GO_ON, Prepare};

pov_impact::record! {
    /// One output record (field order is the JSON and CSV column order).
    ///
    /// The columns after `anomalies` carry what the customer stage (users,
    /// sessions, failures: `pov analyze --from-transactions`) takes of a
    /// transaction beyond the others: its identifiers as pseudonyms, the
    /// values read from its bodies, the error page found in them, and the
    /// capture file it came from (crate::stages).
    #[derive(Clone, Debug, Default, serde::Deserialize)]
    pub struct TxRecord {
        /// Request start (epoch seconds); response start for a response without
        /// request.
        pub ts: f64,
        /// Connection id (`C` + pov's connection number).
        pub uid: String,
        /// Client address.
        #[serde(rename = "id.orig_h")]
        pub orig_h: String,
        /// Client port.
        #[serde(rename = "id.orig_p")]
        pub orig_p: u16,
        /// Server address.
        #[serde(rename = "id.resp_h")]
        pub resp_h: String,
        /// Server port.
        #[serde(rename = "id.resp_p")]
        pub resp_p: u16,
        /// Position of the transaction in its connection, from 1.
        pub trans_depth: u32,
        /// Request method.
        pub method: Option<Cow<'static, str>>,
        /// Host header.
        pub host: Option<String>,
        /// Request target, percent-decoded (non-printable bytes as `\xNN`),
        /// secrets masked.
        pub uri: Option<String>,
        /// Request target as sent, secrets masked.
        pub uri_raw: Option<String>,
        /// Referer header, secrets masked.
        pub referrer: Option<String>,
        /// HTTP version of the response (of the request when there is none);
        /// `2` for an HTTP/2 stream.
        pub version: Option<Cow<'static, str>>,
        /// HTTP/2 stream id (absent for HTTP/1.x).
        pub stream_id: Option<u32>,
        /// User-Agent header.
        pub user_agent: Option<String>,
        /// Request body bytes, decoded.
        pub request_body_len: u64,
        /// Response body bytes, decoded.
        pub response_body_len: u64,
        /// Final status code.
        pub status_code: Option<u16>,
        /// Final reason phrase.
        pub status_msg: Option<String>,
        /// Last interim (1xx) status code.
        pub info_code: Option<u16>,
        /// Capture time of the request's first byte.
        pub req_start: Option<f64>,
        /// Capture time of the request's last byte.
        pub req_end: Option<f64>,
        /// Capture time of the response's first byte.
        pub resp_start: Option<f64>,
        /// Capture time of the response's last byte.
        pub resp_end: Option<f64>,
        /// Request end to response start (server time), milliseconds.
        pub ttfb_ms: Option<f64>,
        /// Response start to end, milliseconds.
        pub transfer_ms: Option<f64>,
        /// The connection's handshake round trip, milliseconds.
        pub handshake_rtt_ms: Option<f64>,
        /// How the transaction ended.
        pub outcome: Cow<'static, str>,
        /// For a client abort or no response: how long the client waited, ms.
        pub waited_ms: Option<f64>,
        /// Bytes of the transaction missing from the capture.
        pub missing_bytes: u64,
        /// Response Content-Encoding.
        pub content_encoding: Option<String>,
        /// Response Content-Type.
        pub content_type: Option<String>,
        /// Response body bytes on the wire (de-chunked, not decoded).
        pub wire_body_len: u64,
        /// Request body bytes on the wire (de-chunked, not decoded).
        pub request_wire_body_len: u64,
        /// Cookies sent (`name=value; ...`, values masked; a cookie without
        /// `=` is a masked value).
        pub cookie: Option<String>,
        /// Cookies set by the response (`name=value; ...`, values masked).
        pub set_cookie: Option<String>,
        /// Authorization header (credentials masked).
        pub authorization: Option<String>,
        /// X-Forwarded-For addresses.
        pub x_forwarded_for: Option<String>,
        /// First frame of the request.
        pub req_first_frame: Option<u64>,
        /// Last frame of the request.
        pub req_last_frame: Option<u64>,
        /// First frame of the response.
        pub resp_first_frame: Option<u64>,
        /// Last frame of the response.
        pub resp_last_frame: Option<u64>,
        /// Unusual things about the transaction.
        pub anomalies: Vec<String>,
        /// The capture file it was read from, its file name (`pov
        /// transactions` of one file; absent otherwise: `pov analyze`
        /// names its captures in the dataset's manifest, with their time
        /// spans).
        pub capture: Option<String>,
        /// The client's address after trusted X-Forwarded-For.
        pub client_ip: Option<String>,
        /// The last time the client sent the request again before the
        /// answer began.
        pub req_resent: Option<f64>,
        /// Location header of a redirect, secrets masked.
        pub location: Option<String>,
        /// What it fetched: document, api, style, script, image, font,
        /// media, other.
        pub resource_class: Option<Cow<'static, str>>,
        /// The first configured session cookie sent, `name=value`: the
        /// value is the user's pseudonym for that cookie (raw with
        /// `--no-mask`).
        pub session_cookie: Option<String>,
        /// The first configured session cookie set, likewise.
        pub session_set_cookie: Option<String>,
        /// The configured identity header's value, likewise.
        pub id_header: Option<String>,
        /// A session id from a configured query parameter, `name=value`,
        /// likewise.
        pub id_query: Option<String>,
        /// The first persistent cookie sent, `name=value`, likewise.
        pub persistent_cookie: Option<String>,
        /// The sign-in name the request's body carries, likewise.
        pub login: Option<String>,
        /// Order value read from the request or its answer.
        pub order_value: Option<f64>,
        /// Cart value read from the answer or the request.
        pub cart_value: Option<f64>,
        /// The error-page or API-error rule its 2xx body matched.
        pub error_rule: Option<String>,
        /// That rule's evidence, masked.
        pub error_evidence: Option<String>,
        /// Whether the identifiers above are pseudonyms (false with
        /// `--no-mask`).
        pub pseudonyms: Option<bool>,
    }
    /// The column names of [`TxRecord`].
    pub columns TxColumns;
}

/// Appends `part` to `out` after a `; ` when both are not empty; a part
/// that `part` leaves empty adds nothing.
fn push_part(out: &mut String, part: impl FnOnce(&mut String)) {
    let before = out.len();
    if before > 0 {
        out.push_str("; ");
    }
    let at = out.len();
    part(out);
    if out.len() == at {
        out.truncate(before);
    }
}

/// A method's text: the common ones are static (no allocation a record).
fn method(m: &str) -> Cow<'static, str> {
    const COMMON: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"];
    match COMMON.iter().find(|c| **c == m) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(m.to_owned()),
    }
}

fn secs(t: Option<Ts>) -> Option<f64> {
    t.map(Ts::as_secs_f64)
}

/// Room for the texts of the next record filled in place
/// ([`TxRecord::fill`]): the strings of fields left empty, and a buffer for
/// masked targets. A record filled again and again (one a shard's thread,
/// [`Records`]) allocates only for texts longer than it has held.
#[derive(Default)]
pub struct Room {
    strings: Vec<String>,
    target: Vec<u8>,
}

impl Room {
    /// Sets `slot` to the text `write` appends to an empty string, or to
    /// `None` when `write` says `false` (its string kept for another field).
    fn set(&mut self, slot: &mut Option<String>, write: impl FnOnce(&mut String) -> bool) {
        let mut s = match slot.take() {
            Some(mut s) => {
                s.clear();
                s
            }
            None => self.strings.pop().unwrap_or_default(),
        };
        if write(&mut s) {
            *slot = Some(s);
        } else {
            self.keep(s);
        }
    }

    /// Sets `slot` to `text`, copied into a string it or the room holds.
    fn set_text(&mut self, slot: &mut Option<String>, text: Option<&str>) {
        self.set(slot, |s| text.map(|t| s.push_str(t)).is_some());
    }

    /// Sets `slot` to a text made elsewhere (its old string kept).
    fn set_made(&mut self, slot: &mut Option<String>, text: Option<String>) {
        if let Some(old) = std::mem::replace(slot, text) {
            self.keep(old);
        }
    }

    /// Empties `slot`, keeping its string.
    fn clear(&mut self, slot: &mut Option<String>) {
        if let Some(old) = slot.take() {
            self.keep(old);
        }
    }

    fn keep(&mut self, mut s: String) {
        // Few fields are empty at once; a string grown by a rare long text
        // is let go.
        if s.capacity() > 0 && s.capacity() <= ROOM_STRING_KEPT && self.strings.len() < ROOM_STRINGS {
            s.clear();
            self.strings.push(s);
        }
    }
}

/// Strings a [`Room`] keeps at most.
const ROOM_STRINGS: usize = 64;

/// The longest string a [`Room`] keeps.
const ROOM_STRING_KEPT: usize = 4096;

impl TxRecord {
    /// The record of a transaction.
    pub fn new(tx: &HttpTransaction, mask: &Masker) -> TxRecord {
        let mut r = TxRecord::default();
        r.fill(tx, mask, &mut Room::default());
        r
    }

    /// Makes this record the record of `tx` ([`TxRecord::new`]), in place:
    /// its strings and those in `room` hold the texts. Every field is set;
    /// the customer stage's columns are emptied.
    pub fn fill(&mut self, tx: &HttpTransaction, mask: &Masker, room: &mut Room) {
        // Every field named, so that a field added to the record cannot be
        // left holding the last transaction's value.
        let TxRecord {
            ts,
            uid,
            orig_h,
            orig_p,
            resp_h,
            resp_p,
            trans_depth,
            method: method_text,
            host,
            uri,
            uri_raw,
            referrer,
            version,
            stream_id,
            user_agent,
            request_body_len,
            response_body_len,
            status_code,
            status_msg,
            info_code,
            req_start,
            req_end,
            resp_start,
            resp_end,
            ttfb_ms,
            transfer_ms,
            handshake_rtt_ms,
            outcome,
            waited_ms,
            missing_bytes,
            content_encoding,
            content_type,
            wire_body_len,
            request_wire_body_len,
            cookie,
            set_cookie,
            authorization,
            x_forwarded_for,
            req_first_frame,
            req_last_frame,
            resp_first_frame,
            resp_last_frame,
            anomalies,
            capture,
            client_ip,
            req_resent,
            location,
            resource_class,
            session_cookie,
            session_set_cookie,
            id_header,
            id_query,
            persistent_cookie,
            login,
            order_value,
            cart_value,
            error_rule,
            error_evidence,
            pseudonyms,
        } = self;
        let req = tx.request.as_ref();
        let resp = tx.response.as_ref();
        // Header text, masked: copied once (the masked text borrows the
        // lossy text, which borrows the header when it is UTF-8).
        let masked = |s: &mut String, v: Option<&[u8]>| {
            v.map(|v| s.push_str(&mask.text(&pov_capture::text::lossy(v)))).is_some()
        };
        *ts = tx.timing.start().as_secs_f64();
        uid.clear();
        pov_capture::text::push_conn_uid(uid, tx.conn);
        orig_h.clear();
        pov_capture::text::push_ip(orig_h, tx.client.ip());
        *orig_p = tx.client.port();
        resp_h.clear();
        pov_capture::text::push_ip(resp_h, tx.server.ip());
        *resp_p = tx.server.port();
        *trans_depth = tx.depth;
        *method_text = req.map(|r| method(&r.method)).filter(|m| !m.is_empty());
        room.set(host, |s| masked(s, req.and_then(|r| r.headers.get("host"))));
        // Masked as sent, then decoded: a secret is masked however it was
        // encoded.
        let mut target_room = std::mem::take(&mut room.target);
        let target = req.map(|r| mask.url_raw_in(&r.uri, &mut target_room));
        room.set(uri, |s| target.map(|t| uri::zeek_decode_into(t, s)).is_some() && !s.is_empty());
        room.set(uri_raw, |s| target.map(|t| uri::escape_into(t, s)).is_some() && !s.is_empty());
        room.target = target_room;
        room.set_made(referrer, req.and_then(|r| r.headers.get("referer")).map(|v| mask.header_value("referer", v)));
        *version = tx.version_text().map(Cow::Borrowed);
        *stream_id = tx.stream;
        room.set(user_agent, |s| masked(s, req.and_then(|r| r.headers.get("user-agent"))));
        *request_body_len = tx.request_body.decoded_len;
        *response_body_len = tx.response_body.decoded_len;
        *status_code = resp.map(|r| r.status);
        room.set(status_msg, |s| masked(s, resp.map(|r| r.reason.as_slice())));
        *info_code = tx.interim.last().copied();
        *req_start = secs(tx.timing.req_start);
        *req_end = secs(tx.timing.req_end);
        *resp_start = secs(tx.timing.resp_start);
        *resp_end = secs(tx.timing.resp_end);
        *ttfb_ms = tx.timing.ttfb().map(|d| d.as_millis_f64());
        *transfer_ms = tx.timing.transfer().map(|d| d.as_millis_f64());
        *handshake_rtt_ms = tx.timing.handshake_rtt.map(|d| d.as_millis_f64());
        *outcome = Cow::Borrowed(tx.outcome.as_str());
        *waited_ms = tx.waited.map(|d| d.as_millis_f64());
        *missing_bytes = tx.missing_bytes;
        room.set_text(content_encoding, resp.and_then(|r| r.headers.text_ref("content-encoding")).as_deref());
        room.set_text(content_type, resp.and_then(|r| r.headers.text_ref("content-type")).as_deref());
        *wire_body_len = tx.response_body.wire_len;
        *request_wire_body_len = tx.request_body.wire_len;
        room.set(cookie, |s| {
            for v in req.into_iter().flat_map(|r| r.headers.get_all("cookie")) {
                push_part(s, |s| mask.push_cookie_header(v, s));
            }
            !s.is_empty()
        });
        room.set(set_cookie, |s| {
            for v in resp.into_iter().flat_map(|r| r.headers.get_all("set-cookie")) {
                push_part(s, |s| {
                    let (k, v) = mask.set_cookie_pair(v);
                    if !k.is_empty() {
                        s.push_str(&k);
                        s.push('=');
                    }
                    s.push_str(&v);
                });
            }
            !s.is_empty()
        });
        room.set_made(
            authorization,
            req.and_then(|r| r.headers.get("authorization")).map(|a| mask.header_value("authorization", a)),
        );
        room.set(x_forwarded_for, |s| {
            for (i, a) in req.map(|r| r.x_forwarded_for()).unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(a);
            }
            !s.is_empty()
        });
        *req_first_frame = tx.req_frames.map(|f| f.first);
        *req_last_frame = tx.req_frames.map(|f| f.last);
        *resp_first_frame = tx.resp_frames.map(|f| f.first);
        *resp_last_frame = tx.resp_frames.map(|f| f.last);
        anomalies.clear();
        anomalies.extend(tx.anomalies.iter().map(|a| a.as_str().to_owned()));
        // The customer stage's columns ([`TxRecord::set_customer`]).
        for slot in [
            capture,
            client_ip,
            location,
            session_cookie,
            session_set_cookie,
            id_header,
            id_query,
            persistent_cookie,
            login,
            error_rule,
            error_evidence,
        ] {
            room.clear(slot);
        }
        *req_resent = None;
        *resource_class = None;
        *order_value = None;
        *cart_value = None;
        *pseudonyms = None;
    }

    /// Fills the customer stage's columns from the sessions' view of the
    /// transaction: identifiers as the pseudonyms of the user keys they
    /// make (`salt`: `[privacy] hash_salt`) when `mask`, texts masked by
    /// `masker`.
    pub fn set_customer(&mut self, tx: &pov_sessions::Tx, masker: &Masker, salt: &str, capture: Option<&str>) {
        self.fill_customer(tx, masker, salt, capture, &mut Room::default());
    }

    /// [`TxRecord::set_customer`] in place, as [`TxRecord::fill`].
    pub fn fill_customer(
        &mut self,
        tx: &pov_sessions::Tx,
        masker: &Masker,
        salt: &str,
        capture: Option<&str>,
        room: &mut Room,
    ) {
        use pov_sessions::UserKey;
        let mask = masker.is_on();
        let key = |k: UserKey, raw: &str| if mask { k.hashed(salt) } else { raw.to_string() };
        let pair = |s: &mut String, p: &Option<(String, String)>, query: bool| {
            p.as_ref()
                .map(|(n, v)| {
                    s.push_str(n);
                    s.push('=');
                    if mask {
                        s.push_str(&UserKey::pair_hashed(query, n, v, salt));
                    } else {
                        s.push_str(v);
                    }
                })
                .is_some()
        };
        room.set_text(&mut self.capture, capture);
        room.set(&mut self.client_ip, |s| {
            pov_capture::text::push_ip(s, tx.client_ip);
            true
        });
        self.req_resent = secs(tx.req_resent);
        room.set_made(
            &mut self.location,
            tx.location.as_deref().map(|l| masker.header_value("location", l.as_bytes())),
        );
        self.resource_class = Some(Cow::Borrowed(tx.class.as_str()));
        let ev = tx.evidence();
        room.set(&mut self.session_cookie, |s| pair(s, &ev.cookie, false));
        room.set(&mut self.session_set_cookie, |s| pair(s, &ev.set_cookie, false));
        room.set_made(&mut self.id_header, ev.header_id.as_ref().map(|h| key(UserKey::Header(h.clone()), h)));
        room.set(&mut self.id_query, |s| pair(s, &ev.query_id, true));
        room.set(&mut self.persistent_cookie, |s| pair(s, &ev.persistent, false));
        room.set_made(&mut self.login, tx.login.as_ref().map(|l| key(UserKey::Login(l.clone()), l)));
        self.order_value = tx.order_value;
        self.cart_value = tx.cart_value;
        room.set_text(&mut self.error_rule, tx.error_page.as_ref().map(|e| e.rule.as_str()));
        room.set(&mut self.error_evidence, |s| {
            tx.error_page.as_ref().map(|e| s.push_str(&masker.text(&e.evidence))).is_some()
        });
        self.pseudonyms = Some(mask);
    }
}

impl TxRecord {
    /// Heap bytes its texts hold (for memory accounting; the record itself
    /// is `size_of::<TxRecord>()`).
    pub fn heap_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        // A closed set's text (outcome, version, class) is static: no heap.
        let cow = |s: &Cow<'static, str>| match s {
            Cow::Owned(s) => s.capacity(),
            Cow::Borrowed(_) => 0,
        };
        [&self.uid, &self.orig_h, &self.resp_h].iter().map(|s| s.capacity()).sum::<usize>()
            + cow(&self.outcome)
            + self.version.as_ref().map_or(0, cow)
            + self.method.as_ref().map_or(0, cow)
            + self.resource_class.as_ref().map_or(0, cow)
            + [
                &self.host,
                &self.uri,
                &self.uri_raw,
                &self.referrer,
                &self.user_agent,
                &self.status_msg,
                &self.content_encoding,
                &self.content_type,
                &self.cookie,
                &self.set_cookie,
                &self.authorization,
                &self.x_forwarded_for,
                &self.capture,
                &self.client_ip,
                &self.location,
                &self.session_cookie,
                &self.session_set_cookie,
                &self.id_header,
                &self.id_query,
                &self.persistent_cookie,
                &self.login,
                &self.error_rule,
                &self.error_evidence,
            ]
            .into_iter()
            .map(opt)
            .sum::<usize>()
            + self.anomalies.iter().map(|a| a.capacity() + std::mem::size_of::<String>()).sum::<usize>()
    }
}

impl Record for TxRecord {
    const HEADER: &'static [&'static str] = &[
        "ts",
        "client",
        "server",
        "depth",
        "method",
        "host",
        "uri",
        "status",
        "resp bytes",
        "ttfb ms",
        "outcome",
        "missing",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            format!("{:.6}", self.ts),
            format!("{}:{}", self.orig_h, self.orig_p),
            format!("{}:{}", self.resp_h, self.resp_p),
            self.trans_depth.to_string(),
            self.method.as_deref().unwrap_or("-").to_string(),
            self.host.clone().unwrap_or_else(|| "-".into()),
            self.uri.clone().unwrap_or_else(|| "-".into()),
            self.status_code.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            self.response_body_len.to_string(),
            self.ttfb_ms.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
            self.outcome.to_string(),
            self.missing_bytes.to_string(),
        ]
    }
}

/// Writes transactions as they come, in any format (see [`RecordWriter`]).
pub struct TxWriter<W: Write> {
    out: RecordWriter<W, TxRecord>,
    mask: Masker,
    customer: Option<Customer>,
}

impl<W: Write> TxWriter<W> {
    /// A writer in `format`.
    pub fn new(out: W, format: Format, mask: Masker) -> io::Result<TxWriter<W>> {
        Ok(TxWriter { out: RecordWriter::new(out, format)?, mask, customer: None })
    }

    /// Transactions written.
    pub fn count(&self) -> u64 {
        self.out.count()
    }

    /// Ends the output and flushes; returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.out.finish()
    }

    /// Writes one record.
    pub fn write_record(&mut self, r: &TxRecord) -> io::Result<()> {
        self.out.write(r)
    }

    /// Writes one record made by [`TxWriter::preparer`].
    pub fn write_prepared(&mut self, r: Prepared) -> io::Result<()> {
        match r.0 {
            Made::Record(r) => self.out.write(&r),
            Made::Row(row, _) => self.out.write_row(row?),
            Made::Text(text, _) => self.out.write_text(&text?),
        }
    }

    /// What makes this writer's records from transactions, on the shards:
    /// for Parquet, taken apart into the file's cells there too; for JSON,
    /// JSON lines and CSV, made text there.
    pub fn preparer(&self) -> Records {
        let shape = match (self.out.row_shape(), self.out.text_shape()) {
            (Some(row), _) => Some(Shape::Row(row)),
            (None, Some(text)) => Some(Shape::Text(text)),
            (None, None) => None,
        };
        Records(self.mask.clone(), self.customer.clone(), shape)
    }

    /// Fills the customer stage's columns of every record
    /// ([`TxRecord::set_customer`]).
    pub fn with_customer(mut self, c: Customer) -> TxWriter<W> {
        self.customer = Some(c);
        self
    }
}

/// What fills the customer stage's columns of transaction records: the
/// user stage's view of a transaction, the salt of the pseudonyms, and the
/// capture file's name when the run reads one.
#[derive(Clone)]
pub struct Customer {
    /// The sessions' view of transactions.
    pub txs: std::sync::Arc<crate::users::SessionTxs>,
    /// `[privacy] hash_salt`.
    pub salt: String,
    /// The capture file's name.
    pub capture: Option<String>,
}

impl Customer {
    /// For `cfg`; `inputs` are the capture files of the run.
    pub fn new(cfg: &crate::config::PovConfig, inputs: &[std::path::PathBuf]) -> Result<Customer, String> {
        Ok(Customer::with_txs(cfg, inputs, std::sync::Arc::new(crate::users::SessionTxs::new(cfg)?)))
    }

    /// As [`Customer::new`], sharing `txs` (a user stage's, built from the
    /// same `cfg`: its patterns are compiled once).
    pub fn with_txs(
        cfg: &crate::config::PovConfig,
        inputs: &[std::path::PathBuf],
        txs: std::sync::Arc<crate::users::SessionTxs>,
    ) -> Customer {
        // Not for stdin ("-"), whose name says nothing of the capture.
        let capture = match inputs {
            [one] if one.as_os_str() != "-" => one.file_name().map(|n| n.to_string_lossy().into_owned()),
            _ => None,
        };
        Customer { txs, salt: cfg.privacy.hash_salt.clone(), capture }
    }
}

/// Makes transaction records, masked as the writer masks them (and taken
/// apart for its Parquet file, or made text for its JSON or CSV, when it
/// writes one).
#[derive(Clone)]
pub struct Records(Masker, Option<Customer>, Option<Shape>);

/// What the writer takes of a record, when not the record itself.
#[derive(Clone)]
enum Shape {
    Row(pov_impact::RowShape),
    Text(crate::output::TextShape),
}

impl Shape {
    /// `r` taken apart, or made text.
    fn made(&self, r: &TxRecord) -> Made {
        match self {
            Shape::Row(shape) => Made::Row(shape.record_row(r), (r.ts, r.missing_bytes)),
            Shape::Text(shape) => Made::Text(shape.text(r), (r.ts, r.missing_bytes)),
        }
    }
}

/// A transaction's record as [`Records`] makes it on the shards, for
/// [`TxWriter::write_prepared`]: whole, or already taken apart into the
/// cells of the writer's Parquet file, or already text (so that the thread
/// that writes it in order only appends it).
pub struct Prepared(Made);

enum Made {
    Record(Box<TxRecord>),
    /// The cells, and the record's start and missing bytes.
    Row(io::Result<pov_impact::Row>, (f64, u64)),
    /// The text, and the record's start and missing bytes.
    Text(io::Result<Vec<u8>>, (f64, u64)),
}

impl Prepared {
    /// A record as it is (read back from a file, say).
    pub fn whole(r: TxRecord) -> Prepared {
        Prepared(Made::Record(Box::new(r)))
    }

    /// The transaction's start (the record's `ts`).
    pub fn ts(&self) -> f64 {
        match &self.0 {
            Made::Record(r) => r.ts,
            Made::Row(_, (ts, _)) | Made::Text(_, (ts, _)) => *ts,
        }
    }

    /// Bytes missing from the capture in the transaction.
    pub fn missing_bytes(&self) -> u64 {
        match &self.0 {
            Made::Record(r) => r.missing_bytes,
            Made::Row(_, (_, missing)) | Made::Text(_, (_, missing)) => *missing,
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Made::Record(r) => std::mem::size_of::<TxRecord>() + r.heap_bytes(),
            Made::Row(Ok(row), _) => row.heap_bytes(),
            Made::Text(Ok(text), _) => text.capacity(),
            Made::Row(Err(_), _) | Made::Text(Err(_), _) => 0,
        }
    }
}

impl Records {
    /// The record of `tx`.
    pub fn record(&self, tx: &HttpTransaction) -> TxRecord {
        let mut r = TxRecord::new(tx, &self.0);
        if let Some(c) = &self.1 {
            r.set_customer(&c.txs.tx(tx), &self.0, &c.salt, c.capture.as_deref());
        }
        r
    }

    /// The record of `http`, whose sessions' view is `tx`.
    pub fn record_with(&self, http: &HttpTransaction, tx: &pov_sessions::Tx) -> TxRecord {
        let mut r = TxRecord::new(http, &self.0);
        if let Some(c) = &self.1 {
            r.set_customer(tx, &self.0, &c.salt, c.capture.as_deref());
        }
        r
    }

    /// `r` as the writer takes it: taken apart now for a Parquet file,
    /// made text now for JSON or CSV.
    pub fn prepared(&self, r: TxRecord) -> Prepared {
        Prepared(match &self.2 {
            Some(shape) => shape.made(&r),
            None => Made::Record(Box::new(r)),
        })
    }

    /// The record of `http` as the writer takes it ([`Records::prepared`]
    /// of [`Records::record_with`], or of [`Records::record`] when `tx` is
    /// `None`). A record taken apart or made text is filled in this
    /// thread's record of the last transaction, whose strings hold its
    /// texts: no allocation a field.
    pub fn prepare_from(&self, http: &HttpTransaction, tx: Option<&pov_sessions::Tx>) -> Prepared {
        let Some(shape) = &self.2 else {
            return self.prepared(match tx {
                Some(tx) => self.record_with(http, tx),
                None => self.record(http),
            });
        };
        let mut kept = KEPT_RECORD.take().unwrap_or_default();
        let (record, room) = &mut *kept;
        record.fill(http, &self.0, room);
        if let Some(c) = &self.1 {
            let view;
            let tx = match tx {
                Some(tx) => tx,
                None => {
                    view = c.txs.tx(http);
                    &view
                }
            };
            record.fill_customer(tx, &self.0, &c.salt, c.capture.as_deref(), room);
        }
        let made = shape.made(record);
        // A record that held a rare long text lets it go.
        if record.heap_bytes() <= KEPT_RECORD_BYTES {
            KEPT_RECORD.set(Some(kept));
        }
        Prepared(made)
    }
}

thread_local! {
    /// The record [`Records::prepare_from`] filled last on this thread, and
    /// the room for its texts.
    static KEPT_RECORD: std::cell::Cell<Option<Box<(TxRecord, Room)>>> = const { std::cell::Cell::new(None) };
}

/// The most text a kept record may hold.
const KEPT_RECORD_BYTES: usize = 64 << 10;

impl Prepare for Records {
    type Item = Prepared;
    fn prepare(&self, tx: Box<HttpTransaction>) -> Prepared {
        self.prepare_from(&tx, None)
    }
    fn held_bytes(r: &Prepared) -> usize {
        r.heap_bytes()
    }
}

impl<W: Write> Downstream for TxWriter<W> {
    type Item = Prepared;
    type Prep = Records;
    fn preparer(&self) -> Records {
        TxWriter::preparer(self)
    }
    fn on_transaction(&mut self, r: Prepared) -> Flow {
        self.write_prepared(r)?;
        GO_ON
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pov_capture::http::{Headers, Outcome, RequestHead, ResponseHead};

    fn tx(uri: &[u8], req: &[(&[u8], &[u8])], resp: &[(&[u8], &[u8])]) -> HttpTransaction {
        HttpTransaction {
            conn: 1,
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            depth: 1,
            stream: None,
            tls: false,
            request: Some(RequestHead {
                method: "GET".into(),
                uri: uri.to_vec(),
                version: Some(1),
                headers: Headers::from_pairs(req.iter().copied()),
            }),
            response: Some(ResponseHead {
                version: Some(1),
                status: 200,
                reason: b"OK".to_vec(),
                headers: Headers::from_pairs(resp.iter().copied()),
            }),
            interim: Vec::new(),
            timing: Default::default(),
            req_frames: None,
            resp_frames: None,
            request_body: Default::default(),
            response_body: Default::default(),
            outcome: Outcome::Complete,
            waited: None,
            missing_bytes: 0,
            anomalies: Vec::new(),
        }
    }

    #[test]
    fn records_mask_secrets() {
        let cfg = pov_privacy::PrivacyConfig { mask_key: Some("t".into()), ..Default::default() };
        let m = Masker::new(&cfg, true);
        let t = tx(
            b"/a;jsessionid=J1?p%61ssword=%41b&q=x%20y",
            &[
                (b"Cookie", b"sid=abc; b4re"),
                (b"Cookie", b"theme=dark"),
                (b"Authorization", b"Basic dXNlcjpwYXNz"),
                (b"Referer", b"http://h/?token=R"),
            ],
            &[(b"Set-Cookie", b"sid=n3w; Path=/"), (b"Set-Cookie", b"lonely")],
        );
        let r = TxRecord::new(&t, &m);
        let k = |v: &str| m.mask(v.as_bytes());
        // The masked target, then decoded: the encoded secret is gone in both.
        assert_eq!(r.uri_raw.unwrap(), format!("/a;jsessionid={}?p%61ssword={}&q=x%20y", k("J1"), k("Ab")));
        assert_eq!(r.uri.unwrap(), format!("/a;jsessionid={}?password={}&q=x y", k("J1"), k("Ab")));
        assert_eq!(r.referrer.unwrap(), format!("http://h/?token={}", k("R")));
        assert_eq!(r.cookie.unwrap(), format!("sid={}; {}; theme={}", k("abc"), k("b4re"), k("dark")));
        assert_eq!(r.set_cookie.unwrap(), format!("sid={}; {}", k("n3w"), k("lonely")));
        assert_eq!(r.authorization.unwrap(), format!("Basic {}", k("dXNlcjpwYXNz")));
        let open = TxRecord::new(&t, &Masker::off());
        assert_eq!(open.uri.unwrap(), "/a;jsessionid=J1?password=Ab&q=x y");
        assert_eq!(open.cookie.unwrap(), "sid=abc; b4re; theme=dark");
        assert_eq!(open.set_cookie.unwrap(), "sid=n3w; lonely");
        assert_eq!(open.authorization.unwrap(), "Basic dXNlcjpwYXNz");
    }

    /// Every transaction of two real captures (cookies sent and set,
    /// redirects, sign-ins, error pages, losses), filled one after
    /// another into one record (forwards, then backwards, so that each
    /// field goes from set to empty and back) with the customer columns
    /// on every other one, is the record made new, masked and not.
    #[test]
    fn a_record_filled_again_is_the_record_made_new() {
        let samples = pov_capture::testing::manifest_dir().join("../../samples");
        let cfg = crate::config::PovConfig::load(&samples.join("pov.toml")).unwrap();
        let views = crate::users::SessionTxs::new(&cfg).unwrap();
        let pipe = crate::pipeline::PipelineConfig::default();
        let mut txs: Vec<HttpTransaction> = Vec::new();
        let (files, errors) =
            crate::pipeline::open_inputs(&[samples.join("shop.pcap"), samples.join("shop-lossy.pcapng")]);
        let threads = crate::parallel::Threads::default();
        crate::parallel::run(files, errors, &pipe, Some(&pipe.http), threads, None, &mut txs, &mut |_| {}).unwrap();
        assert!(txs.len() > 1500, "{} transactions", txs.len());
        let order: Vec<&HttpTransaction> = txs.iter().chain(txs.iter().rev()).collect();
        let privacy = pov_privacy::PrivacyConfig { mask_key: Some("t".into()), ..Default::default() };
        let (mut filled, mut room) = (TxRecord::default(), Room::default());
        let mut seen = [0usize; 6];
        for mask in [Masker::new(&privacy, true), Masker::off()] {
            for (i, t) in order.iter().enumerate() {
                let mut new = TxRecord::new(t, &mask);
                filled.fill(t, &mask, &mut room);
                if i % 2 == 0 {
                    let view = views.tx(t);
                    new.set_customer(&view, &mask, "salt", Some("shop.pcap"));
                    filled.fill_customer(&view, &mask, "salt", Some("shop.pcap"), &mut room);
                }
                let (want, got) = (serde_json::to_value(&new).unwrap(), serde_json::to_value(&filled).unwrap());
                assert_eq!(got, want, "transaction {i}");
                let parts =
                    [&new.cookie, &new.set_cookie, &new.session_cookie, &new.location, &new.error_rule, &new.login];
                for (n, set) in parts.into_iter().enumerate() {
                    seen[n] += usize::from(set.is_some());
                }
            }
        }
        // The texts that are made of parts were there to be made.
        assert!(seen.iter().all(|n| *n > 10), "{seen:?}");
    }
}
