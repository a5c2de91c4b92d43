//! `stockstream materialize`: stock-ticks through the chains *inside the SPUs*, the results
//! produced to stock-enriched, stock-anomalies and stock-bars-5m and written to Parquet under
//! `outputs/` like `stockstream run` does. The anomalies chain reads stock-enriched (it scores
//! the enriched ticks again), so the rolling statistics are computed once.
//!
//! One consumer stream per chain and partition carries the chain as SmartModule invocations
//! with the parameters of `transforms/*.yaml` (what `fluvio consume --transforms-file` sends).
//! Output of input partition p goes to partition p of each derived topic, so every (chain,
//! partition) lane is one ordered sequence end to end.
//!
//! **Exactly once across restarts, bit for bit.** A commit writes the pending rows as Parquet
//! files named by commit number, publishes them atomically, then replaces `_materialize.json`,
//! which holds how many records each lane has put in its derived partition. On restart:
//!
//! - window state: each lane's checkpoint holds `read_to`, the input offset after the last
//!   batch whose whole output is committed (from the SPU's progress records), and
//!   `past_mark`, the committed records of the batch after it. A chain of stateless modules
//!   (the anomalies lane: zscore-anomaly scores what rolling-stats wrote) starts at `read_to`.
//!   A stateful chain starts at its resume point (`stockstream_runner::resume`): an input
//!   offset about one to two windows before `read_to`, with a seed for the stateful module, so
//!   that the fresh chain is at `read_to` in the very state of the uninterrupted one; the
//!   output it gives before `read_to` is dropped by the progress records. Either way the first
//!   `past_mark` records after `read_to` are dropped (they are committed). A chain the
//!   resume points do not cover reads the partition from its start and drops the first
//!   `produced` records. Two shortcuts are not taken, on purpose: record offsets (an SPU
//!   numbers a chain's output records consecutively from the start of the input batch, so
//!   after a filtered tick they no longer name their input), and broker-side `look_back` (an
//!   SPU reads the *newest* records of the partition for it, which lie after the resume
//!   position whenever the producer went on meanwhile, so those ticks would be counted twice).
//!   If retention has already removed input the state needs, it cannot be rebuilt exactly and
//!   materialize says so instead of guessing;
//! - derived topics: records the lane produced after its last commit are already in its
//!   derived partition (its end offset says how many); they are written to files but not
//!   produced again;
//! - files: parts of an unfinished commit are deleted and written again.
//!
//! **Alerts.** Each partition's anomalies are grouped into alerts
//! (`stockstream_core::episodes`) as they come off the anomalies lane; a closed alert is
//! written to `outputs/alerts/` and produced to partition p of stock-alerts. The clock that
//! closes an alert is the newest anomaly's time in that partition, not the enriched lane's: the
//! lanes run at their own pace, so only the anomalies lane's own sequence makes the closed
//! alerts, and their order, a function of the partition's input, which the produced-count
//! bookkeeping above needs. (An alert in a partition with no later anomaly stays open until one
//! comes; `stockstream run` closes on every tick's time.) The open alerts and that clock are in
//! the checkpoint, so a restart goes on growing them without replaying anything.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fluvio::consumer::{ConsumerConfigExtBuilder, Record as ConsumerRecord, RetryMode};
use fluvio::dataplane::link::ErrorCode;
use fluvio::metadata::topic::TopicSpec;
use fluvio::{
    Fluvio, Offset, PartitionId, Partitioner, PartitionerConfig, ProduceOutput, RecordKey,
    SmartModuleExtraParams, SmartModuleInvocation, SmartModuleInvocationWasm, SmartModuleKind,
    TopicProducerConfigBuilder, TopicProducerPool,
};
use fluvio_future::timer::sleep;
use futures_util::future::{select, Either};
use futures_util::stream::{select_all, Stream as FuturesStream, StreamExt};
use serde::{Deserialize, Serialize};
use stockstream_core::episodes::{Episode, Episodes, FlaggedTick, DEFAULT_COOLDOWN_MS};
use stockstream_pipeline::alerts::{alert_json, OpenAlert};
use stockstream_pipeline::commit::part_name;
use stockstream_pipeline::commit::FileRecord;
use stockstream_pipeline::dates::{Granularity, PartitionBy};
use stockstream_pipeline::outputs::{decide_granularity, parse_rows, AlertRow, Partitioned, Rows};
use stockstream_pipeline::run::{record_text, write_parquet_files, DEAD_LETTER_DIR};
use stockstream_pipeline::store::{DamagedFile, ManifestMark, Outputs, OutputsLock};
use stockstream_pipeline::Stream;
use stockstream_runner::replay::{ChainReplay, ReplayKind};
use stockstream_runner::resume::{ResumePoint, ResumeTracker};
use stockstream_runner::ChainSpec;
use stockstream_smartmodule::entry::{MAX_OUTPUT_PARAM, PROGRESS_PARAM, SKIP_PARAM};
use stockstream_smartmodule::{read_progress, resume_params};

use crate::topics;

mod trap;
use trap::{FoundTrap, Trap};

/// File name of the materializer's checkpoint in the outputs root.
pub const CHECKPOINT_FILE: &str = "_materialize.json";
const FORMAT: u32 = 1;

/// Settings of `stockstream materialize`.
#[derive(Debug, Clone)]
pub struct MaterializeConfig {
    /// The raw topic.
    pub raw_topic: String,
    /// Root of the Parquet outputs: a local directory or an object store prefix.
    pub outputs: Outputs,
    /// Directory of enriched.yaml, anomalies-from-enriched.yaml and bars-5m.yaml.
    pub transforms_dir: PathBuf,
    /// Commit after this many derived records...
    pub commit_records: u64,
    /// ...or this long after the previous commit.
    pub commit_interval: Duration,
    /// Stop once every lane has been quiet this long (for batch jobs and tests); run until
    /// asked to stop when `None`.
    pub idle_exit: Option<Duration>,
    /// A symbol's anomalies at most this far apart (event time) are one alert.
    pub alert_cooldown_ms: i64,
    /// Event-time granularity of the output partitions (kept by a resume).
    pub partition: PartitionBy,
    /// Most bytes of chain output one fetch carries: what bounds the memory of a fetch in
    /// the SPU and here, whatever the partition's length (see [`invocations`]).
    pub fetch_bytes: u32,
    /// How long to wait for the SPUs to have the modules before giving up.
    pub wait_spus: Duration,
}

/// Default of [`MaterializeConfig::fetch_bytes`]: far above one input batch's output (a
/// producer batch is at most 1 MB by default; enriched records are about 4x the raw tick).
pub const DEFAULT_FETCH_BYTES: u32 = 16 << 20;

/// With `--idle-exit`, a run whose lanes have not all read their input to its end gives up
/// when the SPU has reported no progress on some lane for this long (or the idle time, if
/// longer), and says how far each lane got.
const STALL: Duration = Duration::from_secs(60);

impl MaterializeConfig {
    pub fn new(outputs: impl Into<Outputs>, transforms_dir: PathBuf) -> Self {
        Self {
            raw_topic: topics::RAW.to_owned(),
            outputs: outputs.into(),
            transforms_dir,
            commit_records: 100_000,
            commit_interval: Duration::from_secs(5),
            idle_exit: None,
            alert_cooldown_ms: DEFAULT_COOLDOWN_MS,
            partition: PartitionBy::Auto,
            fetch_bytes: DEFAULT_FETCH_BYTES,
            wait_spus: crate::ready::DEFAULT_WAIT,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where one (chain, partition) lane stands after a commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LanePosition {
    /// Records put in the lane's derived partition (its next offset).
    pub produced: u64,
    /// The input offset after the last batch whose whole output is in `produced` (from the
    /// SPU's progress records); absent in checkpoints written before they existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_to: Option<u64>,
    /// Records in `produced` that the batch starting at `read_to` gave.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub past_mark: u64,
    /// Where a stateful chain restarts to be at `read_to` in the state it had there, and with
    /// what seed (`stockstream_runner::resume`); absent: it replays the partition from its
    /// start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumePoint>,
    /// Input offsets of records a module failed on, dead-lettered: the lane's chain never
    /// sees them again (`stockstream.skip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    format: u32,
    raw_topic: String,
    partitions: u32,
    /// Each chain's steps and parameters: a restart with others would mix two computations.
    chains: BTreeMap<String, String>,
    commits: u64,
    /// Per stream, one position per partition.
    lanes: BTreeMap<String, Vec<LanePosition>>,
    /// Rows written per stream.
    rows: BTreeMap<String, u64>,
    files: u64,
    /// Per partition: the alert grouping's state.
    #[serde(default)]
    alerts: Vec<AlertLaneState>,
    /// How the files are partitioned by event time (`None` until rows are first written).
    #[serde(default = "stockstream_pipeline::dates::legacy_granularity")]
    partition: Option<Granularity>,
    /// Lines of `_manifest.jsonl` (each committed file's path, size and SHA-256) that belong
    /// to committed files, and their bytes: what `stockstream verify` and every start check.
    #[serde(default)]
    manifest_len: u64,
    #[serde(default)]
    manifest_bytes: u64,
}

impl Checkpoint {
    fn manifest_mark(&self) -> ManifestMark {
        ManifestMark {
            commit_end: self.commits,
            len: self.manifest_len,
            bytes: self.manifest_bytes,
        }
    }
}

/// What `stockstream verify` finds under `root` written by materialize: the files its
/// checkpoint counts as committed, and which of them are missing or altered (by SHA-256).
/// `None` when `root` holds no materializer checkpoint.
pub fn verify_files(root: &Outputs) -> anyhow::Result<Option<FilesCheck>> {
    let Some(checkpoint) =
        root.load_json::<Checkpoint>(CHECKPOINT_FILE, "materializer checkpoint")?
    else {
        return Ok(None);
    };
    let (records, problems) = root.verify_committed(
        checkpoint.manifest_mark(),
        CHECKPOINT_FILE,
        checkpoint.files,
    )?;
    Ok(Some(FilesCheck { records, problems }))
}

/// See [`verify_files`].
#[derive(Debug)]
pub struct FilesCheck {
    pub records: Vec<FileRecord>,
    pub problems: Vec<DamagedFile>,
}

/// Where a partition's alert grouping stands after a commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AlertLaneState {
    /// Closed alerts put in the partition of stock-alerts.
    produced: u64,
    /// Newest anomaly time seen (the clock that closes alerts).
    watermark: Option<i64>,
    open: Vec<OpenAlert>,
}

/// A partition's alert grouping.
struct AlertLane {
    episodes: Episodes,
    state: AlertLaneState,
    /// Closed alerts still to come that stock-alerts already holds.
    already: u64,
    producer: TopicProducerPool,
}

/// What a run did, for its closing line.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub partitions: u32,
    /// Derived records handled by this process, per stream (replayed ones excluded).
    pub records: BTreeMap<&'static str, u64>,
    /// Records the replay made again and dropped (committed before), per stream.
    pub replayed: BTreeMap<&'static str, u64>,
    /// Input records the restarting lanes read again before their resume point, per stream.
    pub reread: BTreeMap<&'static str, u64>,
    /// Records found already in the derived topics after the last commit (not produced twice).
    pub already_produced: u64,
    /// Commits by this process.
    pub commits: u64,
    /// Where the files went (a directory or an object store prefix).
    pub outputs: String,
    pub elapsed: Duration,
    /// With `--idle-exit`: every lane had read its input partition to the end measured then.
    pub caught_up: bool,
    /// Records a module failed on, dead-lettered and skipped.
    pub dead_lettered: u64,
}

impl Report {
    /// Adds up the report of a later pass of the same run.
    fn add(&mut self, later: Report) {
        for (into, from) in [
            (&mut self.records, later.records),
            (&mut self.replayed, later.replayed),
            (&mut self.reread, later.reread),
        ] {
            for (stream, count) in from {
                *into.entry(stream).or_default() += count;
            }
        }
        self.partitions = later.partitions;
        self.already_produced += later.already_produced;
        self.commits += later.commits;
        self.outputs = later.outputs;
        self.caught_up = later.caught_up;
        self.dead_lettered += later.dead_lettered;
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |map: &BTreeMap<&'static str, u64>| {
            Stream::OUTPUTS
                .iter()
                .map(|s| format!("{} {}", map.get(s.name()).copied().unwrap_or(0), s.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "materialize: {} partition(s); {} records this run ({}); replayed (committed before) {}; input read again to restart: {}; {} already in the derived topics; {} dead-lettered (a module failed on them); {} commits under {} in {:.2} s{}",
            self.partitions,
            self.records.values().sum::<u64>(),
            list(&self.records),
            list(&self.replayed),
            list(&self.reread),
            self.already_produced,
            self.dead_lettered,
            self.commits,
            self.outputs,
            self.elapsed.as_secs_f64(),
            if self.caught_up {
                "; every lane read its input to the end"
            } else {
                ""
            }
        )
    }
}

impl Lane {
    /// The progress record of the batch `[first, end)`.
    fn batch_end(&mut self, first: i64, end: i64, tail: &[u8]) -> anyhow::Result<()> {
        let (first, end) = (first.max(0) as u64, end.max(0) as u64);
        self.read_to = self.read_to.max(end);
        self.past_mark = 0;
        if let Some(tracker) = &mut self.tracker {
            if let Err(diverged) = tracker.batch_end(first, tail) {
                // Exact all the same: without a resume point, the next restart replays the
                // partition from its start.
                tracing::warn!(
                    stream = self.stream.name(),
                    partition = self.partition,
                    "{diverged}: restarts of this lane will replay the partition from its start"
                );
                self.tracker = None;
            }
        }
        if let Some(to) = self.replay_to {
            anyhow::ensure!(
                self.read_to <= to,
                "the {} chain's replay on partition {} of {} went from offset {first} to {end}, past the resume point {to} (were the input's batches rewritten?); nothing after the last commit was kept",
                self.stream.name(),
                self.partition,
                self.source
            );
            if self.read_to == to {
                self.replay_to = None;
            }
        }
        Ok(())
    }

    /// Where this lane restarts, for the checkpoint of a commit at `read_to`: the tracker's
    /// point there, or else the last one committed (a restart from an earlier point replays
    /// further, to the same state), or else none (a replay from the partition's start).
    fn resume_point(&mut self) -> Option<ResumePoint> {
        let tracker = self.tracker.as_mut()?;
        tracker
            .resume_point(self.read_to)
            .or_else(|| self.position.resume.clone())
    }
}

/// Sends every record to one partition: lane p writes partition p of its derived topic.
#[derive(Debug)]
struct FixedPartition(PartitionId);

impl Partitioner for FixedPartition {
    fn partition(&self, _: &PartitionerConfig, _: Option<&[u8]>, _: &[u8]) -> PartitionId {
        self.0
    }
}

/// One (chain, partition) lane.
struct Lane {
    stream: Stream,
    partition: u32,
    /// The topic the chain reads.
    source: String,
    /// The offset after the last input batch the SPU reported done (its progress records).
    read_to: u64,
    /// Records the lane got from the batch starting at `read_to` (committed before or not).
    past_mark: u64,
    position: LanePosition,
    /// While a bounded restart replays the input before its resume point: that point, where
    /// the committed output goes on (everything the chain gives before it is dropped).
    replay_to: Option<u64>,
    /// Knows where the lane would restart (stateful chains that support it).
    tracker: Option<ResumeTracker>,
    /// Records still to come that were committed before (the replay of the partition).
    skip: u64,
    /// Records still to come that the derived partition already holds.
    already: u64,
    producer: TopicProducerPool,
}

/// A lane's records, then `None` once when its stream ends (it never should: it follows the
/// partition).
type LaneStream =
    Pin<Box<dyn FuturesStream<Item = (usize, Option<Result<ConsumerRecord, ErrorCode>>)>>>;

/// Most records one run dead-letters before it stops (a chain that fails on everything is
/// broken, not fed a few bad records).
pub const MAX_DEAD_LETTERS: u64 = 100;

/// How one pass over the lanes ended.
enum Outcome {
    /// Stopped, or idle and caught up: everything is committed.
    Done(Report),
    /// A module failed on a record: it is dead-lettered and committed as skipped, and the
    /// lanes must start again (their chains in the SPU ended with the failure).
    DeadLettered(Report),
    /// An SPU did not have this module yet when a lane opened (an SPU gets the modules a
    /// moment after they are registered, and again after it restarts): everything before is
    /// committed, and the lanes start again.
    ModuleMissing(Report, String),
    /// A chain trapped in the SPU, which names no record for a trap: everything before is
    /// committed, and the record is to be found ([`trap`]).
    Trapped(Report, Trap),
}

/// Traps the probes did not meet again that one run goes on after (a chain that traps now and
/// then on the same input is broken, and would never get on).
const MAX_UNREPRODUCED_TRAPS: u32 = 3;

/// Runs until `stop` is set (or `idle_exit` passes), committing on schedule; everything
/// handled is committed when it returns `Ok`.
///
/// A record that makes a module fail (a poison pill) is dead-lettered under
/// `dead_letter/` with the module's message, recorded in the checkpoint as skipped by its
/// lane (the reserved parameter `stockstream.skip`, so no restart meets it again), and the
/// lanes go on from their last commit without it; at most [`MAX_DEAD_LETTERS`] per run.
pub async fn materialize(
    fluvio: &Fluvio,
    config: &MaterializeConfig,
    stop: &AtomicBool,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut total = Report::default();
    let mut missing_since: Option<Instant> = None;
    let mut found: Option<FoundTrap> = None;
    let mut unreproduced = 0u32;
    loop {
        match materialize_once(fluvio, config, stop, found.take()).await? {
            Outcome::ModuleMissing(report, module) => {
                total.add(report);
                let since = *missing_since.get_or_insert_with(Instant::now);
                anyhow::ensure!(
                    since.elapsed() < config.wait_spus,
                    "an SPU still does not have the SmartModule {module} after {:.0} s (registered? `stockstream setup`); everything before is committed",
                    since.elapsed().as_secs_f64()
                );
                tracing::info!(%module, "an SPU does not have this module yet: opening the lanes again");
                sleep(Duration::from_millis(200)).await;
            }
            Outcome::Done(report) => {
                total.add(report);
                total.elapsed = started.elapsed();
                return Ok(total);
            }
            Outcome::Trapped(report, trap) => {
                total.add(report);
                found = trap::find_record(fluvio, config, &trap).await?;
                if found.is_none() {
                    unreproduced += 1;
                    anyhow::ensure!(
                        unreproduced < MAX_UNREPRODUCED_TRAPS,
                        "the {} chain trapped in the SPU {unreproduced} times in this run where the same input then went through: the chain or the SPU is broken; everything before is committed. The SPU said: {}",
                        trap.stream.name(),
                        trap.message
                    );
                }
                anyhow::ensure!(
                    total.dead_lettered < MAX_DEAD_LETTERS,
                    "{} records made a module fail in this run (each dead-lettered under {}): the chains or the input are broken; everything before is committed",
                    total.dead_lettered,
                    config.outputs.display_join(DEAD_LETTER_DIR)
                );
            }
            Outcome::DeadLettered(report) => {
                total.add(report);
                anyhow::ensure!(
                    total.dead_lettered < MAX_DEAD_LETTERS,
                    "{} records made a module fail in this run (each dead-lettered under {}): the chains or the input are broken; everything before is committed",
                    total.dead_lettered,
                    config.outputs.display_join(DEAD_LETTER_DIR)
                );
            }
        }
    }
}

/// One pass over the lanes; `found`, a record a chain trapped on, is dead-lettered and left
/// out by its lane from this pass on.
async fn materialize_once(
    fluvio: &Fluvio,
    config: &MaterializeConfig,
    stop: &AtomicBool,
    found: Option<FoundTrap>,
) -> anyhow::Result<Outcome> {
    let root = &config.outputs;
    let lock = root.lock()?;
    anyhow::ensure!(
        !root.exists(stockstream_pipeline::checkpoint::FILE_NAME)?,
        "{root} holds the outputs of `stockstream run`; choose another --outputs for materialize"
    );
    let specs = load_chains(&config.transforms_dir)?;
    let mut fingerprints: BTreeMap<String, String> = specs
        .iter()
        .map(|(stream, spec)| (stream.name().to_owned(), fingerprint(spec)))
        .collect();
    fingerprints.insert(
        Stream::Alerts.name().to_owned(),
        format!("cooldown {} ms", config.alert_cooldown_ms),
    );
    let partitions = topic_partitions(fluvio, &config.raw_topic).await?;
    let mut modules: Vec<String> = specs
        .iter()
        .flat_map(|(_, spec)| spec.steps.iter().map(|s| s.uses.clone()))
        .collect();
    modules.sort();
    modules.dedup();
    for (_, topic) in topics::DERIVED {
        let have = topic_partitions(fluvio, topic).await?;
        anyhow::ensure!(
            have == partitions,
            "topic {topic} has {have} partition(s) but {} has {partitions}: each derived topic needs as many as the raw topic (`stockstream setup --partitions {partitions}`)",
            config.raw_topic
        );
    }

    let waited = crate::ready::wait_for_modules(
        fluvio,
        &[&config.raw_topic, topics::derived(Stream::Enriched)],
        &modules,
        config.wait_spus,
    )
    .await?;
    tracing::debug!(waited_s = waited.as_secs_f64(), "the SPUs have the modules");

    let checkpoint_path = root.display_join(CHECKPOINT_FILE);
    let loaded: Option<Checkpoint> = root.load_json(CHECKPOINT_FILE, "materializer checkpoint")?;
    let committed = match loaded {
        Some(c) => {
            anyhow::ensure!(
                c.format == FORMAT,
                "{} has format {} (this stockstream writes {FORMAT}); use a new --outputs directory",
                checkpoint_path,
                c.format
            );
            anyhow::ensure!(
                c.raw_topic == config.raw_topic && c.partitions == partitions,
                "{} was written for topic {} with {} partition(s), not {} with {partitions}; choose another --outputs",
                checkpoint_path,
                c.raw_topic,
                c.partitions,
                config.raw_topic
            );
            for (name, print) in &fingerprints {
                anyhow::ensure!(
                    c.chains.get(name) == Some(print),
                    "the {name} chain differs from the one {} was written with ({} now, {} then); choose another --outputs",
                    checkpoint_path,
                    print,
                    c.chains.get(name).map_or("none", String::as_str)
                );
            }
            if let Some(recorded) = c.partition {
                config
                    .partition
                    .resume(recorded)
                    .with_context(|| format!("cannot go on with {root}"))?;
            }
            c
        }
        None => Checkpoint {
            format: FORMAT,
            raw_topic: config.raw_topic.clone(),
            partitions,
            chains: fingerprints.clone(),
            commits: 0,
            lanes: BTreeMap::new(),
            rows: BTreeMap::new(),
            files: 0,
            alerts: Vec::new(),
            partition: None,
            manifest_len: 0,
            manifest_bytes: 0,
        },
    };
    root.refuse_damaged(committed.manifest_mark(), "start over with a new --outputs")?;
    let mut dirs: Vec<&str> = Stream::OUTPUTS.iter().map(|s| s.dir()).collect();
    dirs.push(DEAD_LETTER_DIR);
    let orphans = root.remove_orphans(&dirs, committed.commits)?;
    if orphans > 0 {
        tracing::info!("removed {orphans} file(s) of an unfinished commit");
    }

    let mut report = Report {
        partitions,
        outputs: root.to_string(),
        ..Report::default()
    };
    let mut lanes = Vec::new();
    let mut streams: Vec<LaneStream> = Vec::new();
    for (stream, spec) in &specs {
        for partition in 0..partitions {
            let mut position = committed
                .lanes
                .get(stream.name())
                .and_then(|l| l.get(partition as usize))
                .cloned()
                .unwrap_or_default();
            if let Some(found) = found
                .as_ref()
                .filter(|f| f.stream == *stream && f.partition == partition)
            {
                position.skipped.push(found.offset);
                position.skipped.sort_unstable();
            }
            let topic = topics::derived(*stream);
            let source = source_topic(config, *stream);
            let end = end_offset(fluvio, topic, partition).await?;
            anyhow::ensure!(
                end >= position.produced,
                "partition {partition} of {topic} ends at {end}, before the {} records committed to it: was the topic recreated? Start over with a new --outputs",
                position.produced
            );
            let already = end - position.produced;
            report.already_produced += already;
            // A chain of stateless modules restarts where it stopped; a stateful one from its
            // resume point, or else from the partition's start (see the module
            // documentation).
            let replay = ChainReplay::for_chain(spec)?;
            let LaneStart {
                resume_at,
                replay_to,
                point,
            } = LaneStart::of(&position, &replay);
            let tracker = ResumeTracker::for_chain(&replay, point)
                .with_context(|| format!("the resume point in {checkpoint_path}"))?;
            // Nothing to read again when the state needs no input before the resume point.
            let replay_to = replay_to.filter(|to| *to > resume_at);
            if let Some(to) = replay_to {
                *report.reread.entry(stream.name()).or_default() += to - resume_at;
            }
            let skip = if position.read_to.is_some() && (resume_at > 0 || replay_to.is_some()) {
                position.past_mark
            } else {
                position.produced
            };
            if position.produced > 0 || already > 0 {
                let first = first_offset(fluvio, &source, partition).await?;
                anyhow::ensure!(
                    first <= resume_at,
                    "partition {partition} of {source} starts at offset {first}: retention removed records before offset {resume_at}, which the {} chain's state is rebuilt from, so its output cannot be rebuilt exactly; start over with a new --outputs (and give the topic a retention longer than the materializer's downtime)",
                    stream.name()
                );
            }
            let producer = fluvio
                .topic_producer_with_config(
                    topic,
                    TopicProducerConfigBuilder::default()
                        .partitioner(Arc::new(FixedPartition(partition)))
                        .build()
                        .context("producer settings")?,
                )
                .await
                .with_context(|| format!("cannot produce to {topic}"))?;
            let start = LaneStart {
                resume_at,
                replay_to,
                point,
            };
            let consumer = open_chain(
                fluvio,
                config,
                ChainInput {
                    stream: *stream,
                    spec,
                    replay: &replay,
                    source: &source,
                    partition,
                },
                &start,
                &position.skipped,
                None,
            )
            .await?;
            let index = lanes.len();
            let records = consumer.map(move |item| (index, Some(item)));
            streams.push(Box::pin(
                records.chain(futures_util::stream::once(async move { (index, None) })),
            ));
            tracing::info!(
                stream = stream.name(),
                partition,
                committed = position.produced,
                resume_at,
                resume_point = replay_to,
                already,
                "lane open"
            );
            lanes.push(Lane {
                stream: *stream,
                partition,
                source: source.clone(),
                read_to: resume_at,
                past_mark: 0,
                replay_to,
                tracker,
                skip,
                position,
                already,
                producer,
            });
        }
    }

    let mut alert_lanes = Vec::new();
    let alerts_topic = topics::derived(Stream::Alerts);
    for partition in 0..partitions {
        let state = committed
            .alerts
            .get(partition as usize)
            .cloned()
            .unwrap_or_default();
        let end = end_offset(fluvio, alerts_topic, partition).await?;
        anyhow::ensure!(
            end >= state.produced,
            "partition {partition} of {alerts_topic} ends at {end}, before the {} alerts committed to it: was the topic recreated? Start over with a new --outputs",
            state.produced
        );
        report.already_produced += end - state.produced;
        alert_lanes.push(AlertLane {
            episodes: Episodes::with_open(
                config.alert_cooldown_ms,
                state.open.iter().map(Episode::from),
            ),
            already: end - state.produced,
            state,
            producer: fluvio
                .topic_producer_with_config(
                    alerts_topic,
                    TopicProducerConfigBuilder::default()
                        .partitioner(Arc::new(FixedPartition(partition)))
                        .build()
                        .context("producer settings")?,
                )
                .await
                .with_context(|| format!("cannot produce to {alerts_topic}"))?,
        });
    }

    let mut commits = Committer {
        store: root.clone(),
        lock,
        committed,
        rows: Stream::OUTPUTS
            .iter()
            .map(|s| Partitioned::new(*s))
            .collect(),
        partition: config.partition,
        outputs: Vec::new(),
        dead: Vec::new(),
        records: 0,
        last: Instant::now(),
        count: 0,
    };
    if let Some(found) = found {
        // Durable before anything else: the record is dead-lettered once, and no restart
        // looks for it again.
        let (record, record_base64) = record_text(&found.record);
        commits.dead.push(ModuleFailure {
            stream: found.stream.name(),
            topic: source_topic(config, found.stream),
            partition: found.partition,
            offset: found.offset,
            reason: "module_failed",
            message: found.message,
            record,
            record_base64,
        });
        report.dead_lettered += 1;
        commits.commit(&mut lanes, &alert_lanes).await?;
    }
    let mut last_record = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_end_check: Option<Instant> = None;
    let mut failure = None;
    let mut trapped = None;
    let mut dead_lettered = false;
    let mut missing = None;
    let mut merged = select_all(streams);
    let mut timer = Box::pin(sleep(Duration::from_millis(200)));
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(idle) = config.idle_exit {
            let checked_lately =
                last_end_check.is_some_and(|at| at.elapsed() < Duration::from_secs(1));
            if last_record.elapsed() >= idle && !checked_lately {
                last_end_check = Some(Instant::now());
                // What this process sent to stock-enriched must be there before the anomalies
                // lane can be said to have read it.
                if commits.records > 0 {
                    commits.commit(&mut lanes, &alert_lanes).await?;
                }
                let behind = lanes_behind(fluvio, &lanes).await?;
                if behind.is_empty() {
                    report.caught_up = true;
                    break;
                }
                if last_progress.elapsed() >= idle.max(STALL) {
                    failure = Some(anyhow::anyhow!(
                        "no progress from the SPU for {:.0} s while lanes are behind their input: {}; everything before is committed",
                        last_progress.elapsed().as_secs_f64(),
                        behind.join(", ")
                    ));
                    break;
                }
            }
        }
        let due = match select(merged.next(), &mut timer).await {
            Either::Left((Some((index, item)), _)) => {
                last_record = Instant::now();
                let lane = &lanes[index];
                let record = match item {
                    Some(Ok(record)) => record,
                    Some(Err(ErrorCode::SmartModuleRuntimeError(error)))
                        if error.offset >= 0
                            && !lane.position.skipped.contains(&(error.offset as u64)) =>
                    {
                        let offset = error.offset as u64;
                        let (record, record_base64) = record_text(error.record_value.as_ref());
                        tracing::warn!(
                            stream = lane.stream.name(),
                            partition = lane.partition,
                            offset,
                            "a module failed on this record: dead-lettered, the lanes go on without it: {}",
                            error.hint
                        );
                        commits.dead.push(ModuleFailure {
                            stream: lane.stream.name(),
                            topic: lane.source.clone(),
                            partition: lane.partition,
                            offset,
                            reason: "module_failed",
                            message: error.hint.clone(),
                            record,
                            record_base64,
                        });
                        let lane = &mut lanes[index];
                        lane.position.skipped.push(offset);
                        lane.position.skipped.sort_unstable();
                        report.dead_lettered += 1;
                        dead_lettered = true;
                        break;
                    }
                    Some(Err(ErrorCode::SmartModuleNotFound { name })) => {
                        missing = Some(name);
                        break;
                    }
                    Some(Err(ErrorCode::Other(message))) if trap::is_trap(&message) => {
                        trapped = Some(Trap {
                            stream: lane.stream,
                            partition: lane.partition,
                            from: lane.read_to,
                            message,
                        });
                        break;
                    }
                    Some(Err(e)) => {
                        failure = Some(anyhow::anyhow!(
                            "the {} chain failed in the SPU on partition {} of {}, in the input from offset {} on (every batch before it is done and committed): {e}",
                            lane.stream.name(),
                            lane.partition,
                            lane.source,
                            lane.read_to
                        ));
                        break;
                    }
                    None => {
                        failure = Some(anyhow::anyhow!(
                            "the stream of the {} chain on partition {} ended (connection to the SPU lost?); everything before is committed: run materialize again to go on",
                            lane.stream.name(),
                            lane.partition
                        ));
                        break;
                    }
                };
                let lane = &mut lanes[index];
                let key = record.record.key.as_ref().map(|k| k.as_ref());
                let value = record.record.value.as_ref();
                if let Some(progress) = read_progress(key, value) {
                    if let Err(e) = lane.batch_end(progress.first, progress.end, progress.tail) {
                        failure = Some(e);
                        break;
                    }
                    last_progress = Instant::now();
                    continue;
                }
                if let Some(tracker) = &mut lane.tracker {
                    tracker.record(value);
                }
                if lane.replay_to.is_some() {
                    // Before the resume point: the replay that rebuilds the state.
                    *report.replayed.entry(lane.stream.name()).or_default() += 1;
                    continue;
                }
                lane.past_mark += 1;
                if lane.skip > 0 {
                    lane.skip -= 1;
                    *report.replayed.entry(lane.stream.name()).or_default() += 1;
                    continue;
                }
                let rows = parse_rows(lane.stream, [value])?;
                lane.position.produced += 1;
                *report.records.entry(lane.stream.name()).or_default() += 1;
                if lane.already > 0 {
                    lane.already -= 1;
                } else {
                    let key = match &record.record.key {
                        Some(key) => RecordKey::from(key.as_ref().to_vec()),
                        None => RecordKey::NULL,
                    };
                    let output =
                        lane.producer
                            .send(key, value.to_vec())
                            .await
                            .with_context(|| {
                                format!("producing to {}", topics::derived(lane.stream))
                            })?;
                    commits.outputs.push(output);
                }
                if let (Stream::Anomalies, Rows::Ticks(anomalies)) = (lane.stream, &rows) {
                    let alerts = &mut alert_lanes[lane.partition as usize];
                    let mut closed = Vec::new();
                    for row in anomalies {
                        let Some(z) = row.z else { continue };
                        let tick = FlaggedTick {
                            ts: row.ts,
                            price: row.price,
                            z,
                        };
                        closed.extend(alerts.episodes.observe(&row.symbol, tick).closed);
                        let watermark = alerts.state.watermark.map_or(row.ts, |w| w.max(row.ts));
                        alerts.state.watermark = Some(watermark);
                        closed.extend(alerts.episodes.close_before(watermark));
                    }
                    for alert in closed {
                        alerts.state.produced += 1;
                        *report.records.entry(Stream::Alerts.name()).or_default() += 1;
                        if alerts.already > 0 {
                            alerts.already -= 1;
                        } else {
                            let output = alerts
                                .producer
                                .send(
                                    RecordKey::from(alert.symbol.as_bytes().to_vec()),
                                    alert_json(&alert, false),
                                )
                                .await
                                .with_context(|| format!("producing to {alerts_topic}"))?;
                            commits.outputs.push(output);
                        }
                        commits.rows[Stream::Alerts.index()]
                            .push(Rows::Alerts(vec![AlertRow::from(&alert)]));
                    }
                }
                commits.rows[lane.stream.index()].push(rows);
                commits.records += 1;
                commits.records >= config.commit_records
            }
            Either::Left((None, _)) => break,
            Either::Right(_) => {
                timer = Box::pin(sleep(Duration::from_millis(200)));
                commits.records > 0 && commits.last.elapsed() >= config.commit_interval
            }
        };
        if due {
            commits.commit(&mut lanes, &alert_lanes).await?;
        }
    }
    // What was handled before a failure is consistent: commit it, then report the failure.
    if commits.records > 0 || commits.committed.commits == 0 || dead_lettered {
        commits.commit(&mut lanes, &alert_lanes).await?;
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    report.commits = commits.count;
    if let Some(trap) = trapped {
        return Ok(Outcome::Trapped(report, trap));
    }
    Ok(match missing {
        Some(module) => Outcome::ModuleMissing(report, module),
        None if dead_lettered => Outcome::DeadLettered(report),
        None => Outcome::Done(report),
    })
}

/// A record a module failed on, as written under `dead_letter/`.
#[derive(Debug, Serialize)]
struct ModuleFailure {
    stream: &'static str,
    topic: String,
    partition: u32,
    offset: u64,
    reason: &'static str,
    message: String,
    /// The record as text (invalid UTF-8 replaced)...
    record: String,
    /// ...and its exact bytes when they are not UTF-8, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    record_base64: Option<String>,
}

/// What the next commit covers, and where commits go.
struct Committer {
    store: Outputs,
    lock: OutputsLock,
    committed: Checkpoint,
    rows: Vec<Partitioned>,
    partition: PartitionBy,
    /// Acknowledgements of the derived records sent since the last commit.
    outputs: Vec<ProduceOutput>,
    /// Records modules failed on since the last commit.
    dead: Vec<ModuleFailure>,
    records: u64,
    last: Instant,
    /// Commits by this process.
    count: u64,
}

impl Committer {
    /// Makes everything pending durable: the derived records acknowledged, the files
    /// published, then the checkpoint.
    async fn commit(
        &mut self,
        lanes: &mut [Lane],
        alert_lanes: &[AlertLane],
    ) -> anyhow::Result<()> {
        for lane in lanes.iter() {
            lane.producer
                .flush()
                .await
                .with_context(|| format!("flushing {}", topics::derived(lane.stream)))?;
        }
        for lane in alert_lanes {
            lane.producer
                .flush()
                .await
                .with_context(|| format!("flushing {}", topics::derived(Stream::Alerts)))?;
        }
        for output in self.outputs.drain(..) {
            output
                .wait()
                .await
                .context("a derived record was not acknowledged")?;
        }
        let number = self.committed.commits;
        let mut staging = self.store.stage();
        let mut files = Vec::new();
        let mut next = self.committed.clone();
        next.partition = decide_granularity(self.committed.partition, self.partition, &self.rows);
        for partitioned in self.rows.iter_mut() {
            let stream = partitioned.stream;
            *next.rows.entry(stream.name().to_owned()).or_default() += partitioned.len() as u64;
            let Some(granularity) = next.partition else {
                break;
            };
            for (key, rows) in partitioned.take(granularity) {
                let relative = format!(
                    "{}/{}/{}",
                    stream.dir(),
                    granularity.dir(key),
                    part_name(number, number + 1, "parquet")
                );
                files.push((staging.create(&relative)?, rows));
            }
        }
        let mut published = write_parquet_files(files)?;
        if !self.dead.is_empty() {
            let relative = format!(
                "{DEAD_LETTER_DIR}/{}",
                part_name(number, number + 1, "jsonl")
            );
            let mut out = staging.create(&relative)?;
            for dead in self.dead.drain(..) {
                serde_json::to_writer(&mut out, &dead)?;
                out.write_all(b"\n")?;
            }
            published.push(out.finish()?);
        }
        next.files += published.len() as u64;
        self.lock.check()?;
        staging.publish()?;
        let mut mark = next.manifest_mark();
        self.store
            .append_manifest(&mut mark, (number, number + 1), &published)?;
        next.manifest_len = mark.len;
        next.manifest_bytes = mark.bytes;
        next.commits += 1;
        next.lanes.clear();
        for lane in lanes.iter_mut() {
            let list = next.lanes.entry(lane.stream.name().to_owned()).or_default();
            debug_assert_eq!(list.len(), lane.partition as usize);
            let mut position = lane.position.clone();
            // Mid-replay, the lane is not yet where the last commit left it.
            if lane.skip == 0 && lane.replay_to.is_none() {
                position.read_to = Some(lane.read_to);
                position.past_mark = lane.past_mark;
                position.resume = lane.resume_point();
                lane.position.resume = position.resume.clone();
            }
            list.push(position);
        }
        next.alerts = alert_lanes
            .iter()
            .map(|lane| AlertLaneState {
                open: lane.episodes.open().map(OpenAlert::from).collect(),
                ..lane.state.clone()
            })
            .collect();
        self.lock.check()?;
        self.store.save_json(CHECKPOINT_FILE, &next)?;
        self.committed = next;
        self.records = 0;
        self.last = Instant::now();
        self.count += 1;
        tracing::debug!(commit = number, "committed");
        Ok(())
    }
}

fn load_chains(dir: &Path) -> anyhow::Result<Vec<(Stream, ChainSpec)>> {
    Stream::ALL
        .iter()
        .map(|stream| {
            let path = dir.join(stream.transforms_file());
            let spec = ChainSpec::from_file(&path)
                .with_context(|| format!("the {} chain", stream.name()))?;
            Ok((*stream, spec))
        })
        .collect()
}

/// The steps and their parameters (not the lookback, which changes no output).
fn fingerprint(spec: &ChainSpec) -> String {
    spec.steps
        .iter()
        .map(|s| format!("{} {:?}", s.uses, s.params))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// [`invocations`] plus the reserved parameters of a bounded, observable read
/// (`stockstream_smartmodule::Session`): every module may mark each input batch's end (only the
/// first one does; the others pass its mark on), and the last refuses to give one fetch more
/// output than `fetch_bytes` (an SPU would drop such a fetch without a word).
pub fn invocations_reporting(spec: &ChainSpec, fetch_bytes: u32) -> Vec<SmartModuleInvocation> {
    let mut chain = invocations(spec);
    let last = chain.len().saturating_sub(1);
    for (i, invocation) in chain.iter_mut().enumerate() {
        invocation
            .params
            .insert(PROGRESS_PARAM.to_owned(), "true".to_owned());
        if i == last {
            invocation
                .params
                .insert(MAX_OUTPUT_PARAM.to_owned(), fetch_bytes.to_string());
        }
    }
    chain
}

/// [`invocations_reporting`], with the seed of a bounded restart given to the stateful step
/// (`(step index, resume point)`), and the input offsets the chain must leave out (records a
/// module failed on) and, with `skip_from`, every offset from there on.
pub fn invocations_resuming(
    spec: &ChainSpec,
    fetch_bytes: u32,
    resume: Option<(usize, &ResumePoint)>,
    skip: &[u64],
    skip_from: Option<u64>,
) -> Vec<SmartModuleInvocation> {
    let mut chain = invocations_reporting(spec, fetch_bytes);
    if !skip.is_empty() || skip_from.is_some() {
        let offsets = skip
            .iter()
            .map(u64::to_string)
            .chain(skip_from.map(|from| format!("{from}..")))
            .collect::<Vec<_>>()
            .join(" ");
        for invocation in &mut chain {
            invocation
                .params
                .insert(SKIP_PARAM.to_owned(), offsets.clone());
        }
    }
    if let Some((step, point)) = resume {
        let params = &mut chain[step].params;
        for (name, value) in resume_params(&point.seed) {
            params.insert(name, value);
        }
    }
    chain
}

/// The topic a stream's chain reads: anomalies are scored from stock-enriched (no rolling
/// statistics twice); the other chains read the raw ticks.
fn source_topic(config: &MaterializeConfig, stream: Stream) -> String {
    match stream.input() {
        Some(input) => topics::derived(input).to_owned(),
        None => config.raw_topic.clone(),
    }
}

/// Where a lane's chain starts reading its input, and how.
struct LaneStart<'a> {
    /// The input offset the consumer starts at.
    resume_at: u64,
    /// The committed `read_to` when the chain replays input before it to rebuild its state.
    replay_to: Option<u64>,
    /// The resume point whose seed the stateful step gets.
    point: Option<&'a ResumePoint>,
}

impl<'a> LaneStart<'a> {
    /// A chain of stateless modules restarts where it stopped; a stateful one from its resume
    /// point, or else from the partition's start (see the module documentation).
    fn of(position: &'a LanePosition, replay: &ChainReplay) -> Self {
        let (resume_at, replay_to, point) = match (position.read_to, &position.resume) {
            (Some(read_to), _) if replay.kind == ReplayKind::Stateless => (read_to, None, None),
            (Some(read_to), Some(point)) if point.from <= read_to => {
                (point.from, Some(read_to), Some(point))
            }
            _ => (0, None, None),
        };
        Self {
            resume_at,
            replay_to,
            point,
        }
    }
}

/// A lane's chain and what it reads.
#[derive(Clone, Copy)]
struct ChainInput<'a> {
    stream: Stream,
    spec: &'a ChainSpec,
    replay: &'a ChainReplay,
    source: &'a str,
    partition: u32,
}

type ChainStream = Pin<Box<dyn FuturesStream<Item = Result<ConsumerRecord, ErrorCode>>>>;

/// A consumer of the chain's output in the SPU from `start`, leaving out the `skipped` input
/// offsets and, with `skip_from`, every offset from there on.
async fn open_chain(
    fluvio: &Fluvio,
    config: &MaterializeConfig,
    chain: ChainInput<'_>,
    start: &LaneStart<'_>,
    skipped: &[u64],
    skip_from: Option<u64>,
) -> anyhow::Result<ChainStream> {
    let consumer = fluvio
        .consumer_with_config(
            ConsumerConfigExtBuilder::default()
                .topic(chain.source.to_owned())
                .partition(chain.partition)
                .offset_start(Offset::absolute(start.resume_at as i64).context("resume offset")?)
                // Bounded: the SPU runs the chain over one fetch's worth of input at a time.
                // The batch at a cut is sent again and the modules answer it from their last
                // call (`stockstream_smartmodule::entry::LastCall`).
                .max_bytes(config.fetch_bytes as i32)
                // The client would reconnect from after the last record's offset, which after
                // a filtered tick is not its input's; the new stream would start a fresh chain
                // mid-partition. Fail instead: a restart resumes exactly.
                .retry_mode(RetryMode::Disabled)
                .smartmodule(invocations_resuming(
                    chain.spec,
                    config.fetch_bytes,
                    chain.replay.stateful_step().zip(start.point),
                    skipped,
                    skip_from,
                ))
                .build()
                .context("consumer settings")?,
        )
        .await
        .with_context(|| {
            format!(
                "cannot consume {} partition {} through the {} chain (are the modules registered? `stockstream setup`)",
                chain.source,
                chain.partition,
                chain.stream.name()
            )
        })?;
    Ok(Box::pin(consumer))
}

/// The lanes that have not read their input partition to its end, as text.
async fn lanes_behind(fluvio: &Fluvio, lanes: &[Lane]) -> anyhow::Result<Vec<String>> {
    let mut behind = Vec::new();
    for lane in lanes {
        let end = end_offset(fluvio, &lane.source, lane.partition).await?;
        if lane.read_to < end {
            behind.push(format!(
                "the {} chain read partition {} of {} to offset {} of {end}",
                lane.stream.name(),
                lane.partition,
                lane.source,
                lane.read_to
            ));
        }
    }
    Ok(behind)
}

/// The chain as SmartModule invocations, as `fluvio consume --transforms-file` sends them but
/// without `lookback` (see the module documentation).
pub fn invocations(spec: &ChainSpec) -> Vec<SmartModuleInvocation> {
    let name = spec
        .steps
        .iter()
        .map(|s| s.uses.as_str())
        .collect::<Vec<_>>()
        .join(",");
    spec.steps
        .iter()
        .map(|step| predefined(&step.uses, step.params.clone(), &name))
        .collect()
}

/// One registered module (`group/name@version`) invoked with `params`, in the chain `name`.
pub fn predefined(
    uses: &str,
    params: BTreeMap<String, String>,
    name: &str,
) -> SmartModuleInvocation {
    SmartModuleInvocation {
        wasm: SmartModuleInvocationWasm::Predefined(uses.to_owned()),
        kind: SmartModuleKind::Generic(Default::default()),
        params: SmartModuleExtraParams::new(params, None),
        name: Some(name.to_owned()),
    }
}

/// Partitions of a topic.
pub async fn topic_partitions(fluvio: &Fluvio, topic: &str) -> anyhow::Result<u32> {
    let admin = fluvio.admin().await;
    let found = admin
        .list::<TopicSpec, String>(vec![topic.to_owned()])
        .await
        .with_context(|| format!("looking up topic {topic}"))?;
    found
        .into_iter()
        .find(|t| t.name == topic)
        .map(|t| t.spec.replicas().partitions())
        .ok_or_else(|| {
            anyhow::anyhow!("topic {topic} does not exist (`stockstream setup` creates it)")
        })
}

/// The next offset of a partition (its number of records, retention aside).
pub async fn end_offset(fluvio: &Fluvio, topic: &str, partition: u32) -> anyhow::Result<u64> {
    // From the end, the SPU sends only the last batch.
    let last = offset_at(
        fluvio,
        topic,
        partition,
        Offset::from_end(1),
        crate::READ_MAX_BYTES,
    )
    .await?;
    Ok(last.map_or(0, |offset| offset as u64 + 1))
}

/// The first offset a partition still holds (0 unless retention removed records).
pub async fn first_offset(fluvio: &Fluvio, topic: &str, partition: u32) -> anyhow::Result<u64> {
    let first = offset_at(
        fluvio,
        topic,
        partition,
        Offset::beginning(),
        // Not the whole partition for one offset: the first batch is far smaller.
        DEFAULT_FETCH_BYTES as i32,
    )
    .await?;
    Ok(first.map_or(0, |offset| offset as u64))
}

/// The offset of the record at `start` in a partition, if there is one.
async fn offset_at(
    fluvio: &Fluvio,
    topic: &str,
    partition: u32,
    start: Offset,
    max_bytes: i32,
) -> anyhow::Result<Option<i64>> {
    let mut stream = fluvio
        .consumer_with_config(
            ConsumerConfigExtBuilder::default()
                .topic(topic.to_owned())
                .partition(partition)
                .offset_start(start)
                .disable_continuous(true)
                .max_bytes(max_bytes)
                .build()
                .context("consumer settings")?,
        )
        .await
        .with_context(|| format!("reading {topic} partition {partition}"))?;
    match stream.next().await {
        Some(Ok(record)) => Ok(Some(record.offset)),
        Some(Err(e)) => Err(anyhow::anyhow!(
            "reading {topic} partition {partition}: {e:?}"
        )),
        None => Ok(None),
    }
}
