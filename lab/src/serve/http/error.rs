//! The API's one error type: every refusal is JSON `{"error", "message", "field"?}`
//! with a precise 4xx; trouble in the store is logged and answered with a generic
//! 500.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::launch::SpecError;
use crate::serve::runner::SubmitError;
use crate::serve::store::{FilterError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the body, query or path is not acceptable.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("no route {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("internal error")]
    Internal(String),
}

/// The body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: invalid, not_found, conflict, no_route, internal.
    pub error: &'static str,
    pub message: String,
    /// The field at fault (a JSON path, query parameter or path segment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid { field: Some(field.to_string()), message: message.into() }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::NoRoute { .. } => "no_route",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!("internal error: {detail}");
        }
        let field = match &self {
            ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody { error: self.code(), message: self.to_string(), field };
        (self.status_code(), Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => ApiError::NotFound(error.to_string()),
            StoreError::Exists(_) | StoreError::Conflict(_) => ApiError::Conflict(error.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<SpecError> for ApiError {
    fn from(error: SpecError) -> Self {
        ApiError::Invalid { field: Some(error.field.clone()), message: error.to_string() }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Spec(error) => error.into(),
            SubmitError::Store(error) => error.into(),
        }
    }
}

impl From<FilterError> for ApiError {
    fn from(error: FilterError) -> Self {
        if error.field.is_empty() {
            ApiError::Internal(error.message)
        } else {
            ApiError::Invalid { field: Some(error.field.to_string()), message: error.to_string() }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        // serde's messages name the field as `…: field: problem` or with `at line`.
        let field = text
            .split_once("Failed to deserialize the JSON body into the target type: ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map(|(path, _)| path.to_string())
            .filter(|path| !path.contains(' '))
            .or_else(|| {
                let (_, rest) = text.split_once("unknown field `")?;
                Some(rest.split_once('`')?.0.to_string())
            });
        ApiError::Invalid { field, message: text }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        let field = text
            .split_once("Failed to deserialize query string: ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map(|(field, _)| field.to_string())
            .filter(|field| !field.contains(' '));
        ApiError::Invalid { field, message: text }
    }
}
