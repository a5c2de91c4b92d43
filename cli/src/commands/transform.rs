//! `stockstream transform`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use stockstream_runner::transform::{run_transform, ItemIter, Recovery, TransformOptions};
use stockstream_runner::SmartEngine;
use stockstream_ticks::{CsvSettings, InputFormat, TickReader};

#[derive(Args)]
pub struct TransformArgs {
    /// The chain, in the format of `fluvio consume --transforms-file`.
    #[arg(long, value_name = "FILE")]
    transforms_file: PathBuf,
    /// Ticks as JSON lines, or CSV when the name ends in .csv; `-` for standard input.
    #[arg(long, default_value = "-", value_name = "PATH")]
    input: PathBuf,
    /// Where output records go, one JSON object per line; `-` for standard output.
    #[arg(long, default_value = "-", value_name = "PATH")]
    output: PathBuf,
    /// Directory holding the built .wasm modules (default: the workspace's build output).
    #[arg(long, value_name = "DIR")]
    wasm_dir: Option<PathBuf>,
    #[command(flatten)]
    csv: producer::CsvArgs,
    /// Records per call into the chain (an SPU batch), 1 to 65536.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=super::MAX_BATCH))]
    batch_size: u64,
    /// Longest JSON line or CSV row (bytes); a longer one is reported as too large and skipped without
    /// being held in memory.
    #[arg(long, value_name = "BYTES", default_value_t = stockstream_ticks::DEFAULT_MAX_RECORD_BYTES, value_parser = super::run::parse_record_limit)]
    max_record_bytes: usize,
    /// Memory the chain's modules may use together, in bytes (as an SPU's store limit; 1 GB,
    /// the engine's default, unless set). A record that needs more fails the chain: it is
    /// reported and skipped.
    #[arg(long, value_name = "BYTES", value_parser = super::run::parse_chain_memory_limit)]
    chain_memory_limit: Option<usize>,
}

pub fn run(args: TransformArgs) -> anyhow::Result<ExitCode> {
    let (spec, mut chain) = super::start_chain(
        &args.transforms_file,
        args.wasm_dir.clone(),
        args.chain_memory_limit,
    )?;
    let is_stdin = args.input.as_os_str() == "-";
    let format = InputFormat::from_path((!is_stdin).then_some(args.input.as_path()));
    let reader: Box<dyn io::BufRead> = if is_stdin {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let problems = args
        .csv
        .problems(format, &args.input.display().to_string(), &[], "");
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    let csv = CsvSettings {
        max_record_bytes: Some(args.max_record_bytes),
        ..args.csv.settings(None)
    };
    let input = TickReader::with_settings(reader, format, &csv)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let mut out: Box<dyn Write> = if args.output.as_os_str() == "-" {
        Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock()))
    } else {
        let file = File::create(&args.output)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let options = TransformOptions {
        batch_size: args.batch_size as usize,
        ..TransformOptions::default()
    };
    // A record the chain fails on is skipped by restarting the chain and rebuilding its state
    // from the input before it: a file can be read again, standard input cannot.
    let engine = SmartEngine::new();
    let locator = super::wasm_locator(args.wasm_dir.clone());
    let recovery = (!is_stdin).then(|| Recovery {
        new_chain: Box::new(|| {
            Ok(spec.instantiate_with_memory_limit(&engine, &locator, args.chain_memory_limit)?)
        }),
        reopen: Box::new(|| {
            let file = File::open(&args.input)
                .with_context(|| format!("cannot read {}", args.input.display()))?;
            let reader = BufReader::with_capacity(1 << 20, file);
            let items: ItemIter<'_> = Box::new(TickReader::with_settings(reader, format, &csv)?);
            Ok(items)
        }),
    });
    let mut stderr = io::stderr().lock();
    let result = run_transform(
        &spec,
        &mut chain,
        input,
        &mut out,
        &mut stderr,
        &options,
        recovery,
    );
    let summary = match result {
        Ok(summary) => summary,
        // The reader of stdout went away (`| head`): what it wanted is written; end quietly.
        Err(err)
            if err.chain().any(|cause| {
                cause
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            return Ok(ExitCode::SUCCESS);
        }
        Err(err) => {
            say!(
                "stockstream transform: {}",
                producer::error_chain(err.as_ref())
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let _ = writeln!(stderr, "transform: {summary}");
    Ok(ExitCode::SUCCESS)
}
