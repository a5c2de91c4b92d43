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
        write!(
            f,
            "not valid JSON: expected {} at byte {}",
            self.expected, self.offset
        )
    }
}

/// A top-level field's value, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A string's raw content between the quotes; `escaped` tells whether it holds escapes.
    Str {
        raw: &'a [u8],
        escaped: bool,
    },
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
    #[inline]
    pub fn to_f64(self) -> f64 {
        match fast_f64(self.raw) {
            Some(value) => value,
            None => slow_f64(self.raw),
        }
    }

    /// The value as i64 when the token is an integer literal in range.
    #[inline]
    pub fn to_i64(self) -> Option<i64> {
        if !self.is_integer_literal {
            return None;
        }
        let (negative, digits) = match self.raw.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, self.raw),
        };
        // JSON integers have no leading zeros, so more than 19 digits is always out of range.
        if digits.len() > 19 {
            return None;
        }
        let magnitude = i64::try_from(parse_digits(digits)).ok()?;
        Some(if negative { -magnitude } else { magnitude })
    }
}

/// Powers of ten that f64 holds exactly.
const POW10_F64: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A decimal `[-]int[.frac]` of at most 19 digits, read as the integer `w` over `10^frac_len`,
/// correctly rounded (which is what the standard parser returns). When `w` fits in f64's 53-bit
/// significand that is Clinger's fast path: `w` and `10^frac_len` are exact f64s and one IEEE
/// division rounds correctly. Longer mantissas (the 17 digits of a shortest round-trip mean)
/// go through [`corrected_quotient`]. Anything else (exponents, more digits) is `None` and goes
/// to the standard parser.
#[inline]
fn fast_f64(raw: &[u8]) -> Option<f64> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    let int_len = digit_run(digits, 0);
    let (int, frac) = digits.split_at(int_len);
    let frac = match frac.split_first() {
        None => &[][..],
        Some((b'.', frac)) => frac,
        Some(_) => return None,
    };
    if int.len() + frac.len() > 19 || digit_run(frac, 0) != frac.len() {
        return None;
    }
    // At most 19 digits in all: no overflow.
    let w = parse_digits(int) * POW10_U64[frac.len()] + parse_digits(frac);
    let value = if w <= 1 << 53 {
        w as f64 / POW10_F64[frac.len()]
    } else {
        corrected_quotient(w, frac.len())?
    };
    Some(if negative { -value } else { value })
}

/// `w / 10^k` correctly rounded (round half to even), for `w >= 1` and `k <= 19`, when the
/// quotient lies in [2^-11, 2^53): the f64 quotient of the two (each rounded at most once, so
/// within a few units in the last place) is moved to the neighbour whose rounding interval
/// holds the exact value, found by comparing `w / 10^k` exactly, in 128-bit integers, with the
/// midpoints `(m ± 1/2)·2^e` around the candidate `m·2^e`. `None` outside that range, at a
/// power of two (whose lower neighbour is closer) or if the estimate were unexpectedly far off.
#[inline]
fn corrected_quotient(w: u64, k: usize) -> Option<f64> {
    let d = POW10_U64[k];
    let mut f = w as f64 / d as f64;
    for _ in 0..4 {
        let bits = f.to_bits();
        let m = (bits & ((1 << 52) - 1)) | (1 << 52);
        let e = ((bits >> 52) & 0x7ff) as i32 - 1075;
        // w/d against (2m ± 1)·2^(e-1): compare w·2^(1-e) with (2m ± 1)·d, all below 2^128.
        let shift = 1 - e;
        if m == 1 << 52 || !(0..=64).contains(&shift) {
            return None;
        }
        let scaled = u128::from(w) << shift;
        let above = u128::from(2 * m + 1) * u128::from(d);
        let below = u128::from(2 * m - 1) * u128::from(d);
        // A value exactly on a midpoint goes to the even significand.
        if scaled > above || (scaled == above && m & 1 == 1) {
            f = f64::from_bits(bits + 1);
        } else if scaled < below || (scaled == below && m & 1 == 1) {
            f = f64::from_bits(bits - 1);
        } else {
            return Some(f);
        }
    }
    None
}

#[cold]
#[inline(never)]
fn slow_f64(raw: &[u8]) -> f64 {
    // The token is ASCII and matches JSON's grammar, which Rust's float parser accepts.
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

const POW10_U64: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// The value of up to 19 ASCII digits.
#[inline]
fn parse_digits(digits: &[u8]) -> u64 {
    let mut value = 0u64;
    let mut chunks = digits.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([b'0'; 8]));
        value = value
            .wrapping_mul(100_000_000)
            .wrapping_add(eight_digits(word));
    }
    for &digit in chunks.remainder() {
        value = value
            .wrapping_mul(10)
            .wrapping_add(u64::from(digit.wrapping_sub(b'0')));
    }
    value
}

/// The value of eight ASCII digits loaded little-endian (first digit in the lowest byte).
#[inline(always)]
fn eight_digits(word: u64) -> u64 {
    let word = (word & 0x0f0f_0f0f_0f0f_0f0f).wrapping_mul(10 * 256 + 1) >> 8;
    let word = (word & 0x00ff_00ff_00ff_00ff).wrapping_mul(100 * 65536 + 1) >> 16;
    (word & 0x0000_ffff_0000_ffff).wrapping_mul(10000 * (1 << 32) + 1) >> 32
}

// Word-at-a-time (SWAR) helpers. Each mask sets the high bit of every byte that matches; only
// the lowest set byte is guaranteed exact (borrows and carries may mark bytes above it), which
// is all the scanner uses: it stops at the first special byte and looks at it.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Eight bytes at `pos`, little-endian, when the buffer has them.
#[inline(always)]
fn load8(buf: &[u8], pos: usize) -> Option<u64> {
    let bytes = buf.get(pos..pos.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Bytes that end a run of plain string content: `"`, `\`, controls (< 0x20) and non-ASCII.
#[inline(always)]
fn string_specials(word: u64) -> u64 {
    let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    // A byte < 0x20 borrows into its high bit; a byte >= 0x80 has it set already.
    let control_or_high = word.wrapping_sub(ONES * 0x20) | word;
    (quote | backslash | control_or_high) & HIGHS
}

/// Bytes that are not ASCII digits.
#[inline(always)]
fn non_digits(word: u64) -> u64 {
    // Digits become 0..=9; adding 0x76 sets the high bit of anything from 10 to 0x7f, and
    // bytes that were already >= 0x80 keep theirs.
    let t = word ^ (ONES * u64::from(b'0'));
    (t.wrapping_add(ONES * 0x76) | t) & HIGHS
}

/// Index of the first byte at or after `pos` that is not an ASCII digit (or the length).
#[inline(always)]
fn digit_run(buf: &[u8], mut pos: usize) -> usize {
    while let Some(word) = load8(buf, pos) {
        let mask = non_digits(word);
        if mask != 0 {
            return pos + (mask.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(b'0'..=b'9') = buf.get(pos) {
        pos += 1;
    }
    pos
}

/// Whether `key` is exactly `name` (at most 16 bytes), by whole-word compares: with `name` a
/// literal and the function inlined, this is a length check and one or two integer compares.
#[inline(always)]
pub(crate) fn key_is(key: &[u8], name: &'static [u8]) -> bool {
    #[inline(always)]
    fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = bytes.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }
    let n = name.len();
    if key.len() != n {
        return false;
    }
    match n {
        0 => true,
        1 => key[0] == name[0],
        2..=3 => {
            word::<2>(key, 0) == word::<2>(name, 0)
                && word::<2>(key, n - 2) == word::<2>(name, n - 2)
        }
        4..=7 => {
            word::<4>(key, 0) == word::<4>(name, 0)
                && word::<4>(key, n - 4) == word::<4>(name, n - 4)
        }
        8..=16 => {
            word::<8>(key, 0) == word::<8>(name, 0)
                && word::<8>(key, n - 8) == word::<8>(name, n - 8)
        }
        _ => key == name,
    }
}

/// The value of the ASCII digits at the start of `bytes`, read a word at a time, and how many
/// there are. The value is meaningful only for at most 19 digits.
#[inline(always)]
pub(crate) fn leading_digits(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    let mut n = 0;
    while n <= 16 {
        let Some(word) = load8(bytes, n) else { break };
        let mask = non_digits(word);
        if mask == 0 {
            value = value
                .wrapping_mul(100_000_000)
                .wrapping_add(eight_digits(word));
            n += 8;
            continue;
        }
        let k = (mask.trailing_zeros() / 8) as usize;
        if k > 0 {
            // The k digits move to the top of the word; the zero bytes below read as zeros.
            let digits = eight_digits(word << (64 - 8 * k));
            value = value.wrapping_mul(POW10_U64[k]).wrapping_add(digits);
        }
        return (value, n + k);
    }
    // The last few bytes of the buffer (or a run too long to matter).
    while let Some(&digit @ b'0'..=b'9') = bytes.get(n) {
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
        n += 1;
        if n > 24 {
            break;
        }
    }
    (value, n)
}

/// `bytes` after `literal` (at most 16 bytes), when they start with it.
#[inline(always)]
pub(crate) fn strip_literal<'a>(bytes: &'a [u8], literal: &'static [u8]) -> Option<&'a [u8]> {
    let head = bytes.get(..literal.len())?;
    key_is(head, literal).then(|| &bytes[literal.len()..])
}

/// A decimal `int[.frac]` (no sign, no exponent) at the start of `bytes` that [`fast_f64`]
/// converts by Clinger's fast path, with that value and the bytes after it; `None` for
/// anything else.
#[inline(always)]
pub(crate) fn simple_decimal(bytes: &[u8]) -> Option<(f64, &[u8])> {
    let (int, int_len) = leading_digits(bytes);
    if int_len == 0 || (int_len > 1 && bytes[0] == b'0') {
        return None;
    }
    let mut rest = &bytes[int_len..];
    let (mut w, mut frac_len) = (int, 0);
    if rest.first() == Some(&b'.') {
        let (frac, n) = leading_digits(&rest[1..]);
        if n == 0 || int_len + n > 19 {
            return None;
        }
        // At most 19 digits in all: no overflow.
        w = int * POW10_U64[n] + frac;
        frac_len = n;
        rest = &rest[1 + n..];
    } else if int_len > 19 {
        return None;
    }
    if w > 1 << 53 || matches!(rest.first(), Some(b'e' | b'E')) {
        return None;
    }
    Some((w as f64 / POW10_F64[frac_len], rest))
}

/// The JSON number or `null` at the start of `bytes` (`Some((None, _))` for null), with the
/// bytes after it; `None` when neither is there.
#[inline(always)]
pub(crate) fn number_or_null(bytes: &[u8]) -> Option<(Option<Number<'_>>, &[u8])> {
    match bytes.first()? {
        b'n' => Some((None, strip_literal(bytes, b"null")?)),
        b'-' | b'0'..=b'9' => {
            let (end, is_integer_literal) = scan_number(bytes, 0).ok()?;
            let number = Number {
                raw: &bytes[..end],
                is_integer_literal,
            };
            Some((Some(number), &bytes[end..]))
        }
        _ => None,
    }
}

/// Iterates the fields of a top-level JSON object.
pub struct ObjectFields<'a> {
    buf: &'a [u8],
    pos: usize,
    state: State,
    /// Whether any string so far held a byte >= 0x80 (the only place JSON allows one).
    non_ascii: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    First,
    Rest,
    Done,
}

// The scanner's steps are free functions over `(buf, pos)` that return the new position, so
// that once `next_field` is inlined into a caller's loop the scanner's state lives in locals
// (registers natively, WASM locals in a SmartModule) rather than in memory.

impl<'a> ObjectFields<'a> {
    /// Starts scanning `buf`, which must hold one JSON object (surrounding whitespace allowed).
    #[inline]
    pub fn new(buf: &'a [u8]) -> Result<Self, JsonError> {
        let pos = skip_ws(buf, 0);
        if buf.get(pos) != Some(&b'{') {
            return Err(error(pos, "an object '{'"));
        }
        Ok(Self {
            buf,
            pos: pos + 1,
            state: State::First,
            non_ascii: false,
        })
    }

    /// Whether every byte scanned so far was ASCII. Once [`next_field`](Self::next_field) has
    /// returned `Ok(None)` that covers the whole record: outside strings the grammar admits
    /// only ASCII, and every string's bytes are checked.
    #[inline]
    pub(crate) fn ascii_so_far(&self) -> bool {
        !self.non_ascii
    }

    /// The next `(raw key, value)`, or `None` after the closing brace (and only whitespace after it).
    #[inline]
    pub fn next_field(&mut self) -> Result<Option<(&'a [u8], Value<'a>)>, JsonError> {
        let buf = self.buf;
        let mut pos = skip_ws(buf, self.pos);
        match self.state {
            State::Done => return Ok(None),
            State::First => {
                if buf.get(pos) == Some(&b'}') {
                    return self.finish(pos);
                }
            }
            State::Rest => match buf.get(pos) {
                Some(b'}') => return self.finish(pos),
                Some(b',') => pos = skip_ws(buf, pos + 1),
                _ => return Err(error(pos, "',' or '}'")),
            },
        }
        let key = scan_string(buf, pos, "a field name")?;
        pos = skip_ws(buf, key.end + 1);
        if buf.get(pos) != Some(&b':') {
            return Err(error(pos, "':'"));
        }
        pos = skip_ws(buf, pos + 1);
        let (value, end, non_ascii) = scan_value(buf, pos, 0)?;
        self.non_ascii |= key.non_ascii | non_ascii;
        self.pos = end;
        self.state = State::Rest;
        Ok(Some((&buf[key.start..key.end], value)))
    }

    /// After the closing brace at `pos`: only whitespace may follow.
    #[inline(always)]
    fn finish(&mut self, pos: usize) -> Result<Option<(&'a [u8], Value<'a>)>, JsonError> {
        self.pos = end_of_record(self.buf, pos)?;
        self.state = State::Done;
        Ok(None)
    }
}

/// The end of the record, when only whitespace follows the closing brace at `pos`.
#[inline(never)]
fn end_of_record(buf: &[u8], pos: usize) -> Result<usize, JsonError> {
    let pos = skip_ws(buf, pos + 1);
    if pos != buf.len() {
        return Err(error(pos, "the end of the record after the object"));
    }
    Ok(pos)
}

#[cold]
fn error(offset: usize, expected: &'static str) -> JsonError {
    JsonError { offset, expected }
}

#[inline(always)]
fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while let Some(&byte) = buf.get(pos) {
        if byte > b' ' || !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        pos += 1;
    }
    pos
}

/// A string token: its content is `buf[start..end]`, the closing quote is at `end`.
#[derive(Clone, Copy)]
struct StrToken {
    start: usize,
    end: usize,
    escaped: bool,
    non_ascii: bool,
}

/// Reads a string starting at its opening quote at `pos`.
#[inline(always)]
fn scan_string(buf: &[u8], pos: usize, expected: &'static str) -> Result<StrToken, JsonError> {
    if buf.get(pos) != Some(&b'"') {
        return Err(error(pos, expected));
    }
    let start = pos + 1;
    // Plain content, eight bytes at a time, up to the first special byte.
    let mut at = start;
    while let Some(word) = load8(buf, at) {
        let mask = string_specials(word);
        if mask != 0 {
            at += (mask.trailing_zeros() / 8) as usize;
            if buf.get(at) == Some(&b'"') {
                return Ok(StrToken {
                    start,
                    end: at,
                    escaped: false,
                    non_ascii: false,
                });
            }
            break;
        }
        at += 8;
    }
    string_rest(buf, start, at)
}

/// The rest of a string from `pos`, a special byte or the last few bytes of the record.
#[inline(never)]
fn string_rest(buf: &[u8], start: usize, mut pos: usize) -> Result<StrToken, JsonError> {
    let mut escaped = false;
    let mut non_ascii = false;
    loop {
        let Some(&byte) = buf.get(pos) else {
            return Err(error(pos, "a closing '\"'"));
        };
        match byte {
            b'"' => {
                return Ok(StrToken {
                    start,
                    end: pos,
                    escaped,
                    non_ascii,
                })
            }
            b'\\' => {
                escaped = true;
                pos += 1;
                match buf.get(pos) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 1,
                    Some(b'u') => {
                        let hex = buf.get(pos + 1..pos + 5);
                        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                            return Err(error(pos, "four hex digits after \\u"));
                        }
                        pos += 5;
                    }
                    _ => return Err(error(pos, "a valid escape")),
                }
            }
            0x00..=0x1f => return Err(error(pos, "no control character in a string")),
            0x80..=0xff => {
                non_ascii = true;
                pos += 1;
            }
            _ => pos += 1,
        }
        while let Some(word) = load8(buf, pos) {
            let mask = string_specials(word);
            if mask != 0 {
                pos += (mask.trailing_zeros() / 8) as usize;
                break;
            }
            pos += 8;
        }
    }
}

/// Reads the value at `pos`: the value, the position after it, and whether it held non-ASCII.
#[inline(always)]
fn scan_value(buf: &[u8], pos: usize, depth: usize) -> Result<(Value<'_>, usize, bool), JsonError> {
    match buf.get(pos) {
        Some(b'"') => {
            let s = scan_string(buf, pos, "a string")?;
            let raw = &buf[s.start..s.end];
            Ok((
                Value::Str {
                    raw,
                    escaped: s.escaped,
                },
                s.end + 1,
                s.non_ascii,
            ))
        }
        Some(b'-' | b'0'..=b'9') => {
            let (end, is_integer_literal) = scan_number(buf, pos)?;
            let number = Number {
                raw: &buf[pos..end],
                is_integer_literal,
            };
            Ok((Value::Num(number), end, false))
        }
        Some(b't') => Ok((Value::Bool(true), literal(buf, pos, *b"true", None)?, false)),
        Some(b'f') => Ok((
            Value::Bool(false),
            literal(buf, pos, *b"fals", Some(b'e'))?,
            false,
        )),
        Some(b'n') => Ok((Value::Null, literal(buf, pos, *b"null", None)?, false)),
        Some(b'{' | b'[') => {
            let (end, non_ascii) = skip_composite(buf, pos, depth + 1)?;
            Ok((Value::Composite, end, non_ascii))
        }
        _ => Err(error(pos, "a value")),
    }
}

/// Matches `head` (four bytes, compared as one word), then `tail` if given; returns the end.
#[inline(always)]
fn literal(buf: &[u8], pos: usize, head: [u8; 4], tail: Option<u8>) -> Result<usize, JsonError> {
    let word = buf
        .get(pos..pos + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok());
    let mut end = pos + 4;
    let mut found = word.map(u32::from_le_bytes) == Some(u32::from_le_bytes(head));
    if let Some(tail) = tail {
        found &= buf.get(end) == Some(&tail);
        end += 1;
    }
    if found {
        Ok(end)
    } else {
        Err(error(pos, "true, false or null"))
    }
}

/// Checks the number at `pos` against JSON's grammar; returns its end and whether it is an
/// integer literal.
#[inline(always)]
fn scan_number(buf: &[u8], start: usize) -> Result<(usize, bool), JsonError> {
    let mut pos = start;
    if buf.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match buf.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos = digit_run(buf, pos + 1),
        _ => return Err(error(pos, "a digit")),
    }
    let mut is_integer_literal = true;
    if buf.get(pos) == Some(&b'.') {
        is_integer_literal = false;
        pos += 1;
        let end = digit_run(buf, pos);
        if end == pos {
            return Err(error(pos, "a digit after '.'"));
        }
        pos = end;
    }
    if let Some(b'e' | b'E') = buf.get(pos) {
        is_integer_literal = false;
        pos += 1;
        if let Some(b'+' | b'-') = buf.get(pos) {
            pos += 1;
        }
        let end = digit_run(buf, pos);
        if end == pos {
            return Err(error(pos, "a digit in the exponent"));
        }
        pos = end;
    }
    Ok((pos, is_integer_literal))
}

/// Validates the object or array at `pos` (nesting level `depth`); returns its end and
/// whether it held non-ASCII.
#[inline(never)]
fn skip_composite(buf: &[u8], pos: usize, depth: usize) -> Result<(usize, bool), JsonError> {
    if depth > MAX_DEPTH {
        return Err(error(pos, "nesting no deeper than 64"));
    }
    let is_object = buf.get(pos) == Some(&b'{');
    let close = if is_object { b'}' } else { b']' };
    let mut non_ascii = false;
    let mut pos = skip_ws(buf, pos + 1);
    if buf.get(pos) == Some(&close) {
        return Ok((pos + 1, false));
    }
    loop {
        if is_object {
            let key = scan_string(buf, pos, "a field name")?;
            non_ascii |= key.non_ascii;
            pos = skip_ws(buf, key.end + 1);
            if buf.get(pos) != Some(&b':') {
                return Err(error(pos, "':'"));
            }
            pos = skip_ws(buf, pos + 1);
        }
        let (_, end, value_non_ascii) = scan_value(buf, pos, depth)?;
        non_ascii |= value_non_ascii;
        pos = skip_ws(buf, end);
        match buf.get(pos) {
            Some(b',') => pos = skip_ws(buf, pos + 1),
            Some(&b) if b == close => return Ok((pos + 1, non_ascii)),
            _ => {
                return Err(error(
                    pos,
                    if is_object {
                        "',' or '}'"
                    } else {
                        "',' or ']'"
                    },
                ))
            }
        }
    }
}

/// Appends a finite f64 in its shortest round-trip form (`100.0`, `0.1`, `1e-7`).
#[inline]
pub fn write_f64(out: &mut Vec<u8>, value: f64) {
    debug_assert!(value.is_finite());
    // Straight into the vector's spare room: in WASM each copy of the formatted digits would be
    // a `memory.copy`, which wasmtime runs as a call into the host.
    out.reserve(RYU_MAX_LEN);
    let len = out.len();
    // SAFETY: format64 writes at most RYU_MAX_LEN bytes, all initialised, at the pointer; the
    // room is reserved above. The bytes are those of `ryu::Buffer::format_finite`.
    unsafe {
        let written = ryu::raw::format64(value, out.as_mut_ptr().add(len));
        out.set_len(len + written);
    }
}

/// The most bytes `ryu::raw::format64` writes.
const RYU_MAX_LEN: usize = 24;

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
    // Byte by byte: a copy of unknown length is a `memory.copy` in WASM, a call into the host.
    for &digit in itoa::Buffer::new().format(value).as_bytes() {
        out.push(digit);
    }
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

/// Generators of JSON records, shared by the property tests of the scanner, the tick parser
/// and the scoring parser (which compare against serde_json).
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    /// Number tokens as JSON allows them: prices of every length, integers near the i64 limits,
    /// fractions and exponents.
    pub fn number_token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?",
            2 => "[1-9][0-9]{0,5}\\.[0-9]{1,17}",
            1 => "-?(922337203685477580[0-9]|[1-9][0-9]{17,19})",
            1 => prop::sample::select(vec![
                "0", "-0", "0.0", "1e999", "-1e999", "1e-999", "9007199254740993", "9007199254740992.5",
                "0.1", "1640.1805555555557", "0.3134080113924473", "4.9e-324", "1.7976931348623157e308",
            ])
            .prop_map(String::from),
        ]
    }

    /// String tokens with escapes and non-ASCII characters. `\\u` escapes avoid lone surrogates:
    /// the scanner checks escapes against JSON's grammar, which admits them, while serde_json
    /// refuses them because it builds Rust strings.
    pub fn string_token() -> impl Strategy<Value = String> {
        "\"([A-Za-z0-9 ._:-]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-cA-CefEF][0-9a-fA-F]{3}|\\\\ud83d\\\\ude00|é|€|😀){0,12}\""
    }

    /// Any JSON value, nested a little. Numbers stay within f64's range: serde_json rejects
    /// `1e999` where the scanner leaves the range to the reader (a tick's price must be finite).
    pub fn value_token() -> impl Strategy<Value = String> {
        let finite = number_token().prop_filter("within f64's range", |t| {
            t.parse::<f64>().is_ok_and(f64::is_finite)
        });
        let leaf = prop_oneof![
            finite,
            string_token(),
            prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((string_token(), inner), 0..4).prop_map(|fields| {
                    let fields: Vec<_> = fields
                        .into_iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect();
                    format!("{{{}}}", fields.join(" , "))
                }),
            ]
        })
    }

    fn whitespace() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", "", "", " ", "\n", "\t ", "\r\n"])
    }

    /// A top-level object from `(key, value)` pairs, with some whitespace around the tokens.
    pub fn object(
        fields: impl Strategy<Value = Vec<(String, String)>>,
    ) -> impl Strategy<Value = String> {
        (fields, prop::collection::vec(whitespace(), 40)).prop_map(|(fields, ws)| {
            let mut ws = ws.into_iter().cycle();
            let mut out = String::from(ws.next().unwrap_or(""));
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.extend([ws.next().unwrap_or(""), key, ws.next().unwrap_or(""), ":"]);
                out.extend([ws.next().unwrap_or(""), value, ws.next().unwrap_or("")]);
            }
            out.push('}');
            out.push_str(ws.next().unwrap_or(""));
            out
        })
    }

    /// serde_json's verdict on a record: `Ok` for an object; `Err(true)` for the two refusals
    /// that go beyond JSON's grammar, which the scanner leaves to the reader of a value (lone
    /// surrogate escapes, numbers beyond f64's range); `Err(false)` for invalid JSON.
    pub(crate) fn serde_object(
        bytes: &[u8],
    ) -> Result<serde_json::Map<String, serde_json::Value>, bool> {
        serde_json::from_slice(bytes).map_err(|e: serde_json::Error| {
            let message = e.to_string();
            ["surrogate", "end of hex escape", "number out of range"]
                .iter()
                .any(|m| message.contains(m))
        })
    }

    /// A record's bytes after a few random edits: deletions, insertions of bytes that matter to
    /// JSON or UTF-8, overwrites and truncation.
    pub fn mutated(record: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
        let edit = (any::<prop::sample::Index>(), 0..5u8, any::<u8>());
        (record, prop::collection::vec(edit, 0..4)).prop_map(|(record, edits)| {
            let mut bytes = record.into_bytes();
            const SPECIAL: &[u8] = b"\"\\{}[],:.-+eE0 \x00\x1f\x7f\x80\xbf\xc3\xe2\xed\xf0\xffutnf";
            for (index, op, byte) in edits {
                let at = index.index(bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, SPECIAL[usize::from(byte) % SPECIAL.len()]),
                    2 if at < bytes.len() => bytes[at] = byte,
                    3 => bytes.truncate(at),
                    _ => bytes.insert(at, byte),
                }
            }
            bytes
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        let got =
            fields(r#" {"a": 1, "b":"x\"y", "c": {"d": [1, 2.5e3, {"e": null}]}, "f": true} "#)
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
            let theirs =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(case).is_ok();
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

    proptest! {
        /// Written in place, the digits are exactly ryu's, after whatever the buffer held.
        #[test]
        fn floats_are_written_as_ryu_formats_them(bits in any::<u64>(), prefix in 0usize..40) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            let mut out = vec![b'x'; prefix];
            write_f64(&mut out, value);
            let mut want = vec![b'x'; prefix];
            want.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
            prop_assert_eq!(out, want);
        }
    }

    #[test]
    fn open_object_strips_the_closing_brace() {
        assert_eq!(open_object(b"{\"a\":1} \n"), Some(&b"{\"a\":1"[..]));
        assert_eq!(open_object(b"[1]"), None);
    }

    fn scan_all(bytes: &[u8]) -> Result<usize, JsonError> {
        let mut scanner = ObjectFields::new(bytes)?;
        let mut n = 0;
        while scanner.next_field()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Valid records, and records with a few edits: the scanner (plus a UTF-8 check, which
        /// parse_tick adds) accepts exactly what serde_json accepts as an object.
        #[test]
        fn scanner_decides_like_serde_json(
            bytes in strategies::mutated(strategies::object(prop::collection::vec(
                (strategies::string_token(), strategies::value_token()), 0..6))),
        ) {
            let ours = scan_all(&bytes);
            let utf8 = std::str::from_utf8(&bytes).is_ok();
            let shown = String::from_utf8_lossy(&bytes);
            match strategies::serde_object(&bytes) {
                // serde_json keeps the last of duplicate keys.
                Ok(map) => prop_assert!(utf8 && ours.is_ok_and(|n| n >= map.len()), "{:?} {:?}", shown, ours),
                Err(beyond_grammar) => prop_assert!(beyond_grammar || !utf8 || ours.is_err(), "{:?} {:?}", shown, ours),
            }
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Number tokens convert exactly as the standard library parses them (correctly
        /// rounded), and integers exactly, in or out of i64's range.
        #[test]
        fn numbers_convert_like_std(token in strategies::number_token()) {
            let record = format!("{{\"n\":{token}}}");
            let mut scanner = ObjectFields::new(record.as_bytes()).unwrap();
            let Some((_, Value::Num(number))) = scanner.next_field().unwrap() else {
                panic!("{token} is not a number");
            };
            prop_assert_eq!(number.raw, token.as_bytes());
            let expected: f64 = token.parse().unwrap();
            prop_assert_eq!(number.to_f64().to_bits(), expected.to_bits(), "{}", token);
            let integer = !token.contains(['.', 'e', 'E']);
            prop_assert_eq!(number.is_integer_literal, integer);
            // The magnitude must fit i64, so i64::MIN itself is out of range.
            let expected = token.parse::<i64>().ok().filter(|v| *v != i64::MIN && integer);
            prop_assert_eq!(number.to_i64(), expected, "{}", token);
            // serde_json's default float parsing is exact only on the fast path's domain.
            let digits = token.bytes().filter(u8::is_ascii_digit).count();
            if !integer && !token.contains(['e', 'E']) && digits <= 15 {
                let theirs: serde_json::Value = serde_json::from_str(&token).unwrap();
                prop_assert_eq!(theirs.as_f64().map(f64::to_bits), Some(number.to_f64().to_bits()));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Decimals exactly halfway between two f64s (the hard case for rounding) and their
        /// neighbours, with long mantissas: the same value as the standard library.
        #[test]
        fn midpoints_round_like_std(m in (1u64 << 52)..(1 << 53), e in -2i32..=1, nudge in -1i64..=1) {
            // (2m+1)·2^(e-1) = (2m+1)·5^(1-e) / 10^(1-e) exactly.
            let frac_digits = (1 - e) as u32;
            let n = u128::from(2 * m + 1) * 5u128.pow(frac_digits);
            let n = n.checked_add_signed(i128::from(nudge)).unwrap();
            prop_assume!(n < 10u128.pow(19));
            let digits = n.to_string();
            let k = frac_digits as usize;
            let token = if digits.len() > k {
                format!("{}.{}", &digits[..digits.len() - k], &digits[digits.len() - k..])
            } else {
                format!("0.{}{digits}", "0".repeat(k - digits.len()))
            };
            let number = Number { raw: token.as_bytes(), is_integer_literal: false };
            let expected: f64 = token.parse().unwrap();
            prop_assert_eq!(number.to_f64().to_bits(), expected.to_bits(), "{}", token);
        }
    }

    #[test]
    fn swar_masks_find_the_first_special_byte() {
        for special in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff] {
            for at in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[at] = special;
                // Bytes after the first may be anything, including more specials.
                for tail in at + 1..8 {
                    bytes[tail] = [0x00, b'"', 0xff, b'a'][tail % 4];
                }
                let mask = string_specials(u64::from_le_bytes(bytes));
                assert_eq!(mask.trailing_zeros() / 8, at as u32, "{bytes:?}");
            }
        }
        assert_eq!(string_specials(u64::from_le_bytes(*b" ~!#[]{}")), 0);
        for at in 0..8 {
            for odd in [b'/', b':', b'.', b'a', 0x80, 0x00] {
                let mut bytes = *b"01234567";
                bytes[at] = odd;
                assert_eq!(
                    non_digits(u64::from_le_bytes(bytes)).trailing_zeros() / 8,
                    at as u32
                );
            }
        }
        assert_eq!(non_digits(u64::from_le_bytes(*b"98765432")), 0);
        assert_eq!(eight_digits(u64::from_le_bytes(*b"12345678")), 12_345_678);
    }

    #[test]
    fn keys_compare_by_words() {
        for name in [
            &b"ts"[..],
            b"price",
            b"symbol",
            b"prev_std",
            b"prev_mean",
            b"prev_count",
            b"x",
            b"abc",
        ] {
            assert!(key_is(name, name));
            let mut other = name.to_vec();
            for i in 0..other.len() {
                other[i] ^= 0x20;
                assert!(!key_is(&other, name));
                other[i] ^= 0x20;
            }
            assert!(!key_is(&name[1..], name));
        }
    }
}
