//! The Kafka side of the bridge: a consumer in the bridge's group, validation of every record,
//! the dead-letter topic, offsets, lag and counters.
//!
//! The input never commits on its own. Its owner (the destination) tells it which positions
//! the destination has made safe, and [`KafkaInput::commit`] first waits for the dead-letter
//! producer to have every invalid record before them, then commits: a record is never
//! committed before it is somewhere.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use producer::sinks::kafka::{ClientLog, KafkaSettings, KafkaSink};
use producer::sinks::Sink;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use stockstream_core::tick::parse_tick;

use crate::config::BridgeConfig;

/// How long metadata and offset look-ups may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long start-up look-ups are retried before the bridge gives up.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Why the bridge cannot go on; `retryable` when running it again later may help.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("bridge settings: {0}")]
    Config(String),
    #[error("kafka: {message}")]
    Kafka { message: String, retryable: bool },
    #[error("dead-letter topic: {0}")]
    DeadLetter(#[source] producer::SinkError),
}

impl BridgeError {
    pub fn retryable(&self) -> bool {
        match self {
            BridgeError::Config(_) => false,
            BridgeError::Kafka { retryable, .. } => *retryable,
            BridgeError::DeadLetter(e) => e.retryable(),
        }
    }
}

/// Counters of a bridge, readable from any thread while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records read from Kafka (valid and invalid).
    pub consumed: AtomicU64,
    /// Valid ticks handed to the destination.
    pub forwarded: AtomicU64,
    /// Invalid records sent to the dead-letter topic, by reason code.
    pub invalid: Mutex<BTreeMap<String, u64>>,
    /// Offset commits made.
    pub commits: AtomicU64,
    /// Kafka client errors seen (a broker down, a timeout); the client retries by itself.
    pub errors: AtomicU64,
    /// Records behind the end of the partitions at the last measurement.
    pub lag: AtomicU64,
}

impl Stats {
    pub fn invalid_total(&self) -> u64 {
        self.invalid.lock().expect("not poisoned").values().sum()
    }

    /// `consumed, forwarded, invalid (by reason), lag, errors` for summaries.
    pub fn describe(&self) -> String {
        let invalid = self.invalid.lock().expect("not poisoned");
        let mut text = format!(
            "{} records consumed, {} forwarded, {} invalid (dead-lettered), {} offset commits, lag {}, {} client errors",
            self.consumed.load(Ordering::Relaxed),
            self.forwarded.load(Ordering::Relaxed),
            invalid.values().sum::<u64>(),
            self.commits.load(Ordering::Relaxed),
            self.lag.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        );
        if !invalid.is_empty() {
            let reasons: Vec<String> = invalid.iter().map(|(r, n)| format!("{r}={n}")).collect();
            text.push_str(&format!("; invalid by reason: {}", reasons.join(", ")));
        }
        text
    }
}

/// What one poll gave.
#[derive(Debug)]
pub enum Polled {
    /// A valid tick for the destination.
    Tick {
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
    },
    /// An invalid record, now queued for the dead-letter topic.
    DeadLettered { partition: i32, offset: i64 },
    /// Nothing arrived within the poll timeout.
    Idle,
    /// Every partition is read to the end it had at start (with `stop_at_end`).
    End,
}

struct Context {
    log: ClientLog,
    stats: Arc<Stats>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.log.error(error, reason);
    }
}

impl ConsumerContext for Context {}

pub struct KafkaInput {
    consumer: BaseConsumer<Context>,
    dead_letter: KafkaSink,
    settings: KafkaSettings,
    topic: String,
    dead_letter_topic: String,
    stats: Arc<Stats>,
    /// Per partition, the offset after the last record polled.
    next: BTreeMap<i32, i64>,
    /// With `stop_at_end`: per partition, the end offset when the bridge started.
    end: Option<BTreeMap<i32, i64>>,
    last_report: Instant,
    last_forwarded: u64,
    report_interval: Duration,
    max_reported: u64,
    reported: u64,
}

impl KafkaInput {
    /// Connects, waits for the topic, and assigns this consumer every partition of it, each
    /// from `positions` where given (one past what the destination already holds), else
    /// from the group's committed offset, else from `auto.offset.reset`.
    ///
    /// One process owns every partition: the embedded pipeline keeps one set of windows,
    /// and the Fluvio destination keeps per-key order. Several bridges on one topic share
    /// it by consumer group only for offsets, so give each its own `--group`.
    pub fn connect(
        config: &BridgeConfig,
        positions: &BTreeMap<i32, i64>,
        stats: Arc<Stats>,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Self, BridgeError> {
        let (consumer_settings, producer_settings) = config
            .client_settings()
            .map_err(|errors| BridgeError::Config(errors.join("; ")))?;
        tracing::debug!(
            "bridge consumer settings: {}",
            consumer_settings.redacted().join(", ")
        );
        let mut client = ClientConfig::new();
        for (key, value) in consumer_settings.iter() {
            client.set(key, value);
        }
        let consumer: BaseConsumer<Context> = client
            .create_with_context(Context {
                log: ClientLog::new(consumer_settings.clone()),
                stats: stats.clone(),
            })
            .map_err(|e| BridgeError::Config(consumer_settings.scrub(&e.to_string())))?;
        let topic = config.topic().to_owned();
        let dead_letter_topic = config.dead_letter_topic();
        let dead_letter = KafkaSink::connect(producer_settings, &dead_letter_topic)
            .map_err(BridgeError::DeadLetter)?;
        let partitions = wait_for_partitions(&consumer, &topic, &consumer_settings, stop)?;
        let mut wanted = TopicPartitionList::new();
        for partition in &partitions {
            wanted.add_partition(&topic, *partition);
        }
        // A broker that has just started may not have a group coordinator yet.
        let committed = with_retries(
            &consumer_settings,
            "reading the group's committed offsets",
            stop,
            || consumer.committed_offsets(wanted.clone(), LOOKUP_TIMEOUT),
        )?;
        let mut assignment = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        let mut end = config.stop_at_end.then(BTreeMap::new);
        for partition in &partitions {
            let committed =
                committed
                    .find_partition(&topic, *partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
            let start = match (positions.get(partition).copied(), committed) {
                (Some(held), Some(committed)) => Offset::Offset(held.max(committed)),
                (Some(held), None) => Offset::Offset(held),
                (None, Some(committed)) => Offset::Offset(committed),
                (None, None) => Offset::Stored,
            };
            if let Offset::Offset(o) = start {
                next.insert(*partition, o);
            }
            assignment
                .add_partition_offset(&topic, *partition, start)
                .map_err(|e| kafka_error(&consumer_settings, "assigning partitions", e))?;
            if let Some(end) = &mut end {
                let (low, high) = with_retries(
                    &consumer_settings,
                    "reading the partitions' ends",
                    stop,
                    || consumer.fetch_watermarks(&topic, *partition, LOOKUP_TIMEOUT),
                )?;
                end.insert(*partition, high);
                next.entry(*partition).or_insert(match start {
                    Offset::Offset(o) => o,
                    _ => low,
                });
            }
            tracing::info!(topic, partition, ?start, "bridge: assigned");
        }
        consumer
            .assign(&assignment)
            .map_err(|e| kafka_error(&consumer_settings, "assigning partitions", e))?;
        Ok(Self {
            consumer,
            dead_letter,
            settings: consumer_settings,
            topic,
            dead_letter_topic,
            stats,
            next,
            end,
            last_report: Instant::now(),
            last_forwarded: 0,
            report_interval: config.report_interval,
            max_reported: config.max_reported,
            reported: 0,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits up to `timeout` for one record.
    pub fn poll(&mut self, timeout: Duration) -> Result<Polled, BridgeError> {
        if self.last_report.elapsed() >= self.report_interval {
            self.report();
        }
        if self.at_end() {
            return Ok(Polled::End);
        }
        let message = match self.consumer.poll(timeout) {
            None => return Ok(Polled::Idle),
            Some(Err(e)) => {
                // Transport errors pass (librdkafka reconnects); say so once per kind.
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("kafka: {}", self.settings.scrub(&e.to_string()));
                return Ok(Polled::Idle);
            }
            Some(Ok(message)) => message,
        };
        let partition = message.partition();
        let offset = message.offset();
        self.next.insert(partition, offset + 1);
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        let verdict = match message.payload() {
            None => Err(("empty_record", "the record has no value".to_owned())),
            Some(value) => parse_tick(value)
                .map(|_| ())
                .map_err(|reason| (reason.code(), reason.to_string())),
        };
        match verdict {
            Ok(()) => {
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                Ok(Polled::Tick {
                    partition,
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().unwrap_or_default().to_vec(),
                })
            }
            Err((code, reason)) => {
                self.reported += 1;
                if self.reported <= self.max_reported {
                    tracing::warn!(
                        "{} partition {partition} offset {offset}: invalid record ({reason}); sent to {}",
                        self.topic,
                        self.dead_letter_topic
                    );
                } else if self.reported == self.max_reported + 1 {
                    tracing::warn!("further invalid records are counted in the summary, not shown");
                }
                *self
                    .stats
                    .invalid
                    .lock()
                    .expect("not poisoned")
                    .entry(code.to_owned())
                    .or_default() += 1;
                let partition_text = partition.to_string();
                let offset_text = offset.to_string();
                let headers: [(&str, &[u8]); 5] = [
                    ("stockstream.reason", reason.as_bytes()),
                    ("stockstream.code", code.as_bytes()),
                    ("stockstream.topic", self.topic.as_bytes()),
                    ("stockstream.partition", partition_text.as_bytes()),
                    ("stockstream.offset", offset_text.as_bytes()),
                ];
                self.dead_letter
                    .send_message(message.key(), message.payload(), &headers)
                    .map_err(BridgeError::DeadLetter)?;
                Ok(Polled::DeadLettered { partition, offset })
            }
        }
    }

    /// Commits `positions` (per partition, the offset after the last record the destination
    /// has made safe), after the dead-letter topic has every invalid record before them.
    pub fn commit(&mut self, positions: &BTreeMap<i32, i64>) -> Result<(), BridgeError> {
        if positions.is_empty() {
            return Ok(());
        }
        self.dead_letter.flush().map_err(BridgeError::DeadLetter)?;
        let mut list = TopicPartitionList::new();
        for (partition, offset) in positions {
            list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .map_err(|e| kafka_error(&self.settings, "committing offsets", e))?;
        }
        self.consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| kafka_error(&self.settings, "committing offsets", e))?;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(?positions, "bridge: offsets committed");
        Ok(())
    }

    /// Delivers what waits for the dead-letter topic.
    pub fn flush_dead_letters(&mut self) -> Result<(), BridgeError> {
        self.dead_letter.flush().map_err(BridgeError::DeadLetter)
    }

    fn at_end(&self) -> bool {
        self.end.as_ref().is_some_and(|end| {
            end.iter()
                .all(|(p, high)| self.next.get(p).is_some_and(|next| next >= high))
        })
    }

    /// Measures lag (the partitions' ends less our positions) and logs rates.
    fn report(&mut self) {
        let elapsed = self.last_report.elapsed().as_secs_f64();
        self.last_report = Instant::now();
        let mut lag = 0u64;
        for (partition, next) in &self.next {
            if let Ok((_, high)) =
                self.consumer
                    .fetch_watermarks(&self.topic, *partition, Duration::from_secs(1))
            {
                lag += u64::try_from(high - next).unwrap_or(0);
            }
        }
        self.stats.lag.store(lag, Ordering::Relaxed);
        let forwarded = self.stats.forwarded.load(Ordering::Relaxed);
        tracing::info!(
            "bridge: {:.0} records/s; {}",
            (forwarded - self.last_forwarded) as f64 / elapsed.max(1e-9),
            self.stats.describe()
        );
        self.last_forwarded = forwarded;
    }

    /// Measures lag now (for the closing summary).
    pub fn measure_lag(&mut self) -> u64 {
        self.report();
        self.stats.lag.load(Ordering::Relaxed)
    }
}

/// The topic's partitions, once it exists (a bridge may start before its producer).
fn wait_for_partitions(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    settings: &KafkaSettings,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<i32>, BridgeError> {
    let mut said = false;
    loop {
        match consumer.fetch_metadata(Some(topic), LOOKUP_TIMEOUT) {
            Ok(metadata) => {
                if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) {
                    if t.error().is_none() && !t.partitions().is_empty() {
                        let mut partitions: Vec<i32> =
                            t.partitions().iter().map(|p| p.id()).collect();
                        partitions.sort_unstable();
                        return Ok(partitions);
                    }
                }
                if !said {
                    tracing::warn!("kafka: topic {topic} does not exist yet; waiting for it");
                    said = true;
                }
            }
            Err(e) => {
                if !said {
                    tracing::warn!(
                        "kafka: {}; retrying",
                        settings.scrub(&format!("no metadata for topic {topic}: {e}"))
                    );
                    said = true;
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Err(BridgeError::Kafka {
                message: format!("stopped while waiting for topic {topic}"),
                retryable: true,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `call` until it succeeds, for up to [`START_PATIENCE`] (or until `stop`): at start-up
/// a broker may still be electing a group coordinator or a leader, which passes by itself.
fn with_retries<T>(
    settings: &KafkaSettings,
    doing: &str,
    stop: &std::sync::atomic::AtomicBool,
    mut call: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> Result<T, BridgeError> {
    let started = Instant::now();
    let mut said = false;
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(e) if started.elapsed() < START_PATIENCE && !stop.load(Ordering::Relaxed) => {
                if !said {
                    tracing::warn!(
                        "kafka: {}; retrying",
                        settings.scrub(&format!("{doing}: {e}"))
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(kafka_error(settings, doing, e)),
        }
    }
}

fn kafka_error(settings: &KafkaSettings, doing: &str, error: KafkaError) -> BridgeError {
    BridgeError::Kafka {
        message: settings.scrub(&format!("{doing}: {error}")),
        retryable: true,
    }
}
