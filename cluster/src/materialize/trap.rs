//! A record a chain *traps* on in an SPU: a panic, an out-of-bounds access or a memory limit in
//! a module ends the chain's instance, and the SPU reports only `SmartModule err …`, with no
//! offset (`fluvio-spu` `stream_fetch.rs`: the error of `process_batch` becomes
//! `ErrorCode::Other`). A module's own error names its record; a trap does not.
//!
//! What the lane knows is where the failing fetch starts: `read_to`, after the last batch the
//! SPU reported done. The record is found with the SPU itself, by probes: a probe opens the
//! lane's chain as a restart would (resume point, seed, skipped records) and also leaves out
//! every offset from `m` on (`stockstream.skip` `m..`), so it runs the chain over exactly the
//! input before `m`. It fails iff a record before `m` traps, given the state the chain has
//! there; that is monotone in `m`, so doubling steps from `read_to` bound the record and a
//! bisection finds it: about 2·log2(distance) probes, each a bounded restart of one lane.
//!
//! A trap the probes do not meet again (a transient failure) is reported and the lanes go on.
//! A record that traps even when left out fails in the SPU before any module sees it (the
//! SPU's copy of its batch into the chain's memory): no skip can help, and materialize stops
//! with its offset.

use std::time::Instant;

use anyhow::Context;
use fluvio::consumer::ConsumerConfigExtBuilder;
use fluvio::dataplane::link::ErrorCode;
use fluvio::{Fluvio, Offset};
use fluvio_future::timer::sleep;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use stockstream_pipeline::Stream;
use stockstream_runner::replay::ChainReplay;
use stockstream_smartmodule::read_progress;

use super::{
    end_offset, load_chains, open_chain, source_topic, ChainInput, Checkpoint, LanePosition,
    LaneStart, MaterializeConfig, CHECKPOINT_FILE, STALL,
};

/// What an SPU says when a chain traps (`process_batch` failed).
const TRAP_PREFIX: &str = "SmartModule err";

/// Whether a lane's `ErrorCode::Other` is a trap of its chain in the SPU.
pub(super) fn is_trap(message: &str) -> bool {
    message.starts_with(TRAP_PREFIX)
}

/// A lane whose chain trapped in the SPU.
#[derive(Debug, Clone)]
pub(super) struct Trap {
    pub stream: Stream,
    pub partition: u32,
    /// The lane's `read_to` then: every batch before it is done and committed.
    pub from: u64,
    /// The SPU's message.
    pub message: String,
}

/// The record a trap was on, to dead-letter and skip.
#[derive(Debug, Clone)]
pub(super) struct FoundTrap {
    pub stream: Stream,
    pub partition: u32,
    pub offset: u64,
    pub message: String,
    pub record: Vec<u8>,
}

/// Finds the record the lane's chain trapped on (see the module documentation); `None` when
/// the chain no longer traps on that input.
pub(super) async fn find_record(
    fluvio: &Fluvio,
    config: &MaterializeConfig,
    trap: &Trap,
) -> anyhow::Result<Option<FoundTrap>> {
    let started = Instant::now();
    let checkpoint: Checkpoint = config
        .outputs
        .load_json(CHECKPOINT_FILE, "materializer checkpoint")?
        .context("the checkpoint the trap was committed with is gone")?;
    let position: LanePosition = checkpoint
        .lanes
        .get(trap.stream.name())
        .and_then(|lanes| lanes.get(trap.partition as usize))
        .cloned()
        .unwrap_or_default();
    let specs = load_chains(&config.transforms_dir)?;
    let spec = &specs
        .iter()
        .find(|(stream, _)| *stream == trap.stream)
        .context("the trapped lane's chain")?
        .1;
    let replay = ChainReplay::for_chain(spec)?;
    let source = source_topic(config, trap.stream);
    let chain = ChainInput {
        stream: trap.stream,
        spec,
        replay: &replay,
        source: &source,
        partition: trap.partition,
    };
    let end = end_offset(fluvio, &source, trap.partition).await?;
    tracing::warn!(
        stream = trap.stream.name(),
        partition = trap.partition,
        from = trap.from,
        "the chain trapped in the SPU, which names no record for a trap: finding it by probes: {}",
        trap.message
    );
    let mut search = Search::new(trap.from, end);
    let mut message = trap.message.clone();
    while let Some(before) = search.next_probe() {
        let said = fails_before(fluvio, config, chain, &position, before).await?;
        search.record(before, said.is_some());
        if let Some(said) = said {
            message = said;
        }
    }
    let probes = search.probes;
    let Some(offset) = search.found() else {
        tracing::warn!(
            stream = trap.stream.name(),
            partition = trap.partition,
            "the chain no longer traps on the input from offset {} to {end}: going on",
            trap.from
        );
        return Ok(None);
    };
    anyhow::ensure!(
        !position.skipped.contains(&offset),
        "the {} chain traps in the SPU on partition {} of {source} at the batch of offset {offset} even with that record left out by the modules: the SPU fails on the batch before any module sees it (more than its SmartModule memory limit?); everything before is committed. The SPU said: {message}",
        trap.stream.name(),
        trap.partition
    );
    let record = read_record(fluvio, &source, trap.partition, offset).await?;
    tracing::warn!(
        stream = trap.stream.name(),
        partition = trap.partition,
        offset,
        probes,
        seconds = started.elapsed().as_secs_f64(),
        "found the record the chain traps on: dead-lettered, the lanes go on without it"
    );
    Ok(Some(FoundTrap {
        stream: trap.stream,
        partition: trap.partition,
        offset,
        message: format!("the chain trapped in the SPU on this record: {message}"),
        record,
    }))
}

/// The search for the first offset a chain traps on, given that it passes everything before
/// `from` and trapped somewhere in `[from, end)`: a probe `m` runs the chain over the input
/// before `m` only, and whether it traps is monotone in `m`. Doubling steps from `from` bound
/// the record, then a bisection finds it, in about 2·log2(distance) probes.
#[derive(Debug)]
struct Search {
    /// The chain passes the input before this offset...
    passes: u64,
    /// ...and traps on the input before this one (once a probe has seen it).
    traps: Option<u64>,
    step: u64,
    end: u64,
    /// Probes so far.
    probes: u32,
}

impl Search {
    fn new(from: u64, end: u64) -> Self {
        Self {
            passes: from,
            traps: None,
            step: 1,
            end,
            probes: 0,
        }
    }

    /// The next `m` to probe, `None` once the search is over.
    fn next_probe(&self) -> Option<u64> {
        match self.traps {
            Some(traps) => {
                (traps - self.passes > 1).then(|| self.passes + (traps - self.passes) / 2)
            }
            None => {
                let before = self.passes.saturating_add(self.step).min(self.end);
                (before > self.passes).then_some(before)
            }
        }
    }

    /// What the probe of `before` gave.
    fn record(&mut self, before: u64, trapped: bool) {
        self.probes += 1;
        if trapped {
            self.traps = Some(before);
        } else {
            self.passes = before;
            self.step = self.step.saturating_mul(2);
        }
    }

    /// The offset the chain traps on: the last one whose input the chain passes without it.
    /// `None` when no probe trapped (the input up to `end` went through).
    fn found(&self) -> Option<u64> {
        self.traps.map(|_| self.passes)
    }
}

/// Runs the lane's chain over its input before `before` (every later offset left out): the
/// SPU's message if it traps, `None` once it has gone past `before - 1`.
async fn fails_before(
    fluvio: &Fluvio,
    config: &MaterializeConfig,
    chain: ChainInput<'_>,
    position: &LanePosition,
    before: u64,
) -> anyhow::Result<Option<String>> {
    let start = LaneStart::of(position, chain.replay);
    let mut records = open_chain(
        fluvio,
        config,
        chain,
        &start,
        &position.skipped,
        Some(before),
    )
    .await?;
    loop {
        let item = match select(records.next(), Box::pin(sleep(STALL))).await {
            Either::Left((item, _)) => item,
            Either::Right(_) => anyhow::bail!(
                "looking for the record the {} chain traps on: the SPU reported no progress for {} s",
                chain.stream.name(),
                STALL.as_secs()
            ),
        };
        match item {
            Some(Ok(record)) => {
                let key = record.record.key.as_ref().map(|k| k.as_ref());
                if let Some(progress) = read_progress(key, record.record.value.as_ref()) {
                    if progress.end >= before as i64 {
                        return Ok(None);
                    }
                }
            }
            Some(Err(ErrorCode::Other(message))) if is_trap(&message) => return Ok(Some(message)),
            Some(Err(error)) => anyhow::bail!(
                "looking for the record the {} chain traps on, on partition {} of {}: {error}",
                chain.stream.name(),
                chain.partition,
                chain.source
            ),
            None => anyhow::bail!(
                "looking for the record the {} chain traps on: the stream ended (connection to the SPU lost?)",
                chain.stream.name()
            ),
        }
    }
}

/// The bytes of the record at `offset`, read without any module.
async fn read_record(
    fluvio: &Fluvio,
    topic: &str,
    partition: u32,
    offset: u64,
) -> anyhow::Result<Vec<u8>> {
    let mut records = fluvio
        .consumer_with_config(
            ConsumerConfigExtBuilder::default()
                .topic(topic.to_owned())
                .partition(partition)
                .offset_start(Offset::absolute(offset as i64).context("record offset")?)
                .build()
                .context("consumer settings")?,
        )
        .await
        .with_context(|| format!("cannot consume {topic} partition {partition}"))?;
    let record = match select(records.next(), Box::pin(sleep(STALL))).await {
        Either::Left((Some(record), _)) => record?,
        _ => anyhow::bail!(
            "reading the record at offset {offset} of {topic} partition {partition}: none came"
        ),
    };
    anyhow::ensure!(
        record.offset() == offset as i64,
        "asked for the record at offset {offset} of {topic} partition {partition}, got offset {}",
        record.offset()
    );
    Ok(record.value().to_vec())
}

#[cfg(test)]
mod tests {
    use super::Search;

    /// Probes a chain that traps on `culprit` (and on nothing else).
    fn find(from: u64, end: u64, culprit: Option<u64>) -> (Option<u64>, u32) {
        let mut search = Search::new(from, end);
        while let Some(before) = search.next_probe() {
            assert!(
                before > from && before <= end,
                "probe {before} outside ({from}, {end}]"
            );
            search.record(before, culprit.is_some_and(|c| c < before));
        }
        (search.found(), search.probes)
    }

    #[test]
    fn finds_the_record_anywhere_in_about_two_log2_of_its_distance() {
        for from in [0, 7, 1_000_000] {
            for distance in [0u64, 1, 2, 3, 5, 8, 99, 900, 4_095, 4_096, 100_000] {
                let end = from + distance + 1 + distance / 3;
                let culprit = from + distance;
                let (found, probes) = find(from, end, Some(culprit));
                assert_eq!(
                    found,
                    Some(culprit),
                    "from {from}, culprit {culprit}, end {end}"
                );
                let bound = 2 * (64 - (distance + 1).leading_zeros()) + 1;
                assert!(
                    probes <= bound,
                    "{probes} probes for a distance of {distance}"
                );
            }
        }
    }

    #[test]
    fn a_trap_not_met_again_is_no_record_and_an_empty_range_needs_no_probe() {
        let (found, probes) = find(10, 5_000, None);
        assert_eq!(found, None);
        assert!(probes <= 14, "{probes}");
        assert_eq!(find(10, 10, None), (None, 0));
        // The last offset before the end.
        assert_eq!(find(10, 20, Some(19)).0, Some(19));
    }
}
