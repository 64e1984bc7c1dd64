//! Link-layer, tunnel and IP decoding down to TCP segments.
//!
//! # Brief overview
//!
//! [`Decoder::decode`] takes one captured [`Packet`], walks its link layer
//! (Ethernet with VLAN/QinQ/LLC-SNAP/PPPoE/MPLS, Linux cooked v1 and v2, BSD
//! loopback, PPP, NFLOG, raw IP), any tunnels (GRE and ERSPAN, VXLAN,
//! Geneve, GTP-U, Teredo, AYIYA, IP-in-IP) and the IPv4/IPv6 headers with
//! their extension headers, reassembles IP fragments in a bounded pool, and
//! returns a [`TcpSegment`] for every TCP packet.
//!
//! Every packet handed to the decoder ends in exactly one *terminal* bucket
//! of [`DecodeStats::outcome`]: either `tcp_segments`, or a named reason why
//! it was not decoded (`udp`, `arp`, `malformed_ip`, `fragment_held`, ...).
//! [`DecodeStats::unaccounted`] is therefore always zero; the other groups
//! of [`DecodeStats`] count what was seen on the way (encapsulations,
//! anomalies, fragment pool events) and do not have to add up.
//!
//! The walk is a loop with one step per header, each step consuming
//! bytes, so no input can make it recurse or loop forever. Per packet it
//! allocates nothing; only the fragment pool allocates, within the caps of
//! [`DecodeConfig`]. Checksums are never verified: captures taken on the
//! sending host carry checksums the NIC had yet to fill in.
//!
//! Lengths come from the IP header, never from the link frame: Ethernet
//! padding after the IP datagram is trimmed away, and a frame cut by the
//! capture's snapshot length still yields its segment, with `payload` the
//! bytes captured and `payload_len` the length the IP header announced.
//!
//! On the way down the walk folds every VLAN tag and every tunnel's
//! identity into the segment's [`Domain`] (see there), which the
//! reassembler adds to its flow key.

mod defrag;
mod link;
mod tunnel;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::err::{ip_auth, ipv4, ipv6, tcp};
use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, TcpHeaderSlice,
};

use crate::packet::{Domain, Layer, Linktype, Packet, TcpFlags, TcpOptions, TcpSegment};
use crate::time::{Dur, Ts};

use defrag::{Defrag, FragKey, Fragment, Insert};

/// Limits of the decoder. The defaults suit captures of a busy server.
#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// Cap on the bytes held by incomplete IP datagrams (reassembly
    /// buffers). When a fragment would exceed it, the oldest datagrams are
    /// evicted (counted in [`FragmentStats::evicted`]). Default 64 MiB.
    pub max_frag_bytes: usize,
    /// Cap on the number of incomplete IP datagrams held at once; beyond it
    /// the oldest is evicted. Default 16384. Zero disables reassembly (every
    /// fragment is dropped and counted).
    pub max_frag_datagrams: usize,
    /// An incomplete datagram is dropped once the capture clock has moved
    /// this far past its first fragment (counted in
    /// [`FragmentStats::timeouts`]). Default 30 s.
    pub frag_timeout: Dur,
    /// How many tunnels may be nested (GRE, ERSPAN, VXLAN, Geneve, GTP-U,
    /// Teredo, AYIYA, IP-in-IP each count one). A packet that goes deeper is
    /// counted as `tunnel_too_deep`. Default 8; zero decodes no tunnel.
    pub max_tunnel_depth: u8,
    /// VLAN ids are part of a segment's [`Domain`], so that the same
    /// addresses and ports in two VLANs are two connections. Default true.
    /// Set it false for a capture where one connection's two directions
    /// were mirrored on different VLANs (a SPAN port on a router-on-a-stick
    /// link): its two directions then meet again. Tunnel identities stay in
    /// the domain either way.
    pub vlan_in_flow_key: bool,
    /// The run's memory budget: fragments held for reassembly are charged
    /// to it (the oldest datagrams are evicted when it is full).
    pub budget: crate::budget::Budget,
}

impl Default for DecodeConfig {
    fn default() -> DecodeConfig {
        DecodeConfig {
            max_frag_bytes: 64 << 20,
            max_frag_datagrams: 16384,
            frag_timeout: Dur::from_secs(30),
            max_tunnel_depth: 8,
            vlan_in_flow_key: true,
            budget: crate::budget::Budget::default(),
        }
    }
}

/// Declares a group of `u64` counters with `merge` and `counts`.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: u64, )*
        }

        impl $name {
            /// Adds every counter of `other` to this one.
            pub fn merge(&mut self, other: &$name) {
                $( self.$field = self.$field.saturating_add(other.$field); )*
            }

            /// Every counter with its name (the serde field name), in
            /// declaration order.
            pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + use<> {
                [$( (stringify!($field), self.$field), )*].into_iter()
            }
        }
    };
}

counters! {
    /// Terminal buckets: every packet handed to [`Decoder::decode`] is
    /// counted in exactly one of these.
    pub struct Outcomes {
        /// Decoded into a TCP segment (for a fragment, the one that
        /// completed its datagram).
        tcp_segments,
        /// The capture's link type is not one pov decodes.
        unsupported_linktype,
        /// ARP (ethertype 0x0806).
        arp,
        /// LLDP (ethertype 0x88cc).
        lldp,
        /// IEEE 802.3 frames with an LLC header that does not carry
        /// SNAP-encapsulated IP (spanning tree, CDP, NetBIOS, IPX, ...).
        llc,
        /// Any other ethertype (also as a Linux cooked, SNAP, GRE or Geneve
        /// protocol type): IPX, PPPoE discovery, 802.1X, LACP, MACsec, ...
        other_ethertype,
        /// A link layer or tunnel that carries something other than IP or
        /// Ethernet: PPP control protocols, a loopback address family that is
        /// not IP, NFLOG without a payload, MPLS payloads that are neither IP
        /// nor an Ethernet pseudowire, GTP-U signalling, AYIYA keepalives.
        other_link_payload,
        /// UDP that is not a tunnel pov decodes.
        udp,
        /// ICMP (also ICMP errors that quote a TCP header).
        icmp,
        /// ICMPv6.
        icmpv6,
        /// Any other IP protocol (ESP, SCTP, OSPF, IPv6 "no next header", ...).
        other_ip_protocol,
        /// A link header that is inconsistent or shorter than its fixed part
        /// in a frame that was not cut by the snapshot length.
        malformed_link,
        /// A tunnel header (GRE, ERSPAN, VXLAN, Geneve, GTP-U, Teredo, AYIYA)
        /// that is inconsistent or incomplete.
        malformed_tunnel,
        /// A bad IPv4/IPv6 header or extension header (wrong version, length
        /// fields that contradict each other, fragment inside a reassembled
        /// datagram).
        malformed_ip,
        /// A bad TCP header (data offset below 5 or beyond the IP length).
        malformed_tcp,
        /// The capture's snapshot length cut the frame inside the headers,
        /// before the TCP payload (or before pov could tell what it was).
        truncated_headers,
        /// Tunnels nested deeper than [`DecodeConfig::max_tunnel_depth`].
        tunnel_too_deep,
        /// An IP fragment stored for reassembly (its datagram's fate is in
        /// [`DecodeStats::fragments`]).
        fragment_held,
        /// An IP fragment not stored: a duplicate, bad offsets, cut by the
        /// snapshot length, or too large for the caps.
        fragment_dropped,
    }
}

counters! {
    /// Headers seen on the way down, outer and inner alike (non-terminal: a
    /// packet can count in several, or several times in one).
    pub struct Layers {
        /// Ethernet II and IEEE 802.3 headers.
        ethernet,
        /// IEEE 802.1Q customer VLAN tags (0x8100), one per tag.
        vlan,
        /// Service VLAN tags (0x88a8, 0x9100), one per tag.
        qinq,
        /// LLC/SNAP headers carrying an ethertype.
        llc_snap,
        /// MPLS label stacks (one per stack, whatever its depth).
        mpls,
        /// Ethernet pseudowires (control word) inside MPLS.
        mpls_pw,
        /// PPPoE session headers.
        pppoe,
        /// PPP headers (link types 9/50/51, PPPoE, PPTP, MPLS over PPP).
        ppp,
        /// Linux cooked capture headers (v1 and v2).
        sll,
        /// BSD loopback headers (NULL and LOOP).
        loopback,
        /// NFLOG headers.
        nflog,
        /// GRE headers.
        gre,
        /// ERSPAN headers (types I, II and III).
        erspan,
        /// VXLAN headers.
        vxlan,
        /// Geneve headers.
        geneve,
        /// GTP-U headers.
        gtpu,
        /// Teredo encapsulations.
        teredo,
        /// AYIYA headers.
        ayiya,
        /// IPv4 or IPv6 carried directly in IP (protocols 4 and 41).
        ip_in_ip,
        /// IPv4 headers.
        ipv4,
        /// IPv6 headers.
        ipv6,
        /// IPv6 extension headers (hop-by-hop, routing, fragment,
        /// destination options, AH, mobility, HIP, shim6).
        ipv6_ext_headers,
        /// Authentication headers after an IPv4 header.
        ipv4_auth_headers,
    }
}

counters! {
    /// Oddities that did not stop the decoding (non-terminal).
    pub struct Anomalies {
        /// Frames cut by the capture's snapshot length
        /// (`Packet::data.len() < orig_len`).
        snaplen_cut,
        /// IP headers with a length of zero (TCP segmentation offload on the
        /// capturing host, jumbograms): the length was taken from the
        /// captured bytes.
        ip_length_zero,
        /// IP headers announcing more bytes than the frame holds, in a frame
        /// the snapshot length did not cut; the missing bytes are treated as
        /// capture loss.
        ip_length_beyond_frame,
        /// IP datagrams followed by extra bytes in their frame (Ethernet
        /// padding, trailers), which were trimmed away.
        ip_trailing_bytes,
    }
}

/// IP fragment reassembly (non-terminal). Datagram counters satisfy:
/// datagrams started = `reassembled + evicted + timeouts + unfinished` +
/// those still pending.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FragmentStats {
    /// IPv4 fragments seen.
    pub fragments_v4: u64,
    /// IPv6 fragments seen (atomic fragments excluded).
    pub fragments_v6: u64,
    /// Datagrams completed and decoded.
    pub reassembled: u64,
    /// Fragments that brought no new bytes and matched what was held.
    pub duplicates: u64,
    /// Fragments that overlapped held bytes (partly, or with different
    /// content). The bytes that arrived first are kept.
    pub overlaps: u64,
    /// Fragments with impossible offsets: beyond 65535 bytes, empty with
    /// more to follow, past or short of a known datagram end, or too many
    /// pieces in one datagram (that datagram is dropped too).
    pub invalid: u64,
    /// Fragments cut by the snapshot length (never reassembled).
    pub truncated: u64,
    /// Fragments refused because their datagram alone would exceed the
    /// byte cap.
    pub over_cap: u64,
    /// Incomplete datagrams evicted to respect the byte or datagram cap.
    pub evicted: u64,
    /// Incomplete datagrams dropped by the capture-time timeout.
    pub timeouts: u64,
    /// Incomplete datagrams still pending at [`Decoder::finish`].
    pub unfinished: u64,
    /// Highest number of bytes held for reassembly at any time.
    pub peak_pending_bytes: u64,
}

impl FragmentStats {
    /// Adds `other`'s counters to this one (the peak takes the maximum).
    pub fn merge(&mut self, other: &FragmentStats) {
        let FragmentStats {
            fragments_v4,
            fragments_v6,
            reassembled,
            duplicates,
            overlaps,
            invalid,
            truncated,
            over_cap,
            evicted,
            timeouts,
            unfinished,
            peak_pending_bytes,
        } = other;
        self.fragments_v4 = self.fragments_v4.saturating_add(*fragments_v4);
        self.fragments_v6 = self.fragments_v6.saturating_add(*fragments_v6);
        self.reassembled = self.reassembled.saturating_add(*reassembled);
        self.duplicates = self.duplicates.saturating_add(*duplicates);
        self.overlaps = self.overlaps.saturating_add(*overlaps);
        self.invalid = self.invalid.saturating_add(*invalid);
        self.truncated = self.truncated.saturating_add(*truncated);
        self.over_cap = self.over_cap.saturating_add(*over_cap);
        self.evicted = self.evicted.saturating_add(*evicted);
        self.timeouts = self.timeouts.saturating_add(*timeouts);
        self.unfinished = self.unfinished.saturating_add(*unfinished);
        self.peak_pending_bytes = self.peak_pending_bytes.max(*peak_pending_bytes);
    }
}

/// What the decoder did with the packets it was given.
///
/// `packets` equals the sum of the [`Outcomes`] (see
/// [`DecodeStats::unaccounted`]); the other groups are observations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// Packets handed to [`Decoder::decode`].
    pub packets: u64,
    /// Where each packet ended (terminal, one bucket per packet).
    pub outcome: Outcomes,
    /// Encapsulation headers seen.
    pub layers: Layers,
    /// Oddities that did not stop decoding.
    pub anomalies: Anomalies,
    /// IP fragment reassembly.
    pub fragments: FragmentStats,
}

impl DecodeStats {
    /// Adds `other` to these statistics (for several decoders, or files).
    pub fn merge(&mut self, other: &DecodeStats) {
        self.packets = self.packets.saturating_add(other.packets);
        self.outcome.merge(&other.outcome);
        self.layers.merge(&other.layers);
        self.anomalies.merge(&other.anomalies);
        self.fragments.merge(&other.fragments);
    }

    /// Packets minus the sum of the terminal buckets: zero unless a packet
    /// went uncounted or was counted twice (a bug).
    pub fn unaccounted(&self) -> i64 {
        let terminal = self.outcome.counts().fold(0i128, |acc, (_, n)| acc + i128::from(n));
        let diff = i128::from(self.packets) - terminal;
        i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Why a packet was not decoded into a TCP segment; maps 1:1 to an
/// [`Outcomes`] field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    UnsupportedLinktype,
    Arp,
    Lldp,
    Llc,
    OtherEthertype,
    OtherLinkPayload,
    Udp,
    Icmp,
    Icmpv6,
    OtherIpProtocol,
    MalformedLink,
    MalformedTunnel,
    MalformedIp,
    MalformedTcp,
    TruncatedHeaders,
    TunnelTooDeep,
    FragmentHeld,
    FragmentDropped,
}

impl Outcomes {
    /// Counts one packet that ended for `r`.
    fn bump(&mut self, r: Reason) {
        let field = match r {
            Reason::UnsupportedLinktype => &mut self.unsupported_linktype,
            Reason::Arp => &mut self.arp,
            Reason::Lldp => &mut self.lldp,
            Reason::Llc => &mut self.llc,
            Reason::OtherEthertype => &mut self.other_ethertype,
            Reason::OtherLinkPayload => &mut self.other_link_payload,
            Reason::Udp => &mut self.udp,
            Reason::Icmp => &mut self.icmp,
            Reason::Icmpv6 => &mut self.icmpv6,
            Reason::OtherIpProtocol => &mut self.other_ip_protocol,
            Reason::MalformedLink => &mut self.malformed_link,
            Reason::MalformedTunnel => &mut self.malformed_tunnel,
            Reason::MalformedIp => &mut self.malformed_ip,
            Reason::MalformedTcp => &mut self.malformed_tcp,
            Reason::TruncatedHeaders => &mut self.truncated_headers,
            Reason::TunnelTooDeep => &mut self.tunnel_too_deep,
            Reason::FragmentHeld => &mut self.fragment_held,
            Reason::FragmentDropped => &mut self.fragment_dropped,
        };
        *field = field.saturating_add(1);
    }
}

/// Decodes captured frames into TCP segments, keeping the statistics and
/// the IP fragment pool between frames.
///
/// One decoder per capture (or per merged stream of captures): fragments
/// are only reassembled with fragments the same decoder saw.
#[derive(Debug)]
pub struct Decoder {
    cfg: DecodeConfig,
    stats: DecodeStats,
    defrag: Defrag,
    /// Buffers that receive completed datagrams: one per IP layer a packet
    /// can have (`max_tunnel_depth + 1`), so a segment can borrow from one
    /// while an inner datagram is completed into the next.
    bufs: Vec<Vec<u8>>,
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(cfg: DecodeConfig) -> Decoder {
        let layers = usize::from(cfg.max_tunnel_depth) + 1;
        Decoder {
            cfg,
            stats: DecodeStats::default(),
            defrag: Defrag::default(),
            bufs: (0..layers).map(|_| Vec::new()).collect(),
        }
    }

    /// Decodes one frame; `Some` for every TCP segment, including one whose
    /// IP datagram this frame's fragment just completed (the segment then
    /// carries this frame's number and time, as tshark reports it).
    ///
    /// Everything else is counted in [`Decoder::stats`]. Packets must come
    /// in capture order: fragment timeouts run on their timestamps.
    #[inline]
    pub fn decode<'a>(&'a mut self, pkt: &Packet<'a>) -> Option<TcpSegment<'a>> {
        self.decode_with(pkt, true)
    }

    /// [`Decoder::decode`] without the walk's shortcut for plain
    /// Ethernet, IP and TCP (which must not change what it gives).
    #[cfg(test)]
    fn decode_stepwise<'a>(&'a mut self, pkt: &Packet<'a>) -> Option<TcpSegment<'a>> {
        self.decode_with(pkt, false)
    }

    // (Inlined where a packet is decoded, with the shortcut: the segment
    // is then made where it goes, not handed back through each call.)
    #[inline]
    fn decode_with<'a>(&'a mut self, pkt: &Packet<'a>, shortcut: bool) -> Option<TcpSegment<'a>> {
        let Decoder { cfg, stats, defrag, bufs } = self;
        stats.packets = stats.packets.saturating_add(1);
        let cut = u64::try_from(pkt.data.len()).unwrap_or(u64::MAX) < u64::from(pkt.orig_len);
        if cut {
            stats.anomalies.snaplen_cut += 1;
        }
        if !defrag.is_empty() {
            defrag.expire(pkt.ts, cfg.frag_timeout, &mut stats.fragments);
        }
        let mut walk = Walker {
            cfg,
            stats: &mut *stats,
            defrag,
            spare: bufs.as_mut_slice(),
            frame: pkt.frame,
            ts: pkt.ts,
            end: end_addr(pkt.data),
            cut,
            depth: 0,
            domain: Domain::default(),
            ends: None,
        };
        match walk.run(pkt.linktype, pkt.data, shortcut) {
            Ok(seg) => {
                stats.outcome.tcp_segments = stats.outcome.tcp_segments.saturating_add(1);
                Some(seg)
            }
            Err(reason) => {
                stats.outcome.bump(reason);
                None
            }
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Bytes currently held by incomplete IP datagrams (never above
    /// [`DecodeConfig::max_frag_bytes`]).
    pub fn pending_fragment_bytes(&self) -> usize {
        self.defrag.pending_bytes()
    }

    /// Ends the capture: drops the incomplete datagrams still held and
    /// counts them in [`FragmentStats::unfinished`]. The decoder stays
    /// usable.
    pub fn finish(&mut self) {
        self.defrag.clear(&mut self.stats.fragments);
    }
}

/// One step of the walk: what the header just parsed says comes next.
enum Next<'a> {
    /// An Ethernet II or IEEE 802.3 frame.
    Ethernet(&'a [u8]),
    /// A payload named by an ethertype (or an 802.3 length, below 0x0600).
    EtherType(u16, &'a [u8]),
    /// An IEEE 802.2 LLC header.
    Llc(&'a [u8]),
    /// A PPP frame (optional FF 03, then the protocol field).
    Ppp(&'a [u8]),
    /// An MPLS label stack.
    Mpls(&'a [u8]),
    /// IPv4 or IPv6, by the version nibble.
    Ip(&'a [u8]),
    /// An IPv4 header.
    Ipv4(&'a [u8]),
    /// An IPv6 header.
    Ipv6(&'a [u8]),
    /// Done: a TCP segment.
    Segment(TcpSegment<'a>),
}

/// The result of one step; `Err` ends the walk in that bucket.
type Step<'a> = Result<Next<'a>, Reason>;

/// Source and destination of the IP header being walked.
#[derive(Clone, Copy)]
struct Ends {
    src: IpAddr,
    dst: IpAddr,
}

/// The state of one packet's walk.
struct Walker<'a, 'w> {
    cfg: &'w DecodeConfig,
    stats: &'w mut DecodeStats,
    defrag: &'w mut Defrag,
    /// Reassembly buffers not used yet by this packet.
    spare: &'a mut [Vec<u8>],
    frame: u64,
    ts: Ts,
    /// Address one past the captured bytes.
    end: usize,
    /// The frame was cut by the snapshot length.
    cut: bool,
    /// Tunnels entered so far.
    depth: u8,
    /// The VLANs and tunnels walked through so far.
    domain: Domain,
    /// The addresses of the latest IP header (a tunnel's outer endpoints
    /// when a tunnel follows).
    ends: Option<Ends>,
}

/// The address one past the end of `s` (compared, never dereferenced).
fn end_addr(s: &[u8]) -> usize {
    (s.as_ptr() as usize).wrapping_add(s.len())
}

/// Big-endian u16 at `at`, if the bytes are there.
#[inline]
fn be16(s: &[u8], at: usize) -> Option<u16> {
    s.get(at..)?.first_chunk::<2>().map(|b| u16::from_be_bytes(*b))
}

/// The byte at `at`, if there.
#[inline]
fn byte(s: &[u8], at: usize) -> Option<u8> {
    s.get(at).copied()
}

impl<'a> Walker<'a, '_> {
    /// True if `s` runs to the end of a frame the snapshot length cut.
    fn at_cut_end(&self, s: &[u8]) -> bool {
        self.cut && end_addr(s) == self.end
    }

    /// The bucket for a header that does not fit in `s`: truncated when `s`
    /// runs to the end of a frame the snapshot length cut, else `malformed`.
    fn short(&self, s: &[u8], malformed: Reason) -> Reason {
        if self.at_cut_end(s) { Reason::TruncatedHeaders } else { malformed }
    }

    /// The bytes of `s` from `at` on, or the bucket for a short header.
    fn skip(&self, s: &'a [u8], at: usize, malformed: Reason) -> Result<&'a [u8], Reason> {
        s.get(at..).ok_or_else(|| self.short(s, malformed))
    }

    /// Enters one more tunnel level, unless that is one too many; the
    /// tunnel (`layer`, its identity `id`, and the endpoints of the IP
    /// header around it) joins the segment's domain.
    fn enter_tunnel(&mut self, layer: Layer, id: u64) -> Result<(), Reason> {
        if self.depth >= self.cfg.max_tunnel_depth {
            return Err(Reason::TunnelTooDeep);
        }
        self.depth += 1;
        self.domain.push(layer, id);
        if let Some(e) = self.ends {
            self.domain.push_endpoints(e.src, e.dst);
        }
        Ok(())
    }

    /// A VLAN tag's id joins the segment's domain (unless VLANs are left
    /// out of it).
    fn vlan(&mut self, tci: u16) {
        if self.cfg.vlan_in_flow_key {
            self.domain.push_vlan(tci & 0x0fff);
        }
    }

    /// Takes a reassembly buffer for this packet.
    fn take_buf(&mut self) -> Option<&'a mut Vec<u8>> {
        let spare = std::mem::take(&mut self.spare);
        let (first, rest) = spare.split_first_mut()?;
        self.spare = rest;
        Some(first)
    }

    /// Walks the whole packet (`shortcut`: plain Ethernet, IP and TCP by
    /// [`Walker::ethernet_ip_tcp`]).
    #[inline]
    fn run(&mut self, lt: Linktype, data: &'a [u8], shortcut: bool) -> Result<TcpSegment<'a>, Reason> {
        if shortcut
            && lt == Linktype::ETHERNET
            && let Some(seg) = self.ethernet_ip_tcp(data)
        {
            return seg;
        }
        self.steps(lt, data)
    }

    /// Walks the packet one header at a time.
    #[inline(never)]
    fn steps(&mut self, lt: Linktype, data: &'a [u8]) -> Result<TcpSegment<'a>, Reason> {
        let mut next = self.link(lt, data)?;
        // Every step consumes bytes (or hands them to one that does), so
        // this ends.
        loop {
            next = match next {
                Next::Segment(seg) => return Ok(seg),
                Next::Ethernet(s) => self.ethernet(s)?,
                Next::EtherType(t, s) => self.ethertype(t, s)?,
                Next::Llc(s) => self.llc(s)?,
                Next::Ppp(s) => self.ppp(s)?,
                Next::Mpls(s) => self.mpls(s)?,
                Next::Ip(s) => self.ip(s)?,
                Next::Ipv4(s) => self.ipv4(s)?,
                Next::Ipv6(s) => self.ipv6(s)?,
            };
        }
    }

    /// Ethernet II, then IPv4 without options or fragments or IPv6
    /// without extension headers, then TCP: nearly every packet, walked
    /// as the steps walk it (the same segment, the same counts) but
    /// without handing a segment-sized step from one to the next, nor
    /// etherparse's view of the IP header. `None`, having counted
    /// nothing, for any other packet (or an IP length too short for a TCP
    /// header), which the steps walk.
    #[inline]
    fn ethernet_ip_tcp(&mut self, s: &'a [u8]) -> Option<Result<TcpSegment<'a>, Reason>> {
        const IPV4_HEADER: usize = 20;
        const IPV6_HEADER: usize = 40;
        const TCP_HEADER: usize = 20;
        let ip = s.get(link::ETH_HEADER..)?;
        let (ends, hlen, total) = match be16(s, 12)? {
            link::ETHERTYPE_IPV4 => {
                let h = ip.first_chunk::<IPV4_HEADER>()?;
                let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
                // Version 4 with a 20-byte header, TCP, and no flag but
                // "don't fragment" (no more fragments, offset 0).
                if h[0] != 0x45
                    || h[9] != PROTO_TCP
                    || h[6] & 0xbf != 0
                    || h[7] != 0
                    || total < IPV4_HEADER + TCP_HEADER
                {
                    return None;
                }
                let addr = |at: usize| IpAddr::V4(Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]));
                self.stats.layers.ipv4 += 1;
                (Ends { src: addr(12), dst: addr(16) }, IPV4_HEADER, total)
            }
            link::ETHERTYPE_IPV6 => {
                let h = ip.first_chunk::<IPV6_HEADER>()?;
                let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
                if h[0] >> 4 != 6 || h[6] != PROTO_TCP || payload < TCP_HEADER {
                    return None;
                }
                let addr = |at: usize| {
                    let b: [u8; 16] = h.get(at..at + 16).and_then(|b| b.try_into().ok()).unwrap_or_default();
                    IpAddr::V6(Ipv6Addr::from(b))
                };
                self.stats.layers.ipv6 += 1;
                (Ends { src: addr(8), dst: addr(24) }, IPV6_HEADER, IPV6_HEADER + payload)
            }
            _ => return None,
        };
        self.stats.layers.ethernet += 1;
        Some(self.ip_extent(ip, hlen, total).and_then(|(payload, declared)| self.tcp_segment(ends, payload, declared)))
    }

    /// IPv4 or IPv6 by the version nibble.
    fn ip(&mut self, s: &'a [u8]) -> Step<'a> {
        match byte(s, 0).map(|b| b >> 4) {
            Some(4) => self.ipv4(s),
            Some(6) => self.ipv6(s),
            Some(_) => Err(Reason::MalformedIp),
            None => Err(self.short(s, Reason::MalformedIp)),
        }
    }

    /// Splits an IP packet at its header (`hlen` bytes) and the length its
    /// header announces (`total`, 0 = take what was captured): the payload
    /// bytes present and the payload length on the wire.
    fn ip_extent(&mut self, s: &'a [u8], hlen: usize, total: usize) -> Result<(&'a [u8], usize), Reason> {
        let total = if total == 0 {
            self.stats.anomalies.ip_length_zero += 1;
            s.len()
        } else {
            total
        };
        if total < hlen {
            return Err(Reason::MalformedIp);
        }
        let end = if total > s.len() {
            if !self.at_cut_end(s) {
                self.stats.anomalies.ip_length_beyond_frame += 1;
            }
            s.len()
        } else {
            if total < s.len() {
                self.stats.anomalies.ip_trailing_bytes += 1;
            }
            total
        };
        let payload = s.get(hlen..end).ok_or(Reason::MalformedIp)?;
        Ok((payload, total - hlen))
    }

    /// An IPv4 header and what it carries.
    fn ipv4(&mut self, s: &'a [u8]) -> Step<'a> {
        let h = match Ipv4HeaderSlice::from_slice(s) {
            Ok(h) => h,
            Err(ipv4::HeaderSliceError::Len(_)) => return Err(self.short(s, Reason::MalformedIp)),
            Err(ipv4::HeaderSliceError::Content(_)) => return Err(Reason::MalformedIp),
        };
        self.stats.layers.ipv4 += 1;
        let (payload, declared) = self.ip_extent(s, h.slice().len(), usize::from(h.total_len()))?;
        let ends =
            Ends { src: IpAddr::V4(Ipv4Addr::from(h.source())), dst: IpAddr::V4(Ipv4Addr::from(h.destination())) };
        let proto = h.protocol().0;
        let offset = usize::from(h.fragments_offset().value()) * 8;
        if offset != 0 || h.more_fragments() {
            self.stats.fragments.fragments_v4 += 1;
            let key = FragKey::V4 { src: h.source(), dst: h.destination(), proto, id: h.identification() };
            return self.fragment(ends, key, offset, h.more_fragments(), proto, payload, declared);
        }
        self.upper(ends, proto, payload, declared, false, false)
    }

    /// An IPv6 header and what it carries.
    fn ipv6(&mut self, s: &'a [u8]) -> Step<'a> {
        let h = match Ipv6HeaderSlice::from_slice(s) {
            Ok(h) => h,
            Err(ipv6::HeaderSliceError::Len(_)) => return Err(self.short(s, Reason::MalformedIp)),
            Err(ipv6::HeaderSliceError::Content(_)) => return Err(Reason::MalformedIp),
        };
        self.stats.layers.ipv6 += 1;
        let hlen = h.slice().len();
        let next = h.next_header().0;
        // Payload length 0 with something to follow: a jumbogram or a
        // segmentation-offload capture; the captured bytes are the length.
        let total = match h.payload_length() {
            0 if next != NO_NEXT_HEADER => 0,
            n => hlen + usize::from(n),
        };
        let (payload, declared) = self.ip_extent(s, hlen, total)?;
        let ends =
            Ends { src: IpAddr::V6(Ipv6Addr::from(h.source())), dst: IpAddr::V6(Ipv6Addr::from(h.destination())) };
        self.upper(ends, next, payload, declared, true, false)
    }

    /// Hands a fragment to the pool; on completion, walks the datagram.
    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        ends: Ends,
        key: FragKey,
        offset: usize,
        more: bool,
        proto: u8,
        data: &'a [u8],
        declared: usize,
    ) -> Step<'a> {
        if data.len() < declared {
            // Cut by the snapshot length: the datagram could never be whole.
            self.stats.fragments.truncated += 1;
            return Err(Reason::FragmentDropped);
        }
        let Some(buf) = self.take_buf() else {
            self.stats.fragments.invalid += 1;
            return Err(Reason::FragmentDropped);
        };
        let frag = Fragment { key, offset, more, proto, data };
        let v6 = matches!(key, FragKey::V6 { .. });
        match self.defrag.insert(frag, self.ts, self.cfg, &mut self.stats.fragments, &mut *buf) {
            Insert::Held => Err(Reason::FragmentHeld),
            Insert::Dropped => Err(Reason::FragmentDropped),
            Insert::Complete(proto) => {
                let whole: &'a [u8] = buf;
                self.upper(ends, proto, whole, whole.len(), v6, true)
            }
        }
    }

    /// Walks IPv6 extension headers and IP authentication headers, then
    /// dispatches on the upper-layer protocol. `s` holds the bytes present
    /// (never more than `declared`), `declared` the length on the wire.
    fn upper(
        &mut self,
        ends: Ends,
        mut proto: u8,
        mut s: &'a [u8],
        mut declared: usize,
        v6: bool,
        reassembled: bool,
    ) -> Step<'a> {
        // A tunnel further in takes these ends into its domain
        // (`enter_tunnel`); plain TCP, nearly every packet, needs them
        // only for its segment (storing them cost 22 instructions a packet).
        if proto != PROTO_TCP {
            self.ends = Some(ends);
        }
        loop {
            let hlen = match proto {
                PROTO_TCP => return self.tcp(ends, s, declared),
                PROTO_UDP => return self.udp(s, declared),
                PROTO_ICMP => return Err(Reason::Icmp),
                PROTO_ICMPV6 => return Err(Reason::Icmpv6),
                PROTO_GRE => return self.gre(s),
                PROTO_IPIP => {
                    self.enter_tunnel(Layer::IpInIp, 4)?;
                    self.stats.layers.ip_in_ip += 1;
                    return Ok(Next::Ipv4(s));
                }
                PROTO_IPV6 => {
                    self.enter_tunnel(Layer::IpInIp, 6)?;
                    self.stats.layers.ip_in_ip += 1;
                    return Ok(Next::Ipv6(s));
                }
                PROTO_AH => {
                    let h = match IpAuthHeaderSlice::from_slice(s) {
                        Ok(h) => h,
                        Err(ip_auth::HeaderSliceError::Len(_)) => {
                            return Err(self.short(s, Reason::MalformedIp));
                        }
                        Err(ip_auth::HeaderSliceError::Content(_)) => {
                            return Err(Reason::MalformedIp);
                        }
                    };
                    if v6 {
                        self.stats.layers.ipv6_ext_headers += 1;
                    } else {
                        self.stats.layers.ipv4_auth_headers += 1;
                    }
                    proto = h.next_header().0;
                    h.slice().len()
                }
                PROTO_FRAGMENT if v6 => {
                    let h = Ipv6FragmentHeaderSlice::from_slice(s).map_err(|_| self.short(s, Reason::MalformedIp))?;
                    self.stats.layers.ipv6_ext_headers += 1;
                    let hlen = h.slice().len();
                    let rest = s.get(hlen..).ok_or(Reason::MalformedIp)?;
                    let rest_declared = declared.checked_sub(hlen).ok_or(Reason::MalformedIp)?;
                    let offset = usize::from(h.fragment_offset().value()) * 8;
                    let more = h.more_fragments();
                    if offset != 0 || more {
                        if reassembled {
                            return Err(Reason::MalformedIp);
                        }
                        self.stats.fragments.fragments_v6 += 1;
                        let (IpAddr::V6(src), IpAddr::V6(dst)) = (ends.src, ends.dst) else {
                            return Err(Reason::MalformedIp);
                        };
                        let key = FragKey::V6 { src: src.octets(), dst: dst.octets(), id: h.identification() };
                        let nh = h.next_header().0;
                        return self.fragment(ends, key, offset, more, nh, rest, rest_declared);
                    }
                    // An atomic fragment (RFC 6946): nothing to reassemble.
                    proto = h.next_header().0;
                    hlen
                }
                p if v6 && is_generic_ext(p) => {
                    let h = Ipv6RawExtHeaderSlice::from_slice(s).map_err(|_| self.short(s, Reason::MalformedIp))?;
                    self.stats.layers.ipv6_ext_headers += 1;
                    proto = h.next_header().0;
                    h.slice().len()
                }
                _ => return Err(Reason::OtherIpProtocol),
            };
            declared = declared.checked_sub(hlen).ok_or(Reason::MalformedIp)?;
            s = s.get(hlen..).ok_or(Reason::MalformedIp)?;
        }
    }

    /// A TCP header: the segment.
    fn tcp(&mut self, ends: Ends, s: &'a [u8], declared: usize) -> Step<'a> {
        self.tcp_segment(ends, s, declared).map(Next::Segment)
    }

    /// The segment of a TCP header and what follows it.
    #[inline(always)]
    fn tcp_segment(&mut self, ends: Ends, s: &'a [u8], declared: usize) -> Result<TcpSegment<'a>, Reason> {
        let h = match TcpHeaderSlice::from_slice(s) {
            Ok(h) => h,
            Err(tcp::HeaderSliceError::Len(_)) => return Err(self.short(s, Reason::MalformedTcp)),
            Err(tcp::HeaderSliceError::Content(_)) => return Err(Reason::MalformedTcp),
        };
        let hlen = h.slice().len();
        let payload_len = declared.checked_sub(hlen).ok_or(Reason::MalformedTcp)?;
        let payload = s.get(hlen..).ok_or(Reason::MalformedTcp)?;
        let flags = TcpFlags(byte(h.slice(), 13).unwrap_or(0));
        // Window scale, MSS and SACK-permitted only mean something on a SYN
        // (RFC 7323 2.2: ignore window scale elsewhere).
        let options = if flags.syn() { tcp_options(h.options()) } else { TcpOptions::default() };
        Ok(TcpSegment {
            frame: self.frame,
            ts: self.ts,
            src: SocketAddr::new(ends.src, h.source_port()),
            dst: SocketAddr::new(ends.dst, h.destination_port()),
            seq: h.sequence_number(),
            ack: h.acknowledgment_number(),
            flags,
            window: h.window_size(),
            options,
            payload,
            payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
            domain: self.domain,
        })
    }

    /// A UDP header: a tunnel on a known port (either side), or Teredo
    /// recognised by content on any port, else counted.
    fn udp(&mut self, s: &'a [u8], declared: usize) -> Step<'a> {
        let (Some(sport), Some(dport), Some(ulen), true) = (be16(s, 0), be16(s, 2), be16(s, 4), s.len() >= UDP_HEADER)
        else {
            return Err(self.short(s, Reason::Udp));
        };
        // The UDP length may trim the datagram further (0 = jumbogram).
        let ulen = usize::from(ulen);
        let sane = (UDP_HEADER..=declared).contains(&ulen);
        let end = if sane { ulen.min(s.len()) } else { s.len() };
        let body = s.get(UDP_HEADER..end).ok_or(Reason::Udp)?;
        for port in [dport, sport] {
            if let Some(next) = self.udp_tunnel(port, body)? {
                return Ok(next);
            }
        }
        // Teredo's own port was looked at above, more leniently.
        if sane
            && !tunnel::is_teredo_port(sport, dport)
            && let Some(next) = self.teredo_by_content(body, ulen - UDP_HEADER)?
        {
            return Ok(next);
        }
        Err(Reason::Udp)
    }
}

/// Parses the TCP options pov keeps; stops quietly at anything malformed.
fn tcp_options(mut o: &[u8]) -> TcpOptions {
    let mut out = TcpOptions::default();
    while let Some((&kind, rest)) = o.split_first() {
        match kind {
            0 => break,
            1 => {
                o = rest;
                continue;
            }
            _ => {}
        }
        let Some(&len) = rest.first() else { break };
        let len = usize::from(len);
        let Some(body) = o.get(2..len) else { break };
        match (kind, body) {
            (2, &[a, b]) => out.mss = Some(u16::from_be_bytes([a, b])),
            // RFC 7323 2.3: a shift above 14 is used as 14.
            (3, &[shift]) => out.wscale = Some(shift.min(14)),
            (4, &[]) => out.sack_permitted = true,
            _ => {}
        }
        o = o.get(len..).unwrap_or(&[]);
    }
    out
}

/// IPv6 extension headers in the generic next-header/length format.
fn is_generic_ext(p: u8) -> bool {
    matches!(p, 0 | 43 | 60 | 135 | 139 | 140 | 253 | 254)
}

const PROTO_ICMP: u8 = 1;
const PROTO_IPIP: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_GRE: u8 = 47;
const PROTO_AH: u8 = 51;
const PROTO_ICMPV6: u8 = 58;
const NO_NEXT_HEADER: u8 = 59;
const UDP_HEADER: usize = 8;
