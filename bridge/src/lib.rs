//! The Kafka bridge: ticks from an Apache Kafka topic into the rest of stockstream.
//!
//! A consumer in the bridge's group reads `--topic` (default `test_topic`) from `--bootstrap`
//! (default `localhost:9093`); every record is validated as a tick
//! (`stockstream_core::parse_tick`); invalid ones go to a dead-letter topic (`<topic>.dlq`)
//! with the reason in headers and are counted; valid ones go to the destination. Offsets are
//! committed only once the destination has the records, so a bridge killed at any point loses
//! nothing when it restarts (at-least-once; into the embedded pipeline, exactly-once outputs).
//!
//! - [`config`]: settings, layered as the producer's (file, environment, flags), secrets kept
//!   out of every message;
//! - [`input`]: the consumer, validation, dead-lettering, offsets, lag and counters;
//! - [`fluvio`]: the destination Fluvio topic (`stockstream bridge`);
//! - [`pipeline`]: the destination embedded pipeline (`stockstream run --kafka`), through
//!   the [`journal`] that makes it resumable exactly.

pub mod config;
pub mod fluvio;
pub mod input;
pub mod journal;
pub mod pipeline;

pub use config::BridgeConfig;
pub use input::{BridgeError, Stats};
