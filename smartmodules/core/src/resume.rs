//! The text of a bounded restart's seed (the `stockstream.resume` parameter): what a fresh
//! stateful module needs, besides the input from the replay's start, to reach the state of an
//! uninterrupted run (see [`RollingStats::resume`](crate::rolling::RollingStats::resume) and
//! [`WindowBars::resume`](crate::bars::WindowBars::resume)).
//!
//! - rolling statistics: `SYMBOL=TS` tokens separated by spaces, each symbol's start;
//! - bars: `max_ts=TS`, the newest event time admitted before the replay's start.
//!
//! Symbols never hold `=` or a space (spec: `A-Z a-z 0-9 . _ : -`), so no escaping is needed.

use crate::ParamError;

/// The parameter's name, for messages.
pub const PARAM: &str = "stockstream.resume";

const EXPECTED_STARTS: &str = "space-separated SYMBOL=TS tokens";
const EXPECTED_MAX_TS: &str = "max_ts=TS";

/// Writes each symbol's start.
pub fn format_starts<'a>(starts: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    let mut text = String::new();
    for (symbol, ts) in starts {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(symbol);
        text.push('=');
        text.push_str(&ts.to_string());
    }
    text
}

/// Reads what [`format_starts`] wrote.
pub fn parse_starts(text: &str) -> Result<Vec<(Box<str>, i64)>, ParamError> {
    text.split_ascii_whitespace()
        .map(|token| {
            let invalid = || ParamError::new(PARAM, token, EXPECTED_STARTS);
            let (symbol, ts) = token.split_once('=').ok_or_else(invalid)?;
            let ts = ts.parse::<i64>().map_err(|_| invalid())?;
            if symbol.is_empty() {
                return Err(invalid());
            }
            Ok((symbol.into(), ts))
        })
        .collect()
}

/// Writes the bars' newest admitted event time.
pub fn format_max_ts(max_ts: i64) -> String {
    format!("max_ts={max_ts}")
}

/// Reads what [`format_max_ts`] wrote.
pub fn parse_max_ts(text: &str) -> Result<i64, ParamError> {
    text.trim()
        .strip_prefix("max_ts=")
        .and_then(|ts| ts.parse().ok())
        .ok_or_else(|| ParamError::new(PARAM, text, EXPECTED_MAX_TS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_read_back_as_written() {
        let text = format_starts([("ES", 1_378_069_200_083), ("BRK.B:X-1_", -5)]);
        assert_eq!(text, "ES=1378069200083 BRK.B:X-1_=-5");
        assert_eq!(
            parse_starts(&text).unwrap(),
            vec![("ES".into(), 1_378_069_200_083), ("BRK.B:X-1_".into(), -5)]
        );
        assert_eq!(parse_starts("").unwrap(), vec![]);
    }

    #[test]
    fn malformed_seeds_are_refused_with_the_token() {
        for bad in ["ES", "ES=x", "=5", "ES=1 AAPL"] {
            let error = parse_starts(bad).unwrap_err();
            assert_eq!(error.param, PARAM, "{bad}");
        }
        assert_eq!(parse_max_ts(&format_max_ts(-3)).unwrap(), -3);
        assert!(parse_max_ts("3").is_err());
        assert!(parse_max_ts("max_ts=").is_err());
    }
}
