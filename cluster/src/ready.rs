//! Waiting until the SPUs can run the modules.
//!
//! The SC registers a SmartModule at once, but each SPU learns of it from the SC's update
//! stream a little later (fluvio 0.50): a chain opened in between fails with
//! `SmartModuleNotFound`, and for 1-3 s after an SPU restarts its modules are missing again.
//! `setup` and `materialize` therefore open, on every partition of the topics they use, a
//! consumer with every module invoked, from the partition's end and without following it (no
//! record is read), until each SPU accepts the chain or the wait runs out.

use std::time::{Duration, Instant};

use anyhow::Context;
use fluvio::consumer::ConsumerConfigExtBuilder;
use fluvio::{Fluvio, Offset, SmartModuleInvocation};
use fluvio_future::timer::sleep;
use fluvio_protocol::link::ErrorCode;
use futures_util::StreamExt;

use crate::materialize::{predefined, topic_partitions};

/// How long `setup` and `materialize` wait for the SPUs by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

const RETRY_EVERY: Duration = Duration::from_millis(200);

/// Waits until the SPU leading each partition of `topics` can open a chain of `modules`
/// (`group/name@version`). Returns how long it waited; an error names the partition and the
/// module still missing when `wait` ran out.
pub async fn wait_for_modules(
    fluvio: &Fluvio,
    topics: &[&str],
    modules: &[String],
    wait: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for topic in topics {
        let partitions = topic_partitions(fluvio, topic).await?;
        for partition in 0..partitions {
            loop {
                match probe(fluvio, topic, partition, modules).await? {
                    None => break,
                    Some(missing) if started.elapsed() < wait => {
                        tracing::debug!(topic, partition, missing, "module not on the SPU yet");
                        sleep(RETRY_EVERY).await;
                    }
                    Some(missing) => anyhow::bail!(
                        "the SPU leading partition {partition} of {topic} still has no SmartModule {missing} after {:.0} s (the SC has it when `stockstream setup` reported it): is that SPU running and connected to the SC?",
                        wait.as_secs_f64()
                    ),
                }
            }
        }
    }
    Ok(started.elapsed())
}

/// Opens the chain on one partition: `None` when the SPU accepted it, the missing module's
/// name when it has not got it yet. Any other failure is an error.
async fn probe(
    fluvio: &Fluvio,
    topic: &str,
    partition: u32,
    modules: &[String],
) -> anyhow::Result<Option<String>> {
    let invocations: Vec<SmartModuleInvocation> = modules
        .iter()
        .map(|fqdn| predefined(fqdn, Default::default(), "stockstream-ready"))
        .collect();
    let config = ConsumerConfigExtBuilder::default()
        .topic(topic.to_owned())
        .partition(partition)
        .offset_start(Offset::end())
        .disable_continuous(true)
        .smartmodule(invocations)
        .build()
        .context("consumer settings")?;
    let missing = |error: &ErrorCode| match error {
        ErrorCode::SmartModuleNotFound { name } => Some(name.clone()),
        _ => None,
    };
    let mut stream = match fluvio.consumer_with_config(config).await {
        Ok(stream) => stream,
        Err(error) => {
            if let Some(code) = error.downcast_ref::<ErrorCode>() {
                if let Some(name) = missing(code) {
                    return Ok(Some(name));
                }
            }
            return Err(error)
                .with_context(|| format!("opening a chain on partition {partition} of {topic}"));
        }
    };
    match stream.next().await {
        Some(Err(error)) => match missing(&error) {
            Some(name) => Ok(Some(name)),
            None => Err(anyhow::anyhow!(
                "opening a chain on partition {partition} of {topic}: {error:?}"
            )),
        },
        Some(Ok(_)) | None => Ok(None),
    }
}
