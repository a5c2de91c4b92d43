//! Topic names of the cluster mode (spec/pipeline.md).

use stockstream_pipeline::Stream;

/// The raw ticks (record key = symbol).
pub const RAW: &str = "stock-ticks";

/// Each derived stream and its topic (in `Stream::OUTPUTS` order). stock-alerts holds the
/// closed alerts `materialize` groups from stock-anomalies.
pub const DERIVED: [(Stream, &str); 4] = [
    (Stream::Enriched, "stock-enriched"),
    (Stream::Anomalies, "stock-anomalies"),
    (Stream::Bars, "stock-bars-5m"),
    (Stream::Alerts, "stock-alerts"),
];

/// The topic of a derived stream.
pub fn derived(stream: Stream) -> &'static str {
    DERIVED[stream.index()].1
}
