//! Live capture and BPF filters through libpcap (the `live` feature).
//!
//! * [`LiveCapture`] opens an interface (snapshot length, buffer size, an
//!   optional BPF filter applied in the kernel) and is a
//!   [`PacketSource`]: the pipeline reads it as it reads files. libpcap's
//!   drop counters come back as [`CaptureLoss`], never as failures of the
//!   application.
//! * [`BpfFilter`] compiles a BPF expression with libpcap and applies it to
//!   packets read from files ([`PacketFilter`]), as `tcpdump -r FILE EXPR`
//!   does; the fast pure-Rust reader stays.
//! * [`RotatingWriter`] writes packets into pcapng files rotated by time or
//!   size, each named by its first packet's time, written under a
//!   temporary name and renamed when complete, the oldest removed beyond
//!   `keep`; [`Recording`] is a source that writes every packet it hands
//!   on.
//!
//! libpcap needs `libpcap-dev` at build time and, to capture, root or the
//! `CAP_NET_RAW` and `CAP_NET_ADMIN` capabilities (docs/live.md).

mod filter;
mod rotate;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pcap::{Active, Capture, Precision};

use crate::packet::{Linktype, Packet};
use crate::pcap::{FileStats, Format, ReadError, ReadErrorKind};
use crate::source::{CaptureLoss, PacketSource};
use crate::time::Ts;

pub use crate::units::parse_size;
pub use filter::{BpfFilter, FilterError};
pub use rotate::{Recording, RotatingWriter, Rotation, parse_span};

/// How to open an interface.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// The interface (as `ip link` names it).
    pub interface: String,
    /// Bytes kept of each frame (0: libpcap's default, 262,144).
    pub snaplen: u32,
    /// The kernel's capture buffer, in bytes: what absorbs a burst while
    /// pov is busy. Too small and the kernel drops packets
    /// ([`CaptureLoss::dropped_kernel`]).
    pub buffer_bytes: usize,
    /// A BPF expression the kernel applies before pov sees a packet.
    pub filter: Option<String>,
    /// Put the interface in promiscuous mode (a SPAN port needs it).
    pub promiscuous: bool,
    /// How long a read that finds no packet waits before the pipeline is
    /// given what it has (milliseconds): what a quiet interface costs is
    /// one look at the buffer per wait.
    pub timeout_ms: u32,
}

impl LiveConfig {
    /// Defaults for `interface`: full frames, a 64 MiB buffer,
    /// promiscuous, no filter, reads that wait at most 200 ms.
    pub fn new(interface: &str) -> LiveConfig {
        LiveConfig {
            interface: interface.to_string(),
            snaplen: 0,
            buffer_bytes: 64 << 20,
            filter: None,
            promiscuous: true,
            timeout_ms: 200,
        }
    }
}

/// Why an interface could not be opened.
#[derive(Debug)]
pub enum LiveError {
    /// No interface of that name.
    NoSuchInterface(String, String),
    /// Capturing needs root or CAP_NET_RAW (and CAP_NET_ADMIN for the
    /// buffer size and promiscuous mode).
    Permission(String, String),
    /// The BPF filter does not compile.
    Filter(FilterError),
    /// Anything else libpcap refused (its message).
    Other(String, String),
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::NoSuchInterface(i, m) => write!(f, "cannot capture on {i}: no such interface ({m})"),
            LiveError::Permission(i, m) => write!(
                f,
                "cannot capture on {i}: permission denied; run as root or give the binary CAP_NET_RAW and \
                 CAP_NET_ADMIN (setcap cap_net_raw,cap_net_admin=eip; docs/live.md) ({m})"
            ),
            LiveError::Filter(e) => write!(f, "{e}"),
            LiveError::Other(i, m) => write!(f, "cannot capture on {i}: {m}"),
        }
    }
}

impl std::error::Error for LiveError {}

impl LiveError {
    /// Sorts libpcap's message for `interface` into a kind.
    fn from_pcap(interface: &str, e: &pcap::Error) -> LiveError {
        let msg = e.to_string();
        let lower = msg.to_ascii_lowercase();
        let i = interface.to_string();
        if lower.contains("permission") || lower.contains("not permitted") {
            LiveError::Permission(i, msg)
        } else if lower.contains("no such device") || lower.contains("doesn't exist") {
            LiveError::NoSuchInterface(i, msg)
        } else {
            LiveError::Other(i, msg)
        }
    }
}

/// A live capture on one interface, read as a [`PacketSource`].
///
/// Frames are numbered from 1 in the order they arrive. Reading waits at
/// most [`LiveConfig::timeout_ms`] for a packet, then returns `None` so the
/// pipeline can work on what it has; the source has [`ended`] once the
/// shared stop flag is set (or the interface failed).
///
/// [`ended`]: PacketSource::ended
pub struct LiveCapture {
    cap: Capture<Active>,
    linktype: Linktype,
    name: String,
    stop: Arc<AtomicUsize>,
    ended: bool,
    frame: u64,
    stats: FileStats,
    /// The counters at the last read of them (they only grow).
    loss: CaptureLoss,
    /// When a read last found nothing to read (see
    /// [`PacketSource::clock`]).
    idle_at: Option<Ts>,
    /// How long a read that found nothing waits before it says so.
    idle_wait: std::time::Duration,
}

impl fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveCapture").field("name", &self.name).field("frame", &self.frame).finish()
    }
}

impl LiveCapture {
    /// Opens `cfg.interface`. The capture ends once `stop` holds anything
    /// but 0 (pov's [`Stop`] flag, set by a signal handler).
    ///
    /// [`Stop`]: https://docs.rs/pov
    ///
    /// # Errors
    ///
    /// No such interface, no permission, a filter that does not compile,
    /// or anything else libpcap refuses.
    pub fn open(cfg: &LiveConfig, stop: Arc<AtomicUsize>) -> Result<LiveCapture, LiveError> {
        let iface = cfg.interface.as_str();
        let err = |e: pcap::Error| LiveError::from_pcap(iface, &e);
        let mut inactive = Capture::from_device(iface)
            .map_err(err)?
            .promisc(cfg.promiscuous)
            .timeout(i32::try_from(cfg.timeout_ms.max(1)).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(cfg.buffer_bytes).unwrap_or(i32::MAX))
            .precision(Precision::Nano);
        if cfg.snaplen > 0 {
            inactive = inactive.snaplen(i32::try_from(cfg.snaplen).unwrap_or(i32::MAX));
        }
        // Non-blocking: libpcap's timeout (TPACKET_V3's block timeout)
        // only fires once a packet came, so a blocking read on a quiet
        // interface would wait for the next packet, and time (rotation,
        // intervals) would stand still. A read that finds nothing waits
        // `timeout_ms` itself.
        let mut cap = inactive.open().map_err(err)?.setnonblock().map_err(err)?;
        if let Some(expr) = &cfg.filter {
            cap.filter(expr, true)
                .map_err(|e| LiveError::Filter(FilterError { expr: expr.clone(), message: e.to_string() }))?;
        }
        let linktype = Linktype(u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX));
        let name = format!("live:{iface}");
        let mut stats = FileStats::new(name.clone(), Format::Pcapng, false);
        stats.interfaces = 1;
        stats.sections = 1;
        stats.snaplen = Some(if cfg.snaplen == 0 { 262_144 } else { cfg.snaplen });
        Ok(LiveCapture {
            cap,
            linktype,
            name,
            stop,
            ended: false,
            frame: 0,
            stats,
            loss: CaptureLoss::default(),
            idle_at: None,
            idle_wait: std::time::Duration::from_millis(u64::from(cfg.timeout_ms.max(1))),
        })
    }

    /// The interface's link type.
    pub fn linktype(&self) -> Linktype {
        self.linktype
    }

    /// The snapshot length frames are cut at.
    pub fn snaplen(&self) -> u32 {
        self.stats.snaplen.unwrap_or(262_144)
    }

    /// libpcap's counters now (the last ones read, if libpcap cannot give
    /// them any more).
    pub fn loss(&mut self) -> CaptureLoss {
        if let Ok(s) = self.cap.stats() {
            // libpcap's counters are 32 bits and may wrap: keep the
            // running totals in 64 bits.
            let grow = |old: u64, new: u32| {
                let low = old as u32;
                old + u64::from(new.wrapping_sub(low))
            };
            self.loss = CaptureLoss {
                received: grow(self.loss.received, s.received),
                dropped_kernel: grow(self.loss.dropped_kernel, s.dropped),
                dropped_interface: grow(self.loss.dropped_interface, s.if_dropped),
            };
        }
        self.loss
    }
}

impl PacketSource for LiveCapture {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        if self.ended {
            return Ok(None);
        }
        if self.stop.load(Ordering::Relaxed) != 0 {
            self.ended = true;
            return Ok(None);
        }
        match self.cap.next_packet() {
            Ok(p) => {
                let h = *p.header;
                // Nanosecond precision: `tv_usec` holds nanoseconds.
                // (`time_t` and `suseconds_t` are 32 bits on some targets.)
                #[allow(clippy::useless_conversion)]
                let ts = Ts::from_secs_nanos(i64::from(h.ts.tv_sec), i64::from(h.ts.tv_usec));
                self.frame += 1;
                self.stats.count_packet(ts, self.linktype.0, h.caplen, h.len);
                self.stats.bytes += u64::from(h.caplen) + 16;
                Ok(Some(Packet {
                    frame: self.frame,
                    source: 0,
                    ts,
                    linktype: self.linktype,
                    data: p.data,
                    orig_len: h.len,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing in the buffer: every packet up to now was read.
                // Wait a moment for more (the buffer holds what comes).
                self.idle_at = Some(wall_clock());
                std::thread::sleep(self.idle_wait);
                Ok(None)
            }
            Err(e) => {
                // The interface went away or failed: the capture ends here.
                // (Fields, not methods: `p` above borrows `self.cap`.)
                self.ended = true;
                let e = ReadError {
                    file: self.name.clone(),
                    offset: self.stats.bytes,
                    decompressed: false,
                    kind: ReadErrorKind::Io(io::Error::other(e.to_string())),
                };
                self.stats.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn bytes_read(&self) -> u64 {
        self.stats.bytes
    }

    fn files(&self) -> Vec<FileStats> {
        vec![self.stats.clone()]
    }

    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    fn capture_loss(&mut self) -> Option<CaptureLoss> {
        Some(self.loss())
    }

    fn clock(&self) -> Option<Ts> {
        self.idle_at
    }
}

/// The system's clock now, as a capture time (the kernel stamps captured
/// packets with the same clock). Only a live capture reads it: a file's
/// time is its packets'.
pub fn wall_clock() -> Ts {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ts::from_secs_nanos(i64::try_from(now.as_secs()).unwrap_or(i64::MAX), i64::from(now.subsec_nanos()))
}
