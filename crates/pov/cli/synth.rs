//! `pov synth`: synthetic shop traffic and its answer key.

use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use pov_synth::{CaptureFormat, Profile, SynthConfig};

/// Arguments of `pov synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// Number of users.
    #[arg(long, default_value_t = 100)]
    users: u64,
    /// Seed; the same seed and options give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Capture to write (`.pcapng` writes pcapng, anything else pcap).
    #[arg(long)]
    out: PathBuf,
    /// Answer key (JSON) to write.
    #[arg(long)]
    truth: PathBuf,
    /// Preset: `default` (a few faults, clean capture), `clean` (no faults),
    /// `lossy` (faults plus loss, retransmissions, reordering, duplicates and
    /// packets the capture missed).
    #[arg(long, value_enum, default_value_t = ProfileArg::Default)]
    profile: ProfileArg,
    /// Session cookie the shop sets.
    #[arg(long, value_enum, default_value_t = CookieArg::Sid)]
    cookie: CookieArg,
    /// Mean new users per second.
    #[arg(long, default_value_t = 0.5)]
    rate: f64,
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

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Default,
    Clean,
    Lossy,
}

#[derive(Clone, Copy, ValueEnum)]
enum CookieArg {
    Sid,
    #[value(name = "JSESSIONID")]
    Jsessionid,
    #[value(name = "PHPSESSID")]
    Phpsessid,
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

/// Runs `pov synth`.
pub fn run(a: SynthArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = SynthConfig {
        users: a.users,
        seed: a.seed,
        arrival_rate: a.rate,
        body_scale: a.body_scale,
        vlan: a.vlan,
        ..SynthConfig::default()
    };
    match a.profile {
        ProfileArg::Default => Profile::Default.apply(&mut cfg),
        ProfileArg::Clean => Profile::Clean.apply(&mut cfg),
        ProfileArg::Lossy => Profile::Lossy.apply(&mut cfg),
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
    cfg.format = match CaptureFormat::from_path(&a.out) {
        CaptureFormat::Pcap if a.nanos => CaptureFormat::PcapNs,
        f => f,
    };
    let (tmp_cap, tmp_key) = (temp_for(&a.out), temp_for(&a.truth));
    let started = Instant::now();
    let result = (|| -> anyhow::Result<pov_synth::key::Totals> {
        let cap = BufWriter::with_capacity(
            1 << 20,
            fs::File::create(&tmp_cap).map_err(|e| anyhow::anyhow!("{}: {e}", a.out.display()))?,
        );
        let key = BufWriter::with_capacity(
            1 << 20,
            fs::File::create(&tmp_key).map_err(|e| anyhow::anyhow!("{}: {e}", a.truth.display()))?,
        );
        let totals = pov_synth::generate(&cfg, cap, key)?;
        fs::rename(&tmp_cap, &a.out)?;
        fs::rename(&tmp_key, &a.truth)?;
        Ok(totals)
    })();
    let totals = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&tmp_cap);
            let _ = fs::remove_file(&tmp_key);
            return Err(e);
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
