//! `stockstream run`: the embedded pipeline (ticks through the enriched, anomalies and bars
//! chains in-process, Parquet under outputs/, resumable).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use stockstream_bridge::BridgeConfig;
use stockstream_dashboard::{Dashboard, DashboardConfig, RunCounts};
use stockstream_pipeline::alerts::webhook::WebhookConfig;
use stockstream_pipeline::dates::PartitionBy;
use stockstream_pipeline::rebuild::RebuildReport;
use stockstream_pipeline::run::{Event, Outcome, RunConfig};
use stockstream_pipeline::source::{ReplayControl, Source, Speed};
use stockstream_runner::WasmLocator;
use stockstream_ticks::InputFormat;

use super::bridge::KafkaArgs;
use super::store::StoreArgs;
use stockstream_pipeline::store::Outputs;

/// The sample data the README's main job runs on: 1-minute bars, naive New York times.
const DEFAULT_INPUT: &str = "data/intraday";
const DEFAULT_INPUT_TZ: &str = "America/New_York";
pub const DEFAULT_TRANSFORMS: &str = "transforms";
const DEFAULT_DASHBOARD: &str = "dashboard/dist";

#[derive(Args)]
pub struct RunArgs {
    /// Tick files (JSON lines, or CSV when the name ends in .csv; .gz read as gzip) or
    /// directories of them, merged by event time; repeatable [default: data/intraday, 1-minute
    /// bars, with --tz America/New_York --ohlc-bars auto]
    #[arg(long, value_name = "FILE|DIR", num_args = 1.., conflicts_with = "synthetic")]
    input: Vec<PathBuf>,
    /// Rows are OHLC bars of this length (a duration, or auto: the smallest spacing of the
    /// first timestamps), each ending at its timestamp: four ticks per bar, volume split exactly.
    #[arg(long, value_name = "LENGTH|auto")]
    ohlc_bars: Option<stockstream_ticks::BarLength>,
    /// Daily rows (date,open,high,low,close,...) become four ticks at 09:30, 11:40, 13:50, 16:00.
    #[arg(long)]
    ohlc_expand: bool,
    /// Time zone of naive timestamps (an IANA name) [default: UTC; America/New_York for the
    /// default input]
    #[arg(long, value_name = "ZONE", value_parser = stockstream_ticks::input::parse_tz)]
    tz: Option<stockstream_ticks::Tz>,
    /// Synthetic ticks (geometric Brownian motion with injected anomalies) instead of a file.
    #[arg(long)]
    synthetic: bool,
    #[command(flatten)]
    generator: SyntheticArgs,
    /// Replay pace: a factor of real event time (1 = real time, 100 = 100x) or `max`
    /// [default: max for files, 1 for --synthetic].
    #[arg(long, value_name = "X|max")]
    speed: Option<Speed>,
    #[command(flatten)]
    csv: producer::CsvArgs,
    /// Longest JSON line or CSV row (bytes); a longer one is dead-lettered as too_large without being
    /// held in memory.
    #[arg(long, value_name = "BYTES", default_value_t = stockstream_ticks::DEFAULT_MAX_RECORD_BYTES, value_parser = parse_record_limit)]
    max_record_bytes: usize,
    /// Read ticks from a Kafka topic through the bridge instead of a file (see the Kafka
    /// options); the run resumes where it stopped, with exactly-once outputs.
    #[arg(long, conflicts_with_all = ["input", "synthetic"])]
    kafka: bool,
    #[command(flatten)]
    kafka_args: KafkaArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

/// Settings of the embedded pipeline, shared by `run` and `bridge --to pipeline`.
#[derive(Args)]
pub struct PipelineArgs {
    /// Root of the outputs: streaming_data/enriched, streaming_data/bars_5m, anomalies,
    /// dead_letter and the checkpoint. A local directory, or an object store prefix:
    /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix (same layout, same
    /// exactly-once guarantees).
    #[arg(long, default_value = "outputs", value_name = "DIR|URL")]
    outputs: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Do not serve the dashboard.
    #[arg(long)]
    no_dashboard: bool,
    #[command(flatten)]
    dashboard: DashboardArgs,
    /// Directory of enriched.yaml, anomalies-from-enriched.yaml and bars-5m.yaml [default: transforms]
    #[arg(long, value_name = "DIR")]
    transforms_dir: Option<PathBuf>,
    /// Directory holding the built .wasm modules (default: the workspace's build output).
    #[arg(long, value_name = "DIR")]
    wasm_dir: Option<PathBuf>,
    /// Records per call into the chains (an SPU batch), 1 to 65536.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=super::MAX_BATCH))]
    batch_size: u64,
    /// Memory the modules of one chain may use together, in bytes (as an SPU's store limit;
    /// 1 GB, the engine's default, unless set). A record that needs more fails the chain: it
    /// is dead-lettered and skipped.
    #[arg(long, value_name = "BYTES", value_parser = parse_chain_memory_limit)]
    chain_memory_limit: Option<usize>,
    /// Commit after this many input records...
    #[arg(long, default_value_t = 200_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=super::MAX_COMMIT_RECORDS))]
    commit_records: u64,
    /// ...or after this long, whichever comes first (a duration: 500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_interval)]
    commit_interval: Duration,
    /// Event-time partitions of the output files: hour, day, month or year; `auto` picks day,
    /// month or year at the first commit so that a partition holds about a thousand rows or
    /// more. Kept in the checkpoint: a resume goes on with it.
    #[arg(long, default_value = "auto", value_name = "GRANULARITY")]
    partition: PartitionBy,
    /// A symbol's anomalies at most this far apart in event time form one alert (a duration).
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = parse_cooldown, help_heading = "Alerts")]
    alert_cooldown: i64,
    /// POST each closed alert as JSON (with a Slack-compatible `text` field) to this URL;
    /// retried with backoff, dead-lettered under outputs/dead_letter/webhook/ if it keeps failing.
    #[arg(long, value_name = "URL", help_heading = "Alerts")]
    alert_webhook: Option<String>,
    /// Attempts per alert (0.5 s after the first failure, doubling up to 30 s) before it is
    /// dead-lettered.
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=30), help_heading = "Alerts")]
    alert_webhook_attempts: u32,
}

/// `--max-record-bytes`: 64 bytes (a tick's size) to 1 GiB.
pub fn parse_record_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (64..=1 << 30).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number of bytes from 64 to 1073741824"
        )),
    }
}

/// `--chain-memory-limit`: 1 MiB to 4 GiB (a 32-bit WASM memory's size).
pub fn parse_chain_memory_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1 << 20..=1 << 32).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number of bytes from 1048576 to 4294967296"
        )),
    }
}

pub fn parse_cooldown(text: &str) -> Result<i64, String> {
    stockstream_core::parse_duration_ms("alert-cooldown", text).map_err(|e| e.to_string())
}

/// Where and how the dashboard is served (`run`, `bridge --to pipeline`, `dashboard`).
#[derive(Args)]
pub struct DashboardArgs {
    /// Address of the dashboard (loopback unless you choose otherwise; beyond loopback a token
    /// is required, or --insecure-no-token).
    #[arg(long, default_value = stockstream_dashboard::DEFAULT_LISTEN, value_name = "ADDR:PORT", help_heading = "Dashboard")]
    listen: std::net::SocketAddr,
    /// Require this bearer token (or `?token=`) for the dashboard's API and WebSocket
    /// [default: $STOCKSTREAM_DASHBOARD_TOKEN; none].
    #[arg(long, value_name = "TOKEN", help_heading = "Dashboard")]
    token: Option<String>,
    /// Serve a non-loopback --listen address with no token: anyone who can reach it reads the
    /// data and controls the replay.
    #[arg(long, help_heading = "Dashboard")]
    insecure_no_token: bool,
    /// An origin besides the dashboard's own that may open its WebSocket and call the API;
    /// its host is also accepted in `Host` (a reverse proxy, a tunnel) (repeatable).
    #[arg(long, value_name = "ORIGIN", help_heading = "Dashboard")]
    allow_origin: Vec<String>,
    /// Directory of the built front end [default: dashboard/dist].
    #[arg(long, value_name = "DIR", help_heading = "Dashboard")]
    dashboard_dir: Option<PathBuf>,
    /// Mark a symbol stale when its newest tick is this far (event time) behind the newest
    /// tick of any symbol (a duration).
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = parse_stale_after, help_heading = "Dashboard")]
    stale_after: i64,
}

pub fn parse_stale_after(text: &str) -> Result<i64, String> {
    stockstream_core::parse_duration_ms("stale-after", text).map_err(|e| e.to_string())
}

impl DashboardArgs {
    /// The server's settings, refused (before any input is read) when they would serve every
    /// API to the network with no token.
    pub fn config(&self, history: Option<Outputs>) -> anyhow::Result<DashboardConfig> {
        let workspace = workspace();
        let mut settings = DashboardConfig::new(
            self.dashboard_dir
                .clone()
                .unwrap_or_else(|| default_path(DEFAULT_DASHBOARD, workspace.as_deref())),
        );
        settings.listen = self.listen;
        settings.token = self
            .token
            .clone()
            .or_else(|| std::env::var(stockstream_dashboard::TOKEN_ENV).ok())
            .filter(|t| !t.is_empty());
        settings.insecure_no_token = self.insecure_no_token;
        settings.allowed_origins = self.allow_origin.clone();
        settings.history = history;
        settings.retention.stale_after_ms = self.stale_after;
        settings.check()?;
        Ok(settings)
    }

    /// Starts the dashboard, seeded with the history under `history`, and says where it is.
    pub fn start(self, history: Option<Outputs>, command: &str) -> anyhow::Result<Dashboard> {
        start_dashboard(self.config(history)?, command)
    }
}

/// Starts a checked dashboard configuration and says where it is.
pub fn start_dashboard(settings: DashboardConfig, command: &str) -> anyhow::Result<Dashboard> {
    let with_token = settings.token.is_some();
    let exposed = settings.exposed_without_token();
    let dashboard = Dashboard::start(settings)?;
    if exposed {
        say!(
            "{command}: WARNING: NO TOKEN guards the dashboard on {} (--insecure-no-token): \
             anyone who can reach it reads the data and controls the replay",
            dashboard.addr()
        );
    }
    say!(
        "{command}: dashboard at http://{}/{}",
        dashboard.addr(),
        if with_token { "?token=..." } else { "" }
    );
    Ok(dashboard)
}

/// Where a pipeline's ticks come from.
pub enum PipelineInput {
    Source(Source),
    /// A Kafka topic, through the bridge's journal.
    Kafka(BridgeConfig),
}

/// Settings of the synthetic source (with --synthetic).
#[derive(Args)]
struct SyntheticArgs {
    /// Symbols to generate [default: AAPL,MSFT,GOOG,AMZN,NVDA].
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "count",
        requires = "synthetic"
    )]
    symbols: Vec<String>,
    /// Number of generated symbols (named SYM001, SYM002, ...) instead of --symbols.
    #[arg(long, requires = "synthetic")]
    count: Option<usize>,
    /// Ticks per second of event time, all symbols together [default: 10].
    #[arg(long, requires = "synthetic")]
    rate: Option<f64>,
    /// Seed: the same seed and settings give the same ticks [default: 42].
    #[arg(long, requires = "synthetic")]
    seed: Option<u64>,
    /// Probability that a tick is an injected anomaly [default: 0.005].
    #[arg(long, requires = "synthetic")]
    anomaly_rate: Option<f64>,
    /// Size of an injected jump in per-tick sigmas [default: 100].
    #[arg(long, requires = "synthetic")]
    anomaly_sigma: Option<f64>,
    /// Event time of the first tick, ms since the epoch [default: 2026-01-02T14:30:00Z].
    #[arg(long, requires = "synthetic")]
    start_ms: Option<i64>,
    /// Stop after this many ticks (endless until Ctrl-C when absent).
    #[arg(long, requires = "synthetic")]
    limit: Option<u64>,
    /// Ground truth of the injected anomalies [default: OUTPUTS/synthetic_truth.jsonl].
    #[arg(long, value_name = "FILE", requires = "synthetic")]
    truth: Option<PathBuf>,
}

impl SyntheticArgs {
    fn source(self, outputs: &str) -> anyhow::Result<Source> {
        let mut config = stockstream_ticks::SyntheticConfig::default();
        if let Some(count) = self.count {
            config.symbols = stockstream_ticks::synthetic::symbols_for_count(count);
        } else if !self.symbols.is_empty() {
            config.symbols = self.symbols;
        }
        config.rate = self.rate.unwrap_or(config.rate);
        config.seed = self.seed.unwrap_or(config.seed);
        config.anomaly_rate = self.anomaly_rate.unwrap_or(config.anomaly_rate);
        config.anomaly_sigma = self.anomaly_sigma.unwrap_or(config.anomaly_sigma);
        config.start_ms = self.start_ms.unwrap_or(config.start_ms);
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("--synthetic: {e}"))?;
        Ok(Source::Synthetic {
            config,
            limit: self.limit,
            truth: match self.truth {
                Some(truth) => truth,
                None if stockstream_pipeline::store::is_url(outputs) => anyhow::bail!(
                    "--synthetic with outputs in an object store needs --truth FILE, a local file for the injected anomalies"
                ),
                None => Path::new(outputs).join("synthetic_truth.jsonl"),
            },
        })
    }
}

pub fn parse_interval(text: &str) -> Result<Duration, String> {
    stockstream_core::parse_duration_ms("commit-interval", text)
        .map_err(|e| e.to_string())
        .and_then(|ms| {
            u64::try_from(ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| format!("invalid value {text:?}: expected a positive duration"))
        })
}

/// The enclosing stockstream workspace, from the working directory or where this binary was
/// built.
pub fn workspace() -> Option<PathBuf> {
    std::env::current_dir()
        .ok()
        .and_then(|dir| WasmLocator::find_workspace(&dir))
        .or_else(|| WasmLocator::find_workspace(Path::new(env!("CARGO_MANIFEST_DIR"))))
}

/// A default path relative to the working directory, else to the workspace.
pub fn default_path(relative: &str, workspace: Option<&Path>) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    workspace
        .map(|root| root.join(relative))
        .filter(|p| p.exists())
        .unwrap_or(here)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (input, speed, pipeline) = input_of(args)?;
    run_pipeline(input, speed, pipeline)
}

/// `verify --rebuild`: the damaged files of the outputs, rebuilt from the run's input.
pub fn rebuild(args: RunArgs) -> anyhow::Result<RebuildReport> {
    let (input, _speed, pipeline) = input_of(args)?;
    let PipelineInput::Source(source) = input else {
        anyhow::bail!(
            "a Kafka input is not read again from its start: rebuild from the files the topic was fed from (--input)"
        );
    };
    let (stop, _signal) = install_stop_signals()?;
    let outputs = pipeline.store.open(&pipeline.outputs)?;
    let config = run_config(source, Speed::Max, &pipeline, outputs)?;
    let mut on_event = |event: Event<'_>| {
        if let Event::Progress(progress) = event {
            tracing::info!(
                records = progress.counts.records_in,
                "rebuild: reading the input again"
            );
        }
    };
    stockstream_pipeline::rebuild::rebuild(&config, &stop, &mut on_event)
}

/// What a run's arguments ask for: its input, checked, the replay pace and the pipeline's
/// settings.
fn input_of(args: RunArgs) -> anyhow::Result<(PipelineInput, Speed, PipelineArgs)> {
    anyhow::ensure!(
        args.kafka || !args.kafka_args.any(),
        "the Kafka options (--bootstrap, --topic, --group, ...) need --kafka"
    );
    let mut problems = Vec::new();
    if args.kafka || args.synthetic {
        let source = if args.kafka { "--kafka" } else { "--synthetic" };
        for flag in args.csv.given() {
            problems.push(format!(
                "{flag} applies to CSV files (--input), not {source}"
            ));
        }
    } else {
        // CSV flags on inputs that are all JSON-lines files (directories may hold CSV).
        let json_only = !args.input.is_empty()
            && args.input.iter().all(|path| {
                path.is_file() && InputFormat::from_path(Some(path)) == InputFormat::JsonLines
            });
        let format = if json_only {
            InputFormat::JsonLines
        } else {
            InputFormat::Csv
        };
        let names: Vec<String> = args.input.iter().map(|p| p.display().to_string()).collect();
        problems.extend(args.csv.problems(format, &names.join(", "), &[], ""));
    }
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    let workspace = workspace();
    let speed = args.speed.unwrap_or(if args.synthetic {
        Speed::Factor(1.0)
    } else {
        Speed::Max
    });
    let input = if args.kafka {
        PipelineInput::Kafka(args.kafka_args.config())
    } else if args.synthetic {
        PipelineInput::Source(args.generator.source(&args.pipeline.outputs)?)
    } else {
        let sample = args.input.is_empty();
        let paths = if sample {
            vec![default_path(DEFAULT_INPUT, workspace.as_deref())]
        } else {
            args.input
        };
        let tz = match (args.tz, sample) {
            (Some(tz), _) => Some(tz),
            (None, true) => Some(
                stockstream_ticks::input::parse_tz(DEFAULT_INPUT_TZ).map_err(anyhow::Error::msg)?,
            ),
            (None, false) => None,
        };
        let ohlc_bars = args
            .ohlc_bars
            .or(sample.then_some(stockstream_ticks::BarLength::Auto));
        let csv = stockstream_ticks::CsvSettings {
            ohlc_expand: args.ohlc_expand,
            max_record_bytes: Some(args.max_record_bytes),
            ..args.csv.settings(tz)
        };
        PipelineInput::Source(Source::Files {
            paths,
            settings: stockstream_ticks::InputSettings { csv, ohlc_bars },
        })
    };
    Ok((input, speed, args.pipeline))
}

/// The pipeline's settings for `source`, the dashboard left out.
fn run_config(
    source: Source,
    speed: Speed,
    args: &PipelineArgs,
    outputs: Outputs,
) -> anyhow::Result<RunConfig> {
    let workspace = workspace();
    let transforms_dir = args
        .transforms_dir
        .clone()
        .unwrap_or_else(|| default_path(DEFAULT_TRANSFORMS, workspace.as_deref()));
    let wasm = WasmLocator::new(args.wasm_dir.clone(), workspace.as_deref());
    let mut config = RunConfig::new(source, outputs, transforms_dir, wasm);
    config.replay = Arc::new(ReplayControl::new(speed));
    config.batch_size = args.batch_size as usize;
    config.commit_records = args.commit_records;
    config.commit_interval = args.commit_interval;
    config.alert_cooldown_ms = args.alert_cooldown;
    config.partition = args.partition;
    config.chain_memory_limit = args.chain_memory_limit;
    config.alert_webhook = args
        .alert_webhook
        .as_deref()
        .map(WebhookConfig::new)
        .transpose()?
        .map(|w| WebhookConfig {
            attempts: args.alert_webhook_attempts,
            ..w
        });
    Ok(config)
}

/// Which signal asked a run to stop, for its exit status.
pub struct StopSignal(Arc<AtomicUsize>);

impl StopSignal {
    /// Whether Ctrl-C or SIGTERM came.
    pub fn received(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// 128 + the signal, as shells report a process ended by one.
    pub fn exit_code(&self) -> ExitCode {
        let sig = self.0.load(Ordering::Relaxed);
        ExitCode::from(u8::try_from(128 + sig).unwrap_or(130))
    }
}

/// Ctrl-C / SIGTERM set the returned flag: stop reading, commit what was read, exit. A second
/// one exits at once (the last commit stands; the next run resumes from it).
pub fn install_stop_signals() -> anyhow::Result<(Arc<AtomicBool>, StopSignal)> {
    let stop = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register_usize(sig, signal.clone(), sig as usize)
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }
    Ok((stop, StopSignal(signal)))
}

/// Runs the embedded pipeline over `input` until it ends or a signal stops it.
pub fn run_pipeline(
    input: PipelineInput,
    speed: Speed,
    args: PipelineArgs,
) -> anyhow::Result<ExitCode> {
    let outputs = args.store.open(&args.outputs)?;
    // Checked first: a refused dashboard must not cost a Kafka connection or any input.
    let dashboard_settings = if args.no_dashboard {
        None
    } else {
        Some(args.dashboard.config(Some(outputs.clone()))?)
    };
    let (stop, signal) = install_stop_signals()?;
    let (source, feed) = match input {
        PipelineInput::Source(source) => (source, None),
        PipelineInput::Kafka(config) => {
            let journal_dir =
                outputs.require_local("a Kafka input (the journal of records read)")?;
            let (source, feed) = stockstream_bridge::pipeline::open(&config, journal_dir, &stop)?;
            (source, Some(feed))
        }
    };
    let mut config = run_config(source, speed, &args, outputs)?;
    let dashboard = if let Some(settings) = dashboard_settings {
        let dashboard = start_dashboard(settings, "run")?;
        config.dashboard = Some(dashboard.feed());
        if config.source.replayable() {
            dashboard.hub().attach_replay(config.replay.clone());
        }
        Some(dashboard)
    } else {
        None
    };

    let terminal = std::io::stderr().is_terminal();
    let mut progress_shown = false;
    let mut last_progress = (0u64, Duration::ZERO);
    let mut on_event = |event: Event<'_>| {
        let mut err = std::io::stderr().lock();
        if progress_shown && !matches!(event, Event::Progress(_)) {
            let _ = write!(err, "\r\x1b[2K");
            progress_shown = false;
        }
        let _ = match event {
            Event::Resumed(resume) => writeln!(
                err,
                "run: resuming after record {} ({} commits before); removed {} files of an unfinished commit; replayed {} into the window state in {:.2} s",
                resume.offset,
                resume.commits,
                resume.orphans_removed,
                resume
                    .replayed
                    .iter()
                    .map(|(stream, n)| format!("{stream} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                resume.elapsed.as_secs_f64()
            ),
            Event::Invalid { line, message } => writeln!(err, "line {line}: {message}"),
            Event::InvalidReportsCapped => {
                writeln!(err, "(further problems are counted in the summary, not shown)")
            }
            Event::Committed { offset, files } => {
                tracing::info!(offset, files, "committed");
                if let Some(feed) = &feed {
                    // Not fatal: the journal says where to go on; the next commit of offsets
                    // covers these too.
                    if let Err(e) = feed.committed(offset) {
                        tracing::warn!("bridge: committing Kafka offsets failed: {e}");
                    }
                }
                Ok(())
            }
            Event::Progress(progress) if dashboard.is_some() || terminal => {
                let c = &progress.counts;
                if let Some(dashboard) = &dashboard {
                    dashboard.hub().set_run_counts(RunCounts {
                        records: c.records_in,
                        invalid: c.invalid_total(),
                        late: c.late,
                    });
                }
                if !terminal {
                    return;
                }
                progress_shown = true;
                let (records, elapsed) = last_progress;
                last_progress = (progress.records_this_run, progress.elapsed);
                write!(
                    err,
                    "\r\x1b[2Krun: {} records ({:.0} ticks/s), {} anomalies, {} late, {} invalid",
                    c.records_in,
                    (progress.records_this_run - records) as f64
                        / (progress.elapsed - elapsed).as_secs_f64().max(1e-9),
                    c.anomaly_rows,
                    c.late,
                    c.invalid_total()
                )
            }
            Event::Progress(_) => Ok(()),
        };
    };
    let report = stockstream_pipeline::run(&config, &stop, &mut on_event);
    if progress_shown {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
    if let Some(feed) = &feed {
        say!("{}", feed.summary());
    }
    let report = report?;
    say!("{}", report.summary(&config.outputs));
    if let (Some(dashboard), Outcome::Finished) = (&dashboard, report.outcome) {
        let c = &report.counts;
        dashboard.hub().set_run_counts(RunCounts {
            records: c.records_in,
            invalid: c.invalid_total(),
            late: c.late,
        });
        say!(
            "run: the input is done; the dashboard stays at http://{} until Ctrl-C",
            dashboard.addr()
        );
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match report.outcome {
        Outcome::Finished => ExitCode::SUCCESS,
        Outcome::Stopped => signal.exit_code(),
    })
}
