//! The topology's model: hosts, addresses, roles, ports, per-program settings and
//! test plans, as `topology.toml` spells them (serde), and the two tables every other
//! part reads: which services each role runs and which Prometheus job scrapes each.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The host-only network every address must be in (VirtualBox's default; `.1` is the
/// workstation's side of it).
pub const NETWORK: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 0);
pub const PREFIX_LENGTH: u8 = 24;

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

    /// Several hosts may play it: load generators (each runs a `loadgen agent`, and
    /// one controller drives them as one generator). Every other role is one server.
    pub fn several(self) -> bool {
        self == Role::Loadgen
    }

    /// The services a host with this role serves.
    pub fn services(self) -> &'static [Service] {
        match self {
            Role::Database => &[Service::Postgresql, Service::PostgresExporter],
            Role::DeviceApi => &[Service::DeviceApi],
            Role::GrpcStress => &[Service::GrpcStress, Service::GrpcStressMetrics],
            Role::Monitoring => &[Service::Prometheus, Service::Pushgateway, Service::Grafana],
            Role::Loadgen => &[Service::Loadgen, Service::LoadgenAgent],
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
    /// A loadgen host's `/metrics` (its agent's).
    Loadgen,
    /// A loadgen host's agent, where the controller drives it (gRPC).
    LoadgenAgent,
    Prometheus,
    Pushgateway,
    Grafana,
    NodeExporter,
    PostgresExporter,
    Postgresql,
}

impl Service {
    pub const ALL: [Service; 11] = [
        Service::DeviceApi,
        Service::GrpcStress,
        Service::GrpcStressMetrics,
        Service::Loadgen,
        Service::LoadgenAgent,
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
            Service::LoadgenAgent => "loadgen-agent",
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
            Service::GrpcStress | Service::LoadgenAgent | Service::Grafana | Service::Postgresql => None,
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
    /// Per program: long options passed to it (see [`super::flags`]).
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
    pub loadgen_agent: u16,
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
            Service::LoadgenAgent => self.loadgen_agent,
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

/// Long options for a program: `key = value` becomes `--key value` (see
/// [`super::flags`]).
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

impl Topology {
    /// The host that plays `role` (validation guarantees at most one, but for roles
    /// that [`Role::several`] hosts play: then the first).
    pub fn host_with(&self, role: Role) -> Option<&Host> {
        self.hosts.iter().find(|host| host.has(role))
    }

    /// Every host that plays `role`, in the file's order.
    pub fn hosts_with(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |host| host.has(role))
    }

    pub fn scrape_interval(&self) -> Duration {
        humantime::parse_duration(&self.lab.scrape_interval).expect("validated")
    }
}
