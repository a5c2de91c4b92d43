//! The raw tick: `{"symbol":"ES","ts":1378069200083,"price":1640.25,"volume":8}`.

use crate::json::{
    key_is, leading_digits, simple_decimal, strip_literal, JsonError, ObjectFields, Value,
};

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

/// The first millisecond a tick may not have: 2200-01-01T00:00:00Z. Far beyond any market
/// data, and it keeps every window sum (`ts + size`, `ts - W`, watermarks) far from overflow;
/// a larger value is almost always seconds, microseconds or nanoseconds taken for ms.
pub const MAX_TS: i64 = 7_258_118_400_000;

/// Largest price and volume a tick may have. No instrument trades near either, and they keep
/// every window's sums finite and exact: a notional of at most 1e24 per tick, and a volume sum
/// (saturating) that would need 18 million such ticks in one window to reach `u64::MAX`.
pub const MAX_PRICE: f64 = 1e12;
pub const MAX_VOLUME: u64 = 1_000_000_000_000;

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
    WrongType {
        field: Field,
        expected: &'static str,
    },
    #[error("symbol must be 1 to 32 characters, got {0}")]
    SymbolLength(usize),
    #[error("symbol may hold only A-Z a-z 0-9 . _ : - (found {0:?})")]
    SymbolCharacter(char),
    #[error("ts must be > 0 (milliseconds since the epoch), got {0}")]
    TsNotPositive(i64),
    #[error("ts must be before the year 2200 in milliseconds since the epoch, got {0} (seconds, microseconds or nanoseconds?)")]
    TsOutOfRange(i64),
    #[error("price must be finite")]
    PriceNotFinite,
    #[error("price must be > 0, got {0}")]
    PriceNotPositive(f64),
    #[error("price must be at most 1e12, got {0}")]
    PriceTooLarge(f64),
    #[error("volume must be >= 0, got {0}")]
    VolumeNegative(i64),
    #[error("volume must be at most 1e12, got {0}")]
    VolumeTooLarge(i64),
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
            InvalidTick::TsNotPositive(_) | InvalidTick::TsOutOfRange(_) => "bad_ts",
            InvalidTick::PriceNotFinite => "bad_price",
            InvalidTick::PriceNotPositive(_) | InvalidTick::PriceTooLarge(_) => "bad_price",
            InvalidTick::VolumeNegative(_) | InvalidTick::VolumeTooLarge(_) => "bad_volume",
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
    match compact_tick(record) {
        Some(tick) => Ok(tick),
        None => parse_any_tick(record),
    }
}

/// [`parse_tick`] for records of any shape.
fn parse_any_tick(record: &[u8]) -> Result<Tick<'_>, InvalidTick> {
    match scan_tick(record) {
        // Every byte was scanned and all were ASCII: the record is UTF-8.
        Ok((tick, true)) => Ok(tick),
        // Invalid UTF-8 anywhere is the reason, whatever else is wrong, as if the whole record
        // had been checked first (errors and non-ASCII records are rare: this pass is too).
        other => {
            std::str::from_utf8(record).map_err(|e| InvalidTick::NotUtf8(e.valid_up_to()))?;
            other.map(|(tick, _)| tick)
        }
    }
}

/// The shape producers write, read directly:
/// `{"symbol":"ES","ts":1378069200083,"price":1640.25,"volume":8}` exactly, with no whitespace,
/// these fields in this order (volume optional), a valid symbol, a ts of 1 to 18 digits, a
/// positive decimal price within the fast conversion's reach and a volume of at most 18
/// digits. Anything else is `None` and goes to the general path. What this accepts is all
/// ASCII, valid JSON and a valid tick, and the general path would return the same values.
#[inline(always)]
fn compact_tick(record: &[u8]) -> Option<Tick<'_>> {
    let rest = strip_literal(record, b"{\"symbol\":\"")?;
    let len = rest
        .iter()
        .take(MAX_SYMBOL_LEN + 1)
        .position(|&b| !SYMBOL_BYTES[usize::from(b)])?;
    if len == 0 || rest[len] != b'"' {
        return None;
    }
    let symbol = std::str::from_utf8(&rest[..len]).ok()?;
    let rest = strip_literal(&rest[len..], b"\",\"ts\":")?;
    let (ts, n) = leading_digits(rest);
    if n == 0 || n > 18 || rest[0] == b'0' || ts >= MAX_TS as u64 {
        return None;
    }
    let rest = strip_literal(&rest[n..], b",\"price\":")?;
    let (price, rest) = simple_decimal(rest)?;
    if price <= 0.0 || price > MAX_PRICE {
        return None;
    }
    let (volume, rest) = match strip_literal(rest, b",\"volume\":") {
        Some(rest) => {
            let (volume, n) = leading_digits(rest);
            if n == 0 || n > 18 || (n > 1 && rest[0] == b'0') || volume > MAX_VOLUME {
                return None;
            }
            (volume, &rest[n..])
        }
        None => (0, rest),
    };
    if rest.len() != 1 || rest[0] != b'}' {
        return None;
    }
    Some(Tick {
        symbol,
        ts: ts as i64,
        price,
        volume,
    })
}

/// The tick, and whether the record is all ASCII; does not check UTF-8 itself.
#[inline(always)]
fn scan_tick(record: &[u8]) -> Result<(Tick<'_>, bool), InvalidTick> {
    let mut fields = ObjectFields::new(record)?;
    let mut symbol = None;
    let mut ts = None;
    let mut price = None;
    let mut volume = None;
    while let Some((key, value)) = fields.next_field()? {
        let field = match key.len() {
            2 if key_is(key, b"ts") => Field::Ts,
            5 if key_is(key, b"price") => Field::Price,
            6 if key_is(key, b"symbol") => Field::Symbol,
            6 if key_is(key, b"volume") => Field::Volume,
            _ => match escaped_field_name(key) {
                Some(field) => field,
                None => continue,
            },
        };
        let seen = match field {
            Field::Ts => ts.is_some(),
            Field::Price => price.is_some(),
            Field::Symbol => symbol.is_some(),
            Field::Volume => volume.is_some(),
        };
        if seen {
            return Err(InvalidTick::Duplicate(field));
        }
        match field {
            Field::Symbol => symbol = Some(validate_symbol(value)?),
            Field::Ts => ts = Some(validate_ts(value)?),
            Field::Price => price = Some(validate_price(value)?),
            Field::Volume => volume = Some(validate_volume(value)?),
        }
    }
    let tick = Tick {
        symbol: symbol.ok_or(InvalidTick::Missing(Field::Symbol))?,
        ts: ts.ok_or(InvalidTick::Missing(Field::Ts))?,
        price: price.ok_or(InvalidTick::Missing(Field::Price))?,
        volume: volume.unwrap_or(0),
    };
    Ok((tick, fields.ascii_so_far()))
}

/// The field a key with escapes names once decoded (`"s\u0079mbol"` is `symbol` to every JSON
/// reader). Taking it for an unknown field would let a second `symbol` through, which readers
/// of the output then see instead of, or beside, the one the statistics used.
#[cold]
fn escaped_field_name(key: &[u8]) -> Option<Field> {
    // The longest name, "volume", is 6 characters of at most 6 bytes each (`\uXXXX`).
    if key.len() > 36 || !key.contains(&b'\\') {
        return None;
    }
    let mut name = [0u8; 6];
    let mut len = 0;
    let mut rest = key;
    while let Some((&byte, tail)) = rest.split_first() {
        let (decoded, tail) = match (byte, tail) {
            (b'\\', [b'u', a, b, c, d, tail @ ..]) => {
                let unit = [a, b, c, d].into_iter().try_fold(0u32, |unit, &digit| {
                    Some(unit * 16 + char::from(digit).to_digit(16)?)
                })?;
                // Field names are ASCII: a larger code unit decodes to something else.
                (u8::try_from(unit).ok()?, tail)
            }
            (b'\\', [escape, tail @ ..]) => {
                let decoded = match escape {
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    other => *other,
                };
                (decoded, tail)
            }
            _ => (byte, tail),
        };
        *name.get_mut(len)? = decoded;
        len += 1;
        rest = tail;
    }
    match &name[..len] {
        b"ts" => Some(Field::Ts),
        b"price" => Some(Field::Price),
        b"symbol" => Some(Field::Symbol),
        b"volume" => Some(Field::Volume),
        _ => None,
    }
}

/// The bytes a symbol may hold: `A-Z a-z 0-9 . _ : -`.
pub(crate) static SYMBOL_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-');
        b += 1;
    }
    table
};

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
    if (1..=MAX_SYMBOL_LEN).contains(&raw.len())
        && raw.iter().all(|&b| SYMBOL_BYTES[usize::from(b)])
    {
        // ASCII, so this cannot fail; it is cheap on a few bytes.
        return std::str::from_utf8(raw).map_err(|e| InvalidTick::NotUtf8(e.valid_up_to()));
    }
    // The slow path finds the first bad character, or counts characters for the length
    // error. An invalid UTF-8 symbol gives some error here; parse_tick then reports the record's.
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
    if ts >= MAX_TS {
        return Err(InvalidTick::TsOutOfRange(ts));
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
    if price > MAX_PRICE {
        return Err(InvalidTick::PriceTooLarge(price));
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
            if volume > MAX_VOLUME as i64 {
                return Err(InvalidTick::VolumeTooLarge(volume));
            }
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
        let expected =
            "a comma-separated list of symbols (1 to 32 of A-Z a-z 0-9 . _ : -), e.g. AAPL,MSFT";
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
            (
                r#"{"symbol":"A","ts":1,"ts":2,"price":2}"#,
                "`ts` appears more than once",
            ),
            (
                r#"{"symbol":7,"ts":1,"price":2}"#,
                "`symbol` must be a string",
            ),
            (
                r#"{"symbol":"","ts":1,"price":2}"#,
                "1 to 32 characters, got 0",
            ),
            (
                &format!(r#"{{"symbol":"{}","ts":1,"price":2}}"#, "A".repeat(33)),
                "got 33",
            ),
            (r#"{"symbol":"A B","ts":1,"price":2}"#, "found ' '"),
            (r#"{"symbol":"Ä","ts":1,"price":2}"#, "found 'Ä'"),
            (r#"{"symbol":"A\n","ts":1,"price":2}"#, "found '\\\\'"),
            (
                r#"{"symbol":"A","ts":"1","price":2}"#,
                "`ts` must be an integer",
            ),
            (
                r#"{"symbol":"A","ts":1.5,"price":2}"#,
                "`ts` must be an integer",
            ),
            (r#"{"symbol":"A","ts":0,"price":2}"#, "ts must be > 0"),
            (r#"{"symbol":"A","ts":-3,"price":2}"#, "got -3"),
            // The poison pill of issue 13: a ts no window arithmetic can hold.
            (
                r#"{"symbol":"AAPL","ts":9223372036854775807,"price":10,"volume":1}"#,
                "before the year 2200",
            ),
            (
                r#"{"symbol":"A","ts":1700000000000000000,"price":2}"#,
                "nanoseconds?",
            ),
            (
                r#"{"symbol":"A","ts":7258118400000,"price":2}"#,
                "got 7258118400000",
            ),
            (
                r#"{"symbol":"A","ts":1,"price":"2"}"#,
                "`price` must be a number",
            ),
            (
                r#"{"symbol":"A","ts":1,"price":null}"#,
                "`price` must be a number",
            ),
            (
                r#"{"symbol":"A","ts":1,"price":1e999}"#,
                "price must be finite",
            ),
            (r#"{"symbol":"A","ts":1,"price":0}"#, "price must be > 0"),
            // The vwap overflow of issue 13: bounded at validation.
            (
                r#"{"symbol":"A","ts":1,"price":1e308,"volume":1}"#,
                "at most 1e12",
            ),
            (
                r#"{"symbol":"A","ts":1,"price":2,"volume":9223372036854775807}"#,
                "volume must be at most 1e12",
            ),
            (r#"{"symbol":"A","ts":1,"price":-1.5}"#, "got -1.5"),
            (
                r#"{"symbol":"A","ts":1,"price":2,"volume":-1}"#,
                "volume must be >= 0",
            ),
            (
                r#"{"symbol":"A","ts":1,"price":2,"volume":1.5}"#,
                "`volume` must be an integer",
            ),
            (
                r#"{"symbol":"A","ts":1,"price":2}trailing"#,
                "end of the record",
            ),
        ];
        for (record, expected) in cases {
            let got = reason(record);
            assert!(got.contains(expected), "{record}: {got}");
        }
        assert_eq!(parse_tick(b"\xff{}").unwrap_err().code(), "not_utf8");
    }

    /// Found writing the fuzz check against serde_json: a key written with escapes is the field it
    /// decodes to, so a second `symbol` cannot hide behind `s\u0079mbol` and reach the outputs.
    #[test]
    fn an_escaped_key_is_the_field_it_decodes_to() {
        let tick =
            parse_tick(br#"{"s\u0079mbol":"A","t\u0073":5,"pric\u0065":2,"vol\/ume":1}"#).unwrap();
        assert_eq!(
            (tick.symbol, tick.ts, tick.price, tick.volume),
            ("A", 5, 2.0, 0)
        );
        let duplicate = parse_tick(br#"{"symbol":"A","s\u0079mbol":"B","ts":1,"price":2}"#);
        assert_eq!(duplicate, Err(InvalidTick::Duplicate(Field::Symbol)));
        // `\b` is a backspace, not the letter b.
        let other = parse_tick(br#"{"symbol":"A","sym\bol":"B","ts":1,"price":2}"#).unwrap();
        assert_eq!(other.symbol, "A");
    }

    #[test]
    fn watchlist_parameter() {
        let list = Watchlist::from_param(Some("MSFT, AAPL,AAPL"))
            .unwrap()
            .unwrap();
        assert!(list.contains("AAPL") && list.contains("MSFT") && !list.contains("IBM"));
        assert_eq!(Watchlist::from_param(None).unwrap(), None);
        assert_eq!(
            Watchlist::from_param(Some("A,,B")).unwrap_err().param,
            "symbols"
        );
        assert_eq!(
            Watchlist::from_param(Some("A B")).unwrap_err().param,
            "symbols"
        );
    }

    mod properties {
        use super::*;
        use crate::json::strategies::{
            mutated, number_token, object, serde_object, string_token, value_token,
        };
        use proptest::prelude::*;

        /// A value token as the spec reads it, decoded with serde_json (strings) and the
        /// standard library (numbers, correctly rounded, any range).
        enum Token {
            Str { text: String, escaped: bool },
            Num { token: String },
            Null,
            Other,
        }

        fn token(value: &str) -> Token {
            match value.as_bytes()[0] {
                b'"' => Token::Str {
                    text: serde_json::from_str(value).expect("valid string token"),
                    escaped: value.contains('\\'),
                },
                b'-' | b'0'..=b'9' => Token::Num {
                    token: value.to_owned(),
                },
                b'n' => Token::Null,
                _ => Token::Other,
            }
        }

        /// An integer literal whose magnitude fits i64.
        fn integer(token: &str) -> Option<i64> {
            if token.contains(['.', 'e', 'E']) {
                return None;
            }
            token.parse::<i64>().ok().filter(|v| *v != i64::MIN)
        }

        type Expected = Result<(String, i64, u64, u64), &'static str>;

        /// The spec's tick rules applied to a record's `(key, value)` tokens in order.
        fn reference(fields: &[(String, String)]) -> Expected {
            let (mut symbol, mut ts, mut price, mut volume) = (None, None, None, None);
            for (key, value) in fields {
                let value = token(value);
                // Keys as every JSON reader decodes them (`"s\u0079mbol"` is `symbol`).
                let key: String = serde_json::from_str(key).expect("valid key token");
                match key.as_str() {
                    "symbol" => {
                        if symbol.is_some() {
                            return Err("duplicate_field");
                        }
                        let Token::Str { text, escaped } = value else {
                            return Err("wrong_type");
                        };
                        let allowed = |c: char| c.is_ascii_alphanumeric() || ".:_-".contains(c);
                        if escaped || !text.chars().all(allowed) || !(1..=32).contains(&text.len())
                        {
                            return Err("bad_symbol");
                        }
                        symbol = Some(text);
                    }
                    "ts" => {
                        if ts.is_some() {
                            return Err("duplicate_field");
                        }
                        let Token::Num { token } = value else {
                            return Err("wrong_type");
                        };
                        let t = integer(&token).ok_or("wrong_type")?;
                        ts = Some(if t > 0 && t < MAX_TS {
                            t
                        } else {
                            return Err("bad_ts");
                        });
                    }
                    "price" => {
                        if price.is_some() {
                            return Err("duplicate_field");
                        }
                        let Token::Num { token } = value else {
                            return Err("wrong_type");
                        };
                        let p: f64 = token.parse().expect("JSON numbers parse");
                        price = Some(if p.is_finite() && p > 0.0 && p <= MAX_PRICE {
                            p
                        } else {
                            return Err("bad_price");
                        });
                    }
                    "volume" => {
                        if volume.is_some() {
                            return Err("duplicate_field");
                        }
                        volume = Some(match value {
                            Token::Null => 0,
                            Token::Num { token } => {
                                let v = integer(&token).ok_or("wrong_type")?;
                                let v = u64::try_from(v).map_err(|_| "bad_volume")?;
                                if v > MAX_VOLUME {
                                    return Err("bad_volume");
                                }
                                v
                            }
                            _ => return Err("wrong_type"),
                        });
                    }
                    _ => {}
                }
            }
            let symbol = symbol.ok_or("missing_field")?;
            let ts = ts.ok_or("missing_field")?;
            let price = price.ok_or("missing_field")?;
            Ok((symbol, ts, price.to_bits(), volume.unwrap_or(0)))
        }

        fn key(name: &'static str) -> String {
            format!("\"{name}\"")
        }

        /// The four fields (mostly well-formed, sometimes not), extra fields and now and then
        /// a repeated one, in any order.
        fn tick_fields() -> impl Strategy<Value = Vec<(String, String)>> {
            let symbol = prop_oneof![
                6 => "\"[A-Za-z0-9._:-]{0,34}\"",
                1 => string_token(),
                1 => value_token(),
            ];
            let ts = prop_oneof![
                6 => "[1-9][0-9]{0,18}",
                1 => "-?(0|[1-9][0-9]{0,20})",
                1 => number_token(),
                1 => value_token(),
            ];
            let price = prop_oneof![
                6 => number_token(),
                1 => value_token(),
            ];
            let volume = prop_oneof![
                4 => "(0|[1-9][0-9]{0,20})",
                1 => Just("null".to_owned()),
                1 => number_token(),
                1 => value_token(),
            ];
            let extra = prop_oneof![
                (string_token(), value_token()),
                (Just(key("volume")), "[1-9][0-9]{0,2}"),
                (Just(key("ts")), "[1-9][0-9]{0,12}"),
                (
                    Just("\"s\\u0079mbol\"".to_owned()),
                    Just("\"X\"".to_owned())
                ),
            ];
            (
                symbol,
                ts,
                price,
                prop::option::weighted(0.8, volume),
                prop::collection::vec(extra, 0..3),
            )
                .prop_map(|(symbol, ts, price, volume, extra)| {
                    let mut fields = vec![
                        (key("symbol"), symbol),
                        (key("ts"), ts),
                        (key("price"), price),
                    ];
                    fields.extend(volume.map(|v| (key("volume"), v)));
                    fields.extend(extra);
                    fields
                })
                .prop_shuffle()
        }

        fn outcome(record: &[u8]) -> Expected {
            parse_tick(record)
                .map(|t| (t.symbol.to_owned(), t.ts, t.price.to_bits(), t.volume))
                .map_err(|e| e.code())
        }

        /// Records in (or one edit away from) the compact shape [`compact_tick`] reads.
        fn compact_record() -> impl Strategy<Value = Vec<u8>> {
            let symbol = prop_oneof!["[A-Za-z0-9._:-]{0,34}", "[A-Z]{1,3}[ \"\\\\é/]?"];
            let int = || prop_oneof!["[0-9]{1,20}", number_token(), Just("null".to_owned())];
            let price = prop_oneof![
                "[0-9]{1,10}(\\.[0-9]{1,12})?",
                "[0-9]{1,20}\\.[0-9]{0,20}",
                number_token()
            ];
            let end = prop::sample::select(vec!["}", "}", "}", "} ", "}\n", "}x", ",}", ""]);
            let record = (symbol, int(), price, prop::option::of(int()), end).prop_map(
                |(symbol, ts, price, volume, end)| {
                    let volume = volume
                        .map(|v| format!(",\"volume\":{v}"))
                        .unwrap_or_default();
                    format!("{{\"symbol\":\"{symbol}\",\"ts\":{ts},\"price\":{price}{volume}{end}")
                },
            );
            prop_oneof![3 => record.clone().prop_map(String::into_bytes), 1 => mutated(record)]
        }

        #[test]
        fn the_usual_shape_takes_the_compact_path() {
            for record in [
                &br#"{"symbol":"ES","ts":1378069200083,"price":1640.25,"volume":8}"#[..],
                br#"{"symbol":"BRK.B","ts":1,"price":0.5}"#,
                br#"{"symbol":"A","ts":7258118399999,"price":1000000000000,"volume":1000000000000}"#,
            ] {
                assert!(
                    compact_tick(record).is_some(),
                    "{}",
                    String::from_utf8_lossy(record)
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// The compact path returns exactly what the general path does.
            #[test]
            fn compact_path_agrees_with_the_general_one(record in compact_record()) {
                prop_assert_eq!(parse_tick(&record), parse_any_tick(&record), "{}", String::from_utf8_lossy(&record));
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Well-formed records: the same verdict, reason and values as the spec's rules
            /// applied to serde_json's reading of each value, with correctly rounded prices.
            #[test]
            fn parse_tick_follows_the_spec(
                (fields, record) in tick_fields().prop_flat_map(|fields| {
                    (Just(fields.clone()), object(Just(fields)))
                }),
            ) {
                prop_assert!(!matches!(serde_object(record.as_bytes()), Err(false)), "{}", record);
                prop_assert_eq!(outcome(record.as_bytes()), reference(&fields), "{}", record);
            }

            /// Edited records: every record serde_json rejects is rejected (as not JSON or not
            /// UTF-8, or for a bad field found before the error in the scan), none it accepts
            /// is called malformed, and accepted ticks carry serde_json's values.
            #[test]
            fn parse_tick_rejects_what_serde_json_rejects(
                record in mutated(object(tick_fields())),
            ) {
                let ours = parse_tick(&record);
                let shown = String::from_utf8_lossy(&record);
                let malformed = matches!(ours, Err(InvalidTick::NotJson(_) | InvalidTick::NotUtf8(_)));
                match serde_object(&record) {
                    Ok(map) => {
                        prop_assert!(!malformed, "{} {:?}", shown, ours);
                        if let Ok(tick) = ours {
                            prop_assert_eq!(map["symbol"].as_str(), Some(tick.symbol));
                            prop_assert_eq!(map["ts"].as_i64(), Some(tick.ts));
                            // serde_json reads `-0` as a float.
                            let volume = map.get("volume").map_or(Some(0), |v| {
                                if v.is_null() || v.as_f64() == Some(0.0) { Some(0) } else { v.as_u64() }
                            });
                            prop_assert_eq!(volume, Some(tick.volume));
                            // serde_json's default float parsing may be 1 ulp off on long
                            // mantissas; the exact check is the test above.
                            let theirs = map["price"].as_f64().unwrap_or(f64::NAN);
                            prop_assert!((theirs - tick.price).abs() <= tick.price * f64::EPSILON, "{} {}", theirs, tick.price);
                        }
                    }
                    Err(beyond_grammar) => prop_assert!(beyond_grammar || ours.is_err(), "{} {:?}", shown, ours),
                }
            }
        }
    }
}
