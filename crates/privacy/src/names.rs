//! Which parameter, field and header names hold secrets.
//!
//! A name is first normalised: percent-decoded (malformed escapes stay as
//! they are, `+` is a space), then cut into word parts at every character
//! that is not a letter or digit (`_`, `-`, `.`, `[`, `]` ...), at camelCase
//! boundaries (`apiKey`, `APIKey`) and between letters and digits (`cvv2`),
//! and the parts lowercased. Then a secret word matches:
//! - a word of four letters or more (`pass`, `token`, `secret`, `auth`,
//!   `session`, `card`) anywhere in the parts run together, so
//!   `password`, `new_password`, `user[password]`, `accessToken` and
//!   `jsessionid` all match;
//! - a shorter word (`pwd`, `key`, `sid`, `cvv`, `pin`, `ssn`, `otp`) only as
//!   a whole part, as that part plus `s`, or after one of a few prefixes
//!   written without a separator (`new`, `old`, `user`, `api` ...): `key`,
//!   `api_key`, `apiKey`, `apikey`, `pin`, `userpin`, `connect.sid` match;
//!   `monkey`, `keyword`, `inside`, `side`, `shipping`, `spinner` do not.

/// Prefixes a short secret word may follow without a separator
/// (`newpin`, `apikey`, `userpwd`).
const PREFIXES: [&str; 13] =
    ["new", "old", "cur", "current", "confirm", "user", "my", "api", "app", "client", "private", "access", "auth"];

/// Compiled secret words.
#[derive(Clone, Debug, Default)]
pub(crate) struct Words {
    /// Words of four letters or more (matched anywhere).
    long: Vec<String>,
    /// Shorter words (matched as word parts).
    short: Vec<String>,
    /// The first two bytes of every word of two bytes or more, as a bit
    /// set over the 65,536 pairs (empty until [`Words::new`] fills it):
    /// the cheap first test looks at the words only where a pair starts.
    pairs: Vec<u64>,
    /// The words of one byte, as a bit set over the 256 bytes.
    ones: [u64; 4],
}

impl Words {
    /// Compiles `words` (each normalised like a name, its parts run
    /// together: `api_key` is `apikey`).
    pub(crate) fn new<'a>(words: impl IntoIterator<Item = &'a str>) -> Words {
        let mut w = Words::default();
        for word in words {
            let compact: String = parts(word.as_bytes()).concat();
            if compact.is_empty() {
                continue;
            }
            let list = if compact.chars().count() >= 4 { &mut w.long } else { &mut w.short };
            if !list.contains(&compact) {
                list.push(compact);
            }
        }
        w.pairs = vec![0; 1 << 10];
        for word in w.long.iter().chain(&w.short) {
            match *word.as_bytes() {
                [a] => w.ones[usize::from(a >> 6)] |= 1 << (a & 63),
                [a, b, ..] => {
                    let pair = usize::from(a) << 8 | usize::from(b);
                    w.pairs[pair >> 6] |= 1 << (pair & 63);
                }
                [] => {}
            }
        }
        w
    }

    /// Whether `name` (as sent: percent-encoded, any bytes) names a secret.
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        self.may_match(name) && self.matches_parts(name)
    }

    /// [`Words::matches`] without the first test.
    fn matches_parts(&self, name: &[u8]) -> bool {
        let parts = parts(name);
        if parts.is_empty() {
            return false;
        }
        if !self.long.is_empty() {
            let compact = parts.concat();
            if self.long.iter().any(|w| compact.contains(w.as_str())) {
                return true;
            }
        }
        self.short.iter().any(|w| parts.iter().any(|p| short_match(p, w)))
    }
}

impl Words {
    /// A cheap first test, without allocating: false when no word can
    /// match. For a plain ASCII name, every match (a long word in the parts
    /// run together, a short word in one part) is a substring of its
    /// letters and digits, lowercased.
    fn may_match(&self, name: &[u8]) -> bool {
        const MAX: usize = 128;
        if name.len() > MAX || name.iter().any(|c| !c.is_ascii() || *c == b'%') {
            return true;
        }
        let mut buf = [0u8; MAX];
        let mut n = 0;
        for c in name.iter().filter(|c| c.is_ascii_alphanumeric()) {
            buf[n] = c.to_ascii_lowercase();
            n += 1;
        }
        let hay = &buf[..n];
        // A word found in `hay` starts at some byte: where that byte (a
        // word of one byte) or that byte and the next (the first two of a
        // longer word) are in the bit sets, the words are compared there.
        let bit = |set: &[u64], i: usize| set.get(i >> 6).is_some_and(|w| w >> (i & 63) & 1 == 1);
        (0..n).any(|i| {
            let c = hay[i];
            bit(&self.ones, usize::from(c))
                || (i + 1 < n
                    && bit(&self.pairs, usize::from(c) << 8 | usize::from(hay[i + 1]))
                    && self.long.iter().chain(&self.short).any(|w| hay[i..].starts_with(w.as_bytes())))
        })
    }
}

fn short_match(part: &str, word: &str) -> bool {
    if part == word {
        return true;
    }
    if let Some(rest) = part.strip_prefix(word)
        && rest == "s"
    {
        return true;
    }
    match part.strip_suffix(word) {
        Some(pre) => PREFIXES.contains(&pre),
        None => false,
    }
}

/// Percent-decodes `s` (`+` as a space when `plus` is set); malformed
/// escapes are kept as they are.
pub(crate) fn percent_decode(s: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (s.get(i + 1).and_then(|c| hex(*c)), s.get(i + 2).and_then(|c| hex(*c)))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The lowercased word parts of a name (see the module docs).
pub(crate) fn parts(name: &[u8]) -> Vec<String> {
    let decoded = percent_decode(name, true);
    let text = String::from_utf8_lossy(&decoded);
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some(&prev) = i.checked_sub(1).and_then(|j| chars.get(j))
            && prev.is_alphanumeric()
        {
            let next = chars.get(i + 1).copied();
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase))
                || (prev.is_numeric() != c.is_numeric());
            if boundary && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_words() -> Words {
        Words::new(crate::SECRET_WORDS.iter().copied().chain(crate::DEFAULT_MASK_PARAMS.iter().copied()))
    }

    #[test]
    fn names_are_cut_into_parts() {
        assert_eq!(parts(b"user[password]"), ["user", "password"]);
        assert_eq!(parts(b"apiKey"), ["api", "key"]);
        assert_eq!(parts(b"APIKey"), ["api", "key"]);
        assert_eq!(parts(b"X-CSRF-Token"), ["x", "csrf", "token"]);
        assert_eq!(parts(b"cvv2"), ["cvv", "2"]);
        assert_eq!(parts(b"connect.sid"), ["connect", "sid"]);
        assert_eq!(parts(b"p%61ssword"), ["password"]);
        assert_eq!(parts(b"new%5Fpin"), ["new", "pin"]);
        // Malformed escapes and bytes that are not UTF-8 separate parts.
        assert_eq!(parts(b"%zzkey"), ["zzkey"]);
        assert_eq!(parts(b"a\xffkey"), ["a", "key"]);
        assert!(parts(b"").is_empty() && parts(b"[]").is_empty());
    }

    #[test]
    fn secret_names_match() {
        let w = default_words();
        for name in [
            "password",
            "Password",
            "PASSWORD",
            "passwd",
            "p%61ssword",
            "p%61ss%77ord",
            "user[password]",
            "user%5Bpassword%5D",
            "new_password",
            "old-password",
            "confirmPassword",
            "pwd",
            "new_pwd",
            "newpwd",
            "token",
            "access_token",
            "accessToken",
            "csrfmiddlewaretoken",
            "secret",
            "client_secret",
            "key",
            "api_key",
            "apiKey",
            "apikey",
            "keys",
            "private-key",
            "auth",
            "authToken",
            "oauth_verifier",
            "Authorization",
            "session",
            "sessionid",
            "JSESSIONID",
            "jsessionid",
            "PHPSESSID",
            "ASP.NET_SessionId",
            "sid",
            "connect.sid",
            "card",
            "card_number",
            "cardNumber",
            "creditcard",
            "card[number]",
            "cvv",
            "cvv2",
            "cvc",
            "pin",
            "PIN",
            "pin_code",
            "userPin",
            "ssn",
            "otp",
            "otp_code",
            "cc",
            "cc_number",
        ] {
            assert!(w.matches(name.as_bytes()), "{name} should be secret");
        }
    }

    #[test]
    fn ordinary_names_do_not_match() {
        let w = default_words();
        for name in [
            "inside",
            "side",
            "sidebar",
            "consider",
            "residence",
            "shipping",
            "shipping_method",
            "pinned",
            "spinner",
            "ping",
            "monkey",
            "turkey",
            "keyword",
            "keywords",
            "hockey",
            "q",
            "page",
            "sort",
            "product",
            "user",
            "email",
            "account",
            "topic",
            "footprint",
            "lesson",
            "",
            "%",
            "[]",
        ] {
            assert!(!w.matches(name.as_bytes()), "{name} should not be secret");
        }
    }

    #[test]
    fn the_cheap_first_test_never_hides_a_match() {
        let w = default_words();
        let names: Vec<Vec<u8>> = [
            &b"pass_word"[..],
            b"TO-KEN",
            b"x.SID",
            b"a+b+pin",
            b"apiKey",
            b"APIKey",
            b"Card[Number]",
            b"cvv2",
            b"user[password]",
            b"X-CSRF-Token",
            b"monkey",
            b"inside",
            b"phpSessId",
            b"s e s s i o n",
        ]
        .iter()
        .map(|n| n.to_vec())
        // And every name of two to four letters from a small alphabet.
        .chain((0..4u32.pow(4)).flat_map(|i| {
            let al = b"kesy";
            (2..=4).map(move |len| (0..len).map(|j| al[((i >> (2 * j)) & 3) as usize]).collect::<Vec<u8>>())
        }))
        .collect();
        for n in &names {
            assert_eq!(w.matches(n), w.matches_parts(n), "{}", String::from_utf8_lossy(n));
        }
    }

    #[test]
    fn the_cheap_first_test_is_a_substring_search() {
        // The bit sets find exactly what comparing every word at every
        // place finds, for the default words and for configured ones with
        // words of one and two letters.
        let reference = |w: &Words, name: &[u8]| {
            let hay: Vec<u8> = name.iter().filter(|c| c.is_ascii_alphanumeric()).map(u8::to_ascii_lowercase).collect();
            w.long.iter().chain(&w.short).any(|x| hay.windows(x.len()).any(|h| h == x.as_bytes()))
        };
        let lists = [default_words(), Words::new(["x", "cc", "iban", "émail", "zip"])];
        let mut g = crate::tests::Gen(0x2545_F491_4F6C_DD1D);
        for _ in 0..30_000 {
            let name = g.text(b"ackinopsxyzCIKS_-.[]19", &[], 11);
            for w in &lists {
                assert_eq!(w.may_match(&name), reference(w, &name), "{}", String::from_utf8_lossy(&name));
            }
        }
    }

    #[test]
    fn configured_words_follow_the_same_rule() {
        let w = Words::new(["email", "zip", "api_token_v2"]);
        assert!(w.matches(b"email") && w.matches(b"user_email") && w.matches(b"EmailAddress"));
        assert!(w.matches(b"zip") && w.matches(b"zip_code") && !w.matches(b"unzip"));
        // A configured word with separators is run together.
        assert!(w.matches(b"apitokenv2") && w.matches(b"api-token-v2"));
        assert!(!w.matches(b"password"), "only the configured words");
        assert!(!Words::new(["", "[]"]).matches(b"anything"));
    }

    #[test]
    fn decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode(b"a%41%4", false), b"aA%4");
        assert_eq!(percent_decode(b"%zz+x", true), b"%zz x");
        assert_eq!(percent_decode(b"%ff", false), [0xff]);
    }
}
