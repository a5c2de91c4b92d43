//! What the dashboard knows: recent ticks and bars per symbol, recent anomalies, and the
//! figures of the run, kept in memory; and the broadcast of what is new.
//!
//! Every batch of derived records becomes one [`Update`], serialised once per symbol, applied to
//! the state and broadcast under one lock with a sequence number, so a client that takes a
//! snapshot and then reads updates neither misses nor repeats anything (it skips updates at or
//! below the snapshot's sequence).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use stockstream_core::episodes::MAX_DETAIL_TICKS;
use stockstream_pipeline::dashboard::DerivedBatch;
use stockstream_pipeline::outputs::{parse_rows, AlertRow, BarRow, Rows, TickRow};
use stockstream_pipeline::source::{ReplayControl, Speed};
use stockstream_pipeline::Stream;
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// How much is kept in memory (and so what a snapshot holds).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Recent enriched ticks per symbol.
    pub ticks_per_symbol: usize,
    /// Recent bars per symbol.
    pub bars_per_symbol: usize,
    /// Recent anomalies, all symbols.
    pub anomalies: usize,
    /// Updates a client may fall behind before it gets a fresh snapshot instead.
    pub client_backlog: usize,
    /// Latest alerts, all symbols (an open alert updates in place, by id).
    pub alerts: usize,
    /// A symbol whose newest tick is this far (ms of event time) behind the newest tick of
    /// any symbol is stale.
    pub stale_after_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            ticks_per_symbol: 2_000,
            bars_per_symbol: 500,
            anomalies: 1_000,
            client_backlog: 1_024,
            alerts: 500,
            stale_after_ms: 60_000,
        }
    }
}

/// A tick as the front end draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickPoint {
    pub ts: i64,
    pub price: f64,
    pub sma: Option<f64>,
    pub vwap: Option<f64>,
    pub z: Option<f64>,
    pub anomaly: bool,
}

/// A flagged tick, for the feed and `/api/history/anomalies`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyRow {
    pub symbol: Arc<str>,
    pub ts: i64,
    pub price: f64,
    pub z: Option<f64>,
    pub sma: Option<f64>,
    pub vwap: Option<f64>,
}

/// An alert as the feed shows it: the pipeline's alert JSON (see
/// `stockstream_core::episodes`), or a closed alert read back from outputs/alerts (no ticks).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AlertView {
    /// `SYMBOL@start_ts`.
    pub id: Box<str>,
    pub symbol: Box<str>,
    /// `open` (still growing) or `closed`.
    pub status: Box<str>,
    pub start_ts: i64,
    pub end_ts: i64,
    pub count: i64,
    pub peak_z: f64,
    pub peak_ts: i64,
    pub peak_price: f64,
    pub direction: Box<str>,
    pub severity: Box<str>,
    /// The alert's first ticks: `[ts, price, z]`.
    #[serde(default)]
    pub ticks: Vec<(i64, f64, f64)>,
}

impl AlertView {
    fn is_open(&self) -> bool {
        &*self.status == "open"
    }
}

impl From<&AlertRow> for AlertView {
    fn from(row: &AlertRow) -> Self {
        Self {
            id: row.id.clone(),
            symbol: row.symbol.clone(),
            status: "closed".into(),
            start_ts: row.start_ts,
            end_ts: row.end_ts,
            count: row.count,
            peak_z: row.peak_z,
            peak_ts: row.peak_ts,
            peak_price: row.peak_price,
            direction: row.direction.clone(),
            severity: row.severity.clone(),
            ticks: Vec::new(),
        }
    }
}

fn alert_json(alert: &AlertView) -> String {
    serde_json::to_string(alert).expect("alerts serialise")
}

#[derive(Default)]
struct SymbolState {
    ticks: VecDeque<TickPoint>,
    bars: VecDeque<BarRow>,
    /// Event time of the newest tick (for staleness).
    last_ts: Option<i64>,
}

/// What one batch of derived records added, serialised once for every client.
#[derive(Debug)]
pub struct Update {
    pub seq: u64,
    /// When the batch reached the dashboard (push latency is measured from here).
    pub received: Instant,
    /// Every symbol seen, when this update brought new ones.
    pub symbols: Option<Vec<Arc<str>>>,
    /// Per symbol, tick rows as JSON array elements joined by commas.
    pub ticks: BTreeMap<Arc<str>, String>,
    /// Per symbol, bar rows as JSON array elements joined by commas.
    pub bars: BTreeMap<Arc<str>, String>,
    /// Anomalies as JSON objects, with their symbol.
    pub anomalies: Vec<(Arc<str>, String)>,
    /// Alerts new or changed, as JSON objects: sent to every client (the feed is market-wide).
    pub alerts: Vec<String>,
    /// Messages already rendered, by subscription: clients following the same symbols share
    /// one buffer instead of building a copy each.
    rendered: Mutex<Vec<(Subscription, Option<Utf8Bytes>)>>,
}

/// Which symbols a client follows.
pub type Subscription = std::collections::BTreeSet<Arc<str>>;

impl Update {
    /// [`render`](Self::render), built once per distinct subscription.
    pub fn render_shared(&self, subscription: &Subscription) -> Option<Utf8Bytes> {
        let mut rendered = self.rendered.lock().expect("not poisoned");
        if let Some((_, message)) = rendered.iter().find(|(s, _)| s == subscription) {
            return message.clone();
        }
        let message = self.render(subscription).map(Utf8Bytes::from);
        // Bounded: past a few distinct watchlists per update, render without keeping.
        if rendered.len() < 64 {
            rendered.push((subscription.clone(), message.clone()));
        }
        message
    }

    /// The `update` message for a client following `subscription`, if anything is for it.
    pub fn render(&self, subscription: &Subscription) -> Option<String> {
        let ticks: Vec<_> = self
            .ticks
            .iter()
            .filter(|(s, _)| subscription.contains(*s))
            .collect();
        let bars: Vec<_> = self
            .bars
            .iter()
            .filter(|(s, _)| subscription.contains(*s))
            .collect();
        let anomalies: Vec<&String> = self
            .anomalies
            .iter()
            .filter(|(s, _)| subscription.contains(s))
            .map(|(_, a)| a)
            .collect();
        if self.symbols.is_none()
            && ticks.is_empty()
            && bars.is_empty()
            && anomalies.is_empty()
            && self.alerts.is_empty()
        {
            return None;
        }
        let mut out = String::with_capacity(
            64 + ticks.iter().map(|(_, t)| t.len() + 16).sum::<usize>()
                + bars.iter().map(|(_, b)| b.len() + 16).sum::<usize>()
                + anomalies.iter().map(|a| a.len() + 1).sum::<usize>()
                + self.alerts.iter().map(|a| a.len() + 1).sum::<usize>(),
        );
        out.push_str(r#"{"type":"update""#);
        if let Some(symbols) = &self.symbols {
            out.push_str(r#","symbols":"#);
            out.push_str(&serde_json::to_string(symbols).expect("strings serialise"));
        }
        write_series(&mut out, "ticks", ticks);
        write_series(&mut out, "bars", bars);
        out.push_str(r#","anomalies":["#);
        for (i, anomaly) in anomalies.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(anomaly);
        }
        out.push(']');
        if !self.alerts.is_empty() {
            out.push_str(r#","alerts":["#);
            out.push_str(&self.alerts.join(","));
            out.push(']');
        }
        out.push('}');
        Some(out)
    }
}

fn write_series(out: &mut String, name: &str, series: Vec<(&Arc<str>, &String)>) {
    let _ = write!(out, r#","{name}":{{"#);
    for (i, (symbol, rows)) in series.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(&**symbol).expect("strings serialise"));
        out.push_str(":[");
        out.push_str(rows);
        out.push(']');
    }
    out.push('}');
}

fn opt(value: Option<f64>) -> String {
    match value {
        // Debug keeps the `.0` of whole numbers, as the chains' JSON does.
        Some(v) if v.is_finite() => format!("{v:?}"),
        _ => "null".into(),
    }
}

fn tick_json(point: &TickPoint) -> String {
    format!(
        "[{},{:?},{},{},{},{}]",
        point.ts,
        point.price,
        opt(point.sma),
        opt(point.vwap),
        opt(point.z),
        point.anomaly
    )
}

fn bar_json(bar: &BarRow) -> String {
    format!(
        "[{},{:?},{:?},{:?},{:?},{}]",
        bar.window_start, bar.open, bar.high, bar.low, bar.close, bar.volume
    )
}

fn anomaly_json(row: &AnomalyRow) -> String {
    serde_json::to_string(row).expect("rows serialise")
}

/// Figures of the run that derived records do not carry (the host counts them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunCounts {
    pub records: u64,
    pub invalid: u64,
    pub late: u64,
}

#[derive(Default)]
struct Rates {
    /// (second, ticks, anomalies), newest last, one minute at most.
    seconds: VecDeque<(u64, u64, u64)>,
}

impl Rates {
    fn add(&mut self, now: u64, ticks: u64, anomalies: u64) {
        match self.seconds.back_mut() {
            Some((second, t, a)) if *second == now => {
                *t += ticks;
                *a += anomalies;
            }
            _ => self.seconds.push_back((now, ticks, anomalies)),
        }
        while self.seconds.front().is_some_and(|(s, _, _)| *s + 60 <= now) {
            self.seconds.pop_front();
        }
    }

    /// Ticks per second over the last full seconds (up to 5), anomalies over the last minute.
    fn figures(&self, now: u64) -> (f64, f64) {
        let span = 5u64;
        let ticks: u64 = self
            .seconds
            .iter()
            .filter(|(s, _, _)| *s < now && *s + span >= now)
            .map(|(_, t, _)| t)
            .sum();
        let anomalies: u64 = self
            .seconds
            .iter()
            .filter(|(s, _, _)| *s + 60 >= now)
            .map(|(_, _, a)| a)
            .sum();
        (ticks as f64 / span as f64, anomalies as f64)
    }
}

struct State {
    seq: u64,
    symbols: BTreeMap<Arc<str>, SymbolState>,
    anomalies: VecDeque<AnomalyRow>,
    /// Oldest first; an open alert is replaced in place as it grows.
    alerts: VecDeque<AlertView>,
    /// Alerts closed while this dashboard ran.
    alerts_closed: u64,
    /// Event time of the newest tick of any symbol: the run's clock.
    clock: Option<i64>,
    rates: Rates,
    ticks_total: u64,
    anomalies_total: u64,
    late_seen: u64,
    run: RunCounts,
}

/// The dashboard's shared state.
pub struct Hub {
    state: Mutex<State>,
    updates: broadcast::Sender<Arc<Update>>,
    retention: Retention,
    started: Instant,
    pub metrics: Metrics,
    clients: AtomicU64,
    /// The replay's pace, when the run reads a file or the generator (not a live stream).
    replay: OnceLock<Arc<ReplayControl>>,
}

/// The replay's pace as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReplayState {
    /// Times real event time; `null` for as fast as possible.
    pub speed: Option<f64>,
    pub paused: bool,
}

impl ReplayState {
    pub fn of(control: &ReplayControl) -> Self {
        Self {
            speed: match control.speed() {
                Speed::Max => None,
                Speed::Factor(factor) => Some(factor),
            },
            paused: control.paused(),
        }
    }
}

/// The KPIs the header shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Kpi {
    pub ticks_per_s: f64,
    pub anomalies_per_min: f64,
    pub records: u64,
    pub ticks: u64,
    pub late: u64,
    pub invalid: u64,
    pub anomalies: u64,
    pub clients: u64,
    /// Alerts closed while the dashboard ran.
    pub alerts: u64,
    /// Alerts kept that are still open.
    pub open_alerts: u64,
    /// Symbols whose newest tick is older than `stale_after` behind `clock`.
    pub stale: u64,
    /// Event time of the newest tick seen (ms), `null` before any.
    pub clock: Option<i64>,
    /// The replay's pace; `null` when the input is a live stream, whose pace is its sender's.
    pub replay: Option<ReplayState>,
}

impl Hub {
    pub fn new(retention: Retention) -> Arc<Self> {
        let (updates, _) = broadcast::channel(retention.client_backlog.max(1));
        Arc::new(Self {
            state: Mutex::new(State {
                seq: 0,
                symbols: BTreeMap::new(),
                anomalies: VecDeque::new(),
                alerts: VecDeque::new(),
                alerts_closed: 0,
                clock: None,
                rates: Rates::default(),
                ticks_total: 0,
                anomalies_total: 0,
                late_seen: 0,
                run: RunCounts::default(),
            }),
            updates,
            retention,
            started: Instant::now(),
            metrics: Metrics::default(),
            clients: AtomicU64::new(0),
            replay: OnceLock::new(),
        })
    }

    /// A receiver of every update from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Update>> {
        self.updates.subscribe()
    }

    pub fn client_connected(&self) -> ClientGuard<'_> {
        self.clients.fetch_add(1, Ordering::Relaxed);
        ClientGuard(self)
    }

    pub fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Takes in one batch of derived records (JSON, as the chains wrote them).
    pub fn ingest(&self, batch: &DerivedBatch) {
        let received = Instant::now();
        if batch.stream == Stream::Alerts {
            // Parsed here rather than as outputs rows: the feed carries status and ticks.
            let mut alerts = Vec::with_capacity(batch.records.len());
            for record in &batch.records {
                match serde_json::from_slice::<AlertView>(record) {
                    Ok(alert) => alerts.push(alert),
                    Err(e) => tracing::warn!("dashboard: an alert is unreadable: {e}"),
                }
            }
            self.ingest_alerts(alerts, received, true);
            return;
        }
        let rows = match parse_rows(batch.stream, batch.records.iter().map(Vec::as_slice)) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(
                    "dashboard: a {} batch is unreadable: {e}",
                    batch.stream.name()
                );
                return;
            }
        };
        self.ingest_rows(batch.stream, &rows, received, true);
    }

    /// Takes in alerts, new or grown: one with a kept id replaces it in place.
    pub fn ingest_alerts(&self, alerts: Vec<AlertView>, received: Instant, live: bool) {
        if alerts.is_empty() {
            return;
        }
        let mut state = self.state.lock().expect("not poisoned");
        let mut update = self.empty_update(received);
        for mut alert in alerts {
            if live && !alert.is_open() {
                state.alerts_closed += 1;
            }
            update.alerts.push(alert_json(&alert));
            // Open alerts are recent: search from the newest.
            if let Some(kept) = state.alerts.iter_mut().rev().find(|a| a.id == alert.id) {
                if alert.ticks.is_empty() {
                    // A closed row read back from Parquet has no ticks; keep the feed's.
                    alert.ticks = std::mem::take(&mut kept.ticks);
                }
                *kept = alert;
            } else {
                push_bounded(&mut state.alerts, alert, self.retention.alerts.max(1));
            }
        }
        state.seq += 1;
        update.seq = state.seq;
        let _ = self.updates.send(Arc::new(update));
    }

    /// Gives closed alerts read back from Parquet (which has no ticks) their ticks from the
    /// anomalies kept: the symbol's anomalies within the alert's span, at most as many as the
    /// pipeline's alert JSON carries. Returns how many alerts got ticks.
    pub fn fill_alert_ticks(&self) -> usize {
        let mut state = self.state.lock().expect("not poisoned");
        let state = &mut *state;
        let mut by_symbol: BTreeMap<&str, Vec<(i64, f64, f64)>> = BTreeMap::new();
        for row in &state.anomalies {
            if let Some(z) = row.z {
                by_symbol
                    .entry(&row.symbol)
                    .or_default()
                    .push((row.ts, row.price, z));
            }
        }
        for ticks in by_symbol.values_mut() {
            ticks.sort_by_key(|t| t.0);
        }
        let mut filled = 0;
        for alert in state.alerts.iter_mut().filter(|a| a.ticks.is_empty()) {
            let Some(ticks) = by_symbol.get(&*alert.symbol) else {
                continue;
            };
            let first = ticks.partition_point(|t| t.0 < alert.start_ts);
            alert.ticks = ticks[first..]
                .iter()
                .take_while(|t| t.0 <= alert.end_ts)
                .take(MAX_DETAIL_TICKS)
                .copied()
                .collect();
            filled += usize::from(!alert.ticks.is_empty());
        }
        filled
    }

    fn empty_update(&self, received: Instant) -> Update {
        Update {
            seq: 0,
            received,
            symbols: None,
            ticks: BTreeMap::new(),
            bars: BTreeMap::new(),
            anomalies: Vec::new(),
            alerts: Vec::new(),
            rendered: Mutex::new(Vec::new()),
        }
    }

    /// Takes in rows of `stream`: `live` ones count in the rates and totals; history read
    /// back from outputs/ does not.
    pub fn ingest_rows(&self, stream: Stream, rows: &Rows, received: Instant, live: bool) {
        let mut state = self.state.lock().expect("not poisoned");
        if let (Stream::Alerts, Rows::Alerts(rows)) = (stream, rows) {
            drop(state);
            self.ingest_alerts(rows.iter().map(AlertView::from).collect(), received, live);
            return;
        }
        let state = &mut *state;
        let mut update = self.empty_update(received);
        let mut new_symbol = false;
        let mut symbol_key = |symbols: &mut BTreeMap<Arc<str>, SymbolState>, name: &str| {
            if let Some((key, _)) = symbols.get_key_value(name) {
                key.clone()
            } else {
                let key: Arc<str> = Arc::from(name);
                symbols.insert(key.clone(), SymbolState::default());
                new_symbol = true;
                key
            }
        };
        let (mut ticks, mut anomalies) = (0u64, 0u64);
        match (stream, rows) {
            (Stream::Enriched, Rows::Ticks(rows)) => {
                for row in rows {
                    let key = symbol_key(&mut state.symbols, &row.symbol);
                    let point = point(row);
                    let entry = state.symbols.get_mut(&key).expect("inserted");
                    push_bounded(&mut entry.ticks, point, self.retention.ticks_per_symbol);
                    entry.last_ts = entry.last_ts.max(Some(row.ts));
                    state.clock = state.clock.max(Some(row.ts));
                    let text = update.ticks.entry(key).or_default();
                    if !text.is_empty() {
                        text.push(',');
                    }
                    text.push_str(&tick_json(&point));
                    ticks += 1;
                    if row.late {
                        state.late_seen += 1;
                    }
                }
            }
            (Stream::Anomalies, Rows::Ticks(rows)) => {
                for row in rows {
                    let key = symbol_key(&mut state.symbols, &row.symbol);
                    let anomaly = AnomalyRow {
                        symbol: key.clone(),
                        ts: row.ts,
                        price: row.price,
                        z: row.z,
                        sma: row.sma,
                        vwap: row.vwap,
                    };
                    update.anomalies.push((key, anomaly_json(&anomaly)));
                    push_bounded(&mut state.anomalies, anomaly, self.retention.anomalies);
                    anomalies += 1;
                }
            }
            (Stream::Bars, Rows::Bars(rows)) => {
                for row in rows {
                    let key = symbol_key(&mut state.symbols, &row.symbol);
                    let text = update.bars.entry(key.clone()).or_default();
                    if !text.is_empty() {
                        text.push(',');
                    }
                    text.push_str(&bar_json(row));
                    let entry = state.symbols.get_mut(&key).expect("inserted");
                    push_bounded(&mut entry.bars, row.clone(), self.retention.bars_per_symbol);
                }
            }
            _ => return,
        }
        if live {
            state.ticks_total += ticks;
            state.anomalies_total += anomalies;
            state.rates.add(self.second(), ticks, anomalies);
        }
        if new_symbol {
            update.symbols = Some(state.symbols.keys().cloned().collect());
        }
        state.seq += 1;
        update.seq = state.seq;
        // No receivers is fine: nobody is watching.
        let _ = self.updates.send(Arc::new(update));
    }

    /// Figures the host counts (input records, invalid and late ticks).
    pub fn set_run_counts(&self, counts: RunCounts) {
        self.state.lock().expect("not poisoned").run = counts;
    }

    pub fn kpi(&self) -> Kpi {
        self.kpi_of(&self.state.lock().expect("not poisoned"))
    }

    fn kpi_of(&self, state: &State) -> Kpi {
        let (ticks_per_s, anomalies_per_min) = state.rates.figures(self.second());
        let stale = self.stale_of(state).count() as u64;
        Kpi {
            ticks_per_s,
            anomalies_per_min,
            records: state.run.records.max(state.ticks_total),
            ticks: state.ticks_total,
            late: state.run.late.max(state.late_seen),
            invalid: state.run.invalid,
            anomalies: state.anomalies_total,
            clients: self.clients(),
            alerts: state.alerts_closed,
            open_alerts: state.alerts.iter().filter(|a| a.is_open()).count() as u64,
            stale,
            clock: state.clock,
            replay: self.replay().map(|control| ReplayState::of(control)),
        }
    }

    /// Lets the page set the replay's speed and pause it (once; later calls are ignored).
    pub fn attach_replay(&self, control: Arc<ReplayControl>) {
        let _ = self.replay.set(control);
    }

    /// The replay's control, when the input is a replay.
    pub fn replay(&self) -> Option<&Arc<ReplayControl>> {
        self.replay.get()
    }

    /// Symbols whose newest tick is more than `stale_after` behind the newest of all. Event
    /// time, not wall time: a replay at any speed (or paused) marks what lags in the data.
    fn stale_of<'s>(&self, state: &'s State) -> impl Iterator<Item = &'s Arc<str>> {
        let cutoff = state.clock.map_or(i64::MIN, |c| {
            c.saturating_sub(self.retention.stale_after_ms)
        });
        state
            .symbols
            .iter()
            .filter(move |(_, s)| s.last_ts.is_some_and(|t| t < cutoff))
            .map(|(symbol, _)| symbol)
    }

    /// The stale symbols (see [`Retention::stale_after_ms`]), sorted.
    pub fn stale_symbols(&self) -> Vec<Arc<str>> {
        let state = self.state.lock().expect("not poisoned");
        self.stale_of(&state).cloned().collect()
    }

    /// The latest `limit` alerts (of `symbol`, or all), oldest first.
    pub fn alerts(&self, symbol: Option<&str>, limit: usize) -> Vec<AlertView> {
        let state = self.state.lock().expect("not poisoned");
        latest(&state.alerts, |a| &a.symbol, symbol, limit)
    }

    pub fn kpi_message(&self) -> String {
        let state = self.state.lock().expect("not poisoned");
        let kpi = self.kpi_of(&state);
        let stale: Vec<&Arc<str>> = self.stale_of(&state).collect();
        format!(
            r#"{{"type":"kpi","kpi":{},"stale":{}}}"#,
            serde_json::to_string(&kpi).expect("serialises"),
            serde_json::to_string(&stale).expect("serialises")
        )
    }

    pub fn symbols(&self) -> Vec<Arc<str>> {
        let state = self.state.lock().expect("not poisoned");
        state.symbols.keys().cloned().collect()
    }

    /// A snapshot for `subscription`, and the sequence it reflects.
    pub fn snapshot(&self, subscription: &Subscription) -> (u64, String) {
        let state = self.state.lock().expect("not poisoned");
        let kpi = self.kpi_of(&state);
        let symbols: Vec<&Arc<str>> = state.symbols.keys().collect();
        let mut ticks = Vec::new();
        let mut bars = Vec::new();
        for symbol in subscription {
            if let Some(entry) = state.symbols.get(symbol) {
                let t: Vec<String> = entry.ticks.iter().map(tick_json).collect();
                ticks.push((symbol, t.join(",")));
                let b: Vec<String> = entry.bars.iter().map(bar_json).collect();
                bars.push((symbol, b.join(",")));
            }
        }
        let mut out = String::from(r#"{"type":"snapshot","symbols":"#);
        out.push_str(&serde_json::to_string(&symbols).expect("serialises"));
        write_series(
            &mut out,
            "ticks",
            ticks.iter().map(|(s, t)| (*s, t)).collect(),
        );
        write_series(
            &mut out,
            "bars",
            bars.iter().map(|(s, b)| (*s, b)).collect(),
        );
        out.push_str(r#","anomalies":["#);
        let mut first = true;
        for anomaly in state
            .anomalies
            .iter()
            .filter(|a| subscription.contains(&a.symbol))
        {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&anomaly_json(anomaly));
        }
        out.push_str(r#"],"alerts":["#);
        for (i, alert) in state.alerts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&alert_json(alert));
        }
        out.push_str(r#"],"kpi":"#);
        out.push_str(&serde_json::to_string(&kpi).expect("serialises"));
        let stale: Vec<&Arc<str>> = self.stale_of(&state).collect();
        out.push_str(r#","stale":"#);
        out.push_str(&serde_json::to_string(&stale).expect("serialises"));
        out.push('}');
        (state.seq, out)
    }

    /// The latest `limit` bars of `symbol`, oldest first.
    pub fn bars(&self, symbol: &str, limit: usize) -> Vec<BarRow> {
        let state = self.state.lock().expect("not poisoned");
        state.symbols.get(symbol).map_or_else(Vec::new, |entry| {
            let skip = entry.bars.len().saturating_sub(limit);
            entry.bars.iter().skip(skip).cloned().collect()
        })
    }

    /// The latest `limit` anomalies (of `symbol`, or all), oldest first.
    pub fn anomalies(&self, symbol: Option<&str>, limit: usize) -> Vec<AnomalyRow> {
        let state = self.state.lock().expect("not poisoned");
        latest(&state.anomalies, |a| &a.symbol, symbol, limit)
    }
}

/// The newest `limit` rows (of `symbol`, or all) of a list kept oldest first, oldest first.
fn latest<T: Clone>(
    rows: &VecDeque<T>,
    symbol_of: impl Fn(&T) -> &str,
    symbol: Option<&str>,
    limit: usize,
) -> Vec<T> {
    let mut picked: Vec<T> = rows
        .iter()
        .rev()
        .filter(|row| symbol.is_none_or(|s| symbol_of(row) == s))
        .take(limit)
        .cloned()
        .collect();
    picked.reverse();
    picked
}

/// Counts a connected client while it lives.
pub struct ClientGuard<'a>(&'a Hub);

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

fn point(row: &TickRow) -> TickPoint {
    TickPoint {
        ts: row.ts,
        price: row.price,
        sma: row.sma,
        vwap: row.vwap,
        z: row.z,
        anomaly: row.anomaly,
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, limit: usize) {
    if queue.len() == limit {
        queue.pop_front();
    }
    queue.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enriched(symbol: &str, ts: i64, price: f64, anomaly: bool) -> Vec<u8> {
        format!(
            r#"{{"symbol":"{symbol}","ts":{ts},"price":{price},"volume":1,"sma":{price},"count":1,"vwap":{price},"prev_mean":null,"prev_std":null,"prev_count":0,"z":null,"anomaly":{anomaly},"late":false}}"#
        )
        .into_bytes()
    }

    fn batch(stream: Stream, records: Vec<Vec<u8>>) -> DerivedBatch {
        DerivedBatch {
            stream,
            first_offset: 0,
            records,
        }
    }

    #[test]
    fn updates_carry_only_what_a_client_follows_and_snapshots_what_is_kept() {
        let hub = Hub::new(Retention {
            ticks_per_symbol: 2,
            ..Retention::default()
        });
        let mut rx = hub.subscribe();
        hub.ingest(&batch(
            Stream::Enriched,
            vec![
                enriched("AAPL", 1, 10.0, false),
                enriched("MSFT", 1, 20.0, false),
                enriched("AAPL", 2, 11.0, false),
                enriched("AAPL", 3, 12.5, false),
            ],
        ));
        let update = rx.try_recv().unwrap();
        assert_eq!(update.seq, 1);
        let aapl: Subscription = [Arc::from("AAPL")].into();
        let text = update.render(&aapl).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["symbols"], serde_json::json!(["AAPL", "MSFT"]));
        assert_eq!(json["ticks"]["AAPL"].as_array().unwrap().len(), 3);
        assert!(json["ticks"].get("MSFT").is_none());
        assert_eq!(
            json["ticks"]["AAPL"][2],
            serde_json::json!([3, 12.5, 12.5, 12.5, null, false])
        );
        // The snapshot keeps the last two AAPL ticks, and says which update it reflects.
        let (seq, snapshot) = hub.snapshot(&aapl);
        assert_eq!(seq, 1);
        let json: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
        assert_eq!(json["type"], "snapshot");
        let ticks = json["ticks"]["AAPL"].as_array().unwrap();
        assert_eq!(ticks.len(), 2);
        assert_eq!(ticks[0][0], 2);
        // A second batch with nothing new for MSFT followers renders nothing for them.
        hub.ingest(&batch(
            Stream::Enriched,
            vec![enriched("AAPL", 4, 13.0, false)],
        ));
        let update = rx.try_recv().unwrap();
        assert!(update.symbols.is_none());
        assert!(update.render(&[Arc::from("MSFT")].into()).is_none());
    }

    #[test]
    fn anomalies_and_bars_reach_history() {
        let hub = Hub::new(Retention::default());
        hub.ingest(&batch(
            Stream::Anomalies,
            vec![
                enriched("AAPL", 5, 99.0, true),
                enriched("IBM", 6, 9.0, true),
            ],
        ));
        hub.ingest(&batch(
            Stream::Bars,
            vec![br#"{"symbol":"AAPL","window_start":0,"window_end":300000,"open":1.0,"high":2.0,"low":0.5,"close":1.5,"volume":3,"vwap":1.2,"mean":1.25,"std":null,"count":2}"#.to_vec()],
        ));
        assert_eq!(hub.anomalies(None, 10).len(), 2);
        let aapl = hub.anomalies(Some("AAPL"), 10);
        assert_eq!(aapl.len(), 1);
        assert_eq!(aapl[0].price, 99.0);
        let bars = hub.bars("AAPL", 10);
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].close, 1.5);
        assert_eq!(hub.kpi().anomalies, 2);
    }

    fn alert(status: &str, end_ts: i64, count: i64, ticks: usize) -> Vec<u8> {
        let ticks: Vec<String> = (0..ticks)
            .map(|i| format!("[{},100.0,4.5]", 1000 + i as i64))
            .collect();
        format!(
            r#"{{"id":"AAPL@1000","symbol":"AAPL","status":"{status}","start_ts":1000,"end_ts":{end_ts},"count":{count},"peak_z":4.5,"peak_ts":1000,"peak_price":100.0,"direction":"up","severity":"minor","ticks":[{}]}}"#,
            ticks.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn an_open_alert_updates_in_place_and_reaches_every_client() {
        let hub = Hub::new(Retention::default());
        let mut rx = hub.subscribe();
        hub.ingest(&batch(Stream::Alerts, vec![alert("open", 1000, 1, 1)]));
        hub.ingest(&batch(Stream::Alerts, vec![alert("open", 1500, 2, 2)]));
        let kept = hub.alerts(None, 10);
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].count, kept[0].ticks.len()), (2, 2));
        assert_eq!(hub.kpi().open_alerts, 1);
        // A client following other symbols still gets the alert.
        let _ = rx.try_recv().unwrap();
        let text = rx
            .try_recv()
            .unwrap()
            .render(&[Arc::from("MSFT")].into())
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["alerts"][0]["count"], 2);
        assert_eq!(json["alerts"][0]["status"], "open");
        // Closing replaces it too; the Parquet row read back later keeps the feed's ticks.
        hub.ingest(&batch(Stream::Alerts, vec![alert("closed", 1500, 2, 2)]));
        let row = AlertRow {
            id: "AAPL@1000".into(),
            symbol: "AAPL".into(),
            start_ts: 1000,
            end_ts: 1500,
            count: 2,
            peak_z: 4.5,
            peak_ts: 1000,
            peak_price: 100.0,
            direction: "up".into(),
            severity: "minor".into(),
        };
        hub.ingest_rows(
            Stream::Alerts,
            &Rows::Alerts(vec![row]),
            Instant::now(),
            false,
        );
        let kept = hub.alerts(None, 10);
        assert_eq!(kept.len(), 1);
        assert_eq!(&*kept[0].status, "closed");
        assert_eq!(kept[0].ticks.len(), 2);
        let kpi = hub.kpi();
        assert_eq!((kpi.alerts, kpi.open_alerts), (1, 0));
        let (_, snapshot) = hub.snapshot(&Subscription::new());
        let json: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
        assert_eq!(json["alerts"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn alerts_are_bounded_oldest_out() {
        let hub = Hub::new(Retention {
            alerts: 2,
            ..Retention::default()
        });
        for start in [1, 2, 3] {
            let record = format!(
                r#"{{"id":"A@{start}","symbol":"A","status":"closed","start_ts":{start},"end_ts":{start},"count":1,"peak_z":4.0,"peak_ts":{start},"peak_price":1.0,"direction":"up","severity":"minor"}}"#
            );
            hub.ingest(&batch(Stream::Alerts, vec![record.into_bytes()]));
        }
        let ids: Vec<_> = hub.alerts(None, 10).into_iter().map(|a| a.id).collect();
        assert_eq!(ids, vec!["A@2".into(), "A@3".into()] as Vec<Box<str>>);
    }

    #[test]
    fn a_symbol_behind_the_event_clock_is_stale() {
        let hub = Hub::new(Retention {
            stale_after_ms: 60_000,
            ..Retention::default()
        });
        hub.ingest(&batch(
            Stream::Enriched,
            vec![
                enriched("AAPL", 0, 1.0, false),
                enriched("MSFT", 0, 1.0, false),
                enriched("MSFT", 60_000, 1.0, false),
            ],
        ));
        // Exactly stale_after behind is not yet stale.
        assert!(hub.stale_symbols().is_empty());
        hub.ingest(&batch(
            Stream::Enriched,
            vec![enriched("MSFT", 60_001, 1.0, false)],
        ));
        assert_eq!(hub.stale_symbols(), vec![Arc::from("AAPL")]);
        let kpi = hub.kpi();
        assert_eq!((kpi.stale, kpi.clock), (1, Some(60_001)));
        assert!(hub.kpi_message().contains(r#""stale":["AAPL"]"#));
        hub.ingest(&batch(
            Stream::Enriched,
            vec![enriched("AAPL", 60_001, 1.0, false)],
        ));
        assert_eq!(hub.kpi().stale, 0);
    }

    #[test]
    fn rates_count_the_last_seconds_and_minute() {
        let mut rates = Rates::default();
        for second in 0..70 {
            rates.add(second, 100, 1);
        }
        let (per_s, per_min) = rates.figures(70);
        assert_eq!(per_s, 100.0);
        assert_eq!(per_min, 60.0);
    }
}
