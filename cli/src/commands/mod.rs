pub mod bench;
pub mod bridge;
pub mod run;
pub mod score;
pub mod transform;

use std::path::PathBuf;

use anyhow::Context;
use stockstream_runner::{Chain, ChainSpec, SmartEngine, WasmLocator};

/// Reads a transforms file and starts its chain from the built modules.
pub fn start_chain(
    transforms_file: &std::path::Path,
    wasm_dir: Option<PathBuf>,
) -> anyhow::Result<(ChainSpec, Chain)> {
    let spec = ChainSpec::from_file(transforms_file)?;
    let workspace = std::env::current_dir()
        .ok()
        .and_then(|dir| WasmLocator::find_workspace(&dir))
        .or_else(|| WasmLocator::find_workspace(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))));
    let locator = WasmLocator::new(wasm_dir, workspace.as_deref());
    let chain = spec
        .instantiate(&SmartEngine::new(), &locator)
        .with_context(|| format!("starting the chain of {}", transforms_file.display()))?;
    Ok((spec, chain))
}
