//! Reading `topology.toml` and checking every rule the lab and the Nix modules rely
//! on. A file that breaks one is refused with one error that names the problem (and
//! `loadlab` exits 2).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use loadgen::launch::LAB_SET;

use super::model::{NETWORK, Role, Service, Topology};
use super::{BUILT_IN, Flags, scalar};

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
    #[error("no host has role `{0}`; the lab needs {needs}", needs = if .0.several() { "at least one" } else { "exactly one" })]
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
        self.check_hosts()?;
        self.check_roles()?;
        self.check_ports()?;
        if humantime::parse_duration(&self.lab.scrape_interval).is_err() {
            return Err(TopologyError::BadInterval(self.lab.scrape_interval.clone()));
        }
        self.check_plans()?;
        self.check_settings()
    }

    /// Names, addresses, sizes and roles of each host.
    fn check_hosts(&self) -> Result<(), TopologyError> {
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
        Ok(())
    }

    /// Each required role on a host, and only load generators on several.
    fn check_roles(&self) -> Result<(), TopologyError> {
        for role in Role::ALL {
            let hosts: Vec<String> =
                self.hosts.iter().filter(|host| host.has(role)).map(|host| host.name.clone()).collect();
            if hosts.is_empty() && role.required() {
                return Err(TopologyError::MissingRole(role));
            }
            if hosts.len() > 1 && !role.several() {
                return Err(TopologyError::RoleOnSeveralHosts { role, hosts });
            }
        }
        Ok(())
    }

    /// One port table for every host, so two services may never share a port.
    fn check_ports(&self) -> Result<(), TopologyError> {
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
        Ok(())
    }

    /// The default plan exists; each plan targets a served role that has a host and
    /// sets none of the options the lab sets itself.
    fn check_plans(&self) -> Result<(), TopologyError> {
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
            if let Some(option) = plan.loadgen.keys().find(|key| LAB_SET.contains(&key.as_str())) {
                return Err(TopologyError::ReservedOption { plan: name.clone(), option: option.clone() });
            }
            check_flags(&format!("[plans.{name}.loadgen]"), &plan.loadgen)?;
        }
        Ok(())
    }

    /// Settings only for the programs the lab runs, each a valid flag table.
    fn check_settings(&self) -> Result<(), TopologyError> {
        for (program, settings) in &self.settings {
            if !matches!(program.as_str(), "device-api" | "grpc-stress") {
                return Err(TopologyError::UnknownSettings(program.clone()));
            }
            check_flags(&format!("[settings.{program}]"), settings)?;
        }
        Ok(())
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
