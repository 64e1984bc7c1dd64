//! The records that cross from reading to decoding to reassembly.
//!
//! [`Packet`] is one captured frame as the capture file holds it; the decoder
//! turns it into a [`TcpSegment`]. Both borrow their bytes from the stage
//! that produced them and are dropped before that stage moves on; anything
//! kept longer is copied (smoltcp's wire view / owned repr split).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::time::Ts;

/// A link-layer header type (pcap `LINKTYPE_*` / pcapng `LinkType`).
///
/// Open newtype: values pov does not know survive, so they can be counted
/// and shown by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Linktype(pub u32);

impl Linktype {
    /// BSD loopback: 4-byte address family in the capturing host's order.
    pub const NULL: Linktype = Linktype(0);
    /// Ethernet II (and 802.3 with LLC/SNAP).
    pub const ETHERNET: Linktype = Linktype(1);
    /// PPP (RFC 1661 framing, as captured by libpcap).
    pub const PPP: Linktype = Linktype(9);
    /// Raw IP as `DLT_RAW` is numbered on some BSDs.
    pub const RAW_12: Linktype = Linktype(12);
    /// Raw IP as `DLT_RAW` is numbered on OpenBSD.
    pub const RAW_14: Linktype = Linktype(14);
    /// PPP in HDLC-like framing.
    pub const PPP_HDLC: Linktype = Linktype(50);
    /// PPP over Ethernet session data without the Ethernet header (rare).
    pub const PPP_ETHER: Linktype = Linktype(51);
    /// Raw IPv4 or IPv6, version taken from the first nibble.
    pub const RAW: Linktype = Linktype(101);
    /// OpenBSD loopback: 4-byte address family in network order.
    pub const LOOP: Linktype = Linktype(108);
    /// Linux cooked capture v1 (`any` device).
    pub const LINUX_SLL: Linktype = Linktype(113);
    /// Raw IPv4.
    pub const IPV4: Linktype = Linktype(228);
    /// Raw IPv6.
    pub const IPV6: Linktype = Linktype(229);
    /// Linux netfilter NFLOG.
    pub const NFLOG: Linktype = Linktype(239);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: Linktype = Linktype(276);

    /// The libpcap name of a link type pov knows, else `None`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Linktype::NULL => "NULL",
            Linktype::ETHERNET => "ETHERNET",
            Linktype::PPP => "PPP",
            Linktype::RAW_12 | Linktype::RAW_14 | Linktype::RAW => "RAW",
            Linktype::PPP_HDLC => "PPP_HDLC",
            Linktype::PPP_ETHER => "PPP_ETHER",
            Linktype::LOOP => "LOOP",
            Linktype::LINUX_SLL => "LINUX_SLL",
            Linktype::IPV4 => "IPV4",
            Linktype::IPV6 => "IPV6",
            Linktype::NFLOG => "NFLOG",
            Linktype::LINUX_SLL2 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

impl fmt::Display for Linktype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "unknown ({})", self.0),
        }
    }
}

/// One captured frame, borrowed from the reader.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Frame number in the (merged) input, from 1, as tshark and Wireshark
    /// number frames. With one input file it is the frame number in that
    /// file.
    pub frame: u64,
    /// Index of the input file this frame came from (order given by the
    /// caller).
    pub source: u16,
    /// Capture time.
    pub ts: Ts,
    /// Link type of the interface the frame was captured on.
    pub linktype: Linktype,
    /// The captured bytes (at most the snapshot length).
    pub data: &'a [u8],
    /// The frame's length on the wire; larger than `data.len()` when the
    /// capture cut the frame at its snapshot length.
    pub orig_len: u32,
}

/// A reader's buffer, shared with whoever holds packets read from it
/// instead of having their bytes copied (see
/// [`PacketSource::next_shared`](crate::PacketSource::next_shared)).
///
/// While a `Block` is held, its bytes do not change: the reader that
/// filled it reads on into another buffer, and takes this one back once
/// no one holds it.
#[derive(Clone, Debug)]
pub struct Block(pub(crate) std::sync::Arc<Vec<u8>>);

impl Block {
    /// The buffer's bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The same buffer as `other`.
    #[inline]
    pub fn same(&self, other: &Block) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }

    /// Where `data` starts in this block, if it lies wholly within it.
    #[inline]
    pub fn position(&self, data: &[u8]) -> Option<usize> {
        let (base, len) = (self.0.as_ptr() as usize, self.0.len());
        let at = (data.as_ptr() as usize).checked_sub(base)?;
        (at.checked_add(data.len())? <= len).then_some(at)
    }
}

/// TCP header flags.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;

    /// True if every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
    /// SYN set.
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    /// ACK set.
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    /// FIN set.
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    /// RST set.
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// The TCP options the reassembler cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only).
    pub wscale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
}

/// One decoded TCP segment, ready for reassembly.
///
/// Addresses are the innermost IP header's (for tunnelled traffic, the
/// tunnelled connection's).
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    /// Frame that carried the segment (for a reassembled IP datagram, the
    /// frame of its last fragment, as tshark reports it).
    pub frame: u64,
    /// Capture time of that frame.
    pub ts: Ts,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when the ACK flag is set).
    pub ack: u32,
    /// Header flags.
    pub flags: TcpFlags,
    /// Advertised window, unscaled.
    pub window: u16,
    /// Options of interest.
    pub options: TcpOptions,
    /// Payload bytes present in the capture.
    pub payload: &'a [u8],
    /// Payload length the segment had on the wire, from the IP header.
    /// Larger than `payload.len()` when the frame was cut by the capture's
    /// snapshot length: the missing tail is capture loss.
    pub payload_len: u32,
    /// The VLANs and tunnels the segment was found in: two flows with the
    /// same addresses and ports in different domains are different
    /// connections.
    pub domain: Domain,
}

impl TcpSegment<'_> {
    /// The same segment with `payload` as its bytes: to keep a segment
    /// beyond the buffer it was decoded from (its bytes copied elsewhere).
    pub fn with_payload<'b>(&self, payload: &'b [u8]) -> TcpSegment<'b> {
        TcpSegment {
            frame: self.frame,
            ts: self.ts,
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            options: self.options,
            payload,
            payload_len: self.payload_len,
            domain: self.domain,
        }
    }
}

/// The encapsulation "domain" a segment was found in: its VLAN ids
/// (802.1Q and QinQ tags, all of them, in order) and the identity of each
/// tunnel around it (VXLAN and Geneve VNI, GRE key, the tunnel's outer
/// endpoint addresses), folded into one number.
///
/// The same for both directions of a flow (tunnel endpoints are taken
/// lower address first) and the same across runs and platforms (a fixed
/// mixing function, no random seed). The default (`id` 0) is a segment
/// with no VLAN tag and no tunnel.
///
/// Left out on purpose: VLAN id 0 (an 802.1p priority tag, no VLAN), GTP-U
/// TEIDs and the call id in PPTP's GRE key (each direction of a tunnel has
/// its own, so they would split a connection in two), the 8-bit flow id of
/// NVGRE's key (per-flow entropy, not part of the virtual network's id),
/// MPLS labels (they change hop by hop and differ by direction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain {
    /// All of it, hashed; 0 for none.
    pub id: u64,
    /// The outermost VLAN id, when VLANs are part of the domain
    /// ([`DecodeConfig::vlan_in_flow_key`](crate::decode::DecodeConfig::vlan_in_flow_key)).
    pub vlan: Option<u16>,
}

/// What a [`Domain`] is made of (mixed in first, so that VLAN 5 and VNI 5
/// differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    /// An 802.1Q or 802.1ad tag (its 12-bit VLAN id).
    Vlan = 1,
    /// A VXLAN header (its VNI).
    Vxlan = 2,
    /// A Geneve header (its VNI).
    Geneve = 3,
    /// A GRE header (its key, or `u64::MAX` without one).
    Gre = 4,
    /// GTP-U (no identity of its own: the TEID differs by direction).
    Gtpu = 5,
    /// Teredo.
    Teredo = 6,
    /// AYIYA.
    Ayiya = 7,
    /// IP in IP (4 and 41).
    IpInIp = 8,
}

impl Domain {
    /// Adds one layer with its identity.
    pub(crate) fn push(&mut self, layer: Layer, value: u64) {
        self.id = mix(mix(self.id, layer as u64), value);
        if self.id == 0 {
            self.id = 1;
        }
    }

    /// Adds a VLAN tag's id (VLAN 0, a priority tag, is no VLAN).
    pub(crate) fn push_vlan(&mut self, vid: u16) {
        if vid == 0 {
            return;
        }
        if self.vlan.is_none() {
            self.vlan = Some(vid);
        }
        self.push(Layer::Vlan, u64::from(vid));
    }

    /// Adds a tunnel's outer endpoints, lower address first, so that both
    /// directions of the tunnel give the same domain.
    pub(crate) fn push_endpoints(&mut self, a: IpAddr, b: IpAddr) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for ip in [lo, hi] {
            let (x, y) = ip_words(ip);
            self.id = mix(mix(self.id, x), y);
        }
        if self.id == 0 {
            self.id = 1;
        }
    }
}

/// An address as two words (IPv4 tagged so it never equals an IPv6 one).
fn ip_words(ip: IpAddr) -> (u64, u64) {
    match ip {
        IpAddr::V4(v4) => (1 << 32 | u64::from(u32::from(v4)), 0),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            ((n >> 64) as u64, n as u64)
        }
    }
}

/// Folds `v` into the running hash `h`: order-dependent, deterministic
/// (the SplitMix64 finaliser over an odd-constant multiply; no seed).
pub(crate) fn mix(h: u64, v: u64) -> u64 {
    let mut z = (h ^ v.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
