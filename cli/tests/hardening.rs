//! Black-box regression tests for the hostile inputs of issue 13, each named after its case.

mod common;

use std::fs;
use std::io::Read;
use std::process::{Command, Stdio};

use common::{dead_letters, repo_root, stderr, stockstream, write_ticks, SAME_ROWS};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockstream"));
    command.current_dir(repo_root());
    command
}

/// The newest dead-letter reasons of a run's outputs, one per dead record.
fn dead_letter_reasons(outputs: &std::path::Path) -> Vec<String> {
    dead_letters(outputs)
        .iter()
        .map(|dead| dead["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn poison_pill_ts_at_i64_max_is_dead_lettered_and_the_records_after_it_are_processed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    let mut lines = write_ticks(&input, 3_000, 13, 50.0);
    // Line 1501, inside the fourth commit of 500 records.
    lines.insert(
        1_500,
        r#"{"symbol":"AAPL","ts":9223372036854775807,"price":10,"volume":1}"#.into(),
    );
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let outputs = dir.path().join("out");
    let args = [
        "run",
        "--input",
        input.to_str().unwrap(),
        "--no-dashboard",
        "--commit-records",
        "500",
        "--outputs",
        outputs.to_str().unwrap(),
    ];
    let output = stockstream(&args);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("line 1501") && err.contains("before the year 2200"),
        "{err}"
    );
    assert!(err.contains("3001 records in"), "{err}");
    assert!(err.contains("3000 enriched"), "{err}");
    assert_eq!(dead_letter_reasons(&outputs), vec!["bad_ts"]);
    // Run again: finished, nothing met twice.
    let again = stockstream(&args);
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn csv_timestamps_beyond_any_unit_are_rejected_not_clamped_and_nanoseconds_are_read_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    fs::write(
        &input,
        "symbol,timestamp,price,volume\n\
         AAA,1700000000000000000,10,1\n\
         AAA,1e30,12,1\n\
         AAA,99999999999999999999999,12,1\n\
         AAA,1700000001000000,11,1\n\
         AAA,1700000002000,12,1\n\
         AAA,1700000003,13,1\n",
    )
    .unwrap();
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        "transforms/enriched.yaml",
        "--input",
        input.to_str().unwrap(),
    ]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("line 3: invalid row: timestamp \"1e30\" is too large"),
        "{err}"
    );
    assert!(err.contains("line 4: invalid row"), "{err}");
    let ts: Vec<i64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|v| assert_eq!(v["late"], false, "{v}"))
        .map(|v| v["ts"].as_i64().unwrap())
        .collect();
    // ns, µs, ms and s: one second apart each, none late.
    assert_eq!(
        ts,
        vec![
            1_700_000_000_000,
            1_700_000_001_000,
            1_700_000_002_000,
            1_700_000_003_000
        ]
    );
}

#[test]
fn a_synthetic_start_beyond_2200_is_refused_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("out");
    let output = stockstream(&[
        "run",
        "--synthetic",
        "--start-ms",
        "9223372036854775807",
        "--no-dashboard",
        "--outputs",
        outputs.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("before 2200-01-01"),
        "{}",
        stderr(&output)
    );
    assert!(!outputs.join("_checkpoint.json").exists());
}

#[test]
fn a_batch_size_past_its_bound_is_refused_with_the_bound() {
    for command in [
        &["run", "--no-dashboard"][..],
        &["transform", "--input", "-"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--batch-size", "1000000000"]);
        let output = stockstream(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains("1..=65536"), "{}", stderr(&output));
    }
    let output = stockstream(&["run", "--no-dashboard", "--commit-records", "1000000000000"]);
    assert!(
        stderr(&output).contains("1..=10000000"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unwritable_stderr_never_turns_a_run_or_a_transform_into_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    let mut lines = write_ticks(&input, 2_000, 14, 50.0);
    lines.insert(10, "not a tick".into());
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let outputs = dir.path().join("out");
    let status = binary()
        .args(["run", "--no-dashboard", "--input", input.to_str().unwrap()])
        .args(["--outputs", outputs.to_str().unwrap()])
        .stderr(full())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(outputs.join("_checkpoint.json").exists());
    let output = binary()
        .args(["transform", "--transforms-file", "transforms/enriched.yaml"])
        .args(["--input", input.to_str().unwrap()])
        .stderr(full())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", output.status);
    assert_eq!(output.stdout.iter().filter(|&&b| b == b'\n').count(), 2_000);
}

#[test]
fn a_closed_stdout_ends_transform_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    write_ticks(&input, 200_000, 15, 50.0);
    let mut child = binary()
        .args(["transform", "--transforms-file", "transforms/enriched.yaml"])
        .args(["--input", input.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, as `head -1` would, then go away.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn warnings_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    write_ticks(&input, 100, 16, 50.0);
    let output = binary()
        .args(["run", "--no-dashboard", "--input", input.to_str().unwrap()])
        .args(["--outputs", dir.path().join("out").to_str().unwrap()])
        .env("RUST_LOG", "stockstream_pipeline=debug")
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("DEBUG"), "log lines expected: {err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn a_50_mb_single_line_record_is_dead_lettered_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.jsonl");
    let pad = "x".repeat(50_000_000);
    fs::write(
        &input,
        format!(
            "{{\"symbol\":\"A\",\"ts\":1700000000000,\"price\":1,\"pad\":\"{pad}\"}}\n\
             {{\"symbol\":\"A\",\"ts\":1700000001000,\"price\":2}}\n"
        ),
    )
    .unwrap();
    let outputs = dir.path().join("out");
    let output = stockstream(&[
        "run",
        "--no-dashboard",
        "--input",
        input.to_str().unwrap(),
        "--outputs",
        outputs.to_str().unwrap(),
    ]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("record of 50000052 bytes is over the limit of 1048576 bytes"),
        "{err}"
    );
    assert!(err.contains("1 enriched"), "{err}");
    let dead = fs::read_dir(outputs.join("dead_letter"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        dead.contains("over the limit") && dead.len() < 10_000,
        "{} bytes",
        dead.len()
    );
    // The same as one CSV row, a quoted field over several lines: never held whole either.
    let csv = dir.path().join("big.csv");
    fs::write(
        &csv,
        format!(
            "symbol,ts,price\nA,1700000000000,1\nA,1700000001000,\"{pad}\n{pad}\"\nA,1700000002000,3\n"
        ),
    )
    .unwrap();
    let csv_outputs = dir.path().join("csv-out");
    let output = stockstream(&[
        "run",
        "--no-dashboard",
        "--input",
        csv.to_str().unwrap(),
        "--outputs",
        csv_outputs.to_str().unwrap(),
    ]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(
            "line 3: invalid row: row of 100000019 bytes is over the limit of 1048576 bytes"
        ),
        "{err}"
    );
    assert!(err.contains("2 enriched"), "{err}");
    // The largest child this test process waited for: the runs above (2.2 GB before the
    // limit), or a smaller one of a test running beside it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let max_rss_mb = usage.ru_maxrss / 1024;
    assert!(max_rss_mb < 600, "a child reached {max_rss_mb} MB");
    // A lower limit applies to transform too.
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        "transforms/enriched.yaml",
        "--max-record-bytes",
        "64",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("over the limit of 64 bytes"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn vwap_stays_finite_and_recovers_after_the_largest_tick_leaves_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    fs::write(
        &input,
        "{\"symbol\":\"A\",\"ts\":1700000000000,\"price\":1e308,\"volume\":9223372036854775807}\n\
         {\"symbol\":\"A\",\"ts\":1700000001000,\"price\":10,\"volume\":1}\n\
         {\"symbol\":\"A\",\"ts\":1700000002000,\"price\":1000000000000,\"volume\":1000000000000}\n\
         {\"symbol\":\"A\",\"ts\":1700000003000,\"price\":1000000000000,\"volume\":1000000000000}\n\
         {\"symbol\":\"A\",\"ts\":1700000400000,\"price\":10,\"volume\":1}\n",
    )
    .unwrap();
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        "transforms/enriched.yaml",
        "--input",
        input.to_str().unwrap(),
    ]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("line 1: invalid tick: price must be at most 1e12"),
        "{err}"
    );
    let vwaps: Vec<f64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["vwap"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(vwaps.len(), 4);
    assert!(vwaps.iter().all(|v| v.is_finite()), "{vwaps:?}");
    // The two largest ticks have left the 5-minute window: back to the price.
    assert_eq!(vwaps[3], 10.0, "{vwaps:?}");
}

#[test]
fn csv_flags_are_validated_at_start_up_and_refused_where_they_do_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("quotes.csv");
    fs::write(
        &csv,
        "when,last,qty\n2024-01-02 14:30:00,10.5,3\n2024-01-02 14:30:01,10.6,1\n",
    )
    .unwrap();
    let jsonl = dir.path().join("ticks.jsonl");
    write_ticks(&jsonl, 10, 17, 5.0);
    let outputs = dir.path().join("out");
    let run = |input: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["run", "--no-dashboard", "--input", input.to_str().unwrap()];
        args.extend(["--outputs", outputs.to_str().unwrap()]);
        args.extend_from_slice(extra);
        stockstream(&args)
    };
    // A bad --symbol would dead-letter every row: refused before anything is read.
    let output = run(&csv, &["--symbol", "bad sym"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--symbol \"bad sym\": symbol may hold only"),
        "{}",
        stderr(&output)
    );
    assert!(!outputs.exists());
    // --symbol on JSON lines used to be ignored without a word.
    let output = run(&jsonl, &["--symbol", "AAPL"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--symbol applies to CSV input only"),
        "{}",
        stderr(&output)
    );
    let output = stockstream(&["run", "--synthetic", "--no-dashboard", "--ts-col", "t"]);
    assert!(stderr(&output).contains("--ts-col applies to CSV files (--input), not --synthetic"));
    // The column flags the CSV errors name exist on run and transform.
    let output = run(
        &csv,
        &[
            "--symbol",
            "XYZ",
            "--ts-col",
            "when",
            "--price-col",
            "last",
            "--volume-col",
            "qty",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("2 records in"),
        "{}",
        stderr(&output)
    );
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        "transforms/enriched.yaml",
        "--input",
        csv.to_str().unwrap(),
        "--symbol",
        "XYZ",
        "--ts-col",
        "when",
        "--price-col",
        "last",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
    let output = stockstream(&[
        "transform",
        "--input",
        jsonl.to_str().unwrap(),
        "--transforms-file",
        "transforms/enriched.yaml",
        "--ts-format",
        "epoch-s",
    ]);
    assert!(
        stderr(&output).contains("--ts-format applies to CSV input only"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn error_messages_name_the_path_and_never_repeat_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let under_a_file = file.join("outputs");
    let missing = dir.path().join("missing.csv");
    let cases: [(Vec<&str>, String); 3] = [
        (
            vec![
                "run",
                "--no-dashboard",
                "--outputs",
                under_a_file.to_str().unwrap(),
            ],
            format!(
                "cannot create the outputs directory {}",
                under_a_file.display()
            ),
        ),
        (
            vec![
                "run",
                "--no-dashboard",
                "--input",
                missing.to_str().unwrap(),
            ],
            format!("cannot read {}", missing.display()),
        ),
        (
            vec!["transform", "--transforms-file", missing.to_str().unwrap()],
            format!("cannot read transforms file {}", missing.display()),
        ),
    ];
    for (args, wanted) in cases {
        let output = stockstream(&args);
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?}");
        assert!(err.contains(&wanted), "{args:?}: {err}");
        for cause in ["(os error 2)", "(os error 20)"] {
            assert!(
                err.matches(cause).count() <= 1,
                "{args:?} repeats {cause}: {err}"
            );
        }
    }
}

#[test]
fn dead_letters_keep_the_original_bytes_and_csv_quoting() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    let mut bytes = b"{\"symbol\":\"A\",\"ts\":1700000000000,\"price\":1}\n".to_vec();
    let latin1 = b"{\"symbol\":\"caf\xe9\",\"ts\":1700000001000,\"price\":2}";
    bytes.extend_from_slice(latin1);
    bytes.push(b'\n');
    fs::write(&input, &bytes).unwrap();
    let csv = dir.path().join("ticks.csv");
    fs::write(
        &csv,
        "symbol,ts,price,volume\nMSFT,2024-01-02T14:30:00Z,10,5\n\"MS\"\"FT\",2024-01-02T14:30:01Z,\"1,000.5\",5\n",
    )
    .unwrap();
    for (input, outputs) in [(&input, "out-json"), (&csv, "out-csv")] {
        let outputs = dir.path().join(outputs);
        let output = stockstream(&[
            "run",
            "--no-dashboard",
            "--input",
            input.to_str().unwrap(),
            "--outputs",
            outputs.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let expected = dir.path().join("latin1.bin");
    fs::write(&expected, latin1).unwrap();
    common::check_with_python(
        r#"
import sys, json, glob, base64
json_out, csv_out, expected = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
[dead] = [json.loads(l) for f in glob.glob(f"{json_out}/dead_letter/*.jsonl") for l in open(f)]
assert dead["reason"] == "not_utf8", dead
assert base64.b64decode(dead["record_base64"]) == expected, dead
[dead] = [json.loads(l) for f in glob.glob(f"{csv_out}/dead_letter/*.jsonl") for l in open(f)]
assert dead["record"] == '"MS""FT",2024-01-02T14:30:01Z,"1,000.5",5', dead
assert "record_base64" not in dead
print("ok")
"#,
        &[
            &dir.path().join("out-json"),
            &dir.path().join("out-csv"),
            &expected,
        ],
    );
}

#[test]
fn a_deleted_or_altered_output_file_is_noticed_by_verify_and_by_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    write_ticks(&input, 3_000, 18, 20.0);
    let outputs = dir.path().join("out");
    let run = || {
        stockstream(&[
            "run",
            "--no-dashboard",
            "--input",
            input.to_str().unwrap(),
            "--commit-records",
            "1000",
            "--outputs",
            outputs.to_str().unwrap(),
        ])
    };
    let output = run();
    assert!(output.status.success(), "{}", stderr(&output));
    let verify = || stockstream(&["verify", "--outputs", outputs.to_str().unwrap()]);
    let output = verify();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("all present and as committed"),
        "{}",
        stderr(&output)
    );

    let checkpoint: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(outputs.join("_checkpoint.json")).unwrap())
            .unwrap();
    let manifest = fs::read_to_string(outputs.join("_manifest.jsonl")).unwrap();
    let files: Vec<String> = manifest
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        checkpoint["manifest_len"].as_u64(),
        Some(files.len() as u64)
    );
    for file in &files {
        assert!(outputs.join(file).is_file(), "{file}");
    }
    let deleted = files
        .iter()
        .find(|p| p.starts_with("anomalies/"))
        .unwrap()
        .to_string();
    let altered = files
        .iter()
        .find(|p| p.starts_with("streaming_data/enriched/"))
        .unwrap()
        .to_string();
    fs::remove_file(outputs.join(&deleted)).unwrap();
    // Same size, one byte changed: only the checksum tells.
    let mut bytes = fs::read(outputs.join(&altered)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(outputs.join(&altered), bytes).unwrap();

    let output = verify();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{deleted}: missing")), "{err}");
    assert!(err.contains(&format!("{altered}: altered")), "{err}");
    // A resume no longer reports success over the hole.
    let output = run();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("missing or altered (the first:"),
        "{}",
        stderr(&output)
    );

    // Rebuilt from another input: nothing is put back.
    let other = dir.path().join("other.jsonl");
    write_ticks(&other, 3_000, 19, 20.0);
    let rebuild = |input: &std::path::Path| {
        stockstream(&[
            "verify",
            "--outputs",
            outputs.to_str().unwrap(),
            "--rebuild",
            "--",
            "--input",
            input.to_str().unwrap(),
        ])
    };
    let output = rebuild(&other);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{deleted}: not rebuilt: the rerun wrote")),
        "{err}"
    );
    assert!(!outputs.join(&deleted).exists());
    // From the run's own input: both come back byte for byte, and the run goes on.
    let output = rebuild(&input);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains(&format!("{deleted}: rebuilt")), "{err}");
    assert!(err.contains(&format!("{altered}: rebuilt")), "{err}");
    assert!(err.contains("rebuilt 2 of 2 damaged files"), "{err}");
    assert!(!outputs.join("_rebuild").exists());
    let output = verify();
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn verify_takes_run_arguments_only_with_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("out");
    let output = stockstream(&[
        "verify",
        "--outputs",
        outputs.to_str().unwrap(),
        "--",
        "--input",
        "x.csv",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("for --rebuild"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_record_that_makes_the_chain_fail_in_transform_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.jsonl");
    let mut lines = write_ticks(&clean, 3_000, 21, 20.0);
    let big = format!(
        r#"{{"symbol":"BIG","ts":1700000000000,"price":10,"volume":1,"pad":"{}"}}"#,
        "x".repeat(12 << 20)
    );
    lines.insert(1_500, big);
    let input = dir.path().join("ticks.jsonl");
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let transform = |file: &std::path::Path, input: &std::path::Path| {
        stockstream(&[
            "transform",
            "--transforms-file",
            file.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--batch-size",
            "256",
            "--chain-memory-limit",
            "8388608",
            "--max-record-bytes",
            "33554432",
        ])
    };
    let root = repo_root();
    for chain in ["transforms/enriched.yaml", "transforms/bars-5m.yaml"] {
        let file = root.join(chain);
        let output = transform(&file, &input);
        let err = stderr(&output);
        assert!(output.status.success(), "{chain}: {err}");
        assert!(
            err.contains("line 1501: the chain failed on this record: WASM trap"),
            "{chain}: {err}"
        );
        assert!(err.contains("1 failed"), "{chain}: {err}");
        // Exactly the records of a transform of the input without it, windows and all.
        let expected = transform(&file, &clean);
        assert!(expected.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&expected.stdout),
            "{chain}"
        );
    }
    // Standard input cannot be read again: the failure ends the transform, with its lines.
    let output = binary()
        .args([
            "transform",
            "--transforms-file",
            "transforms/enriched.yaml",
            "--chain-memory-limit",
            "8388608",
            "--max-record-bytes",
            "33554432",
        ])
        .stdin(fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot be read again"), "{err}");
}

#[test]
fn a_record_that_makes_a_chain_fail_is_dead_lettered_skipped_and_never_met_again() {
    // A valid tick too large for the chains' memory: every chain fails on it in WASM (as an
    // SPU's store limit would make it fail), whatever batch it comes in.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.jsonl");
    let clean = write_ticks(&dir.path().join("clean.jsonl"), 3_000, 17, 20.0);
    let mut lines = clean.clone();
    let big = format!(
        r#"{{"symbol":"BIG","ts":1700000000000,"price":10,"volume":1,"pad":"{}"}}"#,
        "x".repeat(12 << 20)
    );
    lines.insert(1_500, big);
    // The first run sees the input up to line 2000; the second, all of it, so its restart
    // replays windows across the skipped record.
    fs::write(&input, lines[..2_000].join("\n") + "\n").unwrap();
    let run = |input: &std::path::Path, outputs: &std::path::Path| {
        stockstream(&[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--no-dashboard",
            "--batch-size",
            "256",
            "--commit-records",
            "500",
            "--max-record-bytes",
            "33554432",
            "--chain-memory-limit",
            "8388608",
            "--outputs",
            outputs.to_str().unwrap(),
        ])
    };
    let outputs = dir.path().join("out");
    let first = run(&input, &outputs);
    let err = stderr(&first);
    assert!(first.status.success(), "{err}");
    assert!(
        err.contains("line 1501") && err.contains("failed on this record"),
        "{err}"
    );
    assert!(
        err.contains("2000 records in") && err.contains("1 failed"),
        "{err}"
    );
    assert_eq!(dead_letter_reasons(&outputs), vec!["module_failed"]);
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&fs::read(outputs.join("_checkpoint.json")).unwrap()).unwrap();
    assert_eq!(checkpoint["skipped"], serde_json::json!([1500]));

    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let second = run(&input, &outputs);
    let err = stderr(&second);
    assert!(second.status.success(), "{err}");
    assert!(
        err.contains("3001 records in") && err.contains("1 failed"),
        "{err}"
    );
    assert!(!err.contains("failed on this record"), "met again: {err}");
    assert_eq!(dead_letter_reasons(&outputs), vec!["module_failed"]);

    // Exactly the rows of a run that never saw the record.
    let reference = dir.path().join("reference");
    let clean_run = run(&dir.path().join("clean.jsonl"), &reference);
    assert!(clean_run.status.success(), "{}", stderr(&clean_run));
    common::check_with_python(SAME_ROWS, &[&reference, &outputs]);
}

/// A restart's `look_back` replays a window of large records in calls of at most a few MiB
/// (`LOOK_BACK_CHUNK_BYTES`): 100 ticks of 200 KB each in one window, which the chains
/// processed batch by batch under a 16 MiB memory limit, took 20 MB in one call, so every
/// restart trapped rebuilding the state (a poison pill made of valid records).
#[test]
fn a_restart_rebuilds_a_window_of_large_records_within_the_chains_memory() {
    let dir = tempfile::tempdir().unwrap();
    let pad = "x".repeat(200_000);
    let tick = |i: u64| {
        format!(
            r#"{{"symbol":"BIG","ts":{},"price":{},"volume":1,"pad":"{pad}"}}"#,
            1_700_000_000_000 + i * 1_000,
            100 + i % 7
        )
    };
    let input = dir.path().join("big.jsonl");
    let outputs = dir.path().join("out");
    let run = || {
        stockstream(&[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--no-dashboard",
            "--batch-size",
            "8",
            "--commit-records",
            "40",
            "--chain-memory-limit",
            "16777216",
            "--outputs",
            outputs.to_str().unwrap(),
        ])
    };
    fs::write(
        &input,
        (0..100).map(tick).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let first = run();
    assert!(first.status.success(), "{}", stderr(&first));
    fs::write(
        &input,
        (0..110).map(tick).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let second = run();
    let err = stderr(&second);
    assert!(second.status.success(), "{err}");
    assert!(
        err.contains("110 records in") && err.contains("0 failed"),
        "{err}"
    );
}
