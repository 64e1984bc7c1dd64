//! brotli bodies decoded by Google's C decoder (the reference
//! implementation, built from the source `brotlic-sys` vendors), written
//! to a sink as `brotli::DecompressorWriter` writes them.
//!
//! The pure-Rust decoder (`brotli-decompressor`, a port of that C code)
//! took about 90,000 instructions for each of a night's small bodies (a
//! kilobyte decoded); the C decoder decodes the same bodies in about a
//! third of that. It is the only `unsafe` code in this crate: the calls
//! into the decoder, and the allocator it is given.
//!
//! What reaches the sink, in which pieces, and which inputs are errors,
//! are those of brotli's writer over a 4 KiB output buffer: each call of
//! the decoder fills the buffer at most, and what it wrote goes to the
//! sink before the result is looked at (so the bytes decoded before a
//! fault are counted and kept); a stream that ends early fails to close;
//! bytes after the end of a stream fail the write. A test compares the two
//! on whole, cut and corrupt streams fed in pieces, with and without a cap.

#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ffi::c_void;
use std::io::{self, Write};
use std::ptr::NonNull;

use brotlic_sys as sys;

use super::decompress::BrotliBuf;

/// A C decoder instance, destroyed when dropped.
struct State(NonNull<sys::BrotliDecoderState>);

// SAFETY: the decoder's state is plain memory reached only through this
// owner (the C code keeps no thread-local or global state per instance),
// so it can be used from another thread than the one that made it.
unsafe impl Send for State {}

impl State {
    /// A new instance whose memory comes from Rust's global allocator, or
    /// `None` if the allocator refused it.
    fn new() -> Option<State> {
        // SAFETY: the allocation functions below follow the contract of
        // `brotli_alloc_func` and `brotli_free_func`; the opaque pointer
        // is not used.
        let s = unsafe { sys::BrotliDecoderCreateInstance(Some(alloc), Some(free), std::ptr::null_mut()) };
        NonNull::new(s).map(State)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: made by `BrotliDecoderCreateInstance`, destroyed once.
        unsafe { sys::BrotliDecoderDestroyInstance(self.0.as_ptr()) }
    }
}

/// Room before each block given to the decoder, holding the block's size
/// (the C free function is not told it): one `max_align_t`, so the block
/// is as aligned as `malloc`'s.
const HEAD: usize = 16;

/// `brotli_alloc_func`: `size` bytes from the global allocator, or null.
extern "C" fn alloc(_opaque: *mut c_void, size: usize) -> *mut c_void {
    let Some(total) = size.checked_add(HEAD) else { return std::ptr::null_mut() };
    let Ok(layout) = Layout::from_size_align(total, HEAD) else { return std::ptr::null_mut() };
    // SAFETY: `layout` has a non-zero size (at least HEAD).
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `base` is valid for `total >= HEAD` bytes and aligned to
    // HEAD, so for a `usize` at its start and for the offset.
    unsafe {
        base.cast::<usize>().write(size);
        base.add(HEAD).cast()
    }
}

/// `brotli_free_func`: gives back a block made by [`alloc`] (or nothing).
/// Only the decoder calls it, with what `alloc` gave it.
extern "C" fn free(_opaque: *mut c_void, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `alloc`, HEAD bytes past the block's start,
    // where its size was written; the layout is the one it was made with.
    unsafe {
        let base = p.cast::<u8>().sub(HEAD);
        let size = base.cast::<usize>().read();
        std::alloc::dealloc(base, Layout::from_size_align_unchecked(size + HEAD, HEAD));
    }
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
    /// `None` if the decoder could not be made (every write fails).
    state: Option<State>,
    out: BrotliBuf,
    sink: W,
    /// A fault was reported once: later writes take nothing, and closing
    /// succeeds (as brotli's writer does once its error is taken).
    failed: bool,
}

impl<W: Write> BrotliWriter<W> {
    /// A decoder writing what it decodes into `sink`.
    pub(super) fn new(sink: W) -> BrotliWriter<W> {
        BrotliWriter { state: State::new(), out: BrotliBuf::take(), sink, failed: false }
    }

    /// The sink.
    pub(super) fn get_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// One call of the decoder on `input` (advanced past what it took),
    /// what it wrote handed to the sink.
    fn step(&mut self, input: &mut &[u8]) -> io::Result<Step> {
        let Some(state) = &self.state else { return Ok(Step::Error) };
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
                state.0.as_ptr(),
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
    /// failed.
    pub(super) fn into_inner(mut self) -> Result<W, W> {
        let closed = self.close();
        match closed {
            Ok(()) => Ok(self.sink),
            Err(_) => Err(self.sink),
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
