use proptest::prelude::*;

use super::*;

fn tick(ts: i64, z: f64) -> FlaggedTick {
    FlaggedTick {
        ts,
        price: 100.0 + z,
        z,
    }
}

#[test]
fn anomalies_within_the_cooldown_are_one_alert() {
    let mut episodes = Episodes::new(1_000);
    let first = episodes.observe("MSFT", tick(10_000, -3.1));
    assert!(first.closed.is_none());
    assert_eq!(first.alert.count, 1);
    let grown = episodes.observe("MSFT", tick(10_900, -11.3));
    assert_eq!(
        (grown.alert.start_ts, grown.alert.end_ts, grown.alert.count),
        (10_000, 10_900, 2)
    );
    assert_eq!(grown.alert.peak.z, -11.3);
    assert_eq!(grown.alert.direction(), "down");
    assert_eq!(grown.alert.severity(), Severity::Critical);
    assert_eq!(grown.alert.id(), "MSFT@10000");
    // Exactly the cooldown after the last one still joins; one ms more starts a new alert.
    assert!(episodes.observe("MSFT", tick(11_900, 3.2)).closed.is_none());
    let next = episodes.observe("MSFT", tick(12_901, 4.5));
    let closed = next.closed.expect("the first alert is over");
    assert!(!closed.open);
    assert_eq!(closed.count, 3);
    assert_eq!(next.alert.start_ts, 12_901);
    assert_eq!(next.alert.severity(), Severity::Major);
}

#[test]
fn symbols_have_their_own_alerts_and_close_by_event_time() {
    let mut episodes = Episodes::new(60_000);
    episodes.observe("A", tick(0, 3.5));
    episodes.observe("B", tick(30_000, -3.5));
    assert!(episodes.close_before(60_000).is_empty());
    let closed = episodes.close_before(60_001);
    assert_eq!(closed.len(), 1);
    assert_eq!(&*closed[0].symbol, "A");
    assert_eq!(episodes.open().count(), 1);
    let rest = episodes.close_all();
    assert_eq!(rest.len(), 1);
    assert_eq!(&*rest[0].symbol, "B");
}

#[test]
fn the_peak_is_the_first_largest_and_details_are_capped() {
    let mut episodes = Episodes::new(10);
    for i in 0..150 {
        let z = if i == 7 || i == 9 { -8.0 } else { 3.0 };
        episodes.observe("X", tick(i, z));
    }
    let [alert] = episodes.close_all().try_into().unwrap();
    assert_eq!(alert.count, 150);
    assert_eq!(alert.peak.ts, 7);
    assert_eq!(alert.ticks.len(), MAX_DETAIL_TICKS);
    assert_eq!(alert.ticks[99].ts, 99);
}

#[test]
fn json_carries_every_field() {
    let mut episodes = Episodes::new(10);
    episodes.observe("AAPL", tick(5, 3.25));
    let alert = episodes.observe("AAPL", tick(8, -4.5)).alert;
    let mut out = Vec::new();
    alert.write_json(&mut out, true);
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "id": "AAPL@5", "symbol": "AAPL", "status": "open", "start_ts": 5, "end_ts": 8,
            "count": 2, "peak_z": -4.5, "peak_ts": 8, "peak_price": 95.5,
            "direction": "down", "severity": "major",
            "ticks": [[5, 103.25, 3.25], [8, 95.5, -4.5]]
        })
    );
    let mut short = Vec::new();
    alert.write_json(&mut short, false);
    let value: serde_json::Value = serde_json::from_slice(&short).unwrap();
    assert!(value.get("ticks").is_none());
}

#[test]
fn severity_follows_the_peak() {
    assert_eq!(Severity::from_abs_z(3.0), Severity::Minor);
    assert_eq!(Severity::from_abs_z(3.99), Severity::Minor);
    assert_eq!(Severity::from_abs_z(4.0), Severity::Major);
    assert_eq!(Severity::from_abs_z(6.0), Severity::Critical);
}

/// The alerts, by a direct reading of the definition: sort each symbol's anomalies by time and
/// cut wherever the gap exceeds the cooldown.
fn naive(anomalies: &[(u8, i64)], cooldown: i64) -> Vec<(String, i64, i64, u64)> {
    let mut out = Vec::new();
    for symbol in 0..3u8 {
        let times: Vec<i64> = anomalies
            .iter()
            .filter(|(s, _)| *s == symbol)
            .map(|(_, t)| *t)
            .collect();
        let mut start = 0;
        for i in 1..=times.len() {
            if i == times.len() || times[i] - times[i - 1] > cooldown {
                if i > start {
                    out.push((
                        format!("S{symbol}"),
                        times[start],
                        times[i - 1],
                        (i - start) as u64,
                    ));
                }
                start = i;
            }
        }
    }
    out.sort();
    out
}

proptest! {
    /// Whatever the batches (each followed by closing at its newest time), the alerts are the
    /// definition's, each closed exactly once.
    #[test]
    fn alerts_do_not_depend_on_batches(
        gaps in prop::collection::vec((0u8..3, 0i64..3_000), 0..200),
        cuts in prop::collection::vec(1usize..20, 1..20),
        cooldown in 0i64..5_000,
    ) {
        let mut now = 0;
        let anomalies: Vec<(u8, i64)> = gaps
            .iter()
            .map(|(s, gap)| {
                now += gap;
                (*s, now)
            })
            .collect();
        let mut episodes = Episodes::new(cooldown);
        let mut closed = Vec::new();
        let mut rest = anomalies.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*cut).min(rest.len()));
            for (s, t) in batch {
                closed.extend(episodes.observe(&format!("S{s}"), tick(*t, 3.0)).closed);
            }
            closed.extend(episodes.close_before(batch.last().unwrap().1));
            rest = tail;
        }
        closed.extend(episodes.close_all());
        prop_assert!(closed.iter().all(|e| !e.open));
        let mut got: Vec<_> = closed
            .iter()
            .map(|e| (e.symbol.to_string(), e.start_ts, e.end_ts, e.count))
            .collect();
        got.sort();
        prop_assert_eq!(got, naive(&anomalies, cooldown));
    }
}
