//! Throughput of the capture layer (read; read and decode; read, decode
//! and reassemble; and HTTP on top) on real captures held in memory, with criterion's
//! `Throughput::Bytes` of the capture file.
//!
//! Run: `cargo bench --bench capture` (uses the shared corpus at
//! `../shared/corpus` or `POV_CORPUS`).
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "stages.rs"]
mod stages;

fn corpus() -> PathBuf {
    // Beside the folder cargo names when it runs the bench (a binary reused
    // from a shared target folder by a checkout elsewhere reads this one's).
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    std::env::var_os("POV_CORPUS").map_or_else(|| root.join("../shared/corpus"), PathBuf::from)
}

fn bench_file(c: &mut Criterion, name: &str) {
    let path = corpus().join("pcaps").join(name);
    let bytes: Arc<[u8]> = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("read", |b| b.iter(|| black_box(stages::read(&bytes))));
    g.bench_function("read+decode", |b| b.iter(|| black_box(stages::decode(&bytes))));
    g.bench_function("read+decode+reassemble", |b| b.iter(|| black_box(stages::reassemble(&bytes))));
    g.bench_function("read+decode+reassemble+http", |b| b.iter(|| black_box(stages::http(&bytes))));
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_file(c, "ndpi__1kxun.pcap");
    bench_file(c, "zeek__1000-requests-one-dropped-response.pcap");
}

criterion_group!(capture, benches);
criterion_main!(capture);
