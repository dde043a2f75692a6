//! The machine-readable result: `summary.json` (configuration, per-step statistics
//! with histogram snapshots that merge exactly across segments, the breaking point,
//! thresholds, verdict) and `seconds.csv` (one row per second).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::breakpoint::BreakingPoint;
use crate::collector::SecondRow;
use crate::profile::{Profile, ProfileRun};
use crate::stats::{Stats, encode};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

pub fn percentiles(histogram: &hdrhistogram::Histogram<u64>) -> Percentiles {
    if histogram.is_empty() {
        return Percentiles::default();
    }
    let at = |quantile: f64| Some(histogram.value_at_quantile(quantile) as f64 / 1000.0);
    Percentiles { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: Some(histogram.max() as f64 / 1000.0) }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestRow {
    pub request: String,
    pub outcome: crate::outcome::Outcome,
    pub count: u64,
    pub corrected_ms: Percentiles,
    /// Base64 HdrHistogram V2 snapshot of the corrected latency (microseconds).
    pub histogram: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    pub label: String,
    pub offered_rate: f64,
    pub duration_seconds: f64,
    /// How long the step issued requests (less than planned when stopped).
    #[serde(default)]
    pub ran_seconds: f64,
    pub offered: u64,
    pub completed: u64,
    pub errors: u64,
    pub dropped: u64,
    pub achieved_rate: f64,
    /// Latency of successful requests from their due time, milliseconds.
    pub corrected_ms: Percentiles,
    /// …and from their actual send.
    pub uncorrected_ms: Percentiles,
    pub schedule_lag_ms: Percentiles,
    pub held: Option<bool>,
    pub broken: Vec<String>,
    pub requests: Vec<RequestRow>,
    /// Base64 HdrHistogram V2 snapshots (microseconds), mergeable across segments.
    pub histograms: StepHistograms,
    /// With agents: each agent's share of the step.
    #[serde(default)]
    pub agents: Vec<crate::attack::AgentShare>,
    /// An agent was lost during the step: its figures are partial.
    #[serde(default)]
    pub degraded: bool,
    /// Simulated devices at work (breakpoint searches over devices).
    #[serde(default)]
    pub devices: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepHistograms {
    pub corrected_ok: String,
    pub uncorrected_ok: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThresholdReport {
    pub threshold: String,
    pub broken: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub loadgen_version: String,
    pub started_at: String,
    pub scenario: String,
    pub target: String,
    /// The agents that generated the load (empty: this process did).
    #[serde(default)]
    pub agents: Vec<String>,
    pub segment: String,
    pub seed: u64,
    pub max_in_flight: usize,
    pub profile: Profile,
    pub steps: Vec<StepReport>,
    pub breaking_point: Option<BreakingPoint>,
    pub thresholds: Vec<ThresholdReport>,
    pub interrupted: bool,
    pub verdict: String,
    pub run_id: String,
    /// Where the final push went, when it succeeded.
    pub pushed_to: Option<String>,
    /// Which resource saturated (breakpoint runs with --prometheus).
    #[serde(default)]
    pub bottlenecks: Option<crate::bottleneck::Analysis>,
}

pub fn step_report(step: &crate::profile::Step) -> StepReport {
    let stats: &Stats = &step.outcome.stats;
    let corrected = stats.ok_latency(true);
    let uncorrected = stats.ok_latency(false);
    StepReport {
        label: step.label.clone(),
        offered_rate: step.offered_rate,
        duration_seconds: step.duration.as_secs_f64(),
        ran_seconds: step.outcome.ran.as_secs_f64(),
        offered: stats.offered,
        completed: stats.completed(),
        errors: stats.errors(),
        dropped: stats.dropped,
        achieved_rate: step.achieved_rate(),
        corrected_ms: percentiles(&corrected),
        uncorrected_ms: percentiles(&uncorrected),
        schedule_lag_ms: stats.schedule_lag.as_ref().map(percentiles).unwrap_or_default(),
        held: step.held,
        broken: step.broken.clone(),
        requests: stats
            .by_request
            .iter()
            .map(|((request, outcome), latencies)| RequestRow {
                request: request.to_string(),
                outcome: *outcome,
                count: latencies.corrected.len(),
                corrected_ms: percentiles(&latencies.corrected),
                histogram: encode(&latencies.corrected),
            })
            .collect(),
        histograms: StepHistograms { corrected_ok: encode(&corrected), uncorrected_ok: encode(&uncorrected) },
        agents: step.outcome.agents.clone(),
        degraded: step.outcome.degraded,
        devices: step.devices,
    }
}

pub fn step_reports(run: &ProfileRun) -> Vec<StepReport> {
    run.steps.iter().map(step_report).collect()
}

/// The seconds as CSV, a row each (`seconds.csv`; `loadlab serve` offers the same).
/// Latencies in milliseconds, empty where a second had none.
pub fn seconds_csv(seconds: &[SecondRow]) -> String {
    let optional = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.3}"));
    let mut csv = String::from(
        "second,step,offered_rate,sent,completed,ok,errors,dropped,p50_ms,p90_ms,p99_ms,p99_uncorrected_ms,lag_p99_ms\n",
    );
    for row in seconds {
        csv.push_str(&format!(
            "{},{},{:.1},{},{},{},{},{},{},{},{},{},{}\n",
            row.second,
            row.step.replace(',', " "),
            row.offered_rate,
            row.sent,
            row.completed,
            row.ok,
            row.errors,
            row.dropped,
            optional(row.p50_ms),
            optional(row.p90_ms),
            optional(row.p99_ms),
            optional(row.p99_uncorrected_ms),
            optional(row.lag_p99_ms)
        ));
    }
    csv
}

/// Writes `summary.json`, `seconds.csv` and `report.html` into `dir` (created if
/// missing).
pub fn write(dir: &Path, report: &Report, seconds: &[SecondRow]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?)?;
    std::fs::write(dir.join("seconds.csv"), seconds_csv(seconds))?;
    std::fs::write(dir.join("report.html"), crate::output::html::render(report, seconds))
}
