//! `window-bars`: OHLCV bars per symbol over Spark-style sliding windows, each emitted once
//! when the watermark passes its end.

use std::cell::RefCell;

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;
use fluvio_smartmodule::{eyre, smartmodule, RecordData, Result, SmartModuleRecord};
use stockstream_core::bars::{Bar, BarsConfig, WindowBars};
use stockstream_core::parse_tick;

thread_local! {
    static BARS: RefCell<WindowBars> = RefCell::new(WindowBars::new(BarsConfig::default()));
    /// Reused between calls so the common case (no window closes) allocates nothing.
    static CLOSED: RefCell<Vec<Bar>> = const { RefCell::new(Vec::new()) };
}

#[smartmodule(init)]
fn init(params: SmartModuleExtraParams) -> Result<()> {
    let config = BarsConfig::from_params(|name| params.get(name).map(String::as_str))?;
    BARS.with_borrow_mut(|bars| *bars = WindowBars::new(config));
    Ok(())
}

#[smartmodule(array_map)]
pub fn array_map(record: &SmartModuleRecord) -> Result<Vec<(Option<RecordData>, RecordData)>> {
    let tick = parse_tick(record.value.as_ref())
        .map_err(|reason| eyre!("invalid tick ({reason}); put tick-filter first in the chain"))?;
    CLOSED.with_borrow_mut(|closed| {
        BARS.with_borrow_mut(|bars| bars.push(&tick, closed));
        Ok(closed
            .drain(..)
            .map(|bar| {
                let mut json = Vec::with_capacity(256);
                bar.write_json(&mut json);
                (Some(RecordData::from(bar.symbol)), RecordData::from(json))
            })
            .collect())
    })
}

/// Rebuilds open windows from the topic's recent ticks after a restart. Windows the replayed
/// watermark passes were emitted before the restart, so they are dropped, not emitted again.
#[smartmodule(look_back)]
pub fn look_back(record: &SmartModuleRecord) -> Result<()> {
    if let Ok(tick) = parse_tick(record.value.as_ref()) {
        CLOSED.with_borrow_mut(|closed| {
            BARS.with_borrow_mut(|bars| bars.push(&tick, closed));
            closed.clear();
        });
    }
    Ok(())
}
