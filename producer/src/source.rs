//! Where ticks come from: a file replayed (CSV or JSON lines) or the synthetic generator.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use stockstream_ticks::{
    Anomaly, CsvSettings, InputFormat, InputItem, InputSettings, MergedTicks, Synthetic,
    SyntheticConfig, TickReader,
};

/// Which source, with its settings.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A file (`-` for standard input).
    Replay {
        path: PathBuf,
        format: InputFormat,
        csv: CsvSettings,
    },
    /// Files and directories merged by event time (the default: the intraday sample).
    Files {
        paths: Vec<PathBuf>,
        settings: InputSettings,
    },
    /// Generated ticks.
    Synthetic(SyntheticConfig),
}

/// One item of a source: a record (or an unreadable row), and for synthetic anomalies the
/// ground truth, to be written only if the tick is sent.
#[derive(Debug, Clone)]
pub struct SourceItem {
    pub item: InputItem,
    pub truth: Option<Anomaly>,
}

/// An open source.
pub enum Source {
    Replay {
        reader: TickReader<Box<dyn BufRead>>,
        name: String,
    },
    Files {
        ticks: Box<MergedTicks>,
        name: String,
    },
    Synthetic(Box<Synthetic>),
}

/// Why a source cannot be opened: the user's to fix (a path, a header, a setting).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct SourceError {
    pub what: String,
    pub message: String,
}

impl Source {
    pub fn open(config: &SourceConfig) -> Result<Self, SourceError> {
        match config {
            SourceConfig::Replay { path, format, csv } => {
                let is_stdin = path.as_os_str() == "-";
                let name = if is_stdin {
                    "standard input".to_owned()
                } else {
                    path.display().to_string()
                };
                let error = |message: String| SourceError {
                    what: name.clone(),
                    message,
                };
                let input: Box<dyn BufRead> = if is_stdin {
                    Box::new(BufReader::with_capacity(1 << 16, io::stdin()))
                } else {
                    let file = File::open(path).map_err(|e| error(e.to_string()))?;
                    Box::new(BufReader::with_capacity(1 << 20, file))
                };
                let reader = TickReader::with_settings(input, *format, csv)
                    .map_err(|e| error(e.to_string()))?;
                Ok(Source::Replay { reader, name })
            }
            SourceConfig::Files { paths, settings } => {
                let name = paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let ticks =
                    stockstream_ticks::open_files(paths, settings).map_err(|e| SourceError {
                        what: name.clone(),
                        message: e.to_string(),
                    })?;
                Ok(Source::Files {
                    ticks: Box::new(ticks),
                    name,
                })
            }
            SourceConfig::Synthetic(config) => Synthetic::new(config.clone())
                .map(|s| Source::Synthetic(Box::new(s)))
                .map_err(|message| SourceError {
                    what: "synthetic ticks".to_owned(),
                    message,
                }),
        }
    }

    /// For the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            Source::Replay { reader, name } => format!("{name}: {}", reader.describe()),
            Source::Files { name, .. } => format!("{name}, merged by event time"),
            Source::Synthetic(generator) => {
                let config = generator.config();
                let vols = generator
                    .volatilities()
                    .iter()
                    .map(|(s, v)| format!("{s} {:.0}%", v * 100.0))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "synthetic GBM, seed {}, {} ticks/s from {} ms; volatility {vols}; anomalies: p={} per tick, {} sigma",
                    config.seed, config.rate, config.start_ms, config.anomaly_rate, config.anomaly_sigma
                )
            }
        }
    }
}

impl Iterator for Source {
    type Item = io::Result<SourceItem>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Source::Replay { reader, .. } => reader
                .next()
                .map(|r| r.map(|item| SourceItem { item, truth: None })),
            Source::Files { ticks, .. } => ticks
                .next()
                .map(|r| r.map(|item| SourceItem { item, truth: None })),
            Source::Synthetic(generator) => generator.next().map(|tick| {
                Ok(SourceItem {
                    item: InputItem::Record {
                        line: tick.seq,
                        value: tick.record(),
                    },
                    truth: tick.anomaly,
                })
            }),
        }
    }
}
