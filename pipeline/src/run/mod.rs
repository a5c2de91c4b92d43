//! `stockstream run`: ticks through the three chains in-process, Parquet out, exact resume.
//!
//! The runtime, in a page:
//! - the calling thread reads the input, validates each record with the same code as
//!   tick-filter (to count and dead-letter invalid ones), and cuts the input into batches;
//! - one worker thread per chain (enriched, anomalies, bars) owns its running chain on
//!   `fluvio-smartengine`, processes every batch in order and turns the output records into
//!   rows; batches are pipelined (a few in flight);
//! - completed batches accumulate, by stream and date partition, until a commit is due (every
//!   N input records, every T seconds, at the end, or when asked to stop); a commit writes one
//!   Parquet file per stream and date for its input range, publishes them atomically
//!   ([`crate::commit`]), then replaces the checkpoint;
//! - on start, a checkpoint means a restart: files of an unfinished commit are removed, the
//!   input before the checkpoint is read again (checked against the checkpoint's hash) to
//!   choose the ticks each chain's `look_back` must replay ([`crate::replay`]), and processing
//!   goes on from the checkpoint's offset.
//!
//! One file per part: [`chains`] (the chain files), [`worker`] (a chain's thread),
//! [`reader`] (input to batches), [`restart`], [`state`] (pending rows and commits) and
//! [`main_loop`].

mod chains;
mod main_loop;
mod reader;
mod restart;
mod state;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stockstream_runner::{SmartEngine, WasmLocator};

use stockstream_core::episodes::{Episode, Episodes, DEFAULT_COOLDOWN_MS};

use crate::alerts::webhook::{self, Delivery, WebhookConfig, WebhookSender};
use crate::checkpoint::{self, Checkpoint, Counts, InputIdentity, PrefixHash};
use crate::dashboard::{DashboardFeed, FeedStats};
use crate::dates::PartitionBy;
use crate::outputs::{Partitioned, Stream};
use crate::source::{self, ReplayControl, Source, Speed};
use crate::store::{Outputs, OutputsLock};

pub use reader::record_text;
pub use state::write_parquet_files;

use chains::Chains;
use main_loop::{main_loop, LoopEnd};
use restart::{remove_stale_temp_files, restart};
use state::State;
use worker::{spawn_worker, ModuleSource, Worker};

/// Directory of the dead-letter files under the outputs root.
pub const DEAD_LETTER_DIR: &str = "dead_letter";

/// Records skipped because a chain failed on them, in one run, before it gives up: a chain that
/// fails on record after record is broken, and skipping would only empty the outputs.
const MAX_SKIPPED_PER_RUN: u64 = 100;

/// Settings of one run. Defaults in [`RunConfig::new`].
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub source: Source,
    /// Replay pace (`--speed`), changeable while the run goes (the dashboard's replay
    /// buttons).
    pub replay: Arc<ReplayControl>,
    /// Root of the outputs (`outputs/`): a local directory or an object store prefix.
    pub outputs: Outputs,
    /// Directory holding enriched.yaml, anomalies-from-enriched.yaml and bars-5m.yaml.
    pub transforms_dir: PathBuf,
    /// Where the built .wasm modules are found.
    pub wasm: WasmLocator,
    /// Records per call into the chains (an SPU batch).
    pub batch_size: usize,
    /// Commit after this many input records...
    pub commit_records: u64,
    /// ...or this long after the previous commit, whichever comes first.
    pub commit_interval: Duration,
    /// Invalid records reported one by one before they are only counted.
    pub max_reported: u64,
    /// Where derived records go for the dashboard (none until the dashboard lands).
    pub dashboard: Option<DashboardFeed>,
    /// A symbol's anomalies less than this apart (event time) are one alert.
    pub alert_cooldown_ms: i64,
    /// POST each closed alert here.
    pub alert_webhook: Option<WebhookConfig>,
    /// Event-time granularity of the output partitions (kept by a resume).
    pub partition: PartitionBy,
    /// Memory the modules of one chain may use together (the engine's store limit, 1 GB
    /// unless set), as an SPU's setting would; a record that needs more fails the chain.
    pub chain_memory_limit: Option<usize>,
    /// Commit at exactly these input positions and at no others (no record or time trigger),
    /// so that every file is the one an earlier run committed there, byte for byte
    /// ([`rebuild`](crate::rebuild)).
    pub commit_at: Option<Arc<BTreeSet<u64>>>,
    /// Stop reading at this input position, as if asked to stop there.
    pub stop_at: Option<u64>,
}

impl RunConfig {
    pub fn new(
        source: Source,
        outputs: impl Into<Outputs>,
        transforms_dir: PathBuf,
        wasm: WasmLocator,
    ) -> Self {
        Self {
            source,
            replay: Arc::new(ReplayControl::new(Speed::Max)),
            outputs: outputs.into(),
            transforms_dir,
            wasm,
            batch_size: 4096,
            commit_records: 200_000,
            commit_interval: Duration::from_secs(10),
            max_reported: 50,
            dashboard: None,
            alert_cooldown_ms: DEFAULT_COOLDOWN_MS,
            alert_webhook: None,
            partition: PartitionBy::Auto,
            chain_memory_limit: None,
            commit_at: None,
            stop_at: None,
        }
    }
}

/// What a restart found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// Input position the run went on from.
    pub offset: u64,
    /// Commits before this run.
    pub commits: u64,
    /// Files of an unfinished commit removed.
    pub orphans_removed: usize,
    /// Records replayed into each stream's chain.
    pub replayed: BTreeMap<String, u64>,
    /// Time spent re-reading the input and replaying.
    pub elapsed: Duration,
}

/// Live figures, every second or so.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Totals over the whole run (committed and pending).
    pub counts: Counts,
    /// Records read by this process.
    pub records_this_run: u64,
    pub elapsed: Duration,
}

/// What a run tells its caller as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    Resumed(&'a Resume),
    /// An invalid record, one of the first `max_reported`.
    Invalid {
        line: u64,
        message: &'a str,
    },
    /// The last report: later invalid records are only counted.
    InvalidReportsCapped,
    Committed {
        offset: u64,
        files: usize,
    },
    Progress(&'a Progress),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input was read to its end and everything is committed.
    Finished,
    /// Asked to stop (Ctrl-C, SIGTERM): everything read is committed; run again to go on.
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    /// Totals over the whole run, across restarts.
    pub counts: Counts,
    /// Records read by this process (after the resume point).
    pub records_this_run: u64,
    pub elapsed: Duration,
    pub resume: Option<Resume>,
    pub offset: u64,
    pub feed: FeedStats,
    /// What the alert webhook did (with `--alert-webhook`).
    pub webhook: Option<Delivery>,
}

impl Report {
    /// The closing summary line of a run whose outputs are under `outputs`.
    pub fn summary(&self, outputs: impl std::fmt::Display) -> String {
        let report = self;
        let c: &Counts = &report.counts;
        let seconds = report.elapsed.as_secs_f64();
        let mut line = format!(
            "run: {} records in ({} this run), {} invalid, {} failed, {} late, {} late for bars, {} anomalies in {} closed alerts; {} enriched, {} anomaly and {} bar rows in {} files over {} commits under {} in {:.2} s ({:.0} records/s)",
            c.records_in,
            report.records_this_run,
            c.invalid_total(),
            c.failed,
            c.late,
            c.late_bars,
            c.anomaly_rows,
            c.alerts,
            c.enriched_rows,
            c.anomaly_rows,
            c.bar_rows,
            c.files,
            c.commits,
            outputs,
            seconds,
            report.records_this_run as f64 / seconds.max(1e-9)
        );
        if !c.invalid.is_empty() {
            let reasons: Vec<String> = c.invalid.iter().map(|(r, n)| format!("{r}={n}")).collect();
            line.push_str(&format!("; invalid by reason: {}", reasons.join(", ")));
        }
        if let Some(d) = &report.webhook {
            line.push_str(&format!(
                "; webhook: {} alerts delivered, {} dead-lettered, {} retries",
                d.delivered, d.dead_lettered, d.retried
            ));
        }
        if report.outcome == Outcome::Stopped {
            line.push_str(&format!(
                "; stopped after record {}: run the same command to go on",
                report.offset
            ));
        }
        line
    }
}

/// Runs the pipeline until the input ends or `stop` is set.
pub fn run(
    config: &RunConfig,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<Report> {
    let started = Instant::now();
    source::check(&config.source)?;
    let mut chains = Chains::load(&config.transforms_dir, &config.wasm)?;
    // Alerts made with another cooldown would not be those of an uninterrupted run.
    chains.fingerprints.insert(
        Stream::Alerts.name().to_owned(),
        format!("cooldown {} ms", config.alert_cooldown_ms),
    );
    let root = config.outputs.clone();
    if root.local().is_none() {
        if config.alert_webhook.is_some() {
            anyhow::bail!("--alert-webhook needs the outputs on a local disk, where its outbox lives; {root} is in an object store");
        }
        if let Source::Stream {
            journal: Some(_), ..
        } = &config.source
        {
            anyhow::bail!("a Kafka input needs the outputs on a local disk, where its journal lives; {root} is in an object store");
        }
    }
    let lock = root.lock()?;
    // The records of a batch a chain failed on, fed one at a time to find the failing one.
    let mut probe: Option<Range<u64>> = None;
    let mut skipped = 0u64;
    let mut first_attempt: Option<(Option<Resume>, u64)> = None;
    loop {
        let (end, resume, start_offset) = attempt(
            config,
            &chains,
            &lock,
            stop,
            started,
            probe.as_ref(),
            on_event,
        )?;
        let (resume, start_offset) = first_attempt.get_or_insert((resume, start_offset)).clone();
        let failed = match end {
            AttemptEnd::Done(mut report) => {
                report.resume = resume;
                report.records_this_run = report.offset - start_offset;
                return Ok(report);
            }
            AttemptEnd::ChainFailed(failed) => failed,
        };
        let reopenable = match &config.source {
            Source::Stream { records, .. } => records.can_reopen(),
            _ => true,
        };
        if !reopenable {
            anyhow::bail!(
                "the {} chain failed on records {}..{} of {} ({}), and this input cannot be read again to find and skip the record; everything before them is committed",
                failed.stream.name(),
                failed.range.start,
                failed.range.end,
                config.source.describe(),
                failed.message
            );
        }
        match failed.skipped {
            Some(offset) => {
                skipped += 1;
                tracing::warn!(
                    offset,
                    "the {} chain failed on record {offset} ({}): it is dead-lettered and skipped; restarting the chains from the commit after it",
                    failed.stream.name(),
                    failed.message
                );
                anyhow::ensure!(
                    skipped < MAX_SKIPPED_PER_RUN,
                    "the chains failed on {skipped} records in this run, the last {offset}: that is a broken chain, not a bad record; the records skipped so far are in {}",
                    root.display_join(DEAD_LETTER_DIR)
                );
                probe = (offset + 1 < failed.range.end).then(|| offset + 1..failed.range.end);
            }
            None => {
                tracing::warn!(
                    "the {} chain failed on a batch of records {}..{} ({}); restarting the chains from the last commit and feeding those records one at a time to find the one it fails on",
                    failed.stream.name(),
                    failed.range.start,
                    failed.range.end,
                    failed.message
                );
                probe = Some(failed.range);
            }
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("stopped while restarting the chains after a failure: run the same command to go on");
        }
    }
}

/// How one start of the chains ended.
#[allow(clippy::large_enum_variant)] // one per start
enum AttemptEnd {
    Done(Report),
    ChainFailed(main_loop::FailedBatch),
}

/// One start of the chains from the last commit, to the input's end, a stop, or a chain's
/// failure: with the resume it made and the input position it started from.
fn attempt(
    config: &RunConfig,
    chains: &Chains,
    lock: &OutputsLock,
    stop: &AtomicBool,
    started: Instant,
    probe: Option<&Range<u64>>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<(AttemptEnd, Option<Resume>, u64)> {
    let root = config.outputs.clone();
    let previous = root.load_checkpoint()?;
    if let Some(previous) = &previous {
        for (stream, fingerprint) in &chains.fingerprints {
            if previous.chains.get(stream) != Some(fingerprint) {
                anyhow::bail!(
                    "the outputs in {root} were made by a different {stream} chain ({} now, {} then); use another --outputs, or remove {root} to start over",
                    fingerprint,
                    previous.chains.get(stream).map_or("none", String::as_str),
                );
            }
        }
    }
    if let Some(recorded) = previous.as_ref().and_then(|c| c.partition) {
        config
            .partition
            .resume(recorded)
            .with_context(|| format!("cannot go on with {root}"))?;
    }
    if let Some(previous) = &previous {
        root.refuse_damaged(previous.manifest_mark(), "remove the outputs to start over")?;
    }
    if previous.is_some() && matches!(config.source, Source::Stream { journal: None, .. }) {
        anyhow::bail!(
            "{root} holds the outputs of an earlier run, and a stream of records ({}) cannot be read again to resume it; use another --outputs, or remove these outputs",
            config.source.describe()
        );
    }
    let committed = previous.as_ref().map_or(0, |c| c.offset);
    let mut dirs: Vec<&str> = Stream::OUTPUTS.iter().map(|s| s.dir()).collect();
    dirs.push(DEAD_LETTER_DIR);
    if root.local().is_some() {
        dirs.push(webhook::OUTBOX_DIR);
    }
    let orphans_removed = root.remove_orphans(&dirs, committed)?;
    if let Some(local) = root.local() {
        remove_stale_temp_files(local)?;
    }
    if previous.is_none() && orphans_removed > 0 {
        tracing::warn!(
            orphans_removed,
            "removed part files left without a checkpoint in {root}"
        );
    }
    let input = source::open(&config.source)?;
    let engine = SmartEngine::new();
    let keep_raw = config.dashboard.is_some();

    std::thread::scope(|scope| {
        // A chain fed by another's output starts first, so its feeder can be handed its queue.
        let mut spawned: Vec<Option<Worker>> = Stream::ALL.iter().map(|_| None).collect();
        for stream in Stream::ALL.iter().rev() {
            let downstream = Stream::ALL
                .iter()
                .find(|s| s.input() == Some(*stream))
                .and_then(|s| spawned[s.index()].as_ref())
                .map(|w| worker::Downstream {
                    jobs: w.jobs.clone(),
                    only_flagged: w.stream == Stream::Anomalies
                        && chains.anomalies_need_only_flagged,
                });
            spawned[stream.index()] = Some(spawn_worker(
                scope,
                *stream,
                chains.specs[stream.index()].clone(),
                ModuleSource {
                    engine: engine.clone(),
                    wasm: config.wasm.clone(),
                    memory_limit: config.chain_memory_limit,
                },
                keep_raw,
                downstream,
            ));
        }
        let workers: Vec<Worker> = spawned.into_iter().flatten().collect();
        let (reader, replayed) = restart(config, chains, previous.as_ref(), input, &workers)?;
        let resume = previous.as_ref().map(|previous| Resume {
            offset: previous.offset,
            commits: previous.counts.commits,
            orphans_removed,
            replayed: replayed.clone(),
            elapsed: started.elapsed(),
        });
        if let Some(resume) = &resume {
            on_event(Event::Resumed(resume));
        }
        tracing::info!(
            offset = reader.offset,
            "chains started; processing from record {}",
            reader.offset
        );
        let state = State {
            config,
            outputs: root.clone(),
            lock,
            fingerprints: chains.fingerprints.clone(),
            source_name: config.source.describe(),
            committed: previous.clone().unwrap_or_else(|| Checkpoint {
                format: checkpoint::FORMAT,
                offset: 0,
                line: 0,
                input: InputIdentity {
                    source: config.source.describe(),
                    prefix_hash: PrefixHash::default().hex(),
                },
                chains: chains.fingerprints.clone(),
                max_ts: None,
                last_replay: BTreeMap::new(),
                finished: false,
                counts: Counts::default(),
                open_alerts: Vec::new(),
                partition: None,
                manifest_len: 0,
                manifest_bytes: 0,
                skipped: Vec::new(),
            }),
            pending: Stream::OUTPUTS.map(Partitioned::new),
            episodes: Episodes::with_open(
                config.alert_cooldown_ms,
                previous
                    .iter()
                    .flat_map(|c| c.open_alerts.iter().map(Episode::from)),
            ),
            pending_outbox: Vec::new(),
            webhook: match (&config.alert_webhook, root.local()) {
                (Some(webhook), Some(local)) => Some(WebhookSender::spawn(local, webhook.clone())),
                _ => None,
            },
            pending_dead: Vec::new(),
            pending_skipped: Vec::new(),
            pending_counts: Counts::default(),
            pending_end: committed,
            pending_line: reader.line,
            pending_hash: reader.hash,
            pending_max_ts: previous.as_ref().and_then(|c| c.max_ts),
            last_commit: Instant::now(),
            replayed: if previous.is_some() {
                replayed
            } else {
                BTreeMap::new()
            },
            feed: FeedStats::default(),
        };
        let start_offset = reader.offset;
        let (outcome, mut state) =
            match main_loop(state, reader, workers, stop, started, probe, on_event)? {
                LoopEnd::Done(outcome, state) => (outcome, *state),
                LoopEnd::ChainFailed(failed) => {
                    return Ok((AttemptEnd::ChainFailed(failed), resume, start_offset))
                }
            };
        let webhook = state.webhook.take().map(WebhookSender::finish);
        let report = Report {
            outcome,
            counts: state.committed.counts.clone(),
            records_this_run: state.committed.offset - start_offset,
            elapsed: started.elapsed(),
            resume: resume.clone(),
            offset: state.committed.offset,
            feed: state.feed,
            webhook,
        };
        Ok((AttemptEnd::Done(report), resume, start_offset))
    })
}
