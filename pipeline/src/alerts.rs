//! Alerts: each symbol's anomalies grouped into episodes (`stockstream_core::episodes`), kept
//! across restarts in the checkpoint, written to `outputs/alerts/` once closed, and optionally
//! POSTed to a webhook ([`webhook`]).

pub mod webhook;

use serde::{Deserialize, Serialize};
use stockstream_core::episodes::{Episode, FlaggedTick};

/// An open alert as the checkpoint keeps it: a restart goes on growing it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub symbol: String,
    pub start_ts: i64,
    pub end_ts: i64,
    pub count: u64,
    /// `[ts, price, z]` of the peak.
    pub peak: (i64, f64, f64),
    /// `[ts, price, z]` of the first anomalies (at most `MAX_DETAIL_TICKS`).
    pub ticks: Vec<(i64, f64, f64)>,
}

fn flagged((ts, price, z): (i64, f64, f64)) -> FlaggedTick {
    FlaggedTick { ts, price, z }
}

fn triple(t: &FlaggedTick) -> (i64, f64, f64) {
    (t.ts, t.price, t.z)
}

impl From<&Episode> for OpenAlert {
    fn from(e: &Episode) -> Self {
        Self {
            symbol: e.symbol.to_string(),
            start_ts: e.start_ts,
            end_ts: e.end_ts,
            count: e.count,
            peak: triple(&e.peak),
            ticks: e.ticks.iter().map(triple).collect(),
        }
    }
}

impl From<&OpenAlert> for Episode {
    fn from(a: &OpenAlert) -> Self {
        Episode {
            symbol: a.symbol.as_str().into(),
            start_ts: a.start_ts,
            end_ts: a.end_ts,
            count: a.count,
            peak: flagged(a.peak),
            ticks: a.ticks.iter().copied().map(flagged).collect(),
            open: true,
        }
    }
}

/// The alert as JSON (see [`Episode::write_json`]).
pub fn alert_json(episode: &Episode, with_ticks: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    episode.write_json(&mut out, with_ticks);
    out
}

/// One line for people (the webhook's Slack-compatible `text`):
/// `MSFT: critical down alert, peak z -11.30 at 239.1 (2026-01-02 14:30:00.400 UTC); 23 anomalies from 14:30:00.000 to 14:30:01.200 UTC`.
pub fn alert_text(e: &Episode) -> String {
    let span = if e.count == 1 {
        format!("1 anomaly at {} UTC", clock(e.start_ts))
    } else {
        format!(
            "{} anomalies from {} to {} UTC",
            e.count,
            clock(e.start_ts),
            clock(e.end_ts)
        )
    };
    format!(
        "{}: {} {} alert, peak z {:.2} at {} ({} {} UTC); {span}",
        e.symbol,
        e.severity().name(),
        e.direction(),
        e.peak.z,
        e.peak.price,
        crate::dates::format_day(crate::dates::day_of(e.peak.ts)),
        clock(e.peak.ts),
    )
}

/// `HH:MM:SS.mmm` of an epoch-millisecond time (UTC).
fn clock(ts: i64) -> String {
    let ms = ts.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stockstream_core::episodes::Episodes;

    #[test]
    fn open_alerts_survive_the_checkpoint() {
        let mut episodes = Episodes::new(1000);
        // 3.5755250910355922 read back 1 ulp off without serde_json's float_roundtrip.
        for (ts, z) in [
            (1_000, 3.5),
            (1_500, -7.000000000000001),
            (1_900, 3.5755250910355922),
        ] {
            episodes.observe("MSFT", FlaggedTick { ts, price: 10.0, z });
        }
        let open: Vec<OpenAlert> = episodes.open().map(OpenAlert::from).collect();
        let json = serde_json::to_string(&open).unwrap();
        let back: Vec<OpenAlert> = serde_json::from_str(&json).unwrap();
        let restored = Episodes::with_open(1000, back.iter().map(Episode::from));
        assert_eq!(restored, episodes);
    }

    #[test]
    fn text_says_what_happened() {
        let mut episodes = Episodes::new(60_000);
        // 2026-01-02 14:30:00 UTC.
        let t0 = 1_767_364_200_000;
        episodes.observe(
            "MSFT",
            FlaggedTick {
                ts: t0,
                price: 240.0,
                z: -3.1,
            },
        );
        let alert = episodes
            .observe(
                "MSFT",
                FlaggedTick {
                    ts: t0 + 1200,
                    price: 239.1,
                    z: -11.3,
                },
            )
            .alert;
        assert_eq!(
            alert_text(&alert),
            "MSFT: critical down alert, peak z -11.30 at 239.1 (2026-01-02 14:30:01.200 UTC); 2 anomalies from 14:30:00.000 to 14:30:01.200 UTC"
        );
    }
}
