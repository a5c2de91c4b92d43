//! Anomaly episodes ("alerts"): a symbol's consecutive anomalies, each within a cooldown of the
//! one before, form one alert with a start, an end, a tick count, a peak |z| with its direction,
//! and a severity.
//!
//! The content of an alert depends only on the symbol's flagged ticks and the cooldown (an
//! anomaly more than `cooldown` after the alert's last one starts a new alert), never on how the
//! input was cut into batches. *When* an alert is known to be over is a matter of event time:
//! once any tick of any symbol is later than `end + cooldown`, no anomaly can join it any more,
//! so [`Episodes::close_before`] hands it out as closed. Anomalies of a symbol arrive in event
//! time order (out-of-order ticks are `late` and never flagged), which makes this exact.
//!
//! Per anomaly the work is O(1): one hash lookup. Closing scans the open alerts, at most one
//! per symbol, and is called once per batch.

use std::collections::HashMap;

use crate::json::{write_f64, write_int};

/// Default cooldown: anomalies of a symbol less than a minute apart are one alert.
pub const DEFAULT_COOLDOWN_MS: i64 = 60_000;

/// Anomaly ticks an alert carries for people to look at (the count covers them all).
pub const MAX_DETAIL_TICKS: usize = 100;

/// How far the alert's peak is from normal, by |z|.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// |z| below 4: just past the usual threshold of 3.
    Minor,
    /// |z| from 4 to 6.
    Major,
    /// |z| of 6 or more: a one-in-a-billion move under a normal model.
    Critical,
}

impl Severity {
    pub fn from_abs_z(abs_z: f64) -> Self {
        if abs_z >= 6.0 {
            Severity::Critical
        } else if abs_z >= 4.0 {
            Severity::Major
        } else {
            Severity::Minor
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

/// One flagged tick, as an alert keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlaggedTick {
    pub ts: i64,
    pub price: f64,
    pub z: f64,
}

/// One alert: a symbol's run of anomalies.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub symbol: Box<str>,
    /// Event time of the first anomaly.
    pub start_ts: i64,
    /// Event time of the latest anomaly.
    pub end_ts: i64,
    /// Anomalies in the alert.
    pub count: u64,
    /// The anomaly with the largest |z| (the first such, on ties).
    pub peak: FlaggedTick,
    /// The first [`MAX_DETAIL_TICKS`] anomalies, oldest first.
    pub ticks: Vec<FlaggedTick>,
    /// Still open: a later anomaly within the cooldown may join it.
    pub open: bool,
}

impl Episode {
    fn new(symbol: &str, tick: FlaggedTick) -> Self {
        Self {
            symbol: symbol.into(),
            start_ts: tick.ts,
            end_ts: tick.ts,
            count: 1,
            peak: tick,
            ticks: vec![tick],
            open: true,
        }
    }

    fn add(&mut self, tick: FlaggedTick) {
        self.end_ts = tick.ts;
        self.count += 1;
        if tick.z.abs() > self.peak.z.abs() {
            self.peak = tick;
        }
        if self.ticks.len() < MAX_DETAIL_TICKS {
            self.ticks.push(tick);
        }
    }

    /// `up` when the peak is above normal, `down` below.
    pub fn direction(&self) -> &'static str {
        if self.peak.z >= 0.0 {
            "up"
        } else {
            "down"
        }
    }

    pub fn severity(&self) -> Severity {
        Severity::from_abs_z(self.peak.z.abs())
    }

    /// Stable for the alert's whole life: `SYMBOL@start_ts`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.symbol, self.start_ts)
    }

    /// The alert as one JSON object (the record of the alerts stream and of the webhook):
    /// `{"id","symbol","status","start_ts","end_ts","count","peak_z","peak_ts","peak_price",
    /// "direction","severity"[,"ticks":[[ts,price,z],...]]}`.
    pub fn write_json(&self, out: &mut Vec<u8>, with_ticks: bool) {
        out.extend_from_slice(b"{\"id\":");
        write_json_str(out, &self.id());
        out.extend_from_slice(b",\"symbol\":");
        write_json_str(out, &self.symbol);
        out.extend_from_slice(if self.open {
            b",\"status\":\"open\"".as_slice()
        } else {
            b",\"status\":\"closed\"".as_slice()
        });
        out.extend_from_slice(b",\"start_ts\":");
        write_int(out, self.start_ts);
        out.extend_from_slice(b",\"end_ts\":");
        write_int(out, self.end_ts);
        out.extend_from_slice(b",\"count\":");
        write_int(out, self.count as i64);
        out.extend_from_slice(b",\"peak_z\":");
        write_f64(out, self.peak.z);
        out.extend_from_slice(b",\"peak_ts\":");
        write_int(out, self.peak.ts);
        out.extend_from_slice(b",\"peak_price\":");
        write_f64(out, self.peak.price);
        out.extend_from_slice(b",\"direction\":\"");
        out.extend_from_slice(self.direction().as_bytes());
        out.extend_from_slice(b"\",\"severity\":\"");
        out.extend_from_slice(self.severity().name().as_bytes());
        out.push(b'"');
        if with_ticks {
            out.extend_from_slice(b",\"ticks\":[");
            for (i, t) in self.ticks.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                write_int(out, t.ts);
                out.push(b',');
                write_f64(out, t.price);
                out.push(b',');
                write_f64(out, t.z);
                out.push(b']');
            }
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// Symbols are checked by tick validation (`A-Z a-z 0-9 . _ : -`), but the writer must not
/// depend on that.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// What one anomaly did.
#[derive(Debug, PartialEq)]
pub struct Observed {
    /// The alert it joined or opened (open), as it is now.
    pub alert: Episode,
    /// The symbol's previous alert, closed because this anomaly came after its cooldown.
    pub closed: Option<Episode>,
}

/// The open alerts, one per symbol at most.
#[derive(Debug, Clone, PartialEq)]
pub struct Episodes {
    cooldown_ms: i64,
    open: HashMap<Box<str>, Episode>,
}

impl Episodes {
    pub fn new(cooldown_ms: i64) -> Self {
        Self {
            cooldown_ms: cooldown_ms.max(0),
            open: HashMap::new(),
        }
    }

    /// Picks up the open alerts a previous run left (a restart).
    pub fn with_open(cooldown_ms: i64, open: impl IntoIterator<Item = Episode>) -> Self {
        let mut episodes = Self::new(cooldown_ms);
        for episode in open {
            episodes.open.insert(episode.symbol.clone(), episode);
        }
        episodes
    }

    pub fn cooldown_ms(&self) -> i64 {
        self.cooldown_ms
    }

    /// Takes in one flagged tick of `symbol` (in the symbol's arrival order).
    pub fn observe(&mut self, symbol: &str, tick: FlaggedTick) -> Observed {
        let mut closed = None;
        if let Some(episode) = self.open.get_mut(symbol) {
            if tick.ts.saturating_sub(episode.end_ts) <= self.cooldown_ms {
                episode.add(tick);
                return Observed {
                    alert: episode.clone(),
                    closed: None,
                };
            }
            let mut previous = self.open.remove(symbol).expect("just found");
            previous.open = false;
            closed = Some(previous);
        }
        let episode = Episode::new(symbol, tick);
        self.open.insert(symbol.into(), episode.clone());
        Observed {
            alert: episode,
            closed,
        }
    }

    /// Closes every alert no anomaly can join any more, now that event time has reached
    /// `watermark` (the newest tick's time): those whose `end + cooldown` lies before it.
    /// Ordered by end, then symbol.
    pub fn close_before(&mut self, watermark: i64) -> Vec<Episode> {
        let cooldown = self.cooldown_ms;
        let over: Vec<Box<str>> = self
            .open
            .iter()
            .filter(|(_, e)| e.end_ts.saturating_add(cooldown) < watermark)
            .map(|(symbol, _)| symbol.clone())
            .collect();
        let mut closed: Vec<Episode> = over
            .into_iter()
            .filter_map(|symbol| self.open.remove(&symbol))
            .map(|mut e| {
                e.open = false;
                e
            })
            .collect();
        closed.sort_by(|a, b| (a.end_ts, &a.symbol).cmp(&(b.end_ts, &b.symbol)));
        closed
    }

    /// The open alerts, by symbol.
    pub fn open(&self) -> impl Iterator<Item = &Episode> {
        let mut open: Vec<&Episode> = self.open.values().collect();
        open.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        open.into_iter()
    }

    /// Closes everything (scoring a finished file: every alert is complete).
    pub fn close_all(&mut self) -> Vec<Episode> {
        self.close_before(i64::MAX)
            .into_iter()
            .chain(self.open.drain().map(|(_, mut e)| {
                e.open = false;
                e
            }))
            .collect()
    }
}

/// Groups one symbol's anomalies (event-time ordered `(ts, price, z)`) into alerts: the batch
/// form of [`Episodes`], for scoring.
pub fn group(symbol: &str, ticks: &[FlaggedTick], cooldown_ms: i64) -> Vec<Episode> {
    let mut episodes = Episodes::new(cooldown_ms);
    let mut out = Vec::new();
    for tick in ticks {
        out.extend(episodes.observe(symbol, *tick).closed);
    }
    out.extend(episodes.close_all());
    out
}

#[cfg(test)]
mod tests;
