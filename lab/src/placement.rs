//! Where a component runs: which network namespace (none in `process` isolation) and
//! which CPUs. A placement turns a program into the command that starts it there
//! (`ip netns exec NS setpriv … taskset -c CPUS program`; each of those execs the
//! next, so the child's pid is the program's own) and runs readiness probes from
//! inside the same namespace.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::process_user::RunAs;

/// A network namespace and a CPU list; the default is "here, on any CPU".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Name of a namespace under /run/netns (made by [`crate::netns`]).
    pub netns: Option<String>,
    /// A `taskset -c` CPU list, e.g. "0" or "0-1".
    pub cpus: Option<String>,
}

impl Placement {
    /// A command that runs `program` in this placement as `run_as`.
    pub(crate) fn command(&self, program: &Path, run_as: &RunAs) -> Command {
        let mut wrapper: Vec<OsString> = Vec::new();
        if let Some(netns) = &self.netns {
            wrapper.extend(["ip", "netns", "exec", netns].map(OsString::from));
            // `ip netns exec` needs root, so the switch to the server's user happens
            // after it, in setpriv.
            if let RunAs::User { uid, gid, .. } = run_as {
                wrapper.extend(
                    ["setpriv".into(), format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()]
                        .map(OsString::from),
                );
            }
        }
        if let Some(cpus) = &self.cpus {
            wrapper.extend(["taskset", "-c", cpus].map(OsString::from));
        }
        let Some((first, rest)) = wrapper.split_first() else { return run_as.command(program) };
        let mut command = if self.netns.is_some() { Command::new(first) } else { run_as.command(Path::new(first)) };
        command.args(rest).arg(program);
        if let RunAs::User { name, .. } = run_as {
            command.env("USER", name).env("LOGNAME", name).env("HOME", "/tmp");
        }
        command
    }

    /// Runs `work` with this placement's network: on a fresh thread that has entered
    /// the namespace, so sockets it opens live there.
    pub fn within<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
        let Some(netns) = self.netns.clone() else { return Ok(work()) };
        std::thread::spawn(move || {
            let handle = std::fs::File::open(Path::new("/run/netns").join(&netns))?;
            nix::sched::setns(handle, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            Ok(work())
        })
        .join()
        .map_err(|_| std::io::Error::other("probe thread panicked"))?
    }

    /// The status of `GET path` at `address`, seen from this placement.
    pub fn http_status(&self, address: SocketAddr, path: &str) -> Option<u16> {
        let path = path.to_string();
        self.within(move || crate::server_process::http_get_status(address, &path)).ok().flatten()
    }
}

/// The CPUs this process may run on.
pub fn available_cpus() -> Vec<usize> {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else { return vec![0] };
    (0..nix::sched::CpuSet::count()).filter(|cpu| set.is_set(*cpu).unwrap_or(false)).collect()
}

/// Gives each host `vcpus` CPUs out of `available`, in order and wrapping around,
/// so hosts share CPUs only when the machine has fewer than the topology asks for.
/// The host at `generator` (the load generator's) is served first and never shares:
/// when CPUs are short, the others wrap around what is left. A generator that shares
/// CPUs with the system under test saturates with it, and the run then measures the
/// generator.
pub fn assign_cpus(vcpus: &[u32], available: &[usize], generator: Option<usize>) -> Vec<String> {
    let render = |cpus: &mut Vec<usize>| {
        cpus.sort();
        cpus.dedup();
        cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
    };
    let mut assigned = vec![String::new(); vcpus.len()];
    let mut pool: Vec<usize> = available.to_vec();
    if let Some(index) = generator.filter(|_| available.len() > 1) {
        // At most all but one CPU, so the other hosts keep at least one.
        let count = (vcpus[index] as usize).clamp(1, available.len() - 1);
        assigned[index] = render(&mut pool.drain(..count).collect());
    }
    let mut next = 0usize;
    for (index, &count) in vcpus.iter().enumerate() {
        if !assigned[index].is_empty() {
            continue;
        }
        let count = (count as usize).clamp(1, pool.len().max(1));
        let mut cpus: Vec<usize> = (0..count).map(|offset| pool[(next + offset) % pool.len()]).collect();
        next += count;
        assigned[index] = render(&mut cpus);
    }
    assigned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_handed_out_in_turn_and_shared_only_when_short() {
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1, 2, 3, 4, 5], None), ["0", "1,2", "3,4", "5"]);
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1], None), ["0", "0,1", "0,1", "1"]);
        assert_eq!(assign_cpus(&[4], &[0, 1], None), ["0,1"]);
    }

    #[test]
    fn the_generator_never_shares_its_cpus() {
        // Enough CPUs: the same as without.
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1, 2, 3, 4, 5], Some(0)), ["0", "1,2", "3,4", "5"]);
        // Two CPUs: the generator gets one, the rest share the other.
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1], Some(0)), ["0", "1", "1", "1"]);
        // It may not take them all, and a single CPU is shared by everyone.
        assert_eq!(assign_cpus(&[4, 1], &[0, 1], Some(0)), ["0", "1"]);
        assert_eq!(assign_cpus(&[1, 1], &[0], Some(0)), ["0", "0"]);
    }

    #[test]
    fn a_plain_placement_runs_the_program_itself() {
        let command = Placement::default().command(Path::new("/bin/true"), &RunAs::Current);
        assert_eq!(command.get_program(), "/bin/true");
        let pinned = Placement { netns: Some("ns".into()), cpus: Some("0".into()) };
        let command = pinned.command(Path::new("/bin/true"), &RunAs::Current);
        let args: Vec<_> = command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        assert_eq!(command.get_program(), "ip");
        assert_eq!(args, ["netns", "exec", "ns", "taskset", "-c", "0", "/bin/true"]);
    }
}
