//! `pov flows` against tshark on every capture of the shared corpus and on
//! the committed sample.
//!
//! The expected figures were derived once with tshark 4.0.17 by
//! `tests/corpus/tshark-flows.sh` and committed in
//! `tests/corpus/tshark-flows.tsv` (see tests/corpus/README.md).

use std::collections::BTreeMap;

use crate::util;

/// One tshark `tcp.stream`, as the TSV gives it.
#[derive(Debug, Clone)]
struct TsharkFlow {
    capture: String,
    stream: u64,
    first_frame: u64,
    a: String,
    b: String,
    pkts_ab: u64,
    bytes_ab: u64,
    pkts_ba: u64,
    bytes_ba: u64,
    seq_bytes_ab: u64,
    seq_bytes_ba: u64,
}

fn load_tsv(text: &str) -> Vec<TsharkFlow> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    let (c_cap, c_stream, c_ff, c_a, c_b) = (col("capture"), col("stream"), col("first_frame"), col("a"), col("b"));
    let (c_pab, c_bab, c_pba, c_bba) = (col("pkts_ab"), col("bytes_ab"), col("pkts_ba"), col("bytes_ba"));
    let (c_sab, c_sba) = (col("seq_bytes_ab"), col("seq_bytes_ba"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap_or_else(|_| panic!("bad number in {l}"));
            TsharkFlow {
                capture: f[c_cap].to_string(),
                stream: n(c_stream),
                first_frame: n(c_ff),
                a: f[c_a].to_string(),
                b: f[c_b].to_string(),
                pkts_ab: n(c_pab),
                bytes_ab: n(c_bab),
                pkts_ba: n(c_pba),
                bytes_ba: n(c_bba),
                seq_bytes_ab: n(c_sab),
                seq_bytes_ba: n(c_sba),
            }
        })
        .collect()
}

/// pov's flows for one capture, as JSON values.
fn pov_flows(path: &std::path::Path) -> Vec<serde_json::Value> {
    let out = util::pov_ok(&["flows", "--format", "jsonl", "--quiet", util::s(path)]);
    out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

/// Figures of one direction, as pov reports them: (packets, bytes, stream
/// bytes).
fn dir_figures(f: &serde_json::Value, sender: &str) -> (u64, u64, u64) {
    let client = f["client"].as_str().expect("client") == sender;
    let p = if client { "c2s" } else { "s2c" };
    let n = |k: &str| f[format!("{p}_{k}")].as_u64().expect("number");
    (n("packets"), n("bytes"), n("stream_bytes"))
}

/// Compares pov with tshark for one capture; returns a list of mismatches.
fn compare(capture: &str, path: &std::path::Path, expected: &[TsharkFlow]) -> Vec<String> {
    let got = pov_flows(path);
    let mut problems = Vec::new();
    if got.len() != expected.len() {
        problems.push(format!("{capture}: {} connections, tshark {}", got.len(), expected.len()));
    }
    // Match each tshark stream to the pov flow with the same endpoints that
    // starts at the same frame.
    let mut by_frame: BTreeMap<u64, &serde_json::Value> = BTreeMap::new();
    for f in &got {
        by_frame.insert(f["first_frame"].as_u64().expect("first_frame"), f);
    }
    for t in expected {
        let Some(f) = by_frame.get(&t.first_frame) else {
            problems.push(format!("{capture}: tshark stream {} (frame {}) has no pov flow", t.stream, t.first_frame));
            continue;
        };
        let ends = [f["client"].as_str().unwrap_or(""), f["server"].as_str().unwrap_or("")];
        if !(ends.contains(&t.a.as_str()) && ends.contains(&t.b.as_str())) {
            problems.push(format!("{capture}: stream {}: endpoints {ends:?} vs {} {}", t.stream, t.a, t.b));
            continue;
        }
        let ab = dir_figures(f, &t.a);
        let ba = dir_figures(f, &t.b);
        if (ab.0, ab.1, ba.0, ba.1) != (t.pkts_ab, t.bytes_ab, t.pkts_ba, t.bytes_ba) {
            problems.push(format!(
                "{capture}: stream {}: pov a->b {}p/{}B b->a {}p/{}B, tshark {}p/{}B {}p/{}B",
                t.stream, ab.0, ab.1, ba.0, ba.1, t.pkts_ab, t.bytes_ab, t.pkts_ba, t.bytes_ba
            ));
        }
        if (ab.2, ba.2) != (t.seq_bytes_ab, t.seq_bytes_ba) {
            problems.push(format!(
                "{capture}: stream {}: pov distinct stream bytes {}/{}, tshark sequence space covered {}/{}",
                t.stream, ab.2, ba.2, t.seq_bytes_ab, t.seq_bytes_ba
            ));
        }
    }
    problems
}

#[test]
fn every_corpus_capture_agrees_with_tshark_on_connections_and_bytes() {
    let text = std::fs::read_to_string(util::root().join("tests/corpus/tshark-flows.tsv")).expect("tsv");
    let all = load_tsv(&text);
    let mut by_capture: BTreeMap<String, Vec<TsharkFlow>> = BTreeMap::new();
    for f in all {
        by_capture.entry(f.capture.clone()).or_default().push(f);
    }
    let pcaps = util::corpus_pcaps();
    assert_eq!(pcaps.len(), 32, "corpus captures");
    let mut problems = Vec::new();
    let mut compared = 0;
    for path in &pcaps {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        let expected = by_capture.remove(&name).unwrap_or_default();
        compared += expected.len();
        problems.extend(compare(&name, path, &expected));
    }
    assert!(by_capture.is_empty(), "tshark rows for captures not in the corpus: {:?}", by_capture.keys());
    assert_eq!(compared, 274);
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_readme_sample_agrees_with_tshark() {
    let text = std::fs::read_to_string(util::root().join("samples/local-curl.tshark-flows.tsv")).expect("tsv");
    let expected = load_tsv(&text);
    assert_eq!(expected.len(), 10);
    let problems = compare("local-curl.pcap", &util::root().join("samples/local-curl.pcap"), &expected);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
