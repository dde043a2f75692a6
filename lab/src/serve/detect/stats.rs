//! The statistics the service's judgements rest on, written out so they can be
//! checked by hand: Student's two-sample t-test (the significance test of the change
//! point detection) and the two-sample Kolmogorov–Smirnov test on two latency
//! histograms (`loadlab compare`). Both need only the regularised incomplete beta
//! function and the Kolmogorov distribution, implemented here after Numerical Recipes
//! (3rd ed., §6.1, §6.4, §14.3).

use hdrhistogram::Histogram;
use serde::Serialize;

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (index, coefficient) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += coefficient / (x + index as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularised incomplete beta function I_x(a, b), for 0 ≤ x ≤ 1 and a, b > 0.
pub fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the
    // symmetry I_x(a, b) = 1 − I_{1−x}(b, a) on the other side.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPSILON: f64 = 1e-15;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + even * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + even / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + odd * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + odd / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPSILON {
            break;
        }
    }
    h
}

/// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    if t.is_nan() || df <= 0.0 {
        return 1.0;
    }
    if t.is_infinite() {
        return 0.0;
    }
    incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// Mean and sample standard deviation (n − 1) of a slice; 0 for the deviation of
/// fewer than two values.
pub fn mean_and_deviation(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let squares: f64 = values.iter().map(|value| (value - mean).powi(2)).sum();
    (mean, (squares / (n - 1.0)).sqrt())
}

/// Student's two-sample t-test (pooled variance), two-sided.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TTest {
    pub mean_before: f64,
    pub mean_after: f64,
    pub deviation_before: f64,
    pub deviation_after: f64,
    pub t: f64,
    pub degrees_of_freedom: f64,
    /// Probability of a difference at least this large if both sides came from one
    /// distribution.
    pub p_value: f64,
}

/// The t-test between `before` and `after` (each non-empty). Two constant sides give
/// p = 1 when their values are equal and p = 0 when they are not (the t statistic is
/// infinite): breaking points are step rates, so runs often repeat a value exactly.
pub fn t_test(before: &[f64], after: &[f64]) -> Option<TTest> {
    if before.is_empty() || after.is_empty() || before.len() + after.len() < 3 {
        return None;
    }
    let (n1, n2) = (before.len() as f64, after.len() as f64);
    let (mean_before, deviation_before) = mean_and_deviation(before);
    let (mean_after, deviation_after) = mean_and_deviation(after);
    let df = n1 + n2 - 2.0;
    let pooled = ((n1 - 1.0) * deviation_before.powi(2) + (n2 - 1.0) * deviation_after.powi(2)) / df;
    let difference = mean_after - mean_before;
    let standard_error = (pooled * (1.0 / n1 + 1.0 / n2)).sqrt();
    let t = if standard_error > 0.0 {
        difference / standard_error
    } else if difference == 0.0 {
        0.0
    } else {
        difference.signum() * f64::INFINITY
    };
    Some(TTest {
        mean_before,
        mean_after,
        deviation_before,
        deviation_after,
        t,
        degrees_of_freedom: df,
        p_value: student_t_two_sided(t, df),
    })
}

/// Q_KS(λ) = 2 Σ (−1)^(j−1) exp(−2 j² λ²): the probability that the Kolmogorov
/// statistic exceeds λ.
pub fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    let mut previous_term: f64 = 0.0;
    for j in 1..=100 {
        let j = j as f64;
        let term = sign * 2.0 * (-2.0 * j * j * lambda * lambda).exp();
        sum += term;
        if term.abs() <= 1e-10 * previous_term.abs() || term.abs() <= 1e-16 * sum.abs() {
            return sum.clamp(0.0, 1.0);
        }
        sign = -sign;
        previous_term = term;
    }
    1.0
}

/// The two-sample Kolmogorov–Smirnov test.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KsTest {
    /// The largest distance between the two cumulative distributions, 0 to 1.
    pub d: f64,
    /// Asymptotic p-value for D with these sample sizes.
    pub p_value: f64,
    pub n_a: u64,
    pub n_b: u64,
}

/// The KS test between two latency histograms made with the same bounds (every
/// loadgen histogram is): their cumulative distributions are compared at every
/// recorded value (bucket), so values in one bucket count as ties.
pub fn ks_histograms(a: &Histogram<u64>, b: &Histogram<u64>) -> Option<KsTest> {
    let (n_a, n_b) = (a.len(), b.len());
    if n_a == 0 || n_b == 0 {
        return None;
    }
    let counts = |histogram: &Histogram<u64>| -> Vec<(u64, u64)> {
        histogram
            .iter_recorded()
            .map(|value| (histogram.highest_equivalent(value.value_iterated_to()), value.count_at_value()))
            .collect()
    };
    let (left, right) = (counts(a), counts(b));
    let (mut i, mut j) = (0, 0);
    let (mut cumulative_a, mut cumulative_b) = (0u64, 0u64);
    let mut d: f64 = 0.0;
    while i < left.len() || j < right.len() {
        let value = match (left.get(i), right.get(j)) {
            (Some(x), Some(y)) => x.0.min(y.0),
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            (None, None) => break,
        };
        while let Some(&(at, count)) = left.get(i).filter(|(at, _)| *at == value) {
            let _ = at;
            cumulative_a += count;
            i += 1;
        }
        while let Some(&(at, count)) = right.get(j).filter(|(at, _)| *at == value) {
            let _ = at;
            cumulative_b += count;
            j += 1;
        }
        d = d.max((cumulative_a as f64 / n_a as f64 - cumulative_b as f64 / n_b as f64).abs());
    }
    Some(KsTest { d, p_value: ks_p_value(d, n_a, n_b), n_a, n_b })
}

/// The asymptotic p-value of a two-sample KS distance `d` (Numerical Recipes' form
/// with the small-sample correction of Stephens).
pub fn ks_p_value(d: f64, n_a: u64, n_b: u64) -> f64 {
    let effective = (n_a as f64 * n_b as f64) / (n_a as f64 + n_b as f64);
    let root = effective.sqrt();
    kolmogorov_q((root + 0.12 + 0.11 / root) * d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn gamma_and_beta_match_known_values() {
        // Γ(5) = 24, Γ(1/2) = √π.
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-12));
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-12));
        // I_x(1, 1) = x; I_x(a, 1) = x^a; I_0.5(a, a) = 0.5.
        assert!(close(incomplete_beta(0.3, 1.0, 1.0), 0.3, 1e-12));
        assert!(close(incomplete_beta(0.6, 3.0, 1.0), 0.216, 1e-12));
        assert!(close(incomplete_beta(0.5, 4.5, 4.5), 0.5, 1e-12));
    }

    #[test]
    fn student_t_tails_match_closed_forms() {
        // df = 1 is Cauchy: P(|T| ≥ 1) = 1/2.
        assert!(close(student_t_two_sided(1.0, 1.0), 0.5, 1e-12));
        // df = 2: P(|T| ≥ t) = 1 − t / √(2 + t²); t = 2 → 0.183503.
        assert!(close(student_t_two_sided(2.0, 2.0), 1.0 - 2.0 / 6f64.sqrt(), 1e-12));
        // Large df approaches the normal: P(|Z| ≥ 1.96) = 0.05.
        assert!(close(student_t_two_sided(1.959_964, 1e7), 0.05, 1e-5));
    }

    #[test]
    fn the_t_test_matches_a_hand_computation() {
        // Means 2.5 and 6.5, variances 5/3 each: pooled SE = √(5/3 · ½) = 0.912871,
        // t = 4 / 0.912871 = 4.381780 on 6 df, p = 0.004659 (scipy.stats.ttest_ind).
        let test = t_test(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]).unwrap();
        assert!(close(test.t, 4.381_780, 1e-6), "{test:?}");
        assert!(close(test.p_value, 0.004_659, 1e-6), "{test:?}");
        assert_eq!(test.degrees_of_freedom, 6.0);
        // Constant sides: equal → 1, different → 0.
        assert_eq!(t_test(&[800.0, 800.0], &[800.0, 800.0]).unwrap().p_value, 1.0);
        assert_eq!(t_test(&[800.0, 800.0], &[400.0, 400.0]).unwrap().p_value, 0.0);
        assert!(t_test(&[1.0], &[2.0]).is_none(), "two values have no degrees of freedom");
    }

    #[test]
    fn kolmogorov_tail_matches_tables() {
        // The 5 % critical value of the Kolmogorov distribution is 1.3581.
        assert!(close(kolmogorov_q(1.3581), 0.05, 1e-4));
        // Q(1) = 0.26999967.
        assert!(close(kolmogorov_q(1.0), 0.269_999_67, 1e-7));
        assert_eq!(kolmogorov_q(0.0), 1.0);
    }

    fn histogram(millis: &[u64]) -> Histogram<u64> {
        let mut histogram = loadgen::stats::new_histogram();
        for value in millis {
            histogram.record(value * 1000).unwrap();
        }
        histogram
    }

    #[test]
    fn ks_on_histograms_matches_a_hand_computation() {
        // Disjoint: D = 1. With n = 5 and 5, ne = 2.5: λ = (1.5811 + 0.12 + 0.0696) · 1
        // = 1.7707, Q = 0.0036.
        let test = ks_histograms(&histogram(&[1, 2, 3, 4, 5]), &histogram(&[6, 7, 8, 9, 10])).unwrap();
        assert_eq!(test.d, 1.0);
        assert!(close(test.p_value, kolmogorov_q(1.770_7), 1e-3), "{test:?}");
        // Identical: D = 0, p = 1.
        let same = ks_histograms(&histogram(&[1, 2, 3]), &histogram(&[3, 2, 1])).unwrap();
        assert_eq!((same.d, same.p_value), (0.0, 1.0));
        // Half overlapping: A = {1,2,3,4}, B = {3,4,5,6}: after 2, F_A = 0.5 and F_B = 0.
        let half = ks_histograms(&histogram(&[1, 2, 3, 4]), &histogram(&[3, 4, 5, 6])).unwrap();
        assert_eq!(half.d, 0.5);
        assert!(ks_histograms(&histogram(&[]), &histogram(&[1])).is_none());
    }
}
