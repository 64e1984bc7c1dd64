//! Errors and warnings of the capture readers.

use std::fmt;
use std::io;

/// Reading one input stopped: the file could not be opened, is not a
/// capture, could not be read, or is corrupt at some point.
///
/// Everything read before the error has been delivered. `Display` gives
/// `FILE: byte OFFSET: what` (with "(decompressed)" after the offset for
/// gzip input), or `FILE: what` when no offset applies.
#[derive(Debug)]
pub struct ReadError {
    /// The input's name (its path as given, or `<stdin>`).
    pub file: String,
    /// Byte offset in the capture stream where the problem is (the start of
    /// the record or block concerned). For gzip input, an offset in the
    /// decompressed stream.
    pub offset: u64,
    /// True when `offset` counts decompressed bytes (gzip input).
    pub decompressed: bool,
    /// What went wrong.
    pub kind: ReadErrorKind,
}

/// What went wrong while reading an input.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The input could not be opened.
    Open(io::Error),
    /// The input starts with neither a pcap nor a pcapng magic number
    /// (after decompression, for gzip input). Holds up to the first four
    /// bytes; empty for an empty input.
    NotACapture {
        /// The first bytes of the input (at most four).
        first_bytes: Vec<u8>,
    },
    /// A pcap variant this reader does not handle (such as the "modified"
    /// pcap format of old Red Hat tcpdump).
    Unsupported(String),
    /// Reading (or decompressing) the input failed.
    Io(io::Error),
    /// The capture's structure is broken at `offset`: an absurd record
    /// length, a pcapng block whose lengths disagree, a packet on an
    /// interface that was never described, and so on.
    Corrupt(String),
    /// A record is larger than the reader will buffer.
    TooLarge {
        /// The record's length in bytes, headers included.
        len: u64,
        /// The largest record the reader buffers.
        limit: u64,
    },
}

impl fmt::Display for ReadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadErrorKind::Open(e) => write!(f, "cannot open: {e}"),
            ReadErrorKind::NotACapture { first_bytes } if first_bytes.is_empty() => {
                f.write_str("not a pcap or pcapng capture (empty file)")
            }
            ReadErrorKind::NotACapture { first_bytes } => {
                f.write_str("not a pcap or pcapng capture (first bytes:")?;
                for b in first_bytes {
                    write!(f, " {b:02x}")?;
                }
                f.write_str(")")
            }
            ReadErrorKind::Unsupported(what) => write!(f, "unsupported capture format: {what}"),
            ReadErrorKind::Io(e) => write!(f, "read error: {e}"),
            ReadErrorKind::Corrupt(what) => write!(f, "corrupt capture: {what}"),
            ReadErrorKind::TooLarge { len, limit } => {
                write!(f, "record of {len} bytes is larger than the reader's limit of {limit} bytes")
            }
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ReadErrorKind::Open(_) => write!(f, "{}: {}", self.file, self.kind),
            ReadErrorKind::NotACapture { .. } if self.decompressed => {
                write!(f, "{}: {} after gzip decompression", self.file, self.kind)
            }
            ReadErrorKind::NotACapture { .. } => write!(f, "{}: {}", self.file, self.kind),
            _ => write!(
                f,
                "{}: byte {}{}: {}",
                self.file,
                self.offset,
                if self.decompressed { " (decompressed)" } else { "" },
                self.kind
            ),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ReadErrorKind::Open(e) | ReadErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A problem that did not stop reading, such as a capture cut short in its
/// last record (everything before it was delivered and the input then
/// simply ends).
///
/// `Display` gives `FILE: byte OFFSET: message`, with "(decompressed)"
/// after the offset for gzip input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadWarning {
    /// The input's name.
    pub file: String,
    /// Byte offset in the capture stream (decompressed, for gzip input).
    pub offset: u64,
    /// True when `offset` counts decompressed bytes (gzip input).
    pub decompressed: bool,
    /// What happened, lowercase, without a trailing period.
    pub message: String,
}

impl fmt::Display for ReadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: byte {}{}: {}",
            self.file,
            self.offset,
            if self.decompressed { " (decompressed)" } else { "" },
            self.message
        )
    }
}
