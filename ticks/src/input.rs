//! Reading ticks: JSON lines as they are, or CSV rows turned into tick records.

mod bounded_rows;
mod csv_ticks;
mod files;
mod time;

use std::io::{self, BufRead};
use std::path::Path;

use stockstream_core::json::{write_f64, write_int};

pub use csv_ticks::{CsvColumns, CsvTicks, OHLC_TIMES};
pub use files::{
    input_files, open_file, open_files, BarLength, FilesError, InputSettings, MergedTicks,
};
pub use time::{parse_timestamp_ms, parse_tz, TimestampFormat, Timestamps, Tz};

/// How an input file holds its ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object per line.
    JsonLines,
    /// A header row and one tick per row.
    Csv,
}

impl InputFormat {
    /// CSV for `*.csv`, JSON lines for anything else (including standard input).
    pub fn from_path(path: Option<&Path>) -> Self {
        match path.and_then(Path::extension).and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => InputFormat::Csv,
            _ => InputFormat::JsonLines,
        }
    }
}

/// One input line or row.
#[derive(Debug, Clone, PartialEq)]
pub enum InputItem {
    /// A record to feed the chain (a JSON object, not yet validated).
    Record { line: u64, value: Vec<u8> },
    /// A row that could not even be turned into a record (CSV only).
    Unreadable {
        /// 1-based line of the row in the file (the header is line 1).
        line: u64,
        /// What is wrong, for people.
        reason: String,
        /// The row as read (fields joined by commas), for the dead-letter file.
        raw: String,
        /// A short, stable name of the reason, for counting: the tick-validation codes where
        /// they fit (`bad_ts`, `bad_price`, `bad_volume`, `missing_field`), else `bad_csv`.
        code: &'static str,
    },
}

/// Options for CSV input (the original set: a constant symbol). [`CsvSettings`] has them all;
/// `CsvSettings::from(&options)` fills in the defaults.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Symbol for every row, for files without a symbol column (`--symbol`).
    pub symbol: Option<String>,
}

/// Header names for the tick's fields, overriding the detection (`--symbol-col`, ...).
/// Matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnNames {
    pub symbol: Option<String>,
    pub ts: Option<String>,
    pub price: Option<String>,
    pub volume: Option<String>,
}

/// Everything that says how CSV rows become ticks.
#[derive(Debug, Clone, Default)]
pub struct CsvSettings {
    /// Symbol for every row (`--symbol`); wins over a symbol column.
    pub symbol: Option<String>,
    /// Columns named by the user; the others are detected from the header.
    pub columns: ColumnNames,
    /// How the timestamp column is written, and the zone of naive values.
    pub timestamps: Timestamps,
    /// Daily files (`date,open,high,low,close,...`): four ticks per row, open, low/high,
    /// high/low and close, at the times in [`OHLC_TIMES`] (see [`CsvTicks`]). Off: one tick per
    /// row at the row's timestamp, priced at the close.
    pub ohlc_expand: bool,
    /// Intraday OHLC bars of this length (ms), each ending at its row's timestamp: four ticks
    /// per bar (open, low/high, high/low, close) at even steps inside the bar, the close at
    /// the timestamp, the volume split exactly. Wins over `ohlc_expand`.
    pub ohlc_bar_ms: Option<i64>,
    /// Longest JSON line or CSV row read (`--max-record-bytes`); a longer one is skipped
    /// without being held in memory and reported as `too_large`. `None`: [`DEFAULT_MAX_RECORD_BYTES`].
    pub max_record_bytes: Option<usize>,
}

/// 1 MiB: a tick is under 100 bytes, so only garbage or a runaway line comes near it, and a
/// batch of 4,096 records stays within 4 GiB at worst.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

impl From<&CsvOptions> for CsvSettings {
    fn from(options: &CsvOptions) -> Self {
        Self {
            symbol: options.symbol.clone(),
            ..Self::default()
        }
    }
}

/// Appends a tick record, `{"symbol":..,"ts":..,"price":..[,"volume":..]}`, to `out`.
pub fn write_tick_record(
    out: &mut Vec<u8>,
    symbol: &str,
    ts: i64,
    price: f64,
    volume: Option<i64>,
) {
    out.extend_from_slice(b"{\"symbol\":");
    if symbol
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(symbol.as_bytes());
        out.push(b'"');
    } else {
        // Quoted safely; tick validation rejects such a symbol later with its reason.
        out.extend_from_slice(
            serde_json::to_string(symbol)
                .expect("strings serialise")
                .as_bytes(),
        );
    }
    out.extend_from_slice(b",\"ts\":");
    write_int(out, ts);
    out.extend_from_slice(b",\"price\":");
    write_f64(out, price);
    if let Some(volume) = volume {
        out.extend_from_slice(b",\"volume\":");
        write_int(out, volume);
    }
    out.push(b'}');
}

/// What [`read_line_bounded`] found.
enum Line {
    End,
    Read,
    /// Over the limit: the whole line (this many bytes) was consumed, only its start kept.
    TooLong(usize),
}

/// `read_until(b'\n')` that keeps at most `limit` bytes: past it, the rest of the line is
/// consumed from the reader's buffer and dropped, so memory stays bounded whatever the line.
fn read_line_bounded<R: BufRead>(
    reader: &mut R,
    out: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Line> {
    let mut length = 0usize;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(match length {
                0 => Line::End,
                n if n > limit => Line::TooLong(n),
                _ => Line::Read,
            });
        }
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        // Room for the line, its CR and LF, and one byte more to tell an overlong line.
        let room = (limit + 2).saturating_sub(out.len());
        out.extend_from_slice(&chunk[..used.min(room)]);
        length += used;
        reader.consume(used);
        if done {
            // The line ending (LF or CRLF) does not count against the limit.
            let crlf = out.ends_with(b"\r\n");
            let content = length - 1 - usize::from(crlf);
            return Ok(if content > limit {
                Line::TooLong(content)
            } else {
                Line::Read
            });
        }
    }
}

/// Iterates the ticks of a JSON-lines or CSV source.
pub enum TickReader<R: BufRead> {
    JsonLines { reader: R, line: u64, limit: usize },
    Csv(Box<CsvTicks<R>>),
}

impl<R: BufRead> TickReader<R> {
    pub fn new(reader: R, format: InputFormat, csv: &CsvOptions) -> io::Result<Self> {
        Self::with_settings(reader, format, &CsvSettings::from(csv))
    }

    /// A reader with every CSV setting (column names, timestamp format and zone, OHLC
    /// expansion). Errors in the header or the settings are `InvalidData`, with the fix.
    pub fn with_settings(reader: R, format: InputFormat, csv: &CsvSettings) -> io::Result<Self> {
        Ok(match format {
            InputFormat::JsonLines => TickReader::JsonLines {
                reader,
                line: 0,
                limit: csv.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
            },
            InputFormat::Csv => TickReader::Csv(Box::new(CsvTicks::with_settings(reader, csv)?)),
        })
    }

    /// What the reader found in the file: the CSV layout and columns, or "JSON lines".
    pub fn describe(&self) -> String {
        match self {
            TickReader::JsonLines { .. } => "JSON lines".to_owned(),
            TickReader::Csv(rows) => rows.describe(),
        }
    }
}

impl<R: BufRead> Iterator for TickReader<R> {
    type Item = io::Result<InputItem>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            TickReader::JsonLines {
                reader,
                line,
                limit,
            } => loop {
                let mut value = Vec::with_capacity(128);
                match read_line_bounded(reader, &mut value, *limit) {
                    Ok(Line::End) => return None,
                    Ok(Line::TooLong(length)) => {
                        *line += 1;
                        let shown =
                            String::from_utf8_lossy(&value[..value.len().min(200).min(*limit)]);
                        return Some(Ok(InputItem::Unreadable {
                            line: *line,
                            reason: format!(
                                "record of {length} bytes is over the limit of {limit} bytes (--max-record-bytes); skipped"
                            ),
                            raw: format!("{shown}…"),
                            code: "too_large",
                        }));
                    }
                    Ok(Line::Read) => {
                        *line += 1;
                        while value.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                            value.pop();
                        }
                        // Blank lines separate nothing and carry nothing: skip them.
                        if value.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        return Some(Ok(InputItem::Record { line: *line, value }));
                    }
                    Err(e) => return Some(Err(e)),
                }
            },
            TickReader::Csv(rows) => rows.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str, limit: usize) -> Vec<InputItem> {
        let settings = CsvSettings {
            max_record_bytes: Some(limit),
            ..CsvSettings::default()
        };
        // A tiny buffer, so lines cross buffer boundaries.
        let reader = io::BufReader::with_capacity(4, text.as_bytes());
        TickReader::with_settings(reader, InputFormat::JsonLines, &settings)
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap()
    }

    #[test]
    fn json_lines_over_the_limit_are_skipped_whole_and_the_next_ones_read() {
        let got = items(
            "0123456789\r\n01234567890\n\n{\"a\":1}\nxxxxxxxxxxxxxxxx",
            10,
        );
        let summary: Vec<String> = got
            .iter()
            .map(|item| match item {
                InputItem::Record { line, value } => {
                    format!("{line}:{}", String::from_utf8_lossy(value))
                }
                InputItem::Unreadable {
                    line, code, raw, ..
                } => format!("{line}:{code}:{raw}"),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                // Exactly at the limit (the CR is part of the line, trimmed after).
                "1:0123456789".to_owned(),
                "2:too_large:0123456789…".to_owned(),
                "4:{\"a\":1}".to_owned(),
                // The last line, with no newline.
                "5:too_large:xxxxxxxxxx…".to_owned(),
            ]
        );
    }
}
