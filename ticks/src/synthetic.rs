//! Synthetic ticks: geometric Brownian motion for N symbols, with injected anomalies whose
//! ground truth is kept apart from the ticks.
//!
//! Everything comes from one seeded ChaCha8 stream, drawn in a fixed order, so the same
//! [`SyntheticConfig`] gives the same ticks, byte for byte, on every run.
//!
//! - Event time starts at `start_ms` and advances by `1/rate` seconds per tick, times a jitter
//!   factor uniform in `[1 - jitter, 1 + jitter]`; `ts` is that clock truncated to the
//!   millisecond (several ticks may share one at high rates).
//! - Each tick belongs to a symbol drawn uniformly; each symbol has a start price and an
//!   annualised volatility drawn uniformly from `price_range` and `volatility_range`.
//! - A symbol's first tick is at its start price. After that its log price moves by
//!   `(drift - vol²/2) dt + vol sqrt(dt) Z` with `dt` the event time since its previous tick in
//!   years of trading time ([`TRADING_YEAR_SECONDS`]), so the per-tick sigma
//!   `vol sqrt(dt)` follows from the rate. Prices are written with 4 decimals.
//! - Volumes are log-normal around `median_volume`, at least 1.
//! - Anomalies: once a symbol has `warmup_ticks` ticks, each further tick is, with probability
//!   `anomaly_rate`, a one-tick spike: its written price is the path price times
//!   `exp(±k sigma)` (`k` = `anomaly_sigma`, sign drawn, `sigma` the tick's own per-tick
//!   sigma). The path itself is not moved: the next tick continues from the unjumped price. The
//!   ground truth of each spike is an [`Anomaly`], never part of the tick record.

use std::sync::Arc;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stockstream_core::json::{write_f64, write_int};

use crate::input::write_tick_record;

/// Seconds in a year of trading time (252 sessions of 6.5 hours): the synthetic clock runs as
/// if the market were always in session, so intraday moves have a realistic size.
pub const TRADING_YEAR_SECONDS: f64 = 252.0 * 6.5 * 3600.0;

/// The symbols when none are named.
pub const DEFAULT_SYMBOLS: [&str; 5] = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA"];

/// Names for `--count N` beyond the defaults; past these, `SYM0021`, `SYM0022`, ...
const MORE_SYMBOLS: [&str; 15] = [
    "META", "TSLA", "JPM", "V", "WMT", "XOM", "JNJ", "PG", "MA", "HD", "KO", "PEP", "ORCL", "INTC",
    "IBM",
];

/// Decimals of written prices.
const PRICE_SCALE: f64 = 1e4;

/// `count` symbol names: the defaults, then other large caps, then `SYM0021`...
pub fn symbols_for_count(count: usize) -> Vec<String> {
    DEFAULT_SYMBOLS
        .iter()
        .chain(MORE_SYMBOLS.iter())
        .map(|s| (*s).to_owned())
        .chain((DEFAULT_SYMBOLS.len() + MORE_SYMBOLS.len() + 1..).map(|i| format!("SYM{i:04}")))
        .take(count)
        .collect()
}

/// What to generate. `Default` gives the five default symbols at 10 ticks/s.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Symbols, in order (each must be a valid tick symbol).
    pub symbols: Vec<String>,
    /// Ticks per second of event time, all symbols together.
    pub rate: f64,
    /// Seed of the random stream: same seed and settings, same ticks.
    pub seed: u64,
    /// Event time of the first tick, ms since the epoch.
    pub start_ms: i64,
    /// Relative spread of the gaps between ticks, in [0, 1).
    pub jitter: f64,
    /// Probability that a tick (past the warm-up) is an injected anomaly.
    pub anomaly_rate: f64,
    /// Size of an injected jump, in per-tick sigmas of the log return.
    pub anomaly_sigma: f64,
    /// Ticks a symbol has before anomalies are injected into it (a detector needs history).
    pub warmup_ticks: u64,
    /// Start prices are drawn uniformly from this range.
    pub price_range: (f64, f64),
    /// Annualised volatilities are drawn uniformly from this range.
    pub volatility_range: (f64, f64),
    /// Annualised drift of the log price (before the -vol²/2 correction).
    pub drift: f64,
    /// Median volume of a tick.
    pub median_volume: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            symbols: DEFAULT_SYMBOLS.iter().map(|s| (*s).to_owned()).collect(),
            rate: 10.0,
            seed: 42,
            // 2026-01-02T14:30:00Z.
            start_ms: 1_767_364_200_000,
            jitter: 0.5,
            anomaly_rate: 0.005,
            anomaly_sigma: 100.0,
            warmup_ticks: 100,
            price_range: (100.0, 500.0),
            volatility_range: (0.2, 0.4),
            drift: 0.0,
            median_volume: 100.0,
        }
    }
}

impl SyntheticConfig {
    /// Every problem with the settings, at once.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if self.symbols.is_empty() {
            errors.push("at least one symbol is needed".to_owned());
        }
        for s in &self.symbols {
            if let Err(e) = stockstream_core::tick::check_symbol(s) {
                errors.push(format!("symbol {s:?}: {e}"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.symbols {
            if !seen.insert(s) {
                errors.push(format!("symbol {s:?} is named twice"));
            }
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            errors.push(format!("rate must be > 0 ticks/s, got {}", self.rate));
        }
        if self.start_ms <= 0 || self.start_ms >= stockstream_core::tick::MAX_TS {
            errors.push(format!(
                "start must be after 1970-01-01 and before 2200-01-01 (epoch milliseconds), got {} ms",
                self.start_ms
            ));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            errors.push(format!("jitter must be in [0, 1), got {}", self.jitter));
        }
        if !(0.0..=1.0).contains(&self.anomaly_rate) {
            errors.push(format!(
                "anomaly rate is a probability per tick in [0, 1], got {}",
                self.anomaly_rate
            ));
        }
        if !(self.anomaly_sigma.is_finite() && self.anomaly_sigma > 0.0) {
            errors.push(format!(
                "anomaly sigma must be > 0, got {}",
                self.anomaly_sigma
            ));
        }
        let (lo, hi) = self.price_range;
        if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi) {
            errors.push(format!(
                "price range must be 0 < low <= high, got {lo}..{hi}"
            ));
        }
        let (lo, hi) = self.volatility_range;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            errors.push(format!(
                "volatility range must be 0 <= low <= high, got {lo}..{hi}"
            ));
        }
        if !(self.median_volume.is_finite() && self.median_volume >= 1.0) {
            errors.push(format!(
                "median volume must be >= 1, got {}",
                self.median_volume
            ));
        }
        if !self.drift.is_finite() {
            errors.push("drift must be finite".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// The ground truth of one injected anomaly (a line of the truth file).
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub symbol: Arc<str>,
    /// Event time of the spiked tick.
    pub ts: i64,
    /// The spiked tick's sequence number ([`SyntheticTick::seq`]).
    pub seq: u64,
    /// The price written in the tick.
    pub price: f64,
    /// The path price the tick would have had without the jump (4 decimals).
    pub base_price: f64,
    /// `price - base_price`.
    pub jump: f64,
    /// The jump in per-tick sigmas of the log return, signed (`±anomaly_sigma`).
    pub k: f64,
    /// The tick's per-tick sigma of the log return, `vol * sqrt(dt)`.
    pub sigma: f64,
}

impl Anomaly {
    /// One JSON object:
    /// `{"symbol":..,"ts":..,"seq":..,"price":..,"base_price":..,"jump":..,"k":..,"sigma":..}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"{\"symbol\":\"");
        out.extend_from_slice(self.symbol.as_bytes());
        out.extend_from_slice(b"\",\"ts\":");
        write_int(&mut out, self.ts);
        out.extend_from_slice(b",\"seq\":");
        write_int(&mut out, self.seq);
        for (name, value) in [
            (&b",\"price\":"[..], self.price),
            (b",\"base_price\":", self.base_price),
            (b",\"jump\":", self.jump),
            (b",\"k\":", self.k),
            (b",\"sigma\":", self.sigma),
        ] {
            out.extend_from_slice(name);
            write_f64(&mut out, value);
        }
        out.push(b'}');
        out
    }
}

/// One generated tick.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticTick {
    /// Position in the generated stream, from 1 (the tick's line in a JSON-lines output).
    pub seq: u64,
    pub symbol: Arc<str>,
    pub ts: i64,
    pub price: f64,
    pub volume: u64,
    /// Set when this tick is an injected anomaly.
    pub anomaly: Option<Anomaly>,
}

impl SyntheticTick {
    /// The tick record, `{"symbol":..,"ts":..,"price":..,"volume":..}`: no trace of the anomaly.
    pub fn record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        write_tick_record(
            &mut out,
            &self.symbol,
            self.ts,
            self.price,
            Some(self.volume as i64),
        );
        out
    }
}

struct SymbolState {
    name: Arc<str>,
    log_price: f64,
    volatility: f64,
    /// Event time (ms, unrounded) of the symbol's previous tick; `None` before its first.
    last_ms: Option<f64>,
    ticks: u64,
}

/// The generator: an endless iterator of ticks (stop it with `take` or on event time).
pub struct Synthetic {
    config: SyntheticConfig,
    rng: ChaCha8Rng,
    symbols: Vec<SymbolState>,
    /// Event time since `start_ms`, in ms, unrounded.
    clock_ms: f64,
    seq: u64,
}

impl Synthetic {
    pub fn new(config: SyntheticConfig) -> Result<Self, String> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let symbols = config
            .symbols
            .iter()
            .map(|name| {
                let (p0, p1) = config.price_range;
                let (v0, v1) = config.volatility_range;
                let price = p0 + (p1 - p0) * uniform(&mut rng);
                let volatility = v0 + (v1 - v0) * uniform(&mut rng);
                SymbolState {
                    name: Arc::from(name.as_str()),
                    log_price: price.ln(),
                    volatility,
                    last_ms: None,
                    ticks: 0,
                }
            })
            .collect();
        Ok(Self {
            config,
            rng,
            symbols,
            clock_ms: 0.0,
            seq: 0,
        })
    }

    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// Each symbol's annualised volatility, in the order of the config.
    pub fn volatilities(&self) -> Vec<(Arc<str>, f64)> {
        self.symbols
            .iter()
            .map(|s| (s.name.clone(), s.volatility))
            .collect()
    }
}

/// Uniform in [0, 1) from the top 53 bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Two independent standard normals (Box-Muller), from exactly two uniforms.
fn normals(rng: &mut ChaCha8Rng) -> (f64, f64) {
    let u1 = 1.0 - uniform(rng); // (0, 1]: ln is finite
    let u2 = uniform(rng);
    let r = (-2.0 * u1.ln()).sqrt();
    let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
    (r * cos, r * sin)
}

fn round_price(price: f64) -> f64 {
    ((price * PRICE_SCALE).round() / PRICE_SCALE).max(1.0 / PRICE_SCALE)
}

impl Iterator for Synthetic {
    type Item = SyntheticTick;

    fn next(&mut self) -> Option<SyntheticTick> {
        // Six draws per tick, always, in this order: the stream stays aligned whatever the
        // anomaly settings, so the same seed gives the same price paths with or without spikes.
        let pick = uniform(&mut self.rng);
        let (z_price, z_volume) = normals(&mut self.rng);
        let anomaly_draw = uniform(&mut self.rng);
        let sign_draw = uniform(&mut self.rng);
        let gap_draw = uniform(&mut self.rng);

        let config = &self.config;
        let index = ((pick * self.symbols.len() as f64) as usize).min(self.symbols.len() - 1);
        let now_ms = self.clock_ms;
        let state = &mut self.symbols[index];
        let sigma = match state.last_ms {
            None => 0.0,
            Some(last) => {
                let dt_years = (now_ms - last) / 1000.0 / TRADING_YEAR_SECONDS;
                let sigma = state.volatility * dt_years.sqrt();
                state.log_price += (config.drift - 0.5 * state.volatility * state.volatility)
                    * dt_years
                    + sigma * z_price;
                sigma
            }
        };
        state.last_ms = Some(now_ms);
        state.ticks += 1;
        self.seq += 1;
        let ts = config.start_ms.saturating_add(now_ms.floor() as i64);
        let base_price = round_price(state.log_price.exp());
        let volume = (config.median_volume * (0.8 * z_volume).exp())
            .round()
            .max(1.0) as u64;
        let anomaly = (state.ticks > config.warmup_ticks
            && sigma > 0.0
            && anomaly_draw < config.anomaly_rate)
            .then(|| {
                let k = if sign_draw < 0.5 {
                    -config.anomaly_sigma
                } else {
                    config.anomaly_sigma
                };
                let price = round_price(state.log_price.exp() * (k * sigma).exp());
                Anomaly {
                    symbol: state.name.clone(),
                    ts,
                    seq: self.seq,
                    price,
                    base_price,
                    jump: price - base_price,
                    k,
                    sigma,
                }
            });
        let tick = SyntheticTick {
            seq: self.seq,
            symbol: state.name.clone(),
            ts,
            price: anomaly.as_ref().map_or(base_price, |a| a.price),
            volume,
            anomaly,
        };
        let mean_gap_ms = 1000.0 / config.rate;
        self.clock_ms += mean_gap_ms * (1.0 + config.jitter * (2.0 * gap_draw - 1.0));
        Some(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(config: SyntheticConfig, n: usize) -> Vec<SyntheticTick> {
        Synthetic::new(config).unwrap().take(n).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_ticks() {
        let a = generate(SyntheticConfig::default(), 2000);
        let b = generate(SyntheticConfig::default(), 2000);
        assert_eq!(a, b);
        let c = generate(
            SyntheticConfig {
                seed: 43,
                ..SyntheticConfig::default()
            },
            2000,
        );
        assert_ne!(a, c);
    }

    #[test]
    fn anomalies_do_not_move_the_paths() {
        let quiet = generate(
            SyntheticConfig {
                anomaly_rate: 0.0,
                ..SyntheticConfig::default()
            },
            5000,
        );
        let spiky = generate(
            SyntheticConfig {
                anomaly_rate: 0.05,
                ..SyntheticConfig::default()
            },
            5000,
        );
        let mut spikes = 0;
        for (q, s) in quiet.iter().zip(&spiky) {
            assert_eq!(
                (q.seq, &q.symbol, q.ts, q.volume),
                (s.seq, &s.symbol, s.ts, s.volume)
            );
            match &s.anomaly {
                None => assert_eq!(q.price, s.price),
                Some(a) => {
                    spikes += 1;
                    assert_eq!(a.base_price, q.price);
                    assert_eq!(a.price, s.price);
                    assert_eq!(a.seq, s.seq);
                    let k = (a.price / a.base_price).ln() / a.sigma;
                    assert!((k - a.k).abs() < 0.05 * a.k.abs(), "{a:?}");
                }
            }
        }
        assert!((150..350).contains(&spikes), "{spikes}");
    }

    #[test]
    fn timestamps_advance_at_the_rate() {
        let config = SyntheticConfig {
            rate: 50.0,
            ..SyntheticConfig::default()
        };
        let ticks = generate(config.clone(), 5001);
        assert_eq!(ticks[0].ts, config.start_ms);
        let span = ticks[5000].ts - ticks[0].ts;
        // 5000 gaps of 20 ms on average, jitter ±50% uniform: sd of the sum ~ 408 ms.
        assert!((span - 100_000).abs() < 2_000, "{span}");
        assert!(ticks.windows(2).all(|w| w[0].ts <= w[1].ts));
    }

    #[test]
    fn symbols_for_counts() {
        assert_eq!(symbols_for_count(2), ["AAPL", "MSFT"]);
        let many = symbols_for_count(22);
        assert_eq!(many[19], "IBM");
        assert_eq!(many[20], "SYM0021");
        assert_eq!(many[21], "SYM0022");
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let err = Synthetic::new(SyntheticConfig {
            symbols: vec!["OK".into(), "bad symbol".into()],
            rate: 0.0,
            anomaly_rate: 2.0,
            ..SyntheticConfig::default()
        })
        .err()
        .unwrap();
        assert!(err.contains("bad symbol"), "{err}");
        assert!(err.contains("rate must be > 0"), "{err}");
        assert!(err.contains("probability"), "{err}");
    }

    #[test]
    fn records_and_truth_are_json() {
        let tick = generate(
            SyntheticConfig {
                anomaly_rate: 1.0,
                warmup_ticks: 0,
                symbols: vec!["X".into()],
                ..SyntheticConfig::default()
            },
            2,
        )
        .pop()
        .unwrap();
        let record: serde_json::Value = serde_json::from_slice(&tick.record()).unwrap();
        assert_eq!(record["symbol"], "X");
        assert_eq!(record.as_object().unwrap().len(), 4);
        let truth: serde_json::Value =
            serde_json::from_slice(&tick.anomaly.unwrap().to_json()).unwrap();
        assert_eq!(truth["seq"], 2);
        assert_eq!(truth["price"], record["price"]);
    }
}
