//! One memory budget for everything held on behalf of the traffic.
//!
//! The traffic decides how much pov holds: connections open at once, bytes
//! out of order, heads and bodies being parsed, requests waiting for
//! answers, transactions held to be released in order, sessions kept whole.
//! Each of those has its own cap (a flag each); the [`Budget`] is the one
//! total over all of them, shared by every stage of a run, so that no mix
//! of inputs can hold more than it (`--memory-budget`, default
//! [`DEFAULT_BUDGET`]).
//!
//! A stage asks before it holds more ([`Budget::try_grow`], or a
//! [`Charge`] that gives the bytes back when it is dropped). When the
//! budget says no, the stage does what its own cap does in that case (a
//! body is no longer kept, the longest idle connection is evicted, held
//! out-of-order bytes are flushed as a gap, a transaction is released out
//! of order) and the refusal is counted by [`Holder`] ([`BudgetReport`]),
//! so the run goes on and says what it left out.
//!
//! Counts are of payload bytes plus a fixed estimate of each record's own
//! size, not of the allocator's pages: the budget is a bound on what the
//! traffic can make pov hold, not a measure of its resident memory (which
//! adds the program, the output writers and the allocator's slack).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Default budget: sized so that, with every other cap at its default,
/// pov's peak resident memory stays at or under 256 MiB on any input.
pub const DEFAULT_BUDGET: usize = 160 << 20;

/// What holds memory on behalf of the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// TCP connections tracked (open, and closed ones lingering).
    Connections,
    /// Out-of-order bytes waiting for the bytes before them.
    OutOfOrder,
    /// IP fragments waiting for the rest of their datagram.
    Fragments,
    /// HTTP heads being received, and bytes being scanned for the next
    /// message.
    Heads,
    /// Decoded HTTP bodies kept (for error-page rules and replays), and
    /// decompressor state.
    Bodies,
    /// Requests waiting for their answers.
    Pending,
    /// Finished transactions held to be released in request-time order.
    Ordering,
    /// Transactions of open sessions, and per-user state.
    Sessions,
    /// Transactions kept whole for a replay.
    Replay,
}

impl Holder {
    /// Every holder, in report order.
    pub const ALL: [Holder; 9] = [
        Holder::Connections,
        Holder::OutOfOrder,
        Holder::Fragments,
        Holder::Heads,
        Holder::Bodies,
        Holder::Pending,
        Holder::Ordering,
        Holder::Sessions,
        Holder::Replay,
    ];

    /// Snake-case name (the key in reports).
    pub fn as_str(self) -> &'static str {
        match self {
            Holder::Connections => "connections",
            Holder::OutOfOrder => "out_of_order",
            Holder::Fragments => "fragments",
            Holder::Heads => "heads",
            Holder::Bodies => "bodies",
            Holder::Pending => "pending",
            Holder::Ordering => "ordering",
            Holder::Sessions => "sessions",
            Holder::Replay => "replay",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct Inner {
    /// Lowered when a share is carved out ([`Budget::carve`]).
    limit: AtomicUsize,
    used: AtomicUsize,
    peak: AtomicUsize,
    held: [AtomicUsize; Holder::ALL.len()],
    peak_held: [AtomicUsize; Holder::ALL.len()],
    refused: [AtomicU64; Holder::ALL.len()],
    /// Peaks are taken only by [`Budget::sample`] (see
    /// [`Budget::sample_peaks`]).
    sampled: std::sync::atomic::AtomicBool,
}

/// The shared budget; cloning gives another handle to the same one. See
/// the module docs.
#[derive(Clone)]
pub struct Budget(Arc<Inner>);

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("limit", &self.limit()).field("used", &self.used()).finish()
    }
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::new(DEFAULT_BUDGET)
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget(Arc::new(Inner {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            held: std::array::from_fn(|_| AtomicUsize::new(0)),
            peak_held: std::array::from_fn(|_| AtomicUsize::new(0)),
            refused: std::array::from_fn(|_| AtomicU64::new(0)),
            sampled: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// With `on`, peaks are no longer followed on every charge but taken
    /// when [`Budget::sample`] is called: for threads that charge one
    /// budget at once, where the peak of every instant depends on how they
    /// happened to interleave, and the holdings at agreed points (between
    /// batches) do not. Turning it off samples once more.
    pub fn sample_peaks(&self, on: bool) {
        if !on {
            self.sample();
        }
        self.0.sampled.store(on, Ordering::Relaxed);
    }

    /// Folds what is held now into the peaks.
    pub fn sample(&self) {
        let i = &self.0;
        i.peak.fetch_max(self.used(), Ordering::Relaxed);
        for h in Holder::ALL {
            i.peak_held[h.index()].fetch_max(self.held(h), Ordering::Relaxed);
        }
    }

    /// No limit (bytes are still counted).
    pub fn unlimited() -> Budget {
        Budget::new(usize::MAX)
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.0.limit.load(Ordering::Relaxed)
    }

    /// A budget of its own for a part of the run (a shard, the reader),
    /// `n` bytes taken off this one's limit (an unlimited budget gives an
    /// unlimited one). Parts that run on threads of their own decide on
    /// their own holdings only, so what they are refused does not depend
    /// on how the threads interleave; what they hold is reported with the
    /// rest ([`BudgetReport::merge`]).
    pub fn carve(&self, n: usize) -> Budget {
        if self.limit() == usize::MAX {
            return Budget::unlimited();
        }
        let n = n.min(self.limit());
        self.0.limit.fetch_sub(n, Ordering::Relaxed);
        Budget::new(n)
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Bytes `h` holds now.
    pub fn held(&self, h: Holder) -> usize {
        self.0.held[h.index()].load(Ordering::Relaxed)
    }

    /// More is held than the limit (after forced growth).
    pub fn over(&self) -> bool {
        self.used() > self.limit()
    }

    /// `n` more bytes would fit.
    pub fn fits(&self, n: usize) -> bool {
        self.used().saturating_add(n) <= self.limit()
    }

    /// Seven eighths of the budget are used: holders that can let go early
    /// (transactions held for ordering) should.
    pub fn pressed(&self) -> bool {
        self.used() > self.limit() / 8 * 7
    }

    /// At most three quarters of the budget are used: holders that let go
    /// under pressure can stop.
    pub fn relieved(&self) -> bool {
        self.used() <= self.limit() / 4 * 3
    }

    /// `h` wants `n` more bytes: granted (and counted) if they fit,
    /// refused (and the refusal counted) if not.
    pub fn try_grow(&self, h: Holder, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let i = &self.0;
        let before = i.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.limit() {
            i.used.fetch_sub(n, Ordering::Relaxed);
            i.refused[h.index()].fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.note(h, before + n, n);
        true
    }

    /// `h` holds `n` more bytes whatever the limit (what cannot be
    /// refused, such as the connection a packet belongs to; the holder then
    /// frees something else, see [`Budget::over`]).
    pub fn grow(&self, h: Holder, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.0.used.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        self.note(h, now, n);
    }

    fn note(&self, h: Holder, now: usize, n: usize) {
        let i = &self.0;
        let held = i.held[h.index()].fetch_add(n, Ordering::Relaxed) + n;
        if !i.sampled.load(Ordering::Relaxed) {
            i.peak.fetch_max(now, Ordering::Relaxed);
            i.peak_held[h.index()].fetch_max(held, Ordering::Relaxed);
        }
    }

    /// `h` gave back `n` bytes.
    pub fn shrink(&self, h: Holder, n: usize) {
        if n == 0 {
            return;
        }
        let i = &self.0;
        i.used.fetch_sub(n, Ordering::Relaxed);
        i.held[h.index()].fetch_sub(n, Ordering::Relaxed);
    }

    /// Counts a refusal that `h` decided on its own (its holdings pushed the
    /// budget over, and it let something go).
    pub fn refused(&self, h: Holder) {
        self.0.refused[h.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A charge of `n` bytes to `h` if they fit.
    pub fn try_charge(&self, h: Holder, n: usize) -> Option<Charge> {
        self.try_grow(h, n).then(|| Charge { budget: Some(self.clone()), holder: h, bytes: n })
    }

    /// A charge of `n` bytes to `h`, whatever the limit.
    pub fn charge(&self, h: Holder, n: usize) -> Charge {
        self.grow(h, n);
        Charge { budget: Some(self.clone()), holder: h, bytes: n }
    }

    /// An empty charge to `h`, to grow later.
    pub fn empty(&self, h: Holder) -> Charge {
        Charge { budget: Some(self.clone()), holder: h, bytes: 0 }
    }

    /// What the budget saw: limit, peak, and refusals by holder.
    pub fn report(&self) -> BudgetReport {
        let i = &self.0;
        let by = |f: &dyn Fn(usize) -> u64| -> Vec<(String, u64)> {
            Holder::ALL.iter().map(|h| (h.as_str().to_string(), f(h.index()))).filter(|(_, n)| *n > 0).collect()
        };
        BudgetReport {
            limit: if self.limit() == usize::MAX { None } else { Some(self.limit() as u64) },
            peak_bytes: i.peak.load(Ordering::Relaxed) as u64,
            held_bytes: self.used() as u64,
            peak_by_holder: by(&|k| i.peak_held[k].load(Ordering::Relaxed) as u64).into_iter().collect(),
            refused: by(&|k| i.refused[k].load(Ordering::Relaxed)).into_iter().collect(),
        }
    }
}

/// Bytes charged to a budget, given back when dropped. A clone is not
/// charged (it holds nothing of the budget's).
pub struct Charge {
    budget: Option<Budget>,
    holder: Holder,
    bytes: usize,
}

impl Charge {
    /// A charge to no budget.
    pub fn none() -> Charge {
        Charge { budget: None, holder: Holder::Bodies, bytes: 0 }
    }

    /// Charged to a budget (not [`Charge::none`]).
    pub fn is_bound(&self) -> bool {
        self.budget.is_some()
    }

    /// Bytes charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `n` more bytes, if the budget has room (always, without a budget).
    pub fn try_grow(&mut self, n: usize) -> bool {
        let ok = self.budget.as_ref().is_none_or(|b| b.try_grow(self.holder, n));
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// `n` more bytes, whatever the limit.
    pub fn grow(&mut self, n: usize) {
        if let Some(b) = &self.budget {
            b.grow(self.holder, n);
        }
        self.bytes += n;
    }

    /// Charges exactly `n` bytes from now on (growing if it can, which
    /// may fail: then nothing changes and `false` is returned).
    pub fn try_set(&mut self, n: usize) -> bool {
        if n > self.bytes { self.try_grow(n - self.bytes) } else { self.shrink(self.bytes - n) }
    }

    /// Moves what it holds to `budget`, as held by `h` (whatever the
    /// limit): the budget it was charged to, if any, gets the bytes back.
    pub fn move_to(&mut self, budget: &Budget, h: Holder) {
        let mut to = budget.empty(h);
        to.grow(self.bytes);
        *self = to;
    }

    /// Charges exactly `n` bytes from now on, whatever the limit.
    pub fn set(&mut self, n: usize) {
        if n > self.bytes {
            self.grow(n - self.bytes);
        } else {
            self.shrink(self.bytes - n);
        }
    }

    /// Gives back `n` bytes (at most what is charged). Always `true`.
    pub fn shrink(&mut self, n: usize) -> bool {
        let n = n.min(self.bytes);
        if let Some(b) = &self.budget {
            b.shrink(self.holder, n);
        }
        self.bytes -= n;
        true
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let n = self.bytes;
        self.shrink(n);
    }
}

impl Default for Charge {
    fn default() -> Charge {
        Charge::none()
    }
}

impl Clone for Charge {
    fn clone(&self) -> Charge {
        Charge::none()
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes)
    }
}

/// Charges never make two values differ.
impl PartialEq for Charge {
    fn eq(&self, _: &Charge) -> bool {
        true
    }
}

impl Eq for Charge {}

/// What a budget saw over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BudgetReport {
    /// The limit in bytes (`None`: unlimited).
    pub limit: Option<u64>,
    /// Most bytes held at once.
    pub peak_bytes: u64,
    /// Bytes still held when the report was made.
    pub held_bytes: u64,
    /// Most bytes each holder held at once (holders that held nothing are
    /// left out).
    pub peak_by_holder: std::collections::BTreeMap<String, u64>,
    /// Times each holder was refused (or let something go to stay within
    /// the budget); empty when the budget never acted.
    pub refused: std::collections::BTreeMap<String, u64>,
}

impl BudgetReport {
    /// Refusals over all holders.
    pub fn refusals(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Adds the report of a budget carved out of this one
    /// ([`Budget::carve`]): limits, holdings and refusals add up, and so do
    /// peaks (the parts need not peak at once, so the sum bounds the run's
    /// peak from above).
    pub fn merge(&mut self, o: &BudgetReport) {
        self.limit = match (self.limit, o.limit) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.peak_bytes += o.peak_bytes;
        self.held_bytes += o.held_bytes;
        for (k, v) in &o.peak_by_holder {
            *self.peak_by_holder.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.refused {
            *self.refused.entry(k.clone()).or_default() += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_the_limit_and_counts_refusals() {
        let b = Budget::new(100);
        assert!(b.try_grow(Holder::Bodies, 60));
        assert!(!b.try_grow(Holder::Heads, 50));
        assert!(b.try_grow(Holder::Heads, 40));
        assert_eq!(b.used(), 100);
        b.shrink(Holder::Bodies, 60);
        assert_eq!(b.held(Holder::Bodies), 0);
        b.grow(Holder::Connections, 500);
        assert!(b.over());
        let r = b.report();
        assert_eq!(r.limit, Some(100));
        assert_eq!(r.peak_bytes, 540);
        assert_eq!(r.refused.get("heads"), Some(&1));
        assert_eq!(r.peak_by_holder.get("connections"), Some(&500));
        assert_eq!(r.refusals(), 1);
    }

    #[test]
    fn a_carved_share_is_a_budget_of_its_own_and_reports_with_the_rest() {
        let b = Budget::new(1000);
        let part = b.carve(300);
        assert_eq!((b.limit(), part.limit()), (700, 300));
        assert!(!part.try_grow(Holder::Bodies, 301), "the part decides on its own share");
        assert!(part.try_grow(Holder::Bodies, 300));
        assert!(b.try_grow(Holder::Heads, 700), "and the rest on the rest");
        let mut r = b.report();
        r.merge(&part.report());
        assert_eq!((r.limit, r.peak_bytes, r.held_bytes), (Some(1000), 1000, 1000));
        assert_eq!((r.peak_by_holder.get("bodies"), r.refused.get("bodies")), (Some(&300), Some(&1)));
        assert_eq!(Budget::unlimited().carve(5).limit(), usize::MAX);
    }

    #[test]
    fn sampled_peaks_are_taken_only_when_asked() {
        let b = Budget::new(1000);
        b.sample_peaks(true);
        let c = b.charge(Holder::Bodies, 300);
        drop(b.charge(Holder::Heads, 500));
        assert_eq!(b.report().peak_bytes, 0, "not sampled yet");
        b.sample();
        let r = b.report();
        assert_eq!(
            (r.peak_bytes, r.peak_by_holder.get("bodies"), r.peak_by_holder.get("heads")),
            (300, Some(&300), None)
        );
        drop(c);
        b.sample_peaks(false);
        drop(b.charge(Holder::Heads, 700));
        assert_eq!(b.report().peak_bytes, 700, "followed again on every charge");
    }

    #[test]
    fn a_charge_moved_to_another_budget_leaves_the_first() {
        let (first, second) = (Budget::new(1000), Budget::new(100));
        let mut c = first.charge(Holder::Sessions, 300);
        c.move_to(&second, Holder::Sessions);
        assert_eq!((first.used(), second.used(), c.bytes()), (0, 300, 300), "moved whatever the limit");
        assert_eq!(second.held(Holder::Sessions), 300);
        // From no budget: the bytes are charged from now on.
        let mut free = Charge::none();
        free.grow(40);
        free.move_to(&first, Holder::Pending);
        assert_eq!((first.used(), first.held(Holder::Pending)), (40, 40));
        drop((c, free));
        assert_eq!((first.used(), second.used()), (0, 0));
    }

    #[test]
    fn charges_give_their_bytes_back_when_dropped() {
        let b = Budget::new(1000);
        {
            let mut c = b.try_charge(Holder::Bodies, 100).expect("fits");
            assert!(c.try_grow(800));
            assert!(!c.try_grow(200));
            assert_eq!(c.bytes(), 900);
            let copy = c.clone();
            assert_eq!(copy.bytes(), 0);
            assert!(c.try_set(50));
            assert_eq!(b.used(), 50);
        }
        assert_eq!(b.used(), 0);
        assert!(b.try_charge(Holder::Bodies, 1001).is_none());
        // Handles share one budget, from any thread.
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let _c = b.charge(Holder::Pending, 3);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(b.used(), 0);
    }
}
