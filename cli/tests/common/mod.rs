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
    Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(args)
        .current_dir(repo_root())
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
