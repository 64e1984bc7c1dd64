//! Hand-built captures of the shapes in which public captures showed pov
//! missing requests that Zeek and tshark found (issue #14, item 6): HTTP
//! in a Teredo tunnel on a port other than 3544, a request sent after a
//! RST the server ignored, and a request line that is a method alone.
//! Each runs through the `pov` binary (decode, reassembly, HTTP).

use std::path::PathBuf;

use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader};

use crate::util::{self, PcapBuilder, TempDir, s};

const CLIENT: ([u8; 4], u16) = ([192, 168, 1, 10], 51000);
const SERVER: ([u8; 4], u16) = ([192, 168, 1, 20], 80);
/// A Teredo client (2001:0000::/32) and the IPv6 server it talks to.
const CLIENT6: [u8; 16] = [0x20, 0x01, 0, 0, 0x41, 0x36, 0xe3, 0x78, 0x80, 0, 0x63, 0xbf, 0x3f, 0xff, 0xfd, 0xd2];
const SERVER6: [u8; 16] = [0x2a, 0x00, 0x14, 0x50, 0x40, 0x01, 0x08, 0x20, 0, 0, 0, 0, 0, 0, 0x20, 0x0e];
/// The Teredo relay and client's outer (IPv4, UDP) ends, not on 3544.
const RELAY: ([u8; 4], u16) = ([203, 0, 113, 7], 50000);
const TEREDO_CLIENT: ([u8; 4], u16) = ([192, 0, 2, 45], 61000);

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: shop.example\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// One TCP connection's frames, sequence numbers relative to each side's
/// ISN, over plain IPv4 or inside Teredo.
struct Capture {
    pcap: PcapBuilder,
    t_us: u64,
    cisn: u32,
    sisn: u32,
    teredo: bool,
}

impl Capture {
    fn new(teredo: bool) -> Capture {
        Capture { pcap: PcapBuilder::new(1, 65535), t_us: 1_700_000_000_000_000, cisn: 1000, sisn: 900_000, teredo }
    }

    /// A segment; `flags` among `S`, `A`, `F`, `R`, `P`.
    fn seg(&mut self, from_client: bool, rel_seq: u32, rel_ack: u32, flags: &str, payload: &[u8]) {
        self.t_us += 1000;
        let (isn, peer) = if from_client { (self.cisn, self.sisn) } else { (self.sisn, self.cisn) };
        let syn = flags.contains('S');
        let seq = if syn { isn } else { isn.wrapping_add(1).wrapping_add(rel_seq) };
        let (sp, dp) = if from_client { (CLIENT.1, SERVER.1) } else { (SERVER.1, CLIENT.1) };
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut frame = Vec::new();
        if self.teredo {
            // The IPv6 packet, then the relay's UDP datagram around it.
            let (sa, da) = if from_client { (CLIENT6, SERVER6) } else { (SERVER6, CLIENT6) };
            let mut inner = Vec::new();
            let tcp = with_flags(PacketBuilder::ipv6(sa, da, 64).tcp(sp, dp, seq, 65535), flags, peer, rel_ack);
            tcp.write(&mut inner, payload).expect("inner packet");
            let ((oa, op), (ob, ob_port)) = if from_client { (TEREDO_CLIENT, RELAY) } else { (RELAY, TEREDO_CLIENT) };
            eth.ipv4(oa, ob, 64).udp(op, ob_port).write(&mut frame, &inner).expect("outer packet");
        } else {
            let ((sa, _), (da, _)) = if from_client { (CLIENT, SERVER) } else { (SERVER, CLIENT) };
            let tcp = with_flags(eth.ipv4(sa, da, 64).tcp(sp, dp, seq, 65535), flags, peer, rel_ack);
            tcp.write(&mut frame, payload).expect("packet");
        }
        self.pcap.frame(self.t_us, &frame, 65535);
    }

    fn c(&mut self, rel_seq: u32, rel_ack: u32, flags: &str, payload: &[u8]) {
        self.seg(true, rel_seq, rel_ack, flags, payload);
    }

    fn s(&mut self, rel_seq: u32, rel_ack: u32, flags: &str, payload: &[u8]) {
        self.seg(false, rel_seq, rel_ack, flags, payload);
    }

    fn handshake(&mut self) {
        self.c(0, 0, "S", b"");
        self.s(0, 0, "SA", b"");
        self.c(0, 0, "A", b"");
    }

    /// Writes the capture and runs `pov CMD --format jsonl` on it.
    fn pov(&self, dir: &TempDir, cmd: &str) -> Vec<serde_json::Value> {
        let p: PathBuf = dir.path("edge.pcap");
        std::fs::write(&p, self.pcap.bytes()).expect("write pcap");
        util::pov_ok(&[cmd, "--quiet", "--format", "jsonl", s(&p)])
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }
}

/// Sets TCP flags (and the acknowledgment number, relative to the peer's
/// ISN) on a packet being built.
fn with_flags(
    mut tcp: PacketBuilderStep<TcpHeader>,
    flags: &str,
    peer_isn: u32,
    rel_ack: u32,
) -> PacketBuilderStep<TcpHeader> {
    if flags.contains('S') {
        tcp = tcp.syn();
    }
    if flags.contains('A') {
        tcp = tcp.ack(peer_isn.wrapping_add(1).wrapping_add(rel_ack));
    }
    if flags.contains('F') {
        tcp = tcp.fin();
    }
    if flags.contains('R') {
        tcp = tcp.rst();
    }
    if flags.contains('P') {
        tcp = tcp.psh();
    }
    tcp
}

/// (method, uri, status, outcome, anomalies) of each transaction.
fn summary(txs: &[serde_json::Value]) -> Vec<(String, String, u64, String, Vec<String>)> {
    txs.iter()
        .map(|t| {
            let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
            let anomalies =
                t["anomalies"].as_array().expect("list").iter().map(|a| a.as_str().unwrap_or_default().to_string());
            (text("method"), text("uri"), t["status_code"].as_u64().unwrap_or(0), text("outcome"), anomalies.collect())
        })
        .collect()
}

fn tx(
    m: &str,
    uri: &str,
    status: u64,
    outcome: &str,
    anomalies: &[&str],
) -> (String, String, u64, String, Vec<String>) {
    (m.into(), uri.into(), status, outcome.into(), anomalies.iter().map(|a| a.to_string()).collect())
}

/// An exchange in a Teredo tunnel between a relay on UDP 50000 and a
/// client on 61000 (neither is 3544): pov finds it by the datagrams'
/// content, as Zeek and tshark's heuristic do.
#[test]
fn http_in_teredo_on_any_port() {
    let (a, ok) = (GET_A.len() as u32, OK.len() as u32);
    let mut c = Capture::new(true);
    c.handshake();
    c.c(0, 0, "AP", GET_A);
    c.s(0, a, "AP", OK);
    c.c(a, ok, "AF", b"");
    c.s(ok, a + 1, "AF", b"");
    c.c(a + 1, ok + 1, "A", b"");
    let d = TempDir::new("edge-teredo");
    let txs = c.pov(&d, "transactions");
    assert_eq!(summary(&txs), [tx("GET", "/a", 200, "complete", &[])]);
    assert_eq!(txs[0]["id.orig_h"], "2001:0:4136:e378:8000:63bf:3fff:fdd2");
    assert_eq!(txs[0]["host"], "shop.example");
    let flows = c.pov(&d, "flows");
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["state"], "SF");
}

/// The client's stack (or a middlebox) sends a RST whose sequence number
/// is far out of the window; the server drops it, acknowledges (RFC 5961's
/// challenge ACK), and answers the request the client sends next, in
/// sequence. Both requests are transactions; the second says it came after
/// the RST, and the connection says which side sent the RST.
#[test]
fn a_request_after_a_rst_the_server_ignored() {
    let (a, b, ok) = (GET_A.len() as u32, GET_B.len() as u32, OK.len() as u32);
    let mut c = Capture::new(false);
    c.handshake();
    c.c(0, 0, "AP", GET_A);
    c.s(0, a, "AP", OK);
    c.c(a, ok, "A", b"");
    c.c(a.wrapping_add(0x4000_0000), ok, "RA", b"");
    c.s(ok, a, "A", b"");
    c.c(a, ok, "AP", GET_B);
    c.s(ok, a + b, "AP", OK);
    c.c(a + b, 2 * ok, "AF", b"");
    c.s(2 * ok, a + b + 1, "AF", b"");
    c.c(a + b + 1, 2 * ok + 1, "A", b"");
    let d = TempDir::new("edge-rst-ignored");
    let txs = c.pov(&d, "transactions");
    assert_eq!(
        summary(&txs),
        [tx("GET", "/a", 200, "complete", &[]), tx("GET", "/b", 200, "complete", &["data_after_rst"])]
    );
    let flows = c.pov(&d, "flows");
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!((f["close"].as_str(), f["state"].as_str()), (Some("fin by client"), Some("SF")));
    let anomalies: Vec<&str> = f["anomalies"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert_eq!(anomalies, ["c2s:ignored_rst", "c2s:data_after_rst", "s2c:data_after_rst"]);
}

/// The same request after a RST at the sequence number the server
/// expected: that RST ends the connection (the server would answer the
/// request with a RST of its own), and what follows it is not parsed, as
/// before.
#[test]
fn a_request_after_a_rst_in_sequence_is_not_parsed() {
    let (a, ok) = (GET_A.len() as u32, OK.len() as u32);
    let mut c = Capture::new(false);
    c.handshake();
    c.c(0, 0, "AP", GET_A);
    c.s(0, a, "AP", OK);
    c.c(a, ok, "A", b"");
    c.c(a, ok, "RA", b"");
    c.c(a, ok, "AP", GET_B);
    c.s(ok, a, "R", b"");
    let d = TempDir::new("edge-rst-stands");
    let txs = c.pov(&d, "transactions");
    assert_eq!(summary(&txs), [tx("GET", "/a", 200, "complete", &[])]);
    let f = &c.pov(&d, "flows")[0];
    assert_eq!((f["close"].as_str(), f["state"].as_str()), (Some("rst by client"), Some("RSTO")));
    let anomalies: Vec<&str> = f["anomalies"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert_eq!(anomalies, ["c2s:data_after_close"]);
}

/// `OPTIONS` alone on the request line, answered 400: a malformed request
/// with its method, paired with its answer; the connection's next request
/// is parsed as usual.
#[test]
fn a_method_alone_keeps_its_method() {
    let (a, ok) = (GET_A.len() as u32, OK.len() as u32);
    const OPTIONS: &[u8] = b"OPTIONS\r\n";
    const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    let (o, bad) = (OPTIONS.len() as u32, BAD.len() as u32);
    let mut c = Capture::new(false);
    c.handshake();
    c.c(0, 0, "AP", OPTIONS);
    c.s(0, o, "AP", BAD);
    c.c(o, bad, "AP", GET_A);
    c.s(bad, o + a, "AP", OK);
    c.c(o + a, bad + ok, "AF", b"");
    c.s(bad + ok, o + a + 1, "AF", b"");
    let d = TempDir::new("edge-options");
    let txs = c.pov(&d, "transactions");
    assert_eq!(
        summary(&txs),
        [tx("OPTIONS", "", 400, "malformed", &["bad_head"]), tx("GET", "/a", 200, "complete", &[])]
    );
}
