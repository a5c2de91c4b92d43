//! Timestamps as files write them, to epoch milliseconds (UTC).
//!
//! Forms read by [`TimestampFormat::Auto`]: RFC 3339 with any offset, naive date-times and dates
//! (read in the [`Timestamps`] time zone, UTC unless told otherwise), and epoch seconds or
//! milliseconds (told apart by size). The other formats pin one form down.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
pub use chrono_tz::Tz;

/// Naive date-time forms, tried in order.
const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %H:%M:%S%.f",
    "%m/%d/%Y %H:%M",
];

/// Date forms (midnight in the time zone), tried after the date-times.
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%Y%m%d"];

/// Numeric timestamps are read by magnitude: below 1e11 seconds, below 1e14 milliseconds,
/// below 1e17 microseconds, below 1e20 nanoseconds. Each bound is the year 5138 in its unit, and
/// 1e11 ms is in 1973, so any time from 1973 on is read in the right unit whatever it is.
const EPOCH_UNITS: [(f64, f64); 4] = [(1e11, 1e3), (1e14, 1.0), (1e17, 1e-3), (1e20, 1e-6)];

/// How a timestamp column is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TimestampFormat {
    /// Any of the forms below, found per value (epoch values told apart by size).
    #[default]
    Auto,
    /// RFC 3339 / ISO 8601 with an offset (`2013-09-01T17:00:00.083Z`).
    Rfc3339,
    /// Seconds since the Unix epoch, fractions allowed.
    EpochSeconds,
    /// Milliseconds since the Unix epoch.
    EpochMillis,
    /// A chrono `strftime` pattern (`%d.%m.%Y %H:%M:%S`); read in the time zone unless the
    /// pattern has an offset (`%z`).
    Pattern(String),
}

impl FromStr for TimestampFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "auto" => TimestampFormat::Auto,
            "rfc3339" | "iso8601" => TimestampFormat::Rfc3339,
            "epoch-s" | "s" | "seconds" => TimestampFormat::EpochSeconds,
            "epoch-ms" | "ms" | "millis" => TimestampFormat::EpochMillis,
            p if p.contains('%') => TimestampFormat::Pattern(p.to_owned()),
            other => {
                return Err(format!(
                    "timestamp format {other:?}: expected auto, rfc3339, epoch-s, epoch-ms or a strftime pattern such as %Y-%m-%d %H:%M:%S"
                ))
            }
        })
    }
}

impl fmt::Display for TimestampFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimestampFormat::Auto => f.write_str("auto"),
            TimestampFormat::Rfc3339 => f.write_str("rfc3339"),
            TimestampFormat::EpochSeconds => f.write_str("epoch-s"),
            TimestampFormat::EpochMillis => f.write_str("epoch-ms"),
            TimestampFormat::Pattern(p) => f.write_str(p),
        }
    }
}

/// Parses a time zone name: an IANA name (`America/New_York`) or `UTC`.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| {
        format!(
            "time zone {name:?} is not an IANA name such as UTC, America/New_York or Europe/London"
        )
    })
}

/// A timestamp reader: a format and the time zone of naive values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timestamps {
    pub format: TimestampFormat,
    /// Zone of naive date-times and dates; `None` is UTC.
    pub tz: Option<Tz>,
}

impl Timestamps {
    pub fn new(format: TimestampFormat, tz: Option<Tz>) -> Self {
        Self { format, tz }
    }

    fn tz(&self) -> Tz {
        self.tz.unwrap_or(Tz::UTC)
    }

    /// The timestamp in `text` as epoch milliseconds (UTC), or why it is not one.
    pub fn parse_ms(&self, text: &str) -> Result<i64, String> {
        let text = text.trim();
        match &self.format {
            TimestampFormat::Auto => self.parse_auto(text),
            TimestampFormat::Rfc3339 => DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_millis())
                .map_err(|_| format!("timestamp {text:?} is not RFC 3339 (2013-09-01T17:00:00Z)")),
            TimestampFormat::EpochSeconds => epoch_ms(text, 1000.0, "epoch seconds"),
            TimestampFormat::EpochMillis => epoch_ms(text, 1.0, "epoch milliseconds"),
            TimestampFormat::Pattern(pattern) => self.parse_pattern(text, pattern),
        }
    }

    fn parse_auto(&self, text: &str) -> Result<i64, String> {
        if let Ok(epoch) = text.parse::<f64>() {
            return epoch_auto_ms(text, epoch);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(t.timestamp_millis());
        }
        for format in NAIVE_FORMATS {
            if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                return self.local_ms(t);
            }
        }
        for format in DATE_FORMATS {
            if let Ok(d) = NaiveDate::parse_from_str(text, format) {
                return self.local_ms(d.and_time(NaiveTime::MIN));
            }
        }
        Err(format!(
            "timestamp {text:?} is not RFC 3339, a date-time like 2013-09-01 17:00:00.083, a date, or epoch seconds/milliseconds"
        ))
    }

    fn parse_pattern(&self, text: &str, pattern: &str) -> Result<i64, String> {
        if let Ok(t) = DateTime::parse_from_str(text, pattern) {
            return Ok(t.timestamp_millis());
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(text, pattern) {
            return self.local_ms(t);
        }
        if let Ok(d) = NaiveDate::parse_from_str(text, pattern) {
            return self.local_ms(d.and_time(NaiveTime::MIN));
        }
        Err(format!(
            "timestamp {text:?} does not match the pattern {pattern:?}"
        ))
    }

    /// A wall-clock time in the zone as epoch milliseconds. A time that occurs twice (when
    /// clocks go back) is the first of the two; one that never occurs (clocks go forward) is an
    /// error.
    pub fn local_ms(&self, t: NaiveDateTime) -> Result<i64, String> {
        let tz = self.tz();
        if tz == Tz::UTC {
            return Ok(t.and_utc().timestamp_millis());
        }
        match tz.from_local_datetime(&t) {
            LocalResult::Single(t) => Ok(t.timestamp_millis()),
            LocalResult::Ambiguous(first, _) => Ok(first.timestamp_millis()),
            LocalResult::None => Err(format!(
                "{t} does not exist in {tz} (skipped when clocks went forward)"
            )),
        }
    }

    /// The calendar date, in the zone, of an epoch-milliseconds instant.
    pub fn local_date(&self, ms: i64) -> Option<NaiveDate> {
        DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&self.tz()).date_naive())
    }
}

/// A numeric timestamp in the unit its magnitude says ([`EPOCH_UNITS`]), as epoch milliseconds.
fn epoch_auto_ms(text: &str, epoch: f64) -> Result<i64, String> {
    if !epoch.is_finite() || epoch <= 0.0 {
        return Err(format!("timestamp {text:?} is not a positive epoch value"));
    }
    let Some(&(_, to_ms)) = EPOCH_UNITS.iter().find(|(below, _)| epoch < *below) else {
        return Err(format!(
            "timestamp {text:?} is too large for epoch seconds, milliseconds, microseconds or nanoseconds"
        ));
    };
    // Whole numbers exactly (a nanosecond count does not fit an f64's 53 bits).
    if let Ok(whole) = text.parse::<i128>() {
        let ms = if to_ms >= 1.0 {
            whole * to_ms as i128
        } else {
            let per_ms = (1.0 / to_ms) as i128;
            (whole + per_ms / 2).div_euclid(per_ms)
        };
        return i64::try_from(ms).map_err(|_| format!("timestamp {text:?} is out of range"));
    }
    Ok((epoch * to_ms).round() as i64)
}

fn epoch_ms(text: &str, scale: f64, what: &str) -> Result<i64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok((v * scale).round() as i64),
        _ => Err(format!("timestamp {text:?} is not positive {what}")),
    }
}

/// Reads RFC 3339 (`2013-09-01T17:00:00.083Z`, any offset), naive date-times (as UTC), dates
/// (midnight UTC) and epoch seconds or milliseconds.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    Timestamps::default().parse_ms(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_timestamps_are_read_in_the_unit_their_magnitude_says() {
        let ms = 1_700_000_000_123;
        assert_eq!(parse_timestamp_ms("1700000000.123").unwrap(), ms);
        assert_eq!(parse_timestamp_ms("1700000000123").unwrap(), ms);
        assert_eq!(parse_timestamp_ms("1700000000123456").unwrap(), ms);
        assert_eq!(parse_timestamp_ms("1700000000123456789").unwrap(), ms);
        assert_eq!(
            parse_timestamp_ms("1700000000123500000").unwrap(),
            ms + 1,
            "rounded"
        );
        assert_eq!(parse_timestamp_ms("1.7e18").unwrap(), 1_700_000_000_000);
        for huge in ["1e30", "99999999999999999999999", "inf", "-5", "0"] {
            assert!(parse_timestamp_ms(huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn reads_every_supported_form() {
        let ms = 1_378_054_800_083;
        assert_eq!(parse_timestamp_ms("2013-09-01 17:00:00.083").unwrap(), ms);
        assert_eq!(parse_timestamp_ms("2013-09-01T17:00:00.083").unwrap(), ms);
        assert_eq!(parse_timestamp_ms("2013-09-01T17:00:00.083Z").unwrap(), ms);
        assert_eq!(
            parse_timestamp_ms("2013-09-01T19:00:00.083+02:00").unwrap(),
            ms
        );
        assert_eq!(parse_timestamp_ms("2013/09/01 17:00:00.083").unwrap(), ms);
        assert_eq!(parse_timestamp_ms("1378054800083").unwrap(), ms);
        assert_eq!(parse_timestamp_ms("1378054800.083").unwrap(), ms);
        assert_eq!(
            parse_timestamp_ms("2013-09-01").unwrap(),
            1_378_000_000_000 - 1_378_000_000_000 % 86_400_000
        );
        assert!(parse_timestamp_ms("yesterday")
            .unwrap_err()
            .contains("yesterday"));
        assert!(parse_timestamp_ms("-5").is_err());
    }

    #[test]
    fn naive_values_are_read_in_the_time_zone() {
        let ny = Timestamps::new(
            TimestampFormat::Auto,
            Some(parse_tz("America/New_York").unwrap()),
        );
        // Summer: UTC-4.
        assert_eq!(
            ny.parse_ms("2013-09-01 13:00:00.083").unwrap(),
            1_378_054_800_083
        );
        // Winter: UTC-5; a date is local midnight.
        assert_eq!(ny.parse_ms("2014-01-02").unwrap(), 1_388_638_800_000);
        // Offsets and epoch values do not depend on the zone.
        assert_eq!(
            ny.parse_ms("2013-09-01T17:00:00.083Z").unwrap(),
            1_378_054_800_083
        );
        assert_eq!(ny.parse_ms("1378054800083").unwrap(), 1_378_054_800_083);
        // 02:30 on 2014-03-09 never happened in New York; 01:30 on 2013-11-03 happened twice.
        assert!(ny
            .parse_ms("2014-03-09 02:30:00")
            .unwrap_err()
            .contains("does not exist"));
        assert_eq!(
            ny.parse_ms("2013-11-03 01:30:00").unwrap(),
            1_383_456_600_000 // 05:30Z, the first (EDT) one
        );
    }

    #[test]
    fn explicit_formats() {
        let s = Timestamps::new(TimestampFormat::EpochSeconds, None);
        assert_eq!(s.parse_ms("1000").unwrap(), 1_000_000);
        let ms = Timestamps::new(TimestampFormat::EpochMillis, None);
        assert_eq!(ms.parse_ms("1000").unwrap(), 1000);
        assert!(ms.parse_ms("0").is_err());
        let p = Timestamps::new("%d.%m.%Y %H:%M:%S".parse().unwrap(), None);
        assert_eq!(
            p.parse_ms("01.09.2013 17:00:00").unwrap(),
            1_378_054_800_000
        );
        assert!(p.parse_ms("2013-09-01").unwrap_err().contains("pattern"));
        let r = Timestamps::new(TimestampFormat::Rfc3339, None);
        assert!(r.parse_ms("2013-09-01 17:00:00").is_err());
        assert!("nonsense".parse::<TimestampFormat>().is_err());
        assert_eq!("epoch-ms".parse(), Ok(TimestampFormat::EpochMillis));
    }

    #[test]
    fn time_zone_names() {
        assert_eq!(parse_tz("UTC").unwrap(), Tz::UTC);
        assert_eq!(parse_tz("utc").unwrap(), Tz::UTC);
        assert_eq!(parse_tz("Europe/London").unwrap(), Tz::Europe__London);
        assert!(parse_tz("Mars/Olympus").unwrap_err().contains("IANA"));
    }
}
