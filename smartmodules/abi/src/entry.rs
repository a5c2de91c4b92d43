//! One call of a SmartModule entry point, as plain functions over byte slices: decode the
//! input, run the module's function on each record, encode the output into a reused buffer.
//!
//! The WASM exports ([`crate::host`]) only add the buffers and `copy_records`; everything here
//! also runs natively, which is how it is tested against fluvio-protocol's own codec.

use fluvio_protocol::record::RecordData;
use fluvio_protocol::{Decoder, Encoder, Version};
use fluvio_smartmodule::dataplane::smartmodule::{
    SmartModuleExtraParams, SmartModuleInitErrorStatus, SmartModuleInitInput,
    SmartModuleInitOutput, SmartModuleInitRuntimeError, SmartModuleKind,
    SmartModuleLookbackErrorStatus, SmartModuleLookbackOutput, SmartModuleLookbackRuntimeError,
    SmartModuleTransformErrorStatus, SmartModuleTransformRuntimeError,
};

use crate::wire::{Batch, InputRecord, OutputKey, OutputWriter, WireError};

/// What a module's function may fail with (the SDK's `fluvio_smartmodule::Result`).
pub type Result<T> = fluvio_smartmodule::Result<T>;

/// Scratch space reused across records and calls, so that writing a value allocates only when
/// a value is larger than any before it.
#[derive(Debug, Default)]
pub struct Scratch {
    value: Vec<u8>,
    key: Vec<u8>,
}

impl Scratch {
    pub const fn new() -> Self {
        Self {
            value: Vec::new(),
            key: Vec::new(),
        }
    }

    /// Gives back memory after an unusually large record, keeping `retain` bytes of each buffer.
    pub fn trim(&mut self, retain: usize) {
        for buffer in [&mut self.value, &mut self.key] {
            if buffer.capacity() > retain {
                buffer.clear();
                buffer.shrink_to(retain);
            }
        }
    }
}

/// The record a map or filter_map writes: the value into [`RecordOut::value`], and optionally a
/// new key (by default the input record's key is kept, as in the SDK).
pub struct RecordOut<'s> {
    value: &'s mut Vec<u8>,
    key: &'s mut Vec<u8>,
    key_choice: KeyChoice,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyChoice {
    Keep,
    None,
    Set,
}

impl<'s> RecordOut<'s> {
    fn new(scratch: &'s mut Scratch) -> Self {
        scratch.value.clear();
        Self {
            value: &mut scratch.value,
            key: &mut scratch.key,
            key_choice: KeyChoice::Keep,
        }
    }

    /// The output value, empty when the function is called.
    pub fn value(&mut self) -> &mut Vec<u8> {
        self.value
    }

    /// Replaces the input record's key (`None` removes it).
    pub fn set_key(&mut self, key: Option<&[u8]>) {
        match key {
            None => self.key_choice = KeyChoice::None,
            Some(bytes) => {
                self.key.clear();
                self.key.extend_from_slice(bytes);
                self.key_choice = KeyChoice::Set;
            }
        }
    }

    fn output_key(&self) -> OutputKey<'_> {
        match self.key_choice {
            KeyChoice::Keep => OutputKey::Keep,
            KeyChoice::None => OutputKey::None,
            KeyChoice::Set => OutputKey::Bytes(self.key),
        }
    }
}

/// The records an array_map emits for one input record.
pub struct RecordsOut<'w, 'b, 's> {
    writer: &'w mut OutputWriter<'b>,
    value: &'s mut Vec<u8>,
}

impl RecordsOut<'_, '_, '_> {
    /// Emits one record with `key`, its value written by `write_value` into an empty buffer.
    pub fn push(&mut self, key: Option<&[u8]>, write_value: impl FnOnce(&mut Vec<u8>)) {
        self.value.clear();
        write_value(self.value);
        self.writer.push_new(key, self.value);
    }
}

/// The SDK's error for a record a function failed on (built only on that path).
fn transform_error(
    record: &InputRecord<'_>,
    kind: SmartModuleKind,
    error: &fluvio_smartmodule::Error,
) -> SmartModuleTransformRuntimeError {
    SmartModuleTransformRuntimeError {
        hint: format!("{error:?}"),
        offset: record.offset,
        kind,
        record_key: record.key.map(RecordData::from),
        record_value: RecordData::from(record.value),
    }
}

/// Status for an input that could not be decoded, as the SDK's glue reports it.
fn decoding_failed(_: WireError) -> i32 {
    SmartModuleTransformErrorStatus::DecodingBaseInput as i32
}

/// Runs one transform call: `each` sees every record in order and writes what it emits; a
/// record it fails on ends the batch with that error (the records before it are kept).
///
/// Records are decoded as they are walked. A batch malformed half-way (which only a broken host
/// sends) is refused at that record, after the records before it were seen; the SDK refused it
/// before any.
fn transform(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    kind: SmartModuleKind,
    mut each: impl FnMut(&InputRecord<'_>, &mut OutputWriter<'_>) -> Result<()>,
) -> i32 {
    let batch = match Batch::decode(input, version) {
        Ok(batch) => batch,
        Err(error) => return decoding_failed(error),
    };
    let mut writer = OutputWriter::new(out);
    let mut error = None;
    for record in batch.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => return decoding_failed(error),
        };
        if let Err(failure) = each(&record, &mut writer) {
            error = Some(transform_error(&record, kind, &failure));
            break;
        }
    }
    match writer.finish(error.as_ref(), version) {
        Ok(count) => count as i32,
        Err(_) => SmartModuleTransformErrorStatus::EncodingOutput as i32,
    }
}

/// `filter`: keeps the records `keep` returns true for, unchanged.
pub fn filter(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(&InputRecord<'_>) -> Result<bool>,
) -> i32 {
    transform(
        input,
        version,
        out,
        SmartModuleKind::Filter,
        |record, writer| {
            if keep(record)? {
                writer.push_unchanged(record);
            }
            Ok(())
        },
    )
}

/// `map`: one output record per input record.
pub fn map(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
    mut map: impl FnMut(&InputRecord<'_>, &mut RecordOut<'_>) -> Result<()>,
) -> i32 {
    transform(
        input,
        version,
        out,
        SmartModuleKind::Map,
        |record, writer| {
            let mut emitted = RecordOut::new(scratch);
            map(record, &mut emitted)?;
            writer.push_mapped(record, emitted.output_key(), emitted.value);
            Ok(())
        },
    )
}

/// `filter_map`: at most one output record per input record (emitted when `map` returns true).
pub fn filter_map(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
    mut map: impl FnMut(&InputRecord<'_>, &mut RecordOut<'_>) -> Result<bool>,
) -> i32 {
    transform(
        input,
        version,
        out,
        SmartModuleKind::FilterMap,
        |record, writer| {
            let mut emitted = RecordOut::new(scratch);
            if map(record, &mut emitted)? {
                writer.push_mapped(record, emitted.output_key(), emitted.value);
            }
            Ok(())
        },
    )
}

/// `array_map`: any number of new records per input record.
pub fn array_map(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
    mut map: impl FnMut(&InputRecord<'_>, &mut RecordsOut<'_, '_, '_>) -> Result<()>,
) -> i32 {
    transform(
        input,
        version,
        out,
        SmartModuleKind::ArrayMap,
        |record, writer| {
            let mut records = RecordsOut {
                writer,
                value: &mut scratch.value,
            };
            map(record, &mut records)
        },
    )
}

/// `look_back`: `each` sees the records that rebuild the module's state; nothing is emitted.
/// A failure is written to `out` and reported with the SDK's status.
pub fn look_back(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    mut each: impl FnMut(&InputRecord<'_>) -> Result<()>,
) -> i32 {
    let batch = match Batch::decode(input, version) {
        Ok(batch) => batch,
        Err(_) => return SmartModuleLookbackErrorStatus::DecodingBaseInput as i32,
    };
    for record in batch.records() {
        let Ok(record) = record else {
            return SmartModuleLookbackErrorStatus::DecodingRecords as i32;
        };
        if let Err(error) = each(&record) {
            let output = SmartModuleLookbackOutput {
                error: SmartModuleLookbackRuntimeError {
                    hint: format!("{error:?}"),
                    offset: record.offset,
                    record_key: record.key.map(RecordData::from),
                    record_value: RecordData::from(record.value),
                },
            };
            if output.encode(out, version).is_err() {
                return SmartModuleLookbackErrorStatus::EncodingOutput as i32;
            }
            return SmartModuleLookbackErrorStatus::PropagatedError as i32;
        }
    }
    0
}

/// `init`: decodes the parameters with fluvio-protocol (once per instance) and hands them over.
pub fn init(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    init: impl FnOnce(SmartModuleExtraParams) -> Result<()>,
) -> i32 {
    let mut decoded = SmartModuleInitInput::default();
    if decoded.decode(&mut &input[..], version).is_err() {
        return SmartModuleInitErrorStatus::DecodingInput as i32;
    }
    match init(decoded.params) {
        Ok(()) => 0,
        Err(error) => {
            let output = SmartModuleInitOutput {
                error: SmartModuleInitRuntimeError::new(error),
            };
            if output.encode(out, version).is_err() {
                return SmartModuleInitErrorStatus::EncodingOutput as i32;
            }
            SmartModuleInitErrorStatus::InitError as i32
        }
    }
}
