//! CSV rows to tick records, with the column layout found from the header.
//!
//! Layouts recognised without flags (header names are case-insensitive):
//!
//! - tick files, `DateTime,Price,Volume` (no symbol column: give `--symbol`);
//! - files with `symbol` or `ticker`, `ts` or `timestamp`, `price`, `volume` columns;
//! - daily files, `date,open,high,low,close,volume,Name`: one tick per row priced at the close,
//!   at the row's timestamp; or, with OHLC expansion, four ticks per row (see [`OHLC_TIMES`]).
//!
//! Any column can be named instead ([`ColumnNames`]).

use std::collections::VecDeque;
use std::io::{self, BufRead};

use chrono::NaiveTime;

use super::bounded_rows::BoundedRows;
use super::{write_tick_record, ColumnNames, CsvSettings, InputItem, Timestamps};

/// Which columns hold the tick's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvColumns {
    pub symbol: Option<usize>,
    pub ts: usize,
    pub price: usize,
    pub volume: Option<usize>,
    /// open, high, low, close, when the file has all four (a daily file).
    pub ohlc: Option<[usize; 4]>,
}

/// Header names recognised for each field, in order of preference (case-insensitive). `close`
/// makes daily files (`date,open,high,low,close,volume,Name`) one tick per row.
const SYMBOL_NAMES: &[&str] = &["symbol", "ticker", "name"];
const TS_NAMES: &[&str] = &["ts", "timestamp", "datetime", "date_time", "time", "date"];
const PRICE_NAMES: &[&str] = &["price", "close", "last", "c"];
const VOLUME_NAMES: &[&str] = &["volume", "vol", "size", "qty", "quantity", "v"];

/// Local times of day (in the reader's time zone) of the four ticks an expanded daily row
/// gives: the open at 09:30, the first extreme at 11:40, the second at 13:50, the close at
/// 16:00, a regular US session cut in three equal parts. The extremes are low then high on a
/// day that closes at or above its open, high then low on a day that closes below it (the path
/// that moves least between the four prices).
pub const OHLC_TIMES: [(u32, u32); 4] = [(9, 30), (11, 40), (13, 50), (16, 0)];

impl CsvColumns {
    /// Finds the columns from a header row.
    pub fn detect(header: &csv::StringRecord) -> Result<Self, String> {
        Self::detect_with(header, &ColumnNames::default())
    }

    /// Finds the columns from a header row, taking the named ones as given.
    pub fn detect_with(header: &csv::StringRecord, names: &ColumnNames) -> Result<Self, String> {
        let position = |name: &str| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
        };
        let find = |names: &[&str]| names.iter().find_map(|name| position(name));
        let header_text = || header.iter().collect::<Vec<_>>().join(",");
        let mut errors = Vec::new();
        let mut resolve = |given: &Option<String>,
                           what: &str,
                           flag: &str,
                           names: &[&str],
                           required: bool| {
            let found = match given {
                Some(name) => position(name),
                None => find(names),
            };
            match (found, given) {
                (None, Some(name)) => errors.push(format!(
                    "the {what} column {name:?} (--{flag}-col) is not in the CSV header {:?}",
                    header_text()
                )),
                (None, None) if required => errors.push(format!(
                    "CSV header {:?} has no {what} column (looked for {}; name one with --{flag}-col)",
                    header_text(),
                    names.join(", ")
                )),
                _ => {}
            }
            found
        };
        let symbol = resolve(&names.symbol, "symbol", "symbol", SYMBOL_NAMES, false);
        let ts = resolve(&names.ts, "timestamp", "ts", TS_NAMES, true);
        let price = resolve(&names.price, "price", "price", PRICE_NAMES, true);
        let volume = resolve(&names.volume, "volume", "volume", VOLUME_NAMES, false);
        let (Some(ts), Some(price), true) = (ts, price, errors.is_empty()) else {
            return Err(errors.join("; "));
        };
        let either = |long: &str, short: &str| position(long).or_else(|| position(short));
        let ohlc = match (
            either("open", "o"),
            either("high", "h"),
            either("low", "l"),
            either("close", "c"),
        ) {
            (Some(o), Some(h), Some(l), Some(c)) => Some([o, h, l, c]),
            _ => None,
        };
        Ok(Self {
            symbol,
            ts,
            price,
            volume,
            ohlc,
        })
    }
}

/// Tick records from CSV rows.
pub struct CsvTicks<R: BufRead> {
    rows: csv::Reader<BoundedRows<R>>,
    header: csv::StringRecord,
    columns: CsvColumns,
    symbol: Option<String>,
    timestamps: Timestamps,
    ohlc_expand: bool,
    ohlc_bar_ms: Option<i64>,
    row: csv::StringRecord,
    /// Records of the current row not yet handed out (an expanded daily row gives four).
    pending: VecDeque<InputItem>,
}

/// Why a row is not a tick: a stable code and a message.
type RowError = (&'static str, String);

impl<R: BufRead> CsvTicks<R> {
    pub fn new(reader: R, options: &super::CsvOptions) -> io::Result<Self> {
        Self::with_settings(reader, &CsvSettings::from(options))
    }

    pub fn with_settings(reader: R, settings: &CsvSettings) -> io::Result<Self> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        let limit = settings
            .max_record_bytes
            .unwrap_or(super::DEFAULT_MAX_RECORD_BYTES);
        let mut rows = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(BoundedRows::new(reader, limit));
        let header = rows.headers().map_err(io::Error::other)?.clone();
        let oversized = rows
            .get_ref()
            .is_marker(&header)
            .then(|| rows.get_mut().take_oversized())
            .flatten();
        if let Some(row) = oversized {
            return Err(invalid(format!(
                "the CSV header (line {}) is {} bytes, over the limit of {limit} bytes (--max-record-bytes)",
                row.line, row.length
            )));
        }
        let columns = CsvColumns::detect_with(&header, &settings.columns).map_err(invalid)?;
        if columns.symbol.is_none() && settings.symbol.is_none() {
            return Err(invalid(
                "CSV has no symbol column (symbol, ticker or name): give one with --symbol, or name the column with --symbol-col"
                    .to_owned(),
            ));
        }
        if settings.ohlc_bar_ms.is_some() && columns.ohlc.is_none() {
            return Err(invalid(format!(
                "--ohlc-bars needs open, high, low and close columns (o,h,l,c also do); the CSV header is {:?}",
                header.iter().collect::<Vec<_>>().join(",")
            )));
        }
        if settings.ohlc_expand && columns.ohlc.is_none() {
            return Err(invalid(format!(
                "--ohlc-expand needs open, high, low and close columns; the CSV header is {:?}",
                header.iter().collect::<Vec<_>>().join(",")
            )));
        }
        Ok(Self {
            rows,
            header,
            columns,
            symbol: settings.symbol.clone(),
            timestamps: settings.timestamps.clone(),
            ohlc_expand: settings.ohlc_expand,
            ohlc_bar_ms: settings.ohlc_bar_ms,
            row: csv::StringRecord::new(),
            pending: VecDeque::new(),
        })
    }

    /// The layout found, for logs: `daily OHLC, one tick per row at the close (symbol=Name, ...)`.
    pub fn describe(&self) -> String {
        let name = |i: usize| self.header.get(i).unwrap_or("?").trim().to_owned();
        let kind = match (self.columns.ohlc, self.ohlc_expand) {
            (Some(_), _) if self.ohlc_bar_ms.is_some() => {
                "OHLC bars ending at their timestamp, four ticks per bar (open, low/high, high/low, close)"
            }
            (Some(_), true) => "daily OHLC, four ticks per row (open, low/high, high/low, close)",
            (Some(_), false) => "daily OHLC, one tick per row",
            (None, _) => "one tick per row",
        };
        let symbol = match (&self.symbol, self.columns.symbol) {
            (Some(s), _) => format!("{s:?} for every row"),
            (None, Some(i)) => name(i),
            (None, None) => "?".to_owned(),
        };
        let price = if self.ohlc_expand || self.ohlc_bar_ms.is_some() {
            "open/high/low/close".to_owned()
        } else {
            name(self.columns.price)
        };
        let volume = self.columns.volume.map_or("none".to_owned(), name);
        format!(
            "CSV, {kind}: symbol={symbol}, ts={} ({}{}), price={price}, volume={volume}",
            name(self.columns.ts),
            self.timestamps.format,
            self.timestamps
                .tz
                .map_or(String::new(), |tz| format!(", naive times in {tz}")),
        )
    }

    fn field(&self, i: usize) -> Result<&str, RowError> {
        self.row.get(i).map(str::trim).ok_or_else(|| {
            (
                "missing_field",
                format!(
                    "row has no column {} ({})",
                    i + 1,
                    self.header.get(i).unwrap_or("?").trim()
                ),
            )
        })
    }

    fn price(&self, i: usize) -> Result<f64, RowError> {
        let text = self.field(i)?;
        let what = self.header.get(i).unwrap_or("price").trim();
        let price: f64 = text
            .parse()
            .map_err(|_| ("bad_price", format!("{what} {text:?} is not a number")))?;
        if !price.is_finite() {
            return Err(("bad_price", format!("{what} {text:?} is not finite")));
        }
        Ok(price)
    }

    /// The report of the row over the record limit (skipped unread) whose marker was just
    /// read at `line`.
    fn oversized(&mut self, line: u64) -> Option<InputItem> {
        let limit = self.rows.get_ref().limit();
        let row = self.rows.get_mut().take_oversized()?;
        Some(InputItem::Unreadable {
            line,
            reason: format!(
                "row of {} bytes is over the limit of {limit} bytes (--max-record-bytes); skipped",
                row.length
            ),
            raw: format!("{}…", String::from_utf8_lossy(&row.head)),
            code: "too_large",
        })
    }

    /// The row's ticks, appended to `pending`, or why there are none.
    fn convert(&mut self, line: u64) -> Result<(), RowError> {
        let symbol = match (&self.symbol, self.columns.symbol) {
            (Some(constant), _) => constant.clone(),
            (None, Some(i)) => self.field(i)?.to_owned(),
            (None, None) => unreachable!("checked in new"),
        };
        let ts = self
            .timestamps
            .parse_ms(self.field(self.columns.ts)?)
            .map_err(|e| ("bad_ts", e))?;
        let volume = match self.columns.volume.map(|i| self.field(i)).transpose()? {
            None | Some("") => None,
            Some(text) => Some(parse_volume(text).map_err(|e| ("bad_volume", e))?),
        };
        let make_record = |ts: i64, price: f64, volume: Option<i64>| {
            let mut value = Vec::with_capacity(96);
            write_tick_record(&mut value, &symbol, ts, price, volume);
            InputItem::Record { line, value }
        };
        match (self.ohlc_expand, self.columns.ohlc) {
            (_, Some([o, h, l, c])) if self.ohlc_bar_ms.is_some() => {
                let length = self.ohlc_bar_ms.expect("checked by the guard");
                let prices = ohlc_path([
                    self.price(o)?,
                    self.price(h)?,
                    self.price(l)?,
                    self.price(c)?,
                ]);
                // The bar's interval is (ts - length, ts]: four even steps, the close at ts.
                for (k, price) in prices.into_iter().enumerate() {
                    let at = ts - length + length * (k as i64 + 1) / 4;
                    let part = volume.map(|v| split_volume(v, k));
                    self.pending.push_back(make_record(at, price, part));
                }
            }
            (true, Some([o, h, l, c])) => {
                let [open, high, low, close] = [
                    self.price(o)?,
                    self.price(h)?,
                    self.price(l)?,
                    self.price(c)?,
                ];
                let prices = ohlc_path([open, high, low, close]);
                let date = self
                    .timestamps
                    .local_date(ts)
                    .ok_or_else(|| ("bad_ts", format!("timestamp {ts} ms is out of range")))?;
                let mut items = Vec::with_capacity(4);
                for (k, ((hour, minute), price)) in OHLC_TIMES.into_iter().zip(prices).enumerate() {
                    let time = NaiveTime::from_hms_opt(hour, minute, 0).expect("valid time");
                    let at = self
                        .timestamps
                        .local_ms(date.and_time(time))
                        .map_err(|e| ("bad_ts", e))?;
                    let part = volume.map(|v| split_volume(v, k));
                    items.push(make_record(at, price, part));
                }
                self.pending.extend(items);
            }
            _ => {
                let price = self.price(self.columns.price)?;
                let item = make_record(ts, price, volume);
                self.pending.push_back(item);
            }
        }
        Ok(())
    }
}

/// The order a bar most plausibly took through its prices: an up bar (close at or above open)
/// dips to its low before its high, a down bar the reverse (the path that moves least).
fn ohlc_path([open, high, low, close]: [f64; 4]) -> [f64; 4] {
    if close >= open {
        [open, low, high, close]
    } else {
        [open, high, low, close]
    }
}

/// The `k`th of four parts of a bar's volume: even shares, the remainder on the close, so the
/// four add up to the bar's volume exactly.
fn split_volume(volume: i64, k: usize) -> i64 {
    if k < 3 {
        volume / 4
    } else {
        volume - 3 * (volume / 4)
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

/// A row written back as one CSV line, quoted where its fields need it, so the dead letter
/// reads back as the very fields of the input (`"MS""FT",...,"1,000.5"`).
fn csv_line(row: &csv::StringRecord) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if writer.write_record(row).is_err() {
        return row.iter().collect::<Vec<_>>().join(",");
    }
    let mut line = writer.into_inner().unwrap_or_default();
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    String::from_utf8(line).unwrap_or_default()
}

impl<R: BufRead> Iterator for CsvTicks<R> {
    type Item = io::Result<InputItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            let mut row = std::mem::take(&mut self.row);
            let read = self.rows.read_record(&mut row);
            self.row = row;
            match read {
                Ok(false) => return None,
                Ok(true) => {
                    let line = self.row.position().map_or(0, |p| p.line());
                    if self.rows.get_ref().is_marker(&self.row) {
                        if let Some(item) = self.oversized(line) {
                            return Some(Ok(item));
                        }
                    }
                    if let Err((code, reason)) = self.convert(line) {
                        self.pending.push_back(InputItem::Unreadable {
                            line,
                            reason,
                            raw: csv_line(&self.row),
                            code,
                        });
                    }
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    if let csv::ErrorKind::Io(_) = e.kind() {
                        return Some(Err(io::Error::other(e)));
                    }
                    self.pending.push_back(InputItem::Unreadable {
                        line,
                        reason: e.to_string(),
                        raw: String::new(),
                        code: "bad_csv",
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_over_the_record_limit_is_reported_and_skipped_unread() {
        let long = "x".repeat(5 << 20);
        let csv = format!(
            "symbol,ts,price\nES,2024-01-02T14:30:00Z,1\n\"{long}\n{long}\",2024-01-02T14:30:01Z,1\nES,2024-01-02T14:30:02Z,2\n"
        );
        let settings = CsvSettings {
            max_record_bytes: Some(1024),
            ..CsvSettings::default()
        };
        let items: Vec<InputItem> =
            TickReader::with_settings(csv.as_bytes(), InputFormat::Csv, &settings)
                .unwrap()
                .collect::<io::Result<_>>()
                .unwrap();
        let summary: Vec<(u64, &str)> = items
            .iter()
            .map(|item| match item {
                InputItem::Record { line, .. } => (*line, "tick"),
                InputItem::Unreadable { line, code, .. } => (*line, *code),
            })
            .collect();
        // The long row spans lines 3 and 4; the row after it keeps its own line number.
        assert_eq!(summary, [(2, "tick"), (3, "too_large"), (5, "tick")]);
        let InputItem::Unreadable { reason, raw, .. } = &items[1] else {
            unreachable!()
        };
        assert!(
            reason.contains(&format!("row of {} bytes", 2 * long.len() + 26)),
            "{reason}"
        );
        assert!(raw.len() < 300, "only the row's start is kept");
    }

    /// Found by fuzzing: a row that spells out a marker is a row like any other, and does not
    /// take the place of a real oversized row.
    #[test]
    fn a_row_that_looks_like_the_oversized_marker_is_only_data() {
        let csv = format!(
            "symbol,ts,price\n\0stockstream:too_large:0\n\0stockstream:too_large:{}\nES,{}1,1\n",
            "f".repeat(16),
            "9".repeat(2000)
        );
        let settings = CsvSettings {
            max_record_bytes: Some(1024),
            ..CsvSettings::default()
        };
        let items: Vec<(u64, &str)> =
            TickReader::with_settings(csv.as_bytes(), InputFormat::Csv, &settings)
                .unwrap()
                .map(|item| match item.unwrap() {
                    InputItem::Record { line, .. } => (line, "tick"),
                    InputItem::Unreadable { line, code, .. } => (line, code),
                })
                .collect();
        assert_eq!(
            items,
            [(2, "missing_field"), (3, "missing_field"), (4, "too_large")]
        );
    }

    #[test]
    fn a_header_over_the_record_limit_is_refused() {
        let csv = format!("symbol,ts,price{}\nES,1,1\n", ",x".repeat(600));
        let settings = CsvSettings {
            max_record_bytes: Some(1024),
            ..CsvSettings::default()
        };
        let error = TickReader::with_settings(csv.as_bytes(), InputFormat::Csv, &settings)
            .err()
            .expect("refused");
        assert!(error.to_string().contains("header"), "{error}");
    }

    #[test]
    fn an_unreadable_row_is_kept_with_its_quoting() {
        let csv = "symbol,ts,price,volume\n\"MS\"\"FT\",2024-01-02T14:30:00Z,\"1,000.5\",5\n";
        let items: Vec<InputItem> =
            TickReader::new(csv.as_bytes(), InputFormat::Csv, &CsvOptions::default())
                .unwrap()
                .collect::<io::Result<_>>()
                .unwrap();
        let [InputItem::Unreadable { raw, .. }] = &items[..] else {
            panic!("{items:?}");
        };
        assert_eq!(raw, "\"MS\"\"FT\",2024-01-02T14:30:00Z,\"1,000.5\",5");
        let back = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(raw.as_bytes())
            .records()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            ["MS\"FT", "2024-01-02T14:30:00Z", "1,000.5", "5"]
        );
    }
    use crate::input::{CsvOptions, InputFormat, TickReader, TimestampFormat};

    fn read(csv: &str, symbol: Option<&str>) -> Vec<InputItem> {
        let options = CsvOptions {
            symbol: symbol.map(str::to_owned),
        };
        TickReader::new(csv.as_bytes(), InputFormat::Csv, &options)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn read_with(csv: &str, settings: &CsvSettings) -> Vec<InputItem> {
        TickReader::with_settings(csv.as_bytes(), InputFormat::Csv, settings)
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
    fn daily_rows_expand_to_open_extremes_close() {
        let csv = "date,open,high,low,close,volume,Name\n\
                   2013-02-08,15.07,15.12,14.63,14.75,8407502,AAL\n\
                   2013-02-11,14.89,15.01,14.26,14.46,8882000,AAL\n\
                   2013-02-12,14.45,14.51,14.10,14.45,8126000,AAL\n";
        let settings = CsvSettings {
            ohlc_expand: true,
            ..CsvSettings::default()
        };
        let items = read_with(csv, &settings);
        let records: Vec<&str> = items.iter().map(record).collect();
        let day = 1_360_281_600_000_i64;
        let at = |d: i64, h: i64, m: i64| day + d * 86_400_000 + (h * 60 + m) * 60_000;
        assert_eq!(
            records[..4],
            [
                // Down day (close < open): open, high, low, close.
                format!(
                    r#"{{"symbol":"AAL","ts":{},"price":15.07,"volume":2101875}}"#,
                    at(0, 9, 30)
                ),
                format!(
                    r#"{{"symbol":"AAL","ts":{},"price":15.12,"volume":2101875}}"#,
                    at(0, 11, 40)
                ),
                format!(
                    r#"{{"symbol":"AAL","ts":{},"price":14.63,"volume":2101875}}"#,
                    at(0, 13, 50)
                ),
                format!(
                    r#"{{"symbol":"AAL","ts":{},"price":14.75,"volume":2101877}}"#,
                    at(0, 16, 0)
                ),
            ]
        );
        // Flat day (close == open) counts as up: open, low, high, close.
        assert!(records[9].contains("14.1"), "{}", records[9]);
        assert!(records[10].contains("14.51"), "{}", records[10]);
        // Every tick of a row carries the row's line.
        assert!(items[4..8]
            .iter()
            .all(|i| matches!(i, InputItem::Record { line: 3, .. })));
    }

    #[test]
    fn expanded_days_follow_the_time_zone() {
        let csv = "date,open,high,low,close,Name\n2013-07-01,1,3,0.5,2,X\n2013-12-02,1,3,0.5,2,X\n";
        let settings = CsvSettings {
            ohlc_expand: true,
            timestamps: Timestamps::new(
                TimestampFormat::Auto,
                Some(crate::input::parse_tz("America/New_York").unwrap()),
            ),
            ..CsvSettings::default()
        };
        let items = read_with(csv, &settings);
        // 09:30 EDT = 13:30Z; 16:00 EST = 21:00Z.
        assert!(record(&items[0]).contains(&(1_372_685_400_000_i64).to_string()));
        assert!(record(&items[7]).contains(&(1_386_018_000_000_i64).to_string()));
    }

    #[test]
    fn columns_can_be_named() {
        let csv = "when,sym,px,qty,other\n1378054800,ES,1.5,3,x\n";
        let settings = CsvSettings {
            columns: ColumnNames {
                symbol: Some("SYM".into()),
                ts: Some("when".into()),
                price: Some("px".into()),
                volume: Some("qty".into()),
            },
            ..CsvSettings::default()
        };
        let items = read_with(csv, &settings);
        assert_eq!(
            record(&items[0]),
            r#"{"symbol":"ES","ts":1378054800000,"price":1.5,"volume":3}"#
        );
        let bad = CsvSettings {
            columns: ColumnNames {
                price: Some("nope".into()),
                ts: Some("never".into()),
                ..ColumnNames::default()
            },
            ..CsvSettings::default()
        };
        let err = TickReader::with_settings(csv.as_bytes(), InputFormat::Csv, &bad)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("\"never\""),
            "{err}"
        );
    }

    #[test]
    fn symbol_ticker_timestamp_layouts() {
        let items = read(
            "ticker,timestamp,price\nMSFT,2013-09-01T17:00:00Z,10\n",
            None,
        );
        assert_eq!(
            record(&items[0]),
            r#"{"symbol":"MSFT","ts":1378054800000,"price":10.0}"#
        );
        let items = read("Symbol,TS,Price,Volume\nA,1378054800000,2,\n", None);
        assert_eq!(
            record(&items[0]),
            r#"{"symbol":"A","ts":1378054800000,"price":2.0}"#
        );
    }

    #[test]
    fn bad_rows_are_reported_with_their_line() {
        let items = read(
            "symbol,ts,price,volume\nA,1,abc,1\nB,2,3,1\nC,later,3,1\nD,3,4,1.5\nE,4\n",
            None,
        );
        let unreadable: Vec<(u64, &str, &str)> = items
            .iter()
            .filter_map(|i| match i {
                InputItem::Unreadable {
                    line, reason, code, ..
                } => Some((*line, code.to_owned(), reason.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(unreadable.len(), 4, "{unreadable:?}");
        assert_eq!(unreadable[0].0, 2);
        assert_eq!(unreadable[0].1, "bad_price");
        assert!(unreadable[0].2.contains("abc"));
        assert_eq!((unreadable[1].0, unreadable[1].1), (4, "bad_ts"));
        assert_eq!((unreadable[2].0, unreadable[2].1), (5, "bad_volume"));
        assert_eq!((unreadable[3].0, unreadable[3].1), (6, "missing_field"));
        assert_eq!(
            record(&items[1]),
            r#"{"symbol":"B","ts":2000,"price":3.0,"volume":1}"#
        );
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

    #[test]
    fn expansion_needs_ohlc_columns() {
        let settings = CsvSettings {
            ohlc_expand: true,
            symbol: Some("ES".into()),
            ..CsvSettings::default()
        };
        let err = TickReader::with_settings(&b"ts,price\n1,2\n"[..], InputFormat::Csv, &settings)
            .err()
            .unwrap();
        assert!(err.to_string().contains("open, high, low and close"));
    }
}
