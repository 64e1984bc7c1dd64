//! API soft errors: 2xx answers whose body says the call failed
//! (`{"status": "error"}`, `{"success": false}`, GraphQL's `errors`), by the
//! `[[failures.soft_error]]` rules and `error_json_keys`, compiled once.
//!
//! The caller parses a JSON body once and hands the value to every rule; a
//! body that does not parse (cut by the body cap, or not JSON) is never a
//! failure by a JSON rule.

use std::io;

use pov_sessions::ErrorBody;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::config::{FailuresConfig, SoftErrorRule};

/// Longest value (or matched text) shown as evidence, in characters.
const EVIDENCE_CHARS: usize = 64;

/// A value a field is compared with.
#[derive(Debug)]
enum Scalar {
    /// Compared ignoring ASCII case (held lowercased).
    Text(String),
    Bool(bool),
    Number(f64),
}

impl Scalar {
    fn of(v: &Value) -> Option<Scalar> {
        Some(match v {
            Value::String(s) => Scalar::Text(s.to_ascii_lowercase()),
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n.as_f64()?),
            _ => return None,
        })
    }

    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Text(want), Value::String(s)) => s.eq_ignore_ascii_case(want),
            (Scalar::Bool(want), Value::Bool(b)) => want == b,
            (Scalar::Number(want), Value::Number(n)) => n.as_f64() == Some(*want),
            _ => false,
        }
    }
}

/// What a rule looks for.
#[derive(Debug)]
enum Test {
    /// The field holds one of these values.
    AnyOf(Vec<Scalar>),
    /// The field is present and not `null`, `false`, `0`, blank, `[]` or
    /// `{}`.
    NonEmpty,
    /// The body matches.
    Pattern(Regex),
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    /// `api_error:NAME`.
    rule: String,
    url: Option<Regex>,
    /// Lowercased.
    content_type: Option<String>,
    /// The JSON pointer's keys, unescaped (RFC 6901), for `AnyOf` and
    /// `NonEmpty` (none for a pattern; `None`: a pointer that points at
    /// nothing).
    path: Option<Vec<String>>,
    /// The field as shown in the evidence: the pointer without its leading
    /// `/`, or the key.
    label: String,
    test: Test,
}

/// The compiled soft-error rules, in the order they are tried:
/// `soft_error`, then `error_json_keys`.
#[derive(Debug)]
pub(crate) struct SoftRules {
    rules: Vec<Rule>,
}

/// Whether a field's value says something: not `null`, `false`, `0`,
/// blank, `[]` or `{}` (`"error": 0` and `"errors": []` report no error).
fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Checks an RFC 6901 pointer: empty (the whole document) or `/`-separated
/// reference tokens in which `~` is always `~0` or `~1`.
fn check_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!("`pointer` {p:?} must start with `/` (RFC 6901; `/status` is the top-level key)"));
    }
    let b = p.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'~' && !matches!(b.get(i + 1), Some(b'0' | b'1')) {
            return Err(format!("`pointer` {p:?}: `~` must be written `~0`, and `/` inside a key `~1` (RFC 6901)"));
        }
    }
    Ok(())
}

/// Writes at most `left` bytes, then refuses (so that showing a huge value
/// costs no more than the evidence it gives).
struct Capped {
    out: Vec<u8>,
    left: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("evidence long enough"));
        }
        let n = buf.len().min(self.left);
        self.out.extend_from_slice(&buf[..n]);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `s` cut to [`EVIDENCE_CHARS`] characters, with `…` where it was cut.
fn cut(s: &str) -> String {
    match s.char_indices().nth(EVIDENCE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `s` cut to [`EVIDENCE_CHARS`] characters, as a JSON string.
fn quoted(s: &str) -> String {
    let c = cut(s);
    serde_json::to_string(&c).unwrap_or(c)
}

/// `v` as compact JSON, at most [`EVIDENCE_CHARS`] characters of it: a
/// string cut inside its quotes, an array or object cut with `…`.
fn shown(v: &Value) -> String {
    if let Value::String(s) = v {
        return quoted(s);
    }
    let mut w = Capped { out: Vec::new(), left: 4 * EVIDENCE_CHARS + 4 };
    let whole = serde_json::to_writer(&mut w, v).is_ok();
    let text = String::from_utf8_lossy(&w.out);
    let c = cut(&text);
    if !whole && !c.ends_with('…') { format!("{c}…") } else { c }
}

impl SoftRules {
    /// Compiles `cfg.soft_error` and `cfg.error_json_keys`; a bad rule is an
    /// error naming it.
    pub(crate) fn new(cfg: &FailuresConfig) -> Result<SoftRules, String> {
        let mut rules = Vec::new();
        for r in &cfg.soft_error {
            rules.push(compile(r).map_err(|e| format!("[[failures.soft_error]] `{}`: {e}", r.name))?);
        }
        for k in &cfg.error_json_keys {
            rules.push(Rule {
                rule: format!("api_error:{k}"),
                url: None,
                content_type: None,
                path: Some(vec![k.clone()]),
                label: k.clone(),
                test: Test::NonEmpty,
            });
        }
        Ok(SoftRules { rules })
    }

    /// The first rule that says the answer failed, with its evidence.
    /// `ct` is the Content-Type lowercased; `json` the body parsed, if it
    /// parses; `text` the body as text.
    pub(crate) fn judge(&self, target: &str, ct: &str, json: Option<&Value>, text: &str) -> Option<ErrorBody> {
        for r in &self.rules {
            if r.content_type.as_deref().is_some_and(|c| !ct.contains(c)) {
                continue;
            }
            if r.url.as_ref().is_some_and(|re| !re.is_match(target)) {
                continue;
            }
            let evidence = match &r.test {
                Test::Pattern(re) => re.find(text).map(|m| format!("matched {}", quoted(m.as_str()))),
                Test::AnyOf(want) => r.field(json, |v| want.iter().any(|w| w.matches(v))),
                Test::NonEmpty => r.field(json, non_empty),
            };
            if let Some(evidence) = evidence {
                return Some(ErrorBody { rule: r.rule.clone(), evidence });
            }
        }
        None
    }
}

impl Rule {
    /// The evidence (`"field": value`) when the rule's field is in `json`
    /// and `hit` says it failed.
    fn field(&self, json: Option<&Value>, hit: impl Fn(&Value) -> bool) -> Option<String> {
        let v = at(json?, self.path.as_deref()?).filter(|v| hit(v))?;
        let label = serde_json::to_string(&self.label).unwrap_or_default();
        Some(format!("{label}: {}", shown(v)))
    }
}

/// Compiles one `[[failures.soft_error]]` rule.
fn compile(r: &SoftErrorRule) -> Result<Rule, String> {
    if r.name.trim().is_empty() {
        return Err("`name` must not be empty".into());
    }
    let regex = |what: &str, p: &str| {
        RegexBuilder::new(p).case_insensitive(true).size_limit(1 << 22).build().map_err(|e| format!("`{what}`: {e}"))
    };
    let url = match &r.url {
        Some(u) => Some(Regex::new(u).map_err(|e| format!("`url`: {e}"))?),
        None => None,
    };
    let content_type = match &r.content_type {
        Some(c) if c.trim().is_empty() => return Err("`content_type` must not be empty".into()),
        Some(c) => Some(c.trim().to_ascii_lowercase()),
        None => None,
    };
    let (path, label, test) = match (&r.pointer, &r.value, &r.pattern) {
        (Some(_), _, Some(_)) => return Err("give `pointer` (with `value`) or `pattern`, not both".into()),
        (Some(_), None, None) => return Err("`pointer` needs a `value` (or `value = \"non-empty\"`)".into()),
        (None, Some(_), _) => return Err("`value` goes with a `pointer`".into()),
        (None, None, None) => return Err("needs a `pointer` with a `value`, or a `pattern`".into()),
        (None, None, Some(p)) => (Some(Vec::new()), String::new(), Test::Pattern(regex("pattern", p)?)),
        (Some(p), Some(v), None) => {
            check_pointer(p)?;
            let bad =
                || format!("`value` must be a string, a boolean, a number, a list of them, or \"non-empty\"; got {v}");
            let test = match v {
                Value::String(s) if s == "non-empty" => Test::NonEmpty,
                Value::Array(a) if !a.is_empty() => {
                    Test::AnyOf(a.iter().map(Scalar::of).collect::<Option<Vec<_>>>().ok_or_else(bad)?)
                }
                other => Test::AnyOf(vec![Scalar::of(other).ok_or_else(bad)?]),
            };
            (path(p), p.strip_prefix('/').unwrap_or(p).to_string(), test)
        }
    };
    Ok(Rule { rule: format!("api_error:{}", r.name.trim()), url, content_type, path, label, test })
}

/// The keys of JSON pointer `p`, unescaped (RFC 6901), as
/// `serde_json::Value::pointer` reads them: none for the empty pointer,
/// `None` for one that does not start with `/`.
fn path(p: &str) -> Option<Vec<String>> {
    if p.is_empty() {
        return Some(Vec::new());
    }
    let rest = p.strip_prefix('/')?;
    Some(rest.split('/').map(|k| k.replace("~1", "/").replace("~0", "~")).collect())
}

/// What `path` points at in `v`, as `serde_json::Value::pointer` finds
/// it, without unescaping the pointer (an allocation a key) for every
/// answer.
fn at<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(list) => {
            // An index as RFC 6901 writes it: no sign, no leading zero.
            if key.starts_with('+') || (key.starts_with('0') && key.len() != 1) {
                return None;
            }
            list.get(key.parse::<usize>().ok()?)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use pov_sessions::{ErrorBody, ResourceClass};
    use serde_json::json;

    use crate::Classifier;
    use crate::config::{FailuresConfig, SoftErrorRule};

    const JSON: &str = "application/json; charset=utf-8";

    /// Pointers are followed as serde_json's `Value::pointer` follows them:
    /// escapes, array indexes (no sign, no leading zero), the empty
    /// pointer, and one without its leading `/`.
    #[test]
    fn pointers_find_what_serde_json_finds() {
        let docs = [
            json!({"a": {"b/c": [10, {"~d": true}], "": {"": 3}}, "e": [[1, 2], [3]], "0": "zero", "01": "one"}),
            json!([{"error": "x"}, null, [1, [2, [3]]]]),
            json!("text"),
        ];
        let pointers = [
            "",
            "/",
            "//",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/~0d",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/2",
            "/e/0/1",
            "/e/1/0",
            "/e/-",
            "/0",
            "/01",
            "/0/error",
            "/2/1/1/0",
            "a",
            "a/b",
            "/a/~01",
            "/a/b~1c/00",
            "/e/18446744073709551616",
        ];
        for doc in &docs {
            for p in pointers {
                let ours = super::path(p).and_then(|path| super::at(doc, &path));
                assert_eq!(ours, doc.pointer(p), "{p} in {doc}");
            }
        }
    }

    fn judge_with(
        c: &Classifier,
        target: &str,
        status: u16,
        ct: &str,
        body: &str,
        class: ResourceClass,
    ) -> Option<ErrorBody> {
        c.error_body(target, status, ct, body.as_bytes(), class)
    }

    /// The default rules' verdict on a 200 JSON answer to an API call:
    /// `(rule, evidence)`.
    fn verdict(body: &str) -> Option<(String, String)> {
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        judge_with(&c, "/api/cart", 200, JSON, body, ResourceClass::Api).map(|e| (e.rule, e.evidence))
    }

    fn hit(rule: &str, evidence: &str) -> Option<(String, String)> {
        Some((rule.to_string(), evidence.to_string()))
    }

    #[test]
    fn each_default_shape_is_a_failure_with_its_field_and_value() {
        let cases = [
            (
                r#"{"status": "error", "message": "Cart service unavailable"}"#,
                "api_error:status",
                r#""status": "error""#,
            ),
            (r#"{"status":"fail","data":{"qty":"too many"}}"#, "api_error:status", r#""status": "fail""#),
            (r#"{"status":"Failed"}"#, "api_error:status", r#""status": "Failed""#),
            (r#"{"result":"error","reason":"timeout"}"#, "api_error:result", r#""result": "error""#),
            (r#"{"success":false,"message":"Could not add the item"}"#, "api_error:success", r#""success": false"#),
            (r#"{"ok": false, "description": "Bad Request"}"#, "api_error:ok", r#""ok": false"#),
            (r#"{"error":"token expired"}"#, "api_error:error", r#""error": "token expired""#),
            (
                r#"{"error":{"code":13,"message":"internal"}}"#,
                "api_error:error",
                r#""error": {"code":13,"message":"internal"}"#,
            ),
            (r#"{"error":true}"#, "api_error:error", r#""error": true"#),
            (r#"{"error":503}"#, "api_error:error", r#""error": 503"#),
            (
                r#"{"data":null,"errors":[{"message":"Cannot query field \"x\"","path":["cart"]}]}"#,
                "api_error:errors",
                r#""errors": [{"message":"Cannot query field \"x\"","path":["cart"]}]"#,
            ),
            (r#"{"errorMessage":"no stock"}"#, "api_error:errorMessage", r#""errorMessage": "no stock""#),
            // The first rule that matches names it: `status` before `error`.
            (r#"{"error":"boom","status":"error"}"#, "api_error:status", r#""status": "error""#),
            // Leading white space, and no Content-Type at all.
            ("\n  {\"success\": false}", "api_error:success", r#""success": false"#),
        ];
        for (body, rule, evidence) in cases {
            assert_eq!(verdict(body), hit(rule, evidence), "{body}");
        }
        // Without a JSON Content-Type, a body that starts like JSON is read
        // as JSON.
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        let e = judge_with(&c, "/api/x", 200, "text/plain", r#"{"ok":false}"#, ResourceClass::Other).unwrap();
        assert_eq!(e.rule, "api_error:ok");
        let e = judge_with(&c, "/api/x", 200, "", r#"{"status":"error"}"#, ResourceClass::Api).unwrap();
        assert_eq!(e.rule, "api_error:status");
        // A navigation answered with a JSON error (a page the user saw).
        let e = judge_with(&c, "/", 200, JSON, r#"{"status":"error"}"#, ResourceClass::Document).unwrap();
        assert_eq!(e.rule, "api_error:status");
    }

    #[test]
    fn answers_that_say_nothing_failed_are_not_failures() {
        for body in [
            r#"{"status":"ok"}"#,
            r#"{"status":"success","data":{"items":[]}}"#,
            r#"{"status":200}"#,
            r#"{"status":"errored-out-of-stock-notice-sent"}"#,
            r#"{"result":"done"}"#,
            r#"{"success":true}"#,
            r#"{"ok":true}"#,
            r#"{"success":"false"}"#,
            r#"{"error":null}"#,
            r#"{"error":""}"#,
            r#"{"error":"  "}"#,
            r#"{"error":false}"#,
            r#"{"error":0}"#,
            r#"{"error":{}}"#,
            r#"{"errors":[]}"#,
            r#"{"data":{"cart":{"items":[]}},"errors":[]}"#,
            // Only the top level speaks for the call.
            r#"{"data":{"status":"error"}}"#,
            r#"{"items":[{"sku":"a","success":false}]}"#,
            r#"[{"status":"error"}]"#,
            // A JSON answer is not read as text: a product may be called
            // anything.
            r#"{"items":[{"name":"Something Went Wrong (vinyl)"}],"total":"19.99"}"#,
            "{}",
            "[]",
            "null",
        ] {
            assert_eq!(verdict(body), None, "{body}");
        }
    }

    #[test]
    fn a_body_cut_short_is_never_a_failure_by_its_json_or_its_text() {
        // Cut by the body cap: the parse fails, and that says nothing.
        for body in [
            r#"{"status":"ok","items":[{"name":"Internal Server Error tee","price":"#,
            r#"{"status":"error","mess"#,
            r#"{"success": fal"#,
            r#"{"errors":[{"message":"#,
        ] {
            assert_eq!(verdict(body), None, "{body}");
        }
        // A body that is not JSON at all despite its type is text: an error
        // page mislabelled as JSON is still one.
        assert_eq!(verdict("Internal Server Error"), hit("error_page:generic_error_text", ""));
    }

    #[test]
    fn only_2xx_answers_of_pages_apis_and_others_are_read() {
        let c = Classifier::new(&FailuresConfig::default()).unwrap();
        let body = r#"{"status":"error"}"#;
        for status in [100, 204, 301, 304, 404, 500, 503] {
            let class = ResourceClass::Api;
            // (A 5xx or 4xx is a failure by its status, not its body.)
            assert_eq!(
                judge_with(&c, "/api/x", status, JSON, if status == 204 { "" } else { body }, class),
                None,
                "{status}"
            );
        }
        for class in [
            ResourceClass::Image,
            ResourceClass::Media,
            ResourceClass::Style,
            ResourceClass::Script,
            ResourceClass::Font,
        ] {
            assert_eq!(judge_with(&c, "/api/x", 200, JSON, body, class), None, "{class:?}");
        }
        assert!(judge_with(&c, "/api/x", 201, JSON, body, ResourceClass::Api).is_some());
        assert!(judge_with(&c, "/api/x", 200, JSON, body, ResourceClass::Other).is_some());
        // HTML error pages keep their rules.
        let page = "<html><head><script>var s='something went wrong'</script></head><body><h1>Something went wrong</h1></body></html>";
        let e = judge_with(&c, "/", 200, "text/html", page, ResourceClass::Document).unwrap();
        assert_eq!(e, ErrorBody::rule("error_page:generic_error_text"));
        let fine = "<html><script>if(x){alert('something went wrong')}</script><body>Welcome</body></html>";
        assert_eq!(judge_with(&c, "/", 200, "text/html", fine, ResourceClass::Document), None);
    }

    #[test]
    fn evidence_is_short_whatever_the_value() {
        let long = "x".repeat(500);
        let (_, e) = verdict(&format!(r#"{{"error":"{long}"}}"#)).unwrap();
        assert_eq!(e, format!(r#""error": "{}…""#, "x".repeat(64)));
        let many: Vec<String> = (0..5000).map(|i| format!(r#"{{"message":"failure number {i}"}}"#)).collect();
        let (_, e) = verdict(&format!(r#"{{"errors":[{}]}}"#, many.join(","))).unwrap();
        assert!(e.starts_with(r#""errors": [{"message":"failure number 0"}"#), "{e}");
        assert!(e.ends_with('…') && e.chars().count() <= 64 + 12, "{e}");
        // Cut on a character, not inside one.
        let (_, e) = verdict(&format!(r#"{{"error":"{}"}}"#, "é".repeat(100))).unwrap();
        assert_eq!(e, format!(r#""error": "{}…""#, "é".repeat(64)));
        // Quotes and control characters stay escaped.
        let (_, e) = verdict(r#"{"error":"bad \"id\"\nline"}"#).unwrap();
        assert_eq!(e, r#""error": "bad \"id\"\nline""#);
    }

    fn rule(name: &str) -> SoftErrorRule {
        SoftErrorRule { name: name.into(), url: None, content_type: None, pointer: None, value: None, pattern: None }
    }

    fn with_rules(rules: Vec<SoftErrorRule>) -> Result<Classifier, String> {
        Classifier::new(&FailuresConfig { soft_error: rules, ..FailuresConfig::default() })
    }

    #[test]
    fn configured_rules_read_a_pointer_a_url_a_content_type_or_a_pattern() {
        let c = with_rules(vec![
            SoftErrorRule {
                url: Some("^/api/pay".into()),
                ..SoftErrorRule::field("declined", "/data/state", json!("Declined"))
            },
            SoftErrorRule::field("code", "/meta/code", json!([500, 503, 42.5])),
            SoftErrorRule::field("flag", "/flags/0", json!(true)),
            SoftErrorRule::field("slash", "/a~1b/c~0d", json!("x")),
            SoftErrorRule {
                content_type: Some("vnd.shop+json".into()),
                ..SoftErrorRule::field("problem", "/detail", json!("non-empty"))
            },
            SoftErrorRule { pattern: Some(r"<fault>\s*<code>(\d+)</code>".into()), ..rule("soap") },
        ])
        .unwrap();
        let j = |target: &str, ct: &str, body: &str| {
            judge_with(&c, target, 200, ct, body, ResourceClass::Api).map(|e| (e.rule, e.evidence))
        };
        let body = r#"{"data":{"state":"DECLINED"}}"#;
        assert_eq!(j("/api/pay?id=3", JSON, body), hit("api_error:declined", r#""data/state": "DECLINED""#));
        // The URL does not match: the rule does not apply.
        assert_eq!(j("/api/cart", JSON, body), None);
        assert_eq!(j("/x", JSON, r#"{"meta":{"code":503}}"#), hit("api_error:code", r#""meta/code": 503"#));
        assert_eq!(j("/x", JSON, r#"{"meta":{"code":42.5}}"#), hit("api_error:code", r#""meta/code": 42.5"#));
        assert_eq!(j("/x", JSON, r#"{"meta":{"code":"503"}}"#), None, "a string is not a number");
        assert_eq!(j("/x", JSON, r#"{"meta":{"code":200}}"#), None);
        assert_eq!(j("/x", JSON, r#"{"flags":[true]}"#), hit("api_error:flag", r#""flags/0": true"#));
        assert_eq!(j("/x", JSON, r#"{"a/b":{"c~d":"X"}}"#), hit("api_error:slash", r#""a~1b/c~0d": "X""#));
        // Content type: the rule reads only answers of that type.
        let problem = r#"{"detail":"Out of stock","title":"Conflict"}"#;
        assert_eq!(
            j("/x", "application/vnd.shop+json", problem),
            hit("api_error:problem", r#""detail": "Out of stock""#)
        );
        assert_eq!(j("/x", JSON, problem), None);
        assert_eq!(j("/x", "application/vnd.shop+json", r#"{"detail":null}"#), None);
        // A pattern reads any body, JSON or not.
        let soap = "<?xml version=\"1.0\"?><env><fault> <code>17</code></fault></env>";
        assert_eq!(j("/ws", "text/xml", soap), hit("api_error:soap", r#"matched "<fault> <code>17</code>""#));
        // What it matched is shown short, however much it was.
        let greedy =
            with_rules(vec![SoftErrorRule { pattern: Some("(?s)<fault>.*</fault>".into()), ..rule("all") }]).unwrap();
        let long = format!("<fault> <code>9</code>{}</fault>", "detail ".repeat(10_000));
        let e = judge_with(&greedy, "/ws", 200, "text/xml", &long, ResourceClass::Api).unwrap().evidence;
        assert!(e.starts_with("matched \"<fault> <code>9</code>detail") && e.ends_with("…\"") && e.len() < 90, "{e}");
        // Giving rules replaces the built-in ones; error_json_keys stay.
        assert_eq!(j("/x", JSON, r#"{"success":false}"#), None);
        assert_eq!(j("/x", JSON, r#"{"errors":[1]}"#), hit("api_error:errors", r#""errors": [1]"#));
        // And without them, only the configured rules speak.
        let none = Classifier::new(&FailuresConfig {
            soft_error: vec![],
            error_json_keys: vec![],
            ..FailuresConfig::default()
        })
        .unwrap();
        assert_eq!(judge_with(&none, "/x", 200, JSON, r#"{"status":"error","error":"x"}"#, ResourceClass::Api), None);
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let cases: Vec<(SoftErrorRule, &str)> = vec![
            (rule("a"), "needs a `pointer` with a `value`, or a `pattern`"),
            (SoftErrorRule { pointer: Some("/x".into()), ..rule("a") }, "`pointer` needs a `value`"),
            (SoftErrorRule { value: Some(json!(false)), ..rule("a") }, "`value` goes with a `pointer`"),
            (SoftErrorRule { pattern: Some("x".into()), ..SoftErrorRule::field("a", "/x", json!(1)) }, "not both"),
            (SoftErrorRule::field("a", "status", json!("error")), "must start with `/`"),
            (SoftErrorRule::field("a", "/a~2", json!("error")), "`~0`"),
            (SoftErrorRule::field("a", "/a~", json!("error")), "`~0`"),
            (SoftErrorRule::field("a", "/x", json!({"k": 1})), "`value` must be"),
            (SoftErrorRule::field("a", "/x", json!([])), "`value` must be"),
            (SoftErrorRule::field("a", "/x", json!(["ok", null])), "`value` must be"),
            (SoftErrorRule::field("a", "/x", json!(null)), "`value` must be"),
            (SoftErrorRule { pattern: Some("(".into()), ..rule("a") }, "`pattern`"),
            (SoftErrorRule { url: Some("[".into()), ..SoftErrorRule::field("a", "/x", json!(1)) }, "`url`"),
            (
                SoftErrorRule { content_type: Some(" ".into()), ..SoftErrorRule::field("a", "/x", json!(1)) },
                "`content_type`",
            ),
        ];
        for (r, want) in cases {
            let e = with_rules(vec![r.clone()]).err().unwrap_or_default();
            assert!(e.starts_with("[[failures.soft_error]] `a`: ") && e.contains(want), "{r:?}: {e}");
        }
        let e = with_rules(vec![SoftErrorRule::field(" ", "/x", json!(1))]).err().unwrap_or_default();
        assert!(e.contains("`name` must not be empty"), "{e}");
    }
}
