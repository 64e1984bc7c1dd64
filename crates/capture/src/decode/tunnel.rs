//! Tunnels: GRE (with ERSPAN and PPTP), and the UDP encapsulations of
//! traffic mirroring and mobile networks (VXLAN, Geneve, GTP-U, Teredo,
//! AYIYA). Each UDP tunnel is looked for on its registered port; Teredo
//! also on any other port, by content.

use super::{Next, Reason, Step, Walker, be16, byte};
use crate::packet::Layer;

const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
/// Acknowledgment present (enhanced GRE, version 1).
const GRE_A: u16 = 0x0080;
const GRE_VERSION: u16 = 0x0007;

const GRE_PROTO_ERSPAN_2: u16 = 0x88be;
const GRE_PROTO_ERSPAN_3: u16 = 0x22eb;
const GRE_PROTO_PPP: u16 = 0x880b;
/// Transparent Ethernet bridging: with a key, NVGRE (RFC 7637).
const GRE_PROTO_TEB: u16 = 0x6558;

const PORT_VXLAN: u16 = 4789;
const PORT_GENEVE: u16 = 6081;
const PORT_GTPU: u16 = 2152;
const PORT_TEREDO: u16 = 3544;
const PORT_AYIYA: u16 = 5072;

/// Every Teredo client's address is in 2001:0000::/32 (RFC 4380 section
/// 2.6), and every packet a client sends or receives has it on one side.
const TEREDO_PREFIX: [u8; 4] = [0x20, 0x01, 0x00, 0x00];
const IPV6_HEADER: usize = 40;

/// A UDP tunnel's verdict: `Ok(None)` when the payload does not look like
/// the tunnel its port suggests (it is then plain UDP).
type Maybe<'a> = Result<Option<Next<'a>>, Reason>;

impl<'a> Walker<'a, '_> {
    /// GRE (RFC 2784/2890, and RFC 1701 routing), or enhanced GRE version 1
    /// (PPTP, RFC 2637).
    pub(super) fn gre(&mut self, s: &'a [u8]) -> Step<'a> {
        let (Some(flags), Some(proto)) = (be16(s, 0), be16(s, 2)) else {
            return Err(self.short(s, Reason::MalformedTunnel));
        };
        let version = flags & GRE_VERSION;
        let mut hlen = 4usize;
        // The tunnel's identity: its key (RFC 2890), if any.
        let mut key = u64::MAX;
        match version {
            0 => {
                // Checksum and offset are present together if either the
                // checksum or the routing bit is set.
                if flags & (GRE_C | GRE_R) != 0 {
                    hlen += 4;
                }
                if flags & GRE_K != 0 {
                    let (Some(hi), Some(lo)) = (be16(s, hlen), be16(s, hlen + 2)) else {
                        return Err(self.short(s, Reason::MalformedTunnel));
                    };
                    let k = u32::from(hi) << 16 | u32::from(lo);
                    // NVGRE: the virtual subnet id; the low byte is a
                    // per-flow entropy value, not part of the identity.
                    key = u64::from(if proto == GRE_PROTO_TEB { k >> 8 } else { k });
                    hlen += 4;
                }
                if flags & GRE_S != 0 {
                    hlen += 4;
                }
                if flags & GRE_R != 0 {
                    // Source route entries up to a NULL entry (family 0,
                    // length 0); each consumes at least 4 bytes.
                    loop {
                        let (Some(family), Some(len)) = (be16(s, hlen), byte(s, hlen + 3)) else {
                            return Err(self.short(s, Reason::MalformedTunnel));
                        };
                        hlen += 4 + usize::from(len);
                        if family == 0 && len == 0 {
                            break;
                        }
                    }
                }
            }
            1 => {
                // The key (payload length, call id) is mandatory.
                if flags & GRE_K == 0 || proto != GRE_PROTO_PPP {
                    return Err(Reason::MalformedTunnel);
                }
                hlen = 8;
                if flags & GRE_S != 0 {
                    hlen += 4;
                }
                if flags & GRE_A != 0 {
                    hlen += 4;
                }
            }
            _ => return Err(Reason::MalformedTunnel),
        }
        let rest = self.skip(s, hlen, Reason::MalformedTunnel)?;
        self.stats.layers.gre += 1;
        // PPTP's key holds the payload length and the peer's call id (each
        // direction its own): no identity beyond the endpoints.
        self.enter_tunnel(Layer::Gre, key)?;
        match proto {
            GRE_PROTO_ERSPAN_2 => {
                self.stats.layers.erspan += 1;
                // Without a sequence number this is ERSPAN type I: no
                // ERSPAN header, the mirrored frame follows directly.
                if flags & GRE_S == 0 {
                    return Ok(Next::Ethernet(rest));
                }
                // Type II: version/VLAN, COS/en/T/session, reserved/index.
                let eth = self.skip(rest, 8, Reason::MalformedTunnel)?;
                Ok(Next::Ethernet(eth))
            }
            GRE_PROTO_ERSPAN_3 => {
                self.stats.layers.erspan += 1;
                self.erspan3(rest)
            }
            GRE_PROTO_PPP => {
                // PPTP acknowledgments carry no payload.
                if version == 1 && flags & GRE_S == 0 {
                    return Err(Reason::OtherLinkPayload);
                }
                Ok(Next::Ppp(rest))
            }
            t => Ok(Next::EtherType(t, rest)),
        }
    }

    /// ERSPAN type III: 12-byte header, plus an 8-byte platform-specific
    /// subheader when the O bit is set; the frame type says Ethernet or IP.
    fn erspan3(&mut self, s: &'a [u8]) -> Step<'a> {
        let (Some(b10), Some(b11)) = (byte(s, 10), byte(s, 11)) else {
            return Err(self.short(s, Reason::MalformedTunnel));
        };
        let hlen = if b11 & 0x01 != 0 { 20 } else { 12 };
        let rest = self.skip(s, hlen, Reason::MalformedTunnel)?;
        match (b10 >> 2) & 0x1f {
            0 => Ok(Next::Ethernet(rest)),
            2 => Ok(Next::Ip(rest)),
            _ => Err(Reason::OtherLinkPayload),
        }
    }

    /// The UDP tunnel registered on `port`, if the payload fits it.
    pub(super) fn udp_tunnel(&mut self, port: u16, s: &'a [u8]) -> Maybe<'a> {
        match port {
            PORT_VXLAN => self.vxlan(s),
            PORT_GENEVE => self.geneve(s),
            PORT_GTPU => self.gtpu(s),
            PORT_TEREDO => self.teredo(s),
            PORT_AYIYA => self.ayiya(s),
            _ => Ok(None),
        }
    }

    /// Too short to tell whether this is the tunnel: truncated if the
    /// snapshot length is to blame, else plain UDP.
    fn unknown(&self, s: &[u8]) -> Maybe<'a> {
        if self.at_cut_end(s) { Err(Reason::TruncatedHeaders) } else { Ok(None) }
    }

    /// VXLAN (RFC 7348): flags with the I bit, VNI, then Ethernet.
    fn vxlan(&mut self, s: &'a [u8]) -> Maybe<'a> {
        let Some(flags) = byte(s, 0) else {
            return self.unknown(s);
        };
        if flags & 0x08 == 0 {
            return Ok(None);
        }
        let eth = self.skip(s, 8, Reason::MalformedTunnel)?;
        self.stats.layers.vxlan += 1;
        self.enter_tunnel(Layer::Vxlan, vni(s))?;
        Ok(Some(Next::Ethernet(eth)))
    }

    /// Geneve (RFC 8926): version 0, options, then the payload named by an
    /// ethertype (0x6558 for Ethernet).
    fn geneve(&mut self, s: &'a [u8]) -> Maybe<'a> {
        let Some(b0) = byte(s, 0) else {
            return self.unknown(s);
        };
        if b0 >> 6 != 0 {
            return Ok(None);
        }
        let (Some(proto), true) = (be16(s, 2), s.len() >= 8) else {
            return Err(self.short(s, Reason::MalformedTunnel));
        };
        let options = usize::from(b0 & 0x3f) * 4;
        let rest = self.skip(s, 8 + options, Reason::MalformedTunnel)?;
        self.stats.layers.geneve += 1;
        self.enter_tunnel(Layer::Geneve, vni(s))?;
        Ok(Some(Next::EtherType(proto, rest)))
    }

    /// GTP-U (3GPP TS 29.281), version 1: an 8-byte header, 4 more bytes
    /// when any of E/S/PN is set, the extension header chain when E is,
    /// then for a T-PDU the user's IP packet.
    fn gtpu(&mut self, s: &'a [u8]) -> Maybe<'a> {
        const FLAG_E: u8 = 0x04;
        const FLAGS_OPTIONAL: u8 = 0x07;
        const T_PDU: u8 = 0xff;
        let Some(b0) = byte(s, 0) else {
            return self.unknown(s);
        };
        // Version 1, protocol type 1 (GTP, not GTP').
        if b0 >> 5 != 1 || b0 & 0x10 == 0 {
            return Ok(None);
        }
        let (Some(msg), Some(len), true) = (byte(s, 1), be16(s, 2), s.len() >= 8) else {
            return Err(self.short(s, Reason::MalformedTunnel));
        };
        let mut hlen = 8usize;
        if b0 & FLAGS_OPTIONAL != 0 {
            hlen = 12;
            if b0 & FLAG_E != 0 {
                let Some(mut next) = byte(s, 11) else {
                    return Err(self.short(s, Reason::MalformedTunnel));
                };
                // Each extension: length in 4-byte units (covering the
                // length and next-type bytes), content, next type.
                while next != 0 {
                    let Some(units) = byte(s, hlen) else {
                        return Err(self.short(s, Reason::MalformedTunnel));
                    };
                    if units == 0 {
                        return Err(Reason::MalformedTunnel);
                    }
                    hlen += usize::from(units) * 4;
                    let Some(n) = byte(s, hlen - 1) else {
                        return Err(self.short(s, Reason::MalformedTunnel));
                    };
                    next = n;
                }
            }
        }
        let rest = self.skip(s, hlen, Reason::MalformedTunnel)?;
        // The length field counts everything after the first 8 bytes.
        let Some(body_len) = (8 + usize::from(len)).checked_sub(hlen) else {
            return Err(Reason::MalformedTunnel);
        };
        let rest = rest.get(..body_len).unwrap_or(rest);
        self.stats.layers.gtpu += 1;
        if msg != T_PDU {
            // Echo, error indication, end marker: signalling, no user data.
            return Err(Reason::OtherLinkPayload);
        }
        // The TEID names the receiving end (each direction its own), so it
        // is left out: the endpoints identify the tunnel.
        self.enter_tunnel(Layer::Gtpu, 0)?;
        match byte(rest, 0).map(|b| b >> 4) {
            Some(4) => Ok(Some(Next::Ipv4(rest))),
            Some(6) => Ok(Some(Next::Ipv6(rest))),
            Some(_) => Err(Reason::OtherLinkPayload),
            None => Err(self.short(rest, Reason::MalformedTunnel)),
        }
    }

    /// Teredo (RFC 4380): IPv6, optionally after an authentication and/or
    /// an origin indication header.
    fn teredo(&mut self, s: &'a [u8]) -> Maybe<'a> {
        let mut rest = s;
        let mut auth = false;
        let mut origin = false;
        loop {
            match rest.first_chunk::<2>() {
                Some(&[b, _]) if b >> 4 == 6 => break,
                Some(&[0x00, 0x01]) if !auth && !origin => {
                    // Client id length, auth value length, id, value, nonce
                    // (8), confirmation (1).
                    let (Some(id), Some(value)) = (byte(rest, 2), byte(rest, 3)) else {
                        return Err(self.short(rest, Reason::MalformedTunnel));
                    };
                    let hlen = 4 + usize::from(id) + usize::from(value) + 9;
                    rest = self.skip(rest, hlen, Reason::MalformedTunnel)?;
                    auth = true;
                }
                Some(&[0x00, 0x00]) if !origin => {
                    // Origin indication: port and address of the client.
                    rest = self.skip(rest, 8, Reason::MalformedTunnel)?;
                    origin = true;
                }
                None if !auth && !origin => return self.unknown(rest),
                None => return Err(self.short(rest, Reason::MalformedTunnel)),
                Some(_) if !auth && !origin => return Ok(None),
                Some(_) => return Err(Reason::MalformedTunnel),
            }
        }
        self.stats.layers.teredo += 1;
        self.enter_tunnel(Layer::Teredo, 0)?;
        Ok(Some(Next::Ipv6(rest)))
    }

    /// Teredo on a port other than 3544, recognised by what the datagram
    /// holds: Teredo relays and clients talk from any port (only the server
    /// listens on 3544), and captures of them carry it on ports such as
    /// 50000. Zeek's Teredo detection and Wireshark's Teredo heuristic look
    /// at content the same way; every check here must hold, so that DNS,
    /// QUIC, RTP and other UDP are never taken for it:
    ///
    /// * optional authentication and origin indication headers, each well
    ///   formed and in RFC 4380's order, then an IPv6 header: version 6,
    ///   whole in the capture;
    /// * the IPv6 payload length plus everything before it is exactly the
    ///   datagram's length (from the UDP header, so a frame the snapshot
    ///   length cut still counts), as Wireshark requires;
    /// * a hop limit above zero and a next header an IPv6 packet carries
    ///   (TCP, UDP, ICMPv6, no next header, or an extension header);
    /// * a Teredo address (2001:0000::/32) as source or destination, as
    ///   Zeek requires (it waives that after an indicator header; pov does
    ///   not, since a TCP connection through Teredo always has one).
    ///
    /// `wire_len` is the datagram's payload length on the wire. Anything
    /// that fails is plain UDP, never a malformed tunnel.
    pub(super) fn teredo_by_content(&mut self, s: &'a [u8], wire_len: usize) -> Maybe<'a> {
        let Some(at) = teredo_indicators(s) else {
            return Ok(None);
        };
        let Some(inner) = s.get(at..) else {
            return Ok(None);
        };
        let Some(ip) = inner.first_chunk::<IPV6_HEADER>() else {
            return Ok(None);
        };
        let version = ip[0] >> 4;
        let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        let (next, hops) = (ip[6], ip[7]);
        let teredo_end = ip[8..12] == TEREDO_PREFIX || ip[24..28] == TEREDO_PREFIX;
        let plausible_next = matches!(next, 0 | 6 | 17 | 43 | 44 | 50 | 51 | 58 | 59 | 60);
        if version != 6 || at + IPV6_HEADER + payload != wire_len || hops == 0 || !plausible_next || !teredo_end {
            return Ok(None);
        }
        self.stats.layers.teredo += 1;
        self.enter_tunnel(Layer::Teredo, 0)?;
        Ok(Some(Next::Ipv6(inner)))
    }

    /// AYIYA ("anything in anything", as SixXS used it): identity length and
    /// type, signature length and hash method, authentication method and
    /// opcode, next header, epoch; then identity and signature.
    fn ayiya(&mut self, s: &'a [u8]) -> Maybe<'a> {
        const OPCODE_FORWARD: u8 = 1;
        let Some(&[b0, b1, b2, next]) = s.first_chunk::<4>() else {
            return self.unknown(s);
        };
        if s.len() < 8 {
            return self.unknown(s);
        }
        let id_len = 1usize << (b0 >> 4);
        let sig_len = usize::from(b1 >> 4) * 4;
        let rest = self.skip(s, 8 + id_len + sig_len, Reason::MalformedTunnel)?;
        self.stats.layers.ayiya += 1;
        if b2 & 0x0f != OPCODE_FORWARD {
            return Err(Reason::OtherLinkPayload);
        }
        match next {
            41 => {
                self.enter_tunnel(Layer::Ayiya, 6)?;
                Ok(Some(Next::Ipv6(rest)))
            }
            4 => {
                self.enter_tunnel(Layer::Ayiya, 4)?;
                Ok(Some(Next::Ipv4(rest)))
            }
            _ => Err(Reason::OtherLinkPayload),
        }
    }
}

/// True if either port is Teredo's registered one.
pub(super) fn is_teredo_port(sport: u16, dport: u16) -> bool {
    sport == PORT_TEREDO || dport == PORT_TEREDO
}

/// Where the IPv6 packet starts in a Teredo datagram: after an optional
/// authentication header (type 1: client id and value lengths, the id, the
/// value, an 8-byte nonce and a confirmation byte) and then an optional
/// origin indication (type 0, 8 bytes). `None` if the headers there do not
/// fit that grammar or the bytes.
fn teredo_indicators(s: &[u8]) -> Option<usize> {
    let mut at = 0;
    if s.get(..2)? == [0x00, 0x01] {
        let id = usize::from(*s.get(2)?);
        let value = usize::from(*s.get(3)?);
        at = 4 + id + value + 9;
    }
    if s.get(at..at + 2)? == [0x00, 0x00] {
        at += 8;
    }
    Some(at)
}

/// The 24-bit virtual network id in bytes 4 to 6 of a VXLAN or Geneve
/// header (0 if the header is short; callers check its length first).
fn vni(s: &[u8]) -> u64 {
    match s.get(4..7) {
        Some(&[a, b, c]) => u64::from(u32::from_be_bytes([0, a, b, c])),
        _ => 0,
    }
}
