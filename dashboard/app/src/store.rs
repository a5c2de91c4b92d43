//! Everything received, in plain (non-reactive) buffers. Messages write here and only mark the
//! store dirty; the frame loop turns that into at most one re-render per animation frame.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};

use crate::protocol::{
    AlertRecord, AnomalyRecord, BarRow, Kpi, MessageKind, ServerMessage, TickRow,
};

pub const MAX_TICKS: usize = 5_000;
pub const MAX_BARS: usize = 500;
pub const MAX_FEED: usize = 200;
pub const MAX_ALERTS: usize = 500;
/// Markers kept per symbol for the chart; older ones are off any useful view by then.
pub const MAX_MARKERS: usize = 1_000;
pub const BAR_MS: f64 = 5.0 * 60_000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    pub ts: f64,
    pub price: f64,
    pub sma: Option<f64>,
    pub vwap: Option<f64>,
    pub z: Option<f64>,
    pub anomaly: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub start: f64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyEvent {
    /// Unique per event received: the feed's key, so rows are never confused.
    pub seq: u64,
    pub symbol: String,
    pub ts: f64,
    pub price: f64,
    pub z: Option<f64>,
    pub sma: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marker {
    pub ts: f64,
    pub price: f64,
}

/// One symbol's data, each buffer oldest first and bounded.
#[derive(Debug, Default)]
pub struct Series {
    pub ticks: VecDeque<Tick>,
    pub bars: VecDeque<Bar>,
    pub markers: VecDeque<Marker>,
    pub anomaly_count: u64,
    /// The oldest tick ever received (kept when the tick buffer drops it): a bar whose window
    /// began before it holds only part of its window's data.
    pub first_tick: Option<f64>,
}

/// What a tile shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TileStats {
    pub last: Option<f64>,
    pub first: Option<f64>,
    pub z: Option<f64>,
    pub anomalies: u64,
}

#[derive(Debug, Default)]
pub struct Store {
    /// Every symbol the server has seen, sorted.
    pub symbols: Vec<String>,
    pub series: HashMap<String, Series>,
    /// The latest anomalies of the watched symbols, oldest first.
    pub feed: VecDeque<AnomalyEvent>,
    /// Moves whenever `feed` changes, so the view copies the feed only then.
    pub feed_revision: u64,
    pub kpi: Kpi,
    /// The latest alerts, all symbols, oldest first; an open alert is replaced in place.
    pub alerts: VecDeque<AlertRecord>,
    pub alerts_revision: u64,
    /// Symbols the server marks stale, sorted.
    pub stale: Vec<String>,
    /// Ticks taken in since the page loaded.
    pub ticks_received: u64,
    subscribed: HashSet<String>,
    /// A list of symbols has come since the page loaded.
    symbols_known: bool,
    dirty: bool,
    next_seq: u64,
}

/// What a message changed that the caller has to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub snapshot: bool,
    pub symbols: SymbolsChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolsChange {
    /// No list, or no symbol that was not known already.
    None,
    /// The first list since the page loaded: what the server knew before this visit.
    First,
    /// Symbols the server had not seen before appeared.
    New,
}

impl Store {
    pub fn apply(&mut self, msg: ServerMessage) -> Applied {
        self.dirty = true;
        let snapshot = msg.kind == MessageKind::Snapshot;
        let mut applied = Applied {
            snapshot,
            symbols: SymbolsChange::None,
        };
        if let Some(kpi) = msg.kpi {
            self.kpi = kpi;
        }
        if let Some(stale) = msg.stale {
            self.stale = stale;
        }
        if snapshot {
            self.alerts.clear();
            self.alerts_revision += 1;
        }
        for alert in msg.alerts {
            self.put_alert(alert);
        }
        if msg.kind == MessageKind::Kpi || msg.kind == MessageKind::Other {
            return applied;
        }
        if let Some(symbols) = msg.symbols {
            applied.symbols = self.set_symbols(symbols);
        }
        if snapshot {
            self.clear_symbols_in(&msg.ticks, &msg.bars, &msg.anomalies);
        }
        for (symbol, rows) in msg.ticks {
            if let Some(series) = self.watched_series(&symbol) {
                for row in &rows {
                    series.push_tick(row);
                }
                self.ticks_received += rows.len() as u64;
            }
        }
        for (symbol, rows) in msg.bars {
            if let Some(series) = self.watched_series(&symbol) {
                rows.iter().for_each(|row| series.put_bar(row));
            }
        }
        for record in msg.anomalies {
            self.push_anomaly(record);
        }
        applied
    }

    fn put_alert(&mut self, alert: AlertRecord) {
        self.alerts_revision += 1;
        // Open alerts are recent: search from the newest.
        if let Some(kept) = self.alerts.iter_mut().rev().find(|a| a.id == alert.id) {
            *kept = alert;
            return;
        }
        if self.alerts.len() == MAX_ALERTS {
            self.alerts.pop_front();
        }
        self.alerts.push_back(alert);
    }

    pub fn is_stale(&self, symbol: &str) -> bool {
        self.stale
            .binary_search_by(|s| s.as_str().cmp(symbol))
            .is_ok()
    }

    /// Keeps only the data of `symbols`; data of anything else that still arrives is dropped.
    pub fn set_subscribed(&mut self, symbols: &[String]) {
        self.subscribed = symbols.iter().cloned().collect();
        let watched = &self.subscribed;
        self.series.retain(|symbol, _| watched.contains(symbol));
        self.feed.retain(|event| watched.contains(&event.symbol));
        self.feed_revision += 1;
        self.dirty = true;
    }

    /// True once, after anything changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn series(&self, symbol: &str) -> Option<&Series> {
        self.series.get(symbol)
    }

    pub fn tile_stats(&self, symbol: &str) -> TileStats {
        let Some(series) = self.series.get(symbol) else {
            return TileStats::default();
        };
        let last = series.ticks.back();
        TileStats {
            last: last.map(|t| t.price),
            first: series.ticks.front().map(|t| t.price),
            z: last.and_then(|t| t.z),
            anomalies: series.anomaly_count,
        }
    }

    fn set_symbols(&mut self, mut symbols: Vec<String>) -> SymbolsChange {
        symbols.sort();
        symbols.dedup();
        let change = if !self.symbols_known {
            SymbolsChange::First
        } else if symbols
            .iter()
            .any(|s| self.symbols.binary_search(s).is_err())
        {
            SymbolsChange::New
        } else {
            SymbolsChange::None
        };
        self.symbols_known = true;
        self.symbols = symbols;
        change
    }

    /// A snapshot replaces everything held for the symbols it carries.
    fn clear_symbols_in(
        &mut self,
        ticks: &HashMap<String, Vec<TickRow>>,
        bars: &HashMap<String, Vec<BarRow>>,
        anomalies: &[AnomalyRecord],
    ) {
        let replaced: HashSet<&str> = ticks
            .keys()
            .chain(bars.keys())
            .map(String::as_str)
            .chain(anomalies.iter().map(|a| a.symbol.as_str()))
            .filter(|s| self.subscribed.contains(*s))
            .collect();
        for symbol in &replaced {
            self.series.insert(symbol.to_string(), Series::default());
        }
        self.feed
            .retain(|event| !replaced.contains(event.symbol.as_str()));
        self.feed_revision += 1;
    }

    fn watched_series(&mut self, symbol: &str) -> Option<&mut Series> {
        if !self.subscribed.contains(symbol) {
            return None;
        }
        Some(self.series.entry(symbol.to_string()).or_default())
    }

    fn push_anomaly(&mut self, record: AnomalyRecord) {
        let Some(series) = self.watched_series(&record.symbol) else {
            return;
        };
        series.anomaly_count += 1;
        push_bounded(
            &mut series.markers,
            Marker {
                ts: record.ts,
                price: record.price,
            },
            MAX_MARKERS,
        );
        self.next_seq += 1;
        let event = AnomalyEvent {
            seq: self.next_seq,
            symbol: record.symbol,
            ts: record.ts,
            price: record.price,
            z: record.z,
            sma: record.sma,
        };
        // Arrivals are in time order except across a snapshot's symbols: keep the feed sorted.
        let at = self.feed.partition_point(|e| e.ts <= event.ts);
        self.feed.insert(at, event);
        while self.feed.len() > MAX_FEED {
            self.feed.pop_front();
        }
        self.feed_revision += 1;
    }
}

impl Series {
    fn push_tick(&mut self, row: &TickRow) {
        let tick = Tick {
            ts: row.0,
            price: row.1,
            sma: row.2,
            vwap: row.3,
            z: row.4,
            anomaly: row.5,
        };
        if !(tick.ts.is_finite() && tick.price.is_finite()) {
            return;
        }
        self.first_tick = Some(self.first_tick.map_or(tick.ts, |first| first.min(tick.ts)));
        // Ticks arrive in time order; a straggler is slotted in so binary searches stay valid.
        let at = if self.ticks.back().is_none_or(|last| last.ts <= tick.ts) {
            self.ticks.len()
        } else {
            self.ticks.partition_point(|t| t.ts <= tick.ts)
        };
        self.ticks.insert(at, tick);
        while self.ticks.len() > MAX_TICKS {
            self.ticks.pop_front();
        }
    }

    /// A bar for a window already held replaces it (a window may be re-sent as it fills).
    fn put_bar(&mut self, row: &BarRow) {
        let bar = Bar {
            start: row.0,
            open: row.1,
            high: row.2,
            low: row.3,
            close: row.4,
        };
        let at = self.bars.partition_point(|b| b.start < bar.start);
        match self.bars.get_mut(at) {
            Some(held) if held.start == bar.start => *held = bar,
            _ => self.bars.insert(at, bar),
        }
        while self.bars.len() > MAX_BARS {
            self.bars.pop_front();
        }
    }
}

fn push_bounded<T>(buffer: &mut VecDeque<T>, item: T, max: usize) {
    buffer.push_back(item);
    while buffer.len() > max {
        buffer.pop_front();
    }
}

thread_local! {
    static STORE: RefCell<Store> = RefCell::new(Store::default());
}

pub fn with<R>(f: impl FnOnce(&Store) -> R) -> R {
    STORE.with(|store| f(&store.borrow()))
}

pub fn with_mut<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    STORE.with(|store| f(&mut store.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> ServerMessage {
        serde_json::from_str(text).unwrap()
    }

    fn alert_update(count: u32, status: &str) -> ServerMessage {
        message(&format!(
            r#"{{"type":"update","alerts":[{{"id":"IBM@1","symbol":"IBM","status":"{status}","start_ts":1,"end_ts":2,"count":{count},"peak_z":4.0,"direction":"up","severity":"minor","ticks":[[1,2.0,4.0]]}}]}}"#
        ))
    }

    #[test]
    fn an_alert_updates_in_place_and_a_snapshot_replaces_all() {
        // Alerts are market-wide: kept whatever the watchlist.
        let mut store = watching(&["AAPL"]);
        store.apply(alert_update(1, "open"));
        store.apply(alert_update(3, "closed"));
        assert_eq!(store.alerts.len(), 1);
        assert_eq!(store.alerts[0].count, 3.0);
        assert!(!store.alerts[0].is_open());
        store.apply(message(
            r#"{"type":"snapshot","symbols":[],"alerts":[],"stale":["IBM"]}"#,
        ));
        assert!(store.alerts.is_empty());
        assert!(store.is_stale("IBM") && !store.is_stale("AAPL"));
    }

    fn watching(symbols: &[&str]) -> Store {
        let mut store = Store::default();
        let symbols: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
        store.set_subscribed(&symbols);
        store
    }

    #[test]
    fn snapshot_replaces_and_updates_append() {
        let mut store = watching(&["A", "B"]);
        store.apply(message(
            r#"{"type":"update","ticks":{"A":[[1,10,null,null,null,false]],"B":[[1,5,null,null,null,false]]}}"#,
        ));
        store.apply(message(
            r#"{"type":"snapshot","symbols":["A","B"],"ticks":{"A":[[5,11,null,null,1.5,false]]}}"#,
        ));
        assert_eq!(store.series("A").unwrap().ticks.len(), 1);
        assert_eq!(
            store.series("B").unwrap().ticks.len(),
            1,
            "B was not in the snapshot"
        );
        store.apply(message(
            r#"{"type":"update","ticks":{"A":[[6,12,null,null,null,false]]}}"#,
        ));
        let stats = store.tile_stats("A");
        assert_eq!(
            (stats.first, stats.last, stats.z),
            (Some(11.0), Some(12.0), None)
        );
        assert_eq!(store.ticks_received, 4);
    }

    #[test]
    fn ignores_unwatched_symbols_and_bounds_buffers() {
        let mut store = watching(&["A"]);
        let rows: Vec<String> = (0..MAX_TICKS + 10)
            .map(|i| format!("[{i},1,null,null,null,false]"))
            .collect();
        store.apply(message(&format!(
            r#"{{"type":"update","ticks":{{"A":[{}],"Z":[[1,1,null,null,null,false]]}}}}"#,
            rows.join(",")
        )));
        assert!(store.series("Z").is_none());
        let ticks = &store.series("A").unwrap().ticks;
        assert_eq!(ticks.len(), MAX_TICKS);
        assert_eq!(ticks.front().unwrap().ts, 10.0);
    }

    #[test]
    fn feed_is_sorted_bounded_and_replaced_by_snapshots() {
        let mut store = watching(&["A", "B"]);
        for i in 0..MAX_FEED + 5 {
            store.apply(message(&format!(
                r#"{{"type":"update","anomalies":[{{"symbol":"B","ts":{i},"price":1,"z":3,"sma":1}}]}}"#
            )));
        }
        store.apply(message(
            r#"{"type":"update","anomalies":[{"symbol":"A","ts":100.5,"price":1,"z":3,"sma":1}]}"#,
        ));
        assert_eq!(store.feed.len(), MAX_FEED);
        assert!(store
            .feed
            .iter()
            .zip(store.feed.iter().skip(1))
            .all(|(a, b)| a.ts <= b.ts));
        store.apply(message(
            r#"{"type":"snapshot","anomalies":[{"symbol":"A","ts":7,"price":2,"z":4,"sma":1}]}"#,
        ));
        let of_a: Vec<f64> = store
            .feed
            .iter()
            .filter(|e| e.symbol == "A")
            .map(|e| e.ts)
            .collect();
        assert_eq!(of_a, vec![7.0]);
        assert_eq!(store.tile_stats("A").anomalies, 1);
    }

    #[test]
    fn bars_replace_their_window() {
        let mut store = watching(&["A"]);
        store.apply(message(
            r#"{"type":"update","bars":{"A":[[0,1,2,0,1,5],[300000,1,2,0,1,5]]}}"#,
        ));
        store.apply(message(
            r#"{"type":"update","bars":{"A":[[300000,1,3,0,2,9]]}}"#,
        ));
        let bars = &store.series("A").unwrap().bars;
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[1].high, 3.0);
    }

    #[test]
    fn reports_new_symbols_once() {
        let mut store = Store::default();
        let first = store.apply(message(r#"{"type":"snapshot","symbols":["B","A"]}"#));
        assert!(first.snapshot);
        assert_eq!(first.symbols, SymbolsChange::First);
        let again = store.apply(message(r#"{"type":"snapshot","symbols":["A","B"]}"#));
        assert_eq!(again.symbols, SymbolsChange::None);
        assert_eq!(store.symbols, vec!["A", "B"]);
        let more = store.apply(message(r#"{"type":"update","symbols":["A","B","C"]}"#));
        assert_eq!(more.symbols, SymbolsChange::New);
        assert!(store.take_dirty());
        assert!(!store.take_dirty());
    }
}
