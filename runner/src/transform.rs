//! `stockstream transform`: ticks through a chain, one JSON record per output line.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use fluvio_protocol::record::{Record, RecordKey};
use stockstream_core::bars::{Admission, BarsConfig, Watermark};
use stockstream_core::rolling::LATE_TRUE_SUFFIX;
use stockstream_core::tick::{parse_tick, Watchlist};

use crate::chain::{Chain, ChainSpec};
use stockstream_ticks::{InputItem, TickReader};

/// Settings of one transform run.
#[derive(Debug, Clone)]
pub struct TransformOptions {
    /// Records per call into the chain (an SPU batch).
    pub batch_size: usize,
    /// Detailed messages printed for invalid lines before only counting them.
    pub max_reported: u64,
}

impl Default for TransformOptions {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            max_reported: 50,
        }
    }
}

/// Counts of one run, printed as the closing summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransformSummary {
    /// Records read (JSON lines or CSV rows, blank lines excluded).
    pub records_in: u64,
    /// Invalid records by reason code.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Records a module failed on (only with chains that lack tick-filter).
    pub failed: u64,
    pub records_out: u64,
    /// Ticks that were late for rolling-stats (flagged) or below window-bars' watermark (left out).
    pub late: u64,
    pub anomalies: u64,
    pub elapsed: Duration,
}

impl TransformSummary {
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

impl std::fmt::Display for TransformSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        write!(
            f,
            "{} records in, {} invalid, {} failed, {} out, {} late, {} anomalies in {:.2} s ({:.0} records/s)",
            self.records_in,
            self.invalid_total(),
            self.failed,
            self.records_out,
            self.late,
            self.anomalies,
            seconds,
            self.records_in as f64 / seconds.max(1e-9)
        )?;
        if !self.invalid.is_empty() {
            let reasons: Vec<String> = self
                .invalid
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect();
            write!(f, "; invalid by reason: {}", reasons.join(", "))?;
        }
        Ok(())
    }
}

/// The host's view of what the chain drops silently: late ticks of window-bars, which the
/// module leaves out of every window without a trace in its output.
struct BarsLateness {
    watchlist: Option<Watchlist>,
    watermark: Watermark,
}

impl BarsLateness {
    fn for_chain(spec: &ChainSpec) -> Option<Self> {
        let bars = spec.bars_step()?;
        let config = BarsConfig::from_params(|n| bars.params.get(n).map(String::as_str)).ok()?;
        let watchlist = spec
            .filter_step()
            .and_then(|f| Watchlist::from_param(f.params.get("symbols").map(String::as_str)).ok())
            .flatten();
        Some(Self {
            watchlist,
            watermark: Watermark::new(config.lateness_ms),
        })
    }

    fn is_late(&mut self, symbol: &str, ts: i64) -> bool {
        if self.watchlist.as_ref().is_some_and(|w| !w.contains(symbol)) {
            return false;
        }
        matches!(self.watermark.admit(ts), Admission::Late { .. })
    }
}

/// Runs every input record through `chain`, writing output records to `out` and one line per
/// problem to `diagnostics`. Only I/O errors stop it; bad records are counted and reported.
pub fn run_transform<R: BufRead>(
    spec: &ChainSpec,
    chain: &mut Chain,
    input: TickReader<R>,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
    options: &TransformOptions,
) -> anyhow::Result<TransformSummary> {
    let started = Instant::now();
    let mut summary = TransformSummary::default();
    let mut bars_lateness = BarsLateness::for_chain(spec);
    let mut reported = 0u64;
    // Diagnostics are best effort: a closed or full stderr must not stop the data.
    let mut report = |diagnostics: &mut dyn Write, line: u64, message: &str| {
        reported += 1;
        if reported <= options.max_reported {
            let _ = writeln!(diagnostics, "line {line}: {message}");
        } else if reported == options.max_reported + 1 {
            let _ = writeln!(
                diagnostics,
                "(further problems are counted in the summary, not shown)"
            );
        }
    };

    let mut batch = Vec::with_capacity(options.batch_size);
    let mut lines = Vec::with_capacity(options.batch_size);
    let mut input = input.peekable();
    while let Some(item) = input.next() {
        match item? {
            InputItem::Unreadable { line, reason, .. } => {
                summary.records_in += 1;
                *summary.invalid.entry("unreadable_row").or_default() += 1;
                report(diagnostics, line, &format!("invalid row: {reason}"));
            }
            InputItem::Record { line, value } => {
                summary.records_in += 1;
                let key = match parse_tick(&value) {
                    Ok(tick) => {
                        if bars_lateness
                            .as_mut()
                            .is_some_and(|b| b.is_late(tick.symbol, tick.ts))
                        {
                            summary.late += 1;
                        }
                        RecordKey::from(tick.symbol.as_bytes().to_vec())
                    }
                    Err(reason) => {
                        *summary.invalid.entry(reason.code()).or_default() += 1;
                        report(diagnostics, line, &format!("invalid tick: {reason}"));
                        RecordKey::NULL
                    }
                };
                // Invalid records go in too: tick-filter drops them, as it would in an SPU.
                batch.push(Record::new_key_value(key, value));
                lines.push(line);
            }
        }
        if batch.len() >= options.batch_size || (input.peek().is_none() && !batch.is_empty()) {
            let output = chain.process(&batch)?;
            batch.clear();
            for failure in &output.failures {
                summary.failed += 1;
                report(
                    diagnostics,
                    lines[failure.index],
                    &format!("rejected by the chain: {}", failure.hint),
                );
            }
            lines.clear();
            for record in output.records {
                let value = record.value.as_ref();
                if value.ends_with(LATE_TRUE_SUFFIX) {
                    summary.late += 1;
                }
                if memfind(value, b"\"anomaly\":true") {
                    summary.anomalies += 1;
                }
                out.write_all(value)?;
                out.write_all(b"\n")?;
                summary.records_out += 1;
            }
        }
    }
    out.flush()?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
