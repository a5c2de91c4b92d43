//! Black-box tests of `stockstream transform`: arguments, errors, input formats, diagnostics.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{diff_json_lines, repo_root, stderr, stockstream};

const ENRICHED: &str = "transforms/enriched.yaml";

#[test]
fn reads_stdin_and_writes_stdout_by_default() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(["transform", "--transforms-file", ENRICHED])
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"symbol\":\"A\",\"ts\":1,\"price\":2.5,\"volume\":3}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let out = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(
        out,
        "{\"symbol\":\"A\",\"ts\":1,\"price\":2.5,\"volume\":3,\"sma\":2.5,\"count\":1,\"vwap\":2.5,\"prev_mean\":null,\"prev_std\":null,\"prev_count\":0,\"z\":null,\"anomaly\":false,\"late\":false}\n"
    );
    assert!(
        stderr(&output).contains("transform: 1 records in, 0 invalid"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn csv_input_gives_the_same_records_as_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("ticks.csv");
    std::fs::write(
        &csv,
        "DateTime,Price,Volume\n2013-09-01 17:00:00.083,1640.25,8\n2013-09-01 17:00:00.083,1640.5,1\nbad-date,1640.25,2\n2013-09-01 17:00:01.000,1640.0,3\n",
    )
    .unwrap();
    let jsonl = tmp.path().join("ticks.jsonl");
    std::fs::write(
        &jsonl,
        "{\"symbol\":\"ES\",\"ts\":1378054800083,\"price\":1640.25,\"volume\":8}\n{\"symbol\":\"ES\",\"ts\":1378054800083,\"price\":1640.5,\"volume\":1}\n{\"symbol\":\"ES\",\"ts\":1378054801000,\"price\":1640.0,\"volume\":3}\n",
    )
    .unwrap();
    let from_csv = stockstream(&[
        "transform",
        "--transforms-file",
        ENRICHED,
        "--input",
        csv.to_str().unwrap(),
        "--symbol",
        "ES",
    ]);
    let from_json = stockstream(&[
        "transform",
        "--transforms-file",
        ENRICHED,
        "--input",
        jsonl.to_str().unwrap(),
    ]);
    assert!(from_csv.status.success() && from_json.status.success());
    assert_eq!(from_csv.stdout, from_json.stdout);
    let err = stderr(&from_csv);
    assert!(
        err.contains("line 4: invalid row: timestamp \"bad-date\""),
        "{err}"
    );
    assert!(err.contains("4 records in, 1 invalid"), "{err}");
}

#[test]
fn writes_to_an_output_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bars.jsonl");
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        "transforms/bars-5m.yaml",
        "--input",
        "data/stock_data.csv",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(out).unwrap();
    // Daily closes of 5 symbols: one bar per symbol per window holding a close, 5 windows each.
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["count"], 1);
    assert_eq!(
        first["window_end"].as_i64().unwrap() - first["window_start"].as_i64().unwrap(),
        300_000
    );
    assert!(text.lines().count() > 1000);
}

#[test]
fn a_missing_transforms_file_is_an_error() {
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        "no/such.yaml",
        "--input",
        "data/stock_data.csv",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot read transforms file no/such.yaml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreadable_input_is_an_error() {
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        ENRICHED,
        "--input",
        "no/such.jsonl",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot read no/such.jsonl"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_parameter_is_named_with_its_accepted_form() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = tmp.path().join("chain.yaml");
    std::fs::write(
        &chain,
        "transforms:\n  - uses: stockstream/window-bars@0.1.0\n    with:\n      size: \"5 minutes\"\n",
    )
    .unwrap();
    let output = stockstream(&["transform", "--transforms-file", chain.to_str().unwrap()]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("`size`") && err.contains("an integer and a unit ms|s|m|h|d"),
        "{err}"
    );

    std::fs::write(&chain, "transforms:\n  - uses: stockstream/zscore-anomaly@0.1.0\n    with:\n      treshold: \"2\"\n").unwrap();
    let output = stockstream(&["transform", "--transforms-file", chain.to_str().unwrap()]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("unknown parameter `treshold`") && err.contains("threshold"),
        "{err}"
    );
}

#[test]
fn missing_wasm_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap();
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        "transforms/composable/enriched.yaml",
        "--wasm-dir",
        empty.path().to_str().unwrap(),
        "--input",
        "data/stock_data.csv",
    ]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("tick_filter.wasm"), "{err}");
    assert!(
        err.contains("cargo build --profile release-lto --target wasm32-wasip1 -p tick-filter"),
        "{err}"
    );
}

#[test]
fn a_chain_without_tick_filter_reports_the_failing_record_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = tmp.path().join("chain.yaml");
    std::fs::write(
        &chain,
        "transforms:\n  - uses: stockstream/rolling-stats@0.1.0\n",
    )
    .unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"symbol\":\"A\",\"ts\":1,\"price\":1}\n{\"symbol\":\"A\",\"ts\":2}\n{\"symbol\":\"A\",\"ts\":3,\"price\":3}\n",
    )
    .unwrap();
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        chain.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("line 2: invalid tick: missing field `price`"),
        "{err}"
    );
    assert!(
        err.contains("line 2: rejected by the chain") && err.contains("put tick-filter first"),
        "{err}"
    );
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().contains("\"sma\":2.0"), "{out}");
}

#[test]
fn wasm_and_native_engines_agree_on_the_sample_data() {
    // The bench compares the two; here the outputs must be identical, record for record.
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        ENRICHED,
        "--input",
        "data/stock_data.csv",
    ]);
    assert!(output.status.success());
    let wasm = String::from_utf8(output.stdout).unwrap();
    let spec = stockstream_runner::ChainSpec::from_file(&repo_root().join(ENRICHED)).unwrap();
    let mut native = stockstream_runner::native::NativeEnrichedChain::from_spec(&spec).unwrap();
    let file = std::fs::File::open(repo_root().join("data/stock_data.csv")).unwrap();
    let reader = stockstream_ticks::TickReader::new(
        std::io::BufReader::new(file),
        stockstream_ticks::InputFormat::Csv,
        &Default::default(),
    )
    .unwrap();
    let mut out = Vec::new();
    for item in reader {
        if let stockstream_ticks::InputItem::Record { value, .. } = item.unwrap() {
            if native.process(&value, &mut out).unwrap() {
                out.push(b'\n');
            }
        }
    }
    let native = String::from_utf8(out).unwrap();
    assert_eq!(wasm.lines().count(), 12_154);
    assert!(diff_json_lines(&wasm, &native, 0.0).is_none());
    assert_eq!(wasm, native);
}
