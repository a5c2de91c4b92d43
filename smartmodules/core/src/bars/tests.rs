use super::*;
use proptest::prelude::*;

fn tick(symbol: &str, ts: i64, price: f64, volume: u64) -> Tick<'_> {
    Tick {
        symbol,
        ts,
        price,
        volume,
    }
}

fn run(config: BarsConfig, ticks: &[(&str, i64, f64, u64)]) -> (Vec<Bar>, u64) {
    let mut bars = WindowBars::new(config);
    let mut out = Vec::new();
    for &(s, ts, p, v) in ticks {
        bars.push(&tick(s, ts, p, v), &mut out);
    }
    (out, bars.late_ticks())
}

/// Spark's definitions by brute force: which windows exist, which ticks are late, what is
/// emitted by the final watermark.
fn brute_force(config: BarsConfig, ticks: &[(&str, i64, f64, u64)]) -> (Vec<Bar>, u64) {
    let mut max_ts: Option<i64> = None;
    let mut accepted = Vec::new();
    let mut late = 0;
    for (seq, &(s, ts, p, v)) in ticks.iter().enumerate() {
        if max_ts.is_some_and(|m| ts < m - config.lateness_ms) {
            late += 1;
            continue;
        }
        max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
        accepted.push((s, ts, p, v, seq));
    }
    let Some(max_ts) = max_ts else {
        return (Vec::new(), late);
    };
    let watermark = max_ts - config.lateness_ms;
    let mut keys = std::collections::BTreeSet::new();
    for &(s, ts, ..) in &accepted {
        let mut start = ts - ts.rem_euclid(config.slide_ms);
        while start + config.size_ms > ts {
            if start + config.size_ms <= watermark {
                keys.insert((start + config.size_ms, s.to_owned()));
            }
            start -= config.slide_ms;
        }
    }
    let bars = keys
        .into_iter()
        .map(|(end, symbol)| {
            let start = end - config.size_ms;
            let mut members: Vec<_> = accepted
                .iter()
                .filter(|e| e.0 == symbol && start <= e.1 && e.1 < end)
                .collect();
            members.sort_by_key(|e| (e.1, e.4));
            let prices: Vec<f64> = members.iter().map(|e| e.2).collect();
            let n = prices.len() as f64;
            let mean = prices.iter().sum::<f64>() / n;
            let volume: u64 = members.iter().map(|e| e.3).sum();
            Bar {
                symbol,
                window_start: start,
                window_end: end,
                open: prices[0],
                high: prices.iter().cloned().fold(f64::MIN, f64::max),
                low: prices.iter().cloned().fold(f64::MAX, f64::min),
                close: *prices.last().unwrap(),
                volume,
                vwap: (volume > 0)
                    .then(|| members.iter().map(|e| e.2 * e.3 as f64).sum::<f64>() / volume as f64),
                mean,
                std: (prices.len() > 1).then(|| {
                    (prices.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
                }),
                count: prices.len() as u64,
            }
        })
        .collect();
    (bars, late)
}

fn assert_bars_match(got: &[Bar], want: &[Bar]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "bars: {:?}\nwant: {:?}", got, want);
    for (g, w) in got.iter().zip(want) {
        prop_assert_eq!(
            (&g.symbol, g.window_start, g.window_end),
            (&w.symbol, w.window_start, w.window_end)
        );
        prop_assert_eq!(
            (g.open, g.high, g.low, g.close, g.volume, g.count),
            (w.open, w.high, w.low, w.close, w.volume, w.count)
        );
        prop_assert!((g.mean - w.mean).abs() <= 1e-12 * w.mean);
        match (g.std, w.std) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                prop_assert!((a - b).abs() <= 1e-9 * b.max(1e-6 * w.mean), "{} {}", a, b)
            }
            other => prop_assert!(false, "std {:?}", other),
        }
        match (g.vwap, w.vwap) {
            (None, None) => {}
            (Some(a), Some(b)) => prop_assert!((a - b).abs() <= 1e-12 * b),
            other => prop_assert!(false, "vwap {:?}", other),
        }
    }
    Ok(())
}

#[test]
fn tumbling_windows_close_on_the_watermark_only() {
    let config = BarsConfig {
        size_ms: 10,
        slide_ms: 10,
        lateness_ms: 0,
    };
    let (bars, _) = run(config, &[("A", 1, 1.0, 1), ("A", 9, 2.0, 1)]);
    assert!(bars.is_empty(), "watermark 9 has not reached the end 10");
    let (bars, _) = run(
        config,
        &[("A", 1, 1.0, 1), ("A", 9, 2.0, 1), ("A", 10, 3.0, 1)],
    );
    assert_eq!(bars.len(), 1);
    assert_eq!(
        (bars[0].window_start, bars[0].window_end, bars[0].count),
        (0, 10, 2)
    );
    assert_eq!((bars[0].open, bars[0].close), (1.0, 2.0));
}

#[test]
fn late_ticks_are_counted_and_left_out() {
    let config = BarsConfig {
        size_ms: 10,
        slide_ms: 10,
        lateness_ms: 3,
    };
    let (bars, late) = run(
        config,
        &[
            ("A", 5, 1.0, 1),
            ("A", 9, 1.0, 1),
            ("A", 6, 5.0, 1),
            ("A", 5, 9.0, 1),
            ("A", 30, 1.0, 1),
        ],
    );
    assert_eq!(late, 1, "6 >= watermark 6 is accepted, 5 < 6 is late");
    assert_eq!(bars[0].count, 3);
    assert_eq!(bars[0].high, 5.0);
}

#[test]
fn open_close_follow_event_time_then_arrival() {
    let config = BarsConfig {
        size_ms: 10,
        slide_ms: 10,
        lateness_ms: 5,
    };
    let (bars, _) = run(
        config,
        &[
            ("A", 4, 2.0, 1),
            ("A", 3, 1.0, 1),
            ("A", 3, 1.5, 1),
            ("A", 7, 3.0, 1),
            ("A", 7, 4.0, 1),
            ("A", 20, 0.5, 0),
        ],
    );
    assert_eq!((bars[0].open, bars[0].close), (1.0, 4.0));
}

#[test]
fn parameters_are_checked() {
    let get = |pairs: &'static [(&'static str, &'static str)]| {
        move |n: &str| pairs.iter().find(|p| p.0 == n).map(|p| p.1)
    };
    assert_eq!(
        BarsConfig::from_params(get(&[])).unwrap(),
        BarsConfig::default()
    );
    let c = BarsConfig::from_params(get(&[
        ("size", "60s"),
        ("slide", "20s"),
        ("lateness", "5s"),
    ]))
    .unwrap();
    assert_eq!(
        (c.size_ms, c.slide_ms, c.lateness_ms),
        (60_000, 20_000, 5_000)
    );
    assert_eq!(
        BarsConfig::from_params(get(&[("slide", "10m")]))
            .unwrap_err()
            .param,
        "slide"
    );
    assert_eq!(
        BarsConfig::from_params(get(&[("size", "0s")]))
            .unwrap_err()
            .param,
        "size"
    );
    assert_eq!(
        BarsConfig::from_params(get(&[("lateness", "x")]))
            .unwrap_err()
            .param,
        "lateness"
    );
}

/// Found by fuzzing: a size of millions of years with the default slide of a minute put each
/// tick in trillions of windows, and two ticks far apart emitted bars until memory ran out.
#[test]
fn a_tick_may_be_in_at_most_a_week_of_one_minute_windows() {
    let get = |pairs: &'static [(&'static str, &'static str)]| {
        move |n: &str| pairs.iter().find(|p| p.0 == n).map(|p| p.1)
    };
    let error = BarsConfig::from_params(get(&[("size", "84006d")])).unwrap_err();
    assert_eq!(error.param, "slide");
    assert!(error.to_string().contains("10,080"), "{error}");
    let week = BarsConfig::from_params(get(&[("size", "7d"), ("slide", "1m")])).unwrap();
    assert_eq!(week.size_ms / week.slide_ms, MAX_WINDOWS_PER_TICK);
    assert!(BarsConfig::from_params(get(&[("size", "7d"), ("slide", "59s")])).is_err());
}

#[test]
fn state_stays_bounded_over_a_long_stream() {
    let mut bars = WindowBars::new(BarsConfig::default());
    let mut out = Vec::new();
    for i in 0..100_000i64 {
        bars.push(
            &tick(
                if i % 2 == 0 { "A" } else { "B" },
                1_000_000 + i * 1_000,
                10.0,
                1,
            ),
            &mut out,
        );
        assert!(bars.open_panes() <= 6);
    }
    assert!(out.len() > 3_000);
}

fn ticks_strategy() -> impl Strategy<Value = Vec<(&'static str, i64, f64, u64)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["A", "B", "C"]),
            -4i64..6,
            1u32..50,
            0u64..4,
        ),
        1..150,
    )
    .prop_map(|steps| {
        let mut t = 10_000i64;
        steps
            .into_iter()
            .map(|(s, step, cents, v)| {
                t += step.max(0) * 7;
                let ts = if step < 0 { t + step * 9 } else { t };
                (s, ts, f64::from(cents) * 0.5, v)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn matches_spark_definitions(
        ticks in ticks_strategy(),
        (size, slide) in prop::sample::select(vec![(60, 20), (60, 60), (50, 20), (30, 7)]),
        lateness in prop::sample::select(vec![0i64, 10, 25]),
    ) {
        let config = BarsConfig { size_ms: size, slide_ms: slide, lateness_ms: lateness };
        let (got, got_late) = run(config, &ticks);
        let (want, want_late) = brute_force(config, &ticks);
        prop_assert_eq!(got_late, want_late);
        assert_bars_match(&got, &want)?;
    }

    #[test]
    fn reordering_within_lateness_changes_nothing(
        ticks in ticks_strategy(),
        swaps in prop::collection::vec(0usize..150, 0..20),
    ) {
        // Swapping neighbours whose timestamps differ by less than the lateness keeps every tick
        // above the watermark, so the windows' contents (not open/close ties) are the same.
        let config = BarsConfig { size_ms: 60, slide_ms: 20, lateness_ms: 1_000 };
        let mut in_order = ticks.clone();
        in_order.sort_by_key(|t| t.1);
        let mut shuffled = in_order.clone();
        for i in swaps {
            if i + 1 < shuffled.len() {
                shuffled.swap(i, i + 1);
            }
        }
        let (a, late_a) = run(config, &in_order);
        let (b, late_b) = run(config, &shuffled);
        prop_assert_eq!((late_a, late_b), (0, 0));
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!((&x.symbol, x.window_end, x.count, x.volume, x.high, x.low), (&y.symbol, y.window_end, y.count, y.volume, y.high, y.low));
        }
    }
}
