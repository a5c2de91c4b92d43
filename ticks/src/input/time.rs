//! Timestamps as CSV files write them, to epoch milliseconds (UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Naive forms, read as UTC.
const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S%.f",
];

/// Epoch values below this are seconds, above are milliseconds (1e11 s is in the year 5138,
/// 1e11 ms is in 1973).
const SECONDS_LIMIT: f64 = 1e11;

/// Reads RFC 3339 (`2013-09-01T17:00:00.083Z`, any offset), naive date-times (as UTC), dates
/// (midnight UTC) and epoch seconds or milliseconds.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(epoch) = text.parse::<f64>() {
        if !epoch.is_finite() || epoch <= 0.0 {
            return Err(format!("timestamp {text:?} is not a positive epoch value"));
        }
        let ms = if epoch < SECONDS_LIMIT {
            epoch * 1000.0
        } else {
            epoch
        };
        return Ok(ms.round() as i64);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for format in NAIVE_FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    for format in ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return Ok(d
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_millis());
        }
    }
    Err(format!(
        "timestamp {text:?} is not RFC 3339, a date-time like 2013-09-01 17:00:00.083, a date, or epoch seconds/milliseconds"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
