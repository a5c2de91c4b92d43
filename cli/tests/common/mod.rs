//! Helpers for black-box tests of the `stockstream` binary.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn shared_vectors() -> PathBuf {
    repo_root().join("../shared/spec/vectors")
}

/// Runs `stockstream` with `args` from the repository root.
pub fn stockstream(args: &[&str]) -> Output {
    stockstream_in(&repo_root(), args)
}

/// Runs `stockstream` with `args` from `dir`.
pub fn stockstream_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the stockstream binary runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Compares JSON-lines outputs: same records in the same order with the same fields in the
/// same order and the same nulls; floats within `rel` relative (1e-9 is analytics.md's
/// tolerance for the statistics). Returns a readable report of the first differences.
pub fn diff_json_lines(got: &str, want: &str, rel: f64) -> Option<String> {
    let parse = |text: &str| -> Vec<serde_json::Map<String, Value>> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let (got, want) = (parse(got), parse(want));
    let mut problems = Vec::new();
    if got.len() != want.len() {
        problems.push(format!("{} records, expected {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let (gk, wk): (Vec<_>, Vec<_>) = (g.keys().collect(), w.keys().collect());
        if gk != wk {
            problems.push(format!("record {}: fields {gk:?}, expected {wk:?}", i + 1));
            continue;
        }
        for (key, wv) in w {
            let gv = &g[key];
            let same = match (gv, wv) {
                (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
                    let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                    (a - b).abs() <= rel * b.abs().max(1e-6)
                }
                _ => gv == wv,
            };
            if !same {
                problems.push(format!("record {}: {key} = {gv}, expected {wv}", i + 1));
            }
        }
    }
    (!problems.is_empty()).then(|| problems.into_iter().take(20).collect::<Vec<_>>().join("\n"))
}

/// The reference venv's Python, with pyarrow and pandas (`make test` creates it first).
pub fn python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: create the reference venv with `bash reference/setup-venv.sh` (`make test` does it first)",
        python.display()
    );
    python
}

/// Runs a Python check script with `args`; fails the test with its output if it fails.
pub fn check_with_python(script: &str, args: &[&Path]) -> String {
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "python check failed:\n{text}");
    text
}

/// The derived rows of two outputs directories are the same, stream by stream.
#[allow(dead_code)]
pub const SAME_ROWS: &str = r#"
import sys, glob
import pyarrow as pa, pyarrow.parquet as pq
a, b = sys.argv[1], sys.argv[2]
for d in ["streaming_data/enriched", "streaming_data/bars_5m", "anomalies", "alerts"]:
    def table(root):
        fs = sorted(glob.glob(f"{root}/{d}/**/part-*.parquet", recursive=True))
        return pa.concat_tables([pq.read_table(f) for f in fs]) if fs else None
    ta, tb = table(a), table(b)
    if d == "alerts" and ta is not None:
        ta, tb = ta.sort_by("id"), tb.sort_by("id")
    assert (ta is None) == (tb is None), d
    assert ta is None or ta.equals(tb), f"{d}: {ta.num_rows} rows vs {tb.num_rows}, or they differ"
    print(d, 0 if ta is None else ta.num_rows, "identical")
"#;

/// Compares two outputs directories: every stream's rows (all partitions, files in name
/// order) and the dead letters must be identical; part files must cover the input without
/// overlap.
pub const SAME_OUTPUTS: &str = r#"
import sys, glob, json, os, re
import pyarrow as pa, pyarrow.parquet as pq
a, b = sys.argv[1], sys.argv[2]
def files(root, d, ext):
    return sorted(glob.glob(f"{root}/{d}/**/part-*.{ext}", recursive=True))
def check_ranges(root, d, ext):
    by_dir = {}
    for f in files(root, d, ext):
        s, e = map(int, re.match(r"part-(\d+)-(\d+)\.", os.path.basename(f)).groups())
        by_dir.setdefault(os.path.dirname(f), []).append((s, e))
    for dirname, ranges in by_dir.items():
        ranges.sort()
        for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
            assert s1 < e1 <= s2 < e2, f"overlapping commits in {dirname}: {(s1, e1)} {(s2, e2)}"
    return by_dir
for d in ["streaming_data/enriched", "streaming_data/bars_5m", "anomalies"]:
    check_ranges(b, d, "parquet")
    ta = pa.concat_tables([pq.read_table(f) for f in files(a, d, "parquet")])
    tb = pa.concat_tables([pq.read_table(f) for f in files(b, d, "parquet")])
    assert ta.num_rows == tb.num_rows, f"{d}: {ta.num_rows} rows vs {tb.num_rows}"
    assert ta.equals(tb), f"{d}: rows differ"
    # The same partitions hold the same rows.
    pa_ = sorted(os.path.relpath(os.path.dirname(f), a) for f in files(a, d, "parquet"))
    pb = sorted(os.path.relpath(os.path.dirname(f), b) for f in files(b, d, "parquet"))
    assert sorted(set(pa_)) == sorted(set(pb)), f"{d}: partitions differ"
    print(d, ta.num_rows, "identical")
check_ranges(b, "dead_letter", "jsonl")
da = [l for f in files(a, "dead_letter", "jsonl") for l in open(f)]
db = [l for f in files(b, "dead_letter", "jsonl") for l in open(f)]
assert da == db, "dead letters differ"
print("dead_letter", len(da), "identical")
# Alerts close at batch ends, which a restart moves: the same alerts, in any order and commit.
def alerts(root):
    fs = files(root, "alerts", "parquet")
    return pa.concat_tables([pq.read_table(f) for f in fs]).sort_by("id").to_pylist() if fs else []
check_ranges(b, "alerts", "parquet")
aa, ab = alerts(a), alerts(b)
assert aa == ab, f"alerts differ: {len(aa)} vs {len(ab)}"
ca, cb = json.load(open(f"{a}/_checkpoint.json")), json.load(open(f"{b}/_checkpoint.json"))
assert ca.get("open_alerts") == cb.get("open_alerts"), "open alerts differ"
print("alerts", len(aa), "identical")
leftovers = [f for f in glob.glob(f"{b}/**/.*", recursive=True) if f.endswith(".tmp")]
assert not leftovers, leftovers
cp = json.load(open(f"{b}/_checkpoint.json"))
assert cp["finished"], cp
"#;

/// `count` synthetic ticks as JSON lines, `rate` per second of event time (seeded: the same
/// every run).
pub fn write_ticks(path: &Path, count: usize, seed: u64, rate: f64) -> Vec<String> {
    use stockstream_ticks::{Synthetic, SyntheticConfig};
    let config = SyntheticConfig {
        rate,
        seed,
        ..SyntheticConfig::default()
    };
    let lines: Vec<String> = Synthetic::new(config)
        .unwrap()
        .take(count)
        .map(|tick| String::from_utf8(tick.record()).unwrap())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    lines
}

/// Copies `s3://bucket/prefix` into `dest` with pyarrow's S3 file system, after reading each
/// stream as a dataset straight from the bucket.
pub fn mirror_bucket(
    server: &stockstream_testkit::s3::S3Server,
    bucket: &str,
    prefix: &str,
    dest: &Path,
) -> String {
    let script = r#"
import sys, pyarrow.fs as pafs, pyarrow.dataset as ds
endpoint, key, secret, source, dest = sys.argv[1:6]
s3 = pafs.S3FileSystem(endpoint_override=endpoint.split("://")[1], scheme="http",
                       access_key=key, secret_key=secret, region="us-east-1")
for d in ["streaming_data/enriched", "streaming_data/bars_5m", "anomalies", "alerts"]:
    if s3.get_file_info(f"{source}/{d}").type == pafs.FileType.NotFound:
        print(d, 0, "rows read from the bucket")
        continue
    t = ds.dataset(f"{source}/{d}", filesystem=s3, format="parquet", partitioning="hive").to_table()
    print(d, t.num_rows, "rows read from the bucket")
pafs.copy_files(source, dest, source_filesystem=s3, destination_filesystem=pafs.LocalFileSystem())
"#;
    let endpoint = server.endpoint();
    let source = format!("{bucket}/{prefix}");
    let args = [
        Path::new(&endpoint),
        Path::new(&server.access_key_id),
        Path::new(&server.secret_access_key),
        Path::new(&source),
        dest,
    ];
    check_with_python(script, &args)
}

/// A transforms directory whose enriched and bars chains are the composable ones with the test
/// fixture trap-on-symbol (a module with a bug: it traps on every tick of TRAP) right after
/// tick-filter, so it sees valid ticks only; the anomalies chains are the usual ones.
#[allow(dead_code)]
pub fn transforms_with_a_trap(dir: &Path) -> PathBuf {
    let transforms = dir.join("transforms");
    std::fs::create_dir_all(&transforms).unwrap();
    let filter = "  - uses: stockstream/tick-filter@0.1.0\n";
    for file in ["enriched.yaml", "bars-5m.yaml"] {
        let text =
            std::fs::read_to_string(repo_root().join("transforms/composable").join(file)).unwrap();
        assert!(text.contains(filter), "{file}: {text}");
        let text = text.replace(
            filter,
            &format!("{filter}  - uses: stockstream/trap-on-symbol@0.1.0\n"),
        );
        std::fs::write(transforms.join(file), text).unwrap();
    }
    for file in ["anomalies-from-enriched.yaml", "anomalies.yaml"] {
        std::fs::copy(
            repo_root().join("transforms").join(file),
            transforms.join(file),
        )
        .unwrap();
    }
    transforms
}

/// A valid tick of TRAP (what trap-on-symbol traps on) at the time of `line`, a tick.
#[allow(dead_code)]
pub fn trap_tick_at(line: &str) -> String {
    let tick: serde_json::Value = serde_json::from_str(line).unwrap();
    format!(
        r#"{{"symbol":"TRAP","ts":{},"price":10,"volume":1}}"#,
        tick["ts"]
    )
}

/// Every dead letter under `outputs/dead_letter/`, in file-name order.
#[allow(dead_code)]
pub fn dead_letters(outputs: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outputs.join("dead_letter"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}
