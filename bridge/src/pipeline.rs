//! Kafka into the embedded pipeline (`stockstream run --kafka`, `stockstream bridge --to
//! pipeline`).
//!
//! Every valid tick is appended to the journal (`<outputs>/_kafka/journal.bin`) and handed to
//! the pipeline as its next input record. The pipeline's commits are the acknowledgements:
//! when it has committed the outputs of its first N records (and synced the journal), the
//! Kafka offsets of those records, and of the invalid ones among them, are committed. On a
//! restart the journal is the input's prefix: the pipeline re-reads it, rebuilds its windows and
//! goes on with Kafka from one past the last journaled offset of each partition, so a bridge
//! killed at any point ends with exactly the outputs of one that never stopped.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use stockstream_pipeline::source::{Journal as SourceJournal, Source, StreamRecords};
use stockstream_ticks::InputItem;

use crate::config::BridgeConfig;
use crate::input::{BridgeError, KafkaInput, Polled, Stats};
use crate::journal::{Journal, JournalReader};

/// Directory of the journal under the outputs root (a leading `_` keeps dataset readers off).
pub const JOURNAL_DIR: &str = "_kafka";
const JOURNAL_FILE: &str = "journal.bin";
const SOURCE_FILE: &str = "source.json";
/// Invalid records in a row after which the reader is told nothing came (so it checks its
/// stop flag and commit schedule even when a topic holds nothing else).
const INVALID_RUN: u32 = 1024;

/// What the journal was filled from: a restart on another topic is refused.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct JournalSource {
    topic: String,
}

/// The running Kafka input of a pipeline: [`committed`](Self::committed) is to be called with
/// each commit's offset (`Event::Committed`).
pub struct KafkaFeed {
    shared: Arc<Shared>,
    stats: Arc<Stats>,
}

struct Shared {
    input: Mutex<KafkaInput>,
    journal: Mutex<Journal>,
    /// Per record polled since the last Kafka commit: the journal length once it was handled
    /// (the pipeline position that covers it), its partition, and the offset after it.
    pending: Mutex<VecDeque<(u64, i32, i64)>>,
}

/// Opens the journal under `outputs`, connects to Kafka from where the journal ends, and
/// returns the pipeline's source with its feed.
pub fn open(
    config: &BridgeConfig,
    outputs: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<(Source, KafkaFeed)> {
    let dir = outputs.join(JOURNAL_DIR);
    std::fs::create_dir_all(&dir)?;
    let source_path = dir.join(SOURCE_FILE);
    let wanted = JournalSource {
        topic: config.topic().to_owned(),
    };
    match std::fs::read(&source_path) {
        Ok(bytes) => {
            let held: JournalSource = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a bridge journal description: {e}",
                    source_path.display()
                )
            })?;
            anyhow::ensure!(
                held == wanted,
                "{} holds ticks of Kafka topic {}, not {}: use another --outputs directory",
                outputs.display(),
                held.topic,
                wanted.topic
            );
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            stockstream_pipeline::commit::replace_file(
                &source_path,
                &serde_json::to_vec_pretty(&wanted)?,
            )?;
        }
        Err(e) => return Err(e.into()),
    }
    let (journal, held) = Journal::open(&dir.join(JOURNAL_FILE))?;
    if !journal.is_empty() {
        tracing::info!(
            records = journal.len(),
            "bridge: {} holds {} ticks; Kafka goes on after them",
            journal.path().display(),
            journal.len()
        );
    }
    let stats = Arc::new(Stats::default());
    let input = KafkaInput::connect(config, journal.next_offsets(), stats.clone(), stop)?;
    // What the journal holds may be ahead of the group's commits (a kill between the
    // pipeline's commit and Kafka's): commit it once the pipeline covers the journal again.
    let pending: VecDeque<(u64, i32, i64)> = journal
        .next_offsets()
        .iter()
        .map(|(partition, next)| (journal.len(), *partition, *next))
        .collect();
    let shared = Arc::new(Shared {
        input: Mutex::new(input),
        journal: Mutex::new(journal),
        pending: Mutex::new(pending),
    });
    let records = KafkaRecords {
        held: Some(held),
        shared: shared.clone(),
        poll_timeout: config.poll_timeout,
    };
    let sync_shared = shared.clone();
    let reopen_shared = shared.clone();
    let poll_timeout = config.poll_timeout;
    // After a chain's failure the pipeline restarts from its last commit: the journal is read
    // again from its first entry, then Kafka goes on where it was.
    let reopen = move || -> io::Result<stockstream_pipeline::source::Records> {
        let held = reopen_shared
            .journal
            .lock()
            .expect("not poisoned")
            .reader()
            .map_err(io::Error::other)?;
        Ok(Box::new(KafkaRecords {
            held: Some(held),
            shared: reopen_shared.clone(),
            poll_timeout,
        }))
    };
    let source = Source::Stream {
        name: format!("kafka topic {}", config.topic()),
        records: StreamRecords::reopenable(Box::new(records), reopen),
        journal: Some(SourceJournal {
            sync: Arc::new(move || sync_shared.journal.lock().expect("not poisoned").sync()),
        }),
    };
    Ok((source, KafkaFeed { shared, stats }))
}

impl KafkaFeed {
    /// The pipeline has committed its first `offset` records: commit their Kafka offsets.
    pub fn committed(&self, offset: u64) -> Result<(), BridgeError> {
        let mut positions = BTreeMap::new();
        {
            let mut pending = self.shared.pending.lock().expect("not poisoned");
            while let Some(&(covered_at, partition, next)) = pending.front() {
                if covered_at > offset {
                    break;
                }
                pending.pop_front();
                positions.insert(partition, next);
            }
        }
        self.shared
            .input
            .lock()
            .expect("not poisoned")
            .commit(&positions)
    }

    /// The closing line: counts, and the lag left.
    pub fn summary(&self) -> String {
        let mut input = self.shared.input.lock().expect("not poisoned");
        input.measure_lag();
        format!(
            "bridge: kafka topic {}: {}",
            input.topic(),
            self.stats.describe()
        )
    }
}

/// The pipeline's input: the journal's ticks, then Kafka's, each journaled before it is
/// handed over.
struct KafkaRecords {
    held: Option<JournalReader>,
    shared: Arc<Shared>,
    poll_timeout: std::time::Duration,
}

impl KafkaRecords {
    fn live(&mut self) -> Option<io::Result<InputItem>> {
        let mut input = self.shared.input.lock().expect("not poisoned");
        let mut invalid_run = 0;
        loop {
            let polled = match input.poll(self.poll_timeout) {
                Ok(polled) => polled,
                Err(e) => return Some(Err(io::Error::other(e))),
            };
            let mut journal = self.shared.journal.lock().expect("not poisoned");
            match polled {
                Polled::Tick {
                    partition,
                    offset,
                    value,
                    ..
                } => {
                    if let Err(e) = journal.append(partition, offset, &value) {
                        return Some(Err(e));
                    }
                    let line = journal.len();
                    self.shared
                        .pending
                        .lock()
                        .expect("not poisoned")
                        .push_back((line, partition, offset + 1));
                    return Some(Ok(InputItem::Record { line, value }));
                }
                Polled::DeadLettered { partition, offset } => {
                    self.shared
                        .pending
                        .lock()
                        .expect("not poisoned")
                        .push_back((journal.len(), partition, offset + 1));
                    invalid_run += 1;
                    if invalid_run >= INVALID_RUN {
                        return Some(Err(io::ErrorKind::WouldBlock.into()));
                    }
                }
                Polled::Idle => {
                    // Written through, so a kill loses nothing the pipeline was given.
                    return Some(Err(match journal.flush() {
                        Ok(()) => io::ErrorKind::WouldBlock.into(),
                        Err(e) => e,
                    }));
                }
                Polled::End => {
                    let flushed = journal
                        .flush()
                        .and_then(|()| input.flush_dead_letters().map_err(io::Error::other));
                    return flushed.err().map(Err);
                }
            }
        }
    }
}

impl Iterator for KafkaRecords {
    type Item = io::Result<InputItem>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(held) = &mut self.held {
            match held.next() {
                Some(Ok(entry)) => {
                    let line = self
                        .shared
                        .journal
                        .lock()
                        .expect("not poisoned")
                        .len()
                        .saturating_sub(held.remaining());
                    return Some(Ok(InputItem::Record {
                        line,
                        value: entry.value,
                    }));
                }
                Some(Err(e)) => return Some(Err(io::Error::other(e))),
                None => self.held = None,
            }
        }
        self.live()
    }
}
