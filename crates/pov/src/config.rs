//! `pov.toml`: every part optional, defaults that work on a typical shop,
//! unknown keys refused with their line.

use std::path::Path;

use pov_classify::FailuresConfig;
use pov_sessions::{PageRule, RevenueConfig, RobotsConfig, SessionsConfig, UsersConfig};
use serde::Deserialize;

/// `[privacy]`: what outputs hide (pov-privacy decides it).
pub use pov_privacy::PrivacyConfig;

/// The whole file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PovConfig {
    /// `[users]`.
    pub users: UsersConfig,
    /// `[sessions]`.
    pub sessions: SessionsConfig,
    /// `[[pages]]`: the built-in shop pages when the file gives none.
    pub pages: Vec<PageRule>,
    /// `[failures]`.
    pub failures: FailuresConfig,
    /// `[revenue]`.
    pub revenue: RevenueConfig,
    /// `[privacy]`.
    pub privacy: PrivacyConfig,
    /// `[robots]`.
    pub robots: RobotsConfig,
    /// `[[routes]]`: URL patterns and their route templates, tried before
    /// pov's own inference (docs/schema.md).
    pub routes: Vec<pov_classify::routes::RouteRule>,
}

impl Default for PovConfig {
    /// Every section's defaults, the built-in `[[pages]]` included (what
    /// an empty file gives).
    fn default() -> PovConfig {
        PovConfig {
            users: UsersConfig::default(),
            sessions: SessionsConfig::default(),
            pages: pov_sessions::config::default_pages(),
            failures: FailuresConfig::default(),
            revenue: RevenueConfig::default(),
            privacy: PrivacyConfig::default(),
            robots: RobotsConfig::default(),
            routes: Vec::new(),
        }
    }
}

impl PovConfig {
    /// Reads and checks a file. Errors name the file, and for a bad key or
    /// value its line and column.
    pub fn load(path: &Path) -> Result<PovConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        PovConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<PovConfig, String> {
        let mut cfg: PovConfig = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        if cfg.pages.is_empty() {
            // `pages = []` gives none: the built-in ones, as no `[[pages]]`.
            cfg.pages = PovConfig::default().pages;
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// Compiles every pattern once, so a bad one fails before any capture
    /// is read.
    pub fn check(&self) -> Result<(), String> {
        pov_sessions::Sessionizer::new(&self.sessionizer())?;
        pov_sessions::Sessionizer::proxies(&self.users)?;
        pov_classify::Classifier::new(&self.failures)?;
        pov_classify::routes::Routes::new(&self.routes)?;
        if let Some(p) = &self.revenue.pattern {
            regex::Regex::new(p).map_err(|e| format!("[revenue] pattern: {e}"))?;
        }
        Ok(())
    }

    /// The sessionizer's part.
    pub fn sessionizer(&self) -> pov_sessions::SessionizerConfig {
        pov_sessions::SessionizerConfig {
            users: self.users.clone(),
            sessions: self.sessions.clone(),
            pages: self.pages.clone(),
            revenue: self.revenue.clone(),
            max_session_txs: 0,
            budget: pov_capture::Budget::default(),
            robots: self.robots.clone(),
        }
    }
}

/// The defaults, as a commented file (`pov config --print-default`).
pub const DEFAULT_TOML: &str = r#"# pov.toml: every section and key is optional; these are the defaults.

[users]
# Session cookies that identify a user, tried in order.
cookies = ["JSESSIONID", "PHPSESSID", "ASP.NET_SessionId", "sid", "session", "session_id", "sessionid", "connect.sid", "_session_id", "laravel_session", "CFID"]
# A request header naming the user (e.g. "X-User-Id"); "" for none.
header = ""
# Query or ;path parameters that carry a session id.
query_params = ["jsessionid", "sessionid", "session_id", "PHPSESSID"]
# Form or JSON fields of a sign-in that name the user.
login_fields = ["username", "login", "email", "user"]
# Proxies (addresses or CIDR blocks) whose X-Forwarded-For is trusted.
trusted_proxies = []
# Seconds a request without a cookie waits for the Set-Cookie of a first
# visit from the same address and User-Agent.
join_window_secs = 300.0
# Seconds in which a client's next attempt is a retry by the same person:
# the next connection after a refused or unanswered one tells whose it was,
# and a new first visit (same address and User-Agent) after one whose cookie
# never came back joins it.
retry_window_secs = 60.0
# Cookies besides the session cookie that name a browser for long (analytics
# and device ids; `*` is any run of characters; values under 8 characters
# are ignored): a request without the session cookie that carries one is
# the user first seen with it, and users of one address and User-Agent with
# different ones are different people.
persistent_cookies = ["_ga", "_fbp", "_gcl_au", "_uetvid", "_hjSessionUser_*", "_pk_id.*", "ajs_anonymous_id", "amplitude_id*", "mp_*_mixpanel", "optimizelyEndUserId", "visitor_id", "visitorId", "device_id", "deviceId", "uid", "_shopify_y", "OptanonConsent"]

[robots]
# Robots and load generators are reported apart (summary.json "robots") and
# kept out of users, affected users and revenue unless --include-robots.
# The built-in list of robot User-Agents (crates/sessions/data/robot_agents.txt).
builtin_agents = true
# More crawler tokens (case-insensitive, anywhere in the User-Agent).
agents = []
# More tool tokens (HTTP libraries): a robot when the session fetched pages
# and nothing they load.
tool_agents = []
# Machine rate: this many page views (0: off) a median gap under
# machine_gap_ms apart.
machine_pages = 10
machine_gap_ms = 1000.0
# This many pages (0: off) and not one asset or API call.
assetless_documents = 5
# This many users (0: off) first seen from one address with one User-Agent
# within one window of identity_window_secs that holds a session's start.
identities = 10
identity_window_secs = 60.0

[sessions]
# Inactivity that ends a session.
timeout_secs = 1800.0
# A resource whose Referer names no page joins the latest page started this
# many seconds before it.
page_window_secs = 10.0

# [[pages]]: URL pattern (regular expression on path and query) -> page name
# and funnel step; the first match wins. Giving any [[pages]] replaces all
# of these built-in ones.
[[pages]]
name = "confirmation"
pattern = '(?i)^/(order|orders|checkout)/(confirm|confirmation|success|complete|thank-?you)|^/thank-?you|^/order-confirmation'
step = "confirmation"
conversion = true

[[pages]]
name = "order_submit"
pattern = '(?i)^/(checkout|order|orders)/(submit|place|place-order|complete-order)'
step = "order"

[[pages]]
name = "checkout"
pattern = '(?i)^/(checkout|payment)'
step = "checkout"

[[pages]]
name = "login"
pattern = '(?i)^/(login|signin|sign-in|account/login)'
step = "login"

[[pages]]
name = "cart"
pattern = '(?i)^/(cart|basket|bag)'
step = "cart"

[[pages]]
name = "product"
pattern = '(?i)^/(p|product|products|item|dp)/'
step = "product"

[[pages]]
name = "category"
pattern = '(?i)^/(c|category|categories|collections|shop)/'
step = "category"

[[pages]]
name = "search"
pattern = '(?i)^/search'
step = "search"

[[pages]]
name = "home"
pattern = '^/(\?.*)?$|^/index\.(html?|php)'
step = "home"
# apdex_t_ms = 2000.0   # a page class may set its own Apdex T

[failures]
# Apdex T of a transaction, ms: an important one slower than 4 T is "slow".
apdex_t_ms = 1000.0
# Apdex T of a page load, ms: a page slower than 4 T is "slow_page".
page_apdex_t_ms = 3000.0
# 4xx statuses that are not failures.
client_error_ignore = [401, 407]
# Resource classes whose failures are minor (counted, not noticed).
minor_classes = ["image", "media"]
# Top-level JSON keys that make a 2xx JSON body a failed call when present
# and not null, false, 0 or empty ("errors": [...] is GraphQL's shape):
# rule "api_error:KEY", tried after the [[failures.soft_error]] rules.
error_json_keys = ["error", "errors", "error_message", "errorMessage"]
# The same page again this soon after it failed is a "struggle".
struggle_window_secs = 60.0
# More redirects than this in one page view is a "redirect_loop".
redirect_limit = 10

# Error pages served with 2xx: case-insensitive patterns on the visible text.
[[failures.error_pages]]
name = "generic_error_text"
pattern = '''something went wrong|an (unexpected |internal )?error (has )?occurred|unexpected error occurred|internal server error|service (is )?(temporarily )?unavailable|bad gateway|gateway time-?out|we('|’)re sorry, (but )?(something|an error|there was)|page could not be (displayed|loaded)'''

[[failures.error_pages]]
name = "stack_trace"
pattern = '''traceback \(most recent call last\)|java\.lang\.[a-z]+(exception|error)|exception in thread|whitelabel error page|server error in '/' application|(fatal|parse) error(</b>)?: [^\n]*? in \S+ on line (<b>)?\d+|stack trace:|sqlstate\[|ora-\d{5}|unhandled exception'''

[[failures.error_pages]]
name = "maintenance"
pattern = '''(down|closed) for maintenance|under maintenance|maintenance mode'''

[[failures.error_pages]]
name = "localised_error_text"
pattern = '''es ist ein fehler aufgetreten|ein fehler ist aufgetreten|une erreur (s'est produite|est survenue)|se ha producido un error|ha ocurrido un error|algo salió mal|si è verificato un errore|qualcosa è andato storto|ocorreu um erro|algo deu errado|er is iets misgegaan|er is een fout opgetreden|произошла ошибка|wystąpił błąd|エラーが発生しました|发生错误|出错了'''

# API answers (2xx) whose body says the call failed: rule "api_error:NAME",
# with the field and its value as evidence. Either a JSON pointer (RFC 6901)
# and the value that means failure (a string, ignoring case; a boolean; a
# number; a list of them; or "non-empty"), or a body `pattern` (regular
# expression, ignoring case). Optional: `url` (regular expression on path
# and query) and `content_type` (text the Content-Type contains) narrow
# where a rule applies. Tried in order; giving any replaces these four.
[[failures.soft_error]]
name = "status"
pointer = "/status"
value = ["error", "fail", "failed", "failure"]

[[failures.soft_error]]
name = "result"
pointer = "/result"
value = ["error", "fail", "failed", "failure"]

[[failures.soft_error]]
name = "success"
pointer = "/success"
value = false

[[failures.soft_error]]
name = "ok"
pointer = "/ok"
value = false

# [[failures.soft_error]]                 # a site's own shape
# name = "payment_declined"
# url = '^/api/payment'
# content_type = "json"
# pointer = "/data/state"
# value = "declined"

[revenue]
# Fields (form, query, JSON at any depth) with an order's value, preferred first.
order_fields = ["order_total", "grand_total", "total", "amount", "order_value"]
# Fields with a cart's value.
cart_fields = ["cart_total", "subtotal", "cart_value", "basket_total", "total"]
# pattern = 'Order total: \$([0-9.,]+)'   # one capture group, tried on bodies
# json_path = "order.total"               # tried first on JSON bodies
# POSTs that place an order (path regex): a conversion when answered 2xx/3xx.
conversion_posts = '(?i)^/(checkout|order|orders|purchase|payment)(/(submit|place|complete|confirm|pay))?/?(\?.*)?$|^/(checkout|cart)/place-?order'
# average_order_value = 80.0              # used where no value is visible
# Funnel steps in order: how far a session got is the furthest it reached.
funnel = ["home", "search", "category", "product", "cart", "login", "checkout", "order", "confirmation"]
currency = "USD"

[privacy]
# Mask secrets in every output (--no-mask turns it off for one run):
# cookie and credential header values, the values of query, form, ;path and
# JSON parameters with secret names (also in Referer, Location and Refresh),
# card numbers anywhere. See docs/privacy.md.
mask = true
# Salt of user pseudonyms (the same salt gives the same pseudonyms).
hash_salt = ""
# Words that make a parameter or field name secret. A name is
# percent-decoded and cut into parts at _ - . [ ] and camelCase; a word of
# four letters or more matches anywhere in it (password, new_password,
# user[password], accessToken), a shorter one only as a whole part
# (api_key, apiKey, connect.sid; not monkey, inside, shipping).
secret_words = ["pass", "pwd", "token", "secret", "key", "auth", "session", "sid", "card", "cvv", "pin", "ssn", "otp"]
# More words or names masked by the same rule: add your site's own here
# (e.g. "email", "phone").
mask_params = ["sessid", "cvc", "cc", "ccnum", "iban", "signature", "sig", "credential", "totp", "mfa"]
# Key of the masks (*** and a short hash: the same value, the same mask).
# Unset, a random key is drawn for each run, so a mask cannot be checked
# against a guessed value; set, masks stay the same from run to run.
# mask_key = "a long random secret"

# [[routes]]: how URLs group into routes in pages, failures, the summary and
# the report. Without a rule, pov infers the route from the path: numbers
# become {id}, UUIDs {uuid}, hex runs {hex}, long opaque tokens {token},
# masked values {masked}; the query string is dropped. Rules come first, in
# order: `pattern` (regular expression on the path), `template` (the route;
# $1 or ${name} for the pattern's groups; unset: the inferred one) and
# `keep_query` (query parameters kept, with their values). For example:
# [[routes]]
# pattern = '^/shop/([a-z]+)/item/'
# template = '/shop/$1/item/{sku}'
# [[routes]]
# pattern = '^/search$'
# keep_query = ["sort"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_defaults_are_the_defaults() {
        let printed = PovConfig::parse(DEFAULT_TOML).unwrap();
        assert_eq!(printed, PovConfig::default());
        assert_eq!(printed.pages, pov_sessions::config::default_pages());
    }

    #[test]
    fn empty_file_and_partial_sections() {
        assert_eq!(PovConfig::parse("").unwrap(), PovConfig::default());
        // No page rule is the built-in ones; any replaces them all.
        assert_eq!(PovConfig::parse("pages = []\n").unwrap().pages.len(), 9);
        let one = PovConfig::parse("[[pages]]\nname = \"x\"\npattern = \"^/x\"\n").unwrap();
        assert_eq!(one.pages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["x"]);
        let c = PovConfig::parse("[sessions]\ntimeout_secs = 600\n").unwrap();
        assert_eq!(c.sessions.timeout_secs, 600.0);
        assert_eq!(c.sessions.page_window_secs, 10.0);
        assert_eq!(c.users, UsersConfig::default());
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let e = PovConfig::parse("[users]\ncookies = [\"sid\"]\ncookie_names = [\"x\"]\n").unwrap_err();
        assert!(e.contains("cookie_names") && e.contains("line 3"), "{e}");
        let e = PovConfig::parse("[nope]\n").unwrap_err();
        assert!(e.contains("nope") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn soft_error_rules_load_and_bad_ones_are_refused_with_their_name() {
        let c = PovConfig::parse(
            r#"
[[failures.soft_error]]
name = "declined"
url = '^/api/pay'
content_type = "json"
pointer = "/data/state"
value = "declined"

[[failures.soft_error]]
name = "code"
pointer = "/code"
value = [500, 503.5, "E500", true]

[[failures.soft_error]]
name = "problem"
pointer = "/detail"
value = "non-empty"

[[failures.soft_error]]
name = "fault"
pattern = '<fault>'
"#,
        )
        .unwrap();
        let names: Vec<&str> = c.failures.soft_error.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["declined", "code", "problem", "fault"]);
        assert_eq!(c.failures.soft_error[1].value, Some(serde_json::json!([500, 503.5, "E500", true])));
        assert_eq!(c.failures.error_json_keys, FailuresConfig::default().error_json_keys);
        let bad = |body: &str| PovConfig::parse(&format!("[[failures.soft_error]]\nname = \"x\"\n{body}")).unwrap_err();
        let e = bad("pointer = \"status\"\nvalue = \"error\"\n");
        assert!(e.contains("[[failures.soft_error]] `x`") && e.contains("must start with `/`"), "{e}");
        let e = bad("pointer = \"/a\"\nvalue = 1979-05-27\n");
        assert!(e.contains("`x`") && e.contains("`value` must be"), "{e}");
        let e = bad("pointer = \"/a\"\nvalue = { a = 1 }\n");
        assert!(e.contains("`value` must be"), "{e}");
        let e = bad("pointer = \"/a\"\n");
        assert!(e.contains("`pointer` needs a `value`"), "{e}");
        let e = bad("pattern = \"(\"\n");
        assert!(e.contains("`pattern`"), "{e}");
        let e = bad("pointer = \"/a\"\nvalue = 1\nvalues = [2]\n");
        assert!(e.contains("values") && e.contains("line 5"), "{e}");
    }

    #[test]
    fn bad_patterns_are_refused() {
        let e = PovConfig::parse("[[pages]]\nname = \"x\"\npattern = \"(\"\n").unwrap_err();
        assert!(e.contains("[[pages]] `x`"), "{e}");
        let e = PovConfig::parse("[users]\ntrusted_proxies = [\"10.0.0.0/99\"]\n").unwrap_err();
        assert!(e.contains("trusted_proxies"), "{e}");
    }
}
