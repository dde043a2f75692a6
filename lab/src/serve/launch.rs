//! Starting a plan: the one place that turns what a run asks for into loadgen's
//! words and runs them in this process through loadgen's library
//! (`execute_watched`), never by reading a child's output. Every second and every
//! step arrive as [`LiveEvent`]s while it runs.
//!
//! The load comes from the lab's `loadgen agent`s (one per loadgen host): [`words`]
//! adds `--agents`, and this process is their controller through loadgen's library (a
//! cancel reaches every agent through the same token). A run with a target of its own
//! sends its load from this process.

use std::collections::BTreeMap;

use clap::Parser;
use loadgen::output::report::Report;
use loadgen::run::LiveEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use loadgen::launch::LAB_SET;

use crate::topology::{Flags, Topology};

/// What a run asks for: a plan of the topology (run on the lab), or loadgen options
/// against a target of its own (no lab).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// A `[plans.NAME]` of the topology (default: its `[lab] default_plan` when no
    /// `target` is given).
    #[serde(default)]
    pub plan: Option<String>,
    /// A whole topology file (TOML text) to run the plan on, instead of the
    /// service's.
    #[serde(default)]
    pub topology: Option<String>,
    /// Run against this URL without the lab (e.g. `loadgen target`); `loadgen`
    /// gives the breakpoint options.
    #[serde(default)]
    pub target: Option<String>,
    /// `loadgen breakpoint` long options for a `target` run, e.g.
    /// {"scenario": "http", "start-rate": 100}.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub loadgen: Flags,
    /// Options laid over the plan's, e.g. {"start-rate": 200, "step-duration": "5s",
    /// "slo-latency": "100ms"}.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub overrides: Flags,
    /// A Prometheus for a `target` run's bottleneck analysis (the lab's own is used
    /// for plans).
    #[serde(default)]
    pub prometheus: Option<String>,
    /// The offered rate whose corrected p99 is tracked (requests/s).
    #[serde(default)]
    pub reference_rate: Option<f64>,
}

/// A request that cannot run: which field, and why.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> SpecError {
    SpecError { field: field.to_string(), message: message.into() }
}

/// The plan's name (when it runs on the lab), the topology it runs on and the
/// breakpoint options, checked as far as they can be before the run.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub plan: Option<String>,
    pub topology: Option<(Topology, String)>,
    /// `loadgen breakpoint` options without the lab-set ones.
    pub flags: Flags,
}

impl RunSpec {
    /// Checks the request against `topology` (the service's, when it has one) and
    /// loadgen's own parser, so a run that cannot start is refused before it is queued.
    pub fn resolve(&self, topology: Option<&(Topology, String)>) -> Result<Resolved, SpecError> {
        for (field, flags) in [("loadgen", &self.loadgen), ("overrides", &self.overrides)] {
            if let Some(option) = flags.keys().find(|key| LAB_SET.contains(&key.as_str())) {
                return Err(refuse(&format!("{field}.{option}"), "is set by the service itself; remove it"));
            }
        }
        if let Some(rate) = self.reference_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(refuse("reference_rate", format!("{rate} is not a positive rate")));
        }
        let resolved = if let Some(target) = &self.target {
            if self.plan.is_some() || self.topology.is_some() {
                return Err(refuse("target", "a run has either a target of its own or a plan of the topology"));
            }
            let mut flags = self.loadgen.clone();
            flags.extend(self.overrides.clone());
            check_words(target, &flags, self.prometheus.as_deref(), "loadgen")?;
            Resolved { plan: None, topology: None, flags }
        } else {
            if !self.loadgen.is_empty() {
                return Err(refuse("loadgen", "applies to runs with a target; a plan's options are in the topology"));
            }
            if self.prometheus.is_some() {
                return Err(refuse("prometheus", "a plan uses the lab's own Prometheus"));
            }
            let topology = match &self.topology {
                Some(text) => {
                    let parsed = Topology::parse(text, "the request's topology")
                        .map_err(|e| refuse("topology", e.to_string()))?;
                    (parsed, text.clone())
                }
                None => topology.cloned().ok_or_else(|| refuse("topology", "the service has no topology; send one"))?,
            };
            let name = self.plan.clone().unwrap_or_else(|| topology.0.lab.default_plan.clone());
            let Some(plan) = topology.0.plans.get(&name) else {
                let known: Vec<&String> = topology.0.plans.keys().collect();
                return Err(refuse("plan", format!("no plan `{name}` in the topology; plans: {known:?}")));
            };
            let mut flags = plan.loadgen.clone();
            flags.extend(self.overrides.clone());
            check_words("http://127.0.0.1:1", &flags, None, "overrides")?;
            Resolved { plan: Some(name), topology: Some(topology), flags }
        };
        Ok(resolved)
    }
}

/// Whether loadgen accepts these options (against a stand-in target). A refusal
/// names the request's field: `target`, `prometheus`, or `field` for the options.
fn check_words(target: &str, flags: &Flags, prometheus: Option<&str>, field: &str) -> Result<(), SpecError> {
    let where_ = Where { target: target.to_string(), prometheus: prometheus.map(str::to_string), ..Where::default() };
    let words = words(flags, &where_, "check");
    let blame = |message: String| {
        let field = if message.contains("--target") {
            "target"
        } else if message.contains("--prometheus") {
            "prometheus"
        } else {
            field
        };
        refuse(field, message)
    };
    let cli =
        loadgen::cli::Cli::try_parse_from(&words).map_err(|error| blame(first_line(&error.render().to_string())))?;
    cli.command.into_plan().map_err(blame)?;
    Ok(())
}

fn first_line(text: &str) -> String {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or(text).trim().to_string()
}

/// Where the load goes and what watches it.
#[derive(Clone, Debug, Default)]
pub struct Where {
    pub target: String,
    /// loadgen's `/metrics` while it runs (the loadgen host's address on the lab).
    pub listen: Option<std::net::SocketAddr>,
    pub prometheus: Option<String>,
    pub pushgateway: Option<String>,
    pub bottlenecks: Option<std::path::PathBuf>,
    /// The lab's agents, which send the load (none: this process sends it).
    pub agents: Vec<String>,
    pub agent_token_file: Option<std::path::PathBuf>,
}

/// loadgen's words for a breakpoint search with `flags` at `where_` (built by
/// loadgen's own [`loadgen::launch::Breakpoint`], as `loadlab run` builds its own).
pub fn words(flags: &Flags, where_: &Where, run_id: &str) -> Vec<String> {
    let launch = loadgen::launch::Breakpoint {
        target: where_.target.clone(),
        listen: where_.listen,
        out: None,
        run_id: run_id.to_string(),
        bottlenecks: where_.prometheus.as_ref().and(where_.bottlenecks.clone()),
        prometheus: where_.prometheus.clone(),
        pushgateway: where_.pushgateway.clone(),
        agents: where_.agents.clone(),
        agent_token_file: where_.agent_token_file.clone(),
        plan: crate::topology::flags(flags),
    };
    std::iter::once("loadgen".to_string()).chain(launch.args()).collect()
}

/// Runs loadgen's words in this process until they end or `stop` is cancelled
/// (loadgen then ends the current step and reports what ran).
pub async fn execute(
    words: &[String],
    stop: CancellationToken,
    events: UnboundedSender<LiveEvent>,
) -> Result<(Report, u8), String> {
    let cli = loadgen::cli::Cli::try_parse_from(words).map_err(|error| first_line(&error.render().to_string()))?;
    let plan = cli.command.into_plan()?.ok_or("not a load command")?;
    loadgen::run::execute_watched(&plan, stop, false, Some(events)).await.map_err(|error| error.to_string())
}

/// Options as a JSON object (for the record of what ran).
pub fn flags_json(flags: &Flags) -> serde_json::Value {
    let map: BTreeMap<&String, serde_json::Value> =
        flags.iter().map(|(key, value)| (key, serde_json::to_value(value).unwrap_or_default())).collect();
    serde_json::to_value(map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> (Topology, String) {
        let text = crate::topology::BUILT_IN.to_string();
        (Topology::parse(&text, "built-in").unwrap(), text)
    }

    #[test]
    fn a_plan_resolves_with_its_overrides() {
        let mut spec = RunSpec { plan: Some("smoke".into()), ..RunSpec::default() };
        spec.overrides.insert("start-rate".into(), toml::Value::Integer(200));
        let resolved = spec.resolve(Some(&topology())).unwrap();
        assert_eq!(resolved.plan.as_deref(), Some("smoke"));
        assert_eq!(resolved.flags["start-rate"], toml::Value::Integer(200));
        let words = words(&resolved.flags, &Where { target: "http://x:1".into(), ..Where::default() }, "r1");
        assert!(words.windows(2).any(|pair| pair == ["--start-rate", "200"]), "{words:?}");
        assert!(words.windows(2).any(|pair| pair == ["--listen", "none"]));
    }

    #[test]
    fn bad_requests_name_their_field() {
        let topology = topology();
        let refused = |spec: RunSpec| spec.resolve(Some(&topology)).unwrap_err();
        assert_eq!(refused(RunSpec { plan: Some("nope".into()), ..RunSpec::default() }).field, "plan");
        let mut spec = RunSpec::default();
        spec.overrides.insert("target".into(), toml::Value::String("http://elsewhere".into()));
        assert_eq!(refused(spec).field, "overrides.target");
        let mut spec = RunSpec::default();
        spec.overrides.insert("start-rate".into(), toml::Value::String("fast".into()));
        let error = refused(spec);
        assert_eq!(error.field, "overrides");
        assert!(error.message.contains("start-rate"), "{error}");
        let spec = RunSpec { topology: Some("not = [toml".into()), ..RunSpec::default() };
        assert_eq!(refused(spec).field, "topology");
        let spec = RunSpec { target: Some("ftp://x".into()), ..RunSpec::default() };
        assert_eq!(refused(spec).field, "target");
        let spec = RunSpec { reference_rate: Some(-1.0), ..RunSpec::default() };
        assert_eq!(refused(spec).field, "reference_rate");
        let mut spec = RunSpec { target: Some("http://127.0.0.1:9".into()), ..RunSpec::default() };
        spec.loadgen.insert("max-rate".into(), toml::Value::Integer(10));
        spec.loadgen.insert("start-rate".into(), toml::Value::Integer(100));
        let error = refused(spec);
        assert_eq!(error.field, "loadgen");
        assert!(error.message.contains("--max-rate 10 is below --start-rate 100"), "{error}");
    }
}
