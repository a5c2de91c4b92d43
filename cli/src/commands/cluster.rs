//! `stockstream setup` and `stockstream materialize`: cluster mode.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use fluvio_future::task::run_block_on;
use stockstream_cluster::materialize::{materialize, MaterializeConfig};
use stockstream_cluster::setup::{setup, SetupConfig};
use stockstream_cluster::{connect, topics};
use stockstream_pipeline::dates::PartitionBy;

use super::run::{
    default_path, install_stop_signals, parse_interval, workspace, DEFAULT_TRANSFORMS,
};
use super::store::StoreArgs;
use super::{wasm_locator, FluvioArgs};

#[derive(Args)]
pub struct SetupArgs {
    #[command(flatten)]
    fluvio: FluvioArgs,
    /// Partitions of stock-ticks and of each derived topic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    partitions: u32,
    /// Replicas of each partition (at most the number of SPUs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    replication: u32,
    /// The raw topic.
    #[arg(long, default_value = topics::RAW)]
    topic: String,
    /// Directory holding the built .wasm modules (default: the workspace's build output).
    #[arg(long, value_name = "DIR")]
    wasm_dir: Option<PathBuf>,
    /// How long to wait for every SPU serving the topics to have the modules.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_interval)]
    wait_spus: Duration,
}

pub fn run_setup(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let config = SetupConfig {
        partitions: args.partitions,
        replication: args.replication,
        raw_topic: args.topic,
        wasm: wasm_locator(args.wasm_dir),
        wait: args.wait_spus,
    };
    let target = args.fluvio.target();
    let report = run_block_on(async {
        let fluvio = connect(&target).await?;
        setup(&fluvio, &config).await
    })?;
    let _ = std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{report}"));
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct MaterializeArgs {
    #[command(flatten)]
    fluvio: FluvioArgs,
    /// The raw topic.
    #[arg(long, default_value = topics::RAW)]
    topic: String,
    /// Root of the Parquet outputs (not one `stockstream run` writes to): a directory, or an
    /// object store prefix (s3://bucket/prefix, gs://..., az://...).
    #[arg(long, default_value = "outputs", value_name = "DIR|URL")]
    outputs: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Directory of enriched.yaml, anomalies-from-enriched.yaml and bars-5m.yaml [default: transforms]
    #[arg(long, value_name = "DIR")]
    transforms_dir: Option<PathBuf>,
    /// Commit after this many derived records...
    #[arg(long, default_value_t = 100_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=super::MAX_COMMIT_RECORDS))]
    commit_records: u64,
    /// ...or after this long, whichever comes first (500ms, 5s, 1m).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_interval)]
    commit_interval: Duration,
    /// Commit and exit once no derived record has come for this long (batch jobs); without
    /// it, run until Ctrl-C or SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    idle_exit: Option<Duration>,
    /// A symbol's anomalies at most this far apart in event time form one alert (a duration).
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = super::run::parse_cooldown)]
    alert_cooldown: i64,
    /// Event-time partitions of the output files: hour, day, month, year, or auto (as `run`).
    #[arg(long, default_value = "auto", value_name = "GRANULARITY")]
    partition: PartitionBy,
    /// Most bytes one fetch of a chain's output may carry (bounds the memory of each fetch,
    /// in the SPU and here). One input batch's output must fit.
    #[arg(long, default_value = "16MiB", value_name = "SIZE", value_parser = parse_fetch_bytes)]
    fetch_bytes: u32,
    /// How long to wait for the SPUs to have the modules before giving up.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_interval)]
    wait_spus: Duration,
}

/// A byte size: a number with an optional KiB or MiB (64KiB, 16MiB, 1048576).
fn parse_fetch_bytes(text: &str) -> Result<u32, String> {
    let (digits, unit) = match text.strip_suffix("MiB") {
        Some(d) => (d, 1u64 << 20),
        None => match text.strip_suffix("KiB") {
            Some(d) => (d, 1u64 << 10),
            None => (text, 1),
        },
    };
    let bytes = digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{text:?} is not a size (64KiB, 16MiB or a number of bytes)"))?;
    if !(MIN_FETCH_BYTES..=MAX_FETCH_BYTES).contains(&bytes) {
        return Err(format!(
            "{text} is outside 4KiB..=1024MiB (the fetch size bounds memory; an input batch's output must fit in it)"
        ));
    }
    Ok(bytes as u32)
}

const MIN_FETCH_BYTES: u64 = 4 << 10;
const MAX_FETCH_BYTES: u64 = 1 << 30;

pub fn run_materialize(args: MaterializeArgs) -> anyhow::Result<ExitCode> {
    let (stop, signal) = install_stop_signals()?;
    let transforms_dir = args
        .transforms_dir
        .unwrap_or_else(|| default_path(DEFAULT_TRANSFORMS, workspace().as_deref()));
    let mut config = MaterializeConfig::new(args.store.open(&args.outputs)?, transforms_dir);
    config.raw_topic = args.topic;
    config.commit_records = args.commit_records;
    config.commit_interval = args.commit_interval;
    config.idle_exit = args.idle_exit;
    config.alert_cooldown_ms = args.alert_cooldown;
    config.partition = args.partition;
    config.fetch_bytes = args.fetch_bytes;
    config.wait_spus = args.wait_spus;
    let target = args.fluvio.target();
    let report = run_block_on(async {
        let fluvio = connect(&target).await?;
        materialize(&fluvio, &config, &stop).await
    })?;
    say!("{report}");
    Ok(if signal.received() {
        signal.exit_code()
    } else {
        ExitCode::SUCCESS
    })
}
