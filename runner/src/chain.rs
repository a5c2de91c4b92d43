//! SmartModule chains: the `transforms:` files of `fluvio consume --transforms-file`, the
//! built .wasm files they name, and a running chain on `fluvio-smartengine`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fluvio_protocol::record::{Offset, Record, RecordKey};
use fluvio_protocol::Encoder;
use fluvio_smartengine::transformation::TransformationConfig;
use fluvio_smartengine::{
    Lookback, SmartEngine, SmartModuleChainBuilder, SmartModuleChainInstance, SmartModuleConfig,
};
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;
use stockstream_core::bars::BarsConfig;
use stockstream_core::rolling::RollingConfig;
use stockstream_core::tick::Watchlist;
use stockstream_core::zscore::ZScoreConfig;
use stockstream_core::ParamError;

/// The SmartModule group this project publishes under (`uses: stockstream/<module>@<version>`).
pub const GROUP: &str = "stockstream";

/// What can go wrong setting up a chain. All of these are the user's to fix; none is retried.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("cannot read transforms file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: anyhow::Error,
    },
    #[error("transforms file {path} has no steps under `transforms:`")]
    Empty { path: PathBuf },
    #[error("`uses: {uses}` is not of the form group/name@version")]
    BadUses { uses: String },
    #[error("step `{module}`: {source}")]
    Param { module: String, source: ParamError },
    #[error("step `{module}`: unknown parameter `{param}` (accepted: {accepted})")]
    UnknownParam {
        module: String,
        param: String,
        accepted: &'static str,
    },
    #[error("no built SmartModule for `{module}` ({file} not in {searched}); build the modules with `cargo build --profile release-lto --target wasm32-wasip1 -p {module}` (what `smdk build` runs) or `make wasm`, or pass --wasm-dir DIR")]
    MissingWasm {
        module: String,
        file: String,
        searched: String,
    },
    #[error("cannot read {path}: {source}")]
    ReadWasm {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SmartModule `{module}` failed to start: {source:#}")]
    Start {
        module: String,
        source: anyhow::Error,
    },
}

/// One step of a chain, as written in the transforms file.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainStep {
    /// `group/name@version` as written.
    pub uses: String,
    /// The module name (`rolling-stats`).
    pub module: String,
    pub params: BTreeMap<String, String>,
    pub lookback: Option<Lookback>,
}

impl ChainStep {
    /// Checks the parameters of this project's modules before any WASM starts, so a bad value is
    /// reported by name (the modules check again in their `init`).
    fn validate(&self) -> Result<(), ChainError> {
        let get = |name: &str| self.params.get(name).map(String::as_str);
        let param_error = |source| ChainError::Param {
            module: self.module.clone(),
            source,
        };
        let accepted: &'static str = match self.module.as_str() {
            "tick-filter" => {
                Watchlist::from_param(get("symbols")).map_err(param_error)?;
                "symbols"
            }
            "rolling-stats" => {
                RollingConfig::from_params(get).map_err(param_error)?;
                "window, basis"
            }
            "zscore-anomaly" => {
                ZScoreConfig::from_params(get).map_err(param_error)?;
                "threshold, min_count, emit, basis"
            }
            "window-bars" => {
                BarsConfig::from_params(get).map_err(param_error)?;
                "size, slide, lateness"
            }
            "bars" => {
                Watchlist::from_param(get("symbols")).map_err(param_error)?;
                BarsConfig::from_params(get).map_err(param_error)?;
                "symbols, size, slide, lateness"
            }
            "enrich" => {
                Watchlist::from_param(get("symbols")).map_err(param_error)?;
                RollingConfig::from_params(get).map_err(param_error)?;
                ZScoreConfig::from_params(get).map_err(param_error)?;
                "symbols, window, threshold, min_count, emit, basis"
            }
            _ => return Ok(()),
        };
        match self
            .params
            .keys()
            .find(|k| !accepted.split(", ").any(|a| a == k.as_str()))
        {
            Some(param) => Err(ChainError::UnknownParam {
                module: self.module.clone(),
                param: param.clone(),
                accepted,
            }),
            None => Ok(()),
        }
    }

    /// Whether the step applies tick-filter's rule and watchlist: tick-filter, or a fused
    /// module that includes it.
    pub fn filters_ticks(&self) -> bool {
        matches!(self.module.as_str(), "tick-filter" | "enrich" | "bars")
    }

    /// Whether the step is a fused module: tick-filter's rule, then stateful steps, in one.
    pub fn is_fused(&self) -> bool {
        matches!(self.module.as_str(), "enrich" | "bars")
    }

    /// The file `cargo build` writes for this module (`rolling-stats` -> `rolling_stats.wasm`).
    pub fn wasm_file_name(&self) -> String {
        format!("{}.wasm", self.module.replace('-', "_"))
    }
}

/// A chain of SmartModules read from a transforms file.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainSpec {
    pub steps: Vec<ChainStep>,
}

impl ChainSpec {
    /// Reads and checks a `transforms:` file.
    pub fn from_file(path: &Path) -> Result<Self, ChainError> {
        let text = std::fs::read(path).map_err(|source| ChainError::ReadFile {
            path: path.to_owned(),
            source: source.into(),
        })?;
        Self::from_yaml(&text, path)
    }

    /// Reads and checks the text of a `transforms:` file; `path` names it in messages.
    pub fn from_yaml(text: &[u8], path: &Path) -> Result<Self, ChainError> {
        // The parse `TransformationConfig::from_file` (what fluvio's CLI runs) does after reading.
        let config: TransformationConfig =
            serde_yaml::from_slice(text).map_err(|source| ChainError::ReadFile {
                path: path.to_owned(),
                source: source.into(),
            })?;
        if config.transforms.is_empty() {
            return Err(ChainError::Empty {
                path: path.to_owned(),
            });
        }
        let steps = config
            .transforms
            .into_iter()
            .map(|step| {
                let module = step
                    .uses
                    .split_once('/')
                    .and_then(|(_, rest)| rest.split_once('@'))
                    .map(|(name, _)| name.to_owned())
                    .filter(|name| !name.is_empty())
                    .ok_or_else(|| ChainError::BadUses {
                        uses: step.uses.clone(),
                    })?;
                let step = ChainStep {
                    module,
                    params: step.with.into_iter().map(|(k, v)| (k, v.into())).collect(),
                    lookback: step.lookback.map(Into::into),
                    uses: step.uses,
                };
                step.validate()?;
                Ok(step)
            })
            .collect::<Result<_, ChainError>>()?;
        Ok(Self { steps })
    }

    /// The step running `module`, if the chain has one.
    pub fn step(&self, module: &str) -> Option<&ChainStep> {
        self.steps.iter().find(|s| s.module == module)
    }

    /// The step computing window bars: window-bars, or the fused bars module.
    pub fn bars_step(&self) -> Option<&ChainStep> {
        self.steps
            .iter()
            .find(|s| matches!(s.module.as_str(), "window-bars" | "bars"))
    }

    /// The step applying tick-filter's rule and watchlist (`symbols`): tick-filter, or a fused
    /// module that includes it.
    pub fn filter_step(&self) -> Option<&ChainStep> {
        self.steps.iter().find(|s| s.filters_ticks())
    }

    /// Loads every module's .wasm and starts the chain (each module's `init` runs here).
    pub fn instantiate(
        &self,
        engine: &SmartEngine,
        wasm: &WasmLocator,
    ) -> Result<Chain, ChainError> {
        self.instantiate_with_memory_limit(engine, wasm, None)
    }

    /// [`Self::instantiate`] with the store's memory limit (all modules of the chain together)
    /// set to `limit` bytes instead of the engine's default, as an SPU's setting would.
    pub fn instantiate_with_memory_limit(
        &self,
        engine: &SmartEngine,
        wasm: &WasmLocator,
        limit: Option<usize>,
    ) -> Result<Chain, ChainError> {
        let mut builder = SmartModuleChainBuilder::default();
        if let Some(limit) = limit {
            builder.set_store_memory_limit(limit);
        }
        for step in &self.steps {
            let path = wasm.find(step)?;
            let bytes =
                std::fs::read(&path).map_err(|source| ChainError::ReadWasm { path, source })?;
            let mut config = SmartModuleConfig::builder();
            config.smartmodule_names(vec![step.uses.clone()]);
            config.lookback(step.lookback);
            for (key, value) in &step.params {
                config.param(key, value);
            }
            let config = config.build().expect("names are set");
            builder.add_smart_module(config, bytes);
        }
        let names = self
            .steps
            .iter()
            .map(|s| s.module.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let instance = builder
            .initialize(engine)
            .map_err(|source| ChainError::Start {
                module: names,
                source,
            })?;
        Ok(Chain {
            instance,
            next_offset: 0,
        })
    }
}

/// Where built modules are looked up, in order.
#[derive(Debug, Clone)]
pub struct WasmLocator {
    dirs: Vec<PathBuf>,
}

impl WasmLocator {
    /// `--wasm-dir` alone when given; otherwise the workspace's build output for the profile
    /// `smdk build` uses (release-lto), then plain release.
    pub fn new(wasm_dir: Option<PathBuf>, workspace_root: Option<&Path>) -> Self {
        let dirs = match (wasm_dir, workspace_root) {
            (Some(dir), _) => vec![dir],
            (None, Some(root)) => ["release-lto", "release"]
                .iter()
                .map(|profile| root.join("target").join("wasm32-wasip1").join(profile))
                .collect(),
            (None, None) => Vec::new(),
        };
        Self { dirs }
    }

    /// The nearest enclosing Cargo workspace holding `smartmodules/`, starting at `start`;
    /// `CARGO_TARGET_DIR` is honoured by the caller through `--wasm-dir`.
    pub fn find_workspace(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .find(|dir| dir.join("Cargo.toml").is_file() && dir.join("smartmodules").is_dir())
            .map(Path::to_owned)
    }

    pub fn find(&self, step: &ChainStep) -> Result<PathBuf, ChainError> {
        let file = step.wasm_file_name();
        self.dirs
            .iter()
            .map(|dir| dir.join(&file))
            .find(|path| path.is_file())
            .ok_or_else(|| ChainError::MissingWasm {
                module: step.module.clone(),
                file: file.clone(),
                searched: if self.dirs.is_empty() {
                    "any directory (not inside the stockstream workspace)".to_owned()
                } else {
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                },
            })
    }
}

/// A record the chain refused: a SmartModule returned an error for it.
#[derive(Debug, Clone)]
pub struct RecordFailure {
    /// Position of the record in the batch given to [`Chain::process`].
    pub index: usize,
    /// The module's message.
    pub hint: String,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    pub records: Vec<Record>,
    /// Records a module failed on; the rest of the batch was still processed.
    pub failures: Vec<RecordFailure>,
}

/// A started chain. Feed it batches of records in arrival order.
pub struct Chain {
    instance: SmartModuleChainInstance,
    next_offset: Offset,
}

/// Per-module cost of the calls since the chain started (or since the last read).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleCost {
    /// `group/name@version`.
    pub module: String,
    pub calls: u64,
    /// WASM instructions executed (fluvio-smartengine's fuel).
    pub fuel: u64,
    pub records_out: u64,
}

impl Chain {
    /// Runs `records` through every module, as an SPU does for one batch.
    ///
    /// An SPU stops a batch at a record a module fails on; here the failing record is reported
    /// and the batch resumes after it, so one bad record never costs the ones behind it.
    pub fn process(&mut self, records: &[Record]) -> anyhow::Result<BatchOutput> {
        let mut output = BatchOutput::default();
        let mut first_index = 0usize;
        while first_index < records.len() {
            let rest = &records[first_index..];
            let base_offset = self.next_offset;
            // The engine takes the input by value and drops it: a new buffer per batch.
            let input = SmartModuleInput::new(encode_batch(rest)?, base_offset, 0);
            let result = self.instance.process(input)?;
            output.records.extend(result.successes);
            self.next_offset += rest.len() as Offset;
            let Some(error) = result.error else { break };
            let failed = usize::try_from(error.offset - base_offset)
                .unwrap_or(rest.len())
                .min(rest.len() - 1);
            output.failures.push(RecordFailure {
                index: first_index + failed,
                hint: error.hint,
            });
            first_index += failed + 1;
            self.next_offset = base_offset + failed as Offset + 1;
        }
        Ok(output)
    }

    /// Runs one stored batch through the chain as an SPU does (fluvio 0.50): whole, at its own
    /// base offset, a module's failure ending it. An SPU sends the same batch twice in a row
    /// when it cut a fetch there; this is how the tests send it again.
    pub fn process_stored_batch(
        &mut self,
        records: &[Record],
        base_offset: Offset,
    ) -> anyhow::Result<(Vec<Record>, Option<String>)> {
        let input = SmartModuleInput::new(encode_batch(records)?, base_offset, 0);
        let result = self.instance.process(input)?;
        self.next_offset = self.next_offset.max(base_offset + records.len() as Offset);
        Ok((result.successes, result.error.map(|e| e.hint)))
    }

    /// What each module has cost since the last call (the engine's metrics, which it resets).
    pub fn take_costs(&mut self) -> Vec<ModuleCost> {
        let mut costs: Vec<ModuleCost> = self
            .instance
            .metrics_export()
            .into_iter()
            .map(|(module, metrics)| ModuleCost {
                module,
                calls: metrics.invocation_count(),
                // fluvio-smartengine 0.50 adds a call's fuel to the metrics twice (once in
                // SimpleTansform::process, once in SmartModuleInstance::process, both reading
                // the store's fuel used since the chain's top-up before that module).
                fuel: metrics.fuel_used() / 2,
                records_out: metrics.records_out(),
            })
            .collect();
        costs.sort_by(|a, b| a.module.cmp(&b.module));
        costs
    }

    /// Rebuilds module state from earlier records (the modules' `look_back`), as an SPU does
    /// when a consumer with a chain starts.
    pub fn look_back(&mut self, records: Vec<Record>) -> anyhow::Result<()> {
        let records = std::sync::Mutex::new(Some(records));
        let future = self.instance.look_back(|_| {
            let batch = records
                .lock()
                .expect("not poisoned")
                .clone()
                .unwrap_or_default();
            async move { Ok(batch) }
        });
        block_on(future)
    }
}

/// Records per `look_back` call in [`Chain::look_back_values`] (the engine copies each call's
/// records into WASM memory)...
pub const LOOK_BACK_CHUNK: usize = 50_000;
/// ...and at most this many bytes of them (a chunk holds at least one record): a window of
/// large records (up to `--max-record-bytes` each) replayed in one call would need their sum
/// in the chain's memory, and trap there on every restart where processing them, batch by
/// batch, had not.
pub const LOOK_BACK_CHUNK_BYTES: usize = 4 << 20;

impl Chain {
    /// `look_back` over tick records, keyed by symbol as the producer keys them, in chunks.
    pub fn look_back_values(&mut self, values: Vec<Vec<u8>>) -> anyhow::Result<()> {
        let mut values = values.into_iter().peekable();
        while values.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(value) = values.next_if(|value| {
                chunk.is_empty()
                    || (chunk.len() < LOOK_BACK_CHUNK
                        && bytes + value.len() <= LOOK_BACK_CHUNK_BYTES)
            }) {
                bytes += value.len();
                let key = stockstream_core::tick::parse_tick(&value)
                    .map(|t| RecordKey::from(t.symbol.as_bytes().to_vec()))
                    .unwrap_or(RecordKey::NULL);
                chunk.push(Record::new_key_value(key, value));
            }
            self.look_back(chunk)?;
        }
        Ok(())
    }
}

/// One line for a chain's failure: the engine's outer message without the WASM backtrace it
/// carries (frame addresses of an optimised build), then the root cause.
pub fn failure_message(error: &anyhow::Error) -> String {
    let outer = error.to_string();
    let outer = outer
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches(':');
    let root = error.root_cause().to_string();
    let root = root.split_whitespace().collect::<Vec<_>>().join(" ");
    if outer.contains("wasm backtrace") {
        format!("WASM trap: {root}")
    } else if error.chain().count() > 1 && !outer.is_empty() {
        format!("{outer}: {root}")
    } else {
        root
    }
}

/// Encodes `records` as the `Vec<Record>` of a `SmartModuleInput`, each record's offset delta
/// its position, byte for byte as fluvio-protocol would, in one pass.
fn encode_batch(records: &[Record]) -> anyhow::Result<Vec<u8>> {
    let size: usize = records
        .iter()
        .map(|r| r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + 16)
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&u32::try_from(records.len())?.to_be_bytes());
    for (delta, record) in records.iter().enumerate() {
        if record.headers == 0 {
            stockstream_smartmodule::wire::put_record(
                &mut out,
                record.timestamp_delta(),
                delta as Offset,
                record.key.as_ref().map(|k| k.as_ref()),
                record.value.as_ref(),
            );
        } else {
            let mut record = record.clone();
            record.preamble.set_offset_delta(delta as Offset);
            record.encode(&mut out, fluvio_smartengine::DEFAULT_SMARTENGINE_VERSION)?;
        }
    }
    Ok(out)
}

/// Polls a future that never waits (the engine's look_back with an in-memory reader).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
