//! Golden scenarios: the built .wasm modules, run by the real binary on fluvio-smartengine,
//! must reproduce each scenario's expected output (tests/scenarios/ and the shared vectors).

mod common;

use std::path::Path;

use common::{diff_json_lines, repo_root, shared_vectors, stderr, stockstream};

fn run_scenario(
    chain: &Path,
    input: &Path,
    expected: &Path,
    expected_stderr: Option<&Path>,
) -> Result<(), String> {
    let output = stockstream(&[
        "transform",
        "--transforms-file",
        chain.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    let err = stderr(&output);
    if !output.status.success() {
        return Err(format!("exit {:?}\n{err}", output.status));
    }
    let got = String::from_utf8(output.stdout).unwrap();
    let want = std::fs::read_to_string(expected).unwrap();
    if let Some(diff) = diff_json_lines(&got, &want, 1e-9) {
        return Err(diff);
    }
    if let Some(path) = expected_stderr {
        let mut lines = err.lines();
        for wanted in std::fs::read_to_string(path).unwrap().lines() {
            if !lines.any(|l| l == wanted) {
                return Err(format!(
                    "stderr lacks (in order) {wanted:?}\nstderr:\n{err}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn every_scenario_folder_reproduces_its_expected_output() {
    let root = repo_root().join("tests/scenarios");
    let mut failures = Vec::new();
    let mut ran = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        ran += 1;
        let stderr_file = dir.join("expected.stderr");
        if let Err(problem) = run_scenario(
            &dir.join("chain.yaml"),
            &dir.join("input.jsonl"),
            &dir.join("expected.jsonl"),
            stderr_file.exists().then_some(stderr_file.as_path()),
        ) {
            failures.push(format!("scenario {}:\n{problem}", dir.display()));
        }
    }
    assert!(ran >= 5, "found only {ran} scenarios in {}", root.display());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn write_chain(dir: &Path, yaml: &str) -> std::path::PathBuf {
    let path = dir.join("chain.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn shared_vector_enriched_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = write_chain(
        tmp.path(),
        r#"transforms:
  - uses: stockstream/tick-filter@0.1.0
  - uses: stockstream/rolling-stats@0.1.0
    with: { window: "60s" }
  - uses: stockstream/zscore-anomaly@0.1.0
    with: { min_count: "3", threshold: "2", emit: "all" }
"#,
    );
    let v = shared_vectors();
    run_scenario(
        &chain,
        &v.join("enriched-edge.input.jsonl"),
        &v.join("enriched-edge.expected.jsonl"),
        None,
    )
    .unwrap();
}

#[test]
fn shared_vector_bars_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = write_chain(
        tmp.path(),
        r#"transforms:
  - uses: stockstream/tick-filter@0.1.0
  - uses: stockstream/window-bars@0.1.0
    with: { size: "60s", slide: "20s", lateness: "5s" }
"#,
    );
    let v = shared_vectors();
    run_scenario(
        &chain,
        &v.join("bars-edge.input.jsonl"),
        &v.join("bars-edge.expected.jsonl"),
        None,
    )
    .unwrap();
}
