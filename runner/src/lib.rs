//! Runs stockstream's SmartModule chains in-process on `fluvio-smartengine`, the engine a Fluvio
//! SPU uses, so the embedded pipeline and the cluster produce the same records from the same
//! .wasm files.
//!
//! - [`chain`]: transforms files, locating built modules, a running chain.
//! - [`transform`]: a whole input through a chain, with counts and diagnostics.
//! - [`replay`]: which earlier ticks rebuild a chain's window state exactly after a restart.
//! - [`resume`]: where a chain that runs in an SPU restarts, and with what seed, to go on exactly.

pub mod chain;
pub mod native;
pub mod replay;
pub mod resume;
pub mod transform;

pub use chain::{Chain, ChainError, ChainSpec, WasmLocator};
pub use fluvio_smartengine::SmartEngine;
