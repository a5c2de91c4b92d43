//! Black-box tests of `stockstream score` (issue 3) on hand-made anomalies, enriched ticks and
//! ground truth, with the expected figures worked out by hand.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{python, stderr};

/// Writes outputs/anomalies and outputs/streaming_data/enriched as `stockstream run` would
/// (only the columns `score` reads matter), with pyarrow.
const WRITE_FIXTURE: &str = r#"
import sys, os
import pyarrow as pa, pyarrow.parquet as pq
out = sys.argv[1]
def write(d, date, rows):
    os.makedirs(f"{out}/{d}/date={date}", exist_ok=True)
    table = pa.table({
        "symbol": pa.array([s for s, _ in rows], pa.string()),
        "ts": pa.array([t for _, t in rows], pa.timestamp("ms", tz="UTC")),
        "price": pa.array([1.0] * len(rows), pa.float64()),
    })
    pq.write_table(table, f"{out}/{d}/date={date}/part-{0:020}-{len(rows):020}.parquet", compression="zstd")
# Detections: A at 1000, 5000, 9000 ms; B at 2000 and 2600 ms.
write("anomalies", "1970-01-01", [("A", 1000), ("B", 2000), ("B", 2600), ("A", 5000), ("A", 9000)])
# Every tick: A every 100 ms from 0 to 10000, B every 200 ms from 0 to 4000.
ticks = sorted([("A", t) for t in range(0, 10001, 100)] + [("B", t) for t in range(0, 4001, 200)], key=lambda r: r[1])
write("streaming_data/enriched", "1970-01-01", ticks)
"#;

fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("outputs");
    let status = Command::new(python())
        .arg("-c")
        .arg(WRITE_FIXTURE)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    // Truth: A at 1200, 5600 and 9000; B at 2300 (with the generator's other fields).
    let truth = tmp.path().join("truth.jsonl");
    std::fs::write(
        &truth,
        concat!(
            "{\"seq\":10,\"symbol\":\"A\",\"ts\":1200,\"k\":8.0}\n",
            "{\"seq\":20,\"symbol\":\"B\",\"ts\":2300,\"k\":8.0}\n",
            "\n",
            "{\"seq\":50,\"symbol\":\"A\",\"ts\":5600,\"k\":8.0}\n",
            "{\"seq\":90,\"symbol\":\"A\",\"ts\":9000,\"k\":8.0}\n",
        ),
    )
    .unwrap();
    (tmp, out, truth)
}

fn score(out: &Path, truth: &Path, tolerance: &str) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(["score", "--json", "--tolerance", tolerance])
        .arg("--outputs")
        .arg(out)
        .arg("--truth")
        .arg(truth)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn assert_close(value: &serde_json::Value, want: f64) {
    let got = value.as_f64().unwrap();
    assert!((got - want).abs() < 1e-12, "{got} != {want}");
}

#[test]
fn milliseconds_tolerance() {
    let (_tmp, out, truth) = fixture();
    // 500 ms: A1000-A1200 (200 ms), A9000-A9000, and one of B2000/B2600 with B2300 (one to
    // one); A5000 is 600 ms from A5600. 3 matches of 5 detections and 4 truths.
    let s = score(&out, &truth, "500ms");
    assert_eq!(s["detected"], 5);
    assert_eq!(s["truth"], 4);
    assert_eq!(s["matched"], 3);
    assert_close(&s["precision"], 3.0 / 5.0);
    assert_close(&s["recall"], 3.0 / 4.0);
    assert_close(&s["f1"], 2.0 * 0.6 * 0.75 / (0.6 + 0.75));
    // 1 s reaches A5000-A5600 too: 4 matches.
    let s = score(&out, &truth, "1s");
    assert_eq!(s["matched"], 4);
    assert_close(&s["recall"], 1.0);
    assert_close(&s["precision"], 4.0 / 5.0);
}

#[test]
fn ticks_tolerance_counts_the_symbols_ticks() {
    let (_tmp, out, truth) = fixture();
    // 1 tick: A1000 is 2 of A's ticks from A1200 (1100, 1200): no; A9000 matches; B2000 is
    // one of B's ticks (2200) from B2300: yes. A5000 is 6 ticks from A5600. 2 matches.
    let s = score(&out, &truth, "1tick");
    assert_eq!(s["matched"], 2);
    assert_close(&s["precision"], 2.0 / 5.0);
    assert_close(&s["recall"], 2.0 / 4.0);
    assert_close(&s["f1"], 2.0 * 0.4 * 0.5 / (0.4 + 0.5));
    // 2 ticks: A1000-A1200 as well: 3 matches.
    assert_eq!(score(&out, &truth, "2ticks")["matched"], 3);
}

#[test]
fn prints_the_figures_and_explains_missing_outputs() {
    let (tmp, out, truth) = fixture();
    let output = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(["score", "--tolerance", "500ms"])
        .arg("--outputs")
        .arg(&out)
        .arg("--truth")
        .arg(&truth)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("5 detected, 4 true anomalies, 3 matched (tolerance 500 ms, one-to-one)"),
        "{text}"
    );
    assert!(
        text.contains("precision 0.6000  recall 0.7500  F1 0.6667"),
        "{text}"
    );
    let missing = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(["score", "--truth"])
        .arg(&truth)
        .arg("--outputs")
        .arg(tmp.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("run `stockstream run` first"),
        "{}",
        stderr(&missing)
    );
}
