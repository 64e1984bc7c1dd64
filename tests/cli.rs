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

// ---------------------------------------------------------------------------
// Pipes, signals and full disks (issue 12). Helpers shared with analyze.rs.

/// Makes a named pipe (mkfifo(1): no unsafe code here).
pub(crate) fn mkfifo(path: &std::path::Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("run mkfifo").success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Starts `pov args` with stdout and stderr captured.
pub(crate) fn spawn_pov(args: &[&str], stdin: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pov"))
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pov")
}

/// Waits for `child` at most `secs` seconds (a guard against a hang, not
/// a speed check): kills it and fails if it is still running then.
pub(crate) fn wait_within(mut child: std::process::Child, secs: u64, what: &str) -> std::process::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("{what}: still running after {secs} s\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Writes `data` into the named pipe `fifo` from a thread (opening it
/// blocks until a reader opens it); write errors (the reader left) are
/// returned, not raised.
pub(crate) fn feed_fifo(fifo: &std::path::Path, data: Vec<u8>) -> std::thread::JoinHandle<std::io::Result<()>> {
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(&fifo)?.write_all(&data))
}

/// Sends `signal` (`INT`, `TERM`) to the process `pid` with kill(1).
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let ok = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill").success();
    assert!(ok, "kill -{signal} {pid}");
}

/// The names in `dir`, sorted (hidden ones included).
pub(crate) fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every file under `dir` (relative path -> bytes).
pub(crate) fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The unit of `ulimit -f` in this machine's sh (512 bytes in dash and
/// POSIX shells, 1024 in bash), measured once.
fn ulimit_unit() -> u64 {
    static UNIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *UNIT.get_or_init(|| {
        let d = TempDir::new("ulimit-unit");
        let probe = d.path("probe");
        let script = "trap '' XFSZ; ulimit -f 1; head -c 4096 /dev/zero > \"$0\" 2>/dev/null";
        let _ = Command::new("sh").args(["-c", script, s(&probe)]).status().expect("run sh");
        let unit = std::fs::metadata(&probe).map(|m| m.len()).unwrap_or(0);
        assert!(unit == 512 || unit == 1024, "ulimit -f 1 let {unit} bytes through");
        unit
    })
}

/// Runs `pov args` with files limited to `bytes` (rounded down to whole
/// `ulimit -f` units): writes past the limit fail with EFBIG, as on a full
/// disk, instead of killing pov (SIGXFSZ is ignored).
pub(crate) fn pov_with_file_limit(bytes: u64, args: &[&str]) -> std::process::Output {
    let blocks = (bytes / ulimit_unit()).max(1);
    let script = format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\"");
    Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_pov")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sh")
}

#[test]
fn replay_reads_stdin_and_named_pipes_like_the_file() {
    let d = TempDir::new("replay-pipes");
    let shop = util::root().join("samples/shop.pcap");
    let bytes = std::fs::read(&shop).unwrap();
    let user = {
        let users = jsonl(&util::pov_ok(&["users", "--format", "jsonl", "--quiet", s(&shop)]));
        let worst = users.iter().max_by_key(|u| u["failures_total"].as_u64().unwrap()).unwrap();
        worst["user"].as_str().unwrap().to_string()
    };
    // Masks are keyed per run unless `[privacy] mask_key` is set: set, the
    // runs' outputs can be compared byte for byte.
    let cfg = d.path("pov.toml");
    std::fs::write(&cfg, "[privacy]\nmask_key = \"pipes-test\"\n").unwrap();
    for (kind, select) in [("html", vec!["--failed"]), ("html", vec!["--user", &user]), ("har", vec!["--user", &user])]
    {
        let from_file = d.path("file.out");
        let mut args = vec!["replay", kind, "--quiet", "-c", s(&cfg)];
        args.extend(&select);
        util::pov_ok(&[&args[..], &["-o", s(&from_file), s(&shop)]].concat());
        let expected = std::fs::read(&from_file).unwrap();
        assert!(expected.len() > 10_000, "a real replay: {} bytes", expected.len());

        // stdin: the transactions kept for the replay go next to the
        // output, and are gone afterwards.
        let dir = d.path("stdin");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("r.out");
        let mut child = spawn_pov(&[&args[..], &["-o", s(&out), "-"]].concat(), Stdio::piped());
        let mut stdin = child.stdin.take().unwrap();
        let data = bytes.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let res = wait_within(child, 60, "replay from stdin");
        writer.join().unwrap().unwrap();
        assert!(res.status.success(), "{select:?}: {}", String::from_utf8_lossy(&res.stderr));
        assert!(std::fs::read(&out).unwrap() == expected, "{kind} {select:?} from stdin differs from the file's");
        assert_eq!(names_in(&dir), ["r.out"], "no store or temporary left");

        // A named pipe.
        let dir = d.path("fifo");
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = d.path("capture.pipe");
        let _ = std::fs::remove_file(&fifo);
        mkfifo(&fifo);
        let out = dir.join("r.out");
        let writer = feed_fifo(&fifo, bytes.clone());
        let res = wait_within(spawn_pov(&[&args[..], &["-o", s(&out), s(&fifo)]].concat(), Stdio::null()), 60, "fifo");
        writer.join().unwrap().unwrap();
        assert!(res.status.success(), "{select:?}: {}", String::from_utf8_lossy(&res.stderr));
        assert!(
            std::fs::read(&out).unwrap() == expected,
            "{kind} {select:?} from a named pipe differs from the file's"
        );
        assert_eq!(names_in(&dir), ["r.out"], "no store or temporary left");
    }
}

#[test]
fn transactions_output_on_a_full_disk_is_an_error_naming_it_and_leaves_nothing() {
    let d = TempDir::new("tx-full");
    let out = d.path("tx.jsonl");
    // The whole output is about 500 KB; 16 KB fit.
    let res = pov_with_file_limit(16 << 10, &["transactions", "--quiet", "-o", s(&out), s(&sample_shop())]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}: File too large", out.display())), "the error names the file: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(names_in(&d.0).is_empty(), "no temporary, no half-written file: {:?}", names_in(&d.0));
    // The same without the limit is written whole.
    util::pov_ok(&["transactions", "--quiet", "-o", s(&out), s(&sample_shop())]);
    assert!(std::fs::metadata(&out).unwrap().len() > 16 << 10);
}

fn sample_shop() -> std::path::PathBuf {
    util::root().join("samples/shop.pcap")
}

/// A synthetic capture of `users` users: its bytes.
pub(crate) fn synth_capture(d: &TempDir, users: &str, start: &str) -> Vec<u8> {
    let (pcap, key) = (d.path(&format!("synth-{users}-{start}.pcap")), d.path(&format!("synth-{users}-{start}.json")));
    util::synth(&["--users", users, "--start", start], &pcap, &key);
    std::fs::read(&pcap).unwrap()
}

#[test]
fn transactions_stopped_by_sigterm_exit_143_and_write_nothing() {
    let d = TempDir::new("tx-sigterm");
    let capture = synth_capture(&d, "8", "1793584800");
    let out = d.path("tx.jsonl");
    let mut child = spawn_pov(&["transactions", "--quiet", "-o", s(&out), "-"], Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    // 2 MB accepted by the pipe: pov is reading (the temporary exists).
    stdin.write_all(&capture[..2 << 20]).unwrap();
    assert!(names_in(&d.0).iter().any(|n| n.starts_with(".tx.jsonl.tmp.")), "{:?}", names_in(&d.0));
    send_signal(child.id(), "TERM");
    // More packets, and the pipe kept open: pov must stop between packets,
    // not wait for the end of its input.
    let rest = capture[2 << 20..].to_vec();
    let (close, closed) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&rest);
        let _ = closed.recv();
    });
    let res = wait_within(child, 30, "transactions after SIGTERM");
    close.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(res.status.code(), Some(143));
    assert_eq!(String::from_utf8_lossy(&res.stderr), "pov: interrupted by SIGTERM; nothing written\n");
    assert!(!names_in(&d.0).iter().any(|n| n.starts_with(".tx") || n == "tx.jsonl"), "{:?}", names_in(&d.0));
}

#[test]
fn synth_stopped_by_sigint_exits_130_and_leaves_no_temporary() {
    let d = TempDir::new("synth-sigint");
    let (pcap, key) = (d.path("big.pcap"), d.path("big.json"));
    // Far more users than it can write before the signal.
    let child = spawn_pov(&["synth", "--users", "1000000", "--out", s(&pcap), "--truth", s(&key)], Stdio::null());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !names_in(&d.0).iter().any(|n| n.starts_with(".big.pcap.tmp.")) {
        assert!(std::time::Instant::now() < deadline, "synth never started writing: {:?}", names_in(&d.0));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    send_signal(child.id(), "INT");
    let res = wait_within(child, 30, "synth after SIGINT");
    assert_eq!(res.status.code(), Some(130), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(String::from_utf8_lossy(&res.stderr), "pov: interrupted by SIGINT; nothing written\n");
    assert!(names_in(&d.0).is_empty(), "no temporary, no half-written file: {:?}", names_in(&d.0));
}

/// Every byte-count flag takes a unit (powers of 1024) as well as a plain
/// number, and says what is wrong with one it cannot read.
#[test]
fn byte_flags_take_units() {
    let f = sample();
    let limit = |v: &str| -> u64 {
        let out = util::pov_ok(&["info", "--format", "json", "--memory-budget", v, s(&f)]);
        let j: serde_json::Value = serde_json::from_str(&out).expect("json");
        j["budget"]["limit"].as_u64().expect("limit")
    };
    assert_eq!(limit("64MiB"), 64 << 20);
    assert_eq!(limit("64m"), limit("67108864"));
    let out = util::pov(&["transactions", "--max-held-bytes", "1GiB", "--body-keep-bytes", "4KiB", s(&f)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = util::pov(&["info", "--memory-budget", "64XB", s(&f)]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown size unit 'XB'"));
}
