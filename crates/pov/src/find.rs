//! `pov find`: what happened to one customer, across a dataset
//! (crate::dataset), for support.
//!
//! A customer is named by any of: their pseudonym (the `user` of the
//! outputs), a raw session cookie (`sid=VALUE`) or sign-in name, hashed the
//! way the run hashed it (`[privacy] hash_salt` of pov.toml), a client
//! address, an order id or any URL substring (searched in the requests'
//! URLs, referrers and redirects), within a time range. The sessions found
//! come with their pages, their failures and the capture files (from the
//! night's manifest) that hold them, each said present or gone.
//!
//! Each night's tables are read one partition at a time, only the columns
//! a question needs; nights outside the time range are not opened.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use pov_impact::read::RowReader;
use pov_sessions::UserKey;
use serde_json::{Map, Value};

use crate::dataset::{self, Capture, Manifest};

/// Who and when to look for; every part given must hold (a session is
/// found when it matches one of the customer's names and the time range).
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// A pseudonym as the outputs show it.
    pub user: Option<String>,
    /// A session (or persistent) cookie, name and raw value.
    pub cookie: Option<(String, String)>,
    /// A raw sign-in name.
    pub login: Option<String>,
    /// A client address.
    pub client: Option<String>,
    /// Text in a request's URL, referrer or redirect (an order id, a
    /// product, a path).
    pub url: Option<String>,
    /// From (epoch seconds).
    pub from: Option<f64>,
    /// To (epoch seconds).
    pub to: Option<f64>,
}

impl Query {
    /// Whether it names the customer at all.
    pub fn names_someone(&self) -> bool {
        self.user.is_some()
            || self.cookie.is_some()
            || self.login.is_some()
            || self.client.is_some()
            || self.url.is_some()
    }
}

/// A capture file that holds part of a session, and whether it is still
/// where the run read it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HeldIn {
    /// The capture, as the manifest lists it.
    #[serde(flatten)]
    pub capture: Capture,
    /// The file is still at its path.
    pub present: bool,
}

/// One session found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FoundSession {
    /// Its night.
    pub date: String,
    /// Its probe.
    pub probe: String,
    /// Why it was found (`user`, `cookie`, `login`, `client`, `url`).
    pub matched: Vec<String>,
    /// Its record (sessions table).
    pub session: Map<String, Value>,
    /// Its page views (pages table), by time.
    pub pages: Vec<Map<String, Value>>,
    /// Its failures (failures table), by time.
    pub failures: Vec<Map<String, Value>>,
    /// The capture files holding it (by the manifest's time spans).
    pub captures: Vec<HeldIn>,
}

/// What `pov find` found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Found {
    /// The pseudonyms the query's names hash to.
    pub pseudonyms: Vec<String>,
    /// Nights searched (`date/probe`).
    pub nights: Vec<String>,
    /// The sessions, by night then start.
    pub sessions: Vec<FoundSession>,
}

fn text<'a>(row: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    row.get(k).and_then(Value::as_str)
}

fn num(row: &Map<String, Value>, k: &str) -> Option<f64> {
    row.get(k).and_then(Value::as_f64)
}

/// Every row of one table's partition, only `columns` (all when empty).
fn rows(folder: &Path, columns: &[&str]) -> io::Result<Vec<Map<String, Value>>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder) else { return Ok(out) };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet") && p.is_file())
        .collect();
    files.sort();
    for f in files {
        let mut r = RowReader::open(&f)?;
        if !columns.is_empty() {
            r = r.project(columns)?;
        }
        for row in r {
            out.push(row?);
        }
    }
    Ok(out)
}

/// The night's partition folder of `table`.
fn part(dir: &Path, table: &str, date: &str, probe: &str) -> PathBuf {
    dir.join(dataset::partition(table, date, probe))
}

/// The UTC day of a time, for choosing nights (a session that began before
/// midnight is filed under the day before: one day of slack).
fn day(secs: f64) -> String {
    dataset::date_of(secs)
}

/// Looks for the customer `q` names in the dataset `dir`; `salt` is
/// `[privacy] hash_salt`, `mask` false when the runs were `--no-mask`
/// (names are then the raw keys).
pub fn find(dir: &Path, q: &Query, salt: &str, mask: bool) -> io::Result<Found> {
    if !dataset::is_dataset(dir) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: not a pov dataset (no summary table: pov analyze --dataset)", dir.display()),
        ));
    }
    let name = |k: UserKey| if mask { k.hashed(salt) } else { k.raw() };
    let value = |k: UserKey, raw: &str| if mask { k.hashed(salt) } else { raw.to_string() };
    let mut found = Found::default();
    let mut users: BTreeSet<String> = q.user.iter().cloned().collect();
    let cookie = q.cookie.as_ref().map(|(n, v)| {
        let p = name(UserKey::Cookie(n.clone(), v.clone()));
        users.insert(p.clone());
        format!("{n}={}", value(UserKey::Cookie(n.clone(), v.clone()), v))
    });
    let login = q.login.as_ref().map(|l| value(UserKey::Login(l.clone()), l));
    found.pseudonyms = users.iter().cloned().collect();
    if let Some(l) = &login {
        found.pseudonyms.push(format!("login:{l}"));
    }
    let (lo, hi) = (q.from.map(|t| day(t - 86_400.0)), q.to.map(day));
    for (date, probe, _) in dataset::partitions(dir, dataset::SUMMARY_TABLE)? {
        if lo.as_ref().is_some_and(|l| date < *l) || hi.as_ref().is_some_and(|h| date > *h) {
            continue;
        }
        found.nights.push(format!("{date}/{probe}"));
        // Users by sign-in name.
        let mut night_users = users.clone();
        if let Some(l) = &login {
            for r in rows(&part(dir, "users", &date, &probe), &["user", "login"])? {
                if text(&r, "login") == Some(l.as_str())
                    && let Some(u) = text(&r, "user")
                {
                    night_users.insert(u.to_string());
                }
            }
        }
        // Requests that carry the cookie, the name or the text: their
        // client and time tie them to a session.
        let mut hits: Vec<(String, f64, &'static str)> = Vec::new();
        if cookie.is_some() || login.is_some() || q.url.is_some() {
            let cols = [
                "ts",
                "id.orig_h",
                "client_ip",
                "session_cookie",
                "session_set_cookie",
                "persistent_cookie",
                "login",
                "uri",
                "uri_raw",
                "referrer",
                "location",
            ];
            for r in rows(&part(dir, "transactions", &date, &probe), &cols)? {
                let why = if cookie.as_deref().is_some_and(|c| {
                    ["session_cookie", "session_set_cookie", "persistent_cookie"].iter().any(|k| text(&r, k) == Some(c))
                }) {
                    Some("cookie")
                } else if login.as_deref().is_some_and(|l| text(&r, "login") == Some(l)) {
                    Some("login")
                } else if q.url.as_deref().is_some_and(|u| {
                    ["uri", "uri_raw", "referrer", "location"]
                        .iter()
                        .any(|k| text(&r, k).is_some_and(|v| v.contains(u)))
                }) {
                    Some("url")
                } else {
                    None
                };
                if let (Some(why), Some(ts)) = (why, num(&r, "ts")) {
                    let ip = text(&r, "client_ip").or(text(&r, "id.orig_h")).unwrap_or("").to_string();
                    hits.push((ip, ts, why));
                }
            }
        }
        let mut by_page: HashSet<String> = HashSet::new();
        if let Some(u) = &q.url {
            for r in rows(&part(dir, "pages", &date, &probe), &["session", "url"])? {
                if text(&r, "url").is_some_and(|v| v.contains(u.as_str()))
                    && let Some(s) = text(&r, "session")
                {
                    by_page.insert(s.to_string());
                }
            }
        }
        let mut night: Vec<FoundSession> = Vec::new();
        for r in rows(&part(dir, "sessions", &date, &probe), &[])? {
            let (start, end) = (num(&r, "start").unwrap_or(0.0), num(&r, "end").unwrap_or(0.0));
            if q.from.is_some_and(|f| end < f) || q.to.is_some_and(|t| start > t) {
                continue;
            }
            let ip = text(&r, "client_ip").unwrap_or("");
            let mut matched: Vec<String> = Vec::new();
            if text(&r, "user").is_some_and(|u| night_users.contains(u)) {
                matched.push(
                    if q.user.is_some() {
                        "user"
                    } else if cookie.is_some() {
                        "cookie"
                    } else {
                        "login"
                    }
                    .into(),
                );
            }
            if q.client.as_deref().is_some_and(|c| c == ip) {
                matched.push("client".into());
            }
            if text(&r, "session").is_some_and(|s| by_page.contains(s)) {
                matched.push("url".into());
            }
            for (hip, ts, why) in &hits {
                if hip == ip && *ts >= start - 1.0 && *ts <= end + 1.0 && !matched.iter().any(|m| m == why) {
                    matched.push((*why).into());
                }
            }
            if matched.is_empty() {
                continue;
            }
            night.push(FoundSession {
                date: date.clone(),
                probe: probe.clone(),
                matched,
                session: r,
                pages: Vec::new(),
                failures: Vec::new(),
                captures: Vec::new(),
            });
        }
        if night.is_empty() {
            continue;
        }
        let ids: BTreeMap<String, usize> =
            night.iter().enumerate().filter_map(|(i, s)| Some((text(&s.session, "session")?.to_string(), i))).collect();
        for (table, pages) in [("pages", true), ("failures", false)] {
            for r in rows(&part(dir, table, &date, &probe), &[])? {
                if let Some(&i) = text(&r, "session").and_then(|s| ids.get(s)) {
                    let s = &mut night[i];
                    if pages { s.pages.push(r) } else { s.failures.push(r) }
                }
            }
        }
        let manifest: Option<Manifest> =
            std::fs::read(part(dir, dataset::MANIFEST_TABLE, &date, &probe).join(dataset::MANIFEST))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
        for s in &mut night {
            let by_time = |a: &Map<String, Value>, b: &Map<String, Value>| {
                num(a, "ts").unwrap_or(0.0).total_cmp(&num(b, "ts").unwrap_or(0.0))
            };
            s.pages.sort_by(by_time);
            s.failures.sort_by(by_time);
            let (start, end) = (num(&s.session, "start").unwrap_or(0.0), num(&s.session, "end").unwrap_or(0.0));
            if let Some(m) = &manifest {
                for c in &m.captures {
                    let overlaps = c.first_ts.is_some_and(|f| f <= end) && c.last_ts.is_some_and(|l| l >= start);
                    if overlaps {
                        let present = !c.path.is_empty() && Path::new(&c.path).is_file();
                        s.captures.push(HeldIn { capture: c.clone(), present });
                    }
                }
            }
        }
        night.sort_by(|a, b| {
            num(&a.session, "start").unwrap_or(0.0).total_cmp(&num(&b.session, "start").unwrap_or(0.0))
        });
        found.sessions.extend(night);
    }
    Ok(found)
}

/// A capture time as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn when(secs: f64) -> String {
    let (y, m, d, s, _) = pov_capture::Ts((secs * 1e9) as i64).civil();
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The text `pov find` prints.
pub fn write_text(f: &Found, w: &mut dyn io::Write) -> io::Result<()> {
    let users: BTreeSet<&str> = f.sessions.iter().filter_map(|s| text(&s.session, "user")).collect();
    writeln!(w, "{} sessions of {} users in {} nights searched", f.sessions.len(), users.len(), f.nights.len())?;
    for s in &f.sessions {
        let r = &s.session;
        let (start, end) = (num(r, "start").unwrap_or(0.0), num(r, "end").unwrap_or(0.0));
        writeln!(
            w,
            "\n{} {}  session {}  {} to {} UTC ({:.0} s)  client {}  found by {}",
            s.date,
            s.probe,
            text(r, "session").unwrap_or("?"),
            when(start),
            &when(end)[11..],
            end - start,
            text(r, "client_ip").unwrap_or("-"),
            s.matched.join(", ")
        )?;
        writeln!(
            w,
            "  {} pages, {} failures, converted: {}{}",
            s.pages.len(),
            s.failures.len(),
            if r.get("converted").and_then(Value::as_bool) == Some(true) { "yes" } else { "no" },
            num(r, "order_value").map(|v| format!(", orders worth {v:.2}")).unwrap_or_default()
        )?;
        for p in &s.pages {
            let failures: Vec<&str> = p
                .get("failures")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            writeln!(
                w,
                "    page {}  {}  {:>6.0} ms  {}{}",
                &when(num(p, "ts").unwrap_or(0.0))[11..],
                p.get("status").and_then(Value::as_u64).map_or("-".into(), |v| v.to_string()),
                num(p, "load_ms").unwrap_or(0.0),
                text(p, "url").unwrap_or(""),
                if failures.is_empty() { String::new() } else { format!("  [{}]", failures.join(" ")) }
            )?;
        }
        for x in &s.failures {
            writeln!(
                w,
                "    failure {}  {} ({})  {}  status {}  {}",
                &when(num(x, "ts").unwrap_or(0.0))[11..],
                text(x, "kind").unwrap_or(""),
                text(x, "severity").unwrap_or(""),
                text(x, "url").unwrap_or(""),
                x.get("status").and_then(Value::as_u64).map_or("-".into(), |v| v.to_string()),
                text(x, "detail").unwrap_or("")
            )?;
        }
        if s.captures.is_empty() {
            writeln!(w, "  captures: none listed in the night's manifest")?;
        }
        for c in &s.captures {
            writeln!(
                w,
                "  capture {} ({} to {}): {}",
                c.capture.name,
                c.capture.first_ts.map(when).unwrap_or_default(),
                c.capture.last_ts.map(|t| when(t)[11..].to_string()).unwrap_or_default(),
                if c.present {
                    format!("present at {}", c.capture.path)
                } else if c.capture.path.is_empty() {
                    "not recorded where (a run from transaction records)".into()
                } else {
                    format!("gone from {}", c.capture.path)
                }
            )?;
        }
    }
    Ok(())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time as `--from`/`--to` take it: epoch seconds, `YYYY-MM-DD` (its
/// start; its end when `end`), or `YYYY-MM-DDTHH:MM[:SS]` (UTC).
pub fn parse_time(s: &str, end: bool) -> Result<f64, String> {
    let bad = || format!("{s:?}: a time is epoch seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)");
    if let Ok(x) = s.parse::<f64>() {
        return if x.is_finite() { Ok(x) } else { Err(bad()) };
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let parts: Vec<i64> = date.split('-').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let [y, m, d] = parts[..] else { return Err(bad()) };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    let day = days_from_civil(y, m, d) as f64 * 86_400.0;
    let Some(t) = time else { return Ok(if end { day + 86_399.999_999 } else { day }) };
    let hms: Vec<i64> = t.split(':').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let (h, mi, sec) = match hms[..] {
        [h, mi] => (h, mi, 0),
        [h, mi, sec] => (h, mi, sec),
        _ => return Err(bad()),
    };
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&sec) {
        return Err(bad());
    }
    Ok(day + (h * 3600 + mi * 60 + sec) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc() {
        assert_eq!(parse_time("2026-11-02", false), Ok(1_793_577_600.0));
        assert_eq!(parse_time("2026-11-02T02:00", false), Ok(1_793_584_800.0));
        assert_eq!(parse_time("2026-11-02T02:00:05Z", false), Ok(1_793_584_805.0));
        assert_eq!(parse_time("1793584800.5", false), Ok(1_793_584_800.5));
        assert!(parse_time("2026-11-02", true).unwrap() > 1_793_663_999.0);
        for bad in ["2026-13-01", "yesterday", "2026-11", "2026-11-02T25:00", "NaN", "inf"] {
            assert!(parse_time(bad, false).is_err(), "{bad}");
        }
        assert_eq!(when(1_793_584_805.0), "2026-11-02 02:00:05");
        assert_eq!(dataset::date_of(parse_time("2024-02-29", false).unwrap()), "2024-02-29");
    }
}
