//! Rotated pcapng files: by time or by size, named by their first
//! packet's time, written atomically, the oldest removed beyond a count.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::packet::{Linktype, Packet};
use crate::pcap::{FileStats, ReadError};
use crate::source::{CaptureLoss, PacketSource};
use crate::time::{Dur, Ts};

/// Prefix of every file the writer names (what `keep` counts).
const PREFIX: &str = "pov-";
/// Extension of complete files.
const EXT: &str = ".pcapng";
/// Extension of the file being written.
const PART: &str = ".part";

/// When a file is closed and the next one begun.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Files cover aligned spans of capture time of this length (`1h`:
    /// one file per clock hour, UTC).
    pub every: Option<Dur>,
    /// A file is closed before it would grow beyond this many bytes (a
    /// file holds at least one packet).
    pub size: Option<u64>,
    /// Complete files kept in the folder (the oldest removed first);
    /// `None` keeps them all.
    pub keep: Option<usize>,
}

/// Parses a span of time: a number and a unit (`s`, `m`, `h`, `d`).
pub fn parse_span(s: &str) -> Result<Dur, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| format!("'{s}' is not a span of time (such as 15m, 1h or 1d)"))?;
    let secs = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use s, m, h or d)")),
    };
    n.checked_mul(secs).filter(|&n| n > 0).map(Dur::from_secs).ok_or_else(|| format!("'{s}' is not a usable span"))
}

/// `ts` as `YYYYMMDDTHHMMSS.nnnnnnnnnZ` (UTC): file names sort in time
/// order.
fn stamp(ts: Ts) -> String {
    let (y, m, d, rem, nanos) = ts.civil();
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{nanos:09}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The file being written.
struct Current {
    file: BufWriter<File>,
    part: PathBuf,
    done: PathBuf,
    bytes: u64,
    packets: u64,
    /// Capture time at which the next file begins (time rotation).
    until: Option<Ts>,
    /// Capture loss counters when the file was begun.
    loss_at_start: Option<CaptureLoss>,
}

/// Writes packets into rotated pcapng files in one folder.
///
/// Each file is one pcapng section with one interface (the link type and
/// snapshot length given, nanosecond timestamps) and ends with an
/// interface statistics block carrying the capture's drop counters for
/// its span, when known. A file is written as `.pov-…pcapng.part` and
/// renamed to `pov-<first packet's time>.pcapng` once complete, so a
/// reader of the folder never sees half a file.
pub struct RotatingWriter {
    dir: PathBuf,
    linktype: Linktype,
    snaplen: u32,
    rotation: Rotation,
    current: Option<Current>,
    /// The latest capture loss counters (set by the caller).
    loss: Option<CaptureLoss>,
    done: Vec<PathBuf>,
    removed: Vec<PathBuf>,
    /// End of the latest time span closed. A packet stamped before it
    /// (the kernel hands packets on in batches, so one can arrive after
    /// the clock closed its span) goes into the next span's file, rather
    /// than into a file of its own that the clock closes at once.
    closed_to: Option<Ts>,
}

impl RotatingWriter {
    /// A writer into `dir` (created if missing) for packets of `linktype`.
    ///
    /// # Errors
    ///
    /// The folder cannot be created.
    pub fn new(dir: &Path, linktype: Linktype, snaplen: u32, rotation: Rotation) -> io::Result<RotatingWriter> {
        fs::create_dir_all(dir)?;
        Ok(RotatingWriter {
            dir: dir.to_path_buf(),
            linktype,
            snaplen,
            rotation,
            current: None,
            loss: None,
            done: Vec::new(),
            removed: Vec::new(),
            closed_to: None,
        })
    }

    /// The capture's drop counters so far (written into each file's
    /// statistics block, as the difference over its span).
    pub fn set_loss(&mut self, loss: CaptureLoss) {
        self.loss = Some(loss);
    }

    /// Writes one packet, closing the current file first when the packet
    /// falls beyond its span or would grow it beyond the size limit.
    ///
    /// # Errors
    ///
    /// Writing, renaming or removing failed.
    pub fn write(&mut self, pkt: &Packet<'_>) -> io::Result<()> {
        let len = epb_len(pkt.data.len()) as u64;
        self.span_over(pkt.ts)?;
        let full = self
            .current
            .as_ref()
            .is_some_and(|c| self.rotation.size.is_some_and(|max| c.packets > 0 && c.bytes + len + ISB_LEN > max));
        if full {
            self.close()?;
        }
        if self.current.is_none() {
            self.begin(pkt.ts)?;
        }
        if let Some(c) = &mut self.current {
            write_epb(&mut c.file, pkt)?;
            c.bytes += len;
            c.packets += 1;
        }
        Ok(())
    }

    /// Time has reached `now` without a packet (a quiet interface): the
    /// current file is closed if its span is over, rather than when the
    /// next packet comes.
    ///
    /// # Errors
    ///
    /// As [`RotatingWriter::close`].
    pub fn tick(&mut self, now: Ts) -> io::Result<()> {
        self.span_over(now)
    }

    /// Closes the current file if its time span ends at or before `now`.
    fn span_over(&mut self, now: Ts) -> io::Result<()> {
        let Some(until) = self.current.as_ref().and_then(|c| c.until).filter(|u| now >= *u) else {
            return Ok(());
        };
        self.closed_to = self.closed_to.max(Some(until));
        self.close()
    }

    /// Closes the file being written (if any): statistics block, flush,
    /// sync, rename; then removes the oldest files beyond `keep`.
    ///
    /// # Errors
    ///
    /// Writing, renaming or removing failed.
    pub fn close(&mut self) -> io::Result<()> {
        let Some(mut c) = self.current.take() else { return Ok(()) };
        if let Some(now) = self.loss {
            let start = c.loss_at_start.unwrap_or_default();
            write_isb(&mut c.file, now, start)?;
        }
        c.file.flush()?;
        let file = c.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&c.part, &c.done)?;
        self.done.push(c.done);
        self.prune()
    }

    /// Closes the current file; the complete files written, in order.
    ///
    /// # Errors
    ///
    /// As [`RotatingWriter::close`].
    pub fn finish(mut self) -> io::Result<Vec<PathBuf>> {
        self.close()?;
        Ok(std::mem::take(&mut self.done))
    }

    /// Complete files written so far (some may since have been removed).
    pub fn files(&self) -> &[PathBuf] {
        &self.done
    }

    /// Files removed to keep at most `keep`.
    pub fn removed(&self) -> &[PathBuf] {
        &self.removed
    }

    fn begin(&mut self, ts: Ts) -> io::Result<()> {
        let base = format!("{PREFIX}{}", stamp(ts));
        let mut name = format!("{base}{EXT}");
        let mut n = 1;
        while self.dir.join(&name).exists() {
            name = format!("{base}-{n}{EXT}");
            n += 1;
        }
        let done = self.dir.join(&name);
        let part = self.dir.join(format!(".{name}{PART}"));
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&part)?);
        let head = write_head(&mut file, self.linktype, self.snaplen)?;
        // A late packet's file spans the next span not yet closed.
        let from = self.closed_to.map_or(ts, |c| c.max(ts));
        let until =
            self.rotation.every.filter(|d| d.0 > 0).map(|d| Ts((from.0.div_euclid(d.0) + 1).saturating_mul(d.0)));
        self.current = Some(Current { file, part, done, bytes: head, packets: 0, until, loss_at_start: self.loss });
        Ok(())
    }

    /// Removes the oldest complete files of this writer's naming beyond
    /// `keep`.
    fn prune(&mut self) -> io::Result<()> {
        let Some(keep) = self.rotation.keep else { return Ok(()) };
        let mut ours: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(EXT))
            })
            .collect();
        // Names sort in time order.
        ours.sort();
        let extra = ours.len().saturating_sub(keep);
        for p in ours.into_iter().take(extra) {
            fs::remove_file(&p)?;
            self.removed.push(p);
        }
        Ok(())
    }
}

impl Drop for RotatingWriter {
    /// A writer dropped without [`RotatingWriter::finish`] (an error on
    /// the way) leaves no partial file behind under a final name: the
    /// temporary one is removed.
    fn drop(&mut self) {
        if let Some(c) = self.current.take() {
            drop(c.file);
            let _ = fs::remove_file(&c.part);
        }
    }
}

/// Length of an interface statistics block with three counters: type,
/// length, interface, timestamp; three 8-byte options; end of options;
/// length.
const ISB_LEN: u64 = 20 + 3 * 12 + 4 + 4;

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Length of an enhanced packet block holding `caplen` bytes.
fn epb_len(caplen: usize) -> usize {
    32 + pad4(caplen)
}

/// Section header and interface description; the bytes written.
fn write_head(w: &mut impl Write, linktype: Linktype, snaplen: u32) -> io::Result<u64> {
    // Section header block: no options.
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    // Interface description block: if_tsresol = 9 (nanoseconds).
    let idb_len = 20u32 + 8 + 4;
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&idb_len.to_le_bytes());
    b.extend_from_slice(&(u16::try_from(linktype.0).unwrap_or(u16::MAX)).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&snaplen.to_le_bytes());
    b.extend_from_slice(&9u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&[9, 0, 0, 0]);
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&idb_len.to_le_bytes());
    w.write_all(&b)?;
    Ok(b.len() as u64)
}

/// One enhanced packet block (interface 0, nanosecond time).
fn write_epb(w: &mut impl Write, pkt: &Packet<'_>) -> io::Result<()> {
    let len = u32::try_from(epb_len(pkt.data.len())).map_err(|_| io::Error::other("packet too large"))?;
    let caplen = u32::try_from(pkt.data.len()).map_err(|_| io::Error::other("packet too large"))?;
    let ts = u64::try_from(pkt.ts.0).unwrap_or(0);
    let mut h = [0u8; 28];
    let fields = [6u32, len, 0, (ts >> 32) as u32, ts as u32, caplen, pkt.orig_len.max(caplen)];
    for (chunk, v) in h.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    w.write_all(&h)?;
    w.write_all(pkt.data)?;
    w.write_all(&[0u8; 3][..pad4(pkt.data.len()) - pkt.data.len()])?;
    w.write_all(&len.to_le_bytes())
}

/// An interface statistics block: packets received and dropped over the
/// file's span (`isb_ifrecv`, `isb_ifdrop` for the interface,
/// `isb_osdrop` for the kernel's buffer).
fn write_isb(w: &mut impl Write, now: CaptureLoss, start: CaptureLoss) -> io::Result<()> {
    let len = ISB_LEN as u32;
    let mut b = Vec::with_capacity(ISB_LEN as usize);
    b.extend_from_slice(&5u32.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // Timestamp: none known here (zero).
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for (code, v) in [
        (4u16, now.received.saturating_sub(start.received)),
        (5, now.dropped_interface.saturating_sub(start.dropped_interface)),
        (7, now.dropped_kernel.saturating_sub(start.dropped_kernel)),
    ] {
        b.extend_from_slice(&code.to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&len.to_le_bytes());
    if b.len() as u64 != ISB_LEN {
        return Err(io::Error::other("statistics block of the wrong length"));
    }
    w.write_all(&b)
}

/// A source that writes every packet it hands on into a
/// [`RotatingWriter`]: one pass both records and feeds the pipeline.
///
/// A write error ends the source (it is returned once as a read error,
/// and kept for [`Recording::finish`]).
pub struct Recording<S> {
    inner: S,
    writer: Option<RotatingWriter>,
    error: Option<io::Error>,
    /// The input's name, for errors.
    name: String,
    /// Packets since the capture loss was last read.
    since_loss: u64,
}

/// A failure to write the capture, as the read error that ends the source.
fn write_error(name: &str, e: &io::Error) -> ReadError {
    ReadError {
        file: name.to_string(),
        offset: 0,
        decompressed: false,
        kind: crate::pcap::ReadErrorKind::Io(io::Error::new(e.kind(), format!("writing the capture: {e}"))),
    }
}

/// Packets between two reads of the capture loss counters (they are also
/// read whenever the source is idle, and when a file is closed at the end).
const LOSS_EVERY: u64 = 65_536;

impl<S: PacketSource> Recording<S> {
    /// Records what `inner` reads into `writer`.
    pub fn new(inner: S, writer: RotatingWriter) -> Recording<S> {
        let name = inner.files().first().map_or_else(String::new, |f| f.name.clone());
        Recording { inner, writer: Some(writer), error: None, name, since_loss: LOSS_EVERY }
    }

    /// Closes the last file: the complete files, in order, or the first
    /// error met while writing.
    ///
    /// # Errors
    ///
    /// Writing, renaming or removing a file failed.
    pub fn finish(mut self) -> io::Result<(Vec<PathBuf>, S)> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let loss = self.inner.capture_loss();
        let files = match self.writer.take() {
            Some(mut w) => {
                if let Some(l) = loss {
                    w.set_loss(l);
                }
                w.finish()?
            }
            None => Vec::new(),
        };
        Ok((files, self.inner))
    }

    /// The source recorded.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: PacketSource> PacketSource for Recording<S> {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        if self.error.is_some() {
            return Ok(None);
        }
        if self.since_loss >= LOSS_EVERY {
            // Each file's statistics block gets the losses up to here.
            self.since_loss = 0;
            self.capture_loss();
        }
        let Recording { inner, writer, error, name, since_loss } = self;
        // After a quiet moment, a file whose span is over on the clock is
        // closed now, not when the next packet comes.
        if let (Some(w), Some(now)) = (writer.as_mut(), inner.clock())
            && let Err(e) = w.tick(now)
        {
            let err = write_error(name, &e);
            *error = Some(e);
            return Err(err);
        }
        let pkt = inner.next_packet()?;
        // An idle moment (no packet) is a good time to read the counters.
        *since_loss = if pkt.is_some() { *since_loss + 1 } else { LOSS_EVERY };
        if let (Some(p), Some(w)) = (&pkt, writer.as_mut())
            && let Err(e) = w.write(p)
        {
            let err = write_error(name, &e);
            *error = Some(e);
            return Err(err);
        }
        Ok(pkt)
    }

    fn ended(&self) -> bool {
        self.error.is_some() || self.inner.ended()
    }

    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }

    fn files(&self) -> Vec<FileStats> {
        self.inner.files()
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }

    fn clock(&self) -> Option<Ts> {
        self.inner.clock()
    }

    fn capture_loss(&mut self) -> Option<CaptureLoss> {
        let loss = self.inner.capture_loss();
        if let (Some(l), Some(w)) = (loss, self.writer.as_mut()) {
            w.set_loss(l);
        }
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::{CaptureFile, PacketReader};
    use crate::units::parse_size;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pov-rotate-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn sample(name: &str) -> PathBuf {
        crate::testing::manifest_dir().join("../../samples").join(name)
    }

    /// (time, linktype, captured bytes, wire length) of every frame.
    fn frames(paths: &[PathBuf]) -> Vec<(Ts, u32, Vec<u8>, u32)> {
        let files = paths.iter().map(|p| CaptureFile::open(p).unwrap()).collect();
        let mut r = PacketReader::new(files);
        let mut out = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            out.push((p.ts, p.linktype.0, p.data.to_vec(), p.orig_len));
        }
        out
    }

    fn rewrite(src: &Path, dir: &Path, rotation: Rotation) -> Vec<PathBuf> {
        let mut r = PacketReader::new(vec![CaptureFile::open(src).unwrap()]);
        let mut w = RotatingWriter::new(dir, Linktype::ETHERNET, 65535, rotation).unwrap();
        w.set_loss(CaptureLoss { received: 7, dropped_kernel: 2, dropped_interface: 1 });
        while let Some(p) = r.next_packet().unwrap() {
            w.write(&p).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn sizes_and_spans_parse() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1.5G").is_err() && parse_size("0").is_err() && parse_size("9Q").is_err());
        assert_eq!(parse_span("1h"), Ok(Dur::from_secs(3600)));
        assert_eq!(parse_span("15m"), Ok(Dur::from_secs(900)));
        assert!(parse_span("1").is_err() && parse_span("0h").is_err() && parse_span("h").is_err());
    }

    #[test]
    fn names_are_utc_times_that_sort() {
        assert_eq!(stamp(Ts(0)), "19700101T000000.000000000Z");
        // 2024-02-29 13:45:07.5 UTC.
        assert_eq!(stamp(Ts(1_709_214_307_500_000_000)), "20240229T134507.500000000Z");
        assert_eq!(stamp(Ts(1_735_689_599_000_000_001)), "20241231T235959.000000001Z");
    }

    #[test]
    fn size_rotation_keeps_every_frame_and_the_limit() {
        let src = sample("shop.pcap");
        let all = frames(std::slice::from_ref(&src));
        let dir = tmp("size");
        let max = 20_000;
        let files = rewrite(&src, &dir, Rotation { size: Some(max), ..Rotation::default() });
        assert!(files.len() > 3, "{} files", files.len());
        for f in &files {
            let len = fs::metadata(f).unwrap().len();
            assert!(len <= max, "{} is {len} bytes", f.display());
            // Named by the first packet's time.
            let first = frames(std::slice::from_ref(f))[0].0;
            assert_eq!(f.file_name().unwrap().to_str().unwrap(), format!("pov-{}.pcapng", stamp(first)));
        }
        // Read back as one capture: the same frames, in the same order.
        assert_eq!(frames(&files), all);
        // No temporary file left.
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), files.len(), "{names:?}");
        // The statistics block is a block the reader passes over.
        let info = CaptureFile::open(&files[0]).unwrap();
        let mut r = PacketReader::new(vec![info]);
        while r.next_packet().unwrap().is_some() {}
        assert!(r.warnings().is_empty(), "{:?}", r.warnings());
        assert_eq!(r.files().next().unwrap().skipped_blocks, 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn time_rotation_cuts_at_aligned_boundaries_and_keep_removes_the_oldest() {
        let src = sample("shop.pcap");
        let all = frames(std::slice::from_ref(&src));
        let span = all.last().unwrap().0.0 - all[0].0.0;
        assert!(span > 4_000_000_000, "shop.pcap spans {span} ns");
        let dir = tmp("time");
        let every = Dur::from_secs(1);
        let files = rewrite(&src, &dir, Rotation { every: Some(every), ..Rotation::default() });
        assert!(files.len() >= 3);
        assert_eq!(frames(&files), all);
        for f in &files {
            let fr = frames(std::slice::from_ref(f));
            let slot = fr[0].0.0.div_euclid(every.0);
            assert!(fr.iter().all(|x| x.0.0.div_euclid(every.0) == slot), "{} spans two seconds", f.display());
        }
        fs::remove_dir_all(&dir).unwrap();
        let dir = tmp("keep");
        // A file not ours is left alone.
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("notes.txt"), "x").unwrap();
        let kept = rewrite(&src, &dir, Rotation { every: Some(every), keep: Some(2), ..Rotation::default() });
        assert_eq!(kept.len(), files.len());
        let mut left: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        let mut want: Vec<String> = files[files.len() - 2..]
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .chain(["notes.txt".to_string()])
            .collect();
        want.sort();
        assert_eq!(left, want);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A source of some packets of `shop.pcap`, then quiet moments at
    /// the given clock times (a live capture with nothing to read).
    struct Quiet {
        packets: Vec<(Ts, Vec<u8>, u32)>,
        next: usize,
        idle: Vec<Ts>,
        clock: Option<Ts>,
    }

    impl PacketSource for Quiet {
        fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
            if let Some((ts, data, len)) = self.packets.get(self.next) {
                self.next += 1;
                let pkt = Packet {
                    frame: self.next as u64,
                    source: 0,
                    ts: *ts,
                    linktype: Linktype::ETHERNET,
                    data,
                    orig_len: *len,
                };
                return Ok(Some(pkt));
            }
            if !self.idle.is_empty() {
                self.clock = Some(self.idle.remove(0));
            }
            Ok(None)
        }
        fn ended(&self) -> bool {
            self.next >= self.packets.len() && self.idle.is_empty()
        }
        fn bytes_read(&self) -> u64 {
            0
        }
        fn files(&self) -> Vec<FileStats> {
            Vec::new()
        }
        fn warnings(&self) -> Vec<String> {
            Vec::new()
        }
        fn clock(&self) -> Option<Ts> {
            self.clock
        }
    }

    #[test]
    fn a_quiet_source_closes_its_file_when_the_span_ends_on_the_clock() {
        let all = frames(&[sample("shop.pcap")]);
        let first = all[0].0;
        // Ten packets, all in the first second of its span.
        let every = Dur::from_secs(3600);
        let end = Ts((first.0.div_euclid(every.0) + 1) * every.0);
        let packets: Vec<(Ts, Vec<u8>, u32)> = all.iter().take(10).map(|f| (f.0, f.2.clone(), f.3)).collect();
        let dir = tmp("quiet");
        let w = RotatingWriter::new(
            &dir,
            Linktype::ETHERNET,
            65535,
            Rotation { every: Some(every), ..Rotation::default() },
        )
        .unwrap();
        // Quiet until one nanosecond before the span ends, then at its end.
        let idle = vec![Ts(end.0 - 1), end];
        let mut rec = Recording::new(Quiet { packets, next: 0, idle, clock: None }, w);
        let visible = |dir: &Path| -> Vec<String> {
            let mut v: Vec<String> =
                fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        };
        for _ in 0..10 {
            assert!(rec.next_packet().unwrap().is_some());
        }
        // The first quiet moment is still inside the span: the file stays open.
        assert!(rec.next_packet().unwrap().is_none());
        let names = visible(&dir);
        assert!(names.len() == 1 && names[0].ends_with(".part"), "{names:?}");
        // The span is over on the clock: closed and renamed at the next
        // read, with no packet.
        assert!(rec.next_packet().unwrap().is_none());
        assert!(visible(&dir)[0].ends_with(".part"));
        assert!(rec.next_packet().unwrap().is_none());
        let names = visible(&dir);
        assert_eq!(names, vec![format!("pov-{}.pcapng", stamp(first))]);
        let (files, _) = rec.finish().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(frames(&files).len(), 10);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The kernel hands packets on in batches: one stamped just before a
    /// span's end can come after the clock closed that span. It goes into
    /// the next span's file (as do others like it), not into a file of its
    /// own that the clock closes at once.
    #[test]
    fn packets_stamped_before_a_span_the_clock_closed_go_into_the_next_file() {
        let all = frames(&[sample("shop.pcap")]);
        let every = Dur::from_secs(5);
        let end = Ts((all[0].0.0.div_euclid(every.0) + 1) * every.0);
        let dir = tmp("late");
        let mut w = RotatingWriter::new(
            &dir,
            Linktype::ETHERNET,
            65535,
            Rotation { every: Some(every), ..Rotation::default() },
        )
        .unwrap();
        let write = |w: &mut RotatingWriter, i: usize, ts: Ts| {
            let (_, _, data, len) = &all[i];
            w.write(&Packet { frame: i as u64 + 1, source: 0, ts, linktype: Linktype::ETHERNET, data, orig_len: *len })
                .unwrap();
        };
        write(&mut w, 0, Ts(end.0 - 2_000_000));
        // The clock passes the span's end: its file is closed.
        w.tick(Ts(end.0 + 200_000)).unwrap();
        assert_eq!(w.files().len(), 1);
        // Two packets stamped before the end, handed on after it; the
        // clock moves on between them.
        write(&mut w, 1, Ts(end.0 - 31_000));
        w.tick(Ts(end.0 + 300_000)).unwrap();
        write(&mut w, 2, Ts(end.0 - 1_000));
        w.tick(Ts(end.0 + 400_000)).unwrap();
        assert_eq!(w.files().len(), 1, "{:?}", w.files());
        // Then the next span's packets, in the same file until it ends.
        write(&mut w, 3, Ts(end.0 + 500_000));
        w.tick(Ts(end.0 + every.0 - 1)).unwrap();
        write(&mut w, 4, Ts(end.0 + every.0));
        let files = w.finish().unwrap();
        let times = |f: &PathBuf| frames(std::slice::from_ref(f)).iter().map(|x| x.0.0 - end.0).collect::<Vec<_>>();
        assert_eq!(
            files.iter().map(times).collect::<Vec<_>>(),
            vec![vec![-2_000_000], vec![-31_000, -1_000, 500_000], vec![every.0]]
        );
        // Named by their first packet's time, so they still sort in order.
        assert_eq!(
            files[1].file_name().unwrap().to_str().unwrap(),
            format!("pov-{}.pcapng", stamp(Ts(end.0 - 31_000)))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_writer_dropped_midway_leaves_no_partial_file() {
        let dir = tmp("drop");
        let mut r = PacketReader::new(vec![CaptureFile::open(&sample("shop.pcap")).unwrap()]);
        let mut w = RotatingWriter::new(&dir, Linktype::ETHERNET, 65535, Rotation::default()).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        w.write(&p).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        drop(w);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
