//! The enriched chain (tick-filter, rolling-stats, zscore-anomaly) run natively on the same
//! core code the modules use, record by record, re-reading each module's output as the next
//! module does. It is the yardstick for the WASM chain's speed and a cross-check of its output.

use stockstream_core::rolling::{RollingConfig, RollingStats};
use stockstream_core::tick::{parse_tick, Watchlist};
use stockstream_core::zscore::{parse_scoring_input, write_scored, ZScoreConfig};

use crate::chain::ChainSpec;

pub struct NativeEnrichedChain {
    watchlist: Option<Watchlist>,
    stats: RollingStats,
    zscore: ZScoreConfig,
    enriched: Vec<u8>,
}

impl NativeEnrichedChain {
    /// Takes the parameters of a chain's tick-filter, rolling-stats and zscore-anomaly steps.
    pub fn from_spec(spec: &ChainSpec) -> anyhow::Result<Self> {
        // The three steps' parameters, or all of them on the fused enrich module.
        let param = |module: &str, name: &str| {
            spec.step(module)
                .or_else(|| spec.step("enrich"))
                .and_then(|s| s.params.get(name))
                .map(String::as_str)
        };
        Ok(Self {
            watchlist: Watchlist::from_param(param("tick-filter", "symbols"))?,
            stats: RollingStats::new(RollingConfig::from_params(|n| param("rolling-stats", n))?),
            zscore: ZScoreConfig::from_params(|n| param("zscore-anomaly", n))?,
            enriched: Vec::with_capacity(512),
        })
    }

    /// Processes one record; appends the output record (if any) to `out`.
    pub fn process(&mut self, record: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        // tick-filter
        let Ok(tick) = parse_tick(record) else {
            return Ok(false);
        };
        if self
            .watchlist
            .as_ref()
            .is_some_and(|w| !w.contains(tick.symbol))
        {
            return Ok(false);
        }
        // rolling-stats (parses again, as the module does)
        let tick = parse_tick(record)?;
        let enrichment = self.stats.update(&tick);
        self.enriched.clear();
        enrichment.write_onto(record, &mut self.enriched);
        // zscore-anomaly
        let input = parse_scoring_input(&self.enriched)?;
        let Some((z, anomaly)) = self.zscore.verdict(input) else {
            return Ok(false);
        };
        write_scored(&self.enriched, z, anomaly, out);
        Ok(true)
    }
}
