//! `zscore-anomaly`: adds `z` and `anomaly` to enriched ticks; `emit=anomalies` keeps only the
//! flagged ones. Stateless: it reads what rolling-stats wrote, so it needs no look_back.

use std::sync::OnceLock;

use stockstream_core::zscore::{parse_scoring_input, write_scored, ZScoreConfig};
use stockstream_smartmodule::{smartmodule, Record, RecordOut, Result, SmartModuleExtraParams};

smartmodule!(init = init, filter_map = filter_map);

static CONFIG: OnceLock<ZScoreConfig> = OnceLock::new();

pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let config = ZScoreConfig::from_params(|name| params.get(name).map(String::as_str))?;
    let _ = CONFIG.set(config);
    Ok(())
}

pub fn filter_map(record: &Record, out: &mut RecordOut) -> Result<bool> {
    let config = CONFIG.get_or_init(ZScoreConfig::default);
    let input = parse_scoring_input(record.value)?;
    // A chain whose rolling-stats has another basis would score on the wrong values unnoticed.
    config.check_basis(&input)?;
    let Some((z, anomaly)) = config.verdict(input) else {
        return Ok(false);
    };
    write_scored(record.value, z, anomaly, out.value());
    Ok(true)
}
