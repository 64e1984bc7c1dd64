//! Generator settings. Every field has a default that gives a typical shop;
//! `Profile` bundles the presets the CLI offers.

use crate::tcp::CaptureNoise;
use crate::writer::CaptureFormat;

/// How often each application fault is injected (probability per request
/// of the kind it applies to), and how users react to a failure.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FaultRates {
    /// 5xx answer (500, 502, 503) on pages, APIs, posts and assets.
    pub server_error: f64,
    /// 404 on a page (broken link) or an asset.
    pub not_found: f64,
    /// Error page served with 200 OK (HTML pages and JSON APIs).
    pub error_page: f64,
    /// Server takes 5 to 12 s to answer.
    pub slow: f64,
    /// Server resets the connection mid-response.
    pub server_reset: f64,
    /// Server closes after fewer bytes than Content-Length announced.
    pub truncated: f64,
    /// Server never answers; the client gives up after its timeout.
    pub no_response: f64,
    /// Server is so slow that the user leaves while the page loads.
    pub client_abort: f64,
    /// A new connection is refused (SYN answered by RST).
    pub refused: f64,
    /// A new connection's SYNs go unanswered.
    pub unanswered: f64,
    /// An API call (a JSON answer: recommendations, cart, add to cart) is
    /// answered 200 with a body that says the call failed. Drawn apart
    /// from the other faults, after them, so that a rate of 0 leaves the
    /// rest of the traffic as it was.
    pub soft_error: f64,
}

impl Default for FaultRates {
    fn default() -> FaultRates {
        FaultRates {
            server_error: 0.005,
            not_found: 0.004,
            error_page: 0.003,
            slow: 0.005,
            server_reset: 0.0015,
            truncated: 0.0015,
            no_response: 0.001,
            client_abort: 0.0015,
            refused: 0.002,
            unanswered: 0.001,
            soft_error: 0.004,
        }
    }
}

impl FaultRates {
    /// No faults at all.
    pub fn none() -> FaultRates {
        FaultRates {
            server_error: 0.0,
            not_found: 0.0,
            error_page: 0.0,
            slow: 0.0,
            server_reset: 0.0,
            truncated: 0.0,
            no_response: 0.0,
            client_abort: 0.0,
            refused: 0.0,
            unanswered: 0.0,
            soft_error: 0.0,
        }
    }
}

/// How a user reacts to a failure they notice.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reactions {
    /// Reload the same page a few seconds later (at most twice).
    pub retry: f64,
    /// Ignore it and go on with the visit.
    pub carry_on: f64,
    /// Leave the site.
    pub give_up: f64,
}

impl Default for Reactions {
    fn default() -> Reactions {
        Reactions { retry: 0.45, carry_on: 0.25, give_up: 0.30 }
    }
}

/// Many customers behind a few addresses, all with one User-Agent (a
/// household, an office, a carrier-grade NAT): only cookies tell them
/// apart.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SharedAddresses {
    /// Addresses the customers share (100.64.0.0/24, the carrier-grade NAT
    /// range).
    pub addresses: u32,
    /// Share of customers whose browser sends a persistent analytics
    /// cookie (`_ga`, from an earlier visit) from its first request.
    pub analytics_share: f64,
    /// Seconds between two first visits from one address by customers
    /// without an analytics cookie. Closer, two such browsers cannot be
    /// told apart by anything on the wire when the first one's answer
    /// failed (the second could be the first trying again) or it gave up
    /// before any answer (its unanswered requests could be either's); a
    /// customer who would come closer carries an analytics cookie instead.
    /// pov's windows are 60 s (retry) and 300 s (join): 360 by default.
    pub bare_spacing_secs: f64,
}

impl Default for SharedAddresses {
    fn default() -> SharedAddresses {
        SharedAddresses { addresses: 6, analytics_share: 0.5, bare_spacing_secs: 360.0 }
    }
}

/// Robots beside the customers, keyed in the answer key with `robot`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RobotTraffic {
    /// Search-engine crawlers: a crawler User-Agent, pages without their
    /// assets, no cookies kept (every answer gives it a new one).
    pub crawlers: u32,
    /// Load generators: one address, a browser's User-Agent, a new session
    /// cookie every few pages (`load_identities` in all), pages a few
    /// hundred milliseconds apart without their assets, no orders.
    pub load_generators: u32,
    /// Session cookies each load generator goes through.
    pub load_identities: u32,
}

impl RobotTraffic {
    /// No robots (the key then says nothing of them).
    pub fn is_none(&self) -> bool {
        self.crawlers == 0 && self.load_generators == 0
    }
}

/// Everything the generator needs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SynthConfig {
    /// Number of users.
    pub users: u64,
    /// Seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Session cookie name the shop sets (`sid`, `JSESSIONID`, `PHPSESSID`).
    pub cookie_name: String,
    /// Capture time of the first user's arrival, nanoseconds since the epoch.
    pub start_ns: i64,
    /// Mean new users per second.
    pub arrival_rate: f64,
    /// Host name of the shop.
    pub host: String,
    /// Products in the catalog.
    pub products: usize,
    /// Scale of body sizes (1.0 realistic; samples use less).
    pub body_scale: f64,
    /// Text of error pages served with 200 OK.
    pub error_text: String,
    /// Application faults.
    pub faults: FaultRates,
    /// Reactions to failures.
    pub reactions: Reactions,
    /// Share of users who intend to buy.
    pub buyer_share: f64,
    /// Share of users who sign in.
    pub login_share: f64,
    /// Share of users behind a NAT address shared with others.
    pub nat_share: f64,
    /// Share of users on IPv6.
    pub ipv6_share: f64,
    /// Share of HTTP/1.0 clients (one request per connection).
    pub http10_share: f64,
    /// Share of clients that pipeline requests.
    pub pipelining_share: f64,
    /// Share of users who come back for a second session after a break.
    pub returning_share: f64,
    /// 802.1Q tag on every frame, if any.
    pub vlan: Option<u16>,
    /// Median client round trip, milliseconds.
    pub rtt_ms: f64,
    /// Median server think time for dynamic pages, milliseconds.
    pub think_ms: f64,
    /// Loss after the capture point (server segments retransmitted).
    pub server_loss: f64,
    /// Loss before the capture point (client segments seen late).
    pub client_loss: f64,
    /// What the capture misses or repeats.
    pub noise: CaptureNoise,
    /// Output format.
    pub format: CaptureFormat,
    /// Guarantee every fault kind with a non-zero rate occurs at least once
    /// (the first users each get one on their first page or connection; a
    /// soft error goes to the first API call of the run).
    pub guarantee_faults: bool,
    /// Customers behind a few shared addresses (the `shared` profile).
    /// Drawn from a random stream of its own: runs without it are as they
    /// were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedAddresses>,
    /// Robots beside the customers.
    #[serde(skip_serializing_if = "RobotTraffic::is_none")]
    pub robots: RobotTraffic,
}

impl Default for SynthConfig {
    fn default() -> SynthConfig {
        SynthConfig {
            users: 100,
            seed: 1,
            cookie_name: "sid".into(),
            // 2026-11-02 02:00:00 UTC
            start_ns: 1_793_584_800 * 1_000_000_000,
            arrival_rate: 0.5,
            host: "shop.example.com".into(),
            products: 48,
            body_scale: 1.0,
            error_text: "We're sorry, something went wrong".into(),
            faults: FaultRates::default(),
            reactions: Reactions::default(),
            buyer_share: 0.35,
            login_share: 0.3,
            nat_share: 0.15,
            ipv6_share: 0.2,
            http10_share: 0.05,
            pipelining_share: 0.1,
            returning_share: 0.1,
            vlan: None,
            rtt_ms: 40.0,
            think_ms: 60.0,
            server_loss: 0.0,
            client_loss: 0.0,
            noise: CaptureNoise::default(),
            format: CaptureFormat::Pcap,
            guarantee_faults: true,
            shared: None,
            robots: RobotTraffic::default(),
        }
    }
}

/// Named presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// A typical shop with a few faults and a clean capture.
    Default,
    /// No faults, clean capture.
    Clean,
    /// Faults plus network loss and capture noise (gaps, retransmissions,
    /// reordering, duplicates).
    Lossy,
    /// Default faults; every customer behind one of a few shared addresses
    /// with one User-Agent, half of them with a persistent analytics cookie;
    /// arrivals slowed to one every 20 s.
    Shared,
    /// Default traffic plus a crawler and a load generator.
    Robots,
}

impl Profile {
    /// Applies the preset to `cfg`.
    pub fn apply(self, cfg: &mut SynthConfig) {
        match self {
            Profile::Default => {}
            Profile::Clean => {
                cfg.faults = FaultRates::none();
                cfg.guarantee_faults = false;
            }
            Profile::Lossy => {
                cfg.server_loss = 0.01;
                cfg.client_loss = 0.01;
                cfg.noise = CaptureNoise { drop: 0.005, duplicate: 0.004, reorder: 0.02 };
            }
            Profile::Shared => {
                cfg.nat_share = 0.0;
                cfg.ipv6_share = 0.0;
                cfg.http10_share = 0.0;
                cfg.pipelining_share = 0.0;
                cfg.arrival_rate = 0.05;
                cfg.shared = Some(SharedAddresses::default());
            }
            Profile::Robots => {
                cfg.robots = RobotTraffic { crawlers: 1, load_generators: 1, load_identities: 200 };
            }
        }
    }
}
