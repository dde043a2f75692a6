//! `topology.toml`: the lab's hosts, addresses, roles, ports, per-program settings and
//! test plans, parsed and validated, and the facts derived from it (which ports each
//! host serves, what Prometheus scrapes, which flags each program gets).
//!
//! The Nix flake derives the same facts from the same file with `builtins.fromTOML`
//! (`nixos/lib/topology.nix`); a test compares the two, so the derivations here are
//! deliberately simple: sorted maps, one port table, one rule per role.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The topology shipped at the top of the repository, for when no file is given and
/// none is in the current directory.
pub const BUILT_IN: &str = include_str!("../../topology.toml");

/// The host-only network every address must be in (VirtualBox's default; `.1` is the
/// workstation's side of it).
pub const NETWORK: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 0);
pub const PREFIX_LENGTH: u8 = 24;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopologyError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("host name `{0}` appears more than once")]
    DuplicateHost(String),
    #[error("host name `{0}`: use 1–20 lowercase letters, digits and dashes, starting with a letter")]
    BadHostName(String),
    #[error("address {address} is given to both `{first}` and `{second}`")]
    DuplicateAddress { address: Ipv4Addr, first: String, second: String },
    #[error("host `{host}`: address {address} is outside the host-only network 192.168.56.0/24 (usable: .2–.254)")]
    AddressOutsideNetwork { host: String, address: Ipv4Addr },
    #[error("host `{host}`: {what} must be at least {least}")]
    TooSmall { host: String, what: &'static str, least: u32 },
    #[error("host `{host}` lists role `{role}` twice")]
    DuplicateRole { host: String, role: Role },
    #[error("no host has role `{0}`; the lab needs exactly one")]
    MissingRole(Role),
    #[error("role `{role}` is given to {hosts:?}; the lab runs one {role}")]
    RoleOnSeveralHosts { role: Role, hosts: Vec<String> },
    #[error("port {port} is used by both {first} and {second}")]
    PortClash { port: u16, first: &'static str, second: &'static str },
    #[error("port {name} is 0; give a fixed port")]
    ZeroPort { name: &'static str },
    #[error("[lab] scrape_interval `{0}` is not a duration (e.g. \"5s\")")]
    BadInterval(String),
    #[error("[lab] default_plan `{0}` is not one of the plans: {1:?}")]
    UnknownDefaultPlan(String, Vec<String>),
    #[error("plan `{plan}`: target `{target}` is not a role that serves load (device-api or grpc-stress)")]
    BadPlanTarget { plan: String, target: Role },
    #[error("plan `{plan}`: its target `{target}` has no host")]
    PlanTargetMissing { plan: String, target: Role },
    #[error("plan `{plan}`: option `{option}` is set by the lab itself; remove it")]
    ReservedOption { plan: String, option: String },
    #[error("{table}: `{key}` must be a string, number, boolean or a list of those")]
    BadFlagValue { table: String, key: String },
    #[error("[settings.{0}] is not a program the lab runs (device-api, grpc-stress)")]
    UnknownSettings(String),
}

/// A role a host plays.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Database,
    DeviceApi,
    GrpcStress,
    Monitoring,
    Loadgen,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Database, Role::DeviceApi, Role::GrpcStress, Role::Monitoring, Role::Loadgen];

    pub fn name(self) -> &'static str {
        match self {
            Role::Database => "database",
            Role::DeviceApi => "device-api",
            Role::GrpcStress => "grpc-stress",
            Role::Monitoring => "monitoring",
            Role::Loadgen => "loadgen",
        }
    }

    /// The lab cannot run without a host for this role.
    pub fn required(self) -> bool {
        self != Role::GrpcStress
    }

    /// The services a host with this role serves.
    pub fn services(self) -> &'static [Service] {
        match self {
            Role::Database => &[Service::Postgresql, Service::PostgresExporter],
            Role::DeviceApi => &[Service::DeviceApi],
            Role::GrpcStress => &[Service::GrpcStress, Service::GrpcStressMetrics],
            Role::Monitoring => &[Service::Prometheus, Service::Pushgateway, Service::Grafana],
            Role::Loadgen => &[Service::Loadgen],
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that listens on a port of the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    DeviceApi,
    GrpcStress,
    GrpcStressMetrics,
    Loadgen,
    Prometheus,
    Pushgateway,
    Grafana,
    NodeExporter,
    PostgresExporter,
    Postgresql,
}

impl Service {
    pub const ALL: [Service; 10] = [
        Service::DeviceApi,
        Service::GrpcStress,
        Service::GrpcStressMetrics,
        Service::Loadgen,
        Service::Prometheus,
        Service::Pushgateway,
        Service::Grafana,
        Service::NodeExporter,
        Service::PostgresExporter,
        Service::Postgresql,
    ];

    /// Its key in `[ports]`.
    pub fn name(self) -> &'static str {
        match self {
            Service::DeviceApi => "device-api",
            Service::GrpcStress => "grpc-stress",
            Service::GrpcStressMetrics => "grpc-stress-metrics",
            Service::Loadgen => "loadgen",
            Service::Prometheus => "prometheus",
            Service::Pushgateway => "pushgateway",
            Service::Grafana => "grafana",
            Service::NodeExporter => "node-exporter",
            Service::PostgresExporter => "postgres-exporter",
            Service::Postgresql => "postgresql",
        }
    }

    /// The Prometheus job that scrapes it, if one does. Job names are the ones the
    /// rules and dashboards in `monitoring/` select on.
    pub fn scrape_job(self) -> Option<&'static str> {
        match self {
            Service::DeviceApi => Some("device-api"),
            Service::GrpcStressMetrics => Some("grpc-stress"),
            Service::Loadgen => Some("loadgen"),
            Service::Prometheus => Some("prometheus"),
            Service::Pushgateway => Some("pushgateway"),
            Service::NodeExporter => Some("node"),
            Service::PostgresExporter => Some("postgres"),
            Service::GrpcStress | Service::Grafana | Service::Postgresql => None,
        }
    }
}

/// The whole file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub lab: LabSettings,
    pub ports: Ports,
    pub hosts: Vec<Host>,
    /// Per program: long options passed to it (see [`flags`]).
    #[serde(default)]
    pub settings: BTreeMap<String, Flags>,
    #[serde(default)]
    pub plans: BTreeMap<String, Plan>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabSettings {
    pub scrape_interval: String,
    pub default_plan: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ports {
    pub device_api: u16,
    pub grpc_stress: u16,
    pub grpc_stress_metrics: u16,
    pub loadgen: u16,
    pub prometheus: u16,
    pub pushgateway: u16,
    pub grafana: u16,
    pub node_exporter: u16,
    pub postgres_exporter: u16,
    pub postgresql: u16,
}

impl Ports {
    pub fn get(&self, service: Service) -> u16 {
        match service {
            Service::DeviceApi => self.device_api,
            Service::GrpcStress => self.grpc_stress,
            Service::GrpcStressMetrics => self.grpc_stress_metrics,
            Service::Loadgen => self.loadgen,
            Service::Prometheus => self.prometheus,
            Service::Pushgateway => self.pushgateway,
            Service::Grafana => self.grafana,
            Service::NodeExporter => self.node_exporter,
            Service::PostgresExporter => self.postgres_exporter,
            Service::Postgresql => self.postgresql,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub address: Ipv4Addr,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub roles: Vec<Role>,
}

impl Host {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Every service this host listens on: its roles' services and the node exporter.
    pub fn services(&self) -> Vec<Service> {
        let mut services: Vec<Service> = self.roles.iter().flat_map(|role| role.services().iter().copied()).collect();
        services.push(Service::NodeExporter);
        services.sort();
        services
    }
}

/// Long options for a program: `key = value` becomes `--key value`.
pub type Flags = BTreeMap<String, toml::Value>;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub description: String,
    /// The role under load.
    pub target: Role,
    /// `loadgen breakpoint` long options.
    pub loadgen: Flags,
}

/// Options of `loadgen breakpoint` that the lab sets from the topology; a plan may not.
pub const LAB_SET_LOADGEN_OPTIONS: &[&str] =
    &["target", "prometheus", "bottlenecks", "pushgateway", "listen", "out", "run-id"];

impl Topology {
    /// Reads and validates `path`, else ./topology.toml, else the built-in one.
    /// Also returns the text and where it came from (a run keeps both).
    pub fn locate(path: Option<&Path>) -> Result<(Self, String, String), TopologyError> {
        let path = match path {
            Some(path) => path,
            None if Path::new("topology.toml").is_file() => Path::new("topology.toml"),
            None => {
                let source = "topology.toml (built into loadlab)".to_string();
                return Ok((Self::parse(BUILT_IN, &source)?, BUILT_IN.to_string(), source));
            }
        };
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| TopologyError::Parse { file: source.clone(), message: error.to_string() })?;
        Ok((Self::parse(&text, &source)?, text, source))
    }

    /// Parses and validates `text` (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<Self, TopologyError> {
        let topology: Topology = toml::from_str(text)
            .map_err(|error| TopologyError::Parse { file: file.to_string(), message: error.to_string() })?;
        topology.validate()?;
        Ok(topology)
    }

    /// Every rule the lab and the Nix modules rely on.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let mut names: BTreeMap<&str, ()> = BTreeMap::new();
        let mut addresses: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        for host in &self.hosts {
            let name_ok = (1..=20).contains(&host.name.len())
                && host.name.starts_with(|c: char| c.is_ascii_lowercase())
                && host.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !name_ok {
                return Err(TopologyError::BadHostName(host.name.clone()));
            }
            if names.insert(&host.name, ()).is_some() {
                return Err(TopologyError::DuplicateHost(host.name.clone()));
            }
            let [a, b, c, d] = host.address.octets();
            let [na, nb, nc, _] = NETWORK.octets();
            if (a, b, c) != (na, nb, nc) || !(2..=254).contains(&d) {
                return Err(TopologyError::AddressOutsideNetwork { host: host.name.clone(), address: host.address });
            }
            if let Some(first) = addresses.insert(host.address, &host.name) {
                return Err(TopologyError::DuplicateAddress {
                    address: host.address,
                    first: first.to_string(),
                    second: host.name.clone(),
                });
            }
            if host.vcpus < 1 {
                return Err(TopologyError::TooSmall { host: host.name.clone(), what: "vcpus", least: 1 });
            }
            if host.memory_mib < 256 {
                return Err(TopologyError::TooSmall { host: host.name.clone(), what: "memory_mib", least: 256 });
            }
            for (index, role) in host.roles.iter().enumerate() {
                if host.roles[..index].contains(role) {
                    return Err(TopologyError::DuplicateRole { host: host.name.clone(), role: *role });
                }
            }
        }
        for role in Role::ALL {
            let hosts: Vec<String> =
                self.hosts.iter().filter(|host| host.has(role)).map(|host| host.name.clone()).collect();
            if hosts.is_empty() && role.required() {
                return Err(TopologyError::MissingRole(role));
            }
            if hosts.len() > 1 {
                return Err(TopologyError::RoleOnSeveralHosts { role, hosts });
            }
        }
        // One port table for every host, so two services may never share a port.
        let mut ports: BTreeMap<u16, &'static str> = BTreeMap::new();
        for service in Service::ALL {
            let port = self.ports.get(service);
            if port == 0 {
                return Err(TopologyError::ZeroPort { name: service.name() });
            }
            if let Some(first) = ports.insert(port, service.name()) {
                return Err(TopologyError::PortClash { port, first, second: service.name() });
            }
        }
        if humantime::parse_duration(&self.lab.scrape_interval).is_err() {
            return Err(TopologyError::BadInterval(self.lab.scrape_interval.clone()));
        }
        if !self.plans.contains_key(&self.lab.default_plan) {
            return Err(TopologyError::UnknownDefaultPlan(
                self.lab.default_plan.clone(),
                self.plans.keys().cloned().collect(),
            ));
        }
        for (name, plan) in &self.plans {
            if !matches!(plan.target, Role::DeviceApi | Role::GrpcStress) {
                return Err(TopologyError::BadPlanTarget { plan: name.clone(), target: plan.target });
            }
            if self.host_with(plan.target).is_none() {
                return Err(TopologyError::PlanTargetMissing { plan: name.clone(), target: plan.target });
            }
            if let Some(option) = plan.loadgen.keys().find(|key| LAB_SET_LOADGEN_OPTIONS.contains(&key.as_str())) {
                return Err(TopologyError::ReservedOption { plan: name.clone(), option: option.clone() });
            }
            check_flags(&format!("[plans.{name}.loadgen]"), &plan.loadgen)?;
        }
        for (program, settings) in &self.settings {
            if !matches!(program.as_str(), "device-api" | "grpc-stress") {
                return Err(TopologyError::UnknownSettings(program.clone()));
            }
            check_flags(&format!("[settings.{program}]"), settings)?;
        }
        Ok(())
    }

    /// The host that plays `role` (validation guarantees at most one).
    pub fn host_with(&self, role: Role) -> Option<&Host> {
        self.hosts.iter().find(|host| host.has(role))
    }

    pub fn scrape_interval(&self) -> Duration {
        humantime::parse_duration(&self.lab.scrape_interval).expect("validated")
    }

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

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn check_flags(table: &str, flags: &Flags) -> Result<(), TopologyError> {
    for (key, value) in flags {
        let ok = match value {
            toml::Value::Array(items) => items.iter().all(|item| scalar(item).is_some()),
            other => scalar(other).is_some(),
        };
        if !ok {
            return Err(TopologyError::BadFlagValue { table: table.to_string(), key: key.clone() });
        }
    }
    Ok(())
}
