//! The Kafka sink: settings (always built, so their handling is tested everywhere) and the
//! rdkafka producer (feature `kafka`).

mod config;
#[cfg(feature = "kafka")]
mod sink;

pub use config::{
    is_secret, ClientRole, KafkaConfig, KafkaSettings, Origin, DEFAULT_BOOTSTRAP, DEFAULT_TOPIC,
    ENV_PREFIX, PRODUCER, REDACTED,
};
#[cfg(feature = "kafka")]
pub use sink::{ClientLog, KafkaSink};

use super::{Sink, SinkError};

/// Opens the Kafka sink: every settings problem at once, then a connection check.
pub fn open(config: &KafkaConfig) -> Result<Box<dyn Sink>, SinkError> {
    let settings = config.settings().map_err(|errors| SinkError::Config {
        sink: "kafka",
        message: errors.join("; "),
    })?;
    tracing::debug!("kafka settings: {}", settings.redacted().join(", "));
    connect(settings, &config.topic)
}

#[cfg(feature = "kafka")]
fn connect(settings: KafkaSettings, topic: &str) -> Result<Box<dyn Sink>, SinkError> {
    Ok(Box::new(KafkaSink::connect(settings, topic)?))
}

#[cfg(not(feature = "kafka"))]
fn connect(_settings: KafkaSettings, _topic: &str) -> Result<Box<dyn Sink>, SinkError> {
    Err(SinkError::Config {
        sink: "kafka",
        message: "this producer was built without the `kafka` feature (cargo build -p producer --features kafka)".to_owned(),
    })
}
