//! Making a captured HTML page safe to show offline: no script, no network.
//!
//! A small tag scanner (not a full HTML parser: it only needs to find tags,
//! attributes and the raw-text elements) copies the page through, dropping
//! scripts, event handlers, refreshes and prefetches, and hands every URL the
//! page would load to a [`Resolver`], which substitutes what the capture
//! holds (a marker the replay page later turns into a `data:` URL) or
//! nothing. Links lose their targets, so a click goes nowhere.

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
/// (`#x`, `javascript:`, `data:`, `mailto:` ...).
pub fn resolve_url(base: &str, url: &str) -> Option<String> {
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

struct Attr<'a> {
    name: &'a str,
    value: Option<String>,
}

impl Attr<'_> {
    fn lname(&self) -> String {
        self.name.to_ascii_lowercase()
    }
}

/// The tag starting at `s[0] == '<'`: name, attributes, self-closing, and
/// its length; `None` when no `>` ends it.
fn parse_tag(s: &str) -> Option<(&str, Vec<Attr<'_>>, bool, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
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
            return None;
        }
        if b[i] == b'>' {
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
                let end = v + b[v..].iter().position(|c| *c == q)?;
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
            attrs.push(Attr { name: aname, value });
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
            out.push_str(&v.replace('"', "&quot;"));
            out.push('"');
        }
    }
    if self_closing {
        out.push_str(" /");
    }
    out.push('>');
}

/// Case-insensitive search for `needle` (ASCII) in `hay` from `from`.
fn find_ci(hay: &str, from: usize, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    (from..h.len().saturating_sub(n.len() - 1)).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Rewrites a style sheet (or a `style` attribute): `url(...)` becomes the
/// captured copy or nothing, `@import` goes.
pub fn rewrite_css(css: &str, base: &str, r: &mut dyn Resolver) -> String {
    let mut out = String::with_capacity(css.len());
    let mut i = 0;
    while i < css.len() {
        let next_url = find_ci(css, i, "url(");
        let next_import = find_ci(css, i, "@import");
        match (next_url, next_import) {
            (_, Some(imp)) if next_url.is_none_or(|u| imp < u) => {
                out.push_str(&css[i..imp]);
                i = css[imp..].find(';').map(|e| imp + e + 1).unwrap_or(css.len());
            }
            (Some(u), _) => {
                out.push_str(&css[i..u]);
                let inner_start = u + 4;
                let Some(close) = css[inner_start..].find(')') else {
                    break;
                };
                let raw = css[inner_start..inner_start + close].trim().trim_matches(|c| c == '"' || c == '\'');
                let sub = if raw.to_ascii_lowercase().starts_with("data:") {
                    raw.to_string()
                } else {
                    resolve_url(base, raw).and_then(|abs| r.resolve(&abs, Use::Media)).unwrap_or_default()
                };
                out.push_str("url('");
                out.push_str(&sub.replace('\'', "%27"));
                out.push_str("')");
                i = inner_start + close + 1;
            }
            _ => {
                out.push_str(&css[i..]);
                break;
            }
        }
    }
    out
}

/// Rewrites a captured HTML page (served from `page_url`) so that it shows
/// what the capture holds and loads nothing else.
pub fn rewrite_html(html: &str, page_url: &str, r: &mut dyn Resolver) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut base = page_url.to_string();
    let mut i = 0;
    while i < html.len() {
        let Some(lt) = html[i..].find('<').map(|x| x + i) else {
            out.push_str(&html[i..]);
            break;
        };
        out.push_str(&html[i..lt]);
        let rest = &html[lt..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map(|e| lt + e + 3).unwrap_or(html.len());
            continue;
        }
        let next = rest.as_bytes().get(1).copied().unwrap_or(b' ');
        if next == b'!' || next == b'?' || next == b'/' {
            let end = rest.find('>').map(|e| lt + e + 1).unwrap_or(html.len());
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
        // Raw-text elements: their content is not markup.
        let raw_end = |from: usize, tag: &str| -> (usize, usize) {
            match find_ci(html, from, &format!("</{tag}")) {
                Some(c) => (c, html[c..].find('>').map(|e| c + e + 1).unwrap_or(html.len())),
                None => (html.len(), html.len()),
            }
        };
        // Event handlers never run; drop them anyway.
        attrs.retain(|a| !a.lname().starts_with("on"));
        for a in attrs.iter_mut() {
            if a.lname() == "style"
                && let Some(v) = &a.value
            {
                a.value = Some(rewrite_css(v, &base, r));
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
                out.push_str(&rewrite_css(&html[i..close], &base, r));
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
                if let Some(h) = attr(&attrs, "href").and_then(|h| resolve_url(&base, &h)) {
                    base = h;
                }
            }
            "meta" if attr(&attrs, "http-equiv").is_some() => {}
            "link" => {
                let rel = attr(&attrs, "rel").unwrap_or_default().to_ascii_lowercase();
                let href = attr(&attrs, "href").and_then(|h| resolve_url(&base, &h));
                if rel.split_ascii_whitespace().any(|x| x == "stylesheet") {
                    if let Some(css) = href.and_then(|h| r.resolve(&h, Use::Style)) {
                        out.push_str("<style>");
                        out.push_str(&css);
                        out.push_str("</style>");
                    }
                } else if rel.split_ascii_whitespace().any(|x| x == "icon")
                    && let Some(m) = href.and_then(|h| r.resolve(&h, Use::Media))
                {
                    set(&mut attrs, "href", m);
                    write_tag(&mut out, name, &attrs, self_closing);
                }
            }
            "img" | "input" | "image" => {
                attrs.retain(|a| !matches!(a.lname().as_str(), "srcset" | "sizes"));
                media_attr(&mut attrs, &["src", "href", "xlink:href"], &base, r);
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "video" | "audio" => {
                attrs.retain(|a| a.lname() != "src");
                media_attr(&mut attrs, &["poster"], &base, r);
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "source" | "track" | "iframe" | "frame" | "embed" | "object" | "use" => {
                attrs.retain(|a| {
                    let n = a.lname();
                    !matches!(n.as_str(), "src" | "srcset" | "data" | "href" | "xlink:href")
                        || a.value.as_deref().is_some_and(|v| v.starts_with('#'))
                });
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "a" | "area" => {
                for a in attrs.iter_mut() {
                    if a.lname() == "href" {
                        a.name = "data-pov-href";
                    }
                }
                attrs.push(Attr { name: "href", value: Some("#".into()) });
                write_tag(&mut out, name, &attrs, self_closing);
            }
            "form" => {
                attrs.retain(|a| a.lname() != "action");
                write_tag(&mut out, name, &attrs, self_closing);
            }
            _ => {
                media_attr(&mut attrs, &["background"], &base, r);
                write_tag(&mut out, name, &attrs, self_closing);
            }
        }
    }
    out
}

fn attr(attrs: &[Attr<'_>], name: &str) -> Option<String> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name)).map(|a| a.value.clone().unwrap_or_default())
}

fn set(attrs: &mut [Attr<'_>], name: &str, value: String) {
    if let Some(a) = attrs.iter_mut().find(|a| a.name.eq_ignore_ascii_case(name)) {
        a.value = Some(value);
    }
}

/// Points media attributes at the captured copy, or at [`MISSING_IMAGE`].
fn media_attr(attrs: &mut [Attr<'_>], names: &[&str], base: &str, r: &mut dyn Resolver) {
    for a in attrs.iter_mut() {
        let n = a.lname();
        if !names.contains(&n.as_str()) {
            continue;
        }
        let Some(v) = a.value.as_deref() else { continue };
        if v.trim_start().to_ascii_lowercase().starts_with("data:") {
            continue;
        }
        let sub = resolve_url(base, v).and_then(|u| r.resolve(&u, Use::Media));
        a.value = Some(sub.unwrap_or_else(|| MISSING_IMAGE.to_string()));
    }
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
}
