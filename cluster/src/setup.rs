//! `stockstream setup`: the topics and the four SmartModules a cluster needs, through the
//! fluvio admin API (no fluvio CLI or smdk), idempotently: what exists and matches is left
//! alone, a module whose .wasm changed is replaced, a topic with other partitions is an error.

use std::fmt;

use anyhow::Context;
use fluvio::metadata::smartmodule::{
    FluvioSemVersion, SmartModuleMetadata, SmartModulePackage, SmartModuleSpec,
    SmartModuleVisibility, SmartModuleWasm,
};
use fluvio::metadata::topic::TopicSpec;
use fluvio::{Fluvio, FluvioAdmin};
use serde::Deserialize;
use stockstream_runner::chain::ChainStep;
use stockstream_runner::WasmLocator;

use crate::topics;

/// One of the project's SmartModules: its crate's `SmartModule.toml`, compiled in so a
/// deployed binary registers exactly what was built with it.
pub struct ModuleManifest {
    pub crate_dir: &'static str,
    pub toml: &'static str,
}

/// The modules: the four composable ones in chain order, then the fused enrich and bars.
pub const MODULES: [ModuleManifest; 6] = [
    ModuleManifest {
        crate_dir: "tick-filter",
        toml: include_str!("../../smartmodules/tick-filter/SmartModule.toml"),
    },
    ModuleManifest {
        crate_dir: "rolling-stats",
        toml: include_str!("../../smartmodules/rolling-stats/SmartModule.toml"),
    },
    ModuleManifest {
        crate_dir: "zscore-anomaly",
        toml: include_str!("../../smartmodules/zscore-anomaly/SmartModule.toml"),
    },
    ModuleManifest {
        crate_dir: "window-bars",
        toml: include_str!("../../smartmodules/window-bars/SmartModule.toml"),
    },
    ModuleManifest {
        crate_dir: "enrich",
        toml: include_str!("../../smartmodules/enrich/SmartModule.toml"),
    },
    ModuleManifest {
        crate_dir: "bars",
        toml: include_str!("../../smartmodules/bars/SmartModule.toml"),
    },
];

#[derive(Deserialize)]
struct ManifestFile {
    package: ManifestPackage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestPackage {
    name: String,
    group: String,
    version: String,
    api_version: String,
    description: Option<String>,
    license: Option<String>,
}

impl ModuleManifest {
    /// The package as the SC stores it (what `smdk load` sends).
    pub fn package(&self) -> anyhow::Result<SmartModulePackage> {
        let file: ManifestFile = toml::from_str(self.toml)
            .with_context(|| format!("SmartModule.toml of {}", self.crate_dir))?;
        let p = file.package;
        Ok(SmartModulePackage {
            version: FluvioSemVersion::parse(&p.version)
                .with_context(|| format!("version of {}", p.name))?,
            api_version: FluvioSemVersion::parse(&p.api_version)
                .with_context(|| format!("apiVersion of {}", p.name))?,
            name: p.name,
            group: p.group,
            description: p.description,
            license: p.license,
            visibility: SmartModuleVisibility::Private,
            repository: None,
        })
    }
}

/// Settings of `stockstream setup`.
#[derive(Debug, Clone)]
pub struct SetupConfig {
    /// Partitions of stock-ticks and of each derived topic (the materializer writes the output
    /// of input partition p to partition p of each derived topic).
    pub partitions: u32,
    /// Replicas of each partition (at most the number of SPUs).
    pub replication: u32,
    /// The raw topic.
    pub raw_topic: String,
    /// Where the built .wasm modules are.
    pub wasm: WasmLocator,
    /// How long to wait for every SPU serving the topics to have the modules.
    pub wait: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    /// Exists as asked.
    Unchanged,
    /// A module whose .wasm differed from the built one: deleted and created again.
    Replaced,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Unchanged => "unchanged",
            Action::Replaced => "replaced",
        })
    }
}

/// What setup did, one line per topic and module.
#[derive(Debug, Clone, Default)]
pub struct SetupReport {
    pub topics: Vec<(String, Action)>,
    /// `group/name@version` and what happened.
    pub modules: Vec<(String, Action)>,
    /// How long the SPUs took to have every module.
    pub spus_ready_after: std::time::Duration,
}

impl fmt::Display for SetupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, action) in &self.topics {
            writeln!(f, "topic {name}: {action}")?;
        }
        for (name, action) in &self.modules {
            writeln!(f, "smartmodule {name}: {action}")?;
        }
        writeln!(
            f,
            "every SPU serving the topics has the modules (waited {:.1} s)",
            self.spus_ready_after.as_secs_f64()
        )
    }
}

/// Creates what is missing; see the module documentation.
pub async fn setup(fluvio: &Fluvio, config: &SetupConfig) -> anyhow::Result<SetupReport> {
    anyhow::ensure!(config.partitions >= 1, "--partitions must be at least 1");
    anyhow::ensure!(config.replication >= 1, "--replication must be at least 1");
    let admin = fluvio.admin().await;
    let mut report = SetupReport::default();
    let mut names = vec![config.raw_topic.clone()];
    names.extend(topics::DERIVED.iter().map(|(_, t)| t.to_string()));
    for name in names {
        let action = ensure_topic(&admin, &name, config.partitions, config.replication).await?;
        report.topics.push((name, action));
    }
    for manifest in &MODULES {
        let package = manifest.package()?;
        let step = ChainStep {
            uses: package.fqdn(),
            module: package.name.clone(),
            params: Default::default(),
            lookback: None,
        };
        let path = config.wasm.find(&step)?;
        let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let action = ensure_module(&admin, package.clone(), &raw).await?;
        report.modules.push((package.fqdn(), action));
    }
    // The SC has the modules now; the SPUs learn of them a little later. A materialize started
    // right after setup (what compose and a user do) must not meet a missing module.
    let topics: Vec<&str> = report.topics.iter().map(|(t, _)| t.as_str()).collect();
    let modules: Vec<String> = report.modules.iter().map(|(m, _)| m.clone()).collect();
    report.spus_ready_after =
        crate::ready::wait_for_modules(fluvio, &topics, &modules, config.wait).await?;
    Ok(report)
}

async fn ensure_topic(
    admin: &FluvioAdmin,
    name: &str,
    partitions: u32,
    replication: u32,
) -> anyhow::Result<Action> {
    let existing = admin
        .list::<TopicSpec, String>(vec![name.to_owned()])
        .await
        .with_context(|| format!("listing topic {name}"))?;
    if let Some(topic) = existing.into_iter().find(|t| t.name == name) {
        let have = topic.spec.replicas().partitions();
        anyhow::ensure!(
            have == partitions,
            "topic {name} exists with {have} partition(s), not the {partitions} asked: every derived topic needs as many partitions as the raw topic; use --partitions {have}, or delete it first (`fluvio topic delete {name}`)"
        );
        return Ok(Action::Unchanged);
    }
    let spec = TopicSpec::new_computed(partitions, replication, None);
    admin
        .create(name.to_owned(), false, spec)
        .await
        .with_context(|| {
            format!("creating topic {name} ({partitions} partitions, replication {replication})")
        })?;
    Ok(Action::Created)
}

/// Registers one more module (a test's, say) as setup registers the project's: created, left
/// alone when the same .wasm is there, or replaced.
pub async fn register_module(
    fluvio: &Fluvio,
    manifest: &ModuleManifest,
    wasm: &[u8],
) -> anyhow::Result<Action> {
    let admin = fluvio.admin().await;
    ensure_module(&admin, manifest.package()?, wasm).await
}

async fn ensure_module(
    admin: &FluvioAdmin,
    package: SmartModulePackage,
    raw: &[u8],
) -> anyhow::Result<Action> {
    let id = package.store_id();
    let fqdn = package.fqdn();
    let spec = SmartModuleSpec {
        meta: Some(SmartModuleMetadata {
            package,
            params: Default::default(),
        }),
        summary: None,
        wasm: SmartModuleWasm::from_raw_wasm_bytes(raw)?,
    };
    // The SC matches list filters as `group/name@version`; it stores under the store id.
    let existing = admin
        .list::<SmartModuleSpec, String>(vec![fqdn.clone()])
        .await
        .with_context(|| format!("listing smartmodule {fqdn}"))?;
    let action = match existing.into_iter().find(|m| m.name == id) {
        Some(found) if found.spec.wasm.payload == spec.wasm.payload => {
            return Ok(Action::Unchanged)
        }
        Some(_) => {
            admin
                .delete::<SmartModuleSpec>(id.clone())
                .await
                .with_context(|| format!("deleting the old smartmodule {fqdn}"))?;
            Action::Replaced
        }
        None => Action::Created,
    };
    admin
        .create(id, false, spec)
        .await
        .with_context(|| format!("creating smartmodule {fqdn}"))?;
    Ok(action)
}
