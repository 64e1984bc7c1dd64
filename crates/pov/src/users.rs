//! `pov users`, `pov sessions`, `pov pages`, `pov failures`: the user
//! stage. Transactions stream into a [`UserStage`], which ties them to
//! users and sessions (pov-sessions), labels what went wrong (pov-classify)
//! and writes records as sessions close.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use pov_capture::Ts;
use pov_capture::http::HttpTransaction;
use pov_capture::tcp::ConnSummary;
use pov_classify::routes::Routes;
use pov_classify::{Classified, Classifier, FailureKind, Severity};
use pov_sessions::{Closing, ClosingPart, FailedConn, Session, SessionStats, Sessionizer, Tx, UserKey};

use crate::config::PovConfig;
use crate::output::{Format, Record, RecordWriter};
use crate::parallel::{Downstream, Flow, GO_ON, Prepare};
use pov_privacy::Masker;
use std::sync::Arc;

fn secs(t: Ts) -> f64 {
    t.as_secs_f64()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The records of the user stage (their columns are pov-impact's schema).
pub use pov_impact::schema::{FailureRecord, PageRecord, SessionRecord, UserRecord};

fn kinds_text(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter().map(|(k, n)| format!("{k}:{n}")).collect::<Vec<_>>().join(" ")
}

fn opt_money(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

impl Record for UserRecord {
    const ROW_GROUP_BYTES: usize = pov_impact::parquet::SIDE_TABLE_ROW_GROUP_BYTES;
    const HEADER: &'static [&'static str] = &[
        "user", "rule", "first", "client", "sessions", "pages", "tx", "failures", "minor", "loss", "conv", "cart",
        "order",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.user.clone(),
            self.id_rule.clone(),
            format!("{:.3}", self.first_ts),
            self.client_ip.clone().unwrap_or_else(|| "-".into()),
            self.sessions.to_string(),
            self.pages.to_string(),
            self.transactions.to_string(),
            kinds_text(&self.failures),
            self.minor_failures.to_string(),
            self.capture_loss.to_string(),
            if self.converted { "yes".into() } else { "no".into() },
            opt_money(self.cart_value),
            opt_money(self.order_value),
        ]
    }
}

impl Record for SessionRecord {
    const ROW_GROUP_BYTES: usize = pov_impact::parquet::SIDE_TABLE_ROW_GROUP_BYTES;
    const HEADER: &'static [&'static str] =
        &["session", "start", "secs", "pages", "tx", "last step", "failures", "apdex", "conv", "order"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.session.clone(),
            format!("{:.3}", self.start),
            format!("{:.1}", self.duration_s),
            self.pages.to_string(),
            self.transactions.to_string(),
            self.last_step.clone().unwrap_or_else(|| "-".into()),
            kinds_text(&self.failures),
            self.apdex.map(|a| format!("{a:.2}")).unwrap_or_else(|| "-".into()),
            if self.converted { "yes".into() } else { "no".into() },
            opt_money(self.order_value),
        ]
    }
}

impl Record for PageRecord {
    const ROW_GROUP_BYTES: usize = pov_impact::parquet::SIDE_TABLE_ROW_GROUP_BYTES;
    const HEADER: &'static [&'static str] =
        &["page", "ts", "url", "step", "status", "reqs", "load ms", "server ms", "apdex", "failures"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.page.clone(),
            format!("{:.3}", self.ts),
            self.url.clone(),
            self.step.clone().unwrap_or_else(|| "-".into()),
            self.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            self.requests.to_string(),
            format!("{:.0}", self.load_ms),
            format!("{:.0}", self.server_ms),
            self.apdex.clone(),
            if self.failures.is_empty() { "-".into() } else { self.failures.join(" ") },
        ]
    }
}

impl Record for FailureRecord {
    const ROW_GROUP_BYTES: usize = pov_impact::parquet::SIDE_TABLE_ROW_GROUP_BYTES;
    const HEADER: &'static [&'static str] =
        &["ts", "user", "kind", "severity", "rule", "uid", "frames", "url", "status", "detail"];
    fn cells(&self) -> Vec<String> {
        vec![
            format!("{:.3}", self.ts),
            self.user.clone(),
            self.kind.clone(),
            self.severity.clone(),
            self.rule.clone(),
            self.uid.clone(),
            match (self.first_frame, self.last_frame) {
                (Some(a), Some(b)) => format!("{a}-{b}"),
                _ => "-".into(),
            },
            self.url.clone(),
            self.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            self.detail.clone(),
        ]
    }
}

/// A user's totals over their sessions (the user's key is the map's).
#[derive(serde::Serialize, serde::Deserialize)]
struct UserAgg {
    first: Ts,
    last: Ts,
    client_ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
    login: Option<String>,
    sessions: u64,
    pages: u64,
    txs: u64,
    /// Noticed failures by kind, in kind order (a few at most).
    failures: Vec<(FailureKind, u64)>,
    minor: u64,
    struggles: u64,
    loss: u64,
    orders: u64,
    cart: Option<f64>,
    order: Option<f64>,
}

impl UserAgg {
    /// Adds `later`: the same user's totals from sessions that closed after
    /// these (what one total would hold had it never been split).
    fn absorb(&mut self, later: UserAgg) {
        self.first = self.first.min(later.first);
        self.last = self.last.max(later.last);
        // The address is the first session's; the User-Agent and login the
        // first known.
        if self.user_agent.is_none() {
            self.user_agent = later.user_agent;
        }
        if self.login.is_none() {
            self.login = later.login;
        }
        self.sessions += later.sessions;
        self.pages += later.pages;
        self.txs += later.txs;
        for (k, n) in later.failures {
            self.add_failures(k, n);
        }
        self.minor += later.minor;
        self.struggles += later.struggles;
        self.loss += later.loss;
        self.orders += later.orders;
        if later.cart.is_some() {
            self.cart = later.cart;
        }
        if let Some(v) = later.order {
            *self.order.get_or_insert(0.0) += v;
        }
    }

    /// Counts `n` more noticed failures of kind `k`.
    fn add_failures(&mut self, k: FailureKind, n: u64) {
        count_kind(&mut self.failures, k, n);
    }

    /// What it holds with its key `key`, for the memory budget.
    fn weight(&self, key: &UserKey) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        let key = match key {
            UserKey::Cookie(a, b) | UserKey::Query(a, b) => a.capacity() + b.capacity(),
            UserKey::Header(a) | UserKey::Login(a) | UserKey::Client(_, a) => a.capacity(),
            UserKey::Address(_) => 0,
        };
        // The map's entry (key and value, and the map's room to spare for
        // it), its strings and its failure counts.
        2 * (std::mem::size_of::<UserKey>() + std::mem::size_of::<UserAgg>())
            + key
            + text(&self.user_agent)
            + text(&self.login)
            + self.failures.capacity() * std::mem::size_of::<(FailureKind, u64)>()
    }
}

/// Counts by kind as the records show them: by the kinds' names.
fn kind_names(counts: &[(FailureKind, u64)]) -> BTreeMap<String, u64> {
    counts.iter().map(|(k, n)| (k.as_str().to_string(), *n)).collect()
}

/// Counts `n` more of kind `k` in `counts` (by kind, in kind order).
fn count_kind(counts: &mut Vec<(FailureKind, u64)>, k: FailureKind, n: u64) {
    match counts.binary_search_by_key(&k, |(k, _)| *k) {
        Ok(i) => counts[i].1 += n,
        Err(i) => counts.insert(i, (k, n)),
    }
}

/// Users' totals written to disk when more than a cap are held: runs
/// sorted by user key, merged at the end. Removed when dropped.
struct UserSpill {
    dir: PathBuf,
    runs: Vec<PathBuf>,
}

impl UserSpill {
    /// Writes `users` (sorted here by key) as the next run.
    fn write(&mut self, mut users: Vec<(UserKey, UserAgg)>) -> io::Result<()> {
        users.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let path = self.dir.join(format!(".pov-users-{}-{}", std::process::id(), self.runs.len()));
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let mut w = io::BufWriter::new(std::fs::File::create(&path).map_err(named)?);
        self.runs.push(path.clone());
        for u in &users {
            serde_json::to_writer(&mut w, u).map_err(|e| named(io::Error::other(e)))?;
            w.write_all(b"\n").map_err(named)?;
        }
        w.flush().map_err(named)
    }

    /// Every user's totals, merged across the runs, in key order.
    fn merge(&self, mut each: impl FnMut(UserKey, UserAgg) -> io::Result<()>) -> io::Result<()> {
        let mut runs = Vec::new();
        for p in &self.runs {
            let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
            runs.push((p, io::BufReader::new(std::fs::File::open(p).map_err(named)?).lines()));
        }
        let mut next = |i: usize| -> io::Result<Option<(UserKey, UserAgg)>> {
            let Some((p, lines)) = runs.get_mut(i) else { return Ok(None) };
            let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
            match lines.next() {
                None => Ok(None),
                Some(l) => serde_json::from_str(&l.map_err(named)?).map(Some).map_err(|e| named(io::Error::other(e))),
            }
        };
        // The head of each run; the smallest key next, and for a key in
        // several runs, the earlier run's first (sessions close in run order).
        let mut heads: Vec<Option<(UserKey, UserAgg)>> = Vec::new();
        for i in 0..self.runs.len() {
            heads.push(next(i)?);
        }
        let mut heap: BinaryHeap<Reverse<(UserKey, usize)>> =
            heads.iter().enumerate().filter_map(|(i, h)| h.as_ref().map(|u| Reverse((u.0.clone(), i)))).collect();
        while let Some(Reverse((key, i))) = heap.pop() {
            let Some((_, mut user)) = heads.get_mut(i).and_then(Option::take) else { continue };
            if let Some(n) = next(i)? {
                heap.push(Reverse((n.0.clone(), i)));
                heads[i] = Some(n);
            }
            while let Some(Reverse((k, j))) = heap.peek().cloned() {
                if k != key {
                    break;
                }
                heap.pop();
                if let Some((_, later)) = heads.get_mut(j).and_then(Option::take) {
                    user.absorb(later);
                }
                if let Some(n) = next(j)? {
                    heap.push(Reverse((n.0.clone(), j)));
                    heads[j] = Some(n);
                }
            }
            each(key, user)?;
        }
        Ok(())
    }
}

impl Drop for UserSpill {
    fn drop(&mut self) {
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Users whose totals are held in memory before they are spilled
/// (`--max-users-held`).
pub const MAX_USERS_HELD: usize = 100_000;

/// Transactions kept per session by default
/// (`--max-session-transactions`); beyond, they are counted and left out.
pub const MAX_SESSION_TXS: usize = 100_000;

/// Where the user stage writes (any subset).
pub struct Outputs<W: Write> {
    /// `users` records (written at the end, by first activity).
    pub users: Option<RecordWriter<W, UserRecord>>,
    /// `sessions` records (as sessions close).
    pub sessions: Option<RecordWriter<W, SessionRecord>>,
    /// `pages` records.
    pub pages: Option<RecordWriter<W, PageRecord>>,
    /// `failures` records.
    pub failures: Option<RecordWriter<W, FailureRecord>>,
}

impl<W: Write> Outputs<W> {
    /// One output of `view` in `format`.
    pub fn one(view: View, out: W, format: Format) -> io::Result<Outputs<W>> {
        let mut o = Outputs { users: None, sessions: None, pages: None, failures: None };
        match view {
            View::Users => o.users = Some(RecordWriter::new(out, format)?),
            View::Sessions => o.sessions = Some(RecordWriter::new(out, format)?),
            View::Pages => o.pages = Some(RecordWriter::new(out, format)?),
            View::Failures => o.failures = Some(RecordWriter::new(out, format)?),
        }
        Ok(o)
    }
}

impl<W: Write> Outputs<W> {
    /// Finishes every writer (Parquet footers, JSON closing brackets).
    pub fn finish(self) -> io::Result<()> {
        if let Some(w) = self.users {
            w.finish()?;
        }
        if let Some(w) = self.sessions {
            w.finish()?;
        }
        if let Some(w) = self.pages {
            w.finish()?;
        }
        if let Some(w) = self.failures {
            w.finish()?;
        }
        Ok(())
    }
}

/// Which records a command prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// One per user.
    Users,
    /// One per session.
    Sessions,
    /// One per page view.
    Pages,
    /// One per failure.
    Failures,
}

/// Robots and load generators the `[robots]` rules found: kept out of
/// users, affected users and revenue unless `--include-robots`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RobotsReport {
    /// Whether they are also counted among users (`--include-robots`).
    pub included: bool,
    /// Identities (user keys) with a robot's session.
    pub users: u64,
    /// Robots' sessions.
    pub sessions: u64,
    /// Their page views.
    pub pages: u64,
    /// Their requests.
    pub requests: u64,
    /// Failures on them a person would have noticed.
    pub failures: u64,
    /// Sessions by the rule that decided.
    pub by_rule: BTreeMap<String, u64>,
    /// By client (address and User-Agent), most requests first (at most
    /// [`ROBOT_CLIENTS_SHOWN`]).
    pub clients: Vec<RobotClient>,
}

/// One robot: a client address and User-Agent, with the evidence.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RobotClient {
    /// Client address.
    pub client_ip: Option<String>,
    /// User-Agent (masked like other text).
    pub user_agent: Option<String>,
    /// The rule of its first session judged.
    pub rule: String,
    /// What that session showed.
    pub evidence: String,
    /// Identities (user keys) it used.
    pub users: u64,
    /// Sessions.
    pub sessions: u64,
    /// Requests.
    pub requests: u64,
    /// Failures a person would have noticed.
    pub failures: u64,
}

/// A robot client: its address and (masked) User-Agent.
type RobotId = (Option<String>, Option<String>);

/// Robot clients listed in [`RobotsReport::clients`].
pub const ROBOT_CLIENTS_SHOWN: usize = 50;

/// Robot clients tracked one by one (beyond, only the totals count).
const ROBOT_CLIENTS_HELD: usize = 10_000;

/// Counters of the user stage, for `pov info` and warnings.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct UserStageReport {
    /// Sessionizer counters.
    pub sessions: SessionStats,
    /// Users.
    pub users: u64,
    /// Users with at least one noticed failure.
    pub users_affected: u64,
    /// Noticed failures by kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Transactions with capture loss.
    pub capture_loss: u64,
    /// Of those, transactions whose outcome the loss made unknowable.
    pub unknown: u64,
    /// Requests that died unanswered and that the browser sent again at
    /// once on another connection, answered there: not failures.
    pub silent_retries: u64,
    /// Users' totals written to disk to hold at most `--max-users-held` in
    /// memory (a user seen again after its totals went is counted again).
    pub users_spilled: u64,
    /// Sorted runs of users' totals written to disk.
    pub user_spill_runs: u64,
    /// Robots and load generators.
    pub robots: RobotsReport,
    /// The names of the users written with a noticed failure, most
    /// failures first, then by name: at most [`pov_impact::TOP_USERS`],
    /// the impact stage's `top_affected_users` as it will read them from
    /// the users' records (so that the replays need not wait for it).
    #[serde(skip)]
    pub top_affected: Vec<String>,
}

/// The user stage: takes transactions and connection summaries (a
/// [`Downstream`]), and writes sessions, pages, failures and users.
pub struct UserStage<W: Write> {
    cfg: PovConfig,
    sessionizer: Sessionizer,
    /// Makes the sessions' transactions, and classifies sessions.
    txs: Arc<SessionTxs>,
    users: HashMap<UserKey, UserAgg>,
    /// What `users` holds of the memory budget.
    users_charge: pov_capture::budget::Charge,
    /// Most users held before their totals are spilled.
    max_users_held: usize,
    spill: UserSpill,
    out: Outputs<W>,
    report: UserStageReport,
    tap: Option<SessionTap>,
    /// Hashes of the robots' user keys (counted once each).
    robot_keys: std::collections::HashSet<u64>,
    /// Robots by (address, User-Agent), with their user keys' hashes.
    robot_clients: HashMap<RobotId, (RobotClient, std::collections::HashSet<u64>)>,
    /// The most affected users written so far (failures, name), most
    /// first ([`UserStageReport::top_affected`]).
    top: Vec<(u64, String)>,
    /// Makes the closed sessions' records (shared with rayon's threads);
    /// holds the masking, routes and naming settings the stage writes
    /// with.
    rows: Arc<RowMaker>,
}

/// A closed session, classified, with its records (see [`RowMaker`]).
type Done = (Session, Classified, Option<SessionRows>);

/// Sees every closed session with its labels, the user's name and the
/// session's id as the outputs show them (for `pov replay`).
pub type SessionTap = Box<dyn FnMut(&Session, &Classified, &str, &str)>;

impl<W: Write> UserStage<W> {
    /// A stage with `cfg`; `mask` false shows raw keys and values.
    pub fn new(cfg: &PovConfig, mask: bool, out: Outputs<W>) -> Result<UserStage<W>, String> {
        UserStage::with_limits(cfg, mask, out, MAX_SESSION_TXS)
    }

    /// As [`UserStage::new`], keeping at most `max_session_txs`
    /// transactions per session.
    pub fn with_limits(
        cfg: &PovConfig,
        mask: bool,
        out: Outputs<W>,
        max_session_txs: usize,
    ) -> Result<UserStage<W>, String> {
        let mut scfg = cfg.sessionizer();
        scfg.max_session_txs = max_session_txs;
        let mut sessionizer = Sessionizer::new(&scfg)?;
        sessionizer.set_spill_dir(&std::env::temp_dir());
        let rows = Arc::new(RowMaker::new(cfg, mask, &out)?);
        Ok(UserStage {
            sessionizer,
            txs: Arc::new(SessionTxs::new(cfg)?),
            cfg: cfg.clone(),
            users: HashMap::new(),
            users_charge: pov_capture::budget::Charge::none(),
            max_users_held: MAX_USERS_HELD,
            spill: UserSpill { dir: std::env::temp_dir(), runs: Vec::new() },
            out,
            report: UserStageReport::default(),
            tap: None,
            robot_keys: std::collections::HashSet::new(),
            robot_clients: HashMap::new(),
            top: Vec::new(),
            rows,
        })
    }

    /// Charges open sessions and users to the run's memory budget.
    pub fn set_budget(&mut self, budget: &pov_capture::Budget) {
        self.sessionizer.set_budget(budget);
        self.users_charge.move_to(budget, pov_capture::Holder::Sessions);
    }

    /// Holds at most `max` users' totals in memory; beyond, they are
    /// written to files in `dir` (sorted runs, merged at the end, removed
    /// with the stage) and the users come out in order of their key rather
    /// than of their first activity.
    pub fn set_user_spill(&mut self, dir: &Path, max: usize) {
        self.spill.dir = dir.to_path_buf();
        self.max_users_held = max.max(1);
        // Open sessions' transactions the budget has no room for wait
        // there too, and what the sessionizer remembers of users seen
        // beyond as many entries per map.
        self.sessionizer.set_spill_dir(dir);
        self.sessionizer.set_max_remembered(self.max_users_held);
    }

    /// Caps what identifies users outside the memory budget: requests
    /// waiting for a cookie, what attributes failed attempts per address,
    /// the connections whose user is remembered (see
    /// [`pov_sessions::IdentityCaps`]).
    pub fn set_identity_caps(&mut self, caps: pov_sessions::IdentityCaps) {
        self.sessionizer.set_identity_caps(caps);
    }

    /// Writes every user's totals held to a sorted run on disk.
    fn spill_users(&mut self) -> io::Result<()> {
        let users: Vec<(UserKey, UserAgg)> = self.users.drain().collect();
        self.report.users_spilled += users.len() as u64;
        self.spill.write(users)?;
        self.report.user_spill_runs += 1;
        self.users_charge.set(0);
        Ok(())
    }

    /// What this stage takes of transactions (to share: its patterns are
    /// compiled).
    pub fn session_txs(&self) -> Arc<SessionTxs> {
        Arc::clone(&self.txs)
    }

    /// Builds sessions that close together side by side on rayon's
    /// threads (for a run on more than one thread; see
    /// [`Sessionizer::set_parallel`]). The outputs are the same.
    pub fn set_parallel(&mut self, on: bool) {
        self.sessionizer.set_parallel(on);
    }

    /// Whether [`UserStage::set_parallel`] is on.
    pub fn parallel(&self) -> bool {
        self.sessionizer.parallel()
    }

    /// Keeps robots' sessions among users (`--include-robots`); they are
    /// still counted in [`UserStageReport::robots`].
    pub fn set_include_robots(&mut self, on: bool) {
        Arc::make_mut(&mut self.rows).include_robots = on;
        self.report.robots.included = on;
    }

    /// Counts a robot's session.
    fn note_robot(&mut self, s: &Session, robot: &pov_sessions::Robot, c: &Classified) {
        let failures = c.failures.iter().filter(|f| f.severity.noticed()).count() as u64;
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            s.user.hash(&mut h);
            h.finish()
        };
        let r = &mut self.report.robots;
        if self.robot_keys.insert(key) {
            r.users += 1;
        }
        r.sessions += 1;
        r.pages += s.pages.len() as u64;
        r.requests += s.txs.len() as u64;
        r.failures += failures;
        *r.by_rule.entry(robot.rule.clone()).or_default() += 1;
        let ua = s.user_agent.as_deref().map(|a| self.rows.masker.text(a).into_owned());
        let id = (s.client_ip.map(|i| i.to_string()), ua);
        if !self.robot_clients.contains_key(&id) && self.robot_clients.len() >= ROBOT_CLIENTS_HELD {
            return;
        }
        let (client, keys) = self.robot_clients.entry(id.clone()).or_insert_with(|| {
            let client = RobotClient {
                client_ip: id.0.clone(),
                user_agent: id.1.clone(),
                rule: robot.rule.clone(),
                evidence: self.rows.masker.text(&robot.evidence).into_owned(),
                ..RobotClient::default()
            };
            (client, std::collections::HashSet::new())
        });
        if keys.insert(key) {
            client.users += 1;
        }
        client.sessions += 1;
        client.requests += s.txs.len() as u64;
        client.failures += failures;
    }

    /// Calls `tap` with every session as it closes.
    pub fn set_tap(&mut self, tap: SessionTap) {
        self.tap = Some(tap);
    }

    /// Adds a failed connection attempt (the sessions it closes are
    /// written).
    pub fn failed_connection(&mut self, f: FailedConn) -> io::Result<()> {
        let closed = self.sessionizer.push_failed(f);
        self.handle(closed)
    }

    /// Adds a transaction (the sessions it closes are written).
    pub fn transaction(&mut self, t: &HttpTransaction) -> io::Result<()> {
        let tx = self.txs.tx(t);
        self.session_tx(tx)
    }

    /// Adds a transaction made by [`UserStage::preparer`].
    pub fn session_tx(&mut self, tx: Tx) -> io::Result<()> {
        let split = self.sessionizer.push_split(tx);
        self.handle_split(split)
    }

    /// Moves time on to `now` (see [`Sessionizer::advance`]): sessions
    /// that went quiet by then are written.
    pub fn advance(&mut self, now: pov_capture::Ts) -> io::Result<()> {
        let split = self.sessionizer.advance_split(now);
        self.handle_split(split)
    }

    /// What makes the sessions' view of transactions, on the shards.
    pub fn preparer(&self) -> Arc<SessionTxs> {
        self.txs.clone()
    }

    fn user_name(&self, k: &UserKey) -> String {
        self.rows.user_name(k)
    }

    /// The transactions come from records whose identifiers (session
    /// cookies, identity header, query id, sign-in name) are already
    /// pseudonyms and whose texts are already masked (`pov analyze
    /// --from-transactions`): users are named by those pseudonyms, texts
    /// are not masked twice.
    pub fn set_prehashed(&mut self) {
        let rows = Arc::make_mut(&mut self.rows);
        rows.prehashed = true;
        rows.masker = Masker::off();
    }

    /// Classifies and writes sessions closed together, in order, then lets
    /// them go ([`UserStage::let_go`]).
    fn handle(&mut self, closed: Vec<Session>) -> io::Result<()> {
        if closed.is_empty() {
            return Ok(());
        }
        let done = self.classify(closed);
        self.write_closed(done)
    }

    /// Writes classified sessions, in order, then lets them go.
    fn write_closed(&mut self, mut done: Vec<Done>) -> io::Result<()> {
        for (s, c, rows) in &mut done {
            self.session_closed(s, c, rows.take())?;
            // The budget sees it go now, where it was dropped before it
            // could be freed on another thread.
            s.charge.set(0);
        }
        self.let_go(done);
        Ok(())
    }

    /// Handles what a call of the sessionizer closed: the sessions before
    /// its sweep's, the sweep's (built here), then those after.
    fn handle_split(&mut self, (mut closed, closing): (Vec<Session>, Option<Closing>)) -> io::Result<()> {
        let Some(closing) = closing else { return self.handle(closed) };
        let after = closed.split_off(closing.at().min(closed.len()));
        self.handle(closed)?;
        self.handle_closing(closing)?;
        self.handle(after)
    }

    /// Builds, classifies and writes a sweep's sessions, in parts of about
    /// [`CLOSE_PART_TXS`] transactions, so that what is built at once
    /// (their spilled transactions read back included, which the budget
    /// does not see) is a part's, not a sweep's. On more than one thread
    /// the next part is built and classified on rayon's threads while this
    /// one writes the part before, where building all and then writing all
    /// kept the other cores waiting on this one (a quiet spell ends
    /// thousands of sessions in a few sweeps).
    fn handle_closing(&mut self, mut closing: Closing) -> io::Result<()> {
        let (txs, rows) = (Arc::clone(&self.txs), Arc::clone(&self.rows));
        let make = move |part: ClosingPart| {
            part.build_with(|s| {
                let c = txs.classifier.classify(&s);
                let r = rows.rows(&s, &c);
                (s, c, r)
            })
        };
        if !self.parallel() {
            while !closing.is_empty() {
                let (done, built) = make(closing.next(CLOSE_PART_TXS));
                self.sessionizer.count_built(built);
                self.write_closed(done)?;
            }
            return Ok(());
        }
        let (mut done, built) = make(closing.next(CLOSE_PART_TXS));
        self.sessionizer.count_built(built);
        while !closing.is_empty() {
            let part = closing.next(CLOSE_PART_TXS);
            let mut next = None;
            let mut wrote = Ok(());
            let (make, slot) = (&make, &mut next);
            rayon::in_place_scope(|scope| {
                scope.spawn(move |_| *slot = Some(make(part)));
                wrote = self.write_closed(std::mem::take(&mut done));
            });
            wrote?;
            let Some((made, built)) = next else { break };
            self.sessionizer.count_built(built);
            done = made;
        }
        self.write_closed(done)
    }

    /// Classifies sessions closed together, side by side when the stage
    /// runs on several threads (see [`UserStage::set_parallel`]).
    fn classify(&self, closed: Vec<Session>) -> Vec<Done> {
        let (classifier, rows) = (&self.txs.classifier, &self.rows);
        let classified = |s: Session| {
            let c = classifier.classify(&s);
            let r = rows.rows(&s, &c);
            (s, c, r)
        };
        if self.parallel() && closed.len() > 1 {
            use rayon::iter::{IntoParallelIterator, ParallelIterator};
            closed.into_par_iter().map(classified).collect()
        } else {
            closed.into_iter().map(classified).collect()
        }
    }

    /// Lets written sessions go. On more than one thread their memory is
    /// freed on rayon's while this thread goes on: freeing a long session
    /// (a client's thousands of transactions, each with its text) takes
    /// milliseconds, and when many sessions close at once (the end of the
    /// input, or a quiet spell that ends a crowd's sessions together) the
    /// other cores wait for this one.
    fn let_go(&self, done: Vec<Done>) {
        // A few sessions are freed here: handing them over would wake a
        // thread for less than its waking costs.
        if self.parallel() && done.iter().map(|(s, ..)| s.txs.len()).sum::<usize>() >= LET_GO_TXS {
            rayon::spawn(move || drop(done));
        }
    }

    /// Writes a closed session's records (made by [`RowMaker::rows`]) and
    /// counts it in its user's totals; a robot's is only counted, unless
    /// robots are included.
    fn session_closed(&mut self, s: &Session, c: &Classified, rows: Option<SessionRows>) -> io::Result<()> {
        if let Some(r) = &s.robot {
            self.note_robot(s, r, c);
        }
        let Some(rows) = rows else { return Ok(()) };
        let SessionRows { user, sid, kinds, minor, struggles, failures, pages, session } = rows;
        if let Some(tap) = self.tap.as_mut() {
            tap(s, c, &user, &sid);
        }
        self.report.capture_loss += c.capture_loss;
        self.report.silent_retries += c.silent_retries;
        self.report.unknown += c.unknown;
        for (k, n) in &kinds {
            *self.report.failures_by_kind.entry(k.as_str().to_string()).or_default() += n;
        }
        if let Some(w) = self.out.failures.as_mut() {
            for r in &failures {
                w.write(r)?;
            }
        }
        if let Some(w) = self.out.pages.as_mut() {
            for r in &pages {
                w.write(r)?;
            }
        }
        if let (Some(w), Some(r)) = (self.out.sessions.as_mut(), &session) {
            w.write(r)?;
        }
        if !self.users.contains_key(&s.user) && self.users.len() >= self.max_users_held {
            self.spill_users()?;
        }
        let before = self.users.get(&s.user).map_or(0, |a| a.weight(&s.user));
        let agg = self.users.entry(s.user.clone()).or_insert_with(|| UserAgg {
            first: s.start,
            last: s.end,
            client_ip: s.client_ip,
            user_agent: s.user_agent.clone(),
            login: None,
            sessions: 0,
            pages: 0,
            txs: 0,
            failures: Vec::new(),
            minor: 0,
            struggles: 0,
            loss: 0,
            orders: 0,
            cart: None,
            order: None,
        });
        agg.first = agg.first.min(s.start);
        agg.last = agg.last.max(s.end);
        if agg.user_agent.is_none() {
            agg.user_agent = s.user_agent.clone();
        }
        if agg.login.is_none() {
            agg.login = s.login.clone();
        }
        agg.sessions += 1;
        agg.pages += s.pages.len() as u64;
        agg.txs += s.txs.len() as u64;
        for (k, n) in kinds {
            agg.add_failures(k, n);
        }
        agg.minor += minor;
        agg.struggles += struggles;
        agg.loss += c.capture_loss;
        agg.orders += u64::from(s.orders);
        if s.cart_value.is_some() {
            agg.cart = s.cart_value;
        }
        if let Some(v) = s.order_value {
            *agg.order.get_or_insert(0.0) += v;
        }
        let after = agg.weight(&s.user);
        self.users_charge.grow(after.saturating_sub(before));
        Ok(())
    }

    /// Closes every session, writes the users, and returns the outputs and
    /// counters.
    pub fn finish(mut self) -> io::Result<(Outputs<W>, UserStageReport)> {
        // A few at a time: the sessions still open are built as they go
        // out; up to FINISH_CHUNK sessions, and until they hold
        // FINISH_TXS transactions (what the spill held of them read back).
        loop {
            let (mut closed, mut held) = (Vec::new(), 0usize);
            while closed.len() < pov_sessions::FINISH_CHUNK && held < pov_sessions::FINISH_TXS {
                let Some(s) = self.sessionizer.finish_next() else { break };
                held += s.txs.len();
                closed.push(s);
            }
            if closed.is_empty() {
                break;
            }
            self.handle(closed)?;
        }
        self.write_users()?;
        Ok((self.out, self.report))
    }

    /// Ends one interval of a continuous run (`pov live --analyze`):
    /// writes the totals of the users whose sessions closed since the last
    /// cut into the current outputs, and returns those outputs with the
    /// interval's counters (the sessionizer's are since the start); `next`
    /// takes what comes after. Open sessions stay open: a session is
    /// written in the interval in which it closes.
    pub fn cut(&mut self, next: Outputs<W>) -> io::Result<(Outputs<W>, UserStageReport)> {
        self.write_users()?;
        let included = self.report.robots.included;
        let report = std::mem::take(&mut self.report);
        self.report.robots.included = included;
        self.robot_keys.clear();
        self.users_charge.set(0);
        Arc::make_mut(&mut self.rows).writes(&next);
        Ok((std::mem::replace(&mut self.out, next), report))
    }

    /// Writes the users held (and spilled) and the robots' clients, and
    /// forgets them.
    fn write_users(&mut self) -> io::Result<()> {
        self.report.sessions = self.sessionizer.stats();
        let mut clients: Vec<RobotClient> = self.robot_clients.drain().map(|(_, (c, _))| c).collect();
        clients.sort_by(|a, b| {
            (Reverse(a.requests), &a.client_ip, &a.user_agent).cmp(&(Reverse(b.requests), &b.client_ip, &b.user_agent))
        });
        clients.truncate(ROBOT_CLIENTS_SHOWN);
        self.report.robots.clients = clients;
        if self.spill.runs.is_empty() {
            let mut users: Vec<(UserKey, UserAgg)> = self.users.drain().collect();
            users.sort_by(|(ka, a), (kb, b)| (a.first, ka).cmp(&(b.first, kb)));
            for (k, u) in &users {
                self.write_user(k, u)?;
            }
        } else {
            // Too many users for memory: the rest join the runs on disk,
            // and the runs are merged (in key order).
            self.spill_users()?;
            let dir = self.spill.dir.clone();
            let spill = std::mem::replace(&mut self.spill, UserSpill { dir, runs: Vec::new() });
            spill.merge(|k, u| self.write_user(&k, &u))?;
        }
        self.report.top_affected = std::mem::take(&mut self.top).into_iter().map(|(_, u)| u).collect();
        Ok(())
    }

    /// Counts `user` among the most affected if it is one.
    fn note_top(&mut self, failures: u64, user: &str) {
        if failures == 0 {
            return;
        }
        let at = self.top.partition_point(|x| (Reverse(x.0), x.1.as_str()) < (Reverse(failures), user));
        if at < pov_impact::TOP_USERS {
            self.top.insert(at, (failures, user.to_string()));
            self.top.truncate(pov_impact::TOP_USERS);
        }
    }

    /// Counts a user and writes its record.
    fn write_user(&mut self, key: &UserKey, u: &UserAgg) -> io::Result<()> {
        self.report.users += 1;
        if !u.failures.is_empty() {
            self.report.users_affected += 1;
        }
        let user = self.user_name(key);
        self.note_top(u.failures.iter().map(|(_, n)| n).sum(), &user);
        if let Some(w) = self.out.users.as_mut() {
            let login = u.login.as_ref().map(|l| {
                if self.rows.mask && !self.rows.prehashed {
                    UserKey::Login(l.clone()).hashed(&self.cfg.privacy.hash_salt)
                } else {
                    l.clone()
                }
            });
            w.write(&UserRecord {
                user,
                id_rule: key.rule().into(),
                first_ts: secs(u.first),
                last_ts: secs(u.last),
                client_ip: u.client_ip.map(|i| i.to_string()),
                user_agent: u.user_agent.as_deref().map(|a| self.rows.masker.text(a).into_owned()),
                login,
                sessions: u.sessions,
                pages: u.pages,
                transactions: u.txs,
                failures_total: u.failures.iter().map(|(_, n)| n).sum(),
                affected: !u.failures.is_empty(),
                failures: kind_names(&u.failures),
                minor_failures: u.minor,
                struggles: u.struggles,
                capture_loss: u.loss,
                converted: u.orders > 0,
                orders: u.orders,
                cart_value: u.cart,
                order_value: u.order.map(round2),
            })?;
        }
        Ok(())
    }
}

/// What the user stage takes of a transaction: its [`Tx`], with the
/// error page found in its body (what the stage classifies needs nothing
/// else, so bodies go no further than the shards).
pub struct SessionTxs {
    classifier: Classifier,
    proxies: Vec<pov_sessions::config::Cidr>,
    users: pov_sessions::config::UsersConfig,
    revenue: pov_sessions::config::RevenueConfig,
    /// The `[revenue]` rules compiled once (its pattern is a regular
    /// expression).
    rx: pov_sessions::values::Extractor,
}

impl SessionTxs {
    /// What a user stage with `cfg` takes of transactions.
    pub fn new(cfg: &PovConfig) -> Result<SessionTxs, String> {
        Ok(SessionTxs {
            classifier: Classifier::new(&cfg.failures)?,
            proxies: Sessionizer::proxies(&cfg.users)?,
            users: cfg.users.clone(),
            revenue: cfg.revenue.clone(),
            rx: pov_sessions::values::Extractor::new(&cfg.revenue),
        })
    }

    /// The sessions' view of `t`.
    pub fn tx(&self, t: &HttpTransaction) -> Tx {
        let mut tx = Tx::from_http(t, &self.users, &self.proxies, &self.revenue, &self.rx);
        tx.error_page = self.classifier.error_page(t, tx.class);
        tx
    }
}

impl Prepare for Arc<SessionTxs> {
    type Item = Tx;
    fn prepare(&self, t: Box<HttpTransaction>) -> Tx {
        self.tx(&t)
    }
    fn held_bytes(t: &Tx) -> usize {
        t.heap_bytes()
    }
}

impl<W: Write> Downstream for UserStage<W> {
    type Item = Tx;
    type Prep = Arc<SessionTxs>;
    fn preparer(&self) -> Arc<SessionTxs> {
        UserStage::preparer(self)
    }
    fn on_transaction(&mut self, tx: Tx) -> Flow {
        self.session_tx(tx)?;
        GO_ON
    }

    fn on_summary(&mut self, s: &ConnSummary) -> Flow {
        if let Some(f) = FailedConn::from_summary(s) {
            self.failed_connection(f)?;
        }
        GO_ON
    }
}

/// Transactions in sessions written together from which they are freed
/// on rayon's threads ([`UserStage::let_go`]).
const LET_GO_TXS: usize = 1024;

/// Makes a closed session's records from what the user stage shares (its
/// settings, masker and routes, which outputs it writes), on any thread:
/// sessions that close together get theirs side by side, and the thread
/// that writes them in order only appends them.
#[derive(Clone)]
struct RowMaker {
    salt: String,
    funnel: Vec<String>,
    masker: Masker,
    routes: Routes,
    /// Identifiers are pseudonyms already ([`UserStage::set_prehashed`]).
    prehashed: bool,
    /// Keys are shown as pseudonyms.
    mask: bool,
    /// Robots' sessions are written as users' too.
    include_robots: bool,
    /// Which records are written.
    failures: bool,
    pages: bool,
    sessions: bool,
}

/// A closed session's records, and what its user's totals take of it.
struct SessionRows {
    user: String,
    sid: String,
    /// Noticed failures by kind.
    kinds: Vec<(FailureKind, u64)>,
    minor: u64,
    struggles: u64,
    failures: Vec<FailureRecord>,
    pages: Vec<PageRecord>,
    session: Option<SessionRecord>,
}

impl RowMaker {
    /// With `cfg`'s settings, for what `out` writes; `mask` false shows
    /// raw keys and values.
    fn new<W: Write>(cfg: &PovConfig, mask: bool, out: &Outputs<W>) -> Result<RowMaker, String> {
        let mut rows = RowMaker {
            salt: cfg.privacy.hash_salt.clone(),
            funnel: cfg.revenue.funnel.clone(),
            masker: Masker::new(&cfg.privacy, mask),
            routes: Routes::new(&cfg.routes)?,
            prehashed: false,
            mask: mask && cfg.privacy.mask,
            include_robots: false,
            failures: false,
            pages: false,
            sessions: false,
        };
        rows.writes(out);
        Ok(rows)
    }

    /// Makes the records `out` writes, and no others.
    fn writes<W: Write>(&mut self, out: &Outputs<W>) {
        (self.failures, self.pages, self.sessions) =
            (out.failures.is_some(), out.pages.is_some(), out.sessions.is_some());
    }

    /// A user as the outputs name it.
    fn user_name(&self, k: &UserKey) -> String {
        if self.prehashed {
            // Transactions read back from records: their identifiers are
            // already the pseudonyms the packet stage made of the keys
            // (crate::from_tx), only address keys are hashed here.
            if let UserKey::Cookie(_, v) | UserKey::Header(v) | UserKey::Query(_, v) | UserKey::Login(v) = k {
                return v.clone();
            }
            return k.hashed(&self.salt);
        }
        if self.mask { k.hashed(&self.salt) } else { k.raw() }
    }

    /// The records of `s`, classified `c`; `None` for a robot's session
    /// when robots are only counted.
    fn rows(&self, s: &Session, c: &Classified) -> Option<SessionRows> {
        if s.robot.is_some() && !self.include_robots {
            return None;
        }
        let user = self.user_name(&s.user);
        let sid = format!("{user}/{}", s.index);
        let mut kinds: Vec<(FailureKind, u64)> = Vec::new();
        let (mut minor, mut struggles) = (0u64, 0u64);
        for f in &c.failures {
            match f.severity {
                Severity::Info => struggles += 1,
                Severity::Minor => minor += 1,
                _ => count_kind(&mut kinds, f.kind, 1),
            }
        }
        let m = &self.masker;
        let text = |s: &Option<String>| s.as_deref().map(|s| m.text(s).into_owned());
        let routes = &self.routes;
        let mut failures = Vec::new();
        if self.failures {
            for f in &c.failures {
                let url = m.url(&f.url);
                failures.push(FailureRecord {
                    ts: secs(f.ts),
                    user: user.clone(),
                    session: sid.clone(),
                    page: f.page,
                    kind: f.kind.as_str().into(),
                    rule: f.rule.clone(),
                    severity: f.severity.as_str().into(),
                    uid: pov_capture::text::conn_uid(f.conn),
                    client: f.client.map(|a| a.to_string()),
                    server: f.server.map(|a| a.to_string()),
                    trans_depth: f.depth,
                    first_frame: f.frames.map(|x| x.first),
                    last_frame: f.frames.map(|x| x.last),
                    host: text(&f.host),
                    page_name: f
                        .page
                        .and_then(|i| s.pages.get((i as usize).checked_sub(1)?))
                        .and_then(|p| p.name.clone()),
                    route: routes.route(&url),
                    url,
                    status: f.status,
                    detail: m.text(&f.detail).into_owned(),
                });
            }
        }
        let mut pages = Vec::new();
        if self.pages {
            let by_page = c.by_page();
            for (pi, p) in s.pages.iter().enumerate() {
                let kinds: Vec<String> =
                    by_page.get(&p.index).into_iter().flatten().map(|f| f.kind.as_str().to_string()).collect();
                let url = m.url(&p.url);
                pages.push(PageRecord {
                    page: format!("{sid}/{}", p.index),
                    session: sid.clone(),
                    user: user.clone(),
                    ts: secs(p.start),
                    host: text(&p.host),
                    route: routes.route(&url),
                    url,
                    name: p.name.clone(),
                    step: p.step.clone(),
                    status: p.status,
                    redirects: p.documents.len().saturating_sub(1) as u64,
                    requests: p.txs.len() as u64,
                    load_ms: round2(p.load.as_millis_f64()),
                    server_ms: round2(p.server.as_millis_f64()),
                    network_ms: round2(p.network.as_millis_f64()),
                    apdex: c.apdex.get(pi).map(|a| a.as_str()).unwrap_or("satisfied").into(),
                    failures: kinds,
                });
            }
        }
        let session = self.sessions.then(|| self.session_record(s, c, &user, &sid, &kinds, minor, struggles));
        Some(SessionRows { user, sid, kinds, minor, struggles, failures, pages, session })
    }

    /// The session record of `s`, classified `c`, of `user`, with `kinds`
    /// of noticed failures.
    #[allow(clippy::too_many_arguments)]
    fn session_record(
        &self,
        s: &Session,
        c: &Classified,
        user: &str,
        sid: &str,
        kinds: &[(FailureKind, u64)],
        minor: u64,
        struggles: u64,
    ) -> SessionRecord {
        let (m, routes) = (&self.masker, &self.routes);
        let mut steps: Vec<String> = Vec::new();
        for p in &s.pages {
            if let Some(st) = &p.step
                && !steps.contains(st)
            {
                steps.push(st.clone());
            }
        }
        let apdex = if c.apdex.is_empty() {
            None
        } else {
            let score: f64 = c
                .apdex
                .iter()
                .map(|a| match a {
                    pov_classify::Apdex::Satisfied => 1.0,
                    pov_classify::Apdex::Tolerating => 0.5,
                    pov_classify::Apdex::Frustrated => 0.0,
                })
                .sum();
            Some(round2(score / c.apdex.len() as f64))
        };
        let exit_failure = s
            .pages
            .last()
            .and_then(|p| c.failures.iter().find(|f| f.page == Some(p.index) && f.severity.noticed()).map(|f| f.kind));
        SessionRecord {
            session: sid.to_string(),
            user: user.to_string(),
            index: s.index,
            start: secs(s.start),
            end: secs(s.end),
            duration_s: round2((s.end - s.start).as_secs_f64()),
            client_ip: s.client_ip.map(|i| i.to_string()),
            user_agent: s.user_agent.as_deref().map(|a| m.text(a).into_owned()),
            pages: s.pages.len() as u64,
            transactions: s.txs.len() as u64,
            transactions_left_out: s.dropped_txs,
            last_step: s.pages.iter().rev().find_map(|p| p.step.clone()),
            funnel_step: self.funnel.iter().rev().find(|f| steps.iter().any(|s| s == *f)).cloned(),
            exit_step: s.pages.last().and_then(|p| p.step.clone()),
            left_after_failure: exit_failure.is_some(),
            exit_failure: exit_failure.map(|k| k.as_str().to_string()),
            exit_route: s.pages.last().map(|p| routes.route(&m.url(&p.url))),
            exit_url: s.pages.last().map(|p| m.url(&p.url)),
            steps,
            failures: kind_names(kinds),
            minor_failures: minor,
            struggles,
            capture_loss: c.capture_loss,
            affected: !kinds.is_empty(),
            apdex,
            converted: s.converted,
            orders: u64::from(s.orders),
            cart_value: s.cart_value,
            order_value: s.order_value,
        }
    }
}

/// Transactions in a part of a sweep's sessions built while the part
/// before is written ([`UserStage::handle_closing`]).
const CLOSE_PART_TXS: usize = 2048;

/// Every noticed failure kind name, for documentation and tests.
pub fn failure_kinds() -> Vec<&'static str> {
    FailureKind::ALL.iter().map(|k| k.as_str()).collect()
}
