//! The entry points against fluvio-protocol's own codec: every output must be byte for byte
//! what the SDK's generated glue encodes for the same records and results.

use std::collections::BTreeMap;

use fluvio_protocol::record::{Record as FluvioRecord, RecordData, RecordKey};
use fluvio_protocol::{Decoder, DecoderVarInt, Encoder, EncoderVarInt};
use fluvio_smartmodule::dataplane::smartmodule::{
    Lookback, SmartModuleExtraParams, SmartModuleInitInput, SmartModuleInitOutput,
    SmartModuleInput, SmartModuleKind, SmartModuleLookbackOutput, SmartModuleOutput,
    SmartModuleTransformRuntimeError,
};
use proptest::prelude::*;
use stockstream_smartmodule::{entry, eyre, wire, Record, Scratch, Session};

/// The version fluvio-smartengine 0.50 and its SPUs call modules with.
const VERSION: i16 = 22;

/// Error hints are eyre's `{:?}`, which holds a backtrace when the environment asks for one
/// natively (never in WASM); the comparisons need the same text on both sides.
fn no_backtraces() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("RUST_LIB_BACKTRACE", "0"));
}

/// A record as a test describes it.
#[derive(Debug, Clone)]
struct Spec {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    timestamp_delta: i64,
}

fn fluvio_records(specs: &[Spec]) -> Vec<FluvioRecord> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let key = spec.key.clone().map_or(RecordKey::NULL, RecordKey::from);
            let mut record = FluvioRecord::new_key_value(key, spec.value.clone());
            record.preamble.set_offset_delta(i as i64);
            record.preamble.set_timestamp_delta(spec.timestamp_delta);
            record
        })
        .collect()
}

/// The encoded `SmartModuleInput` the engine writes into the module's memory.
fn encoded_input(specs: &[Spec], base_offset: i64, base_timestamp: i64, version: i16) -> Vec<u8> {
    let mut input = SmartModuleInput::try_from_records(fluvio_records(specs), version).unwrap();
    input.set_base_offset(base_offset);
    input.set_base_timestamp(base_timestamp);
    let mut bytes = Vec::new();
    input.encode(&mut bytes, version).unwrap();
    bytes
}

/// What a test function does with one record.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Drop,
    Keep,
    /// Emit `value` with a suffix, under the same or a new key.
    Rewrite {
        new_key: bool,
    },
    /// Emit this many new records.
    Many(usize),
}

fn action_for(value: &[u8]) -> Action {
    match value.first().copied().unwrap_or(0) % 6 {
        0 => Action::Drop,
        1 => Action::Keep,
        2 => Action::Rewrite { new_key: false },
        3 => Action::Rewrite { new_key: true },
        4 => Action::Many(value.len() % 3),
        _ => Action::Keep,
    }
}

fn rewritten(value: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    out.extend_from_slice(b"+mapped");
    out
}

/// The SDK glue's output for `kind`, built with fluvio-protocol's types and encoder.
fn sdk_output(
    kind: SmartModuleKind,
    specs: &[Spec],
    base_offset: i64,
    fail_at: Option<usize>,
) -> Vec<u8> {
    let mut successes = Vec::new();
    let mut error = None;
    for (i, record) in fluvio_records(specs).into_iter().enumerate() {
        if fail_at == Some(i) {
            let failure = eyre!("record {i} is bad");
            error = Some(SmartModuleTransformRuntimeError::new(
                &record,
                base_offset,
                kind.clone(),
                failure,
            ));
            break;
        }
        let action = action_for(record.value.as_ref());
        match kind {
            SmartModuleKind::Filter => {
                if action != Action::Drop {
                    successes.push(record);
                }
            }
            SmartModuleKind::Map | SmartModuleKind::FilterMap => {
                if kind == SmartModuleKind::FilterMap && action == Action::Drop {
                    continue;
                }
                let mut out = record.clone();
                out.value = RecordData::from(rewritten(record.value.as_ref()));
                if action == (Action::Rewrite { new_key: true }) {
                    out.key = Some(RecordData::from(b"new-key".to_vec()));
                }
                successes.push(out);
            }
            SmartModuleKind::ArrayMap => {
                for n in 0..emitted_count(action) {
                    let key = if n % 2 == 0 {
                        RecordKey::from(format!("k{n}").into_bytes())
                    } else {
                        RecordKey::NULL
                    };
                    successes.push(FluvioRecord::new_key_value(
                        key,
                        rewritten(record.value.as_ref()),
                    ));
                }
            }
            _ => unreachable!(),
        }
    }
    let output = SmartModuleOutput { successes, error };
    let mut bytes = Vec::new();
    output.encode(&mut bytes, VERSION).unwrap();
    bytes
}

fn emitted_count(action: Action) -> usize {
    match action {
        Action::Many(n) => n,
        Action::Drop => 0,
        _ => 1,
    }
}

/// Runs `kind` through the project's entry points with the same behaviour as [`sdk_output`].
fn our_output(
    kind: SmartModuleKind,
    input: &[u8],
    fail_at: Option<usize>,
    scratch: &mut Scratch,
) -> (i32, Vec<u8>) {
    let mut out = Vec::new();
    let mut index = 0usize;
    let mut next = |record: &Record| {
        let i = index;
        index += 1;
        if fail_at == Some(i) {
            return Err(eyre!("record {i} is bad"));
        }
        Ok(action_for(record.value))
    };
    let status = match kind {
        SmartModuleKind::Filter => {
            entry::filter(input, VERSION, &mut out, &Session::default(), |record| {
                Ok(next(record)? != Action::Drop)
            })
        }
        SmartModuleKind::Map => entry::map(
            input,
            VERSION,
            &mut out,
            &Session::default(),
            scratch,
            |record, emit| {
                let action = next(record)?;
                emit.value().extend_from_slice(&rewritten(record.value));
                if action == (Action::Rewrite { new_key: true }) {
                    emit.set_key(Some(b"new-key"));
                }
                Ok(())
            },
        ),
        SmartModuleKind::FilterMap => entry::filter_map(
            input,
            VERSION,
            &mut out,
            &Session::default(),
            scratch,
            |record, emit| {
                let action = next(record)?;
                if action == Action::Drop {
                    return Ok(false);
                }
                emit.value().extend_from_slice(&rewritten(record.value));
                if action == (Action::Rewrite { new_key: true }) {
                    emit.set_key(Some(b"new-key"));
                }
                Ok(true)
            },
        ),
        SmartModuleKind::ArrayMap => entry::array_map(
            input,
            VERSION,
            &mut out,
            &Session::default(),
            scratch,
            |record, emit| {
                let action = next(record)?;
                for n in 0..emitted_count(action) {
                    let key = format!("k{n}");
                    let key = (n % 2 == 0).then_some(key.as_bytes());
                    emit.push(key, |value| {
                        value.extend_from_slice(&rewritten(record.value))
                    });
                }
                Ok(())
            },
        ),
        _ => unreachable!(),
    };
    (status, out)
}

const KINDS: [SmartModuleKind; 4] = [
    SmartModuleKind::Filter,
    SmartModuleKind::Map,
    SmartModuleKind::FilterMap,
    SmartModuleKind::ArrayMap,
];

fn check_all_kinds(specs: &[Spec], base_offset: i64, fail_at: Option<usize>) {
    no_backtraces();
    let input = encoded_input(specs, base_offset, 1_700_000_000_000, VERSION);
    let mut scratch = Scratch::new();
    for kind in KINDS {
        let expected = sdk_output(kind.clone(), specs, base_offset, fail_at);
        let (status, ours) = our_output(kind.clone(), &input, fail_at, &mut scratch);
        assert_eq!(
            ours, expected,
            "{kind:?} output differs from the SDK's encoding"
        );
        let decoded = SmartModuleOutput::decode_from(&mut &ours[..], VERSION).unwrap();
        assert_eq!(status, decoded.successes.len() as i32, "{kind:?} status");
    }
}

fn spec(key: Option<&str>, value: &[u8]) -> Spec {
    Spec {
        key: key.map(|k| k.as_bytes().to_vec()),
        value: value.to_vec(),
        timestamp_delta: 0,
    }
}

#[test]
fn an_empty_batch_gives_an_empty_output() {
    check_all_kinds(&[], 0, None);
}

#[test]
fn keys_absent_and_present_are_kept_or_replaced_as_the_sdk_does() {
    let specs = [
        spec(None, b"\x01keep"),
        spec(Some("AAPL"), b"\x01keep"),
        spec(Some(""), b"\x02map"),
        spec(Some("MSFT"), b"\x03rekey"),
        spec(None, b"\x03rekey"),
        spec(None, b"\x00drop"),
        spec(Some("IBM"), b"\x04\x04\x04\x04many"),
        spec(Some("NVDA"), b""),
    ];
    check_all_kinds(&specs, 1234, None);
}

#[test]
fn large_values_pass_whole() {
    let mut big = vec![b'x'; 3 << 20];
    big[0] = 2;
    let specs = [
        spec(Some("AAPL"), &big),
        spec(None, b"\x01small"),
        spec(None, &big),
    ];
    check_all_kinds(&specs, 0, None);
}

#[test]
fn an_error_keeps_the_records_before_it_and_reports_the_failing_one() {
    let specs: Vec<Spec> = (0..10u8)
        .map(|i| spec((i % 2 == 0).then_some("K"), &[i % 5, b'v', i]))
        .collect();
    for fail_at in [0, 4, 9] {
        check_all_kinds(&specs, 500, Some(fail_at));
    }
}

#[test]
fn a_failing_first_record_at_a_large_base_offset_reports_its_offset() {
    let specs = [spec(None, b"\x01a"), spec(None, b"\x01b")];
    check_all_kinds(&specs, i64::from(i32::MAX) * 4, Some(1));
}

#[test]
fn record_offsets_and_timestamps_are_base_plus_delta() {
    let mut specs = vec![spec(None, b"a"), spec(Some("k"), b"b"), spec(None, b"c")];
    specs[1].timestamp_delta = 250;
    specs[2].timestamp_delta = 1_000_000;
    let input = encoded_input(&specs, 40, 1_700_000_000_000, VERSION);
    let batch = wire::Batch::decode(&input, VERSION).unwrap();
    type Seen = (i64, i64, Option<Vec<u8>>, Vec<u8>);
    let seen: Vec<Seen> = batch
        .records()
        .map(|r| r.unwrap())
        .map(|r| {
            (
                r.offset,
                r.timestamp,
                r.key.map(<[u8]>::to_vec),
                r.value.to_vec(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (40, 1_700_000_000_000, None, b"a".to_vec()),
            (41, 1_700_000_000_250, Some(b"k".to_vec()), b"b".to_vec()),
            (42, 1_700_001_000_000, None, b"c".to_vec()),
        ]
    );
}

#[test]
fn older_input_versions_are_read_with_their_fields() {
    let specs = [spec(Some("k"), b"one"), spec(None, b"two")];
    for version in [13, 16, 20, 21, 22, 23, 25] {
        let input = encoded_input(&specs, 7, 99, version);
        let batch = wire::Batch::decode(&input, version).unwrap();
        let values: Vec<Vec<u8>> = batch.records().map(|r| r.unwrap().value.to_vec()).collect();
        assert_eq!(
            values,
            vec![b"one".to_vec(), b"two".to_vec()],
            "version {version}"
        );
        assert_eq!(batch.base_offset, 7);
        let expected_timestamp = if version >= 22 { 99 } else { 0 };
        assert_eq!(
            batch.base_timestamp, expected_timestamp,
            "version {version}"
        );
    }
}

#[test]
fn truncated_inputs_are_refused_with_the_sdks_status() {
    let specs = [spec(Some("k"), b"one"), spec(None, b"two")];
    let input = encoded_input(&specs, 0, 0, VERSION);
    let mut scratch = Scratch::new();
    for cut in [0, 5, 12, 14, 20] {
        let (status, _) = our_output(
            SmartModuleKind::Map,
            &input[..cut.min(input.len())],
            None,
            &mut scratch,
        );
        assert_eq!(status, -11, "input cut at {cut}");
    }
}

#[test]
fn look_back_sees_every_record_and_reports_a_failure_as_the_sdk_does() {
    no_backtraces();
    let specs = [
        spec(Some("k"), b"one"),
        spec(None, b"two"),
        spec(None, b"bad"),
    ];
    let input = encoded_input(&specs, 10, 0, VERSION);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let status = entry::look_back(&input, VERSION, &mut out, |record| {
        seen.push(record.value.to_vec());
        Ok(())
    });
    assert_eq!((status, out.len(), seen.len()), (0, 0, 3));

    let status = entry::look_back(&input, VERSION, &mut out, |record| {
        if record.value == b"bad" {
            Err(eyre!("cannot rebuild"))
        } else {
            Ok(())
        }
    });
    assert_eq!(status, -99);
    let output = SmartModuleLookbackOutput::decode_from(&mut &out[..], VERSION).unwrap();
    assert_eq!(output.error.offset, 12);
    assert_eq!(output.error.record_value.as_ref(), b"bad");
    assert_eq!(output.error.hint, format!("{:?}", eyre!("cannot rebuild")));
}

#[test]
fn init_gets_the_parameters_and_reports_a_refusal() {
    let mut params = BTreeMap::new();
    params.insert("window".to_owned(), "5m".to_owned());
    let input = SmartModuleInitInput {
        params: SmartModuleExtraParams::new(params, Some(Lookback::last(10))),
    };
    let mut bytes = Vec::new();
    input.encode(&mut bytes, VERSION).unwrap();

    let mut out = Vec::new();
    let mut got = None;
    let status = entry::init(
        &bytes,
        VERSION,
        &mut out,
        &mut Session::default(),
        |params| {
            got = params.get("window").cloned();
            Ok(())
        },
    );
    assert_eq!((status, got.as_deref(), out.len()), (0, Some("5m"), 0));

    let status = entry::init(&bytes, VERSION, &mut out, &mut Session::default(), |_| {
        Err(eyre!("bad window"))
    });
    assert_eq!(status, -2);
    let output = SmartModuleInitOutput::decode_from(&mut &out[..], VERSION).unwrap();
    assert!(
        output.error.hint.contains("bad window"),
        "{}",
        output.error.hint
    );

    assert_eq!(
        entry::init(
            &bytes[..3],
            VERSION,
            &mut out,
            &mut Session::default(),
            |_| Ok(())
        ),
        -10
    );
}

/// A version-23 input of `count` records encoded as `records`, at base offset `base`.
fn raw_input(base: i64, count: i32, records: &[u8]) -> Vec<u8> {
    let mut input = base.to_be_bytes().to_vec();
    input.extend_from_slice(&(records.len() as i32 + 4).to_be_bytes());
    input.extend_from_slice(&count.to_be_bytes());
    input.extend_from_slice(records);
    input.extend_from_slice(&0i64.to_be_bytes());
    input
}

#[test]
fn a_varint_longer_than_fluvio_protocol_writes_is_refused() {
    // One record whose length is an 11-byte varint: fluvio-protocol's reader shifts past 64
    // bits on it (a panic in its debug builds), so there is no right reading to match.
    let eleven = [[0x80; 10].as_slice(), &[0x00]].concat();
    let input = raw_input(0, 1, &eleven);
    let batch = wire::Batch::decode(&input, VERSION + 1).unwrap();
    let first = batch.records().next().unwrap();
    assert!(
        matches!(first, Err(wire::WireError::Invalid("record length"))),
        "{first:?}"
    );
    // Ten bytes, the most it writes, still read.
    let ten = [[0x80; 9].as_slice(), &[0x00]].concat();
    let input = raw_input(0, 1, &ten);
    let batch = wire::Batch::decode(&input, VERSION + 1).unwrap();
    assert!(!matches!(
        batch.records().next().unwrap(),
        Err(wire::WireError::Invalid(_))
    ));
}

#[test]
fn a_varint_with_bit_63_set_reads_as_fluvio_protocol_reads_it() {
    // Ten bytes setting every bit: fluvio-protocol undoes the zigzag with an arithmetic shift.
    let mut encoded = vec![0xff; 9];
    encoded.push(0x01);
    let mut theirs = 0i64;
    theirs
        .decode_varint(&mut std::io::Cursor::new(&encoded))
        .unwrap();
    // A record whose offset delta is that varint.
    let mut record = vec![0u8]; // attributes
    record.push(0); // timestamp delta
    record.extend_from_slice(&encoded);
    record.extend_from_slice(&[0, 0, 0]); // no key, empty value, no headers
    let mut records = Vec::new();
    wire::put_varint(&mut records, record.len() as i64);
    records.extend_from_slice(&record);
    let input = raw_input(5, 1, &records);
    let batch = wire::Batch::decode(&input, VERSION + 1).unwrap();
    let ours = batch.records().next().unwrap().unwrap();
    assert_eq!(ours.offset, 5i64.wrapping_add(theirs));
}

#[test]
fn deprecated_parameters_are_stepped_over_as_fluvio_protocol_reads_them() {
    let encoded = |params: SmartModuleExtraParams| {
        let mut input = 7i64.to_be_bytes().to_vec();
        input.extend_from_slice(&4i32.to_be_bytes());
        input.extend_from_slice(&0i32.to_be_bytes());
        params.encode(&mut input, VERSION).unwrap();
        input.extend_from_slice(&0i32.to_be_bytes()); // join_record
        input.extend_from_slice(&99i64.to_be_bytes());
        input
    };
    let mut map = BTreeMap::new();
    map.insert("key".to_owned(), "välue".to_owned());
    map.insert(String::new(), String::new());
    let lookback = Lookback::age(std::time::Duration::new(5, 7), Some(3));
    let input = encoded(SmartModuleExtraParams::new(map, Some(lookback)));
    let batch = wire::Batch::decode(&input, VERSION).unwrap();
    assert_eq!(
        (batch.base_offset, batch.base_timestamp, batch.len()),
        (7, 99, 0)
    );
    // An age whose nanoseconds carry past u64::MAX seconds: fluvio-protocol's own decoder
    // panics in Duration::new; it is refused.
    let mut input = encoded(SmartModuleExtraParams::new(
        BTreeMap::new(),
        Some(Lookback::age(std::time::Duration::new(u64::MAX, 0), None)),
    ));
    // The age's nanoseconds follow its seconds, right before join_record and the timestamp.
    let nanos_at = input.len() - 12 - 4;
    input[nanos_at..nanos_at + 4].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    assert!(matches!(
        wire::Batch::decode(&input, VERSION),
        Err(wire::WireError::Invalid("params"))
    ));
}

#[test]
fn varints_match_fluvio_protocol_at_the_edges() {
    for value in [
        0,
        1,
        -1,
        63,
        64,
        8191,
        8192,
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        1 << 40,
        -(1 << 40),
        i64::MAX,
        i64::MIN,
    ] {
        let mut ours = Vec::new();
        wire::put_varint(&mut ours, value);
        let mut theirs = Vec::new();
        value.encode_varint(&mut theirs).unwrap();
        assert_eq!(ours, theirs, "{value}");
        assert_eq!(wire::varint_size(value), theirs.len(), "{value}");
    }
}

fn any_spec() -> impl Strategy<Value = Spec> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::collection::vec(any::<u8>(), 0..300),
        0i64..5_000_000,
    )
        .prop_map(|(key, value, timestamp_delta)| Spec {
            key,
            value,
            timestamp_delta,
        })
}

proptest! {
    #[test]
    fn any_batch_encodes_as_the_sdk_does(
        specs in proptest::collection::vec(any_spec(), 0..40),
        base_offset in 0i64..1 << 40,
        fail_at in proptest::option::of(0usize..40),
    ) {
        check_all_kinds(&specs, base_offset, fail_at.filter(|&i| i < specs.len()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut scratch = Scratch::new();
        for kind in KINDS {
            let _ = our_output(kind, &bytes, None, &mut scratch);
        }
        let _ = entry::look_back(&bytes, VERSION, &mut Vec::new(), |_| Ok(()));
        let _ = entry::init(&bytes, VERSION, &mut Vec::new(), &mut Session::default(), |_| Ok(()));
    }
}
