//! No secret in any output: a capture written here plants one distinct
//! secret in each place traffic carries one; every command that writes
//! records runs in every format; every output is decoded (Parquet with
//! polars) and searched. Masked (the default), none is found; with
//! `--no-mask`, each is found where it belongs, so the search can fail.
//! Also: CSV cells cannot start a formula, and captured `</script>` and
//! `<!--<script` leave the HTML replay and the report intact.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pov_synth::CaptureFormat;
use pov_synth::rng::Rng;
use pov_synth::tcp::{CaptureNoise, Endpoint, MS, PathLoss, TcpConn, frame};
use pov_synth::writer::CaptureWriter;

use crate::util::{self, TempDir, s};

/// Each planted secret and the place it rides in.
const SECRETS: &[(&str, &str)] = &[
    ("PLANTqueryPw1", "query `password`"),
    ("PLANTpctPw2", "query `p%61ssword`"),
    ("PLANTbracketPw3", "query `user[password]`"),
    ("PLANTnewPw4", "query `new_password`"),
    ("PLANTjsession5", "path parameter `;jsessionid=`"),
    ("PLANTcookieSid6", "Cookie `sid`"),
    ("PLANTbareCookie7", "Cookie without `=`"),
    ("PLANTsetCookie8", "Set-Cookie"),
    ("PLANTbearer9", "Authorization"),
    ("PLANTproxyCred10", "Proxy-Authorization"),
    ("PLANTcsrf11", "X-CSRF-Token"),
    ("PLANTapiKey12", "X-Api-Key"),
    ("PLANTrefererTok13", "Referer `token`"),
    ("PLANTlocationTok14", "Location `token`"),
    ("PLANTrefreshTok15", "Refresh `token`"),
    ("PLANTformPw16", "form body `password`"),
    ("PLANTjsonAccess17", "JSON response `access_token`"),
    ("4012 8888 8888 1881", "card number in a body"),
    ("5555555555554444", "card number in a URL"),
    ("PLANThiddenCsrf18", "hidden form field `authenticity_token` in a page"),
];

/// The output each secret must show up in with `--no-mask` (one of the
/// places it belongs).
const EXPECTED: &[(&str, &str)] = &[
    ("PLANTqueryPw1", "failures.table"),
    ("PLANTpctPw2", "transactions.jsonl"),
    ("PLANTbracketPw3", "send.parquet"),
    ("PLANTnewPw4", "pages.json"),
    ("PLANTjsession5", "transactions.parquet"),
    ("PLANTcookieSid6", "users.table"),
    ("PLANTbareCookie7", "transactions.csv"),
    ("PLANTsetCookie8", "transactions.json"),
    ("PLANTbearer9", "transactions.csv"),
    ("PLANTproxyCred10", "replay.har"),
    ("PLANTcsrf11", "replay.html"),
    ("PLANTapiKey12", "replay.har"),
    ("PLANTrefererTok13", "transactions.parquet"),
    ("PLANTlocationTok14", "replay.har"),
    ("PLANTrefreshTok15", "replay.html"),
    ("PLANTformPw16", "replay.har"),
    ("PLANTjsonAccess17", "analyze/replays"),
    ("4012 8888 8888 1881", "replay.html"),
    ("5555555555554444", "transactions.csv"),
    ("PLANThiddenCsrf18", "replay.html"),
];

/// A User-Agent that would end a `<script>` element or hide its end.
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) <!--<script>alert(1)</script>";
/// A Host that is a spreadsheet formula.
const FORMULA_HOST: &str = "=cmd|' /C calc'!A0";

/// One request and its answer, on a connection of its own.
struct Exchange {
    request: Vec<u8>,
    response: Vec<u8>,
}

fn request(head: &str, body: &str) -> Vec<u8> {
    let mut r = head.replace('\n', "\r\n");
    if !body.is_empty() {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

fn response(head: &str, body: &str) -> Vec<u8> {
    let mut r = head.replace('\n', "\r\n");
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    r.push_str(body);
    r.into_bytes()
}

/// The traffic: one user (cookie `sid`), one session, a server error on
/// its first page, every secret in its place.
fn exchanges() -> Vec<Exchange> {
    let common = format!("User-Agent: {UA}\nCookie: sid=PLANTcookieSid6\n");
    let html = "Content-Type: text/html; charset=utf-8\n";
    vec![
        Exchange {
            request: request(
                &format!(
                    "GET /login?user=ann&password=PLANTqueryPw1 HTTP/1.1\nHost: shop.example\nAccept: text/html\nUser-Agent: {UA}\nCookie: sid=PLANTcookieSid6; PLANTbareCookie7\nAuthorization: Bearer PLANTbearer9\n"
                ),
                "",
            ),
            response: response(
                &format!("HTTP/1.1 500 Internal Server Error\n{html}"),
                "<html><body><h1>Internal Server Error</h1></body></html>",
            ),
        },
        Exchange {
            request: request(
                &format!(
                    "GET /account?p%61ssword=PLANTpctPw2&user%5Bpassword%5D=PLANTbracketPw3&new_password=PLANTnewPw4&lang=en HTTP/1.1\nHost: shop.example\nAccept: text/html\n{common}Referer: http://shop.example/login?token=PLANTrefererTok13\nProxy-Authorization: Basic PLANTproxyCred10\nX-CSRF-Token: PLANTcsrf11\nX-Api-Key: PLANTapiKey12\n"
                ),
                "",
            ),
            response: response(
                "HTTP/1.1 200 OK\nContent-Type: application/json\n",
                r#"{"access_token": "PLANTjsonAccess17", "token_type": "bearer", "expires_in": 3600}"#,
            ),
        },
        Exchange {
            request: request(
                &format!(
                    "GET /shop;jsessionid=PLANTjsession5/cart?ref=5555555555554444 HTTP/1.1\nHost: shop.example\nAccept: text/html\n{common}"
                ),
                "",
            ),
            response: response(
                "HTTP/1.1 302 Found\nLocation: http://shop.example/checkout?step=1&token=PLANTlocationTok14\nSet-Cookie: remember=PLANTsetCookie8; Path=/; HttpOnly\n",
                "",
            ),
        },
        Exchange {
            request: request(
                &format!(
                    "POST /login HTTP/1.1\nHost: shop.example\nAccept: text/html\n{common}Content-Type: application/x-www-form-urlencoded\n"
                ),
                "user=ann&password=PLANTformPw16&remember=1",
            ),
            response: response(
                &format!("HTTP/1.1 503 Service Unavailable\n{html}Refresh: 5; url=/login?token=PLANTrefreshTok15\n"),
                "<html><body>Service Unavailable</body></html>",
            ),
        },
        Exchange {
            request: request(&format!("GET /orders HTTP/1.1\nHost: shop.example\nAccept: text/html\n{common}"), ""),
            response: response(
                &format!("HTTP/1.1 200 OK\n{html}"),
                "<html><body><p>Paid with card 4012 8888 8888 1881, thank you.</p><form method=post action=/orders/cancel><input type=\"hidden\" name=\"authenticity_token\" value=\"PLANThiddenCsrf18\"></form></body></html>",
            ),
        },
        Exchange {
            request: request(&format!("GET / HTTP/1.1\nHost: {FORMULA_HOST}\nAccept: text/html\n{common}"), ""),
            response: response(&format!("HTTP/1.1 200 OK\n{html}"), "<html><body>home</body></html>"),
        },
        Exchange {
            request: request(
                &format!(
                    "GET /search?q=%3C%2Fscript%3E%3C%21--%3Cscript%3E HTTP/1.1\nHost: shop.example\nAccept: text/html\n{common}"
                ),
                "",
            ),
            response: response(&format!("HTTP/1.1 200 OK\n{html}"), "<html><body>no results</body></html>"),
        },
    ]
}

/// Writes the capture: each exchange on its own connection, 300 ms apart.
fn write_capture(path: &Path) {
    let t0: i64 = 1_793_584_800_000_000_000;
    let mut frames: Vec<(i64, Vec<u8>)> = Vec::new();
    for (i, x) in exchanges().iter().enumerate() {
        let client = Endpoint { mac: [2, 0, 0, 0, 0, 7], ip: "10.1.0.7".parse().unwrap(), port: 40_001 + i as u16 };
        let server = Endpoint { mac: [2, 0, 0, 0, 0, 1], ip: "10.1.0.1".parse().unwrap(), port: 80 };
        let mut c = TcpConn::new(client, server, None, 2 * MS, PathLoss::default(), Rng::new(i as u64 + 1));
        let t = c.open(t0 + i as i64 * 300 * MS);
        let t = c.client_send(t, &x.request, 5 * MS);
        let (t, _) = c.server_send(t + 5 * MS, &x.response, &[x.response.len()], None);
        c.close_by_client(t + 5 * MS);
        let f = c.finish(&CaptureNoise::default());
        let mut ids = f.ends.ip_id;
        for p in &f.pkts {
            let side = usize::from(!p.from_client);
            ids[side] = ids[side].wrapping_add(1);
            frames.push((p.ts, frame(&f.ends, p, ids[side])));
        }
    }
    frames.sort_by_key(|(t, _)| *t);
    let mut w = CaptureWriter::new(std::fs::File::create(path).unwrap(), CaptureFormat::Pcap).unwrap();
    for (t, fr) in &frames {
        w.write(*t, fr).unwrap();
    }
    w.finish().unwrap().flush().unwrap();
}

/// A loopback HTTP server answering every request `200 ok`, stopped when
/// dropped.
struct Loopback {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    fn start() -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => workers.push(std::thread::spawn(move || serve(conn))),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Loopback { addr, stop, thread: Some(thread) }
    }
}

fn serve(mut conn: std::net::TcpStream) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == "content-length")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + len);
        if conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok").is_err() {
            return;
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every string in a JSON value, keys included.
fn json_strings(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push_str(k);
            out.push('\n');
            json_strings(x, out);
        }),
        other => {
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

/// Every text cell of a Parquet file (lists item by item).
fn parquet_text(path: &Path) -> String {
    use polars::prelude::*;
    let df = ParquetReader::new(std::fs::File::open(path).expect("parquet file")).finish().expect("parquet");
    assert!(df.height() > 0, "{}: no rows", path.display());
    let mut out = String::new();
    for c in df.columns() {
        match c.dtype() {
            DataType::String => {
                let s = c.str().unwrap();
                for i in 0..s.len() {
                    out.push_str(s.get(i).unwrap_or(""));
                    out.push('\n');
                }
            }
            DataType::List(_) => {
                let l = c.list().unwrap();
                for i in 0..l.len() {
                    if let Some(items) = l.get_as_series(i) {
                        let items = items.str().unwrap().clone();
                        for j in 0..items.len() {
                            out.push_str(items.get(j).unwrap_or(""));
                            out.push('\n');
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The data block of an HTML replay, parsed: it must be one script
/// element (nothing in it can end it early) holding JSON.
fn replay_data(page: &str) -> serde_json::Value {
    let open = "<script type=\"application/json\" id=\"data\">";
    let at = page.find(open).expect("a data block") + open.len();
    let end = at + page[at..].find("</script>").expect("the data block ends");
    let block = &page[at..end];
    assert!(!block.contains('<'), "a `<` in the data block could open a tag or comment");
    // The replay's own script follows, intact.
    assert!(page[end..].starts_with("</script>\n<script>"), "{}", &page[end..end + 40.min(page.len() - end)]);
    serde_json::from_str(block).expect("the data block is JSON")
}

/// What a file says, decoded by its kind, with its raw text.
fn decoded(path: &Path) -> String {
    let name = path.to_string_lossy().to_string();
    if name.ends_with(".parquet") {
        return parquet_text(path);
    }
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    let mut out = text.clone();
    out.push('\n');
    if name.ends_with(".json") || name.ends_with(".har") {
        json_strings(&serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}")), &mut out);
    } else if name.ends_with(".jsonl") {
        for l in text.lines() {
            json_strings(&serde_json::from_str(l).unwrap(), &mut out);
        }
    } else if name.ends_with(".html") && text.contains("id=\"data\"") {
        json_strings(&replay_data(&text), &mut out);
    }
    out
}

/// Runs pov, asserting success; stdout and stderr are outputs too.
fn run(args: &[&str]) -> String {
    let out = util::pov(args);
    assert!(out.status.success(), "pov {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

const FORMATS: [&str; 5] = ["table", "json", "jsonl", "csv", "parquet"];

/// Every output of every command on `pcap`, by name (`transactions.csv`,
/// `analyze/summary.json` ...), decoded.
fn every_output(pcap: &Path, dir: &Path, extra: &[&str]) -> BTreeMap<String, String> {
    let mut outs = BTreeMap::new();
    let p = s(pcap);
    for cmd in ["flows", "transactions", "users", "sessions", "pages", "failures"] {
        for f in FORMATS {
            let file = dir.join(format!("{cmd}.{f}"));
            let mut args = vec![cmd, "--quiet", "--format", f, "-o", s(&file), p];
            if cmd != "flows" {
                args.extend_from_slice(extra);
            }
            let printed = run(&args);
            outs.insert(format!("{cmd}.{f}"), format!("{}\n{printed}", decoded(&file)));
        }
    }
    let an = dir.join("analyze");
    let mut args = vec!["analyze", "--quiet", "--out", s(&an), p];
    args.extend_from_slice(extra);
    outs.insert("analyze/stdout".into(), run(&args));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&an).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    for f in files {
        if f.is_dir() {
            let mut all = String::new();
            for r in std::fs::read_dir(&f).unwrap() {
                all.push_str(&decoded(&r.unwrap().path()));
            }
            assert!(!all.is_empty(), "the replays of the most affected user");
            outs.insert("analyze/replays".into(), all);
        } else {
            let name = format!("analyze/{}", f.file_name().unwrap().to_string_lossy());
            outs.insert(name, decoded(&f));
        }
    }
    for (kind, file) in [("har", "replay.har"), ("html", "replay.html")] {
        let out = dir.join(file);
        let mut args = vec!["replay", kind, "--quiet", "--failed", "-o", s(&out), p];
        args.extend_from_slice(extra);
        let printed = run(&args);
        outs.insert(file.to_string(), format!("{}\n{printed}", decoded(&out)));
    }
    let server = Loopback::start();
    let target = format!("http://{}", server.addr);
    for f in FORMATS {
        let out = dir.join(format!("send.{f}"));
        let mut args = vec![
            "replay",
            "send",
            "--quiet",
            "--failed",
            "--target",
            &target,
            "--speed",
            "0",
            "--timeout",
            "2",
            "--format",
            f,
            "-o",
            s(&out),
            p,
        ];
        args.extend_from_slice(extra);
        let printed = run(&args);
        outs.insert(format!("send.{f}"), format!("{}\n{printed}", decoded(&out)));
    }
    drop(server);
    outs
}

/// The ways a secret can be written: as is, percent-encoded (every byte,
/// either case), JSON-escaped, and for a card its digits in every
/// separator style.
fn forms(secret: &str) -> Vec<String> {
    let mut v = vec![secret.to_string()];
    v.push(secret.bytes().map(|b| format!("%{b:02X}")).collect());
    v.push(secret.bytes().map(|b| format!("%{b:02x}")).collect());
    v.push(secret.chars().map(|c| format!("\\u{:04x}", c as u32)).collect());
    v.push(secret.replace('_', "%5F"));
    let digits: String = secret.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 13 {
        let groups: Vec<String> =
            digits.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        v.push(digits.clone());
        for sep in [" ", "-", "+", "%20"] {
            v.push(groups.join(sep));
        }
    }
    v.sort();
    v.dedup();
    v
}

#[test]
fn no_planted_secret_reaches_any_output_unless_told() {
    let d = TempDir::new("privacy");
    let pcap = d.path("planted.pcap");
    write_capture(&pcap);
    let masked_dir = d.path("masked");
    let open_dir = d.path("open");
    std::fs::create_dir_all(&masked_dir).unwrap();
    std::fs::create_dir_all(&open_dir).unwrap();

    let masked = every_output(&pcap, &masked_dir, &[]);
    // 6 commands × 5 formats, analyze (what it prints, 7 files and the
    // replays), 2 replays, replay send × 5 formats.
    assert_eq!(masked.len(), 46, "{:?}", masked.keys());
    let mut leaks = Vec::new();
    for (name, text) in &masked {
        for (secret, place) in SECRETS {
            for f in forms(secret) {
                if text.contains(&f) {
                    leaks.push(format!("{place} ({f}) in {name}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets in masked outputs:\n{}", leaks.join("\n"));
    // The outputs are not empty: the records are there, masked, and
    // what is not secret is shown.
    let tx = &masked["transactions.jsonl"];
    assert!(tx.contains("/login?user=ann&password=***") && tx.contains("sid=***"), "{tx}");
    assert!(tx.contains("&lang=en") && tx.contains("ref=************4444"), "{tx}");
    assert!(masked["replay.har"].contains("\"expires_in\": 3600}"), "the JSON body is otherwise intact");
    assert!(masked["pages.jsonl"].contains("/shop;jsessionid=***"));
    assert!(masked["failures.jsonl"].contains("server_error"));
    assert!(masked["send.jsonl"].contains("\"outcome\":\"answered\""), "{}", masked["send.jsonl"]);
    // Consistent: the session cookie has one mask on every request of the
    // run, in every output, so the session can still be followed.
    let cookies: BTreeSet<String> = std::fs::read_to_string(masked_dir.join("transactions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| r["cookie"].as_str().unwrap().split("; ").next().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let sid = cookies.into_iter().next().unwrap();
    assert!(sid.starts_with("sid=***") && sid.len() == "sid=***".len() + 6, "{sid}");
    // Within one run, the same in every output it writes: analyze's
    // transactions and its replays.
    let at = masked["analyze/transactions.parquet"].find("sid=***").unwrap() + 4;
    let analyze_sid = &masked["analyze/transactions.parquet"][at..at + 9];
    assert!(masked["analyze/replays"].matches(analyze_sid).count() >= 7, "{analyze_sid}");
    let har: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(masked_dir.join("replay.har")).unwrap()).unwrap();
    let sids: BTreeSet<&str> = har["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["request"]["cookies"].as_array().unwrap())
        .filter(|c| c["name"] == "sid")
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(sids.len(), 1, "{sids:?}");

    let open = every_output(&pcap, &open_dir, &["--no-mask"]);
    let mut found: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, text) in &open {
        for (secret, _) in SECRETS {
            if text.contains(secret) {
                found.entry(secret).or_default().insert(name.as_str());
            }
        }
    }
    for (secret, place) in SECRETS {
        let at = found.get(secret).cloned().unwrap_or_default();
        eprintln!("{place:36} {secret:20} found with --no-mask in {} outputs: {at:?}", at.len());
    }
    for (secret, place) in SECRETS {
        assert!(found.contains_key(secret), "{place}: {secret} in no output with --no-mask");
    }
    for (secret, output) in EXPECTED {
        assert!(found[secret].contains(output), "{secret} not in {output} with --no-mask: {:?}", found[secret]);
    }
}

#[test]
fn csv_cells_cannot_start_a_formula() {
    let d = TempDir::new("privacy-csv");
    let pcap = d.path("planted.pcap");
    write_capture(&pcap);
    let csv = util::pov_ok(&["transactions", "--quiet", "--format", "csv", s(&pcap)]);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let host = header.iter().position(|h| *h == "host").unwrap();
    let row = csv.lines().find(|l| l.contains("calc")).expect("the formula host's row");
    // The cell is quoted text with a quote mark in front: `"'=cmd|' /C calc'!A0"`.
    assert!(row.contains(&format!("\"'{FORMULA_HOST}\"")), "{row}");
    assert!(!row.contains(&format!(",{FORMULA_HOST}")), "{row}");
    // Every cell of every row: none starts a formula, unless a number.
    for line in csv.lines().skip(1) {
        for cell in split_csv(line) {
            let starts = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
            assert!(!starts || cell.parse::<f64>().is_ok(), "{cell:?} in {line}");
        }
    }
    let cells = split_csv(row);
    assert_eq!(cells[host], format!("'{FORMULA_HOST}"));
}

/// The cells of a CSV line (RFC 4180 quoting, no line breaks in cells).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

#[test]
fn script_text_in_the_traffic_leaves_the_replay_and_the_report_intact() {
    let d = TempDir::new("privacy-html");
    let pcap = d.path("planted.pcap");
    write_capture(&pcap);
    let page = d.path("replay.html");
    util::pov_ok(&["replay", "html", "--quiet", "--failed", "-o", s(&page), s(&pcap)]);
    let data = replay_data(&std::fs::read_to_string(&page).unwrap());
    // The User-Agent comes back whole from the data block.
    let mut strings = String::new();
    json_strings(&data, &mut strings);
    assert!(strings.lines().any(|l| l == UA), "the User-Agent, intact");
    let entries = data["sessions"][0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 7);
    let ua = entries[0]["request"]["headers"].as_array().unwrap().iter().find(|h| h["name"] == "User-Agent").unwrap();
    assert_eq!(ua["value"], UA);

    // The report's data block: a page class's step named like a script.
    let step = "</script><!--<script>x";
    let cfg = d.path("pov.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[pages]]\nname = \"search\"\npattern = '^/search'\nstep = '{step}'\n\n[[pages]]\nname = \"login\"\npattern = '^/login'\nstep = \"login\"\n"
        ),
    )
    .unwrap();
    let out = d.path("report");
    util::pov_ok(&["analyze", "--quiet", "--replays", "0", "-c", s(&cfg), "--out", s(&out), s(&pcap)]);
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    let at = report.find("const POV = ").expect("the report's data") + "const POV = ".len();
    let line = &report[at..at + report[at..].find(";\n").unwrap()];
    assert!(!line.contains('<'), "{line}");
    let pov: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(pov["funnel"].as_array().unwrap().iter().any(|f| f["step"] == step), "{pov}");
    // The charts' script and the end of the page follow.
    assert!(report.trim_end().ends_with("</script>\n</body></html>"));
    assert_eq!(report.matches("<script>").count(), 2);
}
