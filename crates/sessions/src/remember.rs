//! What the sessionizer remembers of every user for the rest of the run
//! (session counts, the user of each address, persistent cookies, sign-in
//! names, replaced session cookies), in bounded memory.
//!
//! A [`SpillMap`] keeps its most recently used entries in a hash map. When
//! that map holds more than its cap, the older half (by the time each
//! entry was last used) is written to a sorted run on disk, so memory
//! grows with the users active lately, not with the night's users. What
//! stays in memory per entry on disk is about 1.3 bytes: a Bloom filter
//! of 10 bits per entry (about 1 % false positives) and the first key of
//! each 4 KiB block. A lookup the memory map misses asks each run's filter,
//! and reads one block of a run whose filter says it may hold the key.
//! Runs are merged two at a time when the newer one has grown to half the
//! size of the one before (like a binary counter), so there are about
//! log2(entries on disk / cap) of them and each entry is rewritten as
//! often.
//!
//! Answers are exact: a key found in memory is the newest value; else the
//! newest run holding it has it (entries are compared whole, so two keys
//! of one hash stay apart). If the disk fails, the map stops spilling and
//! keeps everything in memory from then on (counted).

use std::fs::File;
use std::hash::{BuildHasher, Hash};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use pov_capture::{FastMap, Ts};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes of a run read at once for a lookup (records never straddle two).
const BLOCK: usize = 4096;
/// Bloom filter bits per entry on disk.
const BLOOM_BITS: usize = 10;
/// Bloom filter probes per key (the best for 10 bits an entry).
const PROBES: u64 = 7;

/// The hash runs are sorted by: SipHash with fixed keys, the same in
/// every run and every process.
fn disk_hash<K: Hash>(k: &K) -> u64 {
    std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(k)
}

/// Counters of a [`SpillMap`], or of several added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RememberStats {
    /// Entries written to disk (an entry written, used again and written
    /// again counts twice).
    pub written: u64,
    /// Lookups that read a block from disk.
    pub disk_reads: u64,
    /// Runs on disk now.
    pub runs: u64,
    /// Disk errors (after the first, nothing more is written: everything
    /// stays in memory).
    pub errors: u64,
}

impl RememberStats {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &RememberStats) {
        self.written += o.written;
        self.disk_reads += o.disk_reads;
        self.runs += o.runs;
        self.errors += o.errors;
    }
}

/// A sorted run of entries on disk: records `hash (u64 LE), length (u32
/// LE), postcard of (key, value)`, in order of hash.
struct Run {
    path: PathBuf,
    file: File,
    len: u64,
    entries: u64,
    /// The Bloom filter's bits.
    bloom: Vec<u64>,
    /// Each block's first hash and offset.
    index: Vec<(u64, u64)>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The `i`-th probe of the Bloom filter for hash `h` (double hashing).
fn probe(h: u64, i: u64, bits: u64) -> u64 {
    let h2 = (h.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15) | 1;
    h.wrapping_add(i.wrapping_mul(h2)) % bits
}

/// Reads `buf.len()` bytes at `at`.
#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, at)
}

/// Reads `buf.len()` bytes at `at`.
#[cfg(windows)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = std::os::windows::fs::FileExt::seek_read(f, &mut buf[done..], at + done as u64)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        done += n;
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `at`.
#[cfg(not(any(unix, windows)))]
fn read_at(_: &File, _: &mut [u8], _: u64) -> io::Result<()> {
    Err(io::Error::other("reading at an offset is not supported here"))
}

/// Builds a run from records in order of hash.
struct RunWriter {
    path: PathBuf,
    out: BufWriter<File>,
    at: u64,
    entries: u64,
    hashes: Vec<u64>,
    index: Vec<(u64, u64)>,
    block_start: u64,
}

impl RunWriter {
    fn create(dir: &Path) -> io::Result<RunWriter> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".pov-remember-{}-{n}", std::process::id()));
        let out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
        Ok(RunWriter { path, out, at: 0, entries: 0, hashes: Vec::new(), index: Vec::new(), block_start: 0 })
    }

    fn push(&mut self, h: u64, rec: &[u8]) -> io::Result<()> {
        let size = 12 + rec.len() as u64;
        // A new block when this record would cross the block's end (a
        // record larger than a block has one of its own).
        if self.index.is_empty() || self.at + size > self.block_start + BLOCK as u64 {
            self.index.push((h, self.at));
            self.block_start = self.at;
        }
        let len = u32::try_from(rec.len()).map_err(|_| io::Error::other("record too large"))?;
        self.out.write_all(&h.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(rec)?;
        self.at += size;
        self.entries += 1;
        self.hashes.push(h);
        Ok(())
    }

    fn finish(self) -> io::Result<Run> {
        let RunWriter { path, out, at, entries, hashes, index, .. } = self;
        // (Flushed to the page cache, where lookups read it: a run is
        // scratch, never synced.)
        drop(out.into_inner().map_err(|e| e.into_error())?);
        let bits = (hashes.len() * BLOOM_BITS).max(64) as u64;
        let mut bloom = vec![0u64; bits.div_ceil(64) as usize];
        let bits = bloom.len() as u64 * 64;
        for h in hashes {
            for i in 0..PROBES {
                let b = probe(h, i, bits);
                bloom[(b / 64) as usize] |= 1 << (b % 64);
            }
        }
        let file = File::open(&path)?;
        Ok(Run { path, file, len: at, entries, bloom, index })
    }
}

impl Run {
    fn may_hold(&self, h: u64) -> bool {
        let bits = self.bloom.len() as u64 * 64;
        (0..PROBES).all(|i| {
            let b = probe(h, i, bits);
            self.bloom[(b / 64) as usize] & (1 << (b % 64)) != 0
        })
    }

    /// Memory this run holds.
    fn held_bytes(&self) -> usize {
        self.bloom.len() * 8 + self.index.len() * 16 + std::mem::size_of::<Run>()
    }

    /// The value of `k` (hash `h`) in this run, if it holds it.
    fn find<K: Eq + DeserializeOwned, V: DeserializeOwned>(&self, h: u64, k: &K) -> io::Result<Option<V>> {
        // Records of hash `h` begin in the block before the first block
        // whose first hash is `h` or more, and may go on over the blocks
        // that begin with `h` (many keys of one hash).
        let mut i = self.index.partition_point(|(first, _)| *first < h).saturating_sub(1);
        while let Some(&(first, start)) = self.index.get(i) {
            if first > h {
                break;
            }
            let end = self.index.get(i + 1).map_or(self.len, |b| b.1);
            let mut block = vec![0u8; usize::try_from(end - start).map_err(io::Error::other)?];
            read_at(&self.file, &mut block, start)?;
            let mut at = 0;
            while at + 12 <= block.len() {
                let rh = u64::from_le_bytes(block[at..at + 8].try_into().map_err(io::Error::other)?);
                let len = u32::from_le_bytes(block[at + 8..at + 12].try_into().map_err(io::Error::other)?) as usize;
                let rec = block.get(at + 12..at + 12 + len).ok_or_else(|| io::Error::other("short record"))?;
                at += 12 + len;
                if rh < h {
                    continue;
                }
                if rh > h {
                    return Ok(None);
                }
                let (rk, v): (K, V) = postcard::from_bytes(rec).map_err(io::Error::other)?;
                if rk == *k {
                    return Ok(Some(v));
                }
            }
            i += 1;
        }
        Ok(None)
    }

    /// Its records in order, read from the start.
    fn records(&self) -> io::Result<Records> {
        Ok(Records { r: BufReader::with_capacity(1 << 16, File::open(&self.path)?), left: self.entries })
    }
}

/// A run's records, read in order.
struct Records {
    r: BufReader<File>,
    left: u64,
}

impl Records {
    fn next(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut head = [0u8; 12];
        self.r.read_exact(&mut head)?;
        let h = u64::from_le_bytes(head[..8].try_into().map_err(io::Error::other)?);
        let len = u32::from_le_bytes(head[8..].try_into().map_err(io::Error::other)?) as usize;
        let mut rec = vec![0u8; len];
        self.r.read_exact(&mut rec)?;
        Ok(Some((h, rec)))
    }
}

/// A map that keeps its recently used entries in memory and the rest in
/// sorted runs on disk (see the module's documentation).
pub struct SpillMap<K, V> {
    hot: FastMap<K, (V, Ts)>,
    /// Oldest first.
    runs: Vec<Run>,
    dir: Option<PathBuf>,
    max_hot: usize,
    /// Memory an entry in the hash map costs (for the budget).
    entry_cost: usize,
    failed: bool,
    /// Entries set (see [`SpillMap::changes`]).
    changes: u64,
    written: u64,
    disk_reads: AtomicU64,
    errors: AtomicU64,
}

impl<K, V> SpillMap<K, V>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    /// An empty map that holds at most `max_hot` entries in memory once
    /// it has a folder to write to, each costing the memory budget
    /// `entry_cost`.
    pub fn new(max_hot: usize, entry_cost: usize) -> SpillMap<K, V> {
        SpillMap {
            hot: FastMap::default(),
            runs: Vec::new(),
            dir: None,
            max_hot: max_hot.max(2),
            entry_cost,
            failed: false,
            changes: 0,
            written: 0,
            disk_reads: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Runs are written to `dir` (removed with the map).
    pub fn set_dir(&mut self, dir: &Path) {
        self.dir = Some(dir.to_path_buf());
    }

    /// Holds at most `max` entries in memory.
    pub fn set_max(&mut self, max: usize) {
        self.max_hot = max.max(2);
    }

    /// Counters.
    pub fn stats(&self) -> RememberStats {
        RememberStats {
            written: self.written,
            disk_reads: self.disk_reads.load(Ordering::Relaxed),
            runs: self.runs.len() as u64,
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Entries in memory.
    pub fn hot_len(&self) -> usize {
        self.hot.len()
    }

    /// What the map holds in memory, by the budget's measure.
    pub fn held_bytes(&self) -> usize {
        self.hot.len() * self.entry_cost + self.runs.iter().map(Run::held_bytes).sum::<usize>()
    }

    /// `k`'s value, from memory or disk.
    pub fn get(&self, k: &K) -> Option<V> {
        if let Some((v, _)) = self.hot.get(k) {
            return Some(v.clone());
        }
        self.on_disk(k)
    }

    /// Whether `k` has a value.
    pub fn contains(&self, k: &K) -> bool {
        self.hot.contains_key(k) || self.on_disk(k).is_some()
    }

    /// `k`'s value in memory, to change, and when it was last used.
    pub fn get_hot_mut(&mut self, k: &K) -> Option<&mut (V, Ts)> {
        self.hot.get_mut(k)
    }

    /// `k`'s value, taken out of memory (a copy on disk, if any, stays
    /// and is outdated by the next insert).
    pub fn take(&mut self, k: &K) -> Option<V> {
        match self.hot.remove(k) {
            Some((v, _)) => Some(v),
            None => self.on_disk(k),
        }
    }

    /// `k`'s value; if it came from disk it is in memory again, last used
    /// at `at`.
    pub fn get_promote(&mut self, k: &K, at: Ts) -> Option<V> {
        if let Some((v, t)) = self.hot.get_mut(k) {
            *t = (*t).max(at);
            return Some(v.clone());
        }
        let v = self.on_disk(k)?;
        self.insert(k.clone(), v.clone(), at);
        Some(v)
    }

    /// Sets `k`'s value, last used at `at` (past the cap, the older half
    /// goes to disk).
    pub fn insert(&mut self, k: K, v: V, at: Ts) {
        self.hot.insert(k, (v, at));
        self.changes += 1;
        if self.hot.len() > self.max_hot && self.dir.is_some() && !self.failed {
            self.spill_older_half();
        }
    }

    /// Entries set so far: what the map holds can have changed only when
    /// this has.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn on_disk(&self, k: &K) -> Option<V> {
        if self.runs.is_empty() {
            return None;
        }
        let h = disk_hash(k);
        for run in self.runs.iter().rev() {
            if !run.may_hold(h) {
                continue;
            }
            self.disk_reads.fetch_add(1, Ordering::Relaxed);
            match run.find(h, k) {
                Ok(Some(v)) => return Some(v),
                Ok(None) => {}
                Err(_) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        None
    }

    /// Writes the older half of the entries in memory (by last use) to a
    /// new run, then merges runs of like size.
    fn spill_older_half(&mut self) {
        let mut stamps: Vec<Ts> = self.hot.values().map(|(_, t)| *t).collect();
        let mid = stamps.len() / 2;
        let (_, cut, _) = stamps.select_nth_unstable(mid);
        let cut = *cut;
        // Strictly older than the median, then as many of the median's
        // ties as make half.
        let mut out: Vec<(u64, K, V)> = Vec::with_capacity(mid + 1);
        let older: Vec<K> = self.hot.iter().filter(|(_, (_, t))| *t < cut).map(|(k, _)| k.clone()).collect();
        let quota = mid.saturating_sub(older.len());
        let ties: Vec<K> =
            self.hot.iter().filter(|(_, (_, t))| *t == cut).take(quota).map(|(k, _)| k.clone()).collect();
        for k in older.into_iter().chain(ties) {
            if let Some((v, _)) = self.hot.remove(&k) {
                out.push((disk_hash(&k), k, v));
            }
        }
        out.sort_unstable_by_key(|(h, _, _)| *h);
        let n = out.len() as u64;
        match self.write_run(&out) {
            Ok(run) => {
                self.written += n;
                self.runs.push(run);
                self.merge_like_sizes();
            }
            Err(_) => {
                // Everything stays in memory from now on.
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.failed = true;
                for (_, k, v) in out {
                    self.hot.insert(k, (v, Ts(i64::MIN)));
                }
            }
        }
        self.hot.shrink_to_fit();
    }

    fn write_run(&self, entries: &[(u64, K, V)]) -> io::Result<Run> {
        let dir = self.dir.as_deref().ok_or_else(|| io::Error::other("no folder"))?;
        let mut w = RunWriter::create(dir)?;
        for (h, k, v) in entries {
            let rec = postcard::to_allocvec(&(k, v)).map_err(io::Error::other)?;
            w.push(*h, &rec)?;
        }
        w.finish()
    }

    /// Merges the two newest runs while the newer is at least half the
    /// size of the older.
    fn merge_like_sizes(&mut self) {
        while self.runs.len() >= 2 {
            let n = self.runs.len();
            if self.runs[n - 1].entries * 2 < self.runs[n - 2].entries {
                break;
            }
            let newer = self.runs.pop();
            let older = self.runs.pop();
            let (Some(newer), Some(older)) = (newer, older) else { break };
            match self.merge(&older, &newer) {
                Ok(run) => self.runs.push(run),
                Err(_) => {
                    // Both stay as they were; no more merging.
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    self.runs.push(older);
                    self.runs.push(newer);
                    break;
                }
            }
        }
    }

    /// One run of `older` and `newer`, `newer`'s value winning for a key
    /// both hold.
    fn merge(&self, older: &Run, newer: &Run) -> io::Result<Run> {
        let dir = self.dir.as_deref().ok_or_else(|| io::Error::other("no folder"))?;
        let mut w = RunWriter::create(dir)?;
        let (mut a, mut b) = (older.records()?, newer.records()?);
        let (mut x, mut y) = (a.next()?, b.next()?);
        loop {
            match (&x, &y) {
                (None, None) => break,
                (Some((ha, ra)), Some((hb, _))) if ha < hb => {
                    w.push(*ha, ra)?;
                    x = a.next()?;
                }
                (Some(_), Some((hb, rb))) | (None, Some((hb, rb))) => {
                    let h = *hb;
                    // Every record of hash `h` on both sides: the newer
                    // ones, then the older ones of other keys.
                    let mut news = vec![rb.clone()];
                    y = b.next()?;
                    while let Some((h2, r)) = &y
                        && *h2 == h
                    {
                        news.push(r.clone());
                        y = b.next()?;
                    }
                    let mut olds = Vec::new();
                    while let Some((h2, r)) = &x
                        && *h2 == h
                    {
                        olds.push(r.clone());
                        x = a.next()?;
                    }
                    let key_of = |r: &[u8]| -> io::Result<K> {
                        let (k, _): (K, V) = postcard::from_bytes(r).map_err(io::Error::other)?;
                        Ok(k)
                    };
                    let new_keys: Vec<K> = if olds.is_empty() {
                        Vec::new()
                    } else {
                        news.iter().map(|r| key_of(r)).collect::<io::Result<_>>()?
                    };
                    for r in &news {
                        w.push(h, r)?;
                    }
                    for r in &olds {
                        if !new_keys.contains(&key_of(r)?) {
                            w.push(h, r)?;
                        }
                    }
                }
                (Some((ha, ra)), None) => {
                    w.push(*ha, ra)?;
                    x = a.next()?;
                }
            }
        }
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pov-remember-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// 100,000 keys through a map that holds 1,000 in memory: every value
    /// read back is the last one set, from memory or disk, keys never set
    /// are absent, and memory holds at most the cap plus the runs'
    /// filters and indexes (about 1.3 bytes an entry on disk).
    #[test]
    fn every_value_comes_back_with_a_thousand_in_memory() {
        let d = dir("values");
        let mut m: SpillMap<u64, (String, u32)> = SpillMap::new(1000, 64);
        m.set_dir(&d);
        for i in 0..100_000u64 {
            m.insert(i, (format!("user-{i}"), i as u32), Ts(i as i64));
        }
        // Half of them set again later, with new values.
        for i in (0..100_000u64).step_by(2) {
            m.insert(i, (format!("again-{i}"), 7), Ts(200_000 + i as i64));
        }
        assert!(m.hot_len() <= 1000, "{} in memory", m.hot_len());
        let s = m.stats();
        assert!(s.runs >= 2 && s.runs <= 12, "{} runs", s.runs);
        assert_eq!(s.errors, 0);
        for i in 0..100_000u64 {
            let want = if i % 2 == 0 { (format!("again-{i}"), 7) } else { (format!("user-{i}"), i as u32) };
            assert_eq!(m.get(&i), Some(want), "key {i}");
        }
        for i in 100_000..101_000u64 {
            assert_eq!(m.get(&i), None);
        }
        let on_disk_bytes = m.held_bytes() - m.hot_len() * 64;
        assert!(on_disk_bytes < 100_000 * 2, "{on_disk_bytes} bytes for the entries on disk");
        // Misses are mostly answered by the filters: 1,000 absent keys
        // read at most a few dozen blocks.
        let before = m.stats().disk_reads;
        for i in 200_000..201_000u64 {
            assert!(!m.contains(&i));
        }
        assert!(m.stats().disk_reads - before < 60, "{} reads", m.stats().disk_reads - before);
        drop(m);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "runs are removed with the map");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The entries used lately stay in memory; taking one from disk and
    /// setting it again outdates the copy on disk; promotion brings an
    /// entry back to memory.
    #[test]
    fn recent_entries_stay_and_newer_values_win() {
        let d = dir("recent");
        let mut m: SpillMap<String, u32> = SpillMap::new(100, 32);
        m.set_dir(&d);
        for i in 0..1000 {
            m.insert(format!("k{i}"), i, Ts(i as i64));
        }
        // The newest are in memory.
        assert!(m.get_hot_mut(&"k999".to_string()).is_some());
        assert!(m.get_hot_mut(&"k0".to_string()).is_none());
        assert_eq!(m.take(&"k0".to_string()), Some(0));
        m.insert("k0".into(), 5000, Ts(2000));
        for i in 1000..1300 {
            m.insert(format!("k{i}"), i, Ts(i as i64 + 2000));
        }
        assert_eq!(m.get(&"k0".to_string()), Some(5000));
        assert_eq!(m.get_promote(&"k1".to_string(), Ts(10_000)), Some(1));
        assert!(m.get_hot_mut(&"k1".to_string()).is_some());
        drop(m);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Keys of one hash on disk stay apart: a map whose keys all hash
    /// alike still answers each exactly (the records are compared whole,
    /// across blocks).
    #[test]
    fn keys_of_one_hash_stay_apart() {
        #[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct Same(u32);
        impl Hash for Same {
            fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
                0u8.hash(h);
            }
        }
        let d = dir("collide");
        let mut m: SpillMap<Same, String> = SpillMap::new(10, 32);
        m.set_dir(&d);
        // 600 records of some 500 bytes: they cross many blocks.
        for i in 0..600 {
            m.insert(Same(i), format!("{i}:{}", "x".repeat(500)), Ts(i as i64));
        }
        m.insert(Same(3), "three".into(), Ts(10_000));
        for i in 600..620 {
            m.insert(Same(i), i.to_string(), Ts(20_000 + i as i64));
        }
        for i in 0..600 {
            let want = if i == 3 { "three".to_string() } else { format!("{i}:{}", "x".repeat(500)) };
            assert_eq!(m.get(&Same(i)), Some(want), "key {i}");
        }
        assert_eq!(m.get(&Same(10_000)), None);
        drop(m);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Without a folder nothing is written: the map is an ordinary one.
    #[test]
    fn without_a_folder_everything_stays_in_memory() {
        let mut m: SpillMap<u64, u64> = SpillMap::new(10, 16);
        for i in 0..1000 {
            m.insert(i, i * 2, Ts(0));
        }
        assert_eq!(m.hot_len(), 1000);
        assert_eq!(m.stats(), RememberStats::default());
        assert_eq!(m.get(&999), Some(1998));
    }

    /// A folder that cannot be written to: the first spill fails, is
    /// counted, and every entry stays in memory and answers.
    #[test]
    fn a_disk_that_fails_keeps_everything_in_memory() {
        let mut m: SpillMap<u64, u64> = SpillMap::new(10, 16);
        m.set_dir(Path::new("/nonexistent/pov-remember"));
        for i in 0..100 {
            m.insert(i, i + 1, Ts(i as i64));
        }
        assert_eq!(m.hot_len(), 100);
        assert_eq!(m.stats().errors, 1);
        assert!((0..100).all(|i| m.get(&i) == Some(i + 1)));
    }
}
