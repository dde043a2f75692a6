//! The web UI: a few pages that read the service's own JSON API from the browser
//! (the overview, a run live or finished, history, an experiment's trend, two runs
//! side by side). One HTML shell names the page; one script renders every page and
//! draws the charts as SVG; one stylesheet. All three are compiled into the binary
//! (`include_str!`), so the UI builds offline with the rest of `loadlab` and needs no
//! JavaScript toolchain or third-party code.
//!
//! Why the browser draws: the live view must redraw every second from server-sent
//! events, and the finished view must show the same charts from the same rows, so
//! one drawing routine fed by the API serves both; server-drawn SVG (loadgen's
//! `output::charts`) stays the static report.html, linked as a download.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;

const SHELL: &str = include_str!("ui/page.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// What the pages need to know beyond the API: where Grafana is, and its dashboards.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UiConfig {
    /// Grafana's base URL (`--grafana`), for links with a run's time range.
    pub grafana: Option<String>,
    /// The lab's dashboards (uid, title), read from `monitoring/grafana/dashboards/`.
    pub dashboards: Vec<Dashboard>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Dashboard {
    pub uid: String,
    pub title: String,
}

impl UiConfig {
    /// The configuration for Grafana at `grafana`, with the dashboards the lab
    /// provisions (those of `monitoring`; none when it cannot be read).
    pub fn new(grafana: Option<String>, monitoring: Option<&std::path::Path>) -> Self {
        let Some(grafana) = grafana else { return Self::default() };
        let mut dashboards = Vec::new();
        let dir = monitoring.map(|dir| dir.join("grafana/dashboards"));
        for entry in dir.and_then(|dir| std::fs::read_dir(dir).ok()).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            if let (Some(uid), Some(title)) = (json["uid"].as_str(), json["title"].as_str()) {
                dashboards.push(Dashboard { uid: uid.to_string(), title: title.to_string() });
            }
        }
        dashboards.sort_by(|a, b| a.title.cmp(&b.title));
        Self { grafana: Some(grafana.trim_end_matches('/').to_string()), dashboards }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { page("overview", "Overview") }))
        .route("/ui/history", get(|| async { page("history", "History") }))
        .route("/ui/compare", get(|| async { page("compare", "Compare two runs") }))
        .route("/ui/runs/{id}", get(|Path(id): Path<String>| async move { page("run", &format!("Run {id}")) }))
        .route(
            "/ui/experiments/{name}",
            get(|Path(name): Path<String>| async move { page("experiment", &format!("Experiment {name}")) }),
        )
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/ui/app.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/ui/config.json", get(config))
}

/// The shell of a page: its name for the script, its title for the tab.
fn page(name: &str, title: &str) -> Html<String> {
    let title: String = title
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect();
    Html(SHELL.replace("{{page}}", name).replace("{{title}}", &title))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn config(State(state): State<AppState>) -> Json<Arc<UiConfig>> {
    Json(state.ui.clone())
}
