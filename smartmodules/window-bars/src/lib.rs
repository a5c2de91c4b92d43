//! `window-bars`: OHLCV bars per symbol over Spark-style sliding windows, each emitted once
//! when the watermark passes its end.

use std::cell::RefCell;

use stockstream_core::bars::{BarEmitter, BarsConfig};
use stockstream_core::parse_tick;
use stockstream_core::resume::parse_max_ts;
use stockstream_smartmodule::{
    eyre, mark_with, resume_seed, smartmodule, Record, RecordsOut, Result, SmartModuleExtraParams,
};

smartmodule!(init = init, array_map = array_map, look_back = look_back);

thread_local! {
    static BARS: RefCell<BarEmitter> = RefCell::new(BarEmitter::new(BarsConfig::default()));
}

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let config = BarsConfig::from_params(|name| params.get(name).map(String::as_str))?;
    let mut bars = BarEmitter::new(config);
    // A bounded restart (stockstream materialize): the watermark where the replay starts.
    if let Some(seed) = resume_seed(&params) {
        bars.resume(parse_max_ts(&seed)?);
    }
    BARS.set(bars);
    mark_with(newest_admitted);
    Ok(())
}

/// Appended to each batch's progress record: where a bounded restart must start depends on
/// the newest event time admitted (`stockstream_runner::resume`).
fn newest_admitted(mark: &mut Vec<u8>) {
    BARS.with_borrow(|bars| {
        if let Some(max_ts) = bars.max_ts() {
            mark.extend_from_slice(&max_ts.to_be_bytes());
        }
    });
}

pub fn array_map(record: &Record, out: &mut RecordsOut) -> Result<()> {
    let tick = parse_tick(record.value)
        .map_err(|reason| eyre!("invalid tick ({reason}); put tick-filter first in the chain"))?;
    BARS.with_borrow_mut(|bars| {
        bars.push(&tick, |bar| {
            out.push(Some(bar.symbol.as_bytes()), |json| bar.write_json(json))
        })
    });
    Ok(())
}

/// Rebuilds open windows from the topic's recent ticks after a restart. Windows the replayed
/// watermark passes were emitted before the restart, so they are dropped, not emitted again.
pub fn look_back(record: &Record) -> Result<()> {
    if let Ok(tick) = parse_tick(record.value) {
        BARS.with_borrow_mut(|bars| bars.replay(&tick));
    }
    Ok(())
}
