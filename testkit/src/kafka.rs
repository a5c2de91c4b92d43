//! A real Apache Kafka 4.x broker in KRaft mode (broker and controller in one JVM), started
//! through `scripts/kafka-broker.sh run` on two free loopback ports with a data directory of its
//! own.
//!
//! [`KafkaBroker::shared`] starts one broker per test binary, on first use; tests isolate
//! themselves with a topic each ([`KafkaBroker::create_topic`]). A test that stops or restarts
//! the broker takes one of its own with [`KafkaBroker::start`].
//!
//! Every broker JVM is started from one long-lived thread with a parent-death signal, so it
//! goes away with the test process however that ends (a panic, `--test-threads`, Ctrl-C).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::{free_port, spawn_with_parent_death_signal, unique_name, workspace_root};

/// How long a broker may take to answer after its JVM starts.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A broker on loopback. Dropping it kills the JVM and removes its data.
pub struct KafkaBroker {
    dir: tempfile::TempDir,
    port: u16,
    controller_port: u16,
    child: Option<Child>,
}

/// One message as read back by [`KafkaBroker::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

impl KafkaBroker {
    /// The broker of this test binary, started on first use.
    pub fn shared() -> &'static KafkaBroker {
        static SHARED: OnceLock<KafkaBroker> = OnceLock::new();
        SHARED.get_or_init(|| KafkaBroker::start().expect("the shared Kafka broker starts"))
    }

    /// A broker of the caller's own, on new ports and a new data directory.
    pub fn start() -> anyhow::Result<Self> {
        let libs_hint = workspace_root().join(".cache/kafka");
        anyhow::ensure!(
            libs_hint.is_dir(),
            "no Kafka jars under {}: run `scripts/kafka-broker.sh fetch` (or `make setup-test`) first",
            libs_hint.display()
        );
        let dir = tempfile::Builder::new().prefix("kafka-broker-").tempdir()?;
        let mut broker = Self {
            dir,
            port: free_port(),
            controller_port: free_port(),
            child: None,
        };
        broker.launch()?;
        Ok(broker)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// The broker's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = Command::new(workspace_root().join("scripts/kafka-broker.sh"));
        command
            .arg("run")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--controller-port")
            .arg(self.controller_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(spawn_with_parent_death_signal(command)?);
        self.wait_ready()
    }

    /// Waits until the broker answers a metadata request.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let admin = self.admin()?;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!(
                    "the Kafka broker exited ({status}) while starting; its log:\n{}",
                    self.log()
                );
            }
            if admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok_and(|m| !m.brokers().is_empty())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the Kafka broker did not answer on {} within {} s; its log:\n{}",
                    self.bootstrap(),
                    START_TIMEOUT.as_secs(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the broker cleanly (SIGTERM, as a service manager would) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped broker again, same ports, same data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    fn admin(&self) -> anyhow::Result<AdminClient<DefaultClientContext>> {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("log_level", "3")
            .create()
            .context("creating a Kafka admin client")
    }

    /// Creates a topic with a name of its own and waits until it can be used.
    pub fn create_topic(&self, prefix: &str, partitions: i32) -> String {
        let name = unique_name(prefix);
        self.create_named_topic(&name, partitions);
        name
    }

    /// Creates `name` (which must not exist) and waits until every partition has a leader.
    pub fn create_named_topic(&self, name: &str, partitions: i32) {
        let admin = self.admin().expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures_executor::block_on(admin.create_topics([&topic], &options))
            .expect("create_topics answers");
        for result in results {
            result.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = admin
                .inner()
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "topic {name} never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A consumer in `group` that never commits by itself.
    fn consumer(&self, group: &str) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("log_level", "3")
            .create()
            .expect("consumer")
    }

    /// Reads `topic` from the beginning of every partition until `count` messages have come
    /// or `timeout` has passed (then it returns what came).
    pub fn read(&self, topic: &str, count: usize, timeout: Duration) -> Vec<ReadMessage> {
        let consumer = self.consumer(&unique_name("testkit-reader"));
        let mut assignment = TopicPartitionList::new();
        for partition in partitions(&consumer, topic) {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => out.push(ReadMessage {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out
    }

    /// The committed offset of `group` on each partition of `topic` (absent: none committed).
    pub fn committed_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        let consumer = self.consumer(group);
        let mut list = TopicPartitionList::new();
        for partition in partitions(&consumer, topic) {
            list.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }
}

/// The partition ids of `topic`.
fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect()
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
