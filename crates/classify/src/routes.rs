//! Routes: URLs grouped into templates (`/product/{id}`,
//! `/api/stock/{id}`), so that a thousand product pages are one line of a
//! report, not a thousand.
//!
//! A route is inferred from the path, segment by segment: a number (or a
//! number and a slug, `1234-blue-widget`) becomes `{id}`, a UUID `{uuid}`, a run of hex digits (8 or more, with a digit)
//! `{hex}`, a long opaque token (a piece of 12 or more letters and digits
//! mixed, or 32 or more without a separator) `{token}`, and a value pov's
//! privacy masked (`***` and its hash) `{masked}`; in a file name, a
//! number for a stem (`1234.jpg`) becomes `{id}` and a hex piece between
//! dots (`app.3f9a8b7c.js`) `{hex}`. Words stay. The query string is
//! dropped.
//!
//! `[[routes]]` rules in pov.toml come first, in order: a rule whose
//! `pattern` (a regular expression on the path) matches gives the route
//! `template` (`$1`, `${name}` name its groups; unset: the inferred route),
//! followed by the query parameters named in `keep_query`, in that order,
//! with their values as in the URL. Routes are made from URLs as records
//! show them (masked, unless `--no-mask`), so a route never holds a secret
//! the URL hid; and a kept parameter pov masked is `{masked}`, whatever its
//! value.

use regex::Regex;
use serde::Deserialize;

/// One `[[routes]]` rule.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Regular expression on the path (no query string).
    pub pattern: String,
    /// The route of the paths it matches: text, with `$1` or `${name}` for
    /// the pattern's groups. Unset: the route pov infers.
    #[serde(default)]
    pub template: Option<String>,
    /// Query parameters kept in the route, in this order (`?sort=price`);
    /// the others are dropped.
    #[serde(default)]
    pub keep_query: Vec<String>,
}

/// The compiled rules.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    rules: Vec<(Regex, RouteRule)>,
}

impl Routes {
    /// Compiles `[[routes]]`; a bad pattern is refused with its place.
    pub fn new(rules: &[RouteRule]) -> Result<Routes, String> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let re = Regex::new(&r.pattern).map_err(|e| format!("[[routes]] #{} pattern: {e}", i + 1))?;
            out.push((re, r.clone()));
        }
        Ok(Routes { rules: out })
    }

    /// The route of a URL (path and query, as records show it). Empty for
    /// an empty URL (a failed connection attempt says no URL).
    pub fn route(&self, url: &str) -> String {
        if url.is_empty() {
            return String::new();
        }
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let path = path.split_once('#').map_or(path, |(p, _)| p);
        for (re, rule) in &self.rules {
            let Some(caps) = re.captures(path) else { continue };
            let mut route = match &rule.template {
                Some(t) => {
                    let mut s = String::new();
                    caps.expand(t, &mut s);
                    s
                }
                None => infer(path),
            };
            let mut sep = '?';
            for key in &rule.keep_query {
                for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=').or(Some((kv, "")))) {
                    if k == key && !k.is_empty() {
                        route.push(sep);
                        route.push_str(k);
                        route.push('=');
                        route.push_str(if is_masked(v) { "{masked}" } else { v });
                        sep = '&';
                    }
                }
            }
            return route;
        }
        infer(path)
    }
}

/// The route pov infers from a path (no query string).
pub fn infer(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match placeholder(seg) {
            Some(p) => out.push_str(p),
            None if seg.contains('.') => {
                // A file name: a number for a stem (`1234.jpg`), hashed
                // pieces between dots (`app.3f9a8b7c.js`).
                for (j, piece) in seg.split('.').enumerate() {
                    if j > 0 {
                        out.push('.');
                    }
                    let number = j == 0 && is_number(piece);
                    out.push_str(if number {
                        "{id}"
                    } else if is_hex(piece) {
                        "{hex}"
                    } else {
                        piece
                    });
                }
            }
            None => out.push_str(seg),
        }
    }
    out
}

/// What stands for a whole segment, if it is a value rather than a name.
fn placeholder(seg: &str) -> Option<&'static str> {
    if seg.is_empty() {
        None
    } else if is_masked(seg) {
        Some("{masked}")
    } else if is_number(seg) || is_id_slug(seg) {
        Some("{id}")
    } else if is_uuid(seg) {
        Some("{uuid}")
    } else if is_hex(seg) {
        Some("{hex}")
    } else if is_opaque(seg) {
        Some("{token}")
    } else {
        None
    }
}

/// Digits only.
fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A number, then `-` or `_` and a slug: `1234-blue-widget`.
fn is_id_slug(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(s.as_bytes().get(digits), Some(b'-' | b'_')) && s.len() > digits + 1
}

/// pov's privacy mask (`***` and a short hash), or a value cut to `***`.
fn is_masked(s: &str) -> bool {
    s.starts_with("***")
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// 8 or more hex digits, at least one a digit (words of the letters a
/// to f, `deadbeef`, stay).
fn is_hex(s: &str) -> bool {
    s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b.is_ascii_digit())
}

/// A long token: only letters, digits and `-_.~=+%`, and either a piece
/// (between `-`, `_` and `.`) of 12 or more that mixes letters and digits,
/// or 32 or more characters without a separator. Slugs of words
/// (`blue-widget-1234`, `internationalization`) stay.
fn is_opaque(s: &str) -> bool {
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~=+%".contains(&b)) {
        return false;
    }
    let mixed =
        |p: &str| p.len() >= 12 && p.bytes().any(|b| b.is_ascii_digit()) && p.bytes().any(|b| b.is_ascii_alphabetic());
    s.split(['-', '_', '.']).any(mixed) || (s.len() >= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, template: Option<&str>, keep: &[&str]) -> RouteRule {
        RouteRule {
            pattern: pattern.into(),
            template: template.map(str::to_string),
            keep_query: keep.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn values_become_placeholders_and_words_stay() {
        let r = Routes::default();
        for (url, route) in [
            ("/", "/"),
            ("/product/1234", "/product/{id}"),
            ("/product/1234-blue-widget", "/product/{id}"),
            ("/img/p/1234.jpg", "/img/p/{id}.jpg"),
            ("/product/1234?ref=home&utm_source=mail", "/product/{id}"),
            ("/api/stock/77/", "/api/stock/{id}/"),
            ("/order/550e8400-e29b-41d4-a716-446655440000/status", "/order/{uuid}/status"),
            ("/commit/3f9a8b7c1d2e", "/commit/{hex}"),
            ("/static/app.3f9a8b7c.js", "/static/app.{hex}.js"),
            ("/reset/aZ3kLmN0pQ9rStUv", "/reset/{token}"),
            ("/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig", "/t/{token}"),
            ("/invite/***a1b2c3", "/invite/{masked}"),
            // Words, slugs, versions and file names stay.
            ("/category/shoes", "/category/shoes"),
            ("/blog/blue-widget-1234", "/blog/blue-widget-1234"),
            ("/internationalization/accessibility", "/internationalization/accessibility"),
            ("/api/v2/deadbeef", "/api/v2/deadbeef"),
            ("/static/site.css", "/static/site.css"),
            ("/cafe/facade", "/cafe/facade"),
            ("/p/x12", "/p/x12"),
            ("", ""),
        ] {
            assert_eq!(r.route(url), route, "{url}");
        }
    }

    #[test]
    fn rules_come_first_with_their_groups_and_kept_query() {
        let r = Routes::new(&[
            rule(r"^/shop/([a-z]+)/item/", Some("/shop/$1/item/{sku}"), &[]),
            rule(r"^/search$", None, &["sort", "category"]),
            rule(r"^/account", Some("/account"), &["token"]),
        ])
        .unwrap();
        assert_eq!(r.route("/shop/shoes/item/AB-77"), "/shop/shoes/item/{sku}");
        // Kept in the rule's order; the rest dropped.
        assert_eq!(r.route("/search?q=red+shoes&category=men&sort=price"), "/search?sort=price&category=men");
        assert_eq!(r.route("/search?q=x"), "/search");
        // A masked value stays hidden, hash and all.
        assert_eq!(r.route("/account/settings?token=***9f8e7d"), "/account?token={masked}");
        // No rule matches: inferred.
        assert_eq!(r.route("/product/9?x=1"), "/product/{id}");
        let e = Routes::new(&[rule("(", None, &[])]).unwrap_err();
        assert!(e.contains("[[routes]] #1 pattern"), "{e}");
    }
}
