//! Exact window state after a restart: which ticks before the resume point each chain's
//! `look_back` must see so that its modules end up in the very state an uninterrupted run has.
//!
//! The host cannot read a module's state (it lives in WASM), but the state is a deterministic
//! function of the ticks the module accepted, so the host recomputes, from the input before the
//! resume point, which ticks matter:
//!
//! - **window-bars** (one watermark across symbols): the ticks the original run accepted (not
//!   below the watermark on arrival) with `ts >= watermark - size`. Every still-open window
//!   (end > watermark) is rebuilt from exactly its ticks, in arrival order; the replayed
//!   watermark ends where the original one was (the newest tick is replayed); a replayed tick is
//!   never late in the replay (the replayed watermark is never ahead of the original); windows
//!   the watermark had passed are closed again during the replay and, as `look_back` drops
//!   closed windows, never re-emitted.
//! - **rolling-stats** (per symbol): the statistics are merged from timestamp groups held in a
//!   two-stack sliding aggregate (`stockstream-core`'s `sliding.rs`), and floating-point merges
//!   are not associative: replaying only the last W of ticks would rebuild the same *set* of
//!   groups but split differently between the two stacks, so the first statistics after a
//!   restart could differ in the last bits. The planner therefore runs the chain's
//!   `RollingStats` natively over the prefix and replays each symbol from
//!   `RollingStats::replay_from`, where the core says a fresh state makes the same split: at
//!   most about 2 W of event time before the symbol's newest tick.
//! - a chain with no stateful step needs nothing; a chain this module does not know (another
//!   module, or two stateful steps) gets every earlier tick, which is exact but unbounded.
//!
//! The property tests at the bottom check the claim against the core's own `RollingStats` and
//! `WindowBars`, bit for bit.

use crate::chain::ChainSpec;
use stockstream_core::bars::{Admission, BarsConfig, Watermark};
use stockstream_core::rolling::{Basis, RollingConfig, RollingStats};
use stockstream_core::tick::{parse_tick, Watchlist};

/// What a chain needs replayed, read from its steps.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayKind {
    /// No step keeps state between records.
    Stateless,
    /// One `rolling-stats` step (after an optional `tick-filter`).
    Rolling { window_ms: i64 },
    /// One `window-bars` step (after an optional `tick-filter`).
    Bars { config: BarsConfig },
    /// Anything else: replay every earlier record.
    Everything,
}

/// Which records reach a chain's stateful step, and what the step needs replayed.
#[derive(Debug, Clone)]
pub struct ChainReplay {
    pub kind: ReplayKind,
    /// The chain starts with `tick-filter`: only valid ticks (of the watchlist) get through.
    filtered: bool,
    watchlist: Option<Watchlist>,
    /// The index of the stateful step of a `Rolling` or `Bars` chain.
    stateful_step: Option<usize>,
    /// Every tick that reaches the stateful step comes out of the chain (no
    /// `emit: anomalies` after it).
    emits_every_tick: bool,
}

impl ChainReplay {
    /// Reads the chain's steps. Parameters were validated when the spec was read.
    pub fn for_chain(spec: &ChainSpec) -> anyhow::Result<Self> {
        let modules: Vec<&str> = spec.steps.iter().map(|s| s.module.as_str()).collect();
        // The fused enrich and bars modules filter as tick-filter does before their state.
        let first = spec.steps.first();
        let fused = first.is_some_and(|step| step.is_fused());
        let filtered = first.is_some_and(|step| step.filters_ticks());
        let watchlist = match first.filter(|_| filtered) {
            Some(step) => Watchlist::from_param(step.params.get("symbols").map(String::as_str))?,
            None => None,
        };
        let stateful: Vec<usize> = modules
            .iter()
            .enumerate()
            .filter(|(_, m)| !matches!(**m, "tick-filter" | "zscore-anomaly"))
            .map(|(i, _)| i)
            .collect();
        // The stateful step must see exactly what the host replays: raw ticks, with at most a
        // tick-filter before it (look_back hands every step the raw records), or a fused module
        // first.
        let emits_every_tick = spec.steps.iter().all(|step| {
            step.module.as_str() == "window-bars"
                || step.module.as_str() == "bars"
                || step
                    .params
                    .get("emit")
                    .is_none_or(|emit| emit.trim() == "all")
        });
        let kind = match stateful.as_slice() {
            [] => ReplayKind::Stateless,
            [i] if *i == usize::from(filtered && !fused) => {
                let step = &spec.steps[*i];
                let param = |name: &str| step.params.get(name).map(String::as_str);
                match step.module.as_str() {
                    "rolling-stats" | "enrich" => {
                        let config = RollingConfig::from_params(param)?;
                        match config.basis {
                            Basis::Price => ReplayKind::Rolling {
                                window_ms: config.window_ms,
                            },
                            // A return needs the tick before the replayed ones, which
                            // `replay_from` does not account for yet: replaying everything is
                            // exact, if unbounded.
                            Basis::Return => ReplayKind::Everything,
                        }
                    }
                    "window-bars" | "bars" => ReplayKind::Bars {
                        config: BarsConfig::from_params(param)?,
                    },
                    _ => ReplayKind::Everything,
                }
            }
            _ => ReplayKind::Everything,
        };
        let stateful_step = match kind {
            ReplayKind::Rolling { .. } | ReplayKind::Bars { .. } => stateful.first().copied(),
            _ => None,
        };
        Ok(Self {
            kind,
            filtered,
            watchlist,
            stateful_step,
            emits_every_tick,
        })
    }

    /// The index of the step that keeps the chain's state (for a `Rolling` or `Bars` chain).
    pub fn stateful_step(&self) -> Option<usize> {
        self.stateful_step
    }

    /// Whether every tick that reaches the stateful step comes out of the chain.
    pub fn emits_every_tick(&self) -> bool {
        self.emits_every_tick
    }

    /// A chain of one kind, for tests.
    #[cfg(test)]
    pub(crate) fn new(kind: ReplayKind, filtered: bool, watchlist: Option<Watchlist>) -> Self {
        Self {
            kind,
            filtered,
            watchlist,
            stateful_step: None,
            emits_every_tick: true,
        }
    }

    /// Whether the chain keeps state that `look_back` must rebuild.
    pub fn needs_look_back(&self) -> bool {
        self.kind != ReplayKind::Stateless
    }
}

/// The keys of one symbol's two-stack aggregate in `rolling-stats`, and where a replay must
/// start to rebuild the same split.
#[derive(Debug)]
enum Tracker {
    Stateless,
    /// The chain's own rolling statistics, run natively over the prefix: the core knows
    /// where a replay must start for its state to come back bit for bit.
    Rolling(Box<RollingStats>),
    Bars {
        size_ms: i64,
        watermark: Watermark,
        max_ts: Option<i64>,
    },
    Everything,
}

impl Tracker {
    /// Oldest timestamp of `symbol` still needed; `None`: the record is not needed.
    fn threshold(&self, symbol: &str) -> Option<i64> {
        match self {
            Tracker::Stateless => None,
            Tracker::Rolling(stats) => stats.replay_from(symbol),
            Tracker::Bars {
                size_ms, watermark, ..
            } => watermark.current().map(|wm| wm.saturating_sub(*size_ms)),
            Tracker::Everything => Some(i64::MIN),
        }
    }
}

/// A record read before the resume point that some chain may need to replay.
#[derive(Debug)]
struct Buffered {
    value: Vec<u8>,
    /// Symbol and ts of a valid tick; `None` for an invalid record (kept only for `Everything`).
    tick: Option<(Box<str>, i64)>,
    /// Bit `i`: chain `i` accepted the record (it changed, or could have changed, its state).
    wanted: u64,
}

/// Reads the records before the resume point and keeps, for each chain, the ones its
/// `look_back` must replay.
pub struct ReplayPlanner {
    chains: Vec<(ChainReplay, Tracker)>,
    buffer: Vec<Buffered>,
    compact_at: usize,
}

/// Below this many buffered records the planner does not bother dropping unneeded ones.
const MIN_COMPACT: usize = 1 << 16;

impl ReplayPlanner {
    pub fn new(chains: Vec<ChainReplay>) -> Self {
        assert!(chains.len() <= 64, "at most 64 chains");
        let chains = chains
            .into_iter()
            .map(|chain| {
                let tracker = match &chain.kind {
                    ReplayKind::Stateless => Tracker::Stateless,
                    ReplayKind::Rolling { window_ms } => {
                        Tracker::Rolling(Box::new(RollingStats::new(RollingConfig {
                            window_ms: *window_ms,
                            ..RollingConfig::default()
                        })))
                    }
                    ReplayKind::Bars { config } => Tracker::Bars {
                        size_ms: config.size_ms,
                        watermark: Watermark::new(config.lateness_ms),
                        max_ts: None,
                    },
                    ReplayKind::Everything => Tracker::Everything,
                };
                (chain, tracker)
            })
            .collect();
        Self {
            chains,
            buffer: Vec::new(),
            compact_at: MIN_COMPACT,
        }
    }

    /// Feeds the next input record (in arrival order, invalid ones included).
    pub fn observe(&mut self, value: &[u8]) {
        let tick = parse_tick(value).ok();
        let mut wanted = 0u64;
        for (i, (chain, tracker)) in self.chains.iter_mut().enumerate() {
            let passes = match &tick {
                Some(t) => chain
                    .watchlist
                    .as_ref()
                    .is_none_or(|w| w.contains(t.symbol)),
                None => !chain.filtered,
            };
            if !passes {
                continue;
            }
            let accepted = match (tracker, &tick) {
                (Tracker::Stateless, _) => false,
                (Tracker::Everything, _) => true,
                (_, None) => false,
                (Tracker::Rolling(stats), Some(t)) => !stats.update(t).late,
                (
                    Tracker::Bars {
                        watermark, max_ts, ..
                    },
                    Some(t),
                ) => {
                    let accepted = watermark.admit(t.ts) == Admission::Accepted;
                    if accepted {
                        *max_ts = Some(max_ts.map_or(t.ts, |m| m.max(t.ts)));
                    }
                    accepted
                }
            };
            if accepted {
                wanted |= 1 << i;
            }
        }
        if wanted != 0 {
            self.buffer.push(Buffered {
                value: value.to_vec(),
                tick: tick.map(|t| (t.symbol.into(), t.ts)),
                wanted,
            });
            if self.buffer.len() >= self.compact_at {
                self.compact();
                self.compact_at = (self.buffer.len() * 2).max(MIN_COMPACT);
            }
        }
    }

    /// Whether chain `i` still needs `record` under the current state (thresholds only rise,
    /// so a record not needed now is never needed later).
    fn needed(&self, i: usize, record: &Buffered) -> bool {
        if record.wanted & (1 << i) == 0 {
            return false;
        }
        let tracker = &self.chains[i].1;
        match (&record.tick, tracker) {
            (_, Tracker::Everything) => true,
            (Some((symbol, ts)), tracker) => tracker.threshold(symbol).is_some_and(|t| *ts >= t),
            (None, _) => false,
        }
    }

    fn compact(&mut self) {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.retain_mut(|record| {
            let mut wanted = 0;
            for i in 0..self.chains.len() {
                if self.needed(i, record) {
                    wanted |= 1 << i;
                }
            }
            record.wanted = wanted;
            wanted != 0
        });
        self.buffer = buffer;
    }

    /// The records each chain's `look_back` must see, in arrival order (one list per chain,
    /// in the order the chains were given).
    pub fn finish(self) -> Vec<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::new(); self.chains.len()];
        for record in &self.buffer {
            for (i, list) in out.iter_mut().enumerate() {
                if self.needed(i, record) {
                    list.push(record.value.clone());
                }
            }
        }
        out
    }

    /// The bars watermark's newest tick per chain (`None` for other chains or before any tick),
    /// so the host's count of late ticks goes on where it stopped.
    pub fn bars_max_ts(&self) -> Vec<Option<i64>> {
        self.chains
            .iter()
            .map(|(_, tracker)| match tracker {
                Tracker::Bars { max_ts, .. } => *max_ts,
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
