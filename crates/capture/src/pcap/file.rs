//! One capture input: format detection, record framing, timestamps.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use pcap_parser::nom::Offset;
use pcap_parser::parse_pcap_header;
use pcap_parser::pcapng::{
    BOM_MAGIC, EPB_MAGIC, IDB_MAGIC, OptionCode, SHB_MAGIC, SPB_MAGIC, parse_enhancedpacketblock_be,
    parse_enhancedpacketblock_le, parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le,
    parse_sectionheaderblock, parse_simplepacketblock_be, parse_simplepacketblock_le,
};
use pcap_parser::traits::PcapNGPacketBlock;

use super::error::{ReadError, ReadErrorKind, ReadWarning};
use super::source::Source;
use super::stats::{FileStats, Format};
use crate::packet::{Linktype, Packet};
use crate::time::Ts;

/// pcap record header: seconds, fraction, captured length, original length.
const PCAP_RECORD_HEADER: usize = 16;
/// pcap file header.
const PCAP_FILE_HEADER: usize = 24;
/// Largest captured length accepted in a pcap record whose file header
/// declares a smaller snapshot length (libpcap's and Wireshark's usual
/// maximum, 256 KiB). Anything larger is taken as corruption.
const PCAP_MAX_CAPLEN: u32 = 262_144;
/// pcapng Decryption Secrets Block.
const DSB_TYPE: u32 = 0x0000_000A;

/// Smallest pcapng block: type, length, trailing length.
const NG_MIN_BLOCK: usize = 12;
/// Smallest section header block.
const NG_MIN_SHB: usize = 28;
/// The obsolete pcapng Packet Block (superseded by the EPB; pcap-parser
/// hands it over as an unknown block, so it is decoded here).
const NG_PB_MAGIC: u32 = 2;
/// Name used for standard input.
const STDIN_NAME: &str = "<stdin>";

/// Converts raw pcapng timestamp units of one interface to nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsScale {
    /// 10^-n with n <= 9: multiply by 10^(9-n).
    Mul(u64),
    /// 2^-n: multiply by 10^9, shift right by n.
    Shift(u32),
    /// 10^-n with 9 < n <= 38: multiply by 10^9, divide by 10^n.
    Div(u128),
    /// 10^-n with n > 38: every 64-bit count is below one nanosecond.
    Zero,
}

impl TsScale {
    /// From the `if_tsresol` option value (default 6, microseconds).
    fn from_tsresol(r: u8) -> TsScale {
        let n = u32::from(r & 0x7f);
        if r & 0x80 != 0 {
            TsScale::Shift(n)
        } else if n <= 9 {
            TsScale::Mul(10u64.pow(9 - n))
        } else {
            match 10u128.checked_pow(n) {
                Some(d) => TsScale::Div(d),
                None => TsScale::Zero,
            }
        }
    }

    /// Nanoseconds in `units` (rounded down). Exact integer arithmetic:
    /// `units * 10^9` is below 2^94, so nothing overflows.
    #[inline]
    fn to_ns(self, units: u64) -> i128 {
        const NS: u128 = 1_000_000_000;
        match self {
            TsScale::Mul(m) => i128::from(units) * i128::from(m),
            TsScale::Shift(s) => clamp_u128((u128::from(units) * NS) >> s),
            TsScale::Div(d) => clamp_u128(u128::from(units) * NS / d),
            TsScale::Zero => 0,
        }
    }
}

fn clamp_u128(v: u128) -> i128 {
    i128::try_from(v).unwrap_or(i128::MAX)
}

fn clamp_ts(ns: i128) -> Ts {
    Ts(i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX }))
}

/// A pcapng interface of the current section.
#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: Linktype,
    snaplen: u32,
    scale: TsScale,
    /// `if_tsoffset`, in nanoseconds.
    offset_ns: i128,
}

/// How records are framed.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Pcap {
        big: bool,
        nano: bool,
        linktype: Linktype,
        /// Largest acceptable captured length.
        max_caplen: u32,
    },
    Pcapng,
}

/// A frame read from a file, waiting to be handed out. Its bytes are
/// `buffer[pos..pos + len]` of the file's [`Source`] and stay valid until
/// the file is advanced again.
#[derive(Clone, Copy, Debug)]
pub(super) struct Head {
    pub(super) ts: Ts,
    pub(super) linktype: Linktype,
    pub(super) orig_len: u32,
    pos: usize,
    len: usize,
}

/// One capture input: a pcap or pcapng file, plain or gzip-compressed,
/// read as a stream with a bounded buffer.
///
/// Use [`CaptureFile::next_packet`] to read it alone, or hand several to a
/// [`PacketReader`](super::PacketReader) to merge them by time.
pub struct CaptureFile {
    src: Source,
    stats: FileStats,
    warnings: Vec<ReadWarning>,
    kind: Kind,
    /// Byte order of the current pcapng section.
    ng_big: bool,
    /// Interfaces of the current pcapng section.
    ifaces: Vec<Iface>,
    done: bool,
    size_hint: Option<u64>,
    /// Bodies of the Decryption Secrets Blocks before the first packet,
    /// with their section's byte order.
    secrets: Vec<(Vec<u8>, bool)>,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("name", &self.stats.name)
            .field("format", &self.stats.format)
            .field("offset", &self.src.offset())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl CaptureFile {
    /// Opens the capture at `path`; `-` reads standard input (named
    /// `<stdin>` in messages).
    ///
    /// The format is detected from the first bytes, not from the name:
    /// pcap (either byte order, micro- or nanosecond timestamps), pcapng,
    /// and either of them gzip-compressed.
    ///
    /// # Errors
    ///
    /// [`ReadErrorKind::Open`] if the file cannot be opened,
    /// [`ReadErrorKind::NotACapture`] if it is not a capture (an empty file
    /// included), and the other kinds if its first bytes cannot be read or
    /// its file header is broken.
    pub fn open(path: &Path) -> Result<CaptureFile, ReadError> {
        if path.as_os_str() == "-" {
            return CaptureFile::from_read(STDIN_NAME, io::stdin());
        }
        let name = path.display().to_string();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                return Err(ReadError { file: name, offset: 0, decompressed: false, kind: ReadErrorKind::Open(e) });
            }
        };
        let size = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        let mut cf = CaptureFile::from_read(name, file)?;
        cf.size_hint = size;
        Ok(cf)
    }

    /// Reads a capture from any byte stream; `name` is used in stats and
    /// messages.
    ///
    /// # Errors
    ///
    /// As for [`CaptureFile::open`], minus the open failure.
    pub fn from_read(name: impl Into<String>, reader: impl Read + Send + 'static) -> Result<CaptureFile, ReadError> {
        CaptureFile::start(name.into(), Source::new(reader))
    }

    /// As [`CaptureFile::from_read`], with a small buffer and limit.
    #[cfg(test)]
    pub(super) fn from_read_limits(
        name: &str,
        reader: impl Read + Send + 'static,
        initial: usize,
        max: usize,
    ) -> Result<CaptureFile, ReadError> {
        CaptureFile::start(name.to_owned(), Source::with_limits(reader, initial, max))
    }

    /// Detects the format and reads the file header.
    fn start(name: String, src: io::Result<Source>) -> Result<CaptureFile, ReadError> {
        let mut src = match src {
            Ok(src) => src,
            Err(e) => {
                return Err(ReadError { file: name, offset: 0, decompressed: false, kind: ReadErrorKind::Io(e) });
            }
        };
        let gzip = src.gzip();
        let err = |offset: u64, kind: ReadErrorKind| ReadError { file: name.clone(), offset, decompressed: gzip, kind };
        let not_a_capture = |data: &[u8]| err(0, ReadErrorKind::NotACapture { first_bytes: first4(data) });

        src.fill(4).map_err(|e| err(0, ReadErrorKind::Io(e)))?;
        let magic = match src.data().get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            Some(m) => u32::from_le_bytes(m),
            None => return Err(not_a_capture(src.data())),
        };
        let (kind, stats) = match magic {
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 => {
                let full = src.fill(PCAP_FILE_HEADER).map_err(|e| err(0, ReadErrorKind::Io(e)))?;
                let header = src.data().get(..PCAP_FILE_HEADER).unwrap_or_default();
                let parsed = if full { parse_pcap_header(header).ok() } else { None };
                let Some((_, h)) = parsed else {
                    return Err(err(
                        0,
                        ReadErrorKind::Corrupt(format!(
                            "pcap file header cut short ({} of {PCAP_FILE_HEADER} bytes)",
                            src.available()
                        )),
                    ));
                };
                // The link type is in the low 16 bits; the upper ones may
                // carry FCS information (LT_FCS_LENGTH).
                let linktype = Linktype((h.network.0 as u32) & 0xffff);
                let kind = Kind::Pcap {
                    big: h.is_bigendian(),
                    nano: h.is_nanosecond_precision(),
                    linktype,
                    max_caplen: h.snaplen.max(PCAP_MAX_CAPLEN),
                };
                let mut stats = FileStats::new(
                    name.clone(),
                    Format::Pcap { big_endian: h.is_bigendian(), nanosecond: h.is_nanosecond_precision() },
                    gzip,
                );
                stats.snaplen = Some(h.snaplen);
                stats.sections = 1;
                stats.interfaces = 1;
                src.consume(PCAP_FILE_HEADER);
                stats.bytes = src.offset();
                (kind, stats)
            }
            0xa1b2_cd34 | 0x34cd_b2a1 => {
                return Err(err(
                    0,
                    ReadErrorKind::Unsupported("modified pcap (magic a1b2cd34, old Red Hat tcpdump)".into()),
                ));
            }
            SHB_MAGIC => {
                src.fill(NG_MIN_BLOCK).map_err(|e| err(0, ReadErrorKind::Io(e)))?;
                let bom = src.data().get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes);
                if bom != Some(BOM_MAGIC) && bom != Some(BOM_MAGIC.swap_bytes()) {
                    return Err(not_a_capture(src.data()));
                }
                // The section header is read as the first block.
                (Kind::Pcapng, FileStats::new(name.clone(), Format::Pcapng, gzip))
            }
            _ => return Err(not_a_capture(src.data())),
        };
        Ok(CaptureFile {
            src,
            stats,
            warnings: Vec::new(),
            kind,
            ng_big: false,
            ifaces: Vec::new(),
            done: false,
            size_hint: None,
            secrets: Vec::new(),
        })
    }

    /// The bodies of the pcapng Decryption Secrets Blocks that come
    /// before the first packet of the file at `path` (block contents
    /// between the length fields, with the section's byte order: what
    /// `pov_tls::KeyStore::load_dsb_body` reads), reading no further than
    /// that packet. Tools that write them (`editcap --inject-secrets`)
    /// put them there; a block after the first packet is counted in
    /// [`FileStats::decryption_secrets`] and not used.
    ///
    /// # Errors
    ///
    /// As for [`CaptureFile::open`], and a broken block before the first
    /// packet.
    pub fn leading_secrets(path: &Path) -> Result<Vec<(Vec<u8>, bool)>, ReadError> {
        let mut f = CaptureFile::open(path)?;
        if matches!(f.kind, Kind::Pcapng) {
            f.next_packet()?;
        }
        Ok(std::mem::take(&mut f.secrets))
    }

    /// Reads the next frame. Its `frame` is its number in this file (from
    /// 1) and its `source` is 0.
    ///
    /// Returns `Ok(None)` at the end of the capture (also after a truncated
    /// last record, which is recorded as a [`ReadWarning`], and after an
    /// error).
    ///
    /// # Errors
    ///
    /// A [`ReadError`] naming the offset of the broken record; reading this
    /// input is then over (it is also noted in [`FileStats::error`]).
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        let Some(head) = self.advance()? else {
            return Ok(None);
        };
        Ok(Some(self.packet(&head, self.stats.packets, 0)))
    }

    /// The input's name.
    pub fn name(&self) -> &str {
        &self.stats.name
    }

    /// What has been read so far.
    pub fn stats(&self) -> &FileStats {
        &self.stats
    }

    /// Problems that did not stop reading.
    pub fn warnings(&self) -> &[ReadWarning] {
        &self.warnings
    }

    /// Raw bytes read from the underlying input (compressed bytes for gzip
    /// input), for progress reporting.
    pub fn bytes_read(&self) -> u64 {
        self.src.raw_bytes()
    }

    /// The input's size in raw bytes if known (a regular file opened with
    /// [`CaptureFile::open`]), for progress reporting.
    pub fn size_hint(&self) -> Option<u64> {
        self.size_hint
    }

    /// The buffer the packets read lately lie in, to be shared.
    #[inline]
    pub(super) fn block(&self) -> &crate::packet::Block {
        self.src.block()
    }

    /// Builds the packet for `head`, which must come from the latest
    /// [`CaptureFile::advance`].
    #[inline]
    pub(super) fn packet(&self, head: &Head, frame: u64, source: u16) -> Packet<'_> {
        Packet {
            frame,
            source,
            ts: head.ts,
            linktype: head.linktype,
            data: self.src.buffer().get(head.pos..head.pos + head.len).unwrap_or_default(),
            orig_len: head.orig_len,
        }
    }

    /// Reads the next frame and counts it; the previous frame's bytes are
    /// released.
    pub(super) fn advance(&mut self) -> Result<Option<Head>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let res = match self.kind {
            Kind::Pcap { big, nano, linktype, max_caplen } => self.next_pcap(big, nano, linktype, max_caplen),
            Kind::Pcapng => self.next_pcapng(),
        };
        match res {
            Ok(Some(head)) => {
                self.stats.bytes = self.src.offset();
                Ok(Some(head))
            }
            Ok(None) => {
                self.finish();
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                self.stats.bytes = self.src.offset();
                self.stats.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The input ended: note a gzip stream that was cut short.
    fn finish(&mut self) {
        self.done = true;
        self.stats.bytes = self.src.offset();
        if self.src.gzip_cut() {
            self.warn(self.src.offset(), "gzip stream ends early: the compressed data is cut short".into());
        }
    }

    fn warn(&mut self, offset: u64, message: String) {
        self.warnings.push(ReadWarning {
            file: self.stats.name.clone(),
            offset,
            decompressed: self.stats.gzip,
            message,
        });
    }

    fn error(&self, offset: u64, kind: ReadErrorKind) -> ReadError {
        ReadError { file: self.stats.name.clone(), offset, decompressed: self.stats.gzip, kind }
    }

    fn corrupt(&self, offset: u64, what: String) -> ReadError {
        self.error(offset, ReadErrorKind::Corrupt(what))
    }

    /// `fill` with the error mapped to the record at `offset`.
    #[inline]
    fn fill(&mut self, need: usize, offset: u64) -> Result<bool, ReadError> {
        match self.src.fill(need) {
            Ok(full) => Ok(full),
            Err(e) => Err(self.error(offset, ReadErrorKind::Io(e))),
        }
    }

    /// Checks a record length against the buffer limit.
    #[inline]
    fn check_size(&self, len: usize, offset: u64) -> Result<(), ReadError> {
        if len > self.src.max() {
            return Err(self.error(offset, ReadErrorKind::TooLarge { len: len as u64, limit: self.src.max() as u64 }));
        }
        Ok(())
    }

    /// The input ended inside a record of `need` bytes (`known`: the length
    /// is the record's real length, else only a lower bound). Whatever is
    /// left becomes a warning; nothing is returned.
    fn cut_short(&mut self, need: usize, known: bool) -> Result<Option<Head>, ReadError> {
        let have = self.src.available();
        if have > 0 {
            let missing = need.saturating_sub(have);
            let message = if known {
                format!(
                    "capture cut short: the last record lacks {missing} bytes \
                     ({have} of {need} present)"
                )
            } else {
                format!(
                    "capture cut short: the last record lacks at least {missing} bytes \
                     (its header is incomplete)"
                )
            };
            self.warn(self.src.offset(), message);
            self.src.consume(have);
        }
        Ok(None)
    }

    /// The next pcap record.
    #[inline]
    fn next_pcap(
        &mut self,
        big: bool,
        nano: bool,
        linktype: Linktype,
        max_caplen: u32,
    ) -> Result<Option<Head>, ReadError> {
        let at = self.src.offset();
        if !self.fill(PCAP_RECORD_HEADER, at)? {
            return self.cut_short(PCAP_RECORD_HEADER, false);
        }
        let caplen = read_u32(self.src.data(), 8, big);
        if caplen > max_caplen {
            return Err(self.corrupt(
                at,
                format!(
                    "record claims {caplen} captured bytes, more than the snapshot length \
                     allows ({max_caplen})"
                ),
            ));
        }
        let total = PCAP_RECORD_HEADER + caplen as usize;
        self.check_size(total, at)?;
        if !self.fill(total, at)? {
            return self.cut_short(total, true);
        }
        // The record header's other fields, read as its captured length
        // was (pcap-parser's frame parser read all four again, and the
        // data it would slice is the `caplen` bytes just made present:
        // 50 instructions a packet).
        let header = self.src.data();
        let (ts_sec, ts_frac, orig_len) =
            (read_u32(header, 0, big), read_u32(header, 4, big), read_u32(header, 12, big));
        let frac_ns = if nano { i64::from(ts_frac) } else { i64::from(ts_frac) * 1000 };
        let ts = Ts(i64::from(ts_sec) * 1_000_000_000 + frac_ns);
        let head = Head { ts, linktype, orig_len, pos: self.src.position() + PCAP_RECORD_HEADER, len: caplen as usize };
        self.stats.count_packet(ts, linktype.0, caplen, orig_len);
        self.src.consume(total);
        Ok(Some(head))
    }

    /// The next packet of a pcapng file; other blocks on the way are
    /// applied (section and interface descriptions) or skipped.
    fn next_pcapng(&mut self) -> Result<Option<Head>, ReadError> {
        loop {
            let at = self.src.offset();
            if !self.fill(8, at)? {
                return self.cut_short(NG_MIN_BLOCK, false);
            }
            let mut big = self.ng_big;
            // The SHB type reads the same in both byte orders; its
            // byte-order magic decides how the length (and the rest of the
            // section) is read.
            let btype = read_u32(self.src.data(), 0, big);
            if btype == SHB_MAGIC {
                if !self.fill(NG_MIN_BLOCK, at)? {
                    return self.cut_short(NG_MIN_SHB, false);
                }
                big = match read_u32(self.src.data(), 8, false) {
                    BOM_MAGIC => false,
                    m if m == BOM_MAGIC.swap_bytes() => true,
                    m => {
                        return Err(
                            self.corrupt(at, format!("section header block with unknown byte-order magic {m:08x}"))
                        );
                    }
                };
            }
            let len32 = read_u32(self.src.data(), 4, big);
            if len32 < NG_MIN_BLOCK as u32 || !len32.is_multiple_of(4) {
                return Err(self.corrupt(
                    at,
                    format!(
                        "block of type {btype:#x} has invalid length {len32} \
                         (must be a multiple of 4, at least 12)"
                    ),
                ));
            }
            let len = len32 as usize;
            self.check_size(len, at)?;
            if !self.fill(len, at)? {
                return self.cut_short(len, true);
            }
            let pos = self.src.position();
            let block = self.src.data().get(..len).unwrap_or_default();
            let trailer = read_u32(block, len - 4, big);
            if trailer != len32 {
                return Err(self.corrupt(
                    at,
                    format!(
                        "block of type {btype:#x} has length {len32} at its start \
                         but {trailer} at its end"
                    ),
                ));
            }
            let head = match btype {
                SHB_MAGIC => {
                    if parse_sectionheaderblock(block).is_err() {
                        return Err(self.corrupt(at, "malformed section header block".into()));
                    }
                    self.ng_big = big;
                    self.ifaces.clear();
                    self.stats.sections += 1;
                    None
                }
                IDB_MAGIC => {
                    let parsed = if big {
                        parse_interfacedescriptionblock_be(block)
                    } else {
                        parse_interfacedescriptionblock_le(block)
                    };
                    let Ok((_, idb)) = parsed else {
                        return Err(self.corrupt(at, "malformed interface description block".into()));
                    };
                    let offset_s = idb
                        .options
                        .iter()
                        .find(|o| o.code == OptionCode::IfTsoffset)
                        .and_then(|o| o.as_bytes().ok())
                        .and_then(|v| <[u8; 8]>::try_from(v).ok())
                        .map_or(0, |v| if big { i64::from_be_bytes(v) } else { i64::from_le_bytes(v) });
                    let iface = Iface {
                        linktype: Linktype((idb.linktype.0 as u32) & 0xffff),
                        snaplen: idb.snaplen,
                        scale: TsScale::from_tsresol(idb.if_tsresol),
                        offset_ns: i128::from(offset_s) * 1_000_000_000,
                    };
                    self.ifaces.push(iface);
                    self.stats.interfaces += 1;
                    self.stats.snaplen = Some(match self.stats.snaplen {
                        None => iface.snaplen,
                        Some(0) => 0,
                        Some(_) if iface.snaplen == 0 => 0,
                        Some(s) => s.max(iface.snaplen),
                    });
                    None
                }
                EPB_MAGIC => {
                    let parsed =
                        if big { parse_enhancedpacketblock_be(block) } else { parse_enhancedpacketblock_le(block) };
                    let Ok((_, epb)) = parsed else {
                        return Err(self.corrupt(at, "malformed enhanced packet block".into()));
                    };
                    let Some(iface) = self.ifaces.get(epb.if_id as usize).copied() else {
                        return Err(self.corrupt(
                            at,
                            format!(
                                "packet on interface {} but the section describes {} \
                                 interface(s)",
                                epb.if_id,
                                self.ifaces.len()
                            ),
                        ));
                    };
                    let data = epb.packet_data();
                    let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                    let ts = clamp_ts(iface.scale.to_ns(units) + iface.offset_ns);
                    Some(Head {
                        ts,
                        linktype: iface.linktype,
                        orig_len: epb.origlen,
                        pos: pos + block.offset(data),
                        len: data.len(),
                    })
                }
                SPB_MAGIC => {
                    let parsed =
                        if big { parse_simplepacketblock_be(block) } else { parse_simplepacketblock_le(block) };
                    let Ok((_, spb)) = parsed else {
                        return Err(self.corrupt(at, "malformed simple packet block".into()));
                    };
                    let Some(iface) = self.ifaces.first().copied() else {
                        return Err(
                            self.corrupt(at, "simple packet block but the section describes no interface".into())
                        );
                    };
                    // The captured length is implied: the original length,
                    // cut at the interface's snapshot length (0: none) and
                    // at what the block holds.
                    let mut caplen = (spb.origlen as usize).min(spb.data.len());
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    // No timestamp: reuse the previous frame's of this file.
                    let ts = self.stats.last_ts.unwrap_or_default();
                    Some(Head {
                        ts,
                        linktype: iface.linktype,
                        orig_len: spb.origlen,
                        pos: pos + block.offset(spb.data),
                        len: caplen,
                    })
                }
                NG_PB_MAGIC => {
                    // Interface id (u16), drops (u16), timestamp high and
                    // low, captured length, original length, data, options.
                    const DATA: usize = 28;
                    let if_id = read_u16(block, 8, big);
                    let caplen = read_u32(block, 20, big);
                    if len < DATA + 4 || caplen as usize > len - DATA - 4 {
                        return Err(
                            self.corrupt(at, format!("packet block of length {len} cannot hold {caplen} bytes"))
                        );
                    }
                    let Some(iface) = self.ifaces.get(usize::from(if_id)).copied() else {
                        return Err(self.corrupt(
                            at,
                            format!(
                                "packet on interface {if_id} but the section describes {} \
                                 interface(s)",
                                self.ifaces.len()
                            ),
                        ));
                    };
                    let units = (u64::from(read_u32(block, 12, big)) << 32) | u64::from(read_u32(block, 16, big));
                    Some(Head {
                        ts: clamp_ts(iface.scale.to_ns(units) + iface.offset_ns),
                        linktype: iface.linktype,
                        orig_len: read_u32(block, 24, big),
                        pos: pos + DATA,
                        len: caplen as usize,
                    })
                }
                DSB_TYPE => {
                    self.stats.skipped_blocks += 1;
                    self.stats.decryption_secrets += 1;
                    // Kept until the first packet only: those are the ones
                    // a run loads before it decrypts anything.
                    if self.stats.packets == 0 {
                        let body = block.get(8..len - 4).unwrap_or_default().to_vec();
                        self.secrets.push((body, big));
                    }
                    None
                }
                _ => {
                    self.stats.skipped_blocks += 1;
                    None
                }
            };
            self.src.consume(len);
            if let Some(head) = head {
                self.stats.count_packet(head.ts, head.linktype.0, head.len as u32, head.orig_len);
                return Ok(Some(head));
            }
        }
    }
}

/// Up to the first four bytes, for "not a capture" messages.
fn first4(data: &[u8]) -> Vec<u8> {
    data.get(..4).unwrap_or(data).to_vec()
}

/// The `u32` at `at` in the given byte order (0 if out of range; callers
/// check lengths first).
#[inline]
fn read_u32(b: &[u8], at: usize, big: bool) -> u32 {
    match b.get(at..at + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()) {
        Some(a) if big => u32::from_be_bytes(a),
        Some(a) => u32::from_le_bytes(a),
        None => 0,
    }
}

/// The `u16` at `at` in the given byte order (0 if out of range).
#[inline]
fn read_u16(b: &[u8], at: usize, big: bool) -> u16 {
    match b.get(at..at + 2).and_then(|s| <[u8; 2]>::try_from(s).ok()) {
        Some(a) if big => u16::from_be_bytes(a),
        Some(a) => u16::from_le_bytes(a),
        None => 0,
    }
}

#[cfg(test)]
mod scale_tests {
    use super::TsScale;

    #[test]
    fn tsresol_forms() {
        assert_eq!(TsScale::from_tsresol(6), TsScale::Mul(1000));
        assert_eq!(TsScale::from_tsresol(9), TsScale::Mul(1));
        assert_eq!(TsScale::from_tsresol(0), TsScale::Mul(1_000_000_000));
        assert_eq!(TsScale::from_tsresol(12), TsScale::Div(1_000_000_000_000));
        assert_eq!(TsScale::from_tsresol(0x80 | 20), TsScale::Shift(20));
        assert_eq!(TsScale::from_tsresol(100), TsScale::Zero);
        // 10^-12: 1_234_567 ps = 1234 ns (rounded down).
        assert_eq!(TsScale::from_tsresol(12).to_ns(1_234_567), 1234);
        // 2^-20: 3.5 s exactly, and one unit is 953.67431640625 ns.
        assert_eq!(TsScale::from_tsresol(0x80 | 20).to_ns(7 << 19), 3_500_000_000);
        assert_eq!(TsScale::from_tsresol(0x80 | 20).to_ns(1), 953);
        // Largest count at 10^-0: no overflow.
        assert_eq!(TsScale::from_tsresol(0).to_ns(u64::MAX), i128::from(u64::MAX) * 1_000_000_000);
        assert_eq!(TsScale::from_tsresol(0x80 | 127).to_ns(u64::MAX), 0);
    }
}
