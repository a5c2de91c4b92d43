//! `--sink pipeline`: ticks from the producer go into the embedded pipeline in this process,
//! and the outputs are exactly those of `stockstream run` over the same input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use stockstream_pipeline::run::{run, RunConfig};
use stockstream_pipeline::source::Source;
use stockstream_runner::WasmLocator;
use stockstream_ticks::{Synthetic, SyntheticConfig};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn producer_into_the_pipeline_equals_stockstream_run() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ticks.jsonl");
    let mut text = String::new();
    let config = SyntheticConfig {
        rate: 50.0,
        seed: 5,
        ..SyntheticConfig::default()
    };
    for tick in Synthetic::new(config).unwrap().take(30_000) {
        text.push_str(std::str::from_utf8(&tick.record()).unwrap());
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();

    let via_producer = tmp.path().join("via-producer");
    let output = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args([
            "--input",
            input.to_str().unwrap(),
            "--speed",
            "max",
            "--sink",
            "pipeline",
            "--outputs",
        ])
        .arg(&via_producer)
        .current_dir(workspace())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("30000 enriched"), "{stderr}");

    let via_run = tmp.path().join("via-run");
    let source = Source::File {
        path: input.clone(),
        symbol: None,
    };
    let config = RunConfig::new(
        source,
        via_run.clone(),
        workspace().join("transforms"),
        WasmLocator::new(None, Some(&workspace())),
    );
    run(&config, &AtomicBool::new(false), &mut |_| {}).unwrap();

    let produced = files(&via_producer);
    // enriched, bars, anomalies and the alerts they group into.
    assert_eq!(produced.len(), 4, "{produced:?}");
    assert_eq!(produced, files(&via_run));
    for file in &produced {
        assert_eq!(
            std::fs::read(via_producer.join(file)).unwrap(),
            std::fs::read(via_run.join(file)).unwrap(),
            "{}",
            file.display()
        );
    }

    // A stream cannot be read again: a second run into the same outputs is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args([
            "--input",
            input.to_str().unwrap(),
            "--speed",
            "max",
            "--sink",
            "pipeline",
            "--outputs",
        ])
        .arg(&via_producer)
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("cannot be read again to resume"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
