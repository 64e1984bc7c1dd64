//! What every run shares: its configuration, stop flag, inputs and report.
//! The run itself is [`crate::parallel::run`].

use std::fs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pov_capture::decode::{DecodeConfig, DecodeStats};
use pov_capture::http::{HttpConfig, HttpStats, KeyStore};
use pov_capture::pcap::{CaptureFile, FileStats, ReadError};
use pov_capture::tcp::{TcpConfig, TcpStats};
use pov_capture::{Budget, BudgetReport, CaptureLoss, Dur, PacketFilter, Ts};

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
    /// Where every transaction is kept whole as it finishes (for replays
    /// chosen at the end of the run), if anywhere.
    pub store: Option<crate::store::TxStore>,
    /// Which packets the run reads (`--filter`); the others are skipped
    /// before decoding and counted in [`RunReport::filtered_out`].
    pub filter: Option<Arc<dyn PacketFilter>>,
    /// TLS key logs (`--keylog`, NSS format): loaded with the Decryption
    /// Secrets Blocks of the inputs at the start of each pass that parses
    /// HTTP ([`load_keys`]). They are secrets: nothing of them but their
    /// names and line numbers reaches any output.
    pub keylogs: Vec<PathBuf>,
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
            store: None,
            filter: None,
            keylogs: Vec::new(),
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
    /// Where the TLS keys came from and what they held (when any were
    /// given or found in the inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeysReport>,
    /// Inputs that could not be read, or stopped early, with byte offsets.
    pub errors: Vec<String>,
    /// Inputs that ended early but were read up to that point.
    pub warnings: Vec<String>,
    /// Capture time of the first packet.
    pub first_ts: Option<Ts>,
    /// Capture time of the last packet.
    pub last_ts: Option<Ts>,
    /// Packets read over all inputs (those the filter kept, with one).
    pub packets: u64,
    /// Packets the run's filter (`--filter`) left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub filtered_out: u64,
    /// What a live capture lost before pov read it (libpcap's kernel and
    /// interface drop counters): capture loss, not failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_loss: Option<CaptureLoss>,
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
    /// What never reached the analysis, only when there is any: packets a
    /// `--filter` left out (`filtered_out`) and a live capture's drops
    /// (`capture_loss`: capture loss, never failures). `summary.json` and
    /// `pov info` show it as `input`.
    pub fn input_counters(&self) -> Option<serde_json::Value> {
        let mut input = serde_json::Map::new();
        if self.filtered_out > 0 {
            input.insert("filtered_out".into(), self.filtered_out.into());
        }
        if let Some(l) = &self.capture_loss {
            input.insert("capture_loss".into(), serde_json::to_value(l).unwrap_or_default());
        }
        (!input.is_empty()).then(|| input.into())
    }

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
                &format!(
                    "HTTP transactions let out early by the ordering caps, {} of them written after one that \
                     started later",
                    h.written_out_of_order
                ),
                "--max-held-transactions/--max-held-bytes",
            );
        }
        // Encrypted traffic pov could not read is said, so that its
        // silence is not taken for health.
        if let Some(t) = self.http.as_ref().map(|h| &h.tls) {
            let unread = t.encrypted_no_keys + t.keys_mismatch + t.unsupported_suite + t.no_client_hello;
            if unread > 0 {
                w.push(format!(
                    "{unread} of {} TLS connections were not decrypted ({} without keys, {} with keys that did not \
                     fit, {} with a suite pov does not decrypt, {} joined after their handshake): their HTTP is not \
                     in the outputs (give their key log with --keylog)",
                    t.connections, t.encrypted_no_keys, t.keys_mismatch, t.unsupported_suite, t.no_client_hello
                ));
            }
        }
        if let Some(k) = &self.keys
            && k.bad_lines > 0
        {
            w.push(format!(
                "{} key log lines were not key log lines and were skipped ({})",
                k.bad_lines,
                k.bad_line_examples.join(", ")
            ));
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a run's TLS keys came from: counts, file names and the numbers of
/// bad lines; never a secret or a line's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeysReport {
    /// Key log files read (`--keylog`).
    pub keylog_files: Vec<String>,
    /// Decryption Secrets Blocks read from the inputs (before their first
    /// packet).
    pub capture_blocks: u64,
    /// Of those, blocks of other secrets than a TLS key log, or broken.
    pub capture_blocks_refused: u64,
    /// Connections (client randoms) with at least one secret.
    pub client_randoms: u64,
    /// Secrets kept.
    pub secrets: u64,
    /// Lines with a known label that pov does not use (early traffic,
    /// exporter secrets).
    pub ignored_lines: u64,
    /// Lines repeating a known secret.
    pub duplicate_lines: u64,
    /// Lines giving another value for a known secret (the first is kept).
    pub conflicting_lines: u64,
    /// Lines that are not key log lines.
    pub bad_lines: u64,
    /// The first of them: `FILE:LINE: what is wrong`.
    pub bad_line_examples: Vec<String>,
}

/// Most bad key log lines named in a report.
const BAD_LINES_NAMED: usize = 20;

/// The TLS keys of a pass: every key log of `keylogs`, then the
/// Decryption Secrets Blocks found before the first packet of each pcapng
/// input of `captures` (in file order; standard input and named pipes are
/// not looked at ahead of the run). `None` when there are no key logs and
/// no blocks (the run uses an empty store).
///
/// # Errors
///
/// A key log that cannot be read (its name and the reason). A capture
/// whose first blocks do not read is left to the run, which reports it.
pub fn load_keys(keylogs: &[PathBuf], captures: &[PathBuf]) -> Result<Option<(KeyStore, KeysReport)>, String> {
    let mut store = KeyStore::new();
    let mut report = KeysReport::default();
    let mut named = Vec::new();
    for k in keylogs {
        let text = fs::read(k).map_err(|e| format!("--keylog {}: {e}", k.display()))?;
        let before = store.stats().bad_lines.len();
        store.load(&text);
        let name = k.display().to_string();
        for b in store.stats().bad_lines.iter().skip(before) {
            if named.len() < BAD_LINES_NAMED {
                named.push(format!("{name}:{}: {}", b.line, b.kind));
            }
        }
        report.keylog_files.push(name);
    }
    for c in captures {
        // Only regular files are looked at ahead of the run: what a pipe
        // (standard input, a named pipe) holds is read once, by the run.
        if regular_size(c).is_none() {
            continue;
        }
        let Ok(blocks) = CaptureFile::leading_secrets(c) else { continue };
        for (body, big) in blocks {
            store.load_dsb_body(&body, big);
        }
    }
    let st = store.stats();
    if keylogs.is_empty() && st.dsb_blocks == 0 {
        return Ok(None);
    }
    report.capture_blocks = st.dsb_blocks;
    report.capture_blocks_refused = st.dsb_refused;
    report.client_randoms = store.len() as u64;
    report.secrets = st.kept();
    report.ignored_lines = st.ignored;
    report.duplicate_lines = st.duplicates;
    report.conflicting_lines = st.conflicts;
    report.bad_lines = st.bad;
    report.bad_line_examples = named;
    Ok(Some((store, report)))
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

/// The capture inputs of a command. Every command reads them once: what
/// the replays need is kept while they are read ([`crate::store`]), so
/// standard input and named pipes work everywhere, with no copy.
#[derive(Debug)]
pub struct Inputs {
    paths: Vec<PathBuf>,
}

impl Inputs {
    /// The inputs `paths` (`-` is stdin).
    pub fn once(paths: Vec<PathBuf>) -> Inputs {
        Inputs { paths }
    }

    /// The inputs as given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Opens every input: the captures in order, the inputs that could not
    /// be opened, and the total size to read when it is known (for
    /// progress).
    pub fn open(&self) -> (Vec<CaptureFile>, Vec<ReadError>, Option<u64>) {
        let (files, errors) = open_inputs(&self.paths);
        (files, errors, total_size(&self.paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::{Discard, Downstream, Flow, GO_ON, Threads};
    use pov_capture::tcp::ConnSummary;

    fn sample() -> PathBuf {
        pov_capture::testing::manifest_dir().join("../../samples/local-curl.pcap")
    }

    /// Counts connections (from their summaries) and stream bytes.
    #[derive(Default)]
    struct Count {
        conns: u64,
        bytes: u64,
    }

    impl Downstream for Count {
        type Item = ();
        type Prep = Discard;
        fn preparer(&self) -> Discard {
            Discard
        }
        fn on_transaction(&mut self, _tx: ()) -> Flow {
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
}
