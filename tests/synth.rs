//! `pov synth`: determinism, the committed samples, and agreement between
//! `pov flows` and the generator's answer key (connections, bytes per
//! direction, bytes missing from the capture).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::util::{self, TempDir, s};

/// Every connection of an answer key, by (client, server).
fn truth_conns(key: &Path) -> HashMap<(String, String), Vec<serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(key).expect("key")).expect("json");
    let mut m: HashMap<(String, String), Vec<serde_json::Value>> = HashMap::new();
    for u in v["users"].as_array().expect("users") {
        for c in u["connections"].as_array().expect("connections") {
            let k = (c["client"].as_str().unwrap().to_string(), c["server"].as_str().unwrap().to_string());
            m.entry(k).or_default().push(c.clone());
        }
    }
    m
}

/// Compares `pov flows` on `pcap` with the answer key; returns mismatches.
fn compare_flows(pcap: &Path, key: &Path) -> (usize, Vec<String>) {
    let truth = truth_conns(key);
    let total: usize = truth.values().map(Vec::len).sum();
    let out = util::pov_ok(&["flows", "--format", "jsonl", "--quiet", s(pcap)]);
    let flows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut problems = Vec::new();
    if flows.len() != total {
        problems.push(format!("{} flows, answer key {total} connections", flows.len()));
    }
    for f in &flows {
        let k = (f["client"].as_str().unwrap().to_string(), f["server"].as_str().unwrap().to_string());
        let Some(cands) = truth.get(&k) else {
            problems.push(format!("{k:?}: not in the answer key"));
            continue;
        };
        let ts = f["ts"].as_f64().unwrap();
        let c = cands
            .iter()
            .min_by(|a, b| {
                (a["start"].as_f64().unwrap() - ts).abs().total_cmp(&(b["start"].as_f64().unwrap() - ts).abs())
            })
            .unwrap();
        let got = [
            f["c2s_packets"].as_u64(),
            f["c2s_bytes"].as_u64(),
            f["s2c_packets"].as_u64(),
            f["s2c_bytes"].as_u64(),
            f["c2s_gap_bytes"].as_u64(),
            f["s2c_gap_bytes"].as_u64(),
        ];
        let want = [
            c["c2s"]["packets"].as_u64(),
            c["c2s"]["bytes"].as_u64(),
            c["s2c"]["packets"].as_u64(),
            c["s2c"]["bytes"].as_u64(),
            c["c2s"]["gap_bytes"].as_u64(),
            c["s2c"]["gap_bytes"].as_u64(),
        ];
        if got != want {
            problems.push(format!("{k:?}: pov {got:?}, answer key {want:?}"));
        }
    }
    (flows.len(), problems)
}

#[test]
fn flows_agree_with_the_answer_key_on_the_samples() {
    for (pcap, key, conns) in [
        ("samples/shop.pcap", "samples/shop.truth.json", 225),
        ("samples/shop-lossy.pcapng", "samples/shop-lossy.truth.json", 218),
    ] {
        let (n, problems) = compare_flows(&util::root().join(pcap), &util::root().join(key));
        assert_eq!(n, conns, "{pcap}");
        assert!(problems.is_empty(), "{pcap}:\n{}", problems.join("\n"));
    }
}

#[test]
fn flows_agree_with_the_answer_key_on_larger_lossy_runs() {
    let d = TempDir::new("synth-lossy");
    let mut gap_total = 0u64;
    for seed in [11, 12, 13] {
        let (pcap, key) = (d.path(&format!("s{seed}.pcapng")), d.path(&format!("s{seed}.json")));
        util::pov_ok(&[
            "synth",
            "--users",
            "120",
            "--seed",
            &seed.to_string(),
            "--profile",
            "lossy",
            "--body-scale",
            "0.3",
            "--out",
            s(&pcap),
            "--truth",
            s(&key),
        ]);
        let (n, problems) = compare_flows(&pcap, &key);
        assert!(n > 500, "seed {seed}: only {n} connections");
        assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
        gap_total += v["totals"]["gap_bytes"].as_u64().unwrap();
    }
    assert!(gap_total > 10_000, "the runs really lost bytes in the capture ({gap_total})");
}

#[test]
fn synth_is_deterministic_and_writes_atomically() {
    let d = TempDir::new("synth-det");
    let run = |name: &str| {
        let (p, k) = (d.path(&format!("{name}.pcap")), d.path(&format!("{name}.json")));
        util::pov_ok(&[
            "synth",
            "--users",
            "8",
            "--seed",
            "3",
            "--body-scale",
            "0.05",
            "--out",
            s(&p),
            "--truth",
            s(&k),
        ]);
        (std::fs::read(p).unwrap(), std::fs::read(k).unwrap())
    };
    let a = run("a");
    let b = run("b");
    assert!(a.0.len() > 10_000);
    assert_eq!(a, b, "same seed, same bytes");
    let mut names: Vec<String> =
        std::fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["a.json", "a.pcap", "b.json", "b.pcap"], "no temporary files left");
}

/// The committed samples are exactly what their documented commands make
/// (samples/README.md), so they can always be regenerated.
#[test]
fn samples_regenerate_byte_for_byte() {
    let d = TempDir::new("synth-regen");
    for (args, pcap, key) in [
        (vec!["--seed", "7"], "shop.pcap", "shop.truth.json"),
        (vec!["--seed", "8", "--profile", "lossy"], "shop-lossy.pcapng", "shop-lossy.truth.json"),
    ] {
        let (p, k) = (d.path(pcap), d.path(key));
        let mut all = vec!["synth", "--users", "25", "--body-scale", "0.05"];
        all.extend(args);
        all.extend(["--out", s(&p), "--truth", s(&k)]);
        util::pov_ok(&all);
        assert!(
            std::fs::read(&p).unwrap() == std::fs::read(util::root().join("samples").join(pcap)).unwrap(),
            "{pcap} differs"
        );
        assert!(
            std::fs::read(&k).unwrap() == std::fs::read(util::root().join("samples").join(key)).unwrap(),
            "{key} differs"
        );
        assert!(std::fs::metadata(&p).unwrap().len() < 2 << 20, "{pcap} must stay under 2 MiB");
    }
}

/// tshark decodes the samples without a single "Malformed" expert item,
/// and finds every request of the clean sample. Runs when tshark is
/// installed (.ci/run installs it).
#[test]
fn tshark_decodes_the_samples_without_malformed_packets() {
    if !crate::util::have("tshark") {
        return;
    }
    let tshark = |args: &[&str]| -> String {
        let out = Command::new("tshark").args(args).output().expect("tshark");
        assert!(out.status.success(), "tshark {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let clean = util::root().join("samples/shop.pcap");
    let lossy = util::root().join("samples/shop-lossy.pcapng");
    for (p, extra) in [
        (&clean, vec![]),
        // Reordered segments need tshark's out-of-order reassembly, or it
        // reports them as overlapping fragments.
        (&lossy, vec!["-o", "tcp.reassemble_out_of_order:TRUE"]),
    ] {
        let mut args = vec!["-n", "-r", s(p), "-q", "-z", "expert"];
        args.extend(extra);
        let text = tshark(&args);
        let malformed: Vec<&str> = text.lines().filter(|l| l.contains("Malformed")).collect();
        assert!(malformed.is_empty(), "{}:\n{}", p.display(), malformed.join("\n"));
    }
    let requests = tshark(&["-n", "-r", s(&clean), "-Y", "http.request"]).lines().count();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(util::root().join("samples/shop.truth.json")).unwrap()).unwrap();
    assert_eq!(requests as u64, v["totals"]["transactions"].as_u64().unwrap());
}
