//! The capture layer's stages over a capture held in memory, shared by the
//! benchmarks (`capture.rs` times them, `alloc.rs` counts their
//! allocations). Each returns a figure of its work, so that it cannot be
//! optimised away.

use std::io::Cursor;
use std::sync::Arc;

use pov_capture::decode::{DecodeConfig, Decoder};
use pov_capture::http::{HttpAnalyzer, HttpConfig, HttpTransaction};
use pov_capture::pcap::CaptureFile;
use pov_capture::tcp::{DataChunk, Reassembler, StreamSink, TcpConfig};

/// Counts delivered bytes.
#[derive(Default)]
pub struct Count(pub u64);

impl StreamSink for Count {
    fn on_data(&mut self, c: &DataChunk<'_>) {
        self.0 += c.bytes.len() as u64;
    }
}

/// The capture over shared in-memory bytes (no copy, so no allocation of
/// its size, per run).
pub fn open(bytes: &Arc<[u8]>) -> CaptureFile {
    match CaptureFile::from_read("bench", Cursor::new(Arc::clone(bytes))) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

/// Reads every packet: their count.
pub fn read(bytes: &Arc<[u8]>) -> u64 {
    let mut f = open(bytes);
    let mut n = 0u64;
    while let Ok(Some(_)) = f.next_packet() {
        n += 1;
    }
    n
}

/// Reads and decodes: the TCP payload bytes.
pub fn decode(bytes: &Arc<[u8]>) -> u64 {
    let mut f = open(bytes);
    let mut d = Decoder::new(DecodeConfig::default());
    let mut n = 0u64;
    while let Ok(Some(p)) = f.next_packet() {
        if let Some(s) = d.decode(&p) {
            n += s.payload.len() as u64;
        }
    }
    n
}

/// Reads, decodes and reassembles: the stream bytes delivered.
pub fn reassemble(bytes: &Arc<[u8]>) -> u64 {
    let mut f = open(bytes);
    let mut d = Decoder::new(DecodeConfig::default());
    let mut r = Reassembler::new(TcpConfig::default());
    let mut sink = Count::default();
    while let Ok(Some(p)) = f.next_packet() {
        if let Some(s) = d.decode(&p) {
            r.process(&s, &mut sink);
        }
    }
    r.finish(&mut sink);
    sink.0
}

/// Reads, decodes, reassembles and parses HTTP: the transactions.
pub fn http(bytes: &Arc<[u8]>) -> u64 {
    http_transactions(bytes).len() as u64
}

/// The transactions of a capture, in order.
pub fn http_transactions(bytes: &Arc<[u8]>) -> Vec<HttpTransaction> {
    let mut f = open(bytes);
    let mut d = Decoder::new(DecodeConfig::default());
    let mut r = Reassembler::new(TcpConfig::default());
    let mut http = HttpAnalyzer::new(HttpConfig::default(), Vec::<HttpTransaction>::new());
    while let Ok(Some(p)) = f.next_packet() {
        if let Some(s) = d.decode(&p) {
            r.process(&s, &mut http);
        }
    }
    r.finish(&mut http);
    http.finish().0
}
