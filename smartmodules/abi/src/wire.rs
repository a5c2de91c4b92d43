//! The bytes an SPU (or `fluvio-smartengine`) hands a SmartModule, and the bytes it reads back:
//! `SmartModuleInput` in, `SmartModuleOutput` out, in fluvio-protocol's encoding.
//!
//! Decoding borrows from the input buffer ([`InputRecord`] holds slices), and encoding appends
//! to one caller-owned buffer, so neither allocates per record. Byte for byte, the output equals
//! what fluvio-protocol's `Encoder` writes for the same records; the tests hold both to that.

use fluvio_protocol::Version;

/// Why an input could not be read. Reported to the host as a status code, as the SDK's glue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the input ends inside {0}")]
    Truncated(&'static str),
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// The first version whose `SmartModuleInput` carries `base_timestamp` (and the last one that
/// still carries the deprecated `params` and `join_record`).
const TIMESTAMPS_VERSION: Version = 22;
/// The first versions whose extra parameters carry a lookback, and its age.
const LOOKBACK_VERSION: Version = 20;
const LOOKBACK_AGE_VERSION: Version = 21;
/// The first version whose `SmartModuleInput` carries `join_record`.
const JOIN_RECORD_VERSION: Version = 16;

/// A cursor over the input bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(WireError::Truncated(what))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        let bytes = self.take(4, what)?;
        Ok(i32::from_be_bytes(bytes.try_into().expect("4 bytes")))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        let bytes = self.take(8, what)?;
        Ok(i64::from_be_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// A zigzag varint, decoded as fluvio-protocol's `varint_decode` does. At most 10 bytes,
    /// the most its encoder writes for an i64: fluvio-protocol reads an 11th byte by shifting
    /// past 64 bits (a panic in a debug build, bits folded back in a release one; found by
    /// fuzzing), so no reading of a longer one could match it.
    fn varint(&mut self, what: &'static str) -> Result<i64, WireError> {
        let mut raw: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = self.u8(what)?;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(WireError::Invalid(what));
            }
        }
        // Zigzag with an arithmetic shift, as fluvio-protocol reads it: a 10-byte varint can
        // set bit 63, and a logical shift would read it otherwise (found by fuzzing).
        let raw = raw as i64;
        Ok((raw >> 1) ^ -(raw & 1))
    }

    /// A varint length, which must fit in what is left.
    fn varint_len(&mut self, what: &'static str) -> Result<usize, WireError> {
        let len = self.varint(what)?;
        usize::try_from(len).map_err(|_| WireError::Invalid(what))
    }

    fn varint_bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.varint_len(what)?;
        self.take(len, what)
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Invalid(what)),
        }
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let bytes = self.take(8, what)?;
        Ok(u64::from_be_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// A fluvio-protocol `String`: an i16 length (none when not positive), then UTF-8.
    fn skip_string(&mut self, what: &'static str) -> Result<(), WireError> {
        let bytes = self.take(2, what)?;
        let len = i16::from_be_bytes(bytes.try_into().expect("2 bytes"));
        if len > 0 {
            let text = self.take(len as usize, what)?;
            std::str::from_utf8(text).map_err(|_| WireError::Invalid(what))?;
        }
        Ok(())
    }

    /// Steps over a `SmartModuleExtraParams` as fluvio-protocol reads it at `version`: a u16
    /// count of string pairs, then from version 20 an optional lookback (`last`, then from
    /// version 21 an optional age of seconds and nanoseconds). Not through fluvio-protocol's
    /// decoder, which panics on an age whose nanoseconds carry past u64 seconds
    /// (`Duration::new`; found by fuzzing) and allocates the map.
    fn skip_params(&mut self, version: Version) -> Result<(), WireError> {
        const WHAT: &str = "params";
        let bytes = self.take(2, WHAT)?;
        let pairs = u16::from_be_bytes(bytes.try_into().expect("2 bytes"));
        for _ in 0..2 * u32::from(pairs) {
            self.skip_string(WHAT)?;
        }
        if version >= LOOKBACK_VERSION && self.bool(WHAT)? {
            self.u64(WHAT)?;
            if version >= LOOKBACK_AGE_VERSION && self.bool(WHAT)? {
                let seconds = self.u64(WHAT)?;
                let nanos = self.i32(WHAT)? as u32;
                seconds
                    .checked_add(u64::from(nanos / 1_000_000_000))
                    .ok_or(WireError::Invalid(WHAT))?;
            }
        }
        Ok(())
    }
}

/// A decoded `SmartModuleInput`: the batch's base offset and timestamp, and its records, still
/// encoded, to be walked with [`Batch::records`].
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub base_offset: i64,
    pub base_timestamp: i64,
    count: i32,
    records: &'a [u8],
}

impl<'a> Batch<'a> {
    /// Reads a `SmartModuleInput` encoded at `version`, without copying the records.
    pub fn decode(input: &'a [u8], version: Version) -> Result<Self, WireError> {
        let mut reader = Reader {
            bytes: input,
            pos: 0,
        };
        let base_offset = reader.i64("base_offset")?;
        let raw_len = reader.i32("raw_bytes")?;
        let raw = if raw_len < 1 {
            &[][..]
        } else {
            reader.take(raw_len as usize, "raw_bytes")?
        };
        if version <= TIMESTAMPS_VERSION {
            // Deprecated extra parameters: engines still write them, empty.
            reader.skip_params(version)?;
            if version >= JOIN_RECORD_VERSION {
                let join_len = reader.i32("join_record")?;
                if join_len > 0 {
                    reader.take(join_len as usize, "join_record")?;
                }
            }
        }
        let base_timestamp = if version >= TIMESTAMPS_VERSION {
            reader.i64("base_timestamp")?
        } else {
            0
        };
        // The records: a count, then each record. fluvio-protocol refuses a missing count.
        if raw.len() < 4 {
            return Err(WireError::Truncated("record count"));
        }
        let count = i32::from_be_bytes(raw[..4].try_into().expect("4 bytes"));
        let records = &raw[4..];
        Ok(Self {
            base_offset,
            base_timestamp,
            count,
            records,
        })
    }

    /// How many records the batch says it holds (a negative count reads as none, as in
    /// fluvio-protocol).
    pub fn len(&self) -> usize {
        self.count.max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records in order; a malformed one ends the walk with an error.
    pub fn records(&self) -> Records<'a> {
        Records {
            reader: Reader {
                bytes: self.records,
                pos: 0,
            },
            left: self.len(),
            base_offset: self.base_offset,
            base_timestamp: self.base_timestamp,
        }
    }
}

/// Iterator over a batch's records.
pub struct Records<'a> {
    reader: Reader<'a>,
    left: usize,
    base_offset: i64,
    base_timestamp: i64,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<InputRecord<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let record = self.read_record();
        if record.is_err() {
            self.left = 0;
        }
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

impl<'a> Records<'a> {
    fn read_record(&mut self) -> Result<InputRecord<'a>, WireError> {
        let reader = &mut self.reader;
        let len = reader.varint_len("record length")?;
        if reader.rest().len() < len {
            return Err(WireError::Truncated("record"));
        }
        let start = reader.pos;
        reader.u8("attributes")?;
        let timestamp_delta = reader.varint("timestamp_delta")?;
        let offset_delta = reader.varint("offset_delta")?;
        let preamble = &reader.bytes[start..reader.pos];
        let key_start = reader.pos;
        let key = match reader.u8("key")? {
            0 => None,
            1 => Some(reader.varint_bytes("key")?),
            _ => return Err(WireError::Invalid("key")),
        };
        let key_encoded = &reader.bytes[key_start..reader.pos];
        let value = reader.varint_bytes("value")?;
        let headers_start = reader.pos;
        reader.varint("headers")?;
        let headers = &reader.bytes[headers_start..reader.pos];
        Ok(InputRecord {
            key,
            value,
            offset: self.base_offset.wrapping_add(offset_delta),
            timestamp: self.base_timestamp.wrapping_add(timestamp_delta),
            encoded: Encoded {
                preamble,
                key: key_encoded,
                headers,
                whole: &reader.bytes[start..reader.pos],
            },
        })
    }
}

/// One record of the input batch, borrowed from the input bytes.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    /// Base offset plus the record's offset delta.
    pub offset: i64,
    /// Base timestamp plus the record's timestamp delta.
    pub timestamp: i64,
    pub(crate) encoded: Encoded<'a>,
}

/// The record's parts as they were encoded, copied verbatim into outputs that keep them (the
/// SDK's filter, map and filter_map keep a record's header, key and headers count).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoded<'a> {
    preamble: &'a [u8],
    key: &'a [u8],
    headers: &'a [u8],
    /// Everything after the length prefix.
    whole: &'a [u8],
}

/// Appends a few bytes one by one. In WASM, `extend_from_slice` of a length unknown at compile
/// time is a `memory.copy`, which wasmtime runs as a call into the host: far dearer than a
/// handful of stores for the 1-4 bytes of a record's header, key or headers count.
#[inline]
fn put_small(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= 16 {
        for &byte in bytes {
            out.push(byte);
        }
    } else {
        out.extend_from_slice(bytes);
    }
}

/// Appends `value` as fluvio-protocol's `variant_encode` does, including its treatment of
/// values past 31 bits, so that the bytes match the SDK's exactly.
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = (value << 1) ^ (value >> 31);
    while (v & 0xffff_ff80) != 0 {
        out.push(((v & 0x7f) | 0x80) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The size [`put_varint`] writes for `value`.
pub fn varint_size(value: i64) -> usize {
    let mut v = (value << 1) ^ (value >> 31);
    let mut bytes = 1;
    while (v & 0xffff_ff80) != 0 {
        bytes += 1;
        v >>= 7;
    }
    bytes
}

/// Appends one record as fluvio-protocol encodes a `Record` with these deltas, attributes 0
/// and no headers: what a host writes for each record of a batch, and what array_map emits.
pub fn put_record(
    out: &mut Vec<u8>,
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<&[u8]>,
    value: &[u8],
) {
    // attributes, the deltas, key, value, headers count 0
    let inner = 1
        + varint_size(timestamp_delta)
        + varint_size(offset_delta)
        + key_size(key)
        + varint_size(value.len() as i64)
        + value.len()
        + 1;
    out.reserve(varint_size(inner as i64) + inner);
    put_varint(out, inner as i64);
    out.push(0);
    put_varint(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_key(out, key);
    put_varint(out, value.len() as i64);
    out.extend_from_slice(value);
    out.push(0);
}

/// The size of a record's key as fluvio-protocol encodes an `Option<RecordData>`.
fn key_size(key: Option<&[u8]>) -> usize {
    key.map_or(1, |k| 1 + varint_size(k.len() as i64) + k.len())
}

/// Appends a record's key as fluvio-protocol encodes an `Option<RecordData>`.
fn put_key(out: &mut Vec<u8>, key: Option<&[u8]>) {
    match key {
        None => out.push(0),
        Some(k) => {
            out.push(1);
            put_varint(out, k.len() as i64);
            out.extend_from_slice(k);
        }
    }
}

/// A key for an output record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKey<'a> {
    /// The input record's key, as it was.
    Keep,
    /// No key.
    None,
    /// This key.
    Bytes(&'a [u8]),
}

/// Appends one `SmartModuleOutput` to a buffer: the success count first (patched at the end),
/// the records, then the optional error.
pub struct OutputWriter<'b> {
    out: &'b mut Vec<u8>,
    count_at: usize,
    count: u32,
}

impl<'b> OutputWriter<'b> {
    /// Starts an output at the end of `out`.
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        let count_at = out.len();
        out.extend_from_slice(&[0; 4]);
        Self {
            out,
            count_at,
            count: 0,
        }
    }

    /// The input record, unchanged (a filter's pass).
    pub fn push_unchanged(&mut self, record: &InputRecord<'_>) {
        put_varint(self.out, record.encoded.whole.len() as i64);
        self.out.extend_from_slice(record.encoded.whole);
        self.count += 1;
    }

    /// The input record with a new value and the given key; its header (offset and timestamp
    /// deltas) and headers count are kept, as in the SDK's map and filter_map.
    pub fn push_mapped(&mut self, record: &InputRecord<'_>, key: OutputKey<'_>, value: &[u8]) {
        let encoded = &record.encoded;
        let key_len = match key {
            OutputKey::Keep => encoded.key.len(),
            OutputKey::None => key_size(None),
            OutputKey::Bytes(bytes) => key_size(Some(bytes)),
        };
        let inner = encoded.preamble.len()
            + key_len
            + varint_size(value.len() as i64)
            + value.len()
            + encoded.headers.len();
        self.out.reserve(varint_size(inner as i64) + inner);
        put_varint(self.out, inner as i64);
        put_small(self.out, encoded.preamble);
        match key {
            OutputKey::Keep => put_small(self.out, encoded.key),
            OutputKey::None => put_key(self.out, None),
            OutputKey::Bytes(bytes) => put_key(self.out, Some(bytes)),
        }
        put_varint(self.out, value.len() as i64);
        self.out.extend_from_slice(value);
        put_small(self.out, encoded.headers);
        self.count += 1;
    }

    /// A new record, as the SDK's array_map makes them: zero deltas, no headers.
    pub fn push_new(&mut self, key: Option<&[u8]>, value: &[u8]) {
        put_record(self.out, 0, 0, key, value);
        self.count += 1;
    }

    /// Closes the output: patches the count and writes the error, if any. Returns the count.
    pub fn finish(
        self,
        error: Option<
            &fluvio_smartmodule::dataplane::smartmodule::SmartModuleTransformRuntimeError,
        >,
        version: Version,
    ) -> Result<u32, WireError> {
        self.out[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_be_bytes());
        match error {
            None => self.out.push(0),
            Some(error) => {
                self.out.push(1);
                fluvio_protocol::Encoder::encode(error, self.out, version)
                    .map_err(|_| WireError::Invalid("error output"))?;
            }
        }
        Ok(self.count)
    }
}
