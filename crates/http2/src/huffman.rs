//! The HPACK Huffman code (RFC 7541 Appendix B), decoding only.
//!
//! The code is canonical: within one length, codes follow symbol order,
//! and each length starts where the previous one ended (shifted left by
//! the difference in length). So the RFC's table is fully described by
//! the code length of each of its 257 symbols (`LENGTHS`); the codes are
//! rebuilt from them once, and a test checks them against codes printed
//! in the RFC and checks that the code is complete (Kraft sum exactly 1).
//!
//! Decoding reads the input into a 64-bit window. Codes of up to 8 bits
//! (the common letters, digits and punctuation) are found with one look
//! in a 256-entry table; longer ones by length, comparing the window with
//! the first code of each length.

use std::sync::OnceLock;

/// Code length in bits of each symbol 0..=255, then EOS (256), as listed
/// in RFC 7541 Appendix B.
#[rustfmt::skip]
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28,
    28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8,
    11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12,
    10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22,
    22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23,
    21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24,
    21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22,
    23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21,
    26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22,
    21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27,
    27, 28, 27, 27, 27, 27, 27, 26,
    30,
];

/// The end-of-string symbol; it never appears inside a string.
const EOS: u16 = 256;
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// Why a Huffman string did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol appeared inside the string (RFC 7541 5.2).
    Eos,
    /// The string ended with more than 7 bits of padding, or with padding
    /// that is not the most significant bits of EOS (all ones).
    BadPadding,
}

/// The decoding tables, built once from [`LENGTHS`].
struct Tables {
    /// Code of each symbol (for the tests and for building the rest).
    codes: [u32; 257],
    /// For every 8-bit prefix whose code is at most 8 bits long:
    /// (symbol, length); length 0 means a longer code starts there.
    fast: [(u16, u8); 256],
    /// Per length: the first code of that length, the number of codes of
    /// that length, and where they start in `sorted`.
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [u32; MAX_LEN + 1],
    /// Symbols ordered by (length, symbol): canonical order.
    sorted: [u16; 257],
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Tables {
            codes: [0; 257],
            fast: [(0, 0); 256],
            first: [0; MAX_LEN + 1],
            count: [0; MAX_LEN + 1],
            offset: [0; MAX_LEN + 1],
            sorted: [0; 257],
        };
        for &l in &LENGTHS {
            t.count[l as usize] += 1;
        }
        let mut code = 0u32;
        let mut at = 0u32;
        for len in MIN_LEN..=MAX_LEN {
            t.first[len] = code;
            t.offset[len] = at;
            let mut n = 0;
            for (sym, &l) in LENGTHS.iter().enumerate() {
                if l as usize == len {
                    t.codes[sym] = code + n;
                    t.sorted[(at + n) as usize] = sym as u16;
                    n += 1;
                }
            }
            code = (code + n) << 1;
            at += n;
        }
        for (sym, &l) in LENGTHS.iter().enumerate() {
            if l <= 8 {
                let base = (t.codes[sym] << (8 - l)) as usize;
                for k in 0..(1usize << (8 - l)) {
                    t.fast[base + k] = (sym as u16, l);
                }
            }
        }
        t
    })
}

/// Decodes the Huffman-coded `input`, appending the bytes to `out`.
/// On error, what was decoded before it stays in `out`.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let t = tables();
    out.reserve(input.len() + input.len() / 2);
    // `window` holds `bits` unread bits, most significant first, in its
    // low `bits` bits.
    let mut window: u64 = 0;
    let mut bits: usize = 0;
    let mut input = input.iter();
    loop {
        while bits <= 56 {
            match input.next() {
                Some(&b) => {
                    window = (window << 8) | u64::from(b);
                    bits += 8;
                }
                None => break,
            }
        }
        if bits < MIN_LEN {
            break;
        }
        // The top 8 bits (padded with ones past the end, as EOS would be:
        // a short code found in the padding is rejected below).
        let top8 = if bits >= 8 {
            (window >> (bits - 8)) as usize & 0xff
        } else {
            (((window << (8 - bits)) as usize) | ((1 << (8 - bits)) - 1)) & 0xff
        };
        let (sym, len) = t.fast[top8];
        let (sym, len) = if len != 0 {
            (sym, len as usize)
        } else {
            let mut found = None;
            for len in 9..=MAX_LEN.min(bits) {
                let code = ((window >> (bits - len)) & ((1u64 << len) - 1)) as u32;
                let rel = code.wrapping_sub(t.first[len]);
                if code >= t.first[len] && rel < t.count[len] {
                    found = Some((t.sorted[(t.offset[len] + rel) as usize], len));
                    break;
                }
            }
            match found {
                Some(f) => f,
                // The rest is shorter than any code that fits: padding.
                None => break,
            }
        };
        if len > bits {
            break;
        }
        if sym == EOS {
            return Err(HuffmanError::Eos);
        }
        out.push(sym as u8);
        bits -= len;
        window &= (1u64 << bits).wrapping_sub(1);
    }
    // What is left is padding: fewer than 8 bits, all ones.
    if bits > 7 || window != (1u64 << bits) - 1 {
        return Err(HuffmanError::BadPadding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_rfc_table() {
        let t = tables();
        // (symbol, code, length) as printed in RFC 7541 Appendix B.
        for (sym, code, len) in [
            (0usize, 0x1ff8u32, 13u8),
            (1, 0x7fffd8, 23),
            (9, 0xffffea, 24),
            (10, 0x3ffffffc, 30),
            (13, 0x3ffffffd, 30),
            (22, 0x3ffffffe, 30),
            (b' ' as usize, 0x14, 6),
            (b'!' as usize, 0x3f8, 10),
            (b'&' as usize, 0xf8, 8),
            (b'0' as usize, 0x0, 5),
            (b'<' as usize, 0x7ffc, 15),
            (b'\\' as usize, 0x7fff0, 19),
            (b'a' as usize, 0x3, 5),
            (b'z' as usize, 0x7b, 7),
            (b'~' as usize, 0x1ffd, 13),
            (127, 0xffffffc, 28),
            (128, 0xfffe6, 20),
            (199, 0x1ffffec, 25),
            (203, 0x7ffffde, 27),
            (220, 0xffffffd, 28),
            (249, 0xffffffe, 28),
            (255, 0x3ffffee, 26),
            (256, 0x3fffffff, 30),
        ] {
            assert_eq!((t.codes[sym], LENGTHS[sym]), (code, len), "symbol {sym}");
        }
    }

    #[test]
    fn the_code_is_complete() {
        // Kraft: sum of 2^-len over all symbols is exactly 1.
        let sum: u64 = LENGTHS.iter().map(|&l| 1u64 << (MAX_LEN - l as usize)).sum();
        assert_eq!(sum, 1u64 << MAX_LEN);
    }

    /// Encodes with the rebuilt codes (for round trips only).
    fn encode(s: &[u8]) -> Vec<u8> {
        let t = tables();
        let (mut acc, mut n, mut out) = (0u64, 0usize, Vec::new());
        for &b in s {
            acc = (acc << LENGTHS[b as usize]) | u64::from(t.codes[b as usize]);
            n += LENGTHS[b as usize] as usize;
            while n >= 8 {
                out.push((acc >> (n - 8)) as u8);
                n -= 8;
                acc &= (1 << n) - 1;
            }
        }
        if n > 0 {
            out.push(((acc << (8 - n)) | ((1 << (8 - n)) - 1)) as u8);
        }
        out
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).unwrap();
        assert_eq!(out, all);
        for b in 0..=255u8 {
            let mut out = Vec::new();
            decode(&encode(&[b, b, b]), &mut out).unwrap();
            assert_eq!(out, [b, b, b]);
        }
    }

    #[test]
    fn rfc_strings() {
        // RFC 7541 C.4.1: "www.example.com".
        let mut out = Vec::new();
        decode(&[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff], &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
        // C.4.2: "no-cache".
        out.clear();
        decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], &mut out).unwrap();
        assert_eq!(out, b"no-cache");
    }

    #[test]
    fn bad_padding_and_eos() {
        let mut out = Vec::new();
        // "0" is 00000; padding 000 is not ones.
        assert_eq!(decode(&[0x00], &mut out), Err(HuffmanError::BadPadding));
        // A whole byte of ones after a complete code: padding over 7 bits.
        out.clear();
        assert_eq!(decode(&[0x07, 0xff], &mut out), Err(HuffmanError::BadPadding));
        // EOS itself (30 ones) and then padding.
        out.clear();
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff], &mut out), Err(HuffmanError::Eos));
        // Empty input is the empty string.
        out.clear();
        assert_eq!(decode(&[], &mut out), Ok(()));
        assert!(out.is_empty());
    }
}
