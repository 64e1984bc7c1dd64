//! `pov live` and `--filter`: capture through libpcap (the `live` feature).
//!
//! Without the feature both are still parsed, and say which feature they
//! need (exit code 2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use pov_capture::PacketFilter;

/// What `--filter` holds: a compiled BPF expression.
pub type Filter = Arc<dyn PacketFilter>;

/// `--filter EXPR` on commands that read files: compiled by libpcap, as
/// `tcpdump -r FILE EXPR`.
pub fn parse_filter(expr: &str) -> Result<Filter, String> {
    #[cfg(feature = "live")]
    {
        pov_capture::live::BpfFilter::new(expr).map(|f| Arc::new(f) as Filter).map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "live"))]
    {
        let _ = expr;
        Err(NEEDS_FEATURE.to_string())
    }
}

#[cfg(not(feature = "live"))]
const NEEDS_FEATURE: &str = "BPF filters and live capture need pov built with the `live` feature (libpcap; \
                             apt-get install libpcap-dev, then cargo build --release --features live)";

/// Capture from an interface into rotated pcapng files.
#[derive(Args)]
pub struct LiveArgs {
    /// The interface to capture on (as `ip link` names it).
    #[arg(short, long, value_name = "IFACE")]
    interface: String,
    /// A BPF expression (tcpdump's syntax) the kernel applies: only what
    /// it keeps is written and analysed.
    #[arg(long, value_name = "BPF")]
    filter: Option<String>,
    /// Bytes kept of each frame (0: 262,144, every frame whole).
    #[arg(long, default_value_t = 0, value_name = "N")]
    snaplen: u32,
    /// The kernel's capture buffer, in MiB: what absorbs a burst. Packets
    /// dropped when it is full are reported as capture loss.
    #[arg(long, default_value_t = 64, value_name = "N")]
    buffer_mb: usize,
    /// Start a new file every span of capture time, aligned (`1h`: one
    /// file per clock hour, UTC; units s, m, h, d).
    #[arg(long, value_name = "SPAN")]
    rotate: Option<String>,
    /// Start a new file before one would grow beyond this size (such as
    /// `1GiB`, `512MiB`).
    #[arg(long, value_name = "SIZE")]
    rotate_size: Option<String>,
    /// Keep at most N complete files in DIR, removing the oldest.
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// Also analyse what is captured, as `pov analyze` does, and write each
    /// interval's outputs (the `--rotate` span; without it, one interval
    /// until stopped) into `DIR/<interval start>/`: transactions, pages,
    /// sessions, users and failures as Parquet, summary.json and
    /// report.html. A session is written in the interval in which it ends
    /// (docs/live.md).
    #[arg(long)]
    analyze: bool,
    /// Settings file for `--analyze` (users, sessions, pages, failures,
    /// revenue, privacy).
    #[arg(short, long, value_name = "POV.TOML", requires = "analyze")]
    config: Option<PathBuf>,
    /// With `--analyze`: show raw user keys and secrets in the outputs.
    #[arg(long, requires = "analyze")]
    no_mask: bool,
    /// Threads that reassemble and parse (0: one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// The folder the capture files go into (`pov-<UTC time>.pcapng`) and,
    /// once stopped, `live-info.json` (every counter, the capture loss
    /// among them).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `pov live`.
#[cfg(not(feature = "live"))]
pub fn run(_a: LiveArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("{NEEDS_FEATURE}")
}

/// Runs `pov live`: captures until SIGINT or SIGTERM, writing rotated
/// pcapng files while the pipeline parses what it reads; then closes the
/// last file, writes `live-info.json` and prints what was captured and
/// lost.
#[cfg(feature = "live")]
pub fn run(a: LiveArgs) -> anyhow::Result<ExitCode> {
    use pov_capture::live::{LiveCapture, LiveConfig, Recording, RotatingWriter, Rotation, parse_size, parse_span};

    let rotation = Rotation {
        every: a.rotate.as_deref().map(parse_span).transpose().map_err(anyhow::Error::msg)?,
        size: a.rotate_size.as_deref().map(parse_size).transpose().map_err(anyhow::Error::msg)?,
        keep: a.keep,
    };
    let mut lc = LiveConfig::new(&a.interface);
    lc.snaplen = a.snaplen;
    lc.buffer_bytes = a.buffer_mb.max(1) << 20;
    lc.filter = a.filter.clone();
    lc.promiscuous = !a.no_promisc;
    // The signals end the capture (the source's flag); the pipeline then
    // finishes as at the end of a file, every connection flushed. Its own
    // stop flag is never set.
    let signals = crate::signals::stop();
    let cap = LiveCapture::open(&lc, Arc::clone(signals.flag()))?;
    let writer = RotatingWriter::new(&a.out, cap.linktype(), cap.snaplen(), rotation)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.out.display()))?;
    eprintln!("pov live: capturing on {} into {} (SIGINT or SIGTERM stops)", a.interface, a.out.display());
    let mut rec = Recording::new(cap, writer);
    let cfg = pov::pipeline::PipelineConfig::default();
    let mut threads = pov::parallel::Threads::default();
    if a.threads > 0 {
        threads.threads = a.threads;
    }
    let mut count = Count::default();
    let (report, rec, intervals) = if a.analyze {
        let (report, rec, intervals) = analyze(&a, rec, rotation.every, &cfg, threads)?;
        if let Ok(r) = &report {
            count.transactions = r.http.as_ref().map_or(0, |h| h.transactions);
            count.connections = r.tcp.connections;
        }
        (report, rec, Some(intervals))
    } else {
        let report = pov::parallel::run_source(
            &mut rec,
            Vec::new(),
            &cfg,
            Some(&cfg.http),
            threads,
            None,
            &mut count,
            &mut |_| {},
        );
        (report, rec, None)
    };
    // The current file is closed and renamed whatever happened to the
    // pipeline.
    let (files, _) = rec.finish().map_err(|e| anyhow::anyhow!("{}: {e}", a.out.display()))?;
    let report = report?;
    let intervals = intervals.transpose()?;
    let info = a.out.join("live-info.json");
    pov::output::write_atomic(&info, |w| {
        serde_json::to_writer_pretty(&mut *w, &report)?;
        writeln!(w)
    })?;
    let why = crate::signals::requested().map(crate::signals::name);
    eprintln!(
        "pov live: {} on {}: {} packets, {} connections, {} HTTP transactions; {} files written into {}",
        why.map_or_else(|| "capture ended".to_string(), |s| format!("stopped by {s}")),
        a.interface,
        report.packets,
        count.connections,
        count.transactions,
        files.len(),
        a.out.display()
    );
    if let Some(loss) = report.capture_loss {
        eprintln!("pov live: capture loss: {loss}");
    }
    if let Some(written) = &intervals {
        let names: Vec<&str> = written.iter().map(|w| w.name.as_str()).collect();
        eprintln!("pov live: {} intervals analysed into {}: {}", written.len(), a.out.display(), names.join(" "));
    }
    for e in &report.errors {
        eprintln!("pov: error: {e}");
    }
    // A signal is how a capture is meant to end: it ended cleanly.
    signals.flag().store(0, std::sync::atomic::Ordering::SeqCst);
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// What the pipeline feeds with `--analyze`: the intervals' analysis.
#[cfg(feature = "live")]
type Analysis = pov::interval::Intervals<pov::interval::IntervalAnalysis>;

/// A request that started in an interval and is still unanswered this long
/// after its end no longer holds the interval's outputs back.
#[cfg(feature = "live")]
const GRACE: pov_capture::Dur = pov_capture::Dur::from_secs(60);

/// Runs the pipeline over `rec` into the intervals' analysis (`--analyze`):
/// the run's report (or the error that ended it: the capture file is
/// closed all the same), the recording, and the intervals written (or the
/// error writing the last ones).
#[cfg(feature = "live")]
#[allow(clippy::type_complexity)]
fn analyze<S: pov_capture::PacketSource>(
    a: &LiveArgs,
    rec: S,
    every: Option<pov_capture::Dur>,
    cfg: &pov::pipeline::PipelineConfig,
    threads: pov::parallel::Threads,
) -> anyhow::Result<(std::io::Result<pov::pipeline::RunReport>, S, std::io::Result<Vec<pov::interval::Written>>)> {
    use pov::interval::{IntervalAnalysis, Intervals, Tallied, Tally};
    use pov_capture::live::wall_clock;

    let pov_cfg = crate::load_config(a.config.as_deref())?;
    let opts = pov::run::StageOptions { mask: !a.no_mask, ..pov::run::StageOptions::default() };
    let tally = Tally::shared(every);
    let name = PathBuf::from(format!("live:{}", a.interface));
    let mut stage = IntervalAnalysis::new(&a.out, &pov_cfg, &opts, cfg.budget(), Arc::clone(&tally), vec![name])
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.out.display()))?;
    // One line per interval as it is written (for the journal).
    stage.set_on_written(Box::new(|w| {
        let failures: u64 = w.failures_by_kind.values().sum();
        eprintln!(
            "pov live: interval {} analysed into {}: {} packets, {} HTTP transactions; {} users, {} sessions, {} failures",
            w.name,
            w.dir.display(),
            w.packets,
            w.transactions,
            w.users,
            w.sessions,
            failures
        );
    }));
    let mut down: Analysis = Intervals::new(stage, every, Some(wall_clock())).with_grace(GRACE, wall_clock);
    let mut src = Tallied::new(rec, Arc::clone(&tally));
    let report =
        pov::parallel::run_source(&mut src, Vec::new(), cfg, Some(&cfg.http), threads, None, &mut down, &mut |_| {});
    let written = match &report {
        Ok(r) => {
            if let Ok(mut t) = tally.lock() {
                t.close(r.capture_loss);
            }
            // What is still open is finished in the interval of the stop.
            let end = wall_clock().max(r.last_ts.unwrap_or(pov_capture::Ts(i64::MIN)));
            down.finish(end).map(|stage| stage.written().to_vec())
        }
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    };
    Ok((report, src.into_inner(), written))
}

/// Counts what the pipeline finds.
#[cfg(feature = "live")]
#[derive(Default)]
struct Count {
    transactions: u64,
    connections: u64,
}

#[cfg(feature = "live")]
impl pov::parallel::Downstream for Count {
    type Item = ();
    type Prep = pov::parallel::Discard;
    fn preparer(&self) -> pov::parallel::Discard {
        pov::parallel::Discard
    }
    fn on_transaction(&mut self, _tx: ()) -> pov::parallel::Flow {
        self.transactions += 1;
        pov::parallel::GO_ON
    }
    fn on_summary(&mut self, _s: &pov_capture::tcp::ConnSummary) -> pov::parallel::Flow {
        self.connections += 1;
        pov::parallel::GO_ON
    }
}
