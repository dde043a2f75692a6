//! Measurements: `POST /measurement` (the original, one row) and `POST /measurements`
//! (an array, for batch senders). Both answer 204 only after the rows are committed.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;

use super::extract::{AuthenticatedDevice, StrictJson};
use super::{ApiError, AppState, ErrorBody};
use crate::model::MeasurementInput;

pub fn router() -> Router<AppState> {
    Router::new().route("/measurement", post(post_measurement)).route("/measurements", post(post_measurements))
}

/// What both routes refuse alike (their 204 and 422 differ), for the OpenAPI
/// document; the answers themselves are [`ApiError`]'s.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // never built: it only documents
enum WriteRefusals {
    #[response(status = 400, description = "Malformed JSON, wrong type, missing or unknown field")]
    Malformed(ErrorBody),
    #[response(status = 401, description = "Missing auth header")]
    Unauthenticated(ErrorBody),
    #[response(status = 403, description = "Invalid Cookie: not a UUID, or not a known device")]
    UnknownDevice(ErrorBody),
    #[response(status = 413, description = "Body too large")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not JSON")]
    NotJson(ErrorBody),
    #[response(status = 503, description = "Database unavailable, nothing stored; retry after Retry-After")]
    Unavailable(ErrorBody),
}

/// Stores one measurement for the authenticated device.
///
/// The body's `id` is ignored. Answers 204 once the row is committed. Refused with 422: `charge_now` or
/// `charge_full` negative, `charge_now` > `charge_full`, temperatures outside
/// −100..200 °C, `|charge_rate|` > 1e6, `water_level` outside 0..1e6, non-finite
/// numbers, and `time` older than `--max-measurement-age` or further ahead than
/// `--max-clock-skew`.
#[utoipa::path(post, path = "/measurement", tag = "measurements",
    security(("servant_auth_cookie" = []), ("bearer" = [])),
    request_body = MeasurementInput,
    responses(
        (status = 204, description = "Stored and committed"),
        (status = 422, description = "A value out of range", body = ErrorBody),
        WriteRefusals,
    ))]
pub async fn post_measurement(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    StrictJson(input): StrictJson<MeasurementInput>,
) -> Result<StatusCode, ApiError> {
    let row = input
        .validate(device, state.limits.time_window, Utc::now(), "")
        .map_err(|invalid| ApiError::InvalidValue { field: invalid.field, reason: invalid.reason })?;
    state.ingest.write(vec![row]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores an array of measurements for the authenticated device, all or none.
///
/// The same rules as `POST /measurement`. At most `--max-batch-measurements`
/// elements; an error names the element, e.g. `[3].water_level`.
#[utoipa::path(post, path = "/measurements", tag = "measurements",
    security(("servant_auth_cookie" = []), ("bearer" = [])),
    request_body = Vec<MeasurementInput>,
    responses(
        (status = 204, description = "All stored and committed"),
        (status = 422, description = "A value out of range, an empty array, or too many elements", body = ErrorBody),
        WriteRefusals,
    ))]
pub async fn post_measurements(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    StrictJson(inputs): StrictJson<Vec<MeasurementInput>>,
) -> Result<StatusCode, ApiError> {
    let limit = state.limits.max_batch_measurements;
    if inputs.is_empty() || inputs.len() > limit {
        return Err(ApiError::InvalidValue {
            field: "[]".into(),
            reason: format!("must hold 1 to {limit} measurements, got {}", inputs.len()),
        });
    }
    let now = Utc::now();
    let rows = inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| input.validate(device, state.limits.time_window, now, &format!("[{index}].")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|invalid| ApiError::InvalidValue { field: invalid.field, reason: invalid.reason })?;
    state.ingest.write(rows).await?;
    Ok(StatusCode::NO_CONTENT)
}
