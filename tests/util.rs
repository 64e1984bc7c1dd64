//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared capture corpus. Panics with a clear message if it is missing:
/// these tests must not pass by skipping.
pub fn corpus() -> PathBuf {
    let p = match std::env::var_os("POV_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => root().join("../shared/corpus"),
    };
    assert!(p.join("pcaps").is_dir(), "the shared corpus is not at {} (set POV_CORPUS)", p.display());
    p
}

/// Path of one corpus capture.
pub fn corpus_pcap(name: &str) -> PathBuf {
    corpus().join("pcaps").join(name)
}

/// Every capture in the corpus, sorted by name.
pub fn corpus_pcaps() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(corpus().join("pcaps")).expect("read corpus").map(|e| e.expect("dir entry").path()).collect();
    v.sort();
    v
}

/// Runs the `pov` binary with `args`.
pub fn pov(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pov")).args(args).output().expect("run pov")
}

/// Runs `pov` and returns stdout, asserting exit code 0.
pub fn pov_ok(args: &[&str]) -> String {
    let out = pov(args);
    assert!(
        out.status.success(),
        "pov {args:?} failed with {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after the test.
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("pov-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `path` as a `&str` (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Builds a little-endian, microsecond pcap file in memory.
pub struct PcapBuilder {
    bytes: Vec<u8>,
}

impl PcapBuilder {
    /// An empty capture of the given link type and snapshot length.
    pub fn new(linktype: u32, snaplen: u32) -> PcapBuilder {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&snaplen.to_le_bytes());
        bytes.extend_from_slice(&linktype.to_le_bytes());
        PcapBuilder { bytes }
    }

    /// Appends a frame captured at `ts_us` microseconds since the epoch,
    /// keeping at most `caplen` bytes of it.
    pub fn frame(&mut self, ts_us: u64, data: &[u8], caplen: usize) -> &mut PcapBuilder {
        let cap = data.len().min(caplen);
        self.bytes.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        self.bytes.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        self.bytes.extend_from_slice(&(cap as u32).to_le_bytes());
        self.bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&data[..cap]);
        self
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Splits a little-endian microsecond pcap file into its header and records
/// (each record with its 16-byte header).
pub fn pcap_records(file: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    assert_eq!(&file[..4], &0xa1b2_c3d4u32.to_le_bytes(), "a LE microsecond pcap");
    let header = file[..24].to_vec();
    let mut recs = Vec::new();
    let mut at = 24;
    while at + 16 <= file.len() {
        let caplen = u32::from_le_bytes(file[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        recs.push(file[at..at + 16 + caplen].to_vec());
        at += 16 + caplen;
    }
    assert_eq!(at, file.len());
    (header, recs)
}

/// Runs `pov synth` with `args`, writing the capture to `pcap` and the
/// answer key to `key`.
pub fn synth(args: &[&str], pcap: &Path, key: &Path) {
    let mut all = vec!["synth"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(pcap), "--truth", s(key)]);
    pov_ok(&all);
}
