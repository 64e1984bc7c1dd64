//! What was read from one input.

use std::collections::BTreeMap;

use crate::time::Ts;

/// The container format of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// Classic libpcap format.
    Pcap {
        /// Fields are big-endian (magic `a1 b2 c3 d4` / `a1 b2 3c 4d` as
        /// written on disk).
        big_endian: bool,
        /// Timestamps carry nanoseconds (magic `a1b23c4d`) rather than
        /// microseconds (`a1b2c3d4`).
        nanosecond: bool,
    },
    /// pcapng (each section may have its own byte order).
    Pcapng,
}

/// Counters and facts about one input, kept up to date while it is read.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileStats {
    /// The input's name (its path as given, or `<stdin>`).
    pub name: String,
    /// Container format.
    pub format: Format,
    /// The input was gzip-compressed.
    pub gzip: bool,
    /// Snapshot length: the pcap file header's; for pcapng the largest
    /// declared by an interface, or 0 ("no limit") if any interface declares
    /// 0. `None` for a pcapng file without interfaces.
    pub snaplen: Option<u32>,
    /// Frames read.
    pub packets: u64,
    /// Captured bytes of those frames.
    pub captured_bytes: u64,
    /// Bytes the frames had on the wire (sum of their original lengths).
    pub wire_bytes: u64,
    /// Frames cut by the snapshot length (captured length below the
    /// original length).
    pub cut_by_snaplen: u64,
    /// Time of the first frame (in file order).
    pub first_ts: Option<Ts>,
    /// Time of the last frame (in file order).
    pub last_ts: Option<Ts>,
    /// Frames whose time is earlier than the frame before them in this file.
    pub out_of_order_timestamps: u64,
    /// Frames per link type number.
    pub linktypes: BTreeMap<u32, u64>,
    /// Interfaces described (pcap: 1; pcapng: interface description blocks
    /// over all sections).
    pub interfaces: u32,
    /// Sections (pcap: 1; pcapng: section header blocks).
    pub sections: u32,
    /// pcapng blocks read but not used (statistics, name resolution,
    /// decryption secrets, custom and unknown blocks).
    pub skipped_blocks: u64,
    /// Of those, Decryption Secrets Blocks (TLS key logs carried in the
    /// file; those before the first packet are loaded, see
    /// [`super::CaptureFile::leading_secrets`]).
    pub decryption_secrets: u64,
    /// Bytes of the capture stream consumed (decompressed, for gzip input).
    pub bytes: u64,
    /// Why reading stopped early, if it did (the error's text).
    pub error: Option<String>,
}

impl FileStats {
    pub(crate) fn new(name: String, format: Format, gzip: bool) -> FileStats {
        FileStats {
            name,
            format,
            gzip,
            snaplen: None,
            packets: 0,
            captured_bytes: 0,
            wire_bytes: 0,
            cut_by_snaplen: 0,
            first_ts: None,
            last_ts: None,
            out_of_order_timestamps: 0,
            linktypes: BTreeMap::new(),
            interfaces: 0,
            sections: 0,
            skipped_blocks: 0,
            decryption_secrets: 0,
            bytes: 0,
            error: None,
        }
    }

    /// Counts one frame. Kept small: it runs for every packet.
    #[inline]
    pub(crate) fn count_packet(&mut self, ts: Ts, linktype: u32, caplen: u32, orig_len: u32) {
        self.packets += 1;
        self.captured_bytes += u64::from(caplen);
        self.wire_bytes += u64::from(orig_len);
        if caplen < orig_len {
            self.cut_by_snaplen += 1;
        }
        match self.last_ts {
            Some(last) if ts < last => self.out_of_order_timestamps += 1,
            Some(_) => {}
            None => self.first_ts = Some(ts),
        }
        self.last_ts = Some(ts);
        match self.linktypes.get_mut(&linktype) {
            Some(n) => *n += 1,
            None => {
                self.linktypes.insert(linktype, 1);
            }
        }
    }
}
