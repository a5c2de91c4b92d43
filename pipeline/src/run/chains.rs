//! The chains of a run, read from the transforms directory, with what the host needs to know
//! about each (fingerprints for the checkpoint, replay plans, the bars watermark).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use fluvio_smartengine::Lookback;
use stockstream_core::bars::{Admission, BarsConfig, Watermark};
use stockstream_core::rolling::{Basis, RollingConfig, LATE_FALSE_SUFFIX, LATE_TRUE_SUFFIX};
use stockstream_core::tick::Watchlist;
use stockstream_core::zscore::{Emit, ZScoreConfig};
use stockstream_runner::{ChainSpec, WasmLocator};

use crate::checkpoint::PrefixHash;
use crate::outputs::Stream;
use crate::replay::ChainReplay;

/// The chains of a run, read from the transforms directory.
pub(super) struct Chains {
    pub(super) specs: Vec<ChainSpec>,
    pub(super) replay: Vec<ChainReplay>,
    pub(super) fingerprints: BTreeMap<String, String>,
    /// Per chain: the bars watermark the host keeps to count late ticks (window-bars chains).
    pub(super) bars: Vec<Option<(Option<Watchlist>, BarsConfig)>>,
    /// The anomalies chain can emit only what the enriched chain flagged (see
    /// [`only_flagged_can_pass`]), so only flagged records are handed to it.
    pub(super) anomalies_need_only_flagged: bool,
}

/// Whether `anomalies` (fed with `enriched`'s output) can only emit records `enriched` flagged:
/// it is one zscore-anomaly step keeping anomalies, scoring with the same threshold and
/// min_count as the enriched chain's last step. The rule then gives each record the flag it
/// already carries, and the rest would be dropped anyway: not handing them over saves encoding
/// and copying every enriched record into WASM, with exactly the same output.
fn only_flagged_can_pass(enriched: &ChainSpec, anomalies: &ChainSpec) -> bool {
    let rule = |step: &stockstream_runner::chain::ChainStep| {
        ZScoreConfig::from_params(|n| step.params.get(n).map(String::as_str)).ok()
    };
    let (Some(last), [scorer]) = (enriched.steps.last(), anomalies.steps.as_slice()) else {
        return false;
    };
    if !matches!(last.module.as_str(), "enrich" | "zscore-anomaly")
        || scorer.module != "zscore-anomaly"
    {
        return false;
    }
    match (rule(last), rule(scorer)) {
        (Some(a), Some(b)) => {
            b.emit == Emit::Anomalies
                && a.threshold == b.threshold
                && a.min_count == b.min_count
                && a.basis == b.basis
        }
        _ => false,
    }
}

/// Refuses chains whose zscore-anomaly steps score on another basis than the rolling
/// statistics they read (the enriched chain's, for the anomalies chain fed from it): each record
/// would otherwise fail at run time with zscore-anomaly's mismatch error.
fn check_bases(enriched: &ChainSpec, anomalies: &ChainSpec) -> anyhow::Result<()> {
    let mut basis = None;
    for (name, spec) in [("enriched", enriched), ("anomalies", anomalies)] {
        for step in &spec.steps {
            let param = |n: &str| step.params.get(n).map(String::as_str);
            if matches!(step.module.as_str(), "rolling-stats" | "enrich") {
                basis = RollingConfig::from_params(param).ok().map(|c| c.basis);
            }
            if matches!(step.module.as_str(), "zscore-anomaly" | "enrich") {
                let scorer = ZScoreConfig::from_params(param).map_or(Basis::Price, |c| c.basis);
                let rolling = basis.unwrap_or(Basis::Price);
                if scorer != rolling {
                    anyhow::bail!(
                        "the {name} chain's zscore-anomaly has basis: {} but its rolling statistics \
                         are computed with basis: {}; set the same basis on rolling-stats and \
                         zscore-anomaly",
                        scorer.as_str(),
                        rolling.as_str()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Whether an enriched record carries `"anomaly":true`, where the scorer writes it: just before
/// rolling-stats' closing `late` field, or before the closing brace.
pub(super) fn is_flagged(record: &[u8]) -> bool {
    let body = [LATE_FALSE_SUFFIX, LATE_TRUE_SUFFIX, b"}"]
        .into_iter()
        .find_map(|suffix| record.strip_suffix(suffix));
    body.is_some_and(|body| body.ends_with(b",\"anomaly\":true"))
}

impl Chains {
    pub(super) fn load(dir: &Path, wasm: &WasmLocator) -> anyhow::Result<Self> {
        let mut specs = Vec::new();
        let mut replay = Vec::new();
        let mut fingerprints = BTreeMap::new();
        let mut bars = Vec::new();
        for stream in Stream::ALL {
            let path = dir.join(stream.transforms_file());
            let mut spec = ChainSpec::from_file(&path)
                .with_context(|| format!("the {} chain", stream.name()))?;
            // The host decides what each stateful step replays (crate::replay); the engine
            // only calls look_back on steps that have a lookback setting.
            for step in &mut spec.steps {
                if step.lookback.is_none() {
                    step.lookback = Some(Lookback::Last(u64::MAX));
                }
            }
            // The steps, their parameters and the exact .wasm builds: a restart with anything
            // else would not give the rows of an uninterrupted run.
            let mut steps = Vec::new();
            for step in &spec.steps {
                let path = wasm.find(step)?;
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let mut hash = PrefixHash::default();
                hash.update(&bytes);
                steps.push(format!(
                    "{} {:?} wasm:{}",
                    step.uses,
                    step.params,
                    hash.hex()
                ));
            }
            fingerprints.insert(stream.name().to_owned(), steps.join(" | "));
            replay.push(ChainReplay::for_chain(&spec)?);
            bars.push(spec.bars_step().map(|step| {
                let config = BarsConfig::from_params(|n| step.params.get(n).map(String::as_str))
                    .expect("validated when read");
                let watchlist = spec
                    .filter_step()
                    .and_then(|f| {
                        Watchlist::from_param(f.params.get("symbols").map(String::as_str)).ok()
                    })
                    .flatten();
                (watchlist, config)
            }));
            specs.push(spec);
        }
        check_bases(
            &specs[Stream::Enriched.index()],
            &specs[Stream::Anomalies.index()],
        )?;
        let anomalies_need_only_flagged = only_flagged_can_pass(
            &specs[Stream::Enriched.index()],
            &specs[Stream::Anomalies.index()],
        );
        Ok(Self {
            specs,
            replay,
            fingerprints,
            bars,
            anomalies_need_only_flagged,
        })
    }
}

/// The host's count of ticks window-bars leaves out (below its watermark on arrival).
pub(super) struct BarsLateness {
    pub(super) watchlist: Option<Watchlist>,
    pub(super) watermark: Watermark,
}

impl BarsLateness {
    pub(super) fn is_late(&mut self, symbol: &str, ts: i64) -> bool {
        if self.watchlist.as_ref().is_some_and(|w| !w.contains(symbol)) {
            return false;
        }
        matches!(self.watermark.admit(ts), Admission::Late { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_where_the_scorer_writes_them() {
        assert!(is_flagged(
            br#"{"p":1,"z":4.0,"anomaly":true,"late":false}"#
        ));
        assert!(is_flagged(
            br#"{"p":1,"z":null,"anomaly":true,"late":true}"#
        ));
        assert!(is_flagged(br#"{"p":1,"z":4.0,"anomaly":true}"#));
        assert!(!is_flagged(
            br#"{"p":1,"z":1.0,"anomaly":false,"late":false}"#
        ));
        assert!(!is_flagged(br#"{"anomaly":true,"p":1,"late":false}"#));
    }

    fn spec(yaml: &str) -> ChainSpec {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.yaml");
        std::fs::write(&path, yaml).unwrap();
        ChainSpec::from_file(&path).unwrap()
    }

    #[test]
    fn only_flagged_records_are_handed_over_when_the_rules_agree() {
        let enriched = spec("transforms:\n  - uses: stockstream/enrich@0.1.0\n    with:\n      threshold: \"3.0\"\n");
        let same = spec("transforms:\n  - uses: stockstream/zscore-anomaly@0.1.0\n    with:\n      threshold: \"3\"\n      emit: anomalies\n");
        let other = spec("transforms:\n  - uses: stockstream/zscore-anomaly@0.1.0\n    with:\n      threshold: \"2.5\"\n      emit: anomalies\n");
        let all = spec("transforms:\n  - uses: stockstream/zscore-anomaly@0.1.0\n");
        assert!(only_flagged_can_pass(&enriched, &same));
        assert!(!only_flagged_can_pass(&enriched, &other));
        assert!(!only_flagged_can_pass(&enriched, &all));
    }

    #[test]
    fn a_chain_mixing_bases_is_refused() {
        let returns = spec(
            "transforms:\n  - uses: stockstream/enrich@0.1.0\n    with:\n      basis: return\n",
        );
        let prices = spec("transforms:\n  - uses: stockstream/enrich@0.1.0\n");
        let scorer_returns = spec("transforms:\n  - uses: stockstream/zscore-anomaly@0.1.0\n    with:\n      basis: return\n      emit: anomalies\n");
        let scorer_prices = spec("transforms:\n  - uses: stockstream/zscore-anomaly@0.1.0\n    with:\n      emit: anomalies\n");
        assert!(check_bases(&returns, &scorer_returns).is_ok());
        assert!(check_bases(&prices, &scorer_prices).is_ok());
        let err = check_bases(&returns, &scorer_prices)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("anomalies chain") && err.contains("basis"),
            "{err}"
        );
        assert!(check_bases(&prices, &scorer_returns).is_err());
        assert!(!only_flagged_can_pass(&returns, &scorer_prices));
        let composable = spec("transforms:\n  - uses: stockstream/rolling-stats@0.1.0\n    with:\n      basis: return\n  - uses: stockstream/zscore-anomaly@0.1.0\n");
        assert!(check_bases(&composable, &scorer_returns).is_err());
    }
}
