//! The chains a cluster runs: `transforms/from-start/` holds the chains of `transforms/`
//! without look_back (for consumers from the start of a topic), and materialize invokes them
//! in the SPU by their registered names, with their parameters and no look_back.

use std::path::{Path, PathBuf};

use fluvio::SmartModuleInvocationWasm;
use stockstream_cluster::materialize::invocations;
use stockstream_cluster::setup::MODULES;
use stockstream_runner::ChainSpec;

fn transforms() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../transforms")
}

#[test]
fn from_start_chains_are_the_live_chains_without_look_back() {
    for name in [
        "enriched.yaml",
        "anomalies.yaml",
        "bars-5m.yaml",
        "composable/enriched.yaml",
        "composable/bars-5m.yaml",
    ] {
        let live = ChainSpec::from_file(&transforms().join(name)).unwrap();
        let (dir, file) = name.rsplit_once('/').unwrap_or(("", name));
        let from_start =
            ChainSpec::from_file(&transforms().join(dir).join("from-start").join(file)).unwrap();
        assert!(
            live.steps.iter().any(|s| s.lookback.is_some()),
            "{name}: the live chain rebuilds its state with look_back"
        );
        let mut without = live.clone();
        for step in &mut without.steps {
            step.lookback = None;
        }
        assert_eq!(without, from_start, "{name}");
    }
}

#[test]
fn anomalies_from_enriched_is_stateless_and_scores_as_the_enriched_chain_does() {
    let spec = ChainSpec::from_file(&transforms().join("anomalies-from-enriched.yaml")).unwrap();
    let enriched = ChainSpec::from_file(&transforms().join("enriched.yaml")).unwrap();
    let [step] = spec.steps.as_slice() else {
        panic!("one step: {spec:?}")
    };
    assert_eq!(step.module, "zscore-anomaly");
    assert!(step.lookback.is_none());
    assert_eq!(
        step.params.get("emit").map(String::as_str),
        Some("anomalies")
    );
    for param in ["threshold", "min_count"] {
        assert_eq!(
            step.params.get(param),
            enriched.steps[0].params.get(param),
            "{param}"
        );
    }
}

#[test]
fn invocations_name_registered_modules_with_parameters_and_no_look_back() {
    let registered: Vec<String> = MODULES
        .iter()
        .map(|m| m.package().unwrap().fqdn())
        .collect();
    let spec = ChainSpec::from_file(&transforms().join("anomalies.yaml")).unwrap();
    let calls = invocations(&spec);
    assert_eq!(calls.len(), spec.steps.len());
    for (call, step) in calls.iter().zip(&spec.steps) {
        match &call.wasm {
            SmartModuleInvocationWasm::Predefined(name) => {
                assert_eq!(name, &step.uses);
                assert!(
                    registered.contains(name),
                    "{name} is not what setup registers"
                );
            }
            other => panic!("not a registered module: {other:?}"),
        }
        assert!(call.params.lookback().is_none());
        for (key, value) in &step.params {
            assert_eq!(call.params.get(key), Some(value));
        }
    }
}
