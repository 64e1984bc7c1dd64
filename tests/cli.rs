//! The command line's contract: formats, exit codes, errors that name the
//! file and byte offset, stdin, gzip, merged inputs, atomic output.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{self, TempDir, pcap_records, s};

fn sample() -> std::path::PathBuf {
    util::root().join("samples/local-curl.pcap")
}

fn jsonl(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[test]
fn formats_table_json_jsonl_csv() {
    let p = sample();
    let table = util::pov_ok(&["flows", s(&p)]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 11, "header + 10 connections:\n{table}");
    assert!(lines[0].trim_start().starts_with('#') && lines[0].contains(" ts "), "{}", lines[0]);
    assert!(lines[10].contains("rst by server") && lines[10].contains("REJ"), "{}", lines[10]);

    let json: serde_json::Value = serde_json::from_str(&util::pov_ok(&["flows", "--format", "json", s(&p)])).unwrap();
    let arr = json.as_array().expect("array");
    assert_eq!(arr.len(), 10);
    let rows = jsonl(&util::pov_ok(&["flows", "--format", "jsonl", s(&p)]));
    assert_eq!(&rows, arr, "json and jsonl carry the same records");
    let total_c2s: u64 = rows.iter().map(|r| r["c2s_bytes"].as_u64().unwrap()).sum();
    let total_s2c: u64 = rows.iter().map(|r| r["s2c_bytes"].as_u64().unwrap()).sum();
    // samples/README.md: 1171 bytes client to server, 4973 back (tshark).
    assert_eq!((total_c2s, total_s2c), (1171, 4973));

    let csv = util::pov_ok(&["flows", "--format", "csv", s(&p)]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 11);
    assert!(lines[0].starts_with("id,ts,duration,client,server,c2s_packets,c2s_bytes"));
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(fields[3], rows[0]["client"].as_str().unwrap());
    assert_eq!(fields[6], rows[0]["c2s_bytes"].to_string());
}

#[test]
fn not_a_capture_is_named_exit_2_and_other_inputs_still_analysed() {
    let d = TempDir::new("notcap");
    let notes = d.path("notes.txt");
    std::fs::write(&notes, "<!DOCTYPE html>\n").unwrap();
    let out = util::pov(&["flows", "--format", "jsonl", s(&notes), s(&sample())]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notes.txt: not a pcap or pcapng capture"), "{err}");
    assert_eq!(jsonl(&String::from_utf8_lossy(&out.stdout)).len(), 10);

    let missing = d.path("missing.pcap");
    let out = util::pov(&["info", s(&missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pcap"));
}

#[test]
fn truncated_capture_keeps_what_was_read_and_warns_with_offset() {
    let full = std::fs::read(sample()).unwrap();
    let (_, recs) = pcap_records(&full);
    // Cut 10 bytes into the last record's data.
    let last_start = full.len() - recs.last().unwrap().len();
    let cut = last_start + 16 + 10;
    let d = TempDir::new("trunc");
    let p = d.path("cut.pcap");
    std::fs::write(&p, &full[..cut]).unwrap();
    let out = util::pov(&["flows", "--format", "jsonl", s(&p)]);
    assert_eq!(out.status.code(), Some(0), "a cut capture is a warning, not an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pcap") && err.contains(&format!("byte {last_start}")), "{err}");
    let rows = jsonl(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 10, "the last frame (the RST of a refused connection) is lost, its SYN is not");
    let refused = &rows[9];
    assert_eq!(refused["state"], "S0");
}

#[test]
fn corrupt_record_in_the_middle_is_an_error_with_offset() {
    let full = std::fs::read(sample()).unwrap();
    let (_, recs) = pcap_records(&full);
    // Make record 60's captured length absurd.
    let at: usize = 24 + recs[..59].iter().map(Vec::len).sum::<usize>();
    let mut bad = full.clone();
    bad[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let d = TempDir::new("corrupt");
    let p = d.path("bad.pcap");
    std::fs::write(&p, &bad).unwrap();
    let out = util::pov(&["info", "--format", "json", s(&p)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("bad.pcap: byte {at}")), "{err}");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["packets"], 59, "everything before the bad record is analysed");
}

#[test]
fn gzip_and_stdin_give_the_same_flows() {
    let plain = util::pov_ok(&["flows", "--format", "jsonl", s(&sample())]);
    let d = TempDir::new("gz");
    let gz = d.path("sample.pcap.gz");
    std::fs::write(&gz, gzip(&std::fs::read(sample()).unwrap())).unwrap();
    assert_eq!(util::pov_ok(&["flows", "--format", "jsonl", s(&gz)]), plain);

    let mut child = Command::new(env!("CARGO_BIN_EXE_pov"))
        .args(["flows", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(&gz).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), plain, "gzipped stdin");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn files_are_merged_by_timestamp_like_mergecap() {
    let full = std::fs::read(sample()).unwrap();
    let (header, recs) = pcap_records(&full);
    // Odd and even frames in two files, in the wrong order on the command line.
    let mut a = header.clone();
    let mut b = header.clone();
    for (i, r) in recs.iter().enumerate() {
        if i % 2 == 0 { a.extend_from_slice(r) } else { b.extend_from_slice(r) }
    }
    let d = TempDir::new("merge");
    let (pa, pb) = (d.path("a.pcap"), d.path("b.pcap"));
    std::fs::write(&pa, &a).unwrap();
    std::fs::write(&pb, &b).unwrap();
    let merged = util::pov_ok(&["flows", "--format", "jsonl", s(&pb), s(&pa)]);
    let plain = util::pov_ok(&["flows", "--format", "jsonl", s(&sample())]);
    assert_eq!(merged, plain);
}

#[test]
fn output_file_is_written_atomically() {
    let d = TempDir::new("out");
    let p = d.path("flows.csv");
    let out = util::pov(&["flows", "--format", "csv", "-o", s(&p), s(&sample())]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text.lines().count(), 11);
    let names: Vec<String> =
        std::fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["flows.csv".to_string()], "no temporary file left");
}

#[test]
fn info_reports_files_and_counters() {
    let v: serde_json::Value =
        serde_json::from_str(&util::pov_ok(&["info", "--format", "json", s(&sample())])).unwrap();
    assert_eq!(v["packets"], 130);
    assert_eq!(v["files"][0]["packets"], 130);
    assert_eq!(v["files"][0]["linktypes"]["1"], 130);
    assert_eq!(v["decode"]["outcome"]["tcp_segments"], 130);
    assert_eq!(v["tcp"]["connections"], 10);
    assert_eq!(v["tcp"]["closed_fin"], 8);
    assert_eq!(v["tcp"]["closed_rst"], 2);
    let table = util::pov_ok(&["info", s(&sample())]);
    assert!(table.contains("pcap (le, us)"), "{table}");
    assert!(table.contains("tcp.evicted"), "every cap's counter is listed:\n{table}");
    assert!(table.contains("decode.fragments.evicted"));
}

#[test]
fn every_corpus_capture_is_read_without_error_or_unaccounted_packet() {
    for p in util::corpus_pcaps() {
        let v: serde_json::Value =
            serde_json::from_str(&util::pov_ok(&["info", "--format", "json", "--quiet", s(&p)])).unwrap();
        let packets = v["packets"].as_u64().unwrap();
        assert_eq!(v["decode"]["packets"].as_u64().unwrap(), packets, "{}", p.display());
        let outcomes: u64 = v["decode"]["outcome"].as_object().unwrap().values().map(|x| x.as_u64().unwrap()).sum();
        assert_eq!(outcomes, packets, "{}: every packet ends in exactly one bucket", p.display());
        assert!(v["errors"].as_array().unwrap().is_empty(), "{}: {}", p.display(), v["errors"]);
    }
}
