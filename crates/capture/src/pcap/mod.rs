//! Reading capture files: pcap and pcapng, plain or gzip, one or several.
//!
//! # Brief overview
//!
//! * [`CaptureFile`] is one input (a file, stdin, or any [`std::io::Read`]).
//!   It detects the format from the first bytes (pcap in either byte order
//!   with micro- or nanosecond timestamps, or pcapng; gzip-compressed input
//!   is recognised by its magic and decompressed on the fly) and yields one
//!   [`Packet`](crate::packet::Packet) per frame, borrowed from its read
//!   buffer.
//! * [`PacketReader`] merges several inputs by timestamp the way `mergecap`
//!   does and numbers the merged frames from 1.
//! * [`FileStats`] describes what was read from one input; problems that do
//!   not stop reading (a capture cut short at its end, a gzip stream that
//!   ends early) are [`ReadWarning`]s, problems that do are [`ReadError`]s.
//!   Both name the file and the byte offset in the (decompressed) capture
//!   stream.
//!
//! Parsing of the file header and of the pcapng blocks is done by
//! `pcap-parser`; this module frames records itself (so that a record cut
//! short at the end of the input is told apart from a corrupt one, and the
//! exact offsets are known) and owns the read buffer: a window over the
//! input that starts at 1 MiB and grows, only while it is full of one
//! record, up to a fixed limit. Memory use therefore depends on the largest
//! record, never on the file size. [`PacketReader::next_shared`] also hands
//! out the buffer a frame lies in, as a [`Block`](crate::Block): the pipeline
//! holds it instead of copying the frame, and the reader reads on into
//! another buffer (one given back, or a new one) while it is held.
//!
//! # Example
//!
//! ```no_run
//! use pov_capture::pcap::{CaptureFile, PacketReader};
//!
//! # fn main() -> Result<(), pov_capture::pcap::ReadError> {
//! let files = vec![
//!     CaptureFile::open("a.pcap".as_ref())?,
//!     CaptureFile::open("b.pcapng.gz".as_ref())?,
//! ];
//! let mut reader = PacketReader::new(files);
//! loop {
//!     match reader.next_packet() {
//!         Ok(Some(pkt)) => { let _ = (pkt.frame, pkt.ts, pkt.data.len()); }
//!         Ok(None) => break,
//!         // One input stopped early; the others go on.
//!         Err(e) => eprintln!("{e}"),
//!     }
//! }
//! for w in reader.warnings() {
//!     eprintln!("warning: {w}");
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod file;
mod merge;
mod source;
mod stats;

#[cfg(test)]
mod tests;

pub use error::{ReadError, ReadErrorKind, ReadWarning};
pub use file::CaptureFile;
pub use merge::PacketReader;
pub use stats::{FileStats, Format};
