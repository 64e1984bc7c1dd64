//! Streaming capture writers: classic pcap (micro- or nanosecond) and
//! pcapng (one Ethernet interface, nanosecond timestamps).

use std::io::{self, Write};

/// Capture file format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    /// Classic pcap, microsecond timestamps, little-endian.
    Pcap,
    /// Classic pcap, nanosecond timestamps, little-endian.
    PcapNs,
    /// pcapng with one Ethernet interface and nanosecond timestamps.
    Pcapng,
}

impl CaptureFormat {
    /// The format a file name asks for: `.pcapng` is pcapng, anything else
    /// classic pcap with microseconds.
    pub fn from_path(path: &std::path::Path) -> CaptureFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("pcapng") => CaptureFormat::Pcapng,
            _ => CaptureFormat::Pcap,
        }
    }
}

/// Link type of every frame written (Ethernet II).
const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length announced in the headers.
pub const SNAPLEN: u32 = 262_144;

/// Writes frames to a capture file as they come.
pub struct CaptureWriter<W: Write> {
    out: W,
    format: CaptureFormat,
    frames: u64,
    bytes: u64,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the file header and returns the writer.
    pub fn new(mut out: W, format: CaptureFormat) -> io::Result<CaptureWriter<W>> {
        let mut bytes = 0u64;
        match format {
            CaptureFormat::Pcap | CaptureFormat::PcapNs => {
                let magic: u32 = if format == CaptureFormat::Pcap { 0xa1b2_c3d4 } else { 0xa1b2_3c4d };
                let mut h = Vec::with_capacity(24);
                h.extend_from_slice(&magic.to_le_bytes());
                h.extend_from_slice(&2u16.to_le_bytes());
                h.extend_from_slice(&4u16.to_le_bytes());
                h.extend_from_slice(&0i32.to_le_bytes());
                h.extend_from_slice(&0u32.to_le_bytes());
                h.extend_from_slice(&SNAPLEN.to_le_bytes());
                h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
                out.write_all(&h)?;
                bytes += h.len() as u64;
            }
            CaptureFormat::Pcapng => {
                // Section Header Block: no options, section length unknown.
                let mut shb = Vec::with_capacity(28);
                shb.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
                shb.extend_from_slice(&28u32.to_le_bytes());
                shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
                shb.extend_from_slice(&1u16.to_le_bytes());
                shb.extend_from_slice(&0u16.to_le_bytes());
                shb.extend_from_slice(&(-1i64).to_le_bytes());
                shb.extend_from_slice(&28u32.to_le_bytes());
                out.write_all(&shb)?;
                // Interface Description Block: Ethernet, if_tsresol = 9
                // (nanoseconds), end of options.
                let mut idb = Vec::with_capacity(32);
                idb.extend_from_slice(&1u32.to_le_bytes());
                idb.extend_from_slice(&32u32.to_le_bytes());
                idb.extend_from_slice(&(LINKTYPE_ETHERNET as u16).to_le_bytes());
                idb.extend_from_slice(&0u16.to_le_bytes());
                idb.extend_from_slice(&SNAPLEN.to_le_bytes());
                idb.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
                idb.extend_from_slice(&1u16.to_le_bytes());
                idb.extend_from_slice(&[9, 0, 0, 0]);
                idb.extend_from_slice(&0u32.to_le_bytes()); // opt_endofopt
                idb.extend_from_slice(&32u32.to_le_bytes());
                out.write_all(&idb)?;
                bytes += (shb.len() + idb.len()) as u64;
            }
        }
        Ok(CaptureWriter { out, format, frames: 0, bytes })
    }

    /// Writes one frame captured at `ts_ns` nanoseconds since the epoch.
    pub fn write(&mut self, ts_ns: i64, frame: &[u8]) -> io::Result<()> {
        let len = frame.len() as u32;
        let ts = ts_ns.max(0) as u64;
        match self.format {
            CaptureFormat::Pcap | CaptureFormat::PcapNs => {
                let secs = (ts / 1_000_000_000) as u32;
                let frac = if self.format == CaptureFormat::Pcap {
                    ((ts % 1_000_000_000) / 1000) as u32
                } else {
                    (ts % 1_000_000_000) as u32
                };
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&secs.to_le_bytes());
                h[4..8].copy_from_slice(&frac.to_le_bytes());
                h[8..12].copy_from_slice(&len.to_le_bytes());
                h[12..16].copy_from_slice(&len.to_le_bytes());
                self.out.write_all(&h)?;
                self.out.write_all(frame)?;
                self.bytes += 16 + u64::from(len);
            }
            CaptureFormat::Pcapng => {
                let pad = (4 - (frame.len() % 4)) % 4;
                let total = 32 + frame.len() + pad;
                let mut h = [0u8; 28];
                h[0..4].copy_from_slice(&6u32.to_le_bytes());
                h[4..8].copy_from_slice(&(total as u32).to_le_bytes());
                h[8..12].copy_from_slice(&0u32.to_le_bytes()); // interface 0
                h[12..16].copy_from_slice(&((ts >> 32) as u32).to_le_bytes());
                h[16..20].copy_from_slice(&(ts as u32).to_le_bytes());
                h[20..24].copy_from_slice(&len.to_le_bytes());
                h[24..28].copy_from_slice(&len.to_le_bytes());
                self.out.write_all(&h)?;
                self.out.write_all(frame)?;
                self.out.write_all(&[0u8; 3][..pad])?;
                self.out.write_all(&(total as u32).to_le_bytes())?;
                self.bytes += total as u64;
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far, headers included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_layout() {
        let mut w = CaptureWriter::new(Vec::new(), CaptureFormat::Pcap).unwrap();
        w.write(1_700_000_000_123_456_789, &[1, 2, 3]).unwrap();
        let b = w.finish().unwrap();
        assert_eq!(b.len(), 24 + 16 + 3);
        assert_eq!(&b[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 123_456);
        assert_eq!(&b[40..43], &[1, 2, 3]);
    }

    #[test]
    fn pcapng_layout() {
        let mut w = CaptureWriter::new(Vec::new(), CaptureFormat::Pcapng).unwrap();
        w.write(5_000_000_001, &[9; 5]).unwrap();
        let n = w.bytes();
        let b = w.finish().unwrap();
        assert_eq!(b.len() as u64, n);
        // SHB 28 + IDB 32 + EPB 32 + 8 (5 bytes padded)
        assert_eq!(b.len(), 28 + 32 + 40);
        let epb = &b[60..];
        assert_eq!(u32::from_le_bytes(epb[0..4].try_into().unwrap()), 6);
        assert_eq!(u32::from_le_bytes(epb[4..8].try_into().unwrap()), 40);
        let ts = (u64::from(u32::from_le_bytes(epb[12..16].try_into().unwrap())) << 32)
            | u64::from(u32::from_le_bytes(epb[16..20].try_into().unwrap()));
        assert_eq!(ts, 5_000_000_001);
        assert_eq!(u32::from_le_bytes(epb[36..40].try_into().unwrap()), 40);
    }
}
