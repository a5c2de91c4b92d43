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

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fluvio_protocol::record::{Record, RecordKey};
use fluvio_smartengine::Lookback;
use stockstream_core::bars::{Admission, BarsConfig, Watermark};
use stockstream_core::tick::{parse_tick, Watchlist};
use stockstream_runner::{Chain, ChainSpec, SmartEngine, WasmLocator};
use stockstream_ticks::{InputItem, Pacer};

use crate::checkpoint::{self, Checkpoint, Counts, InputIdentity, PrefixHash};
use crate::commit::{self, part_name, DirLock, Staged};
use crate::dashboard::{DashboardFeed, DerivedBatch, FeedStats};
use crate::dates::partition_dir;
use crate::outputs::{parse_rows, Partitioned, Rows, Stream};
use crate::parquet_io::write_rows;
use crate::replay::{ChainReplay, ReplayPlanner};
use crate::source::{self, Source, Speed};

/// Directory of the dead-letter files under the outputs root.
pub const DEAD_LETTER_DIR: &str = "dead_letter";

/// Settings of one run. Defaults in [`RunConfig::new`].
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub source: Source,
    pub speed: Speed,
    /// Root of the outputs (`outputs/`).
    pub outputs: PathBuf,
    /// Directory holding enriched.yaml, anomalies.yaml and bars-5m.yaml.
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
}

impl RunConfig {
    pub fn new(
        source: Source,
        outputs: PathBuf,
        transforms_dir: PathBuf,
        wasm: WasmLocator,
    ) -> Self {
        Self {
            source,
            speed: Speed::Max,
            outputs,
            transforms_dir,
            wasm,
            batch_size: 4096,
            commit_records: 200_000,
            commit_interval: Duration::from_secs(10),
            max_reported: 50,
            dashboard: None,
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
}

impl Report {
    /// The closing summary line of a run whose outputs are under `outputs`.
    pub fn summary(&self, outputs: &Path) -> String {
        let report = self;
        let c: &Counts = &report.counts;
        let seconds = report.elapsed.as_secs_f64();
        let mut line = format!(
            "run: {} records in ({} this run), {} invalid, {} failed, {} late, {} late for bars, {} anomalies; {} enriched, {} anomaly and {} bar rows in {} files over {} commits under {} in {:.2} s ({:.0} records/s)",
            c.records_in,
            report.records_this_run,
            c.invalid_total(),
            c.failed,
            c.late,
            c.late_bars,
            c.anomaly_rows,
            c.enriched_rows,
            c.anomaly_rows,
            c.bar_rows,
            c.files,
            c.commits,
            outputs.display(),
            seconds,
            report.records_this_run as f64 / seconds.max(1e-9)
        );
        if !c.invalid.is_empty() {
            let reasons: Vec<String> = c.invalid.iter().map(|(r, n)| format!("{r}={n}")).collect();
            line.push_str(&format!("; invalid by reason: {}", reasons.join(", ")));
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

/// The chains of a run, read from the transforms directory.
struct Chains {
    specs: Vec<ChainSpec>,
    replay: Vec<ChainReplay>,
    fingerprints: BTreeMap<String, String>,
    /// Per chain: the bars watermark the host keeps to count late ticks (window-bars chains).
    bars: Vec<Option<(Option<Watchlist>, BarsConfig)>>,
}

impl Chains {
    fn load(dir: &Path, wasm: &WasmLocator) -> anyhow::Result<Self> {
        let mut specs = Vec::new();
        let mut replay = Vec::new();
        let mut fingerprints = BTreeMap::new();
        let mut bars = Vec::new();
        for stream in Stream::ALL {
            let path = dir.join(stream.transforms_file());
            let mut spec = ChainSpec::from_file(&path)
                .with_context(|| format!("the {} chain", stream.name()))?;
            // The host decides what each stateful step replays (crate::replay); the engine
            // only calls look_back on steps that have a lookback setting.
            for step in &mut spec.steps {
                if step.lookback.is_none() {
                    step.lookback = Some(Lookback::Last(u64::MAX));
                }
            }
            // The steps, their parameters and the exact .wasm builds: a restart with anything
            // else would not give the rows of an uninterrupted run.
            let mut steps = Vec::new();
            for step in &spec.steps {
                let path = wasm.find(step)?;
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let mut hash = PrefixHash::default();
                hash.update(&bytes);
                steps.push(format!(
                    "{} {:?} wasm:{}",
                    step.uses,
                    step.params,
                    hash.hex()
                ));
            }
            fingerprints.insert(stream.name().to_owned(), steps.join(" | "));
            replay.push(ChainReplay::for_chain(&spec)?);
            bars.push(spec.step("window-bars").map(|step| {
                let config = BarsConfig::from_params(|n| step.params.get(n).map(String::as_str))
                    .expect("validated when read");
                let watchlist = spec
                    .step("tick-filter")
                    .and_then(|f| {
                        Watchlist::from_param(f.params.get("symbols").map(String::as_str)).ok()
                    })
                    .flatten();
                (watchlist, config)
            }));
            specs.push(spec);
        }
        Ok(Self {
            specs,
            replay,
            fingerprints,
            bars,
        })
    }
}

/// The host's count of ticks window-bars leaves out (below its watermark on arrival).
struct BarsLateness {
    watchlist: Option<Watchlist>,
    watermark: Watermark,
}

impl BarsLateness {
    fn is_late(&mut self, symbol: &str, ts: i64) -> bool {
        if self.watchlist.as_ref().is_some_and(|w| !w.contains(symbol)) {
            return false;
        }
        matches!(self.watermark.admit(ts), Admission::Late { .. })
    }
}

/// An invalid record, as written to the dead-letter file.
#[derive(serde::Serialize)]
struct DeadLetter {
    offset: u64,
    line: u64,
    reason: String,
    message: String,
    record: String,
}

/// One batch of input on its way through the chains, with what the host learnt reading it.
struct BatchMeta {
    first_offset: u64,
    end_offset: u64,
    /// Line of each record sent to the chains, for failure messages.
    lines: Vec<u64>,
    last_line: u64,
    hash: PrefixHash,
    max_ts: Option<i64>,
    dead: Vec<DeadLetter>,
    counts: Counts,
}

/// What a chain made of one batch.
struct ChainOutput {
    rows: Rows,
    failures: Vec<(usize, String)>,
    raw: Option<Vec<Vec<u8>>>,
}

/// Work for a chain's thread, in order.
enum Job {
    /// Rebuild state from these earlier records (always the first job, possibly empty).
    LookBack(Vec<Vec<u8>>),
    Batch(Arc<Vec<Record>>),
}

struct Worker {
    stream: Stream,
    jobs: SyncSender<Job>,
    /// `None` acknowledges a look-back.
    results: Receiver<anyhow::Result<Option<ChainOutput>>>,
}

/// Batches in flight before the reader waits for the oldest.
const PIPELINE_DEPTH: usize = 3;
/// Records per `look_back` call (the engine copies each call's records into WASM memory).
const LOOK_BACK_CHUNK: usize = 50_000;

/// Starts a chain on its own thread: compiling the modules (the slow part of a start) happens
/// there, in parallel with the other chains and with the re-reading of the input.
fn spawn_worker<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    stream: Stream,
    spec: ChainSpec,
    engine: SmartEngine,
    wasm: WasmLocator,
    keep_raw: bool,
) -> Worker {
    let (jobs, job_rx) = sync_channel::<Job>(PIPELINE_DEPTH);
    let (result_tx, results) = sync_channel(PIPELINE_DEPTH + 1);
    std::thread::Builder::new()
        .name(format!("chain-{}", stream.name()))
        .spawn_scoped(scope, move || {
            let mut chain = match spec
                .instantiate(&engine, &wasm)
                .with_context(|| format!("starting the {} chain", stream.name()))
            {
                Ok(chain) => chain,
                Err(e) => {
                    let _ = result_tx.send(Err(e));
                    return;
                }
            };
            for job in job_rx {
                let result = match job {
                    Job::LookBack(records) => look_back(&mut chain, records)
                        .with_context(|| format!("rebuilding the {} chain's state", stream.name()))
                        .map(|()| None),
                    Job::Batch(batch) => process(&mut chain, stream, &batch, keep_raw).map(Some),
                };
                let failed = result.is_err();
                if result_tx.send(result).is_err() || failed {
                    break;
                }
            }
        })
        .expect("threads can be spawned");
    Worker {
        stream,
        jobs,
        results,
    }
}

fn look_back(chain: &mut Chain, records: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let mut records = records.into_iter().peekable();
    while records.peek().is_some() {
        let chunk: Vec<Record> = records
            .by_ref()
            .take(LOOK_BACK_CHUNK)
            .map(|value| {
                let key = parse_tick(&value)
                    .map(|t| RecordKey::from(t.symbol.as_bytes().to_vec()))
                    .unwrap_or(RecordKey::NULL);
                Record::new_key_value(key, value)
            })
            .collect();
        chain.look_back(chunk)?;
    }
    Ok(())
}

fn process(
    chain: &mut Chain,
    stream: Stream,
    batch: &[Record],
    keep_raw: bool,
) -> anyhow::Result<ChainOutput> {
    let output = chain.process(batch.to_vec())?;
    let rows = parse_rows(stream, output.records.iter().map(|r| r.value.as_ref()))?;
    let raw = keep_raw.then(|| {
        output
            .records
            .iter()
            .map(|r| r.value.as_ref().to_vec())
            .collect()
    });
    let failures = output
        .failures
        .into_iter()
        .map(|f| (f.index, f.hint))
        .collect();
    Ok(ChainOutput {
        rows,
        failures,
        raw,
    })
}

/// Runs the pipeline until the input ends or `stop` is set.
pub fn run(
    config: &RunConfig,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<Report> {
    let started = Instant::now();
    source::check(&config.source)?;
    let chains = Chains::load(&config.transforms_dir, &config.wasm)?;
    let root = config.outputs.clone();
    let _lock = DirLock::acquire(&root)?;
    let checkpoint_path = root.join(checkpoint::FILE_NAME);
    let previous = Checkpoint::load(&checkpoint_path)?;
    if let Some(previous) = &previous {
        for (stream, fingerprint) in &chains.fingerprints {
            if previous.chains.get(stream) != Some(fingerprint) {
                anyhow::bail!(
                    "the outputs in {} were made by a different {stream} chain ({} now, {} then); use another --outputs directory, or remove {} to start over",
                    root.display(),
                    fingerprint,
                    previous.chains.get(stream).map_or("none", String::as_str),
                    root.display()
                );
            }
        }
    }
    if previous.is_some() && matches!(config.source, Source::Stream { journal: None, .. }) {
        anyhow::bail!(
            "{} holds the outputs of an earlier run, and a stream of records ({}) cannot be read again to resume it; use another outputs directory, or remove this one",
            root.display(),
            config.source.describe()
        );
    }
    let committed = previous.as_ref().map_or(0, |c| c.offset);
    let mut dirs: Vec<PathBuf> = Stream::ALL.iter().map(|s| root.join(s.dir())).collect();
    dirs.push(root.join(DEAD_LETTER_DIR));
    let orphans_removed = commit::remove_orphans(&dirs, committed)?;
    remove_stale_temp_files(&root)?;
    for dir in &dirs[..Stream::ALL.len()] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if previous.is_none() && orphans_removed > 0 {
        tracing::warn!(
            orphans_removed,
            "removed part files left without a checkpoint in {}",
            root.display()
        );
    }
    let input = source::open(&config.source)?;
    let engine = SmartEngine::new();
    let keep_raw = config.dashboard.is_some();

    std::thread::scope(|scope| {
        let workers: Vec<Worker> = Stream::ALL
            .iter()
            .zip(&chains.specs)
            .map(|(stream, spec)| {
                spawn_worker(
                    scope,
                    *stream,
                    spec.clone(),
                    engine.clone(),
                    config.wasm.clone(),
                    keep_raw,
                )
            })
            .collect();
        let (reader, replayed) = restart(config, &chains, previous.as_ref(), input, &workers)?;
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
            root: root.clone(),
            checkpoint_path,
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
            }),
            pending: Stream::ALL.map(Partitioned::new),
            pending_dead: Vec::new(),
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
        let (outcome, state, records_this_run) =
            main_loop(state, reader, workers, stop, started, on_event)?;
        Ok(Report {
            outcome,
            counts: state.committed.counts.clone(),
            records_this_run,
            elapsed: started.elapsed(),
            resume,
            offset: state.committed.offset,
            feed: state.feed,
        })
    })
}

/// Re-reads the input up to the checkpoint (checking it is the same input), hands each chain
/// the records its state needs, and waits until every chain has started and replayed them.
fn restart(
    config: &RunConfig,
    chains: &Chains,
    previous: Option<&Checkpoint>,
    mut input: source::Records,
    workers: &[Worker],
) -> anyhow::Result<(Reader, BTreeMap<String, u64>)> {
    let mut planner = ReplayPlanner::new(chains.replay.clone());
    let mut hash = PrefixHash::default();
    let mut bars_lateness: Vec<Option<BarsLateness>> = chains
        .bars
        .iter()
        .map(|b| {
            b.as_ref().map(|(watchlist, config)| BarsLateness {
                watchlist: watchlist.clone(),
                watermark: Watermark::new(config.lateness_ms),
            })
        })
        .collect();
    let mut line = 0;
    if let Some(previous) = previous {
        for position in 0..previous.offset {
            // A journal that ends before the checkpoint's position has nothing more to replay.
            let item = match input.next().transpose() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                other => other?,
            };
            let item = item.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has {position} records but the checkpoint in {} covers {}: it is not the input this run started with; use another --outputs directory",
                    config.source.describe(),
                    config.outputs.display(),
                    previous.offset
                )
            })?;
            match item {
                InputItem::Record { line: l, value } => {
                    hash.update(&value);
                    planner.observe(&value);
                    line = l;
                }
                InputItem::Unreadable { line: l, raw, .. } => {
                    hash.update(raw.as_bytes());
                    line = l;
                }
            }
        }
        anyhow::ensure!(
            hash.hex() == previous.input.prefix_hash,
            "the first {} records of {} differ from the ones the checkpoint in {} was made from; use another --outputs directory",
            previous.offset,
            config.source.describe(),
            config.outputs.display()
        );
        for (lateness, max_ts) in bars_lateness.iter_mut().zip(planner.bars_max_ts()) {
            if let (Some(lateness), Some(max_ts)) = (lateness, max_ts) {
                lateness.watermark.admit(max_ts);
            }
        }
    }
    let mut replayed = BTreeMap::new();
    for (worker, set) in workers.iter().zip(planner.finish()) {
        replayed.insert(worker.stream.name().to_owned(), set.len() as u64);
        // A worker that failed to start has already sent its error: it is read below.
        let _ = worker.jobs.send(Job::LookBack(set));
    }
    for worker in workers {
        worker
            .results
            .recv()
            .map_err(|_| anyhow::anyhow!("the {} chain stopped", worker.stream.name()))??;
    }
    let reader = Reader {
        input,
        pacer: Pacer::new(config.speed),
        held: None,
        offset: previous.map_or(0, |c| c.offset),
        line,
        hash,
        bars_lateness,
        reported: previous.map_or(0, |c| c.counts.invalid_total() + c.counts.failed),
    };
    Ok((reader, replayed))
}

fn remove_stale_temp_files(root: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Reads input records into batches.
struct Reader {
    input: source::Records,
    /// Releases records at their event time's pace (`--speed`).
    pacer: Pacer,
    /// A record read but not yet due: the batch before it went to the chains first.
    held: Option<InputItem>,
    /// Position of the next record.
    offset: u64,
    line: u64,
    hash: PrefixHash,
    bars_lateness: Vec<Option<BarsLateness>>,
    /// Invalid records reported so far (over the whole run).
    reported: u64,
}

impl Reader {
    /// The event time to pace `item` by, when pacing (valid ticks only).
    fn pacing_ts(&self, item: &InputItem) -> Option<i64> {
        if self.pacer.speed() == Speed::Max {
            return None;
        }
        match item {
            InputItem::Record { value, .. } => parse_tick(value).ok().map(|t| t.ts),
            InputItem::Unreadable { .. } => None,
        }
    }

    /// Reads up to `size` records; `None` at the end of the input.
    fn next_batch(
        &mut self,
        size: usize,
        stop: &AtomicBool,
        max_reported: u64,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> anyhow::Result<Option<Batch>> {
        let first_offset = self.offset;
        let mut records = Vec::with_capacity(size);
        let mut meta = BatchMeta {
            first_offset,
            end_offset: first_offset,
            lines: Vec::with_capacity(size),
            last_line: self.line,
            hash: self.hash,
            max_ts: None,
            dead: Vec::new(),
            counts: Counts::default(),
        };
        let mut report = |reported: &mut u64, line: u64, message: &str| {
            *reported += 1;
            if *reported <= max_reported {
                on_event(Event::Invalid { line, message });
            } else if *reported == max_reported + 1 {
                on_event(Event::InvalidReportsCapped);
            }
        };
        let mut idle = false;
        while records.len() < size && !stop.load(Ordering::Relaxed) {
            let item = match self.held.take() {
                Some(item) => item,
                None => match self.input.next().transpose() {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    // A live stream with nothing new yet: hand over what is read.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        idle = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            if let Some(ts) = self.pacing_ts(&item) {
                let due = self.pacer.due(ts).expect("paced");
                if Instant::now() < due {
                    // Hand what is read to the chains before waiting, so outputs and commits
                    // keep up with a slow replay; the record waits for the next batch.
                    if self.offset > first_offset || self.pacer.wait_unless(ts, stop).is_none() {
                        self.held = Some(item);
                        break;
                    }
                }
            }
            let offset = self.offset;
            self.offset += 1;
            meta.counts.records_in += 1;
            match item {
                InputItem::Unreadable {
                    line, reason, raw, ..
                } => {
                    self.hash.update(raw.as_bytes());
                    self.line = line;
                    *meta
                        .counts
                        .invalid
                        .entry("unreadable_row".into())
                        .or_default() += 1;
                    report(&mut self.reported, line, &format!("invalid row: {reason}"));
                    meta.dead.push(DeadLetter {
                        offset,
                        line,
                        reason: "unreadable_row".into(),
                        message: reason,
                        record: raw,
                    });
                }
                InputItem::Record { line, value } => {
                    self.hash.update(&value);
                    self.line = line;
                    match parse_tick(&value) {
                        Ok(tick) => {
                            for lateness in self.bars_lateness.iter_mut().flatten() {
                                if lateness.is_late(tick.symbol, tick.ts) {
                                    meta.counts.late_bars += 1;
                                }
                            }
                            meta.max_ts = Some(meta.max_ts.map_or(tick.ts, |m| m.max(tick.ts)));
                            let key = RecordKey::from(tick.symbol.as_bytes().to_vec());
                            records.push(Record::new_key_value(key, value));
                            meta.lines.push(line);
                        }
                        Err(reason) => {
                            // tick-filter would drop it: it never goes to the chains.
                            let message = reason.to_string();
                            *meta.counts.invalid.entry(reason.code().into()).or_default() += 1;
                            report(
                                &mut self.reported,
                                line,
                                &format!("invalid tick: {message}"),
                            );
                            meta.dead.push(DeadLetter {
                                offset,
                                line,
                                reason: reason.code().into(),
                                message,
                                record: String::from_utf8_lossy(&value).into_owned(),
                            });
                        }
                    }
                }
            }
        }
        if self.offset == first_offset {
            return Ok(if idle && !stop.load(Ordering::Relaxed) {
                Some(Batch::Idle)
            } else {
                None
            });
        }
        meta.end_offset = self.offset;
        meta.last_line = self.line;
        meta.hash = self.hash;
        Ok(Some(Batch::Records(records, meta)))
    }
}

/// What the reader has for the chains.
#[allow(clippy::large_enum_variant)] // one per batch of thousands of records: boxing buys nothing
enum Batch {
    Records(Vec<Record>, BatchMeta),
    /// Nothing yet from a live stream.
    Idle,
}

/// What is committed and what waits for the next commit.
struct State<'c> {
    config: &'c RunConfig,
    root: PathBuf,
    checkpoint_path: PathBuf,
    fingerprints: BTreeMap<String, String>,
    source_name: String,
    committed: Checkpoint,
    pending: [Partitioned; 3],
    pending_dead: Vec<DeadLetter>,
    pending_counts: Counts,
    /// Input position up to which batches have completed.
    pending_end: u64,
    pending_line: u64,
    pending_hash: PrefixHash,
    pending_max_ts: Option<i64>,
    last_commit: Instant,
    replayed: BTreeMap<String, u64>,
    feed: FeedStats,
}

impl State<'_> {
    fn pending_records(&self) -> u64 {
        self.pending_end - self.committed.offset
    }

    /// Takes in a completed batch.
    fn complete(
        &mut self,
        meta: BatchMeta,
        outputs: Vec<(Stream, ChainOutput)>,
        max_reported: u64,
        reported: &mut u64,
        on_event: &mut dyn FnMut(Event<'_>),
    ) {
        let mut counts = meta.counts;
        for (stream, output) in outputs {
            for (index, hint) in &output.failures {
                counts.failed += 1;
                *reported += 1;
                if *reported <= max_reported {
                    let line = meta.lines.get(*index).copied().unwrap_or(meta.last_line);
                    on_event(Event::Invalid {
                        line,
                        message: &format!("rejected by the {} chain: {hint}", stream.name()),
                    });
                }
            }
            match (&output.rows, stream) {
                (Rows::Ticks(rows), Stream::Enriched) => {
                    counts.enriched_rows += rows.len() as u64;
                    counts.late += rows.iter().filter(|r| r.late).count() as u64;
                }
                (rows, Stream::Anomalies) => counts.anomaly_rows += rows.len() as u64,
                (rows, _) => counts.bar_rows += rows.len() as u64,
            }
            if let (Some(feed), Some(records)) = (&self.config.dashboard, output.raw) {
                self.feed.offer(
                    feed,
                    DerivedBatch {
                        stream,
                        first_offset: meta.first_offset,
                        records,
                    },
                );
            }
            self.pending[stream.index()].push(output.rows);
        }
        merge_counts(&mut self.pending_counts, &counts);
        self.pending_dead.extend(meta.dead);
        self.pending_end = meta.end_offset;
        self.pending_line = meta.last_line;
        self.pending_hash = meta.hash;
        if let Some(ts) = meta.max_ts {
            self.pending_max_ts = Some(self.pending_max_ts.map_or(ts, |m| m.max(ts)));
        }
    }

    /// Writes everything completed as one commit, then the checkpoint.
    fn commit(
        &mut self,
        finished: bool,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> anyhow::Result<()> {
        let start = self.committed.offset;
        let end = self.pending_end;
        if start == end && (!finished || self.committed.finished) {
            return Ok(());
        }
        let mut staged = Staged::default();
        if end > start {
            let mut files = Vec::new();
            for pending in &mut self.pending {
                let dir = self.root.join(pending.stream.dir());
                for (day, rows) in pending.take() {
                    let path = dir
                        .join(partition_dir(day))
                        .join(part_name(start, end, "parquet"));
                    let out = staged
                        .create(path.clone())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    files.push((out, path, rows));
                }
            }
            write_parquet_files(files)?;
            if !self.pending_dead.is_empty() {
                let path = self
                    .root
                    .join(DEAD_LETTER_DIR)
                    .join(part_name(start, end, "jsonl"));
                let mut out = staged
                    .create(path.clone())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                for dead in self.pending_dead.drain(..) {
                    serde_json::to_writer(&mut out, &dead)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
        }
        let files = staged.len();
        staged
            .publish(&self.root)
            .with_context(|| format!("publishing files in {}", self.root.display()))?;
        let mut next = self.committed.clone();
        merge_counts(&mut next.counts, &std::mem::take(&mut self.pending_counts));
        if end > start {
            next.counts.commits += 1;
            next.counts.files += files as u64;
        }
        next.offset = end;
        next.line = self.pending_line;
        next.input = InputIdentity {
            source: self.source_name.clone(),
            prefix_hash: self.pending_hash.hex(),
        };
        next.chains = self.fingerprints.clone();
        next.max_ts = self.pending_max_ts;
        if !self.replayed.is_empty() {
            next.last_replay = self.replayed.clone();
        }
        next.finished = finished;
        if let Source::Stream {
            journal: Some(journal),
            ..
        } = &self.config.source
        {
            (journal.sync)().context("making the input journal durable")?;
        }
        next.save(&self.checkpoint_path)
            .with_context(|| format!("writing {}", self.checkpoint_path.display()))?;
        self.committed = next;
        self.last_commit = Instant::now();
        on_event(Event::Committed { offset: end, files });
        tracing::debug!(offset = end, files, "committed");
        Ok(())
    }

    fn totals(&self) -> Counts {
        let mut counts = self.committed.counts.clone();
        merge_counts(&mut counts, &self.pending_counts);
        counts
    }
}

/// Writes Parquet files on a few threads (a commit may hold thousands of small partitions,
/// or a few large ones; compression dominates either way).
pub fn write_parquet_files(mut files: Vec<(BufWriter<File>, PathBuf, Rows)>) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(files.len().max(1));
    // Largest first, dealt round-robin: the threads finish at about the same time.
    files.sort_by_key(|(_, _, rows)| std::cmp::Reverse(rows.len()));
    let mut shares: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, file) in files.into_iter().enumerate() {
        shares[i % threads].push(file);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for (out, path, rows) in share {
                        let mut out = write_rows(out, &rows)
                            .with_context(|| format!("writing {}", path.display()))?;
                        out.flush()
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("a writer thread panicked"))
    })
}

fn merge_counts(into: &mut Counts, from: &Counts) {
    into.records_in += from.records_in;
    for (reason, n) in &from.invalid {
        *into.invalid.entry(reason.clone()).or_default() += n;
    }
    into.failed += from.failed;
    into.late += from.late;
    into.late_bars += from.late_bars;
    into.enriched_rows += from.enriched_rows;
    into.anomaly_rows += from.anomaly_rows;
    into.bar_rows += from.bar_rows;
    into.files += from.files;
    into.commits += from.commits;
}

fn main_loop<'c>(
    mut state: State<'c>,
    mut reader: Reader,
    workers: Vec<Worker>,
    stop: &AtomicBool,
    started: Instant,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<(Outcome, State<'c>, u64)> {
    let config = state.config;
    let first_offset = reader.offset;
    let mut in_flight: VecDeque<BatchMeta> = VecDeque::new();
    let mut last_progress = Instant::now();
    let complete_oldest = |state: &mut State<'_>,
                           in_flight: &mut VecDeque<BatchMeta>,
                           reported: &mut u64,
                           on_event: &mut dyn FnMut(Event<'_>)|
     -> anyhow::Result<()> {
        let meta = in_flight.pop_front().expect("a batch in flight");
        let mut outputs = Vec::with_capacity(workers.len());
        for worker in &workers {
            let output = worker
                .results
                .recv()
                .map_err(|_| anyhow::anyhow!("the {} chain stopped", worker.stream.name()))?
                .with_context(|| format!("the {} chain", worker.stream.name()))?
                .expect("a batch's result");
            outputs.push((worker.stream, output));
        }
        state.complete(meta, outputs, config.max_reported, reported, on_event);
        Ok(())
    };
    let outcome = loop {
        let batch = reader.next_batch(config.batch_size, stop, config.max_reported, on_event)?;
        match batch {
            None => {
                break if stop.load(Ordering::Relaxed) {
                    Outcome::Stopped
                } else {
                    Outcome::Finished
                };
            }
            Some(Batch::Records(records, meta)) => {
                let records = Arc::new(records);
                for worker in &workers {
                    worker.jobs.send(Job::Batch(records.clone())).map_err(|_| {
                        anyhow::anyhow!("the {} chain stopped", worker.stream.name())
                    })?;
                }
                in_flight.push_back(meta);
                while in_flight.len() >= PIPELINE_DEPTH {
                    complete_oldest(&mut state, &mut in_flight, &mut reader.reported, on_event)?;
                }
            }
            // A quiet stream: finish what is in the chains, so it reaches the outputs (and
            // the dashboard) now rather than when more input comes.
            Some(Batch::Idle) => {
                while !in_flight.is_empty() {
                    complete_oldest(&mut state, &mut in_flight, &mut reader.reported, on_event)?;
                }
            }
        }
        let due = state.pending_records() >= config.commit_records
            || state.last_commit.elapsed() >= config.commit_interval;
        if due {
            state.commit(false, on_event)?;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            on_event(Event::Progress(&Progress {
                counts: state.totals(),
                records_this_run: reader.offset - first_offset,
                elapsed: started.elapsed(),
            }));
        }
    };
    while !in_flight.is_empty() {
        complete_oldest(&mut state, &mut in_flight, &mut reader.reported, on_event)?;
    }
    state.commit(outcome == Outcome::Finished, on_event)?;
    Ok((outcome, state, reader.offset - first_offset))
}
