//! The byte window a capture reader parses from.
//!
//! A [`Source`] owns the input stream (decompressing it when it starts with
//! the gzip magic) and one buffer. `fill(n)` makes at least `n` unconsumed
//! bytes available, moving the unconsumed tail to the front of the buffer
//! first and growing the buffer only while it is full of a single record.
//! Bytes handed out stay valid until the next `fill`.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

/// Initial buffer size.
pub(super) const INITIAL_BUFFER: usize = 1 << 20;
/// Largest buffer (so the largest record) the reader accepts.
pub(super) const MAX_BUFFER: usize = 256 << 20;

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
    buf: Vec<u8>,
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
            buf: vec![0; initial.clamp(1, max.max(64))],
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
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// The whole buffer, for slices handed out by position (see
    /// [`Source::position`]).
    #[inline]
    pub(super) fn buffer(&self) -> &[u8] {
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
            if self.start > 0 {
                // Move the partial record to the front; it is smaller than
                // one record, so this costs little next to the read.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                // Full of one incomplete record: grow, but only as data
                // actually arrives, so that a corrupt length near the end of
                // a file does not allocate the maximum.
                if self.buf.len() >= self.max {
                    return Ok(false);
                }
                let len = self.buf.len().saturating_mul(2).clamp(1, self.max);
                self.buf.resize(len, 0);
            }
            let space = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.reader.read(space) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n.min(space_len(self.buf.len(), self.end)),
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
}

/// Room left after `end` in a buffer of `len` bytes (guards against a
/// reader that claims to have read more than it was given).
#[inline]
fn space_len(len: usize, end: usize) -> usize {
    len.saturating_sub(end)
}
