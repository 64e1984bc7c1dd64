//! The byte window a capture reader parses from.
//!
//! A [`Source`] owns the input stream (decompressing it when it starts with
//! the gzip magic) and one buffer. `fill(n)` makes at least `n` unconsumed
//! bytes available, moving the unconsumed tail to the front of the buffer
//! first and growing the buffer only while it is full of a single record.
//! Bytes handed out stay valid until the next `fill`, or for as long as
//! the [`Block`] of the buffer they lie in is held: a buffer still held
//! when it is to be written is left to its holders, and the unconsumed
//! tail moves to another (one of those given back, or a new one).

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use crate::packet::Block;

/// Initial buffer size.
pub(super) const INITIAL_BUFFER: usize = 1 << 20;
/// Largest buffer (so the largest record) the reader accepts.
pub(super) const MAX_BUFFER: usize = 256 << 20;
/// Most buffers left to their holders that a source keeps an eye on, to
/// take back once they are let go; past these, a buffer is forgotten (and
/// freed by its last holder). A pipeline holds a few batches' buffers at
/// once, some 2 MiB a batch.
const KEPT_BUFFERS: usize = 16;

/// Counts the raw (possibly compressed) bytes read from the input, for
/// progress reporting. Shared with [`Source`] through an atomic so the
/// reader stays `Send`.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub(super) struct Source {
    reader: Box<dyn Read + Send>,
    buf: Block,
    /// Buffers left to their holders, to be written again once they are
    /// the source's alone.
    lent: Vec<Block>,
    /// First unconsumed byte in `buf`.
    start: usize,
    /// End of valid data in `buf`.
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    /// The input returned end of file.
    eof: bool,
    /// The gzip stream ended before its end marker.
    gzip_cut: bool,
    gzip: bool,
    max: usize,
    raw: Arc<AtomicU64>,
}

impl Source {
    /// Wraps `reader`, decompressing it if its first two bytes are the gzip
    /// magic `1f 8b`.
    pub(super) fn new<R: Read + Send + 'static>(reader: R) -> io::Result<Source> {
        Source::with_limits(reader, INITIAL_BUFFER, MAX_BUFFER)
    }

    /// As [`Source::new`], with the given initial and largest buffer sizes.
    pub(super) fn with_limits<R: Read + Send + 'static>(reader: R, initial: usize, max: usize) -> io::Result<Source> {
        let raw = Arc::new(AtomicU64::new(0));
        let mut counting = Counting { inner: reader, count: Arc::clone(&raw) };
        let mut head = [0u8; 2];
        let mut got = 0;
        while got < head.len() {
            let space = head.get_mut(got..).unwrap_or_default();
            match counting.read(space) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let gzip = head == [0x1f, 0x8b];
        let peeked = io::Cursor::new(head.get(..got).unwrap_or_default().to_vec());
        let chained = peeked.chain(counting);
        let reader: Box<dyn Read + Send> =
            if gzip { Box::new(MultiGzDecoder::new(chained)) } else { Box::new(chained) };
        Ok(Source {
            reader,
            buf: Block(Arc::new(vec![0; initial.clamp(1, max.max(64))])),
            lent: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            gzip_cut: false,
            gzip,
            max: max.max(64),
            raw,
        })
    }

    /// The input is gzip-compressed.
    pub(super) fn gzip(&self) -> bool {
        self.gzip
    }

    /// The gzip stream ended early (reported once reading is done).
    pub(super) fn gzip_cut(&self) -> bool {
        self.gzip_cut
    }

    /// The largest record the buffer may hold.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// Raw bytes read from the input so far.
    pub(super) fn raw_bytes(&self) -> u64 {
        self.raw.load(Ordering::Relaxed)
    }

    /// Stream offset of the first unconsumed byte.
    #[inline]
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// Unconsumed bytes in the buffer.
    #[inline]
    pub(super) fn available(&self) -> usize {
        self.end - self.start
    }

    /// The unconsumed bytes.
    #[inline]
    pub(super) fn data(&self) -> &[u8] {
        self.buf.bytes().get(self.start..self.end).unwrap_or_default()
    }

    /// The whole buffer, for slices handed out by position (see
    /// [`Source::position`]).
    #[inline]
    pub(super) fn buffer(&self) -> &[u8] {
        self.buf.bytes()
    }

    /// The buffer, to be shared: its bytes handed out so far stay as they
    /// are while the block is held.
    #[inline]
    pub(super) fn block(&self) -> &Block {
        &self.buf
    }

    /// Buffer index of the first unconsumed byte.
    #[inline]
    pub(super) fn position(&self) -> usize {
        self.start
    }

    /// Marks `n` bytes as consumed. They stay in the buffer, unchanged,
    /// until the next [`Source::fill`].
    #[inline]
    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.available());
        self.start += n;
        self.offset += n as u64;
    }

    /// Makes at least `need` unconsumed bytes available. Returns `Ok(false)`
    /// if the input ends first (whatever it had is available), and never
    /// grows the buffer beyond the limit (the caller checks `need` against
    /// [`Source::max`] first).
    #[inline]
    pub(super) fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.available() >= need {
            return Ok(true);
        }
        self.fill_slow(need)
    }

    #[cold]
    fn fill_slow(&mut self, need: usize) -> io::Result<bool> {
        while self.available() < need {
            if self.eof {
                return Ok(false);
            }
            self.take_back();
            // The source's alone now (`make_mut` copies nothing).
            let buf = Arc::make_mut(&mut self.buf.0);
            if self.start > 0 {
                // Move the partial record to the front; it is smaller than
                // one record, so this costs little next to the read.
                buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == buf.len() {
                // Full of one incomplete record: grow, but only as data
                // actually arrives, so that a corrupt length near the end of
                // a file does not allocate the maximum.
                if buf.len() >= self.max {
                    return Ok(false);
                }
                let len = buf.len().saturating_mul(2).clamp(1, self.max);
                buf.resize(len, 0);
            }
            let len = buf.len();
            let space = buf.get_mut(self.end..).unwrap_or_default();
            match self.reader.read(space) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n.min(space_len(len, self.end)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.gzip && e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    self.gzip_cut = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Makes the buffer the source's alone, to be written. One still held
    /// elsewhere (a [`Block`] of it) is left as it is: its unconsumed bytes
    /// move to the front of another, one given back by its holders if
    /// there is one.
    fn take_back(&mut self) {
        if Arc::get_mut(&mut self.buf.0).is_none() {
            let len = self.buf.bytes().len();
            let free = self.lent.iter().position(|b| Arc::strong_count(&b.0) == 1 && Arc::weak_count(&b.0) == 0);
            let mut fresh = match free.map(|i| self.lent.swap_remove(i)) {
                Some(Block(b)) => Arc::try_unwrap(b).unwrap_or_default(),
                None => Vec::new(),
            };
            // Only the unconsumed tail is copied; the rest of a reused
            // buffer is overwritten by the reads to come.
            fresh.resize(len.max(fresh.len()), 0);
            let tail = self.buf.bytes().get(self.start..self.end).unwrap_or_default();
            if let Some(front) = fresh.get_mut(..tail.len()) {
                front.copy_from_slice(tail);
            }
            self.end -= self.start;
            self.start = 0;
            let old = std::mem::replace(&mut self.buf, Block(Arc::new(fresh)));
            if self.lent.len() >= KEPT_BUFFERS {
                self.lent.remove(0);
            }
            self.lent.push(old);
        }
    }
}

/// Room left after `end` in a buffer of `len` bytes (guards against a
/// reader that claims to have read more than it was given).
#[inline]
fn space_len(len: usize, end: usize) -> usize {
    len.saturating_sub(end)
}
