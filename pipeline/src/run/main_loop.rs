//! The main loop: batches to the chains, results back in order, commits when due.

use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fluvio_protocol::record::Record;

use super::reader::{Batch, BatchMeta, DeadLetter, Reader};
use super::state::State;
use super::worker::{ChainFailure, ChainOutput, Job, Worker, PIPELINE_DEPTH};
use super::{Event, Outcome, Progress};
use crate::outputs::{parse_rows, Stream};

/// How the main loop ended.
pub(super) enum LoopEnd<'c> {
    /// The input ended, or the run was asked to stop: everything is committed.
    Done(Outcome, Box<State<'c>>),
    /// A chain failed on a batch. Everything before the batch is committed; when the batch held
    /// one record, that record is dead-lettered, recorded as skipped and committed too.
    ChainFailed(FailedBatch),
}

/// A batch a chain failed on.
#[derive(Debug, Clone)]
pub(super) struct FailedBatch {
    pub(super) stream: Stream,
    pub(super) message: String,
    /// The batch's input positions.
    pub(super) range: Range<u64>,
    /// The record now skipped, when the batch held only one.
    pub(super) skipped: Option<u64>,
}

/// Records per batch starting at `offset`: one at a time inside `probe` (the records of a batch
/// a chain failed on, to find the one it fails on).
fn batch_size_at(offset: u64, size: usize, probe: Option<&Range<u64>>) -> usize {
    match probe {
        Some(probe) if probe.contains(&offset) => 1,
        _ => size,
    }
}

/// The input position a batch starting at `offset` must not read past: the start of `probe`,
/// the next position to commit at, or where to stop.
fn next_cut(
    offset: u64,
    probe: Option<&Range<u64>>,
    commit_at: Option<&BTreeSet<u64>>,
    stop_at: Option<u64>,
) -> Option<u64> {
    let probe_start = probe.map(|p| p.start).filter(|&start| start > offset);
    let commit = commit_at.and_then(|at| at.range(offset + 1..).next().copied());
    let stop = stop_at.filter(|&stop| stop > offset);
    [probe_start, commit, stop].into_iter().flatten().min()
}

pub(super) fn main_loop<'c>(
    mut state: State<'c>,
    mut reader: Reader,
    workers: Vec<Worker>,
    stop: &AtomicBool,
    started: Instant,
    probe: Option<&Range<u64>>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<LoopEnd<'c>> {
    let config = state.config;
    let first_offset = reader.offset;
    let mut in_flight: VecDeque<(BatchMeta, Arc<Vec<Record>>)> = VecDeque::new();
    let mut last_progress = Instant::now();
    // The oldest batch's results; a chain's failure on it ends the loop (`Some`).
    let complete_oldest = |state: &mut State<'_>,
                           in_flight: &mut VecDeque<(BatchMeta, Arc<Vec<Record>>)>,
                           reported: &mut u64,
                           on_event: &mut dyn FnMut(Event<'_>)|
     -> anyhow::Result<Option<FailedBatch>> {
        let (meta, records) = in_flight.pop_front().expect("a batch in flight");
        let mut outputs = Vec::with_capacity(workers.len());
        for worker in &workers {
            let result = worker
                .results
                .recv()
                .map_err(|_| anyhow::anyhow!("the {} chain stopped", worker.stream.name()))?;
            let output = match result {
                Ok(output) => output.expect("a batch's result"),
                Err(error) => match error.downcast::<ChainFailure>() {
                    Ok(failure) => {
                        return fail_batch(state, meta, &records, failure, reported, on_event)
                            .map(Some)
                    }
                    Err(error) => {
                        return Err(error.context(format!("the {} chain", worker.stream.name())))
                    }
                },
            };
            outputs.push((worker.stream, output));
        }
        state.complete(meta, outputs, config.max_reported, reported, on_event);
        Ok(None)
    };
    // Completes every batch in flight, up to a failure.
    macro_rules! drain {
        () => {
            while !in_flight.is_empty() {
                if let Some(failed) =
                    complete_oldest(&mut state, &mut in_flight, &mut reader.reported, on_event)?
                {
                    return Ok(LoopEnd::ChainFailed(failed));
                }
            }
        };
    }
    let outcome = loop {
        if config.stop_at.is_some_and(|at| reader.offset >= at) {
            break Outcome::Stopped;
        }
        let size = batch_size_at(reader.offset, config.batch_size, probe);
        let until = next_cut(
            reader.offset,
            probe,
            config.commit_at.as_deref(),
            config.stop_at,
        );
        let batch = reader.next_batch(size, until, stop, config.max_reported, on_event)?;
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
                // Chains fed by another chain get the batch from it.
                let mut stopped = None;
                for worker in workers.iter().filter(|w| w.stream.input().is_none()) {
                    if worker.jobs.send(Job::Batch(records.clone())).is_err() {
                        stopped = Some(worker.stream);
                    }
                }
                in_flight.push_back((meta, records));
                if let Some(stream) = stopped {
                    // A chain that stopped has sent why with an earlier batch's result.
                    drain!();
                    anyhow::bail!("the {} chain stopped", stream.name());
                }
                while in_flight.len() >= PIPELINE_DEPTH {
                    if let Some(failed) =
                        complete_oldest(&mut state, &mut in_flight, &mut reader.reported, on_event)?
                    {
                        return Ok(LoopEnd::ChainFailed(failed));
                    }
                }
            }
            // A quiet stream: finish what is in the chains, so it reaches the outputs (and
            // the dashboard) now rather than when more input comes.
            Some(Batch::Idle) => drain!(),
        }
        let due = match &config.commit_at {
            // Only once every batch before the position is in.
            Some(at) if at.contains(&reader.offset) => {
                drain!();
                true
            }
            Some(_) => false,
            None => {
                state.pending_records() >= config.commit_records
                    || state.last_commit.elapsed() >= config.commit_interval
            }
        };
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
    drain!();
    state.commit(outcome == Outcome::Finished, on_event)?;
    Ok(LoopEnd::Done(outcome, Box::new(state)))
}

/// A chain failed on the batch of `meta`, whose predecessors have all completed: commits them,
/// and when the batch held a single record, that record as dead-lettered and skipped (no chain
/// gets it, now or in a restart's replay).
fn fail_batch(
    state: &mut State<'_>,
    mut meta: BatchMeta,
    records: &[Record],
    failure: ChainFailure,
    reported: &mut u64,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<FailedBatch> {
    let range = meta.first_offset..meta.end_offset;
    let skipped = match (meta.offsets.as_slice(), records) {
        ([offset], [record]) => Some((*offset, record)),
        _ => None,
    };
    if let Some((offset, record)) = skipped {
        let line = meta.lines.first().copied().unwrap_or(meta.last_line);
        let message = format!(
            "the {} chain failed on this record: {}; skipped by every chain",
            failure.stream.name(),
            failure.message
        );
        *reported += 1;
        if *reported <= state.config.max_reported {
            on_event(Event::Invalid {
                line,
                message: &message,
            });
        }
        meta.counts.failed += 1;
        // The record's own figures leave with it: it reaches no chain and no output.
        meta.counts.late_bars = 0;
        meta.max_ts = None;
        meta.dead.push(DeadLetter::new(
            offset,
            line,
            "module_failed".into(),
            message,
            record.value.as_ref(),
        ));
        let mut outputs = Vec::with_capacity(Stream::ALL.len());
        for stream in Stream::ALL {
            let rows = parse_rows(stream, std::iter::empty())?;
            outputs.push((
                stream,
                ChainOutput {
                    rows,
                    failures: Vec::new(),
                    raw: None,
                },
            ));
        }
        state.complete(meta, outputs, state.config.max_reported, reported, on_event);
        state.pending_skipped.push(offset);
    }
    state
        .commit(false, on_event)
        .context("committing before the failed batch")?;
    Ok(FailedBatch {
        stream: failure.stream,
        message: failure.message,
        range,
        skipped: skipped.map(|(offset, _)| offset),
    })
}
