//! The z-score anomaly rule: `z = (price - prev_mean) / prev_std`.

use crate::json::{self, ObjectFields, Value};
use crate::rolling::{LATE_FALSE_SUFFIX, LATE_TRUE_SUFFIX};
use crate::ParamError;

/// Which enriched ticks `zscore-anomaly` passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every tick, with `z` and `anomaly` added.
    All,
    /// Only the ticks flagged as anomalies.
    Anomalies,
}

/// Parameters of `zscore-anomaly`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZScoreConfig {
    /// |z| at or above which a tick is an anomaly (`threshold`, default 3.0).
    pub threshold: f64,
    /// Fewest previous-window ticks for a z to be computed (`min_count`, default 20).
    pub min_count: u64,
    /// `emit=all` (default) or `emit=anomalies`.
    pub emit: Emit,
}

impl Default for ZScoreConfig {
    fn default() -> Self {
        Self {
            threshold: 3.0,
            min_count: 20,
            emit: Emit::All,
        }
    }
}

impl ZScoreConfig {
    /// Reads `threshold`, `min_count` and `emit` from the module's parameters.
    pub fn from_params<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ParamError> {
        let mut config = Self::default();
        if let Some(value) = param("threshold") {
            config.threshold = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| ParamError::new("threshold", value, "a non-negative number such as 3.0"))?;
        }
        if let Some(value) = param("min_count") {
            config.min_count = value
                .trim()
                .parse()
                .map_err(|_| ParamError::new("min_count", value, "a non-negative integer such as 20"))?;
        }
        if let Some(value) = param("emit") {
            config.emit = match value.trim() {
                "all" => Emit::All,
                "anomalies" => Emit::Anomalies,
                _ => return Err(ParamError::new("emit", value, "`all` or `anomalies`")),
            };
        }
        Ok(config)
    }

    /// The z-score of `price` against its previous window, when the rule allows one.
    pub fn score(&self, price: f64, prev_mean: Option<f64>, prev_std: Option<f64>, prev_count: Option<u64>) -> Option<f64> {
        if prev_count? < self.min_count {
            return None;
        }
        let std = prev_std.filter(|s| *s > 0.0)?;
        Some((price - prev_mean?) / std)
    }

    /// Whether a z-score makes an anomaly.
    pub fn is_anomaly(&self, z: Option<f64>) -> bool {
        z.is_some_and(|z| z.abs() >= self.threshold)
    }
}

/// The fields of an enriched tick that the rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoringInput {
    pub price: f64,
    pub prev_mean: Option<f64>,
    pub prev_std: Option<f64>,
    pub prev_count: Option<u64>,
}

/// Why a record cannot be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    #[error("{0}")]
    NotJson(json::JsonError),
    #[error("field `{0}` is missing or of the wrong type: zscore-anomaly reads the output of rolling-stats (chain tick-filter, rolling-stats, zscore-anomaly)")]
    Field(&'static str),
}

/// Reads price and the previous-window statistics from an enriched record.
pub fn parse_scoring_input(record: &[u8]) -> Result<ScoringInput, ScoringError> {
    let mut fields = ObjectFields::new(record).map_err(ScoringError::NotJson)?;
    let mut price = None;
    let (mut prev_mean, mut prev_std, mut prev_count) = (None, None, None);
    while let Some((key, value)) = fields.next_field().map_err(ScoringError::NotJson)? {
        match key {
            b"price" => price = Some(number(value).flatten().ok_or(ScoringError::Field("price"))?),
            b"prev_mean" => prev_mean = Some(number(value).ok_or(ScoringError::Field("prev_mean"))?),
            b"prev_std" => prev_std = Some(number(value).ok_or(ScoringError::Field("prev_std"))?),
            b"prev_count" => {
                prev_count = Some(match value {
                    Value::Null => None,
                    Value::Num(n) => Some(
                        n.to_i64()
                            .and_then(|c| u64::try_from(c).ok())
                            .ok_or(ScoringError::Field("prev_count"))?,
                    ),
                    _ => return Err(ScoringError::Field("prev_count")),
                })
            }
            _ => {}
        }
    }
    Ok(ScoringInput {
        price: price.ok_or(ScoringError::Field("price"))?,
        prev_mean: prev_mean.ok_or(ScoringError::Field("prev_mean"))?,
        prev_std: prev_std.ok_or(ScoringError::Field("prev_std"))?,
        prev_count: prev_count.ok_or(ScoringError::Field("prev_count"))?,
    })
}

/// `Some(None)` for null, `Some(Some(x))` for a number, `None` for anything else.
fn number(value: Value<'_>) -> Option<Option<f64>> {
    match value {
        Value::Null => Some(None),
        Value::Num(n) => Some(Some(n.to_f64())),
        _ => None,
    }
}

/// Writes `record` with `"z"` and `"anomaly"` added, before rolling-stats' closing `"late"`
/// field when it is there (so the spec's field order holds), else at the end.
pub fn write_scored(record: &[u8], z: Option<f64>, anomaly: bool, out: &mut Vec<u8>) -> bool {
    let Some(open) = json::open_object(record) else {
        return false;
    };
    let trimmed = &record[..open.len() + 1];
    let suffix = [LATE_FALSE_SUFFIX, LATE_TRUE_SUFFIX]
        .into_iter()
        .find(|s| trimmed.ends_with(s))
        .unwrap_or(b"}");
    out.reserve(trimmed.len() + 48);
    out.extend_from_slice(&trimmed[..trimmed.len() - suffix.len()]);
    out.extend_from_slice(b",\"z\":");
    json::write_opt_f64(out, z);
    out.extend_from_slice(if anomaly { b",\"anomaly\":true" } else { b",\"anomaly\":false" });
    out.extend_from_slice(suffix);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn defaults_and_parameters() {
        assert_eq!(ZScoreConfig::from_params(params(&[])).unwrap(), ZScoreConfig::default());
        let config = ZScoreConfig::from_params(params(&[("threshold", "2"), ("min_count", "3"), ("emit", "anomalies")])).unwrap();
        assert_eq!(config.threshold, 2.0);
        assert_eq!(config.min_count, 3);
        assert_eq!(config.emit, Emit::Anomalies);
        for (name, value) in [("threshold", "x"), ("threshold", "-1"), ("min_count", "2.5"), ("emit", "some")] {
            let err = ZScoreConfig::from_params(params(&[(name, value)])).unwrap_err();
            assert_eq!(err.param, name);
        }
    }

    #[test]
    fn z_is_null_without_enough_history_or_spread() {
        let rule = ZScoreConfig { min_count: 3, ..ZScoreConfig::default() };
        assert_eq!(rule.score(11.0, Some(10.0), Some(0.5), Some(3)), Some(2.0));
        assert_eq!(rule.score(11.0, Some(10.0), Some(0.5), Some(2)), None);
        assert_eq!(rule.score(11.0, Some(10.0), Some(0.0), Some(30)), None);
        assert_eq!(rule.score(11.0, Some(10.0), None, Some(30)), None);
        assert_eq!(rule.score(11.0, None, None, None), None);
        assert!(rule.is_anomaly(Some(-3.0)));
        assert!(!rule.is_anomaly(Some(2.999)));
        assert!(!rule.is_anomaly(None));
    }

    #[test]
    fn inserts_fields_before_late() {
        let mut out = Vec::new();
        assert!(write_scored(br#"{"price":1,"late":false}"#, Some(1.5), false, &mut out));
        assert_eq!(out, br#"{"price":1,"z":1.5,"anomaly":false,"late":false}"#);
        out.clear();
        assert!(write_scored(br#"{"price":1} "#, None, false, &mut out));
        assert_eq!(out, br#"{"price":1,"z":null,"anomaly":false}"#);
    }

    #[test]
    fn reads_scoring_input_and_names_missing_fields() {
        let input = parse_scoring_input(br#"{"price":2.5,"prev_mean":2,"prev_std":null,"prev_count":1}"#).unwrap();
        assert_eq!(input, ScoringInput { price: 2.5, prev_mean: Some(2.0), prev_std: None, prev_count: Some(1) });
        let err = parse_scoring_input(br#"{"symbol":"A","ts":1,"price":2}"#).unwrap_err();
        assert!(err.to_string().contains("prev_mean"), "{err}");
    }
}
