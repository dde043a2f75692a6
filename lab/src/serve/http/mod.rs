//! The service's HTTP API: one router per resource (results-server tests, runs,
//! experiments, metrics, the OpenAPI document) merged at the root over one shared
//! [`AppState`]. Every answer is JSON, every refusal an [`ApiError`]; the web UI's
//! pages (under `/ui/`) are served beside it and read it.

mod error;
mod events;
mod experiments;
mod lab;
mod metrics;
mod openapi;
mod runs;
mod tests;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, ErrorBody};
pub use openapi::document;
pub use ui::UiConfig;

use super::experiments::Experiment;
use super::runner::Core;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub experiments: Arc<Vec<Experiment>>,
    pub recorder: Option<loadlab_telemetry::MetricsRecorder>,
    /// Cancelled when the service stops: long polls and event streams end.
    pub shutdown: CancellationToken,
    /// What the web UI's pages are told (Grafana).
    pub ui: Arc<UiConfig>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(tests::router())
        .merge(runs::router())
        .merge(experiments::router())
        .merge(lab::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(ui::router())
        .fallback(|request: Request| async move {
            ApiError::NoRoute { method: request.method().to_string(), path: request.uri().path().to_string() }
        })
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let app = router(state).layer(body_limit());
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// Bodies larger than 16 MiB are refused (a batch of data points is far smaller).
fn body_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024)
}

/// A name a client chose for a test or run: 1–128 letters, digits, `-`, `_`, `.`.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let fine = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(())
    } else {
        Err(ApiError::invalid(field, format!("`{id}`: use 1–128 letters, digits, `-`, `_` or `.`")))
    }
}

/// A duration in a query (`30s`, `2m`), at most `max`.
pub fn parse_wait(
    field: &str,
    text: Option<&str>,
    default: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, ApiError> {
    let Some(text) = text else { return Ok(default) };
    let duration = humantime::parse_duration(text)
        .map_err(|error| ApiError::invalid(field, format!("`{text}` is not a duration such as 30s ({error})")))?;
    if duration > max {
        return Err(ApiError::invalid(field, format!("`{text}` is longer than {}", humantime::format_duration(max))));
    }
    Ok(duration)
}
