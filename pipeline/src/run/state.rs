//! What is committed and what waits for the next commit: completed batches accumulate by
//! stream and date partition, and a commit writes them as Parquet, publishes the files
//! atomically, then replaces the checkpoint.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::Context;

use super::reader::{BatchMeta, DeadLetter};
use super::worker::ChainOutput;
use super::{Event, RunConfig, DEAD_LETTER_DIR};
use stockstream_core::episodes::{Episode, Episodes, FlaggedTick};

use crate::alerts::webhook::{self, WebhookSender};
use crate::alerts::{alert_json, OpenAlert};
use crate::checkpoint::{Checkpoint, Counts, InputIdentity, PrefixHash};
use crate::commit::{part_name, FileRecord};
use crate::dashboard::{DerivedBatch, FeedStats};
use crate::outputs::{decide_granularity, AlertRow, Partitioned, Rows, Stream};
use crate::parquet_io::write_rows;
use crate::source::Source;
use crate::store::{OutputFile, Outputs, OutputsLock};

/// What is committed and what waits for the next commit.
pub(super) struct State<'c> {
    pub(super) config: &'c RunConfig,
    pub(super) outputs: Outputs,
    pub(super) lock: &'c OutputsLock,
    pub(super) fingerprints: BTreeMap<String, String>,
    pub(super) source_name: String,
    pub(super) committed: Checkpoint,
    pub(super) pending: [Partitioned; 4],
    /// The open alerts (kept in the checkpoint at each commit).
    pub(super) episodes: Episodes,
    /// Request bodies of the alerts closed since the last commit, for the webhook's outbox.
    pub(super) pending_outbox: Vec<Vec<u8>>,
    pub(super) webhook: Option<WebhookSender>,
    pub(super) pending_dead: Vec<DeadLetter>,
    /// Records a chain failed on since the last commit (see [`Checkpoint::skipped`]).
    pub(super) pending_skipped: Vec<u64>,
    pub(super) pending_counts: Counts,
    /// Input position up to which batches have completed.
    pub(super) pending_end: u64,
    pub(super) pending_line: u64,
    pub(super) pending_hash: PrefixHash,
    pub(super) pending_max_ts: Option<i64>,
    pub(super) last_commit: Instant,
    pub(super) replayed: BTreeMap<String, u64>,
    pub(super) feed: FeedStats,
}

impl State<'_> {
    pub(super) fn pending_records(&self) -> u64 {
        self.pending_end - self.committed.offset
    }

    /// Takes in a completed batch.
    pub(super) fn complete(
        &mut self,
        meta: BatchMeta,
        outputs: Vec<(Stream, ChainOutput)>,
        max_reported: u64,
        reported: &mut u64,
        on_event: &mut dyn FnMut(Event<'_>),
    ) {
        let mut counts = meta.counts;
        let mut alert_updates = Vec::new();
        for (stream, output) in outputs {
            for (index, hint, record) in &output.failures {
                counts.failed += 1;
                *reported += 1;
                let message = match stream.input() {
                    // The index is into the input batch.
                    None => format!("rejected by the {} chain: {hint}", stream.name()),
                    // The index is into what the feeding chain passed on for this batch.
                    Some(input) => format!(
                        "rejected by the {} chain (record {index} of what the {} chain passed on): {hint}",
                        stream.name(),
                        input.name()
                    ),
                };
                let (line, offset) = match stream.input() {
                    None => (
                        meta.lines.get(*index).copied(),
                        meta.offsets.get(*index).copied(),
                    ),
                    Some(_) => (None, None),
                };
                if *reported <= max_reported {
                    on_event(Event::Invalid {
                        line: line.unwrap_or(meta.last_line),
                        message: &message,
                    });
                }
                // Skipped, never retried: the record and the module's message are kept.
                self.pending_dead.push(DeadLetter::new(
                    offset.unwrap_or(meta.first_offset),
                    line.unwrap_or(meta.last_line),
                    "module_failed".into(),
                    message,
                    record,
                ));
            }
            match (&output.rows, stream) {
                (Rows::Ticks(rows), Stream::Enriched) => {
                    counts.enriched_rows += rows.len() as u64;
                    counts.late += rows.iter().filter(|r| r.late).count() as u64;
                }
                (rows, Stream::Anomalies) => counts.anomaly_rows += rows.len() as u64,
                (rows, _) => counts.bar_rows += rows.len() as u64,
            }
            if let (Some(feed), Some(records)) = (&self.config.dashboard, output.raw) {
                self.feed.offer(
                    feed,
                    DerivedBatch {
                        stream,
                        first_offset: meta.first_offset,
                        records,
                    },
                );
            }
            if let (Stream::Anomalies, Rows::Ticks(rows)) = (stream, &output.rows) {
                self.observe_anomalies(rows, &mut alert_updates);
            }
            self.pending[stream.index()].push(output.rows);
        }
        self.pending_dead.extend(meta.dead);
        self.pending_end = meta.end_offset;
        self.pending_line = meta.last_line;
        self.pending_hash = meta.hash;
        if let Some(ts) = meta.max_ts {
            self.pending_max_ts = Some(self.pending_max_ts.map_or(ts, |m| m.max(ts)));
        }
        // Event time has reached the batch's newest tick: alerts no anomaly can join are over.
        if let Some(watermark) = self.pending_max_ts {
            for closed in self.episodes.close_before(watermark) {
                self.close_alert(closed, &mut alert_updates);
            }
        }
        counts.alerts += alert_updates.iter().filter(|e| !e.open).count() as u64;
        merge_counts(&mut self.pending_counts, &counts);
        if let (Some(feed), false) = (&self.config.dashboard, alert_updates.is_empty()) {
            self.feed.offer(
                feed,
                DerivedBatch {
                    stream: Stream::Alerts,
                    first_offset: meta.first_offset,
                    records: alert_updates.iter().map(|e| alert_json(e, true)).collect(),
                },
            );
        }
    }

    /// Groups a batch's anomalies into alerts. `updates` gets each alert touched, as it is
    /// after the batch (the dashboard shows open alerts growing), and each one closed.
    fn observe_anomalies(&mut self, rows: &[crate::outputs::TickRow], updates: &mut Vec<Episode>) {
        for row in rows {
            let Some(z) = row.z else { continue };
            let observed = self.episodes.observe(
                &row.symbol,
                FlaggedTick {
                    ts: row.ts,
                    price: row.price,
                    z,
                },
            );
            if let Some(closed) = observed.closed {
                self.close_alert(closed, updates);
            }
            // One update per open alert and batch: the latest state replaces the earlier.
            match updates
                .iter_mut()
                .find(|e| e.open && e.symbol == observed.alert.symbol)
            {
                Some(previous) if previous.start_ts == observed.alert.start_ts => {
                    *previous = observed.alert
                }
                _ => updates.push(observed.alert),
            }
        }
    }

    fn close_alert(&mut self, closed: Episode, updates: &mut Vec<Episode>) {
        self.pending[Stream::Alerts.index()].push(Rows::Alerts(vec![AlertRow::from(&closed)]));
        if self.webhook.is_some() {
            self.pending_outbox.push(webhook::body(&closed));
        }
        // The open state sent earlier in this batch is replaced by the closed one.
        updates.retain(|e| !(e.open && e.symbol == closed.symbol && e.start_ts == closed.start_ts));
        updates.push(closed);
    }

    /// Writes everything completed as one commit, then the checkpoint.
    pub(super) fn commit(
        &mut self,
        finished: bool,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> anyhow::Result<()> {
        let start = self.committed.offset;
        let end = self.pending_end;
        if start == end && (!finished || self.committed.finished) {
            return Ok(());
        }
        let mut staging = self.outputs.stage();
        let granularity = decide_granularity(
            self.committed.partition,
            self.config.partition,
            &self.pending,
        );
        let mut published = Vec::new();
        if end > start {
            let mut files = Vec::new();
            for pending in &mut self.pending {
                let Some(granularity) = granularity else {
                    break;
                };
                for (key, rows) in pending.take(granularity) {
                    let relative = format!(
                        "{}/{}/{}",
                        pending.stream.dir(),
                        granularity.dir(key),
                        part_name(start, end, "parquet")
                    );
                    files.push((staging.create(&relative)?, rows));
                }
            }
            published = write_parquet_files(files)?;
            if !self.pending_dead.is_empty() {
                let relative = format!("{DEAD_LETTER_DIR}/{}", part_name(start, end, "jsonl"));
                let mut out = staging.create(&relative)?;
                for dead in self.pending_dead.drain(..) {
                    serde_json::to_writer(&mut out, &dead)?;
                    out.write_all(b"\n")?;
                }
                published.push(out.finish()?);
            }
            if !self.pending_outbox.is_empty() {
                let relative =
                    format!("{}/{}", webhook::OUTBOX_DIR, part_name(start, end, "jsonl"));
                let mut out = staging.create(&relative)?;
                for body in self.pending_outbox.drain(..) {
                    out.write_all(&body)?;
                    out.write_all(b"\n")?;
                }
                published.push(out.finish()?);
            }
        }
        // The outbox is drained (its files deleted) as alerts are delivered: not outputs.
        let outbox = format!("{}/", webhook::OUTBOX_DIR);
        let wrote_outbox = published.iter().any(|f| f.path.starts_with(&outbox));
        let files = published.len();
        self.lock.check()?;
        staging.publish()?;
        let mut next = self.committed.clone();
        let recorded: Vec<_> = published
            .into_iter()
            .filter(|f| !f.path.starts_with(&outbox))
            .collect();
        let mut mark = next.manifest_mark();
        self.outputs
            .append_manifest(&mut mark, (start, end), &recorded)?;
        next.set_manifest_mark(mark);
        merge_counts(&mut next.counts, &std::mem::take(&mut self.pending_counts));
        if end > start {
            next.counts.commits += 1;
            next.counts.files += files as u64;
        }
        next.offset = end;
        next.line = self.pending_line;
        next.input = InputIdentity {
            source: self.source_name.clone(),
            prefix_hash: self.pending_hash.hex(),
        };
        next.chains = self.fingerprints.clone();
        next.max_ts = self.pending_max_ts;
        if !self.replayed.is_empty() {
            next.last_replay = self.replayed.clone();
        }
        next.finished = finished;
        next.skipped.append(&mut self.pending_skipped);
        next.open_alerts = self.episodes.open().map(OpenAlert::from).collect();
        next.partition = granularity;
        if let Source::Stream {
            journal: Some(journal),
            ..
        } = &self.config.source
        {
            (journal.sync)().context("making the input journal durable")?;
        }
        self.lock.check()?;
        self.outputs.save_checkpoint(&next)?;
        self.committed = next;
        self.last_commit = Instant::now();
        if let (Some(sender), true) = (&self.webhook, wrote_outbox) {
            sender.committed();
        }
        on_event(Event::Committed { offset: end, files });
        tracing::debug!(offset = end, files, "committed");
        Ok(())
    }

    pub(super) fn totals(&self) -> Counts {
        let mut counts = self.committed.counts.clone();
        merge_counts(&mut counts, &self.pending_counts);
        counts
    }
}

/// Writes Parquet files on a few threads (a commit may hold thousands of small partitions,
/// or a few large ones; compression dominates either way), and returns what the manifest
/// keeps of each.
pub fn write_parquet_files(mut files: Vec<(OutputFile, Rows)>) -> anyhow::Result<Vec<FileRecord>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(files.len().max(1));
    // Largest first, dealt round-robin: the threads finish at about the same time.
    files.sort_by_key(|(_, rows)| std::cmp::Reverse(rows.len()));
    let mut shares: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, file) in files.into_iter().enumerate() {
        shares[i % threads].push(file);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                scope.spawn(move || -> anyhow::Result<Vec<FileRecord>> {
                    let mut records = Vec::with_capacity(share.len());
                    for (out, rows) in share {
                        let relative = out.relative().to_owned();
                        let out = write_rows(out, &rows)
                            .with_context(|| format!("writing {relative}"))?;
                        records.push(out.finish()?);
                    }
                    Ok(records)
                })
            })
            .collect();
        let mut records = Vec::new();
        for handle in handles {
            records.extend(handle.join().expect("a writer thread panicked")?);
        }
        // Input order of names, as the disk layout's manifest has always had.
        records.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(records)
    })
}

pub(super) fn merge_counts(into: &mut Counts, from: &Counts) {
    into.records_in += from.records_in;
    for (reason, n) in &from.invalid {
        *into.invalid.entry(reason.clone()).or_default() += n;
    }
    into.failed += from.failed;
    into.late += from.late;
    into.late_bars += from.late_bars;
    into.enriched_rows += from.enriched_rows;
    into.anomaly_rows += from.anomaly_rows;
    into.bar_rows += from.bar_rows;
    into.alerts += from.alerts;
    into.files += from.files;
    into.commits += from.commits;
}
