//! `[failures]`: the rules' thresholds and patterns.

use serde::Deserialize;

/// A body pattern that marks a 2xx response as an error page.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrorPageRule {
    /// Rule name (shown in each failure's `rule`).
    pub name: String,
    /// Regular expression, matched case-insensitively against the visible
    /// text of an HTML body (scripts, styles and comments left out) or the
    /// whole of another textual body.
    pub pattern: String,
}

/// A rule that marks a 2xx answer as a failed call
/// (`[[failures.soft_error]]`): an API that says in its body what its
/// status does not. Failures it finds are `error_page` with rule
/// `api_error:NAME`, and the field and value (or the text matched) as
/// evidence.
///
/// Either `pointer` with `value` (read in a body that parses as JSON) or
/// `pattern` (a regular expression on the body); `url` and `content_type`
/// narrow where the rule applies. Checked when the configuration loads.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SoftErrorRule {
    /// Rule name (the failure's rule is `api_error:NAME`).
    pub name: String,
    /// Regular expression on the request's path and query; unset: every
    /// URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Text the response's Content-Type must contain (ignoring case);
    /// unset: any type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// JSON pointer (RFC 6901: `/status`, `/data/0/state`, `~1` for `/`)
    /// to the field to read.
    #[serde(default)]
    pub pointer: Option<String>,
    /// With `pointer`: the value that means the call failed. A string
    /// (compared ignoring ASCII case), a boolean, a number, a list of them
    /// (any one), or `"non-empty"`: present and not `null`, `false`, `0`,
    /// `""`, `[]` or `{}`.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Instead of `pointer`: a regular expression (ignoring case) on the
    /// body as text, JSON or not.
    #[serde(default)]
    pub pattern: Option<String>,
}

impl SoftErrorRule {
    /// A rule on a JSON field.
    pub fn field(name: &str, pointer: &str, value: serde_json::Value) -> SoftErrorRule {
        SoftErrorRule {
            name: name.into(),
            url: None,
            content_type: None,
            pointer: Some(pointer.into()),
            value: Some(value),
            pattern: None,
        }
    }

    /// The built-in rules: the common ways an API says a call failed under
    /// a 2xx status (`"status": "error"` as JSend and many others write it,
    /// `"result": "error"`, `"success": false`, `"ok": false`). A non-empty
    /// `error` or `errors` (GraphQL's shape) is `error_json_keys`.
    pub fn defaults() -> Vec<SoftErrorRule> {
        let failed = || serde_json::json!(["error", "fail", "failed", "failure"]);
        vec![
            SoftErrorRule::field("status", "/status", failed()),
            SoftErrorRule::field("result", "/result", failed()),
            SoftErrorRule::field("success", "/success", serde_json::Value::Bool(false)),
            SoftErrorRule::field("ok", "/ok", serde_json::Value::Bool(false)),
        ]
    }
}

/// `[failures]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FailuresConfig {
    /// Apdex T of a transaction (request start to last response byte),
    /// milliseconds: above 4 T an important transaction is `slow`.
    pub apdex_t_ms: f64,
    /// Apdex T of a page load, milliseconds (a `[[pages]]` rule may set its
    /// own): above 4 T a page is `slow_page`.
    pub page_apdex_t_ms: f64,
    /// 4xx statuses that are not failures (authentication challenges).
    pub client_error_ignore: Vec<u16>,
    /// Resource classes whose failures are minor (counted, not noticed):
    /// any of document, api, style, script, image, font, media, other.
    pub minor_classes: Vec<String>,
    /// Error pages served with 2xx.
    pub error_pages: Vec<ErrorPageRule>,
    /// Top-level JSON keys whose presence (not null, false, 0 or empty)
    /// makes a 2xx JSON body a failed call (rule `api_error:KEY`), tried
    /// after `soft_error`.
    pub error_json_keys: Vec<String>,
    /// API answers whose body says the call failed, tried in order
    /// (`[[failures.soft_error]]`; giving any replaces the built-in ones).
    pub soft_error: Vec<SoftErrorRule>,
    /// A page requested again within this many seconds after it failed is
    /// a `struggle`.
    pub struggle_window_secs: f64,
    /// More redirects than this in one page view is a `redirect_loop`.
    pub redirect_limit: u32,
}

impl Default for FailuresConfig {
    fn default() -> FailuresConfig {
        let rule = |name: &str, pattern: &str| ErrorPageRule { name: name.into(), pattern: pattern.into() };
        FailuresConfig {
            apdex_t_ms: 1000.0,
            page_apdex_t_ms: 3000.0,
            client_error_ignore: vec![401, 407],
            minor_classes: vec!["image".into(), "media".into()],
            error_pages: vec![
                rule(
                    "generic_error_text",
                    r"something went wrong|an (unexpected |internal )?error (has )?occurred|unexpected error occurred|internal server error|service (is )?(temporarily )?unavailable|bad gateway|gateway time-?out|we('|’)re sorry, (but )?(something|an error|there was)|page could not be (displayed|loaded)",
                ),
                rule(
                    "stack_trace",
                    r"traceback \(most recent call last\)|java\.lang\.[a-z]+(exception|error)|exception in thread|whitelabel error page|server error in '/' application|(fatal|parse) error(</b>)?: [^\n]*? in \S+ on line (<b>)?\d+|stack trace:|sqlstate\[|ora-\d{5}|unhandled exception",
                ),
                rule("maintenance", r"(down|closed) for maintenance|under maintenance|maintenance mode"),
                rule(
                    "localised_error_text",
                    r"es ist ein fehler aufgetreten|ein fehler ist aufgetreten|une erreur (s'est produite|est survenue)|se ha producido un error|ha ocurrido un error|algo salió mal|si è verificato un errore|qualcosa è andato storto|ocorreu um erro|algo deu errado|er is iets misgegaan|er is een fout opgetreden|произошла ошибка|wystąpił błąd|エラーが発生しました|发生错误|出错了",
                ),
            ],
            error_json_keys: vec!["error".into(), "errors".into(), "error_message".into(), "errorMessage".into()],
            soft_error: SoftErrorRule::defaults(),
            struggle_window_secs: 60.0,
            redirect_limit: 10,
        }
    }
}
