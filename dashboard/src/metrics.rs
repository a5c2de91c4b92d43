//! Prometheus text-format metrics of the dashboard, and the push-latency histogram.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::hub::Kpi;

/// Histogram buckets: powers of two of microseconds, 1 µs to ~35 min.
const BUCKETS: usize = 32;

/// Latency from a batch reaching the dashboard to its update being written to a client.
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = (64 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The upper bound of the bucket holding quantile `q` (within a factor of two).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(1u64 << bucket));
            }
        }
        None
    }

    fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
    }
}

/// Counters the server keeps beside the hub's figures.
#[derive(Debug, Default)]
pub struct Metrics {
    pub push_latency: LatencyHistogram,
    /// Snapshots sent because a client fell behind the broadcast.
    pub lagged_snapshots: AtomicU64,
    /// Snapshots sent on connect or on a change of subscription.
    pub snapshots: AtomicU64,
    /// Update messages written to clients.
    pub messages: AtomicU64,
    /// Requests refused (token, Host or Origin).
    pub refused: AtomicU64,
}

/// The `/metrics` page.
pub fn render(kpi: &Kpi, metrics: &Metrics) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric(
        "stockstream_ticks_per_second",
        "gauge",
        "Enriched ticks per second over the last seconds.",
        kpi.ticks_per_s.to_string(),
    );
    metric(
        "stockstream_records_total",
        "counter",
        "Input records read by the pipeline.",
        kpi.records.to_string(),
    );
    metric(
        "stockstream_ticks_total",
        "counter",
        "Enriched ticks received by the dashboard.",
        kpi.ticks.to_string(),
    );
    metric(
        "stockstream_anomalies_total",
        "counter",
        "Anomalies flagged.",
        kpi.anomalies.to_string(),
    );
    metric(
        "stockstream_anomalies_per_minute",
        "gauge",
        "Anomalies over the last minute.",
        kpi.anomalies_per_min.to_string(),
    );
    metric(
        "stockstream_late_ticks_total",
        "counter",
        "Ticks older than their symbol's newest.",
        kpi.late.to_string(),
    );
    metric(
        "stockstream_invalid_ticks_total",
        "counter",
        "Invalid input records (dead-lettered).",
        kpi.invalid.to_string(),
    );
    metric(
        "stockstream_alerts_total",
        "counter",
        "Alerts closed while the dashboard ran.",
        kpi.alerts.to_string(),
    );
    metric(
        "stockstream_open_alerts",
        "gauge",
        "Alerts still open (anomalies within the cooldown may join them).",
        kpi.open_alerts.to_string(),
    );
    metric(
        "stockstream_dashboard_stale_symbols",
        "gauge",
        "Symbols with no tick for longer than --stale-after of event time.",
        kpi.stale.to_string(),
    );
    metric(
        "stockstream_dashboard_clients",
        "gauge",
        "Connected WebSocket clients.",
        kpi.clients.to_string(),
    );
    metric(
        "stockstream_dashboard_messages_total",
        "counter",
        "Update messages pushed to clients.",
        metrics.messages.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "stockstream_dashboard_snapshots_total",
        "counter",
        "Snapshots sent on connect or subscribe.",
        metrics.snapshots.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "stockstream_dashboard_lagged_snapshots_total",
        "counter",
        "Snapshots sent because a client fell behind.",
        metrics.lagged_snapshots.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "stockstream_dashboard_refused_total",
        "counter",
        "Requests refused (token, Host or Origin).",
        metrics.refused.load(Ordering::Relaxed).to_string(),
    );
    let latency = &metrics.push_latency;
    let _ = writeln!(
        out,
        "# HELP stockstream_dashboard_push_latency_seconds From a batch reaching the dashboard to its update written to a client (bucket upper bounds, within 2x)."
    );
    let _ = writeln!(
        out,
        "# TYPE stockstream_dashboard_push_latency_seconds summary"
    );
    for q in [0.5, 0.9, 0.99] {
        let value = latency.quantile(q).map_or(f64::NAN, |d| d.as_secs_f64());
        let _ = writeln!(
            out,
            "stockstream_dashboard_push_latency_seconds{{quantile=\"{q}\"}} {value}"
        );
    }
    let _ = writeln!(
        out,
        "stockstream_dashboard_push_latency_seconds_sum {}",
        latency.sum().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "stockstream_dashboard_push_latency_seconds_count {}",
        latency.count()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_fall_in_the_right_power_of_two_bucket() {
        let histogram = LatencyHistogram::default();
        for _ in 0..98 {
            histogram.observe(Duration::from_micros(300));
        }
        histogram.observe(Duration::from_millis(40));
        histogram.observe(Duration::from_millis(40));
        assert_eq!(histogram.count(), 100);
        // 300 µs lies in (256, 512]; 40 ms in (32.8, 65.5] ms.
        assert_eq!(histogram.quantile(0.5), Some(Duration::from_micros(512)));
        assert_eq!(histogram.quantile(0.98), Some(Duration::from_micros(512)));
        assert_eq!(
            histogram.quantile(0.99),
            Some(Duration::from_micros(65_536))
        );
    }
}
