//! `GET /statistics` (the original's path) and `GET /stats` (the documented name).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, AppState, ErrorBody};
use crate::statistics::Statistics;

pub fn router() -> Router<AppState> {
    Router::new().route("/statistics", get(statistics)).route("/stats", get(statistics))
}

/// Totals over each device's latest measurement and the mean water temperature by
/// hour of day.
///
/// Read from rollups the write path keeps, never by scanning the
/// measurement history, so its cost does not grow with the number of rows.
/// `statsTotalWaterEnergy` = Σ water_level × 4186 J/(kg·K) × (water_temp −
/// ambient_temp), in joules, over each device's latest measurement (1 L taken as 1 kg).
#[utoipa::path(get, path = "/statistics", tag = "statistics",
    responses(
        (status = 200, description = "The statistics", body = Statistics),
        (status = 503, description = "Database unavailable; retry after the Retry-After header", body = ErrorBody),
    ))]
pub async fn statistics(State(state): State<AppState>) -> Result<Json<Statistics>, ApiError> {
    Ok(Json(Statistics::read(&state.pool).await?))
}

/// The same as `GET /statistics`, under the name the original's documentation used.
#[utoipa::path(get, path = "/stats", tag = "statistics",
    responses(
        (status = 200, description = "The statistics", body = Statistics),
        (status = 503, description = "Database unavailable; retry after the Retry-After header", body = ErrorBody),
    ))]
#[allow(dead_code)] // documents the alias; the route itself is served by `statistics`
pub async fn stats_alias() {}
