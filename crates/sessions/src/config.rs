//! Settings of users, sessions, pages and revenue (`pov.toml` sections
//! `[users]`, `[sessions]`, `[[pages]]`, `[revenue]`). Every field has a
//! default that works on a typical shop; unknown keys are refused.

use std::net::IpAddr;

use serde::Deserialize;

/// `[users]`: how requests are tied to a person.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// Session cookie names, tried in order (case-sensitive, as browsers
    /// send them).
    pub cookies: Vec<String>,
    /// A request header that names the user (e.g. `X-User-Id`); empty for
    /// none.
    pub header: String,
    /// Query (or `;name=` path) parameters that carry a session id.
    pub query_params: Vec<String>,
    /// Form or JSON fields of a sign-in request that name the user; the
    /// identity of last resort before the client address.
    pub login_fields: Vec<String>,
    /// Addresses or CIDR blocks of proxies whose `X-Forwarded-For` is
    /// trusted (the client is the last address before a trusted one).
    pub trusted_proxies: Vec<String>,
    /// Seconds a request sent without a session cookie waits for a
    /// `Set-Cookie` answer to a request from the same address and
    /// User-Agent (a first visit), before it counts as an anonymous user.
    pub join_window_secs: f64,
    /// Seconds in which a client's next attempt counts as a retry by the
    /// same person: the next connection after a refused or unanswered one
    /// tells whose it was, and a first visit from the same address and
    /// User-Agent after one whose cookie never came back (its answer
    /// failed) is the same user trying again.
    pub retry_window_secs: f64,
    /// Cookies other than the session cookie that a browser keeps for
    /// long and that name the browser (analytics and device ids, a
    /// consent or preference id): a request without the session cookie
    /// that carries one belongs to the user first seen with the same
    /// value, and two users behind one address and User-Agent with
    /// different values are two people. A `*` in a name is any run of
    /// characters (`_pk_id.*`). Values shorter than 8 characters are not
    /// taken as an identity (`lang=en` names a language, not a browser).
    pub persistent_cookies: Vec<String>,
}

impl Default for UsersConfig {
    fn default() -> UsersConfig {
        UsersConfig {
            cookies: [
                "JSESSIONID",
                "PHPSESSID",
                "ASP.NET_SessionId",
                "sid",
                "session",
                "session_id",
                "sessionid",
                "connect.sid",
                "_session_id",
                "laravel_session",
                "CFID",
            ]
            .map(String::from)
            .to_vec(),
            header: String::new(),
            query_params: ["jsessionid", "sessionid", "session_id", "PHPSESSID"].map(String::from).to_vec(),
            login_fields: ["username", "login", "email", "user"].map(String::from).to_vec(),
            trusted_proxies: Vec::new(),
            join_window_secs: 300.0,
            retry_window_secs: 60.0,
            persistent_cookies: [
                "_ga",
                "_fbp",
                "_gcl_au",
                "_uetvid",
                "_hjSessionUser_*",
                "_pk_id.*",
                "ajs_anonymous_id",
                "amplitude_id*",
                "mp_*_mixpanel",
                "optimizelyEndUserId",
                "visitor_id",
                "visitorId",
                "device_id",
                "deviceId",
                "uid",
                "_shopify_y",
                "OptanonConsent",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl UsersConfig {
    /// The first persistent cookie (see [`UsersConfig::persistent_cookies`])
    /// among `jar` (name, value pairs as sent), in the order of the
    /// configured names.
    pub fn persistent_in<K: AsRef<str>, V: AsRef<str>>(&self, jar: &[(K, V)]) -> Option<(String, String)> {
        // A name matches a pattern only if their first bytes agree (but for
        // a pattern that starts with `*`, or is empty): a jar none of whose
        // cookies could match is ruled out in one pass, not one a pattern.
        let (mut firsts, mut any) = ([0u64; 4], false);
        for want in &self.persistent_cookies {
            match want.as_bytes().first() {
                Some(b'*') | None => any = true,
                Some(&b) => firsts[usize::from(b >> 6)] |= 1 << (b & 63),
            }
        }
        let may = |name: &str| {
            any || name.as_bytes().first().is_some_and(|&b| firsts[usize::from(b >> 6)] >> (b & 63) & 1 == 1)
        };
        if !jar.iter().any(|(k, v)| v.as_ref().len() >= 8 && may(k.as_ref())) {
            return None;
        }
        self.persistent_cookies.iter().find_map(|want| {
            jar.iter()
                .find(|(k, v)| v.as_ref().len() >= 8 && cookie_name_matches(want, k.as_ref()))
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        })
    }
}

/// Whether cookie `name` is the configured `want` (`*` is any run of
/// characters; case-sensitive, as browsers send names). Names longer than
/// 256 bytes never match (no configured name is that long, and the match
/// stays cheap on hostile input).
#[inline]
fn cookie_name_matches(want: &str, name: &str) -> bool {
    // Most names differ from a pattern at its first byte: said before the
    // glob's call (17 patterns against every cookie of every request).
    if let (Some(&p), Some(&n)) = (want.as_bytes().first(), name.as_bytes().first())
        && p != b'*'
        && p != n
    {
        return false;
    }
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| s.get(i..).is_some_and(|t| glob(rest, t))),
            Some((c, rest)) => s.first() == Some(c) && s.get(1..).is_some_and(|t| glob(rest, t)),
        }
    }
    name.len() <= 256 && glob(want.as_bytes(), name.as_bytes())
}

/// A trusted proxy: one address or a CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.1`, `10.0.0.0/8` or `2001:db8::/32`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("`{s}` is not an address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or(format!("`{s}`: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(a: IpAddr) -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        }
        let ((a, wa), (b, wb)) = (bits(self.addr), bits(ip));
        if wa != wb {
            return false;
        }
        let p = u32::from(self.prefix);
        if p == 0 {
            return true;
        }
        let shift = wa - p;
        (a >> shift) == (b >> shift)
    }
}

/// `[sessions]`: how activity is cut into sessions and page views.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Inactivity, in seconds, that ends a session.
    pub timeout_secs: f64,
    /// A resource without a Referer that names a page joins the user's
    /// latest page started at most this many seconds before it.
    pub page_window_secs: f64,
}

impl Default for SessionsConfig {
    fn default() -> SessionsConfig {
        SessionsConfig { timeout_secs: 1800.0, page_window_secs: 10.0 }
    }
}

/// `[robots]`: how robots and load generators are told from customers
/// (see [`crate::robots`]). A robot's sessions are reported apart and kept
/// out of users and revenue unless asked (`--include-robots`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RobotsConfig {
    /// Use the built-in list of robot User-Agents
    /// (`crates/sessions/data/robot_agents.txt`).
    pub builtin_agents: bool,
    /// More crawler tokens (matched case-insensitively anywhere in the
    /// User-Agent): a session whose User-Agent holds one is a robot.
    pub agents: Vec<String>,
    /// More tool tokens (HTTP libraries, command-line tools): a robot when
    /// the session also fetched pages and nothing else.
    pub tool_agents: Vec<String>,
    /// Machine rate: a session with at least this many page views whose
    /// median gap is under `machine_gap_ms` (0: rule off).
    pub machine_pages: u32,
    /// Machine rate: the median gap between page views, milliseconds,
    /// below which no person clicks.
    pub machine_gap_ms: f64,
    /// Documents without their assets: a session with at least this many
    /// HTML pages answered 2xx that no link of the site led to (no Referer
    /// of the site: a person whose browser has every asset cached still
    /// follows links), and not one style sheet, script, image, font, media
    /// file or API call (0: rule off).
    pub assetless_documents: u32,
    /// Many identities: at least this many users first seen from one
    /// address with one User-Agent within one window of
    /// `identity_window_secs` that holds a session's start (0: rule off).
    pub identities: u32,
    /// The window of the identities rule, seconds.
    pub identity_window_secs: f64,
}

impl Default for RobotsConfig {
    fn default() -> RobotsConfig {
        RobotsConfig {
            builtin_agents: true,
            agents: Vec::new(),
            tool_agents: Vec::new(),
            machine_pages: 10,
            machine_gap_ms: 1000.0,
            assetless_documents: 5,
            identities: 10,
            identity_window_secs: 60.0,
        }
    }
}

/// One `[[pages]]` rule: URL pattern to page name and funnel step.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PageRule {
    /// Page name shown in reports.
    pub name: String,
    /// Regular expression matched against the path and query.
    pub pattern: String,
    /// Funnel step (`browse`, `product`, `cart`, `checkout`, `confirm` ...).
    #[serde(default)]
    pub step: Option<String>,
    /// Reaching this page (answered 2xx) is a conversion.
    #[serde(default)]
    pub conversion: bool,
    /// Apdex T for this page class, milliseconds (defaults to
    /// `[failures] page_apdex_t_ms`).
    #[serde(default)]
    pub apdex_t_ms: Option<f64>,
}

/// The default `[[pages]]`: the usual URL shapes of a web shop.
pub fn default_pages() -> Vec<PageRule> {
    let rule = |name: &str, pattern: &str, step: &str, conversion: bool| PageRule {
        name: name.into(),
        pattern: pattern.into(),
        step: Some(step.into()),
        conversion,
        apdex_t_ms: None,
    };
    vec![
        rule(
            "confirmation",
            r"(?i)^/(order|orders|checkout)/(confirm|confirmation|success|complete|thank-?you)|^/thank-?you|^/order-confirmation",
            "confirmation",
            true,
        ),
        rule(
            "order_submit",
            r"(?i)^/(checkout|order|orders)/(submit|place|place-order|complete-order)",
            "order",
            false,
        ),
        rule("checkout", r"(?i)^/(checkout|payment)", "checkout", false),
        rule("login", r"(?i)^/(login|signin|sign-in|account/login)", "login", false),
        rule("cart", r"(?i)^/(cart|basket|bag)", "cart", false),
        rule("product", r"(?i)^/(p|product|products|item|dp)/", "product", false),
        rule("category", r"(?i)^/(c|category|categories|collections|shop)/", "category", false),
        rule("search", r"(?i)^/search", "search", false),
        rule("home", r"^/(\?.*)?$|^/index\.(html?|php)", "home", false),
    ]
}

/// `[revenue]`: where money is read.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RevenueConfig {
    /// Form, query and JSON fields that carry an order's value, in order of
    /// preference.
    pub order_fields: Vec<String>,
    /// Fields that carry a cart's value.
    pub cart_fields: Vec<String>,
    /// A regular expression with one capture group for the value, tried on
    /// request and response bodies when no field matched.
    pub pattern: Option<String>,
    /// A JSON path (`order.total`, `data.cart.grand_total`) tried first on
    /// JSON bodies.
    pub json_path: Option<String>,
    /// POSTs that place an order (regular expression on the path), a
    /// conversion when answered 2xx or 3xx.
    pub conversion_posts: String,
    /// Average order value, used where no value is visible (default: the
    /// mean of the orders in the capture).
    pub average_order_value: Option<f64>,
    /// Funnel steps in order, first to last (the `step`s of `[[pages]]`):
    /// how far a session got is the furthest of these it reached.
    pub funnel: Vec<String>,
    /// Currency of the values (for display).
    pub currency: String,
}

impl Default for RevenueConfig {
    fn default() -> RevenueConfig {
        RevenueConfig {
            order_fields: ["order_total", "grand_total", "total", "amount", "order_value"].map(String::from).to_vec(),
            cart_fields: ["cart_total", "subtotal", "cart_value", "basket_total", "total"].map(String::from).to_vec(),
            pattern: None,
            json_path: None,
            conversion_posts: r"(?i)^/(checkout|order|orders|purchase|payment)(/(submit|place|complete|confirm|pay))?/?(\?.*)?$|^/(checkout|cart)/place-?order".into(),
            average_order_value: None,
            funnel: ["home", "search", "category", "product", "cart", "login", "checkout", "order", "confirmation"]
                .map(String::from)
                .to_vec(),
            currency: "USD".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8:1::5".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn persistent_cookies_by_name_and_prefix() {
        let u = UsersConfig::default();
        let jar = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(
            u.persistent_in(&jar(&[("sid", "S1"), ("_ga", "GA1.2.1234567.1700000000")])),
            Some(("_ga".into(), "GA1.2.1234567.1700000000".into()))
        );
        assert_eq!(
            u.persistent_in(&jar(&[("_pk_id.3.abcd", "0123456789abcdef")])),
            Some(("_pk_id.3.abcd".into(), "0123456789abcdef".into()))
        );
        assert_eq!(
            u.persistent_in(&jar(&[("mp_42abc_mixpanel", "%7B%22distinct_id%22")])).map(|x| x.0),
            Some("mp_42abc_mixpanel".into())
        );
        // Too short to name a browser; not a configured name; a near name.
        assert_eq!(u.persistent_in(&jar(&[("uid", "7"), ("lang", "en-GB-oxendict"), ("_gax", "123456789")])), None);
        assert!(!cookie_name_matches("_pk_id.*", &format!("_pk_id.{}", "x".repeat(300))));
        // Patterns that start with `*`, or are empty, take any first byte;
        // bytes past ASCII are ruled in and out like the others.
        let mut v =
            UsersConfig { persistent_cookies: vec!["*_visitor".into(), "ß*".into()], ..UsersConfig::default() };
        assert_eq!(
            v.persistent_in(&jar(&[("x", "12345678"), ("shop_visitor", "12345678")])).map(|x| x.0).as_deref(),
            Some("shop_visitor")
        );
        assert_eq!(v.persistent_in(&jar(&[("ßid", "12345678")])).map(|x| x.0).as_deref(), Some("ßid"));
        assert_eq!(v.persistent_in(&jar(&[("öid", "12345678")])), None);
        v.persistent_cookies = vec![String::new()];
        assert_eq!(v.persistent_in(&jar(&[("", "12345678")])).map(|x| x.0).as_deref(), Some(""));
        assert_eq!(v.persistent_in(&jar(&[("a", "12345678")])), None);
        // The first pattern that matches wins, then the first cookie.
        v.persistent_cookies = vec!["b*".into(), "a*".into()];
        let both = jar(&[("a1", "12345678"), ("b1", "12345678"), ("b2", "12345678")]);
        assert_eq!(v.persistent_in(&both).map(|x| x.0).as_deref(), Some("b1"));
    }
}
