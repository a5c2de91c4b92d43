//! stockstream on a Fluvio cluster, where the SmartModules run inside the SPUs next to the
//! data and scale with partitions and SPUs.
//!
//! - [`setup`]: the topics and the four SmartModules, through the admin API, idempotently;
//! - [`materialize`]: stock-ticks through each chain invoked in the broker, results to the
//!   derived topics and to Parquet under `outputs/`, exactly once across restarts;
//! - [`derived`]: the derived topics read back, for the dashboard;
//! - [`topics`]: the names.

pub mod derived;
pub mod materialize;
pub mod ready;
pub mod setup;
pub mod topics;

pub use producer::sinks::fluvio::{connect, ClusterTarget};

/// `max_bytes` of the consumers here that read a topic without a chain (the dashboard's
/// follow, an offset lookup from the end). With fluvio 0.50, such a response cut at `max_bytes`
/// loses the records of the batch it cuts (the reader resumes after it): never cut them. The
/// chains of `materialize` read in bounded fetches instead (`--fetch-bytes`), which the modules
/// make exact (see `materialize::invocations_reporting`).
pub const READ_MAX_BYTES: i32 = i32::MAX;
