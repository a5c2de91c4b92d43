//! Reading the input into batches: validation with tick-filter's rule (invalid records are
//! counted and dead-lettered here, never sent to the chains), event-time pacing, the input
//! hash the checkpoint keeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fluvio_protocol::record::{Record, RecordKey};
use stockstream_core::tick::parse_tick;
use stockstream_ticks::{InputItem, Pacer, Waited};

use super::chains::BarsLateness;
use super::Event;
use crate::checkpoint::{Counts, PrefixHash};
use crate::source;

/// Longest wait for a paced tick before the main loop gets a turn (to finish the batches in
/// the chains and commit when due).
const PACED_WAIT: Duration = Duration::from_millis(200);

/// An invalid record, as written to the dead-letter file.
#[derive(serde::Serialize)]
pub(super) struct DeadLetter {
    pub(super) offset: u64,
    pub(super) line: u64,
    pub(super) reason: String,
    pub(super) message: String,
    /// The record as text (invalid UTF-8 replaced, for reading)...
    pub(super) record: String,
    /// ...and its exact bytes when they are not UTF-8, base64 (standard alphabet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) record_base64: Option<String>,
}

impl DeadLetter {
    /// A dead letter that keeps `bytes` exactly.
    pub(super) fn new(
        offset: u64,
        line: u64,
        reason: String,
        message: String,
        bytes: &[u8],
    ) -> Self {
        let (record, record_base64) = record_text(bytes);
        Self {
            offset,
            line,
            reason,
            message,
            record,
            record_base64,
        }
    }
}

/// A dead-lettered record as text (invalid UTF-8 replaced, for reading), and its exact bytes
/// in base64 (standard alphabet) when they are not UTF-8.
pub fn record_text(bytes: &[u8]) -> (String, Option<String>) {
    use base64::Engine as _;
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

/// One batch of input on its way through the chains, with what the host learnt reading it.
pub(super) struct BatchMeta {
    pub(super) first_offset: u64,
    pub(super) end_offset: u64,
    /// Line of each record sent to the chains, for failure messages.
    pub(super) lines: Vec<u64>,
    /// Input position of each record sent to the chains, for dead letters.
    pub(super) offsets: Vec<u64>,
    pub(super) last_line: u64,
    pub(super) hash: PrefixHash,
    pub(super) max_ts: Option<i64>,
    pub(super) dead: Vec<DeadLetter>,
    pub(super) counts: Counts,
}

/// Reads input records into batches.
pub(super) struct Reader {
    pub(super) input: source::Records,
    /// Releases records at their event time's pace (`--speed`).
    pub(super) pacer: Pacer,
    /// A record read but not yet due: the batch before it went to the chains first.
    pub(super) held: Option<InputItem>,
    /// Position of the next record.
    pub(super) offset: u64,
    pub(super) line: u64,
    pub(super) hash: PrefixHash,
    pub(super) bars_lateness: Vec<Option<BarsLateness>>,
    /// Invalid records reported so far (over the whole run).
    pub(super) reported: u64,
}

impl Reader {
    /// The event time to pace `item` by, when pacing (valid ticks only).
    pub(super) fn pacing_ts(&self, item: &InputItem) -> Option<i64> {
        if self.pacer.unpaced() {
            return None;
        }
        match item {
            InputItem::Record { value, .. } => parse_tick(value).ok().map(|t| t.ts),
            InputItem::Unreadable { .. } => None,
        }
    }

    /// Reads up to `size` records; `None` at the end of the input.
    /// Up to `size` records for the chains, read no further than input position `until`.
    pub(super) fn next_batch(
        &mut self,
        size: usize,
        until: Option<u64>,
        stop: &AtomicBool,
        max_reported: u64,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> anyhow::Result<Option<Batch>> {
        let first_offset = self.offset;
        let mut records = Vec::with_capacity(size);
        let mut meta = BatchMeta {
            first_offset,
            end_offset: first_offset,
            lines: Vec::with_capacity(size),
            offsets: Vec::with_capacity(size),
            last_line: self.line,
            hash: self.hash,
            max_ts: None,
            dead: Vec::new(),
            counts: Counts::default(),
        };
        let mut report = |reported: &mut u64, line: u64, message: &str| {
            *reported += 1;
            if *reported <= max_reported {
                on_event(Event::Invalid { line, message });
            } else if *reported == max_reported + 1 {
                on_event(Event::InvalidReportsCapped);
            }
        };
        let mut idle = false;
        while records.len() < size
            && until.is_none_or(|until| self.offset < until)
            && !stop.load(Ordering::Relaxed)
        {
            let item = match self.held.take() {
                Some(item) => item,
                None => match self.input.next().transpose() {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    // A live stream with nothing new yet: hand over what is read.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        idle = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            if let Some(ts) = self.pacing_ts(&item) {
                let due = self.pacer.due(ts);
                if due.is_some_and(|due| Instant::now() < due) {
                    // Hand what is read to the chains before waiting, so outputs and commits
                    // keep up with a slow (or paused) replay; the record waits for the next
                    // batch.
                    if self.offset > first_offset {
                        self.held = Some(item);
                        break;
                    }
                    // Nothing read yet: wait a little at a time, so that while the replay
                    // is slow or paused the chains' last results still reach the outputs
                    // and commits still happen on time.
                    match self.pacer.wait_at_most(ts, stop, PACED_WAIT) {
                        Waited::Released(_) => {}
                        Waited::NotYet => {
                            self.held = Some(item);
                            idle = true;
                            break;
                        }
                        Waited::Stopped => {
                            self.held = Some(item);
                            break;
                        }
                    }
                } else {
                    self.pacer.release(ts);
                }
            }
            let offset = self.offset;
            self.offset += 1;
            meta.counts.records_in += 1;
            match item {
                InputItem::Unreadable {
                    line, reason, raw, ..
                } => {
                    self.hash.update(raw.as_bytes());
                    self.line = line;
                    *meta
                        .counts
                        .invalid
                        .entry("unreadable_row".into())
                        .or_default() += 1;
                    report(&mut self.reported, line, &format!("invalid row: {reason}"));
                    meta.dead.push(DeadLetter::new(
                        offset,
                        line,
                        "unreadable_row".into(),
                        reason,
                        raw.as_bytes(),
                    ));
                }
                InputItem::Record { line, value } => {
                    self.hash.update(&value);
                    self.line = line;
                    match parse_tick(&value) {
                        Ok(tick) => {
                            for lateness in self.bars_lateness.iter_mut().flatten() {
                                if lateness.is_late(tick.symbol, tick.ts) {
                                    meta.counts.late_bars += 1;
                                }
                            }
                            meta.max_ts = Some(meta.max_ts.map_or(tick.ts, |m| m.max(tick.ts)));
                            let key = RecordKey::from(tick.symbol.as_bytes().to_vec());
                            records.push(Record::new_key_value(key, value));
                            meta.lines.push(line);
                            meta.offsets.push(offset);
                        }
                        Err(reason) => {
                            // tick-filter would drop it: it never goes to the chains.
                            let message = reason.to_string();
                            *meta.counts.invalid.entry(reason.code().into()).or_default() += 1;
                            report(
                                &mut self.reported,
                                line,
                                &format!("invalid tick: {message}"),
                            );
                            meta.dead.push(DeadLetter::new(
                                offset,
                                line,
                                reason.code().into(),
                                message,
                                &value,
                            ));
                        }
                    }
                }
            }
        }
        if self.offset == first_offset {
            return Ok(if idle && !stop.load(Ordering::Relaxed) {
                Some(Batch::Idle)
            } else {
                None
            });
        }
        meta.end_offset = self.offset;
        meta.last_line = self.line;
        meta.hash = self.hash;
        Ok(Some(Batch::Records(records, meta)))
    }
}

/// What the reader has for the chains.
#[allow(clippy::large_enum_variant)] // one per batch of thousands of records: boxing buys nothing
pub(super) enum Batch {
    Records(Vec<Record>, BatchMeta),
    /// Nothing yet from a live stream.
    Idle,
}
