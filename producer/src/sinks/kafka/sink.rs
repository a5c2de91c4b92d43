//! The Kafka sink on rdkafka: a threaded, idempotent producer (`acks=all`), key = symbol.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::KafkaSettings;
use crate::sinks::{Sink, SinkError};

const NAME: &str = "kafka";
/// How long to wait for the cluster's metadata at start-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `flush`/`close` wait for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a send waits for room in librdkafka's queue before giving up.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(60);

/// librdkafka's own logs and client errors, to tracing with secrets scrubbed; a client error
/// that repeats (librdkafka repeats them while a broker is down) is shown once, then at debug.
/// Shared by every rdkafka client of the project.
pub struct ClientLog {
    settings: KafkaSettings,
    errors: AtomicU64,
    seen: Mutex<HashSet<String>>,
}

impl ClientLog {
    pub fn new(settings: KafkaSettings) -> Self {
        Self {
            settings,
            errors: AtomicU64::new(0),
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The settings, for scrubbing messages.
    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    /// Client errors reported so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let message = self.settings.scrub(log_message);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    pub fn error(&self, error: KafkaError, reason: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let message = self.settings.scrub(&format!("{error}: {reason}"));
        let new = self
            .seen
            .lock()
            .expect("not poisoned")
            .insert(message.clone());
        if new {
            tracing::warn!(target: "librdkafka", "{message}");
        } else {
            tracing::debug!(target: "librdkafka", "{message}");
        }
    }
}

/// Counts deliveries and forwards librdkafka's own logs to tracing, with secrets scrubbed.
struct Context {
    log: ClientLog,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_failure.lock().expect("not poisoned");
                first.get_or_insert_with(|| self.log.settings().scrub(&error.to_string()));
            }
        }
    }
}

/// Ticks to a Kafka topic.
pub struct KafkaSink {
    producer: ThreadedProducer<Context>,
    topic: String,
    bootstrap: String,
    sent: u64,
}

impl KafkaSink {
    /// Creates the producer and checks that the cluster answers (within 10 s).
    pub fn connect(settings: KafkaSettings, topic: &str) -> Result<Self, SinkError> {
        let mut client = ClientConfig::new();
        for (key, value) in settings.iter() {
            client.set(key, value);
        }
        let bootstrap = settings.get("bootstrap.servers").unwrap_or("").to_owned();
        let context = Context {
            log: ClientLog::new(settings.clone()),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_failure: Mutex::new(None),
        };
        let producer: ThreadedProducer<Context> =
            client
                .create_with_context(context)
                .map_err(|e| SinkError::Config {
                    sink: NAME,
                    message: settings.scrub(&format!("cannot create the producer: {e}")),
                })?;
        producer
            .client()
            .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
            .map_err(|e| SinkError::Delivery {
                sink: NAME,
                message: settings.scrub(&format!(
                    "no answer from {bootstrap} for topic {topic} within {} s: {e} (is the broker running?)",
                    CONNECT_TIMEOUT.as_secs()
                )),
                retryable: true,
            })?;
        tracing::info!("kafka: connected to {bootstrap}, topic {topic}");
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            bootstrap,
            sent: 0,
        })
    }

    fn check_deliveries(&self) -> Result<(), SinkError> {
        let context = self.producer.context();
        let failed = context.failed.load(Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let first = context
            .first_failure
            .lock()
            .expect("not poisoned")
            .clone()
            .unwrap_or_default();
        Err(SinkError::Delivery {
            sink: NAME,
            message: format!(
                "{failed} record(s) not delivered to {} topic {} (first: {first})",
                self.bootstrap, self.topic
            ),
            retryable: true,
        })
    }
}

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        format!("kafka {} topic {}", self.bootstrap, self.topic)
    }

    fn send(&mut self, key: &[u8], record: &[u8]) -> Result<(), SinkError> {
        self.send_message(Some(key), Some(record), &[])
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| SinkError::Delivery {
                sink: NAME,
                message: format!(
                    "{} record(s) still undelivered after {} s: {e}",
                    self.producer.in_flight_count(),
                    FLUSH_TIMEOUT.as_secs()
                ),
                retryable: true,
            })?;
        self.check_deliveries()
    }
}

impl KafkaSink {
    /// Queues one message of any shape (no key, no value, headers): what a dead-letter
    /// topic takes. Waits for room when librdkafka's queue is full.
    pub fn send_message(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<(), SinkError> {
        self.check_deliveries()?;
        let mut waited_since = None;
        loop {
            let mut message = BaseRecord::<[u8], [u8]>::to(&self.topic);
            if let Some(key) = key {
                message = message.key(key);
            }
            if let Some(value) = value {
                message = message.payload(value);
            }
            if !headers.is_empty() {
                let mut owned = OwnedHeaders::new_with_capacity(headers.len());
                for (name, value) in headers {
                    owned = owned.insert(Header {
                        key: name,
                        value: Some(*value),
                    });
                }
                message = message.headers(owned);
            }
            match self.producer.send(message) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Back-pressure: the background thread drains the queue; wait for room.
                    let since = *waited_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > QUEUE_FULL_TIMEOUT {
                        return Err(SinkError::Delivery {
                            sink: NAME,
                            message: format!(
                                "the producer queue stayed full for {} s: {} is not taking records",
                                QUEUE_FULL_TIMEOUT.as_secs(),
                                self.bootstrap
                            ),
                            retryable: true,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    return Err(SinkError::Delivery {
                        sink: NAME,
                        message: self
                            .producer
                            .context()
                            .log
                            .settings()
                            .scrub(&format!("cannot queue a record: {error}")),
                        retryable: false,
                    })
                }
            }
        }
    }
}
