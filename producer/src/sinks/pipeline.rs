//! The in-process pipeline: ticks go straight into the three chains of `stockstream run`
//! (enriched, anomalies, bars-5m) on fluvio-smartengine, and the outputs land as Parquet.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use stockstream_pipeline::run::{run, Event, Report, RunConfig};
use stockstream_pipeline::source::{Source, StreamRecords};
use stockstream_runner::WasmLocator;
use stockstream_ticks::InputItem;

use super::{Sink, SinkError};

const SINK: &str = "pipeline";
/// Records queued between the producer and the chains: enough for a few batches.
const QUEUE: usize = 16 * 1024;

/// Settings of the pipeline sink.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Root of the outputs (must hold no earlier run: a stream cannot resume).
    pub outputs: PathBuf,
    /// Directory of enriched.yaml, anomalies.yaml and bars-5m.yaml [default: the workspace's].
    pub transforms_dir: Option<PathBuf>,
    /// Directory of the built .wasm modules [default: the workspace's build output].
    pub wasm_dir: Option<PathBuf>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            outputs: PathBuf::from("outputs"),
            transforms_dir: None,
            wasm_dir: None,
        }
    }
}

pub struct PipelineSink {
    outputs: PathBuf,
    records: Option<SyncSender<InputItem>>,
    worker: Option<JoinHandle<anyhow::Result<Report>>>,
    sent: u64,
}

/// Starts the pipeline on its own thread, fed by the sink.
pub fn open(config: &PipelineConfig) -> Result<Box<dyn Sink>, SinkError> {
    let workspace = std::env::current_dir()
        .ok()
        .and_then(|dir| WasmLocator::find_workspace(&dir))
        .or_else(|| WasmLocator::find_workspace(Path::new(env!("CARGO_MANIFEST_DIR"))));
    let transforms_dir = config
        .transforms_dir
        .clone()
        .or_else(|| workspace.as_ref().map(|w| w.join("transforms")))
        .ok_or_else(|| SinkError::Config {
            sink: SINK,
            message: "no transforms directory: run inside the stockstream workspace or give --transforms-dir".into(),
        })?;
    let wasm = WasmLocator::new(config.wasm_dir.clone(), workspace.as_deref());
    let (sender, receiver) = sync_channel::<InputItem>(QUEUE);
    let source = Source::Stream {
        name: "producer".into(),
        records: StreamRecords::new(Box::new(receiver.into_iter().map(Ok))),
        journal: None,
    };
    let run_config = RunConfig::new(source, config.outputs.clone(), transforms_dir, wasm);
    let worker = std::thread::spawn(move || {
        // The producer handles signals: it stops sending and closes the sink, which ends the
        // stream and so the run, with everything committed.
        let never = Arc::new(AtomicBool::new(false));
        run(&run_config, &never, &mut |event| {
            if let Event::Invalid { line, message } = event {
                tracing::warn!(line, "{message}");
            }
        })
    });
    Ok(Box::new(PipelineSink {
        outputs: config.outputs.clone(),
        records: Some(sender),
        worker: Some(worker),
        sent: 0,
    }))
}

impl PipelineSink {
    /// The pipeline's own error, once its thread has ended.
    fn failure(&mut self) -> SinkError {
        let message = match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => format!("{e:#}"),
            Some(Err(_)) => "the pipeline thread panicked".into(),
            _ => "the pipeline stopped".into(),
        };
        SinkError::Delivery {
            sink: SINK,
            message,
            retryable: false,
        }
    }
}

impl Sink for PipelineSink {
    fn describe(&self) -> String {
        format!("in-process pipeline -> {}", self.outputs.display())
    }

    fn send(&mut self, _key: &[u8], record: &[u8]) -> Result<(), SinkError> {
        self.sent += 1;
        let item = InputItem::Record {
            line: self.sent,
            value: record.to_vec(),
        };
        match &self.records {
            Some(records) if records.send(item).is_ok() => Ok(()),
            _ => Err(self.failure()),
        }
    }

    /// The pipeline commits on its own schedule; delivery is promised at `close`.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        // Ending the stream ends the run, which commits everything first.
        self.records = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Ok(report))) => {
                say!("{}", report.summary(self.outputs.display()));
                Ok(())
            }
            Some(Ok(Err(e))) => Err(SinkError::Delivery {
                sink: SINK,
                message: format!("{e:#}"),
                retryable: false,
            }),
            Some(Err(_)) => Err(SinkError::Delivery {
                sink: SINK,
                message: "the pipeline thread panicked".into(),
                retryable: false,
            }),
            None => Ok(()),
        }
    }
}
