//! Windowed bars with Spark's `window(ts, size, slide)` semantics and append-mode emission
//! under a watermark (spec: "Windowed bars").
//!
//! Windows overlap, so instead of updating `size/slide` windows per tick each tick updates one
//! *pane* of `gcd(size, slide)`; a window is assembled from its panes once, when the watermark
//! passes its end (the "slicing" technique of Flink and Arroyo). Each tick is O(1) and each pane
//! is merged into at most `size/gcd` windows.

use std::collections::BTreeMap;

use crate::duration::parse_duration_ms;
use crate::json::{write_f64, write_int, write_opt_f64};
use crate::moments::PriceVolume;
use crate::tick::Tick;
use crate::ParamError;

/// Most windows one tick may belong to (`size / slide`): a week in 1-minute steps.
pub const MAX_WINDOWS_PER_TICK: i64 = 10_080;

/// Parameters of `window-bars`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarsConfig {
    /// Window length in ms (`size`, default `5m`).
    pub size_ms: i64,
    /// Window step in ms (`slide`, default `1m`; equal to size for tumbling windows).
    pub slide_ms: i64,
    /// Watermark delay in ms (`lateness`, default `0s`).
    pub lateness_ms: i64,
}

impl Default for BarsConfig {
    fn default() -> Self {
        Self {
            size_ms: 300_000,
            slide_ms: 60_000,
            lateness_ms: 0,
        }
    }
}

impl BarsConfig {
    /// Reads `size`, `slide` and `lateness` from the module's parameters.
    pub fn from_params<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ParamError> {
        let mut config = Self::default();
        if let Some(value) = param("size") {
            config.size_ms = parse_duration_ms("size", value)?;
            if config.size_ms <= 0 {
                return Err(ParamError::new(
                    "size",
                    value,
                    "a positive duration such as 5m",
                ));
            }
        }
        if let Some(value) = param("slide") {
            config.slide_ms = parse_duration_ms("slide", value)?;
        }
        if config.slide_ms <= 0 || config.slide_ms > config.size_ms {
            let value = param("slide").unwrap_or("1m");
            return Err(ParamError::new(
                "slide",
                value,
                "a positive duration no longer than size, such as 1m",
            ));
        }
        // Every tick is in size/slide windows, each a bar when it closes: found by fuzzing, a
        // size of millions of years with the default slide made one tick emit windows until
        // memory ran out.
        if config.size_ms / config.slide_ms > MAX_WINDOWS_PER_TICK {
            let value = param("slide").unwrap_or("1m");
            return Err(ParamError::new(
                "slide",
                value,
                "at least size / 10080: a tick may be in at most 10,080 windows (a week in 1-minute steps)",
            ));
        }
        if let Some(value) = param("lateness") {
            config.lateness_ms = parse_duration_ms("lateness", value)?;
        }
        Ok(config)
    }

    fn pane_ms(&self) -> i64 {
        let (mut a, mut b) = (self.size_ms, self.slide_ms);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
}

/// One emitted bar: a symbol's ticks in `[window_start, window_end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub symbol: String,
    pub window_start: i64,
    pub window_end: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: u64,
    pub vwap: Option<f64>,
    pub mean: f64,
    /// Sample standard deviation; `None` for a single tick (like Spark's `stddev`).
    pub std: Option<f64>,
    pub count: u64,
}

impl Bar {
    /// Appends the bar as one JSON object.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"symbol\":\"");
        // Valid symbols need no escaping.
        out.extend_from_slice(self.symbol.as_bytes());
        out.extend_from_slice(b"\",\"window_start\":");
        write_int(out, self.window_start);
        out.extend_from_slice(b",\"window_end\":");
        write_int(out, self.window_end);
        for (name, value) in [
            (&b",\"open\":"[..], self.open),
            (b",\"high\":", self.high),
            (b",\"low\":", self.low),
            (b",\"close\":", self.close),
        ] {
            out.extend_from_slice(name);
            write_f64(out, value);
        }
        out.extend_from_slice(b",\"volume\":");
        write_int(out, self.volume);
        out.extend_from_slice(b",\"vwap\":");
        write_opt_f64(out, self.vwap);
        out.extend_from_slice(b",\"mean\":");
        write_f64(out, self.mean);
        out.extend_from_slice(b",\"std\":");
        write_opt_f64(out, self.std);
        out.extend_from_slice(b",\"count\":");
        write_int(out, self.count);
        out.push(b'}');
    }
}

/// A tick's place in arrival order, for open/close ties.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Stamped {
    ts: i64,
    seq: u64,
    price: f64,
}

#[derive(Debug, Clone, Copy)]
struct PaneAggregate {
    values: PriceVolume,
    high: f64,
    low: f64,
    open: Stamped,
    close: Stamped,
}

impl PaneAggregate {
    fn new(tick: Stamped, volume: u64) -> Self {
        let mut values = PriceVolume::default();
        values.push(tick.price, volume);
        Self {
            values,
            high: tick.price,
            low: tick.price,
            open: tick,
            close: tick,
        }
    }

    fn merge(&mut self, other: &PaneAggregate) {
        self.values = self.values.merge(other.values);
        self.high = self.high.max(other.high);
        self.low = self.low.min(other.low);
        if (other.open.ts, other.open.seq) < (self.open.ts, self.open.seq) {
            self.open = other.open;
        }
        if (other.close.ts, other.close.seq) > (self.close.ts, self.close.seq) {
            self.close = other.close;
        }
    }
}

/// What happened to a pushed tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accepted,
    /// Below the watermark on arrival: counted and left out of every window.
    Late {
        watermark: i64,
    },
}

/// Largest event time seen minus the allowed lateness, across all symbols (as Spark's is per
/// query). Shared by `window-bars` and by hosts that account for late ticks beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    lateness_ms: i64,
    max_ts: Option<i64>,
}

impl Watermark {
    pub fn new(lateness_ms: i64) -> Self {
        Self {
            lateness_ms,
            max_ts: None,
        }
    }

    /// The newest event time admitted; `None` before the first tick.
    pub fn max_ts(&self) -> Option<i64> {
        self.max_ts
    }

    /// The current watermark; `None` before the first tick.
    pub fn current(&self) -> Option<i64> {
        self.max_ts.map(|ts| ts.saturating_sub(self.lateness_ms))
    }

    /// Admits a tick at `ts` unless it is below the watermark, advancing the watermark.
    pub fn admit(&mut self, ts: i64) -> Admission {
        if let Some(watermark) = self.current().filter(|wm| ts < *wm) {
            return Admission::Late { watermark };
        }
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        Admission::Accepted
    }
}

/// [`WindowBars`] with the buffer its closed bars go through, kept between ticks so that the
/// common case (no window closes) allocates nothing: what window-bars and bars hold.
pub struct BarEmitter {
    bars: WindowBars,
    closed: Vec<Bar>,
}

impl BarEmitter {
    pub fn new(config: BarsConfig) -> Self {
        Self {
            bars: WindowBars::new(config),
            closed: Vec::new(),
        }
    }

    /// Feeds one valid tick; `emit` sees each bar whose window it closed, in order.
    pub fn push(&mut self, tick: &Tick<'_>, mut emit: impl FnMut(&Bar)) {
        self.bars.push(tick, &mut self.closed);
        for bar in self.closed.drain(..) {
            emit(&bar);
        }
    }

    /// See [`WindowBars::resume`].
    pub fn resume(&mut self, max_ts: i64) {
        self.bars.resume(max_ts);
    }

    /// See [`WindowBars::max_ts`].
    pub fn max_ts(&self) -> Option<i64> {
        self.bars.max_ts()
    }

    /// Feeds a tick replayed to rebuild the open windows after a restart: windows it closes
    /// were emitted before the restart, so they are dropped.
    pub fn replay(&mut self, tick: &Tick<'_>) {
        self.bars.push(tick, &mut self.closed);
        self.closed.clear();
    }
}

/// Windowed bars for all symbols, with one watermark across them (as Spark's is per query).
pub struct WindowBars {
    config: BarsConfig,
    pane_ms: i64,
    /// Pane start -> symbol -> aggregate. Both ordered: emission is by window end, then symbol.
    panes: BTreeMap<i64, BTreeMap<Box<str>, PaneAggregate>>,
    watermark: Watermark,
    /// Start of the earliest window not yet emitted.
    next_window_start: i64,
    arrivals: u64,
    late_ticks: u64,
}

impl WindowBars {
    pub fn new(config: BarsConfig) -> Self {
        Self {
            pane_ms: config.pane_ms(),
            config,
            panes: BTreeMap::new(),
            watermark: Watermark::new(config.lateness_ms),
            next_window_start: i64::MIN,
            arrivals: 0,
            late_ticks: 0,
        }
    }

    pub fn config(&self) -> BarsConfig {
        self.config
    }

    /// Largest ts seen minus lateness; `None` before the first tick.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark.current()
    }

    /// The newest event time admitted (the watermark before lateness); `None` before the
    /// first tick.
    pub fn max_ts(&self) -> Option<i64> {
        self.watermark.max_ts()
    }

    /// Prepares a fresh state for a bounded restart from an input offset where the newest
    /// event time admitted so far was `max_ts`.
    ///
    /// Fed the input from there, every tick is admitted or found late as in the uninterrupted
    /// run. From an offset at or before the first tick with `ts >= watermark - size` (the
    /// watermark at the resume point), the windows still open there get all their ticks, in
    /// the same order; the older ticks only make windows that close before the resume point,
    /// so the bars emitted after it are the uninterrupted run's.
    pub fn resume(&mut self, max_ts: i64) {
        debug_assert!(self.arrivals == 0, "resume a fresh state");
        self.watermark.max_ts = Some(max_ts);
    }

    /// Ticks rejected as late so far.
    pub fn late_ticks(&self) -> u64 {
        self.late_ticks
    }

    /// Feeds one valid tick in arrival order; appends the bars whose window it closed to `out`.
    pub fn push(&mut self, tick: &Tick<'_>, out: &mut Vec<Bar>) -> Admission {
        if let late @ Admission::Late { .. } = self.watermark.admit(tick.ts) {
            self.late_ticks += 1;
            return late;
        }
        self.arrivals += 1;
        let stamped = Stamped {
            ts: tick.ts,
            seq: self.arrivals,
            price: tick.price,
        };
        let pane_start = tick.ts - tick.ts.rem_euclid(self.pane_ms);
        let pane = self.panes.entry(pane_start).or_default();
        match pane.get_mut(tick.symbol) {
            Some(aggregate) => aggregate.merge(&PaneAggregate::new(stamped, tick.volume)),
            None => {
                pane.insert(tick.symbol.into(), PaneAggregate::new(stamped, tick.volume));
            }
        }
        self.emit_closed(out);
        Admission::Accepted
    }

    /// Emits every window whose end the watermark has reached, in order of end, then symbol.
    fn emit_closed(&mut self, out: &mut Vec<Bar>) {
        let Some(watermark) = self.watermark() else {
            return;
        };
        let BarsConfig {
            size_ms, slide_ms, ..
        } = self.config;
        while let Some(&first_pane) = self.panes.keys().next() {
            // The earliest window holding the first pane: smallest multiple of slide > pane - size.
            let earliest = (first_pane - size_ms).div_euclid(slide_ms) * slide_ms + slide_ms;
            let start = earliest.max(self.next_window_start);
            let end = start + size_ms;
            if end > watermark {
                break;
            }
            let mut per_symbol: BTreeMap<&str, PaneAggregate> = BTreeMap::new();
            for symbols in self.panes.range(start..end).map(|(_, s)| s) {
                for (symbol, aggregate) in symbols {
                    per_symbol
                        .entry(symbol)
                        .and_modify(|acc| acc.merge(aggregate))
                        .or_insert(*aggregate);
                }
            }
            out.extend(per_symbol.into_iter().map(|(symbol, a)| Bar {
                symbol: symbol.to_owned(),
                window_start: start,
                window_end: end,
                open: a.open.price,
                high: a.high,
                low: a.low,
                close: a.close.price,
                volume: a.values.volume,
                vwap: a.values.vwap(),
                mean: a.values.prices.mean,
                std: a.values.prices.sample_std(),
                count: a.values.prices.count,
            }));
            self.next_window_start = start + slide_ms;
            // Panes before the next window start belong to no window still to come.
            while self
                .panes
                .first_key_value()
                .is_some_and(|(p, _)| *p < self.next_window_start)
            {
                self.panes.pop_first();
            }
        }
    }

    /// Number of panes held (for tests and metrics: bounded by size/gcd + lateness).
    pub fn open_panes(&self) -> usize {
        self.panes.len()
    }
}

#[cfg(test)]
mod tests;
