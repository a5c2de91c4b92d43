//! A small JSON scanner and writers, shared by every SmartModule.
//!
//! Records are scanned in place: a top-level object yields its keys and raw values as borrowed
//! byte slices, nested values are validated and skipped. Nothing is allocated, which is what
//! makes a chain of modules cheap enough to run at millions of records per second in WASM.
//! Output records are written by appending to the input bytes, so unknown fields pass through
//! untouched and in their original form.

use std::fmt;

/// Deepest nesting accepted inside a record; deeper input is rejected rather than risking the
/// WASM stack.
const MAX_DEPTH: usize = 64;

/// Where and why a record is not valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset of the problem within the record.
    pub offset: usize,
    /// What the scanner expected there.
    pub expected: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not valid JSON: expected {} at byte {}", self.expected, self.offset)
    }
}

/// A top-level field's value, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A string's raw content between the quotes; `escaped` tells whether it holds escapes.
    Str { raw: &'a [u8], escaped: bool },
    /// A number token exactly as written (already checked against JSON's grammar).
    Num(Number<'a>),
    Bool(bool),
    Null,
    /// An object or array (validated, not decoded).
    Composite,
}

/// A JSON number token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number<'a> {
    /// The token's bytes.
    pub raw: &'a [u8],
    /// Whether it has a fraction or exponent part (so is not an integer literal).
    pub is_integer_literal: bool,
}

impl Number<'_> {
    /// The nearest f64 (may be infinite for huge exponents).
    pub fn to_f64(self) -> f64 {
        // The token is ASCII and matches JSON's grammar, which Rust's float parser accepts.
        std::str::from_utf8(self.raw)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// The value as i64 when the token is an integer literal in range.
    pub fn to_i64(self) -> Option<i64> {
        if !self.is_integer_literal {
            return None;
        }
        let (negative, digits) = match self.raw.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, self.raw),
        };
        let mut magnitude: i64 = 0;
        for &d in digits {
            magnitude = magnitude.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
        }
        Some(if negative { -magnitude } else { magnitude })
    }
}

/// Iterates the fields of a top-level JSON object.
pub struct ObjectFields<'a> {
    buf: &'a [u8],
    pos: usize,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    First,
    Rest,
    Done,
}

impl<'a> ObjectFields<'a> {
    /// Starts scanning `buf`, which must hold one JSON object (surrounding whitespace allowed).
    pub fn new(buf: &'a [u8]) -> Result<Self, JsonError> {
        let mut scanner = Self {
            buf,
            pos: 0,
            state: State::First,
        };
        scanner.skip_ws();
        scanner.expect(b'{', "an object '{'")?;
        Ok(scanner)
    }

    /// The next `(raw key, value)`, or `None` after the closing brace (and only whitespace after it).
    pub fn next_field(&mut self) -> Result<Option<(&'a [u8], Value<'a>)>, JsonError> {
        self.skip_ws();
        match self.state {
            State::Done => return Ok(None),
            State::First => {
                if self.peek() == Some(b'}') {
                    return self.finish();
                }
            }
            State::Rest => match self.peek() {
                Some(b'}') => return self.finish(),
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                _ => return Err(self.error("',' or '}'")),
            },
        }
        let (key, _) = self.string("a field name")?;
        self.skip_ws();
        self.expect(b':', "':'")?;
        self.skip_ws();
        let value = self.value(0)?;
        self.state = State::Rest;
        Ok(Some((key, value)))
    }

    fn finish(&mut self) -> Result<Option<(&'a [u8], Value<'a>)>, JsonError> {
        self.pos += 1;
        self.skip_ws();
        if self.pos != self.buf.len() {
            return Err(self.error("the end of the record after the object"));
        }
        self.state = State::Done;
        Ok(None)
    }

    fn error(&self, expected: &'static str) -> JsonError {
        JsonError {
            offset: self.pos,
            expected,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        match self.peek() {
            Some(b'"') => {
                let (raw, escaped) = self.string("a string")?;
                Ok(Value::Str { raw, escaped })
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Num),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'{' | b'[') => {
                self.composite(depth + 1)?;
                Ok(Value::Composite)
            }
            _ => Err(self.error("a value")),
        }
    }

    fn literal(&mut self, word: &'static [u8], value: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("true, false or null"))
        }
    }

    /// Reads a string starting at its opening quote; returns its raw content.
    fn string(&mut self, expected: &'static str) -> Result<(&'a [u8], bool), JsonError> {
        self.expect(b'"', expected)?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("a closing '\"'"));
            };
            match byte {
                b'"' => {
                    let raw = &self.buf[start..self.pos];
                    self.pos += 1;
                    return Ok((raw, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            let hex = self.buf.get(self.pos + 1..self.pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.error("four hex digits after \\u"));
                            }
                            self.pos += 5;
                        }
                        _ => return Err(self.error("a valid escape")),
                    }
                }
                0x00..=0x1f => return Err(self.error("no control character in a string")),
                _ => self.pos += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Number<'a>, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("a digit")),
        }
        let mut is_integer_literal = true;
        if self.peek() == Some(b'.') {
            is_integer_literal = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            is_integer_literal = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("a digit in the exponent"));
            }
        }
        Ok(Number {
            raw: &self.buf[start..self.pos],
            is_integer_literal,
        })
    }

    fn composite(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting no deeper than 64"));
        }
        let is_object = self.peek() == Some(b'{');
        let close = if is_object { b'}' } else { b']' };
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if is_object {
                self.string("a field name")?;
                self.skip_ws();
                self.expect(b':', "':'")?;
                self.skip_ws();
            }
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error(if is_object { "',' or '}'" } else { "',' or ']'" })),
            }
        }
    }
}

/// Appends a finite f64 in its shortest round-trip form (`100.0`, `0.1`, `1e-7`).
#[inline]
pub fn write_f64(out: &mut Vec<u8>, value: f64) {
    debug_assert!(value.is_finite());
    out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
}

/// Appends a number or `null`.
#[inline]
pub fn write_opt_f64(out: &mut Vec<u8>, value: Option<f64>) {
    match value {
        Some(v) => write_f64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends an integer.
#[inline]
pub fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Appends an integer or `null`.
#[inline]
pub fn write_opt_int(out: &mut Vec<u8>, value: Option<impl itoa::Integer>) {
    match value {
        Some(v) => write_int(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// The object's bytes up to (not including) its closing brace, so fields can be appended.
///
/// Returns `None` when the record does not end with `}` (after trailing whitespace).
pub fn open_object(record: &[u8]) -> Option<&[u8]> {
    let end = record.iter().rposition(|b| !b.is_ascii_whitespace())?;
    (record[end] == b'}').then(|| &record[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(input: &str) -> Result<Vec<(String, Value<'_>)>, JsonError> {
        let mut scanner = ObjectFields::new(input.as_bytes())?;
        let mut out = Vec::new();
        while let Some((k, v)) = scanner.next_field()? {
            out.push((String::from_utf8(k.to_vec()).unwrap(), v));
        }
        Ok(out)
    }

    #[test]
    fn scans_flat_and_nested_objects() {
        let got = fields(r#" {"a": 1, "b":"x\"y", "c": {"d": [1, 2.5e3, {"e": null}]}, "f": true} "#)
            .unwrap();
        let keys: Vec<_> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "f"]);
        assert!(matches!(got[1].1, Value::Str { escaped: true, .. }));
        assert_eq!(got[2].1, Value::Composite);
        assert_eq!(got[3].1, Value::Bool(true));
        assert!(fields("{}").unwrap().is_empty());
    }

    #[test]
    fn agrees_with_serde_json_on_validity() {
        let cases = [
            r#"{"a":1}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":[1,2,]}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":tru}"#,
            r#"{"a":1}x"#,
            r#"{"a":{"b":[{}]}}"#,
            r#"["a"]"#,
            r#""#,
            r#"{"a":1"#,
            "{\"a\":\"tab\there\"}",
        ];
        for case in cases {
            let ours = fields(case).is_ok();
            let theirs = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(case).is_ok();
            assert_eq!(ours, theirs, "{case}");
        }
    }

    #[test]
    fn rejects_deep_nesting_without_overflowing() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(fields(&deep).is_err());
    }

    #[test]
    fn integer_literals_convert_exactly() {
        let n = |s: &'static str, int| Number {
            raw: s.as_bytes(),
            is_integer_literal: int,
        };
        assert_eq!(n("1378069200083", true).to_i64(), Some(1_378_069_200_083));
        assert_eq!(n("-5", true).to_i64(), Some(-5));
        assert_eq!(n("99999999999999999999", true).to_i64(), None);
        assert_eq!(n("1.5", false).to_i64(), None);
        assert_eq!(n("1e3", false).to_f64(), 1000.0);
    }

    #[test]
    fn writes_shortest_round_trip_numbers() {
        let mut out = Vec::new();
        write_f64(&mut out, 100.0);
        out.push(b' ');
        write_f64(&mut out, 0.1);
        out.push(b' ');
        write_opt_f64(&mut out, None);
        out.push(b' ');
        write_int(&mut out, -42i64);
        assert_eq!(out, b"100.0 0.1 null -42");
    }

    #[test]
    fn open_object_strips_the_closing_brace() {
        assert_eq!(open_object(b"{\"a\":1} \n"), Some(&b"{\"a\":1"[..]));
        assert_eq!(open_object(b"[1]"), None);
    }
}
