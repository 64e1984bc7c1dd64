//! Capture time.
//!
//! Every time in pov comes from the capture itself; nothing in the pipeline
//! reads the wall clock, and timeouts run on capture time. [`Ts`] is an
//! instant (nanoseconds since the Unix epoch, as the capture recorded it) and
//! [`Dur`] a signed span between two instants.

use std::fmt;
use std::ops::{Add, Sub};

/// An instant of capture time: nanoseconds since the Unix epoch.
///
/// Nanoseconds cover both pcap resolutions (micro and nano) and pcapng's
/// `if_tsresol` down to 1 ns exactly; an `i64` spans the years 1678 to 2262.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Ts(pub i64);

/// A signed span of capture time in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Dur(pub i64);

impl Ts {
    /// The UTC calendar date and time of day: (year, month, day, seconds
    /// of the day, nanoseconds of the second), proleptic Gregorian (Howard
    /// Hinnant's days-to-civil algorithm).
    pub fn civil(self) -> (i64, i64, i64, i64, i64) {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d, rem, nanos)
    }

    /// Builds an instant from whole seconds and nanoseconds.
    pub fn from_secs_nanos(secs: i64, nanos: i64) -> Ts {
        Ts(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// Seconds since the epoch as a float (for display and JSON).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The span from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: Ts) -> Dur {
        Dur(self.0.saturating_sub(earlier.0))
    }
}

impl Dur {
    /// Zero length.
    pub const ZERO: Dur = Dur(0);

    /// A span of whole seconds.
    pub const fn from_secs(s: i64) -> Dur {
        Dur(s * 1_000_000_000)
    }

    /// A span of whole milliseconds.
    pub const fn from_millis(ms: i64) -> Dur {
        Dur(ms * 1_000_000)
    }

    /// Seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Milliseconds as a float.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl Add<Dur> for Ts {
    type Output = Ts;
    fn add(self, d: Dur) -> Ts {
        Ts(self.0.saturating_add(d.0))
    }
}

impl Sub<Dur> for Ts {
    type Output = Ts;
    fn sub(self, d: Dur) -> Ts {
        Ts(self.0.saturating_sub(d.0))
    }
}

impl Sub for Ts {
    type Output = Dur;
    fn sub(self, other: Ts) -> Dur {
        self.since(other)
    }
}

impl Add for Dur {
    type Output = Dur;
    fn add(self, d: Dur) -> Dur {
        Dur(self.0.saturating_add(d.0))
    }
}

impl Sub for Dur {
    type Output = Dur;
    fn sub(self, d: Dur) -> Dur {
        Dur(self.0.saturating_sub(d.0))
    }
}

impl fmt::Display for Ts {
    /// `seconds.nanoseconds` since the epoch, like tshark's `-t e -u s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        write!(f, "{secs}.{nanos:09}")
    }
}

impl fmt::Display for Dur {
    /// Seconds with microsecond precision.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_arith() {
        let t = Ts::from_secs_nanos(1_700_000_000, 5_000);
        assert_eq!(t.to_string(), "1700000000.000005000");
        let u = t + Dur::from_millis(1500);
        assert_eq!(u - t, Dur(1_500_000_000));
        assert_eq!((t - u).to_string(), "-1.500000");
        assert_eq!(Ts(-1).to_string(), "-1.999999999");
        assert_eq!(Dur(3) + Dur(4) - Dur(10), Dur(-3));
    }

    #[test]
    fn civil_dates_across_leap_days_centuries_and_the_epoch() {
        let at = |secs: i64, nanos: i64| Ts(secs * 1_000_000_000 + nanos).civil();
        assert_eq!(at(0, 0), (1970, 1, 1, 0, 0));
        assert_eq!(at(-1, 999_999_999), (1969, 12, 31, 86_399, 999_999_999));
        // 2000-02-29 12:34:56 (a leap day of a century divisible by 400).
        assert_eq!(at(951_827_696, 5), (2000, 2, 29, 45_296, 5));
        // 2100-03-01 (2100 is not a leap year).
        assert_eq!(at(4_107_542_400, 0), (2100, 3, 1, 0, 0));
        assert_eq!(at(1_796_256_000, 0), (2026, 12, 3, 0, 0));
    }
}
