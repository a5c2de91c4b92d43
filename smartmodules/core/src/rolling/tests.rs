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

/// The spec's definitions, evaluated by brute force over the arrival-ordered history.
fn brute_force(history: &[(i64, f64, u64)], window_ms: i64) -> Vec<Enrichment> {
    let mut out = Vec::new();
    let mut accepted: Vec<(i64, f64, u64)> = Vec::new();
    for &(t, p, v) in history {
        if accepted.last().is_some_and(|last| t < last.0) {
            out.push(Enrichment {
                late: true,
                ..Enrichment::default()
            });
            continue;
        }
        accepted.push((t, p, v));
        let sma: Vec<_> = accepted
            .iter()
            .filter(|e| t - window_ms < e.0 && e.0 <= t)
            .collect();
        let prev: Vec<f64> = accepted[..accepted.len() - 1]
            .iter()
            .filter(|e| t - window_ms <= e.0 && e.0 < t)
            .map(|e| e.1)
            .collect();
        let n = sma.len() as f64;
        let volume: u64 = sma.iter().map(|e| e.2).sum();
        let prev_mean = (!prev.is_empty()).then(|| prev.iter().sum::<f64>() / prev.len() as f64);
        let prev_std = (prev.len() >= 2).then(|| {
            let m = prev_mean.unwrap();
            (prev.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (prev.len() - 1) as f64).sqrt()
        });
        out.push(Enrichment {
            sma: Some(sma.iter().map(|e| e.1).sum::<f64>() / n),
            count: Some(sma.len() as u64),
            vwap: (volume > 0)
                .then(|| sma.iter().map(|e| e.1 * e.2 as f64).sum::<f64>() / volume as f64),
            prev_mean,
            prev_std,
            prev_count: Some(prev.len() as u64),
            returns: None,
            late: false,
        });
    }
    out
}

fn close(a: Option<f64>, b: Option<f64>, rel: f64, floor: f64) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= rel * b.abs().max(floor),
        _ => false,
    }
}

#[test]
fn boundary_tick_is_in_the_previous_window_but_not_the_sma_window() {
    let mut stats = RollingStats::new(RollingConfig {
        window_ms: 60_000,
        ..Default::default()
    });
    stats.update(&tick("A", 1_000, 10.0, 1));
    let e = stats.update(&tick("A", 61_000, 20.0, 1));
    assert_eq!(e.count, Some(1), "t - W is outside (t-W, t]");
    assert_eq!(e.sma, Some(20.0));
    assert_eq!(e.prev_count, Some(1), "t - W is inside [t-W, t)");
    assert_eq!(e.prev_mean, Some(10.0));
}

#[test]
fn ties_share_the_previous_window_and_grow_the_sma_window() {
    let mut stats = RollingStats::new(RollingConfig::default());
    stats.update(&tick("A", 1, 10.0, 1));
    let first = stats.update(&tick("A", 2, 20.0, 1));
    let second = stats.update(&tick("A", 2, 30.0, 1));
    assert_eq!(first.prev_count, second.prev_count);
    assert_eq!(second.prev_mean, Some(10.0));
    assert_eq!((first.count, second.count), (Some(2), Some(3)));
}

#[test]
fn out_of_order_tick_is_late_and_leaves_state_alone() {
    let mut stats = RollingStats::new(RollingConfig::default());
    stats.update(&tick("A", 10, 1.0, 1));
    assert!(stats.update(&tick("A", 9, 100.0, 1)).late);
    let next = stats.update(&tick("A", 11, 1.0, 1));
    assert_eq!(next.sma, Some(1.0));
    assert!(
        !stats.update(&tick("B", 1, 1.0, 1)).late,
        "lateness is per symbol"
    );
}

#[test]
fn constant_prices_give_exactly_zero_std_near_1e4() {
    let mut stats = RollingStats::new(RollingConfig::default());
    let mut last = Enrichment::default();
    for i in 0..500 {
        last = stats.update(&tick("A", 1_000 + i * 997, 10_000.37, 3));
    }
    assert_eq!(last.prev_std, Some(0.0));
}

#[test]
fn window_parameter() {
    let get = |v: &'static str| move |name: &str| (name == "window").then_some(v);
    assert_eq!(
        RollingConfig::from_params(get("60s")).unwrap().window_ms,
        60_000
    );
    assert_eq!(
        RollingConfig::from_params(|_| None).unwrap().window_ms,
        300_000
    );
    assert_eq!(
        RollingConfig::from_params(get("0s")).unwrap_err().param,
        "window"
    );
    assert_eq!(
        RollingConfig::from_params(get("five")).unwrap_err().param,
        "window"
    );
}

#[test]
fn long_stable_stream_near_1e4_stays_accurate() {
    // 200k ticks of a slowly drifting price around 1e4 moving by cents: no drift of error.
    let window_ms = 5_000;
    let mut stats = RollingStats::new(RollingConfig {
        window_ms,
        ..Default::default()
    });
    let mut history = std::collections::VecDeque::new();
    let mut state: u64 = 42;
    for i in 0..200_000i64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cents = ((state >> 33) % 7) as f64 - 3.0;
        let price = 10_000.0 + (i / 10_000) as f64 + cents * 0.01;
        let ts = 1_000_000 + i * 7 / 3;
        let e = stats.update(&tick("ES", ts, price, 1));
        while history.front().is_some_and(|(t, _)| *t < ts - window_ms) {
            history.pop_front();
        }
        if i % 997 == 0 && history.len() > 2 {
            let prev: Vec<f64> = history
                .iter()
                .filter(|(t, _)| *t < ts)
                .map(|e| e.1)
                .collect();
            let m = prev.iter().sum::<f64>() / prev.len() as f64;
            let s = (prev.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (prev.len() - 1) as f64)
                .sqrt();
            assert!(
                close(e.prev_mean, Some(m), 1e-12, 0.0),
                "{i}: {:?} vs {m}",
                e.prev_mean
            );
            assert!(
                close(e.prev_std, Some(s), 1e-9, 1e-6 * m),
                "{i}: {:?} vs {s}",
                e.prev_std
            );
        }
        history.push_back((ts, price));
    }
}

fn history_strategy() -> impl Strategy<Value = Vec<(i64, f64, u64)>> {
    // Few distinct timestamps on a coarse grid make ties and exact t - W boundaries common;
    // a random step back now and then makes late ticks.
    prop::collection::vec((-1i64..4, 1u32..40, 0u64..5), 1..120).prop_map(|steps| {
        let mut t = 1_000i64;
        steps
            .into_iter()
            .map(|(step, cents, volume)| {
                t += step.max(0) * 500;
                let ts = if step < 0 { t - 700 } else { t };
                (ts, 100.0 + f64::from(cents) * 0.25, volume)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn matches_brute_force(history in history_strategy()) {
        let window_ms = 2_000;
        let mut stats = RollingStats::new(RollingConfig { window_ms, ..Default::default() });
        let expected = brute_force(&history, window_ms);
        for (i, &(ts, price, volume)) in history.iter().enumerate() {
            let got = stats.update(&tick("S", ts, price, volume));
            let want = expected[i];
            prop_assert_eq!(got.late, want.late, "tick {}", i);
            prop_assert_eq!(got.count, want.count, "tick {}", i);
            prop_assert_eq!(got.prev_count, want.prev_count, "tick {}", i);
            prop_assert!(close(got.sma, want.sma, 1e-12, 0.0), "sma {} {:?} {:?}", i, got, want);
            prop_assert!(close(got.vwap, want.vwap, 1e-12, 0.0), "vwap {} {:?} {:?}", i, got, want);
            prop_assert!(close(got.prev_mean, want.prev_mean, 1e-12, 0.0), "prev_mean {}", i);
            prop_assert!(close(got.prev_std, want.prev_std, 1e-9, 1e-4), "prev_std {} {:?} {:?}", i, got, want);
        }
    }

    #[test]
    fn interleaving_other_symbols_changes_nothing(history in history_strategy(), other in history_strategy()) {
        let window_ms = 2_000;
        let mut alone = RollingStats::new(RollingConfig { window_ms, ..Default::default() });
        let mut mixed = RollingStats::new(RollingConfig { window_ms, ..Default::default() });
        let mut others = other.iter();
        for &(ts, price, volume) in &history {
            if let Some(&(ots, oprice, ovolume)) = others.next() {
                mixed.update(&tick("OTHER", ots, oprice, ovolume));
            }
            prop_assert_eq!(
                alone.update(&tick("S", ts, price, volume)),
                mixed.update(&tick("S", ts, price, volume))
            );
        }
    }
}

proptest! {
    /// A restart that replays only from `replay_from` rebuilds the state bit for bit: every
    /// statistic after the cut equals the uninterrupted run's exactly (not just within 1e-9).
    #[test]
    fn replay_from_rebuilds_the_state_bit_for_bit(history in history_strategy(), cut in 0usize..120) {
        let window_ms = 2_000;
        let cut = cut.min(history.len());
        let mut original = RollingStats::new(RollingConfig { window_ms, ..Default::default() });
        let mut accepted = Vec::new();
        for &(ts, price, volume) in &history[..cut] {
            if !original.update(&tick("S", ts, price, volume)).late {
                accepted.push((ts, price, volume));
            }
        }
        let mut restarted = RollingStats::new(RollingConfig { window_ms, ..Default::default() });
        if let Some(from) = original.replay_from("S") {
            for &(ts, price, volume) in accepted.iter().filter(|t| t.0 >= from) {
                restarted.update(&tick("S", ts, price, volume));
            }
        }
        for &(ts, price, volume) in &history[cut..] {
            let t = tick("S", ts, price, volume);
            prop_assert_eq!(original.update(&t), restarted.update(&t));
        }
    }
}

proptest! {
    /// The fused enrich module writes in one pass what rolling-stats then zscore-anomaly write.
    #[test]
    fn scored_in_one_pass_equals_enriched_then_scored(
        sma in proptest::option::of(-1e9f64..1e9),
        count in proptest::option::of(0u64..100_000),
        prev_mean in proptest::option::of(-1e9f64..1e9),
        prev_std in proptest::option::of(0f64..1e6),
        prev_count in proptest::option::of(0u64..100_000),
        late in any::<bool>(),
        z in proptest::option::of(-100f64..100.0),
        anomaly in any::<bool>(),
    ) {
        let enrichment = Enrichment { sma, count, vwap: sma, prev_mean, prev_std, prev_count, late, ..Default::default() };
        let record = br#"{"symbol":"ES","ts":1,"price":2.5,"volume":3}"#;
        let mut enriched = Vec::new();
        prop_assert!(enrichment.write_onto(record, &mut enriched));
        let mut two_steps = Vec::new();
        prop_assert!(crate::zscore::write_scored(&enriched, z, anomaly, &mut two_steps));
        let mut one_pass = Vec::new();
        prop_assert!(enrichment.write_scored_onto(record, z, anomaly, &mut one_pass));
        prop_assert_eq!(one_pass, two_steps);
    }
}

/// The return rule (spec: "Z-score on returns") by brute force: each accepted tick's log
/// return, then two-pass moments over the previous window's returns.
fn brute_force_returns(history: &[(i64, f64, u64)], window_ms: i64) -> Vec<ReturnStats> {
    let mut out = Vec::new();
    let mut accepted: Vec<(i64, Option<f64>)> = Vec::new();
    let mut last_price: Option<f64> = None;
    for &(t, p, _) in history {
        if accepted.last().is_some_and(|last| t < last.0) {
            out.push(ReturnStats::default());
            continue;
        }
        let ret = last_price.map(|last| p.ln() - last.ln());
        last_price = Some(p);
        let prev: Vec<f64> = accepted
            .iter()
            .filter(|e| t - window_ms <= e.0 && e.0 < t)
            .filter_map(|e| e.1)
            .collect();
        accepted.push((t, ret));
        let n = prev.len();
        let mean = (n > 0).then(|| prev.iter().sum::<f64>() / n as f64);
        let std = (n >= 2).then(|| {
            let m = mean.unwrap();
            (prev.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        out.push(ReturnStats {
            ret,
            prev_mean: mean,
            prev_std: std,
            prev_count: Some(n as u64),
        });
    }
    out
}

fn returns_config(window_ms: i64) -> RollingConfig {
    RollingConfig {
        window_ms,
        basis: Basis::Return,
    }
}

#[test]
fn returns_follow_the_previous_non_late_tick() {
    let mut stats = RollingStats::new(returns_config(60_000));
    let first = stats.update(&tick("S", 1_000, 100.0, 1));
    assert_eq!(
        first.returns,
        Some(ReturnStats {
            ret: None,
            prev_mean: None,
            prev_std: None,
            prev_count: Some(0)
        })
    );
    let second = stats.update(&tick("S", 2_000, 110.0, 1)).returns.unwrap();
    assert!((second.ret.unwrap() - (1.1f64).ln()).abs() < 1e-15);
    // The first tick's null return is not counted.
    assert_eq!(second.prev_count, Some(0));
    // A late tick has null statistics and is not the base of the next return.
    let late = stats.update(&tick("S", 1_500, 50.0, 1));
    assert!(late.late);
    assert_eq!(late.returns, Some(ReturnStats::default()));
    // Same timestamp: its return is against the previous tick, and it sees the same window.
    let tie = stats.update(&tick("S", 2_000, 121.0, 1)).returns.unwrap();
    assert!((tie.ret.unwrap() - (1.1f64).ln()).abs() < 1e-15);
    assert_eq!(tie.prev_count, Some(0));
    let next = stats.update(&tick("S", 3_000, 121.0, 1)).returns.unwrap();
    assert_eq!(next.ret, Some(0.0));
    assert_eq!(next.prev_count, Some(2));
    assert!((next.prev_mean.unwrap() - (1.1f64).ln()).abs() < 1e-15);
    assert_eq!(next.prev_std, Some(0.0));
}

#[test]
fn price_basis_writes_no_return_fields() {
    let mut stats = RollingStats::new(RollingConfig::default());
    let enrichment = stats.update(&tick("S", 1_000, 100.0, 1));
    assert_eq!(enrichment.returns, None);
    let mut out = Vec::new();
    assert!(enrichment.write_onto(br#"{"symbol":"S"}"#, &mut out));
    assert!(!String::from_utf8(out).unwrap().contains("ret"));
}

#[test]
fn return_basis_writes_the_return_fields_before_late() {
    let mut stats = RollingStats::new(returns_config(60_000));
    stats.update(&tick("S", 1_000, 100.0, 1));
    let enrichment = stats.update(&tick("S", 2_000, 100.0, 1));
    let mut out = Vec::new();
    assert!(enrichment.write_onto(br#"{"symbol":"S"}"#, &mut out));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"symbol":"S","sma":100.0,"count":2,"vwap":100.0,"prev_mean":100.0,"prev_std":null,"prev_count":1,"ret":0.0,"ret_prev_mean":null,"ret_prev_std":null,"ret_prev_count":0,"late":false}"#
    );
}

#[test]
fn basis_parameter() {
    let param = |value: &'static str| move |name: &str| (name == "basis").then_some(value);
    assert_eq!(
        RollingConfig::from_params(param("return")).unwrap().basis,
        Basis::Return
    );
    assert_eq!(
        RollingConfig::from_params(param("price")).unwrap().basis,
        Basis::Price
    );
    assert_eq!(
        RollingConfig::from_params(|_| None).unwrap().basis,
        Basis::Price
    );
    let err = RollingConfig::from_params(param("log")).unwrap_err();
    assert!(err.to_string().contains("basis"), "{err}");
}

proptest! {
    #[test]
    fn returns_match_brute_force(history in history_strategy()) {
        let window_ms = 2_000;
        let mut stats = RollingStats::new(returns_config(window_ms));
        let mut prices = RollingStats::new(RollingConfig { window_ms, ..Default::default() });
        let expected = brute_force_returns(&history, window_ms);
        for (i, &(ts, price, volume)) in history.iter().enumerate() {
            let got = stats.update(&tick("S", ts, price, volume));
            // The price statistics are those of basis=price, bit for bit.
            let price_only = prices.update(&tick("S", ts, price, volume));
            prop_assert_eq!(Enrichment { returns: None, ..got }, price_only);
            let got = got.returns.unwrap();
            let want = expected[i];
            prop_assert_eq!(got.prev_count, want.prev_count, "tick {}", i);
            prop_assert!(close(got.ret, want.ret, 1e-12, 1.0), "ret {} {:?} {:?}", i, got, want);
            prop_assert!(close(got.prev_mean, want.prev_mean, 1e-12, 1.0), "mean {} {:?} {:?}", i, got, want);
            prop_assert!(close(got.prev_std, want.prev_std, 1e-9, 1e-9), "std {} {:?} {:?}", i, got, want);
        }
    }

    #[test]
    fn returns_do_not_depend_on_other_symbols(history in history_strategy(), other in history_strategy()) {
        let mut alone = RollingStats::new(returns_config(2_000));
        let mut mixed = RollingStats::new(returns_config(2_000));
        let mut others = other.iter();
        for &(ts, price, volume) in &history {
            if let Some(&(ots, oprice, ovolume)) = others.next() {
                mixed.update(&tick("OTHER", ots, oprice, ovolume));
            }
            prop_assert_eq!(
                alone.update(&tick("S", ts, price, volume)),
                mixed.update(&tick("S", ts, price, volume))
            );
        }
    }
}
