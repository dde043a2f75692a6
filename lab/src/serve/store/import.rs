//! Importing `results/<run id>/` directories (what `loadlab run` and `loadgen
//! breakpoint --out` leave) into the store: the report, its seconds, `lab.json`, the
//! topology as used, and `metrics.csv` and `report.html` kept as files. A run already
//! in the store is left as it is, so importing twice changes nothing.

use std::path::Path;

use loadgen::output::merge::parse_seconds;
use loadgen::output::report::Report;

use super::database::{Store, StoreError};
use super::model::{Finish, NewRun, Outcome, RunState};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {detail}")]
    Unreadable { path: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Imported {
    /// A new run with this id.
    Added(String),
    /// The store had it already.
    AlreadyThere(String),
}

/// Imports one run directory; `source` says who recorded it (`import`, `run`).
pub async fn import_dir(store: &Store, dir: &Path, source: &'static str) -> Result<Imported, ImportError> {
    let unreadable = |detail: String| ImportError::Unreadable { path: dir.display().to_string(), detail };
    let id = dir.file_name().and_then(|name| name.to_str()).ok_or_else(|| unreadable("no directory name".into()))?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let summary = read("summary.json");
    let lab: Option<serde_json::Value> = read("lab.json").and_then(|text| serde_json::from_str(&text).ok());
    if summary.is_none() && lab.is_none() {
        return Err(unreadable("neither summary.json nor lab.json: not a run directory".into()));
    }
    let report: Option<Report> = summary
        .map(|text| serde_json::from_str(&text).map_err(|error| unreadable(format!("summary.json: {error}"))))
        .transpose()?;
    match store.get(id).await {
        Ok(_) => return Ok(Imported::AlreadyThere(id.to_string())),
        Err(StoreError::NotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let plan = lab.as_ref().and_then(|lab| lab["plan"].as_str()).map(str::to_string);
    let run = NewRun {
        id: id.to_string(),
        kind: "plan",
        source,
        state: Some(RunState::Running),
        plan,
        target: report.as_ref().map(|report| report.target.clone()),
        scenario: report.as_ref().map(|report| report.scenario.clone()),
        topology: read("topology.toml"),
        request: Some(serde_json::json!({"imported_from": dir.display().to_string()})),
        ..NewRun::default()
    };
    match store.create(run).await {
        Ok(_) => {}
        Err(StoreError::Exists(_)) => return Ok(Imported::AlreadyThere(id.to_string())),
        Err(error) => return Err(error.into()),
    }
    let seconds = match read("seconds.csv").map(|csv| parse_seconds(&csv)) {
        Some(Ok(seconds)) => seconds,
        Some(Err(error)) => {
            tracing::warn!("{}: seconds.csv not imported: {error}", dir.display());
            Vec::new()
        }
        None => Vec::new(),
    };
    for (position, row) in seconds.iter().enumerate() {
        store.add_second(id, position as u64, row).await?;
    }
    for name in ["metrics.csv", "report.html"] {
        if let Ok(content) = std::fs::read(dir.join(name)) {
            store.put_file(id, name, &content).await?;
        }
    }
    let lab_error = lab.as_ref().and_then(|lab| lab["error"].as_str()).map(str::to_string);
    let exit_code = report.as_ref().map(|report| exit_code_of(report, lab.as_ref()));
    let (state, outcome) = match (&report, exit_code) {
        (Some(report), _) if report.interrupted => (RunState::Finished, Outcome::Interrupted),
        (Some(_), Some(code)) => (RunState::Finished, Outcome::of_exit_code(code)),
        _ => (RunState::Failed, Outcome::Failed),
    };
    let finish = Finish {
        state: Some(state),
        outcome: Some(outcome),
        verdict: Some(report.as_ref().map_or_else(|| "the lab did not come up".to_string(), |r| r.verdict.clone())),
        exit_code,
        error: lab_error,
        lab,
        report,
    };
    let (started, finished) = times(id, dir, finish.report.as_ref());
    store.finish(id, finish).await?;
    // Keep the run's own times, not the import's.
    if let Some(started) = started {
        store.restamp(id, &started, finished.as_deref()).await?;
    }
    Ok(Imported::Added(id.to_string()))
}

/// When the run started (the report's start, else the id's time) and ended (the
/// start plus what its steps ran, else the directory's last change).
fn times(id: &str, dir: &Path, report: Option<&Report>) -> (Option<String>, Option<String>) {
    use super::model::timestamp;
    let started = report
        .and_then(|report| chrono::DateTime::parse_from_rfc3339(&report.started_at).ok())
        .map(|at| at.with_timezone(&chrono::Utc))
        .or_else(|| {
            let time = id.get(..16)?;
            Some(chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%SZ").ok()?.and_utc())
        });
    let ran: f64 = report.map_or(0.0, |report| report.steps.iter().map(|step| step.ran_seconds.max(0.0)).sum());
    let finished = match started {
        Some(at) if ran > 0.0 => Some(at + chrono::Duration::milliseconds((ran * 1000.0) as i64)),
        _ => std::fs::metadata(dir).and_then(|meta| meta.modified()).ok().map(chrono::DateTime::<chrono::Utc>::from),
    };
    (started.map(timestamp), finished.map(timestamp))
}

/// loadgen's exit code: from lab.json when `loadlab run` wrote one, else judged from
/// the report as loadgen judges it.
fn exit_code_of(report: &Report, lab: Option<&serde_json::Value>) -> u8 {
    if let Some(code) = lab.and_then(|lab| lab["loadgen_exit_code"].as_u64()) {
        return code as u8;
    }
    if report.interrupted {
        loadgen::exit::INTERRUPTED
    } else if report.verdict == "held" {
        loadgen::exit::HELD
    } else {
        loadgen::exit::THRESHOLD
    }
}

/// Imports every run directory under `dir` (or `dir` itself when it is one).
pub async fn import_tree(store: &Store, dir: &Path) -> Result<Vec<Result<Imported, ImportError>>, ImportError> {
    let is_run = |path: &Path| path.join("summary.json").is_file() || path.join("lab.json").is_file();
    if is_run(dir) {
        return Ok(vec![import_dir(store, dir, "import").await]);
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|error| ImportError::Unreadable { path: dir.display().to_string(), detail: error.to_string() })?;
    let mut runs: Vec<_> =
        entries.filter_map(Result::ok).map(|entry| entry.path()).filter(|path| is_run(path)).collect();
    runs.sort();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(import_dir(store, &run, "import").await);
    }
    Ok(outcomes)
}

/// `loadlab run --store DIR`: records the run directory it just left, and says so. A
/// store that cannot be written is a warning: the run's own directory is complete.
pub fn record_run(store: Option<&Path>, run_dir: &Path) {
    let Some(store_dir) = store else { return };
    let outcome =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string()).and_then(
            |runtime| {
                runtime.block_on(async {
                    let store = Store::open(store_dir).await.map_err(|error| error.to_string())?;
                    let imported = import_dir(&store, run_dir, "run").await.map_err(|error| error.to_string());
                    store.close().await;
                    imported
                })
            },
        );
    match outcome {
        Ok(Imported::Added(id) | Imported::AlreadyThere(id)) => {
            crate::run::say(&format!("recorded run {id} in the store at {}", store_dir.display()));
        }
        Err(error) => crate::run::say(&format!("WARNING: the run was not recorded in the store: {error}")),
    }
}
