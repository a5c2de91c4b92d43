//! The analytics core of stockstream.
//!
//! Everything here is plain, synchronous Rust with no I/O so that the very same code runs inside
//! the WASM SmartModules (in a Fluvio SPU or on `fluvio-smartengine` in-process) and natively
//! (benchmarks, reference runs). The semantics follow `spec/analytics.md`.
//!
//! - [`tick`]: parse and validate a raw tick, with a reason for every rejection.
//! - [`rolling`]: per-symbol 5-minute moving statistics (O(1) amortised per tick).
//! - [`zscore`]: the z-score anomaly rule.
//! - [`bars`]: Spark-compatible sliding windows with watermark and late-tick accounting.
//! - [`episodes`]: anomalies grouped into alerts (a symbol's anomalies within a cooldown).
//! - [`resume`]: the seed of a bounded restart of the stateful modules.
//! - [`json`]: the small, allocation-free JSON scanner and writers the modules share.

pub mod bars;
pub mod duration;
pub mod episodes;
pub mod json;
pub mod moments;
pub mod resume;
pub mod rolling;
mod sliding;
pub mod tick;
pub mod zscore;

pub use duration::parse_duration_ms;
pub use tick::{parse_tick, InvalidTick, Tick};

/// A SmartModule parameter with an unusable value; reported at start-up, never per record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for parameter `{param}`: expected {expected}")]
pub struct ParamError {
    /// The parameter's name as written in the chain's `with:` block.
    pub param: &'static str,
    /// The value that was given.
    pub value: String,
    /// The accepted form.
    pub expected: &'static str,
}

impl ParamError {
    pub fn new(param: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            param,
            value: value.to_owned(),
            expected,
        }
    }
}
