//! A night through pov on a real Apache Spark cluster (crates/pov/spark,
//! docs/fleet.md): a standalone master and two workers started here as
//! separate processes on loopback, the packet stage as one Spark task per
//! capture file, the customer stage once, and Spark SQL on the dataset.
//!
//! Needs Java and PySpark (`pip install pyspark`, .ci/run installs it):
//! without them the test is skipped with a message, and fails under
//! `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, TempDir, s};

/// 2026-11-02T01:00:00Z.
const NIGHT: u64 = 1_793_581_200;

/// The Spark installation PySpark brings (its `bin/spark-class`), if Java
/// and PySpark are both here; under CI their absence is a failure.
fn spark_home() -> Option<PathBuf> {
    let java = Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success());
    let py = Command::new("python3")
        .args(["-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let ci = std::env::var_os("CI").is_some();
    assert!(!ci || java, "java is not installed (Java 17: the machine's, see .ci/run)");
    assert!(!ci || py.is_some(), "pyspark is not installed (.ci/run: pip install pyspark)");
    if !java || py.is_none() {
        eprintln!("java or pyspark not installed: skipping the Spark test (CI installs pyspark)");
        return None;
    }
    py
}

/// A process started in a process group of its own, stopped with its
/// group (a Spark worker's executors and their Python workers are its
/// children) when dropped, also when the test fails.
struct Group {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Group {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Group {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Group { name: name.to_string(), child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log has a line containing `what` and returns that
    /// line; panics with the log if it exits or `secs` pass first.
    fn wait_for(&mut self, what: &str, secs: u64) -> String {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.log().lines().find(|l| l.contains(what)) {
                return l.to_string();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited ({st}) before {what:?}:\n{}", self.name, self.log());
            }
            assert!(Instant::now() < until, "{}: no {what:?} after {secs} s:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for it to exit, at most `secs`.
    fn wait(&mut self, secs: u64) -> std::process::ExitStatus {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < until, "{} still running after {secs} s:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The group, not only the leader: what it started goes too.
        self.signal("-TERM");
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

/// A standalone cluster on loopback: a master and two workers of one core
/// each, every port chosen free by the system, the web UIs on loopback.
struct Cluster {
    master_url: String,
    worker_dirs: Vec<PathBuf>,
    // Dropped in reverse: the workers (and their executors), then the master.
    _procs: Vec<Group>,
}

fn spark_env(cmd: &mut Command, home: &Path, dir: &Path) {
    cmd.env("SPARK_HOME", home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("SPARK_LOCAL_DIRS", dir.join("local"))
        .env("SPARK_LOG_DIR", dir.join("logs"))
        .env("SPARK_NO_DAEMONIZE", "1");
}

impl Cluster {
    fn start(home: &Path, dir: &Path) -> Cluster {
        std::fs::create_dir_all(dir.join("local")).unwrap();
        let class = home.join("bin/spark-class");
        let mut master_cmd = Command::new(&class);
        master_cmd.args([
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--webui-port",
            "0",
        ]);
        spark_env(&mut master_cmd, home, dir);
        let mut master = Group::spawn("spark master", &mut master_cmd, dir.join("master.log"));
        let line = master.wait_for("Starting Spark master at spark://", 90);
        let master_url = line[line.find("spark://").unwrap()..].trim().to_string();
        assert!(master_url.starts_with("spark://127.0.0.1:"), "{master_url}");
        let mut procs = vec![master];
        let mut worker_dirs = Vec::new();
        for i in 1..=2 {
            let work = dir.join(format!("worker{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let mut cmd = Command::new(&class);
            cmd.args(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", "0"]).args([
                "--webui-port",
                "0",
                "--cores",
                "1",
                "--memory",
                "1g",
                "--work-dir",
                s(&work),
                &master_url,
            ]);
            spark_env(&mut cmd, home, dir);
            procs.push(Group::spawn(&format!("spark worker {i}"), &mut cmd, dir.join(format!("worker{i}.log"))));
            worker_dirs.push(work);
        }
        for w in procs.iter_mut().skip(1) {
            w.wait_for("Successfully registered with master", 90);
        }
        // Nothing listens beyond loopback.
        let pids: Vec<u32> = procs.iter().map(|p| p.child.id()).collect();
        let beyond = listening_beyond_loopback(&pids);
        assert!(beyond.is_empty(), "listening beyond loopback: {beyond:?}");
        procs.reverse();
        Cluster { master_url, worker_dirs, _procs: procs }
    }
}

/// The listening TCP sockets of processes `pids` bound to anything but
/// 127.0.0.1 (`ss -ltnp`); every process must listen on something.
fn listening_beyond_loopback(pids: &[u32]) -> Vec<String> {
    let out = Command::new("ss").args(["-H", "-l", "-t", "-n", "-p"]).output().expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut beyond = Vec::new();
    for pid in pids {
        let mine: Vec<&str> = text.lines().filter(|l| l.contains(&format!("pid={pid},"))).collect();
        assert!(!mine.is_empty(), "process {pid} listens on nothing:\n{text}");
        for l in mine {
            let local = l.split_whitespace().nth(3).unwrap_or("");
            if !local.starts_with("127.0.0.1:") && !local.starts_with("[::ffff:127.0.0.1]:") {
                beyond.push(l.to_string());
            }
        }
    }
    beyond
}

/// Instants to cut a capture at into `n` files of about as many requests
/// each, each in the widest quiet spell near its place: no request
/// awaiting its answer and no connection attempt under way (from the
/// answer key), so that no transaction is cut in two (docs/fleet.md says
/// what a cut changes).
fn quiet_cuts(key: &serde_json::Value, n: usize) -> Vec<f64> {
    let mut busy: Vec<(f64, f64)> = Vec::new();
    for u in key["users"].as_array().unwrap() {
        for c in u["connections"].as_array().unwrap() {
            let (start, end) = (c["start"].as_f64().unwrap(), c["end"].as_f64().unwrap());
            if c["kind"] != "established" {
                busy.push((start, end));
                continue;
            }
            for t in c["transactions"].as_array().unwrap() {
                busy.push((t["req_start"].as_f64().unwrap(), t["resp_end"].as_f64().unwrap_or(end)));
            }
        }
    }
    busy.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut reach = busy[0].1;
    let mut gaps = Vec::new();
    for (a, b) in &busy[1..] {
        if *a > reach {
            gaps.push((reach, *a));
        }
        reach = reach.max(*b);
    }
    // The instant by which a share of the requests had started.
    let at = |share: f64| busy[((busy.len() as f64 * share) as usize).min(busy.len() - 1)].0;
    (1..n)
        .map(|i| {
            let share = i as f64 / n as f64;
            let (lo, hi) = (at(share - 0.05), at(share + 0.05));
            let (a, b) = gaps
                .iter()
                .filter(|(a, b)| (lo..=hi).contains(&((a + b) / 2.0)))
                .max_by(|x, y| (x.1 - x.0).total_cmp(&(y.1 - y.0)))
                .expect("a quiet spell near each cut");
            (a + b) / 2.0
        })
        .collect()
}

/// Splits a pcap at `cuts` into `DIR/night-N.pcap` (a packet at a cut goes
/// to the later file).
fn split(pcap: &Path, cuts: &[f64], dir: &Path) -> Vec<PathBuf> {
    let (header, recs) = util::pcap_records(&std::fs::read(pcap).unwrap());
    let mut parts: Vec<Vec<u8>> = vec![header; cuts.len() + 1];
    for r in recs {
        let t = f64::from(u32::from_le_bytes(r[0..4].try_into().unwrap()))
            + f64::from(u32::from_le_bytes(r[4..8].try_into().unwrap())) / 1e6;
        parts[cuts.iter().filter(|c| t >= **c).count()].extend_from_slice(&r);
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut files = Vec::new();
    for (i, bytes) in parts.into_iter().enumerate() {
        let p = dir.join(format!("night-{i}.pcap"));
        std::fs::write(&p, bytes).unwrap();
        files.push(p);
    }
    files
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// summary.json's figures that do not depend on how the capture was cut
/// into files (tests/fleet.rs compares the same).
fn figures(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    for k in ["inputs", "capture_start", "capture_end", "counters"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[test]
fn a_night_on_a_spark_cluster_gives_the_summary_of_one_analyze() {
    let Some(home) = spark_home() else { return };
    let started = Instant::now();
    let lap = |what: &str| eprintln!("spark test: {what} at {:.1} s", started.elapsed().as_secs_f64());
    let d = TempDir::new("spark");
    let cfg = util::root().join("samples/pov.toml");
    let ds = d.path("dataset");

    // The night before, already in the dataset (one machine, no Spark).
    let before = d.path("before.pcap");
    let start = (NIGHT - 86_400).to_string();
    util::synth(&["--users", "30", "--seed", "17", "--body-scale", "0.05", "--start", &start], &before, &d.path("k0"));
    let out0 = d.path("out0");
    let args0 = ["analyze", "--quiet", "-c", s(&cfg), "--replays", "0", "--out", s(&out0), "--dataset", s(&ds)];
    util::pov_ok(&[&args0[..], &["--probe", "edge-1", s(&before)]].concat());
    let s0 = summary(&out0.join("summary.json"));

    // Tonight: generated traffic with its answer key, as one capture (for
    // one `pov analyze`) and cut into four files in quiet spells.
    let pcap = d.path("night.pcap");
    let key_path = d.path("key.json");
    util::synth(
        &["--users", "150", "--seed", "16", "--body-scale", "0.05", "--start", &NIGHT.to_string()],
        &pcap,
        &key_path,
    );
    let key: serde_json::Value = serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
    let whole = d.path("whole");
    util::pov_ok(&["analyze", "--quiet", "-c", s(&cfg), "--replays", "0", "--out", s(&whole), s(&pcap)]);
    let w = summary(&whole.join("summary.json"));
    let parts = split(&pcap, &quiet_cuts(&key, 4), &d.path("captures"));

    lap("traffic made");
    let cluster = Cluster::start(&home, &d.path("spark"));
    lap("cluster up");
    let report = d.path("report.json");
    let mut cmd = Command::new("python3");
    cmd.arg(util::root().join("crates/pov/spark/pov_spark.py"))
        .args(["--master", &cluster.master_url, "--pov", env!("CARGO_BIN_EXE_pov"), "--dataset", s(&ds)])
        .args(["--probe", "edge-1", "-c", s(&cfg), "--report", s(&report), "--driver-host", "127.0.0.1"])
        .args(["--conf", "spark.executor.memory=512m", "--conf", "spark.executor.cores=1"])
        // A small night: a few shuffle partitions, not 200 tasks per query.
        .args(["--conf", "spark.sql.shuffle.partitions=4"])
        // Both executors up before the first task: one task each at once.
        .args(["--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0"])
        .args(["--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=120s"])
        .args(["--conf", &format!("spark.local.dir={}", s(&d.path("spark/local")))])
        .args(["--query", "affected_users_per_day", "--query", "failures_by_kind_per_day"])
        .args(["--query", "failures_by_route_week_over_week", "--query", "records_per_capture"])
        .args(parts.iter().map(|p| s(p)));
    spark_env(&mut cmd, &home, &d.path("spark"));
    let mut driver = Group::spawn("pov_spark.py", &mut cmd, d.path("driver.log"));
    // (Generous: the machine may be busy; it takes about a minute.)
    let status = driver.wait(300);
    let printed = driver.log();
    assert!(status.success(), "the driver failed ({status}):\n{printed}");
    drop(driver);
    lap("driver done");
    let r = summary(&report);

    // One task per capture file, spread over both workers' executors.
    let tasks = r["tasks"].as_array().unwrap();
    let mut ran: Vec<&str> = tasks.iter().map(|t| t["capture"].as_str().unwrap()).collect();
    ran.sort();
    assert_eq!(ran, parts.iter().map(|p| s(p)).collect::<Vec<_>>());
    for w in &cluster.worker_dirs {
        assert!(
            tasks.iter().any(|t| t["executor_dir"].as_str().unwrap().starts_with(s(w))),
            "no task ran on the worker of {}: {tasks:?}",
            w.display()
        );
    }
    let night = &r["nights"][0];
    assert_eq!((night["date"].as_str(), night["probe"].as_str()), (Some("2026-11-02"), Some("edge-1")));
    for p in &parts {
        let stem = p.file_stem().unwrap().to_str().unwrap();
        let f = ds.join(format!("tx_records/date=2026-11-02/probe=edge-1/part-{stem}.parquet"));
        assert!(f.is_file(), "{}", f.display());
    }
    assert!(std::fs::read_dir(&ds).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')));

    // The customer stage's summary, filed in the dataset, is the one
    // `pov analyze` of the whole capture gives, figure for figure.
    let t = summary(&ds.join("summary/date=2026-11-02/probe=edge-1/summary.json"));
    assert_eq!(figures(&t), figures(&w));
    assert_eq!(t["top_affected_users"], w["top_affected_users"]);
    assert_eq!(t["users_total"], key["totals"]["users"], "the answer key's users");
    let c = &t["counters"]["from_transactions"];
    assert_eq!(c["cut_at_boundaries"].as_u64(), Some(0));
    assert_eq!(c["captures"], serde_json::json!(["night-0.pcap", "night-1.pcap", "night-2.pcap", "night-3.pcap"]));
    assert!(printed.contains(&format!("users: {} ({} affected)", t["users_total"], t["users_affected"])), "{printed}");

    // The manifest names the captures where they are, so `pov find` replays
    // a customer's sessions from the night's files: the key's pages and
    // requests of a customer who ordered.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ds.join("manifest/date=2026-11-02/probe=edge-1/manifest.json")).unwrap())
            .unwrap();
    let paths: Vec<&str> = m["captures"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert_eq!(paths, parts.iter().map(|p| s(p)).collect::<Vec<_>>());
    let u =
        key["users"].as_array().unwrap().iter().find(|u| u["order_id"].is_string()).expect("a customer who ordered");
    let har = d.path("customer.har");
    let order = u["order_id"].as_str().unwrap();
    util::pov_ok(&["find", s(&ds), "-c", s(&cfg), "--order", order, "--replay", "har", "-o", s(&har)]);
    let h: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let requests: usize =
        u["connections"].as_array().unwrap().iter().map(|c| c["transactions"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(h["log"]["pages"].as_array().unwrap().len(), u["pages"].as_array().unwrap().len(), "{order}");
    assert_eq!(h["log"]["entries"].as_array().unwrap().len(), requests, "{order}");

    // Spark SQL on the dataset, both nights: what each night's summary says.
    let q = &r["queries"];
    let rows = |name: &str| q[name].as_array().unwrap_or_else(|| panic!("{name}: {q}")).clone();
    let nights = [("2026-11-01", &s0), ("2026-11-02", &t)];
    let per_day = rows("affected_users_per_day");
    assert_eq!(per_day.len(), 2, "{per_day:?}");
    for ((date, s), row) in nights.iter().zip(&per_day) {
        assert_eq!((row["date"].as_str(), row["probe"].as_str()), (Some(*date), Some("edge-1")));
        assert_eq!(row["users"], s["users_total"], "{date}");
        assert_eq!(row["affected"], s["users_affected"], "{date}");
    }
    let kinds = rows("failures_by_kind_per_day");
    for (date, s) in nights {
        let mut got = serde_json::Map::new();
        for k in kinds.iter().filter(|k| k["date"] == date) {
            got.insert(k["kind"].as_str().unwrap().to_string(), k["failures"].clone());
        }
        assert_eq!(serde_json::Value::Object(got), s["failures_by_kind"], "{date}");
        assert!(!s["failures_by_kind"].as_object().unwrap().is_empty());
    }
    // Both nights are this week: each route's failures are the two
    // summaries' by_route figures added up.
    let weeks = rows("failures_by_route_week_over_week");
    let mut want = std::collections::BTreeMap::<String, u64>::new();
    for (_, s) in nights {
        for route in s["by_route"].as_array().unwrap() {
            *want.entry(route["route"].as_str().unwrap().to_string()).or_default() +=
                route["failures"].as_u64().unwrap();
        }
    }
    let got: std::collections::BTreeMap<String, u64> = weeks
        .iter()
        .filter(|r| want.contains_key(r["route"].as_str().unwrap()))
        .map(|r| (r["route"].as_str().unwrap().to_string(), r["this_week"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);
    assert!(weeks.iter().all(|r| r["last_week"].as_u64() == Some(0)));
    // The packet stage's records: every transaction of the night, by capture.
    let recs = rows("records_per_capture");
    let names: Vec<&str> = recs.iter().map(|r| r["capture"].as_str().unwrap()).collect();
    assert_eq!(names, ["night-0.pcap", "night-1.pcap", "night-2.pcap", "night-3.pcap"]);
    let n: u64 = recs.iter().map(|r| r["transactions"].as_u64().unwrap()).sum();
    assert_eq!(Some(n), t["transactions"].as_u64());
    assert_eq!(night["records"]["tx_records"], t["transactions"]);
    assert!(recs.iter().all(|r| r["transactions"].as_u64().unwrap() > 100), "{recs:?}");

    // A capture pov cannot read: the task fails (tried twice), the run
    // says which file and why, exits 1, and leaves the dataset as it was.
    let bad = d.path("captures/edge-2-0300.pcap");
    std::fs::write(&bad, b"not a capture\n").unwrap();
    let before: Vec<_> = std::fs::read_dir(ds.join("tx_records/date=2026-11-02/probe=edge-1"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut cmd = Command::new("python3");
    cmd.arg(util::root().join("crates/pov/spark/pov_spark.py"))
        .args(["--master", &cluster.master_url, "--pov", env!("CARGO_BIN_EXE_pov"), "--dataset", s(&ds)])
        .args(["--driver-host", "127.0.0.1", "--conf", "spark.executor.memory=512m"])
        .args(["--conf", "spark.task.maxFailures=2", "--night", &format!("edge-2={}", s(&bad))]);
    spark_env(&mut cmd, &home, &d.path("spark"));
    let mut driver = Group::spawn("pov_spark.py (bad capture)", &mut cmd, d.path("driver-bad.log"));
    let status = driver.wait(300);
    let printed = driver.log();
    assert_eq!(status.code(), Some(1), "{printed}");
    assert!(
        printed.contains(&format!("pov_spark: the packet stage failed: RuntimeError: pov transactions {}", s(&bad))),
        "{printed}"
    );
    drop(driver);
    assert!(std::fs::read_dir(&ds).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')));
    assert!(!ds.join("summary/date=2026-11-02/probe=edge-2").exists());
    let after: Vec<_> = std::fs::read_dir(ds.join("tx_records/date=2026-11-02/probe=edge-1"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(after, before);

    drop(cluster);
    eprintln!(
        "spark test: {:.1} s ({} s of Spark start, {} s packet stage, {} s customer stage, {} s queries)",
        started.elapsed().as_secs_f64(),
        r["startup_s"],
        r["packet_stage_s"],
        r["customer_stage_s"],
        r["queries_s"]
    );
}
