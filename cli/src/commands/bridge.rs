//! `stockstream bridge`: a Kafka topic into Fluvio (default) or into the embedded pipeline
//! (`--to pipeline`, the same as `stockstream run --kafka`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use producer::sinks::fluvio::{FluvioConfig, DEFAULT_TOPIC as DEFAULT_FLUVIO_TOPIC};
use producer::sinks::kafka::{KafkaConfig, DEFAULT_TOPIC};
use stockstream_bridge::fluvio::Outcome;
use stockstream_bridge::{BridgeConfig, Stats};

use super::run::{install_stop_signals, run_pipeline, PipelineArgs, PipelineInput};

/// Where the bridge reads: shared by `stockstream bridge` and `stockstream run --kafka`.
#[derive(Args, Clone, Debug, Default)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers [default: localhost:9093, unless --kafka-config or
    /// STOCKSTREAM_KAFKA_BOOTSTRAP_SERVERS sets them].
    #[arg(long, value_name = "HOST:PORT", help_heading = "Kafka")]
    pub bootstrap: Option<String>,
    /// Kafka topic to read [default: test_topic].
    #[arg(long, help_heading = "Kafka")]
    pub topic: Option<String>,
    /// Consumer group; its committed offsets say where a restart goes on
    /// [default: stockstream-bridge].
    #[arg(long, help_heading = "Kafka")]
    pub group: Option<String>,
    /// librdkafka settings, `key=value` per line (security.protocol, sasl.*, ssl.*);
    /// STOCKSTREAM_KAFKA_<KEY> variables override them (STOCKSTREAM_KAFKA_SASL_PASSWORD is
    /// sasl.password). Secret values are never logged.
    #[arg(long, value_name = "FILE", help_heading = "Kafka")]
    pub kafka_config: Option<PathBuf>,
    /// Topic for invalid records, with the reason in headers [default: <topic>.dlq].
    #[arg(long, value_name = "TOPIC", help_heading = "Kafka")]
    pub dead_letter_topic: Option<String>,
    /// Stop once every partition is read to the end it had at start (backfills, scripts);
    /// otherwise run until Ctrl-C / SIGTERM.
    #[arg(long, help_heading = "Kafka")]
    pub stop_at_end: bool,
}

impl KafkaArgs {
    /// Whether any Kafka option was given (they need `run --kafka`).
    pub fn any(&self) -> bool {
        self.bootstrap.is_some()
            || self.topic.is_some()
            || self.group.is_some()
            || self.kafka_config.is_some()
            || self.dead_letter_topic.is_some()
            || self.stop_at_end
    }

    pub fn config(&self) -> BridgeConfig {
        let mut config = BridgeConfig::new(KafkaConfig {
            bootstrap: self.bootstrap.clone(),
            topic: self
                .topic
                .clone()
                .unwrap_or_else(|| DEFAULT_TOPIC.to_owned()),
            config_file: self.kafka_config.clone(),
            env: KafkaConfig::env_from_process(),
        });
        config.group = self.group.clone();
        config.dead_letter_topic = self.dead_letter_topic.clone();
        config.stop_at_end = self.stop_at_end;
        config
    }
}

/// Where the bridge forwards ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Destination {
    /// A Fluvio topic (key = symbol).
    Fluvio,
    /// The embedded pipeline of `stockstream run`, in this process.
    Pipeline,
}

#[derive(Args)]
pub struct BridgeArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Where ticks go.
    #[arg(long, value_enum, default_value_t = Destination::Fluvio)]
    to: Destination,
    /// Fluvio topic (with --to fluvio).
    #[arg(long, default_value = DEFAULT_FLUVIO_TOPIC, help_heading = "Fluvio")]
    fluvio_topic: String,
    #[command(flatten)]
    fluvio: super::FluvioArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

pub fn run(args: BridgeArgs) -> anyhow::Result<ExitCode> {
    match args.to {
        Destination::Pipeline => run_pipeline(
            PipelineInput::Kafka(args.kafka.config()),
            stockstream_pipeline::source::Speed::Max,
            args.pipeline,
        ),
        Destination::Fluvio => {
            let (stop, signal) = install_stop_signals()?;
            let config = args.kafka.config();
            let fluvio = FluvioConfig {
                topic: args.fluvio_topic,
                cluster: args.fluvio.target(),
            };
            let stats = Arc::new(Stats::default());
            let outcome = stockstream_bridge::fluvio::run(&config, &fluvio, &stop, stats.clone());
            say!(
                "bridge: kafka topic {} -> {fluvio}: {}",
                config.topic(),
                stats.describe()
            );
            Ok(match outcome? {
                Outcome::Finished => ExitCode::SUCCESS,
                Outcome::Stopped => signal.exit_code(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use producer::sinks::kafka::DEFAULT_BOOTSTRAP;

    #[test]
    fn defaults_are_the_original_platform_s() {
        let config = KafkaArgs::default().config();
        assert_eq!(config.topic(), "test_topic");
        assert_eq!(config.dead_letter_topic(), "test_topic.dlq");
        let (consumer, _) = config.client_settings().unwrap();
        assert_eq!(consumer.get("bootstrap.servers"), Some(DEFAULT_BOOTSTRAP));
        assert_eq!(consumer.get("group.id"), Some("stockstream-bridge"));
    }
}
