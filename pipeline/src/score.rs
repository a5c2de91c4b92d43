//! `stockstream score`: precision, recall and F1 of the detected anomalies against a
//! ground-truth file (the synthetic generator's injected jumps).
//!
//! A detected anomaly matches a truth row of the same symbol when they are within the
//! tolerance: in milliseconds of event time, or in ticks of that symbol (the enriched stream
//! gives each tick's position: the distance between event times t1 <= t2 is the number of the
//! symbol's ticks with t1 < ts <= t2). Matching is one-to-one and as large as possible (on a
//! line with one tolerance, matching each detection, in order, to the earliest unmatched truth
//! within reach is optimal).
//!
//! Episode level: the detections are grouped into alerts exactly as the run groups them
//! (`stockstream_core::episodes`: a symbol's anomalies at most `cooldown` apart). An alert is
//! right when a truth row of its symbol lies within its span widened by the tolerance; a truth
//! row is found when some alert's widened span holds it. One injected jump that flags several
//! ticks is then one right alert, not one right and several wrong detections.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use stockstream_core::episodes::{self, FlaggedTick};

use crate::outputs::Stream;
use crate::parquet_io::read_symbol_ts_from;
use crate::store::Outputs;

/// How far a detection may be from the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tolerance {
    /// Milliseconds of event time.
    Ms(i64),
    /// Ticks of the same symbol.
    Ticks(u64),
}

impl FromStr for Tolerance {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || {
            format!("invalid tolerance {text:?}: expected a number of ticks (3ticks) or a duration (500ms, 2s, 1m)")
        };
        for suffix in ["ticks", "tick"] {
            if let Some(n) = text.strip_suffix(suffix) {
                return n.trim().parse().map(Tolerance::Ticks).map_err(|_| bad());
            }
        }
        stockstream_core::parse_duration_ms("tolerance", text)
            .ok()
            .filter(|ms| *ms >= 0)
            .map(Tolerance::Ms)
            .ok_or_else(bad)
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Ms(ms) => write!(f, "{ms} ms"),
            Tolerance::Ticks(1) => write!(f, "1 tick"),
            Tolerance::Ticks(n) => write!(f, "{n} ticks"),
        }
    }
}

/// One injected anomaly.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TruthRow {
    pub symbol: String,
    #[serde(deserialize_with = "timestamp")]
    pub ts: i64,
    #[serde(default)]
    pub seq: Option<u64>,
}

fn timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ts {
        Int(i64),
        Text(String),
    }
    match Ts::deserialize(d)? {
        Ts::Int(ms) => Ok(ms),
        Ts::Text(text) => {
            stockstream_ticks::input::parse_timestamp_ms(&text).map_err(serde::de::Error::custom)
        }
    }
}

/// Reads a JSON-lines ground-truth file (rows with at least `symbol` and `ts`).
pub fn read_truth(path: &Path) -> anyhow::Result<Vec<TruthRow>> {
    let file =
        File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: TruthRow = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!(
                "{} line {}: {e} (expected an object with symbol and ts)",
                path.display(),
                index + 1
            )
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// Every Parquet part file of a stream under a local outputs directory, in partition then
/// input order.
pub fn part_files(outputs: &Path, stream: Stream) -> anyhow::Result<Vec<PathBuf>> {
    let files = Outputs::from(outputs).part_files(stream.dir())?;
    Ok(files.iter().map(|f| outputs.join(f)).collect())
}

/// `(symbol, ts)` of every row of a tick stream (enriched or anomalies), on disk or in an
/// object store.
pub fn read_stream(outputs: &Outputs, stream: Stream) -> anyhow::Result<Vec<(Box<str>, i64)>> {
    let mut rows = Vec::new();
    for file in outputs.part_files(stream.dir())? {
        rows.extend(
            read_symbol_ts_from(outputs.read(&file)?)
                .map_err(|e| anyhow::anyhow!("reading {}: {e:#}", outputs.display_join(&file)))?,
        );
    }
    Ok(rows)
}

/// The figures `score` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub detected: usize,
    pub truth: usize,
    pub matched: usize,
    /// matched / detected (0 when nothing was detected).
    pub precision: f64,
    /// matched / truth (0 when the truth is empty).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    pub tolerance: String,
    /// The same detections grouped into alerts.
    pub episodes: EpisodeScore,
}

/// Precision and recall of alerts (episodes) rather than ticks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeScore {
    /// Alerts the detections make.
    pub alerts: usize,
    /// Alerts with a truth row in their (widened) span.
    pub right: usize,
    /// Truth rows inside some alert's widened span.
    pub found: usize,
    pub truth: usize,
    /// right / alerts.
    pub precision: f64,
    /// found / truth.
    pub recall: f64,
    pub f1: f64,
    pub cooldown_ms: i64,
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Scores `detected` against `truth`, tick by tick and alert by alert (alerts of `cooldown_ms`).
/// `ticks` (each symbol's tick timestamps, any order) is needed for a tolerance in ticks.
pub fn score(
    detected: &[(Box<str>, i64)],
    truth: &[TruthRow],
    tolerance: Tolerance,
    ticks: Option<&HashMap<Box<str>, Vec<i64>>>,
    cooldown_ms: i64,
) -> anyhow::Result<Score> {
    let mut by_symbol: HashMap<&str, (Vec<i64>, Vec<i64>)> = HashMap::new();
    for (symbol, ts) in detected {
        by_symbol.entry(symbol).or_default().0.push(*ts);
    }
    for row in truth {
        by_symbol.entry(&row.symbol).or_default().1.push(row.ts);
    }
    let mut sorted_ticks: HashMap<&str, Vec<i64>> = HashMap::new();
    if let Some(ticks) = ticks {
        for (symbol, list) in ticks {
            let mut list = list.clone();
            list.sort_unstable();
            sorted_ticks.insert(symbol, list);
        }
    }
    if let Tolerance::Ticks(_) = tolerance {
        anyhow::ensure!(
            ticks.is_some(),
            "a tolerance in ticks needs the enriched stream"
        );
    }
    let reach = match tolerance {
        Tolerance::Ms(ms) => ms,
        Tolerance::Ticks(n) => i64::try_from(n).unwrap_or(i64::MAX),
    };
    // Where a timestamp lies on the tolerance's scale.
    let position = |symbol: &str, ts: i64| -> i64 {
        match tolerance {
            Tolerance::Ms(_) => ts,
            // Rank: how many of the symbol's ticks are at or before ts.
            Tolerance::Ticks(_) => sorted_ticks
                .get(symbol)
                .map_or(0, |list| list.partition_point(|t| *t <= ts) as i64),
        }
    };
    let mut matched = 0;
    for (symbol, (found, expected)) in &by_symbol {
        let mut found: Vec<i64> = found.iter().map(|ts| position(symbol, *ts)).collect();
        let mut expected: Vec<i64> = expected.iter().map(|ts| position(symbol, *ts)).collect();
        found.sort_unstable();
        expected.sort_unstable();
        let mut next = 0;
        for p in found {
            while next < expected.len() && expected[next] < p.saturating_sub(reach) {
                next += 1;
            }
            if next < expected.len() && expected[next] <= p.saturating_add(reach) {
                matched += 1;
                next += 1;
            }
        }
    }
    let precision = ratio(matched, detected.len());
    let recall = ratio(matched, truth.len());
    // Alerts: each symbol's detections in event time, cut where the gap exceeds the cooldown.
    let (mut alerts, mut right, mut found) = (0, 0, 0);
    for (symbol, (times, expected)) in &by_symbol {
        let mut times = times.clone();
        times.sort_unstable();
        let flagged: Vec<FlaggedTick> = times
            .iter()
            .map(|&ts| FlaggedTick {
                ts,
                price: 0.0,
                z: 0.0,
            })
            .collect();
        let spans: Vec<(i64, i64)> = episodes::group(symbol, &flagged, cooldown_ms)
            .iter()
            .map(|e| {
                (
                    position(symbol, e.start_ts).saturating_sub(reach),
                    position(symbol, e.end_ts).saturating_add(reach),
                )
            })
            .collect();
        let mut expected: Vec<i64> = expected.iter().map(|ts| position(symbol, *ts)).collect();
        expected.sort_unstable();
        alerts += spans.len();
        right += spans
            .iter()
            .filter(|(lo, hi)| {
                let first = expected.partition_point(|p| p < lo);
                first < expected.len() && expected[first] <= *hi
            })
            .count();
        found += expected
            .iter()
            .filter(|p| spans.iter().any(|(lo, hi)| lo <= *p && *p <= hi))
            .count();
    }
    let (episode_precision, episode_recall) = (ratio(right, alerts), ratio(found, truth.len()));
    Ok(Score {
        detected: detected.len(),
        truth: truth.len(),
        matched,
        precision,
        recall,
        f1: f1(precision, recall),
        tolerance: tolerance.to_string(),
        episodes: EpisodeScore {
            alerts,
            right,
            found,
            truth: truth.len(),
            precision: episode_precision,
            recall: episode_recall,
            f1: f1(episode_precision, episode_recall),
            cooldown_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(rows: &[(&str, i64)]) -> Vec<TruthRow> {
        rows.iter()
            .map(|(s, ts)| TruthRow {
                symbol: (*s).into(),
                ts: *ts,
                seq: None,
            })
            .collect()
    }

    fn found(rows: &[(&str, i64)]) -> Vec<(Box<str>, i64)> {
        rows.iter().map(|(s, ts)| ((*s).into(), *ts)).collect()
    }

    #[test]
    fn parses_tolerances() {
        assert_eq!("3ticks".parse(), Ok(Tolerance::Ticks(3)));
        assert_eq!("1 tick".parse(), Ok(Tolerance::Ticks(1)));
        assert_eq!("500ms".parse(), Ok(Tolerance::Ms(500)));
        assert_eq!("2s".parse(), Ok(Tolerance::Ms(2000)));
        assert!("soon".parse::<Tolerance>().is_err());
    }

    #[test]
    fn one_to_one_within_milliseconds() {
        // Two detections near one truth: only one matches. A detection of another symbol at the
        // same time does not.
        let s = score(
            &found(&[("A", 1000), ("A", 1100), ("B", 5000), ("A", 9000)]),
            &truth(&[("A", 1050), ("A", 5000), ("A", 9400)]),
            Tolerance::Ms(100),
            None,
            0,
        )
        .unwrap();
        assert_eq!((s.detected, s.truth, s.matched), (4, 3, 1));
        assert!((s.precision - 0.25).abs() < 1e-12);
        assert!((s.recall - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn greedy_matching_is_maximal() {
        // Detections at 0 and 10, truths at 9 and 19, reach 10: 0-9 and 10-19 (two matches),
        // although 10 is also within reach of 9.
        let s = score(
            &found(&[("A", 10), ("A", 0)]),
            &truth(&[("A", 19), ("A", 9)]),
            Tolerance::Ms(10),
            None,
            0,
        )
        .unwrap();
        assert_eq!(s.matched, 2);
    }

    #[test]
    fn ticks_count_the_symbols_ticks_between() {
        let ticks: HashMap<Box<str>, Vec<i64>> =
            [("A".into(), (1..=10).map(|i| i * 100).collect())].into();
        // Truth at 300; detections at 500 (2 ticks later) and 800 (5 ticks later).
        let s = score(
            &found(&[("A", 500), ("A", 800)]),
            &truth(&[("A", 300), ("A", 700)]),
            Tolerance::Ticks(2),
            Some(&ticks),
            0,
        )
        .unwrap();
        assert_eq!(s.matched, 2);
        let s = score(
            &found(&[("A", 600)]),
            &truth(&[("A", 300)]),
            Tolerance::Ticks(2),
            Some(&ticks),
            0,
        )
        .unwrap();
        assert_eq!(s.matched, 0);
    }

    #[test]
    fn one_jump_flagging_several_ticks_is_one_right_alert() {
        // A's jump at 1000 flags 1000, 1200 and 1300 (one alert with a 500 ms cooldown); a
        // false alarm at 9000; B's truth at 4000 is missed.
        let s = score(
            &found(&[("A", 1000), ("A", 1200), ("A", 1300), ("A", 9000)]),
            &truth(&[("A", 1000), ("B", 4000)]),
            Tolerance::Ms(0),
            None,
            500,
        )
        .unwrap();
        assert_eq!((s.matched, s.detected), (1, 4));
        let e = &s.episodes;
        assert_eq!((e.alerts, e.right, e.found, e.truth), (2, 1, 1, 2));
        assert!((e.precision - 0.5).abs() < 1e-12 && (e.recall - 0.5).abs() < 1e-12);
        // A cooldown shorter than the gaps makes three alerts, of which one is right.
        let s = score(
            &found(&[("A", 1000), ("A", 1200), ("A", 1300)]),
            &truth(&[("A", 1000)]),
            Tolerance::Ms(0),
            None,
            50,
        )
        .unwrap();
        assert_eq!((s.episodes.alerts, s.episodes.right), (3, 1));
        // The tolerance widens the span: a truth just before the first flag is found.
        let s = score(
            &found(&[("A", 1000), ("A", 1200)]),
            &truth(&[("A", 900)]),
            Tolerance::Ms(100),
            None,
            500,
        )
        .unwrap();
        assert_eq!((s.episodes.right, s.episodes.found), (1, 1));
    }
}
