//! Proleptic Gregorian calendar arithmetic (H. Hinnant's day-count algorithms), the one home of
//! the conversions between a day count since 1970-01-01 and a civil date that the crates use to
//! write and read GeneralizedTime, UTCTime and RFC 3339 texts, and of the reading of the
//! `YYYYMMDDhhmmss` digits that every GeneralizedTime begins with ([`CivilTime::from_digits`]);
//! each GeneralizedTime reader checks what follows them by its own rules.

/// Days since 1970-01-01 of the proleptic Gregorian date `y`-`m`-`d` (month 1–12, day 1–31;
/// the caller checks the ranges).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(year, month 1–12, day 1–31)` of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whether `y` is a leap year of the proleptic Gregorian calendar.
pub fn is_leap_year(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The number of days of month `m` (1–12) of year `y`.
pub fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(y) => 29,
        _ => 28,
    }
}

/// A UTC date and time of day to the second, as GeneralizedTime writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year, 0–9999.
    pub year: i64,
    /// Month, 1–12.
    pub month: i64,
    /// Day of the month, 1 to the month's last.
    pub day: i64,
    /// Hour, 0–23.
    pub hour: i64,
    /// Minute, 0–59.
    pub minute: i64,
    /// Second, 0–60 (60: a leap second, which the caller refuses or folds).
    pub second: i64,
}

impl CivilTime {
    /// Reads the 14 digits `YYYYMMDDhhmmss`; `None` unless `b` is exactly 14 ASCII digits that
    /// name an existing date and a time of day within the ranges of the fields.
    pub fn from_digits(b: &[u8]) -> Option<CivilTime> {
        if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = |r: std::ops::Range<usize>| {
            b[r].iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        };
        let t = CivilTime {
            year: n(0..4),
            month: n(4..6),
            day: n(6..8),
            hour: n(8..10),
            minute: n(10..12),
            second: n(12..14),
        };
        let valid = (1..=12).contains(&t.month)
            && (1..=days_in_month(t.year, t.month)).contains(&t.day)
            && t.hour <= 23
            && t.minute <= 59
            && t.second <= 60;
        valid.then_some(t)
    }

    /// Seconds since 1970-01-01T00:00:00Z (a second of 60 counts as the first of the next
    /// minute).
    pub fn unix_seconds(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour * 3600
            + self.minute * 60
            + self.second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_digits() {
        let t = CivilTime::from_digits(b"20240229235960").unwrap();
        assert_eq!((t.year, t.month, t.day), (2024, 2, 29));
        assert_eq!((t.hour, t.minute, t.second), (23, 59, 60));
        let t = CivilTime::from_digits(b"19700101000000").unwrap();
        assert_eq!(t.unix_seconds(), 0);
        let t = CivilTime::from_digits(b"20250615150640").unwrap();
        assert_eq!(t.unix_seconds(), 1_750_000_000);
        for bad in [
            &b"20230229000000"[..], // not a leap year
            b"20240001000000",
            b"20241301000000",
            b"20240100000000",
            b"20240431000000",
            b"20240101240000",
            b"20240101006000",
            b"20240101000061",
            b"2024010100000",
            b"202401010000000",
            b"2024010100000Z",
            b"+2024010100000",
        ] {
            assert_eq!(CivilTime::from_digits(bad), None, "{bad:?}");
        }
        assert!(is_leap_year(2000) && !is_leap_year(1900) && is_leap_year(2024));
        assert_eq!(days_in_month(2100, 2), 28);
    }

    #[test]
    fn round_trip_and_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), z);
        }
    }
}
