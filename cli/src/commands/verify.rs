//! `stockstream verify`: are the committed output files all there, as committed?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use stockstream_pipeline::checkpoint::{self, Checkpoint};
use stockstream_pipeline::commit::{check_files, FileProblem};

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
    if checkpoint.manifest.is_empty() && checkpoint.counts.files > 0 {
        anyhow::bail!(
            "{} predates the record of committed files: nothing to check against",
            path.display()
        );
    }
    let problems = check_files(&args.outputs, &checkpoint.manifest, true)
        .with_context(|| format!("checking the files of {}", args.outputs.display()))?;
    for (file, problem) in &problems {
        let what = match problem {
            FileProblem::Missing => "missing",
            FileProblem::Altered => "altered (size or SHA-256 differs from the commit)",
        };
        say!("{}: {what}", file.path);
    }
    let bytes: u64 = checkpoint.manifest.iter().map(|f| f.bytes).sum();
    if problems.is_empty() {
        say!(
            "verify: {} files ({bytes} bytes) under {}, all present and as committed",
            checkpoint.manifest.len(),
            args.outputs.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "verify: {} of {} files under {} are missing or altered; rerunning the input into a new --outputs rebuilds them",
        problems.len(),
        checkpoint.manifest.len(),
        args.outputs.display()
    );
    Ok(ExitCode::FAILURE)
}
