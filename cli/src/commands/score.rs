//! `stockstream score`: precision, recall and F1 of outputs/anomalies against ground truth.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use stockstream_pipeline::score::{read_stream, read_truth, score, Tolerance};
use stockstream_pipeline::Stream;

use super::run::parse_cooldown;
use super::store::StoreArgs;

#[derive(Args)]
pub struct ScoreArgs {
    /// Ground truth: JSON lines with at least `symbol` and `ts` (the synthetic generator's
    /// injected anomalies).
    #[arg(long, value_name = "FILE")]
    truth: PathBuf,
    /// Root of the outputs of `stockstream run`: a directory, or an object store prefix
    /// (s3://bucket/prefix, ...).
    #[arg(long, default_value = "outputs", value_name = "DIR|URL")]
    outputs: String,
    #[command(flatten)]
    store: StoreArgs,
    /// How far a detection may be from the truth: ticks of the symbol (`3ticks`) or event time
    /// (`500ms`, `2s`).
    #[arg(long, default_value = "3ticks", value_name = "N ticks|DURATION")]
    tolerance: Tolerance,
    /// Alerts for the episode-level figures: anomalies of a symbol at most this far apart (event
    /// time) are one alert, as in `run --alert-cooldown`.
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = parse_cooldown)]
    alert_cooldown: i64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let outputs = args.store.open(&args.outputs)?;
    let anomalies_dir = outputs.display_join(Stream::Anomalies.dir());
    let present = match outputs.local() {
        Some(root) => root.join(Stream::Anomalies.dir()).is_dir(),
        // A prefix has no directories: the enriched ticks say a run wrote there.
        None => !outputs.part_files(Stream::Enriched.dir())?.is_empty(),
    };
    anyhow::ensure!(
        present,
        "no anomalies in {anomalies_dir}: run `stockstream run` first (or pass --outputs DIR|URL)"
    );
    let truth = read_truth(&args.truth)?;
    let detected = read_stream(&outputs, Stream::Anomalies)?;
    let ticks = match args.tolerance {
        Tolerance::Ticks(_) => {
            let mut by_symbol: HashMap<Box<str>, Vec<i64>> = HashMap::new();
            for (symbol, ts) in read_stream(&outputs, Stream::Enriched)? {
                by_symbol.entry(symbol).or_default().push(ts);
            }
            Some(by_symbol)
        }
        Tolerance::Ms(_) => None,
    };
    let s = score(
        &detected,
        &truth,
        args.tolerance,
        ticks.as_ref(),
        args.alert_cooldown,
    )?;
    if args.json {
        out!("{}", serde_json::to_string(&s)?);
    } else {
        out!(
            "score: {} detected, {} true anomalies, {} matched (tolerance {}, one-to-one)",
            s.detected,
            s.truth,
            s.matched,
            s.tolerance
        );
        out!(
            "precision {:.4}  recall {:.4}  F1 {:.4}",
            s.precision,
            s.recall,
            s.f1
        );
        let e = &s.episodes;
        out!(
            "alerts (cooldown {} ms): {} alerts, {} with a true anomaly, {} of {} true anomalies inside an alert",
            e.cooldown_ms, e.alerts, e.right, e.found, e.truth
        );
        out!(
            "alert precision {:.4}  recall {:.4}  F1 {:.4}",
            e.precision,
            e.recall,
            e.f1
        );
    }
    Ok(ExitCode::SUCCESS)
}
