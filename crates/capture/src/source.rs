//! Where packets come from: a [`PacketSource`] is what the pipeline reads.
//!
//! Capture files ([`crate::pcap::PacketReader`], the pure-Rust reader) are
//! one source; with the `live` feature, an interface opened through
//! libpcap is another (`pov_capture::live::LiveCapture`). A
//! [`PacketFilter`] decides which packets a run looks at (a BPF expression,
//! with the `live` feature), as `tcpdump -r FILE EXPR` does.

use std::fmt;

use crate::packet::{Block, Packet};
use crate::pcap::{FileStats, PacketReader, ReadError};

/// A stream of packets the pipeline reads, one at a time.
///
/// `Ok(None)` ends the current batch; the input is over only when
/// [`PacketSource::ended`] says so (a file reader always does; a live
/// capture returns `None` when nothing arrived for a moment, so that what
/// was read so far is worked on without waiting for more).
pub trait PacketSource: Send {
    /// The next packet, or `None` (see the trait's description).
    ///
    /// # Errors
    ///
    /// One input stopped early (it is counted; calling again goes on with
    /// the others).
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError>;
    /// As [`PacketSource::next_packet`], with the [`Block`] the packet's
    /// bytes lie in when the source can share its buffer (a capture file):
    /// whoever holds the block keeps them, where they would otherwise be
    /// copied before the next call. The default shares nothing.
    ///
    /// # Errors
    ///
    /// As for [`PacketSource::next_packet`].
    fn next_shared(&mut self) -> Result<Option<(Packet<'_>, Option<&Block>)>, ReadError> {
        Ok(self.next_packet()?.map(|p| (p, None)))
    }
    /// After a `None`: nothing more will come.
    fn ended(&self) -> bool {
        true
    }
    /// Raw bytes read so far (for progress).
    fn bytes_read(&self) -> u64;
    /// What was read from each input.
    fn files(&self) -> Vec<FileStats>;
    /// Problems that did not stop reading, as text.
    fn warnings(&self) -> Vec<String>;
    /// Packets the capture lost before pov saw them (a live capture's
    /// kernel and interface drop counters); `None` for files, which do
    /// not say.
    fn capture_loss(&mut self) -> Option<CaptureLoss> {
        None
    }
    /// A time no packet still to come can precede: a live capture that
    /// found nothing to read (its buffer is empty) gives the clock's time
    /// at that moment, so that the pipeline's time moves on while the
    /// interface is quiet (idle connections close, what was parsed is
    /// handed on, a time interval ends). `None` for files, whose time is
    /// their packets'.
    fn clock(&self) -> Option<crate::time::Ts> {
        None
    }
}

impl PacketSource for PacketReader {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        PacketReader::next_packet(self)
    }
    fn next_shared(&mut self) -> Result<Option<(Packet<'_>, Option<&Block>)>, ReadError> {
        PacketReader::next_shared(self)
    }
    fn bytes_read(&self) -> u64 {
        PacketReader::bytes_read(self)
    }
    fn files(&self) -> Vec<FileStats> {
        PacketReader::files(self).cloned().collect()
    }
    fn warnings(&self) -> Vec<String> {
        PacketReader::warnings(self).iter().map(|w| w.to_string()).collect()
    }
}

/// What a live capture lost before pov read it: libpcap's counters
/// (`pcap_stats`). These are capture loss, never failures of the
/// application: the packets were sent, the capture did not keep them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureLoss {
    /// Packets the kernel handed to the capture (`ps_recv`; on Linux,
    /// those it passed the filter, dropped ones included).
    pub received: u64,
    /// Packets dropped because the capture buffer was full (`ps_drop`:
    /// pov did not read fast enough, or `--buffer-mb` is too small).
    pub dropped_kernel: u64,
    /// Packets the interface or its driver dropped (`ps_ifdrop`).
    pub dropped_interface: u64,
}

impl CaptureLoss {
    /// Every packet lost.
    pub fn dropped(&self) -> u64 {
        self.dropped_kernel + self.dropped_interface
    }
}

impl fmt::Display for CaptureLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} packets received by the capture, {} dropped by the kernel (buffer full), {} dropped by the interface",
            self.received, self.dropped_kernel, self.dropped_interface
        )
    }
}

/// Decides which packets a run reads (the others are skipped before
/// decoding, as if the capture did not hold them).
pub trait PacketFilter: Send + Sync + fmt::Debug {
    /// True when `pkt` is to be read.
    fn matches(&self, pkt: &Packet<'_>) -> bool;
}
