//! One writer per outputs prefix in an object store: a lease object, `_lock.json`, created
//! with a conditional PUT (If-None-Match), renewed with conditional PUTs (If-Match on its
//! ETag) every third of [`LEASE`], and deleted on a clean exit.
//!
//! A second run finds it fresh and is refused. A run that died leaves it behind: the next run
//! takes it over at once when the holder was a process of the same host that no longer exists
//! (the usual kill -9 and restart), else once it has gone a whole lease unrenewed. The
//! checkpoint's own conditional write still stops a commit if a lease were ever lost unseen.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::object::ObjectOutputs;

/// How long a lease holds without renewal.
pub const LEASE: Duration = Duration::from_secs(30);

const LOCK_NAME: &str = "_lock.json";

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    /// Random, so two runs never mistake each other's lease for their own.
    owner: String,
    lease_seconds: u64,
}

/// The lease, renewed in the background while held.
pub struct Lease {
    outputs: Arc<ObjectOutputs>,
    shared: Arc<Mutex<Renewal>>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

struct Renewal {
    version: UpdateVersion,
    renewed: Instant,
    lost: Option<String>,
}

fn shown(outputs: &ObjectOutputs) -> String {
    format!("{}/{LOCK_NAME}", outputs.url())
}

pub(super) fn acquire(outputs: Arc<ObjectOutputs>) -> anyhow::Result<Lease> {
    let path = outputs.path(LOCK_NAME);
    let me = Holder {
        host: host_name(),
        pid: std::process::id(),
        owner: format!("{:016x}", random_u64()),
        lease_seconds: LEASE.as_secs(),
    };
    let body = serde_json::to_vec(&me).expect("serialisable");
    for _ in 0..5 {
        let created = put(&outputs, &body, PutMode::Create);
        let taken = match created {
            Ok(result) => Some(result),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                let held = match outputs.block_on(outputs.store().get(&path)) {
                    Ok(held) => held,
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("cannot read {}", shown(&outputs))))
                    }
                };
                let meta = held.meta.clone();
                let holder: Option<Holder> = outputs
                    .block_on(held.bytes())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let age = SystemTime::now()
                    .duration_since(SystemTime::from(meta.last_modified))
                    .unwrap_or_default();
                let holder_died = holder
                    .as_ref()
                    .is_some_and(|h| h.host == me.host && !process_exists(h.pid));
                if !holder_died && age < LEASE {
                    let who = holder.map_or_else(
                        || "an unknown writer".to_owned(),
                        |h| format!("process {} on {}", h.pid, h.host),
                    );
                    anyhow::bail!(
                        "another stockstream run is writing to {} ({who} holds {}, renewed {:.0} s ago); stop it or choose another --outputs. A lock left by a run that died lapses {} s after its last renewal",
                        outputs.url(),
                        shown(&outputs),
                        age.as_secs_f64(),
                        LEASE.as_secs()
                    );
                }
                let replaced = put(
                    &outputs,
                    &body,
                    PutMode::Update(UpdateVersion {
                        e_tag: meta.e_tag,
                        version: meta.version,
                    }),
                );
                match replaced {
                    Ok(result) => {
                        tracing::warn!(
                            "took over {} from a run that {}",
                            shown(&outputs),
                            if holder_died {
                                "no longer exists"
                            } else {
                                "stopped renewing it"
                            }
                        );
                        Some(result)
                    }
                    // Another run took or renewed it in between: look again.
                    Err(object_store::Error::Precondition { .. }) => None,
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("cannot write {}", shown(&outputs))))
                    }
                }
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot write {}", shown(&outputs)))
                )
            }
        };
        if let Some(result) = taken {
            let shared = Arc::new(Mutex::new(Renewal {
                version: UpdateVersion {
                    e_tag: result.e_tag,
                    version: result.version,
                },
                renewed: Instant::now(),
                lost: None,
            }));
            let (stop, stopped) = mpsc::channel();
            let renewer = {
                let outputs = outputs.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name("stockstream-lease".into())
                    .spawn(move || renew(&outputs, &shared, &body, &stopped))?
            };
            return Ok(Lease {
                outputs,
                shared,
                stop: Some(stop),
                renewer: Some(renewer),
            });
        }
    }
    anyhow::bail!(
        "could not take {}: other runs keep taking it",
        shown(&outputs)
    )
}

/// Writes the lease object with `mode` (create, or replace a version).
fn put(outputs: &ObjectOutputs, body: &[u8], mode: PutMode) -> object_store::Result<PutResult> {
    outputs.block_on(outputs.store().put_opts(
        &outputs.path(LOCK_NAME),
        PutPayload::from(body.to_vec()),
        PutOptions {
            mode,
            ..PutOptions::default()
        },
    ))
}

fn renew(
    outputs: &ObjectOutputs,
    shared: &Mutex<Renewal>,
    body: &[u8],
    stopped: &mpsc::Receiver<()>,
) {
    loop {
        match stopped.recv_timeout(LEASE / 3) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let version = shared.lock().expect("not poisoned").version.clone();
        let renewed = put(outputs, body, PutMode::Update(version));
        let mut renewal = shared.lock().expect("not poisoned");
        match renewed {
            Ok(result) => {
                renewal.version = UpdateVersion {
                    e_tag: result.e_tag,
                    version: result.version,
                };
                renewal.renewed = Instant::now();
            }
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => {
                renewal.lost = Some(format!("{} was taken over by another run", shown(outputs)));
                return;
            }
            // Kept trying; `check` refuses commits once the lease may have lapsed.
            Err(e) => tracing::warn!("cannot renew {}: {e}", shown(outputs)),
        }
    }
}

impl Lease {
    /// Fails once the lease is lost or may have lapsed (no renewal for most of [`LEASE`]).
    pub fn check(&self) -> anyhow::Result<()> {
        let renewal = self.shared.lock().expect("not poisoned");
        if let Some(lost) = &renewal.lost {
            anyhow::bail!("{lost}; this run stops without committing");
        }
        let margin = LEASE / 6;
        anyhow::ensure!(
            renewal.renewed.elapsed() < LEASE - margin,
            "{} could not be renewed for {:.0} s, so another run may have taken it; this run stops without committing",
            shown(&self.outputs),
            renewal.renewed.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        if self
            .shared
            .lock()
            .map(|r| r.lost.is_none())
            .unwrap_or(false)
        {
            let path = self.outputs.path(LOCK_NAME);
            if let Err(e) = self.outputs.block_on(self.outputs.store().delete(&path)) {
                tracing::warn!("cannot remove {}: {e}", shown(&self.outputs));
            }
        }
    }
}

fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), Instant::now()))
}
