//! Runs each experiment when it is due. An experiment whose last run is still queued
//! or running is not queued again (its tick is skipped, not stacked up); when it is
//! due is counted from its last run in the store, so a restart of the service does
//! not run everything again at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::experiments::Experiment;
use super::runner::{Core, SubmitError};
use super::store::{Filter, Run};

/// Queues a run of `experiment` now.
pub async fn run_now(core: &Core, experiment: &Experiment) -> Result<Run, SubmitError> {
    core.submit(experiment.spec.clone(), Some(&experiment.name), Some(experiment.timeout())).await
}

/// The newest run of an experiment: its start (or creation).
async fn last_start(core: &Core, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let filter = Filter { experiment: Some(name.to_string()), limit: Some(1), ..Filter::default() };
    let runs = core.store.list(&filter).await.ok()?;
    let run = runs.first()?;
    let at = run.started_at.as_deref().unwrap_or(&run.created_at);
    Some(chrono::DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&chrono::Utc))
}

/// Until `stop`: queues every experiment when it is due.
pub async fn schedule(core: Core, experiments: Arc<Vec<Experiment>>, stop: CancellationToken) {
    let mut last_run: HashMap<String, String> = HashMap::new();
    loop {
        for experiment in experiments.iter() {
            if last_run.get(&experiment.name).is_some_and(|id| core.is_active(id)) {
                continue;
            }
            let now = chrono::Utc::now();
            let due = experiment.next_due(last_start(&core, &experiment.name).await, now);
            if due.is_some_and(|due| due <= now) {
                match run_now(&core, experiment).await {
                    Ok(run) => {
                        tracing::info!(experiment = experiment.name, run = run.id, "queued");
                        last_run.insert(experiment.name.clone(), run.id);
                    }
                    Err(error) => tracing::error!(experiment = experiment.name, "cannot queue: {error}"),
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stop.cancelled() => break,
        }
    }
}
