//! `tick-filter`: drops invalid ticks, and ticks outside the watchlist when `symbols` is given.

use std::sync::OnceLock;

use stockstream_core::tick::{parse_tick, Watchlist};
use stockstream_smartmodule::{smartmodule, Record, Result, SmartModuleExtraParams};

smartmodule!(init = init, filter = filter);

static WATCHLIST: OnceLock<Option<Watchlist>> = OnceLock::new();

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let watchlist = Watchlist::from_param(params.get("symbols").map(String::as_str))?;
    let _ = WATCHLIST.set(watchlist);
    Ok(())
}

pub fn filter(record: &Record) -> Result<bool> {
    Ok(parse_tick(record.value).is_ok_and(|tick| {
        WATCHLIST
            .get()
            .and_then(Option::as_ref)
            .is_none_or(|watchlist| watchlist.contains(tick.symbol))
    }))
}
