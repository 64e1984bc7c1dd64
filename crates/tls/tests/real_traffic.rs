//! Real TLS traffic: nginx (self-signed certificate) and curl with
//! SSLKEYLOGFILE in a network namespace this test creates, captured with
//! tcpdump; pov-tls decrypts the capture with curl's key log and must find
//! exactly what curl received (statuses, bodies byte for byte) and what
//! tshark decrypts from the same capture with the same key log. Eleven
//! suites (the three of TLS 1.3; TLS 1.2 ECDHE-RSA and ECDHE-ECDSA with
//! AES-GCM and ChaCha20-Poly1305, AES-CBC with SHA-1 and SHA-384 MACs, with
//! and without encrypt-then-MAC), a HelloRetryRequest, keys from the key
//! log and from a pcapng Decryption Secrets Block; certificate rejections
//! are visible without keys; a record dropped from a recorded stream is a
//! counted loss and the records after it still decrypt.
//!
//! Needs root, ip, nginx, openssl, curl, tcpdump and tshark: without them
//! the test says so and skips; with CI=true it fails instead. The
//! namespace, processes and temporary directory are removed at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pov_tls::wire::{HEADER_LEN, Header, is_certificate_alert};
use pov_tls::{Decoder, KeyStore, Outcome, Side, TlsConn, TlsSink, Version};

// The namespace, tcpdump and their clean-up, shared with the end-to-end
// tests of the workspace.
#[path = "../../../tests/netns.rs"]
mod netns;
use netns::{Lab, run};

fn can_run() -> bool {
    netns::can_record("TLS capture tests", &["ip", "nginx", "openssl", "curl", "tcpdump", "tshark", "editcap"])
}

/// One curl run (one TLS connection).
struct Case {
    tls13: bool,
    /// curl's name for the suite.
    cipher: &'static str,
    /// Its IANA number.
    suite: u16,
    /// curl verifies the certificate (and so refuses the connection).
    verify: bool,
    /// curl offers a key share the server does not take: a
    /// HelloRetryRequest.
    retry: bool,
    /// nginx's port: 8443, or 8444 where encrypt-then-MAC is off (TLS 1.2
    /// CBC records then carry the MAC inside the encryption).
    port: u16,
}

const CASES: &[Case] = &[
    Case {
        tls13: false,
        cipher: "ECDHE-RSA-AES128-GCM-SHA256",
        suite: 0xc02f,
        verify: false,
        retry: false,
        port: 8443,
    },
    Case {
        tls13: false,
        cipher: "ECDHE-RSA-AES256-GCM-SHA384",
        suite: 0xc030,
        verify: false,
        retry: false,
        port: 8443,
    },
    Case {
        tls13: false,
        cipher: "ECDHE-RSA-CHACHA20-POLY1305",
        suite: 0xcca8,
        verify: false,
        retry: false,
        port: 8443,
    },
    Case { tls13: true, cipher: "TLS_AES_128_GCM_SHA256", suite: 0x1301, verify: false, retry: false, port: 8443 },
    Case {
        tls13: false,
        cipher: "ECDHE-ECDSA-AES128-GCM-SHA256",
        suite: 0xc02b,
        verify: false,
        retry: false,
        port: 8443,
    },
    Case {
        tls13: false,
        cipher: "ECDHE-ECDSA-CHACHA20-POLY1305",
        suite: 0xcca9,
        verify: false,
        retry: false,
        port: 8443,
    },
    Case { tls13: false, cipher: "ECDHE-RSA-AES128-SHA", suite: 0xc013, verify: false, retry: false, port: 8443 },
    Case { tls13: false, cipher: "ECDHE-RSA-AES256-SHA384", suite: 0xc028, verify: false, retry: false, port: 8443 },
    Case { tls13: false, cipher: "ECDHE-RSA-AES256-SHA", suite: 0xc014, verify: false, retry: false, port: 8444 },
    Case { tls13: true, cipher: "TLS_AES_256_GCM_SHA384", suite: 0x1302, verify: false, retry: false, port: 8443 },
    Case {
        tls13: true,
        cipher: "TLS_CHACHA20_POLY1305_SHA256",
        suite: 0x1303,
        verify: false,
        retry: false,
        port: 8443,
    },
    Case { tls13: true, cipher: "TLS_AES_256_GCM_SHA384", suite: 0x1302, verify: false, retry: true, port: 8443 },
    Case { tls13: false, cipher: "ECDHE-RSA-AES128-GCM-SHA256", suite: 0xc02f, verify: true, retry: false, port: 8443 },
    Case { tls13: true, cipher: "TLS_AES_128_GCM_SHA256", suite: 0x1301, verify: true, retry: false, port: 8443 },
];

const PATHS: [&str; 3] = ["/page.html", "/big.bin", "/missing"];

fn big_body() -> Vec<u8> {
    (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// Records the capture; returns the lab (kept alive for its files), the
/// pcap, the key log and what curl got per case: (status, body) per URL.
/// HTTP responses in order: (status, body).
type Responses = Vec<(u16, Vec<u8>)>;

fn record() -> (Lab, PathBuf, PathBuf, Vec<Responses>) {
    let mut lab = Lab::new("tls");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("page.html"), "<html><body>pov sees HTTPS</body></html>\n").expect("page");
    std::fs::write(www.join("big.bin"), big_body()).expect("big");
    lab.self_signed();
    // An ECDSA certificate too, for the ECDHE-ECDSA suites.
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=pov.test"])
        .args([
            "-keyout",
            &lab.path("eckey.pem").to_string_lossy(),
            "-out",
            &lab.path("eccert.pem").to_string_lossy(),
        ]));
    let d = lab.dir.to_string_lossy().to_string();
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;\n\
           uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5; default_type application/octet-stream;\n\
           server {{ listen 127.0.0.1:8443 ssl; server_name pov.test; root {d}/www;\n\
             ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
             ssl_certificate {d}/eccert.pem; ssl_certificate_key {d}/eckey.pem;\n\
             ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers ALL; ssl_session_tickets off;\n\
             ssl_ecdh_curve X25519; }}\n\
           server {{ listen 127.0.0.1:8444 ssl; server_name pov.test; root {d}/www;\n\
             ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; ssl_ciphers ALL;\n\
             ssl_conf_command Options -EncryptThenMac; }} }}\n"
    );
    std::fs::write(lab.path("nginx.conf"), conf).expect("conf");
    lab.spawn(&["nginx", "-p", &d, "-c", &format!("{d}/nginx.conf")]);
    lab.wait_port(8443);
    let cap = lab.tcpdump("tls.pcap", "tcp port 8443 or tcp port 8444");
    let keylog = lab.path("keys.log");
    let mut truth = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let mut args: Vec<String> = vec!["curl".into(), "-s".into(), "--http1.1".into()];
        args.extend(["--resolve".into(), format!("pov.test:{}:127.0.0.1", case.port)]);
        if !case.verify {
            args.push("-k".into());
        }
        if case.retry {
            // A P-256 key share first; the server only takes X25519.
            args.extend(["--curves".into(), "P-256:X25519".into()]);
        }
        if case.tls13 {
            args.extend(["--tlsv1.3".into(), "--tls13-ciphers".into(), case.cipher.into()]);
        } else {
            args.extend(["--tlsv1.2".into(), "--tls-max".into(), "1.2".into(), "--ciphers".into(), case.cipher.into()]);
        }
        args.extend(["-w".into(), "%{http_code}\\n".into()]);
        // A refused certificate would refuse every URL, each on its own
        // connection: one is enough.
        let paths = if case.verify { &PATHS[..1] } else { &PATHS[..] };
        for (j, p) in paths.iter().enumerate() {
            args.extend([
                format!("https://pov.test:{}{p}", case.port),
                "-o".into(),
                lab.path(&format!("out{i}-{j}")).to_string_lossy().into(),
            ]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lab.exec(&refs).env("SSLKEYLOGFILE", &keylog).output().expect("curl");
        if case.verify {
            assert_eq!(out.status.code(), Some(60), "curl refuses the self-signed certificate");
            truth.push(Vec::new());
            continue;
        }
        assert!(out.status.success(), "curl: {out:?}");
        let codes: Vec<u16> =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect();
        let got = codes
            .iter()
            .enumerate()
            .map(|(j, &c)| (c, std::fs::read(lab.path(&format!("out{i}-{j}"))).unwrap_or_default()))
            .collect();
        truth.push(got);
    }
    let pcap = cap.stop();
    (lab, pcap, keylog, truth)
}

/// One TCP connection's payload in capture order: (side, stream offset,
/// bytes), retransmissions dropped, a small reorder buffer.
type Events = Vec<(Side, u64, Vec<u8>)>;

/// Per connection (client address and port): both sides' ISNs, next
/// offsets, held segments, and the events so far.
struct Conn {
    key: (std::net::IpAddr, u16),
    isn: [Option<u32>; 2],
    next: [u64; 2],
    held: [BTreeMap<u64, Vec<u8>>; 2],
    events: Events,
}

fn connections(pcap: &Path) -> Vec<Events> {
    use pcap_parser::traits::PcapReaderIterator;
    use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError};
    let file = std::fs::File::open(pcap).expect("pcap");
    let mut reader = LegacyPcapReader::new(1 << 20, file).expect("pcap reader");
    let mut conns: Vec<Conn> = Vec::new();
    loop {
        match reader.next() {
            Ok((n, block)) => {
                let data = match block {
                    PcapBlockOwned::Legacy(pkt) => Some(pkt.data.to_vec()),
                    _ => None,
                };
                reader.consume(n);
                if let Some(data) = data {
                    packet(&mut conns, &data);
                }
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
            Err(e) => panic!("pcap: {e:?}"),
        }
    }
    conns.into_iter().map(|c| c.events).collect()
}

fn packet(conns: &mut Vec<Conn>, data: &[u8]) {
    let Ok(p) = etherparse::SlicedPacket::from_ethernet(data) else { return };
    let (Some(net), Some(etherparse::TransportSlice::Tcp(tcp))) = (p.net, p.transport) else { return };
    let (src, dst) = match &net {
        etherparse::NetSlice::Ipv4(v4) => {
            (std::net::IpAddr::from(v4.header().source_addr()), std::net::IpAddr::from(v4.header().destination_addr()))
        }
        etherparse::NetSlice::Ipv6(v6) => {
            (std::net::IpAddr::from(v6.header().source_addr()), std::net::IpAddr::from(v6.header().destination_addr()))
        }
        _ => return,
    };
    let (side, key) = if matches!(tcp.destination_port(), 8443 | 8444) {
        (Side::Client, (src, tcp.source_port()))
    } else {
        (Side::Server, (dst, tcp.destination_port()))
    };
    let s = side as usize;
    if tcp.syn() && side == Side::Client && !tcp.ack() {
        conns.push(Conn { key, isn: [None, None], next: [0, 0], held: Default::default(), events: Vec::new() });
    }
    let Some(c) = conns.iter_mut().rev().find(|c| c.key == key) else { return };
    if tcp.syn() {
        c.isn[s] = Some(tcp.sequence_number());
    }
    let payload = tcp.payload();
    let Some(isn) = c.isn[s] else { return };
    if payload.is_empty() {
        return;
    }
    let off = tcp.sequence_number().wrapping_sub(isn).wrapping_sub(1) as u64;
    c.held[s].insert(off, payload.to_vec());
    while let Some((&o, _)) = c.held[s].first_key_value() {
        let Some(bytes) = c.held[s].remove(&o) else { break };
        let end = o + bytes.len() as u64;
        if end <= c.next[s] {
            continue; // retransmitted
        }
        if o > c.next[s] {
            c.held[s].insert(o, bytes);
            break;
        }
        let fresh = bytes[(c.next[s] - o) as usize..].to_vec();
        c.events.push((side, c.next[s], fresh));
        c.next[s] = end;
    }
}

#[derive(Default)]
struct Seen {
    plain: [Vec<u8>; 2],
    gaps: Vec<(Side, usize, u64)>,
}

impl TlsSink for Seen {
    fn plaintext(&mut self, side: Side, _ts: i64, data: &[u8]) {
        self.plain[side as usize].extend_from_slice(data);
    }
    fn gap(&mut self, side: Side, _ts: i64, len: u64) {
        self.gaps.push((side, self.plain[side as usize].len(), len));
    }
}

/// Feeds a connection, leaving out `drop` (side, stream range) as a gap.
fn decode(keys: &KeyStore, events: &Events, drop: Option<(Side, std::ops::Range<u64>)>) -> (TlsConn, Seen) {
    let mut cx = Decoder::new(keys);
    let mut conn = TlsConn::new();
    let mut seen = Seen::default();
    for (i, (side, off, bytes)) in events.iter().enumerate() {
        let ts = i as i64;
        let end = off + bytes.len() as u64;
        match &drop {
            Some((ds, r)) if ds == side && r.start < end && r.end > *off => {
                let a = (r.start.max(*off) - off) as usize;
                let b = (r.end.min(end) - off) as usize;
                conn.data(&mut cx, *side, ts, &bytes[..a], &mut seen);
                if r.start >= *off {
                    conn.gap(*side, r.end - r.start);
                }
                conn.data(&mut cx, *side, ts, &bytes[b..], &mut seen);
            }
            _ => conn.data(&mut cx, *side, ts, bytes, &mut seen),
        }
    }
    conn.finish(&mut cx, events.len() as i64, &mut seen);
    (conn, seen)
}

/// HTTP/1.1 responses with Content-Length, in order: (status, body).
fn responses(mut b: &[u8]) -> Responses {
    let mut out = Vec::new();
    while let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&b[..end]).to_string();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        let body = &b[end + 4..];
        out.push((status, body[..len.min(body.len())].to_vec()));
        b = &body[len.min(body.len())..];
    }
    out
}

/// tshark's decryption: per TCP stream, request URIs and response codes.
fn tshark(pcap: &Path, keylog: &Path) -> BTreeMap<u32, (Vec<String>, Vec<u16>)> {
    let out = run(Command::new("tshark")
        .args(["-r", &pcap.to_string_lossy(), "-o", &format!("tls.keylog_file:{}", keylog.to_string_lossy())])
        .args(["-d", "tcp.port==8444,tls"])
        .args([
            "-Y",
            "http",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "http.request.uri",
            "-e",
            "http.response.code",
        ]));
    let mut map: BTreeMap<u32, (Vec<String>, Vec<u16>)> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let Some(stream) = f.first().and_then(|s| s.parse().ok()) else { continue };
        let e = map.entry(stream).or_default();
        if let Some(uri) = f.get(1).filter(|u| !u.is_empty()) {
            e.0.push(uri.to_string());
        }
        if let Some(code) = f.get(2).and_then(|c| c.parse().ok()) {
            e.1.push(code);
        }
    }
    map
}

/// tshark's alert descriptions per TCP stream (the first one), without
/// keys.
fn tshark_alerts(pcap: &Path) -> BTreeMap<u32, u8> {
    let out = run(Command::new("tshark").args(["-r", &pcap.to_string_lossy()]).args([
        "-Y",
        "tls.alert_message.desc",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "tls.alert_message.desc",
    ]));
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split('\t');
        if let (Some(Ok(stream)), Some(Ok(desc))) =
            (f.next().map(str::parse), f.next().map(|d| d.split(',').next().unwrap_or("").parse()))
        {
            map.entry(stream).or_insert(desc);
        }
    }
    map
}

/// The bodies of the blocks of one type in a little-endian pcapng.
fn pcapng_blocks(file: &[u8], kind: u32) -> Vec<Vec<u8>> {
    let word = |p: usize| u32::from_le_bytes([file[p], file[p + 1], file[p + 2], file[p + 3]]);
    assert_eq!(word(8), 0x1a2b_3c4d, "editcap writes little-endian here");
    let mut out = Vec::new();
    let mut p = 0;
    while p + 12 <= file.len() {
        let (t, len) = (word(p), word(p + 4) as usize);
        assert!(len >= 12 && p + len <= file.len(), "pcapng block at {p}");
        if t == kind {
            out.push(file[p + 8..p + len - 4].to_vec());
        }
        p += len;
    }
    out
}

/// Record spans (start, end) of one side's stream.
fn record_spans(events: &Events, side: Side) -> Vec<(u64, u64)> {
    let stream: Vec<u8> = events.iter().filter(|e| e.0 == side).flat_map(|e| e.2.clone()).collect();
    let mut spans = Vec::new();
    let mut p = 0;
    while let Some(h) = Header::read(&stream[p..]) {
        let end = p + HEADER_LEN + h.len;
        spans.push((p as u64, end as u64));
        p = end;
    }
    spans
}

#[test]
fn nginx_and_curl_every_suite_decrypted_like_curl_and_tshark_saw_it() {
    if !can_run() {
        return;
    }
    let (_lab, pcap, keylog, truth) = record();
    let mut keys = KeyStore::new();
    keys.load(&std::fs::read(&keylog).expect("key log"));
    assert_eq!(keys.stats().bad, 0);
    let conns = connections(&pcap);
    assert_eq!(conns.len(), CASES.len(), "one connection per curl run");
    let shark = tshark(&pcap, &keylog);
    let alerts = tshark_alerts(&pcap);
    let no_keys = KeyStore::new();
    // The same secrets from a pcapng's Decryption Secrets Block, as
    // editcap writes it.
    let with_dsb = pcap.with_extension("pcapng");
    run(Command::new("editcap")
        .arg("--inject-secrets")
        .arg(format!("tls,{}", keylog.to_string_lossy()))
        .args([pcap.to_string_lossy().as_ref(), with_dsb.to_string_lossy().as_ref()]));
    let mut dsb_keys = KeyStore::new();
    for body in pcapng_blocks(&std::fs::read(&with_dsb).expect("pcapng"), 0x0000_000a) {
        dsb_keys.load_dsb_body(&body, false);
    }
    assert_eq!((dsb_keys.stats().dsb_blocks, dsb_keys.stats().dsb_refused), (1, 0));
    assert_eq!(dsb_keys.stats().secrets, keys.stats().secrets);
    assert_eq!(dsb_keys.len(), keys.len());
    for (i, (case, events)) in CASES.iter().zip(&conns).enumerate() {
        let (conn, seen) = decode(&keys, events, None);
        let f = conn.facts();
        let what = format!("case {i} ({}, verify {})", case.cipher, case.verify);
        assert_eq!(f.version(), Some(if case.tls13 { Version::TLS13 } else { Version::TLS12 }), "{what}");
        assert_eq!(f.cipher_suite(), Some(case.suite), "{what}");
        assert_eq!(f.sni(), Some("pov.test"), "{what}");
        assert_eq!(f.hello_retry, case.retry, "{what}");
        assert_eq!(f.client_hello.as_ref().map(|c| c.alpn.clone()), Some(vec!["http/1.1".to_string()]), "{what}");
        let (blind_conn, blind) = decode(&no_keys, events, None);
        assert!(blind.plain.iter().all(Vec::is_empty));
        if case.verify {
            // curl refused the certificate: a certificate alert from the
            // client, the one tshark reads. (OpenSSL 3.0 sends it before
            // its handshake keys are on, in the clear, with TLS 1.3 too.)
            assert_eq!(f.outcome, Some(Outcome::HandshakeFailed), "{what}");
            let a = f.first_error_alert().expect("alert");
            assert_eq!(a.side, Side::Client, "{what}");
            let desc = a.alert.map(|x| x.description);
            assert!(desc.is_some_and(is_certificate_alert), "{what}: {a:?}");
            assert_eq!(desc, alerts.get(&(i as u32)).copied(), "{what}: tshark's alert");
            let b = blind_conn.facts();
            assert_eq!(b.outcome, Some(Outcome::HandshakeFailed), "{what} without keys");
            let ba = b.first_error_alert().expect("alert without keys");
            assert_eq!((ba.side, ba.offset, ba.alert.map(|x| x.description)), (a.side, a.offset, desc), "{what}");
            continue;
        }
        assert_eq!(f.outcome, Some(Outcome::Decrypted), "{what}");
        let (_, from_dsb) = decode(&dsb_keys, events, None);
        assert_eq!(from_dsb.plain, seen.plain, "{what}: keys from the pcapng");
        assert_eq!(blind_conn.facts().outcome, Some(Outcome::EncryptedNoKeys), "{what}");
        assert_eq!(f.alpn.as_deref(), Some("http/1.1"), "{what}");
        for st in &f.sides {
            assert_eq!(
                (st.decrypt_failures, st.lost_records, st.unknown_losses, st.trial_opens),
                (0, 0, 0, 0),
                "{what}"
            );
        }
        assert!(seen.gaps.is_empty(), "{what}");
        let requests = String::from_utf8_lossy(&seen.plain[0]).to_string();
        let uris: Vec<&str> =
            requests.lines().filter(|l| l.starts_with("GET ")).filter_map(|l| l.split(' ').nth(1)).collect();
        assert_eq!(uris, PATHS, "{what}");
        assert!(requests.contains(&format!("\r\nHost: pov.test:{}\r\n", case.port)), "{what}");
        let got = responses(&seen.plain[1]);
        assert_eq!(got, truth[i], "{what}: statuses and bodies as curl received them");
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [200, 200, 404]);
        assert_eq!(got[1].1, big_body());
        // tshark, same capture, same key log.
        let (t_uris, t_codes) = shark.get(&(i as u32)).cloned().unwrap_or_default();
        assert_eq!(t_uris, PATHS, "{what}: tshark's URIs");
        assert_eq!(t_codes, [200, 200, 404], "{what}: tshark's statuses");
    }

    // Loss: drop one whole server record in the middle of big.bin (the
    // record layer loses its boundary and searches), then 3000 bytes inside
    // another record (the boundary is known), then part of a handshake
    // record. The records after it decrypt.
    for (i, case) in CASES.iter().enumerate().filter(|(_, c)| !c.verify) {
        let events = &conns[i];
        let (_, full) = decode(&keys, events, None);
        let spans = record_spans(events, Side::Server);
        let big = spans.iter().enumerate().filter(|(_, s)| s.1 - s.0 > 10_000).map(|(k, _)| k).collect::<Vec<_>>();
        assert!(big.len() >= 8, "case {i}: big.bin takes many full records");
        for (k, range, exact) in [
            (big[3], spans[big[3]].0..spans[big[3]].1, false),
            (big[6], spans[big[6]].0 + 1000..spans[big[6]].0 + 4000, true),
        ] {
            let (conn, seen) = decode(&keys, events, Some((Side::Server, range.clone())));
            let what = format!("case {i} ({}), record {k} dropped {range:?}", case.cipher);
            let st = &conn.facts().sides[1];
            assert_eq!(conn.facts().outcome, Some(Outcome::Decrypted), "{what}");
            assert_eq!((st.lost_records, st.unknown_losses, st.decrypt_failures), (1, 0, 0), "{what}");
            assert_eq!(st.resyncs, u64::from(!exact), "{what}");
            assert_eq!(seen.gaps.len(), 1, "{what}");
            let (side, at, len) = seen.gaps[0];
            assert_eq!(side, Side::Server);
            // Every other byte decrypted: what is seen is the full
            // plaintext less one slice at the gap.
            let (got, want) = (&seen.plain[1], &full.plain[1]);
            let missing = (want.len() - got.len()) as u64;
            assert_eq!(got[..at], want[..at], "{what}");
            assert_eq!(got[at..], want[want.len() - (got.len() - at)..], "{what}");
            if matches!(case.suite, 0xc013 | 0xc014 | 0xc028) {
                // CBC: the padding (1 to 16 bytes) of the lost record is
                // unknown; the gap counts the least, so it may be up to 15
                // bytes longer than what was lost.
                assert!(missing <= len && len <= missing + 15, "{what}: gap {len}, missing {missing}");
            } else {
                // AEAD: exactly the dropped record's plaintext.
                let overhead = if case.tls13 {
                    17
                } else if matches!(case.suite, 0xcca8 | 0xcca9) {
                    16
                } else {
                    24
                };
                assert_eq!(len, spans[k].1 - spans[k].0 - HEADER_LEN as u64 - overhead, "{what}");
                assert_eq!(len, missing, "{what}");
            }
            assert_eq!(seen.plain[0], full.plain[0]);
        }
        // A handshake record after the ServerHello loses its middle third
        // (TLS 1.2: the Certificate, in the clear; TLS 1.3: the first
        // encrypted one). Counted, no gap, every byte of data decrypted.
        let server: Vec<u8> = events.iter().filter(|e| e.0 == Side::Server).flat_map(|e| e.2.clone()).collect();
        let k = if case.tls13 { spans.iter().position(|sp| server[sp.0 as usize] == 23).unwrap_or(0) } else { 1 };
        let (a, b) = spans[k];
        let third = (b - a - HEADER_LEN as u64) / 3;
        let range = a + HEADER_LEN as u64 + third..a + HEADER_LEN as u64 + 2 * third;
        let (conn, seen) = decode(&keys, events, Some((Side::Server, range.clone())));
        let what = format!("case {i} ({}), handshake record {k} loses {range:?}", case.cipher);
        let st = &conn.facts().sides[1];
        assert_eq!(conn.facts().outcome, Some(Outcome::Decrypted), "{what}");
        assert_eq!((st.lost_records, st.decrypt_failures), (1, 0), "{what}");
        assert!(seen.gaps.is_empty(), "{what}: {:?}", seen.gaps);
        assert_eq!(seen.plain, full.plain, "{what}");
    }
}
