//! Command-line flags, and the configuration they make (every problem reported at once).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{ArgGroup, Args, Parser};
use stockstream_ticks::input::{parse_tz, Tz};
use stockstream_ticks::synthetic::symbols_for_count;
use stockstream_ticks::{
    ColumnNames, CsvSettings, InputFormat, Speed, SyntheticConfig, TimestampFormat, Timestamps,
};

use crate::rejects::Rejects;
use crate::run::{run, RunOptions, TruthFile};
use crate::sinks::{
    self,
    fluvio::{ClusterTarget, FluvioConfig},
    kafka::KafkaConfig,
    pipeline::PipelineConfig,
    SinkConfig, SinkKind,
};
use crate::source::{Source, SourceConfig};

/// The default input: the intraday sample (relative to the workspace, where `cargo run` runs).
const SAMPLE_INPUT: &str = "data/intraday";
const SAMPLE_TZ: &str = "America/New_York";

/// Ticks into a stream: replay a CSV or JSON-lines file paced by event time, or generate
/// synthetic ticks (GBM with injected anomalies); write them to stdout, Kafka or Fluvio.
#[derive(Debug, Parser)]
#[command(name = "producer", version)]
#[command(group(ArgGroup::new("source").args(["input", "synthetic"])))]
pub struct Cli {
    // ---- source ----
    /// Replay this file: CSV when the name ends in .csv, else JSON lines; `-` is standard input
    /// [default: the intraday sample data/intraday, 1-minute bars in America/New_York time].
    #[arg(long, value_name = "FILE", help_heading = "Source")]
    pub input: Option<PathBuf>,

    /// Generate synthetic ticks instead of reading a file.
    #[arg(long, help_heading = "Source")]
    pub synthetic: bool,

    /// Input format, when the file name does not tell.
    #[arg(long, value_enum, requires = "input", help_heading = "Source")]
    pub format: Option<Format>,

    /// Replay speed: event-time gaps are divided by this factor (1 = real time); `max` does
    /// not wait at all.
    #[arg(long, default_value = "1", value_parser = parse_speed, help_heading = "Source")]
    pub speed: Speed,

    /// Stop after this many ticks sent.
    #[arg(long, value_name = "N", help_heading = "Source")]
    pub limit: Option<u64>,

    /// Stop after this much event time from the first tick (`90s`, `10m`, `2h`, `1d`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Source")]
    pub duration: Option<i64>,

    // ---- CSV ----
    #[command(flatten)]
    pub csv: CsvArgs,

    /// Time zone of naive date-times and dates (IANA name, e.g. America/New_York).
    #[arg(long, value_name = "ZONE", value_parser = parse_zone, requires = "input", help_heading = "CSV")]
    pub tz: Option<Tz>,

    /// Daily files: four ticks per row (open; low then high on an up day, high then low on a
    /// down day; close) at 09:30, 11:40, 13:50 and 16:00 in --tz, the volume split in four.
    #[arg(long, requires = "input", help_heading = "CSV")]
    pub ohlc_expand: bool,

    // ---- synthetic ----
    /// Symbols to generate [default: AAPL,MSFT,GOOG,AMZN,NVDA].
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "count",
        requires = "synthetic",
        help_heading = "Synthetic"
    )]
    pub symbols: Vec<String>,

    /// Generate this many symbols (AAPL, MSFT, ... then SYM0021, ...).
    #[arg(
        long,
        value_name = "N",
        requires = "synthetic",
        help_heading = "Synthetic"
    )]
    pub count: Option<usize>,

    /// Ticks per second of event time, all symbols together.
    #[arg(
        long,
        default_value_t = 10.0,
        requires = "synthetic",
        help_heading = "Synthetic"
    )]
    pub rate: f64,

    /// Seed: the same seed and flags give byte-identical ticks.
    #[arg(
        long,
        default_value_t = 42,
        requires = "synthetic",
        help_heading = "Synthetic"
    )]
    pub seed: u64,

    /// Event time of the first tick: RFC 3339 or epoch ms [default: now, rounded down to the
    /// minute].
    #[arg(
        long,
        value_name = "TIME",
        requires = "synthetic",
        help_heading = "Synthetic"
    )]
    pub start: Option<String>,

    /// Probability that a tick (after each symbol's first 100) is an injected anomaly.
    #[arg(long, default_value_t = SyntheticConfig::default().anomaly_rate, requires = "synthetic", help_heading = "Synthetic")]
    pub anomaly_rate: f64,

    /// Size of an injected price jump, in per-tick sigmas of the log return.
    #[arg(long, value_name = "K", default_value_t = SyntheticConfig::default().anomaly_sigma, requires = "synthetic", help_heading = "Synthetic")]
    pub anomaly_sigma: f64,

    /// Write the ground truth of injected anomalies (JSON lines) to this file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "synthetic",
        help_heading = "Synthetic"
    )]
    pub truth: Option<PathBuf>,

    /// Annualised volatility, one value or a range LOW..HIGH drawn per symbol.
    #[arg(long, default_value = "0.2..0.4", value_parser = parse_range, requires = "synthetic", help_heading = "Synthetic")]
    pub volatility: (f64, f64),

    /// Start price, one value or a range LOW..HIGH drawn per symbol.
    #[arg(long, default_value = "100..500", value_parser = parse_range, requires = "synthetic", help_heading = "Synthetic")]
    pub start_price: (f64, f64),

    // ---- sink ----
    /// Where ticks go.
    #[arg(long, value_enum, default_value_t = SinkKind::Stdout, help_heading = "Sink")]
    pub sink: SinkKind,

    /// Kafka bootstrap servers [default: localhost:9093, unless --kafka-config or
    /// STOCKSTREAM_KAFKA_BOOTSTRAP_SERVERS sets them].
    #[arg(long, value_name = "HOST:PORT", help_heading = "Sink")]
    pub bootstrap: Option<String>,

    /// Kafka topic.
    #[arg(long, default_value = sinks::kafka::DEFAULT_TOPIC, help_heading = "Sink")]
    pub topic: String,

    /// Extra librdkafka settings, `key=value` per line (`#` comments); STOCKSTREAM_KAFKA_<KEY>
    /// variables override them (STOCKSTREAM_KAFKA_SASL_PASSWORD is sasl.password).
    #[arg(long, value_name = "FILE", help_heading = "Sink")]
    pub kafka_config: Option<PathBuf>,

    /// Fluvio topic.
    #[arg(long, default_value = sinks::fluvio::DEFAULT_TOPIC, help_heading = "Sink")]
    pub fluvio_topic: String,

    /// Fluvio cluster: an SC address (HOST:PORT) or a profile of the fluvio CLI
    /// [default: its current profile].
    #[arg(long, alias = "fluvio-endpoint", env = sinks::fluvio::CLUSTER_ENV, value_name = "HOST:PORT|PROFILE", help_heading = "Sink")]
    pub fluvio: Option<String>,

    /// Root of the outputs of `--sink pipeline` (Parquet, like `stockstream run`; it must
    /// not hold an earlier run).
    #[arg(
        long,
        default_value = "outputs",
        value_name = "DIR",
        help_heading = "Sink"
    )]
    pub outputs: PathBuf,

    // ---- bad rows ----
    /// Write invalid rows to this file (JSON lines: line, reason, code, raw).
    #[arg(long, value_name = "FILE", help_heading = "Invalid rows")]
    pub dead_letter: Option<PathBuf>,

    /// Stop at the first invalid row (exit status 1) instead of counting it and going on.
    #[arg(long, help_heading = "Invalid rows")]
    pub strict: bool,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// How CSV input is read, shared by the producer, `stockstream run` and `stockstream transform`.
#[derive(Args, Debug, Clone, Default)]
pub struct CsvArgs {
    /// Symbol of every row, for files without a symbol column.
    #[arg(long, help_heading = "CSV")]
    pub symbol: Option<String>,

    /// Name of the symbol column (default: symbol, ticker or name).
    #[arg(long, value_name = "NAME", help_heading = "CSV")]
    pub symbol_col: Option<String>,

    /// Name of the timestamp column (default: ts, timestamp, datetime, time or date).
    #[arg(long, value_name = "NAME", help_heading = "CSV")]
    pub ts_col: Option<String>,

    /// Name of the price column (default: price, close or last).
    #[arg(long, value_name = "NAME", help_heading = "CSV")]
    pub price_col: Option<String>,

    /// Name of the volume column (default: volume, vol, size, qty or quantity).
    #[arg(long, value_name = "NAME", help_heading = "CSV")]
    pub volume_col: Option<String>,

    /// Timestamp form: auto, rfc3339, epoch-s, epoch-ms, or a strftime pattern
    /// (`%d.%m.%Y %H:%M:%S`).
    #[arg(long, default_value = "auto", value_parser = parse_ts_format, help_heading = "CSV")]
    pub ts_format: TimestampFormat,
}

impl CsvArgs {
    /// What is wrong with these flags for `input` read as `format`: an invalid `--symbol`, or
    /// CSV-only flags (these, and `more` of the caller's) given for JSON lines.
    pub fn problems(
        &self,
        format: InputFormat,
        input: &str,
        more: &[(bool, &'static str)],
        hint: &str,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(symbol) = &self.symbol {
            if let Err(e) = stockstream_core::tick::check_symbol(symbol) {
                problems.push(format!("--symbol {symbol:?}: {e}"));
            }
        }
        if format == InputFormat::JsonLines {
            let more = more.iter().filter(|(set, _)| *set).map(|(_, flag)| *flag);
            for flag in self.given().into_iter().chain(more) {
                problems.push(format!(
                    "{flag} applies to CSV input only; {input} is read as JSON lines{hint}"
                ));
            }
        }
        problems
    }

    /// The flags given.
    pub fn given(&self) -> Vec<&'static str> {
        [
            (self.symbol.is_some(), "--symbol"),
            (self.symbol_col.is_some(), "--symbol-col"),
            (self.ts_col.is_some(), "--ts-col"),
            (self.price_col.is_some(), "--price-col"),
            (self.volume_col.is_some(), "--volume-col"),
            (self.ts_format != TimestampFormat::Auto, "--ts-format"),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, flag)| flag)
        .collect()
    }

    /// The CSV settings these flags ask for, with naive times in `tz`.
    pub fn settings(&self, tz: Option<Tz>) -> CsvSettings {
        CsvSettings {
            symbol: self.symbol.clone(),
            columns: ColumnNames {
                symbol: self.symbol_col.clone(),
                ts: self.ts_col.clone(),
                price: self.price_col.clone(),
                volume: self.volume_col.clone(),
            },
            timestamps: Timestamps::new(self.ts_format.clone(), tz),
            ..CsvSettings::default()
        }
    }
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    s.parse()
}

fn parse_ts_format(s: &str) -> Result<TimestampFormat, String> {
    s.parse()
}

fn parse_zone(s: &str) -> Result<Tz, String> {
    parse_tz(s)
}

fn parse_duration(s: &str) -> Result<i64, String> {
    match stockstream_core::parse_duration_ms("duration", s) {
        Ok(ms) if ms > 0 => Ok(ms),
        Ok(_) => Err("duration must be > 0".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// `0.3` or `0.2..0.4`.
fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let number = |t: &str| {
        t.trim()
            .parse::<f64>()
            .map_err(|_| format!("{s:?}: expected a number or a range LOW..HIGH"))
    };
    match s.split_once("..") {
        Some((lo, hi)) => Ok((number(lo)?, number(hi)?)),
        None => number(s).map(|v| (v, v)),
    }
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub run: RunOptions,
    pub dead_letter: Option<PathBuf>,
    pub truth: Option<PathBuf>,
}

impl Cli {
    /// The configuration, or every problem with the flags.
    pub fn into_config(self) -> Result<ProducerConfig, Vec<String>> {
        let mut errors = Vec::new();
        let source = if self.synthetic {
            for flag in self.csv.given() {
                errors.push(format!(
                    "{flag} applies to CSV input (--input), not --synthetic"
                ));
            }
            let symbols = match (self.count, self.symbols.is_empty()) {
                (Some(0), _) => {
                    errors.push("--count must be at least 1".to_owned());
                    Vec::new()
                }
                (Some(n), _) => symbols_for_count(n),
                (None, false) => self.symbols.iter().map(|s| s.trim().to_owned()).collect(),
                (None, true) => SyntheticConfig::default().symbols,
            };
            let start_ms = match &self.start {
                Some(text) => Timestamps::default().parse_ms(text).unwrap_or_else(|e| {
                    errors.push(format!("--start: {e}"));
                    0
                }),
                None => {
                    let now = chrono::Utc::now().timestamp_millis();
                    now - now % 60_000
                }
            };
            let config = SyntheticConfig {
                symbols,
                rate: self.rate,
                seed: self.seed,
                start_ms,
                anomaly_rate: self.anomaly_rate,
                anomaly_sigma: self.anomaly_sigma,
                volatility_range: self.volatility,
                price_range: self.start_price,
                ..SyntheticConfig::default()
            };
            if start_ms > 0 {
                if let Err(e) = config.validate() {
                    errors.push(format!("--synthetic: {e}"));
                }
            }
            SourceConfig::Synthetic(config)
        } else if self.input.is_none() {
            // The sample that `stockstream run` replays by default, read the same way.
            let mut csv = CsvSettings::default();
            csv.timestamps.tz = Some(parse_tz(SAMPLE_TZ).expect("a valid zone"));
            SourceConfig::Files {
                paths: vec![PathBuf::from(SAMPLE_INPUT)],
                settings: stockstream_ticks::InputSettings {
                    csv,
                    ohlc_bars: Some(stockstream_ticks::BarLength::Auto),
                },
            }
        } else {
            let path = self.input.clone().unwrap_or_else(|| PathBuf::from("-"));
            let format = match self.format {
                Some(Format::Csv) => InputFormat::Csv,
                Some(Format::Jsonl) => InputFormat::JsonLines,
                None => InputFormat::from_path((path.as_os_str() != "-").then_some(path.as_path())),
            };
            errors.extend(self.csv.problems(
                format,
                &path.display().to_string(),
                &[
                    (self.tz.is_some(), "--tz"),
                    (self.ohlc_expand, "--ohlc-expand"),
                ],
                " (use --format csv if it is CSV)",
            ));
            SourceConfig::Replay {
                path,
                format,
                csv: CsvSettings {
                    ohlc_expand: self.ohlc_expand,
                    ..self.csv.settings(self.tz)
                },
            }
        };
        let kafka = KafkaConfig {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            config_file: self.kafka_config.clone(),
            env: if self.sink == SinkKind::Kafka {
                KafkaConfig::env_from_process()
            } else {
                Vec::new()
            },
        };
        if self.sink == SinkKind::Kafka {
            // Settings problems are found here, with the rest, rather than at connection.
            if let Err(e) = kafka.settings() {
                errors.extend(e.into_iter().map(|e| format!("kafka: {e}")));
            }
        } else if self.bootstrap.is_some() || self.kafka_config.is_some() {
            errors.push("--bootstrap and --kafka-config apply to --sink kafka only".to_owned());
        }
        // STOCKSTREAM_FLUVIO is shared by every service of a deployment: only the flag is
        // refused with another sink.
        if self.fluvio.is_some()
            && self.sink != SinkKind::Fluvio
            && std::env::var_os(sinks::fluvio::CLUSTER_ENV).is_none()
        {
            errors.push("--fluvio applies to --sink fluvio only".to_owned());
        }
        if self.fluvio_topic.trim().is_empty() {
            errors.push("--fluvio-topic is empty".to_owned());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ProducerConfig {
            source,
            sink: SinkConfig {
                kind: self.sink,
                stdout_flush_each: self.speed != Speed::Max,
                kafka,
                fluvio: FluvioConfig {
                    topic: self.fluvio_topic,
                    cluster: ClusterTarget::parse(self.fluvio.as_deref()),
                },
                pipeline: PipelineConfig {
                    outputs: self.outputs,
                    ..PipelineConfig::default()
                },
            },
            run: RunOptions {
                speed: self.speed,
                limit: self.limit,
                duration_ms: self.duration,
                strict: self.strict,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            },
            dead_letter: self.dead_letter,
            truth: self.truth,
        })
    }
}

/// Exit status for flags or settings that cannot work (as clap uses for usage errors).
pub const EXIT_USAGE: u8 = 2;

/// Runs the producer as the binary does: prints problems and the summary on standard error.
pub fn main_with(cli: Cli) -> ExitCode {
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors {
                say!("producer: {e}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once; the first asks for a clean stop.
        let registered = signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()));
        if let Err(e) = registered {
            tracing::warn!("cannot handle signal {signal}: {e}");
        }
    }
    match produce(&config, &stop) {
        Ok(code) => code,
        Err(e) => {
            say!("producer: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Opens the source, the sink and the side files, runs, and prints the summary line.
pub fn produce(config: &ProducerConfig, stop: &AtomicBool) -> anyhow::Result<ExitCode> {
    use anyhow::Context;

    let source = match Source::open(&config.source) {
        Ok(source) => source,
        Err(e) => {
            say!("producer: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    tracing::info!("source: {}", source.describe());
    let mut rejects = match &config.dead_letter {
        Some(path) => Rejects::with_file(path)
            .with_context(|| format!("cannot create the dead-letter file {}", path.display()))?,
        None => Rejects::new(),
    };
    let truth = match (&config.truth, &config.source) {
        (Some(path), SourceConfig::Synthetic(_)) => Some(
            TruthFile::create(path)
                .with_context(|| format!("cannot create the truth file {}", path.display()))?,
        ),
        _ => None,
    };
    let mut sink = sinks::open(&config.sink)?;
    tracing::info!("sink: {}, speed {}", sink.describe(), config.run.speed);
    let outcome = run(
        source,
        sink.as_mut(),
        &mut rejects,
        truth,
        &config.run,
        stop,
    );
    say!("{}", outcome.summary);
    Ok(match outcome.error {
        None => ExitCode::SUCCESS,
        Some(e) => {
            say!("producer: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    })
}

/// The error and its causes, each once.
/// An error and its causes on one line, each cause once: a message that already quotes its
/// cause (`cannot read X: <cause>`) does not repeat it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ProducerConfig, Vec<String>> {
        let mut full = vec!["producer"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
            .map_err(|e| vec![e.to_string()])?
            .into_config()
    }

    #[test]
    fn the_sample_by_default_and_only_one_source() {
        let config = parse(&[]).unwrap();
        let SourceConfig::Files { paths, settings } = config.source else {
            panic!("{:?}", config.source)
        };
        assert_eq!(paths, [PathBuf::from(SAMPLE_INPUT)]);
        assert_eq!(settings.ohlc_bars, Some(stockstream_ticks::BarLength::Auto));
        assert_eq!(
            settings.csv.timestamps.tz,
            Some(parse_tz(SAMPLE_TZ).unwrap())
        );
        assert!(parse(&["--input", "a.csv", "--synthetic"]).is_err());
    }

    #[test]
    fn synthetic_defaults() {
        let config = parse(&["--synthetic", "--start", "2026-01-02T14:30:00Z"]).unwrap();
        let SourceConfig::Synthetic(s) = config.source else {
            panic!()
        };
        assert_eq!(s.symbols, ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA"]);
        assert_eq!(s.start_ms, 1_767_364_200_000);
        assert_eq!(config.sink.kind, SinkKind::Stdout);
        assert_eq!(config.run.speed, Speed::Factor(1.0));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = parse(&[
            "--synthetic",
            "--symbols",
            "OK,not ok",
            "--rate",
            "0",
            "--start",
            "someday",
        ])
        .unwrap_err()
        .join("\n");
        assert!(errors.contains("--start"), "{errors}");
        let errors = parse(&["--synthetic", "--symbols", "OK,not ok", "--rate=-1"])
            .unwrap_err()
            .join("\n");
        assert!(
            errors.contains("not ok") && errors.contains("rate"),
            "{errors}"
        );
        let errors = parse(&["--input", "x.jsonl", "--tz", "UTC", "--symbol", "A"])
            .unwrap_err()
            .join("\n");
        assert!(
            errors.contains("--tz applies to CSV") && errors.contains("--symbol applies"),
            "{errors}"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0.3"), Ok((0.3, 0.3)));
        assert_eq!(parse_range("100..500"), Ok((100.0, 500.0)));
        assert!(parse_range("a..b").is_err());
    }
}
