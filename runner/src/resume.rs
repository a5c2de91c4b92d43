//! The bounded restart of a stateful chain that runs where its state cannot be read (in an
//! SPU): where in the input a fresh chain must start, and with what seed, so that from the
//! resume point on it emits exactly what the uninterrupted chain emits.
//!
//! A [`ResumeTracker`] follows one lane's output batch by batch (each batch closed by its
//! progress record, `stockstream_smartmodule::entry::Session`) and, at a resume point R (the
//! end of a batch), gives a [`ResumePoint`]: an input offset S <= R, always the first offset of
//! a batch, and the `stockstream.resume` seed of the chain's stateful step. The chain started at
//! S with the seed reaches R in the state the uninterrupted chain had there; its output for
//! `[S, R)` is dropped by the progress records.
//!
//! - **Rolling statistics** (per symbol): the tracker runs the chain's own `RollingStats` over
//!   the ticks the lane emitted (every tick that reached the step comes out, with its `late`
//!   flag), so it knows each symbol's `replay_from` (the earliest event time a fresh state can be
//!   rebuilt from, bit for bit: about one to two windows back), and keeps, per symbol, the batch
//!   in which each run of its accepted ticks began. S is the earliest batch holding a symbol's
//!   first tick from its `replay_from` on; the seed is each symbol's `replay_from`
//!   ([`RollingStats::resume`]).
//! - **Bars** (one watermark): the step appends to each progress record the newest event time
//!   admitted so far. S is the first batch after which it reached `watermark - size` (no open
//!   window holds an older tick); the seed is the newest event time admitted before S
//!   ([`WindowBars::resume`](stockstream_core::bars::WindowBars::resume)).
//!
//! A quiet symbol pulls S back to its last window, however far that is: its state depends on
//! it. Retention that removed input before S is the caller's to report.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use stockstream_core::bars::BarsConfig;
use stockstream_core::resume::{format_max_ts, format_starts, parse_max_ts, parse_starts};
use stockstream_core::rolling::{RollingConfig, RollingStats, LATE_TRUE_SUFFIX};
use stockstream_core::{parse_tick, ParamError};

use crate::replay::{ChainReplay, ReplayKind};

/// Where a fresh chain starts to be, at the resume point, where the uninterrupted one was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The input offset to start reading at (the first offset of a batch).
    pub from: u64,
    /// The `stockstream.resume` parameter of the stateful step; empty: start fresh.
    pub seed: String,
}

/// Follows one lane's output to know its [`ResumePoint`] at any batch end.
#[derive(Debug)]
pub enum ResumeTracker {
    Rolling(RollingTracker),
    Bars(BarsTracker),
}

/// A lane's output disagrees with the tracker: the chain is not the one the tracker follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the chain's output for {symbol} at ts {ts} says late={late}, its rolling statistics say the opposite")]
pub struct Diverged {
    pub symbol: String,
    pub ts: i64,
    pub late: bool,
}

impl ResumeTracker {
    /// A tracker for a chain that supports the bounded restart, started fresh (at offset 0) or
    /// from `resumed` (the point the lane restarts from); `None` for a chain without state or
    /// one that replays everything.
    pub fn for_chain(
        chain: &ChainReplay,
        resumed: Option<&ResumePoint>,
    ) -> Result<Option<Self>, ParamError> {
        let seed = resumed.map(|point| point.seed.as_str()).unwrap_or("");
        Ok(match chain.kind {
            ReplayKind::Rolling { window_ms } if chain.emits_every_tick() => {
                let mut stats = RollingStats::new(RollingConfig {
                    window_ms,
                    ..RollingConfig::default()
                });
                if !seed.is_empty() {
                    stats.resume(parse_starts(seed)?);
                }
                Some(Self::Rolling(RollingTracker {
                    stats,
                    runs: HashMap::new(),
                    held: Vec::new(),
                    held_ends: Vec::new(),
                }))
            }
            ReplayKind::Bars { config } => Some(Self::Bars(BarsTracker {
                config,
                max_ts: (!seed.is_empty()).then(|| parse_max_ts(seed)).transpose()?,
                batches: VecDeque::new(),
            })),
            _ => None,
        })
    }

    /// A record the lane emitted for the batch being read (only rolling statistics need
    /// them: the enriched ticks). It counts once the batch's progress record comes: a resume
    /// point is always at a batch's end.
    pub fn record(&mut self, value: &[u8]) {
        if let Self::Rolling(tracker) = self {
            tracker.held.extend_from_slice(value);
            tracker.held_ends.push(tracker.held.len());
        }
    }

    /// The progress record closing the batch that starts at `first`, with what the stateful
    /// step appended to it.
    pub fn batch_end(&mut self, first: u64, tail: &[u8]) -> Result<(), Diverged> {
        match self {
            Self::Rolling(tracker) => tracker.batch_end(first),
            Self::Bars(tracker) => {
                tracker.batch_end(first, tail);
                Ok(())
            }
        }
    }

    /// Whether the tracker's records are per tick (rolling statistics).
    pub fn wants_records(&self) -> bool {
        matches!(self, Self::Rolling(_))
    }

    /// Where to restart for a resume point at `read_to` (the end of the last batch seen);
    /// `None` while that cannot be told yet (a restart's replay has not reached where the
    /// previous point's state was).
    pub fn resume_point(&mut self, read_to: u64) -> Option<ResumePoint> {
        match self {
            Self::Rolling(tracker) => tracker.resume_point(read_to),
            Self::Bars(tracker) => tracker.resume_point(read_to),
        }
    }
}

/// See [`ResumeTracker`].
#[derive(Debug)]
pub struct RollingTracker {
    stats: RollingStats,
    /// Per symbol, oldest first: (event time of the first accepted tick of a batch, that
    /// batch's first offset), one entry per batch with accepted ticks of the symbol.
    runs: HashMap<Box<str>, VecDeque<(i64, u64)>>,
    /// The records of the batch being read, one after the other, and where each ends.
    held: Vec<u8>,
    held_ends: Vec<usize>,
}

impl RollingTracker {
    fn batch_end(&mut self, batch: u64) -> Result<(), Diverged> {
        let mut start = 0;
        let mut result = Ok(());
        for &end in &self.held_ends {
            let value = &self.held[start..end];
            start = end;
            let Ok(tick) = parse_tick(value) else {
                continue;
            };
            let late = value.ends_with(LATE_TRUE_SUFFIX);
            if self.stats.update(&tick).late != late {
                result = Err(Diverged {
                    symbol: tick.symbol.to_owned(),
                    ts: tick.ts,
                    late,
                });
                break;
            }
            if late {
                continue;
            }
            match self.runs.get_mut(tick.symbol) {
                Some(runs) => {
                    if runs.back().is_none_or(|(_, b)| *b != batch) {
                        runs.push_back((tick.ts, batch));
                    }
                }
                None => {
                    self.runs
                        .insert(tick.symbol.into(), VecDeque::from([(tick.ts, batch)]));
                }
            }
        }
        self.held.clear();
        self.held_ends.clear();
        result
    }

    fn resume_point(&mut self, read_to: u64) -> Option<ResumePoint> {
        if self.stats.pending() > 0 {
            return None;
        }
        let mut from = read_to;
        for (symbol, start) in self.stats.replay_points() {
            let runs = self.runs.get_mut(symbol)?;
            // A batch is not needed when the next one began before the start: accepted ticks
            // come in time order, so all of its ticks are older than the start.
            while runs.len() >= 2 && runs[1].0 < start {
                runs.pop_front();
            }
            from = from.min(runs.front()?.1);
        }
        Some(ResumePoint {
            from,
            seed: format_starts(self.stats.replay_points()),
        })
    }
}

/// See [`ResumeTracker`].
#[derive(Debug)]
pub struct BarsTracker {
    config: BarsConfig,
    /// The newest event time admitted after the last batch seen.
    max_ts: Option<i64>,
    /// Oldest first: (first offset, newest event time admitted before the batch, and after).
    batches: VecDeque<(u64, Option<i64>, Option<i64>)>,
}

impl BarsTracker {
    fn batch_end(&mut self, first: u64, tail: &[u8]) {
        let after = <[u8; 8]>::try_from(tail).ok().map(i64::from_be_bytes);
        self.batches.push_back((first, self.max_ts, after));
        self.max_ts = after;
    }

    fn resume_point(&mut self, read_to: u64) -> Option<ResumePoint> {
        let Some(max_ts) = self.max_ts else {
            // Nothing admitted yet: no state.
            return Some(ResumePoint {
                from: read_to,
                seed: String::new(),
            });
        };
        let BarsConfig {
            size_ms,
            lateness_ms,
            ..
        } = self.config;
        // Every window still open at the resume point starts after this.
        let oldest_needed = max_ts.saturating_sub(lateness_ms).saturating_sub(size_ms);
        while self
            .batches
            .front()
            .is_some_and(|(_, _, after)| after.is_none_or(|after| after < oldest_needed))
        {
            self.batches.pop_front();
        }
        let (first, before, _) = *self.batches.front()?;
        Some(ResumePoint {
            from: first,
            seed: before.map(format_max_ts).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests;
