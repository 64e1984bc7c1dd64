//! Hand-built captures (etherparse builds the packets) run through the
//! whole `pov flows` path: decode, reassembly, gap reporting, close.

use etherparse::PacketBuilder;

use crate::util::{self, PcapBuilder, TempDir, s};

const CLIENT: ([u8; 4], u16) = ([192, 168, 1, 10], 51000);
const SERVER: ([u8; 4], u16) = ([192, 168, 1, 20], 80);

/// Writes frames for one TCP connection, with sequence numbers relative to
/// each side's ISN.
struct Conn {
    pcap: PcapBuilder,
    t_us: u64,
    cisn: u32,
    sisn: u32,
    vlan: Option<u16>,
    snaplen: usize,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            pcap: PcapBuilder::new(1, 65535),
            t_us: 1_700_000_000_000_000,
            cisn: 1000,
            sisn: 900_000,
            vlan: None,
            snaplen: 65535,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn seg(
        &mut self,
        from_client: bool,
        rel_seq: u32,
        rel_ack: u32,
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
        payload: &[u8],
    ) {
        self.t_us += 1000;
        let ((sa, sp), (da, dp)) = if from_client { (CLIENT, SERVER) } else { (SERVER, CLIENT) };
        let (isn, peer) = if from_client { (self.cisn, self.sisn) } else { (self.sisn, self.cisn) };
        let seq = if syn { isn } else { isn.wrapping_add(1).wrapping_add(rel_seq) };
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match self.vlan {
            Some(v) => eth.single_vlan(v.try_into().expect("vlan id")).ipv4(sa, da, 64),
            None => eth.ipv4(sa, da, 64),
        };
        let mut tcp = ip.tcp(sp, dp, seq, 65535);
        if syn {
            tcp = tcp.syn();
        }
        if ack {
            tcp = tcp.ack(peer.wrapping_add(1).wrapping_add(rel_ack));
        }
        if fin {
            tcp = tcp.fin();
        }
        if rst {
            tcp = tcp.rst();
        }
        let mut frame = Vec::new();
        tcp.write(&mut frame, payload).expect("build packet");
        let snap = self.snaplen;
        self.pcap.frame(self.t_us, &frame, snap);
    }

    fn handshake(&mut self) {
        self.seg(true, 0, 0, true, false, false, false, b"");
        self.seg(false, 0, 0, true, true, false, false, b"");
        self.seg(true, 0, 0, false, true, false, false, b"");
    }

    fn flows(&self, name: &str) -> Vec<serde_json::Value> {
        let d = TempDir::new(name);
        let p = d.path(&format!("{name}.pcap"));
        std::fs::write(&p, self.pcap.bytes()).expect("write pcap");
        util::pov_ok(&["flows", "--format", "jsonl", s(&p)])
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }
}

#[test]
fn loss_acked_by_the_peer_reorder_and_retransmission() {
    let mut c = Conn::new();
    c.vlan = Some(42);
    c.handshake();
    c.seg(true, 0, 0, false, true, false, false, b"GET /a HTTP/1.1\r\n\r\n"); // 19 bytes
    c.seg(false, 0, 19, false, true, false, false, b"HTTP/1.1 200 OK\r\n"); // 0..17
    // 17..27 lost; 27..37 arrives; then 37..47 arrives before a
    // retransmission of 27..37.
    c.seg(false, 27, 19, false, true, false, false, b"0123456789");
    c.seg(false, 37, 19, false, true, false, false, b"abcdefghij");
    c.seg(false, 27, 19, false, true, false, false, b"0123456789");
    // The client acknowledges everything: 17..27 was sent but not captured.
    c.seg(true, 19, 47, false, true, false, false, b"");
    c.seg(false, 47, 19, false, true, true, false, b"");
    c.seg(true, 19, 48, false, true, true, false, b"");
    let f = c.flows("loss");
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f["client"], "192.168.1.10:51000");
    assert_eq!(f["server"], "192.168.1.20:80");
    assert_eq!(f["c2s_stream_bytes"], 19);
    assert_eq!(f["s2c_bytes"], 17 + 30, "wire bytes count the retransmission");
    assert_eq!(f["s2c_stream_bytes"], 17 + 20);
    assert_eq!(f["s2c_gap_bytes"], 10);
    assert_eq!(f["state"], "SF");
    assert_eq!(f["close"], "fin by server");
    let anomalies: Vec<&str> = f["anomalies"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(anomalies, ["s2c:gap", "s2c:retransmission", "s2c:out_of_order"]);
}

#[test]
fn snaplen_cut_frames_are_capture_loss() {
    let mut c = Conn::new();
    c.handshake();
    c.snaplen = 14 + 20 + 20 + 5; // headers + 5 payload bytes
    c.seg(false, 0, 0, false, true, false, false, &[b'x'; 100]);
    c.snaplen = 65535;
    c.seg(false, 100, 0, false, true, false, true, b"");
    let f = &c.flows("snaplen")[0];
    assert_eq!(f["s2c_bytes"], 100, "like tshark's tcp.len, from the IP header");
    assert_eq!(f["s2c_stream_bytes"], 5);
    assert_eq!(f["s2c_gap_bytes"], 95);
    assert_eq!(f["close"], "rst by server");
    assert_eq!(f["state"], "RSTR");
}

#[test]
fn port_reuse_after_fin_starts_a_new_connection() {
    let mut c = Conn::new();
    c.handshake();
    c.seg(true, 0, 0, false, true, true, false, b"one");
    c.seg(false, 0, 4, false, true, true, false, b"");
    c.seg(true, 4, 1, false, true, false, false, b"");
    c.cisn = 5_000_000;
    c.sisn = 6_000_000;
    c.handshake();
    c.seg(true, 0, 0, false, true, false, false, b"two!");
    let f = c.flows("reuse");
    assert_eq!(f.len(), 2);
    assert_eq!((f[0]["c2s_stream_bytes"].as_u64(), f[1]["c2s_stream_bytes"].as_u64()), (Some(3), Some(4)));
    assert_eq!(f[0]["state"], "SF");
    assert_eq!(f[1]["state"], "S1");
    assert_eq!(f[1]["close"], "end of capture");
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut c = Conn::new();
    c.cisn = u32::MAX - 5;
    c.sisn = u32::MAX;
    c.handshake();
    c.seg(true, 0, 0, false, true, false, false, &[b'a'; 1000]);
    c.seg(true, 1000, 0, false, true, false, false, &[b'b'; 1000]);
    c.seg(false, 0, 2000, false, true, false, false, &[b'c'; 10]);
    let f = &c.flows("wrap")[0];
    assert_eq!(f["c2s_stream_bytes"], 2000);
    assert_eq!(f["s2c_stream_bytes"], 10);
    assert_eq!(f["c2s_gap_bytes"], 0);
    let rtt = f["handshake_rtt_ms"].as_f64().unwrap();
    assert!((rtt - 2.0).abs() < 1e-9, "SYN to ACK = 2 ms, got {rtt}");
}
