//! What the store holds, as the API shows it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Created, not started (a test waiting for its clients, a plan queued).
    Created,
    Running,
    Finished,
    /// Its process ended before it finished (killed, crashed): what it recorded is kept.
    Incomplete,
    /// It could not run (the lab did not come up, the plan was refused).
    Failed,
    /// Stopped on request or by its experiment's timeout.
    Cancelled,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Incomplete => "incomplete",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Created, Self::Running, Self::Finished, Self::Incomplete, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|state| state.name() == text)
    }

    /// Whether nothing more will happen to the run.
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Created | RunState::Running)
    }
}

/// The verdict in one word (the `verdict` label of `/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The plan ran to its end (a breakpoint search: the breaking point was found).
    Held,
    /// A threshold broke, or even the first step broke the SLO.
    Threshold,
    /// Stopped before its end (interrupted, an agent lost).
    Interrupted,
    /// Could not run.
    Failed,
    /// Cancelled by its experiment's timeout.
    Timeout,
    /// Cancelled on request.
    Cancelled,
    /// Its process died.
    Incomplete,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Held,
        Outcome::Threshold,
        Outcome::Interrupted,
        Outcome::Failed,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Incomplete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Held => "held",
            Outcome::Threshold => "threshold",
            Outcome::Interrupted => "interrupted",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Incomplete => "incomplete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.name() == text)
    }

    /// From loadgen's exit code.
    pub fn of_exit_code(code: u8) -> Self {
        match code {
            loadgen::exit::HELD => Outcome::Held,
            loadgen::exit::THRESHOLD => Outcome::Threshold,
            loadgen::exit::INTERRUPTED => Outcome::Interrupted,
            _ => Outcome::Failed,
        }
    }
}

/// One run as listed and as read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    pub id: String,
    /// `plan` (a load run) or `test` (a results-server test fed by its clients).
    pub kind: String,
    pub state: RunState,
    pub outcome: Option<Outcome>,
    /// Who recorded it: `serve`, `run` (loadlab run --store), `import`, `api`.
    pub source: String,
    pub plan: Option<String>,
    pub experiment: Option<String>,
    pub description: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// loadgen's verdict in words.
    pub verdict: Option<String>,
    pub exit_code: Option<i64>,
    /// Highest rate that held the SLO, requests/s.
    pub breaking_point: Option<f64>,
    /// Lowest rate that broke it.
    pub broken_rate: Option<f64>,
    /// The experiment's reference rate, and the corrected p99 there (ms).
    pub reference_rate: Option<f64>,
    pub p99_at_reference_ms: Option<f64>,
    pub duration_seconds: Option<f64>,
    pub target: Option<String>,
    pub scenario: Option<String>,
    pub error: Option<String>,
}

/// A run to record.
#[derive(Clone, Debug, Default)]
pub struct NewRun {
    pub id: String,
    pub kind: &'static str,
    pub source: &'static str,
    pub state: Option<RunState>,
    pub plan: Option<String>,
    pub experiment: Option<String>,
    pub description: Option<String>,
    pub target: Option<String>,
    pub scenario: Option<String>,
    pub reference_rate: Option<f64>,
    /// The JSON that asked for it.
    pub request: Option<serde_json::Value>,
    pub topology: Option<String>,
}

/// How a run ended.
#[derive(Clone, Debug, Default)]
pub struct Finish {
    pub state: Option<RunState>,
    pub outcome: Option<Outcome>,
    pub verdict: Option<String>,
    pub exit_code: Option<u8>,
    /// loadgen's report (summary.json).
    pub report: Option<loadgen::output::report::Report>,
    pub error: Option<String>,
    pub lab: Option<serde_json::Value>,
}

/// Filters of the run list; every one optional.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only runs of this plan.
    pub plan: Option<String>,
    /// Only runs of this experiment.
    pub experiment: Option<String>,
    /// created, running, finished, incomplete, failed or cancelled.
    pub state: Option<String>,
    /// The verdict in one word: held, threshold, interrupted, failed, timeout,
    /// cancelled, incomplete.
    pub outcome: Option<String>,
    /// plan or test.
    pub kind: Option<String>,
    /// Created at or after this instant (RFC 3339, or a date YYYY-MM-DD).
    pub since: Option<String>,
    /// Created before this instant (RFC 3339, or a date YYYY-MM-DD).
    pub until: Option<String>,
    /// Most runs to return, newest first [1, 10000] (default 100).
    pub limit: Option<u32>,
    /// Runs to skip (for pages).
    pub offset: Option<u32>,
}

/// A data point as a client sends it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDataPoint {
    /// When it was measured (RFC 3339); default: when it arrived.
    pub time: Option<String>,
    pub name: String,
    pub value: f64,
    /// Labels, e.g. {"room": "blue"}.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A data point as stored.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DataPoint {
    pub time: String,
    pub client: Option<String>,
    pub name: String,
    pub value: f64,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Now, as the store writes instants: RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    timestamp(chrono::Utc::now())
}

pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An instant given by a user (RFC 3339, or a date meaning its midnight UTC), in the
/// store's form; `None` when it is neither.
pub fn parse_instant(text: &str) -> Option<String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(timestamp(at.with_timezone(&chrono::Utc)));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(timestamp(date.and_hms_opt(0, 0, 0)?.and_utc()))
}
