//! The chains of a run, read from the transforms directory, with what the host needs to know
//! about each (fingerprints for the checkpoint, replay plans, the bars watermark).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use fluvio_smartengine::Lookback;
use stockstream_core::bars::{Admission, BarsConfig, Watermark};
use stockstream_core::tick::Watchlist;
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
            bars.push(spec.step("window-bars").map(|step| {
                let config = BarsConfig::from_params(|n| step.params.get(n).map(String::as_str))
                    .expect("validated when read");
                let watchlist = spec
                    .step("tick-filter")
                    .and_then(|f| {
                        Watchlist::from_param(f.params.get("symbols").map(String::as_str)).ok()
                    })
                    .flatten();
                (watchlist, config)
            }));
            specs.push(spec);
        }
        Ok(Self {
            specs,
            replay,
            fingerprints,
            bars,
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
