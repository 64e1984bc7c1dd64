//! A continuous run cut into intervals of time (`pov live --analyze`).
//!
//! [`crate::parallel::run_source`] runs the pipeline over a source that
//! never ends by itself; [`Intervals`] is the [`Downstream`] that cuts what
//! comes out of it at aligned boundaries of time (every `1h`: at each clock
//! hour, UTC), telling the stage behind it ([`Cut`]) when an interval
//! begins and when it is over. [`IntervalAnalysis`] is that stage for
//! `pov analyze`'s outputs, one folder per interval. [`Tallied`] counts, on
//! the source's side, what each interval read (packets, first and last
//! packet, the capture's drop counters), for its summary.
//!
//! The rule, as the user reads it (docs/live.md):
//!
//! * A **transaction** belongs to the interval in which its request
//!   started. The pipeline hands transactions on in that order once no
//!   connection can still bring an earlier one (the merge's frontier); an
//!   interval is cut when the frontier passes its end, so every transaction
//!   that started in it is in it. One handed on later than that (released
//!   early by a cap, or still unanswered when the interval is cut on the
//!   clock, below) goes in the interval being written when it comes.
//! * A **session** (with its page views and failures) is written in the
//!   interval in which it closes: sessions stay open across a cut, so one
//!   that spans a boundary is finished whole in the interval where it
//!   ends. What is still open when the capture stops is finished in the
//!   last interval. A **user** is in the interval's users when one of its
//!   sessions closed in it (so a user can be in several intervals, each
//!   with the totals of the sessions that closed there).
//! * On a quiet interface, time moves on by the capture's clock
//!   ([`pov_capture::PacketSource::clock`]), so intervals are cut on time
//!   (the HTTP stage's ordering holds transactions for 10 s of capture
//!   time, so an interval is written some 10 s after its end); a request
//!   still unanswered `grace` after the end no longer holds the cut back.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pov_capture::http::{HttpStats, HttpTransaction};
use pov_capture::pcap::{FileStats, ReadError};
use pov_capture::tcp::{ConnSummary, TcpStats};
use pov_capture::{Block, CaptureLoss, Dur, Packet, PacketSource, Ts};

use crate::analyze::{RunDir, Summary};
use crate::config::PovConfig;
use crate::output::{AtomicFile, Format, RecordWriter};
use crate::parallel::{Downstream, Flow, GO_ON, Prepare};
use crate::pipeline::RunReport;
use crate::run::StageOptions;
use crate::schema::files;
use crate::transactions::{Masker, Prepared, Records, TxWriter};
use crate::users::{Outputs, SessionTxs, UserStage};

/// One interval: `[start, end)`, `start` aligned to its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Its first instant.
    pub start: Ts,
    /// The first instant after it.
    pub end: Ts,
}

impl Interval {
    /// The interval of length `every` that holds `t` (without a length:
    /// one interval from `t` on, without end).
    pub fn of(t: Ts, every: Option<Dur>) -> Interval {
        match every.filter(|d| d.0 > 0) {
            Some(d) => {
                let start = Ts(t.0.div_euclid(d.0).saturating_mul(d.0));
                Interval { start, end: Ts(start.0.saturating_add(d.0)) }
            }
            None => Interval { start: t, end: Ts(i64::MAX) },
        }
    }

    /// The interval after this one, of the same length.
    fn next(&self) -> Interval {
        let len = self.end.0.saturating_sub(self.start.0);
        Interval { start: self.end, end: Ts(self.end.0.saturating_add(len)) }
    }

    /// Its name: its start, UTC, to the second (`20250314T130000Z`), which
    /// sorts in time order.
    pub fn name(&self) -> String {
        let (y, m, d, rem, _) = self.start.civil();
        format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
    }
}

/// A stage whose outputs are cut into intervals by [`Intervals`]: it is
/// told when each interval begins and ends, and takes the transactions and
/// summaries in between.
pub trait Cut: Downstream {
    /// `iv` begins: what comes next is its.
    fn begin(&mut self, iv: &Interval) -> io::Result<()>;
    /// `iv` is over (`last`: and so is the run): its outputs are written.
    fn end(&mut self, iv: &Interval, last: bool) -> io::Result<()>;
}

/// The preparer of [`Intervals`]: the stage's, with each transaction's
/// request start.
pub struct Stamped<P>(P);

impl<P: Prepare> Prepare for Stamped<P> {
    type Item = (Ts, P::Item);
    fn prepare(&self, tx: Box<HttpTransaction>) -> Self::Item {
        (tx.timing.start(), self.0.prepare(tx))
    }
    fn held_bytes((_, item): &Self::Item) -> usize {
        P::held_bytes(item)
    }
}

/// Cuts a run into intervals of `every` (aligned: `1h` cuts at each clock
/// hour, UTC) for the stage `S` (see the module's rule).
pub struct Intervals<S> {
    stage: S,
    every: Option<Dur>,
    current: Option<Interval>,
    /// Where the first interval is to begin, if given.
    first: Option<Ts>,
    /// Cut at the latest this long after an interval's end by this clock,
    /// even with a request of it still unanswered (a live capture; files
    /// have no clock).
    grace: Option<(Dur, fn() -> Ts)>,
    /// Connection summaries that came before the first interval began
    /// (which the first transaction's start decides, without a start).
    early: Vec<ConnSummary>,
}

impl<S: Cut> Intervals<S> {
    /// Intervals of `every` (`None`: one interval, to the end of the run)
    /// for `stage`, the first the one holding `start` (`None`: the first
    /// transaction's).
    pub fn new(stage: S, every: Option<Dur>, start: Option<Ts>) -> Intervals<S> {
        Intervals { stage, every, current: None, first: start, grace: None, early: Vec::new() }
    }

    /// Cuts an interval at the latest `grace` after its end by `clock`,
    /// even if a request that started in it is still unanswered (what it
    /// brings then goes into the next interval).
    pub fn with_grace(mut self, grace: Dur, clock: fn() -> Ts) -> Intervals<S> {
        self.grace = Some((grace, clock));
        self
    }

    /// The stage.
    pub fn stage(&self) -> &S {
        &self.stage
    }

    /// The interval being written, once one began.
    pub fn current(&self) -> Option<Interval> {
        self.current
    }

    /// Begins the first interval, the one holding `t`, if none began.
    fn start_at(&mut self, t: Ts) -> io::Result<Interval> {
        match self.current {
            Some(iv) => Ok(iv),
            None => {
                let iv = Interval::of(self.first.take().unwrap_or(t), self.every);
                self.stage.begin(&iv)?;
                self.current = Some(iv);
                for s in std::mem::take(&mut self.early) {
                    let _ = self.stage.on_summary(&s)?;
                }
                Ok(iv)
            }
        }
    }

    /// Ends the current interval and begins the next.
    fn advance(&mut self) -> io::Result<()> {
        if let Some(iv) = self.current {
            self.stage.end(&iv, false)?;
            let next = iv.next();
            self.stage.begin(&next)?;
            self.current = Some(next);
        }
        Ok(())
    }

    /// Ends every interval up to the one holding `end` (the time the run
    /// ended: the last packet, or the clock at a stop), that one last,
    /// and returns the stage.
    ///
    /// # Errors
    ///
    /// The stage's.
    pub fn finish(mut self, end: Ts) -> io::Result<S> {
        let mut iv = self.start_at(end)?;
        while end >= iv.end {
            self.advance()?;
            iv = self.start_at(end)?;
        }
        self.stage.end(&iv, true)?;
        Ok(self.stage)
    }
}

impl<S: Cut> Downstream for Intervals<S> {
    type Item = (Ts, S::Item);
    type Prep = Stamped<S::Prep>;
    fn preparer(&self) -> Stamped<S::Prep> {
        Stamped(self.stage.preparer())
    }

    fn on_transaction(&mut self, (start, item): Self::Item) -> Flow {
        let mut iv = self.start_at(start)?;
        while start >= iv.end {
            self.advance()?;
            iv = self.start_at(start)?;
        }
        self.stage.on_transaction(item)
    }

    fn on_summary(&mut self, s: &ConnSummary) -> Flow {
        if self.first.is_some() {
            self.start_at(Ts(i64::MIN))?;
        }
        if self.current.is_none() {
            // Summaries come before the transactions of the same batch:
            // the first transaction decides where the intervals begin.
            self.early.push(s.clone());
            return GO_ON;
        }
        self.stage.on_summary(s)
    }

    fn on_batch(&mut self, frontier: Ts) -> Flow {
        if self.first.is_some() {
            self.start_at(frontier)?;
        }
        if let Some(mut iv) = self.current {
            // Every transaction that started before the frontier has been
            // handed on: the intervals it passed are complete.
            // (The stage hears of time up to each end first, so that what
            // went quiet by then, sessions, goes in that interval.)
            while frontier >= iv.end {
                if self.stage.on_batch(iv.end)?.is_break() {
                    return Ok(std::ops::ControlFlow::Break(()));
                }
                self.advance()?;
                iv = self.start_at(frontier)?;
            }
            if let Some((grace, clock)) = self.grace {
                let now = clock();
                while now >= Ts(iv.end.0.saturating_add(grace.0)) {
                    if self.stage.on_batch(iv.end)?.is_break() {
                        return Ok(std::ops::ControlFlow::Break(()));
                    }
                    self.advance()?;
                    iv = self.start_at(now)?;
                }
            }
        }
        self.stage.on_batch(frontier)
    }
}

/// What one interval read, counted on the source's side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InputCounts {
    /// Packets read whose time falls in the interval.
    pub packets: u64,
    /// The first of them.
    pub first: Option<Ts>,
    /// The last of them.
    pub last: Option<Ts>,
    /// The capture's drop counters over the interval (from one reading of
    /// them to the next: they are read when the first packet of the next
    /// interval comes, or the capture's clock passes its end, and at the
    /// stop).
    pub capture_loss: Option<CaptureLoss>,
}

impl InputCounts {
    fn absorb(&mut self, o: InputCounts) {
        self.packets += o.packets;
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = self.last.max(o.last);
        self.capture_loss = match (self.capture_loss, o.capture_loss) {
            (Some(a), Some(b)) => Some(add_loss(a, b)),
            (a, b) => a.or(b),
        };
    }
}

fn add_loss(a: CaptureLoss, b: CaptureLoss) -> CaptureLoss {
    CaptureLoss {
        received: a.received + b.received,
        dropped_kernel: a.dropped_kernel + b.dropped_kernel,
        dropped_interface: a.dropped_interface + b.dropped_interface,
    }
}

fn sub_loss(a: CaptureLoss, b: CaptureLoss) -> CaptureLoss {
    CaptureLoss {
        received: a.received.saturating_sub(b.received),
        dropped_kernel: a.dropped_kernel.saturating_sub(b.dropped_kernel),
        dropped_interface: a.dropped_interface.saturating_sub(b.dropped_interface),
    }
}

/// What each interval read, shared by [`Tallied`] (which counts) and the
/// stage (which takes an interval's counts when it ends).
#[derive(Debug)]
pub struct Tally {
    every: Option<Dur>,
    per: BTreeMap<i64, InputCounts>,
    /// The drop counters as last read, and the interval they were read in.
    loss_mark: Option<CaptureLoss>,
    /// The interval of the latest packet or clock reading.
    at: Option<i64>,
}

/// A [`Tally`] shared between the source's thread and the stage's.
pub type SharedTally = Arc<Mutex<Tally>>;

impl Tally {
    /// Counts for intervals of `every`.
    pub fn shared(every: Option<Dur>) -> SharedTally {
        Arc::new(Mutex::new(Tally { every, per: BTreeMap::new(), loss_mark: None, at: None }))
    }

    fn key(&self, t: Ts) -> i64 {
        match self.every.filter(|d| d.0 > 0) {
            Some(d) => t.0.div_euclid(d.0),
            None => 0,
        }
    }

    /// The counts of `iv` (and of any earlier interval not taken yet),
    /// removed.
    pub fn take(&mut self, iv: &Interval) -> InputCounts {
        let key = self.key(iv.start);
        let later = self.per.split_off(&key.saturating_add(1));
        let mut out = InputCounts::default();
        for (_, c) in std::mem::replace(&mut self.per, later) {
            out.absorb(c);
        }
        out
    }

    /// The capture's drop counters are `now`: what grew since the last
    /// reading goes to `key`'s interval.
    fn note_loss(&mut self, key: i64, now: CaptureLoss) {
        let grown = sub_loss(now, self.loss_mark.unwrap_or_default());
        self.loss_mark = Some(now);
        let c = self.per.entry(key).or_default();
        c.capture_loss = Some(add_loss(c.capture_loss.unwrap_or_default(), grown));
    }

    /// The run is over and the drop counters' totals are `total` (the
    /// run's report's): what grew since the last reading goes to the
    /// latest interval.
    pub fn close(&mut self, total: Option<CaptureLoss>) {
        if let (Some(total), Some(at)) = (total, self.at) {
            self.note_loss(at, total);
        }
    }
}

/// A [`PacketSource`] that counts what it reads into a [`Tally`], by the
/// interval each packet's time falls in.
pub struct Tallied<S> {
    inner: S,
    tally: SharedTally,
    /// An interval ended at the last read: the drop counters are read at
    /// the next (the packet read borrowed the source).
    ended: Option<i64>,
}

impl<S: PacketSource> Tallied<S> {
    /// Counts what `inner` reads into `tally`.
    pub fn new(inner: S, tally: SharedTally) -> Tallied<S> {
        Tallied { inner, tally, ended: None }
    }

    /// The source.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Notes in `tally` that time reached `t` (a packet's, counted, or the
/// clock's); `ended` is set when an interval ended.
fn reached(tally: &SharedTally, ended: &mut Option<i64>, t: Ts, packet: bool) {
    let Ok(mut tally) = tally.lock() else { return };
    let key = tally.key(t);
    if let Some(at) = tally.at
        && key > at
    {
        *ended = Some(at);
    }
    tally.at = Some(tally.at.map_or(key, |a| a.max(key)));
    if packet {
        let c = tally.per.entry(key).or_default();
        c.packets += 1;
        c.first = Some(c.first.map_or(t, |f| f.min(t)));
        c.last = Some(c.last.map_or(t, |l| l.max(t)));
    }
}

impl<S: PacketSource> PacketSource for Tallied<S> {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        Ok(self.next_shared()?.map(|(p, _)| p))
    }
    fn next_shared(&mut self) -> Result<Option<(Packet<'_>, Option<&Block>)>, ReadError> {
        if let Some(clock) = self.inner.clock() {
            reached(&self.tally, &mut self.ended, clock, false);
        }
        if let Some(key) = self.ended.take()
            && let Some(loss) = self.inner.capture_loss()
            && let Ok(mut tally) = self.tally.lock()
        {
            tally.note_loss(key, loss);
        }
        let Tallied { inner, tally, ended } = self;
        let pkt = inner.next_shared()?;
        if let Some((p, _)) = &pkt {
            reached(tally, ended, p.ts, true);
        }
        Ok(pkt)
    }
    fn ended(&self) -> bool {
        self.inner.ended()
    }
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }
    fn files(&self) -> Vec<FileStats> {
        self.inner.files()
    }
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
    fn capture_loss(&mut self) -> Option<CaptureLoss> {
        self.inner.capture_loss()
    }
    fn clock(&self) -> Option<Ts> {
        self.inner.clock()
    }
}

/// What [`IntervalAnalysis`] prepares of a transaction on the shards: its
/// record and the sessions' view of it.
pub struct AnalysisPrep {
    records: Records,
    txs: Arc<SessionTxs>,
}

impl Prepare for AnalysisPrep {
    type Item = (Prepared, pov_sessions::tx::Tx);
    fn prepare(&self, t: Box<HttpTransaction>) -> Self::Item {
        (self.records.prepared(self.records.record(&t)), self.txs.tx(&t))
    }
    fn held_bytes((record, tx): &Self::Item) -> usize {
        record.heap_bytes() + tx.heap_bytes()
    }
}

/// One interval written by [`IntervalAnalysis`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct Written {
    /// Its name (its start, UTC).
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// Its first instant.
    pub start: Ts,
    /// The first instant after it.
    pub end: Ts,
    /// Packets whose time falls in it.
    pub packets: u64,
    /// Transactions that started in it (those handed on late included).
    pub transactions: u64,
    /// Users with a session that closed in it.
    pub users: u64,
    /// Sessions that closed in it.
    pub sessions: u64,
    /// Noticed failures in those sessions, by kind.
    pub failures_by_kind: BTreeMap<String, u64>,
}

/// What is told of each interval written ([`IntervalAnalysis::set_on_written`]).
pub type OnWritten = Box<dyn FnMut(&Written)>;

/// The interval being written: its folder (written whole, then renamed
/// into place) and its transaction file.
struct Open {
    /// The hidden folder it is written into.
    part: PathBuf,
    run: RunDir,
    tx: TxWriter<AtomicFile>,
    transactions: u64,
    missing_bytes: u64,
}

/// `pov analyze`'s outputs per interval: transactions, pages, sessions,
/// users and failures as Parquet, `summary.json` and `report.html` in
/// `DIR/<interval>/` (no HTML replays), each folder written whole under a
/// hidden name and renamed into place when its interval ends, so a reader
/// of `DIR` never sees half an interval. One user stage runs through the
/// whole capture: sessions stay open across a cut (the module's rule).
pub struct IntervalAnalysis {
    dir: PathBuf,
    cfg: PovConfig,
    /// `None` once the last interval finished it.
    users: Option<UserStage<AtomicFile>>,
    prep_records: Records,
    /// The sessions' view of transactions, made on the shards.
    txs: Arc<SessionTxs>,
    masker: Masker,
    open: Option<Open>,
    tally: SharedTally,
    inputs: Vec<PathBuf>,
    written: Vec<Written>,
    /// Spill files of the user stage (removed with it).
    work: PathBuf,
    /// Told of each interval once written.
    on_written: Option<OnWritten>,
}

impl IntervalAnalysis {
    /// Outputs into `dir` (created if missing), with `cfg` and `opts`;
    /// `inputs` names the capture in each summary; `tally` is what the
    /// source counts; `budget` the run's.
    ///
    /// # Errors
    ///
    /// The folder cannot be created, or the settings are invalid.
    pub fn new(
        dir: &Path,
        cfg: &PovConfig,
        opts: &StageOptions,
        budget: &pov_capture::Budget,
        tally: SharedTally,
        inputs: Vec<PathBuf>,
    ) -> io::Result<IntervalAnalysis> {
        let named = |e: io::Error, p: &Path| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        std::fs::create_dir_all(dir).map_err(|e| named(e, dir))?;
        let work = dir.join(format!(".pov-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir(&work).map_err(|e| named(e, &work))?;
        let none = Outputs { users: None, sessions: None, pages: None, failures: None };
        let mut users = UserStage::with_limits(cfg, opts.mask, none, opts.max_session_txs.max(1))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        users.set_budget(budget);
        users.set_user_spill(&work, opts.max_users_held);
        users.set_identity_caps(opts.identity);
        users.set_include_robots(opts.include_robots);
        let masker = Masker::new(&cfg.privacy, opts.mask);
        // The transactions' preparer does not depend on the file they go
        // to: every interval's records are Parquet of the same columns, so
        // the shards take them apart for any of them.
        let prep_records = TxWriter::new(std::io::sink(), Format::Parquet, masker.clone())?.preparer();
        Ok(IntervalAnalysis {
            dir: dir.to_path_buf(),
            cfg: cfg.clone(),
            txs: users.preparer(),
            users: Some(users),
            prep_records,
            masker,
            open: None,
            tally,
            inputs,
            written: Vec::new(),
            work,
            on_written: None,
        })
    }

    /// Calls `f` with each interval once it is written (the binary prints
    /// a line).
    pub fn set_on_written(&mut self, f: OnWritten) {
        self.on_written = Some(f);
    }

    /// The intervals written so far, in order.
    pub fn written(&self) -> &[Written] {
        &self.written
    }

    fn stage(&mut self) -> io::Result<&mut UserStage<AtomicFile>> {
        self.users.as_mut().ok_or_else(|| io::Error::other("the user stage has finished"))
    }

    fn open(&mut self) -> io::Result<&mut Open> {
        self.open.as_mut().ok_or_else(|| io::Error::other("no interval begun"))
    }

    /// A folder name in `dir` for `iv` that no earlier run took (a
    /// restarted capture writes the rest of its interval as `NAME-2`).
    fn free_name(&self, iv: &Interval) -> PathBuf {
        let base = iv.name();
        let mut path = self.dir.join(&base);
        let mut n = 2;
        while path.exists() {
            path = self.dir.join(format!("{base}-{n}"));
            n += 1;
        }
        path
    }
}

impl Drop for IntervalAnalysis {
    fn drop(&mut self) {
        // The user stage's spill files first, then their folder.
        self.users = None;
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

impl Downstream for IntervalAnalysis {
    type Item = (Prepared, pov_sessions::tx::Tx);
    type Prep = AnalysisPrep;
    fn preparer(&self) -> AnalysisPrep {
        AnalysisPrep { records: self.prep_records.clone(), txs: Arc::clone(&self.txs) }
    }

    fn on_transaction(&mut self, (record, tx): Self::Item) -> Flow {
        let open = self.open()?;
        open.missing_bytes += record.missing_bytes();
        open.tx.write_prepared(record)?;
        open.transactions += 1;
        self.stage()?.session_tx(tx)?;
        GO_ON
    }

    fn on_summary(&mut self, s: &ConnSummary) -> Flow {
        self.stage()?.on_summary(s)
    }

    /// Sessions that went quiet by the frontier close now, in the interval
    /// being written, even when no request comes (a quiet interface).
    fn on_batch(&mut self, frontier: Ts) -> Flow {
        if frontier.0 != i64::MIN && frontier.0 != i64::MAX {
            self.stage()?.advance(frontier)?;
        }
        GO_ON
    }
}

impl Cut for IntervalAnalysis {
    fn begin(&mut self, iv: &Interval) -> io::Result<()> {
        let part = self.dir.join(format!(".pov-interval-{}-{}.part", iv.name(), std::process::id()));
        let run = RunDir::create(&part)?;
        let open = |name: &str| run.file(name);
        let tx = TxWriter::new(open(files::TRANSACTIONS)?, Format::Parquet, self.masker.clone())?;
        let outputs = Outputs {
            pages: Some(RecordWriter::new(open(files::PAGES)?, Format::Parquet)?),
            sessions: Some(RecordWriter::new(open(files::SESSIONS)?, Format::Parquet)?),
            users: Some(RecordWriter::new(open(files::USERS)?, Format::Parquet)?),
            failures: Some(RecordWriter::new(open(files::FAILURES)?, Format::Parquet)?),
        };
        // The outputs before were none (the first interval) or taken by
        // the last end: nothing is written into them here.
        self.stage()?.cut(outputs)?;
        self.open = Some(Open { part, run, tx, transactions: 0, missing_bytes: 0 });
        Ok(())
    }

    fn end(&mut self, iv: &Interval, last: bool) -> io::Result<()> {
        let none = || Outputs { users: None, sessions: None, pages: None, failures: None };
        let (outputs, users) = if last {
            // What is still open is finished in the last interval.
            let stage = self.users.take().ok_or_else(|| io::Error::other("the user stage has finished"))?;
            stage.finish()?
        } else {
            self.stage()?.cut(none())?
        };
        let Open { part, mut run, tx, transactions, missing_bytes } =
            self.open.take().ok_or_else(|| io::Error::other("no interval begun"))?;
        crate::analyze::commit_records(tx.finish()?, outputs)?;
        let counts = self.tally.lock().map(|mut t| t.take(iv)).unwrap_or_default();
        let imp = crate::analyze::impact(run.staging(), &self.cfg)?;
        let mut tcp = TcpStats::default();
        // The bytes missing from the interval's transactions.
        tcp.totals.gap_bytes = missing_bytes;
        let report = RunReport {
            first_ts: counts.first,
            last_ts: counts.last,
            packets: counts.packets,
            http: Some(HttpStats { transactions, ..HttpStats::default() }),
            tcp,
            capture_loss: counts.capture_loss,
            ..RunReport::default()
        };
        let mut summary = Summary::new(&self.inputs, &report, &users, imp, &self.cfg.revenue.currency);
        // The whole capture's decoding, reassembly and HTTP counters are
        // the run's (`live-info.json`); each interval has its own.
        let mut counters = serde_json::json!({
            "interval": {
                "name": iv.name(),
                "start": iv.start.as_secs_f64(),
                "end": iv.end.as_secs_f64(),
                "packets": counts.packets,
                "transactions": transactions,
                "last": last,
            },
            "users": users,
        });
        if let (Some(m), Some(input)) = (counters.as_object_mut(), report.input_counters()) {
            m.insert("input".into(), input);
        }
        summary.counters = counters;
        summary.write(&run)?;
        summary.write_report(&run)?;
        let names: Vec<String> = files::RECORDS.iter().chain(&files::SUMMARIES).map(|f| f.to_string()).collect();
        run.publish(&names)?;
        // The staging folder goes before the folder is renamed.
        drop(run);
        let to = self.free_name(iv);
        std::fs::rename(&part, &to).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", to.display())))?;
        self.written.push(Written {
            name: to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            dir: to,
            start: iv.start,
            end: iv.end,
            packets: counts.packets,
            transactions,
            users: summary.users_total,
            sessions: summary.sessions_total,
            failures_by_kind: summary.failures_by_kind.clone(),
        });
        if let (Some(f), Some(w)) = (self.on_written.as_mut(), self.written.last()) {
            f(w);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::{Threads, run_source};
    use crate::pipeline::PipelineConfig;
    use crate::run::{AnalyzeJob, Reading, Unwatched};
    use pov_capture::pcap::{CaptureFile, PacketReader};

    fn sample(name: &str) -> PathBuf {
        pov_capture::testing::manifest_dir().join("../../samples").join(name)
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pov-interval-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn json(path: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// `name` cut into intervals of `every` into `dir`, as `pov live
    /// --analyze` cuts a capture (on `threads` threads).
    fn cut(name: &str, cfg: &PovConfig, every: Dur, dir: &Path, threads: usize) -> (Vec<Written>, RunReport) {
        let pipe = PipelineConfig::default();
        let tally = Tally::shared(Some(every));
        let reader = PacketReader::new(vec![CaptureFile::open(&sample(name)).unwrap()]);
        let mut src = Tallied::new(reader, Arc::clone(&tally));
        let stage = IntervalAnalysis::new(
            dir,
            cfg,
            &StageOptions::default(),
            pipe.budget(),
            Arc::clone(&tally),
            vec![sample(name)],
        )
        .unwrap();
        let mut down = Intervals::new(stage, Some(every), None);
        let threads = Threads { threads, ..Threads::default() };
        let report =
            run_source(&mut src, Vec::new(), &pipe, Some(&pipe.http), threads, None, &mut down, &mut |_| {}).unwrap();
        tally.lock().unwrap().close(report.capture_loss);
        let stage = down.finish(report.last_ts.unwrap()).unwrap();
        (stage.written().to_vec(), report)
    }

    /// Every transaction's request start in `name`.
    fn starts(name: &str) -> Vec<Ts> {
        let pipe = PipelineConfig::default();
        let mut txs: Vec<HttpTransaction> = Vec::new();
        let (files, errors) = crate::pipeline::open_inputs(&[sample(name)]);
        crate::parallel::run(files, errors, &pipe, Some(&pipe.http), Threads::default(), None, &mut txs, &mut |_| {})
            .unwrap();
        txs.iter().map(|t| t.timing.start()).collect()
    }

    #[test]
    fn intervals_hold_the_transactions_that_started_in_them_and_together_the_whole_analysis() {
        // Sessions end after 1 s without a request, so that some close
        // before the capture does (a user coming back starts a new one).
        // shop.pcap spans 3.5 minutes: 8 intervals of 30 s.
        let mut cfg = PovConfig::default();
        cfg.sessions.timeout_secs = 1.0;
        let every = Dur::from_secs(30);
        let dir = tmp("shop");
        let (written, report) = cut("shop.pcap", &cfg, every, &dir, 2);
        assert_eq!(written.len(), 8, "{written:?}");
        // Aligned, one after the other, named by their start.
        for w in written.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert!(w[0].name < w[1].name);
        }
        assert!(written.iter().all(|w| w.start.0 % every.0 == 0 && w.end.0 - w.start.0 == every.0));
        // Each holds exactly the transactions that started in it.
        let starts = starts("shop.pcap");
        for w in &written {
            let n = starts.iter().filter(|t| **t >= w.start && **t < w.end).count() as u64;
            assert_eq!(w.transactions, n, "{}", w.name);
        }
        assert_eq!(written.iter().map(|w| w.transactions).sum::<u64>(), starts.len() as u64);
        // Every packet is in the interval of its time.
        assert_eq!(written.iter().map(|w| w.packets).sum::<u64>(), report.packets);
        // The whole capture analysed at once: the same sessions and
        // failures, split by the interval in which each session closed.
        let whole = dir.join("whole");
        let job = AnalyzeJob {
            inputs: vec![sample("shop.pcap")],
            out: whole.clone(),
            config: cfg.clone(),
            stage: StageOptions::default(),
            max_store_bytes: 1 << 30,
            history: None,
            replays: 0,
            from_transactions: false,
            dataset: None,
            history_days: 30,
        };
        let pipe = PipelineConfig::default();
        let mut watch = Unwatched;
        let mut reading = Reading { cfg: pipe, threads: Threads::default(), watch: &mut watch };
        let all = crate::run::analyze(&job, &mut reading).unwrap().summary;
        assert_eq!(written.iter().map(|w| w.sessions).sum::<u64>(), all.sessions_total);
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for w in &written {
            for (k, n) in &w.failures_by_kind {
                *kinds.entry(k.clone()).or_default() += n;
            }
        }
        assert_eq!(kinds, all.failures_by_kind);
        assert!(!kinds.is_empty(), "shop.pcap has failures");
        // Some sessions closed before the last interval, the rest in it.
        let (last, before) = written.split_last().unwrap();
        assert!(before.iter().any(|w| w.sessions > 0), "{written:?}");
        assert!(last.sessions > 0);
        // A user is in each interval in which one of its sessions closed.
        assert!(written.iter().map(|w| w.users).sum::<u64>() >= all.users_total);
        // Each folder is a complete `pov analyze` output, its summary
        // saying what the interval held.
        for w in &written {
            for f in files::RECORDS.iter().chain(&files::SUMMARIES) {
                assert!(w.dir.join(f).is_file(), "{}: no {f}", w.name);
            }
            let s = json(&w.dir.join(files::SUMMARY));
            assert_eq!(s["transactions"].as_u64(), Some(w.transactions));
            assert_eq!(s["sessions_total"].as_u64(), Some(w.sessions));
            assert_eq!(s["counters"]["interval"]["packets"].as_u64(), Some(w.packets));
            assert_eq!(s["counters"]["interval"]["name"].as_str(), Some(w.name.as_str()));
            // Its first and last packet (none in a quiet second).
            match (s["capture_start"].as_f64(), s["capture_end"].as_f64()) {
                (Some(a), Some(b)) => {
                    assert!(w.packets > 0 && a >= w.start.as_secs_f64() && b < w.end.as_secs_f64(), "{}", w.name)
                }
                _ => assert_eq!(w.packets, 0, "{}", w.name),
            }
            // Files have no capture loss counters.
            assert!(s["counters"].get("input").is_none());
        }
        // Nothing else left in the folder: no hidden part, no spill.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "whole")
            .collect();
        names.sort();
        assert_eq!(names, written.iter().map(|w| w.name.clone()).collect::<Vec<_>>());
        // The same on one thread.
        let dir1 = tmp("shop-1");
        let (one, _) = cut("shop.pcap", &cfg, every, &dir1, 1);
        let key = |w: &Written| (w.name.clone(), w.transactions, w.sessions, w.users, w.packets);
        assert_eq!(one.iter().map(key).collect::<Vec<_>>(), written.iter().map(key).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir1).unwrap();
    }

    #[test]
    fn the_tally_gives_each_interval_its_packets_and_drops() {
        let every = Some(Dur::from_secs(10));
        let tally = Tally::shared(every);
        let s = |x: i64| Ts(x * 1_000_000_000);
        let loss = |r, k| CaptureLoss { received: r, dropped_kernel: k, dropped_interface: 0 };
        let mut ended = None;
        reached(&tally, &mut ended, s(1), true);
        reached(&tally, &mut ended, s(9), true);
        assert_eq!(ended, None);
        // The clock passes the first interval's end: its drops are read.
        reached(&tally, &mut ended, s(12), false);
        assert_eq!(ended.take(), Some(0));
        tally.lock().unwrap().note_loss(0, loss(100, 5));
        reached(&tally, &mut ended, s(25), true);
        assert_eq!(ended.take(), Some(1));
        tally.lock().unwrap().note_loss(1, loss(150, 5));
        // At the stop, the rest goes to the last interval.
        tally.lock().unwrap().close(Some(loss(170, 8)));
        let mut t = tally.lock().unwrap();
        let iv = |k: i64| Interval::of(s(k * 10), every);
        let a = t.take(&iv(0));
        assert_eq!((a.packets, a.first, a.last, a.capture_loss), (2, Some(s(1)), Some(s(9)), Some(loss(100, 5))));
        let b = t.take(&iv(1));
        assert_eq!((b.packets, b.first, b.capture_loss), (0, None, Some(loss(50, 0))));
        let c = t.take(&iv(2));
        assert_eq!((c.packets, c.first, c.capture_loss), (1, Some(s(25)), Some(loss(20, 3))));
        assert_eq!(t.take(&iv(3)), InputCounts::default());
        // Names are the start, UTC, to the second.
        assert_eq!(Interval::of(Ts(1_709_214_307_500_000_000), Some(Dur::from_secs(3600))).name(), "20240229T130000Z");
    }
}
