//! What each command does, from its settings to its outputs. The `pov`
//! binary parses flags into these settings, calls one function here, and
//! prints what comes back; every pass over the captures goes through
//! [`Reading::pass`], which tells the caller's [`Watch`] how it goes (the
//! binary draws its progress line and prints the problems the pass met).
//! Nothing here prints or exits.
//!
//! A stop asked for through [`PipelineConfig::stop`] (a signal, for the
//! binary) ends a command at its next step with the error [`stopped`],
//! before anything is published: outputs are written atomically, so a
//! stopped command leaves none behind.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pov_capture::Budget;

use crate::analyze::{AnalyzePipeline, RunDir, Summary};
use crate::config::PovConfig;
use crate::output::Format;
use crate::parallel::{Discard, Downstream, Flow, GO_ON, Threads};
use crate::pipeline::{Inputs, PipelineConfig, Progress, RunReport};
use crate::replay::{self, Masker, ReplayLimits, Selection, Selector, Spill};
use crate::schema::files;
use crate::store::{StoreStats, TxStore};
use crate::users::{Outputs, UserStage, UserStageReport, View};

/// What a command tells its caller while it runs.
pub trait Watch {
    /// How far the reading of the captures has got.
    fn progress(&mut self, p: Progress);
    /// A pass over the captures ended: its report (errors and warnings
    /// about the inputs; `stopped` if a stop was asked for), or `None` when
    /// the stage behind it failed (the error comes back from the command).
    fn pass_done(&mut self, report: Option<&RunReport>);
    /// Something went less well than asked (a cap acted), with the flag
    /// that raises it; the command goes on.
    fn warning(&mut self, text: String);
    /// A part of the command failed and the command goes on without it
    /// (its exit should say so).
    fn error(&mut self, text: String);
}

/// A [`Watch`] that keeps nothing (for tests and other libraries).
pub struct Unwatched;

impl Watch for Unwatched {
    fn progress(&mut self, _: Progress) {}
    fn pass_done(&mut self, _: Option<&RunReport>) {}
    fn warning(&mut self, _: String) {}
    fn error(&mut self, _: String) {}
}

/// How a command reads its captures.
pub struct Reading<'w> {
    /// Limits of every stage, the memory budget and the stop flag.
    pub cfg: PipelineConfig,
    /// Threads.
    pub threads: Threads,
    /// Told how it goes.
    pub watch: &'w mut dyn Watch,
}

impl Reading<'_> {
    /// One pass over `inputs` (HTTP parsed when `http`) into `down`. An
    /// error is `down`'s (an output it could not write), which ended the
    /// pass.
    pub fn pass<D: Downstream + ?Sized>(&mut self, inputs: &Inputs, http: bool, down: &mut D) -> io::Result<RunReport> {
        // TLS keys: the key logs and the inputs' Decryption Secrets
        // Blocks, loaded before any packet is read.
        let keys = if http {
            crate::pipeline::load_keys(&self.cfg.keylogs, inputs.paths())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        } else {
            None
        };
        let (files, open_errors, total) = inputs.open();
        let keyed;
        let (http, keys_report) = match (http, keys) {
            (false, _) => (None, None),
            (true, None) => (Some(&self.cfg.http), None),
            (true, Some((store, report))) => {
                keyed = pov_capture::http::HttpConfig { keys: std::sync::Arc::new(store), ..self.cfg.http.clone() };
                (Some(&keyed), Some(report))
            }
        };
        let watch = &mut *self.watch;
        let mut report =
            crate::parallel::run(files, open_errors, &self.cfg, http, self.threads, total, down, &mut |p| {
                watch.progress(p)
            });
        if let Ok(r) = &mut report {
            r.keys = keys_report;
        }
        watch.pass_done(report.as_ref().ok());
        report
    }

    /// As [`Reading::pass`], every transaction stored whole in `store` as
    /// it finishes.
    fn pass_storing<D: Downstream + ?Sized>(
        &mut self,
        inputs: &Inputs,
        store: &TxStore,
        down: &mut D,
    ) -> io::Result<RunReport> {
        let before = self.cfg.store.replace(store.clone());
        let report = self.pass(inputs, true, down);
        self.cfg.store = before;
        report
    }

    /// [`stopped`] if a stop was asked for.
    pub fn check_stop(&self) -> io::Result<()> {
        match self.cfg.stop.requested() {
            Some(_) => Err(stopped()),
            None => Ok(()),
        }
    }

    /// The run's memory budget.
    pub fn budget(&self) -> &Budget {
        self.cfg.budget()
    }
}

/// The error of a command that stopped because a stop was asked for
/// (kind `Interrupted`).
pub fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "stopped as asked")
}

/// [`stopped`] if the pass that gave `report` was stopped.
fn finished(report: RunReport) -> io::Result<RunReport> {
    if report.stopped { Err(stopped()) } else { Ok(report) }
}

/// Capture inputs as given on a command line: files as they are, folders
/// as the files in them (sorted), and a file name with `*` (any run) or `?`
/// (one character) that names no file as the files of its folder it
/// matches (sorted; none is an error).
pub fn expand_inputs(inputs: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let named = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let files_in = |dir: &Path, keep: &dyn Fn(&Path) -> bool| -> io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| named(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file() && keep(f))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for p in inputs {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            out.extend(files_in(p, &|_| true)?);
        } else if !p.exists() && (name.contains('*') || name.contains('?')) {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let v = files_in(dir, &|f| f.file_name().and_then(|n| n.to_str()).is_some_and(|n| glob_match(name, n)))?;
            if v.is_empty() {
                return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no file matches", p.display())));
            }
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// `*` (any run) and `?` (one character) matching.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if p.get(pi).is_some_and(|c| *c == '?' || *c == n[ni]) {
            pi += 1;
            ni += 1;
        } else if p.get(pi) == Some(&'*') {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

/// `pov flows`: one record per connection into `out`.
pub fn flows<W: Write>(inputs: &Inputs, out: W, format: Format, reading: &mut Reading) -> io::Result<RunReport> {
    let mut flows = crate::flows::FlowWriter::new(out, format)?;
    let report = finished(reading.pass(inputs, false, &mut flows)?)?;
    flows.finish()?;
    Ok(report)
}

/// `pov transactions`: one record per HTTP transaction into `out`, masked
/// by `mask`.
pub fn transactions<W: Write>(
    inputs: &Inputs,
    out: W,
    format: Format,
    mask: Masker,
    reading: &mut Reading,
) -> io::Result<RunReport> {
    let mut writer = crate::transactions::TxWriter::new(out, format, mask)?;
    let report = finished(reading.pass(inputs, true, &mut writer)?)?;
    writer.finish()?;
    Ok(report)
}

/// `pov transactions` as the packet stage: the records carry the customer
/// stage's columns (`customer`), and the failed connection attempts go to
/// `failed` (Parquet) when given (crate::stages).
pub fn packet_stage<W: Write>(
    inputs: &Inputs,
    out: W,
    format: Format,
    mask: Masker,
    customer: crate::transactions::Customer,
    failed: Option<&Path>,
    reading: &mut Reading,
) -> io::Result<RunReport> {
    let capture = customer.capture.clone();
    let writer = crate::transactions::TxWriter::new(out, format, mask)?.with_customer(customer);
    let failed_out = match failed {
        Some(p) => Some(crate::output::RecordWriter::new(crate::output::AtomicFile::create(p)?, Format::Parquet)?),
        None => None,
    };
    let mut stage = crate::stages::PacketStage::new(writer, failed_out, capture);
    let report = finished(reading.pass(inputs, true, &mut stage)?)?;
    let (_, failed) = stage.finish()?;
    if let Some(f) = failed {
        f.commit()?;
    }
    Ok(report)
}

/// Counts transactions without keeping them.
struct CountTx;

impl Downstream for CountTx {
    type Item = ();
    type Prep = Discard;
    fn preparer(&self) -> Discard {
        Discard
    }
    fn on_transaction(&mut self, _tx: ()) -> Flow {
        GO_ON
    }
}

/// `pov info`: every counter of one pass (HTTP parsed, nothing written).
pub fn info(inputs: &Inputs, reading: &mut Reading) -> io::Result<RunReport> {
    let report = reading.pass(inputs, true, &mut CountTx)?;
    reading.check_stop()?;
    Ok(report)
}

/// How the user stage runs.
#[derive(Clone, Debug)]
pub struct StageOptions {
    /// Mask user keys and secrets (false: `--no-mask`).
    pub mask: bool,
    /// Most transactions kept per session (`--max-session-transactions`).
    pub max_session_txs: usize,
    /// Most users' totals held in memory (`--max-users-held`).
    pub max_users_held: usize,
    /// Caps on what identifies users outside the memory budget
    /// (`--max-waiting-requests`, `--max-recent-per-address`,
    /// `--max-remembered-connections`).
    pub identity: pov_sessions::IdentityCaps,
    /// Keep robots and load generators among users (`--include-robots`).
    pub include_robots: bool,
}

impl Default for StageOptions {
    fn default() -> StageOptions {
        StageOptions {
            mask: true,
            max_session_txs: crate::users::MAX_SESSION_TXS,
            max_users_held: crate::users::MAX_USERS_HELD,
            identity: pov_sessions::IdentityCaps::default(),
            include_robots: false,
        }
    }
}

fn invalid(e: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// `pov users|sessions|pages|failures`: the records of `view` into `out`;
/// the run's report (with its memory budget's) and the user stage's.
pub fn users<W: Write>(
    inputs: &Inputs,
    view: View,
    out: W,
    format: Format,
    cfg: &PovConfig,
    opts: &StageOptions,
    reading: &mut Reading,
) -> io::Result<(RunReport, UserStageReport)> {
    let outputs = Outputs::one(view, out, format)?;
    let mut stage = UserStage::with_limits(cfg, opts.mask, outputs, opts.max_session_txs.max(1)).map_err(invalid)?;
    stage.set_budget(reading.budget());
    stage.set_user_spill(&std::env::temp_dir(), opts.max_users_held);
    stage.set_identity_caps(opts.identity);
    stage.set_include_robots(opts.include_robots);
    stage.set_parallel(reading.threads.threads > 1);
    let mut report = finished(reading.pass(inputs, true, &mut stage)?)?;
    let (outputs, stage_report) = stage.finish()?;
    outputs.finish()?;
    report.budget = Some(report.budget_report(reading.budget()));
    Ok((report, stage_report))
}

/// What `pov analyze` is asked to do.
#[derive(Clone, Debug)]
pub struct AnalyzeJob {
    /// Capture inputs (expanded: [`expand_inputs`]).
    pub inputs: Vec<PathBuf>,
    /// The output folder.
    pub out: PathBuf,
    /// pov.toml.
    pub config: PovConfig,
    /// The user stage.
    pub stage: StageOptions,
    /// Most bytes of transactions kept on disk for the replays
    /// (`--max-store-bytes`).
    pub max_store_bytes: u64,
    /// A folder of earlier runs (`--history`).
    pub history: Option<PathBuf>,
    /// HTML replays for this many of the most affected users.
    pub replays: usize,
    /// The inputs are transaction records of the packet stage (`pov
    /// transactions --format parquet`), not captures: only the customer
    /// stage runs ([`crate::stages::analyze_transactions`]).
    pub from_transactions: bool,
    /// Add the run to this dataset (`--dataset`, `--probe`).
    pub dataset: Option<crate::dataset::Target>,
    /// Days of trend drawn from a dataset given as `--history`.
    pub history_days: usize,
}

impl AnalyzeJob {
    /// The probe the run is filed under.
    pub fn probe(&self) -> &str {
        self.dataset.as_ref().map_or(crate::dataset::DEFAULT_PROBE, |t| t.probe.as_str())
    }

    /// Adds the earlier runs (`history`, read before the run) and, when
    /// `--history` is a dataset, its trend per day.
    pub fn add_history(
        &self,
        mut summary: Summary,
        history: Option<Vec<crate::analyze::HistoryPoint>>,
    ) -> io::Result<Summary> {
        if let Some(h) = history {
            summary = summary.with_history(h);
        }
        if let Some(dir) = self.history.as_ref().filter(|d| crate::dataset::is_dataset(d)) {
            crate::dataset::add_trend(&mut summary, dir, self.probe(), self.history_days)?;
        }
        Ok(summary)
    }
}

/// What `pov analyze` did: every file is in the output folder.
pub struct Analyzed {
    /// The pass over the captures.
    pub report: RunReport,
    /// summary.json as written.
    pub summary: Summary,
    /// Writing the replays failed (told to the [`Watch`]): the analysis
    /// stands without them, summary.json and report.html were written.
    pub replays_failed: bool,
    /// The capture files read, with their time spans.
    pub captures: Vec<crate::dataset::Capture>,
    /// The dataset's manifest of this run (`--dataset`).
    pub manifest: Option<crate::dataset::Manifest>,
}

/// `pov analyze`: one pass over the captures writes every record file,
/// the impact stage reads them back, and summary.json, report.html and the
/// replays of the most affected users are written; the files are moved
/// into the output folder together at the end.
pub fn analyze(job: &AnalyzeJob, reading: &mut Reading) -> io::Result<Analyzed> {
    let mut done = if job.from_transactions {
        crate::stages::analyze_transactions(job, reading)?
    } else {
        analyze_captures(job, reading)?
    };
    if let Some(t) = &job.dataset {
        done.manifest = Some(crate::dataset::add_run(t, &job.out, &done.summary, done.captures.clone())?);
    }
    Ok(done)
}

fn analyze_captures(job: &AnalyzeJob, reading: &mut Reading) -> io::Result<Analyzed> {
    let pov_cfg = &job.config;
    // Earlier runs are read first: a bad one stops before the long part.
    let history = job.history.as_ref().map(|h| crate::analyze::read_history(h, &job.out)).transpose()?;
    // Everything is written into a staging folder inside OUT and moved
    // into place at the end: an error or a stop leaves OUT as it was.
    let mut run = RunDir::create(&job.out)?;
    let inputs = Inputs::once(job.inputs.clone());
    let mut pipe =
        AnalyzePipeline::new(&run, pov_cfg, &reading.cfg.http, job.stage.mask, job.stage.max_session_txs.max(1))?;
    pipe.sink.set_user_spill(run.staging(), job.stage.max_users_held);
    pipe.sink.set_identity_caps(job.stage.identity);
    pipe.sink.set_include_robots(job.stage.include_robots);
    pipe.sink.set_parallel(reading.threads.threads > 1);
    let mask = job.stage.mask && pov_cfg.privacy.mask;
    let masker = Masker::new(&pov_cfg.privacy, mask);
    // For the replays, every transaction is kept whole in the staging
    // folder as it finishes (the captures are read once), and sessions
    // with a failure go to a spill file as they close, so the replays of
    // the most affected users (known at the end) are found without holding
    // them.
    let mut replaying = None;
    if job.replays > 0 {
        let store = TxStore::with_cap(run.staging(), job.max_store_bytes);
        let spill =
            std::rc::Rc::new(std::cell::RefCell::new(Spill::create(&run.staging().join(files::REPLAY_CANDIDATES))?));
        let limits = replay::SelectLimits { masker: masker.clone(), max_sessions: replay::MAX_SESSIONS };
        pipe.sink.set_tap(replay::spilling_tap(std::rc::Rc::clone(&spill), limits));
        replaying = Some((store, spill));
    }
    let mut report = match &replaying {
        Some((store, _)) => reading.pass_storing(&inputs, store, &mut pipe.sink)?,
        None => reading.pass(&inputs, true, &mut pipe.sink)?,
    };
    reading.check_stop()?;
    let users = pipe.finish()?;
    report.budget = Some(report.budget_report(reading.budget()));
    reading.check_stop()?;
    // The replays' users are the impact stage's top affected users, which
    // the user stage already knows (it wrote the records the impact stage
    // ranks them from): on more than one thread the replays are written
    // while the impact stage runs. The store and the spill go with
    // `replaying`, before the summaries are written.
    let top: Vec<String> = users.top_affected.iter().take(job.replays).cloned().collect();
    let mut replayed = None;
    let mut replays = |reading: &mut Reading| {
        if let Some((store, spill)) = replaying.take()
            && !top.is_empty()
        {
            let mut stats = None;
            let written = write_replays(&run, &top, (&store, &mut stats), &mut spill.borrow_mut(), &masker, reading);
            replayed = Some((written, stats));
        }
    };
    let mut imp = None;
    if reading.threads.threads > 1 {
        let (staging, imp) = (run.staging(), &mut imp);
        rayon::in_place_scope(|s| {
            s.spawn(move |_| *imp = Some(crate::analyze::impact(staging, pov_cfg)));
            replays(reading);
        });
    } else {
        imp = Some(crate::analyze::impact(run.staging(), pov_cfg));
        replays(reading);
    }
    let imp = imp.unwrap_or_else(|| Err(io::Error::other("the impact stage did not run")))?;
    reading.check_stop()?;
    let summary = Summary::new(inputs.paths(), &report, &users, imp, &pov_cfg.revenue.currency);
    debug_assert!(
        summary.top_affected_users.iter().map(|u| &u.user).take(job.replays).eq(top.iter()),
        "the user stage's top affected users are the impact stage's"
    );
    let mut summary = job.add_history(summary, history)?;
    let mut replays_failed = false;
    if let Some((written, stats)) = replayed {
        if let (Some(s), Some(c)) = (stats, summary.counters.as_object_mut()) {
            c.insert("replay_store".into(), serde_json::to_value(s).map_err(io::Error::other)?);
        }
        match written {
            Ok(r) => summary.replays = r,
            Err(e) => {
                reading.watch.error(format!("no replays written: {e}"));
                replays_failed = true;
            }
        }
    }
    summary.write(&run)?;
    summary.write_report(&run)?;
    reading.check_stop()?;
    let mut names: Vec<String> = summary.replays.values().cloned().collect();
    names.extend(files::RECORDS.iter().chain(&files::SUMMARIES).map(|f| f.to_string()));
    run.publish(&names)?;
    let captures = crate::dataset::captures_of(&report);
    Ok(Analyzed { report, summary, replays_failed, captures, manifest: None })
}

/// HTML replays of `users` in the run's replays folder, their
/// transactions read from the run's store: user -> path relative to the
/// output folder. Written into the staging folder; `stats` is what the
/// store held, once it was read. (Not inlined: `benches/instructions.sh`
/// counts the replays' instructions by this name.)
#[inline(never)]
fn write_replays(
    run: &RunDir,
    users: &[String],
    (store, stats): (&TxStore, &mut Option<StoreStats>),
    spill: &mut Spill,
    masker: &Masker,
    reading: &mut Reading,
) -> io::Result<BTreeMap<String, String>> {
    let sel = spill
        .select(&users.iter().cloned().collect(), replay::MAX_SESSIONS)
        .map_err(|e| io::Error::new(e.kind(), format!("replay candidates: {e}")))?;
    let (keep, read) = replay::read_kept(store, &sel, replay::MAX_BODY_BYTES, reading.cfg.budget(), reading.watch)?;
    *stats = Some(read);
    // Names first (they depend on those taken before), then the files,
    // side by side on more than one thread (each is rendered, written and
    // synced on its own).
    let mut taken = HashSet::new();
    let mut todo = Vec::new();
    for u in users {
        let sessions: Vec<&replay::SelSession> = sel.sessions.iter().filter(|s| &s.user == u).collect();
        if sessions.is_empty() {
            continue;
        }
        let name = crate::analyze::replay_file_name(u, &taken);
        taken.insert(name.clone());
        todo.push((u, files::replay(&name), sessions));
    }
    let write = |(u, rel, sessions): (&String, String, Vec<&replay::SelSession>)| -> io::Result<(String, String)> {
        let mut f = run.file(&rel)?;
        replay::write_html(&keep, &sessions, masker, &mut f)?;
        f.commit()?;
        Ok((u.clone(), rel))
    };
    if reading.threads.threads > 1 {
        use rayon::iter::{IntoParallelIterator, ParallelIterator};
        let written: Vec<io::Result<(String, String)>> = todo.into_par_iter().map(write).collect();
        written.into_iter().collect()
    } else {
        todo.into_iter().map(write).collect()
    }
}

/// The sessions `selector` picks from one pass over `inputs`, with their
/// transactions whole (kept in `store_dir` while the captures are read),
/// for `pov replay har|html|send`. `mask` false (`--no-mask`) shows raw
/// user keys and secrets.
pub fn replay(
    inputs: &Inputs,
    store_dir: &Path,
    selector: Selector,
    cfg: &PovConfig,
    mask: bool,
    limits: &ReplayLimits,
    reading: &mut Reading,
) -> io::Result<replay::Replay> {
    let mask = mask && cfg.privacy.mask;
    let selection = std::rc::Rc::new(std::cell::RefCell::new(Selection::default()));
    let outputs = Outputs::<io::Sink> { users: None, sessions: None, pages: None, failures: None };
    let mut stage = UserStage::new(cfg, mask, outputs).map_err(invalid)?;
    stage.set_budget(reading.budget());
    stage.set_include_robots(limits.include_robots);
    let select = replay::SelectLimits { masker: Masker::new(&cfg.privacy, mask), max_sessions: limits.max_sessions };
    stage.set_tap(replay::selecting_tap(selector, std::rc::Rc::clone(&selection), select));
    let store = TxStore::with_cap(store_dir, limits.max_store_bytes);
    let report = reading.pass_storing(inputs, &store, &mut stage)?;
    reading.check_stop()?;
    let (_, stage_report) = stage.finish()?;
    let selection = std::mem::take(&mut *selection.borrow_mut());
    if selection.over_cap > 0 {
        reading.watch.warning(format!(
            "{} more sessions matched; only the first {} are replayed (raise --max-sessions)",
            selection.over_cap, limits.max_sessions
        ));
    }
    let keep = if selection.sessions.is_empty() {
        replay::Keep::new(Default::default(), 0)
    } else {
        replay::read_kept(&store, &selection, limits.max_body_bytes, reading.cfg.budget(), reading.watch)?.0
    };
    Ok(replay::Replay { selection, keep, report, mask, robots: stage_report.robots })
}
