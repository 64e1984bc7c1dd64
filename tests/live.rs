//! `pov live` (the `live` feature) on real kernel traffic: two network
//! namespaces joined by a veth pair, nothing else in them; a small HTTP
//! server in one, scripted clients with known requests in the other, and
//! `pov live` on the server's side of the pair.
//!
//! They need root (namespaces, capture) and python3; CI has both. Off CI,
//! without root they say so and skip. Every test removes its namespaces
//! (and with them the veth pair) and stops its processes, also when it
//! fails.
#![cfg(feature = "live")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::util::{self, TempDir, s};

/// Root and the tools, or a skip (a failure under CI).
fn can_run() -> bool {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| st.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    let ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    let py = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    let ok = uid && ip && py;
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "live tests need root, ip and python3 (root: {uid}, ip: {ip}, python3: {py}); CI has them"
    );
    if !ok {
        eprintln!("live tests need root, ip and python3: skipping (root: {uid}, ip: {ip}, python3: {py})");
    }
    ok
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a command");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a veth pair: the server at `.1`, two clients
/// at `.2` and `.3`. Removed on drop, with every process started in them.
struct Net {
    srv: String,
    cli: String,
    /// The server's end of the pair (where `pov live` captures).
    iface: String,
    subnet: String,
    children: Vec<Child>,
}

impl Net {
    fn new() -> Net {
        static N: AtomicU32 = AtomicU32::new(0);
        let k = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{k}", std::process::id() % 100_000);
        let net = Net {
            srv: format!("povlive-s{id}"),
            cli: format!("povlive-c{id}"),
            iface: format!("pls{id}"),
            subnet: format!("10.{}.{}", 200 + k % 50, std::process::id() % 250),
            children: Vec::new(),
        };
        let peer = format!("plc{id}");
        sh(&["ip", "netns", "add", &net.srv]);
        sh(&["ip", "netns", "add", &net.cli]);
        sh(&["ip", "link", "add", &net.iface, "type", "veth", "peer", "name", &peer]);
        sh(&["ip", "link", "set", &net.iface, "netns", &net.srv]);
        sh(&["ip", "link", "set", &peer, "netns", &net.cli]);
        sh(&["ip", "-n", &net.srv, "addr", "add", &format!("{}.1/24", net.subnet), "dev", &net.iface]);
        for host in [2, 3] {
            sh(&["ip", "-n", &net.cli, "addr", "add", &format!("{}.{host}/24", net.subnet), "dev", &peer]);
        }
        for (ns, dev) in [(&net.srv, &net.iface), (&net.cli, &peer)] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        net
    }

    fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.subnet)
    }

    /// `cmd` inside namespace `ns`.
    fn exec(&self, ns: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        c
    }

    /// Starts the HTTP server: every path answers 200 with a body of
    /// `len=N` bytes named in it (`/n/123` gives 123 bytes), `/missing`
    /// answers 404, `/boom` 500, `/slow` 200 after a second, and `/reset`
    /// resets the connection without an answer. Waits until it accepts
    /// connections.
    fn serve(&mut self) {
        let script = r#"
import sys, socket, struct, time, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/reset":
            # A reset and nothing else (no FIN first): linger 0, closed now.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
            self.close_connection = True
            return
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/missing":
            body, code = b"no such page\n", 404
        elif self.path == "/boom":
            body, code = b"boom\n", 500
        else:
            n = int(self.path.rsplit("/", 1)[-1] or 0) if self.path.startswith("/n/") else 10
            body, code = b"x" * n, 200
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], 8080), H).serve_forever()
"#;
        let child = self
            .exec(&self.srv, &["python3", "-c", script, &self.ip(1)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        self.children.push(child);
        // Ready when a client can connect.
        let probe = format!(
            "import socket,time\nfor i in range(100):\n  try:\n    socket.create_connection(('{}',8080),1).close(); break\n  except OSError: time.sleep(0.05)\n",
            self.ip(1)
        );
        let out = self.exec(&self.cli, &["python3", "-c", &probe]).output().expect("probe");
        assert!(out.status.success());
    }

    /// Runs the clients: each `(host, [paths])` sends its requests in
    /// order on one keep-alive connection from address `.host`.
    fn clients(&self, script: &[(u8, Vec<String>)]) {
        let mut py = String::from("import http.client\n");
        for (host, paths) in script {
            py.push_str(&format!(
                "c = http.client.HTTPConnection('{}', 8080, source_address=('{}', 0))\n",
                self.ip(1),
                self.ip(*host)
            ));
            for p in paths {
                py.push_str(&format!("c.request('GET', '{p}'); r = c.getresponse(); r.read()\n"));
            }
            py.push_str("c.close()\n");
        }
        let out = self.exec(&self.cli, &["python3", "-c", &py]).output().expect("clients");
        assert!(out.status.success(), "clients: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts `pov live` on the server's side with `args`, and waits until
    /// it captures.
    fn live(&mut self, args: &[&str]) -> (u32, BufReader<ChildStderr>) {
        let mut child = self
            .exec(&self.srv, &[env!("CARGO_BIN_EXE_pov"), "live", "-i", &self.iface])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pov live");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("pov live's first line");
        assert!(line.starts_with("pov live: capturing on "), "pov live said: {line}");
        let pid = child.id();
        self.children.push(child);
        (pid, err)
    }

    /// Stops `pov live` (`pid`) with `signal` and returns its exit code
    /// and what it printed after its first line.
    fn stop(&mut self, pid: u32, signal: &str, mut err: BufReader<ChildStderr>) -> (Option<i32>, String) {
        sh(&["kill", &format!("-{signal}"), &pid.to_string()]);
        let i = self.children.iter().position(|c| c.id() == pid).expect("a child");
        let mut child = self.children.remove(i);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            assert!(Instant::now() < deadline, "pov live did not stop within 30 s of {signal}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        (status.code(), rest)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace deletes its end of the veth pair, and so
        // the pair.
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// The complete capture files in `dir` (no temporary ones may be left).
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).expect("read the folder").map(|e| e.unwrap().path()).collect();
    files.sort();
    let parts: Vec<&PathBuf> = files.iter().filter(|p| s(p).ends_with(".part")).collect();
    assert!(parts.is_empty(), "temporary files left: {parts:?}");
    files.retain(|p| s(p).ends_with(".pcapng"));
    files
}

/// (client address, method, URI, status) of every transaction `pov
/// transactions` finds in `files` (with `extra` flags), counted.
fn transactions(files: &[PathBuf], extra: &[&str]) -> BTreeMap<(String, String, String, u64), u32> {
    let mut args = vec!["transactions", "--quiet", "--format", "jsonl"];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|p| s(p)));
    let mut out = BTreeMap::new();
    for line in util::pov_ok(&args).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let key = (
            v["id.orig_h"].as_str().unwrap_or_default().to_string(),
            v["method"].as_str().unwrap_or_default().to_string(),
            v["uri"].as_str().unwrap_or_default().to_string(),
            v["status_code"].as_u64().unwrap_or(0),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// The number before `what` in `text` ("3 HTTP transactions").
fn count_before(text: &str, what: &str) -> u64 {
    let at = text.find(what).unwrap_or_else(|| panic!("no '{what}' in: {text}"));
    text[..at].split_whitespace().last().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("no count in: {text}"))
}

#[test]
fn live_capture_finds_exactly_the_scripted_transactions_filters_and_rotates() {
    if !can_run() {
        return;
    }
    let d = TempDir::new("live-http");
    let mut net = Net::new();
    net.serve();
    let (plain, filtered, rotated) = (d.path("plain"), d.path("filtered"), d.path("rotated"));
    let excluded = net.ip(3);
    let not_b = format!("not host {excluded}");
    // Three captures at once on the same interface: everything; all but
    // client .3 (a kernel filter); everything into files of at most 4 KiB.
    let (p1, e1) = net.live(&["--out", s(&plain)]);
    let (p2, e2) = net.live(&["--out", s(&filtered), "--filter", &not_b]);
    let (p3, e3) = net.live(&["--out", s(&rotated), "--rotate-size", "4KiB", "--keep", "1000"]);
    let script: Vec<(u8, Vec<String>)> = vec![
        (2, vec!["/n/100".into(), "/n/5000".into(), "/missing".into()]),
        (3, vec!["/n/7".into(), "/n/20000".into()]),
        (2, vec!["/n/1".into()]),
    ];
    net.clients(&script);
    // Let the last packets reach the captures.
    std::thread::sleep(Duration::from_millis(500));
    let (c1, out1) = net.stop(p1, "INT", e1);
    let (c2, out2) = net.stop(p2, "TERM", e2);
    let (c3, out3) = net.stop(p3, "INT", e3);
    eprintln!("{out1}{out2}{out3}");
    // Stopped by a signal is how a capture ends: exit code 0.
    assert_eq!((c1, c2, c3), (Some(0), Some(0), Some(0)), "{out1}{out2}{out3}");

    let mut want: BTreeMap<(String, String, String, u64), u32> = BTreeMap::new();
    for (host, paths) in &script {
        for p in paths {
            let status = if p == "/missing" { 404 } else { 200 };
            *want.entry((net.ip(*host), "GET".into(), p.clone(), status)).or_insert(0) += 1;
        }
    }
    let want_not_b: BTreeMap<_, _> =
        want.iter().filter(|(k, _)| k.0 != excluded).map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(want.values().sum::<u32>(), 6);
    assert_eq!(want_not_b.values().sum::<u32>(), 4);

    // Everything: exactly the scripted transactions, in the files and in
    // what pov live parsed while capturing.
    let files = captures(&plain);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(transactions(&files, &[]), want);
    assert_eq!(count_before(&out1, " HTTP transactions"), 6, "{out1}");
    assert_eq!(count_before(&out1, " connections"), 3, "{out1}");
    // The kernel filter left out client .3, exactly.
    let ffiles = captures(&filtered);
    assert_eq!(transactions(&ffiles, &[]), want_not_b);
    assert_eq!(count_before(&out2, " HTTP transactions"), 4, "{out2}");
    // The same filter on the files (tcpdump -r FILE EXPR): the same.
    assert_eq!(transactions(&files, &["--filter", &not_b]), want_not_b);
    // Rotated by size: several files, none over the limit, read back as
    // one capture to the same transactions and packets.
    let rfiles = captures(&rotated);
    assert!(rfiles.len() >= 5, "{} files", rfiles.len());
    for f in &rfiles {
        let len = std::fs::metadata(f).unwrap().len();
        // A file holds at least one packet; these are all below 4 KiB
        // except the 20,000-byte answer's segments (one per file).
        assert!(
            len <= 4096 || util::pov_ok(&["info", "--quiet", "--format", "json", s(f)]).contains("\"packets\": 1,")
        );
    }
    assert_eq!(transactions(&rfiles, &[]), want);
    // (TCP packets: the captures started one after the other, and the
    // kernel's own IPv6 and ARP packets may fall before or after each.)
    let packets = |files: &[PathBuf], filter: &str| {
        let mut args = vec!["info", "--quiet", "--format", "json", "--filter", filter];
        args.extend(files.iter().map(|p| s(p)));
        let v: serde_json::Value = serde_json::from_str(&util::pov_ok(&args)).unwrap();
        v["packets"].as_u64().unwrap()
    };
    let tcp = packets(&files, "tcp");
    assert!(tcp > 30, "{tcp} TCP packets");
    assert_eq!(packets(&rfiles, "tcp"), tcp);
    let n = packets(&files, "tcp or not tcp");
    assert_eq!(count_before(&out1, " packets,"), n, "{out1}");
    // Nothing lost here, and it says so.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plain.join("live-info.json")).unwrap()).unwrap();
    assert_eq!(info["capture_loss"]["dropped_kernel"], 0);
    assert!(info["capture_loss"]["received"].as_u64().unwrap() >= n);
}

#[test]
fn a_full_capture_buffer_shows_as_capture_loss() {
    if !can_run() {
        return;
    }
    let d = TempDir::new("live-drops");
    let mut net = Net::new();
    let out = d.path("out");
    let (pid, err) = net.live(&["--out", s(&out), "--buffer-mb", "1"]);
    // pov live is paused while a burst of 50,000 datagrams arrives: the
    // kernel's 1 MiB buffer cannot hold them.
    sh(&["kill", "-STOP", &pid.to_string()]);
    let burst = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(50000):\n  s.sendto(b'x' * 200, ('{}', 9))\n",
        net.ip(1)
    );
    let sent = net.exec(&net.cli, &["python3", "-c", &burst]).output().expect("burst");
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    sh(&["kill", "-CONT", &pid.to_string()]);
    std::thread::sleep(Duration::from_millis(1500));
    let (code, text) = net.stop(pid, "INT", err);
    eprintln!("{text}");
    assert_eq!(code, Some(0), "{text}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("live-info.json")).unwrap()).unwrap();
    let loss = &info["capture_loss"];
    let (recv, dropped) = (loss["received"].as_u64().unwrap(), loss["dropped_kernel"].as_u64().unwrap());
    let read = info["packets"].as_u64().unwrap();
    assert!(dropped > 1000, "{loss}");
    assert!(read > 1000, "{read} packets read");
    // Every packet the kernel saw was either read or dropped.
    assert!(read + dropped <= recv && recv >= 50_000, "read {read}, {loss}");
    assert!(text.contains(&format!("{dropped} dropped by the kernel (buffer full)")), "{text}");
    // Loss, not an application failure: the capture reads back whole and
    // nothing failed.
    let files = captures(&out);
    assert_eq!(files.len(), 1);
    assert!(util::pov_ok(&["failures", "--quiet", "--format", "jsonl", s(&files[0])]).trim().is_empty());
}

#[test]
fn a_missing_interface_is_one_line_and_exit_code_2() {
    if !can_run() {
        return;
    }
    let d = TempDir::new("live-errors");
    let out = util::pov(&["live", "-i", "povnosuch0", "--out", s(&d.path("x"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("pov: error: cannot capture on povnosuch0: no such interface"), "{err}");
    // A filter that does not compile, on a file: exit code 2, libpcap's
    // reason.
    let out = util::pov(&["transactions", "--filter", "tcp prot 80", s(&util::root().join("samples/shop.pcap"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the filter 'tcp prot 80' does not compile"), "{err}");
}

/// `--filter` on a file (no root needed): what it leaves out is counted in
/// `summary.json` (`counters.input.filtered_out`) and in `pov info`'s
/// table, and equals the packets the unfiltered run read less the filtered
/// run's; a run without a filter has no such counter.
#[test]
fn packets_a_filter_leaves_out_are_counted_in_the_summary_and_info() {
    let sample = util::root().join("samples/shop.pcap");
    let d = TempDir::new("live-filter-counters");
    let packets = |extra: &[&str]| -> u64 {
        let mut args = vec!["info", "--format", "json", s(&sample)];
        args.extend_from_slice(extra);
        let v: serde_json::Value = serde_json::from_str(&util::pov_ok(&args)).expect("info json");
        v["packets"].as_u64().expect("packets")
    };
    let (all, kept) = (packets(&[]), packets(&["--filter", "greater 100"]));
    assert!(kept > 0 && kept < all, "the filter keeps some packets: {kept} of {all}");
    let summary = |out: &Path, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["analyze", "--quiet", "--replays", "0", s(&sample), "--out", s(out)];
        args.extend_from_slice(extra);
        util::pov_ok(&args);
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json")
    };
    let plain = summary(&d.path("plain"), &[]);
    assert!(plain["counters"].get("input").is_none(), "no filter, no input counters");
    let filtered = summary(&d.path("filtered"), &["--filter", "greater 100"]);
    assert_eq!(filtered["counters"]["input"]["filtered_out"].as_u64(), Some(all - kept));
    let table = util::pov_ok(&["info", s(&sample), "--filter", "greater 100"]);
    let row = table.lines().find(|l| l.contains("input.filtered_out")).expect("a filtered_out row in pov info");
    assert!(row.split_whitespace().any(|w| w == (all - kept).to_string()), "{row}");
}

/// The clients' helpers: `get(host, user, paths)` sends the requests on one
/// keep-alive connection from address `.host` with the session cookie
/// `sid=user` and a browser's User-Agent (a new connection after one the
/// server reset); `abort(host, user, path, secs)` sends one request and
/// closes the connection `secs` later, before the answer.
const CLIENTS: &str = r#"
import http.client, socket, sys, time
SRV, NET = sys.argv[1], sys.argv[2]
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
def conn(host):
    return http.client.HTTPConnection(SRV, 8080, source_address=(NET + "." + str(host), 0), timeout=10)
def get(host, user, paths):
    c = conn(host)
    for p in paths:
        try:
            c.request("GET", p, headers={"Cookie": "sid=" + user, "User-Agent": UA, "Accept": "text/html"})
            c.getresponse().read()
        except (ConnectionError, http.client.HTTPException):
            c.close()
            c = conn(host)
    c.close()
def abort(host, user, path, secs):
    s = socket.create_connection((SRV, 8080), source_address=(NET + "." + str(host), 0))
    head = "GET %s HTTP/1.1\r\nHost: %s:8080\r\nCookie: sid=%s\r\nUser-Agent: %s\r\nAccept: text/html\r\n\r\n"
    s.sendall((head % (path, SRV, user, UA)).encode())
    time.sleep(secs)
    s.close()
"#;

impl Net {
    /// Runs `code` after [`CLIENTS`] in the clients' namespace.
    fn run_clients(&self, code: &str) {
        let py = format!("{CLIENTS}\n{code}\n");
        let out = self.exec(&self.cli, &["python3", "-c", &py, &self.ip(1), &self.subnet]).output().expect("clients");
        assert!(out.status.success(), "clients: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Seconds since the epoch now.
fn epoch() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Sleeps until `at` (seconds since the epoch).
fn sleep_until(at: f64) {
    let now = epoch();
    if at > now {
        std::thread::sleep(Duration::from_secs_f64(at - now));
    }
}

/// One interval folder of `pov live --analyze`, as its summary.json says.
#[derive(Debug, PartialEq)]
struct Iv {
    transactions: u64,
    users: u64,
    sessions: u64,
    failures: BTreeMap<String, u64>,
}

#[test]
fn live_analyze_writes_each_interval_with_exactly_its_transactions_users_and_failures() {
    if !can_run() {
        return;
    }
    let d = TempDir::new("live-analyze");
    let mut net = Net::new();
    net.serve();
    // Sessions end after 3 s without a request (a user coming back later
    // starts a new one, and the old one closes then); a transaction over
    // 400 ms is slow.
    let config = d.path("pov.toml");
    std::fs::write(&config, "[sessions]\ntimeout_secs = 3.0\n[failures]\napdex_t_ms = 100.0\n").unwrap();
    let out = d.path("out");
    let span = 5.0;
    let (pid, err) = net.live(&["--out", s(&out), "--rotate", "5s", "--analyze", "--config", s(&config)]);
    // Four intervals of 5 s, I0 to I3, each phase of requests 0.6 s into
    // its interval (the intervals are aligned to the clock, as pov's).
    let i0 = (epoch() / span).floor() * span + span;
    let at = |k: f64| i0 + k * span + 0.6;
    // Each phase runs inside its interval (else the machine was too slow
    // for this test, which says so).
    let phase = |k: f64, code: &str| {
        sleep_until(at(k));
        net.run_clients(code);
        assert!(epoch() < i0 + (k + 1.0) * span - 0.2, "phase {k} ran past its interval: too slow a machine");
    };
    // I0: alice, a page and a 404; bob, a 500.
    phase(0.0, "get(2, 'alice', ['/n/100', '/missing'])\nget(2, 'bob', ['/boom'])");
    // I1: alice comes back (5 s later: a new session, and her first one
    // closes); carol, a slow answer, then a request the server resets.
    phase(1.0, "get(2, 'alice', ['/n/5'])\nget(3, 'carol', ['/slow', '/reset'])");
    // I2: bob comes back (his first session closes); dave gives up on a
    // slow answer after 0.2 s.
    phase(2.0, "get(2, 'bob', ['/n/7'])\nabort(3, 'dave', '/slow', 0.2)");
    // Stopped in I3: the sessions still open are finished there.
    sleep_until(at(3.0));
    let (code, text) = net.stop(pid, "TERM", err);
    eprintln!("{text}");
    assert_eq!(code, Some(0), "{text}");

    // Every interval folder, by its start; nothing partial left.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    let hidden: Vec<&PathBuf> = dirs.iter().filter(|p| s(p).rsplit('/').next().unwrap().starts_with('.')).collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    let mut got: BTreeMap<i64, Iv> = BTreeMap::new();
    let mut received = 0;
    for dir in dirs.iter().filter(|p| p.is_dir()) {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json")).unwrap();
        for f in ["transactions", "pages", "sessions", "users", "failures"] {
            assert!(dir.join(format!("{f}.parquet")).is_file(), "{}: no {f}.parquet", dir.display());
        }
        assert!(dir.join("report.html").is_file());
        let start = v["counters"]["interval"]["start"].as_f64().unwrap();
        let k = ((start - i0) / span).round() as i64;
        // Each interval's capture loss: received, none dropped.
        let loss = &v["counters"]["input"]["capture_loss"];
        assert_eq!(loss["dropped_kernel"].as_u64(), Some(0), "{}: {loss}", dir.display());
        received += loss["received"].as_u64().unwrap();
        let failures = v["failures_by_kind"].as_object().unwrap().iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap()));
        got.insert(
            k,
            Iv {
                transactions: v["transactions"].as_u64().unwrap(),
                users: v["users_total"].as_u64().unwrap(),
                sessions: v["sessions_total"].as_u64().unwrap(),
                failures: failures.collect(),
            },
        );
    }
    let iv = |transactions, users, failures: &[(&str, u64)]| Iv {
        transactions,
        users,
        sessions: users,
        failures: failures.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
    };
    let mut want = BTreeMap::new();
    // (The interval pov live started in, before I0, if it began early
    // enough to be its own: nothing in it.)
    if got.contains_key(&-1) {
        want.insert(-1, iv(0, 0, &[]));
    }
    // Transactions where their request started; sessions, their users and
    // failures where the session closed.
    want.insert(0, iv(3, 0, &[]));
    want.insert(1, iv(3, 1, &[("client_error", 1)]));
    want.insert(2, iv(2, 1, &[("server_error", 1)]));
    want.insert(3, iv(0, 4, &[("client_abort", 1), ("server_reset", 1), ("slow", 1)]));
    assert_eq!(got, want);

    // The rotated files alongside: one per interval with packets, and
    // `pov analyze` of them finds the same transactions, sessions and
    // failures in all.
    let files = captures(&out);
    assert!((3..=5).contains(&files.len()), "{files:?}");
    let whole = d.path("whole");
    let mut args = vec!["analyze", "--quiet", "--replays", "0", "--config", s(&config), "--out", s(&whole)];
    args.extend(files.iter().map(|p| s(p)));
    util::pov_ok(&args);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("summary.json")).unwrap()).unwrap();
    assert_eq!(v["transactions"].as_u64(), Some(got.values().map(|i| i.transactions).sum()));
    assert_eq!(v["sessions_total"].as_u64(), Some(got.values().map(|i| i.sessions).sum()));
    assert_eq!(v["users_total"].as_u64(), Some(4));
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for i in got.values() {
        for (k, n) in &i.failures {
            *kinds.entry(k.clone()).or_default() += n;
        }
    }
    let whole_kinds: BTreeMap<String, u64> =
        v["failures_by_kind"].as_object().unwrap().iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap())).collect();
    assert_eq!(whole_kinds, kinds);
    // What the capture received over the intervals is what it received.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("live-info.json")).unwrap()).unwrap();
    assert_eq!(info["capture_loss"]["received"].as_u64(), Some(received));
    assert!(text.contains("intervals analysed into"), "{text}");
    // A line per interval as it was written, I1's among them.
    let (_, i1) = dirs
        .iter()
        .map(|p| (p, s(p).rsplit('/').next().unwrap()))
        .find(|(p, _)| {
            p.is_dir() && std::fs::read_to_string(p.join("summary.json")).unwrap().contains("\"client_error\": 1")
        })
        .unwrap();
    assert!(text.contains(&format!("pov live: interval {i1} analysed into ")), "{text}");
    assert!(text.contains("3 HTTP transactions; 1 users, 1 sessions, 1 failures"), "{text}");
}

/// On a quiet interface, time still moves on: the capture file of an
/// interval is closed and renamed, and its analysis written, by the clock,
/// while `pov live` runs and no packet comes (the kernel filter keeps the
/// interface's own chatter out).
#[test]
fn a_quiet_interface_closes_its_file_and_interval_on_the_clock() {
    if !can_run() {
        return;
    }
    let d = TempDir::new("live-quiet");
    let mut net = Net::new();
    net.serve();
    let out = d.path("out");
    let (pid, err) = net.live(&["--out", s(&out), "--rotate", "2s", "--analyze", "--filter", "tcp port 8080"]);
    let span = 2.0;
    let start = (epoch() / span).floor() * span + span;
    sleep_until(start + 0.3);
    net.run_clients("get(2, 'alice', ['/n/100'])");
    // The interval ends 2 s after its start, and the pipeline holds
    // transactions 10 s for their order: 14 s later, both are written,
    // with no packet since.
    sleep_until(start + span + 12.0);
    // (The interval being written now is a hidden folder.)
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".pcapng.part")), "a capture file still open: {names:?}");
    let mut files: Vec<PathBuf> = names.iter().filter(|n| n.ends_with(".pcapng")).map(|n| out.join(n)).collect();
    files.sort();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(transactions(&files, &[]).values().sum::<u32>(), 1);
    let ivs: Vec<PathBuf> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    let with_tx: Vec<u64> = ivs
        .iter()
        .filter(|p| !s(p).rsplit('/').next().unwrap().starts_with('.'))
        .map(|p| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p.join("summary.json")).unwrap()).unwrap();
            v["transactions"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(with_tx.iter().sum::<u64>(), 1, "written while running: {ivs:?}");
    let (code, text) = net.stop(pid, "INT", err);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(captures(&out), files, "no file after the quiet time");
}
