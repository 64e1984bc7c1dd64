//! The fleet: the packet stage and the customer stage run apart (`pov
//! transactions --format parquet` per capture file, `pov analyze
//! --from-transactions`), datasets partitioned by day and probe, and
//! history read from a dataset.

use std::path::{Path, PathBuf};

use crate::util::{self, TempDir, s};

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json")).expect("json")
}

/// The time of a pcap record (seconds, from its header).
fn record_time(rec: &[u8]) -> f64 {
    let secs = u32::from_le_bytes(rec[0..4].try_into().unwrap());
    let us = u32::from_le_bytes(rec[4..8].try_into().unwrap());
    f64::from(secs) + f64::from(us) / 1e6
}

/// Splits a capture into files at the times `cuts` (a packet at a cut goes
/// to the later file), as a probe rotating its files would: `DIR/pN.pcap`.
fn split(pcap: &Path, cuts: &[f64], dir: &Path) -> Vec<PathBuf> {
    let (header, recs) = util::pcap_records(&std::fs::read(pcap).unwrap());
    let mut parts: Vec<Vec<u8>> = vec![header; cuts.len() + 1];
    for r in recs {
        let t = record_time(&r);
        parts[cuts.iter().filter(|c| t >= **c).count()].extend_from_slice(&r);
    }
    std::fs::create_dir_all(dir).unwrap();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            let p = dir.join(format!("p{i}.pcap"));
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect()
}

/// The first and last packet times of a capture.
fn span(pcap: &Path) -> (f64, f64) {
    let (_, recs) = util::pcap_records(&std::fs::read(pcap).unwrap());
    (record_time(&recs[0]), record_time(recs.last().unwrap()))
}

/// The packet stage on each part: `tx/pN.parquet` and
/// `tx/pN.failed.parquet`.
fn packet_stage(cfg: &Path, parts: &[PathBuf], out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for p in parts {
        let stem = p.file_stem().unwrap().to_str().unwrap();
        let tx = out.join(format!("{stem}.parquet"));
        let failed = out.join(format!("{stem}.failed.parquet"));
        util::pov_ok(&[
            "transactions",
            "--quiet",
            "-c",
            s(cfg),
            "--format",
            "parquet",
            "-o",
            s(&tx),
            "--failed-connections",
            s(&failed),
            s(p),
        ]);
    }
}

/// The figures of summary.json that must not depend on how the capture
/// was cut into files (everything but the inputs, the capture's span and
/// the counters of the passes over the packets).
fn figures(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    for k in ["inputs", "capture_start", "capture_end", "counters"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[test]
fn a_capture_split_in_files_gives_the_summary_of_the_whole() {
    let d = TempDir::new("fleet-split");
    let shop = util::root().join("samples/shop.pcap");
    let cfg = util::root().join("samples/pov.toml");
    let whole = d.path("whole");
    util::pov_ok(&["analyze", "--quiet", "-c", s(&cfg), "--replays", "0", "--out", s(&whole), s(&shop)]);
    let w = summary(&whole);

    // Three files of a third of the capture's time each.
    let (a, b) = span(&shop);
    let parts = split(&shop, &[a + (b - a) / 3.0, a + 2.0 * (b - a) / 3.0], &d.path("parts"));
    assert_eq!(parts.len(), 3);
    packet_stage(&cfg, &parts, &d.path("tx"));
    // Given in reverse order, as separate globs: the merge orders by time.
    let out = d.path("two-stage");
    let printed = util::pov_ok(&[
        "analyze",
        "--quiet",
        "-c",
        s(&cfg),
        "--out",
        s(&out),
        "--from-transactions",
        s(&d.path("tx/p2*.parquet")),
        "--from-transactions",
        s(&d.path("tx/p1*.parquet")),
        "--from-transactions",
        s(&d.path("tx/p0*.parquet")),
    ]);
    let t = summary(&out);
    // The real figures of the shop sample (its answer key says 25 users).
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(util::root().join("samples/shop.truth.json")).unwrap()).unwrap();
    assert_eq!(t["users_total"], key["totals"]["users"]);
    assert_eq!((t["users_total"].as_u64(), t["users_affected"].as_u64()), (Some(25), Some(15)));
    assert_eq!((t["sessions_total"].as_u64(), t["sessions_affected"].as_u64()), (Some(25), Some(15)));
    assert_eq!(t["transactions"].as_u64(), Some(797));
    assert_eq!(
        t["failures_by_kind"],
        serde_json::json!({"client_abort": 1, "client_error": 1, "error_page": 3, "no_response": 1, "refused": 1,
            "server_error": 2, "server_reset": 2, "slow": 4, "truncated": 1, "unanswered": 1})
    );
    assert_eq!((t["orders"].as_u64(), t["revenue_realised"].as_f64()), (Some(9), Some(2252.38)));
    assert_eq!(t["revenue_lost"]["value"].as_f64(), Some(185.78));
    // And every other figure, the users' pseudonyms included, is the whole
    // capture's.
    assert_eq!(figures(&t), figures(&w));
    assert_eq!(t["top_affected_users"], w["top_affected_users"]);
    assert!(printed.contains("users: 25 (15 affected, 60.0 %)"), "{printed}");
    let c = &t["counters"]["from_transactions"];
    assert_eq!(c["cut_at_boundaries"].as_u64(), Some(0));
    assert_eq!(c["captures"], serde_json::json!(["p0.pcap", "p1.pcap", "p2.pcap"]));
    let rows: u64 = c["rows_by_file"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(rows, 797 + 2, "every transaction and the two failed attempts (refused, unanswered)");
    // The customer stage's span is its records': first request to last
    // answer byte, inside the capture's.
    let (start, end) = (t["capture_start"].as_f64().unwrap(), t["capture_end"].as_f64().unwrap());
    assert!(start >= a && end <= b && end - start > 200.0, "{start} {end} in {a} {b}");
}

/// A cut inside a transaction (after its request, before its answer) makes
/// two records of it, neither a failure: this is counted, and the figures
/// move by exactly that transaction (docs/fleet.md).
#[test]
fn a_transaction_cut_by_a_file_boundary_is_counted() {
    let d = TempDir::new("fleet-cut");
    let shop = util::root().join("samples/shop.pcap");
    let cfg = util::root().join("samples/pov.toml");
    // The slowest answer of the capture: cut while its client waits.
    let lines = util::pov_ok(&["transactions", "--quiet", "-c", s(&cfg), "--format", "jsonl", s(&shop)]);
    let slowest = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["outcome"] == "complete")
        .max_by(|a, b| a["ttfb_ms"].as_f64().unwrap().total_cmp(&b["ttfb_ms"].as_f64().unwrap()))
        .unwrap();
    let (req_end, ttfb) = (slowest["req_end"].as_f64().unwrap(), slowest["ttfb_ms"].as_f64().unwrap());
    assert!(ttfb > 9000.0, "{slowest}");
    let parts = split(&shop, &[req_end + ttfb / 2000.0], &d.path("parts"));
    packet_stage(&cfg, &parts, &d.path("tx"));
    let out = d.path("two-stage");
    util::pov_ok(&[
        "analyze",
        "--quiet",
        "-c",
        s(&cfg),
        "--out",
        s(&out),
        "--from-transactions",
        s(&d.path("tx/*.parquet")),
    ]);
    let t = summary(&out);
    assert_eq!(t["counters"]["from_transactions"]["cut_at_boundaries"].as_u64(), Some(1));
    // Two records for the one transaction, both capture loss.
    assert_eq!(t["transactions"].as_u64(), Some(798));
    assert_eq!(t["capture_loss_transactions"].as_u64(), Some(2));
    // Its slow answer is no longer seen; nothing else changed.
    assert_eq!(t["failures_by_kind"]["slow"].as_u64(), Some(3));
    assert_eq!((t["users_total"].as_u64(), t["sessions_total"].as_u64()), (Some(25), Some(25)));
    assert_eq!(t["users_affected"].as_u64(), Some(14));
    let kinds: u64 = t["failures_by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(kinds, 17 - 1);
}

#[test]
fn the_customer_stage_refuses_what_is_not_its_input() {
    let d = TempDir::new("fleet-refuse");
    let shop = util::root().join("samples/shop.pcap");
    // A flows file is Parquet, but not transactions.
    let flows = d.path("flows.parquet");
    util::pov_ok(&["flows", "--quiet", "--format", "parquet", "-o", s(&flows), s(&shop)]);
    let out = util::pov(&["analyze", "--quiet", "--out", s(&d.path("o")), "--from-transactions", s(&flows)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flows.parquet: neither transaction records nor failed connections"), "{err}");
    // A capture given as transactions.
    let out = util::pov(&["analyze", "--quiet", "--out", s(&d.path("o")), "--from-transactions", s(&shop)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shop.pcap"));
    assert!(!d.path("o").exists(), "nothing written");
}

/// 2026-11-02T01:00:00Z, the first night's start.
const NIGHT0: u64 = 1_793_581_200;

/// A night of generated traffic: `users` customers from `NIGHT0 + day`.
fn night(d: &TempDir, day: u64, seed: u64, users: u64) -> PathBuf {
    let pcap = d.path(&format!("night-{day}-{seed}.pcap"));
    let start = (NIGHT0 + day * 86_400).to_string();
    let (seed, users) = (seed.to_string(), users.to_string());
    util::synth(&["--users", &users, "--seed", &seed, "--start", &start], &pcap, &d.path("key.json"));
    pcap
}

/// `pov analyze` into the dataset; returns the run's summary.
fn into_dataset(d: &TempDir, pcap: &Path, ds: &Path, probe: &str, extra: &[&str]) -> serde_json::Value {
    let out = d.path(&format!("run-{}-{probe}", pcap.file_stem().unwrap().to_str().unwrap()));
    let mut args = vec!["analyze", "--quiet", "--replays", "0", "--out", s(&out), "--dataset", s(ds), "--probe", probe];
    args.extend_from_slice(extra);
    args.push(s(pcap));
    util::pov_ok(&args);
    summary(&out)
}

/// Rows of a dataset's table as polars reads the whole folder as one
/// hive-partitioned table: (date, probe) -> rows.
fn table_rows(ds: &Path, table: &str) -> std::collections::BTreeMap<(String, String), u64> {
    use polars::prelude::*;
    // (This build of polars has no date type: the partition values stay
    // text.)
    let hive = HiveOptions { try_parse_dates: false, ..HiveOptions::new_enabled() };
    let args = ScanArgsParquet { hive_options: hive, ..Default::default() };
    let lf = LazyFrame::scan_parquet(PlRefPath::from(s(&ds.join(table))), args).expect("scan");
    let df = lf
        .select([col("date").cast(DataType::String), col("probe").cast(DataType::String)])
        .collect()
        .expect("collect");
    let (date, probe) = (df.column("date").unwrap().str().unwrap(), df.column("probe").unwrap().str().unwrap());
    let mut out = std::collections::BTreeMap::new();
    for i in 0..df.height() {
        *out.entry((date.get(i).unwrap().to_string(), probe.get(i).unwrap().to_string())).or_default() += 1;
    }
    out
}

fn key(date: &str, probe: &str) -> (String, String) {
    (date.to_string(), probe.to_string())
}

#[test]
fn nights_of_probes_make_one_dataset() {
    let d = TempDir::new("fleet-dataset");
    let ds = d.path("dataset");
    let n0 = night(&d, 0, 1, 12);
    let n1 = night(&d, 1, 2, 16);
    let n2 = night(&d, 2, 3, 10);
    let n2b = night(&d, 2, 4, 8);
    let s0 = into_dataset(&d, &n0, &ds, "edge-1", &[]);
    let s1 = into_dataset(&d, &n1, &ds, "edge-1", &[]);
    let s2 = into_dataset(&d, &n2, &ds, "edge-1", &[]);
    let s2b = into_dataset(&d, &n2b, &ds, "edge-2", &[]);
    let tx = |s: &serde_json::Value| s["transactions"].as_u64().unwrap();
    let users = |s: &serde_json::Value| s["users_total"].as_u64().unwrap();

    // The layout: every table, the summaries and the manifests, by day and
    // probe; nothing left of the staging.
    for table in ["transactions", "pages", "sessions", "users", "failures"] {
        for (date, probe) in [("2026-11-02", "edge-1"), ("2026-11-03", "edge-1"), ("2026-11-04", "edge-2")] {
            let p = ds.join(format!("{table}/date={date}/probe={probe}/part-0.parquet"));
            assert!(p.is_file(), "{}", p.display());
        }
    }
    for f in ["summary/date=2026-11-04/probe=edge-2/summary.json", "summary/date=2026-11-04/probe=edge-2/report.html"] {
        assert!(ds.join(f).is_file(), "{f}");
    }
    let hidden: Vec<String> = std::fs::read_dir(&ds)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ds.join("manifest/date=2026-11-03/probe=edge-1/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["date"], "2026-11-03");
    assert_eq!(m["probe"], "edge-1");
    let cap = &m["captures"][0];
    assert_eq!(cap["name"], "night-1-2.pcap");
    assert_eq!(cap["first_ts"], s1["capture_start"]);
    assert_eq!(cap["last_ts"], s1["capture_end"]);
    assert!(cap["packets"].as_u64().unwrap() > 1000, "{cap}");
    assert_eq!(m["rows"]["transactions"].as_u64(), Some(tx(&s1)));
    assert_eq!(m["rows"]["users"].as_u64(), Some(users(&s1)));

    // polars reads each table as one, the partitions as columns.
    let rows = table_rows(&ds, "transactions");
    let want: std::collections::BTreeMap<(String, String), u64> = [
        (key("2026-11-02", "edge-1"), tx(&s0)),
        (key("2026-11-03", "edge-1"), tx(&s1)),
        (key("2026-11-04", "edge-1"), tx(&s2)),
        (key("2026-11-04", "edge-2"), tx(&s2b)),
    ]
    .into();
    assert_eq!(rows, want);
    assert!(rows.values().all(|n| *n > 100), "{rows:?}");
    let urows = table_rows(&ds, "users");
    assert_eq!(urows[&key("2026-11-03", "edge-1")], 16, "the night's 16 customers");
    assert_eq!(urows.values().sum::<u64>(), users(&s0) + users(&s1) + users(&s2) + users(&s2b));

    // Night 1 again, from other traffic: its partitions are replaced, the
    // others stay as they were.
    let n1b = night(&d, 1, 7, 5);
    let s1b = into_dataset(&d, &n1b, &ds, "edge-1", &[]);
    assert_eq!(users(&s1b), 5);
    let after = table_rows(&ds, "transactions");
    assert_eq!(after[&key("2026-11-03", "edge-1")], tx(&s1b));
    assert_ne!(tx(&s1b), tx(&s1));
    let mut unchanged = after.clone();
    unchanged.remove(&key("2026-11-03", "edge-1"));
    let mut before = want.clone();
    before.remove(&key("2026-11-03", "edge-1"));
    assert_eq!(unchanged, before);
    assert_eq!(table_rows(&ds, "users")[&key("2026-11-03", "edge-1")], 5);
    let night1 = summary(&ds.join("summary/date=2026-11-03/probe=edge-1"));
    assert_eq!(night1["users_total"].as_u64(), Some(5));
    let files: Vec<_> = std::fs::read_dir(ds.join("transactions/date=2026-11-03/probe=edge-1")).unwrap().collect();
    assert_eq!(files.len(), 1, "one part file");

    // A fourth night, with the dataset as its history: the trend per day.
    let n3 = night(&d, 3, 5, 9);
    let s3 = into_dataset(&d, &n3, &ds, "edge-1", &["--history", s(&ds)]);
    let trend = s3["trend"].as_array().unwrap();
    let dates: Vec<&str> = trend.iter().map(|t| t["date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]);
    let day = |i: usize, k: &str| trend[i][k].clone();
    assert_eq!(day(0, "users_total"), s0["users_total"]);
    assert_eq!(day(1, "users_total").as_u64(), Some(5), "the night as run again");
    assert_eq!(day(2, "users_total").as_u64(), Some(users(&s2) + users(&s2b)), "both probes");
    assert_eq!(day(2, "probes"), serde_json::json!(["edge-1", "edge-2"]));
    assert_eq!(
        day(2, "users_affected").as_u64().unwrap(),
        s2["users_affected"].as_u64().unwrap() + s2b["users_affected"].as_u64().unwrap()
    );
    let lost = s2["revenue_lost"]["value"].as_f64().unwrap() + s2b["revenue_lost"]["value"].as_f64().unwrap();
    assert!((day(2, "revenue_lost").as_f64().unwrap() - lost).abs() < 0.006);
    assert_eq!(day(3, "users_total"), s3["users_total"]);
    // Failures by kind and by route add up the nights'.
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for s in [&s2, &s2b] {
        for (k, n) in s["failures_by_kind"].as_object().unwrap() {
            *kinds.entry(k.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    assert_eq!(serde_json::to_value(&kinds).unwrap(), day(2, "failures_by_kind"));
    assert!(!kinds.is_empty(), "generated nights have failures");
    assert_eq!(day(2, "failures").as_u64(), Some(kinds.values().sum()));
    let route = s2["by_route"][0]["route"].as_str().unwrap();
    let on_route: u64 = [&s2, &s2b]
        .iter()
        .flat_map(|s| s["by_route"].as_array().unwrap())
        .filter(|r| r["route"] == route)
        .map(|r| r["failures"].as_u64().unwrap())
        .sum();
    assert_eq!(day(2, "failures_by_route")[route].as_u64(), Some(on_route));
    // The history has each night and this run; the change is since night 3.
    assert_eq!(s3["history"].as_array().unwrap().len(), 5);
    assert!(s3["delta"]["since"].as_str().unwrap().contains("date=2026-11-04"), "{}", s3["delta"]);
    let report = std::fs::read_to_string(ds.join("summary/date=2026-11-05/probe=edge-1/report.html")).unwrap();
    assert!(report.contains("Per day, every probe: 2026-11-02 to 2026-11-05 (4 days)"));
    assert!(report.contains("id=\"daykinds\"") && report.contains("id=\"dayroutes\""));

    // The last two days only.
    let s3b = into_dataset(&d, &n3, &ds, "edge-1", &["--history", s(&ds), "--history-days", "2"]);
    let dates: Vec<&str> = s3b["trend"].as_array().unwrap().iter().map(|t| t["date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2026-11-04", "2026-11-05"]);
    // Run again, the night's own earlier copy is not its history.
    assert!(s3b["delta"]["since"].as_str().unwrap().contains("date=2026-11-04"), "{}", s3b["delta"]);
}

#[test]
fn a_bad_probe_name_is_refused_before_reading() {
    let d = TempDir::new("fleet-probe");
    let shop = util::root().join("samples/shop.pcap");
    let out = util::pov(&[
        "analyze",
        "--quiet",
        "--out",
        s(&d.path("o")),
        "--dataset",
        s(&d.path("ds")),
        "--probe",
        "../x",
        s(&shop),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("probe name \"../x\""));
    assert!(!d.path("ds").exists() && !d.path("o").exists());
}

/// `pov find` with `args` (`--json`), its exit code and what it found.
fn find(ds: &Path, cfg: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["find", s(ds), "-c", s(cfg), "--json"];
    all.extend_from_slice(args);
    let out = util::pov(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn find_tells_what_happened_to_one_customer() {
    let d = TempDir::new("fleet-find");
    let cfg = util::root().join("samples/pov.toml");
    // The night's capture where the probe keeps it.
    let pcap = d.path("night.pcap");
    std::fs::copy(util::root().join("samples/shop.pcap"), &pcap).unwrap();
    let ds = d.path("ds");
    util::pov_ok(&[
        "analyze",
        "--quiet",
        "-c",
        s(&cfg),
        "--replays",
        "0",
        "--out",
        s(&d.path("o")),
        "--dataset",
        s(&ds),
        "--probe",
        "edge-1",
        s(&pcap),
    ]);
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(util::root().join("samples/shop.truth.json")).unwrap()).unwrap();
    let users = key["users"].as_array().unwrap();
    // A customer who ordered after two slow pages: by the session cookie
    // their browser sent, by their order id, by their address.
    let u = users.iter().find(|u| u["order_id"] == "ORD-7000002").unwrap();
    let cookie = format!("{}={}", u["cookie_name"].as_str().unwrap(), u["cookie"].as_str().unwrap());
    let (code, by_cookie) = find(&ds, &cfg, &["--cookie", &cookie]);
    assert_eq!(code, 0);
    let found = by_cookie["sessions"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!((f["date"].as_str(), f["probe"].as_str()), (Some("2026-11-02"), Some("edge-1")));
    assert_eq!(f["matched"], serde_json::json!(["cookie"]));
    assert_eq!(f["session"]["client_ip"], u["client_ip"]);
    assert_eq!(f["pages"].as_array().unwrap().len(), u["pages"].as_array().unwrap().len());
    let kinds: Vec<&str> = f["failures"].as_array().unwrap().iter().map(|x| x["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["slow"; 2], "the key: {}", u["failures"]);
    assert_eq!(u["failures"], serde_json::json!({"slow": 2}));
    assert_eq!(f["session"]["order_value"].as_f64(), Some(u["order_cents"].as_f64().unwrap() / 100.0));
    let url = |p: &serde_json::Value| p["url"].as_str().unwrap().to_string();
    let pages: Vec<String> = f["pages"].as_array().unwrap().iter().map(url).collect();
    assert_eq!(pages.last().unwrap(), "/order/confirm?order=ORD-7000002");
    let cap = &f["captures"][0];
    assert_eq!((cap["name"].as_str(), cap["present"].as_bool()), (Some("night.pcap"), Some(true)));
    let user = f["session"]["user"].as_str().unwrap().to_string();
    assert_eq!(by_cookie["pseudonyms"], serde_json::json!([user]), "the cookie hashes to the user's name");

    let (_, by_order) = find(&ds, &cfg, &["--order", "ORD-7000002"]);
    assert_eq!(by_order["sessions"][0]["session"], f["session"]);
    assert_eq!(by_order["sessions"].as_array().unwrap().len(), 1);
    let (_, by_user) = find(&ds, &cfg, &["--user", &user]);
    assert_eq!(by_user["sessions"][0]["session"], f["session"]);
    let (_, by_client) = find(&ds, &cfg, &["--client", u["client_ip"].as_str().unwrap()]);
    let sessions = by_client["sessions"].as_array().unwrap();
    let sharing = users.iter().filter(|x| x["client_ip"] == u["client_ip"]).count();
    assert_eq!(sessions.len(), sharing, "one session per customer of that address");

    // A customer who signed in, by the name they typed.
    let signed = users.iter().find(|u| u["username"].is_string()).unwrap();
    let (code, by_login) = find(&ds, &cfg, &["--login", signed["username"].as_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(by_login["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(by_login["sessions"][0]["session"]["client_ip"], signed["client_ip"]);
    assert_eq!(by_login["sessions"][0]["matched"], serde_json::json!(["login"]));

    // Outside the time range, or a cookie no one had: nothing, exit 1.
    let (code, none) = find(&ds, &cfg, &["--cookie", &cookie, "--to", "2026-11-01"]);
    assert_eq!((code, none["sessions"].as_array().unwrap().len()), (1, 0));
    assert!(none["nights"].as_array().unwrap().is_empty(), "the night is not opened");
    let (code, _) = find(&ds, &cfg, &["--cookie", "sid=nobody", "--from", "2026-11-02T02:00"]);
    assert_eq!(code, 1);

    // The replay, read from the capture the manifest names: the key's pages
    // and requests of that customer.
    let har = d.path("customer.har");
    util::pov_ok(&["find", s(&ds), "-c", s(&cfg), "--order", "ORD-7000002", "--replay", "har", "-o", s(&har)]);
    let h: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let requests: usize =
        u["connections"].as_array().unwrap().iter().map(|c| c["transactions"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(h["log"]["pages"].as_array().unwrap().len(), u["pages"].as_array().unwrap().len());
    assert_eq!(h["log"]["entries"].as_array().unwrap().len(), requests);
    assert!(requests > 20, "{requests}");

    // The capture moved away: said gone.
    std::fs::remove_file(&pcap).unwrap();
    let html = d.path("customer.html");
    let out = util::pov(&["find", s(&ds), "-c", s(&cfg), "--order", "ORD-7000002", "--replay", "html", "-o", s(&html)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("the capture {} is gone", s(&pcap))), "{err}");
    assert!(err.contains("no capture holding these sessions is left: no replay written"), "{err}");
    assert!(!html.exists());
    let out = util::pov(&["find", s(&ds), "-c", s(&cfg), "--cookie", &cookie]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("capture night.pcap (2026-11-02 02:00:00 to 02:03:37): gone from {}", s(&pcap))),
        "{text}"
    );
    assert!(text.contains("7 pages, 2 failures, converted: yes, orders worth 42.00"), "{text}");
    // Not a dataset, or no customer named: an error.
    let out = util::pov(&["find", s(&d.path("o")), "--user", &user]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pov dataset"));
    assert_eq!(util::pov(&["find", s(&ds)]).status.code(), Some(2));
}
