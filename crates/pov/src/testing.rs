//! Invariant checks over pov's higher stages, shared by the fuzz targets
//! (`fuzz/`, one line each) and the corpus replay of `cargo test`
//! (`tests/fuzz_corpus.rs`), which runs every committed corpus and
//! regression file through the same function on stable. Not part of the
//! stable API.
//!
//! Each `check_*` function takes arbitrary bytes, runs them through one part
//! of pov and panics if an invariant breaks. The checks go beyond "no
//! panic": counters balance (every transaction emitted is counted once under
//! its outcome and reaches the user stage; sessions, pages, users and
//! failures add up across outputs), every output parses back (CSV rows have
//! the header's column count and give back the values written, JSON and HAR
//! parse, the JSON embedded in the HTML replay and the report parses and
//! cannot end its `<script>` element), nothing grows beyond its cap, and the
//! replay rewriter leaves nothing in a page that would load from the
//! network.
//!
//! | check | input | reaches |
//! |---|---|---|
//! | [`check_pipeline`] | a capture file | reading, decoding, reassembly, HTTP (default caps), transactions, the user stage, HAR and HTML replay |
//! | [`check_streams`] | a script of stream events ([`pov_capture::testing::run_http_script`]) | HTTP with chunks up to megabytes, the user stage, HAR and HTML replay |
//! | [`check_sessions`] | a sequence of transactions and failed connections, decoded | identity, sessions, page views, classification, user-stage outputs |
//! | [`check_replay`] | an HTML page, a style sheet and a resource | the replay rewriter, HAR, the HTML replay |
//! | [`check_report`] | a summary, decoded | `report.html` |
//! | [`check_csv`] | records, decoded | CSV, JSON, JSON lines and table output of every record type |
//! | [`check_config`] | `pov.toml` text | config parsing, and a run of the user stage under what parsed |

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;

use pov_capture::http::{
    Anomaly, BodyInfo, FrameSpan, Headers, HttpAnalyzer, HttpConfig, HttpStats, HttpTransaction, Outcome, RequestHead,
    ResponseHead, TxTiming,
};
use pov_capture::tcp::{Close, ConnMeta, ConnSummary, DataChunk, Gap, HalfClose, Retransmission, StreamSink};
use pov_capture::testing::Bytes;
use pov_capture::{Dur, Ts};
use pov_replay::html::{ReplayFailure, ReplayPage, ReplaySession};
use pov_replay::rewrite::{Resolver, Use};
use pov_sessions::{FailedConn, FailedConnKind};
use serde_json::{Map, Value};

use crate::config::PovConfig;
use crate::output::{Format, Kind, Record, RecordWriter};
use crate::parallel::{AsIs, Downstream, Flow, GO_ON};
use crate::replay::{Keep, SelectLimits, Selection};
use crate::transactions::TxRecord;
use crate::users::{FailureRecord, Outputs, PageRecord, SessionRecord, UserRecord, UserStage, UserStageReport};
use pov_privacy::Masker;

/// A check: runs one fuzz input through pov and panics if an invariant
/// breaks.
pub type Check = fn(&[u8]);

/// Every check by the name of its fuzz target (and of its folders under
/// `fuzz/corpus/` and `fuzz/regressions/`).
pub const CHECKS: &[(&str, Check)] = &[
    ("capture", pov_capture::testing::check_capture_bytes),
    ("frames", pov_capture::testing::check_frames),
    ("http", pov_capture::testing::check_http),
    ("pipeline", check_pipeline),
    ("streams", check_streams),
    ("sessions", check_sessions),
    ("replay", check_replay),
    ("report", check_report),
    ("csv", check_csv),
    ("config", check_config),
];

// ---------------------------------------------------------------------------
// Outputs parsed back

/// A record as parsed back from an output: JSON values from JSON, strings
/// (or null for an empty cell) from CSV.
type Row = Map<String, Value>;

/// Parses CSV strictly (RFC 4180: quoted cells with doubled quotes, `\n`
/// line ends as pov writes them); panics on a stray quote or carriage
/// return.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cell.push('"');
                } else {
                    quoted = false;
                    was_quoted = true;
                    assert!(matches!(chars.peek(), None | Some(',') | Some('\n')), "CSV: text after a closing quote");
                }
            } else {
                cell.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                assert!(cell.is_empty() && !was_quoted, "CSV: a quote inside an unquoted cell");
                quoted = true;
            }
            ',' => {
                row.push(std::mem::take(&mut cell));
                was_quoted = false;
            }
            '\n' => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                was_quoted = false;
            }
            '\r' => panic!("CSV: a carriage return outside quotes"),
            c => cell.push(c),
        }
    }
    assert!(!quoted, "CSV: unterminated quote");
    if !cell.is_empty() || !row.is_empty() || was_quoted {
        row.push(cell);
        rows.push(row);
    }
    rows
}

/// Parses what a [`RecordWriter`] of `R` wrote in `format` (`count`
/// records), checking its shape: CSV has the header row and every row its
/// column count; JSON is one array; JSON lines one object a line; a table
/// one line a record plus the header, with no control character that a
/// terminal would act on. Table rows come back empty (they are for people).
pub fn parse_records<R: Record>(format: Format, bytes: &[u8], count: u64) -> Vec<Row> {
    let text = std::str::from_utf8(bytes).expect("outputs are UTF-8");
    let names: Vec<&str> = R::FIELDS.iter().map(|(k, _)| *k).collect();
    let check_keys = |o: &Row| {
        let keys: HashSet<&str> = o.keys().map(String::as_str).collect();
        assert_eq!(keys, names.iter().copied().collect::<HashSet<_>>(), "record keys");
    };
    let rows: Vec<Row> = match format {
        Format::Csv => {
            let rows = parse_csv(text);
            let (header, body) = rows.split_first().expect("CSV: a header row");
            assert_eq!(header, &names, "CSV header");
            body.iter()
                .map(|r| {
                    assert_eq!(r.len(), names.len(), "CSV: row with {} cells, header {}", r.len(), names.len());
                    names
                        .iter()
                        .zip(r)
                        .map(|(k, v)| {
                            (k.to_string(), if v.is_empty() { Value::Null } else { Value::String(v.clone()) })
                        })
                        .collect()
                })
                .collect()
        }
        Format::Json => {
            let v: Value = serde_json::from_str(text).expect("JSON output parses");
            let a = v.as_array().expect("JSON output is an array");
            a.iter()
                .map(|o| {
                    let o = o.as_object().expect("JSON records are objects").clone();
                    check_keys(&o);
                    o
                })
                .collect()
        }
        Format::Jsonl => text
            .lines()
            .map(|l| {
                let o = serde_json::from_str::<Value>(l).expect("JSON line parses");
                let o = o.as_object().expect("JSON lines are objects").clone();
                check_keys(&o);
                o
            })
            .collect(),
        Format::Table => {
            for c in text.chars() {
                assert!(c == '\n' || c == '\t' || !(c.is_control()), "table output holds control character {:?}", c);
            }
            assert_eq!(text.lines().count() as u64, count + 1, "table: one line per record and the header");
            (0..count).map(|_| Row::new()).collect()
        }
        Format::Parquet => unreachable!("Parquet is not checked here"),
    };
    assert_eq!(rows.len() as u64, count, "records written vs records parsed back");
    rows
}

/// A number from a parsed cell (JSON number, or CSV text).
fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn uint(r: &Row, k: &str) -> u64 {
    num(r.get(k)).unwrap_or_else(|| panic!("`{k}` is not a number: {:?}", r.get(k))) as u64
}

fn text(r: &Row, k: &str) -> String {
    match r.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn boolean(r: &Row, k: &str) -> bool {
    match r.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// A JSON object from a parsed cell (a JSON object, or its text in CSV).
fn object(r: &Row, k: &str) -> BTreeMap<String, u64> {
    let v = match r.get(k) {
        Some(Value::String(s)) => serde_json::from_str(s).expect("an object in a CSV cell parses"),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    v.as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The user stage, with its outputs checked

/// The formats the four user-stage outputs are written in, chosen by a byte
/// (users, sessions, pages, failures).
fn stage_formats(b: u8) -> [Format; 4] {
    const F: [Format; 4] = [Format::Csv, Format::Jsonl, Format::Json, Format::Table];
    [F[usize::from(b) % 4], F[usize::from(b >> 2) % 4], F[usize::from(b >> 4) % 4], F[usize::from(b >> 6) % 4]]
}

fn stage_outputs(f: [Format; 4]) -> Outputs<Vec<u8>> {
    fn w<R: Record>(f: Format) -> Option<RecordWriter<Vec<u8>, R>> {
        Some(RecordWriter::new(Vec::new(), f).expect("writer"))
    }
    Outputs { users: w(f[0]), sessions: w(f[1]), pages: w(f[2]), failures: w(f[3]) }
}

/// The user stage's outputs, parsed back.
struct StageRows {
    users: Vec<Row>,
    sessions: Vec<Row>,
    pages: Vec<Row>,
    failures: Vec<Row>,
    formats: [Format; 4],
}

fn finish_stage(stage: UserStage<Vec<u8>>, formats: [Format; 4]) -> (StageRows, UserStageReport) {
    let (out, report) = stage.finish().expect("writing to memory does not fail");
    fn take<R: Record>(w: Option<RecordWriter<Vec<u8>, R>>, f: Format) -> Vec<Row> {
        let w = w.expect("writer");
        let n = w.count();
        parse_records::<R>(f, &w.finish().expect("finish"), n)
    }
    let rows = StageRows {
        users: take::<UserRecord>(out.users, formats[0]),
        sessions: take::<SessionRecord>(out.sessions, formats[1]),
        pages: take::<PageRecord>(out.pages, formats[2]),
        failures: take::<FailureRecord>(out.failures, formats[3]),
        formats,
    };
    (rows, report)
}

/// Checks that the user stage's outputs and counters agree: every
/// transaction pushed is counted, and lands in one session or is counted
/// as dropped at the per-session cap; sessions, pages, users and noticed
/// failures add up across the outputs and the report; ids are unique and
/// every page and failure names a session that was written.
fn check_stage(rows: &StageRows, report: &UserStageReport, pushed: u64, max_session_txs: usize) {
    let s = &report.sessions;
    assert_eq!(s.transactions, pushed, "transactions pushed vs counted by the user stage");
    // (Robots' sessions are counted by the sessionizer, and written only
    // with --include-robots.)
    let r = &report.robots;
    let (r_sessions, r_pages, r_txs) = if r.included { (0, 0, 0) } else { (r.sessions, r.pages, r.requests) };
    assert_eq!(rows.sessions.len() as u64, s.sessions - r_sessions, "session records vs counter");
    assert_eq!(rows.pages.len() as u64, s.pages - r_pages, "page records vs counter");
    assert_eq!(rows.users.len() as u64, report.users, "user records vs counter");
    let table = |i: usize| rows.formats[i] == Format::Table;
    if !table(1) {
        let mut ids = HashSet::new();
        let mut txs = 0;
        for r in &rows.sessions {
            assert!(ids.insert(text(r, "session")), "session {} written twice", text(r, "session"));
            let n = uint(r, "transactions");
            assert!(n as usize <= max_session_txs, "a session of {n} transactions, cap {max_session_txs}");
            txs += n;
        }
        assert_eq!(
            txs + r_txs + s.session_tx_cap_drops,
            s.transactions,
            "transactions in sessions (and robots') + dropped vs pushed"
        );
        let pages: u64 = rows.sessions.iter().map(|r| uint(r, "pages")).sum();
        assert_eq!(pages, s.pages - r_pages, "pages of the sessions vs counter");
        if !table(2) {
            let mut pids = HashSet::new();
            for p in &rows.pages {
                assert!(pids.insert(text(p, "page")), "page {} twice", text(p, "page"));
                assert!(ids.contains(&text(p, "session")), "page of an unwritten session");
            }
        }
        if !table(3) {
            for f in &rows.failures {
                assert!(ids.contains(&text(f, "session")), "failure of an unwritten session");
            }
        }
        let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
        for r in &rows.sessions {
            for (k, n) in object(r, "failures") {
                *by_kind.entry(k).or_default() += n;
            }
        }
        assert_eq!(by_kind, report.failures_by_kind, "noticed failures: sessions vs counter");
        if !table(0) {
            let sessions: u64 = rows.users.iter().map(|u| uint(u, "sessions")).sum();
            assert_eq!(sessions, s.sessions - r_sessions, "sessions of the users vs counter");
            let utx: u64 = rows.users.iter().map(|u| uint(u, "transactions")).sum();
            assert_eq!(utx, txs, "transactions of the users vs of the sessions");
            let affected = rows.users.iter().filter(|u| boolean(u, "affected")).count() as u64;
            assert_eq!(affected, report.users_affected, "affected users vs counter");
            let total: u64 = rows.users.iter().map(|u| uint(u, "failures_total")).sum();
            assert_eq!(total, report.failures_by_kind.values().sum::<u64>(), "users' failures vs counter");
        }
    }
    if !table(3) {
        let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
        for f in &rows.failures {
            if matches!(text(f, "severity").as_str(), "major" | "critical") {
                *by_kind.entry(text(f, "kind")).or_default() += 1;
            }
        }
        assert_eq!(by_kind, report.failures_by_kind, "noticed failure records vs counter");
    }
}

/// What the HTTP layer hands on: to the transaction writers, to the user
/// stage, and kept for the replay (and the checks).
struct Tee {
    mask: Masker,
    all: Vec<HttpTransaction>,
    csv: RecordWriter<Vec<u8>, TxRecord>,
    other: RecordWriter<Vec<u8>, TxRecord>,
    other_format: Format,
    stage: UserStage<Vec<u8>>,
    failed: u64,
}

impl Downstream for Tee {
    type Item = HttpTransaction;
    type Prep = AsIs;
    fn preparer(&self) -> AsIs {
        AsIs
    }
    fn on_transaction(&mut self, tx: HttpTransaction) -> Flow {
        let r = TxRecord::new(&tx, &self.mask);
        self.csv.write(&r)?;
        self.other.write(&r)?;
        self.stage.transaction(&tx)?;
        self.all.push(tx);
        GO_ON
    }

    fn on_summary(&mut self, s: &ConnSummary) -> Flow {
        if FailedConn::from_summary(s).is_some() {
            self.failed += 1;
        }
        self.stage.on_summary(s)
    }
}

/// Stream events from a script: the HTTP layer, with a [`Tee`] behind it.
struct Scripted {
    http: HttpAnalyzer<Vec<HttpTransaction>>,
    tee: Tee,
}

impl Scripted {
    /// Hands on what the HTTP layer finished.
    fn pass_on(&mut self) {
        for tx in std::mem::take(self.http.sink_mut()) {
            assert!(self.tee.on_transaction(tx).expect("writing into memory").is_continue());
        }
    }
}

impl StreamSink for Scripted {
    fn on_open(&mut self, meta: &ConnMeta) {
        self.http.on_open(meta);
    }
    fn on_data(&mut self, chunk: &DataChunk<'_>) {
        self.http.on_data(chunk);
        self.pass_on();
    }
    fn on_gap(&mut self, gap: &Gap) {
        self.http.on_gap(gap);
        self.pass_on();
    }
    fn on_retransmission(&mut self, r: &Retransmission) {
        self.http.on_retransmission(r);
        self.pass_on();
    }
    fn on_half_close(&mut self, hc: &HalfClose) {
        self.http.on_half_close(hc);
        self.pass_on();
    }
    fn on_close(&mut self, close: &Close) {
        self.http.on_close(close);
        self.pass_on();
    }
    fn on_summary(&mut self, s: &ConnSummary) {
        self.http.on_summary(s);
        self.pass_on();
        assert!(self.tee.on_summary(s).expect("writing into memory").is_continue());
    }
}

/// A user stage whose tap selects every session for the replay.
fn tapped_stage(cfg: &PovConfig, formats: [Format; 4], max_txs: usize) -> (UserStage<Vec<u8>>, Rc<RefCell<Selection>>) {
    let mut stage = UserStage::with_limits(cfg, true, stage_outputs(formats), max_txs).expect("the default config");
    let sel = Rc::new(RefCell::new(Selection::default()));
    let into = Rc::clone(&sel);
    let limits = SelectLimits { masker: Masker::new(&cfg.privacy, true), max_sessions: 64 };
    stage.set_tap(Box::new(move |s, c, user, sid| {
        let mut out = into.borrow_mut();
        if out.sessions.len() < limits.max_sessions {
            out.add(crate::replay::sel_session(s, c, user, sid, &limits));
        }
    }));
    (stage, sel)
}

/// The default configuration, with two short error-page rules in place of
/// the default four: compiling the default ones (a long case-insensitive
/// alternation in many languages) took a third of each run's time, and the
/// classification paths are the same with any rule (`check_config` runs the
/// default file whole).
fn fuzz_config() -> PovConfig {
    let mut cfg = PovConfig::default();
    cfg.failures.error_pages = vec![
        pov_classify::ErrorPageRule {
            name: "generic_error_text".into(),
            pattern: "something went wrong|internal server error".into(),
        },
        pov_classify::ErrorPageRule { name: "stack_trace".into(), pattern: r"traceback \(most recent".into() },
    ];
    cfg
}

/// Runs `feed` (which runs the HTTP layer into the [`Tee`] it is given,
/// and returns it with the HTTP counters and the bytes reported missing)
/// with everything behind the HTTP layer, then checks every stage's output
/// and the replays.
fn through_everything(http: HttpConfig, b: u8, feed: impl FnOnce(Tee) -> (Tee, HttpStats, u64)) {
    let cfg = fuzz_config();
    let formats = stage_formats(b);
    let max_txs = if b & 1 == 0 { 100_000 } else { 1 + usize::from(b >> 4) };
    let (stage, sel) = tapped_stage(&cfg, formats, max_txs);
    let other_format = [Format::Json, Format::Jsonl, Format::Table][usize::from(b >> 1) % 3];
    let tee = Tee {
        mask: Masker::off(),
        all: Vec::new(),
        csv: RecordWriter::new(Vec::new(), Format::Csv).expect("writer"),
        other: RecordWriter::new(Vec::new(), other_format).expect("writer"),
        other_format,
        stage,
        failed: 0,
    };
    let (tee, stats, lost) = feed(tee);
    pov_capture::testing::check_transactions(&tee.all, &stats, &http, lost);
    let n = tee.all.len() as u64;
    assert_eq!(tee.csv.count(), n, "transactions written vs emitted");
    let csv = parse_records::<TxRecord>(Format::Csv, &tee.csv.finish().expect("finish"), n);
    let other = parse_records::<TxRecord>(tee.other_format, &tee.other.finish().expect("finish"), n);
    for (t, (c, o)) in tee.all.iter().zip(csv.iter().zip(&other)) {
        assert_eq!(uint(c, "trans_depth"), u64::from(t.depth), "CSV depth");
        assert_eq!(text(c, "outcome"), t.outcome.as_str(), "CSV outcome");
        if tee.other_format != Format::Table {
            assert_eq!(text(o, "uid"), format!("C{}", t.conn), "JSON uid");
        }
    }
    let (rows, report) = finish_stage(tee.stage, formats);
    check_stage(&rows, &report, n, max_txs);
    let sel = std::mem::take(&mut *sel.borrow_mut());
    check_selection_replay(&sel, &tee.all, &cfg);
}

/// The HAR and HTML replay of `sel`, with `all` as the transactions the
/// store gives back, parse back and hold what was selected.
fn check_selection_replay(sel: &Selection, all: &[HttpTransaction], cfg: &PovConfig) {
    let mut keep = Keep::new(sel.txs.clone(), 8 << 20);
    for t in all {
        keep.keep(t.clone());
    }
    let kept: HashSet<(u64, u32)> = keep.kept.iter().map(|t| (t.conn, t.depth)).collect();
    assert_eq!(kept.len(), keep.kept.len(), "a transaction kept twice");
    for k in &kept {
        assert!(sel.txs.contains_key(k), "kept a transaction not selected");
    }
    assert!(keep.body_bytes <= keep.max_body_bytes, "replay bodies over their cap");
    let m = &Masker::new(&cfg.privacy, true);
    let har = crate::replay::har(&keep, sel, m);
    let text = serde_json::to_string(&har).expect("HAR serialises");
    let back: Value = serde_json::from_str(&text).expect("HAR parses back");
    let entries = back["log"]["entries"].as_array().expect("HAR entries");
    assert_eq!(entries.len(), keep.kept.len(), "HAR entries vs kept transactions");
    assert_eq!(back["log"]["pages"].as_array().map(Vec::len), Some(sel.pages.len()), "HAR pages");
    let pages: HashSet<&str> = sel.pages.iter().map(|p| p.id.as_str()).collect();
    for e in entries {
        if let Some(p) = e.get("pageref") {
            assert!(pages.contains(p.as_str().unwrap_or("")), "HAR entry names an unknown page");
        }
    }
    let sessions: Vec<&crate::replay::SelSession> = sel.sessions.iter().collect();
    let html = crate::replay::html_of(&keep, &sessions, m);
    let data = replay_data(&html);
    assert_eq!(data["sessions"].as_array().map(Vec::len), Some(sessions.len()), "replay sessions");
}

/// The data block of an HTML replay, parsed; panics if it is missing, does
/// not parse, or holds text that would end or restart its script element.
pub fn replay_data(html: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"data\">";
    let start = html.find(open).expect("the replay's data block") + open.len();
    let len = find_ci(&html[start..], "</script").expect("the data block ends");
    let block = &html[start..start + len];
    script_safe(block);
    serde_json::from_str(block).expect("the replay's data block parses as JSON")
}

/// Text inside a `<script>` element that the HTML parser would not take for
/// markup: no `<!--`, no `<script` and no `</script`.
fn script_safe(block: &str) {
    let lower = block.to_ascii_lowercase();
    for bad in ["<!--", "<script", "</script"] {
        assert!(!lower.contains(bad), "script data holds `{bad}`");
    }
}

/// Case-insensitive (ASCII) search; the standard library's search, on a
/// lower-cased copy (byte offsets do not change).
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(&needle.to_ascii_lowercase())
}

fn count_ci(hay: &str, needle: &str) -> usize {
    hay.to_ascii_lowercase().matches(&needle.to_ascii_lowercase()).count()
}

// ---------------------------------------------------------------------------
// The whole pipeline

/// Treats `data` as a capture file and runs it through everything pov does
/// with it, at the default caps: reading, decoding, reassembly, HTTP,
/// transaction records (CSV and one other format), the user stage (its four
/// outputs in formats chosen by the file's last byte) and the HAR and HTML
/// replay of every session; then checks every stage (see the module docs).
pub fn check_pipeline(data: &[u8]) {
    let Ok(file) = pov_capture::pcap::CaptureFile::from_read("fuzz", std::io::Cursor::new(data.to_vec())) else {
        return;
    };
    let cfg = crate::pipeline::PipelineConfig::default();
    let b = data.last().copied().unwrap_or(0);
    through_everything(cfg.http.clone(), b, |mut tee| {
        let threads = crate::parallel::Threads { threads: 1, shards: 4 };
        let report =
            crate::parallel::run(vec![file], Vec::new(), &cfg, Some(&cfg.http), threads, None, &mut tee, &mut |_| {})
                .expect("writing into memory");
        assert_eq!(report.decode.unaccounted(), 0, "packets not accounted for by the decoder");
        assert!(report.tcp.ooo_peak_bytes <= cfg.tcp.max_ooo_total as u64, "out-of-order bytes over the total cap");
        (tee, report.http.unwrap_or_default(), report.tcp.totals.gap_bytes)
    });
}

/// Runs a script of stream events (see
/// [`pov_capture::testing::run_http_script`]: several connections, chunks
/// up to megabytes, gaps, closes, time passing) through the HTTP layer at
/// the caps its first byte chooses, and on through everything behind it, as
/// [`check_pipeline`] does (the last byte chooses the output formats).
pub fn check_streams(data: &[u8]) {
    let http = pov_capture::testing::script_http_config(data);
    let b = data.last().copied().unwrap_or(0);
    through_everything(http.clone(), b, |tee| {
        let mut s = Scripted { http: HttpAnalyzer::new(http, Vec::new()), tee };
        let lost = pov_capture::testing::run_http_script(data, &mut s).lost;
        let (txs, stats) = s.http.finish();
        let mut tee = s.tee;
        for tx in txs {
            assert!(tee.on_transaction(tx).expect("writing into memory").is_continue());
        }
        (tee, stats, lost)
    });
}

// ---------------------------------------------------------------------------
// Transactions made up from bytes

const HOSTS: [&str; 4] = ["shop.example", "cdn.example", "SHOP.example:8080", ""];
const PATHS: [&str; 20] = [
    "/",
    "/search?q=shoes",
    "/c/shoes",
    "/p/42",
    "/cart",
    "/cart/add",
    "/login",
    "/checkout",
    "/checkout/submit",
    "/order/confirmation",
    "/static/site.css",
    "/img/logo.png",
    "/api/cart",
    "/favicon.ico",
    "/account;jsessionid=ABC?password=hunter2",
    "/index.html",
    "/p/42?token=t&x=1",
    "http://shop.example/abs",
    "*",
    "/a/../b/./c",
];
const TYPES: [&str; 8] = [
    "text/html; charset=utf-8",
    "application/json",
    "text/css",
    "image/png",
    "application/javascript",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
];
const STATUSES: [u16; 16] = [200, 200, 200, 204, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504];
const BODIES: [&str; 9] = [
    "<html><head><title>Shop</title><link rel=stylesheet href=/static/site.css></head><body><img src=/img/logo.png><h1>Something went wrong</h1></body></html>",
    "{\"error\":\"out of stock\"}",
    "{\"order_total\":\"129.90\",\"cart_total\":\"99.00\",\"access_token\":\"secret\"}",
    "<html><body style=\"background:url(/img/logo.png)\">ok 4111 1111 1111 1111</body></html>",
    "order_total=42.50&email=a%40b&username=alice&password=pw",
    "Traceback (most recent call last):\n  File \"x\"",
    "body{background:url('/img/logo.png')}@import '/x.css';",
    "\u{89}PNG\r\n",
    "",
];
const AGENTS: [&str; 4] = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "curl/8.0", "", "Bot\t1"];

/// Bytes as the HTTP layer would keep them in a head: visible ASCII,
/// spaces, tabs and any byte from 0x80 (what httparse accepts).
fn head_bytes(b: &[u8]) -> Vec<u8> {
    b.iter().map(|&c| if c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80 { c } else { b'_' }).collect()
}

/// Bytes as a request target: no spaces or controls.
fn target_bytes(b: &[u8]) -> Vec<u8> {
    b.iter().map(|&c| if (0x21..0x7f).contains(&c) || c >= 0x80 { c } else { b'_' }).collect()
}

/// A text from the dictionary, or (for the dictionary's length and beyond)
/// up to 63 bytes of input.
fn word<'a>(b: &mut Bytes<'a>, dict: &[&str]) -> Vec<u8> {
    let i = usize::from(b.u8());
    match dict.get(i % (dict.len() + 1)) {
        Some(w) => w.as_bytes().to_vec(),
        None => b.take(i >> 2).to_vec(),
    }
}

/// State of the transaction generator.
struct Gen {
    t: Ts,
    depth: HashMap<u64, u32>,
    frame: u64,
}

impl Gen {
    fn new() -> Gen {
        Gen { t: pov_capture::testing::SCRIPT_START, depth: HashMap::new(), frame: 0 }
    }

    fn ms(b: &mut Bytes<'_>) -> Dur {
        let v = i64::from(b.u8());
        if v < 200 { Dur::from_millis(v * 5) } else { Dur::from_secs((v - 199) * (v - 199)) }
    }

    fn client(conn: u64) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1 + (conn % 4) as u8], 40000 + conn as u16))
    }

    /// A failed connection attempt.
    fn failed(&mut self, b: &mut Bytes<'_>) -> FailedConn {
        let conn = 1000 + u64::from(b.u8());
        self.frame += 2;
        FailedConn {
            conn,
            client: Gen::client(conn),
            server: SocketAddr::from(([10, 0, 0, 100], 80)),
            start: self.t,
            end: self.t + Gen::ms(b),
            kind: if b.u8() & 1 == 0 { FailedConnKind::Refused } else { FailedConnKind::Unanswered },
            syns: 1 + u64::from(b.u8() % 4),
            frames: FrameSpan { first: self.frame - 1, last: self.frame },
            sni: None,
            evidence: None,
        }
    }

    /// A transaction as the HTTP layer could hand it on: heads hold only
    /// what httparse accepts, outcomes agree with the response.
    fn tx(&mut self, b: &mut Bytes<'_>) -> HttpTransaction {
        let conn = 1 + u64::from(b.u8() % 12);
        let flags = b.u16();
        let step = b.u8();
        self.t = if step == 255 { self.t - Dur::from_secs(2) } else { self.t + Gen::ms(&mut Bytes(&[step])) };
        let depth = self.depth.entry(conn).or_insert(0);
        *depth += 1;
        let depth = *depth;
        let mut h: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if flags & 1 != 0 {
            h.push((b"Host".to_vec(), head_bytes(&word(b, &HOSTS))));
        }
        if flags & 2 != 0 {
            let v = head_bytes(&word(b, &["sid=u1", "sid=u2; cart=3", "JSESSIONID=X", "flag", "a=b; sid=u3"]));
            h.push((b"Cookie".to_vec(), v));
        }
        if flags & 4 != 0 {
            h.push((b"User-Agent".to_vec(), head_bytes(&word(b, &AGENTS))));
        }
        if flags & 8 != 0 {
            let mut r = b"http://shop.example".to_vec();
            r.extend(target_bytes(&word(b, &PATHS)));
            h.push((b"Referer".to_vec(), r));
        }
        if flags & 16 != 0 {
            h.push((b"Content-Type".to_vec(), head_bytes(&word(b, &TYPES))));
        }
        if flags & 32 != 0 {
            h.push((b"X-Forwarded-For".to_vec(), head_bytes(&word(b, &["192.0.2.1", "198.51.100.7, 10.0.0.1"]))));
        }
        if flags & 64 != 0 {
            h.push((
                head_bytes(&word(b, &["Authorization", "X-Csrf-Token", "X-User-Id"])),
                head_bytes(&word(b, &["Basic dTpw", "t0k"])),
            ));
        }
        let method = String::from_utf8_lossy(&head_bytes(&word(b, &["GET", "GET", "POST", "HEAD", "PUT", "OPTIONS"])))
            .replace(' ', "_");
        let uri = target_bytes(&word(b, &PATHS));
        let request = (flags & 128 == 0).then(|| RequestHead {
            method,
            uri,
            version: Some(1),
            headers: Headers::from_pairs(h.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))),
        });
        let req_body = word(b, &BODIES);
        let answered = flags & 256 == 0;
        let mut rh: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        rh.push((b"Content-Type".to_vec(), head_bytes(&word(b, &TYPES))));
        if flags & 512 != 0 {
            rh.push((b"Set-Cookie".to_vec(), head_bytes(&word(b, &["sid=u9; Path=/", "sid=; Max-Age=0", "x"]))));
        }
        if flags & 1024 != 0 {
            rh.push((b"Location".to_vec(), target_bytes(&word(b, &PATHS))));
        }
        let status = if flags & 2048 != 0 { b.u16() % 1000 } else { *b.pick(&STATUSES) };
        let resp_body = word(b, &BODIES);
        let response = answered.then(|| ResponseHead {
            version: Some(1),
            status,
            reason: head_bytes(&word(b, &["OK", "Not Found", ""])),
            headers: Headers::from_pairs(rh.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))),
        });
        let outcome = if answered {
            *b.pick(&[
                Outcome::Complete,
                Outcome::Complete,
                Outcome::Truncated,
                Outcome::CaptureGap,
                Outcome::ServerReset,
            ])
        } else {
            *b.pick(&[
                Outcome::NoResponse,
                Outcome::ClientAbort,
                Outcome::ServerReset,
                Outcome::CaptureGap,
                Outcome::Malformed,
            ])
        };
        let (send, wait, recv) = (Gen::ms(b), Gen::ms(b), Gen::ms(b));
        let start = self.t;
        let timing = TxTiming {
            req_start: request.as_ref().map(|_| start),
            req_end: request.as_ref().map(|_| start + send),
            resp_start: response.as_ref().map(|_| start + send + wait),
            resp_end: response.as_ref().map(|_| start + send + wait + recv),
            handshake_rtt: (depth == 1 && flags & 4096 != 0).then(|| Dur::from_millis(3)),
            req_resent: None,
        };
        self.frame += 4;
        let body = |kept: Vec<u8>| BodyInfo::plain(kept);
        let missing = if outcome == Outcome::CaptureGap { 1 + u64::from(b.u8()) } else { 0 };
        HttpTransaction {
            conn,
            client: Gen::client(conn),
            server: SocketAddr::from(([10, 0, 0, 100], if flags & 8192 != 0 { 8080 } else { 80 })),
            depth,
            stream: None,
            tls: false,
            request,
            response,
            interim: if flags & 16384 != 0 { vec![100] } else { Vec::new() },
            timing,
            req_frames: Some(FrameSpan { first: self.frame - 3, last: self.frame - 2 }),
            resp_frames: answered.then_some(FrameSpan { first: self.frame - 1, last: self.frame }),
            request_body: body(req_body),
            response_body: body(resp_body),
            outcome,
            waited: (!answered).then(|| Gen::ms(b)),
            missing_bytes: missing,
            anomalies: if missing > 0 { vec![Anomaly::ResponseGap] } else { Vec::new() },
        }
    }
}

/// One event for the user stage.
enum Event {
    Tx(Box<HttpTransaction>),
    Failed(FailedConn),
}

fn events(b: &mut Bytes<'_>, max: usize) -> Vec<Event> {
    let mut g = Gen::new();
    let mut out = Vec::new();
    while !b.is_empty() && out.len() < max {
        if b.u8() % 16 == 15 {
            out.push(Event::Failed(g.failed(b)));
        } else {
            out.push(Event::Tx(Box::new(g.tx(b))));
        }
    }
    out
}

/// Pushes `events` through a user stage with `cfg` and checks its outputs.
fn run_stage(cfg: &PovConfig, events: Vec<Event>, formats: [Format; 4], max_txs: usize) {
    let (mut stage, sel) = tapped_stage(cfg, formats, max_txs);
    let mut pushed = 0;
    let mut all = Vec::new();
    for e in events {
        match e {
            Event::Tx(t) => {
                pushed += 1;
                all.push((*t).clone());
                stage.transaction(&t).expect("writing into memory");
            }
            Event::Failed(f) => stage.failed_connection(f).expect("writing into memory"),
        }
    }
    let (rows, report) = finish_stage(stage, formats);
    check_stage(&rows, &report, pushed, max_txs);
    let sel = std::mem::take(&mut *sel.borrow_mut());
    check_selection_replay(&sel, &all, cfg);
}

/// Decodes `data` into a sequence of transactions (a small shop's hosts,
/// paths, cookies, statuses, bodies and timings, or bytes of the input in
/// their place) and failed connection attempts, pushes them through the
/// user stage (identity, sessions, page views, classification) with the
/// per-session cap and output formats the first byte chooses, and checks
/// its outputs (see the module docs) and the replay of every session.
pub fn check_sessions(data: &[u8]) {
    let mut b = Bytes(data);
    let first = b.u8();
    let max_txs = if first & 1 == 0 { 100_000 } else { 1 + usize::from(first >> 3) };
    let formats = stage_formats(b.u8());
    let ev = events(&mut b, 4096);
    run_stage(&fuzz_config(), ev, formats, max_txs);
}

// ---------------------------------------------------------------------------
// The replay

/// A resolver that answers every URL with a marker that loads nothing, and
/// counts what it was asked.
#[derive(Default)]
struct Markers {
    asked: Vec<(String, Use)>,
}

impl Resolver for Markers {
    fn resolve(&mut self, url: &str, how: Use) -> Option<String> {
        self.asked.push((url.to_string(), how));
        let n = self.asked.len();
        if url.contains("missing") {
            return None;
        }
        Some(match how {
            Use::Media => format!("pov-res:{n}"),
            Use::Style => format!("body{{background:url('pov-res:{n}')}}"),
        })
    }
}

/// Rewrites `html` twice: the second pass must find nothing that would
/// load (the first replaced every URL a page loads with a marker or an
/// inline `data:` URL) and no `<script>` the first let through.
fn check_rewrite(html: &str, css: &str, url: &str) {
    use pov_replay::rewrite::{rewrite_css, rewrite_html};
    let mut r = Markers::default();
    let once = rewrite_html(html, url, &mut r);
    let mut again = Markers::default();
    let twice = rewrite_html(&once, url, &mut again);
    assert!(again.asked.is_empty(), "a rewritten page still loads {:?}", again.asked);
    assert_eq!(count_ci(&once, "<script"), count_ci(&twice, "<script"), "a rewritten page still holds a script");
    let sheet = rewrite_css(css, url, &mut r);
    let mut again = Markers::default();
    rewrite_css(&sheet, url, &mut again);
    assert!(again.asked.is_empty(), "a rewritten style sheet still loads {:?}", again.asked);
    for (u, _) in &r.asked {
        let l = u.to_ascii_lowercase();
        assert!(l.starts_with("http://") || l.starts_with("https://"), "asked for a URL that is not absolute: {u}");
        assert!(!u.contains('#'), "asked for a URL with its fragment: {u}");
    }
}

/// Decodes `data` into a page URL, an HTML page, a style sheet and a
/// resource (2-byte lengths), checks the rewriter on them (nothing left
/// that loads, no script), then serves them as the transactions of one
/// session and checks its HAR and HTML replay (they parse back; the
/// replay's data block cannot end its script element; every page and
/// transaction is there).
pub fn check_replay(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let url = match b.u8() % 4 {
        0 => "http://shop.example/".to_string(),
        1 => "http://shop.example/a/b/page.html?x=1".to_string(),
        2 => "https://Shop.Example:8443/dir/".to_string(),
        _ => format!("http://shop.example/{}", String::from_utf8_lossy(&target_bytes(b.take(16)))),
    };
    let mut part = || {
        let n = usize::from(b.u16());
        String::from_utf8_lossy(b.take(n)).into_owned()
    };
    let (html, css, other) = (part(), part(), part());
    check_rewrite(&html, &css, &url);
    // The same as a session's transactions.
    let host = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("shop.example").to_string();
    let path = |u: &str| -> Vec<u8> {
        let rest = u.split("://").nth(1).unwrap_or("");
        rest.find('/').map(|i| rest.as_bytes()[i..].to_vec()).unwrap_or_else(|| b"/".to_vec())
    };
    let mk = |i: u32, target: Vec<u8>, ct: &str, body: &str, status: u16| {
        let t0 = pov_capture::testing::SCRIPT_START + Dur::from_millis(100 * i64::from(i));
        HttpTransaction {
            request: Some(RequestHead {
                method: "GET".into(),
                uri: target,
                version: Some(1),
                headers: Headers::from_pairs([(&b"Host"[..], host.as_bytes()), (b"Cookie", b"sid=abc")]),
            }),
            response: Some(ResponseHead {
                version: Some(1),
                status,
                reason: b"OK".to_vec(),
                headers: Headers::from_pairs([(&b"Content-Type"[..], ct.as_bytes())]),
            }),
            timing: TxTiming {
                req_start: Some(t0),
                req_end: Some(t0 + Dur::from_millis(1)),
                resp_start: Some(t0 + Dur::from_millis(20)),
                resp_end: Some(t0 + Dur::from_millis(30)),
                handshake_rtt: None,
                req_resent: None,
            },
            response_body: BodyInfo::plain(body.as_bytes().to_vec()),
            ..HttpTransaction::new(
                1,
                SocketAddr::from(([10, 0, 0, 1], 40000)),
                SocketAddr::from(([10, 0, 0, 100], 80)),
                i,
            )
        }
    };
    let other_type = *Bytes(&[flags]).pick(&TYPES);
    let txs = [
        mk(1, path(&url), "text/html", &html, if flags & 1 == 0 { 200 } else { 500 }),
        mk(2, b"/static/site.css".to_vec(), "text/css", &css, 200),
        mk(3, b"/img/logo.png".to_vec(), other_type, &other, 200),
        mk(4, b"/x.css".to_vec(), "text/css", &css, 200),
    ];
    let refs: Vec<&HttpTransaction> = txs.iter().collect();
    let page = ReplayPage {
        url: url.clone(),
        name: Some("home".into()),
        start: txs[0].timing.start(),
        load_ms: 30.0,
        status: Some(200),
        document: Some(0),
        txs: vec![0, 1, 2, 3],
    };
    let failure = ReplayFailure {
        kind: "server_error".into(),
        rule: "status 5xx".into(),
        severity: "critical".into(),
        page: Some(0),
        tx: Some(0),
        ts: txs[0].timing.start(),
        url: String::from_utf8_lossy(&path(&url)).into_owned(),
        status: Some(500),
        detail: other.chars().take(64).collect(),
    };
    let session = ReplaySession {
        id: "u/1".into(),
        user: other.chars().take(16).collect(),
        start: txs[0].timing.start(),
        end: txs[3].timing.resp_end.unwrap_or_default(),
        pages: vec![page.clone(), ReplayPage { document: Some(2), ..page }],
        failures: vec![failure],
        txs: vec![0, 1, 2, 3],
    };
    for on in [true, false] {
        let m = &Masker::new(&pov_privacy::PrivacyConfig::default(), on);
        let out = pov_replay::html::html(std::slice::from_ref(&session), &refs, m, "fuzz");
        let data = replay_data(&out);
        let s = &data["sessions"][0];
        assert_eq!(s["pages"].as_array().map(Vec::len), Some(2), "replay pages");
        assert_eq!(s["entries"].as_array().map(Vec::len), Some(4), "replay entries");
        assert_eq!(s["failures"].as_array().map(Vec::len), Some(1), "replay failures");
        let docs = data["docs"].as_array().map(Vec::len).unwrap_or(0);
        let res = data["res"].as_array().map(Vec::len).unwrap_or(0);
        for p in s["pages"].as_array().into_iter().flatten() {
            if let Some(d) = p["doc"].as_u64() {
                assert!((d as usize) < docs, "a page shows a document that is not there");
            }
        }
        for d in data["docs"].as_array().into_iter().flatten() {
            let d = d.as_str().unwrap_or("");
            for m in marker_numbers(d, "pov-res:").chain(marker_numbers(d, "pov-css:")) {
                assert!(m < res, "a document points at resource {m} of {res}");
            }
        }
        let entries: Vec<pov_replay::HarEntry<'_>> =
            txs.iter().map(|t| pov_replay::HarEntry { page: Some("page_1".into()), session: None, tx: t }).collect();
        let pages = [pov_replay::HarPage {
            id: "page_1".into(),
            started: txs[0].timing.start(),
            title: url.clone(),
            on_load_ms: Some(30.0),
        }];
        let har = pov_replay::har(&pages, &entries, m, "fuzz");
        let back: Value = serde_json::from_str(&har.to_string()).expect("HAR parses back");
        assert_eq!(back["log"]["entries"].as_array().map(Vec::len), Some(4), "HAR entries");
    }
}

/// The numbers after each `prefix` in `text`.
fn marker_numbers<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(prefix).filter_map(move |(i, _)| {
        let digits: String = text[i + prefix.len()..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

// ---------------------------------------------------------------------------
// The report

fn fuzz_text(b: &mut Bytes<'_>) -> String {
    let n = usize::from(b.u8() % 48);
    String::from_utf8_lossy(b.take(n)).into_owned()
}

fn fuzz_f64(b: &mut Bytes<'_>) -> f64 {
    match b.u8() % 8 {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -1e300,
        3 => f64::from(b.u16()) / 100.0,
        4 => -f64::from(b.u8()),
        5 => f64::from_bits(u64::from_be_bytes([b.u8(), b.u8(), b.u8(), b.u8(), b.u8(), b.u8(), b.u8(), b.u8()])),
        _ => f64::from(b.u8()) * 12.5,
    }
}

fn fuzz_u64(b: &mut Bytes<'_>) -> u64 {
    match b.u8() % 4 {
        0 => u64::MAX,
        1 => u64::from(b.u16()),
        _ => u64::from(b.u8()),
    }
}

fn list<T>(b: &mut Bytes<'_>, f: impl Fn(&mut Bytes<'_>) -> T) -> Vec<T> {
    let n = b.u8() % 6;
    (0..n).map(|_| f(b)).collect()
}

/// A `summary.json` made up from bytes: every text from the input, numbers
/// anywhere from zero to NaN and infinity.
fn fuzz_summary(b: &mut Bytes<'_>) -> crate::analyze::Summary {
    use pov_impact::{Estimate, FunnelRow, HourImpact, PageApdex, StepImpact, TopUser};
    let triple = |b: &mut Bytes<'_>| (fuzz_text(b), fuzz_u64(b), fuzz_u64(b));
    let top_affected_users = list(b, |b| TopUser {
        user: fuzz_text(b),
        failures: fuzz_u64(b),
        sessions: fuzz_u64(b),
        converted: b.u8() & 1 == 1,
        cart_value: (b.u8() & 1 == 1).then(|| fuzz_f64(b)),
    });
    let replays = top_affected_users
        .iter()
        .map(|u| (u.user.clone(), crate::schema::files::replay(&format!("{}.html", u.user))))
        .collect();
    crate::analyze::Summary {
        inputs: list(b, fuzz_text),
        capture_start: (b.u8() & 1 == 1).then(|| fuzz_f64(b)),
        capture_end: (b.u8() & 1 == 1).then(|| fuzz_f64(b)),
        users_total: fuzz_u64(b),
        users_affected: fuzz_u64(b),
        users_affected_pct: fuzz_f64(b),
        sessions_total: fuzz_u64(b),
        sessions_affected: fuzz_u64(b),
        transactions: fuzz_u64(b),
        failures_by_kind: list(b, |b| (fuzz_text(b), fuzz_u64(b))).into_iter().collect(),
        orders: fuzz_u64(b),
        revenue_realised: fuzz_f64(b),
        revenue_lost: Estimate { value: fuzz_f64(b), low: fuzz_f64(b), high: fuzz_f64(b) },
        currency: fuzz_text(b),
        average_order_value: fuzz_f64(b),
        funnel: list(b, |b| StepImpact {
            step: fuzz_text(b),
            hazard: fuzz_f64(b),
            unaffected_views: fuzz_u64(b),
            unaffected_converted_views: fuzz_u64(b),
            unaffected_sessions: fuzz_u64(b),
            weighted_views: fuzz_f64(b),
            weighted_converted_views: fuzz_f64(b),
            baseline: fuzz_f64(b),
            baseline_low: fuzz_f64(b),
            baseline_high: fuzz_f64(b),
            order_value: fuzz_f64(b),
            order_spread: fuzz_f64(b),
            affected_sessions: fuzz_u64(b),
            affected_converted: fuzz_u64(b),
            exit_rate: fuzz_f64(b),
            go_on_rate: fuzz_f64(b),
            go_on_low: fuzz_f64(b),
            go_on_high: fuzz_f64(b),
            lost_sessions: fuzz_u64(b),
            lost_value: fuzz_f64(b),
            left_anyway: fuzz_u64(b),
            went_on_sessions: fuzz_u64(b),
            went_on_value: fuzz_f64(b),
            lost: fuzz_f64(b),
        }),
        top_failing_pages: list(b, triple),
        by_route: list(b, |b| pov_impact::RouteImpact {
            route: fuzz_text(b),
            failures: fuzz_u64(b),
            users: fuzz_u64(b),
            by_kind: list(b, |b| (fuzz_text(b), fuzz_u64(b))).into_iter().collect(),
            views: fuzz_u64(b),
            lost: fuzz_f64(b),
        }),
        by_hour: list(b, |b| HourImpact { hour: fuzz_f64(b), failures: fuzz_u64(b), users_affected: fuzz_u64(b) }),
        by_server: list(b, triple),
        by_page_name: list(b, triple),
        apdex_by_page: list(b, |b| PageApdex {
            page: fuzz_text(b),
            views: fuzz_u64(b),
            satisfied: fuzz_u64(b),
            tolerating: fuzz_u64(b),
            frustrated: fuzz_u64(b),
            score: fuzz_f64(b),
        }),
        funnel_comparison: list(b, |b| FunnelRow {
            step: fuzz_text(b),
            reached_unaffected: fuzz_u64(b),
            converted_unaffected: fuzz_u64(b),
            reached_affected: fuzz_u64(b),
            converted_affected: fuzz_u64(b),
        }),
        top_affected_users,
        lost_by_kind: list(b, |b| (fuzz_text(b), fuzz_f64(b))).into_iter().collect(),
        lost_by_page: list(b, |b| (fuzz_text(b), fuzz_f64(b), fuzz_u64(b))),
        exits_by_kind: list(b, |b| {
            let kind = pov_impact::KindExits {
                views: fuzz_u64(b),
                exits: fuzz_u64(b),
                expected_exits: fuzz_f64(b),
                threshold: fuzz_f64(b),
                counted: b.u8() & 1 == 1,
            };
            (fuzz_text(b), kind)
        })
        .into_iter()
        .collect(),
        history: list(b, |b| crate::analyze::HistoryPoint {
            run: fuzz_text(b),
            capture_start: Some(fuzz_f64(b)),
            users_total: fuzz_u64(b),
            users_affected: fuzz_u64(b),
            users_affected_pct: fuzz_f64(b),
            sessions_total: fuzz_u64(b),
            failures: fuzz_u64(b),
            revenue_realised: fuzz_f64(b),
            revenue_lost: fuzz_f64(b),
        }),
        delta: (b.u8() & 1 == 1).then(|| crate::analyze::HistoryDelta {
            since: fuzz_text(b),
            users_affected: fuzz_u64(b) as i64,
            users_affected_pct: fuzz_f64(b),
            failures: -(fuzz_u64(b) as i64),
            revenue_lost: fuzz_f64(b),
        }),
        trend: list(b, |b| crate::dataset::Day {
            date: fuzz_text(b),
            probes: list(b, fuzz_text),
            users_total: fuzz_u64(b),
            users_affected: fuzz_u64(b),
            sessions_total: fuzz_u64(b),
            revenue_lost: fuzz_f64(b),
            revenue_realised: fuzz_f64(b),
            failures: fuzz_u64(b),
            failures_by_kind: list(b, |b| (fuzz_text(b), fuzz_u64(b))).into_iter().collect(),
            failures_by_route: list(b, |b| (fuzz_text(b), fuzz_u64(b))).into_iter().collect(),
        }),
        capture_loss_bytes: fuzz_u64(b),
        capture_loss_transactions: fuzz_u64(b),
        counters: Value::Null,
        replays,
        robots: crate::users::RobotsReport {
            included: b.u8() & 1 == 1,
            users: fuzz_u64(b),
            sessions: fuzz_u64(b),
            pages: fuzz_u64(b),
            requests: fuzz_u64(b),
            failures: fuzz_u64(b),
            by_rule: list(b, |b| (fuzz_text(b), fuzz_u64(b))).into_iter().collect(),
            clients: list(b, |b| crate::users::RobotClient {
                client_ip: opt_text(b),
                user_agent: opt_text(b),
                rule: fuzz_text(b),
                evidence: fuzz_text(b),
                users: fuzz_u64(b),
                sessions: fuzz_u64(b),
                requests: fuzz_u64(b),
                failures: fuzz_u64(b),
            }),
        },
    }
}

/// Tags `report.html` writes itself; any other tag came from the data.
const REPORT_TAGS: [&str; 22] = [
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "p",
    "div",
    "b",
    "br",
    "span",
    "figure",
    "figcaption",
    "canvas",
    "table",
    "tr",
    "th",
    "td",
    "a",
    "script",
];

/// Renders `report.html` from a summary made up from `data` and checks it:
/// every tag outside the scripts is one the report writes (captured text is
/// escaped), there are exactly its two scripts, and the data the charts
/// read parses as JSON and cannot end its script element. `summary.json`
/// of the same summary parses back.
pub fn check_report(data: &[u8]) {
    let s = fuzz_summary(&mut Bytes(data));
    let html = crate::report::render(&s);
    assert_eq!(count_ci(&html, "<script"), 2, "report: scripts");
    assert_eq!(count_ci(&html, "</script"), 2, "report: script ends");
    let open = "<script>const POV = ";
    let start = html.find(open).expect("the report's data") + open.len();
    let len = html[start..].find(";\n").expect("the report's data ends");
    let block = &html[start..start + len];
    script_safe(block);
    let v: Value = serde_json::from_str(block).expect("the report's data parses as JSON");
    assert_eq!(v["by_hour"].as_array().map(Vec::len), Some(s.by_hour.len()), "report data: hours");
    // Markup outside the scripts.
    let first_script = find_ci(&html, "<script").unwrap_or(html.len());
    let markup = &html[..first_script];
    let style_end = markup.find("</style>").map(|i| i + 8).unwrap_or(0);
    for (i, _) in markup[style_end..].match_indices('<') {
        let tag: String = markup[style_end + i + 1..]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(REPORT_TAGS.contains(&tag.as_str()), "report: a tag `{tag}` from the data");
    }
    let json = serde_json::to_string(&s).expect("summary.json serialises");
    let _: Value = serde_json::from_str(&json).expect("summary.json parses back");
}

// ---------------------------------------------------------------------------
// Record output

/// Writes `records` in every text format and checks what comes back: CSV
/// gives back every value (a string cell may carry a neutralising prefix),
/// JSON and JSON lines give back every record exactly, a table has one line
/// a record and no control characters.
fn round_trip<R: Record>(records: &[R]) {
    let want: Vec<Value> = records.iter().map(|r| serde_json::to_value(r).expect("serialises")).collect();
    // A CSV line made from the record's values is the one made from its
    // JSON value.
    let shape = pov_impact::RowShape::new(R::FIELDS);
    let json_shape = pov_impact::json::JsonShape::of::<R>();
    let csv_shape = pov_impact::csv::CsvShape::of::<R>();
    for r in records {
        // Taken apart by its values in order, a record's cells are the
        // ones its fields matched to columns by name give.
        let by_values = shape.record_row(r).expect("fits its columns");
        let by_names = shape.row(r).expect("fits its columns");
        assert_eq!(by_values.cells().collect::<Vec<_>>(), by_names.cells().collect::<Vec<_>>());
        let by_value = crate::output::csv_by_value(r).expect("serialises");
        let mut line = String::new();
        assert!(csv_shape.write(r, &mut line), "a record its CSV shape takes");
        assert_eq!(line, by_value, "a CSV line as its JSON value's");
        // Its JSON text made from its values is serde_json's, byte for byte.
        let mut json = Vec::new();
        assert!(json_shape.write(r, &mut json), "a record its JSON shape takes");
        assert_eq!(
            String::from_utf8(json).expect("JSON is text"),
            serde_json::to_string(r).expect("serialises"),
            "JSON made from the values as serde_json's"
        );
    }
    for format in [Format::Csv, Format::Json, Format::Jsonl, Format::Table] {
        let mut w = RecordWriter::<Vec<u8>, R>::new(Vec::new(), format).expect("writer");
        for r in records {
            w.write(r).expect("memory");
        }
        let n = w.count();
        let rows = parse_records::<R>(format, &w.finish().expect("finish"), n);
        for (row, want) in rows.iter().zip(&want) {
            match format {
                Format::Json | Format::Jsonl => {
                    let got = Value::Object(row.clone());
                    assert!(same_json(&got, want), "{format:?} gives back the record: {got} for {want}");
                }
                Format::Csv => {
                    for (k, kind) in R::FIELDS {
                        csv_gives_back(row.get(*k), &want[*k], *kind, k);
                    }
                }
                _ => {}
            }
        }
    }
}

/// JSON values equal, numbers within a few units in the last place
/// (serde_json's parser, without its `float_roundtrip` feature, may miss
/// the nearest float by one).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn csv_gives_back(cell: Option<&Value>, want: &Value, kind: Kind, key: &str) {
    let cell = match cell {
        Some(Value::String(s)) => s.as_str(),
        _ => "",
    };
    match want {
        Value::Null => assert_eq!(cell, "", "CSV `{key}`: null is an empty cell"),
        Value::String(s) => {
            assert!(
                cell == s || (cell.len() <= s.len() + 1 && cell.ends_with(s.as_str())),
                "CSV `{key}`: {cell:?} for {s:?}"
            )
        }
        Value::Bool(b) => assert_eq!(cell, b.to_string(), "CSV `{key}`"),
        Value::Number(n) => {
            let got: f64 = cell.parse().unwrap_or_else(|_| panic!("CSV `{key}`: {cell:?} is not a number"));
            assert_eq!(Some(got), n.as_f64(), "CSV `{key}`");
        }
        Value::Array(a) => {
            let items: Vec<String> =
                a.iter().map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).collect();
            let joined = items.join(" ");
            assert!(cell.ends_with(&joined) && cell.len() <= joined.len() + 1, "CSV `{key}` ({kind:?}): {cell:?}");
        }
        Value::Object(_) => {
            let got: Value = serde_json::from_str(cell).unwrap_or_else(|_| panic!("CSV `{key}`: {cell:?}"));
            assert!(same_json(&got, want), "CSV `{key}`: {got} for {want}");
        }
    }
}

fn opt_text(b: &mut Bytes<'_>) -> Option<String> {
    (b.u8() & 1 == 1).then(|| fuzz_text(b))
}

fn opt_f64(b: &mut Bytes<'_>) -> Option<f64> {
    (b.u8() & 1 == 1).then(|| fuzz_f64(b))
}

/// Decodes records of every type from `data` (transactions as the HTTP
/// layer could give them, users, sessions, pages and failures with any
/// text and any number) and checks that each format gives them back
/// (`round_trip`).
pub fn check_csv(data: &[u8]) {
    let mut b = Bytes(data);
    let mut g = Gen::new();
    let n = 1 + b.u8() % 4;
    let txs: Vec<TxRecord> = (0..n)
        .map(|_| TxRecord::new(&g.tx(&mut b), &Masker::new(&pov_privacy::PrivacyConfig::default(), b.u8() & 1 == 0)))
        .collect();
    round_trip(&txs);
    let users: Vec<UserRecord> = (0..n)
        .map(|_| UserRecord {
            user: fuzz_text(&mut b),
            id_rule: fuzz_text(&mut b),
            first_ts: fuzz_f64(&mut b),
            last_ts: fuzz_f64(&mut b),
            client_ip: opt_text(&mut b),
            user_agent: opt_text(&mut b),
            login: opt_text(&mut b),
            sessions: fuzz_u64(&mut b),
            pages: fuzz_u64(&mut b),
            transactions: fuzz_u64(&mut b),
            failures: list(&mut b, |b| (fuzz_text(b), fuzz_u64(b))).into_iter().collect(),
            failures_total: fuzz_u64(&mut b),
            minor_failures: fuzz_u64(&mut b),
            struggles: fuzz_u64(&mut b),
            capture_loss: fuzz_u64(&mut b),
            affected: b.u8() & 1 == 1,
            converted: b.u8() & 1 == 1,
            orders: fuzz_u64(&mut b),
            cart_value: opt_f64(&mut b),
            order_value: opt_f64(&mut b),
        })
        .collect();
    round_trip(&users);
    let sessions: Vec<SessionRecord> = (0..n)
        .map(|_| SessionRecord {
            session: fuzz_text(&mut b),
            user: fuzz_text(&mut b),
            index: b.u16().into(),
            start: fuzz_f64(&mut b),
            end: fuzz_f64(&mut b),
            duration_s: fuzz_f64(&mut b),
            client_ip: opt_text(&mut b),
            user_agent: opt_text(&mut b),
            pages: fuzz_u64(&mut b),
            transactions: fuzz_u64(&mut b),
            steps: list(&mut b, fuzz_text),
            last_step: opt_text(&mut b),
            funnel_step: opt_text(&mut b),
            exit_step: opt_text(&mut b),
            left_after_failure: b.u8() & 1 == 1,
            exit_failure: opt_text(&mut b),
            exit_route: opt_text(&mut b),
            exit_url: opt_text(&mut b),
            failures: list(&mut b, |b| (fuzz_text(b), fuzz_u64(b))).into_iter().collect(),
            minor_failures: fuzz_u64(&mut b),
            struggles: fuzz_u64(&mut b),
            capture_loss: fuzz_u64(&mut b),
            affected: b.u8() & 1 == 1,
            apdex: opt_f64(&mut b),
            converted: b.u8() & 1 == 1,
            orders: fuzz_u64(&mut b),
            cart_value: opt_f64(&mut b),
            order_value: opt_f64(&mut b),
            transactions_left_out: fuzz_u64(&mut b),
        })
        .collect();
    round_trip(&sessions);
    let pages: Vec<PageRecord> = (0..n)
        .map(|_| PageRecord {
            page: fuzz_text(&mut b),
            session: fuzz_text(&mut b),
            user: fuzz_text(&mut b),
            ts: fuzz_f64(&mut b),
            host: opt_text(&mut b),
            route: fuzz_text(&mut b),
            url: fuzz_text(&mut b),
            name: opt_text(&mut b),
            step: opt_text(&mut b),
            status: (b.u8() & 1 == 1).then(|| b.u16()),
            redirects: fuzz_u64(&mut b),
            requests: fuzz_u64(&mut b),
            load_ms: fuzz_f64(&mut b),
            server_ms: fuzz_f64(&mut b),
            network_ms: fuzz_f64(&mut b),
            apdex: fuzz_text(&mut b),
            failures: list(&mut b, fuzz_text),
        })
        .collect();
    round_trip(&pages);
    let failures: Vec<FailureRecord> = (0..n)
        .map(|_| FailureRecord {
            ts: fuzz_f64(&mut b),
            user: fuzz_text(&mut b),
            session: fuzz_text(&mut b),
            page: (b.u8() & 1 == 1).then(|| u32::from(b.u16())),
            kind: fuzz_text(&mut b),
            rule: fuzz_text(&mut b),
            severity: fuzz_text(&mut b),
            uid: fuzz_text(&mut b),
            client: opt_text(&mut b),
            server: opt_text(&mut b),
            trans_depth: (b.u8() & 1 == 1).then(|| u32::from(b.u16())),
            first_frame: (b.u8() & 1 == 1).then(|| fuzz_u64(&mut b)),
            last_frame: (b.u8() & 1 == 1).then(|| fuzz_u64(&mut b)),
            host: opt_text(&mut b),
            page_name: opt_text(&mut b),
            route: fuzz_text(&mut b),
            url: fuzz_text(&mut b),
            status: (b.u8() & 1 == 1).then(|| b.u16()),
            detail: fuzz_text(&mut b),
        })
        .collect();
    round_trip(&failures);
}

// ---------------------------------------------------------------------------
// pov.toml

/// A small shop visit: home, a product, the cart, checkout, an order
/// placed, its confirmation, a server error and a slow page.
fn shop_visit() -> Vec<Event> {
    let mut g = Gen::new();
    let mut out = Vec::new();
    // (conn, path, method, status, body, set-cookie)
    let visit: [(&[u8], &[u8], u16, &str); 8] = [
        (b"/", b"GET", 200, "<html>home</html>"),
        (b"/p/42", b"GET", 200, "<html>product</html>"),
        (b"/cart", b"GET", 200, "{\"cart_total\":\"99.00\"}"),
        (b"/checkout", b"GET", 200, "<html>checkout</html>"),
        (b"/checkout/submit", b"POST", 302, ""),
        (b"/order/confirmation", b"GET", 200, "{\"order_total\":\"99.00\"}"),
        (b"/search?q=x", b"GET", 500, "Internal Server Error"),
        (b"/c/shoes", b"GET", 200, "<html>we're sorry, something went wrong</html>"),
    ];
    for (i, (path, method, status, body)) in visit.iter().enumerate() {
        let mut tx = g.tx(&mut Bytes(&[1, 0, 0, 50, 0]));
        g.t = g.t + Dur::from_secs(if i == 7 { 20 } else { 2 });
        tx.timing.req_start = Some(g.t);
        tx.timing.req_end = Some(g.t);
        tx.timing.resp_start = Some(g.t + Dur::from_millis(if i == 7 { 15_000 } else { 30 }));
        tx.timing.resp_end = tx.timing.resp_start.map(|t| t + Dur::from_millis(5));
        tx.request = Some(RequestHead {
            method: String::from_utf8_lossy(method).into_owned(),
            uri: path.to_vec(),
            version: Some(1),
            headers: Headers::from_pairs([
                (&b"Host"[..], &b"shop.example"[..]),
                (b"Cookie", b"sid=u1"),
                (b"User-Agent", b"Mozilla/5.0"),
                // (A customer following the shop's links: not a robot.)
                (b"Referer", b"http://shop.example/"),
            ]),
        });
        tx.response = Some(ResponseHead {
            version: Some(1),
            status: *status,
            reason: b"OK".to_vec(),
            headers: Headers::from_pairs([(&b"Content-Type"[..], &b"text/html"[..])]),
        });
        tx.response_body = BodyInfo::plain(body.as_bytes().to_vec());
        tx.outcome = Outcome::Complete;
        tx.missing_bytes = 0;
        tx.anomalies.clear();
        tx.waited = None;
        out.push(Event::Tx(Box::new(tx)));
    }
    out
}

/// Parses `data` as `pov.toml`; when it parses, everything it configures
/// must work: the user stage builds with it (parsing compiled every
/// pattern) and a small shop visit runs through it with its outputs
/// checked. The default file must give the defaults back.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(cfg) = PovConfig::parse(text) else { return };
    run_stage(&cfg, shop_visit(), [Format::Csv, Format::Jsonl, Format::Json, Format::Csv], 100_000);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parser_is_strict() {
        assert_eq!(parse_csv("a,b\n\"x,\"\"y\"\"\",\n"), vec![vec!["a", "b"], vec!["x,\"y\"", ""]]);
        assert_eq!(parse_csv("\"a\nb\"\n"), vec![vec!["a\nb"]]);
        for bad in ["a\"b\n", "\"a\"b\n", "\"open\n", "a\r\n"] {
            assert!(std::panic::catch_unwind(|| parse_csv(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_default_config_runs_the_shop_visit() {
        check_config(crate::config::DEFAULT_TOML.as_bytes());
        check_config(b"");
        check_config(b"[sessions]\ntimeout_secs = 1\n");
    }

    #[test]
    fn generated_transactions_pass_the_user_stage_checks() {
        let mut seed = 7u64;
        for _ in 0..200 {
            let data: Vec<u8> = (0..600)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            check_sessions(&data);
            check_csv(&data);
            check_report(&data);
            check_replay(&data);
        }
    }

    #[test]
    fn a_sample_capture_passes_the_pipeline_checks() {
        let p = pov_capture::testing::manifest_dir().join("../../samples/local-curl.pcap");
        check_pipeline(&std::fs::read(p).expect("samples/local-curl.pcap"));
    }
}
