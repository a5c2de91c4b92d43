//! `zscore-anomaly`: adds `z` and `anomaly` to enriched ticks; `emit=anomalies` keeps only the
//! flagged ones. Stateless: it reads what rolling-stats wrote, so it needs no look_back.

use std::sync::OnceLock;

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;
use fluvio_smartmodule::{smartmodule, RecordData, Result, SmartModuleRecord};
use stockstream_core::zscore::{parse_scoring_input, write_scored, Emit, ZScoreConfig};

static CONFIG: OnceLock<ZScoreConfig> = OnceLock::new();

#[smartmodule(init)]
fn init(params: SmartModuleExtraParams) -> Result<()> {
    let config = ZScoreConfig::from_params(|name| params.get(name).map(String::as_str))?;
    let _ = CONFIG.set(config);
    Ok(())
}

#[smartmodule(filter_map)]
pub fn filter_map(record: &SmartModuleRecord) -> Result<Option<(Option<RecordData>, RecordData)>> {
    let config = CONFIG.get_or_init(ZScoreConfig::default);
    let value = record.value.as_ref();
    let input = parse_scoring_input(value)?;
    let z = config.score(
        input.price,
        input.prev_mean,
        input.prev_std,
        input.prev_count,
    );
    let anomaly = config.is_anomaly(z);
    if config.emit == Emit::Anomalies && !anomaly {
        return Ok(None);
    }
    let mut out = Vec::new();
    write_scored(value, z, anomaly, &mut out);
    Ok(Some((record.key.clone(), RecordData::from(out))))
}
