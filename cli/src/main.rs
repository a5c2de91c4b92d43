//! `stockstream`: thin entry point; each subcommand lives in `commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// Real-time stock analytics on Fluvio SmartModules.
#[derive(Parser)]
#[command(name = "stockstream", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a SmartModule chain over ticks, exactly as a Fluvio SPU would.
    Transform(commands::transform::TransformArgs),
    /// Measure ticks/s through a chain in WASM and through the same code natively.
    Bench(commands::bench::BenchArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Transform(args) => commands::transform::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stockstream: {err:#}");
            ExitCode::from(2)
        }
    }
}
