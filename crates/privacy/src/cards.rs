//! Card numbers in text: 13 to 19 digits, single spaces or dashes between
//! them allowed, not part of a longer word or number, passing the Luhn
//! check. All but the last four digits become `*` (the length and the
//! separators stay, so the text around them is unchanged).

/// Whether `b` holds a run of 13 digits or more, joined by single spaces
/// or dashes: what [`mask_in_place`] looks for (false: it masks nothing).
/// A cheap test, without the Luhn check.
pub(crate) fn may_hold(b: &[u8]) -> bool {
    // Fewer than 13 digits in all: no run of 13 (counted sixteen bytes at
    // a time, which the compiler vectorises, before the byte-by-byte walk).
    let mut blocks = b.chunks_exact(16);
    let in_blocks: usize =
        blocks.by_ref().map(|block| usize::from(block.iter().map(|c| u8::from(c.is_ascii_digit())).sum::<u8>())).sum();
    if in_blocks + blocks.remainder().iter().filter(|c| c.is_ascii_digit()).count() < 13 {
        return false;
    }
    // A run spans 13 bytes or more, none of them one that no run holds
    // (not a digit, space or dash). Where the 13th byte from a fresh start
    // is such a byte, no run starts before it: the walk jumps past it, so
    // that text (a User-Agent's letters) is passed over 13 bytes a step.
    let breaks = |c: u8| !c.is_ascii_digit() && c != b' ' && c != b'-';
    let mut from = 0;
    while from + 13 <= b.len() {
        if breaks(b[from + 12]) {
            from += 13;
            continue;
        }
        let mut digits = 0;
        let mut i = from;
        while let Some(&c) = b.get(i) {
            if c.is_ascii_digit() {
                digits += 1;
                if digits >= 13 {
                    return true;
                }
            } else if breaks(c) && i >= from + 12 {
                // A fresh start after it, as at `from`.
                break;
            } else if !(digits > 0 && matches!(c, b' ' | b'-') && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
                digits = 0;
            }
            i += 1;
        }
        from = i + 1;
    }
    false
}

/// Masks the card numbers in `b` in place; returns whether any was found.
pub(crate) fn mask_in_place(b: &mut [u8]) -> bool {
    let mut found = false;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        // The run of digits and single separators from here.
        let mut j = i;
        let mut end = i;
        let mut digits = 0usize;
        while j < b.len() {
            if b[j].is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (b[j] == b' ' || b[j] == b'-') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                j += 1;
            } else {
                break;
            }
        }
        let alnum_after = b.get(end).is_some_and(u8::is_ascii_alphanumeric);
        if (13..=19).contains(&digits) && !alnum_after && luhn(&b[i..end]) {
            let mut left = digits - 4;
            for c in &mut b[i..end] {
                if left > 0 && c.is_ascii_digit() {
                    *c = b'*';
                    left -= 1;
                }
            }
            found = true;
        }
        i = end.max(i + 1);
    }
    found
}

/// The Luhn check over the digits of `run` (other bytes skipped).
pub(crate) fn luhn(run: &[u8]) -> bool {
    let mut sum = 0u32;
    for (n, d) in run.iter().rev().filter(|c| c.is_ascii_digit()).map(|c| u32::from(c - b'0')).enumerate() {
        sum += if n % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d };
    }
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`may_hold`] as it was first written: one byte at a time.
    fn may_hold_bytewise(b: &[u8]) -> bool {
        let mut digits = 0;
        for (i, c) in b.iter().enumerate() {
            if c.is_ascii_digit() {
                digits += 1;
                if digits >= 13 {
                    return true;
                }
            } else if !(digits > 0 && matches!(c, b' ' | b'-') && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
                digits = 0;
            }
        }
        false
    }

    #[test]
    fn the_quick_test_answers_as_the_byte_by_byte_walk() {
        const BYTES: &[u8] = b"0123456789012345 - a/.";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let (mut yes, mut no) = (0, 0);
        for n in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (n % 60) as usize;
            // Mostly digits in some strings, mostly other bytes in others.
            let digits_only = x.is_multiple_of(4);
            let b: Vec<u8> = (0..len)
                .map(|i| {
                    let r = (x >> (i % 48)) as usize ^ i.wrapping_mul(0x9e37);
                    if digits_only { BYTES[r % 16] } else { BYTES[r % BYTES.len()] }
                })
                .collect();
            let want = may_hold_bytewise(&b);
            assert_eq!(may_hold(&b), want, "{}", String::from_utf8_lossy(&b));
            if want { yes += 1 } else { no += 1 }
        }
        assert!(yes > 10_000 && no > 10_000, "{yes} with a run, {no} without");
        for s in [
            "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
            "4111 1111 1111 1111",
            "x4111-1111-1111-1",
        ] {
            assert_eq!(may_hold(s.as_bytes()), may_hold_bytewise(s.as_bytes()), "{s}");
        }
    }

    fn masked(s: &str) -> String {
        let mut b = s.as_bytes().to_vec();
        mask_in_place(&mut b);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn card_numbers_are_masked() {
        assert_eq!(masked("card 4111111111111111 ok"), "card ************1111 ok");
        assert_eq!(masked("4111 1111 1111 1111."), "**** **** **** 1111.");
        assert_eq!(masked("n=5500-0000-0000-0004&x"), "n=****-****-****-0004&x");
        // Amex (15 digits), a 19-digit number, two on one line.
        assert_eq!(masked("378282246310005"), "***********0005");
        assert_eq!(masked("6011 1111 1111 1117 and 4012888888881881"), "**** **** **** 1117 and ************1881");
        // Not cards: fails Luhn, too short, part of a word, a timestamp,
        // separators doubled.
        for keep in [
            "4111111111111112",
            "123456789012",
            "id4111111111111111",
            "1793584800044004200",
            "1 2 3",
            "4111  1111 1111 1111",
        ] {
            assert_eq!(masked(keep), keep);
        }
    }

    #[test]
    fn bytes_that_are_not_text_are_left_alone() {
        let mut b = b"\xff4111111111111111\xfe".to_vec();
        assert!(mask_in_place(&mut b));
        assert_eq!(b, b"\xff************1111\xfe");
    }
}
