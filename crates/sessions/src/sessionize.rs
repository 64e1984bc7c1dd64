//! Users, sessions and page views, built as transactions stream by.
//!
//! Transactions arrive in (about) request time order. Each is tied to a
//! user by the identity rules; a user's activity is one open session until
//! the user has been quiet for the session timeout, when the session is
//! closed, cut into page views and handed back. Memory holds the open
//! sessions and short-lived joining state, never the whole capture.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pov_capture::budget::{Charge, Holder};
use pov_capture::http::{FrameSpan, TlsOutcome};
use pov_capture::tcp::{ConnState, ConnSummary};
use pov_capture::{Budget, Dur, FastMap, FastSet, Ts};
use regex::{Regex, RegexSet};

use crate::config::{Cidr, PageRule, RevenueConfig, RobotsConfig, SessionsConfig, UsersConfig, default_pages};
use crate::identity::UserKey;
use crate::remember::{RememberStats, SpillMap};
use crate::robots::{Robot, RobotRules};
use crate::tx::{ResourceClass, Tx};

/// Why a connection carried nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedConnKind {
    /// The server answered the SYN with a RST.
    Refused,
    /// The SYN was never answered (the client tried again, or gave up).
    Unanswered,
    /// The TLS handshake failed: an error alert before it completed (a
    /// certificate the client refused, no common protocol or suite), seen
    /// without keys.
    TlsHandshakeFailed,
    /// The TLS connection closed before its handshake completed, without
    /// an alert.
    TlsIncomplete,
}

/// A connection attempt that failed before any HTTP.
#[derive(Clone, Debug)]
pub struct FailedConn {
    /// Connection id.
    pub conn: u64,
    /// Client socket.
    pub client: SocketAddr,
    /// Server socket.
    pub server: SocketAddr,
    /// First SYN.
    pub start: Ts,
    /// Last packet.
    pub end: Ts,
    /// Refused or unanswered.
    pub kind: FailedConnKind,
    /// SYNs the client sent (retransmissions included).
    pub syns: u64,
    /// Frames.
    pub frames: FrameSpan,
    /// For a TLS failure: the server name the client asked for (what
    /// tells sites apart when no cookie can be seen).
    pub sni: Option<String>,
    /// For a TLS failure: what the capture shows (the alert, who sent it,
    /// when, at what offset).
    pub evidence: Option<String>,
}

impl FailedConn {
    /// The failed attempt a connection summary shows, if any. A SYN left
    /// unanswered counts only when the client sent it again or the
    /// connection timed out: a single SYN at the end of a capture may have
    /// been answered after the capture stopped.
    pub fn from_summary(s: &ConnSummary) -> Option<FailedConn> {
        let kind = match s.state {
            ConnState::REJ => FailedConnKind::Refused,
            ConnState::S0
                if s.syn_seen
                    && s.to_server.payload_bytes == 0
                    && (s.to_server.packets >= 2 || matches!(s.close, pov_capture::tcp::CloseHow::IdleTimeout)) =>
            {
                FailedConnKind::Unanswered
            }
            // A TLS connection whose handshake failed or never completed:
            // the customer got nothing from it, keys or not.
            _ => match s.tls.as_deref().map(|t| t.outcome) {
                Some(TlsOutcome::HandshakeFailed) => FailedConnKind::TlsHandshakeFailed,
                Some(TlsOutcome::Incomplete) => FailedConnKind::TlsIncomplete,
                _ => return None,
            },
        };
        let tls = s.tls.as_deref().filter(|t| t.is_failure());
        Some(FailedConn {
            conn: s.id,
            client: s.client,
            server: s.server,
            start: s.first_ts,
            end: s.last_ts,
            kind,
            syns: s.to_server.packets,
            frames: FrameSpan { first: s.first_frame, last: s.last_frame },
            sni: tls.and_then(|t| t.sni.clone()),
            evidence: tls.map(|t| t.evidence()),
        })
    }
}

/// A page view: a document and what it pulled in.
#[derive(Clone, Debug)]
pub struct PageView {
    /// Position in the session, from 1.
    pub index: u32,
    /// The first request of the page (the document, or the first
    /// resource of a page whose document is not in the capture).
    pub start: Ts,
    /// The last response byte of any of its requests.
    pub end: Ts,
    /// Host.
    pub host: Option<String>,
    /// Path and query of the (final, after redirects) document.
    pub url: String,
    /// The `[[pages]]` rule that matched, if any.
    pub name: Option<String>,
    /// Its funnel step.
    pub step: Option<String>,
    /// Reaching it (2xx) is a conversion.
    pub conversion: bool,
    /// Apdex T of its page class, if the rule sets one.
    pub apdex_t_ms: Option<f64>,
    /// Documents of the redirect chain, in order (indices into the
    /// session's transactions); empty for a page without document.
    pub documents: Vec<usize>,
    /// Every transaction of the page, documents first.
    pub txs: Vec<usize>,
    /// Failed connection attempts made for it (indices into the session's
    /// `failed`).
    pub failed: Vec<usize>,
    /// Status of the final document.
    pub status: Option<u16>,
    /// Document request to the last response byte of the page.
    pub load: Dur,
    /// Of that, time some request was waiting for the server's first byte.
    pub server: Dur,
    /// The rest: sending, receiving, connecting (the network's share).
    pub network: Dur,
}

/// A user's activity between two quiet spells of the session timeout.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub user: UserKey,
    /// Position among the user's sessions, from 1.
    pub index: u32,
    /// First request.
    pub start: Ts,
    /// Last response byte.
    pub end: Ts,
    /// The client address of its first request.
    pub client_ip: Option<IpAddr>,
    /// The User-Agent of its first request.
    pub user_agent: Option<String>,
    /// A sign-in name seen in it.
    pub login: Option<String>,
    /// Transactions, by request start.
    pub txs: Vec<Tx>,
    /// Failed connection attempts, by start.
    pub failed: Vec<FailedConn>,
    /// Page views, by start.
    pub pages: Vec<PageView>,
    /// An order was placed (or a conversion page reached).
    pub converted: bool,
    /// Orders placed.
    pub orders: u32,
    /// Value of the orders placed.
    pub order_value: Option<f64>,
    /// The last cart value seen.
    pub cart_value: Option<f64>,
    /// Transactions left out because the session held too many
    /// (`--max-session-transactions`) or the memory budget was full.
    pub dropped_txs: u64,
    /// Of those, the ones the memory budget left out.
    pub budget_dropped_txs: u64,
    /// What its transactions hold of the memory budget, given back when
    /// the session is dropped.
    pub charge: Charge,
    /// A robot's or load generator's session: the rule and its evidence
    /// (`[robots]`).
    pub robot: Option<Robot>,
}

/// Counters of the user stage.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SessionStats {
    /// Transactions seen.
    pub transactions: u64,
    /// Users, by the rule that identified them.
    pub users_by_rule: std::collections::BTreeMap<String, u64>,
    /// Sessions closed.
    pub sessions: u64,
    /// Page views.
    pub pages: u64,
    /// Requests sent before a session cookie, joined to the user the
    /// cookie was then given to.
    pub joined_before_cookie: u64,
    /// Session cookies replaced by the server (e.g. at sign-in), followed.
    pub cookie_rotations: u64,
    /// First visits joined to an earlier one from the same address and
    /// User-Agent whose cookie never came back.
    pub retried_first_visits: u64,
    /// New session cookies (a request without one, answered with one) that
    /// evidence tied to an earlier user: the same connection.
    pub births_tied_by_connection: u64,
    /// ... a sign-in name the earlier user gave.
    pub births_tied_by_login: u64,
    /// ... a persistent cookie (analytics or device id) the earlier user's
    /// browser sent.
    pub births_tied_by_cookie: u64,
    /// ... sent before the earlier first visit's answer (with its cookie)
    /// reached the client: one first visit on several connections.
    pub births_tied_by_first_visit: u64,
    /// Requests without a session cookie kept apart from a user of the
    /// same address and User-Agent because their persistent cookies differ.
    pub split_by_persistent_cookie: u64,
    /// Failed connection attempts tied to the user whose connection came
    /// next.
    pub failed_conns_attributed: u64,
    /// Failed connection attempts with no connection from the address
    /// shortly before or after: a user known only by address.
    pub failed_conns_alone: u64,
    /// Transactions left out of sessions at the per-session cap
    /// (`--max-session-transactions`).
    pub session_tx_cap_drops: u64,
    /// Transactions left out of sessions because the memory budget was
    /// full (`--memory-budget`) and no spill file could take them.
    pub session_budget_drops: u64,
    /// Transactions of open sessions written to the spill file because the
    /// memory budget was full, and read back when their session closed.
    pub session_txs_spilled: u64,
    /// Requests without an identifier that found `--max-waiting-requests`
    /// others already waiting for a cookie, and were taken at once as their
    /// address and User-Agent's (as one whose wait ran out).
    pub waits_refused: u64,
    /// Entries forgotten at `--max-recent-per-address` (the first
    /// transaction of a recent connection, or a user recently active, of
    /// an address with that many already): a failed attempt from it
    /// reported late may be attributed by a later connection, or to the
    /// address alone.
    pub recent_forgotten: u64,
    /// Connections whose user was forgotten at
    /// `--max-remembered-connections` (those used least recently): a later
    /// request on one is identified by its own evidence, as on a new
    /// connection.
    pub connections_forgotten: u64,
    /// Users seen kept on disk (session counts, addresses' users,
    /// persistent cookies, sign-in names and replaced cookies past
    /// `--max-users-held` entries each in memory).
    pub remembered: RememberStats,
}

/// Transactions of open sessions kept on disk when the memory budget has
/// no room for them (postcard, a compact binary serde format), and read
/// back when their session closes. The file is removed when the spill is
/// dropped.
struct TxSpill {
    dir: PathBuf,
    path: Option<PathBuf>,
    out: Option<BufWriter<File>>,
    /// Opened once, shared with the threads that read back (positioned
    /// reads need no `&mut`).
    reader: Option<Arc<File>>,
    /// Bytes written so far (the next record's offset).
    at: u64,
    /// Written since the last flush.
    dirty: bool,
    buf: Vec<u8>,
    /// Writing or reading failed once: no more spilling (transactions are
    /// dropped and counted as before).
    failed: bool,
}

impl TxSpill {
    fn new(dir: &Path) -> TxSpill {
        TxSpill {
            dir: dir.to_path_buf(),
            path: None,
            out: None,
            reader: None,
            at: 0,
            dirty: false,
            buf: Vec::new(),
            failed: false,
        }
    }

    /// Writes `tx`; where it is, or `None` if it could not be written.
    fn write(&mut self, tx: &Tx) -> Option<(u64, u32)> {
        if self.failed {
            return None;
        }
        if self.out.is_none() {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = self.dir.join(format!(".pov-sessions-{}-{n}", std::process::id()));
            match File::create(&path) {
                Ok(f) => {
                    self.out = Some(BufWriter::with_capacity(1 << 20, f));
                    self.path = Some(path);
                }
                Err(_) => {
                    self.failed = true;
                    return None;
                }
            }
        }
        self.buf.clear();
        let ok = postcard::to_io(tx, &mut self.buf).is_ok()
            && self.out.as_mut().is_some_and(|w| w.write_all(&self.buf).is_ok());
        if !ok {
            self.failed = true;
            return None;
        }
        let at = self.at;
        self.at += self.buf.len() as u64;
        self.dirty = true;
        Some((at, self.buf.len() as u32))
    }

    /// A handle to read back what was written, from any thread
    /// ([`read_spilled`]): everything written so far is flushed first.
    fn reader(&mut self) -> Option<Arc<File>> {
        if self.dirty {
            self.dirty = false;
            if self.out.as_mut().is_none_or(|w| w.flush().is_err()) {
                self.failed = true;
                return None;
            }
        }
        if self.reader.is_none() {
            self.reader = File::open(self.path.as_ref()?).ok().map(Arc::new);
        }
        self.reader.clone()
    }
}

/// Fills `buf` from `at` in `f` (one system call where the platform has
/// positioned reads).
fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(f, buf, at)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek};
        let mut f = f;
        f.seek(std::io::SeekFrom::Start(at))?;
        f.read_exact(buf)
    }
}

/// The transaction a [`TxSpill`] wrote at `at`, read through `f` (its
/// [`TxSpill::reader`]); `None` if it cannot be read.
fn read_spilled(f: &File, (at, len): (u64, u32), buf: &mut Vec<u8>) -> Option<Tx> {
    buf.resize(len as usize, 0);
    read_at(f, buf, at).ok()?;
    postcard::from_bytes(buf).ok()
}

/// Records of a spill this close together (or closer) are read back in
/// one read ([`read_spilled_many`]).
const SPILL_READ_GAP: u64 = 4 << 10;

/// Most bytes one read of [`read_spilled_many`] takes.
const SPILL_READ_MAX: u64 = 1 << 20;

/// The transactions a [`TxSpill`] wrote at `wants[i]` (for each session
/// `i` closing together, in its order), read through `f`: records close to
/// one another are read in one go, so that sessions that close together
/// (the end of the input, a quiet spell) read the spill in a few large
/// reads rather than one read a transaction (a system call each: 37 % of
/// the building of a request-heavy night's sessions). A record that
/// cannot be read is `None`. On rayon's threads when `parallel`.
fn read_spilled_many(f: &File, wants: &[&[(u64, u32)]], parallel: bool) -> Vec<Vec<Option<Tx>>> {
    // Every record with where its transaction goes, by place in the file.
    let mut all: Vec<(u64, u32, usize, usize)> = Vec::with_capacity(wants.iter().map(|w| w.len()).sum());
    for (i, w) in wants.iter().enumerate() {
        all.extend(w.iter().enumerate().map(|(j, &(at, len))| (at, len, i, j)));
    }
    all.sort_unstable();
    // Runs of records read in one go: a run ends where the next record
    // is more than the gap past the last, or would make it too long.
    let mut runs: Vec<&[(u64, u32, usize, usize)]> = Vec::new();
    let mut first = 0;
    for (k, pair) in all.windows(2).enumerate() {
        let [(prev_at, prev_len, ..), (at, len, ..)] = *pair else { continue };
        let run_at = all.get(first).map_or(at, |r| r.0);
        let far = at > prev_at.saturating_add(u64::from(prev_len)).saturating_add(SPILL_READ_GAP);
        if far || at.saturating_add(u64::from(len)).saturating_sub(run_at) > SPILL_READ_MAX {
            runs.extend(all.get(first..=k));
            first = k + 1;
        }
    }
    runs.extend(all.get(first..).filter(|r| !r.is_empty()));
    let read_run = |run: &[(u64, u32, usize, usize)]| -> Vec<(usize, usize, Option<Tx>)> {
        let mut buf = Vec::new();
        if let [(start, ..), _, ..] = *run {
            let end = run.iter().map(|&(at, len, ..)| at + u64::from(len)).max().unwrap_or(start);
            buf.resize((end - start) as usize, 0);
            if read_at(f, &mut buf, start).is_ok() {
                return run
                    .iter()
                    .map(|&(at, len, i, j)| {
                        let from = (at - start) as usize;
                        let tx = buf.get(from..from + len as usize).and_then(|b| postcard::from_bytes(b).ok());
                        (i, j, tx)
                    })
                    .collect();
            }
        }
        // One record, or a run that could not be read whole: each on its own.
        run.iter().map(|&(at, len, i, j)| (i, j, read_spilled(f, (at, len), &mut buf))).collect()
    };
    let read: Vec<Vec<(usize, usize, Option<Tx>)>> = if parallel && runs.len() > 1 {
        use rayon::iter::{IntoParallelIterator, ParallelIterator};
        runs.into_par_iter().map(read_run).collect()
    } else {
        runs.into_iter().map(read_run).collect()
    };
    let mut out: Vec<Vec<Option<Tx>>> =
        wants.iter().map(|w| std::iter::repeat_with(|| None).take(w.len()).collect()).collect();
    for (i, j, tx) in read.into_iter().flatten() {
        if let Some(slot) = out.get_mut(i).and_then(|o| o.get_mut(j)) {
            *slot = tx;
        }
    }
    out
}

impl Drop for TxSpill {
    fn drop(&mut self) {
        self.out = None;
        self.reader = None;
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The first transaction of a recent connection from an address.
struct Recent {
    /// Its request start.
    at: Ts,
    /// Its user.
    user: UserKey,
    /// Position among every entry ever added (increasing in a queue).
    seq: u64,
    /// The latest `at` of this entry and those before it in the queue
    /// (those dropped from its front included): every entry before the
    /// first whose reach is at or after a time started before it.
    reach: Ts,
}

/// Requests waiting for a cookie are kept by client address and
/// User-Agent.
type Bucket = (IpAddr, String);

/// Requests from one address and User-Agent waiting for a cookie, in
/// arrival order. Each has a sequence number, so that the requests of one
/// connection can be taken out in O(1) each (leaving a hole) rather than
/// by searching the queue. Each is boxed: the queue's slots (which
/// grow by doubling, and hold holes) stay a pointer wide, and a request
/// handed on frees its own room at once.
#[derive(Default)]
struct Waiting {
    items: VecDeque<Option<Box<Tx>>>,
    /// Sequence number of `items[0]`.
    base: u64,
    live: usize,
}

impl Waiting {
    fn push(&mut self, tx: Tx) -> u64 {
        self.items.push_back(Some(Box::new(tx)));
        self.live += 1;
        self.base + self.items.len() as u64 - 1
    }

    fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn is_live(&self, seq: u64) -> bool {
        seq.checked_sub(self.base).and_then(|i| self.items.get(i as usize)).is_some_and(|x| x.is_some())
    }

    /// Drops holes at the front.
    fn trim(&mut self) {
        while self.items.front().is_some_and(|x| x.is_none()) {
            self.items.pop_front();
            self.base += 1;
        }
    }

    /// Takes request `seq` out, if it is still waiting.
    fn take(&mut self, seq: u64) -> Option<Tx> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let t = self.items.get_mut(i)?.take()?;
        self.live -= 1;
        self.trim();
        Some(*t)
    }

    /// Takes out the requests at the front while `expired` says so.
    fn pop_expired(&mut self, mut expired: impl FnMut(&Tx) -> bool) -> Vec<Tx> {
        let mut out = Vec::new();
        self.trim();
        while self.items.front().and_then(|x| x.as_deref()).is_some_and(&mut expired) {
            crate::work::step(1);
            if let Some(Some(t)) = self.items.pop_front() {
                out.push(*t);
                self.live -= 1;
            }
            self.base += 1;
            self.trim();
        }
        out
    }

    /// Takes out, in order, every request `want` says.
    fn take_where(&mut self, mut want: impl FnMut(&Tx) -> bool) -> Vec<Tx> {
        let mut out = Vec::new();
        for slot in self.items.iter_mut() {
            crate::work::step(1);
            if slot.as_deref().is_some_and(&mut want)
                && let Some(t) = slot.take()
            {
                out.push(*t);
            }
        }
        self.live -= out.len();
        self.trim();
        out
    }

    /// Every request still waiting, in order.
    fn into_txs(self) -> impl Iterator<Item = Tx> {
        self.items.into_iter().flatten().map(|t| *t)
    }

    fn conns(&self) -> impl Iterator<Item = u64> + '_ {
        self.items.iter().flatten().map(|t| t.conn)
    }
}

/// A first visit whose session cookie has not come back yet.
struct Fresh {
    user: UserKey,
    /// Its request start.
    at: Ts,
    /// When its answer (with the cookie) reached the client: requests sent
    /// before then could not carry the cookie.
    got: Ts,
    /// Its persistent cookie's hash.
    persistent: Option<u64>,
    /// Its request target.
    target: String,
    /// Its answer failed (5xx, none, cut short, or an error page): the
    /// browser may not have kept the cookie.
    failed: bool,
    /// The cookie came back. Later first visits are then other people's,
    /// but a request sent before the answer that comes late (one left
    /// unanswered is written when it ends) is still this visit's: the
    /// entry is kept for that, for the join window.
    returned: bool,
}

/// Later first visits that may be a first visit's retry.
struct Tentative {
    /// When the first visit's retry window ends.
    deadline: Ts,
    /// The later ones, in order, and whether each asked for the same
    /// target (a reload).
    followers: Vec<(UserKey, bool)>,
}

/// Users first seen from one address with one User-Agent, for the robots'
/// identities rule: the `N` latest first sightings (kept in time order;
/// they come in about that order), and the spans in which a session start
/// lies in some window `w` long that holds `N` of them. What it costs is
/// `N` times a few bytes a bucket, whatever the rate.
#[derive(Default)]
struct Births {
    recent: VecDeque<Ts>,
    busy: Vec<(Ts, Ts)>,
}

impl Births {
    /// A user first seen at `t`.
    fn add(&mut self, t: Ts, n: usize, w: Dur) {
        let i = self.recent.partition_point(|x| *x <= t);
        self.recent.insert(i, t);
        while self.recent.len() > n {
            self.recent.pop_front();
        }
        if let (true, Some(&first), Some(&last)) = (self.recent.len() == n, self.recent.front(), self.recent.back())
            && last - first <= w
        {
            // Any window `w` long holding these `n` holds a start in here.
            let span = (last - w, first + w);
            match self.busy.last_mut() {
                Some(b) if span.0 <= b.1 && span.1 >= b.0 => *b = (b.0.min(span.0), b.1.max(span.1)),
                _ => self.busy.push(span),
            }
        }
    }

    /// Whether a session that started at `at` is inside a crowded span.
    fn crowded(&self, at: Ts) -> bool {
        self.busy.iter().rev().any(|(a, b)| *a <= at && at <= *b)
    }
}

/// A hash of a persistent cookie or sign-in name (the maps keep 8 bytes
/// of it, not the value).
fn text_hash(a: &str, b: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    a.hash(&mut h);
    b.hash(&mut h);
    h.finish()
}

/// What an entry of the persistent-cookie or sign-in maps costs the memory
/// budget while in memory (hash, key, last use and map overhead).
const EVIDENCE_COST: usize = 104;

/// What an entry of the replaced-cookie map costs the memory budget while
/// in memory (two keys and map overhead).
const ALIAS_COST: usize = 200;

/// The sessions left to hand out at the end of input: those closed while
/// settling, and the users still open, each by start.
struct Finishing {
    closed: VecDeque<Session>,
    open: VecDeque<(Ts, UserKey)>,
    /// Taken from `open` and closed (a few at a time, to be built side by
    /// side), in the same order: their place, and the session if the user
    /// had one open.
    built: VecDeque<(Ts, UserKey, Option<Session>)>,
}

/// Users closed at a time at the end of the input (their sessions are built
/// side by side when [`Sessionizer::set_parallel`] is on; what they hold is
/// in memory together), and the sessions a caller of
/// [`Sessionizer::finish_next`] may take at a time to classify them side by
/// side. The same on one thread, so that what the memory budget sees, and
/// its peaks, do not depend on the threads.
pub const FINISH_CHUNK: usize = 256;

/// Transactions (in memory and spilled) that the users closed at a time at
/// the end of the input hold together, at most (but always one user): a
/// chunk ends at [`FINISH_CHUNK`] users or here, whichever comes first.
/// What the spill holds of them is read back, and their pages made, for
/// all of them at once, outside the memory budget: 256 long sessions
/// (robots' or crawlers', of up to the 100,000 transactions a session
/// holds) could come to 13 GB at once, where these are a few MB, plus one
/// long session.
pub const FINISH_TXS: usize = 4096;

struct OpenSession {
    index: u32,
    /// Transactions, without what only identified them (see
    /// [`Sessionizer::add`]).
    txs: Vec<Tx>,
    /// The first transaction in session order (the first added among
    /// equals), as far as the session shows it.
    first_tx: Option<FirstTx>,
    failed: Vec<FailedConn>,
    last: Ts,
    /// The earliest start of what it holds (transactions, in memory or
    /// spilled, and failed attempts): its start once built, known before
    /// (`i64::MAX` while it holds nothing).
    first: Ts,
    dropped: u64,
    budget_dropped: u64,
    /// Its transactions in the spill file (offset and length).
    spilled: Vec<(u64, u32)>,
    /// What its transactions hold of the memory budget.
    charge: Charge,
}

/// What a session shows of its first transaction.
struct FirstTx {
    /// Request start, connection, depth: the session's order.
    order: (Ts, u64, u32),
    /// The User-Agent the session shows.
    user_agent: Option<String>,
    /// The client address the session shows (and the robots' identities
    /// rule looks up when it closes).
    client_ip: IpAddr,
}

#[derive(Default)]
struct UserState {
    /// Boxed: most users seen have none, and then cost a pointer.
    open: Option<Box<OpenSession>>,
    sessions: u32,
}

/// Compiled `[[pages]]` rules: one set searched once per URL, where the
/// patterns one after another cost a search each (nine for a URL that
/// matches none of the built-in ones: 2,000 instructions a page).
pub struct PageRules {
    rules: Vec<PageRule>,
    /// Their patterns, in the same order.
    set: RegexSet,
}

impl PageRules {
    /// Compiles rules; an invalid pattern is an error naming it.
    pub fn new(rules: &[PageRule]) -> Result<PageRules, String> {
        match RegexSet::new(rules.iter().map(|r| &r.pattern)) {
            Ok(set) => Ok(PageRules { rules: rules.to_vec(), set }),
            Err(e) => {
                // The set names no pattern: the first bad one is found alone.
                for r in rules {
                    Regex::new(&r.pattern).map_err(|e| format!("[[pages]] `{}`: bad pattern: {e}", r.name))?;
                }
                Err(format!("[[pages]]: {e}"))
            }
        }
    }

    /// The first rule that matches `target` (path and query).
    pub fn matching(&self, target: &str) -> Option<&PageRule> {
        let first = self.set.matches(target).iter().next()?;
        self.rules.get(first)
    }
}

impl Default for PageRules {
    fn default() -> PageRules {
        PageRules::new(&default_pages()).unwrap_or(PageRules { rules: Vec::new(), set: RegexSet::empty() })
    }
}

/// Everything the sessionizer needs to know.
#[derive(Clone, Debug, Default)]
pub struct SessionizerConfig {
    /// `[users]`.
    pub users: UsersConfig,
    /// `[sessions]`.
    pub sessions: SessionsConfig,
    /// `[[pages]]` (empty: the defaults).
    pub pages: Vec<PageRule>,
    /// `[revenue]`.
    pub revenue: RevenueConfig,
    /// Most transactions kept per session.
    pub max_session_txs: usize,
    /// The run's memory budget: open sessions' transactions are charged to
    /// it, and a transaction it has no room for is left out of its session
    /// (counted).
    pub budget: Budget,
    /// `[robots]`.
    pub robots: RobotsConfig,
}

/// What a user seen costs here once its sessions closed, while its
/// entries are in memory, as charged to the memory budget: its session
/// count under its key's hash ([`SEEN_COST`]), and the user seen from its
/// address ([`ADDR_COST`], for failed attempts from it) when it has an
/// address of its own. Past [`MAX_REMEMBERED`] entries a map keeps the
/// older half on disk (see [`crate::remember`]), where an entry costs
/// about 1.3 bytes of memory. An open session is charged apart; the
/// user's totals in the user stage are that stage's to charge (and it
/// spills them).
pub const USER_COST: usize = SEEN_COST + ADDR_COST;

/// What a closed user's session count costs in memory (a 64-bit hash,
/// the count, its last use and map overhead).
pub const SEEN_COST: usize = 40;

/// What an address's user costs in memory (the address, the user's key
/// and its strings, its last use and map overhead).
pub const ADDR_COST: usize = 160;

/// Entries each map of users seen (session counts, the user of each
/// address, persistent cookies, sign-in names, replaced cookies) keeps in
/// memory by default when it has a folder to spill to; the user stage sets
/// it to `--max-users-held`.
pub const MAX_REMEMBERED: usize = 100_000;

/// Most requests without an identifier that wait at once for a cookie
/// (`--max-waiting-requests`): each holds its transaction, some 830 bytes
/// (13.6 MB at this cap), for up to `join_window_secs`, which the memory
/// budget does not see; a client that sends none at a high rate (an API
/// client, a load generator) would otherwise make that the requests of the
/// whole window. Beyond, a request is taken at once as its address and
/// User-Agent's, counted in [`SessionStats::waits_refused`]. A new
/// visitor's first requests wait a second or two for the cookie: the
/// 5,000-user night never has more than 1,024 waiting.
pub const MAX_WAITING: usize = 16_384;

/// Most entries kept per client address of what attributes failed
/// connection attempts (`--max-recent-per-address`): the first
/// transaction of each connection of the last half session timeout, and
/// the users active in the last two join windows. Each is 80 bytes in its
/// queue and a copy of the user's key; a client opening connections at a
/// high rate from one address (a load generator, a flood) would otherwise
/// make them all of its connections of a quarter of an hour (at this cap,
/// 328 KB an address and the keys). Beyond, the oldest is forgotten, counted in
/// [`SessionStats::recent_forgotten`]: at 4,096, only an address opening
/// more than 4 connections a second for 15 minutes loses any, and the
/// entries it loses are older than the TCP idle timeout after which an
/// unanswered attempt is reported.
pub const MAX_RECENT_PER_ADDRESS: usize = 4_096;

/// Most connections whose user is remembered
/// (`--max-remembered-connections`): each entry is the connection's id,
/// a copy of its user's key and when it was last used, 72 bytes in the
/// map (4.7 MB at this cap, before the map's free slots) and the key's
/// text, kept for the session timeout and outside the memory budget.
/// Connections opened at a high rate (a flood of short ones, a night of
/// many users) would otherwise make that every connection of half an
/// hour (`synth hostile --class many-users` at 1,000,000 users peaked at
/// 542 MB without the cap, 509 MB with it, one run each). Beyond, the
/// quarter used least recently is forgotten at once, counted in
/// [`SessionStats::connections_forgotten`]: unless 36 connections a second
/// are opened, nothing is forgotten within the session timeout; at 360 a
/// second, those idle for 2 to 3 minutes, which servers and browsers
/// have mostly closed by then. A request on a forgotten connection is
/// identified by its own evidence, as on a new connection.
pub const MAX_REMEMBERED_CONNECTIONS: usize = 65_536;

/// The caps on what identifies users that the memory budget does not see
/// (see [`MAX_WAITING`], [`MAX_RECENT_PER_ADDRESS`] and
/// [`MAX_REMEMBERED_CONNECTIONS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityCaps {
    /// Most requests without an identifier waiting at once for a cookie
    /// (`--max-waiting-requests`).
    pub max_waiting: usize,
    /// Most entries per client address of what attributes failed
    /// connection attempts (`--max-recent-per-address`).
    pub max_recent_per_address: usize,
    /// Most connections whose user is remembered
    /// (`--max-remembered-connections`).
    pub max_remembered_connections: usize,
}

impl Default for IdentityCaps {
    fn default() -> IdentityCaps {
        IdentityCaps {
            max_waiting: MAX_WAITING,
            max_recent_per_address: MAX_RECENT_PER_ADDRESS,
            max_remembered_connections: MAX_REMEMBERED_CONNECTIONS,
        }
    }
}

/// What an open session costs the memory budget besides its transactions:
/// the user's entry among open users and its session record, its entry in
/// the sweep's heap, its connections' entries (each with a copy of the
/// user's key). Measured with heaptrack on `synth hostile --class
/// many-users` (180,000 sessions open at once, one page each): about 600
/// bytes in the maps and records; the copies of the key's strings add an
/// estimated 150.
pub const OPEN_SESSION_COST: usize = 768;

/// What a transaction held in an open session costs the memory budget,
/// once its identity fields are dropped: the record and its strings, and
/// about as much again for its page view and failure records when the
/// session closes (the page view's URL among them; measured: some 1.3 KiB
/// a transaction with its page).
fn tx_weight(t: &Tx) -> usize {
    2 * std::mem::size_of::<Tx>() + t.heap_bytes() + t.target.capacity()
}

/// Drops the oldest entries of `q` beyond its `max` last; how many.
fn keep_last<T>(q: &mut VecDeque<T>, max: usize) -> u64 {
    let over = q.len().saturating_sub(max);
    q.drain(..over);
    over as u64
}

/// A user key's hash for [`Sessionizer`]'s closed users: SipHash with
/// fixed keys, the same in every run.
fn key_hash(k: &UserKey) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    k.hash(&mut h);
    h.finish()
}

/// Builds sessions from a stream of transactions and failed connections.
pub struct Sessionizer {
    timeout: Dur,
    join_window: Dur,
    retry_window: Dur,
    max_txs: usize,
    budget: Budget,
    /// What the users seen hold of the budget.
    users_charge: Charge,
    /// What building a closed session reads (pages, conversions, robots),
    /// shared with the threads that build.
    rules: Arc<SessionRules>,
    /// Users with an open session, by key.
    users: FastMap<UserKey, UserState>,
    /// Users whose sessions all closed: a 64-bit hash of their key to the
    /// number of sessions they had (their next one is numbered on), so
    /// that what a user seen costs to the end of the run is a few bytes,
    /// not its key. Two keys of one hash (odds of about 10^-6 over 10
    /// million users) would only number the second one's sessions on from
    /// the first's.
    seen: SpillMap<u64, u32>,
    /// Where transactions wait when the budget is full (if anywhere).
    /// Shared so that `add` can write to it while it holds a session.
    spill: Option<Arc<std::sync::Mutex<TxSpill>>>,
    /// Users with an open session, by the time it may have gone quiet: at
    /// most its last activity plus the timeout (a sweep takes those due,
    /// closes the quiet ones and puts the others back with their present
    /// due time; an entry whose user has no open session is let go). A
    /// sweep so looks at the sessions due, not at every open one.
    due: BinaryHeap<Reverse<(Ts, UserKey)>>,
    /// A session cookie replaced by the server, to the one it replaced.
    aliases: SpillMap<UserKey, UserKey>,
    /// Each connection's user, and when the connection was last used.
    conn_user: FastMap<u64, (UserKey, Ts)>,
    /// Most entries of `conn_user` ([`MAX_REMEMBERED_CONNECTIONS`]).
    max_conn_users: usize,
    /// Requests with no identifier, waiting for a Set-Cookie answer from
    /// the same client and User-Agent.
    pending: FastMap<Bucket, Waiting>,
    /// Where the requests of each connection wait (bucket and sequence
    /// number), so that a claim takes them without searching; and whether
    /// a claim looks (not after one took the connection's requests from
    /// its address, until another request waits on it).
    pending_conns: FastMap<u64, (bool, Vec<(Bucket, u64)>)>,
    /// Requests waiting in `pending`.
    waiting: usize,
    /// What they hold, charged to the budget (never refused: the cap
    /// bounds them, and a new visitor's first requests must wait for
    /// their cookie whatever else fills the budget).
    waiting_charge: Charge,
    /// Most requests waiting at once ([`MAX_WAITING`]).
    max_waiting: usize,
    /// Failed attempts waiting for a connection to follow them, each with
    /// the last [`Recent::seq`] already looked at for it.
    pending_failed: Vec<(FailedConn, u64)>,
    /// Per address and User-Agent: the last user made from a Set-Cookie
    /// whose cookie has not come back yet.
    fresh: FastMap<(IpAddr, String), Fresh>,
    /// First visits whose cookie has not come back, to the later first
    /// visits from the same address and User-Agent that may be the same
    /// person trying again (decided when the window passes: see
    /// [`Sessionizer::settle`]).
    tentative: FastMap<UserKey, Tentative>,
    /// The first visits of `tentative` by deadline (an entry whose cookie
    /// came back is gone from the map and skipped here).
    tentative_due: VecDeque<(Ts, UserKey)>,
    /// A persistent cookie's hash (`[users] persistent_cookies`) to the
    /// user first seen with it.
    persistent: SpillMap<u64, UserKey>,
    /// A sign-in name's hash to the user first seen with it.
    logins: SpillMap<u64, UserKey>,
    /// Per address and User-Agent, the latest users first seen from it
    /// and the times crowded with them (the robots' identities rule).
    births: FastMap<(IpAddr, String), Births>,
    /// Sessions closing together are built side by side.
    parallel: bool,
    /// Per client address, the one user seen from it (`true` once a second
    /// one was): a failed attempt from an address only one user ever used
    /// is theirs, however long after.
    ip_users: SpillMap<IpAddr, (UserKey, bool)>,
    /// Recent activity per client address (request start, user), for
    /// failed attempts that no new connection followed.
    activity: FastMap<IpAddr, VecDeque<(Ts, UserKey)>>,
    /// The first transaction of each recent connection, per client address.
    recent: FastMap<IpAddr, VecDeque<Recent>>,
    /// Entries ever added to `recent`.
    recent_seq: u64,
    /// Most entries of `recent` and of `activity` per address
    /// ([`MAX_RECENT_PER_ADDRESS`]).
    max_recent: usize,
    /// Sessions closed while requests were being claimed, handed out with
    /// the next batch.
    orphans: Vec<Session>,
    /// Once the input ended: what is left to hand out.
    finishing: Option<Finishing>,
    watermark: Ts,
    last_sweep: Ts,
    /// While the requests that waited for a cookie are adopted at the end
    /// of the input: how many more of the same address and browser follow
    /// the one being adopted (see [`Sessionizer::add`]).
    adopting: usize,
    /// The one being adopted goes to its address and browser's own user
    /// (directly, or through a connection an earlier one of them used):
    /// the user most of those that follow go to.
    adopting_own: bool,
    last_prune: Ts,
    /// Sessions the last sweep closed together, not built yet (see
    /// [`Sessionizer::push_split`]).
    closing: Option<Closing>,
    stats: SessionStats,
}

impl Sessionizer {
    /// A sessionizer with the given settings.
    pub fn new(cfg: &SessionizerConfig) -> Result<Sessionizer, String> {
        let secs = |s: f64| Dur((s.max(0.0) * 1e9) as i64);
        let pages = if cfg.pages.is_empty() { PageRules::default() } else { PageRules::new(&cfg.pages)? };
        let conversion_post = if cfg.revenue.conversion_posts.is_empty() {
            None
        } else {
            Some(Regex::new(&cfg.revenue.conversion_posts).map_err(|e| format!("[revenue] conversion_posts: {e}"))?)
        };
        Ok(Sessionizer {
            timeout: secs(cfg.sessions.timeout_secs),
            join_window: secs(cfg.users.join_window_secs),
            retry_window: secs(cfg.users.retry_window_secs),
            max_txs: if cfg.max_session_txs == 0 { 100_000 } else { cfg.max_session_txs },
            budget: cfg.budget.clone(),
            users_charge: cfg.budget.empty(Holder::Sessions),
            rules: Arc::new(SessionRules {
                pages,
                page_window: secs(cfg.sessions.page_window_secs),
                conversion_post,
                robots: RobotRules::new(&cfg.robots),
            }),
            users: FastMap::default(),
            due: BinaryHeap::new(),
            aliases: SpillMap::new(MAX_REMEMBERED, ALIAS_COST),
            conn_user: FastMap::default(),
            max_conn_users: MAX_REMEMBERED_CONNECTIONS,
            pending: FastMap::default(),
            pending_conns: FastMap::default(),
            pending_failed: Vec::new(),
            waiting: 0,
            waiting_charge: cfg.budget.empty(Holder::Sessions),
            max_waiting: MAX_WAITING,
            recent: FastMap::default(),
            recent_seq: 0,
            max_recent: MAX_RECENT_PER_ADDRESS,
            fresh: FastMap::default(),
            tentative: FastMap::default(),
            tentative_due: VecDeque::new(),
            persistent: SpillMap::new(MAX_REMEMBERED, EVIDENCE_COST),
            logins: SpillMap::new(MAX_REMEMBERED, EVIDENCE_COST),
            births: FastMap::default(),
            parallel: false,
            activity: FastMap::default(),
            ip_users: SpillMap::new(MAX_REMEMBERED, ADDR_COST),
            seen: SpillMap::new(MAX_REMEMBERED, SEEN_COST),
            spill: None,
            orphans: Vec::new(),
            finishing: None,
            watermark: Ts(i64::MIN),
            last_sweep: Ts(i64::MIN),
            adopting: 0,
            adopting_own: false,
            last_prune: Ts(i64::MIN),
            closing: None,
            stats: SessionStats::default(),
        })
    }

    /// Charges open sessions and users to `budget` (the run's) from now
    /// on.
    pub fn set_budget(&mut self, budget: &Budget) {
        self.users_charge.move_to(budget, Holder::Sessions);
        self.waiting_charge.move_to(budget, Holder::Sessions);
        self.budget = budget.clone();
    }

    /// Transactions the memory budget has no room for wait for their
    /// session's close in a file in `dir` (removed with the sessionizer),
    /// instead of being left out.
    pub fn set_spill_dir(&mut self, dir: &Path) {
        self.spill = Some(Arc::new(std::sync::Mutex::new(TxSpill::new(dir))));
        self.seen.set_dir(dir);
        self.ip_users.set_dir(dir);
        self.persistent.set_dir(dir);
        self.logins.set_dir(dir);
        self.aliases.set_dir(dir);
    }

    /// Lets at most `max` requests without an identifier wait at once for
    /// a cookie (see [`MAX_WAITING`]).
    pub fn set_max_waiting(&mut self, max: usize) {
        self.max_waiting = max;
    }

    /// Keeps at most `max` entries per client address of what attributes
    /// failed connection attempts (see [`MAX_RECENT_PER_ADDRESS`]).
    pub fn set_max_recent(&mut self, max: usize) {
        self.max_recent = max;
    }

    /// Remembers the users of at most `max` connections (see
    /// [`MAX_REMEMBERED_CONNECTIONS`]).
    pub fn set_max_remembered_connections(&mut self, max: usize) {
        self.max_conn_users = max;
    }

    /// Sets every cap of `caps`.
    pub fn set_identity_caps(&mut self, caps: IdentityCaps) {
        self.set_max_waiting(caps.max_waiting);
        self.set_max_recent(caps.max_recent_per_address);
        self.set_max_remembered_connections(caps.max_remembered_connections);
    }

    /// Notes that connection `conn` (used at `at`, its user not known yet)
    /// is `k`'s; beyond [`MAX_REMEMBERED_CONNECTIONS`], the quarter used
    /// least recently is forgotten (ties by connection id, so that which
    /// ones does not depend on the map's order).
    fn remember_conn(&mut self, conn: u64, k: &UserKey, at: Ts) {
        self.conn_user.insert(conn, (k.clone(), at));
        if self.conn_user.len() <= self.max_conn_users {
            return;
        }
        let keep = self.max_conn_users - self.max_conn_users / 4;
        let drop = self.conn_user.len() - keep;
        let mut used: Vec<(Ts, u64)> = self.conn_user.iter().map(|(c, (_, t))| (*t, *c)).collect();
        let (_, &mut last, _) = used.select_nth_unstable(drop - 1);
        self.conn_user.retain(|c, (_, t)| (*t, *c) > last);
        self.stats.connections_forgotten += drop as u64;
    }

    /// Keeps at most `max` entries of each map of users seen in memory
    /// (the rest in sorted runs in the spill folder, if there is one).
    pub fn set_max_remembered(&mut self, max: usize) {
        self.seen.set_max(max);
        self.ip_users.set_max(max);
        self.persistent.set_max(max);
        self.logins.set_max(max);
        self.aliases.set_max(max);
    }

    /// Builds sessions that close together (a sweep's, and the last ones
    /// at the end of the input) side by side on rayon's threads. The
    /// sessions are the same, in the same order.
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on;
    }

    /// Whether [`Sessionizer::set_parallel`] is on.
    pub fn parallel(&self) -> bool {
        self.parallel
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats { remembered: self.remembered(), ..self.stats.clone() }
    }

    /// Parses `users.trusted_proxies`.
    pub fn proxies(cfg: &UsersConfig) -> Result<Vec<Cidr>, String> {
        cfg.trusted_proxies
            .iter()
            .map(|p| Cidr::parse(p).map_err(|e| format!("[users] trusted_proxies: {e}")))
            .collect()
    }

    fn resolve(&self, k: UserKey) -> UserKey {
        let mut k = k;
        for _ in 0..8 {
            match self.aliases.get(&k) {
                Some(a) => k = a,
                None => break,
            }
        }
        k
    }

    /// Adds a transaction; returns the sessions that closed.
    pub fn push(&mut self, tx: Tx) -> Vec<Session> {
        let split = self.push_split(tx);
        self.joined(split)
    }

    /// As [`Sessionizer::push`], but the sessions a sweep closed together
    /// (users quiet for the timeout) come unbuilt, as a [`Closing`] whose
    /// sessions go at [`Closing::at`] among the others; the caller builds
    /// them ([`Closing::next`], [`ClosingPart::build_with`]) and hands
    /// back what they count ([`Sessionizer::count_built`]) before the next
    /// call.
    pub fn push_split(&mut self, mut tx: Tx) -> (Vec<Session>, Option<Closing>) {
        self.stats.transactions += 1;
        self.watermark = self.watermark.max(tx.start);
        let first_on_conn = !self.conn_user.contains_key(&tx.conn);
        // The session cookie names the user here and is read nowhere
        // after: it becomes the key, and the session keeps no copy.
        let cookie = tx.take_cookie();
        let ua = || tx.user_agent.clone().unwrap_or_default();
        let ev = tx.evidence();
        let pers = ev.persistent.as_ref().map(|(n, v)| text_hash(n, v));
        let key = if let Some((n, v)) = cookie {
            let raw = UserKey::Cookie(n, v);
            // The cookie came back: the browser kept it, so later first
            // visits from its address are other people. (Most of the
            // time no visit is tentative, and the raw key is not kept.)
            let k = if self.tentative.is_empty() {
                self.resolve(raw)
            } else {
                let k = self.resolve(raw.clone());
                self.tentative.remove(&raw);
                self.tentative.remove(&k);
                k
            };
            if !self.fresh.is_empty()
                && let Some(f) = self.fresh.get_mut(&(tx.client_ip, ua())).filter(|f| f.user == k)
            {
                f.returned = true;
            }
            // The server replaced the session cookie (sign-in): the new
            // value is the same user.
            if let Some((sn, sv)) = &ev.set_cookie {
                let new = UserKey::Cookie(sn.clone(), sv.clone());
                if new != k && !self.aliases.contains(&new) && !self.known(&new) {
                    self.remember_alias(new, k.clone(), tx.start);
                    self.stats.cookie_rotations += 1;
                }
            }
            Some(k)
        } else if let Some(h) = &ev.header_id {
            Some(UserKey::Header(h.clone()))
        } else if let Some((n, v)) = &ev.query_id {
            Some(UserKey::Query(n.clone(), v.clone()))
        } else if let Some((n, v)) = &ev.set_cookie {
            // A request without the session cookie, answered with one: a
            // new user, unless evidence ties it to an earlier one.
            let new = UserKey::Cookie(n.clone(), v.clone());
            let k = if self.aliases.contains(&new) || self.known(&new) {
                self.resolve(new)
            } else {
                self.birth(&tx, new, pers)
            };
            self.claim_bucket(&tx, &k, pers);
            Some(k)
        } else if let Some((k, _)) = self.conn_user.get(&tx.conn) {
            Some(self.resolve(k.clone()))
        } else if let Some(k) = tx.login.as_ref().and_then(|l| self.logins.get(&text_hash("", l))) {
            Some(self.resolve(k))
        } else if let Some(k) = pers.and_then(|h| self.persistent.get(&h)) {
            Some(self.resolve(k))
        } else if let Some(k) = self.join_fresh(&tx, pers) {
            Some(k)
        } else {
            tx.login.as_ref().map(|l| UserKey::Login(l.clone()))
        };
        if let Some(k) = &key {
            self.note_evidence(&tx, k, pers);
        }
        let mut closed = Vec::new();
        match key {
            Some(k) => {
                if first_on_conn {
                    self.note_recent(&tx, &k);
                }
                // The connection's user again, most of the time: the key
                // is not copied for that.
                match self.conn_user.get_mut(&tx.conn) {
                    Some(e) if e.0 == k => e.1 = tx.start,
                    Some(e) => *e = (k.clone(), tx.start),
                    None => self.remember_conn(tx.conn, &k, tx.start),
                }
                self.claim_conn(tx.conn, tx.client_ip, &k);
                self.add(k, tx, &mut closed);
            }
            None => {
                if self.waiting >= self.max_waiting {
                    // Waits that ran out give their places first.
                    self.sweep_if_due(&mut closed);
                }
                let ua = tx.user_agent.clone().unwrap_or_default();
                if self.waiting >= self.max_waiting {
                    self.stats.waits_refused += 1;
                    self.adopt_anonymous(tx.client_ip, &ua, tx, &mut closed);
                } else {
                    let (conn, ip) = (tx.conn, tx.client_ip);
                    self.waiting_charge.grow(tx_weight(&tx));
                    let seq = self.pending.entry((ip, ua.clone())).or_default().push(tx);
                    self.waiting += 1;
                    let e = self.pending_conns.entry(conn).or_default();
                    e.0 = true;
                    e.1.push(((ip, ua), seq));
                }
            }
        }
        self.sweep_if_due(&mut closed);
        (closed, self.closing.take())
    }

    /// Builds `closing` into `closed`, in its place.
    fn joined(&mut self, (mut closed, closing): (Vec<Session>, Option<Closing>)) -> Vec<Session> {
        self.closing = closing;
        self.settle_closing(&mut closed);
        closed
    }

    /// A request without any identifier sent on another connection before
    /// a first visit's answer (with its cookie) reached the client (reported
    /// late: a request left unanswered is written when its connection
    /// ends): that first visit's user, unless their persistent cookies
    /// differ (another browser).
    fn join_fresh(&mut self, tx: &Tx, pers: Option<u64>) -> Option<UserKey> {
        let slot = (tx.client_ip, tx.user_agent.clone().unwrap_or_default());
        let f = self.fresh.get(&slot).filter(|f| tx.start <= f.got && f.at - tx.start <= self.join_window)?;
        if f.persistent != pers {
            self.stats.split_by_persistent_cookie += 1;
            return None;
        }
        self.stats.joined_before_cookie += 1;
        // (That visit's user may since have joined another: a retry of an
        // earlier first visit, settled.)
        let user = f.user.clone();
        Some(self.resolve(user))
    }

    /// A request without the session cookie whose answer set a new one
    /// (`new`, not seen before): whose it is. The rules, in order (see
    /// docs/failures.md, "Who a request belongs to"):
    ///
    /// 1. sent on a connection an earlier user's request used (not one
    ///    from a trusted proxy, which carries many clients): theirs;
    /// 2. carrying a sign-in name an earlier user gave: theirs;
    /// 3. carrying a persistent cookie an earlier user's browser sent:
    ///    theirs;
    /// 4. sent from the address and User-Agent of a first visit whose
    ///    cookie has not come back, with the same persistent cookie (or
    ///    none on both):
    ///    - before that visit's answer reached the client: the same first
    ///      visit on another connection, theirs;
    ///    - within the retry window after it: perhaps the same person
    ///      trying again, decided when the window has passed (see
    ///      [`Sessionizer::settle`]);
    /// 5. otherwise a new user.
    fn birth(&mut self, tx: &Tx, new: UserKey, pers: Option<u64>) -> UserKey {
        let slot = (tx.client_ip, tx.user_agent.clone().unwrap_or_default());
        // (A connection from a trusted proxy carries many clients.)
        let own_conn = tx.client.ip() == tx.client_ip;
        let earlier =
            if let Some(e) = self.conn_user.get(&tx.conn).filter(|_| own_conn).map(|(e, _)| self.resolve(e.clone())) {
                self.stats.births_tied_by_connection += 1;
                Some(e)
            } else if let Some(e) = tx.login.as_ref().and_then(|l| self.logins.get(&text_hash("", l))) {
                self.stats.births_tied_by_login += 1;
                Some(self.resolve(e))
            } else if let Some(e) = pers.and_then(|h| self.persistent.get(&h)) {
                self.stats.births_tied_by_cookie += 1;
                Some(self.resolve(e))
            } else {
                None
            };
        if let Some(e) = earlier.filter(|e| *e != new) {
            self.remember_alias(new, e.clone(), tx.start);
            return e;
        }
        let (now, retry) = (self.watermark, self.retry_window);
        if let Some(f) = self.fresh.get(&slot).filter(|f| f.user != new && !f.returned && now - f.at <= retry) {
            if f.persistent != pers {
                self.stats.split_by_persistent_cookie += 1;
            } else if tx.start <= f.got && f.at - tx.start <= self.join_window {
                let e = f.user.clone();
                self.stats.births_tied_by_first_visit += 1;
                self.remember_alias(new, e.clone(), tx.start);
                return e;
            } else if tx.start >= f.at && tx.start - f.at <= self.retry_window {
                let (leader, deadline, target, failed) =
                    (f.user.clone(), f.at + self.retry_window, f.target.clone(), f.failed);
                // A reload, a link followed from its page, or any new
                // visit after a first answer that failed.
                let from_its_page = tx.referer.as_deref().is_some_and(|r| {
                    let host = r.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or(""));
                    host.is_some_and(|h| tx.host.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(h)))
                        && target_of(r) == target
                });
                let likely = failed || tx.target == target || from_its_page;
                let due = &mut self.tentative_due;
                let t = self.tentative.entry(leader.clone()).or_insert_with(|| {
                    due.push_back((deadline, leader));
                    Tentative { deadline, followers: Vec::new() }
                });
                t.followers.push((new.clone(), likely));
            }
        }
        self.fresh.insert(
            slot,
            Fresh {
                user: new.clone(),
                at: tx.start,
                got: tx.resp_start.unwrap_or(tx.start),
                persistent: pers,
                target: tx.target.clone(),
                failed: tx.status.is_none_or(|s| s >= 500)
                    || tx.outcome != pov_capture::http::Outcome::Complete
                    || tx.error_page.is_some(),
                returned: false,
            },
        );
        new
    }

    /// Later first visits from the address and User-Agent of a first visit
    /// whose cookie never came back in the retry window: the first of them
    /// that looks like the same person trying again (a reload, a link
    /// followed from its page, or any visit after a first answer that
    /// failed) is that person, and its user joins theirs. The others, and
    /// all of them when the cookie came back, stay users of their own.
    /// `now` None: every one (end of input).
    fn settle(&mut self, now: Option<Ts>, closed: &mut Vec<Session>) {
        let mut due = Vec::new();
        while let Some((at, _)) = self.tentative_due.front() {
            if now.is_some_and(|n| n <= *at) {
                break;
            }
            if let Some((_, k)) = self.tentative_due.pop_front()
                && let Some(t) = self.tentative.remove(&k)
            {
                due.push((k, t));
            }
        }
        // (Deadlines come in about time order: settled in order.)
        due.sort_by_key(|(_, t)| t.deadline);
        for (leader, t) in due {
            crate::work::step(t.followers.len() as u64);
            if let Some((f, _)) = t.followers.into_iter().find(|(_, likely)| *likely) {
                self.merge_into(&f, &leader, closed);
            }
        }
    }

    /// Moves `from`'s open session into `into`'s (a retried first visit);
    /// `from` is no user of its own from now on. Nothing happens if a
    /// session of `from` has closed already.
    fn merge_into(&mut self, from: &UserKey, into: &UserKey, closed: &mut Vec<Session>) {
        let (from, into) = (self.resolve(from.clone()), self.resolve(into.clone()));
        if from == into || !self.users.get(&from).is_some_and(|u| u.sessions == 1 && u.open.is_some()) {
            return;
        }
        let Some(st) = self.users.remove(&from) else { return };
        if let Some(n) = self.stats.users_by_rule.get_mut(from.rule()) {
            *n = n.saturating_sub(1);
        }
        let at = self.watermark;
        self.remember_alias(from, into.clone(), at);
        self.stats.retried_first_visits += 1;
        let Some(o) = st.open else { return };
        let o = *o;
        let start = o.txs.iter().map(|t| t.start).min().unwrap_or(o.last);
        let target = self.session_for(into, start, o.last, closed);
        target.txs.extend(o.txs);
        target.spilled.extend(o.spilled);
        target.failed.extend(o.failed);
        target.first = target.first.min(o.first);
        target.dropped += o.dropped;
        target.budget_dropped += o.budget_dropped;
        if let Some(first) = o.first_tx
            && target.first_tx.as_ref().is_none_or(|x| first.order < x.order)
        {
            target.first_tx = Some(first);
        }
        // (`o.charge` gives its bytes back as it goes; `target` is one
        // open session.)
        target.charge.grow(o.charge.bytes().saturating_sub(OPEN_SESSION_COST));
    }

    /// Remembers the persistent cookie and sign-in name `tx` shows as
    /// `k`'s, if no one had them before.
    fn note_evidence(&mut self, tx: &Tx, k: &UserKey, pers: Option<u64>) {
        // (Found on disk, an entry comes back to memory: the user is
        // active again.)
        let changes = self.persistent.changes() + self.logins.changes();
        if let Some(h) = pers
            && self.persistent.get_promote(&h, tx.start).is_none()
        {
            self.persistent.insert(h, k.clone(), tx.start);
        }
        if let Some(l) = &tx.login {
            let h = text_hash("", l);
            if self.logins.get_promote(&h, tx.start).is_none() {
                self.logins.insert(h, k.clone(), tx.start);
            }
        }
        if self.persistent.changes() + self.logins.changes() != changes {
            self.recharge();
        }
    }

    /// Remembers that the session cookie `from` is `into`'s.
    fn remember_alias(&mut self, from: UserKey, into: UserKey, at: Ts) {
        self.aliases.insert(from, into, at);
        self.recharge();
    }

    /// Charges the budget what the maps of [`crate::remember`] hold.
    fn recharge(&mut self) {
        let held = self.seen.held_bytes()
            + self.ip_users.held_bytes()
            + self.persistent.held_bytes()
            + self.logins.held_bytes()
            + self.aliases.held_bytes();
        self.users_charge.set(held);
    }

    /// What the maps of users seen wrote to disk and read back.
    fn remembered(&self) -> RememberStats {
        let mut r = self.seen.stats();
        for s in [self.ip_users.stats(), self.persistent.stats(), self.logins.stats(), self.aliases.stats()] {
            r.add(&s);
        }
        r
    }

    /// Moves time on to `now` without a transaction (a quiet live
    /// interface): returns the sessions that went quiet by then. `now`
    /// must not be past the start of a transaction still to come (the
    /// merge's frontier qualifies).
    pub fn advance(&mut self, now: Ts) -> Vec<Session> {
        let split = self.advance_split(now);
        self.joined(split)
    }

    /// As [`Sessionizer::advance`], with the sessions a sweep closed
    /// together unbuilt (see [`Sessionizer::push_split`]).
    pub fn advance_split(&mut self, now: Ts) -> (Vec<Session>, Option<Closing>) {
        let mut closed = Vec::new();
        if now > self.watermark {
            self.watermark = now;
            self.sweep_if_due(&mut closed);
        }
        (closed, self.closing.take())
    }

    /// Sweeps once a second of capture time.
    fn sweep_if_due(&mut self, closed: &mut Vec<Session>) {
        if self.watermark.0 >= self.last_sweep.0.saturating_add(1_000_000_000) {
            self.sweep(closed);
        }
    }

    /// Adds a failed connection attempt.
    pub fn push_failed(&mut self, f: FailedConn) -> Vec<Session> {
        let mut closed = Vec::new();
        match self.recent_user_after(&f, 0) {
            (Some(k), _) => {
                self.stats.failed_conns_attributed += 1;
                self.add_failed(k, f, &mut closed);
            }
            (None, seen) => self.pending_failed.push((f, seen)),
        }
        closed
    }

    /// Closes every session (end of input); returns them by start (see
    /// [`Sessionizer::finish_next`], which hands them out one at a time).
    pub fn finish(&mut self) -> Vec<Session> {
        let mut out = Vec::new();
        while let Some(s) = self.finish_next() {
            out.push(s);
        }
        out
    }

    /// At the end of input, the next session by start (then user), or
    /// `None` once all are out. Each is built when it is handed out, so
    /// that the sessions still open at the end (as many as the users of
    /// the last half hour) are never all built at once.
    pub fn finish_next(&mut self) -> Option<Session> {
        if self.finishing.is_none() {
            let f = self.start_finish();
            self.finishing = Some(f);
        }
        loop {
            let f = self.finishing.as_mut()?;
            if f.built.is_empty() && !f.open.is_empty() {
                let users = &self.users;
                let held = |k: &UserKey| users.get(k).and_then(|u| u.open.as_ref()).map_or(0, |o| o.txs());
                let n = chunk_len(f.open.iter().map(|(_, k)| held(k)), FINISH_CHUNK, FINISH_TXS);
                let next: Vec<(Ts, UserKey)> = f.open.drain(..n).collect();
                let sessions = self.close_users(next.iter().map(|(_, k)| k));
                let f = self.finishing.as_mut()?;
                f.built.extend(next.into_iter().zip(sessions).map(|((t, k), s)| (t, k, s)));
                continue;
            }
            let closed_first = match (f.closed.front(), f.built.front()) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(c), Some((t, k, _))) => (c.start, &c.user) <= (*t, k),
            };
            if closed_first {
                return f.closed.pop_front();
            }
            if let Some((_, _, Some(s))) = f.built.pop_front() {
                return Some(s);
            }
        }
    }

    /// Settles what waits (first visits, requests without a user, failed
    /// attempts) and lists the users still open by their session's start.
    fn start_finish(&mut self) -> Finishing {
        let mut closed = std::mem::take(&mut self.orphans);
        self.settle_closing(&mut closed);
        self.settle(None, &mut closed);
        let mut pending: Vec<(Bucket, Waiting)> = self.pending.drain().collect();
        self.pending_conns.clear();
        self.waiting = 0;
        self.waiting_charge.set(0);
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        for ((ip, ua), txs) in pending {
            let mut left = txs.live;
            for tx in txs.into_txs() {
                left = left.saturating_sub(1);
                self.adopting = left;
                self.adopt_anonymous(ip, &ua, tx, &mut closed);
            }
        }
        (self.adopting, self.adopting_own) = (0, false);
        for (f, seen) in std::mem::take(&mut self.pending_failed) {
            match self.recent_user_after(&f, seen).0 {
                Some(k) => {
                    self.stats.failed_conns_attributed += 1;
                    self.add_failed(k, f, &mut closed);
                }
                None => {
                    let k = self.active_user_before(&f).unwrap_or_else(|| {
                        self.stats.failed_conns_alone += 1;
                        UserKey::Address(f.client.ip())
                    });
                    self.add_failed(k, f, &mut closed);
                }
            }
        }
        // (A session that holds nothing starts, once built, at 0.)
        let mut open: Vec<(Ts, UserKey)> = Vec::with_capacity(self.users.len());
        let mut idle = Vec::new();
        for (k, u) in &self.users {
            match &u.open {
                Some(o) => open.push((o.start(), k.clone())),
                None => idle.push(k.clone()),
            }
        }
        for k in idle {
            self.close_user(&k);
        }
        open.sort_unstable();
        closed.sort_by(|a, b| (a.start, &a.user).cmp(&(b.start, &b.user)));
        Finishing { closed: closed.into(), open: open.into(), built: VecDeque::new() }
    }

    fn note_recent(&mut self, tx: &Tx, k: &UserKey) {
        // (Most addresses have one user: room for one entry, not four.)
        let q = self.recent.entry(tx.client_ip).or_insert_with(|| VecDeque::with_capacity(1));
        self.recent_seq += 1;
        let reach = q.back().map_or(tx.start, |r| r.reach.max(tx.start));
        q.push_back(Recent { at: tx.start, user: k.clone(), seq: self.recent_seq, reach });
        // Kept long enough for an unanswered SYN reported at the TCP idle
        // timeout to find the connection that followed it.
        let keep = self.timeout.0 / 2;
        while q.front().is_some_and(|r| r.at.0 < tx.start.0.saturating_sub(keep)) {
            q.pop_front();
        }
        // (An entry's `reach` covers those dropped before it.)
        self.stats.recent_forgotten += keep_last(q, self.max_recent);
    }

    /// The user whose first new connection from the same address (in the
    /// order they were seen) followed the failed attempt within the
    /// window; and the last entry looked at. Entries up to `seen` (looked
    /// at before for the same attempt, and found too early or too late)
    /// are skipped, as are those before the first that started at or
    /// after the attempt: an attempt waiting for its window looks at each
    /// connection once, not once a second.
    fn recent_user_after(&self, f: &FailedConn, seen: u64) -> (Option<UserKey>, u64) {
        let Some(q) = self.recent.get(&f.client.ip()) else { return (None, seen) };
        let last = q.back().map_or(seen, |r| r.seq.max(seen));
        let until = f.end + self.retry_window;
        let from = q.partition_point(|r| r.seq <= seen).max(q.partition_point(|r| r.reach < f.start));
        let found = q.range(from..).find(|r| {
            crate::work::step(1);
            r.at >= f.start && r.at <= until
        });
        (found.map(|r| self.resolve(r.user.clone())), last)
    }

    /// Requests waiting on this connection (from address `ip`) belong to
    /// `k`.
    fn claim_conn(&mut self, conn: u64, ip: IpAddr, k: &UserKey) {
        let Some((true, places)) = self.pending_conns.remove(&conn) else { return };
        let mut claimed = Vec::new();
        let mut elsewhere = Vec::new();
        for (key, seq) in places {
            crate::work::step(1);
            if key.0 != ip {
                // (Waiting under another address: not taken, and not
                // looked at again until a new request waits on this
                // connection.)
                elsewhere.push((key, seq));
                continue;
            }
            if let Some(q) = self.pending.get_mut(&key) {
                claimed.extend(q.take(seq));
                if q.is_empty() {
                    self.pending.remove(&key);
                }
            }
        }
        if !elsewhere.is_empty() {
            self.pending_conns.insert(conn, (false, elsewhere));
        }
        self.unwait(&claimed);
        let mut sink = Vec::new();
        for t in claimed {
            self.stats.joined_before_cookie += 1;
            self.add(k.clone(), t, &mut sink);
        }
        self.orphans.extend(sink);
    }

    /// `txs` no longer wait.
    fn unwait<'t>(&mut self, txs: impl IntoIterator<Item = &'t Tx>) {
        let (n, bytes) = txs.into_iter().fold((0, 0), |(n, b), t| (n + 1, b + tx_weight(t)));
        self.waiting -= n;
        self.waiting_charge.shrink(bytes);
    }

    /// A new user's first answer set their cookie: earlier requests from
    /// the same address and User-Agent that no one claimed (other
    /// connections of the same first visit) are theirs.
    fn claim_bucket(&mut self, tx: &Tx, k: &UserKey, pers: Option<u64>) {
        let ua = tx.user_agent.clone().unwrap_or_default();
        let Some(q) = self.pending.get_mut(&(tx.client_ip, ua.clone())) else { return };
        let from = tx.start - self.join_window;
        let (conn_user, aliases) = (&self.conn_user, &self.aliases);
        let claimed = q.take_where(|t| {
            let other_owner = conn_user.get(&t.conn).is_some_and(|(o, _)| o != k && aliases.get(o).as_ref() != Some(k));
            // (Another browser: its persistent cookie differs.)
            let same_browser = t.evidence().persistent.as_ref().map(|(n, v)| text_hash(n, v)) == pers;
            t.start >= from && !other_owner && same_browser
        });
        if q.is_empty() {
            self.pending.remove(&(tx.client_ip, ua));
        }
        self.unwait(&claimed);
        let mut sink = Vec::new();
        for t in claimed {
            self.stats.joined_before_cookie += 1;
            if !self.conn_user.contains_key(&t.conn) {
                self.remember_conn(t.conn, k, t.start);
            }
            self.add(k.clone(), t, &mut sink);
        }
        self.orphans.extend(sink);
    }

    /// A request that waited for a cookie in vain: the user of its
    /// connection; else the user its persistent cookie names (a user of
    /// its own, keyed by that cookie, if no one had it before); else its
    /// address and User-Agent.
    fn adopt_anonymous(&mut self, ip: IpAddr, ua: &str, tx: Tx, closed: &mut Vec<Session>) {
        let persistent = &tx.evidence().persistent;
        let pers = persistent.as_ref().map(|(n, v)| text_hash(n, v));
        let k = match (self.conn_user.get(&tx.conn), persistent) {
            (Some((k, _)), _) => k.clone(),
            (None, Some((n, v))) => match pers.and_then(|h| self.persistent.get(&h)) {
                Some(k) => k.clone(),
                None => UserKey::Cookie(n.clone(), v.clone()),
            },
            (None, None) => UserKey::Client(ip, ua.to_string()),
        };
        // Its address and browser's own user, directly or through its
        // connection: the requests that could not wait (beyond
        // `max_waiting`) were adopted during the pass, and the connections
        // they used name the same user. (Through a connection, the session
        // of a robot's thousands of waiting requests was grown by doubling,
        // each growth a copy of all.)
        self.adopting_own = matches!(&k, UserKey::Client(i, u) if *i == ip && u == ua);
        let k = self.resolve(k);
        if !self.conn_user.contains_key(&tx.conn) {
            self.note_recent(&tx, &k);
            self.remember_conn(tx.conn, &k, tx.start);
        }
        self.note_evidence(&tx, &k, pers);
        self.add(k, tx, closed);
    }

    fn note_activity(&mut self, ip: IpAddr, at: Ts, k: &UserKey) {
        if let Some(((only, shared), last)) = self.ip_users.get_hot_mut(&ip) {
            if !*shared && only != k {
                *shared = true;
            }
            *last = (*last).max(at);
        } else {
            let v = match self.ip_users.get(&ip) {
                Some((only, shared)) => {
                    let shared = shared || only != *k;
                    (only, shared)
                }
                None => (k.clone(), false),
            };
            self.ip_users.insert(ip, v, at);
            self.recharge();
        }
        let keep = self.join_window;
        let q = self.activity.entry(ip).or_insert_with(|| VecDeque::with_capacity(1));
        if q.back().is_some_and(|(t, b)| b == k && *t <= at) {
            if let Some(last) = q.back_mut() {
                last.0 = at;
            }
        } else {
            q.push_back((at, k.clone()));
        }
        while q.front().is_some_and(|(t, _)| at - *t > keep + keep) {
            q.pop_front();
        }
        self.stats.recent_forgotten += keep_last(q, self.max_recent);
    }

    /// The user last active from the attempt's address in the join window
    /// before it (a user mid-visit whose next connection failed and who
    /// then left); else the only user the address ever had.
    fn active_user_before(&self, f: &FailedConn) -> Option<UserKey> {
        let recent = self.activity.get(&f.client.ip()).and_then(|q| {
            q.iter().rev().find(|(t, _)| *t <= f.start && f.start - *t <= self.join_window).map(|(_, k)| k.clone())
        });
        let only = || match self.ip_users.get(&f.client.ip()) {
            Some((k, false)) if !matches!(k, UserKey::Address(_)) => Some(k),
            _ => None,
        };
        recent.or_else(only).map(|k| self.resolve(k))
    }

    /// Puts `tx` in `k`'s open session. What only served to identify the
    /// user (User-Agent, session cookie, Set-Cookie, identity header and
    /// query parameter: a few hundred bytes a transaction) is dropped from
    /// it there; the session keeps the User-Agent it shows.
    fn add(&mut self, k: UserKey, mut tx: Tx, closed: &mut Vec<Session>) {
        self.note_activity(tx.client_ip, tx.start, &k);
        if self.rules.robots.counts_identities() && !self.known(&k) {
            // A user first seen: when, from where, with what User-Agent.
            let (n, w) = (self.rules.robots.identities(), self.rules.robots.identity_window());
            let b = self.births.entry((tx.client_ip, tx.user_agent.clone().unwrap_or_default())).or_default();
            b.add(tx.start, n, w);
        }
        let (start, end) = (tx.start, tx.end());
        let (max, adopting, own) = (self.max_txs, self.adopting, self.adopting_own);
        // A handle of its own, for while `open` borrows `self`.
        let spill = self.spill.clone();
        let open = self.session_for(k, start, end, closed);
        if open.txs.len() + open.spilled.len() >= max {
            open.dropped += 1;
            self.stats.session_tx_cap_drops += 1;
        } else {
            let order = (tx.start, tx.conn, tx.depth);
            let user_agent = tx.user_agent.take();
            if open.first_tx.as_ref().is_none_or(|x| order < x.order) {
                open.first_tx = Some(FirstTx { order, user_agent, client_ip: tx.client_ip });
            }
            tx.evidence = None;
            let fits = open.charge.try_grow(tx_weight(&tx));
            if fits {
                // A transaction is some 530 bytes: grow by a quarter rather
                // than double (a first one gets room for one, not four), so
                // a session holds at most a quarter more than it needs.
                // But at the end of the input, when the requests that
                // waited for a cookie join their sessions (thousands of a
                // robot's at once, to be built right after), room is made
                // for those that follow, not a quarter at a time, each
                // growth a copy of all: in one go in the session of their
                // address and browser, where all go but those whose
                // connection or persistent cookie names another user (at
                // most that many too many, once a bucket: the waiting
                // requests are capped); up to double in any other.
                if open.txs.len() == open.txs.capacity() {
                    let ahead = if own { adopting + 1 } else { adopting.min(open.txs.len()) };
                    open.txs.reserve_exact((open.txs.len() / 4 + 1).max(ahead));
                }
                open.first = open.first.min(tx.start);
                open.txs.push(tx);
            } else {
                // The memory budget has no room for it: it waits on disk
                // for its session to close; without a spill file, the
                // session goes on without it, and says so.
                match spill.as_ref().and_then(|s| s.lock().ok()?.write(&tx)) {
                    Some(at) => {
                        open.first = open.first.min(tx.start);
                        open.spilled.push(at);
                        self.stats.session_txs_spilled += 1;
                    }
                    None => {
                        open.dropped += 1;
                        open.budget_dropped += 1;
                        self.stats.session_budget_drops += 1;
                    }
                }
            }
        }
    }

    fn add_failed(&mut self, k: UserKey, f: FailedConn, closed: &mut Vec<Session>) {
        let (start, end) = (f.start, f.end);
        let open = self.session_for(k, start, end, closed);
        open.first = open.first.min(start);
        open.failed.push(f);
    }

    /// The user's open session for activity from `start` to `end`: the
    /// current one, or a new one when the user was quiet for the timeout
    /// (the old one goes to `closed`).
    fn session_for(&mut self, k: UserKey, start: Ts, end: Ts, closed: &mut Vec<Session>) -> &mut OpenSession {
        let timeout = self.timeout;
        let open_last = self.users.get(&k).and_then(|u| u.open.as_ref()).map(|o| o.last);
        let stale = open_last.is_some_and(|last| start - last > timeout);
        if stale && let Some(s) = self.close_user(&k) {
            closed.push(s);
        }
        // The key is copied only for a session that opens (its due entry),
        // not for every transaction of an open one. (Closing a user takes
        // it out of `users`.)
        let rule = k.rule();
        let due = (stale || open_last.is_none()).then(|| k.clone());
        let seen = &mut self.seen;
        let st = self
            .users
            .entry(k)
            .or_insert_with_key(|k| UserState { open: None, sessions: seen.take(&key_hash(k)).unwrap_or(0) });
        if st.sessions == 0 && st.open.is_none() {
            *self.stats.users_by_rule.entry(rule.to_string()).or_default() += 1;
        }
        if let Some(k) = due {
            self.due.push(Reverse((start + timeout, k)));
        }
        let budget = &self.budget;
        let open = st.open.get_or_insert_with(|| {
            st.sessions += 1;
            Box::new(OpenSession {
                index: st.sessions,
                txs: Vec::new(),
                first_tx: None,
                failed: Vec::new(),
                last: start,
                first: Ts(i64::MAX),
                dropped: 0,
                budget_dropped: 0,
                spilled: Vec::new(),
                charge: budget.charge(Holder::Sessions, OPEN_SESSION_COST),
            })
        });
        open.last = open.last.max(end);
        open
    }

    /// Moves time on: expires waiting requests and failed attempts, closes
    /// quiet sessions.
    fn sweep(&mut self, closed: &mut Vec<Session>) {
        self.last_sweep = self.watermark;
        let now = self.watermark;
        closed.append(&mut self.orphans);
        // Requests that waited the join window without a cookie: anonymous.
        let join = self.join_window;
        let mut expired: Vec<(IpAddr, String, Tx)> = Vec::new();
        for ((ip, ua), q) in self.pending.iter_mut() {
            crate::work::step(1);
            for t in q.pop_expired(|t| now - t.start > join) {
                expired.push((*ip, ua.clone(), t));
            }
        }
        self.pending.retain(|_, q| !q.is_empty());
        self.unwait(expired.iter().map(|(_, _, t)| t));
        for (ip, ua, t) in expired {
            self.adopt_anonymous(ip, &ua, t, closed);
        }
        // Failed attempts whose window passed.
        let window = self.retry_window;
        let mut keep = Vec::new();
        for (f, seen) in std::mem::take(&mut self.pending_failed) {
            crate::work::step(1);
            let (user, seen) = self.recent_user_after(&f, seen);
            if let Some(k) = user {
                self.stats.failed_conns_attributed += 1;
                self.add_failed(k, f, closed);
            } else if now - f.end > window {
                let k = self.active_user_before(&f).unwrap_or_else(|| {
                    self.stats.failed_conns_alone += 1;
                    UserKey::Address(f.client.ip())
                });
                self.add_failed(k, f, closed);
            } else {
                keep.push((f, seen));
            }
        }
        self.pending_failed = keep;
        // First visits whose retry window passed.
        if !self.tentative_due.is_empty() {
            self.settle(Some(now), closed);
        }
        // Quiet sessions, and state of connections and addresses gone
        // quiet: once a minute of capture time (a session closes at most a
        // minute late; a user coming back after the timeout starts a new
        // one whatever the sweep did).
        if now.0 < self.last_prune.0.saturating_add(60_000_000_000) {
            return;
        }
        self.last_prune = now;
        let timeout = self.timeout;
        let mut quiet: Vec<UserKey> = Vec::new();
        let mut again = Vec::new();
        while self.due.peek().is_some_and(|Reverse((d, _))| now > *d) {
            let Some(Reverse((_, k))) = self.due.pop() else { break };
            match self.users.get(&k).and_then(|u| u.open.as_ref()) {
                Some(o) if now - o.last > timeout => quiet.push(k),
                Some(o) => again.push(Reverse((o.last + timeout, k))),
                None => {}
            }
        }
        // (A user whose session was closed and opened again between two
        // sweeps has two entries; put back once.)
        again.sort_unstable();
        again.dedup();
        self.due.extend(again);
        quiet.sort_unstable();
        quiet.dedup();
        // They are built by whoever takes them (`push_split`), or in their
        // place in `closed` before the call returns.
        self.settle_closing(closed);
        let mut batch: Vec<Unbuilt> = self.take_open(&quiet).into_iter().flatten().collect();
        batch.sort_by(|a, b| (a.open.start(), &a.user).cmp(&(b.open.start(), &b.user)));
        if !batch.is_empty() {
            let reader = self.spill_reader(batch.iter());
            let (rules, parallel) = (Arc::clone(&self.rules), self.parallel);
            self.closing = Some(Closing { at: closed.len(), items: batch.into(), reader, rules, parallel });
        }
        // (Kept past the retry window for requests that come late, which
        // join a first visit they were sent before: `join_fresh`.)
        let keep_fresh = self.retry_window.max(join);
        self.fresh.retain(|_, f| now - f.at <= keep_fresh);
        // Crowded spans a closing session may still look at (sessions
        // close a timeout after their last activity), and births a new one
        // may still make a crowd with.
        let w = self.rules.robots.identity_window();
        let keep_busy = timeout + w + Dur(120_000_000_000);
        self.births.retain(|_, b| {
            b.busy.retain(|(_, end)| now - *end <= keep_busy);
            !b.busy.is_empty() || b.recent.back().is_some_and(|t| now - *t <= w)
        });
        let (keep_recent, keep_activity) = (Dur(self.timeout.0 / 2), join + join);
        self.recent.retain(|_, q| {
            while q.front().is_some_and(|r| now - r.at > keep_recent) {
                q.pop_front();
            }
            !q.is_empty()
        });
        self.activity.retain(|_, q| {
            while q.front().is_some_and(|(t, _)| now - *t > keep_activity) {
                q.pop_front();
            }
            !q.is_empty()
        });
        self.conn_user.retain(|_, (_, t)| now - *t <= timeout);
        let waiting: FastSet<u64> = self.pending.values().flat_map(Waiting::conns).collect();
        let pending = &self.pending;
        self.pending_conns.retain(|c, (_, places)| {
            places.retain(|(key, seq)| pending.get(key).is_some_and(|q| q.is_live(*seq)));
            waiting.contains(c) && !places.is_empty()
        });
    }

    fn close_user(&mut self, k: &UserKey) -> Option<Session> {
        self.close_users([k]).pop().flatten()
    }

    /// Closes the users `keys` (those with a session open), in order: each
    /// one's session, built (on rayon's threads when
    /// [`Sessionizer::set_parallel`] is on and there are several).
    fn close_users<'k>(&mut self, keys: impl IntoIterator<Item = &'k UserKey>) -> Vec<Option<Session>> {
        let unbuilt = self.take_open(keys);
        let open: Vec<bool> = unbuilt.iter().map(Option::is_some).collect();
        let unbuilt: Vec<Unbuilt> = unbuilt.into_iter().flatten().collect();
        let reader = self.spill_reader(unbuilt.iter());
        let (sessions, built) = build_all(unbuilt, reader.as_deref(), &self.rules, self.parallel, |s| s);
        self.count_built(built);
        let mut sessions = sessions.into_iter();
        open.into_iter().map(|o| if o { sessions.next() } else { None }).collect()
    }

    /// Takes the users `keys` out (those with a session open), in order:
    /// each one's session, closed but not built.
    fn take_open<'k>(&mut self, keys: impl IntoIterator<Item = &'k UserKey>) -> Vec<Option<Unbuilt>> {
        let mut opens = Vec::new();
        for k in keys {
            let open = self.users.remove(k).and_then(|st| {
                // From now on the user is a count under its key's hash.
                self.seen.insert(key_hash(k), st.sessions, self.watermark);
                st.open
            });
            opens.push(open.map(|o| {
                self.stats.sessions += 1;
                // Whether it started in a crowd of users new to its address
                // and browser is looked up now: the crowds are forgotten as
                // time goes on, and it may be built after.
                let crowded = self.rules.robots.counts_identities()
                    && o.first_ip().is_some_and(|ip| {
                        let ua = o.first_tx.as_ref().and_then(|x| x.user_agent.clone()).unwrap_or_default();
                        self.births.get(&(ip, ua)).is_some_and(|b| b.crowded(o.start()))
                    });
                Unbuilt { user: k.clone(), open: *o, crowded }
            }));
        }
        self.recharge();
        opens
    }

    /// A handle to read back the spilled transactions of `unbuilt`, if
    /// any has some (a handle of its own, so that sessions are built side
    /// by side).
    fn spill_reader<'u>(&self, mut unbuilt: impl Iterator<Item = &'u Unbuilt>) -> Option<Arc<File>> {
        if !unbuilt.any(|u| !u.open.spilled.is_empty()) {
            return None;
        }
        self.spill.as_ref().and_then(|s| s.lock().ok()?.reader())
    }

    /// Counts what building closed sessions made and lost (what
    /// [`ClosingPart::build_with`] returned).
    pub fn count_built(&mut self, built: Built) {
        self.stats.pages += built.pages;
        if built.lost > 0 {
            self.stats.session_budget_drops += built.lost;
            // As for a failed write: no more spilling.
            if let Some(mut s) = self.spill.as_ref().and_then(|s| s.lock().ok()) {
                s.failed = true;
            }
        }
    }

    /// Builds a sweep's closing sessions into `closed`, where they go, if
    /// one is waiting.
    fn settle_closing(&mut self, closed: &mut Vec<Session>) {
        if let Some(mut c) = self.closing.take() {
            let at = c.at.min(closed.len());
            let (sessions, built) = c.next(usize::MAX).build_with(|s| s);
            self.count_built(built);
            closed.splice(at..at, sessions);
        }
    }

    /// Whether `k` was seen (with a session open or closed).
    fn known(&self, k: &UserKey) -> bool {
        self.users.contains_key(k) || self.seen.contains(&key_hash(k))
    }
}

/// What building a closed session reads of the sessionizer's settings
/// (shared with the threads that build sessions side by side).
struct SessionRules {
    pages: PageRules,
    page_window: Dur,
    conversion_post: Option<Regex>,
    robots: RobotRules,
}

/// A session closed but not built yet.
struct Unbuilt {
    user: UserKey,
    open: OpenSession,
    /// It started in a crowd of users new to its address and browser (the
    /// robots' identities rule), looked up when it closed.
    crowded: bool,
}

impl Unbuilt {
    /// Its transactions, in memory and spilled.
    fn txs(&self) -> usize {
        self.open.txs()
    }
}

/// How many of the items, each holding so many transactions, go in one
/// part: up to `max_items`, and while they hold at most `max_txs` together,
/// but always one.
fn chunk_len(txs: impl IntoIterator<Item = usize>, max_items: usize, max_txs: usize) -> usize {
    let (mut n, mut held) = (0, 0usize);
    for t in txs {
        if n == max_items || (n > 0 && held.saturating_add(t) > max_txs) {
            break;
        }
        held = held.saturating_add(t);
        n += 1;
    }
    n
}

impl OpenSession {
    /// Its transactions, in memory and spilled.
    fn txs(&self) -> usize {
        self.txs.len() + self.spilled.len()
    }

    /// Its start once built (0 when it holds nothing).
    fn start(&self) -> Ts {
        if self.first.0 == i64::MAX { Ts(0) } else { self.first }
    }

    /// The client address it shows once built: its first transaction's,
    /// or without one its first failed attempt's.
    fn first_ip(&self) -> Option<IpAddr> {
        match &self.first_tx {
            Some(x) => Some(x.client_ip),
            None => self.failed.iter().min_by_key(|f| (f.start, f.conn)).map(|f| f.client.ip()),
        }
    }
}

/// What building closed sessions made and lost, for the sessionizer's
/// counts: hand it back with [`Sessionizer::count_built`].
#[derive(Debug, Default, Clone, Copy)]
#[must_use]
pub struct Built {
    pages: u64,
    lost: u64,
}

/// The sessions a sweep closed together (users quiet for the session
/// timeout), taken out of the sessionizer but not built yet, by start then
/// user ([`Sessionizer::push_split`]). Whoever writes them builds them in
/// parts ([`Closing::next`]), so that one part can be built while the one
/// before is written: when a quiet spell closes thousands of sessions at
/// once, building them all and then writing them all leaves the other
/// cores waiting on the writer.
pub struct Closing {
    at: usize,
    items: VecDeque<Unbuilt>,
    reader: Option<Arc<File>>,
    rules: Arc<SessionRules>,
    parallel: bool,
}

impl Closing {
    /// Where these sessions go among those returned with them: before the
    /// one at this index.
    pub fn at(&self) -> usize {
        self.at
    }

    /// Sessions not handed out yet.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether all were handed out.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next sessions, in order, up to `txs` transactions (at least one
    /// session while any is left).
    pub fn next(&mut self, txs: usize) -> ClosingPart {
        let n = chunk_len(self.items.iter().map(Unbuilt::txs), usize::MAX, txs);
        let items = self.items.drain(..n).collect();
        ClosingPart { items, reader: self.reader.clone(), rules: Arc::clone(&self.rules), parallel: self.parallel }
    }
}

/// Sessions of a [`Closing`] to build (on any thread).
pub struct ClosingPart {
    items: Vec<Unbuilt>,
    reader: Option<Arc<File>>,
    rules: Arc<SessionRules>,
    parallel: bool,
}

impl ClosingPart {
    /// Builds the sessions (side by side on rayon's threads when the
    /// sessionizer runs on several), each handed to `f`, in order; and
    /// what the sessionizer counts of them.
    pub fn build_with<T: Send>(self, f: impl Fn(Session) -> T + Sync) -> (Vec<T>, Built) {
        build_all(self.items, self.reader.as_deref(), &self.rules, self.parallel, f)
    }
}

/// Builds `items` (reading back their spilled transactions through
/// `reader`), each handed to `f`; side by side when `parallel` and there
/// are several.
fn build_all<T: Send>(
    items: Vec<Unbuilt>,
    reader: Option<&File>,
    rules: &SessionRules,
    parallel: bool,
    f: impl Fn(Session) -> T + Sync,
) -> (Vec<T>, Built) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let back: Vec<Vec<Option<Tx>>> = match reader {
        Some(r) => {
            let wants: Vec<&[(u64, u32)]> = items.iter().map(|u| u.open.spilled.as_slice()).collect();
            read_spilled_many(r, &wants, parallel)
        }
        None => items.iter().map(|_| Vec::new()).collect(),
    };
    let (pages, lost) = (AtomicU64::new(0), AtomicU64::new(0));
    let one = |(u, back): (Unbuilt, Vec<Option<Tx>>)| {
        let (s, unread) = rules.build(u, back);
        pages.fetch_add(s.pages.len() as u64, Relaxed);
        lost.fetch_add(unread, Relaxed);
        f(s)
    };
    let made: Vec<T> = if parallel && items.len() > 1 {
        use rayon::iter::{IndexedParallelIterator, IntoParallelIterator, ParallelIterator};
        items.into_par_iter().zip(back).map(one).collect()
    } else {
        items.into_iter().zip(back).map(one).collect()
    };
    (made, Built { pages: pages.into_inner(), lost: lost.into_inner() })
}

impl SessionRules {
    /// The session `u`, whose spilled transactions were read back as
    /// `back` (in order; `None` for one that could not be read), and how
    /// many of them could not be.
    fn build(&self, u: Unbuilt, back: Vec<Option<Tx>>) -> (Session, u64) {
        let Unbuilt { user, open, crowded } = u;
        let mut txs = open.txs;
        // Those that waited on disk come back, read for it as `back`
        // (memory the budget did not have room for, held for as long as
        // the session is built).
        let mut unread = 0;
        // Room for them at once: grown one at a time, a long session's
        // vector of 530-byte transactions was copied a dozen times.
        txs.reserve_exact(open.spilled.len());
        let mut back = back.into_iter();
        for _ in &open.spilled {
            match back.next().flatten() {
                Some(t) => txs.push(t),
                None => unread += 1,
            }
        }
        // Usually in order already; sorting would take a buffer of half
        // the transactions.
        if !txs.is_sorted_by_key(|t| (t.start, t.conn, t.depth)) {
            txs.sort_by_key(|t| (t.start, t.conn, t.depth));
        }
        let mut failed = open.failed;
        failed.sort_by_key(|f| (f.start, f.conn));
        let start =
            txs.first().map(|t| t.start).into_iter().chain(failed.first().map(|f| f.start)).min().unwrap_or(Ts(0));
        let end = txs.iter().map(Tx::end).chain(failed.iter().map(|f| f.end)).max().unwrap_or(start);
        let pages = build_pages(&txs, &failed, &self.pages, self.page_window, self.conversion_post.as_ref());

        // Conversion and money.
        let mut orders = 0u32;
        let mut order_value: Option<f64> = None;
        let mut cart_value = None;
        for t in &txs {
            if let Some(v) = t.cart_value {
                cart_value = Some(v);
            }
            // (A 2xx whose body says it failed placed nothing.)
            let ok = t.status.is_some_and(|s| (200..400).contains(&s)) && t.error_page.is_none();
            let post = t.method.as_deref() == Some("POST");
            if post && ok && self.conversion_post.as_ref().is_some_and(|re| re.is_match(&t.target)) {
                orders += 1;
                if let Some(v) = t.order_value {
                    *order_value.get_or_insert(0.0) += v;
                }
            } else if post && t.order_value.is_some() && t.cart_value.is_none() {
                cart_value = t.order_value;
            }
        }
        if orders == 0 {
            for p in &pages {
                if p.conversion && p.status.is_some_and(|s| (200..300).contains(&s)) {
                    orders += 1;
                    if let Some(v) = p.documents.last().and_then(|d| txs[*d].order_value.or(txs[*d].cart_value)) {
                        *order_value.get_or_insert(0.0) += v;
                    }
                }
            }
        }
        let first = txs.first();
        let client_ip = first.map(|t| t.client_ip).or(failed.first().map(|f| f.client.ip()));
        let user_agent = open.first_tx.and_then(|x| x.user_agent);
        let robot = self.robots.judge(user_agent.as_deref(), &txs, &pages, crowded);
        let session = Session {
            index: open.index,
            start,
            end,
            client_ip,
            user_agent,
            robot,
            login: txs.iter().find_map(|t| t.login.clone()),
            converted: orders > 0,
            orders,
            order_value,
            cart_value,
            dropped_txs: open.dropped,
            budget_dropped_txs: open.budget_dropped,
            charge: open.charge,
            user,
            txs,
            failed,
            pages,
        };
        (session, unread)
    }
}

/// The path and query a Referer or Location names (scheme and host
/// dropped).
fn target_of(url: &str) -> &str {
    // The first `://`, found from the colons (`find` with a text pattern
    // set up a searcher for each URL: 590 instructions a call).
    let b = url.as_bytes();
    let scheme_end = b
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b':')
        .map(|(i, _)| i)
        .find(|&i| b.get(i + 1..i + 3) == Some(&b"//"[..]));
    match scheme_end.and_then(|i| url.get(i + 3..)) {
        Some(rest) => match rest.find('/') {
            Some(j) => &rest[j..],
            None => "/",
        },
        None => url,
    }
}

/// A resource that starts later than this after the page's last response
/// so far is a user action, not part of the load.
const LOAD_QUIET: Dur = Dur::from_millis(1000);

/// How soon after a request died unanswered the same request counts as the
/// browser trying again by itself (browsers retry at once; a lost SYN on
/// the new connection can add a second).
pub const BROWSER_RETRY: Dur = Dur::from_millis(1000);

/// The latest of some items (pages) whose reach (a time) is at or after a
/// moment that only moves forward, in O(1) amortised: an item is dropped
/// once the moment passes its reach, or once a later item reaches at least
/// as far (that one would always be chosen instead).
#[derive(Default)]
struct LatestReaching {
    /// (reach, item), items in increasing order and reaches strictly
    /// decreasing.
    stack: Vec<(Ts, usize)>,
}

impl LatestReaching {
    /// Adds `item`, later than every item so far.
    fn push(&mut self, reach: Ts, item: usize) {
        while self.stack.last().is_some_and(|(r, _)| *r <= reach) {
            crate::work::step(1);
            self.stack.pop();
        }
        self.stack.push((reach, item));
    }

    /// The latest item whose reach is at or after `now` (never earlier than
    /// any `now` asked before).
    fn latest(&mut self, now: Ts) -> Option<usize> {
        while self.stack.last().is_some_and(|(r, _)| *r < now) {
            crate::work::step(1);
            self.stack.pop();
        }
        self.stack.last().map(|(_, i)| *i)
    }
}

/// Cuts a session's transactions (sorted by request start) and failed
/// connection attempts (sorted by start) into page views.
fn build_pages(
    txs: &[Tx],
    failed: &[FailedConn],
    rules: &PageRules,
    window: Dur,
    order_post: Option<&Regex>,
) -> Vec<PageView> {
    let pages = place(txs, failed, window, order_post);
    finish_pages(pages, txs, failed, rules, window)
}

/// Puts every transaction and failed attempt in a page view, in O(1)
/// amortised each (plus a hash lookup of its Referer): the pages it could
/// join are kept indexed rather than searched. Pages come out in the order
/// they were made.
fn place(txs: &[Tx], failed: &[FailedConn], window: Dur, order_post: Option<&Regex>) -> Vec<PageView> {
    let mut pages: Vec<PageView> = Vec::new();
    let new_page = |i: usize, t: &Tx, doc: bool| PageView {
        index: 0,
        start: t.start,
        end: t.end(),
        host: t.host.clone(),
        url: t.target.clone(),
        name: None,
        step: None,
        conversion: false,
        apdex_t_ms: None,
        documents: if doc { vec![i] } else { Vec::new() },
        txs: vec![i],
        failed: Vec::new(),
        status: if doc { t.status } else { None },
        load: Dur::ZERO,
        server: Dur::ZERO,
        network: Dur::ZERO,
    };
    // A Referer names a page by its URL or the target of one of its
    // documents: each such target, to the latest page that has it (pages
    // are made in request order, so the latest page is the last made, and
    // every page started at or before the transaction at hand).
    let mut by_target: FastMap<&str, usize> = FastMap::default();
    // A resource without a page by Referer joins the latest page started
    // within the page window before it (or still loading its first
    // request): a page's reach is how long after its start that holds.
    let mut by_time = LatestReaching::default();
    let reach = |p: &PageView| p.start + window.max(p.end - p.start);
    for (i, t) in txs.iter().enumerate() {
        crate::work::step(1);
        // Placing an order is a funnel step of its own, whether the form
        // posts as a navigation or from a script.
        let order = t.method.as_deref().is_some_and(|m| m != "GET" && m != "HEAD")
            && order_post.is_some_and(|re| re.is_match(&t.target));
        if t.class == ResourceClass::Document || order {
            // The target of the previous document's redirect continues its
            // page view.
            if let Some(p) = pages.last_mut() {
                let prev = p.documents.last().map(|d| &txs[*d]);
                // (An order's redirect to its confirmation is the next
                // funnel step, not the same page.)
                let follows = !order
                    && prev.is_some_and(|d| {
                        d.method.as_deref().is_none_or(|m| m == "GET" || m == "HEAD")
                            && d.status.is_some_and(|s| (300..400).contains(&s))
                            && d.location.as_deref().is_some_and(|l| target_of(l) == t.target)
                            && t.start - d.end() <= Dur::from_secs(10)
                    });
                // A browser tries a page again by itself, at once, when its
                // connection died before any answer (Chromium does, up to
                // twice, on a reset): the same page view, not the user
                // coming back.
                let retried = !order
                    && prev.is_some_and(|d| {
                        d.status.is_none()
                            && d.method == t.method
                            && d.target == t.target
                            && t.start >= d.start
                            && t.start - d.end() <= BROWSER_RETRY
                    });
                if (follows || retried) && p.documents.len() < 64 {
                    p.documents.push(i);
                    p.txs.push(i);
                    p.url = t.target.clone();
                    p.status = t.status;
                    by_target.insert(t.target.as_str(), pages.len() - 1);
                    continue;
                }
            }
            let p = new_page(i, t, true);
            by_time.push(reach(&p), pages.len());
            by_target.insert(t.target.as_str(), pages.len());
            pages.push(p);
            continue;
        }
        // A resource: the latest page its Referer names, else the latest
        // page started shortly before it.
        let by_referer = t.referer.as_deref().map(target_of).and_then(|r| by_target.get(r).copied());
        match by_referer.or_else(|| by_time.latest(t.start)) {
            Some(pi) => pages[pi].txs.push(i),
            None => {
                let p = new_page(i, t, false);
                by_time.push(reach(&p), pages.len());
                by_target.insert(t.target.as_str(), pages.len());
                pages.push(p);
            }
        }
    }
    // Failed connection attempts: the page that was loading then, or the
    // one that started right after (the browser trying again at once).
    // One the user tried again later by hand is a page view of its own: a
    // page they never saw.
    //
    // The pages made so far are in order of start; attempts come in order
    // of start too. "Loading then": the latest page started by the
    // attempt's start whose last response ended at or after it, found as
    // above with a page's end as its reach; pages are added as the
    // attempts' starts pass theirs. A page made here for an attempt has no
    // transaction (its end is its start): only the last one made can be
    // loading at a later attempt's start (when both start together).
    let made = pages.len();
    let ends: Vec<Ts> = pages
        .iter()
        .map(|p| {
            crate::work::step(1 + p.txs.len() as u64);
            p.txs.iter().map(|i| txs[*i].end()).max().unwrap_or(p.start)
        })
        .collect();
    let mut loading = LatestReaching::default();
    let mut added = 0;
    let mut last_made: Option<usize> = None;
    for (fi, f) in failed.iter().enumerate() {
        crate::work::step(1);
        while added < made && pages[added].start <= f.start {
            loading.push(ends[added], added);
            added += 1;
        }
        let own = last_made.filter(|pi| pages[*pi].start == f.start);
        // Right after: the first page starting at or after it, soon enough.
        let next = || {
            let pi = pages[..made].partition_point(|p| p.start < f.start);
            (pi < made && pages[pi].start - f.end <= LOAD_QUIET).then_some(pi)
        };
        match own.or_else(|| loading.latest(f.start)).or_else(next) {
            Some(pi) => pages[pi].failed.push(fi),
            None => {
                last_made = Some(pages.len());
                pages.push(PageView {
                    index: 0,
                    start: f.start,
                    end: f.end,
                    host: None,
                    url: String::new(),
                    name: None,
                    step: None,
                    conversion: false,
                    apdex_t_ms: None,
                    documents: Vec::new(),
                    txs: Vec::new(),
                    failed: vec![fi],
                    status: None,
                    load: Dur::ZERO,
                    server: Dur::ZERO,
                    network: Dur::ZERO,
                })
            }
        }
    }
    pages
}

/// Orders the page views, joins requests made right after a failed
/// attempt to its page, and works out each page's rule, end and load.
fn finish_pages(
    mut pages: Vec<PageView>,
    txs: &[Tx],
    failed: &[FailedConn],
    rules: &PageRules,
    window: Dur,
) -> Vec<PageView> {
    pages.sort_by_key(|p| p.start);
    // Requests without a page, right after a page whose connection failed
    // (the user acting on what they had), belong to that page view.
    let mut merged: Vec<PageView> = Vec::with_capacity(pages.len());
    for p in pages {
        if let Some(last) = merged.last_mut() {
            let failed_only = last.documents.is_empty() && last.txs.is_empty() && !last.failed.is_empty();
            if failed_only && p.documents.is_empty() && p.failed.is_empty() && p.start - last.start <= window {
                last.txs.extend(p.txs);
                last.end = last.end.max(p.end);
                continue;
            }
        }
        merged.push(p);
    }
    let mut pages = merged;
    for (n, p) in pages.iter_mut().enumerate() {
        p.index = n as u32 + 1;
        if let Some(r) = rules.matching(&p.url).filter(|_| !p.url.is_empty()) {
            p.name = Some(r.name.clone());
            p.step = r.step.clone();
            p.conversion = r.conversion;
            p.apdex_t_ms = r.apdex_t_ms;
        }
        let end =
            p.txs.iter().map(|i| txs[*i].end()).chain(p.failed.iter().map(|i| failed[*i].end)).max().unwrap_or(p.start);
        p.end = end.max(p.start);
        // The load: the documents, then every resource fetched while the
        // page was still loading (started within a moment of the last
        // response so far). Later requests, and anything sent other than
        // GET after the document, are the user interacting, not loading.
        let mut order: Vec<usize> = p.txs.clone();
        order.sort_by_key(|i| (txs[*i].start, *i));
        let known_end = |t: &Tx| if t.capture_loss() { t.resp_start.or(t.req_end).unwrap_or(t.start) } else { t.end() };
        let mut load_end = p.documents.iter().map(|d| known_end(&txs[*d])).max().unwrap_or(p.start);
        let mut in_load: Vec<usize> = p.documents.clone();
        for i in order {
            if p.documents.contains(&i) {
                continue;
            }
            let t = &txs[i];
            let fetch = t.method.as_deref().is_none_or(|m| m == "GET" || m == "HEAD");
            if (fetch || p.documents.is_empty()) && t.start <= load_end + LOAD_QUIET {
                // With bytes missing, the end may be only when the
                // connection closed: count what the capture shows.
                load_end = load_end.max(known_end(t));
                in_load.push(i);
            }
        }
        p.load = load_end.max(p.start) - p.start;
        // Server time: the union of the intervals in which some request
        // waited for its first response byte, once the server had it (a
        // request being sent again is network time).
        let mut waits: Vec<(Ts, Ts)> = in_load
            .iter()
            .filter_map(|i| {
                let t = &txs[*i];
                Some((t.request_arrived()?, t.resp_start?)).filter(|(a, b)| b > a)
            })
            .collect();
        waits.sort();
        let mut server = Dur::ZERO;
        let mut cur: Option<(Ts, Ts)> = None;
        for (a, b) in waits {
            match cur {
                Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
                Some((ca, cb)) => {
                    server = server + (cb - ca);
                    cur = Some((a, b));
                }
                None => cur = Some((a, b)),
            }
        }
        if let Some((ca, cb)) = cur {
            server = server + (cb - ca);
        }
        p.server = server.min(p.load);
        p.network = p.load - p.server;
    }
    pages
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Spilled transactions read back together ([`read_spilled_many`])
    /// come back as read one by one: records near one another in one read,
    /// those far apart in others, and a record that cannot be read (it
    /// runs past the file's end) as `None`, its neighbours in the same run
    /// still read.
    #[test]
    fn spilled_transactions_read_back_together_come_back_as_one_by_one() {
        let dir = std::env::temp_dir().join(format!("pov-spill-many-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spill = TxSpill::new(&dir);
        let mut at = Vec::new();
        for i in 0..40u64 {
            // Past the 20th, a record longer than the gap read across.
            let target =
                if i == 20 { format!("/far/{}", "x".repeat(3 * SPILL_READ_GAP as usize)) } else { format!("/p/{i}") };
            at.push(spill.write(&tx(i, "10.0.0.1:40000", i as i64 * 10, &target)).unwrap());
        }
        let f = spill.reader().unwrap();
        let (last_at, last_len) = at[39];
        let past_end = (last_at, last_len + 100);
        // Two sessions interleaved, one on both sides of the long record,
        // and one with a record that runs past the end.
        let a: Vec<(u64, u32)> = (0..40).step_by(2).map(|i| at[i]).collect();
        let b: Vec<(u64, u32)> = (1..20).step_by(2).map(|i| at[i]).collect();
        let c: Vec<(u64, u32)> = vec![at[3], at[30], at[37], past_end];
        let wants: Vec<&[(u64, u32)]> = vec![&a, &b, &[], &c];
        for parallel in [false, true] {
            let back = read_spilled_many(&f, &wants, parallel);
            assert_eq!(back.len(), 4);
            for (w, got) in wants.iter().zip(&back) {
                assert_eq!(w.len(), got.len());
                for (&place, got) in w.iter().zip(got) {
                    let one = read_spilled(&f, place, &mut Vec::new());
                    assert_eq!(got.as_ref().map(|t| (t.conn, t.target.clone())), one.map(|t| (t.conn, t.target)));
                }
            }
            assert!(back[3][3].is_none(), "the record past the end is not read");
            assert_eq!(back[3][2].as_ref().map(|t| t.target.as_str()), Some("/p/37"));
            assert_eq!(back[0][10].as_ref().map(|t| t.target.len()), Some(5 + 3 * SPILL_READ_GAP as usize));
        }
        drop(spill);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The page rules searched as one set name the rule that trying the
    /// patterns in order names: the first that matches, on URLs that match
    /// several, one or none, in any case.
    #[test]
    fn page_rules_as_a_set_name_the_first_rule_in_order() {
        let custom: Vec<PageRule> = [("a", "^/x"), ("b", "^/x/y"), ("c", "(?i)Y$"), ("d", "^/(\\?.*)?$")]
            .iter()
            .map(|(n, p)| PageRule {
                name: (*n).into(),
                pattern: (*p).into(),
                step: None,
                conversion: false,
                apdex_t_ms: None,
            })
            .collect();
        let heads = [
            "",
            "/",
            "/?a=b",
            "/x",
            "/x/y",
            "/X/Y",
            "/zy",
            "/checkout",
            "/checkout/confirm",
            "/Order/Submit",
            "/orders/thank-you",
            "/thankyou",
            "/order-confirmation",
            "/cart",
            "/BASKET",
            "/p/1",
            "/products/x",
            "/search?q=a",
            "/index.html",
            "/index.php",
            "/files/1.bin",
            "/category/",
            "/collections/all",
            "/login",
            "/account/login",
            "/payment/3",
            "/dp/B00",
        ];
        let tails = ["", "/", "?x=1", "/extra", "y"];
        let mut compared = 0;
        let mut named = 0;
        for rules in [default_pages(), custom] {
            let set = PageRules::new(&rules).unwrap();
            let one_by_one: Vec<Regex> = rules.iter().map(|r| Regex::new(&r.pattern).unwrap()).collect();
            for h in heads {
                for t in tails {
                    let url = format!("{h}{t}");
                    let want = one_by_one.iter().position(|re| re.is_match(&url)).map(|i| &rules[i].name);
                    let got = set.matching(&url).map(|r| &r.name);
                    assert_eq!(got, want, "{url}");
                    compared += 1;
                    named += usize::from(got.is_some());
                }
            }
        }
        assert_eq!(compared, 2 * 27 * 5);
        assert!(named > 100 && named < compared - 50, "{named} of {compared} named");
        assert!(PageRules::new(&[]).unwrap().matching("/").is_none());
        // A bad pattern is named by its rule.
        let mut rules = default_pages();
        rules.push(PageRule { name: "broken".into(), pattern: "/(x".into(), ..rules[0].clone() });
        let err = PageRules::new(&rules).err().unwrap_or_default();
        assert!(err.contains("[[pages]] `broken`: bad pattern"), "{err}");
    }

    #[test]
    fn a_urls_target_is_its_path_and_query() {
        fn by_find(url: &str) -> &str {
            match url.find("://") {
                Some(i) => {
                    let rest = &url[i + 3..];
                    match rest.find('/') {
                        Some(j) => &rest[j..],
                        None => "/",
                    }
                }
                None => url,
            }
        }
        for url in [
            "https://shop.example/cart?x=1",
            "http://h",
            "http://h:8080/a/b",
            "/relative?q=a://b",
            "mailto:x@y",
            "a:b://c/d",
            "://",
            "x://",
            "é://ü/ö",
            "http:/h/p",
            "",
            ":",
            "http://h?x=a://b/c",
        ] {
            assert_eq!(target_of(url), by_find(url), "{url}");
        }
        assert_eq!(target_of("https://shop.example/cart?x=1"), "/cart?x=1");
        assert_eq!(target_of("http://h"), "/");
    }

    /// A hand-made transaction: `ms` after a fixed epoch, on `conn`.
    pub(crate) fn tx(conn: u64, client: &str, ms: i64, target: &str) -> Tx {
        Tx::sample(conn, client.parse().unwrap(), ms, target)
    }

    fn cookie(mut t: Tx, v: &str) -> Tx {
        t.evidence_mut().cookie = Some(("sid".into(), v.into()));
        t
    }

    fn sets(mut t: Tx, v: &str) -> Tx {
        t.evidence_mut().set_cookie = Some(("sid".into(), v.into()));
        t
    }

    /// A sessionizer with the default settings, and `cap` set by `set` when
    /// given.
    fn capped(cap: Option<usize>, set: fn(&mut Sessionizer, usize)) -> Sessionizer {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        if let Some(m) = cap {
            set(&mut s, m);
        }
        s
    }

    /// At most `max_conn_users` connections' users are remembered: beyond,
    /// the quarter used least recently is forgotten and counted, and a
    /// later request without a cookie on one of them is no longer its
    /// user's (it waits for a cookie and is its address and User-Agent's).
    #[test]
    fn connections_users_are_capped_and_the_least_recently_used_forgotten() {
        let run_with = |max: Option<usize>| {
            let mut s = capped(max, Sessionizer::set_max_remembered_connections);
            let mut out = Vec::new();
            for i in 0..6u64 {
                let client = format!("10.0.1.{i}:1000");
                out.extend(s.push(cookie(tx(1 + i, &client, 1_000 * i as i64, "/"), &format!("U{i}"))));
            }
            let mut held: Vec<u64> = s.conn_user.keys().copied().collect();
            held.sort();
            // The first connection again, without its cookie.
            out.extend(s.push(tx(1, "10.0.1.0:1000", 10_000, "/again")));
            out.extend(s.finish());
            let whose = out.iter().find(|x| x.txs.iter().any(|t| t.target == "/again")).map(|x| x.user.raw());
            (held, whose.unwrap_or_default(), s.stats().connections_forgotten)
        };
        assert_eq!(run_with(None), (vec![1, 2, 3, 4, 5, 6], "cookie:sid=U0".to_string(), 0));
        // At 4: the fifth made five, the two used least recently went;
        // the request on the first, adopted at the end, makes five again.
        let (held, whose, forgotten) = run_with(Some(4));
        assert_eq!((held, forgotten), (vec![3, 4, 5, 6], 2 + 2));
        assert!(whose.starts_with("client:10.0.1.0"), "{whose}");
    }

    /// What attributes failed attempts is kept for at most
    /// `max_recent` connections (and active users) per address: an
    /// attempt reported after its follower was forgotten goes to a later
    /// connection's user; one whose follower is among those kept is
    /// attributed as without the cap; forgotten entries are counted.
    #[test]
    fn what_attributes_failed_attempts_is_capped_per_address() {
        let run_with = |max: Option<usize>| {
            let mut s = capped(max, Sessionizer::set_max_recent);
            let mut out = Vec::new();
            // A's connection follows the first attempt; then four of B's.
            out.extend(s.push(cookie(tx(10, "10.0.0.1:1010", 1_500, "/"), "A")));
            for i in 0..4 {
                out.extend(s.push(cookie(tx(11 + i, "10.0.0.1:1011", 2_000 + 100 * i as i64, "/"), "B")));
            }
            let ip: IpAddr = "10.0.0.1".parse().unwrap();
            let held = (s.recent[&ip].len(), s.activity[&ip].len());
            // Both attempts reported late (an unanswered SYN is reported at
            // the TCP idle timeout).
            out.extend(s.push_failed(failed(1, "10.0.0.1:2001", 1_000)));
            out.extend(s.push_failed(failed(2, "10.0.0.1:2002", 2_250)));
            out.extend(s.finish());
            let whose = |conn: u64| {
                out.iter().find(|x| x.failed.iter().any(|f| f.conn == conn)).map(|x| x.user.raw()).unwrap_or_default()
            };
            (whose(1), whose(2), held, s.stats().recent_forgotten)
        };
        assert_eq!(
            run_with(None),
            ("cookie:sid=A".into(), "cookie:sid=B".into(), (5, 2), 0),
            "without the cap: the connection that followed each attempt"
        );
        assert_eq!(
            run_with(Some(3)),
            ("cookie:sid=B".into(), "cookie:sid=B".into(), (3, 2), 2),
            "A's connection forgotten: the first attempt goes to the next one kept"
        );
        // Activity is capped too: at 1, only B's is kept.
        let (_, _, held, forgotten) = run_with(Some(1));
        assert_eq!((held, forgotten), ((1, 1), 4 + 1));
    }

    /// Requests without an identifier wait for a cookie at most
    /// `max_waiting` at once; the others are taken at once as their
    /// address and User-Agent's, counted, and none is lost. A claim, a
    /// wait that runs out and the end of the input each give their places
    /// back.
    #[test]
    fn requests_waiting_for_a_cookie_are_capped_and_none_is_lost() {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let budget = Budget::new(1 << 30);
        s.set_budget(&budget);
        s.set_max_waiting(3);
        let item = |i: u64| tx(10 + i, "10.0.0.9:2000", i as i64, &format!("/api/items/{i}"));
        let weights = |from: u64, to: u64| (from..to).map(|i| tx_weight(&item(i))).sum::<usize>();
        let mut closed = Vec::new();
        for i in 0..5 {
            closed.extend(s.push(item(i)));
        }
        assert_eq!((s.waiting, s.stats().waits_refused), (3, 2));
        // What waits is charged to the budget (the two refused are in a
        // session, which charges them).
        assert_eq!(s.waiting_charge.bytes(), weights(0, 3));
        assert!(budget.held(Holder::Sessions) >= weights(0, 3));
        // A cookie on the first waiting request's connection claims it.
        closed.extend(s.push(cookie(tx(10, "10.0.0.9:2000", 10, "/account"), "A")));
        assert_eq!((s.waiting, s.waiting_charge.bytes()), (2, weights(1, 3)));
        closed.extend(s.push(tx(20, "10.0.0.9:2001", 11, "/api/more")));
        assert_eq!((s.waiting, s.stats().waits_refused), (3, 2), "the claimed place is free again");
        closed.extend(s.finish());
        assert_eq!((s.waiting, s.waiting_charge.bytes()), (0, 0));
        let txs: usize = closed.iter().map(|x| x.txs.len()).sum();
        assert_eq!(txs, 7, "every request is in a session");
        let mut by_user: Vec<(String, usize)> =
            closed.iter().map(|x| (x.user.rule().to_string(), x.txs.len())).collect();
        by_user.sort();
        assert_eq!(by_user, [("client".to_string(), 5), ("cookie".to_string(), 2)]);

        // Waits that run out give their places back too.
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        s.set_max_waiting(2);
        for i in 0..2 {
            s.push(tx(30 + i, "10.0.0.9:3000", i as i64, "/api/a"));
        }
        assert_eq!(s.waiting, 2);
        let later = 1_000 * (SessionizerConfig::default().users.join_window_secs as i64 + 5);
        let third = tx(40, "10.0.0.9:3001", later, "/api/b");
        let weight = tx_weight(&third);
        s.push(third);
        assert_eq!((s.waiting, s.stats().waits_refused), (1, 0), "the two waits ran out before the third");
        assert_eq!(s.waiting_charge.bytes(), weight);
    }

    /// A robot's requests that waited for a cookie until the end of the
    /// input join its session in one growth of its list, also when the
    /// first of them to join comes through a connection that requests
    /// which could not wait (beyond `max_waiting`) used before: the list
    /// then holds exactly what it needs. (Grown by doubling, it was
    /// copied at each growth, and held 1,499 places for 1,200 here.)
    #[test]
    fn waiting_requests_join_their_robots_session_in_one_growth() {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        s.set_max_waiting(600);
        let mut closed = Vec::new();
        // Two requests on each of 600 connections: the first ones wait,
        // the second ones cannot (they are the robot's at once, and so
        // are their connections).
        for round in 0..2 {
            for i in 0..600u64 {
                let at = (round * 600 + i) as i64;
                closed.extend(s.push(tx(1000 + i, &format!("10.0.0.9:{}", 20_000 + i), at, "/api/items")));
            }
        }
        assert_eq!((s.waiting, s.stats().waits_refused), (600, 600));
        closed.extend(s.finish());
        assert_eq!(closed.len(), 1);
        let txs = &closed[0].txs;
        assert_eq!(txs.len(), 1_200);
        assert!(txs.capacity() <= txs.len() + 1, "{} places for {}", txs.capacity(), txs.len());
    }

    /// Time moved on without transactions (a quiet live interface)
    /// closes a session once it has been quiet for the timeout, and not
    /// before; what comes after starts a new session.
    #[test]
    fn a_session_closes_when_time_moves_on_without_transactions() {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let t0 = tx(1, "10.0.0.1:1000", 0, "/");
        let at = t0.start;
        assert!(s.push(cookie(t0, "A")).is_empty());
        assert!(s.push(cookie(tx(1, "10.0.0.1:1000", 1000, "/p/1"), "A")).is_empty());
        let min = |m: i64| Ts(at.0 + m * 60_000_000_000);
        // The timeout is 30 minutes: still open at 30, closed by 32 (the
        // sweep looks once a minute).
        assert!(s.advance(min(30)).is_empty());
        let closed = s.advance(min(32));
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].txs.len(), closed[0].index), (2, 1));
        // Going back in time does nothing.
        assert!(s.advance(min(1)).is_empty());
        let mut t = cookie(tx(2, "10.0.0.1:1001", 0, "/again"), "A");
        t.start = min(40);
        assert!(s.push(t).is_empty());
        let rest = s.finish();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].index, 2);
    }

    fn run(txs: Vec<Tx>, failed: Vec<FailedConn>) -> Vec<Session> {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let mut out = Vec::new();
        for t in txs {
            out.extend(s.push(t));
        }
        for f in failed {
            out.extend(s.push_failed(f));
        }
        out.extend(s.finish());
        out
    }

    fn users(sessions: &[Session]) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = sessions.iter().map(|s| (s.user.raw(), s.txs.len())).collect();
        v.sort();
        v
    }

    /// One user's session of 20,000 requests under a budget with room for
    /// a few thousand: the session holds what fits, the rest is counted on
    /// it and in the counters, and the budget is whole again once the
    /// session is dropped (but for the users seen).
    #[test]
    fn a_session_holds_what_the_memory_budget_has_room_for() {
        let budget = Budget::new(4 << 20);
        let cfg = SessionizerConfig { budget: budget.clone(), ..SessionizerConfig::default() };
        let mut s = Sessionizer::new(&cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..20_000 {
            out.extend(s.push(cookie(tx(1, "10.0.0.1:1000", i, &format!("/p/{i}")), "A")));
            assert!(budget.used() <= 4 << 20);
        }
        out.extend(s.finish());
        assert_eq!(out.len(), 1);
        let session = &out[0];
        let kept = session.txs.len() as u64;
        assert!((1000..20_000).contains(&kept), "{kept} kept");
        assert_eq!(session.dropped_txs, 20_000 - kept);
        assert_eq!(session.budget_dropped_txs, session.dropped_txs);
        assert_eq!(s.stats().session_budget_drops, 20_000 - kept);
        assert!(budget.report().refused.get("sessions").copied().unwrap_or(0) > 0);
        drop(out);
        assert_eq!(budget.used(), USER_COST, "only the user seen is still charged");
    }

    /// The same session with a spill folder: what the budget has no room
    /// for waits on disk and comes back when the session closes, so the
    /// session is the one an unlimited budget gives; the file is removed.
    #[test]
    fn what_the_budget_has_no_room_for_waits_on_disk() {
        let dir = std::env::temp_dir().join(format!("pov-session-spill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sessions = |budget: Budget, spill: bool| {
            let cfg = SessionizerConfig { budget: budget.clone(), ..SessionizerConfig::default() };
            let mut s = Sessionizer::new(&cfg).unwrap();
            if spill {
                s.set_spill_dir(&dir);
            }
            let mut out = Vec::new();
            for i in 0..20_000 {
                let mut t = cookie(tx(1 + i / 7, "10.0.0.1:1000", i as i64, &format!("/p/{i}")), "A");
                t.status = Some(if i % 1000 == 999 { 500 } else { 200 });
                out.extend(s.push(t));
            }
            // A second user, after the first's session timed out.
            out.extend(s.push(cookie(tx(90_000, "10.0.0.2:1000", 10_000_000, "/"), "B")));
            out.extend(s.finish());
            let stats = s.stats().clone();
            (out, stats)
        };
        let (whole, _) = sessions(Budget::unlimited(), false);
        let budget = Budget::new(4 << 20);
        let (spilled, stats) = sessions(budget.clone(), true);
        assert!(stats.session_txs_spilled > 10_000, "{} spilled", stats.session_txs_spilled);
        assert_eq!(stats.session_budget_drops, 0);
        // The same sessions (all but what they hold of the budget).
        let view = |v: &[Session]| -> Vec<String> {
            v.iter()
                .map(|x| {
                    format!("{:?} {} {:?} {:?} {:?} {:?}", x.user, x.index, x.txs, x.pages, x.failed, x.dropped_txs)
                })
                .collect()
        };
        assert_eq!(whole.len(), spilled.len());
        assert!(view(&whole) == view(&spilled), "the sessions differ once spilled");
        assert_eq!(spilled[0].txs.len(), 20_000);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "the spill file is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Long sessions still open at the end of the input are built a few
    /// at a time: what is built and not yet handed out holds at most
    /// [`FINISH_TXS`] transactions and one session more (their spilled
    /// transactions read back among them), not [`FINISH_CHUNK`] sessions
    /// whatever their length; and every session comes out whole.
    #[test]
    fn long_sessions_open_at_the_end_are_built_a_few_at_a_time() {
        let dir = std::env::temp_dir().join(format!("pov-session-finish-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = SessionizerConfig { budget: Budget::new(1 << 20), ..SessionizerConfig::default() };
        let mut s = Sessionizer::new(&cfg).unwrap();
        s.set_spill_dir(&dir);
        let (users, each) = (300u64, 200u64);
        let mut out = Vec::new();
        for j in 0..each {
            for u in 0..users {
                let t = tx(1 + u, &format!("10.1.{}.{}:4000", u / 200, u % 200), (j * users + u) as i64, "/p");
                out.extend(s.push(cookie(t, &format!("u{u}"))));
            }
        }
        assert!(out.is_empty(), "all open at the end");
        assert!(s.stats().session_txs_spilled > 10_000, "{} spilled", s.stats().session_txs_spilled);
        let built = |s: &Sessionizer| -> usize {
            s.finishing
                .as_ref()
                .map_or(0, |f| f.built.iter().filter_map(|(_, _, x)| x.as_ref()).map(|x| x.txs.len()).sum())
        };
        let mut most = 0;
        while let Some(x) = s.finish_next() {
            most = most.max(built(&s) + x.txs.len());
            out.push(x);
        }
        assert_eq!(out.len(), users as usize);
        assert!(out.iter().all(|x| x.txs.len() == each as usize));
        assert!(most <= FINISH_TXS + each as usize, "{most} transactions built at once");
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// How [`Sessionizer`] hands out the sessions a sweep closes.
    #[derive(Clone, Copy, PartialEq)]
    enum Hand {
        /// Built one by one, in `push`.
        OneByOne,
        /// Built side by side, in `push`.
        SideBySide,
        /// Unbuilt (`push_split`), then built side by side in parts of
        /// about this many transactions.
        InParts(usize),
    }

    /// Sessions that close together (630 in one sweep, 330 more at the
    /// end, past one chunk) are the same built side by side as one by
    /// one, and handed out unbuilt and built in parts, spilled
    /// transactions and the robots' crowds included, and so are the
    /// counters.
    #[test]
    fn sessions_built_side_by_side_are_the_ones_built_one_by_one() {
        let dir = std::env::temp_dir().join(format!("pov-session-par-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sessions = |hand: Hand| {
            let cfg = SessionizerConfig { budget: Budget::new(1 << 20), ..SessionizerConfig::default() };
            let mut s = Sessionizer::new(&cfg).unwrap();
            s.set_spill_dir(&dir);
            s.set_parallel(hand != Hand::OneByOne);
            let mut out = Vec::new();
            let mut parts = 0;
            // 630 users, 20 requests each; the first 300 stop, the others
            // come back three hours later (the sweep then closes the 630
            // quiet sessions at once), and the finish closes their second
            // ones. The last 30 are first seen within a second from one
            // address and browser: a crowd, which the robots' identities
            // rule judges when their sessions close.
            for j in 0..40i64 {
                for u in 0..630u64 {
                    if j >= 20 && u < 300 {
                        continue;
                    }
                    let at = if j < 20 { j * 1000 } else { 10_800_000 + j * 1000 } + u as i64;
                    let client = if u >= 600 {
                        "10.9.9.9:1000".to_string()
                    } else {
                        format!("10.0.{}.{}:1000", u / 250, u % 250)
                    };
                    let mut t = cookie(tx(u + 1, &client, at, "/p"), &format!("U{u}"));
                    t.status = Some(if (u + j as u64).is_multiple_of(97) { 500 } else { 200 });
                    match hand {
                        Hand::InParts(txs) => {
                            let (closed, closing) = s.push_split(t);
                            let Some(mut closing) = closing else {
                                out.extend(closed);
                                continue;
                            };
                            let mut closed = closed.into_iter();
                            out.extend(closed.by_ref().take(closing.at()));
                            while !closing.is_empty() {
                                let (built, counts) = closing.next(txs).build_with(|s| s);
                                s.count_built(counts);
                                out.extend(built);
                                parts += 1;
                            }
                            out.extend(closed);
                        }
                        _ => out.extend(s.push(t)),
                    }
                }
            }
            let swept = out.len();
            out.extend(s.finish());
            let st = s.stats();
            let view: Vec<String> = out
                .iter()
                .map(|x| {
                    format!("{:?} {} {:?} {:?} {:?} {:?}", x.user, x.index, x.txs, x.pages, x.robot, x.dropped_txs)
                })
                .collect();
            let robots =
                out[..swept].iter().filter(|x| x.robot.as_ref().is_some_and(|r| r.rule == "identities")).count();
            (view, swept, robots, parts, (st.sessions, st.pages, st.session_txs_spilled, st.session_budget_drops))
        };
        let (one, swept, robots, _, stats) = sessions(Hand::OneByOne);
        assert_eq!((one.len(), swept), (960, 630), "630 sessions close in the sweep, 330 at the end");
        assert_eq!(robots, 30, "the crowd's sessions are robots'");
        assert!(stats.2 > 1000, "{} transactions spilled", stats.2);
        assert_eq!(stats.3, 0);
        for hand in [Hand::SideBySide, Hand::InParts(1), Hand::InParts(300)] {
            let (many, swept_many, robots_many, parts, stats_many) = sessions(hand);
            assert_eq!((swept_many, robots_many), (swept, robots));
            assert_eq!(stats_many, stats);
            assert!(one == many, "the sessions differ when built side by side or in parts");
            if let Hand::InParts(txs) = hand {
                // The first user back closes their own session; the sweep
                // the 629 others, of 20 transactions each: one a part, or
                // 15 a part.
                assert_eq!(parts, if txs == 1 { 629 } else { 42 }, "parts of {txs} transactions");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn first_request_before_the_cookie_joins_its_user() {
        // The document answered with Set-Cookie; an asset fetched on a
        // second connection before the cookie was stored; then requests
        // with the cookie.
        let s = run(
            vec![
                sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"),
                tx(2, "10.0.0.1:1001", 5, "/a.css"),
                cookie(tx(1, "10.0.0.1:1000", 50, "/p/1"), "A"),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 3)]);
    }

    #[test]
    fn a_cookieless_request_on_a_users_connection_is_theirs() {
        let s = run(vec![cookie(tx(1, "10.0.0.1:1000", 0, "/"), "A"), tx(1, "10.0.0.1:1000", 10, "/b")], vec![]);
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 2)]);
    }

    #[test]
    fn users_behind_one_nat_stay_apart() {
        // Same address and User-Agent, two cookies, interleaved.
        let s = run(
            vec![
                sets(tx(1, "10.0.0.9:1000", 0, "/"), "A"),
                cookie(tx(1, "10.0.0.9:1000", 100, "/x"), "A"),
                sets(tx(2, "10.0.0.9:2000", 150, "/"), "B"),
                cookie(tx(2, "10.0.0.9:2000", 200, "/y"), "B"),
                cookie(tx(1, "10.0.0.9:1000", 300, "/z"), "A"),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 3), ("cookie:sid=B".into(), 2)]);
    }

    #[test]
    fn a_retried_first_visit_is_the_same_user() {
        // The first answer failed, its cookie never came back; the retry
        // got a new cookie.
        let s = run(
            vec![
                sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"),
                sets(tx(2, "10.0.0.1:1001", 3000, "/"), "B"),
                cookie(tx(2, "10.0.0.1:1001", 3100, "/p"), "B"),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 3)]);
        // But a second visitor whose cookie came back is not merged.
        let s = run(
            vec![
                sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"),
                cookie(tx(1, "10.0.0.1:1000", 100, "/p"), "A"),
                sets(tx(2, "10.0.0.1:1001", 3000, "/"), "B"),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 2), ("cookie:sid=B".into(), 1)]);
    }

    /// A request sent between a failed first visit and its retry, left
    /// unanswered and so written late, after the retry joined the first
    /// visit: the first visit's user, not the retry's cookie alone.
    #[test]
    fn a_late_request_before_a_retry_that_joined_a_first_visit_is_that_users() {
        let s = run(
            vec![
                with(sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"), |t| {
                    t.status = Some(502);
                    t.resp_start = Some(t.start + Dur::from_millis(80));
                }),
                answered_in(sets(tx(2, "10.0.0.1:1001", 37_000, "/"), "B"), 80),
                cookie(tx(2, "10.0.0.1:1001", 40_000, "/p/1"), "B"),
                // Past the retry window: B has joined A.
                cookie(tx(2, "10.0.0.1:1001", 150_000, "/p/2"), "B"),
                unanswered(tx(3, "10.0.0.1:1002", 2_000, "/")),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 5)]);
    }

    #[test]
    fn without_identifiers_the_client_and_user_agent_decide() {
        let mut other = tx(2, "10.0.0.1:1001", 10, "/");
        other.user_agent = Some("UA-2".into());
        let s = run(vec![tx(1, "10.0.0.1:1000", 0, "/"), other, tx(3, "10.0.0.2:1000", 0, "/")], vec![]);
        assert_eq!(
            users(&s),
            vec![
                ("client:10.0.0.1 UA-1".into(), 1),
                ("client:10.0.0.1 UA-2".into(), 1),
                ("client:10.0.0.2 UA-1".into(), 1)
            ]
        );
    }

    #[test]
    fn header_and_query_identifiers() {
        let mut h = tx(1, "10.0.0.1:1000", 0, "/");
        h.evidence_mut().header_id = Some("u-42".into());
        let mut q = tx(2, "10.0.0.1:1001", 10, "/a;jsessionid=Q1");
        q.evidence_mut().query_id = Some(("jsessionid".into(), "Q1".into()));
        let s = run(vec![h, q], vec![]);
        assert_eq!(users(&s), vec![("header:u-42".into(), 1), ("query:jsessionid=Q1".into(), 1)]);
    }

    fn failed(conn: u64, client: &str, ms: i64) -> FailedConn {
        let start = Ts(1_700_000_000_000_000_000 + ms * 1_000_000);
        FailedConn {
            conn,
            client: client.parse().unwrap(),
            server: "192.0.2.10:80".parse().unwrap(),
            start,
            end: start + Dur::from_millis(1),
            kind: FailedConnKind::Refused,
            syns: 1,
            frames: FrameSpan { first: 1, last: 2 },
            sni: None,
            evidence: None,
        }
    }

    #[test]
    fn a_refused_connection_belongs_to_the_next_connection_from_its_address() {
        let s = run(
            vec![sets(tx(2, "10.0.0.1:1001", 2000, "/"), "A")],
            vec![failed(1, "10.0.0.1:1000", 0), failed(3, "10.0.0.7:1000", 0)],
        );
        let a = s.iter().find(|x| x.user.raw() == "cookie:sid=A").unwrap();
        assert_eq!(a.failed.len(), 1);
        // Tried again by hand 2 s later: the failed attempt is a page view
        // the user never saw, then the page.
        assert_eq!(a.pages.len(), 2);
        assert_eq!((a.pages[0].failed.clone(), a.pages[0].txs.len()), (vec![0], 0));
        // Tried again by the browser at once: one page view.
        let s2 = run(vec![sets(tx(2, "10.0.0.1:1001", 300, "/"), "A")], vec![failed(1, "10.0.0.1:1000", 0)]);
        assert_eq!(s2.len(), 1);
        assert_eq!(s2[0].pages.len(), 1);
        assert_eq!(s2[0].pages[0].failed, vec![0]);
        let alone = s.iter().find(|x| x.user.raw() == "address:10.0.0.7").unwrap();
        assert_eq!(alone.failed.len(), 1);
    }

    #[test]
    fn a_late_failed_attempt_goes_to_the_only_user_of_its_address() {
        // 40 minutes later, nothing else from the address: the one user it
        // ever had came back and could not get through (a second session).
        let late = 40 * 60 * 1000;
        let s = run(vec![sets(tx(1, "10.0.0.5:1000", 0, "/"), "A")], vec![failed(2, "10.0.0.5:1001", late)]);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|x| x.user.raw() == "cookie:sid=A"));
        assert_eq!(s[1].index, 2);
        assert_eq!(s[1].failed.len(), 1);
        // An address two users shared: nobody can tell whose it was.
        let s = run(
            vec![sets(tx(1, "10.0.0.5:1000", 0, "/"), "A"), sets(tx(3, "10.0.0.5:1002", 100_000, "/"), "B")],
            vec![failed(2, "10.0.0.5:1001", late)],
        );
        assert!(s.iter().any(|x| x.user.raw() == "address:10.0.0.5" && x.failed.len() == 1));
    }

    #[test]
    fn inactivity_splits_sessions_and_resources_join_their_page() {
        let mut css = tx(1, "10.0.0.1:1000", 40, "/s.css");
        css.class = ResourceClass::Style;
        css.referer = Some("http://shop.example/".into());
        let mut late = tx(1, "10.0.0.1:1000", 31 * 60 * 1000, "/again");
        late.evidence_mut().cookie = Some(("sid".into(), "A".into()));
        let s = run(vec![sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"), cookie(css, "A"), late], vec![]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].index, s[1].index), (1, 2));
        assert_eq!(s[0].pages.len(), 1);
        assert_eq!(s[0].pages[0].txs.len(), 2);
        assert_eq!(s[0].pages[0].step.as_deref(), Some("home"));
        // Document start to the style sheet's last byte.
        assert_eq!(s[0].pages[0].load, Dur::from_millis(70));
    }

    /// One user's long session: `n` pages 30 s apart, each followed 11 s
    /// later by an image whose Referer names no page of the session (so
    /// neither its Referer nor its time places it: it starts a page view of
    /// its own), and a refused connection attempt from the same address
    /// 20 s after each page.
    fn long_session(n: i64) -> Vec<Session> {
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            let at = i * 30_000;
            out.extend(s.push(cookie(tx(1, "10.0.0.1:1000", at, &format!("/p/{i}")), "A")));
            let mut img = cookie(tx(1, "10.0.0.1:1000", at + 11_000, &format!("/i/{i}.png")), "A");
            img.class = ResourceClass::Image;
            img.referer = Some("http://shop.example/nowhere".into());
            out.extend(s.push(img));
            out.extend(s.push_failed(failed(2 + i as u64, "10.0.0.1:2000", at + 20_000)));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn building_the_pages_of_a_long_session_is_linear() {
        let n = 10_000;
        crate::work::take();
        let s = long_session(n);
        let steps = crate::work::take();
        // One session: every page, image and failed attempt of user A.
        assert_eq!(s.len(), 1);
        let a = &s[0];
        assert_eq!((a.txs.len(), a.failed.len()), (2 * n as usize, n as usize));
        // Each page view, then the image as a page of its own, then the
        // failed attempt (9 s after the image, nothing loading then: a page
        // the user never saw).
        assert_eq!(a.pages.len(), 3 * n as usize);
        assert_eq!(a.pages[1].txs, vec![1]);
        assert!(a.pages[1].documents.is_empty());
        assert_eq!((a.pages[2].failed.clone(), a.pages[2].txs.len()), (vec![0], 0));
        // Linear: a few steps per transaction, page and attempt (the
        // quadratic page builder took 900 million).
        let items = (a.txs.len() + a.failed.len() + a.pages.len()) as u64;
        assert!(steps <= 20 * items, "{steps} steps for {items} items");
    }

    /// The page placement as it was before it was made linear (it looked
    /// at every earlier page for each resource and failed attempt): the
    /// model the linear one must agree with.
    fn place_reference(txs: &[Tx], failed: &[FailedConn], window: Dur, order_post: Option<&Regex>) -> Vec<PageView> {
        let mut pages: Vec<PageView> = Vec::new();
        let new_page = |i: usize, t: &Tx, doc: bool| PageView {
            index: 0,
            start: t.start,
            end: t.end(),
            host: t.host.clone(),
            url: t.target.clone(),
            name: None,
            step: None,
            conversion: false,
            apdex_t_ms: None,
            documents: if doc { vec![i] } else { Vec::new() },
            txs: vec![i],
            failed: Vec::new(),
            status: if doc { t.status } else { None },
            load: Dur::ZERO,
            server: Dur::ZERO,
            network: Dur::ZERO,
        };
        for (i, t) in txs.iter().enumerate() {
            // Placing an order is a funnel step of its own, whether the form
            // posts as a navigation or from a script.
            let order = t.method.as_deref().is_some_and(|m| m != "GET" && m != "HEAD")
                && order_post.is_some_and(|re| re.is_match(&t.target));
            if t.class == ResourceClass::Document || order {
                // The target of the previous document's redirect continues its
                // page view.
                if let Some(p) = pages.last_mut() {
                    let prev = p.documents.last().map(|d| &txs[*d]);
                    // (An order's redirect to its confirmation is the next
                    // funnel step, not the same page.)
                    let follows = !order
                        && prev.is_some_and(|d| {
                            d.method.as_deref().is_none_or(|m| m == "GET" || m == "HEAD")
                                && d.status.is_some_and(|s| (300..400).contains(&s))
                                && d.location.as_deref().is_some_and(|l| target_of(l) == t.target)
                                && t.start - d.end() <= Dur::from_secs(10)
                        });
                    // A browser tries a page again by itself, at once, when its
                    // connection died before any answer (Chromium does, up to
                    // twice, on a reset): the same page view, not the user
                    // coming back.
                    let retried = !order
                        && prev.is_some_and(|d| {
                            d.status.is_none()
                                && d.method == t.method
                                && d.target == t.target
                                && t.start >= d.start
                                && t.start - d.end() <= BROWSER_RETRY
                        });
                    if (follows || retried) && p.documents.len() < 64 {
                        p.documents.push(i);
                        p.txs.push(i);
                        p.url = t.target.clone();
                        p.status = t.status;
                        continue;
                    }
                }
                pages.push(new_page(i, t, true));
                continue;
            }
            // A resource: the latest page its Referer names, else the latest
            // page started shortly before it.
            let by_referer = t.referer.as_deref().map(target_of).and_then(|r| {
                pages.iter().rposition(|p| {
                    p.start <= t.start && (p.url == r || p.documents.iter().any(|d| txs[*d].target == r))
                })
            });
            let by_time =
                || pages.iter().rposition(|p| p.start <= t.start && t.start - p.start <= window.max(p.end - p.start));
            match by_referer.or_else(by_time) {
                Some(pi) => pages[pi].txs.push(i),
                None => pages.push(new_page(i, t, false)),
            }
        }
        // Failed connection attempts: the page that was loading then, or the
        // one that started right after (the browser trying again at once).
        // One the user tried again later by hand is a page view of its own: a
        // page they never saw.
        for (fi, f) in failed.iter().enumerate() {
            let loading = pages.iter().rposition(|p| {
                let end = p.txs.iter().map(|i| txs[*i].end()).max().unwrap_or(p.start);
                p.start <= f.start && f.start <= end
            });
            let next = || pages.iter().position(|p| p.start >= f.start && p.start - f.end <= LOAD_QUIET);
            match loading.or_else(next) {
                Some(pi) => pages[pi].failed.push(fi),
                None => pages.push(PageView {
                    index: 0,
                    start: f.start,
                    end: f.end,
                    host: None,
                    url: String::new(),
                    name: None,
                    step: None,
                    conversion: false,
                    apdex_t_ms: None,
                    documents: Vec::new(),
                    txs: Vec::new(),
                    failed: vec![fi],
                    status: None,
                    load: Dur::ZERO,
                    server: Dur::ZERO,
                    network: Dur::ZERO,
                }),
            }
        }
        pages
    }

    /// A small deterministic generator (xorshift64*).
    struct Rand(u64);

    impl Rand {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % n.max(1)
        }
    }

    /// A random session: documents (some redirected, some reset and sent
    /// again), resources with and without a Referer naming an earlier
    /// target, orders, and failed attempts, at random gaps.
    fn random_session(seed: u64) -> (Vec<Tx>, Vec<FailedConn>) {
        let mut r = Rand(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut txs = Vec::new();
        let mut failed_v = Vec::new();
        let mut at = 0i64;
        let mut targets: Vec<String> = vec!["/".into()];
        let n = 5 + r.below(60);
        for i in 0..n {
            at += [0, 5, 40, 300, 900, 1500, 4000, 9000, 11_000, 20_000][r.below(10) as usize];
            let target = format!("/t/{}", r.below(12));
            let mut t = tx(1 + r.below(4), "10.0.0.1:1000", at, &target);
            t.depth = i as u32 + 1;
            t.resp_end = Some(t.start + Dur::from_millis([5, 30, 800, 3000, 12_000][r.below(5) as usize]));
            match r.below(9) {
                0 | 1 => {}
                2 => {
                    t.status = Some(302);
                    t.location = Some(format!("http://shop.example/t/{}", r.below(12)));
                }
                3 => {
                    t.status = None;
                    t.resp_start = None;
                    t.resp_end = None;
                    t.outcome = pov_capture::http::Outcome::ServerReset;
                }
                4 => {
                    t.method = Some("POST".into());
                    t.target = "/checkout/submit".into();
                }
                _ => {
                    t.class = [ResourceClass::Image, ResourceClass::Style, ResourceClass::Script][r.below(3) as usize];
                    t.referer = match r.below(3) {
                        0 => None,
                        1 => Some(format!("http://shop.example{}", targets[r.below(targets.len() as u64) as usize])),
                        _ => Some("http://shop.example/nowhere".into()),
                    };
                }
            }
            targets.push(t.target.clone());
            txs.push(t);
            if r.below(4) == 0 {
                let f_at = at + [0, 1, 10, 500, 2000, 15_000][r.below(6) as usize] as i64;
                failed_v.push(failed(100 + i, "10.0.0.1:2000", f_at));
            }
        }
        txs.sort_by_key(|t| (t.start, t.conn, t.depth));
        failed_v.sort_by_key(|f| (f.start, f.conn));
        (txs, failed_v)
    }

    #[test]
    fn linear_page_placement_agrees_with_the_quadratic_one() {
        let post = Regex::new(r"^/checkout/submit").unwrap();
        for seed in 0..3000 {
            let (txs, failed) = random_session(seed);
            for window in [Dur::from_secs(10), Dur::from_millis(300)] {
                let fast = place(&txs, &failed, window, Some(&post));
                let slow = place_reference(&txs, &failed, window, Some(&post));
                assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "seed {seed}");
            }
        }
    }

    #[test]
    fn requests_waiting_for_a_cookie_are_claimed_in_linear_time() {
        // 10,000 connections from one address and browser, each first
        // with a request without cookie (waiting for one), then each with
        // the cookie: every connection's waiting request is claimed.
        let n = 10_000u64;
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let mut out = Vec::new();
        crate::work::take();
        for i in 0..n {
            out.extend(s.push(tx(i, "10.0.0.1:1000", i as i64, &format!("/a/{i}.js"))));
        }
        for i in 0..n {
            out.extend(s.push(cookie(tx(i, "10.0.0.1:1000", 20_000 + i as i64, &format!("/b/{i}.js")), "A")));
        }
        out.extend(s.finish());
        let steps = crate::work::take();
        assert_eq!(users(&out), vec![("cookie:sid=A".into(), 2 * n as usize)]);
        assert_eq!(s.stats().joined_before_cookie, n);
        // Linear (each claim used to search every waiting request: 50
        // million steps here).
        assert!(steps <= 40 * n, "{steps} steps for {n} connections");
    }

    #[test]
    fn a_session_keeps_one_user_agent_not_one_per_transaction() {
        // Three transactions of one user, added out of order: the session
        // shows the User-Agent of the first by request start; the
        // transactions no longer carry it, nor the cookies that tied them
        // to the user.
        let mut a = sets(tx(1, "10.0.0.1:1000", 100, "/a"), "A");
        a.user_agent = Some("UA-late".into());
        let mut b = cookie(tx(2, "10.0.0.1:1001", 0, "/b"), "A");
        b.user_agent = Some("UA-first".into());
        let c = cookie(tx(1, "10.0.0.1:1000", 50, "/c"), "A");
        let s = run(vec![a, b, c], vec![]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].user_agent.as_deref(), Some("UA-first"));
        assert_eq!(s[0].txs.len(), 3);
        assert!(s[0].txs.iter().all(|t| t.user_agent.is_none() && t.evidence.is_none()));
    }

    #[test]
    fn failed_attempts_look_at_each_connection_once() {
        // 4,000 connections from one address in 400 s (user A), then 4,000
        // refused attempts from it, 10 ms apart, that no connection from it
        // follows, while another address keeps time moving: each attempt
        // waits out its window and goes to the user active before it.
        let n = 4_000u64;
        let mut s = Sessionizer::new(&SessionizerConfig::default()).unwrap();
        let mut out = Vec::new();
        crate::work::take();
        for i in 0..n {
            out.extend(s.push(cookie(tx(i, "10.0.0.1:1000", (i * 100) as i64, "/"), "A")));
        }
        for i in 0..n {
            let at = (n * 100 + i * 10) as i64;
            out.extend(s.push_failed(failed(100_000 + i, "10.0.0.1:2000", at)));
            out.extend(s.push(cookie(tx(200_000 + i, "10.0.0.2:1000", at, "/"), "B")));
        }
        for i in 0..200 {
            out.extend(
                s.push(cookie(tx(300_000 + i, "10.0.0.2:1000", (n * 100 + n * 10) as i64 + i as i64 * 1000, "/"), "B")),
            );
        }
        out.extend(s.finish());
        let steps = crate::work::take();
        let a = out.iter().filter(|x| x.user.raw() == "cookie:sid=A").map(|x| x.failed.len()).sum::<usize>();
        assert_eq!(a, n as usize);
        assert_eq!((s.stats().failed_conns_attributed, s.stats().failed_conns_alone), (0, 0));
        // Linear (every attempt used to look at all 4,000 connections on
        // arrival and again every second of its 60 s window: 344 million
        // steps).
        assert!(steps <= 200 * n, "{steps} steps");
    }

    #[test]
    fn an_order_post_converts_with_its_value() {
        let mut post = cookie(tx(1, "10.0.0.1:1000", 100, "/checkout/submit"), "A");
        post.method = Some("POST".into());
        post.status = Some(302);
        post.order_value = Some(59.9);
        let mut cart = cookie(tx(1, "10.0.0.1:1000", 50, "/api/cart"), "A");
        cart.class = ResourceClass::Api;
        cart.cart_value = Some(59.9);
        let s = run(vec![sets(tx(1, "10.0.0.1:1000", 0, "/cart"), "A"), cart, post], vec![]);
        assert!(s[0].converted);
        assert_eq!(s[0].orders, 1);
        assert_eq!(s[0].order_value, Some(59.9));
        assert_eq!(s[0].cart_value, Some(59.9));
    }

    fn ga(mut t: Tx, v: &str) -> Tx {
        t.evidence_mut().persistent = Some(("_ga".into(), v.into()));
        t
    }

    fn with(mut t: Tx, f: impl FnOnce(&mut Tx)) -> Tx {
        f(&mut t);
        t
    }

    fn run_with(cfg: &SessionizerConfig, txs: Vec<Tx>) -> (Vec<Session>, SessionStats) {
        let mut s = Sessionizer::new(cfg).unwrap();
        let mut out = Vec::new();
        for t in txs {
            out.extend(s.push(t));
        }
        out.extend(s.finish());
        (out, s.stats().clone())
    }

    #[test]
    fn a_newcomer_after_a_first_visit_that_went_well_is_someone_else() {
        // Two people behind one address with one User-Agent: the first saw
        // one page (its assets elsewhere) and left; the second came five
        // seconds later, to another page, from a search engine.
        let s = run(
            vec![
                sets(tx(1, "10.0.0.9:1000", 0, "/"), "A"),
                with(sets(tx(2, "10.0.0.9:1001", 5000, "/product/3"), "B"), |t| {
                    t.referer = Some("https://www.search.example/".into())
                }),
                cookie(tx(2, "10.0.0.9:1001", 5100, "/cart"), "B"),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 1), ("cookie:sid=B".into(), 2)]);
    }

    #[test]
    fn a_new_visit_after_a_failed_first_answer_or_from_its_page_is_the_same_user() {
        // The first answer failed (the browser kept no cookie): the next
        // first visit is the person trying again, whatever the page.
        let s = run(
            vec![
                with(sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"), |t| t.status = Some(503)),
                sets(tx(2, "10.0.0.1:1001", 4000, "/product/9"), "B"),
                cookie(tx(2, "10.0.0.1:1001", 4100, "/a.css"), "B"),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 3)]);
        // A browser that keeps no cookie, following a link from its page.
        let s = run(
            vec![
                sets(tx(1, "10.0.0.1:1000", 0, "/c/shoes"), "A"),
                with(sets(tx(2, "10.0.0.1:1001", 9000, "/product/9"), "B"), |t| {
                    t.referer = Some("http://shop.example/c/shoes".into())
                }),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 2)]);
    }

    #[test]
    fn a_persistent_cookie_ties_a_new_session_cookie_to_its_browser() {
        // A customer with an analytics id; hours later the session cookie
        // has expired, the browser comes back with the same analytics id
        // and is given a new session cookie.
        let later = 4 * 3600 * 1000;
        let (s, st) = run_with(
            &SessionizerConfig::default(),
            vec![
                ga(sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"), "GA1.1.111"),
                ga(cookie(tx(1, "10.0.0.1:1000", 100, "/p/1"), "A"), "GA1.1.111"),
                ga(sets(tx(2, "10.0.0.77:1000", later, "/"), "B"), "GA1.1.111"),
                ga(cookie(tx(2, "10.0.0.77:1000", later + 100, "/p/2"), "B"), "GA1.1.111"),
            ],
        );
        assert_eq!(s.len(), 2, "two sessions");
        assert!(s.iter().all(|x| x.user.raw() == "cookie:sid=A"), "{:?}", users(&s));
        assert_eq!(s[1].index, 2);
        assert_eq!(st.births_tied_by_cookie, 1);
        assert_eq!(st.users_by_rule.get("cookie"), Some(&1));
    }

    #[test]
    fn persistent_cookies_split_users_of_one_address_and_user_agent() {
        // A first visit whose cookie did not come back, and a reload of the
        // same page five seconds later: but from another browser.
        let (s, st) = run_with(
            &SessionizerConfig::default(),
            vec![
                ga(sets(tx(1, "10.0.0.9:1000", 0, "/"), "A"), "GA1.1.111"),
                ga(sets(tx(2, "10.0.0.9:1001", 5000, "/"), "B"), "GA1.1.222"),
                ga(cookie(tx(2, "10.0.0.9:1001", 5100, "/p/1"), "B"), "GA1.1.222"),
            ],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 1), ("cookie:sid=B".into(), 2)]);
        assert_eq!(st.split_by_persistent_cookie, 1);
        // Without any session cookie: one user per persistent cookie, not
        // one per address and User-Agent; requests with none share the
        // address's.
        let s = run(
            vec![
                ga(tx(1, "10.0.0.9:1000", 0, "/"), "GA1.1.111"),
                ga(tx(2, "10.0.0.9:1001", 10, "/"), "GA1.1.222"),
                ga(tx(3, "10.0.0.9:1002", 20, "/x"), "GA1.1.111"),
                tx(4, "10.0.0.9:1003", 30, "/y"),
            ],
            vec![],
        );
        assert_eq!(
            users(&s),
            vec![
                ("client:10.0.0.9 UA-1".into(), 1),
                ("cookie:_ga=GA1.1.111".into(), 2),
                ("cookie:_ga=GA1.1.222".into(), 1)
            ]
        );
        // A request sent before the cookie came joins only the first visit
        // of its own browser.
        let s = run(
            vec![
                ga(tx(2, "10.0.0.9:1001", 5, "/a.css"), "GA1.1.222"),
                ga(sets(tx(1, "10.0.0.9:1000", 0, "/"), "A"), "GA1.1.111"),
            ],
            vec![],
        );
        assert_eq!(users(&s), vec![("cookie:_ga=GA1.1.222".into(), 1), ("cookie:sid=A".into(), 1)]);
    }

    #[test]
    fn the_same_connection_or_sign_in_ties_a_new_session_cookie() {
        // The cookie was dropped (signed out) and the next request on the
        // same connection was given a new one.
        let (s, st) = run_with(
            &SessionizerConfig::default(),
            vec![
                cookie(tx(1, "10.0.0.1:1000", 0, "/"), "A"),
                sets(tx(1, "10.0.0.1:1000", 900, "/"), "B"),
                cookie(tx(1, "10.0.0.1:1000", 1000, "/p/1"), "B"),
            ],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 3)]);
        assert_eq!(st.births_tied_by_connection, 1);
        // Not on a trusted proxy's connection (its clients take turns).
        let proxied = |t: Tx, ip: &str| with(t, |t| t.client_ip = ip.parse().unwrap());
        let (s, _) = run_with(
            &SessionizerConfig::default(),
            vec![
                proxied(cookie(tx(1, "10.0.0.1:1000", 0, "/"), "A"), "203.0.113.5"),
                proxied(sets(tx(1, "10.0.0.1:1000", 900, "/"), "B"), "203.0.113.5"),
            ],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 1), ("cookie:sid=B".into(), 1)]);
        // Signing in without a cookie, under a name a user gave before.
        let signin = |t: Tx| with(t, |t| t.login = Some("alice".into()));
        let (s, st) = run_with(
            &SessionizerConfig::default(),
            vec![
                signin(cookie(tx(1, "10.0.0.1:1000", 0, "/login"), "A")),
                signin(sets(tx(2, "10.0.0.2:1000", 2_000_000, "/login"), "B")),
                cookie(tx(2, "10.0.0.2:1000", 2_000_100, "/cart"), "B"),
            ],
        );
        assert!(s.iter().all(|x| x.user.raw() == "cookie:sid=A"), "{:?}", users(&s));
        assert_eq!(st.births_tied_by_login, 1);
    }

    #[test]
    fn a_first_visit_on_two_connections_before_its_answer_is_one_user() {
        // Two requests sent before either answer came, each given a cookie.
        let (s, st) = run_with(
            &SessionizerConfig::default(),
            vec![
                answered_in(sets(tx(1, "10.0.0.1:1000", 0, "/"), "A"), 80),
                sets(tx(2, "10.0.0.1:1001", 30, "/favicon.ico"), "B"),
                cookie(tx(1, "10.0.0.1:1000", 200, "/p/1"), "A"),
            ],
        );
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 3)]);
        assert_eq!(st.births_tied_by_first_visit, 1);
    }

    /// `t` with its answer reaching the client `ms` after it was sent.
    fn answered_in(t: Tx, ms: i64) -> Tx {
        with(t, |t| t.resp_start = Some(t.start + Dur::from_millis(ms)))
    }

    /// `t` never answered (written when its connection ends).
    fn unanswered(t: Tx) -> Tx {
        with(t, |t| {
            (t.status, t.resp_start, t.resp_end) = (None, None, None);
            t.outcome = pov_capture::http::Outcome::NoResponse;
        })
    }

    /// A first request that got no answer is written when its connection
    /// ends, minutes after the visit went on with the cookie its retry was
    /// given (and after the cookie came back): it is still that visit's.
    #[test]
    fn a_request_sent_before_the_first_answer_that_comes_late_is_that_visits() {
        // A first visit whose answer set cookie A at 35 s, the cookie back
        // at 40 s and 200 s, then a request without cookie and never
        // answered, sent at `ms`, written last.
        let visit = |ms: i64| {
            run_with(
                &SessionizerConfig::default(),
                vec![
                    answered_in(sets(tx(1, "10.0.0.1:1000", 35_000, "/"), "A"), 80),
                    cookie(tx(1, "10.0.0.1:1000", 40_000, "/p/1"), "A"),
                    cookie(tx(1, "10.0.0.1:1000", 200_000, "/p/2"), "A"),
                    unanswered(tx(2, "10.0.0.1:1001", ms, "/")),
                ],
            )
        };
        let (s, st) = visit(0);
        assert_eq!(users(&s), vec![("cookie:sid=A".into(), 4)]);
        assert_eq!(st.joined_before_cookie, 1);
        // Sent after that answer reached the client, it would not be.
        let (s, st) = visit(36_000);
        assert_eq!(users(&s).len(), 2, "{:?}", users(&s));
        assert_eq!(st.joined_before_cookie, 0);
    }

    fn page(conn: u64, client: &str, ms: i64, target: &str) -> Vec<Tx> {
        let asset = |n: &str, c: ResourceClass| {
            with(tx(conn, client, ms + 40, &format!("/static/{n}")), |t| {
                t.class = c;
                t.referer = Some(format!("http://shop.example{target}"));
            })
        };
        vec![tx(conn, client, ms, target), asset("a.css", ResourceClass::Style), asset("b.png", ResourceClass::Image)]
    }

    fn robot_of(s: &[Session]) -> Vec<Option<String>> {
        s.iter().map(|x| x.robot.as_ref().map(|r| r.rule.clone())).collect()
    }

    #[test]
    fn robots_by_user_agent_and_behaviour() {
        let cfg = SessionizerConfig::default();
        let ua = |t: Tx, a: &str| with(t, |t| t.user_agent = Some(a.into()));
        // A crawler, whatever it does.
        let (s, _) =
            run_with(&cfg, vec![ua(tx(1, "10.0.0.1:1000", 0, "/"), "Mozilla/5.0 (compatible; Googlebot/2.1)")]);
        assert_eq!(robot_of(&s), vec![Some("user_agent".into())]);
        assert!(s[0].robot.as_ref().unwrap().evidence.contains("googlebot"));
        // A tool fetching pages only is a robot; one fetching assets is not.
        let (s, _) = run_with(&cfg, vec![ua(tx(1, "10.0.0.1:1000", 0, "/"), "curl/8.5.0")]);
        assert_eq!(robot_of(&s), vec![Some("tool_agent".into())]);
        let (s, _) =
            run_with(&cfg, page(1, "10.0.0.1:1000", 0, "/").into_iter().map(|t| ua(t, "Wget/1.21.4")).collect());
        assert_eq!(robot_of(&s), vec![None]);
        // ... nor is one whose only page failed (nothing to load), even
        // under a 200 cut short.
        let (s, _) =
            run_with(&cfg, vec![with(ua(tx(1, "10.0.0.1:1000", 0, "/"), "Wget/1.21.4"), |t| t.status = Some(500))]);
        assert_eq!(robot_of(&s), vec![None]);
        let reset = with(ua(tx(1, "10.0.0.1:1000", 0, "/"), "Wget/1.21.4"), |t| {
            t.outcome = pov_capture::http::Outcome::ServerReset
        });
        assert_eq!(robot_of(&run_with(&cfg, vec![reset]).0), vec![None]);
        // Machine rate: twelve pages 200 ms apart, assets and all.
        let fast: Vec<Tx> = (0..12).flat_map(|i| page(1, "10.0.0.1:1000", i * 200, &format!("/p/{i}"))).collect();
        let (s, _) = run_with(&cfg, fast.into_iter().map(|t| cookie(t, "A")).collect());
        assert_eq!(robot_of(&s), vec![Some("machine_rate".into())]);
        // Not a viewer reading one file in ranges, nor reloads.
        let ranges: Vec<Tx> = (0..12)
            .map(|i| with(cookie(tx(1, "10.0.0.1:1000", i * 200, "/doc.pdf"), "A"), |t| t.status = Some(206)))
            .collect();
        assert_eq!(robot_of(&run_with(&cfg, ranges).0), vec![None]);
        let reloads: Vec<Tx> =
            (0..12).flat_map(|i| page(1, "10.0.0.1:1000", i * 300, "/p/1")).map(|t| cookie(t, "A")).collect();
        assert_eq!(robot_of(&run_with(&cfg, reloads).0), vec![None]);
        // A person: twelve pages seconds apart.
        let slow: Vec<Tx> = (0..12).flat_map(|i| page(1, "10.0.0.1:1000", i * 4000, &format!("/p/{i}"))).collect();
        let (s, _) = run_with(&cfg, slow.into_iter().map(|t| cookie(t, "A")).collect());
        assert_eq!(robot_of(&s), vec![None]);
        // Pages without their assets, at a human pace.
        let bare: Vec<Tx> = (0..6).map(|i| cookie(tx(1, "10.0.0.1:1000", i * 3000, &format!("/p/{i}")), "A")).collect();
        let (s, _) = run_with(&cfg, bare.clone());
        assert_eq!(robot_of(&s), vec![Some("no_assets".into())]);
        // ... but a person with every asset cached follows links.
        let linked: Vec<Tx> =
            bare.iter().cloned().map(|t| with(t, |t| t.referer = Some("http://shop.example/".into()))).collect();
        assert_eq!(robot_of(&run_with(&cfg, linked).0), vec![None]);
        // Rules can be turned off.
        let off = SessionizerConfig {
            robots: RobotsConfig { assetless_documents: 0, ..RobotsConfig::default() },
            ..SessionizerConfig::default()
        };
        assert_eq!(robot_of(&run_with(&off, bare).0), vec![None]);
    }

    #[test]
    fn many_identities_from_one_address_and_user_agent_are_a_load_generator() {
        // 30 session cookies in 30 s from one address with one (browser)
        // User-Agent, each for a page and its assets; beside them, a person
        // from another address.
        let mut txs = Vec::new();
        for i in 0..30i64 {
            let mut p = page(100 + i as u64, "10.0.0.50:2000", i * 1000, "/");
            p[0].evidence_mut().set_cookie = Some(("sid".into(), format!("L{i}")));
            for t in p.iter_mut().skip(1) {
                t.evidence_mut().cookie = Some(("sid".into(), format!("L{i}")));
            }
            txs.extend(p);
        }
        txs.extend(page(1, "10.0.0.1:1000", 500, "/").into_iter().map(|t| cookie(t, "H")));
        txs.sort_by_key(|t| t.start);
        let (s, _) = run_with(&SessionizerConfig::default(), txs);
        assert_eq!(s.len(), 31);
        for x in &s {
            let want = if x.user.raw() == "cookie:sid=H" { None } else { Some("identities".to_string()) };
            assert_eq!(x.robot.as_ref().map(|r| r.rule.clone()), want, "{}", x.user.raw());
        }
    }

    #[test]
    fn crowds_of_first_sightings_are_kept_in_a_few_bytes() {
        let (n, w) = (10, Dur::from_secs(60));
        let at = |s: i64| Ts(1_700_000_000_000_000_000 + s * 1_000_000_000);
        // Eight new users a minute, for an hour: never ten in a minute.
        let mut b = Births::default();
        for i in 0..480 {
            b.add(Ts(at(0).0 + i * 7_500_000_000), n, w);
        }
        assert!(b.busy.is_empty() && b.recent.len() == n);
        // 100,000 in 1,000 s, a little out of order: one crowded span, ten
        // times held.
        let mut b = Births::default();
        for i in 0..100_000i64 {
            b.add(Ts(at(5000).0 + (i ^ 1) * 10_000_000), n, w);
        }
        assert_eq!(b.recent.len(), n);
        assert_eq!(b.busy.len(), 1);
        assert!(b.crowded(at(4950)) && b.crowded(at(5500)) && b.crowded(at(6050)));
        assert!(!b.crowded(at(4900)) && !b.crowded(at(6100)));
    }
}
