//! Link layers: the capture's link type, Ethernet and what an ethertype
//! names (VLAN tags, MPLS, PPPoE), LLC/SNAP and PPP.

use super::{Next, Reason, Step, Walker, be16, byte};
use crate::packet::Linktype;

pub(super) const ETH_HEADER: usize = 14;
/// Largest IEEE 802.3 length; type fields start at 0x0600.
const MAX_8023_LEN: u16 = 1500;
const MIN_ETHERTYPE: u16 = 0x0600;

pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_ARP: u16 = 0x0806;
pub(super) const ETHERTYPE_TEB: u16 = 0x6558;
pub(super) const ETHERTYPE_VLAN: u16 = 0x8100;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(super) const ETHERTYPE_MPLS: u16 = 0x8847;
pub(super) const ETHERTYPE_MPLS_MCAST: u16 = 0x8848;
pub(super) const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
pub(super) const ETHERTYPE_QINQ: u16 = 0x88a8;
pub(super) const ETHERTYPE_LLDP: u16 = 0x88cc;
pub(super) const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Linux `ARPHRD_NETLINK`: the cooked header carries a netlink message.
const ARPHRD_NETLINK: u16 = 824;

impl<'a> Walker<'a, '_> {
    /// The outermost header, by the capture's link type.
    pub(super) fn link(&mut self, lt: Linktype, s: &'a [u8]) -> Step<'a> {
        match lt {
            Linktype::ETHERNET => Ok(Next::Ethernet(s)),
            Linktype::RAW | Linktype::RAW_12 | Linktype::RAW_14 => Ok(Next::Ip(s)),
            Linktype::IPV4 => Ok(Next::Ipv4(s)),
            Linktype::IPV6 => Ok(Next::Ipv6(s)),
            Linktype::NULL | Linktype::LOOP => self.loopback(s),
            Linktype::LINUX_SLL => self.sll(s),
            Linktype::LINUX_SLL2 => self.sll2(s),
            Linktype::NFLOG => self.nflog(s),
            Linktype::PPP | Linktype::PPP_HDLC => self.ppp_link(s),
            Linktype::PPP_ETHER => self.pppoe(s),
            _ => Err(Reason::UnsupportedLinktype),
        }
    }

    /// Ethernet II, or IEEE 802.3 when the type field is a length.
    pub(super) fn ethernet(&mut self, s: &'a [u8]) -> Step<'a> {
        let Some(t) = be16(s, 12) else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        let rest = self.skip(s, ETH_HEADER, Reason::MalformedLink)?;
        self.stats.layers.ethernet += 1;
        self.type_or_length(t, rest)
    }

    /// The type field of an Ethernet header or VLAN tag: an ethertype, or
    /// an IEEE 802.3 length (up to 1500) followed by an LLC header.
    fn type_or_length(&mut self, t: u16, s: &'a [u8]) -> Step<'a> {
        if t <= MAX_8023_LEN {
            // The length covers the LLC header and its payload; trim to it
            // when it is shorter than what follows (padding).
            Ok(Next::Llc(s.get(..usize::from(t)).unwrap_or(s)))
        } else if t < MIN_ETHERTYPE {
            Err(Reason::MalformedLink)
        } else {
            Ok(Next::EtherType(t, s))
        }
    }

    /// A payload named by an ethertype (from Ethernet, a VLAN tag, SNAP, a
    /// cooked header, GRE or Geneve).
    pub(super) fn ethertype(&mut self, t: u16, s: &'a [u8]) -> Step<'a> {
        match t {
            ETHERTYPE_IPV4 => Ok(Next::Ipv4(s)),
            ETHERTYPE_IPV6 => Ok(Next::Ipv6(s)),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                // Tag control (2 bytes), then the next type or length.
                let (Some(tci), Some(inner), Some(rest)) = (be16(s, 0), be16(s, 2), s.get(4..)) else {
                    return Err(self.short(s, Reason::MalformedLink));
                };
                self.vlan(tci);
                if t == ETHERTYPE_VLAN {
                    self.stats.layers.vlan += 1;
                } else {
                    self.stats.layers.qinq += 1;
                }
                self.type_or_length(inner, rest)
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MCAST => Ok(Next::Mpls(s)),
            ETHERTYPE_PPPOE_SESSION => self.pppoe(s),
            ETHERTYPE_TEB => Ok(Next::Ethernet(s)),
            ETHERTYPE_ARP => Err(Reason::Arp),
            ETHERTYPE_LLDP => Err(Reason::Lldp),
            _ => Err(Reason::OtherEthertype),
        }
    }

    /// IEEE 802.2 LLC: SNAP with an ethertype goes on, the rest is counted.
    pub(super) fn llc(&mut self, s: &'a [u8]) -> Step<'a> {
        let Some(head) = s.first_chunk::<3>() else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        if *head != [0xaa, 0xaa, 0x03] {
            return Err(Reason::Llc);
        }
        // SNAP: OUI (3 bytes), then protocol id.
        let (Some(oui), Some(pid)) = (s.get(3..6), be16(s, 6)) else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        // OUI 0 (RFC 1042) and 00-00-F8 (802.1H) carry an ethertype; others
        // (Cisco CDP/VTP, ...) their own protocols.
        if oui != [0, 0, 0] && oui != [0, 0, 0xf8] {
            return Err(Reason::Llc);
        }
        let rest = self.skip(s, 8, Reason::MalformedLink)?;
        self.stats.layers.llc_snap += 1;
        Ok(Next::EtherType(pid, rest))
    }

    /// PPPoE session header (RFC 2516), then PPP.
    pub(super) fn pppoe(&mut self, s: &'a [u8]) -> Step<'a> {
        let (Some(vt), Some(code), Some(len)) = (byte(s, 0), byte(s, 1), be16(s, 4)) else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        // Version 1, type 1; session data has code 0.
        if vt != 0x11 || code != 0 {
            return Err(Reason::MalformedLink);
        }
        let rest = self.skip(s, 6, Reason::MalformedLink)?;
        self.stats.layers.pppoe += 1;
        Ok(Next::Ppp(rest.get(..usize::from(len)).unwrap_or(rest)))
    }

    /// PPP link types 9 and 50: PPP (with optional FF 03), or Cisco HDLC,
    /// which libpcap also files under 50.
    fn ppp_link(&mut self, s: &'a [u8]) -> Step<'a> {
        // Cisco HDLC: unicast (0x0f) or broadcast (0x8f) address, control
        // 0, then an ethertype.
        if let Some(0x0f | 0x8f) = byte(s, 0) {
            let (Some(0), Some(t)) = (byte(s, 1), be16(s, 2)) else {
                return Err(self.short(s, Reason::MalformedLink));
            };
            let rest = self.skip(s, 4, Reason::MalformedLink)?;
            return Ok(Next::EtherType(t, rest));
        }
        Ok(Next::Ppp(s))
    }

    /// A PPP frame: optional address/control FF 03, then the protocol field
    /// (one byte when compressed, RFC 1661 6.5).
    pub(super) fn ppp(&mut self, s: &'a [u8]) -> Step<'a> {
        // 0xff cannot start a protocol field (0x00ff is invalid): it is the
        // all-stations address, and UI control (0x03) must follow.
        let s = match (byte(s, 0), byte(s, 1)) {
            (Some(0xff), Some(0x03)) => s.get(2..).unwrap_or_default(),
            (Some(0xff), Some(_)) => return Err(Reason::MalformedLink),
            (Some(0xff), None) => return Err(self.short(s, Reason::MalformedLink)),
            _ => s,
        };
        let Some(first) = byte(s, 0) else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        let (proto, hlen) = if first & 1 == 1 {
            (u16::from(first), 1)
        } else {
            match be16(s, 0) {
                Some(p) => (p, 2),
                None => return Err(self.short(s, Reason::MalformedLink)),
            }
        };
        let rest = self.skip(s, hlen, Reason::MalformedLink)?;
        self.stats.layers.ppp += 1;
        match proto {
            0x0021 => Ok(Next::Ipv4(rest)),
            0x0057 => Ok(Next::Ipv6(rest)),
            0x0281 | 0x0283 => Ok(Next::Mpls(rest)),
            _ => Err(Reason::OtherLinkPayload),
        }
    }

    /// An MPLS label stack: pop to bottom-of-stack, then IPv4/IPv6 by the
    /// first nibble, or an Ethernet pseudowire after a control word of 0000.
    pub(super) fn mpls(&mut self, s: &'a [u8]) -> Step<'a> {
        let mut rest = s;
        loop {
            let Some(&[_, _, tc_bos, _]) = rest.first_chunk::<4>() else {
                return Err(self.short(rest, Reason::MalformedLink));
            };
            let bottom = tc_bos & 1 == 1;
            rest = rest.get(4..).unwrap_or_default();
            if bottom {
                break;
            }
        }
        self.stats.layers.mpls += 1;
        match byte(rest, 0).map(|b| b >> 4) {
            Some(4) => Ok(Next::Ipv4(rest)),
            Some(6) => Ok(Next::Ipv6(rest)),
            Some(0) => {
                let eth = self.skip(rest, 4, Reason::MalformedLink)?;
                self.stats.layers.mpls_pw += 1;
                Ok(Next::Ethernet(eth))
            }
            Some(_) => Err(Reason::OtherLinkPayload),
            None => Err(self.short(rest, Reason::MalformedLink)),
        }
    }

    /// BSD loopback: a 4-byte address family, in the capturing host's byte
    /// order for NULL and in network order for LOOP; both orders are
    /// accepted since families fit in 16 bits.
    fn loopback(&mut self, s: &'a [u8]) -> Step<'a> {
        let Some(fam) = s.first_chunk::<4>() else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        let le = u32::from_le_bytes(*fam);
        let fam = if le & 0xffff == 0 { le.swap_bytes() } else { le };
        let rest = self.skip(s, 4, Reason::MalformedLink)?;
        self.stats.layers.loopback += 1;
        match fam {
            2 => Ok(Next::Ipv4(rest)),
            // AF_INET6 on NetBSD/OpenBSD, FreeBSD, Darwin.
            24 | 28 | 30 => Ok(Next::Ipv6(rest)),
            _ => Err(Reason::OtherLinkPayload),
        }
    }

    /// Linux cooked capture v1: packet type, ARPHRD type, address length,
    /// 8 address bytes, protocol.
    fn sll(&mut self, s: &'a [u8]) -> Step<'a> {
        let (Some(hatype), Some(proto)) = (be16(s, 2), be16(s, 14)) else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        let rest = self.skip(s, 16, Reason::MalformedLink)?;
        self.stats.layers.sll += 1;
        self.sll_protocol(hatype, proto, rest)
    }

    /// Linux cooked capture v2: protocol, reserved, interface index, ARPHRD
    /// type, packet type, address length, 8 address bytes.
    fn sll2(&mut self, s: &'a [u8]) -> Step<'a> {
        let (Some(proto), Some(hatype)) = (be16(s, 0), be16(s, 8)) else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        let rest = self.skip(s, 20, Reason::MalformedLink)?;
        self.stats.layers.sll += 1;
        self.sll_protocol(hatype, proto, rest)
    }

    /// The protocol field of a cooked header: an ethertype, or one of the
    /// Linux `ETH_P_*` values below 0x0600.
    fn sll_protocol(&mut self, hatype: u16, proto: u16, rest: &'a [u8]) -> Step<'a> {
        if hatype == ARPHRD_NETLINK {
            return Err(Reason::OtherLinkPayload);
        }
        match proto {
            // ETH_P_802_2: an LLC header follows.
            0x0004 => Ok(Next::Llc(rest)),
            // ETH_P_802_3: Novell raw 802.3.
            0x0001 => Err(Reason::Llc),
            // ETH_P_AX25, CAN, IEEE 802.15.4, ...
            p if p < MIN_ETHERTYPE => Err(Reason::OtherLinkPayload),
            p => Ok(Next::EtherType(p, rest)),
        }
    }

    /// NFLOG: a 4-byte header (family, version, resource id), then TLVs
    /// whose length and type are in the capturing host's byte order, each
    /// padded to 4 bytes; the packet is the payload TLV (type 9).
    fn nflog(&mut self, s: &'a [u8]) -> Step<'a> {
        const PAYLOAD: u16 = 9;
        const TYPE_MASK: u16 = 0x3fff; // without NLA_F_NESTED/NET_BYTEORDER
        let Some(family) = byte(s, 0) else {
            return Err(self.short(s, Reason::MalformedLink));
        };
        let mut tlvs = self.skip(s, 4, Reason::MalformedLink)?;
        self.stats.layers.nflog += 1;
        // The byte order is the one in which the first TLV's type is small
        // (NFULA_* types are below 0x100); if that cannot tell, the one in
        // which its length fits.
        let little = match tlvs.first_chunk::<4>() {
            Some(&[l0, l1, t0, t1]) => {
                let le_small = u16::from_le_bytes([t0, t1]) & TYPE_MASK < 0x100;
                let be_small = u16::from_be_bytes([t0, t1]) & TYPE_MASK < 0x100;
                if le_small != be_small {
                    le_small
                } else {
                    let len = usize::from(u16::from_le_bytes([l0, l1]));
                    (4..=tlvs.len()).contains(&len)
                }
            }
            None => true,
        };
        let rd = |b: [u8; 2]| {
            if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) }
        };
        while !tlvs.is_empty() {
            let Some(&[l0, l1, t0, t1]) = tlvs.first_chunk::<4>() else {
                return Err(self.short(tlvs, Reason::MalformedLink));
            };
            let len = usize::from(rd([l0, l1]));
            if len < 4 {
                return Err(Reason::MalformedLink);
            }
            if rd([t0, t1]) & TYPE_MASK == PAYLOAD {
                // The payload TLV is usually last; the snapshot length may
                // have cut it.
                let value = match tlvs.get(4..len) {
                    Some(v) => v,
                    None if self.at_cut_end(tlvs) => tlvs.get(4..).unwrap_or_default(),
                    None => return Err(Reason::MalformedLink),
                };
                return match family {
                    2 => Ok(Next::Ipv4(value)),
                    10 => Ok(Next::Ipv6(value)),
                    _ => Ok(Next::Ip(value)),
                };
            }
            let padded = len.div_ceil(4) * 4;
            tlvs = match tlvs.get(padded..) {
                Some(t) => t,
                // The last TLV may lack its padding.
                None if tlvs.len() >= len => tlvs.get(tlvs.len()..).unwrap_or_default(),
                None => return Err(self.short(tlvs, Reason::MalformedLink)),
            };
        }
        // No payload: unless the snapshot length cut it off.
        Err(self.short(tlvs, Reason::OtherLinkPayload))
    }
}
