//! Robots and load generators: sessions that are not customers.
//!
//! A closed session is judged by these rules, in order; the first that
//! holds is the evidence:
//!
//! 1. `user_agent`: its User-Agent holds a crawler token (the built-in list
//!    in `data/robot_agents.txt`, plus `[robots] agents`);
//! 2. `tool_agent`: its User-Agent holds a tool token (curl, an HTTP
//!    library) and it fetched pages and nothing else;
//! 3. `identities`: many users were first seen from its address with its
//!    User-Agent around its start (a load generator rotating cookies);
//! 4. `machine_rate`: many page views (of another page each time), a
//!    median gap no person clicks at;
//! 5. `no_assets`: many pages reached by no link of the site (no Referer
//!    of the site), and not one of their assets or API calls (a person
//!    with every asset cached still follows links).

use aho_corasick::{AhoCorasick, AhoCorasickKind};

use crate::config::RobotsConfig;
use crate::sessionize::PageView;
use crate::tx::{ResourceClass, Tx};

/// The built-in robot User-Agents (see the file for its format).
pub const BUILTIN_AGENTS: &str = include_str!("../data/robot_agents.txt");

/// Why a session is a robot's.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Robot {
    /// The rule: `user_agent`, `tool_agent`, `identities`, `machine_rate`
    /// or `no_assets`.
    pub rule: String,
    /// What the session showed, in words (the token matched, the counts).
    pub evidence: String,
}

/// The `[robots]` rules, ready to judge sessions.
#[derive(Clone, Debug)]
pub struct RobotRules {
    crawlers: Tokens,
    tools: Tokens,
    cfg: RobotsConfig,
}

/// User-Agent tokens (lower case), in order, searched for all at once: a
/// User-Agent was searched for each of a hundred-odd crawler tokens in
/// turn, 16,000 instructions a session.
#[derive(Clone, Debug)]
struct Tokens {
    list: Vec<String>,
    /// Every token, to search the lower-cased User-Agent for; `None` when
    /// there are none or they cannot be built into one search.
    all: Option<AhoCorasick>,
}

impl Tokens {
    fn new(list: Vec<String>) -> Tokens {
        // A contiguous NFA: a DFA of the built-in crawler list took 1.9 M
        // instructions to build, for one search a session.
        let all = (!list.is_empty())
            .then(|| AhoCorasick::builder().kind(Some(AhoCorasickKind::ContiguousNFA)).build(&list).ok())
            .flatten();
        Tokens { list, all }
    }

    /// The first token (in list order) that `ua`, lower-cased, holds.
    fn first_in(&self, ua: &str) -> Option<&str> {
        let ua = ua.to_ascii_lowercase();
        let first = match &self.all {
            // Every match, overlapping ones too: the first token of the
            // list may match inside or after another one.
            Some(all) => all.find_overlapping_iter(&ua).map(|m| m.pattern().as_usize()).min(),
            None => self.list.iter().position(|t| ua.contains(t.as_str())),
        };
        first.and_then(|i| self.list.get(i)).map(String::as_str)
    }
}

/// The (crawler, tool) tokens of a list in the format of
/// `data/robot_agents.txt`, lower-cased.
pub fn parse_agents(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut crawlers, mut tools) = (Vec::new(), Vec::new());
    let mut tool = false;
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or("").trim();
        match l {
            "" => {}
            "[crawlers]" => tool = false,
            "[tools]" => tool = true,
            t if tool => tools.push(t.to_ascii_lowercase()),
            t => crawlers.push(t.to_ascii_lowercase()),
        }
    }
    (crawlers, tools)
}

impl RobotRules {
    /// Compiles `cfg`.
    pub fn new(cfg: &RobotsConfig) -> RobotRules {
        let (mut crawlers, mut tools) =
            if cfg.builtin_agents { parse_agents(BUILTIN_AGENTS) } else { (Vec::new(), Vec::new()) };
        let norm = |v: &[String]| -> Vec<String> {
            v.iter().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect()
        };
        crawlers.extend(norm(&cfg.agents));
        tools.extend(norm(&cfg.tool_agents));
        RobotRules { crawlers: Tokens::new(crawlers), tools: Tokens::new(tools), cfg: cfg.clone() }
    }

    /// The window of the identities rule.
    pub fn identity_window(&self) -> pov_capture::Dur {
        pov_capture::Dur((self.cfg.identity_window_secs.max(0.0) * 1e9) as i64)
    }

    /// Whether the identities rule is on.
    pub fn counts_identities(&self) -> bool {
        self.cfg.identities > 0
    }

    /// The identities rule's threshold.
    pub fn identities(&self) -> usize {
        self.cfg.identities as usize
    }

    /// The crawler token `ua` holds, if any.
    pub fn crawler_token(&self, ua: &str) -> Option<&str> {
        self.crawlers.first_in(ua)
    }

    /// The tool token `ua` holds, if any.
    pub fn tool_token(&self, ua: &str) -> Option<&str> {
        self.tools.first_in(ua)
    }

    /// Judges a session: its User-Agent, transactions (by start), page
    /// views, and whether `identities` or more users were first seen from
    /// its address with its User-Agent within one window that holds its
    /// start (`crowded`).
    pub fn judge(&self, ua: Option<&str>, txs: &[Tx], pages: &[PageView], crowded: bool) -> Option<Robot> {
        let robot = |rule: &str, evidence: String| Some(Robot { rule: rule.into(), evidence });
        let cut = |s: &str| s.chars().take(80).collect::<String>();
        if let Some(t) = ua.and_then(|u| self.crawler_token(u)) {
            return robot("user_agent", format!("User-Agent holds `{}`", cut(t)));
        }
        // Pages fetched (HTML answered 2xx, not an error page), and
        // anything else fetched.
        let good_docs = txs.iter().filter(|t| whole_page(t)).count();
        let others = txs.iter().filter(|t| t.class != ResourceClass::Document).count();
        // Of those pages, the ones no link on the site led to (a browser
        // following a link names the page it came from).
        let bare_docs = txs
            .iter()
            .filter(|t| whole_page(t) && !t.referer.as_deref().is_some_and(|r| same_site(r, t.host.as_deref())))
            .count();
        if let Some(t) = ua.and_then(|u| self.tool_token(u))
            && good_docs >= 1
            && others == 0
        {
            return robot(
                "tool_agent",
                format!("User-Agent holds `{}`; {good_docs} pages and nothing they load", cut(t)),
            );
        }
        if self.cfg.identities > 0 && crowded {
            return robot(
                "identities",
                format!(
                    "{} or more users first seen from its address with its User-Agent within {} s",
                    self.cfg.identities, self.cfg.identity_window_secs
                ),
            );
        }
        let min = self.cfg.machine_pages as usize;
        if min >= 2 {
            // Navigations: not a part of a file fetched again (206), nor
            // the same page again (a viewer reading a document in ranges,
            // a reload).
            let mut starts: Vec<pov_capture::Ts> = Vec::new();
            let mut last: Option<&str> = None;
            for p in pages.iter().filter(|p| !p.documents.is_empty() && p.status != Some(206)) {
                if last != Some(p.url.as_str()) {
                    starts.push(p.start);
                }
                last = Some(p.url.as_str());
            }
            if starts.len() >= min {
                let mut gaps: Vec<i64> = starts.windows(2).map(|w| (w[1] - w[0]).0.max(0)).collect();
                gaps.sort_unstable();
                let median = gaps.get(gaps.len() / 2).copied().unwrap_or(0) as f64 / 1e6;
                if median < self.cfg.machine_gap_ms {
                    return robot(
                        "machine_rate",
                        format!("{} page views, a median {median:.0} ms apart", starts.len()),
                    );
                }
            }
        }
        let min = self.cfg.assetless_documents as usize;
        if min > 0 && bare_docs >= min && others == 0 {
            return robot(
                "no_assets",
                format!("{bare_docs} pages reached by no link of the site, and not one asset or API call"),
            );
        }
        None
    }
}

/// A page the client got whole: an HTML document answered 2xx (not a
/// part of it: 206), complete, and not an error page (one that failed has
/// nothing to load).
fn whole_page(t: &Tx) -> bool {
    t.class == ResourceClass::Document
        && t.status.is_some_and(|s| (200..300).contains(&s) && s != 206)
        && t.outcome == pov_capture::http::Outcome::Complete
        && t.error_page.is_none()
}

/// Whether URL `r` (a Referer) is on `host`.
fn same_site(r: &str, host: Option<&str>) -> bool {
    let Some((_, rest)) = r.split_once("://") else { return false };
    let h = rest.split(['/', '?', '#']).next().unwrap_or("");
    host.is_some_and(|host| h.eq_ignore_ascii_case(host))
}

impl Default for RobotRules {
    fn default() -> RobotRules {
        RobotRules::new(&RobotsConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token found in one search is the one a search for each token
    /// in turn, over the lower-cased User-Agent, finds first: tokens inside
    /// others, overlapping, at either end, in any case, next to bytes past
    /// ASCII.
    #[test]
    fn tokens_are_found_in_list_order_as_one_by_one() {
        let one_by_one = |list: &[String], ua: &str| {
            let ua = ua.to_ascii_lowercase();
            list.iter().find(|t| ua.contains(t.as_str())).cloned()
        };
        let (crawlers, tools) = parse_agents(BUILTIN_AGENTS);
        let made = [
            vec!["robot".to_string(), "bot".into(), "ot/".into(), "é".into(), "x".into()],
            vec!["bot".to_string(), "robot".into()],
            crawlers.clone(),
            tools.clone(),
        ];
        let pieces = [
            "Mozilla/5.0 ",
            "RoBoT",
            "bOt/",
            "(compatible; ",
            "Googlebot/2.1",
            "É",
            "é",
            "curl/8",
            "python-requests",
            "Headless",
            "x",
            "Chrome/130.0 ",
            "ßot",
            "",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut checked = 0;
        for list in &made {
            let tokens = Tokens::new(list.clone());
            assert!(tokens.all.is_some());
            for _ in 0..2000 {
                let mut ua = String::new();
                for _ in 0..(seed % 5) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ua.push_str(pieces[(seed % pieces.len() as u64) as usize]);
                }
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                assert_eq!(tokens.first_in(&ua).map(str::to_string), one_by_one(list, &ua), "{ua:?}");
                checked += usize::from(one_by_one(list, &ua).is_some());
            }
        }
        assert!(checked > 2000, "{checked} User-Agents held a token");
        assert_eq!(Tokens::new(made[0].clone()).first_in("xBOTROBOT"), Some("robot"));
        assert_eq!(Tokens::new(made[1].clone()).first_in("ROBOT"), Some("bot"));
        assert_eq!(Tokens::new(Vec::new()).first_in("robot"), None);
    }

    #[test]
    fn the_builtin_list_parses_and_matches_robots_not_browsers() {
        let (crawlers, tools) = parse_agents(BUILTIN_AGENTS);
        assert!(crawlers.len() > 60 && tools.len() > 15, "{} {}", crawlers.len(), tools.len());
        assert!(crawlers.iter().chain(&tools).all(|t| !t.is_empty() && *t == t.to_ascii_lowercase()));
        let r = RobotRules::default();
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
            "k6/0.54.0 (https://k6.io/)",
            "Apache-HttpClient/4.5.14 (Java/17.0.2) JMeter",
            "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        ] {
            assert!(r.crawler_token(ua).is_some(), "{ua}");
        }
        for ua in ["curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1", "Wget/1.21.4"] {
            assert!(r.crawler_token(ua).is_none() && r.tool_token(ua).is_some(), "{ua}");
        }
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            "Mozilla/5.0 (Linux; Android 9; CUBOT X20 PRO) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
            "ShopKiosk/2.3 (embedded; pipelining)",
        ] {
            assert!(r.crawler_token(ua).is_none() && r.tool_token(ua).is_none(), "{ua}");
        }
    }

    #[test]
    fn rules_can_be_added_and_the_list_dropped() {
        let cfg =
            RobotsConfig { builtin_agents: false, agents: vec!["  AcmeMonitor ".into()], ..RobotsConfig::default() };
        let r = RobotRules::new(&cfg);
        assert_eq!(r.crawler_token("acmemonitor/1.0"), Some("acmemonitor"));
        assert_eq!(r.crawler_token("Googlebot/2.1"), None);
    }
}
