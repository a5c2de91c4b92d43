//! Black-box tests of the `producer` binary (issue #3): CSV layouts, timestamp forms, bad rows,
//! pacing, and the synthetic generator. Kafka and Fluvio against real brokers come later; here
//! only their settings are exercised.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn producer(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env_remove("STOCKSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        .stdin(Stdio::null())
        .output()
        .expect("producer runs")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Runs with `--speed max`, expects success, returns the output lines.
fn replay(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.extend(["--speed", "max"]);
    let output = producer(dir, &all);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).lines().map(str::to_owned).collect()
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// The summary line (the last line of standard error).
fn summary(output: &Output) -> String {
    stderr(output)
        .lines()
        .rfind(|l| l.starts_with("producer: ") && l.contains(" sent to "))
        .unwrap_or_else(|| panic!("no summary in {}", stderr(output)))
        .to_owned()
}

#[test]
fn tick_files_take_a_constant_symbol() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ticks.csv",
        "DateTime,Price,Volume\n2013-09-01 17:00:00.083,1640.25,8\n2013-09-01 17:00:00.083,1640.5,3\n",
    );
    let lines = replay(dir.path(), &["--input", "ticks.csv", "--symbol", "ES"]);
    assert_eq!(
        lines,
        [
            r#"{"symbol":"ES","ts":1378054800083,"price":1640.25,"volume":8}"#,
            r#"{"symbol":"ES","ts":1378054800083,"price":1640.5,"volume":3}"#,
        ]
    );
    // Without --symbol the layout has no symbol: a usage error that says what to do.
    let output = producer(dir.path(), &["--input", "ticks.csv", "--speed", "max"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--symbol"), "{}", stderr(&output));
}

const DAILY: &str = "date,open,high,low,close,volume,Name\n\
    2013-02-08,15.07,15.12,14.63,14.75,8407500,AAL\n\
    2013-02-08,67.71,68.40,66.89,67.85,158168416,AAPL\n";

#[test]
fn daily_files_give_one_tick_per_row_at_the_close() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "daily.csv", DAILY);
    let lines = replay(dir.path(), &["--input", "daily.csv"]);
    assert_eq!(
        lines,
        [
            r#"{"symbol":"AAL","ts":1360281600000,"price":14.75,"volume":8407500}"#,
            r#"{"symbol":"AAPL","ts":1360281600000,"price":67.85,"volume":158168416}"#,
        ]
    );
}

#[test]
fn daily_files_expand_to_open_extremes_close() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "daily.csv", DAILY);
    let lines = replay(dir.path(), &["--input", "daily.csv", "--ohlc-expand"]);
    let ticks: Vec<Value> = lines.iter().map(|l| json(l)).collect();
    assert_eq!(ticks.len(), 8);
    let midnight = 1_360_281_600_000_i64;
    let times: Vec<i64> = [(9, 30), (11, 40), (13, 50), (16, 0)]
        .iter()
        .map(|(h, m)| midnight + (h * 60 + m) * 60_000)
        .collect();
    let row = |i: usize| -> Vec<(i64, f64, i64)> {
        ticks[i * 4..i * 4 + 4]
            .iter()
            .map(|t| {
                (
                    t["ts"].as_i64().unwrap(),
                    t["price"].as_f64().unwrap(),
                    t["volume"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    // AAL closed below its open: open, high, low, close.
    let aal = row(0);
    assert_eq!(
        aal.iter().map(|t| t.1).collect::<Vec<_>>(),
        [15.07, 15.12, 14.63, 14.75]
    );
    // AAPL closed above: open, low, high, close.
    let aapl = row(1);
    assert_eq!(
        aapl.iter().map(|t| t.1).collect::<Vec<_>>(),
        [67.71, 66.89, 68.40, 67.85]
    );
    for day in [&aal, &aapl] {
        assert_eq!(day.iter().map(|t| t.0).collect::<Vec<_>>(), times);
    }
    // The day's volume is split, nothing lost.
    assert_eq!(aal.iter().map(|t| t.2).sum::<i64>(), 8_407_500);
    assert_eq!(aapl.iter().map(|t| t.2).sum::<i64>(), 158_168_416);
    assert!(ticks
        .iter()
        .all(|t| t["symbol"] == "AAL" || t["symbol"] == "AAPL"));
}

#[test]
fn the_repository_sample_replays_whole() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = producer(
        &root,
        &[
            "--input",
            "data/stock_data.csv",
            "--speed",
            "max",
            "--ohlc-expand",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 4 * 12_154);
    assert!(
        summary(&output).contains("48616 sent"),
        "{}",
        summary(&output)
    );
}

#[test]
fn symbol_ticker_and_timestamp_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.csv",
        "ticker,timestamp,price,volume\nMSFT,2013-09-01T17:00:00Z,10.5,7\n",
    );
    write(
        dir.path(),
        "b.csv",
        "Symbol,TS,Price\nIBM,1378054800000,2\n",
    );
    assert_eq!(
        replay(dir.path(), &["--input", "a.csv"]),
        [r#"{"symbol":"MSFT","ts":1378054800000,"price":10.5,"volume":7}"#]
    );
    assert_eq!(
        replay(dir.path(), &["--input", "b.csv"]),
        [r#"{"symbol":"IBM","ts":1378054800000,"price":2.0}"#]
    );
}

#[test]
fn columns_can_be_named() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "odd.csv",
        "instrument,when,bid,ask,last_trade,shares\nES,1378054800,1,2,1640.25,8\n",
    );
    let lines = replay(
        dir.path(),
        &[
            "--input",
            "odd.csv",
            "--symbol-col",
            "instrument",
            "--ts-col",
            "when",
            "--price-col",
            "last_trade",
            "--volume-col",
            "shares",
        ],
    );
    assert_eq!(
        lines,
        [r#"{"symbol":"ES","ts":1378054800000,"price":1640.25,"volume":8}"#]
    );
    let output = producer(
        dir.path(),
        &[
            "--input",
            "odd.csv",
            "--price-col",
            "nope",
            "--speed",
            "max",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("\"nope\""), "{}", stderr(&output));
}

#[test]
fn timestamp_forms_and_time_zones() {
    let dir = tempfile::tempdir().unwrap();
    // The same instant, 2013-09-01T17:00:00.083Z, written five ways.
    write(
        dir.path(),
        "forms.csv",
        "symbol,ts,price\n\
         A,2013-09-01T17:00:00.083Z,1\n\
         A,2013-09-01T19:00:00.083+02:00,1\n\
         A,2013-09-01 17:00:00.083,1\n\
         A,1378054800.083,1\n\
         A,1378054800083,1\n",
    );
    let ts: Vec<i64> = replay(dir.path(), &["--input", "forms.csv"])
        .iter()
        .map(|l| json(l)["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(ts, [1_378_054_800_083; 5]);

    // Naive values in New York: summer is UTC-4, winter UTC-5; offsets and epochs unchanged.
    write(
        dir.path(),
        "ny.csv",
        "symbol,ts,price\n\
         A,2013-09-01 13:00:00.083,1\n\
         A,2014-01-02 09:30:00,1\n\
         A,2014-01-03,1\n\
         A,2013-09-01T17:00:00.083Z,1\n\
         A,1378054800083,1\n",
    );
    let ts: Vec<i64> = replay(
        dir.path(),
        &["--input", "ny.csv", "--tz", "America/New_York"],
    )
    .iter()
    .map(|l| json(l)["ts"].as_i64().unwrap())
    .collect();
    assert_eq!(
        ts,
        [
            1_378_054_800_083,
            1_388_673_000_000, // 2014-01-02T14:30:00Z
            1_388_725_200_000, // 2014-01-03T05:00:00Z
            1_378_054_800_083,
            1_378_054_800_083,
        ]
    );

    // Pinned forms: small epoch values read as seconds or milliseconds as told, and a pattern.
    write(dir.path(), "small.csv", "symbol,ts,price\nA,1000,1\n");
    let ts_of = |args: &[&str]| json(&replay(dir.path(), args)[0])["ts"].as_i64().unwrap();
    assert_eq!(
        ts_of(&["--input", "small.csv", "--ts-format", "epoch-s"]),
        1_000_000
    );
    assert_eq!(
        ts_of(&["--input", "small.csv", "--ts-format", "epoch-ms"]),
        1_000
    );
    write(
        dir.path(),
        "eu.csv",
        "symbol,ts,price\nA,01.09.2013 19:00:00,1\n",
    );
    assert_eq!(
        ts_of(&[
            "--input",
            "eu.csv",
            "--ts-format",
            "%d.%m.%Y %H:%M:%S",
            "--tz",
            "Europe/Berlin"
        ]),
        1_378_054_800_000
    );
    let output = producer(dir.path(), &["--input", "eu.csv", "--tz", "Mars/Base"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("IANA"), "{}", stderr(&output));
}

const BAD_CSV: &str = "symbol,ts,price,volume\n\
    A,2013-09-01T17:00:00Z,10,1\n\
    A,2013-09-01T17:00:01Z,abc,1\n\
    A,not-a-time,10,1\n\
    A,2013-09-01T17:00:02Z,-5,1\n\
    bad symbol!,2013-09-01T17:00:03Z,10,1\n\
    A,2013-09-01T17:00:04Z,11,2.5\n\
    A,2013-09-01T17:00:05Z,12,3\n";

#[test]
fn bad_rows_are_counted_dead_lettered_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.csv", BAD_CSV);
    let output = producer(
        dir.path(),
        &[
            "--input",
            "bad.csv",
            "--speed",
            "max",
            "--dead-letter",
            "dead.jsonl",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let prices: Vec<f64> = stdout(&output)
        .lines()
        .map(|l| json(l)["price"].as_f64().unwrap())
        .collect();
    assert_eq!(prices, [10.0, 12.0]);
    let line = summary(&output);
    assert!(
        line.contains("2 sent")
            && line.contains("5 rejected (bad_price=2, bad_symbol=1, bad_ts=1, bad_volume=1)"),
        "{line}"
    );
    // Each is reported on stderr with its line number and reason.
    let err = stderr(&output);
    for expected in [
        "line 3: price \"abc\"",
        "line 4: timestamp \"not-a-time\"",
        "line 5: price must be > 0",
        "line 6: symbol may hold only",
        "line 7: volume \"2.5\"",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dead.jsonl"))
        .unwrap()
        .lines()
        .map(json)
        .collect();
    let lines: Vec<i64> = dead.iter().map(|d| d["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7]);
    let codes: Vec<&str> = dead.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "bad_price",
            "bad_ts",
            "bad_price",
            "bad_symbol",
            "bad_volume"
        ]
    );
    assert_eq!(dead[1]["raw"], "A,not-a-time,10,1");
    assert!(dead[2]["reason"]
        .as_str()
        .unwrap()
        .contains("price must be > 0"));
    // A row that became a record is dead-lettered as the record.
    assert!(dead[3]["raw"].as_str().unwrap().contains("\"bad symbol!\""));
}

#[test]
fn bad_json_lines_are_rejected_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ticks.jsonl",
        "{\"symbol\":\"A\",\"ts\":1000,\"price\":1.5,\"exchange\":\"X\"}\n\nnot json\n{\"symbol\":\"A\",\"ts\":2000}\n{\"symbol\":\"A\",\"ts\":3000,\"price\":2}\n",
    );
    let output = producer(
        dir.path(),
        &[
            "--input",
            "ticks.jsonl",
            "--speed",
            "max",
            "--dead-letter",
            "dead.jsonl",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // Records pass through untouched, unknown fields included.
    assert_eq!(
        stdout(&output),
        "{\"symbol\":\"A\",\"ts\":1000,\"price\":1.5,\"exchange\":\"X\"}\n{\"symbol\":\"A\",\"ts\":3000,\"price\":2}\n"
    );
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let dead: Vec<Value> = dead.lines().map(json).collect();
    assert_eq!(dead[0]["line"], 3);
    assert_eq!(dead[0]["code"], "not_json");
    assert_eq!(dead[1]["line"], 4);
    assert_eq!(dead[1]["code"], "missing_field");
}

#[test]
fn strict_stops_at_the_first_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.csv", BAD_CSV);
    let output = producer(
        dir.path(),
        &[
            "--input",
            "bad.csv",
            "--speed",
            "max",
            "--strict",
            "--dead-letter",
            "dead.jsonl",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 1);
    let err = stderr(&output);
    assert!(
        err.contains("line 3: price \"abc\" is not a number"),
        "{err}"
    );
    assert!(err.contains("--strict"), "{err}");
    assert!(summary(&output).contains("1 sent"), "{err}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1);
}

#[test]
fn pacing_honours_event_time_gaps_at_speed_100() {
    // Irregular event-time gaps of 0.5, 1 and 2 s (3.5 s per three ticks): 216 gaps make
    // 252 s of event time, 2.52 s at 100x.
    let gaps_ms = [500_i64, 1000, 2000];
    let mut ts = 1_378_054_800_000_i64;
    let mut csv = String::from("ts,price\n");
    let mut expected = Vec::new();
    for i in 0..217 {
        if i > 0 {
            ts += gaps_ms[(i - 1) % 3];
        }
        csv.push_str(&format!("{ts},100\n"));
        expected.push(ts);
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "paced.csv", &csv);
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--input", "paced.csv", "--symbol", "ES", "--speed", "100"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut arrivals = Vec::new();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        arrivals.push(Instant::now());
        seen.push(json(&line.unwrap())["ts"].as_i64().unwrap());
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(seen, expected);
    let offset = |i: usize| (arrivals[i] - arrivals[0]).as_secs_f64();
    let due = |i: usize| (expected[i] - expected[0]) as f64 / 1000.0 / 100.0;
    let total = due(expected.len() - 1);
    assert!((total - 2.52).abs() < 1e-9);
    // The whole replay within 5% of its event time.
    let actual = offset(expected.len() - 1);
    assert!(
        (actual - total).abs() <= 0.05 * total,
        "{actual:.3} s for {total:.3} s of paced event time"
    );
    // Ticks on their due times, within 5% of the run: no drift accumulates. The 95th
    // percentile, so that one scheduling hiccup of a loaded machine is not a pacing fault.
    let mut errors: Vec<f64> = (0..expected.len())
        .map(|i| (offset(i) - due(i)).abs())
        .collect();
    errors.sort_by(f64::total_cmp);
    let p95 = errors[errors.len() * 95 / 100];
    assert!(
        p95 <= 0.05 * total,
        "95% of ticks within {:.1} ms of their due time; the worst {:.1} ms",
        p95 * 1000.0,
        errors[errors.len() - 1] * 1000.0
    );
    // And the replay clock runs at 100x: the least-squares slope of arrival against due time
    // within 5% of 1. (Single gaps of 5-20 ms are not checked one by one: a loaded machine
    // wakes a sleeper a millisecond or two late, and the next gap is shorter by as much, as
    // it should be.)
    let n = expected.len() as f64;
    let (mx, my) = (
        (0..expected.len()).map(due).sum::<f64>() / n,
        (0..expected.len()).map(offset).sum::<f64>() / n,
    );
    let sxy: f64 = (0..expected.len())
        .map(|i| (due(i) - mx) * (offset(i) - my))
        .sum();
    let sxx: f64 = (0..expected.len()).map(|i| (due(i) - mx).powi(2)).sum();
    let slope = sxy / sxx;
    let worst = (0..expected.len())
        .map(|i| (offset(i) - due(i)).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "paced replay: {actual:.4} s for {total:.4} s due, worst tick {:.2} ms off, slope {slope:.4}",
        worst * 1000.0
    );
    assert!(
        (slope - 1.0).abs() <= 0.05,
        "replay clock at {slope:.3} of 100x"
    );
}

const START: &str = "2026-01-02T14:30:00Z";
const START_MS: i64 = 1_767_364_200_000;

fn synthetic(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--synthetic", "--speed", "max", "--start", START];
    args.extend_from_slice(extra);
    let output = producer(dir, &args);
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

#[test]
fn synthetic_ticks_are_deterministic_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, truth: &str| {
        let output = synthetic(
            dir.path(),
            &[
                "--seed",
                seed,
                "--limit",
                "5000",
                "--anomaly-rate",
                "0.01",
                "--truth",
                truth,
            ],
        );
        let truth = std::fs::read(dir.path().join(truth)).unwrap();
        (output.stdout, truth)
    };
    let (a, truth_a) = run("7", "a.jsonl");
    let (b, truth_b) = run("7", "b.jsonl");
    let (c, truth_c) = run("8", "c.jsonl");
    assert_eq!(a, b, "same seed, same ticks");
    assert_eq!(truth_a, truth_b, "same seed, same truth");
    assert!(!truth_a.is_empty());
    assert_ne!(a, c, "another seed, other ticks");
    assert_ne!(truth_a, truth_c);
    let text = String::from_utf8(a).unwrap();
    assert_eq!(text.lines().count(), 5000);
    let first = json(text.lines().next().unwrap());
    assert_eq!(first["ts"], START_MS);
}

#[test]
fn ground_truth_names_the_spiked_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let output = synthetic(
        dir.path(),
        &[
            "--limit",
            "20000",
            "--anomaly-rate",
            "0.01",
            "--anomaly-sigma",
            "50",
            "--truth",
            "truth.jsonl",
        ],
    );
    let ticks: Vec<Value> = stdout(&output).lines().map(json).collect();
    assert_eq!(ticks.len(), 20_000);
    // The ticks carry nothing of the truth.
    for t in &ticks {
        let mut keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["price", "symbol", "ts", "volume"]);
    }
    let truth: Vec<Value> = std::fs::read_to_string(dir.path().join("truth.jsonl"))
        .unwrap()
        .lines()
        .map(json)
        .collect();
    // 1% of the ticks past each symbol's 100-tick warm-up: ~195, sd ~14.
    assert!(
        (135..=255).contains(&truth.len()),
        "{} anomalies",
        truth.len()
    );
    assert!(summary(&output).contains(&format!("{} anomalies injected", truth.len())));
    let spiked: std::collections::HashSet<u64> =
        truth.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    for row in &truth {
        let seq = row["seq"].as_u64().unwrap() as usize;
        let tick = &ticks[seq - 1];
        assert_eq!(tick["symbol"], row["symbol"], "{row}");
        assert_eq!(tick["ts"], row["ts"], "{row}");
        assert_eq!(tick["price"], row["price"], "{row}");
        // The written price is the path price moved by k sigma of the per-tick return.
        let price = row["price"].as_f64().unwrap();
        let base = row["base_price"].as_f64().unwrap();
        let (k, sigma) = (row["k"].as_f64().unwrap(), row["sigma"].as_f64().unwrap());
        assert_eq!(k.abs(), 50.0);
        assert!(
            ((price / base).ln() / sigma - k).abs() < 0.05 * 50.0,
            "{row}"
        );
        assert!((row["jump"].as_f64().unwrap() - (price - base)).abs() < 1e-9);
        // The next tick of the symbol (unless spiked too) is back on the path: near the base
        // price, not the spike.
        let next = (seq + 1..=ticks.len())
            .find(|s| ticks[s - 1]["symbol"] == row["symbol"])
            .filter(|s| !spiked.contains(&(*s as u64)))
            .map(|s| ticks[s - 1]["price"].as_f64().unwrap());
        if let Some(next) = next {
            assert!(
                (next - base).abs() < (price - base).abs(),
                "{row}: next {next}"
            );
        }
    }
}

#[test]
fn gbm_returns_have_the_configured_sigma() {
    let dir = tempfile::tempdir().unwrap();
    let output = synthetic(
        dir.path(),
        &[
            "--symbols",
            "X,Y",
            "--volatility",
            "0.3",
            "--rate",
            "20",
            "--limit",
            "40000",
            "--anomaly-rate",
            "0",
        ],
    );
    const YEAR_S: f64 = 252.0 * 6.5 * 3600.0;
    let mut last: std::collections::HashMap<String, (i64, f64)> = Default::default();
    let mut normalised: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for line in stdout(&output).lines() {
        let t = json(line);
        let symbol = t["symbol"].as_str().unwrap().to_owned();
        let (ts, price) = (t["ts"].as_i64().unwrap(), t["price"].as_f64().unwrap());
        if let Some((ts0, p0)) = last.insert(symbol.clone(), (ts, price)) {
            let dt = (ts - ts0) as f64 / 1000.0 / YEAR_S;
            if dt > 0.0 {
                normalised
                    .entry(symbol)
                    .or_default()
                    .push((price / p0).ln() / dt.sqrt());
            }
        }
    }
    assert_eq!(normalised.len(), 2);
    for (symbol, r) in normalised {
        let n = r.len() as f64;
        let mean = r.iter().sum::<f64>() / n;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!(r.len() > 15_000, "{symbol}: {}", r.len());
        assert!(
            (sd - 0.3).abs() < 0.05 * 0.3,
            "{symbol}: annualised sigma {sd:.4}, want 0.3"
        );
    }
}

#[test]
fn synthetic_rate_and_duration_follow_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let output = synthetic(
        dir.path(),
        &["--count", "3", "--rate", "50", "--duration", "60s"],
    );
    let ticks: Vec<Value> = stdout(&output).lines().map(json).collect();
    // 60 s at 50 ticks/s.
    assert!((2900..=3100).contains(&ticks.len()), "{}", ticks.len());
    let symbols: std::collections::BTreeSet<&str> = ticks
        .iter()
        .map(|t| t["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(
        symbols.into_iter().collect::<Vec<_>>(),
        ["AAPL", "GOOG", "MSFT"]
    );
    assert!(ticks
        .iter()
        .all(|t| (START_MS..START_MS + 60_000).contains(&t["ts"].as_i64().unwrap())));
    assert!(summary(&output).contains("duration reached"));
}

#[test]
fn kafka_settings_errors_never_show_secrets() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "kafka.properties",
        "security.protocol=SASL_PLAINTEXT\nsasl.password=file-secret-123\nacks=1\nssl.key.password oops-secret-456\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args([
            "--synthetic",
            "--limit",
            "1",
            "--sink",
            "kafka",
            "--kafka-config",
            "kafka.properties",
        ])
        .current_dir(dir.path())
        .env("STOCKSTREAM_KAFKA_SASL_JAAS_CONFIG", "env-secret-789")
        .env("STOCKSTREAM_KAFKA_ENABLE_IDEMPOTENCE", "false")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let all = format!("{}{}", stdout(&output), stderr(&output));
    for secret in ["file-secret-123", "oops-secret-456", "env-secret-789"] {
        assert!(!all.contains(secret), "{secret} shown in: {all}");
    }
    assert!(all.contains("acks must be all"), "{all}");
    assert!(all.contains("enable.idempotence must be true"), "{all}");
    assert!(
        all.contains("kafka.properties:4: expected key=value"),
        "{all}"
    );
}

#[test]
fn standard_input_and_a_closed_reader() {
    let dir = tempfile::tempdir().unwrap();
    // JSON lines on standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--input", "-", "--speed", "max"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"symbol\":\"A\",\"ts\":1,\"price\":1}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(stdout(&output), "{\"symbol\":\"A\",\"ts\":1,\"price\":1}\n");
    // A reader that stops early (like `| head`) ends the run quietly.
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--synthetic", "--speed", "max", "--limit", "10000000"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    drop(out);
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(summary(&output).contains("output closed by its reader"));
}
