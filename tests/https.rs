//! HTTPS end to end through the `pov` binary: nginx (self-signed
//! certificate, HTTP/1.1 and HTTP/2) in a network namespace this test
//! creates, curl with SSLKEYLOGFILE (HTTP/1.1 over TLS 1.2, HTTP/2 over
//! TLS 1.3, a reset, a refused certificate), captured with tcpdump. pov's
//! transactions, decrypted with the key log (`--keylog`, or a pcapng
//! Decryption Secrets Block written by editcap), equal what curl received
//! (statuses, body sizes, versions) and what tshark decrypts from the same
//! capture with the same key log (methods, URIs, statuses). Without keys,
//! every connection is counted (encrypted_no_keys, handshake_failed) and
//! no transaction is made up. No secret of the key log reaches an output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::netns::{Lab, can_record, run};
use crate::util::{pov, pov_ok, s};

const PORT: u16 = 8443;
/// h2c (HTTP/2 in the clear, prior knowledge).
const H2C_PORT: u16 = 8080;
/// The big body second: what a loss in it costs shows on those after it.
const PATHS: [&str; 5] = ["/page.html", "/big.bin", "/missing", "/boom", "/api/cart"];

/// What curl said of each URL: (HTTP version, path, status, body bytes).
type Truth = Vec<(String, String, u16, u64)>;

struct Recorded {
    lab: Lab,
    pcap: PathBuf,
    keylog: PathBuf,
    truth: Truth,
    /// The same URLs over h2c, and what curl said of them.
    h2c: PathBuf,
    h2c_truth: Truth,
}

fn big_body() -> Vec<u8> {
    (0..150_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn record() -> Recorded {
    let mut lab = Lab::new("https");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("page.html"), "<html><body>pov sees HTTPS</body></html>\n").expect("page");
    std::fs::write(www.join("big.bin"), big_body()).expect("big");
    lab.self_signed();
    let d = lab.d();
    let faults = "location = /boom { return 500 \"server error\\n\"; }\n\
         location = /api/cart { default_type application/json; return 200 '{\"error\":\"out of stock\"}'; }\n\
         location = /reset { return 444; }";
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;\n\
           uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5; default_type application/octet-stream;\n\
           server {{ listen 127.0.0.1:{PORT} ssl http2; server_name pov.test; root {d}/www;\n\
             ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
             ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off;\n\
             {faults} }}\n\
           server {{ listen 127.0.0.1:{H2C_PORT} http2; root {d}/www; {faults} }} }}\n"
    );
    std::fs::write(lab.path("nginx.conf"), conf).expect("conf");
    lab.spawn(&["nginx", "-p", &d, "-c", &format!("{d}/nginx.conf")]);
    lab.wait_port(PORT);
    let cap = lab.tcpdump("https.pcap", &format!("tcp port {PORT}"));
    let keylog = lab.path("keys.log");
    let mut truth = Vec::new();
    let resolve = format!("pov.test:{PORT}:127.0.0.1");
    let url = |p: &str| format!("https://pov.test:{PORT}{p}");
    let curl = |opts: &[&str], paths: &[&str]| {
        let mut args: Vec<String> = ["curl", "-s", "--resolve", &resolve].iter().map(|a| a.to_string()).collect();
        args.extend(opts.iter().map(|a| a.to_string()));
        args.extend(["-w".into(), "%{http_code} %{size_download} %{http_version}\\n".into()]);
        for p in paths {
            args.extend([url(p), "-o".into(), "/dev/null".into()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.exec(&refs).env("SSLKEYLOGFILE", &keylog).output().expect("curl")
    };
    // HTTP/1.1 over TLS 1.2, HTTP/2 over TLS 1.3: one connection each.
    for (opts, version) in
        [(&["-k", "--http1.1", "--tlsv1.2", "--tls-max", "1.2"][..], "1.1"), (&["-k", "--http2", "--tlsv1.3"][..], "2")]
    {
        let out = curl(opts, &PATHS);
        assert!(out.status.success(), "curl: {out:?}");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), PATHS.len(), "{lines:?}");
        for (p, l) in PATHS.iter().zip(&lines) {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[2], version, "{l}");
            truth.push((version.to_string(), p.to_string(), f[0].parse().expect("code"), f[1].parse().expect("size")));
        }
    }
    // The server closes without answering (nginx's 444) on a connection
    // of its own: curl gets nothing.
    let out = curl(&["-k", "--http1.1", "--tlsv1.3"], &["/reset"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "000 0 0", "{out:?}");
    // curl refuses the self-signed certificate.
    let out = curl(&["--http2"], &["/page.html"]);
    assert_eq!(out.status.code(), Some(60), "curl refuses the certificate: {out:?}");
    let pcap = cap.stop();
    // The same URLs over h2c with prior knowledge, one connection each
    // (curl 7.88 does not reuse a prior-knowledge connection).
    let cap = lab.tcpdump("h2c.pcap", &format!("tcp port {H2C_PORT}"));
    let mut h2c_truth = Vec::new();
    for p in PATHS {
        let url = format!("http://127.0.0.1:{H2C_PORT}{p}");
        let out = lab
            .exec(&[
                "curl",
                "-s",
                "--http2-prior-knowledge",
                "-w",
                "%{http_code} %{size_download}",
                &url,
                "-o",
                "/dev/null",
            ])
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl: {out:?}");
        let l = String::from_utf8_lossy(&out.stdout).to_string();
        let f: Vec<&str> = l.split_whitespace().collect();
        h2c_truth.push(("2".to_string(), p.to_string(), f[0].parse().expect("code"), f[1].parse().expect("size")));
    }
    h2c_truth.sort();
    let h2c = cap.stop();
    Recorded { lab, pcap, keylog, truth, h2c, h2c_truth }
}

/// pov's transactions as (version, path, status, body bytes), with their
/// outcomes, per connection in order.
fn pov_records(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["transactions", "-q", "--format", "jsonl"];
    all.extend_from_slice(args);
    pov_ok(&all).lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect()
}

fn projection(records: &[Value]) -> Truth {
    let mut v: Truth = records
        .iter()
        .filter(|r| r["status_code"].is_u64())
        .map(|r| {
            (
                r["version"].as_str().unwrap_or("").to_string(),
                r["uri"].as_str().unwrap_or("").to_string(),
                r["status_code"].as_u64().unwrap_or(0) as u16,
                r["response_body_len"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// tshark's decryption of the same capture: (version, method, path,
/// status) per answered request.
fn tshark(pcap: &Path, keylog: &Path) -> Vec<(String, String, String, u16)> {
    let kl = format!("tls.keylog_file:{}", keylog.display());
    let fields = |filter: &str, f: &[&str]| -> Vec<Vec<String>> {
        let mut c = Command::new("tshark");
        c.args(["-r", s(pcap), "-o", &kl, "-Y", filter, "-T", "fields", "-E", "separator=\t"]);
        for x in f {
            c.args(["-e", x]);
        }
        let out = run(&mut c);
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect()
    };
    let mut v = Vec::new();
    // HTTP/1.1: requests and responses, paired in order per connection.
    let mut reqs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for f in fields("http.request", &["tcp.stream", "http.request.method", "http.request.uri"]) {
        reqs.entry(f[0].clone()).or_default().push((f[1].clone(), f[2].clone()));
    }
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for f in fields("http.response", &["tcp.stream", "http.response.code"]) {
        let n = answered.entry(f[0].clone()).or_default();
        let (m, u) = reqs[&f[0]][*n].clone();
        *n += 1;
        v.push(("1.1".to_string(), m, u, f[1].parse().expect("code")));
    }
    // HTTP/2: HEADERS frames with :method/:path, then :status, per stream.
    // A packet may carry several frames: their stream ids and types come
    // as lists, the pseudo-header fields as lists of the HEADERS frames'.
    let mut streams: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for f in fields(
        "http2.type == 1",
        &[
            "tcp.stream",
            "http2.streamid",
            "http2.type",
            "http2.headers.method",
            "http2.headers.path",
            "http2.headers.status",
        ],
    ) {
        let list = |i: usize| -> Vec<String> { f[i].split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect() };
        let (ids, types) = (list(1), list(2));
        let headers: Vec<String> = ids.iter().zip(&types).filter(|(_, t)| *t == "1").map(|(i, _)| i.clone()).collect();
        if !f[3].is_empty() {
            for ((id, m), p) in headers.iter().zip(list(3)).zip(list(4)) {
                streams.insert((f[0].clone(), id.clone()), (m, p));
            }
        } else {
            for (id, st) in headers.iter().zip(list(5)) {
                let (m, p) = streams[&(f[0].clone(), id.clone())].clone();
                v.push(("2".to_string(), m, p, st.parse().expect("status")));
            }
        }
    }
    v.sort();
    v
}

fn info_json(args: &[&str]) -> Value {
    let mut all = vec!["info", "-q", "--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&pov_ok(&all)).expect("info json")
}

/// Every secret of the key log (hex), to look for in outputs.
fn secrets(keylog: &Path) -> Vec<String> {
    std::fs::read_to_string(keylog)
        .expect("key log")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_lowercase))
        .collect()
}

#[test]
fn https_h1_and_h2_decrypted_equal_curl_and_tshark() {
    if !can_record("HTTPS tests", &["ip", "nginx", "openssl", "curl", "tcpdump", "tshark", "editcap"]) {
        return;
    }
    let rec = record();
    let (pcap, keylog) = (s(&rec.pcap), s(&rec.keylog));

    // With the key log: every answered request, as curl saw it.
    let records = pov_records(&["--keylog", keylog, pcap]);
    let mut truth = rec.truth.clone();
    truth.sort();
    assert_eq!(projection(&records), truth);
    // ... and as tshark decrypts it.
    let mine: Vec<(String, String, String, u16)> = {
        let mut v: Vec<_> = records
            .iter()
            .filter(|r| r["status_code"].is_u64())
            .map(|r| {
                (
                    r["version"].as_str().unwrap_or("").to_string(),
                    r["method"].as_str().unwrap_or("").to_string(),
                    r["uri"].as_str().unwrap_or("").to_string(),
                    r["status_code"].as_u64().unwrap_or(0) as u16,
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(mine, tshark(&rec.pcap, &rec.keylog));
    // HTTP/2 streams carry their ids (1, 3, 5 ... in order); HTTP/1.1 none.
    let h2: Vec<u64> = records.iter().filter(|r| r["version"] == "2").filter_map(|r| r["stream_id"].as_u64()).collect();
    assert_eq!(h2, [1, 3, 5, 7, 9]);
    assert!(records.iter().filter(|r| r["version"] == "1.1").all(|r| r["stream_id"].is_null()));
    // The connection the server closed unanswered is a reset, not silence.
    let reset: Vec<&Value> = records.iter().filter(|r| r["uri"] == "/reset").collect();
    assert_eq!(reset.len(), 1, "{records:?}");
    assert!(reset[0]["status_code"].is_null());
    assert_eq!(reset[0]["outcome"], "server_reset");
    // Counters: four TLS connections, three decrypted (one HTTP/2), the
    // refused certificate a failed handshake.
    let info = info_json(&["--keylog", keylog, pcap]);
    let tls = &info["http"]["tls"];
    assert_eq!(
        (&tls["connections"], &tls["decrypted"], &tls["handshake_failed"], &tls["h2"]),
        (&Value::from(4), &Value::from(3), &Value::from(1), &Value::from(1)),
        "{tls}"
    );
    assert_eq!(info["http"]["h2"]["streams"], 5);
    assert_eq!(info["keys"]["client_randoms"], 4, "{}", info["keys"]);

    // Without keys: counted, nothing made up.
    let bare = info_json(&[pcap]);
    let tls = &bare["http"]["tls"];
    assert_eq!(
        (&tls["connections"], &tls["encrypted_no_keys"], &tls["handshake_failed"], &tls["decrypted"]),
        (&Value::from(4), &Value::from(3), &Value::from(1), &Value::from(0)),
        "{tls}"
    );
    assert_eq!(bare["http"]["transactions"], 0);
    let warned = pov(&["transactions", "--format", "jsonl", "-o", s(&rec.lab.path("bare.jsonl")), pcap]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(stderr.contains("3 of 4 TLS connections were not decrypted (3 without keys"), "{stderr}");

    // The refused certificate is the customer's failure, keys or not,
    // with its evidence; with keys, the HTTP failures inside TLS too.
    let failures = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["failures", "-q", "--format", "jsonl"];
        all.extend_from_slice(args);
        pov_ok(&all).lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect()
    };
    let tls_failure = |f: &Value| {
        f["kind"] == "tls_handshake"
            && f["host"] == "pov.test"
            && f["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:"))
            && f["detail"]
                .as_str()
                .is_some_and(|d| d.contains("alert unknown_ca (certificate refused) from the client"))
    };
    let without = failures(&[pcap]);
    assert_eq!(without.len(), 1, "{without:?}");
    assert!(tls_failure(&without[0]), "{without:?}");
    let with = failures(&["--keylog", keylog, pcap]);
    let mut kinds: Vec<(&str, &str)> =
        with.iter().map(|f| (f["kind"].as_str().unwrap_or(""), f["url"].as_str().unwrap_or(""))).collect();
    kinds.sort();
    assert!(with.iter().any(tls_failure), "{with:?}");
    for want in [("client_error", "/missing"), ("server_error", "/boom"), ("error_page", "/api/cart")] {
        let n = kinds.iter().filter(|(k, u)| *k == want.0 && u.ends_with(want.1)).count();
        assert_eq!(n, 2, "{want:?} once over HTTP/1.1 and once over HTTP/2: {kinds:?}");
    }

    // The key log inside the capture (a Decryption Secrets Block): the same.
    let ng = rec.lab.path("https.pcapng");
    run(Command::new("editcap").args(["--inject-secrets", &format!("tls,{keylog}"), pcap, s(&ng)]));
    assert_eq!(projection(&pov_records(&[s(&ng)])), truth);
    let info_ng = info_json(&[s(&ng)]);
    assert_eq!(info_ng["keys"]["capture_blocks"], 1);
    assert_eq!(info_ng["http"]["tls"]["decrypted"], 3);

    // No secret reaches an output; a missing key log is named, nothing more.
    let outputs = [
        serde_json::to_string(&records).expect("json"),
        info.to_string(),
        info_ng.to_string(),
        pov_ok(&["transactions", "-q", "--format", "csv", "--keylog", keylog, pcap]),
    ];
    for secret in secrets(&rec.keylog) {
        for o in &outputs {
            assert!(!o.to_lowercase().contains(&secret), "a secret reached an output");
        }
    }
    let missing = pov(&["transactions", "--keylog", s(&rec.lab.path("nope.log")), pcap]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.log"));

    // h2c with prior knowledge: HTTP/2 in the clear, as curl saw it.
    let h2c = pov_records(&[s(&rec.h2c)]);
    assert_eq!(projection(&h2c), rec.h2c_truth);
    assert_eq!(h2c.iter().filter_map(|r| r["stream_id"].as_u64()).collect::<Vec<_>>(), [1, 1, 1, 1, 1]);
    let info = info_json(&[s(&rec.h2c)]);
    assert_eq!((&info["http"]["h2"]["connections"], &info["http"]["h2"]["cleartext"]), (&5.into(), &5.into()));
    assert_eq!(info["http"]["tls"]["connections"], 0);

    // A packet lost in the middle of the HTTP/1.1 big body: its TLS
    // records are a gap in the plaintext; that transaction is capture_gap
    // (its head was seen), and every one after it on the connection is as
    // curl saw it.
    let data_frames = run(Command::new("tshark").args([
        "-r",
        pcap,
        "-Y",
        &format!("tcp.stream == 0 && tcp.srcport == {PORT} && tcp.len > 0"),
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]));
    let frames: Vec<String> = String::from_utf8_lossy(&data_frames.stdout).lines().map(str::to_owned).collect();
    let lost = &frames[frames.len() / 2];
    let lossy = rec.lab.path("lossy.pcap");
    run(Command::new("editcap").args([pcap, s(&lossy), lost]));
    let records = pov_records(&["--keylog", keylog, s(&lossy)]);
    let h1: Vec<&Value> = records.iter().filter(|r| r["version"] == "1.1" && r["uri"] != "/reset").collect();
    let got: Vec<(String, Option<u64>, &str)> = h1
        .iter()
        .map(|r| {
            (
                r["uri"].as_str().unwrap_or("").to_string(),
                r["status_code"].as_u64(),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/page.html".to_string(), Some(200), "complete"),
            ("/big.bin".to_string(), Some(200), "capture_gap"),
            ("/missing".to_string(), Some(404), "complete"),
            ("/boom".to_string(), Some(500), "complete"),
            ("/api/cart".to_string(), Some(200), "complete"),
        ],
        "frame {lost} of {frames:?} lost"
    );
    assert!(h1[1]["missing_bytes"].as_u64().is_some_and(|m| m > 0));
    let tls = &info_json(&["--keylog", keylog, s(&lossy)])["http"]["tls"];
    assert!(tls["lost_records"].as_u64().unwrap_or(0) + tls["unknown_losses"].as_u64().unwrap_or(0) > 0, "{tls}");
}

/// samples/https.answers.tsv: what curl said of each answered URL.
fn answers() -> Truth {
    let text = std::fs::read_to_string(crate::util::root().join("samples/https.answers.tsv")).expect("answer key");
    let mut v: Truth = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().expect("status"), f[3].parse().expect("bytes"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn committed_https_sample_matches_its_answer_key_and_replays() {
    let root = crate::util::root();
    let ng = root.join("samples/https.pcapng");
    let keys = root.join("samples/https.keys");
    let dir = crate::util::TempDir::new("https-sample");
    // The key log is in the capture (a Decryption Secrets Block).
    let records = pov_records(&[s(&ng)]);
    assert_eq!(projection(&records), answers());
    let reset: Vec<&Value> = records.iter().filter(|r| r["uri"] == "/reset").collect();
    assert_eq!((reset.len(), &reset[0]["outcome"]), (1, &Value::from("server_reset")), "{records:?}");
    // The same with the key log given as well (its lines repeat the block's).
    assert_eq!(projection(&pov_records(&["--keylog", s(&keys), s(&ng)])), answers());
    let info = info_json(&["--keylog", s(&keys), s(&ng)]);
    assert_eq!(info["keys"]["capture_blocks"], 1);
    assert_eq!(info["keys"]["client_randoms"], 4);
    let tls = &info["http"]["tls"];
    assert_eq!((&tls["decrypted"], &tls["handshake_failed"], &tls["h2"]), (&3.into(), &1.into(), &1.into()), "{tls}");

    // The failures the sample was made with, each once.
    let out = pov_ok(&["failures", "-q", "--format", "jsonl", s(&ng)]);
    let mut kinds: Vec<(String, String)> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("jsonl"))
        .map(|f| (f["kind"].as_str().unwrap_or("").to_string(), f["url"].as_str().unwrap_or("").to_string()))
        .map(|(k, u)| (k, u.rsplit_once(":8443").map_or(u.clone(), |(_, p)| p.to_string())))
        .collect();
    kinds.sort();
    let want: Vec<(String, String)> = [
        ("client_error", "/missing"),
        ("error_page", "/api/cart"),
        ("server_error", "/boom"),
        ("server_reset", "/reset"),
        ("tls_handshake", ""),
    ]
    .iter()
    .map(|(k, u)| (k.to_string(), u.to_string()))
    .collect();
    assert_eq!(kinds, want);

    // HAR and HTML replays of the decrypted session.
    let har = dir.path("s.har");
    pov_ok(&["replay", "har", "--failed", "-o", s(&har), s(&ng)]);
    let har: Value = serde_json::from_slice(&std::fs::read(&har).expect("har")).expect("har json");
    let mut seen: Truth = har["log"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["response"]["status"].as_u64().is_some_and(|s| s > 0))
        .map(|e| {
            let url = e["request"]["url"].as_str().unwrap_or("");
            assert!(url.starts_with("https://pov.test:8443/"), "{url}");
            let v = match e["response"]["httpVersion"].as_str() {
                Some("HTTP/2.0") => "2",
                Some("HTTP/1.1") => "1.1",
                v => panic!("{v:?}"),
            };
            let path = url.trim_start_matches("https://pov.test:8443").to_string();
            (
                v.to_string(),
                path,
                e["response"]["status"].as_u64().unwrap_or(0) as u16,
                e["response"]["content"]["size"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, answers());
    let page = har["log"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["request"]["url"].as_str().is_some_and(|u| u.ends_with("/index.html")))
        .expect("the page");
    assert!(page["response"]["content"]["text"].as_str().is_some_and(|t| t.contains("pov sees HTTPS")));
    let html = dir.path("s.html");
    pov_ok(&["replay", "html", "--failed", "-o", s(&html), s(&ng)]);
    let html = std::fs::read_to_string(&html).expect("html");
    assert!(html.contains("pov sees HTTPS"), "the decrypted page is in the replay");
    assert!(html.contains("https://pov.test:8443/api/cart"), "the failed API call is in the replay");
}

/// What Chromium's own net log says it did over HTTP/2: per stream id,
/// (method, path, status, body bytes received).
fn netlog_streams(netlog: &Path) -> BTreeMap<u64, (String, String, u16, u64)> {
    let log: Value = serde_json::from_slice(&std::fs::read(netlog).expect("net log")).expect("net log json");
    let names: BTreeMap<u64, String> = log["constants"]["logEventTypes"]
        .as_object()
        .expect("event types")
        .iter()
        .filter_map(|(k, v)| Some((v.as_u64()?, k.clone())))
        .collect();
    let mut streams: BTreeMap<u64, (String, String, u16, u64)> = BTreeMap::new();
    for e in log["events"].as_array().expect("events") {
        let Some(name) = e["type"].as_u64().and_then(|t| names.get(&t)) else { continue };
        let p = &e["params"];
        // (Stream 0 is the connection's own: settings, window updates.)
        let Some(id) = p["stream_id"].as_u64().filter(|&id| id > 0) else { continue };
        let pseudo = |key: &str| -> Option<String> {
            p["headers"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find_map(|h| h.strip_prefix(key))
                .map(str::to_owned)
        };
        let s = streams.entry(id).or_default();
        match name.as_str() {
            "HTTP2_SESSION_SEND_HEADERS" => {
                s.0 = pseudo(":method: ").unwrap_or_default();
                s.1 = pseudo(":path: ").unwrap_or_default();
            }
            "HTTP2_SESSION_RECV_HEADERS" => s.2 = pseudo(":status: ").and_then(|v| v.parse().ok()).unwrap_or(0),
            "HTTP2_SESSION_RECV_DATA" => s.3 += p["size"].as_u64().unwrap_or(0),
            _ => {}
        }
    }
    streams
}

#[test]
fn chromium_page_with_subresources_over_h2_equals_its_net_log() {
    if !can_record("the Chromium HTTPS test", &["ip", "nginx", "openssl", "chromium", "tcpdump"]) {
        return;
    }
    let mut lab = Lab::new("chrome");
    let d = lab.d();
    let shop = lab.path("www/shop");
    std::fs::create_dir_all(&shop).expect("www");
    std::fs::write(
        shop.join("index.html"),
        "<!DOCTYPE html>\n<html><head><title>shop</title><link rel=\"stylesheet\" href=\"style.css\">\
         <script src=\"app.js\"></script></head>\n<body><h1>pov shop over h2</h1><img src=\"logo.svg\">\
         <img src=\"missing.png\"></body></html>\n",
    )
    .expect("page");
    std::fs::write(shop.join("style.css"), "body { color: #123; }\n").expect("css");
    std::fs::write(shop.join("app.js"), "fetch(\"/api/cart\").then(r => r.text()).then(t => console.log(t));\n")
        .expect("js");
    std::fs::write(
        shop.join("logo.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\"/></svg>\n",
    )
    .expect("svg");
    lab.self_signed();
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;\n\
           uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5; default_type application/octet-stream;\n\
           types {{ text/html html; text/css css; application/javascript js; image/svg+xml svg; }}\n\
           server {{ listen 127.0.0.1:{PORT} ssl http2; server_name pov.test; root {d}/www;\n\
             ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
             location = /api/cart {{ default_type application/json; return 200 '{{\"error\":\"out of stock\"}}'; }} }} }}\n"
    );
    std::fs::write(lab.path("nginx.conf"), conf).expect("conf");
    lab.spawn(&["nginx", "-p", &d, "-c", &format!("{d}/nginx.conf")]);
    lab.wait_port(PORT);
    let cap = lab.tcpdump("chrome.pcap", &format!("tcp port {PORT}"));
    let (keys, netlog, profile) = (lab.path("keys.log"), lab.path("netlog.json"), lab.path("profile"));
    let out = lab
        .exec(&[
            "timeout",
            "-k",
            "5",
            "90",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--ignore-certificate-errors",
            "--host-resolver-rules=MAP pov.test 127.0.0.1",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--ssl-key-log-file={}", keys.display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("https://pov.test:{PORT}/shop/index.html"))
        .output()
        .expect("chromium");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pov shop over h2"), "{out:?}");
    let pcap = cap.stop();

    let truth = netlog_streams(&netlog);
    // The page, its style sheet, script, image, the missing image, the
    // script's API call (and the browser's favicon).
    for p in ["/shop/index.html", "/shop/style.css", "/shop/app.js", "/shop/logo.svg", "/shop/missing.png", "/api/cart"]
    {
        assert!(truth.values().any(|t| t.1 == p), "{p} not in the net log: {truth:?}");
    }
    let records = pov_records(&["--keylog", s(&keys), s(&pcap)]);
    let mine: BTreeMap<u64, (String, String, u16, u64)> = records
        .iter()
        .map(|r| {
            (
                r["stream_id"].as_u64().expect("an HTTP/2 stream"),
                (
                    r["method"].as_str().unwrap_or("").to_string(),
                    r["uri"].as_str().unwrap_or("").to_string(),
                    r["status_code"].as_u64().unwrap_or(0) as u16,
                    r["response_body_len"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect();
    assert_eq!(mine, truth);
    assert!(records.iter().all(|r| r["version"] == "2" && r["outcome"] == "complete"), "{records:?}");
}

/// h2c by Upgrade, which nginx does not offer: Apache's mod_http2 answers
/// curl's `--http2` on `http://`. The first request asks for the switch
/// on each connection (stream 1, answered over HTTP/2 after the 101, in the
/// same segment as the server's first frames); pov's transactions equal
/// what curl said.
#[test]
fn h2c_by_upgrade_equals_curl() {
    const PORT: u16 = 8081;
    let module = Path::new(crate::netns::APACHE_HTTP2);
    if !can_record("the h2c upgrade test", &["apache2", "curl", "tcpdump", "ip"]) {
        return;
    }
    assert!(module.exists() || std::env::var_os("CI").is_none(), "the h2c upgrade test needs mod_http2; CI has it");
    if !module.exists() {
        eprintln!("the h2c upgrade test needs apache2's mod_http2: skipping");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let mut lab = Lab::new("h2cup");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    // Under 32 KiB each: curl 7.88 fails an upgrade when more follow the
    // 101 in one read.
    let pages: [(&str, Vec<u8>); 2] =
        [("page.html", b"<html><body>h2c</body></html>".to_vec()), ("mid.bin", vec![b'x'; 20_000])];
    for (name, body) in &pages {
        std::fs::write(www.join(name), body).expect("page");
        std::fs::set_permissions(www.join(name), std::fs::Permissions::from_mode(0o644)).expect("mode");
    }
    // Its worker runs as nobody.
    for p in [lab.dir.clone(), www.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("mode");
    }
    let conf = crate::netns::apache_h2c_conf(&lab.dir, PORT);
    std::fs::write(lab.path("httpd.conf"), conf).expect("conf");
    let conf = lab.path("httpd.conf").to_string_lossy().into_owned();
    lab.spawn(&["apache2", "-X", "-f", &conf]);
    lab.wait_port(PORT);
    let cap = lab.tcpdump("upgrade.pcap", &format!("tcp port {PORT}"));
    let paths = ["/page.html", "/missing", "/mid.bin"];
    let urls: Vec<String> = paths.iter().map(|p| format!("http://127.0.0.1:{PORT}{p}")).collect();
    let args = crate::netns::curl_h2c_upgrade(&urls);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&mut lab.exec(&args));
    let pcap = cap.stop();
    let base = format!("http://127.0.0.1:{PORT}");
    let mut truth: Truth = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[3], "2", "curl upgraded to HTTP/2: {l}");
            let path = f[4].trim_start_matches(&base).to_string();
            ("2".to_string(), path, f[1].parse().expect("code"), f[2].parse().expect("size"))
        })
        .collect();
    truth.sort();
    assert_eq!(truth.len(), 3, "{out:?}");
    let records = pov_records(&[s(&pcap)]);
    assert_eq!(projection(&records), truth);
    // Each connection's upgrading request is its stream 1 and the ones
    // after it go on as 3, 5 ... (curl reuses a connection or opens
    // another as its timing goes); the 101 is no transaction.
    assert_eq!(records.len(), 3, "{records:?}");
    let mut by_conn: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &records {
        by_conn
            .entry(r["uid"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(r["stream_id"].as_u64().unwrap_or(0));
    }
    for ids in by_conn.values_mut() {
        ids.sort_unstable();
        let want: Vec<u64> = (0..ids.len() as u64).map(|i| 1 + 2 * i).collect();
        assert_eq!(*ids, want, "{records:?}");
    }
    assert!(records.iter().all(|r| r["anomalies"].as_array().is_some_and(|a| a.is_empty())), "{records:?}");
    let info = info_json(&[s(&pcap)]);
    assert_eq!(info["http"]["tunnels"], 0, "{info}");
    let conns = by_conn.len() as u64;
    assert_eq!(
        (&info["http"]["h2"]["connections"], &info["http"]["h2"]["upgrades"]),
        (&conns.into(), &conns.into()),
        "{info}"
    );
}
