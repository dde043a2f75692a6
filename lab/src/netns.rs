//! `netns` isolation: one network namespace per host with the topology's address,
//! all joined by a bridge that lives in a namespace of its own, so the machine's own
//! network is never touched (no address, route or interface is added outside the
//! lab's namespaces). Deleting the namespaces removes every interface with them.
//!
//! Names: `loadlab-<lab id>-<host>` and `loadlab-<lab id>-switch`, so that a crashed
//! lab's namespaces are recognisable (see [`crate::state`]).

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, bail};

/// The prefix of every namespace the lab makes.
pub const PREFIX: &str = "loadlab-";

/// Delay and loss added on every host's way out (so host to host sees both twice
/// for a round trip).
#[derive(Clone, Debug, PartialEq)]
pub struct Netem {
    pub delay: std::time::Duration,
    pub loss_percent: f64,
}

impl std::str::FromStr for Netem {
    type Err = String;

    /// `DELAY[,LOSS%]`, e.g. `2ms` or `5ms,0.1%`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (delay, loss) = text.split_once(',').unwrap_or((text, "0%"));
        let delay = humantime::parse_duration(delay.trim()).map_err(|error| format!("`{delay}`: {error}"))?;
        let loss_percent: f64 =
            loss.trim().trim_end_matches('%').parse().map_err(|_| format!("`{loss}`: expected a loss like 0.1%"))?;
        if !(0.0..=100.0).contains(&loss_percent) {
            return Err(format!("`{loss}`: loss is a percentage, 0–100"));
        }
        Ok(Self { delay, loss_percent })
    }
}

/// The namespaces of one lab. Dropping it deletes them.
#[derive(Debug)]
pub struct Network {
    switch: String,
    hosts: Vec<(String, String)>,
}

impl Network {
    /// The namespace names a lab `lab_id` uses for `hosts` (the switch last).
    pub fn names(lab_id: &str, hosts: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = hosts.iter().map(|host| format!("{PREFIX}{lab_id}-{host}")).collect();
        names.push(format!("{PREFIX}{lab_id}-switch"));
        names
    }

    /// Makes the namespaces, the bridge and one veth pair per host; gives each host
    /// its address (/24) and brings everything up. On failure, what was made is
    /// deleted again.
    pub fn create(lab_id: &str, hosts: &[(&str, Ipv4Addr)], netem: Option<&Netem>) -> anyhow::Result<Self> {
        check_tools()?;
        let host_names: Vec<&str> = hosts.iter().map(|(name, _)| *name).collect();
        let mut names = Self::names(lab_id, &host_names);
        let switch = names.pop().expect("the switch name");
        let mut network = Self { switch: switch.clone(), hosts: Vec::new() };
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for (index, ((host, address), namespace)) in hosts.iter().zip(&names).enumerate() {
            ip(&["netns", "add", namespace])?;
            network.hosts.push((host.to_string(), namespace.clone()));
            let port = format!("p{index}");
            ip(&["link", "add", &port, "netns", &switch, "type", "veth", "peer", "name", "eth0", "netns", namespace])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", namespace, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
            ip(&["-n", namespace, "link", "set", "eth0", "up"])?;
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
            if let Some(netem) = netem {
                let delay = format!("{}us", netem.delay.as_micros());
                let loss = format!("{}%", netem.loss_percent);
                let args =
                    ["-n", namespace, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", &delay, "loss", &loss];
                run("tc", &args).map_err(|error| {
                    if error.to_string().contains("qdisc kind is unknown") {
                        anyhow::anyhow!("--netem: this kernel has no netem queueing discipline (module sch_netem); run without --netem")
                    } else {
                        error
                    }
                })?;
            }
        }
        Ok(network)
    }

    /// The namespace of `host`.
    pub fn namespace(&self, host: &str) -> Option<&str> {
        self.hosts.iter().find(|(name, _)| name == host).map(|(_, namespace)| namespace.as_str())
    }

    /// Every namespace of this lab.
    pub fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = self.hosts.iter().map(|(_, namespace)| namespace.clone()).collect();
        all.push(self.switch.clone());
        all
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for namespace in self.all() {
            delete(&namespace);
        }
    }
}

/// Deletes a namespace (and the interfaces in it); quiet when it is already gone.
pub fn delete(namespace: &str) {
    let _ = Command::new("ip").args(["netns", "del", namespace]).output();
}

/// The lab namespaces that exist now.
pub fn existing() -> Vec<String> {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return Vec::new() };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

fn check_tools() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("--isolation netns needs root (network namespaces); run as root or use --isolation process");
    }
    for tool in ["ip", "tc", "taskset", "setpriv"] {
        if loadlab_supervise::which(tool).is_none() {
            bail!("--isolation netns needs `{tool}` (Debian/Ubuntu: apt-get install iproute2 util-linux)");
        }
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_reads_delay_and_optional_loss() {
        let netem: Netem = "5ms,0.5%".parse().unwrap();
        assert_eq!(netem, Netem { delay: std::time::Duration::from_millis(5), loss_percent: 0.5 });
        assert_eq!("2ms".parse::<Netem>().unwrap().loss_percent, 0.0);
        assert!("fast".parse::<Netem>().is_err());
        assert!("2ms,120%".parse::<Netem>().is_err());
    }
}
