//! Where a plan's load goes. A plan of the topology runs on the lab: on this machine
//! the service brings the lab up for the run with the code `loadlab up` and `loadlab
//! run` use ([`Stack`]) and tears it down after; on the VM network (`--lab network`)
//! the topology's hosts are already running and are used at their addresses. A run
//! with a target of its own needs no lab.

use std::path::PathBuf;

use serde_json::json;

use super::launch::{Resolved, Where};
use crate::session::{LabOptions, Session};
use crate::stack::{Isolation, Stack};
use crate::topology::{Role, Service, Topology};

/// How the service reaches the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LabMode {
    /// Bring the topology up on this machine for each run (process isolation).
    Local,
    /// The topology's hosts are running (the NixOS network): use their addresses.
    Network,
}

/// A lab ready for one run; dropping it tears down what was started for the run.
pub struct Prepared {
    pub where_: Where,
    /// What `lab.json` says about the set-up.
    pub lab: serde_json::Value,
    local: Option<(Session, Stack)>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("where_", &self.where_).finish()
    }
}

impl Prepared {
    /// A component of the local lab that has exited during the run, if any.
    pub fn exited(&mut self) -> Option<(String, String)> {
        self.local.as_mut().and_then(|(_, stack)| stack.exited())
    }

    /// Tears the lab down (blocking: servers are stopped and waited for).
    pub fn stop(mut self) {
        if let Some((session, stack)) = self.local.take() {
            stack.stop();
            drop(session);
        }
    }
}

/// What the service needs to bring a lab up.
#[derive(Clone, Debug)]
pub struct LabConfig {
    pub mode: LabMode,
    pub options: LabOptions,
    /// Where per-run component logs go (`<data>/logs/<run id>/`).
    pub logs: PathBuf,
}

/// Prepares the lab for `resolved` (blocking: call it from a blocking thread).
pub fn prepare(
    config: &LabConfig,
    resolved: &Resolved,
    spec_target: Option<&str>,
    spec_prometheus: Option<&str>,
    run_id: &str,
) -> anyhow::Result<Prepared> {
    if let Some(target) = spec_target {
        let where_ =
            Where { target: target.to_string(), prometheus: spec_prometheus.map(str::to_string), ..Where::default() };
        let bottlenecks =
            spec_prometheus.map(|_| crate::session::find_monitoring_dir().map(|dir| dir.join("bottlenecks.toml")));
        let where_ = Where { bottlenecks: bottlenecks.transpose()?, ..where_ };
        return Ok(Prepared { lab: json!({"mode": "target", "target": target}), where_, local: None });
    }
    let (topology, text) = resolved.topology.as_ref().ok_or_else(|| anyhow::anyhow!("a plan needs a topology"))?;
    let plan_name = resolved.plan.as_deref().unwrap_or_default();
    let plan = topology.plans.get(plan_name).ok_or_else(|| anyhow::anyhow!("no plan `{plan_name}`"))?;
    match config.mode {
        LabMode::Network => {
            let address = |role: Role, service: Service| -> Option<String> {
                let host = topology.host_with(role)?;
                Some(format!("http://{}:{}", host.address, topology.ports.get(service)))
            };
            let target_service = if plan.target == Role::GrpcStress { Service::GrpcStress } else { Service::DeviceApi };
            let target =
                address(plan.target, target_service).ok_or_else(|| anyhow::anyhow!("no host for the target"))?;
            let monitoring = match &config.options.monitoring {
                Some(dir) => dir.clone(),
                None => crate::session::find_monitoring_dir()?,
            };
            // The loadgen hosts' agents send the load, with the token they were given.
            let agents: Vec<String> = topology
                .hosts_with(Role::Loadgen)
                .map(|host| format!("http://{}:{}", host.address, topology.ports.get(Service::LoadgenAgent)))
                .collect();
            let token = config.options.agent_token_file.clone().ok_or_else(|| {
                anyhow::anyhow!("--lab network drives the loadgen hosts' agents: give --agent-token-file (their token)")
            })?;
            let where_ = Where {
                target,
                listen: None,
                prometheus: address(Role::Monitoring, Service::Prometheus),
                pushgateway: address(Role::Monitoring, Service::Pushgateway),
                bottlenecks: Some(monitoring.join("bottlenecks.toml")),
                agents,
                agent_token_file: Some(token),
            };
            Ok(Prepared { lab: json!({"mode": "network", "plan": plan_name}), where_, local: None })
        }
        LabMode::Local => {
            if config.options.isolation == Isolation::Netns {
                anyhow::bail!(
                    "loadlab serve runs plans in its own process, which cannot reach network namespaces: \
                     use --isolation process"
                );
            }
            // The session reads the topology from a file: the run's own copy.
            let work = tempfile::Builder::new().prefix("loadlab-serve-topology-").tempdir()?;
            let file = work.path().join("topology.toml");
            std::fs::write(&file, text)?;
            let mut options = config.options.clone();
            options.topology = Some(file);
            let logs = config.logs.join(run_id);
            let mut session = Session::open(&options, "serve", run_id, Some(logs.clone()))?;
            drop(work);
            let say = |line: &str| tracing::info!(run = run_id, "{line}");
            let stack = Stack::start(&session.topology, &session.stack_options, &mut session.registration, &say)
                .map_err(|error| error.context(format!("the lab did not come up; logs in {}", logs.display())))?;
            let layout = stack.layout.clone();
            let topology = &session.topology;
            let monitor = topology.host_with(Role::Monitoring).expect("validated");
            let target_host = topology.host_with(plan.target).expect("validated");
            let target_service = if plan.target == Role::GrpcStress { Service::GrpcStress } else { Service::DeviceApi };
            // The agents serve the loadgen hosts' /metrics; this process serves none.
            let where_ = Where {
                target: format!("http://{}", layout.address(target_host, target_service)),
                listen: None,
                prometheus: stack
                    .has("prometheus")
                    .then(|| format!("http://{}", layout.address(monitor, Service::Prometheus))),
                pushgateway: stack
                    .has("pushgateway")
                    .then(|| format!("http://{}", layout.address(monitor, Service::Pushgateway))),
                bottlenecks: Some(session.stack_options.monitoring_dir.join("bottlenecks.toml")),
                agents: stack.agents.urls.clone(),
                agent_token_file: Some(stack.agents.token_file.clone()),
            };
            let lab = json!({
                "mode": "local",
                "plan": plan_name,
                "isolation": session.stack_options.isolation,
                "layout": &stack.layout,
                "missing": stack.missing.iter().map(|(name, why)| json!({"component": name, "why": why})).collect::<Vec<_>>(),
                "logs": logs,
            });
            Ok(Prepared { where_, lab, local: Some((session, stack)) })
        }
    }
}

/// The service's topology: the file given, ./topology.toml, or the built-in one.
pub fn service_topology(options: &LabOptions) -> Result<(Topology, String), crate::topology::TopologyError> {
    let (topology, text, _) = Topology::locate(options.topology.as_deref())?;
    Ok((topology, text))
}
