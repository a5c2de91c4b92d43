//! `rolling-stats`: adds the per-tick moving statistics to each valid tick.

use std::cell::RefCell;

use stockstream_core::parse_tick;
use stockstream_core::resume::parse_starts;
use stockstream_core::rolling::{RollingConfig, RollingStats};
use stockstream_smartmodule::{
    eyre, resume_seed, smartmodule, Record, RecordOut, Result, SmartModuleExtraParams,
};

smartmodule!(init = init, map = map, look_back = look_back);

thread_local! {
    static STATS: RefCell<RollingStats> = RefCell::new(RollingStats::new(RollingConfig::default()));
}

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let config = RollingConfig::from_params(|name| params.get(name).map(String::as_str))?;
    let mut stats = RollingStats::new(config);
    // A bounded restart (stockstream materialize): each symbol starts where its state began.
    if let Some(seed) = resume_seed(&params) {
        stats.resume(parse_starts(&seed)?);
    }
    STATS.set(stats);
    Ok(())
}

pub fn map(record: &Record, out: &mut RecordOut) -> Result<()> {
    // A map cannot drop a record: an invalid one means tick-filter is missing from the chain.
    let tick = parse_tick(record.value)
        .map_err(|reason| eyre!("invalid tick ({reason}); put tick-filter first in the chain"))?;
    let enrichment = STATS.with_borrow_mut(|stats| stats.update(&tick));
    enrichment.write_onto(record.value, out.value());
    Ok(())
}

/// Rebuilds the windows from the topic's recent ticks after a restart.
pub fn look_back(record: &Record) -> Result<()> {
    if let Ok(tick) = parse_tick(record.value) {
        STATS.with_borrow_mut(|stats| stats.update(&tick));
    }
    Ok(())
}
