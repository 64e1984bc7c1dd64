//! One TCP connection as real stacks write it, seen from a capture point
//! next to the server (a tap or span port at the load balancer).
//!
//! Times are capture times in nanoseconds. A client packet is captured
//! half a round trip after the client sent it; a server packet as it leaves
//! the server. The client reacts to a server packet one round trip after
//! its capture (half to reach the client, half for the reply to come back).
//!
//! The simulator records abstract packets ([`Pkt`]); [`TcpConn::finish`]
//! applies capture noise (packets the capture missed, duplicates, reordering)
//! and computes the connection's exact truth before frames are built.

use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4Header, Ipv6Header, PacketBuilder, TcpHeader, TcpOptionElement};

use crate::rng::Rng;

/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// PSH flag.
pub const PSH: u8 = 0x08;
/// ACK flag.
pub const ACK: u8 = 0x10;

/// One side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// MAC address.
    pub mac: [u8; 6],
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
}

/// One packet of the connection, before frames are built.
#[derive(Clone, Debug)]
pub struct Pkt {
    /// Capture time.
    pub ts: i64,
    /// Sent by the client.
    pub from_client: bool,
    /// TCP flags.
    pub flags: u8,
    /// Stream offset of the first payload byte (for a SYN: the SYN's own
    /// sequence number is `isn`, and this is 0).
    pub off: u64,
    /// Acknowledged stream offset of the peer (meaningful with ACK).
    pub ack_off: u64,
    /// Advertised window (unscaled).
    pub win: u16,
    /// Payload.
    pub payload: Vec<u8>,
    /// A retransmission of bytes sent before.
    pub retransmission: bool,
    /// A duplicate made by the capture (span port), not by the sender.
    pub capture_duplicate: bool,
    /// Lost after the capture point: captured, but never reached the peer.
    pub lost: bool,
}

/// How the capture treats a connection's packets.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CaptureNoise {
    /// Probability that the capture misses a packet other than a SYN or RST
    /// (the endpoints still got it).
    pub drop: f64,
    /// Probability that the capture records a packet twice.
    pub duplicate: f64,
    /// Probability that two consecutive client data segments reach the
    /// capture point in the wrong order.
    pub reorder: f64,
}

/// Network conditions of the path (not capture artefacts).
#[derive(Clone, Copy, Debug, Default)]
pub struct PathLoss {
    /// Probability that a server segment is lost after the capture point
    /// (the capture sees it and its retransmission).
    pub server_loss: f64,
    /// Probability that a client segment is lost before the capture point
    /// (the capture sees only the retransmission, late).
    pub client_loss: f64,
}

/// Per-direction truth of a connection, after capture noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirTruth {
    /// Packets the capture holds in this direction.
    pub packets: u64,
    /// Payload bytes the capture holds, retransmissions and duplicates
    /// included (tshark's sum of `tcp.len`).
    pub bytes: u64,
    /// Distinct stream bytes the sender sent.
    pub sent_bytes: u64,
    /// Distinct stream bytes present in the capture.
    pub captured_bytes: u64,
    /// Distinct stream bytes missing from the capture below the highest
    /// byte the capture shows evidence of (a later segment, the FIN or RST
    /// sequence number, or the peer's acknowledgment): what an exact
    /// reassembler reports as gaps.
    pub gap_bytes: u64,
    /// Distinct stream bytes missing from the capture in all (including a
    /// lost tail nothing in the capture points to).
    pub missing_bytes: u64,
}

/// A TCP connection being simulated.
pub struct TcpConn {
    /// Client endpoint.
    pub client: Endpoint,
    /// Server endpoint.
    pub server: Endpoint,
    /// 802.1Q tag on every frame, if any.
    pub vlan: Option<u16>,
    /// Client initial sequence number.
    pub cisn: u32,
    /// Server initial sequence number.
    pub sisn: u32,
    /// Round trip between client and capture point, nanoseconds.
    pub rtt: i64,
    mss: usize,
    /// Next stream offset the client sends.
    pub c_next: u64,
    /// Next stream offset the server sends.
    pub s_next: u64,
    c_fin: bool,
    s_fin: bool,
    /// Packets so far (any order; sorted by `finish`).
    pub pkts: Vec<Pkt>,
    loss: PathLoss,
    rng: Rng,
    /// Server congestion window in segments.
    cwnd: usize,
    ip_id_c: u16,
    ip_id_s: u16,
    /// Last capture time of any packet.
    pub last_ts: i64,
}

/// Microseconds to nanoseconds.
pub const US: i64 = 1_000;
/// Milliseconds to nanoseconds.
pub const MS: i64 = 1_000_000;

impl TcpConn {
    /// A connection; nothing is sent until [`TcpConn::open`].
    pub fn new(
        client: Endpoint,
        server: Endpoint,
        vlan: Option<u16>,
        rtt: i64,
        loss: PathLoss,
        mut rng: Rng,
    ) -> TcpConn {
        let mss = if client.ip.is_ipv6() { 1440 } else { 1460 };
        TcpConn {
            client,
            server,
            vlan,
            cisn: rng.next_u32(),
            sisn: rng.next_u32(),
            rtt: rtt.max(20 * US),
            mss,
            c_next: 0,
            s_next: 0,
            c_fin: false,
            s_fin: false,
            pkts: Vec::new(),
            loss,
            ip_id_c: rng.next_u32() as u16,
            ip_id_s: rng.next_u32() as u16,
            rng,
            cwnd: 10,
            last_ts: 0,
        }
    }

    fn push(&mut self, ts: i64, from_client: bool, flags: u8, off: u64, payload: Vec<u8>) {
        let ack_off =
            if from_client { self.s_next + u64::from(self.s_fin) } else { self.c_next + u64::from(self.c_fin) };
        let win = if from_client { 2048 } else { 502 };
        self.last_ts = self.last_ts.max(ts);
        self.pkts.push(Pkt {
            ts,
            from_client,
            flags,
            off,
            ack_off,
            win,
            payload,
            retransmission: false,
            capture_duplicate: false,
            lost: false,
        });
    }

    /// The three-way handshake starting with the client's SYN captured at
    /// `t`. Returns the capture time at which the client's first data can
    /// be captured (right after its ACK).
    pub fn open(&mut self, t: i64) -> i64 {
        self.push(t, true, SYN, 0, Vec::new());
        let t_synack = t + 15 * US;
        self.push(t_synack, false, SYN | ACK, 0, Vec::new());
        let t_ack = t_synack + self.rtt;
        self.push(t_ack, true, ACK, 0, Vec::new());
        t_ack + 2 * US
    }

    /// A SYN answered by a RST (nothing listens on the port).
    pub fn refuse(&mut self, t: i64) -> i64 {
        self.push(t, true, SYN, 0, Vec::new());
        self.push(t + 20 * US, false, RST | ACK, 0, Vec::new());
        // The client learns of it one round trip after its SYN was sent.
        t + 20 * US + self.rtt / 2
    }

    /// A SYN nobody answers: the client tries `tries` times with
    /// exponential backoff (1 s, 2 s, 4 s ...). Returns when it gives up.
    pub fn unanswered(&mut self, t: i64, tries: u32) -> i64 {
        let mut at = t;
        let mut backoff = 1_000 * MS;
        for _ in 0..tries.max(1) {
            self.push(at, true, SYN, 0, Vec::new());
            at += backoff;
            backoff *= 2;
        }
        at
    }

    /// The client sends `data` starting at capture time `t`. If the server
    /// does not answer within `respond_in` nanoseconds, it sends a delayed
    /// ACK after 40 ms. Returns the capture time of the last byte.
    pub fn client_send(&mut self, t: i64, data: &[u8], respond_in: i64) -> i64 {
        let mut at = t;
        let mut last = t;
        let pieces = segment(data, &[data.len()], self.mss);
        let n = pieces.len().max(1);
        for (i, chunk) in pieces.into_iter().enumerate() {
            let off = self.c_next;
            self.c_next += chunk.len() as u64;
            let flags = if i + 1 == n { ACK | PSH } else { ACK };
            // Lost before the capture point: only the retransmission is
            // captured, a retransmission timeout later.
            let capture_at =
                if self.rng.chance(self.loss.client_loss) { at + (200 * MS).max(2 * self.rtt) } else { at };
            self.push(capture_at, true, flags, off, chunk.to_vec());
            if capture_at != at
                && let Some(p) = self.pkts.last_mut()
            {
                p.retransmission = true;
            }
            last = last.max(capture_at);
            // The server acks every second full segment at once.
            if i % 2 == 1 && i + 1 < n {
                let ack_t = capture_at.max(at) + 8 * US;
                self.push_server_ack(ack_t);
            }
            at += 12 * US;
        }
        if respond_in > 40 * MS {
            self.push_server_ack(last + 40 * MS);
        }
        last
    }

    /// A pure ACK from the server (after its FIN, its sequence number is
    /// one beyond the FIN).
    fn push_server_ack(&mut self, t: i64) {
        let off = self.s_next + u64::from(self.s_fin);
        self.push(t, false, ACK, off, Vec::new());
    }

    fn push_client_ack(&mut self, t: i64) {
        let off = self.c_next + u64::from(self.c_fin);
        self.push(t, true, ACK, off, Vec::new());
    }

    /// The server sends `data` from capture time `t`, in congestion-window
    /// flights; the client acknowledges every second segment one round
    /// trip after capture, and the last one as it arrives. If `stop_after`
    /// is given, the server stops after that many bytes (the caller then
    /// resets or closes). Returns (capture time of the last byte sent,
    /// capture time at which the client has it all).
    pub fn server_send(&mut self, t: i64, data: &[u8], writes: &[usize], stop_after: Option<usize>) -> (i64, i64) {
        let limit = stop_after.unwrap_or(data.len()).min(data.len());
        let data = &data[..limit];
        if data.is_empty() {
            return (t, t + self.rtt / 2);
        }
        let segs: Vec<&[u8]> = segment(data, writes, self.mss);
        let n = segs.len();
        let base = self.s_next;
        // Send times, and the capture time at which each is acknowledged.
        let mut send_t = vec![0i64; n];
        let mut t_free = t; // when the server may send the next segment
        let mut next = 0usize;
        let mut acked = 0usize;
        let mut last_sent = t;
        let mut client_has_all = t;
        while acked < n {
            // Send a flight.
            while next < n && next - acked < self.cwnd {
                let off = self.s_next;
                self.s_next += segs[next].len() as u64;
                let flags = if next + 1 == n && stop_after.is_none() { ACK | PSH } else { ACK };
                self.push(t_free, false, flags, off, segs[next].to_vec());
                send_t[next] = t_free;
                // Lost after the capture point: retransmitted a round trip
                // later (fast retransmit), captured twice.
                if self.rng.chance(self.loss.server_loss) {
                    if let Some(orig) = self.pkts.last_mut() {
                        orig.lost = true;
                    }
                    let rt = t_free + self.rtt + 300 * US;
                    self.pkts.push(Pkt {
                        ts: rt,
                        from_client: false,
                        flags,
                        off,
                        ack_off: self.c_next + u64::from(self.c_fin),
                        win: 502,
                        payload: segs[next].to_vec(),
                        retransmission: true,
                        capture_duplicate: false,
                        lost: false,
                    });
                    send_t[next] = rt;
                    self.last_ts = self.last_ts.max(rt);
                }
                last_sent = last_sent.max(t_free);
                t_free += 12 * US;
                next += 1;
            }
            // The next acknowledgment covers two segments (or the last one).
            let upto = (acked + 2).min(next);
            let arrive = send_t[acked..upto].iter().copied().max().unwrap_or(t_free);
            let ack_t = arrive + self.rtt + 30 * US;
            client_has_all = client_has_all.max(arrive + self.rtt / 2);
            // The client acknowledges every segment that has reached it, up
            // to the first one still missing (a lost segment not yet
            // retransmitted makes this a duplicate ACK; once it arrives, the
            // acknowledgment covers everything received after it too).
            let have = (0..next).find(|j| send_t[*j] > arrive).unwrap_or(next);
            let ack_off: u64 = base + segs[..have].iter().map(|s| s.len() as u64).sum::<u64>();
            let c_off = self.c_next;
            self.last_ts = self.last_ts.max(ack_t);
            self.pkts.push(Pkt {
                ts: ack_t,
                from_client: true,
                flags: ACK,
                off: c_off,
                ack_off,
                win: 2048,
                payload: Vec::new(),
                retransmission: false,
                capture_duplicate: false,
                lost: false,
            });
            acked = upto;
            // Slow start: the window grows by the segments acknowledged.
            self.cwnd = (self.cwnd + 2).min(64);
            t_free = t_free.max(ack_t + 10 * US);
        }
        // Having drained a large answer from its buffer, the client's stack
        // sometimes advertises a larger window (a window update).
        if n >= 8 && self.rng.chance(0.2) {
            let t_upd = client_has_all + self.rtt / 2 + 2 * MS;
            self.last_ts = self.last_ts.max(t_upd);
            self.pkts.push(Pkt {
                ts: t_upd,
                from_client: true,
                flags: ACK,
                off: self.c_next,
                ack_off: base + data.len() as u64,
                win: 4096,
                payload: Vec::new(),
                retransmission: false,
                capture_duplicate: false,
                lost: false,
            });
        }
        (last_sent, client_has_all)
    }

    /// The server closes (FIN) at `t`; the client answers with its own FIN
    /// one round trip later and the server acknowledges it. Returns the
    /// time of the last packet.
    pub fn close_by_server(&mut self, t: i64) -> i64 {
        let off = self.s_next;
        self.push(t, false, FIN | ACK, off, Vec::new());
        self.s_fin = true;
        let tc = t + self.rtt + 40 * US;
        let coff = self.c_next;
        self.push(tc, true, FIN | ACK, coff, Vec::new());
        self.c_fin = true;
        let ts = tc + 10 * US;
        self.push_server_ack(ts);
        ts
    }

    /// The client closes (FIN) at `t`; the server answers with its FIN at
    /// once and the client acknowledges it a round trip later.
    pub fn close_by_client(&mut self, t: i64) -> i64 {
        let coff = self.c_next;
        self.push(t, true, FIN | ACK, coff, Vec::new());
        self.c_fin = true;
        let ts = t + 30 * US;
        let off = self.s_next;
        self.push(ts, false, FIN | ACK, off, Vec::new());
        self.s_fin = true;
        let tc = ts + self.rtt;
        self.push_client_ack(tc);
        tc
    }

    /// The client closes its side (FIN) and the server's stack acknowledges
    /// it, but the hung application never closes its side.
    pub fn client_fin_only(&mut self, t: i64) -> i64 {
        let coff = self.c_next;
        self.push(t, true, FIN | ACK, coff, Vec::new());
        self.c_fin = true;
        let ts = t + 30 * US;
        self.push_server_ack(ts);
        ts
    }

    /// The client resets the connection at `t`.
    pub fn client_rst(&mut self, t: i64) -> i64 {
        let coff = self.c_next;
        self.push(t, true, RST | ACK, coff, Vec::new());
        t
    }

    /// The server resets the connection at `t`.
    pub fn server_rst(&mut self, t: i64) -> i64 {
        let off = self.s_next;
        self.push(t, false, RST | ACK, off, Vec::new());
        t
    }

    /// Applies capture noise, sorts the packets by capture time, and
    /// returns them with the truth for (client to server, server to client).
    pub fn finish(mut self, noise: &CaptureNoise) -> Finished {
        self.pkts.sort_by_key(|p| p.ts);
        // No packet acknowledges bytes its sender did not have yet (the
        // simulator fills acknowledgments in ahead of time): the server has
        // a client packet when it is captured; the client has a server
        // packet one round trip before the client's next packet is captured.
        // Packets lost after the capture point never arrive.
        let arrivals: [Vec<(i64, u64, u64)>; 2] = [true, false].map(|from_client| {
            let mut v: Vec<(i64, u64, u64)> = self
                .pkts
                .iter()
                .filter(|p| p.from_client == from_client && !p.lost)
                .map(|p| {
                    let delay = if from_client { 0 } else { self.rtt };
                    let len = p.payload.len() as u64 + u64::from(p.flags & FIN != 0);
                    (p.ts + delay, p.off, p.off + len)
                })
                .filter(|(_, a, b)| b > a)
                .collect();
            v.sort_unstable();
            v
        });
        let mut prefix = [Prefix::default(), Prefix::default()];
        let mut next_arrival = [0usize; 2];
        for p in &mut self.pkts {
            if p.flags & ACK == 0 || p.flags & SYN != 0 {
                continue;
            }
            // The peer's data this packet's sender has received by now.
            let peer = usize::from(p.from_client);
            while let Some(&(t, a, b)) = arrivals[peer].get(next_arrival[peer]) {
                if t > p.ts {
                    break;
                }
                prefix[peer].add(a, b);
                next_arrival[peer] += 1;
            }
            p.ack_off = p.ack_off.min(prefix[peer].end);
        }
        let sent = [self.c_next, self.s_next];
        let mut out: Vec<Pkt> = Vec::with_capacity(self.pkts.len());
        let pkts = std::mem::take(&mut self.pkts);
        let mut i = 0;
        while i < pkts.len() {
            let p = &pkts[i];
            let control = p.flags & (SYN | FIN | RST) != 0;
            // Reordering of two consecutive client data segments before the
            // capture point: the later one is captured first, timestamps
            // stay in capture order.
            if p.from_client
                && !control
                && !p.payload.is_empty()
                && i + 1 < pkts.len()
                && pkts[i + 1].from_client
                && !pkts[i + 1].payload.is_empty()
                && pkts[i + 1].flags & (SYN | FIN | RST) == 0
                && self.rng.chance(noise.reorder)
            {
                let mut a = pkts[i + 1].clone();
                let mut b = p.clone();
                a.ts = p.ts;
                b.ts = pkts[i + 1].ts;
                out.push(a);
                out.push(b);
                i += 2;
                continue;
            }
            // The capture may miss any packet but the ones that open or
            // abort the connection (SYN, RST), whose loss would change what
            // the connection is rather than which bytes are seen.
            if p.flags & (SYN | RST) == 0 && self.rng.chance(noise.drop) {
                i += 1;
                continue;
            }
            out.push(p.clone());
            if self.rng.chance(noise.duplicate) {
                let mut d = p.clone();
                d.ts += US;
                d.capture_duplicate = true;
                out.push(d);
            }
            i += 1;
        }
        out.sort_by_key(|p| p.ts);
        let (c2s, cov_c) = dir_truth(&out, true, sent[0]);
        let (s2c, cov_s) = dir_truth(&out, false, sent[1]);
        let ends = Endpoints {
            client: self.client,
            server: self.server,
            vlan: self.vlan,
            cisn: self.cisn,
            sisn: self.sisn,
            ip_id: [self.ip_id_c, self.ip_id_s],
        };
        Finished { pkts: out, c2s, s2c, ends, covered: [cov_c, cov_s] }
    }
}

/// The contiguous prefix of a byte stream received so far.
#[derive(Default)]
struct Prefix {
    end: u64,
    pending: std::collections::BTreeMap<u64, u64>,
}

impl Prefix {
    fn add(&mut self, a: u64, b: u64) {
        if a <= self.end {
            self.end = self.end.max(b);
        } else {
            let e = self.pending.entry(a).or_insert(b);
            *e = (*e).max(b);
        }
        while let Some((&a, &b)) = self.pending.first_key_value() {
            if a > self.end {
                break;
            }
            self.end = self.end.max(b);
            self.pending.pop_first();
        }
    }
}

/// A connection after capture noise: its captured packets and truth.
pub struct Finished {
    /// Captured packets in capture order.
    pub pkts: Vec<Pkt>,
    /// Client to server truth.
    pub c2s: DirTruth,
    /// Server to client truth.
    pub s2c: DirTruth,
    /// Addresses and sequence numbers for building frames.
    pub ends: Endpoints,
    /// Stream ranges present in the capture, (client to server, server to
    /// client), merged and sorted.
    pub covered: [Vec<(u64, u64)>; 2],
}

impl Finished {
    /// Bytes of `[a, b)` in direction `dir` (0 = client to server) that the
    /// capture lacks.
    pub fn missing_in(&self, dir: usize, a: u64, b: u64) -> u64 {
        let have: u64 = self.covered[dir].iter().map(|(x, y)| (*y).min(b).saturating_sub((*x).max(a))).sum();
        (b - a.min(b)) - have
    }
}

/// What frames need to know about a connection.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    /// Client.
    pub client: Endpoint,
    /// Server.
    pub server: Endpoint,
    /// VLAN tag.
    pub vlan: Option<u16>,
    /// Client ISN.
    pub cisn: u32,
    /// Server ISN.
    pub sisn: u32,
    /// First IP identification of (client, server) packets.
    pub ip_id: [u16; 2],
}

/// Cuts `data` into segments of at most `mss` bytes without crossing the
/// boundaries of the sender's writes. A write's tiny tail (under 16 bytes)
/// is balanced with the segment before it, as autocorking stacks do, so no
/// segment carries a lone byte of framing.
fn segment<'a>(data: &'a [u8], writes: &[usize], mss: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(data.len() / mss + 2);
    let mut at = 0;
    let mut bounds: Vec<usize> = Vec::new();
    for w in writes {
        at += w;
        bounds.push(at.min(data.len()));
    }
    if bounds.last().is_none_or(|b| *b < data.len()) {
        bounds.push(data.len());
    }
    let mut start = 0;
    for end in bounds {
        if end <= start {
            continue;
        }
        let w = &data[start..end];
        let n = w.len().div_ceil(mss);
        let tail = w.len() - (n - 1) * mss;
        if n >= 2 && tail < 16 {
            // Balance the last two pieces.
            let first = (n - 2) * mss;
            out.extend(w[..first].chunks(mss));
            let rest = &w[first..];
            let half = rest.len() / 2;
            out.push(&rest[..half]);
            out.push(&rest[half..]);
        } else {
            out.extend(w.chunks(mss));
        }
        start = end;
    }
    out
}

/// Counts, for one direction, what the capture holds of what was sent.
fn dir_truth(pkts: &[Pkt], from_client: bool, sent: u64) -> (DirTruth, Vec<(u64, u64)>) {
    let mut t = DirTruth { sent_bytes: sent, ..DirTruth::default() };
    let mut covered: Vec<(u64, u64)> = Vec::new();
    let mut evidence = 0u64;
    for p in pkts {
        if p.from_client == from_client {
            t.packets += 1;
            t.bytes += p.payload.len() as u64;
            // Evidence of the stream's extent: data, FIN and RST sequence
            // numbers (not those of pure ACKs).
            if !p.payload.is_empty() {
                covered.push((p.off, p.off + p.payload.len() as u64));
                evidence = evidence.max(p.off + p.payload.len() as u64);
            } else if p.flags & (FIN | RST) != 0 {
                evidence = evidence.max(p.off);
            }
        } else if p.flags & ACK != 0 && p.flags & SYN == 0 {
            // The peer's acknowledgment is evidence of bytes up to it (a
            // FIN's sequence number is not a byte).
            evidence = evidence.max(p.ack_off.min(sent));
        }
    }
    covered.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in covered {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    t.captured_bytes = merged.iter().map(|(a, b)| b - a).sum();
    t.missing_bytes = sent - t.captured_bytes.min(sent);
    let evidence = evidence.min(sent);
    let covered_below: u64 = merged.iter().map(|(a, b)| (*b).min(evidence).saturating_sub(*a)).sum();
    t.gap_bytes = evidence - covered_below;
    (t, merged)
}

/// Builds the Ethernet frame of a packet.
pub fn frame(e: &Endpoints, p: &Pkt, id: u16) -> Vec<u8> {
    let (src, dst, isn, peer_isn) =
        if p.from_client { (e.client, e.server, e.cisn, e.sisn) } else { (e.server, e.client, e.sisn, e.cisn) };
    let seq = if p.flags & SYN != 0 { isn } else { isn.wrapping_add(1).wrapping_add(p.off as u32) };
    let mut tcp = TcpHeader::new(src.port, dst.port, seq, p.win);
    tcp.syn = p.flags & SYN != 0;
    tcp.fin = p.flags & FIN != 0;
    tcp.rst = p.flags & RST != 0;
    tcp.psh = p.flags & PSH != 0;
    tcp.ack = p.flags & ACK != 0;
    if tcp.ack {
        tcp.acknowledgment_number = peer_isn.wrapping_add(1).wrapping_add(p.ack_off as u32);
    }
    if tcp.syn {
        let mss = if src.ip.is_ipv6() { 1440 } else { 1460 };
        let opts = [
            TcpOptionElement::MaximumSegmentSize(mss),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ];
        // Four options always fit in the 40 option bytes.
        let _ = tcp.set_options(&opts);
        tcp.window_size = 64240;
    }
    let eth = PacketBuilder::ethernet2(src.mac, dst.mac);
    let mut out = Vec::with_capacity(14 + 4 + 40 + 32 + p.payload.len());
    let ttl = if p.from_client { 54 } else { 64 };
    let res = match (src.ip, dst.ip, e.vlan) {
        (IpAddr::V4(s), IpAddr::V4(d), vlan) => {
            let mut ip = Ipv4Header::new(0, ttl, IpNumber::TCP, s.octets(), d.octets()).unwrap_or_default();
            ip.identification = id;
            ip.dont_fragment = true;
            let headers = etherparse::IpHeaders::Ipv4(ip, Default::default());
            match vlan {
                Some(v) => eth
                    .single_vlan(v.try_into().unwrap_or_default())
                    .ip(headers)
                    .tcp_header(tcp)
                    .write(&mut out, &p.payload),
                None => eth.ip(headers).tcp_header(tcp).write(&mut out, &p.payload),
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d), vlan) => {
            let ip = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: IpNumber::TCP,
                hop_limit: ttl,
                source: s.octets(),
                destination: d.octets(),
            };
            let headers = etherparse::IpHeaders::Ipv6(ip, Default::default());
            match vlan {
                Some(v) => eth
                    .single_vlan(v.try_into().unwrap_or_default())
                    .ip(headers)
                    .tcp_header(tcp)
                    .write(&mut out, &p.payload),
                None => eth.ip(headers).tcp_header(tcp).write(&mut out, &p.payload),
            }
        }
        _ => return Vec::new(),
    };
    if res.is_err() {
        return Vec::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn segments_respect_writes_and_avoid_tiny_tails() {
        let data = vec![0u8; 1460 * 2 + 1 + 5];
        let segs = segment(&data, &[1460 * 2 + 1, 5], 1460);
        let lens: Vec<usize> = segs.iter().map(|s| s.len()).collect();
        // The 1-byte tail is balanced with the segment before it; the last
        // write is its own segment.
        assert_eq!(lens, vec![1460, 730, 731, 5]);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
    }

    fn conn(loss: PathLoss, seed: u64) -> TcpConn {
        let c = Endpoint { mac: [0; 6], ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port: 40000 };
        let s = Endpoint { mac: [1; 6], ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), port: 80 };
        TcpConn::new(c, s, None, 20 * MS, loss, Rng::new(seed))
    }

    #[test]
    fn clean_exchange_has_no_loss_and_consistent_acks() {
        let mut c = conn(PathLoss::default(), 1);
        let t = c.open(0);
        let t = c.client_send(t, &[b'a'; 300], MS);
        let body = vec![b'b'; 50_000];
        let (last, _) = c.server_send(t + MS, &body, &[body.len()], None);
        c.close_by_server(last + MS);
        let f = c.finish(&CaptureNoise::default());
        assert_eq!(f.c2s.sent_bytes, 300);
        assert_eq!(f.s2c.sent_bytes, 50_000);
        assert_eq!((f.c2s.gap_bytes, f.s2c.gap_bytes, f.s2c.missing_bytes), (0, 0, 0));
        assert_eq!(f.s2c.bytes, 50_000);
        // Every ACK covers only bytes captured before it.
        let mut seen = 0u64;
        for p in &f.pkts {
            if p.from_client {
                if p.flags & ACK != 0 && p.flags & SYN == 0 {
                    assert!(p.ack_off <= seen + 1, "ack {} beyond {}", p.ack_off, seen);
                }
            } else {
                seen = seen.max(p.off + p.payload.len() as u64);
            }
        }
        assert!(f.pkts.windows(2).all(|w| w[0].ts <= w[1].ts));
    }

    #[test]
    fn capture_drops_become_gaps_only_where_evidence_exists() {
        let noise = CaptureNoise { drop: 0.2, duplicate: 0.0, reorder: 0.0 };
        let mut total_gap = 0;
        for seed in 0..20 {
            let mut c = conn(PathLoss { server_loss: 0.05, client_loss: 0.0 }, seed);
            let t = c.open(0);
            let t = c.client_send(t, &[b'a'; 100], MS);
            let body = vec![b'b'; 30_000];
            let (last, _) = c.server_send(t + MS, &body, &[body.len()], None);
            c.close_by_server(last + MS);
            let f = c.finish(&noise);
            assert!(f.s2c.gap_bytes <= f.s2c.missing_bytes);
            assert_eq!(f.s2c.captured_bytes + f.s2c.missing_bytes, 30_000);
            assert_eq!(f.missing_in(1, 0, 30_000), f.s2c.missing_bytes);
            total_gap += f.s2c.gap_bytes;
        }
        assert!(total_gap > 0);
    }
}
