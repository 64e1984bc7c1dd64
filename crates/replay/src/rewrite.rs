//! Making a captured HTML page safe to show offline: no script, no network.
//!
//! A small tag scanner (not a full HTML parser: it only needs to find tags,
//! attributes and the raw-text elements) copies the page through, dropping
//! scripts, event handlers, refreshes and prefetches, and hands every URL the
//! page would load to a [`Resolver`], which substitutes what the capture
//! holds (a marker the replay page later turns into a `data:` URL) or
//! nothing. Links lose their targets, so a click goes nowhere.
//!
//! Pages and style sheets are input anyone can shape, so the rewriting is
//! one pass, linear in its input: every byte is looked at a bounded number
//! of times (a search that fails consumes what it searched), and resolving
//! relative URLs, whose cost grows with the base URL, stops after
//! [`RESOLVE_PER_BYTE`] bytes of work per input byte (plus
//! [`RESOLVE_ALLOWANCE`]); past that, URLs show as not captured.

/// Bytes of URL resolving allowed per byte of the page or sheet rewritten.
/// Resolving `x.png` against a base of length B costs B: a long base and
/// many short relative URLs would otherwise cost their product.
pub const RESOLVE_PER_BYTE: usize = 16;

/// Bytes of URL resolving allowed to every page or sheet on top of
/// [`RESOLVE_PER_BYTE`], for small pages with many URLs.
pub const RESOLVE_ALLOWANCE: usize = 64 << 10;

#[cfg(test)]
thread_local! {
    /// Bytes the rewriting on this thread has examined (tests prove it
    /// linear with this).
    static EXAMINED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` bytes examined (in tests; nothing otherwise).
#[inline]
fn examined(n: usize) {
    #[cfg(test)]
    EXAMINED.with(|c| c.set(c.get() + n as u64));
    #[cfg(not(test))]
    let _ = n;
}

/// What a URL in a page is loaded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// An image, font or other media, shown inline.
    Media,
    /// A style sheet, inlined as a `<style>` element.
    Style,
}

/// Finds the captured copy of what a page loads.
pub trait Resolver {
    /// The replacement for `url` (absolute, fragment removed), or `None`
    /// when the capture does not hold it.
    fn resolve(&mut self, url: &str, how: Use) -> Option<String>;
}

/// An image that stands for one the capture does not hold (a grey box):
/// nothing is fetched from the network.
pub const MISSING_IMAGE: &str = "data:image/svg+xml,%3Csvg%20xmlns='http://www.w3.org/2000/svg'%20width='24'%20height='24'%3E%3Crect%20width='24'%20height='24'%20fill='%23ddd'/%3E%3C/svg%3E";

/// `url` made absolute against `base` (an absolute `http://` or `https://`
/// URL), with its fragment removed; `None` for URLs that load nothing
/// (`#x`, `javascript:`, `data:`, `mailto:` ...). Linear in the lengths of
/// both.
pub fn resolve_url(base: &str, url: &str) -> Option<String> {
    examined(base.len() + url.len());
    let url = decode_entities(url.trim());
    let url = url.split('#').next().unwrap_or("");
    if url.is_empty() {
        return None;
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Some(normalize(url));
    }
    if let Some(colon) = lower.find(':') {
        // Another scheme (data:, javascript:, mailto:, tel: ...).
        if lower[..colon].chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !lower[..colon].contains('/')
        {
            return None;
        }
    }
    let (scheme, rest) = base.split_once("://")?;
    if let Some(r) = url.strip_prefix("//") {
        return Some(normalize(&format!("{scheme}://{r}")));
    }
    let host_end = rest.find('/').unwrap_or(rest.len());
    let origin = &base[..scheme.len() + 3 + host_end];
    let base_path = &rest[host_end..];
    let base_path = base_path.split('?').next().unwrap_or("");
    let joined = if url.starts_with('/') {
        url.to_string()
    } else if url.starts_with('?') {
        format!("{}{url}", if base_path.is_empty() { "/" } else { base_path })
    } else {
        let dir = &base_path[..base_path.rfind('/').map(|i| i + 1).unwrap_or(0)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{dir}{url}")
    };
    Some(normalize(&format!("{origin}{joined}")))
}

/// Removes `.` and `..` path segments.
fn normalize(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    let (host, path_query) = rest.split_at(host_end);
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let mut segs: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, s) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *s {
            "." => {
                if last {
                    segs.push("");
                }
            }
            ".." => {
                segs.pop();
                if last {
                    segs.push("");
                }
            }
            s => segs.push(s),
        }
    }
    let mut out = format!("{}://{}/{}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), segs.join("/"));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The few character references that occur in URLs.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&amp;", "&").replace("&#38;", "&").replace("&quot;", "\"").replace("&#39;", "'")
}

// ---------------------------------------------------------------------------
// Scanning: every search starts where the last one ended, and a search that
// fails ends the rewriting or consumes what it searched.

/// Whether `b[at..]` starts with `needle` (ASCII, any case).
fn starts_ci(b: &[u8], at: usize, needle: &[u8]) -> bool {
    let Some(hay) = b.get(at..) else { return false };
    // The bytes compared: up to the first that differs.
    let same = hay.iter().zip(needle).take_while(|(h, n)| h.eq_ignore_ascii_case(n)).count();
    examined((same + 1).min(needle.len()));
    same == needle.len()
}

/// The first `x` in `b` at or after `from`.
fn find_byte(b: &[u8], from: usize, x: u8) -> Option<usize> {
    let hay = b.get(from..)?;
    let hit = hay.iter().position(|&c| c == x);
    examined(hit.map_or(hay.len(), |p| p + 1));
    hit.map(|p| from + p)
}

/// The first `needle` (ASCII, any case; at least one byte) in `b` at or
/// after `from`: each position compares at most `needle.len()` bytes.
fn find_ci(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = needle.first()?;
    let mut i = from;
    while i < b.len() {
        examined(1);
        if b[i].eq_ignore_ascii_case(first) && starts_ci(b, i, needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `v`, first blanks aside, starts with `data:` (any case).
fn is_data_url(v: &str) -> bool {
    let v = v.trim_start();
    starts_ci(v.as_bytes(), 0, b"data:")
}

struct Attr<'a> {
    name: &'a str,
    /// `name`, lower-cased once.
    lname: String,
    value: Option<String>,
}

/// The tag starting at `s[0] == '<'`: name, attributes, self-closing, and
/// its length; `None` when no `>` ends it. Each byte is looked at once.
fn parse_tag(s: &str) -> Option<(&str, Vec<Attr<'_>>, bool, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
    let done = |i: usize| examined(i.min(b.len()));
    let name_start = i;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let name = &s[name_start..i];
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            self_closing = b[i] == b'/';
            i += 1;
        }
        if i >= b.len() {
            done(i);
            return None;
        }
        if b[i] == b'>' {
            done(i + 1);
            return Some((name, attrs, self_closing, i + 1));
        }
        self_closing = false;
        let a = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'>' && b[i] != b'/' {
            i += 1;
        }
        let aname = &s[a..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = None;
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let v = i + 1;
                let Some(end) = b[v..].iter().position(|c| *c == q).map(|p| v + p) else {
                    done(b.len());
                    return None;
                };
                value = Some(s[v..end].to_string());
                i = end + 1;
            } else {
                let v = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = Some(s[v..i].to_string());
            }
        }
        if !aname.is_empty() {
            attrs.push(Attr { name: aname, lname: aname.to_ascii_lowercase(), value });
        }
    }
}

fn write_tag(out: &mut String, name: &str, attrs: &[Attr<'_>], self_closing: bool) {
    out.push('<');
    out.push_str(name);
    for a in attrs {
        out.push(' ');
        out.push_str(a.name);
        if let Some(v) = &a.value {
            out.push_str("=\"");
            // `<` and `>` as references too (the same value once decoded):
            // a captured value holding `<script>` then reads as no markup
            // to anything that looks at the page, not only to browsers.
            for c in v.chars() {
                match c {
                    '"' => out.push_str("&quot;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
    }
    if self_closing {
        out.push_str(" /");
    }
    out.push('>');
}

fn attr(attrs: &[Attr<'_>], name: &str) -> Option<String> {
    examined(attrs.len());
    attrs.iter().find(|a| a.lname == name).map(|a| a.value.clone().unwrap_or_default())
}

fn set(attrs: &mut [Attr<'_>], name: &str, value: String) {
    examined(attrs.len());
    if let Some(a) = attrs.iter_mut().find(|a| a.lname == name) {
        a.value = Some(value);
    }
}

// ---------------------------------------------------------------------------
// Rewriting

/// One page's or sheet's rewriting: the resolver and what is left of the
/// URL-resolving allowance.
struct Rewriter<'r> {
    r: &'r mut dyn Resolver,
    budget: usize,
}

impl<'r> Rewriter<'r> {
    fn new(r: &'r mut dyn Resolver, input_len: usize) -> Self {
        Rewriter { r, budget: input_len.saturating_mul(RESOLVE_PER_BYTE).saturating_add(RESOLVE_ALLOWANCE) }
    }

    /// [`resolve_url`] within the allowance; `None` once it is spent.
    fn resolve_url(&mut self, base: &str, url: &str) -> Option<String> {
        let cost = base.len().saturating_add(url.len());
        self.budget = self.budget.checked_sub(cost)?;
        resolve_url(base, url)
    }

    /// Copies a style sheet (or a `style` attribute) to `out` in one pass:
    /// `url(...)` becomes the captured copy or nothing, `@import` goes (to
    /// its `;`). An unclosed `url(` ends the sheet.
    fn css(&mut self, out: &mut String, css: &str, base: &str) {
        let b = css.as_bytes();
        // `css[copied..i]` is waiting to be copied as is.
        let (mut copied, mut i) = (0, 0);
        while i < b.len() {
            examined(1);
            match b[i] {
                b'u' | b'U' if starts_ci(b, i, b"url(") => {
                    out.push_str(&css[copied..i]);
                    let inner = i + 4;
                    let Some(close) = find_byte(b, inner, b')') else {
                        return;
                    };
                    let raw = css[inner..close].trim().trim_matches(|c| c == '"' || c == '\'');
                    let sub = if starts_ci(raw.as_bytes(), 0, b"data:") {
                        raw.to_string()
                    } else {
                        self.resolve_url(base, raw).and_then(|abs| self.r.resolve(&abs, Use::Media)).unwrap_or_default()
                    };
                    out.push_str("url('");
                    out.push_str(&sub.replace('\'', "%27"));
                    out.push_str("')");
                    i = close + 1;
                    copied = i;
                }
                b'@' if starts_ci(b, i, b"@import") => {
                    out.push_str(&css[copied..i]);
                    i = find_byte(b, i, b';').map_or(b.len(), |e| e + 1);
                    copied = i;
                }
                _ => i += 1,
            }
        }
        out.push_str(&css[copied..]);
    }

    /// Points media attributes at the captured copy, or at
    /// [`MISSING_IMAGE`].
    fn media_attr(&mut self, attrs: &mut [Attr<'_>], names: &[&str], base: &str) {
        for a in attrs.iter_mut() {
            if !names.contains(&a.lname.as_str()) {
                continue;
            }
            let Some(v) = a.value.as_deref() else { continue };
            if is_data_url(v) {
                continue;
            }
            let sub = self.resolve_url(base, v).and_then(|u| self.r.resolve(&u, Use::Media));
            a.value = Some(sub.unwrap_or_else(|| MISSING_IMAGE.to_string()));
        }
    }
}

/// Rewrites a style sheet (or a `style` attribute): `url(...)` becomes the
/// captured copy or nothing, `@import` goes. One pass, linear in `css`.
pub fn rewrite_css(css: &str, base: &str, r: &mut dyn Resolver) -> String {
    let mut out = String::with_capacity(css.len());
    Rewriter::new(r, css.len()).css(&mut out, css, base);
    out
}

/// Rewrites a captured HTML page (served from `page_url`) so that it shows
/// what the capture holds and loads nothing else. One pass, linear in
/// `html`.
pub fn rewrite_html(html: &str, page_url: &str, r: &mut dyn Resolver) -> String {
    let mut w = Rewriter::new(r, html.len());
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() + 256);
    let mut base = page_url.to_string();
    let mut i = 0;
    while i < html.len() {
        let Some(lt) = find_byte(b, i, b'<') else {
            out.push_str(&html[i..]);
            break;
        };
        out.push_str(&html[i..lt]);
        let rest = &html[lt..];
        if starts_ci(b, lt, b"<!--") {
            // From the `<`, as ever: `<!-->` is a whole comment.
            i = find_ci(b, lt, b"-->").map_or(html.len(), |e| e + 3);
            continue;
        }
        let next = b.get(lt + 1).copied().unwrap_or(b' ');
        if next == b'!' || next == b'?' || next == b'/' {
            let end = find_byte(b, lt, b'>').map_or(html.len(), |e| e + 1);
            out.push_str(&html[lt..end]);
            i = end;
            continue;
        }
        if !next.is_ascii_alphabetic() {
            out.push('<');
            i = lt + 1;
            continue;
        }
        let Some((name, mut attrs, self_closing, len)) = parse_tag(rest) else {
            // An unfinished tag at the end of a cut-short page.
            break;
        };
        i = lt + len;
        let lname = name.to_ascii_lowercase();
        // Raw-text elements: their content is not markup. Where the closing
        // tag starts and ends; the rest of the page when there is none.
        let raw_end = |from: usize, tag: &str| -> (usize, usize) {
            let close = format!("</{tag}");
            match find_ci(b, from, close.as_bytes()) {
                Some(c) => (c, find_byte(b, c, b'>').map_or(html.len(), |e| e + 1)),
                None => (html.len(), html.len()),
            }
        };
        // Event handlers never run; drop them anyway.
        attrs.retain(|a| !a.lname.starts_with("on"));
        for a in attrs.iter_mut() {
            if a.lname == "style"
                && let Some(v) = &a.value
            {
                let mut css = String::with_capacity(v.len());
                w.css(&mut css, v, &base);
                a.value = Some(css);
            }
        }
        match lname.as_str() {
            "script" => {
                let (_, end) = raw_end(i, "script");
                i = end;
            }
            "style" => {
                let (close, end) = raw_end(i, "style");
                write_tag(&mut out, name, &attrs, false);
                w.css(&mut out, &html[i..close], &base);
                out.push_str("</style>");
                i = end;
            }
            "textarea" | "title" | "xmp" => {
                let (close, end) = raw_end(i, &lname);
                write_tag(&mut out, name, &attrs, false);
                out.push_str(&html[i..close]);
                out.push_str(&html[close..end]);
                i = end;
            }
            "base" => {
                if let Some(h) = attr(&attrs, "href").and_then(|h| w.resolve_url(&base, &h)) {
                    base = h;
                }
            }
            "meta" if attr(&attrs, "http-equiv").is_some() => {}
            "link" => {
                let rel = attr(&attrs, "rel").unwrap_or_default().to_ascii_lowercase();
                examined(rel.len());
                let href = attr(&attrs, "href").and_then(|h| w.resolve_url(&base, &h));
                if rel.split_ascii_whitespace().any(|x| x == "stylesheet") {
                    if let Some(css) = href.and_then(|h| w.r.resolve(&h, Use::Style)) {
                        out.push_str("<style>");
                        out.push_str(&css);
                        out.push_str("</style>");
                    }
                } else if rel.split_ascii_whitespace().any(|x| x == "icon")
                    && let Some(m) = href.and_then(|h| w.r.resolve(&h, Use::Media))
                {
                    set(&mut attrs, "href", m);
                    write_tag(&mut out, name, &attrs, self_closing);
                }
            }
            "img" | "input" | "image" => {
                attrs.retain(|a| !matches!(a.lname.as_str(), "srcset" | "sizes"));
                w.media_attr(&mut attrs, &["src", "href", "xlink:href"], &base);
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "video" | "audio" => {
                attrs.retain(|a| a.lname != "src");
                w.media_attr(&mut attrs, &["poster"], &base);
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "source" | "track" | "iframe" | "frame" | "embed" | "object" | "use" => {
                attrs.retain(|a| {
                    !matches!(a.lname.as_str(), "src" | "srcset" | "data" | "href" | "xlink:href")
                        || a.value.as_deref().is_some_and(|v| v.starts_with('#'))
                });
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "a" | "area" => {
                for a in attrs.iter_mut() {
                    if a.lname == "href" {
                        a.name = "data-pov-href";
                    }
                }
                attrs.push(Attr { name: "href", lname: "href".into(), value: Some("#".into()) });
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "form" => {
                attrs.retain(|a| a.lname != "action");
                write_tag(&mut out, name, &attrs, self_closing);
            }
            _ => {
                w.media_attr(&mut attrs, &["background"], &base);
                write_tag(&mut out, name, &attrs, self_closing);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<(String, Use)>);

    impl Resolver for Fake {
        fn resolve(&mut self, url: &str, how: Use) -> Option<String> {
            self.0.push((url.to_string(), how));
            if url.contains("missing") {
                return None;
            }
            Some(match how {
                Use::Media => format!("R[{url}]"),
                Use::Style => format!("/*CSS {url}*/"),
            })
        }
    }

    #[test]
    fn markup_inside_attribute_values_is_written_as_references() {
        // Found by the replay fuzz target: a quoted value running over
        // what looks like a <script> element kept it as raw text.
        let page = r#"<img alt="a <textarea><script>x()</script> b" src="/a.png"><p title='1 > 0'>t</p>"#;
        let out = rewrite_html(page, "http://shop.example.com/", &mut Fake(Vec::new()));
        assert!(!out.to_ascii_lowercase().contains("<script"), "{out}");
        assert!(out.contains(r#"alt="a &lt;textarea&gt;&lt;script&gt;x()&lt;/script&gt; b""#), "{out}");
        // Written again, the value stays the same references.
        let again = rewrite_html(&out, "http://shop.example.com/", &mut Fake(Vec::new()));
        assert!(again.contains(r#"alt="a &lt;textarea&gt;&lt;script&gt;x()&lt;/script&gt; b""#), "{again}");
    }

    #[test]
    fn urls_resolve_against_the_page() {
        let b = "http://shop.example.com/c/shoes/list.html?x=1";
        assert_eq!(resolve_url(b, "/img/a.png").unwrap(), "http://shop.example.com/img/a.png");
        assert_eq!(resolve_url(b, "a.png").unwrap(), "http://shop.example.com/c/shoes/a.png");
        assert_eq!(resolve_url(b, "../a.png#top").unwrap(), "http://shop.example.com/c/a.png");
        assert_eq!(resolve_url(b, "./../../../a.png").unwrap(), "http://shop.example.com/a.png");
        assert_eq!(resolve_url(b, "?page=2").unwrap(), "http://shop.example.com/c/shoes/list.html?page=2");
        assert_eq!(resolve_url(b, "//cdn.example.com/x.css").unwrap(), "http://cdn.example.com/x.css");
        assert_eq!(resolve_url(b, "HTTP://Shop.Example.com/A").unwrap(), "http://shop.example.com/A");
        assert_eq!(resolve_url(b, "/q?a=1&amp;b=2").unwrap(), "http://shop.example.com/q?a=1&b=2");
        assert_eq!(resolve_url("http://h", "x").unwrap(), "http://h/x");
        for none in ["#top", "javascript:void(0)", "data:image/png;base64,AA", "mailto:a@b", ""] {
            assert_eq!(resolve_url(b, none), None, "{none}");
        }
    }

    #[test]
    fn scripts_handlers_and_network_go_and_captured_resources_come_in() {
        let page = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/x">
<title>a <b> title</title><!-- <img src="/comment.png"> -->
<link rel="stylesheet" href="/static/site.css"><link rel=preload href="/font.woff2">
<link rel="stylesheet" href="/missing.css"><script src="/app.js"></script><SCRIPT>document.write("<img src=/x.png>")</SCRIPT>
<style>body{background:url('/img/bg.png')} @import "/more.css"; p{color:red}</style></head>
<body onload="go()"><img src="/img/logo.png" srcset="/img/logo@2x.png 2x" alt="Shop"><img src='missing.png'>
<a href="/cart" onclick="x()">Cart</a><div style="background: url(/img/tile.png)">x</div>
<iframe src="http://ads.example.net/"></iframe><form action="/login" method="post"><input name=q></form>
<p>We're sorry, something went wrong</p></body></html>"#;
        let mut f = Fake(Vec::new());
        let out = rewrite_html(page, "http://shop.example.com/", &mut f);
        for gone in [
            "<script",
            "<SCRIPT",
            "document.write",
            "onload",
            "onclick",
            "refresh",
            "preload",
            "@import",
            "srcset",
            "ads.example.net",
            "action=",
            "comment.png",
        ] {
            assert!(!out.contains(gone), "{gone} still in {out}");
        }
        for kept in [
            "<style>/*CSS http://shop.example.com/static/site.css*/</style>",
            "url('R[http://shop.example.com/img/bg.png]')",
            "p{color:red}",
            "<img src=\"R[http://shop.example.com/img/logo.png]\" alt=\"Shop\">",
            &format!("<img src=\"{MISSING_IMAGE}\">"),
            "<a data-pov-href=\"/cart\" href=\"#\">Cart</a>",
            "url('R[http://shop.example.com/img/tile.png]')",
            "<title>a <b> title</title>",
            "<meta charset=\"utf-8\">",
            "<iframe></iframe>",
            "<p>We're sorry, something went wrong</p>",
        ] {
            assert!(out.contains(kept), "{kept} not in {out}");
        }
        // The missing style sheet leaves nothing behind.
        assert!(!out.contains("missing.css"));
        let asked: Vec<&str> = f.0.iter().map(|(u, _)| u.as_str()).collect();
        assert!(asked.contains(&"http://shop.example.com/missing.css"));
        assert!(!asked.iter().any(|u| u.contains("app.js") || u.contains("font.woff2")));
    }

    #[test]
    fn any_text_rewrites_without_panic() {
        // Captured pages are input: cut anywhere, in any encoding. Pieces
        // of markup shuffled by a small generator (xorshift), 2,000 times.
        let parts = [
            "<",
            ">",
            "</",
            "<script>",
            "</script>",
            "<SCRIPT src=x>",
            "<img src=\"",
            "\"",
            "'",
            "=",
            " ",
            "<style>",
            "</style>",
            "url(",
            ")",
            "@import ",
            "<!--",
            "-->",
            "<a href=",
            "é",
            "\u{1F600}",
            "<link rel=stylesheet href=",
            "<base href=",
            "<meta http-equiv=refresh>",
            "onload=",
            "<textarea>",
            "</textarea",
            "&amp;",
            "\0",
            "x",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut page = String::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                page.push_str(parts[(x % parts.len() as u64) as usize]);
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let out = rewrite_html(&page, "http://h/a/b", &mut Fake(Vec::new()));
            // Nothing grows out of proportion (each URL becomes a marker
            // or the grey box, each link gains `href="#"`).
            assert!(out.len() <= page.len() * 8 + 64, "{page:?} -> {out:?}");
        }
    }

    #[test]
    fn a_base_element_moves_resolution_and_cut_pages_end_cleanly() {
        let mut f = Fake(Vec::new());
        let out = rewrite_html(
            "<head><base href=\"http://cdn.example.com/v2/\"></head><img src=\"a.png\"><img src=\"b",
            "http://shop.example.com/",
            &mut f,
        );
        assert_eq!(out, "<head></head><img src=\"R[http://cdn.example.com/v2/a.png]\">");
        // An unclosed script swallows the rest, as a browser would.
        assert_eq!(rewrite_html("<p>a</p><script>x", "http://h/", &mut f), "<p>a</p>");
        assert_eq!(rewrite_html("1 < 2 <3", "http://h/", &mut f), "1 < 2 <3");
    }

    /// Rewrites `input` as a page (or, with `sheet`, as a style sheet) and
    /// returns the bytes the rewriter examined per input byte.
    fn cost(input: &str, sheet: bool) -> f64 {
        /// Answers with a short marker, as the HTML replay's resolver does.
        struct Marker;
        impl Resolver for Marker {
            fn resolve(&mut self, _: &str, _: Use) -> Option<String> {
                Some("m".into())
            }
        }
        EXAMINED.with(|c| c.set(0));
        let mut f = Marker;
        let out = if sheet {
            rewrite_css(input, "http://h/a/b.css", &mut f)
        } else {
            rewrite_html(input, "http://h/a/b.html", &mut f)
        };
        // The output stays in proportion too: `<img src=x>` (11 bytes)
        // becomes the grey box (about 190).
        assert!(out.len() <= input.len() * 20 + 64, "{} -> {}", input.len(), out.len());
        EXAMINED.with(|c| c.get()) as f64 / input.len() as f64
    }

    #[test]
    fn rewriting_is_linear_in_the_input() {
        let n = 40_000;
        let rep = |s: &str| s.repeat(n);
        let sheet_40k = rep("a{background:url(i.png)}");
        let shapes: Vec<(&str, String, bool)> = vec![
            ("a sheet of 40,000 url(", sheet_40k.clone(), true),
            ("40,000 url( in a <style>", format!("<style>{sheet_40k}</style>"), false),
            ("40,000 url( in a style attribute", format!("<div style=\"{sheet_40k}\">x</div>"), false),
            ("40,000 @import before a url(", format!("{}url(a)", rep("@import x;")), true),
            ("40,000 unterminated url(", rep("url("), true),
            ("40,000 unterminated @import", rep("@import "), true),
            ("unterminated strings and comments", format!("{}url(a)", rep("a{b:\"/*'")), true),
            ("40,000 < without >", rep("<"), false),
            ("40,000 <a without >", rep("<a"), false),
            ("40,000 <a x=\" without >", rep("<a x=\""), false),
            ("a huge attribute list", format!("<a {}>", rep("x=1 y z='2' ")), false),
            ("40,000 tags with attributes", rep("<img src=i.png alt=x onload=y style=\"color:red\">"), false),
            ("40,000 <!-- unterminated", rep("<!--"), false),
            ("40,000 <! unterminated", rep("<!x"), false),
            ("40,000 </ unterminated", rep("</"), false),
            ("40,000 <![CDATA[ unterminated", rep("<![CDATA["), false),
            ("40,000 <script> unterminated", rep("<script>"), false),
            ("40,000 <title> and </titl", rep("<title></titl"), false),
            ("40,000 <style> unterminated", rep("<style>url(a)"), false),
            ("40,000 links", rep("<link rel=\"stylesheet icon\" href=a.css>"), false),
            ("40,000 srcset", rep("<img srcset=\"a 1x, b 2x\" sizes=100vw src=a>"), false),
            ("40,000 <base> each moving the base", rep("<base href=a/>"), false),
            (
                "a long base and 40,000 relative images",
                format!("<base href=\"http://h/{}\">{}", rep("a/"), rep("<img src=x>")),
                false,
            ),
        ];
        let mut worst = Vec::new();
        for (what, input, sheet) in &shapes {
            let c = cost(input, *sheet);
            worst.push(format!("{what}: {c:.1} bytes examined per input byte"));
            // At most a few looks at each byte, plus the resolving allowed.
            assert!(c <= 8.0 + RESOLVE_PER_BYTE as f64, "{}", worst.join("\n"));
        }
        eprintln!("{}", worst.join("\n"));
    }
}
