//! The derived topics read back through the fluvio client: the dashboard's source in cluster
//! mode (`stockstream dashboard --fluvio`).
//!
//! Every partition of stock-enriched, stock-anomalies and stock-bars-5m is followed from a
//! little before its end (so the charts start with recent history), and the records are handed
//! on in batches per stream, like the embedded pipeline hands over a processed batch. The
//! dashboard never slows the cluster down: a full feed drops the batch for it (counted).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use fluvio::consumer::{ConsumerConfigExtBuilder, Record as ConsumerRecord};
use fluvio::{Fluvio, Offset};
use fluvio_future::timer::sleep;
use futures_util::future::{select, Either};
use futures_util::stream::{select_all, Stream as FuturesStream, StreamExt};
use stockstream_pipeline::dashboard::{DashboardFeed, DerivedBatch, FeedStats};
use stockstream_pipeline::Stream;

use crate::materialize::topic_partitions;
use crate::topics;

/// Settings of the derived-topic source.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Records read back from before the end of each partition on start.
    pub history: u32,
    /// Most records in one batch to the dashboard.
    pub batch: usize,
    /// A partly filled batch goes out after this long.
    pub linger: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            history: 5_000,
            batch: 1_024,
            linger: Duration::from_millis(50),
        }
    }
}

type Item = (Stream, Result<ConsumerRecord, String>);

/// Feeds the dashboard from the derived topics until `stop` is set.
pub async fn follow(
    fluvio: &Fluvio,
    config: &FollowConfig,
    feed: &DashboardFeed,
    stop: &AtomicBool,
) -> anyhow::Result<FeedStats> {
    let mut streams: Vec<Pin<Box<dyn FuturesStream<Item = Item>>>> = Vec::new();
    for (stream, topic) in topics::DERIVED {
        let partitions = topic_partitions(fluvio, topic).await?;
        for partition in 0..partitions {
            let consumer = fluvio
                .consumer_with_config(
                    ConsumerConfigExtBuilder::default()
                        .topic(topic.to_owned())
                        .partition(partition)
                        .offset_start(Offset::from_end(config.history))
                        .max_bytes(crate::READ_MAX_BYTES)
                        .build()
                        .context("consumer settings")?,
                )
                .await
                .with_context(|| format!("cannot consume {topic} partition {partition}"))?;
            streams.push(Box::pin(
                consumer.map(move |item| (stream, item.map_err(|e| format!("{e:?}")))),
            ));
        }
    }
    let mut merged = select_all(streams);
    let mut stats = FeedStats::default();
    let mut batches: Vec<Vec<Vec<u8>>> = vec![Vec::new(); Stream::OUTPUTS.len()];
    let mut received = 0u64;
    let mut timer = Box::pin(sleep(config.linger));
    while !stop.load(Ordering::Relaxed) {
        match select(merged.next(), &mut timer).await {
            Either::Left((Some((stream, item)), _)) => {
                let record =
                    item.map_err(|e| anyhow::anyhow!("reading {}: {e}", topics::derived(stream)))?;
                let batch = &mut batches[stream.index()];
                batch.push(record.record.value.as_ref().to_vec());
                if batch.len() >= config.batch {
                    offer(feed, &mut stats, stream, batch, &mut received);
                }
            }
            Either::Left((None, _)) => break,
            Either::Right(_) => {
                timer = Box::pin(sleep(config.linger));
                for stream in Stream::OUTPUTS {
                    let batch = &mut batches[stream.index()];
                    if !batch.is_empty() {
                        offer(feed, &mut stats, stream, batch, &mut received);
                    }
                }
            }
        }
    }
    Ok(stats)
}

fn offer(
    feed: &DashboardFeed,
    stats: &mut FeedStats,
    stream: Stream,
    batch: &mut Vec<Vec<u8>>,
    received: &mut u64,
) {
    let records = std::mem::take(batch);
    let first_offset = *received;
    *received += records.len() as u64;
    stats.offer(
        feed,
        DerivedBatch {
            stream,
            first_offset,
            records,
        },
    );
}
