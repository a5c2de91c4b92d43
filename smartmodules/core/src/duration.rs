//! Durations as the spec writes them: an integer and a unit (`300s`, `5m`, `1h`).

use crate::ParamError;

/// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d` into milliseconds.
///
/// `param` names the parameter in the error so a bad value is reported where it came from.
pub fn parse_duration_ms(param: &'static str, value: &str) -> Result<i64, ParamError> {
    let bad = || {
        ParamError::new(
            param,
            value,
            "an integer and a unit ms|s|m|h|d, e.g. 300s or 5m",
        )
    };
    let value_trimmed = value.trim();
    let split = value_trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(bad)?;
    let (digits, unit) = value_trimmed.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let amount: i64 = digits.parse().map_err(|_| bad())?;
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let ms = amount.checked_mul(unit_ms).ok_or_else(bad)?;
    // No window, step or delay longer than the span tick times may have (1970 to 2200) means
    // anything, and a bound keeps all window arithmetic far from i64's edges (found by fuzzing:
    // a size near i64::MAX overflowed the first window's start).
    if ms > crate::tick::MAX_TS {
        return Err(ParamError::new(
            param,
            value,
            "at most 84006d, the span of valid tick times (1970 to 2200)",
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_unit() {
        assert_eq!(parse_duration_ms("w", "250ms").unwrap(), 250);
        assert_eq!(parse_duration_ms("w", "300s").unwrap(), 300_000);
        assert_eq!(parse_duration_ms("w", "5m").unwrap(), 300_000);
        assert_eq!(parse_duration_ms("w", "1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration_ms("w", "2d").unwrap(), 172_800_000);
        assert_eq!(parse_duration_ms("w", "0s").unwrap(), 0);
    }

    #[test]
    fn rejects_durations_beyond_the_span_of_tick_times() {
        assert_eq!(
            parse_duration_ms("w", "84006d").unwrap(),
            84_006 * 86_400_000
        );
        for long in ["84007d", "9223372036854775806ms", "1300000000d"] {
            let error = parse_duration_ms("size", long).unwrap_err();
            assert!(
                error.to_string().contains("at most 84006d"),
                "{long}: {error}"
            );
        }
    }

    #[test]
    fn rejects_malformed_values_naming_the_parameter() {
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            "-5m",
            "5min",
            "1.5m",
            "99999999999999999999d",
        ] {
            let err = parse_duration_ms("window", bad).unwrap_err();
            assert_eq!(err.param, "window", "{bad}");
            assert!(err.to_string().contains("window"), "{err}");
        }
    }
}
