//! Bounded IPv4/IPv6 fragment reassembly.
//!
//! etherparse has a defragmentation pool, but nothing in it bounds memory
//! against a flood of fragments that never complete; this one does. Each
//! incomplete datagram keeps one flat buffer (as long as the furthest byte
//! seen) and the list of byte ranges received. The pool holds at most
//! [`DecodeConfig::max_frag_datagrams`] datagrams and
//! [`DecodeConfig::max_frag_bytes`] buffer bytes, evicting the oldest
//! datagram first, and forgets a datagram once the capture clock has moved
//! [`DecodeConfig::frag_timeout`] past its first fragment.
//!
//! Overlaps keep the bytes that arrived first (a duplicate that brings
//! nothing new is dropped); the RFC 5722 rule of discarding the whole
//! datagram would lose data that the receiver may well have accepted.

use hashlink::LinkedHashMap;

use super::{DecodeConfig, FragmentStats};
use crate::budget::{Charge, Holder};
use crate::time::{Dur, Ts};

/// Largest reassembled payload: IP length fields are 16 bits.
const MAX_DATAGRAM: usize = 65_535;
/// Most disjoint byte ranges one datagram may have before it is dropped
/// (bounds the bookkeeping; real fragment trains need a handful).
const MAX_PIECES: usize = 256;

/// What identifies the fragments of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum FragKey {
    /// IPv4: addresses, protocol and identification (RFC 791).
    V4 { src: [u8; 4], dst: [u8; 4], proto: u8, id: u16 },
    /// IPv6: addresses and the fragment header's identification (RFC 8200).
    V6 { src: [u8; 16], dst: [u8; 16], id: u32 },
}

/// One fragment as the IP layer found it.
pub(super) struct Fragment<'f> {
    pub(super) key: FragKey,
    /// Byte offset of `data` in the datagram's payload.
    pub(super) offset: usize,
    /// More fragments follow (this is not the last).
    pub(super) more: bool,
    /// The payload's protocol (IPv4) or the fragment header's next header
    /// (IPv6; only the first fragment's counts).
    pub(super) proto: u8,
    pub(super) data: &'f [u8],
}

/// What became of a fragment.
pub(super) enum Insert {
    /// Stored; the datagram is still incomplete.
    Held,
    /// Not stored (counted in the stats).
    Dropped,
    /// The datagram is complete and now in the output buffer; its payload
    /// protocol.
    Complete(u8),
}

/// An incomplete datagram.
#[derive(Debug)]
struct Datagram {
    /// Capture time of its first fragment.
    created: Ts,
    /// Payload bytes, as far as the furthest fragment seen; holes are 0.
    data: Vec<u8>,
    /// Byte ranges received, sorted, disjoint and not adjacent.
    pieces: Vec<(usize, usize)>,
    /// Payload length, once the last fragment arrived.
    total: Option<usize>,
    /// Payload protocol, once the first fragment arrived.
    proto: Option<u8>,
}

/// The pool of incomplete datagrams, oldest first.
#[derive(Debug, Default)]
pub(super) struct Defrag {
    map: LinkedHashMap<FragKey, Datagram>,
    /// Sum of the `data` lengths.
    pending: usize,
    /// `pending`'s share of the memory budget (bound at the first
    /// fragment).
    charge: Charge,
}

impl Defrag {
    /// No datagram is pending.
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Buffer bytes held.
    pub(super) fn pending_bytes(&self) -> usize {
        self.pending
    }

    /// Drops the datagrams whose first fragment is older than `timeout` at
    /// capture time `now`.
    pub(super) fn expire(&mut self, now: Ts, timeout: Dur, st: &mut FragmentStats) {
        while let Some((_, d)) = self.map.front() {
            if now.since(d.created) <= timeout {
                break;
            }
            if let Some((_, d)) = self.map.pop_front() {
                self.pending = self.pending.saturating_sub(d.data.len());
            }
            st.timeouts += 1;
        }
        self.charge.set(self.pending);
    }

    /// Drops every pending datagram, counting it as unfinished.
    pub(super) fn clear(&mut self, st: &mut FragmentStats) {
        st.unfinished += u64::try_from(self.map.len()).unwrap_or(u64::MAX);
        self.map.clear();
        self.pending = 0;
        self.charge.set(0);
    }

    /// Evicts the oldest datagram other than `keep`; false if none.
    fn evict_oldest(&mut self, keep: &FragKey) -> bool {
        let Some(victim) = self.map.keys().find(|k| *k != keep).copied() else {
            return false;
        };
        if let Some(d) = self.map.remove(&victim) {
            self.pending = self.pending.saturating_sub(d.data.len());
        }
        self.charge.set(self.pending);
        true
    }

    /// Stores a fragment; when it completes its datagram, moves the payload
    /// into `out` (replacing its contents).
    pub(super) fn insert(
        &mut self,
        f: Fragment<'_>,
        now: Ts,
        cfg: &DecodeConfig,
        st: &mut FragmentStats,
        out: &mut Vec<u8>,
    ) -> Insert {
        let len = f.data.len();
        let end = f.offset.saturating_add(len);
        if end > MAX_DATAGRAM || (f.more && len == 0) {
            st.invalid += 1;
            return Insert::Dropped;
        }
        let held = self.map.get(&f.key).map(|d| (d.data.len(), d.total));
        let cur_len = match held {
            Some((cur_len, total)) => {
                let bad = match total {
                    Some(t) => end > t || (!f.more && end != t),
                    None => !f.more && end < cur_len,
                };
                if bad {
                    st.invalid += 1;
                    return Insert::Dropped;
                }
                cur_len
            }
            None => 0,
        };
        let growth = end.saturating_sub(cur_len);
        if cfg.max_frag_datagrams == 0 || cur_len.max(end) > cfg.max_frag_bytes {
            st.over_cap += 1;
            return Insert::Dropped;
        }
        if held.is_none() {
            while self.map.len() >= cfg.max_frag_datagrams && self.evict_oldest(&f.key) {
                st.evicted += 1;
            }
        }
        // Once every other datagram is gone, `pending` is `cur_len`, which
        // with `growth` fits (checked above).
        while self.pending.saturating_add(growth) > cfg.max_frag_bytes && self.evict_oldest(&f.key) {
            st.evicted += 1;
        }
        // The memory budget too: the oldest others make room, and without
        // them the fragment is refused.
        if growth > 0 {
            if !self.charge.is_bound() {
                self.charge = cfg.budget.empty(Holder::Fragments);
            }
            while !self.charge.try_set(self.pending.saturating_add(growth)) {
                if !self.evict_oldest(&f.key) {
                    st.over_cap += 1;
                    return Insert::Dropped;
                }
                st.evicted += 1;
            }
        }

        let d = self.map.entry(f.key).or_insert_with(|| Datagram {
            created: now,
            data: Vec::new(),
            pieces: Vec::new(),
            total: None,
            proto: None,
        });
        if growth > 0 {
            d.data.resize(end, 0);
            self.pending = self.pending.saturating_add(growth);
            st.peak_pending_bytes = st.peak_pending_bytes.max(u64::try_from(self.pending).unwrap_or(u64::MAX));
        }

        // Copy the bytes not held yet; compare the ones that are.
        let mut fresh = 0usize;
        let mut same = true;
        let mut cursor = f.offset;
        for &(a, b) in &d.pieces {
            if b <= f.offset {
                continue;
            }
            if a >= end {
                break;
            }
            if a > cursor {
                fresh += copy(&mut d.data, f.data, f.offset, cursor, a);
            }
            let (lo, hi) = (a.max(f.offset), b.min(end));
            if d.data.get(lo..hi) != f.data.get(lo - f.offset..hi - f.offset) {
                same = false;
            }
            cursor = cursor.max(b);
        }
        if cursor < end {
            fresh += copy(&mut d.data, f.data, f.offset, cursor, end);
        }
        let learns_end = !f.more && d.total.is_none();
        let learns_proto = f.offset == 0 && d.proto.is_none();
        if fresh < len {
            if fresh == 0 && same {
                st.duplicates += 1;
            } else {
                st.overlaps += 1;
            }
        }
        if len > 0 {
            add_piece(&mut d.pieces, f.offset, end);
        }
        if d.pieces.len() > MAX_PIECES {
            st.invalid += 1;
            if let Some(d) = self.map.remove(&f.key) {
                self.pending = self.pending.saturating_sub(d.data.len());
            }
            self.charge.set(self.pending);
            return Insert::Dropped;
        }
        if !f.more {
            d.total = Some(end);
        }
        if f.offset == 0 {
            d.proto = Some(f.proto);
        }

        let complete = match (d.total, d.proto) {
            (Some(t), Some(proto)) if d.pieces.as_slice() == [(0, t)] => Some((t, proto)),
            _ => None,
        };
        if let Some((t, proto)) = complete {
            if let Some(mut d) = self.map.remove(&f.key) {
                self.pending = self.pending.saturating_sub(d.data.len());
                std::mem::swap(out, &mut d.data);
                out.truncate(t);
            }
            self.charge.set(self.pending);
            st.reassembled += 1;
            return Insert::Complete(proto);
        }
        if fresh == 0 && !learns_end && !learns_proto {
            return Insert::Dropped;
        }
        Insert::Held
    }
}

/// Copies datagram bytes `from..to` out of a fragment that starts at
/// `offset`; returns how many were copied.
fn copy(data: &mut [u8], frag: &[u8], offset: usize, from: usize, to: usize) -> usize {
    let (Some(dst), Some(src)) =
        (data.get_mut(from..to), frag.get(from.saturating_sub(offset)..to.saturating_sub(offset)))
    else {
        return 0;
    };
    if dst.len() != src.len() {
        return 0;
    }
    dst.copy_from_slice(src);
    src.len()
}

/// Adds `start..end` to sorted, disjoint, non-adjacent ranges, merging.
pub(super) fn add_piece(pieces: &mut Vec<(usize, usize)>, start: usize, end: usize) {
    // First range that ends at or after `start` (touching counts).
    let i = pieces.partition_point(|&(_, b)| b < start);
    // Ranges from `i` that begin at or before `end` merge with the new one.
    let j = i + pieces.get(i..).unwrap_or_default().partition_point(|&(a, _)| a <= end);
    let merged = match (pieces.get(i), j.checked_sub(1).and_then(|k| pieces.get(k))) {
        (Some(&(a, _)), Some(&(_, b))) if j > i => (a.min(start), b.max(end)),
        _ => (start, end),
    };
    pieces.splice(i..j, [merged]);
}
