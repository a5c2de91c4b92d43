//! Several input files as one stream of ticks in event-time order.
//!
//! Each file is read as it streams (gzip transparently, by its magic bytes), and the files are
//! merged by event time with a k-way merge that holds one record per file: memory does not
//! grow with the input. A CSV file without a symbol column takes its symbol from its name
//! (`AAPL.csv.gz` → `AAPL`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{CsvColumns, CsvSettings, InputFormat, InputItem, TickReader};

/// How long each OHLC bar of an input is (`--ohlc-bars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarLength {
    /// The smallest spacing of the first rows' timestamps.
    Auto,
    /// Milliseconds.
    Ms(i64),
}

impl std::str::FromStr for BarLength {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("auto") {
            return Ok(BarLength::Auto);
        }
        match stockstream_core::parse_duration_ms("ohlc-bars", text) {
            Ok(ms) if ms > 0 => Ok(BarLength::Ms(ms)),
            Ok(_) => Err(format!("bar length {text:?} must be positive")),
            Err(e) => Err(format!("{e} (or auto)")),
        }
    }
}

/// How input files are read.
#[derive(Debug, Clone, Default)]
pub struct InputSettings {
    /// CSV layout, timestamps and zone, daily expansion; `ohlc_bar_ms` is filled per file
    /// from `ohlc_bars`.
    pub csv: CsvSettings,
    /// Expand OHLC bars into four ticks each.
    pub ohlc_bars: Option<BarLength>,
}

/// An input that cannot be read as asked.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Bad { path: PathBuf, message: String },
    #[error("{path} holds no .csv, .csv.gz, .jsonl or .jsonl.gz file")]
    EmptyDir { path: PathBuf },
}

const EXTENSIONS: &[&str] = &[
    ".csv",
    ".csv.gz",
    ".jsonl",
    ".jsonl.gz",
    ".json",
    ".json.gz",
];

fn lower_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The files named: files as they are, directories replaced by their tick files (by
/// extension, sorted by name, not recursive).
pub fn input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FilesError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let open_error = |source| FilesError::Open {
            path: path.clone(),
            source,
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(open_error)? {
            let entry = entry.map_err(open_error)?.path();
            let name = lower_name(&entry);
            if entry.is_file() && EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
                found.push(entry);
            }
        }
        if found.is_empty() {
            return Err(FilesError::EmptyDir { path: path.clone() });
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// The file's name without `.gz` and its format extension: the symbol it stands for.
fn name_symbol(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    (!stem.is_empty()).then(|| stem.to_owned())
}

fn format_of(path: &Path) -> InputFormat {
    let name = lower_name(path);
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    InputFormat::from_path(Some(Path::new(name)))
}

type Reader = Box<dyn BufRead + Send>;

/// Opens `path` for reading, through a gzip decoder when it starts with gzip's magic bytes.
fn open_reader(path: &Path) -> Result<Reader, FilesError> {
    let open_error = |source| FilesError::Open {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(open_error)?);
    let gzip = reader
        .fill_buf()
        .map_err(open_error)?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        let decoder = flate2::bufread::MultiGzDecoder::new(reader);
        return Ok(Box::new(BufReader::with_capacity(1 << 20, decoder)));
    }
    if lower_name(path).ends_with(".gz") {
        return Err(FilesError::Bad {
            path: path.to_owned(),
            message: "the name ends in .gz but the file is not gzip".to_owned(),
        });
    }
    Ok(Box::new(reader))
}

/// Rows looked at to find a file's columns and its bar length.
const PROBE_ROWS: usize = 256;

/// The smallest positive spacing of the first rows' timestamps: the bar length of a bar file.
fn detect_bar_ms(path: &Path, settings: &CsvSettings, ts: usize) -> Result<i64, FilesError> {
    let bad = |message: String| FilesError::Bad {
        path: path.to_owned(),
        message,
    };
    let mut rows = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(open_reader(path)?);
    let mut previous = None;
    let mut smallest: Option<i64> = None;
    for row in rows.records().take(PROBE_ROWS) {
        let row = row.map_err(|e| bad(format!("reading the first rows: {e}")))?;
        let Some(Ok(at)) = row.get(ts).map(|t| settings.timestamps.parse_ms(t)) else {
            continue;
        };
        if let Some(before) = previous {
            let step: i64 = at - before;
            if step > 0 {
                smallest = Some(smallest.map_or(step, |s| s.min(step)));
            }
        }
        previous = Some(at);
    }
    smallest.ok_or_else(|| {
        bad("cannot tell the bar length: the first rows hold fewer than two timestamps; give --ohlc-bars LENGTH".to_owned())
    })
}

/// Opens one file as ticks, with the settings completed for it: the symbol from the file name
/// when it has no symbol column, and the bar length when `ohlc_bars` is `auto`.
pub fn open_file(path: &Path, settings: &InputSettings) -> Result<TickReader<Reader>, FilesError> {
    let format = format_of(path);
    let mut csv = settings.csv.clone();
    if format == InputFormat::Csv {
        let bad = |message: String| FilesError::Bad {
            path: path.to_owned(),
            message,
        };
        let header = csv::ReaderBuilder::new()
            .from_reader(open_reader(path)?)
            .headers()
            .map_err(|e| bad(format!("reading the CSV header: {e}")))?
            .clone();
        let columns = CsvColumns::detect_with(&header, &csv.columns).map_err(bad)?;
        if csv.symbol.is_none() && columns.symbol.is_none() {
            csv.symbol = name_symbol(path);
        }
        csv.ohlc_bar_ms = match settings.ohlc_bars {
            None => None,
            Some(BarLength::Ms(ms)) => Some(ms),
            Some(BarLength::Auto) => Some(detect_bar_ms(path, &csv, columns.ts)?),
        };
    }
    TickReader::with_settings(open_reader(path)?, format, &csv).map_err(|e| FilesError::Bad {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Opens every file and merges them by event time.
pub fn open_files(paths: &[PathBuf], settings: &InputSettings) -> Result<MergedTicks, FilesError> {
    let files = input_files(paths)?;
    let mut inputs = Vec::with_capacity(files.len());
    for path in files {
        let reader = open_file(&path, settings)?;
        inputs.push((path, reader));
    }
    Ok(MergedTicks::new(inputs))
}

/// The records of several readers in event-time order (a k-way merge on each reader's next
/// record; ties go to the reader named first, and each reader's own order is kept). A row
/// that is not a record keeps its place after its reader's previous record.
pub struct MergedTicks {
    inputs: Vec<(PathBuf, TickReader<Reader>)>,
    heads: Vec<Option<InputItem>>,
    last_ts: Vec<i64>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    started: bool,
    failed: Option<io::Error>,
}

impl MergedTicks {
    pub fn new(inputs: Vec<(PathBuf, TickReader<Reader>)>) -> Self {
        let n = inputs.len();
        Self {
            inputs,
            heads: (0..n).map(|_| None).collect(),
            last_ts: vec![i64::MIN; n],
            heap: BinaryHeap::with_capacity(n),
            started: false,
            failed: None,
        }
    }

    /// Reads reader `i`'s next item into its head.
    fn pull(&mut self, i: usize) {
        let (path, reader) = &mut self.inputs[i];
        match reader.next() {
            None => {}
            Some(Err(e)) => {
                self.failed = Some(io::Error::new(
                    e.kind(),
                    format!("reading {}: {e}", path.display()),
                ));
            }
            Some(Ok(item)) => {
                let key = match &item {
                    InputItem::Record { value, .. } => record_ts(value).unwrap_or(self.last_ts[i]),
                    InputItem::Unreadable { .. } => self.last_ts[i],
                };
                self.last_ts[i] = key;
                self.heads[i] = Some(item);
                self.heap.push(Reverse((key, i)));
            }
        }
    }
}

impl Iterator for MergedTicks {
    type Item = io::Result<InputItem>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.inputs.len() {
                self.pull(i);
            }
        }
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        let Reverse((_, i)) = self.heap.pop()?;
        let item = self.heads[i]
            .take()
            .expect("a reader in the heap has a head");
        self.pull(i);
        Some(Ok(item))
    }
}

/// The event time of a record, in epoch ms: read straight from `"ts":<integer>` as the CSV
/// reader writes it, else from the parsed JSON (numbers or timestamp strings).
fn record_ts(value: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"ts\":";
    if let Some(at) = value.windows(KEY.len()).position(|w| w == KEY) {
        let digits = &value[at + KEY.len()..];
        let end = digits
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'-'))
            .unwrap_or(digits.len());
        if end > 0 && matches!(digits.get(end), Some(b',' | b'}')) {
            if let Some(ts) = std::str::from_utf8(&digits[..end])
                .ok()
                .and_then(|t| t.parse().ok())
            {
                return Some(ts);
            }
        }
    }
    let json: serde_json::Value = serde_json::from_slice(value).ok()?;
    match json.get("ts")? {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => super::parse_timestamp_ms(s).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_from_file_names() {
        assert_eq!(
            name_symbol(Path::new("d/AAPL.csv.gz")).as_deref(),
            Some("AAPL")
        );
        assert_eq!(name_symbol(Path::new("IBM.csv")).as_deref(), Some("IBM"));
        assert_eq!(
            name_symbol(Path::new("BRK.B.csv")).as_deref(),
            Some("BRK.B")
        );
    }

    #[test]
    fn record_times() {
        assert_eq!(
            record_ts(br#"{"symbol":"A","ts":123,"price":1}"#),
            Some(123)
        );
        assert_eq!(
            record_ts(br#"{"symbol":"A","ts": "1970-01-01T00:00:01Z","price":1}"#),
            Some(1000)
        );
        assert_eq!(record_ts(br#"{"symbol":"A"}"#), None);
    }

    fn reader(csv: &'static str) -> TickReader<Reader> {
        let settings = CsvSettings::default();
        TickReader::with_settings(
            Box::new(csv.as_bytes()) as Reader,
            InputFormat::Csv,
            &settings,
        )
        .unwrap()
    }

    #[test]
    fn files_merge_in_event_time_order() {
        let a = reader("symbol,ts,price\nA,1,1\nA,5,1\nA,5,2\nA,9,1\n");
        let b = reader("symbol,ts,price\nB,2,1\nB,5,3\nB,x,1\nB,7,1\n");
        let merged = MergedTicks::new(vec![("a".into(), a), ("b".into(), b)]);
        let order: Vec<String> = merged
            .map(|item| match item.unwrap() {
                InputItem::Record { value, .. } => {
                    let v: serde_json::Value = serde_json::from_slice(&value).unwrap();
                    format!("{}{}", v["symbol"].as_str().unwrap(), v["ts"])
                }
                InputItem::Unreadable { .. } => "bad".to_owned(),
            })
            .collect();
        // Ties go to the first file; a bad row keeps its place after its file's last record.
        assert_eq!(
            order,
            ["A1000", "B2000", "A5000", "A5000", "B5000", "bad", "B7000", "A9000"]
        );
    }

    #[test]
    fn bar_lengths() {
        assert_eq!("auto".parse::<BarLength>(), Ok(BarLength::Auto));
        assert_eq!("1m".parse::<BarLength>(), Ok(BarLength::Ms(60_000)));
        assert!("x".parse::<BarLength>().is_err());
    }
}
