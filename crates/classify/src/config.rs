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
    /// Top-level JSON keys whose presence (not null, false or empty) makes
    /// a 2xx JSON body an error.
    pub error_json_keys: Vec<String>,
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
                    r"traceback \(most recent call last\)|java\.lang\.[a-z]+(exception|error)|exception in thread|whitelabel error page|server error in '/' application|(fatal|parse) error: .{0,200} on line \d+|stack trace:|sqlstate\[|ora-\d{5}|unhandled exception",
                ),
                rule("maintenance", r"(down|closed) for maintenance|under maintenance|maintenance mode"),
                rule(
                    "localised_error_text",
                    r"es ist ein fehler aufgetreten|ein fehler ist aufgetreten|une erreur (s'est produite|est survenue)|se ha producido un error|ha ocurrido un error|algo salió mal|si è verificato un errore|qualcosa è andato storto|ocorreu um erro|algo deu errado|er is iets misgegaan|er is een fout opgetreden|произошла ошибка|wystąpił błąd|エラーが発生しました|发生错误|出错了",
                ),
            ],
            error_json_keys: vec!["error".into(), "errors".into(), "error_message".into(), "errorMessage".into()],
            struggle_window_secs: 60.0,
            redirect_limit: 10,
        }
    }
}
