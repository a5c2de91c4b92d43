//! The built SmartModules on fluvio-smartengine, through the project's own entry points
//! (stockstream-smartmodule): every record shape an SPU sends, and a long run under a small
//! store memory limit, which the SDK's generated glue could not survive (it leaked each output
//! batch inside the module).

use std::path::{Path, PathBuf};

use fluvio_protocol::record::{Record, RecordKey};
use stockstream_runner::native::NativeEnrichedChain;
use stockstream_runner::replay::ChainReplay;
use stockstream_runner::resume::{ResumePoint, ResumeTracker};
use stockstream_runner::{Chain, ChainSpec, SmartEngine, WasmLocator};
use stockstream_smartmodule::entry::{PROGRESS_KEY, PROGRESS_PARAM};
use stockstream_smartmodule::resume_params;
use stockstream_ticks::{Synthetic, SyntheticConfig};

fn repo_root() -> PathBuf {
    WasmLocator::find_workspace(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("in the workspace")
}

fn spec(yaml: &str) -> ChainSpec {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.yaml");
    std::fs::write(&path, yaml).unwrap();
    ChainSpec::from_file(&path).unwrap()
}

fn chain_with_limit(yaml: &str, limit: Option<usize>) -> Chain {
    let wasm = WasmLocator::new(None, Some(&repo_root()));
    spec(yaml)
        .instantiate_with_memory_limit(&SmartEngine::new(), &wasm, limit)
        .unwrap()
}

fn chain(yaml: &str) -> Chain {
    chain_with_limit(yaml, None)
}

/// A chain of `transforms/from-start/`, the files without look_back.
fn transforms(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("transforms/from-start").join(name)).unwrap()
}

/// A chain of `transforms/`, whose stateful steps have a look_back setting.
fn live_transforms(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("transforms").join(name)).unwrap()
}

const TICK_FILTER: &str = "transforms:\n  - uses: stockstream/tick-filter@0.1.0\n";
const ROLLING_STATS: &str = "transforms:\n  - uses: stockstream/rolling-stats@0.1.0\n";

fn ticks(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let config = SyntheticConfig {
        seed,
        ..SyntheticConfig::default()
    };
    Synthetic::new(config)
        .unwrap()
        .take(count)
        .map(|tick| tick.record())
        .collect()
}

fn records(values: &[Vec<u8>]) -> Vec<Record> {
    values.iter().map(|v| Record::new(v.clone())).collect()
}

fn values(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.value.as_ref().to_vec()).collect()
}

/// The enriched chain's output computed natively from the same core code.
fn native_enriched(values: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let spec = spec(&transforms("enriched.yaml"));
    let mut native = NativeEnrichedChain::from_spec(&spec).unwrap();
    values
        .iter()
        .filter_map(|value| {
            let mut out = Vec::new();
            native.process(value, &mut out).unwrap().then_some(out)
        })
        .collect()
}

#[test]
fn empty_batches_emit_nothing_and_leave_state_alone() {
    let input = ticks(2_000, 1);
    for file in ["enriched.yaml", "anomalies.yaml", "bars-5m.yaml"] {
        let mut with_empty = chain(&transforms(file));
        let mut without = chain(&transforms(file));
        let mut got = Vec::new();
        let mut want = Vec::new();
        for part in input.chunks(300) {
            let empty = with_empty.process(&[]).unwrap();
            assert!(
                empty.records.is_empty() && empty.failures.is_empty(),
                "{file}"
            );
            got.extend(values(&with_empty.process(&records(part)).unwrap().records));
            want.extend(values(&without.process(&records(part)).unwrap().records));
        }
        assert_eq!(got, want, "{file}");
        assert!(!got.is_empty(), "{file} emitted nothing");
    }
}

#[test]
fn keys_absent_present_and_empty_pass_a_filter_unchanged() {
    let tick = ticks(1, 2).remove(0);
    let keys = [
        None,
        Some(&b"ES"[..]),
        Some(&b""[..]),
        Some(&[0xff, 0, 7][..]),
    ];
    let mut input: Vec<Record> = keys
        .iter()
        .map(|key| {
            let key = key.map_or(RecordKey::NULL, |k| RecordKey::from(k.to_vec()));
            Record::new_key_value(key, tick.clone())
        })
        .collect();
    input.insert(2, Record::new_key_value("ES", b"not a tick".to_vec()));
    let output = chain(TICK_FILTER).process(&input).unwrap();
    let got: Vec<Option<Vec<u8>>> = output
        .records
        .iter()
        .map(|r| r.key.as_ref().map(|k| k.as_ref().to_vec()))
        .collect();
    let want: Vec<Option<Vec<u8>>> = keys.iter().map(|k| k.map(<[u8]>::to_vec)).collect();
    assert_eq!(got, want);
    assert!(output.records.iter().all(|r| r.value.as_ref() == tick));
}

#[test]
fn a_map_keeps_the_key_and_array_map_keys_bars_by_symbol() {
    let input = ticks(3_000, 3);
    let keyed: Vec<Record> = input
        .iter()
        .enumerate()
        .map(|(i, v)| Record::new_key_value(format!("key{i}"), v.clone()))
        .collect();
    let enriched = chain(&transforms("enriched.yaml")).process(&keyed).unwrap();
    for (i, record) in enriched.records.iter().enumerate() {
        assert_eq!(
            record.key.as_ref().unwrap().as_ref(),
            format!("key{i}").as_bytes()
        );
    }
    let bars = chain(&transforms("bars-5m.yaml"))
        .process(&records(&input))
        .unwrap();
    assert!(!bars.records.is_empty());
    for bar in &bars.records {
        let symbol = bar.key.as_ref().expect("a bar is keyed by its symbol");
        let json: serde_json::Value = serde_json::from_slice(bar.value.as_ref()).unwrap();
        assert_eq!(json["symbol"].as_str().unwrap().as_bytes(), symbol.as_ref());
    }
}

#[test]
fn large_values_are_carried_whole() {
    let mut input = ticks(50, 4);
    // A tick with a 4 MiB field of its own, larger than the buffers the modules keep.
    let big = input[25].clone();
    let pad = "x".repeat(4 << 20);
    let mut padded = big[..big.len() - 1].to_vec();
    padded.extend_from_slice(format!(",\"note\":\"{pad}\"}}").as_bytes());
    input[25] = padded.clone();
    input.push(padded);
    let output = chain(&transforms("enriched.yaml"))
        .process(&records(&input))
        .unwrap();
    assert!(output.failures.is_empty());
    assert_eq!(values(&output.records), native_enriched(&input));
    assert!(output.records[25].value.len() > 4 << 20);
}

#[test]
fn a_failing_record_is_reported_and_the_rest_of_the_batch_goes_on() {
    let mut input = ticks(100, 5);
    input.insert(40, b"{\"symbol\":\"ES\"}".to_vec());
    input.insert(70, b"garbage".to_vec());
    let output = chain(ROLLING_STATS).process(&records(&input)).unwrap();
    let failed: Vec<usize> = output.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, vec![40, 70]);
    for failure in &output.failures {
        assert!(
            failure.hint.contains("put tick-filter first in the chain"),
            "{}",
            failure.hint
        );
    }
    assert_eq!(output.records.len(), 100);
    // Bars fail the same way (array_map).
    let bars_only = "transforms:\n  - uses: stockstream/window-bars@0.1.0\n";
    let output = chain(bars_only).process(&records(&input)).unwrap();
    let failed: Vec<usize> = output.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, vec![40, 70]);
}

#[test]
fn look_back_rebuilds_the_state_an_uninterrupted_chain_has() {
    let input = ticks(6_000, 6);
    let (before, after) = input.split_at(4_000);
    for file in ["enriched.yaml", "bars-5m.yaml"] {
        let mut whole = chain(&transforms(file));
        whole.process(&records(before)).unwrap();
        let want = values(&whole.process(&records(after)).unwrap().records);
        let mut resumed = chain(&live_transforms(file));
        resumed.look_back(records(before)).unwrap();
        let got = values(&resumed.process(&records(after)).unwrap().records);
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn a_long_run_fits_in_a_small_store() {
    // 3M ticks through the enriched chain in batches of 4,096, the three modules sharing a
    // 48 MiB store. The SDK's glue leaked ~400 bytes per tick and failed after ~120k ticks.
    const LIMIT: usize = 48 << 20;
    const TICKS: usize = 3_000_000;
    let mut enriched = chain_with_limit(&transforms("enriched.yaml"), Some(LIMIT));
    let mut bars = chain_with_limit(&transforms("bars-5m.yaml"), Some(LIMIT));
    let config = SyntheticConfig {
        seed: 7,
        ..SyntheticConfig::default()
    };
    let mut source = Synthetic::new(config).unwrap().map(|t| t.record());
    let (mut seen, mut out, mut bar_count) = (0usize, 0usize, 0usize);
    while seen < TICKS {
        let batch: Vec<Record> = source.by_ref().take(4_096).map(Record::new).collect();
        seen += batch.len();
        let result = enriched.process(&batch).unwrap();
        assert!(result.failures.is_empty());
        out += result.records.len();
        bar_count += bars.process(&batch).unwrap().records.len();
    }
    assert_eq!(out, seen);
    assert!(bar_count > 0);
}

/// The records two chains emit for `input`, fed in batches of 1,000.
fn both_outputs(first: &str, second: &str, input: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut a, mut b) = (chain(first), chain(second));
    let (mut from_first, mut from_second) = (Vec::new(), Vec::new());
    for part in input.chunks(1_000) {
        from_first.extend(values(&a.process(&records(part)).unwrap().records));
        from_second.extend(values(&b.process(&records(part)).unwrap().records));
    }
    (from_first, from_second)
}

#[test]
fn the_fused_enrich_module_emits_exactly_what_the_three_modules_do() {
    let mut input = ticks(20_000, 8);
    input.insert(500, b"not a tick".to_vec());
    input.insert(900, b"{\"symbol\":\"ES\",\"ts\":1}".to_vec());
    let variants = [
        ("", ""),
        ("symbols: \"AAPL,MSFT\"", ""),
        ("", "emit: \"anomalies\""),
        ("", "threshold: \"1.5\"\n      min_count: \"3\""),
    ];
    for (filter, score) in variants {
        let with = |params: &[&str]| {
            let lines: Vec<String> = params
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| format!("      {p}"))
                .collect();
            if lines.is_empty() {
                String::new()
            } else {
                format!("    with:\n{}\n", lines.join("\n"))
            }
        };
        let composable = format!(
            "transforms:\n  - uses: stockstream/tick-filter@0.1.0\n{}  - uses: stockstream/rolling-stats@0.1.0\n  - uses: stockstream/zscore-anomaly@0.1.0\n{}",
            with(&[filter]),
            with(&[score])
        );
        let fused = format!(
            "transforms:\n  - uses: stockstream/enrich@0.1.0\n{}",
            with(&[filter, score])
        );
        let (want, got) = both_outputs(&composable, &fused, &input);
        assert!(!want.is_empty(), "{composable}");
        assert_eq!(got, want, "{fused}");
    }
}

#[test]
fn the_fused_bars_module_emits_exactly_what_tick_filter_and_window_bars_do() {
    let mut input = ticks(30_000, 9);
    input.insert(700, b"not a tick".to_vec());
    input.insert(1_300, b"{\"symbol\":\"ES\",\"ts\":1}".to_vec());
    let variants = [
        ("", "size: \"5m\"\n      slide: \"1m\""),
        (
            "symbols: \"AAPL,MSFT\"\n",
            "size: \"2m\"\n      slide: \"2m\"",
        ),
        (
            "",
            "size: \"5m\"\n      slide: \"1m\"\n      lateness: \"3s\"",
        ),
    ];
    for (filter, window) in variants {
        let filter_with = if filter.is_empty() {
            String::new()
        } else {
            format!("    with:\n      {filter}")
        };
        let composable = format!(
            "transforms:\n  - uses: stockstream/tick-filter@0.1.0\n{filter_with}  - uses: stockstream/window-bars@0.1.0\n    with:\n      {window}\n"
        );
        let fused = format!(
            "transforms:\n  - uses: stockstream/bars@0.1.0\n    with:\n      {filter}      {window}\n"
        )
        .replace("with:\n            ", "with:\n      ");
        let (want, got) = both_outputs(&composable, &fused, &input);
        assert!(!want.is_empty(), "{composable}");
        assert_eq!(got, want, "{fused}");
    }
}

#[test]
fn the_return_basis_runs_in_the_built_modules_fused_or_not_and_a_mismatch_fails_each_record() {
    let mut input = ticks(20_000, 10);
    input.insert(600, b"not a tick".to_vec());
    let composable = |stats: &str, score: &str| {
        format!(
            "transforms:\n  - uses: stockstream/tick-filter@0.1.0\n  - uses: stockstream/rolling-stats@0.1.0\n    with:\n      basis: \"{stats}\"\n  - uses: stockstream/zscore-anomaly@0.1.0\n    with:\n      basis: \"{score}\"\n"
        )
    };
    let fused =
        "transforms:\n  - uses: stockstream/enrich@0.1.0\n    with:\n      basis: \"return\"\n";
    let (want, got) = both_outputs(&composable("return", "return"), fused, &input);
    assert_eq!(got, want);
    assert_eq!(want.len(), 20_000);
    let parse = |v: &Vec<u8>| serde_json::from_slice::<serde_json::Value>(v).unwrap();
    let with_returns = want.iter().filter(|v| parse(v)["ret"].is_f64()).count();
    assert!(
        with_returns > 19_000,
        "{with_returns} records with a return"
    );

    // The price statistics are those of the price basis, field for field; only z and the flag
    // (and the added ret* fields) differ.
    let (price, _) = both_outputs(&composable("price", "price"), TICK_FILTER, &input);
    let mut flags_differ = 0;
    for (p, r) in price.iter().zip(&want) {
        let (p, r) = (parse(p), parse(r));
        for field in [
            "sma",
            "count",
            "vwap",
            "prev_mean",
            "prev_std",
            "prev_count",
            "late",
        ] {
            assert_eq!(p[field], r[field], "{field}: {p} vs {r}");
        }
        flags_differ += usize::from(p["anomaly"] != r["anomaly"]);
    }
    assert!(flags_differ > 0);

    // Scoring returns that rolling-stats did not compute fails every record, with the reason.
    let output = chain(&composable("price", "return"))
        .process(&records(&input[..100]))
        .unwrap();
    assert_eq!(output.records.len(), 0);
    assert_eq!(output.failures.len(), 100);
    assert!(
        output.failures[0].hint.contains("basis"),
        "{}",
        output.failures[0].hint
    );

    // A bad value is refused when the chain is read, naming the module and the parameter.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.yaml");
    std::fs::write(&path, composable("log", "log")).unwrap();
    let bad = format!(
        "{:?}",
        ChainSpec::from_file(&path).expect_err("basis: log is refused")
    );
    assert!(
        bad.contains("rolling-stats") && bad.contains("basis"),
        "{bad}"
    );
}

/// Each part of `input` as one stored batch, at consecutive offsets, through `chain`.
fn stored_batches(chain: &mut Chain, parts: &[&[Vec<u8>]]) -> Vec<Vec<Vec<u8>>> {
    let mut offset = 0;
    parts
        .iter()
        .map(|part| {
            let (out, error) = chain.process_stored_batch(&records(part), offset).unwrap();
            assert_eq!(error, None);
            offset += part.len() as i64;
            values(&out)
        })
        .collect()
}

/// What an SPU does at a fetch cut (fluvio 0.50): the batch at the cut has gone through the
/// chain, its output is dropped, and the next fetch sends the batch again. The stateful modules
/// must answer it from their last call: run twice, its ticks would be counted twice and every
/// later statistic would differ.
#[test]
fn a_batch_sent_again_right_after_gets_the_same_output_and_is_counted_once() {
    let input = ticks(3_000, 17);
    let parts: Vec<&[Vec<u8>]> = input.chunks(1_000).collect();
    for file in ["enriched.yaml", "bars-5m.yaml"] {
        let yaml = transforms(file);
        let want = stored_batches(&mut chain(&yaml), &parts);
        assert!(!want[2].is_empty(), "{file}: nothing to compare");

        let mut cut = chain(&yaml);
        let before = stored_batches(&mut cut, &parts[..2]);
        let (again, _) = cut.process_stored_batch(&records(parts[1]), 1_000).unwrap();
        assert_eq!(values(&again), before[1], "{file}: the batch sent again");
        let (after, _) = cut.process_stored_batch(&records(parts[2]), 2_000).unwrap();
        assert_eq!(values(&after), want[2], "{file}: the batch after the cut");
    }
}

/// The reserved parameters of `stockstream materialize`: the first module marks the end of each
/// stored batch (filtered records included), the others pass the mark on, and no module sees it.
#[test]
fn progress_marks_close_every_batch_and_change_nothing_else() {
    let mut input = ticks(600, 29);
    input[599] = b"not a tick".to_vec();
    let parts: Vec<&[Vec<u8>]> = input.chunks(200).collect();
    let yaml = transforms("enriched.yaml");
    let plain = stored_batches(&mut chain(&yaml), &parts);

    let mut marked_spec = spec(&yaml);
    for step in &mut marked_spec.steps {
        step.params
            .insert("stockstream.progress".to_owned(), "true".to_owned());
    }
    let wasm = WasmLocator::new(None, Some(&repo_root()));
    let mut marked = marked_spec.instantiate(&SmartEngine::new(), &wasm).unwrap();
    let mut offset = 0i64;
    for (part, want) in parts.iter().zip(&plain) {
        let (out, error) = marked.process_stored_batch(&records(part), offset).unwrap();
        assert_eq!(error, None);
        let (mark, data) = out.split_last().unwrap();
        assert_eq!(
            stockstream_smartmodule::read_progress(
                mark.key.as_ref().map(|k| k.as_ref()),
                mark.value.as_ref()
            )
            .map(|p| (p.first, p.end)),
            Some((offset, offset + part.len() as i64))
        );
        assert_eq!(
            &values(data),
            want,
            "the data records are those of a plain chain"
        );
        offset += part.len() as i64;
    }
}

/// Runs `input` in stored batches of 250 through the chain with progress marks, as
/// `stockstream materialize` reads a partition in an SPU, and returns each batch's output
/// (the mark left out). With `restart_before = Some(k)`: after batch k-1 the lane's
/// `ResumeTracker` gives a resume point, and a fresh chain seeded with it runs from there;
/// the output of the batches before k is then that of the first chain.
fn lane_with_restart(yaml: &str, input: &[Vec<u8>], restart_before: Option<usize>) -> LaneRun {
    let parts: Vec<&[Vec<u8>]> = input.chunks(250).collect();
    let plain = spec(yaml);
    let replay = ChainReplay::for_chain(&plain).unwrap();
    let start = |point: Option<&ResumePoint>| {
        let mut spec = plain.clone();
        for step in &mut spec.steps {
            step.params
                .insert(PROGRESS_PARAM.to_owned(), "true".to_owned());
        }
        if let Some(point) = point {
            let step = &mut spec.steps[replay.stateful_step().unwrap()];
            step.params.extend(resume_params(&point.seed));
        }
        let wasm = WasmLocator::new(None, Some(&repo_root()));
        let chain = spec.instantiate(&SmartEngine::new(), &wasm).unwrap();
        let tracker = ResumeTracker::for_chain(&replay, point).unwrap().unwrap();
        (chain, tracker)
    };
    let (mut chain, mut tracker) = start(None);
    let mut run = LaneRun::default();
    let mut b = 0;
    while b < parts.len() {
        let first = (b * 250) as u64;
        let (out, error) = chain
            .process_stored_batch(&records(parts[b]), first as i64)
            .unwrap();
        assert_eq!(error, None);
        let (mark, data) = out.split_last().unwrap();
        for record in data {
            tracker.record(record.value.as_ref());
        }
        let progress =
            stockstream_smartmodule::read_progress(Some(PROGRESS_KEY), mark.value.as_ref())
                .unwrap();
        assert_eq!(progress.first, first as i64);
        tracker.batch_end(first, progress.tail).unwrap();
        if run.outputs.len() == b {
            run.outputs.push(values(data));
        }
        b += 1;
        if restart_before == Some(b) && run.replayed.is_none() {
            let point = tracker
                .resume_point(first + parts[b - 1].len() as u64)
                .unwrap();
            assert_eq!(point.from % 250, 0, "a batch's first offset");
            run.replayed = Some(b - point.from as usize / 250);
            run.seed_bytes = point.seed.len();
            (chain, tracker) = start(Some(&point));
            b = point.from as usize / 250;
        }
    }
    run
}

#[derive(Default)]
struct LaneRun {
    outputs: Vec<Vec<Vec<u8>>>,
    /// Batches the restart ran again.
    replayed: Option<usize>,
    seed_bytes: usize,
}

/// The bounded restart of `stockstream materialize` on the built modules: the fused and the
/// composable chains, 2-second windows over 60 seconds of ticks with late and invalid ones.
/// The restarted chain, seeded with what the tracker says, gives every record after the
/// restart exactly as the uninterrupted chain, and replays only the last windows' batches.
#[test]
fn a_restart_from_the_resume_point_gives_the_uninterrupted_output() {
    let config = SyntheticConfig {
        seed: 41,
        rate: 500.0,
        ..SyntheticConfig::default()
    };
    let mut input: Vec<Vec<u8>> = Synthetic::new(config)
        .unwrap()
        .take(30_000)
        .map(|tick| tick.record())
        .collect();
    for i in (50..input.len()).step_by(97) {
        input.swap(i - 7, i); // late ticks
    }
    for i in (13..input.len()).step_by(401) {
        input[i] = b"{\"symbol\":\"ES\",\"ts\":1,\"price\":-3}".to_vec();
    }
    let rolling =
        "window: \"2s\"\n      threshold: \"3.0\"\n      min_count: \"20\"\n      emit: \"all\"";
    let windows = "size: \"2s\"\n      slide: \"500ms\"\n      lateness: \"100ms\"";
    let chains = [
        format!("transforms:\n  - uses: stockstream/enrich@0.1.0\n    with:\n      {rolling}\n"),
        "transforms:\n  - uses: stockstream/tick-filter@0.1.0\n  - uses: stockstream/rolling-stats@0.1.0\n    with:\n      window: \"2s\"\n  - uses: stockstream/zscore-anomaly@0.1.0\n    with:\n      threshold: \"3.0\"\n      min_count: \"20\"\n      emit: \"all\"\n".to_owned(),
        format!("transforms:\n  - uses: stockstream/bars@0.1.0\n    with:\n      {windows}\n"),
        format!(
            "transforms:\n  - uses: stockstream/tick-filter@0.1.0\n  - uses: stockstream/window-bars@0.1.0\n    with:\n      {windows}\n"
        ),
    ];
    for yaml in &chains {
        let want = lane_with_restart(yaml, &input, None);
        assert!(
            want.outputs.iter().map(Vec::len).sum::<usize>() > 500,
            "{yaml}"
        );
        for restart in [7, 60, 119] {
            let got = lane_with_restart(yaml, &input, Some(restart));
            // 250 ticks per batch at 500 a second: two windows of 2 s are 8 batches.
            let replayed = got.replayed.unwrap();
            assert!(
                (1..=9).contains(&replayed),
                "{yaml}: replayed {replayed} batches"
            );
            assert_eq!(got.outputs.len(), want.outputs.len());
            for (b, (got, want)) in got.outputs.iter().zip(&want.outputs).enumerate() {
                assert!(
                    got == want,
                    "{yaml}: batch {b} after a restart before {restart}"
                );
            }
        }
    }
}
