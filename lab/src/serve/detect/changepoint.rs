//! Change points in a series of experiment results: E-divisive means (Matteson &
//! James 2014, the energy statistic with α = 1) proposes where the series splits,
//! and Student's t-test between the points on each side decides whether the split
//! is real — the method of DataStax Hunter / Apache Otava, which replaced
//! E-divisive's permutation test with the t-test because it is deterministic and
//! works with the handful of points a nightly experiment yields.
//!
//! Two passes, as Hunter's `compute_change_points`:
//! 1. **split**, top-down: in every segment between the change points found so far,
//!    the split τ maximising Q̂ is a candidate; the best candidate over all segments
//!    is kept if the t-test between its neighbours' windows gives p ≤ 10 × the
//!    threshold (a loose first pass), and the search repeats; it stops at the first
//!    candidate that is not significant.
//! 2. **merge**, bottom-up: the weakest point (highest p-value; when every p is
//!    acceptable, the smallest relative change) is removed while its p-value is above
//!    the threshold or its change is below `min_change`, and its neighbours are
//!    tested again over their widened windows.

use serde::Serialize;

use super::stats::{TTest, t_test};

/// The detection's thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// A change point's t-test must give at most this p-value.
    pub max_p_value: f64,
    /// …and its relative change (the larger of after/before − 1 and before/after − 1,
    /// absolute) must be at least this.
    pub min_change: f64,
    /// Fewest points on each side of a split.
    pub min_segment: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { max_p_value: 0.001, min_change: 0.05, min_segment: 3 }
    }
}

/// A change point: the series' level differs from `index` on.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChangePoint {
    /// The first point of the new level.
    pub index: usize,
    /// Points in the window before and after it (up to the neighbouring change points).
    pub points_before: usize,
    pub points_after: usize,
    /// (mean after − mean before) / mean before.
    pub change: f64,
    #[serde(flatten)]
    pub test: TTest,
}

impl ChangePoint {
    /// The larger relative change of the two directions (Otava's magnitude).
    pub fn magnitude(&self) -> f64 {
        let (before, after) = (self.test.mean_before, self.test.mean_after);
        let forward = if before == 0.0 { 0.0 } else { (after / before - 1.0).abs() };
        let backward = if after == 0.0 { 0.0 } else { (before / after - 1.0).abs() };
        forward.max(backward)
    }
}

/// Q̂ of every split of `segment` with at least `min_segment` points on each side:
/// the best (τ, Q̂), τ being the first index of the right part.
///
/// Q̂(τ) = m n / (m + n) · (2/(m n) Σ|x−y| − 1/C(m,2) Σ|x−x'| − 1/C(n,2) Σ|y−y'|), with
/// m = τ and n = len − τ points. Sums come from running totals: O(len²) in all.
pub fn best_split(segment: &[f64], min_segment: usize) -> Option<(usize, f64)> {
    let length = segment.len();
    let min_segment = min_segment.max(1);
    if length < 2 * min_segment {
        return None;
    }
    let distance = |i: usize, j: usize| (segment[i] - segment[j]).abs();
    // within_left[τ] = Σ over pairs inside [0, τ); within_right[τ] = inside [τ, len).
    let mut within_left = vec![0.0; length + 1];
    for tau in 1..=length {
        let added: f64 = (0..tau - 1).map(|i| distance(i, tau - 1)).sum();
        within_left[tau] = within_left[tau - 1] + added;
    }
    let mut within_right = vec![0.0; length + 1];
    for tau in (0..length).rev() {
        let added: f64 = (tau + 1..length).map(|j| distance(tau, j)).sum();
        within_right[tau] = within_right[tau + 1] + added;
    }
    let total = within_left[length];
    let pairs = |k: f64| k * (k - 1.0) / 2.0;
    let mut best: Option<(usize, f64)> = None;
    for tau in min_segment..=length - min_segment {
        let (m, n) = (tau as f64, (length - tau) as f64);
        let cross = total - within_left[tau] - within_right[tau];
        let left = if m >= 2.0 { within_left[tau] / pairs(m) } else { 0.0 };
        let right = if n >= 2.0 { within_right[tau] / pairs(n) } else { 0.0 };
        let q = m * n / (m + n) * (2.0 * cross / (m * n) - left - right);
        if best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((tau, q));
        }
    }
    best
}

/// The change points of `series`, in order.
pub fn detect(series: &[f64], options: &Options) -> Vec<ChangePoint> {
    if series.iter().any(|value| !value.is_finite()) {
        return Vec::new();
    }
    let first_pass = (options.max_p_value * 10.0).min(0.5);
    let indexes = split(series, first_pass, options.min_segment);
    merge(series, indexes, options)
}

/// The t-test of a change at `index`, over the window between its neighbours.
fn judge(series: &[f64], index: usize, start: usize, end: usize) -> Option<ChangePoint> {
    let (before, after) = (&series[start..index], &series[index..end]);
    let test = t_test(before, after)?;
    let change = if test.mean_before == 0.0 { 0.0 } else { test.mean_after / test.mean_before - 1.0 };
    Some(ChangePoint { index, points_before: before.len(), points_after: after.len(), change, test })
}

fn split(series: &[f64], max_p_value: f64, min_segment: usize) -> Vec<usize> {
    let mut indexes: Vec<usize> = Vec::new();
    loop {
        let mut bounds = vec![0];
        bounds.extend(&indexes);
        bounds.push(series.len());
        let best = bounds
            .windows(2)
            .filter_map(|window| {
                let (start, end) = (window[0], window[1]);
                best_split(&series[start..end], min_segment).map(|(tau, q)| (start + tau, q, start, end))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((index, _, start, end)) = best else { break };
        let significant = judge(series, index, start, end).is_some_and(|point| point.test.p_value <= max_p_value);
        if !significant {
            break;
        }
        let at = indexes.partition_point(|&existing| existing < index);
        indexes.insert(at, index);
    }
    indexes
}

fn merge(series: &[f64], indexes: Vec<usize>, options: &Options) -> Vec<ChangePoint> {
    let judge_all = |indexes: &[usize]| -> Vec<Option<ChangePoint>> {
        (0..indexes.len())
            .map(|k| {
                let start = if k == 0 { 0 } else { indexes[k - 1] };
                let end = indexes.get(k + 1).copied().unwrap_or(series.len());
                judge(series, indexes[k], start, end)
            })
            .collect()
    };
    let mut indexes = indexes;
    loop {
        let points = judge_all(&indexes);
        if points.is_empty() {
            return Vec::new();
        }
        // A point that cannot be judged is the weakest of all.
        let weakest_p = points
            .iter()
            .enumerate()
            .max_by(|a, b| {
                let p = |point: &Option<ChangePoint>| point.as_ref().map_or(f64::INFINITY, |point| point.test.p_value);
                p(a.1).total_cmp(&p(b.1))
            })
            .map(|(k, point)| (k, point.as_ref().map_or(f64::INFINITY, |point| point.test.p_value)));
        let Some((mut weakest, p)) = weakest_p else { return Vec::new() };
        if p <= options.max_p_value {
            let (k, magnitude) = points
                .iter()
                .enumerate()
                .map(|(k, point)| (k, point.as_ref().map_or(0.0, ChangePoint::magnitude)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("not empty");
            if magnitude >= options.min_change {
                return points.into_iter().flatten().collect();
            }
            weakest = k;
        }
        indexes.remove(weakest);
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn q_hat_matches_a_hand_computation() {
        // [0, 0, 10, 10] split at 2: cross mean 10, within 0 and 0: Q̂ = (2·2/4)·(2·10) = 20.
        // Split at 1: cross mean 20/3, within-right mean 20/3: Q̂ = (3/4)·(40/3 − 20/3) = 5.
        assert_eq!(best_split(&[0.0, 0.0, 10.0, 10.0], 1), Some((2, 20.0)));
        assert_eq!(best_split(&[0.0, 0.0, 10.0, 10.0], 2), Some((2, 20.0)));
        assert_eq!(best_split(&[1.0, 2.0, 3.0], 2), None, "too short for two sides of 2");
        // Only the split at 1 is allowed with min 1 on [0, 10]: cross 10, no pairs: Q̂ = ½·20 = 10.
        assert_eq!(best_split(&[0.0, 10.0], 1), Some((1, 10.0)));
    }

    #[test]
    fn a_step_down_is_found_where_it_is_with_its_sign() {
        // Breaking points of a capacity-limited server: 800/s (with a refinement now and
        // then at 700) until run 8, then 400/s.
        let series = [800.0, 800.0, 700.0, 800.0, 800.0, 800.0, 700.0, 800.0, 400.0, 400.0, 350.0, 400.0, 400.0];
        let points = detect(&series, &Options::default());
        assert_eq!(points.len(), 1, "{points:?}");
        let point = &points[0];
        assert_eq!(point.index, 8);
        assert!(point.change < -0.4, "a drop: {point:?}");
        assert_eq!((point.points_before, point.points_after), (8, 5));
        // Hand check: mean before 775, after 390 → change −0.4968.
        assert!((point.test.mean_before - 775.0).abs() < 1e-9);
        assert!((point.test.mean_after - 390.0).abs() < 1e-9);
        assert!(point.test.p_value < 1e-6);
    }

    #[test]
    fn two_steps_are_both_found() {
        let series = [10.0, 10.2, 9.9, 10.1, 10.0, 20.0, 20.1, 19.8, 20.2, 20.0, 5.0, 5.1, 4.9, 5.0, 5.2];
        let indexes: Vec<usize> = detect(&series, &Options::default()).iter().map(|point| point.index).collect();
        assert_eq!(indexes, vec![5, 10]);
    }

    #[test]
    fn a_flat_or_short_series_has_no_change_point() {
        assert!(detect(&[500.0; 20], &Options::default()).is_empty());
        assert!(detect(&[500.0, 250.0], &Options::default()).is_empty());
        assert!(detect(&[], &Options::default()).is_empty());
        assert!(detect(&[1.0, f64::NAN, 3.0, 4.0, 5.0, 6.0], &Options::default()).is_empty());
    }

    #[test]
    fn the_threshold_filters_small_changes() {
        // A clear 3 % step: significant, but under a 5 % threshold; found with 2 %.
        let series: Vec<f64> = (0..20).map(|i| if i < 10 { 1000.0 } else { 970.0 } + (i % 2) as f64).collect();
        assert!(detect(&series, &Options::default()).is_empty());
        let loose = Options { min_change: 0.02, ..Options::default() };
        assert_eq!(detect(&series, &loose).iter().map(|point| point.index).collect::<Vec<_>>(), vec![10]);
    }

    /// A normal deviate (Box–Muller).
    fn normal(rng: &mut impl Rng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Series of pure noise: what share is flagged, over many seeds. The README
    /// quotes the rate printed here.
    #[test]
    fn noise_alone_is_rarely_flagged() {
        let options = Options::default();
        let (seeds, length) = (2000u64, 30);
        let mut flagged = 0;
        for seed in 0..seeds {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            // A breaking point of 1000/s with 5 % noise (the spread seen between runs).
            let series: Vec<f64> = (0..length).map(|_| 1000.0 + 50.0 * normal(&mut rng)).collect();
            if !detect(&series, &options).is_empty() {
                flagged += 1;
            }
        }
        let rate = flagged as f64 / seeds as f64;
        println!("false positives: {flagged} of {seeds} noise-only series of {length} runs ({:.2} %)", rate * 100.0);
        assert!(rate <= 0.02, "false-positive rate {rate}");
    }

    /// …and a real 20 % drop within the same noise is found at its place nearly always.
    #[test]
    fn a_drop_within_noise_is_found_at_its_place() {
        let (seeds, length, at) = (500u64, 30, 20);
        let mut found = 0;
        for seed in 0..seeds {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let series: Vec<f64> =
                (0..length).map(|i| if i < at { 1000.0 } else { 800.0 } + 50.0 * normal(&mut rng)).collect();
            let points = detect(&series, &Options::default());
            if points.iter().any(|point| point.index.abs_diff(at) <= 1 && point.change < 0.0) {
                found += 1;
            }
        }
        let rate = found as f64 / seeds as f64;
        println!("found the drop at run {at} (±1) in {found} of {seeds} series ({:.1} %)", rate * 100.0);
        assert!(rate >= 0.9, "detection rate {rate}");
    }
}
