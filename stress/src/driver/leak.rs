//! Leak detection on a memory time series.
//!
//! Two questions, both must say yes before a component is called leaking:
//! - is the growth statistically real? The Mann–Kendall trend test: S counts, over
//!   every pair of samples, whether the later one is larger; under "no trend" S is
//!   about normal with variance n(n−1)(2n+5)/18, which gives a one-sided p-value;
//! - is it large enough to matter? The Theil–Sen slope (the median of the slopes
//!   between every pair of samples) is robust to the spikes a busy heap shows, and
//!   must exceed a stated bytes-per-second threshold.
//!
//! Samples autocorrelate, which makes Mann–Kendall over-confident on a wandering but
//! flat series; that is why the magnitude threshold is the deciding gate.
//!
//! Both statistics look at every pair of samples, n² of them: an hour at 250 ms is
//! 14,400 samples and 104 million pairs. A longer series is first thinned to at most
//! [`MAX_FITTED`] evenly spaced samples (every k-th), so the work is bounded
//! whatever the run's length; the slope and the test keep their meaning on the
//! thinned series, with fewer, less autocorrelated samples.

use serde::Serialize;

/// The p-value below which a trend counts as real.
pub const SIGNIFICANCE: f64 = 0.001;

/// Most samples a fit looks at (at most half a million pairs).
pub const MAX_FITTED: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Trend {
    /// Theil–Sen slope, bytes per second.
    pub slope_bytes_per_second: f64,
    /// One-sided Mann–Kendall p-value for an increasing trend.
    pub p_value: f64,
    /// Samples in the series.
    pub samples: usize,
    /// Samples the fit used (all of them, or [`MAX_FITTED`] evenly spaced).
    pub fitted: usize,
}

impl Trend {
    pub fn is_leak(&self, threshold_bytes_per_second: f64) -> bool {
        self.p_value < SIGNIFICANCE && self.slope_bytes_per_second > threshold_bytes_per_second
    }
}

/// Fits `(seconds, bytes)` samples; `None` with fewer than 10 samples.
pub fn trend(series: &[(f64, f64)]) -> Option<Trend> {
    if series.len() < 10 {
        return None;
    }
    let samples = thin(series, MAX_FITTED);
    let n = samples.len();
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            let (t_i, y_i) = samples[i];
            let (t_j, y_j) = samples[j];
            if t_j > t_i {
                slopes.push((y_j - y_i) / (t_j - t_i));
            }
            s += match y_j.partial_cmp(&y_i) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let middle = slopes.len() / 2;
    let slope = if slopes.len() % 2 == 1 { slopes[middle] } else { (slopes[middle - 1] + slopes[middle]) / 2.0 };
    let n = n as f64;
    let variance = n * (n - 1.0) * (2.0 * n + 5.0) / 18.0;
    // Continuity correction: S moves in steps of 2.
    let z = if s > 0 {
        (s as f64 - 1.0) / variance.sqrt()
    } else if s < 0 {
        (s as f64 + 1.0) / variance.sqrt()
    } else {
        0.0
    };
    Some(Trend { slope_bytes_per_second: slope, p_value: upper_tail(z), samples: series.len(), fitted: samples.len() })
}

/// At most `most` samples of `series`, evenly spaced (every k-th, the first
/// included), or all of them when there are no more.
fn thin(series: &[(f64, f64)], most: usize) -> Vec<(f64, f64)> {
    let every = series.len().div_ceil(most.max(1));
    series.iter().step_by(every.max(1)).copied().collect()
}

/// P(Z > z) for a standard normal Z (Abramowitz & Stegun 7.1.26, error < 1.5e-7).
fn upper_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let polynomial = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = polynomial * (-x * x).exp();
    if z >= 0.0 { erfc / 2.0 } else { 1.0 - erfc / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `count` samples 250 ms apart (as the driver takes them): 20 MB, growing by
    /// `slope` bytes/s, with uniform noise of ± `noise`.
    fn samples(count: u32, slope: f64, noise: f64, seed: u64) -> Vec<(f64, f64)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..count)
            .map(|i| {
                let t = f64::from(i) * 0.25;
                (t, 20e6 + slope * t + rng.random_range(-noise..noise))
            })
            .collect()
    }

    fn series(slope: f64, noise: f64, seed: u64) -> Vec<(f64, f64)> {
        samples(200, slope, noise, seed)
    }

    #[test]
    fn a_steady_leak_is_found() {
        let fitted = trend(&series(100_000.0, 500_000.0, 1)).unwrap();
        assert!((fitted.slope_bytes_per_second - 100_000.0).abs() < 20_000.0, "{fitted:?}");
        assert!(fitted.p_value < SIGNIFICANCE);
        assert!(fitted.is_leak(64.0 * 1024.0));
    }

    #[test]
    fn a_noisy_flat_series_is_not_a_leak() {
        for seed in 0..20 {
            let fitted = trend(&series(0.0, 2_000_000.0, seed)).unwrap();
            assert!(!fitted.is_leak(64.0 * 1024.0), "seed {seed}: {fitted:?}");
        }
    }

    #[test]
    fn a_small_real_growth_is_below_the_threshold() {
        let fitted = trend(&series(1_000.0, 100.0, 3)).unwrap();
        assert!(fitted.p_value < SIGNIFICANCE, "the trend is real");
        assert!(!fitted.is_leak(64.0 * 1024.0), "but too small to matter");
    }

    /// An hour at 250 ms: 14,400 samples, 104 million pairs.
    fn hour(slope: f64, noise: f64, seed: u64) -> Vec<(f64, f64)> {
        samples(14_400, slope, noise, seed)
    }

    #[test]
    fn an_hour_long_series_is_fitted_on_a_bounded_number_of_samples() {
        let leaking = trend(&hour(100_000.0, 2_000_000.0, 5)).unwrap();
        assert_eq!((leaking.samples, leaking.fitted), (14_400, 960), "every 15th sample");
        assert!((leaking.slope_bytes_per_second - 100_000.0).abs() < 5_000.0, "{leaking:?}");
        assert!(leaking.is_leak(64.0 * 1024.0), "{leaking:?}");
        for seed in 0..2 {
            let flat = trend(&hour(0.0, 2_000_000.0, seed)).unwrap();
            assert!(flat.fitted <= MAX_FITTED);
            assert!(!flat.is_leak(64.0 * 1024.0), "seed {seed}: {flat:?}");
        }
        // A series within the bound is fitted whole.
        assert_eq!(trend(&series(0.0, 1.0, 1)).unwrap().fitted, 200);
    }

    #[test]
    fn normal_tail() {
        assert!((upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((upper_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((upper_tail(-1.96) - 0.975).abs() < 1e-4);
    }
}
