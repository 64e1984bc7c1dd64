//! Reading fields out of query strings, form bodies and JSON bodies, and
//! money out of them.

use regex::Regex;
use serde_json::Value;

use crate::config::RevenueConfig;

/// Decodes `%XX` and `+` of a form or query component.
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `name=value` pairs of a query string or form body, decoded.
pub fn form_pairs(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split(['&', ';']).filter(|p| !p.is_empty()).map(|p| match p.split_once('=') {
        Some((k, v)) => (form_decode(k), form_decode(v)),
        None => (form_decode(p), String::new()),
    })
}

/// The first of `names` found as a query parameter or a `;name=value` path
/// parameter (case-insensitive), with its value.
pub fn query_param(target: &str, names: &[String]) -> Option<(String, String)> {
    if names.is_empty() {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // Path parameters: all after the path's first `;` (pairs split at `;`
    // and `&` alike).
    let path_params = path.split_once(';').map_or("", |(_, p)| p);
    for src in [query, path_params] {
        if src.is_empty() {
            continue;
        }
        let pairs: Vec<(String, String)> = form_pairs(src).collect();
        for n in names {
            if let Some((k, v)) = pairs.iter().find(|(k, v)| k.eq_ignore_ascii_case(n) && !v.is_empty()) {
                return Some((k.clone(), v.clone()));
            }
        }
    }
    None
}

fn is_json(ct: Option<&str>, body: &[u8]) -> bool {
    match ct {
        Some(c) if c.to_ascii_lowercase().contains("json") => true,
        _ => body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'{' || *b == b'['),
    }
}

fn is_form(ct: Option<&str>) -> bool {
    ct.is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// The first of `names` in a JSON object, looked for at any depth
/// (breadth first, so a top-level `total` wins over a line item's).
pub fn json_field<'a>(v: &'a Value, names: &[String]) -> Option<&'a Value> {
    let mut level: Vec<&Value> = vec![v];
    for _ in 0..8 {
        for n in names {
            for x in &level {
                if let Value::Object(m) = x
                    && let Some((_, found)) = m.iter().find(|(k, _)| k.eq_ignore_ascii_case(n))
                    && !found.is_null()
                {
                    return Some(found);
                }
            }
        }
        let mut next = Vec::new();
        for x in level {
            match x {
                Value::Object(m) => next.extend(m.values().filter(|c| c.is_object() || c.is_array())),
                Value::Array(a) => next.extend(a.iter().filter(|c| c.is_object() || c.is_array())),
                _ => {}
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    None
}

/// A field's text from a form or JSON body.
pub fn field_text(body: &[u8], ct: Option<&str>, names: &[String]) -> Option<String> {
    if body.is_empty() || names.is_empty() {
        return None;
    }
    if is_json(ct, body) {
        let v: Value = serde_json::from_slice(body).ok()?;
        return match json_field(&v, names)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
    }
    if is_form(ct) || !body.contains(&b'<') {
        let text = std::str::from_utf8(body).ok()?;
        let pairs: Vec<(String, String)> = form_pairs(text.trim()).collect();
        for n in names {
            if let Some((_, v)) = pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)) {
                return Some(v.clone());
            }
        }
    }
    None
}

/// Reads a money amount: `129.90`, `$1,299.00`, `1.299,00 €`, `12990`
/// (as written; no guess at minor units).
pub fn parse_money(s: &str) -> Option<f64> {
    let t: String = s.chars().filter(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-')).collect();
    if !t.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let last_dot = t.rfind('.');
    let last_comma = t.rfind(',');
    let normal = match (last_dot, last_comma) {
        (Some(d), Some(c)) if c > d => t.replace('.', "").replace(',', "."),
        (Some(_), Some(_)) => t.replace(',', ""),
        (None, Some(c)) if t.len() - c - 1 == 2 && t.matches(',').count() == 1 => t.replace(',', "."),
        (None, Some(_)) => t.replace(',', ""),
        _ => t,
    };
    let v: f64 = normal.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Reads values as the `[revenue]` rules say.
pub struct Extractor {
    pattern: Option<Regex>,
    json_path: Option<Vec<String>>,
}

impl Extractor {
    /// Compiles the rules (an invalid pattern was refused when the
    /// configuration was checked; here it is ignored).
    pub fn new(cfg: &RevenueConfig) -> Extractor {
        Extractor {
            pattern: cfg.pattern.as_deref().and_then(|p| Regex::new(p).ok()),
            json_path: cfg
                .json_path
                .as_ref()
                .map(|p| p.trim_start_matches('$').trim_start_matches('.').split('.').map(str::to_string).collect()),
        }
    }

    /// The value in `body` by the JSON path, then the first of `fields`,
    /// then the pattern.
    pub fn value(&self, body: &[u8], ct: Option<&str>, fields: &[String]) -> Option<f64> {
        self.value_in(&Body::new(body, ct), fields)
    }

    /// [`Extractor::value`] of a body that may be asked again (its JSON is
    /// parsed once, whatever fields are asked of it).
    pub fn value_in(&self, b: &Body<'_>, fields: &[String]) -> Option<f64> {
        if b.bytes.is_empty() {
            return None;
        }
        if is_json(b.ct, b.bytes) {
            if let Some(v) = b.json() {
                if let Some(path) = &self.json_path {
                    let mut at = v;
                    let mut ok = true;
                    for seg in path {
                        match at.get(seg.as_str()) {
                            Some(x) => at = x,
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    if ok && let Some(x) = money_of(at) {
                        return Some(x);
                    }
                }
                if let Some(x) = json_field(v, fields).and_then(money_of) {
                    return Some(x);
                }
            }
        } else if let Some(t) = field_text(b.bytes, b.ct, fields)
            && let Some(x) = parse_money(&t)
        {
            return Some(x);
        }
        let re = self.pattern.as_ref()?;
        let text = String::from_utf8_lossy(b.bytes);
        let caps = re.captures(&text)?;
        parse_money(caps.get(1).or_else(|| caps.get(0))?.as_str())
    }
}

/// A request or response body whose values are read, with its
/// Content-Type: its JSON (when it is JSON) parsed at most once, however
/// many fields are looked for in it.
pub struct Body<'a> {
    bytes: &'a [u8],
    ct: Option<&'a str>,
    json: std::cell::OnceCell<Option<Value>>,
}

impl<'a> Body<'a> {
    /// `bytes` sent with Content-Type `ct`.
    pub fn new(bytes: &'a [u8], ct: Option<&'a str>) -> Body<'a> {
        Body { bytes, ct, json: std::cell::OnceCell::new() }
    }

    fn json(&self) -> Option<&Value> {
        self.json.get_or_init(|| serde_json::from_slice::<Value>(self.bytes).ok()).as_ref()
    }
}

fn money_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_money(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn money() {
        assert_eq!(parse_money("129.90"), Some(129.9));
        assert_eq!(parse_money("$1,299.00"), Some(1299.0));
        assert_eq!(parse_money("1.299,00 €"), Some(1299.0));
        assert_eq!(parse_money("12,50"), Some(12.5));
        assert_eq!(parse_money("12990"), Some(12990.0));
        assert_eq!(parse_money("free"), None);
    }

    #[test]
    fn fields_from_forms_json_and_queries() {
        let f = names(&["total", "amount"]);
        assert_eq!(
            field_text(b"total=12.50&card=4111", Some("application/x-www-form-urlencoded"), &f).as_deref(),
            Some("12.50")
        );
        let rx = Extractor::new(&RevenueConfig::default());
        assert_eq!(
            rx.value(
                br#"{"items":[{"total":3}],"cart_total":"59.80"}"#,
                Some("application/json"),
                &names(&["cart_total"])
            ),
            Some(59.8)
        );
        // Breadth first: the order's total, not the first line item's.
        assert_eq!(rx.value(br#"{"lines":[{"total":3}],"total":42.5}"#, None, &f), Some(42.5));
        assert_eq!(
            query_param("/a;jsessionid=ABC?x=1", &names(&["jsessionid"])),
            Some(("jsessionid".into(), "ABC".into()))
        );
        assert_eq!(query_param("/a?SessionId=Z%20Y", &names(&["sessionid"])), Some(("SessionId".into(), "Z Y".into())));
        assert_eq!(query_param("/a?x=1", &names(&["sessionid"])), None);
        // The query first, then every path parameter, at `;` or `&`.
        let sid = names(&["sid"]);
        let found = |t: &str| query_param(t, &sid).map(|(_, v)| v);
        assert_eq!(found("/a;x=1;sid=P?sid=Q").as_deref(), Some("Q"));
        assert_eq!(found("/a;x=1;sid=P?y=2").as_deref(), Some("P"));
        assert_eq!(found("/a;x=1&sid=R").as_deref(), Some("R"));
        assert_eq!(found("/a;b/c;sid=S").as_deref(), Some("S"));
        assert_eq!(found("/a;sid=?sid=").as_deref(), None, "an empty value is no value");
        assert_eq!(found("/a/b").as_deref(), None);
    }

    #[test]
    fn configured_pattern_and_json_path() {
        let cfg = RevenueConfig {
            pattern: Some(r"Order total: \$([0-9.,]+)".into()),
            json_path: Some("$.order.value".into()),
            ..RevenueConfig::default()
        };
        let rx = Extractor::new(&cfg);
        assert_eq!(rx.value(b"<p>Order total: $1,024.00</p>", Some("text/html"), &cfg.order_fields), Some(1024.0));
        assert_eq!(rx.value(br#"{"order":{"value":"77.10"},"total":1}"#, None, &cfg.order_fields), Some(77.1));
        // A body read for several sets of fields (its JSON parsed once)
        // gives what reading it anew for each gives: JSON by path and by
        // field, a form, the pattern, broken JSON, nothing.
        let (order, cart) = (cfg.order_fields.clone(), cfg.cart_fields.clone());
        let bodies: [(&[u8], Option<&str>); 6] = [
            (br#"{"order":{"value":"12.50"},"cart_total":3}"#, Some("application/json")),
            (br#"{"subtotal": 8.25, "lines": [{"total": 1}]}"#, None),
            (b"grand_total=99.90&cart_value=5", Some("application/x-www-form-urlencoded")),
            (b"<p>Order total: $41.00</p>", Some("text/html")),
            (b"{not json", Some("application/json")),
            (b"", None),
        ];
        for (bytes, ct) in bodies {
            let body = Body::new(bytes, ct);
            for fields in [&order, &cart, &order] {
                assert_eq!(
                    rx.value_in(&body, fields),
                    rx.value(bytes, ct, fields),
                    "{:?}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        assert_eq!(rx.value(bodies[0].0, bodies[0].1, &cart), Some(12.5), "the path first");
        assert_eq!(rx.value(bodies[2].0, bodies[2].1, &cart), Some(5.0));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(form_decode("a+b%41%zz%"), "a bA%zz%");
    }
}
