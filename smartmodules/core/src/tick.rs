//! The raw tick: `{"symbol":"ES","ts":1378069200083,"price":1640.25,"volume":8}`.

use crate::json::{JsonError, ObjectFields, Value};

/// Longest accepted symbol, in characters.
pub const MAX_SYMBOL_LEN: usize = 32;

/// A valid tick, borrowing its symbol from the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick<'a> {
    /// 1 to 32 characters of `A-Z a-z 0-9 . _ : -`.
    pub symbol: &'a str,
    /// Event time, milliseconds since the Unix epoch (UTC), > 0.
    pub ts: i64,
    /// Finite and > 0.
    pub price: f64,
    /// >= 0; an absent or null volume is 0.
    pub volume: u64,
}

/// The four fields of a tick, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Symbol,
    Ts,
    Price,
    Volume,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Symbol => "symbol",
            Field::Ts => "ts",
            Field::Price => "price",
            Field::Volume => "volume",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a record is not a valid tick. Every rejection has one, and a stable [`code`](Self::code)
/// for counting by reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidTick {
    #[error("record is not UTF-8 (byte {0})")]
    NotUtf8(usize),
    #[error("{0}")]
    NotJson(JsonError),
    #[error("missing field `{0}`")]
    Missing(Field),
    #[error("field `{0}` appears more than once")]
    Duplicate(Field),
    #[error("field `{field}` must be {expected}")]
    WrongType { field: Field, expected: &'static str },
    #[error("symbol must be 1 to 32 characters, got {0}")]
    SymbolLength(usize),
    #[error("symbol may hold only A-Z a-z 0-9 . _ : - (found {0:?})")]
    SymbolCharacter(char),
    #[error("ts must be > 0 (milliseconds since the epoch), got {0}")]
    TsNotPositive(i64),
    #[error("price must be finite")]
    PriceNotFinite,
    #[error("price must be > 0, got {0}")]
    PriceNotPositive(f64),
    #[error("volume must be >= 0, got {0}")]
    VolumeNegative(i64),
}

impl InvalidTick {
    /// A short, stable name of the reason (for counters and dead-letter headers).
    pub fn code(&self) -> &'static str {
        match self {
            InvalidTick::NotUtf8(_) => "not_utf8",
            InvalidTick::NotJson(_) => "not_json",
            InvalidTick::Missing(_) => "missing_field",
            InvalidTick::Duplicate(_) => "duplicate_field",
            InvalidTick::WrongType { .. } => "wrong_type",
            InvalidTick::SymbolLength(_) => "bad_symbol",
            InvalidTick::SymbolCharacter(_) => "bad_symbol",
            InvalidTick::TsNotPositive(_) => "bad_ts",
            InvalidTick::PriceNotFinite => "bad_price",
            InvalidTick::PriceNotPositive(_) => "bad_price",
            InvalidTick::VolumeNegative(_) => "bad_volume",
        }
    }
}

impl From<JsonError> for InvalidTick {
    fn from(err: JsonError) -> Self {
        InvalidTick::NotJson(err)
    }
}

/// Parses and validates one record (a JSON object). Unknown fields are allowed and ignored.
pub fn parse_tick(record: &[u8]) -> Result<Tick<'_>, InvalidTick> {
    let text = std::str::from_utf8(record).map_err(|e| InvalidTick::NotUtf8(e.valid_up_to()))?;
    let mut fields = ObjectFields::new(text.as_bytes())?;
    let mut symbol = None;
    let mut ts = None;
    let mut price = None;
    let mut volume = None;
    while let Some((key, value)) = fields.next_field()? {
        let (slot_field, seen) = match key {
            b"symbol" => (Field::Symbol, symbol.is_some()),
            b"ts" => (Field::Ts, ts.is_some()),
            b"price" => (Field::Price, price.is_some()),
            b"volume" => (Field::Volume, volume.is_some()),
            _ => continue,
        };
        if seen {
            return Err(InvalidTick::Duplicate(slot_field));
        }
        match slot_field {
            Field::Symbol => symbol = Some(validate_symbol(value)?),
            Field::Ts => ts = Some(validate_ts(value)?),
            Field::Price => price = Some(validate_price(value)?),
            Field::Volume => volume = Some(validate_volume(value)?),
        }
    }
    Ok(Tick {
        symbol: symbol.ok_or(InvalidTick::Missing(Field::Symbol))?,
        ts: ts.ok_or(InvalidTick::Missing(Field::Ts))?,
        price: price.ok_or(InvalidTick::Missing(Field::Price))?,
        volume: volume.unwrap_or(0),
    })
}

/// Whether `symbol` follows the tick rule (1 to 32 chars of `A-Z a-z 0-9 . _ : -`).
pub fn check_symbol(symbol: &str) -> Result<(), InvalidTick> {
    if let Some(c) = symbol
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(InvalidTick::SymbolCharacter(c));
    }
    if symbol.is_empty() || symbol.len() > MAX_SYMBOL_LEN {
        return Err(InvalidTick::SymbolLength(symbol.chars().count()));
    }
    Ok(())
}

fn validate_symbol(value: Value<'_>) -> Result<&str, InvalidTick> {
    let Value::Str { raw, escaped } = value else {
        return Err(InvalidTick::WrongType {
            field: Field::Symbol,
            expected: "a string",
        });
    };
    if escaped {
        return Err(InvalidTick::SymbolCharacter('\\'));
    }
    // The record was checked as UTF-8 as a whole, and string contents end on char boundaries.
    let symbol = std::str::from_utf8(raw).map_err(|e| InvalidTick::NotUtf8(e.valid_up_to()))?;
    check_symbol(symbol)?;
    Ok(symbol)
}

fn validate_ts(value: Value<'_>) -> Result<i64, InvalidTick> {
    let wrong = InvalidTick::WrongType {
        field: Field::Ts,
        expected: "an integer number of milliseconds within i64",
    };
    let Value::Num(number) = value else {
        return Err(wrong);
    };
    let ts = number.to_i64().ok_or(wrong)?;
    if ts <= 0 {
        return Err(InvalidTick::TsNotPositive(ts));
    }
    Ok(ts)
}

fn validate_price(value: Value<'_>) -> Result<f64, InvalidTick> {
    let Value::Num(number) = value else {
        return Err(InvalidTick::WrongType {
            field: Field::Price,
            expected: "a number",
        });
    };
    let price = number.to_f64();
    if !price.is_finite() {
        return Err(InvalidTick::PriceNotFinite);
    }
    if price <= 0.0 {
        return Err(InvalidTick::PriceNotPositive(price));
    }
    Ok(price)
}

fn validate_volume(value: Value<'_>) -> Result<u64, InvalidTick> {
    let wrong = InvalidTick::WrongType {
        field: Field::Volume,
        expected: "an integer",
    };
    match value {
        Value::Null => Ok(0),
        Value::Num(number) => {
            let volume = number.to_i64().ok_or(wrong)?;
            u64::try_from(volume).map_err(|_| InvalidTick::VolumeNegative(volume))
        }
        _ => Err(wrong),
    }
}

/// The `symbols` parameter of `tick-filter`: which symbols pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchlist {
    /// Sorted, for binary search: watchlists are short.
    symbols: Vec<Box<str>>,
}

impl Watchlist {
    /// Parses `AAPL,MSFT` (spaces around names allowed). `None` means every symbol passes.
    pub fn from_param(value: Option<&str>) -> Result<Option<Self>, crate::ParamError> {
        let Some(value) = value else { return Ok(None) };
        let expected = "a comma-separated list of symbols (1 to 32 of A-Z a-z 0-9 . _ : -), e.g. AAPL,MSFT";
        let mut symbols = Vec::new();
        for name in value.split(',').map(str::trim) {
            check_symbol(name).map_err(|_| crate::ParamError::new("symbols", value, expected))?;
            symbols.push(Box::from(name));
        }
        symbols.sort_unstable();
        symbols.dedup();
        Ok(Some(Self { symbols }))
    }

    pub fn contains(&self, symbol: &str) -> bool {
        self.symbols.binary_search_by(|s| (**s).cmp(symbol)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(record: &str) -> String {
        parse_tick(record.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_tick_with_extra_fields() {
        let tick = parse_tick(
            br#"{"symbol":"BRK.B","venue":{"mic":"XNAS"},"ts":1378069200083,"price":1640.25,"volume":8}"#,
        )
        .unwrap();
        assert_eq!(
            tick,
            Tick {
                symbol: "BRK.B",
                ts: 1_378_069_200_083,
                price: 1640.25,
                volume: 8
            }
        );
    }

    #[test]
    fn volume_is_optional() {
        let tick = parse_tick(br#"{"symbol":"A","ts":1,"price":2}"#).unwrap();
        assert_eq!(tick.volume, 0);
        let tick = parse_tick(br#"{"symbol":"A","ts":1,"price":2,"volume":null}"#).unwrap();
        assert_eq!(tick.volume, 0);
    }

    #[test]
    fn every_rejection_says_why() {
        let cases = [
            ("not json", "not valid JSON"),
            (r#"[1,2]"#, "expected an object"),
            (r#"{"ts":1,"price":2}"#, "missing field `symbol`"),
            (r#"{"symbol":"A","price":2}"#, "missing field `ts`"),
            (r#"{"symbol":"A","ts":1}"#, "missing field `price`"),
            (r#"{"symbol":"A","ts":1,"ts":2,"price":2}"#, "`ts` appears more than once"),
            (r#"{"symbol":7,"ts":1,"price":2}"#, "`symbol` must be a string"),
            (r#"{"symbol":"","ts":1,"price":2}"#, "1 to 32 characters, got 0"),
            (&format!(r#"{{"symbol":"{}","ts":1,"price":2}}"#, "A".repeat(33)), "got 33"),
            (r#"{"symbol":"A B","ts":1,"price":2}"#, "found ' '"),
            (r#"{"symbol":"Ä","ts":1,"price":2}"#, "found 'Ä'"),
            (r#"{"symbol":"A\n","ts":1,"price":2}"#, "found '\\\\'"),
            (r#"{"symbol":"A","ts":"1","price":2}"#, "`ts` must be an integer"),
            (r#"{"symbol":"A","ts":1.5,"price":2}"#, "`ts` must be an integer"),
            (r#"{"symbol":"A","ts":0,"price":2}"#, "ts must be > 0"),
            (r#"{"symbol":"A","ts":-3,"price":2}"#, "got -3"),
            (r#"{"symbol":"A","ts":1,"price":"2"}"#, "`price` must be a number"),
            (r#"{"symbol":"A","ts":1,"price":null}"#, "`price` must be a number"),
            (r#"{"symbol":"A","ts":1,"price":1e999}"#, "price must be finite"),
            (r#"{"symbol":"A","ts":1,"price":0}"#, "price must be > 0"),
            (r#"{"symbol":"A","ts":1,"price":-1.5}"#, "got -1.5"),
            (r#"{"symbol":"A","ts":1,"price":2,"volume":-1}"#, "volume must be >= 0"),
            (r#"{"symbol":"A","ts":1,"price":2,"volume":1.5}"#, "`volume` must be an integer"),
            (r#"{"symbol":"A","ts":1,"price":2}trailing"#, "end of the record"),
        ];
        for (record, expected) in cases {
            let got = reason(record);
            assert!(got.contains(expected), "{record}: {got}");
        }
        assert_eq!(parse_tick(b"\xff{}").unwrap_err().code(), "not_utf8");
    }

    #[test]
    fn watchlist_parameter() {
        let list = Watchlist::from_param(Some("MSFT, AAPL,AAPL")).unwrap().unwrap();
        assert!(list.contains("AAPL") && list.contains("MSFT") && !list.contains("IBM"));
        assert_eq!(Watchlist::from_param(None).unwrap(), None);
        assert_eq!(Watchlist::from_param(Some("A,,B")).unwrap_err().param, "symbols");
        assert_eq!(Watchlist::from_param(Some("A B")).unwrap_err().param, "symbols");
    }
}
