//! Two runs side by side: their breaking points, verdicts and bottlenecks, and at
//! every offered rate both ran, their latency — with whether it differs beyond
//! noise. The test is the two-sample Kolmogorov–Smirnov test on the two merged
//! corrected-latency histograms of that rate (every request a sample). Requests of one
//! run are not independent and a step holds thousands of them, so any difference at
//! all would be "significant": latency differs beyond noise only when KS rejects at
//! p < 0.01 *and* the distributions are at least D ≥ 0.1 apart (a tenth of the
//! requests on the other side of some latency).

use loadgen::output::report::{Report, StepReport};
use serde::Serialize;

use super::detect::stats::{KsTest, ks_histograms};
use super::store::{Run, Store, StoreError};

/// KS p-value below which the distributions differ.
pub const MAX_P_VALUE: f64 = 0.01;
/// Smallest KS distance that counts as a difference.
pub const MIN_DISTANCE: f64 = 0.1;

/// The method, in words (printed and in the API).
pub const METHOD: &str = "two-sample Kolmogorov–Smirnov test on the merged corrected-latency histograms of each \
    offered rate both runs ran; differs beyond noise when p < 0.01 and D ≥ 0.1";

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
    /// `same` (within noise), `slower` or `faster` (B against A).
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
            let differs = ks.as_ref().is_some_and(|ks| ks.p_value < MAX_P_VALUE && ks.d >= MIN_DISTANCE);
            let latency = if !differs {
                "same"
            } else if histogram_b.value_at_quantile(0.5) >= histogram_a.value_at_quantile(0.5) {
                "slower"
            } else {
                "faster"
            };
            RateComparison { offered_rate: rate, a: at_a, b: at_b, ks, latency: latency.to_string() }
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
    let latency = if rates.is_empty() {
        "no offered rate in common, so latency cannot be compared".to_string()
    } else if slower.is_empty() && faster.is_empty() {
        format!("latency does not differ beyond noise at any of the {} rates both ran", rates.len())
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
        "{:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9}  latency\n",
        "offered/s", "achieved A", "achieved B", "p50 A ms", "p50 B ms", "p99 A ms", "p99 B ms", "KS D", "p"
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
            "{:>10.0} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9}  {}\n",
            row.offered_rate,
            format!("{:.1}{}", row.a.achieved_rate, held(&row.a)),
            format!("{:.1}{}", row.b.achieved_rate, held(&row.b)),
            ms(row.a.p50_ms),
            ms(row.b.p50_ms),
            ms(row.a.p99_ms),
            ms(row.b.p99_ms),
            d,
            p,
            match row.latency.as_str() {
                "same" => "same within noise",
                "slower" => "B slower",
                _ => "B faster",
            }
        ));
    }
    out.push_str("(* the step broke the SLO)\n\n");
    out.push_str(&format!("method: {}\n", comparison.method));
    out.push_str(&format!("answer: {}\n", comparison.conclusion));
    out
}
