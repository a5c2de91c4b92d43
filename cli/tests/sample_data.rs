//! Black-box tests of `stockstream run` on the intraday sample and on multi-file inputs
//! (issue 12): the default run, gzip, symbols from file names, OHLC bars into ticks, and the
//! errors for bad inputs.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{check_with_python, python, repo_root, stderr, stockstream_in};

fn parquet_files(dir: &Path) -> usize {
    let mut count = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += parquet_files(&path);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            count += 1;
        }
    }
    count
}

#[test]
fn the_default_run_replays_the_intraday_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let outputs = tmp.path().join("outputs");
    let output = stockstream_in(
        &repo_root(),
        &[
            "run",
            "--no-dashboard",
            "--outputs",
            outputs.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let files = parquet_files(&outputs);
    // 19 trading days of four streams: one partition per day each, not one per tick or bar.
    assert!((4..=200).contains(&files), "{files} Parquet files");
    let report = check_with_python(
        r#"
import sys, pandas as pd
root = sys.argv[1]
a = pd.read_parquet(f"{root}/anomalies")
b = pd.read_parquet(f"{root}/streaming_data/bars_5m")
e = pd.read_parquet(f"{root}/streaming_data/enriched")
symbols = {"AAPL", "IBM", "MSFT", "NVDA"}
assert set(e.symbol) == symbols, set(e.symbol)
assert set(b.symbol) == symbols, set(b.symbol)
flagged = a.groupby("symbol").size()
assert (flagged > 0).sum() >= 2, flagged
# Moving statistics that differ from the price on most ticks: the windows hold many ticks.
assert (e.sma != e.price).mean() > 0.5
assert (e.vwap != e.price).mean() > 0.5
# Candles with a range: open, high, low and close are not all one price.
assert (b.high > b.low).mean() > 0.5
print(len(e), len(a))
"#,
        &[&outputs],
    );
    assert!(!report.trim().is_empty());
}

/// Two 1-minute bar files, one gzipped, neither with a symbol column, in one directory.
fn bar_files(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut aaa = String::from("timestamp,o,h,l,c,v\n");
    let mut bbb = String::from("timestamp,o,h,l,c,v\n");
    for minute in 0..40u32 {
        let (h, m) = (10 + minute / 60, minute % 60);
        let up = minute % 3 != 0;
        let (o, c) = if up { (100.0, 101.0) } else { (101.0, 100.0) };
        let extra = if minute == 30 { 50.0 } else { 0.0 };
        aaa.push_str(&format!(
            "2024-01-02 {h:02}:{m:02}:00,{o},{},{},{c},{}\n",
            102.0 + extra,
            99.0,
            1001 + minute
        ));
        bbb.push_str(&format!(
            "2024-01-02 {h:02}:{m:02}:00,{},{},{},{},{}\n",
            o + 10.0,
            112.5,
            109.0,
            c + 10.0,
            7 + minute
        ));
    }
    fs::write(dir.join("BBB.csv"), bbb).unwrap();
    let gz = Command::new(python())
        .args([
            "-c",
            "import gzip, sys; gzip.open(sys.argv[1], 'wt').write(sys.argv[2])",
        ])
        .arg(dir.join("AAA.csv.gz"))
        .arg(aaa)
        .status()
        .unwrap();
    assert!(gz.success());
}

#[test]
fn a_directory_of_bar_files_is_merged_and_every_bar_kept_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bars");
    bar_files(&input);
    let outputs = tmp.path().join("outputs");
    let output = stockstream_in(
        tmp.path(),
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--ohlc-bars",
            "auto",
            "--tz",
            "America/New_York",
            "--no-dashboard",
            "--outputs",
            outputs.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    check_with_python(
        r#"
import sys, gzip, pandas as pd
root, bars = sys.argv[1], sys.argv[2]
e = pd.read_parquet(f"{root}/streaming_data/enriched")
assert set(e.symbol) == {"AAA", "BBB"}, set(e.symbol)
assert not e.late.any()
e = e.sort_values(["symbol", "ts"], kind="stable")
for symbol, name in [("AAA", "AAA.csv.gz"), ("BBB", "BBB.csv")]:
    opener = gzip.open if name.endswith(".gz") else open
    with opener(f"{bars}/{name}", "rt") as f:
        rows = pd.read_csv(f)
    end = pd.to_datetime(rows.timestamp).dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    ticks = e[e.symbol == symbol].reset_index(drop=True)
    assert len(ticks) == 4 * len(rows), (symbol, len(ticks))
    for i, row in rows.iterrows():
        t = ticks.iloc[4 * i: 4 * i + 4]
        # Inside the bar's minute, the close at its timestamp.
        assert t.ts.iloc[3] == end[i] and (t.ts > end[i] - pd.Timedelta("1min")).all(), (symbol, i)
        assert t.price.iloc[0] == row.o and t.price.iloc[3] == row.c, (symbol, i)
        assert t.price.max() == row.h and t.price.min() == row.l, (symbol, i)
        second = row.l if row.c >= row.o else row.h
        assert t.price.iloc[1] == second, (symbol, i)
        assert t.volume.sum() == row.v, (symbol, i)
"#,
        &[&outputs, &input],
    );
}

#[test]
fn bad_inputs_are_refused_with_their_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let outputs = tmp.path().join("outputs");
    let out = outputs.to_str().unwrap();
    let fake = tmp.path().join("FAKE.csv.gz");
    fs::write(&fake, "timestamp,o,h,l,c,v\n").unwrap();
    let output = stockstream_in(
        tmp.path(),
        &[
            "run",
            "--input",
            fake.to_str().unwrap(),
            "--no-dashboard",
            "--outputs",
            out,
        ],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not gzip"), "{}", stderr(&output));

    let output = stockstream_in(
        tmp.path(),
        &[
            "run",
            "--tz",
            "Mars/Olympus",
            "--no-dashboard",
            "--outputs",
            out,
        ],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("IANA"), "{}", stderr(&output));

    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let output = stockstream_in(
        tmp.path(),
        &[
            "run",
            "--input",
            empty.to_str().unwrap(),
            "--no-dashboard",
            "--outputs",
            out,
        ],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("holds no"), "{}", stderr(&output));
}

/// Partition directory names under a stream's directory, relative to it.
fn partition_dirs(stream_dir: &Path) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut stack = vec![stream_dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let rel = dir.strip_prefix(stream_dir).unwrap();
                dirs.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

#[test]
fn partitions_follow_the_data_and_a_resume_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = repo_root();
    let daily = tmp.path().join("daily");
    let run = |outputs: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--no-dashboard",
            "--outputs",
            outputs.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        stockstream_in(&root, &args)
    };

    // Daily prices over 2000-2013: a partition per year, not one per trading day.
    let output = run(&daily, &["--input", "data/stock_data.csv"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let years = partition_dirs(&daily.join("streaming_data/enriched"));
    assert_eq!(years.len(), 14, "{years:?}");
    assert!(
        years.iter().all(|d| d.len() == "date=2000".len()),
        "{years:?}"
    );
    assert!(
        parquet_files(&daily) <= 4 * 14,
        "{} files",
        parquet_files(&daily)
    );
    let checkpoint = fs::read_to_string(daily.join("_checkpoint.json")).unwrap();
    assert!(
        checkpoint.contains(r#""partition": "year""#),
        "{checkpoint}"
    );

    // Another granularity on the same outputs is refused, before anything is written.
    let output = run(
        &daily,
        &["--input", "data/stock_data.csv", "--partition", "day"],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("partitioned by year (recorded in the checkpoint), not day"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        partition_dirs(&daily.join("streaming_data/enriched")),
        years
    );

    // The intraday sample: days under auto; hours on request, over several commits, with the
    // same rows.
    let by_day = tmp.path().join("by-day");
    let by_hour = tmp.path().join("by-hour");
    let output = run(&by_day, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let days = partition_dirs(&by_day.join("anomalies"));
    assert_eq!(days.len(), 19, "{days:?}");
    let output = run(
        &by_hour,
        &["--partition", "hour", "--commit-records", "40000"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let hours = partition_dirs(&by_hour.join("anomalies"));
    assert!(hours.len() > 19 * 5, "{hours:?}");
    assert!(
        hours
            .iter()
            .all(|d| d.starts_with("date=2023-01-") && d.contains("/hour=")),
        "{hours:?}"
    );
    // A resume under auto goes on by hour.
    let output = run(&by_hour, &["--partition", "auto"]);
    assert!(output.status.success(), "{}", stderr(&output));
    check_with_python(
        r#"
import sys, pandas as pd, pyarrow.parquet as pq, glob
day, hour = sys.argv[1], sys.argv[2]
for stream in ["streaming_data/enriched", "anomalies", "streaming_data/bars_5m", "alerts"]:
    def rows(root):
        files = sorted(glob.glob(f"{root}/{stream}/**/part-*.parquet", recursive=True))
        t = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        return t.sort_values(list(t.columns), kind="mergesort").reset_index(drop=True)
    a, b = rows(day), rows(hour)
    assert len(a) > 0 and a.equals(b), (stream, len(a), len(b))
print("same")
"#,
        &[&by_day, &by_hour],
    );
}
