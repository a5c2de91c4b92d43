//! Kafka into a Fluvio topic (`stockstream bridge`, the default destination): each valid tick
//! is produced with its symbol as key; offsets are committed only after Fluvio has
//! acknowledged every record before them (at-least-once: a bridge killed between the two
//! sends those records again when it restarts).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use producer::sinks;
use producer::sinks::fluvio::FluvioConfig;
use stockstream_core::tick::parse_tick;

use crate::config::BridgeConfig;
use crate::input::{KafkaInput, Polled, Stats};

/// When to acknowledge: every this many records...
const COMMIT_RECORDS: u64 = 10_000;
/// ...or this long after the last commit.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How a bridge run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read to the end it had at start (`stop_at_end`).
    Finished,
    /// Asked to stop; everything forwarded is acknowledged and committed.
    Stopped,
}

/// Forwards ticks until the end (with `stop_at_end`) or until `stop` is set.
pub fn run(
    config: &BridgeConfig,
    fluvio: &FluvioConfig,
    stop: &AtomicBool,
    stats: Arc<Stats>,
) -> anyhow::Result<Outcome> {
    let mut sink = sinks::fluvio::open(fluvio)?;
    let mut input = KafkaInput::connect(config, &BTreeMap::new(), stats, stop)?;
    tracing::info!(
        "bridge: kafka topic {} -> {}",
        config.topic(),
        sink.describe()
    );
    let mut positions = BTreeMap::new();
    let mut since_commit = 0u64;
    let mut last_commit = Instant::now();
    let outcome = loop {
        if stop.load(Ordering::Relaxed) {
            break Outcome::Stopped;
        }
        match input.poll(config.poll_timeout)? {
            Polled::Tick {
                partition,
                offset,
                value,
                ..
            } => {
                let symbol = parse_tick(&value)
                    .map(|tick| tick.symbol.to_owned())
                    .expect("validated by the input");
                sink.send(symbol.as_bytes(), &value)?;
                positions.insert(partition, offset + 1);
                since_commit += 1;
            }
            Polled::DeadLettered { partition, offset } => {
                positions.insert(partition, offset + 1);
                since_commit += 1;
            }
            Polled::Idle => {}
            Polled::End => break Outcome::Finished,
        }
        if since_commit >= COMMIT_RECORDS
            || (since_commit > 0 && last_commit.elapsed() >= COMMIT_INTERVAL)
        {
            sink.flush()?;
            // A failed commit (a coordinator moving) is retried with the next one; the
            // records are in Fluvio either way.
            match input.commit(&positions) {
                Ok(()) => positions.clear(),
                Err(e) => tracing::warn!("bridge: committing offsets failed, will retry: {e}"),
            }
            since_commit = 0;
            last_commit = Instant::now();
        }
    };
    sink.close()?;
    input.commit(&positions)?;
    Ok(outcome)
}
