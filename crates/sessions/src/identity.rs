//! Who a request belongs to.

use std::fmt;
use std::net::IpAddr;

/// A user's identity, by the rule that found it (in order of trust).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum UserKey {
    /// A session cookie (name, value).
    Cookie(String, String),
    /// The configured identity header's value.
    Header(String),
    /// A session id in the query or path (parameter, value).
    Query(String, String),
    /// The name a user signed in with.
    Login(String),
    /// Client address and User-Agent (no identifier on the requests).
    Client(IpAddr, String),
    /// Only an address is known (connections that never carried HTTP).
    Address(IpAddr),
}

impl UserKey {
    /// The rule that identified the user: `cookie`, `header`, `query`,
    /// `login`, `client` (address + User-Agent) or `address`.
    pub fn rule(&self) -> &'static str {
        match self {
            UserKey::Cookie(..) => "cookie",
            UserKey::Header(_) => "header",
            UserKey::Query(..) => "query",
            UserKey::Login(_) => "login",
            UserKey::Client(..) => "client",
            UserKey::Address(_) => "address",
        }
    }

    /// The raw key, e.g. `cookie:sid=4f2a...` (secret: shown only with
    /// masking off).
    pub fn raw(&self) -> String {
        self.to_string()
    }

    /// A stable pseudonym for outputs: 16 hex digits of a keyed hash of the
    /// raw key. The same key and salt give the same pseudonym in every run
    /// and on every machine, so nightly reports can be joined.
    pub fn hashed(&self, salt: &str) -> String {
        // The raw key's text in pieces, hashed as they come (the same
        // bytes as `raw()`, without formatting it).
        let mut ip = String::new();
        let parts: [&[u8]; 4] = match self {
            UserKey::Cookie(n, v) => [b"cookie:", n.as_bytes(), b"=", v.as_bytes()],
            UserKey::Header(v) => [b"header:", v.as_bytes(), b"", b""],
            UserKey::Query(n, v) => [b"query:", n.as_bytes(), b"=", v.as_bytes()],
            UserKey::Login(v) => [b"login:", v.as_bytes(), b"", b""],
            UserKey::Client(a, ua) => {
                pov_capture::text::push_ip(&mut ip, *a);
                [b"client:", ip.as_bytes(), b" ", ua.as_bytes()]
            }
            UserKey::Address(a) => {
                pov_capture::text::push_ip(&mut ip, *a);
                [b"address:", ip.as_bytes(), b"", b""]
            }
        };
        hash_parts(&parts, salt)
    }

    /// [`UserKey::hashed`] of `UserKey::Cookie(name, value)`, or of
    /// `UserKey::Query(name, value)` when `query`, without making the key.
    pub fn pair_hashed(query: bool, name: &str, value: &str, salt: &str) -> String {
        let kind: &[u8] = if query { b"query:" } else { b"cookie:" };
        hash_parts(&[kind, name.as_bytes(), b"=", value.as_bytes()], salt)
    }
}

/// The pseudonym of the raw key that `parts` make one after another.
fn hash_parts(parts: &[&[u8]; 4], salt: &str) -> String {
    let [p0, p1, p2, p3] = *parts;
    let salt = salt.as_bytes();
    let a = fnv1a(0xcbf2_9ce4_8422_2325, &[salt, &[0], p0, p1, p2, p3]);
    let b = fnv1a(0x8422_2325_cbf2_9ce4 ^ a, &[p0, p1, p2, p3, &[0], salt]);
    let mut out = [0u8; 16];
    let words = [(a >> 32) as u32 ^ a as u32, (b >> 32) as u32 ^ b as u32];
    for (i, digit) in out.iter_mut().enumerate() {
        let d = (words[i / 8] >> ((7 - i % 8) * 4)) & 0xf;
        *digit = b"0123456789abcdef"[d as usize];
    }
    std::str::from_utf8(&out).map(str::to_owned).unwrap_or_default()
}

/// FNV-1a over the bytes of `parts`, one after another, then a final
/// avalanche (splitmix64) so near keys look unrelated. (A loop a part: a
/// chain of byte iterators cost three times the instructions.)
fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = seed;
    for part in parts {
        for x in *part {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserKey::Cookie(n, v) => write!(f, "cookie:{n}={v}"),
            UserKey::Header(v) => write!(f, "header:{v}"),
            UserKey::Query(n, v) => write!(f, "query:{n}={v}"),
            UserKey::Login(v) => write!(f, "login:{v}"),
            UserKey::Client(ip, ua) => write!(f, "client:{ip} {ua}"),
            UserKey::Address(ip) => write!(f, "address:{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition the pseudonyms of earlier nights were made with:
    /// the hash of the formatted raw key, salted on both sides. Datasets
    /// join across nights by pseudonym, so it must never change (the hash
    /// itself is pinned by a known value below).
    fn hashed_as_defined(k: &UserKey, salt: &str) -> String {
        let (raw, salt) = (k.raw(), salt.as_bytes());
        let a = fnv1a(0xcbf2_9ce4_8422_2325, &[&[salt, &[0], raw.as_bytes()].concat()]);
        let b = fnv1a(0x8422_2325_cbf2_9ce4 ^ a, &[&[raw.as_bytes(), &[0], salt].concat()]);
        format!("{:08x}{:08x}", (a >> 32) as u32 ^ a as u32, (b >> 32) as u32 ^ b as u32)
    }

    #[test]
    fn pseudonyms_are_the_hash_of_the_raw_key_for_every_rule() {
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let keys = [
            UserKey::Cookie("sid".into(), "4f2a9c".into()),
            UserKey::Header("user-17".into()),
            UserKey::Query("jsessionid".into(), "ABC".into()),
            UserKey::Login("ana@example.com".into()),
            UserKey::Client("10.1.2.3".parse().unwrap(), "Mozilla/5.0 (X11)".into()),
            UserKey::Client(v6, String::new()),
            UserKey::Address("192.0.2.200".parse().unwrap()),
            UserKey::Address(v6),
        ];
        for k in &keys {
            for salt in ["", "pepper"] {
                assert_eq!(k.hashed(salt), hashed_as_defined(k, salt), "{k}");
                if let UserKey::Cookie(n, v) | UserKey::Query(n, v) = k {
                    let query = matches!(k, UserKey::Query(..));
                    assert_eq!(UserKey::pair_hashed(query, n, v, salt), k.hashed(salt), "{k}");
                }
            }
        }
        // A pinned value: the pseudonym of a known key as every earlier run
        // wrote it (computed apart from this code).
        assert_eq!(UserKey::Cookie("sid".into(), "abc".into()).hashed(""), "1dac033ce077258c");
    }

    #[test]
    fn pseudonyms_are_stable_and_salted() {
        let k = UserKey::Cookie("sid".into(), "abc".into());
        assert_eq!(k.hashed(""), k.hashed(""));
        assert_eq!(k.hashed("").len(), 16);
        assert_ne!(k.hashed(""), k.hashed("pepper"));
        assert_ne!(k.hashed(""), UserKey::Cookie("sid".into(), "abd".into()).hashed(""));
        assert_eq!(k.raw(), "cookie:sid=abc");
        assert_eq!(UserKey::Address("10.0.0.1".parse().unwrap()).rule(), "address");
    }
}
