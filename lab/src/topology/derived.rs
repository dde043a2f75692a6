//! The facts derived from a topology, in the form the Nix side evaluates to as well
//! (`nixos/lib/topology.nix`; a test compares the two): each host's open ports, what
//! Prometheus scrapes, which flags each program and plan gives. Deliberately simple:
//! sorted maps, one port table, one rule per role.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::model::{Flags, Host, Service, Topology};

impl Topology {
    /// The flags from `[settings.<program>]`.
    pub fn settings_flags(&self, program: &str) -> Vec<String> {
        self.settings.get(program).map(flags).unwrap_or_default()
    }

    /// What Prometheus scrapes: job → targets, each target placed by `address_of`.
    pub fn scrape_jobs(&self, address_of: impl Fn(&Host, Service) -> SocketAddr) -> BTreeMap<String, Vec<String>> {
        let mut jobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for host in &self.hosts {
            for service in host.services() {
                if let Some(job) = service.scrape_job() {
                    jobs.entry(job.to_string()).or_default().push(address_of(host, service).to_string());
                }
            }
        }
        jobs
    }

    /// The facts both deployments derive from the file, in the form the Nix side
    /// evaluates to (`nix-instantiate --eval --strict --json nixos/lib/derived.nix`).
    pub fn derived(&self) -> Derived {
        let hosts = self
            .hosts
            .iter()
            .map(|host| {
                let mut open_tcp_ports: Vec<u16> =
                    host.services().iter().map(|service| self.ports.get(*service)).collect();
                open_tcp_ports.sort();
                let derived = DerivedHost {
                    address: host.address.to_string(),
                    vcpus: host.vcpus,
                    memory_mib: host.memory_mib,
                    roles: host.roles.iter().map(|role| role.name().to_string()).collect(),
                    open_tcp_ports,
                };
                (host.name.clone(), derived)
            })
            .collect();
        let scrape_jobs = self.scrape_jobs(|host, service| SocketAddr::from((host.address, self.ports.get(service))));
        let settings = self.settings.keys().map(|program| (program.clone(), self.settings_flags(program))).collect();
        let plans = self.plans.iter().map(|(name, plan)| (name.clone(), flags(&plan.loadgen))).collect();
        Derived { hosts, scrape_jobs, settings, plans }
    }
}

/// See [`Topology::derived`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Derived {
    pub hosts: BTreeMap<String, DerivedHost>,
    pub scrape_jobs: BTreeMap<String, Vec<String>>,
    /// Program → its flags from `[settings]`.
    pub settings: BTreeMap<String, Vec<String>>,
    /// Plan → its `loadgen breakpoint` flags.
    pub plans: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DerivedHost {
    pub address: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub roles: Vec<String>,
    /// The firewall's allowed TCP ports: every service of its roles and the node exporter.
    pub open_tcp_ports: Vec<u16>,
}

/// `key = value` pairs as long options, keys in sorted order: `--key value`; `true`
/// is a bare `--key`, `false` is left out; a list repeats the option.
pub fn flags(table: &Flags) -> Vec<String> {
    let mut args = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Boolean(true) => args.push(format!("--{key}")),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    args.push(format!("--{key}"));
                    args.push(scalar(item).unwrap_or_default());
                }
            }
            other => {
                args.push(format!("--{key}"));
                args.push(scalar(other).unwrap_or_default());
            }
        }
    }
    args
}

pub(crate) fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}
