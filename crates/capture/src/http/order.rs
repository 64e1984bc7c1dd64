//! Holds finished transactions until no earlier-starting one can still
//! finish, then releases them in order of start time.

use std::collections::BTreeMap;

use super::HttpTransaction;
use crate::time::Ts;

/// The ordering buffer.
#[derive(Default)]
pub(super) struct Orderer {
    ready: BTreeMap<(Ts, u64, u32, u64), HttpTransaction>,
    seq: u64,
    released_up_to: Option<Ts>,
    late: u64,
}

impl Orderer {
    pub(super) fn push(&mut self, tx: HttpTransaction) {
        self.seq += 1;
        let start = tx.timing.start();
        if self.released_up_to.is_some_and(|w| start < w) {
            self.late += 1;
        }
        self.ready.insert((start, tx.conn, tx.depth, self.seq), tx);
    }

    pub(super) fn len(&self) -> usize {
        self.ready.len()
    }

    pub(super) fn late(&self) -> u64 {
        self.late
    }

    /// Transactions that started before `watermark`, in order.
    pub(super) fn release(&mut self, watermark: Ts) -> Vec<HttpTransaction> {
        let mut out = Vec::new();
        while let Some(e) = self.ready.first_entry() {
            if e.key().0 >= watermark {
                break;
            }
            out.push(e.remove());
        }
        if self.released_up_to.is_none_or(|w| watermark > w) {
            self.released_up_to = Some(watermark);
        }
        out
    }

    /// The `n` earliest held, in order, whatever the watermark.
    pub(super) fn release_oldest(&mut self, n: usize) -> Vec<HttpTransaction> {
        let mut out = Vec::with_capacity(n.min(self.ready.len()));
        while out.len() < n {
            let Some((_, tx)) = self.ready.pop_first() else { break };
            if self.released_up_to.is_none_or(|w| tx.timing.start() > w) {
                self.released_up_to = Some(tx.timing.start());
            }
            out.push(tx);
        }
        out
    }

    /// Everything left, in order.
    pub(super) fn drain(&mut self) -> Vec<HttpTransaction> {
        std::mem::take(&mut self.ready).into_values().collect()
    }
}
