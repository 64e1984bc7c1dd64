//! HTTP/1.x message framing for one direction of a connection: where a
//! head ends, how a body is delimited, and where the next message starts
//! after bytes that belong to none. One parser serves both directions
//! ([`Role`]); what a head means (pairing, which framing its body has) is
//! the connection's business (`conn.rs`), not the framer's.
//!
//! The framer works in place and in httparse's style: [`Framer::advance`]
//! looks at the bytes it is given and returns either
//! [`Status::Complete`] with how many bytes it consumed and the [`Event`]
//! the connection must act on, or [`Status::Partial`] when it consumed every
//! byte (held in the head buffer, fed to the body decoder, or skipped while
//! resynchronising) and needs more. It never calls itself and never copies
//! the rest of its input: the connection calls `advance` in a loop on the
//! remaining bytes, so a segment of a hundred thousand malformed messages
//! costs a hundred thousand turns of that loop, not a hundred thousand
//! nested calls.
//!
//! Work per byte is bounded: a head is searched for its end only in the
//! bytes that arrived since the last search, its first line is examined
//! once, and a resynchronisation looks at each line once (at most a window
//! of its last bytes).

use super::body::{BodyDecoder, BodyInfo};
use super::{Headers, RequestHead, ResponseHead};
use crate::budget::{Budget, Charge, Holder};
use crate::time::Ts;

/// Which direction a framer parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// Client to server: requests.
    Request,
    /// Server to client: responses.
    Response,
}

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes.
    Close,
}

/// Where the chunked decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line (its bytes are in `Body::line`).
    Size,
    /// Inside chunk data: bytes left.
    Data(u64),
    /// After chunk data, reading its line end (`true`: the CR was seen).
    DataEnd(bool),
    /// Reading trailer lines after the last chunk (the current line is in
    /// `Body::line`).
    Trailer,
    /// The last trailer line ended: the body is complete.
    End,
    /// The chunk framing did not parse: the body ends here.
    Bad,
}

/// Longest chunk-size line accepted (extensions included).
const MAX_CHUNK_LINE: usize = 1024;

/// Longest trailer line kept while looking for the blank line that ends the
/// trailers (longer lines are skipped, not kept).
const MAX_TRAILER_LINE: usize = 8192;

/// Bytes of a line the resynchronisation looks at (its last ones): a
/// request or status line longer than this is not found.
const RESYNC_WINDOW: usize = 8192;

/// A message body being received.
pub(super) struct Body {
    framing: Framing,
    chunk: Chunk,
    /// The chunk-size or trailer line so far.
    line: Vec<u8>,
    decoder: BodyDecoder,
}

impl Body {
    /// A body with this framing, decoded by `decoder`.
    pub(super) fn new(framing: Framing, decoder: BodyDecoder) -> Body {
        Body { framing, chunk: Chunk::Size, line: Vec::new(), decoder }
    }

    /// Every byte has come (a close-delimited body never ends this way).
    fn finished(&self) -> bool {
        match self.framing {
            Framing::Length(rem) => rem == 0,
            Framing::Close => false,
            Framing::Chunked => matches!(self.chunk, Chunk::End | Chunk::Bad),
        }
    }

    /// Consumes body bytes from `b`; returns how many belong to the body.
    fn take(&mut self, b: &[u8]) -> usize {
        match self.framing {
            Framing::Length(rem) => {
                let n = rem.min(b.len() as u64) as usize;
                self.decoder.push(&b[..n]);
                self.framing = Framing::Length(rem - n as u64);
                n
            }
            Framing::Close => {
                self.decoder.push(b);
                b.len()
            }
            Framing::Chunked => self.take_chunked(b),
        }
    }

    fn take_chunked(&mut self, b: &[u8]) -> usize {
        let mut i = 0;
        while i < b.len() {
            match self.chunk {
                Chunk::Size => {
                    // The rest of the line, at most.
                    let rest = &b[i..];
                    let (piece, nl) = match memchr::memchr(b'\n', rest) {
                        Some(n) => (&rest[..n], true),
                        None => (rest, false),
                    };
                    if self.line.len() + piece.len() > MAX_CHUNK_LINE {
                        // Too long to be a chunk-size line: broken framing
                        // (at the first byte beyond the cap).
                        i += MAX_CHUNK_LINE.saturating_sub(self.line.len()) + 1;
                        self.chunk = Chunk::Bad;
                        return i;
                    }
                    self.line.extend_from_slice(piece);
                    i += piece.len();
                    if !nl {
                        return i;
                    }
                    i += 1;
                    let l = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                    // Chunk extensions follow a ';'.
                    let hex = l.split(|c| *c == b';').next().unwrap_or(&[]);
                    let hex = String::from_utf8_lossy(hex);
                    self.chunk = match u64::from_str_radix(hex.trim(), 16) {
                        Ok(0) => Chunk::Trailer,
                        Ok(n) => Chunk::Data(n),
                        Err(_) => Chunk::Bad,
                    };
                    self.line.clear();
                    if self.chunk == Chunk::Bad {
                        return i;
                    }
                }
                Chunk::Data(rem) => {
                    let n = rem.min((b.len() - i) as u64) as usize;
                    self.decoder.push(&b[i..i + n]);
                    i += n;
                    self.chunk = if rem == n as u64 { Chunk::DataEnd(false) } else { Chunk::Data(rem - n as u64) };
                }
                Chunk::DataEnd(cr) => {
                    let c = b[i];
                    i += 1;
                    if c == b'\n' {
                        self.chunk = Chunk::Size;
                    } else if c != b'\r' || cr {
                        self.chunk = Chunk::Bad;
                        return i;
                    } else {
                        self.chunk = Chunk::DataEnd(true);
                    }
                }
                Chunk::Trailer => {
                    let rest = &b[i..];
                    let (piece, nl) = match memchr::memchr(b'\n', rest) {
                        Some(n) => (&rest[..n], true),
                        None => (rest, false),
                    };
                    let room = MAX_TRAILER_LINE.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&piece[..piece.len().min(room)]);
                    i += piece.len();
                    if !nl {
                        return i;
                    }
                    i += 1;
                    let empty = self.line.is_empty() || self.line.as_slice() == b"\r";
                    self.line.clear();
                    if empty {
                        self.chunk = Chunk::End;
                        return i;
                    }
                }
                Chunk::End | Chunk::Bad => return i,
            }
        }
        i
    }

    /// Applies `len` missing bytes. Returns (whether the body's framing
    /// survives the gap, how many of the bytes are this message's, how many
    /// of them were body data as far as can be known).
    fn gap(&mut self, len: u64) -> (bool, u64) {
        // Body data in the gap: the rest of the current chunk or of a body
        // of known length; all of a close-delimited body; none of chunk
        // framing.
        let data = match (self.framing, self.chunk) {
            (Framing::Length(rem), _) => len.min(rem),
            (Framing::Chunked, Chunk::Data(rem)) => len.min(rem),
            (Framing::Chunked, _) => 0,
            (Framing::Close, _) => len,
        };
        let within = match (self.framing, self.chunk) {
            (Framing::Length(rem), _) if len <= rem => {
                self.framing = Framing::Length(rem - len);
                true
            }
            (Framing::Chunked, Chunk::Data(rem)) if len <= rem => {
                self.chunk = if rem == len { Chunk::DataEnd(false) } else { Chunk::Data(rem - len) };
                true
            }
            (Framing::Close, _) => true,
            _ => false,
        };
        self.decoder.gap(data);
        (within, data)
    }
}

/// What the connection must act on.
#[derive(Debug)]
pub(super) enum Event {
    /// A message begins at the next byte (none consumed). The connection
    /// decides what it is: [`Framer::begin_head`], [`Framer::begin_body`]
    /// for an answer without a status line, or [`Framer::lose_track`].
    Start,
    /// A head ended: its bytes, through the blank line. The framer is idle;
    /// the connection starts the body, if any.
    Head(HeadBytes),
    /// An HTTP/0.9 request line (no version, no header fields).
    Http09(RequestHead),
    /// The head reached the size cap (or, `budget`, the memory budget had
    /// no room for more of it) before it ended: its bytes so far.
    HeadTooLarge {
        /// The head's bytes so far.
        bytes: Vec<u8>,
        /// The memory budget, not the head cap, stopped it.
        budget: bool,
    },
    /// Every byte of the body has come, or (`bad_chunk`) its chunk framing
    /// broke. The body is still held: [`Framer::finish_body`] takes it.
    BodyEnd {
        /// The chunk framing did not parse.
        bad_chunk: bool,
    },
    /// While resynchronising, the start of a message was found: parsing
    /// goes on from it.
    Found,
}

/// Where the bytes of a head that ended are.
#[derive(Debug)]
pub(super) enum HeadBytes {
    /// The head lay whole in the bytes given to [`Framer::advance`]: it is
    /// their first this many bytes (looked at in place, not copied).
    Here(usize),
    /// The head came in pieces and was held: its bytes.
    Held(Vec<u8>),
}

impl HeadBytes {
    /// The head's bytes; `given`: the bytes given to the
    /// [`Framer::advance`] call that returned it.
    pub(super) fn bytes<'a>(&'a self, given: &'a [u8]) -> &'a [u8] {
        match self {
            HeadBytes::Here(n) => given.get(..*n).unwrap_or(given),
            HeadBytes::Held(v) => v,
        }
    }
}

/// httparse's two outcomes of an incremental parse.
#[derive(Debug)]
pub(super) enum Status {
    /// This many bytes were consumed, then this happened.
    Complete(usize, Event),
    /// Every byte was consumed; more are needed.
    Partial,
}

/// Where the framer is.
enum St {
    /// Between messages.
    Idle,
    /// Receiving a head (its bytes are in `buf`).
    Head,
    /// Receiving a body.
    Body(Box<Body>),
    /// Lost track (after a gap or garbage): looking for the next message
    /// (the current line's last bytes are in `buf`).
    Resync,
    /// Not HTTP (any more): bytes are ignored.
    Off,
}

/// What a gap met.
pub(super) enum GapAt {
    /// Parsing had ended.
    Off,
    /// Between messages.
    Idle,
    /// While looking for the next message.
    Resync,
    /// Inside a head: its bytes so far.
    Head(Vec<u8>),
    /// Inside a body, which is still held.
    Body {
        /// The body's framing survives the gap (it goes on after it).
        within: bool,
        /// Bytes of the gap that belong to this message.
        mine: u64,
        /// Bytes of the gap beyond the end of a body of known length (the
        /// start of the next message).
        beyond: u64,
        /// The body is complete.
        finished: bool,
    },
}

/// One direction's parser.
pub(super) struct Framer {
    role: Role,
    st: St,
    /// Head bytes so far (or, resynchronising, the current line's last
    /// bytes).
    buf: Vec<u8>,
    /// Of a head being received: where its first line ends in `buf`, once
    /// seen.
    first_eol: Option<usize>,
    /// Capture time and frame of the current message's first byte.
    start: Option<(Ts, u64)>,
    /// Capture time and frame of the last byte consumed.
    last: (Ts, u64),
    /// Capture time and frame of the chunk being parsed.
    at: (Ts, u64),
    /// Bytes skipped while resynchronising.
    skipped: u64,
    /// Stream offset just past the chunk being parsed (every slice the
    /// framer is given ends there, so a slice `b` starts at
    /// `chunk_end - b.len()`).
    chunk_end: u64,
    /// The chunk's acknowledgment of the other direction
    /// (see [`crate::tcp::DataChunk::peer_ack`]).
    chunk_peer_ack: Option<u64>,
    /// Stream offset and peer acknowledgment of the current message's
    /// first byte.
    msg_off: u64,
    msg_peer_ack: Option<u64>,
    /// `buf`'s share of the memory budget.
    charge: Charge,
}

impl Framer {
    /// A framer for `role`; `resync`: the stream may begin inside a
    /// message (a connection picked up mid-stream). Its buffer is charged
    /// to `budget`.
    pub(super) fn new(role: Role, resync: bool, budget: &Budget) -> Framer {
        Framer {
            charge: budget.empty(Holder::Heads),
            role,
            st: if resync { St::Resync } else { St::Idle },
            buf: Vec::new(),
            first_eol: None,
            start: None,
            last: (Ts(0), 0),
            at: (Ts(0), 0),
            skipped: 0,
            chunk_end: 0,
            chunk_peer_ack: None,
            msg_off: 0,
            msg_peer_ack: None,
        }
    }

    /// The next bytes come from a chunk ending at stream offset `end`,
    /// captured at `at`, with this acknowledgment of the other direction.
    pub(super) fn chunk(&mut self, end: u64, peer_ack: Option<u64>, at: (Ts, u64)) {
        self.chunk_end = end;
        self.chunk_peer_ack = peer_ack;
        self.at = at;
    }

    /// Takes `b`, a chunk ending at stream offset `end`, as
    /// [`Framer::chunk`] and [`Framer::advance`] would when all of it is
    /// body bytes of the message under way and it does not end it (a
    /// length not reached, a body that ends at the close, a chunk's data
    /// not reached): most chunks of a large body. `false`, having done
    /// nothing, for any other bytes.
    #[inline]
    pub(super) fn body_bytes(&mut self, b: &[u8], end: u64, peer_ack: Option<u64>, at: (Ts, u64)) -> bool {
        let St::Body(body) = &self.st else { return false };
        let n = b.len() as u64;
        let within = match (body.framing, body.chunk) {
            (Framing::Length(rem), _) | (Framing::Chunked, Chunk::Data(rem)) => rem > n,
            (Framing::Close, _) => true,
            (Framing::Chunked, _) => false,
        };
        if b.is_empty() || !within {
            return false;
        }
        self.chunk(end, peer_ack, at);
        self.last = self.at;
        if let St::Body(body) = &mut self.st {
            body.take(b);
        }
        true
    }

    /// Stream offset just past the current chunk.
    pub(super) fn chunk_end(&self) -> u64 {
        self.chunk_end
    }

    /// Capture time and frame of the current message's first byte.
    pub(super) fn start(&self) -> Option<(Ts, u64)> {
        self.start
    }

    /// Capture time and frame of the last byte consumed.
    pub(super) fn last(&self) -> (Ts, u64) {
        self.last
    }

    /// Stream offset of the current message's first byte.
    pub(super) fn msg_off(&self) -> u64 {
        self.msg_off
    }

    /// The other direction's acknowledgment when the current message began.
    pub(super) fn msg_peer_ack(&self) -> Option<u64> {
        self.msg_peer_ack
    }

    /// Bytes skipped while resynchronising, in all.
    pub(super) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Between messages.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self.st, St::Idle)
    }

    /// Looking for the next message.
    pub(super) fn is_resyncing(&self) -> bool {
        matches!(self.st, St::Resync)
    }

    /// Receiving a body.
    pub(super) fn in_body(&self) -> bool {
        matches!(self.st, St::Body(_))
    }

    /// The framing of the body being received.
    pub(super) fn body_framing(&self) -> Option<Framing> {
        match &self.st {
            St::Body(b) => Some(b.framing),
            _ => None,
        }
    }

    /// Start time of the message being received (head or body).
    pub(super) fn open_since(&self) -> Option<Ts> {
        match self.st {
            St::Head | St::Body(_) => self.start.map(|s| s.0),
            _ => None,
        }
    }

    /// A head starts at the first byte of `b` (the rest of the chunk).
    pub(super) fn begin_head(&mut self, b: &[u8]) {
        self.st = St::Head;
        self.clear_buf();
        self.first_eol = None;
        self.mark_start(b.len());
    }

    /// A body without a head starts at the first byte of `b` (an answer
    /// without a status line).
    pub(super) fn begin_body(&mut self, b: &[u8], body: Body) {
        self.st = St::Body(Box::new(body));
        self.mark_start(b.len());
    }

    /// The body of the message whose head just ended.
    pub(super) fn start_body(&mut self, body: Body) {
        self.st = St::Body(Box::new(body));
    }

    /// Between messages again.
    pub(super) fn set_idle(&mut self) {
        self.st = St::Idle;
    }

    /// Starts looking for the next message.
    pub(super) fn lose_track(&mut self) {
        self.st = St::Resync;
        self.clear_buf();
    }

    /// Stops parsing this direction.
    pub(super) fn set_off(&mut self) {
        self.st = St::Off;
        self.buf = Vec::new();
        self.charge.set(0);
    }

    /// Empties the buffer (and frees a large one: a connection that once
    /// had a long head does not keep its room).
    fn clear_buf(&mut self) {
        if self.buf.capacity() > 16 << 10 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.charge.set(0);
    }

    /// Takes the buffer out (a head, or a head cut short).
    fn take_buf(&mut self) -> Vec<u8> {
        self.charge.set(0);
        std::mem::take(&mut self.buf)
    }

    /// Ends the body being received (if any): what was decoded of it. The
    /// framer is idle.
    pub(super) fn finish_body(&mut self) -> Option<BodyInfo> {
        match std::mem::replace(&mut self.st, St::Idle) {
            St::Body(b) => Some(b.decoder.finish()),
            other => {
                self.st = other;
                None
            }
        }
    }

    /// A request head still waiting for its end whose first line is a
    /// method alone (`OPTIONS`, no target, no version): its whole lines so
    /// far, ended as a head ends (so the fields that came can be read),
    /// taken out. No header field can make such a head valid and servers
    /// answer it at once, so once the server answers or the connection
    /// ends it is over; the caller makes it a malformed request and the
    /// framer looks for the next message.
    pub(super) fn take_bare_request(&mut self) -> Option<Vec<u8>> {
        if self.role != Role::Request || !matches!(self.st, St::Head) {
            return None;
        }
        bare_method(self.buf.get(..self.first_eol?)?)?;
        let mut head = self.take_buf();
        head.truncate(memchr::memrchr(b'\n', &head).map_or(0, |i| i + 1));
        head.extend_from_slice(b"\r\n");
        Some(head)
    }

    /// The connection ended: parsing stops. Returns the body being
    /// received, if any, as decoded so far, and its framing.
    pub(super) fn shut(&mut self) -> Option<(BodyInfo, Framing)> {
        let st = std::mem::replace(&mut self.st, St::Off);
        self.buf = Vec::new();
        self.charge.set(0);
        match st {
            St::Body(b) => Some((b.decoder.finish(), b.framing)),
            _ => None,
        }
    }

    /// The message starts `rest` bytes before the end of the chunk.
    fn mark_start(&mut self, rest: usize) {
        self.start = Some(self.at);
        self.msg_off = self.chunk_end.saturating_sub(rest as u64);
        self.msg_peer_ack = self.chunk_peer_ack;
    }

    /// Parses as much of `b` (the rest of the current chunk) as it can; see
    /// the module docs.
    pub(super) fn advance(&mut self, b: &[u8], max_head: usize, skipped: &mut u64) -> Status {
        if b.is_empty() {
            return Status::Partial;
        }
        match &mut self.st {
            St::Off => Status::Partial,
            St::Idle => {
                // Empty lines before a message are allowed (RFC 9112 2.2).
                let skip = b.iter().take_while(|c| **c == b'\r' || **c == b'\n').count();
                if skip == b.len() { Status::Partial } else { Status::Complete(skip, Event::Start) }
            }
            St::Head => {
                self.last = self.at;
                self.head(b, max_head)
            }
            St::Body(body) => {
                self.last = self.at;
                let used = body.take(b);
                if body.finished() {
                    let bad_chunk = body.chunk == Chunk::Bad;
                    Status::Complete(used, Event::BodyEnd { bad_chunk })
                } else {
                    debug_assert_eq!(used, b.len());
                    Status::Partial
                }
            }
            St::Resync => self.resync(b, skipped),
        }
    }

    fn head(&mut self, b: &[u8], max_head: usize) -> Status {
        let old = self.buf.len();
        let room = max_head.saturating_sub(old).max(1);
        let take = b.len().min(room);
        if old == 0 {
            // The usual case: the whole head is in this chunk. It is looked
            // at where it lies, and only its own bytes are copied.
            let window = &b[..take];
            if let Some(eol) = memchr::memchr(b'\n', window) {
                if let Some(head) = self.http09(&window[..eol]) {
                    self.st = St::Idle;
                    return Status::Complete(eol + 1, Event::Http09(head));
                }
                self.first_eol = Some(eol);
            }
            if let Some(end) = head_end(window, 0) {
                self.st = St::Idle;
                return Status::Complete(end, Event::Head(HeadBytes::Here(end)));
            }
        }
        // A head split across chunks is held until it ends.
        if !self.charge.try_set(old + take) {
            // No room in the memory budget for more of this head: it is
            // given up like one over the head cap, through the end of its
            // current line (the next message is looked for from there).
            let used = memchr::memchr(b'\n', &b[..take]).map_or(take, |i| i + 1);
            let mut bytes = self.take_buf();
            bytes.extend_from_slice(&b[..used.min(MAX_CHUNK_LINE)]);
            self.st = St::Idle;
            return Status::Complete(used, Event::HeadTooLarge { bytes, budget: true });
        }
        self.buf.extend_from_slice(&b[..take]);
        if self.first_eol.is_none()
            && let Some(eol) = memchr::memchr(b'\n', &self.buf[old..])
        {
            let eol = old + eol;
            self.first_eol = Some(eol);
            if let Some(head) = self.http09(&self.buf[..eol]) {
                let used = (eol + 1).saturating_sub(old).min(take);
                self.st = St::Idle;
                self.clear_buf();
                return Status::Complete(used, Event::Http09(head));
            }
        }
        match head_end(&self.buf, old) {
            Some(end) => {
                let mut head = self.take_buf();
                head.truncate(end);
                self.st = St::Idle;
                Status::Complete(end - old, Event::Head(HeadBytes::Held(head)))
            }
            None if self.buf.len() >= max_head => {
                self.st = St::Idle;
                Status::Complete(take, Event::HeadTooLarge { bytes: self.take_buf(), budget: false })
            }
            None => {
                debug_assert_eq!(take, b.len());
                Status::Partial
            }
        }
    }

    /// HTTP/0.9: a request's first line without a version.
    fn http09(&self, line: &[u8]) -> Option<RequestHead> {
        if self.role != Role::Request || memchr::memmem::find(line, b"HTTP/").is_some() {
            return None;
        }
        http09_request(line)
    }

    /// Scans for the start of the next message, line by line, looking at
    /// each byte a bounded number of times. `buf` holds the last bytes (at
    /// most twice the window) of a line begun in an earlier chunk.
    fn resync(&mut self, b: &[u8], total: &mut u64) -> Status {
        let request = self.role == Role::Request;
        let mut pos = 0;
        while pos < b.len() {
            let rest = &b[pos..];
            let (piece, nl) = match memchr::memchr(b'\n', rest) {
                Some(nl) => (&rest[..nl], Some(nl)),
                None => (rest, None),
            };
            if self.buf.is_empty()
                && let Some(nl) = nl
            {
                // A whole line in this chunk: look at it where it lies.
                let line = &piece[piece.len().saturating_sub(RESYNC_WINDOW)..];
                let cut = piece.len() - line.len();
                if let Some(start) = message_start_in(line, request) {
                    self.skip(cut + start, total);
                    self.st = St::Idle;
                    return Status::Complete(pos + cut + start, Event::Found);
                }
                self.skip(nl + 1, total);
                pos += nl + 1;
                continue;
            }
            if !self.charge.try_set(self.buf.len() + piece.len()) {
                // No room in the memory budget to hold the line: it is
                // skipped (a message starting in it is not found).
                let n = self.buf.len() + piece.len() + usize::from(nl.is_some());
                self.skip(n, total);
                self.clear_buf();
                match nl {
                    Some(nl) => {
                        pos += nl + 1;
                        continue;
                    }
                    None => return Status::Partial,
                }
            }
            self.buf.extend_from_slice(piece);
            if self.buf.len() > 2 * RESYNC_WINDOW {
                // Keep the line's last bytes only (amortised: at most one
                // move per window of bytes).
                let drop = self.buf.len() - RESYNC_WINDOW;
                self.buf.drain(..drop);
                self.skip(drop, total);
                self.charge.set(self.buf.len());
            }
            let Some(nl) = nl else {
                return Status::Partial;
            };
            let cut = self.buf.len().saturating_sub(RESYNC_WINDOW);
            if let Some(start) = message_start_in(&self.buf[cut..], request) {
                // The message began in an earlier chunk: its first line is
                // the head's first bytes.
                self.skip(cut + start, total);
                self.buf.drain(..cut + start);
                self.buf.push(b'\n');
                self.charge.set(self.buf.len());
                let consumed = pos + nl + 1;
                let line_len = self.buf.len();
                self.st = St::Head;
                self.first_eol = Some(line_len - 1);
                self.mark_start(b.len() - consumed + line_len);
                self.last = self.at;
                return Status::Complete(consumed, Event::Found);
            }
            let skipped = self.buf.len() + 1;
            self.skip(skipped, total);
            self.clear_buf();
            pos += nl + 1;
        }
        Status::Partial
    }

    fn skip(&mut self, n: usize, total: &mut u64) {
        self.skipped += n as u64;
        *total += n as u64;
    }

    /// Applies `len` bytes missing from the capture at this point of the
    /// stream. A body of known length, a chunk's data and a close-delimited
    /// body go on after the gap (`within`); anything else loses track
    /// (the framer resynchronises; a body that ends here is still held for
    /// [`Framer::finish_body`]).
    pub(super) fn gap(&mut self, len: u64) -> GapAt {
        match std::mem::replace(&mut self.st, St::Resync) {
            St::Off => {
                self.st = St::Off;
                GapAt::Off
            }
            St::Idle => {
                self.clear_buf();
                GapAt::Idle
            }
            St::Resync => {
                self.clear_buf();
                GapAt::Resync
            }
            St::Head => GapAt::Head(self.take_buf()),
            St::Body(mut body) => {
                let before = match body.framing {
                    Framing::Length(rem) => Some(rem),
                    _ => None,
                };
                let (within, _) = body.gap(len);
                let mine = before.map_or(len, |rem| len.min(rem));
                let beyond = before.map_or(0, |rem| len.saturating_sub(rem));
                let finished = body.finished();
                self.st = St::Body(body);
                GapAt::Body { within, mine, beyond, finished }
            }
        }
    }
}

/// Methods recognised at the start of a connection even when the rest of
/// the request line is broken, and where a request line may begin in the
/// middle of a line when resynchronising.
pub(super) const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"CCM_POST",
];

/// Whether the first bytes of a client's stream say HTTP: `Some(true)`
/// yes, `Some(false)` unclear, `None` too few bytes to tell.
pub(super) fn client_says_http(b: &[u8]) -> Option<bool> {
    if METHODS.iter().any(|m| b.len() >= m.len() && b[..m.len()].eq_ignore_ascii_case(m)) {
        return Some(true);
    }
    looks_like_request(&b[..b.len().min(25)])
}

/// True if `b` starts like a request line: an uppercase token and a space.
fn looks_like_request(b: &[u8]) -> Option<bool> {
    let n = b.iter().take_while(|c| c.is_ascii_uppercase() || **c == b'-' || **c == b'_').count();
    if n < b.len() {
        Some((3..=24).contains(&n) && b[n] == b' ')
    } else if n == b.len() && n <= 24 {
        None // undecided: need more bytes
    } else {
        Some(false)
    }
}

/// True if `b` starts like a status line.
pub(super) fn looks_like_response(b: &[u8]) -> Option<bool> {
    const P: &[u8] = b"HTTP/";
    let b = &b[..b.len().min(P.len())];
    if b != &P[..b.len()] {
        Some(false)
    } else if b.len() < P.len() {
        None
    } else {
        Some(true)
    }
}

/// Finds the end of a head (after the blank line) in `buf`, searching from
/// `from`. Accepts CRLF CRLF and bare LF LF.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(3);
    while let Some(n) = memchr::memchr(b'\n', buf.get(i..)?) {
        i += n;
        if buf.get(i + 1) == Some(&b'\n') {
            return Some(i + 2);
        }
        if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
            return Some(i + 3);
        }
        i += 1;
    }
    None
}

/// True if `line` (without its line end) can start a message: a request
/// line `METHOD SP target SP HTTP/1.x`, or a status line.
fn message_line(line: &[u8], request: bool) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if request {
        looks_like_request(line) == Some(true) && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
    } else {
        line.starts_with(b"HTTP/1.") && line.len() >= 12 && line[9..12].iter().all(u8::is_ascii_digit)
    }
}

/// Where, in `line` (without its line end), a message starts: a status
/// line may follow the last bytes of a body directly (no line end between),
/// and so may a request line (after a request body).
fn message_start_in(line: &[u8], request: bool) -> Option<usize> {
    if request {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if !(l.ends_with(b" HTTP/1.1") || l.ends_with(b" HTTP/1.0")) {
            return None;
        }
        if message_line(line, true) {
            return Some(0);
        }
        (1..line.len()).find(|i| {
            METHODS.iter().any(|m| line[*i..].starts_with(m) && line.get(*i + m.len()) == Some(&b' '))
                && message_line(&line[*i..], true)
        })
    } else {
        memchr::memmem::find_iter(line, b"HTTP/1.").find(|&i| message_line(&line[i..], false))
    }
}

fn headers_from(h: &[httparse::Header<'_>]) -> Headers {
    let mut out = Headers::default();
    let total: usize = h.iter().map(|h| h.name.len() + h.value.len()).sum();
    out.reserve(h.len(), total);
    for f in h {
        out.push(f.name.as_bytes(), f.value);
    }
    out
}

/// Header field slots tried first; a head with more is parsed again with
/// more, up to [`MAX_FIELDS`].
const FIELDS: usize = 64;

/// Most header fields in one head.
const MAX_FIELDS: usize = 4096;

/// Runs `parse` with header slots: first 64 on the stack (no allocation
/// for a usual head), then four times as many on the heap while httparse
/// says there were too many, up to [`MAX_FIELDS`]. `None`: malformed.
fn with_slots<'b, T>(
    mut parse: impl FnMut(&mut [httparse::Header<'b>]) -> Result<Option<T>, httparse::Error>,
) -> Option<T> {
    let mut first = [httparse::EMPTY_HEADER; FIELDS];
    let mut n = FIELDS;
    loop {
        let got = if n == FIELDS { parse(&mut first) } else { parse(&mut vec![httparse::EMPTY_HEADER; n]) };
        match got {
            Ok(head) => return head,
            Err(httparse::Error::TooManyHeaders) if n < MAX_FIELDS => n *= 4,
            Err(_) => return None,
        }
    }
}

/// Parses a request head. `None`: malformed.
pub(super) fn parse_request(buf: &[u8]) -> Option<RequestHead> {
    with_slots(|headers| {
        let mut req = httparse::Request::new(headers);
        Ok(match req.parse(buf)? {
            httparse::Status::Complete(_) => Some(RequestHead {
                method: req.method.unwrap_or("").to_string(),
                uri: req.path.unwrap_or("").as_bytes().to_vec(),
                version: req.version,
                headers: headers_from(req.headers),
            }),
            httparse::Status::Partial => None,
        })
    })
}

/// Parses a response head. `None`: malformed.
pub(super) fn parse_response(buf: &[u8]) -> Option<ResponseHead> {
    with_slots(|headers| {
        let mut resp = httparse::Response::new(headers);
        Ok(match resp.parse(buf)? {
            httparse::Status::Complete(_) => Some(ResponseHead {
                version: resp.version,
                status: resp.code.unwrap_or(0),
                reason: resp.reason.unwrap_or("").as_bytes().to_vec(),
                headers: headers_from(resp.headers),
            }),
            httparse::Status::Partial => None,
        })
    })
}

/// What the request line and header fields of a head that did not parse
/// still say (method, target, fields), for the record.
pub(super) fn salvage_request(head: &[u8]) -> RequestHead {
    let line = head.split(|c| *c == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|c| *c == b' ').filter(|p| !p.is_empty()).take(3).collect();
    // A method only if the first word is a token; a second word that is
    // the version is not a target.
    let token =
        |w: &[u8]| !w.is_empty() && w.iter().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c));
    let method = match parts.first() {
        Some(m) if token(m) && (parts.len() >= 2 || bare_method(m).is_some()) => {
            String::from_utf8_lossy(m).into_owned()
        }
        _ => String::new(),
    };
    let uri = match parts.get(1) {
        Some(u) if !method.is_empty() && !u.starts_with(b"HTTP/") => u.to_vec(),
        _ => Vec::new(),
    };
    // The header fields usually survive a broken request line.
    let mut headers = Headers::default();
    if !method.is_empty()
        && let Some(nl) = memchr::memchr(b'\n', head)
    {
        let mut h = vec![httparse::EMPTY_HEADER; 128];
        if let Ok(httparse::Status::Complete((_, parsed))) = httparse::parse_headers(&head[nl + 1..], &mut h) {
            headers = headers_from(parsed);
        }
    }
    RequestHead { method, uri, version: None, headers }
}

/// What the request line of a head cut by a gap says (method, target,
/// version; no fields).
pub(super) fn partial_request(buf: &[u8]) -> RequestHead {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let _ = req.parse(buf);
    RequestHead {
        method: req.method.unwrap_or("").to_string(),
        uri: req.path.unwrap_or("").as_bytes().to_vec(),
        version: req.version,
        headers: Headers::default(),
    }
}

/// The method, if `line` (without its line end) is a method and nothing
/// else: an upper-case token of 3 to 24 characters, as request lines
/// start (`OPTIONS`, `PROPFIND`, `M-SEARCH`).
fn bare_method(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let token = line.iter().all(|c| c.is_ascii_uppercase() || *c == b'-' || *c == b'_');
    (token && (3..=24).contains(&line.len()) && line.first().is_some_and(u8::is_ascii_uppercase)).then_some(line)
}

/// A request line without a version (HTTP/0.9): `METHOD SP target`.
fn http09_request(line: &[u8]) -> Option<RequestHead> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sp = memchr::memchr(b' ', line)?;
    let (method, rest) = (&line[..sp], &line[sp + 1..]);
    if method.is_empty() || !method.iter().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    if rest.is_empty() || rest.contains(&b' ') {
        return None;
    }
    Some(RequestHead {
        method: String::from_utf8_lossy(method).into_owned(),
        uri: rest.to_vec(),
        version: None,
        headers: Headers::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::ContentEncoding;

    /// A head with `n` header fields, `X-i: v<i>`.
    fn head_with(first: &str, n: usize) -> Vec<u8> {
        let mut h = format!("{first}\r\n");
        for i in 0..n {
            h.push_str(&format!("X-{i}: v{i}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    #[test]
    fn heads_beyond_the_stack_slots_parse_whole_up_to_the_field_cap() {
        // 64 slots on the stack, then 256 and 1024 on the heap.
        for n in [FIELDS, FIELDS + 1, 300, 1024] {
            let req = parse_request(&head_with("GET /a HTTP/1.1", n)).expect("request parses");
            assert_eq!(
                (req.headers.len(), req.headers.get(&format!("X-{}", n - 1))),
                (n, Some(format!("v{}", n - 1).as_bytes()))
            );
            let resp = parse_response(&head_with("HTTP/1.1 200 OK", n)).expect("response parses");
            assert_eq!((resp.status, resp.headers.len()), (200, n));
        }
        // Beyond the cap of 4,096 fields: malformed.
        assert!(parse_request(&head_with("GET /a HTTP/1.1", MAX_FIELDS + 1)).is_none());
        assert!(parse_response(&head_with("HTTP/1.1 200 OK", MAX_FIELDS + 1)).is_none());
        // Cut short: not a head.
        assert!(parse_request(b"GET /a HTTP/1.1\r\nX-1: v").is_none());
    }

    fn decoder() -> BodyDecoder {
        BodyDecoder::new(ContentEncoding::Identity, 1 << 20, 1 << 30, 1000)
    }

    /// Runs a framer over `input` in pieces of `step` bytes, answering
    /// `Start` with a head and every head without a body unless it says
    /// `Content-Length`. Returns the events in order.
    fn events(role: Role, input: &[u8], step: usize) -> Vec<String> {
        events_capped(role, input, step, 1024)
    }

    fn events_capped(role: Role, input: &[u8], step: usize, max_head: usize) -> Vec<String> {
        let mut f = Framer::new(role, false, &Budget::unlimited());
        let mut out = Vec::new();
        let mut off = 0;
        let mut skipped = 0;
        for piece in input.chunks(step.max(1)) {
            off += piece.len() as u64;
            f.chunk(off, None, (Ts(0), 0));
            let mut b = piece;
            loop {
                match f.advance(b, max_head, &mut skipped) {
                    Status::Partial => break,
                    Status::Complete(n, ev) => {
                        let given = b;
                        b = &b[n..];
                        match ev {
                            Event::Start => f.begin_head(b),
                            Event::Head(h) => {
                                let h = h.bytes(given);
                                let len = match role {
                                    Role::Request => parse_request(h).map(|r| {
                                        out.push(format!("req {}", String::from_utf8_lossy(&r.uri)));
                                        r.headers.get("content-length").map(|v| v.to_vec())
                                    }),
                                    Role::Response => parse_response(h).map(|r| {
                                        out.push(format!("resp {}", r.status));
                                        r.headers.get("content-length").map(|v| v.to_vec())
                                    }),
                                };
                                match len {
                                    None => {
                                        out.push("bad".into());
                                        f.lose_track();
                                    }
                                    Some(Some(l)) => {
                                        let l: u64 = String::from_utf8_lossy(&l).parse().unwrap_or(0);
                                        if l > 0 {
                                            f.start_body(Body::new(Framing::Length(l), decoder()));
                                        }
                                    }
                                    Some(None) => {}
                                }
                            }
                            Event::Http09(h) => out.push(format!("0.9 {}", String::from_utf8_lossy(&h.uri))),
                            Event::HeadTooLarge { .. } => {
                                out.push("too large".into());
                                f.lose_track();
                            }
                            Event::BodyEnd { .. } => {
                                let info = f.finish_body().unwrap_or_default();
                                out.push(format!("body {}", info.decoded_len));
                            }
                            Event::Found => out.push("found".into()),
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let input = b"GET /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n:\r\n\r\n\
            junk line\r\nPOST /c HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /d\r\n";
        let whole = events(Role::Request, input, input.len());
        assert_eq!(whole, ["req /a", "body 3", "bad", "found", "req /c", "0.9 /d"]);
        for step in 1..input.len() {
            assert_eq!(events(Role::Request, input, step), whole, "step {step}");
        }
    }

    /// A head whose first line is a method alone can be taken out while
    /// it waits for its end, whatever the pieces it came in; no other can.
    #[test]
    fn a_method_alone_can_be_taken_out_while_it_waits() {
        let budget = Budget::default();
        let input = b"OPTIONS\r\nHost: x\r\nAccept: */";
        for step in 1..=input.len() {
            let mut f = Framer::new(Role::Request, false, &budget);
            let mut skipped = 0;
            for piece in input.chunks(step) {
                let mut b = piece;
                while let Status::Complete(n, ev) = f.advance(b, 1024, &mut skipped) {
                    b = &b[n..];
                    assert!(matches!(ev, Event::Start), "step {step}: {ev:?}");
                    f.begin_head(b);
                }
            }
            let head = f.take_bare_request().expect("a method alone");
            assert_eq!(head, b"OPTIONS\r\nHost: x\r\n\r\n", "step {step}");
            assert_eq!(salvage_request(&head).method, "OPTIONS");
            assert_eq!(salvage_request(&head).headers.get("host"), Some(&b"x"[..]));
        }
        for first in [&b"GET / HTTP/1.1\r\n"[..], b"OPTIONS", b"OPTIONS * HTTP/1.1\r\n", b"options\r\n"] {
            let mut f = Framer::new(Role::Request, false, &budget);
            let mut skipped = 0;
            if let Status::Complete(_, Event::Start) = f.advance(first, 1024, &mut skipped) {
                f.begin_head(first);
                let _ = f.advance(first, 1024, &mut skipped);
            }
            assert_eq!(f.take_bare_request(), None, "{}", String::from_utf8_lossy(first));
        }
        for line in [&b"OK"[..], b"OPTIONS *", b"options", b"A-VERY-LONG-WORD-THAT-IS-NO-METHOD", b"-GET"] {
            assert_eq!(bare_method(line), None, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(salvage_request(b"OPTIONS\n\n").method, "OPTIONS");
        assert_eq!(salvage_request(b"hello\r\n\r\n").method, "");
    }

    /// A hundred thousand malformed messages in one piece: no recursion,
    /// every one seen, each byte looked at a bounded number of times.
    #[test]
    fn a_long_run_of_malformed_messages_is_a_loop() {
        let one = b"GET / HTTP/1.1\r\n:\r\n\r\n";
        let input = one.repeat(100_000);
        let ev = events(Role::Request, &input, input.len());
        assert_eq!(ev.iter().filter(|e| *e == "bad").count(), 100_000);
        assert_eq!(ev.iter().filter(|e| *e == "found").count(), 99_999);
        let resp = [b"HTTP/1.1 200 OK\r\n:\r\n\r\n".as_slice()].repeat(50_000).concat();
        let ev = events(Role::Response, &resp, 65536);
        assert_eq!(ev.iter().filter(|e| *e == "bad").count(), 50_000);
    }

    #[test]
    fn resync_finds_a_line_split_across_chunks_and_keeps_its_start() {
        let mut f = Framer::new(Role::Response, true, &Budget::unlimited());
        let mut skipped = 0;
        f.chunk(10, None, (Ts(5), 1));
        assert!(matches!(f.advance(b"xx\nabcHTTP", 1024, &mut skipped), Status::Partial));
        let rest = b"/1.1 404 No\r\n\r\n";
        let rest = &[rest.as_slice(), b"tail"].concat();
        f.chunk(10 + rest.len() as u64, Some(7), (Ts(9), 2));
        match f.advance(rest, 1024, &mut skipped) {
            Status::Complete(n, Event::Found) => {
                assert_eq!(n, 13, "through the status line's end");
                assert_eq!(f.msg_off(), 6, "the status line began at offset 6");
                assert_eq!(skipped, 6);
                match f.advance(&rest[n..], 1024, &mut skipped) {
                    Status::Complete(_, Event::Head(h)) => {
                        assert_eq!(h.bytes(&rest[n..]), b"HTTP/1.1 404 No\r\n\r\n")
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn byte_by_byte_heads_are_searched_once() {
        // A 60 KB head delivered a byte at a time must not be rescanned
        // from its start each time: the first line is examined once.
        let mut head = b"GET /x HTTP/1.1\r\n".to_vec();
        while head.len() < 60_000 {
            head.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let ev = events_capped(Role::Request, &head, 1, 64 << 10);
        assert_eq!(ev, ["req /x"]);
    }

    #[test]
    fn chunked_bodies_and_broken_framing() {
        let mut f = Framer::new(Role::Response, false, &Budget::unlimited());
        let mut skipped = 0;
        let body = b"5;x=1\r\nhello\r\n0A\r\n0123456789\r\n0\r\nT: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            f.start_body(Body::new(Framing::Chunked, decoder()));
            let mut used = 0;
            for piece in body.chunks(step) {
                match f.advance(piece, 1024, &mut skipped) {
                    Status::Partial => used += piece.len(),
                    Status::Complete(n, Event::BodyEnd { bad_chunk }) => {
                        assert!(!bad_chunk);
                        used += n;
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(used, body.len() - 4, "step {step}");
            assert_eq!(f.finish_body().map(|b| b.kept), Some(b"hello0123456789".to_vec()));
        }
        f.start_body(Body::new(Framing::Chunked, decoder()));
        assert!(matches!(
            f.advance(b"zz\r\n", 1024, &mut skipped),
            Status::Complete(4, Event::BodyEnd { bad_chunk: true })
        ));
        // A chunk-size line that never ends is broken once it passes the cap.
        f.start_body(Body::new(Framing::Chunked, decoder()));
        let long = vec![b'1'; 5000];
        assert!(matches!(
            f.advance(&long, 1024, &mut skipped),
            Status::Complete(_, Event::BodyEnd { bad_chunk: true })
        ));
    }

    #[test]
    fn head_end_accepts_both_line_ends() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nx", 0), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nx", 0), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(head_end(b"\n", 5), None);
    }
}
