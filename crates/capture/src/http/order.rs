//! Holds finished transactions until no earlier-starting one can still
//! finish, then releases them in order of start time.

use std::collections::BTreeMap;

use super::{Done, HttpTransaction};
use crate::budget::{Budget, Charge, Holder};
use crate::time::Ts;

/// The ordering buffer.
pub(super) struct Orderer {
    /// Boxed: a transaction is large, and the map's nodes move their
    /// values on every insert and removal.
    ready: BTreeMap<(Ts, u64, u32, u64), Box<HttpTransaction>>,
    seq: u64,
    released_up_to: Option<Ts>,
    late: u64,
    bytes: usize,
    /// The held transactions' share of the memory budget (their kept
    /// bodies carry charges of their own).
    charge: Charge,
}

/// Approximate memory a held transaction costs: kept bodies, heads, and
/// the record itself.
fn weight(tx: &HttpTransaction) -> usize {
    let head = |h: &super::Headers| h.heap_bytes();
    std::mem::size_of::<HttpTransaction>()
        + tx.request_body.kept.len()
        + tx.response_body.kept.len()
        + tx.request.as_ref().map_or(0, |r| r.uri.len() + head(&r.headers))
        + tx.response.as_ref().map_or(0, |r| r.reason.len() + head(&r.headers))
}

/// What a held transaction costs the memory budget besides its kept
/// bodies (which are charged on their own): the record and its heads.
pub(super) fn record_weight(tx: &HttpTransaction) -> usize {
    weight(tx) - tx.request_body.kept.len() - tx.response_body.kept.len()
}

impl Orderer {
    pub(super) fn new(budget: &Budget) -> Orderer {
        Orderer {
            ready: BTreeMap::new(),
            seq: 0,
            released_up_to: None,
            late: 0,
            bytes: 0,
            charge: budget.empty(Holder::Ordering),
        }
    }

    fn take(&mut self, tx: &HttpTransaction) {
        self.bytes -= weight(tx);
        self.charge.shrink(record_weight(tx));
    }

    pub(super) fn push(&mut self, tx: Box<HttpTransaction>) {
        self.seq += 1;
        let start = tx.timing.start();
        if self.released_up_to.is_some_and(|w| start < w) {
            self.late += 1;
        }
        self.bytes += weight(&tx);
        self.charge.grow(record_weight(&tx));
        self.ready.insert((start, tx.conn, tx.depth, self.seq), tx);
    }

    /// Approximate bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn len(&self) -> usize {
        self.ready.len()
    }

    pub(super) fn late(&self) -> u64 {
        self.late
    }

    /// Hands `to` the transactions that started before `watermark`, in
    /// order.
    pub(super) fn release(&mut self, watermark: Ts, mut to: impl FnMut(Box<HttpTransaction>)) {
        while let Some(e) = self.ready.first_entry() {
            if e.key().0 >= watermark {
                break;
            }
            let tx = e.remove();
            self.take(&tx);
            to(tx);
        }
        if self.released_up_to.is_none_or(|w| watermark > w) {
            self.released_up_to = Some(watermark);
        }
    }

    /// The earliest held, in order, whatever the watermark, until at most
    /// `n` transactions and `bytes` bytes are held.
    pub(super) fn release_oldest(&mut self, n: usize, bytes: usize) -> Done {
        let mut out = Vec::new();
        while self.ready.len() > n || self.bytes > bytes {
            let Some((_, tx)) = self.ready.pop_first() else { break };
            self.take(&tx);
            if self.released_up_to.is_none_or(|w| tx.timing.start() > w) {
                self.released_up_to = Some(tx.timing.start());
            }
            out.push(tx);
        }
        out
    }

    /// The earliest held, in order, while `more` says so.
    pub(super) fn release_while(&mut self, more: impl Fn() -> bool) -> Done {
        let mut out = Vec::new();
        while more() {
            let Some((_, tx)) = self.ready.pop_first() else { break };
            self.take(&tx);
            if self.released_up_to.is_none_or(|w| tx.timing.start() > w) {
                self.released_up_to = Some(tx.timing.start());
            }
            out.push(tx);
        }
        out
    }

    /// Everything left, in order.
    pub(super) fn drain(&mut self) -> Done {
        self.bytes = 0;
        self.charge.set(0);
        std::mem::take(&mut self.ready).into_values().collect()
    }
}
