//! History from earlier runs: on start, the dashboard reads the newest alerts, bars, anomalies and
//! enriched ticks of `outputs/` back from Parquet, so a browser that connects after a restart
//! sees what came before it (then live data on top).

use std::time::Instant;

use stockstream_pipeline::parquet_io::read_rows_from;
use stockstream_pipeline::store::Outputs;
use stockstream_pipeline::Stream;

use crate::hub::Hub;

/// Newest part files read per stream: enough for a snapshot, bounded for large outputs.
const FILES_PER_STREAM: [(Stream, usize); 4] = [
    (Stream::Alerts, 64),
    (Stream::Bars, 16),
    (Stream::Anomalies, 64),
    (Stream::Enriched, 2),
];

/// What was read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub files: usize,
    pub rows: usize,
}

/// Reads the newest part files of each stream under `outputs` (a directory or an object
/// store prefix) into `hub`, oldest first.
pub fn seed(hub: &Hub, outputs: &Outputs) -> anyhow::Result<Seeded> {
    let mut seeded = Seeded::default();
    for (stream, newest) in FILES_PER_STREAM {
        let mut files = outputs.part_files(stream.dir())?;
        // Part names carry the zero-padded input range: by name is input order; the date
        // partition orders the files of one commit.
        let name = |f: &String| f.rsplit('/').next().unwrap_or_default().to_owned();
        files.sort_by(|a, b| name(a).cmp(&name(b)).then_with(|| a.cmp(b)));
        let skip = files.len().saturating_sub(newest);
        for file in &files[skip..] {
            let rows = read_rows_from(outputs.read(file)?, &outputs.display_join(file), stream)?;
            seeded.rows += rows.len();
            seeded.files += 1;
            hub.ingest_rows(stream, &rows, Instant::now(), false);
        }
    }
    // Closed alerts in Parquet carry no ticks; the anomalies read back have them.
    hub.fill_alert_ticks();
    Ok(seeded)
}
