//! A transaction as the user-level stages need it: small, owned, without
//! bodies (what the bodies say is read once, when it is built).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use pov_capture::http::{FrameSpan, HttpTransaction, Outcome};
use pov_capture::{Dur, Ts};

use crate::config::{Cidr, RevenueConfig, UsersConfig};
use crate::values;

/// What a request fetched, from its response type, Accept header and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceClass {
    /// An HTML document (a page view starts here).
    Document,
    /// A JSON/XML API call or a form post answered with data.
    Api,
    /// A style sheet.
    Style,
    /// A script.
    Script,
    /// An image.
    Image,
    /// A web font.
    Font,
    /// Audio or video.
    Media,
    /// Anything else.
    Other,
}

impl ResourceClass {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceClass::Document => "document",
            ResourceClass::Api => "api",
            ResourceClass::Style => "style",
            ResourceClass::Script => "script",
            ResourceClass::Image => "image",
            ResourceClass::Font => "font",
            ResourceClass::Media => "media",
            ResourceClass::Other => "other",
        }
    }

    /// Classifies a transaction.
    pub fn of(
        method: Option<&str>,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        status: Option<u16>,
    ) -> ResourceClass {
        let mut room = [0u8; 64];
        let ct = content_type.map(|c| lower(c.split(';').next().unwrap_or("").trim(), &mut room));
        // Without the request, only the answer's type can tell; a page view
        // is never started on a guess.
        if method.is_none() {
            return match ct.as_deref().and_then(by_content_type) {
                Some(ResourceClass::Document) | None => ResourceClass::Other,
                Some(c) => c,
            };
        }
        // A navigation asks for HTML first: a page view, whatever came back
        // (a JSON error shown in the window is still what the user saw).
        let accept = accept.map(str::trim_start);
        let asks = |prefix: &str| accept.is_some_and(|a| starts_ci(a, prefix));
        if asks("text/html") || asks("application/xhtml") {
            return ResourceClass::Document;
        }
        // A redirect's or error's body type says little: decide those by
        // what was asked for.
        let answered_content = status.is_some_and(|s| (200..300).contains(&s) && s != 204);
        if let (Some(ct), true) = (ct.as_deref(), answered_content)
            && let Some(c) = by_content_type(ct)
        {
            return c;
        }
        if asks("application/json") || asks("application/xml") {
            return ResourceClass::Api;
        }
        if asks("text/css") {
            return ResourceClass::Style;
        }
        if asks("image/") {
            return ResourceClass::Image;
        }
        if let Some(c) = by_extension(path) {
            return c;
        }
        if let Some(c) = ct.as_deref().and_then(by_content_type) {
            return c;
        }
        if method.is_some_and(|m| m != "GET" && m != "HEAD") || path.starts_with("/api/") {
            return ResourceClass::Api;
        }
        ResourceClass::Document
    }

    /// A failure of this class goes unnoticed by most users (broken
    /// images): counted, but minor.
    pub fn minor_by_default(self) -> bool {
        matches!(self, ResourceClass::Image | ResourceClass::Media)
    }
}

/// Whether `s` starts with `prefix` (lowercase ASCII), in any case.
fn starts_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes().get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `s` with its ASCII letters lowercased: in `room` when it fits (the
/// usual media type or extension), else on the heap.
fn lower<'r>(s: &str, room: &'r mut [u8; 64]) -> Cow<'r, str> {
    match room.get_mut(..s.len()) {
        Some(r) => {
            r.copy_from_slice(s.as_bytes());
            r.make_ascii_lowercase();
            // Lowercasing ASCII letters keeps UTF-8 valid.
            match std::str::from_utf8(r) {
                Ok(t) => Cow::Borrowed(t),
                Err(_) => Cow::Owned(s.to_ascii_lowercase()),
            }
        }
        None => Cow::Owned(s.to_ascii_lowercase()),
    }
}

fn by_content_type(ct: &str) -> Option<ResourceClass> {
    Some(match ct {
        "text/html" | "application/xhtml+xml" => ResourceClass::Document,
        "application/json" | "text/json" | "application/xml" | "text/xml" | "text/plain" => ResourceClass::Api,
        "text/css" => ResourceClass::Style,
        "application/javascript" | "text/javascript" | "application/x-javascript" | "application/ecmascript" => {
            ResourceClass::Script
        }
        c if c.starts_with("image/") => ResourceClass::Image,
        c if c.starts_with("font/") || c.starts_with("application/font") || c == "application/vnd.ms-fontobject" => {
            ResourceClass::Font
        }
        c if c.starts_with("audio/") || c.starts_with("video/") => ResourceClass::Media,
        c if c.ends_with("+json") => ResourceClass::Api,
        _ => return None,
    })
}

fn by_extension(path: &str) -> Option<ResourceClass> {
    let p = path.split(['?', '#', ';']).next().unwrap_or("");
    let last = p.rsplit('/').next().unwrap_or("");
    let mut room = [0u8; 64];
    let ext = lower(last.rsplit_once('.')?.1, &mut room);
    Some(match &*ext {
        "html" | "htm" | "php" | "asp" | "aspx" | "jsp" | "cfm" | "shtml" => ResourceClass::Document,
        "css" => ResourceClass::Style,
        "js" | "mjs" => ResourceClass::Script,
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "avif" | "svg" | "ico" | "bmp" => ResourceClass::Image,
        "woff" | "woff2" | "ttf" | "otf" | "eot" => ResourceClass::Font,
        "mp4" | "webm" | "mp3" | "m4a" | "ogg" | "m3u8" | "ts" => ResourceClass::Media,
        "json" | "xml" => ResourceClass::Api,
        _ => return None,
    })
}

/// One transaction, reduced to what users, sessions, pages and failures
/// need.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Tx {
    /// Connection id.
    pub conn: u64,
    /// Position in the connection, from 1.
    pub depth: u32,
    /// Client socket (the TCP peer).
    pub client: SocketAddr,
    /// The client's address after trusted `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// Server socket.
    pub server: SocketAddr,
    /// Request start (response start when the request is not in the
    /// capture).
    pub start: Ts,
    /// Request's last byte.
    pub req_end: Option<Ts>,
    /// The last time the client sent the request again before the answer
    /// began (the server may have had it only from then).
    pub req_resent: Option<Ts>,
    /// Response's first byte.
    pub resp_start: Option<Ts>,
    /// Response's last byte.
    pub resp_end: Option<Ts>,
    /// Method (`None`: the request is not in the capture).
    pub method: Option<String>,
    /// Host header.
    pub host: Option<String>,
    /// Request target as sent (path and query), lossy UTF-8.
    pub target: String,
    /// Referer header.
    pub referer: Option<String>,
    /// User-Agent header. Read by the sessionizer to tell the user; no
    /// longer set in a [`crate::Session`]'s transactions.
    pub user_agent: Option<String>,
    /// Final status (`None`: no response, or its head is not in the capture).
    pub status: Option<u16>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// For a client abort or no response: how long the client waited.
    pub waited: Option<Dur>,
    /// The connection's handshake (SYN to its last ACK), on a connection's
    /// first request when the capture saw it: the connection began that
    /// long before the request.
    pub handshake: Option<Dur>,
    /// What it fetched.
    pub class: ResourceClass,
    /// Frames of the request.
    pub req_frames: Option<FrameSpan>,
    /// Frames of the response.
    pub resp_frames: Option<FrameSpan>,
    /// Bytes missing from the capture.
    pub missing_bytes: u64,
    /// Response body bytes (decoded).
    pub response_body_len: u64,
    /// What the request says of who sent it (cookies, identity header,
    /// query id), when it says anything. Read by the sessionizer to tell
    /// the user; no longer set in a [`crate::Session`]'s transactions.
    /// Read it with [`Tx::evidence`].
    #[serde(default)]
    pub evidence: Option<Box<Evidence>>,
    /// A sign-in name from a configured login field of the request body.
    pub login: Option<String>,
    /// An order value read from the request (or its response).
    pub order_value: Option<f64>,
    /// A cart value read from the response (or the request).
    pub cart_value: Option<f64>,
    /// The rule a (2xx) response body matched, with its evidence: an error
    /// page, or a JSON answer that says the call failed. Set by the
    /// classifier when the transaction is built.
    pub error_page: Option<ErrorBody>,
}

/// What a request says of who sent it, read by the sessionizer and then
/// let go. Boxed in a [`Tx`], and only when there is any: its five fields
/// would otherwise be 216 of a held transaction's bytes, every one of them
/// empty once the sessionizer has read them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// The first configured session cookie the request carries.
    pub cookie: Option<(String, String)>,
    /// The first configured session cookie the response sets.
    pub set_cookie: Option<(String, String)>,
    /// The configured identity header's value.
    pub header_id: Option<String>,
    /// A session id from a configured query parameter.
    pub query_id: Option<(String, String)>,
    /// The first persistent non-session cookie the request carries (an
    /// analytics or device id: `[users] persistent_cookies`).
    #[serde(default)]
    pub persistent: Option<(String, String)>,
}

/// The evidence of a transaction that has none.
static NO_EVIDENCE: Evidence =
    Evidence { cookie: None, set_cookie: None, header_id: None, query_id: None, persistent: None };

impl Evidence {
    /// It says nothing.
    pub fn is_empty(&self) -> bool {
        self == &NO_EVIDENCE
    }

    /// Boxed for a [`Tx`], unless it says nothing.
    pub fn boxed(self) -> Option<Box<Evidence>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    /// Bytes its strings hold.
    fn heap_bytes(&self) -> usize {
        let pair = |p: &Option<(String, String)>| p.as_ref().map_or(0, |(a, b)| a.capacity() + b.capacity());
        pair(&self.cookie)
            + pair(&self.set_cookie)
            + self.header_id.as_ref().map_or(0, String::capacity)
            + pair(&self.query_id)
            + pair(&self.persistent)
    }
}

/// A 2xx answer whose body says it failed: the rule that decided and what
/// the body shows. Read once, when the transaction is reduced (bodies are
/// not kept after that).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The rule (`error_page:NAME` for an error page, `api_error:NAME` for
    /// an API answer that says the call failed).
    pub rule: String,
    /// The evidence, short: the field and its value (`"status": "error"`)
    /// or the text matched; empty when the rule's name says it all.
    pub evidence: String,
}

impl ErrorBody {
    /// A rule without evidence of its own.
    pub fn rule(rule: impl Into<String>) -> ErrorBody {
        ErrorBody { rule: rule.into(), evidence: String::new() }
    }

    /// Heap bytes held (for memory accounting).
    pub fn capacity(&self) -> usize {
        self.rule.capacity() + self.evidence.capacity()
    }
}

impl Tx {
    /// Heap bytes its strings and its boxed evidence hold (for memory
    /// accounting; the record itself is `size_of::<Tx>()`).
    pub fn heap_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        self.target.capacity()
            + opt(&self.method)
            + opt(&self.host)
            + opt(&self.referer)
            + opt(&self.user_agent)
            + opt(&self.location)
            + opt(&self.login)
            + self.evidence.as_ref().map_or(0, |e| std::mem::size_of::<Evidence>() + e.heap_bytes())
            + self.error_page.as_ref().map_or(0, ErrorBody::capacity)
    }

    /// Reduces `t`, reading identity and money as `users` and `revenue`
    /// say. `proxies` are the parsed `users.trusted_proxies`, `rx` the
    /// compiled `revenue` rules ([`values::Extractor::new`], made once: its
    /// pattern is a regular expression).
    pub fn from_http(
        t: &HttpTransaction,
        users: &UsersConfig,
        proxies: &[Cidr],
        revenue: &RevenueConfig,
        rx: &values::Extractor,
    ) -> Tx {
        let req = t.request.as_ref();
        let resp = t.response.as_ref();
        let target = req.map(|r| pov_capture::text::lossy(&r.uri).into_owned()).unwrap_or_default();
        let path = target.split(['?', '#']).next().unwrap_or("");
        let accept = req.and_then(|r| r.headers.text_ref("accept"));
        let content_type = resp.and_then(|r| r.headers.text_ref("content-type"));
        let status = resp.map(|r| r.status).filter(|s| *s != 0);
        let method = req.map(|r| r.method.clone());
        let class = ResourceClass::of(method.as_deref(), path, accept.as_deref(), content_type.as_deref(), status);

        // The Cookie header, parsed once for the session cookie and the
        // persistent one.
        let jar = req.map(|r| r.headers.cookies()).unwrap_or_default();
        let cookie = users
            .cookies
            .iter()
            .find_map(|name| jar.iter().find(|(k, v)| k == name && !v.is_empty()))
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let set_cookie = resp.and_then(|r| {
            let set = r.headers.set_cookies();
            users.cookies.iter().find_map(|name| {
                set.iter()
                    .find(|(k, v)| k == name && !v.is_empty() && v != "deleted")
                    .map(|(k, v)| (k.clone(), v.clone()))
            })
        });
        let header_id = if users.header.is_empty() {
            None
        } else {
            req.and_then(|r| r.headers.text(&users.header)).filter(|v| !v.trim().is_empty())
        };
        let query_id = values::query_param(&target, &users.query_params);

        let client_ip = match req {
            Some(r) if !proxies.is_empty() && proxies.iter().any(|c| c.contains(t.client.ip())) => {
                forwarded_client(&r.x_forwarded_for(), proxies).unwrap_or(t.client.ip())
            }
            _ => t.client.ip(),
        };

        let req_ct = req.and_then(|r| r.headers.text_ref("content-type"));
        let req_body = &t.request_body.kept;
        let resp_body = &t.response_body.kept;
        let is_post = method.as_deref().is_some_and(|m| m != "GET" && m != "HEAD");
        let login = if is_post {
            values::field_text(req_body, req_ct.as_deref(), &users.login_fields).filter(|v| !v.is_empty())
        } else {
            None
        };
        // Each body's JSON is parsed once for the order's and the cart's
        // fields.
        let (req_doc, resp_doc) =
            (values::Body::new(req_body, req_ct.as_deref()), values::Body::new(resp_body, content_type.as_deref()));
        let order_value = if is_post {
            rx.value_in(&req_doc, &revenue.order_fields).or_else(|| rx.value_in(&resp_doc, &revenue.order_fields))
        } else {
            None
        };
        let cart_value = rx
            .value_in(&resp_doc, &revenue.cart_fields)
            .or_else(|| if is_post { rx.value_in(&req_doc, &revenue.cart_fields) } else { None });

        Tx {
            conn: t.conn,
            depth: t.depth,
            client: t.client,
            client_ip,
            server: t.server,
            start: t.timing.start(),
            req_end: t.timing.req_end,
            req_resent: t.timing.req_resent,
            resp_start: t.timing.resp_start,
            resp_end: t.timing.resp_end,
            method,
            host: req.and_then(|r| r.host()),
            target,
            referer: req.and_then(|r| r.referer()),
            user_agent: req.and_then(|r| r.user_agent()),
            status,
            location: resp.and_then(|r| r.headers.text("location")),
            outcome: t.outcome,
            waited: t.waited,
            handshake: if t.depth == 1 { t.timing.handshake_rtt } else { None },
            class,
            req_frames: t.req_frames,
            resp_frames: t.resp_frames,
            missing_bytes: t.missing_bytes,
            response_body_len: t.response_body.decoded_len,
            evidence: Evidence { cookie, set_cookie, header_id, query_id, persistent: users.persistent_in(&jar) }
                .boxed(),
            login,
            order_value,
            cart_value,
            error_page: None,
        }
    }

    /// What the request says of who sent it (nothing, when it has none).
    pub fn evidence(&self) -> &Evidence {
        self.evidence.as_deref().unwrap_or(&NO_EVIDENCE)
    }

    /// Takes its session cookie (name, value) out of its evidence, which
    /// is let go if nothing else is left in it.
    pub fn take_cookie(&mut self) -> Option<(String, String)> {
        let ev = self.evidence.as_deref_mut()?;
        let cookie = ev.cookie.take();
        if ev.is_empty() {
            self.evidence = None;
        }
        cookie
    }

    /// Its evidence, to be changed (made, empty, when it has none).
    pub fn evidence_mut(&mut self) -> &mut Evidence {
        self.evidence.get_or_insert_with(Box::default)
    }

    /// A hand-made transaction for tests and examples: a GET of `target`
    /// from `client` on connection `conn`, `ms` milliseconds after a fixed
    /// epoch, answered 200 20 ms later and done 10 ms after that.
    pub fn sample(conn: u64, client: SocketAddr, ms: i64, target: &str) -> Tx {
        let start = Ts(1_700_000_000_000_000_000 + ms * 1_000_000);
        Tx {
            conn,
            depth: 1,
            client,
            client_ip: client.ip(),
            server: SocketAddr::from(([192, 0, 2, 10], 80)),
            start,
            req_end: Some(start),
            req_resent: None,
            resp_start: Some(start + Dur::from_millis(20)),
            resp_end: Some(start + Dur::from_millis(30)),
            method: Some("GET".into()),
            host: Some("shop.example".into()),
            target: target.into(),
            referer: None,
            user_agent: Some("UA-1".into()),
            status: Some(200),
            location: None,
            outcome: Outcome::Complete,
            waited: None,
            handshake: None,
            class: ResourceClass::Document,
            req_frames: None,
            resp_frames: None,
            missing_bytes: 0,
            response_body_len: 100,
            evidence: None,
            login: None,
            order_value: None,
            cart_value: None,
            error_page: None,
        }
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }

    /// When the transaction ended as far as the capture shows.
    pub fn end(&self) -> Ts {
        self.resp_end.or(self.resp_start).or(self.req_end).unwrap_or(self.start).max(self.start)
    }

    /// Request start to response end (the time the user waited for it).
    pub fn duration(&self) -> Option<Dur> {
        Some(self.resp_end? - self.start)
    }

    /// Request end to response start (server time).
    pub fn ttfb(&self) -> Option<Dur> {
        Some(self.resp_start? - self.req_end?)
    }

    /// When the server surely had the whole request: its last byte, or
    /// the last time it was sent again before the answer began.
    pub fn request_arrived(&self) -> Option<Ts> {
        let end = self.req_end?;
        Some(match (self.req_resent, self.resp_start) {
            (Some(r), Some(a)) if r > end && r <= a => r,
            _ => end,
        })
    }

    /// The server's share of the wait: from [`Tx::request_arrived`] to the
    /// answer's first byte. Time the request spent being sent again is the
    /// network's.
    pub fn server_time(&self) -> Option<Dur> {
        Some(self.resp_start? - self.request_arrived()?)
    }

    /// `http://host/target`, as a Referer would name this request.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.host.as_deref().unwrap_or(""), self.target)
    }

    /// Whether the capture lost bytes of this transaction.
    pub fn capture_loss(&self) -> bool {
        self.missing_bytes > 0 || self.outcome == Outcome::CaptureGap
    }
}

/// The client in an `X-Forwarded-For` chain: the rightmost address that is
/// not a trusted proxy (the ones left of it could be forged by the client).
fn forwarded_client(chain: &[String], proxies: &[Cidr]) -> Option<IpAddr> {
    let mut found = None;
    for a in chain.iter().rev() {
        let ip: IpAddr = a.trim().trim_start_matches('[').split(']').next()?.parse().ok()?;
        found = Some(ip);
        if !proxies.iter().any(|c| c.contains(ip)) {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        use ResourceClass::*;
        let c = |m: &str, p: &str, a: Option<&str>, ct: Option<&str>, s: Option<u16>| {
            ResourceClass::of(Some(m), p, a, ct, s)
        };
        assert_eq!(c("GET", "/", None, Some("text/html; charset=utf-8"), Some(200)), Document);
        assert_eq!(c("GET", "/api/cart", None, Some("application/json"), Some(200)), Api);
        assert_eq!(c("GET", "/x.css", None, None, None), Style);
        assert_eq!(c("GET", "/img/a.jpg", Some("image/avif,*/*"), Some("text/html"), Some(404)), Image);
        // A navigation answered with JSON is still a page view.
        assert_eq!(
            c("GET", "/p/9", Some("text/html,application/xhtml+xml"), Some("application/json"), Some(200)),
            Document
        );
        // A page that failed still is a page (asked for as HTML).
        assert_eq!(
            c("GET", "/product/7", Some("text/html,application/xhtml+xml"), Some("text/html"), Some(500)),
            Document
        );
        assert_eq!(c("GET", "/product/7", None, None, None), Document);
        assert_eq!(c("POST", "/cart/add", Some("application/json, */*"), None, None), Api);
        // A form post answered with a redirect to a page is a navigation.
        assert_eq!(c("POST", "/checkout/submit", None, Some("text/html"), Some(302)), Document);
        assert_eq!(c("GET", "/static/font.woff2", Some("*/*"), Some("font/woff2"), Some(200)), Font);
        // No request in the capture: never a new page view on a guess.
        assert_eq!(ResourceClass::of(None, "", None, None, Some(304)), Other);
        assert_eq!(ResourceClass::of(None, "", None, Some("text/html"), Some(200)), Other);
        // Types, asks and extensions in any case; a type longer than the
        // room on the stack, and one not ASCII, as well.
        assert_eq!(c("GET", "/a", Some("  TEXT/HTML,*/*"), None, None), Document);
        assert_eq!(c("GET", "/a", None, Some("Application/JSON; charset=UTF-8"), Some(200)), Api);
        assert_eq!(c("GET", "/IMG/A.PNG", None, None, None), Image);
        let long = format!("application/vnd.{}+json", "x".repeat(80));
        assert_eq!(c("GET", "/a", None, Some(&long.to_uppercase()), Some(200)), Api);
        assert_eq!(c("GET", "/a.Ĵs", None, Some("tëxt/css"), Some(200)), Document);
        assert_eq!(c("GET", "/a", Some("Image/webp"), None, None), Image);
    }

    #[test]
    fn evidence_is_boxed_only_when_the_request_has_some() {
        use pov_capture::http::{Headers, HttpTransaction, RequestHead};
        let (client, server) = ("10.0.0.1:1000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
        let with = |fields: &[(&str, &str)]| {
            let mut t = HttpTransaction::new(7, client, server, 1);
            t.request = Some(RequestHead {
                method: "GET".into(),
                uri: b"/cart".to_vec(),
                version: Some(1),
                headers: Headers::from_pairs(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))),
            });
            let revenue = crate::RevenueConfig::default();
            Tx::from_http(&t, &UsersConfig::default(), &[], &revenue, &values::Extractor::new(&revenue))
        };
        let bare = with(&[("Host", "shop.example"), ("Cookie", "theme=dark")]);
        assert!(bare.evidence.is_none(), "{:?}", bare.evidence);
        assert_eq!(bare.evidence(), &Evidence::default());
        let named = with(&[("Host", "shop.example"), ("Cookie", "theme=dark; sid=abc")]);
        let ev = named.evidence.as_deref().expect("a session cookie is evidence");
        assert_eq!(ev.cookie, Some(("sid".into(), "abc".into())));
        assert_eq!(named.evidence().cookie, ev.cookie);
        // The box and its strings are reckoned with the rest.
        let boxed = std::mem::size_of::<Evidence>() + "sid".len() + "abc".len();
        assert!(named.heap_bytes() >= bare.heap_bytes() + boxed, "{} {}", named.heap_bytes(), bare.heap_bytes());
        // Held, a transaction carries a pointer, not the room for what it
        // says of its sender (it was 736 bytes on 64-bit targets).
        assert!(
            std::mem::size_of::<Tx>() <= 736 - std::mem::size_of::<Evidence>() + 8,
            "{}",
            std::mem::size_of::<Tx>()
        );
        // The cookie taken out (as the sessionizer does): evidence with
        // nothing else in it is let go; with more, the rest stays.
        let mut only = named.clone();
        assert_eq!(only.take_cookie(), Some(("sid".into(), "abc".into())));
        assert!(only.evidence.is_none());
        assert_eq!(only.take_cookie(), None);
        let mut more = with(&[("Host", "shop.example"), ("Cookie", "sid=abc"), ("X-Forwarded-For", "1.2.3.4")]);
        more.evidence_mut().header_id = Some("u-7".into());
        assert_eq!(more.take_cookie(), Some(("sid".into(), "abc".into())));
        assert_eq!(more.evidence().header_id.as_deref(), Some("u-7"));
        assert_eq!(more.evidence().cookie, None);
        let mut bare = bare;
        assert_eq!(bare.take_cookie(), None);
    }

    #[test]
    fn forwarded_for_takes_the_last_untrusted_hop() {
        let proxies = [Cidr::parse("10.0.0.0/8").unwrap()];
        let chain: Vec<String> = ["1.2.3.4", "203.0.113.9", "10.0.0.5"].map(String::from).to_vec();
        assert_eq!(forwarded_client(&chain, &proxies), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(forwarded_client(&[], &proxies), None);
    }
}
