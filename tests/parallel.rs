//! `--threads`: every output of a run on several threads equals the run on
//! one, on the samples, the shared corpus and a 5,000-user synthetic night.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{TempDir, corpus_pcaps, pov_ok, root, s};

/// The record commands whose output is compared, with their format.
const COMMANDS: [(&str, &str); 6] = [
    ("flows", "csv"),
    ("transactions", "jsonl"),
    ("pages", "jsonl"),
    ("sessions", "jsonl"),
    ("failures", "jsonl"),
    ("users", "jsonl"),
];

/// `pov CMD --threads N` on `pcap` (secrets not masked: masks use a key
/// drawn for each run).
fn records(cmd: &str, format: &str, pcap: &Path, threads: usize) -> String {
    let t = threads.to_string();
    let mut args = vec![cmd, "--quiet", "--format", format, "--threads", &t, s(pcap)];
    if cmd != "flows" {
        args.push("--no-mask");
    }
    if !matches!(cmd, "flows" | "transactions") {
        // (Robots' records too: every session, whoever made it.)
        args.push("--include-robots");
    }
    pov_ok(&args)
}

/// Every file of a `pov analyze` output folder (replays included), by
/// path relative to it.
fn folder(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read output folder") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").to_path_buf();
                out.insert(rel, fs::read(&p).expect("read output"));
            }
        }
    }
    out
}

/// `pov analyze` (with `extra` arguments) on one and on two threads, into
/// `out-1` and `out-2` of `d`: the same files, byte for byte (summary.json
/// less the inputs' names, which are the same anyway).
fn analyze_equal(pcaps: &[&Path], extra: &[&str], d: &TempDir) {
    let mut runs = Vec::new();
    for t in ["1", "2"] {
        let out = d.path(&format!("out-{t}"));
        let mut args = vec!["analyze", "--quiet", "--no-mask", "--threads", t, "--out", s(&out)];
        args.extend(extra);
        args.extend(pcaps.iter().map(|p| s(p)));
        pov_ok(&args);
        runs.push(folder(&out));
    }
    let (one, two) = (&runs[0], &runs[1]);
    assert_eq!(one.keys().collect::<Vec<_>>(), two.keys().collect::<Vec<_>>(), "the same files");
    assert!(one.contains_key(Path::new("transactions.parquet")) && one.contains_key(Path::new("summary.json")));
    for (name, bytes) in one {
        assert!(two.get(name) == Some(bytes), "{} differs between --threads 1 and 2", name.display());
    }
}

#[test]
fn records_are_the_same_on_one_thread_and_on_several() {
    let mut pcaps: Vec<PathBuf> =
        ["shop.pcap", "shop-lossy.pcapng", "local-curl.pcap"].iter().map(|n| root().join("samples").join(n)).collect();
    pcaps.extend(corpus_pcaps());
    let mut compared = 0;
    for pcap in &pcaps {
        for (cmd, format) in COMMANDS {
            let one = records(cmd, format, pcap, 1);
            for threads in [2, 3] {
                let many = records(cmd, format, pcap, threads);
                assert!(one == many, "pov {cmd} --threads {threads} differs from --threads 1 on {}", pcap.display());
            }
            compared += one.lines().count();
        }
    }
    // Not a comparison of empty outputs.
    assert!(compared > 5_000, "{compared} records compared");
}

#[test]
fn analyze_writes_the_same_files_on_one_thread_and_on_two() {
    let d = TempDir::new("parallel-analyze");
    analyze_equal(&[&root().join("samples/shop.pcap"), &root().join("samples/shop-lossy.pcapng")], &[], &d);
    // Alone, whose memory peak is the sessions closed at the end: taken a
    // few at a time on any number of threads, so the peak is the same.
    let alone = TempDir::new("parallel-analyze-shop");
    analyze_equal(&[&root().join("samples/shop.pcap")], &[], &alone);
}

#[test]
fn a_night_of_5000_users_is_the_same_on_one_thread_and_on_two() {
    let d = TempDir::new("parallel-night");
    let (pcap, truth) = (d.path("night.pcap"), d.path("night.truth.json"));
    pov_ok(&[
        "synth",
        "--quiet",
        "--users",
        "5000",
        "--seed",
        "11",
        "--body-scale",
        "0.02",
        "--rate",
        "5",
        "--out",
        s(&pcap),
        "--truth",
        s(&truth),
    ]);
    for (cmd, format) in [("transactions", "jsonl"), ("flows", "csv")] {
        let one = records(cmd, format, &pcap, 1);
        assert!(one.lines().count() > 50_000, "{cmd}: {} records", one.lines().count());
        assert!(one == records(cmd, format, &pcap, 2), "pov {cmd} differs between --threads 1 and 2");
        if cmd == "transactions" {
            // Requests that never got an answer hold the ordering back
            // past its caps on this night: what comes out after a
            // transaction that started later is what the counter says.
            let mut latest = f64::MIN;
            let mut late = 0;
            for l in one.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let ts = v["ts"].as_f64().unwrap();
                if ts < latest {
                    late += 1;
                }
                latest = latest.max(ts);
            }
            let info: serde_json::Value =
                serde_json::from_str(&pov_ok(&["info", "--format", "json", s(&pcap)])).unwrap();
            assert!(late > 0, "nothing out of order");
            assert_eq!(info["http"]["written_out_of_order"].as_u64(), Some(late));
        }
    }
    analyze_equal(&[&pcap], &[], &d);
}

/// Under a small memory budget, what is held for ordering stays within
/// it: the merge of the shards' transactions holds at most a quarter of
/// the budget (its fixed share, counted in `held_cap_releases` when it
/// lets go), where on 512 connections with requests in flight all held
/// for ordering came to more than the whole budget (9.6 MB of 8 MiB); and
/// the run is the same on one thread and on two.
#[test]
fn what_waits_for_its_order_stays_within_a_small_budget_on_any_threads() {
    let d = TempDir::new("parallel-merge-budget");
    let pcap = d.path("open.pcap");
    pov_ok(&["synth", "hostile", "--class", "open-sessions", "--scale", "8000", "--out", s(&pcap)]);
    // (Room for the 512 connections, so that none is evicted.)
    let limit: u64 = 8 << 20;
    let budget = limit.to_string();
    analyze_equal(&[&pcap], &["--replays", "0", "--memory-budget", &budget], &d);
    for t in ["1", "2"] {
        let sm: serde_json::Value =
            serde_json::from_slice(&fs::read(d.path(&format!("out-{t}")).join("summary.json")).unwrap()).unwrap();
        let ordering = sm["counters"]["budget"]["peak_by_holder"]["ordering"].as_u64().unwrap();
        assert!(ordering <= limit, "--threads {t}: {ordering} bytes held for ordering under a {limit}-byte budget");
        let released = sm["counters"]["http"]["held_cap_releases"].as_u64().unwrap();
        assert!(released > 1_000, "--threads {t}: the merge's share never bound ({released} released)");
        assert_eq!(sm["transactions"].as_u64(), Some(8_000));
    }
}
