//! Real HTTP/2 traffic: nginx serving h2c with prior knowledge inside a
//! network namespace the test creates (loopback only), clients nghttp
//! (several streams multiplexed on one connection, a POST) and curl (one
//! request per connection), recorded with tcpdump. The capture is
//! reassembled here with a minimal in-order TCP reader (pcap-parser,
//! etherparse) and fed to [`pov_http2::H2Conn`]; the transactions must
//! equal what the clients printed (status, body size, path) and what
//! tshark decodes from the same capture.
//!
//! The loss tests cut bytes out of the recorded streams at places found by
//! walking the frames (inside a HEADERS payload, inside a DATA payload)
//! and report them as gaps, as a reassembler does for a lost segment.
//!
//! h2c by Upgrade, which nginx does not offer, is recorded the same way
//! with Apache's mod_http2 and `curl --http2`: the test parses the
//! HTTP/1.1 request and the 101 answer itself, checks them with
//! `detect::h2c_upgrade_request` and `h2c_upgrade_accepted`, and hands the
//! rest of the connection to an upgraded [`pov_http2::H2Conn`].
//!
//! They need root, ip, nginx (with http_v2), nghttp, curl, tcpdump,
//! tshark and apache2. Without them the tests say so and pass, unless CI=true, where
//! they fail. The namespace and every process are removed on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::OnceLock;

use pov_http2::{Chunk, CloseHow, H2Config, H2Conn, H2Stats, H2Transaction, Outcome, Side, Start};

// Only its Apache configuration and curl's upgrade command: this test has
// its own lab.
#[path = "../../../tests/netns.rs"]
mod netns;

const PORT: u16 = 8080;
const BIG: usize = 300_000;
const MID: usize = 20_000;

fn tool(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(s)
}

/// Root and the tools, or a skip (a failure under CI).
fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| st.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    let mut missing = Vec::new();
    if !root {
        missing.push("root".to_string());
    }
    for (cmd, arg) in [("ip", "-V"), ("curl", "--version"), ("nghttp", "--version"), ("tcpdump", "--version")] {
        if tool(cmd, &[arg]).is_none() {
            missing.push(cmd.to_string());
        }
    }
    if tool("tshark", &["--version"]).is_none() {
        missing.push("tshark".into());
    }
    match tool("nginx", &["-V"]) {
        Some(v) if v.contains("http_v2_module") => {}
        _ => missing.push("nginx with http_v2".into()),
    }
    let ok = missing.is_empty();
    assert!(ok || std::env::var_os("CI").is_none(), "the HTTP/2 traffic tests need {missing:?}; CI has them");
    if !ok {
        eprintln!("HTTP/2 traffic tests skipped: missing {missing:?}");
    }
    ok
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a command");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A namespace with loopback up, a folder, and processes; all removed on
/// drop.
struct Lab {
    ns: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Lab {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("pov-h2-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let lab = Lab { ns: format!("povh2-{id}"), dir, children: Vec::new() };
        sh(&["ip", "netns", "add", &lab.ns]);
        sh(&["ip", "-n", &lab.ns, "link", "set", "lo", "up"]);
        lab
    }

    fn exec(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(cmd);
        c
    }

    fn run(&self, cmd: &[&str]) -> String {
        let out = self.exec(cmd).output().expect("run in the namespace");
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn path(&self, p: &str) -> String {
        self.dir.join(p).to_string_lossy().into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pages nginx serves: their paths and bodies (the answer key for
/// sizes).
fn pages() -> Vec<(&'static str, Vec<u8>)> {
    // A body with no short period (a linear congruential sequence).
    let mut x = 12345u32;
    let big: Vec<u8> = (0..BIG)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    // Two DATA frames, under the 32 KiB curl 7.88 takes after a 101.
    let mid = big[..MID].to_vec();
    vec![("index.html", b"<html>hello</html>\n".to_vec()), ("big.bin", big), ("mid.bin", mid)]
}

/// What one client said about one request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Truth {
    method: String,
    path: String,
    status: u16,
    size: u64,
}

/// The recorded capture and the clients' own reports.
struct Recorded {
    pcap: Vec<u8>,
    /// nghttp's table rows: (stream id, truth) per connection, in order.
    nghttp: Vec<Vec<(u32, Truth)>>,
    curl: Vec<Truth>,
    /// tshark's decoding of the capture.
    tshark: BTreeMap<(u16, u32), Truth>,
}

fn recorded() -> Option<&'static Recorded> {
    static R: OnceLock<Option<Recorded>> = OnceLock::new();
    R.get_or_init(|| can_run().then(record)).as_ref()
}

/// Records until tcpdump kept every packet (on two busy cores, a burst on
/// loopback can overrun it; such a capture is no truth to test against).
fn record() -> Recorded {
    for attempt in 1..=5 {
        match record_once() {
            Ok(r) => return r,
            Err(why) => eprintln!("recording {attempt}: {why}; again"),
        }
    }
    panic!("tcpdump dropped packets in five recordings");
}

fn record_once() -> Result<Recorded, String> {
    let mut lab = Lab::new();
    for (name, body) in pages() {
        std::fs::write(lab.dir.join("www").join(name), body).unwrap();
    }
    std::fs::write(lab.dir.join("post.txt"), vec![b'p'; 1000]).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\nuser root root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  gzip off;\n\
         server {{\n    listen 127.0.0.1:{PORT} http2;\n    root {d}/www;\n    location = /boom {{ return 500; }}\n  }}\n}}\n",
        d = lab.dir.display()
    );
    std::fs::write(lab.dir.join("nginx.conf"), conf).unwrap();
    let conf = lab.path("nginx.conf");
    let nginx = lab.exec(&["nginx", "-c", &conf]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    lab.children.push(nginx);
    let url = |p: &str| format!("http://127.0.0.1:{PORT}{p}");
    // Ready when it answers.
    let probe = url("/index.html");
    let ready = (0..100).any(|_| {
        let ok = lab
            .exec(&["curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge", &probe])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ok
    });
    assert!(ready, "nginx did not start: {}", std::fs::read_to_string(lab.dir.join("error.log")).unwrap_or_default());

    let cap = Capture::start(&mut lab, PORT);
    // One connection, five streams at once (nghttp also sends PRIORITY
    // frames for idle streams), then a POST on a second connection.
    let gets = ["/index.html", "/missing", "/boom", "/big.bin", "/index.html?x=1"];
    let urls: Vec<String> = gets.iter().map(|p| url(p)).collect();
    let mut args = vec!["nghttp", "-n", "-s"];
    args.extend(urls.iter().map(String::as_str));
    let a = parse_nghttp(&lab.run(&args), "GET");
    let post = lab.path("post.txt");
    let index = url("/index.html");
    let b = parse_nghttp(&lab.run(&["nghttp", "-n", "-s", "-d", &post, &index]), "POST");
    // curl: four connections, one GET each.
    let curl_paths = ["/index.html", "/missing", "/boom", "/big.bin"];
    let curl_urls: Vec<String> = curl_paths.iter().map(|p| url(p)).collect();
    let mut args = vec![
        "curl",
        "-s",
        "--http2-prior-knowledge",
        "--parallel",
        "--parallel-immediate",
        "-w",
        "%{method} %{http_code} %{size_download} %{url_effective}\\n",
    ];
    for u in &curl_urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let curl = lab
        .run(&args)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[3].trim_start_matches(&format!("http://127.0.0.1:{PORT}")).to_string();
            Truth { method: f[0].into(), status: f[1].parse().unwrap(), size: f[2].parse().unwrap(), path }
        })
        .collect::<Vec<_>>();
    let pcap_path = cap.path.clone();
    let pcap = cap.stop(&mut lab)?;
    let tshark = tshark(Path::new(&pcap_path), PORT);
    Ok(Recorded { pcap, nghttp: vec![a, b], curl, tshark })
}

/// tcpdump on the namespace's loopback, writing to a file in the lab.
struct Capture {
    pid: u32,
    err: BufReader<ChildStderr>,
    path: String,
}

impl Capture {
    /// Starts tcpdump for TCP port `port` and waits until it listens.
    fn start(lab: &mut Lab, port: u16) -> Capture {
        let path = lab.path("h2.pcap");
        let port = port.to_string();
        let mut td = lab
            .exec(&[
                "tcpdump",
                "-i",
                "lo",
                "--immediate-mode",
                "-B",
                "65536",
                "-U",
                "-n",
                "-w",
                &path,
                "tcp",
                "port",
                &port,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut err = BufReader::new(td.stderr.take().unwrap());
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "tcpdump said: {line}");
        let pid = td.id();
        lab.children.push(td);
        Capture { pid, err, path }
    }

    /// Stops it; the capture, or why it is no truth to test against.
    fn stop(mut self, lab: &mut Lab) -> Result<Vec<u8>, String> {
        std::thread::sleep(std::time::Duration::from_millis(500));
        sh(&["kill", "-INT", &self.pid.to_string()]);
        let i = lab.children.iter().position(|c| c.id() == self.pid).unwrap();
        let mut td = lab.children.remove(i);
        td.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.err, &mut rest).unwrap();
        // On two busy cores a loopback burst can overrun tcpdump: a
        // capture with drops is recorded again.
        let dropped = rest
            .lines()
            .find(|l| l.ends_with("packets dropped by kernel"))
            .and_then(|l| l.split(' ').next()?.parse::<u64>().ok());
        if dropped != Some(0) {
            return Err(format!("tcpdump said {rest:?}"));
        }
        Ok(std::fs::read(&self.path).unwrap())
    }
}

/// nghttp's statistics table: `id responseEnd requestStart process code
/// size path`. Sizes of 1 KiB and more are printed rounded ("292K"): they
/// are checked against the page and the page's size is the truth.
fn parse_nghttp(out: &str, method: &str) -> Vec<(u32, Truth)> {
    let mut rows = Vec::new();
    let mut table = false;
    for l in out.lines() {
        if l.starts_with("id ") {
            table = true;
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if !table || f.len() < 7 {
            continue;
        }
        let path = f[6].to_string();
        let size = match f[5].strip_suffix('K') {
            None => f[5].parse().unwrap(),
            Some(k) => {
                let page = pages().into_iter().find(|(n, _)| path.trim_start_matches('/') == *n).unwrap().1.len();
                assert_eq!(k.parse::<usize>().unwrap(), page / 1024, "nghttp's rounded size for {path}");
                page as u64
            }
        };
        rows.push((f[0].parse().unwrap(), Truth { method: method.into(), path, status: f[4].parse().unwrap(), size }));
    }
    rows.sort();
    assert!(!rows.is_empty(), "nghttp printed no statistics: {out}");
    rows
}

/// One event of a reassembled connection, in capture order.
#[derive(Clone, Debug)]
enum Ev {
    Data(Side, Vec<u8>, i64, u64),
    Gap(Side, u64, i64),
    Close(CloseHow, i64),
}

/// The capture's TCP connections to the server, by client port: in-order
/// bytes per side (retransmitted copies trimmed), FIN/RST as closes.
fn connections(pcap: &[u8], port: u16) -> BTreeMap<u16, Vec<Ev>> {
    let cap = pcap_parser::PcapCapture::from_file(pcap).expect("a pcap file");
    let mut next: BTreeMap<(u16, usize), u32> = BTreeMap::new();
    let mut out: BTreeMap<u16, Vec<Ev>> = BTreeMap::new();
    for (i, b) in cap.blocks.iter().enumerate() {
        let ts = i64::from(b.ts_sec) * 1_000_000_000 + i64::from(b.ts_usec) * 1000;
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(b.data) else { continue };
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else { continue };
        let (side, client) = if t.destination_port() == port {
            (Side::Client, t.source_port())
        } else if t.source_port() == port {
            (Side::Server, t.destination_port())
        } else {
            continue;
        };
        let key = (client, side.index());
        let evs = out.entry(client).or_default();
        if t.syn() {
            next.insert(key, t.sequence_number().wrapping_add(1));
            continue;
        }
        let Some(&want) = next.get(&key) else { continue };
        let payload = t.payload();
        let seq = t.sequence_number();
        // Skip what was already delivered (on loopback nothing is lost).
        let skip = want.wrapping_sub(seq) as usize;
        if skip < payload.len() && seq.wrapping_sub(want) as i32 <= 0 {
            let fresh = &payload[skip..];
            evs.push(Ev::Data(side, fresh.to_vec(), ts, i as u64 + 1));
            next.insert(key, want.wrapping_add(fresh.len() as u32));
        }
        if t.rst() {
            evs.push(Ev::Close(CloseHow::Rst(side), ts));
        }
    }
    for evs in out.values_mut() {
        let end = evs.iter().rev().find_map(|e| if let Ev::Data(_, _, t, _) = e { Some(*t) } else { None });
        if !evs.iter().any(|e| matches!(e, Ev::Close(..))) {
            evs.push(Ev::Close(CloseHow::Fin, end.unwrap_or(0)));
        }
    }
    out.retain(|_, evs| evs.iter().any(|e| matches!(e, Ev::Data(..))));
    out
}

/// The bytes `side` sent on a connection.
fn stream_of(evs: &[Ev], side: Side) -> Vec<u8> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Data(s, b, _, _) if *s == side => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The same events with `side`'s octets `[at, at + len)` missing (a gap
/// in their place).
fn cut(evs: &[Ev], side: Side, at: usize, len: usize) -> Vec<Ev> {
    cut_with(evs, side, at, len, true)
}

/// The same events without `side`'s first `len` octets.
fn skip(evs: &[Ev], side: Side, len: usize) -> Vec<Ev> {
    cut_with(evs, side, 0, len, false)
}

fn cut_with(evs: &[Ev], side: Side, at: usize, len: usize, gap: bool) -> Vec<Ev> {
    let mut out = Vec::new();
    let mut off = 0usize;
    for e in evs {
        match e {
            Ev::Data(s, b, ts, f) if *s == side => {
                let (start, end) = (off, off + b.len());
                off = end;
                let (lo, hi) = (at.max(start), (at + len).min(end));
                if lo >= hi {
                    out.push(e.clone());
                    continue;
                }
                if lo > start {
                    out.push(Ev::Data(side, b[..lo - start].to_vec(), *ts, *f));
                }
                if lo == at && gap {
                    out.push(Ev::Gap(side, len as u64, *ts));
                }
                if hi < end {
                    out.push(Ev::Data(side, b[hi - start..].to_vec(), *ts, *f));
                }
            }
            _ => out.push(e.clone()),
        }
    }
    out
}

/// Frames of one direction, walked independently of the crate: (offset
/// of the header, payload length, type, flags, stream).
fn walk(bytes: &[u8], preface: bool) -> Vec<(usize, usize, u8, u8, u32)> {
    let mut at = if preface { 24 } else { 0 };
    let mut out = Vec::new();
    while at + 9 <= bytes.len() {
        let h = &bytes[at..at + 9];
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        out.push((at, len, h[3], h[4], stream));
        at += 9 + len;
    }
    out
}

fn analyze(evs: &[Ev]) -> (Vec<H2Transaction>, H2Stats) {
    analyze_as(evs, Start::Preface).0
}

fn analyze_as(evs: &[Ev], start: Start) -> ((Vec<H2Transaction>, H2Stats), Option<bool>) {
    let mut c = H2Conn::new(H2Config::default(), start);
    for e in evs {
        match e {
            Ev::Data(side, b, ts, f) => {
                c.data(*side, &Chunk { bytes: b, first_ts: *ts, last_ts: *ts, first_frame: *f, last_frame: *f })
            }
            Ev::Gap(side, n, ts) => c.gap(*side, *n, *ts),
            Ev::Close(how, ts) => c.close(*how, *ts),
        }
    }
    let mut txs = c.take();
    txs.sort_by_key(|t| t.stream);
    ((txs, c.stats().clone()), c.is_h2())
}

fn truth_of(t: &H2Transaction) -> Truth {
    Truth {
        method: t.method.clone().unwrap_or_default(),
        path: String::from_utf8_lossy(t.path.as_deref().unwrap_or_default()).into_owned(),
        status: t.status.unwrap_or(0),
        size: t.response_body.wire_bytes,
    }
}

/// tshark's view: (client port, stream) -> method, path, status, DATA
/// octets from the server.
fn tshark(pcap: &Path, port: u16) -> BTreeMap<(u16, u32), Truth> {
    let out = Command::new("tshark")
        .args(["-r", &pcap.to_string_lossy(), "-d", &format!("tcp.port=={port},http2"), "-Y", "http2"])
        .args(["-T", "fields", "-E", "separator=|", "-e", "tcp.srcport", "-e", "tcp.dstport"])
        .args(["-e", "http2.streamid", "-e", "http2.type", "-e", "http2.length", "-e", "http2.flags"])
        .args(["-e", "http2.headers.method", "-e", "http2.headers.path", "-e", "http2.headers.status"])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    let mut m: BTreeMap<(u16, u32), Truth> = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('|').collect();
        let list = |i: usize| -> Vec<&str> { f[i].split(',').filter(|s| !s.is_empty()).collect() };
        let (src, dst): (u16, u16) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let from_server = src == port;
        let client = if from_server { dst } else { src };
        let (ids, types, lens, flags) = (list(2), list(3), list(4), list(5));
        let (mut methods, mut paths, mut statuses) = (list(6).into_iter(), list(7).into_iter(), list(8).into_iter());
        for (k, ty) in types.iter().enumerate() {
            let id: u32 = ids[k].parse().unwrap();
            let e = m.entry((client, id)).or_insert(Truth {
                method: String::new(),
                path: String::new(),
                status: 0,
                size: 0,
            });
            match (*ty, from_server) {
                ("1", false) => {
                    e.method = methods.next().unwrap_or_default().to_string();
                    e.path = paths.next().unwrap_or_default().to_string();
                }
                ("1", true) => e.status = statuses.next().unwrap_or("0").parse().unwrap(),
                ("0", true) => {
                    let fl = u8::from_str_radix(flags[k].trim_start_matches("0x"), 16).unwrap();
                    assert_eq!(fl & 0x8, 0, "nginx does not pad");
                    e.size += lens[k].parse::<u64>().unwrap();
                }
                _ => {}
            }
        }
    }
    // Stream 0 (connection frames) and idle streams nghttp only
    // prioritised carry no request and no response.
    m.retain(|_, t| !t.method.is_empty() || t.status != 0);
    m
}

#[test]
fn transactions_equal_the_clients_and_tshark() {
    let Some(rec) = recorded() else { return };
    let conns = connections(&rec.pcap, PORT);
    assert_eq!(conns.len(), 6, "two nghttp connections and four curl ones");
    let mut mine: BTreeMap<(u16, u32), Truth> = BTreeMap::new();
    let mut all = H2Stats::default();
    for (&port, evs) in &conns {
        let (txs, st) = analyze(evs);
        for t in &txs {
            assert_eq!(
                (t.outcome, t.response_body.wire_bytes),
                (Outcome::Complete, t.response_body.wire_bytes),
                "port {port} stream {} ({:?} {:?})",
                t.stream,
                t.method,
                t.status
            );
            assert_eq!(t.response_body.lost_bytes, 0);
            assert!(t.timing.req_start <= t.timing.resp_start && t.timing.resp_start <= t.timing.resp_end);
            assert_eq!(t.authority.as_deref(), Some("127.0.0.1:8080"));
            mine.insert((port, t.stream), truth_of(t));
        }
        all.merge(&st);
    }
    // The clients: nghttp's rows (stream ids included) and curl's.
    let mut clients: Vec<Truth> = rec.nghttp.iter().flatten().map(|(_, t)| t.clone()).collect();
    clients.extend(rec.curl.iter().cloned());
    clients.sort();
    let mut got: Vec<Truth> = mine.values().cloned().collect();
    got.sort();
    assert_eq!(got, clients);
    let nghttp_ids: BTreeSet<u32> = rec.nghttp[0].iter().map(|(id, _)| *id).collect();
    let first = conns.keys().copied().find(|p| mine.keys().filter(|(q, _)| q == p).count() == 5).unwrap();
    let my_ids: BTreeSet<u32> = mine.keys().filter(|(p, _)| *p == first).map(|(_, id)| *id).collect();
    assert_eq!(my_ids, nghttp_ids, "stream ids of the multiplexed connection");
    // tshark on the same capture.
    assert_eq!(mine, rec.tshark);
    // The statuses and sizes are the pages' and nginx's error pages.
    let statuses: BTreeSet<u16> = got.iter().map(|t| t.status).collect();
    assert_eq!(statuses, BTreeSet::from([200, 404, 405, 500]));
    assert!(got.iter().any(|t| t.size == BIG as u64));
    assert_eq!(all.transactions(), 10);
    assert_eq!((all.hpack_errors, all.bad_frames, all.continuation_errors, all.not_h2), (0, 0, 0, 0));
    assert!(all.frames[2] > 0, "nghttp's PRIORITY frames were seen");
    eprintln!("frames by type: {:?}", all.frames);
}

/// The multiplexed nghttp connection (five GETs).
fn multiplexed(rec: &Recorded) -> Vec<Ev> {
    connections(&rec.pcap, PORT)
        .into_values()
        .find(|evs| walk(&stream_of(evs, Side::Client), true).iter().filter(|f| f.2 == 1).count() == 5)
        .unwrap()
}

#[test]
fn gap_in_a_request_header_block_labels_later_streams_capture_gap() {
    let Some(rec) = recorded() else { return };
    let evs = multiplexed(rec);
    let (whole, _) = analyze(&evs);
    let client = stream_of(&evs, Side::Client);
    // The second request's HEADERS frame: lose 3 octets of its payload.
    let headers: Vec<_> = walk(&client, true).into_iter().filter(|f| f.2 == 1).collect();
    let (at, len, _, _, second) = headers[1];
    assert!(len > 6);
    let (txs, st) = analyze(&cut(&evs, Side::Client, at + 9 + 2, 3));
    assert_eq!(txs.len(), 5);
    assert_eq!(st.hpack_desyncs, 1);
    for (t, w) in txs.iter().zip(&whole) {
        assert_eq!((t.stream, t.status, t.response_body.wire_bytes), (w.stream, w.status, w.response_body.wire_bytes));
        if t.stream < second {
            assert_eq!((t.outcome, t.method.as_deref()), (Outcome::Complete, Some("GET")));
        } else {
            // The lost block and every later one of the client: not
            // decoded, not guessed.
            assert_eq!((t.outcome, t.method.as_deref(), t.path.as_deref()), (Outcome::CaptureGap, None, None));
        }
    }
    assert_eq!(txs.iter().find(|t| t.stream == second).unwrap().missing_bytes, 3);
    assert!(txs.last().unwrap().anomalies.contains(&pov_http2::Anomaly::HpackDesync));
}

#[test]
fn gap_in_data_loses_only_body_bytes() {
    let Some(rec) = recorded() else { return };
    let evs = multiplexed(rec);
    let (whole, _) = analyze(&evs);
    let server = stream_of(&evs, Side::Server);
    // A DATA frame of the large body with room for the cut.
    let big = whole.iter().find(|t| t.response_body.wire_bytes == BIG as u64).unwrap().stream;
    let (at, _, _, _, _) =
        walk(&server, false).into_iter().find(|f| f.2 == 0 && f.4 == big && f.1 >= 2000).expect("a DATA frame");
    let (txs, st) = analyze(&cut(&evs, Side::Server, at + 9 + 500, 1000));
    assert_eq!(txs.len(), whole.len());
    for (t, w) in txs.iter().zip(&whole) {
        assert_eq!(truth_of(t), truth_of(w), "stream {}", t.stream);
        if t.stream == big {
            assert_eq!(t.outcome, Outcome::CaptureGap);
            assert_eq!((t.response_body.lost_bytes, t.missing_bytes), (1000, 1000));
            assert_eq!(t.response_body.wire_bytes, BIG as u64);
        } else {
            assert_eq!(t.outcome, Outcome::Complete);
        }
    }
    assert_eq!((st.lost_body_bytes, st.hpack_desyncs, st.lost_directions), (1000, 0, 0));
}

const UP_PORT: u16 = 8081;

/// Apache with mod_http2 (h2c by Upgrade, which nginx does not do).
fn can_run_apache() -> bool {
    if !can_run() {
        return false;
    }
    let ok = tool("apache2", &["-v"]).is_some() && Path::new(netns::APACHE_HTTP2).exists();
    assert!(ok || std::env::var_os("CI").is_none(), "the h2c upgrade test needs apache2 with mod_http2; CI has it");
    if !ok {
        eprintln!("h2c upgrade test skipped: no apache2 with mod_http2");
    }
    ok
}

/// Apache answering curl's `--http2` (Upgrade: h2c) on three
/// connections; the capture, curl's lines, tshark's view.
/// A capture, curl's reports, tshark's (client port, stream) -> truth.
type Upgraded = (Vec<u8>, Vec<Truth>, BTreeMap<(u16, u32), Truth>);

fn record_upgrade() -> Result<Upgraded, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut lab = Lab::new();
    for (name, body) in pages() {
        std::fs::write(lab.dir.join("www").join(name), body).unwrap();
    }
    // Its workers run as nobody.
    for p in [lab.dir.clone(), lab.dir.join("www")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (name, _) in pages() {
        std::fs::set_permissions(lab.dir.join("www").join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let conf = netns::apache_h2c_conf(&lab.dir, UP_PORT);
    std::fs::write(lab.dir.join("httpd.conf"), conf).unwrap();
    let conf = lab.path("httpd.conf");
    let httpd = lab.exec(&["apache2", "-X", "-f", &conf]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    lab.children.push(httpd);
    let url = |p: &str| format!("http://127.0.0.1:{UP_PORT}{p}");
    let probe = url("/index.html");
    let ready = (0..100).any(|_| {
        let ok = lab.exec(&["curl", "-s", "-o", "/dev/null", "-f", &probe]).status().is_ok_and(|s| s.success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ok
    });
    assert!(ready, "apache did not start: {}", std::fs::read_to_string(lab.dir.join("error.log")).unwrap_or_default());
    let cap = Capture::start(&mut lab, UP_PORT);
    // Not the large page: curl 7.88 fails an upgrade when more than 32 KiB
    // follow the 101 in one read ("connection buffer size is too small to
    // store data following HTTP Upgrade response header"), which Apache's
    // prompt answer on stream 1 makes likely.
    let urls: Vec<String> = ["/index.html", "/missing", "/mid.bin"].iter().map(|p| url(p)).collect();
    let args = netns::curl_h2c_upgrade(&urls);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let curl: Vec<Truth> = lab
        .run(&args)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[3], "2", "curl upgraded to HTTP/2: {l}");
            let path = f[4].trim_start_matches(&format!("http://127.0.0.1:{UP_PORT}")).to_string();
            Truth { method: f[0].into(), status: f[1].parse().unwrap(), size: f[2].parse().unwrap(), path }
        })
        .collect();
    let path = cap.path.clone();
    let pcap = cap.stop(&mut lab)?;
    // tshark follows the upgrade from its HTTP dissector.
    let out = Command::new("tshark")
        .args(["-r", &path, "-d", &format!("tcp.port=={UP_PORT},http"), "-Y", "http2"])
        .args(["-T", "fields", "-E", "separator=|", "-e", "tcp.srcport", "-e", "tcp.dstport"])
        .args(["-e", "http2.streamid", "-e", "http2.type", "-e", "http2.length", "-e", "http2.headers.status"])
        .output()
        .expect("tshark");
    let mut ts: BTreeMap<(u16, u32), Truth> = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('|').collect();
        if f[0].parse::<u16>() != Ok(UP_PORT) {
            continue;
        }
        let client: u16 = f[1].parse().unwrap();
        let list = |i: usize| -> Vec<&str> { f[i].split(',').filter(|s| !s.is_empty()).collect() };
        let (ids, types, lens) = (list(2), list(3), list(4));
        let mut statuses = list(5).into_iter();
        for (k, ty) in types.iter().enumerate() {
            let e = ts.entry((client, ids[k].parse().unwrap())).or_insert(Truth {
                method: String::new(),
                path: String::new(),
                status: 0,
                size: 0,
            });
            match *ty {
                "1" => e.status = statuses.next().unwrap_or("0").parse().unwrap(),
                "0" => e.size += lens[k].parse::<u64>().unwrap(),
                _ => {}
            }
        }
    }
    ts.retain(|_, t| t.status != 0);
    Ok((pcap, curl, ts))
}

fn head_end(b: &[u8]) -> usize {
    b.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP/1 head") + 4
}

/// (first line, fields) of an HTTP/1 head.
type Field = (Vec<u8>, Vec<u8>);

fn head(b: &[u8]) -> (String, Vec<Field>) {
    let text = String::from_utf8_lossy(b).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap().to_string();
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().as_bytes().to_vec(), v.trim().as_bytes().to_vec()))
        .collect();
    (first, fields)
}

#[test]
fn h2c_upgrade_by_http1_request() {
    if !can_run_apache() {
        return;
    }
    let mut rec = None;
    for attempt in 1..=5 {
        match record_upgrade() {
            Ok(r) => {
                rec = Some(r);
                break;
            }
            Err(why) => eprintln!("recording {attempt}: {why}; again"),
        }
    }
    let (pcap, curl, tshark) = rec.expect("a capture without drops in five recordings");
    let conns = connections(&pcap, UP_PORT);
    // The readiness probe was not recorded: three connections.
    assert_eq!(conns.len(), 3);
    let mut got = Vec::new();
    for (&port, evs) in &conns {
        let client = stream_of(evs, Side::Client);
        let server = stream_of(evs, Side::Server);
        let (c_end, s_end) = (head_end(&client), head_end(&server));
        let (line, fields) = head(&client[..c_end]);
        let settings =
            pov_http2::detect::h2c_upgrade_request(fields.iter().map(|(n, v)| (&n[..], &v[..]))).expect("Upgrade: h2c");
        assert!(!settings.is_empty());
        let (status, s_fields) = head(&server[..s_end]);
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        assert!(pov_http2::detect::h2c_upgrade_accepted(101, s_fields.iter().map(|(n, v)| (&n[..], &v[..]))));
        let mut parts = line.split(' ');
        let (method, path) = (parts.next().unwrap().to_string(), parts.next().unwrap().as_bytes().to_vec());
        let mut headers = pov_http2::HeaderList::default();
        for (n, v) in &fields {
            headers.push(n, v);
        }
        let first_ts = evs.iter().find_map(|e| if let Ev::Data(Side::Client, _, t, _) = e { Some(*t) } else { None });
        let req = pov_http2::UpgradeRequest {
            method,
            path,
            authority: headers.get("host").map(|h| String::from_utf8_lossy(h).into_owned()),
            headers,
            req_start: first_ts.unwrap(),
            req_end: first_ts.unwrap(),
            ..Default::default()
        };
        let rest = skip(&skip(evs, Side::Client, c_end), Side::Server, s_end);
        let ((txs, st), is_h2) = analyze_as(&rest, Start::Upgraded(Box::new(req)));
        assert_eq!(is_h2, Some(true), "the client sent the preface after the upgrade");
        assert_eq!((st.upgrades, st.hpack_errors, st.bad_frames), (1, 0, 0));
        assert_eq!(txs.len(), 1, "one request per connection");
        let t = &txs[0];
        assert_eq!((t.stream, t.outcome), (1, Outcome::Complete));
        assert!(t.anomalies.contains(&pov_http2::Anomaly::Upgraded));
        let ts = &tshark[&(port, 1)];
        assert_eq!((t.status, t.response_body.wire_bytes), (Some(ts.status), ts.size), "tshark, port {port}");
        got.push(truth_of(t));
    }
    got.sort();
    let mut want = curl;
    want.sort();
    assert_eq!(got, want);
    assert!(got.iter().any(|t| t.status == 404) && got.iter().any(|t| t.size == MID as u64));
}

#[test]
fn a_lost_server_segment_across_frames_ends_what_was_open() {
    let Some(rec) = recorded() else { return };
    let evs = multiplexed(rec);
    let (whole, _) = analyze(&evs);
    let big = whole.iter().find(|t| t.response_body.wire_bytes == BIG as u64).unwrap();
    // A real segment of the large body from its middle (on loopback one
    // segment carries several DATA frames: its loss takes frame
    // boundaries with it), reported as a gap of its length.
    let frames = big.resp_frames.unwrap();
    let server: Vec<usize> = evs
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Ev::Data(Side::Server, b, _, f) if *f > frames.first && *f < frames.last && b.len() > 16_384 + 18 => {
                Some(i)
            }
            _ => None,
        })
        .collect();
    assert!(!server.is_empty(), "a segment larger than a DATA frame inside the body");
    let drop = server[server.len() / 2];
    let Ev::Data(_, bytes, ts, lost_frame) = &evs[drop] else { unreachable!() };
    let mut lossy = evs.clone();
    lossy[drop] = Ev::Gap(Side::Server, bytes.len() as u64, *ts);
    let (txs, st) = analyze(&lossy);
    assert_eq!((st.lost_directions, st.hpack_desyncs), (1, 1));
    assert_eq!(
        st.unparsed_bytes,
        (stream_of(&evs, Side::Server).len() - stream_of(&evs[..drop], Side::Server).len()) as u64
    );
    assert_eq!(txs.len(), whole.len());
    for (t, w) in txs.iter().zip(&whole) {
        let done_before = w.resp_frames.is_some_and(|f| f.last < *lost_frame);
        if done_before {
            assert_eq!((t.outcome, truth_of(t)), (Outcome::Complete, truth_of(w)), "stream {}", t.stream);
        } else {
            // Open when the segment was lost: the request is known, the
            // rest cannot be.
            assert_eq!(
                (t.outcome, &t.method, &t.path),
                (Outcome::CaptureGap, &w.method, &w.path),
                "stream {}",
                t.stream
            );
            assert!(t.anomalies.contains(&pov_http2::Anomaly::ResponseGap));
        }
    }
    let count = |o: Outcome| txs.iter().filter(|t| t.outcome == o).count();
    assert!(count(Outcome::CaptureGap) > 0 && count(Outcome::Complete) > 0);
    eprintln!(
        "segment of {} octets lost: {} complete before it, {} capture_gap",
        bytes.len(),
        count(Outcome::Complete),
        count(Outcome::CaptureGap)
    );
}
