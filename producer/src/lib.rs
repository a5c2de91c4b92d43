//! The producer: ticks from a file replay or the synthetic generator, validated, paced by
//! event time, into a sink (stdout, Kafka, Fluvio).
//!
//! The pipeline, in the order a tick takes:
//!
//! - [`source`]: CSV / JSON-lines replay or synthetic GBM ticks (`stockstream-ticks`);
//! - [`run`]: each record validated with `stockstream_core::parse_tick`; invalid ones to
//!   [`rejects`]; valid ones paced ([`stockstream_ticks::Pacer`]) and sent;
//! - [`sinks`]: the [`Sink`](sinks::Sink) trait and its implementations;
//! - [`cli`]: flags to a [`ProducerConfig`](cli::ProducerConfig), and the binary's `main`.

/// `eprintln!` that never panics: a closed or full stderr loses the message, not the run.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod cli;
pub mod rejects;
pub mod run;
pub mod sinks;
pub mod source;

pub use cli::{error_chain, main_with, produce, Cli, CsvArgs, ProducerConfig};
pub use run::{run, Outcome, RunError, RunOptions, Stop, Summary};
pub use sinks::{Sink, SinkConfig, SinkError, SinkKind};
pub use source::{Source, SourceConfig, SourceItem};
