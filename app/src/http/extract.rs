//! Request extractors that refuse bad input with a precise [`ApiError`]:
//! [`StrictJson`] (content type, size limit, JSON with the path of the offending
//! field) and [`AuthenticatedDevice`] (the original's cookie header, or a bearer token).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::serve::BodyReadTimeout;

/// The original's authentication header.
pub const AUTH_COOKIE_HEADER: &str = "servant-auth-cookie";

/// A JSON body parsed strictly: `Content-Type: application/json`, at most
/// `--max-body-bytes`, no trailing data, and errors that name the field.
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.limits.max_body_bytes;
        let bytes = axum::body::to_bytes(request.into_body(), limit).await.map_err(|error| {
            if cause::<http_body_util::LengthLimitError>(&error).is_some() {
                ApiError::PayloadTooLarge { limit }
            } else if let Some(timeout) = cause::<BodyReadTimeout>(&error) {
                ApiError::BodyTimeout { limit: timeout.limit }
            } else {
                ApiError::MalformedBody { field: None, message: format!("could not read the body: {error}") }
            }
        })?;
        parse_json(&bytes).map(StrictJson)
    }
}

/// The first error of type `E` in `error`'s chain of sources (body errors arrive
/// wrapped by each body layer they pass).
fn cause<'a, E: std::error::Error + 'static>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// Parses `bytes` as one JSON value of type `T`, naming the field where it failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        // A missing field is reported at its parent; point at the field itself.
        let named = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), named) {
            (".", Some(name)) => Some(name.to_string()),
            (_, Some(name)) => Some(format!("{path}.{name}")),
            (".", None) => None,
            (_, None) => Some(path),
        };
        ApiError::MalformedBody { field, message }
    })?;
    deserializer.end().map_err(|error| ApiError::MalformedBody { field: None, message: error.to_string() })?;
    Ok(value)
}

/// The device a request acts for, proven by `servant-auth-cookie: <uuid>` (the
/// original's header) or `Authorization: Bearer <uuid>`.
pub struct AuthenticatedDevice(pub Uuid);

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let cookie = parts.headers.get(AUTH_COOKIE_HEADER).map(|value| value.as_bytes());
        let bearer = || {
            let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token.trim().as_bytes())
        };
        let credential = cookie.or_else(bearer).ok_or(ApiError::MissingAuth)?;
        let id = std::str::from_utf8(credential)
            .ok()
            .and_then(|text| Uuid::parse_str(text.trim()).ok())
            .ok_or(ApiError::InvalidCookie)?;
        if !state.devices.exists(id).await? {
            return Err(ApiError::UnknownDevice);
        }
        Ok(Self(id))
    }
}
