//! Throughput of the capture layer (read; read and decode; read, decode
//! and reassemble; and HTTP on top) on real captures held in memory, with criterion's
//! `Throughput::Bytes` of the capture file.
//!
//! Run: `cargo bench --bench capture` (uses the shared corpus at
//! `../shared/corpus` or `POV_CORPUS`).
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pov_capture::decode::{DecodeConfig, Decoder};
use pov_capture::http::{HttpAnalyzer, HttpConfig, HttpTransaction};
use pov_capture::pcap::CaptureFile;
use pov_capture::tcp::{DataChunk, Reassembler, StreamSink, TcpConfig};

fn corpus() -> PathBuf {
    std::env::var_os("POV_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

/// Counts delivered bytes so the work cannot be optimised away.
#[derive(Default)]
struct Count(u64);

impl StreamSink for Count {
    fn on_data(&mut self, c: &DataChunk<'_>) {
        self.0 += c.bytes.len() as u64;
    }
}

/// The capture over shared in-memory bytes (no copy per iteration).
fn open(bytes: &Arc<[u8]>) -> CaptureFile {
    match CaptureFile::from_read("bench", Cursor::new(Arc::clone(bytes))) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

fn bench_file(c: &mut Criterion, name: &str) {
    let path = corpus().join("pcaps").join(name);
    let bytes: Arc<[u8]> = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("read", |b| {
        b.iter(|| {
            let mut f = open(&bytes);
            let mut n = 0u64;
            while let Ok(Some(p)) = f.next_packet() {
                n += p.data.len() as u64;
            }
            black_box(n)
        })
    });
    g.bench_function("read+decode", |b| {
        b.iter(|| {
            let mut f = open(&bytes);
            let mut d = Decoder::new(DecodeConfig::default());
            let mut n = 0u64;
            while let Ok(Some(p)) = f.next_packet() {
                if let Some(s) = d.decode(&p) {
                    n += s.payload.len() as u64;
                }
            }
            black_box(n)
        })
    });
    g.bench_function("read+decode+reassemble", |b| {
        b.iter(|| {
            let mut f = open(&bytes);
            let mut d = Decoder::new(DecodeConfig::default());
            let mut r = Reassembler::new(TcpConfig::default());
            let mut sink = Count::default();
            while let Ok(Some(p)) = f.next_packet() {
                if let Some(s) = d.decode(&p) {
                    r.process(&s, &mut sink);
                }
            }
            r.finish(&mut sink);
            black_box(sink.0)
        })
    });
    g.bench_function("read+decode+reassemble+http", |b| {
        b.iter(|| {
            let mut f = open(&bytes);
            let mut d = Decoder::new(DecodeConfig::default());
            let mut r = Reassembler::new(TcpConfig::default());
            let mut http = HttpAnalyzer::new(HttpConfig::default(), Vec::<HttpTransaction>::new());
            while let Ok(Some(p)) = f.next_packet() {
                if let Some(s) = d.decode(&p) {
                    r.process(&s, &mut http);
                }
            }
            r.finish(&mut http);
            black_box(http.finish().0.len())
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_file(c, "ndpi__1kxun.pcap");
    bench_file(c, "zeek__1000-requests-one-dropped-response.pcap");
}

criterion_group!(capture, benches);
criterion_main!(capture);
