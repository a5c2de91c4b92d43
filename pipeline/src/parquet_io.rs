//! Parquet files of the derived streams, written with parquet's typed column writers (no arrow
//! dependency: the schemas are flat and fixed) and zstd, and read back for scoring.
//!
//! Types: `symbol`, `id`, `direction`, `severity` UTF-8 strings; `ts`, `window_start`, `window_end`,
//! `start_ts`, `end_ts`, `peak_ts` TIMESTAMP(MILLIS, UTC),
//! which pyarrow reads as `timestamp[ms, tz=UTC]`; prices and statistics double (nullable where
//! the spec allows null); volumes and counts int64; `anomaly`, `late` boolean.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::record::RowAccessor;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::Type;

use crate::outputs::{AlertRow, BarRow, ReturnStats, Rows, Stream, TickRow};

const TICK_SCHEMA: &str = "
message enriched_tick {
  required binary symbol (STRING);
  required int64 ts (TIMESTAMP(MILLIS,true));
  required double price;
  required int64 volume;
  optional double sma;
  optional int64 count;
  optional double vwap;
  optional double prev_mean;
  optional double prev_std;
  optional int64 prev_count;
  optional double z;
  required boolean anomaly;
  required boolean late;
}";

/// The columns a `basis: return` chain adds after the tick schema's.
const RETURN_COLUMNS: &str = "
  optional double ret;
  optional double ret_prev_mean;
  optional double ret_prev_std;
  optional int64 ret_prev_count;
";

const BAR_SCHEMA: &str = "
message bar {
  required binary symbol (STRING);
  required int64 window_start (TIMESTAMP(MILLIS,true));
  required int64 window_end (TIMESTAMP(MILLIS,true));
  required double open;
  required double high;
  required double low;
  required double close;
  required int64 volume;
  optional double vwap;
  required double mean;
  optional double std;
  required int64 count;
}";

const ALERT_SCHEMA: &str = "
message alert {
  required binary id (STRING);
  required binary symbol (STRING);
  required int64 start_ts (TIMESTAMP(MILLIS,true));
  required int64 end_ts (TIMESTAMP(MILLIS,true));
  required int64 count;
  required double peak_z;
  required int64 peak_ts (TIMESTAMP(MILLIS,true));
  required double peak_price;
  required binary direction (STRING);
  required binary severity (STRING);
}";

/// zstd level: 3 is zstd's own default, a good speed/size balance for numeric columns.
const ZSTD_LEVEL: i32 = 1;

fn schema(text: &'static str, cell: &'static OnceLock<Arc<Type>>) -> Arc<Type> {
    cell.get_or_init(|| Arc::new(parse_message_type(text).expect("the schema text is valid")))
        .clone()
}

fn tick_schema() -> Arc<Type> {
    static CELL: OnceLock<Arc<Type>> = OnceLock::new();
    schema(TICK_SCHEMA, &CELL)
}

fn return_tick_schema() -> Arc<Type> {
    static CELL: OnceLock<Arc<Type>> = OnceLock::new();
    CELL.get_or_init(|| {
        let base = TICK_SCHEMA.trim_end().strip_suffix('}').expect("a message");
        let text = format!("{base}{RETURN_COLUMNS}}}");
        Arc::new(parse_message_type(&text).expect("the schema text is valid"))
    })
    .clone()
}

fn bar_schema() -> Arc<Type> {
    static CELL: OnceLock<Arc<Type>> = OnceLock::new();
    schema(BAR_SCHEMA, &CELL)
}

fn alert_schema() -> Arc<Type> {
    static CELL: OnceLock<Arc<Type>> = OnceLock::new();
    schema(ALERT_SCHEMA, &CELL)
}

fn properties() -> Arc<WriterProperties> {
    Arc::new(
        WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(ZSTD_LEVEL).expect("valid level"),
            ))
            .set_created_by(format!("stockstream {}", env!("CARGO_PKG_VERSION")))
            .build(),
    )
}

const NO_RETURNS: ReturnStats = ReturnStats {
    ret: None,
    prev_mean: None,
    prev_std: None,
    prev_count: None,
};

/// Writes one column of required values.
fn required<T: DataType>(
    column: &mut SerializedColumnWriter<'_>,
    values: &[T::T],
) -> parquet::errors::Result<()> {
    column.typed::<T>().write_batch(values, None, None)?;
    Ok(())
}

/// Writes one column of nullable values (definition level 1 = present).
fn optional<T: DataType>(
    column: &mut SerializedColumnWriter<'_>,
    values: impl Iterator<Item = Option<T::T>>,
) -> parquet::errors::Result<()> {
    let mut present = Vec::new();
    let mut levels = Vec::new();
    for value in values {
        levels.push(i16::from(value.is_some()));
        present.extend(value);
    }
    column
        .typed::<T>()
        .write_batch(&present, Some(&levels), None)?;
    Ok(())
}

fn symbols<'a>(rows: impl Iterator<Item = &'a str>) -> Vec<ByteArray> {
    rows.map(|s| ByteArray::from(s.as_bytes().to_vec()))
        .collect()
}

/// Writes `rows` as one Parquet file (one row group) to `out`.
pub fn write_rows<W: Write + Send>(out: W, rows: &Rows) -> anyhow::Result<W> {
    match rows {
        Rows::Ticks(rows) => write_ticks(out, rows),
        Rows::Bars(rows) => write_bars(out, rows),
        Rows::Alerts(rows) => write_alerts(out, rows),
    }
}

fn write_alerts<W: Write + Send>(out: W, rows: &[AlertRow]) -> anyhow::Result<W> {
    let mut writer = SerializedFileWriter::new(out, alert_schema(), properties())?;
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        let r = rows.iter();
        match index {
            0 => required::<ByteArrayType>(&mut column, &symbols(r.map(|r| &*r.id)))?,
            1 => required::<ByteArrayType>(&mut column, &symbols(r.map(|r| &*r.symbol)))?,
            2 => required::<Int64Type>(&mut column, &r.map(|r| r.start_ts).collect::<Vec<_>>())?,
            3 => required::<Int64Type>(&mut column, &r.map(|r| r.end_ts).collect::<Vec<_>>())?,
            4 => required::<Int64Type>(&mut column, &r.map(|r| r.count).collect::<Vec<_>>())?,
            5 => required::<DoubleType>(&mut column, &r.map(|r| r.peak_z).collect::<Vec<_>>())?,
            6 => required::<Int64Type>(&mut column, &r.map(|r| r.peak_ts).collect::<Vec<_>>())?,
            7 => required::<DoubleType>(&mut column, &r.map(|r| r.peak_price).collect::<Vec<_>>())?,
            8 => required::<ByteArrayType>(&mut column, &symbols(r.map(|r| &*r.direction)))?,
            9 => required::<ByteArrayType>(&mut column, &symbols(r.map(|r| &*r.severity)))?,
            _ => unreachable!("the alert schema has 10 columns"),
        }
        column.close()?;
        index += 1;
    }
    group.close()?;
    Ok(writer.into_inner()?)
}

fn write_ticks<W: Write + Send>(out: W, rows: &[TickRow]) -> anyhow::Result<W> {
    // One chain makes all the rows of an outputs directory: all have returns, or none.
    let schema = if rows.iter().any(|r| r.returns.is_some()) {
        return_tick_schema()
    } else {
        tick_schema()
    };
    let ret = |r: &TickRow| r.returns.unwrap_or(NO_RETURNS);
    let mut writer = SerializedFileWriter::new(out, schema, properties())?;
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        let r = rows.iter();
        match index {
            0 => required::<ByteArrayType>(&mut column, &symbols(r.map(|r| &*r.symbol)))?,
            1 => required::<Int64Type>(&mut column, &r.map(|r| r.ts).collect::<Vec<_>>())?,
            2 => required::<DoubleType>(&mut column, &r.map(|r| r.price).collect::<Vec<_>>())?,
            3 => required::<Int64Type>(&mut column, &r.map(|r| r.volume).collect::<Vec<_>>())?,
            4 => optional::<DoubleType>(&mut column, r.map(|r| r.sma))?,
            5 => optional::<Int64Type>(&mut column, r.map(|r| r.count))?,
            6 => optional::<DoubleType>(&mut column, r.map(|r| r.vwap))?,
            7 => optional::<DoubleType>(&mut column, r.map(|r| r.prev_mean))?,
            8 => optional::<DoubleType>(&mut column, r.map(|r| r.prev_std))?,
            9 => optional::<Int64Type>(&mut column, r.map(|r| r.prev_count))?,
            10 => optional::<DoubleType>(&mut column, r.map(|r| r.z))?,
            11 => required::<BoolType>(&mut column, &r.map(|r| r.anomaly).collect::<Vec<_>>())?,
            12 => required::<BoolType>(&mut column, &r.map(|r| r.late).collect::<Vec<_>>())?,
            13 => optional::<DoubleType>(&mut column, r.map(|r| ret(r).ret))?,
            14 => optional::<DoubleType>(&mut column, r.map(|r| ret(r).prev_mean))?,
            15 => optional::<DoubleType>(&mut column, r.map(|r| ret(r).prev_std))?,
            16 => optional::<Int64Type>(&mut column, r.map(|r| ret(r).prev_count))?,
            _ => unreachable!("the tick schemas have 13 or 17 columns"),
        }
        column.close()?;
        index += 1;
    }
    group.close()?;
    Ok(writer.into_inner()?)
}

fn write_bars<W: Write + Send>(out: W, rows: &[BarRow]) -> anyhow::Result<W> {
    let mut writer = SerializedFileWriter::new(out, bar_schema(), properties())?;
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        let r = rows.iter();
        match index {
            0 => required::<ByteArrayType>(&mut column, &symbols(r.map(|r| &*r.symbol)))?,
            1 => {
                required::<Int64Type>(&mut column, &r.map(|r| r.window_start).collect::<Vec<_>>())?
            }
            2 => required::<Int64Type>(&mut column, &r.map(|r| r.window_end).collect::<Vec<_>>())?,
            3 => required::<DoubleType>(&mut column, &r.map(|r| r.open).collect::<Vec<_>>())?,
            4 => required::<DoubleType>(&mut column, &r.map(|r| r.high).collect::<Vec<_>>())?,
            5 => required::<DoubleType>(&mut column, &r.map(|r| r.low).collect::<Vec<_>>())?,
            6 => required::<DoubleType>(&mut column, &r.map(|r| r.close).collect::<Vec<_>>())?,
            7 => required::<Int64Type>(&mut column, &r.map(|r| r.volume).collect::<Vec<_>>())?,
            8 => optional::<DoubleType>(&mut column, r.map(|r| r.vwap))?,
            9 => required::<DoubleType>(&mut column, &r.map(|r| r.mean).collect::<Vec<_>>())?,
            10 => optional::<DoubleType>(&mut column, r.map(|r| r.std))?,
            11 => required::<Int64Type>(&mut column, &r.map(|r| r.count).collect::<Vec<_>>())?,
            _ => unreachable!("the bar schema has 12 columns"),
        }
        column.close()?;
        index += 1;
    }
    group.close()?;
    Ok(writer.into_inner()?)
}

/// `(symbol, ts)` of every row of a tick file (enriched or anomalies), in file order.
pub fn read_symbol_ts(path: &Path) -> anyhow::Result<Vec<(Box<str>, i64)>> {
    read_symbol_ts_from(File::open(path)?)
}

/// [`read_symbol_ts`] of a file's contents (a file, or the bytes of an object).
pub fn read_symbol_ts_from<R: ChunkReader + 'static>(
    contents: R,
) -> anyhow::Result<Vec<(Box<str>, i64)>> {
    let reader = SerializedFileReader::new(contents)?;
    let schema = reader.metadata().file_metadata().schema();
    let fields: Vec<_> = ["symbol", "ts"]
        .iter()
        .map(|name| {
            schema
                .get_fields()
                .iter()
                .find(|f| f.name() == *name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no `{name}` column: not a tick file"))
        })
        .collect::<anyhow::Result<_>>()?;
    let projection = Type::group_type_builder(schema.name())
        .with_fields(fields)
        .build()?;
    let mut out = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for row in reader.get_row_iter(Some(projection))? {
        let row = row?;
        out.push((
            row.get_string(0)?.as_str().into(),
            row.get_timestamp_millis(1)?,
        ));
    }
    Ok(out)
}

/// Every row of a file of `stream` written by [`write_rows`], in file order (for readers
/// of the outputs, such as the dashboard's history; not a hot path).
pub fn read_rows(path: &Path, stream: Stream) -> anyhow::Result<Rows> {
    read_rows_from(File::open(path)?, &path.display().to_string(), stream)
}

/// [`read_rows`] of a file's contents (a file, or the bytes of an object), `shown` in messages.
pub fn read_rows_from<R: ChunkReader + 'static>(
    contents: R,
    shown: &str,
    stream: Stream,
) -> anyhow::Result<Rows> {
    use parquet::record::Field;
    let reader = SerializedFileReader::new(contents)?;
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let index = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| anyhow::anyhow!("{}: no `{name}` column", shown))
    };
    let mut ticks = Vec::new();
    let mut bars = Vec::new();
    let mut alerts = Vec::new();
    for row in reader.get_row_iter(None)? {
        let row = row?;
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let int = |name: &str| -> anyhow::Result<Option<i64>> {
            Ok(match fields[index(name)?] {
                Field::Long(v) | Field::TimestampMillis(v) => Some(*v),
                _ => None,
            })
        };
        let float = |name: &str| -> anyhow::Result<Option<f64>> {
            Ok(match fields[index(name)?] {
                Field::Double(v) => Some(*v),
                _ => None,
            })
        };
        let flag = |name: &str| -> anyhow::Result<bool> {
            Ok(matches!(fields[index(name)?], Field::Bool(true)))
        };
        let required = |value: Option<f64>, name: &str| {
            value.ok_or_else(|| anyhow::anyhow!("{}: `{name}` is null", shown))
        };
        let text = |name: &str| -> anyhow::Result<Box<str>> {
            match fields[index(name)?] {
                Field::Str(s) => Ok(s.as_str().into()),
                _ => anyhow::bail!("{}: `{name}` is not a string", shown),
            }
        };
        let symbol = text("symbol")?;
        let int_required =
            |name: &str| int(name)?.ok_or_else(|| anyhow::anyhow!("{}: `{name}` is null", shown));
        if stream == Stream::Alerts {
            alerts.push(AlertRow {
                id: text("id")?,
                symbol,
                start_ts: int_required("start_ts")?,
                end_ts: int_required("end_ts")?,
                count: int_required("count")?,
                peak_z: required(float("peak_z")?, "peak_z")?,
                peak_ts: int_required("peak_ts")?,
                peak_price: required(float("peak_price")?, "peak_price")?,
                direction: text("direction")?,
                severity: text("severity")?,
            });
        } else if stream.is_bars() {
            bars.push(BarRow {
                symbol,
                window_start: int_required("window_start")?,
                window_end: int_required("window_end")?,
                open: required(float("open")?, "open")?,
                high: required(float("high")?, "high")?,
                low: required(float("low")?, "low")?,
                close: required(float("close")?, "close")?,
                volume: int_required("volume")?,
                vwap: float("vwap")?,
                mean: required(float("mean")?, "mean")?,
                std: float("std")?,
                count: int_required("count")?,
            });
        } else {
            ticks.push(TickRow {
                symbol,
                ts: int_required("ts")?,
                price: required(float("price")?, "price")?,
                volume: int_required("volume")?,
                sma: float("sma")?,
                count: int("count")?,
                vwap: float("vwap")?,
                prev_mean: float("prev_mean")?,
                prev_std: float("prev_std")?,
                prev_count: int("prev_count")?,
                z: float("z")?,
                anomaly: flag("anomaly")?,
                late: flag("late")?,
                returns: match index("ret") {
                    Err(_) => None,
                    Ok(_) => Some(ReturnStats {
                        ret: float("ret")?,
                        prev_mean: float("ret_prev_mean")?,
                        prev_std: float("ret_prev_std")?,
                        prev_count: int("ret_prev_count")?,
                    }),
                },
            });
        }
    }
    Ok(match stream {
        Stream::Alerts => Rows::Alerts(alerts),
        Stream::Bars => Rows::Bars(bars),
        Stream::Enriched | Stream::Anomalies => Rows::Ticks(ticks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_ticks() {
        let rows = vec![
            TickRow {
                symbol: "ES".into(),
                ts: 1_378_054_800_083,
                price: 1640.25,
                volume: 8,
                sma: Some(1640.25),
                count: Some(1),
                vwap: None,
                prev_mean: None,
                prev_std: None,
                prev_count: Some(0),
                z: None,
                anomaly: false,
                late: false,
                returns: None,
            };
            3
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_rows(File::create(&path).unwrap(), &Rows::Ticks(rows.clone())).unwrap();
        let back = read_symbol_ts(&path).unwrap();
        assert_eq!(back, vec![("ES".into(), 1_378_054_800_083); 3]);
        assert_eq!(
            read_rows(&path, Stream::Enriched).unwrap(),
            Rows::Ticks(rows.clone())
        );
    }

    #[test]
    fn ticks_of_a_return_basis_chain_keep_their_return_statistics() {
        let row = |ret: Option<f64>, count| TickRow {
            symbol: "ES".into(),
            ts: 1_000,
            price: 10.0,
            volume: 1,
            sma: Some(10.0),
            count: Some(1),
            vwap: Some(10.0),
            prev_mean: None,
            prev_std: None,
            prev_count: Some(0),
            z: ret.map(|r| r * 2.0),
            anomaly: false,
            late: false,
            returns: Some(ReturnStats {
                ret,
                prev_mean: ret.map(|r| r / 2.0),
                prev_std: None,
                prev_count: count,
            }),
        };
        let rows = vec![
            row(None, Some(0)),
            row(Some(0.01), Some(21)),
            row(None, None),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        write_rows(File::create(&path).unwrap(), &Rows::Ticks(rows.clone())).unwrap();
        assert_eq!(
            read_rows(&path, Stream::Enriched).unwrap(),
            Rows::Ticks(rows)
        );
    }

    #[test]
    fn writes_and_reads_back_alerts() {
        let rows = vec![AlertRow {
            id: "MSFT@1000".into(),
            symbol: "MSFT".into(),
            start_ts: 1000,
            end_ts: 2200,
            count: 23,
            peak_z: -11.3,
            peak_ts: 1400,
            peak_price: 239.1,
            direction: "down".into(),
            severity: "critical".into(),
        }];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write_rows(File::create(&path).unwrap(), &Rows::Alerts(rows.clone())).unwrap();
        assert_eq!(
            read_rows(&path, Stream::Alerts).unwrap(),
            Rows::Alerts(rows)
        );
    }
}
