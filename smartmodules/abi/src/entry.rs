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

/// Key of the record that closes a batch's output when [`Session::progress`] is on. A NUL byte
/// keeps it apart from every symbol (spec: `A-Z a-z 0-9 . _ : -`) and from any key a person
/// types.
pub const PROGRESS_KEY: &[u8] = b"\0stockstream.progress";

/// Reserved parameter: mark each batch's end in its output (see [`Session`]).
pub const PROGRESS_PARAM: &str = "stockstream.progress";

/// Reserved parameter: the most bytes of output one input batch may give.
pub const MAX_OUTPUT_PARAM: &str = "stockstream.max_output";

/// Reserved parameter: input offsets whose records no module of the chain sees (space
/// separated): records that made a module fail, which the consumer dead-lettered.
pub const SKIP_PARAM: &str = "stockstream.skip";

/// Reserved parameter: the seed of a bounded restart (`stockstream_core::resume`), split
/// into `stockstream.resume.0`, `.1`, ... by [`resume_params`]: fluvio-protocol writes a
/// string's length in 16 bits, so a longer parameter would reach the module cut.
pub const RESUME_PARAM: &str = "stockstream.resume";

/// Longest piece of a seed in one parameter, well inside the 16-bit length.
const RESUME_PIECE: usize = 60_000;

/// The parameters that carry `seed` (space-separated tokens), each at most 60,000 bytes.
pub fn resume_params(seed: &str) -> Vec<(String, String)> {
    let mut pieces = Vec::new();
    let mut rest = seed.trim();
    while !rest.is_empty() {
        let mut cut = rest.len().min(RESUME_PIECE);
        if cut < rest.len() {
            // Cut at a space: a token never spans two pieces.
            cut = rest[..cut].rfind(' ').unwrap_or(cut);
        }
        pieces.push(rest[..cut].trim());
        rest = rest[cut..].trim_start();
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| (format!("{RESUME_PARAM}.{i}"), piece.to_owned()))
        .collect()
}

/// The seed [`resume_params`] split, joined again; `None` when there is none.
pub fn resume_seed(params: &SmartModuleExtraParams) -> Option<String> {
    let mut seed: Option<String> = None;
    for i in 0.. {
        let Some(piece) = params.get(&format!("{RESUME_PARAM}.{i}")) else {
            break;
        };
        let seed = seed.get_or_insert_with(String::new);
        if !seed.is_empty() {
            seed.push(' ');
        }
        seed.push_str(piece);
    }
    seed
}

/// What the stateful module appends to the progress records it writes or passes on (see
/// [`mark_with`]).
static MARK_TAIL: std::sync::Mutex<Option<MarkTail>> = std::sync::Mutex::new(None);

/// Appends a module's state summary to a progress record.
pub type MarkTail = fn(&mut Vec<u8>);

/// Has `tail` append the module's state summary to every progress record (a bars module: the
/// newest event time admitted), for the consumer's bounded restart
/// (`stockstream_runner::resume`). A module calls it from `init`.
pub fn mark_with(tail: MarkTail) {
    if let Ok(mut slot) = MARK_TAIL.lock() {
        *slot = Some(tail);
    }
}

fn mark_tail() -> Option<MarkTail> {
    MARK_TAIL.lock().ok().and_then(|slot| *slot)
}

/// What a consumer asked of this instance through the reserved `stockstream.*` parameters.
/// The modules ignore parameters they do not know, so the same `.wasm` serves
/// `fluvio consume --transforms`, the in-process engine and `stockstream materialize`.
///
/// Both exist for a consumer that reads a partition through the chain in an SPU in bounded
/// fetches (`stockstream materialize`):
/// - the SPU only answers a fetch when the chain emitted something, so a consumer cannot tell
///   "processed, no output" from "not processed yet". With `progress`, the first module of the
///   chain appends to every batch's output a record keyed [`PROGRESS_KEY`] whose value is the
///   batch's first offset and the offset after its last (two big-endian i64); the modules after
///   it pass that record on untouched, after their own output of the batch;
/// - an SPU (fluvio 0.50) drops, without a word, everything it read in a fetch when the output
///   of the first batch with output is larger than the consumer's `max_bytes`. With
///   `max_output`, such a batch fails with a message instead.
///
/// And `skip`: the input offsets of records that made a module fail (a poison pill). The
/// consumer dead-letters such a record and starts the chain again without it, so it never
/// meets the same failure twice; the output is that of the input without the record. An
/// entry `N..` leaves out every offset from N on: how a consumer finds the record a chain
/// traps on in an SPU, which names no offset for a trap (`skip_from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub progress: bool,
    pub max_output: Option<usize>,
    /// Sorted.
    pub skip: Vec<i64>,
    /// Every offset from this one on is left out too.
    pub skip_from: Option<i64>,
}

impl Session {
    /// Reads the reserved parameters; other parameters are the module's.
    pub fn from_params(params: &SmartModuleExtraParams) -> Result<Self> {
        let progress = match params.get(PROGRESS_PARAM).map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(fluvio_smartmodule::eyre!(
                "invalid value {other:?} for parameter `{PROGRESS_PARAM}`: expected true or false"
            ))
            }
        };
        let max_output = match params.get(MAX_OUTPUT_PARAM) {
            None => None,
            Some(value) => Some(value.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(
                || {
                    fluvio_smartmodule::eyre!(
                        "invalid value {value:?} for parameter `{MAX_OUTPUT_PARAM}`: expected a positive number of bytes"
                    )
                },
            )?),
        };
        let mut skip = Vec::new();
        let mut skip_from: Option<i64> = None;
        if let Some(value) = params.get(SKIP_PARAM) {
            for entry in value.split_ascii_whitespace() {
                let (offset, onwards) = match entry.strip_suffix("..") {
                    Some(start) => (start, true),
                    None => (entry, false),
                };
                let offset = offset.parse::<i64>().map_err(|_| {
                    fluvio_smartmodule::eyre!(
                        "invalid value {value:?} for parameter `{SKIP_PARAM}`: expected offsets (N, or N.. for N and every later one) separated by spaces"
                    )
                })?;
                if onwards {
                    skip_from = Some(skip_from.map_or(offset, |from| from.min(offset)));
                } else {
                    skip.push(offset);
                }
            }
        }
        skip.sort_unstable();
        Ok(Self {
            progress,
            max_output,
            skip,
            skip_from,
        })
    }

    /// Whether the record at `offset` is one the consumer asked to leave out.
    #[inline]
    fn skips(&self, offset: i64) -> bool {
        self.skip_from.is_some_and(|from| offset >= from)
            || (!self.skip.is_empty() && self.skip.binary_search(&offset).is_ok())
    }
}

/// The value of a progress record: the batch's first offset and the offset after its last.
pub fn progress_value(first: i64, end: i64) -> [u8; 16] {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&first.to_be_bytes());
    value[8..].copy_from_slice(&end.to_be_bytes());
    value
}

/// What a progress record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// The batch's first offset.
    pub first: i64,
    /// The offset after its last record.
    pub end: i64,
    /// What the chain's stateful module appended (see [`mark_with`]); empty if nothing.
    pub tail: &'a [u8],
}

/// The batch a progress record closes; `None` for any other record.
pub fn read_progress<'a>(key: Option<&[u8]>, value: &'a [u8]) -> Option<Progress<'a>> {
    if key != Some(PROGRESS_KEY) || value.len() < 16 {
        return None;
    }
    Some(Progress {
        first: i64::from_be_bytes(value[..8].try_into().expect("8 bytes")),
        end: i64::from_be_bytes(value[8..16].try_into().expect("8 bytes")),
        tail: &value[16..],
    })
}

/// The previous transform call, to recognise the host sending the same batch again.
///
/// An SPU (fluvio 0.50) that cuts a fetch at the consumer's `max_bytes` has already run the
/// batch at the cut through the chain; it drops that batch's output and sends the batch again
/// in the next fetch. Run twice, a stateful module would count its ticks twice. A call whose
/// input is byte for byte the previous call's (same base offset, same records) gets the
/// previous output again, and the module does not see the batch a second time. Hosts number
/// batches by offset, so in a stream the same input can only be the same records.
#[derive(Debug, Default)]
pub struct LastCall {
    input: Vec<u8>,
    status: Option<i32>,
}

impl LastCall {
    /// The status of the previous call when `input` repeats its input.
    pub fn repeated(&self, input: &[u8]) -> Option<i32> {
        // The base offset leads the input: a cheap test first, the whole batch only on a match.
        let status = self.status?;
        (input.len() == self.input.len()
            && input.get(..8) == self.input.get(..8)
            && input == self.input.as_slice())
        .then_some(status)
    }

    /// Records a call: `input` is swapped in (the caller gets the older buffer back to reuse).
    pub fn remember(&mut self, input: &mut Vec<u8>, status: i32) {
        std::mem::swap(&mut self.input, input);
        self.status = Some(status);
    }

    /// The kept input's buffer, for the host to trim after an unusually large batch.
    pub fn input_mut(&mut self) -> &mut Vec<u8> {
        &mut self.input
    }
}

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
    session: &Session,
    kind: SmartModuleKind,
    mut each: impl FnMut(&InputRecord<'_>, &mut OutputWriter<'_>) -> Result<()>,
) -> i32 {
    let batch = match Batch::decode(input, version) {
        Ok(batch) => batch,
        Err(error) => return decoding_failed(error),
    };
    let start = out.len();
    let mut writer = OutputWriter::new(out);
    let mut error = None;
    let mut marked = false;
    let mut last_offset = None;
    let tail = if session.progress { mark_tail() } else { None };
    let mut mark = Vec::new();
    for record in batch.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => return decoding_failed(error),
        };
        if session.progress && record.key == Some(PROGRESS_KEY) {
            // An earlier module of the chain marked the batch: pass the mark on, unseen, and
            // with this module's summary if it keeps the state.
            match tail {
                Some(tail) => {
                    mark.extend_from_slice(record.value);
                    tail(&mut mark);
                    writer.push_new(Some(PROGRESS_KEY), &mark);
                }
                None => writer.push_unchanged(&record),
            }
            marked = true;
            continue;
        }
        last_offset = Some(record.offset);
        if session.skips(record.offset) {
            continue;
        }
        if let Err(failure) = each(&record, &mut writer) {
            error = Some(transform_error(&record, kind.clone(), &failure));
            break;
        }
    }
    if session.progress && !marked && error.is_none() {
        let end = last_offset.map_or(batch.base_offset, |offset| offset.saturating_add(1));
        mark.extend_from_slice(&progress_value(batch.base_offset, end));
        if let Some(tail) = tail {
            tail(&mut mark);
        }
        writer.push_new(Some(PROGRESS_KEY), &mark);
    }
    if session.progress && error.is_some() {
        // A chain in an SPU (fluvio 0.50) that fails in a module sends that module's records
        // before the failure as the chain's output: from a module that is not the last, half-
        // made records. A consumer that reads marks starts the batch again anyway.
        out.truncate(start);
        writer = OutputWriter::new(out);
    }
    let status = match writer.finish(error.as_ref(), version) {
        Ok(count) => count as i32,
        Err(_) => return SmartModuleTransformErrorStatus::EncodingOutput as i32,
    };
    match session.max_output {
        Some(limit) if out.len() - start > limit => {
            too_much_output(&batch, out, start, limit, kind, version)
        }
        _ => status,
    }
}

/// Replaces an output larger than the consumer can take in one fetch by an error that says
/// so (see [`Session`]).
fn too_much_output(
    batch: &Batch<'_>,
    out: &mut Vec<u8>,
    start: usize,
    limit: usize,
    kind: SmartModuleKind,
    version: Version,
) -> i32 {
    let size = out.len() - start;
    out.truncate(start);
    let error = SmartModuleTransformRuntimeError {
        hint: format!(
            "the {} records of the batch at offset {} make {size} bytes of output, more than one fetch may carry ({limit} bytes): raise the fetch size (stockstream materialize --fetch-bytes)",
            batch.len(),
            batch.base_offset
        ),
        offset: batch.base_offset,
        kind,
        record_key: None,
        record_value: RecordData::from(Vec::new()),
    };
    // As for a record a module fails on: no records, the error in the output.
    match OutputWriter::new(out).finish(Some(&error), version) {
        Ok(count) => count as i32,
        Err(_) => SmartModuleTransformErrorStatus::EncodingOutput as i32,
    }
}

/// `filter`: keeps the records `keep` returns true for, unchanged.
pub fn filter(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    session: &Session,
    mut keep: impl FnMut(&InputRecord<'_>) -> Result<bool>,
) -> i32 {
    transform(
        input,
        version,
        out,
        session,
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
    session: &Session,
    scratch: &mut Scratch,
    mut map: impl FnMut(&InputRecord<'_>, &mut RecordOut<'_>) -> Result<()>,
) -> i32 {
    transform(
        input,
        version,
        out,
        session,
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
    session: &Session,
    scratch: &mut Scratch,
    mut map: impl FnMut(&InputRecord<'_>, &mut RecordOut<'_>) -> Result<bool>,
) -> i32 {
    transform(
        input,
        version,
        out,
        session,
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
    session: &Session,
    scratch: &mut Scratch,
    mut map: impl FnMut(&InputRecord<'_>, &mut RecordsOut<'_, '_, '_>) -> Result<()>,
) -> i32 {
    transform(
        input,
        version,
        out,
        session,
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

/// `init`: decodes the parameters with fluvio-protocol (once per instance), reads the reserved
/// ones into `session` and hands them all over.
pub fn init(
    input: &[u8],
    version: Version,
    out: &mut Vec<u8>,
    session: &mut Session,
    init: impl FnOnce(SmartModuleExtraParams) -> Result<()>,
) -> i32 {
    let mut decoded = SmartModuleInitInput::default();
    if decoded.decode(&mut &input[..], version).is_err() {
        return SmartModuleInitErrorStatus::DecodingInput as i32;
    }
    let result = Session::from_params(&decoded.params).and_then(|read| {
        *session = read;
        init(decoded.params)
    });
    match result {
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
