//! Unit tests of the masker, on inputs as browsers and servers send them.

use super::*;

fn keyed(key: &str) -> Masker {
    Masker::new(&PrivacyConfig { mask_key: Some(key.into()), ..PrivacyConfig::default() }, true)
}

fn m() -> Masker {
    keyed("unit-tests")
}

/// The mask of `v` under the test key.
fn k(v: &str) -> String {
    m().mask(v.as_bytes())
}

#[test]
fn masks_are_consistent_short_and_keyed() {
    let a = m();
    assert_eq!(a.mask(b"abc"), a.mask(b"abc"));
    assert_ne!(a.mask(b"abc"), a.mask(b"abd"));
    let mask = a.mask(b"abc");
    assert!(mask.starts_with("***") && mask.len() == 9 && mask[3..].bytes().all(|c| c.is_ascii_hexdigit()), "{mask}");
    // The same key in another masker (another run with the same mask_key)
    // gives the same mask; another key another one.
    assert_eq!(keyed("unit-tests").mask(b"abc"), mask);
    assert_ne!(keyed("other").mask(b"abc"), mask);
    // Without a key, every masker of the run shares the run's random key.
    let (r1, r2) = (Masker::default(), Masker::new(&PrivacyConfig::default(), true));
    assert_eq!(r1.mask(b"abc"), r2.mask(b"abc"));
    assert_ne!(r1.mask(b"abc"), mask);
}

#[test]
fn off_lets_everything_through() {
    let off = Masker::off();
    assert!(!off.is_on());
    assert_eq!(
        off.url("/a;jsessionid=X?password=y&card=4111111111111111"),
        "/a;jsessionid=X?password=y&card=4111111111111111"
    );
    assert_eq!(off.header_value("Authorization", b"Bearer t0k"), "Bearer t0k");
    assert_eq!(off.cookie_header(b"sid=abc; bare"), "sid=abc; bare");
    assert_eq!(off.set_cookie(b"sid=abc; Path=/"), "sid=abc; Path=/");
    assert_eq!(off.form(b"password=x"), "password=x");
    assert_eq!(off.json(r#"{"access_token":"x"}"#), r#"{"access_token":"x"}"#);
    assert_eq!(off.text("4111 1111 1111 1111"), "4111 1111 1111 1111");
    // `[privacy] mask = false` turns it off too.
    let cfg = PrivacyConfig { mask: false, ..PrivacyConfig::default() };
    assert!(!Masker::new(&cfg, true).is_on());
    // The name rule still answers.
    assert!(off.is_secret_param(b"password") && !off.is_secret_param(b"q"));
}

#[test]
fn secret_headers() {
    let m = m();
    for h in [
        "Cookie",
        "set-cookie",
        "Authorization",
        "Proxy-Authorization",
        "X-CSRF-Token",
        "X-XSRF-TOKEN",
        "X-Api-Key",
        "X-Auth-Token",
        "X-Session-Id",
        "X-Client-Secret",
        "X-Password",
        "X-Card-Number",
    ] {
        assert!(m.is_secret_header(h), "{h}");
    }
    for h in ["Accept", "Host", "User-Agent", "Keep-Alive", "Content-Type", "Upgrade-Insecure-Requests", "Referer"] {
        assert!(!m.is_secret_header(h), "{h}");
    }
}

#[test]
fn header_values() {
    let m = m();
    assert_eq!(m.header_value("Authorization", b"Bearer eyJhbGciOi.x.y"), format!("Bearer {}", k("eyJhbGciOi.x.y")));
    assert_eq!(m.header_value("Authorization", b"Basic dXNlcjpwYXNz"), format!("Basic {}", k("dXNlcjpwYXNz")));
    assert_eq!(m.header_value("Proxy-Authorization", b"Basic cHJveHk6cHc="), format!("Basic {}", k("cHJveHk6cHc=")));
    // A value without a scheme word is masked whole.
    assert_eq!(m.header_value("Authorization", b"abcdef"), k("abcdef"));
    assert_eq!(m.header_value("X-CSRF-Token", b"c5rf-v4lue"), k("c5rf-v4lue"));
    assert_eq!(m.header_value("X-Api-Key", b"AKIA1234"), k("AKIA1234"));
    // URLs in headers.
    assert_eq!(
        m.header_value("Referer", b"https://shop.example/reset?token=r3set&lang=en"),
        format!("https://shop.example/reset?token={}&lang=en", k("r3set"))
    );
    assert_eq!(m.header_value("Location", b"/welcome?sid=S1D#x"), format!("/welcome?sid={}#x", k("S1D")));
    assert_eq!(m.header_value("Refresh", b"5; url=/next?session=abc"), format!("5; url=/next?session={}", k("abc")));
    assert_eq!(
        m.header_value("Refresh", b"0;URL='https://h/x?token=q'"),
        format!("0;URL='https://h/x?token={}'", k("q"))
    );
    assert_eq!(
        m.header_value("Link", b"</p?token=a>; rel=next, </q>; rel=prev"),
        format!("</p?token={}>; rel=next, </q>; rel=prev", k("a"))
    );
    // Other headers: as sent, card numbers masked.
    assert_eq!(m.header_value("Accept", b"text/html"), "text/html");
    assert_eq!(m.header_value("X-Note", b"paid with 4111 1111 1111 1111"), "paid with **** **** **** 1111");
    // Empty values stay empty.
    assert_eq!(m.header_value("X-Api-Key", b""), "");
    assert_eq!(m.header_value("Cookie", b""), "");
}

#[test]
fn cookies() {
    let m = m();
    assert_eq!(m.cookie_header(b"sid=abc; theme=dark"), format!("sid={}; theme={}", k("abc"), k("dark")));
    // A cookie without `=` is a value, not a name.
    assert_eq!(m.cookie_header(b"b4reV4lue; sid=abc"), format!("{}; sid={}", k("b4reV4lue"), k("abc")));
    assert_eq!(m.cookie_pairs(b"b4reV4lue")[0], (String::new(), k("b4reV4lue")));
    // Empty values, stray separators and spaces.
    assert_eq!(m.cookie_header(b" a= ;;  b=1 "), format!("a=; b={}", k("1")));
    assert_eq!(
        m.set_cookie(b"sid=n3w; Path=/; HttpOnly; Expires=Wed, 21 Oct 2026 07:28:00 GMT"),
        format!("sid={}; Path=/; HttpOnly; Expires=Wed, 21 Oct 2026 07:28:00 GMT", k("n3w"))
    );
    assert_eq!(m.set_cookie(b"lonely"), k("lonely"));
    assert_eq!(m.set_cookie_pair(b"a=b; Path=/"), ("a".to_string(), k("b")));
    // A session id is the same mask in a cookie and in a URL.
    assert!(m.url("/x;jsessionid=abc").ends_with(&k("abc")));
    // Non-UTF-8 bytes never break it.
    assert_eq!(m.cookie_header(b"s=\xff\xfe"), format!("s={}", m.mask(b"\xff\xfe")));
}

#[test]
fn urls() {
    let m = m();
    // Query values of secret names, plain, percent-encoded, bracketed,
    // compound; the others as sent.
    assert_eq!(
        m.url("/login?user=ann&password=hunter2&p%61ssword=h2&user%5Bpassword%5D=h3&new_password=h4&q=shoes"),
        format!(
            "/login?user=ann&password={}&p%61ssword={}&user%5Bpassword%5D={}&new_password={}&q=shoes",
            k("hunter2"),
            k("h2"),
            k("h3"),
            k("h4")
        )
    );
    // Values are hashed decoded: `a%2Bb` and `a+b` in a query are the
    // same as `a b`.
    assert_eq!(m.url("/?token=a%20b"), m.url("/?token=a+b"));
    // Path parameters, several per segment, in any segment.
    assert_eq!(
        m.url("/shop;jsessionid=J1/cart;sid=S2;v=1?x=1"),
        format!("/shop;jsessionid={}/cart;sid={};v=1?x=1", k("J1"), k("S2"))
    );
    // Absolute URLs with userinfo, ports and fragments.
    assert_eq!(
        m.url("https://bob:s3cret@shop.example:8443/a?token=t#access_token=f&state=ok"),
        format!("https://bob:{}@shop.example:8443/a?token={}#access_token={}&state=ok", k("s3cret"), k("t"), k("f"))
    );
    assert_eq!(m.url("//cdn.example/x?key=K"), format!("//cdn.example/x?key={}", k("K")));
    assert_eq!(m.url("/page#section-2"), "/page#section-2");
    // Empty values and repeated parameters.
    assert_eq!(m.url("/?password=&password=a&password=a"), format!("/?password=&password={0}&password={0}", k("a")));
    // Names that only look alike are left alone.
    assert_eq!(
        m.url("/s?inside=1&shipping=2&monkey=3&keyword=4&sidebar=5"),
        "/s?inside=1&shipping=2&monkey=3&keyword=4&sidebar=5"
    );
    // Malformed escapes, names without values, `;` as a query separator.
    assert_eq!(m.url("/?a=%zz&%&flag&x=1;token=t"), format!("/?a=%zz&%&flag&x=1;token={}", k("t")));
    // Card numbers anywhere: in a value, encoded, in the path.
    assert_eq!(m.url("/pay?n=4111111111111111&x=1"), "/pay?n=************1111&x=1");
    assert_eq!(m.url("/pay?n=4111+1111+1111+1111"), "/pay?n=****%20****%20****%201111");
    assert_eq!(m.url("/cards/4111-1111-1111-1111/edit"), "/cards/****-****-****-1111/edit");
    assert_eq!(m.url("/c/%34111111111111111"), "/c/************1111");
    // A URL in a parameter value is masked too.
    let u = m.url("/login?next=https%3A%2F%2Fshop.example%2Freset%3Ftoken%3Dzz9&x=1");
    assert!(!u.contains("zz9") && u.contains("x=1") && u.starts_with("/login?next=https%3A%2F%2Fshop.example"), "{u}");
    // Bytes that are not UTF-8 survive where nothing is masked.
    assert_eq!(
        &*m.url_raw(b"/\xff?token=\xfe&a=\xfd"),
        [&b"/\xff?token="[..], m.mask(b"\xfe").as_bytes(), b"&a=\xfd"].concat()
    );
    // Nothing to mask: the same bytes.
    for u in ["", "/", "*", "example.com:443", "/a/b?c=d", "?", "#", "http://h"] {
        assert_eq!(m.url(u), u);
    }
}

#[test]
fn configured_parameters_extend_the_words() {
    let cfg = PrivacyConfig {
        mask_params: vec!["email".into(), "zip".into()],
        mask_key: Some("t".into()),
        ..PrivacyConfig::default()
    };
    let m = Masker::new(&cfg, true);
    let u = m.url("/s?email=a%40b.example&zip_code=12345&password=x&q=1");
    assert!(!u.contains("a%40b") && !u.contains("12345") && !u.contains("=x&") && u.ends_with("&q=1"), "{u}");
    // Replacing the secret words replaces the built-in list.
    let cfg = PrivacyConfig { secret_words: vec!["pass".into()], mask_params: vec![], ..PrivacyConfig::default() };
    let m = Masker::new(&cfg, true);
    assert!(m.is_secret_param(b"password") && !m.is_secret_param(b"token"));
}

#[test]
fn query_pairs_and_forms() {
    let m = m();
    let p = m.query_pairs("user=ann&password=x&card_number=4111&empty=&flag");
    assert_eq!(p[0], ("user".into(), "ann".into()));
    assert_eq!(p[1], ("password".into(), k("x")));
    assert_eq!(p[2], ("card_number".into(), k("4111")));
    assert_eq!(p[3], ("empty".into(), String::new()));
    assert_eq!(p[4], ("flag".into(), String::new()));
    assert_eq!(
        m.form(b"login=ann&pass%77ord=p%40ss+w0rd&remember=1"),
        format!("login=ann&pass%77ord={}&remember=1", k("p@ss w0rd"))
    );
    assert_eq!(m.form(b"cc=4111+1111+1111+1111&x=1"), format!("cc={}&x=1", k("4111 1111 1111 1111")));
    assert_eq!(m.form(b"note=4111+1111+1111+1111"), "note=****%20****%20****%201111");
}

#[test]
fn json_documents() {
    let m = m();
    // Values replaced; spacing, order and everything else kept.
    let doc = "{\n  \"access_token\": \"eyJ0eXAi.abc\",\n  \"token_type\": \"Bearer\",\n  \"expires_in\": 3600,\n  \"user\": {\"name\": \"Ann\", \"password\": \"pw\", \"pin\": 1234, \"otp\": null}\n}";
    assert_eq!(
        m.json(doc),
        format!(
            "{{\n  \"access_token\": \"{}\",\n  \"token_type\": \"{}\",\n  \"expires_in\": 3600,\n  \"user\": {{\"name\": \"Ann\", \"password\": \"{}\", \"pin\": \"{}\", \"otp\": null}}\n}}",
            k("eyJ0eXAi.abc"),
            k("Bearer"),
            k("pw"),
            k("1234")
        )
    );
    // Everything under a secret name: objects and arrays.
    let out = m.json(r#"[{"card": {"number": "4111111111111111", "exp": "12/30"}, "keys": ["a", 1, true]}]"#);
    assert_eq!(
        out,
        format!(
            r#"[{{"card": {{"number": "{}", "exp": "{}"}}, "keys": ["{}", "{}", "{}"]}}]"#,
            k("4111111111111111"),
            k("12/30"),
            k("a"),
            k("1"),
            k("true")
        )
    );
    // Escaped names and values.
    assert_eq!(m.json(r#"{"p\u0061ssword":"a\"b"}"#), format!(r#"{{"p\u0061ssword":"{}"}}"#, k("a\"b")));
    // Card numbers in strings and as numbers; secrets written in strings.
    assert_eq!(
        m.json(r#"{"note":"card 4111 1111 1111 1111","n":4111111111111111}"#),
        r#"{"note":"card **** **** **** 1111","n":"************1111"}"#
    );
    assert_eq!(m.json(r#"{"next":"/reset?token=abc"}"#), format!(r#"{{"next":"/reset?token={}"}}"#, k("abc")));
    // A document cut short is masked as far as it goes.
    assert_eq!(m.json(r#"{"a": 1, "access_token": "eyJ0eX"#), format!(r#"{{"a": 1, "access_token": "{}"#, k("eyJ0eX")));
    // Not JSON: masked as text, card numbers included.
    assert_eq!(m.json("card: 4111111111111111"), "card: ************1111");
    // (a word after a space is prose, not a parameter)
    assert_eq!(m.json("[INFO] token=abc"), "[INFO] token=abc");
    // Unbalanced: not JSON, left as text.
    assert_eq!(m.json("{\"a\": 1} } \"sid\": \"x\""), format!("{{\"a\": 1}} }} \"sid\": \"{}\"", k("x")));
    // Deep nesting costs no stack.
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    assert_eq!(m.json(&deep), deep);
    let deep = format!("{}{{\"password\":\"x\"", "{\"a\":".repeat(100_000));
    assert!(m.json(&deep).ends_with(&format!("\"password\":\"{}\"", k("x"))));
    // Lines of JSON, one document each.
    assert_eq!(
        m.json("{\"sid\":\"a\"}\n{\"sid\":\"a\"}\n"),
        format!("{{\"sid\":\"{0}\"}}\n{{\"sid\":\"{0}\"}}\n", k("a"))
    );
}

#[test]
fn bodies_by_type() {
    let m = m();
    assert_eq!(
        m.body("application/x-www-form-urlencoded; charset=UTF-8", b"password=pw"),
        format!("password={}", k("pw"))
    );
    assert_eq!(m.body("application/json", br#"{"secret":"s"}"#), format!(r#"{{"secret":"{}"}}"#, k("s")));
    // JSON sent as text/plain is still JSON.
    assert_eq!(m.body("text/plain", br#"{"secret":"s"}"#), format!(r#"{{"secret":"{}"}}"#, k("s")));
    // HTML: links and inline JSON.
    let html = br#"<a href="/reset?token=t0k&amp;sid=s1d">reset</a><script>var c = {"apiKey": "AK"};</script> 4111 1111 1111 1111"#;
    assert_eq!(
        m.body("text/html", html),
        format!(
            r#"<a href="/reset?token={}&amp;sid={}">reset</a><script>var c = {{"apiKey": "{}"}};</script> **** **** **** 1111"#,
            k("t0k"),
            k("s1d"),
            k("AK")
        )
    );
    // Multipart forms: secret parts masked, the others as their type.
    let mp = b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nann\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\ncard 4111111111111111\r\n--XyZ--\r\n";
    let out = m.body("multipart/form-data; boundary=XyZ", mp);
    assert!(out.contains("name=\"user\"\r\n\r\nann\r\n--XyZ"), "{out}");
    assert!(out.contains(&format!("name=\"password\"\r\n\r\n{}\r\n--XyZ", k("hunter2"))), "{out}");
    assert!(out.contains("card ************1111\r\n--XyZ--\r\n"), "{out}");
    assert!(!out.contains("hunter2"));
}

#[test]
fn text_patterns() {
    let m = m();
    assert_eq!(m.text("GET /a?password=x HTTP/1.1"), format!("GET /a?password={} HTTP/1.1", k("x")));
    assert_eq!(m.text(r#"{\"token\":\"abc\"}"#), format!(r#"{{\"token\":\"{}\"}}"#, k("abc")));
    assert_eq!(m.text("\"pin\" : 1234,"), format!("\"pin\" : \"{}\",", k("1234")));
    assert_eq!(m.text("\"pin\": null"), "\"pin\": null");
    assert_eq!(m.text("\"pin\": \"\""), "\"pin\": \"\"");
    // A cut text: the value up to the end.
    assert_eq!(m.text("\"password\": \"abc"), format!("\"password\": \"{}", k("abc")));
    // Ordinary text is borrowed, not copied.
    assert!(matches!(m.text("Mozilla/5.0 (X11; Linux x86_64)"), Cow::Borrowed(_)));
    assert_eq!(m.text("a = b; key value"), "a = b; key value");
    assert_eq!(m.text("visit ?inside=1&shipping=2"), "visit ?inside=1&shipping=2");
    // The evidence of an API soft error (pov-classify writes the field and
    // its value as JSON): a secret field's value is masked, at any depth of
    // a pointer or inside the value; the verdict itself is not.
    assert_eq!(m.text(r#"status 200: "status": "error""#), r#"status 200: "status": "error""#);
    assert_eq!(
        m.text(r#"status 200: "auth/api_key": "k-1""#),
        format!(r#"status 200: "auth/api_key": "{}""#, k("k-1"))
    );
    assert_eq!(
        m.text(r#"status 200: "errors": [{"message":"expired","token":"abc…"#),
        format!(r#"status 200: "errors": [{{"message":"expired","token":"{}"#, k("abc…"))
    );
}

#[test]
fn html_form_fields_and_meta_tags() {
    let m = m();
    // A hidden CSRF field, a password field (any name), Rails' meta tag.
    let page = r#"<form><input type="hidden" name="authenticity_token" value="Zm9vYmFy+/="><input type=password name=pw1 value=hunter2><INPUT NAME='q' VALUE='shoes'></form><meta name="csrf-token" content="abc123"><meta property="og:title" content="Shop">"#;
    let out = m.text(page);
    assert_eq!(
        out,
        format!(
            r#"<form><input type="hidden" name="authenticity_token" value="{}"><input type=password name=pw1 value={}><INPUT NAME='q' VALUE='shoes'></form><meta name="csrf-token" content="{}"><meta property="og:title" content="Shop">"#,
            k("Zm9vYmFy+/="),
            k("hunter2"),
            k("abc123")
        )
    );
    // The same token posted back in the form body gets the same mask.
    assert_eq!(m.form(b"authenticity_token=Zm9vYmFy%2B%2F%3D"), format!("authenticity_token={}", k("Zm9vYmFy+/=")));
    // Names by `id`, attributes in any order, the value before the name.
    assert_eq!(
        m.text(r#"<input value="s3cr3t" id="api_key">"#),
        format!(r#"<input value="{}" id="api_key">"#, k("s3cr3t"))
    );
    // Not a tag of ours, or cut short: left to the other rules, unchanged.
    for same in [
        r#"<inputs name="token" value="x">"#,
        r#"<input name="token" value="x"#,
        r#"<input name="token" value="a<b">"#,
        r#"<input name="token">"#,
        r#"<p title="token">x</p>"#,
    ] {
        assert_eq!(m.text(same), same);
    }
    // A value in a tag without a secret name still meets the URL rule.
    let refresh = r#"<meta http-equiv="refresh" content="0;url=/next?token=t0k">"#;
    assert_eq!(m.text(refresh), format!(r#"<meta http-equiv="refresh" content="0;url=/next?token={}">"#, k("t0k")));
    // Linear: many unterminated tags in a row.
    let hostile = r#"<input name="token" value="x"#.repeat(20_000);
    assert_eq!(m.text(&hostile), hostile);
}

/// A small deterministic generator (xorshift64*), so the generated inputs
/// of the crate's tests are the same in every run.
pub(crate) struct Gen(pub(crate) u64);

impl Gen {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A text of up to `max` bytes from `alphabet` and `words`.
    pub(crate) fn text(&mut self, alphabet: &[u8], words: &[&str], max: usize) -> Vec<u8> {
        let len = (self.next() % (max as u64 + 1)) as usize;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            let r = self.next();
            if r.is_multiple_of(4) && !words.is_empty() {
                out.extend_from_slice(words[(r >> 8) as usize % words.len()].as_bytes());
            } else {
                out.push(alphabet[(r >> 8) as usize % alphabet.len()]);
            }
        }
        out
    }
}

#[test]
fn the_cheap_test_of_text_never_hides_a_secret() {
    // Whatever `maybe_secret` passes over, the full pass leaves as it is:
    // texts of digits with spaces and dashes (card runs), secret names,
    // `=`, quotes and tags, as headers, bodies and User-Agents have them.
    let m = m();
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"0123456789 -./;()<>?&=\"'aZ\t";
    let words = ["4111", "1111 ", "-1111", "password", "<input ", "type=password ", "value=x", "\"token\": ", "?sid="];
    let (mut passed, mut scanned) = (0, 0);
    for _ in 0..20_000 {
        let s = g.text(alphabet, &words, 60);
        let full = text::text(&m, &s);
        if maybe_secret(&s) {
            scanned += 1;
        } else {
            passed += 1;
            assert_eq!(full, s, "{}", String::from_utf8_lossy(&s));
        }
    }
    // Both sides were exercised.
    assert!(passed > 1_000 && scanned > 1_000, "{passed} passed, {scanned} scanned");
    // A User-Agent has more than 13 digits but no card run: passed over.
    let ua = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0";
    assert!(!maybe_secret(ua));
    assert!(maybe_secret(b"card 4111 1111 1111 1111") && maybe_secret(b"4111-1111-1111-1"));
    assert!(!maybe_secret(b"4111 1111 1111") && !maybe_secret(b"411111111111.1"));
}

#[test]
fn the_card_run_test_finds_every_run_the_mask_finds() {
    let mut g = Gen(0xD1B5_4A32_D192_ED03);
    let mut masked = 0;
    for _ in 0..50_000 {
        let s = g.text(b"0123456789 --a", &["4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004"], 40);
        let mut b = s.clone();
        if cards::mask_in_place(&mut b) {
            masked += 1;
            assert!(cards::may_hold(&s), "{}", String::from_utf8_lossy(&s));
        }
    }
    assert!(masked > 1_000, "{masked}");
}

#[test]
fn masks_are_the_hashs_top_24_bits_in_hex() {
    // The definition the masks have always had (datasets join across
    // nights on them with a fixed mask_key).
    let m = m();
    let mut g = Gen(7);
    for _ in 0..2_000 {
        let v = g.text(b"abc123=;% ", &[], 24);
        let h = key::siphash(m.inner.key, &v);
        assert_eq!(m.mask(&v), format!("***{:06x}", h >> 40));
    }
}

#[test]
fn cookie_headers_are_written_as_their_pairs_joined() {
    // `cookie_header` writes what `cookie_pairs` gives, joined by `; `.
    let m = m();
    for v in [&b"a=1; b=2"[..], b"  sid = abc ;;  theme=dark; bare; =x; y=; ;", b"only", b"", b"k=\xff\xfe; \xff=v"] {
        let joined = m
            .cookie_pairs(v)
            .into_iter()
            .map(|(k, v)| if k.is_empty() { v } else { format!("{k}={v}") })
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(m.cookie_header(v), joined, "{}", String::from_utf8_lossy(v));
    }
}

#[test]
fn secret_header_names_are_found_in_any_case_and_spacing() {
    for name in ["Cookie", " set-COOKIE ", "Authorization", "X-Auth-Token", "x-csrftoken", "X-API-KEY", "MySessionId"] {
        assert!(is_secret_header_name(name), "{name}");
        assert!(m().is_secret_header(name), "{name}");
    }
    for name in ["Accept", "user-agent", " Host", "X-Request-Id", ""] {
        assert!(!is_secret_header_name(name), "{name}");
    }
    // By the parameter rule, in any case.
    assert!(m().is_secret_header("X-Card-Number") && m().is_secret_header("x-card-number"));
}

/// The common header names' answers, found once, are the full rule's, in
/// any case and spacing, under the default words and under words that
/// make some of them secret; the list is sorted and lower-cased (it is
/// searched by halves).
#[test]
fn common_header_names_are_answered_as_the_full_rule_answers() {
    assert!(COMMON_HEADERS.windows(2).all(|w| w[0] < w[1]), "sorted, without repeats");
    assert!(COMMON_HEADERS.iter().all(|n| *n == n.trim().to_ascii_lowercase()));
    let words = PrivacyConfig {
        secret_words: vec!["accept".into(), "host".into(), "etag".into()],
        mask_key: Some("unit-tests".into()),
        ..PrivacyConfig::default()
    };
    let others = ["x-card-number", "x-auth-token", "x-request-id", "cookie"];
    let mut found = Vec::new();
    for masker in [m(), Masker::new(&words, true)] {
        let mut secret = Vec::new();
        for name in COMMON_HEADERS.iter().chain(&others) {
            let full = secret_header(&masker.inner.words, name);
            if full {
                secret.push(*name);
            }
            for asked in [name.to_string(), name.to_ascii_uppercase(), format!(" {name}\t")] {
                assert_eq!(masker.is_secret_header(&asked), full, "{asked:?}");
            }
        }
        found.push(secret);
    }
    // The default words make none of the common names secret; the second
    // words (which replace the default ones, card among them) make accept,
    // host and etag secret, and the names made from them.
    assert_eq!(found[0], ["x-card-number", "x-auth-token", "cookie"]);
    assert_eq!(
        found[1],
        ["accept", "accept-encoding", "accept-language", "accept-ranges", "etag", "host", "x-auth-token", "cookie"]
    );
}
