//! The command line's flags (clap): what each command takes, and how the
//! limits shared by every command become the pipeline's configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pov::output::Format;
use pov::pipeline::PipelineConfig;
use pov_capture::Dur;

use crate::{live, signals, synth};

/// pov: the customer's point of view, from the wire.
#[derive(Parser)]
#[command(name = "pov", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// What happened to one customer: their sessions, pages and failures
    /// across a dataset (`pov analyze --dataset`), found by pseudonym,
    /// session cookie, sign-in name, address, order id or URL (docs/fleet.md).
    Find(FindArgs),
    /// Generate synthetic web-shop traffic with an exact answer key.
    Synth(synth::SynthArgs),
    /// Capture from an interface into rotated pcapng files (needs the
    /// `live` feature; docs/live.md).
    Live(live::LiveArgs),
}

#[derive(Args)]
pub struct FindArgs {
    /// The dataset (`pov analyze --dataset DIR`).
    pub dataset: PathBuf,
    /// The user's pseudonym, as the outputs show it.
    #[arg(long)]
    pub user: Option<String>,
    /// A session or persistent cookie as the browser sent it,
    /// `NAME=VALUE` (hashed as the runs hashed it: pov.toml's `[privacy]
    /// hash_salt`).
    #[arg(long, value_name = "NAME=VALUE")]
    pub cookie: Option<String>,
    /// A sign-in name (hashed likewise).
    #[arg(long)]
    pub login: Option<String>,
    /// A client address.
    #[arg(long, value_name = "ADDRESS")]
    pub client: Option<String>,
    /// An order id: text in a request's URL, referrer or redirect.
    #[arg(long, value_name = "TEXT")]
    pub order: Option<String>,
    /// Text in a request's URL, referrer or redirect, or a page's URL.
    #[arg(long, value_name = "TEXT")]
    pub url: Option<String>,
    /// From this time: epoch seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM or
    /// YYYY-MM-DDTHH:MM:SS (UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// To this time (a date alone: its end).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// The runs' settings file (its `[privacy] hash_salt` hashes
    /// `--cookie` and `--login`).
    #[arg(short, long, value_name = "POV.TOML")]
    pub config: Option<PathBuf>,
    /// The runs were `--no-mask`: names are raw keys.
    #[arg(long)]
    pub no_mask: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the sessions found as a replay (`html` or `har`), read
    /// from the capture files of the nights' manifests that hold them (and
    /// only those); a capture that is gone is named.
    #[arg(long, value_name = "html|har", requires = "output")]
    pub replay: Option<ReplayKind>,
    /// The replay's file (written atomically).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// A replay's format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReplayKind {
    /// One self-contained HTML page.
    Html,
    /// A HAR 1.2 file.
    Har,
}

#[derive(Args)]
pub struct UserArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    /// Several files are merged by timestamp.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Settings file (users, sessions, pages, failures, revenue, privacy).
    #[arg(short, long, value_name = "POV.TOML")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Show raw user keys (cookie values), sign-in names and masked
    /// parameters.
    #[arg(long)]
    pub no_mask: bool,
    /// Most transactions kept per session; beyond, they are counted and
    /// left out.
    #[arg(long, default_value_t = pov::users::MAX_SESSION_TXS, value_name = "N")]
    pub max_session_transactions: usize,
    /// Most users held in memory: their totals, and each map of what is
    /// remembered of users seen (session counts, each address's user,
    /// persistent cookies, sign-in names, replaced cookies). Beyond, they
    /// are written to sorted runs in the temporary folder (totals are
    /// merged at the end, and users then come out in order of their key).
    #[arg(long, default_value_t = pov::users::MAX_USERS_HELD, value_name = "N")]
    pub max_users_held: usize,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Keep robots and load generators (the `[robots]` rules) among users;
    /// by default their sessions are left out.
    #[arg(long)]
    pub include_robots: bool,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Capture files, folders (every file in them) or globs (`*` and `?` in
    /// the file name); all are read as one capture, merged by timestamp.
    #[arg(required_unless_present = "from_transactions")]
    pub inputs: Vec<PathBuf>,
    /// Run only the customer stage (users, sessions, failures, impact,
    /// report) on the transaction records of the packet stage (`pov
    /// transactions --format parquet`, with `--failed-connections`): files,
    /// folders or globs (`parts/*.parquet`), merged by capture time
    /// (repeatable; docs/fleet.md).
    #[arg(long, value_name = "GLOB", conflicts_with = "inputs")]
    pub from_transactions: Vec<PathBuf>,
    /// Output folder (created if needed; files are replaced atomically).
    #[arg(long, default_value = "pov-report")]
    pub out: PathBuf,
    /// Settings file (users, sessions, pages, failures, revenue, privacy).
    #[arg(short, long, value_name = "POV.TOML")]
    pub config: Option<PathBuf>,
    /// Show raw user keys and secrets in the outputs.
    #[arg(long)]
    pub no_mask: bool,
    /// Most transactions kept per session.
    #[arg(long, default_value_t = pov::users::MAX_SESSION_TXS, value_name = "N")]
    pub max_session_transactions: usize,
    /// Most users held in memory: their totals, and each map of what is
    /// remembered of users seen (session counts, each address's user,
    /// persistent cookies, sign-in names, replaced cookies). Beyond, they
    /// are written to sorted runs in the staging folder (totals are merged
    /// at the end, and users.parquet then lists users in order of their
    /// key).
    #[arg(long, default_value_t = pov::users::MAX_USERS_HELD, value_name = "N")]
    pub max_users_held: usize,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Most bytes of transactions kept on disk for the replays while the
    /// captures are read (4 GiB); beyond, transactions are kept without
    /// their bodies, with a warning and `counters.replay_store`.
    #[arg(long, default_value_t = pov::store::MAX_STORE_BYTES, value_name = "BYTES", value_parser = bytes_u64)]
    pub max_store_bytes: u64,
    /// Exit with code 3 when a summary field passes a threshold, e.g.
    /// `users_affected_pct > 2` or `failures_by_kind.server_error >= 10`
    /// (repeatable: any one is enough). For cron alerting.
    #[arg(long, value_name = "CONDITION")]
    pub fail_if: Vec<String>,
    /// Folder of earlier runs (each a folder with its summary.json), or a
    /// dataset (`--dataset`): adds their numbers and the change since the
    /// latest one; from a dataset, also the trend per day over every probe
    /// (docs/fleet.md).
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// Days of trend drawn from a dataset given as `--history`.
    #[arg(long, default_value_t = pov::dataset::TREND_DAYS, value_name = "N")]
    pub history_days: usize,
    /// Also add the run to this dataset: Parquet tables partitioned by day
    /// and probe (`DIR/TABLE/date=YYYY-MM-DD/probe=NAME/part-0.parquet`),
    /// the night's summary and report, and a manifest of its captures; a
    /// night run again replaces its partitions (docs/fleet.md).
    #[arg(long, value_name = "DIR")]
    pub dataset: Option<PathBuf>,
    /// The probe the run is filed under in the dataset.
    #[arg(long, value_name = "NAME", default_value = pov::dataset::DEFAULT_PROBE)]
    pub probe: String,
    /// Write an HTML replay (replays/USER.html, linked from report.html)
    /// for this many of the most affected users; 0 writes none. The
    /// captures are still read once: transactions are kept on disk while
    /// they are read (`--max-store-bytes`).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub replays: usize,
    /// Keep robots and load generators (the `[robots]` rules) among users,
    /// affected users and revenue; by default they are only reported apart
    /// (summary.json `robots`).
    #[arg(long)]
    pub include_robots: bool,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Subcommand)]
pub enum ReplayCommand {
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
pub struct ReplayArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// The file to write (atomically).
    #[arg(short, long, required = true)]
    pub output: PathBuf,
}

/// Which sessions to replay, from which captures.
#[derive(Args)]
pub struct SelectArgs {
    /// Capture files, folders or globs, read as one capture.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Every session of this user (the pseudonym `pov users` shows, or the
    /// raw key with --no-mask).
    #[arg(long, conflicts_with_all = ["session", "failed"])]
    pub user: Option<String>,
    /// One session (`user/index`, as `pov sessions` shows it).
    #[arg(long, conflicts_with = "failed")]
    pub session: Option<String>,
    /// Every session with a noticed failure.
    #[arg(long)]
    pub failed: bool,
    /// Most sessions replayed (their transactions are held whole until
    /// the output is written); later matches are counted and left out.
    #[arg(long, default_value_t = pov::replay::MAX_SESSIONS, value_name = "N")]
    pub max_sessions: usize,
    /// Most response body bytes held for the replay in all (128 MiB);
    /// later bodies are left out (heads and timings stay), with a warning.
    #[arg(long, default_value_t = pov::replay::MAX_BODY_BYTES, value_name = "BYTES", value_parser = bytes_usize)]
    pub max_replay_bytes: usize,
    /// Most bytes of transactions kept on disk for the replays while the
    /// captures are read (4 GiB); beyond, transactions are kept without
    /// their bodies, with a warning and `counters.replay_store`.
    #[arg(long, default_value_t = pov::store::MAX_STORE_BYTES, value_name = "BYTES", value_parser = bytes_u64)]
    pub max_store_bytes: u64,
    /// Robots' and load generators' sessions (the `[robots]` rules) may be
    /// replayed too; by default they are left out, as from users.
    #[arg(long)]
    pub include_robots: bool,
    /// Settings file.
    #[arg(short, long, value_name = "POV.TOML")]
    pub config: Option<PathBuf>,
    /// Show cookies, credentials and raw user keys.
    #[arg(long)]
    pub no_mask: bool,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct ReplaySendArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// The server to send to, `http://HOST:PORT` (the Host header becomes
    /// HOST:PORT).
    #[arg(long, required = true)]
    pub target: String,
    /// Pacing: 1 keeps the captured gaps between requests, 2 halves them,
    /// 0 sends as fast as the server answers.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Sessions replayed at once (each session's requests stay in order).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Send at most this many requests; the rest are reported as skipped.
    #[arg(long, default_value_t = 10_000)]
    pub max_requests: usize,
    /// Stop sending after this many seconds; the rest are skipped.
    #[arg(long, default_value_t = 600.0)]
    pub max_time: f64,
    /// Seconds to wait for a connection, and for each read of an answer.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Write every request's comparison here (atomically).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Format of the -o file.
    #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
    pub format: FormatArg,
    /// Exit with code 3 when any status or body length differs.
    #[arg(long)]
    pub fail_on_diff: bool,
    /// Also send this captured header, which a safety rule would keep back:
    /// a routing header (X-Forwarded-For, Forwarded, Proxy-*, ...), one the
    /// captured Connection header names, or one credential header
    /// (X-Api-Key, Cookie, ...). Repeatable. docs/replay.md, "What is sent
    /// and what is not".
    #[arg(long = "keep-header", value_name = "NAME")]
    pub keep_header: Vec<String>,
    /// Send the captured credentials too: Authorization and headers named
    /// like a credential, captured cookie values, and requests with a
    /// secret parameter in the query or body (a login, a payment). Only
    /// against a server you control.
    #[arg(long)]
    pub with_credentials: bool,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Print the default pov.toml, with comments.
    #[arg(long)]
    pub print_default: bool,
    /// Check this file and print it as pov reads it (defaults filled in).
    #[arg(long, value_name = "POV.TOML")]
    pub check: Option<PathBuf>,
}

#[derive(Args)]
pub struct FlowsArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    /// Several files are merged by timestamp.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct TransactionsArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    /// Several files are merged by timestamp.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format (records come in request time order).
    #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
    pub format: FormatArg,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Show cookie values, credentials and other secrets instead of
    /// masking them.
    #[arg(long)]
    pub no_mask: bool,
    /// Settings file (its `[privacy]` section says what is masked; its
    /// `[users]` and `[revenue]` sections what the customer stage's columns
    /// read: use the same file for `pov analyze --from-transactions`).
    #[arg(short, long, value_name = "POV.TOML")]
    pub config: Option<PathBuf>,
    /// Also write the connection attempts that failed before any HTTP to
    /// this Parquet file, for `pov analyze --from-transactions`.
    #[arg(long, value_name = "FILE")]
    pub failed_connections: Option<PathBuf>,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The library's limits, which the flags' defaults are.
fn defaults() -> PipelineConfig {
    PipelineConfig::default()
}

/// Whole seconds of `d`.
fn secs(d: Dur) -> i64 {
    d.as_secs_f64() as i64
}

/// The user stage's caps on what identifies users outside the memory
/// budget.
#[derive(Args)]
pub struct IdentityArgs {
    /// Most requests without an identifier (no session cookie, header,
    /// query id or sign-in) waiting at once for a cookie from their
    /// address and User-Agent, each holding its transaction for up to
    /// `join_window_secs`. Beyond, a request is taken at once as that
    /// address and User-Agent's (`users.sessions.waits_refused`).
    #[arg(long, default_value_t = pov_sessions::MAX_WAITING, value_name = "N")]
    pub max_waiting_requests: usize,
    /// Most entries kept per client address of what attributes failed
    /// connection attempts to users (the first request of each recent
    /// connection, the users recently active). Beyond, the oldest is
    /// forgotten (`users.sessions.recent_forgotten`).
    #[arg(long, default_value_t = pov_sessions::MAX_RECENT_PER_ADDRESS, value_name = "N")]
    pub max_recent_per_address: usize,
    /// Most connections whose user is remembered (for their later
    /// requests, kept for the session timeout). Beyond, the quarter used
    /// least recently is forgotten (`users.sessions.connections_forgotten`).
    #[arg(long, default_value_t = pov_sessions::MAX_REMEMBERED_CONNECTIONS, value_name = "N")]
    pub max_remembered_connections: usize,
}

impl IdentityArgs {
    /// The caps as the sessionizer takes them.
    pub fn caps(&self) -> pov_sessions::IdentityCaps {
        pov_sessions::IdentityCaps {
            max_waiting: self.max_waiting_requests,
            max_recent_per_address: self.max_recent_per_address,
            max_remembered_connections: self.max_remembered_connections,
        }
    }
}

/// Limits of the HTTP layer.
#[derive(Args)]
pub struct HttpArgs {
    /// Decoded body bytes kept per message.
    #[arg(long, default_value_t = defaults().http.body_keep_bytes, value_name = "BYTES", value_parser = bytes_usize)]
    pub body_keep_bytes: usize,
    /// Largest request or response head.
    #[arg(long, default_value_t = defaults().http.max_head_bytes, value_name = "BYTES", value_parser = bytes_usize)]
    pub max_head_bytes: usize,
    /// Most decoded bytes counted per body (decompression stops beyond).
    #[arg(long, default_value_t = defaults().http.max_decoded_bytes, value_name = "BYTES", value_parser = bytes_u64)]
    pub max_decoded_bytes: u64,
    /// Largest decoded/wire ratio of a body (decompression bombs stop).
    #[arg(long, default_value_t = defaults().http.max_decode_ratio, value_name = "RATIO")]
    pub max_decode_ratio: u64,
    /// Seconds a client waits before its close counts as a timeout (no
    /// response) rather than giving up (client abort).
    #[arg(long, default_value_t = secs(defaults().http.client_timeout), value_name = "SECS")]
    pub client_timeout: i64,
    /// Most requests waiting for responses on one connection; beyond, the
    /// oldest is given up.
    #[arg(long, default_value_t = defaults().http.max_pending, value_name = "N")]
    pub max_pending_requests: usize,
    /// Most finished transactions held to be written in request time
    /// order; beyond, the earliest are written early.
    #[arg(long, default_value_t = defaults().http.max_held, value_name = "N")]
    pub max_held_transactions: usize,
    /// Most bytes (kept bodies, heads) of finished transactions held for
    /// ordering; beyond, the earliest are written early.
    #[arg(long, default_value_t = defaults().http.max_held_bytes, value_name = "BYTES", value_parser = bytes_usize)]
    pub max_held_bytes: usize,
    /// Seconds an unfinished transaction holds later ones back from being
    /// written in request time order; beyond, they are written without it
    /// and it comes out late (`http.order_wait_lapses`).
    #[arg(long, default_value_t = secs(defaults().http.max_order_wait), value_name = "SECS")]
    pub max_order_wait: i64,
    /// TLS key log (NSS format, as SSLKEYLOGFILE writes it) to decrypt
    /// HTTPS with; repeatable. pcapng Decryption Secrets Blocks in the
    /// inputs are used too. A key log is a secret: nothing of it is
    /// written to any output.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
}

impl HttpArgs {
    pub fn apply(&self, cfg: &mut PipelineConfig) {
        cfg.http.body_keep_bytes = self.body_keep_bytes;
        cfg.http.max_head_bytes = self.max_head_bytes.max(64);
        cfg.http.max_decoded_bytes = self.max_decoded_bytes;
        cfg.http.max_decode_ratio = self.max_decode_ratio.max(1);
        cfg.http.client_timeout = Dur::from_secs(self.client_timeout.max(0));
        cfg.http.max_pending = self.max_pending_requests.max(1);
        cfg.http.max_held = self.max_held_transactions.max(1);
        cfg.http.max_held_bytes = self.max_held_bytes;
        cfg.http.max_order_wait = Dur::from_secs(self.max_order_wait.max(0));
        cfg.keylogs = self.keylog.clone();
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// Capture files (pcap or pcapng, optionally gzipped); `-` reads stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = InfoFormat::Table)]
    pub format: InfoFormat,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
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
pub struct CommonArgs {
    /// No progress display.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Most TCP connections tracked at once; the longest idle is evicted.
    #[arg(long, default_value_t = defaults().tcp.max_connections, value_name = "N")]
    pub max_connections: usize,
    /// Most out-of-order bytes held per connection direction.
    #[arg(long, default_value_t = defaults().tcp.max_ooo_bytes, value_name = "BYTES", value_parser = bytes_usize)]
    pub max_ooo_bytes: usize,
    /// Most out-of-order bytes held over all connections.
    #[arg(long, default_value_t = defaults().tcp.max_ooo_total, value_name = "BYTES", value_parser = bytes_usize)]
    pub max_ooo_total: usize,
    /// Seconds without a packet after which a connection is closed.
    #[arg(long, default_value_t = secs(defaults().tcp.idle_timeout), value_name = "SECS")]
    pub idle_timeout: i64,
    /// Most bytes of IP fragments pending reassembly.
    #[arg(long, default_value_t = defaults().decode.max_frag_bytes, value_name = "BYTES", value_parser = bytes_usize)]
    pub max_frag_bytes: usize,
    /// Most IP datagrams pending reassembly.
    #[arg(long, default_value_t = defaults().decode.max_frag_datagrams, value_name = "N")]
    pub max_frag_datagrams: usize,
    /// Seconds after which an incomplete IP datagram is dropped.
    #[arg(long, default_value_t = secs(defaults().decode.frag_timeout), value_name = "SECS")]
    pub frag_timeout: i64,
    /// Most bytes held on behalf of the traffic over everything (open
    /// connections, out-of-order bytes, fragments, heads, kept bodies,
    /// waiting requests, transactions held for ordering, open sessions,
    /// replays); when full, each holder lets go as its own cap does and
    /// the records that lost something say `memory_budget`.
    #[arg(long, default_value_t = pov_capture::budget::DEFAULT_BUDGET, value_name = "BYTES", value_parser = bytes_usize)]
    pub memory_budget: usize,
    /// Threads that read, reassemble and parse (0: one per core). The
    /// outputs are the same whatever the number.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// Leave VLAN ids out of what tells connections apart (for a capture
    /// where each direction of a connection was mirrored on its own VLAN).
    /// By default two identical flows in different VLANs are two
    /// connections; tunnel identifiers always count.
    #[arg(long)]
    pub ignore_vlans: bool,
    /// Read only the packets this BPF expression keeps, as `tcpdump -r
    /// FILE EXPR` (needs the `live` feature: libpcap compiles it).
    #[arg(long, value_name = "BPF", value_parser = live::parse_filter)]
    pub filter: Option<live::Filter>,
}

impl CommonArgs {
    pub fn threads(&self) -> pov::parallel::Threads {
        let mut t = pov::parallel::Threads::default();
        if self.threads > 0 {
            t.threads = self.threads;
        }
        t
    }

    pub fn config(&self) -> PipelineConfig {
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

/// A byte count given as a number with an optional unit (`4096`, `64KiB`,
/// `512MiB`, `1GiB`: powers of 1024), for every `BYTES` flag.
fn bytes_u64(s: &str) -> Result<u64, String> {
    pov_capture::units::parse_bytes(s)
}

/// As [`bytes_u64`], for a count kept as `usize`.
fn bytes_usize(s: &str) -> Result<usize, String> {
    usize::try_from(bytes_u64(s)?).map_err(|_| format!("'{s}' is too large here"))
}
