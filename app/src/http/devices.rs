//! Devices: `POST /login` creates one, `GET /command` tells it what to do next.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AuthenticatedDevice, StrictJson};
use super::{ApiError, AppState, ErrorBody};
use crate::model::{Command, DeviceState};

pub fn router() -> Router<AppState> {
    Router::new().route("/login", post(login)).route("/command", get(command))
}

/// The original's login body; the name is ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Ignored; at most 256 characters.
    #[schema(max_length = 256)]
    pub username: String,
}

/// The new device's id, to be sent back as `servant-auth-cookie`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    #[schema(value_type = String, format = Uuid)]
    pub username: uuid::Uuid,
}

/// Longest username accepted (it is ignored, but an absurd one is still refused).
const MAX_USERNAME_CHARS: usize = 256;

/// Creates a device with a new random id, as the original did; the username is ignored.
#[utoipa::path(post, path = "/login", tag = "devices",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Device created", body = LoginResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Username too long", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry after the Retry-After header", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    StrictJson(request): StrictJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if request.username.chars().count() > MAX_USERNAME_CHARS {
        return Err(ApiError::InvalidValue {
            field: "username".into(),
            reason: format!("longer than {MAX_USERNAME_CHARS} characters"),
        });
    }
    let id = state.devices.create().await?;
    Ok(Json(LoginResponse { username: id }))
}

/// What the device should do next.
///
/// Decided from the device's latest measurement: charge when
/// the battery is below 20 % of full, fill when the reservoir holds under 20 litres,
/// flush half the reservoir (`contents` = litres) when the water is above 55 °C.
/// A device with no measurement yet gets every action off.
#[utoipa::path(get, path = "/command", tag = "devices",
    security(("servant_auth_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The command", body = Command),
        (status = 401, description = "Missing auth header", body = ErrorBody),
        (status = 403, description = "Invalid Cookie: not a UUID, or not a known device", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry after the Retry-After header", body = ErrorBody),
    ))]
pub async fn command(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
) -> Result<Json<Command>, ApiError> {
    let latest: Option<DeviceState> = sqlx::query_as(
        "SELECT charge_now, charge_full, water_temp, water_level FROM device_state WHERE device_id = $1",
    )
    .bind(device)
    .fetch_optional(&mut *crate::db::acquire(&state.pool).await?)
    .await?;
    Ok(Json(Command::for_state(latest)))
}
