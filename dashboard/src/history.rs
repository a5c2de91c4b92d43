//! History from earlier runs: on start, the dashboard reads the newest alerts, bars, anomalies and
//! enriched ticks of `outputs/` back from Parquet, so a browser that connects after a restart
//! sees what came before it (then live data on top).

use std::path::{Path, PathBuf};
use std::time::Instant;

use stockstream_pipeline::parquet_io::read_rows;
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

/// Reads the newest part files of each stream under `outputs` into `hub`, oldest first.
pub fn seed(hub: &Hub, outputs: &Path) -> anyhow::Result<Seeded> {
    let mut seeded = Seeded::default();
    for (stream, newest) in FILES_PER_STREAM {
        let mut files = part_files(&outputs.join(stream.dir()));
        // Part names carry the zero-padded input range: by name is input order; the date
        // partition orders the files of one commit.
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then_with(|| a.cmp(b)));
        let skip = files.len().saturating_sub(newest);
        for file in &files[skip..] {
            let rows = read_rows(file, stream)?;
            seeded.rows += rows.len();
            seeded.files += 1;
            hub.ingest_rows(stream, &rows, Instant::now(), false);
        }
    }
    // Closed alerts in Parquet carry no ticks; the anomalies read back have them.
    hub.fill_alert_ticks();
    Ok(seeded)
}

/// `part-*.parquet` files under `dir`, at any depth.
fn part_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                dirs.push(path);
            } else if name.starts_with("part-") && name.ends_with(".parquet") {
                out.push(path);
            }
        }
    }
    out
}
