//! A restart: the input up to the checkpoint is read again (and checked against its hash), and
//! each chain replays the records its state depends on before processing goes on.

use std::collections::BTreeMap;
use std::path::Path;

use stockstream_core::bars::Watermark;
use stockstream_ticks::{InputItem, Pacer};

use super::chains::{BarsLateness, Chains};
use super::reader::Reader;
use super::worker::{Job, Worker};
use super::RunConfig;
use crate::checkpoint::{Checkpoint, PrefixHash};
use crate::replay::ReplayPlanner;
use crate::source;

/// Re-reads the input up to the checkpoint (checking it is the same input), hands each chain
/// the records its state needs, and waits until every chain has started and replayed them.
pub(super) fn restart(
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
        let skipped: std::collections::BTreeSet<u64> = previous.skipped.iter().copied().collect();
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
                    config.outputs,
                    previous.offset
                )
            })?;
            match item {
                InputItem::Record { line: l, value } => {
                    hash.update(&value);
                    // A record a chain failed on never reaches a chain again.
                    if !skipped.contains(&position) {
                        planner.observe(&value);
                    }
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
            config.outputs
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
        pacer: Pacer::controlled(config.replay.clone()),
        held: None,
        offset: previous.map_or(0, |c| c.offset),
        line,
        hash,
        bars_lateness,
        reported: previous.map_or(0, |c| c.counts.invalid_total() + c.counts.failed),
    };
    Ok((reader, replayed))
}

pub(super) fn remove_stale_temp_files(root: &Path) -> std::io::Result<()> {
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
