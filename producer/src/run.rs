//! The run loop: source -> validation -> pacing -> sink, with rejects, truth and progress.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stockstream_core::parse_tick;
use stockstream_ticks::{InputItem, Pacer, Speed};

use crate::rejects::Rejects;
use crate::sinks::{Sink, SinkError};
use crate::source::SourceItem;

/// How a run goes.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replay speed (event time / real time), or `max`.
    pub speed: Speed,
    /// Stop after this many ticks sent.
    pub limit: Option<u64>,
    /// Stop before the first tick at or past this much event time after the first tick (ms).
    pub duration_ms: Option<i64>,
    /// Stop at the first invalid row, with an error.
    pub strict: bool,
    /// Show a progress line on standard error (when it is a terminal).
    pub progress: bool,
}

/// Why a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    EndOfInput,
    Limit,
    Duration,
    /// Ctrl-C or SIGTERM.
    Signal,
    /// Standard output was closed by its reader.
    ReaderClosed,
    /// An error ended the run (see [`Outcome::error`]).
    Error,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::EndOfInput => "end of input",
            Stop::Limit => "limit reached",
            Stop::Duration => "duration reached",
            Stop::Signal => "stopped by signal",
            Stop::ReaderClosed => "output closed by its reader",
            Stop::Error => "stopped by an error",
        })
    }
}

/// What a run did; its `Display` is the final summary line.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Records and rows read from the source.
    pub read: u64,
    /// Ticks handed to the sink.
    pub sent: u64,
    /// Invalid rows, by reason code.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Ground-truth rows written (synthetic anomalies among the sent ticks).
    pub anomalies: u64,
    pub truth_path: Option<PathBuf>,
    pub dead_letter_path: Option<PathBuf>,
    pub elapsed: Duration,
    /// Largest lag behind the replay clock.
    pub max_lag: Duration,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub stop: Stop,
    pub sink: String,
}

impl Summary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "producer: {} sent to {}, {} rejected",
            self.sent,
            self.sink,
            self.rejected_total()
        )?;
        if !self.rejected.is_empty() {
            let by_reason: Vec<String> = self
                .rejected
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, " ({})", by_reason.join(", "))?;
            if let Some(path) = &self.dead_letter_path {
                write!(f, ", dead-lettered to {}", path.display())?;
            }
        }
        if let Some(path) = &self.truth_path {
            write!(
                f,
                ", {} anomalies injected (truth in {})",
                self.anomalies,
                path.display()
            )?;
        }
        write!(
            f,
            "; {} read in {secs:.2} s ({:.0} ticks/s), max lag {:.1} ms; {}",
            self.read,
            if secs > 0.0 {
                self.sent as f64 / secs
            } else {
                0.0
            },
            self.max_lag.as_secs_f64() * 1000.0,
            self.stop
        )
    }
}

/// Why a run failed. The summary is printed all the same.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--strict` and an invalid row.
    #[error("line {line}: {reason} [{code}] (--strict stops at the first invalid row)")]
    Strict {
        line: u64,
        code: &'static str,
        reason: String,
    },
    #[error("reading the input: {0}")]
    Read(#[source] io::Error),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A summary, and the error that ended the run if one did.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub error: Option<RunError>,
}

/// Where the ground truth of injected anomalies goes.
pub struct TruthFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl TruthFile {
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(File::create(path)?),
        })
    }
}

/// Runs until the source ends, a limit is reached, `stop` is set, or an error.
pub fn run(
    source: impl Iterator<Item = io::Result<SourceItem>>,
    sink: &mut dyn Sink,
    rejects: &mut Rejects,
    mut truth: Option<TruthFile>,
    options: &RunOptions,
    stop: &AtomicBool,
) -> Outcome {
    let started = Instant::now();
    let mut pacer = Pacer::new(options.speed);
    let mut progress = Progress::new(options.progress, started);
    let mut summary = Summary {
        read: 0,
        sent: 0,
        rejected: BTreeMap::new(),
        anomalies: 0,
        truth_path: truth.as_ref().map(|t| t.path.clone()),
        dead_letter_path: rejects.path().map(Path::to_owned),
        elapsed: Duration::ZERO,
        max_lag: Duration::ZERO,
        first_ts: None,
        last_ts: None,
        stop: Stop::EndOfInput,
        sink: sink.describe(),
    };
    let mut lag = Duration::ZERO;
    let result = (|| -> Result<Stop, RunError> {
        if options.limit == Some(0) {
            return Ok(Stop::Limit);
        }
        for item in source {
            if stop.load(Ordering::Relaxed) {
                return Ok(Stop::Signal);
            }
            let SourceItem {
                item,
                truth: anomaly,
            } = item.map_err(RunError::Read)?;
            summary.read += 1;
            let (line, value) = match item {
                InputItem::Unreadable {
                    line,
                    reason,
                    raw,
                    code,
                } => {
                    reject(rejects, options, line, code, &reason, &raw)?;
                    progress.show(&summary, rejects.total(), lag);
                    continue;
                }
                InputItem::Record { line, value } => (line, value),
            };
            let tick = match parse_tick(&value) {
                Ok(tick) => tick,
                Err(invalid) => {
                    let raw = String::from_utf8_lossy(&value);
                    reject(
                        rejects,
                        options,
                        line,
                        invalid.code(),
                        &invalid.to_string(),
                        &raw,
                    )?;
                    progress.show(&summary, rejects.total(), lag);
                    continue;
                }
            };
            let first_ts = *summary.first_ts.get_or_insert(tick.ts);
            if options
                .duration_ms
                .is_some_and(|d| tick.ts.saturating_sub(first_ts) >= d)
            {
                return Ok(Stop::Duration);
            }
            match pacer.wait_unless(tick.ts, stop) {
                Some(late) => lag = late,
                None => return Ok(Stop::Signal),
            }
            summary.max_lag = summary.max_lag.max(lag);
            match sink.send(tick.symbol.as_bytes(), &value) {
                Ok(()) => {}
                Err(SinkError::Closed { .. }) => return Ok(Stop::ReaderClosed),
                Err(e) => return Err(e.into()),
            }
            summary.sent += 1;
            summary.last_ts = Some(tick.ts);
            if let (Some(anomaly), Some(truth)) = (anomaly, truth.as_mut()) {
                let write = truth
                    .out
                    .write_all(&anomaly.to_json())
                    .and_then(|()| truth.out.write_all(b"\n"));
                write.map_err(|source| RunError::Write {
                    path: truth.path.clone(),
                    source,
                })?;
                summary.anomalies += 1;
            }
            progress.show(&summary, rejects.total(), lag);
            if options.limit.is_some_and(|limit| summary.sent >= limit) {
                return Ok(Stop::Limit);
            }
        }
        Ok(Stop::EndOfInput)
    })();
    progress.clear();
    let mut error = None;
    match result {
        Ok(stop) => summary.stop = stop,
        Err(e) => {
            summary.stop = Stop::Error;
            error = Some(e);
        }
    }
    // Deliver what was queued, unless the sink itself failed (or its reader left).
    let sink_failed =
        matches!(error, Some(RunError::Sink(_))) || summary.stop == Stop::ReaderClosed;
    if !sink_failed {
        match sink.close() {
            Ok(()) | Err(SinkError::Closed { .. }) => {}
            Err(e) => {
                summary.stop = Stop::Error;
                error.get_or_insert(e.into());
            }
        }
    }
    if let Some(truth) = truth.as_mut() {
        if let Err(source) = truth.out.flush() {
            error.get_or_insert(RunError::Write {
                path: truth.path.clone(),
                source,
            });
        }
    }
    if let Err(source) = rejects.flush() {
        error.get_or_insert(RunError::Write {
            path: rejects.path().map(Path::to_owned).unwrap_or_default(),
            source,
        });
    }
    summary.rejected = rejects.counts().clone();
    summary.elapsed = started.elapsed();
    Outcome { summary, error }
}

fn reject(
    rejects: &mut Rejects,
    options: &RunOptions,
    line: u64,
    code: &'static str,
    reason: &str,
    raw: &str,
) -> Result<(), RunError> {
    rejects
        .reject(line, code, reason, raw)
        .map_err(|source| RunError::Write {
            path: rejects.path().map(Path::to_owned).unwrap_or_default(),
            source,
        })?;
    if options.strict {
        return Err(RunError::Strict {
            line,
            code,
            reason: reason.to_owned(),
        });
    }
    Ok(())
}

/// The progress line: rewritten in place about once a second.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    last_sent: u64,
    shown: bool,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Progress {
    fn new(enabled: bool, started: Instant) -> Self {
        Self {
            enabled,
            started,
            last: started,
            last_sent: 0,
            shown: false,
        }
    }

    fn show(&mut self, summary: &Summary, rejected: u64, lag: Duration) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let since = now - self.last;
        if since < PROGRESS_EVERY {
            return;
        }
        let rate = (summary.sent - self.last_sent) as f64 / since.as_secs_f64();
        let line = format!(
            "\r{:>7.1} s  {rate:>9.0} ticks/s  sent {}  rejected {rejected}  lag {:.1} ms\x1b[K",
            (now - self.started).as_secs_f64(),
            summary.sent,
            lag.as_secs_f64() * 1000.0
        );
        let _ = io::stderr().write_all(line.as_bytes());
        self.last = now;
        self.last_sent = summary.sent;
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let _ = io::stderr().write_all(b"\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what it is sent; fails on demand.
    #[derive(Default)]
    struct Collect {
        records: Vec<(String, String)>,
        fail_at: Option<usize>,
        closed: bool,
    }

    impl Sink for Collect {
        fn describe(&self) -> String {
            "collect".into()
        }
        fn send(&mut self, key: &[u8], record: &[u8]) -> Result<(), SinkError> {
            if self.fail_at == Some(self.records.len()) {
                return Err(SinkError::Delivery {
                    sink: "collect",
                    message: "refused".into(),
                    retryable: false,
                });
            }
            self.records.push((
                String::from_utf8(key.to_vec()).unwrap(),
                String::from_utf8(record.to_vec()).unwrap(),
            ));
            Ok(())
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        fn close(&mut self) -> Result<(), SinkError> {
            self.closed = true;
            Ok(())
        }
    }

    fn items(lines: &[&str]) -> Vec<io::Result<SourceItem>> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Ok(SourceItem {
                    item: InputItem::Record {
                        line: i as u64 + 1,
                        value: l.as_bytes().to_vec(),
                    },
                    truth: None,
                })
            })
            .collect()
    }

    fn options() -> RunOptions {
        RunOptions {
            speed: Speed::Max,
            ..RunOptions::default()
        }
    }

    const INPUT: &[&str] = &[
        r#"{"symbol":"A","ts":1000,"price":1.0}"#,
        r#"{"symbol":"A","ts":2000,"price":-1.0}"#,
        r#"{"symbol":"B","ts":3000,"price":2.0,"extra":true}"#,
        r#"not json"#,
        r#"{"symbol":"A","ts":4000,"price":3.0}"#,
    ];

    #[test]
    fn valid_ticks_go_to_the_sink_keyed_by_symbol_and_the_rest_are_counted() {
        let mut sink = Collect::default();
        let mut rejects = Rejects::new();
        let outcome = run(
            items(INPUT).into_iter(),
            &mut sink,
            &mut rejects,
            None,
            &options(),
            &AtomicBool::new(false),
        );
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let keys: Vec<&str> = sink.records.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["A", "B", "A"]);
        // Records pass through untouched (unknown fields included).
        assert_eq!(sink.records[1].1, INPUT[2]);
        assert!(sink.closed);
        let summary = outcome.summary;
        assert_eq!((summary.read, summary.sent), (5, 3));
        assert_eq!(summary.rejected["bad_price"], 1);
        assert_eq!(summary.rejected["not_json"], 1);
        assert_eq!(summary.stop, Stop::EndOfInput);
        let line = summary.to_string();
        assert!(
            line.contains("3 sent to collect, 2 rejected (bad_price=1, not_json=1)"),
            "{line}"
        );
    }

    #[test]
    fn strict_stops_at_the_first_invalid_row() {
        let mut sink = Collect::default();
        let outcome = run(
            items(INPUT).into_iter(),
            &mut sink,
            &mut Rejects::new(),
            None,
            &RunOptions {
                strict: true,
                ..options()
            },
            &AtomicBool::new(false),
        );
        assert!(
            matches!(
                outcome.error,
                Some(RunError::Strict {
                    line: 2,
                    code: "bad_price",
                    ..
                })
            ),
            "{:?}",
            outcome.error
        );
        assert_eq!(sink.records.len(), 1);
        // What was sent before the stop is still delivered.
        assert!(sink.closed);
    }

    #[test]
    fn limit_duration_and_stop() {
        let run_with = |options: RunOptions, stop: bool| {
            let mut sink = Collect::default();
            let outcome = run(
                items(INPUT).into_iter(),
                &mut sink,
                &mut Rejects::new(),
                None,
                &options,
                &AtomicBool::new(stop),
            );
            (sink.records.len(), outcome.summary.stop)
        };
        assert_eq!(
            run_with(
                RunOptions {
                    limit: Some(2),
                    ..options()
                },
                false
            ),
            (2, Stop::Limit)
        );
        assert_eq!(
            run_with(
                RunOptions {
                    duration_ms: Some(2000),
                    ..options()
                },
                false
            ),
            (1, Stop::Duration)
        );
        assert_eq!(run_with(options(), true), (0, Stop::Signal));
    }

    #[test]
    fn a_failing_sink_ends_the_run_with_its_error() {
        let mut sink = Collect {
            fail_at: Some(1),
            ..Collect::default()
        };
        let outcome = run(
            items(INPUT).into_iter(),
            &mut sink,
            &mut Rejects::new(),
            None,
            &options(),
            &AtomicBool::new(false),
        );
        assert!(matches!(outcome.error, Some(RunError::Sink(_))));
        assert_eq!(outcome.summary.stop, Stop::Error);
        assert_eq!(outcome.summary.sent, 1);
        assert!(!sink.closed);
    }
}
