//! `pov analyze`: the main job. One pass over the captures writes every
//! record set as Parquet into a folder; then the impact stage (pov-impact,
//! polars) reads them back and `summary.json` says who was hurt and what it
//! likely cost. Every file is written into a staging folder ([`RunDir`])
//! and the whole set is moved into place at the end.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pov_capture::http::HttpTransaction;
use pov_impact::schema::files;
use pov_impact::{Impact, RevenueModel};

use crate::config::PovConfig;
use crate::output::{AtomicFile, Format, RecordWriter};
use crate::parallel::{Downstream, Flow, GO_ON, Prepare};
use crate::pipeline::RunReport;
use crate::transactions::{Masker, Prepared, TxWriter};
use crate::users::{Outputs, UserStage, UserStageReport};

/// Transactions go both to their Parquet file and to the user stage.
pub struct AnalyzeSink {
    tx: TxWriter<AtomicFile>,
    users: UserStage<AtomicFile>,
}

impl AnalyzeSink {
    /// Calls `tap` with every session as it closes (see
    /// [`crate::replay::spilling_tap`]).
    pub fn set_tap(&mut self, tap: crate::users::SessionTap) {
        self.users.set_tap(tap);
    }
}

impl AnalyzeSink {
    /// See [`UserStage::set_prehashed`].
    pub fn set_prehashed(&mut self) {
        self.users.set_prehashed();
    }

    /// Adds a failed connection attempt (read back from records).
    pub fn failed_connection(&mut self, f: pov_sessions::FailedConn) -> io::Result<()> {
        self.users.failed_connection(f)
    }

    /// See [`UserStage::set_user_spill`].
    pub fn set_user_spill(&mut self, dir: &Path, max: usize) {
        self.users.set_user_spill(dir, max);
    }

    /// See [`UserStage::set_identity_caps`].
    pub fn set_identity_caps(&mut self, caps: pov_sessions::IdentityCaps) {
        self.users.set_identity_caps(caps);
    }

    /// See [`UserStage::set_include_robots`].
    pub fn set_include_robots(&mut self, on: bool) {
        self.users.set_include_robots(on);
    }

    /// See [`UserStage::set_parallel`]; on, the record files are also
    /// finished side by side.
    pub fn set_parallel(&mut self, on: bool) {
        self.users.set_parallel(on);
    }
}

/// Makes, on the shards, both what the transaction writer and what the
/// user stage take of a transaction.
pub struct AnalyzePrep {
    records: crate::transactions::Records,
    txs: std::sync::Arc<crate::users::SessionTxs>,
}

impl Prepare for AnalyzePrep {
    type Item = (Prepared, pov_sessions::tx::Tx);
    fn prepare(&self, t: Box<HttpTransaction>) -> Self::Item {
        let tx = self.txs.tx(&t);
        (self.records.prepare_from(&t, Some(&tx)), tx)
    }
    fn held_bytes((record, tx): &Self::Item) -> usize {
        record.heap_bytes() + tx.heap_bytes()
    }
}

impl Downstream for AnalyzeSink {
    type Item = (Prepared, pov_sessions::tx::Tx);
    type Prep = AnalyzePrep;
    fn preparer(&self) -> AnalyzePrep {
        AnalyzePrep { records: self.tx.preparer(), txs: self.users.preparer() }
    }
    fn on_transaction(&mut self, (record, tx): Self::Item) -> Flow {
        self.tx.write_prepared(record)?;
        self.users.session_tx(tx)?;
        GO_ON
    }

    fn on_summary(&mut self, s: &pov_capture::tcp::ConnSummary) -> Flow {
        self.users.on_summary(s)
    }
}

/// What `pov analyze` does with the transactions and connection summaries
/// of its pass ([`crate::parallel::run`] feeds [`AnalyzePipeline::sink`]).
pub struct AnalyzePipeline {
    /// Every record writer and the user stage.
    pub sink: AnalyzeSink,
}

/// The output folder of a `pov analyze` run, written as a whole: every
/// file goes into a hidden staging folder inside it (`.pov-run-PID`), and
/// [`RunDir::publish`] moves them into place together at the end. An error
/// or an interrupted run leaves the folder as it was; the staging folder
/// (with any temporary, spill or spool file in it) is removed when the
/// `RunDir` is dropped, and so is the output folder if this run created it
/// and published nothing into it.
#[derive(Debug)]
pub struct RunDir {
    out: PathBuf,
    staging: PathBuf,
    created_out: bool,
    published: bool,
}

impl RunDir {
    /// Creates `out` (if needed) and an empty staging folder in it.
    pub fn create(out: &Path) -> io::Result<RunDir> {
        let named = |e: io::Error, p: &Path| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        let created_out = !out.exists();
        fs::create_dir_all(out).map_err(|e| named(e, out))?;
        let staging = out.join(format!(".pov-run-{}", std::process::id()));
        // Left by an earlier process that had this id and was killed.
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging).map_err(|e| named(e, &staging))?;
        Ok(RunDir { out: out.to_path_buf(), staging, created_out, published: false })
    }

    /// The output folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The staging folder (for the impact stage, spill and spool files).
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// A new output file, `name` relative to the folder (`summary.json`,
    /// `replays/u.html`): written atomically into the staging folder, named
    /// by its final path in errors.
    pub fn file(&self, name: &str) -> io::Result<AtomicFile> {
        let path = self.staging.join(name);
        let shown = self.out.join(name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", shown.display())))?;
        }
        AtomicFile::create_as(&path, &shown)
    }

    /// Moves the files `names` (written with [`RunDir::file`] and
    /// committed) into the output folder, in this order, each by one
    /// rename; returns their final paths.
    pub fn publish(&mut self, names: &[String]) -> io::Result<Vec<PathBuf>> {
        self.published = true;
        let mut done = Vec::new();
        for name in names {
            let (from, to) = (self.staging.join(name), self.out.join(name));
            let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", to.display()));
            if let Some(dir) = to.parent() {
                fs::create_dir_all(dir).map_err(named)?;
            }
            fs::rename(&from, &to).map_err(named)?;
            done.push(to);
        }
        self.remove_stale_replays(&done);
        Ok(done)
    }

    /// Removes the HTML replays of an earlier run into the same folder that
    /// this run did not write: they would show another night's customers
    /// (perhaps unmasked), and report.html no longer links them. pov owns
    /// `OUT/replays/`; only `.html` files there are touched.
    fn remove_stale_replays(&self, published: &[PathBuf]) {
        let Ok(entries) = fs::read_dir(self.out.join(files::REPLAYS)) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "html") && p.is_file() && !published.contains(&p) {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.staging);
        if self.created_out && !self.published {
            // Only if empty.
            let _ = fs::remove_dir(&self.out);
        }
    }
}

impl AnalyzePipeline {
    /// Opens every record file of the run (in its staging folder) under a
    /// temporary name.
    pub fn new(
        run: &RunDir,
        cfg: &PovConfig,
        http: &pov_capture::http::HttpConfig,
        mask: bool,
        max_session_txs: usize,
    ) -> io::Result<AnalyzePipeline> {
        let open = |name: &str| run.file(name);
        let tx = TxWriter::new(open(files::TRANSACTIONS)?, Format::Parquet, Masker::new(&cfg.privacy, mask))?;
        let outputs = Outputs {
            pages: Some(RecordWriter::new(open(files::PAGES)?, Format::Parquet)?),
            sessions: Some(RecordWriter::new(open(files::SESSIONS)?, Format::Parquet)?),
            users: Some(RecordWriter::new(open(files::USERS)?, Format::Parquet)?),
            failures: Some(RecordWriter::new(open(files::FAILURES)?, Format::Parquet)?),
        };
        let mut users = UserStage::with_limits(cfg, mask, outputs, max_session_txs)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        users.set_budget(&http.budget);
        // The records' customer columns take the user stage's view of each
        // transaction: one set of compiled failure rules for both.
        let tx = tx.with_customer(crate::transactions::Customer::with_txs(cfg, &[], users.session_txs()));
        Ok(AnalyzePipeline { sink: AnalyzeSink { tx, users } })
    }

    /// Flushes everything, renames the record files into place (in the
    /// staging folder), and returns the user-stage counters.
    pub fn finish(self) -> io::Result<UserStageReport> {
        let AnalyzeSink { tx, users } = self.sink;
        if !users.parallel() {
            let tx = tx.finish()?;
            let (outputs, report) = users.finish()?;
            commit_records(tx, outputs)?;
            return Ok(report);
        }
        // The transaction records are finished (their last rows encoded,
        // the file synced) while the user stage closes its sessions, then
        // the user stage's four files side by side.
        let mut tx_done = None;
        let closed = rayon::in_place_scope(|s| {
            s.spawn(|_| tx_done = Some(tx.finish().and_then(AtomicFile::commit)));
            users.finish()
        });
        let (outputs, report) = closed?;
        let mut done: [Option<io::Result<()>>; 4] = Default::default();
        let [pages, sessions, users, failures] = &mut done;
        rayon::in_place_scope(|s| {
            s.spawn(|_| *pages = Some(commit_record(outputs.pages)));
            s.spawn(|_| *sessions = Some(commit_record(outputs.sessions)));
            s.spawn(|_| *users = Some(commit_record(outputs.users)));
            *failures = Some(commit_record(outputs.failures));
        });
        for r in std::iter::once(tx_done).chain(done) {
            r.unwrap_or_else(|| Err(io::Error::other("a record file was not finished")))?;
        }
        Ok(report)
    }
}

/// Finishes the user stage's four record files and commits them (in the
/// staging folder) with the transaction records `tx`, finished already.
pub(crate) fn commit_records(tx: AtomicFile, outputs: Outputs<AtomicFile>) -> io::Result<()> {
    tx.commit()?;
    commit_record(outputs.pages)?;
    commit_record(outputs.sessions)?;
    commit_record(outputs.users)?;
    commit_record(outputs.failures)
}

/// Finishes one of the user stage's record files and commits it.
fn commit_record<R: crate::output::Record>(w: Option<RecordWriter<AtomicFile, R>>) -> io::Result<()> {
    w.ok_or_else(|| io::Error::other("an output of the user stage was not open"))?.finish()?.commit()
}

/// `summary.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Inputs, as given.
    pub inputs: Vec<String>,
    /// First packet (epoch seconds).
    pub capture_start: Option<f64>,
    /// Last packet.
    pub capture_end: Option<f64>,
    /// Users.
    pub users_total: u64,
    /// Users with at least one noticed failure.
    pub users_affected: u64,
    /// Their share, percent.
    pub users_affected_pct: f64,
    /// Sessions.
    pub sessions_total: u64,
    /// Sessions with at least one noticed failure.
    pub sessions_affected: u64,
    /// HTTP transactions.
    pub transactions: u64,
    /// Noticed failures by kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Orders placed.
    pub orders: u64,
    /// Their value.
    pub revenue_realised: f64,
    /// Revenue lost, with its 95 % interval.
    pub revenue_lost: pov_impact::Estimate,
    /// Currency of the values.
    pub currency: String,
    /// Average order value used where no cart was visible.
    pub average_order_value: f64,
    /// The revenue model's inputs, step by step.
    pub funnel: Vec<pov_impact::StepImpact>,
    /// Routes with the most noticed failures (route, failures, users).
    pub top_failing_pages: Vec<(String, u64, u64)>,
    /// Noticed failures by route, with their kinds, page views and revenue
    /// lost.
    pub by_route: Vec<pov_impact::RouteImpact>,
    /// Noticed failures and affected users per hour.
    pub by_hour: Vec<pov_impact::HourImpact>,
    /// Noticed failures and affected users per server (server, failures,
    /// users).
    pub by_server: Vec<(String, u64, u64)>,
    /// Noticed failures and affected users per page class (name,
    /// failures, users).
    pub by_page_name: Vec<(String, u64, u64)>,
    /// Apdex per page class.
    pub apdex_by_page: Vec<pov_impact::PageApdex>,
    /// Reached and converted per step, sessions with and without a failure.
    pub funnel_comparison: Vec<pov_impact::FunnelRow>,
    /// Users with the most noticed failures.
    pub top_affected_users: Vec<pov_impact::TopUser>,
    /// Revenue lost by the kind of failure users left after.
    pub lost_by_kind: BTreeMap<String, f64>,
    /// Revenue lost by the page users left from (route, lost, sessions).
    pub lost_by_page: Vec<(String, f64, u64)>,
    /// Per kind of noticed failure: the page views it struck that ended
    /// their visit against those that would have anyway, and whether
    /// visits that ended on it count as lost (docs/revenue.md).
    pub exits_by_kind: BTreeMap<String, pov_impact::KindExits>,
    /// Earlier runs (from `--history`) and this one, by capture start.
    pub history: Vec<HistoryPoint>,
    /// This run minus the latest earlier one, for the headline numbers.
    pub delta: Option<HistoryDelta>,
    /// With `--history` on a dataset: per day, over every probe, the last
    /// `--history-days` days (crate::dataset).
    pub trend: Vec<crate::dataset::Day>,
    /// Bytes missing from the capture (never blamed on the application).
    pub capture_loss_bytes: u64,
    /// Transactions with bytes missing from the capture.
    pub capture_loss_transactions: u64,
    /// Every counter: decoding, reassembly (every cap), HTTP, users.
    pub counters: serde_json::Value,
    /// HTML replays written for the most affected users: user -> path
    /// relative to the output folder.
    pub replays: BTreeMap<String, String>,
    /// Robots and load generators, reported apart (and left out of every
    /// number above unless `included`).
    pub robots: crate::users::RobotsReport,
}

/// A file name for a user's replay: the user's name with anything but
/// letters, digits, `.`, `_` and `-` replaced (raw keys hold `:` and `/`).
pub fn replay_file_name(user: &str, taken: &std::collections::HashSet<String>) -> String {
    let base: String =
        user.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).take(80).collect();
    let mut name = format!("{base}.html");
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}.html");
        n += 1;
    }
    name
}

/// The counters of `summary.json`: the run's, the user stage's, and (only
/// when there are any) the packets a `--filter` left out and a live
/// capture's drops, which are capture loss, never failures.
fn counters(report: &RunReport, users: &UserStageReport) -> serde_json::Value {
    let mut c = serde_json::json!({
        "decode": report.decode,
        "tcp": report.tcp,
        "http": report.http,
        "keys": report.keys,
        "users": users,
        "budget": report.budget,
        "errors": report.errors,
        "warnings": report.warnings,
    });
    if let (Some(m), Some(input)) = (c.as_object_mut(), report.input_counters()) {
        m.insert("input".into(), input);
    }
    c
}

impl Summary {
    /// Puts the run's counters and the impact together.
    pub fn new(
        inputs: &[PathBuf],
        report: &RunReport,
        users: &UserStageReport,
        imp: Impact,
        currency: &str,
    ) -> Summary {
        let gaps = report.tcp.totals.gap_bytes;
        Summary {
            inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
            capture_start: report.first_ts.map(|t| t.as_secs_f64()),
            capture_end: report.last_ts.map(|t| t.as_secs_f64()),
            users_total: imp.users_total,
            users_affected: imp.users_affected,
            users_affected_pct: (imp.users_affected_pct * 100.0).round() / 100.0,
            sessions_total: imp.sessions_total,
            sessions_affected: imp.sessions_affected,
            transactions: report.http.as_ref().map(|h| h.transactions).unwrap_or(0),
            failures_by_kind: imp.failures_by_kind,
            orders: imp.orders,
            revenue_realised: round2(imp.revenue_realised),
            revenue_lost: pov_impact::Estimate {
                value: round2(imp.revenue_lost.value),
                low: round2(imp.revenue_lost.low),
                high: round2(imp.revenue_lost.high),
            },
            currency: currency.to_string(),
            average_order_value: round2(imp.average_order_value),
            funnel: imp.funnel,
            top_failing_pages: imp.top_failing_pages,
            by_route: imp.by_route.into_iter().map(|r| pov_impact::RouteImpact { lost: round2(r.lost), ..r }).collect(),
            by_hour: imp.by_hour,
            by_server: imp.by_server,
            by_page_name: imp.by_page_name,
            apdex_by_page: imp.apdex_by_page,
            funnel_comparison: imp.funnel_comparison,
            top_affected_users: imp.top_affected_users,
            lost_by_kind: imp.lost_by_kind.into_iter().map(|(k, v)| (k, round2(v))).collect(),
            lost_by_page: imp.lost_by_page.into_iter().map(|(u, v, n)| (u, round2(v), n)).collect(),
            exits_by_kind: imp.exits_by_kind,
            history: Vec::new(),
            delta: None,
            trend: Vec::new(),
            capture_loss_bytes: gaps,
            capture_loss_transactions: users.capture_loss,
            counters: counters(report, users),
            replays: BTreeMap::new(),
            robots: users.robots.clone(),
        }
    }

    /// Writes `report.html` into the run's folder atomically.
    pub fn write_report(&self, run: &RunDir) -> io::Result<()> {
        let mut f = run.file(files::REPORT)?;
        f.write_all(crate::report::render(self).as_bytes())?;
        f.commit()
    }

    /// Writes `summary.json` into the run's folder atomically.
    pub fn write(&self, run: &RunDir) -> io::Result<()> {
        let mut f = run.file(files::SUMMARY)?;
        serde_json::to_writer_pretty(&mut f, self).map_err(io::Error::other)?;
        writeln!(f)?;
        f.commit()
    }

    /// What `pov analyze` prints: the headline numbers, the top failing
    /// pages, the change since the last run, and where the outputs are
    /// (`out`, the output folder).
    pub fn write_text(&self, w: &mut dyn Write, out: &Path) -> io::Result<()> {
        let span = match (self.capture_start, self.capture_end) {
            (Some(a), Some(b)) => format!("{:.0} s of traffic", b - a),
            _ => "no packets".into(),
        };
        writeln!(
            w,
            "{span}, {} HTTP transactions, {} bytes missing from the capture",
            self.transactions, self.capture_loss_bytes
        )?;
        writeln!(
            w,
            "users: {} ({} affected, {:.1} %); sessions: {} ({} affected)",
            self.users_total, self.users_affected, self.users_affected_pct, self.sessions_total, self.sessions_affected
        )?;
        let kinds: Vec<String> = self.failures_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(w, "failures: {}", if kinds.is_empty() { "none".into() } else { kinds.join(", ") })?;
        writeln!(
            w,
            "orders: {} worth {:.2} {}; revenue lost: {:.2} {} (95 % interval {:.2} to {:.2})",
            self.orders,
            self.revenue_realised,
            self.currency,
            self.revenue_lost.value,
            self.currency,
            self.revenue_lost.low,
            self.revenue_lost.high
        )?;
        if !self.top_failing_pages.is_empty() {
            writeln!(w, "top failing pages:")?;
            for (url, n, users) in self.top_failing_pages.iter().take(5) {
                writeln!(w, "  {n:>5} failures, {users:>4} users  {url}")?;
            }
        }
        if let Some(d) = &self.delta {
            writeln!(
                w,
                "since {}: affected users {:+} ({:+.2} points), failures {:+}, revenue lost {:+.2}",
                d.since, d.users_affected, d.users_affected_pct, d.failures, d.revenue_lost
            )?;
        }
        let written: Vec<&str> = files::RECORDS.iter().chain(&files::SUMMARIES).copied().collect();
        writeln!(w, "outputs: {}/{{{}}}", out.display(), written.join(", "))?;
        if !self.replays.is_empty() {
            writeln!(
                w,
                "replays of the {} most affected users: {}/{}/",
                self.replays.len(),
                out.display(),
                files::REPLAYS
            )?;
        }
        Ok(())
    }

    /// A summary with every part present (zero or empty), to check the
    /// fields a `--fail-if` condition names against.
    fn template() -> Summary {
        let report = RunReport { http: Some(Default::default()), ..RunReport::default() };
        let mut s = Summary::new(&[], &report, &UserStageReport::default(), Impact::default(), "");
        s.capture_start = Some(0.0);
        s.capture_end = Some(0.0);
        let point = HistoryPoint {
            run: String::new(),
            capture_start: None,
            users_total: 0,
            users_affected: 0,
            users_affected_pct: 0.0,
            sessions_total: 0,
            failures: 0,
            revenue_realised: 0.0,
            revenue_lost: 0.0,
        };
        s.with_history(vec![point])
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One run's headline numbers, for trends.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryPoint {
    /// Where its summary.json was (empty for this run).
    pub run: String,
    /// First packet.
    pub capture_start: Option<f64>,
    /// Users.
    pub users_total: u64,
    /// Affected users.
    pub users_affected: u64,
    /// Their share, percent.
    pub users_affected_pct: f64,
    /// Sessions.
    pub sessions_total: u64,
    /// Noticed failures.
    pub failures: u64,
    /// Orders' value.
    pub revenue_realised: f64,
    /// Revenue lost (point estimate).
    pub revenue_lost: f64,
}

/// Night over night: this run minus the latest earlier one.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HistoryDelta {
    /// The earlier run compared with.
    pub since: String,
    /// Change in affected users.
    pub users_affected: i64,
    /// Change in their share, percentage points.
    pub users_affected_pct: f64,
    /// Change in noticed failures.
    pub failures: i64,
    /// Change in revenue lost.
    pub revenue_lost: f64,
}

impl HistoryPoint {
    fn of(run: String, v: &serde_json::Value) -> Option<HistoryPoint> {
        let u = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        Some(HistoryPoint {
            run,
            capture_start: f("capture_start"),
            users_total: u("users_total")?,
            users_affected: u("users_affected")?,
            users_affected_pct: f("users_affected_pct")?,
            sessions_total: u("sessions_total")?,
            failures: v.get("failures_by_kind")?.as_object()?.values().filter_map(serde_json::Value::as_u64).sum(),
            revenue_realised: f("revenue_realised")?,
            revenue_lost: v.get("revenue_lost")?.get("value")?.as_f64()?,
        })
    }
}

/// Earlier runs: every `summary.json` in `dir` or one folder below it
/// (except the one in `exclude`, this run's folder), by capture start.
/// A file that is not a summary is an error naming it.
pub fn read_history(dir: &Path, exclude: &Path) -> io::Result<Vec<HistoryPoint>> {
    let named = |e: io::Error, p: &Path| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let mut found = Vec::new();
    let direct = dir.join(files::SUMMARY);
    if direct.is_file() {
        found.push(direct);
    }
    for e in fs::read_dir(dir).map_err(|e| named(e, dir))? {
        let p = e.map_err(|e| named(e, dir))?.path().join(files::SUMMARY);
        if p.is_file() {
            found.push(p);
        }
    }
    // A dataset's nights (crate::dataset).
    for (_, _, folder) in crate::dataset::partitions(dir, crate::dataset::SUMMARY_TABLE)? {
        let p = folder.join(files::SUMMARY);
        if p.is_file() {
            found.push(p);
        }
    }
    let skip = fs::canonicalize(exclude).ok();
    let mut out = Vec::new();
    for f in found {
        if skip.is_some() && f.parent().and_then(|d| fs::canonicalize(d).ok()) == skip {
            continue;
        }
        let text = fs::read(&f).map_err(|e| named(e, &f))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", f.display())))?;
        let point = HistoryPoint::of(f.display().to_string(), &v).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a pov summary.json", f.display()))
        })?;
        out.push(point);
    }
    out.sort_by(|a, b| {
        a.capture_start.unwrap_or(0.0).total_cmp(&b.capture_start.unwrap_or(0.0)).then(a.run.cmp(&b.run))
    });
    Ok(out)
}

impl Summary {
    /// Adds the earlier runs and the change since the latest one.
    pub fn with_history(mut self, mut earlier: Vec<HistoryPoint>) -> Summary {
        let me = serde_json::to_value(&self).ok().and_then(|v| HistoryPoint::of(String::new(), &v));
        if let (Some(last), Some(me)) = (earlier.last(), me.as_ref()) {
            self.delta = Some(HistoryDelta {
                since: last.run.clone(),
                users_affected: me.users_affected as i64 - last.users_affected as i64,
                users_affected_pct: round2(me.users_affected_pct - last.users_affected_pct),
                failures: me.failures as i64 - last.failures as i64,
                revenue_lost: round2(me.revenue_lost - last.revenue_lost),
            });
        }
        earlier.extend(me);
        self.history = earlier;
        self
    }
}

/// The impact of the records in `dir`.
pub fn impact(dir: &Path, cfg: &PovConfig) -> io::Result<Impact> {
    pov_impact::impact(
        dir,
        &RevenueModel { funnel: cfg.revenue.funnel.clone(), average_order_value: cfg.revenue.average_order_value },
    )
}

/// The maps of summary.json keyed by failure kind (a kind missing from
/// them counts 0).
const BY_KIND: [&str; 2] = ["failures_by_kind", "lost_by_kind"];

/// The names of the failure kinds, as pov-classify defines them.
pub fn failure_kinds() -> Vec<&'static str> {
    pov_classify::FailureKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// Every field a `--fail-if` condition may name: the path of every number
/// in summary.json (the counters included), and `failures_by_kind.KIND`
/// and `lost_by_kind.KIND` for every failure kind.
pub fn condition_fields() -> Vec<String> {
    let v = serde_json::to_value(Summary::template()).unwrap_or_default();
    let mut out = Vec::new();
    number_paths("", &v, &mut out);
    for map in BY_KIND {
        out.extend(failure_kinds().iter().map(|k| format!("{map}.{k}")));
    }
    out
}

/// The paths of the numbers in `v` (objects only: list items have no path).
fn number_paths(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                number_paths(&path, x, out);
            }
        }
        serde_json::Value::Number(_) => out.push(prefix.to_string()),
        _ => {}
    }
}

/// ` (did you mean `x`?)` for the candidate nearest to `word`, if it is
/// near enough to be a slip.
fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates.into_iter().map(|c| (edit_distance(word, c), c)).min();
    match best {
        Some((d, c)) if d <= (word.len() / 4).max(2) => format!(" (did you mean `{c}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance (bytes; field names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diag = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let up = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = row.get(j).copied().unwrap_or(usize::MAX);
            let next = (diag + usize::from(ca != *cb)).min(up.saturating_add(1)).min(left.saturating_add(1));
            diag = up;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = next;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// A `--fail-if` condition: `FIELD OP NUMBER`, FIELD a summary.json path
/// (`users_affected_pct`, `revenue_lost.value`, `failures_by_kind.slow`).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The path, split at dots.
    pub field: Vec<String>,
    /// `>`, `>=`, `<`, `<=`, `==` or `!=`.
    pub op: String,
    /// The number compared with.
    pub value: f64,
    /// As written.
    pub text: String,
}

impl Condition {
    /// Parses `users_affected_pct > 2`.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let t = text.trim();
        let ops = [">=", "<=", "==", "!=", ">", "<"];
        let (at, op) = ops
            .iter()
            .filter_map(|op| t.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
            .ok_or_else(|| format!("--fail-if `{text}`: no comparison (one of > >= < <= == !=)"))?;
        let field = t[..at].trim();
        let number = t[at + op.len()..].trim();
        if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return Err(format!("--fail-if `{text}`: `{field}` is not a summary field"));
        }
        let value: f64 = number.parse().map_err(|_| format!("--fail-if `{text}`: `{number}` is not a number"))?;
        Ok(Condition {
            field: field.split('.').map(str::to_string).collect(),
            op: op.to_string(),
            value,
            text: t.into(),
        })
    }

    /// Checks the field before any capture is read: it must be a number
    /// of summary.json ([`condition_fields`]); under `failures_by_kind` and
    /// `lost_by_kind`, a failure kind pov-classify knows. The error lists
    /// the valid names.
    pub fn check(&self) -> Result<(), String> {
        let path = self.field.join(".");
        if let [map, kind] = self.field.as_slice()
            && BY_KIND.contains(&map.as_str())
        {
            let kinds = failure_kinds();
            if kinds.contains(&kind.as_str()) {
                return Ok(());
            }
            return Err(format!(
                "--fail-if `{}`: `{kind}` is not a failure kind{}; the kinds are: {}",
                self.text,
                did_you_mean(kind, kinds.iter().copied()),
                kinds.join(", ")
            ));
        }
        let fields = condition_fields();
        if fields.contains(&path) {
            return Ok(());
        }
        let mut listed: Vec<&str> = fields
            .iter()
            .map(String::as_str)
            .filter(|f| !f.starts_with("counters.") && !BY_KIND.iter().any(|m| f.starts_with(&format!("{m}."))))
            .collect();
        let patterns: Vec<String> = BY_KIND.iter().map(|m| format!("{m}.KIND")).collect();
        listed.extend(patterns.iter().map(String::as_str));
        listed.push("counters.* (every counter in summary.json)");
        Err(format!(
            "--fail-if `{}`: `{path}` is not a number in summary.json{}; the fields are: {}",
            self.text,
            did_you_mean(&path, fields.iter().map(String::as_str)),
            listed.join(", ")
        ))
    }

    /// Whether the condition holds for `summary` (a missing count under
    /// `failures_by_kind` or `lost_by_kind` is 0, a null field such as the
    /// capture start of an empty run never holds; any other missing field
    /// is an error).
    pub fn holds(&self, summary: &serde_json::Value) -> Result<bool, String> {
        let mut at = summary;
        for (i, part) in self.field.iter().enumerate() {
            match at.get(part) {
                Some(v) => at = v,
                None if i == 1 && BY_KIND.contains(&self.field[0].as_str()) => return Ok(self.compare(0.0)),
                None => {
                    return Err(format!("--fail-if `{}`: summary.json has no `{}`", self.text, self.field.join(".")));
                }
            }
        }
        if at.is_null() {
            return Ok(false);
        }
        let x = at
            .as_f64()
            .ok_or_else(|| format!("--fail-if `{}`: `{}` is not a number", self.text, self.field.join(".")))?;
        Ok(self.compare(x))
    }

    fn compare(&self, x: f64) -> bool {
        match self.op.as_str() {
            ">" => x > self.value,
            ">=" => x >= self.value,
            "<" => x < self.value,
            "<=" => x <= self.value,
            "==" => x == self.value,
            _ => x != self.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_if_conditions() {
        let s = serde_json::json!({"users_affected_pct": 2.5, "revenue_lost": {"value": 100.0}, "failures_by_kind": {"slow": 3}, "lost_by_kind": {}});
        assert!(Condition::parse("users_affected_pct > 2").unwrap().holds(&s).unwrap());
        assert!(!Condition::parse("users_affected_pct>=3").unwrap().holds(&s).unwrap());
        assert!(Condition::parse("revenue_lost.value <= 100").unwrap().holds(&s).unwrap());
        assert!(Condition::parse("failures_by_kind.slow == 3").unwrap().holds(&s).unwrap());
        assert!(!Condition::parse("failures_by_kind.server_error > 0").unwrap().holds(&s).unwrap());
        assert!(Condition::parse("nope > 1").unwrap().holds(&s).is_err());
        assert!(Condition::parse("users_affected_pct 2").is_err());
        assert!(Condition::parse("users_affected_pct > two").is_err());
        assert_eq!(Condition::parse("a >= 1").unwrap().op, ">=");
        // A kind missing from lost_by_kind is 0 too; a null never holds.
        assert!(!Condition::parse("lost_by_kind.slow > 0").unwrap().holds(&s).unwrap());
        let empty = serde_json::json!({"capture_start": null});
        assert!(!Condition::parse("capture_start < 1").unwrap().holds(&empty).unwrap());
    }

    #[test]
    fn fail_if_fields_and_kinds_are_checked_up_front() {
        let ok = |c: &str| Condition::parse(c).unwrap().check();
        for c in [
            "users_affected_pct > 2",
            "revenue_lost.value >= 100",
            "failures_by_kind.server_error >= 1",
            "lost_by_kind.slow_page > 10",
            "delta.users_affected > 0",
            "capture_loss_bytes > 0",
            "counters.tcp.evicted > 0",
            "counters.users.users > 0",
        ] {
            assert_eq!(ok(c), Ok(()), "{c}");
        }
        let e = ok("users_afected_pct > 2").unwrap_err();
        assert!(e.contains("did you mean `users_affected_pct`?") && e.contains("revenue_lost.value"), "{e}");
        let e = ok("failures_by_kind.sever_error >= 1").unwrap_err();
        assert!(e.contains("did you mean `server_error`?"), "{e}");
        for k in pov_classify::FailureKind::ALL {
            assert!(e.contains(k.as_str()), "{k:?} listed: {e}");
        }
        // Not numbers: an object, a list, a string, and too deep.
        for c in ["revenue_lost > 1", "funnel > 1", "currency > 1", "failures_by_kind.slow.x > 1", "zzz > 1"] {
            assert!(ok(c).is_err(), "{c}");
        }
        assert_eq!(did_you_mean("qqqqqqqq", ["users_total"]), "", "no far-fetched suggestion");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
