//! The `pov` command line: a thin shell over the `pov` library.
//!
//! Parses flags (clap), builds the pipeline configuration, runs it, prints
//! records and problems, and picks the exit code: 0 on success (also when
//! the output pipe closes early), 2 when any input could not be read or an
//! output could not be written (every error printed means a non-zero exit),
//! 130/143 when SIGINT/SIGTERM stopped the run (see signals.rs).
#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use pov::output::{self, Format};
use pov::pipeline::{Inputs, PipelineConfig, Progress, RunReport};
use pov_capture::Dur;

mod info;
mod live;
mod signals;
mod synth;

/// pov: the customer's point of view, from the wire.
#[derive(Parser)]
#[command(name = "pov", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List TCP connections (like `tshark -q -z conv,tcp`).
    Flows(FlowsArgs),
    /// List HTTP transactions (one record per request and its response).
    Transactions(TransactionsArgs),
    /// Describe captures: link types, packets, bytes, time span, and every
    /// decode and reassembly counter.
    Info(InfoArgs),
    /// The main job: who was hurt and what it likely cost. Writes every
    /// record set as Parquet and summary.json into a folder, and prints a
    /// summary.
    Analyze(AnalyzeArgs),
    /// One record per user: sessions, pages, failures by kind, conversion
    /// and value.
    Users(UserArgs),
    /// One record per session (a user's activity between 30-minute quiet
    /// spells, by default).
    Sessions(UserArgs),
    /// One record per page view: document, resources, load time, Apdex.
    Pages(UserArgs),
    /// One record per failure a user met, with its rule and evidence.
    Failures(UserArgs),
    /// Show the configuration (`--print-default`) or check a pov.toml.
    Config(ConfigArgs),
    /// See what a customer saw: export their sessions (HAR).
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Generate synthetic web-shop traffic with an exact answer key.
    Synth(synth::SynthArgs),
    /// Capture from an interface into rotated pcapng files (needs the
    /// `live` feature; docs/live.md).
    Live(live::LiveArgs),
}

#[derive(Args)]
struct UserArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    /// Several files are merged by timestamp.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Settings file (users, sessions, pages, failures, revenue, privacy).
    #[arg(short, long, value_name = "POV.TOML")]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Show raw user keys (cookie values), sign-in names and masked
    /// parameters.
    #[arg(long)]
    no_mask: bool,
    /// Most transactions kept per session; beyond, they are counted and
    /// left out.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_session_transactions: usize,
    /// Most users' totals held in memory; beyond, they are written to
    /// sorted runs in the temporary folder and merged at the end (users
    /// then come out in order of their key).
    #[arg(long, default_value_t = pov::users::MAX_USERS_HELD, value_name = "N")]
    max_users_held: usize,
    /// Keep robots and load generators (the `[robots]` rules) among users;
    /// by default their sessions are left out.
    #[arg(long)]
    include_robots: bool,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Capture files, folders (every file in them) or globs (`*` and `?` in
    /// the file name); all are read as one capture, merged by timestamp.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (created if needed; files are replaced atomically).
    #[arg(long, default_value = "pov-report")]
    out: PathBuf,
    /// Settings file (users, sessions, pages, failures, revenue, privacy).
    #[arg(short, long, value_name = "POV.TOML")]
    config: Option<PathBuf>,
    /// Show raw user keys and secrets in the outputs.
    #[arg(long)]
    no_mask: bool,
    /// Most transactions kept per session.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_session_transactions: usize,
    /// Most users' totals held in memory; beyond, they are written to
    /// sorted runs in the staging folder and merged at the end (users.parquet
    /// then lists users in order of their key).
    #[arg(long, default_value_t = pov::users::MAX_USERS_HELD, value_name = "N")]
    max_users_held: usize,
    /// Most bytes of transactions kept on disk for the replays while the
    /// captures are read (4 GiB); beyond, transactions are kept without
    /// their bodies, with a warning and `counters.replay_store`.
    #[arg(long, default_value_t = pov::store::MAX_STORE_BYTES, value_name = "BYTES")]
    max_store_bytes: u64,
    /// Exit with code 3 when a summary field passes a threshold, e.g.
    /// `users_affected_pct > 2` or `failures_by_kind.server_error >= 10`
    /// (repeatable: any one is enough). For cron alerting.
    #[arg(long, value_name = "CONDITION")]
    fail_if: Vec<String>,
    /// Folder of earlier runs (each a folder with its summary.json): adds
    /// their numbers and the change since the latest one.
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Write an HTML replay (replays/USER.html, linked from report.html)
    /// for this many of the most affected users; 0 writes none. Costs one
    /// more pass over the captures.
    #[arg(long, default_value_t = 10, value_name = "N")]
    replays: usize,
    /// Keep robots and load generators (the `[robots]` rules) among users,
    /// affected users and revenue; by default they are only reported apart
    /// (summary.json `robots`).
    #[arg(long)]
    include_robots: bool,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Subcommand)]
enum ReplayCommand {
    /// A HAR 1.2 file of the selected sessions (one page per page view),
    /// for a browser's developer tools or any HAR viewer.
    Har(ReplayArgs),
    /// One self-contained HTML page that replays the selected sessions:
    /// a timeline of page views, each page as captured (its style sheets
    /// and images put back, scripts off), the failures highlighted, and
    /// every request's details on click.
    Html(ReplayArgs),
    /// Re-send the selected sessions' requests to a live server, paced as
    /// captured (or faster), with each session's cookies mapped to the ones
    /// the server issues; prints how the answers differ from the capture's
    /// and which failures happen again.
    Send(ReplaySendArgs),
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// The file to write (atomically).
    #[arg(short, long, required = true)]
    output: PathBuf,
}

/// Default of `--max-sessions` (also the cap for analyze's replays).
const DEFAULT_MAX_REPLAY_SESSIONS: usize = 1000;

/// Default of `--max-replay-bytes` (also the cap for analyze's replays).
const DEFAULT_MAX_REPLAY_BYTES: usize = 128 << 20;

/// Which sessions to replay, from which captures.
#[derive(Args)]
struct SelectArgs {
    /// Capture files, folders or globs, read as one capture.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Every session of this user (the pseudonym `pov users` shows, or the
    /// raw key with --no-mask).
    #[arg(long, conflicts_with_all = ["session", "failed"])]
    user: Option<String>,
    /// One session (`user/index`, as `pov sessions` shows it).
    #[arg(long, conflicts_with = "failed")]
    session: Option<String>,
    /// Every session with a noticed failure.
    #[arg(long)]
    failed: bool,
    /// Most sessions replayed (their transactions are held whole until
    /// the output is written); later matches are counted and left out.
    #[arg(long, default_value_t = DEFAULT_MAX_REPLAY_SESSIONS, value_name = "N")]
    max_sessions: usize,
    /// Most response body bytes held for the replay in all (128 MiB);
    /// later bodies are left out (heads and timings stay), with a warning.
    #[arg(long, default_value_t = DEFAULT_MAX_REPLAY_BYTES, value_name = "BYTES")]
    max_replay_bytes: usize,
    /// Most bytes of transactions kept on disk for the replays while the
    /// captures are read (4 GiB); beyond, transactions are kept without
    /// their bodies, with a warning and `counters.replay_store`.
    #[arg(long, default_value_t = pov::store::MAX_STORE_BYTES, value_name = "BYTES")]
    max_store_bytes: u64,
    /// Settings file.
    #[arg(short, long, value_name = "POV.TOML")]
    config: Option<PathBuf>,
    /// Show cookies, credentials and raw user keys.
    #[arg(long)]
    no_mask: bool,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct ReplaySendArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// The server to send to, `http://HOST:PORT` (the Host header becomes
    /// HOST:PORT).
    #[arg(long, required = true)]
    target: String,
    /// Pacing: 1 keeps the captured gaps between requests, 2 halves them,
    /// 0 sends as fast as the server answers.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Sessions replayed at once (each session's requests stay in order).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Send at most this many requests; the rest are reported as skipped.
    #[arg(long, default_value_t = 10_000)]
    max_requests: usize,
    /// Stop sending after this many seconds; the rest are skipped.
    #[arg(long, default_value_t = 600.0)]
    max_time: f64,
    /// Seconds to wait for a connection, and for each read of an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Write every request's comparison here (atomically).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Format of the -o file.
    #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
    format: FormatArg,
    /// Exit with code 3 when any status or body length differs.
    #[arg(long)]
    fail_on_diff: bool,
    /// Also send this captured header, which a safety rule would keep back:
    /// a routing header (X-Forwarded-For, Forwarded, Proxy-*, ...), one the
    /// captured Connection header names, or one credential header
    /// (X-Api-Key, Cookie, ...). Repeatable. docs/replay.md, "What is sent
    /// and what is not".
    #[arg(long = "keep-header", value_name = "NAME")]
    keep_header: Vec<String>,
    /// Send the captured credentials too: Authorization and headers named
    /// like a credential, captured cookie values, and requests with a
    /// secret parameter in the query or body (a login, a payment). Only
    /// against a server you control.
    #[arg(long)]
    with_credentials: bool,
}

#[derive(Args)]
struct ConfigArgs {
    /// Print the default pov.toml, with comments.
    #[arg(long)]
    print_default: bool,
    /// Check this file and print it as pov reads it (defaults filled in).
    #[arg(long, value_name = "POV.TOML")]
    check: Option<PathBuf>,
}

#[derive(Args)]
struct FlowsArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    /// Several files are merged by timestamp.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct TransactionsArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    /// Several files are merged by timestamp.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format (records come in request time order).
    #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
    format: FormatArg,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Show cookie values, credentials and other secrets instead of
    /// masking them.
    #[arg(long)]
    no_mask: bool,
    /// Settings file (its [privacy] section says what is masked).
    #[arg(short, long, value_name = "POV.TOML")]
    config: Option<PathBuf>,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    common: CommonArgs,
}

/// Limits of the HTTP layer.
#[derive(Args)]
struct HttpArgs {
    /// Decoded body bytes kept per message.
    #[arg(long, default_value_t = 256 << 10, value_name = "BYTES")]
    body_keep_bytes: usize,
    /// Largest request or response head.
    #[arg(long, default_value_t = 64 << 10, value_name = "BYTES")]
    max_head_bytes: usize,
    /// Most decoded bytes counted per body (decompression stops beyond).
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    max_decoded_bytes: u64,
    /// Largest decoded/wire ratio of a body (decompression bombs stop).
    #[arg(long, default_value_t = 1000, value_name = "RATIO")]
    max_decode_ratio: u64,
    /// Seconds a client waits before its close counts as a timeout (no
    /// response) rather than giving up (client abort).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    client_timeout: i64,
    /// Most requests waiting for responses on one connection; beyond, the
    /// oldest is given up.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_pending_requests: usize,
    /// Most finished transactions held to be written in request time
    /// order; beyond, the earliest are written early.
    #[arg(long, default_value_t = 65536, value_name = "N")]
    max_held_transactions: usize,
    /// Most bytes (kept bodies, heads) of finished transactions held for
    /// ordering; beyond, the earliest are written early.
    #[arg(long, default_value_t = 128 << 20, value_name = "BYTES")]
    max_held_bytes: usize,
}

impl HttpArgs {
    fn apply(&self, cfg: &mut PipelineConfig) {
        cfg.http.body_keep_bytes = self.body_keep_bytes;
        cfg.http.max_head_bytes = self.max_head_bytes.max(64);
        cfg.http.max_decoded_bytes = self.max_decoded_bytes;
        cfg.http.max_decode_ratio = self.max_decode_ratio.max(1);
        cfg.http.client_timeout = Dur::from_secs(self.client_timeout.max(0));
        cfg.http.max_pending = self.max_pending_requests.max(1);
        cfg.http.max_held = self.max_held_transactions.max(1);
        cfg.http.max_held_bytes = self.max_held_bytes;
    }
}

#[derive(Args)]
struct InfoArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = InfoFormat::Table)]
    format: InfoFormat,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InfoFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
    Jsonl,
    Csv,
    Parquet,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
            FormatArg::Parquet => Format::Parquet,
        }
    }
}

/// Limits shared by every command that reads captures. Each cap has a
/// counter in `pov info`.
#[derive(Args)]
struct CommonArgs {
    /// No progress display.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Most TCP connections tracked at once; the longest idle is evicted.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    max_connections: usize,
    /// Most out-of-order bytes held per connection direction.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    max_ooo_bytes: usize,
    /// Most out-of-order bytes held over all connections.
    #[arg(long, default_value_t = 512 << 20, value_name = "BYTES")]
    max_ooo_total: usize,
    /// Seconds without a packet after which a connection is closed.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    idle_timeout: i64,
    /// Most bytes of IP fragments pending reassembly.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    max_frag_bytes: usize,
    /// Most IP datagrams pending reassembly.
    #[arg(long, default_value_t = 16384, value_name = "N")]
    max_frag_datagrams: usize,
    /// Seconds after which an incomplete IP datagram is dropped.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    frag_timeout: i64,
    /// Most bytes held on behalf of the traffic over everything (open
    /// connections, out-of-order bytes, fragments, heads, kept bodies,
    /// waiting requests, transactions held for ordering, open sessions,
    /// replays); when full, each holder lets go as its own cap does and
    /// the records that lost something say `memory_budget`.
    #[arg(long, default_value_t = pov_capture::budget::DEFAULT_BUDGET, value_name = "BYTES")]
    memory_budget: usize,
    /// Threads that read, reassemble and parse (0: one per core). The
    /// outputs are the same whatever the number.
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Leave VLAN ids out of what tells connections apart (for a capture
    /// where each direction of a connection was mirrored on its own VLAN).
    /// By default two identical flows in different VLANs are two
    /// connections; tunnel identifiers always count.
    #[arg(long)]
    ignore_vlans: bool,
    /// Read only the packets this BPF expression keeps, as `tcpdump -r
    /// FILE EXPR` (needs the `live` feature: libpcap compiles it).
    #[arg(long, value_name = "BPF", value_parser = live::parse_filter)]
    filter: Option<live::Filter>,
}

impl CommonArgs {
    fn threads(&self) -> pov::parallel::Threads {
        let mut t = pov::parallel::Threads::default();
        if self.threads > 0 {
            t.threads = self.threads;
        }
        t
    }

    fn config(&self) -> PipelineConfig {
        let mut cfg = PipelineConfig::default();
        cfg.tcp.max_connections = self.max_connections.max(1);
        cfg.tcp.max_ooo_bytes = self.max_ooo_bytes;
        cfg.tcp.max_ooo_total = self.max_ooo_total;
        cfg.tcp.idle_timeout = Dur::from_secs(self.idle_timeout.max(1));
        cfg.decode.max_frag_bytes = self.max_frag_bytes;
        cfg.decode.max_frag_datagrams = self.max_frag_datagrams;
        cfg.decode.frag_timeout = Dur::from_secs(self.frag_timeout.max(1));
        cfg.decode.vlan_in_flow_key = !self.ignore_vlans;
        cfg.set_budget(pov_capture::Budget::new(self.memory_budget.max(1 << 20)));
        cfg.stop = signals::stop();
        cfg.filter = self.filter.clone();
        cfg
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = signals::install() {
        eprintln!("pov: warning: SIGINT and SIGTERM will not stop cleanly: {e}");
    }
    // Commands that stop cleanly on a first signal (their outputs are
    // dropped, or cut short on stdout); `config` and the sending part of
    // `replay send` exit at once.
    let _deferred = match &cli.command {
        Command::Config(_) | Command::Replay(ReplayCommand::Send(_)) => None,
        _ => Some(signals::defer()),
    };
    let result = match cli.command {
        Command::Flows(a) => cmd_flows(a),
        Command::Transactions(a) => cmd_transactions(a),
        Command::Info(a) => cmd_info(a),
        Command::Analyze(a) => cmd_analyze(a),
        Command::Users(a) => cmd_users(a, pov::users::View::Users),
        Command::Sessions(a) => cmd_users(a, pov::users::View::Sessions),
        Command::Pages(a) => cmd_users(a, pov::users::View::Pages),
        Command::Failures(a) => cmd_users(a, pov::users::View::Failures),
        Command::Config(a) => cmd_config(a),
        Command::Replay(ReplayCommand::Har(a)) => cmd_replay(a, false),
        Command::Replay(ReplayCommand::Html(a)) => cmd_replay(a, true),
        Command::Replay(ReplayCommand::Send(a)) => cmd_replay_send(a),
        Command::Synth(a) => synth::run(a),
        Command::Live(a) => live::run(a),
    };
    match (result, signals::requested()) {
        (Err(e), _) if e.is::<Interrupted>() => {
            eprintln!("pov: {e}");
            e.downcast_ref::<Interrupted>().map_or(ExitCode::from(2), Interrupted::exit_code)
        }
        (Err(e), Some(sig)) => {
            eprintln!("pov: interrupted by {}; stopped with: {e:#}", signals::name(sig));
            Interrupted::code(sig)
        }
        (Ok(_), Some(sig)) => {
            eprintln!("pov: interrupted by {} after the run was done; every output was written", signals::name(sig));
            Interrupted::code(sig)
        }
        (Ok(code), None) => code,
        (Err(e), None) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        (Err(e), None) => {
            eprintln!("pov: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A run stopped by SIGINT or SIGTERM: `main` prints it as the one line
/// that says what was written, and exits with 128 + the signal's number.
#[derive(Debug)]
struct Interrupted {
    signal: usize,
    /// What was written, for people.
    written: String,
}

impl Interrupted {
    fn code(signal: usize) -> ExitCode {
        ExitCode::from(u8::try_from(128 + signal.min(127)).unwrap_or(255))
    }

    fn exit_code(&self) -> ExitCode {
        Interrupted::code(self.signal)
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}; {}", signals::name(self.signal), self.written)
    }
}

impl std::error::Error for Interrupted {}

/// An [`Interrupted`] error if a signal asked to stop; `written` says what
/// was written by then.
fn check_stop(written: impl FnOnce() -> String) -> anyhow::Result<()> {
    match signals::requested() {
        Some(signal) => Err(Interrupted { signal, written: written() }.into()),
        None => Ok(()),
    }
}

const NOTHING_WRITTEN: fn() -> String = || "nothing written".to_string();

/// The error a writing closure returns when the pipeline stopped on a
/// signal ([`write_output`] turns it into [`Interrupted`]).
fn stopped_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "stopped by a signal")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Runs the pipeline over `inputs` with a progress display on a terminal,
/// and prints every input problem to stderr.
/// One pass over `inputs` through the sharded pipeline (HTTP parsed when
/// `http` is given) into `down`. For a later pass, `seen` is the first
/// pass's report: only the problems it did not have are printed and kept
/// in the returned report, for the caller to add to the first. An error is
/// `down`'s (an output it could not write), which ended the pass.
fn run_pass<D: pov::parallel::Downstream + ?Sized>(
    inputs: &mut Inputs,
    common: &CommonArgs,
    cfg: &PipelineConfig,
    http: Option<&pov_capture::http::HttpConfig>,
    down: &mut D,
    seen: Option<&RunReport>,
) -> io::Result<RunReport> {
    let (files, open_errors, total) = inputs.open();
    let mut bar = ProgressBar::new(!common.quiet && io::stderr().is_terminal());
    let report =
        pov::parallel::run(files, open_errors, cfg, http, common.threads(), total, down, &mut |p| bar.update(p));
    bar.clear();
    let mut report = report?;
    if let Some(seen) = seen {
        report.warnings.retain(|w| !seen.warnings.contains(w));
        report.errors.retain(|e| !seen.errors.contains(e));
    }
    if report.stopped {
        // Abandoned on a signal: its one line says it all.
        return Ok(report);
    }
    for w in &report.warnings {
        eprintln!("pov: warning: {w}");
    }
    for e in &report.errors {
        eprintln!("pov: error: {e}");
    }
    Ok(report)
}

/// The first (or only) pass over `inputs`, HTTP parsed with `cfg.http`.
fn run_http<D: pov::parallel::Downstream + ?Sized>(
    inputs: &mut Inputs,
    common: &CommonArgs,
    cfg: &PipelineConfig,
    down: &mut D,
) -> io::Result<RunReport> {
    run_pass(inputs, common, cfg, Some(&cfg.http), down, None)
}

fn exit_code(report: &RunReport) -> ExitCode {
    if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

fn cmd_flows(a: FlowsArgs) -> anyhow::Result<ExitCode> {
    let format = Format::from(a.format);
    let mut inputs = Inputs::once(a.files.clone());
    let report = write_output(a.output.as_deref(), format == Format::Parquet, |out| {
        let mut flows = pov::flows::FlowWriter::new(out, format)?;
        let report = run_pass(&mut inputs, &a.common, &a.common.config(), None, &mut flows, None)?;
        if report.stopped {
            return Err(stopped_error());
        }
        flows.finish()?;
        Ok(report)
    })?;
    Ok(finish_run(&report, a.common.quiet))
}

fn cmd_transactions(a: TransactionsArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = a.common.config();
    a.http.apply(&mut cfg);
    let pov_cfg = load_config(a.config.as_deref())?;
    let mask = pov::transactions::Masker::new(&pov_cfg.privacy, !a.no_mask);
    let format = Format::from(a.format);
    let mut inputs = Inputs::once(a.files.clone());
    let report = write_output(a.output.as_deref(), format == Format::Parquet, |out| {
        let mut writer = pov::transactions::TxWriter::new(out, format, mask)?;
        let report = run_http(&mut inputs, &a.common, &cfg, &mut writer)?;
        if report.stopped {
            return Err(stopped_error());
        }
        writer.finish()?;
        Ok(report)
    })?;
    Ok(finish_run(&report, a.common.quiet))
}

fn load_config(path: Option<&Path>) -> anyhow::Result<pov::config::PovConfig> {
    match path {
        Some(p) => pov::config::PovConfig::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Ok(pov::config::PovConfig::default()),
    }
}

fn cmd_users(a: UserArgs, view: pov::users::View) -> anyhow::Result<ExitCode> {
    let mut pov_cfg = load_config(a.config.as_deref())?;
    let mut cfg = a.common.config();
    a.http.apply(&mut cfg);
    let format = Format::from(a.format);
    let mask = !a.no_mask;
    let max_txs = a.max_session_transactions.max(1);
    if pov_cfg.pages.is_empty() {
        pov_cfg.pages = pov_sessions::config::default_pages();
    }
    let mut stage_report = None;
    let mut inputs = Inputs::once(a.files.clone());
    let report = write_output(a.output.as_deref(), format == Format::Parquet, |out| {
        let outputs = pov::users::Outputs::one(view, out, format)?;
        let mut stage = pov::users::UserStage::with_limits(&pov_cfg, mask, outputs, max_txs)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        stage.set_budget(cfg.budget());
        stage.set_user_spill(&std::env::temp_dir(), a.max_users_held);
        stage.set_include_robots(a.include_robots);
        let mut report = run_http(&mut inputs, &a.common, &cfg, &mut stage)?;
        if report.stopped {
            return Err(stopped_error());
        }
        let (outputs, r) = stage.finish()?;
        outputs.finish()?;
        report.budget = Some(report.budget_report(cfg.budget()));
        stage_report = Some(r);
        Ok(report)
    })?;
    if let (Some(r), false) = (&stage_report, a.common.quiet) {
        if r.sessions.session_tx_cap_drops > 0 {
            eprintln!(
                "pov: warning: {} transactions left out of sessions over the per-session cap (raise --max-session-transactions)",
                r.sessions.session_tx_cap_drops
            );
        }
        eprintln!(
            "pov: {} users ({} affected), {} sessions, {} pages; {} transactions with capture loss (never counted as failures)",
            r.users, r.users_affected, r.sessions.sessions, r.sessions.pages, r.capture_loss
        );
    }
    Ok(finish_run(&report, a.common.quiet))
}

/// Files, folders (their files, sorted) and globs in the file name.
fn expand_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .collect();
            v.sort();
            out.extend(v);
        } else if !p.exists() && (name.contains('*') || name.contains('?')) {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.file_name().and_then(|n| n.to_str()).is_some_and(|n| glob_match(name, n)))
                .collect();
            if v.is_empty() {
                anyhow::bail!("{}: no file matches", p.display());
            }
            v.sort();
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
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
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
    p[pi..].iter().all(|c| *c == '*')
}

fn cmd_analyze(a: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    // Every condition, its field and failure kind included, is checked
    // before anything is read or written.
    let conditions: Vec<pov::analyze::Condition> = a
        .fail_if
        .iter()
        .map(|c| pov::analyze::Condition::parse(c).and_then(|c| c.check().map(|()| c)).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let mut pov_cfg = load_config(a.config.as_deref())?;
    if pov_cfg.pages.is_empty() {
        pov_cfg.pages = pov_sessions::config::default_pages();
    }
    let files = expand_inputs(&a.inputs)?;
    // Earlier runs are read first: a bad one stops before the long part.
    let history = a.history.as_ref().map(|h| pov::analyze::read_history(h, &a.out)).transpose()?;
    let mut cfg = a.common.config();
    a.http.apply(&mut cfg);
    // Everything is written into a staging folder inside OUT and moved
    // into place at the end: an error or a signal leaves OUT as it was.
    let mut run = pov::analyze::RunDir::create(&a.out)?;
    // For the replays, every transaction is kept whole in the staging
    // folder as it finishes: the captures are read once.
    let mut inputs = Inputs::once(files);
    let store = (a.replays > 0).then(|| pov::store::TxStore::with_cap(run.staging(), a.max_store_bytes));
    cfg.store = store.clone();
    let mut pipe =
        pov::analyze::AnalyzePipeline::new(&run, &pov_cfg, &cfg.http, !a.no_mask, a.max_session_transactions.max(1))?;
    pipe.sink.set_user_spill(run.staging(), a.max_users_held);
    pipe.sink.set_include_robots(a.include_robots);
    // Sessions with a failure go to a spill file as they close, so the
    // replays of the most affected users (known at the end) are found
    // without holding them.
    let mask = !a.no_mask && pov_cfg.privacy.mask;
    let spill = if a.replays > 0 {
        let spill = pov::replay::Spill::create(&run.staging().join("replay-candidates.jsonl"))?;
        let spill = std::rc::Rc::new(std::cell::RefCell::new(spill));
        let limits = pov::replay::SelectLimits {
            masker: pov::replay::Masker::new(&pov_cfg.privacy, mask),
            max_sessions: DEFAULT_MAX_REPLAY_SESSIONS,
        };
        pipe.sink.set_tap(pov::replay::spilling_tap(std::rc::Rc::clone(&spill), limits));
        Some(spill)
    } else {
        None
    };
    let mut report = run_http(&mut inputs, &a.common, &cfg, &mut pipe.sink)?;
    check_stop(NOTHING_WRITTEN)?;
    let users = pipe.finish()?;
    report.budget = Some(report.budget_report(cfg.budget()));
    check_stop(NOTHING_WRITTEN)?;
    let imp = pov::analyze::impact(run.staging(), &pov_cfg)?;
    check_stop(NOTHING_WRITTEN)?;
    let mut summary = pov::analyze::Summary::new(inputs.paths(), &report, &users, imp, &pov_cfg.revenue.currency);
    if let Some(h) = history {
        summary = summary.with_history(h);
    }
    let mut replays_failed = false;
    if let (Some(spill), Some(store)) = (spill, &store)
        && !summary.top_affected_users.is_empty()
    {
        let masker = pov::replay::Masker::new(&pov_cfg.privacy, mask);
        let mut stats = None;
        let written = write_replays(&a, &run, (store, &cfg, &mut stats), &mut spill.borrow_mut(), &masker, &summary);
        if let (Some(s), Some(c)) = (stats, summary.counters.as_object_mut()) {
            c.insert("replay_store".into(), serde_json::to_value(s)?);
        }
        // The analysis stands without its replays: summary.json and
        // report.html are still written, and the exit code says 2.
        match written {
            Ok(r) => summary.replays = r,
            Err(e) if e.is::<Interrupted>() => return Err(e),
            Err(e) => {
                eprintln!("pov: error: no replays written: {e:#}");
                replays_failed = true;
            }
        }
    }
    // The store and the spill are not needed any more.
    drop(store);
    cfg.store = None;
    summary.write(&run)?;
    summary.write_report(&run)?;
    check_stop(NOTHING_WRITTEN)?;
    let mut names: Vec<String> = summary.replays.values().cloned().collect();
    names.extend(pov::analyze::FILES.iter().map(|f| f.to_string()));
    names.extend(["summary.json".to_string(), "report.html".to_string()]);
    run.publish(&names)?;
    check_stop(|| format!("the run was done: every output was written to {}", a.out.display()))?;
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    print_summary(&mut w, &summary, &a.out)?;
    w.flush()?;
    let mut code = finish_run(&report, a.common.quiet);
    let json = serde_json::to_value(&summary)?;
    let mut alert = false;
    for c in &conditions {
        if c.holds(&json).map_err(anyhow::Error::msg)? {
            eprintln!("pov: alert: {}", c.text);
            alert = true;
        }
    }
    if replays_failed {
        code = ExitCode::from(2);
    } else if alert && report.errors.is_empty() {
        code = ExitCode::from(3);
    }
    Ok(code)
}

/// HTML replays of the most affected users, in OUT/replays: user -> path
/// (relative to OUT), their transactions read from the run's store. Written
/// into the staging folder.
fn write_replays(
    a: &AnalyzeArgs,
    run: &pov::analyze::RunDir,
    (store, cfg, store_stats): (&pov::store::TxStore, &PipelineConfig, &mut Option<pov::store::StoreStats>),
    spill: &mut pov::replay::Spill,
    masker: &pov::replay::Masker,
    summary: &pov::analyze::Summary,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let users: Vec<String> = summary.top_affected_users.iter().take(a.replays).map(|u| u.user.clone()).collect();
    let sel = spill
        .select(&users.iter().cloned().collect(), DEFAULT_MAX_REPLAY_SESSIONS)
        .map_err(|e| anyhow::anyhow!("replay candidates: {e}"))?;
    let (keep, stats) = collect_transactions(store, &sel, DEFAULT_MAX_REPLAY_BYTES, cfg, a.common.quiet)?;
    *store_stats = Some(stats);
    let mut taken = std::collections::HashSet::new();
    let mut out = std::collections::BTreeMap::new();
    for u in &users {
        let sessions: Vec<&pov::replay::SelSession> = sel.sessions.iter().filter(|s| &s.user == u).collect();
        if sessions.is_empty() {
            continue;
        }
        let name = pov::analyze::replay_file_name(u, &taken);
        taken.insert(name.clone());
        let rel = format!("replays/{name}");
        let mut f = run.file(&rel)?;
        pov::replay::write_html(&keep, &sessions, masker, &mut f)?;
        f.commit()?;
        out.insert(u.clone(), rel);
    }
    Ok(out)
}

fn print_summary(w: &mut dyn Write, s: &pov::analyze::Summary, out: &Path) -> io::Result<()> {
    let span = match (s.capture_start, s.capture_end) {
        (Some(a), Some(b)) => format!("{:.0} s of traffic", b - a),
        _ => "no packets".into(),
    };
    writeln!(
        w,
        "{span}, {} HTTP transactions, {} bytes missing from the capture",
        s.transactions, s.capture_loss_bytes
    )?;
    writeln!(
        w,
        "users: {} ({} affected, {:.1} %); sessions: {} ({} affected)",
        s.users_total, s.users_affected, s.users_affected_pct, s.sessions_total, s.sessions_affected
    )?;
    let kinds: Vec<String> = s.failures_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(w, "failures: {}", if kinds.is_empty() { "none".into() } else { kinds.join(", ") })?;
    writeln!(
        w,
        "orders: {} worth {:.2} {}; revenue lost: {:.2} {} (95 % interval {:.2} to {:.2})",
        s.orders,
        s.revenue_realised,
        s.currency,
        s.revenue_lost.value,
        s.currency,
        s.revenue_lost.low,
        s.revenue_lost.high
    )?;
    if !s.top_failing_pages.is_empty() {
        writeln!(w, "top failing pages:")?;
        for (url, n, users) in s.top_failing_pages.iter().take(5) {
            writeln!(w, "  {n:>5} failures, {users:>4} users  {url}")?;
        }
    }
    if let Some(d) = &s.delta {
        writeln!(
            w,
            "since {}: affected users {:+} ({:+.2} points), failures {:+}, revenue lost {:+.2}",
            d.since, d.users_affected, d.users_affected_pct, d.failures, d.revenue_lost
        )?;
    }
    writeln!(w, "outputs: {}/{{{}, summary.json, report.html}}", out.display(), pov::analyze::FILES.join(", "))?;
    if !s.replays.is_empty() {
        writeln!(w, "replays of the {} most affected users: {}/replays/", s.replays.len(), out.display())?;
    }
    Ok(())
}

/// The selected sessions and their transactions, whole, from one pass over
/// the captures: the user stage finds the sessions while every transaction
/// is stored whole in `store_dir`, and the selected ones are read back.
fn collect_replay(
    (inputs, store_dir): (&mut Inputs, &Path),
    selector: pov::replay::Selector,
    pov_cfg: &pov::config::PovConfig,
    mask: bool,
    limits: ReplayLimits,
    cfg: &PipelineConfig,
    common: &CommonArgs,
) -> anyhow::Result<(pov::replay::Selection, pov::replay::Keep, RunReport)> {
    let (max_sessions, max_body_bytes) = (limits.max_sessions, limits.max_body_bytes);
    use std::cell::RefCell;
    use std::rc::Rc;
    let selection = Rc::new(RefCell::new(pov::replay::Selection::default()));
    let outputs = pov::users::Outputs::<io::Sink> { users: None, sessions: None, pages: None, failures: None };
    let mut stage = pov::users::UserStage::new(pov_cfg, mask, outputs).map_err(|e| anyhow::anyhow!(e))?;
    stage.set_budget(cfg.budget());
    let select = pov::replay::SelectLimits { masker: pov::replay::Masker::new(&pov_cfg.privacy, mask), max_sessions };
    stage.set_tap(pov::replay::selecting_tap(selector, Rc::clone(&selection), select));
    let store = pov::store::TxStore::with_cap(store_dir, limits.max_store_bytes);
    let cfg = &PipelineConfig { store: Some(store.clone()), ..cfg.clone() };
    let report = run_http(inputs, common, cfg, &mut stage)?;
    check_stop(NOTHING_WRITTEN)?;
    stage.finish()?;
    let sel = std::mem::take(&mut *selection.borrow_mut());
    if sel.over_cap > 0 && !common.quiet {
        eprintln!(
            "pov: warning: {} more sessions matched; only the first {max_sessions} are replayed (raise --max-sessions)",
            sel.over_cap
        );
    }
    if sel.sessions.is_empty() {
        return Ok((sel, pov::replay::Keep::new(Default::default(), 0), report));
    }
    let (keep, _) = collect_transactions(&store, &sel, max_body_bytes, cfg, common.quiet)?;
    Ok((sel, keep, report))
}

/// The selected transactions, whole, from the run's store.
fn collect_transactions(
    store: &pov::store::TxStore,
    sel: &pov::replay::Selection,
    max_body_bytes: usize,
    cfg: &PipelineConfig,
    quiet: bool,
) -> anyhow::Result<(pov::replay::Keep, pov::store::StoreStats)> {
    let mut keep = pov::replay::Keep::new(sel.txs.clone(), max_body_bytes).with_budget(cfg.budget());
    let wanted = sel.txs.keys().copied().collect();
    let stats = store
        .read(&wanted, |tx| keep.keep(tx))
        .map_err(|e| anyhow::anyhow!("the transactions kept for replays: {e}"))?;
    if stats.bodies_left_out > 0 && !quiet {
        eprintln!(
            "pov: warning: {} transactions were kept for replays without their bodies, the store being full ({} bytes; raise --max-store-bytes)",
            stats.bodies_left_out, stats.bytes
        );
    }
    if keep.bodies_dropped > 0 && !quiet {
        eprintln!(
            "pov: warning: {} response bodies left out of the replay over --max-replay-bytes ({} bytes kept)",
            keep.bodies_dropped, keep.body_bytes
        );
    }
    if keep.txs_dropped > 0 && !quiet {
        eprintln!(
            "pov: warning: {} transactions left out of the replay: the memory budget was full (raise --memory-budget)",
            keep.txs_dropped
        );
    }
    Ok((keep, stats))
}

/// How much a replay holds.
#[derive(Clone, Copy)]
struct ReplayLimits {
    max_sessions: usize,
    max_body_bytes: usize,
    max_store_bytes: u64,
}

/// The sessions `a` selects, with their transactions whole (kept in the
/// temporary folder while the captures are read).
fn select_sessions(
    a: &SelectArgs,
) -> anyhow::Result<(pov::replay::Selection, pov::replay::Keep, RunReport, pov::config::PovConfig, bool)> {
    select_sessions_spooling_in(a, &std::env::temp_dir())
}

/// As [`select_sessions`], keeping the transactions in `store_dir`.
fn select_sessions_spooling_in(
    a: &SelectArgs,
    store_dir: &Path,
) -> anyhow::Result<(pov::replay::Selection, pov::replay::Keep, RunReport, pov::config::PovConfig, bool)> {
    // A first signal stops the reading cleanly (also for `replay send`,
    // whose sending part is not covered).
    let _deferred = signals::defer();
    let selector = match (&a.user, &a.session, a.failed) {
        (Some(u), _, _) => pov::replay::Selector::Users([u.clone()].into()),
        (_, Some(s), _) => pov::replay::Selector::Session(s.clone()),
        (_, _, true) => pov::replay::Selector::Failed,
        _ => anyhow::bail!("say which sessions: --user U, --session S or --failed"),
    };
    let mut pov_cfg = load_config(a.config.as_deref())?;
    if pov_cfg.pages.is_empty() {
        pov_cfg.pages = pov_sessions::config::default_pages();
    }
    let mut inputs = Inputs::once(expand_inputs(&a.inputs)?);
    let mut cfg = a.common.config();
    a.http.apply(&mut cfg);
    let mask = !a.no_mask && pov_cfg.privacy.mask;
    let (sel, keep, report) = collect_replay(
        (&mut inputs, store_dir),
        selector,
        &pov_cfg,
        mask,
        ReplayLimits {
            max_sessions: a.max_sessions,
            max_body_bytes: a.max_replay_bytes,
            max_store_bytes: a.max_store_bytes,
        },
        &cfg,
        &a.common,
    )?;
    if sel.sessions.is_empty() {
        anyhow::bail!("no session matches");
    }
    Ok((sel, keep, report, pov_cfg, mask))
}

fn cmd_replay(a: ReplayArgs, html: bool) -> anyhow::Result<ExitCode> {
    // The transactions are kept next to the output while the captures are
    // read (same disk, same permissions).
    let dir = match a.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (sel, keep, report, pov_cfg, mask) = select_sessions_spooling_in(&a.select, &dir)?;
    let masking = pov::replay::Masker::new(&pov_cfg.privacy, mask);
    let mut f = output::AtomicFile::create(&a.output)?;
    if html {
        pov::replay::write_html(&keep, &sel.sessions.iter().collect::<Vec<_>>(), &masking, &mut f)?;
    } else {
        serde_json::to_writer_pretty(&mut f, &pov::replay::har(&keep, &sel, &masking))?;
    }
    check_stop(NOTHING_WRITTEN)?;
    f.commit()?;
    if !a.select.common.quiet {
        eprintln!(
            "pov: {} sessions, {} pages, {} transactions -> {}",
            sel.sessions.len(),
            sel.pages.len(),
            keep.kept.len(),
            a.output.display()
        );
    }
    Ok(finish_run(&report, a.select.common.quiet))
}

/// `http://HOST:PORT` -> (socket address, Host header value). Requests go
/// to the target's own paths, so a path, query or user name in it is
/// refused rather than silently dropped.
fn parse_target(t: &str) -> anyhow::Result<(std::net::SocketAddr, String)> {
    use std::net::ToSocketAddrs;
    if t.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://")) {
        anyhow::bail!("--target {t}: pov re-sends plain HTTP/1.1; point it at an http:// listener");
    }
    let rest = t.get(..7).filter(|p| p.eq_ignore_ascii_case("http://")).map_or(t, |_| &t[7..]);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        anyhow::bail!("--target {t}: only http://HOST:PORT; the captured paths are sent as they are");
    }
    if rest.contains('@') || rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        anyhow::bail!("--target {t}: only http://HOST:PORT (no user name, no blanks)");
    }
    let authority = rest;
    if authority.is_empty() {
        anyhow::bail!("--target {t}: no host");
    }
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("--target {t}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--target {t}: no address"))?;
    Ok((addr, authority.to_string()))
}

fn cmd_replay_send(a: ReplaySendArgs) -> anyhow::Result<ExitCode> {
    let (target, host) = parse_target(&a.target)?;
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !positive(a.timeout) || !positive(a.max_time) {
        anyhow::bail!("--timeout and --max-time must be positive");
    }
    for h in &a.keep_header {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            anyhow::bail!("--keep-header {h:?}: not a header name");
        }
        if pov::resend::never_forwarded(h) {
            anyhow::bail!(
                "--keep-header {h}: pov always rewrites Host and Accept-Encoding, rebuilds the framing and never \
                 forwards hop-by-hop headers"
            );
        }
    }
    let (sel, keep, report, pov_cfg, mask) = select_sessions(&a.select)?;
    let cfg = pov::resend::SendConfig {
        host,
        speed: a.speed,
        concurrency: a.concurrency.max(1),
        max_requests: a.max_requests,
        max_time: Duration::from_secs_f64(a.max_time),
        timeout: Duration::from_secs_f64(a.timeout),
        keep_headers: a.keep_header.clone(),
        with_credentials: a.with_credentials,
        ..pov::resend::SendConfig::new(target)
    };
    let quiet = a.select.common.quiet || !io::stderr().is_terminal();
    let progress = move |n: usize, total: usize| {
        if !quiet && (n == total || n.is_multiple_of(50)) {
            eprint!("\rpov: sent {n}/{total}");
        }
    };
    let (records, sum) =
        pov::resend::resend(&keep, &sel, &cfg, &pov_cfg, mask, &progress).map_err(|e| anyhow::anyhow!(e))?;
    if !quiet {
        eprintln!();
    }
    if let Some(path) = &a.output {
        let format = Format::from(a.format);
        write_output(Some(path), format == Format::Parquet, |out| {
            let mut w = output::RecordWriter::<_, pov::resend::SendRecord>::new(out, format)?;
            for r in &records {
                w.write(r)?;
            }
            w.finish()?;
            Ok(RunReport::default())
        })?;
    }
    let mut w = io::stdout().lock();
    writeln!(
        w,
        "{} sessions, {} requests to {}: {} sent ({} answered), {} skipped, {} withheld, {} not sendable (request \
         head lost)",
        sel.sessions.len(),
        sum.requests,
        a.target,
        sum.sent,
        sum.answered,
        sum.skipped,
        sum.withheld,
        sum.head_lost
    )?;
    writeln!(
        w,
        "compared with the capture: {} same, {} with another status, {} with another body length",
        sum.same, sum.status_differs, sum.length_differs
    )?;
    for (kind, (seen, again)) in &sum.failures {
        writeln!(w, "  {kind}: {again} of {seen} happened again")?;
    }
    if sum.not_replayable > 0 {
        writeln!(
            w,
            "  {} failures re-sending cannot show (user gave up, page or connection level, not sent)",
            sum.not_replayable
        )?;
    }
    if sum.withheld > 0 {
        writeln!(w, "withheld by the safety rules (docs/replay.md, \"What is sent and what is not\"):")?;
        for (why, n) in &sum.withheld_by {
            writeln!(w, "  {why} ({n})")?;
        }
        let mut t = output::Table::new(&["session", "method", "url", "why"]);
        let withheld: Vec<&pov::resend::SendRecord> = records.iter().filter(|r| r.outcome == "withheld").collect();
        for r in withheld.iter().take(50) {
            t.row(vec![r.session.clone(), r.method.clone(), r.url.clone(), r.note.clone().unwrap_or_default()]);
        }
        t.write(&mut w)?;
        if withheld.len() > 50 {
            writeln!(w, "... {} more (all in -o FILE)", withheld.len() - 50)?;
        }
    }
    if !sum.stripped.is_empty() {
        let list: Vec<String> = sum.stripped.iter().map(|(h, n)| format!("{h} ({n})")).collect();
        writeln!(w, "kept back from the requests sent (--keep-header NAME, --with-credentials): {}", list.join(", "))?;
    }
    let differing: Vec<&pov::resend::SendRecord> =
        records.iter().filter(|r| r.status_differs || r.length_differs).collect();
    if !differing.is_empty() {
        let mut t = output::Table::new(<pov::resend::SendRecord as output::Record>::COLUMNS);
        for r in differing.iter().take(50) {
            t.row(output::Record::cells(*r));
        }
        t.write(&mut w)?;
        if differing.len() > 50 {
            writeln!(w, "... {} more (all in -o FILE)", differing.len() - 50)?;
        }
    }
    let code = finish_run(&report, a.select.common.quiet);
    if a.fail_on_diff && !differing.is_empty() {
        return Ok(ExitCode::from(3));
    }
    Ok(code)
}

fn cmd_config(a: ConfigArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = &a.check {
        let cfg = pov::config::PovConfig::load(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: ok ({} page rules, {} error-page rules, {} soft-error rules)",
            p.display(),
            if cfg.pages.is_empty() { pov_sessions::config::default_pages().len() } else { cfg.pages.len() },
            cfg.failures.error_pages.len(),
            cfg.failures.soft_error.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if a.print_default {
        print!("{}", pov::config::DEFAULT_TOML);
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::bail!("say --print-default or --check FILE")
}

/// Runs `write` into `path` (atomically: nothing appears unless it
/// succeeds) or into stdout.
fn write_output(
    path: Option<&Path>,
    binary: bool,
    write: impl FnOnce(&mut dyn Write) -> io::Result<RunReport>,
) -> anyhow::Result<RunReport> {
    // AtomicFile's errors name the file.
    match path {
        Some(path) => {
            let mut f = output::AtomicFile::create(path)?;
            let written = write(&mut f);
            // Stopped by a signal: the temporary file goes with `f`.
            check_stop(NOTHING_WRITTEN)?;
            let report = written?;
            f.commit()?;
            Ok(report)
        }
        None if binary && io::stdout().is_terminal() => {
            anyhow::bail!("Parquet is binary: write it to a file with -o FILE, or into a pipe")
        }
        None => {
            let mut w = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
            let written = write(&mut w);
            let flushed = w.flush();
            check_stop(|| "the records on stdout are cut short".to_string())?;
            let report = written?;
            flushed?;
            Ok(report)
        }
    }
}

/// Warns about every cap that acted, and picks the exit code.
fn finish_run(report: &RunReport, quiet: bool) -> ExitCode {
    if !quiet {
        for w in report.cap_warnings() {
            eprintln!("pov: warning: {w}");
        }
    }
    exit_code(report)
}

/// Counts transactions without keeping them (for `pov info`).
struct CountTx;

impl pov::parallel::Downstream for CountTx {
    type Item = ();
    type Prep = pov::parallel::Discard;
    fn preparer(&self) -> pov::parallel::Discard {
        pov::parallel::Discard
    }
    fn on_transaction(&mut self, _tx: ()) -> pov::parallel::Flow {
        pov::parallel::GO_ON
    }
}

fn cmd_info(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = a.common.config();
    a.http.apply(&mut cfg);
    let report = run_http(&mut Inputs::once(a.files.clone()), &a.common, &cfg, &mut CountTx)?;
    check_stop(NOTHING_WRITTEN)?;
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    match a.format {
        InfoFormat::Table => info::write_table(&mut w, &report)?,
        InfoFormat::Json => {
            serde_json::to_writer_pretty(&mut w, &report)?;
            writeln!(w)?;
        }
    }
    w.flush()?;
    Ok(finish_run(&report, a.common.quiet))
}

/// A one-line progress display on stderr, redrawn at most 5 times a second.
struct ProgressBar {
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl ProgressBar {
    fn new(enabled: bool) -> ProgressBar {
        ProgressBar { enabled, started: Instant::now(), last: None, drawn: false }
    }

    fn update(&mut self, p: Progress) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.started) < Duration::from_millis(500)
            || self.last.is_some_and(|l| now.duration_since(l) < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(now);
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let mb = p.bytes_read as f64 / 1e6;
        let line = match p.bytes_total {
            Some(t) if t > 0 => {
                let pct = (p.bytes_read as f64 / t as f64 * 100.0).min(100.0);
                format!("{pct:5.1}%  {mb:.0}/{:.0} MB  {} packets  {:.0} MB/s", t as f64 / 1e6, p.packets, mb / secs)
            }
            _ => format!("{mb:.0} MB  {} packets  {:.0} MB/s", p.packets, mb / secs),
        };
        eprint!("\r\x1b[2K{line}");
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}
