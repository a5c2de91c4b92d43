//! One thread per chain: it owns the running chain, takes batches in order and turns what
//! the chain emits into rows.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use anyhow::Context;
use fluvio_protocol::record::Record;
use stockstream_runner::chain::failure_message;
use stockstream_runner::{Chain, ChainSpec, SmartEngine, WasmLocator};

use super::chains::is_flagged;
use crate::outputs::{parse_rows, Rows, Stream};

/// What a chain made of one batch.
pub(super) struct ChainOutput {
    pub(super) rows: Rows,
    /// Records the chain rejected: index in its input batch, the module's message, the record.
    pub(super) failures: Vec<(usize, String, Vec<u8>)>,
    pub(super) raw: Option<Vec<Vec<u8>>>,
}

/// A chain failed on a batch (a WASM trap, or output the host cannot read): the chain's
/// state is lost with it, so the run restarts from its last commit to find and skip the record.
#[derive(Debug, thiserror::Error)]
#[error("the {} chain failed: {message}", stream.name())]
pub(super) struct ChainFailure {
    pub(super) stream: Stream,
    pub(super) message: String,
}

/// Where a chain's output goes on to: the queue of the chain it feeds, and whether only the
/// records the enriched chain flagged need to go (see `chains::only_flagged_can_pass`).
pub(super) struct Downstream {
    pub(super) jobs: SyncSender<Job>,
    pub(super) only_flagged: bool,
}

/// Work for a chain's thread, in order.
pub(super) enum Job {
    /// Rebuild state from these earlier records (always the first job, possibly empty).
    LookBack(Vec<Vec<u8>>),
    Batch(Arc<Vec<Record>>),
}

pub(super) struct Worker {
    pub(super) stream: Stream,
    pub(super) jobs: SyncSender<Job>,
    /// `None` acknowledges a look-back.
    pub(super) results: Receiver<anyhow::Result<Option<ChainOutput>>>,
}

/// Batches in flight before the reader waits for the oldest.
pub(super) const PIPELINE_DEPTH: usize = 3;

/// Where a chain's modules come from, and the memory they may use together.
pub(super) struct ModuleSource {
    pub(super) engine: SmartEngine,
    pub(super) wasm: WasmLocator,
    pub(super) memory_limit: Option<usize>,
}

/// Starts a chain on its own thread: compiling the modules (the slow part of a start) happens
/// there, in parallel with the other chains and with the re-reading of the input.
///
/// With `downstream`, the records this chain emits for each batch are the next job of that
/// chain's thread (stock-anomalies is scored from stock-enriched this way).
pub(super) fn spawn_worker<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    stream: Stream,
    spec: ChainSpec,
    modules: ModuleSource,
    keep_raw: bool,
    downstream: Option<Downstream>,
) -> Worker {
    let (jobs, job_rx) = sync_channel::<Job>(PIPELINE_DEPTH);
    let (result_tx, results) = sync_channel(PIPELINE_DEPTH + 1);
    std::thread::Builder::new()
        .name(format!("chain-{}", stream.name()))
        .spawn_scoped(scope, move || {
            let mut chain = match spec
                .instantiate_with_memory_limit(&modules.engine, &modules.wasm, modules.memory_limit)
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
                    Job::LookBack(records) => chain
                        .look_back_values(records)
                        .with_context(|| format!("rebuilding the {} chain's state", stream.name()))
                        .map(|()| None),
                    Job::Batch(batch) => process(&mut chain, stream, &batch, keep_raw)
                        .map_err(|e| {
                            anyhow::Error::new(ChainFailure {
                                stream,
                                message: failure_message(&e),
                            })
                        })
                        .map(|(output, records)| {
                            if let Some(downstream) = &downstream {
                                let mut records = records;
                                if downstream.only_flagged {
                                    records.retain(|r| is_flagged(r.value.as_ref()));
                                }
                                // A stopped downstream thread has sent its error: the main
                                // loop reads it there.
                                let _ = downstream.jobs.send(Job::Batch(Arc::new(records)));
                            }
                            Some(output)
                        }),
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

/// Runs a batch through the chain: the rows, and the records the chain emitted.
pub(super) fn process(
    chain: &mut Chain,
    stream: Stream,
    batch: &[Record],
    keep_raw: bool,
) -> anyhow::Result<(ChainOutput, Vec<Record>)> {
    let output = chain.process(batch)?;
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
        .map(|f| {
            let record = batch
                .get(f.index)
                .map_or_else(Vec::new, |r| r.value.as_ref().to_vec());
            (f.index, f.hint, record)
        })
        .collect();
    Ok((
        ChainOutput {
            rows,
            failures,
            raw,
        },
        output.records,
    ))
}
