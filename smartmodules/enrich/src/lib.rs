//! `enrich`: tick-filter, rolling-stats and zscore-anomaly fused into one function, with the
//! parameters of all three. It emits exactly the records of the chain of the three modules;
//! what it saves is two crossings between host and WASM per tick (each one an encode, a copy
//! and a decode of the batch by the host) and zscore-anomaly's re-reading of the enriched JSON.

use std::cell::RefCell;

use stockstream_core::parse_tick;
use stockstream_core::resume::parse_starts;
use stockstream_core::rolling::{RollingConfig, RollingStats};
use stockstream_core::tick::Watchlist;
use stockstream_core::zscore::{ScoringInput, ZScoreConfig};
use stockstream_smartmodule::{
    eyre, resume_seed, smartmodule, Record, RecordOut, Result, SmartModuleExtraParams,
};

smartmodule!(init = init, filter_map = filter_map, look_back = look_back);

struct Enricher {
    watchlist: Option<Watchlist>,
    stats: RollingStats,
    zscore: ZScoreConfig,
}

impl Enricher {
    /// tick-filter's rule: a valid tick of the watchlist.
    fn admits(&self, tick: &stockstream_core::Tick<'_>) -> bool {
        self.watchlist
            .as_ref()
            .is_none_or(|watchlist| watchlist.contains(tick.symbol))
    }
}

thread_local! {
    static ENRICHER: RefCell<Enricher> = RefCell::new(Enricher {
        watchlist: None,
        stats: RollingStats::new(RollingConfig::default()),
        zscore: ZScoreConfig::default(),
    });
}

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let param = |name: &str| params.get(name).map(String::as_str);
    let mut stats = RollingStats::new(RollingConfig::from_params(param)?);
    // A bounded restart (stockstream materialize): each symbol starts where its state began.
    if let Some(seed) = resume_seed(&params) {
        stats.resume(parse_starts(&seed)?);
    }
    let enricher = Enricher {
        watchlist: Watchlist::from_param(param("symbols"))?,
        stats,
        zscore: ZScoreConfig::from_params(param)?,
    };
    ENRICHER.set(enricher);
    Ok(())
}

pub fn filter_map(record: &Record, out: &mut RecordOut) -> Result<bool> {
    let Ok(tick) = parse_tick(record.value) else {
        return Ok(false);
    };
    ENRICHER.with_borrow_mut(|enricher| {
        if !enricher.admits(&tick) {
            return Ok(false);
        }
        let enrichment = enricher.stats.update(&tick);
        let Some((z, anomaly)) = enricher.zscore.verdict(ScoringInput {
            price: tick.price,
            prev_mean: enrichment.prev_mean,
            prev_std: enrichment.prev_std,
            prev_count: enrichment.prev_count,
            returns: enrichment.returns,
        }) else {
            return Ok(false);
        };
        if !enrichment.write_scored_onto(record.value, z, anomaly, out.value()) {
            // What zscore-anomaly reports for the empty record rolling-stats would write.
            return Err(eyre!("the tick is not a JSON object ending in `}}`"));
        }
        Ok(true)
    })
}

/// Rebuilds the windows from the topic's recent ticks after a restart (rolling-stats' look_back,
/// behind tick-filter's watchlist).
pub fn look_back(record: &Record) -> Result<()> {
    if let Ok(tick) = parse_tick(record.value) {
        ENRICHER.with_borrow_mut(|enricher| {
            if enricher.admits(&tick) {
                enricher.stats.update(&tick);
            }
        });
    }
    Ok(())
}
