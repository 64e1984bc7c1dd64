//! The generator: users arrive, browse, buy or give up; every request goes
//! over simulated TCP connections; frames are written in capture-time order
//! and the truth is written as it becomes final.
//!
//! Streaming: users are simulated one after another in order of arrival.
//! Every frame of a user is at or after its arrival, so frames older than
//! the next user's arrival can be written out; memory holds only the frames
//! of users whose visits overlap (proportional to the arrival rate, not to
//! the number of users).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::SharedAddresses;
use crate::config::SynthConfig;
use crate::http::{self, Encoding, Framing, Request, Response};
use crate::key::{BasketItem, ConnTruth, FailureKind, Outcome, PageTruth, Reaction, Step, Totals, TxTruth, UserTruth};
use crate::rng::Rng;
use crate::site::{PageRef, ResourceKind, Site, money};
use crate::tcp::{Endpoint, MS, PathLoss, TcpConn, US, frame};
use crate::writer::CaptureWriter;

/// How the shop's API says a call failed under a 200: the top-level field
/// that says it, and the body. (`{"error": ...}` is the `error_page`
/// fault's API answer.)
const SOFT_ERRORS: [(&str, &str); 6] = [
    ("status", r#"{"status":"error","message":"The service could not complete the request"}"#),
    ("status", r#"{"status":"fail","data":{"reason":"temporarily unavailable"}}"#),
    ("result", r#"{"result":"error","code":"E_BACKEND","retry":true}"#),
    ("success", r#"{"success":false,"message":"Could not load the data, please try again"}"#),
    ("ok", r#"{"ok":false,"description":"backend timeout"}"#),
    ("errors", r#"{"data":null,"errors":[{"message":"Internal server error","path":["cart"]}]}"#),
];

/// The shop's server.
const SERVER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const SERVER_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x10, 0x00, 0x01];
/// All client traffic reaches the server through the gateway.
const GATEWAY_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x01, 0x00, 0xfe];
/// Server closes a keep-alive connection idle this long.
const KEEPALIVE: i64 = 15_000 * MS;
/// A client gives up waiting for a response after this long.
const CLIENT_TIMEOUT: i64 = 30_000 * MS;

/// A browser (or other client) profile.
struct Agent {
    ua: &'static str,
    max_conns: usize,
    accept_encoding: Option<&'static str>,
}

const AGENTS: &[Agent] = &[
    Agent {
        ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
        max_conns: 6,
        accept_encoding: Some("gzip, deflate, br"),
    },
    Agent {
        ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
        max_conns: 6,
        accept_encoding: Some("gzip, deflate, br"),
    },
    Agent {
        ua: "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
        max_conns: 6,
        accept_encoding: Some("gzip, deflate, br"),
    },
    Agent {
        ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        max_conns: 4,
        accept_encoding: Some("gzip, deflate"),
    },
    Agent {
        ua: "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0 Mobile Safari/537.36",
        max_conns: 4,
        accept_encoding: Some("gzip, deflate"),
    },
];
/// A search-engine crawler (the robots of [`crate::config::RobotTraffic`]).
const CRAWLER_AGENT: Agent = Agent {
    ua: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    max_conns: 1,
    accept_encoding: Some("gzip, deflate, br"),
};
/// A load generator that passes for a browser.
const LOAD_AGENT: Agent = Agent {
    ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
    max_conns: 2,
    accept_encoding: Some("gzip, deflate, br"),
};
const HTTP10_AGENT: Agent = Agent { ua: "Wget/1.21.4", max_conns: 1, accept_encoding: None };
const PIPELINE_AGENT: Agent =
    Agent { ua: "ShopKiosk/2.3 (embedded; pipelining)", max_conns: 2, accept_encoding: Some("gzip") };

/// A frame waiting to be written, ordered by capture time then creation.
struct Pending {
    ts: i64,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Pending) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Pending) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Pending) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

/// Shared state across users.
struct World<'a, W: Write> {
    cfg: &'a SynthConfig,
    site: Site,
    out: CaptureWriter<W>,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    totals: Totals,
    next_port: HashMap<IpAddr, u16>,
    nat_pool: Vec<IpAddr>,
    next_client: u32,
    orders: u64,
    /// A soft error is still owed to the run (`guarantee_faults`): the
    /// first API call answered without another fault gets it.
    soft_error_owed: bool,
    /// The shared addresses (`cfg.shared`), when each last had a first
    /// visit without an analytics cookie, and their own random stream.
    shared_pool: Vec<(IpAddr, Option<i64>)>,
    shared_rng: Rng,
}

impl<W: Write> World<'_, W> {
    fn push_frames(&mut self, frames: Vec<(i64, Vec<u8>)>) {
        for (ts, frame) in frames {
            self.seq += 1;
            self.heap.push(Reverse(Pending { ts, seq: self.seq, frame }));
        }
    }

    /// Writes every frame captured before `watermark`.
    fn flush_before(&mut self, watermark: i64) -> io::Result<()> {
        while let Some(Reverse(p)) = self.heap.peek() {
            if p.ts >= watermark {
                break;
            }
            if let Some(Reverse(p)) = self.heap.pop() {
                self.out.write(p.ts, &p.frame)?;
            }
        }
        Ok(())
    }

    fn client_port(&mut self, ip: IpAddr, rng: &mut Rng) -> u16 {
        let p = self.next_port.entry(ip).or_insert_with(|| 32768 + rng.below(20000) as u16);
        *p = if *p >= 60999 { 32768 } else { *p + 1 + rng.below(3) as u16 };
        *p
    }

    /// A shared address for a customer arriving at `arrival`, and the
    /// analytics cookie its browser sends (if any): see
    /// [`SharedAddresses::bare_spacing_secs`].
    fn shared_choice(&mut self, sh: &SharedAddresses, arrival: i64) -> (IpAddr, Option<String>) {
        let r = &mut self.shared_rng;
        let n = self.shared_pool.len().max(1);
        let mut at = r.below(n as u64) as usize;
        let mut analytics = r.chance(sh.analytics_share);
        let spacing = (sh.bare_spacing_secs.max(0.0) * 1e9) as i64;
        let free = |last: Option<i64>| last.is_none_or(|t| arrival - t >= spacing);
        if !analytics && !self.shared_pool.get(at).is_some_and(|(_, last)| free(*last)) {
            // Another address no bare first visit used lately, else an
            // analytics cookie after all.
            match self.shared_pool.iter().position(|(_, last)| free(*last)) {
                Some(i) => at = i,
                None => analytics = true,
            }
        }
        let ga = analytics.then(|| {
            let first = arrival / 1_000_000_000 - r.range(86_400, 400 * 86_400) as i64;
            format!("GA1.1.{}.{first}", r.range(1_000_000_000, 9_999_999_999))
        });
        let Some((ip, last)) = self.shared_pool.get_mut(at) else {
            return (IpAddr::V4(Ipv4Addr::new(100, 64, 0, 2)), ga);
        };
        if ga.is_none() {
            *last = Some(arrival);
        }
        (*ip, ga)
    }

    fn new_client_ip(&mut self, v6: bool) -> IpAddr {
        self.next_client += 1;
        let n = self.next_client;
        if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, (n >> 16) as u16, n as u16))
        } else {
            // 198.18.0.0/15 (benchmarking range): 131072 addresses.
            let n = n % 131_000 + 2;
            IpAddr::V4(Ipv4Addr::new(198, 18 + (n >> 16) as u8, (n >> 8) as u8, n as u8))
        }
    }
}

/// Generates the capture into `capture` and the answer key into `key`.
/// Returns the totals (also written at the end of the key).
pub fn generate<W: Write, K: Write>(cfg: &SynthConfig, capture: W, mut key: K) -> io::Result<Totals> {
    let mut master = Rng::new(cfg.seed);
    let mut site_rng = master.fork(1);
    let site = Site::new(&mut site_rng, &cfg.host, cfg.products, &cfg.error_text, cfg.body_scale);
    let out = CaptureWriter::new(capture, cfg.format)?;
    let mut world = World {
        cfg,
        site,
        out,
        heap: BinaryHeap::new(),
        seq: 0,
        totals: Totals::default(),
        next_port: HashMap::new(),
        nat_pool: Vec::new(),
        next_client: 0,
        orders: 0,
        soft_error_owed: cfg.guarantee_faults && cfg.faults.soft_error > 0.0,
        shared_pool: Vec::new(),
        shared_rng: Rng::new(cfg.seed ^ 0x5AED_AD05_5AED_AD05),
    };
    if let Some(sh) = &cfg.shared {
        for i in 0..sh.addresses.clamp(1, 250) {
            world.shared_pool.push((IpAddr::V4(Ipv4Addr::new(100, 64, 0, i as u8 + 2)), None));
        }
    }
    // NAT addresses: each shared by about four users.
    let nat_n = ((cfg.users as f64 * cfg.nat_share / 4.0).ceil() as usize).max(1);
    for i in 0..nat_n {
        world.nat_pool.push(IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 250 + 2) as u8)));
    }
    // Robots first (their frames wait in the heap for the customers'),
    // each from a random stream of its own; written to the key after the
    // customers.
    let mut robots = Vec::new();
    let r = &cfg.robots;
    let kinds =
        (0..r.crawlers).map(|i| (RobotKind::Crawler, i)).chain((0..r.load_generators).map(|i| (RobotKind::Load, i)));
    for (n, (kind, i)) in kinds.enumerate() {
        let rng = Rng::new(cfg.seed ^ 0x0B07_0B07_0000_0000 ^ n as u64);
        let start = cfg.start_ns + (20 + 40 * n as i64) * 1000 * MS;
        let user = UserSim::robot(&mut world, rng, n as u64, i, kind, start).run_robot(&mut world, kind);
        robots.push(user);
    }

    write!(
        key,
        "{{\"schema\":\"pov-synth-truth/1\",\"generator\":\"pov-synth {}\",\"config\":",
        env!("CARGO_PKG_VERSION")
    )?;
    serde_json::to_writer(&mut key, cfg)?;
    write!(key, ",\"users\":[")?;

    let mut arrival = cfg.start_ns;
    let mut user_rng = master.fork(2);
    for i in 0..cfg.users {
        if i > 0 {
            arrival += (user_rng.exp(1.0 / cfg.arrival_rate.max(1e-6)) * 1e9) as i64;
        }
        world.flush_before(arrival)?;
        let rng = user_rng.fork(i);
        let forced = if cfg.guarantee_faults { FailureKind::ALL.get(i as usize).copied() } else { None };
        // (A soft error needs an API call, which not every user makes: it
        // is owed to the run instead, see `World::soft_error_owed`.)
        let forced = forced.filter(|k| rate_of(cfg, *k) > 0.0 && *k != FailureKind::SoftError);
        let user = UserSim::new(&mut world, rng, i, arrival, forced).run(&mut world);
        tally(&mut world.totals, &user);
        if i > 0 {
            write!(key, ",")?;
        }
        writeln!(key)?;
        serde_json::to_writer(&mut key, &user)?;
    }
    for (j, user) in robots.into_iter().enumerate() {
        tally(&mut world.totals, &user);
        if cfg.users > 0 || j > 0 {
            write!(key, ",")?;
        }
        writeln!(key)?;
        serde_json::to_writer(&mut key, &user)?;
    }
    world.flush_before(i64::MAX)?;
    world.totals.packets = world.out.frames();
    world.totals.capture_bytes = world.out.bytes();
    world.out.finish()?;
    write!(key, "\n],\"totals\":")?;
    serde_json::to_writer_pretty(&mut key, &world.totals)?;
    writeln!(key, "}}")?;
    key.flush()?;
    Ok(world.totals)
}

fn rate_of(cfg: &SynthConfig, k: FailureKind) -> f64 {
    let f = &cfg.faults;
    match k {
        FailureKind::ServerError => f.server_error,
        FailureKind::NotFound => f.not_found,
        FailureKind::ErrorPage => f.error_page,
        FailureKind::Slow => f.slow,
        FailureKind::ServerReset => f.server_reset,
        FailureKind::Truncated => f.truncated,
        FailureKind::NoResponse => f.no_response,
        FailureKind::ClientAbort => f.client_abort,
        FailureKind::Refused => f.refused,
        FailureKind::Unanswered => f.unanswered,
        FailureKind::SoftError => f.soft_error,
    }
}

fn tally(t: &mut Totals, u: &UserTruth) {
    let robot = u.robot.is_some();
    if robot {
        t.robots += 1;
    } else {
        t.users += 1;
        t.users_affected += u64::from(u.affected);
        t.sessions += u64::from(u.sessions);
        t.page_views += u.pages.len() as u64;
        for (k, n) in &u.failures {
            *t.failures_by_kind.entry(*k).or_default() += u64::from(*n);
        }
    }
    t.connections += u.connections.len() as u64;
    for c in &u.connections {
        t.transactions += c.transactions.len() as u64;
        t.gap_bytes += c.c2s.gap_bytes + c.s2c.gap_bytes;
        t.missing_bytes += c.c2s.missing_bytes + c.s2c.missing_bytes;
        for tx in &c.transactions {
            if let Some(f) = tx.fault {
                *t.faults_by_kind.entry(f).or_default() += 1;
            }
            t.transactions_with_capture_loss += u64::from(tx.missing_bytes > 0);
        }
        if c.kind == "refused" {
            *t.faults_by_kind.entry(FailureKind::Refused).or_default() += 1;
        }
        if c.kind == "unanswered" {
            *t.faults_by_kind.entry(FailureKind::Unanswered).or_default() += 1;
        }
    }
    if robot {
        return;
    }
    t.gave_up += u64::from(u.gave_up);
    if u.converted {
        t.orders += 1;
        t.revenue_realised_cents += u.order_cents;
    }
    t.revenue_lost_cents += u.lost_cents;
}

/// One request to make.
#[derive(Clone, Debug)]
struct ReqSpec {
    method: &'static str,
    uri: String,
    kind: ResourceKind,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    referer: Option<String>,
    /// What the server answers when there is no fault.
    answer: Answer,
    /// A fault forced on this request.
    forced: Option<FailureKind>,
    /// Follows a redirect: sent to the Location as given (a broken link
    /// fault answers 404 there rather than renaming it).
    redirect_target: bool,
}

/// What the server answers to a request, absent faults.
#[derive(Clone, Debug)]
enum Answer {
    Page(PageRef),
    Asset(String),
    /// 304 for a cached asset.
    NotModified(String),
    Json(String),
    Redirect(u16, String),
}

/// What became of one request, for the page view.
#[derive(Clone, Debug)]
struct TxResult {
    status: Option<u16>,
    /// The failure met (noticed if `important`, else minor).
    failure: Option<FailureKind>,
    /// Whether the user notices a failure of this resource.
    important: bool,
    /// Capture time the client had the whole answer (or gave up).
    done: i64,
    location: Option<String>,
}

impl TxResult {
    fn none(t: i64) -> TxResult {
        TxResult { status: None, failure: None, important: true, done: t, location: None }
    }

    fn failed(kind: FailureKind, done: i64) -> TxResult {
        TxResult { status: None, failure: Some(kind), important: true, done, location: None }
    }
}

/// An open keep-alive connection of the user.
struct Lane {
    conn: TcpConn,
    truth: ConnTruth,
    /// The client may send on it from this capture time.
    free_at: i64,
    /// Last activity (for the server's keep-alive timeout).
    idle_since: i64,
    served: u32,
    /// Unfinished transactions waiting for their missing-bytes count.
    http10: bool,
}

/// The robots the generator makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RobotKind {
    Crawler,
    Load,
}

struct UserSim {
    /// The persistent analytics cookie the browser sends (`_ga` value).
    analytics: Option<String>,
    rng: Rng,
    /// Draws soft errors and their bodies, apart from `rng`: the rest of a
    /// user's visit is the same whatever the soft-error rate, until one
    /// happens.
    soft_rng: Rng,
    truth: UserTruth,
    ip: IpAddr,
    agent: &'static Agent,
    http10: bool,
    pipelining: bool,
    rtt: i64,
    cookie: Option<String>,
    cart: Vec<(usize, u32)>,
    cached: HashSet<String>,
    lanes: Vec<Lane>,
    now: i64,
    session: u32,
    forced: Option<FailureKind>,
    finished: Vec<ConnTruth>,
}

impl UserSim {
    fn new<W: Write>(
        world: &mut World<'_, W>,
        mut rng: Rng,
        i: u64,
        arrival: i64,
        forced: Option<FailureKind>,
    ) -> UserSim {
        let cfg = world.cfg;
        let nat = rng.chance(cfg.nat_share);
        let v6 = !nat && rng.chance(cfg.ipv6_share);
        let ip = if nat { *rng.pick(&world.nat_pool) } else { world.new_client_ip(v6) };
        let http10 = rng.chance(cfg.http10_share);
        let pipelining = !http10 && rng.chance(cfg.pipelining_share);
        let agent: &'static Agent = if http10 {
            &HTTP10_AGENT
        } else if pipelining {
            &PIPELINE_AGENT
        } else {
            rng.pick(AGENTS)
        };
        let rtt = ((rng.lognormal(cfg.rtt_ms, 0.6)).clamp(1.0, 400.0) * MS as f64) as i64;
        // Behind a shared address, with one User-Agent (drawn from the
        // world's own stream: `rng` draws as it did).
        let (mut ip, mut agent, mut analytics) = (ip, agent, None);
        if let Some(sh) = &cfg.shared {
            let (a, ga) = world.shared_choice(sh, arrival);
            ip = a;
            agent = &AGENTS[0];
            analytics = ga;
        }
        let nat = nat || cfg.shared.is_some();
        let truth = UserTruth {
            user: format!("u{:06}", i + 1),
            cookie_name: cfg.cookie_name.clone(),
            cookie: None,
            client_ip: ip.to_string(),
            nat_shared: nat,
            user_agent: agent.ua.to_string(),
            analytics_cookie: analytics.clone(),
            robot: None,
            robot_cookies: Vec::new(),
            http10,
            pipelining,
            username: None,
            arrival: secs(arrival),
            sessions: 1,
            intends_to_buy: false,
            intended_order_cents: 0,
            intended_basket: Vec::new(),
            cart_cents: 0,
            converted: false,
            order_cents: 0,
            order_id: None,
            gave_up: false,
            gave_up_at: None,
            lost_cents: 0,
            failures: BTreeMap::new(),
            minor_failures: 0,
            affected: false,
            pages: Vec::new(),
            connections: Vec::new(),
        };
        // Derived from the user's generator without drawing from it.
        let soft_rng = rng.clone().fork(0x50F7_E440);
        UserSim {
            analytics,
            rng,
            soft_rng,
            truth,
            ip,
            agent,
            http10,
            pipelining,
            rtt,
            cookie: None,
            cart: Vec::new(),
            cached: HashSet::new(),
            lanes: Vec::new(),
            now: arrival,
            session: 1,
            forced,
            finished: Vec::new(),
        }
    }

    /// A robot: `n`-th of the run, `i`-th of its kind, starting at `start`.
    fn robot<W: Write>(world: &mut World<'_, W>, rng: Rng, n: u64, i: u32, kind: RobotKind, start: i64) -> UserSim {
        let mut sim = UserSim::new(world, rng, n, start, None);
        let (ip, agent, name) = match kind {
            RobotKind::Crawler => (Ipv4Addr::new(198, 51, 100, 100 + i as u8 % 100), &CRAWLER_AGENT, "crawler"),
            RobotKind::Load => (Ipv4Addr::new(198, 51, 100, 10 + i as u8 % 80), &LOAD_AGENT, "load_generator"),
        };
        sim.ip = IpAddr::V4(ip);
        sim.agent = agent;
        sim.http10 = false;
        sim.pipelining = false;
        sim.analytics = None;
        sim.truth.user = format!("r{:04}", n + 1);
        sim.truth.client_ip = sim.ip.to_string();
        sim.truth.nat_shared = false;
        sim.truth.user_agent = agent.ua.to_string();
        sim.truth.analytics_cookie = None;
        sim.truth.http10 = false;
        sim.truth.pipelining = false;
        sim.truth.robot = Some(name);
        sim
    }

    /// A robot's whole run: pages only, none of their assets. A crawler
    /// keeps no cookie and walks the catalog a few seconds a page; a load
    /// generator takes a new session cookie (and new connections) every
    /// few pages, a few hundred milliseconds a page.
    fn run_robot<W: Write>(mut self, world: &mut World<'_, W>, kind: RobotKind) -> UserTruth {
        let cfg = world.cfg;
        let n_cat = world.site.categories.len();
        let n_products = world.site.products.len();
        let pick = |me: &mut UserSim, world: &World<'_, W>| -> (Step, PageRef, String) {
            if me.rng.chance(0.3) {
                let c = me.rng.below(n_cat as u64) as usize;
                (Step::Category, PageRef::Category(c), world.site.category_url(c))
            } else {
                let p = me.rng.below(n_products as u64) as usize;
                (Step::Product, PageRef::Product(p), world.site.product_url(p))
            }
        };
        match kind {
            RobotKind::Crawler => {
                let pages = self.rng.range(40, 80);
                for j in 0..pages {
                    let (step, page, url) =
                        if j == 0 { (Step::Home, PageRef::Home, "/".to_string()) } else { pick(&mut self, world) };
                    self.robot_page(world, step, page, url);
                    // (It keeps no cookie.)
                    self.cookie = None;
                    self.now += (self.rng.range(1500, 6000) as i64) * MS;
                }
            }
            RobotKind::Load => {
                for _ in 0..cfg.robots.load_identities.max(1) {
                    self.cookie = None;
                    self.close_all(world, self.now);
                    let pages = self.rng.range(3, 8);
                    for j in 0..pages {
                        let (step, page, url) =
                            if j == 0 { (Step::Home, PageRef::Home, "/".to_string()) } else { pick(&mut self, world) };
                        self.robot_page(world, step, page, url);
                        self.now += (self.rng.range(150, 400) as i64) * MS;
                    }
                    self.now += (self.rng.range(300, 1500) as i64) * MS;
                }
            }
        }
        self.close_all(world, self.now + KEEPALIVE);
        self.truth.affected = !self.truth.failures.is_empty();
        self.finished.sort_by(|a, b| a.start.total_cmp(&b.start));
        self.truth.connections = std::mem::take(&mut self.finished);
        self.truth
    }

    /// One page of a robot: the document alone (no assets, no retries).
    fn robot_page<W: Write>(&mut self, world: &mut World<'_, W>, step: Step, page: PageRef, url: String) {
        let start = self.now;
        self.truth.pages.push(PageTruth::start(1, secs(start), url.clone(), step, false));
        let page_idx = (self.truth.pages.len() - 1) as u32;
        let doc = ReqSpec {
            method: "GET",
            uri: url,
            kind: ResourceKind::Document,
            body: Vec::new(),
            content_type: None,
            referer: None,
            answer: Answer::Page(page),
            forced: None,
            redirect_target: false,
        };
        let r = self.fetch(world, vec![doc], page_idx, start, true).pop().unwrap_or_else(|| TxResult::none(start));
        if let Some(f) = r.failure {
            self.note_failure(f, true);
        }
        if let Some(p) = self.truth.pages.last_mut() {
            p.load_ms = (r.done - start) as f64 / 1e6;
        }
        self.now = r.done.max(self.now);
    }

    /// Simulates the whole visit (or two) and returns the truth.
    fn run<W: Write>(mut self, world: &mut World<'_, W>) -> UserTruth {
        let cfg = world.cfg;
        let n_products = world.site.products.len();
        let buyer = self.rng.chance(cfg.buyer_share);
        self.truth.intends_to_buy = buyer;
        let login = self.rng.chance(cfg.login_share);
        // The plan: what a buyer will put in the cart.
        let mut plan: Vec<(usize, u32)> = Vec::new();
        if buyer {
            let n = self.rng.range(1, 3) as usize;
            while plan.len() < n {
                let p = self.rng.below(n_products as u64) as usize;
                if !plan.iter().any(|(q, _)| *q == p) {
                    plan.push((p, self.rng.range(1, 2) as u32));
                }
            }
            self.truth.intended_order_cents =
                plan.iter().map(|(p, q)| world.site.products[*p].price_cents * u64::from(*q)).sum();
            self.truth.intended_basket = intended_basket(&world.site, &plan);
        }

        let gave_up = self.visit(world, buyer, login, &plan);
        if !gave_up && self.rng.chance(cfg.returning_share) {
            // Come back after a long break: a new session, browsing only.
            self.close_all(world, self.now + KEEPALIVE);
            self.now += (self.rng.range(35, 90) as i64) * 60_000 * MS;
            self.session = 2;
            self.truth.sessions = 2;
            let n = self.rng.range(1, 3);
            let mut referer = None;
            for _ in 0..n {
                let p = self.rng.below(n_products as u64) as usize;
                let url = world.site.product_url(p);
                let (ok, _) = self.page(world, Step::Product, PageRef::Product(p), url.clone(), referer.clone());
                if !ok {
                    break;
                }
                referer = Some(full_url(&world.site.host, &url));
                self.think(cfg);
            }
        }
        let end = self.now + KEEPALIVE;
        self.close_all(world, end);
        self.truth.cart_cents =
            self.cart.iter().map(|(p, q)| world.site.products[*p].price_cents * u64::from(*q)).sum();
        self.truth.affected = !self.truth.failures.is_empty();
        self.finished.sort_by(|a, b| a.start.total_cmp(&b.start));
        self.truth.connections = std::mem::take(&mut self.finished);
        self.truth
    }

    fn think(&mut self, _cfg: &SynthConfig) {
        let s = self.rng.lognormal(8.0, 0.7).clamp(1.0, 90.0);
        self.now += (s * 1e9) as i64;
    }

    /// The first session. Returns true if the user gave up.
    fn visit<W: Write>(&mut self, world: &mut World<'_, W>, buyer: bool, login: bool, plan: &[(usize, u32)]) -> bool {
        let cfg = world.cfg;
        let n_cat = world.site.categories.len();
        let n_products = world.site.products.len();
        let host = world.site.host.clone();
        let mut referer: Option<String> = None;

        // Landing: the home page, or a product from a search engine.
        let (ok, _) = if buyer || self.rng.chance(0.6) {
            self.page(world, Step::Home, PageRef::Home, "/".into(), None)
        } else {
            let p = self.rng.below(n_products as u64) as usize;
            let url = world.site.product_url(p);
            self.page(world, Step::Product, PageRef::Product(p), url, Some("https://www.search.example/".into()))
        };
        if !ok {
            return true;
        }
        let last_url = self.truth.pages.last().map(|p| p.url.clone()).unwrap_or_default();
        referer = Some(full_url(&host, &last_url)).or(referer);

        if !buyer {
            // Browse a few pages, perhaps put something in the cart, leave.
            let depth = self.rng.range(1, 5);
            for _ in 0..depth {
                self.think(cfg);
                let (step, page, url) = if self.rng.chance(0.35) {
                    let c = self.rng.below(n_cat as u64) as usize;
                    (Step::Category, PageRef::Category(c), world.site.category_url(c))
                } else {
                    let p = self.rng.below(n_products as u64) as usize;
                    // Some links use the short form, answered with a 301.
                    let url =
                        if self.rng.chance(0.1) { world.site.product_short_url(p) } else { world.site.product_url(p) };
                    (Step::Product, PageRef::Product(p), url)
                };
                let (ok, _) = self.page(world, step, page, url.clone(), referer.clone());
                if !ok {
                    return true;
                }
                referer = self.truth.pages.last().map(|p| full_url(&host, &p.url));
            }
            if self.rng.chance(0.3) {
                let p = self.rng.below(n_products as u64) as usize;
                self.think(cfg);
                if !self.add_to_cart(world, p, 1, referer.clone()) {
                    return true;
                }
                self.think(cfg);
                let cart = self.cart.clone();
                let (ok, _) = self.page(world, Step::Cart, PageRef::Cart(cart), "/cart".into(), referer.clone());
                if !ok {
                    return true;
                }
            }
            return false;
        }

        // A buyer: category, products (each added to the cart), cart,
        // sign-in, checkout, order, confirmation.
        let first = plan.first().map(|(p, _)| *p).unwrap_or(0);
        let cat = world.site.products[first].category;
        self.think(cfg);
        let (ok, _) =
            self.page(world, Step::Category, PageRef::Category(cat), world.site.category_url(cat), referer.clone());
        if !ok {
            return true;
        }
        referer = Some(full_url(&host, &world.site.category_url(cat)));
        let extra = self.rng.below(3);
        for _ in 0..extra {
            self.think(cfg);
            let p = self.rng.below(n_products as u64) as usize;
            let url = world.site.product_url(p);
            let (ok, _) = self.page(world, Step::Product, PageRef::Product(p), url, referer.clone());
            if !ok {
                return true;
            }
        }
        for (p, q) in plan {
            self.think(cfg);
            let url = world.site.product_url(*p);
            let (ok, _) = self.page(world, Step::Product, PageRef::Product(*p), url.clone(), referer.clone());
            if !ok {
                return true;
            }
            self.think(cfg);
            // From the page the user is on (a broken link's, if it was one).
            let on = self.truth.pages.last().map(|pg| pg.url.clone()).unwrap_or(url);
            if !self.add_to_cart(world, *p, *q, Some(full_url(&host, &on))) {
                return true;
            }
        }
        self.think(cfg);
        let cart = self.cart.clone();
        let (ok, _) = self.page(world, Step::Cart, PageRef::Cart(cart), "/cart".into(), referer.clone());
        if !ok {
            return true;
        }
        if login {
            self.think(cfg);
            let (ok, _) =
                self.page(world, Step::Login, PageRef::Login, "/login".into(), Some(full_url(&host, "/cart")));
            if !ok {
                return true;
            }
            self.think(cfg);
            if !self.sign_in(world) {
                return true;
            }
        }
        self.think(cfg);
        let cart = self.cart.clone();
        let (ok, _) = self.page(
            world,
            Step::Checkout,
            PageRef::Checkout(cart),
            "/checkout".into(),
            Some(full_url(&host, "/cart")),
        );
        if !ok {
            return true;
        }
        self.think(cfg);
        !self.submit_order(world)
    }

    /// Records a failure the user noticed on the current page view.
    fn note_failure(&mut self, kind: FailureKind, important: bool) {
        if important {
            *self.truth.failures.entry(kind).or_default() += 1;
            if let Some(p) = self.truth.pages.last_mut() {
                p.failures.push(kind);
            }
        } else {
            self.truth.minor_failures += 1;
            if let Some(p) = self.truth.pages.last_mut() {
                p.minor_failures += 1;
            }
        }
    }

    /// Decides what the user does after a noticed failure at `step`, given
    /// how many times this step was already retried.
    fn react(&mut self, cfg: &SynthConfig, tries: u32) -> Reaction {
        let r = &cfg.reactions;
        let mut w = [r.retry, r.carry_on, r.give_up];
        if tries >= 2 {
            w[0] = 0.0;
        }
        match self.rng.weighted(&w) {
            0 => Reaction::Retry,
            1 => Reaction::CarryOn,
            _ => Reaction::GiveUp,
        }
    }

    /// A page view, with retries after failures. Returns (go on, final
    /// status of the document).
    fn page<W: Write>(
        &mut self,
        world: &mut World<'_, W>,
        step: Step,
        page: PageRef,
        url: String,
        referer: Option<String>,
    ) -> (bool, Option<u16>) {
        let cfg = world.cfg;
        let mut tries = 0;
        loop {
            let (failed, status) = self.page_once(world, step, &page, &url, referer.clone(), tries > 0);
            if !failed {
                return (true, status);
            }
            let reaction = self.react(cfg, tries);
            if let Some(p) = self.truth.pages.last_mut() {
                p.reaction = Some(reaction);
            }
            match reaction {
                Reaction::Retry => {
                    tries += 1;
                    self.now += (self.rng.range(2, 6) as i64) * 1000 * MS;
                }
                Reaction::CarryOn => return (true, status),
                Reaction::GiveUp => {
                    self.give_up(step);
                    return (false, status);
                }
            }
        }
    }

    fn give_up(&mut self, step: Step) {
        self.truth.gave_up = true;
        self.truth.gave_up_at = Some(step);
        if self.truth.intends_to_buy && !self.truth.converted {
            self.truth.lost_cents = self.truth.intended_order_cents;
        }
    }

    /// One attempt at a page view: the document, then its resources.
    /// Returns (a noticed failure happened, document status).
    fn page_once<W: Write>(
        &mut self,
        world: &mut World<'_, W>,
        step: Step,
        page: &PageRef,
        url: &str,
        referer: Option<String>,
        retry: bool,
    ) -> (bool, Option<u16>) {
        let start = self.now;
        self.truth.pages.push(PageTruth::start(self.session, secs(start), url.to_string(), step, retry));
        let page_idx = (self.truth.pages.len() - 1) as u32;
        // A fault forced on this user goes on its first document (the
        // connection faults are forced where the connection opens).
        let forced = match self.forced {
            Some(FailureKind::Refused | FailureKind::Unanswered) | None => None,
            Some(_) => self.forced.take(),
        };
        let is_redirect = url.starts_with("/p/");
        let answer = if is_redirect {
            let canonical = match page {
                PageRef::Product(i) => world.site.product_url(*i),
                _ => "/".into(),
            };
            Answer::Redirect(301, canonical)
        } else {
            Answer::Page(page.clone())
        };
        let doc = ReqSpec {
            method: "GET",
            uri: url.to_string(),
            kind: ResourceKind::Document,
            body: Vec::new(),
            content_type: None,
            referer: referer.clone(),
            answer,
            forced,
            redirect_target: false,
        };
        let mut results = self.fetch(world, vec![doc], page_idx, start, true);
        let mut r = results.pop().unwrap_or_else(|| TxResult::none(start));
        if let (Some(301), Some(loc)) = (r.status, r.location.clone()) {
            // A slow redirect was waited for too: noticed, before the
            // follow-up request replaces the result.
            if let Some(f) = r.failure {
                self.note_failure(f, true);
            }
            if let Some(p) = self.truth.pages.last_mut() {
                p.url = loc.clone();
            }
            let follow = ReqSpec {
                method: "GET",
                uri: loc,
                kind: ResourceKind::Document,
                body: Vec::new(),
                content_type: None,
                referer,
                answer: Answer::Page(page.clone()),
                forced: None,
                redirect_target: true,
            };
            let t = r.done + 2 * MS;
            let mut rs = self.fetch(world, vec![follow], page_idx, t, true);
            r = rs.pop().unwrap_or(r);
        }
        // A slow page is a failure the user notices, but they got the page:
        // no reaction follows.
        let mut failed = false;
        if let Some(f) = r.failure {
            failed = f != FailureKind::Slow;
            self.note_failure(f, true);
        }
        let mut end = r.done;
        let doc_ok = matches!(r.status, Some(200)) && r.failure.is_none();
        if doc_ok || matches!(r.failure, Some(FailureKind::Slow)) {
            // Resources: common assets not yet cached (cached ones are
            // revalidated now and then), page images, and APIs.
            let page_url = full_url(&world.site.host, self.truth.pages.last().map(|p| p.url.as_str()).unwrap_or("/"));
            let mut reqs = Vec::new();
            let mut assets: Vec<String> = world.site.common_assets.clone();
            assets.extend(world.site.page_images(page));
            for a in assets {
                let kind = world.site.assets.get(&a).map(|x| x.kind).unwrap_or(ResourceKind::Image);
                let answer = if self.cached.contains(&a) {
                    if !self.rng.chance(0.15) {
                        continue;
                    }
                    Answer::NotModified(a.clone())
                } else {
                    Answer::Asset(a.clone())
                };
                reqs.push(ReqSpec {
                    method: "GET",
                    uri: a,
                    kind,
                    body: Vec::new(),
                    content_type: None,
                    referer: Some(page_url.clone()),
                    answer,
                    forced: None,
                    redirect_target: false,
                });
            }
            if let PageRef::Product(i) = page {
                let id = world.site.products[*i].id;
                reqs.push(ReqSpec {
                    method: "GET",
                    uri: format!("/api/recommendations?product={id}"),
                    kind: ResourceKind::Api,
                    body: Vec::new(),
                    content_type: None,
                    referer: Some(page_url.clone()),
                    answer: Answer::Json(recommendations(&world.site, *i)),
                    forced: None,
                    redirect_target: false,
                });
            }
            if matches!(page, PageRef::Cart(_) | PageRef::Checkout(_)) {
                reqs.push(ReqSpec {
                    method: "GET",
                    uri: "/api/cart".into(),
                    kind: ResourceKind::Api,
                    body: Vec::new(),
                    content_type: None,
                    referer: Some(page_url.clone()),
                    answer: Answer::Json(cart_json(&world.site, &self.cart)),
                    forced: None,
                    redirect_target: false,
                });
            }
            let t = r.done + 8 * MS;
            let results = self.fetch(world, reqs, page_idx, t, false);
            for res in results {
                end = end.max(res.done);
                if let Some(f) = res.failure {
                    if res.important && f != FailureKind::Slow {
                        failed = true;
                    }
                    self.note_failure(f, res.important);
                }
            }
        }
        if let Some(p) = self.truth.pages.last_mut() {
            p.load_ms = (end - start) as f64 / 1e6;
        }
        self.now = end.max(self.now);
        (failed, r.status)
    }

    /// A POST to add to the cart (from the product page).
    fn add_to_cart<W: Write>(&mut self, world: &mut World<'_, W>, p: usize, q: u32, referer: Option<String>) -> bool {
        let id = world.site.products[p].id;
        let mut cart = self.cart.clone();
        match cart.iter_mut().find(|(x, _)| *x == p) {
            Some(e) => e.1 += q,
            None => cart.push((p, q)),
        }
        let spec = ReqSpec {
            method: "POST",
            uri: "/cart/add".into(),
            kind: ResourceKind::Post,
            body: format!("product={id}&qty={q}").into_bytes(),
            content_type: Some("application/x-www-form-urlencoded"),
            referer,
            answer: Answer::Json(cart_json(&world.site, &cart)),
            forced: None,
            redirect_target: false,
        };
        let ok = self.action(world, Step::Product, spec);
        if ok {
            self.cart = cart;
        }
        ok
    }

    /// Signs in (POST /login with a password, 302 to /checkout).
    fn sign_in<W: Write>(&mut self, world: &mut World<'_, W>) -> bool {
        let name = format!("shopper{}", self.rng.range(1000, 99999));
        let pw = format!("S3cret!{}", self.rng.hex(6));
        let spec = ReqSpec {
            method: "POST",
            uri: "/login".into(),
            kind: ResourceKind::Post,
            body: format!("username={name}&password={pw}").into_bytes(),
            content_type: Some("application/x-www-form-urlencoded"),
            referer: Some(full_url(&world.site.host, "/login")),
            answer: Answer::Redirect(302, "/checkout".into()),
            forced: None,
            redirect_target: false,
        };
        let ok = self.action(world, Step::Login, spec);
        if ok {
            self.truth.username = Some(name);
        }
        ok
    }

    /// Places the order: POST /checkout/submit, 302, confirmation page.
    fn submit_order<W: Write>(&mut self, world: &mut World<'_, W>) -> bool {
        let total: u64 = self.cart.iter().map(|(p, q)| world.site.products[*p].price_cents * u64::from(*q)).sum();
        world.orders += 1;
        let order = format!("ORD-{:07}", world.orders + 1_000_000 * (world.cfg.seed % 10));
        let card = "4111111111111111";
        let spec = ReqSpec {
            method: "POST",
            uri: "/checkout/submit".into(),
            kind: ResourceKind::Post,
            body: format!(
                "total={}&card_number={card}&cvv={}&items={}",
                money(total),
                self.rng.range(100, 999),
                self.cart.len()
            )
            .into_bytes(),
            content_type: Some("application/x-www-form-urlencoded"),
            referer: Some(full_url(&world.site.host, "/checkout")),
            answer: Answer::Redirect(302, format!("/order/confirm?order={order}")),
            forced: None,
            redirect_target: false,
        };
        // The page view the POST belongs to is the checkout's; the
        // submission is its own funnel step.
        self.truth.pages.push(PageTruth::start(
            self.session,
            secs(self.now),
            "/checkout/submit".into(),
            Step::OrderSubmit,
            false,
        ));
        let mut tries = 0;
        loop {
            let idx = (self.truth.pages.len() - 1) as u32;
            let start = self.now;
            let mut rs = self.fetch(world, vec![spec.clone()], idx, start, true);
            let r = rs.pop().unwrap_or_else(|| TxResult::none(start));
            self.now = self.now.max(r.done);
            if let Some(p) = self.truth.pages.last_mut() {
                p.load_ms = (r.done - start) as f64 / 1e6;
            }
            // A slow answer is noticed, but the order went through.
            let slow = r.failure == Some(FailureKind::Slow);
            if (r.failure.is_none() || slow) && r.status == Some(302) {
                if slow {
                    self.note_failure(FailureKind::Slow, true);
                }
                self.truth.converted = true;
                self.truth.order_cents = total;
                self.truth.order_id = Some(order.clone());
                self.cart.clear();
                let loc = r.location.unwrap_or_else(|| format!("/order/confirm?order={order}"));
                self.now += 5 * MS;
                let _ = self.page(
                    world,
                    Step::Confirmation,
                    PageRef::Confirm { order: order.clone(), total_cents: total },
                    loc,
                    Some(full_url(&world.site.host, "/checkout")),
                );
                return true;
            }
            if let Some(f) = r.failure {
                self.note_failure(f, true);
            }
            // Carrying on is not possible past a failed order: retry or leave.
            let mut reaction = self.react(world.cfg, tries);
            if reaction == Reaction::CarryOn {
                reaction = if tries < 2 { Reaction::Retry } else { Reaction::GiveUp };
            }
            if let Some(p) = self.truth.pages.last_mut() {
                p.reaction = Some(reaction);
            }
            if reaction == Reaction::GiveUp {
                self.give_up(Step::OrderSubmit);
                return false;
            }
            tries += 1;
            self.now += (self.rng.range(3, 8) as i64) * 1000 * MS;
            self.truth.pages.push(PageTruth::start(
                self.session,
                secs(self.now),
                "/checkout/submit".into(),
                Step::OrderSubmit,
                true,
            ));
        }
    }

    /// A state-changing request of its own (cart, login) with the usual
    /// reactions; counted on the current page view.
    fn action<W: Write>(&mut self, world: &mut World<'_, W>, step: Step, spec: ReqSpec) -> bool {
        let mut tries = 0;
        loop {
            let idx = (self.truth.pages.len().max(1) - 1) as u32;
            let start = self.now;
            let mut rs = self.fetch(world, vec![spec.clone()], idx, start, true);
            let r = rs.pop().unwrap_or_else(|| TxResult::none(start));
            self.now = self.now.max(r.done);
            let Some(f) = r.failure else { return true };
            self.note_failure(f, true);
            // Slow, but done: the user noticed and goes on.
            if f == FailureKind::Slow {
                return true;
            }
            match self.react(world.cfg, tries) {
                Reaction::Retry => {
                    tries += 1;
                    self.now += (self.rng.range(2, 5) as i64) * 1000 * MS;
                }
                Reaction::CarryOn => return true,
                Reaction::GiveUp => {
                    self.give_up(step);
                    return false;
                }
            }
        }
    }

    /// Closes idle lanes the server has timed out by `t`.
    fn expire_lanes<W: Write>(&mut self, world: &mut World<'_, W>, t: i64) {
        let mut i = 0;
        while i < self.lanes.len() {
            if self.lanes[i].idle_since + KEEPALIVE <= t {
                let lane = self.lanes.remove(i);
                let at = lane.idle_since + KEEPALIVE;
                self.retire(world, lane, Some(at), "fin_by_server");
            } else {
                i += 1;
            }
        }
    }

    /// Closes every lane (the server's keep-alive timeout after `t`).
    fn close_all<W: Write>(&mut self, world: &mut World<'_, W>, t: i64) {
        let lanes = std::mem::take(&mut self.lanes);
        for lane in lanes {
            let at = (lane.idle_since + KEEPALIVE).min(t.max(lane.idle_since + MS));
            self.retire(world, lane, Some(at), "fin_by_server");
        }
    }

    /// Finishes a connection: optional server close at `close_at`, capture
    /// noise, truth, frames into the world's heap.
    fn retire<W: Write>(
        &mut self,
        world: &mut World<'_, W>,
        mut lane: Lane,
        close_at: Option<i64>,
        close: &'static str,
    ) {
        if let Some(t) = close_at {
            let t = t.max(lane.conn.last_ts + US);
            lane.conn.close_by_server(t);
        }
        lane.truth.close = close;
        self.finish_conn(world, lane.conn, lane.truth);
    }

    fn finish_conn<W: Write>(&mut self, world: &mut World<'_, W>, conn: TcpConn, mut truth: ConnTruth) {
        let f = conn.finish(&world.cfg.noise);
        truth.c2s = f.c2s;
        truth.s2c = f.s2c;
        for tx in &mut truth.transactions {
            let [a, b] = tx.c2s_range;
            let [c, d] = tx.s2c_range;
            tx.missing_request_bytes = f.missing_in(0, a, b);
            tx.missing_response_bytes = f.missing_in(1, c, d);
            tx.missing_bytes = tx.missing_request_bytes + tx.missing_response_bytes;
            tx.request_head_lost = b > a && f.missing_in(0, a, a + 1) == 1;
            tx.response_head_lost = d > c && f.missing_in(1, c, c + 1) == 1;
        }
        truth.start = f.pkts.first().map(|p| secs(p.ts)).unwrap_or(truth.start);
        truth.end = f.pkts.last().map(|p| secs(p.ts)).unwrap_or(truth.end);
        let mut ids = f.ends.ip_id;
        let frames: Vec<(i64, Vec<u8>)> = f
            .pkts
            .iter()
            .map(|p| {
                let side = usize::from(!p.from_client);
                ids[side] = ids[side].wrapping_add(1);
                (p.ts, frame(&f.ends, p, ids[side]))
            })
            .filter(|(_, fr)| !fr.is_empty())
            .collect();
        world.push_frames(frames);
        self.finished.push(truth);
    }

    fn new_conn<W: Write>(&mut self, world: &mut World<'_, W>) -> TcpConn {
        let port = world.client_port(self.ip, &mut self.rng);
        let server_ip = if self.ip.is_ipv6() { IpAddr::V6(SERVER_V6) } else { IpAddr::V4(SERVER_V4) };
        let client = Endpoint { mac: GATEWAY_MAC, ip: self.ip, port };
        let server = Endpoint { mac: SERVER_MAC, ip: server_ip, port: 80 };
        let loss = PathLoss { server_loss: world.cfg.server_loss, client_loss: world.cfg.client_loss };
        let rng = self.rng.fork(u64::from(port));
        TcpConn::new(client, server, world.cfg.vlan, self.rtt, loss, rng)
    }

    fn conn_truth(conn: &TcpConn, kind: &'static str) -> ConnTruth {
        ConnTruth {
            client: sock(conn.client.ip, conn.client.port),
            server: sock(conn.server.ip, conn.server.port),
            start: 0.0,
            end: 0.0,
            kind,
            close: "none",
            c2s: Default::default(),
            s2c: Default::default(),
            transactions: Vec::new(),
        }
    }

    /// Opens a lane at `t`, possibly failing (refused / unanswered).
    /// Returns the lane index, or the failure and when the client knew.
    fn open_lane<W: Write>(
        &mut self,
        world: &mut World<'_, W>,
        t: i64,
        may_fail: bool,
    ) -> Result<usize, (FailureKind, i64)> {
        let mut conn = self.new_conn(world);
        let cfg = world.cfg;
        let forced = if may_fail {
            match self.forced {
                Some(k @ (FailureKind::Refused | FailureKind::Unanswered)) => {
                    self.forced = None;
                    Some(k)
                }
                _ => None,
            }
        } else {
            None
        };
        let fail = forced.or_else(|| {
            if !may_fail {
                None
            } else if self.rng.chance(cfg.faults.refused) {
                Some(FailureKind::Refused)
            } else if self.rng.chance(cfg.faults.unanswered) {
                Some(FailureKind::Unanswered)
            } else {
                None
            }
        });
        match fail {
            Some(FailureKind::Refused) => {
                let done = conn.refuse(t);
                let mut truth = Self::conn_truth(&conn, "refused");
                truth.close = "rst_by_server";
                self.finish_conn(world, conn, truth);
                Err((FailureKind::Refused, done))
            }
            Some(_) => {
                let done = conn.unanswered(t, 3);
                let truth = Self::conn_truth(&conn, "unanswered");
                self.finish_conn(world, conn, truth);
                Err((FailureKind::Unanswered, done))
            }
            None => {
                let ready = conn.open(t);
                let truth = Self::conn_truth(&conn, "established");
                self.lanes.push(Lane {
                    conn,
                    truth,
                    free_at: ready,
                    idle_since: ready,
                    served: 0,
                    http10: self.http10,
                });
                Ok(self.lanes.len() - 1)
            }
        }
    }

    /// Fetches `reqs` from time `t` over the user's connections (up to the
    /// agent's limit, in parallel). `document` marks the page's first
    /// request (which may meet connection faults). Results come back in
    /// request order.
    fn fetch<W: Write>(
        &mut self,
        world: &mut World<'_, W>,
        reqs: Vec<ReqSpec>,
        page_idx: u32,
        t: i64,
        document: bool,
    ) -> Vec<TxResult> {
        self.expire_lanes(world, t);
        let n = reqs.len();
        let mut results: Vec<Option<TxResult>> = vec![None; n];
        if let Some(p) = self.truth.pages.get_mut(page_idx as usize) {
            p.requests += n as u32;
        }
        // Assign requests to lanes: the earliest free lane, opening new
        // lanes up to the agent's limit when all are busy.
        let mut queue: Vec<(usize, ReqSpec)> = reqs.into_iter().enumerate().collect();
        queue.reverse();
        while let Some((i, spec)) = queue.pop() {
            // HTTP/1.0: a fresh connection for every request.
            let lane_idx = if self.http10 {
                match self.open_lane(world, t, document) {
                    Ok(l) => l,
                    Err((kind, done)) => {
                        results[i] = Some(TxResult::failed(kind, done));
                        continue;
                    }
                }
            } else {
                let best = self.lanes.iter().enumerate().min_by_key(|(_, l)| l.free_at).map(|(j, l)| (j, l.free_at));
                match best {
                    Some((j, free)) if free <= t || self.lanes.len() >= self.agent.max_conns => j,
                    _ => match self.open_lane(world, t, document && self.lanes.is_empty()) {
                        Ok(l) => l,
                        Err((kind, done)) => {
                            results[i] = Some(TxResult::failed(kind, done));
                            continue;
                        }
                    },
                }
            };
            // Pipelining: take up to two more requests for the same lane.
            let mut batch = vec![(i, spec)];
            if self.pipelining && !document {
                while batch.len() < 3 {
                    match queue.pop() {
                        Some(x) => batch.push(x),
                        None => break,
                    }
                }
            }
            let start = self.lanes[lane_idx].free_at.max(t);
            let out = self.exchange(world, lane_idx, batch, page_idx, start);
            for (j, r) in out {
                results[j] = Some(r);
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| TxResult::none(t))).collect()
    }

    /// Sends `batch` on lane `li` from time `t` (pipelined if more than
    /// one) and simulates the server's answers. May retire the lane.
    fn exchange<W: Write>(
        &mut self,
        world: &mut World<'_, W>,
        li: usize,
        batch: Vec<(usize, ReqSpec)>,
        page_idx: u32,
        t: i64,
    ) -> Vec<(usize, TxResult)> {
        let cfg = world.cfg;
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        // Decide each request's fault and build its bytes.
        struct Planned {
            i: usize,
            spec: ReqSpec,
            fault: Option<FailureKind>,
            /// A soft error's field and body.
            soft: Option<(&'static str, &'static str)>,
            bytes: Vec<u8>,
            uri: String,
            think: i64,
        }
        let mut planned: Vec<Planned> = Vec::new();
        for (i, mut spec) in batch {
            let mut fault = spec.forced.take().or_else(|| self.decide_fault(cfg, spec.kind, &spec.answer));
            let mut soft = None;
            if fault.is_none() && matches!(spec.answer, Answer::Json(_)) {
                let owed = std::mem::take(&mut world.soft_error_owed);
                if owed || self.soft_rng.chance(cfg.faults.soft_error) {
                    fault = Some(FailureKind::SoftError);
                    soft = Some(*self.soft_rng.pick(&SOFT_ERRORS));
                }
            }
            let mut uri = spec.uri.clone();
            if fault == Some(FailureKind::NotFound) && spec.kind == ResourceKind::Document && !spec.redirect_target {
                // A broken link: the page the user is on is its URL.
                uri = format!("{uri}-old");
                if let Some(p) = self.truth.pages.get_mut(page_idx as usize) {
                    p.url = uri.clone();
                }
            }
            let req = self.build_request(&world.site, &spec, &uri, version);
            let think = self.server_think(cfg, spec.kind, fault);
            planned.push(Planned { i, spec, fault, soft, bytes: req.to_bytes(), uri, think });
        }
        // The client sends every request (back to back when pipelined).
        let mut send_t = t;
        let mut req_times: Vec<(i64, i64, [u64; 2])> = Vec::new();
        for p in &planned {
            let lane = &mut self.lanes[li];
            let a = lane.conn.c_next;
            let end = lane.conn.client_send(send_t, &p.bytes, p.think);
            let b = lane.conn.c_next;
            req_times.push((send_t, end, [a, b]));
            send_t = end + 20 * US;
        }
        // The server answers in order.
        let mut out = Vec::new();
        let mut server_free = t;
        let mut dead = false;
        let mut closed_how: Option<&'static str> = None;
        for (k, p) in planned.into_iter().enumerate() {
            let (req_start, req_end, c2s_range) = req_times[k];
            let important = p.spec.kind.important();
            let mut tx = TxTruth {
                index: self.lanes[li].served + 1,
                page: page_idx,
                method: p.spec.method.to_string(),
                host: world.site.host.clone(),
                uri: p.uri.clone(),
                version: version.to_string(),
                referrer: p.spec.referer.clone(),
                kind: p.spec.kind,
                important: p.spec.kind.important(),
                request_body_len: p.spec.body.len() as u64,
                status: None,
                response_body_len: 0,
                wire_body_len: 0,
                content_length: None,
                content_encoding: None,
                framing: None,
                outcome: Outcome::Complete,
                fault: p.fault,
                error_page: false,
                error_field: p.soft.map(|(field, _)| field),
                req_start: secs(req_start),
                req_end: secs(req_end),
                resp_start: None,
                resp_end: None,
                missing_bytes: 0,
                missing_request_bytes: 0,
                missing_response_bytes: 0,
                request_head_lost: false,
                response_head_lost: false,
                c2s_range,
                s2c_range: [0, 0],
            };
            self.lanes[li].served += 1;
            if dead {
                // The connection died under an earlier pipelined request:
                // this one never got an answer, for the same reason.
                tx.outcome = match closed_how {
                    Some("rst_by_server") => Outcome::ServerReset,
                    Some("rst_by_client") => Outcome::ClientAbort,
                    _ => Outcome::NoResponse,
                };
                self.lanes[li].truth.transactions.push(tx);
                out.push((p.i, TxResult { important, ..TxResult::none(server_free) }));
                continue;
            }
            let resp_t = req_end.max(server_free) + p.think;
            match p.fault {
                Some(FailureKind::NoResponse) => {
                    // The client gives up after its timeout and closes.
                    let give_up = req_end + CLIENT_TIMEOUT;
                    self.lanes[li].conn.client_fin_only(give_up);
                    tx.outcome = Outcome::NoResponse;
                    self.lanes[li].truth.transactions.push(tx);
                    out.push((p.i, TxResult { failure: p.fault, important, ..TxResult::none(give_up) }));
                    dead = true;
                    closed_how = Some("fin_by_client");
                    server_free = give_up;
                    continue;
                }
                Some(FailureKind::ClientAbort) => {
                    // The user stops waiting and leaves: the browser resets.
                    let patience = (self.rng.range(4_000, 10_000) as i64) * MS;
                    let at = req_end + patience;
                    self.lanes[li].conn.client_rst(at);
                    tx.outcome = Outcome::ClientAbort;
                    self.lanes[li].truth.transactions.push(tx);
                    out.push((p.i, TxResult { failure: p.fault, important, ..TxResult::none(at) }));
                    dead = true;
                    closed_how = Some("rst_by_client");
                    server_free = at;
                    continue;
                }
                _ => {}
            }
            let (resp, error_page, location) =
                self.build_response(world, &p.spec, p.fault, p.soft.map(|(_, body)| body), version);
            let wire = resp.to_bytes();
            tx.status = Some(resp.status);
            tx.error_page = error_page;
            tx.content_length = wire.content_length.map(|v| v as u64);
            tx.content_encoding =
                if resp.framing == Framing::None { None } else { resp.encoding.header().map(str::to_string) };
            tx.framing = Some(resp.framing);
            let s_a = self.lanes[li].conn.s_next;
            let (stop, outcome) = match p.fault {
                Some(FailureKind::ServerReset) => {
                    let body = wire.bytes.len() - wire.head_len;
                    let keep = wire.head_len + body * self.rng.range(20, 70) as usize / 100;
                    (
                        Some(keep.max(wire.head_len / 2).min(wire.bytes.len().saturating_sub(1)).max(1)),
                        Outcome::ServerReset,
                    )
                }
                Some(FailureKind::Truncated) => {
                    let body = wire.bytes.len() - wire.head_len;
                    let keep = wire.head_len + body * self.rng.range(30, 80) as usize / 100;
                    (Some(keep.min(wire.bytes.len().saturating_sub(1)).max(wire.head_len)), Outcome::Truncated)
                }
                _ => (None, Outcome::Complete),
            };
            let sent = stop.unwrap_or(wire.bytes.len());
            let (last_sent, client_has) = self.lanes[li].conn.server_send(resp_t, &wire.bytes, &wire.writes, stop);
            let s_b = self.lanes[li].conn.s_next;
            tx.s2c_range = [s_a, s_b];
            tx.resp_start = Some(secs(resp_t));
            tx.resp_end = Some(secs(last_sent));
            tx.outcome = outcome;
            // Body bytes that went out, decoded and on the wire.
            let body_sent = sent.saturating_sub(wire.head_len);
            let complete = body_sent >= wire.bytes.len() - wire.head_len;
            let framed = wire.bytes.get(wire.head_len..wire.head_len + body_sent).unwrap_or(&[]);
            tx.wire_body_len = if resp.framing == Framing::Chunked {
                dechunked_len(framed) as u64
            } else {
                body_sent.min(wire.wire_body_len) as u64
            };
            // A body cut short is counted in wire bytes (what decodes from a
            // cut compressed stream depends on the decoder).
            tx.response_body_len = if complete { wire.body_len as u64 } else { tx.wire_body_len };
            let mut done = client_has;
            let failure = p.fault;
            match outcome {
                Outcome::ServerReset => {
                    self.lanes[li].conn.server_rst(last_sent + 50 * US);
                    dead = true;
                    closed_how = Some("rst_by_server");
                    done = last_sent + self.rtt / 2;
                }
                Outcome::Truncated => {
                    self.lanes[li].conn.close_by_server(last_sent + 50 * US);
                    dead = true;
                    closed_how = Some("fin_by_server");
                    done = last_sent + self.rtt / 2;
                }
                _ => {}
            }
            server_free = last_sent;
            // The cookie and cache learn from what arrived.
            if self.cookie.is_none() && resp.status < 500 && !dead {
                self.cookie = resp
                    .headers
                    .iter()
                    .find(|(k, v)| k == "Set-Cookie" && v.starts_with(&world.cfg.cookie_name))
                    .and_then(|(_, v)| v.split(';').next())
                    .and_then(|kv| kv.split_once('='))
                    .map(|(_, v)| v.to_string());
                if self.cookie.is_some() {
                    self.truth.cookie = self.cookie.clone();
                }
            }
            if resp.status == 200 && matches!(p.spec.answer, Answer::Asset(_)) && p.fault.is_none() {
                self.cached.insert(p.spec.uri.clone());
            }
            self.lanes[li].truth.transactions.push(tx);
            out.push((p.i, TxResult { status: Some(resp.status), failure, important, done, location }));
        }
        let lane = &mut self.lanes[li];
        // The client may reuse the connection once it has every answer
        // (a retransmitted segment arrives late).
        let client_free = out.iter().map(|(_, r)| r.done).max().unwrap_or(t);
        lane.free_at = (server_free + self.rtt / 2).max(client_free) + 20 * US;
        lane.idle_since = lane.free_at;
        if dead {
            let lane = self.lanes.remove(li);
            let how = closed_how.unwrap_or("none");
            self.retire(world, lane, None, how);
        } else if self.lanes[li].http10 {
            // HTTP/1.0: the server closes after the response.
            let lane = self.lanes.remove(li);
            let at = lane.free_at - self.rtt / 2;
            self.retire(world, lane, Some(at), "fin_by_server");
        }
        out
    }

    /// Server processing time for a request.
    fn server_think(&mut self, cfg: &SynthConfig, kind: ResourceKind, fault: Option<FailureKind>) -> i64 {
        match fault {
            Some(FailureKind::Slow) => (self.rng.range(5_000, 12_000) as i64) * MS,
            Some(FailureKind::ClientAbort) => (self.rng.range(20_000, 40_000) as i64) * MS,
            _ => {
                let median = match kind {
                    ResourceKind::Document | ResourceKind::Api | ResourceKind::Post => cfg.think_ms,
                    _ => 1.5,
                };
                // Hash-free determinism: one draw per request.
                (self.rng.lognormal(median, 0.5).clamp(0.2, 1500.0) * MS as f64) as i64
            }
        }
    }

    /// Draws a fault for a request of `kind`, by the configured rates.
    fn decide_fault(&mut self, cfg: &SynthConfig, kind: ResourceKind, answer: &Answer) -> Option<FailureKind> {
        let f = &cfg.faults;
        let candidates: &[(FailureKind, f64)] = match kind {
            ResourceKind::Document => &[
                (FailureKind::ServerError, f.server_error),
                (FailureKind::NotFound, f.not_found),
                (FailureKind::ErrorPage, f.error_page),
                (FailureKind::Slow, f.slow),
                (FailureKind::ServerReset, f.server_reset),
                (FailureKind::Truncated, f.truncated),
                (FailureKind::NoResponse, f.no_response),
                (FailureKind::ClientAbort, f.client_abort),
            ],
            ResourceKind::Api | ResourceKind::Post => &[
                (FailureKind::ServerError, f.server_error),
                (FailureKind::ErrorPage, f.error_page),
                (FailureKind::Slow, f.slow),
                (FailureKind::ServerReset, f.server_reset),
                (FailureKind::NoResponse, f.no_response),
            ],
            _ => &[
                (FailureKind::ServerError, f.server_error / 2.0),
                (FailureKind::NotFound, f.not_found),
                (FailureKind::ServerReset, f.server_reset / 2.0),
                (FailureKind::Truncated, f.truncated / 2.0),
            ],
        };
        // A 304 has no body to truncate or reset into.
        let no_body = matches!(answer, Answer::NotModified(_) | Answer::Redirect(..));
        for (k, p) in candidates {
            if no_body && matches!(k, FailureKind::Truncated | FailureKind::ServerReset) {
                continue;
            }
            if self.rng.chance(*p) {
                return Some(*k);
            }
        }
        None
    }

    fn build_request(&self, site: &Site, spec: &ReqSpec, uri: &str, version: &'static str) -> Request {
        let host = site.host.as_str();
        let mut h: Vec<(String, String)> =
            vec![("Host".into(), host.into()), ("User-Agent".into(), self.agent.ua.into())];
        let accept = match spec.kind {
            ResourceKind::Document => "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ResourceKind::Api | ResourceKind::Post => "application/json, text/plain, */*",
            ResourceKind::Css => "text/css,*/*;q=0.1",
            ResourceKind::Js => "*/*",
            ResourceKind::Image => "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
            ResourceKind::Font => "*/*",
        };
        h.push(("Accept".into(), accept.into()));
        if let Some(ae) = self.agent.accept_encoding {
            h.push(("Accept-Encoding".into(), ae.into()));
        }
        if let Some(r) = &spec.referer {
            h.push(("Referer".into(), r.clone()));
        }
        let mut jar = Vec::new();
        if let Some(c) = &self.cookie {
            let mut v = format!("{}={c}", self.truth.cookie_name);
            if let Some(u) = &self.truth.username {
                v.push_str(&format!("; auth={}", auth_token(u)));
            }
            jar.push(v);
        }
        if let Some(g) = &self.analytics {
            jar.push(format!("_ga={g}"));
        }
        if !jar.is_empty() {
            h.push(("Cookie".into(), jar.join("; ")));
        }
        if let Answer::NotModified(path) = &spec.answer
            && let Some(a) = site.assets.get(path)
        {
            h.push(("If-None-Match".into(), a.etag.clone()));
        }
        if let Some(ct) = spec.content_type {
            h.push(("Content-Type".into(), ct.into()));
            h.push(("Content-Length".into(), spec.body.len().to_string()));
        }
        if version == "HTTP/1.1" {
            h.push(("Connection".into(), "keep-alive".into()));
        }
        Request { method: spec.method.into(), uri: uri.into(), version, headers: h, body: spec.body.clone() }
    }

    /// The server's answer (`soft`: a soft error's body). Returns
    /// (response, error page with 2xx, redirect location).
    fn build_response<W: Write>(
        &mut self,
        world: &mut World<'_, W>,
        spec: &ReqSpec,
        fault: Option<FailureKind>,
        soft: Option<&'static str>,
        version: &'static str,
    ) -> (Response, bool, Option<String>) {
        let site = &mut world.site;
        let cfg = world.cfg;
        let mut headers: Vec<(String, String)> =
            vec![("Date".into(), "Mon, 02 Nov 2026 02:00:00 GMT".into()), ("Server".into(), "nginx".into())];
        let enc_ok = |enc: Encoding| -> bool {
            match self.agent.accept_encoding {
                Some(ae) => enc.header().is_some_and(|h| ae.contains(h)),
                None => false,
            }
        };
        let dyn_enc = if enc_ok(Encoding::Br) {
            Encoding::Br
        } else if enc_ok(Encoding::Gzip) {
            Encoding::Gzip
        } else {
            Encoding::Identity
        };
        let dyn_framing = if version == "HTTP/1.0" {
            // A truncation needs an announced length to be one: the server
            // announces it for the answers it cuts short.
            if self.rng.chance(0.5) && fault != Some(FailureKind::Truncated) {
                Framing::Close
            } else {
                Framing::ContentLength
            }
        } else {
            Framing::Chunked
        };
        // A new visitor gets the session cookie on the first answer.
        let set_cookie = self.cookie.is_none();
        let cookie_value = if set_cookie { Some(self.rng.hex(32)) } else { None };
        if let (Some(v), Some(_)) = (&cookie_value, self.truth.robot) {
            self.truth.robot_cookies.push(v.clone());
        }
        let add_cookie = |h: &mut Vec<(String, String)>| {
            if let Some(v) = &cookie_value {
                h.push(("Set-Cookie".into(), format!("{}={v}; Path=/; HttpOnly", cfg.cookie_name)));
            }
        };
        let mut error_page = false;
        let mut location = None;
        let (status, ct, body, encoding, framing): (u16, &str, Vec<u8>, Encoding, Framing) = match (fault, &spec.answer)
        {
            (Some(FailureKind::ServerError), a) => {
                let code = *self.rng.pick(&[500u16, 502, 503]);
                add_cookie(&mut headers);
                match (a, spec.kind) {
                    (Answer::Json(_), _) | (_, ResourceKind::Api | ResourceKind::Post) => (
                        code,
                        "application/json",
                        format!("{{\"error\":\"{}\",\"status\":{code}}}", http::reason(code)).into_bytes(),
                        Encoding::Identity,
                        Framing::ContentLength,
                    ),
                    _ => (
                        code,
                        "text/html",
                        site.page_html(&PageRef::ServerError(code), false),
                        Encoding::Identity,
                        Framing::ContentLength,
                    ),
                }
            }
            (Some(FailureKind::NotFound), _) => {
                add_cookie(&mut headers);
                (
                    404,
                    "text/html",
                    site.page_html(&PageRef::NotFound, false),
                    Encoding::Identity,
                    Framing::ContentLength,
                )
            }
            (Some(FailureKind::ErrorPage), a) => {
                error_page = true;
                add_cookie(&mut headers);
                match a {
                    Answer::Page(p) => {
                        let body = site.page_html(p, true);
                        (200, "text/html; charset=utf-8", body, dyn_enc, dyn_framing)
                    }
                    _ => (
                        200,
                        "application/json",
                        format!("{{\"error\":\"{}\"}}", site.error_text).into_bytes(),
                        Encoding::Identity,
                        Framing::ContentLength,
                    ),
                }
            }
            (Some(FailureKind::SoftError), _) => {
                // 200, and the body says the call failed.
                error_page = true;
                add_cookie(&mut headers);
                let body = soft.unwrap_or(SOFT_ERRORS[0].1);
                (200, "application/json", body.as_bytes().to_vec(), Encoding::Identity, Framing::ContentLength)
            }
            (_, Answer::Page(p)) => {
                add_cookie(&mut headers);
                let body = site.page_html(p, false);
                (200, "text/html; charset=utf-8", body, dyn_enc, dyn_framing)
            }
            (_, Answer::Asset(path)) => {
                let Some(a) = site.assets.get(path).cloned() else {
                    return (
                        Response {
                            version,
                            status: 404,
                            reason: "Not Found",
                            headers,
                            body: Vec::new(),
                            encoding: Encoding::Identity,
                            framing: Framing::ContentLength,
                        },
                        false,
                        None,
                    );
                };
                headers.push(("ETag".into(), a.etag.clone()));
                headers.push(("Cache-Control".into(), "max-age=3600".into()));
                let compressible = matches!(a.kind, ResourceKind::Css | ResourceKind::Js);
                let enc = if compressible {
                    if enc_ok(Encoding::Br) {
                        Encoding::Br
                    } else if enc_ok(Encoding::Gzip) {
                        Encoding::Gzip
                    } else {
                        Encoding::Identity
                    }
                } else {
                    Encoding::Identity
                };
                (200, a.content_type, a.body.clone(), enc, Framing::ContentLength)
            }
            (_, Answer::NotModified(path)) => {
                if let Some(a) = site.assets.get(path) {
                    headers.push(("ETag".into(), a.etag.clone()));
                }
                (304, "", Vec::new(), Encoding::Identity, Framing::None)
            }
            (_, Answer::Json(j)) => {
                add_cookie(&mut headers);
                (200, "application/json", j.clone().into_bytes(), Encoding::Identity, Framing::ContentLength)
            }
            (_, Answer::Redirect(code, to)) => {
                add_cookie(&mut headers);
                if spec.uri == "/login" {
                    // Signing in sets the auth cookie.
                    let body = String::from_utf8_lossy(&spec.body);
                    if let Some(name) = body.split('&').find_map(|kv| kv.strip_prefix("username=")) {
                        headers.push(("Set-Cookie".into(), format!("auth={}; Path=/; HttpOnly", auth_token(name))));
                    }
                }
                location = Some(to.clone());
                headers.push(("Location".into(), to.clone()));
                (
                    *code,
                    "text/html",
                    format!("<a href=\"{to}\">moved</a>").into_bytes(),
                    Encoding::Identity,
                    Framing::ContentLength,
                )
            }
        };
        if !ct.is_empty() {
            headers.push(("Content-Type".into(), ct.into()));
        }
        if version == "HTTP/1.0" && framing != Framing::Close {
            headers.push(("Connection".into(), "close".into()));
        }
        (
            Response { version, status, reason: http::reason(status), headers, body, encoding, framing },
            error_page,
            location,
        )
    }
}

fn recommendations(site: &Site, i: usize) -> String {
    let p = &site.products[i];
    let ids: Vec<String> = site.categories[p.category]
        .products
        .iter()
        .filter(|j| **j != i)
        .take(4)
        .map(|j| site.products[*j].id.to_string())
        .collect();
    format!("{{\"product\":{},\"recommended\":[{}]}}", p.id, ids.join(","))
}

/// A buyer's plan as the key's basket (no random draw: the traffic is the
/// same with or without it).
fn intended_basket(site: &Site, plan: &[(usize, u32)]) -> Vec<BasketItem> {
    plan.iter()
        .map(|(p, q)| BasketItem { product: site.products[*p].id, qty: *q, price_cents: site.products[*p].price_cents })
        .collect()
}

fn cart_json(site: &Site, cart: &[(usize, u32)]) -> String {
    let total: u64 = cart.iter().map(|(p, q)| site.products[*p].price_cents * u64::from(*q)).sum();
    let items: Vec<String> =
        cart.iter().map(|(p, q)| format!("{{\"id\":{},\"qty\":{q}}}", site.products[*p].id)).collect();
    format!("{{\"items\":[{}],\"cart_total\":{}}}", items.join(","), money(total))
}

fn auth_token(user: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

fn full_url(host: &str, path: &str) -> String {
    format!("http://{host}{path}")
}

fn sock(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Nanoseconds to seconds.
pub fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// Payload bytes in a (possibly cut) chunked body.
fn dechunked_len(mut b: &[u8]) -> usize {
    let mut total = 0;
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return total;
        };
        let size = std::str::from_utf8(&b[..eol]).ok().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size else { return total };
        if size == 0 {
            return total;
        }
        let data = &b[eol + 2..];
        total += size.min(data.len());
        if data.len() < size + 2 {
            return total;
        }
        b = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultRates, Profile};
    use crate::writer::CaptureFormat;

    fn run(cfg: &SynthConfig) -> (Vec<u8>, Vec<u8>, Totals) {
        let mut cap = Vec::new();
        let mut key = Vec::new();
        let t = generate(cfg, &mut cap, &mut key).unwrap();
        (cap, key, t)
    }

    fn small(users: u64, seed: u64) -> SynthConfig {
        SynthConfig { users, seed, body_scale: 0.05, ..SynthConfig::default() }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (c1, k1, _) = run(&small(12, 5));
        let (c2, k2, _) = run(&small(12, 5));
        assert_eq!(c1, c2);
        assert_eq!(k1, k2);
        let (c3, _, _) = run(&small(12, 6));
        assert_ne!(c1, c3);
    }

    #[test]
    fn every_fault_kind_occurs_in_a_default_run() {
        let (_, key, t) = run(&small(20, 1));
        for k in FailureKind::ALL {
            assert!(t.faults_by_kind.get(&k).copied().unwrap_or(0) > 0, "{k:?} never injected: {:?}", t.faults_by_kind);
            assert!(
                t.failures_by_kind.get(&k).copied().unwrap_or(0) > 0,
                "{k:?} never noticed: {:?}",
                t.failures_by_kind
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(v["totals"]["users"], 20);
        // A clean profile injects nothing.
        let mut cfg = small(20, 1);
        Profile::Clean.apply(&mut cfg);
        let (_, _, t) = run(&cfg);
        assert!(t.faults_by_kind.is_empty(), "{:?}", t.faults_by_kind);
        assert_eq!(t.users_affected, 0);
        assert_eq!(t.revenue_lost_cents, 0);
    }

    /// The key agrees with itself: totals are the sums of the users, every
    /// transaction's fields fit its outcome, and the money adds up.
    #[test]
    fn answer_key_is_consistent() {
        let mut cfg = small(40, 3);
        Profile::Lossy.apply(&mut cfg);
        let (_, key, t) = run(&cfg);
        let v: serde_json::Value = serde_json::from_slice(&key).unwrap();
        let users = v["users"].as_array().unwrap();
        assert_eq!(users.len(), 40);
        let mut affected = 0;
        let mut lost = 0;
        let mut realised = 0;
        let mut conns = 0;
        let mut gap = 0;
        for u in users {
            let failures = u["failures"].as_object().unwrap();
            let noticed: u64 = failures.values().map(|n| n.as_u64().unwrap()).sum();
            assert_eq!(u["affected"].as_bool().unwrap(), noticed > 0);
            affected += u64::from(noticed > 0);
            lost += u["lost_cents"].as_u64().unwrap();
            if u["converted"].as_bool().unwrap() {
                realised += u["order_cents"].as_u64().unwrap();
                assert_eq!(u["lost_cents"], 0, "a buyer who ordered lost nothing");
            }
            if u["lost_cents"].as_u64().unwrap() > 0 {
                assert!(u["gave_up"].as_bool().unwrap() && u["intends_to_buy"].as_bool().unwrap());
                assert_eq!(u["lost_cents"], u["intended_order_cents"]);
            }
            for c in u["connections"].as_array().unwrap() {
                conns += 1;
                for d in ["c2s", "s2c"] {
                    let dt = &c[d];
                    assert!(dt["gap_bytes"].as_u64().unwrap() <= dt["missing_bytes"].as_u64().unwrap());
                    assert_eq!(
                        dt["captured_bytes"].as_u64().unwrap() + dt["missing_bytes"].as_u64().unwrap(),
                        dt["sent_bytes"].as_u64().unwrap()
                    );
                    gap += dt["gap_bytes"].as_u64().unwrap();
                }
                for tx in c["transactions"].as_array().unwrap() {
                    let outcome = tx["outcome"].as_str().unwrap();
                    match tx["fault"].as_str() {
                        None => assert!(outcome == "complete" || outcome == "no_response", "{tx}"),
                        Some("error_page") => {
                            assert_eq!(tx["status"], 200);
                            assert!(tx["error_page"].as_bool().unwrap());
                        }
                        // (Unless the connection died under an earlier
                        // pipelined request before the answer.)
                        Some("soft_error") if !tx["status"].is_null() => {
                            assert_eq!(tx["status"], 200, "{tx}");
                            assert!(tx["error_page"].as_bool().unwrap());
                            let field = tx["error_field"].as_str().unwrap();
                            assert!(SOFT_ERRORS.iter().any(|(f, _)| *f == field), "{tx}");
                            assert!(matches!(tx["kind"].as_str(), Some("api" | "post")), "{tx}");
                        }
                        Some("server_error") => assert!(tx["status"].as_u64().unwrap() >= 500),
                        Some("not_found") => assert_eq!(tx["status"], 404),
                        Some("no_response") | Some("client_abort") => {
                            assert!(tx["status"].is_null())
                        }
                        Some("truncated") => assert_eq!(outcome, "truncated"),
                        Some("server_reset") => assert_eq!(outcome, "server_reset"),
                        _ => {}
                    }
                    if tx["fault"] != "soft_error" {
                        assert!(tx.get("error_field").is_none(), "{tx}");
                    }
                    if outcome == "complete" && tx["framing"] == "content_length" {
                        assert_eq!(tx["content_length"], tx["wire_body_len"], "{tx}");
                    }
                }
            }
        }
        assert_eq!(t.users_affected, affected);
        assert_eq!(t.revenue_lost_cents, lost);
        assert_eq!(t.revenue_realised_cents, realised);
        assert_eq!(t.connections, conns);
        assert_eq!(t.gap_bytes, gap);
        assert!(t.gap_bytes > 0, "the lossy profile loses bytes in the capture");
        assert!(t.transactions_with_capture_loss > 0);
    }

    /// Revenue lost is the basket a buyer who gave up meant to order, not
    /// the cart they left: the basket is the plan (what buyers who met no
    /// failure ordered), and those who left mid-way had less in the cart.
    #[test]
    fn revenue_lost_is_the_intended_basket_not_the_cart() {
        let mut cfg = small(400, 11);
        cfg.faults.server_error *= 4.0;
        let (_, key, t) = run(&cfg);
        let v: serde_json::Value = serde_json::from_slice(&key).unwrap();
        let (mut lost, mut partial, mut ordered_plan) = (0, 0, 0);
        for u in v["users"].as_array().unwrap() {
            let basket = u["intended_basket"].as_array().unwrap();
            let value: u64 =
                basket.iter().map(|b| b["qty"].as_u64().unwrap() * b["price_cents"].as_u64().unwrap()).sum();
            assert_eq!(value, u["intended_order_cents"].as_u64().unwrap(), "{}", u["user"]);
            assert_eq!(!basket.is_empty(), u["intends_to_buy"].as_bool().unwrap(), "{}", u["user"]);
            let gave_up = u["gave_up"].as_bool().unwrap() && !u["converted"].as_bool().unwrap();
            if u["intends_to_buy"].as_bool().unwrap() && gave_up {
                assert_eq!(u["lost_cents"].as_u64().unwrap(), value);
                lost += value;
                partial += u64::from(u["cart_cents"].as_u64().unwrap() < value);
            } else {
                assert_eq!(u["lost_cents"], 0);
            }
            if u["converted"].as_bool().unwrap() && !u["affected"].as_bool().unwrap() {
                assert_eq!(u["order_cents"].as_u64().unwrap(), value, "{}", u["user"]);
                ordered_plan += 1;
            }
        }
        assert_eq!(t.revenue_lost_cents, lost);
        assert!(lost > 0 && partial > 0 && ordered_plan > 0, "{lost} {partial} {ordered_plan}");
    }

    /// Soft errors: API calls answered 200 with a body that says the call
    /// failed, in every shape, labelled with the field that says it; a
    /// rate of 0 leaves every other byte of the run as it was until one
    /// would have happened.
    #[test]
    fn soft_errors_are_api_answers_labelled_with_their_field() {
        let mut cfg = small(300, 4);
        cfg.faults.soft_error = 0.05;
        let (_, key, t) = run(&cfg);
        let v: serde_json::Value = serde_json::from_slice(&key).unwrap();
        let mut fields = std::collections::BTreeSet::new();
        let mut users = 0;
        for u in v["users"].as_array().unwrap() {
            let mut mine = 0;
            for c in u["connections"].as_array().unwrap() {
                for tx in c["transactions"].as_array().unwrap() {
                    if tx["fault"] == "soft_error" && tx["status"] == 200 {
                        fields.insert(tx["error_field"].as_str().unwrap().to_string());
                        mine += 1;
                    }
                }
            }
            if mine > 0 {
                users += 1;
                assert!(u["affected"].as_bool().unwrap(), "{}", u["user"]);
                assert!(u["failures"]["soft_error"].as_u64().unwrap() >= 1, "{}", u["user"]);
            }
        }
        let want: std::collections::BTreeSet<String> = SOFT_ERRORS.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(fields, want, "every shape occurs");
        assert!(users >= 10, "{users} users met a soft error");
        assert_eq!(
            t.failures_by_kind.get(&FailureKind::SoftError).copied(),
            Some(t.faults_by_kind[&FailureKind::SoftError])
        );
        // Every body says the call failed, in its own field.
        for (field, body) in SOFT_ERRORS {
            let b: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(b.get(field).is_some(), "{body}");
        }
        // Deterministic by seed.
        assert_eq!(run(&cfg).1, key);
        // Drawing soft errors moves nothing else: at a rate too small to
        // hit, the capture is the one without them, byte for byte.
        // (Not owed one either.)
        let none = SynthConfig {
            faults: FaultRates { soft_error: 0.0, ..FaultRates::default() },
            guarantee_faults: false,
            ..small(40, 4)
        };
        let some = SynthConfig { faults: FaultRates { soft_error: 1e-12, ..none.faults.clone() }, ..none.clone() };
        assert!(run(&none).0 == run(&some).0, "a soft-error draw moved other traffic");
    }

    /// The capture reads back: every frame, in time order, as many as the
    /// totals say, in both formats.
    #[test]
    fn capture_reads_back_in_time_order() {
        for format in [CaptureFormat::Pcap, CaptureFormat::PcapNs, CaptureFormat::Pcapng] {
            let cfg = SynthConfig { format, ..small(8, 2) };
            let (cap, _, t) = run(&cfg);
            assert_eq!(cap.len() as u64, t.capture_bytes);
            let mut reader = pcap_parser::create_reader(1 << 20, &cap[..]).unwrap();
            let mut frames = 0u64;
            let mut last = (0u64, 0u64);
            loop {
                match reader.next() {
                    Ok((off, block)) => {
                        let ts = match &block {
                            pcap_parser::PcapBlockOwned::Legacy(b) => Some((u64::from(b.ts_sec), u64::from(b.ts_usec))),
                            pcap_parser::PcapBlockOwned::NG(pcap_parser::Block::EnhancedPacket(b)) => {
                                Some((u64::from(b.ts_high), u64::from(b.ts_low)))
                            }
                            _ => None,
                        };
                        if let Some(ts) = ts {
                            assert!(ts >= last, "{format:?}: out of order at frame {frames}");
                            last = ts;
                            frames += 1;
                        }
                        reader.consume(off);
                    }
                    Err(pcap_parser::PcapError::Eof) => break,
                    Err(pcap_parser::PcapError::Incomplete(_)) => reader.refill().unwrap(),
                    Err(e) => panic!("{e:?}"),
                }
            }
            assert_eq!(frames, t.packets, "{format:?}");
        }
    }

    #[test]
    fn shared_addresses_and_robots_are_keyed_and_leave_other_runs_alone() {
        // A run without them is the same whatever the new settings'
        // streams would draw (they are not drawn).
        let plain = small(30, 11);
        let (cap, key, _) = run(&plain);
        let mut again = plain.clone();
        again.robots = crate::config::RobotTraffic::default();
        again.shared = None;
        assert_eq!(run(&again).0, cap);
        assert!(!String::from_utf8_lossy(&key).contains("robot") && !String::from_utf8_lossy(&key).contains("_ga"));
        // Shared: a few addresses, one User-Agent, some with _ga, bare ones
        // of one address spaced.
        let mut cfg = small(60, 12);
        Profile::Shared.apply(&mut cfg);
        let (cap, key, t) = run(&cfg);
        let v: serde_json::Value = serde_json::from_slice(&key).unwrap();
        let users = v["users"].as_array().unwrap();
        let ips: HashSet<&str> = users.iter().map(|u| u["client_ip"].as_str().unwrap()).collect();
        assert!(ips.len() <= 6 && ips.iter().all(|i| i.starts_with("100.64.0.")), "{ips:?}");
        assert!(users.iter().all(|u| u["user_agent"] == users[0]["user_agent"] && u["nat_shared"] == true));
        let ga: Vec<&str> = users.iter().filter_map(|u| u["analytics_cookie"].as_str()).collect();
        assert!(ga.len() > 10 && ga.len() < 60, "{} with _ga", ga.len());
        assert_eq!(ga.iter().collect::<HashSet<_>>().len(), ga.len(), "one _ga per browser");
        let text = String::from_utf8_lossy(&cap);
        assert!(text.contains(&format!("_ga={}", ga[0])), "the browser sends it");
        let mut bare: Vec<(&str, f64)> = users
            .iter()
            .filter(|u| u["analytics_cookie"].is_null())
            .map(|u| (u["client_ip"].as_str().unwrap(), u["arrival"].as_f64().unwrap()))
            .collect();
        bare.sort_by(|a, b| a.0.cmp(b.0).then(a.1.total_cmp(&b.1)));
        for w in bare.windows(2) {
            assert!(w[0].0 != w[1].0 || w[1].1 - w[0].1 >= 360.0, "{w:?}");
        }
        assert_eq!(t.users, 60);
        // Robots: listed with `robot`, counted apart.
        let mut cfg = small(20, 13);
        Profile::Robots.apply(&mut cfg);
        cfg.robots.load_identities = 30;
        let (_, key, t) = run(&cfg);
        let v: serde_json::Value = serde_json::from_slice(&key).unwrap();
        let users = v["users"].as_array().unwrap();
        let robots: Vec<&serde_json::Value> = users.iter().filter(|u| u["robot"].is_string()).collect();
        assert_eq!((users.len(), robots.len(), t.users, t.robots), (22, 2, 20, 2));
        let load = robots.iter().find(|r| r["robot"] == "load_generator").unwrap();
        assert_eq!(load["robot_cookies"].as_array().unwrap().len(), 30, "a cookie an identity");
        assert_eq!(load["converted"], false);
        let crawler = robots.iter().find(|r| r["robot"] == "crawler").unwrap();
        assert!(crawler["user_agent"].as_str().unwrap().contains("Googlebot"));
        // Pages only: no asset, no API call.
        for r in &robots {
            for c in r["connections"].as_array().unwrap() {
                for tx in c["transactions"].as_array().unwrap() {
                    assert_eq!(tx["kind"], "document", "{tx}");
                }
            }
        }
    }
}
