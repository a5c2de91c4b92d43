//! Black-box tests of `stockstream run` (issue 3): Parquet outputs read back with pyarrow and
//! pandas, equality with `stockstream transform`, exact resume after kill -9 at random points,
//! a clean stop on SIGTERM, and the refusals that protect the outputs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{check_with_python, repo_root, stderr, stockstream_in, SAME_OUTPUTS};

fn run_args<'a>(input: &'a str, outputs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--input",
        input,
        "--speed",
        "max",
        "--no-dashboard",
        "--outputs",
        outputs,
    ];
    args.extend_from_slice(extra);
    args
}

/// A small deterministic PRNG (xorshift64*), so fixtures and kill points are seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Tick records for four symbols from 2024-03-04 22:30 UTC (so the data crosses midnight):
/// repeated timestamps, late ticks, gaps longer than the windows, zero volumes, price jumps
/// (anomalies) and a few invalid lines.
fn generate_ticks(count: usize, seed: u64) -> String {
    let symbols = ["AAA", "BBB", "CCC", "DDD"];
    let mut rng = Rng(seed | 1);
    let mut clock: i64 = 1_709_591_400_000;
    let mut price = [100.0f64, 250.0, 37.5, 4321.0];
    let mut out = String::with_capacity(count * 64);
    for i in 0..count {
        if i % 4999 == 1234 {
            out.push_str(match (i / 4999) % 4 {
                0 => "{\"symbol\":\"AAA\",\"ts\":1709591400000}\n",
                1 => "{\"symbol\":\"bad symbol\",\"ts\":1709591400000,\"price\":1}\n",
                2 => "not json at all\n",
                _ => "{\"symbol\":\"BBB\",\"ts\":1709591400000,\"price\":-3}\n",
            });
            continue;
        }
        let step = match rng.below(100) {
            0..=24 => 0,
            25..=98 => rng.below(60) as i64,
            _ => 400 + rng.below(2000) as i64,
        };
        clock += step;
        if i % 60_000 == 59_999 {
            clock += 900_000; // a quarter of an hour without ticks
        }
        let s = rng.below(4) as usize;
        let ts = if rng.below(1000) == 0 {
            clock - 1 - rng.below(8_000) as i64 // late
        } else {
            clock
        };
        let jump = if rng.below(2500) == 0 { 0.04 } else { 0.0 };
        let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
        price[s] *= 1.0 + sign * jump + (rng.unit() - 0.5) * 0.0008;
        let p = (price[s] * 100.0).round() / 100.0;
        let volume = rng.below(12);
        out.push_str(&format!(
            "{{\"symbol\":\"{}\",\"ts\":{ts},\"price\":{p},\"volume\":{volume}}}\n",
            symbols[s]
        ));
    }
    out
}

/// Shared by the long tests: a generated input of 300,000 ticks and a clean, uninterrupted
/// run over it.
struct Fixture {
    dir: PathBuf,
    input: PathBuf,
    clean: PathBuf,
}

fn big_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("run-tests");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let input = dir.join("ticks.jsonl");
        fs::write(&input, generate_ticks(300_000, 0x5eed_0003)).unwrap();
        let clean = dir.join("clean");
        let output = stockstream_in(
            &repo_root(),
            &run_args(input.to_str().unwrap(), clean.to_str().unwrap(), &[]),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        Fixture { dir, input, clean }
    })
}

fn checkpoint(dir: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(dir.join("_checkpoint.json")).ok()?;
    serde_json::from_str(&text).ok()
}

const TICK_SCHEMA_CHECK: &str = r#"
import sys, json, glob
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq, pandas as pd
out, expected = sys.argv[1], json.loads(sys.argv[2])
ms = pa.timestamp("ms", tz="UTC")
tick = {"symbol": pa.string(), "ts": ms, "price": pa.float64(), "volume": pa.int64(),
        "sma": pa.float64(), "count": pa.int64(), "vwap": pa.float64(), "prev_mean": pa.float64(),
        "prev_std": pa.float64(), "prev_count": pa.int64(), "z": pa.float64(),
        "anomaly": pa.bool_(), "late": pa.bool_()}
bar = {"symbol": pa.string(), "window_start": ms, "window_end": ms, "open": pa.float64(),
       "high": pa.float64(), "low": pa.float64(), "close": pa.float64(), "volume": pa.int64(),
       "vwap": pa.float64(), "mean": pa.float64(), "std": pa.float64(), "count": pa.int64()}
nullable = {"tick": {"sma", "count", "vwap", "prev_mean", "prev_std", "prev_count", "z"},
            "bar": {"vwap", "std"}}
for d, cols, key in [("streaming_data/enriched", tick, "enriched"), ("anomalies", tick, "anomalies"),
                     ("streaming_data/bars_5m", bar, "bars")]:
    for f in glob.glob(f"{out}/{d}/date=*/part-*.parquet"):
        meta = pq.ParquetFile(f).metadata
        assert all(meta.row_group(0).column(i).compression == "ZSTD" for i in range(meta.num_columns)), f
    if expected[key] == 0:
        assert not glob.glob(f"{out}/{d}/**/*.parquet", recursive=True), d
        continue
    dataset = ds.dataset(f"{out}/{d}", format="parquet", partitioning="hive")
    table = dataset.to_table()
    for name, typ in cols.items():
        field = table.schema.field(name)
        assert field.type == typ, (d, name, field.type, typ)
        assert field.nullable == (name in nullable["bar" if cols is bar else "tick"]), (d, name, field.nullable)
    assert table.num_rows == expected[key], (d, table.num_rows, expected[key])
    frame = pd.read_parquet(f"{out}/{d}")
    assert len(frame) == expected[key], (d, len(frame))
    assert str(frame["symbol"].dtype) in ("object", "string", "str"), frame.dtypes
    dates = sorted(set(frame["date"].astype(str)))
    assert dates == expected["dates_" + key], (d, dates)
    # Partition of every row = the UTC date of ts (bars: window_start).
    col = "window_start" if key == "bars" else "ts"
    assert (frame[col].dt.strftime("%Y-%m-%d") == frame["date"].astype(str)).all(), d
print("schemas and counts ok")
"#;

#[test]
fn writes_date_partitioned_parquet_that_pyarrow_and_pandas_read() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ticks.jsonl");
    // Two symbols over midnight UTC; line 4 invalid, line 6 not JSON, line 9 late.
    let mut lines = vec![
        r#"{"symbol":"AAA","ts":1709596799000,"price":10.0,"volume":5}"#.to_owned(),
        r#"{"symbol":"BBB","ts":1709596799500,"price":20.0}"#.to_owned(),
        r#"{"symbol":"AAA","ts":1709596799900,"price":10.5,"volume":1,"venue":"X"}"#.to_owned(),
        r#"{"symbol":"AAA","ts":1709596800000,"price":-1,"volume":1}"#.to_owned(),
        r#"{"symbol":"AAA","ts":1709596800100,"price":11.0,"volume":0}"#.to_owned(),
        "not json".to_owned(),
        r#"{"symbol":"BBB","ts":1709596860000,"price":21.0,"volume":2}"#.to_owned(),
        r#"{"symbol":"AAA","ts":1709597400000,"price":12.0,"volume":3}"#.to_owned(),
        r#"{"symbol":"AAA","ts":1709596800050,"price":9.0,"volume":3}"#.to_owned(),
    ];
    lines.push(String::new());
    fs::write(&input, lines.join("\n")).unwrap();
    let out = tmp.path().join("out");
    let output = stockstream_in(tmp.path(), &run_args(input.to_str().unwrap(), "out", &[]));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("line 4: invalid tick: price must be > 0"),
        "{err}"
    );
    assert!(
        err.contains("line 6: invalid tick: not valid JSON"),
        "{err}"
    );
    assert!(
        err.contains(
            "run: 9 records in (9 this run), 2 invalid, 0 failed, 1 late, 1 late for bars"
        ),
        "{err}"
    );
    assert!(
        err.contains("invalid by reason: bad_price=1, not_json=1"),
        "{err}"
    );
    // The transform of the same input gives the expected bar count.
    let bars = stockstream_in(
        &repo_root(),
        &[
            "transform",
            "--transforms-file",
            "transforms/bars-5m.yaml",
            "--input",
            input.to_str().unwrap(),
        ],
    );
    let bar_count = String::from_utf8_lossy(&bars.stdout).lines().count();
    assert!(bar_count > 0);
    let expected = serde_json::json!({
        "enriched": 7, "anomalies": 0, "bars": bar_count,
        "dates_enriched": ["2024-03-04", "2024-03-05"],
        "dates_anomalies": [],
        "dates_bars": ["2024-03-04", "2024-03-05"],
    });
    check_with_python(TICK_SCHEMA_CHECK, &[&out, Path::new(&expected.to_string())]);
    // Dead letters: one JSON object per invalid line, with its line and reason.
    let dead: Vec<serde_json::Value> = fs::read_dir(out.join("dead_letter"))
        .unwrap()
        .flat_map(|e| {
            fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["line"], 4);
    assert_eq!(dead[0]["reason"], "bad_price");
    assert_eq!(dead[1]["line"], 6);
    assert_eq!(dead[1]["record"], "not json");
    let cp = checkpoint(&out).unwrap();
    assert_eq!(cp["offset"], 9);
    assert_eq!(cp["finished"], true);

    // Running again on the finished outputs adds nothing.
    let again = stockstream_in(tmp.path(), &run_args(input.to_str().unwrap(), "out", &[]));
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("(0 this run)"),
        "{}",
        stderr(&again)
    );
    assert_eq!(checkpoint(&out).unwrap()["counts"], cp["counts"]);
}

/// Rows of each stream equal `stockstream transform`'s over the same input: same values, same
/// order within each date partition.
const SAME_AS_TRANSFORM: &str = r#"
import sys, json, glob, datetime
import pyarrow as pa, pyarrow.parquet as pq
out, transformed = sys.argv[1], sys.argv[2]
def day(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
for d, name, key in [("streaming_data/enriched", "enriched", "ts"), ("anomalies", "anomalies", "ts"),
                     ("streaming_data/bars_5m", "bars", "window_start")]:
    want = {}
    for line in open(f"{transformed}/{name}.jsonl"):
        row = json.loads(line)
        row.setdefault("volume", 0)
        want.setdefault(day(row[key]), []).append(row)
    got = {}
    for f in sorted(glob.glob(f"{out}/{d}/date=*/part-*.parquet")):
        t = pq.read_table(f)
        t = pa.table({c: (t[c].cast(pa.int64()) if pa.types.is_timestamp(t[c].type) else t[c]) for c in t.column_names})
        got.setdefault(f.split("date=")[1].split("/")[0], []).extend(t.to_pylist())
    assert sorted(got) == sorted(want), (name, sorted(got), sorted(want))
    for date in want:
        w = [{c: r[c] for c in got[date][0]} for r in want[date]]
        assert len(w) == len(got[date]), (name, date, len(w), len(got[date]))
        for i, (a, b) in enumerate(zip(got[date], w)):
            assert a == b, (name, date, i, a, b)
    print(name, sum(map(len, want.values())), "rows equal")
"#;

#[test]
fn outputs_equal_stockstream_transform_on_the_same_input() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ticks.jsonl");
    fs::write(&input, generate_ticks(40_000, 0x5eed_0002)).unwrap();
    let out = tmp.path().join("out");
    let output = stockstream_in(
        tmp.path(),
        &run_args(
            input.to_str().unwrap(),
            "out",
            &["--commit-records", "7000"],
        ),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let transformed = tmp.path().join("transformed");
    fs::create_dir(&transformed).unwrap();
    for (name, chain) in [
        ("enriched", "enriched.yaml"),
        ("anomalies", "anomalies.yaml"),
        ("bars", "bars-5m.yaml"),
    ] {
        let result = stockstream_in(
            &repo_root(),
            &[
                "transform",
                "--transforms-file",
                &format!("transforms/{chain}"),
                "--input",
                input.to_str().unwrap(),
                "--output",
                transformed.join(format!("{name}.jsonl")).to_str().unwrap(),
            ],
        );
        assert!(result.status.success(), "{}", stderr(&result));
    }
    let report = check_with_python(SAME_AS_TRANSFORM, &[&out, &transformed]);
    assert!(report.contains("anomalies"), "{report}");
    // The fixture has anomalies, late ticks and several commits.
    let cp = checkpoint(&out).unwrap();
    assert!(cp["counts"]["anomaly_rows"].as_u64().unwrap() > 0, "{cp}");
    assert!(cp["counts"]["late"].as_u64().unwrap() > 0, "{cp}");
    assert!(cp["counts"]["commits"].as_u64().unwrap() >= 5, "{cp}");
}

/// Runs `run` over `input` into `out`, killing it with SIGKILL at random (seeded) points and
/// restarting it until it finishes; returns the number of runs and of resumes.
fn kill_9_until_done(input: &Path, out: &Path, extra: &[&str], seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed);
    let mut runs = 0;
    let mut resumes = 0;
    let started = Instant::now();
    let mut args = vec!["--commit-records", "10000"];
    args.extend_from_slice(extra);
    loop {
        runs += 1;
        assert!(runs <= 150, "not finished after 150 runs");
        let log = out.with_file_name(format!(
            "{}-{runs}.log",
            out.file_name().unwrap().to_string_lossy()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_stockstream"))
            .args(run_args(
                input.to_str().unwrap(),
                out.to_str().unwrap(),
                &args,
            ))
            .current_dir(repo_root())
            .env("RUST_LOG", "stockstream_pipeline=info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Kill at a random point of the processing (after the chains have started and the
        // state is rebuilt, which takes seconds on a busy machine), or now and then during
        // the start itself.
        // The whole input takes about a second once the chains run, so kills come within
        // 600 ms (with 2.5 s, most runs finished before their kill and few resumed).
        let during_start = rng.below(8) == 0;
        let delay = Duration::from_millis(rng.below(600));
        let mut deadline = during_start.then(|| Instant::now() + delay);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if deadline.is_none()
                && fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("processing from record")
            {
                deadline = Some(Instant::now() + delay);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        if log_text.contains("resuming after record") {
            resumes += 1;
        }
        match status {
            Some(status) => {
                assert!(status.success(), "run {runs} failed: {log_text}");
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
            }
        }
    }
    eprintln!(
        "kill -9 test ({}): {runs} runs, {resumes} resumed from a checkpoint, {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    (runs, resumes)
}

/// Regression guard for issue 3: a run killed with SIGKILL at random (seeded) points and
/// restarted until done ends with exactly the rows of an uninterrupted run, none twice.
#[test]
fn kill_9_at_random_points_and_restart_gives_the_rows_of_a_clean_run() {
    let fixture = big_fixture();
    let out = fixture.dir.join("killed");
    let (_, resumes) = kill_9_until_done(&fixture.input, &out, &[], 0x0c0f_fee5);
    assert!(
        resumes >= 2,
        "only {resumes} runs resumed from a checkpoint"
    );
    let report = check_with_python(SAME_OUTPUTS, &[&fixture.clean, &out]);
    eprintln!("{report}");
    // The record of committed files survived the kills: every file there, as committed, and
    // no line of a commit that never finished.
    let verify = stockstream_in(
        &repo_root(),
        &["verify", "--outputs", out.to_str().unwrap()],
    );
    assert!(verify.status.success(), "{}", stderr(&verify));
    let lines = fs::read_to_string(out.join("_manifest.jsonl"))
        .unwrap()
        .lines()
        .count();
    let recorded = checkpoint(&out).unwrap()["manifest_len"].as_u64().unwrap();
    assert_eq!(lines as u64, recorded);
}

/// The same with the return-basis chains (issue 12), whose restart rebuilds the previous
/// price of each symbol as well as the windows; the return statistics are in the Parquet.
#[test]
fn kill_9_with_the_return_basis_gives_the_rows_of_a_clean_run() {
    let fixture = big_fixture();
    let returns = repo_root().join("transforms/returns");
    let returns = returns.to_str().unwrap();
    let clean = fixture.dir.join("clean-returns");
    let output = stockstream_in(
        &repo_root(),
        &run_args(
            fixture.input.to_str().unwrap(),
            clean.to_str().unwrap(),
            &["--transforms-dir", returns],
        ),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let out = fixture.dir.join("killed-returns");
    let (_, resumes) = kill_9_until_done(
        &fixture.input,
        &out,
        &["--transforms-dir", returns],
        0x0bad_5eed,
    );
    assert!(
        resumes >= 2,
        "only {resumes} runs resumed from a checkpoint"
    );
    check_with_python(SAME_OUTPUTS, &[&clean, &out]);
    check_with_python(
        r#"
import sys, pandas as pd
e = pd.read_parquet(f"{sys.argv[1]}/streaming_data/enriched")
a = pd.read_parquet(f"{sys.argv[1]}/anomalies")
for col in ["ret", "ret_prev_mean", "ret_prev_std", "ret_prev_count"]:
    assert col in e.columns and col in a.columns, (col, list(e.columns))
assert e.ret.notna().mean() > 0.99, e.ret.notna().mean()
# Every anomaly is scored on its return: z = (ret - ret_prev_mean) / ret_prev_std.
z = (a.ret - a.ret_prev_mean) / a.ret_prev_std
assert ((z - a.z).abs() < 1e-9).all() and (a.z.abs() >= 3).all()
print(len(e), len(a))
"#,
        &[&clean],
    );
}

/// SIGTERM stops the run cleanly: what was read is committed, the exit status says it was
/// stopped, and a second run finishes with the rows of a clean run.
#[test]
fn sigterm_stops_cleanly_with_everything_committed() {
    let fixture = big_fixture();
    let out = fixture.dir.join("stopped");
    let log = fixture.dir.join("stopped.log");
    let child = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(run_args(
            fixture.input.to_str().unwrap(),
            out.to_str().unwrap(),
            &["--commit-records", "50000", "--commit-interval", "1h"],
        ))
        .current_dir(repo_root())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Once the first commit is in, the run is well under way: stop it.
    let waiting = Instant::now();
    while checkpoint(&out).is_none() {
        assert!(
            waiting.elapsed() < Duration::from_secs(300),
            "no first commit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait_with_output().unwrap().status;
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{text}");
    let cp = checkpoint(&out).unwrap();
    let offset = cp["offset"].as_u64().unwrap();
    assert!(
        text.contains(&format!(
            "stopped after record {offset}: run the same command to go on"
        )),
        "{text}"
    );
    assert!(offset > 0 && offset < 300_000, "{cp}");
    assert_eq!(cp["finished"], false);
    assert_eq!(cp["counts"]["records_in"].as_u64(), Some(offset));
    // Everything read was committed: the last commit ends at the stop.
    let ending = format!("-{offset:020}.parquet");
    let enriched_files = walk(&out.join("streaming_data/enriched"));
    assert!(
        enriched_files.iter().any(|f| f.ends_with(&ending)),
        "{enriched_files:?}"
    );
    assert!(!walk(&out).iter().any(|f| f.ends_with(".tmp")));

    let rest = stockstream_in(
        &repo_root(),
        &run_args(fixture.input.to_str().unwrap(), out.to_str().unwrap(), &[]),
    );
    assert!(rest.status.success(), "{}", stderr(&rest));
    assert!(
        stderr(&rest).contains(&format!("resuming after record {offset}")),
        "{}",
        stderr(&rest)
    );
    check_with_python(SAME_OUTPUTS, &[&fixture.clean, &out]);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.to_string_lossy().into_owned());
        }
    }
    files
}

#[test]
fn refuses_to_resume_on_a_different_input() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.jsonl");
    let b = tmp.path().join("b.jsonl");
    fs::write(&a, generate_ticks(2_000, 1)).unwrap();
    fs::write(&b, generate_ticks(2_000, 2)).unwrap();
    let first = stockstream_in(tmp.path(), &run_args(a.to_str().unwrap(), "out", &[]));
    assert!(first.status.success(), "{}", stderr(&first));
    let other = stockstream_in(tmp.path(), &run_args(b.to_str().unwrap(), "out", &[]));
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("differ from the ones the checkpoint"),
        "{}",
        stderr(&other)
    );
}

fn synthetic_args<'a>(outputs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--synthetic", "--no-dashboard", "--outputs", outputs];
    args.extend_from_slice(extra);
    args
}

#[test]
fn synthetic_runs_are_deterministic_by_seed_and_detect_the_injected_anomalies() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = ["--limit", "60000", "--speed", "max", "--seed", "11"];
    for dir in ["a", "b"] {
        let output = stockstream_in(tmp.path(), &synthetic_args(dir, &limit));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    // Same seed: byte-identical outputs and ground truth.
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let relative = |root: &Path| -> Vec<String> {
        walk(root)
            .iter()
            .map(|f| {
                Path::new(f)
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect()
    };
    let files = relative(&a);
    assert!(files.iter().any(|f| f.ends_with(".parquet")), "{files:?}");
    assert_eq!(files, relative(&b));
    for file in &files {
        assert_eq!(
            fs::read(a.join(file)).unwrap(),
            fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
    let truth = fs::read_to_string(a.join("synthetic_truth.jsonl")).unwrap();
    assert!(truth.lines().count() > 100, "{truth}");

    // Another seed: other ticks.
    let other = stockstream_in(
        tmp.path(),
        &synthetic_args("c", &["--limit", "60000", "--speed", "max", "--seed", "12"]),
    );
    assert!(other.status.success());
    assert_ne!(
        fs::read_to_string(tmp.path().join("c/synthetic_truth.jsonl")).unwrap(),
        truth
    );

    // The detector finds most injected anomalies (jumps of 100 sigma) at default parameters.
    let score = stockstream_in(
        tmp.path(),
        &[
            "score",
            "--truth",
            "a/synthetic_truth.jsonl",
            "--outputs",
            "a",
        ],
    );
    assert!(score.status.success(), "{}", stderr(&score));
    let text = String::from_utf8(score.stdout).unwrap();
    let figure = |name: &str| -> f64 {
        let at = text
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {text}"))
            + name.len();
        text[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(figure("recall") > 0.8, "{text}");
    assert!(figure("precision") > 0.4, "{text}");
}

#[test]
fn a_paced_synthetic_run_keeps_to_event_time_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    // 200 ticks/s of event time at real speed; stopped after about 2 s of pacing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(synthetic_args(
            "out",
            &["--rate", "200", "--commit-interval", "200ms"],
        ))
        .current_dir(tmp.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first commit (start-up compiles the modules), then let it run.
    let checkpoint_file = tmp.path().join("out/_checkpoint.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checkpoint_file.exists() {
        assert!(Instant::now() < deadline, "no commit within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = checkpoint(&tmp.path().join("out")).unwrap()["offset"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let last = checkpoint(&tmp.path().join("out")).unwrap()["offset"]
        .as_u64()
        .unwrap();
    // Paced, not as fast as possible: about 400 ticks in 2 s (never millions).
    let released = last - first;
    assert!(
        (200..=800).contains(&released),
        "{released} ticks released in ~2 s at 200/s"
    );
}

#[test]
fn bad_speed_and_synthetic_settings_are_refused_before_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = stockstream_in(tmp.path(), &["run", "--speed", "fast"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("speed \"fast\""), "{}", stderr(&bad));
    let bad = stockstream_in(tmp.path(), &synthetic_args("out", &["--rate", "0"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--synthetic"), "{}", stderr(&bad));
    assert!(!tmp.path().join("outputs").exists() && !tmp.path().join("out").exists());
}

/// Runs `stockstream` in `dir` until its stderr has a line with `until`, then stops it with
/// SIGTERM; returns what it wrote to stderr by then.
fn stderr_until(dir: &Path, args: &[&str], env: &[(&str, &str)], until: &str) -> String {
    use std::io::BufRead;
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockstream"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("STOCKSTREAM_DASHBOARD_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let (lines, got) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !text.contains(until) {
        let left = deadline.saturating_duration_since(Instant::now());
        match got.recv_timeout(left) {
            Ok(line) => text.push_str(&(line + "\n")),
            Err(_) => {
                let _ = child.kill();
                panic!("no {until:?} within 120 s:\n{text}");
            }
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    child.wait().unwrap();
    text
}

/// Issue 13, item 9: `--listen 0.0.0.0:PORT` with no token served every API to the network
/// and said only where. Now it is refused at start-up, before any input is read or any
/// cluster reached, naming the ways out; `--insecure-no-token` serves it with a warning.
#[test]
fn a_dashboard_beyond_loopback_without_a_token_is_refused_unless_insecure_no_token() {
    let tmp = tempfile::tempdir().unwrap();
    let refusals: [&[&str]; 4] = [
        &[
            "run",
            "--input",
            "missing.jsonl",
            "--outputs",
            "out",
            "--listen",
            "0.0.0.0:0",
        ],
        &[
            "run",
            "--synthetic",
            "--outputs",
            "out",
            "--listen",
            "[::]:0",
        ],
        &[
            "bridge",
            "--to",
            "pipeline",
            "--bootstrap",
            "127.0.0.1:1",
            "--outputs",
            "out",
            "--listen",
            "0.0.0.0:0",
        ],
        &[
            "dashboard",
            "--fluvio",
            "127.0.0.1:1",
            "--listen",
            "0.0.0.0:0",
        ],
    ];
    for args in refusals {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_stockstream"))
            .args(args)
            .current_dir(tmp.path())
            .env_remove("STOCKSTREAM_DASHBOARD_TOKEN")
            .output()
            .unwrap();
        let text = stderr(&output);
        assert!(!output.status.success(), "{args:?}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?}: not fast"
        );
        for part in [
            "--token",
            "STOCKSTREAM_DASHBOARD_TOKEN",
            "--insecure-no-token",
        ] {
            assert!(text.contains(part), "{args:?}: no {part} in {text}");
        }
        assert!(!text.contains("dashboard at"), "{args:?}: {text}");
        assert!(
            !tmp.path().join("out").exists(),
            "{args:?}: outputs written"
        );
    }

    fs::write(tmp.path().join("ticks.jsonl"), generate_ticks(200, 13)).unwrap();
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "run",
            "--input",
            "ticks.jsonl",
            "--speed",
            "max",
            "--outputs",
            "out",
        ];
        args.extend_from_slice(extra);
        stderr_until(tmp.path(), &args, env, "dashboard at http://")
    };
    let insecure = run(&["--listen", "0.0.0.0:0", "--insecure-no-token"], &[]);
    assert!(
        insecure.contains("WARNING") && insecure.contains("NO TOKEN"),
        "{insecure}"
    );
    assert!(
        insecure.contains("dashboard at http://0.0.0.0:"),
        "{insecure}"
    );
    // With a token (here from the environment), no flag and no warning are needed.
    let guarded = run(
        &["--listen", "0.0.0.0:0"],
        &[("STOCKSTREAM_DASHBOARD_TOKEN", "s3cret")],
    );
    assert!(!guarded.contains("WARNING"), "{guarded}");
    assert!(guarded.contains("/?token=..."), "{guarded}");
}
