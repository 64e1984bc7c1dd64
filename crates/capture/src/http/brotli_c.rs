//! brotli bodies decoded by Google's C decoder (the reference
//! implementation, built from the source `brotlic-sys` vendors), written
//! to a sink as `brotli::DecompressorWriter` writes them.
//!
//! The pure-Rust decoder (`brotli-decompressor`, a port of that C code)
//! took about 90,000 instructions for each of a night's small bodies (a
//! kilobyte decoded); the C decoder decodes the same bodies in about
//! 43,000, its allocations included (a third of the port's writer in a
//! comparison outside pov, where the port also makes its memory anew).
//! It is the only `unsafe` code this crate ships: the calls into the
//! decoder, and the allocator it is given.
//!
//! What reaches the sink, in which pieces, and which inputs are errors,
//! are those of brotli's writer over a 4 KiB output buffer: each call of
//! the decoder fills the buffer at most, and what it wrote goes to the
//! sink before the result is looked at (so the bytes decoded before a
//! fault are counted and kept); a stream that ends early fails to close;
//! bytes after the end of a stream fail the write. A test compares the two
//! on whole, cut and corrupt streams fed in pieces, with and without a cap.
//!
//! Every byte the decoder allocates is charged to the body's share of the
//! memory budget, and an allocation the budget has no room for is refused
//! (the body then stops, as [`BrotliWriter::refused`] tells). The decoder
//! sizes its ring buffer from the length a meta-block declares, up to the
//! stream's window (16 MiB), before those bytes arrive: 16 bytes on the
//! wire can make it hold 8 MiB, which a fixed charge per body did not see.

#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ffi::c_void;
use std::io::{self, Write};
use std::ptr::NonNull;

use brotlic_sys as sys;

use super::decompress::BrotliBuf;
use crate::budget::Charge;

/// What a decoder's memory is charged to: reached by its allocation
/// functions through their opaque pointer.
struct Held {
    charge: Charge,
    /// An allocation was refused for want of budget.
    refused: bool,
}

/// What a writer holds beside its decoder's allocations: the box of what
/// they are charged to.
pub(super) const HELD_BYTES: usize = std::mem::size_of::<Held>();

/// A C decoder instance and what its memory is charged to, both given
/// back when dropped.
struct State {
    dec: NonNull<sys::BrotliDecoderState>,
    /// A `Box<Held>` of this instance's own, freed after the instance.
    held: NonNull<Held>,
}

// SAFETY: the decoder's state is plain memory reached only through this
// owner (the C code keeps no thread-local or global state per instance),
// and so is `held` (a `Charge` is `Send`), so both can be used from
// another thread than the one that made them.
unsafe impl Send for State {}

impl State {
    /// A new instance whose memory comes from Rust's global allocator,
    /// charged to `charge`; `Err(refused)` if it could not be made (and
    /// whether the budget refused it).
    fn new(charge: Charge) -> Result<State, bool> {
        let held = NonNull::from(Box::leak(Box::new(Held { charge, refused: false })));
        // SAFETY: the allocation functions below follow the contract of
        // `brotli_alloc_func` and `brotli_free_func`; the opaque pointer is
        // `held`, which lives until after the instance is destroyed.
        let s = unsafe { sys::BrotliDecoderCreateInstance(Some(alloc), Some(free), held.as_ptr().cast()) };
        match NonNull::new(s) {
            Some(dec) => Ok(State { dec, held }),
            None => {
                // SAFETY: `held` came from `Box::leak` above, and no
                // instance refers to it.
                let held = unsafe { Box::from_raw(held.as_ptr()) };
                Err(held.refused)
            }
        }
    }

    /// Whether an allocation was refused for want of budget.
    fn refused(&self) -> bool {
        // SAFETY: `held` is alive while `self` is; the decoder touches it
        // only inside the calls made on it, and none is running now.
        unsafe { self.held.as_ref().refused }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: made by `BrotliDecoderCreateInstance`, destroyed once
        // (its frees reach `held`, still alive); then `held`, from
        // `Box::leak` in `new`, freed once.
        unsafe {
            sys::BrotliDecoderDestroyInstance(self.dec.as_ptr());
            drop(Box::from_raw(self.held.as_ptr()));
        }
    }
}

/// Room before each block given to the decoder, holding the block's size
/// (the C free function is not told it): one `max_align_t`, so the block
/// is as aligned as `malloc`'s.
const HEAD: usize = 16;

/// The [`Held`] behind an allocation function's opaque pointer.
///
/// # Safety
/// `opaque` is the pointer an instance was made with ([`State::new`]):
/// a live `Held` that nothing else refers to while the decoder runs.
unsafe fn held<'a>(opaque: *mut c_void) -> Option<&'a mut Held> {
    // SAFETY: as the caller promises (or null).
    unsafe { opaque.cast::<Held>().as_mut() }
}

/// `brotli_alloc_func`: `size` bytes from the global allocator, charged
/// to the instance's budget share; null if the budget or the allocator
/// has no room.
extern "C" fn alloc(opaque: *mut c_void, size: usize) -> *mut c_void {
    let Some(total) = size.checked_add(HEAD) else { return std::ptr::null_mut() };
    let Ok(layout) = Layout::from_size_align(total, HEAD) else { return std::ptr::null_mut() };
    // SAFETY: the decoder calls this with the opaque pointer its instance
    // was made with, from inside a call made on it.
    let mut held = unsafe { held(opaque) };
    if let Some(h) = held.as_deref_mut()
        && !h.charge.try_grow(total)
    {
        h.refused = true;
        return std::ptr::null_mut();
    }
    // SAFETY: `layout` has a non-zero size (at least HEAD).
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        if let Some(h) = held {
            h.charge.shrink(total);
        }
        return std::ptr::null_mut();
    }
    // SAFETY: `base` is valid for `total >= HEAD` bytes and aligned to
    // HEAD, so for a `usize` at its start and for the offset.
    unsafe {
        base.cast::<usize>().write(size);
        base.add(HEAD).cast()
    }
}

/// `brotli_free_func`: gives back a block made by [`alloc`] (or nothing),
/// and its charge. Only the decoder calls it, with what `alloc` gave it.
extern "C" fn free(opaque: *mut c_void, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `alloc`, HEAD bytes past the block's start,
    // where its size was written; the layout is the one it was made with.
    let size = unsafe {
        let base = p.cast::<u8>().sub(HEAD);
        let size = base.cast::<usize>().read();
        std::alloc::dealloc(base, Layout::from_size_align_unchecked(size + HEAD, HEAD));
        size
    };
    // SAFETY: as in `alloc`.
    if let Some(h) = unsafe { held(opaque) } {
        h.charge.shrink(size + HEAD);
    }
}

/// A writer's decoder: made at the first write (so that the charge it is
/// given before counts its own making).
enum Dec {
    Unmade(Charge),
    Made(State),
    /// Could not be made; whether the budget refused it.
    Failed(bool),
}

/// What one call of the decoder said.
enum Step {
    /// It wants more input (it took all it was given).
    Input,
    /// Its output buffer was full: call again.
    Output,
    /// The stream ended.
    Done,
    /// The stream is corrupt (or the decoder could not get memory).
    Error,
}

/// A brotli decoder writing into `W`.
pub(super) struct BrotliWriter<W: Write> {
    dec: Dec,
    out: BrotliBuf,
    sink: W,
    /// A fault was reported once: later writes take nothing, and closing
    /// succeeds (as brotli's writer does once its error is taken).
    failed: bool,
}

impl<W: Write> BrotliWriter<W> {
    /// A decoder writing what it decodes into `sink`, its memory charged
    /// to no budget until [`BrotliWriter::charge_to`].
    pub(super) fn new(sink: W) -> BrotliWriter<W> {
        BrotliWriter { dec: Dec::Unmade(Charge::none()), out: BrotliBuf::take(), sink, failed: false }
    }

    /// Charges what the decoder allocates to `charge` (before the first
    /// write; later, nothing changes).
    pub(super) fn charge_to(&mut self, charge: Charge) {
        if let Dec::Unmade(c) = &mut self.dec {
            *c = charge;
        }
    }

    /// Whether the decoder stopped because the budget refused it memory.
    pub(super) fn refused(&self) -> bool {
        match &self.dec {
            Dec::Unmade(_) => false,
            Dec::Made(s) => s.refused(),
            Dec::Failed(refused) => *refused,
        }
    }

    /// The sink.
    pub(super) fn get_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// One call of the decoder on `input` (advanced past what it took),
    /// what it wrote handed to the sink.
    fn step(&mut self, input: &mut &[u8]) -> io::Result<Step> {
        if let Dec::Unmade(c) = &mut self.dec {
            let charge = std::mem::take(c);
            self.dec = match State::new(charge) {
                Ok(s) => Dec::Made(s),
                Err(refused) => Dec::Failed(refused),
            };
        }
        let Dec::Made(state) = &self.dec else { return Ok(Step::Error) };
        let out = self.out.as_mut();
        let mut avail_in = input.len();
        let mut next_in = input.as_ptr();
        let mut avail_out = out.len();
        let mut next_out = out.as_mut_ptr();
        // SAFETY: `next_in` is valid for `avail_in` bytes and `next_out`
        // for `avail_out` bytes (both non-null, also when empty); the
        // decoder advances them by what it read and wrote, never past.
        let r = unsafe {
            sys::BrotliDecoderDecompressStream(
                state.dec.as_ptr(),
                &mut avail_in,
                &mut next_in,
                &mut avail_out,
                &mut next_out,
                std::ptr::null_mut(),
            )
        };
        *input = &input[input.len() - avail_in.min(input.len())..];
        let written = out.len() - avail_out.min(out.len());
        self.sink.write_all(&out[..written])?;
        #[allow(non_upper_case_globals)]
        Ok(match r {
            sys::BrotliDecoderResult_BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT => Step::Input,
            sys::BrotliDecoderResult_BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT => Step::Output,
            sys::BrotliDecoderResult_BROTLI_DECODER_RESULT_SUCCESS => Step::Done,
            _ => Step::Error,
        })
    }

    /// The first fault is an error; later ones take nothing.
    fn fault(&mut self) -> io::Result<usize> {
        if std::mem::replace(&mut self.failed, true) {
            return Ok(0);
        }
        Err(io::Error::new(io::ErrorKind::InvalidData, "invalid brotli stream"))
    }

    /// Ends the stream: what the decoder still holds goes to the sink; an
    /// error if the stream was cut short or is corrupt (once).
    pub(super) fn close(&mut self) -> io::Result<()> {
        loop {
            if self.failed {
                return Ok(());
            }
            match self.step(&mut &[][..])? {
                Step::Output => {}
                Step::Done => return Ok(()),
                Step::Input | Step::Error => return self.fault().map(|_| ()),
            }
        }
    }

    /// The sink, once the stream is closed: `Err` with it if closing
    /// failed, and whether for want of budget.
    pub(super) fn into_inner(mut self) -> Result<W, (W, bool)> {
        let closed = self.close();
        let refused = self.refused();
        match closed {
            Ok(()) => Ok(self.sink),
            Err(_) => Err((self.sink, refused)),
        }
    }
}

impl<W: Write> Write for BrotliWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut input = buf;
        loop {
            match self.step(&mut input)? {
                // (The decoder asks for input once it took all it had.)
                Step::Input | Step::Done => return Ok(buf.len() - input.len()),
                Step::Output => {}
                Step::Error => return self.fault(),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}
