//! `stockstream dashboard`: the dashboard on a Fluvio cluster's derived topics.

use std::process::ExitCode;

use clap::Args;
use fluvio_future::task::run_block_on;
use stockstream_cluster::connect;
use stockstream_cluster::derived::{follow, FollowConfig};

use super::run::{install_stop_signals, DashboardArgs};
use super::store::StoreArgs;
use super::FluvioArgs;

#[derive(Args)]
pub struct DashboardCommandArgs {
    #[command(flatten)]
    fluvio: FluvioArgs,
    #[command(flatten)]
    dashboard: DashboardArgs,
    /// Records of each derived partition read back from before its end on start.
    #[arg(long, default_value_t = 5_000, value_name = "N")]
    history: u32,
    /// Also seed the history from the Parquet a materializer wrote here (a directory, or an
    /// object store prefix such as s3://bucket/prefix).
    #[arg(long, value_name = "DIR|URL")]
    outputs: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: DashboardCommandArgs) -> anyhow::Result<ExitCode> {
    let (stop, signal) = install_stop_signals()?;
    let target = args.fluvio.target();
    let history = args
        .outputs
        .as_deref()
        .map(|outputs| args.store.open(outputs))
        .transpose()?;
    let dashboard = args.dashboard.start(history, "dashboard")?;
    let feed = dashboard.feed();
    let config = FollowConfig {
        history: args.history,
        ..FollowConfig::default()
    };
    let stats = run_block_on(async {
        let fluvio = connect(&target).await?;
        say!("dashboard: following the derived topics of the Fluvio cluster {target}");
        follow(&fluvio, &config, &feed, &stop).await
    })?;
    say!(
        "dashboard: {} batches shown, {} dropped while the dashboard was behind",
        stats.sent,
        stats.dropped
    );
    dashboard.stop();
    Ok(if signal.received() {
        signal.exit_code()
    } else {
        ExitCode::SUCCESS
    })
}
