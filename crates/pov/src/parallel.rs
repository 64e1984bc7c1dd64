//! The parallel pipeline: connections sharded across threads, transactions
//! merged back into order.
//!
//! Connections are independent once packets are decoded, so the work after
//! decoding is split by connection:
//!
//! ```text
//!  reader task      decoding           shard steps (rayon)             calling thread
//!  frame packets ─▶ decode, split  ─▶  Reassembler + HttpAnalyzer, ─▶ merge by request start,
//!  into a batch's   by shard (a        one per shard                  then the stage behind
//!  buffer           symmetric hash of                                 (writers, user stage)
//!                   the connection's
//!                   addresses, ports)
//! ```
//!
//! The steps overlap: while the shards work on batch *k*, the decoding
//! splits batch *k + 1*, the reader frames batch *k + 2*, and the calling
//! thread hands on what the shards released from batch *k − 1*. The
//! decoding is claimed like a shard's step, by whichever thread comes to
//! it first (the calling thread, after the merge, cannot take the pool's
//! tasks): on a server-side capture of large responses the reader alone
//! was what every batch waited for. Payloads stay where the reader read
//! them: the batch holds the reader's buffers ([`Block`]s), which the
//! reader does not write again until they are let go of (a payload the
//! decoder put together, from IP fragments, is copied into the batch, and
//! so are the frames of a source that shares no buffer). On one thread a batch is read
//! and decoded in one go, each packet's headers still in cache. A batch
//! ends after a fixed number of frames or frame bytes, so what each shard
//! sees, and when, depends on the capture only: the number of shards is
//! fixed ([`SHARDS`]) and the number of threads only decides who does the
//! work. The outputs are the same whatever `--threads` is (a test checks
//! it).
//!
//! After each batch every shard moves its capture time on to the batch's
//! last packet (idle connections close as they would have) and releases
//! the transactions no unfinished one of its own can precede. Its
//! *frontier* (the earliest start time anything it releases later can
//! have) bounds what the merge may hand on: a transaction goes on once it
//! started before every shard's frontier, in order of (request start,
//! connection, depth), at most about one batch's worth and a half per
//! batch (the rest waits its turn, so that the stage behind never takes
//! a burst while the other threads idle). The shards share half of
//! [`HttpConfig::max_held`] (and of `max_held_bytes`) for their own
//! ordering, the merge holds at most the other halves, and at most a
//! quarter of the memory budget's bytes (the shards let go when the budget
//! is full; the merge, which must not depend on how the threads
//! interleave, at that fixed share); beyond, the earliest go on early
//! (counted in `held_cap_releases`), as in one analyzer. What the merge
//! holds (the prepared items, whole) is charged to the run's budget as
//! `ordering`.
//!
//! The memory budget is one for all threads. Its peaks are taken between
//! batches ([`pov_capture::Budget::sample_peaks`]), so that the reports are
//! the same on any number of threads; when the budget is nearly full, what
//! a holder is refused depends on how the threads interleave.

use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use pov_capture::budget::Charge;
use pov_capture::decode::Decoder;
use pov_capture::http::{HttpAnalyzer, HttpConfig, HttpStats, HttpTransaction, TxSink};
use pov_capture::pcap::{CaptureFile, PacketReader, ReadError};
use pov_capture::tcp::{
    Close, ConnId, ConnMeta, ConnSummary, DataChunk, Gap, HalfClose, Reassembler, Retransmission, StreamSink, TcpStats,
};
use pov_capture::{Block, Budget, Holder, PacketSource, TcpSegment, Ts};

use crate::pipeline::{PipelineConfig, Progress, RunReport};

/// Shards of every run, whatever the number of threads: outputs depend on
/// the capture only.
pub const SHARDS: usize = 16;

/// Packets per batch.
const BATCH_PACKETS: usize = 8192;

/// Frame bytes per batch (a batch also ends here). 8 MiB was 8 to 10 %
/// slower on a server-side capture of large responses, on one thread and
/// on two (with smaller batches, the batches in flight may stay in the
/// shared cache between the reader and the shards: not measured).
const BATCH_BYTES: usize = 2 << 20;

/// Most transactions a shard's list keeps room for from batch to batch
/// (a box each, 8 bytes: 32 KiB over the 16 shards at most). On
/// request-heavy traffic a shard releases about 100 a batch (`rh.pcap`:
/// 173,405 transactions, 111 batches of 8,192 packets, 16 shards), so
/// room for 64 was outgrown every batch.
const KEPT_TXS: usize = 256;

/// What a shard's HTTP analyzer releases, as the analyzer holds them:
/// boxed, so a transaction (632 bytes) is not copied on its way to the
/// stage's preparer.
#[derive(Default)]
struct Finished(#[allow(clippy::vec_box)] Vec<Box<HttpTransaction>>);

impl TxSink for Finished {
    fn on_transaction(&mut self, tx: HttpTransaction) {
        self.0.push(Box::new(tx));
    }
    fn on_boxed(&mut self, tx: Box<HttpTransaction>) {
        self.0.push(tx);
    }
}

/// Most connection summaries a shard's list keeps room for from batch to
/// batch (some 450 bytes each: 1.8 MB over the 16 shards at most).
const KEPT_SUMMARIES: usize = 256;

/// Most prepared transactions a shard's output keeps room for from batch
/// to batch (40 bytes each, what they point to aside: 2.6 MB over the 16
/// shards at most).
const KEPT_READY: usize = 4096;

/// What a stage answers for each item it takes: go on, stop the run
/// (`Break`: it has all it wants), or an error, which stops the run too
/// (a full disk, a closed pipe). The idea is ripgrep's `Sink`.
pub type Flow = io::Result<ControlFlow<()>>;

/// [`Flow`]'s "go on".
pub const GO_ON: Flow = Ok(ControlFlow::Continue(()));

/// [`Flow`]'s "stop here".
pub const BREAK: Flow = Ok(ControlFlow::Break(()));

/// What the merged stream feeds: transactions in order of request start,
/// and connection summaries as connections end. Each call may stop the
/// run: no more is read, and open connections are not flushed.
///
/// What a stage can make of one transaction alone (a record, masked; a
/// session's view of it) it makes in the shards, on their threads, through
/// its [`Downstream::preparer`]; the calling thread, which runs what must
/// see transactions in order, only gets the result ([`Downstream::Item`]).
pub trait Downstream {
    /// What each transaction becomes before the merge.
    type Item: Send;
    /// What makes it, shared by the shards.
    type Prep: Prepare<Item = Self::Item>;
    /// The stage's preparer (taken once, at the start of a run).
    fn preparer(&self) -> Self::Prep;
    /// A finished transaction, prepared.
    fn on_transaction(&mut self, item: Self::Item) -> Flow;
    /// A connection's final record (after its close).
    fn on_summary(&mut self, _summary: &ConnSummary) -> Flow {
        GO_ON
    }
    /// After each batch but the last, once what it released was handed
    /// on: every transaction handed on from now on started at or after
    /// `frontier` (but those the ordering caps release early and late
    /// ones, counted in `held_cap_releases` and `written_out_of_order`).
    /// A live source that had nothing to read still makes batches, so a
    /// stage hears of time passing on a quiet interface too.
    fn on_batch(&mut self, _frontier: Ts) -> Flow {
        GO_ON
    }
}

/// Turns a finished transaction into what a stage takes, on the shard
/// that parsed it (so it must not depend on any other transaction).
pub trait Prepare: Sync {
    /// What it makes.
    type Item: Send;
    /// Makes it.
    fn prepare(&self, tx: Box<HttpTransaction>) -> Self::Item;
    /// Bytes the item holds beyond its own size. The merge counts both
    /// against its cap on held bytes (`max_held_bytes`) and charges them
    /// to the run's memory budget (as `ordering`).
    fn held_bytes(_item: &Self::Item) -> usize {
        0
    }
}

/// The preparer that changes nothing: the stage takes the transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsIs;

impl Prepare for AsIs {
    type Item = HttpTransaction;
    fn prepare(&self, tx: Box<HttpTransaction>) -> HttpTransaction {
        *tx
    }
    fn held_bytes(tx: &HttpTransaction) -> usize {
        body_bytes(tx)
    }
}

/// The preparer that drops transactions in the shards (for a stage that
/// only counts them, or takes summaries only).
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl Prepare for Discard {
    type Item = ();
    fn prepare(&self, _tx: Box<HttpTransaction>) {}
}

impl Downstream for Vec<HttpTransaction> {
    type Item = HttpTransaction;
    type Prep = AsIs;
    fn preparer(&self) -> AsIs {
        AsIs
    }
    fn on_transaction(&mut self, tx: HttpTransaction) -> Flow {
        self.push(tx);
        GO_ON
    }
}

/// How a run is split.
#[derive(Clone, Copy, Debug)]
pub struct Threads {
    /// Threads that read, reassemble and parse, the calling thread among
    /// them: it runs the stage behind the merge, then steps the shards
    /// that are left (so `threads - 1` more are started). 1: everything
    /// on the calling thread, in the same steps.
    pub threads: usize,
    /// Shards connections are spread over.
    pub shards: usize,
}

impl Default for Threads {
    /// As many threads as cores available, [`SHARDS`] shards.
    fn default() -> Threads {
        Threads { threads: available(), shards: SHARDS }
    }
}

/// The cores this process may use (1 if unknown).
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A decoded segment kept in a batch: its payload is `start..end` of one
/// of the reader's blocks the batch holds, of the frames copied into the
/// batch ([`FRAMES`]), or of its other bytes ([`OWN`]: a payload the
/// decoder put together, such as a reassembled IP datagram's); the
/// segment itself holds none.
#[derive(Clone, Copy)]
struct Seg {
    seg: TcpSegment<'static>,
    /// Its [`pov_capture::tcp::shard_hash`].
    flow: u64,
    start: usize,
    end: usize,
    /// Which bytes: an index in [`Batch::blocks`], or [`FRAMES`] or [`OWN`].
    block: u32,
}

/// Bytes in a batch's own buffer ([`Batch::own`]).
const OWN: u32 = u32::MAX;
/// Bytes in the frames copied from a source that shares no buffer
/// ([`Frames::bytes`], then [`Batch::frames`]).
const FRAMES: u32 = u32::MAX - 1;

/// The index of `b` in `blocks`, added if it is not there (the last is
/// looked at first: a file's frames come from one buffer after another).
fn block_index(blocks: &mut Vec<Block>, b: &Block) -> u32 {
    match blocks.iter().rposition(|x| x.same(b)) {
        Some(i) => i as u32,
        None => {
            blocks.push(b.clone());
            (blocks.len() - 1) as u32
        }
    }
}

/// A batch of packets: the reader's buffers its frames lie in (held
/// until the batch is emptied; the reader reads on into others), or the
/// frames' bytes as copied (reused from batch to batch, so at most a
/// batch's bytes), payloads in neither, and the segments split by shard.
struct Batch {
    blocks: Vec<Block>,
    frames: Vec<u8>,
    own: Vec<u8>,
    parts: Vec<Vec<Seg>>,
    /// Capture time of its last packet (the latest so far).
    now: Option<Ts>,
    /// The input is read to its end (or stopped).
    last: bool,
}

impl Batch {
    /// Adds `seg`, whose payload lies in `region` (the bytes that `block`
    /// names, the batch's or soon to be) or is copied.
    fn push(&mut self, shard: usize, seg: &TcpSegment<'_>, flow: u64, region: &[u8], block: u32) {
        let (at, len) = (seg.payload.as_ptr() as usize, seg.payload.len());
        let base = region.as_ptr() as usize;
        let seg = if at >= base && at + len <= base + region.len() {
            Seg { seg: seg.with_payload(&[]), flow, start: at - base, end: at - base + len, block }
        } else {
            let start = self.own.len();
            self.own.extend_from_slice(seg.payload);
            Seg { seg: seg.with_payload(&[]), flow, start, end: self.own.len(), block: OWN }
        };
        if let Some(part) = self.parts.get_mut(shard) {
            part.push(seg);
        }
    }

    /// The payload of `s`, one of this batch's segments.
    fn payload(&self, s: &Seg) -> &[u8] {
        region(&self.blocks, &self.frames, &self.own, s.block).get(s.start..s.end).unwrap_or_default()
    }

    fn clear(&mut self) {
        // The reader takes its buffers back once no batch holds them.
        self.blocks.clear();
        self.frames.clear();
        self.own.clear();
        for p in &mut self.parts {
            p.clear();
        }
    }
}

/// Frames read and not yet decoded: the reader's buffers they lie in, or
/// their bytes copied into one buffer (a source that shares none).
#[derive(Default)]
struct Frames {
    blocks: Vec<Block>,
    bytes: Vec<u8>,
    frames: Vec<Frame>,
    /// Where the input stood once they were read.
    edge: Edge,
}

/// Where the input stands after a batch was read: what its decoding,
/// which may come a batch later, needs to know of it.
#[derive(Clone, Copy, Default)]
struct Edge {
    /// The source's clock when it last had nothing to read (a live
    /// capture: [`PacketSource::clock`]).
    clock: Option<Ts>,
    /// The input is read to its end.
    done: bool,
    /// Reading was stopped.
    stopped: bool,
}

impl Edge {
    /// Nothing comes after this batch.
    fn last(self) -> bool {
        self.done || self.stopped
    }
}

/// A frame in [`Frames`]: a [`Packet`](pov_capture::Packet) whose bytes
/// are `start..end` of one of its blocks, or of its bytes ([`FRAMES`]).
#[derive(Clone, Copy)]
struct Frame {
    frame: u64,
    source: u16,
    ts: Ts,
    linktype: pov_capture::Linktype,
    orig_len: u32,
    block: u32,
    start: usize,
    end: usize,
}

impl Frames {
    /// The bytes that `block` names.
    fn region(&self, block: u32) -> &[u8] {
        region(&self.blocks, &self.bytes, &[], block)
    }
}

/// The bytes that `block` names: one of `blocks`, the copied `frames`
/// ([`FRAMES`]) or the `own` bytes ([`OWN`]).
fn region<'a>(blocks: &'a [Block], frames: &'a [u8], own: &'a [u8], block: u32) -> &'a [u8] {
    match block {
        OWN => own,
        FRAMES => frames,
        i => blocks.get(i as usize).map_or(&[], Block::bytes),
    }
}

/// The stream events of one shard's connections: HTTP parsed (when asked)
/// into its own ordered output, summaries collected.
struct ShardSink {
    http: Option<HttpAnalyzer<Finished>>,
    summaries: Vec<ConnSummary>,
}

impl StreamSink for ShardSink {
    fn on_open(&mut self, meta: &ConnMeta) {
        if let Some(h) = &mut self.http {
            h.on_open(meta);
        }
    }
    fn on_data(&mut self, chunk: &DataChunk<'_>) {
        if let Some(h) = &mut self.http {
            h.on_data(chunk);
        }
    }
    fn on_gap(&mut self, gap: &Gap) {
        if let Some(h) = &mut self.http {
            h.on_gap(gap);
        }
    }
    fn on_retransmission(&mut self, r: &Retransmission) {
        if let Some(h) = &mut self.http {
            h.on_retransmission(r);
        }
    }
    fn on_half_close(&mut self, hc: &HalfClose) {
        if let Some(h) = &mut self.http {
            h.on_half_close(hc);
        }
    }
    fn on_close(&mut self, close: &Close) {
        if let Some(h) = &mut self.http {
            h.on_close(close);
        }
    }
    fn on_summary(&mut self, summary: &ConnSummary) {
        let mut s = summary.clone();
        if let Some(h) = &mut self.http {
            h.on_summary(summary);
            // How its TLS handshake went (for failures without keys).
            s.tls = h.take_tls_end().map(Box::new);
        }
        self.summaries.push(s);
    }
}

/// A shard's step of a batch, to be claimed by one thread: the shard, its
/// part of the batch, and where its output goes.
type Job<'a, T> = (&'a mut Shard, &'a Vec<Seg>, &'a mut Out<T>);

/// One shard: its connections' reassembly and HTTP.
struct Shard {
    tcp: Reassembler,
    sink: ShardSink,
    /// The HTTP counters, once the shard has finished.
    http_stats: Option<HttpStats>,
}

/// A prepared transaction with where it goes in the merged order.
struct Ready<T> {
    /// Request start, connection, depth.
    key: (Ts, u64, u32),
    /// Boxed: what a stage prepares can be a kilobyte, moved three times
    /// on its way through the merge.
    item: Box<T>,
    /// What holding it costs (its box and what it points to), reckoned by
    /// the shard that made it, so that the merge, on the thread everything
    /// waits for, does not walk its strings to hold it and again to let
    /// it go.
    cost: usize,
}

/// What a shard hands to the merge after a batch.
struct Out<T> {
    txs: Vec<Ready<T>>,
    summaries: Vec<ConnSummary>,
    /// Everything this shard releases later starts at or after this
    /// (`None`: no promise, as after the last batch).
    frontier: Option<Ts>,
}

impl<T> Default for Out<T> {
    fn default() -> Out<T> {
        Out { txs: Vec::new(), summaries: Vec::new(), frontier: None }
    }
}

impl Shard {
    fn new(cfg: &PipelineConfig, http: Option<&HttpConfig>, shards: usize, budget: Budget) -> Shard {
        // Caps on what all connections hold together are shared out.
        let mut tcp = cfg.tcp.clone();
        tcp.budget = budget.clone();
        tcp.max_connections = (tcp.max_connections / shards).max(1);
        tcp.max_ooo_total = (tcp.max_ooo_total / shards).max(1);
        let http = http.map(|h| {
            let mut h = h.clone();
            // Half of the ordering caps for the shards, half for the merge.
            h.max_held = (h.max_held / 2 / shards).max(1);
            h.max_held_bytes = (h.max_held_bytes / 2 / shards).max(1);
            h.budget = budget.clone();
            h.keep_every_body |= cfg.store.is_some();
            let mut a = HttpAnalyzer::new(h, Finished::default());
            if let Some(store) = &cfg.store {
                a.set_tap(store.tap(shards));
            }
            a
        });
        Shard { tcp: Reassembler::new(tcp), sink: ShardSink { http, summaries: Vec::new() }, http_stats: None }
    }

    /// Reassembles and parses this shard's part of a batch into `out`
    /// (emptied by the merge, its room kept); after the last, ends every
    /// connection and releases everything held.
    fn step<P: Prepare>(
        &mut self,
        segs: &[Seg],
        batch: &Batch,
        now: Option<Ts>,
        last: bool,
        prep: &P,
        out: &mut Out<P::Item>,
    ) {
        for s in segs {
            self.tcp.process_hashed(&s.seg.with_payload(batch.payload(s)), s.flow, &mut self.sink);
        }
        if let Some(now) = now {
            self.tcp.advance(now, &mut self.sink);
        }
        out.frontier = None;
        if out.txs.capacity() > KEPT_READY {
            out.txs = Vec::new();
        }
        let mut txs = Finished::default();
        if last {
            self.tcp.finish(&mut self.sink);
            if let Some(h) = self.sink.http.take() {
                let stats;
                (txs, stats) = h.finish();
                self.http_stats = Some(stats);
            }
        } else if let Some(h) = &mut self.sink.http {
            out.frontier = now.map(|now| h.advance(now));
            txs = std::mem::take(h.sink_mut());
        }
        out.txs.extend(txs.0.drain(..).map(|mut tx| {
            // What they keep is the stage's to charge: the shard's
            // budget is its own.
            tx.uncharge();
            let key = (tx.timing.start(), tx.conn, tx.depth);
            let item = Box::new(prep.prepare(tx));
            let cost = std::mem::size_of::<P::Item>() + P::held_bytes(&item);
            Ready { key, item, cost }
        }));
        // Its room is the shard's for the next batch (the list would grow
        // from nothing each time), unless a burst made it large.
        if txs.0.capacity() <= KEPT_TXS
            && let Some(h) = &mut self.sink.http
        {
            *h.sink_mut() = txs;
        }
        // The summaries go as they are; the merge's emptied vector is the
        // next batch's (a summary is some 450 bytes: grown from nothing,
        // a batch's were copied several times).
        std::mem::swap(&mut out.summaries, &mut self.sink.summaries);
        if self.sink.summaries.capacity() > KEPT_SUMMARIES {
            self.sink.summaries = Vec::new();
        }
    }
}

/// Where the reading stands.
#[derive(Default)]
struct ReadState {
    errors: Vec<String>,
    edge: Edge,
}

/// The reader, run as one task: it frames packets into a batch (holding
/// the reader's buffers they lie in, or copying them), a batch ahead of
/// the decoding.
struct Reading<'c> {
    reader: &'c mut dyn PacketSource,
    state: ReadState,
    cfg: &'c PipelineConfig,
}

impl Reading<'_> {
    /// Reads the next batch's frames into `frames` (emptied first). A
    /// frame is not copied where the source shares its buffer: the batch
    /// holds the buffer instead.
    fn read(&mut self, frames: &mut Frames) {
        frames.blocks.clear();
        frames.bytes.clear();
        frames.frames.clear();
        let mut bytes = 0;
        frames.edge = self.fill(|pkt, block| {
            let len = pkt.data.len();
            let (block, start) = match block.and_then(|b| Some((b, b.position(pkt.data)?))) {
                Some((b, at)) => (block_index(&mut frames.blocks, b), at),
                None => {
                    let start = frames.bytes.len();
                    frames.bytes.extend_from_slice(pkt.data);
                    (FRAMES, start)
                }
            };
            frames.frames.push(Frame {
                frame: pkt.frame,
                source: pkt.source,
                ts: pkt.ts,
                linktype: pkt.linktype,
                orig_len: pkt.orig_len,
                block,
                start,
                end: start + len,
            });
            bytes += len;
            frames.frames.len() < BATCH_PACKETS && bytes < BATCH_BYTES
        });
    }

    /// Hands the packets of one batch to `take`, which says whether the
    /// batch has room for more, until it has none, a stop is asked, or the
    /// source has nothing for now or is over; then where the input stands.
    /// Read errors are noted and reading goes on.
    fn fill(&mut self, mut take: impl FnMut(&pov_capture::Packet<'_>, Option<&Block>) -> bool) -> Edge {
        loop {
            if self.cfg.stop.requested().is_some() {
                // Stop where we are: no flush of open connections, whose
                // transactions would only be thrown away.
                self.state.edge.stopped = true;
                break;
            }
            match self.reader.next_shared() {
                Ok(Some((pkt, block))) => {
                    if !take(&pkt, block) {
                        break;
                    }
                }
                // A live source has nothing for now: work on what was
                // read. The input is over only when the source says so.
                Ok(None) => {
                    self.state.edge.done = self.reader.ended();
                    self.state.edge.clock = self.state.edge.clock.max(self.reader.clock());
                    break;
                }
                Err(e) => self.state.errors.push(e.to_string()),
            }
        }
        // Asked while the last read was waiting (a pipe): stopped all the same.
        self.state.edge.stopped |= self.cfg.stop.requested().is_some();
        self.state.edge
    }
}

/// How many frames ahead the decoding asks for the headers of the frame it
/// will decode (see [`pov_capture::hint`]). On the 1.5 GB server-side
/// capture with two threads, the decoding's share of the samples went from
/// 17 to 20 % to 13 % with 8 or 16 (16 a little lower); 4 did less.
const PREFETCH_FRAMES: usize = 16;

/// Where the decoding stands.
#[derive(Default)]
struct DecodeState {
    packets: u64,
    first_ts: Option<Ts>,
    last_ts: Option<Ts>,
    /// Packets the run's filter left out.
    filtered_out: u64,
}

/// The decoder, run as one task (a batch behind the reader, a batch ahead
/// of the shards): the run's filter, decoding, and the split by shard.
struct Decoding<'c> {
    decoder: Decoder,
    state: DecodeState,
    cfg: &'c PipelineConfig,
}

impl Decoding<'_> {
    /// Decodes `frames` into `batch`, which takes their buffers (and gives
    /// its own, emptied, in exchange).
    fn decode(&mut self, frames: &mut Frames, batch: &mut Batch) {
        batch.clear();
        // The frames were read on another core (most of the time): the
        // headers of the frame some way ahead are asked for now, so that
        // they are in this core's cache when its turn comes.
        for (i, f) in frames.frames.iter().enumerate() {
            if let Some(next) = frames.frames.get(i + PREFETCH_FRAMES) {
                pov_capture::hint::prefetch(frames.region(next.block), next.start);
            }
            let region = frames.region(f.block);
            let pkt = pov_capture::Packet {
                frame: f.frame,
                source: f.source,
                ts: f.ts,
                linktype: f.linktype,
                data: region.get(f.start..f.end).unwrap_or_default(),
                orig_len: f.orig_len,
            };
            self.packet(&pkt, batch, region, f.block);
        }
        // The batch takes the frames' buffers (and gives its own, emptied,
        // in exchange): the blocks keep their indexes.
        std::mem::swap(&mut batch.blocks, &mut frames.blocks);
        std::mem::swap(&mut batch.frames, &mut frames.bytes);
        self.end(frames.edge, batch);
    }

    /// Reads and decodes the next batch into `batch` in one go, as
    /// [`Reading::read`] then [`Decoding::decode`] would (the same
    /// batches), with each packet's headers still in cache: on one thread.
    fn read_and_decode(&mut self, reading: &mut Reading<'_>, batch: &mut Batch) {
        batch.clear();
        let (mut packets, mut bytes) = (0, 0);
        let edge = reading.fill(|pkt, block| {
            packets += 1;
            bytes += pkt.data.len();
            // The batch holds the reader's buffer rather than a copy of the
            // payload, where the source shares it (a payload elsewhere, put
            // together by the decoder, is copied by `Batch::push`).
            match block {
                Some(b) => {
                    let i = block_index(&mut batch.blocks, b);
                    self.packet(pkt, batch, b.bytes(), i);
                }
                None => self.packet(pkt, batch, &[], OWN),
            }
            packets < BATCH_PACKETS && bytes < BATCH_BYTES
        });
        self.end(edge, batch);
    }

    /// One packet: filtered, counted, decoded, its segment put in its
    /// shard's part (its payload is in `region`, the bytes `block` names,
    /// or copied).
    fn packet(&mut self, pkt: &pov_capture::Packet<'_>, batch: &mut Batch, region: &[u8], block: u32) {
        if let Some(filter) = &self.cfg.filter
            && !filter.matches(pkt)
        {
            self.state.filtered_out += 1;
            return;
        }
        let st = &mut self.state;
        st.packets += 1;
        if st.first_ts.is_none_or(|t| pkt.ts < t) {
            st.first_ts = Some(pkt.ts);
        }
        if st.last_ts.is_none_or(|t| pkt.ts > t) {
            st.last_ts = Some(pkt.ts);
        }
        if let Some(seg) = self.decoder.decode(pkt) {
            let flow = pov_capture::tcp::shard_hash(&seg);
            let i = (flow % batch.parts.len() as u64) as usize;
            batch.push(i, &seg, flow, region, block);
        }
    }

    /// The batch's time and whether it is the last.
    fn end(&mut self, edge: Edge, batch: &mut Batch) {
        if edge.done && !edge.stopped {
            self.decoder.finish();
        }
        // A quiet live source moves time on by its clock.
        batch.now = self.state.last_ts.max(edge.clock);
        batch.last = edge.last();
    }
}

/// Transactions from every shard, handed on in order.
/// Where a transaction goes in the merged order: request start,
/// connection, depth, then arrival.
type Key = (Ts, u64, u32, u64);

struct Merge<T> {
    /// Boxed: a transaction is some 600 bytes, which the tree's nodes
    /// would otherwise shift on every insert.
    held: BTreeMap<Key, (Box<T>, usize)>,
    /// A batch's items and their sorted keys (room kept between batches).
    txs: Vec<Option<(Box<T>, usize)>>,
    keys: Vec<(Key, usize)>,
    /// A batch's summaries' order: last packet, connection, shard, place
    /// (room kept between batches).
    sums: Vec<(Ts, ConnId, usize, usize)>,
    seq: u64,
    max_held: usize,
    /// Most kept body bytes held.
    max_held_bytes: usize,
    held_bytes: usize,
    /// What is held, charged to the run's budget (the stage's part).
    charge: Charge,
    cap_releases: u64,
    peak: usize,
    /// The latest request start handed on.
    latest: Option<Ts>,
    /// Handed on after one that started later.
    out_of_order: u64,
    /// What the shards promised at the last batch: nothing handed on
    /// later starts before it.
    bound: Ts,
}

impl<T> Merge<T> {
    /// Takes what the shards released from one batch and hands on what no
    /// shard can still precede (everything, after the last batch).
    fn feed<D: Downstream<Item = T> + ?Sized>(&mut self, outs: &mut [Out<T>], down: &mut D, last: bool) -> Flow {
        // The summaries in order of their last packet: their keys are
        // sorted, not the summaries (some 450 bytes each; a capture shorter
        // than the tombs' linger has every one of them in its last batch).
        // Ties keep the shards' order, as a stable sort of them all would.
        let mut sums = std::mem::take(&mut self.sums);
        for (i, o) in outs.iter().enumerate() {
            sums.extend(o.summaries.iter().enumerate().map(|(j, s)| (s.last_ts, s.id, i, j)));
        }
        sums.sort_unstable();
        for &(_, _, i, j) in &sums {
            if let Some(s) = outs.get(i).and_then(|o| o.summaries.get(j))
                && down.on_summary(s)?.is_break()
            {
                return BREAK;
            }
        }
        sums.clear();
        self.sums = sums;
        for o in outs.iter_mut() {
            o.summaries.clear();
        }
        // This batch's transactions, in order, merged with those held
        // from earlier ones: what starts before every shard's frontier goes
        // on, and only the rest is held.
        // The keys are sorted, not the transactions (which would be moved
        // on every swap); each is moved once, when it goes.
        // Both vectors keep their room from batch to batch: fresh memory
        // for each batch cost more than the work on it.
        let mut txs = std::mem::take(&mut self.txs);
        let mut keys = std::mem::take(&mut self.keys);
        for o in outs.iter_mut() {
            for r in o.txs.drain(..) {
                self.seq += 1;
                let (start, conn, depth) = r.key;
                keys.push(((start, conn, depth, self.seq), txs.len()));
                txs.push(Some((r.item, r.cost)));
            }
        }
        keys.sort_unstable();
        let bound = if last { None } else { Some(outs.iter().map(|o| o.frontier.unwrap_or(Ts(i64::MIN))).min()) };
        let below = |k: &Key| bound.is_none_or(|b| b.is_some_and(|b| k.0 < b));
        // What one batch hands on is bounded by what came in with it (and
        // a half more): when a frontier moves far at once, what it frees
        // goes on over the next batches, while the shards work on them,
        // rather than in one go with the shards' threads idle until the
        // stage behind is done.
        let mut quota = if last { usize::MAX } else { keys.len() + keys.len() / 2 + 256 };
        let mut new = keys.drain(..).filter_map(|(k, i)| Some((k, txs.get_mut(i)?.take()?))).peekable();
        loop {
            if quota == 0 {
                break;
            }
            quota -= 1;
            let from_new = match (new.peek(), self.held.first_key_value()) {
                (Some((a, _)), Some((b, _))) => a < b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if from_new {
                match new.next_if(|(k, _)| below(k)) {
                    Some((k, (tx, _))) => {
                        self.note(k.0);
                        if down.on_transaction(*tx)?.is_break() {
                            return BREAK;
                        }
                    }
                    None => break,
                }
            } else {
                match self.held.first_entry() {
                    Some(e) if below(e.key()) => {
                        let start = e.key().0;
                        let (tx, cost) = e.remove();
                        self.note(start);
                        self.unhold(cost);
                        if down.on_transaction(*tx)?.is_break() {
                            return BREAK;
                        }
                    }
                    _ => break,
                }
            }
        }
        for (k, (tx, cost)) in new {
            self.held_bytes += cost;
            self.charge.grow(cost);
            self.held.insert(k, (tx, cost));
        }
        // The promise to the stage: what is handed on later starts at or
        // after the shards' frontier, or after what waits for its turn.
        if let Some(b) = bound {
            let waiting = self.held.first_key_value().map_or(Ts(i64::MAX), |(k, _)| k.0);
            self.bound = b.unwrap_or(Ts(i64::MIN)).min(waiting);
        }
        txs.clear();
        (self.txs, self.keys) = (txs, keys);
        // A shard whose connection waits long for an answer holds the
        // others back; memory must not grow with the capture for it. Only
        // what is over the caps goes: released down to half, the merge
        // would hand on thousands at once every few batches, with the
        // shards' threads idle until the stage behind it is done.
        while self.held.len() > self.max_held || self.held_bytes > self.max_held_bytes {
            let Some((k, (tx, cost))) = self.held.pop_first() else { break };
            self.note(k.0);
            self.unhold(cost);
            self.cap_releases += 1;
            if down.on_transaction(*tx)?.is_break() {
                return BREAK;
            }
        }
        // What stays held between batches (a batch's own transactions pass
        // through it at once).
        self.peak = self.peak.max(self.held.len());
        GO_ON
    }

    /// An item that cost `cost` is no longer held.
    fn unhold(&mut self, cost: usize) {
        self.held_bytes -= cost;
        let _ = self.charge.shrink(cost);
    }

    /// A transaction that started at `start` is handed on.
    fn note(&mut self, start: Ts) {
        match self.latest {
            Some(l) if start < l => self.out_of_order += 1,
            _ => self.latest = Some(start),
        }
    }
}

/// The kept body bytes of a transaction (what holding it costs, beyond
/// its record).
fn body_bytes(tx: &HttpTransaction) -> usize {
    tx.request_body.kept.len() + tx.response_body.kept.len()
}

/// Reads, decodes, reassembles and (with `http`) parses `files` on
/// `threads`, feeding `down` with transactions in order of request start
/// and with connection summaries. `open_errors` are carried into the
/// report; `progress` is called after every batch. When `down` says stop,
/// the run ends there ([`RunReport::halted`]); its first error ends the run
/// and is returned.
#[allow(clippy::too_many_arguments)]
pub fn run<D: Downstream + ?Sized>(
    files: Vec<CaptureFile>,
    open_errors: Vec<ReadError>,
    cfg: &PipelineConfig,
    http: Option<&HttpConfig>,
    threads: Threads,
    bytes_total: Option<u64>,
    down: &mut D,
    progress: &mut dyn FnMut(Progress),
) -> io::Result<RunReport> {
    let mut reader = PacketReader::new(files);
    run_source(&mut reader, open_errors, cfg, http, threads, bytes_total, down, progress)
}

/// As [`run`], reading `source` (a live capture, or files) instead of
/// files. The run ends when the source has [`PacketSource::ended`] (a live
/// capture: once its stop flag is set), with every open connection
/// flushed, or on `cfg.stop` (abandoned, as for files). The source's
/// capture loss is in [`RunReport::capture_loss`].
#[allow(clippy::too_many_arguments)]
pub fn run_source<D: Downstream + ?Sized>(
    source: &mut dyn PacketSource,
    open_errors: Vec<ReadError>,
    cfg: &PipelineConfig,
    http: Option<&HttpConfig>,
    threads: Threads,
    bytes_total: Option<u64>,
    down: &mut D,
    progress: &mut dyn FnMut(Progress),
) -> io::Result<RunReport> {
    let mut report = RunReport { errors: open_errors.iter().map(|e| e.to_string()).collect(), ..RunReport::default() };
    let n = threads.shards.max(1);
    // Half the memory budget is shared out to the reader and the shards,
    // each deciding on its own share (so that what is refused does not
    // depend on the threads); the stage behind the merge keeps the rest.
    let whole = cfg.budget().limit();
    let share = whole / 2 / (n + 1);
    let parts: Vec<Budget> = (0..=n).map(|_| cfg.budget().carve(share)).collect();
    let mut shards: Vec<Shard> = parts.iter().skip(1).map(|b| Shard::new(cfg, http, n, b.clone())).collect();
    let mut decode = cfg.decode.clone();
    decode.budget = parts.first().cloned().unwrap_or_else(|| cfg.budget().clone());
    let mut reading = Reading { reader: source, state: ReadState::default(), cfg };
    let mut decoding = Decoding { decoder: Decoder::new(decode), state: DecodeState::default(), cfg };
    // Room for a batch's bytes (copied only from a source that shares no
    // buffer) and a fair share of its packets from the start: the first
    // batches do not grow their buffers by copying them (12 M instructions
    // on a 23 MB night). Memory not written to is not resident.
    let new_frames = || Frames {
        bytes: Vec::with_capacity(BATCH_BYTES + (64 << 10)),
        frames: Vec::with_capacity(BATCH_PACKETS),
        ..Frames::default()
    };
    let new_batch = || Batch {
        blocks: Vec::new(),
        frames: Vec::new(),
        own: Vec::new(),
        parts: (0..n).map(|_| Vec::with_capacity(BATCH_PACKETS * 2 / n.max(1))).collect(),
        now: None,
        last: false,
    };
    let (mut cur, mut next) = (new_batch(), new_batch());
    // Frames read and waiting to be decoded, and those being read.
    let (mut read, mut reading_into) = (new_frames(), new_frames());
    let mut merge = Merge {
        held: BTreeMap::new(),
        seq: 0,
        max_held: http.map_or(usize::MAX, |h| (h.max_held / 2).max(1)),
        // (And a quarter of the memory budget at most: the shards'
        // ordering lets go when the budget is full, the merge, which must
        // not depend on how the threads interleave, at this fixed share.)
        max_held_bytes: http.map_or(usize::MAX, |h| (h.max_held_bytes / 2).min(whole / 4).max(1)),
        held_bytes: 0,
        charge: cfg.budget().empty(Holder::Ordering),
        cap_releases: 0,
        peak: 0,
        latest: None,
        out_of_order: 0,
        bound: Ts(i64::MIN),
        txs: Vec::new(),
        keys: Vec::new(),
        sums: Vec::new(),
    };
    let prep = down.preparer();
    let mut prev: Vec<Out<D::Item>> = (0..n).map(|_| Out::default()).collect();
    let mut outs: Vec<Out<D::Item>> = (0..n).map(|_| Out::default()).collect();
    let pool = if threads.threads > 1 {
        // The calling thread is one of them (it steps shards once the
        // merge is done).
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.threads - 1)
            .thread_name(|i| format!("pov-{i}"))
            .build()
            .ok()
    } else {
        None
    };
    let mut peak_active = 0u64;
    // Shards charge the one budget at once: its peaks are taken between
    // batches, where what is held does not depend on the threads.
    let everyone: Vec<&Budget> = std::iter::once(cfg.budget()).chain(&parts).collect();
    for b in &everyone {
        b.sample_peaks(true);
    }
    // On several threads, three stages a batch apart: the reader frames
    // batch k + 2 while the decoder splits batch k + 1 by shard and the
    // shards step batch k. On one, a batch is read and decoded in one go.
    if pool.is_some() {
        reading.read(&mut read);
        decoding.decode(&mut read, &mut cur);
        if !cur.last {
            reading.read(&mut read);
        }
    } else {
        decoding.read_and_decode(&mut reading, &mut cur);
    }
    let mut flow = GO_ON;
    loop {
        if reading.state.edge.stopped {
            break;
        }
        let (now, last) = (cur.now, cur.last);
        // Whether the reader goes on (the frames read last are not the end).
        let more = !last && !read.edge.last();
        flow = match &pool {
            Some(pool) => {
                // The shards' steps are claimed one at a time, by the pool
                // and, once the merge is done, by this thread too: it never
                // waits idle while shards are left to step.
                let (batch, prep) = (&cur, &prep);
                let jobs: Vec<Mutex<Option<Job<'_, D::Item>>>> = shards
                    .iter_mut()
                    .zip(&cur.parts)
                    .zip(outs.iter_mut())
                    .map(|((shard, part), out)| Mutex::new(Some((shard, part, out))))
                    .collect();
                let claimed = AtomicUsize::new(0);
                // The next batch's decoding is claimed first, by whichever
                // thread comes to work first (the calling thread, which
                // cannot take the pool's tasks, after the merge).
                let decode = Mutex::new((!last).then_some((&mut decoding, &mut read, &mut next)));
                let work = || {
                    if let Some((decoding, read, next)) = decode.lock().ok().and_then(|mut d| d.take()) {
                        decoding.decode(read, next);
                    }
                    while let Some(job) = jobs.get(claimed.fetch_add(1, Ordering::Relaxed)) {
                        if let Some((shard, part, out)) = job.lock().ok().and_then(|mut j| j.take()) {
                            shard.step(part, batch, now, last, prep, out);
                        }
                    }
                };
                pool.in_place_scope(|s| {
                    if more {
                        let (reading, into) = (&mut reading, &mut reading_into);
                        s.spawn(move |_| reading.read(into));
                    }
                    for _ in 0..pool.current_num_threads() {
                        s.spawn(|_| work());
                    }
                    let flow = merge.feed(&mut prev, down, false);
                    work();
                    flow
                })
            }
            None => {
                for ((shard, part), out) in shards.iter_mut().zip(&cur.parts).zip(outs.iter_mut()) {
                    shard.step(part, &cur, now, last, &prep, out);
                }
                let flow = merge.feed(&mut prev, down, false);
                if !last && matches!(flow, Ok(ControlFlow::Continue(()))) {
                    decoding.read_and_decode(&mut reading, &mut next);
                }
                flow
            }
        };
        if !matches!(flow, Ok(ControlFlow::Continue(()))) {
            break;
        }
        if !last {
            flow = down.on_batch(merge.bound);
            if !matches!(flow, Ok(ControlFlow::Continue(()))) {
                break;
            }
        }
        peak_active = peak_active.max(shards.iter().map(|s| s.tcp.active_connections() as u64).sum());
        for b in &everyone {
            b.sample();
        }
        // The outputs the merge emptied take the next batch's, with their
        // room.
        std::mem::swap(&mut prev, &mut outs);
        progress(Progress { bytes_read: reading.reader.bytes_read(), bytes_total, packets: decoding.state.packets });
        if last {
            flow = merge.feed(&mut prev, down, true);
            break;
        }
        std::mem::swap(&mut cur, &mut next);
        if more && pool.is_some() {
            std::mem::swap(&mut read, &mut reading_into);
        }
    }
    for b in &everyone {
        b.sample_peaks(false);
    }
    report.halted = flow?.is_break();
    let (st, dec) = (reading.state, decoding.state);
    report.stopped = st.edge.stopped;
    report.errors.extend(st.errors);
    report.packets = dec.packets;
    report.first_ts = dec.first_ts;
    report.last_ts = dec.last_ts;
    report.files = reading.reader.files();
    report.warnings = reading.reader.warnings();
    report.filtered_out = dec.filtered_out;
    report.capture_loss = reading.reader.capture_loss();
    report.decode = decoding.decoder.stats().clone();
    let mut tcp = TcpStats::default();
    for s in &shards {
        tcp.merge(s.tcp.stats());
    }
    // The shards' peaks need not coincide: the sum sampled after each
    // batch is the better figure, unless one shard alone peaked higher.
    tcp.peak_active = peak_active.max(shards.iter().map(|s| s.tcp.stats().peak_active).max().unwrap_or(0));
    report.tcp = tcp;
    if http.is_some() && !report.stopped && !report.halted {
        let mut h = HttpStats::default();
        for s in &shards {
            if let Some(st) = &s.http_stats {
                h.merge(st);
            }
        }
        h.held_cap_releases += merge.cap_releases;
        h.written_out_of_order = merge.out_of_order;
        h.peak_order_buffer += merge.peak as u64;
        report.http = Some(h);
    }
    report.budget_parts = parts;
    report.budget = Some(report.budget_report(cfg.budget()));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn sample(name: &str) -> PathBuf {
        pov_capture::testing::manifest_dir().join("../../samples").join(name)
    }

    /// Every transaction of `name` (request start, connection, depth,
    /// method, URI, status, body sizes) and connection summary (id, first
    /// frame, bytes), through `shards` shards on `threads` threads.
    fn through(name: &str, threads: usize, shards: usize) -> (Vec<String>, Vec<String>, Vec<Ts>, RunReport) {
        through_path(&sample(name), threads, shards)
    }

    fn through_path(path: &Path, threads: usize, shards: usize) -> (Vec<String>, Vec<String>, Vec<Ts>, RunReport) {
        let (files, errors) = crate::pipeline::open_inputs(&[path.to_path_buf()]);
        through_source(&mut PacketReader::new(files), errors, threads, shards)
    }

    /// As [`through_path`], reading `source`.
    fn through_source(
        source: &mut dyn PacketSource,
        errors: Vec<ReadError>,
        threads: usize,
        shards: usize,
    ) -> (Vec<String>, Vec<String>, Vec<Ts>, RunReport) {
        struct Rec(Vec<String>, Vec<String>, Vec<Ts>);
        impl Downstream for Rec {
            type Item = HttpTransaction;
            type Prep = AsIs;
            fn preparer(&self) -> AsIs {
                AsIs
            }
            fn on_transaction(&mut self, tx: HttpTransaction) -> Flow {
                self.2.push(tx.timing.start());
                let req = tx
                    .request
                    .as_ref()
                    .map(|r| format!("{} {}", r.method, String::from_utf8_lossy(&r.uri)))
                    .unwrap_or_default();
                let status = tx.response.as_ref().map_or(0, |r| r.status);
                self.0.push(format!(
                    "{:?} {} {} {req} {status} {} {}",
                    tx.timing.start(),
                    tx.conn,
                    tx.depth,
                    tx.request_body.decoded_len,
                    tx.response_body.decoded_len
                ));
                GO_ON
            }
            fn on_summary(&mut self, s: &ConnSummary) -> Flow {
                self.1.push(format!(
                    "{} {} {} {}",
                    s.id, s.first_frame, s.to_server.stream_bytes, s.to_client.stream_bytes
                ));
                GO_ON
            }
        }
        let cfg = PipelineConfig::default();
        let mut rec = Rec(Vec::new(), Vec::new(), Vec::new());
        let report =
            run_source(source, errors, &cfg, Some(&cfg.http), Threads { threads, shards }, None, &mut rec, &mut |_| {})
                .unwrap();
        (rec.0, rec.1, rec.2, report)
    }

    /// A source that shares no buffer (as a live capture): its frames are
    /// copied into the batches.
    struct Copying(PacketReader);

    impl PacketSource for Copying {
        fn next_packet(&mut self) -> Result<Option<pov_capture::Packet<'_>>, ReadError> {
            self.0.next_packet()
        }
        fn bytes_read(&self) -> u64 {
            PacketSource::bytes_read(&self.0)
        }
        fn files(&self) -> Vec<pov_capture::pcap::FileStats> {
            PacketSource::files(&self.0)
        }
        fn warnings(&self) -> Vec<String> {
            PacketSource::warnings(&self.0)
        }
    }

    #[test]
    fn frames_copied_or_held_in_the_readers_buffers_give_the_same_run() {
        // The fragmented capture too: payloads put together by the
        // decoder are the batch's own bytes either way.
        let dir = std::env::temp_dir().join(format!("pov-copying-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fragmented = dir.join("fragmented.pcap");
        fragmented_shop(&fragmented);
        for path in [sample("shop.pcap"), sample("shop-lossy.pcapng"), fragmented] {
            let (txs, mut sums, _, report) = through_path(&path, 1, 16);
            assert!(!txs.is_empty(), "{path:?}");
            sums.sort();
            for threads in [1, 2] {
                let (files, errors) = crate::pipeline::open_inputs(std::slice::from_ref(&path));
                let (t2, mut s2, _, r2) = through_source(&mut Copying(PacketReader::new(files)), errors, threads, 16);
                s2.sort();
                assert_eq!((&txs, &sums), (&t2, &s2), "{path:?} copied, {threads} threads");
                assert_eq!((report.packets, report.decode.clone()), (r2.packets, r2.decode), "{path:?}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shards_and_threads_change_nothing_but_the_speed() {
        for name in ["shop.pcap", "shop-lossy.pcapng", "local-curl.pcap"] {
            let (txs, mut sums, starts, report) = through(name, 1, 1);
            assert!(!txs.is_empty() && report.errors.is_empty(), "{name}: {:?}", report.errors);
            let http = report.http.clone().unwrap_or_default();
            assert_eq!(http.transactions, txs.len() as u64, "{name}");
            // In order of request start.
            assert!(starts.windows(2).all(|w| w[0] <= w[1]) || http.late_order > 0, "{name}: out of order");
            sums.sort();
            for (threads, shards) in [(1, 16), (2, 16), (2, 3), (4, 7)] {
                let (t2, mut s2, _, r2) = through(name, threads, shards);
                assert_eq!(txs, t2, "{name}: transactions with {threads} threads, {shards} shards");
                s2.sort();
                assert_eq!(sums, s2, "{name}: summaries with {threads} threads, {shards} shards");
                assert_eq!(report.packets, r2.packets);
                assert_eq!(report.tcp.connections, r2.tcp.connections);
                assert_eq!(report.tcp.totals.stream_bytes, r2.tcp.totals.stream_bytes);
                let h2 = r2.http.unwrap_or_default();
                assert_eq!((http.complete, http.missing_bytes), (h2.complete, h2.missing_bytes));
            }
        }
    }

    /// `shop.pcap` with every IPv4 packet of more than 64 bytes of TCP
    /// sent as two IP fragments, as a pcap file.
    fn fragmented_shop(path: &Path) {
        let mut r = PacketReader::new(vec![CaptureFile::open(&sample("shop.pcap")).unwrap()]);
        let mut out: Vec<u8> = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        // (The version's two halves as two little-endian u16s: 2, then 4.)
        out[4..8].copy_from_slice(&[2, 0, 4, 0]);
        let mut record = |ts: Ts, frame: &[u8]| {
            let (sec, usec) = (ts.0.div_euclid(1_000_000_000), ts.0.rem_euclid(1_000_000_000) / 1000);
            for v in [sec as u32, usec as u32, frame.len() as u32, frame.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(frame);
        };
        let checksum = |h: &mut [u8]| {
            h[10..12].fill(0);
            let sum: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
            let sum = (sum & 0xffff) + (sum >> 16);
            h[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
        };
        let mut id = 0u16;
        while let Some(p) = r.next_packet().unwrap() {
            let d = p.data;
            let ipv4 = d.len() > 34 && d[12..14] == [8, 0] && d[14] == 0x45 && d[23] == 6;
            let body = d.get(34..).unwrap_or_default();
            if !ipv4 || body.len() <= 20 + 64 {
                record(p.ts, d);
                continue;
            }
            id = id.wrapping_add(1);
            let cut = (body.len() / 2) & !7;
            for (part, offset, more) in [(&body[..cut], 0, true), (&body[cut..], cut, false)] {
                let mut f = d[..34].to_vec();
                f[16..18].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
                f[18..20].copy_from_slice(&id.to_be_bytes());
                f[20..22].copy_from_slice(&(((offset / 8) as u16) | if more { 0x2000 } else { 0 }).to_be_bytes());
                checksum(&mut f[14..34]);
                f.extend_from_slice(part);
                record(p.ts, &f);
            }
        }
        std::fs::write(path, out).unwrap();
    }

    /// A reassembled IP datagram's payload is not in the batch's frames:
    /// the decoder's copy is kept in the batch, and the transactions are
    /// those of the capture unfragmented, on any number of threads.
    #[test]
    fn payloads_put_together_from_ip_fragments_reach_the_shards() {
        let path = std::env::temp_dir().join(format!("pov-parallel-frag-{}.pcap", std::process::id()));
        fragmented_shop(&path);
        // Transactions without their connection ids (the first frame's
        // number, which the extra frames move on).
        let strip = |txs: Vec<String>| -> Vec<String> {
            txs.iter()
                .map(|t| {
                    let mut w: Vec<&str> = t.split(' ').collect();
                    w.remove(1);
                    w.join(" ")
                })
                .collect()
        };
        let (want, _, _, whole) = through("shop.pcap", 1, 1);
        for (threads, shards) in [(1, 16), (2, 16), (2, 3)] {
            let (got, _, _, report) = through_path(&path, threads, shards);
            assert!(report.decode.fragments.reassembled > 1000, "{:?}", report.decode.fragments);
            assert_eq!(report.packets, whole.packets + report.decode.fragments.reassembled);
            assert_eq!(strip(got), strip(want.clone()), "{threads} threads, {shards} shards");
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// Takes transactions until it has `n`, then says stop, or fails.
    struct Upto {
        n: usize,
        got: Vec<HttpTransaction>,
        fail: bool,
    }

    impl Downstream for Upto {
        type Item = HttpTransaction;
        type Prep = AsIs;
        fn preparer(&self) -> AsIs {
            AsIs
        }
        fn on_transaction(&mut self, tx: HttpTransaction) -> Flow {
            self.got.push(tx);
            if self.got.len() < self.n {
                GO_ON
            } else if self.fail {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away"))
            } else {
                BREAK
            }
        }
    }

    /// `shop.pcap` given `copies` times: more packets than a batch holds.
    fn copies(threads: usize, down: &mut Upto) -> io::Result<RunReport> {
        let cfg = PipelineConfig::default();
        let (files, errors) = crate::pipeline::open_inputs(&vec![sample("shop.pcap"); 40]);
        run(files, errors, &cfg, Some(&cfg.http), Threads { threads, shards: SHARDS }, None, down, &mut |_| {})
    }

    #[test]
    fn a_stage_that_says_stop_ends_the_run_early() {
        let mut all = Upto { n: usize::MAX, got: Vec::new(), fail: false };
        let full = copies(1, &mut all).unwrap();
        assert!(!full.halted);
        for threads in [1, 2] {
            let mut five = Upto { n: 5, got: Vec::new(), fail: false };
            let cut = copies(threads, &mut five).unwrap();
            assert!(cut.halted && !cut.stopped);
            // Not one transaction after the stop, and the first five as in
            // the whole run.
            assert_eq!(five.got.len(), 5);
            let key = |t: &HttpTransaction| (t.timing.start(), t.conn, t.depth);
            assert_eq!(five.got.iter().map(key).collect::<Vec<_>>(), all.got[..5].iter().map(key).collect::<Vec<_>>());
            // Reading stopped a few batches in (the reader is a batch ahead
            // of the shards, which are one ahead of the merge), not at the
            // end of the input.
            assert!(cut.packets <= 4 * BATCH_PACKETS as u64, "{threads} threads: read {} packets", cut.packets);
            assert!(full.packets > 10 * BATCH_PACKETS as u64, "{} packets", full.packets);
        }
    }

    #[test]
    fn a_stage_error_ends_the_run_and_is_returned() {
        for threads in [1, 2] {
            let mut down = Upto { n: 3, got: Vec::new(), fail: true };
            let e = copies(threads, &mut down).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
            assert_eq!(down.got.len(), 3, "nothing handed on after the error");
        }
    }
}
