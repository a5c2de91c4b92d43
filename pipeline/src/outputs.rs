//! The derived streams (three from chains, alerts grouped by the host), their rows, and how a
//! chain's JSON output becomes rows.

use std::collections::BTreeMap;

use stockstream_core::episodes::Episode;
use stockstream_core::json::{ObjectFields, Value};

use crate::dates::{Granularity, PartitionBy};

/// One derived stream: a chain and the directory its Parquet files go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Every valid tick with its moving statistics, z and anomaly flag.
    Enriched,
    /// Only the flagged ticks (same columns as enriched).
    Anomalies,
    /// 5-minute bars every minute, per symbol.
    Bars,
    /// Alerts: each symbol's anomalies grouped into episodes (`stockstream_core::episodes`),
    /// by the host from the anomalies stream; written once closed.
    Alerts,
}

impl Stream {
    /// The streams a chain of SmartModules produces.
    pub const ALL: [Stream; 3] = [Stream::Enriched, Stream::Anomalies, Stream::Bars];
    /// Every stream written under the outputs root.
    pub const OUTPUTS: [Stream; 4] = [
        Stream::Enriched,
        Stream::Anomalies,
        Stream::Bars,
        Stream::Alerts,
    ];

    /// Short name, for messages and the checkpoint.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Enriched => "enriched",
            Stream::Anomalies => "anomalies",
            Stream::Bars => "bars_5m",
            Stream::Alerts => "alerts",
        }
    }

    /// Directory under the outputs root.
    pub fn dir(self) -> &'static str {
        match self {
            Stream::Enriched => "streaming_data/enriched",
            Stream::Anomalies => "anomalies",
            Stream::Bars => "streaming_data/bars_5m",
            Stream::Alerts => "alerts",
        }
    }

    /// The chain file in the transforms directory.
    pub fn transforms_file(self) -> &'static str {
        match self {
            Stream::Enriched => "enriched.yaml",
            Stream::Anomalies => "anomalies-from-enriched.yaml",
            Stream::Bars => "bars-5m.yaml",
            Stream::Alerts => unreachable!("alerts are grouped by the host, not by a chain"),
        }
    }

    /// The stream whose records this stream's chain reads; `None` for the raw ticks. Anomalies
    /// are the enriched ticks scored again, so no rolling statistics are computed twice.
    pub fn input(self) -> Option<Stream> {
        match self {
            Stream::Anomalies => Some(Stream::Enriched),
            Stream::Alerts => Some(Stream::Anomalies),
            Stream::Enriched | Stream::Bars => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_bars(self) -> bool {
        self == Stream::Bars
    }
}

/// An enriched (or anomaly) tick. Fields unknown to the spec are not kept in Parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct TickRow {
    pub symbol: Box<str>,
    pub ts: i64,
    pub price: f64,
    /// Absent in the input means 0.
    pub volume: i64,
    pub sma: Option<f64>,
    pub count: Option<i64>,
    pub vwap: Option<f64>,
    pub prev_mean: Option<f64>,
    pub prev_std: Option<f64>,
    pub prev_count: Option<i64>,
    pub z: Option<f64>,
    pub anomaly: bool,
    pub late: bool,
    /// The return statistics of a chain with `basis: return` (`None` for the price basis).
    pub returns: Option<ReturnStats>,
}

/// `ret` and its previous-window statistics (analytics.md, "Z-score on returns").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReturnStats {
    pub ret: Option<f64>,
    pub prev_mean: Option<f64>,
    pub prev_std: Option<f64>,
    pub prev_count: Option<i64>,
}

/// A window bar.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BarRow {
    pub symbol: Box<str>,
    pub window_start: i64,
    pub window_end: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: i64,
    pub vwap: Option<f64>,
    pub mean: f64,
    pub std: Option<f64>,
    pub count: i64,
}

/// A closed alert (see `stockstream_core::episodes`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertRow {
    /// `SYMBOL@start_ts`.
    pub id: Box<str>,
    pub symbol: Box<str>,
    pub start_ts: i64,
    pub end_ts: i64,
    /// Anomalies in the alert.
    pub count: i64,
    pub peak_z: f64,
    pub peak_ts: i64,
    pub peak_price: f64,
    /// `up` or `down`.
    pub direction: Box<str>,
    /// `minor`, `major` or `critical`.
    pub severity: Box<str>,
}

impl From<&Episode> for AlertRow {
    fn from(e: &Episode) -> Self {
        Self {
            id: e.id().into(),
            symbol: e.symbol.clone(),
            start_ts: e.start_ts,
            end_ts: e.end_ts,
            count: i64::try_from(e.count).unwrap_or(i64::MAX),
            peak_z: e.peak.z,
            peak_ts: e.peak.ts,
            peak_price: e.peak.price,
            direction: e.direction().into(),
            severity: e.severity().name().into(),
        }
    }
}

/// Rows of one stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    Ticks(Vec<TickRow>),
    Bars(Vec<BarRow>),
    Alerts(Vec<AlertRow>),
}

impl Rows {
    pub fn empty_for(stream: Stream) -> Self {
        match stream {
            Stream::Bars => Rows::Bars(Vec::new()),
            Stream::Alerts => Rows::Alerts(Vec::new()),
            Stream::Enriched | Stream::Anomalies => Rows::Ticks(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Ticks(rows) => rows.len(),
            Rows::Bars(rows) => rows.len(),
            Rows::Alerts(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A chain produced a record that does not have the stream's columns: the transforms file is
/// not the chain the stream expects. The user's to fix; not retried.
#[derive(Debug, thiserror::Error)]
#[error("{stream} chain produced a record that does not fit outputs/{dir} ({problem}): {record}")]
pub struct SchemaMismatch {
    pub stream: &'static str,
    pub dir: &'static str,
    pub problem: String,
    pub record: String,
}

/// Field values of one output record, by name.
#[derive(Default)]
struct Fields<'a> {
    values: Vec<(&'a [u8], Value<'a>)>,
}

impl<'a> Fields<'a> {
    fn parse(record: &'a [u8]) -> Result<Self, String> {
        let mut scanner = ObjectFields::new(record).map_err(|e| e.to_string())?;
        let mut values = Vec::with_capacity(16);
        while let Some(field) = scanner.next_field().map_err(|e| e.to_string())? {
            values.push(field);
        }
        Ok(Self { values })
    }

    fn get(&self, name: &str) -> Option<Value<'a>> {
        self.values
            .iter()
            .find(|(key, _)| *key == name.as_bytes())
            .map(|(_, v)| *v)
    }

    fn str(&self, name: &str) -> Result<Box<str>, String> {
        match self.get(name) {
            Some(Value::Str {
                raw,
                escaped: false,
            }) => std::str::from_utf8(raw)
                .map(Into::into)
                .map_err(|_| format!("`{name}` is not UTF-8")),
            Some(Value::Str { raw, .. }) => {
                let quoted = [b"\"", raw, b"\""].concat();
                serde_json::from_slice::<String>(&quoted)
                    .map(Into::into)
                    .map_err(|e| format!("`{name}`: {e}"))
            }
            _ => Err(format!("`{name}` is missing or not a string")),
        }
    }

    fn opt_f64(&self, name: &str) -> Result<Option<f64>, String> {
        match self.get(name) {
            Some(Value::Num(n)) => Ok(Some(n.to_f64())),
            Some(Value::Null) => Ok(None),
            _ => Err(format!("`{name}` is missing or not a number")),
        }
    }

    fn f64(&self, name: &str) -> Result<f64, String> {
        self.opt_f64(name)?
            .ok_or_else(|| format!("`{name}` is null"))
    }

    fn opt_i64(&self, name: &str) -> Result<Option<i64>, String> {
        match self.get(name) {
            Some(Value::Num(n)) => n
                .to_i64()
                .map(Some)
                .ok_or_else(|| format!("`{name}` is not an integer")),
            Some(Value::Null) => Ok(None),
            _ => Err(format!("`{name}` is missing or not a number")),
        }
    }

    fn i64(&self, name: &str) -> Result<i64, String> {
        self.opt_i64(name)?
            .ok_or_else(|| format!("`{name}` is null"))
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            Some(Value::Bool(b)) => Ok(b),
            _ => Err(format!("`{name}` is missing or not a boolean")),
        }
    }
}

fn tick_row(record: &[u8]) -> Result<TickRow, String> {
    let f = Fields::parse(record)?;
    Ok(TickRow {
        symbol: f.str("symbol")?,
        ts: f.i64("ts")?,
        price: f.f64("price")?,
        // The spec: an absent (or null) volume is 0.
        volume: match f.get("volume") {
            None => 0,
            Some(_) => f.opt_i64("volume")?.unwrap_or(0),
        },
        sma: f.opt_f64("sma")?,
        count: f.opt_i64("count")?,
        vwap: f.opt_f64("vwap")?,
        prev_mean: f.opt_f64("prev_mean")?,
        prev_std: f.opt_f64("prev_std")?,
        prev_count: f.opt_i64("prev_count")?,
        z: f.opt_f64("z")?,
        anomaly: f.bool("anomaly")?,
        late: f.bool("late")?,
        // A return-basis chain writes `ret` on every record, null where there is none.
        returns: match f.get("ret") {
            None => None,
            Some(_) => Some(ReturnStats {
                ret: f.opt_f64("ret")?,
                prev_mean: f.opt_f64("ret_prev_mean")?,
                prev_std: f.opt_f64("ret_prev_std")?,
                prev_count: f.opt_i64("ret_prev_count")?,
            }),
        },
    })
}

fn bar_row(record: &[u8]) -> Result<BarRow, String> {
    let f = Fields::parse(record)?;
    Ok(BarRow {
        symbol: f.str("symbol")?,
        window_start: f.i64("window_start")?,
        window_end: f.i64("window_end")?,
        open: f.f64("open")?,
        high: f.f64("high")?,
        low: f.f64("low")?,
        close: f.f64("close")?,
        volume: f.i64("volume")?,
        vwap: f.opt_f64("vwap")?,
        mean: f.f64("mean")?,
        std: f.opt_f64("std")?,
        count: f.i64("count")?,
    })
}

fn alert_row(record: &[u8]) -> Result<AlertRow, String> {
    let f = Fields::parse(record)?;
    Ok(AlertRow {
        id: f.str("id")?,
        symbol: f.str("symbol")?,
        start_ts: f.i64("start_ts")?,
        end_ts: f.i64("end_ts")?,
        count: f.i64("count")?,
        peak_z: f.f64("peak_z")?,
        peak_ts: f.i64("peak_ts")?,
        peak_price: f.f64("peak_price")?,
        direction: f.str("direction")?,
        severity: f.str("severity")?,
    })
}

/// Turns a chain's output records into rows of `stream`.
pub fn parse_rows<'a>(
    stream: Stream,
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Rows, SchemaMismatch> {
    let mismatch = |problem: String, record: &[u8]| SchemaMismatch {
        stream: stream.name(),
        dir: stream.dir(),
        problem,
        record: String::from_utf8_lossy(record).chars().take(300).collect(),
    };
    let records = records.into_iter();
    Ok(if stream == Stream::Alerts {
        let mut rows = Vec::with_capacity(records.size_hint().0);
        for record in records {
            rows.push(alert_row(record).map_err(|p| mismatch(p, record))?);
        }
        Rows::Alerts(rows)
    } else if stream.is_bars() {
        let mut rows = Vec::with_capacity(records.size_hint().0);
        for record in records {
            rows.push(bar_row(record).map_err(|p| mismatch(p, record))?);
        }
        Rows::Bars(rows)
    } else {
        let mut rows = Vec::with_capacity(records.size_hint().0);
        for record in records {
            rows.push(tick_row(record).map_err(|p| mismatch(p, record))?);
        }
        Rows::Ticks(rows)
    })
}

/// Rows waiting for the next commit, in arrival order; split by event-time partition
/// (the tick's `ts`, the bar's `window_start`, the alert's `start_ts`) when committed.
#[derive(Debug)]
pub struct Partitioned {
    pub stream: Stream,
    pending: Rows,
}

impl Partitioned {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            pending: Rows::empty_for(stream),
        }
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn push(&mut self, rows: Rows) {
        match (&mut self.pending, rows) {
            (Rows::Ticks(list), Rows::Ticks(rows)) => list.extend(rows),
            (Rows::Bars(list), Rows::Bars(rows)) => list.extend(rows),
            (Rows::Alerts(list), Rows::Alerts(rows)) => list.extend(rows),
            _ => unreachable!("one stream holds one kind of row"),
        }
    }

    /// Earliest and latest event time waiting.
    pub fn span(&self) -> Option<(i64, i64)> {
        fn span<T>(rows: &[T], time: impl Fn(&T) -> i64) -> Option<(i64, i64)> {
            rows.iter().map(time).fold(None, |acc, t| {
                Some(acc.map_or((t, t), |(lo, hi): (i64, i64)| (lo.min(t), hi.max(t))))
            })
        }
        match &self.pending {
            Rows::Ticks(rows) => span(rows, |r| r.ts),
            Rows::Bars(rows) => span(rows, |r| r.window_start),
            Rows::Alerts(rows) => span(rows, |r| r.start_ts),
        }
    }

    /// Everything waiting, by partition key of `granularity`, in arrival order within each.
    pub fn take(&mut self, granularity: Granularity) -> BTreeMap<i64, Rows> {
        fn split<T>(
            rows: Vec<T>,
            key: impl Fn(&T) -> i64,
            wrap: fn(Vec<T>) -> Rows,
        ) -> BTreeMap<i64, Rows> {
            let mut parts: BTreeMap<i64, Vec<T>> = BTreeMap::new();
            for row in rows {
                parts.entry(key(&row)).or_default().push(row);
            }
            parts.into_iter().map(|(k, rows)| (k, wrap(rows))).collect()
        }
        match std::mem::replace(&mut self.pending, Rows::empty_for(self.stream)) {
            Rows::Ticks(rows) => split(rows, |r| granularity.key(r.ts), Rows::Ticks),
            Rows::Bars(rows) => split(rows, |r| granularity.key(r.window_start), Rows::Bars),
            Rows::Alerts(rows) => split(rows, |r| granularity.key(r.start_ts), Rows::Alerts),
        }
    }
}

/// The granularity of this commit: the recorded one, else the one `partition` picks from the
/// densest stream waiting (None while nothing waits).
pub fn decide_granularity(
    recorded: Option<Granularity>,
    partition: PartitionBy,
    pending: &[Partitioned],
) -> Option<Granularity> {
    if recorded.is_some() {
        return recorded;
    }
    let densest = pending.iter().max_by_key(|p| p.len())?;
    let (lo, hi) = densest.span()?;
    Some(partition.choose(densest.len() as u64, hi.saturating_sub(lo)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_enriched_and_bar_records() {
        let enriched = br#"{"symbol":"ES","ts":1378054800083,"price":1640.25,"extra":[1],"sma":1640.25,"count":1,"vwap":null,"prev_mean":null,"prev_std":null,"prev_count":0,"z":null,"anomaly":false,"late":false}"#;
        let Rows::Ticks(rows) = parse_rows(Stream::Enriched, [&enriched[..]]).unwrap() else {
            panic!()
        };
        assert_eq!(rows[0].symbol.as_ref(), "ES");
        assert_eq!(rows[0].volume, 0);
        assert_eq!(rows[0].count, Some(1));
        assert_eq!(rows[0].vwap, None);
        let bar = br#"{"symbol":"ES","window_start":60000,"window_end":360000,"open":1.5,"high":2.0,"low":1.0,"close":1.25,"volume":3,"vwap":1.5,"mean":1.5,"std":null,"count":1}"#;
        let Rows::Bars(rows) = parse_rows(Stream::Bars, [&bar[..]]).unwrap() else {
            panic!()
        };
        assert_eq!(rows[0].window_end, 360_000);
        assert_eq!(rows[0].std, None);
        let err = parse_rows(Stream::Bars, [&enriched[..]]).unwrap_err();
        assert!(err.to_string().contains("window_start"), "{err}");
    }
}
