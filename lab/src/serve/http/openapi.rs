//! `GET /openapi.json`: the OpenAPI 3 document of every route, generated from the
//! handlers' annotations so it cannot drift from the code.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use super::{AppState, events, experiments, lab, metrics, runs, tests};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "loadlab serve",
        description = "The lab as a standing service: a results server (a superset of Catalyst's: tests \
            created, started, finished and read, clients held until the start by long poll or \
            server-sent events, data points from any client), plan runs started, stopped, listed, \
            read and compared, scheduled experiments with regression detection (E-divisive means \
            with a t-test), and Prometheus metrics. Every error is JSON: {error, message, field?}.",
    ),
    paths(
        tests::create_test,
        tests::create_test_with_id,
        tests::read_test,
        tests::start_test,
        tests::finish_test,
        tests::wait_for_start,
        tests::add_datapoints,
        events::test_events,
        runs::start_run,
        runs::list_runs,
        runs::read_run,
        runs::stop_run,
        runs::run_seconds,
        runs::summary_json,
        runs::seconds_csv,
        runs::report_html,
        runs::run_file,
        events::run_events,
        runs::compare_runs,
        experiments::list_experiments,
        experiments::read_experiment,
        experiments::run_experiment,
        lab::topology,
        metrics::metrics,
        openapi_json,
    ),
    components(schemas(crate::serve::store::DataPoint, crate::serve::store::NewDataPoint))
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The OpenAPI document.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> Json<serde_json::Value> {
    Json(document())
}
