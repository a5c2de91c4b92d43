//! `stockstream bench`: ticks/s through a chain in WASM on fluvio-smartengine and through the
//! same core code natively, on one core.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fluvio_protocol::record::{Record, RecordKey};
use stockstream_runner::chain::Chain;
use stockstream_runner::native::NativeEnrichedChain;

#[derive(Args)]
pub struct BenchArgs {
    /// Ticks as JSON lines (e.g. the 500,000 E-mini S&P 500 trades the test set-up prepares).
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// The chain to measure; the native comparison runs the enriched chain's code.
    #[arg(long, default_value = "transforms/enriched.yaml", value_name = "FILE")]
    transforms_file: PathBuf,
    /// Directory holding the built .wasm modules (default: the workspace's build output).
    #[arg(long, value_name = "DIR")]
    wasm_dir: Option<PathBuf>,
    /// Records per call into the chain, 1 to 65536.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=super::MAX_BATCH))]
    batch_size: u64,
    /// Timed passes over the input; the best and the median are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Which engines to measure.
    #[arg(long, value_enum, default_value_t = Engines::Both)]
    engines: Engines,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Engines {
    Both,
    Wasm,
    Native,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let lines: Vec<Vec<u8>> = std::io::BufReader::new(file)
        .split(b'\n')
        .collect::<Result<_, _>>()?;
    let lines: Vec<Vec<u8>> = lines.into_iter().filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(!lines.is_empty(), "{} holds no ticks", args.input.display());
    let batches: Vec<Vec<Record>> = lines
        .chunks(args.batch_size as usize)
        .map(|chunk| {
            chunk
                .iter()
                .map(|line| {
                    let key = stockstream_core::parse_tick(line)
                        .map(|t| RecordKey::from(t.symbol.as_bytes().to_vec()))
                        .unwrap_or(RecordKey::NULL);
                    Record::new_key_value(key, line.clone())
                })
                .collect()
        })
        .collect();
    let ticks = lines.len() as f64;
    out!(
        "bench: {} ticks from {}, chain {}, batch {}, {} rounds, 1 thread",
        lines.len(),
        args.input.display(),
        args.transforms_file.display(),
        args.batch_size,
        args.rounds
    );

    let mut wasm_rates = Vec::new();
    let mut out_count = 0;
    let wasm_rounds = if args.engines == Engines::Native {
        0
    } else {
        args.rounds
    };
    let native_rounds = if args.engines == Engines::Wasm {
        0
    } else {
        args.rounds
    };
    let mut costs = Vec::new();
    for _ in 0..wasm_rounds {
        let (_, mut chain) =
            super::start_chain(&args.transforms_file, args.wasm_dir.clone(), None)?;
        let started = Instant::now();
        out_count = run_wasm(&mut chain, &batches)?;
        wasm_rates.push(ticks / started.elapsed().as_secs_f64());
        costs = chain.take_costs();
    }

    let spec = stockstream_runner::ChainSpec::from_file(&args.transforms_file)?;
    let mut native_rates = Vec::new();
    let mut native_count = 0;
    let mut out = Vec::with_capacity(1 << 16);
    for _ in 0..native_rounds {
        let mut native = NativeEnrichedChain::from_spec(&spec)?;
        native_count = 0;
        let started = Instant::now();
        for line in &lines {
            out.clear();
            if native.process(line, &mut out)? {
                native_count += 1;
            }
        }
        std::hint::black_box(&out);
        native_rates.push(ticks / started.elapsed().as_secs_f64());
    }

    let wasm = best_and_median(&mut wasm_rates);
    let native = best_and_median(&mut native_rates);
    if let Some((best, median)) = wasm {
        out!("wasm (fluvio-smartengine): best {best:>12.0} ticks/s, median {median:>12.0} ticks/s, {out_count} records out");
    }
    if let Some((best, median)) = native {
        out!("native (same core code):   best {best:>12.0} ticks/s, median {median:>12.0} ticks/s, {native_count} records out");
    }
    if let (Some((_, wasm)), Some((_, native))) = (wasm, native) {
        out!("wasm/native (median): {:.1}%", 100.0 * wasm / native);
    }
    // Fuel is the count of WASM instructions the engine metered: it shows which module's own
    // code costs what, apart from the host's encoding and copying between modules.
    for cost in &costs {
        out!(
            "  {:<36} {:>8.0} fuel/tick, {} calls, {} records out",
            cost.module,
            cost.fuel as f64 / ticks,
            cost.calls,
            cost.records_out
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_wasm(chain: &mut Chain, batches: &[Vec<Record>]) -> anyhow::Result<usize> {
    let mut out = 0;
    for batch in batches {
        let output = chain.process(batch)?;
        out += output.records.len();
        std::hint::black_box(&output.records);
    }
    Ok(out)
}

fn best_and_median(rates: &mut [f64]) -> Option<(f64, f64)> {
    rates.sort_by(|a, b| b.total_cmp(a));
    Some((*rates.first()?, rates[rates.len() / 2]))
}
