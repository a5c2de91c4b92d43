//! `stockstream`: thin entry point; each subcommand lives in `commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `eprintln!` that never panics: a closed or full stderr (`2>/dev/full`, a pipe to `head`)
/// loses the message, not the run.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics: a reader that went away (`| head`) ends the output quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod commands;
mod memory;

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
    /// The embedded pipeline: ticks through the three chains in-process, Parquet outputs.
    Run(Box<commands::run::RunArgs>),
    /// Precision, recall and F1 of the detected anomalies against a ground-truth file.
    Score(commands::score::ScoreArgs),
    /// Check that every file a run committed is there, with its size and SHA-256.
    Verify(commands::verify::VerifyArgs),
    /// Ticks from a Kafka topic into Fluvio, or into the embedded pipeline (--to pipeline).
    Bridge(Box<commands::bridge::BridgeArgs>),
    /// Cluster mode: create the topics and register the SmartModules (idempotent).
    Setup(commands::cluster::SetupArgs),
    /// Cluster mode: the chains in the SPUs, results to the derived topics and outputs/.
    Materialize(commands::cluster::MaterializeArgs),
    /// Cluster mode: the dashboard on the derived topics.
    Dashboard(Box<commands::dashboard::DashboardCommandArgs>),
}

fn main() -> ExitCode {
    memory::fix_mmap_threshold();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Transform(args) => commands::transform::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Run(args) => commands::run::run(*args),
        Command::Score(args) => commands::score::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Bridge(args) => commands::bridge::run(*args),
        Command::Setup(args) => commands::cluster::run_setup(args),
        Command::Materialize(args) => commands::cluster::run_materialize(args),
        Command::Dashboard(args) => commands::dashboard::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            say!("stockstream: {}", producer::error_chain(err.as_ref()));
            ExitCode::from(2)
        }
    }
}
