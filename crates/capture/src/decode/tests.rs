//! Decoder tests: hand-built packets for every link type, encapsulation
//! and tunnel (etherparse builds the inner IP+TCP, outer headers are byte
//! literals), fragments, snapshot-length cuts, malformed input (every
//! prefix, random byte flips), and real captures from the corpus.
//!
//! Every decode goes through [`H::feed`], which checks that the packet
//! landed in exactly one terminal bucket (`unaccounted() == 0`) and that a
//! segment never holds more payload than its IP length announced.

use std::net::SocketAddr;
use std::path::PathBuf;

use etherparse::{PacketBuilder, TcpOptionElement};

use super::*;

// ---------------------------------------------------------------- harness

/// A decoded segment, copied out of the decoder.
#[derive(Clone, Debug, PartialEq)]
struct Seg {
    frame: u64,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    options: TcpOptions,
    payload: Vec<u8>,
    payload_len: u32,
}

impl From<TcpSegment<'_>> for Seg {
    fn from(s: TcpSegment<'_>) -> Seg {
        Seg {
            frame: s.frame,
            src: s.src,
            dst: s.dst,
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            window: s.window,
            options: s.options,
            payload: s.payload.to_vec(),
            payload_len: s.payload_len,
        }
    }
}

/// A decoder plus frame numbering and per-packet invariant checks.
struct H {
    dec: Decoder,
    frame: u64,
}

impl H {
    fn new() -> H {
        H::with(DecodeConfig::default())
    }

    fn with(cfg: DecodeConfig) -> H {
        H { dec: Decoder::new(cfg), frame: 0 }
    }

    /// Decodes a complete (uncut) frame at time 0.
    fn feed(&mut self, lt: Linktype, data: &[u8]) -> (Option<Seg>, &'static str) {
        self.feed_at(lt, data, data.len(), Ts(0))
    }

    /// Decodes a frame whose wire length was `orig_len`, at `ts`; returns
    /// the segment and the terminal bucket the packet landed in.
    fn feed_at(&mut self, lt: Linktype, data: &[u8], orig_len: usize, ts: Ts) -> (Option<Seg>, &'static str) {
        self.frame += 1;
        let before: Vec<u64> = self.dec.stats().outcome.counts().map(|(_, n)| n).collect();
        let pkt =
            Packet { frame: self.frame, source: 0, ts, linktype: lt, data, orig_len: u32::try_from(orig_len).unwrap() };
        let seg = self.dec.decode(&pkt).map(Seg::from);
        let stats = self.dec.stats();
        assert_eq!(stats.unaccounted(), 0, "unaccounted after frame {}", self.frame);
        let changed: Vec<&'static str> = stats
            .outcome
            .counts()
            .zip(before)
            .filter(|((_, now), was)| now != was)
            .map(|((name, _), _)| name)
            .collect();
        assert_eq!(changed.len(), 1, "exactly one terminal bucket: {changed:?}");
        if let Some(s) = &seg {
            assert_eq!(changed[0], "tcp_segments");
            assert!(s.payload.len() <= s.payload_len as usize, "payload beyond its length");
        }
        assert!(self.dec.pending_fragment_bytes() <= self.dec.cfg.max_frag_bytes);
        (seg, changed[0])
    }

    /// Decodes a frame that must yield a segment.
    fn seg(&mut self, lt: Linktype, data: &[u8]) -> Seg {
        match self.feed(lt, data) {
            (Some(s), _) => s,
            (None, bucket) => panic!("no segment, counted as {bucket}"),
        }
    }

    fn stats(&self) -> &DecodeStats {
        self.dec.stats()
    }
}

/// The bucket a single frame lands in, with a fresh decoder.
fn bucket(lt: Linktype, data: &[u8]) -> &'static str {
    H::new().feed(lt, data).1
}

/// The segment a single frame yields, with a fresh decoder.
fn seg(lt: Linktype, data: &[u8]) -> Seg {
    H::new().seg(lt, data)
}

/// Bucket of a frame cut to its first `keep` bytes by the snapshot length.
fn cut_bucket(lt: Linktype, data: &[u8], keep: usize) -> &'static str {
    H::new().feed_at(lt, &data[..keep], data.len(), Ts(0)).1
}

// --------------------------------------------------------------- builders

const C4: [u8; 4] = [192, 0, 2, 1];
const S4: [u8; 4] = [198, 51, 100, 2];
const C6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const S6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// Outer (tunnel endpoint) addresses.
const O4A: [u8; 4] = [10, 0, 0, 1];
const O4B: [u8; 4] = [10, 0, 0, 2];
const O6A: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa];
const O6B: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb];

const SPORT: u16 = 40000;
const DPORT: u16 = 80;
const SEQ: u32 = 1_000_000;
const ACK: u32 = 7;
const WIN: u16 = 1000;
const BODY: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

/// IPv4 + TCP (ACK|PSH) from C4:40000 to S4:80 carrying `payload`.
fn tcp4(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(C4, S4, 64).tcp(SPORT, DPORT, SEQ, WIN).ack(ACK).psh().write(&mut v, payload).unwrap();
    v
}

/// IPv6 + TCP (ACK|PSH) from C6:40000 to S6:80 carrying `payload`.
fn tcp6(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(C6, S6, 64).tcp(SPORT, DPORT, SEQ, WIN).ack(ACK).psh().write(&mut v, payload).unwrap();
    v
}

fn assert_seg4(s: &Seg, payload: &[u8]) {
    assert_eq!(s.src, SocketAddr::from((C4, SPORT)));
    assert_eq!(s.dst, SocketAddr::from((S4, DPORT)));
    assert_common(s, payload);
}

fn assert_seg6(s: &Seg, payload: &[u8]) {
    assert_eq!(s.src, SocketAddr::from((C6, SPORT)));
    assert_eq!(s.dst, SocketAddr::from((S6, DPORT)));
    assert_common(s, payload);
}

fn assert_common(s: &Seg, payload: &[u8]) {
    assert_eq!(s.seq, SEQ);
    assert_eq!(s.ack, ACK);
    assert_eq!(s.flags, TcpFlags(TcpFlags::ACK | TcpFlags::PSH));
    assert_eq!(s.window, WIN);
    assert_eq!(s.options, TcpOptions::default());
    assert_eq!(s.payload, payload);
    assert_eq!(s.payload_len as usize, payload.len());
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Ethernet II header with the given type.
fn eth_hdr(t: u16) -> Vec<u8> {
    let mut v = vec![0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x11, 0x22, 0x33, 0x44, 0x66];
    v.extend_from_slice(&t.to_be_bytes());
    v
}

fn eth(t: u16, inner: &[u8]) -> Vec<u8> {
    cat(&[&eth_hdr(t), inner])
}

/// A VLAN tag (TCI with VLAN `vid`, then the inner type).
fn tag(vid: u16, inner: u16) -> Vec<u8> {
    cat(&[&vid.to_be_bytes(), &inner.to_be_bytes()])
}

/// An IPv4 header (checksum left 0: it is never verified).
fn ip4_hdr(proto: u8, payload_len: usize, src: [u8; 4], dst: [u8; 4], id: u16, frag: u16) -> Vec<u8> {
    let total = u16::try_from(20 + payload_len).unwrap();
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v
}

/// Outer IPv4 (O4A -> O4B) around `payload`.
fn ip4(proto: u8, payload: &[u8]) -> Vec<u8> {
    cat(&[&ip4_hdr(proto, payload.len(), O4A, O4B, 1, 0), payload])
}

/// An IPv6 header.
fn ip6_hdr(next: u8, payload_len: usize, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&u16::try_from(payload_len).unwrap().to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v
}

/// Outer IPv6 (O6A -> O6B) around `payload`.
fn ip6(next: u8, payload: &[u8]) -> Vec<u8> {
    cat(&[&ip6_hdr(next, payload.len(), O6A, O6B), payload])
}

/// Outer IPv4 + UDP around `payload`.
fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(O4A, O4B, 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

/// Outer IPv6 + UDP around `payload`.
fn udp6(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(O6A, O6B, 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

const ETH: Linktype = Linktype::ETHERNET;

// --------------------------------------------------------------- link types

#[test]
fn ethernet_ipv4_and_ipv6() {
    assert_seg4(&seg(ETH, &eth(0x0800, &tcp4(BODY))), BODY);
    assert_seg6(&seg(ETH, &eth(0x86dd, &tcp6(BODY))), BODY);
}

#[test]
fn raw_link_types() {
    for lt in [Linktype::RAW, Linktype::RAW_12, Linktype::RAW_14] {
        assert_seg4(&seg(lt, &tcp4(BODY)), BODY);
        assert_seg6(&seg(lt, &tcp6(BODY)), BODY);
    }
    assert_seg4(&seg(Linktype::IPV4, &tcp4(BODY)), BODY);
    assert_seg6(&seg(Linktype::IPV6, &tcp6(BODY)), BODY);
    // The link type names the version; the packet must agree.
    assert_eq!(bucket(Linktype::IPV4, &tcp6(BODY)), "malformed_ip");
    assert_eq!(bucket(Linktype::IPV6, &tcp4(BODY)), "malformed_ip");
    assert_eq!(bucket(Linktype::RAW, &[0x10, 0, 0, 0]), "malformed_ip");
    assert_eq!(bucket(Linktype::RAW, &[]), "malformed_ip");
}

#[test]
fn loopback_null_both_byte_orders_and_loop() {
    for fam in [2u32] {
        for hdr in [fam.to_le_bytes(), fam.to_be_bytes()] {
            assert_seg4(&seg(Linktype::NULL, &cat(&[&hdr, &tcp4(BODY)])), BODY);
            assert_seg4(&seg(Linktype::LOOP, &cat(&[&hdr, &tcp4(BODY)])), BODY);
        }
    }
    for fam in [24u32, 28, 30] {
        for hdr in [fam.to_le_bytes(), fam.to_be_bytes()] {
            assert_seg6(&seg(Linktype::NULL, &cat(&[&hdr, &tcp6(BODY)])), BODY);
            assert_seg6(&seg(Linktype::LOOP, &cat(&[&hdr, &tcp6(BODY)])), BODY);
        }
    }
    // AF_APPLETALK (16): not IP.
    assert_eq!(bucket(Linktype::NULL, &cat(&[&16u32.to_le_bytes(), &tcp4(BODY)])), "other_link_payload");
    assert_eq!(bucket(Linktype::NULL, &[2, 0]), "malformed_link");
    let mut h = H::new();
    h.seg(Linktype::LOOP, &cat(&[&2u32.to_be_bytes(), &tcp4(BODY)]));
    assert_eq!(h.stats().layers.loopback, 1);
}

/// Linux cooked v1 header: packet type, ARPHRD, address length, address,
/// protocol.
fn sll(proto: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 6, 0x02, 0x11, 0x22, 0x33, 0x44, 0x66, 0, 0];
    v.extend_from_slice(&proto.to_be_bytes());
    cat(&[&v, inner])
}

/// Linux cooked v2 header: protocol, reserved, ifindex, ARPHRD, packet
/// type, address length, address.
fn sll2(proto: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = proto.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 0x02, 0x11, 0x22, 0x33, 0x44, 0x66, 0, 0]);
    cat(&[&v, inner])
}

#[test]
fn linux_cooked_v1_and_v2() {
    assert_seg4(&seg(Linktype::LINUX_SLL, &sll(0x0800, &tcp4(BODY))), BODY);
    assert_seg6(&seg(Linktype::LINUX_SLL, &sll(0x86dd, &tcp6(BODY))), BODY);
    // A VLAN tag left in the payload by the capturing kernel.
    let tagged = sll(0x8100, &cat(&[&tag(7, 0x0800), &tcp4(BODY)]));
    assert_seg4(&seg(Linktype::LINUX_SLL, &tagged), BODY);
    assert_seg4(&seg(Linktype::LINUX_SLL2, &sll2(0x0800, &tcp4(BODY))), BODY);
    assert_seg6(&seg(Linktype::LINUX_SLL2, &sll2(0x86dd, &tcp6(BODY))), BODY);
    assert_eq!(bucket(Linktype::LINUX_SLL, &sll(0x0806, &[0; 28])), "arp");
    // ETH_P_CAN.
    assert_eq!(bucket(Linktype::LINUX_SLL, &sll(0x000c, &[0; 16])), "other_link_payload");
    assert_eq!(bucket(Linktype::LINUX_SLL2, &sll2(0x0800, &[])[..19]), "malformed_link");
    let mut h = H::new();
    h.seg(Linktype::LINUX_SLL2, &sll2(0x0800, &tcp4(BODY)));
    assert_eq!(h.stats().layers.sll, 1);
}

/// One NFLOG TLV, padded to 4 bytes, length and type in `little` or big
/// endian.
fn nflog_tlv(typ: u16, value: &[u8], little: bool) -> Vec<u8> {
    let len = u16::try_from(4 + value.len()).unwrap();
    let mut v = Vec::new();
    if little {
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&typ.to_le_bytes());
    } else {
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&typ.to_be_bytes());
    }
    v.extend_from_slice(value);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn nflog(family: u8, inner: &[u8], little: bool) -> Vec<u8> {
    cat(&[
        &[family, 0, 0, 1],
        // NFULA_PACKET_HDR (hw protocol, hook, pad), NFULA_PREFIX (odd
        // length, so padded), then the payload.
        &nflog_tlv(1, &[0x08, 0x00, 3, 0], little),
        &nflog_tlv(10, b"pov\0\0", little),
        &nflog_tlv(9, inner, little),
        &nflog_tlv(11, &[0, 0, 0, 0], little),
    ])
}

#[test]
fn nflog_both_byte_orders() {
    for little in [true, false] {
        assert_seg4(&seg(Linktype::NFLOG, &nflog(2, &tcp4(BODY), little)), BODY);
        assert_seg6(&seg(Linktype::NFLOG, &nflog(10, &tcp6(BODY), little)), BODY);
        assert_seg6(&seg(Linktype::NFLOG, &nflog(0, &tcp6(BODY), little)), BODY);
    }
    let no_payload = cat(&[&[2, 0, 0, 1], &nflog_tlv(1, &[8, 0, 3, 0], true)]);
    assert_eq!(bucket(Linktype::NFLOG, &no_payload), "other_link_payload");
    // A TLV shorter than its own header.
    assert_eq!(bucket(Linktype::NFLOG, &[2, 0, 0, 1, 2, 0, 9, 0]), "malformed_link");
    // Payload TLV longer than the frame, frame not cut.
    // (The last TLV is 8 bytes, the payload TLV has 2 bytes of padding:
    // cutting 14 bytes takes 4 off the TCP payload.)
    let mut long = nflog(2, &tcp4(BODY), true);
    long.truncate(long.len() - 14);
    assert_eq!(bucket(Linktype::NFLOG, &long), "malformed_link");
    // ... and cut by the snapshot length: still decoded.
    let full = nflog(2, &tcp4(BODY), true);
    let mut h = H::new();
    let (s, _) = h.feed_at(Linktype::NFLOG, &full[..full.len() - 14], full.len(), Ts(0));
    let s = s.unwrap();
    assert_eq!(s.payload, &BODY[..BODY.len() - 4]);
    assert_eq!(s.payload_len as usize, BODY.len());
}

#[test]
fn ppp_link_types() {
    for lt in [Linktype::PPP, Linktype::PPP_HDLC] {
        assert_seg4(&seg(lt, &cat(&[&[0xff, 0x03, 0x00, 0x21], &tcp4(BODY)])), BODY);
        assert_seg6(&seg(lt, &cat(&[&[0xff, 0x03, 0x00, 0x57], &tcp6(BODY)])), BODY);
        assert_seg4(&seg(lt, &cat(&[&[0x00, 0x21], &tcp4(BODY)])), BODY);
        // Protocol field compression (one byte).
        assert_seg4(&seg(lt, &cat(&[&[0xff, 0x03, 0x21], &tcp4(BODY)])), BODY);
        // LCP.
        assert_eq!(bucket(lt, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]), "other_link_payload");
    }
    // Cisco HDLC inside link type 50.
    assert_seg4(&seg(Linktype::PPP_HDLC, &cat(&[&[0x0f, 0x00, 0x08, 0x00], &tcp4(BODY)])), BODY);
    // PPP over Ethernet without the Ethernet header.
    assert_seg4(&seg(Linktype::PPP_ETHER, &pppoe(0x0021, &tcp4(BODY))), BODY);
}

#[test]
fn unsupported_linktype_is_counted() {
    assert_eq!(bucket(Linktype(147), &tcp4(BODY)), "unsupported_linktype");
    assert_eq!(bucket(Linktype(127), &[]), "unsupported_linktype");
}

// ----------------------------------------------------------- ethernet family

#[test]
fn vlan_qinq_any_depth() {
    let one = eth(0x8100, &cat(&[&tag(10, 0x0800), &tcp4(BODY)]));
    let qinq = eth(0x88a8, &cat(&[&tag(100, 0x8100), &tag(10, 0x86dd), &tcp6(BODY)]));
    let old = eth(0x9100, &cat(&[&tag(100, 0x8100), &tag(10, 0x0800), &tcp4(BODY)]));
    let deep = eth(0x88a8, &cat(&[&tag(1, 0x88a8), &tag(2, 0x9100), &tag(3, 0x8100), &tag(4, 0x0800), &tcp4(BODY)]));
    let mut h = H::new();
    assert_seg4(&h.seg(ETH, &one), BODY);
    assert_seg6(&h.seg(ETH, &qinq), BODY);
    assert_seg4(&h.seg(ETH, &old), BODY);
    assert_seg4(&h.seg(ETH, &deep), BODY);
    assert_eq!(h.stats().layers.vlan, 4);
    assert_eq!(h.stats().layers.qinq, 5);
    assert_eq!(bucket(ETH, &eth(0x8100, &[0, 10])), "malformed_link");
}

/// IEEE 802.3 frame: length field, then `llc`.
fn dot3(llc: &[u8]) -> Vec<u8> {
    eth(u16::try_from(llc.len()).unwrap(), llc)
}

#[test]
fn llc_snap_and_plain_llc() {
    let snap = cat(&[&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00], &tcp4(BODY)]);
    let mut h = H::new();
    assert_seg4(&h.seg(ETH, &dot3(&snap)), BODY);
    assert_eq!(h.stats().layers.llc_snap, 1);
    // Padded to the 60-byte minimum: the 802.3 length and the IP length
    // both trim it.
    let small = cat(&[&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00], &tcp4(b"")]);
    let mut padded = dot3(&small);
    padded.resize(64, 0xee);
    assert_seg4(&seg(ETH, &padded), b"");
    // Spanning tree BPDU.
    assert_eq!(bucket(ETH, &dot3(&[0x42, 0x42, 0x03, 0, 0, 0, 0, 0])), "llc");
    // CDP: SNAP with Cisco's OUI.
    assert_eq!(bucket(ETH, &dot3(&[0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0, 1, 2])), "llc");
    // 802.3 inside a VLAN tag.
    let tagged = eth(0x8100, &cat(&[&tag(5, 3), &[0x42, 0x42, 0x03]]));
    assert_eq!(bucket(ETH, &tagged), "llc");
    // SNAP with an ARP ethertype.
    assert_eq!(bucket(ETH, &dot3(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06, 0, 1])), "arp");
    // Type field in the undefined 1501..1535 range.
    assert_eq!(bucket(ETH, &eth(1510, &tcp4(BODY))), "malformed_link");
    assert_eq!(bucket(ETH, &dot3(&[0xaa, 0xaa, 0x03, 0, 0])), "malformed_link");
}

/// PPPoE session header (session 0x1234) and PPP protocol around `inner`.
fn pppoe(proto: u16, inner: &[u8]) -> Vec<u8> {
    let len = u16::try_from(2 + inner.len()).unwrap();
    cat(&[&[0x11, 0x00, 0x12, 0x34], &len.to_be_bytes(), &proto.to_be_bytes(), inner])
}

#[test]
fn pppoe_session() {
    let mut h = H::new();
    assert_seg4(&h.seg(ETH, &eth(0x8864, &pppoe(0x0021, &tcp4(BODY)))), BODY);
    // Padding after the PPPoE length is ignored.
    let mut padded = eth(0x8864, &pppoe(0x0057, &tcp6(BODY)));
    padded.extend_from_slice(&[0; 6]);
    assert_seg6(&h.seg(ETH, &padded), BODY);
    assert_eq!(h.stats().layers.pppoe, 2);
    assert_eq!(h.stats().layers.ppp, 2);
    // Discovery stage.
    assert_eq!(bucket(ETH, &eth(0x8863, &[0x11, 0x09, 0, 0, 0, 0])), "other_ethertype");
    // Wrong version/type.
    assert_eq!(bucket(ETH, &eth(0x8864, &[0x21, 0, 0, 1, 0, 2, 0, 0x21])), "malformed_link");
}

/// One MPLS label stack entry.
fn label(value: u32, bottom: bool) -> [u8; 4] {
    (value << 12 | u32::from(bottom) << 8 | 64).to_be_bytes()
}

#[test]
fn mpls_ip_and_pseudowire() {
    let mut h = H::new();
    assert_seg4(&h.seg(ETH, &eth(0x8847, &cat(&[&label(16, true), &tcp4(BODY)]))), BODY);
    let stacked = cat(&[&label(16, false), &label(17, false), &label(18, true), &tcp6(BODY)]);
    assert_seg6(&h.seg(ETH, &eth(0x8847, &stacked)), BODY);
    // Ethernet pseudowire: control word 0000, then a whole frame.
    let pw = cat(&[&label(20, true), &[0, 0, 0, 5], &eth(0x0800, &tcp4(BODY))]);
    assert_seg4(&h.seg(ETH, &eth(0x8847, &pw)), BODY);
    assert_seg4(&h.seg(ETH, &eth(0x8848, &cat(&[&label(3, true), &tcp4(BODY)]))), BODY);
    assert_eq!(h.stats().layers.mpls, 4);
    assert_eq!(h.stats().layers.mpls_pw, 1);
    // Generic associated channel (first nibble 1).
    assert_eq!(bucket(ETH, &eth(0x8847, &[0, 0, 0xd1, 64, 0x10, 0, 0, 0x21])), "other_link_payload");
    // Never reaches bottom of stack.
    assert_eq!(bucket(ETH, &eth(0x8847, &cat(&[&label(1, false), &label(2, false)]))), "malformed_link");
}

#[test]
fn non_ip_ethertypes_have_buckets() {
    assert_eq!(bucket(ETH, &eth(0x0806, &[0; 28])), "arp");
    assert_eq!(bucket(ETH, &eth(0x88cc, &[0; 20])), "lldp");
    assert_eq!(bucket(ETH, &eth(0x88b5, &[0; 20])), "other_ethertype");
    assert_eq!(bucket(ETH, &eth(0x8137, &[0; 20])), "other_ethertype");
    assert_eq!(bucket(ETH, &eth(0x0800, &[])[..13]), "malformed_link");
}

// ------------------------------------------------------------------ tunnels

/// A GRE header with the given C/K/S flags (version 0).
fn gre_hdr(c: bool, k: bool, s: bool, proto: u16) -> Vec<u8> {
    let flags = u16::from(c) << 15 | u16::from(k) << 13 | u16::from(s) << 12;
    let mut v = cat(&[&flags.to_be_bytes(), &proto.to_be_bytes()]);
    if c {
        v.extend_from_slice(&[0xbe, 0xef, 0, 0]);
    }
    if k {
        v.extend_from_slice(&[0, 0, 0, 42]);
    }
    if s {
        v.extend_from_slice(&[0, 0, 0, 9]);
    }
    v
}

#[test]
fn gre_every_flag_combination_and_protocol() {
    let mut h = H::new();
    let mut n = 0;
    for bits in 0..8u8 {
        let (c, k, s) = (bits & 4 != 0, bits & 2 != 0, bits & 1 != 0);
        let v4 = ip4(47, &cat(&[&gre_hdr(c, k, s, 0x0800), &tcp4(BODY)]));
        assert_seg4(&h.seg(ETH, &eth(0x0800, &v4)), BODY);
        let v6 = ip4(47, &cat(&[&gre_hdr(c, k, s, 0x86dd), &tcp6(BODY)]));
        assert_seg6(&h.seg(ETH, &eth(0x0800, &v6)), BODY);
        let teb = ip6(47, &cat(&[&gre_hdr(c, k, s, 0x6558), &eth(0x0800, &tcp4(BODY))]));
        assert_seg4(&h.seg(ETH, &eth(0x86dd, &teb)), BODY);
        let mpls = ip4(47, &cat(&[&gre_hdr(c, k, s, 0x8847), &label(16, true), &tcp4(BODY)]));
        assert_seg4(&h.seg(ETH, &eth(0x0800, &mpls)), BODY);
        n += 4;
    }
    assert_eq!(h.stats().layers.gre, n);
    // RFC 1701 routing: checksum/offset, one source route entry, NULL entry.
    let routed =
        cat(&[&[0x40, 0x00, 0x08, 0x00], &[0, 0, 0, 0], &[0x08, 0x00, 0, 4, 10, 0, 0, 9], &[0, 0, 0, 0], &tcp4(BODY)]);
    assert_seg4(&seg(Linktype::RAW, &ip4(47, &routed)), BODY);
    // Enhanced GRE (PPTP): K, S and A set, PPP inside.
    let pptp = cat(&[
        &[0x30, 0x81, 0x88, 0x0b],
        &[0, 58, 0, 1],
        &[0, 0, 0, 3],
        &[0, 0, 0, 2],
        &[0xff, 0x03, 0x00, 0x21],
        &tcp4(BODY),
    ]);
    assert_seg4(&seg(Linktype::RAW, &ip4(47, &pptp)), BODY);
    let ack_only = [0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 1, 0, 0, 0, 2];
    assert_eq!(bucket(Linktype::RAW, &ip4(47, &ack_only)), "other_link_payload");
    assert_eq!(bucket(Linktype::RAW, &ip4(47, &[0x00, 0x02, 0x08, 0x00])), "malformed_tunnel");
    assert_eq!(bucket(Linktype::RAW, &ip4(47, &[0xb0, 0x00, 0x08, 0x00, 0, 0])), "malformed_tunnel");
    // WCCP, and a GRE keepalive (protocol 0: no 802.3 lengths outside
    // Ethernet).
    assert_eq!(bucket(Linktype::RAW, &ip4(47, &[0, 0, 0x88, 0x3e])), "other_ethertype");
    assert_eq!(bucket(Linktype::RAW, &ip4(47, &[0, 0, 0, 0])), "other_ethertype");
}

#[test]
fn erspan_types_one_two_three() {
    let inner = eth(0x0800, &tcp4(BODY));
    // Type I: no sequence number, no ERSPAN header.
    let t1 = ip4(47, &cat(&[&gre_hdr(false, false, false, 0x88be), &inner]));
    // Type II: sequence number, 8-byte header (version 1).
    let e2 = [0x10, 0x64, 0x00, 0x01, 0, 0, 0, 0];
    let t2 = ip4(47, &cat(&[&gre_hdr(false, false, true, 0x88be), &e2, &inner]));
    // Type III without and with the platform subheader (O bit), and with
    // frame type 2 (IP).
    let e3 = [0x20, 0x64, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0x00, 0x00];
    let e3o = [0x20, 0x64, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0x00, 0x01];
    let e3ip = [0x20, 0x64, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    let plat = [0x08, 0, 0, 0, 0, 0, 0, 0];
    let t3 = ip4(47, &cat(&[&gre_hdr(false, false, true, 0x22eb), &e3, &inner]));
    let t3o = ip4(47, &cat(&[&gre_hdr(false, false, true, 0x22eb), &e3o, &plat, &inner]));
    let t3ip = ip4(47, &cat(&[&gre_hdr(false, false, true, 0x22eb), &e3ip, &tcp6(BODY)]));
    let mut h = H::new();
    for p in [&t1, &t2, &t3, &t3o] {
        assert_seg4(&h.seg(ETH, &eth(0x0800, p)), BODY);
    }
    assert_seg6(&h.seg(ETH, &eth(0x0800, &t3ip)), BODY);
    assert_eq!(h.stats().layers.erspan, 5);
    assert_eq!(h.stats().layers.gre, 5);
    let short = ip4(47, &cat(&[&gre_hdr(false, false, true, 0x88be), &[0x10, 0x64]]));
    assert_eq!(bucket(Linktype::RAW, &short), "malformed_tunnel");
}

#[test]
fn vxlan_on_either_port() {
    let vx = cat(&[&[0x08, 0, 0, 0, 0, 0x12, 0x34, 0], &eth(0x0800, &tcp4(BODY))]);
    let mut h = H::new();
    assert_seg4(&h.seg(ETH, &eth(0x0800, &udp4(50000, 4789, &vx))), BODY);
    assert_seg4(&h.seg(ETH, &eth(0x0800, &udp4(4789, 50000, &vx))), BODY);
    assert_seg4(&h.seg(ETH, &eth(0x86dd, &udp6(50000, 4789, &vx))), BODY);
    assert_eq!(h.stats().layers.vxlan, 3);
    // Without the I flag it is not VXLAN.
    let mut not = vx.clone();
    not[0] = 0;
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(50000, 4789, &not))), "udp");
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(50000, 4789, &vx[..6]))), "malformed_tunnel");
}

#[test]
fn geneve_with_options() {
    let opt = [0x01, 0x02, 0x03, 0x01, 0xaa, 0xbb, 0xcc, 0xdd];
    let g = cat(&[&[0x02, 0x00, 0x65, 0x58, 0, 0, 7, 0], &opt, &eth(0x0800, &tcp4(BODY))]);
    assert_seg4(&seg(ETH, &eth(0x0800, &udp4(50000, 6081, &g))), BODY);
    let g6 = cat(&[&[0x00, 0x00, 0x86, 0xdd, 0, 0, 7, 0], &tcp6(BODY)]);
    assert_seg6(&seg(ETH, &eth(0x0800, &udp4(6081, 6081, &g6))), BODY);
    // Version 1 is not Geneve as we know it.
    let mut v1 = g.clone();
    v1[0] |= 0x40;
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(50000, 6081, &v1))), "udp");
}

/// A GTP-U T-PDU with the given flag byte and optional part.
fn gtpu(flags: u8, msg: u8, optional: &[u8], inner: &[u8]) -> Vec<u8> {
    let len = u16::try_from(optional.len() + inner.len()).unwrap();
    cat(&[&[flags, msg], &len.to_be_bytes(), &[0, 0, 0, 1], optional, inner])
}

#[test]
fn gtpu_header_variants() {
    let mut h = H::new();
    // Plain: 8-byte header.
    let plain = gtpu(0x30, 0xff, &[], &tcp4(BODY));
    assert_seg4(&h.seg(ETH, &eth(0x0800, &udp4(2152, 2152, &plain))), BODY);
    // S set: +4 (sequence, N-PDU, next type 0).
    let seq = gtpu(0x32, 0xff, &[0, 9, 0, 0], &tcp6(BODY));
    assert_seg6(&h.seg(ETH, &eth(0x0800, &udp4(2152, 2152, &seq))), BODY);
    // E set: two extension headers (PDU session container 0x85, then a
    // 2-unit one), then IPv4.
    let ext = [0, 0, 0, 0x85, 1, 0x10, 0x01, 0x40, 2, 1, 2, 3, 4, 5, 6, 0];
    let chained = gtpu(0x34, 0xff, &ext, &tcp4(BODY));
    assert_seg4(&h.seg(ETH, &eth(0x0800, &udp4(40000, 2152, &chained))), BODY);
    assert_eq!(h.stats().layers.gtpu, 3);
    // Echo request: signalling.
    let echo = gtpu(0x32, 0x01, &[0, 1, 0, 0], &[]);
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(2152, 2152, &echo))), "other_link_payload");
    // Extension header of length 0.
    let bad = gtpu(0x34, 0xff, &[0, 0, 0, 0x85, 0, 0, 0, 0], &tcp4(BODY));
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(2152, 2152, &bad))), "malformed_tunnel");
    // GTPv2 on the user-plane port is not GTP-U.
    let v2 = gtpu(0x48, 0xff, &[], &tcp4(BODY));
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(2152, 2152, &v2))), "udp");
}

#[test]
fn teredo_direct_and_with_indicators() {
    let inner = tcp6(BODY);
    let origin = [0x00, 0x00, 0x8c, 0x3f, 0x3f, 0xff, 0xff, 0xfe];
    let auth = cat(&[&[0x00, 0x01, 2, 3], b"id", b"val", &[1, 2, 3, 4, 5, 6, 7, 8], &[0]]);
    let mut h = H::new();
    for p in [inner.clone(), cat(&[&origin, &inner]), cat(&[&auth, &origin, &inner]), cat(&[&auth, &inner])] {
        assert_seg6(&h.seg(ETH, &eth(0x0800, &udp4(3544, 61000, &p))), BODY);
    }
    assert_eq!(h.stats().layers.teredo, 4);
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(3544, 61000, b"ping"))), "udp");
    let twice = cat(&[&origin, &origin, &inner]);
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(3544, 61000, &twice))), "malformed_tunnel");
}

/// A Teredo client's address (RFC 4380 section 4: server 65.54.227.120,
/// cone flag, obfuscated port 40000 and address 192.0.2.45).
const T6: [u8; 16] = [0x20, 0x01, 0x00, 0x00, 0x41, 0x36, 0xe3, 0x78, 0x80, 0x00, 0x63, 0xbf, 0x3f, 0xff, 0xfd, 0xd2];

/// IPv6 + TCP (ACK|PSH) from `src`:40000 to `dst`:80 carrying `payload`.
fn tcp6_between(src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(src, dst, 64).tcp(SPORT, DPORT, SEQ, WIN).ack(ACK).psh().write(&mut v, payload).unwrap();
    v
}

#[test]
fn teredo_by_content_on_any_port() {
    let origin = [0x00, 0x00, 0x8c, 0x3f, 0x3f, 0xff, 0xff, 0xfe];
    let auth = cat(&[&[0x00, 0x01, 2, 3], b"id", b"val", &[1, 2, 3, 4, 5, 6, 7, 8], &[0]]);
    let from_client = tcp6_between(T6, S6, BODY);
    let to_client = tcp6_between(S6, T6, BODY);
    let mut h = H::new();
    for p in [from_client.clone(), to_client.clone(), cat(&[&origin, &from_client]), cat(&[&auth, &origin, &to_client])]
    {
        let s = h.seg(ETH, &eth(0x0800, &udp4(50000, 61000, &p)));
        assert_eq!(s.payload, BODY);
    }
    assert_eq!(h.stats().layers.teredo, 4);
    // The length comes from the UDP header: a frame the snapshot length
    // cut inside the TCP payload is still Teredo, its segment cut.
    let frame = eth(0x0800, &udp4(50000, 61000, &from_client));
    let cut = H::new().feed_at(ETH, &frame[..frame.len() - 5], frame.len(), Ts(0));
    assert_eq!(cut.0.map(|s| (s.payload.len(), s.payload_len as usize)), Some((BODY.len() - 5, BODY.len())));
    // Over IPv6 too, and two tunnels deep.
    let twice = udp4(50000, 61000, &tcp6_between(T6, S6, BODY));
    let outer = cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth(0x0800, &twice)]);
    assert_eq!(h.seg(ETH, &eth(0x86dd, &udp6(1234, 4789, &outer))).payload, BODY);
}

#[test]
fn udp_that_is_not_teredo_stays_udp() {
    let inner = tcp6_between(T6, S6, BODY);
    let udp = |p: &[u8]| bucket(ETH, &eth(0x0800, &udp4(50000, 61000, p)));
    // One byte more or less than the IPv6 header announces.
    assert_eq!(udp(&cat(&[&inner, &[0]])), "udp");
    assert_eq!(udp(&inner[..inner.len() - 1]), "udp");
    // Native IPv6 addresses: not a Teredo tunnel.
    assert_eq!(udp(&tcp6_between(C6, S6, BODY)), "udp");
    // Hop limit 0, an implausible next header, version 4.
    for (at, value) in [(7, 0u8), (6, 0xfd), (0, 0x40)] {
        let mut p = inner.clone();
        p[at] = value;
        assert_eq!(udp(&p), "udp", "byte {at} = {value:#x}");
    }
    // Indicator headers that do not fit.
    assert_eq!(udp(&cat(&[&[0x00, 0x01, 200, 200], &inner])), "udp");
    assert_eq!(udp(&cat(&[&[0x00, 0x00, 1, 2], &inner])), "udp");
    // A DNS query whose id starts with 6 (the first byte of a Teredo
    // packet), long enough to hold an IPv6 header.
    let dns = cat(&[
        &[0x6a, 0x12, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0],
        b"\x03www\x1danother-fairly-long-domain-name\x03com\x00",
        &[0, 28, 0, 1],
    ]);
    assert!(dns.len() > 40);
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(53000, 53, &dns))), "udp");
    // Random datagrams starting with 0x6_ (QUIC short headers, RTP, games):
    // none is taken for Teredo.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut h = H::new();
    for i in 0..20_000usize {
        let len = 40 + i % 1200;
        let mut p: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        p[0] = 0x60 | (p[0] & 0x0f);
        // Not a tunnel's registered port (3544 is Teredo by port).
        let port = 1024 + (i as u16 % 60000);
        if [2152, 3544, 4789, 5072, 6081].contains(&port) {
            continue;
        }
        assert_eq!(h.feed(ETH, &eth(0x0800, &udp4(port, 443, &p))).1, "udp");
    }
    assert_eq!(h.stats().layers.teredo, 0);
}

/// AYIYA header: identity length 2^4 = 16 bytes, type 1; signature 5*4 =
/// 20 bytes, hash SHA-1; auth method 2, opcode; next header; epoch.
fn ayiya(opcode: u8, next: u8, inner: &[u8]) -> Vec<u8> {
    cat(&[&[0x41, 0x52, 0x20 | opcode, next], &[0x5f, 0, 0, 0], &[0xaa; 16], &[0xbb; 20], inner])
}

#[test]
fn ayiya_ipv6_and_ipv4() {
    let mut h = H::new();
    assert_seg6(&h.seg(ETH, &eth(0x0800, &udp4(5072, 5072, &ayiya(1, 41, &tcp6(BODY))))), BODY);
    assert_seg4(&h.seg(ETH, &eth(0x0800, &udp4(5072, 5072, &ayiya(1, 4, &tcp4(BODY))))), BODY);
    assert_eq!(h.stats().layers.ayiya, 2);
    // Heartbeat (opcode 0, no next header).
    let hb = ayiya(0, 59, &[]);
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(5072, 5072, &hb))), "other_link_payload");
    let cut = &ayiya(1, 41, &[])[..20];
    assert_eq!(bucket(ETH, &eth(0x0800, &udp4(5072, 5072, cut))), "malformed_tunnel");
}

#[test]
fn ip_in_ip_every_combination_and_nesting() {
    let mut h = H::new();
    assert_seg4(&h.seg(Linktype::RAW, &ip4(4, &tcp4(BODY))), BODY);
    assert_seg6(&h.seg(Linktype::RAW, &ip4(41, &tcp6(BODY))), BODY);
    assert_seg4(&h.seg(Linktype::RAW, &ip6(4, &tcp4(BODY))), BODY);
    assert_seg6(&h.seg(Linktype::RAW, &ip6(41, &tcp6(BODY))), BODY);
    let nested = ip4(41, &ip6(4, &ip4(4, &tcp4(BODY))));
    assert_seg4(&h.seg(Linktype::RAW, &nested), BODY);
    assert_eq!(h.stats().layers.ip_in_ip, 7);
    assert_eq!(h.stats().layers.ipv4, 2 + 3 + 2);
    assert_eq!(h.stats().layers.ipv6, 1 + 1 + 2 + 1);
}

/// `n` IPv4-in-IPv4 tunnels around a TCP packet.
fn nest(n: usize) -> Vec<u8> {
    (0..n).fold(tcp4(BODY), |p, _| ip4(4, &p))
}

#[test]
fn tunnel_depth_is_bounded() {
    let mut h = H::new();
    assert_seg4(&h.seg(Linktype::RAW, &nest(8)), BODY);
    assert_eq!(h.feed(Linktype::RAW, &nest(9)).1, "tunnel_too_deep");
    let mut shallow = H::with(DecodeConfig { max_tunnel_depth: 1, ..DecodeConfig::default() });
    assert_seg4(&shallow.seg(Linktype::RAW, &nest(1)), BODY);
    assert_eq!(shallow.feed(Linktype::RAW, &nest(2)).1, "tunnel_too_deep");
    let vx = cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth(0x0800, &ip4(4, &tcp4(BODY)))]);
    assert_eq!(shallow.feed(ETH, &eth(0x0800, &udp4(1, 4789, &vx))).1, "tunnel_too_deep");
    let mut none = H::with(DecodeConfig { max_tunnel_depth: 0, ..DecodeConfig::default() });
    assert_eq!(none.feed(Linktype::RAW, &nest(1)).1, "tunnel_too_deep");
}

#[test]
fn nested_encapsulations() {
    // VLAN inside QinQ, then MPLS.
    let stack = cat(&[&tag(100, 0x8100), &tag(10, 0x8847), &label(16, false), &label(17, true), &tcp4(BODY)]);
    let mut h = H::new();
    assert_seg4(&h.seg(ETH, &eth(0x88a8, &stack)), BODY);
    assert_eq!((h.stats().layers.qinq, h.stats().layers.vlan, h.stats().layers.mpls), (1, 1, 1));

    // VXLAN inside GRE.
    let vx = cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth(0x0800, &tcp4(BODY))]);
    let gre = ip4(47, &cat(&[&gre_hdr(false, true, false, 0x0800), &udp4(33333, 4789, &vx)]));
    let mut h = H::new();
    assert_seg4(&h.seg(ETH, &eth(0x0800, &gre)), BODY);
    assert_eq!((h.stats().layers.gre, h.stats().layers.vxlan), (1, 1));

    // IPv6 in IPv4 in GTP-U.
    let gtp = gtpu(0x30, 0xff, &[], &ip4(41, &tcp6(BODY)));
    let mut h = H::new();
    assert_seg6(&h.seg(ETH, &eth(0x0800, &udp4(2152, 2152, &gtp))), BODY);
    let l = &h.stats().layers;
    assert_eq!((l.gtpu, l.ip_in_ip, l.ipv4, l.ipv6), (1, 1, 2, 1));
}

// ------------------------------------------------------------- IP and TCP

#[test]
fn ipv6_extension_headers() {
    let tcp = &tcp6(BODY)[40..];
    let hop = [43, 0, 1, 4, 0, 0, 0, 0];
    let routing = [60, 0, 0, 0, 0, 0, 0, 0];
    let dst = [51, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    // AH: next header TCP, length field 4 = (4 + 2) * 4 = 24 bytes: 12
    // bytes of header, 12 of integrity check value.
    let ah = cat(&[&[6, 4, 0, 0], &[0, 0, 1, 0], &[0, 0, 0, 1], &[0xcc; 12]]);
    let payload = cat(&[&hop, &routing, &dst, &ah, tcp]);
    let pkt = cat(&[&ip6_hdr(0, payload.len(), C6, S6), &payload]);
    let mut h = H::new();
    assert_seg6(&h.seg(Linktype::RAW, &pkt), BODY);
    assert_eq!(h.stats().layers.ipv6_ext_headers, 4);
    // An atomic fragment (offset 0, no more fragments).
    let atomic = cat(&[&[6, 0, 0, 0, 0, 0, 0, 9], tcp]);
    let pkt = cat(&[&ip6_hdr(44, atomic.len(), C6, S6), &atomic]);
    assert_seg6(&h.seg(Linktype::RAW, &pkt), BODY);
    assert_eq!(h.stats().fragments.fragments_v6, 0);
    // Extension header running past the IP payload length.
    let mut bad = cat(&[&ip6_hdr(0, 8, C6, S6), &[6, 2, 0, 0, 0, 0, 0, 0], tcp]);
    bad.truncate(40 + 8 + 10);
    assert_eq!(bucket(Linktype::RAW, &bad), "malformed_ip");
    // No next header.
    assert_eq!(bucket(Linktype::RAW, &ip6_hdr(59, 0, C6, S6)), "other_ip_protocol");
}

#[test]
fn ipv4_authentication_header() {
    let tcp = &tcp4(BODY)[20..];
    let ah = cat(&[&[6, 4, 0, 0], &[0, 0, 1, 0], &[0, 0, 0, 1], &[0xcc; 12]]);
    let payload = cat(&[&ah, tcp]);
    let pkt = cat(&[&ip4_hdr(51, payload.len(), C4, S4, 1, 0), &payload]);
    let mut h = H::new();
    assert_seg4(&h.seg(Linktype::RAW, &pkt), BODY);
    assert_eq!(h.stats().layers.ipv4_auth_headers, 1);
}

#[test]
fn tcp_options_on_syn_only() {
    let opts = [
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(1, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ];
    let mut syn = Vec::new();
    PacketBuilder::ipv4(C4, S4, 64)
        .tcp(SPORT, DPORT, SEQ, 64240)
        .syn()
        .options(&opts)
        .unwrap()
        .write(&mut syn, &[])
        .unwrap();
    let s = seg(Linktype::RAW, &syn);
    assert_eq!(s.flags, TcpFlags(TcpFlags::SYN));
    assert_eq!(s.window, 64240);
    assert_eq!(s.options, TcpOptions { mss: Some(1460), wscale: Some(7), sack_permitted: true });
    let mut ack = Vec::new();
    PacketBuilder::ipv4(C4, S4, 64)
        .tcp(SPORT, DPORT, SEQ, 1)
        .ack(1)
        .options(&opts)
        .unwrap()
        .write(&mut ack, &[])
        .unwrap();
    assert_eq!(seg(Linktype::RAW, &ack).options, TcpOptions::default());
    // Options are parsed leniently: a shift above 14 is 14, garbage ends
    // the list without failing the segment.
    assert_eq!(tcp_options(&[3, 3, 20, 2, 4, 5, 0xb4]).wscale, Some(14));
    assert_eq!(tcp_options(&[3, 3, 20, 2, 4, 5, 0xb4]).mss, Some(1460));
    assert_eq!(tcp_options(&[2, 1, 5, 0xb4]), TcpOptions::default());
    assert_eq!(tcp_options(&[2, 9, 5, 0xb4]), TcpOptions::default());
    assert!(tcp_options(&[1, 1, 4, 2, 0, 2, 4, 5, 0xb4]).sack_permitted);
    assert_eq!(tcp_options(&[1, 1, 4, 2, 0, 2, 4, 5, 0xb4]).mss, None);
}

#[test]
fn other_ip_protocols_have_buckets() {
    let mut udp = Vec::new();
    PacketBuilder::ipv4(C4, S4, 64).udp(53, 5353).write(&mut udp, b"x").unwrap();
    assert_eq!(bucket(Linktype::RAW, &udp), "udp");
    let mut icmp = Vec::new();
    PacketBuilder::ipv4(C4, S4, 64).icmpv4_echo_request(1, 1).write(&mut icmp, b"x").unwrap();
    assert_eq!(bucket(Linktype::RAW, &icmp), "icmp");
    let mut icmp6 = Vec::new();
    PacketBuilder::ipv6(C6, S6, 64).icmpv6_echo_request(1, 1).write(&mut icmp6, b"x").unwrap();
    assert_eq!(bucket(Linktype::RAW, &icmp6), "icmpv6");
    assert_eq!(bucket(Linktype::RAW, &ip4(50, &[0; 16])), "other_ip_protocol");
    assert_eq!(bucket(Linktype::RAW, &ip4(132, &[0; 16])), "other_ip_protocol");
    // Extension header numbers mean nothing after IPv4.
    assert_eq!(bucket(Linktype::RAW, &ip4(0, &[6, 0, 0, 0, 0, 0, 0, 0])), "other_ip_protocol");
    assert_eq!(bucket(Linktype::RAW, &ip4(17, &[0, 53, 0])), "udp");
}

#[test]
fn ethernet_padding_is_trimmed() {
    let mut frame = eth(0x0800, &tcp4(b""));
    frame.resize(60, 0);
    let mut h = H::new();
    let s = h.seg(ETH, &frame);
    assert_seg4(&s, b"");
    assert_eq!(h.stats().anomalies.ip_trailing_bytes, 1);
    let mut frame = eth(0x0800, &tcp4(b"ab"));
    frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_seg4(&seg(ETH, &frame), b"ab");
    let mut frame = eth(0x86dd, &tcp6(b"ab"));
    frame.extend_from_slice(&[0; 8]);
    assert_seg6(&seg(ETH, &frame), b"ab");
}

#[test]
fn ip_length_zero_takes_the_captured_length() {
    let mut p = tcp4(BODY);
    p[2] = 0;
    p[3] = 0;
    let mut h = H::new();
    assert_seg4(&h.seg(Linktype::RAW, &p), BODY);
    assert_eq!(h.stats().anomalies.ip_length_zero, 1);
    let mut p = tcp6(BODY);
    p[4] = 0;
    p[5] = 0;
    assert_seg6(&h.seg(Linktype::RAW, &p), BODY);
}

#[test]
fn ip_length_beyond_an_uncut_frame_is_capture_loss() {
    let p = tcp4(BODY);
    let mut h = H::new();
    let s = h.seg(Linktype::RAW, &p[..p.len() - 5]);
    assert_eq!(s.payload, &BODY[..BODY.len() - 5]);
    assert_eq!(s.payload_len as usize, BODY.len());
    assert_eq!(h.stats().anomalies.ip_length_beyond_frame, 1);
    assert_eq!(h.stats().anomalies.snaplen_cut, 0);
}

#[test]
fn malformed_headers_are_counted() {
    let p = tcp4(BODY);
    let mut bad_ihl = p.clone();
    bad_ihl[0] = 0x44;
    assert_eq!(bucket(Linktype::RAW, &bad_ihl), "malformed_ip");
    let mut bad_total = p.clone();
    bad_total[2..4].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(bucket(Linktype::RAW, &bad_total), "malformed_ip");
    assert_eq!(bucket(ETH, &eth(0x0800, &tcp6(BODY))), "malformed_ip");
    assert_eq!(bucket(ETH, &eth(0x86dd, &tcp4(BODY))), "malformed_ip");
    let mut bad_off = p.clone();
    bad_off[32] = 0x40; // data offset 4
    assert_eq!(bucket(Linktype::RAW, &bad_off), "malformed_tcp");
    let mut long_off = tcp4(b"");
    long_off[32] = 0xf0; // 60-byte header in a 20-byte segment
    assert_eq!(bucket(Linktype::RAW, &long_off), "malformed_tcp");
    // A TCP header that does not fit the IP length, though bytes follow.
    let mut trimmed = tcp4(b"");
    trimmed[2..4].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(bucket(Linktype::RAW, &trimmed), "malformed_tcp");
    assert_eq!(bucket(Linktype::RAW, &p[..30]), "malformed_tcp");
    assert_eq!(bucket(Linktype::RAW, &p[..12]), "malformed_ip");
    assert_eq!(bucket(ETH, &[0; 10]), "malformed_link");
}

// ---------------------------------------------------------- snapshot length

#[test]
fn snaplen_cut_inside_payload_still_decodes() {
    let payload = [0x5a; 100];
    let frame = eth(0x0800, &tcp4(&payload));
    let mut h = H::new();
    let (s, _) = h.feed_at(ETH, &frame[..frame.len() - 40], frame.len(), Ts(0));
    let s = s.unwrap();
    assert_eq!(s.payload, &payload[..60]);
    assert_eq!(s.payload_len, 100);
    assert_eq!(h.stats().anomalies.snaplen_cut, 1);
    assert_eq!(h.stats().anomalies.ip_length_beyond_frame, 0);
    // Cut exactly at the end of the TCP header.
    let (s, _) = h.feed_at(ETH, &frame[..14 + 40], frame.len(), Ts(0));
    let s = s.unwrap();
    assert!(s.payload.is_empty());
    assert_eq!(s.payload_len, 100);
    // Inside a tunnel.
    let vx = cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth(0x86dd, &tcp6(&payload))]);
    let outer = eth(0x0800, &udp4(1, 4789, &vx));
    let (s, _) = h.feed_at(ETH, &outer[..outer.len() - 1], outer.len(), Ts(0));
    let s = s.unwrap();
    assert_eq!((s.payload.len(), s.payload_len), (99, 100));
}

#[test]
fn snaplen_cut_inside_headers_is_truncated() {
    let frame = eth(0x0800, &tcp4(BODY));
    for keep in [0, 5, 13, 14, 20, 33, 34, 40, 53] {
        assert_eq!(cut_bucket(ETH, &frame, keep), "truncated_headers", "cut at {keep}");
    }
    let v6 = eth(0x86dd, &tcp6(BODY));
    for keep in [30, 54, 60, 73] {
        assert_eq!(cut_bucket(ETH, &v6, keep), "truncated_headers", "cut at {keep}");
    }
    let tagged = eth(0x8100, &cat(&[&tag(1, 0x0800), &tcp4(BODY)]));
    assert_eq!(cut_bucket(ETH, &tagged, 16), "truncated_headers");
    let gre = eth(0x0800, &ip4(47, &cat(&[&gre_hdr(true, true, true, 0x0800), &tcp4(BODY)])));
    assert_eq!(cut_bucket(ETH, &gre, 34 + 10), "truncated_headers");
    let vx = eth(0x0800, &udp4(1, 4789, &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth(0x0800, &tcp4(BODY))])));
    for keep in [34 + 4, 42, 45, 50, 60] {
        assert_eq!(cut_bucket(ETH, &vx, keep), "truncated_headers", "cut at {keep}");
    }
    let sll_frame = sll(0x0800, &tcp4(BODY));
    assert_eq!(cut_bucket(Linktype::LINUX_SLL, &sll_frame, 15), "truncated_headers");
    let ext = cat(&[&ip6_hdr(0, 8 + 20, C6, S6), &[6, 0, 1, 4, 0, 0, 0, 0], &tcp6(b"")[40..]]);
    assert_eq!(cut_bucket(Linktype::RAW, &ext, 44), "truncated_headers");
    // The same shortness without a cut is malformed.
    assert_eq!(bucket(ETH, &frame[..20]), "malformed_ip");
    assert_eq!(bucket(ETH, &frame[..40]), "malformed_tcp");
}

// ---------------------------------------------------------------- fragments

/// Splits an IPv4 packet into fragments of `size` payload bytes (a
/// multiple of 8), each with its own header.
fn frag4(packet: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let payload = &packet[20..];
    let proto = packet[9];
    let (src, dst) = (packet[12..16].try_into().unwrap(), packet[16..20].try_into().unwrap());
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let off = i * size;
            let more = off + chunk.len() < payload.len();
            let field = u16::try_from(off / 8).unwrap() | if more { 0x2000 } else { 0 };
            cat(&[&ip4_hdr(proto, chunk.len(), src, dst, id, field), chunk])
        })
        .collect()
}

/// Splits an IPv6 packet (no extension headers) into fragments of `size`
/// payload bytes.
fn frag6(packet: &[u8], size: usize, id: u32) -> Vec<Vec<u8>> {
    let payload = &packet[40..];
    let next = packet[6];
    let (src, dst) = (packet[8..24].try_into().unwrap(), packet[24..40].try_into().unwrap());
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let off = i * size;
            let more = off + chunk.len() < payload.len();
            let field = u16::try_from(off).unwrap() | u16::from(more);
            let fh = cat(&[&[next, 0], &field.to_be_bytes(), &id.to_be_bytes()]);
            cat(&[&ip6_hdr(44, 8 + chunk.len(), src, dst), &fh, chunk])
        })
        .collect()
}

fn big_body() -> Vec<u8> {
    (0..3000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn ipv4_fragments_in_order() {
    let body = big_body();
    let frags = frag4(&tcp4(&body), 1480, 77);
    assert_eq!(frags.len(), 3);
    let mut h = H::new();
    assert_eq!(h.feed(Linktype::RAW, &frags[0]).1, "fragment_held");
    assert_eq!(h.feed(Linktype::RAW, &frags[1]).1, "fragment_held");
    let s = h.seg(Linktype::RAW, &frags[2]);
    assert_seg4(&s, &body);
    assert_eq!(s.frame, 3, "reported in the frame of the last fragment");
    let f = &h.stats().fragments;
    assert_eq!((f.fragments_v4, f.reassembled), (3, 1));
    assert_eq!(h.dec.pending_fragment_bytes(), 0);
    assert!(f.peak_pending_bytes >= 2960);
}

#[test]
fn ipv4_fragments_out_of_order_and_duplicated() {
    let body = big_body();
    let frags = frag4(&tcp4(&body), 800, 78);
    let mut h = H::new();
    let order = [3, 1, 1, 0, 3, 2];
    let mut last = None;
    for (n, &i) in order.iter().enumerate() {
        let (s, b) = h.feed(Linktype::RAW, &frags[i]);
        if n < order.len() - 1 {
            let want = if n == 2 || n == 4 { "fragment_dropped" } else { "fragment_held" };
            assert_eq!(b, want, "step {n}");
        }
        last = s;
    }
    assert_seg4(&last.unwrap(), &body);
    let f = &h.stats().fragments;
    assert_eq!((f.duplicates, f.overlaps, f.reassembled), (2, 0, 1));
}

#[test]
fn ipv4_overlapping_fragments_keep_first_bytes() {
    let body = big_body();
    let packet = tcp4(&body);
    let payload = &packet[20..];
    let first = cat(&[&ip4_hdr(6, 1000, C4, S4, 5, 0x2000), &payload[..1000]]);
    // Overlaps 800..1000 with different bytes, adds 1000..1600.
    let mut tampered = payload[800..1600].to_vec();
    tampered[..200].fill(0xff);
    let second = cat(&[&ip4_hdr(6, 800, C4, S4, 5, 0x2000 | 100), &tampered]);
    let rest = cat(&[&ip4_hdr(6, payload.len() - 1600, C4, S4, 5, 200), &payload[1600..]]);
    let mut h = H::new();
    assert_eq!(h.feed(Linktype::RAW, &first).1, "fragment_held");
    assert_eq!(h.feed(Linktype::RAW, &second).1, "fragment_held");
    assert_seg4(&h.seg(Linktype::RAW, &rest), &body);
    assert_eq!(h.stats().fragments.overlaps, 1);
    // A fragment entirely inside held bytes but with other content.
    let mut h = H::new();
    h.feed(Linktype::RAW, &first);
    let inside = cat(&[&ip4_hdr(6, 16, C4, S4, 5, 0x2000 | 10), &[0xff; 16]]);
    assert_eq!(h.feed(Linktype::RAW, &inside).1, "fragment_dropped");
    assert_eq!((h.stats().fragments.overlaps, h.stats().fragments.duplicates), (1, 0));
}

#[test]
fn ipv6_fragments_in_and_out_of_order() {
    let body = big_body();
    let frags = frag6(&tcp6(&body), 1232, 0xdead_beef);
    assert_eq!(frags.len(), 3);
    let mut h = H::new();
    for f in &frags[..2] {
        assert_eq!(h.feed(Linktype::RAW, f).1, "fragment_held");
    }
    assert_seg6(&h.seg(Linktype::RAW, &frags[2]), &body);
    let mut h = H::new();
    for i in [2, 0, 0] {
        h.feed(Linktype::RAW, &frags[i]);
    }
    assert_seg6(&h.seg(Linktype::RAW, &frags[1]), &body);
    let f = &h.stats().fragments;
    assert_eq!((f.fragments_v6, f.duplicates, f.reassembled), (4, 1, 1));
    // A reassembled datagram that holds another fragment header.
    let inner = cat(&[&[6, 0, 0, 1, 0, 0, 0, 1], &tcp6(b"abcd")[40..]]);
    let outer = cat(&[&ip6_hdr(44, 0, C6, S6), &[44, 0, 0, 0, 0, 0, 0, 2], &inner]);
    let mut outer = outer;
    let plen = u16::try_from(outer.len() - 40).unwrap();
    outer[4..6].copy_from_slice(&plen.to_be_bytes());
    // Offset 0 with more fragments; complete it with an empty last one.
    outer[40 + 3] = 1;
    let last = cat(&[&ip6_hdr(44, 8, C6, S6), &[44, 0, 0, 0x20, 0, 0, 0, 2]]);
    let frag_len = u16::try_from(inner.len()).unwrap();
    let mut last = last;
    last[40 + 2..40 + 4].copy_from_slice(&frag_len.to_be_bytes());
    let mut h = H::new();
    assert_eq!(h.feed(Linktype::RAW, &outer).1, "fragment_held");
    assert_eq!(h.feed(Linktype::RAW, &last).1, "malformed_ip");
}

#[test]
fn fragments_never_completed_time_out() {
    let frags = frag4(&tcp4(&big_body()), 1480, 1);
    let mut h = H::new();
    assert_eq!(h.feed_at(Linktype::RAW, &frags[0], frags[0].len(), Ts(0)).1, "fragment_held");
    assert!(h.dec.pending_fragment_bytes() > 0);
    // 30 s later: not yet.
    h.feed_at(ETH, &eth(0x0806, &[0; 28]), 42, Ts(30_000_000_000));
    assert_eq!(h.stats().fragments.timeouts, 0);
    h.feed_at(ETH, &eth(0x0806, &[0; 28]), 42, Ts(30_000_000_001));
    assert_eq!(h.stats().fragments.timeouts, 1);
    assert_eq!(h.dec.pending_fragment_bytes(), 0);
    // The rest arrives too late: held again as a new datagram, never whole.
    assert_eq!(h.feed_at(Linktype::RAW, &frags[2], 0, Ts(31_000_000_000)).1, "fragment_held");
    h.dec.finish();
    assert_eq!(h.stats().fragments.unfinished, 1);
    assert_eq!(h.dec.pending_fragment_bytes(), 0);
}

#[test]
fn fragment_flood_respects_the_caps() {
    // Byte cap: each datagram's last fragment sits at offset 8000, so holds
    // 8016 bytes; a 64 KiB cap keeps at most 8 of them.
    let cfg = DecodeConfig { max_frag_bytes: 64 * 1024, max_frag_datagrams: 1000, ..DecodeConfig::default() };
    let mut h = H::with(cfg);
    for id in 0..100u16 {
        let f = cat(&[&ip4_hdr(6, 16, C4, S4, id, 1000), &[1; 16]]);
        assert_eq!(h.feed(Linktype::RAW, &f).1, "fragment_held");
        assert!(h.dec.pending_fragment_bytes() <= 64 * 1024);
    }
    let f = &h.stats().fragments;
    assert_eq!(f.evicted, 100 - 8);
    assert!(f.peak_pending_bytes <= 64 * 1024);
    assert_eq!(h.dec.pending_fragment_bytes(), 8 * 8016);
    // The newest datagrams survived: complete id 99.
    let first = cat(&[&ip4_hdr(6, 8000, C4, S4, 99, 0x2000), &tcp4(&[0; 7980])[20..]]);
    let s = h.seg(Linktype::RAW, &first);
    assert_eq!((s.payload.len(), s.payload_len), (7996, 7996));
    assert_eq!(&s.payload[7980..], &[1; 16]);
    assert_eq!(h.stats().fragments.reassembled, 1);
    assert_eq!(h.dec.pending_fragment_bytes(), 7 * 8016);

    // Datagram cap: 16 pending at most.
    let cfg = DecodeConfig { max_frag_datagrams: 16, ..DecodeConfig::default() };
    let mut h = H::with(cfg);
    for id in 0..1000u16 {
        let f = cat(&[&ip4_hdr(6, 8, C4, S4, id, 0x2000), &[1; 8]]);
        h.feed(Linktype::RAW, &f);
    }
    assert_eq!(h.stats().fragments.evicted, 1000 - 16);
    assert_eq!(h.dec.pending_fragment_bytes(), 16 * 8);
    assert_eq!(h.stats().outcome.fragment_held, 1000);

    // A single datagram larger than the cap is refused, not half-kept.
    let mut h = H::with(DecodeConfig { max_frag_bytes: 1000, ..DecodeConfig::default() });
    let f = cat(&[&ip4_hdr(6, 16, C4, S4, 1, 0x2000 | 200), &[1; 16]]);
    assert_eq!(h.feed(Linktype::RAW, &f).1, "fragment_dropped");
    assert_eq!(h.stats().fragments.over_cap, 1);
    // Reassembly disabled.
    let mut h = H::with(DecodeConfig { max_frag_datagrams: 0, ..DecodeConfig::default() });
    assert_eq!(h.feed(Linktype::RAW, &f).1, "fragment_dropped");
}

#[test]
fn invalid_and_cut_fragments_are_dropped() {
    let mut h = H::new();
    // Offset 8190 * 8 + 16 bytes > 65535.
    let f = cat(&[&ip4_hdr(6, 16, C4, S4, 1, 0x2000 | 8190), &[1; 16]]);
    assert_eq!(h.feed(Linktype::RAW, &f).1, "fragment_dropped");
    // Empty, with more to follow.
    let f = cat(&[&ip4_hdr(6, 0, C4, S4, 1, 0x2000 | 3)]);
    assert_eq!(h.feed(Linktype::RAW, &f).1, "fragment_dropped");
    // Two different ends for one datagram.
    let a = cat(&[&ip4_hdr(6, 8, C4, S4, 2, 5), &[1; 8]]);
    let b = cat(&[&ip4_hdr(6, 8, C4, S4, 2, 6), &[1; 8]]);
    assert_eq!(h.feed(Linktype::RAW, &a).1, "fragment_held");
    assert_eq!(h.feed(Linktype::RAW, &b).1, "fragment_dropped");
    assert_eq!(h.stats().fragments.invalid, 3);
    // Cut by the snapshot length.
    let frags = frag4(&tcp4(&big_body()), 1480, 9);
    let (_, b) = h.feed_at(Linktype::RAW, &frags[0][..100], frags[0].len(), Ts(0));
    assert_eq!(b, "fragment_dropped");
    assert_eq!(h.stats().fragments.truncated, 1);
}

#[test]
fn fragmented_tunnel_inside_fragmented_tunnel() {
    // Inner TCP datagram in two fragments; each travels in GRE inside an
    // outer datagram that is itself fragmented in two.
    let body = big_body();
    let inner = frag4(&tcp4(&body[..2000]), 1200, 500);
    let mut frames = Vec::new();
    for (i, f) in inner.iter().enumerate() {
        let gre = cat(&[&gre_hdr(false, false, false, 0x0800), f]);
        let outer = ip4_hdr(47, gre.len(), O4A, O4B, 900 + u16::try_from(i).unwrap(), 0);
        frames.extend(frag4(&cat(&[&outer, &gre]), 640, 900 + u16::try_from(i).unwrap()));
    }
    assert_eq!(frames.len(), 4);
    let mut h = H::new();
    let buckets: Vec<_> = frames[..3].iter().map(|f| h.feed(ETH, &eth(0x0800, f)).1).collect();
    assert_eq!(buckets, ["fragment_held", "fragment_held", "fragment_held"]);
    assert_seg4(&h.seg(ETH, &eth(0x0800, &frames[3])), &body[..2000]);
    assert_eq!(h.stats().fragments.reassembled, 3);
    assert_eq!(h.dec.pending_fragment_bytes(), 0);
}

#[test]
fn fragment_pool_pieces_merge() {
    let mut p = Vec::new();
    defrag_add(&mut p, 10, 20);
    defrag_add(&mut p, 30, 40);
    defrag_add(&mut p, 0, 5);
    assert_eq!(p, [(0, 5), (10, 20), (30, 40)]);
    defrag_add(&mut p, 20, 30);
    assert_eq!(p, [(0, 5), (10, 40)]);
    defrag_add(&mut p, 3, 12);
    assert_eq!(p, [(0, 40)]);
    defrag_add(&mut p, 50, 60);
    defrag_add(&mut p, 45, 55);
    assert_eq!(p, [(0, 40), (45, 60)]);
    defrag_add(&mut p, 0, 100);
    assert_eq!(p, [(0, 100)]);
}

fn defrag_add(p: &mut Vec<(usize, usize)>, a: usize, b: usize) {
    defrag::add_piece(p, a, b);
}

// ------------------------------------------------------------ statistics

#[test]
fn stats_merge_and_names() {
    let mut h = H::new();
    h.seg(ETH, &eth(0x0800, &tcp4(BODY)));
    h.feed(ETH, &eth(0x0806, &[0; 28]));
    h.feed_at(ETH, &eth(0x0800, &tcp4(BODY))[..20], 100, Ts(0));
    let mut total = h.stats().clone();
    total.merge(h.stats());
    assert_eq!(total.packets, 6);
    assert_eq!(total.outcome.tcp_segments, 2);
    assert_eq!(total.outcome.truncated_headers, 2);
    assert_eq!(total.anomalies.snaplen_cut, 2);
    assert_eq!(total.unaccounted(), 0);
    total.packets += 1;
    assert_eq!(total.unaccounted(), 1);
    // serde names are the field names `counts` reports.
    let json = serde_json::to_value(h.stats()).unwrap();
    for (name, n) in h.stats().outcome.counts() {
        assert_eq!(json["outcome"][name], n, "{name}");
    }
    for (name, n) in h.stats().layers.counts() {
        assert_eq!(json["layers"][name], n, "{name}");
    }
    assert_eq!(json["outcome"].as_object().unwrap().len(), h.stats().outcome.counts().count());
    assert_eq!(json["packets"], 3);
    assert!(json["fragments"]["peak_pending_bytes"].is_u64());
}

// ----------------------------------------------------- robustness (fuzzing)

/// One of every kind of test packet, with its link type.
fn vectors() -> Vec<(Linktype, Vec<u8>)> {
    let vx = cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth(0x0800, &tcp4(BODY))]);
    let e3o = [0x20, 0x64, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0x00, 0x01];
    let ext = [0, 0, 0, 0x85, 1, 0x10, 0x01, 0x40, 2, 1, 2, 3, 4, 5, 6, 0];
    let auth = cat(&[&[0x00, 0x01, 2, 3], b"id", b"val", &[1, 2, 3, 4, 5, 6, 7, 8], &[0]]);
    let origin = [0x00, 0x00, 0x8c, 0x3f, 0x3f, 0xff, 0xff, 0xfe];
    let hop = [43, 0, 1, 4, 0, 0, 0, 0];
    let routing = [60, 0, 0, 0, 0, 0, 0, 0];
    let dst = [51, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let ah = cat(&[&[6, 4, 0, 0], &[0, 0, 1, 0], &[0, 0, 0, 1], &[0xcc; 12]]);
    let ext6 = cat(&[&hop, &routing, &dst, &ah, &tcp6(BODY)[40..]]);
    let mut v = vec![
        (ETH, eth(0x0800, &tcp4(BODY))),
        (ETH, eth(0x86dd, &tcp6(BODY))),
        (Linktype::RAW, tcp4(BODY)),
        (Linktype::IPV6, tcp6(BODY)),
        (Linktype::NULL, cat(&[&30u32.to_le_bytes(), &tcp6(BODY)])),
        (Linktype::LOOP, cat(&[&2u32.to_be_bytes(), &tcp4(BODY)])),
        (Linktype::LINUX_SLL, sll(0x8100, &cat(&[&tag(7, 0x0800), &tcp4(BODY)]))),
        (Linktype::LINUX_SLL2, sll2(0x86dd, &tcp6(BODY))),
        (Linktype::NFLOG, nflog(2, &tcp4(BODY), true)),
        (Linktype::NFLOG, nflog(10, &tcp6(BODY), false)),
        (Linktype::PPP, cat(&[&[0xff, 0x03, 0x00, 0x21], &tcp4(BODY)])),
        (Linktype::PPP_HDLC, cat(&[&[0x0f, 0x00, 0x08, 0x00], &tcp4(BODY)])),
        (Linktype::PPP_ETHER, pppoe(0x0057, &tcp6(BODY))),
        (ETH, eth(0x88a8, &cat(&[&tag(100, 0x8100), &tag(10, 0x8847), &label(16, true), &tcp4(BODY)]))),
        (ETH, dot3(&cat(&[&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00], &tcp4(BODY)]))),
        (ETH, eth(0x8864, &pppoe(0x0021, &tcp4(BODY)))),
        (ETH, eth(0x8847, &cat(&[&label(20, true), &[0, 0, 0, 5], &eth(0x0800, &tcp4(BODY))]))),
        (ETH, eth(0x0800, &ip4(47, &cat(&[&gre_hdr(true, true, true, 0x86dd), &tcp6(BODY)])))),
        (
            ETH,
            eth(
                0x0800,
                &ip4(
                    47,
                    &cat(&[
                        &gre_hdr(false, false, true, 0x88be),
                        &[0x10, 0, 0, 1, 0, 0, 0, 0],
                        &eth(0x0800, &tcp4(BODY)),
                    ]),
                ),
            ),
        ),
        (
            ETH,
            eth(
                0x0800,
                &ip4(47, &cat(&[&gre_hdr(false, false, true, 0x22eb), &e3o, &[0; 8], &eth(0x0800, &tcp4(BODY))])),
            ),
        ),
        (ETH, eth(0x0800, &udp4(1, 4789, &vx))),
        (
            ETH,
            eth(
                0x0800,
                &udp4(1, 6081, &cat(&[&[0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2, 3, 4], &eth(0x0800, &tcp4(BODY))])),
            ),
        ),
        (ETH, eth(0x0800, &udp4(2152, 2152, &gtpu(0x34, 0xff, &ext, &ip4(41, &tcp6(BODY)))))),
        (ETH, eth(0x0800, &udp4(3544, 1, &cat(&[&auth, &origin, &tcp6(BODY)])))),
        (ETH, eth(0x0800, &udp4(5072, 5072, &ayiya(1, 41, &tcp6(BODY))))),
        (Linktype::RAW, ip4(41, &ip6(4, &ip4(4, &tcp4(BODY))))),
        (Linktype::RAW, cat(&[&ip6_hdr(0, ext6.len(), C6, S6), &ext6])),
        (
            Linktype::RAW,
            ip4(
                47,
                &cat(&[
                    &[0x30, 0x81, 0x88, 0x0b, 0, 40, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2, 0xff, 0x03, 0x00, 0x21],
                    &tcp4(BODY),
                ]),
            ),
        ),
    ];
    for bits in 0..8u8 {
        let (c, k, s) = (bits & 4 != 0, bits & 2 != 0, bits & 1 != 0);
        v.push((ETH, eth(0x0800, &ip4(47, &cat(&[&gre_hdr(c, k, s, 0x0800), &tcp4(BODY)])))));
        v.push((ETH, eth(0x86dd, &ip6(47, &cat(&[&gre_hdr(c, k, s, 0x6558), &eth(0x86dd, &tcp6(BODY))])))));
        v.push((ETH, eth(0x0800, &ip4(47, &cat(&[&gre_hdr(c, k, s, 0x8847), &label(16, true), &tcp4(BODY)])))));
    }
    let inner = eth(0x0800, &tcp4(BODY));
    let e3 = [0x20, 0x64, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0x00, 0x00];
    v.push((ETH, eth(0x0800, &ip4(47, &cat(&[&gre_hdr(false, false, false, 0x88be), &inner])))));
    v.push((ETH, eth(0x0800, &ip4(47, &cat(&[&gre_hdr(false, false, true, 0x22eb), &e3, &inner])))));
    v.push((ETH, eth(0x0800, &udp4(4789, 1, &vx))));
    v.push((ETH, eth(0x86dd, &udp6(1, 4789, &vx))));
    v.push((ETH, eth(0x0800, &udp4(2152, 2152, &gtpu(0x30, 0xff, &[], &tcp4(BODY))))));
    v.push((ETH, eth(0x0800, &udp4(2152, 2152, &gtpu(0x32, 0xff, &[0, 9, 0, 0], &tcp6(BODY))))));
    v.push((ETH, eth(0x0800, &udp4(3544, 1, &tcp6(BODY)))));
    v.push((ETH, eth(0x0800, &udp4(1, 3544, &cat(&[&origin, &tcp6(BODY)])))));
    v.push((ETH, eth(0x0800, &udp4(5072, 5072, &ayiya(1, 4, &tcp4(BODY))))));
    v.push((ETH, eth(0x88a8, &cat(&[&tag(1, 0x9100), &tag(2, 0x8100), &tag(3, 0x86dd), &tcp6(BODY)]))));
    v.push((ETH, eth(0x8847, &cat(&[&label(16, false), &label(17, true), &tcp6(BODY)]))));
    v.push((Linktype::NULL, cat(&[&2u32.to_be_bytes(), &tcp4(BODY)])));
    v.push((Linktype::NULL, cat(&[&24u32.to_le_bytes(), &tcp6(BODY)])));
    v.push((Linktype::LOOP, cat(&[&28u32.to_be_bytes(), &tcp6(BODY)])));
    v.push((Linktype::PPP, cat(&[&[0x00, 0x57], &tcp6(BODY)])));
    v.push((Linktype::LINUX_SLL, sll(0x86dd, &tcp6(BODY))));
    v.push((Linktype::RAW, ip6(41, &tcp6(BODY))));
    v.push((Linktype::RAW, cat(&[&ip4_hdr(51, 24 + 20, C4, S4, 1, 0), &ah, &tcp4(b"")[20..]])));
    v.extend(frag4(&tcp4(&big_body()), 1480, 3).into_iter().map(|f| (Linktype::RAW, f)));
    v.extend(frag6(&tcp6(&big_body()), 1480, 3).into_iter().map(|f| (Linktype::RAW, f)));
    v
}

#[test]
fn every_vector_decodes() {
    let mut h = H::new();
    let mut segs = 0;
    for (lt, p) in vectors() {
        if h.feed(lt, &p).0.is_some() {
            segs += 1;
        }
    }
    // Every vector is a segment except the fragments before each last one.
    assert_eq!(segs, vectors().len() - 2 - 2);
    assert_eq!(h.stats().outcome.fragment_held, 4);
}

#[test]
fn every_prefix_cut_or_not_never_panics() {
    for (lt, p) in vectors() {
        let mut cut = H::new();
        let mut short = H::new();
        for keep in 0..p.len() {
            // What a cut prefix misses is the snapshot length's doing: it is
            // never malformed, whatever layer the cut falls in.
            let (_, b) = cut.feed_at(lt, &p[..keep], p.len(), Ts(0));
            let allowed = ["tcp_segments", "truncated_headers", "fragment_dropped", "fragment_held"];
            assert!(allowed.contains(&b), "{lt:?} cut at {keep}: {b}");
            short.feed(lt, &p[..keep]);
        }
        assert_eq!(cut.stats().packets, p.len() as u64);
    }
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut h = H::with(DecodeConfig { max_frag_bytes: 256 * 1024, max_frag_datagrams: 64, ..DecodeConfig::default() });
    for (lt, p) in vectors() {
        for round in 0..400 {
            let mut q = p.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(q.len());
                q[i] = if round % 3 == 0 { rng.next() as u8 } else { q[i] ^ (1u8 << rng.below(8)) };
            }
            let keep = if round % 5 == 0 { rng.below(q.len() + 1) } else { q.len() };
            h.feed_at(lt, &q[..keep], q.len(), Ts(i64::from(round)));
        }
    }
    assert_eq!(h.stats().unaccounted(), 0);
}

// ------------------------------------------------------------------ corpus

/// The shared corpus: `POV_CORPUS` if set, else next to the workspace, else
/// the usual place.
fn corpus() -> PathBuf {
    if let Some(dir) = std::env::var_os("POV_CORPUS") {
        return PathBuf::from(dir);
    }
    let near = crate::testing::manifest_dir().join("../../../shared/corpus");
    if near.is_dir() {
        return near;
    }
    PathBuf::from("/work/shared/corpus")
}

/// Decodes a corpus capture; returns the number of TCP segments and the
/// stats.
fn decode_file(name: &str) -> (u64, DecodeStats) {
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut frames = 0u64;
    let mut segs = 0u64;
    each_packet(&corpus().join("pcaps").join(name), |pkt| {
        frames += 1;
        if dec.decode(pkt).is_some() {
            segs += 1;
        }
        assert_eq!(dec.stats().unaccounted(), 0);
    });
    assert_eq!(dec.stats().packets, frames);
    (segs, dec.stats().clone())
}

/// Hands each packet of a pcap or pcapng file to `one`, numbered from 1.
fn each_packet(path: &std::path::Path, mut one: impl FnMut(&Packet<'_>)) {
    use pcap_parser::{Block, PcapBlockOwned, PcapError, create_reader};

    let name = path.display();
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut reader = create_reader(1 << 20, file).unwrap();
    let mut legacy = Linktype::ETHERNET;
    let mut nanos = false;
    let mut ifaces: Vec<Linktype> = Vec::new();
    let mut frame = 0u64;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let mut packet = |lt: Linktype, data: &[u8], orig_len: u32, ts: Ts| {
                    frame += 1;
                    one(&Packet { frame, source: 0, ts, linktype: lt, data, orig_len });
                };
                match block {
                    PcapBlockOwned::LegacyHeader(hdr) => {
                        legacy = Linktype(hdr.network.0 as u32);
                        nanos = hdr.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = i64::from(b.ts_usec) * if nanos { 1 } else { 1000 };
                        let ts = Ts::from_secs_nanos(i64::from(b.ts_sec), frac);
                        packet(legacy, b.data, b.origlen, ts);
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push(Linktype(idb.linktype.0 as u32));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let lt = ifaces[epb.if_id as usize];
                        let data = &epb.data[..epb.caplen as usize];
                        let micros = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        packet(lt, data, epb.origlen, Ts(micros as i64 * 1000));
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let data = &spb.data[..spb.data.len().min(spb.origlen as usize)];
                        packet(ifaces[0], data, spb.origlen, Ts(0));
                    }
                    _ => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
}

/// A decoder with the walk's shortcut for plain Ethernet, IP and TCP, and
/// one without: each packet must give the same segment (or none) and
/// leave the same counts in both.
struct Both {
    fast: Decoder,
    steps: Decoder,
    packets: u64,
    segments: u64,
}

impl Both {
    fn new() -> Both {
        let d = || Decoder::new(DecodeConfig::default());
        Both { fast: d(), steps: d(), packets: 0, segments: 0 }
    }

    fn check(&mut self, pkt: &Packet<'_>, what: &dyn std::fmt::Display) {
        // (Frame, time and domain are not in `Seg`.)
        let seen = |s: TcpSegment<'_>| (s.frame, s.ts, s.domain, Seg::from(s));
        let fast = self.fast.decode(pkt).map(seen);
        let steps = self.steps.decode_stepwise(pkt).map(seen);
        assert_eq!(fast, steps, "{what}, frame {}", pkt.frame);
        assert_eq!(self.fast.stats(), self.steps.stats(), "{what}, frame {}", pkt.frame);
        self.packets += 1;
        self.segments += u64::from(fast.is_some());
    }

    /// Checks `data` as a whole frame, then cut to each prefix (by the
    /// snapshot length, and as sent).
    fn check_prefixes(&mut self, data: &[u8], what: &str) {
        for keep in (0..=data.len()).rev() {
            for orig_len in [data.len(), keep] {
                let pkt = Packet {
                    frame: self.packets + 1,
                    source: 0,
                    ts: Ts(1),
                    linktype: ETH,
                    data: &data[..keep],
                    orig_len: u32::try_from(orig_len).unwrap(),
                };
                self.check(&pkt, &format_args!("{what} cut to {keep} of {orig_len}"));
            }
        }
    }
}

#[test]
fn the_walks_shortcut_gives_what_its_steps_give() {
    let mut both = Both::new();
    // Hand-built: plain segments and every way a header may leave the
    // shortcut (options, fragments, flags, lengths short or long or 0,
    // extension headers, other protocols), each cut to every prefix.
    let with_ip4 = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut ip = tcp4(BODY);
        f(&mut ip);
        eth(0x0800, &ip)
    };
    let with_ip6 = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut ip = tcp6(BODY);
        f(&mut ip);
        eth(0x86dd, &ip)
    };
    let mut syn = Vec::new();
    PacketBuilder::ipv4(C4, S4, 64)
        .tcp(SPORT, DPORT, SEQ, WIN)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(1460), TcpOptionElement::WindowScale(7)])
        .unwrap()
        .write(&mut syn, &[])
        .unwrap();
    let set = |at: usize, b: u8| move |h: &mut Vec<u8>| h[at] = b;
    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("ipv4", eth(0x0800, &tcp4(BODY))),
        ("ipv4 empty", eth(0x0800, &tcp4(&[]))),
        ("ipv6", eth(0x86dd, &tcp6(BODY))),
        ("ipv6 empty", eth(0x86dd, &tcp6(&[]))),
        ("syn with options", eth(0x0800, &syn)),
        ("padded", cat(&[&eth(0x0800, &tcp4(&[])), &[0; 6]])),
        ("don't fragment", with_ip4(&set(6, 0x40))),
        ("reserved flag", with_ip4(&set(6, 0x80))),
        ("more fragments", with_ip4(&set(6, 0x20))),
        ("fragment offset", with_ip4(&set(7, 0x01))),
        (
            "ipv4 options",
            with_ip4(&|h: &mut Vec<u8>| {
                h[0] = 0x46;
                h.splice(20..20, [1, 1, 1, 0]);
                let total = u16::from_be_bytes([h[2], h[3]]) + 4;
                h[2..4].copy_from_slice(&total.to_be_bytes());
            }),
        ),
        ("ipv4 header length 4", with_ip4(&set(0, 0x44))),
        ("version 6 in an ipv4 frame", with_ip4(&set(0, 0x65))),
        ("ipv4 total length 0", with_ip4(&|h: &mut Vec<u8>| h[2..4].copy_from_slice(&[0, 0]))),
        ("ipv4 total length 39", with_ip4(&|h: &mut Vec<u8>| h[2..4].copy_from_slice(&[0, 39]))),
        ("ipv4 total length 40", with_ip4(&|h: &mut Vec<u8>| h[2..4].copy_from_slice(&[0, 40]))),
        ("ipv4 total length beyond", with_ip4(&|h: &mut Vec<u8>| h[2..4].copy_from_slice(&[5, 0]))),
        ("ipv4 udp", with_ip4(&set(9, 17))),
        ("tcp header length 4", with_ip4(&set(32, 0x40))),
        ("tcp header length 15", with_ip4(&set(32, 0xf0))),
        ("ipv6 payload length 0", with_ip6(&|h: &mut Vec<u8>| h[4..6].copy_from_slice(&[0, 0]))),
        ("ipv6 payload length 19", with_ip6(&|h: &mut Vec<u8>| h[4..6].copy_from_slice(&[0, 19]))),
        ("ipv6 payload length beyond", with_ip6(&|h: &mut Vec<u8>| h[4..6].copy_from_slice(&[5, 0]))),
        ("version 4 in an ipv6 frame", with_ip6(&set(0, 0x40))),
        ("ipv6 hop-by-hop", eth(0x86dd, &ip6(0, &cat(&[&[6, 0, 1, 4, 0, 0, 0, 0], &tcp4(BODY)[20..]])))),
        ("vlan", eth(0x8100, &cat(&[&tag(7, 0x0800), &tcp4(BODY)]))),
        ("802.3 length", eth(0x0040, &tcp4(BODY))),
    ];
    for (what, data) in &frames {
        both.check_prefixes(data, what);
    }
    // Random bytes changed in the plain ones.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (what, data) in frames.iter().take(5) {
        for _ in 0..2_000 {
            let mut v = data.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % v.len() as u64) as usize;
                v[at] = next() as u8;
            }
            let pkt = Packet {
                frame: both.packets + 1,
                source: 0,
                ts: Ts(2),
                linktype: ETH,
                data: &v,
                orig_len: v.len() as u32,
            };
            both.check(&pkt, &format_args!("{what} changed: {v:02x?}"));
        }
    }
    // Every packet of the samples and the corpus, in order (fragments
    // and all).
    let mut files: Vec<PathBuf> = ["shop.pcap", "shop-lossy.pcapng", "local-curl.pcap", "https.pcapng"]
        .iter()
        .map(|f| crate::testing::manifest_dir().join("../../samples").join(f))
        .collect();
    let mut corpus: Vec<PathBuf> =
        std::fs::read_dir(corpus().join("pcaps")).unwrap().map(|e| e.unwrap().path()).collect();
    corpus.sort();
    files.extend(corpus);
    let before = both.segments;
    for f in &files {
        let mut file = Both::new();
        each_packet(f, |pkt| file.check(pkt, &f.display()));
        both.segments += file.segments;
    }
    // (Most of them took the shortcut.)
    assert!(both.segments - before > 10_000, "{} segments", both.segments - before);
    assert!(both.fast.stats().layers.ethernet > 0);
}

/// TCP segment counts as tshark 4.x reports them:
/// `tshark -r FILE -Y tcp | wc -l`.
const CORPUS_TCP: &[(&str, u64)] = &[
    ("zeek__nflog-http.pcap", 13),
    ("zeek__mixed-vlan-mpls.pcap", 47),
    ("zeek__ayiya3.pcap", 21),
    ("ndpi__log4j-webapp-exploit.pcap", 422),
    ("sv__http-gap-simple.pcap", 31),
    ("arkime__v6-http.pcap", 10),
    ("zeek__1000-requests-one-dropped-response.pcap", 4102),
];

#[test]
fn corpus_segment_counts_match_tshark() {
    for &(name, want) in CORPUS_TCP {
        let (got, stats) = decode_file(name);
        assert_eq!(got, want, "{name}: {stats:#?}");
    }
}

#[test]
fn corpus_encapsulations_are_seen() {
    let (_, s) = decode_file("zeek__nflog-http.pcap");
    assert_eq!(s.layers.nflog, s.packets);
    let (_, s) = decode_file("zeek__mixed-vlan-mpls.pcap");
    assert!(s.layers.vlan > 0 && s.layers.mpls > 0);
    let (_, s) = decode_file("zeek__ayiya3.pcap");
    assert!(s.layers.ayiya > 0);
    let (_, s) = decode_file("ndpi__log4j-webapp-exploit.pcap");
    assert_eq!(s.layers.sll, s.packets);
    let (_, s) = decode_file("sv__http-gap-simple.pcap");
    assert_eq!(s.layers.loopback, s.packets);
}

/// Writes [`vectors`] as one pcap per link type into the directory named by
/// `POV_DUMP_VECTORS`, with `ours.txt` listing, per file and frame, the
/// payload length pov decodes (or its bucket), to compare with
/// `tshark -r ltN.pcap -Y tcp -T fields -e frame.number -e tcp.len`.
#[test]
#[ignore = "writes files; run by hand to cross-check with tshark"]
fn dump_vectors_for_tshark() {
    let Some(dir) = std::env::var_os("POV_DUMP_VECTORS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut files: std::collections::BTreeMap<u32, (Vec<u8>, u32)> = Default::default();
    let mut h = H::new();
    let mut report = String::new();
    for (lt, p) in vectors() {
        let (file, frames) = files.entry(lt.0).or_insert_with(|| {
            let mut v = Vec::new();
            for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, lt.0] {
                v.extend_from_slice(&w.to_le_bytes());
            }
            (v, 0)
        });
        *frames += 1;
        let n = u32::try_from(p.len()).unwrap();
        for w in [*frames, 0, n, n] {
            file.extend_from_slice(&w.to_le_bytes());
        }
        file.extend_from_slice(&p);
        let (s, b) = h.feed(lt, &p);
        let what = s.map_or(b.to_string(), |s| s.payload_len.to_string());
        report.push_str(&format!("lt{} {} {what}\n", lt.0, frames));
    }
    for (lt, (bytes, _)) in files {
        std::fs::write(dir.join(format!("lt{lt}.pcap")), bytes).unwrap();
    }
    std::fs::write(dir.join("ours.txt"), report).unwrap();
}

// ------------------------------------------------------------ flow domains

/// The domain of the one segment a frame yields.
fn domain_with(cfg: DecodeConfig, lt: Linktype, data: &[u8]) -> Domain {
    let mut dec = Decoder::new(cfg);
    let pkt = Packet { frame: 1, source: 0, ts: Ts(0), linktype: lt, data, orig_len: data.len() as u32 };
    match dec.decode(&pkt) {
        Some(s) => s.domain,
        None => panic!("no segment: {:?}", dec.stats().outcome),
    }
}

fn domain(lt: Linktype, data: &[u8]) -> Domain {
    domain_with(DecodeConfig::default(), lt, data)
}

/// Outer IPv4 + UDP from `src` to `dst` around `payload`.
fn udp4_between(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

/// A VXLAN header with network id `vni`.
fn vxlan_hdr(vni: u32) -> Vec<u8> {
    let b = vni.to_be_bytes();
    vec![0x08, 0, 0, 0, b[1], b[2], b[3], 0]
}

/// A GRE header (version 0) with key `key`, around Ethernet or IP.
fn gre_key(proto: u16, key: u32) -> Vec<u8> {
    cat(&[&[0x20, 0x00], &proto.to_be_bytes(), &key.to_be_bytes()])
}

#[test]
fn domain_of_plain_vlan_and_tunnelled_segments() {
    let plain = domain(ETH, &eth(0x0800, &tcp4(BODY)));
    assert_eq!(plain, Domain::default());
    // VLAN 0 is an 802.1p priority tag: no VLAN.
    assert_eq!(domain(ETH, &eth(0x8100, &cat(&[&tag(0, 0x0800), &tcp4(BODY)]))), plain);
    // The VLAN id is the TCI's low 12 bits: the priority bits do not count.
    let v10 = domain(ETH, &eth(0x8100, &cat(&[&tag(10, 0x0800), &tcp4(BODY)])));
    let v10_prio = domain(ETH, &eth(0x8100, &cat(&[&tag(0xa000 | 10, 0x0800), &tcp4(BODY)])));
    let v20 = domain(ETH, &eth(0x8100, &cat(&[&tag(20, 0x0800), &tcp4(BODY)])));
    assert_eq!(v10, v10_prio);
    assert_eq!(v10.vlan, Some(10));
    assert_ne!(v10.id, 0);
    assert_ne!(v10, v20);
    // QinQ: every tag counts, in order; the outermost is the one shown.
    let q_100_10 = domain(ETH, &eth(0x88a8, &cat(&[&tag(100, 0x8100), &tag(10, 0x0800), &tcp4(BODY)])));
    let q_10_100 = domain(ETH, &eth(0x88a8, &cat(&[&tag(10, 0x8100), &tag(100, 0x0800), &tcp4(BODY)])));
    assert_eq!(q_100_10.vlan, Some(100));
    assert_ne!(q_100_10.id, q_10_100.id);
    assert_ne!(q_100_10.id, v10.id);
    // With VLANs left out, every one of them is plain.
    let off = DecodeConfig { vlan_in_flow_key: false, ..DecodeConfig::default() };
    assert_eq!(domain_with(off.clone(), ETH, &eth(0x8100, &cat(&[&tag(10, 0x0800), &tcp4(BODY)]))), plain);
    let q = eth(0x88a8, &cat(&[&tag(100, 0x8100), &tag(10, 0x0800), &tcp4(BODY)]));
    assert_eq!(domain_with(off.clone(), ETH, &q), plain);
    // ... but tunnels still count.
    let vx = |vni| eth(0x0800, &udp4(50000, 4789, &cat(&[&vxlan_hdr(vni), &eth(0x0800, &tcp4(BODY))])));
    assert_ne!(domain_with(off, ETH, &vx(7)), plain);

    // VXLAN: the VNI counts; the outer endpoints count, either way round;
    // the UDP source port (per-flow entropy) does not.
    let (a, b) = (domain(ETH, &vx(100)), domain(ETH, &vx(200)));
    assert_ne!(a, b);
    assert_ne!(a, plain);
    assert_eq!(a.vlan, None);
    let inner = cat(&[&vxlan_hdr(100), &eth(0x0800, &tcp4(BODY))]);
    let back = domain(ETH, &eth(0x0800, &udp4_between(O4B, O4A, 61000, 4789, &inner)));
    assert_eq!(back, a);
    let elsewhere = domain(ETH, &eth(0x0800, &udp4_between(O4A, [10, 0, 0, 3], 50000, 4789, &inner)));
    assert_ne!(elsewhere, a);
    // Geneve: the VNI counts, and VNI 100 in Geneve is not VNI 100 in VXLAN.
    let geneve = |vni: u32| {
        let b = vni.to_be_bytes();
        let g = cat(&[&[0x00, 0x00, 0x65, 0x58, b[1], b[2], b[3], 0], &eth(0x0800, &tcp4(BODY))]);
        domain(ETH, &eth(0x0800, &udp4(50000, 6081, &g)))
    };
    assert_ne!(geneve(100), geneve(200));
    assert_ne!(geneve(100), a);
    // GRE: the key counts; NVGRE's low byte (flow entropy) does not.
    let gre = |proto, key, inner: &[u8]| domain(Linktype::RAW, &ip4(47, &cat(&[&gre_key(proto, key), inner])));
    assert_ne!(gre(0x0800, 1, &tcp4(BODY)), gre(0x0800, 2, &tcp4(BODY)));
    let nv = eth(0x0800, &tcp4(BODY));
    assert_eq!(gre(0x6558, 0x0012_3401, &nv), gre(0x6558, 0x0012_3402, &nv));
    assert_ne!(gre(0x6558, 0x0012_3401, &nv), gre(0x6558, 0x0012_3501, &nv));
    // GTP-U: each direction has its own TEID, so only the endpoints count.
    let teid = |t: u32, src, dst| {
        let g = cat(&[&[0x30, 0xff], &(tcp4(BODY).len() as u16).to_be_bytes(), &t.to_be_bytes(), &tcp4(BODY)]);
        domain(ETH, &eth(0x0800, &udp4_between(src, dst, 2152, 2152, &g)))
    };
    assert_eq!(teid(1, O4A, O4B), teid(2, O4B, O4A));
    assert_ne!(teid(1, O4A, O4B), plain);
    // IP in IP: the outer endpoints.
    assert_ne!(domain(Linktype::RAW, &ip4(4, &tcp4(BODY))), plain);
    assert_eq!(
        domain(Linktype::RAW, &ip4(4, &tcp4(BODY))),
        domain(Linktype::RAW, &cat(&[&ip4_hdr(4, tcp4(BODY).len(), O4B, O4A, 1, 0), &tcp4(BODY)]))
    );
}

/// What the reassembler made of some frames: per connection, its
/// outermost VLAN and both byte streams.
#[derive(Default)]
struct Conns(std::collections::BTreeMap<u64, ConnBytes>);

/// A connection's outermost VLAN, client bytes and server bytes.
type ConnBytes = (Option<u16>, Vec<u8>, Vec<u8>);

impl crate::tcp::StreamSink for Conns {
    fn on_open(&mut self, m: &crate::tcp::ConnMeta) {
        self.0.insert(m.id, (m.vlan, Vec::new(), Vec::new()));
    }
    fn on_data(&mut self, c: &crate::tcp::DataChunk<'_>) {
        let e = self.0.get_mut(&c.conn).expect("data before open");
        let v = if c.dir == crate::tcp::Direction::ClientToServer { &mut e.1 } else { &mut e.2 };
        v.extend_from_slice(c.bytes);
    }
}

/// Decodes `frames` and reassembles them; the connections, in id order.
fn reassemble(cfg: DecodeConfig, frames: &[Vec<u8>]) -> Vec<(Option<u16>, String, String)> {
    let mut dec = Decoder::new(cfg);
    let mut r = crate::tcp::Reassembler::new(crate::tcp::TcpConfig::default());
    let mut out = Conns::default();
    for (i, f) in frames.iter().enumerate() {
        let frame = i as u64 + 1;
        let pkt =
            Packet { frame, source: 0, ts: Ts(frame as i64 * 1000), linktype: ETH, data: f, orig_len: f.len() as u32 };
        let seg = dec.decode(&pkt).expect("a TCP segment");
        r.process(&seg, &mut out);
    }
    r.finish(&mut out);
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    out.0.values().map(|(vlan, c2s, s2c)| (*vlan, text(c2s), text(s2c))).collect()
}

/// One connection's packets as IPv4 (C4:40000 <-> S4:80): handshake, a
/// request, a response. `true` marks the client's.
fn conversation(req: &[u8], resp: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let pkt = |from_client: bool, seq: u32, ack: Option<u32>, syn: bool, payload: &[u8]| {
        let (src, dst, sp, dp) = if from_client { (C4, S4, SPORT, DPORT) } else { (S4, C4, DPORT, SPORT) };
        let b = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, seq, WIN);
        let b = if syn { b.syn() } else { b };
        let b = match ack {
            Some(a) => b.ack(a),
            None => b,
        };
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        (from_client, v)
    };
    let (c, s) = (100u32, 500u32);
    let rq = req.len() as u32;
    vec![
        pkt(true, c, None, true, b""),
        pkt(false, s, Some(c + 1), true, b""),
        pkt(true, c + 1, Some(s + 1), false, b""),
        pkt(true, c + 1, Some(s + 1), false, req),
        pkt(false, s + 1, Some(c + 1 + rq), false, resp),
    ]
}

/// IP packets in VLAN `vid` on Ethernet.
fn in_vlan(vid: u16, ip: &[u8]) -> Vec<u8> {
    eth(0x8100, &cat(&[&tag(vid, 0x0800), ip]))
}

/// IP packets in VXLAN `vni` from outer `src` to `dst`.
fn in_vxlan(vni: u32, src: [u8; 4], dst: [u8; 4], sport: u16, ip: &[u8]) -> Vec<u8> {
    let inner = cat(&[&vxlan_hdr(vni), &eth(0x0800, ip)]);
    eth(0x0800, &udp4_between(src, dst, sport, 4789, &inner))
}

/// Two lists of frames, interleaved.
fn interleave(a: Vec<Vec<u8>>, b: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect()
}

#[test]
fn identical_flows_in_two_vlans_are_two_connections() {
    let ten = conversation(b"GET /ten HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 ten\r\n\r\n");
    let twenty = conversation(b"GET /twenty HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 twenty\r\n\r\n");
    let frames = interleave(
        ten.iter().map(|(_, ip)| in_vlan(10, ip)).collect(),
        twenty.iter().map(|(_, ip)| in_vlan(20, ip)).collect(),
    );
    let conns = reassemble(DecodeConfig::default(), &frames);
    assert_eq!(
        conns,
        vec![
            (Some(10), "GET /ten HTTP/1.1\r\n\r\n".into(), "HTTP/1.1 200 ten\r\n\r\n".into()),
            (Some(20), "GET /twenty HTTP/1.1\r\n\r\n".into(), "HTTP/1.1 404 twenty\r\n\r\n".into()),
        ]
    );
}

#[test]
fn directions_mirrored_on_two_vlans_meet_when_vlans_are_left_out() {
    // Router on a stick: the client's packets were mirrored on VLAN 10,
    // the server's on VLAN 20.
    let conv = conversation(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n");
    let frames: Vec<Vec<u8>> = conv.iter().map(|(c, ip)| in_vlan(if *c { 10 } else { 20 }, ip)).collect();
    // By default: two one-sided connections.
    let split = reassemble(DecodeConfig::default(), &frames);
    assert_eq!(
        split,
        vec![
            (Some(10), "GET / HTTP/1.1\r\n\r\n".into(), String::new()),
            (Some(20), String::new(), "HTTP/1.1 200 OK\r\n\r\n".into()),
        ]
    );
    // VLANs left out: one connection with both streams.
    let off = DecodeConfig { vlan_in_flow_key: false, ..DecodeConfig::default() };
    let one = reassemble(off, &frames);
    assert_eq!(one, vec![(None, "GET / HTTP/1.1\r\n\r\n".into(), "HTTP/1.1 200 OK\r\n\r\n".into())]);
}

#[test]
fn identical_flows_in_two_vxlan_networks_are_two_connections() {
    let a = conversation(b"GET /a HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 a\r\n\r\n");
    let b = conversation(b"GET /b HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 b\r\n\r\n");
    let frames = interleave(
        a.iter().map(|(_, ip)| in_vxlan(100, O4A, O4B, 50000, ip)).collect(),
        b.iter().map(|(_, ip)| in_vxlan(200, O4A, O4B, 50000, ip)).collect(),
    );
    let conns = reassemble(DecodeConfig::default(), &frames);
    assert_eq!(
        conns,
        vec![
            (None, "GET /a HTTP/1.1\r\n\r\n".into(), "HTTP/1.1 200 a\r\n\r\n".into()),
            (None, "GET /b HTTP/1.1\r\n\r\n".into(), "HTTP/1.1 200 b\r\n\r\n".into()),
        ]
    );
}

#[test]
fn a_tunnel_seen_from_both_ends_carries_one_connection() {
    // The client's packets go O4A -> O4B, the server's come back O4B ->
    // O4A, each with its own UDP source port.
    let conv = conversation(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n");
    let frames: Vec<Vec<u8>> = conv
        .iter()
        .map(|(c, ip)| if *c { in_vxlan(7, O4A, O4B, 50000, ip) } else { in_vxlan(7, O4B, O4A, 61000, ip) })
        .collect();
    let conns = reassemble(DecodeConfig::default(), &frames);
    assert_eq!(conns, vec![(None, "GET / HTTP/1.1\r\n\r\n".into(), "HTTP/1.1 200 OK\r\n\r\n".into())]);
}
