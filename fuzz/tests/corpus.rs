//! Replays the checked-in corpus (`fuzz/corpus/<target>/`: the seeds, and every input a
//! fuzzing run kept or found) through each target's checks, on stable Rust.

use std::path::{Path, PathBuf};

use fluvio_protocol::record::{Record, RecordKey};
use fluvio_protocol::Encoder;
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

#[test]
fn every_corpus_input_passes_its_targets_checks() {
    for (target, check) in stockstream_fuzz::TARGETS {
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
            .unwrap_or_else(|e| panic!("the {target} corpus: {e}"))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        inputs.sort();
        assert!(
            inputs.len() >= 5,
            "the {target} corpus has {} inputs",
            inputs.len()
        );
        for input in inputs {
            let data = std::fs::read(&input).expect("a corpus file");
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                panic!("{target} fails on {}", input.display());
            }
        }
    }
}

/// The SmartModule batch seeds: inputs as fluvio-smartengine encodes them, at the version it
/// calls modules with (22) and at older ones. Rewrites `corpus/smartmodule_batch/seed-*`:
/// `cargo test -p stockstream-fuzz -- --ignored write_batch_seeds`.
#[test]
#[ignore = "writes the seed corpus"]
fn write_batch_seeds() {
    let batches: [&[(Option<&str>, &str)]; 4] = [
        &[],
        &[(
            None,
            r#"{"symbol":"ES","ts":1378069200083,"price":1640.25,"volume":8}"#,
        )],
        &[(Some("ES"), "a"), (None, ""), (Some(""), "{}")],
        &[(None, "x"); 40],
    ];
    for (n, records) in batches.iter().enumerate() {
        for version in [22i16, 21, 15] {
            let records: Vec<Record> = records
                .iter()
                .enumerate()
                .map(|(i, (key, value))| {
                    let key = key.map_or(RecordKey::NULL, |k| {
                        RecordKey::from(str::as_bytes(k).to_vec())
                    });
                    let mut record = Record::new_key_value(key, str::as_bytes(value).to_vec());
                    record.preamble.set_offset_delta(i as i64);
                    record.preamble.set_timestamp_delta(i as i64 * 1000 - 5);
                    record
                })
                .collect();
            let mut input = SmartModuleInput::try_from_records(records, version).unwrap();
            input.set_base_offset(1 << 33);
            input.set_base_timestamp(1_378_069_200_083);
            let mut bytes = vec![version as u8];
            input.encode(&mut bytes, version).unwrap();
            let path = corpus_dir("smartmodule_batch").join(format!("seed-{n}-v{version}"));
            std::fs::write(path, bytes).unwrap();
        }
    }
}
