//! Tests of the capture readers. Captures are built byte by byte with the
//! small writers below; a few real captures from the shared corpus are
//! checked against numbers tshark gave for them.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::*;
use crate::packet::Linktype;
use crate::time::Ts;

// ---------------------------------------------------------------- writers

/// A pcap file header.
fn pcap_header(big: bool, nano: bool, snaplen: u32, network: u32) -> Vec<u8> {
    let magic: u32 = if nano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut v = Vec::new();
    put32(&mut v, big, magic);
    put16(&mut v, big, 2);
    put16(&mut v, big, 4);
    put32(&mut v, big, 0); // thiszone
    put32(&mut v, big, 0); // sigfigs
    put32(&mut v, big, snaplen);
    put32(&mut v, big, network);
    v
}

/// Appends a pcap record.
fn pcap_record(v: &mut Vec<u8>, big: bool, sec: u32, frac: u32, data: &[u8], orig: u32) {
    put32(v, big, sec);
    put32(v, big, frac);
    put32(v, big, data.len() as u32);
    put32(v, big, orig);
    v.extend_from_slice(data);
}

fn put16(v: &mut Vec<u8>, big: bool, x: u16) {
    v.extend_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn put32(v: &mut Vec<u8>, big: bool, x: u32) {
    v.extend_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn put64(v: &mut Vec<u8>, big: bool, x: u64) {
    v.extend_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// A pcapng block: type, total length, body (padded), total length.
fn ng_block(big: bool, btype: u32, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    pad4(&mut b);
    let len = 12 + b.len() as u32;
    let mut v = Vec::new();
    put32(&mut v, big, btype);
    put32(&mut v, big, len);
    v.extend_from_slice(&b);
    put32(&mut v, big, len);
    v
}

/// Options list: each (code, value), then opt_endofopt.
fn ng_options(big: bool, opts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    if opts.is_empty() {
        return v;
    }
    for (code, value) in opts {
        put16(&mut v, big, *code);
        put16(&mut v, big, value.len() as u16);
        v.extend_from_slice(value);
        pad4(&mut v);
    }
    put32(&mut v, big, 0);
    v
}

fn ng_shb(big: bool) -> Vec<u8> {
    let mut body = Vec::new();
    put32(&mut body, big, 0x1A2B_3C4D);
    put16(&mut body, big, 1);
    put16(&mut body, big, 0);
    put64(&mut body, big, u64::MAX); // section length unknown (-1)
    ng_block(big, 0x0A0D_0D0A, &body)
}

fn ng_idb(big: bool, linktype: u16, snaplen: u32, opts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    put16(&mut body, big, linktype);
    put16(&mut body, big, 0);
    put32(&mut body, big, snaplen);
    body.extend_from_slice(&ng_options(big, opts));
    ng_block(big, 1, &body)
}

fn ng_tsoffset(big: bool, secs: i64) -> (u16, Vec<u8>) {
    (14, if big { secs.to_be_bytes().to_vec() } else { secs.to_le_bytes().to_vec() })
}

fn ng_epb(big: bool, if_id: u32, units: u64, data: &[u8], orig: u32) -> Vec<u8> {
    let mut body = Vec::new();
    put32(&mut body, big, if_id);
    put32(&mut body, big, (units >> 32) as u32);
    put32(&mut body, big, units as u32);
    put32(&mut body, big, data.len() as u32);
    put32(&mut body, big, orig);
    body.extend_from_slice(data);
    ng_block(big, 6, &body)
}

fn ng_spb(big: bool, orig: u32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put32(&mut body, big, orig);
    body.extend_from_slice(data);
    ng_block(big, 3, &body)
}

/// The obsolete Packet Block (type 2).
fn ng_pb(big: bool, if_id: u16, units: u64, data: &[u8], orig: u32) -> Vec<u8> {
    let mut body = Vec::new();
    put16(&mut body, big, if_id);
    put16(&mut body, big, 0); // drops
    put32(&mut body, big, (units >> 32) as u32);
    put32(&mut body, big, units as u32);
    put32(&mut body, big, data.len() as u32);
    put32(&mut body, big, orig);
    body.extend_from_slice(data);
    ng_block(big, 2, &body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------- helpers

/// One frame as read, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Frame {
    frame: u64,
    source: u16,
    ts: Ts,
    linktype: Linktype,
    data: Vec<u8>,
    orig_len: u32,
}

fn open(name: &str, bytes: Vec<u8>) -> CaptureFile {
    CaptureFile::from_read(name, io::Cursor::new(bytes)).unwrap()
}

/// Reads a file to its end; the error, if any, comes last.
fn read_all(f: &mut CaptureFile) -> (Vec<Frame>, Option<ReadError>) {
    let mut out = Vec::new();
    loop {
        match f.next_packet() {
            Ok(Some(p)) => out.push(Frame {
                frame: p.frame,
                source: p.source,
                ts: p.ts,
                linktype: p.linktype,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
            }),
            Ok(None) => return (out, None),
            Err(e) => {
                // After an error the file is over.
                assert!(f.next_packet().unwrap().is_none());
                return (out, Some(e));
            }
        }
    }
}

/// Reads a merged reader to its end, collecting frames and errors.
fn read_merged(r: &mut PacketReader) -> (Vec<Frame>, Vec<ReadError>) {
    let (mut out, mut errs) = (Vec::new(), Vec::new());
    loop {
        match r.next_packet() {
            Ok(Some(p)) => out.push(Frame {
                frame: p.frame,
                source: p.source,
                ts: p.ts,
                linktype: p.linktype,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
            }),
            Ok(None) => return (out, errs),
            Err(e) => errs.push(e),
        }
    }
}

fn ts(secs: i64, nanos: i64) -> Ts {
    Ts::from_secs_nanos(secs, nanos)
}

/// The shared corpus, from the real crate (crates/capture) or from a
/// scratch copy elsewhere.
fn corpus(name: &str) -> PathBuf {
    let bases = [crate::testing::manifest_dir().join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")];
    for base in &bases {
        let p = base.join("pcaps").join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("corpus capture {name} not found under {bases:?}");
}

/// A reader that hands out one byte per call and interrupts every other
/// call.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    calls: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "again"));
        }
        match (self.data.get(self.at), buf.first_mut()) {
            (Some(b), Some(slot)) => {
                *slot = *b;
                self.at += 1;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// A reader that fails once `limit` bytes have been read.
struct FailAfter {
    data: io::Cursor<Vec<u8>>,
    limit: u64,
}

impl Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.limit.saturating_sub(self.data.position());
        if left == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(left as usize);
        self.data.read(&mut buf[..n])
    }
}

// ---------------------------------------------------------------- pcap

/// A pcap with three records: a full frame, a frame cut by the snapshot
/// length, and one whose time goes backwards.
fn three_record_pcap(big: bool, nano: bool) -> (Vec<u8>, [Ts; 3]) {
    // Upper bits of the link type field carry FCS information (here: FCS
    // length 4 present); the link type is the low 16 bits.
    let mut v = pcap_header(big, nano, 65535, 0x1000_0000 | 0x0400_0000 | 1);
    let (f1, f2, f3) = if nano { (123_456_789, 5, 999_999_999) } else { (123_456, 5, 999_999) };
    let m = if nano { 1 } else { 1000 };
    pcap_record(&mut v, big, 1_700_000_000, f1, &[1; 10], 10);
    pcap_record(&mut v, big, 1_700_000_001, f2, &[2; 5], 60);
    pcap_record(&mut v, big, 1_699_999_999, f3, &[3; 4], 4);
    let want = [
        ts(1_700_000_000, i64::from(f1) * m),
        ts(1_700_000_001, i64::from(f2) * m),
        ts(1_699_999_999, i64::from(f3) * m),
    ];
    (v, want)
}

#[test]
fn pcap_both_byte_orders_and_resolutions() {
    for big in [false, true] {
        for nano in [false, true] {
            let (bytes, want) = three_record_pcap(big, nano);
            let len = bytes.len() as u64;
            let mut f = open("t.pcap", bytes);
            let (frames, err) = read_all(&mut f);
            assert!(err.is_none(), "{big} {nano}: {err:?}");
            assert_eq!(frames.len(), 3);
            for (i, fr) in frames.iter().enumerate() {
                assert_eq!(fr.frame, i as u64 + 1);
                assert_eq!(fr.source, 0);
                assert_eq!(fr.ts, want[i], "big {big} nano {nano} frame {i}");
                assert_eq!(fr.linktype, Linktype::ETHERNET);
            }
            assert_eq!(frames[0].data, vec![1; 10]);
            assert_eq!(frames[1].data, vec![2; 5]);
            assert_eq!(frames[1].orig_len, 60);
            let s = f.stats();
            assert_eq!(s.format, Format::Pcap { big_endian: big, nanosecond: nano });
            assert!(!s.gzip);
            assert_eq!(s.snaplen, Some(65535));
            assert_eq!(s.packets, 3);
            assert_eq!(s.captured_bytes, 19);
            assert_eq!(s.wire_bytes, 74);
            assert_eq!(s.cut_by_snaplen, 1);
            assert_eq!(s.out_of_order_timestamps, 1);
            assert_eq!(s.first_ts, Some(want[0]));
            assert_eq!(s.last_ts, Some(want[2]));
            assert_eq!(s.linktypes.iter().collect::<Vec<_>>(), vec![(&1, &3)]);
            assert_eq!((s.sections, s.interfaces, s.skipped_blocks), (1, 1, 0));
            assert_eq!(s.bytes, len);
            assert_eq!(s.error, None);
            assert!(f.warnings().is_empty());
            assert_eq!(f.bytes_read(), len);
        }
    }
}

#[test]
fn pcap_timestamps_are_exact_at_the_extremes() {
    // Largest unsigned seconds field and a nanosecond fraction.
    let mut v = pcap_header(false, true, 65535, 1);
    pcap_record(&mut v, false, u32::MAX, 999_999_999, &[0; 1], 1);
    pcap_record(&mut v, false, 0, 1, &[0; 1], 1);
    let (frames, _) = read_all(&mut open("x.pcap", v));
    assert_eq!(frames[0].ts, Ts(i64::from(u32::MAX) * 1_000_000_000 + 999_999_999));
    assert_eq!(frames[1].ts, Ts(1));
}

// ---------------------------------------------------------------- pcapng

#[test]
fn pcapng_sections_interfaces_and_resolutions() {
    let mut v = Vec::new();
    // Section 1, little-endian: Ethernet at the default 10^-6, raw IP at
    // 10^-9 with an offset of 100 s.
    v.extend(ng_shb(false));
    v.extend(ng_idb(false, 1, 65535, &[]));
    v.extend(ng_idb(false, 101, 0, &[(9, vec![9]), ng_tsoffset(false, 100)]));
    v.extend(ng_block(false, 0x0000_0FFF, b"what is this")); // unknown: skipped
    v.extend(ng_epb(false, 0, 1_700_000_000_123_456, b"first", 5));
    v.extend(ng_epb(false, 1, 1_700_000_000_123_456_789, b"second!", 1500));
    // No timestamp: the previous frame's; interface 0; captured length is
    // the original length (the rest is padding).
    v.extend(ng_spb(false, 6, b"simple"));
    v.extend(ng_block(false, 5, &[0; 12])); // interface statistics: skipped
    // Section 2, big-endian: interfaces start again; Linux SLL at 2^-20,
    // snapshot length 4.
    v.extend(ng_shb(true));
    v.extend(ng_idb(true, 113, 4, &[(9, vec![0x80 | 20])]));
    v.extend(ng_epb(true, 0, (1_700_000_200 << 20) | (1 << 19), b"abc", 3));
    v.extend(ng_spb(true, 10, b"0123456789"));
    v.extend(ng_epb(true, 0, (1_700_000_300 << 20) | 1, b"x", 1));

    let mut f = open("t.pcapng", v);
    let (frames, err) = read_all(&mut f);
    assert!(err.is_none(), "{err:?}");
    let got: Vec<_> = frames.iter().map(|f| (f.frame, f.ts, f.linktype.0, f.data.clone(), f.orig_len)).collect();
    let t1 = ts(1_700_000_000, 123_456_000);
    let t2 = ts(1_700_000_100, 123_456_789);
    let t3 = ts(1_700_000_200, 500_000_000);
    // 1 unit of 2^-20 s is 953.67431640625 ns: rounded down.
    let t4 = ts(1_700_000_300, 953);
    assert_eq!(
        got,
        vec![
            (1, t1, 1, b"first".to_vec(), 5),
            (2, t2, 101, b"second!".to_vec(), 1500),
            (3, t2, 1, b"simple".to_vec(), 6),
            (4, t3, 113, b"abc".to_vec(), 3),
            (5, t3, 113, b"0123".to_vec(), 10),
            (6, t4, 113, b"x".to_vec(), 1),
        ]
    );
    let s = f.stats();
    assert_eq!(s.format, Format::Pcapng);
    assert_eq!((s.sections, s.interfaces, s.skipped_blocks), (2, 3, 2));
    assert_eq!(s.packets, 6);
    assert_eq!(s.cut_by_snaplen, 2);
    assert_eq!(s.out_of_order_timestamps, 0);
    assert_eq!(s.first_ts, Some(t1));
    assert_eq!(s.last_ts, Some(t4));
    assert_eq!(s.linktypes.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), [(1, 2), (101, 1), (113, 3)]);
    // One interface declared no limit.
    assert_eq!(s.snaplen, Some(0));
    assert!(f.warnings().is_empty());
}

#[test]
fn pcapng_big_endian_tsoffset_and_other_resolutions() {
    let mut v = ng_shb(true);
    // 10^-3 with a negative offset, 10^-10, 2^-0 (whole seconds).
    v.extend(ng_idb(true, 1, 0, &[(9, vec![3]), ng_tsoffset(true, -1_000)]));
    v.extend(ng_idb(true, 1, 0, &[(9, vec![10])]));
    v.extend(ng_idb(true, 1, 0, &[(9, vec![0x80])]));
    v.extend(ng_epb(true, 0, 1_700_000_000_250, b"a", 1));
    v.extend(ng_epb(true, 1, 17_000_000_001_234_567_891, b"b", 1));
    v.extend(ng_epb(true, 2, 1_700_000_000, b"c", 1));
    let (frames, err) = read_all(&mut open("be.pcapng", v));
    assert!(err.is_none(), "{err:?}");
    let got: Vec<_> = frames.iter().map(|f| f.ts).collect();
    assert_eq!(got, [ts(1_699_999_000, 250_000_000), ts(1_700_000_000, 123_456_789), ts(1_700_000_000, 0)]);
}

#[test]
fn pcapng_obsolete_packet_block() {
    let mut v = ng_shb(false);
    v.extend(ng_idb(false, 1, 0, &[]));
    v.extend(ng_idb(false, 228, 0, &[(9, vec![9])]));
    v.extend(ng_pb(false, 1, 1_600_000_000_000_000_007, b"old!!", 9));
    let mut f = open("pb.pcapng", v);
    let (frames, err) = read_all(&mut f);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].ts, ts(1_600_000_000, 7));
    assert_eq!(frames[0].linktype, Linktype::IPV4);
    assert_eq!(frames[0].data, b"old!!");
    assert_eq!(frames[0].orig_len, 9);
    assert_eq!(f.stats().skipped_blocks, 0);
}

#[test]
fn pcapng_interfaces_reset_per_section() {
    let mut v = ng_shb(false);
    v.extend(ng_idb(false, 1, 0, &[]));
    v.extend(ng_idb(false, 1, 0, &[]));
    v.extend(ng_epb(false, 1, 5, b"ok", 2));
    v.extend(ng_shb(false));
    v.extend(ng_idb(false, 1, 0, &[]));
    let at = v.len() as u64;
    v.extend(ng_epb(false, 1, 6, b"bad", 3));
    let mut f = open("reset.pcapng", v);
    let (frames, err) = read_all(&mut f);
    assert_eq!(frames.len(), 1);
    let e = err.unwrap();
    assert_eq!(e.offset, at);
    assert!(matches!(e.kind, ReadErrorKind::Corrupt(_)));
    assert_eq!(
        e.to_string(),
        format!(
            "reset.pcapng: byte {at}: corrupt capture: packet on interface 1 but the section \
             describes 1 interface(s)"
        )
    );
    assert_eq!(f.stats().error.as_deref(), Some(e.to_string().as_str()));
}

#[test]
fn pcapng_simple_packet_needs_an_interface() {
    let mut v = ng_shb(false);
    let at = v.len() as u64;
    v.extend(ng_spb(false, 4, b"abcd"));
    let (frames, err) = read_all(&mut open("spb.pcapng", v));
    assert!(frames.is_empty());
    let e = err.unwrap();
    assert_eq!(e.offset, at);
    assert!(e.to_string().contains("simple packet block"), "{e}");
}

#[test]
fn pcapng_corrupt_blocks_in_the_middle() {
    let mut base = ng_shb(false);
    base.extend(ng_idb(false, 1, 0, &[]));
    base.extend(ng_epb(false, 0, 1, b"one", 3));
    let at = base.len() as u64;

    // Length not a multiple of 4.
    let mut v = base.clone();
    let mut bad = ng_epb(false, 0, 2, b"two", 3);
    bad[4..8].copy_from_slice(&45u32.to_le_bytes());
    v.extend(bad);
    v.extend(ng_epb(false, 0, 3, b"three", 5));
    let (frames, err) = read_all(&mut open("len.pcapng", v));
    assert_eq!(frames.len(), 1);
    let e = err.unwrap();
    assert_eq!(e.offset, at);
    assert!(e.to_string().contains("invalid length 45"), "{e}");

    // Trailing length disagrees.
    let mut v = base.clone();
    let mut bad = ng_epb(false, 0, 2, b"two", 3);
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&8u32.to_le_bytes());
    v.extend(bad);
    let (frames, err) = read_all(&mut open("trailer.pcapng", v));
    assert_eq!(frames.len(), 1);
    let e = err.unwrap();
    assert_eq!(e.offset, at);
    assert!(e.to_string().contains("but 8 at its end"), "{e}");

    // Captured length larger than the block.
    let mut v = base.clone();
    let mut bad = ng_epb(false, 0, 2, b"two", 3);
    bad[20..24].copy_from_slice(&400u32.to_le_bytes());
    v.extend(bad);
    let (frames, err) = read_all(&mut open("caplen.pcapng", v));
    assert_eq!(frames.len(), 1);
    let e = err.unwrap();
    assert_eq!(e.offset, at);
    assert!(e.to_string().contains("malformed enhanced packet block"), "{e}");

    // Bad byte-order magic in a later section header.
    let mut v = base;
    let mut bad = ng_shb(false);
    bad[8..12].copy_from_slice(b"ABCD");
    v.extend(bad);
    let (frames, err) = read_all(&mut open("bom.pcapng", v));
    assert_eq!(frames.len(), 1);
    assert_eq!(err.unwrap().offset, at);
}

// ---------------------------------------------------------------- gzip

#[test]
fn gzip_input_is_read_transparently() {
    let (plain, want) = three_record_pcap(false, true);
    let packed = gzip(&plain);
    let mut f = open("t.pcap.gz", packed.clone());
    let (frames, err) = read_all(&mut f);
    assert!(err.is_none());
    assert_eq!(frames.iter().map(|f| f.ts).collect::<Vec<_>>(), want);
    let s = f.stats();
    assert!(s.gzip);
    assert_eq!(s.format, Format::Pcap { big_endian: false, nanosecond: true });
    assert_eq!(s.bytes, plain.len() as u64);
    assert_eq!(f.bytes_read(), packed.len() as u64);

    // Several gzip members one after the other, as `cat a.gz b.gz` makes;
    // the name does not matter.
    let (a, b) = plain.split_at(30);
    let mut two = gzip(a);
    two.extend(gzip(b));
    let (frames2, err) = read_all(&mut open("no-extension", two));
    assert!(err.is_none());
    assert_eq!(frames2, frames);

    // pcapng too.
    let mut ng = ng_shb(false);
    ng.extend(ng_idb(false, 1, 0, &[]));
    ng.extend(ng_epb(false, 0, 42, b"zip", 3));
    let (frames, err) = read_all(&mut open("t.pcapng.gz", gzip(&ng)));
    assert!(err.is_none());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].ts, Ts(42_000));
}

#[test]
fn gzip_offsets_are_decompressed() {
    let (mut plain, _) = three_record_pcap(false, false);
    let at = plain.len() as u64;
    pcap_record(&mut plain, false, 1, 1, &[0; 4], 4);
    let n = plain.len();
    plain[n - 12..n - 8].copy_from_slice(&u32::MAX.to_le_bytes()); // absurd caplen
    let mut f = open("c.pcap.gz", gzip(&plain));
    let (frames, err) = read_all(&mut f);
    assert_eq!(frames.len(), 3);
    let e = err.unwrap();
    assert_eq!(e.offset, at);
    assert!(e.decompressed);
    assert!(e.to_string().starts_with(&format!("c.pcap.gz: byte {at} (decompressed): ")), "{e}");

    let e = CaptureFile::from_read("notes.gz", io::Cursor::new(gzip(b"hello"))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "notes.gz: not a pcap or pcapng capture (first bytes: 68 65 6c 6c) after gzip \
         decompression"
    );
}

#[test]
fn gzip_stream_cut_short_keeps_what_was_read() {
    let mut plain = pcap_header(false, false, 65535, 1);
    for i in 0..2000u32 {
        pcap_record(&mut plain, false, i, 0, &i.to_le_bytes().repeat(25), 100);
    }
    let packed = gzip(&plain);
    let cut = packed[..packed.len() / 2].to_vec();
    let mut f = open("cut.pcap.gz", cut);
    let (frames, err) = read_all(&mut f);
    assert!(err.is_none(), "{err:?}");
    assert!(!frames.is_empty() && frames.len() < 2000);
    for (i, fr) in frames.iter().enumerate() {
        assert_eq!(fr.ts, ts(i as i64, 0));
    }
    let w = f.warnings();
    assert!(w.iter().any(|w| w.message.contains("gzip stream ends early")), "{w:?}");
    assert!(w.iter().all(|w| w.decompressed));
}

// ---------------------------------------------------------------- truncation

#[test]
fn truncated_last_record_pcap() {
    let (full, want) = three_record_pcap(true, false);
    let last_start = (full.len() - 16 - 4) as u64;

    // Data of the last record incomplete: 1 of its 4 bytes.
    let mut f = open("cut.pcap", full[..full.len() - 3].to_vec());
    let (frames, err) = read_all(&mut f);
    assert!(err.is_none());
    assert_eq!(frames.iter().map(|f| f.ts).collect::<Vec<_>>(), want[..2]);
    assert_eq!(f.warnings().len(), 1);
    let w = &f.warnings()[0];
    assert_eq!(w.offset, last_start);
    assert_eq!(
        w.to_string(),
        format!(
            "cut.pcap: byte {last_start}: capture cut short: the last record lacks 3 bytes \
             (17 of 20 present)"
        )
    );
    assert_eq!(f.stats().packets, 2);
    assert_eq!(f.stats().bytes, full.len() as u64 - 3);

    // Record header incomplete: 5 of 16 bytes.
    let mut f = open("cut2.pcap", full[..last_start as usize + 5].to_vec());
    let (frames, _) = read_all(&mut f);
    assert_eq!(frames.len(), 2);
    let w = &f.warnings()[0];
    assert_eq!(w.offset, last_start);
    assert!(w.message.contains("lacks at least 11 bytes"), "{w}");
}

#[test]
fn truncated_last_block_pcapng() {
    let mut v = ng_shb(false);
    v.extend(ng_idb(false, 1, 0, &[]));
    v.extend(ng_epb(false, 0, 1, b"one", 3));
    let at = v.len() as u64;
    let last = ng_epb(false, 0, 2, b"two", 3); // 36 bytes
    v.extend(&last[..30]);
    let mut f = open("cut.pcapng", v);
    let (frames, err) = read_all(&mut f);
    assert!(err.is_none());
    assert_eq!(frames.len(), 1);
    let w = &f.warnings()[0];
    assert_eq!(w.offset, at);
    assert!(w.message.contains("lacks 6 bytes (30 of 36 present)"), "{w}");
}

/// Every prefix of a valid capture either fails to open (too short for a
/// file header) or yields the complete records in it, plus one warning if
/// it ends inside a record; never an error, never a panic.
#[test]
fn every_prefix_is_handled() {
    // Structural boundaries (file header or blocks, then records) and how
    // many of them come before the first record.
    let (pcap, _) = three_record_pcap(false, false);
    let pcap_bounds = vec![24usize, 24 + 26, 24 + 26 + 21, 24 + 26 + 21 + 20];
    let mut ng = ng_shb(false);
    let mut ng_bounds = vec![ng.len()];
    ng.extend(ng_idb(false, 1, 0, &[(9, vec![9])]));
    ng_bounds.push(ng.len());
    for i in 0..3u8 {
        ng.extend(ng_epb(false, 0, 1, &vec![i; usize::from(i) + 1], 9));
        ng_bounds.push(ng.len());
    }
    // pcap needs its whole file header to open, pcapng the first 12 bytes.
    for (bytes, bounds, headers, min_len) in [(pcap, pcap_bounds, 1, 24), (ng, ng_bounds, 2, 12)] {
        for cut in 0..=bytes.len() {
            let res = CaptureFile::from_read("p", io::Cursor::new(bytes[..cut].to_vec()));
            let Ok(mut f) = res else {
                assert!(cut < min_len, "cut {cut}: {:?}", res.err());
                continue;
            };
            assert!(cut >= min_len, "cut {cut}");
            let (frames, err) = read_all(&mut f);
            assert!(err.is_none(), "cut {cut}: {err:?}");
            let complete = bounds.iter().filter(|&&e| e <= cut).count().saturating_sub(headers);
            assert_eq!(frames.len(), complete, "cut {cut}");
            assert_eq!(f.warnings().len(), usize::from(!bounds.contains(&cut)), "cut {cut}");
        }
    }
}

// ---------------------------------------------------------------- corruption

#[test]
fn corrupt_record_in_the_middle_pcap() {
    let mut v = pcap_header(false, false, 65535, 1);
    pcap_record(&mut v, false, 10, 0, &[1; 8], 8);
    let at = v.len() as u64;
    pcap_record(&mut v, false, 11, 0, &[2; 8], 8);
    pcap_record(&mut v, false, 12, 0, &[3; 8], 8);
    let a = at as usize;
    v[a + 8..a + 12].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let mut f = open("mid.pcap", v);
    let (frames, err) = read_all(&mut f);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data, vec![1; 8]);
    let e = err.unwrap();
    assert_eq!(e.file, "mid.pcap");
    assert_eq!(e.offset, at);
    assert_eq!(
        e.to_string(),
        format!(
            "mid.pcap: byte {at}: corrupt capture: record claims 2147483632 captured bytes, \
             more than the snapshot length allows (262144)"
        )
    );
    assert_eq!(f.stats().packets, 1);
    assert!(f.stats().error.is_some());
    assert!(std::error::Error::source(&e).is_none());
}

#[test]
fn read_errors_name_the_record() {
    let (v, _) = three_record_pcap(false, false);
    let f = FailAfter { data: io::Cursor::new(v), limit: 24 + 26 + 5 };
    let mut f = CaptureFile::from_read("flaky.pcap", f).unwrap();
    let (frames, err) = read_all(&mut f);
    assert_eq!(frames.len(), 1);
    let e = err.unwrap();
    assert_eq!(e.offset, 24 + 26);
    assert!(matches!(e.kind, ReadErrorKind::Io(_)));
    assert_eq!(e.to_string(), "flaky.pcap: byte 50: read error: disk on fire");
    assert!(std::error::Error::source(&e).is_some());
}

// ---------------------------------------------------------------- not captures

#[test]
fn not_a_capture_names_the_file() {
    let e = CaptureFile::from_read("notes.txt", io::Cursor::new(b"<!DOCTYPE html>".to_vec())).unwrap_err();
    assert!(matches!(&e.kind, ReadErrorKind::NotACapture { first_bytes } if first_bytes == b"<!DO"));
    assert_eq!(e.to_string(), "notes.txt: not a pcap or pcapng capture (first bytes: 3c 21 44 4f)");

    let e = CaptureFile::from_read("empty.pcap", io::empty()).unwrap_err();
    assert_eq!(e.to_string(), "empty.pcap: not a pcap or pcapng capture (empty file)");

    let e = CaptureFile::from_read("two", io::Cursor::new(vec![0xd4, 0xc3])).unwrap_err();
    assert_eq!(e.to_string(), "two: not a pcap or pcapng capture (first bytes: d4 c3)");

    // pcapng magic without a valid byte-order magic.
    let e = CaptureFile::from_read("nl", io::Cursor::new(b"\n\r\r\nhello world".to_vec())).unwrap_err();
    assert!(matches!(e.kind, ReadErrorKind::NotACapture { .. }));

    // A pcap magic with a cut file header.
    let h = pcap_header(false, false, 65535, 1);
    let e = CaptureFile::from_read("short.pcap", io::Cursor::new(h[..10].to_vec())).unwrap_err();
    assert_eq!(e.to_string(), "short.pcap: byte 0: corrupt capture: pcap file header cut short (10 of 24 bytes)");

    // The "modified" pcap variant.
    let mut m = h.clone();
    m[..4].copy_from_slice(&0xa1b2_cd34u32.to_le_bytes());
    let e = CaptureFile::from_read("mod.pcap", io::Cursor::new(m)).unwrap_err();
    assert!(matches!(e.kind, ReadErrorKind::Unsupported(_)), "{e}");

    let e = CaptureFile::open("/nonexistent/dir/x.pcap".as_ref()).unwrap_err();
    assert!(matches!(e.kind, ReadErrorKind::Open(_)));
    assert!(e.to_string().starts_with("/nonexistent/dir/x.pcap: cannot open: "), "{e}");
}

#[test]
fn open_reads_a_file_and_knows_its_size() {
    let (v, want) = three_record_pcap(false, false);
    let path = std::env::temp_dir().join(format!("pov-pcap-test-{}.pcap", std::process::id()));
    std::fs::write(&path, &v).unwrap();
    let res = CaptureFile::open(&path);
    std::fs::remove_file(&path).unwrap();
    let mut f = res.unwrap();
    assert_eq!(f.name(), path.display().to_string());
    assert_eq!(f.size_hint(), Some(v.len() as u64));
    let (frames, _) = read_all(&mut f);
    assert_eq!(frames.iter().map(|f| f.ts).collect::<Vec<_>>(), want);
}

// ---------------------------------------------------------------- buffer

#[test]
fn buffer_grows_for_large_records_up_to_its_limit() {
    let mut v = pcap_header(false, false, 1 << 20, 1);
    pcap_record(&mut v, false, 1, 0, &[7; 1000], 1000);
    pcap_record(&mut v, false, 2, 0, &[8; 3000], 3000);
    let at = v.len() as u64;
    pcap_record(&mut v, false, 3, 0, &[9; 5000], 5000);
    let mut f = CaptureFile::from_read_limits("big.pcap", io::Cursor::new(v), 64, 4096).unwrap();
    let (frames, err) = read_all(&mut f);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].data, vec![8; 3000]);
    let e = err.unwrap();
    assert_eq!(e.offset, at);
    assert!(matches!(e.kind, ReadErrorKind::TooLarge { len: 5016, limit: 4096 }), "{e}");

    // The real reader, with a frame larger than its initial 1 MiB.
    let mut v = pcap_header(false, false, 4 << 20, 1);
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| i as u8).collect();
    pcap_record(&mut v, false, 1, 0, &[1; 100], 100);
    pcap_record(&mut v, false, 2, 0, &big, big.len() as u32);
    pcap_record(&mut v, false, 3, 0, &[3; 100], 100);
    let (frames, err) = read_all(&mut open("huge.pcap", v));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 3);
    assert!(frames[1].data == big);
}

#[test]
fn tiny_reads_and_interruptions() {
    let mut v = ng_shb(false);
    v.extend(ng_idb(false, 1, 0, &[]));
    for i in 0..20u8 {
        v.extend(ng_epb(false, 0, u64::from(i), &vec![i; usize::from(i)], u32::from(i)));
    }
    let (want, _) = read_all(&mut open("a", v.clone()));
    let trickle = Trickle { data: gzip(&v), at: 0, calls: 0 };
    let mut f = CaptureFile::from_read_limits("b", trickle, 16, 1 << 16).unwrap();
    let (got, err) = read_all(&mut f);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), 20);
    assert_eq!(got, want);
}

// ---------------------------------------------------------------- merging

fn pcap_with(times: &[(u32, u32)], tag: u8) -> Vec<u8> {
    let mut v = pcap_header(false, false, 65535, 1);
    for &(s, us) in times {
        pcap_record(&mut v, false, s, us, &[tag], 1);
    }
    v
}

#[test]
fn merge_by_time_ties_by_input_order() {
    let a = pcap_with(&[(1, 0), (3, 0), (5, 0), (5, 0)], b'a');
    let mut b = ng_shb(false);
    b.extend(ng_idb(false, 101, 0, &[]));
    for s in [2u64, 3, 4, 5] {
        b.extend(ng_epb(false, 0, s * 1_000_000, b"b", 1));
    }
    let mut r = PacketReader::new(vec![open("a.pcap", a), open("b.pcapng", b)]);
    let (frames, errs) = read_merged(&mut r);
    assert!(errs.is_empty());
    let got: Vec<_> = frames.iter().map(|f| (f.frame, f.source, f.ts, f.data[0])).collect();
    let s = |x| ts(x, 0);
    assert_eq!(
        got,
        vec![
            (1, 0, s(1), b'a'),
            (2, 1, s(2), b'b'),
            (3, 0, s(3), b'a'),
            (4, 1, s(3), b'b'),
            (5, 1, s(4), b'b'),
            (6, 0, s(5), b'a'),
            (7, 0, s(5), b'a'),
            (8, 1, s(5), b'b'),
        ]
    );
    assert_eq!(frames[1].linktype, Linktype::RAW);
    assert_eq!(r.frames(), 8);
    let stats: Vec<_> = r.files().map(|s| (s.name.clone(), s.packets)).collect();
    assert_eq!(stats, vec![("a.pcap".to_string(), 4), ("b.pcapng".to_string(), 4)]);
    assert!(r.warnings().is_empty());
    assert!(r.next_packet().unwrap().is_none());
}

#[test]
fn merge_goes_on_when_one_input_fails() {
    let mut a = pcap_with(&[(1, 0), (2, 0)], b'a');
    let at = a.len() as u64;
    a.extend([0xff; 16]); // a record header with an absurd length
    a.extend(pcap_with(&[(9, 0)], b'a').split_off(24));
    let b = pcap_with(&[(1, 500_000), (2, 500_000), (3, 500_000)], b'b');
    let (cut, _) = three_record_pcap(false, false);
    let c = cut[..cut.len() - 1].to_vec(); // last record cut short
    let mut r = PacketReader::new(vec![open("a", a), open("b", b), open("c", c)]);
    let (frames, errs) = read_merged(&mut r);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].file, "a");
    assert_eq!(errs[0].offset, at);
    let got: Vec<_> = frames.iter().map(|f| (f.frame, f.source, f.ts)).collect();
    assert_eq!(
        got,
        vec![
            (1, 0, ts(1, 0)),
            (2, 1, ts(1, 500_000_000)),
            (3, 0, ts(2, 0)),
            (4, 1, ts(2, 500_000_000)),
            (5, 1, ts(3, 500_000_000)),
            (6, 2, ts(1_700_000_000, 123_456_000)),
            (7, 2, ts(1_700_000_001, 5_000)),
        ]
    );
    let packets: Vec<_> = r.files().map(|s| s.packets).collect();
    assert_eq!(packets, [2, 3, 2]);
    assert!(r.files().next().unwrap().error.is_some());
    let w = r.warnings();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].file, "c");
}

#[test]
fn merge_of_nothing_and_one() {
    let mut r = PacketReader::new(Vec::new());
    assert!(r.next_packet().unwrap().is_none());
    assert_eq!(r.size_hint(), Some(0));
    let (v, want) = three_record_pcap(true, true);
    let len = v.len() as u64;
    let mut r = PacketReader::new(vec![open("one", v)]);
    let (frames, errs) = read_merged(&mut r);
    assert!(errs.is_empty());
    assert_eq!(frames.iter().map(|f| f.ts).collect::<Vec<_>>(), want);
    assert_eq!(frames.iter().map(|f| f.frame).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(r.bytes_read(), len);
    assert_eq!(r.size_hint(), None);
}

// ---------------------------------------------------------------- stats

#[test]
fn readers_can_move_to_another_thread() {
    fn is_send<T: Send>() {}
    is_send::<CaptureFile>();
    is_send::<PacketReader>();
    is_send::<ReadError>();
}

#[test]
fn stats_serialize_to_json() {
    let (v, _) = three_record_pcap(false, true);
    let mut f = open("j.pcap", v);
    read_all(&mut f);
    let j = serde_json::to_value(f.stats()).unwrap();
    assert_eq!(j["name"], "j.pcap");
    assert_eq!(j["format"]["Pcap"]["nanosecond"], true);
    assert_eq!(j["packets"], 3);
    assert_eq!(j["linktypes"]["1"], 3);
    assert_eq!(j["first_ts"], 1_700_000_000_123_456_789i64);
    assert_eq!(j["error"], serde_json::Value::Null);
}

// ---------------------------------------------------------------- corpus

/// Real captures against tshark 4.0.17. Numbers derived once with
/// `tshark -r FILE -T fields -e frame.time_epoch -e frame.cap_len -e
/// frame.len` (count of lines, first and last time, sums of the two
/// lengths); link types from `capinfos`.
#[test]
fn corpus_captures_match_tshark() {
    struct Want {
        file: &'static str,
        format: Format,
        packets: u64,
        first: Ts,
        last: Ts,
        captured: u64,
        linktype: u32,
    }
    let pcap = Format::Pcap { big_endian: false, nanosecond: false };
    let wants = [
        Want {
            file: "zeek__wikipedia.pcap",
            format: pcap,
            packets: 136,
            first: ts(1_300_475_167, 96_535_000),
            last: ts(1_300_475_173, 475_401_000),
            captured: 25_260,
            linktype: 1,
        },
        Want {
            file: "ndpi__http_starting_with_reply.pcapng",
            format: Format::Pcapng,
            packets: 18,
            first: ts(1_631_378_210, 397_220_000),
            last: ts(1_631_378_215, 504_945_000),
            captured: 9_297,
            linktype: 1,
        },
        Want {
            file: "zeek__cooper-grill-dvwa.pcapng",
            format: Format::Pcapng,
            packets: 64,
            first: ts(1_730_145_002, 900_383_409),
            last: ts(1_730_145_073, 257_679_667),
            captured: 20_825,
            linktype: 1,
        },
        Want {
            file: "zeek__nflog-http.pcap",
            format: pcap,
            packets: 13,
            first: ts(1_470_574_779, 148_133_000),
            last: ts(1_470_574_780, 138_288_000),
            captured: 3_104,
            linktype: 239,
        },
    ];
    for w in wants {
        let path = corpus(w.file);
        let mut f = CaptureFile::open(&path).unwrap();
        let (frames, err) = read_all(&mut f);
        assert!(err.is_none(), "{}: {err:?}", w.file);
        assert!(f.warnings().is_empty(), "{}: {:?}", w.file, f.warnings());
        let s = f.stats();
        assert_eq!(s.format, w.format, "{}", w.file);
        assert_eq!(s.packets, w.packets, "{}", w.file);
        assert_eq!(frames.len() as u64, w.packets, "{}", w.file);
        assert_eq!(s.first_ts, Some(w.first), "{}", w.file);
        assert_eq!(s.last_ts, Some(w.last), "{}", w.file);
        assert_eq!(s.captured_bytes, w.captured, "{}", w.file);
        assert_eq!(s.wire_bytes, w.captured, "{}", w.file);
        assert_eq!(s.cut_by_snaplen, 0, "{}", w.file);
        assert_eq!(s.out_of_order_timestamps, 0, "{}", w.file);
        assert_eq!(s.linktypes.keys().copied().collect::<Vec<_>>(), [w.linktype], "{}", w.file);
        assert_eq!(s.bytes, std::fs::metadata(&path).unwrap().len(), "{}", w.file);
    }
}

// ---------------------------------------------------------------- sharing

/// Packet `i` of the captures below: its length and bytes tell it apart.
fn numbered(i: u32) -> Vec<u8> {
    let len = 1 + (i * 37 % 1500) as usize;
    (0..len).map(|j| (i as usize * 7 + j) as u8).collect()
}

#[test]
fn shared_blocks_keep_their_packets_while_held() {
    // A pcap read through a 4 KiB buffer, and a gzip pcapng merged with it:
    // a held packet outlives many refills of its reader's buffer.
    let mut a = pcap_header(false, false, 65535, 1);
    let mut b = ng_shb(false);
    b.extend(ng_idb(false, 1, 65535, &[]));
    for i in 0..3000u32 {
        let data = numbered(i);
        if i % 3 == 0 {
            b.extend(ng_epb(false, 0, u64::from(i) * 1_000_000, &data, data.len() as u32));
        } else {
            pcap_record(&mut a, false, i, 0, &data, data.len() as u32);
        }
    }
    for (files, want) in [(1, 2000), (2, 3000)] {
        let mut inputs =
            vec![CaptureFile::from_read_limits("a.pcap", io::Cursor::new(a.clone()), 4096, 1 << 20).unwrap()];
        if files == 2 {
            inputs
                .push(CaptureFile::from_read_limits("b.pcapng.gz", io::Cursor::new(gzip(&b)), 4096, 1 << 20).unwrap());
        }
        let mut r = PacketReader::new(inputs);
        // What a pipeline holds: the last 200 packets, by their block.
        let mut held = std::collections::VecDeque::new();
        let (mut seen, mut checked) = (0u32, 0u32);
        let check = |(block, at, i): (crate::packet::Block, usize, u32)| {
            let data = numbered(i);
            assert_eq!(block.bytes().get(at..at + data.len()), Some(&data[..]), "packet {i}");
        };
        while let Some((p, block)) = r.next_shared().unwrap() {
            // The packet's time says which it is (seconds, or microseconds
            // in the pcapng).
            let i = (p.ts.0 / 1_000_000_000) as u32;
            assert_eq!(p.data, &numbered(i)[..]);
            let block = block.expect("a file shares its buffer");
            let at = block.position(p.data).expect("the packet lies in its block");
            held.push_back((block.clone(), at, i));
            seen += 1;
            if held.len() > 200 {
                check(held.pop_front().unwrap());
                checked += 1;
            }
        }
        checked += held.len() as u32;
        held.into_iter().for_each(check);
        assert_eq!((seen, checked), (want, want));
    }

    // Held by no one, the buffer is written in place: one buffer for the
    // whole file.
    let mut r =
        PacketReader::new(vec![CaptureFile::from_read_limits("a.pcap", io::Cursor::new(a), 4096, 1 << 20).unwrap()]);
    let (mut buffers, mut packets) = (std::collections::BTreeSet::new(), 0);
    while let Some((_, Some(block))) = r.next_shared().unwrap() {
        buffers.insert(block.bytes().as_ptr() as usize);
        packets += 1;
    }
    assert_eq!((buffers.len(), packets), (1, 2000));
}
