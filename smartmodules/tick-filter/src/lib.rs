//! `tick-filter`: drops invalid ticks, and ticks outside the watchlist when `symbols` is given.

use std::sync::OnceLock;

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;
use fluvio_smartmodule::{smartmodule, Result, SmartModuleRecord};
use stockstream_core::tick::{parse_tick, Watchlist};

static WATCHLIST: OnceLock<Option<Watchlist>> = OnceLock::new();

#[smartmodule(init)]
fn init(params: SmartModuleExtraParams) -> Result<()> {
    let watchlist = Watchlist::from_param(params.get("symbols").map(String::as_str))?;
    let _ = WATCHLIST.set(watchlist);
    Ok(())
}

#[smartmodule(filter)]
pub fn filter(record: &SmartModuleRecord) -> Result<bool> {
    Ok(parse_tick(record.value.as_ref()).is_ok_and(|tick| {
        WATCHLIST
            .get()
            .and_then(Option::as_ref)
            .is_none_or(|watchlist| watchlist.contains(tick.symbol))
    }))
}
