//! The main loop: batches to the chains, results back in order, commits when due.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::reader::{Batch, BatchMeta, Reader};
use super::state::State;
use super::worker::{Job, Worker, PIPELINE_DEPTH};
use super::{Event, Outcome, Progress};

pub(super) fn main_loop<'c>(
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
                // Chains fed by another chain get the batch from it.
                for worker in workers.iter().filter(|w| w.stream.input().is_none()) {
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
