//! Points in time and the [`Clock`] that tells the current one.
//!
//! Everything in `aaa` that depends on the time (token expiry, policy conditions on the hour of the
//! request, audit timestamps) reads it through a [`Clock`], so tests inject a [`FixedClock`] instead
//! of sleeping.
//!
//! ```
//! use aaa_core::{Clock, FixedClock, Timestamp};
//!
//! let clock = FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000));
//! assert_eq!(clock.now().unix_seconds(), 1_700_000_000);
//! clock.advance_micros(2_500_000);
//! assert_eq!(clock.now().to_string(), "2023-11-14T22:13:22.500000Z");
//! ```

use std::{
    fmt,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A point in time, UTC, with microsecond precision.
///
/// Serialized as an RFC 3339 string with six fractional digits and a `Z` offset, for example
/// `2026-11-23T13:33:04.000000Z`, so it sorts and compares as text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// A timestamp from whole seconds since the Unix epoch (saturating).
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1_000_000))
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded towards negative infinity.
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This timestamp moved by `micros` microseconds (saturating).
    #[must_use]
    pub const fn add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// The civil date and time of this timestamp in UTC, if it is within the range `time` supports.
    pub fn to_offset_date_time(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000).ok()
    }

    /// Parses an RFC 3339 date-time such as `2026-11-23T13:33:04Z` or
    /// `2026-11-23T14:33:04.25+01:00`. Precision below a microsecond is truncated.
    ///
    /// # Errors
    ///
    /// [`TimestampError`] when the text is not an RFC 3339 date-time.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimestampError(()))?;
        let micros = parsed.unix_timestamp_nanos().div_euclid(1_000);
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| TimestampError(()))
    }
}

impl Timestamp {
    /// The RFC 3339 text of `Display` (`2026-11-23T13:33:04.250000Z`), as bytes, without the
    /// formatting machinery: audit records write two timestamps each. `None` outside the years
    /// 0 to 9999.
    fn rfc3339_bytes(self) -> Option<[u8; 27]> {
        // Plain integer arithmetic (civil-from-days).
        let seconds = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let second_of_day = seconds.rem_euclid(86_400);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for i in (at..at + width).rev() {
                if let (Some(slot), Ok(digit)) = (out.get_mut(i), u8::try_from(value % 10)) {
                    *slot = b'0' + digit;
                }
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, second_of_day / 3600);
        put(14, 2, second_of_day % 3600 / 60);
        put(17, 2, second_of_day % 60);
        put(20, 6, micros);
        Some(out)
    }

    /// Appends the `Display` text to `out`.
    pub(crate) fn write_to(self, out: &mut Vec<u8>) {
        match self.rfc3339_bytes() {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => {
                use std::io::Write as _;
                // Writing into a `Vec` cannot fail.
                let _ = write!(out, "@{}us", self.0);
            }
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rfc3339_bytes() {
            Some(bytes) => f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?),
            None => write!(f, "@{}us", self.0),
        }
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// The text was not an RFC 3339 date-time in the supported range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time")]
pub struct TimestampError(());

/// Tells the current time. Injected wherever time matters, so tests control it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = std::time::SystemTime::now();
        match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |m| -m)),
        }
    }
}

/// A clock that stands still until told to move: for tests.
///
/// Clones share the same time, so a test can keep one handle and give another to the code under test.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Self {
        FixedClock(Arc::new(AtomicI64::new(at.0)))
    }

    /// Sets the time to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    /// Moves the time forward by `micros` microseconds (backwards if negative).
    pub fn advance_micros(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves the time forward by `seconds` seconds.
    pub fn advance_seconds(&self, seconds: i64) {
        self.advance_micros(seconds.saturating_mul(1_000_000));
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_rfc3339_with_micros() {
        let t = Timestamp::from_unix_micros(1_763_904_784_000_001);
        assert_eq!(t.to_string(), "2025-11-23T13:33:04.000001Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn display_agrees_with_the_time_crate() {
        let reference = |t: Timestamp| {
            let dt = t.to_offset_date_time().unwrap();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.microsecond()
            )
        };
        // Every day from 1900 to 2200 at varying times, leap years and century rules included.
        let mut micros = -2_208_988_800_000_000_i64;
        while micros < 7_258_118_400_000_000 {
            let t = Timestamp::from_unix_micros(micros);
            assert_eq!(t.to_string(), reference(t), "{micros}");
            micros += 86_400_000_000 + 3_723_000_017;
        }
        for edge in [0, -1, 1, 951_782_400_000_000, 253_402_300_799_999_999] {
            let t = Timestamp::from_unix_micros(edge);
            assert_eq!(t.to_string(), reference(t), "{edge}");
        }
        assert!(
            Timestamp::from_unix_micros(i64::MAX)
                .to_string()
                .starts_with('@')
        );
        assert!(
            Timestamp::from_unix_micros(i64::MIN)
                .to_string()
                .starts_with('@')
        );
    }

    #[test]
    fn parse_honours_offsets_and_rejects_junk() {
        let a = Timestamp::parse_rfc3339("2026-11-23T14:33:04+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2026-11-23T13:33:04Z").unwrap();
        assert_eq!(a, b);
        assert!(Timestamp::parse_rfc3339("2026-11-23").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let t = Timestamp::from_unix_seconds(1_700_000_000);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.000000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn fixed_clock_is_shared_between_clones() {
        let c = FixedClock::new(Timestamp::UNIX_EPOCH);
        let d = c.clone();
        c.advance_seconds(5);
        assert_eq!(d.now().unix_seconds(), 5);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().unix_seconds() > 1_577_836_800);
    }
}
