//! What the entry-point tests share: batches encoded and outputs decoded with
//! fluvio-protocol's own codec.
#![allow(dead_code)]

use fluvio_protocol::record::{Record as FluvioRecord, RecordKey};
use fluvio_protocol::{Decoder, Encoder};
use fluvio_smartmodule::dataplane::smartmodule::{SmartModuleInput, SmartModuleOutput};
use stockstream_smartmodule::Session;

pub const VERSION: i16 = 22;

pub fn input(values: &[&str], base_offset: i64) -> Vec<u8> {
    let records: Vec<FluvioRecord> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let mut record = FluvioRecord::new_key_value(
                RecordKey::from(b"AAPL".to_vec()),
                str::as_bytes(value).to_vec(),
            );
            record.preamble.set_offset_delta(i as i64);
            record
        })
        .collect();
    from_records(records, base_offset)
}

pub fn from_records(records: Vec<FluvioRecord>, base_offset: i64) -> Vec<u8> {
    let mut input = SmartModuleInput::try_from_records(records, VERSION).unwrap();
    input.set_base_offset(base_offset);
    let mut bytes = Vec::new();
    input.encode(&mut bytes, VERSION).unwrap();
    bytes
}

pub fn decode(out: &[u8]) -> SmartModuleOutput {
    SmartModuleOutput::decode_from(&mut &out[..], VERSION).unwrap()
}

pub const PROGRESS: Session = Session {
    progress: true,
    max_output: None,
    skip: Vec::new(),
    skip_from: None,
};
