//! `TimeStamp ::= GeneralizedTime` in UTC (§13.1.2).

use std::fmt;

use secmms_ber::calendar::{civil_from_days, CivilTime};

/// A UTC instant with millisecond resolution, counted from the Unix epoch. The engine never
/// reads a clock: every call takes the current time as a `TimeStamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimeStamp(pub i64);

/// Errors of the GeneralizedTime parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid GeneralizedTime")]
pub struct TimeError;

/// Maximum number of fraction digits accepted on receive (§13.1.2 DECISION: 0–9).
pub const MAX_FRACTION_DIGITS: usize = 9;

const MS_PER_DAY: i64 = 86_400_000;

impl TimeStamp {
    /// Earliest representable instant (0000-01-01).
    pub const MIN: TimeStamp = TimeStamp(-62_167_219_200_000);
    /// Latest representable instant (9999-12-31T23:59:59.999Z).
    pub const MAX: TimeStamp = TimeStamp(253_402_300_799_999);

    /// From whole seconds since the epoch.
    pub fn from_unix_secs(s: i64) -> TimeStamp {
        TimeStamp(s.saturating_mul(1000))
    }
    /// Whole seconds since the epoch (floor).
    pub fn unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: i64) -> TimeStamp {
        TimeStamp(self.0.saturating_add(ms))
    }
    /// Absolute distance in milliseconds.
    pub fn abs_diff_ms(self, other: TimeStamp) -> u64 {
        self.0.abs_diff(other.0)
    }

    /// DER-canonical lexical form `YYYYMMDDhhmmss[.f+]Z` (§13.1.2 DECISION: dot, millisecond
    /// resolution, trailing zeros removed). Instants outside [`Self::MIN`]..=[`Self::MAX`] are
    /// clamped.
    pub fn to_generalized(self) -> String {
        let t = self.0.clamp(Self::MIN.0, Self::MAX.0);
        let days = t.div_euclid(MS_PER_DAY);
        let ms_of_day = t.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        let ms = ms_of_day % 1000;
        // Digits written by hand: this runs for every protected PDU.
        let mut s = String::with_capacity(19);
        let mut push = |v: i64, width: u32| {
            let mut d = 10i64.pow(width - 1);
            while d > 0 {
                s.push(char::from(b'0' + ((v / d) % 10) as u8));
                d /= 10;
            }
        };
        push(y, 4);
        push(i64::from(m), 2);
        push(i64::from(d), 2);
        push(secs / 3600, 2);
        push((secs / 60) % 60, 2);
        push(secs % 60, 2);
        if ms != 0 {
            let digits = [ms / 100, (ms / 10) % 10, ms % 10];
            let keep = if ms % 100 == 0 {
                1
            } else if ms % 10 == 0 {
                2
            } else {
                3
            };
            s.push('.');
            for x in &digits[..keep] {
                s.push(char::from(b'0' + *x as u8));
            }
        }
        s.push('Z');
        s
    }

    /// Parses `YYYYMMDDhhmmss[(.|,)f{0,9}]Z` (§13.1.2). Fraction digits beyond milliseconds
    /// are truncated.
    pub fn parse_generalized(b: &[u8]) -> Result<TimeStamp, TimeError> {
        if b.len() < 15 || b.last() != Some(&b'Z') {
            return Err(TimeError);
        }
        // No leap second here: the time of a SecPDU is a plain UTC instant.
        let civil = CivilTime::from_digits(&b[..14])
            .filter(|t| t.second <= 59)
            .ok_or(TimeError)?;
        let rest = &b[14..b.len() - 1];
        let mut ms = 0i64;
        if !rest.is_empty() {
            if rest[0] != b'.' && rest[0] != b',' {
                return Err(TimeError);
            }
            let frac = &rest[1..];
            if frac.is_empty() || frac.len() > MAX_FRACTION_DIGITS {
                return Err(TimeError);
            }
            let mut scale = 100;
            for &c in frac {
                if !c.is_ascii_digit() {
                    return Err(TimeError);
                }
                ms += (c - b'0') as i64 * scale;
                scale /= 10;
            }
        }
        Ok(TimeStamp(civil.unix_seconds() * 1000 + ms))
    }
}

impl fmt::Display for TimeStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_generalized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(TimeStamp(0).to_generalized(), "19700101000000Z");
        let t = TimeStamp::parse_generalized(b"20240229235959.5Z").unwrap();
        assert_eq!(t.to_generalized(), "20240229235959.5Z");
        assert_eq!(
            TimeStamp::parse_generalized(b"20240229235959,123456789Z").unwrap(),
            TimeStamp(t.0 - 500 + 123)
        );
        assert!(TimeStamp::parse_generalized(b"20230229000000Z").is_err());
        assert!(TimeStamp::parse_generalized(b"20230228000000").is_err());
        assert!(TimeStamp::parse_generalized(b"20230228T00000Z").is_err());
        assert!(TimeStamp::parse_generalized(b"20230228000000.Z").is_err());
        assert!(TimeStamp::parse_generalized(b"20230228000000+0100").is_err());
    }

    proptest! {
        #[test]
        fn round_trip(ms in TimeStamp::MIN.0..=TimeStamp::MAX.0) {
            let t = TimeStamp(ms);
            prop_assert_eq!(TimeStamp::parse_generalized(t.to_generalized().as_bytes()), Ok(t));
        }
    }
}
