//! Experiments: named plans the service runs on a schedule (every interval, or daily
//! at a time, UTC), one at a time, each cancelled when it exceeds its timeout, each
//! result recorded; nothing is retried silently (a failed run is a result). The file
//! is TOML:
//!
//! ```toml
//! [experiments.smoke-nightly]
//! plan = "smoke"            # a plan of the topology, run on the lab
//! daily = "02:30"           # or: interval = "6h"
//! timeout = "15m"
//! reference-rate = 800      # p99 at this offered rate is tracked too
//! threshold = 0.05          # smallest relative change reported (default 5 %)
//!
//! [experiments.capacity]
//! target = "http://127.0.0.1:8090/"                 # no lab: loadgen against this
//! loadgen = { scenario = "http", start-rate = 100, step-duration = "2s" }
//! interval = "10m"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::detect::Options;
use super::launch::RunSpec;
use crate::topology::{Flags, Topology};

/// When an experiment runs.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Every interval, counted from the start of its last run.
    Every { seconds: f64 },
    /// Once a day at this time (UTC).
    Daily { at: String },
    /// Only when asked (POST /experiments/{name}/run).
    Manual,
}

/// One experiment, checked.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Experiment {
    pub name: String,
    pub spec: RunSpec,
    pub schedule: Schedule,
    pub timeout_seconds: f64,
    /// The detection's p-value threshold and smallest relative change.
    pub max_p_value: f64,
    pub threshold: f64,
}

impl Experiment {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }

    pub fn detection(&self) -> Options {
        Options { max_p_value: self.max_p_value, min_change: self.threshold, ..Options::default() }
    }

    /// When it is next due, given when its last run started (None: never ran).
    pub fn next_due(
        &self,
        last_start: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        match &self.schedule {
            Schedule::Manual => None,
            Schedule::Every { seconds } => Some(match last_start {
                Some(last) => (last + chrono::Duration::milliseconds((seconds * 1000.0) as i64)).max(now),
                None => now,
            }),
            Schedule::Daily { at } => {
                let time = chrono::NaiveTime::parse_from_str(at, "%H:%M").ok()?;
                // The first such time after an instant.
                let next_after = |instant: chrono::DateTime<chrono::Utc>| {
                    let candidate = instant.date_naive().and_time(time).and_utc();
                    if candidate > instant { candidate } else { candidate + chrono::Duration::days(1) }
                };
                // One missed while the service was down runs as soon as it is back.
                Some(match last_start {
                    Some(last) => next_after(last).max(now),
                    None => next_after(now),
                })
            }
        }
    }
}

/// The file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    experiments: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    plan: Option<String>,
    target: Option<String>,
    #[serde(default)]
    loadgen: Flags,
    #[serde(default)]
    overrides: Flags,
    prometheus: Option<String>,
    reference_rate: Option<f64>,
    interval: Option<String>,
    daily: Option<String>,
    timeout: Option<String>,
    threshold: Option<f64>,
    p_value: Option<f64>,
}

/// A file that cannot be used: what is wrong, naming the experiment and field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ExperimentsError {
    pub file: String,
    pub message: String,
}

/// Default timeout of an experiment's run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Reads and checks an experiments file against the service's topology.
pub fn load(path: &Path, topology: Option<&(Topology, String)>) -> Result<Vec<Experiment>, ExperimentsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ExperimentsError { file: path.display().to_string(), message: error.to_string() })?;
    parse(&text, topology).map_err(|message| ExperimentsError { file: path.display().to_string(), message })
}

/// [`load`] on text.
pub fn parse(text: &str, topology: Option<&(Topology, String)>) -> Result<Vec<Experiment>, String> {
    let file: File = toml::from_str(text).map_err(|error| error.to_string().trim().to_string())?;
    let mut experiments = Vec::new();
    for (name, entry) in file.experiments {
        let at = |field: &str| format!("[experiments.{name}] {field}");
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(format!("[experiments.{name}]: use 1–64 letters, digits, `-`, `_` or `.` in a name"));
        }
        let duration = |field: &str, text: &str| -> Result<Duration, String> {
            let duration = humantime::parse_duration(text)
                .map_err(|error| format!("{}: `{text}` is not a duration ({error})", at(field)))?;
            if duration.is_zero() {
                return Err(format!("{}: must be longer than 0", at(field)));
            }
            Ok(duration)
        };
        let schedule = match (&entry.interval, &entry.daily) {
            (Some(_), Some(_)) => return Err(format!("{}: give interval or daily, not both", at("interval"))),
            (Some(interval), None) => Schedule::Every { seconds: duration("interval", interval)?.as_secs_f64() },
            (None, Some(daily)) => {
                chrono::NaiveTime::parse_from_str(daily, "%H:%M")
                    .map_err(|_| format!("{}: `{daily}` is not a time of day HH:MM (UTC)", at("daily")))?;
                Schedule::Daily { at: daily.clone() }
            }
            (None, None) => Schedule::Manual,
        };
        let timeout = match &entry.timeout {
            Some(timeout) => duration("timeout", timeout)?,
            None => DEFAULT_TIMEOUT,
        };
        let threshold = entry.threshold.unwrap_or(Options::default().min_change);
        if !(threshold.is_finite() && (0.0..10.0).contains(&threshold)) {
            return Err(format!("{}: {threshold} is not a relative change in [0, 10)", at("threshold")));
        }
        let p_value = entry.p_value.unwrap_or(Options::default().max_p_value);
        if !(p_value > 0.0 && p_value < 1.0) {
            return Err(format!("{}: {p_value} is not a probability in (0, 1)", at("p-value")));
        }
        let spec = RunSpec {
            plan: entry.plan,
            topology: None,
            target: entry.target,
            loadgen: entry.loadgen,
            overrides: entry.overrides,
            prometheus: entry.prometheus,
            reference_rate: entry.reference_rate,
        };
        spec.resolve(topology).map_err(|error| format!("{}: {}", at(&error.field), error.message))?;
        experiments.push(Experiment {
            name,
            spec,
            schedule,
            timeout_seconds: timeout.as_secs_f64(),
            max_p_value: p_value,
            threshold,
        });
    }
    Ok(experiments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> (Topology, String) {
        let text = crate::topology::BUILT_IN.to_string();
        (Topology::parse(&text, "built-in").unwrap(), text)
    }

    #[test]
    fn a_file_parses_with_its_defaults() {
        let text = r#"
            [experiments.nightly]
            plan = "smoke"
            daily = "02:30"
            reference-rate = 800

            [experiments.capacity]
            target = "http://127.0.0.1:8090/"
            loadgen = { scenario = "http", start-rate = 100 }
            interval = "90s"
            timeout = "2m"
            threshold = 0.1
        "#;
        let experiments = parse(text, Some(&topology())).unwrap();
        assert_eq!(experiments.len(), 2);
        let capacity = &experiments[0];
        assert_eq!(capacity.name, "capacity");
        assert_eq!(capacity.schedule, Schedule::Every { seconds: 90.0 });
        assert_eq!(capacity.timeout(), Duration::from_secs(120));
        assert_eq!(capacity.threshold, 0.1);
        let nightly = &experiments[1];
        assert_eq!(nightly.schedule, Schedule::Daily { at: "02:30".into() });
        assert_eq!(nightly.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(nightly.spec.reference_rate, Some(800.0));
    }

    #[test]
    fn bad_files_name_the_experiment_and_field() {
        let refused = |text: &str| parse(text, Some(&topology())).unwrap_err();
        assert!(refused("[experiments.a]\nplan = \"nope\"").contains("[experiments.a] plan: no plan `nope`"));
        assert!(refused("[experiments.a]\nplan = \"smoke\"\ninterval = \"soon\"").contains("[experiments.a] interval"));
        assert!(refused("[experiments.a]\nplan = \"smoke\"\ndaily = \"25:00\"").contains("[experiments.a] daily"));
        assert!(refused("[experiments.a]\nplan = \"smoke\"\ntimeout = \"0s\"").contains("longer than 0"));
        assert!(refused("[experiments.a]\nplan = \"smoke\"\nthreshold = -1.0").contains("threshold"));
        assert!(refused("[experiments.a]\nplan = \"smoke\"\nwhen = 1").contains("unknown field `when`"));
        assert!(refused("[experiments.\"a b\"]\nplan = \"smoke\"").contains("letters, digits"));
    }

    #[test]
    fn schedules_say_when_they_are_due() {
        let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&chrono::Utc);
        let mut experiment = parse("[experiments.a]\nplan = \"smoke\"\ninterval = \"1h\"", Some(&topology())).unwrap();
        let experiment = experiment.remove(0);
        let now = at("2026-01-01T10:00:00Z");
        assert_eq!(experiment.next_due(None, now), Some(now), "never ran: now");
        assert_eq!(experiment.next_due(Some(at("2026-01-01T09:30:00Z")), now), Some(at("2026-01-01T10:30:00Z")));
        assert_eq!(experiment.next_due(Some(at("2026-01-01T08:00:00Z")), now), Some(now), "overdue: now");
        let daily = Experiment { schedule: Schedule::Daily { at: "02:30".into() }, ..experiment.clone() };
        assert_eq!(daily.next_due(None, now), Some(at("2026-01-02T02:30:00Z")));
        assert_eq!(daily.next_due(None, at("2026-01-01T01:00:00Z")), Some(at("2026-01-01T02:30:00Z")));
        let manual = Experiment { schedule: Schedule::Manual, ..experiment };
        assert_eq!(manual.next_due(None, now), None);
    }
}
