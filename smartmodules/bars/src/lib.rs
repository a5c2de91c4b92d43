//! `bars`: tick-filter and window-bars fused into one function, with the parameters of both.
//! It emits exactly the bars of the chain of the two modules; what it saves is one crossing
//! between host and WASM per tick.

use std::cell::RefCell;

use stockstream_core::bars::{BarEmitter, BarsConfig};
use stockstream_core::parse_tick;
use stockstream_core::resume::parse_max_ts;
use stockstream_core::tick::Watchlist;
use stockstream_smartmodule::{
    mark_with, resume_seed, smartmodule, Record, RecordsOut, Result, SmartModuleExtraParams,
};

smartmodule!(init = init, array_map = array_map, look_back = look_back);

thread_local! {
    static WATCHLIST: RefCell<Option<Watchlist>> = const { RefCell::new(None) };
    static BARS: RefCell<BarEmitter> = RefCell::new(BarEmitter::new(BarsConfig::default()));
}

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let param = |name: &str| params.get(name).map(String::as_str);
    let watchlist = Watchlist::from_param(param("symbols"))?;
    let config = BarsConfig::from_params(param)?;
    let mut bars = BarEmitter::new(config);
    // A bounded restart (stockstream materialize): the watermark where the replay starts.
    if let Some(seed) = resume_seed(&params) {
        bars.resume(parse_max_ts(&seed)?);
    }
    WATCHLIST.set(watchlist);
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
    // tick-filter's rule: a valid tick of the watchlist; anything else emits nothing.
    let Ok(tick) = parse_tick(record.value) else {
        return Ok(());
    };
    let listed = WATCHLIST.with_borrow(|watchlist| {
        watchlist
            .as_ref()
            .is_none_or(|watchlist| watchlist.contains(tick.symbol))
    });
    if listed {
        BARS.with_borrow_mut(|bars| {
            bars.push(&tick, |bar| {
                out.push(Some(bar.symbol.as_bytes()), |json| bar.write_json(json))
            })
        });
    }
    Ok(())
}

/// Rebuilds open windows from the topic's recent ticks after a restart, as window-bars' own
/// look_back does: it gets the raw records (an SPU does not run tick-filter for look_back), so
/// every valid tick counts, watchlist or not, and windows already emitted are dropped.
pub fn look_back(record: &Record) -> Result<()> {
    if let Ok(tick) = parse_tick(record.value) {
        BARS.with_borrow_mut(|bars| bars.replay(&tick));
    }
    Ok(())
}
