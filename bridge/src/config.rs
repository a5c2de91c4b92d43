//! Settings of the bridge. The Kafka client settings are layered as the producer's are
//! (defaults, `--kafka-config FILE`, `STOCKSTREAM_KAFKA_*` variables, flags), so one file
//! with `security.protocol`, `sasl.*` and `ssl.*` serves the producer, the bridge's consumer
//! and its dead-letter producer alike; secret values never appear in messages.

use std::time::Duration;

use producer::sinks::kafka::{ClientRole, KafkaConfig, KafkaSettings, PRODUCER};

/// Consumer group when none is given.
pub const DEFAULT_GROUP: &str = "stockstream-bridge";
/// Suffix of the dead-letter topic's default name (`<topic>.dlq`).
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// The consumer's role: offsets are committed by the bridge, after the destination has the
/// records, never automatically.
pub const CONSUMER: ClientRole = ClientRole {
    name:
        "the bridge's consumer (offsets are committed only after the destination has the records)",
    defaults: &[
        ("client.id", "stockstream-bridge"),
        ("group.id", DEFAULT_GROUP),
        // A group with no committed offset starts at the oldest tick, not the next one.
        ("auto.offset.reset", "earliest"),
        ("enable.auto.offset.store", "false"),
    ],
    required: &[("enable.auto.commit", &["false"])],
};

/// Settings only a consumer understands, left out of the dead-letter producer's.
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "isolation.level",
    "partition.assignment.strategy",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.wait.max.ms",
    "max.partition.fetch.bytes",
    "enable.partition.eof",
    "check.crcs",
];

/// What the bridge reads and how. Defaults in [`BridgeConfig::new`].
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Bootstrap servers, topic (`--topic`, default `test_topic`), settings file and
    /// environment.
    pub kafka: KafkaConfig,
    /// Consumer group (`group.id`) whose committed offsets say where a restart goes on.
    pub group: Option<String>,
    /// Where invalid records go, with the reason in headers [default: `<topic>.dlq`].
    pub dead_letter_topic: Option<String>,
    /// Stop once every partition is read up to the end it had when the bridge started
    /// (backfills, scripts, tests); otherwise run until stopped.
    pub stop_at_end: bool,
    /// How long one poll waits for records before the destination is told nothing came
    /// (so it can hand over and commit what it has).
    pub poll_timeout: Duration,
    /// How often lag and rates are measured and reported.
    pub report_interval: Duration,
    /// Invalid records reported one by one on the log before they are only counted.
    pub max_reported: u64,
}

impl BridgeConfig {
    pub fn new(kafka: KafkaConfig) -> Self {
        Self {
            kafka,
            group: None,
            dead_letter_topic: None,
            stop_at_end: false,
            poll_timeout: Duration::from_millis(100),
            report_interval: Duration::from_secs(5),
            max_reported: 50,
        }
    }

    pub fn topic(&self) -> &str {
        &self.kafka.topic
    }

    pub fn dead_letter_topic(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}{DEAD_LETTER_SUFFIX}", self.kafka.topic))
    }

    /// The consumer's and the dead-letter producer's settings, or every problem found.
    pub fn client_settings(&self) -> Result<(KafkaSettings, KafkaSettings), Vec<String>> {
        let mut flags = Vec::new();
        if let Some(group) = &self.group {
            flags.push(("--group", "group.id", group.as_str()));
        }
        let consumer = self.kafka.settings_for(&CONSUMER, &flags);
        let producer = self.kafka.settings_for(&PRODUCER, &[]);
        let mut errors = Vec::new();
        if self.dead_letter_topic() == self.kafka.topic {
            errors.push(format!(
                "the dead-letter topic is the topic read ({}): give another --dead-letter-topic",
                self.kafka.topic
            ));
        }
        match (consumer, producer) {
            (Ok(consumer), Ok(producer)) if errors.is_empty() => {
                let producer = producer
                    .without(CONSUMER_ONLY)
                    .with("client.id", "stockstream-bridge-dlq");
                Ok((consumer, producer))
            }
            (consumer, producer) => {
                errors.extend(consumer.err().unwrap_or_default());
                for error in producer.err().unwrap_or_default() {
                    if !errors.contains(&error) {
                        errors.push(error);
                    }
                }
                Err(errors)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)]) -> BridgeConfig {
        BridgeConfig::new(KafkaConfig {
            bootstrap: Some("127.0.0.1:1".into()),
            topic: "ticks".into(),
            config_file: None,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    #[test]
    fn consumer_commits_by_hand_and_the_dead_letter_producer_is_idempotent() {
        let mut config = config(&[
            ("STOCKSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("STOCKSTREAM_KAFKA_SASL_PASSWORD", "pw"),
        ]);
        config.group = Some("g1".into());
        let (consumer, producer) = config.client_settings().unwrap();
        assert_eq!(consumer.get("group.id"), Some("g1"));
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(producer.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(producer.get("sasl.password"), Some("pw"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("group.id"), None);
        assert_eq!(producer.get("client.id"), Some("stockstream-bridge-dlq"));
        assert_eq!(config.dead_letter_topic(), "ticks.dlq");
    }

    #[test]
    fn auto_commit_and_a_dead_letter_topic_equal_to_the_input_are_refused() {
        let mut config = config(&[("STOCKSTREAM_KAFKA_ENABLE_AUTO_COMMIT", "true")]);
        config.dead_letter_topic = Some("ticks".into());
        let errors = config.client_settings().unwrap_err().join("\n");
        assert!(
            errors.contains("enable.auto.commit must be false"),
            "{errors}"
        );
        assert!(
            errors.contains("dead-letter topic is the topic read"),
            "{errors}"
        );
    }
}
