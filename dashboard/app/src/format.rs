//! Text for numbers and times as the dashboard shows them.

pub const DASH: &str = "–";

/// `HH:MM:SS` in UTC of a time in ms since the epoch.
pub fn utc_hms(ms: f64) -> String {
    let (h, m, s) = utc_parts(ms);
    format!("{h:02}:{m:02}:{s:02}")
}

/// `HH:MM` in UTC.
pub fn utc_hm(ms: f64) -> String {
    let (h, m, _) = utc_parts(ms);
    format!("{h:02}:{m:02}")
}

/// `YYYY-MM-DD` in UTC (for axes spanning days).
pub fn utc_date(ms: f64) -> String {
    // Days since 1970-01-01 to the civil date (proleptic Gregorian), after H. Hinnant.
    let days = (ms / 86_400_000.0).floor() as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn utc_parts(ms: f64) -> (i64, i64, i64) {
    let second_of_day = ((ms / 1000.0).floor() as i64).rem_euclid(86_400);
    (
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

/// Prices below 1 get more decimals so that their moves stay visible.
pub fn price(value: f64) -> String {
    if value.abs() < 1.0 {
        format!("{value:.4}")
    } else {
        format!("{value:.2}")
    }
}

pub fn optional(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => DASH.to_string(),
    }
}

/// `+1.23 (+0.45%)` of `last` against `first`.
pub fn change(first: f64, last: f64) -> String {
    let delta = last - first;
    let percent = if first != 0.0 {
        delta / first * 100.0
    } else {
        0.0
    };
    format!("{delta:+.2} ({percent:+.2}%)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc_date(0.0), "1970-01-01");
        assert_eq!(utc_date(1_767_364_205_250.0), "2026-01-02");
        assert_eq!(utc_date(951_782_400_000.0), "2000-02-29");
        assert_eq!(utc_date(-86_400_000.0), "1969-12-31");
    }

    #[test]
    fn formats_utc_times() {
        // 2026-01-02T14:30:05.250Z
        let ms = 1_767_364_205_250.0;
        assert_eq!(utc_hms(ms), "14:30:05");
        assert_eq!(utc_hm(ms), "14:30");
        assert_eq!(utc_hms(-1000.0), "23:59:59");
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(price(101.234), "101.23");
        assert_eq!(price(0.5), "0.5000");
        assert_eq!(change(100.0, 101.5), "+1.50 (+1.50%)");
        assert_eq!(change(100.0, 99.0), "-1.00 (-1.00%)");
        assert_eq!(optional(None, 2), DASH);
        assert_eq!(optional(Some(2.345), 2), "2.35");
    }
}
