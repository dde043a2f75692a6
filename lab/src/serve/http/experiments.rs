//! Experiments: each with its schedule, last run, series (breaking point, p99 at the
//! reference rate) and the change points found in them; and running one now.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState};
use crate::serve::detect::{Finding, Metric, SeriesPoint, findings};
use crate::serve::experiments::Experiment;
use crate::serve::store::{Run, Store, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments", get(list_experiments))
        .route("/experiments/{name}", get(read_experiment))
        .route("/experiments/{name}/run", post(run_experiment))
}

/// An experiment's figures and what the detection found in them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Analysis {
    /// Each figure's series over the finished runs, oldest first.
    pub series: BTreeMap<String, Vec<SeriesPoint>>,
    /// Every change point, oldest first, per figure.
    pub change_points: Vec<Finding>,
    /// The figures whose latest change point is a regression (their present level is
    /// worse than before it): what `loadlab_experiment_regression` and its alert say.
    pub regressions: Vec<Finding>,
}

/// Series and change points of `experiment`.
pub async fn analyse(store: &Store, experiment: &Experiment) -> Result<Analysis, StoreError> {
    let mut analysis = Analysis { series: BTreeMap::new(), change_points: Vec::new(), regressions: Vec::new() };
    for metric in Metric::ALL {
        let series = store.series(&experiment.name, metric).await?;
        let found = findings(metric, &series, &experiment.detection());
        if let Some(latest) = found.last().filter(|finding| finding.is_regression()) {
            analysis.regressions.push(latest.clone());
        }
        analysis.change_points.extend(found);
        analysis.series.insert(metric.name().to_string(), series);
    }
    Ok(analysis)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentStatus {
    #[serde(flatten)]
    pub experiment: Experiment,
    pub last_run: Option<Run>,
    pub regressions: Vec<Finding>,
}

/// Every experiment with its last run and present regressions.
#[utoipa::path(get, path = "/experiments", tag = "experiments",
    responses((status = 200, body = Vec<ExperimentStatus>)))]
pub async fn list_experiments(State(state): State<AppState>) -> Result<Json<Vec<ExperimentStatus>>, ApiError> {
    let mut list = Vec::new();
    for experiment in state.experiments.iter() {
        let analysis = analyse(&state.core.store, experiment).await?;
        list.push(ExperimentStatus {
            last_run: state.core.store.last_ended(&experiment.name).await?,
            regressions: analysis.regressions,
            experiment: experiment.clone(),
        });
    }
    Ok(Json(list))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentDetail {
    #[serde(flatten)]
    pub experiment: Experiment,
    pub last_run: Option<Run>,
    #[serde(flatten)]
    pub analysis: Analysis,
}

fn find<'a>(state: &'a AppState, name: &str) -> Result<&'a Experiment, ApiError> {
    state.experiments.iter().find(|experiment| experiment.name == name).ok_or_else(|| {
        let known: Vec<&str> = state.experiments.iter().map(|experiment| experiment.name.as_str()).collect();
        ApiError::NotFound(format!("no experiment `{name}`; experiments: {known:?}"))
    })
}

/// One experiment: its series, change points (magnitude, p-value, the runs on each
/// side) and regressions.
#[utoipa::path(get, path = "/experiments/{name}", tag = "experiments", params(("name" = String, Path)),
    responses((status = 200, body = ExperimentDetail), (status = 404, body = super::ErrorBody)))]
pub async fn read_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ExperimentDetail>, ApiError> {
    let experiment = find(&state, &name)?;
    Ok(Json(ExperimentDetail {
        last_run: state.core.store.last_ended(&name).await?,
        analysis: analyse(&state.core.store, experiment).await?,
        experiment: experiment.clone(),
    }))
}

/// Queue a run of the experiment now (it runs when the runs before it have).
#[utoipa::path(post, path = "/experiments/{name}/run", tag = "experiments", params(("name" = String, Path)),
    responses((status = 202, body = Run), (status = 404, body = super::ErrorBody)))]
pub async fn run_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let experiment = find(&state, &name)?;
    let run = crate::serve::scheduler::run_now(&state.core, experiment).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}
