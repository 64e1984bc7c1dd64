//! The two stages of `pov analyze`, run apart.
//!
//! The packet stage (`pov transactions --format parquet`, one capture file
//! per run, on any machine) writes transaction records that carry all the
//! customer stage needs ([`TxRecord`]'s customer columns: identifiers as
//! pseudonyms, body values, error pages, the capture file), and with
//! `--failed-connections FILE` the connection attempts that failed before
//! any HTTP ([`FailedConnRecord`]). The customer stage (`pov analyze
//! --from-transactions GLOB`: identity, sessions, classification, impact,
//! report) reads those files back, merged by capture time across files
//! with a bounded merge (one slice of rows per file held, never a whole
//! file), and feeds the user stage in the order the packet stage wrote
//! them.
//!
//! What can differ from one `pov analyze` of the whole capture: a TCP
//! connection cut by a file boundary is two connections to the packet
//! stage (the part after the cut starts mid-stream, its transactions are
//! lost or read from the middle, counted in `counters.tcp` of that part's
//! run); and connection numbers restart in each part, so the customer
//! stage renumbers them per capture file (`uid` in its outputs). docs/fleet.md
//! has the details.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use pov_capture::Ts;
use pov_capture::http::{FrameSpan, Outcome};
use pov_capture::tcp::ConnSummary;
use pov_capture::time::Dur;
use pov_impact::read::{RowReader, columns};
use pov_impact::schema::FailedConnRecord;
use pov_sessions::{ErrorBody, Evidence, FailedConn, FailedConnKind, ResourceClass, Tx};

use crate::output::{Record, RecordWriter};
use crate::parallel::{Downstream, Flow, GO_ON};
use crate::transactions::{Prepared, Records, TxRecord, TxWriter};

impl Record for FailedConnRecord {
    const HEADER: &'static [&'static str] = &["ts", "client", "server", "kind", "syns", "frames"];
    fn cells(&self) -> Vec<String> {
        vec![
            format!("{:.6}", self.ts),
            format!("{}:{}", self.orig_h, self.orig_p),
            format!("{}:{}", self.resp_h, self.resp_p),
            self.kind.clone(),
            self.syns.to_string(),
            format!("{}-{}", self.first_frame, self.last_frame),
        ]
    }
}

fn kind_text(k: FailedConnKind) -> &'static str {
    match k {
        FailedConnKind::Refused => "refused",
        FailedConnKind::Unanswered => "unanswered",
        FailedConnKind::TlsHandshakeFailed => "tls_handshake_failed",
        FailedConnKind::TlsIncomplete => "tls_incomplete",
    }
}

/// The packet stage's sink: transaction records, and the failed connection
/// attempts when asked for.
pub struct PacketStage<W: Write, F: Write> {
    tx: TxWriter<W>,
    failed: Option<RecordWriter<F, FailedConnRecord>>,
    capture: Option<String>,
    /// The start of the latest transaction written.
    last_ts: Option<f64>,
}

impl<W: Write, F: Write> PacketStage<W, F> {
    /// Transactions into `tx`, failed attempts into `failed`; `capture`
    /// names the capture file (the run reads that one file).
    pub fn new(tx: TxWriter<W>, failed: Option<RecordWriter<F, FailedConnRecord>>, capture: Option<String>) -> Self {
        PacketStage { tx, failed, capture, last_ts: None }
    }

    /// Ends both outputs; returns them.
    pub fn finish(self) -> io::Result<(W, Option<F>)> {
        let tx = self.tx.finish()?;
        let failed = self.failed.map(RecordWriter::finish).transpose()?;
        Ok((tx, failed))
    }
}

impl<W: Write, F: Write> Downstream for PacketStage<W, F> {
    type Item = Prepared;
    type Prep = Records;
    fn preparer(&self) -> Records {
        self.tx.preparer()
    }
    fn on_transaction(&mut self, r: Prepared) -> Flow {
        let ts = r.ts();
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
        self.tx.write_prepared(r)?;
        GO_ON
    }
    fn on_summary(&mut self, s: &ConnSummary) -> Flow {
        if let (Some(w), Some(f)) = (self.failed.as_mut(), FailedConn::from_summary(s)) {
            w.write(&FailedConnRecord {
                ts: f.start.as_secs_f64(),
                end: f.end.as_secs_f64(),
                seen_after: self.last_ts,
                uid: pov_capture::text::conn_uid(f.conn),
                orig_h: f.client.ip().to_string(),
                orig_p: f.client.port(),
                resp_h: f.server.ip().to_string(),
                resp_p: f.server.port(),
                kind: kind_text(f.kind).into(),
                syns: f.syns,
                first_frame: f.frames.first,
                last_frame: f.frames.last,
                capture: self.capture.clone(),
                sni: f.sni.clone(),
                evidence: f.evidence.clone(),
            })?;
        }
        GO_ON
    }
}

/// Capture time from epoch seconds as records write them, to the
/// microsecond (a capture's own resolution, but for nanosecond pcapng).
fn ts(secs: f64) -> Ts {
    Ts(((secs * 1e6).round() as i64).saturating_mul(1000))
}

fn dur_ms(ms: f64) -> Dur {
    Dur((ms * 1e6).round() as i64)
}

fn bad(what: &str, v: &str) -> String {
    format!("{what} {v:?} cannot be read")
}

fn addr(h: &str, p: u16) -> Result<SocketAddr, String> {
    let ip: IpAddr = h.parse().map_err(|_| bad("address", h))?;
    Ok(SocketAddr::new(ip, p))
}

/// `name=value` as the pair.
fn pair(v: &Option<String>) -> Option<(String, String)> {
    v.as_deref().and_then(|s| s.split_once('=')).map(|(n, v)| (n.to_string(), v.to_string()))
}

fn conn_number(uid: &str) -> Result<u64, String> {
    uid.strip_prefix('C').and_then(|n| n.parse().ok()).ok_or_else(|| bad("connection id", uid))
}

/// Records read from each file at a time by the merge: what it holds per
/// file (measured: docs/fleet.md).
pub const MERGE_BATCH_ROWS: usize = 4096;

/// The connection numbers of each capture file are offset by this much
/// times the file's place: numbers restart in every packet-stage run.
pub const CONN_SPACE: u64 = 1 << 40;

/// The sessions' view of a transaction record (its connection number
/// offset by `base`).
pub fn tx_of(r: &TxRecord, base: u64) -> Result<Tx, String> {
    let class = r.resource_class.as_deref().ok_or("a record without the customer columns (resource_class)")?;
    let class: ResourceClass =
        serde_json::from_value(serde_json::Value::String(class.into())).map_err(|_| bad("resource class", class))?;
    let outcome: Outcome = serde_json::from_value(serde_json::Value::String(r.outcome.to_string()))
        .map_err(|_| bad("outcome", &r.outcome))?;
    let client = addr(&r.orig_h, r.orig_p)?;
    let client_ip = match r.client_ip.as_deref() {
        Some(a) => a.parse().map_err(|_| bad("address", a))?,
        None => client.ip(),
    };
    let frames = |a: Option<u64>, b: Option<u64>| Some(FrameSpan { first: a?, last: b? });
    Ok(Tx {
        conn: conn_number(&r.uid)?.wrapping_add(base),
        depth: r.trans_depth,
        client,
        client_ip,
        server: addr(&r.resp_h, r.resp_p)?,
        start: ts(r.ts),
        req_end: r.req_end.map(ts),
        req_resent: r.req_resent.map(ts),
        resp_start: r.resp_start.map(ts),
        resp_end: r.resp_end.map(ts),
        method: r.method.as_deref().map(str::to_owned),
        host: r.host.clone(),
        target: r.uri_raw.clone().unwrap_or_default(),
        referer: r.referrer.clone(),
        user_agent: r.user_agent.clone(),
        status: r.status_code.filter(|s| *s != 0),
        location: r.location.clone(),
        outcome,
        waited: r.waited_ms.map(dur_ms),
        handshake: if r.trans_depth == 1 { r.handshake_rtt_ms.map(dur_ms) } else { None },
        class,
        req_frames: frames(r.req_first_frame, r.req_last_frame),
        resp_frames: frames(r.resp_first_frame, r.resp_last_frame),
        missing_bytes: r.missing_bytes,
        response_body_len: r.response_body_len,
        evidence: Evidence {
            cookie: pair(&r.session_cookie),
            set_cookie: pair(&r.session_set_cookie),
            header_id: r.id_header.clone(),
            query_id: pair(&r.id_query),
            persistent: pair(&r.persistent_cookie),
        }
        .boxed(),
        login: r.login.clone(),
        order_value: r.order_value,
        cart_value: r.cart_value,
        error_page: r
            .error_rule
            .clone()
            .map(|rule| ErrorBody { rule, evidence: r.error_evidence.clone().unwrap_or_default() }),
    })
}

/// The failed attempt a record shows (its connection number offset by
/// `base`).
pub fn failed_of(r: &FailedConnRecord, base: u64) -> Result<FailedConn, String> {
    Ok(FailedConn {
        conn: conn_number(&r.uid)?.wrapping_add(base),
        client: addr(&r.orig_h, r.orig_p)?,
        server: addr(&r.resp_h, r.resp_p)?,
        start: ts(r.ts),
        end: ts(r.end),
        kind: match r.kind.as_str() {
            "refused" => FailedConnKind::Refused,
            "unanswered" => FailedConnKind::Unanswered,
            "tls_handshake_failed" => FailedConnKind::TlsHandshakeFailed,
            "tls_incomplete" => FailedConnKind::TlsIncomplete,
            k => return Err(bad("failed connection kind", k)),
        },
        syns: r.syns,
        frames: FrameSpan { first: r.first_frame, last: r.last_frame },
        sni: r.sni.clone(),
        evidence: r.evidence.clone(),
    })
}

/// What a file of the customer stage's input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Transaction records.
    Transactions,
    /// Failed connection attempts.
    FailedConnections,
}

/// What `path` holds, by its columns.
pub fn input_kind(path: &Path) -> io::Result<InputKind> {
    let cols = columns(path)?;
    let has = |c: &str| cols.iter().any(|x| x == c);
    if has("trans_depth") && has("uid") {
        if !has("resource_class") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: transaction records without the customer stage's columns (written by an older pov?)",
                    path.display()
                ),
            ));
        }
        Ok(InputKind::Transactions)
    } else if has("syns") && has("kind") && has("uid") {
        Ok(InputKind::FailedConnections)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: neither transaction records nor failed connections", path.display()),
        ))
    }
}

/// One record of the merged input.
pub enum Item {
    /// A transaction: its record (uid renumbered) and the sessions' view.
    Tx(Box<(TxRecord, Tx)>),
    /// A failed connection attempt.
    Failed(FailedConn),
}

/// The order of the merge: capture time in nanoseconds, then transactions
/// before the failed attempts seen after them, then the file's place, then
/// the row's.
type Key = (i64, u8, usize, u64);

struct Source {
    rows: RowReader,
    kind: InputKind,
    read: u64,
}

/// Transaction and failed-connection files merged by capture time: each
/// file is read a slice at a time ([`pov_impact::read::BATCH_ROWS`] rows),
/// and one record of each waits in the merge. Every file is assumed in
/// time order (as the packet stage writes them); one that is not keeps its
/// own order.
pub struct Merged {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    heads: Vec<Option<Item>>,
    /// Capture file names (or input files, for records without one) in
    /// the order their connection numbers were offset.
    pub captures: Vec<String>,
    /// Transactions a file boundary cut in two ([`Merged::cut_at_boundaries`]).
    cut: u64,
    /// Per capture (by its place in `captures`): first and last time seen.
    spans: Vec<(f64, f64)>,
    /// Requests whose capture ended before their answer, by connection
    /// (client, server) and file: the first halves of cut transactions.
    open_at_end: std::collections::HashMap<(String, u16, String, u16), usize>,
}

fn invalid_data(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
}

impl Merged {
    /// Opens every file of `paths` (transactions or failed connections,
    /// told apart by their columns), in the order of their names (which
    /// numbers their captures' connections), whatever order they come in.
    pub fn open(paths: &[PathBuf]) -> io::Result<Merged> {
        let mut paths = paths.to_vec();
        paths.sort();
        paths.dedup();
        let mut m = Merged {
            sources: Vec::new(),
            heap: BinaryHeap::new(),
            heads: Vec::new(),
            captures: Vec::new(),
            cut: 0,
            spans: Vec::new(),
            open_at_end: Default::default(),
        };
        for p in &paths {
            let kind = input_kind(p)?;
            m.sources.push(Source { rows: RowReader::with_batch(p, MERGE_BATCH_ROWS)?, kind, read: 0 });
            m.heads.push(None);
        }
        for i in 0..m.sources.len() {
            m.advance(i)?;
        }
        Ok(m)
    }

    /// The connection-number offset of a capture (by its name, or the
    /// record file's path when the record names none).
    fn base(&mut self, capture: Option<&str>, file: usize) -> u64 {
        let name = match capture {
            Some(c) => c.to_string(),
            None => self.sources[file].rows.path().display().to_string(),
        };
        let at = match self.captures.iter().position(|c| *c == name) {
            Some(at) => at,
            None => {
                self.captures.push(name);
                self.captures.len() - 1
            }
        };
        at as u64 * CONN_SPACE
    }

    /// Reads the next record of source `i` into the merge.
    fn advance(&mut self, i: usize) -> io::Result<()> {
        let Some(row) = self.sources[i].rows.next() else { return Ok(()) };
        let row = row?;
        let path = self.sources[i].rows.path().to_path_buf();
        let seq = self.sources[i].read;
        self.sources[i].read += 1;
        let (key, item) = match self.sources[i].kind {
            InputKind::Transactions => {
                let mut r: TxRecord =
                    serde_json::from_value(serde_json::Value::Object(row)).map_err(|e| invalid_data(&path, e))?;
                let base = self.base(r.capture.as_deref(), i);
                let tx = tx_of(&r, base).map_err(|e| invalid_data(&path, format!("row {seq}: {e}")))?;
                self.note_cut(&r, i);
                let end = [r.resp_end, r.req_end, r.resp_start].into_iter().flatten().fold(r.ts, f64::max);
                self.note_span(base, r.ts, end);
                r.uid = pov_capture::text::conn_uid(tx.conn);
                ((tx.start.0, 0, i, seq), Item::Tx(Box::new((r, tx))))
            }
            InputKind::FailedConnections => {
                let r: FailedConnRecord =
                    serde_json::from_value(serde_json::Value::Object(row)).map_err(|e| invalid_data(&path, e))?;
                let base = self.base(r.capture.as_deref(), i);
                let f = failed_of(&r, base).map_err(|e| invalid_data(&path, format!("row {seq}: {e}")))?;
                self.note_span(base, r.ts, r.end);
                // Fed where the packet stage saw it: after the
                // transaction it had last written.
                let at = r.seen_after.map(ts).unwrap_or(f.start);
                ((at.0, 1, i, seq), Item::Failed(f))
            }
        };
        self.heads[i] = Some(item);
        self.heap.push(Reverse((key, i)));
        Ok(())
    }

    fn note_span(&mut self, base: u64, first: f64, last: f64) {
        let at = (base / CONN_SPACE) as usize;
        if self.spans.len() <= at {
            self.spans.resize(at + 1, (f64::INFINITY, f64::NEG_INFINITY));
        }
        if let Some(s) = self.spans.get_mut(at) {
            *s = (s.0.min(first), s.1.max(last));
        }
    }

    /// The captures the records came from, with the span of their records
    /// (first request to last answer byte).
    pub fn capture_spans(&self) -> Vec<crate::dataset::Capture> {
        self.captures
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let span = self.spans.get(i).filter(|s| s.0 <= s.1);
                crate::dataset::Capture {
                    name: Path::new(name).file_name().map_or(name.clone(), |n| n.to_string_lossy().into_owned()),
                    path: String::new(),
                    first_ts: span.map(|s| s.0),
                    last_ts: span.map(|s| s.1),
                    packets: None,
                    bytes: None,
                }
            })
            .collect()
    }

    /// Notes the halves of a transaction a file boundary cut: a request
    /// whose file ended before its answer (`capture_ended`, no response),
    /// then, in another file, an answer on the same connection without its
    /// request (`no_request`).
    fn note_cut(&mut self, r: &TxRecord, file: usize) {
        let conn = (r.orig_h.clone(), r.orig_p, r.resp_h.clone(), r.resp_p);
        let has = |a: &str| r.anomalies.iter().any(|x| x == a);
        if has("capture_ended") && r.resp_start.is_none() {
            self.open_at_end.insert(conn, file);
        } else if has("no_request")
            && let Some(f) = self.open_at_end.get(&conn)
            && *f != file
        {
            self.open_at_end.remove(&conn);
            self.cut += 1;
        }
    }

    /// Transactions seen cut in two by a file boundary so far: each is two
    /// records (a request without answer, an answer without request), both
    /// `capture_gap` (capture loss, never failures); what the whole
    /// transaction showed (a slow answer, an error status on the request's
    /// page) is lost.
    pub fn cut_at_boundaries(&self) -> u64 {
        self.cut
    }

    /// The next record in capture time across the files.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        let Some(Reverse((_, i))) = self.heap.pop() else { return Ok(None) };
        let item = self.heads[i].take();
        self.advance(i)?;
        Ok(item)
    }

    /// Rows read from each file so far, by file.
    pub fn rows_read(&self) -> BTreeMap<String, u64> {
        self.sources.iter().map(|s| (s.rows.path().display().to_string(), s.read)).collect()
    }
}

/// `pov analyze --from-transactions`: the customer stage over the
/// transaction (and failed-connection) records of `job.inputs`, merged by
/// capture time; writes the same output folder as [`crate::run::analyze`]
/// (no replays: they need the capture files).
pub fn analyze_transactions(job: &crate::run::AnalyzeJob, reading: &mut crate::run::Reading) -> io::Result<Analyzed> {
    use crate::analyze::{AnalyzePipeline, RunDir, Summary};
    use crate::schema::files;
    let cfg = &job.config;
    let history = job.history.as_ref().map(|h| crate::analyze::read_history(h, &job.out)).transpose()?;
    let mut merged = Merged::open(&job.inputs)?;
    let mut run = RunDir::create(&job.out)?;
    let mut pipe =
        AnalyzePipeline::new(&run, cfg, &reading.cfg.http, job.stage.mask, job.stage.max_session_txs.max(1))?;
    pipe.sink.set_user_spill(run.staging(), job.stage.max_users_held);
    pipe.sink.set_identity_caps(job.stage.identity);
    pipe.sink.set_include_robots(job.stage.include_robots);
    pipe.sink.set_parallel(reading.threads.threads > 1);
    let mut pseudonyms: Option<bool> = None;
    let (mut first, mut last): (Option<Ts>, Option<Ts>) = (None, None);
    let mut span = |t: Ts| {
        first = Some(first.map_or(t, |f| f.min(t)));
        last = Some(last.map_or(t, |l| l.max(t)));
    };
    let mut transactions = 0u64;
    let mut n = 0u64;
    while let Some(item) = merged.next_item()? {
        n += 1;
        if n.is_multiple_of(65536) {
            reading.check_stop()?;
        }
        match item {
            Item::Tx(b) => {
                let (record, tx) = *b;
                let p = record.pseudonyms.unwrap_or(false);
                match pseudonyms {
                    None => {
                        pseudonyms = Some(p);
                        if p {
                            pipe.sink.set_prehashed();
                        }
                    }
                    Some(q) if q != p => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the transaction files mix masked and unmasked (--no-mask) records",
                        ));
                    }
                    Some(_) => {}
                }
                for t in [Some(tx.start), tx.req_end, tx.resp_start, tx.resp_end].into_iter().flatten() {
                    span(t);
                }
                transactions += 1;
                let _ = pipe.sink.on_transaction((Prepared::whole(record), tx))?;
            }
            Item::Failed(f) => {
                span(f.start);
                span(f.end);
                pipe.sink.failed_connection(f)?;
            }
        }
    }
    reading.check_stop()?;
    let users = pipe.finish()?;
    let mut report = crate::pipeline::RunReport {
        first_ts: first,
        last_ts: last,
        http: Some(pov_capture::http::HttpStats { transactions, ..Default::default() }),
        ..Default::default()
    };
    report.budget = Some(report.budget_report(reading.budget()));
    let imp = crate::analyze::impact(run.staging(), cfg)?;
    reading.check_stop()?;
    let mut summary = Summary::new(&job.inputs, &report, &users, imp, &cfg.revenue.currency);
    if let Some(c) = summary.counters.as_object_mut() {
        c.insert(
            "from_transactions".into(),
            serde_json::json!({
                "rows_by_file": merged.rows_read(),
                "captures": merged.captures,
                "cut_at_boundaries": merged.cut_at_boundaries(),
            }),
        );
    }
    let summary = job.add_history(summary, history)?;
    summary.write(&run)?;
    summary.write_report(&run)?;
    reading.check_stop()?;
    let names: Vec<String> = files::RECORDS.iter().chain(&files::SUMMARIES).map(|f| f.to_string()).collect();
    run.publish(&names)?;
    let captures = merged.capture_spans();
    Ok(Analyzed { report, summary, replays_failed: false, captures, manifest: None })
}

use crate::run::Analyzed;
