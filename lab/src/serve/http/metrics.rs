//! `GET /metrics`: the service's process and runtime metrics (and loadgen's while a
//! plan runs in this process), then one set of series per experiment, computed
//! from the store at each scrape so they are never out of date after a restart:
//!
//! - `loadlab_experiment_last_breaking_point_requests_per_second`
//! - `loadlab_experiment_last_p99_seconds{rate}`: corrected p99 at the reference rate
//! - `loadlab_experiment_last_duration_seconds`, `loadlab_experiment_last_start_timestamp_seconds`
//! - `loadlab_experiment_last_verdict{verdict}`: 1 for the last run's verdict
//! - `loadlab_experiment_runs_total{verdict}`
//! - `loadlab_experiment_regression{metric}`: 1 while the latest change point of that
//!   figure is a regression; `loadlab_experiment_regression_change_ratio{metric}`
//!   its relative change, and `loadlab_experiment_regression_p_value{metric}`.

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::experiments::analyse;
use super::{ApiError, AppState};
use crate::serve::detect::Metric;
use crate::serve::store::Outcome;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// A label value, escaped for the text format.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn seconds_since_epoch(instant: &str) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(instant).ok()?;
    Some(at.timestamp_millis() as f64 / 1000.0)
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = state.recorder.as_ref().map(|recorder| recorder.render()).unwrap_or_default();
    let mut families: Vec<(&str, &str, &str, Vec<String>)> = vec![
        (
            "loadlab_experiment_last_breaking_point_requests_per_second",
            "gauge",
            "Breaking point of the experiment's last finished run",
            vec![],
        ),
        (
            "loadlab_experiment_last_p99_seconds",
            "gauge",
            "Corrected p99 latency at the experiment's reference rate in its last finished run",
            vec![],
        ),
        ("loadlab_experiment_last_duration_seconds", "gauge", "How long the experiment's last run took", vec![]),
        (
            "loadlab_experiment_last_start_timestamp_seconds",
            "gauge",
            "When the experiment's last run started (Unix time)",
            vec![],
        ),
        ("loadlab_experiment_last_verdict", "gauge", "1 for the verdict of the experiment's last run", vec![]),
        ("loadlab_experiment_runs_total", "counter", "Runs of the experiment, by verdict", vec![]),
        (
            "loadlab_experiment_regression",
            "gauge",
            "1 while the latest change point of the figure is a regression (E-divisive means, t-test)",
            vec![],
        ),
        (
            "loadlab_experiment_regression_change_ratio",
            "gauge",
            "Relative change of the latest change point of the figure (after / before - 1)",
            vec![],
        ),
        (
            "loadlab_experiment_regression_p_value",
            "gauge",
            "t-test p-value of the latest change point of the figure",
            vec![],
        ),
    ];
    let mut add = |family: usize, line: String| families[family].3.push(line);
    for experiment in state.experiments.iter() {
        let name = label(&experiment.name);
        let store = &state.core.store;
        let last = store.last_ended(&experiment.name).await?;
        let finished = store.series(&experiment.name, Metric::BreakingPoint).await?;
        if let Some(point) = finished.last() {
            add(0, format!("{{experiment=\"{name}\"}} {}", point.value));
        }
        let p99 = store.series(&experiment.name, Metric::P99AtReference).await?;
        if let (Some(point), Some(rate)) = (p99.last(), experiment.spec.reference_rate) {
            add(1, format!("{{experiment=\"{name}\",rate=\"{rate}\"}} {}", point.value / 1000.0));
        }
        if let Some(run) = &last {
            if let Some(duration) = run.duration_seconds {
                add(2, format!("{{experiment=\"{name}\"}} {duration}"));
            }
            if let Some(start) = run.started_at.as_deref().and_then(seconds_since_epoch) {
                add(3, format!("{{experiment=\"{name}\"}} {start}"));
            }
            let verdict = run.outcome.map_or(run.state.name(), Outcome::name);
            for outcome in Outcome::ALL {
                let value = u8::from(outcome.name() == verdict);
                add(4, format!("{{experiment=\"{name}\",verdict=\"{}\"}} {value}", outcome.name()));
            }
        }
        let counts = store.outcome_counts(&experiment.name).await?;
        for outcome in Outcome::ALL {
            let runs = counts.iter().find(|(name, _)| name == outcome.name()).map_or(0, |(_, runs)| *runs);
            add(5, format!("{{experiment=\"{name}\",verdict=\"{}\"}} {runs}", outcome.name()));
        }
        let analysis = analyse(store, experiment).await?;
        for metric in Metric::ALL {
            let latest = analysis.change_points.iter().rfind(|finding| finding.metric == metric);
            let regression = latest.is_some_and(|finding| finding.is_regression());
            let labels = format!("{{experiment=\"{name}\",metric=\"{}\"}}", metric.name());
            add(6, format!("{labels} {}", u8::from(regression)));
            if let Some(finding) = latest {
                add(7, format!("{labels} {}", finding.point.change));
                add(8, format!("{labels} {}", finding.point.test.p_value));
            }
        }
    }
    for (name, kind, help, lines) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for line in lines {
            let _ = writeln!(out, "{name}{line}");
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out))
}
