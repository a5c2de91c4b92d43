//! What each fuzz target checks, for any input bytes. Every function panics on a broken
//! property, which is what libFuzzer reports as a crash; `tests/corpus.rs` replays the checked-in
//! corpus through the same functions in `cargo test`, so what a fuzzing run found stays fixed.
//!
//! The references are code nobody here wrote: serde_json for JSON, fluvio-protocol for the
//! batches an SPU hands a SmartModule.

use std::io::Cursor;
use std::path::Path;

use fluvio_protocol::record::Record as FluvioRecord;
use fluvio_protocol::Decoder;
use fluvio_smartmodule::dataplane::smartmodule::{SmartModuleInput, SmartModuleOutput};
use serde_json::{Map, Value as JsonValue};
use stockstream_core::bars::{BarsConfig, WindowBars};
use stockstream_core::json::{ObjectFields, Value};
use stockstream_core::rolling::{RollingConfig, RollingStats};
use stockstream_core::tick::{parse_tick, InvalidTick, Tick, MAX_PRICE, MAX_TS, MAX_VOLUME};
use stockstream_core::zscore::ZScoreConfig;
use stockstream_runner::ChainSpec;
use stockstream_smartmodule::{entry, wire, Scratch};
use stockstream_ticks::input::{CsvSettings, InputFormat, InputItem, TickReader};
use stockstream_ticks::{TimestampFormat, Timestamps};

/// Deepest nesting the scanner accepts (serde_json accepts 128).
const SCANNER_MAX_DEPTH: usize = 64;

/// A fuzz target's checks.
pub type Check = fn(&[u8]);

/// The fuzz targets by name, for the corpus replay.
pub const TARGETS: [(&str, Check); 4] = [
    ("tick_json", tick_json),
    ("tick_reader", tick_reader),
    ("transforms_file", transforms_file),
    ("smartmodule_batch", smartmodule_batch),
];

/// serde_json's verdict: `Ok` for an object, `Err(true)` for the refusals beyond JSON's grammar
/// that the scanner leaves to whoever decodes a value (lone surrogate escapes, numbers past
/// f64's range), `Err(false)` for anything else.
fn serde_object(bytes: &[u8]) -> Result<Map<String, JsonValue>, bool> {
    serde_json::from_slice(bytes).map_err(|e: serde_json::Error| {
        let message = e.to_string();
        ["surrogate", "end of hex escape", "number out of range"]
            .iter()
            .any(|m| message.contains(m))
    })
}

fn depth(value: &JsonValue) -> usize {
    match value {
        JsonValue::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        JsonValue::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The top-level fields the scanner finds, or its error.
fn scan(record: &[u8]) -> Result<Vec<(&[u8], Value<'_>)>, stockstream_core::json::JsonError> {
    let mut fields = ObjectFields::new(record)?;
    let mut found = Vec::new();
    while let Some(field) = fields.next_field()? {
        found.push(field);
    }
    Ok(found)
}

/// A string token's content as serde_json decodes it.
fn decoded(raw: &[u8]) -> String {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).expect("a string the scanner accepted decodes")
}

/// `parse_tick` and the JSON scanner on one record:
/// - the scanner accepts exactly the objects serde_json accepts (up to the nesting limit and
///   the refusals beyond the grammar), and reads each top-level value as serde_json does;
/// - `parse_tick`'s fast path for the producers' compact form and its general path agree;
/// - an accepted tick holds serde_json's values and is within the documented ranges, and a
///   record serde_json reads is never called malformed.
pub fn tick_json(record: &[u8]) {
    let shown = String::from_utf8_lossy(record);
    let serde = serde_object(record);
    let too_deep = matches!(&serde, Ok(map) if map.values().map(depth).max().unwrap_or(0) >= SCANNER_MAX_DEPTH);
    let utf8 = std::str::from_utf8(record).is_ok();
    match (scan(record), &serde) {
        (Ok(fields), Ok(map)) => {
            // The last of a repeated key is serde_json's value.
            for (index, (key, value)) in fields.iter().enumerate() {
                let key = decoded(key);
                let later = fields[index + 1..]
                    .iter()
                    .any(|(other, _)| decoded(other) == key);
                if !later {
                    same_value(value, &map[&key], &shown);
                }
            }
            assert_eq!(
                map.len(),
                fields
                    .iter()
                    .map(|(k, _)| decoded(k))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
                "{shown}"
            );
        }
        (Ok(_), Err(beyond_grammar)) => assert!(
            *beyond_grammar || !utf8,
            "the scanner accepts what serde_json refuses: {shown}"
        ),
        (Err(error), Ok(_)) => assert!(
            too_deep,
            "the scanner refuses ({error}) what serde_json reads: {shown}"
        ),
        (Err(_), Err(_)) => {}
    }

    let ours = parse_tick(record);
    // A leading space takes the general path whatever the record.
    let spaced = [b" ", record].concat();
    let general = parse_tick(&spaced);
    match (&ours, &general) {
        (Ok(fast), Ok(slow)) => assert_eq!(fast, slow, "{shown}"),
        (Err(fast), Err(slow)) => assert_eq!(fast.code(), slow.code(), "{shown}"),
        _ => panic!("the fast and general paths disagree on {shown}: {ours:?} / {general:?}"),
    }
    match (&ours, &serde) {
        (Ok(tick), Ok(map)) => same_tick(tick, map, &shown),
        (Ok(tick), Err(beyond_grammar)) => {
            assert!(*beyond_grammar, "a tick from invalid JSON: {shown}");
            in_range(tick, &shown);
        }
        (Err(InvalidTick::NotJson(_) | InvalidTick::NotUtf8(_)), Ok(_)) => {
            assert!(too_deep, "{shown} is JSON: {ours:?}")
        }
        _ => {}
    }
}

fn same_value(ours: &Value<'_>, theirs: &JsonValue, shown: &str) {
    match (ours, theirs) {
        (Value::Str { raw, escaped }, JsonValue::String(text)) => {
            if *escaped {
                assert_eq!(&decoded(raw), text, "{shown}");
            } else {
                assert_eq!(*raw, text.as_bytes(), "{shown}");
            }
        }
        (Value::Num(number), JsonValue::Number(theirs)) => {
            let theirs_f64 = theirs.as_f64().expect("finite");
            assert_eq!(number.to_f64(), theirs_f64, "{shown}");
            if let Some(theirs) = theirs.as_i64() {
                assert_eq!(number.to_i64(), Some(theirs), "{shown}");
            }
        }
        (Value::Bool(ours), JsonValue::Bool(theirs)) => assert_eq!(ours, theirs, "{shown}"),
        (Value::Null, JsonValue::Null) => {}
        (Value::Composite, JsonValue::Array(_) | JsonValue::Object(_)) => {}
        _ => panic!("{ours:?} read as {theirs:?} in {shown}"),
    }
}

fn same_tick(tick: &Tick<'_>, map: &Map<String, JsonValue>, shown: &str) {
    in_range(tick, shown);
    assert_eq!(map["symbol"].as_str(), Some(tick.symbol), "{shown}");
    assert_eq!(map["ts"].as_i64(), Some(tick.ts), "{shown}");
    assert_eq!(map["price"].as_f64(), Some(tick.price), "{shown}");
    let volume = map.get("volume").map_or(Some(0), |v| {
        // serde_json reads `-0` as a float.
        if v.is_null() || v.as_f64() == Some(0.0) {
            Some(0)
        } else {
            v.as_u64()
        }
    });
    assert_eq!(volume, Some(tick.volume), "{shown}");
}

fn in_range(tick: &Tick<'_>, shown: &str) {
    assert!(tick.ts > 0 && tick.ts < MAX_TS, "{shown}");
    assert!(tick.price > 0.0 && tick.price <= MAX_PRICE, "{shown}");
    assert!(tick.volume <= MAX_VOLUME, "{shown}");
}

/// The CSV and JSON-lines readers on a file, with the settings the first byte picks:
/// - nothing panics, and an error ends the file cleanly;
/// - line numbers never go back;
/// - no JSON line handed on is longer than the record limit;
/// - every record made from a CSV row is valid JSON (its tick may still be invalid: a bad
///   symbol is the tick filter's to reject), and its tick, when valid, is within range;
/// - timestamp parsing in every format never panics on any field.
pub fn tick_reader(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let format = if selector & 1 == 0 {
        InputFormat::JsonLines
    } else {
        InputFormat::Csv
    };
    let timestamp_format = match (selector >> 2) & 3 {
        0 => TimestampFormat::Auto,
        1 => TimestampFormat::Rfc3339,
        2 => TimestampFormat::EpochSeconds,
        _ => TimestampFormat::EpochMillis,
    };
    let limit = if selector & 64 != 0 { 64 } else { 4096 };
    let settings = CsvSettings {
        symbol: (selector & 2 != 0).then(|| "FZ".to_owned()),
        timestamps: Timestamps::new(timestamp_format, None),
        ohlc_expand: selector & 16 != 0,
        ohlc_bar_ms: (selector & 32 != 0).then_some(60_000),
        max_record_bytes: Some(limit),
        ..CsvSettings::default()
    };
    if let Ok(text) = std::str::from_utf8(input) {
        for field in text.split([',', '\n']).take(64) {
            for format in [
                TimestampFormat::Auto,
                TimestampFormat::Rfc3339,
                TimestampFormat::EpochSeconds,
                TimestampFormat::EpochMillis,
                TimestampFormat::Pattern("%d.%m.%Y %H:%M:%S%.f".to_owned()),
            ] {
                let _ = Timestamps::new(format, None).parse_ms(field);
            }
        }
    }
    let Ok(reader) = TickReader::with_settings(input, format, &settings) else {
        return;
    };
    let _ = reader.describe();
    let mut last_line = 0;
    // A file of n bytes holds at most n rows; four ticks per row when OHLC rows are expanded.
    for item in reader.take(4 * input.len() + 4) {
        let Ok(item) = item else { break };
        match item {
            InputItem::Record { line, value } => {
                assert!(line >= last_line, "line {line} after {last_line}");
                last_line = line;
                let shown = String::from_utf8_lossy(&value);
                match format {
                    InputFormat::JsonLines => assert!(value.len() <= limit, "{shown}"),
                    InputFormat::Csv => {
                        assert!(serde_object(&value).is_ok(), "not JSON: {shown}");
                        match parse_tick(&value) {
                            Ok(tick) => in_range(&tick, &shown),
                            Err(e @ (InvalidTick::NotJson(_) | InvalidTick::NotUtf8(_))) => {
                                panic!("{shown}: {e}")
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
            InputItem::Unreadable {
                line, reason, code, ..
            } => {
                assert!(line >= last_line, "line {line} after {last_line}");
                last_line = line;
                assert!(!reason.is_empty() && !code.is_empty());
            }
        }
    }
}

/// The transforms-file parser on any text: it refuses or gives a chain whose every step names
/// a module and whose parameters the modules accept; the window arithmetic those parameters
/// configure then holds for ticks at both ends of the accepted time range.
pub fn transforms_file(text: &[u8]) {
    let Ok(spec) = ChainSpec::from_yaml(text, Path::new("fuzz.yaml")) else {
        return;
    };
    assert!(!spec.steps.is_empty());
    let ticks = [
        (1, 1e-300, 0),
        (MAX_TS - 1, MAX_PRICE, MAX_VOLUME),
        (1, MAX_PRICE, MAX_VOLUME),
        (MAX_TS / 2, 1.0, 1),
        (MAX_TS - 1, 1e-300, 0),
    ]
    .map(|(ts, price, volume)| Tick {
        symbol: "FZ",
        ts,
        price,
        volume,
    });
    for step in &spec.steps {
        assert!(!step.module.is_empty());
        let param = |name: &str| step.params.get(name).map(String::as_str);
        if let Ok(config) = BarsConfig::from_params(param) {
            let mut bars = WindowBars::new(config);
            let mut out = Vec::new();
            for tick in &ticks {
                bars.push(tick, &mut out);
                for bar in out.drain(..) {
                    bar.write_json(&mut Vec::new());
                }
            }
        }
        if let Ok(config) = RollingConfig::from_params(param) {
            let mut stats = RollingStats::new(config);
            for tick in &ticks {
                let _ = stats.update(tick);
            }
        }
        let _ = ZScoreConfig::from_params(param);
    }
}

/// The SmartModule batch decoder against fluvio-protocol's: every input it accepts, at any
/// version the first byte picks, fluvio-protocol reads as the same records, and the bytes a
/// module writes back for them (through `put_record`) decode, with fluvio-protocol, to the
/// same records again.
pub fn smartmodule_batch(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let version = i16::from(selector % 26);
    let Ok(batch) = wire::Batch::decode(input, version) else {
        return;
    };
    let Ok(records) = batch.records().collect::<Result<Vec<_>, _>>() else {
        return;
    };
    // Accepted: every length in it is within the input, so fluvio-protocol's decoder (which
    // allocates whatever a length says) is safe to run on it.
    let theirs = SmartModuleInput::decode_from(&mut Cursor::new(input), version)
        .expect("fluvio-protocol reads an input the decoder accepts");
    assert_eq!(theirs.base_offset(), batch.base_offset);
    if version >= 22 {
        assert_eq!(theirs.base_timestamp(), batch.base_timestamp);
    }
    let their_records: Vec<FluvioRecord> =
        Decoder::decode_from(&mut Cursor::new(theirs.raw_bytes()), version)
            .expect("fluvio-protocol reads the records the decoder accepts");
    assert_eq!(records.len(), their_records.len());
    for (ours, theirs) in records.iter().zip(&their_records) {
        assert_eq!(ours.value, theirs.value.as_ref());
        assert_eq!(ours.key, theirs.key.as_ref().map(|k| k.as_ref()));
        assert_eq!(
            ours.offset,
            batch
                .base_offset
                .wrapping_add(theirs.preamble.offset_delta())
        );
        assert_eq!(
            ours.timestamp,
            batch
                .base_timestamp
                .wrapping_add(theirs.preamble.get_timestamp_delta())
        );
    }

    // A map module that hands every record on as it is: the output must carry them all.
    let mut out = Vec::new();
    let mut scratch = Scratch::new();
    let session = stockstream_smartmodule::Session::default();
    let status = entry::map(
        input,
        version,
        &mut out,
        &session,
        &mut scratch,
        |record, emit| {
            emit.value().extend_from_slice(record.value);
            Ok(())
        },
    );
    assert!(status >= 0, "map on an accepted input: status {status}");
    let output = SmartModuleOutput::decode_from(&mut Cursor::new(&out), version)
        .expect("fluvio-protocol reads the module's output");
    assert!(output.error.is_none());
    assert_eq!(output.successes.len(), records.len());
    for (ours, written) in records.iter().zip(&output.successes) {
        assert_eq!(ours.value, written.value.as_ref());
        assert_eq!(ours.key, written.key.as_ref().map(|k| k.as_ref()));
    }
    let _ = entry::look_back(input, version, &mut Vec::new(), |_| Ok(()));
}
