//! The answer key: what really happened, per user, connection and
//! transaction, and in total. Documented field by field in docs/synth.md.

use std::collections::BTreeMap;

use crate::http::Framing;
use crate::site::ResourceKind;
use crate::tcp::DirTruth;

/// Kinds of application failure the generator injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// 5xx response.
    ServerError,
    /// 404 response.
    NotFound,
    /// Error page (or JSON error) served with 200 OK.
    ErrorPage,
    /// Response took 5 s or more to start.
    Slow,
    /// Server reset the connection mid-response.
    ServerReset,
    /// Fewer body bytes than Content-Length, then the server closed.
    Truncated,
    /// No response; the client gave up waiting.
    NoResponse,
    /// The user left while the response was loading.
    ClientAbort,
    /// Connection refused (SYN answered by RST).
    Refused,
    /// Connection attempt never answered.
    Unanswered,
    /// An API call answered 200 whose JSON body says the call failed
    /// (`{"status":"error"}`, `{"success":false}`, GraphQL's `errors` ...;
    /// the transaction's `error_field` names the field).
    SoftError,
}

impl FailureKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FailureKind; 11] = [
        FailureKind::ServerError,
        FailureKind::NotFound,
        FailureKind::ErrorPage,
        FailureKind::Slow,
        FailureKind::ServerReset,
        FailureKind::Truncated,
        FailureKind::NoResponse,
        FailureKind::ClientAbort,
        FailureKind::Refused,
        FailureKind::Unanswered,
        FailureKind::SoftError,
    ];

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ServerError => "server_error",
            FailureKind::NotFound => "not_found",
            FailureKind::ErrorPage => "error_page",
            FailureKind::Slow => "slow",
            FailureKind::ServerReset => "server_reset",
            FailureKind::Truncated => "truncated",
            FailureKind::NoResponse => "no_response",
            FailureKind::ClientAbort => "client_abort",
            FailureKind::Refused => "refused",
            FailureKind::Unanswered => "unanswered",
            FailureKind::SoftError => "soft_error",
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole response reached the client.
    Complete,
    /// The server reset the connection before the response was complete.
    ServerReset,
    /// The server closed after fewer bytes than announced.
    Truncated,
    /// No response at all.
    NoResponse,
    /// The client closed or reset before the response was complete.
    ClientAbort,
}

/// A step of the shop's funnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Home page.
    Home,
    /// Category listing.
    Category,
    /// Product page.
    Product,
    /// Cart page.
    Cart,
    /// Sign-in page.
    Login,
    /// Checkout page.
    Checkout,
    /// Order submission (POST).
    OrderSubmit,
    /// Order confirmation (the conversion).
    Confirmation,
}

/// A user's reaction to a failure they noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    /// Reloaded the page.
    Retry,
    /// Went on with the visit.
    CarryOn,
    /// Left the site.
    GiveUp,
}

/// One request and what became of it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TxTruth {
    /// Position in its connection, from 1 (Zeek's `trans_depth`).
    pub index: u32,
    /// Page view (index in the user's `pages`) the request belongs to.
    pub page: u32,
    /// Method.
    pub method: String,
    /// Host header.
    pub host: String,
    /// Request target as sent.
    pub uri: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Referer header, if sent.
    pub referrer: Option<String>,
    /// What the resource is.
    pub kind: ResourceKind,
    /// Whether a failure of it is noticed by the user.
    pub important: bool,
    /// Request body length.
    pub request_body_len: u64,
    /// Final status code; `None` if no response was sent.
    pub status: Option<u16>,
    /// Decoded response body bytes the server sent (all of them, or as many
    /// as it sent before a reset or truncation).
    pub response_body_len: u64,
    /// Response body bytes on the wire after de-chunking, before decoding,
    /// as sent.
    pub wire_body_len: u64,
    /// Content-Length announced, if any.
    pub content_length: Option<u64>,
    /// Content-Encoding, if any.
    pub content_encoding: Option<String>,
    /// Framing of the response body.
    pub framing: Option<Framing>,
    /// How the transaction ended.
    pub outcome: Outcome,
    /// The fault injected, if any.
    pub fault: Option<FailureKind>,
    /// The body is an error page (or JSON error) although the status is 2xx.
    pub error_page: bool,
    /// For a soft error: the top-level JSON field of the body that says the
    /// call failed (`status`, `result`, `success`, `ok`, `errors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_field: Option<&'static str>,
    /// Capture time of the request's first byte (seconds).
    pub req_start: f64,
    /// Capture time of the request's last byte.
    pub req_end: f64,
    /// Capture time of the response's first byte.
    pub resp_start: Option<f64>,
    /// Capture time of the response's last byte sent.
    pub resp_end: Option<f64>,
    /// Request and response bytes missing from the capture.
    pub missing_bytes: u64,
    /// Request bytes missing from the capture.
    pub missing_request_bytes: u64,
    /// Response bytes missing from the capture.
    pub missing_response_bytes: u64,
    /// The request's first byte is missing (its request line is lost).
    pub request_head_lost: bool,
    /// The response's first byte is missing (its status line is lost).
    pub response_head_lost: bool,
    /// Stream offsets (client to server) of the request: [start, end).
    pub c2s_range: [u64; 2],
    /// Stream offsets (server to client) of the response: [start, end).
    pub s2c_range: [u64; 2],
}

/// One TCP connection.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnTruth {
    /// Client `address:port`.
    pub client: String,
    /// Server `address:port`.
    pub server: String,
    /// Capture time of the first captured packet (seconds).
    pub start: f64,
    /// Capture time of the last captured packet.
    pub end: f64,
    /// `established`, `refused` or `unanswered`.
    pub kind: &'static str,
    /// How it ended: `fin_by_client`, `fin_by_server`, `rst_by_client`,
    /// `rst_by_server`, `none` (refused / unanswered).
    pub close: &'static str,
    /// Client to server.
    pub c2s: DirTruth,
    /// Server to client.
    pub s2c: DirTruth,
    /// Requests sent on it, in order.
    pub transactions: Vec<TxTruth>,
}

/// One page view.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PageTruth {
    /// Session number of the user (from 1).
    pub session: u32,
    /// Capture time of the document request (seconds).
    pub ts: f64,
    /// URL of the document (path and query).
    pub url: String,
    /// Funnel step.
    pub step: Step,
    /// Failures the user noticed on this page view.
    pub failures: Vec<FailureKind>,
    /// Minor failures (broken images) on it.
    pub minor_failures: u32,
    /// What the user did about a failure, if any.
    pub reaction: Option<Reaction>,
    /// A reload of the previous page after a failure.
    pub retry: bool,
    /// Time from the document request to the last resource, milliseconds.
    pub load_ms: f64,
    /// Requests the page view made (document included).
    pub requests: u32,
}

impl PageTruth {
    /// A page view as it starts: no failure, reaction, load time or
    /// request counted yet.
    pub fn start(session: u32, ts: f64, url: String, step: Step, retry: bool) -> PageTruth {
        PageTruth {
            session,
            ts,
            url,
            step,
            failures: Vec::new(),
            minor_failures: 0,
            reaction: None,
            retry,
            load_ms: 0.0,
            requests: 0,
        }
    }
}

/// One line of a basket.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BasketItem {
    /// Product id (as in the shop's URLs and cart JSON).
    pub product: u32,
    /// Quantity.
    pub qty: u32,
    /// Unit price, cents.
    pub price_cents: u64,
}

/// One user.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserTruth {
    /// Generator's user id (`u000001`).
    pub user: String,
    /// Session cookie name.
    pub cookie_name: String,
    /// Session cookie value the shop gave the user (once it did).
    pub cookie: Option<String>,
    /// Client IP address.
    pub client_ip: String,
    /// The address is shared with other users (NAT).
    pub nat_shared: bool,
    /// User-Agent.
    pub user_agent: String,
    /// The persistent analytics cookie (`_ga` value) the browser sent from
    /// its first request on (the `shared` profile), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analytics_cookie: Option<String>,
    /// Not a customer but a robot: `crawler` or `load_generator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robot: Option<&'static str>,
    /// Every session cookie the shop gave the robot, in order (a crawler
    /// keeps none, a load generator rotates them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub robot_cookies: Vec<String>,
    /// HTTP/1.0 client.
    pub http10: bool,
    /// Pipelines requests.
    pub pipelining: bool,
    /// Signed in (as `username`).
    pub username: Option<String>,
    /// Capture time of arrival (seconds).
    pub arrival: f64,
    /// Sessions (visits separated by a long break).
    pub sessions: u32,
    /// Meant to buy when arriving.
    pub intends_to_buy: bool,
    /// Value of the order the user meant to place, in cents (0 if none).
    pub intended_order_cents: u64,
    /// The basket the user meant to order (empty unless a buyer): what a
    /// buyer who gave up would have bought, whatever was in the cart when
    /// they left. `intended_order_cents` is its value.
    pub intended_basket: Vec<BasketItem>,
    /// Value of the cart at the end, in cents.
    pub cart_cents: u64,
    /// Placed an order.
    pub converted: bool,
    /// Value of the order placed, in cents.
    pub order_cents: u64,
    /// Order id, when converted.
    pub order_id: Option<String>,
    /// Left because of a failure.
    pub gave_up: bool,
    /// Funnel step where the user gave up.
    pub gave_up_at: Option<Step>,
    /// Revenue lost: the intended order of a buyer who gave up, in cents
    /// (the value of `intended_basket`, not of the cart when they left).
    pub lost_cents: u64,
    /// Noticed failures by kind.
    pub failures: BTreeMap<FailureKind, u32>,
    /// Broken images and similar.
    pub minor_failures: u32,
    /// Met at least one noticed failure.
    pub affected: bool,
    /// Page views in order.
    pub pages: Vec<PageTruth>,
    /// Connections in order of opening.
    pub connections: Vec<ConnTruth>,
}

/// Totals over the run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Totals {
    /// Users.
    pub users: u64,
    /// Users who met a noticed failure.
    pub users_affected: u64,
    /// Sessions.
    pub sessions: u64,
    /// Page views.
    pub page_views: u64,
    /// TCP connections (refused and unanswered attempts included).
    pub connections: u64,
    /// HTTP transactions.
    pub transactions: u64,
    /// Noticed failures by kind.
    pub failures_by_kind: BTreeMap<FailureKind, u64>,
    /// Injected faults by kind (noticed or not).
    pub faults_by_kind: BTreeMap<FailureKind, u64>,
    /// Users who gave up.
    pub gave_up: u64,
    /// Orders placed.
    pub orders: u64,
    /// Revenue of the orders placed, cents.
    pub revenue_realised_cents: u64,
    /// Intended orders of buyers who gave up, cents.
    pub revenue_lost_cents: u64,
    /// Packets written.
    pub packets: u64,
    /// Capture file bytes.
    pub capture_bytes: u64,
    /// Stream bytes missing from the capture that an exact reassembler can
    /// see are missing (sum of every direction's `gap_bytes`).
    pub gap_bytes: u64,
    /// Stream bytes missing from the capture in all.
    pub missing_bytes: u64,
    /// Transactions with bytes missing from the capture.
    pub transactions_with_capture_loss: u64,
    /// Robots (listed among `users` with `robot` set, counted in no other
    /// user total; their connections and transactions are counted).
    #[serde(skip_serializing_if = "is_zero")]
    pub robots: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
