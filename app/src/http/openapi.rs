//! `GET /openapi.json`: the OpenAPI 3 document of every route, generated from the
//! handlers' annotations so it cannot drift from the code.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{AppState, devices, measurements, service, statistics};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "device-api",
        description = "loadlab's model IoT device-collection API. Compatible with the original \
            Servant API (paths, JSON shapes, servant-auth-cookie), with validation, batching and \
            metrics added. Every error is JSON: {error, message, field?}.",
    ),
    paths(
        devices::login,
        devices::command,
        measurements::post_measurement,
        measurements::post_measurements,
        statistics::statistics,
        statistics::stats_alias,
        service::health,
        service::ready,
        service::metrics,
        openapi_json,
    ),
    modifiers(&AuthSchemes),
)]
pub struct ApiDoc;

struct AuthSchemes;

impl Modify for AuthSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "servant_auth_cookie",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                super::AUTH_COOKIE_HEADER,
                "The device id returned by POST /login",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(document(state.limits.max_batch_measurements))
}

/// The document with the limits this server was started with: a batch holds 1 to
/// `--max-batch-measurements` elements.
pub fn document(max_batch_measurements: usize) -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let batch = document.pointer_mut("/paths/~1measurements/post/requestBody/content/application~1json/schema");
    if let Some(serde_json::Value::Object(schema)) = batch {
        schema.insert("minItems".into(), 1.into());
        schema.insert("maxItems".into(), max_batch_measurements.into());
    }
    document
}
