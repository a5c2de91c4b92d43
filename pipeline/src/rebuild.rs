//! Rebuilding committed files that are missing or altered (`stockstream verify --rebuild`).
//!
//! Every file is named by the input range of its commit and its contents follow from the input
//! records up to the range's end, the chains and the commit boundaries. So the input is run
//! again, from its start, into a scratch directory (under the outputs root on disk; a local
//! temporary one for an object store, whose files are then uploaded), committing at exactly
//! the boundaries the manifest records and stopping after the last damaged file's range. A
//! rebuilt file whose size and SHA-256 equal the manifest's record is the committed file,
//! byte for byte, and is moved into place; one that differs is left out and reported: the
//! input, the transforms or the settings are not those of the run that committed it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;

use crate::checkpoint::{self, Checkpoint};
use crate::commit::{digest, parse_part_name, sync_dir, FileProblem, FileRecord};
use crate::dates::PartitionBy;
use crate::run::{Event, RunConfig};
use crate::store::Outputs;

/// The scratch directory of a rebuild, under the outputs root (a leading `_` keeps dataset
/// readers out); removed before and after.
pub const SCRATCH_DIR: &str = "_rebuild";

/// What a rebuild did, file by file.
#[derive(Debug, Default)]
pub struct RebuildReport {
    /// Files rebuilt equal to their record and put back.
    pub rebuilt: Vec<FileRecord>,
    /// Files the rerun wrote otherwise than recorded, or not at all: not put back.
    pub differing: Vec<(FileRecord, String)>,
    /// Input records read again.
    pub records_read: u64,
}

/// What an outputs directory's record of committed files says, against the disk.
pub struct FileCheck {
    pub checkpoint: Checkpoint,
    /// Every committed file, in commit order.
    pub records: Vec<FileRecord>,
    /// Those missing or altered.
    pub problems: Vec<(FileRecord, FileProblem)>,
}

/// The committed files of `outputs`, read from its manifest, with those missing or altered.
pub fn damaged_files(outputs: &Outputs) -> anyhow::Result<FileCheck> {
    let checkpoint = outputs.load_checkpoint()?.with_context(|| {
        format!(
            "no {}: nothing was committed there by `stockstream run`",
            outputs.display_join(checkpoint::FILE_NAME)
        )
    })?;
    let (records, problems) = outputs.verify_committed(
        checkpoint.manifest_mark(),
        checkpoint::FILE_NAME,
        checkpoint.counts.files,
    )?;
    Ok(FileCheck {
        checkpoint,
        records,
        problems,
    })
}

/// Rebuilds the damaged files of `config.outputs` by running `config`'s input again (see the
/// module's documentation). Holds the outputs' lock throughout: no run may commit meanwhile.
pub fn rebuild(
    config: &RunConfig,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<RebuildReport> {
    let _lock = config.outputs.lock()?;
    let outputs = &config.outputs;
    let FileCheck {
        checkpoint,
        records,
        problems,
    } = damaged_files(&config.outputs)?;
    if problems.is_empty() {
        return Ok(RebuildReport::default());
    }
    let range_of = |record: &FileRecord| {
        let name = record.path.rsplit('/').next().unwrap_or_default();
        parse_part_name(name)
    };
    let boundaries: BTreeSet<u64> = records
        .iter()
        .filter_map(range_of)
        .flat_map(|(start, end)| [start, end])
        .collect();
    let last_end = problems
        .iter()
        .filter_map(|(record, _)| range_of(record).map(|(_, end)| end))
        .max()
        .with_context(|| {
            format!(
                "{} is not named by its input range: it cannot be rebuilt",
                problems[0].0.path
            )
        })?;

    // On disk, under the root: a rebuilt file is renamed into place on the same file system.
    // For an object store, a local directory of this process's: a rebuilt file is uploaded.
    let scratch = match outputs.local() {
        Some(root) => root.join(SCRATCH_DIR),
        None => std::env::temp_dir().join(format!("stockstream-rebuild-{}", std::process::id())),
    };
    remove_scratch(&scratch)?;
    let mut rerun = config.clone();
    rerun.outputs = scratch.clone().into();
    // Nothing of the rerun goes anywhere but the scratch directory.
    rerun.dashboard = None;
    rerun.alert_webhook = None;
    rerun.commit_at = Some(Arc::new(boundaries.range(..=last_end).copied().collect()));
    // The last commit of a finished run also holds what the end of the input flushes (the
    // bars of windows still open): read to the end for it.
    rerun.stop_at = (!(checkpoint.finished && last_end == checkpoint.offset)).then_some(last_end);
    if let Some(granularity) = checkpoint.partition {
        rerun.partition = PartitionBy::Fixed(granularity);
    }
    let report = crate::run::run(&rerun, stop, on_event);
    let result = report.and_then(|report| {
        let rerun_checkpoint = Outputs::from(scratch.as_path())
            .load_checkpoint()?
            .context("the rerun committed nothing")?;
        anyhow::ensure!(
            rerun_checkpoint.chains == checkpoint.chains,
            "the transforms differ from those of the run that committed the files (recorded in {}): rebuilding needs the same --transforms-dir",
            outputs.display_join(checkpoint::FILE_NAME)
        );
        anyhow::ensure!(
            report.offset >= last_end,
            "the input ends at record {}, before the end of the damaged files' range ({last_end}): it is not the input of the run that committed them",
            report.offset
        );
        put_back(outputs, &scratch, problems, report.offset)
    });
    remove_scratch(&scratch)?;
    result
}

/// Moves (on disk) or uploads (to an object store) each rebuilt file that equals its record.
fn put_back(
    outputs: &Outputs,
    scratch: &Path,
    problems: Vec<(FileRecord, FileProblem)>,
    records_read: u64,
) -> anyhow::Result<RebuildReport> {
    let mut report = RebuildReport {
        records_read,
        ..RebuildReport::default()
    };
    let mut dirs = BTreeSet::new();
    for (record, _) in problems {
        let rebuilt = scratch.join(&record.path);
        let found = match digest(&rebuilt) {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report
                    .differing
                    .push((record, "the rerun wrote no such file".to_owned()));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", rebuilt.display())),
        };
        if found != (record.bytes, record.sha256.clone()) {
            let why = format!(
                "the rerun wrote {} bytes with SHA-256 {}, not {} bytes with {}",
                found.0, found.1, record.bytes, record.sha256
            );
            report.differing.push((record, why));
            continue;
        }
        let Some(root) = outputs.local() else {
            // One PUT or a completed multipart upload: the object appears whole.
            let mut staging = outputs.stage();
            let mut out = staging.create(&record.path)?;
            std::io::copy(&mut std::fs::File::open(&rebuilt)?, &mut out)
                .with_context(|| format!("uploading {}", outputs.display_join(&record.path)))?;
            out.finish()?;
            staging.publish()?;
            report.rebuilt.push(record);
            continue;
        };
        let target = root.join(&record.path);
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Same file system (the scratch is under the root): the file appears whole.
        std::fs::rename(&rebuilt, &target)
            .with_context(|| format!("moving the rebuilt file to {}", target.display()))?;
        dirs.insert(dir);
        report.rebuilt.push(record);
    }
    for dir in dirs {
        sync_dir(&dir).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(report)
}

fn remove_scratch(scratch: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(scratch) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", scratch.display())),
    }
}
