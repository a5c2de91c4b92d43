//! librdkafka settings of the Kafka sink, layered, with secrets kept out of every message.
//!
//! Layers, each over the one before: built-in defaults; `--kafka-config FILE` (`key=value`
//! lines, `#` comments); environment variables `STOCKSTREAM_KAFKA_<KEY>` (the key upper-cased
//! with dots as underscores: `STOCKSTREAM_KAFKA_SASL_PASSWORD` is `sasl.password`); then the
//! flags (`--bootstrap`). `enable.idempotence=true` and `acks=all` are required: a layer that
//! sets anything else is an error.
//!
//! Values of secret keys ([`is_secret`]) never appear in `Debug` output, logs or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Kafka bootstrap servers when none are given.
pub const DEFAULT_BOOTSTRAP: &str = "localhost:9093";
/// Kafka topic when none is given.
pub const DEFAULT_TOPIC: &str = "test_topic";
/// Prefix of environment variables that carry librdkafka settings.
pub const ENV_PREFIX: &str = "STOCKSTREAM_KAFKA_";

/// Which client settings are for: the defaults it starts from and what it must have.
#[derive(Debug, Clone, Copy)]
pub struct ClientRole {
    /// Named in messages ("must be true for the producer").
    pub name: &'static str,
    /// Settings the client gets unless a layer changes them.
    pub defaults: &'static [(&'static str, &'static str)],
    /// Settings a layer may not change to anything but the values listed (first = default).
    pub required: &'static [(&'static str, &'static [&'static str])],
}

/// The producer's role: idempotent, acknowledged by all replicas.
pub const PRODUCER: ClientRole = ClientRole {
    name: "the producer",
    defaults: DEFAULTS,
    required: REQUIRED,
};

/// Settings every producer gets unless a layer changes them.
const DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "stockstream-producer"),
    // Batch a little: ticks come in bursts at replay speed `max`.
    ("linger.ms", "5"),
    // Give up on a record after 30 s rather than librdkafka's 5 minutes, so that a broker
    // that is down is reported while the user is still looking.
    ("message.timeout.ms", "30000"),
];

/// Settings the producer must have (exactly-once-per-session delivery, in order per key).
const REQUIRED: &[(&str, &[&str])] = &[("enable.idempotence", &["true"]), ("acks", &["all", "-1"])];

/// What the Kafka sink was asked for. `Debug` redacts secret values.
#[derive(Clone, Default)]
pub struct KafkaConfig {
    /// `bootstrap.servers` from `--bootstrap`; [`DEFAULT_BOOTSTRAP`] when no layer sets it.
    pub bootstrap: Option<String>,
    /// Topic the ticks go to.
    pub topic: String,
    /// `--kafka-config FILE`: librdkafka settings, `key=value` per line.
    pub config_file: Option<PathBuf>,
    /// `STOCKSTREAM_KAFKA_*` variables (name, value), as read from the environment.
    pub env: Vec<(String, String)>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(name, value)| {
                let key = name
                    .strip_prefix(ENV_PREFIX)
                    .unwrap_or(name)
                    .replace('_', ".");
                let shown = if is_secret(&key) {
                    REDACTED
                } else {
                    value.as_str()
                };
                format!("{name}={shown}")
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap", &self.bootstrap)
            .field("topic", &self.topic)
            .field("config_file", &self.config_file)
            .field("env", &env)
            .finish()
    }
}

impl KafkaConfig {
    /// The `STOCKSTREAM_KAFKA_*` variables of this process.
    pub fn env_from_process() -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect()
    }

    /// The producer's effective settings, or every problem found (none of which shows a
    /// secret value).
    pub fn settings(&self) -> Result<KafkaSettings, Vec<String>> {
        self.settings_for(&PRODUCER, &[])
    }

    /// The effective settings of a client in `role`: its defaults, the file, the environment,
    /// `--bootstrap`, then `flags` (flag name, key, value); or every problem found.
    pub fn settings_for(
        &self,
        role: &ClientRole,
        flags: &[(&'static str, &str, &str)],
    ) -> Result<KafkaSettings, Vec<String>> {
        let mut settings = KafkaSettings::default();
        let mut errors = Vec::new();
        for (key, value) in role.defaults {
            settings.set(key, value, Origin::Default);
        }
        settings.set("bootstrap.servers", DEFAULT_BOOTSTRAP, Origin::Default);
        for (key, value) in role.required {
            settings.set(key, value[0], Origin::Default);
        }
        if let Some(path) = &self.config_file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    for (key, value, line) in parse_properties(&text, path, &mut errors) {
                        settings.set(&key, &value, Origin::File(path.clone(), line));
                    }
                }
                Err(e) => errors.push(format!(
                    "cannot read the Kafka settings file {}: {e}",
                    path.display()
                )),
            }
        }
        let mut env = self.env.clone();
        env.sort();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if rest.is_empty() {
                errors.push(format!("environment variable {name} names no setting"));
                continue;
            }
            let key = rest.to_ascii_lowercase().replace('_', ".");
            settings.set(&key, &value, Origin::Env(name));
        }
        if let Some(bootstrap) = &self.bootstrap {
            settings.set("bootstrap.servers", bootstrap, Origin::Flag("--bootstrap"));
        }
        for (flag, key, value) in flags {
            settings.set(key, value, Origin::Flag(flag));
        }
        for (key, allowed) in role.required {
            let setting = &settings.entries[*key];
            if !allowed.contains(&setting.value.trim().to_ascii_lowercase().as_str()) {
                errors.push(format!(
                    "{key} must be {} for {}; {} sets it to {:?}",
                    allowed[0], role.name, setting.origin, setting.value
                ));
            }
        }
        if settings
            .get("bootstrap.servers")
            .is_none_or(|s| s.trim().is_empty())
        {
            errors.push("bootstrap.servers is empty: give --bootstrap HOST:PORT".to_owned());
        }
        if self.topic.trim().is_empty() {
            errors.push("the Kafka topic is empty: give --topic NAME".to_owned());
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }
}

/// Reads `key=value` lines; `#` or `!` starts a comment line. A bad line is reported by
/// number only (it may hold a secret).
fn parse_properties(
    text: &str,
    path: &Path,
    errors: &mut Vec<String>,
) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                out.push((key.trim().to_owned(), value.trim().to_owned(), i + 1));
            }
            _ => errors.push(format!(
                "{}:{}: expected key=value (the line is not shown: it may hold a secret)",
                path.display(),
                i + 1
            )),
        }
    }
    out
}

/// Whether a librdkafka setting holds a secret (passwords, keys, tokens, JAAS/OAuth config).
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "credential",
        "private",
        "oauthbearer.config",
        "ssl.key.pem",
        "ssl.keystore",
        "sasl.kerberos.keytab",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf, usize),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path, line) => write!(f, "{}:{line}", path.display()),
            Origin::Env(name) => write!(f, "${name}"),
            Origin::Flag(flag) => f.write_str(flag),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Setting {
    value: String,
    origin: Origin,
}

/// The effective librdkafka settings. `Debug` and [`redacted`](Self::redacted) show secret
/// values as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    entries: BTreeMap<String, Setting>,
}

/// What a secret value is shown as.
pub const REDACTED: &str = "<redacted>";

impl KafkaSettings {
    fn set(&mut self, key: &str, value: &str, origin: Origin) {
        self.entries.insert(
            key.to_owned(),
            Setting {
                value: value.to_owned(),
                origin,
            },
        );
    }

    /// The same settings without `keys` (for a client of another role: a consumer's
    /// `group.id` means nothing to a producer).
    pub fn without(&self, keys: &[&str]) -> Self {
        let mut entries = self.entries.clone();
        entries.retain(|k, _| !keys.contains(&k.as_str()));
        Self { entries }
    }

    /// Sets `key` for this client only (a client.id of its own, say).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.set(key, value, Origin::Default);
        self
    }

    /// A setting's value (secret or not: for building the client, not for showing).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|s| s.value.as_str())
    }

    /// Every setting, secret ones included: for building the client only.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(k, s)| (k.as_str(), s.value.as_str()))
    }

    /// Every setting as `key=value (origin)`, secret values shown as `<redacted>`.
    pub fn redacted(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(k, s)| {
                let value = if is_secret(k) {
                    REDACTED
                } else {
                    s.value.as_str()
                };
                format!("{k}={value} ({})", s.origin)
            })
            .collect()
    }

    /// `text` with every secret value replaced by `<redacted>`: for messages that come back
    /// from librdkafka, which may quote a value.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        let mut secrets: Vec<&str> = self
            .entries
            .iter()
            .filter(|(k, s)| is_secret(k) && !s.value.is_empty())
            .map(|(_, s)| s.value.as_str())
            .collect();
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            if text.contains(secret) {
                text = text.replace(secret, REDACTED);
            }
        }
        text
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.redacted()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn config_with(file: &str, env: &[(&str, &str)]) -> (KafkaConfig, tempfile::NamedTempFile) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(file.as_bytes()).unwrap();
        let config = KafkaConfig {
            bootstrap: None,
            topic: DEFAULT_TOPIC.to_owned(),
            config_file: Some(tmp.path().to_owned()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        (config, tmp)
    }

    #[test]
    fn defaults_are_idempotent_and_acknowledged_by_all() {
        let settings = KafkaConfig {
            topic: DEFAULT_TOPIC.into(),
            ..KafkaConfig::default()
        }
        .settings()
        .unwrap();
        assert_eq!(settings.get("bootstrap.servers"), Some("localhost:9093"));
        assert_eq!(settings.get("enable.idempotence"), Some("true"));
        assert_eq!(settings.get("acks"), Some("all"));
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let (mut config, _tmp) = config_with(
            "# comment\nbootstrap.servers = file:9092\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=alice\nlinger.ms=50\n",
            &[("STOCKSTREAM_KAFKA_LINGER_MS", "7"), ("STOCKSTREAM_KAFKA_SASL_PASSWORD", "hunter2-from-env")],
        );
        let settings = config.settings().unwrap();
        assert_eq!(settings.get("bootstrap.servers"), Some("file:9092"));
        assert_eq!(settings.get("linger.ms"), Some("7"));
        assert_eq!(settings.get("sasl.password"), Some("hunter2-from-env"));
        assert_eq!(settings.get("sasl.username"), Some("alice"));
        config.bootstrap = Some("flag:9093".into());
        assert_eq!(
            config.settings().unwrap().get("bootstrap.servers"),
            Some("flag:9093")
        );
    }

    #[test]
    fn secrets_never_show() {
        let (config, _tmp) = config_with(
            "sasl.password=s3cr3t-file\nssl.key.password=keypass-file\nsasl.oauthbearer.client.secret=oauth-secret\nsasl.username=alice\n",
            &[("STOCKSTREAM_KAFKA_SASL_JAAS_CONFIG", "jaas-secret-value")],
        );
        let settings = config.settings().unwrap();
        let debug = format!("{settings:?}");
        let redacted = settings.redacted().join("\n");
        for secret in [
            "s3cr3t-file",
            "keypass-file",
            "oauth-secret",
            "jaas-secret-value",
        ] {
            assert!(!debug.contains(secret), "{debug}");
            assert!(!redacted.contains(secret), "{redacted}");
        }
        assert!(debug.contains("sasl.password=<redacted>"), "{debug}");
        assert!(debug.contains("sasl.username=alice"), "{debug}");
        assert_eq!(
            settings.scrub("Invalid value \"s3cr3t-file\" for sasl.password"),
            "Invalid value \"<redacted>\" for sasl.password"
        );
        let config_debug = format!("{config:?}");
        assert!(
            !config_debug.contains("jaas-secret-value"),
            "{config_debug}"
        );
        assert!(
            config_debug.contains("STOCKSTREAM_KAFKA_SASL_JAAS_CONFIG=<redacted>"),
            "{config_debug}"
        );
    }

    #[test]
    fn bad_lines_and_weakened_guarantees_are_errors_without_values() {
        let (config, _tmp) = config_with(
            "sasl.password hunter2\nacks=1\n=x\n",
            &[("STOCKSTREAM_KAFKA_ENABLE_IDEMPOTENCE", "false")],
        );
        let errors = config.settings().unwrap_err();
        let all = errors.join("\n");
        assert_eq!(errors.len(), 4, "{all}");
        assert!(!all.contains("hunter2"), "{all}");
        assert!(all.contains(":1: expected key=value"), "{all}");
        assert!(all.contains(":3: expected key=value"), "{all}");
        assert!(all.contains("acks must be all"), "{all}");
        assert!(
            all.contains("enable.idempotence must be true")
                && all.contains("$STOCKSTREAM_KAFKA_ENABLE_IDEMPOTENCE"),
            "{all}"
        );
    }

    #[test]
    fn secret_keys() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.jaas.config",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "sasl.username",
            "bootstrap.servers",
            "acks",
            "ssl.ca.location",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }
}
