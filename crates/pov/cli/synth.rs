//! `pov synth`: synthetic shop traffic and its answer key; `pov synth
//! hostile`: captures shaped to make pov spend time or memory.

use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use pov_synth::hostile::{HostileClass, generate_hostile};
use pov_synth::{CaptureFormat, Profile, SynthConfig};

/// Arguments of `pov synth`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SynthArgs {
    #[command(subcommand)]
    command: Option<SynthCommand>,
    /// Number of users.
    #[arg(long, default_value_t = 100)]
    users: u64,
    /// Seed; the same seed and options give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Capture to write (`.pcapng` writes pcapng, anything else pcap).
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Answer key (JSON) to write.
    #[arg(long, required = true)]
    truth: Option<PathBuf>,
    /// Preset: `default` (a few faults, clean capture), `clean` (no faults),
    /// `lossy` (faults plus loss, retransmissions, reordering, duplicates and
    /// packets the capture missed), `shared` (every customer behind one of a
    /// few shared addresses with one User-Agent, half with an analytics
    /// cookie, one arriving every 20 s), `robots` (default plus a crawler and
    /// a load generator).
    #[arg(long, value_enum, default_value_t = ProfileArg::Default)]
    profile: ProfileArg,
    /// Session cookie the shop sets.
    #[arg(long, value_enum, default_value_t = CookieArg::Sid)]
    cookie: CookieArg,
    /// Mean new users per second (default 0.5; 0.05 with `--profile
    /// shared`).
    #[arg(long)]
    rate: Option<f64>,
    /// Search-engine crawlers beside the customers (keyed `robot:
    /// crawler`).
    #[arg(long, value_name = "N")]
    crawlers: Option<u32>,
    /// Load generators beside the customers: one address, a new session
    /// cookie every few pages, machine-rate pages (keyed `robot:
    /// load_generator`).
    #[arg(long, value_name = "N")]
    load_generators: Option<u32>,
    /// Session cookies each load generator goes through.
    #[arg(long, default_value_t = 200, value_name = "N")]
    load_identities: u32,
    /// Scale of body sizes (1.0 realistic, smaller for small samples).
    #[arg(long, default_value_t = 1.0)]
    body_scale: f64,
    /// Tag every frame with this 802.1Q VLAN id.
    #[arg(long)]
    vlan: Option<u16>,
    /// Start time, seconds since the epoch (default 2026-11-02T02:00:00Z).
    #[arg(long)]
    start: Option<i64>,
    /// Write nanosecond timestamps in classic pcap.
    #[arg(long)]
    nanos: bool,
    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum SynthCommand {
    /// Hostile traffic: one attack on pov's time or memory per class, at a
    /// chosen scale (see docs/synth.md and benches/hostile).
    Hostile(HostileArgs),
}

/// Arguments of `pov synth hostile`.
#[derive(Args)]
struct HostileArgs {
    /// The attack.
    #[arg(long, required_unless_present = "list",
          value_parser = clap::builder::PossibleValuesParser::new(HostileClass::ALL.map(HostileClass::name)))]
    class: Option<String>,
    /// How many of the class's units (messages, requests, pages, users...);
    /// default: the smaller of the benchmark's two scales.
    #[arg(long, value_name = "N")]
    scale: Option<u64>,
    /// Capture to write (`.pcapng` writes pcapng, anything else pcap).
    #[arg(long, required_unless_present = "list")]
    out: Option<PathBuf>,
    /// List the classes: name, benchmark scale, and whether a failed
    /// session is there to replay (tab-separated).
    #[arg(long)]
    list: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Default,
    Clean,
    Lossy,
    Shared,
    Robots,
}

#[derive(Clone, Copy, ValueEnum)]
enum CookieArg {
    Sid,
    #[value(name = "JSESSIONID")]
    Jsessionid,
    #[value(name = "PHPSESSID")]
    Phpsessid,
}

/// A writer that fails once SIGINT or SIGTERM asked to stop, so generation
/// ends at its next write and its temporary files are removed (`main`
/// then exits 130 or 143).
struct StopWriter<W>(W);

impl<W: Write> Write for StopWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if crate::signals::requested().is_some() {
            // Not `ErrorKind::Interrupted`: `write_all` would retry it
            // forever.
            return Err(io::Error::other("stopped by a signal"));
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// After a failed generation: an interrupted run says so (nothing was
/// written), any other error is itself.
fn stopped_or(e: anyhow::Error) -> anyhow::Error {
    match crate::check_stop(crate::NOTHING_WRITTEN) {
        Err(stop) => stop,
        Ok(()) => e,
    }
}

/// A temporary path next to `path`, renamed over it when complete.
fn temp_for(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    dir.join(format!(".{name}.tmp.{}", std::process::id()))
}

/// Runs `pov synth hostile`.
fn run_hostile(a: HostileArgs) -> anyhow::Result<ExitCode> {
    if a.list {
        let mut out = io::stdout().lock();
        for c in HostileClass::ALL {
            writeln!(
                out,
                "{}\t{}\t{}",
                c.name(),
                c.bench_scale(),
                if c.has_failed_session() { "failed" } else { "-" }
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(name), Some(path)) = (a.class, a.out) else {
        anyhow::bail!("--class and --out are required");
    };
    let class = HostileClass::from_name(&name).ok_or_else(|| anyhow::anyhow!("no hostile class `{name}`"))?;
    let scale = a.scale.unwrap_or(class.bench_scale());
    let tmp = temp_for(&path);
    let result = (|| -> anyhow::Result<()> {
        let file = fs::File::create(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let out = BufWriter::with_capacity(1 << 20, StopWriter(file));
        let (w, _) = generate_hostile(class, scale, CaptureFormat::from_path(&path), out)?;
        w.into_inner().map_err(|e| e.into_error())?.0.sync_all()?;
        fs::rename(&tmp, &path)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(stopped_or(e));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pov synth`.
pub fn run(a: SynthArgs) -> anyhow::Result<ExitCode> {
    if let Some(SynthCommand::Hostile(h)) = a.command {
        return run_hostile(h);
    }
    let (Some(out), Some(truth)) = (a.out, a.truth) else {
        anyhow::bail!("--out and --truth are required");
    };
    let mut cfg =
        SynthConfig { users: a.users, seed: a.seed, body_scale: a.body_scale, vlan: a.vlan, ..SynthConfig::default() };
    match a.profile {
        ProfileArg::Default => Profile::Default.apply(&mut cfg),
        ProfileArg::Clean => Profile::Clean.apply(&mut cfg),
        ProfileArg::Lossy => Profile::Lossy.apply(&mut cfg),
        ProfileArg::Shared => Profile::Shared.apply(&mut cfg),
        ProfileArg::Robots => Profile::Robots.apply(&mut cfg),
    }
    if let Some(r) = a.rate {
        cfg.arrival_rate = r;
    }
    if let Some(n) = a.crawlers {
        cfg.robots.crawlers = n;
    }
    if let Some(n) = a.load_generators {
        cfg.robots.load_generators = n;
    }
    if !cfg.robots.is_none() {
        cfg.robots.load_identities = a.load_identities;
    }
    cfg.cookie_name = match a.cookie {
        CookieArg::Sid => "sid",
        CookieArg::Jsessionid => "JSESSIONID",
        CookieArg::Phpsessid => "PHPSESSID",
    }
    .into();
    if let Some(s) = a.start {
        cfg.start_ns = s.saturating_mul(1_000_000_000);
    }
    cfg.format = match CaptureFormat::from_path(&out) {
        CaptureFormat::Pcap if a.nanos => CaptureFormat::PcapNs,
        f => f,
    };
    let (tmp_cap, tmp_key) = (temp_for(&out), temp_for(&truth));
    let started = Instant::now();
    let result = (|| -> anyhow::Result<pov_synth::key::Totals> {
        let cap = BufWriter::with_capacity(
            1 << 20,
            StopWriter(fs::File::create(&tmp_cap).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?),
        );
        let key = BufWriter::with_capacity(
            1 << 20,
            StopWriter(fs::File::create(&tmp_key).map_err(|e| anyhow::anyhow!("{}: {e}", truth.display()))?),
        );
        let totals = pov_synth::generate(&cfg, cap, key)?;
        fs::rename(&tmp_cap, &out)?;
        fs::rename(&tmp_key, &truth)?;
        Ok(totals)
    })();
    let totals = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&tmp_cap);
            let _ = fs::remove_file(&tmp_key);
            return Err(stopped_or(e));
        }
    };
    if !a.quiet && io::stderr().is_terminal() {
        let secs = started.elapsed().as_secs_f64();
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "{} users, {} connections, {} transactions, {} packets, {:.1} MB in {secs:.1} s ({:.0} MB/s)",
            totals.users,
            totals.connections,
            totals.transactions,
            totals.packets,
            totals.capture_bytes as f64 / 1e6,
            totals.capture_bytes as f64 / 1e6 / secs.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}
