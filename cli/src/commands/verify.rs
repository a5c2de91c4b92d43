//! `stockstream verify`: are the committed output files all there, as committed? With
//! `--rebuild`, the missing and altered ones are made again from the run's input.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Parser};
use stockstream_pipeline::commit::FileProblem;
use stockstream_pipeline::rebuild::{damaged_files, FileCheck};

use super::run::RunArgs;
use super::store::StoreArgs;

#[derive(Args)]
pub struct VerifyArgs {
    /// Root of the outputs of `stockstream run` or `stockstream materialize`: a directory, or an
    /// object store prefix (s3://bucket/prefix, ...).
    #[arg(long, default_value = "outputs", value_name = "DIR|URL")]
    outputs: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Rebuild the missing and altered files by running the input again, with the arguments
    /// of the `run` that wrote them after `--` (`verify --rebuild -- --input ticks.csv`). A
    /// file is put back only if it comes out byte for byte as committed.
    #[arg(long)]
    rebuild: bool,
    /// The `stockstream run` arguments (input, transforms, settings) for --rebuild.
    #[arg(last = true, value_name = "RUN ARGS")]
    run_args: Vec<OsString>,
}

/// `run`'s arguments, as given after `verify --rebuild --`.
#[derive(Parser)]
#[command(name = "stockstream verify --rebuild --", no_binary_name = true)]
struct RebuildArgs {
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.rebuild || args.run_args.is_empty(),
        "the arguments after -- are the run's, for --rebuild"
    );
    let outputs = args.store.open(&args.outputs)?;
    let materialized = stockstream_cluster::materialize::verify_files(&outputs)?;
    let from_materialize = materialized.is_some();
    let (records, problems) = match materialized {
        Some(check) => (check.records, check.problems),
        None => {
            let FileCheck {
                records, problems, ..
            } = damaged_files(&outputs)?;
            (records, problems)
        }
    };
    let bytes: u64 = records.iter().map(|f| f.bytes).sum();
    if problems.is_empty() {
        say!(
            "verify: {} files ({bytes} bytes) under {}, all present and as committed",
            records.len(),
            args.outputs
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (file, problem) in &problems {
        say!("{}: {}", file.path, describe(problem));
    }
    if from_materialize {
        say!(
            "verify: {} of {} files under {} are missing or altered; they were written by materialize, which makes them again only in a new --outputs (its input is the cluster's topics)",
            problems.len(),
            records.len(),
            args.outputs
        );
        return Ok(ExitCode::FAILURE);
    }
    if !args.rebuild {
        say!(
            "verify: {} of {} files under {} are missing or altered; `stockstream verify --outputs {} --rebuild -- <the run's arguments>` rebuilds them from the input",
            problems.len(),
            records.len(),
            args.outputs,
            args.outputs
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut run_args = vec![OsString::from("--outputs"), args.outputs.clone().into()];
    if let Some(endpoint) = &args.store.s3_endpoint {
        run_args.extend([OsString::from("--s3-endpoint"), endpoint.into()]);
    }
    run_args.extend(args.run_args);
    let rebuild_args = RebuildArgs::try_parse_from(run_args)?;
    let report = super::run::rebuild(rebuild_args.run)?;
    for file in &report.rebuilt {
        say!(
            "{}: rebuilt ({} bytes, SHA-256 as committed)",
            file.path,
            file.bytes
        );
    }
    for (file, why) in &report.differing {
        say!("{}: not rebuilt: {why}", file.path);
    }
    say!(
        "verify: rebuilt {} of {} damaged files under {} from the first {} input records",
        report.rebuilt.len(),
        problems.len(),
        args.outputs,
        report.records_read
    );
    Ok(
        if report.differing.is_empty() && report.rebuilt.len() == problems.len() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn describe(problem: &FileProblem) -> &'static str {
    match problem {
        FileProblem::Missing => "missing",
        FileProblem::Altered => "altered (size or SHA-256 differs from the commit)",
    }
}
