//! Plan runs: start one (queued, then run one at a time on the lab), stop it, list
//! runs with filters, read one (summary, per-second series, steps with their
//! verdicts, merged histograms, bottleneck analysis), download its files, compare
//! two.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use loadgen::collector::SecondRow;
use loadgen::output::report::{Percentiles, StepReport, percentiles};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState};
use crate::serve::compare::{self, Comparison};
use crate::serve::launch::RunSpec;
use crate::serve::runner::Reason;
use crate::serve::store::{Filter, Run};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs", post(start_run).get(list_runs))
        .route("/runs/{id}", get(read_run))
        .route("/runs/{id}/stop", put(stop_run).post(stop_run))
        .route("/runs/{id}/seconds", get(run_seconds))
        .route("/runs/{id}/summary.json", get(summary_json))
        .route("/runs/{id}/seconds.csv", get(seconds_csv))
        .route("/runs/{id}/report.html", get(report_html))
        .route("/runs/{id}/files/{name}", get(run_file))
        .route("/runs/{id}/events", get(super::events::run_events))
        .route("/compare", get(compare_runs))
}

/// Start a plan: `{"plan": "smoke"}` on the lab (options may be overridden), or
/// `{"target": URL, "loadgen": {...}}` against a target of its own. The run is queued
/// (runs go one at a time) and answered at once.
#[utoipa::path(post, path = "/runs", tag = "runs", request_body = RunSpec,
    responses((status = 202, body = Run), (status = 400, body = super::ErrorBody)))]
pub async fn start_run(
    State(state): State<AppState>,
    body: Result<Json<RunSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let Json(spec) = body?;
    let run = state.core.submit(spec, None, None).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Stop a queued or running plan: loadgen ends the current step and reports what ran.
#[utoipa::path(put, path = "/runs/{id}/stop", tag = "runs", params(("id" = String, Path)),
    responses((status = 202, body = Run), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn stop_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let run = state.core.stop(&id, Reason::Stopped).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub count: usize,
    pub runs: Vec<Run>,
}

/// Runs, newest first, with filters.
#[utoipa::path(get, path = "/runs", tag = "runs", params(Filter),
    responses((status = 200, body = RunList), (status = 400, body = super::ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    query: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(filter) = query?;
    let runs = state.core.store.list(&filter).await?;
    Ok(Json(RunList { count: runs.len(), runs }))
}

/// A latency histogram: its percentiles and the exact HdrHistogram (V2, base64).
#[derive(Debug, Serialize, ToSchema)]
pub struct Histogram {
    pub count: u64,
    #[schema(value_type = Object)]
    pub percentiles_ms: Percentiles,
    pub histogram: String,
}

/// The run's latency over all its steps, merged exactly.
#[derive(Debug, Serialize, ToSchema)]
pub struct Merged {
    pub corrected_ok: Histogram,
    pub uncorrected_ok: Histogram,
}

/// One run with everything recorded about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    pub run: Run,
    /// Each step with its verdict and histograms (so far, for a running plan).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepReport>,
    /// Every second: offered, sent, completed, errors, drops, p50/p90/p99 (corrected),
    /// uncorrected p99, schedule lag.
    #[schema(value_type = Vec<Object>)]
    pub seconds: Vec<SecondRow>,
    pub merged: Option<Merged>,
    #[schema(value_type = Option<Object>)]
    pub breaking_point: Option<loadgen::breakpoint::BreakingPoint>,
    /// The bottleneck verdict and ranking of the signals.
    #[schema(value_type = Option<Object>)]
    pub bottlenecks: Option<loadgen::bottleneck::Analysis>,
    #[schema(value_type = Vec<Object>)]
    pub thresholds: Vec<loadgen::output::report::ThresholdReport>,
    /// How the lab was set up (lab.json).
    #[schema(value_type = Option<Object>)]
    pub lab: Option<serde_json::Value>,
    /// What was asked for.
    #[schema(value_type = Option<Object>)]
    pub request: Option<serde_json::Value>,
    /// The bottleneck signals read live while it ran (each with its limit).
    #[schema(value_type = Vec<Object>)]
    pub signals: Vec<crate::serve::signals::SignalSample>,
    pub files: Vec<String>,
    pub data_point_count: i64,
}

fn merged(steps: &[StepReport]) -> Option<Merged> {
    let mut corrected = loadgen::stats::new_histogram();
    let mut uncorrected = loadgen::stats::new_histogram();
    for step in steps {
        corrected.add(&loadgen::stats::decode(&step.histograms.corrected_ok).ok()?).ok()?;
        uncorrected.add(&loadgen::stats::decode(&step.histograms.uncorrected_ok).ok()?).ok()?;
    }
    let histogram = |histogram: &hdrhistogram::Histogram<u64>| Histogram {
        count: histogram.len(),
        percentiles_ms: percentiles(histogram),
        histogram: loadgen::stats::encode(histogram),
    };
    (!steps.is_empty()).then(|| Merged { corrected_ok: histogram(&corrected), uncorrected_ok: histogram(&uncorrected) })
}

/// One run: summary, per-second series, steps, merged histograms, bottleneck analysis.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = super::ErrorBody)))]
pub async fn read_run(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RunDetail>, ApiError> {
    let store = &state.core.store;
    let run = store.get(&id).await?;
    let report = store.report(&id).await?;
    let steps = match &report {
        Some(report) => report.steps.clone(),
        None => store.steps(&id).await?,
    };
    let (lab, request, _) = store.context(&id).await?;
    Ok(Json(RunDetail {
        merged: merged(&steps),
        seconds: store.seconds(&id, None).await?,
        breaking_point: report.as_ref().and_then(|report| report.breaking_point.clone()),
        bottlenecks: report.as_ref().and_then(|report| report.bottlenecks.clone()),
        thresholds: report.map(|report| report.thresholds).unwrap_or_default(),
        steps,
        lab,
        request,
        signals: store.signal_samples(&id).await?,
        files: store.file_names(&id).await?,
        data_point_count: store.datapoint_count(&id).await?,
        run,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SecondsQuery {
    /// Only the rows after this position (0 is the first row; for polling).
    pub after: Option<u64>,
}

/// A run's seconds (all, or those after `after`).
#[utoipa::path(get, path = "/runs/{id}/seconds", tag = "runs", params(("id" = String, Path), SecondsQuery),
    responses((status = 200, body = Vec<Object>), (status = 404, body = super::ErrorBody)))]
pub async fn run_seconds(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<SecondsQuery>, QueryRejection>,
) -> Result<Json<Vec<SecondRow>>, ApiError> {
    let Query(query) = query?;
    state.core.store.get(&id).await?;
    Ok(Json(state.core.store.seconds(&id, query.after).await?))
}

fn download(content_type: &'static str, name: String, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("inline; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response()
}

/// loadgen's summary.json of a finished run.
#[utoipa::path(get, path = "/runs/{id}/summary.json", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/json", body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn summary_json(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let report = state
        .core
        .store
        .report(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run `{id}` has no summary (yet)")))?;
    let body = serde_json::to_vec_pretty(&report).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(download("application/json", format!("{id}-summary.json"), body))
}

/// The run's seconds as CSV (the columns of SecondRow).
#[utoipa::path(get, path = "/runs/{id}/seconds.csv", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = super::ErrorBody)))]
pub async fn seconds_csv(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    state.core.store.get(&id).await?;
    let csv = loadgen::output::report::seconds_csv(&state.core.store.seconds(&id, None).await?);
    Ok(download("text/csv; charset=utf-8", format!("{id}-seconds.csv"), csv.into_bytes()))
}

/// loadgen's HTML report: the one kept with the run, else drawn from the store.
#[utoipa::path(get, path = "/runs/{id}/report.html", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String), (status = 404, body = super::ErrorBody)))]
pub async fn report_html(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let store = &state.core.store;
    if let Some(kept) = store.file(&id, "report.html").await? {
        return Ok(download("text/html; charset=utf-8", format!("{id}-report.html"), kept));
    }
    let report =
        store.report(&id).await?.ok_or_else(|| ApiError::NotFound(format!("run `{id}` has no report (yet)")))?;
    let seconds = store.seconds(&id, None).await?;
    let html = loadgen::output::html::render(&report, &seconds);
    Ok(download("text/html; charset=utf-8", format!("{id}-report.html"), html.into_bytes()))
}

/// A file kept with the run (an imported run's metrics.csv or report.html).
#[utoipa::path(get, path = "/runs/{id}/files/{name}", tag = "runs", params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = String), (status = 404, body = super::ErrorBody)))]
pub async fn run_file(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let content = state
        .core
        .store
        .file(&id, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run `{id}` has no file `{name}`")))?;
    let kind = if name.ends_with(".html") { "text/html; charset=utf-8" } else { "text/csv; charset=utf-8" };
    Ok(download(kind, name, content))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The first run (A): an id, `last` or `last~N`.
    pub a: String,
    /// The second run (B).
    pub b: String,
    /// With `last`: only runs of this plan.
    pub plan: Option<String>,
    /// With `last`: only runs of this experiment.
    pub experiment: Option<String>,
}

/// Two runs side by side, with whether latency at equal offered rates differs
/// beyond noise (two-sample Kolmogorov–Smirnov on the merged histograms).
#[utoipa::path(get, path = "/compare", tag = "runs", params(CompareQuery),
    responses((status = 200, body = Comparison), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn compare_runs(
    State(state): State<AppState>,
    query: Result<Query<CompareQuery>, QueryRejection>,
) -> Result<Json<Comparison>, ApiError> {
    let Query(query) = query?;
    let store = &state.core.store;
    let (plan, experiment) = (query.plan.as_deref(), query.experiment.as_deref());
    let a = compare::resolve(store, &query.a, plan, experiment).await?;
    let b = compare::resolve(store, &query.b, plan, experiment).await?;
    let (report_a, report_b) = (store.report(&a.id).await?, store.report(&b.id).await?);
    Ok(Json(compare::compare((a, report_a), (b, report_b))))
}
