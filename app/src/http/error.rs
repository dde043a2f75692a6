//! The API's one error type. Every refusal is a JSON body `{"error", "message",
//! "field"?}` with a precise 4xx; database trouble is a 503 with `Retry-After` when
//! the database is unreachable, and a logged, generic 500 otherwise.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db;
use crate::ingest::IngestError;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `servant-auth-cookie` (or `Authorization: Bearer`) header.
    #[error("Missing auth header")]
    MissingAuth,
    /// The credential is not a UUID.
    #[error("Invalid Cookie")]
    InvalidCookie,
    /// A UUID, but no such device.
    #[error("Invalid Cookie: unknown device")]
    UnknownDevice,
    /// The body is not the JSON the route takes (syntax, types, missing or unknown
    /// fields). `field` is the JSON path where parsing stopped, when known.
    #[error("{message}")]
    MalformedBody { field: Option<String>, message: String },
    /// Well-formed, but a value is out of range.
    #[error("{field}: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind, e.g. `invalid_value`.
    pub error: &'static str,
    /// What was wrong, for a person.
    pub message: String,
    /// The offending field (a JSON path such as `[3].water_level`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingAuth => StatusCode::UNAUTHORIZED,
            Self::InvalidCookie | Self::UnknownDevice => StatusCode::FORBIDDEN,
            Self::MalformedBody { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidValue { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::MissingAuth => "missing_auth",
            Self::InvalidCookie => "invalid_cookie",
            Self::UnknownDevice => "unknown_device",
            Self::MalformedBody { .. } => "malformed_body",
            Self::InvalidValue { .. } => "invalid_value",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if db::is_unavailable(&error) {
            Self::Unavailable(format!("database unreachable ({error})"))
        } else {
            Self::Internal(error.to_string())
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Unavailable(_) | IngestError::ShuttingDown => Self::Unavailable(error.to_string()),
            IngestError::Failed(detail) => Self::Internal(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = match &self {
            // Details of a fault stay in the log, not in the answer.
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                self.to_string()
            }
            Self::Unavailable(detail) => {
                tracing::warn!(%detail, "answering 503");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let field = match &self {
            Self::MalformedBody { field, .. } => field.clone(),
            Self::InvalidValue { field, .. } => Some(field.clone()),
            _ => None,
        };
        let mut response = (status, Json(ErrorBody { error: self.kind(), message, field })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
