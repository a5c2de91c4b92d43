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
    /// Which cluster (`--fluvio`): an SC address or a profile of the fluvio CLI's config.
    pub cluster: ClusterTarget,
}

impl Default for FluvioConfig {
    fn default() -> Self {
        Self {
            topic: DEFAULT_TOPIC.to_owned(),
            cluster: ClusterTarget::default(),
        }
    }
}

impl fmt::Display for FluvioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fluvio {} topic {}", self.cluster, self.topic)
    }
}

/// Environment variable read when `--fluvio` is not given.
pub const CLUSTER_ENV: &str = "STOCKSTREAM_FLUVIO";

/// Which Fluvio cluster to talk to: the value of the `--fluvio` option shared by every
/// command that reaches a cluster.
///
/// `HOST:PORT` is an SC address; any other word is a profile of the fluvio CLI's config
/// (`~/.fluvio/config`); nothing means that config's current profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClusterTarget {
    #[default]
    CurrentProfile,
    Profile(String),
    Endpoint(String),
}

impl ClusterTarget {
    /// Reads the `--fluvio` value (`None`: not given).
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Self::CurrentProfile,
            Some(v) if v.contains(':') => Self::Endpoint(v.to_owned()),
            Some(v) => Self::Profile(v.to_owned()),
        }
    }
}

impl fmt::Display for ClusterTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CurrentProfile => f.write_str("(current profile)"),
            Self::Profile(name) => write!(f, "(profile {name})"),
            Self::Endpoint(address) => f.write_str(address),
        }
    }
}

/// Connects to `target`, with a message that says what to check when it fails.
#[cfg(feature = "fluvio")]
pub async fn connect(target: &ClusterTarget) -> anyhow::Result<fluvio::Fluvio> {
    use fluvio::{Fluvio, FluvioClusterConfig};
    let connected = match target {
        ClusterTarget::CurrentProfile => Fluvio::connect().await,
        ClusterTarget::Profile(name) => Fluvio::connect_with_profile(name).await,
        ClusterTarget::Endpoint(address) => {
            Fluvio::connect_with_config(&FluvioClusterConfig::new(address.clone())).await
        }
    };
    connected.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to the Fluvio cluster {target}: {e:#} (is it running? `fluvio cluster status`; choose it with --fluvio HOST:PORT or a profile name)"
        )
    })
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
    use fluvio::{Fluvio, ProduceOutput, TopicProducerPool};
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
                let fluvio = super::connect(&config.cluster)
                    .await
                    .map_err(|e| delivery(format!("{e:#}")))?;
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
