//! The `pov` command line: a thin shell over the `pov` library.
//!
//! Parses flags (clap, args.rs), calls the library (`pov::run` has what
//! each command does), prints records, problems and summaries, and picks
//! the exit code: 0 on success (also when the output pipe closes early), 2
//! when any input could not be read or an output could not be written
//! (every error printed means a non-zero exit), 3 when an alert condition
//! holds or a replay differs (`--fail-if`, `--fail-on-diff`), 130/143 when
//! SIGINT/SIGTERM stopped the run (see signals.rs).
#![deny(unsafe_code)]

use std::io::{self, IsTerminal, Write};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The mimalloc whose option numbers follow (`MI_MALLOC_VERSION` / 100:
/// v3.3). Built with another, pov leaves mimalloc's options as they are.
const MIMALLOC_MINOR: std::ffi::c_int = 303;
/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, which
/// libmimalloc-sys does not name).
const PURGE_DELAY: std::ffi::c_int = 15;
/// How long freed memory stays with mimalloc before it goes back to the
/// system, in milliseconds. At the default (1 s) a request-heavy run kept
/// some 50 MiB more resident than at 100 ms, for no speed
/// (docs/PERFORMANCE.md).
const PURGE_DELAY_MS: std::ffi::c_long = 100;
/// mimalloc's `mi_option_destroy_on_exit`, in the same enumeration.
const DESTROY_ON_EXIT: std::ffi::c_int = 22;
/// Its value by which mimalloc leaves its exit handler out. That handler
/// gives the freed pages back to the system (a forced collection, for a
/// mimalloc inside a library that is unloaded), which the system does
/// anyway when the process ends: from the last output in place to the
/// process gone, a run on the 1.5 GB server-side capture took 8.5 to 18.1
/// ms with it and 5.9 to 9.4 ms without (docs/PERFORMANCE.md).
const SKIP_EXIT_HANDLER: std::ffi::c_long = 2;
/// What the CLI sets, unless the variable named is set: (variable,
/// option, value).
const OPTIONS: [(&str, std::ffi::c_int, std::ffi::c_long); 2] = [
    ("MIMALLOC_PURGE_DELAY", PURGE_DELAY, PURGE_DELAY_MS),
    ("MIMALLOC_DESTROY_ON_EXIT", DESTROY_ON_EXIT, SKIP_EXIT_HANDLER),
];

/// Gives memory back sooner than mimalloc's default does, and not once
/// more at exit. `MIMALLOC_PURGE_DELAY` and `MIMALLOC_DESTROY_ON_EXIT`
/// still decide when set.
fn tune_allocator() {
    #[allow(unsafe_code)]
    // SAFETY: no argument, an integer out.
    if unsafe { libmimalloc_sys::mi_version() } / 100 != MIMALLOC_MINOR {
        return;
    }
    for (name, option, value) in OPTIONS {
        if std::env::var_os(name).is_none() {
            #[allow(unsafe_code)]
            // SAFETY: the call takes an option number and an integer, no
            // pointer; mimalloc's options are plain integers it reads when
            // it purges and at exit, and this runs before any other
            // thread starts.
            unsafe {
                libmimalloc_sys::mi_option_set(option, value);
            }
        }
    }
}

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pov::config::PovConfig;
use pov::output::{self, Format};
use pov::pipeline::{Inputs, RunReport};
use pov::run::{Reading, StageOptions};

mod args;
mod console;
mod info;
mod live;
mod signals;
mod synth;

use args::*;
use console::Console;

fn main() -> ExitCode {
    tune_allocator();
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
        Command::Find(a) => cmd_find(a),
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

/// `r`, a stop the library obeyed said as [`Interrupted`] (`written`: what
/// was written by then).
fn obey<T>(r: io::Result<T>, written: impl FnOnce() -> String) -> anyhow::Result<T> {
    if let Err(e) = &r
        && e.kind() == io::ErrorKind::Interrupted
    {
        check_stop(written)?;
    }
    Ok(r?)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// How a command reads its captures: its limits, threads and console.
fn reading<'c>(common: &CommonArgs, http: Option<&HttpArgs>, console: &'c mut Console) -> Reading<'c> {
    let mut cfg = common.config();
    if let Some(h) = http {
        h.apply(&mut cfg);
    }
    Reading { cfg, threads: common.threads(), watch: console }
}

fn exit_code(report: &RunReport) -> ExitCode {
    if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

fn cmd_flows(a: FlowsArgs) -> anyhow::Result<ExitCode> {
    let format = Format::from(a.format);
    let inputs = Inputs::once(a.files.clone());
    let mut console = Console::new(a.common.quiet);
    let mut reading = reading(&a.common, None, &mut console);
    let report = write_output(a.output.as_deref(), format == Format::Parquet, |out| {
        pov::run::flows(&inputs, out, format, &mut reading)
    })?;
    Ok(finish_run(&report, a.common.quiet))
}

fn cmd_transactions(a: TransactionsArgs) -> anyhow::Result<ExitCode> {
    let pov_cfg = load_config(a.config.as_deref())?;
    let mask = pov::transactions::Masker::new(&pov_cfg.privacy, !a.no_mask);
    let format = Format::from(a.format);
    let inputs = Inputs::once(a.files.clone());
    let mut console = Console::new(a.common.quiet);
    let mut reading = reading(&a.common, Some(&a.http), &mut console);
    let customer = pov::transactions::Customer::new(&pov_cfg, &a.files).map_err(anyhow::Error::msg)?;
    let failed = a.failed_connections.as_deref();
    let report = write_output(a.output.as_deref(), format == Format::Parquet, |out| {
        pov::run::packet_stage(&inputs, out, format, mask, customer, failed, &mut reading)
    })?;
    Ok(finish_run(&report, a.common.quiet))
}

fn cmd_find(a: FindArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(a.config.as_deref())?;
    let time = |t: &Option<String>, end: bool| t.as_deref().map(|t| pov::find::parse_time(t, end)).transpose();
    let cookie = match a.cookie.as_deref() {
        Some(c) => match c.split_once('=') {
            Some((n, v)) if !n.is_empty() && !v.is_empty() => Some((n.to_string(), v.to_string())),
            _ => anyhow::bail!("--cookie {c:?}: give it as NAME=VALUE"),
        },
        None => None,
    };
    let url = match (a.order, a.url) {
        (Some(_), Some(_)) => anyhow::bail!("--order and --url both search URLs: give one"),
        (o, u) => o.or(u),
    };
    let q = pov::find::Query {
        user: a.user,
        cookie,
        login: a.login,
        client: a.client,
        url,
        from: time(&a.from, false).map_err(anyhow::Error::msg)?,
        to: time(&a.to, true).map_err(anyhow::Error::msg)?,
    };
    if !q.names_someone() {
        anyhow::bail!("name the customer: --user, --cookie, --login, --client, --order or --url");
    }
    let found = pov::find::find(&a.dataset, &q, &cfg.privacy.hash_salt, !a.no_mask && cfg.privacy.mask)?;
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    if a.json {
        serde_json::to_writer_pretty(&mut w, &found)?;
        writeln!(w)?;
    } else {
        pov::find::write_text(&found, &mut w)?;
    }
    w.flush()?;
    if let (Some(kind), Some(out)) = (a.replay, a.output.as_deref()) {
        find_replay(&found, kind, out, &cfg, !a.no_mask, &a.common, &a.http)?;
    }
    // 1 when nothing was found, as grep does.
    Ok(if found.sessions.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The replay of what `pov find` found, from the captures that hold it.
fn find_replay(
    found: &pov::find::Found,
    kind: ReplayKind,
    out: &Path,
    cfg: &PovConfig,
    mask: bool,
    common: &CommonArgs,
    http: &HttpArgs,
) -> anyhow::Result<()> {
    let users: std::collections::BTreeSet<String> = found
        .sessions
        .iter()
        .filter_map(|s| s.session.get("user").and_then(|u| u.as_str()).map(str::to_owned))
        .collect();
    if users.is_empty() {
        anyhow::bail!("no session found: no replay written");
    }
    let mut present: Vec<PathBuf> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for c in found.sessions.iter().flat_map(|s| &s.captures) {
        if c.present {
            present.push(PathBuf::from(&c.capture.path));
        } else {
            let where_ = if c.capture.path.is_empty() { c.capture.name.clone() } else { c.capture.path.clone() };
            gone.push(where_);
        }
    }
    present.sort();
    present.dedup();
    gone.sort();
    gone.dedup();
    for g in &gone {
        eprintln!("pov: the capture {g} is gone: what it held of these sessions cannot be replayed");
    }
    if present.is_empty() {
        anyhow::bail!("no capture holding these sessions is left: no replay written");
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let limits = pov::replay::ReplayLimits {
        max_sessions: pov::replay::MAX_SESSIONS,
        max_body_bytes: pov::replay::MAX_BODY_BYTES,
        max_store_bytes: pov::store::MAX_STORE_BYTES,
        include_robots: false,
    };
    let mut console = Console::new(common.quiet);
    let mut reading = reading(common, Some(http), &mut console);
    let inputs = Inputs::once(present);
    let selector = pov::replay::Selector::Users(users.into_iter().collect());
    let r = obey(pov::run::replay(&inputs, &dir, selector, cfg, mask, &limits, &mut reading), NOTHING_WRITTEN)?;
    if r.selection.sessions.is_empty() {
        anyhow::bail!("the captures were read but hold none of these sessions (another pov.toml?)");
    }
    let masking = pov::replay::Masker::new(&cfg.privacy, r.mask);
    let mut f = output::AtomicFile::create(out)?;
    match kind {
        ReplayKind::Html => {
            pov::replay::write_html(&r.keep, &r.selection.sessions.iter().collect::<Vec<_>>(), &masking, &mut f)?
        }
        ReplayKind::Har => serde_json::to_writer_pretty(&mut f, &pov::replay::har(&r.keep, &r.selection, &masking))?,
    }
    check_stop(NOTHING_WRITTEN)?;
    f.commit()?;
    if !common.quiet {
        eprintln!(
            "pov: {} sessions, {} transactions, read from {} captures -> {}",
            r.selection.sessions.len(),
            r.keep.kept.len(),
            inputs.paths().len(),
            out.display()
        );
    }
    Ok(())
}

fn load_config(path: Option<&Path>) -> anyhow::Result<PovConfig> {
    match path {
        Some(p) => PovConfig::load(p).map_err(anyhow::Error::msg),
        None => Ok(PovConfig::default()),
    }
}

fn cmd_users(a: UserArgs, view: pov::users::View) -> anyhow::Result<ExitCode> {
    let pov_cfg = load_config(a.config.as_deref())?;
    let format = Format::from(a.format);
    let opts = StageOptions {
        mask: !a.no_mask,
        max_session_txs: a.max_session_transactions,
        max_users_held: a.max_users_held,
        identity: a.identity.caps(),
        include_robots: a.include_robots,
    };
    let inputs = Inputs::once(a.files.clone());
    let mut console = Console::new(a.common.quiet);
    let mut reading = reading(&a.common, Some(&a.http), &mut console);
    let mut stage_report = None;
    let report = write_output(a.output.as_deref(), format == Format::Parquet, |out| {
        let (report, stage) = pov::run::users(&inputs, view, out, format, &pov_cfg, &opts, &mut reading)?;
        stage_report = Some(stage);
        Ok(report)
    })?;
    if let (Some(r), false) = (&stage_report, a.common.quiet) {
        for w in stage_warnings(&serde_json::to_value(&r.sessions)?) {
            eprintln!("pov: warning: {w}");
        }
        eprintln!(
            "pov: {} users ({} affected), {} sessions, {} pages; {} transactions with capture loss (never counted as failures)",
            r.users, r.users_affected, r.sessions.sessions, r.sessions.pages, r.capture_loss
        );
    }
    Ok(finish_run(&report, a.common.quiet))
}

fn cmd_analyze(a: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    // Every condition, its field and failure kind included, is checked
    // before anything is read or written.
    let conditions: Vec<pov::analyze::Condition> = a
        .fail_if
        .iter()
        .map(|c| pov::analyze::Condition::parse(c).and_then(|c| c.check().map(|()| c)).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let job = pov::run::AnalyzeJob {
        config: load_config(a.config.as_deref())?,
        inputs: if a.from_transactions.is_empty() {
            pov::run::expand_inputs(&a.inputs)?
        } else {
            pov::run::expand_inputs(&a.from_transactions)?
        },
        from_transactions: !a.from_transactions.is_empty(),
        dataset: a
            .dataset
            .as_ref()
            .map(|d| pov::dataset::Target::new(d, &a.probe))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        history_days: a.history_days,
        out: a.out.clone(),
        stage: StageOptions {
            mask: !a.no_mask,
            max_session_txs: a.max_session_transactions,
            max_users_held: a.max_users_held,
            identity: a.identity.caps(),
            include_robots: a.include_robots,
        },
        max_store_bytes: a.max_store_bytes,
        history: a.history.clone(),
        replays: a.replays,
    };
    let mut console = Console::new(a.common.quiet);
    let done = obey(pov::run::analyze(&job, &mut reading(&a.common, Some(&a.http), &mut console)), NOTHING_WRITTEN)?;
    check_stop(|| format!("the run was done: every output was written to {}", a.out.display()))?;
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    done.summary.write_text(&mut w, &a.out)?;
    w.flush()?;
    let mut code = finish_run(&done.report, a.common.quiet);
    let json = serde_json::to_value(&done.summary)?;
    if !a.common.quiet {
        for w in stage_warnings(&json["counters"]["users"]["sessions"]) {
            eprintln!("pov: warning: {w}");
        }
    }
    let mut alert = false;
    for c in &conditions {
        if c.holds(&json).map_err(anyhow::Error::msg)? {
            eprintln!("pov: alert: {}", c.text);
            alert = true;
        }
    }
    if done.replays_failed {
        code = ExitCode::from(2);
    } else if alert && done.report.errors.is_empty() {
        code = ExitCode::from(3);
    }
    Ok(code)
}

/// The sessions `a` selects, with their transactions whole (kept in
/// `store_dir` while the captures are read), and the configuration.
fn select_sessions(a: &SelectArgs, store_dir: &Path) -> anyhow::Result<(pov::replay::Replay, PovConfig)> {
    // A first signal stops the reading cleanly (also for `replay send`,
    // whose sending part is not covered).
    let _deferred = signals::defer();
    let selector = match (&a.user, &a.session, a.failed) {
        (Some(u), _, _) => pov::replay::Selector::Users([u.clone()].into()),
        (_, Some(s), _) => pov::replay::Selector::Session(s.clone()),
        (_, _, true) => pov::replay::Selector::Failed,
        _ => anyhow::bail!("say which sessions: --user U, --session S or --failed"),
    };
    let pov_cfg = load_config(a.config.as_deref())?;
    let inputs = Inputs::once(pov::run::expand_inputs(&a.inputs)?);
    let limits = pov::replay::ReplayLimits {
        max_sessions: a.max_sessions,
        max_body_bytes: a.max_replay_bytes,
        max_store_bytes: a.max_store_bytes,
        include_robots: a.include_robots,
    };
    let mut console = Console::new(a.common.quiet);
    let mut reading = reading(&a.common, Some(&a.http), &mut console);
    let replay = pov::run::replay(&inputs, store_dir, selector, &pov_cfg, !a.no_mask, &limits, &mut reading);
    let replay = obey(replay, NOTHING_WRITTEN)?;
    Ok((replay, pov_cfg))
}

/// A replay that selected nothing: says so (and how many robots'
/// sessions were left out, if any). The exit code is the run's (2) when an
/// input could not be read, else 1, as grep's when nothing is found.
fn unmatched(r: &pov::replay::Replay, quiet: bool) -> ExitCode {
    let code = finish_run(&r.report, quiet);
    if !r.report.errors.is_empty() {
        return code;
    }
    if !quiet {
        let robots = &r.robots;
        if robots.sessions > 0 && !robots.included {
            let (n, were) = if robots.sessions == 1 { ("session", "was") } else { ("sessions", "were") };
            eprintln!(
                "pov: no session matches; {} {n} of robots and load generators ({} failures) {were} left out \
                 (--include-robots replays them too)",
                robots.sessions, robots.failures
            );
        } else {
            eprintln!("pov: no session matches");
        }
    }
    ExitCode::from(1)
}

fn cmd_replay(a: ReplayArgs, html: bool) -> anyhow::Result<ExitCode> {
    // The transactions are kept next to the output while the captures are
    // read (same disk, same permissions).
    let dir = match a.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (r, pov_cfg) = select_sessions(&a.select, &dir)?;
    if r.selection.sessions.is_empty() {
        return Ok(unmatched(&r, a.select.common.quiet));
    }
    let masking = pov::replay::Masker::new(&pov_cfg.privacy, r.mask);
    let mut f = output::AtomicFile::create(&a.output)?;
    if html {
        pov::replay::write_html(&r.keep, &r.selection.sessions.iter().collect::<Vec<_>>(), &masking, &mut f)?;
    } else {
        serde_json::to_writer_pretty(&mut f, &pov::replay::har(&r.keep, &r.selection, &masking))?;
    }
    check_stop(NOTHING_WRITTEN)?;
    f.commit()?;
    if !a.select.common.quiet {
        eprintln!(
            "pov: {} sessions, {} pages, {} transactions -> {}",
            r.selection.sessions.len(),
            r.selection.pages.len(),
            r.keep.kept.len(),
            a.output.display()
        );
    }
    Ok(finish_run(&r.report, a.select.common.quiet))
}

fn cmd_replay_send(a: ReplaySendArgs) -> anyhow::Result<ExitCode> {
    let (target, host) = pov::resend::parse_target(&a.target).map_err(anyhow::Error::msg)?;
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !positive(a.timeout) || !positive(a.max_time) {
        anyhow::bail!("--timeout and --max-time must be positive");
    }
    for h in &a.keep_header {
        pov::resend::check_keep_header(h).map_err(anyhow::Error::msg)?;
    }
    let (r, pov_cfg) = select_sessions(&a.select, &std::env::temp_dir())?;
    if r.selection.sessions.is_empty() {
        return Ok(unmatched(&r, a.select.common.quiet));
    }
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
        pov::resend::resend(&r.keep, &r.selection, &cfg, &pov_cfg, r.mask, &progress).map_err(anyhow::Error::msg)?;
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
    pov::resend::write_text(&mut io::stdout().lock(), (r.selection.sessions.len(), &a.target), &records, &sum)?;
    let code = finish_run(&r.report, a.select.common.quiet);
    if a.fail_on_diff && pov::resend::differing(&records).next().is_some() {
        return Ok(ExitCode::from(3));
    }
    Ok(code)
}

fn cmd_config(a: ConfigArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = &a.check {
        let cfg = PovConfig::load(p).map_err(anyhow::Error::msg)?;
        println!(
            "{}: ok ({} page rules, {} error-page rules, {} soft-error rules)",
            p.display(),
            cfg.pages.len(),
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

/// The user stage's caps that acted, from its sessionizer's counters
/// (`users.sessions` of summary.json), each naming its flag.
fn stage_warnings(sessions: &serde_json::Value) -> Vec<String> {
    let n = |k: &str| sessions[k].as_u64().unwrap_or(0);
    let mut w = Vec::new();
    if n("session_tx_cap_drops") > 0 {
        w.push(format!(
            "{} transactions left out of sessions over the per-session cap (raise --max-session-transactions)",
            n("session_tx_cap_drops")
        ));
    }
    if n("waits_refused") > 0 {
        w.push(format!(
            "{} requests without an identifier were not let wait for a cookie, with too many waiting already, and \
             were taken as their address and User-Agent's (raise --max-waiting-requests)",
            n("waits_refused")
        ));
    }
    if n("recent_forgotten") > 0 {
        w.push(format!(
            "{} entries of what attributes failed connection attempts were forgotten, over the per-address cap; \
             attempts reported late from those addresses may go to a later connection's user or to the address alone \
             (raise --max-recent-per-address)",
            n("recent_forgotten")
        ));
    }
    if n("connections_forgotten") > 0 {
        w.push(format!(
            "the users of {} connections were forgotten, over the cap; later requests on them are identified as on \
             new connections (raise --max-remembered-connections)",
            n("connections_forgotten")
        ));
    }
    w
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

fn cmd_info(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let mut console = Console::new(a.common.quiet);
    let inputs = Inputs::once(a.files.clone());
    let report = obey(pov::run::info(&inputs, &mut reading(&a.common, Some(&a.http), &mut console)), NOTHING_WRITTEN)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn mimalloc_options_are_set_by_the_numbers_of_the_mimalloc_built_in() {
        // A newer mimalloc may number its options otherwise: this fails
        // first, and MIMALLOC_MINOR changes once the numbers are checked
        // against its mimalloc.h.
        // SAFETY: no argument, an integer out.
        assert_eq!(unsafe { libmimalloc_sys::mi_version() } / 100, MIMALLOC_MINOR);
        tune_allocator();
        for (name, option, value) in OPTIONS {
            if std::env::var_os(name).is_none() {
                // SAFETY: an option number in, an integer out.
                assert_eq!(unsafe { libmimalloc_sys::mi_option_get(option) }, value, "{name}");
            }
        }
    }
}
