//! Service endpoints: `/health` (the process answers), `/ready` (the database is
//! reachable and migrated, and which engine stores measurements), `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AppState, ErrorBody};
use crate::db::{self, StorageEngine};
use crate::metrics as names;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not-ready`.
    pub status: &'static str,
    /// Which engine stores `measurement`, when the database answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<StorageEngine>,
    /// The newest migration applied, when the database answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<i64>,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "up" })
}

/// Whether the database is reachable and fully migrated, and which storage engine
/// holds measurements (`timescaledb` or `native-partitions`).
#[utoipa::path(get, path = "/ready", tag = "service",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Database unreachable or not migrated", body = Readiness),
    ))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let expected = db::MIGRATOR.iter().map(|migration| migration.version).max().unwrap_or(0);
    let checked = async {
        let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&state.pool)
            .await?;
        let engine = StorageEngine::detect(&state.pool).await?;
        Ok::<_, sqlx::Error>((applied.unwrap_or(0), engine))
    }
    .await;
    let (status, body) = match checked {
        Ok((applied, engine)) if applied >= expected => (
            StatusCode::OK,
            Readiness { status: "ready", engine: Some(engine), migration: Some(applied), reason: None },
        ),
        Ok((applied, engine)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Readiness {
                status: "not-ready",
                engine: Some(engine),
                migration: Some(applied),
                reason: Some(format!("database migrated to {applied}, this build needs {expected}")),
            },
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Readiness { status: "not-ready", engine: None, migration: None, reason: Some(error.to_string()) },
        ),
    };
    metrics::gauge!(names::DATABASE_UP).set(if status == StatusCode::OK { 1.0 } else { 0.0 });
    if let Some(engine) = body.engine {
        metrics::gauge!(names::STORAGE_ENGINE, "engine" => engine.as_str()).set(1.0);
    }
    (status, Json(body))
}

/// Prometheus text format: requests, ingest, pool, storage engine, process and tokio
/// runtime metrics.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String),
        (status = 500, description = "Never expected", body = ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let size = state.pool.size() as f64;
    let idle = state.pool.num_idle() as f64;
    metrics::gauge!(names::POOL_SIZE).set(size);
    metrics::gauge!(names::POOL_IDLE).set(idle);
    metrics::gauge!(names::POOL_IN_USE).set((size - idle).max(0.0));
    metrics::gauge!(names::POOL_MAX).set(f64::from(state.pool.options().get_max_connections()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.recorder.render_async().await)
}
