//! The dashboard server of stockstream.
//!
//! It serves the Leptos front end (built into `dashboard/dist` by `dashboard/build.sh`) and
//! pushes the derived streams to browsers over a WebSocket (`PROTOCOL.md`): a snapshot on
//! connect (recent history per symbol), then live updates for the symbols each client follows;
//! a client that falls behind gets a fresh snapshot, never a silent gap, and the pipeline never
//! waits for a browser. History (bars, anomalies), health and Prometheus metrics are served
//! over plain HTTP.
//!
//! - [`hub`]: what is kept in memory, and the broadcast of updates;
//! - [`server`]: the router ([`server::app`]), token and Origin checks, the WebSocket;
//! - [`metrics`]: the Prometheus page and the push-latency histogram;
//! - [`history`]: what earlier runs left in `outputs/`, read back on start.
//!
//! [`Dashboard::start`] runs it on threads of its own beside `stockstream run`, fed through
//! the pipeline's [`DashboardFeed`].

pub mod history;
pub mod hub;
pub mod metrics;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use stockstream_pipeline::dashboard::{DashboardFeed, DerivedBatch};
use stockstream_pipeline::store::Outputs;
use tokio::sync::oneshot;

pub use hub::{Hub, Retention, RunCounts};

/// Where the dashboard listens when not told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8501";
/// Environment variable that may carry the token instead of `--token`.
pub const TOKEN_ENV: &str = "STOCKSTREAM_DASHBOARD_TOKEN";
/// Batches of derived records queued for the dashboard before the run drops them for it.
const FEED_QUEUE: usize = 256;

/// Settings of the dashboard server.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Address to listen on (loopback unless told otherwise: the data is the user's).
    pub listen: SocketAddr,
    /// Bearer token for the API, metrics and WebSocket; none means open (on loopback).
    pub token: Option<String>,
    /// Serve beyond loopback without a token (refused otherwise: see [`ConfigError`]).
    pub insecure_no_token: bool,
    /// Origins besides the served one that may open the WebSocket.
    pub allowed_origins: Vec<String>,
    /// The built front end.
    pub assets: PathBuf,
    /// How much history is kept in memory.
    pub retention: Retention,
    /// The outputs root whose newest bars, anomalies and ticks seed the history on start.
    pub history: Option<Outputs>,
}

impl DashboardConfig {
    pub fn new(assets: PathBuf) -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
            token: None,
            insecure_no_token: false,
            allowed_origins: Vec::new(),
            assets,
            retention: Retention::default(),
            history: None,
        }
    }

    /// Whether the address is reachable from other machines with no token guarding it.
    pub fn exposed_without_token(&self) -> bool {
        self.token.is_none() && !self.listen.ip().to_canonical().is_loopback()
    }

    /// Refuses to serve every API to the network with no token, unless told so.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.exposed_without_token() && !self.insecure_no_token {
            return Err(ConfigError::ExposedWithoutToken {
                listen: self.listen,
            });
        }
        Ok(())
    }
}

/// A dashboard configuration that must not be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the dashboard would serve its API, WebSocket and metrics on {listen}, beyond this \
         machine, to anyone: give a token (--token TOKEN or the {TOKEN_ENV} environment \
         variable), listen on loopback (--listen 127.0.0.1:PORT), or, on a network you trust, \
         pass --insecure-no-token"
    )]
    ExposedWithoutToken { listen: SocketAddr },
}

/// A running dashboard. Dropping it stops the server.
pub struct Dashboard {
    hub: Arc<Hub>,
    addr: SocketAddr,
    feed: DashboardFeed,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Binds the address (so a port in use is reported now) and serves on threads of its own.
    pub fn start(config: DashboardConfig) -> anyhow::Result<Self> {
        config.check()?;
        if config.exposed_without_token() {
            tracing::warn!(
                listen = %config.listen,
                "dashboard: serving beyond loopback with NO TOKEN (--insecure-no-token): \
                 anyone who can reach this address can read the data and control the replay"
            );
        }
        let listener = std::net::TcpListener::bind(config.listen).with_context(|| {
            format!(
                "the dashboard cannot listen on {} (in use? choose another with --listen)",
                config.listen
            )
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let hub = Hub::new(config.retention);
        if let Some(outputs) = &config.history {
            // Not fatal: the dashboard is worth having without its history.
            match history::seed(&hub, outputs) {
                Ok(seeded) if seeded.files > 0 => tracing::info!(
                    "dashboard: {} rows of history from {} files under {}",
                    seeded.rows,
                    seeded.files,
                    outputs
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    "dashboard: cannot read the history under {}: {e:#}",
                    outputs
                ),
            }
        }
        let state = server::AppState {
            hub: hub.clone(),
            token: config.token.as_deref().map(Arc::from),
            allowed_origins: config.allowed_origins.clone().into(),
            assets: config.assets.clone(),
            hosts: server::ServedHosts::new(addr, config.token.is_some()),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dashboard")
            .enable_all()
            .build()
            .context("starting the dashboard's runtime")?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = std::thread::Builder::new()
            .name("dashboard-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            tracing::error!("dashboard: {e}");
                            return;
                        }
                    };
                    let served = axum::serve(listener, server::app(state))
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("dashboard: {e}");
                    }
                });
                // WebSocket tasks may outlive the graceful shutdown: end them now.
                runtime.shutdown_background();
            })?;
        let (feed, batches) = sync_channel::<Arc<DerivedBatch>>(FEED_QUEUE);
        spawn_ingest(hub.clone(), batches)?;
        Ok(Self {
            hub,
            addr,
            feed,
            shutdown: Some(shutdown),
            server: Some(server),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sending end for `RunConfig::dashboard`.
    pub fn feed(&self) -> DashboardFeed {
        self.feed.clone()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Stops serving and waits for the server thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Applies batches to the hub as they come, on a thread of its own (never the pipeline's).
fn spawn_ingest(hub: Arc<Hub>, batches: Receiver<Arc<DerivedBatch>>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("dashboard-ingest".into())
        .spawn(move || {
            for batch in batches {
                hub.ingest(&batch);
            }
        })?;
    Ok(())
}
