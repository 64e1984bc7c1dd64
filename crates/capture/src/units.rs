//! Sizes written for people (`64MiB`, `1GiB`), for flags and settings.

/// Parses a number of bytes: a whole number with an optional unit (`k`,
/// `M`, `G`, `T`, or `KiB`, `MiB`, `GiB`, `TiB`, any case; all powers of
/// 1024; `B` alone is bytes). `0` is a size (a cap of nothing).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size (such as 4096, 512MiB or 1GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("'{s}': unknown size unit '{unit}' (use KiB, MiB, GiB or TiB)")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("'{s}' is too large"))
}

/// As [`parse_bytes`], for a size that must not be zero (a file to rotate
/// at, a buffer).
pub fn parse_size(s: &str) -> Result<u64, String> {
    Some(parse_bytes(s)?).filter(|&n| n > 0).ok_or_else(|| format!("'{}' is not a usable size", s.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes(" 512 MiB "), Ok(512 << 20));
        assert_eq!(parse_bytes("167772160"), Ok(167_772_160));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_size("0").is_err());
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        for bad in ["1.5G", "9Q", "", "MiB", "-1", "99999999999999999999", "20000000T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
