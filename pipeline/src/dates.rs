//! Event-time partitions for the outputs (Hive-style directories, UTC).
//!
//! The granularity is chosen once per outputs directory and kept in its checkpoint:
//! `date=YYYY` (year), `date=YYYY-MM` (month), `date=YYYY-MM-DD` (day) or
//! `date=YYYY-MM-DD/hour=HH` (hour). [`PartitionBy::Auto`] picks it from the data at the first
//! commit, so that a decade of daily prices makes a handful of partitions, not thousands.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of an epoch-millisecond timestamp (UTC).
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MS_PER_DAY)
}

/// `(year, month, day)` of a day number (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DD` of a day number.
pub fn format_day(days: i64) -> String {
    let (year, month, day) = civil(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// How finely the outputs are partitioned by event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
    Month,
    Year,
}

impl Granularity {
    /// Finest first.
    pub const ALL: [Granularity; 4] = [
        Granularity::Hour,
        Granularity::Day,
        Granularity::Month,
        Granularity::Year,
    ];

    /// The partition a timestamp falls in (an ordered key; see [`Granularity::dir`]).
    pub fn key(self, ts_ms: i64) -> i64 {
        match self {
            Granularity::Hour => ts_ms.div_euclid(MS_PER_HOUR),
            Granularity::Day => day_of(ts_ms),
            Granularity::Month => {
                let (year, month, _) = civil(day_of(ts_ms));
                year * 12 + month - 1
            }
            Granularity::Year => civil(day_of(ts_ms)).0,
        }
    }

    /// The partition directory (relative to a stream's directory) of a key.
    pub fn dir(self, key: i64) -> String {
        match self {
            Granularity::Hour => format!(
                "date={}/hour={:02}",
                format_day(key.div_euclid(24)),
                key.rem_euclid(24)
            ),
            Granularity::Day => format!("date={}", format_day(key)),
            Granularity::Month => {
                format!(
                    "date={:04}-{:02}",
                    key.div_euclid(12),
                    key.rem_euclid(12) + 1
                )
            }
            Granularity::Year => format!("date={key:04}"),
        }
    }

    /// Average length of a partition, for [`PartitionBy::Auto`].
    fn typical_ms(self) -> f64 {
        match self {
            Granularity::Hour => MS_PER_HOUR as f64,
            Granularity::Day => MS_PER_DAY as f64,
            Granularity::Month => MS_PER_DAY as f64 * 30.436_875,
            Granularity::Year => MS_PER_DAY as f64 * 365.242_5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Month => "month",
            Granularity::Year => "year",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--partition`: a fixed granularity, or one that follows the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartitionBy {
    #[default]
    Auto,
    Fixed(Granularity),
}

/// `auto` aims for at least this many rows in a partition.
pub const AUTO_MIN_ROWS: f64 = 1_000.0;

impl PartitionBy {
    /// The granularity for data of `rows` rows spread over `span_ms` of event time: the finest
    /// of day, month and year whose partitions would hold at least [`AUTO_MIN_ROWS`] rows at
    /// that rate, else year. Never hour on its own: finer than a day only on request.
    pub fn choose(self, rows: u64, span_ms: i64) -> Granularity {
        match self {
            PartitionBy::Fixed(granularity) => granularity,
            PartitionBy::Auto => {
                let per_ms = rows as f64 / span_ms.max(1) as f64;
                [Granularity::Day, Granularity::Month]
                    .into_iter()
                    .find(|g| per_ms * g.typical_ms() >= AUTO_MIN_ROWS)
                    .unwrap_or(Granularity::Year)
            }
        }
    }

    /// The granularity to go on with, given the one an earlier run recorded.
    pub fn resume(self, recorded: Granularity) -> Result<Granularity, PartitionMismatch> {
        match self {
            PartitionBy::Fixed(asked) if asked != recorded => {
                Err(PartitionMismatch { asked, recorded })
            }
            _ => Ok(recorded),
        }
    }
}

/// `--partition` differs from what the outputs directory was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("these outputs are partitioned by {recorded} (recorded in the checkpoint), not {asked}: run with --partition {recorded} or auto, or use a new --outputs")]
pub struct PartitionMismatch {
    pub asked: Granularity,
    pub recorded: Granularity,
}

impl FromStr for PartitionBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "auto" {
            return Ok(PartitionBy::Auto);
        }
        Granularity::ALL
            .into_iter()
            .find(|g| g.name() == text)
            .map(PartitionBy::Fixed)
            .ok_or_else(|| format!("`{text}` is not one of auto, hour, day, month, year"))
    }
}

impl fmt::Display for PartitionBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionBy::Auto => f.write_str("auto"),
            PartitionBy::Fixed(granularity) => granularity.fmt(f),
        }
    }
}

/// What checkpoints written before `--partition` existed used.
pub fn legacy_granularity() -> Option<Granularity> {
    Some(Granularity::Day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_days() {
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(format_day(day_of(1_378_054_800_083)), "2013-09-01");
        assert_eq!(format_day(day_of(951_868_800_000)), "2000-03-01");
        assert_eq!(format_day(day_of(951_868_799_999)), "2000-02-29");
        assert_eq!(format_day(-1), "1969-12-31");
    }

    #[test]
    fn names_partitions_of_each_granularity() {
        let leap_day_end = 1_709_251_199_000; // 2024-02-29T23:59:59Z
        let dir = |g: Granularity| g.dir(g.key(leap_day_end));
        assert_eq!(dir(Granularity::Hour), "date=2024-02-29/hour=23");
        assert_eq!(dir(Granularity::Day), "date=2024-02-29");
        assert_eq!(dir(Granularity::Month), "date=2024-02");
        assert_eq!(dir(Granularity::Year), "date=2024");
        assert_eq!(
            Granularity::Hour.dir(Granularity::Hour.key(-1)),
            "date=1969-12-31/hour=23"
        );
        assert_eq!(
            Granularity::Month.dir(Granularity::Month.key(-1)),
            "date=1969-12"
        );
    }

    #[test]
    fn auto_follows_the_density_of_the_data() {
        let day = MS_PER_DAY;
        // 118k ticks of 1-minute bars over four weeks: days.
        assert_eq!(
            PartitionBy::Auto.choose(118_556, 27 * day),
            Granularity::Day
        );
        // 12k daily prices of several symbols over 13 years: years.
        assert_eq!(
            PartitionBy::Auto.choose(12_154, 4_900 * day),
            Granularity::Year
        );
        // A few hundred ticks a day: months.
        assert_eq!(
            PartitionBy::Auto.choose(3_000, 30 * day),
            Granularity::Month
        );
        // All at one instant, or a dense feed: days, never hours.
        assert_eq!(PartitionBy::Auto.choose(5, 0), Granularity::Day);
        assert_eq!(PartitionBy::Auto.choose(2_000, 10_000), Granularity::Day);
        assert_eq!(
            PartitionBy::Fixed(Granularity::Hour).choose(5, 100 * day),
            Granularity::Hour
        );
    }

    #[test]
    fn a_resume_keeps_the_recorded_granularity() {
        assert_eq!(
            PartitionBy::Auto.resume(Granularity::Year),
            Ok(Granularity::Year)
        );
        assert_eq!(
            PartitionBy::Fixed(Granularity::Day).resume(Granularity::Day),
            Ok(Granularity::Day)
        );
        let refused = PartitionBy::Fixed(Granularity::Day)
            .resume(Granularity::Month)
            .unwrap_err();
        assert!(
            refused.to_string().contains("partitioned by month"),
            "{refused}"
        );
    }

    #[test]
    fn parses_the_flag() {
        assert_eq!("auto".parse(), Ok(PartitionBy::Auto));
        assert_eq!("hour".parse(), Ok(PartitionBy::Fixed(Granularity::Hour)));
        assert!("weekly"
            .parse::<PartitionBy>()
            .unwrap_err()
            .contains("auto, hour"));
    }

    proptest! {
        /// Keys order like time, and every timestamp of a partition names the same directory,
        /// whose text sorts like the key.
        #[test]
        fn keys_are_monotonic(a in -4_000_000_000_000i64..8_000_000_000_000, b in -4_000_000_000_000i64..8_000_000_000_000) {
            for g in Granularity::ALL {
                let (lo, hi) = (a.min(b), a.max(b));
                prop_assert!(g.key(lo) <= g.key(hi));
                if lo >= 0 && g.key(lo) < g.key(hi) {
                    prop_assert!(g.dir(g.key(lo)) < g.dir(g.key(hi)));
                }
            }
        }
    }
}
