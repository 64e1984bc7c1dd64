//! One direction's byte stream: sequence numbers unwrapped to offsets, the
//! out-of-order pieces held beyond the next byte to deliver, gaps, and the
//! direction's FIN.
//!
//! A [`Half`] knows nothing of the connection around it: whatever it tells
//! the sink goes through an [`Out`], which opens the connection first (when
//! it has not been announced yet) and names its id and direction.

use std::collections::BTreeMap;

use crate::budget::Holder;
use crate::packet::TcpSegment;
use crate::time::Ts;

use super::connection::Out;
use super::events::{DataChunk, Gap, GapReason, HalfClose, HalfStats, Retransmission, StreamSink};
use super::table::Ctx;

/// Bookkeeping bytes charged per held out-of-order piece, so a flood of
/// tiny segments cannot grow memory past the cap.
pub const HELD_OVERHEAD: usize = 64;

/// An out-of-order piece of one direction.
struct Held {
    /// The bytes; empty for a phantom piece (bytes the capture cut).
    data: Vec<u8>,
    /// Length in the stream (equals `data.len()` unless phantom).
    len: u64,
    phantom: bool,
    ts: Ts,
    frame: u64,
    peer_ack: Option<u64>,
}

impl Held {
    fn cost(&self) -> usize {
        self.data.len() + HELD_OVERHEAD
    }
}

/// The last sequence number an acknowledgment covered, when it may be a FIN
/// the capture missed rather than a lost byte.
#[derive(Clone, Copy)]
pub(super) struct Suspect {
    /// Its stream offset.
    pub(super) off: u64,
    /// The acknowledgment's capture time and frame.
    pub(super) ts: Ts,
    pub(super) frame: u64,
}

/// One direction of a connection: what one side sent.
#[derive(Default)]
pub(super) struct Half {
    /// Sequence number of stream offset 0.
    pub(super) base: Option<u32>,
    /// ISN of this side's SYN, if seen.
    pub(super) syn_isn: Option<u32>,
    /// Offset of the next byte to deliver: every byte below it has been
    /// delivered or reported missing.
    pub(super) next: u64,
    /// Held pieces beyond `next`, disjoint, keyed by offset.
    ooo: BTreeMap<u64, Held>,
    /// Cost of `ooo`.
    ooo_cost: usize,
    /// Offset of this side's FIN.
    pub(super) fin: Option<u64>,
    pub(super) fin_ts: Ts,
    pub(super) fin_frame: u64,
    /// HalfClose emitted.
    pub(super) ended: bool,
    /// Last window this side advertised (unscaled).
    pub(super) window: u16,
    /// The most recent gap, to recognise data that arrives after it.
    last_gap: (u64, u64),
    /// The peer acknowledged one sequence number beyond everything seen: a
    /// FIN the capture missed, or one lost byte.
    pub(super) fin_suspect: Option<Suspect>,
    /// Where this side's RST said its stream ended (its sequence number is
    /// the next byte it would have sent).
    pub(super) rst_end: Option<u64>,
    pub(super) stats: HalfStats,
}

impl Half {
    /// Unwraps a sequence number to a stream offset relative to `next`.
    pub(super) fn offset_of(&self, seq: u32) -> Option<i64> {
        let base = self.base?;
        let next_seq = base.wrapping_add(self.next as u32);
        let delta = seq.wrapping_sub(next_seq) as i32 as i64;
        Some(self.next as i64 + delta)
    }

    /// Would the receiver of a RST at stream offset `o` of this direction
    /// take it? Only at the sequence number it expects next (RFC 5961
    /// section 3.2; RFC 9293 section 3.10.7.4 asks for a challenge ACK
    /// otherwise): just after the last byte this side sent (held ones
    /// included), or after its FIN. One more is allowed for a FIN the
    /// capture missed.
    pub(super) fn expects_rst_at(&self, o: i64) -> bool {
        let sent = self.ooo.last_key_value().map_or(self.next, |(k, v)| (k + v.len).max(self.next)) as i64;
        let at = |end: i64| o == end || o == end + 1;
        at(self.next as i64) || at(sent) || self.fin.is_some_and(|f| at(f as i64))
    }

    /// Does a segment at stream offset `off` with `len` bytes bring bytes
    /// this side had not sent yet, right where its stream stands (not
    /// ahead of a hole, not beyond its FIN)?
    pub(super) fn continues_at(&self, off: i64, len: u32) -> bool {
        let next = self.next as i64;
        len > 0 && off <= next && off + i64::from(len) > next && self.fin.is_none_or(|f| next < f as i64)
    }

    /// Nothing sent or held yet, no SYN, no FIN.
    pub(super) fn untouched(&self) -> bool {
        self.next == 0 && self.ooo.is_empty() && self.syn_isn.is_none() && self.fin.is_none()
    }

    /// No out-of-order piece held.
    pub(super) fn nothing_held(&self) -> bool {
        self.ooo.is_empty()
    }

    /// True if a held piece reaches `off` or beyond.
    pub(super) fn holds_up_to(&self, off: u64) -> bool {
        self.ooo.last_key_value().is_some_and(|(k, v)| k + v.len >= off)
    }

    /// Takes a suspected unseen FIN as this side's FIN, if nothing came
    /// after it; true if it did (the caller then checks the half-close).
    pub(super) fn take_unseen_fin(&mut self) -> bool {
        let Some(sus) = self.fin_suspect.take() else {
            return false;
        };
        if self.fin.is_some() || self.next != sus.off || !self.ooo.is_empty() {
            return false;
        }
        self.fin = Some(sus.off);
        self.fin_ts = sus.ts;
        self.fin_frame = sus.frame;
        self.stats.unseen_fins += 1;
        true
    }

    /// Moves `next` up to `target`, delivering held pieces and reporting
    /// holes as gaps of `reason`.
    pub(super) fn advance_to<S: StreamSink + ?Sized>(
        &mut self,
        target: u64,
        reason: GapReason,
        ts: Ts,
        out: &mut Out<'_, '_, S>,
    ) {
        while self.next < target {
            let next = self.next;
            let front = self.ooo.first_key_value().map(|(k, _)| *k);
            match front {
                Some(k) if k == next => self.deliver_front(out),
                Some(k) => {
                    let end = k.min(target);
                    self.emit_gap(next, end - next, reason, ts, out);
                }
                None => self.emit_gap(next, target - next, reason, ts, out),
            }
        }
    }

    /// Reports `[offset, offset + len)` missing; `next` moves past it.
    pub(super) fn emit_gap<S: StreamSink + ?Sized>(
        &mut self,
        offset: u64,
        len: u64,
        reason: GapReason,
        ts: Ts,
        out: &mut Out<'_, '_, S>,
    ) {
        if len == 0 {
            return;
        }
        let (conn, dir) = out.open();
        self.next = offset + len;
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        self.last_gap = (offset, offset + len);
        let stats = &mut *out.ctx.stats;
        match reason {
            GapReason::AckedUnseen => stats.gap_bytes_acked_unseen += len,
            GapReason::SnaplenCut => stats.gap_bytes_snaplen += len,
            GapReason::BufferLimit => stats.gap_bytes_buffer_limit += len,
            GapReason::AtClose => stats.gap_bytes_at_close += len,
        }
        out.sink.on_gap(&Gap { conn, dir, offset, len, ts, reason });
    }

    /// Delivers the first held piece (which must start at `next`).
    fn deliver_front<S: StreamSink + ?Sized>(&mut self, out: &mut Out<'_, '_, S>) {
        let Some((off, held)) = self.ooo.pop_first() else {
            return;
        };
        let cost = held.cost();
        self.ooo_cost -= cost;
        release(out.ctx, cost);
        if held.phantom {
            self.emit_gap(off, held.len, GapReason::SnaplenCut, held.ts, out);
        } else {
            self.emit_data(off, &held.data, held.ts, held.frame, held.peer_ack, out);
        }
    }

    /// Delivers `bytes` at `offset`; `next` moves past them.
    fn emit_data<S: StreamSink + ?Sized>(
        &mut self,
        offset: u64,
        bytes: &[u8],
        ts: Ts,
        frame: u64,
        peer_ack: Option<u64>,
        out: &mut Out<'_, '_, S>,
    ) {
        if bytes.is_empty() {
            return;
        }
        let (conn, dir) = out.open();
        self.next = offset + bytes.len() as u64;
        self.stats.stream_bytes += bytes.len() as u64;
        out.sink.on_data(&DataChunk {
            conn,
            dir,
            offset,
            bytes,
            first_ts: ts,
            last_ts: ts,
            first_frame: frame,
            last_frame: frame,
            peer_ack,
            after_rst: out.after_rst(),
        });
    }

    /// Delivers held pieces that have become contiguous.
    pub(super) fn deliver_ready<S: StreamSink + ?Sized>(&mut self, out: &mut Out<'_, '_, S>) {
        while let Some((k, _)) = self.ooo.first_key_value() {
            if *k != self.next {
                break;
            }
            self.deliver_front(out);
        }
    }

    /// Emits the half-close if the FIN is reached.
    pub(super) fn check_fin<S: StreamSink + ?Sized>(&mut self, out: &mut Out<'_, '_, S>) {
        if self.ended {
            return;
        }
        let Some(fin) = self.fin else { return };
        if self.next < fin {
            return;
        }
        let (ts, frame) = (self.fin_ts, self.fin_frame);
        let (conn, dir) = out.open();
        self.ended = true;
        out.sink.on_half_close(&HalfClose { conn, dir, ts, frame });
    }

    /// Drops held pieces at or beyond the FIN.
    pub(super) fn drop_beyond_fin(&mut self, ctx: &mut Ctx<'_>) {
        let Some(fin) = self.fin else { return };
        let beyond: Vec<u64> = self.ooo.range(..).filter(|(k, v)| **k + v.len > fin).map(|(k, _)| *k).collect();
        for k in beyond {
            let Some(mut held) = self.ooo.remove(&k) else {
                continue;
            };
            let cost = held.cost();
            self.ooo_cost -= cost;
            release(ctx, cost);
            if k < fin {
                let keep = (fin - k) as usize;
                self.stats.data_after_fin_bytes += held.len - keep as u64;
                held.len = keep as u64;
                if !held.phantom {
                    held.data.truncate(keep);
                }
                let cost = held.cost();
                self.ooo_cost += cost;
                take(ctx, cost);
                self.ooo.insert(k, held);
            } else {
                self.stats.data_after_fin_bytes += held.len;
            }
        }
    }

    /// Delivers everything held, reporting the holes.
    pub(super) fn flush<S: StreamSink + ?Sized>(&mut self, reason: GapReason, ts: Ts, out: &mut Out<'_, '_, S>) {
        while let Some(k) = self.ooo.first_key_value().map(|(k, _)| *k) {
            self.advance_to(k, reason, ts, out);
            self.deliver_ready(out);
        }
    }

    /// Takes a segment's payload: in order it goes straight to the sink,
    /// ahead of a hole it is held, already delivered it is counted.
    /// `peer_window` is the window the other side last advertised.
    pub(super) fn payload<S: StreamSink + ?Sized>(
        &mut self,
        seg: &TcpSegment<'_>,
        data_seq: u32,
        peer_ack: Option<u64>,
        peer_window: u16,
        out: &mut Out<'_, '_, S>,
    ) {
        let wire_len = u64::from(seg.payload_len);
        let Some(mut off) = self.offset_of(data_seq) else {
            return;
        };
        let mut bytes = seg.payload;
        if bytes.len() as u64 > wire_len {
            bytes = &bytes[..wire_len as usize];
        }

        // Zero-window probe: one byte sent while the peer advertised no room.
        let (conn, dir) = out.names();
        if wire_len == 1 && peer_window == 0 && off == self.next as i64 && self.stats.packets > 1 {
            self.stats.zero_window_probes += 1;
        }
        self.window = seg.window;

        // A picked-up stream can see earlier bytes late: move offset 0 back
        // while nothing has been delivered yet.
        if off < 0 {
            let back = (-off) as u64;
            if self.next == 0 && self.stats.gaps == 0 && self.syn_isn.is_none() && self.fin.is_none() && back <= 1 << 20
            {
                self.rebase(back);
                off = 0;
            } else {
                let end = off + wire_len as i64;
                let before = if end <= 0 { wire_len } else { back };
                self.stats.before_start_bytes += before;
                if end <= 0 {
                    return;
                }
                bytes = bytes.get(back as usize..).unwrap_or(&[]);
                off = 0;
            }
        }
        let mut off = off as u64;
        let mut end = off + wire_len;

        // Implausible jump ahead.
        if off > self.next && off - self.next > out.ctx.cfg.max_seq_jump {
            self.stats.seq_jump_segments += 1;
            return;
        }

        // Entirely old: a retransmission or a keep-alive.
        if end <= self.next {
            if wire_len <= 1 && off + 1 == self.next {
                self.stats.keepalives += 1;
            } else {
                self.stats.retransmitted_bytes += wire_len;
                self.stats.retransmitted_segments += 1;
                self.stats.late_after_gap_bytes += overlap(self.last_gap, (off, end));
                out.sink.on_retransmission(&Retransmission {
                    conn,
                    dir,
                    start: off,
                    end,
                    ts: seg.ts,
                    frame: seg.frame,
                });
            }
            return;
        }
        // Partly old: trim the head.
        if off < self.next {
            let cut = self.next - off;
            self.stats.retransmitted_bytes += cut;
            self.stats.late_after_gap_bytes += overlap(self.last_gap, (off, self.next));
            out.sink.on_retransmission(&Retransmission {
                conn,
                dir,
                start: off,
                end: self.next,
                ts: seg.ts,
                frame: seg.frame,
            });
            bytes = bytes.get(cut as usize..).unwrap_or(&[]);
            off = self.next;
        }
        // Beyond the FIN: not part of the stream.
        if let Some(fin) = self.fin
            && end > fin
        {
            let from = off.max(fin);
            self.stats.data_after_fin_bytes += end - from;
            end = fin;
            if off >= end {
                return;
            }
            let keep = (end - off) as usize;
            if bytes.len() > keep {
                bytes = &bytes[..keep];
            }
        }
        let present_end = off + bytes.len() as u64;

        // Fast path: in order, nothing held.
        if off == self.next && self.ooo.is_empty() {
            self.emit_data(off, bytes, seg.ts, seg.frame, peer_ack, out);
            if present_end < end {
                self.emit_gap(present_end, end - present_end, GapReason::SnaplenCut, seg.ts, out);
            }
            self.check_fin(out);
            return;
        }

        if off > self.next {
            self.stats.out_of_order_segments += 1;
        }
        self.hold(out.ctx, off, present_end, Some(bytes), seg.ts, seg.frame, peer_ack);
        if present_end < end {
            self.hold(out.ctx, present_end, end, None, seg.ts, seg.frame, peer_ack);
        }
        self.deliver_ready(out);

        // Caps: per direction, then overall.
        let cfg = out.ctx.cfg;
        if self.ooo_cost > cfg.max_ooo_bytes {
            out.ctx.stats.ooo_cap_hits += 1;
            while self.ooo_cost > cfg.max_ooo_bytes {
                let Some(k) = self.ooo.first_key_value().map(|(k, _)| *k) else {
                    break;
                };
                self.advance_to(k, GapReason::BufferLimit, seg.ts, out);
                self.deliver_ready(out);
            }
        }
        if *out.ctx.ooo_total > cfg.max_ooo_total {
            out.ctx.stats.ooo_total_cap_hits += 1;
            self.flush(GapReason::BufferLimit, seg.ts, out);
        } else if cfg.budget.pressed() && self.ooo_cost > 0 {
            // The memory budget is nearly full: what this direction holds
            // goes out now, its holes reported as gaps.
            out.ctx.stats.budget_flushes += 1;
            cfg.budget.refused(Holder::OutOfOrder);
            self.flush(GapReason::BufferLimit, seg.ts, out);
        }
        self.check_fin(out);
    }

    /// Moves offset 0 back by `back` bytes (nothing delivered yet).
    fn rebase(&mut self, back: u64) {
        if let Some(b) = self.base {
            self.base = Some(b.wrapping_sub(back as u32));
        }
        let old = std::mem::take(&mut self.ooo);
        self.ooo = old.into_iter().map(|(k, v)| (k + back, v)).collect();
        if let Some(f) = self.fin.as_mut() {
            *f += back;
        }
    }

    /// Inserts `[start, end)` into the held pieces, first copy winning:
    /// only the parts not already held are added; overlapping bytes that
    /// differ from what is held are counted as conflicts. `data` is `None`
    /// for a phantom (capture-cut) range.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        ctx: &mut Ctx<'_>,
        start: u64,
        end: u64,
        data: Option<&[u8]>,
        ts: Ts,
        frame: u64,
        peer_ack: Option<u64>,
    ) {
        if start >= end {
            return;
        }
        // Held pieces that may overlap [start, end): the one starting
        // before `start`, then those starting inside.
        let mut overlapping: Vec<(u64, u64)> = Vec::new();
        if let Some((k, v)) = self.ooo.range(..start).next_back()
            && *k + v.len > start
        {
            overlapping.push((*k, *k + v.len));
        }
        overlapping.extend(self.ooo.range(start..end).map(|(k, v)| (*k, *k + v.len)));

        let mut cursor = start;
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        for (k, kend) in &overlapping {
            if *k > cursor {
                pieces.push((cursor, (*k).min(end)));
            }
            let lo = cursor.max(*k);
            let hi = end.min(*kend);
            if hi > lo {
                self.stats.retransmitted_bytes += hi - lo;
                if let (Some(new), Some(held)) = (data, self.ooo.get(k))
                    && !held.phantom
                {
                    let a = new.get((lo - start) as usize..(hi - start) as usize).unwrap_or(&[]);
                    let b = held.data.get((lo - k) as usize..(hi - k) as usize).unwrap_or(&[]);
                    let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
                    self.stats.conflicting_overlap_bytes += diff as u64;
                }
                cursor = hi;
            }
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        if pieces.is_empty() {
            self.stats.retransmitted_segments += 1;
        }
        for (a, b) in pieces {
            let held = match data {
                Some(d) => Held {
                    data: d.get((a - start) as usize..(b - start) as usize).unwrap_or(&[]).to_vec(),
                    len: b - a,
                    phantom: false,
                    ts,
                    frame,
                    peer_ack,
                },
                None => Held { data: Vec::new(), len: b - a, phantom: true, ts, frame, peer_ack },
            };
            let cost = held.cost();
            self.ooo_cost += cost;
            take(ctx, cost);
            self.ooo.insert(a, held);
        }
    }
}

/// Charges `cost` held bytes to the run's total and the memory budget.
fn take(ctx: &mut Ctx<'_>, cost: usize) {
    *ctx.ooo_total += cost;
    ctx.cfg.budget.grow(Holder::OutOfOrder, cost);
}

/// Gives back `cost` held bytes.
fn release(ctx: &mut Ctx<'_>, cost: usize) {
    *ctx.ooo_total -= cost;
    ctx.cfg.budget.shrink(Holder::OutOfOrder, cost);
}

/// Length of the intersection of two half-open ranges.
fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    let lo = a.0.max(b.0);
    let hi = a.1.min(b.1);
    hi.saturating_sub(lo)
}
