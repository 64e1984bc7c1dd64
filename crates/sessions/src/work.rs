//! A count of the steps the user stage takes, so that tests can prove its
//! cost is linear: every loop of the sessionizer, the page builder and the
//! classifier that looks at other transactions, pages or failures counts
//! one step per item it looks at. A test runs a generated session of
//! thousands of pages and asserts the count stays within a constant times
//! the input (a quadratic path shows as millions of steps). Counting is a
//! thread-local addition: free next to the work it counts.

use std::cell::Cell;

thread_local! {
    static STEPS: Cell<u64> = const { Cell::new(0) };
}

/// Counts `n` steps on this thread.
#[inline]
pub fn step(n: u64) {
    STEPS.with(|s| s.set(s.get().wrapping_add(n)));
}

/// The steps counted on this thread since the last call (the count
/// restarts from zero).
pub fn take() -> u64 {
    STEPS.with(|s| s.replace(0))
}
