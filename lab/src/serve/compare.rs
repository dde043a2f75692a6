//! Two runs side by side: their breaking points, verdicts and bottlenecks, and at
//! every offered rate both ran, their latency — with whether it differs beyond
//! noise. The test is the two-sample Kolmogorov–Smirnov test on the two merged
//! corrected-latency histograms of that rate (every request a sample). Requests of one
//! run are not independent and a step holds thousands of them, so KS alone finds the
//! few-percent shifts two runs against the same server show (measured: D = 0.43 for a
//! 3 % shift of the median): latency differs beyond noise only when KS rejects at
//! p < 0.01 *and* the median moved by at least 10 %. The tail is shown but not judged
//! from one pair of runs: between runs against the same server (1-second steps at 80 %
//! of capacity) the p90 moved by 25 % and the median by at most 5 %; tail changes are
//! what the experiments' p99 series and its change points are for. Latency is judged
//! only where both runs held the SLO: past the breaking point it measures how fast a
//! queue grew, which differs from run to run whatever the server.

use loadgen::output::report::{Report, StepReport};
use serde::Serialize;

use super::detect::stats::{KsTest, ks_histograms};
use super::store::{Run, Store, StoreError};

/// KS p-value below which the distributions differ.
pub const MAX_P_VALUE: f64 = 0.01;
/// Smallest relative move of the median that counts as a difference.
pub const MIN_SHIFT: f64 = 0.1;

/// The method, in words (printed and in the API).
pub const METHOD: &str = "two-sample Kolmogorov–Smirnov test on the merged corrected-latency histograms of each \
    offered rate both runs held; differs beyond noise when p < 0.01 and the median moved by 10 % or more";

/// One run's side.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Side {
    pub run: Run,
    /// The bottleneck verdict, when the run has one.
    pub bottleneck: Option<String>,
    /// The three most saturated signals: (resource, saturation at the broken step).
    pub top_signals: Vec<(String, Option<f64>)>,
}

/// One run at one rate.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AtRate {
    pub achieved_rate: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Whether the step(s) at this rate held the SLO.
    pub held: Option<bool>,
}

/// Both runs at one offered rate.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RateComparison {
    pub offered_rate: f64,
    pub a: AtRate,
    pub b: AtRate,
    pub ks: Option<KsTest>,
    /// The relative move of the median (B against A).
    pub shift: Option<f64>,
    /// `same` (within noise), `slower` or `faster` (B against A); `not judged` when a
    /// run broke the SLO at this rate.
    pub latency: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
    /// (B − A) / A of the breaking point.
    pub breaking_point_change: Option<f64>,
    pub rates: Vec<RateComparison>,
    pub method: String,
    /// The answer in words.
    pub conclusion: String,
}

fn side(run: Run, report: Option<&Report>) -> Side {
    let analysis = report.and_then(|report| report.bottlenecks.as_ref());
    Side {
        run,
        bottleneck: analysis.map(|analysis| analysis.verdict.clone()),
        top_signals: analysis
            .map(|analysis| {
                analysis.ranking.iter().take(3).map(|reading| (reading.resource.clone(), reading.saturation)).collect()
            })
            .unwrap_or_default(),
    }
}

fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() <= a.abs().max(b.abs()) * 0.005
}

/// The steps of `steps` at `rate`, merged.
fn at_rate(steps: &[StepReport], rate: f64) -> (AtRate, hdrhistogram::Histogram<u64>) {
    let mut merged = loadgen::stats::new_histogram();
    let (mut requests, mut errors, mut achieved, mut seconds) = (0, 0, 0.0, 0.0);
    let mut held = None;
    for step in steps.iter().filter(|step| same_rate(step.offered_rate, rate)) {
        if let Ok(histogram) = loadgen::stats::decode(&step.histograms.corrected_ok) {
            let _ = merged.add(&histogram);
        }
        requests += step.completed;
        errors += step.errors;
        let ran = if step.ran_seconds > 0.0 { step.ran_seconds } else { step.duration_seconds };
        achieved += step.achieved_rate * ran;
        seconds += ran;
        held = match (held, step.held) {
            (None, now) => now,
            (Some(before), Some(now)) => Some(before && now),
            (before, None) => before,
        };
    }
    let quantile = |q: f64| (!merged.is_empty()).then(|| merged.value_at_quantile(q) as f64 / 1000.0);
    let at = AtRate {
        achieved_rate: if seconds > 0.0 { achieved / seconds } else { 0.0 },
        requests,
        errors,
        p50_ms: quantile(0.5),
        p90_ms: quantile(0.9),
        p99_ms: quantile(0.99),
        held,
    };
    (at, merged)
}

/// Compares `a` and `b` (B against A).
pub fn compare(a: (Run, Option<Report>), b: (Run, Option<Report>)) -> Comparison {
    let (run_a, report_a) = a;
    let (run_b, report_b) = b;
    let steps_a = report_a.as_ref().map(|report| report.steps.as_slice()).unwrap_or_default();
    let steps_b = report_b.as_ref().map(|report| report.steps.as_slice()).unwrap_or_default();
    let mut rates: Vec<f64> = Vec::new();
    for step in steps_a {
        if steps_b.iter().any(|other| same_rate(other.offered_rate, step.offered_rate))
            && !rates.iter().any(|rate| same_rate(*rate, step.offered_rate))
        {
            rates.push(step.offered_rate);
        }
    }
    rates.sort_by(f64::total_cmp);
    let rates: Vec<RateComparison> = rates
        .into_iter()
        .map(|rate| {
            let (at_a, histogram_a) = at_rate(steps_a, rate);
            let (at_b, histogram_b) = at_rate(steps_b, rate);
            let ks = ks_histograms(&histogram_a, &histogram_b);
            let shift = shift(&histogram_a, &histogram_b);
            let both_held = at_a.held != Some(false) && at_b.held != Some(false);
            let latency = if !both_held { "not judged".to_string() } else { judge(ks.as_ref(), shift).to_string() };
            RateComparison { offered_rate: rate, a: at_a, b: at_b, ks, shift, latency }
        })
        .collect();
    let breaking_point_change = match (run_a.breaking_point, run_b.breaking_point) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a - 1.0),
        _ => None,
    };
    let conclusion = conclusion(&run_a, &run_b, breaking_point_change, &rates);
    Comparison {
        a: side(run_a, report_a.as_ref()),
        b: side(run_b, report_b.as_ref()),
        breaking_point_change,
        rates,
        method: METHOD.to_string(),
        conclusion,
    }
}

/// The relative move of the median from `a` to `b`.
pub fn shift(a: &hdrhistogram::Histogram<u64>, b: &hdrhistogram::Histogram<u64>) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some(b.value_at_quantile(0.5) as f64 / a.value_at_quantile(0.5).max(1) as f64 - 1.0)
}

/// `same`, `slower` or `faster`: see the module documentation.
pub fn judge(ks: Option<&KsTest>, shift: Option<f64>) -> &'static str {
    let rejected = ks.is_some_and(|ks| ks.p_value < MAX_P_VALUE);
    match shift {
        Some(shift) if rejected && shift >= MIN_SHIFT => "slower",
        Some(shift) if rejected && shift <= -MIN_SHIFT => "faster",
        _ => "same",
    }
}

fn conclusion(a: &Run, b: &Run, change: Option<f64>, rates: &[RateComparison]) -> String {
    let point = match (a.breaking_point, b.breaking_point, change) {
        (Some(x), Some(y), Some(change)) if change < 0.0 => {
            format!("the breaking point is lower: {x:.0}/s → {y:.0}/s ({:+.1} %)", change * 100.0)
        }
        (Some(x), Some(y), Some(change)) if change > 0.0 => {
            format!("the breaking point is higher: {x:.0}/s → {y:.0}/s ({:+.1} %)", change * 100.0)
        }
        (Some(x), Some(_), _) => format!("the breaking point is the same: {x:.0}/s"),
        _ => "no breaking point to compare (a run has none)".to_string(),
    };
    let listed = |kind: &str| -> Vec<String> {
        rates.iter().filter(|rate| rate.latency == kind).map(|rate| format!("{:.0}/s", rate.offered_rate)).collect()
    };
    let (slower, faster) = (listed("slower"), listed("faster"));
    let judged = rates.iter().filter(|rate| rate.latency != "not judged").count();
    let latency = if judged == 0 {
        "no offered rate both runs held, so latency cannot be compared".to_string()
    } else if slower.is_empty() && faster.is_empty() {
        format!("latency does not differ beyond noise at any of the {judged} rates both runs held")
    } else {
        let mut parts = Vec::new();
        if !slower.is_empty() {
            parts.push(format!("B is slower beyond noise at {}", slower.join(", ")));
        }
        if !faster.is_empty() {
            parts.push(format!("B is faster beyond noise at {}", faster.join(", ")));
        }
        format!("latency differs: {}", parts.join("; "))
    };
    format!("{point}; {latency}")
}

/// A run named on the command line: an id, or `last` / `last~N` (the newest finished
/// plan run, or the one N before it, of `plan` when given).
pub async fn resolve(
    store: &Store,
    name: &str,
    plan: Option<&str>,
    experiment: Option<&str>,
) -> Result<Run, StoreError> {
    let back = match name {
        "last" => Some(0),
        other => other.strip_prefix("last~").and_then(|n| n.parse::<u32>().ok()),
    };
    let Some(back) = back else { return store.get(name).await };
    let filter = super::store::Filter {
        plan: plan.map(str::to_string),
        experiment: experiment.map(str::to_string),
        state: Some("finished".into()),
        kind: Some("plan".into()),
        limit: Some(back + 1),
        ..super::store::Filter::default()
    };
    let runs = store.list(&filter).await.map_err(|error| StoreError::Conflict(error.to_string()))?;
    runs.into_iter().nth(back as usize).ok_or_else(|| {
        StoreError::NotFound(format!(
            "{name} (there are fewer finished runs{})",
            plan.map(|p| format!(" of plan {p}")).unwrap_or_default()
        ))
    })
}

/// The comparison as a table, for the terminal.
pub fn table(comparison: &Comparison) -> String {
    let (a, b) = (&comparison.a, &comparison.b);
    let rate = |value: Option<f64>| value.map_or("–".to_string(), |v| format!("{v:.0}/s"));
    let text = |value: Option<&String>| value.cloned().unwrap_or_else(|| "–".into());
    let mut out = String::new();
    let mut line = |label: &str, x: String, y: String| out.push_str(&format!("{label:<16} {x:<36} {y}\n"));
    line("", "A".into(), "B".into());
    line("run", a.run.id.clone(), b.run.id.clone());
    line("plan", text(a.run.plan.as_ref()), text(b.run.plan.as_ref()));
    line("experiment", text(a.run.experiment.as_ref()), text(b.run.experiment.as_ref()));
    line("started", text(a.run.started_at.as_ref()), text(b.run.started_at.as_ref()));
    line("state", a.run.state.name().into(), b.run.state.name().into());
    line("breaking point", rate(a.run.breaking_point), rate(b.run.breaking_point));
    line("broke at", rate(a.run.broken_rate), rate(b.run.broken_rate));
    line("verdict", text(a.run.verdict.as_ref()), text(b.run.verdict.as_ref()));
    let top = |side: &Side| {
        side.top_signals.first().map_or("–".to_string(), |(resource, saturation)| {
            format!("{resource} ({})", saturation.map_or("–".into(), |s| format!("{:.0} %", s * 100.0)))
        })
    };
    line("bottleneck", top(a), top(b));
    out.push('\n');
    out.push_str(&format!(
        "{:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>7}  latency\n",
        "offered/s", "achieved A", "achieved B", "p50 A ms", "p50 B ms", "p90 A ms", "p90 B ms", "KS D", "p", "p50 Δ"
    ));
    let ms = |value: Option<f64>| value.map_or("–".to_string(), |v| format!("{v:.2}"));
    for row in &comparison.rates {
        let (d, p) = row
            .ks
            .as_ref()
            .map_or(("–".into(), "–".into()), |ks| (format!("{:.3}", ks.d), format!("{:.2e}", ks.p_value)));
        let held = |at: &AtRate| match at.held {
            Some(false) => "*",
            _ => "",
        };
        out.push_str(&format!(
            "{:>10.0} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>7}  {}\n",
            row.offered_rate,
            format!("{:.1}{}", row.a.achieved_rate, held(&row.a)),
            format!("{:.1}{}", row.b.achieved_rate, held(&row.b)),
            ms(row.a.p50_ms),
            ms(row.b.p50_ms),
            ms(row.a.p90_ms),
            ms(row.b.p90_ms),
            d,
            p,
            row.shift.map_or("–".to_string(), |shift| format!("{:+.0} %", shift * 100.0)),
            match row.latency.as_str() {
                "same" => "same within noise",
                "slower" => "B slower",
                "faster" => "B faster",
                _ => "not judged (a step broke)",
            }
        ));
    }
    out.push_str("(* the step broke the SLO)\n\n");
    out.push_str(&format!("method: {}\n", comparison.method));
    out.push_str(&format!("answer: {}\n", comparison.conclusion));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A narrow latency distribution around `center_ms`, 2000 requests.
    fn around(center_ms: f64) -> hdrhistogram::Histogram<u64> {
        let mut histogram = loadgen::stats::new_histogram();
        for i in 0..2000u64 {
            let jitter = (i % 100) as f64 / 100.0 - 0.5;
            histogram.record((center_ms * (1.0 + 0.1 * jitter) * 1000.0) as u64).unwrap();
        }
        histogram
    }

    #[test]
    fn a_few_percent_is_noise_and_a_fifth_is_not() {
        let a = around(12.0);
        // 3 %: KS rejects (thousands of requests), but the shift is under 10 %.
        let b = around(12.36);
        let ks = ks_histograms(&a, &b).unwrap();
        assert!(ks.p_value < MAX_P_VALUE, "{ks:?}");
        assert_eq!(judge(Some(&ks), shift(&a, &b)), "same");
        // 20 % slower, and 20 % faster.
        let slow = around(14.4);
        assert_eq!(judge(ks_histograms(&a, &slow).as_ref(), shift(&a, &slow)), "slower");
        assert_eq!(judge(ks_histograms(&slow, &a).as_ref(), shift(&slow, &a)), "faster");
        // The same distribution: nothing.
        assert_eq!(judge(ks_histograms(&a, &a).as_ref(), shift(&a, &a)), "same");
        // A 20 % shift KS cannot confirm (three requests each) is not a difference either.
        let mut few_a = loadgen::stats::new_histogram();
        let mut few_b = loadgen::stats::new_histogram();
        for value in [10_000, 11_000, 12_000] {
            few_a.record(value).unwrap();
            few_b.record(value * 12 / 10).unwrap();
        }
        assert_eq!(judge(ks_histograms(&few_a, &few_b).as_ref(), shift(&few_a, &few_b)), "same");
    }
}
