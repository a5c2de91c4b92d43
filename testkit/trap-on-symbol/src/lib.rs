//! `trap-on-symbol`, a test fixture: a module with a bug. It panics, which in WASM is a trap
//! that ends the chain's instance, on every tick of one symbol (`symbol`, default TRAP), and
//! keeps every other record as it is. The tests put it into a chain to check that a record a
//! module traps on is dead-lettered and skipped wherever the chain runs, an SPU included,
//! never retried forever. Not one of the product's modules: `stockstream setup` does not
//! register it.

use std::sync::OnceLock;

use stockstream_core::tick::parse_tick;
use stockstream_smartmodule::{smartmodule, Record, Result, SmartModuleExtraParams};

smartmodule!(init = init, filter = filter);

static SYMBOL: OnceLock<String> = OnceLock::new();

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let symbol = params
        .get("symbol")
        .cloned()
        .unwrap_or_else(|| "TRAP".to_owned());
    let _ = SYMBOL.set(symbol);
    Ok(())
}

pub fn filter(record: &Record) -> Result<bool> {
    let symbol = SYMBOL.get().map_or("TRAP", String::as_str);
    if let Ok(tick) = parse_tick(record.value) {
        if tick.symbol == symbol {
            panic!("trap-on-symbol: a tick of {symbol}");
        }
    }
    Ok(true)
}
