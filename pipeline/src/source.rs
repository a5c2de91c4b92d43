//! Where the run's ticks come from, and how fast.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use stockstream_ticks::{
    CsvOptions, FilesError, InputFormat, InputItem, InputSettings, Synthetic, SyntheticConfig,
    TickReader,
};
pub use stockstream_ticks::{ReplayControl, Speed};

/// The input of a run.
#[derive(Debug, Clone)]
pub enum Source {
    /// JSON lines, or CSV when the name ends in `.csv` (the layouts `stockstream transform`
    /// reads).
    File {
        path: PathBuf,
        /// Symbol for CSV files without a symbol column.
        symbol: Option<String>,
    },
    /// Several files and directories (their .csv, .csv.gz, .jsonl files), merged by event
    /// time; gzip read transparently, a CSV file without a symbol column named by its file
    /// name, OHLC bars expanded into ticks as `settings` says.
    Files {
        paths: Vec<PathBuf>,
        settings: InputSettings,
    },
    /// Geometric Brownian motion with injected anomalies (`stockstream_ticks::synthetic`).
    /// The same seed and settings give the same ticks, so a restart re-reads the prefix and
    /// resumes exactly; the ground truth is rewritten alongside as the ticks are generated.
    Synthetic {
        config: SyntheticConfig,
        /// Stop after this many ticks; endless (until stopped) when `None`.
        limit: Option<u64>,
        /// Where the injected anomalies go, one JSON object per line.
        truth: PathBuf,
    },
    /// Records pushed by another part of this process (the producer's `--sink pipeline`, the
    /// Kafka bridge). A plain stream cannot be read again, so a run from it starts on empty
    /// outputs and cannot resume; a stream with a [`Journal`] starts again from its first
    /// record on every open and can. While nothing new has arrived, a stream may yield
    /// `Err(WouldBlock)`: the run hands what it has read to the chains, commits on schedule
    /// and asks again.
    Stream {
        name: String,
        records: StreamRecords,
        journal: Option<Journal>,
    },
}

/// What makes a [`Source::Stream`] resumable: it keeps every record it hands over (a journal)
/// and replays them from the first on every open.
#[derive(Clone)]
pub struct Journal {
    /// Makes every record handed over so far durable; the run calls it before each checkpoint,
    /// so a checkpoint never covers records the journal could lose.
    pub sync: std::sync::Arc<dyn Fn() -> io::Result<()> + Send + Sync>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

/// How a stream is read again from its first record.
type Reopen = std::sync::Arc<dyn Fn() -> io::Result<Records> + Send + Sync>;

/// The receiving end of a [`Source::Stream`], taken once by the run (and read again through
/// `reopen`, when it has one, after a chain's failure).
#[derive(Clone)]
pub struct StreamRecords {
    first: std::sync::Arc<std::sync::Mutex<Option<Records>>>,
    reopen: Option<Reopen>,
}

impl StreamRecords {
    /// A stream read once.
    pub fn new(records: Records) -> Self {
        Self {
            first: std::sync::Arc::new(std::sync::Mutex::new(Some(records))),
            reopen: None,
        }
    }

    /// A stream that `reopen` reads again from its first record (a journaled one), so that a
    /// run can restart its chains from its last commit without a new process.
    pub fn reopenable(
        records: Records,
        reopen: impl Fn() -> io::Result<Records> + Send + Sync + 'static,
    ) -> Self {
        Self {
            reopen: Some(std::sync::Arc::new(reopen)),
            ..Self::new(records)
        }
    }

    pub fn can_reopen(&self) -> bool {
        self.reopen.is_some()
    }
}

impl std::fmt::Debug for StreamRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamRecords")
    }
}

impl Source {
    /// How the source is named in messages and the checkpoint.
    /// Whether the run sets the pace: files and the generator can be sped up, slowed down
    /// and paused; a stream of records arrives at its sender's pace.
    pub fn replayable(&self) -> bool {
        !matches!(self, Source::Stream { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Source::File { path, .. } => path.display().to_string(),
            Source::Files { paths, .. } => paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            Source::Synthetic { config, .. } => format!(
                "synthetic (seed {}, {} symbols, {} ticks/s)",
                config.seed,
                config.symbols.len(),
                config.rate
            ),
            Source::Stream { name, .. } => name.clone(),
        }
    }
}

/// A source that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("synthetic source: {0}")]
    Synthetic(String),
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("the stream source {0} was already read")]
    StreamTaken(String),
    #[error("cannot read {name} again: {source}")]
    Reopen { name: String, source: io::Error },
    #[error("cannot write the ground truth {path}: {source}")]
    Truth { path: PathBuf, source: io::Error },
}

/// The records of a source, from its start.
pub type Records = Box<dyn Iterator<Item = io::Result<InputItem>> + Send>;

/// Checks that the source can be used (before any output is touched).
pub fn check(source: &Source) -> Result<(), SourceError> {
    match source {
        Source::Synthetic { config, .. } => config.validate().map_err(SourceError::Synthetic)?,
        // Opening every file reads its header: a bad file is refused before outputs change.
        Source::Files { paths, settings } => {
            stockstream_ticks::open_files(paths, settings)?;
        }
        _ => {}
    }
    Ok(())
}

/// Opens the source at its first record.
pub fn open(source: &Source) -> Result<Records, SourceError> {
    match source {
        Source::File { path, symbol } => {
            let open_error = |source| SourceError::Open {
                path: path.clone(),
                source,
            };
            let file = File::open(path).map_err(open_error)?;
            let reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 20, file));
            let csv = CsvOptions {
                symbol: symbol.clone(),
            };
            let records = TickReader::new(reader, InputFormat::from_path(Some(path)), &csv)
                .map_err(open_error)?;
            Ok(Box::new(records))
        }
        Source::Files { paths, settings } => {
            Ok(Box::new(stockstream_ticks::open_files(paths, settings)?))
        }
        Source::Synthetic {
            config,
            limit,
            truth,
        } => {
            let generator = Synthetic::new(config.clone()).map_err(SourceError::Synthetic)?;
            let truth_error = |source| SourceError::Truth {
                path: truth.clone(),
                source,
            };
            if let Some(dir) = truth.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(truth_error)?;
            }
            // Rewritten from the start on every (re)start, as the ticks are: same seed, same rows.
            let truth_file = File::create(truth).map_err(truth_error)?;
            Ok(Box::new(SyntheticRecords {
                ticks: generator.take(limit.map_or(usize::MAX, |l| l as usize)),
                truth: BufWriter::new(truth_file),
            }))
        }
        Source::Stream { name, records, .. } => {
            let first = records.first.lock().expect("not poisoned").take();
            match (first, &records.reopen) {
                (Some(first), _) => Ok(first),
                (None, Some(reopen)) => reopen().map_err(|source| SourceError::Reopen {
                    name: name.clone(),
                    source,
                }),
                (None, None) => Err(SourceError::StreamTaken(name.clone())),
            }
        }
    }
}

/// Generated ticks as input records, writing each injected anomaly to the truth file.
struct SyntheticRecords {
    ticks: std::iter::Take<Synthetic>,
    truth: BufWriter<File>,
}

impl Iterator for SyntheticRecords {
    type Item = io::Result<InputItem>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(tick) = self.ticks.next() else {
            return self.truth.flush().err().map(Err);
        };
        if let Some(anomaly) = &tick.anomaly {
            // Anomalies are rare: flushing each keeps the file current for `score` mid-run.
            let written = self
                .truth
                .write_all(&anomaly.to_json())
                .and_then(|()| self.truth.write_all(b"\n"))
                .and_then(|()| self.truth.flush());
            if let Err(err) = written {
                return Some(Err(err));
            }
        }
        Some(Ok(InputItem::Record {
            line: tick.seq,
            value: tick.record(),
        }))
    }
}
