pub mod bench;
pub mod bridge;
pub mod cluster;
pub mod dashboard;
pub mod run;
pub mod score;
pub mod store;
pub mod transform;
pub mod verify;

use std::path::PathBuf;

use anyhow::Context;
use stockstream_runner::{Chain, ChainSpec, SmartEngine, WasmLocator};

/// The `--fluvio` option of every command that reaches a Fluvio cluster.
#[derive(clap::Args, Debug, Clone)]
pub struct FluvioArgs {
    /// Fluvio cluster: an SC address (HOST:PORT) or a profile of the fluvio CLI
    /// [default: its current profile].
    #[arg(long, alias = "fluvio-endpoint", env = producer::sinks::fluvio::CLUSTER_ENV, value_name = "HOST:PORT|PROFILE", help_heading = "Fluvio")]
    pub fluvio: Option<String>,
}

impl FluvioArgs {
    pub fn target(&self) -> producer::sinks::fluvio::ClusterTarget {
        producer::sinks::fluvio::ClusterTarget::parse(self.fluvio.as_deref())
    }
}

/// Most records per call into a chain: a batch is held whole in memory (in the host and in
/// the module), so this bounds it (at the record size limit) instead of a flag aborting the
/// process with an allocation failure.
pub const MAX_BATCH: u64 = 65_536;

/// Most input records between commits: their derived rows wait in memory for the commit.
pub const MAX_COMMIT_RECORDS: u64 = 10_000_000;

/// Where the built .wasm modules are: `--wasm-dir`, else the workspace's build output.
pub fn wasm_locator(wasm_dir: Option<PathBuf>) -> WasmLocator {
    WasmLocator::new(wasm_dir, run::workspace().as_deref())
}

/// Reads a transforms file and starts its chain from the built modules.
pub fn start_chain(
    transforms_file: &std::path::Path,
    wasm_dir: Option<PathBuf>,
    memory_limit: Option<usize>,
) -> anyhow::Result<(ChainSpec, Chain)> {
    let spec = ChainSpec::from_file(transforms_file)?;
    let locator = wasm_locator(wasm_dir);
    let chain = spec
        .instantiate_with_memory_limit(&SmartEngine::new(), &locator, memory_limit)
        .with_context(|| format!("starting the chain of {}", transforms_file.display()))?;
    Ok((spec, chain))
}
