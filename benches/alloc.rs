//! Allocations per packet and per transaction, stage by stage, counted by a
//! global allocator that wraps the system one.
//!
//! Run: `cargo bench --bench alloc` (reads `samples/shop.pcap` and the
//! shared corpus at `../shared/corpus` or `POV_CORPUS`; a file given as
//! the first argument after `--` is read instead). Prints one table: for
//! each capture and stage, allocations per packet, per transaction, and
//! bytes allocated per packet. The stages are cumulative, as in
//! `benches/capture.rs`.
// A GlobalAlloc can only be implemented unsafely (the repository's other
// unsafe code is listed in docs/SECURITY.md). It forwards every call to
// the system allocator unchanged and only counts.
#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[path = "stages.rs"]
mod stages;

/// Counts allocations (and reallocations) and the bytes they asked for.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments,
// so `System`'s guarantees hold unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let (a, b) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    let r = f();
    (r, ALLOCS.load(Ordering::Relaxed) - a, BYTES.load(Ordering::Relaxed) - b)
}

/// (allocations, bytes) of what `pov analyze`'s shards make of each
/// transaction once parsed (`AnalyzePrep`: the sessions' view of it and its
/// record with the customer columns), over the transactions of `bytes`.
fn prepare(bytes: &Arc<[u8]>, path: &Path) -> (u64, u64) {
    use pov::output::Format;
    use pov::transactions::{Customer, TxWriter};
    let txs = stages::http_transactions(bytes);
    let cfg = pov::config::PovConfig::default();
    let masker = pov_privacy::Masker::new(&cfg.privacy, true);
    let customer = Customer::new(&cfg, &[path.to_path_buf()]).unwrap_or_else(|e| panic!("{e}"));
    let sessions = customer.txs.clone();
    let writer = TxWriter::new(std::io::sink(), Format::Jsonl, masker).unwrap_or_else(|e| panic!("{e}"));
    let records = writer.with_customer(customer).preparer();
    // Once untimed (the classifier's regex caches fill), then counted.
    let run = || {
        for t in &txs {
            let tx = sessions.tx(t);
            std::hint::black_box(records.record_with(t, &tx));
            std::hint::black_box(tx);
        }
    };
    run();
    let ((), a, b) = counted(run);
    (a, b)
}

/// (stage, allocations, bytes) for each stage, and (packets, transactions).
fn stages(bytes: &Arc<[u8]>) -> (Vec<(&'static str, u64, u64)>, u64, u64) {
    let (packets, a, b) = counted(|| stages::read(bytes));
    let mut out = vec![("read", a, b)];
    let (_, a, b) = counted(|| stages::decode(bytes));
    out.push(("read+decode", a, b));
    let (_, a, b) = counted(|| stages::reassemble(bytes));
    out.push(("+reassemble", a, b));
    let (txs, a, b) = counted(|| stages::http(bytes));
    out.push(("+http", a, b));
    (out, packets, txs)
}

/// A page request `i` from `ip` with session cookie `cookie`, for `target`,
/// sent at `at` and answered `200` `answer_ns` later.
fn http_tx(
    i: u64,
    ip: std::net::Ipv4Addr,
    cookie: &str,
    target: &str,
    at: pov_capture::Ts,
    answer_ns: i64,
) -> pov_capture::http::HttpTransaction {
    use pov_capture::Ts;
    use pov_capture::http::{Headers, HttpTransaction, RequestHead, ResponseHead};
    let mut t = HttpTransaction::new(i + 1, (ip, 40000).into(), ([192, 0, 2, 1], 80).into(), 1);
    t.request = Some(RequestHead {
        method: "GET".into(),
        uri: target.as_bytes().to_vec(),
        version: Some(1),
        headers: Headers::from_pairs([
            (&b"Host"[..], &b"shop"[..]),
            (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"),
            (b"Cookie", cookie.as_bytes()),
        ]),
    });
    t.response = Some(ResponseHead {
        version: Some(1),
        status: 200,
        reason: b"OK".to_vec(),
        headers: Headers::from_pairs([(&b"Content-Type"[..], &b"text/html"[..])]),
    });
    t.timing.req_start = Some(at);
    t.timing.resp_end = Some(Ts(at.0 + answer_ns));
    t
}

/// A user stage with the default settings that writes no records.
fn user_stage() -> pov::users::UserStage<std::io::Sink> {
    let outputs = pov::users::Outputs::<std::io::Sink> { users: None, sessions: None, pages: None, failures: None };
    match pov::users::UserStage::new(&pov::config::PovConfig::default(), true, outputs) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// Bytes held, and charged to the memory budget, per transaction of a
/// session still open: one user asking for `n` pages a second apart (the
/// session never closes), after a warm-up.
fn per_open_tx(n: u64) -> (f64, f64) {
    let mut stage = user_stage();
    let budget = pov_capture::Budget::new(1 << 40);
    stage.set_budget(&budget);
    let ip = std::net::Ipv4Addr::new(10, 0, 0, 1);
    let cookie = "sid=0123456789abcdef0123456789abcdef";
    let tx = |i: u64| {
        let at = pov_capture::Ts(i as i64 * 1_000_000_000);
        http_tx(i, ip, cookie, &format!("/product/{i}?ref=home"), at, 1_000_000)
    };
    for i in 0..1000 {
        let _ = stage.transaction(&tx(i));
    }
    let (live, charged) = (LIVE.load(Ordering::Relaxed), budget.held(pov_capture::Holder::Sessions));
    for i in 1000..1000 + n {
        let _ = stage.transaction(&tx(i));
    }
    let held = (LIVE.load(Ordering::Relaxed) - live) as f64 / n as f64;
    let charge = (budget.held(pov_capture::Holder::Sessions) - charged) as f64 / n as f64;
    std::hint::black_box(&stage);
    (held, charge)
}

/// What the user stage holds per user seen once that user's sessions
/// closed: `users` users, one request each, each 3.6 s after the last
/// (the timestamps are nanoseconds: at any time the last half hour's
/// sessions, about 500, are still open; earlier comments said an hour
/// apart), their totals spilled past `max_held`. Bytes still allocated
/// per user at the end of the pass (before the users are written).
fn per_user(users: u64, max_held: usize) -> f64 {
    let mut stage = user_stage();
    stage.set_user_spill(&std::env::temp_dir(), max_held);
    let tx = |i: u64| {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32);
        http_tx(i, ip, &format!("sid={i:032x}"), "/", pov_capture::Ts(i as i64 * 3_600_000_000), 1000)
    };
    // Warm up (regex caches, maps' first growth), then measure.
    for i in 0..1000 {
        let _ = stage.transaction(&tx(i));
    }
    let before = LIVE.load(Ordering::Relaxed);
    for i in 1000..1000 + users {
        let _ = stage.transaction(&tx(i));
    }
    let after = LIVE.load(Ordering::Relaxed);
    std::hint::black_box(&stage);
    (after - before) as f64 / users as f64
}

fn main() {
    // The folder cargo names when it runs the bench (a binary reused from a
    // shared target folder by a checkout elsewhere reads this one's files).
    let root = &std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let corpus = std::env::var_os("POV_CORPUS").map(PathBuf::from).unwrap_or_else(|| root.join("../shared/corpus"));
    let given: Vec<PathBuf> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(PathBuf::from).collect();
    let files = if given.is_empty() {
        vec![
            root.join("samples/shop.pcap"),
            corpus.join("pcaps/zeek__1000-requests-one-dropped-response.pcap"),
            corpus.join("pcaps/ndpi__1kxun.pcap"),
        ]
    } else {
        given
    };
    println!(
        "| capture | packets | transactions | stage | allocations per packet | per transaction | bytes per packet |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|");
    let tables = std::env::args().skip(1).filter(|a| !a.starts_with('-')).count() == 0;
    for path in files {
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("{}: not found, skipped", path.display());
            continue;
        };
        let bytes: Arc<[u8]> = bytes.into();
        let (mut rows, packets, txs) = stages(&bytes);
        let (a, b) = prepare(&bytes, &path);
        rows.push(("prepare (alone)", a, b));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for (stage, a, b) in rows {
            let per = |n: u64, d: u64| if d == 0 { "-".to_string() } else { format!("{:.2}", n as f64 / d as f64) };
            println!(
                "| {name} | {packets} | {txs} | {stage} | {} | {} | {} |",
                per(a, packets),
                per(a, txs),
                per(b, packets)
            );
        }
    }
    if tables {
        println!();
        println!(
            "| users seen (sessions closed) | users held at most (`--max-users-held`) | bytes held per user | MiB held |"
        );
        println!("|---:|---:|---:|---:|");
        let rows = [
            (200_000, 1000),
            (200_000, pov::users::MAX_USERS_HELD),
            (1_000_000, pov::users::MAX_USERS_HELD),
            (200_000, usize::MAX),
        ];
        for (n, held) in rows {
            let held_text = if held == usize::MAX { "all".to_string() } else { held.to_string() };
            let per = per_user(n, held);
            println!("| {n} | {held_text} | {per:.0} | {:.1} |", per * n as f64 / (1 << 20) as f64);
        }
        // What a session still open holds per transaction against what the
        // memory budget is charged for it (which also counts the page and
        // failure records its closing will make).
        println!();
        println!("| transactions of one open session | bytes held per transaction | bytes charged per transaction |");
        println!("|---:|---:|---:|");
        for n in [10_000, 50_000] {
            let (held, charged) = per_open_tx(n);
            println!("| {n} | {held:.0} | {charged:.0} |");
        }
    }
}
