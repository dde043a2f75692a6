//! `GET /topology`: what the service runs plans on — the topology's hosts, roles,
//! ports and scrape jobs (as `loadlab topology` derives them), its plans with their
//! options, and how the service reaches the lab.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/topology", get(topology))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanInfo {
    pub description: String,
    /// The role under load.
    pub target: String,
    /// Its `loadgen breakpoint` options.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabInfo {
    /// `local` (brought up for each run) or `network` (the topology's hosts).
    pub mode: String,
    /// Hosts, open ports, scrape jobs, program flags.
    #[schema(value_type = Object)]
    pub derived: serde_json::Value,
    pub default_plan: String,
    pub plans: BTreeMap<String, PlanInfo>,
}

/// The topology and plans the service runs.
#[utoipa::path(get, path = "/topology", tag = "service",
    responses((status = 200, body = LabInfo), (status = 404, body = super::ErrorBody)))]
pub async fn topology(State(state): State<AppState>) -> Result<Json<LabInfo>, ApiError> {
    let topology =
        state.core.topology.as_ref().ok_or_else(|| ApiError::NotFound("the service has no topology".into()))?;
    let (topology, _) = topology.as_ref();
    let mode = match state.core.lab.mode {
        crate::serve::lab::LabMode::Local => "local",
        crate::serve::lab::LabMode::Network => "network",
    };
    let plans = topology
        .plans
        .iter()
        .map(|(name, plan)| {
            let info = PlanInfo {
                description: plan.description.clone(),
                target: plan.target.name().to_string(),
                options: crate::serve::launch::flags_json(&plan.loadgen),
            };
            (name.clone(), info)
        })
        .collect();
    Ok(Json(LabInfo {
        mode: mode.to_string(),
        derived: serde_json::to_value(topology.derived()).map_err(|error| ApiError::Internal(error.to_string()))?,
        default_plan: topology.lab.default_plan.clone(),
        plans,
    }))
}
