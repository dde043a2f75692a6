//! The HTTP layer: one router per resource merged here, the shared [`AppState`], the
//! request-metrics middleware, and JSON answers for unknown routes and methods.

mod devices;
mod error;
mod extract;
mod measurements;
mod openapi;
mod service;
mod statistics;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use sqlx::PgPool;

pub use error::{ApiError, ErrorBody};
pub use extract::AUTH_COOKIE_HEADER;
pub use openapi::ApiDoc;

use crate::devices::Devices;
use crate::ingest::Ingest;
use crate::metrics as names;
use crate::model::TimeWindow;
use loadlab_telemetry::MetricsRecorder;

/// Request limits taken from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_measurements: usize,
    pub time_window: TimeWindow,
}

/// What every handler can reach. axum clones it for every request and extractor, so
/// it is one `Arc`: cloning the handles inside one by one cost a few percent of a
/// `POST /measurement`'s CPU (`perf`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The handles behind [`AppState`].
pub struct Shared {
    pub pool: PgPool,
    pub devices: Arc<Devices>,
    pub ingest: Ingest,
    pub limits: Limits,
    pub recorder: MetricsRecorder,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(devices::router())
        .merge(measurements::router())
        .merge(statistics::router())
        .merge(service::router())
        .merge(openapi::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(record_request))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal("handler panicked".into()))
        }))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound { method: method.to_string(), path: uri.path().to_string() }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_string() }
}

/// Counts and times every request by route template (never the raw path, which
/// would make one series per device), method and status.
async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let _in_flight = InFlight::enter();
    let response = next.run(request).await;
    let labels = [("route", route), ("method", method), ("status", response.status().as_u16().to_string())];
    metrics::counter!(names::REQUESTS, &labels).increment(1);
    metrics::histogram!(names::REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Counts a request in flight until dropped, so a request whose client went away
/// (its future dropped mid-way) is still counted out.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!(names::REQUESTS_IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(names::REQUESTS_IN_FLIGHT).decrement(1.0);
    }
}
