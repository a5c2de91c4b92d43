use proptest::prelude::*;
use stockstream_core::bars::{Bar, BarsConfig, WindowBars};
use stockstream_core::rolling::{Enrichment, RollingConfig, RollingStats};
use stockstream_core::tick::parse_tick;

use super::*;

/// Ticks as JSON records: `(symbol index, ts step, price step)` drawn so that ties, late ticks,
/// gaps longer than the window and many refills of the two stacks all happen.
fn records(steps: &[(u8, i64, i32)]) -> Vec<Vec<u8>> {
    tick_records(steps.iter().map(|&(s, dt, dp)| (s, dt, dp, false)))
}

/// `(symbol index 0..4, ts step, price step, invalid)` as JSON records: a negative ts step is
/// one late tick (the clock itself never goes back), an invalid record has a negative price.
pub(crate) fn tick_records(steps: impl IntoIterator<Item = (u8, i64, i32, bool)>) -> Vec<Vec<u8>> {
    let mut clock = 1_000i64;
    let mut price = [100.0f64; 4];
    steps
        .into_iter()
        .map(|(s, dt, dp, invalid)| {
            let s = usize::from(s % 4);
            let ts = if dt < 0 {
                clock + dt
            } else {
                clock += dt;
                clock
            };
            price[s] = (price[s] * (1.0 + f64::from(dp) / 997.0)).max(0.01);
            if invalid {
                return format!(r#"{{"symbol":"S{s}","ts":{ts},"price":-1}}"#).into_bytes();
            }
            format!(
                r#"{{"symbol":"S{s}","ts":{ts},"price":{},"volume":{}}}"#,
                price[s],
                dp.unsigned_abs() % 7
            )
            .into_bytes()
        })
        .collect()
}

fn step() -> impl Strategy<Value = (u8, i64, i32)> {
    (
        0u8..3,
        prop_oneof![
            4 => Just(0i64),
            8 => 1i64..6,
            2 => 6i64..30,
            1 => -8i64..0,
        ],
        -40i32..40,
    )
}

fn bits(e: &Enrichment) -> Vec<u64> {
    let f = |v: Option<f64>| v.map_or(u64::MAX, f64::to_bits);
    let c = |v: Option<u64>| v.unwrap_or(u64::MAX);
    vec![
        f(e.sma),
        c(e.count),
        f(e.vwap),
        f(e.prev_mean),
        f(e.prev_std),
        c(e.prev_count),
        u64::from(e.late),
    ]
}

fn rolling_after_resume(
    input: &[Vec<u8>],
    cut: usize,
    window_ms: i64,
) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    let config = RollingConfig {
        window_ms,
        ..Default::default()
    };
    let mut whole = RollingStats::new(config);
    let expected: Vec<Vec<u64>> = input
        .iter()
        .map(|r| bits(&whole.update(&parse_tick(r).unwrap())))
        .skip(cut)
        .collect();

    let mut planner = ReplayPlanner::new(vec![ChainReplay::new(
        ReplayKind::Rolling { window_ms },
        true,
        None,
    )]);
    for r in &input[..cut] {
        planner.observe(r);
    }
    let replay = planner.finish().remove(0);
    let mut resumed = RollingStats::new(config);
    for r in &replay {
        resumed.update(&parse_tick(r).unwrap());
    }
    let got = input[cut..]
        .iter()
        .map(|r| bits(&resumed.update(&parse_tick(r).unwrap())))
        .collect();
    (got, expected)
}

fn bars_after_resume(input: &[Vec<u8>], cut: usize, config: BarsConfig) -> (Vec<Bar>, Vec<Bar>) {
    let mut whole = WindowBars::new(config);
    let mut expected = Vec::new();
    for (i, r) in input.iter().enumerate() {
        let mut out = Vec::new();
        whole.push(&parse_tick(r).unwrap(), &mut out);
        if i >= cut {
            expected.extend(out);
        }
    }
    let mut planner = ReplayPlanner::new(vec![ChainReplay::new(
        ReplayKind::Bars { config },
        true,
        None,
    )]);
    for r in &input[..cut] {
        planner.observe(r);
    }
    let replay = planner.finish().remove(0);
    let mut resumed = WindowBars::new(config);
    let mut dropped = Vec::new();
    for r in &replay {
        resumed.push(&parse_tick(r).unwrap(), &mut dropped);
    }
    let mut got = Vec::new();
    for r in &input[cut..] {
        resumed.push(&parse_tick(r).unwrap(), &mut got);
    }
    (got, expected)
}

fn bar_bits(bars: &[Bar]) -> Vec<String> {
    bars.iter()
        .map(|b| {
            format!(
                "{} {} {} {:x} {:x} {:x} {:x} {} {:?} {:x} {:?} {}",
                b.symbol,
                b.window_start,
                b.window_end,
                b.open.to_bits(),
                b.high.to_bits(),
                b.low.to_bits(),
                b.close.to_bits(),
                b.volume,
                b.vwap.map(f64::to_bits),
                b.mean.to_bits(),
                b.std.map(f64::to_bits),
                b.count
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Regression guard for issue 3: a resumed rolling-stats gives the same bits as an
    /// uninterrupted one, whatever the cut point.
    #[test]
    fn rolling_resume_is_bit_exact(
        steps in prop::collection::vec(step(), 1..400),
        cut_frac in 0.0f64..1.0,
        window_ms in prop_oneof![Just(5i64), Just(10), Just(25)],
    ) {
        let input = records(&steps);
        let cut = ((input.len() as f64) * cut_frac) as usize;
        let (got, expected) = rolling_after_resume(&input, cut, window_ms);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn bars_resume_is_exact(
        steps in prop::collection::vec(step(), 1..400),
        cut_frac in 0.0f64..1.0,
        (size_ms, slide_ms) in prop_oneof![Just((10i64, 2i64)), Just((10, 10)), Just((12, 8)), Just((6, 4))],
        lateness_ms in prop_oneof![Just(0i64), Just(3), Just(15)],
    ) {
        let input = records(&steps);
        let cut = ((input.len() as f64) * cut_frac) as usize;
        let config = BarsConfig { size_ms, slide_ms, lateness_ms };
        let (got, expected) = bars_after_resume(&input, cut, config);
        prop_assert_eq!(bar_bits(&got), bar_bits(&expected));
    }
}

/// The replay stays bounded: with steady ticks it holds about two windows per symbol, not the
/// whole history.
#[test]
fn replay_is_bounded_by_the_windows() {
    let steps: Vec<(u8, i64, i32)> = (0..30_000)
        .map(|i| ((i % 3) as u8, 1, (i % 13) - 6))
        .collect();
    let input = records(&steps);
    let mut planner = ReplayPlanner::new(vec![
        ChainReplay::new(ReplayKind::Rolling { window_ms: 100 }, true, None),
        ChainReplay::new(
            ReplayKind::Bars {
                config: BarsConfig {
                    size_ms: 100,
                    slide_ms: 20,
                    lateness_ms: 0,
                },
            },
            true,
            None,
        ),
        ChainReplay::new(ReplayKind::Stateless, true, None),
    ]);
    for r in &input {
        planner.observe(r);
    }
    let sets = planner.finish();
    // One tick per ms, the symbols in turn: a 100 ms window holds about 100 records.
    assert!(
        (100..=2 * 101 + 3).contains(&sets[0].len()),
        "{}",
        sets[0].len()
    );
    assert!(
        (100..=101 + 3).contains(&sets[1].len()),
        "{}",
        sets[1].len()
    );
    assert!(sets[2].is_empty());
}

/// Replaying only the last window of ticks, the obvious choice, is not enough for bit-exact
/// statistics: the two-stack split differs. This documents why the planner mirrors the stacks.
#[test]
fn a_plain_last_window_replay_can_differ_in_the_last_bits() {
    let steps: Vec<(u8, i64, i32)> = (0..5_000)
        .map(|i| (0, 1 + (i % 3) as i64, ((i * 7919) % 61) - 30))
        .collect();
    let input = records(&steps);
    let window_ms = 50;
    let mut differs = 0;
    for cut in (100..input.len()).step_by(37) {
        let newest = parse_tick(&input[cut - 1]).unwrap().ts;
        let config = RollingConfig {
            window_ms,
            ..Default::default()
        };
        let mut whole = RollingStats::new(config);
        let expected: Vec<_> = input
            .iter()
            .map(|r| bits(&whole.update(&parse_tick(r).unwrap())))
            .skip(cut)
            .take(200)
            .collect();
        let mut naive = RollingStats::new(config);
        for r in &input[..cut] {
            let t = parse_tick(r).unwrap();
            if t.ts >= newest - window_ms {
                naive.update(&t);
            }
        }
        let got: Vec<_> = input[cut..]
            .iter()
            .take(200)
            .map(|r| bits(&naive.update(&parse_tick(r).unwrap())))
            .collect();
        if got != expected {
            differs += 1;
        }
        let (exact, expected_all) = rolling_after_resume(&input, cut, window_ms);
        assert_eq!(exact, expected_all, "cut {cut}");
    }
    assert!(
        differs > 0,
        "the naive replay happened to be exact at every cut"
    );
}
