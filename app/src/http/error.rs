//! The API's one error type. Every refusal is a JSON body `{"error", "message",
//! "field"?}` with a precise 4xx; database trouble is a 503 with `Retry-After` when
//! the database is unreachable, and a logged, generic 500 otherwise.
//!
//! Refusals made below the router (a connection over the cap, a request hyper could
//! not parse) are rendered by [`ApiError::to_http1`] as whole HTTP/1.1 responses, so
//! they carry the same JSON.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db;
use crate::ingest::IngestError;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: u32 = 1;

/// hyper's fixed limits on a request head (not configurable in hyper 1): the request
/// target's length, and the header fields it parses.
pub const HYPER_MAX_URI_BYTES: usize = u16::MAX as usize - 1;
pub const HYPER_MAX_HEADERS: usize = 100;
pub const HYPER_MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

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
    /// The body did not arrive within `--body-read-timeout`.
    #[error("the request body did not arrive within {limit:?} (--body-read-timeout)")]
    BodyTimeout { limit: Duration },
    /// A connection over `--max-connections`.
    #[error("too many connections: device-api holds at most {limit} (--max-connections); retry later")]
    TooManyConnections { limit: u32 },
    /// hyper could not parse the request line or a header.
    #[error("malformed request: the request line or a header is not valid HTTP/1.1")]
    MalformedRequest,
    #[error("request target longer than {HYPER_MAX_URI_BYTES} bytes")]
    UriTooLong,
    #[error(
        "request head too large: more than {HYPER_MAX_HEADERS} header fields, or more than {HYPER_MAX_HEAD_BYTES} bytes"
    )]
    HeadersTooLarge,
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
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::MalformedRequest => StatusCode::BAD_REQUEST,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unavailable(_) | Self::TooManyConnections { .. } => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::BodyTimeout { .. } => "body_timeout",
            Self::TooManyConnections { .. } => "too_many_connections",
            Self::MalformedRequest => "malformed_request",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The error behind one of the bodiless answers hyper makes itself for a request
    /// head it cannot parse (see `serve::io`).
    pub fn for_hyper_status(status: u16) -> Option<Self> {
        match status {
            400 => Some(Self::MalformedRequest),
            414 => Some(Self::UriTooLong),
            431 => Some(Self::HeadersTooLarge),
            _ => None,
        }
    }

    /// Whether the connection must close after this answer: the rest of the request
    /// was not read, or the connection itself is refused.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::BodyTimeout { .. }
                | Self::TooManyConnections { .. }
                | Self::MalformedRequest
                | Self::UriTooLong
                | Self::HeadersTooLarge
        )
    }

    fn body(&self) -> ErrorBody {
        let message = match self {
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
        let field = match self {
            Self::MalformedBody { field, .. } => field.clone(),
            Self::InvalidValue { field, .. } => Some(field.clone()),
            _ => None,
        };
        ErrorBody { error: self.kind(), message, field }
    }

    /// This error as a complete HTTP/1.1 response that closes the connection, for
    /// answers written straight to a socket.
    pub fn to_http1(&self) -> Vec<u8> {
        let status = self.status_code();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            head.push_str(&format!("retry-after: {RETRY_AFTER_SECONDS}\r\n"));
        }
        head.push_str("\r\n");
        [head.into_bytes(), body].concat()
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
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if self.closes_connection() {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
