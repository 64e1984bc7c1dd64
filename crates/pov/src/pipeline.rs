//! What every run shares: its configuration, stop flag, inputs (spooled
//! for a second pass when they cannot be read twice) and report. The run
//! itself is [`crate::parallel::run`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pov_capture::decode::{DecodeConfig, DecodeStats};
use pov_capture::http::{HttpConfig, HttpStats};
use pov_capture::pcap::{CaptureFile, FileStats, ReadError, ReadErrorKind};
use pov_capture::tcp::{TcpConfig, TcpStats};
use pov_capture::{Budget, BudgetReport, Dur, Ts};

/// Limits and timeouts for every stage.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Decoding and IP defragmentation.
    pub decode: DecodeConfig,
    /// TCP reassembly.
    pub tcp: TcpConfig,
    /// HTTP parsing.
    pub http: HttpConfig,
    /// Checked between packets: once set, the run stops where it is.
    pub stop: Stop,
}

/// A request to stop a run early, shared with whoever may ask for it (a
/// signal handler, another thread). It holds 0 while the run may go on,
/// and otherwise why it should stop (the CLI stores the signal's number).
/// Clones share the one flag.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicUsize>);

impl Stop {
    /// A flag nobody has set.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// The shared flag itself, for a signal handler to set.
    pub fn flag(&self) -> &Arc<AtomicUsize> {
        &self.0
    }

    /// Asks the run to stop; `why` must not be 0.
    pub fn request(&self, why: usize) {
        self.0.store(why.max(1), Ordering::SeqCst);
    }

    /// Why a stop was asked for, if it was.
    pub fn requested(&self) -> Option<usize> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

impl Default for PipelineConfig {
    /// Every stage's defaults, sharing one memory budget of the default
    /// size.
    fn default() -> PipelineConfig {
        let mut cfg = PipelineConfig {
            decode: DecodeConfig::default(),
            tcp: TcpConfig::default(),
            http: HttpConfig::default(),
            stop: Stop::default(),
        };
        cfg.set_budget(Budget::default());
        cfg
    }
}

impl PipelineConfig {
    /// Every stage charges `budget` (one budget for the whole run).
    pub fn set_budget(&mut self, budget: Budget) {
        self.decode.budget = budget.clone();
        self.tcp.budget = budget.clone();
        self.http.budget = budget;
    }

    /// The run's memory budget.
    pub fn budget(&self) -> &Budget {
        &self.tcp.budget
    }
}

/// How far a run has got, for progress displays.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Bytes consumed from the inputs so far.
    pub bytes_read: u64,
    /// Total size of the inputs, when known (not for stdin).
    pub bytes_total: Option<u64>,
    /// Packets read so far.
    pub packets: u64,
}

/// Everything a run counted, and every problem with its inputs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunReport {
    /// Per input file: format, link types, packets, bytes, time span.
    pub files: Vec<FileStats>,
    /// Decoding counters: every packet not decoded, by reason.
    pub decode: DecodeStats,
    /// Reassembly counters, including every cap that acted.
    pub tcp: TcpStats,
    /// HTTP counters (when the run parsed HTTP).
    pub http: Option<HttpStats>,
    /// Inputs that could not be read, or stopped early, with byte offsets.
    pub errors: Vec<String>,
    /// Inputs that ended early but were read up to that point.
    pub warnings: Vec<String>,
    /// Capture time of the first packet.
    pub first_ts: Option<Ts>,
    /// Capture time of the last packet.
    pub last_ts: Option<Ts>,
    /// Packets read over all inputs.
    pub packets: u64,
    /// What the memory budget saw: its limit, peak, and what it refused.
    pub budget: Option<BudgetReport>,
    /// The shares of the budget carved out for parts of the run (the
    /// reader, the shards), to report with the rest.
    #[serde(skip)]
    pub budget_parts: Vec<Budget>,
    /// A [`Stop`] request came during the run: the inputs may not have been
    /// read to their end, and open connections were not flushed.
    #[serde(skip)]
    pub stopped: bool,
    /// The stage behind the pipeline asked to stop (it had all it wanted):
    /// the inputs may not have been read to their end, and open
    /// connections were not flushed.
    #[serde(skip)]
    pub halted: bool,
}

impl RunReport {
    /// One line per cap that acted during the run, naming its flag, so a
    /// user knows the output is limited and how to lift the limit.
    pub fn cap_warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let mut note = |n: u64, what: &str, flag: &str| {
            if n > 0 {
                w.push(format!("{n} {what} (raise {flag})"));
            }
        };
        note(self.tcp.evicted, "connections evicted to stay under the connection cap", "--max-connections");
        note(self.tcp.ooo_cap_hits, "times a direction's out-of-order buffer was full", "--max-ooo-bytes");
        note(self.tcp.ooo_total_cap_hits, "times the total out-of-order buffer was full", "--max-ooo-total");
        note(self.decode.fragments.over_cap, "IP fragments refused by the fragment byte cap", "--max-frag-bytes");
        note(
            self.decode.fragments.evicted,
            "incomplete IP datagrams evicted by the fragment caps",
            "--max-frag-bytes/--max-frag-datagrams",
        );
        if let Some(h) = &self.http {
            note(h.heads_too_large, "HTTP heads longer than the head cap", "--max-head-bytes");
            note(
                h.decode_caps,
                "HTTP bodies whose decoding stopped at a cap",
                "--max-decoded-bytes/--max-decode-ratio",
            );
            note(
                h.pending_overflow,
                "HTTP requests given up with too many waiting on one connection",
                "--max-pending-requests",
            );
            note(
                h.held_cap_releases,
                "HTTP transactions written before an earlier one finished",
                "--max-held-transactions",
            );
        }
        if let Some(b) = &self.budget
            && b.refusals() > 0
        {
            let what: Vec<String> = b.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
            w.push(format!(
                "the memory budget ({} MiB) was full {} times: {}; records that lost something say memory_budget \
                 (raise --memory-budget)",
                b.limit.unwrap_or(0) >> 20,
                b.refusals(),
                what.join(", ")
            ));
        }
        w
    }

    /// What `main` (the run's budget) and the parts carved out of it saw,
    /// together.
    pub fn budget_report(&self, main: &Budget) -> BudgetReport {
        let mut r = main.report();
        for p in &self.budget_parts {
            r.merge(&p.report());
        }
        r
    }

    /// Time from the first to the last packet.
    pub fn span(&self) -> Option<Dur> {
        Some(self.last_ts? - self.first_ts?)
    }
}

/// Opens every input (`-` is stdin). Inputs that cannot be opened, or are
/// not captures, come back as errors; the others are returned in order.
pub fn open_inputs(paths: &[PathBuf]) -> (Vec<CaptureFile>, Vec<ReadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match CaptureFile::open(p) {
            Ok(f) => files.push(f),
            Err(e) => errors.push(e),
        }
    }
    (files, errors)
}

/// Total size of the inputs on disk, if every one is a regular file.
pub fn total_size(paths: &[PathBuf]) -> Option<u64> {
    let mut total = 0;
    for p in paths {
        if p == Path::new("-") {
            return None;
        }
        total += regular_size(p)?;
    }
    Some(total)
}

/// The size of `p` if it is a regular file (symbolic links followed).
fn regular_size(p: &Path) -> Option<u64> {
    if p == Path::new("-") {
        return None;
    }
    fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| m.len())
}

/// The name [`CaptureFile::open`] gives an input in messages.
fn input_name(p: &Path) -> String {
    if p == Path::new("-") { "<stdin>".to_string() } else { p.display().to_string() }
}

/// How one input is read after the first pass.
#[derive(Debug)]
enum Later {
    /// Opened again by its path (a regular file, or inputs read once).
    Reopen,
    /// Read from its spool file, unless copying into it failed (then the
    /// flag is set, and later passes leave the input out: the first pass
    /// reported the error, and the copy is not what it read).
    Spool(PathBuf, Arc<AtomicBool>),
    /// Not read again: the first pass could not open it (and said so).
    Skip,
}

/// The capture inputs of a command, opened once per pass over them.
///
/// Commands that read their inputs twice (`pov analyze` for its replays,
/// `pov replay`: a first pass finds the sessions, a second keeps their
/// transactions whole) cannot read standard input or a named pipe again.
/// [`Inputs::rereadable`] copies every input that is not a regular file
/// (stdin, a pipe, a device; gzip input stays compressed) into a spool file
/// while the first pass reads it, and later passes read the copy, so they
/// see the same bytes. A spool costs disk as large as that input, never
/// memory. Spool files are removed when the `Inputs` is dropped (after an
/// error too). Regular files are simply opened again.
#[derive(Debug)]
pub struct Inputs {
    paths: Vec<PathBuf>,
    spool_dir: Option<PathBuf>,
    later: Vec<Later>,
    passes: u32,
}

impl Inputs {
    /// Inputs read once (or opened again by path for each pass).
    pub fn once(paths: Vec<PathBuf>) -> Inputs {
        let later = paths.iter().map(|_| Later::Reopen).collect();
        Inputs { paths, spool_dir: None, later, passes: 0 }
    }

    /// Inputs read more than once: those that are not regular files are
    /// spooled into `dir` (as `.pov-spool-PID-N`) during the first pass.
    pub fn rereadable(paths: Vec<PathBuf>, dir: &Path) -> Inputs {
        let later = paths.iter().map(|_| Later::Reopen).collect();
        Inputs { paths, spool_dir: Some(dir.to_path_buf()), later, passes: 0 }
    }

    /// The inputs as given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The spool files made so far.
    pub fn spool_files(&self) -> Vec<&Path> {
        self.later
            .iter()
            .filter_map(|l| match l {
                Later::Spool(p, _) => Some(p.as_path()),
                _ => None,
            })
            .collect()
    }

    /// Opens every input for the next pass: the captures in order, the
    /// inputs that could not be opened, and the total size to read when it
    /// is known (for progress). After the first pass, inputs that could not
    /// be opened then are left out (their error was reported once).
    pub fn open(&mut self) -> (Vec<CaptureFile>, Vec<ReadError>, Option<u64>) {
        let first = self.passes == 0;
        self.passes = self.passes.saturating_add(1);
        let mut files = Vec::new();
        let mut errors = Vec::new();
        let mut total = Some(0u64);
        for (i, p) in self.paths.iter().enumerate() {
            let Some(later) = self.later.get_mut(i) else { continue };
            let opened = match (&*later, &self.spool_dir) {
                (Later::Skip, _) => continue,
                (Later::Spool(spool, failed), _) if failed.load(Ordering::Relaxed) => {
                    let _ = fs::remove_file(spool);
                    *later = Later::Skip;
                    continue;
                }
                (Later::Spool(spool, _), _) => {
                    total = total.and_then(|t| Some(t + regular_size(spool)?));
                    File::open(spool)
                        .map_err(|e| ReadError {
                            file: input_name(p),
                            offset: 0,
                            decompressed: false,
                            kind: ReadErrorKind::Open(named(e, "the spool file", spool)),
                        })
                        .and_then(|f| CaptureFile::from_read(input_name(p), f))
                }
                (Later::Reopen, Some(dir)) if first && needs_spool(p) => {
                    total = None;
                    let spool = dir.join(format!(".pov-spool-{}-{i}", std::process::id()));
                    let failed = Arc::new(AtomicBool::new(false));
                    let (r, created) = open_spooled(p, &spool, Arc::clone(&failed));
                    if created {
                        *later = Later::Spool(spool, failed);
                    }
                    r
                }
                (Later::Reopen, _) => {
                    total = total.and_then(|t| Some(t + regular_size(p)?));
                    CaptureFile::open(p)
                }
            };
            match opened {
                Ok(f) => files.push(f),
                Err(e) => {
                    if first {
                        if let Later::Spool(s, _) = later {
                            let _ = fs::remove_file(&*s);
                        }
                        *later = Later::Skip;
                    }
                    errors.push(e)
                }
            }
        }
        (files, errors, total)
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        for l in &self.later {
            if let Later::Spool(p, _) = l {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// `e`, with what and where it happened.
fn named(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Whether `p` cannot be read twice: stdin, or something that exists and
/// is not a regular file (a named pipe, a device, `/dev/fd/N`).
fn needs_spool(p: &Path) -> bool {
    p == Path::new("-") || fs::metadata(p).is_ok_and(|m| !m.is_file())
}

/// Opens `p` (`-` is stdin) so that every byte read from it is also
/// written to `spool`, a new file; says whether the spool was created
/// (then it is the caller's to remove).
fn open_spooled(p: &Path, spool: &Path, failed: Arc<AtomicBool>) -> (Result<CaptureFile, ReadError>, bool) {
    let name = input_name(p);
    let err = |kind| ReadError { file: name.clone(), offset: 0, decompressed: false, kind };
    let copy = match File::create_new(spool) {
        Ok(f) => f,
        Err(e) => return (Err(err(ReadErrorKind::Io(named(e, "cannot create the spool file", spool)))), false),
    };
    let tee = |inner: Box<dyn Read + Send>| Tee { inner, copy, path: spool.to_path_buf(), failed };
    let r = if p == Path::new("-") {
        CaptureFile::from_read(name.clone(), tee(Box::new(io::stdin())))
    } else {
        match File::open(p) {
            Ok(f) => CaptureFile::from_read(name.clone(), tee(Box::new(f))),
            Err(e) => Err(err(ReadErrorKind::Open(e))),
        }
    };
    (r, true)
}

/// A reader that copies what it reads into a spool file. A failed copy
/// (a full disk) is a read error that names the spool file, and sets
/// `failed`.
struct Tee {
    inner: Box<dyn Read + Send>,
    copy: File,
    path: PathBuf,
    failed: Arc<AtomicBool>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or_default();
        if let Err(e) = self.copy.write_all(got) {
            self.failed.store(true, Ordering::Relaxed);
            return Err(named(e, "writing the spool file", &self.path));
        }
        Ok(got.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::{Downstream, Flow, GO_ON, Threads};
    use pov_capture::http::HttpTransaction;
    use pov_capture::tcp::ConnSummary;

    fn sample() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/local-curl.pcap")
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pov-pipeline-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Counts connections (from their summaries) and stream bytes.
    #[derive(Default)]
    struct Count {
        conns: u64,
        bytes: u64,
    }

    impl Downstream for Count {
        fn on_transaction(&mut self, _tx: HttpTransaction) -> Flow {
            GO_ON
        }
        fn on_summary(&mut self, s: &ConnSummary) -> Flow {
            self.conns += 1;
            self.bytes += s.to_server.stream_bytes + s.to_client.stream_bytes;
            GO_ON
        }
    }

    fn pass(inputs: &mut Inputs, cfg: &PipelineConfig, sink: &mut Count) -> RunReport {
        let (files, errors, total) = inputs.open();
        let threads = Threads { threads: 1, shards: 4 };
        crate::parallel::run(files, errors, cfg, None, threads, total, sink, &mut |_| {}).unwrap()
    }

    #[test]
    fn a_stop_asked_before_the_run_reads_nothing() {
        let cfg = PipelineConfig::default();
        let mut all = Count::default();
        let full = pass(&mut Inputs::once(vec![sample()]), &cfg, &mut all);
        assert_eq!((full.packets, all.conns, full.stopped), (130, 10, false));
        cfg.stop.request(2);
        let mut none = Count::default();
        let cut = pass(&mut Inputs::once(vec![sample()]), &cfg, &mut none);
        assert_eq!((cut.packets, cut.stopped, none.conns), (0, true, 0));
        assert_eq!(cfg.stop.requested(), Some(2));
    }

    #[test]
    fn a_pipe_is_spooled_for_the_second_pass_and_the_spool_removed() {
        let d = temp_dir("spool");
        let fifo = d.join("in.pipe");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let data = fs::read(sample()).unwrap();
        let (f2, copy) = (fifo.clone(), data.clone());
        let writer = std::thread::spawn(move || fs::OpenOptions::new().write(true).open(&f2).unwrap().write_all(&copy));
        let cfg = PipelineConfig::default();
        let mut inputs = Inputs::rereadable(vec![fifo.clone(), sample()], &d);
        let (mut one, mut two) = (Count::default(), Count::default());
        let first = pass(&mut inputs, &cfg, &mut one);
        writer.join().unwrap().unwrap();
        let spools: Vec<PathBuf> = inputs.spool_files().iter().map(|p| p.to_path_buf()).collect();
        assert_eq!(spools.len(), 1, "the pipe is spooled, the regular file is not");
        assert_eq!(fs::read(&spools[0]).unwrap(), data, "the spool holds the bytes read");
        let second = pass(&mut inputs, &cfg, &mut two);
        assert_eq!((first.packets, second.packets), (260, 260));
        assert_eq!((one.conns, one.bytes), (two.conns, two.bytes));
        assert_eq!(second.files[0].name, fifo.display().to_string(), "named as the input, not the spool");
        assert!(first.errors.is_empty() && second.errors.is_empty());
        drop(inputs);
        assert!(!spools[0].exists(), "the spool is removed");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_input_that_failed_in_the_first_pass_is_left_out_of_the_next() {
        let d = temp_dir("skip");
        let notes = d.join("notes.txt");
        fs::write(&notes, "not a capture").unwrap();
        let mut inputs = Inputs::rereadable(vec![notes, sample()], &d);
        let cfg = PipelineConfig::default();
        let first = pass(&mut inputs, &cfg, &mut Count::default());
        assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
        let second = pass(&mut inputs, &cfg, &mut Count::default());
        assert!(second.errors.is_empty(), "said once: {:?}", second.errors);
        assert_eq!(second.packets, 130);
        fs::remove_dir_all(&d).unwrap();
    }
}
