//! The connection table: [`Reassembler`] finds each segment's connection,
//! starts new ones, closes idle ones, evicts under the caps, and remembers
//! closed ones for a while (their tombs) so stray packets count toward them.
//! A connection whose RST its receiver may have dropped waits apart, as
//! long as a tomb would be kept, for the packet that says which it was.

use std::hash::BuildHasher;
use std::net::SocketAddr;

use hashlink::linked_hash_map::RawEntryMut;
use hashlink::{DefaultHashBuilder, LinkedHashMap};

use crate::budget::{Budget, Charge, Holder};
use crate::packet::{Domain, TcpSegment, mix};
use crate::time::{Dur, Ts};

use super::connection::Conn;
use super::events::{CloseHow, ConnId, ConnSummary, StreamSink, TcpStats};

/// Reassembly limits and timeouts.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Most connections tracked at once; beyond it the longest idle one is
    /// closed (`Evicted`) and counted.
    pub max_connections: usize,
    /// Most out-of-order bytes held per direction (each held piece also
    /// counts [`HELD_OVERHEAD`](super::HELD_OVERHEAD) bytes of bookkeeping).
    pub max_ooo_bytes: usize,
    /// Most out-of-order bytes held over all connections.
    pub max_ooo_total: usize,
    /// A connection with no packet for this long is closed.
    pub idle_timeout: Dur,
    /// How long a closed connection is remembered, so that stray packets
    /// after its close count toward it rather than start a new one. A
    /// connection reset at a sequence number its receiver would not take
    /// is kept as long, in case it goes on (see [`HalfStats::ignored_rsts`]).
    ///
    /// [`HalfStats::ignored_rsts`]: super::HalfStats::ignored_rsts
    pub closed_linger: Dur,
    /// A segment or acknowledgment further ahead of the expected byte than
    /// this is treated as bogus and ignored (counted).
    pub max_seq_jump: u64,
    /// The run's memory budget: connections and out-of-order bytes are
    /// charged to it.
    pub budget: Budget,
}

impl Default for TcpConfig {
    fn default() -> TcpConfig {
        TcpConfig {
            max_connections: 1_000_000,
            max_ooo_bytes: 4 << 20,
            max_ooo_total: 512 << 20,
            idle_timeout: Dur::from_secs(300),
            closed_linger: Dur::from_secs(60),
            max_seq_jump: 1 << 30,
            budget: Budget::default(),
        }
    }
}

/// What one tracked connection costs the memory budget: its record here
/// (about 1 KiB) and in the HTTP layer (about 0.8 KiB), its first waiting
/// request (about 0.7 KiB), and their map entries: an estimate, measured
/// on x86-64 and rounded up (the allocator's own overhead is not
/// counted elsewhere). Buffers, further waiting requests and kept bodies
/// are charged on their own. At the default budget, about 40,000
/// connections can be open at once; beyond, the longest idle is evicted.
pub const CONN_COST: usize = std::mem::size_of::<Conn>() + 3072;

/// What a closed connection remembered for stray packets costs the memory
/// budget (an estimate).
pub const TOMB_COST: usize = std::mem::size_of::<Tomb>() + 128;

/// What names a connection: its addresses in a canonical order (lower
/// first), so both directions find the same entry, and the VLANs and
/// tunnels it was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlowKey(SocketAddr, SocketAddr, Domain);

/// Hashed as its flow hash, one word ([`shard_hash`]'s, which the decoding
/// has already found for every packet: [`Reassembler::process_hashed`]
/// takes it rather than hashing the key again). Equal keys pack alike (an
/// IPv6 end's flow label and scope, which the packing leaves out, only
/// make keys that differ by them share a hash).
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(flow_hash(self.0, self.1, &self.2));
    }
}

impl FlowKey {
    fn of(seg: &TcpSegment<'_>) -> FlowKey {
        let (a, b) = (seg.src, seg.dst);
        if a <= b { FlowKey(a, b, seg.domain) } else { FlowKey(b, a, seg.domain) }
    }
}

/// A hash of a segment's connection (addresses, ports and [`Domain`]):
/// the same for both directions, and for every run on every platform (a
/// fixed mixing function, no random seed). Segments of one connection
/// always hash alike, so `shard_hash(seg) % n` can spread connections over
/// `n` reassemblers. The reader asks it of every packet: each end is
/// packed into two words (an IPv4 end into one) and the two ends, lower
/// first, are mixed in twice, without ordering the addresses themselves.
#[inline]
pub fn shard_hash(seg: &TcpSegment<'_>) -> u64 {
    flow_hash(seg.src, seg.dst, &seg.domain)
}

/// [`shard_hash`] of the connection between `a` and `b` (in either order)
/// in `domain`.
#[inline]
fn flow_hash(a: SocketAddr, b: SocketAddr, domain: &Domain) -> u64 {
    let (a, b) = (end_words(a), end_words(b));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    mix(mix(domain.id ^ lo.1, lo.0), hi.0 ^ hi.1.rotate_left(32))
}

/// A connection's end as two words: an IPv4 address and port in the first
/// (tagged, so that it never equals an IPv6 end's), an IPv6 one's address
/// folded with its port.
#[inline]
fn end_words(a: SocketAddr) -> (u64, u64) {
    match a {
        SocketAddr::V4(v4) => (1 << 48 | u64::from(v4.ip().to_bits()) << 16 | u64::from(v4.port()), 0),
        SocketAddr::V6(v6) => {
            let n = v6.ip().to_bits();
            ((n >> 64) as u64, n as u64 ^ u64::from(v6.port()) << 48)
        }
    }
}

/// What remains of a closed connection while stray packets may still come.
pub(super) struct Tomb {
    /// Its share of the memory budget.
    pub(super) charge: Charge,
    /// The record `on_summary` will get.
    pub(super) summary: ConnSummary,
    /// The client's address (to tell directions apart).
    pub(super) client: SocketAddr,
    /// The ISN of the client's SYN, if seen (a new one is port reuse).
    pub(super) client_isn: Option<u32>,
}

/// Shared mutable state a connection needs while processing.
pub(super) struct Ctx<'c> {
    /// Limits.
    pub(super) cfg: &'c TcpConfig,
    /// Run-wide counters.
    pub(super) stats: &'c mut TcpStats,
    /// Out-of-order bytes held over all connections (with overhead).
    pub(super) ooo_total: &'c mut usize,
}

/// Rebuilds TCP byte streams from segments. See the module docs.
pub struct Reassembler {
    cfg: TcpConfig,
    /// Boxed, so that a map's spare capacity costs a pointer a slot, not a
    /// connection.
    active: LinkedHashMap<FlowKey, Box<Conn>>,
    /// Connections after a RST they may outlive, longest quiet first: each
    /// becomes active again on new bytes in sequence, or closes (as the
    /// RST said, at its time) when a tomb would be forgotten.
    held: LinkedHashMap<FlowKey, Box<Conn>>,
    closed: LinkedHashMap<FlowKey, Box<Tomb>>,
    /// The three maps' hasher (one seed for all), so that a packet's key
    /// is hashed once for every lookup it needs.
    hasher: DefaultHashBuilder,
    next_id: ConnId,
    now: Ts,
    ooo_total: usize,
    stats: TcpStats,
}

impl Reassembler {
    /// A reassembler with the given limits.
    pub fn new(cfg: TcpConfig) -> Reassembler {
        let hasher = DefaultHashBuilder::default();
        Reassembler {
            cfg,
            active: LinkedHashMap::with_hasher(hasher.clone()),
            held: LinkedHashMap::with_hasher(hasher.clone()),
            closed: LinkedHashMap::with_hasher(hasher.clone()),
            hasher,
            next_id: 1,
            now: Ts(i64::MIN),
            ooo_total: 0,
            stats: TcpStats::default(),
        }
    }

    /// Counters so far (complete after [`Reassembler::finish`]).
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Connections currently open.
    pub fn active_connections(&self) -> usize {
        self.active.len()
    }

    /// Out-of-order bytes currently held (with overhead).
    pub fn ooo_bytes(&self) -> usize {
        self.ooo_total
    }

    /// Processes one segment. Segments must come in capture order.
    pub fn process<S: StreamSink + ?Sized>(&mut self, seg: &TcpSegment<'_>, sink: &mut S) {
        self.process_hashed(seg, shard_hash(seg), sink);
    }

    /// [`Reassembler::process`] of a segment whose [`shard_hash`] is
    /// `flow` (found once, when the packet was decoded and sharded).
    pub fn process_hashed<S: StreamSink + ?Sized>(&mut self, seg: &TcpSegment<'_>, flow: u64, sink: &mut S) {
        debug_assert_eq!(flow, shard_hash(seg), "a segment's flow hash");
        self.stats.segments += 1;
        self.advance(seg.ts, sink);
        let key = FlowKey::of(seg);
        // The key hashes as its flow hash does (`Hash for FlowKey`).
        let hash = self.hasher.hash_one(flow);
        let syn_only = seg.flags.syn() && !seg.flags.ack();

        if !self.held.is_empty()
            && let RawEntryMut::Occupied(mut entry) = self.held.raw_entry_mut().from_key_hashed_nocheck(hash, &key)
        {
            if entry.get_mut().continues_after_rst(seg) {
                // The RST was dropped: the connection goes on.
                let mut conn = entry.remove();
                conn.outlive_rst();
                if self.active.len() >= self.cfg.max_connections.max(1) {
                    self.evict_one(sink);
                }
                self.active.insert(key, conn);
            } else if syn_only {
                // A SYN after the RST: the RST stands, and the SYN is what
                // it would be after any close (a retransmission, or a new
                // connection on these addresses).
                let conn = entry.remove();
                self.settle(key, conn, sink);
            } else {
                entry.get_mut().absorb(seg);
                self.stats.packets_after_close += 1;
                entry.to_back();
                return;
            }
        }

        // A packet of a connection that is open, and that opens nothing
        // (most packets): one lookup of it, not three.
        let conn = 'found: {
            if !syn_only
                && let RawEntryMut::Occupied(mut entry) =
                    self.active.raw_entry_mut().from_key_hashed_nocheck(hash, &key)
            {
                entry.to_back();
                break 'found entry.into_mut();
            }
            if !self.admit(seg, key, hash, syn_only, sink) {
                return;
            }
            match self.active.raw_entry_mut().from_key_hashed_nocheck(hash, &key) {
                RawEntryMut::Occupied(mut entry) => {
                    entry.to_back();
                    entry.into_mut()
                }
                RawEntryMut::Vacant(_) => return,
            }
        };
        let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
        let closed = conn.segment(seg, &mut ctx, sink);
        if ctx.stats.ooo_peak_bytes < *ctx.ooo_total as u64 {
            ctx.stats.ooo_peak_bytes = *ctx.ooo_total as u64;
        }
        let held = conn.held_rst().is_some();
        if let Some(how) = closed
            && let Some(conn) = self.active.remove(&key)
        {
            let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
            let tomb = conn.close(how, seg.ts, &mut ctx, sink);
            self.entomb(key, tomb, sink);
        } else if held && let Some(conn) = self.active.remove(&key) {
            if self.held.len() >= self.cfg.max_connections.max(1)
                && let Some((k, old)) = self.held.pop_front()
            {
                self.settle(k, old, sink);
            }
            self.held.insert(key, conn);
        }
    }

    /// Readies the connection of `seg`, a packet the fast path of
    /// [`Reassembler::process_hashed`] did not take (a lone SYN, or one of
    /// no open connection): a packet of a closed connection is counted on
    /// its tomb (`false`: nothing more to do), a SYN that starts anew on an
    /// open connection's addresses ends that one, and a connection not
    /// open is opened.
    fn admit<S: StreamSink + ?Sized>(
        &mut self,
        seg: &TcpSegment<'_>,
        key: FlowKey,
        hash: u64,
        syn_only: bool,
        sink: &mut S,
    ) -> bool {
        if !self.is_active(hash, &key) {
            if !self.closed.is_empty()
                && let RawEntryMut::Occupied(mut entry) =
                    self.closed.raw_entry_mut().from_key_hashed_nocheck(hash, &key)
            {
                let reuse = syn_only && entry.get().client_isn != Some(seg.seq);
                if !reuse {
                    absorb(entry.get_mut(), seg);
                    self.stats.packets_after_close += 1;
                    entry.to_back();
                    return false;
                }
                let tomb = entry.remove();
                self.finish_tomb(tomb, sink);
                self.stats.port_reuse += 1;
            }
        } else if syn_only
            && let RawEntryMut::Occupied(entry) = self.active.raw_entry_mut().from_key_hashed_nocheck(hash, &key)
            && entry.get().is_new_connection_syn(entry.get().side_of(seg.src), seg.seq)
        {
            let conn = entry.remove();
            self.stats.superseded += 1;
            let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
            let tomb = conn.close(CloseHow::Superseded, seg.ts, &mut ctx, sink);
            self.finish_tomb(tomb, sink);
            self.stats.port_reuse += 1;
        }

        if !self.is_active(hash, &key) {
            if self.active.len() >= self.cfg.max_connections.max(1) {
                self.evict_one(sink);
            }
            // A new connection is always tracked; when the memory budget
            // has no room for it, the longest idle one makes room.
            let charge = match self.cfg.budget.try_charge(Holder::Connections, CONN_COST) {
                Some(c) => c,
                None => {
                    if !self.active.is_empty() {
                        self.stats.budget_evictions += 1;
                        self.evict_one(sink);
                    }
                    self.cfg.budget.charge(Holder::Connections, CONN_COST)
                }
            };
            // Named by the frame that opened it: the same name whichever
            // reassembler (shard) sees it, and one a user can find in
            // Wireshark (`frame.number == N`). Frames without numbers (0,
            // or repeated, as in hand-made segments) get the next free one.
            let id = seg.frame.max(self.next_id);
            let mut conn = Conn::new(id, seg);
            conn.head.charge = charge;
            self.next_id = id + 1;
            self.stats.connections += 1;
            self.active.insert(key, Box::new(conn));
            self.stats.peak_active = self.stats.peak_active.max(self.active.len() as u64);
        }
        true
    }

    /// `key` (whose hash is `hash`) names an open connection.
    fn is_active(&self, hash: u64, key: &FlowKey) -> bool {
        self.active.raw_entry().from_key_hashed_nocheck(hash, key).is_some()
    }

    /// Keeps a closed connection's tomb for stray packets.
    fn entomb<S: StreamSink + ?Sized>(&mut self, key: FlowKey, mut tomb: Box<Tomb>, sink: &mut S) {
        if self.closed.len() >= self.cfg.max_connections.max(1)
            && let Some((_, old)) = self.closed.pop_front()
        {
            self.finish_tomb(old, sink);
        }
        // Remembering it for stray packets is worth less than anything
        // open: without room, the oldest closed one is forgotten.
        tomb.charge = match self.cfg.budget.try_charge(Holder::Connections, TOMB_COST) {
            Some(c) => c,
            None => {
                if let Some((_, old)) = self.closed.pop_front() {
                    self.finish_tomb(old, sink);
                }
                self.cfg.budget.charge(Holder::Connections, TOMB_COST)
            }
        };
        self.closed.insert(key, tomb);
    }

    /// Closes a connection whose held RST stands, as the RST said and at
    /// its time, as it would have closed then.
    fn close_held<S: StreamSink + ?Sized>(&mut self, conn: Box<Conn>, sink: &mut S) -> Box<Tomb> {
        let (how, ts) = match conn.held_rst() {
            Some(rst) => (rst.how, rst.ts),
            None => (CloseHow::EndOfCapture, conn.head.last_ts),
        };
        let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
        conn.close(how, ts, &mut ctx, sink)
    }

    /// The held RST stands: the connection closes, and its tomb is kept
    /// for what lingering time it has left.
    fn settle<S: StreamSink + ?Sized>(&mut self, key: FlowKey, conn: Box<Conn>, sink: &mut S) {
        let tomb = self.close_held(conn, sink);
        self.entomb(key, tomb, sink);
    }

    /// Moves capture time on to `now` without a segment, for a reassembler
    /// that sees only some of a capture's connections (a shard): idle
    /// connections close, and closed ones are forgotten, as they would
    /// have on a segment of their own at that time.
    pub fn advance<S: StreamSink + ?Sized>(&mut self, now: Ts, sink: &mut S) {
        if now > self.now {
            self.now = now;
        }
        self.expire(sink);
    }

    /// Ends the capture: every open connection closes (`EndOfCapture`) and
    /// every connection's summary is emitted, in connection id order.
    pub fn finish<S: StreamSink + ?Sized>(&mut self, sink: &mut S) {
        let mut conns: Vec<Box<Conn>> = self.active.drain().map(|(_, c)| c).collect();
        conns.extend(self.held.drain().map(|(_, c)| c));
        conns.sort_by_key(|c| c.head.id);
        let mut tombs: Vec<Box<Tomb>> = Vec::with_capacity(conns.len() + self.closed.len());
        for conn in conns {
            if conn.held_rst().is_some() {
                // Nothing came after its RST: it stands.
                tombs.push(self.close_held(conn, sink));
                continue;
            }
            let ts = conn.head.last_ts;
            let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
            tombs.push(conn.close(CloseHow::EndOfCapture, ts, &mut ctx, sink));
        }
        tombs.extend(self.closed.drain().map(|(_, t)| t));
        tombs.sort_by_key(|t| t.summary.id);
        for t in tombs {
            self.finish_tomb(t, sink);
        }
    }

    /// Closes idle connections and forgets closed ones past their linger.
    fn expire<S: StreamSink + ?Sized>(&mut self, sink: &mut S) {
        let idle_deadline = self.now - self.cfg.idle_timeout;
        while let Some((_, c)) = self.active.front() {
            if c.head.last_ts >= idle_deadline {
                break;
            }
            let Some((_, conn)) = self.active.pop_front() else {
                break;
            };
            self.retire(conn, CloseHow::IdleTimeout, sink);
        }
        let linger_deadline = self.now - self.cfg.closed_linger;
        // A held RST stands once the connection has been quiet as long as
        // its tomb would have been kept: it is forgotten now, as that tomb
        // would be.
        while let Some((_, c)) = self.held.front() {
            if c.head.last_ts >= linger_deadline {
                break;
            }
            let Some((_, conn)) = self.held.pop_front() else {
                break;
            };
            let tomb = self.close_held(conn, sink);
            self.finish_tomb(tomb, sink);
        }
        while let Some((_, t)) = self.closed.front() {
            if t.summary.last_ts >= linger_deadline {
                break;
            }
            let Some((_, t)) = self.closed.pop_front() else {
                break;
            };
            self.finish_tomb(t, sink);
        }
    }

    fn evict_one<S: StreamSink + ?Sized>(&mut self, sink: &mut S) {
        if let Some((_, conn)) = self.active.pop_front() {
            self.stats.evicted += 1;
            self.retire(conn, CloseHow::Evicted, sink);
        }
    }

    /// Closes a connection taken out of the table at its last packet's
    /// time, and emits its summary at once (no linger).
    fn retire<S: StreamSink + ?Sized>(&mut self, conn: Box<Conn>, how: CloseHow, sink: &mut S) {
        let ts = conn.head.last_ts;
        let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
        let tomb = conn.close(how, ts, &mut ctx, sink);
        self.finish_tomb(tomb, sink);
    }

    fn finish_tomb<S: StreamSink + ?Sized>(&mut self, t: Box<Tomb>, sink: &mut S) {
        self.stats.totals.add(&t.summary.to_server);
        self.stats.totals.add(&t.summary.to_client);
        sink.on_summary(&t.summary);
    }
}

/// Counts a packet that arrived after its connection closed.
fn absorb(tomb: &mut Tomb, seg: &TcpSegment<'_>) {
    let s = &mut tomb.summary;
    let half = if seg.src == tomb.client { &mut s.to_server } else { &mut s.to_client };
    half.packets += 1;
    half.payload_bytes += u64::from(seg.payload_len);
    half.after_close_bytes += u64::from(seg.payload_len);
    if seg.ts > s.last_ts {
        s.last_ts = seg.ts;
    }
    s.last_frame = s.last_frame.max(seg.frame);
}
