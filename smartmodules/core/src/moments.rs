//! Count, mean and sum of squared deviations, kept in Welford/Chan form.
//!
//! Keeping (n, mean, M2) instead of raw sums of x and x² is what keeps the variance accurate for
//! prices near 1e4 that move by a cent: the sums of squares would cancel catastrophically. Merging
//! two summaries (Chan et al.) is exact when both have the same mean, so a window of identical
//! prices has a variance of exactly 0, as the z-score rule needs.

/// Summary of a multiset of prices.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Adds one observation (Welford's update).
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The summary of both multisets (Chan's parallel update).
    #[inline]
    pub fn merge(self, other: Moments) -> Moments {
        if other.count == 0 {
            return self;
        }
        if self.count == 0 {
            return other;
        }
        let count = self.count + other.count;
        let n = count as f64;
        let delta = other.mean - self.mean;
        let other_share = other.count as f64 / n;
        Moments {
            count,
            mean: self.mean + delta * other_share,
            m2: self.m2 + other.m2 + delta * delta * (self.count as f64 * other_share),
        }
    }

    /// Mean, or `None` when empty.
    #[inline]
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }

    /// Sample standard deviation (ddof = 1), or `None` with fewer than two observations.
    #[inline]
    pub fn sample_std(&self) -> Option<f64> {
        (self.count >= 2).then(|| (self.m2.max(0.0) / (self.count - 1) as f64).sqrt())
    }
}

/// Price moments plus the sums VWAP needs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PriceVolume {
    pub prices: Moments,
    /// Sum of price × volume.
    pub notional: f64,
    /// Sum of volume (exact).
    pub volume: u64,
}

impl PriceVolume {
    #[inline]
    pub fn push(&mut self, price: f64, volume: u64) {
        self.prices.push(price);
        self.notional += price * volume as f64;
        self.volume = self.volume.saturating_add(volume);
    }

    #[inline]
    pub fn merge(self, other: PriceVolume) -> PriceVolume {
        PriceVolume {
            prices: self.prices.merge(other.prices),
            notional: self.notional + other.notional,
            volume: self.volume.saturating_add(other.volume),
        }
    }

    /// Volume-weighted average price, `None` when no volume traded.
    #[inline]
    pub fn vwap(&self) -> Option<f64> {
        (self.volume > 0).then(|| self.notional / self.volume as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn two_pass(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let m2 = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>();
        (mean, m2)
    }

    #[test]
    fn identical_prices_have_exactly_zero_variance() {
        let mut a = Moments::default();
        let mut b = Moments::default();
        for _ in 0..1000 {
            a.push(10_000.01);
            b.push(10_000.01);
        }
        let merged = a.merge(b);
        assert_eq!(merged.m2, 0.0);
        assert_eq!(merged.sample_std(), Some(0.0));
        assert_eq!(merged.mean, 10_000.01);
    }

    proptest! {
        #[test]
        fn merge_of_splits_matches_two_pass(
            cents in prop::collection::vec(-50i64..50, 2..200),
            split in 0usize..200,
        ) {
            // Prices near 1e4 moving by a cent: the ill-conditioned case.
            let xs: Vec<f64> = cents.iter().map(|c| 10_000.0 + *c as f64 * 0.01).collect();
            let split = split.min(xs.len());
            let mut left = Moments::default();
            let mut right = Moments::default();
            xs[..split].iter().for_each(|x| left.push(*x));
            xs[split..].iter().for_each(|x| right.push(*x));
            let merged = left.merge(right);
            let (mean, m2) = two_pass(&xs);
            prop_assert!((merged.mean - mean).abs() <= 1e-12 * mean);
            let std = (m2 / (xs.len() - 1) as f64).sqrt();
            let tolerance = 1e-9 * std.max(1e-6 * mean);
            prop_assert!((merged.sample_std().unwrap() - std).abs() <= tolerance,
                "{} vs {}", merged.sample_std().unwrap(), std);
        }
    }
}
