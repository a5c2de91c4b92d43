//! A stateful module's summary in the progress records (`entry::mark_with`), and the seed of
//! a bounded restart split into parameters. Its own test binary: `mark_with` is per process.

mod common;
use common::*;

use std::collections::BTreeMap;

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;
use stockstream_smartmodule::entry::{self, PROGRESS_KEY, RESUME_PARAM};
use stockstream_smartmodule::{mark_with, read_progress, resume_params, resume_seed, Scratch};

fn summary(mark: &mut Vec<u8>) {
    mark.extend_from_slice(b"state");
}

#[test]
fn the_stateful_module_appends_its_summary_whether_it_marks_or_passes_the_mark_on() {
    mark_with(summary);
    let first = input(&["a", "b"], 40);
    let mut out = Vec::new();
    entry::filter(&first, VERSION, &mut out, &PROGRESS, |_| Ok(true));
    let output = decode(&out);
    let mark = output.successes.last().unwrap();
    let progress = read_progress(mark.key.as_ref().map(|k| k.as_ref()), mark.value.as_ref());
    assert_eq!(
        progress.map(|p| (p.first, p.end, p.tail)),
        Some((40, 42, &b"state"[..]))
    );

    // Passed on by a module that also has a summary: the mark grows by it, once per module.
    let mut out = Vec::new();
    let mut scratch = Scratch::new();
    entry::map(
        &from_records(output.successes, 40),
        VERSION,
        &mut out,
        &PROGRESS,
        &mut scratch,
        |_, emit| {
            emit.value().extend_from_slice(b"x");
            Ok(())
        },
    );
    let output = decode(&out);
    let mark = output.successes.last().unwrap();
    assert_eq!(mark.key.as_ref().map(|k| k.as_ref()), Some(PROGRESS_KEY));
    let progress = read_progress(Some(PROGRESS_KEY), mark.value.as_ref()).unwrap();
    assert_eq!((progress.first, progress.end), (40, 42));
    assert_eq!(progress.tail, b"statestate");
}

#[test]
fn a_seed_longer_than_a_protocol_string_is_split_at_spaces_and_joined_back() {
    let seed: String = (0..20_000)
        .map(|i| format!("SYM{i}={}", 1_700_000_000_000i64 + i))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(seed.len() > 3 * 65_535);
    let params = resume_params(&seed);
    assert!(params.len() >= 4);
    for (i, (name, piece)) in params.iter().enumerate() {
        assert_eq!(name, &format!("{RESUME_PARAM}.{i}"));
        assert!(piece.len() <= 60_000, "{name} has {} bytes", piece.len());
        assert!(!piece.starts_with(' ') && !piece.ends_with(' '));
    }
    let map: BTreeMap<String, String> = params.into_iter().collect();
    let joined = resume_seed(&SmartModuleExtraParams::from(map));
    assert_eq!(joined.as_deref(), Some(seed.as_str()));
    assert_eq!(resume_seed(&SmartModuleExtraParams::default()), None);
    assert!(resume_params("").is_empty());
}
