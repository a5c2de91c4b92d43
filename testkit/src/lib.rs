//! Harnesses for tests that need a real service: each starts the real thing on loopback, on
//! ports of its own, and cleans up after itself.
//!
//! - [`kafka`]: an Apache Kafka broker (KRaft) from the Maven Central jars that
//!   `scripts/kafka-broker.sh fetch` caches (`make setup-test` runs it); a random topic per test.
//! - [`fluvio`]: a local Fluvio cluster (SC and SPUs) from `fluvio-run`, when the binaries
//!   are there; tests skip with a message otherwise.
//! - [`s3`]: an S3 server (moto in server mode, from the reference venv); a bucket per test.

pub mod fluvio;
pub mod kafka;
pub mod s3;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{mpsc, OnceLock};

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

/// Spawns `command` from a thread that lives as long as the process, with SIGKILL as its
/// parent-death signal: Linux sends that signal when the spawning *thread* ends, and test
/// threads end early.
pub(crate) fn spawn_with_parent_death_signal(command: Command) -> anyhow::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testkit-keeper".into())
            .spawn(move || {
                use std::os::unix::process::CommandExt;
                for (mut command, reply) in rx {
                    // SAFETY: prctl is async-signal-safe; nothing else runs in pre_exec.
                    unsafe {
                        command.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(command.spawn());
                }
                // The sender lives in a static: this loop never ends, nor does the thread.
            })
            .expect("keeper thread");
        std::sync::Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .expect("not poisoned")
        .send((command, reply_tx))
        .expect("keeper alive");
    Ok(reply_rx.recv().expect("keeper replies")?)
}
