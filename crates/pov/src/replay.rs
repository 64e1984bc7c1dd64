//! `pov replay har|html|send` and the replays of `pov analyze`: the
//! selected sessions as HAR 1.2 or as an HTML replay. One pass over the
//! captures ([`crate::run::replay`]): the user stage finds the sessions and
//! which transactions they hold while every transaction is stored whole
//! ([`crate::store`]); the selected ones are then read back ([`read_kept`])
//! for pov-replay to write.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use pov_capture::Ts;
use pov_capture::http::HttpTransaction;
use pov_replay::html::{ReplayFailure, ReplayPage, ReplaySession};
use pov_replay::{HarEntry, HarPage};

use pov_classify::Classified;
use pov_sessions::Session;

use crate::pipeline::RunReport;
use crate::run::Watch;
use crate::store::{StoreStats, TxStore};
use crate::users::SessionTap;

pub use pov_privacy::Masker;

/// Most sessions replayed by default (`--max-sessions`; also the cap of
/// `pov analyze`'s replays).
pub const MAX_SESSIONS: usize = 1000;

/// Most response body bytes held for a replay by default
/// (`--max-replay-bytes`; also the cap of `pov analyze`'s replays).
pub const MAX_BODY_BYTES: usize = 128 << 20;

/// How much a replay holds, and whether robots' sessions may be picked.
#[derive(Clone, Copy, Debug)]
pub struct ReplayLimits {
    /// Most sessions (their transactions are held whole until the output
    /// is written); later matches are counted and left out.
    pub max_sessions: usize,
    /// Most response body bytes held in all; later bodies are left out.
    pub max_body_bytes: usize,
    /// Most bytes of transactions kept on disk while the captures are read.
    pub max_store_bytes: u64,
    /// Robots' and load generators' sessions may be picked too
    /// (`--include-robots`); by default they are left out, as from users.
    pub include_robots: bool,
}

impl Default for ReplayLimits {
    fn default() -> ReplayLimits {
        ReplayLimits {
            max_sessions: MAX_SESSIONS,
            max_body_bytes: MAX_BODY_BYTES,
            max_store_bytes: crate::store::MAX_STORE_BYTES,
            include_robots: false,
        }
    }
}

/// The selected sessions and their transactions, whole.
pub struct Replay {
    /// The sessions selected (none: nothing matched).
    pub selection: Selection,
    /// Their transactions.
    pub keep: Keep,
    /// The pass over the captures.
    pub report: RunReport,
    /// Whether what was kept is masked (user keys and secrets).
    pub mask: bool,
    /// The robots' and load generators' sessions seen (left out of the
    /// selection unless [`ReplayLimits::include_robots`]).
    pub robots: crate::users::RobotsReport,
}

/// The transactions of `sel`, whole, from the run's `store`, charged to
/// `budget`, with at most `max_body_bytes` of response bodies; and what
/// the store held. What was left out is told to `watch`.
pub fn read_kept(
    store: &TxStore,
    sel: &Selection,
    max_body_bytes: usize,
    budget: &pov_capture::Budget,
    watch: &mut dyn Watch,
) -> io::Result<(Keep, StoreStats)> {
    let mut keep = Keep::new(sel.txs.clone(), max_body_bytes).with_budget(budget);
    let wanted = sel.txs.keys().copied().collect();
    let stats = store
        .read(&wanted, |tx| keep.keep(tx))
        .map_err(|e| io::Error::new(e.kind(), format!("the transactions kept for replays: {e}")))?;
    if stats.bodies_left_out > 0 {
        watch.warning(format!(
            "{} transactions were kept for replays without their bodies, the store being full ({} bytes; raise --max-store-bytes)",
            stats.bodies_left_out, stats.bytes
        ));
    }
    if keep.bodies_dropped > 0 {
        watch.warning(format!(
            "{} response bodies left out of the replay over --max-replay-bytes ({} bytes kept)",
            keep.bodies_dropped, keep.body_bytes
        ));
    }
    if keep.txs_dropped > 0 {
        watch.warning(format!(
            "{} transactions left out of the replay: the memory budget was full (raise --memory-budget)",
            keep.txs_dropped
        ));
    }
    Ok((keep, stats))
}

/// A transaction's place: (connection, position in it).
pub type TxKey = (u64, u32);

/// Which sessions to replay.
#[derive(Clone, Debug)]
pub enum Selector {
    /// One session (`user/index`).
    Session(String),
    /// Every session with a noticed failure.
    Failed,
    /// Every session of these users.
    Users(HashSet<String>),
}

/// Where a selected transaction belongs.
#[derive(Clone, Debug)]
pub struct Place {
    /// The HAR page id of its page view, if it has one.
    pub page: Option<String>,
    /// Its session (index into [`Selection::sessions`]).
    pub session: usize,
}

/// A selected session, its transactions named by [`TxKey`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SelSession {
    /// Session id.
    pub id: String,
    /// User.
    pub user: String,
    /// Start and end.
    pub start: Ts,
    /// End.
    pub end: Ts,
    /// Page views (the document and transactions by key).
    pub pages: Vec<(ReplayPage, Option<TxKey>, Vec<TxKey>)>,
    /// Failures (the transaction by key).
    pub failures: Vec<(ReplayFailure, Option<TxKey>)>,
    /// Every transaction.
    pub txs: Vec<TxKey>,
}

/// What the first pass found: the transactions to keep and their pages.
#[derive(Debug, Default)]
pub struct Selection {
    /// Where each selected transaction belongs.
    pub txs: HashMap<TxKey, Place>,
    /// Page views, in order.
    pub pages: Vec<HarPage>,
    /// Sessions selected.
    pub sessions: Vec<SelSession>,
    /// Sessions that matched after [`SelectLimits::max_sessions`] were
    /// selected, left out.
    pub over_cap: u64,
}

/// How a selection is made.
#[derive(Clone, Debug)]
pub struct SelectLimits {
    /// Masks what the selection keeps of the sessions (URLs, details).
    pub masker: Masker,
    /// Most sessions kept (their transactions are held whole, bodies
    /// included, until the replay is written); later matches are counted
    /// in [`Selection::over_cap`].
    pub max_sessions: usize,
}

/// A closed session as the replay keeps it (URLs masked as `limits` say).
pub fn sel_session(s: &Session, c: &Classified, user: &str, sid: &str, limits: &SelectLimits) -> SelSession {
    let key = |i: usize| s.txs.get(i).map(|t| (t.conn, t.depth));
    let masked = |u: &str| limits.masker.url(u);
    // Page index to position, once (not a search per failure).
    let mut position: HashMap<u32, usize> = HashMap::with_capacity(s.pages.len());
    for (i, p) in s.pages.iter().enumerate() {
        position.entry(p.index).or_insert(i);
    }
    SelSession {
        id: sid.to_string(),
        user: user.to_string(),
        start: s.start,
        end: s.end,
        pages: s
            .pages
            .iter()
            .map(|p| {
                let page = ReplayPage {
                    url: masked(&format!("http://{}{}", p.host.as_deref().unwrap_or("").to_ascii_lowercase(), p.url)),
                    name: p.name.clone(),
                    start: p.start,
                    load_ms: p.load.as_millis_f64(),
                    status: p.status,
                    document: None,
                    txs: Vec::new(),
                };
                (page, p.documents.last().and_then(|d| key(*d)), p.txs.iter().filter_map(|i| key(*i)).collect())
            })
            .collect(),
        failures: c
            .failures
            .iter()
            .map(|f| {
                let rf = ReplayFailure {
                    kind: f.kind.as_str().to_string(),
                    rule: f.rule.clone(),
                    severity: f.severity.as_str().to_string(),
                    // Page views count from 1; the replay indexes them.
                    page: f.page.and_then(|n| position.get(&n).copied()),
                    tx: None,
                    ts: f.ts,
                    url: masked(&f.url),
                    status: f.status,
                    detail: limits.masker.text(&f.detail).into_owned(),
                };
                (rf, f.tx.and_then(key))
            })
            .collect(),
        txs: s.txs.iter().map(|t| (t.conn, t.depth)).collect(),
    }
}

impl Selection {
    /// Adds a session: its page views become HAR pages and its
    /// transactions are wanted from the run's store.
    pub fn add(&mut self, s: SelSession) {
        let session = self.sessions.len();
        let mut page_of: HashMap<TxKey, String> = HashMap::new();
        for (p, _, txs) in &s.pages {
            let id = format!("page_{}", self.pages.len() + 1);
            self.pages.push(HarPage {
                id: id.clone(),
                started: p.start,
                title: p.url.clone(),
                on_load_ms: Some(p.load_ms),
            });
            for k in txs {
                page_of.insert(*k, id.clone());
            }
        }
        for k in &s.txs {
            self.txs.insert(*k, Place { page: page_of.get(k).cloned(), session });
        }
        self.sessions.push(s);
    }
}

/// A tap for the user stage that fills a shared [`Selection`].
pub fn selecting_tap(sel: Selector, into: Rc<RefCell<Selection>>, limits: SelectLimits) -> SessionTap {
    Box::new(move |s, c, user, sid| {
        let chosen = match &sel {
            Selector::Session(x) => x == sid,
            Selector::Failed => c.failures.iter().any(|f| f.severity.noticed()),
            Selector::Users(set) => set.contains(user),
        };
        if !chosen {
            return;
        }
        let mut out = into.borrow_mut();
        if out.sessions.len() >= limits.max_sessions {
            out.over_cap += 1;
            return;
        }
        out.add(sel_session(s, c, user, sid, &limits));
    })
}

/// Sessions with a noticed failure, written as JSON lines while `pov
/// analyze` runs, so that the replays of the most affected users (known only
/// at the end) need one more pass, not two, and memory holds none of them.
pub struct Spill {
    path: PathBuf,
    out: Option<io::BufWriter<fs::File>>,
    error: Option<io::Error>,
}

impl Spill {
    /// A new spill file at `path` (removed when the spill is dropped).
    pub fn create(path: &Path) -> io::Result<Spill> {
        let f = fs::File::create(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Spill { path: path.to_path_buf(), out: Some(io::BufWriter::new(f)), error: None })
    }

    fn write(&mut self, s: &SelSession) {
        let Some(w) = self.out.as_mut() else { return };
        let r = serde_json::to_writer(&mut *w, s).map_err(io::Error::other).and_then(|()| w.write_all(b"\n"));
        if let Err(e) = r {
            self.error = Some(e);
            self.out = None;
        }
    }

    /// The sessions of `users`, at most `max` of them, in the order they
    /// closed; an error if writing or reading the spill failed.
    pub fn select(&mut self, users: &HashSet<String>, max: usize) -> io::Result<Selection> {
        if let Some(mut w) = self.out.take() {
            w.flush()?;
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut sel = Selection::default();
        for line in io::BufReader::new(fs::File::open(&self.path)?).lines() {
            let line = line?;
            // Whose it is, read first: the other users' sessions (most of
            // them) are only checked as JSON, not built.
            let whose: Whose<'_> = serde_json::from_str(&line).map_err(io::Error::other)?;
            if !users.contains(whose.user.as_ref()) {
                continue;
            }
            if sel.sessions.len() >= max {
                sel.over_cap += 1;
                continue;
            }
            sel.add(serde_json::from_str(&line).map_err(io::Error::other)?);
        }
        Ok(sel)
    }
}

/// The user of a spilled session.
#[derive(serde::Deserialize)]
struct Whose<'a> {
    #[serde(borrow)]
    user: std::borrow::Cow<'a, str>,
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.out = None;
        let _ = fs::remove_file(&self.path);
    }
}

/// A tap that writes every session with a noticed failure to `spill`.
pub fn spilling_tap(spill: Rc<RefCell<Spill>>, limits: SelectLimits) -> SessionTap {
    Box::new(move |s, c, user, sid| {
        if c.failures.iter().any(|f| f.severity.noticed()) {
            spill.borrow_mut().write(&sel_session(s, c, user, sid, &limits));
        }
    })
}

/// The selected transactions, whole (read back from the run's store).
pub struct Keep {
    /// What to keep.
    pub wanted: HashMap<TxKey, Place>,
    /// What was kept.
    pub kept: Vec<HttpTransaction>,
    /// Most response body bytes held in all (`--max-replay-bytes`); the
    /// bodies of later transactions are dropped (their heads and timings
    /// stay).
    pub max_body_bytes: usize,
    /// Body bytes held.
    pub body_bytes: usize,
    /// Response bodies dropped over `max_body_bytes`.
    pub bodies_dropped: u64,
    /// Transactions left out because the memory budget was full.
    pub txs_dropped: u64,
    /// What the kept transactions hold of the memory budget (their kept
    /// bodies carry charges of their own).
    charge: pov_capture::budget::Charge,
}

impl Keep {
    /// Keeps the `wanted` transactions, with at most `max_body_bytes` of
    /// response bodies in all.
    pub fn new(wanted: HashMap<TxKey, Place>, max_body_bytes: usize) -> Keep {
        Keep {
            wanted,
            kept: Vec::new(),
            max_body_bytes,
            body_bytes: 0,
            bodies_dropped: 0,
            txs_dropped: 0,
            charge: pov_capture::budget::Charge::none(),
        }
    }

    /// Charges the kept transactions to `budget` (the run's): one it has no
    /// room for is left out of the replay (counted in `txs_dropped`).
    pub fn with_budget(mut self, budget: &pov_capture::Budget) -> Keep {
        self.charge = budget.empty(pov_capture::Holder::Replay);
        self
    }
}

/// What a transaction kept whole for a replay costs the memory budget,
/// besides its bodies: the record, its heads, and about as much again for
/// its entry in the page being written.
fn replay_weight(tx: &HttpTransaction) -> usize {
    let heads = tx.request.as_ref().map_or(0, |r| r.uri.len() + r.headers.heap_bytes())
        + tx.response.as_ref().map_or(0, |r| r.reason.len() + r.headers.heap_bytes());
    2 * (std::mem::size_of::<HttpTransaction>() + heads)
}

impl Keep {
    /// Keeps `tx` if it is wanted (fed in request order: over
    /// `max_body_bytes`, the later bodies are dropped).
    pub fn keep(&mut self, mut tx: HttpTransaction) {
        if !self.wanted.contains_key(&(tx.conn, tx.depth)) {
            return;
        }
        if !self.charge.try_grow(replay_weight(&tx)) {
            self.txs_dropped += 1;
            return;
        }
        let n = tx.response_body.kept.len();
        if self.body_bytes + n > self.max_body_bytes {
            if n > 0 {
                tx.response_body.kept = Vec::new();
                self.bodies_dropped += 1;
            }
        } else {
            self.body_bytes += n;
        }
        self.kept.push(tx);
    }
}

/// The HTML replay of some of the selected sessions.
pub fn html_of(keep: &Keep, sessions: &[&SelSession], mask: &Masker) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail, and every piece is UTF-8.
    let _ = write_html(keep, sessions, mask, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// As [`html_of`], written into `w` as it is made (the page is never held
/// whole).
pub fn write_html(
    keep: &Keep,
    sessions: &[&SelSession],
    mask: &Masker,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let txs: Vec<&HttpTransaction> = keep.kept.iter().collect();
    let at: HashMap<TxKey, usize> = txs.iter().enumerate().map(|(i, t)| ((t.conn, t.depth), i)).collect();
    let idx = |k: &TxKey| at.get(k).copied();
    let sessions: Vec<ReplaySession> = sessions
        .iter()
        .map(|s| ReplaySession {
            id: s.id.clone(),
            user: s.user.clone(),
            start: s.start,
            end: s.end,
            pages: s
                .pages
                .iter()
                .map(|(p, doc, txs)| ReplayPage {
                    document: doc.as_ref().and_then(idx),
                    txs: txs.iter().filter_map(idx).collect(),
                    ..p.clone()
                })
                .collect(),
            failures: s
                .failures
                .iter()
                .map(|(f, k)| ReplayFailure { tx: k.as_ref().and_then(idx), ..f.clone() })
                .collect(),
            txs: s.txs.iter().filter_map(idx).collect(),
        })
        .collect();
    pov_replay::html::write(&sessions, &txs, mask, env!("CARGO_PKG_VERSION"), w)
}

/// The kept transactions in request order.
pub fn in_order(keep: &Keep) -> Vec<&HttpTransaction> {
    let mut txs: Vec<&HttpTransaction> = keep.kept.iter().collect();
    txs.sort_by_key(|t| (t.timing.start(), t.conn, t.depth));
    txs
}

/// The HAR of the kept transactions.
pub fn har(keep: &Keep, sel: &Selection, mask: &Masker) -> serde_json::Value {
    let entries: Vec<HarEntry<'_>> = in_order(keep)
        .into_iter()
        .map(|t| {
            let place = keep.wanted.get(&(t.conn, t.depth));
            HarEntry {
                page: place.and_then(|p| p.page.clone()),
                session: place.and_then(|p| sel.sessions.get(p.session)).map(|s| s.id.clone()),
                tx: t,
            }
        })
        .collect();
    let pages = &sel.pages;
    pov_replay::har(pages, &entries, mask, env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pov_capture::http::{Headers, RequestHead, TxTiming};

    fn tx(depth: u32) -> HttpTransaction {
        HttpTransaction {
            request: Some(RequestHead {
                method: "GET".into(),
                uri: format!("/page/{depth}").into_bytes(),
                version: Some(1),
                headers: Headers::from_pairs([(&b"Host"[..], &b"shop"[..])]),
            }),
            timing: TxTiming { req_start: Some(Ts(i64::from(depth))), ..TxTiming::default() },
            ..HttpTransaction::new(1, "10.0.0.1:1".parse().expect("addr"), "10.0.0.2:80".parse().expect("addr"), depth)
        }
    }

    /// A replay keeps the selected transactions the memory budget has room
    /// for, counts the others, and gives the room back when dropped.
    #[test]
    fn a_replay_keeps_what_the_memory_budget_has_room_for() {
        let budget = pov_capture::Budget::new(1 << 20);
        let wanted: HashMap<TxKey, Place> = (1..=10_000).map(|d| ((1, d), Place { page: None, session: 0 })).collect();
        let mut keep = Keep::new(wanted, usize::MAX).with_budget(&budget);
        for d in 1..=10_000 {
            keep.keep(tx(d));
            assert!(budget.used() <= 1 << 20);
        }
        // Transactions not selected are not kept, nor counted.
        keep.keep(tx(20_000));
        let kept = keep.kept.len() as u64;
        assert!((100..10_000).contains(&kept), "{kept} kept");
        assert_eq!(keep.txs_dropped, 10_000 - kept);
        assert_eq!(budget.report().refused.get("replay"), Some(&keep.txs_dropped));
        drop(keep);
        assert_eq!(budget.used(), 0);
    }
}
