//! Event-time dates for Hive-style partitions (`date=YYYY-MM-DD`, UTC).

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of an epoch-millisecond timestamp (UTC).
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MS_PER_DAY)
}

/// `YYYY-MM-DD` of a day number (proleptic Gregorian; Howard Hinnant's `civil_from_days`).
pub fn format_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The partition directory name of a day.
pub fn partition_dir(days: i64) -> String {
    format!("date={}", format_day(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_days() {
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(format_day(day_of(1_378_054_800_083)), "2013-09-01");
        assert_eq!(format_day(day_of(951_868_800_000)), "2000-03-01");
        assert_eq!(format_day(day_of(951_868_799_999)), "2000-02-29");
        assert_eq!(format_day(-1), "1969-12-31");
        assert_eq!(partition_dir(day_of(1_709_251_199_000)), "date=2024-02-29");
    }
}
