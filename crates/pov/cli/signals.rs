//! SIGINT and SIGTERM.
//!
//! While a command is at a point where it can stop cleanly (reading
//! captures, writing outputs: see [`defer`]), a first signal only sets the
//! pipeline's stop flag: the command stops at its next check, drops its
//! temporary files, and `main` prints one line saying what was written and
//! exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
//! A second signal, or a signal anywhere else, exits at once with that code.
//!
//! signal-hook registers the handlers; they only store to atomics (and
//! `_exit` for the immediate case), so no unsafe code is needed here.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use pov::pipeline::Stop;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

struct Signals {
    stop: Stop,
    /// A signal exits at once (no clean stop possible here, or a second
    /// signal).
    immediate: Arc<AtomicBool>,
}

static SIGNALS: OnceLock<Signals> = OnceLock::new();

/// Installs the handlers (once; later calls do nothing).
pub fn install() -> io::Result<()> {
    if SIGNALS.get().is_some() {
        return Ok(());
    }
    let s = Signals { stop: Stop::new(), immediate: Arc::new(AtomicBool::new(true)) };
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the exit checks the flag before this signal arms it.
        flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&s.immediate))?;
        flag::register_usize(sig, Arc::clone(s.stop.flag()), sig as usize)?;
        flag::register(sig, Arc::clone(&s.immediate))?;
    }
    let _ = SIGNALS.set(s);
    Ok(())
}

/// The stop flag the signals set (a fresh one if none are installed).
pub fn stop() -> Stop {
    SIGNALS.get().map(|s| s.stop.clone()).unwrap_or_default()
}

/// The signal that asked to stop, if one did.
pub fn requested() -> Option<usize> {
    SIGNALS.get().and_then(|s| s.stop.requested())
}

/// While the returned guard lives, a first signal asks for a clean stop
/// instead of exiting at once.
pub fn defer() -> Deferred {
    let prev = SIGNALS.get().map(|s| s.immediate.swap(false, Ordering::SeqCst));
    // A signal that came just before is still honoured at once.
    if requested().is_some()
        && let Some(s) = SIGNALS.get()
    {
        s.immediate.store(true, Ordering::SeqCst);
    }
    Deferred { prev }
}

/// See [`defer`].
pub struct Deferred {
    prev: Option<bool>,
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let (Some(s), Some(prev)) = (SIGNALS.get(), self.prev) {
            // Once a stop was asked for, the next signal always exits.
            s.immediate.store(prev || s.stop.requested().is_some(), Ordering::SeqCst);
        }
    }
}

/// `SIGINT`, `SIGTERM` or `signal N`.
pub fn name(sig: usize) -> String {
    match sig as i32 {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}
