//! `window-bars`: OHLCV bars per symbol over Spark-style sliding windows, each emitted once
//! when the watermark passes its end.

use std::cell::RefCell;

use stockstream_core::bars::{Bar, BarsConfig, WindowBars};
use stockstream_core::parse_tick;
use stockstream_smartmodule::{
    eyre, smartmodule, Record, RecordsOut, Result, SmartModuleExtraParams,
};

smartmodule!(init = init, array_map = array_map, look_back = look_back);

thread_local! {
    static BARS: RefCell<WindowBars> = RefCell::new(WindowBars::new(BarsConfig::default()));
    /// Reused between calls so the common case (no window closes) allocates nothing.
    static CLOSED: RefCell<Vec<Bar>> = const { RefCell::new(Vec::new()) };
}

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let config = BarsConfig::from_params(|name| params.get(name).map(String::as_str))?;
    BARS.with_borrow_mut(|bars| *bars = WindowBars::new(config));
    Ok(())
}

pub fn array_map(record: &Record, out: &mut RecordsOut) -> Result<()> {
    let tick = parse_tick(record.value)
        .map_err(|reason| eyre!("invalid tick ({reason}); put tick-filter first in the chain"))?;
    CLOSED.with_borrow_mut(|closed| {
        BARS.with_borrow_mut(|bars| bars.push(&tick, closed));
        for bar in closed.drain(..) {
            out.push(Some(bar.symbol.as_bytes()), |json| bar.write_json(json));
        }
    });
    Ok(())
}

/// Rebuilds open windows from the topic's recent ticks after a restart. Windows the replayed
/// watermark passes were emitted before the restart, so they are dropped, not emitted again.
pub fn look_back(record: &Record) -> Result<()> {
    if let Ok(tick) = parse_tick(record.value) {
        CLOSED.with_borrow_mut(|closed| {
            BARS.with_borrow_mut(|bars| bars.push(&tick, closed));
            closed.clear();
        });
    }
    Ok(())
}
