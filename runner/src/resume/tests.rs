//! The bounded restart against the uninterrupted run, bit for bit: the chain's stateful step
//! is simulated by the core it runs (`RollingStats`, `BarEmitter`), the input is cut into
//! batches as a partition is, and every lane restarts twice, the second time from a point its
//! restarted tracker gave.

use proptest::prelude::*;
use stockstream_core::bars::{BarEmitter, BarsConfig};
use stockstream_core::resume::{parse_max_ts, parse_starts};
use stockstream_core::rolling::{RollingConfig, RollingStats};
use stockstream_core::tick::parse_tick;

use super::*;

/// The replay tests' ticks with invalid records and a quiet symbol (S3 ticks rarely).
fn records(steps: &[(u8, i64, i32, bool)]) -> Vec<Vec<u8>> {
    crate::replay::tests::tick_records(steps.iter().copied())
}

fn step() -> impl Strategy<Value = (u8, i64, i32, bool)> {
    (
        prop_oneof![10 => 0u8..3, 1 => Just(3u8)],
        prop_oneof![
            4 => Just(0i64),
            8 => 1i64..6,
            2 => 6i64..30,
            1 => -8i64..0,
        ],
        -40i32..40,
        prop::bool::weighted(0.05),
    )
}

/// The input cut into batches: `(first offset, records)`.
fn batches(input: &[Vec<u8>], sizes: &[usize]) -> Vec<(u64, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    let (mut at, mut size) = (0usize, sizes.iter().cycle());
    while at < input.len() {
        let n = (*size.next().expect("cycle")).min(input.len() - at);
        out.push((at as u64, input[at..at + n].to_vec()));
        at += n;
    }
    out
}

/// One lane's stateful step, as the module runs it.
enum Step {
    Rolling(RollingStats),
    Bars(BarEmitter),
}

/// A record the step emitted: its text (every bit of it), and its value.
struct Emitted {
    text: String,
    value: Vec<u8>,
}

impl Step {
    fn new(chain: &ChainReplay, point: Option<&ResumePoint>) -> Self {
        let seed = point.map_or("", |p| p.seed.as_str());
        match chain.kind {
            ReplayKind::Rolling { window_ms } => {
                let mut stats = RollingStats::new(RollingConfig {
                    window_ms,
                    ..RollingConfig::default()
                });
                if !seed.is_empty() {
                    stats.resume(parse_starts(seed).unwrap());
                }
                Self::Rolling(stats)
            }
            ReplayKind::Bars { config } => {
                let mut bars = BarEmitter::new(config);
                if !seed.is_empty() {
                    bars.resume(parse_max_ts(seed).unwrap());
                }
                Self::Bars(bars)
            }
            _ => unreachable!("stateful chains only"),
        }
    }

    /// The batch's output, and what the step appends to its progress record.
    fn batch(&mut self, records: &[Vec<u8>]) -> (Vec<Emitted>, Vec<u8>) {
        let mut out = Vec::new();
        for record in records {
            let Ok(tick) = parse_tick(record) else {
                continue;
            };
            match self {
                Self::Rolling(stats) => {
                    let e = stats.update(&tick);
                    let f = |v: Option<f64>| v.map_or(u64::MAX, f64::to_bits);
                    out.push(Emitted {
                        text: format!(
                            "{} {} {:x} {:?} {:x} {:x} {:x} {:?} {}",
                            tick.symbol,
                            tick.ts,
                            f(e.sma),
                            e.count,
                            f(e.vwap),
                            f(e.prev_mean),
                            f(e.prev_std),
                            e.prev_count,
                            e.late
                        ),
                        value: {
                            let mut value = Vec::new();
                            e.write_onto(record, &mut value);
                            value
                        },
                    });
                }
                Self::Bars(bars) => bars.push(&tick, |bar| {
                    out.push(Emitted {
                        text: format!(
                            "{} {} {:x} {:x} {:x} {:x} {} {:?} {:?} {}",
                            bar.symbol,
                            bar.window_start,
                            bar.open.to_bits(),
                            bar.high.to_bits(),
                            bar.low.to_bits(),
                            bar.close.to_bits(),
                            bar.volume,
                            bar.vwap.map(f64::to_bits),
                            bar.std.map(f64::to_bits),
                            bar.count
                        ),
                        value: Vec::new(),
                    })
                }),
            }
        }
        let tail = match self {
            Self::Rolling(_) => Vec::new(),
            Self::Bars(bars) => bars
                .max_ts()
                .map(|m| m.to_be_bytes().to_vec())
                .unwrap_or_default(),
        };
        (out, tail)
    }
}

/// The output per batch of a lane that restarts before each batch index in `restarts` (from
/// where its tracker says), with the output of the replayed batches dropped; also the
/// number of batches each restart replayed.
fn run_lane(
    chain: &ChainReplay,
    batches: &[(u64, Vec<Vec<u8>>)],
    restarts: &[usize],
) -> (Vec<Vec<String>>, Vec<usize>) {
    let mut got = vec![Vec::new(); batches.len()];
    let mut replayed = Vec::new();
    let mut step = Step::new(chain, None);
    let mut tracker = ResumeTracker::for_chain(chain, None).unwrap().unwrap();
    let end = batches
        .last()
        .map_or(0, |(first, r)| first + r.len() as u64);
    let (mut b, mut keep_from, mut next) = (0, 0, 0);
    while b < batches.len() {
        let (first, records) = &batches[b];
        let (out, tail) = step.batch(records);
        for emitted in &out {
            tracker.record(&emitted.value);
        }
        tracker.batch_end(*first, &tail).unwrap();
        if b >= keep_from {
            got[b] = out.into_iter().map(|e| e.text).collect();
        }
        b += 1;
        if b < keep_from {
            continue;
        }
        while next < restarts.len() && restarts[next] < b {
            next += 1;
        }
        if restarts.get(next) != Some(&b) {
            continue;
        }
        next += 1;
        let read_to = batches.get(b).map_or(end, |(first, _)| *first);
        let Some(point) = tracker.resume_point(read_to) else {
            continue;
        };
        assert!(point.from <= read_to);
        let from = batches
            .iter()
            .position(|(first, _)| *first == point.from)
            .unwrap_or(batches.len());
        replayed.push(b - from);
        step = Step::new(chain, Some(&point));
        tracker = ResumeTracker::for_chain(chain, Some(&point))
            .unwrap()
            .unwrap();
        keep_from = b;
        b = from;
    }
    (got, replayed)
}

/// The lane's output per batch with restarts before the batches in `restarts`, and without.
fn with_and_without_restarts(
    chain: &ChainReplay,
    steps: &[(u8, i64, i32, bool)],
    sizes: &[usize],
    mut restarts: Vec<usize>,
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let input = batches(&records(steps), sizes);
    restarts.sort_unstable();
    (
        run_lane(chain, &input, &restarts).0,
        run_lane(chain, &input, &[]).0,
    )
}

fn rolling(window_ms: i64) -> ChainReplay {
    ChainReplay::new(ReplayKind::Rolling { window_ms }, true, None)
}

fn bars(config: BarsConfig) -> ChainReplay {
    ChainReplay::new(ReplayKind::Bars { config }, true, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn rolling_restarts_give_the_uninterrupted_output(
        steps in prop::collection::vec(step(), 1..400),
        sizes in prop::collection::vec(1usize..12, 1..8),
        restarts in prop::collection::vec(1usize..80, 0..3),
        window_ms in prop_oneof![Just(5i64), Just(10), Just(25)],
    ) {
        let (got, expected) = with_and_without_restarts(&rolling(window_ms), &steps, &sizes, restarts);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn bars_restarts_give_the_uninterrupted_output(
        steps in prop::collection::vec(step(), 1..400),
        sizes in prop::collection::vec(1usize..12, 1..8),
        restarts in prop::collection::vec(1usize..80, 0..3),
        (size_ms, slide_ms) in prop_oneof![Just((10i64, 2i64)), Just((10, 10)), Just((12, 8)), Just((6, 4))],
        lateness_ms in prop_oneof![Just(0i64), Just(3), Just(15)],
    ) {
        let chain = bars(BarsConfig { size_ms, slide_ms, lateness_ms });
        let (got, expected) = with_and_without_restarts(&chain, &steps, &sizes, restarts);
        prop_assert_eq!(got, expected);
    }
}

/// Ticks of three busy symbols at one per ms: the restart replays the batches of at most two
/// windows of event time, however long the input before it.
#[test]
fn a_restart_replays_about_a_window_whatever_came_before() {
    let window_ms = 50;
    let input: Vec<Vec<u8>> = (0..30_000)
        .map(|i| {
            format!(
                r#"{{"symbol":"S{}","ts":{},"price":{}}}"#,
                i % 3,
                1_000 + i,
                100.0 + (i % 17) as f64
            )
            .into_bytes()
        })
        .collect();
    let input = batches(&input, &[10]);
    let config = BarsConfig {
        size_ms: 50,
        slide_ms: 10,
        lateness_ms: 5,
    };
    for chain in [rolling(window_ms), bars(config)] {
        for restart in [100, 1_000, 2_999] {
            let (got, replayed) = run_lane(&chain, &input, &[restart]);
            // 10 ticks per batch, 1 ms apart: two windows are 10 batches.
            assert!(replayed[0] <= 11, "{:?}: replayed {replayed:?}", chain.kind);
            assert_eq!(got, run_lane(&chain, &input, &[]).0);
        }
    }
}
