//! A local Fluvio cluster for tests: one SC (metadata in files, `fluvio-run sc --local`) and
//! SPUs (`fluvio-run spu`), each on loopback ports of its own, in a temporary directory that
//! goes away with the cluster.
//!
//! Fluvio's server binaries are on no registry these machines reach, so tests look for
//! `fluvio-run` (and, for the CLI flow, `fluvio`) in `FLUVIO_BIN_DIR`, then on `PATH`, and
//! skip with a message when they are absent ([`FluvioBinaries::find_or_skip`]).

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fluvio::metadata::customspu::CustomSpuSpec;
use fluvio::metadata::spu::SpuSpec;
use fluvio::{Fluvio, FluvioClusterConfig};
use fluvio_controlplane_metadata::spu::{EncryptionEnum, Endpoint, IngressAddr, IngressPort};
use fluvio_future::task::run_block_on;

use crate::free_port;

/// Environment variable naming the directory of the Fluvio binaries.
pub const BIN_DIR_ENV: &str = "FLUVIO_BIN_DIR";

/// Where the Fluvio binaries are.
#[derive(Debug, Clone)]
pub struct FluvioBinaries {
    /// `fluvio-run` (SC and SPU).
    pub run: PathBuf,
    /// The `fluvio` CLI, when present.
    pub cli: Option<PathBuf>,
}

impl FluvioBinaries {
    /// `FLUVIO_BIN_DIR`, then `PATH`.
    pub fn find() -> Option<Self> {
        let dirs: Vec<PathBuf> = std::env::var_os(BIN_DIR_ENV)
            .map(PathBuf::from)
            .into_iter()
            .chain(
                std::env::var_os("PATH")
                    .iter()
                    .flat_map(std::env::split_paths),
            )
            .collect();
        let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
        Some(Self {
            run: find("fluvio-run")?,
            cli: find("fluvio"),
        })
    }

    /// The binaries, or `None` after printing why the calling test is skipped.
    pub fn find_or_skip(test: &str) -> Option<Self> {
        let found = Self::find();
        if found.is_none() {
            eprintln!(
                "SKIPPED {test}: no fluvio-run in ${BIN_DIR_ENV} or on PATH (Fluvio's server binaries are not on any registry; build them from the public Fluvio repository and point {BIN_DIR_ENV} at them to run the cluster tests)"
            );
        }
        found
    }
}

/// A running local cluster; dropping it stops every process and removes its data.
pub struct FluvioCluster {
    children: Vec<Child>,
    /// The SC's public address (`--fluvio` of the project's commands).
    pub endpoint: String,
    pub binaries: FluvioBinaries,
    dir: tempfile::TempDir,
}

impl FluvioCluster {
    /// Starts an SC and `spus` SPUs and waits until every SPU is online.
    pub fn start(binaries: FluvioBinaries, spus: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("fluvio-cluster")
            .tempdir()?;
        let (public, private) = (free_port(), free_port());
        let endpoint = format!("127.0.0.1:{public}");
        let mut cluster = Self {
            children: Vec::new(),
            endpoint: endpoint.clone(),
            binaries,
            dir,
        };
        let sc = cluster.spawn(
            "sc",
            Command::new(&cluster.binaries.run)
                .arg("sc")
                .arg("--local")
                .arg(cluster.dir.path().join("metadata"))
                .arg("--bind-public")
                .arg(&endpoint)
                .arg("--bind-private")
                .arg(format!("127.0.0.1:{private}")),
        )?;
        cluster.children.push(sc);
        wait_for_port(&endpoint, Duration::from_secs(30)).context("the SC did not start")?;
        let fluvio = cluster.connect()?;
        for i in 0..spus {
            let id = 5001 + i32::from(i);
            let (spu_public, spu_private) = (free_port(), free_port());
            let spec = CustomSpuSpec {
                id,
                public_endpoint: IngressPort {
                    port: spu_public,
                    ingress: vec![IngressAddr {
                        hostname: Some("127.0.0.1".to_owned()),
                        ip: None,
                    }],
                    encryption: EncryptionEnum::PLAINTEXT,
                },
                private_endpoint: Endpoint {
                    port: spu_private,
                    host: "127.0.0.1".to_owned(),
                    encryption: EncryptionEnum::PLAINTEXT,
                },
                rack: None,
                public_endpoint_local: None,
            };
            run_block_on(async {
                fluvio
                    .admin()
                    .await
                    .create(format!("custom-spu-{id}"), false, spec)
                    .await
            })
            .with_context(|| format!("registering SPU {id}"))?;
            let logs = cluster.dir.path().join(format!("spu-{id}"));
            let spu = cluster.spawn(
                &format!("spu-{id}"),
                Command::new(&cluster.binaries.run)
                    .arg("spu")
                    .arg("-i")
                    .arg(id.to_string())
                    .arg("-p")
                    .arg(format!("127.0.0.1:{spu_public}"))
                    .arg("-v")
                    .arg(format!("127.0.0.1:{spu_private}"))
                    .arg("--sc-addr")
                    .arg(format!("127.0.0.1:{private}"))
                    .arg("--log-base-dir")
                    .arg(&logs),
            )?;
            cluster.children.push(spu);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let online = run_block_on(async {
                let all = fluvio.admin().await.all::<SpuSpec>().await?;
                Ok::<_, anyhow::Error>(all.iter().filter(|s| s.status.is_online()).count())
            })?;
            if online >= usize::from(spus) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{online} of {spus} SPUs online after 60 s; logs in {}",
                cluster.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(cluster)
    }

    fn spawn(&self, name: &str, command: &mut Command) -> anyhow::Result<Child> {
        let log = File::create(self.dir.path().join(format!("{name}.log")))?;
        command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} ({})", self.binaries.run.display()))
    }

    /// A client of this cluster.
    /// Process ids of the SPUs (the SC is started first, the SPUs after it), to sample their
    /// memory.
    pub fn spu_pids(&self) -> Vec<u32> {
        self.children.iter().skip(1).map(Child::id).collect()
    }

    pub fn connect(&self) -> anyhow::Result<Fluvio> {
        let config = FluvioClusterConfig::new(self.endpoint.clone());
        run_block_on(Fluvio::connect_with_config(&config))
    }

    /// Where the SC and SPU logs are.
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `fluvio` CLI pointed at this cluster, or `None` without the CLI.
    pub fn cli(&self) -> Option<Command> {
        self.tool(self.binaries.cli.as_ref()?)
    }

    /// `smdk` (from `FLUVIO_BIN_DIR`) pointed at this cluster, or `None` without it.
    pub fn smdk(&self) -> Option<Command> {
        let dir = std::env::var_os(BIN_DIR_ENV).map(PathBuf::from)?;
        let smdk = dir.join("smdk");
        smdk.is_file().then(|| self.tool(&smdk)).flatten()
    }

    /// One of Fluvio's tools with this cluster as its current profile, through a config file
    /// of its own under a `HOME` of its own (the user's config is never touched).
    fn tool(&self, program: &Path) -> Option<Command> {
        let home = self.dir.path().join("home");
        let config = home.join(".fluvio").join("config");
        if !config.exists() {
            std::fs::create_dir_all(config.parent()?).ok()?;
            std::fs::write(
                &config,
                format!(
                    "version = \"2.0\"\ncurrent_profile = \"test\"\n\n[profile.test]\ncluster = \"test\"\n\n[cluster.test]\nendpoint = \"{}\"\n",
                    self.endpoint
                ),
            )
            .ok()?;
        }
        let mut command = Command::new(program);
        command.env("HOME", &home);
        Some(command)
    }
}

impl Drop for FluvioCluster {
    fn drop(&mut self) {
        // SPUs first, so none is left trying to reach a gone SC.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_port(address: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(address).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
