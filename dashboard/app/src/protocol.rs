//! The WebSocket messages of dashboard/PROTOCOL.md.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Every server frame, read into one struct rather than a tagged enum: serde buffers tagged
/// enums before decoding them, which costs time at a thousand updates a second.
#[derive(Debug, Deserialize)]
pub struct ServerMessage {
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// Every symbol seen so far (sorted); in updates only when new symbols appeared.
    #[serde(default)]
    pub symbols: Option<Vec<String>>,
    #[serde(default)]
    pub ticks: HashMap<String, Vec<TickRow>>,
    #[serde(default)]
    pub bars: HashMap<String, Vec<BarRow>>,
    #[serde(default)]
    pub anomalies: Vec<AnomalyRecord>,
    /// New or changed alerts (updates), or every alert kept (snapshots), oldest first.
    #[serde(default)]
    pub alerts: Vec<AlertRecord>,
    #[serde(default)]
    pub kpi: Option<Kpi>,
    /// Stale symbols (snapshot and kpi messages).
    #[serde(default)]
    pub stale: Option<Vec<String>>,
}

/// An alert: anomalies of one symbol within the cooldown. `ticks` are `[ts, price, z]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlertRecord {
    pub id: String,
    pub symbol: String,
    pub status: String,
    pub start_ts: f64,
    pub end_ts: f64,
    pub count: f64,
    pub peak_z: f64,
    pub direction: String,
    pub severity: String,
    #[serde(default)]
    pub ticks: Vec<(f64, f64, f64)>,
}

impl AlertRecord {
    pub fn is_open(&self) -> bool {
        self.status == "open"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Snapshot,
    Update,
    Kpi,
    /// A type this client does not know yet: ignored.
    #[serde(other)]
    Other,
}

/// `[ts, price, sma, vwap, z, anomaly]`
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct TickRow(
    pub f64,
    pub f64,
    pub Option<f64>,
    pub Option<f64>,
    pub Option<f64>,
    pub bool,
);

/// `[window_start, open, high, low, close, volume]` of a 5-minute bar; the chart has no use
/// for the volume.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BarRow(
    pub f64,
    pub f64,
    pub f64,
    pub f64,
    pub f64,
    pub serde::de::IgnoredAny,
);

#[derive(Debug, Clone, Deserialize)]
pub struct AnomalyRecord {
    pub symbol: String,
    pub ts: f64,
    pub price: f64,
    #[serde(default)]
    pub z: Option<f64>,
    #[serde(default)]
    pub sma: Option<f64>,
}

/// Counts are read as floats too, so that a server writing `2.0` for `2` is still understood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Kpi {
    pub ticks_per_s: f64,
    pub anomalies_per_min: f64,
    pub records: f64,
    pub late: f64,
    pub invalid: f64,
    pub anomalies: f64,
    pub clients: f64,
    pub open_alerts: f64,
    /// Event time of the newest tick (ms).
    pub clock: Option<f64>,
    /// The replay's pace; `None` for a live input, which the page cannot pace.
    pub replay: Option<Replay>,
}

/// The replay's speed (`None`: as fast as possible) and pause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Replay {
    pub speed: Option<f64>,
    pub paused: bool,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage<'a> {
    Subscribe { symbols: &'a [String] },
}

pub fn subscribe_message(symbols: &[String]) -> String {
    serde_json::to_string(&ClientMessage::Subscribe { symbols })
        .expect("a list of strings always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_snapshot() {
        let text = r#"{"type":"snapshot","symbols":["AAPL"],
            "ticks":{"AAPL":[[1000,1.5,null,1.4,null,false],[2000,1.6,1.55,1.45,2.5,true]]},
            "bars":{"AAPL":[[0,1,2,0.5,1.5,100]]},
            "anomalies":[{"symbol":"AAPL","ts":2000,"price":1.6,"z":2.5,"sma":1.55,"vwap":1.45}],
            "kpi":{"ticks_per_s":812.0,"late":2,"invalid":5}}"#;
        let msg: ServerMessage = serde_json::from_str(text).unwrap();
        assert_eq!(msg.kind, MessageKind::Snapshot);
        assert_eq!(msg.ticks["AAPL"][1].4, Some(2.5));
        assert!(msg.ticks["AAPL"][1].5);
        assert_eq!(msg.anomalies[0].sma, Some(1.55));
        assert_eq!(msg.kpi.unwrap().late, 2.0);
    }

    #[test]
    fn reads_kpi_and_unknown_types() {
        let kpi: ServerMessage =
            serde_json::from_str(r#"{"type":"kpi","kpi":{"anomalies_per_min":3.0}}"#).unwrap();
        assert_eq!(kpi.kind, MessageKind::Kpi);
        let other: ServerMessage = serde_json::from_str(r#"{"type":"hello"}"#).unwrap();
        assert_eq!(other.kind, MessageKind::Other);
    }

    #[test]
    fn writes_subscribe() {
        let symbols = vec!["AAPL".to_string(), "MSFT".to_string()];
        assert_eq!(
            subscribe_message(&symbols),
            r#"{"type":"subscribe","symbols":["AAPL","MSFT"]}"#
        );
    }
}
