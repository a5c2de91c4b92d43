//! CSV rows to tick records, with the column layout found from the header.

use std::io::{self, BufRead};

use stockstream_core::json::{write_f64, write_int};

use super::{parse_timestamp_ms, CsvOptions, InputItem};

/// Which columns hold the tick's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvColumns {
    pub symbol: Option<usize>,
    pub ts: usize,
    pub price: usize,
    pub volume: Option<usize>,
}

/// Header names recognised for each field, in order of preference (case-insensitive). `close`
/// makes daily files (`date,open,high,low,close,volume,Name`) one tick per row.
const SYMBOL_NAMES: &[&str] = &["symbol", "ticker", "name"];
const TS_NAMES: &[&str] = &["ts", "timestamp", "datetime", "date_time", "time", "date"];
const PRICE_NAMES: &[&str] = &["price", "close", "last"];
const VOLUME_NAMES: &[&str] = &["volume", "vol", "size", "qty", "quantity"];

impl CsvColumns {
    /// Finds the columns from a header row.
    pub fn detect(header: &csv::StringRecord) -> Result<Self, String> {
        let find = |names: &[&str]| {
            names.iter().find_map(|name| {
                header
                    .iter()
                    .position(|h| h.trim().eq_ignore_ascii_case(name))
            })
        };
        let missing = |what: &str, names: &[&str]| {
            format!(
                "CSV header {:?} has no {what} column (looked for {})",
                header.iter().collect::<Vec<_>>().join(","),
                names.join(", ")
            )
        };
        Ok(Self {
            symbol: find(SYMBOL_NAMES),
            ts: find(TS_NAMES).ok_or_else(|| missing("timestamp", TS_NAMES))?,
            price: find(PRICE_NAMES).ok_or_else(|| missing("price", PRICE_NAMES))?,
            volume: find(VOLUME_NAMES),
        })
    }
}

/// Tick records from CSV rows.
pub struct CsvTicks<R: BufRead> {
    rows: csv::Reader<R>,
    columns: CsvColumns,
    symbol: Option<String>,
    row: csv::StringRecord,
}

impl<R: BufRead> CsvTicks<R> {
    pub fn new(reader: R, options: &CsvOptions) -> io::Result<Self> {
        let mut rows = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let header = rows.headers().map_err(io::Error::other)?.clone();
        let columns = CsvColumns::detect(&header)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if columns.symbol.is_none() && options.symbol.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "CSV has no symbol column (symbol, ticker or name): give one with --symbol",
            ));
        }
        Ok(Self {
            rows,
            columns,
            symbol: options.symbol.clone(),
            row: csv::StringRecord::new(),
        })
    }

    /// One row as a tick record, or why it cannot be one.
    fn convert(&self) -> Result<Vec<u8>, String> {
        let field = |i: usize| {
            self.row
                .get(i)
                .map(str::trim)
                .ok_or_else(|| format!("row has no column {}", i + 1))
        };
        let symbol = match (&self.symbol, self.columns.symbol) {
            (Some(constant), _) => constant.as_str(),
            (None, Some(i)) => field(i)?,
            (None, None) => unreachable!("checked in new"),
        };
        let ts = parse_timestamp_ms(field(self.columns.ts)?)?;
        let price_text = field(self.columns.price)?;
        let price: f64 = price_text
            .parse()
            .map_err(|_| format!("price {price_text:?} is not a number"))?;
        if !price.is_finite() {
            return Err(format!("price {price_text:?} is not finite"));
        }
        let volume = match self.columns.volume.map(field).transpose()? {
            None | Some("") => None,
            Some(text) => Some(parse_volume(text)?),
        };
        // Symbols and numbers are re-checked by tick validation; quote the symbol safely here.
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(b"{\"symbol\":");
        out.extend_from_slice(
            serde_json::to_string(symbol)
                .expect("strings serialise")
                .as_bytes(),
        );
        out.extend_from_slice(b",\"ts\":");
        write_int(&mut out, ts);
        out.extend_from_slice(b",\"price\":");
        write_f64(&mut out, price);
        if let Some(volume) = volume {
            out.extend_from_slice(b",\"volume\":");
            write_int(&mut out, volume);
        }
        out.push(b'}');
        Ok(out)
    }
}

/// Volumes are integers; daily files sometimes write them as `1234.0`.
fn parse_volume(text: &str) -> Result<i64, String> {
    if let Ok(v) = text.parse::<i64>() {
        return Ok(v);
    }
    match text.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 9e15 => Ok(v as i64),
        _ => Err(format!("volume {text:?} is not an integer")),
    }
}

impl<R: BufRead> Iterator for CsvTicks<R> {
    type Item = io::Result<InputItem>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut row = std::mem::take(&mut self.row);
        let read = self.rows.read_record(&mut row);
        self.row = row;
        match read {
            Ok(false) => None,
            Ok(true) => {
                let line = self.row.position().map_or(0, |p| p.line());
                Some(Ok(match self.convert() {
                    Ok(value) => InputItem::Record { line, value },
                    Err(reason) => InputItem::Unreadable {
                        line,
                        reason,
                        raw: self.row.iter().collect::<Vec<_>>().join(","),
                    },
                }))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                match e.kind() {
                    csv::ErrorKind::Io(_) => Some(Err(io::Error::other(e))),
                    _ => Some(Ok(InputItem::Unreadable {
                        line,
                        reason: e.to_string(),
                        raw: String::new(),
                    })),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{InputFormat, TickReader};

    fn read(csv: &str, symbol: Option<&str>) -> Vec<InputItem> {
        let options = CsvOptions {
            symbol: symbol.map(str::to_owned),
        };
        TickReader::new(csv.as_bytes(), InputFormat::Csv, &options)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn record(item: &InputItem) -> &str {
        match item {
            InputItem::Record { value, .. } => std::str::from_utf8(value).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tick_files_with_a_constant_symbol() {
        let items = read(
            "DateTime,Price,Volume\n2013-09-01 17:00:00.083,1640.25,8\n",
            Some("ES"),
        );
        assert_eq!(
            record(&items[0]),
            r#"{"symbol":"ES","ts":1378054800083,"price":1640.25,"volume":8}"#
        );
    }

    #[test]
    fn daily_files_use_close_and_name() {
        let items = read("date,open,high,low,close,volume,Name\n2013-02-08,15.07,15.12,14.63,14.75,8407500,AAL\n", None);
        assert_eq!(
            record(&items[0]),
            r#"{"symbol":"AAL","ts":1360281600000,"price":14.75,"volume":8407500}"#
        );
    }

    #[test]
    fn bad_rows_are_reported_with_their_line() {
        let items = read("symbol,ts,price\nA,1,abc\nB,2,3\n", None);
        match &items[0] {
            InputItem::Unreadable { line, reason, .. } => {
                assert_eq!(*line, 2);
                assert!(reason.contains("abc"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(record(&items[1]), r#"{"symbol":"B","ts":2000,"price":3.0}"#);
    }

    #[test]
    fn a_file_without_symbols_needs_one() {
        let err = TickReader::new(
            &b"ts,price\n1,2\n"[..],
            InputFormat::Csv,
            &CsvOptions::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("--symbol"));
    }
}
