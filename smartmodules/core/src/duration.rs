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
    amount.checked_mul(unit_ms).ok_or_else(bad)
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
