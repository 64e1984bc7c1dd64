//! Decompressors for bodies, kept per thread from one body to the next.
//!
//! Inflate (RFC 1951) bodies in their three framings, gzip (RFC 1952,
//! members one after another), zlib (RFC 1950) and raw deflate, written to
//! a sink as flate2's write-side decoders write them, over a decompressor
//! state reused from body to body.
//!
//! flate2's decoders make a new zlib-rs state for every body: some 15,000
//! instructions, most of them zeroing it (on a request-heavy night, as many
//! as decoding the gzip bodies took). A state reset for the next body costs
//! 50. flate2 resets a zlib or raw state in place but rebuilds a
//! gzip one, so the gzip framing (the header, the CRC-32 and size trailer,
//! further members) is read here around a raw inflate.
//!
//! What reaches the sink, in which pieces, and which inputs are errors, are
//! those of flate2's `MultiGzDecoder`, `ZlibDecoder` and `DeflateDecoder`
//! (over its `zio::Writer`): decoded bytes wait in a 32 KiB buffer until
//! the next write, flush or finish, so the caps of the sink trip at the
//! same counts. A test compares the two on whole, cut, corrupt and
//! multi-member streams fed in random pieces.
//!
//! brotli bodies are decoded by the C decoder (`super::brotli_c`), into a
//! 4 KiB output buffer kept here from body to body ([`BrotliBuf`]: a new
//! zeroed one cost 4,400 instructions a body).

use std::cell::RefCell;
use std::io::{self, Write};

use flate2::{Crc, Decompress, FlushDecompress, Status};

/// Decompressor states a thread keeps for its next bodies (each zlib-rs's
/// state, its 32 KiB window once it has decoded, and a 32 KiB output
/// buffer), and as many brotli output buffers.
const POOL: usize = 8;

/// Decoded bytes held between writes: flate2's buffer.
pub(super) const BUF: usize = 32 * 1024;

/// The longest file name or comment of a gzip header: flate2's limit.
const MAX_HEADER_FIELD: usize = 65535;

thread_local! {
    static STATES: RefCell<Vec<(Box<Decompress>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// A decompressor state (and its output buffer) for a stream with a zlib
/// header or without: one kept by this thread, reset, or a new one.
fn take_state(zlib: bool) -> (Box<Decompress>, Vec<u8>) {
    match take_kept(&STATES) {
        Some((mut d, buf)) => {
            d.reset(zlib);
            (d, buf)
        }
        None => (Box::new(Decompress::new(zlib)), Vec::with_capacity(BUF)),
    }
}

/// What a thread keeps for later bodies.
type Kept<T> = std::thread::LocalKey<RefCell<Vec<T>>>;

/// One of the things `pool` keeps, if any.
fn take_kept<T: 'static>(pool: &'static Kept<T>) -> Option<T> {
    pool.try_with(|p| p.try_borrow_mut().ok()?.pop()).ok().flatten()
}

/// Keeps `item` in `pool` for a later body (up to [`POOL`] a thread).
fn keep<T: 'static>(pool: &'static Kept<T>, item: T) {
    let _ = pool.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut()
            && p.len() < POOL
        {
            p.push(item);
        }
    });
}

/// A brotli writer's output size: what `brotli::DecompressorWriter::new`
/// is given.
pub(super) const BROTLI_BUF: usize = 4096;

thread_local! {
    static BROTLI_BUFS: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A brotli writer's output buffer, back to its thread's pool when the
/// writer is dropped.
pub(super) struct BrotliBuf(Box<[u8]>);

impl BrotliBuf {
    /// One kept by this thread, or a new one.
    pub(super) fn take() -> BrotliBuf {
        BrotliBuf(take_kept(&BROTLI_BUFS).unwrap_or_else(|| vec![0; BROTLI_BUF].into_boxed_slice()))
    }
}

impl Drop for BrotliBuf {
    fn drop(&mut self) {
        keep(&BROTLI_BUFS, std::mem::take(&mut self.0));
    }
}

impl AsMut<[u8]> for BrotliBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// The framing of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// gzip members, one after another.
    Gzip,
    /// A zlib stream.
    Zlib,
    /// Raw deflate.
    Raw,
}

/// A deflate stream written to a sink through a 32 KiB buffer, as flate2's
/// `zio::Writer` does it.
struct Stream {
    d: Option<Box<Decompress>>,
    buf: Vec<u8>,
    /// Bytes of `buf` the sink took.
    pos: usize,
    /// The stream ended.
    finished: bool,
}

fn corrupt_deflate() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "corrupt deflate stream")
}

impl Stream {
    fn new(zlib: bool) -> Stream {
        let (d, buf) = take_state(zlib);
        Stream { d: Some(d), buf, pos: 0, finished: false }
    }

    fn run(&mut self, input: &[u8], flush: FlushDecompress) -> Result<Status, io::Error> {
        let d = self.d.as_mut().ok_or_else(corrupt_deflate)?;
        d.decompress_vec(input, &mut self.buf, flush).map_err(|_| corrupt_deflate())
    }

    fn total_in(&self) -> u64 {
        self.d.as_ref().map_or(0, |d| d.total_in())
    }

    fn total_out(&self) -> u64 {
        self.d.as_ref().map_or(0, |d| d.total_out())
    }

    /// Writes the buffered output to `w`.
    fn dump<W: Write>(&mut self, w: &mut W) -> io::Result<()> {
        while self.pos < self.buf.len() {
            let n = w.write(&self.buf[self.pos..])?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.pos += n;
        }
        self.buf.clear();
        self.pos = 0;
        Ok(())
    }

    /// Inflates what it can of `input`: bytes taken, and the status.
    fn write_with_status<W: Write>(&mut self, input: &[u8], w: &mut W) -> io::Result<(usize, Status)> {
        loop {
            self.dump(w)?;
            let before = self.total_in();
            let ret = self.run(input, FlushDecompress::None);
            let taken = (self.total_in() - before) as usize;
            let end = matches!(ret, Ok(Status::StreamEnd));
            if !input.is_empty() && taken == 0 && ret.is_ok() && !end && !self.buf.is_empty() {
                continue;
            }
            if end {
                self.finished = true;
            }
            return ret.map(|st| (taken, st));
        }
    }

    /// Ends the stream: an error unless it was whole.
    fn finish<W: Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.finished {
            return self.dump(w);
        }
        loop {
            self.dump(w)?;
            let before = self.total_out();
            if self.run(&[], FlushDecompress::Finish)? == Status::StreamEnd {
                self.finished = true;
                return self.dump(w);
            }
            if before == self.total_out() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete deflate stream"));
            }
        }
    }

    /// Writes out all the output the input so far gives.
    fn flush<W: Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.dump(w)?;
        self.run(&[], FlushDecompress::Sync)?;
        loop {
            self.dump(w)?;
            let before = self.total_out();
            self.run(&[], FlushDecompress::None)?;
            if before == self.total_out() {
                return w.flush();
            }
        }
    }

    /// Starts a new stream (without a zlib header) on the same state.
    fn restart(&mut self) {
        if let Some(d) = self.d.as_mut() {
            d.reset(false);
        }
        self.buf.clear();
        self.pos = 0;
        self.finished = false;
    }
}

/// Writes to `w` and adds what it took to `crc` (flate2's `CrcWriter`).
struct CrcSink<'a, W> {
    w: &'a mut W,
    crc: &'a mut Crc,
}

impl<W: Write> Write for CrcSink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn bad_header() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "invalid gzip header")
}

fn bad_checksum() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "corrupt gzip stream does not have a matching checksum")
}

const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0b1110_0000;

/// Where a gzip member's header is read to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Fixed,
    Xlen,
    Extra,
    Name,
    Comment,
    HeaderCrc,
    Done,
}

/// A gzip member's header, read as its bytes arrive.
struct Header {
    part: Part,
    /// The fixed ten bytes, then the two of XLEN or of the header CRC.
    bytes: [u8; 10],
    /// Bytes of the current part read.
    got: usize,
    flags: u8,
    xlen: usize,
    /// The header's CRC-32, when it carries one (FHCRC).
    crc: Option<Crc>,
}

impl Header {
    fn new() -> Header {
        Header { part: Part::Fixed, bytes: [0; 10], got: 0, flags: 0, xlen: 0, crc: None }
    }

    /// Reads header bytes from the front of `input`: `Ok(true)` once the
    /// header is whole (the rest of `input` is the member's deflate data),
    /// `Ok(false)` when all of `input` was header and more is to come.
    fn read(&mut self, input: &mut &[u8]) -> io::Result<bool> {
        loop {
            match self.part {
                Part::Fixed => {
                    if !self.fill(input, 10) {
                        return Ok(false);
                    }
                    let b = self.bytes;
                    if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] & FRESERVED != 0 {
                        return Err(bad_header());
                    }
                    self.flags = b[3];
                    if self.flags & FHCRC != 0 {
                        let mut crc = Crc::new();
                        crc.update(&b);
                        self.crc = Some(crc);
                    }
                    self.next(if self.flags & FEXTRA != 0 { Part::Xlen } else { Part::Name });
                }
                Part::Xlen => {
                    if !self.fill(input, 2) {
                        return Ok(false);
                    }
                    let b = [self.bytes[0], self.bytes[1]];
                    if let Some(c) = self.crc.as_mut() {
                        c.update(&b);
                    }
                    self.xlen = usize::from(u16::from_le_bytes(b));
                    self.next(Part::Extra);
                }
                Part::Extra => {
                    let n = (self.xlen - self.got).min(input.len());
                    if let Some(c) = self.crc.as_mut() {
                        c.update(&input[..n]);
                    }
                    self.got += n;
                    *input = &input[n..];
                    if self.got < self.xlen {
                        return Ok(false);
                    }
                    self.next(Part::Name);
                }
                Part::Name | Part::Comment => {
                    let (flag, then) =
                        if self.part == Part::Name { (FNAME, Part::Comment) } else { (FCOMMENT, Part::HeaderCrc) };
                    if self.flags & flag != 0 && !self.skip_to_nul(input)? {
                        return Ok(false);
                    }
                    self.next(then);
                }
                Part::HeaderCrc => {
                    if let Some(sum) = self.crc.as_ref().map(|c| c.sum() as u16) {
                        if !self.fill(input, 2) {
                            return Ok(false);
                        }
                        if u16::from_le_bytes([self.bytes[0], self.bytes[1]]) != sum {
                            return Err(bad_checksum());
                        }
                    }
                    self.next(Part::Done);
                }
                Part::Done => return Ok(true),
            }
        }
    }

    fn next(&mut self, part: Part) {
        self.part = part;
        self.got = 0;
    }

    /// Reads up to `n` bytes of the part into `bytes`: whether it has them.
    fn fill(&mut self, input: &mut &[u8], n: usize) -> bool {
        let take = (n - self.got).min(input.len());
        self.bytes[self.got..self.got + take].copy_from_slice(&input[..take]);
        self.got += take;
        *input = &input[take..];
        self.got == n
    }

    /// Reads a zero-terminated field: whether it ended (an error past
    /// [`MAX_HEADER_FIELD`] bytes).
    fn skip_to_nul(&mut self, input: &mut &[u8]) -> io::Result<bool> {
        while let Some((&b, rest)) = input.split_first() {
            if b != 0 && self.got == MAX_HEADER_FIELD {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "gzip header field too long"));
            }
            *input = rest;
            if let Some(c) = self.crc.as_mut() {
                c.update(&[b]);
            }
            if b == 0 {
                return Ok(true);
            }
            self.got += 1;
        }
        Ok(false)
    }
}

/// An inflating writer into `W`.
pub(super) struct Inflater<W: Write> {
    framing: Framing,
    stream: Stream,
    sink: W,
    /// gzip: the member's header, the CRC-32 of its output, its trailer.
    header: Header,
    crc: Crc,
    trailer: [u8; 8],
    trailer_len: usize,
}

impl<W: Write> Inflater<W> {
    /// A decoder of `framing` writing into `sink`.
    pub(super) fn new(framing: Framing, sink: W) -> Inflater<W> {
        Inflater {
            framing,
            stream: Stream::new(framing == Framing::Zlib),
            sink,
            header: Header::new(),
            crc: Crc::new(),
            trailer: [0; 8],
            trailer_len: 0,
        }
    }

    /// The sink.
    pub(super) fn get_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// Ends the input: an error unless the stream (its last gzip member,
    /// trailer included) was whole.
    pub(super) fn try_finish(&mut self) -> io::Result<()> {
        match self.framing {
            Framing::Gzip => self.finish_member(),
            Framing::Zlib | Framing::Raw => self.stream.finish(&mut self.sink),
        }
    }

    /// A gzip member's end: its deflate stream, then its trailer checked.
    fn finish_member(&mut self) -> io::Result<()> {
        self.stream.finish(&mut CrcSink { w: &mut self.sink, crc: &mut self.crc })?;
        if self.trailer_len != 8 {
            return Err(bad_checksum());
        }
        let t = self.trailer;
        let (sum, size) = (u32::from_le_bytes([t[0], t[1], t[2], t[3]]), u32::from_le_bytes([t[4], t[5], t[6], t[7]]));
        if sum != self.crc.sum() || size != self.crc.amount() {
            return Err(bad_checksum());
        }
        Ok(())
    }

    /// One gzip member's share of `buf` (flate2's `GzDecoder::write`):
    /// `Ok(0)` once the member and its trailer are whole.
    fn write_member(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let len = buf.len();
        if self.header.part != Part::Done {
            return Ok(if self.header.read(&mut buf)? { len - buf.len() } else { len });
        }
        let (n, status) = self.stream.write_with_status(buf, &mut CrcSink { w: &mut self.sink, crc: &mut self.crc })?;
        if status == Status::StreamEnd && n < buf.len() && self.trailer_len < 8 {
            let take = (buf.len() - n).min(8 - self.trailer_len);
            self.trailer[self.trailer_len..self.trailer_len + take].copy_from_slice(&buf[n..n + take]);
            self.trailer_len += take;
            return Ok(n + take);
        }
        Ok(n)
    }
}

impl<W: Write> Write for Inflater<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.framing {
            Framing::Zlib | Framing::Raw => self.stream.write_with_status(buf, &mut self.sink).map(|(n, _)| n),
            Framing::Gzip => {
                if buf.is_empty() {
                    return Ok(0);
                }
                match self.write_member(buf)? {
                    0 => {
                        // A member ended: the next one starts here.
                        self.finish_member()?;
                        self.stream.restart();
                        self.header = Header::new();
                        self.crc.reset();
                        self.trailer_len = 0;
                        self.write_member(buf)
                    }
                    n => Ok(n),
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.framing {
            Framing::Zlib | Framing::Raw => self.stream.flush(&mut self.sink),
            Framing::Gzip => self.stream.flush(&mut CrcSink { w: &mut self.sink, crc: &mut self.crc }),
        }
    }
}

impl<W: Write> Drop for Inflater<W> {
    fn drop(&mut self) {
        // As flate2's writer does when dropped: what is buffered goes to
        // the sink, then the state is kept for another body.
        let _ = match self.framing {
            Framing::Zlib | Framing::Raw => self.stream.finish(&mut self.sink),
            Framing::Gzip => self.stream.finish(&mut CrcSink { w: &mut self.sink, crc: &mut self.crc }),
        };
        if let Some(d) = self.stream.d.take() {
            let mut buf = std::mem::take(&mut self.stream.buf);
            buf.clear();
            keep(&STATES, (d, buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::brotli_c::BrotliWriter;
    use super::*;

    /// A sink like the body decoder's: counts, keeps a prefix, fails past
    /// a cap (and after).
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Capped {
        kept: Vec<u8>,
        total: u64,
        max: u64,
        hit: bool,
        pieces: Vec<usize>,
    }

    impl Write for Capped {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.hit {
                return Err(io::Error::other("past the cap"));
            }
            self.pieces.push(buf.len());
            let room = 2000usize.saturating_sub(self.kept.len()).min(buf.len());
            self.kept.extend_from_slice(&buf[..room]);
            self.total += buf.len() as u64;
            if self.total > self.max {
                self.hit = true;
                return Err(io::Error::other("cap"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// `whole` with one bit flipped at a place `next` picks (not empty).
    fn flipped(whole: &[u8], next: &mut impl FnMut() -> u64) -> Vec<u8> {
        let mut bad = whole.to_vec();
        let at = (next() as usize) % bad.len();
        bad[at] ^= 1 << (next() % 8);
        bad
    }

    /// What a decoder leaves: the sink, whether a write failed (and the
    /// byte where), whether finishing failed.
    type Outcome = (Capped, Option<usize>, bool);

    /// Feeds `data` in `pieces` through `write_all`, stops at the first
    /// error (as the body decoder does), then finishes (flushing after an
    /// error, as the body decoder's close does).
    fn run<D: Write>(
        mut d: D,
        data: &[u8],
        pieces: &[usize],
        finish: impl FnOnce(&mut D) -> io::Result<()>,
        sink: impl FnOnce(&mut D) -> &mut Capped,
    ) -> Outcome {
        let mut at = 0;
        let mut failed = None;
        for &p in pieces {
            let end = (at + p).min(data.len());
            if d.write_all(&data[at..end]).is_err() {
                failed = Some(at);
                break;
            }
            at = end;
        }
        let finished = finish(&mut d);
        if finished.is_err() {
            let _ = d.flush();
        }
        let s = std::mem::take(sink(&mut d));
        (s, failed, finished.is_err())
    }

    fn ours(framing: Framing, data: &[u8], pieces: &[usize], max: u64) -> Outcome {
        let sink = Capped { max, ..Capped::default() };
        run(Inflater::new(framing, sink), data, pieces, |d| d.try_finish(), |d| d.get_mut())
    }

    fn flate2s(framing: Framing, data: &[u8], pieces: &[usize], max: u64) -> Outcome {
        let sink = Capped { max, ..Capped::default() };
        match framing {
            Framing::Gzip => {
                run(flate2::write::MultiGzDecoder::new(sink), data, pieces, |d| d.try_finish(), |d| d.get_mut())
            }
            Framing::Zlib => {
                run(flate2::write::ZlibDecoder::new(sink), data, pieces, |d| d.try_finish(), |d| d.get_mut())
            }
            Framing::Raw => {
                run(flate2::write::DeflateDecoder::new(sink), data, pieces, |d| d.try_finish(), |d| d.get_mut())
            }
        }
    }

    fn text(next: &mut impl FnMut() -> u64, n: usize) -> Vec<u8> {
        let words: [&[u8]; 6] =
            [b"<div class=\"item\">", b"price ", b"42.50", b"</div>\n", b"lorem ipsum ", b"\x00\xff"];
        let mut out = Vec::new();
        while out.len() < n {
            out.extend_from_slice(words[(next() % 6) as usize]);
            if next().is_multiple_of(9) {
                out.push(next() as u8);
            }
        }
        out.truncate(n);
        out
    }

    fn encode(framing: Framing, data: &[u8], level: u32) -> Vec<u8> {
        let c = flate2::Compression::new(level);
        match framing {
            Framing::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), c);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Framing::Zlib => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), c);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Framing::Raw => {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), c);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    /// A gzip member with every optional header field.
    fn gzip_with_fields(data: &[u8], header_crc: bool) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new().filename("page.html").comment("made for a test").extra(vec![7; 40]);
        if header_crc {
            b = b.operating_system(3);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        let mut out = e.finish().unwrap();
        if header_crc {
            // FHCRC by hand: flag, then the header's CRC-32 (low 16 bits)
            // after the comment's NUL.
            out[3] |= FHCRC;
            let end = 10 + 2 + 40 + "page.html".len() + 1 + "made for a test".len() + 1;
            let mut crc = Crc::new();
            crc.update(&out[..end]);
            let sum = (crc.sum() as u16).to_le_bytes();
            out.splice(end..end, sum);
        }
        out
    }

    /// The streams of the comparison: whole, cut at random, with a byte
    /// changed, with trailing bytes, several members, header fields.
    fn cases(framing: Framing, next: &mut impl FnMut() -> u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &n in &[0usize, 1, 100, 5_000, 70_000, 200_000] {
            let data = text(next, n);
            let whole = encode(framing, &data, (next() % 10) as u32);
            out.push(whole.clone());
            if !whole.is_empty() {
                let cut = (next() as usize) % whole.len();
                out.push(whole[..cut].to_vec());
                out.push(flipped(&whole, next));
                let mut tail = whole.clone();
                tail.extend_from_slice(b"trailing bytes");
                out.push(tail);
                let mut twice = whole.clone();
                twice.extend_from_slice(&encode(framing, &data[..data.len() / 2], 6));
                out.push(twice);
            }
        }
        if framing == Framing::Gzip {
            let data = text(next, 3_000);
            out.push(gzip_with_fields(&data, false));
            out.push(gzip_with_fields(&data, true));
            let mut wrong = gzip_with_fields(&data, true);
            let end = 10 + 2 + 40 + "page.html".len() + 1 + "made for a test".len() + 1;
            wrong[end] ^= 0xff;
            out.push(wrong);
            let mut long_name = vec![0x1f, 0x8b, 8, FNAME, 0, 0, 0, 0, 0, 3];
            long_name.extend(std::iter::repeat_n(b'n', 70_000));
            out.push(long_name);
            out.push(vec![0x1f, 0x8b, 8, 0xe0, 0, 0, 0, 0, 0, 3]);
            out.push(b"not gzip at all".to_vec());
            out.push(Vec::new());
        }
        out
    }

    /// Every case gives what flate2's decoder gives: the same bytes in the
    /// same pieces to the sink, failing at the same write, finishing in
    /// error or not alike, whatever pieces the input comes in, with a size
    /// cap or without.
    #[test]
    fn decodes_as_flate2_does() {
        let mut next = rng(0x5eed);
        let mut compared = 0;
        for framing in [Framing::Gzip, Framing::Zlib, Framing::Raw] {
            for data in cases(framing, &mut next) {
                for split in 0..4 {
                    let pieces: Vec<usize> = match split {
                        0 => vec![data.len().max(1)],
                        1 => vec![1; data.len().max(1)],
                        _ => (0..data.len() + 1).map(|_| 1 + (next() as usize) % 3000).collect(),
                    };
                    for max in [u64::MAX, 50_000] {
                        let (a, b) = (ours(framing, &data, &pieces, max), flate2s(framing, &data, &pieces, max));
                        assert_eq!(a, b, "{framing:?}, {} bytes, split {split}, cap {max}", data.len());
                        compared += 1;
                    }
                }
            }
        }
        // 37 gzip streams, 30 zlib and 30 raw; four ways of feeding them, two caps.
        assert_eq!(compared, (37 + 30 + 30) * 4 * 2);
    }

    /// brotli bodies decode through the C decoder as through brotli's own
    /// writer (the Rust port, over a 4 KiB buffer): the same pieces to the
    /// sink, the same errors, on whole, corrupt, cut and overlong streams
    /// of several window sizes, fed whole, byte by byte and in pieces.
    #[test]
    fn brotli_decodes_as_its_own_writer_does() {
        let mut next = rng(0xb0);
        let mut compared = 0;
        let mut differed_from_whole = 0;
        for &(n, quality, window) in
            &[(0usize, 5, 20), (10, 5, 20), (3_000, 5, 20), (40_000, 5, 20), (40_000, 11, 22), (70_000, 4, 10)]
        {
            let data = text(&mut next, n);
            let mut whole = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut whole, 4096, quality, window);
                w.write_all(&data).unwrap();
            }
            let mut inputs = vec![whole.clone(), whole[..whole.len() / 2].to_vec()];
            // Flipped bytes, one at a time, across the stream.
            for _ in 0..6 {
                inputs.push(flipped(&whole, &mut next));
            }
            let mut overlong = whole.clone();
            overlong.extend_from_slice(b"\x00more");
            inputs.push(overlong);
            for input in &inputs {
                for split in [input.len().max(1), 1, 700] {
                    let pieces = vec![split; input.len() / split + 1];
                    for max in [u64::MAX, 20_000] {
                        // As the body decoder ends one: a flush, then the
                        // stream closed (what `into_inner` does).
                        let ours = |d: &mut BrotliWriter<Capped>| {
                            let _ = d.flush();
                            d.close()
                        };
                        let theirs = |d: &mut brotli::DecompressorWriter<Capped>| {
                            let _ = d.flush();
                            d.close()
                        };
                        let sink = || Capped { max, ..Capped::default() };
                        let a = run(BrotliWriter::new(sink()), input, &pieces, ours, |d| d.get_mut());
                        let b =
                            run(brotli::DecompressorWriter::new(sink(), 4096), input, &pieces, theirs, |d| d.get_mut());
                        assert_eq!(a, b, "{n} bytes, q{quality} w{window}, pieces of {split}, cap {max}");
                        if (a.1, a.2) != (None, false) {
                            differed_from_whole += 1;
                        }
                        compared += 1;
                    }
                }
            }
        }
        // Six streams, nine inputs each, three ways of feeding, two caps.
        assert_eq!(compared, 6 * 9 * 3 * 2);
        // Errors and caps were met, not only clean streams.
        assert!(differed_from_whole > compared / 3, "{differed_from_whole} of {compared} stopped early");
        assert!(BROTLI_BUFS.with(|p| p.borrow().len()) >= 1, "buffers are kept");
    }

    /// A state given back is reset for the next body, whatever its framing
    /// was: bodies decoded one after another on one thread decode alike.
    #[test]
    fn states_are_reused_across_framings() {
        let mut next = rng(7);
        let data = text(&mut next, 20_000);
        for round in 0..3 {
            for framing in [Framing::Raw, Framing::Gzip, Framing::Zlib, Framing::Gzip] {
                let enc = encode(framing, &data, 6);
                let (s, failed, bad) = ours(framing, &enc, &[enc.len() / 3, enc.len()], u64::MAX);
                assert_eq!((s.total, failed, bad), (data.len() as u64, None, false), "{framing:?} round {round}");
                assert_eq!(s.kept, data[..2000]);
            }
        }
        let kept = STATES.with(|p| p.borrow().len());
        assert!((1..=POOL).contains(&kept), "{kept} states kept");
    }
}
