//! Whole transactions kept on disk while a run reads its input, so that
//! replays chosen at the end (the most affected users, known only once
//! every session is classified) need no second pass over the captures.
//!
//! Each shard of [`crate::parallel::run`] appends the transactions it
//! finishes to a file of its own, on its own thread, through the HTTP
//! layer's tap ([`pov_capture::http::HttpAnalyzer::set_tap`]): bodies of
//! every media type up to the keep cap, so a replay shows images and style
//! sheets; then the transaction goes on as without a store (the bodies no
//! failure rule reads are dropped). At the end [`TxStore::read`] scans the
//! parts' indexes (each record's header and where it is, 48 bytes a
//! record: a few MB where the records are hundreds), reads the wanted
//! records only, and decodes them in request order. The files are removed
//! when the store is dropped.
//!
//! A record is a 40-byte header (payload length `u32`, raw body bytes that
//! follow `u32`, connection `u64`, depth `u32`, request start `i64`, where
//! its response body is `u64` and its length `u32`, little-endian), the
//! transaction without its response body in [`pov_capture::http::codec`]
//! form, and the response body if no earlier record holds the same one
//! (bodies of 1 KiB and more are matched by hash and length). Disk use is
//! about the distinct HTTP bytes kept (heads, and bodies up to the keep
//! cap). The index of a part is a file beside it (`.idx`): each record's
//! header followed by its offset in the part (`u64`).

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pov_capture::http::{HttpTransaction, Tap, codec};
use pov_capture::{FastSet, Ts};

use crate::replay::TxKey;

const HEADER: usize = 40;

/// An index entry: a record's header and its offset.
const ENTRY: usize = HEADER + 8;

/// Response bodies from this size on are stored once per content.
const DEDUP_MIN_BYTES: usize = 1024;

/// Bodies each part remembers for that (a 24-byte map slot each, key and
/// offset): the first ones seen, which on a site are its common images,
/// scripts and styles.
const DEDUP_ENTRIES: usize = 16_384;

/// Where a wanted record is: its order key (start, connection, depth), its
/// part, offset and length, and where its response body is (offset and
/// length; 0 for none).
type Found = ((Ts, u64, u32), usize, u64, usize, u64, u32);

/// The store of one run: a folder and a file per shard.
#[derive(Clone, Debug)]
pub struct TxStore(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Most bytes stored in all; each part gets its share.
    max_bytes: u64,
    parts: Mutex<Vec<Arc<Mutex<Part>>>>,
}

/// Bytes a store holds at most by default (`--max-store-bytes`): beyond,
/// transactions are stored without their bodies.
pub const MAX_STORE_BYTES: u64 = 4 << 30;

/// One shard's file.
#[derive(Debug)]
struct Part {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// The index beside the part (see the module's documentation).
    index_path: PathBuf,
    index: Option<BufWriter<File>>,
    buf: Vec<u8>,
    error: Option<io::Error>,
    records: u64,
    bytes: u64,
    /// This part's share of the store's cap.
    max_bytes: u64,
    /// Transactions stored without their bodies, over the cap.
    bodies_left_out: u64,
    /// Response bodies stored, by (hash, length), to where they are.
    bodies: pov_capture::FastMap<(u64, u32), u64>,
}

impl Part {
    fn write(&mut self, tx: &mut HttpTransaction) {
        if self.error.is_some() || self.out.is_none() {
            return;
        }
        // The response body goes after the record, once per content: the
        // same style sheet or image fetched by every visitor is stored
        // once, and later records point at it.
        let body = std::mem::take(&mut tx.response_body.kept);
        let request = tx.request_body.kept.len() as u64;
        // foldhash, seeded for the run (SipHash took 3,500 instructions a
        // stored body on a request-heavy night).
        let known = (body.len() >= DEDUP_MIN_BYTES && tx.shared_asset())
            .then(|| (std::hash::BuildHasher::hash_one(self.bodies.hasher(), body.as_slice()), body.len() as u32));
        let earlier = known.and_then(|k| self.bodies.get(&k).copied());
        let new_bytes = request + if earlier.is_some() { 0 } else { body.len() as u64 };
        let over = new_bytes > 0 && self.bytes + new_bytes > self.max_bytes;
        self.buf.clear();
        self.buf.resize(HEADER, 0);
        let request_body = if over { std::mem::take(&mut tx.request_body.kept) } else { Vec::new() };
        codec::encode(tx, &mut self.buf);
        if over {
            tx.request_body.kept = request_body;
            self.bodies_left_out += 1;
        }
        let payload = self.buf.len() - HEADER;
        let (body_at, raw) = match (over, earlier) {
            (true, _) => (0, 0),
            (false, Some(at)) => (at, 0),
            (false, None) if body.is_empty() => (0, 0),
            (false, None) => {
                let at = self.bytes + self.buf.len() as u64;
                if let Some(k) = known
                    && self.bodies.len() < DEDUP_ENTRIES
                {
                    self.bodies.insert(k, at);
                }
                (at, body.len())
            }
        };
        let body_len = if over { 0 } else { body.len() as u32 };
        let mut head = [0u8; HEADER];
        head[..4].copy_from_slice(&(payload as u32).to_le_bytes());
        head[4..8].copy_from_slice(&(raw as u32).to_le_bytes());
        head[8..16].copy_from_slice(&tx.conn.to_le_bytes());
        head[16..20].copy_from_slice(&tx.depth.to_le_bytes());
        head[20..28].copy_from_slice(&tx.timing.start().0.to_le_bytes());
        head[28..36].copy_from_slice(&body_at.to_le_bytes());
        head[36..40].copy_from_slice(&body_len.to_le_bytes());
        self.buf[..HEADER].copy_from_slice(&head);
        if raw > 0 {
            self.buf.extend_from_slice(&body);
        }
        tx.response_body.kept = body;
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.write_all(&self.buf)
        {
            self.error = Some(named(e, &self.path));
            self.out = None;
            return;
        }
        let mut entry = [0u8; ENTRY];
        entry[..HEADER].copy_from_slice(&head);
        entry[HEADER..].copy_from_slice(&self.bytes.to_le_bytes());
        if let Some(index) = self.index.as_mut()
            && let Err(e) = index.write_all(&entry)
        {
            self.error = Some(named(e, &self.index_path));
            self.out = None;
            return;
        }
        self.records += 1;
        self.bytes += self.buf.len() as u64;
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(out) = self.out.as_mut() {
            out.flush().map_err(|e| named(e, &self.path))?;
        }
        if let Some(index) = self.index.as_mut() {
            index.flush().map_err(|e| named(e, &self.index_path))?;
        }
        Ok(())
    }
}

fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Drop for Inner {
    fn drop(&mut self) {
        let parts = self.parts.get_mut().map(std::mem::take).unwrap_or_default();
        for p in parts {
            if let Ok(mut p) = p.lock() {
                p.out = None;
                p.index = None;
                let _ = fs::remove_file(&p.path);
                let _ = fs::remove_file(&p.index_path);
            }
        }
    }
}

/// What reading the store found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Transactions stored.
    pub records: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Transactions read back.
    pub read: u64,
    /// Transactions stored without their bodies, over `--max-store-bytes`.
    pub bodies_left_out: u64,
}

impl TxStore {
    /// A store whose files go into `dir` (as `.pov-store-PID-N`), of at
    /// most [`MAX_STORE_BYTES`].
    pub fn new(dir: &Path) -> TxStore {
        TxStore::with_cap(dir, MAX_STORE_BYTES)
    }

    /// A store of at most about `max_bytes`, shared out evenly to the
    /// parts (so what is left out depends on the capture only, not on the
    /// threads).
    pub fn with_cap(dir: &Path, max_bytes: u64) -> TxStore {
        TxStore(Arc::new(Inner { dir: dir.to_path_buf(), max_bytes, parts: Mutex::new(Vec::new()) }))
    }

    /// A tap for one of `parts` shards' HTTP layer: stores each
    /// transaction as it finishes, then drops the bodies no failure rule
    /// reads (see [`pov_capture::http::HttpConfig::keep_every_body`]). A
    /// write error stops the storing and comes back from
    /// [`TxStore::read`].
    pub fn tap(&self, parts_in_all: usize) -> Tap {
        let max_bytes = self.0.max_bytes / parts_in_all.max(1) as u64;
        let mut parts = self.0.parts.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.0.dir.join(format!(".pov-store-{}-{}", std::process::id(), parts.len()));
        let index_path = path.with_extension("idx");
        let (out, index, error) = match (File::create(&path), File::create(&index_path)) {
            // One part per shard: 128 KiB each writes in large enough
            // pieces (1 MiB each was 16 MiB held for nothing); its index
            // is some 20 times smaller.
            (Ok(f), Ok(i)) => {
                (Some(BufWriter::with_capacity(128 << 10, f)), Some(BufWriter::with_capacity(8 << 10, i)), None)
            }
            (Err(e), _) => (None, None, Some(named(e, &path))),
            (_, Err(e)) => (None, None, Some(named(e, &index_path))),
        };
        let part = Arc::new(Mutex::new(Part {
            path,
            out,
            index_path,
            index,
            buf: Vec::new(),
            error,
            records: 0,
            bytes: 0,
            max_bytes,
            bodies_left_out: 0,
            bodies: pov_capture::FastMap::default(),
        }));
        parts.push(Arc::clone(&part));
        Box::new(move |tx: &mut HttpTransaction| {
            if let Ok(mut p) = part.lock() {
                p.write(tx);
            }
            tx.drop_unread_bodies();
        })
    }

    /// The stored transactions whose keys are in `wanted`, handed to `f` in
    /// order of (request start, connection, depth); the first error of the
    /// store's writing or reading.
    pub fn read(&self, wanted: &FastSet<TxKey>, mut f: impl FnMut(HttpTransaction)) -> io::Result<StoreStats> {
        let parts: Vec<Arc<Mutex<Part>>> = self.0.parts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut stats = StoreStats::default();
        let mut found: Vec<Found> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let mut p = part.lock().unwrap_or_else(|e| e.into_inner());
            p.flush()?;
            stats.records += p.records;
            stats.bytes += p.bytes;
            stats.bodies_left_out += p.bodies_left_out;
            if p.records == 0 || wanted.is_empty() {
                continue;
            }
            let mut r = BufReader::new(File::open(&p.index_path).map_err(|e| named(e, &p.index_path))?);
            let mut entry = [0u8; ENTRY];
            for _ in 0..p.records {
                r.read_exact(&mut entry).map_err(|e| named(e, &p.index_path))?;
                let word = |a: usize, b: usize| entry.get(a..b).unwrap_or_default();
                let u32_at = |a: usize| u32::from_le_bytes(word(a, a + 4).try_into().unwrap_or_default());
                let u64_at = |a: usize| u64::from_le_bytes(word(a, a + 8).try_into().unwrap_or_default());
                let len = u32_at(0) as usize;
                let (conn, depth, start) = (u64_at(8), u32_at(16), u64_at(20) as i64);
                let (body_at, body_len, at) = (u64_at(28), u32_at(36), u64_at(HEADER));
                if wanted.contains(&(conn, depth)) {
                    found.push(((Ts(start), conn, depth), i, at + HEADER as u64, len, body_at, body_len));
                }
            }
        }
        found.sort_unstable_by_key(|(k, ..)| *k);
        let mut files: Vec<Option<File>> = parts.iter().map(|_| None).collect();
        let mut buf = Vec::new();
        for (_, i, offset, len, body_at, body_len) in found {
            let (Some(part), Some(slot)) = (parts.get(i), files.get_mut(i)) else { continue };
            let path = part.lock().unwrap_or_else(|e| e.into_inner()).path.clone();
            let file = match slot {
                Some(f) => f,
                None => slot.insert(File::open(&path).map_err(|e| named(e, &path))?),
            };
            buf.resize(len, 0);
            file.seek(SeekFrom::Start(offset)).map_err(|e| named(e, &path))?;
            file.read_exact(&mut buf).map_err(|e| named(e, &path))?;
            let mut tx =
                codec::decode(&buf).map_err(|e| named(io::Error::new(io::ErrorKind::InvalidData, e), &path))?;
            if body_len > 0 {
                let mut body = vec![0u8; body_len as usize];
                file.seek(SeekFrom::Start(body_at)).map_err(|e| named(e, &path))?;
                file.read_exact(&mut body).map_err(|e| named(e, &path))?;
                tx.response_body.kept = body;
            }
            stats.read += 1;
            f(tx);
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pov_capture::http::{BodyInfo, Headers, ResponseHead};

    fn tx(conn: u64, depth: u32, start: i64, ct: &str) -> HttpTransaction {
        let mut t = HttpTransaction::new(
            conn,
            "10.0.0.1:1".parse().expect("addr"),
            "10.0.0.2:80".parse().expect("addr"),
            depth,
        );
        t.timing.req_start = Some(Ts(start));
        t.response = Some(ResponseHead {
            version: Some(1),
            status: 200,
            reason: b"OK".to_vec(),
            headers: Headers::from_pairs([(&b"Content-Type"[..], ct.as_bytes())]),
        });
        t.response_body = BodyInfo::plain(format!("body of {conn}/{depth}").into_bytes());
        t
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pov-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn wanted_transactions_come_back_whole_in_request_order() {
        let d = temp_dir("order");
        let store = TxStore::new(&d);
        let mut taps = [store.tap(2), store.tap(2)];
        let mut handed_on = Vec::new();
        // Two shards, each in its own order of finishing.
        for (shard, t) in [
            (0, tx(1, 1, 50, "image/png")),
            (1, tx(2, 1, 10, "text/html")),
            (0, tx(1, 2, 30, "text/css")),
            (1, tx(2, 2, 40, "application/json")),
            (0, tx(3, 1, 20, "text/html")),
        ] {
            let mut t = t;
            taps[shard](&mut t);
            handed_on.push(t);
        }
        // What goes on keeps only the bodies a failure rule reads.
        let kept: Vec<bool> = handed_on.iter().map(|t| !t.response_body.kept.is_empty()).collect();
        assert_eq!(kept, [false, true, false, true, true]);
        let wanted: FastSet<TxKey> = [(1, 1), (2, 2), (1, 2), (9, 9)].into_iter().collect();
        let mut got = Vec::new();
        let stats = store.read(&wanted, |t| got.push(t)).expect("read");
        assert_eq!((stats.records, stats.read), (5, 3));
        let keys: Vec<(u64, u32)> = got.iter().map(|t| (t.conn, t.depth)).collect();
        assert_eq!(keys, [(1, 2), (2, 2), (1, 1)], "by request start");
        // Whole: the image's body too.
        assert_eq!(got[2].response_body.kept, b"body of 1/1");
        assert_eq!(format!("{:?}", got[1]), format!("{:?}", tx(2, 2, 40, "application/json")));
        // A part per shard and its index.
        let mut files: Vec<String> = fs::read_dir(&d)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let pid = std::process::id();
        assert_eq!(
            files,
            [
                format!(".pov-store-{pid}-0"),
                format!(".pov-store-{pid}-0.idx"),
                format!(".pov-store-{pid}-1"),
                format!(".pov-store-{pid}-1.idx")
            ]
        );
        drop(taps);
        drop(store);
        assert_eq!(fs::read_dir(&d).expect("dir").count(), 0, "the store's files are removed with it");
        fs::remove_dir_all(&d).expect("clean up");
    }

    #[test]
    fn a_store_that_cannot_be_written_says_where() {
        let d = temp_dir("missing").join("gone");
        let store = TxStore::new(&d);
        let mut tap = store.tap(1);
        let mut t = tx(1, 1, 1, "text/html");
        tap(&mut t);
        // The transaction goes on all the same.
        assert_eq!(t.response_body.kept, b"body of 1/1");
        let e = store.read(&[(1, 1)].into_iter().collect(), |_| {}).expect_err("no folder");
        assert!(e.to_string().contains(&d.display().to_string()), "{e}");
    }

    #[test]
    fn over_its_cap_the_store_keeps_heads_and_times_and_counts_the_rest() {
        let d = temp_dir("cap");
        // 100 bytes for each of two parts: the first body fits, later ones
        // do not.
        let store = TxStore::with_cap(&d, 200);
        let mut taps = [store.tap(2), store.tap(2)];
        for i in 0..6u32 {
            let mut t = tx(u64::from(i % 2) + 1, i, i64::from(i), "text/html");
            t.response_body = BodyInfo::plain(vec![b'a'; 60]);
            taps[(i % 2) as usize](&mut t);
            // What goes on is whole either way.
            assert_eq!(t.response_body.kept.len(), 60);
        }
        let wanted: FastSet<TxKey> = (0..6u32).map(|i| (u64::from(i % 2) + 1, i)).collect();
        let mut got = Vec::new();
        let stats = store.read(&wanted, |t| got.push(t)).expect("read");
        assert_eq!((stats.records, stats.read, stats.bodies_left_out), (6, 6, 4));
        let bodies: Vec<usize> = got.iter().map(|t| t.response_body.kept.len()).collect();
        assert_eq!(bodies, [60, 60, 0, 0, 0, 0], "each part's first body");
        assert!(got.iter().all(|t| t.response.as_ref().is_some_and(|r| r.status == 200)), "heads kept");
        assert_eq!(got.iter().map(|t| t.response_body.decoded_len).collect::<Vec<_>>(), [60; 6], "sizes kept");
        drop(taps);
        drop(store);
        fs::remove_dir_all(&d).expect("clean up");
    }

    #[test]
    fn a_body_fetched_again_is_stored_once_and_read_back_whole() {
        let d = temp_dir("dedup");
        let store = TxStore::new(&d);
        let mut tap = store.tap(1);
        let logo: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let other: Vec<u8> = logo.iter().map(|b| b ^ 1).collect();
        for (i, body) in [&logo, &other, &logo, &logo].into_iter().enumerate() {
            let mut t = tx(i as u64 + 1, 1, i as i64, "image/png");
            t.response_body = BodyInfo::plain(body.clone());
            tap(&mut t);
        }
        let wanted: FastSet<TxKey> = (1..=4).map(|c| (c, 1)).collect();
        let mut got = Vec::new();
        let stats = store.read(&wanted, |t| got.push(t)).expect("read");
        assert_eq!(stats.read, 4);
        // Two bodies of 5,000 bytes stored, not four.
        assert!(stats.bytes < 2 * 5000 + 4 * 400, "{} bytes stored", stats.bytes);
        let bodies: Vec<&Vec<u8>> = got.iter().map(|t| &t.response_body.kept).collect();
        assert_eq!(bodies, [&logo, &other, &logo, &logo]);
        drop(tap);
        drop(store);
        // A page is the visitor's own: the same bytes twice are stored
        // twice (only shared assets are remembered).
        let store = TxStore::new(&d);
        let mut tap = store.tap(1);
        for c in 1..=2 {
            let mut t = tx(c, 1, c as i64, "text/html");
            t.response_body = BodyInfo::plain(logo.clone());
            tap(&mut t);
        }
        let stats = store
            .read(&[(1, 1), (2, 1)].into_iter().collect(), |t| assert_eq!(t.response_body.kept, logo))
            .expect("read");
        assert!(stats.bytes > 2 * 5000, "{} bytes stored", stats.bytes);
        drop(tap);
        drop(store);
        fs::remove_dir_all(&d).expect("clean up");
    }
}
