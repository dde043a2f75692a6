//! Where everything of a lab listens and runs, decided before anything starts:
//! - `process` isolation: every host's services on loopback, host 192.168.56.X as
//!   127.0.56.X (all of 127/8 is loopback on Linux), on the topology's ports;
//! - `netns` isolation: each host in its own network namespace with its topology
//!   address.
//!
//! In both, each host's processes are pinned to its share of the CPUs, the load
//! generators' never shared with another role's host (see [`assign_cpus`]).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::bail;
use loadlab_supervise::Place;

use crate::netns::Network;
use crate::placement::{assign_cpus, available_cpus};
use crate::stack::StackOptions;
use crate::topology::{Host, Role, Service, Topology};

/// How the hosts of the topology are separated on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Processes on loopback (127.0.56.X for host 192.168.56.X).
    Process,
    /// One network namespace per host, on a bridge, with the topology's addresses
    /// (needs root).
    Netns,
}

/// Where each service of each host is reachable, and how to run things there.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Layout {
    pub isolation: Isolation,
    /// host → service name → address.
    pub addresses: BTreeMap<String, BTreeMap<String, SocketAddr>>,
    /// host → namespace (netns only).
    pub namespaces: BTreeMap<String, String>,
    /// host → CPU list.
    pub cpus: BTreeMap<String, String>,
}

impl Layout {
    /// Resolves every host's services; in `process` isolation a taken port is an
    /// error naming its holder, unless `any_port`.
    pub fn resolve(topology: &Topology, options: &StackOptions, lab_id: &str) -> anyhow::Result<Self> {
        let mut layout = Layout {
            isolation: options.isolation,
            addresses: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            cpus: BTreeMap::new(),
        };
        // Both isolations pin each host to its share of the CPUs, so the generator
        // never shares a CPU with the system under test.
        let vcpus: Vec<u32> = topology.hosts.iter().map(|host| host.vcpus).collect();
        let generators: Vec<usize> =
            (0..topology.hosts.len()).filter(|index| topology.hosts[*index].has(Role::Loadgen)).collect();
        let cpus = assign_cpus(&vcpus, &available_cpus(), &generators);
        for (host, cpus) in topology.hosts.iter().zip(cpus) {
            layout.cpus.insert(host.name.clone(), cpus);
        }
        if options.isolation == Isolation::Netns {
            let names: Vec<&str> = topology.hosts.iter().map(|host| host.name.as_str()).collect();
            for (host, namespace) in topology.hosts.iter().zip(Network::names(lab_id, &names)) {
                layout.namespaces.insert(host.name.clone(), namespace);
            }
        }
        for host in &topology.hosts {
            let ip = layout.ip(host);
            let mut services = BTreeMap::new();
            for service in host.services() {
                let wanted = topology.ports.get(service);
                let port = match options.isolation {
                    Isolation::Netns => wanted,
                    Isolation::Process => choose_port(ip, wanted, service, options.any_port)?,
                };
                services.insert(service.name().to_string(), SocketAddr::from((ip, port)));
            }
            layout.addresses.insert(host.name.clone(), services);
        }
        Ok(layout)
    }

    /// The address a host has in this isolation.
    pub fn ip(&self, host: &Host) -> Ipv4Addr {
        match self.isolation {
            Isolation::Netns => host.address,
            Isolation::Process => {
                let [_, _, _, last] = host.address.octets();
                Ipv4Addr::new(127, 0, 56, last)
            }
        }
    }

    pub fn address(&self, host: &Host, service: Service) -> SocketAddr {
        self.addresses[&host.name][service.name()]
    }

    /// Where `host`'s processes run: its namespace and CPUs.
    pub fn place(&self, host: &Host) -> Place {
        Place {
            netns: self.namespaces.get(&host.name).cloned(),
            cpus: self.cpus.get(&host.name).cloned(),
            ..Place::default()
        }
    }
}

/// `wanted` on `ip` when free; otherwise a free port with `any_port`, or an error
/// that names who holds it.
fn choose_port(ip: Ipv4Addr, wanted: u16, service: Service, any_port: bool) -> anyhow::Result<u16> {
    match TcpListener::bind((ip, wanted)) {
        Ok(_) => Ok(wanted),
        Err(_) if any_port => Ok(loadlab_supervise::ports::free_port_on(ip)?),
        Err(error) => {
            let holder =
                loadlab_supervise::ports::holder(wanted).unwrap_or_else(|| "a process loadlab cannot see".to_string());
            bail!(
                "port {wanted} for {} on {ip} is taken ({error}) by {holder}; stop it, change [ports] in the \
                 topology, or pass --any-port",
                service.name()
            )
        }
    }
}
