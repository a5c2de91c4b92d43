//! Where the run's ticks come from, and how fast.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::str::FromStr;

use stockstream_ticks::{CsvOptions, InputFormat, TickReader};

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
    /// INTEGRATION POINT (synthetic generator): `stockstream_ticks::synthetic` is being built
    /// beside this crate. Wiring it means: open it here as an endless reader of tick records
    /// (same seed => same records, so a restart can re-read the prefix and resume exactly),
    /// and write its ground truth next to the outputs. Until then a run with it stops at
    /// start-up with [`SourceError::SyntheticNotWired`].
    Synthetic,
}

impl Source {
    /// How the source is named in messages and the checkpoint.
    pub fn describe(&self) -> String {
        match self {
            Source::File { path, .. } => path.display().to_string(),
            Source::Synthetic => "synthetic".to_owned(),
        }
    }
}

/// Pace of the replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as the chains go.
    Max,
    /// Event-time gaps divided by this factor (1 = real time).
    ///
    /// INTEGRATION POINT (pacing): `stockstream_ticks::pace` (`Pacer::wait_unless(ts, stop)`)
    /// is being built beside this crate. Wiring it means: wait before each record is added to
    /// a batch, and hand a partial batch to the chains before a wait that would hold it back
    /// (so commits and the dashboard keep up with a slow replay). Until then a run with a
    /// factor stops at start-up with [`SourceError::PacingNotWired`].
    Factor(f64),
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "invalid speed {text:?}: expected `max` or a positive factor such as 1 or 100"
            )),
        }
    }
}

/// A source that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("--synthetic is not wired into `stockstream run` yet (the generator lands in stockstream-ticks with issue 3); use --input FILE")]
    SyntheticNotWired,
    #[error("--speed {0} is not wired into `stockstream run` yet (pacing lands in stockstream-ticks with issue 3); use --speed max")]
    PacingNotWired(f64),
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
}

/// The records of a source, from its start.
pub type Records = TickReader<Box<dyn BufRead + Send>>;

/// Checks that the source and speed can be used (before any output is touched).
pub fn check(source: &Source, speed: Speed) -> Result<(), SourceError> {
    if let Source::Synthetic = source {
        return Err(SourceError::SyntheticNotWired);
    }
    if let Speed::Factor(f) = speed {
        return Err(SourceError::PacingNotWired(f));
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
            TickReader::new(reader, InputFormat::from_path(Some(path)), &csv).map_err(open_error)
        }
        Source::Synthetic => Err(SourceError::SyntheticNotWired),
    }
}
