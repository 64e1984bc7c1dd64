//! Runs captures through reading, decoding and reassembly.

use std::path::{Path, PathBuf};

use pov_capture::decode::{DecodeConfig, DecodeStats, Decoder};
use pov_capture::http::{HttpConfig, HttpStats};
use pov_capture::pcap::{CaptureFile, FileStats, PacketReader, ReadError, ReadWarning};
use pov_capture::tcp::{Reassembler, StreamSink, TcpConfig, TcpStats};
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
}

impl Default for PipelineConfig {
    /// Every stage's defaults, sharing one memory budget of the default
    /// size.
    fn default() -> PipelineConfig {
        let mut cfg =
            PipelineConfig { decode: DecodeConfig::default(), tcp: TcpConfig::default(), http: HttpConfig::default() };
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
        total += std::fs::metadata(p).ok()?.len();
    }
    Some(total)
}

/// Reads, decodes and reassembles `files`, pushing stream events into
/// `sink`. `open_errors` (from [`open_inputs`]) are carried into the report.
/// `progress` is called every few thousand packets.
pub fn run<S: StreamSink + ?Sized>(
    files: Vec<CaptureFile>,
    open_errors: Vec<ReadError>,
    cfg: &PipelineConfig,
    bytes_total: Option<u64>,
    sink: &mut S,
    progress: &mut dyn FnMut(Progress),
) -> RunReport {
    let mut report = RunReport { errors: open_errors.iter().map(|e| e.to_string()).collect(), ..RunReport::default() };
    let mut reader = PacketReader::new(files);
    let mut decoder = Decoder::new(cfg.decode.clone());
    let mut tcp = Reassembler::new(cfg.tcp.clone());
    let mut packets = 0u64;
    loop {
        match reader.next_packet() {
            Ok(Some(pkt)) => {
                packets += 1;
                if report.first_ts.is_none_or(|t| pkt.ts < t) {
                    report.first_ts = Some(pkt.ts);
                }
                if report.last_ts.is_none_or(|t| pkt.ts > t) {
                    report.last_ts = Some(pkt.ts);
                }
                if let Some(seg) = decoder.decode(&pkt) {
                    tcp.process(&seg, sink);
                }
                if packets.is_multiple_of(8192) {
                    progress(Progress { bytes_read: reader.bytes_read(), bytes_total, packets });
                }
            }
            Ok(None) => break,
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    decoder.finish();
    tcp.finish(sink);
    progress(Progress { bytes_read: reader.bytes_read(), bytes_total, packets });
    report.packets = packets;
    report.files = reader.files().cloned().collect();
    report.warnings = reader.warnings().iter().map(|w: &&ReadWarning| w.to_string()).collect();
    report.decode = decoder.stats().clone();
    report.tcp = tcp.stats().clone();
    report.budget = Some(cfg.budget().report());
    report
}
