//! `stockstream transform`: ticks through a chain, one JSON record per output line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};

use anyhow::Context;
use std::time::{Duration, Instant};

use fluvio_protocol::record::{Record, RecordKey};
use stockstream_core::bars::{Admission, BarsConfig, Watermark};
use stockstream_core::rolling::LATE_TRUE_SUFFIX;
use stockstream_core::tick::{parse_tick, Watchlist};

use crate::chain::{failure_message, BatchOutput, Chain, ChainSpec};
use crate::replay::{ChainReplay, ReplayPlanner};
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

/// Records a chain may fail on in one transform before it gives up: a chain that fails on
/// record after record is broken, and skipping would only empty the output.
pub const MAX_SKIPPED: usize = 100;

/// How [`run_transform`] gets past a record the chain fails on (a WASM trap): a fresh chain, and
/// the input again from its start, to rebuild the fresh chain's state from the records before
/// (the ones [`ReplayPlanner`] says it needs, through `look_back`, as after a restart).
pub struct Recovery<'a> {
    pub new_chain: Box<dyn FnMut() -> anyhow::Result<Chain> + 'a>,
    pub reopen: Box<dyn FnMut() -> anyhow::Result<ItemIter<'a>> + 'a>,
}

/// The input items of a reopened input.
pub type ItemIter<'a> = Box<dyn Iterator<Item = std::io::Result<InputItem>> + 'a>;

/// Runs every input record through `chain`, writing output records to `out` and one line per
/// problem to `diagnostics`. Only I/O errors stop it; bad records are counted and reported. A
/// record the chain fails on is reported and skipped when `recovery` can rebuild the chain's
/// state; without it the failure ends the run.
pub fn run_transform<R: BufRead>(
    spec: &ChainSpec,
    chain: &mut Chain,
    input: TickReader<R>,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
    options: &TransformOptions,
    mut recovery: Option<Recovery<'_>>,
) -> anyhow::Result<TransformSummary> {
    let started = Instant::now();
    let mut summary = TransformSummary::default();
    let mut bars_lateness = BarsLateness::for_chain(spec);
    let mut reporter = Reporter {
        reported: 0,
        max_reported: options.max_reported,
    };

    let mut batch = Vec::with_capacity(options.batch_size);
    let mut lines = Vec::with_capacity(options.batch_size);
    // Input positions (every item, unreadable rows included) of the batch's records.
    let mut positions = Vec::with_capacity(options.batch_size);
    let mut skipped = BTreeSet::new();
    let mut position = 0u64;
    let mut input = input.peekable();
    while let Some(item) = input.next() {
        match item? {
            InputItem::Unreadable { line, reason, .. } => {
                summary.records_in += 1;
                *summary.invalid.entry("unreadable_row").or_default() += 1;
                reporter.report(diagnostics, line, &format!("invalid row: {reason}"));
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
                        reporter.report(diagnostics, line, &format!("invalid tick: {reason}"));
                        RecordKey::NULL
                    }
                };
                // Invalid records go in too: tick-filter drops them, as it would in an SPU.
                batch.push(Record::new_key_value(key, value));
                lines.push(line);
                positions.push(position);
            }
        }
        position += 1;
        if batch.len() >= options.batch_size || (input.peek().is_none() && !batch.is_empty()) {
            let mut sink = Sink {
                summary: &mut summary,
                reporter: &mut reporter,
                diagnostics: &mut *diagnostics,
                out: &mut *out,
            };
            match chain.process(&batch) {
                Ok(output) => sink.emit(output, &lines)?,
                Err(error) => {
                    let Some(recovery) = recovery.as_mut() else {
                        return Err(error.context(format!(
                            "the chain failed on the records of lines {} to {} (the input cannot be read again to find and skip the record)",
                            lines[0],
                            lines[lines.len() - 1]
                        )));
                    };
                    // The chain's state went with it: rebuild it as it was before the batch,
                    // then feed the batch one record at a time to find the one it fails on.
                    rebuild(spec, chain, recovery, positions[0], &skipped)?;
                    for ((record, &line), &at) in batch.iter().zip(&lines).zip(&positions) {
                        match chain.process(std::slice::from_ref(record)) {
                            Ok(output) => sink.emit(output, &[line])?,
                            Err(error) => {
                                sink.summary.failed += 1;
                                let message = failure_message(&error);
                                sink.reporter.report(
                                    sink.diagnostics,
                                    line,
                                    &format!("the chain failed on this record: {message}; skipped"),
                                );
                                skipped.insert(at);
                                anyhow::ensure!(
                                    skipped.len() < MAX_SKIPPED,
                                    "the chain failed on {} records, the last at line {line}: that is a broken chain, not a bad record",
                                    skipped.len()
                                );
                                rebuild(spec, chain, recovery, at + 1, &skipped)?;
                            }
                        }
                    }
                }
            }
            batch.clear();
            lines.clear();
            positions.clear();
        }
    }
    out.flush()?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Diagnostics are best effort: a closed or full stderr must not stop the data.
struct Reporter {
    reported: u64,
    max_reported: u64,
}

impl Reporter {
    fn report(&mut self, diagnostics: &mut dyn Write, line: u64, message: &str) {
        self.reported += 1;
        if self.reported <= self.max_reported {
            let _ = writeln!(diagnostics, "line {line}: {message}");
        } else if self.reported == self.max_reported + 1 {
            let _ = writeln!(
                diagnostics,
                "(further problems are counted in the summary, not shown)"
            );
        }
    }
}

/// Where a batch's output goes: the output records, and the counts and diagnostics.
struct Sink<'s> {
    summary: &'s mut TransformSummary,
    reporter: &'s mut Reporter,
    diagnostics: &'s mut dyn Write,
    out: &'s mut dyn Write,
}

impl Sink<'_> {
    /// Writes a batch's records and reports the records it rejected (`lines` are the batch's).
    fn emit(&mut self, output: BatchOutput, lines: &[u64]) -> std::io::Result<()> {
        for failure in &output.failures {
            self.summary.failed += 1;
            self.reporter.report(
                self.diagnostics,
                lines[failure.index],
                &format!("rejected by the chain: {}", failure.hint),
            );
        }
        for record in output.records {
            let value = record.value.as_ref();
            if value.ends_with(LATE_TRUE_SUFFIX) {
                self.summary.late += 1;
            }
            if memfind(value, b"\"anomaly\":true") {
                self.summary.anomalies += 1;
            }
            self.out.write_all(value)?;
            self.out.write_all(b"\n")?;
            self.summary.records_out += 1;
        }
        Ok(())
    }
}

/// A fresh chain in the state the failed one had after the input records before position
/// `until`, the skipped ones left out.
fn rebuild(
    spec: &ChainSpec,
    chain: &mut Chain,
    recovery: &mut Recovery<'_>,
    until: u64,
    skipped: &BTreeSet<u64>,
) -> anyhow::Result<()> {
    *chain = (recovery.new_chain)().context("restarting the chain after its failure")?;
    let replay = ChainReplay::for_chain(spec)?;
    if !replay.needs_look_back() {
        return Ok(());
    }
    let mut planner = ReplayPlanner::new(vec![replay]);
    let input = (recovery.reopen)().context("reading the input again after the chain's failure")?;
    for (position, item) in (0..until).zip(input) {
        if let InputItem::Record { value, .. } = item? {
            if !skipped.contains(&position) {
                planner.observe(&value);
            }
        }
    }
    for records in planner.finish() {
        chain
            .look_back_values(records)
            .context("rebuilding the chain's state after its failure")?;
    }
    Ok(())
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
