//! `stockstream verify`: are the committed output files all there, as committed?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use stockstream_pipeline::checkpoint::{self, Checkpoint};
use stockstream_pipeline::commit::{check_files, read_manifest, FileProblem, FileRecord};

#[derive(Args)]
pub struct VerifyArgs {
    /// Root of the outputs of `stockstream run`.
    #[arg(long, default_value = "outputs", value_name = "DIR")]
    outputs: PathBuf,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let path = args.outputs.join(checkpoint::FILE_NAME);
    let checkpoint = Checkpoint::load(&path)?.with_context(|| {
        format!(
            "no {} in {}: nothing was committed there by `stockstream run`",
            checkpoint::FILE_NAME,
            args.outputs.display()
        )
    })?;
    if checkpoint.manifest_len == 0 && checkpoint.counts.files > 0 {
        anyhow::bail!(
            "{} predates the record of committed files: nothing to check against",
            path.display()
        );
    }
    let records: Vec<FileRecord> = read_manifest(&args.outputs, checkpoint.manifest_len)
        .and_then(|records| records.collect())
        .with_context(|| format!("reading the record of files in {}", args.outputs.display()))?;
    anyhow::ensure!(
        records.len() as u64 == checkpoint.manifest_len,
        "the record of files in {} is shorter than its checkpoint says ({} of {} lines)",
        args.outputs.display(),
        records.len(),
        checkpoint.manifest_len
    );
    let problems = check_files(&args.outputs, records.iter().cloned().map(Ok), true)
        .with_context(|| format!("checking the files of {}", args.outputs.display()))?;
    for (file, problem) in &problems {
        let what = match problem {
            FileProblem::Missing => "missing",
            FileProblem::Altered => "altered (size or SHA-256 differs from the commit)",
        };
        say!("{}: {what}", file.path);
    }
    let bytes: u64 = records.iter().map(|f| f.bytes).sum();
    if problems.is_empty() {
        say!(
            "verify: {} files ({bytes} bytes) under {}, all present and as committed",
            records.len(),
            args.outputs.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "verify: {} of {} files under {} are missing or altered; rerunning the input into a new --outputs rebuilds them",
        problems.len(),
        records.len(),
        args.outputs.display()
    );
    Ok(ExitCode::FAILURE)
}
