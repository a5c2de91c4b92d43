//! The embedded pipeline of stockstream: `stockstream run` and `stockstream score`.
//!
//! Ticks from a file go through the three chains (enriched, anomalies, bars-5m) running
//! in-process on `fluvio-smartengine` with the project's .wasm SmartModules, and the derived
//! streams are written as date-partitioned Parquet files under `outputs/`, committed atomically
//! and resumable after any stop or crash with exactly the rows of an uninterrupted run.
//!
//! - [`run`]: the run loop (reader, one worker per chain, commits).
//! - [`replay`]: which earlier ticks rebuild each chain's window state exactly after a restart
//!   (from the runner, which `transform` shares it with).
//! - [`rebuild`]: damaged committed files made again from the input (`verify --rebuild`).
//! - [`commit`] and [`checkpoint`]: atomic files named by input range, the checkpoint.
//! - [`outputs`] and [`parquet_io`]: rows, schemas, Parquet.
//! - [`alerts`]: anomalies grouped into alerts, and their webhook.
//! - [`score`]: precision, recall and F1 of the anomalies against a ground-truth file.
//! - [`source`]: files or the synthetic generator, paced by event time.
//! - [`dashboard`]: the feed of derived records for the dashboard (its integration point).

pub mod alerts;
pub mod checkpoint;
pub mod commit;
pub mod dashboard;
pub mod dates;
pub mod outputs;
pub mod parquet_io;
pub mod rebuild;
pub use stockstream_runner::replay;
pub mod run;
pub mod score;
pub mod source;
pub mod store;

pub use outputs::Stream;
pub use run::{run, Event, Outcome, Report, RunConfig};
