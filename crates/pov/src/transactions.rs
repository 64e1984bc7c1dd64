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

/// `a; b; ...` of non-empty parts, or nothing.
fn joined(parts: impl Iterator<Item = String>) -> Option<String> {
    let v: Vec<String> = parts.filter(|p| !p.is_empty()).collect();
    (!v.is_empty()).then(|| v.join("; "))
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

fn ip(a: std::net::SocketAddr) -> String {
    pov_capture::text::ip_text(a.ip())
}

impl TxRecord {
    /// The record of a transaction.
    pub fn new(tx: &HttpTransaction, mask: &Masker) -> TxRecord {
        let req = tx.request.as_ref();
        let resp = tx.response.as_ref();
        // Masked as sent, then decoded: a secret is masked however it was
        // encoded.
        let target = req.map(|r| mask.url_raw(&r.uri));
        let anomalies = tx.anomalies.iter().map(|a| a.as_str().to_owned()).collect();
        // Header text, masked: one allocation (the masked text borrows the
        // lossy text, which borrows the header when it is UTF-8).
        let masked = |v: &[u8]| mask.text(&pov_capture::text::lossy(v)).into_owned();
        TxRecord {
            ts: tx.timing.start().as_secs_f64(),
            uid: pov_capture::text::conn_uid(tx.conn),
            orig_h: ip(tx.client),
            orig_p: tx.client.port(),
            resp_h: ip(tx.server),
            resp_p: tx.server.port(),
            trans_depth: tx.depth,
            method: req.map(|r| method(&r.method)).filter(|m| !m.is_empty()),
            host: req.and_then(|r| r.headers.get("host")).map(masked),
            uri: target.as_deref().map(uri::zeek_decode).filter(|u| !u.is_empty()),
            uri_raw: target.as_deref().map(uri::escape).filter(|u| !u.is_empty()),
            referrer: req.and_then(|r| r.headers.get("referer")).map(|v| mask.header_value("referer", v)),
            version: tx.version_text().map(Cow::Borrowed),
            stream_id: tx.stream,
            user_agent: req.and_then(|r| r.headers.get("user-agent")).map(masked),
            request_body_len: tx.request_body.decoded_len,
            response_body_len: tx.response_body.decoded_len,
            status_code: resp.map(|r| r.status),
            status_msg: resp.map(|r| masked(&r.reason)),
            info_code: tx.interim.last().copied(),
            req_start: secs(tx.timing.req_start),
            req_end: secs(tx.timing.req_end),
            resp_start: secs(tx.timing.resp_start),
            resp_end: secs(tx.timing.resp_end),
            ttfb_ms: tx.timing.ttfb().map(|d| d.as_millis_f64()),
            transfer_ms: tx.timing.transfer().map(|d| d.as_millis_f64()),
            handshake_rtt_ms: tx.timing.handshake_rtt.map(|d| d.as_millis_f64()),
            outcome: Cow::Borrowed(tx.outcome.as_str()),
            waited_ms: tx.waited.map(|d| d.as_millis_f64()),
            missing_bytes: tx.missing_bytes,
            content_encoding: resp.and_then(|r| r.headers.text("content-encoding")),
            content_type: resp.and_then(|r| r.content_type()),
            wire_body_len: tx.response_body.wire_len,
            request_wire_body_len: tx.request_body.wire_len,
            cookie: req.and_then(|r| joined(r.headers.get_all("cookie").map(|v| mask.cookie_header(v)))),
            set_cookie: resp.and_then(|r| {
                joined(r.headers.get_all("set-cookie").map(|v| {
                    let (k, v) = mask.set_cookie_pair(v);
                    if k.is_empty() { v } else { format!("{k}={v}") }
                }))
            }),
            authorization: req
                .and_then(|r| r.headers.get("authorization"))
                .map(|a| mask.header_value("authorization", a)),
            x_forwarded_for: req.map(|r| r.x_forwarded_for().join(", ")).filter(|s| !s.is_empty()),
            req_first_frame: tx.req_frames.map(|f| f.first),
            req_last_frame: tx.req_frames.map(|f| f.last),
            resp_first_frame: tx.resp_frames.map(|f| f.first),
            resp_last_frame: tx.resp_frames.map(|f| f.last),
            anomalies,
            ..TxRecord::default()
        }
    }

    /// Fills the customer stage's columns from the sessions' view of the
    /// transaction: identifiers as the pseudonyms of the user keys they
    /// make (`salt`: `[privacy] hash_salt`) when `mask`, texts masked by
    /// `masker`.
    pub fn set_customer(&mut self, tx: &pov_sessions::Tx, masker: &Masker, salt: &str, capture: Option<&str>) {
        use pov_sessions::UserKey;
        let mask = masker.is_on();
        let key = |k: UserKey, raw: &str| if mask { k.hashed(salt) } else { raw.to_string() };
        let pair = |p: &Option<(String, String)>, query: bool| {
            p.as_ref().map(|(n, v)| {
                let mut out = String::with_capacity(n.len() + 1 + if mask { 16 } else { v.len() });
                out.push_str(n);
                out.push('=');
                if mask {
                    out.push_str(&UserKey::pair_hashed(query, n, v, salt));
                } else {
                    out.push_str(v);
                }
                out
            })
        };
        self.capture = capture.map(str::to_owned);
        self.client_ip = Some(pov_capture::text::ip_text(tx.client_ip));
        self.req_resent = secs(tx.req_resent);
        self.location = tx.location.as_deref().map(|l| masker.header_value("location", l.as_bytes()));
        self.resource_class = Some(Cow::Borrowed(tx.class.as_str()));
        let ev = tx.evidence();
        self.session_cookie = pair(&ev.cookie, false);
        self.session_set_cookie = pair(&ev.set_cookie, false);
        self.id_header = ev.header_id.as_ref().map(|h| key(UserKey::Header(h.clone()), h));
        self.id_query = pair(&ev.query_id, true);
        self.persistent_cookie = pair(&ev.persistent, false);
        self.login = tx.login.as_ref().map(|l| key(UserKey::Login(l.clone()), l));
        self.order_value = tx.order_value;
        self.cart_value = tx.cart_value;
        self.error_rule = tx.error_page.as_ref().map(|e| e.rule.clone());
        self.error_evidence = tx.error_page.as_ref().map(|e| masker.text(&e.evidence).into_owned());
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
            Some(Shape::Row(shape)) => Made::Row(shape.record_row(&r), (r.ts, r.missing_bytes)),
            Some(Shape::Text(shape)) => Made::Text(shape.text(&r), (r.ts, r.missing_bytes)),
            None => Made::Record(Box::new(r)),
        })
    }
}

impl Prepare for Records {
    type Item = Prepared;
    fn prepare(&self, tx: HttpTransaction) -> Prepared {
        self.prepared(self.record(&tx))
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
}
