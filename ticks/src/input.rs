//! Reading ticks: JSON lines as they are, or CSV rows turned into tick records.

mod csv_ticks;
mod time;

use std::io::{self, BufRead};
use std::path::Path;

pub use csv_ticks::{CsvColumns, CsvTicks};
pub use time::parse_timestamp_ms;

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
        line: u64,
        reason: String,
        raw: String,
    },
}

/// Options for CSV input.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Symbol for every row, for files without a symbol column (`--symbol`).
    pub symbol: Option<String>,
}

/// Iterates the ticks of a JSON-lines or CSV source.
pub enum TickReader<R: BufRead> {
    JsonLines { reader: R, line: u64 },
    Csv(Box<CsvTicks<R>>),
}

impl<R: BufRead> TickReader<R> {
    pub fn new(reader: R, format: InputFormat, csv: &CsvOptions) -> io::Result<Self> {
        Ok(match format {
            InputFormat::JsonLines => TickReader::JsonLines { reader, line: 0 },
            InputFormat::Csv => TickReader::Csv(Box::new(CsvTicks::new(reader, csv)?)),
        })
    }
}

impl<R: BufRead> Iterator for TickReader<R> {
    type Item = io::Result<InputItem>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            TickReader::JsonLines { reader, line } => loop {
                let mut value = Vec::with_capacity(128);
                match reader.read_until(b'\n', &mut value) {
                    Ok(0) => return None,
                    Ok(_) => {
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
