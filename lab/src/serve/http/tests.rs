//! The results server's tests, a superset of Catalyst's API: create a test (with an
//! id or without, optionally started), hold its clients until it starts (long poll
//! or server-sent events), take their data points, start and finish it, read it back
//! with or without its data points. A test is a run of kind `test` in the store, so it
//! is listed with every other run.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState, check_id, parse_wait};
use crate::serve::store::{DataPoint, NewDataPoint, NewRun, Run, RunState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tests", post(create_test))
        .route("/tests/{id}", post(create_test_with_id).get(read_test))
        .route("/tests/{id}/start", put(start_test))
        .route("/tests/{id}/finish", put(finish_test))
        .route("/tests/{id}/wait", get(wait_for_start))
        .route("/tests/{id}/datapoints", post(add_datapoints))
        .route("/tests/{id}/events", get(super::events::test_events))
}

/// Optional body of a creation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTest {
    /// Start it at once (clients waiting are released when it starts).
    #[serde(default)]
    pub started: bool,
    pub description: Option<String>,
}

/// A test as the results server shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestStatus {
    pub id: String,
    pub state: RunState,
    pub started: bool,
    pub finished: bool,
    pub description: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub data_point_count: i64,
    /// With `?dataPoints=true`: every data point, in the order they arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_points: Option<Vec<DataPoint>>,
}

async fn status(state: &AppState, run: Run, with_points: bool) -> Result<TestStatus, ApiError> {
    let data_point_count = state.core.store.datapoint_count(&run.id).await?;
    let data_points = if with_points { Some(state.core.store.datapoints(&run.id).await?) } else { None };
    Ok(TestStatus {
        started: run.started_at.is_some(),
        finished: run.state.is_final(),
        id: run.id,
        state: run.state,
        description: run.description,
        created_at: run.created_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        data_point_count,
        data_points,
    })
}

async fn create(
    state: &AppState,
    id: String,
    body: Option<CreateTest>,
) -> Result<(StatusCode, Json<TestStatus>), ApiError> {
    let body = body.unwrap_or_default();
    let new = NewRun {
        id,
        kind: "test",
        source: "api",
        state: Some(if body.started { RunState::Running } else { RunState::Created }),
        description: body.description,
        ..NewRun::default()
    };
    let run = state.core.store.create(new).await?;
    state.core.live.state(&run);
    Ok((StatusCode::CREATED, Json(status(state, run, false).await?)))
}

/// An optional JSON body: none (or an empty one) is the default.
fn optional_body(body: Result<Json<CreateTest>, JsonRejection>) -> Result<Option<CreateTest>, ApiError> {
    match body {
        Ok(Json(body)) => Ok(Some(body)),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(None),
        Err(rejection) => Err(rejection.into()),
    }
}

/// Create a test with a new id (`{"started": true}` starts it at once).
#[utoipa::path(post, path = "/tests", tag = "tests", request_body(content = Option<CreateTest>),
    responses((status = 201, body = TestStatus), (status = 400, body = super::ErrorBody)))]
pub async fn create_test(
    State(state): State<AppState>,
    body: Result<Json<CreateTest>, JsonRejection>,
) -> Result<(StatusCode, Json<TestStatus>), ApiError> {
    create(&state, crate::serve::runner::new_run_id(), optional_body(body)?).await
}

/// Create a test with this id.
#[utoipa::path(post, path = "/tests/{id}", tag = "tests", request_body(content = Option<CreateTest>),
    params(("id" = String, Path, description = "1–128 letters, digits, `-`, `_`, `.`")),
    responses((status = 201, body = TestStatus), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_test_with_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CreateTest>, JsonRejection>,
) -> Result<(StatusCode, Json<TestStatus>), ApiError> {
    check_id("id", &id)?;
    create(&state, id, optional_body(body)?).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Include every data point (can be large).
    #[serde(rename = "dataPoints", default)]
    pub data_points: bool,
}

async fn test_run(state: &AppState, id: &str) -> Result<Run, ApiError> {
    let run = state.core.store.get(id).await?;
    if run.kind != "test" {
        return Err(ApiError::NotFound(format!("`{id}` is a plan run, not a test: see /runs/{id}")));
    }
    Ok(run)
}

/// A test's status; `?dataPoints=true` adds its data points.
#[utoipa::path(get, path = "/tests/{id}", tag = "tests", params(("id" = String, Path), ReadQuery),
    responses((status = 200, body = TestStatus), (status = 404, body = super::ErrorBody)))]
pub async fn read_test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Json<TestStatus>, ApiError> {
    let Query(query) = query?;
    let run = test_run(&state, &id).await?;
    Ok(Json(status(&state, run, query.data_points).await?))
}

/// Start a test: every client waiting is released.
#[utoipa::path(put, path = "/tests/{id}/start", tag = "tests", params(("id" = String, Path)),
    responses((status = 200, body = TestStatus), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn start_test(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TestStatus>, ApiError> {
    test_run(&state, &id).await?;
    let run = state.core.store.transition(&id, &[RunState::Created], RunState::Running).await?;
    state.core.live.state(&run);
    Ok(Json(status(&state, run, false).await?))
}

/// Finish a test (it takes no more data points); returns it with its data points.
#[utoipa::path(put, path = "/tests/{id}/finish", tag = "tests", params(("id" = String, Path)),
    responses((status = 200, body = TestStatus), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn finish_test(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TestStatus>, ApiError> {
    test_run(&state, &id).await?;
    let run = state.core.store.transition(&id, &[RunState::Created, RunState::Running], RunState::Finished).await?;
    state.core.live.state(&run);
    Ok(Json(status(&state, run, true).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// How long to wait at most (default 30s, at most 10m).
    pub timeout: Option<String>,
}

/// Long poll: answers as soon as the test has started (or ended), or when `timeout`
/// passes with it still waiting (`state` says which).
#[utoipa::path(get, path = "/tests/{id}/wait", tag = "tests", params(("id" = String, Path), WaitQuery),
    responses((status = 200, body = TestStatus), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn wait_for_start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<TestStatus>, ApiError> {
    let Query(query) = query?;
    let wait = parse_wait("timeout", query.timeout.as_deref(), Duration::from_secs(30), Duration::from_secs(600))?;
    let run = test_run(&state, &id).await?;
    if run.state == RunState::Created {
        let mut watch = state.core.live.channels(&id, run.state).state.subscribe();
        let started = watch.wait_for(|state| *state != RunState::Created);
        tokio::select! {
            _ = started => {}
            () = tokio::time::sleep(wait) => {}
            () = state.shutdown.cancelled() => {}
        }
    }
    let run = test_run(&state, &id).await?;
    Ok(Json(status(&state, run, false).await?))
}

/// A batch of data points from one client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataPointBatch {
    /// Who sends them (a peer id).
    pub client: Option<String>,
    pub points: Vec<NewDataPoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: usize,
}

/// Most data points in one batch.
const MAX_BATCH: usize = 10_000;

/// Add data points (all or none) while the test is created or running.
#[utoipa::path(post, path = "/tests/{id}/datapoints", tag = "tests", params(("id" = String, Path)),
    request_body = DataPointBatch,
    responses((status = 201, body = Accepted), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn add_datapoints(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<DataPointBatch>, JsonRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Json(batch) = body?;
    if batch.points.is_empty() || batch.points.len() > MAX_BATCH {
        return Err(ApiError::invalid("points", format!("send 1 to {MAX_BATCH} points, not {}", batch.points.len())));
    }
    for (index, point) in batch.points.iter().enumerate() {
        if point.name.is_empty() || point.name.len() > 200 {
            return Err(ApiError::invalid(&format!("points[{index}].name"), "give a name of 1–200 characters"));
        }
        if !point.value.is_finite() {
            return Err(ApiError::invalid(&format!("points[{index}].value"), "must be a finite number"));
        }
        if let Some(time) = &point.time
            && crate::serve::store::parse_instant(time).is_none()
        {
            return Err(ApiError::invalid(
                &format!("points[{index}].time"),
                format!("`{time}` is not an RFC 3339 instant"),
            ));
        }
    }
    let accepted = state.core.store.add_datapoints(&id, batch.client.as_deref(), &batch.points).await?;
    state.core.live.send(&id, crate::serve::live::Event::Datapoints { client: batch.client, count: accepted });
    Ok((StatusCode::CREATED, Json(Accepted { accepted })))
}
