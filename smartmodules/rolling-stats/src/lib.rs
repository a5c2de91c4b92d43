//! `rolling-stats`: adds the per-tick moving statistics to each valid tick.

use std::cell::RefCell;

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;
use fluvio_smartmodule::{eyre, smartmodule, RecordData, Result, SmartModuleRecord};
use stockstream_core::parse_tick;
use stockstream_core::rolling::{RollingConfig, RollingStats};

thread_local! {
    static STATS: RefCell<RollingStats> = RefCell::new(RollingStats::new(RollingConfig::default()));
}

#[smartmodule(init)]
fn init(params: SmartModuleExtraParams) -> Result<()> {
    let config = RollingConfig::from_params(|name| params.get(name).map(String::as_str))?;
    STATS.with_borrow_mut(|stats| *stats = RollingStats::new(config));
    Ok(())
}

#[smartmodule(map)]
pub fn map(record: &SmartModuleRecord) -> Result<(Option<RecordData>, RecordData)> {
    let value = record.value.as_ref();
    // A map cannot drop a record: an invalid one means tick-filter is missing from the chain.
    let tick = parse_tick(value)
        .map_err(|reason| eyre!("invalid tick ({reason}); put tick-filter first in the chain"))?;
    let enrichment = STATS.with_borrow_mut(|stats| stats.update(&tick));
    let mut out = Vec::new();
    enrichment.write_onto(value, &mut out);
    Ok((record.key.clone(), RecordData::from(out)))
}

/// Rebuilds the windows from the topic's recent ticks after a restart.
#[smartmodule(look_back)]
pub fn look_back(record: &SmartModuleRecord) -> Result<()> {
    if let Ok(tick) = parse_tick(record.value.as_ref()) {
        STATS.with_borrow_mut(|stats| stats.update(&tick));
    }
    Ok(())
}
