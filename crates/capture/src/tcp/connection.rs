//! One connection: its two halves, the handshake, the roles, and its
//! lifecycle.
//!
//! A connection is [`Lifecycle::Pending`] from its first packet until pov
//! first has something to tell about it; then it is announced (`on_open`,
//! roles fixed) and [`Lifecycle::Open`]. A RST at a sequence number its
//! receiver would not take makes it [`Lifecycle::Reset`] until either side
//! goes on with its stream (it is open again) or the table gives up
//! waiting. It ends with [`Conn::close`], which flushes both halves, emits
//! `on_close` and turns it into a [`Tomb`] that the table keeps for stray
//! packets until its summary.

use std::net::SocketAddr;
use std::ops::{Index, IndexMut};

use crate::budget::Charge;
use crate::packet::TcpSegment;
use crate::time::Ts;

use super::assembler::{Half, Suspect};
use super::events::{
    Close, CloseHow, ConnId, ConnMeta, ConnState, ConnSummary, Direction, GapReason, Handshake, RoleSource, StreamSink,
};
use super::table::{Ctx, Tomb};

/// One of the two ends of a connection, named by the order the capture
/// saw them in (roles are decided separately, see [`Head::client`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// The sender of the first packet seen.
    First,
    /// Its peer.
    Second,
}

impl Side {
    /// Both sides, first first.
    pub(super) const BOTH: [Side; 2] = [Side::First, Side::Second];

    /// The peer.
    pub(super) fn other(self) -> Side {
        match self {
            Side::First => Side::Second,
            Side::Second => Side::First,
        }
    }
}

/// One value per side.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Sides<T> {
    first: T,
    second: T,
}

impl<T> Sides<T> {
    /// `first` for [`Side::First`], `second` for [`Side::Second`].
    pub(super) fn new(first: T, second: T) -> Sides<T> {
        Sides { first, second }
    }
}

impl<T> Index<Side> for Sides<T> {
    type Output = T;
    fn index(&self, s: Side) -> &T {
        match s {
            Side::First => &self.first,
            Side::Second => &self.second,
        }
    }
}

impl<T> IndexMut<Side> for Sides<T> {
    fn index_mut(&mut self, s: Side) -> &mut T {
        match s {
            Side::First => &mut self.first,
            Side::Second => &mut self.second,
        }
    }
}

/// Where a connection is in its life (the closed part of it is the table's
/// [`Tomb`]).
pub(super) enum Lifecycle {
    /// Packets seen, nothing told to the sink yet: a SYN or SYN-ACK may
    /// still set the roles.
    Pending,
    /// `on_open` was sent with this record; the roles are fixed.
    Open(ConnMeta),
    /// Announced, then a RST came whose sequence number was not the one
    /// its receiver expected. A receiver takes a RST only at exactly that
    /// number (RFC 5961 section 3.2; RFC 9293 section 3.10.7.4 answers any
    /// other in the window with a challenge ACK and drops the rest), so the
    /// connection may live on. Nothing is told to the sink until it is
    /// known: new bytes in sequence from either side make it
    /// [`Lifecycle::Open`] again; otherwise it closes as the RST said, at
    /// the RST's time, as if it had closed then.
    Reset(ConnMeta, HeldRst),
}

/// A RST a connection may outlive (see [`Lifecycle::Reset`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct HeldRst {
    /// How the connection closes if nothing continues it.
    pub(super) how: CloseHow,
    /// The RST's capture time, the close's time if it stands.
    pub(super) ts: Ts,
    /// The side that sent it.
    side: Side,
}

/// A connection being reassembled: its two halves and the rest.
pub(super) struct Conn {
    /// What each side sent.
    pub(super) half: Sides<Half>,
    /// Everything else.
    pub(super) head: Head,
}

/// A connection's state apart from its halves: what a half needs in order
/// to announce the connection and name its direction.
pub(super) struct Head {
    pub(super) id: ConnId,
    /// Addresses of each side.
    addr: Sides<SocketAddr>,
    /// Which side is the client, once decided.
    client: Option<Side>,
    roles: RoleSource,
    life: Lifecycle,
    syn_ts: Option<Ts>,
    syn_ack_ts: Option<Ts>,
    /// The ISN the server put in its SYN-ACK.
    syn_ack_isn: Option<u32>,
    hs_ack_ts: Option<Ts>,
    first_ts: Ts,
    pub(super) last_ts: Ts,
    first_frame: u64,
    last_frame: u64,
    fin_first: Option<Side>,
    /// First payload seen and its side, for the role heuristic.
    first_payload: Option<(Side, [u8; 8], usize)>,
    /// Its share of the memory budget.
    pub(super) charge: Charge,
    /// The outermost VLAN id of its domain.
    vlan: Option<u16>,
    /// The connection outlived a RST: bytes from here on came after it.
    after_rst: bool,
}

/// Where a half sends what it learns: the sink, with the connection
/// announced first if it was not yet.
pub(super) struct Out<'o, 'c, S: ?Sized> {
    head: &'o mut Head,
    side: Side,
    /// The table's shared state.
    pub(super) ctx: &'o mut Ctx<'c>,
    /// The sink.
    pub(super) sink: &'o mut S,
}

impl<S: StreamSink + ?Sized> Out<'_, '_, S> {
    /// Announces the connection if needed; its id and this half's
    /// direction.
    pub(super) fn open(&mut self) -> (ConnId, Direction) {
        self.head.ensure_open(self.ctx, self.sink);
        self.names()
    }

    /// The connection's id and this half's direction as things stand,
    /// without announcing it (roles may not be decided yet).
    pub(super) fn names(&self) -> (ConnId, Direction) {
        (self.head.id, self.head.dir(self.side))
    }

    /// The connection outlived a RST: what is delivered now came after it.
    pub(super) fn after_rst(&self) -> bool {
        self.head.after_rst
    }
}

/// True if the first bytes of a payload look like an HTTP request line.
fn looks_like_request(p: &[u8]) -> bool {
    let token_len = p.iter().take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_').count();
    (3..=16).contains(&token_len) && p.get(token_len) == Some(&b' ')
}

/// True if the first bytes of a payload look like an HTTP status line.
fn looks_like_response(p: &[u8]) -> bool {
    p.starts_with(b"HTTP/")
}

/// Ports that are almost always the server side.
fn is_service_port(p: u16) -> bool {
    p < 1024
        || matches!(
            p,
            1080 | 1443
                | 3000
                | 3128
                | 5000
                | 5001
                | 8000
                | 8008
                | 8080
                | 8081
                | 8088
                | 8443
                | 8888
                | 9000
                | 9080
                | 9090
                | 9200
                | 9443
        )
}

impl Head {
    /// Direction of bytes sent by `side`. Valid once roles are decided.
    fn dir(&self, side: Side) -> Direction {
        if Some(side) == self.client { Direction::ClientToServer } else { Direction::ServerToClient }
    }

    /// Decides client and server if not yet done.
    fn decide_roles(&mut self) {
        if self.client.is_some() {
            return;
        }
        if let Some((side, head, n)) = self.first_payload {
            let head = &head[..n.min(8)];
            if looks_like_request(head) {
                self.client = Some(side);
                self.roles = RoleSource::Payload;
                return;
            }
            if looks_like_response(head) {
                self.client = Some(side.other());
                self.roles = RoleSource::Payload;
                return;
            }
        }
        let p0 = self.addr[Side::First].port();
        let p1 = self.addr[Side::Second].port();
        let (s0, s1) = (is_service_port(p0), is_service_port(p1));
        let server = if s0 != s1 {
            Some(if s0 { Side::First } else { Side::Second })
        } else if p0 != p1 {
            Some(if p0 < p1 { Side::First } else { Side::Second })
        } else {
            None
        };
        match server {
            Some(s) => {
                self.client = Some(s.other());
                self.roles = RoleSource::Port;
            }
            None => {
                self.client = Some(Side::First);
                self.roles = RoleSource::FirstPacket;
            }
        }
    }

    /// The handshake, when SYN, SYN-ACK and ACK were all seen.
    fn handshake(&self) -> Option<Handshake> {
        match (self.syn_ts, self.syn_ack_ts, self.hs_ack_ts) {
            (Some(syn), Some(syn_ack), Some(ack)) => Some(Handshake { syn, syn_ack, ack }),
            _ => None,
        }
    }

    /// Emits `on_open` if not done yet.
    fn ensure_open<S: StreamSink + ?Sized>(&mut self, ctx: &mut Ctx<'_>, sink: &mut S) {
        if !matches!(self.life, Lifecycle::Pending) {
            return;
        }
        self.decide_roles();
        let c = self.client.unwrap_or(Side::First);
        if self.syn_ts.is_none() {
            ctx.stats.mid_stream += 1;
        }
        let meta = ConnMeta {
            id: self.id,
            client: self.addr[c],
            server: self.addr[c.other()],
            start: self.first_ts,
            first_frame: self.first_frame,
            handshake: self.handshake(),
            roles: self.roles,
            vlan: self.vlan,
        };
        sink.on_open(&meta);
        self.life = Lifecycle::Open(meta);
    }
}

impl Conn {
    /// A connection whose first packet is `seg`.
    pub(super) fn new(id: ConnId, seg: &TcpSegment<'_>) -> Conn {
        Conn {
            half: Sides::default(),
            head: Head {
                id,
                addr: Sides::new(seg.src, seg.dst),
                client: None,
                roles: RoleSource::FirstPacket,
                life: Lifecycle::Pending,
                syn_ts: None,
                syn_ack_ts: None,
                syn_ack_isn: None,
                hs_ack_ts: None,
                first_ts: seg.ts,
                last_ts: seg.ts,
                first_frame: seg.frame,
                last_frame: seg.frame,
                fin_first: None,
                first_payload: None,
                charge: Charge::none(),
                vlan: seg.domain.vlan,
                after_rst: false,
            },
        }
    }

    /// Which side sent from `src`.
    pub(super) fn side_of(&self, src: SocketAddr) -> Side {
        if src == self.head.addr[Side::First] { Side::First } else { Side::Second }
    }

    /// Half `side` with an [`Out`] for its events.
    fn split<'o, 'c, S: ?Sized>(
        &'o mut self,
        side: Side,
        ctx: &'o mut Ctx<'c>,
        sink: &'o mut S,
    ) -> (&'o mut Half, Out<'o, 'c, S>) {
        (&mut self.half[side], Out { head: &mut self.head, side, ctx, sink })
    }

    /// Is a SYN (without ACK) from `side` with `isn` the start of a new
    /// connection on these addresses rather than part of this one?
    pub(super) fn is_new_connection_syn(&self, side: Side, isn: u32) -> bool {
        let h = &self.half[side];
        if h.syn_isn == Some(isn) {
            return false; // a retransmitted SYN
        }
        if h.syn_isn.is_none() {
            // Never saw a SYN from this side: it is this connection's own
            // SYN arriving late only if the peer's SYN-ACK acknowledges it,
            // or if nothing at all came from this side yet.
            if self.syn_ack_ack_matches(side, isn) || h.base.is_none() {
                return false;
            }
        }
        true
    }

    fn syn_ack_ack_matches(&self, side: Side, isn: u32) -> bool {
        // The SYN-ACK's acknowledgment is isn+1; we kept the peer's base
        // only, so compare with what the client side's base would be.
        self.half[side].base == Some(isn.wrapping_add(1)) && self.head.syn_ack_ts.is_some()
    }

    /// Processes one segment; returns how the connection closed, if it did.
    pub(super) fn segment<S: StreamSink + ?Sized>(
        &mut self,
        seg: &TcpSegment<'_>,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) -> Option<CloseHow> {
        let s = self.side_of(seg.src);
        let p = s.other();
        if seg.ts > self.head.last_ts {
            self.head.last_ts = seg.ts;
        }
        self.head.last_frame = self.head.last_frame.max(seg.frame);
        let flags = seg.flags;
        {
            let h = &mut self.half[s];
            h.stats.packets += 1;
            h.stats.payload_bytes += u64::from(seg.payload_len);
            if self.head.after_rst {
                h.stats.data_after_rst_bytes += u64::from(seg.payload_len);
            }
        }

        // Handshake (RFC 9293 section 3.5).
        if flags.syn() {
            let head = &mut self.head;
            let pending = matches!(head.life, Lifecycle::Pending);
            if !flags.ack() {
                let h = &mut self.half[s];
                match h.syn_isn {
                    Some(isn) if isn == seg.seq => h.stats.syn_retransmissions += 1,
                    Some(_) => {}
                    None => {
                        h.syn_isn = Some(seg.seq);
                        if h.untouched() || h.base.is_none() {
                            h.base = Some(seg.seq.wrapping_add(1));
                        }
                        if head.syn_ts.is_none() {
                            head.syn_ts = Some(seg.ts);
                        }
                        if head.client.is_none() && pending {
                            head.client = Some(s);
                            head.roles = RoleSource::Syn;
                        }
                    }
                }
            } else {
                let h = &mut self.half[s];
                match h.syn_isn {
                    Some(isn) if isn == seg.seq => h.stats.syn_retransmissions += 1,
                    // Another SYN-ACK with another initial sequence number,
                    // before any data from this side: the server dropped the
                    // first half-open connection (SYN cookies under a full
                    // backlog do this) and answered the client's
                    // retransmitted SYN afresh. The later one is the
                    // handshake that completes; the client acknowledges it.
                    Some(_) if h.next == 0 && h.nothing_held() && h.fin.is_none() => {
                        h.syn_isn = Some(seg.seq);
                        h.base = Some(seg.seq.wrapping_add(1));
                        h.stats.syn_ack_restarts += 1;
                        head.syn_ack_isn = Some(seg.seq);
                    }
                    Some(_) => {}
                    None => {
                        h.syn_isn = Some(seg.seq);
                        if h.untouched() || h.base.is_none() {
                            h.base = Some(seg.seq.wrapping_add(1));
                        }
                        head.syn_ack_isn = Some(seg.seq);
                        if head.syn_ack_ts.is_none() {
                            head.syn_ack_ts = Some(seg.ts);
                        }
                        if head.client.is_none() && pending {
                            head.client = Some(p);
                            head.roles = RoleSource::SynAck;
                        }
                        // The SYN-ACK acknowledges the client's SYN: learn
                        // the client's base if its SYN was not captured.
                        if self.half[p].base.is_none() && flags.ack() {
                            self.half[p].base = Some(seg.ack);
                        }
                    }
                }
            }
        }

        // The client's first ACK of the SYN-ACK completes the handshake.
        if self.head.hs_ack_ts.is_none()
            && flags.ack()
            && !flags.syn()
            && self.head.syn_ts.is_some()
            && Some(s) == self.head.client
            && self.head.syn_ack_isn.is_some_and(|isn| seg.ack == isn.wrapping_add(1))
        {
            self.head.hs_ack_ts = Some(seg.ts);
            self.head.ensure_open(ctx, sink);
        }

        // Mid-stream pickup: the first sequence number seen is offset 0.
        let data_seq = seg.seq.wrapping_add(u32::from(flags.syn()));
        if self.half[s].base.is_none() {
            self.half[s].base = Some(data_seq);
        }

        // A keep-alive without payload: one byte before the next expected.
        if seg.payload_len == 0
            && !flags.syn()
            && !flags.fin()
            && !flags.rst()
            && let Some(off) = self.half[s].offset_of(seg.seq)
            && off + 1 == self.half[s].next as i64
        {
            self.half[s].stats.keepalives += 1;
        }

        // Keep the first payload bytes for the role heuristic.
        if self.head.first_payload.is_none() && !seg.payload.is_empty() {
            let mut head = [0u8; 8];
            let n = seg.payload.len().min(8);
            head[..n].copy_from_slice(&seg.payload[..n]);
            self.head.first_payload = Some((s, head, n));
        }

        // Acknowledgment of the peer's bytes: anything acknowledged that the
        // capture does not have is a gap now, not at the end.
        // How far this segment's sender had received the other direction.
        let peer_ack = if flags.ack() && !flags.syn() {
            self.half[p].offset_of(seg.ack).filter(|a| *a >= 0).map(|a| a as u64)
        } else {
            None
        };
        // (A SYN-ACK acknowledges only the SYN.)
        if flags.ack() && !flags.syn() {
            self.on_ack(s, seg.ack, seg.ts, seg.frame, ctx, sink);
        }

        if seg.payload_len > 0 {
            let peer_window = self.half[p].window;
            let (h, mut out) = self.split(s, ctx, sink);
            h.payload(seg, data_seq, peer_ack, peer_window, &mut out);
        } else if !flags.fin() && !flags.rst() && !flags.syn() {
            // A bare segment one sequence number past everything its sender
            // sent: that number went to a FIN the capture missed (a lost
            // data byte would have come with more). Settled like an unseen
            // FIN the peer acknowledged.
            let h = &self.half[s];
            if h.fin.is_none()
                && h.fin_suspect.is_none()
                && h.nothing_held()
                && h.offset_of(data_seq).is_some_and(|o| o == h.next as i64 + 1)
            {
                let off = h.next;
                self.half[s].fin_suspect = Some(Suspect { off, ts: seg.ts, frame: seg.frame });
                // The same segment may acknowledge the peer's unseen FIN:
                // then both sides are done.
                if self.half[p].fin_suspect.is_some() {
                    self.accept_unseen_fin(p, ctx, sink);
                }
                if self.half[p].ended {
                    self.accept_unseen_fin(s, ctx, sink);
                }
            }
        }

        if flags.rst() {
            // A RST's sequence number is evidence of how far its sender's
            // stream went: bytes before it that the capture lacks are gaps.
            let h = &mut self.half[s];
            let off = h.offset_of(data_seq);
            if let Some(o) = off
                && o > h.next as i64
                && (o as u64 - h.next) <= ctx.cfg.max_seq_jump
            {
                h.rst_end = Some(o as u64);
            }
            let expected = off.is_none_or(|o| h.expects_rst_at(o));
            self.head.ensure_open(ctx, sink);
            let how = CloseHow::Rst { from: self.head.dir(s) };
            if expected {
                return Some(how);
            }
            // Not where the receiver's stream stands: it may well have
            // dropped it. Hold the close until the capture tells.
            let life = std::mem::replace(&mut self.head.life, Lifecycle::Pending);
            self.head.life = match life {
                Lifecycle::Open(meta) => Lifecycle::Reset(meta, HeldRst { how, ts: seg.ts, side: s }),
                other => other,
            };
            return None;
        }

        if flags.fin() {
            let fin_off = self.half[s].offset_of(data_seq).map(|o| o + i64::from(seg.payload_len));
            if let Some(f) = fin_off.filter(|f| *f >= 0) {
                let f = f as u64;
                let h = &mut self.half[s];
                match h.fin {
                    None => {
                        h.fin = Some(f);
                        h.fin_ts = seg.ts;
                        h.fin_frame = seg.frame;
                        if self.head.fin_first.is_none() {
                            self.head.fin_first = Some(s);
                        }
                    }
                    Some(old) if old != f => h.stats.fin_mismatches += 1,
                    Some(_) => {}
                }
                // Bytes held beyond the FIN were never part of the stream.
                h.drop_beyond_fin(ctx);
                let (h, mut out) = self.split(s, ctx, sink);
                h.check_fin(&mut out);
            }
        }

        if self.half[Side::First].ended && self.half[Side::Second].ended {
            let first = self.head.fin_first.unwrap_or(s);
            self.head.ensure_open(ctx, sink);
            return Some(CloseHow::Fin { first: self.head.dir(first) });
        }
        None
    }

    /// The RST this connection is waiting to see outlived or not, if any.
    pub(super) fn held_rst(&self) -> Option<HeldRst> {
        match &self.head.life {
            Lifecycle::Reset(_, rst) => Some(*rst),
            _ => None,
        }
    }

    /// After a held RST: does `seg` carry new bytes right where its
    /// sender's stream stands? That is what a connection whose RST was
    /// dropped does next, and what a reset one cannot (its sender has no
    /// connection left to send from; its receiver answers data with a RST
    /// of its own). Retransmissions, bare ACKs (the challenge ACK among
    /// them), FINs and RSTs are not evidence.
    pub(super) fn continues_after_rst(&self, seg: &TcpSegment<'_>) -> bool {
        if seg.flags.syn() || seg.flags.rst() {
            return false;
        }
        let h = &self.half[self.side_of(seg.src)];
        h.offset_of(seg.seq).is_some_and(|off| h.continues_at(off, seg.payload_len))
    }

    /// The held RST was ignored: the connection is open again, the RST is
    /// counted as such, and its sequence number no longer says where its
    /// sender's stream ended.
    pub(super) fn outlive_rst(&mut self) {
        let life = std::mem::replace(&mut self.head.life, Lifecycle::Pending);
        self.head.life = match life {
            Lifecycle::Reset(meta, rst) => {
                let h = &mut self.half[rst.side];
                h.stats.ignored_rsts += 1;
                h.rst_end = None;
                self.head.after_rst = true;
                Lifecycle::Open(meta)
            }
            other => other,
        };
    }

    /// A packet while a RST is held that does not continue the stream:
    /// counted as one after the close, as it will be if the RST stands.
    pub(super) fn absorb(&mut self, seg: &TcpSegment<'_>) {
        let s = self.side_of(seg.src);
        let h = &mut self.half[s];
        h.stats.packets += 1;
        h.stats.payload_bytes += u64::from(seg.payload_len);
        h.stats.after_close_bytes += u64::from(seg.payload_len);
        if seg.ts > self.head.last_ts {
            self.head.last_ts = seg.ts;
        }
        self.head.last_frame = self.head.last_frame.max(seg.frame);
    }

    /// An acknowledgment from `s` of the peer's stream.
    fn on_ack<S: StreamSink + ?Sized>(
        &mut self,
        s: Side,
        ack: u32,
        ts: Ts,
        frame: u64,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) {
        let p = s.other();
        let h = &self.half[p];
        let Some(mut a) = h.offset_of(ack) else {
            return;
        };
        // Nothing follows a FIN: an ACK of the FIN (fin + 1), or a bogus one
        // beyond it, acknowledges the stream up to the FIN.
        if let Some(fin) = h.fin
            && a > fin as i64
        {
            a = fin as i64;
        }
        if a <= h.next as i64 {
            return;
        }
        let a = a as u64;
        if a - h.next > ctx.cfg.max_seq_jump {
            self.half[s].stats.bogus_acks += 1;
            return;
        }
        // An acknowledgment covers a FIN as well as bytes. When it goes
        // exactly one past every byte the capture has, with nothing beyond,
        // its last sequence number is most likely a FIN the capture missed,
        // not a lost byte: leave it open, and settle it later (a FIN if the
        // stream ends there, a lost byte if data follows). An acknowledgment
        // that also covers missing bytes makes its last one a byte too.
        let known_beyond = h.holds_up_to(a);
        if h.fin.is_none() && !known_beyond && h.next + 1 == a {
            let sus = Suspect { off: a - 1, ts, frame };
            self.half[p].fin_suspect = Some(sus);
            if self.half[s].ended {
                // The usual end of a connection: the side that closed first
                // acknowledges the other's FIN.
                self.accept_unseen_fin(p, ctx, sink);
            }
            return;
        }
        let (h, mut out) = self.split(p, ctx, sink);
        h.advance_to(a, GapReason::AckedUnseen, ts, &mut out);
        h.deliver_ready(&mut out);
        h.check_fin(&mut out);
    }

    /// Takes a suspected unseen FIN of `side` as its FIN (if nothing came
    /// after it) and emits the half-close.
    fn accept_unseen_fin<S: StreamSink + ?Sized>(&mut self, side: Side, ctx: &mut Ctx<'_>, sink: &mut S) {
        if !self.half[side].take_unseen_fin() {
            return;
        }
        if self.head.fin_first.is_none() {
            self.head.fin_first = Some(side);
        }
        let (h, mut out) = self.split(side, ctx, sink);
        h.check_fin(&mut out);
    }

    /// Ends the connection: flushes both directions, emits `on_close`, and
    /// returns its tombstone.
    pub(super) fn close<S: StreamSink + ?Sized>(
        mut self,
        how: CloseHow,
        ts: Ts,
        ctx: &mut Ctx<'_>,
        sink: &mut S,
    ) -> Box<Tomb> {
        self.head.ensure_open(ctx, sink);
        for side in Side::BOTH {
            self.accept_unseen_fin(side, ctx, sink);
            let (h, mut out) = self.split(side, ctx, sink);
            h.flush(GapReason::AtClose, ts, &mut out);
            let end = match (h.fin, h.rst_end) {
                (Some(f), _) => Some(f),
                (None, r) => r,
            };
            if let Some(end) = end
                && h.next < end
            {
                let next = h.next;
                h.emit_gap(next, end - next, GapReason::AtClose, ts, &mut out);
            }
            h.check_fin(&mut out);
        }
        match how {
            CloseHow::Fin { .. } => ctx.stats.closed_fin += 1,
            CloseHow::Rst { .. } => ctx.stats.closed_rst += 1,
            CloseHow::IdleTimeout => ctx.stats.closed_idle += 1,
            CloseHow::EndOfCapture => ctx.stats.closed_end_of_capture += 1,
            CloseHow::Evicted | CloseHow::Superseded => {}
        }
        let head = &self.head;
        sink.on_close(&Close { conn: head.id, ts, how });
        let c = head.client.unwrap_or(Side::First);
        let state = self.state(how);
        let announced = match &head.life {
            Lifecycle::Open(meta) | Lifecycle::Reset(meta, _) => meta.handshake,
            Lifecycle::Pending => None,
        };
        Box::new(Tomb {
            charge: Charge::none(),
            client: head.addr[c],
            client_isn: self.half[c].syn_isn,
            summary: ConnSummary {
                id: head.id,
                client: head.addr[c],
                server: head.addr[c.other()],
                roles: head.roles,
                first_ts: head.first_ts,
                last_ts: head.last_ts,
                first_frame: head.first_frame,
                last_frame: head.last_frame,
                handshake: announced.or(head.handshake()),
                syn_seen: self.half[c].syn_isn.is_some(),
                syn_ack_seen: head.syn_ack_ts.is_some(),
                to_server: self.half[c].stats,
                to_client: self.half[c.other()].stats,
                close: how,
                close_ts: ts,
                state,
                vlan: head.vlan,
                tls: None,
            },
        })
    }

    /// Zeek's `conn_state` for a connection that closed `how`.
    fn state(&self, how: CloseHow) -> ConnState {
        let c = self.head.client.unwrap_or(Side::First);
        let syn = self.half[c].syn_isn.is_some();
        let syn_ack = self.head.syn_ack_ts.is_some();
        if !syn {
            return ConnState::OTH;
        }
        if !syn_ack {
            return match how {
                CloseHow::Rst { from: Direction::ServerToClient } => ConnState::REJ,
                _ if self.half[c].fin.is_some() => ConnState::SH,
                _ => ConnState::S0,
            };
        }
        match how {
            CloseHow::Fin { .. } => ConnState::SF,
            CloseHow::Rst { from: Direction::ClientToServer } => ConnState::RSTO,
            CloseHow::Rst { from: Direction::ServerToClient } => ConnState::RSTR,
            _ => match (self.half[c].fin.is_some(), self.half[c.other()].fin.is_some()) {
                (true, false) => ConnState::S2,
                (false, true) => ConnState::S3,
                _ => ConnState::S1,
            },
        }
    }
}
