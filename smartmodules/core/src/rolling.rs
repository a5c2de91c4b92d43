//! Per-tick moving statistics over the last W of event time, per symbol (spec: "Per-tick
//! rolling statistics").
//!
//! Ticks of one symbol are grouped by timestamp. Groups older than the current one live in a
//! two-stack sliding aggregate, so both windows the spec asks for are O(1) amortised:
//! - the SMA window `(t-W, t]` is every group but one sitting exactly on `t-W`, plus the
//!   current group (ties at `t` included up to this tick);
//! - the previous window `[t-W, t)` is every group before the current one.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::duration::parse_duration_ms;
use crate::json::{self, write_opt_f64, write_opt_int};
use crate::moments::{Moments, PriceVolume};
use crate::sliding::{Monoid, SlidingAggregate};
use crate::tick::Tick;
use crate::ParamError;

/// Default W: 5 minutes.
pub const DEFAULT_WINDOW_MS: i64 = 300_000;

/// What the z-score is taken on (spec: "Z-score on returns").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Basis {
    /// The price level against the previous window's prices (the original rule).
    #[default]
    Price,
    /// The tick's log return against the previous window's log returns.
    Return,
}

impl Basis {
    /// Reads a `basis` parameter value.
    pub fn parse(value: &str) -> Result<Self, ParamError> {
        match value.trim() {
            "price" => Ok(Self::Price),
            "return" => Ok(Self::Return),
            _ => Err(ParamError::new("basis", value, "`price` or `return`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Price => "price",
            Self::Return => "return",
        }
    }
}

/// Parameters of `rolling-stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingConfig {
    /// Window length W in milliseconds (`window`, default `5m`).
    pub window_ms: i64,
    /// `basis=price` (default) or `basis=return`: whether the return statistics are computed.
    pub basis: Basis,
}

impl Default for RollingConfig {
    fn default() -> Self {
        Self {
            window_ms: DEFAULT_WINDOW_MS,
            basis: Basis::Price,
        }
    }
}

impl RollingConfig {
    /// Reads `window` and `basis` from the module's parameters.
    pub fn from_params<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ParamError> {
        let mut config = Self::default();
        if let Some(value) = param("window") {
            config.window_ms = parse_duration_ms("window", value)?;
            if config.window_ms <= 0 {
                return Err(ParamError::new(
                    "window",
                    value,
                    "a positive duration such as 5m",
                ));
            }
        }
        if let Some(value) = param("basis") {
            config.basis = Basis::parse(value)?;
        }
        Ok(config)
    }
}

/// The return statistics of one tick (`basis=return`); all `None` for a late tick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReturnStats {
    /// `ln(price / previous non-late price)`; `None` for a symbol's first tick.
    pub ret: Option<f64>,
    pub prev_mean: Option<f64>,
    pub prev_std: Option<f64>,
    pub prev_count: Option<u64>,
}

/// The statistics added to one tick. All `None` (JSON null) for a late tick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Enrichment {
    pub sma: Option<f64>,
    pub count: Option<u64>,
    pub vwap: Option<f64>,
    pub prev_mean: Option<f64>,
    pub prev_std: Option<f64>,
    pub prev_count: Option<u64>,
    /// With `basis=return` only (`None` otherwise, and then no `ret*` fields are written).
    pub returns: Option<ReturnStats>,
    /// Older than the newest tick already seen for its symbol: not part of any window.
    pub late: bool,
}

impl Enrichment {
    fn late(basis: Basis) -> Self {
        Self {
            late: true,
            returns: (basis == Basis::Return).then_some(ReturnStats::default()),
            ..Self::default()
        }
    }

    /// Writes `record` (a JSON object) with the statistics appended as fields.
    ///
    /// Returns `false`, writing nothing, if `record` does not end with a closing brace.
    pub fn write_onto(&self, record: &[u8], out: &mut Vec<u8>) -> bool {
        self.write_fields(record, None, out)
    }

    /// [`Self::write_onto`] followed by zscore-anomaly's `z` and `anomaly`, byte for byte what
    /// `write_scored` makes of `write_onto`'s output, in one pass.
    pub fn write_scored_onto(
        &self,
        record: &[u8],
        z: Option<f64>,
        anomaly: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        self.write_fields(record, Some((z, anomaly)), out)
    }

    fn write_fields(
        &self,
        record: &[u8],
        score: Option<(Option<f64>, bool)>,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(open) = json::open_object(record) else {
            return false;
        };
        out.reserve(open.len() + 192);
        out.extend_from_slice(open);
        out.extend_from_slice(b",\"sma\":");
        write_opt_f64(out, self.sma);
        out.extend_from_slice(b",\"count\":");
        write_opt_int(out, self.count);
        out.extend_from_slice(b",\"vwap\":");
        write_opt_f64(out, self.vwap);
        out.extend_from_slice(b",\"prev_mean\":");
        write_opt_f64(out, self.prev_mean);
        out.extend_from_slice(b",\"prev_std\":");
        write_opt_f64(out, self.prev_std);
        out.extend_from_slice(b",\"prev_count\":");
        write_opt_int(out, self.prev_count);
        if let Some(returns) = &self.returns {
            out.extend_from_slice(b",\"ret\":");
            write_opt_f64(out, returns.ret);
            out.extend_from_slice(b",\"ret_prev_mean\":");
            write_opt_f64(out, returns.prev_mean);
            out.extend_from_slice(b",\"ret_prev_std\":");
            write_opt_f64(out, returns.prev_std);
            out.extend_from_slice(b",\"ret_prev_count\":");
            write_opt_int(out, returns.prev_count);
        }
        if let Some((z, anomaly)) = score {
            out.extend_from_slice(b",\"z\":");
            write_opt_f64(out, z);
            out.extend_from_slice(if anomaly {
                b",\"anomaly\":true"
            } else {
                b",\"anomaly\":false"
            });
        }
        out.extend_from_slice(if self.late {
            LATE_TRUE_SUFFIX
        } else {
            LATE_FALSE_SUFFIX
        });
        true
    }
}

/// How every record written by [`Enrichment::write_onto`] ends; `zscore-anomaly` inserts its
/// fields before it so the spec's field order holds.
pub const LATE_FALSE_SUFFIX: &[u8] = b",\"late\":false}";
pub const LATE_TRUE_SUFFIX: &[u8] = b",\"late\":true}";

/// What one timestamp group (or a run of them) contributes: its prices and volumes, and with
/// `basis=return` its ticks' log returns (left empty, and so merged for free, otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct GroupStats {
    prices: PriceVolume,
    returns: Moments,
}

impl Monoid for GroupStats {
    #[inline]
    fn combine(older: Self, newer: Self) -> Self {
        GroupStats {
            prices: older.prices.merge(newer.prices),
            returns: older.returns.merge(newer.returns),
        }
    }
}

#[derive(Default)]
struct SymbolWindow {
    /// Completed timestamp groups, oldest first.
    groups: SlidingAggregate<i64, GroupStats>,
    /// The newest timestamp seen, whose group is still growing.
    current_ts: i64,
    current: GroupStats,
    /// The last non-late price, the base of the next tick's return (`basis=return` only).
    last_price: Option<f64>,
    /// Where a replay must start to rebuild this state bit for bit (see
    /// [`RollingStats::replay_from`]).
    replay_from: i64,
}

impl SymbolWindow {
    fn update(&mut self, config: RollingConfig, tick: &Tick<'_>) -> Enrichment {
        let window_ms = config.window_ms;
        if tick.ts < self.current_ts {
            return Enrichment::late(config.basis);
        }
        if tick.ts > self.current_ts {
            if self.current.prices.prices.count > 0 {
                self.groups.push(self.current_ts, self.current);
            }
            self.current_ts = tick.ts;
            self.current = GroupStats::default();
        }
        let start = tick.ts.saturating_sub(window_ms);
        let mut popped = None;
        loop {
            if let Some(oldest_moved) = self.groups.refill_front() {
                // A fresh state replayed from here makes this same front/back split.
                self.replay_from = popped.unwrap_or(oldest_moved);
            }
            match self.groups.oldest_key() {
                Some(oldest) if oldest < start => {
                    popped = Some(oldest);
                    self.groups.pop_oldest();
                }
                _ => break,
            }
        }
        let previous = self.groups.total();
        self.current.prices.push(tick.price, tick.volume);
        let returns = (config.basis == Basis::Return).then(|| {
            // ln of the ratio, not a difference of lns: exact for equal prices, and
            // one rounding fewer.
            let ret = self.last_price.map(|last| (tick.price / last).ln());
            self.last_price = Some(tick.price);
            if let Some(ret) = ret {
                self.current.returns.push(ret);
            }
            ReturnStats {
                ret,
                prev_mean: previous.returns.mean(),
                prev_std: previous.returns.sample_std(),
                prev_count: Some(previous.returns.count),
            }
        });
        let on_boundary = self.groups.oldest_key() == Some(start);
        let before_current = if on_boundary {
            self.groups.total_without_oldest().prices
        } else {
            previous.prices
        };
        let window = before_current.merge(self.current.prices);
        let previous = previous.prices;
        Enrichment {
            sma: window.prices.mean(),
            count: Some(window.prices.count),
            vwap: window.vwap(),
            prev_mean: previous.prices.mean(),
            prev_std: previous.prices.sample_std(),
            prev_count: Some(previous.prices.count),
            returns,
            late: false,
        }
    }
}

/// FNV-1a: symbols are short and trusted to be few, so a cheap hash beats SipHash here.
#[derive(Default)]
pub(crate) struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

pub(crate) type SymbolMap<V> = HashMap<Box<str>, V, BuildHasherDefault<FnvHasher>>;

/// Rolling statistics for every symbol.
#[derive(Default)]
pub struct RollingStats {
    config: RollingConfig,
    symbols: SymbolMap<SymbolWindow>,
    /// Symbols of a bounded restart not started yet: each starts at its first tick at or after
    /// the event time given (see [`RollingStats::resume`]).
    pending: SymbolMap<i64>,
}

impl std::fmt::Debug for RollingStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingStats")
            .field("config", &self.config)
            .field("symbols", &self.symbols.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl RollingStats {
    pub fn new(config: RollingConfig) -> Self {
        Self {
            config,
            symbols: SymbolMap::default(),
            pending: SymbolMap::default(),
        }
    }

    /// Prepares a fresh state for a bounded restart: each symbol listed starts with its first
    /// tick at or after the event time given, and its ticks before that are answered as late
    /// and change nothing.
    ///
    /// Fed the input from any offset at or before each symbol's first accepted tick with
    /// `ts >= `[`Self::replay_from`], up to the resume point, the state there is bit for bit that
    /// of the uninterrupted run (accepted ticks have non-decreasing times, so every tick of the
    /// symbol before that one is older than the start, late or not). The price basis only: a
    /// return would also need the price before the start.
    pub fn resume(&mut self, starts: impl IntoIterator<Item = (Box<str>, i64)>) {
        debug_assert!(self.symbols.is_empty(), "resume a fresh state");
        self.pending.extend(starts);
    }

    /// Symbols of [`Self::resume`] whose start has not come yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Every symbol with state, with [`Self::replay_from`].
    pub fn replay_points(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.symbols
            .keys()
            .filter_map(|symbol| Some((&**symbol, self.replay_from(symbol)?)))
    }

    pub fn config(&self) -> RollingConfig {
        self.config
    }

    /// Feeds one valid tick (in arrival order) and returns its statistics.
    pub fn update(&mut self, tick: &Tick<'_>) -> Enrichment {
        let config = self.config;
        if let Some(window) = self.symbols.get_mut(tick.symbol) {
            return window.update(config, tick);
        }
        if let Some(&start) = self.pending.get(tick.symbol) {
            if tick.ts < start {
                return Enrichment::late(config.basis);
            }
            self.pending.remove(tick.symbol);
        }
        let mut window = SymbolWindow {
            current_ts: i64::MIN,
            replay_from: i64::MIN,
            ..SymbolWindow::default()
        };
        let enrichment = window.update(config, tick);
        self.symbols.insert(tick.symbol.into(), window);
        enrichment
    }

    /// Number of symbols with state.
    pub fn symbols(&self) -> usize {
        self.symbols.len()
    }

    /// The earliest event time from which replaying a symbol's accepted ticks, in arrival
    /// order, into a fresh `RollingStats` rebuilds its state bit for bit; `None` for a symbol
    /// never seen.
    ///
    /// The last W of ticks would rebuild the same window *contents*, but floating-point merges
    /// are not associative: the two-stack split decides how groups are merged, so an exact
    /// restart (the pipeline's resume after a crash) replays from where a fresh state makes
    /// the same split, at most about 2 W back.
    pub fn replay_from(&self, symbol: &str) -> Option<i64> {
        self.symbols.get(symbol).map(|window| {
            if window.groups.oldest_key_if_any().is_none() {
                window.current_ts
            } else {
                window.replay_from
            }
        })
    }
}

#[cfg(test)]
mod tests;
