//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the one `cargo test` names when it starts the
/// test, so that a test binary reused from a shared target folder by a
/// moved checkout reads this checkout's files).
pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
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

/// pov's failure kind for an answer-key kind: the key's `not_found` is a
/// `client_error`, and its `soft_error` (an API call answered 200 whose
/// body says it failed) an `error_page` (rule `api_error:NAME`).
pub fn pov_kind(key_kind: &str) -> &str {
    match key_kind {
        "not_found" => "client_error",
        "soft_error" => "error_page",
        other => other,
    }
}

/// Runs `pov synth` with `args`, writing the capture to `pcap` and the
/// answer key to `key`.
pub fn synth(args: &[&str], pcap: &Path, key: &Path) {
    let mut all = vec!["synth"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(pcap), "--truth", s(key)]);
    pov_ok(&all);
}

/// Whether a tool is on this machine; under CI (which installs it) a
/// missing tool is a failure, not a skip.
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found || std::env::var_os("CI").is_none(), "{tool} is not installed (.ci/run installs it)");
    if !found {
        eprintln!("{tool} not installed: skipping (CI installs it)");
    }
    found
}

/// Opens `page` in headless Chromium (tests/in_chromium.sh) at `size`
/// ("W,H"): returns the console messages, the DOM after the page's scripts
/// ran, and the screenshot.
pub fn in_chromium(page: &Path, out: &Path, size: &str) -> (Vec<String>, String, Vec<u8>) {
    let run = Command::new("sh")
        .arg(root().join("tests/in_chromium.sh"))
        .arg(page)
        .arg(out)
        .arg(size)
        .output()
        .expect("run the chromium script");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let log = std::fs::read_to_string(out.join("console.log")).expect("console.log");
    let console = log.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    let dom = std::fs::read_to_string(out.join("dom.html")).expect("dom.html");
    let png = std::fs::read(out.join("shot.png")).expect("shot.png");
    (console, dom, png)
}

/// An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) decoded
/// to (width, height, RGBA bytes).
pub fn png_rgba(png: &[u8]) -> (usize, usize, Vec<u8>) {
    use std::io::Read;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut w, mut h, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    let mut i = 8;
    while i + 8 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        let kind = &png[i + 4..i + 8];
        let data = &png[i + 8..i + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    c => panic!("colour type {c}"),
                };
                assert_eq!(data[12], 0, "interlaced");
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).expect("inflate");
    let stride = w * channels;
    let mut px = vec![0u8; stride * h];
    for y in 0..h {
        let f = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels { px[y * stride + x - channels] } else { 0 };
            let b = if y > 0 { px[(y - 1) * stride + x] } else { 0 };
            let c = if y > 0 && x >= channels { px[(y - 1) * stride + x - channels] } else { 0 };
            let pred = match f {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            px[y * stride + x] = line[x].wrapping_add(pred);
        }
    }
    let rgba = if channels == 4 { px } else { px.chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect() };
    (w, h, rgba)
}

/// The few character references Chromium writes in attribute values.
pub fn unescape_attr(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}
