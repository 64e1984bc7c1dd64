//! pov-privacy: what pov's outputs hide, decided in one place.
//!
//! # Brief overview
//!
//! Every output of pov (transaction, user, session, page, failure and
//! re-send records in every format, summary.json, report.html, HAR, the
//! HTML replay) passes what it shows of the traffic through a [`Masker`],
//! built once from [`PrivacyConfig`] (`[privacy]` of pov.toml) and cheap to
//! clone. [`Masker::off`] (`--no-mask`) lets everything through.
//!
//! What is masked (docs/privacy.md says it at length):
//! - header values of Cookie, Set-Cookie, Authorization,
//!   Proxy-Authorization and every header whose name contains token,
//!   secret, auth, key, session, csrf, xsrf or password, or is a secret
//!   name by the rule below ([`Masker::header_value`]; an Authorization
//!   keeps its scheme word, cookies their names);
//! - values of query, fragment, form and `;path` parameters, and of JSON
//!   fields, whose names are secret ([`Masker::is_secret_param`]: the
//!   name percent-decoded, cut into word parts, matched against
//!   [`SECRET_WORDS`] and `[privacy] mask_params`);
//! - the same inside URLs wherever they appear (request targets, Referer,
//!   Location, Refresh, Content-Location, Link, URLs in parameter values);
//! - card numbers (Luhn-valid, 13 to 19 digits, spaces or dashes allowed)
//!   anywhere in URLs, bodies and text;
//! - a cookie without `=` is a value, masked as one.
//!
//! A mask is `***` and six hex digits of a keyed hash (SipHash-2-4) of the
//! value: the same value gives the same mask everywhere in one run, so a
//! session can still be followed through the outputs. The key is random
//! per run unless `[privacy] mask_key` is set (see [`PrivacyConfig`]).
//! Card numbers keep their last four digits instead (`************1111`).
//!
//! ```
//! use pov_privacy::{Masker, PrivacyConfig};
//! let cfg = PrivacyConfig { mask_key: Some("doc".into()), ..PrivacyConfig::default() };
//! let m = Masker::new(&cfg, true);
//! let u = m.url("/login;jsessionid=AB12?user=ann&p%61ssword=hunter2#top");
//! assert!(u.starts_with("/login;jsessionid=***") && u.contains("&p%61ssword=***") && u.ends_with("#top"));
//! assert!(!u.contains("hunter2") && !u.contains("AB12") && u.contains("user=ann"));
//! assert_eq!(m.header_value("Authorization", b"Bearer abc"), format!("Bearer {}", m.mask(b"abc")));
//! assert_eq!(Masker::off().url("/?password=x"), "/?password=x");
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cards;
mod json;
mod key;
mod names;
mod text;
mod url;

use std::borrow::Cow;
use std::sync::Arc;

/// The secret words of parameter and field names (the default of
/// `[privacy] secret_words`).
pub const SECRET_WORDS: [&str; 13] =
    ["pass", "pwd", "token", "secret", "key", "auth", "session", "sid", "card", "cvv", "pin", "ssn", "otp"];

/// More words masked by default besides [`SECRET_WORDS`] (the default of
/// `[privacy] mask_params`, the list a site extends).
pub const DEFAULT_MASK_PARAMS: [&str; 10] =
    ["sessid", "cvc", "cc", "ccnum", "iban", "signature", "sig", "credential", "totp", "mfa"];

/// Words whose presence anywhere in a header name makes its value secret.
const HEADER_WORDS: [&str; 8] = ["token", "secret", "auth", "key", "session", "csrf", "xsrf", "password"];

/// Header names whose values are URLs.
const URL_HEADERS: [&str; 4] = ["referer", "location", "content-location", "origin"];

/// `[privacy]` of pov.toml: what outputs hide.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Mask secrets in every output (the `--no-mask` flag turns it off for
    /// one run).
    pub mask: bool,
    /// Salt of the user pseudonyms (same salt, same pseudonyms across
    /// runs). Pseudonyms are not masks: they name users, see pov-sessions.
    pub hash_salt: String,
    /// The secret words of parameter, field and header names (replacing
    /// the list replaces the built-in words).
    pub secret_words: Vec<String>,
    /// More words (or whole names) whose parameters and fields are masked,
    /// matched by the same rule: a site's extension list.
    pub mask_params: Vec<String>,
    /// The key of the masks' hash. Unset (the default), a random key is
    /// drawn for each run, so a mask tells nothing across runs (nobody
    /// can check a guessed password against a mask by hashing it). Set, the
    /// same value gives the same mask in every run, to follow a session
    /// from night to night; keep it as secret as the data.
    pub mask_key: Option<String>,
}

impl Default for PrivacyConfig {
    fn default() -> PrivacyConfig {
        PrivacyConfig {
            mask: true,
            hash_salt: String::new(),
            secret_words: SECRET_WORDS.map(String::from).to_vec(),
            mask_params: DEFAULT_MASK_PARAMS.map(String::from).to_vec(),
            mask_key: None,
        }
    }
}

/// Masks secrets in what outputs show (see the crate docs). Cloning is
/// cheap (one shared, immutable state).
#[derive(Clone, Debug)]
pub struct Masker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    on: bool,
    words: names::Words,
    key: key::Key,
    /// Whether each of [`COMMON_HEADERS`] is secret, found once by the
    /// full rule ([`Masker::is_secret_header`]).
    common: [bool; COMMON_HEADERS.len()],
}

/// Header names most requests and answers carry, lower-cased and sorted:
/// whether each is secret is found once, when a masker is made, not for
/// every header of every transaction a replay shows (the full rule took
/// 4,200 instructions a name).
const COMMON_HEADERS: [&str; 40] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "access-control-allow-origin",
    "age",
    "cache-control",
    "connection",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-security-policy",
    "content-type",
    "date",
    "dnt",
    "etag",
    "expires",
    "host",
    "if-modified-since",
    "if-none-match",
    "keep-alive",
    "last-modified",
    "pragma",
    "range",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "server",
    "strict-transport-security",
    "transfer-encoding",
    "upgrade-insecure-requests",
    "user-agent",
    "vary",
    "via",
    "x-content-type-options",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-frame-options",
    "x-requested-with",
];

impl Default for Masker {
    /// Masking with the default configuration.
    fn default() -> Masker {
        Masker::new(&PrivacyConfig::default(), true)
    }
}

/// Whether a header of this name carries a secret whatever the
/// configuration: `Cookie`, `Set-Cookie`, `Authorization`,
/// `Proxy-Authorization`, and any name containing token, secret, auth,
/// key, session, csrf, xsrf or password. (The same rule decides what
/// outputs mask and what `pov replay send` keeps back.)
pub fn is_secret_header_name(name: &str) -> bool {
    let n = trimmed_lower(name);
    matches!(&*n, "cookie" | "set-cookie" | "authorization" | "proxy-authorization")
        || HEADER_WORDS.iter().any(|w| n.contains(w))
}

/// [`Masker::is_secret_header`] by its full rule, for `name` trimmed and
/// lower-cased.
fn secret_header(words: &names::Words, name: &str) -> bool {
    is_secret_header_name(name) || words.matches(name.as_bytes())
}

/// `name` trimmed and lower-cased (ASCII), copied only when it has an
/// upper-case letter (a name asked about is often lower-cased already).
fn trimmed_lower(name: &str) -> std::borrow::Cow<'_, str> {
    let t = name.trim();
    if t.bytes().any(|b| b.is_ascii_uppercase()) { t.to_ascii_lowercase().into() } else { t.into() }
}

impl Masker {
    /// A masker for `cfg`; it masks when `enabled` (false for `--no-mask`)
    /// and `cfg.mask` are both true.
    pub fn new(cfg: &PrivacyConfig, enabled: bool) -> Masker {
        let words = names::Words::new(cfg.secret_words.iter().chain(&cfg.mask_params).map(String::as_str));
        let key = match &cfg.mask_key {
            Some(k) => key::from_text(k),
            None => key::run_key(),
        };
        let common = COMMON_HEADERS.map(|n| secret_header(&words, n));
        Masker { inner: Arc::new(Inner { on: enabled && cfg.mask, words, key, common }) }
    }

    /// A masker that masks nothing (`--no-mask`).
    pub fn off() -> Masker {
        Masker::new(&PrivacyConfig::default(), false)
    }

    /// Whether it masks.
    pub fn is_on(&self) -> bool {
        self.inner.on
    }

    /// Whether a query, form, path or JSON parameter of this name (as
    /// sent: percent-encoded, any bytes) holds a secret.
    pub fn is_secret_param(&self, name: &[u8]) -> bool {
        self.inner.words.matches(name)
    }

    fn secret_name(&self, name: &[u8]) -> bool {
        self.inner.words.matches(name)
    }

    /// Whether the values of this header are secret: by
    /// [`is_secret_header_name`], or a secret name by the parameter rule
    /// (`X-Card-Number`).
    pub fn is_secret_header(&self, name: &str) -> bool {
        let lower = trimmed_lower(name);
        match COMMON_HEADERS.binary_search(&&*lower) {
            // (The table is as long as the list.)
            Ok(i) => self.inner.common[i],
            Err(_) => secret_header(&self.inner.words, &lower),
        }
    }

    /// The mask of a secret value: `***` and a keyed hash of it (the same
    /// value, the same mask, within a run).
    pub fn mask(&self, value: &[u8]) -> String {
        self.tag(value)
    }

    fn tag(&self, value: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // `***` and the hash's top 24 bits as six hex digits.
        let h = key::siphash(self.inner.key, value) >> 40;
        let mut out = String::with_capacity(9);
        out.push_str("***");
        out.extend((0..6).rev().map(|k| char::from(HEX[(h >> (4 * k)) as usize & 15])));
        out
    }

    /// A header's value as outputs show it: cookies with their values
    /// masked, credentials with their scheme kept, other secret headers
    /// masked whole, URLs (Referer, Location, Refresh, Content-Location,
    /// Link) masked as [`Masker::url`] does, anything else as text.
    pub fn header_value(&self, name: &str, value: &[u8]) -> String {
        if !self.is_on() {
            return lossy(value);
        }
        let n = name.trim().to_ascii_lowercase();
        match n.as_str() {
            "cookie" => return self.cookie_header(value),
            "set-cookie" => return self.set_cookie(value),
            "authorization" | "proxy-authorization" | "www-authenticate" | "proxy-authenticate" => {
                return self.credentials(value);
            }
            "refresh" => return self.refresh(value),
            "link" => return self.link(value),
            n if URL_HEADERS.contains(&n) => return self.url_bytes(value),
            _ => {}
        }
        if value.iter().all(u8::is_ascii_whitespace) {
            return lossy(value);
        }
        if self.is_secret_header(&n) { self.tag(value) } else { self.text_bytes(value) }
    }

    /// `scheme credentials` with the credentials masked (a value without a
    /// scheme word is masked whole).
    fn credentials(&self, v: &[u8]) -> String {
        let t = trim(v);
        match t.iter().position(|c| *c == b' ') {
            Some(sp) if t[..sp].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')) => {
                let rest = trim(&t[sp + 1..]);
                if rest.is_empty() { lossy(t) } else { format!("{} {}", lossy(&t[..sp]), self.tag(rest)) }
            }
            _ if t.is_empty() => String::new(),
            _ => self.tag(t),
        }
    }

    /// `N; url=...`: the URL masked.
    fn refresh(&self, v: &[u8]) -> String {
        let lower = v.to_ascii_lowercase();
        match lower.windows(4).position(|w| w == b"url=") {
            Some(at) => {
                let mut out = v[..at + 4].to_vec();
                let rest = &v[at + 4..];
                // The URL may be quoted.
                let q = rest.first().filter(|c| matches!(c, b'\'' | b'"')).copied();
                let inner = match q {
                    Some(q) => {
                        out.push(q);
                        let body = &rest[1..];
                        let end = body.iter().position(|c| *c == q).unwrap_or(body.len());
                        url::url(self, &body[..end], &mut out, 0);
                        out.extend_from_slice(&body[end..]);
                        return lossy_cards(out);
                    }
                    None => rest,
                };
                url::url(self, inner, &mut out, 0);
                lossy_cards(out)
            }
            None => self.text_bytes(v),
        }
    }

    /// `<url>; rel=...`: each URL masked.
    fn link(&self, v: &[u8]) -> String {
        let mut out = Vec::with_capacity(v.len());
        let mut rest = v;
        while let Some(a) = rest.iter().position(|c| *c == b'<') {
            out.extend_from_slice(&rest[..=a]);
            let after = &rest[a + 1..];
            let end = after.iter().position(|c| *c == b'>').unwrap_or(after.len());
            url::url(self, &after[..end], &mut out, 0);
            rest = &after[end..];
        }
        out.extend_from_slice(rest);
        lossy_cards(out)
    }

    /// A `Cookie` header with every value masked (`a=***1f2e3d; b=***...`);
    /// a cookie without `=` is a bare value and is masked as one.
    pub fn cookie_header(&self, value: &[u8]) -> String {
        let mut out = String::with_capacity(value.len() + 8);
        self.push_cookie_header(value, &mut out);
        out
    }

    /// Appends [`Masker::cookie_header`]`(value)` to `out`.
    pub fn push_cookie_header(&self, value: &[u8], out: &mut String) {
        for (i, p) in cookies(value).enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            match p.iter().position(|c| *c == b'=') {
                Some(eq) => {
                    let k = trim(&p[..eq]);
                    if !k.is_empty() {
                        push_lossy(out, k);
                        out.push('=');
                    }
                    out.push_str(&self.cookie_value(trim(&p[eq + 1..])));
                }
                None => out.push_str(&self.cookie_value(p)),
            }
        }
    }

    /// The cookies of a `Cookie` header as (name, value), values masked; a
    /// cookie without `=` has an empty name and its text as value.
    pub fn cookie_pairs(&self, value: &[u8]) -> Vec<(String, String)> {
        cookies(value)
            .map(|p| match p.iter().position(|c| *c == b'=') {
                Some(eq) => (lossy(trim(&p[..eq])), self.cookie_value(trim(&p[eq + 1..]))),
                None => (String::new(), self.cookie_value(p)),
            })
            .collect()
    }

    fn cookie_value(&self, v: &[u8]) -> String {
        if self.is_on() && !v.is_empty() { self.tag(v) } else { lossy(v) }
    }

    /// A `Set-Cookie` header with its value masked and its attributes
    /// (`Path`, `Expires` ...) kept.
    pub fn set_cookie(&self, value: &[u8]) -> String {
        if !self.is_on() {
            return lossy(value);
        }
        let end = value.iter().position(|c| *c == b';').unwrap_or(value.len());
        let (k, v) = self.set_cookie_pair(value);
        let first = if k.is_empty() { v } else { format!("{k}={v}") };
        format!("{first}{}", lossy(&value[end..]))
    }

    /// The (name, value) a `Set-Cookie` header sets, the value masked (a
    /// value without `=` has an empty name).
    pub fn set_cookie_pair(&self, value: &[u8]) -> (String, String) {
        let end = value.iter().position(|c| *c == b';').unwrap_or(value.len());
        let first = trim(&value[..end]);
        match first.iter().position(|c| *c == b'=') {
            Some(eq) => (lossy(trim(&first[..eq])), self.cookie_value(trim(&first[eq + 1..]))),
            None => (String::new(), self.cookie_value(first)),
        }
    }

    /// A URL (absolute, scheme-relative, a path and query, or `?query`)
    /// with the values of its secret parameters (query, fragment,
    /// `;path`), its userinfo and the card numbers in it masked.
    pub fn url(&self, target: &str) -> String {
        self.url_bytes(target.as_bytes())
    }

    /// [`Masker::url`] of a target as sent (any bytes), as lossy text.
    pub fn url_bytes(&self, target: &[u8]) -> String {
        lossy(&self.url_raw(target))
    }

    /// [`Masker::url`] keeping the bytes as they are (for outputs that
    /// escape them their own way).
    pub fn url_raw<'a>(&self, target: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.is_on() {
            return Cow::Borrowed(target);
        }
        let mut out = Vec::new();
        self.url_raw_in(target, &mut out);
        Cow::Owned(out)
    }

    /// [`Masker::url_raw`] made in `room` (emptied first) when masking is
    /// on: no allocation once `room` is large enough.
    pub fn url_raw_in<'a>(&self, target: &'a [u8], room: &'a mut Vec<u8>) -> &'a [u8] {
        if !self.is_on() {
            return target;
        }
        room.clear();
        room.reserve(target.len() + 8);
        url::url(self, target, room, 0);
        room
    }

    /// The `name=value` pairs of a query string (or form body), values of
    /// secret names masked; names and other values as sent.
    pub fn query_pairs(&self, query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                if !self.is_on() {
                    return (k.to_string(), v.to_string());
                }
                let mut out = Vec::new();
                url::params(self, p.as_bytes(), &mut out, 0);
                let masked = lossy(&out);
                let v = masked.split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default();
                (k.to_string(), v)
            })
            .collect()
    }

    /// An `application/x-www-form-urlencoded` body with the values of its
    /// secret fields and card numbers masked.
    pub fn form(&self, body: &[u8]) -> String {
        if !self.is_on() {
            return lossy(body);
        }
        let mut out = Vec::with_capacity(body.len());
        url::params(self, body, &mut out, 0);
        lossy(&out)
    }

    /// A JSON document with the values of its secret fields replaced (the
    /// document otherwise as it was); text that is not JSON is masked as
    /// [`Masker::text`] does.
    pub fn json(&self, body: &str) -> String {
        self.body("application/json", body.as_bytes())
    }

    /// Free text with the card numbers and `name=value` / `"name": value`
    /// secrets in it masked.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if !self.is_on() || !maybe_secret(s.as_bytes()) {
            return Cow::Borrowed(s);
        }
        let out = text::text(self, s.as_bytes());
        if out == s.as_bytes() { Cow::Borrowed(s) } else { Cow::Owned(lossy(&out)) }
    }

    fn text_bytes(&self, s: &[u8]) -> String {
        if !self.is_on() || !maybe_secret(s) {
            return lossy(s);
        }
        lossy(&text::text(self, s))
    }

    /// A body as outputs show it, by its Content-Type: a form's secret
    /// fields masked, a JSON document's secret fields masked (also when it
    /// is cut short), a multipart form's secret parts masked, any other
    /// text masked as [`Masker::text`] does.
    pub fn body(&self, content_type: &str, body: &[u8]) -> String {
        if !self.is_on() {
            return lossy(body);
        }
        let ct = content_type.to_ascii_lowercase();
        if ct.contains("x-www-form-urlencoded") {
            return self.form(body);
        }
        if ct.starts_with("multipart/")
            && let Some(b) = boundary(&ct, content_type)
        {
            return self.multipart(&b, body);
        }
        let first = body.iter().find(|c| !c.is_ascii_whitespace());
        if (ct.contains("json") || matches!(first, Some(b'{' | b'[')))
            && let Some(j) = json::json(self, body)
        {
            return lossy(&j);
        }
        self.text_bytes(body)
    }

    /// A multipart body: parts named by a secret name are masked whole,
    /// the others masked as bodies of their own type.
    fn multipart(&self, boundary: &[u8], body: &[u8]) -> String {
        let mut delim = b"--".to_vec();
        delim.extend_from_slice(boundary);
        let mut out = Vec::with_capacity(body.len());
        let mut rest = body;
        let mut first = true;
        loop {
            let at = find(rest, &delim);
            let part = &rest[..at.unwrap_or(rest.len())];
            if first {
                // The preamble.
                out.extend_from_slice(part);
            } else {
                out.extend_from_slice(self.part(part).as_bytes());
            }
            let Some(at) = at else { break };
            out.extend_from_slice(&delim);
            rest = &rest[at + delim.len()..];
            first = false;
        }
        lossy(&out)
    }

    fn part(&self, part: &[u8]) -> String {
        let Some(h) = find(part, b"\r\n\r\n") else { return self.text_bytes(part) };
        let (head, body) = (&part[..h + 4], &part[h + 4..]);
        let head_text = String::from_utf8_lossy(head);
        let name = disposition_name(&head_text);
        let ct = head_text
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type")))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        // The line break before the next delimiter belongs to it.
        let (content, tail) = match body.strip_suffix(b"\r\n") {
            Some(c) => (c, &b"\r\n"[..]),
            None => (body, &b""[..]),
        };
        let masked = if name.is_some_and(|n| self.secret_name(n.as_bytes())) && !content.is_empty() {
            self.tag(content)
        } else {
            self.body(&ct, content)
        };
        format!("{}{masked}{}", self.text_bytes(head), lossy(tail))
    }
}

/// Whether text may hold something [`Masker::text`] masks (a cheap test
/// that spares most header values and names a pass): a parameter, a JSON
/// pair or an HTML attribute needs `=` or `"`, a card number a run of 13
/// digits (a User-Agent has more digits than that, never in one run).
fn maybe_secret(s: &[u8]) -> bool {
    any_byte(s, |b| (b == b'=') | (b == b'"')) || cards::may_hold(s)
}

/// Whether any byte of `s` is `hit`: sixteen bytes at a time, without a
/// branch a byte, so that the compiler vectorises the loop (a plain `any`
/// over the slice, or a fold over all of it, was not: byte by byte, the
/// tests before masking were 1.6 % of a request-heavy night's
/// instructions).
fn any_byte(s: &[u8], hit: impl Fn(u8) -> bool) -> bool {
    let mut blocks = s.chunks_exact(16);
    blocks.by_ref().any(|block| block.iter().fold(0u8, |h, b| h | u8::from(hit(*b))) != 0)
        || blocks.remainder().iter().any(|b| hit(*b))
}

/// Text of bytes, invalid UTF-8 replaced as `String::from_utf8_lossy`
/// does; valid text (nearly all of it) is checked a word at a time rather
/// than by the lossy scan's byte by byte.
fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Appends `b` to `out` as [`lossy`] text.
fn push_lossy(out: &mut String, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(b)),
    }
}

/// The cookies of a `Cookie` header: its `;`-separated pieces, trimmed,
/// empty ones left out.
fn cookies(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|c| *c == b';').map(trim).filter(|p| !p.is_empty())
}

fn lossy_cards(mut b: Vec<u8>) -> String {
    cards::mask_in_place(&mut b);
    lossy(&b)
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |e| e + 1);
    &b[s..e.max(s)]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `boundary=` parameter of a multipart Content-Type (from the
/// original, case kept).
fn boundary(lower: &str, original: &str) -> Option<Vec<u8>> {
    let at = lower.find("boundary=")? + "boundary=".len();
    let v = original.get(at..)?;
    let v = v.split(';').next()?.trim().trim_matches('"');
    (!v.is_empty()).then(|| v.as_bytes().to_vec())
}

/// The `name="..."` of a part's Content-Disposition.
fn disposition_name(head: &str) -> Option<&str> {
    let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
    let lower = line.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("name=") {
        let at = from + i;
        // `filename=` is not the field's name.
        if at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric() {
            let v = &line[at + 5..];
            return Some(match v.strip_prefix('"') {
                Some(q) => q.split('"').next().unwrap_or(""),
                None => v.split(';').next().unwrap_or("").trim(),
            });
        }
        from = at + 5;
    }
    None
}

#[cfg(test)]
mod tests;
