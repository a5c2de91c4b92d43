//! The Fluvio sink: records to a Fluvio topic through the fluvio client, key = symbol.
//!
//! The client is async; this sink drives it with `fluvio_future::task::run_block_on`, so the
//! run loop stays plain and synchronous. `send` only queues into the client's batches; the
//! delivery of each record is checked at the latest on `flush`, and every
//! [`CHECK_EVERY`] records so that the list of pending acknowledgements stays short.

use std::fmt;

use super::{Sink, SinkError};

/// Fluvio topic when none is given.
pub const DEFAULT_TOPIC: &str = "stock-ticks";

/// Settings of the Fluvio sink.
#[derive(Debug, Clone)]
pub struct FluvioConfig {
    /// Topic the ticks go to (`--fluvio-topic`).
    pub topic: String,
    /// SC address (`--fluvio-endpoint HOST:PORT`); the current profile of the fluvio CLI's
    /// config (`~/.fluvio/config`) when absent.
    pub endpoint: Option<String>,
}

impl Default for FluvioConfig {
    fn default() -> Self {
        Self {
            topic: DEFAULT_TOPIC.to_owned(),
            endpoint: None,
        }
    }
}

impl fmt::Display for FluvioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(endpoint) => write!(f, "fluvio {endpoint} topic {}", self.topic),
            None => write!(f, "fluvio (current profile) topic {}", self.topic),
        }
    }
}

/// Records between two checks of the acknowledgements.
pub const CHECK_EVERY: usize = 4096;

#[cfg(feature = "fluvio")]
pub use client::FluvioSink;

/// Connects to the cluster and opens a producer on the topic.
#[cfg(feature = "fluvio")]
pub fn open(config: &FluvioConfig) -> Result<Box<dyn Sink>, SinkError> {
    Ok(Box::new(FluvioSink::connect(config)?))
}

#[cfg(not(feature = "fluvio"))]
pub fn open(config: &FluvioConfig) -> Result<Box<dyn Sink>, SinkError> {
    let _ = config;
    Err(SinkError::Config {
        sink: "fluvio",
        message: "this producer was built without the `fluvio` feature (cargo build -p producer --features fluvio)".to_owned(),
    })
}

#[cfg(feature = "fluvio")]
mod client {
    use fluvio::{Fluvio, FluvioClusterConfig, ProduceOutput, TopicProducerPool};
    use fluvio_future::task::run_block_on;

    use super::{FluvioConfig, CHECK_EVERY};
    use crate::sinks::{Sink, SinkError};

    const NAME: &str = "fluvio";

    /// Ticks to a Fluvio topic.
    pub struct FluvioSink {
        // Kept alive for the producer's connections.
        _fluvio: Fluvio,
        producer: TopicProducerPool,
        describe: String,
        pending: Vec<ProduceOutput>,
    }

    fn delivery(message: String) -> SinkError {
        SinkError::Delivery {
            sink: NAME,
            message,
            retryable: true,
        }
    }

    impl FluvioSink {
        pub fn connect(config: &FluvioConfig) -> Result<Self, SinkError> {
            let describe = config.to_string();
            let (fluvio, producer) = run_block_on(async {
                let fluvio = match &config.endpoint {
                    Some(endpoint) => {
                        Fluvio::connect_with_config(&FluvioClusterConfig::new(endpoint.clone()))
                            .await
                    }
                    None => Fluvio::connect().await,
                }
                .map_err(|e| {
                    delivery(format!(
                        "cannot connect ({describe}): {e:#} (is the cluster running? `fluvio cluster status`)"
                    ))
                })?;
                let producer = fluvio.topic_producer(config.topic.clone()).await.map_err(|e| {
                    delivery(format!(
                        "cannot produce to topic {}: {e:#} (does it exist? `fluvio topic create {}`)",
                        config.topic, config.topic
                    ))
                })?;
                Ok::<_, SinkError>((fluvio, producer))
            })?;
            tracing::info!("{describe}: connected");
            Ok(Self {
                _fluvio: fluvio,
                producer,
                describe,
                pending: Vec::with_capacity(CHECK_EVERY),
            })
        }

        /// Sends what is batched and waits for every pending acknowledgement.
        fn settle(&mut self) -> Result<(), SinkError> {
            let pending = std::mem::take(&mut self.pending);
            let producer = &self.producer;
            run_block_on(async {
                producer
                    .flush()
                    .await
                    .map_err(|e| delivery(format!("flush failed: {e:#}")))?;
                for output in pending {
                    output
                        .wait()
                        .await
                        .map_err(|e| delivery(format!("a record was not delivered: {e:#}")))?;
                }
                Ok(())
            })
        }
    }

    impl Sink for FluvioSink {
        fn describe(&self) -> String {
            self.describe.clone()
        }

        fn send(&mut self, key: &[u8], record: &[u8]) -> Result<(), SinkError> {
            let producer = &self.producer;
            let output = run_block_on(producer.send(key.to_vec(), record.to_vec()))
                .map_err(|e| delivery(format!("cannot queue a record: {e:#}")))?;
            self.pending.push(output);
            if self.pending.len() >= CHECK_EVERY {
                self.settle()?;
            }
            Ok(())
        }

        fn flush(&mut self) -> Result<(), SinkError> {
            self.settle()
        }
    }
}
