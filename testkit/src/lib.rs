//! Harnesses for tests that need a real service: each starts the real thing on loopback, on
//! ports of its own, and cleans up after itself.
//!
//! - [`kafka`]: an Apache Kafka broker (KRaft) from the Maven Central jars that
//!   `scripts/kafka-broker.sh fetch` caches (`make setup-test` runs it); a random topic per test.
//! - [`fluvio`]: a local Fluvio cluster (SC and SPUs) from `fluvio-run`, when the binaries
//!   are there; tests skip with a message otherwise.

pub mod fluvio;
pub mod kafka;

use std::path::PathBuf;

/// The workspace root (where `scripts/` and `.cache/` are).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_owned()
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A name no other test uses: `prefix` and a random suffix.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
