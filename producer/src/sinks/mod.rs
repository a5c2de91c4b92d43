//! Where ticks go. A sink takes validated tick records, one at a time, keyed by symbol.
//!
//! - [`stdout`]: JSON lines (the default);
//! - [`kafka`]: a Kafka topic through rdkafka (idempotent, `acks=all`);
//! - [`fluvio`]: a Fluvio topic through the fluvio client;
//! - [`pipeline`]: the in-process pipeline of `stockstream run` (chains, Parquet outputs).

use std::fmt;

pub mod fluvio;
pub mod kafka;
pub mod pipeline;
pub mod stdout;

pub use stdout::StdoutSink;

/// A destination for tick records.
///
/// The run loop calls [`send`](Sink::send) once per valid tick, in input order, then
/// [`close`](Sink::close) once at the end (also after a stop request or an error elsewhere).
/// A sink may queue records; only `flush` and `close` promise that they have been delivered.
pub trait Sink {
    /// Where records go, for logs and the summary (`kafka localhost:9093 topic test_topic`).
    fn describe(&self) -> String;

    /// Queues one record: a tick as a JSON object (already validated with
    /// `stockstream_core::parse_tick`), with its key (the symbol, UTF-8).
    fn send(&mut self, key: &[u8], record: &[u8]) -> Result<(), SinkError>;

    /// Delivers everything queued so far, waiting for acknowledgement where there is one.
    fn flush(&mut self) -> Result<(), SinkError>;

    /// Flushes and lets go of the destination. Called once; nothing is sent after it.
    fn close(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// Why a sink failed, and whether trying again could help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The reader went away (a closed pipe): nothing more can be delivered, and nobody is
    /// waiting for it. The run stops quietly.
    #[error("{sink}: the reader closed its end")]
    Closed { sink: &'static str },
    /// The sink's settings are wrong: the user's to fix, no use retrying.
    #[error("{sink}: {message}")]
    Config { sink: &'static str, message: String },
    /// The destination could not be reached or refused records; `retryable` when the cause
    /// may pass (a broker down, a timeout).
    #[error("{sink}: {message}")]
    Delivery {
        sink: &'static str,
        message: String,
        retryable: bool,
    },
    /// Writing failed.
    #[error("{sink}: {source}")]
    Io {
        sink: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl SinkError {
    /// Whether trying again later could help.
    pub fn retryable(&self) -> bool {
        match self {
            SinkError::Delivery { retryable, .. } => *retryable,
            SinkError::Io { .. } => true,
            SinkError::Closed { .. } | SinkError::Config { .. } => false,
        }
    }
}

/// Which sink to use (`--sink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SinkKind {
    /// JSON lines on standard output.
    #[default]
    Stdout,
    /// A Kafka topic (key = symbol).
    Kafka,
    /// A Fluvio topic (key = symbol).
    Fluvio,
    /// The embedded pipeline, in this process: chains on fluvio-smartengine, Parquet outputs.
    Pipeline,
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SinkKind::Stdout => "stdout",
            SinkKind::Kafka => "kafka",
            SinkKind::Fluvio => "fluvio",
            SinkKind::Pipeline => "pipeline",
        })
    }
}

/// Settings of every sink; only the chosen one is used.
#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// Flush standard output after every record (when replay is paced, so that a reader sees
    /// each tick at its time).
    pub stdout_flush_each: bool,
    pub kafka: kafka::KafkaConfig,
    pub fluvio: fluvio::FluvioConfig,
    pub pipeline: pipeline::PipelineConfig,
}

/// Opens the configured sink.
pub fn open(config: &SinkConfig) -> Result<Box<dyn Sink>, SinkError> {
    Ok(match config.kind {
        SinkKind::Stdout => Box::new(StdoutSink::stdout(config.stdout_flush_each)),
        SinkKind::Kafka => kafka::open(&config.kafka)?,
        SinkKind::Fluvio => fluvio::open(&config.fluvio)?,
        SinkKind::Pipeline => pipeline::open(&config.pipeline)?,
    })
}
