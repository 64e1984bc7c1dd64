//! Text of wire bytes and addresses, made cheaply: what every transaction
//! record and user key needs many times over.
//!
//! Header values are nearly always ASCII. [`lossy`] checks them with the
//! standard library's UTF-8 validation (a word at a time) and borrows
//! them when valid; only invalid ones take `String::from_utf8_lossy`'s
//! byte-by-byte scan. [`push_ip`] writes an address without the
//! formatting machinery (which costs about a thousand instructions an
//! address). Both give exactly what the standard library gives.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr};

/// `bytes` as text, each invalid UTF-8 sequence replaced by U+FFFD exactly
/// as `String::from_utf8_lossy` does; borrowed when valid.
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Appends `ip` as its `Display` writes it.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u8(out, o);
            }
        }
        IpAddr::V6(v6) => push_ipv6(out, v6),
    }
}

/// Appends `a` as its `Display` writes it (RFC 5952: lowercase hex
/// without leading zeros, the first longest run of two or more zero
/// groups as `::`, an IPv4-mapped address's last 32 bits as IPv4).
fn push_ipv6(out: &mut String, a: Ipv6Addr) {
    if let Some(v4) = a.to_ipv4_mapped() {
        out.push_str("::ffff:");
        push_ip(out, IpAddr::V4(v4));
        return;
    }
    let g = a.segments();
    // The first longest run of zero groups.
    let (mut run, mut run_len, mut at, mut len) = (0, 0, 0, 0);
    for (i, &v) in g.iter().enumerate() {
        if v == 0 {
            if len == 0 {
                at = i;
            }
            len += 1;
            if len > run_len {
                (run, run_len) = (at, len);
            }
        } else {
            len = 0;
        }
    }
    let groups = |out: &mut String, gs: &[u16]| {
        for (i, &v) in gs.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            push_hex16(out, v);
        }
    };
    if run_len < 2 {
        groups(out, &g);
    } else {
        groups(out, &g[..run]);
        out.push_str("::");
        groups(out, &g[run + run_len..]);
    }
}

/// Appends `v` in lowercase hex without leading zeros.
fn push_hex16(out: &mut String, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let d = usize::from((v >> shift) & 0xf);
        if d != 0 || started || shift == 0 {
            started = true;
            out.push(char::from(HEX[d]));
        }
    }
}

/// A connection's uid as the records name it: `C` and its id in decimal,
/// as `format!("C{id}")` writes it, without the formatting machinery
/// (600 instructions a record).
pub fn conn_uid(id: u64) -> String {
    let mut s = String::with_capacity(21);
    push_conn_uid(&mut s, id);
    s
}

/// Appends [`conn_uid`]`(id)` to `out`.
pub fn push_conn_uid(out: &mut String, id: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = id;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push('C');
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// `ip` as its `Display` writes it.
pub fn ip_text(ip: IpAddr) -> String {
    let mut s = String::with_capacity(15);
    push_ip(&mut s, ip);
    s
}

fn push_u8(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn uids_read_as_format_writes_them() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let edges = [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        for id in edges.into_iter().chain((0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        })) {
            assert_eq!(conn_uid(id), format!("C{id}"));
        }
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut v4: Vec<Ipv4Addr> = vec![
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(10, 0, 99, 100),
            Ipv4Addr::new(1, 20, 255, 9),
        ];
        v4.extend((0..20_000).map(|_| Ipv4Addr::from(next() as u32)));
        for a in v4 {
            assert_eq!(ip_text(a.into()), a.to_string());
        }
        for a in [Ipv6Addr::LOCALHOST, "::ffff:10.1.2.3".parse().unwrap(), "2001:db8::1:0:0:1".parse().unwrap()] {
            assert_eq!(ip_text(a.into()), a.to_string());
        }
        // IPv6: every pattern of zero groups, with values of every width
        // (and the IPv4-mapped and -compatible forms among them), then
        // random addresses.
        let widths = [0x1, 0xa, 0x1f, 0xabc, 0xffff, 0x1000, 0x0100, 0x0010];
        for zeros in 0u32..256 {
            for w in 0..widths.len() {
                let g: [u16; 8] = std::array::from_fn(|i| if zeros >> i & 1 == 1 { 0 } else { widths[(i + w) % 8] });
                for a in [Ipv6Addr::from(g), Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, g[6], g[7]])] {
                    assert_eq!(ip_text(a.into()), a.to_string());
                }
            }
        }
        for _ in 0..20_000 {
            let a = Ipv6Addr::from(u128::from(next()) << 64 | u128::from(next()));
            assert_eq!(ip_text(a.into()), a.to_string());
        }
        let mut s = String::from("client:");
        push_ip(&mut s, Ipv4Addr::new(192, 0, 2, 7).into());
        assert_eq!(s, "client:192.0.2.7");
    }

    #[test]
    fn text_is_what_from_utf8_lossy_gives_and_borrowed_when_valid() {
        for bytes in [
            &b"Mozilla/5.0 (X11; Linux x86_64)"[..],
            "caf\u{e9} \u{1f600}".as_bytes(),
            b"bad \xff\xfe tail",
            b"cut \xe2\x82",
            b"\xf0\x9f\x98 mid",
            b"",
        ] {
            assert_eq!(lossy(bytes), String::from_utf8_lossy(bytes), "{bytes:?}");
            assert_eq!(matches!(lossy(bytes), Cow::Borrowed(_)), std::str::from_utf8(bytes).is_ok());
        }
    }
}
