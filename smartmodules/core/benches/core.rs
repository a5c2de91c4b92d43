//! Micro-benchmarks of the per-record work the SmartModules do.
//!
//! `cargo bench -p stockstream-core --bench core` (a few seconds per benchmark). The stream is
//! synthetic but shaped like the E-mini S&P trades the end-to-end bench replays: one symbol,
//! several ticks per millisecond at times, prices on a 0.25 grid near 1640, small volumes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stockstream_core::bars::{BarsConfig, WindowBars};
use stockstream_core::json::{write_f64, write_int};
use stockstream_core::parse_tick;
use stockstream_core::rolling::{RollingConfig, RollingStats};
use stockstream_core::zscore::{parse_scoring_input, write_scored, ZScoreConfig};

const TICK: &[u8] = br#"{"symbol":"ES","ts":1378054800083,"price":1640.25,"volume":8}"#;
const ENRICHED: &[u8] = br#"{"symbol":"ES","ts":1378054800083,"price":1640.25,"volume":8,"sma":1640.1834862385322,"count":109,"vwap":1640.1901408450703,"prev_mean":1640.1805555555557,"prev_std":0.3134080113924473,"prev_count":108,"late":false}"#;

/// A deterministic stream of `n` tick records (xorshift, no dependency).
fn stream(n: usize) -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ts = 1_378_054_800_083_i64;
    let mut quarters = 1640 * 4_i64;
    (0..n)
        .map(|_| {
            let r = next();
            ts += [0, 0, 0, 1, 3, 17, 120, 900][(r & 7) as usize];
            quarters += [-1, 0, 0, 0, 0, 0, 0, 1][((r >> 3) & 7) as usize];
            let volume = 1 + (r >> 8) % 20;
            let mut record = br#"{"symbol":"ES","ts":"#.to_vec();
            write_int(&mut record, ts);
            record.extend_from_slice(br#","price":"#);
            write_f64(&mut record, quarters as f64 / 4.0);
            record.extend_from_slice(br#","volume":"#);
            write_int(&mut record, volume);
            record.push(b'}');
            record
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let records = stream(20_000);
    let ticks: Vec<_> = records
        .iter()
        .map(|r| parse_tick(r).expect("valid tick"))
        .collect();

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_tick", |b| b.iter(|| parse_tick(black_box(TICK))));
    group.bench_function("parse_scoring_input", |b| {
        b.iter(|| parse_scoring_input(black_box(ENRICHED)))
    });
    group.finish();

    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(ticks.len() as u64));
    group.bench_function("rolling_update", |b| {
        b.iter(|| {
            let mut stats = RollingStats::new(RollingConfig::default());
            for tick in &ticks {
                black_box(stats.update(black_box(tick)));
            }
        })
    });
    group.bench_function("window_bars_push", |b| {
        let mut bars = Vec::new();
        b.iter(|| {
            let mut windows = WindowBars::new(BarsConfig::default());
            for tick in &ticks {
                black_box(windows.push(black_box(tick), &mut bars));
                bars.clear();
            }
        })
    });
    // What the enriched chain does per tick, natively: tick-filter and rolling-stats both
    // parse the raw record, zscore-anomaly re-reads rolling-stats' output.
    group.bench_function("enriched_step", |b| {
        let zscore = ZScoreConfig::default();
        let (mut enriched, mut out) = (Vec::with_capacity(512), Vec::with_capacity(512));
        b.iter(|| {
            let mut stats = RollingStats::new(RollingConfig::default());
            for record in &records {
                let record = black_box(record.as_slice());
                let _ = black_box(parse_tick(record).is_ok());
                let tick = parse_tick(record).expect("valid tick");
                let enrichment = stats.update(&tick);
                enriched.clear();
                enrichment.write_onto(record, &mut enriched);
                let input = parse_scoring_input(&enriched).expect("enriched record");
                let z = zscore.score(
                    input.price,
                    input.prev_mean,
                    input.prev_std,
                    input.prev_count,
                );
                out.clear();
                write_scored(&enriched, z, zscore.is_anomaly(z), &mut out);
                black_box(&out);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = core;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = benches
}
criterion_main!(core);
