//! The z-score anomaly rule: `z = (price - prev_mean) / prev_std`.

use crate::json::{self, key_is, number_or_null, strip_literal, Number, ObjectFields, Value};
use crate::rolling::{Basis, ReturnStats, LATE_FALSE_SUFFIX, LATE_TRUE_SUFFIX};
use crate::tick::{MAX_SYMBOL_LEN, SYMBOL_BYTES};
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
    /// `basis=price` (default) or `basis=return`; must match rolling-stats' `basis`.
    pub basis: Basis,
}

impl Default for ZScoreConfig {
    fn default() -> Self {
        Self {
            threshold: 3.0,
            min_count: 20,
            emit: Emit::All,
            basis: Basis::Price,
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
                .ok_or_else(|| {
                    ParamError::new("threshold", value, "a non-negative number such as 3.0")
                })?;
        }
        if let Some(value) = param("min_count") {
            config.min_count = value.trim().parse().map_err(|_| {
                ParamError::new("min_count", value, "a non-negative integer such as 20")
            })?;
        }
        if let Some(value) = param("emit") {
            config.emit = match value.trim() {
                "all" => Emit::All,
                "anomalies" => Emit::Anomalies,
                _ => return Err(ParamError::new("emit", value, "`all` or `anomalies`")),
            };
        }
        if let Some(value) = param("basis") {
            config.basis = Basis::parse(value)?;
        }
        Ok(config)
    }

    /// The z-score of `price` against its previous window, when the rule allows one.
    pub fn score(
        &self,
        price: f64,
        prev_mean: Option<f64>,
        prev_std: Option<f64>,
        prev_count: Option<u64>,
    ) -> Option<f64> {
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

    /// Whether `input` was enriched with this config's basis: a record with return statistics
    /// under `basis=price`, or one without under `basis=return`, means the chain's two
    /// modules disagree, which would otherwise score silently on the wrong basis.
    pub fn check_basis(&self, input: &ScoringInput) -> Result<(), ScoringError> {
        let found = if input.returns.is_some() {
            Basis::Return
        } else {
            Basis::Price
        };
        if found == self.basis {
            Ok(())
        } else {
            Err(ScoringError::BasisMismatch {
                expected: self.basis.as_str(),
                found: found.as_str(),
            })
        }
    }

    /// The z and flag of a tick, or `None` when `emit=anomalies` drops it.
    ///
    /// With `basis=return`, z is that of the tick's return; call [`Self::check_basis`] first,
    /// as a record without return statistics scores null here.
    pub fn verdict(&self, input: ScoringInput) -> Option<(Option<f64>, bool)> {
        let z = match self.basis {
            Basis::Price => self.score(
                input.price,
                input.prev_mean,
                input.prev_std,
                input.prev_count,
            ),
            Basis::Return => input
                .returns
                .and_then(|r| self.score(r.ret?, r.prev_mean, r.prev_std, r.prev_count)),
        };
        let anomaly = self.is_anomaly(z);
        (self.emit == Emit::All || anomaly).then_some((z, anomaly))
    }
}

/// The fields of an enriched tick that the rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoringInput {
    pub price: f64,
    pub prev_mean: Option<f64>,
    pub prev_std: Option<f64>,
    pub prev_count: Option<u64>,
    /// The `ret*` fields, present when rolling-stats ran with `basis=return`.
    pub returns: Option<ReturnStats>,
}

/// Why a record cannot be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    #[error("{0}")]
    NotJson(json::JsonError),
    #[error("field `{0}` is missing or of the wrong type: zscore-anomaly reads the output of rolling-stats (chain tick-filter, rolling-stats, zscore-anomaly)")]
    Field(&'static str),
    #[error("zscore-anomaly has basis={expected} but the record was enriched with basis={found}: set the same `basis` on rolling-stats and zscore-anomaly")]
    BasisMismatch {
        expected: &'static str,
        found: &'static str,
    },
}

/// Reads price and the previous-window statistics from an enriched record.
pub fn parse_scoring_input(record: &[u8]) -> Result<ScoringInput, ScoringError> {
    match compact_scoring_input(record) {
        Some(input) => Ok(input),
        None => parse_any_scoring_input(record),
    }
}

/// What rolling-stats writes onto a tick in the compact shape producers use, read directly:
/// `{"symbol":"ES","ts":..,"price":..[,"volume":..],"sma":..,"count":..,"vwap":..,
/// "prev_mean":..,"prev_std":..,"prev_count":..,"late":false}` exactly, with no whitespace, a
/// symbol of at most 32 of the tick characters and numbers or nulls (a number price, an
/// integer prev_count >= 0). Anything else is `None` and goes to the general path. What this
/// accepts is valid JSON, and the general path would read the same values from it.
#[inline(always)]
fn compact_scoring_input(record: &[u8]) -> Option<ScoringInput> {
    let rest = strip_literal(record, b"{\"symbol\":\"")?;
    let len = rest
        .iter()
        .take(MAX_SYMBOL_LEN + 1)
        .position(|&b| !SYMBOL_BYTES[usize::from(b)])?;
    let rest = strip_literal(&rest[len..], b"\",\"ts\":")?;
    let (_, rest) = number_or_null(rest)?;
    let (price, rest) = number_or_null(strip_literal(rest, b",\"price\":")?)?;
    let price = price?.to_f64();
    let rest = match strip_literal(rest, b",\"volume\":") {
        Some(rest) => number_or_null(rest)?.1,
        None => rest,
    };
    let (_, rest) = number_or_null(strip_literal(rest, b",\"sma\":")?)?;
    let (_, rest) = number_or_null(strip_literal(rest, b",\"count\":")?)?;
    let (_, rest) = number_or_null(strip_literal(rest, b",\"vwap\":")?)?;
    let (prev_mean, rest) = number_or_null(strip_literal(rest, b",\"prev_mean\":")?)?;
    let (prev_std, rest) = number_or_null(strip_literal(rest, b",\"prev_std\":")?)?;
    let (prev_count, rest) = number_or_null(strip_literal(rest, b",\"prev_count\":")?)?;
    let prev_count = match prev_count {
        None => None,
        Some(count) => Some(u64::try_from(count.to_i64()?).ok()?),
    };
    // An already scored record (stock-enriched, rescored for stock-anomalies) carries its
    // z and flag here; they are replaced, so they are only stepped over.
    let rest = match strip_literal(rest, b",\"z\":") {
        Some(rest) => {
            let (_, rest) = number_or_null(rest)?;
            let rest = strip_literal(rest, b",\"anomaly\":")?;
            strip_literal(rest, b"true").or_else(|| strip_literal(rest, b"false"))?
        }
        None => rest,
    };
    if !(key_is(rest, LATE_FALSE_SUFFIX) || key_is(rest, LATE_TRUE_SUFFIX)) {
        return None;
    }
    Some(ScoringInput {
        price,
        prev_mean: prev_mean.map(Number::to_f64),
        prev_std: prev_std.map(Number::to_f64),
        prev_count,
        returns: None,
    })
}

/// [`parse_scoring_input`] for records of any shape.
fn parse_any_scoring_input(record: &[u8]) -> Result<ScoringInput, ScoringError> {
    let mut fields = ObjectFields::new(record).map_err(ScoringError::NotJson)?;
    let mut price = None;
    let (mut prev_mean, mut prev_std, mut prev_count) = (None, None, None);
    let (mut ret, mut ret_mean, mut ret_std, mut ret_count) = (None, None, None, None);
    while let Some((key, value)) = fields.next_field().map_err(ScoringError::NotJson)? {
        // By length first: most fields are none of these four.
        match key.len() {
            5 if key_is(key, b"price") => {
                price = Some(
                    number(value)
                        .flatten()
                        .ok_or(ScoringError::Field("price"))?,
                )
            }
            9 if key_is(key, b"prev_mean") => {
                prev_mean = Some(number(value).ok_or(ScoringError::Field("prev_mean"))?)
            }
            8 if key_is(key, b"prev_std") => {
                prev_std = Some(number(value).ok_or(ScoringError::Field("prev_std"))?)
            }
            10 if key_is(key, b"prev_count") => {
                prev_count = Some(count(value).ok_or(ScoringError::Field("prev_count"))?)
            }
            3 if key_is(key, b"ret") => {
                ret = Some(number(value).ok_or(ScoringError::Field("ret"))?)
            }
            13 if key_is(key, b"ret_prev_mean") => {
                ret_mean = Some(number(value).ok_or(ScoringError::Field("ret_prev_mean"))?)
            }
            12 if key_is(key, b"ret_prev_std") => {
                ret_std = Some(number(value).ok_or(ScoringError::Field("ret_prev_std"))?)
            }
            14 if key_is(key, b"ret_prev_count") => {
                ret_count = Some(count(value).ok_or(ScoringError::Field("ret_prev_count"))?)
            }
            _ => {}
        }
    }
    Ok(ScoringInput {
        price: price.ok_or(ScoringError::Field("price"))?,
        prev_mean: prev_mean.ok_or(ScoringError::Field("prev_mean"))?,
        prev_std: prev_std.ok_or(ScoringError::Field("prev_std"))?,
        prev_count: prev_count.ok_or(ScoringError::Field("prev_count"))?,
        // ret_prev_count marks a return-basis record; the other three must then be there too.
        returns: match ret_count {
            None => None,
            Some(prev_count) => Some(ReturnStats {
                ret: ret.ok_or(ScoringError::Field("ret"))?,
                prev_mean: ret_mean.ok_or(ScoringError::Field("ret_prev_mean"))?,
                prev_std: ret_std.ok_or(ScoringError::Field("ret_prev_std"))?,
                prev_count,
            }),
        },
    })
}

/// `Some(None)` for null, `Some(Some(n))` for a non-negative integer, `None` for anything else.
fn count(value: Value<'_>) -> Option<Option<u64>> {
    match value {
        Value::Null => Some(None),
        Value::Num(n) => Some(Some(n.to_i64().and_then(|c| u64::try_from(c).ok())?)),
        _ => None,
    }
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
/// field when it is there (so the spec's field order holds), else at the end. A record this
/// function wrote before (an enriched tick) has its `z` and `anomaly` replaced, so scoring
/// stock-enriched again gives exactly what scoring rolling-stats' output gives.
pub fn write_scored(record: &[u8], z: Option<f64>, anomaly: bool, out: &mut Vec<u8>) -> bool {
    let Some(open) = json::open_object(record) else {
        return false;
    };
    let trimmed = &record[..open.len() + 1];
    let suffix = [LATE_FALSE_SUFFIX, LATE_TRUE_SUFFIX]
        .into_iter()
        .find(|s| trimmed.ends_with(s))
        .unwrap_or(b"}");
    let body = without_score(&trimmed[..trimmed.len() - suffix.len()]);
    out.reserve(body.len() + suffix.len() + 48);
    out.extend_from_slice(body);
    out.extend_from_slice(b",\"z\":");
    json::write_opt_f64(out, z);
    out.extend_from_slice(if anomaly {
        b",\"anomaly\":true"
    } else {
        b",\"anomaly\":false"
    });
    out.extend_from_slice(suffix);
    true
}

/// `body` without a trailing `,"z":<number|null>,"anomaly":<bool>` that [`write_scored`] wrote.
fn without_score(body: &[u8]) -> &[u8] {
    let Some(rest) = body
        .strip_suffix(b",\"anomaly\":true")
        .or_else(|| body.strip_suffix(b",\"anomaly\":false"))
    else {
        return body;
    };
    const Z_KEY: &[u8] = b",\"z\":";
    let Some(at) = rest.windows(Z_KEY.len()).rposition(|w| w == Z_KEY) else {
        return body;
    };
    match number_or_null(&rest[at + Z_KEY.len()..]) {
        Some((_, [])) => &rest[..at],
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn defaults_and_parameters() {
        assert_eq!(
            ZScoreConfig::from_params(params(&[])).unwrap(),
            ZScoreConfig::default()
        );
        let config = ZScoreConfig::from_params(params(&[
            ("threshold", "2"),
            ("min_count", "3"),
            ("emit", "anomalies"),
        ]))
        .unwrap();
        assert_eq!(config.threshold, 2.0);
        assert_eq!(config.min_count, 3);
        assert_eq!(config.emit, Emit::Anomalies);
        for (name, value) in [
            ("threshold", "x"),
            ("threshold", "-1"),
            ("min_count", "2.5"),
            ("emit", "some"),
        ] {
            let err = ZScoreConfig::from_params(params(&[(name, value)])).unwrap_err();
            assert_eq!(err.param, name);
        }
    }

    #[test]
    fn z_is_null_without_enough_history_or_spread() {
        let rule = ZScoreConfig {
            min_count: 3,
            ..ZScoreConfig::default()
        };
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
    fn scoring_a_scored_record_replaces_its_score() {
        let enriched = br#"{"symbol":"ES","ts":1,"price":10.5,"volume":2,"sma":10,"count":21,"vwap":10,"prev_mean":10,"prev_std":0.1,"prev_count":20,"late":false}"#;
        let mut once = Vec::new();
        write_scored(enriched, Some(5.0), true, &mut once);
        assert_eq!(parse_scoring_input(&once), parse_scoring_input(enriched));
        let mut twice = Vec::new();
        write_scored(&once, Some(5.0), true, &mut twice);
        assert_eq!(twice, once);
        let mut rescored = Vec::new();
        write_scored(&once, None, false, &mut rescored);
        let mut direct = Vec::new();
        write_scored(enriched, None, false, &mut direct);
        assert_eq!(rescored, direct);
        // A field named z elsewhere in the tick is the tick's own.
        let own_z = br#"{"price":1,"z":"mine","late":false}"#;
        let mut out = Vec::new();
        write_scored(own_z, Some(1.0), false, &mut out);
        assert_eq!(
            out,
            br#"{"price":1,"z":"mine","z":1.0,"anomaly":false,"late":false}"#
        );
    }

    #[test]
    fn inserts_fields_before_late() {
        let mut out = Vec::new();
        assert!(write_scored(
            br#"{"price":1,"late":false}"#,
            Some(1.5),
            false,
            &mut out
        ));
        assert_eq!(out, br#"{"price":1,"z":1.5,"anomaly":false,"late":false}"#);
        out.clear();
        assert!(write_scored(br#"{"price":1} "#, None, false, &mut out));
        assert_eq!(out, br#"{"price":1,"z":null,"anomaly":false}"#);
    }

    #[test]
    fn return_basis_scores_the_return_and_reports_a_mismatch() {
        let record = br#"{"symbol":"ES","ts":1,"price":10.5,"sma":10,"count":21,"vwap":10,"prev_mean":10,"prev_std":0.1,"prev_count":20,"ret":0.03,"ret_prev_mean":0.01,"ret_prev_std":0.005,"ret_prev_count":20,"late":false}"#;
        let input = parse_scoring_input(record).unwrap();
        assert_eq!(
            input.returns,
            Some(ReturnStats {
                ret: Some(0.03),
                prev_mean: Some(0.01),
                prev_std: Some(0.005),
                prev_count: Some(20)
            })
        );
        let returns = ZScoreConfig {
            basis: Basis::Return,
            ..ZScoreConfig::default()
        };
        assert_eq!(returns.check_basis(&input), Ok(()));
        let (z, anomaly) = returns.verdict(input).unwrap();
        assert!((z.unwrap() - 4.0).abs() < 1e-12, "{z:?}");
        assert!(anomaly);
        // The same record under basis=price is a mismatch, and so is a price record under
        // basis=return.
        let prices = ZScoreConfig::default();
        let err = prices.check_basis(&input).unwrap_err();
        assert!(err.to_string().contains("basis"), "{err}");
        let price_record = br#"{"symbol":"ES","ts":1,"price":10.5,"sma":10,"count":21,"vwap":10,"prev_mean":10,"prev_std":0.1,"prev_count":20,"late":false}"#;
        let price_input = parse_scoring_input(price_record).unwrap();
        assert_eq!(prices.check_basis(&price_input), Ok(()));
        assert!(matches!(
            returns.check_basis(&price_input),
            Err(ScoringError::BasisMismatch {
                expected: "return",
                found: "price"
            })
        ));
        // A null return (a symbol's first tick) scores null.
        let first = br#"{"price":10,"prev_mean":null,"prev_std":null,"prev_count":0,"ret":null,"ret_prev_mean":null,"ret_prev_std":null,"ret_prev_count":0}"#;
        assert_eq!(
            returns.verdict(parse_scoring_input(first).unwrap()),
            Some((None, false))
        );
        // ret_prev_count without the other return fields is an incomplete record.
        let partial =
            br#"{"price":10,"prev_mean":null,"prev_std":null,"prev_count":0,"ret_prev_count":0}"#;
        assert_eq!(
            parse_scoring_input(partial),
            Err(ScoringError::Field("ret"))
        );
    }

    #[test]
    fn reads_scoring_input_and_names_missing_fields() {
        let input =
            parse_scoring_input(br#"{"price":2.5,"prev_mean":2,"prev_std":null,"prev_count":1}"#)
                .unwrap();
        assert_eq!(
            input,
            ScoringInput {
                price: 2.5,
                prev_mean: Some(2.0),
                prev_std: None,
                prev_count: Some(1),
                returns: None,
            }
        );
        let err = parse_scoring_input(br#"{"symbol":"A","ts":1,"price":2}"#).unwrap_err();
        assert!(err.to_string().contains("prev_mean"), "{err}");
    }

    mod properties {
        use super::*;
        use crate::json::strategies::{mutated, number_token, object, serde_object, value_token};
        use proptest::prelude::*;

        type Expected = Result<(u64, Option<u64>, Option<u64>, Option<u64>), String>;

        /// The reading rules applied to `(key, value)` tokens in order: a bad value fails at
        /// once, a repeated field takes the last value, then missing fields are named.
        fn reference(fields: &[(String, String)]) -> Expected {
            let number = |v: &str| match v.as_bytes()[0] {
                b'n' => Some(None),
                b'-' | b'0'..=b'9' => Some(Some(
                    v.parse::<f64>().expect("JSON numbers parse").to_bits(),
                )),
                _ => None,
            };
            let (mut price, mut mean, mut std, mut count) = (None, None, None, None);
            for (key, value) in fields {
                let name = &key[1..key.len() - 1];
                let bad = || format!("field `{name}` is missing");
                match name {
                    "price" => price = Some(number(value).flatten().ok_or_else(bad)?),
                    "prev_mean" => mean = Some(number(value).ok_or_else(bad)?),
                    "prev_std" => std = Some(number(value).ok_or_else(bad)?),
                    "prev_count" => {
                        count = Some(match value.as_bytes()[0] {
                            b'n' => None,
                            b'-' | b'0'..=b'9' if !value.contains(['.', 'e', 'E']) => Some(
                                // An integer literal whose magnitude fits i64 ("-0" is 0).
                                value
                                    .parse::<i64>()
                                    .ok()
                                    .filter(|c| *c != i64::MIN)
                                    .and_then(|c| u64::try_from(c).ok())
                                    .ok_or_else(bad)?,
                            ),
                            _ => return Err(bad()),
                        })
                    }
                    _ => {}
                }
            }
            let missing = |name: &str| format!("field `{name}` is missing");
            Ok((
                price.ok_or_else(|| missing("price"))?,
                mean.ok_or_else(|| missing("prev_mean"))?,
                std.ok_or_else(|| missing("prev_std"))?,
                count.ok_or_else(|| missing("prev_count"))?,
            ))
        }

        fn outcome(record: &[u8]) -> Expected {
            parse_scoring_input(record)
                .map(|s| {
                    (
                        s.price.to_bits(),
                        s.prev_mean.map(f64::to_bits),
                        s.prev_std.map(f64::to_bits),
                        s.prev_count,
                    )
                })
                .map_err(|e| match e {
                    // The message names the field first.
                    ScoringError::Field(name) => format!("field `{name}` is missing"),
                    other => other.to_string(),
                })
        }

        /// Enriched records: the four fields read here (numbers as rolling-stats writes them,
        /// nulls, sometimes other values or repeats) among the other enriched fields.
        fn enriched_fields() -> impl Strategy<Value = Vec<(String, String)>> {
            let stat = || {
                prop_oneof![
                    4 => "[1-9][0-9]{0,4}\\.[0-9]{1,16}",
                    2 => number_token(),
                    2 => Just("null".to_owned()),
                    1 => value_token(),
                ]
            };
            let count = prop_oneof![
                4 => "(0|[1-9][0-9]{0,19})",
                1 => Just("null".to_owned()),
                1 => number_token(),
                1 => value_token(),
            ];
            let field =
                |name: &str, value: BoxedStrategy<String>| (Just(format!("\"{name}\"")), value);
            let other = prop_oneof![
                field("symbol", Just("\"ES\"".to_owned()).boxed()),
                field("sma", stat().boxed()),
                field("late", Just("false".to_owned()).boxed()),
                field("count", "[1-9][0-9]{0,3}".boxed()),
                field("price", stat().boxed()),
                field("prev_count", "[0-9]".boxed()),
            ];
            (
                prop::option::weighted(0.95, stat()),
                prop::option::weighted(0.95, stat()),
                prop::option::weighted(0.95, stat()),
                prop::option::weighted(0.95, count),
                prop::collection::vec(other, 0..4),
            )
                .prop_map(|(price, mean, std, count, other)| {
                    let named = [
                        ("price", price),
                        ("prev_mean", mean),
                        ("prev_std", std),
                        ("prev_count", count),
                    ];
                    let mut fields: Vec<_> = named
                        .into_iter()
                        .filter_map(|(name, value)| Some((format!("\"{name}\""), value?)))
                        .collect();
                    fields.extend(other);
                    fields
                })
                .prop_shuffle()
        }

        /// Records in (or one edit away from) the shape [`compact_scoring_input`] reads.
        fn compact_record() -> impl Strategy<Value = Vec<u8>> {
            let stat = || {
                prop_oneof![
                    4 => "[1-9][0-9]{0,4}\\.[0-9]{1,16}",
                    1 => "-?(0|[1-9][0-9]{0,20})",
                    1 => number_token(),
                    2 => Just("null".to_owned()),
                    1 => value_token(),
                ]
            };
            let symbol = prop_oneof!["[A-Za-z0-9._:-]{0,34}", "[A-Z]{1,3}[ \"\\\\é/]?"];
            let late = prop::sample::select(vec![
                r#","late":false}"#,
                r#","late":true}"#,
                r#","late":null}"#,
                r#","late":false} "#,
                r#","late":false,"x":1}"#,
                r#"}"#,
            ]);
            let values = prop::collection::vec(stat(), 9);
            let record = (symbol, values, any::<bool>(), late).prop_map(|(symbol, v, volume, late)| {
                let volume = if volume { format!(r#","volume":{}"#, v[2]) } else { String::new() };
                format!(
                    r#"{{"symbol":"{symbol}","ts":{},"price":{}{volume},"sma":{},"count":{},"vwap":{},"prev_mean":{},"prev_std":{},"prev_count":{}{late}"#,
                    v[0], v[1], v[3], v[4], v[5], v[6], v[7], v[8]
                )
            });
            prop_oneof![3 => record.clone().prop_map(String::into_bytes), 1 => mutated(record)]
        }

        #[test]
        fn enriched_records_take_the_compact_path() {
            let record = br#"{"symbol":"ES","ts":1378054800083,"price":1640.25,"volume":8,"sma":1640.1834862385322,"count":109,"vwap":1640.1901408450703,"prev_mean":1640.1805555555557,"prev_std":0.3134080113924473,"prev_count":108,"late":false}"#;
            assert!(compact_scoring_input(record).is_some());
            let late = br#"{"symbol":"ES","ts":1,"price":2,"sma":null,"count":null,"vwap":null,"prev_mean":null,"prev_std":null,"prev_count":null,"late":true}"#;
            assert!(compact_scoring_input(late).is_some());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1500))]

            /// The compact path returns exactly what the general path does.
            #[test]
            fn compact_path_agrees_with_the_general_one(record in compact_record()) {
                let compact = parse_scoring_input(&record).map(|s| (s.price.to_bits(), s.prev_mean.map(f64::to_bits), s.prev_std.map(f64::to_bits), s.prev_count));
                let general = parse_any_scoring_input(&record).map(|s| (s.price.to_bits(), s.prev_mean.map(f64::to_bits), s.prev_std.map(f64::to_bits), s.prev_count));
                prop_assert_eq!(compact, general, "{}", String::from_utf8_lossy(&record));
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Well-formed records: the reference's verdict and exactly the standard library's
            /// (correctly rounded) values.
            #[test]
            fn reads_like_the_reference(
                (fields, record) in enriched_fields().prop_flat_map(|fields| {
                    (Just(fields.clone()), object(Just(fields)))
                }),
            ) {
                prop_assert_eq!(outcome(record.as_bytes()), reference(&fields), "{}", record);
            }

            /// Edited records (UTF-8 ones: this parser reads what rolling-stats wrote and does
            /// not check UTF-8): not JSON exactly when serde_json says so.
            #[test]
            fn rejects_what_serde_json_rejects(record in mutated(object(enriched_fields()))) {
                prop_assume!(std::str::from_utf8(&record).is_ok());
                let ours = parse_scoring_input(&record);
                let shown = String::from_utf8_lossy(&record);
                match serde_object(&record) {
                    Ok(_) => prop_assert!(!matches!(ours, Err(ScoringError::NotJson(_))), "{} {:?}", shown, ours),
                    Err(beyond_grammar) => prop_assert!(beyond_grammar || ours.is_err(), "{} {:?}", shown, ours),
                }
            }
        }
    }
}
