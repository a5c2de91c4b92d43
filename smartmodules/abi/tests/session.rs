//! The reserved `stockstream.*` parameters and the repeated batch, through the entry points
//! and fluvio-protocol's own codec.

use std::collections::BTreeMap;

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;
use stockstream_smartmodule::entry::{self, LastCall, PROGRESS_KEY};
use stockstream_smartmodule::{read_progress, Scratch, Session};

mod common;
use common::*;

fn session(params: &[(&str, &str)]) -> Result<Session, String> {
    let map: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Session::from_params(&SmartModuleExtraParams::from(map)).map_err(|e| e.to_string())
}

#[test]
fn reserved_parameters_are_read_and_bad_values_refused() {
    assert_eq!(session(&[]).unwrap(), Session::default());
    assert_eq!(
        session(&[
            ("stockstream.progress", "true"),
            ("stockstream.max_output", "4096"),
            ("window", "5m"),
        ])
        .unwrap(),
        Session {
            progress: true,
            max_output: Some(4096),
            skip: Vec::new(),
            skip_from: None,
        }
    );
    let refused = session(&[("stockstream.progress", "yes")]).unwrap_err();
    assert!(refused.contains("stockstream.progress"), "{refused}");
    let refused = session(&[("stockstream.max_output", "0")]).unwrap_err();
    assert!(refused.contains("positive number of bytes"), "{refused}");
}

#[test]
fn the_first_module_marks_the_batch_and_the_next_passes_the_mark_on_unseen() {
    // A filter that keeps one record of three, as tick-filter drops invalid ticks.
    let first = input(&["keep", "drop", "drop"], 1_000);
    let mut out = Vec::new();
    let status = entry::filter(&first, VERSION, &mut out, &PROGRESS, |record| {
        Ok(record.value == b"keep")
    });
    let output = decode(&out);
    assert_eq!(status, 2);
    assert!(output.error.is_none());
    let mark = output.successes.last().unwrap();
    assert_eq!(
        read_progress(mark.key.as_ref().map(|k| k.as_ref()), mark.value.as_ref()).map(|p| (
            p.first,
            p.end,
            p.tail.len()
        )),
        Some((1_000, 1_003, 0)),
        "the mark names the whole stored batch, dropped records included"
    );

    // The next module gets the first one's output, as fluvio-smartengine chains them.
    let second = from_records(output.successes, 1_000);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let mut scratch = Scratch::new();
    entry::map(
        &second,
        VERSION,
        &mut out,
        &PROGRESS,
        &mut scratch,
        |record, emit| {
            seen.push(record.value.to_vec());
            emit.value().extend_from_slice(b"mapped");
            Ok(())
        },
    );
    assert_eq!(
        seen,
        vec![b"keep".to_vec()],
        "the module never sees the mark"
    );
    let output = decode(&out);
    let values: Vec<&[u8]> = output.successes.iter().map(|r| r.value.as_ref()).collect();
    assert_eq!(
        values.len(),
        2,
        "one mapped record and one mark, not two marks"
    );
    assert_eq!(values[0], b"mapped");
    assert_eq!(
        output.successes[1].key.as_ref().map(|k| k.as_ref()),
        Some(PROGRESS_KEY)
    );
}

#[test]
fn without_the_parameter_there_is_no_mark_and_a_mark_like_record_is_data() {
    let bytes = input(&["a", "b"], 7);
    let mut out = Vec::new();
    entry::filter(&bytes, VERSION, &mut out, &Session::default(), |_| Ok(true));
    let output = decode(&out);
    assert_eq!(output.successes.len(), 2);
    assert!(output
        .successes
        .iter()
        .all(|r| r.key.as_ref().map(|k| k.as_ref()) == Some(&b"AAPL"[..])));
}

#[test]
fn a_failing_record_ends_the_batch_without_a_mark() {
    let bytes = input(&["ok", "bad", "ok"], 50);
    let run = |session: &Session| {
        let mut out = Vec::new();
        entry::filter(&bytes, VERSION, &mut out, session, |record| {
            if record.value == b"bad" {
                Err(stockstream_smartmodule::eyre!("bad record"))
            } else {
                Ok(true)
            }
        });
        decode(&out)
    };
    let output = run(&PROGRESS);
    // An SPU would send the records before the failure as the chain's output, half made if
    // the module is not the last: a consumer reading marks starts the batch again instead.
    assert!(output.successes.is_empty(), "no record, no mark");
    assert_eq!(output.error.unwrap().offset, 51);
    // Without marks, as the SDK: the records before the failure are kept.
    let output = run(&Session::default());
    assert_eq!(output.successes.len(), 1);
    assert_eq!(output.error.unwrap().offset, 51);
}

#[test]
fn an_output_larger_than_max_output_is_an_error_that_names_the_batch() {
    let bytes = input(&["x"; 10], 300);
    let small = Session {
        progress: false,
        max_output: Some(64),
        skip: Vec::new(),
        skip_from: None,
    };
    let mut out = Vec::new();
    let mut scratch = Scratch::new();
    let status = entry::map(
        &bytes,
        VERSION,
        &mut out,
        &small,
        &mut scratch,
        |_, emit| {
            emit.value().extend_from_slice(&[b'y'; 40]);
            Ok(())
        },
    );
    assert_eq!(status, 0);
    let output = decode(&out);
    assert!(output.successes.is_empty());
    let error = output.error.expect("an error");
    assert_eq!(error.offset, 300);
    assert!(
        error.hint.contains("batch at offset 300") && error.hint.contains("--fetch-bytes"),
        "{}",
        error.hint
    );

    // The same batch under a limit it fits in passes whole.
    let roomy = Session {
        progress: false,
        max_output: Some(1 << 20),
        skip: Vec::new(),
        skip_from: None,
    };
    let mut out = Vec::new();
    entry::map(
        &bytes,
        VERSION,
        &mut out,
        &roomy,
        &mut scratch,
        |_, emit| {
            emit.value().extend_from_slice(&[b'y'; 40]);
            Ok(())
        },
    );
    assert_eq!(decode(&out).successes.len(), 10);
}

#[test]
fn only_the_very_same_input_right_after_counts_as_a_repeat() {
    let mut last = LastCall::default();
    let a = input(&["a", "b"], 10);
    assert_eq!(last.repeated(&a), None, "nothing before the first call");
    let mut kept = a.clone();
    last.remember(&mut kept, 3);
    assert_eq!(last.repeated(&a), Some(3));
    // Same base offset, other records; other base offset, same records.
    assert_eq!(last.repeated(&input(&["a", "c"], 10)), None);
    assert_eq!(last.repeated(&input(&["a", "b"], 12)), None);
    let mut next = input(&["c"], 12);
    last.remember(&mut next, 1);
    assert_eq!(last.repeated(&a), None, "only the previous call is kept");
}

/// A record the consumer dead-lettered (`stockstream.skip`) reaches no module, and the batch's
/// mark still covers it.
#[test]
fn skipped_offsets_reach_no_module_and_the_mark_still_covers_them() {
    let skipping = session(&[
        ("stockstream.progress", "true"),
        ("stockstream.skip", "502 500"),
    ])
    .unwrap();
    assert_eq!(skipping.skip, vec![500, 502]);
    let bytes = input(&["a", "b", "c", "d"], 500);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    entry::filter(&bytes, VERSION, &mut out, &skipping, |record| {
        seen.push(record.value.to_vec());
        Ok(true)
    });
    assert_eq!(seen, vec![b"b".to_vec(), b"d".to_vec()]);
    let output = decode(&out);
    let mark = output.successes.last().unwrap();
    let progress = read_progress(mark.key.as_ref().map(|k| k.as_ref()), mark.value.as_ref());
    assert_eq!(progress.map(|p| (p.first, p.end)), Some((500, 504)));
    let refused = session(&[("stockstream.skip", "12 x")]).unwrap_err();
    assert!(refused.contains("stockstream.skip"), "{refused}");
    let refused = session(&[("stockstream.skip", "12..x")]).unwrap_err();
    assert!(
        refused.contains("N.. for N and every later one"),
        "{refused}"
    );
}

/// `N..` leaves out N and every later offset (how materialize narrows down a trap in an SPU),
/// beside single offsets; the batch's mark still covers them all.
#[test]
fn an_open_skip_range_leaves_out_every_later_offset() {
    let skipping = session(&[
        ("stockstream.progress", "true"),
        ("stockstream.skip", "500 504.. 503.."),
    ])
    .unwrap();
    assert_eq!(
        (skipping.skip.clone(), skipping.skip_from),
        (vec![500], Some(503))
    );
    let bytes = input(&["a", "b", "c", "d", "e", "f"], 500);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    entry::filter(&bytes, VERSION, &mut out, &skipping, |record| {
        seen.push(record.value.to_vec());
        Ok(true)
    });
    assert_eq!(seen, vec![b"b".to_vec(), b"c".to_vec()]);
    let output = decode(&out);
    let mark = output.successes.last().unwrap();
    let progress = read_progress(mark.key.as_ref().map(|k| k.as_ref()), mark.value.as_ref());
    assert_eq!(progress.map(|p| (p.first, p.end)), Some((500, 506)));
}
