//! The requests of one connection waiting for, or receiving, their
//! responses, in the order they were sent: HTTP/1.x answers in that order
//! (pipelining included), so a response pairs with the oldest request still
//! waiting.
//!
//! Pairing costs O(1) amortised: the queue remembers where the waiting
//! requests begin (every request before that point has its answer's head)
//! and which response is being received, instead of scanning. Only after
//! the capture lost a response's boundaries does pairing look at every
//! waiting request (their acknowledgment numbers tell which one the next
//! answer belongs to); the queue never holds more than
//! [`super::HttpConfig::max_pending`] requests, malformed ones included.

use std::collections::{BTreeMap, VecDeque};

use super::HttpTransaction;
use crate::budget::Charge;
use crate::time::Ts;

/// A transaction not yet finished.
pub(super) struct Pending {
    /// The transaction as known so far.
    /// Boxed: it moves from the parser to the queue, then to the list of
    /// finished ones and the ordering buffer, and is 632 bytes.
    pub tx: Box<HttpTransaction>,
    /// Every byte of the request has come (or it was given up).
    pub req_done: bool,
    /// A final response head has been paired with it.
    pub resp_head: bool,
    /// The response is complete (or was given up).
    pub resp_done: bool,
    /// A HEAD request: its answer has no body.
    pub head: bool,
    /// A CONNECT request: a 2xx answer makes the connection a tunnel.
    pub connect: bool,
    /// Request bytes lost to a gap just before this request: a request the
    /// capture missed, whose answer comes before this one's.
    pub lost_before: u64,
    /// The position in the connection reserved for that lost request.
    pub lost_depth: Option<u32>,
    /// How much of the server's stream the client had received when it
    /// began this request: its answer starts at or after that offset.
    pub peer_ack: Option<u64>,
    /// Position in the queue's order (increasing).
    seq: u64,
    /// Its share of the memory budget while it waits.
    pub charge: Charge,
}

impl Pending {
    /// A request (or an answer without one) entering the queue.
    pub(super) fn new(tx: Box<HttpTransaction>, peer_ack: Option<u64>) -> Pending {
        let method = tx.request.as_ref().map_or("", |r| r.method.as_str());
        let (head, connect) = (method.eq_ignore_ascii_case("HEAD"), method.eq_ignore_ascii_case("CONNECT"));
        Pending {
            tx,
            req_done: false,
            resp_head: false,
            resp_done: false,
            head,
            connect,
            lost_before: 0,
            lost_depth: None,
            peer_ack,
            seq: 0,
            charge: Charge::none(),
        }
    }

    /// What it holds while it waits (the record and its request head), as
    /// charged to the memory budget. Kept bodies carry their own charge.
    pub(super) fn weight(&self) -> usize {
        std::mem::size_of::<Pending>()
            + std::mem::size_of::<HttpTransaction>()
            + self.tx.request.as_ref().map_or(0, |r| r.uri.len() + r.method.len() + r.headers.heap_bytes())
    }

    /// Waiting for its answer's head.
    pub(super) fn waiting(&self) -> bool {
        !self.resp_head
    }
}

/// The queue; see the module docs.
#[derive(Default)]
pub(super) struct Queue {
    items: VecDeque<Pending>,
    next_seq: u64,
    /// Every item before this position in the order has its answer's head
    /// (an answer's head is never taken back, and new items join at the
    /// end, so the waiting requests never begin before it).
    scan_from: u64,
    /// The item whose response is being received.
    current: Option<u64>,
    /// Start times of the items held (a multiset), for the earliest one.
    starts: BTreeMap<Ts, u32>,
    /// Items looked at while searching, in all (for the tests that bound
    /// the work per response).
    steps: u64,
}

impl Queue {
    /// Items held.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Nothing held.
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds `p` at the end. Its transaction's start time must be final
    /// (request start, or response start for an answer without request).
    /// When more than `cap` are held, the oldest is taken out and returned.
    pub(super) fn push(&mut self, mut p: Pending, cap: usize) -> Option<Pending> {
        p.seq = self.next_seq;
        self.next_seq += 1;
        *self.starts.entry(p.tx.timing.start()).or_default() += 1;
        // Most connections never have more than one request waiting: room
        // for one at first (a record is some 700 bytes; the default growth
        // would make room for four), doubling from there.
        if self.items.capacity() == 0 {
            self.items.reserve_exact(1);
        }
        self.items.push_back(p);
        if self.items.len() > cap.max(1) { self.pop_front() } else { None }
    }

    fn forget(&mut self, p: &Pending) {
        // A queue that held a burst of requests does not keep its room.
        if self.items.is_empty() && self.items.capacity() > 16 {
            self.items = VecDeque::new();
        }
        let t = p.tx.timing.start();
        if let Some(n) = self.starts.get_mut(&t) {
            *n -= 1;
            if *n == 0 {
                self.starts.remove(&t);
            }
        }
        if self.current == Some(p.seq) {
            self.current = None;
        }
    }

    /// Takes out the oldest.
    pub(super) fn pop_front(&mut self) -> Option<Pending> {
        let p = self.items.pop_front()?;
        self.forget(&p);
        Some(p)
    }

    /// Takes out the item at `i`.
    pub(super) fn remove(&mut self, i: usize) -> Option<Pending> {
        let p = self.items.remove(i)?;
        self.forget(&p);
        Some(p)
    }

    /// Takes out the items at `idx` (sorted, increasing), in order.
    pub(super) fn remove_all(&mut self, idx: &[usize]) -> Vec<Pending> {
        if idx.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(idx.len());
        let mut kept = VecDeque::with_capacity(self.items.len() - idx.len().min(self.items.len()));
        let mut next = idx.iter().copied().peekable();
        for (i, p) in std::mem::take(&mut self.items).into_iter().enumerate() {
            if next.peek() == Some(&i) {
                next.next();
                out.push(p);
            } else {
                kept.push_back(p);
            }
        }
        self.items = kept;
        for p in &out {
            self.forget(p);
        }
        out
    }

    /// The oldest item.
    pub(super) fn front(&self) -> Option<&Pending> {
        self.items.front()
    }

    /// The item at `i`.
    pub(super) fn get(&self, i: usize) -> Option<&Pending> {
        self.items.get(i)
    }

    /// The item at `i`, to update. Its transaction's start time must not
    /// change.
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut Pending> {
        self.items.get_mut(i)
    }

    /// The newest item.
    pub(super) fn back_mut(&mut self) -> Option<&mut Pending> {
        self.items.back_mut()
    }

    /// Every item, oldest first.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.items.iter_mut()
    }

    fn index_of(&self, seq: u64) -> Option<usize> {
        self.items.binary_search_by_key(&seq, |p| p.seq).ok()
    }

    /// Where the waiting requests begin (amortised O(1): each item is
    /// passed over once).
    fn waiting_start(&mut self) -> usize {
        let mut i = self.items.partition_point(|p| p.seq < self.scan_from);
        while let Some(p) = self.items.get(i) {
            self.steps += 1;
            if p.waiting() {
                break;
            }
            i += 1;
        }
        self.scan_from = self.items.get(i).map_or(self.next_seq, |p| p.seq);
        i
    }

    /// The oldest request waiting for its answer.
    pub(super) fn first_waiting(&mut self) -> Option<usize> {
        let i = self.waiting_start();
        (i < self.items.len()).then_some(i)
    }

    /// The oldest waiting request that `ok` accepts.
    pub(super) fn first_waiting_where(&mut self, ok: impl Fn(&Pending) -> bool) -> Option<usize> {
        let from = self.waiting_start();
        let found = (from..self.items.len()).find(|&i| self.items[i].waiting() && ok(&self.items[i]));
        self.steps += found.map_or(self.items.len(), |i| i + 1).saturating_sub(from) as u64;
        found
    }

    /// Every waiting request that `ok` accepts, oldest first. This looks at
    /// every waiting request: only for the loss paths.
    pub(super) fn waiting_where(&mut self, ok: impl Fn(&Pending) -> bool) -> Vec<usize> {
        let from = self.waiting_start();
        self.steps += (self.items.len() - from) as u64;
        (from..self.items.len()).filter(|&i| self.items[i].waiting() && ok(&self.items[i])).collect()
    }

    /// Items looked at while searching, so far.
    pub(super) fn steps(&self) -> u64 {
        self.steps
    }

    /// The response at `i` is now being received.
    pub(super) fn set_current(&mut self, i: usize) {
        self.current = self.items.get(i).map(|p| p.seq);
    }

    /// The item whose response is being received.
    pub(super) fn current(&self) -> Option<usize> {
        let i = self.index_of(self.current?)?;
        let p = &self.items[i];
        (p.resp_head && !p.resp_done).then_some(i)
    }

    /// The item whose response is being received, to update.
    pub(super) fn current_mut(&mut self) -> Option<&mut Pending> {
        let i = self.current()?;
        self.items.get_mut(i)
    }

    /// Some request has no complete answer yet.
    pub(super) fn any_unanswered(&mut self) -> bool {
        self.first_waiting().is_some() || self.current().is_some()
    }

    /// Start time of the earliest transaction held.
    pub(super) fn earliest(&self) -> Option<Ts> {
        self.starts.first_key_value().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TxTiming;

    fn tx(start: i64) -> Box<HttpTransaction> {
        Box::new(HttpTransaction {
            timing: TxTiming { req_start: Some(Ts(start)), ..TxTiming::default() },
            ..HttpTransaction::new(1, "10.0.0.1:1".parse().expect("addr"), "10.0.0.2:80".parse().expect("addr"), 1)
        })
    }

    /// The queue against a plain scan of the same items, over a long
    /// pseudo-random run of pushes, answers and removals.
    #[test]
    fn agrees_with_a_naive_scan() {
        let mut q = Queue::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut t = 0;
        for _ in 0..20_000 {
            match rnd() % 6 {
                0 | 1 => {
                    t += (rnd() % 3) as i64;
                    let mut p = Pending::new(tx(t), None);
                    p.req_done = true;
                    q.push(p, 64);
                }
                2 => {
                    // One response is received at a time.
                    if q.current().is_none()
                        && let Some(i) = q.first_waiting()
                    {
                        let p = q.get_mut(i).expect("item");
                        p.resp_head = true;
                        q.set_current(i);
                    }
                }
                3 => {
                    if let Some(p) = q.current_mut() {
                        p.resp_done = true;
                    }
                }
                4 => {
                    while q.front().is_some_and(|p| p.resp_done) {
                        q.pop_front();
                    }
                }
                _ => {
                    if q.len() > 2 && rnd() % 4 == 0 {
                        let i = (rnd() as usize) % q.len();
                        q.remove(i);
                    }
                }
            }
            let naive_waiting = q.items.iter().position(|p| !p.resp_head);
            assert_eq!(q.first_waiting(), naive_waiting);
            let naive_current = q.items.iter().position(|p| p.resp_head && !p.resp_done);
            assert_eq!(q.current(), naive_current);
            let naive_earliest = q.items.iter().map(|p| p.tx.timing.start()).min();
            assert_eq!(q.earliest(), naive_earliest);
            assert!(q.len() <= 64);
        }
    }

    #[test]
    fn the_cap_gives_up_the_oldest() {
        let mut q = Queue::default();
        for i in 0..5 {
            let out = q.push(Pending::new(tx(i), None), 3);
            assert_eq!(out.map(|p| p.tx.timing.start()), (i >= 3).then_some(Ts(i - 3)));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.earliest(), Some(Ts(2)));
        let gone = q.remove_all(&[0, 2]);
        assert_eq!(gone.iter().map(|p| p.tx.timing.start()).collect::<Vec<_>>(), [Ts(2), Ts(4)]);
        assert_eq!(q.earliest(), Some(Ts(3)));
    }
}
