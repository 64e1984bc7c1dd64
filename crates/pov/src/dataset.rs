//! Datasets: every night of every probe in one folder, as tables that
//! Spark, DuckDB, polars and Trino read whole (hive-style partitions).
//!
//! `pov analyze --dataset DIR --probe NAME` adds its run to `DIR`:
//!
//! ```text
//! DIR/transactions/date=2026-11-02/probe=edge-1/part-0.parquet
//! DIR/pages/...  DIR/sessions/...  DIR/users/...  DIR/failures/...
//! DIR/summary/date=2026-11-02/probe=edge-1/summary.json, report.html
//! DIR/manifest/date=2026-11-02/probe=edge-1/manifest.json
//! ```
//!
//! The date is the UTC day of the run's first packet. Every file is
//! written under a hidden staging folder in `DIR` (`.pov-staging-PID`)
//! and moved into its partition by one rename, which replaces the file a
//! earlier run of the same night and probe left there: a reader sees the
//! old file or the new one, never a mix within a table. The manifest goes
//! last: it lists the capture files with their time spans (what `pov find`
//! reads to know which captures hold a session) and the rows of each
//! table. Files of the partition this run did not write (`part-*.parquet`
//! of another tool) are removed after the swap.
//!
//! [`trend`] reads the summaries of a dataset back: per day, over every
//! probe, the users, affected users, revenue lost, failures by kind and by
//! route, for `--history DIR` (summary.json `trend`, drawn in report.html).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::analyze::Summary;
use crate::schema::files;

/// The tables of a dataset holding records, from the files of a run.
pub const TABLES: [(&str, &str); 5] = [
    ("transactions", files::TRANSACTIONS),
    ("pages", files::PAGES),
    ("sessions", files::SESSIONS),
    ("users", files::USERS),
    ("failures", files::FAILURES),
];

/// The table of the nights' summaries and reports.
pub const SUMMARY_TABLE: &str = "summary";

/// The table of the nights' manifests.
pub const MANIFEST_TABLE: &str = "manifest";

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// The probe of a run given none.
pub const DEFAULT_PROBE: &str = "default";

/// Days of trend kept by default (`--history-days`).
pub const TREND_DAYS: usize = 30;

/// Where a run goes in a dataset.
#[derive(Clone, Debug)]
pub struct Target {
    /// The dataset's folder.
    pub dir: PathBuf,
    /// The probe's name (a partition value).
    pub probe: String,
}

impl Target {
    /// `dir` for `probe`, refused when the name cannot be a partition
    /// value (empty, longer than 64 bytes, or anything but ASCII letters,
    /// digits, `.`, `_` and `-`, or starting with `.`).
    pub fn new(dir: &Path, probe: &str) -> Result<Target, String> {
        let ok = !probe.is_empty()
            && probe.len() <= 64
            && !probe.starts_with('.')
            && probe.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(format!(
                "probe name {probe:?}: use 1 to 64 ASCII letters, digits, '.', '_' or '-', not starting with '.'"
            ));
        }
        Ok(Target { dir: dir.to_path_buf(), probe: probe.to_string() })
    }
}

/// A capture file a night was read from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Capture {
    /// Its file name.
    pub name: String,
    /// Its path as given to the run (the packet stage's, for a run from
    /// transaction records: empty then).
    pub path: String,
    /// First packet (epoch seconds): for a run from transaction records,
    /// its first transaction's start.
    pub first_ts: Option<f64>,
    /// Last packet: for a run from records, its last transaction's end.
    pub last_ts: Option<f64>,
    /// Packets read (none for a run from records).
    pub packets: Option<u64>,
    /// Captured bytes (none for a run from records).
    pub bytes: Option<u64>,
}

/// What a night's partition holds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The probe.
    pub probe: String,
    /// pov's version.
    pub pov_version: String,
    /// The run's inputs, as given.
    pub inputs: Vec<String>,
    /// The capture files, with their time spans.
    pub captures: Vec<Capture>,
    /// First packet of the night.
    pub capture_start: Option<f64>,
    /// Last packet.
    pub capture_end: Option<f64>,
    /// Rows of each table's partition.
    pub rows: BTreeMap<String, u64>,
}

/// The UTC day of `secs` (epoch seconds), `YYYY-MM-DD`.
pub fn date_of(secs: f64) -> String {
    let (y, m, d, _, _) = pov_capture::Ts((secs * 1e9) as i64).civil();
    format!("{y:04}-{m:02}-{d:02}")
}

/// `TABLE/date=D/probe=P`.
pub fn partition(table: &str, date: &str, probe: &str) -> PathBuf {
    Path::new(table).join(format!("date={date}")).join(format!("probe={probe}"))
}

fn named(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// A staging folder inside the dataset, removed with it.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Copies `from` to `to` (a hard link when the file system allows).
fn place(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(d) = to.parent() {
        fs::create_dir_all(d).map_err(|e| named(e, d))?;
    }
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).map_err(|e| named(e, from))?;
    }
    Ok(())
}

/// Adds the run whose outputs are in `out` (published: the record files,
/// summary.json, report.html) to the dataset: its partitions of night and
/// probe, replaced if they exist. Returns the manifest written.
pub fn add_run(target: &Target, out: &Path, summary: &Summary, captures: Vec<Capture>) -> io::Result<Manifest> {
    let start = summary.capture_start.ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "the run read no packet: it has no date to file it under")
    })?;
    let date = date_of(start);
    fs::create_dir_all(&target.dir).map_err(|e| named(e, &target.dir))?;
    let staging = Staging(target.dir.join(format!(".pov-staging-{}", std::process::id())));
    let _ = fs::remove_dir_all(&staging.0);
    // (staged file, its final path), in the order they are moved.
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut rows = BTreeMap::new();
    for (table, file) in TABLES {
        let from = out.join(file);
        let rel = partition(table, &date, &target.probe).join("part-0.parquet");
        let staged = staging.0.join(&rel);
        place(&from, &staged)?;
        rows.insert(table.to_string(), pov_impact::read::RowReader::open(&staged)?.total() as u64);
        moves.push((staged, target.dir.join(rel)));
    }
    for file in files::SUMMARIES {
        let rel = partition(SUMMARY_TABLE, &date, &target.probe).join(file);
        let staged = staging.0.join(&rel);
        place(&out.join(file), &staged)?;
        moves.push((staged, target.dir.join(rel)));
    }
    let manifest = Manifest {
        date: date.clone(),
        probe: target.probe.clone(),
        pov_version: env!("CARGO_PKG_VERSION").to_string(),
        inputs: summary.inputs.clone(),
        captures,
        capture_start: summary.capture_start,
        capture_end: summary.capture_end,
        rows,
    };
    let rel = partition(MANIFEST_TABLE, &date, &target.probe).join(MANIFEST);
    let staged = staging.0.join(&rel);
    if let Some(d) = staged.parent() {
        fs::create_dir_all(d).map_err(|e| named(e, d))?;
    }
    let text = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    fs::write(&staged, text).map_err(|e| named(e, &staged))?;
    moves.push((staged, target.dir.join(rel)));
    // The swap: one rename per file, the manifest last.
    for (from, to) in &moves {
        if let Some(d) = to.parent() {
            fs::create_dir_all(d).map_err(|e| named(e, d))?;
        }
        fs::rename(from, to).map_err(|e| named(e, to))?;
    }
    // What an earlier writer left in these partitions and this run did
    // not write goes, now that the new files are in place.
    let written: Vec<&PathBuf> = moves.iter().map(|(_, to)| to).collect();
    for (_, to) in &moves {
        let Some(dir) = to.parent() else { continue };
        for e in fs::read_dir(dir).map_err(|e| named(e, dir))?.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("part-") || name == MANIFEST || files::SUMMARIES.contains(&name.as_str());
            if ours && p.is_file() && !written.contains(&&p) {
                let _ = fs::remove_file(&p);
            }
        }
    }
    Ok(manifest)
}

/// The capture files of a pass over captures, for the manifest.
pub fn captures_of(report: &crate::pipeline::RunReport) -> Vec<Capture> {
    report
        .files
        .iter()
        .map(|f| Capture {
            name: Path::new(&f.name).file_name().map_or(f.name.clone(), |n| n.to_string_lossy().into_owned()),
            path: f.name.clone(),
            first_ts: f.first_ts.map(|t| t.as_secs_f64()),
            last_ts: f.last_ts.map(|t| t.as_secs_f64()),
            packets: Some(f.packets),
            bytes: Some(f.captured_bytes),
        })
        .collect()
}

/// Whether `dir` is a dataset (it has a summary table).
pub fn is_dataset(dir: &Path) -> bool {
    dir.join(SUMMARY_TABLE).is_dir()
}

/// The `date=`/`probe=` partitions of `table` in the dataset `dir`:
/// (date, probe, folder), by date then probe.
pub fn partitions(dir: &Path, table: &str) -> io::Result<Vec<(String, String, PathBuf)>> {
    let root = dir.join(table);
    let mut out = Vec::new();
    let Ok(dates) = fs::read_dir(&root) else { return Ok(out) };
    for d in dates.flatten() {
        let dname = d.file_name().to_string_lossy().into_owned();
        let Some(date) = dname.strip_prefix("date=") else { continue };
        for p in fs::read_dir(d.path()).map_err(|e| named(e, &d.path()))?.flatten() {
            let pname = p.file_name().to_string_lossy().into_owned();
            if let Some(probe) = pname.strip_prefix("probe=")
                && p.path().is_dir()
            {
                out.push((date.to_string(), probe.to_string(), p.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One night of one probe, as its summary.json tells.
#[derive(Clone, Debug, PartialEq)]
pub struct Night {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The probe.
    pub probe: String,
    /// Users.
    pub users_total: u64,
    /// Users with a noticed failure.
    pub users_affected: u64,
    /// Sessions.
    pub sessions_total: u64,
    /// Revenue lost (point estimate).
    pub revenue_lost: f64,
    /// Orders' value.
    pub revenue_realised: f64,
    /// Noticed failures by kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Noticed failures by route (the routes summary.json lists).
    pub failures_by_route: BTreeMap<String, u64>,
}

impl Night {
    /// The night a summary (as JSON) tells of.
    pub fn of(date: &str, probe: &str, v: &serde_json::Value) -> Option<Night> {
        let u = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let kinds = v.get("failures_by_kind")?.as_object()?;
        let routes = v.get("by_route").and_then(|r| r.as_array()).cloned().unwrap_or_default();
        Some(Night {
            date: date.to_string(),
            probe: probe.to_string(),
            users_total: u("users_total")?,
            users_affected: u("users_affected")?,
            sessions_total: u("sessions_total")?,
            revenue_lost: v.get("revenue_lost")?.get("value")?.as_f64()?,
            revenue_realised: v.get("revenue_realised")?.as_f64()?,
            failures_by_kind: kinds.iter().filter_map(|(k, n)| Some((k.clone(), n.as_u64()?))).collect(),
            failures_by_route: routes
                .iter()
                .filter_map(|r| Some((r.get("route")?.as_str()?.to_string(), r.get("failures")?.as_u64()?)))
                .collect(),
        })
    }
}

/// Every night of the dataset `dir` (from its summary table). A summary
/// that cannot be read is an error naming it.
pub fn nights(dir: &Path) -> io::Result<Vec<Night>> {
    let mut out = Vec::new();
    for (date, probe, folder) in partitions(dir, SUMMARY_TABLE)? {
        let f = folder.join(files::SUMMARY);
        if !f.is_file() {
            continue;
        }
        let text = fs::read(&f).map_err(|e| named(e, &f))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", f.display())))?;
        out.push(Night::of(&date, &probe, &v).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a pov summary.json", f.display()))
        })?);
    }
    Ok(out)
}

/// One day of the trend: every probe's night added up.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The probes that day.
    pub probes: Vec<String>,
    /// Users (a user seen by two probes counts twice).
    pub users_total: u64,
    /// Affected users.
    pub users_affected: u64,
    /// Sessions.
    pub sessions_total: u64,
    /// Revenue lost.
    pub revenue_lost: f64,
    /// Orders' value.
    pub revenue_realised: f64,
    /// Noticed failures.
    pub failures: u64,
    /// Noticed failures by kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Noticed failures by route.
    pub failures_by_route: BTreeMap<String, u64>,
}

/// The trend per day of `nights` plus this run (`me`, which replaces a
/// night of the same date and probe), the last `days` days up to the
/// latest, oldest first.
pub fn trend(mut nights: Vec<Night>, me: Option<Night>, days: usize) -> Vec<Day> {
    if let Some(me) = me {
        nights.retain(|n| (n.date.as_str(), n.probe.as_str()) != (me.date.as_str(), me.probe.as_str()));
        nights.push(me);
    }
    let mut by_day: BTreeMap<String, Day> = BTreeMap::new();
    for n in nights {
        let d = by_day.entry(n.date.clone()).or_insert_with(|| Day {
            date: n.date.clone(),
            probes: Vec::new(),
            users_total: 0,
            users_affected: 0,
            sessions_total: 0,
            revenue_lost: 0.0,
            revenue_realised: 0.0,
            failures: 0,
            failures_by_kind: BTreeMap::new(),
            failures_by_route: BTreeMap::new(),
        });
        d.probes.push(n.probe);
        d.users_total += n.users_total;
        d.users_affected += n.users_affected;
        d.sessions_total += n.sessions_total;
        d.revenue_lost = round2(d.revenue_lost + n.revenue_lost);
        d.revenue_realised = round2(d.revenue_realised + n.revenue_realised);
        for (k, c) in n.failures_by_kind {
            d.failures += c;
            *d.failures_by_kind.entry(k).or_default() += c;
        }
        for (r, c) in n.failures_by_route {
            *d.failures_by_route.entry(r).or_default() += c;
        }
    }
    let all: Vec<Day> = by_day.into_values().collect();
    let skip = all.len().saturating_sub(days.max(1));
    all.into_iter().skip(skip).collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Adds the trend of the dataset `history` to `summary` (this run filed
/// under `probe`), the last `days` days.
pub fn add_trend(summary: &mut Summary, history: &Path, probe: &str, days: usize) -> io::Result<()> {
    let nights = nights(history)?;
    let me = summary.capture_start.and_then(|start| {
        let v = serde_json::to_value(&*summary).ok()?;
        Night::of(&date_of(start), probe, &v)
    });
    // The history's own copy of this night (a re-run) is not an earlier
    // run: the change since is against the night before.
    if let Some(me) = &me {
        let mine = partition(SUMMARY_TABLE, &me.date, &me.probe);
        let mine = mine.to_string_lossy();
        if summary.history.iter().any(|p| p.run.contains(&*mine)) {
            let mut earlier = std::mem::take(&mut summary.history);
            earlier.pop();
            earlier.retain(|p| !p.run.contains(&*mine));
            summary.delta = None;
            *summary = summary.clone().with_history(earlier);
        }
    }
    summary.trend = trend(nights, me, days);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn night(date: &str, probe: &str, users: u64, lost: f64, kinds: &[(&str, u64)]) -> Night {
        Night {
            date: date.into(),
            probe: probe.into(),
            users_total: users,
            users_affected: users / 2,
            sessions_total: users,
            revenue_lost: lost,
            revenue_realised: 0.0,
            failures_by_kind: kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            failures_by_route: [("/checkout".to_string(), kinds.iter().map(|(_, n)| n).sum())].into(),
        }
    }

    #[test]
    fn days_add_up_probes_and_this_run_replaces_its_night() {
        let nights = vec![
            night("2026-11-01", "a", 10, 1.5, &[("slow", 2)]),
            night("2026-11-01", "b", 4, 2.25, &[("slow", 1), ("server_error", 3)]),
            night("2026-11-02", "a", 8, 0.0, &[]),
        ];
        let me = night("2026-11-02", "a", 20, 9.0, &[("refused", 1)]);
        let t = trend(nights.clone(), Some(me), 30);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].users_total, t[0].users_affected, t[0].revenue_lost, t[0].failures), (14, 7, 3.75, 6));
        assert_eq!(t[0].failures_by_kind, [("server_error".into(), 3), ("slow".into(), 3)].into());
        assert_eq!(t[0].failures_by_route["/checkout"], 6);
        assert_eq!(t[0].probes, ["a", "b"]);
        assert_eq!((t[1].users_total, t[1].failures), (20, 1), "the re-run replaces its night");
        let last = trend(nights, None, 1);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].date, "2026-11-02");
    }

    #[test]
    fn probe_names_are_partition_values() {
        assert!(Target::new(Path::new("d"), "edge-1.dc_2").is_ok());
        for bad in ["", "a/b", "a=b", "..", ".hidden", "é", &"x".repeat(65)] {
            assert!(Target::new(Path::new("d"), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates_are_utc_days() {
        // 2026-11-02T00:00:00Z.
        assert_eq!(date_of(1_793_577_600.0), "2026-11-02");
        assert_eq!(date_of(1_793_577_599.5), "2026-11-01");
        assert_eq!(date_of(1_793_584_800.0), "2026-11-02");
    }
}
