//! Where a process runs: which network namespace, which CPUs, as which user, at what
//! priority. A place turns a program into the command that starts it there (`ip
//! netns exec NS setpriv … nice -n N taskset -c CPUS program`; each of those execs
//! the next, so the child's pid is the program's own) and runs probes from inside
//! the same namespace.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::RunAs;

/// A network namespace, a CPU list, a user and a priority; the default is "here, on
/// any CPU, as ourselves".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// Name of a namespace under /run/netns; `None`: this process's own.
    pub netns: Option<String>,
    /// A `taskset -c` CPU list, e.g. "0" or "0-1"; `None`: any CPU.
    pub cpus: Option<String>,
    /// The user it runs as.
    pub user: RunAs,
    /// A `nice` adjustment (positive: a lower priority than ours).
    pub nice: Option<i32>,
}

impl Place {
    /// A command that runs `program` here.
    pub fn command(&self, program: &Path) -> Command {
        let mut wrapper: Vec<OsString> = Vec::new();
        if let Some(netns) = &self.netns {
            wrapper.extend(["ip", "netns", "exec", netns].map(OsString::from));
            // `ip netns exec` needs root, so the switch to the user happens after it,
            // in setpriv.
            if let RunAs::User { uid, gid, .. } = &self.user {
                wrapper.extend(
                    ["setpriv".into(), format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()]
                        .map(OsString::from),
                );
            }
        }
        if let Some(nice) = self.nice {
            wrapper.extend(["nice".to_string(), "-n".into(), nice.to_string()].map(OsString::from));
        }
        if let Some(cpus) = &self.cpus {
            wrapper.extend(["taskset", "-c", cpus].map(OsString::from));
        }
        let Some((first, rest)) = wrapper.split_first() else { return self.user.command(program) };
        let mut command = if self.netns.is_some() { Command::new(first) } else { self.user.command(Path::new(first)) };
        command.args(rest).arg(program);
        self.user.set_environment(&mut command);
        command
    }

    /// Runs `work` with this place's network: on a fresh thread that has entered the
    /// namespace, so sockets it opens live there.
    pub fn within<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
        let Some(netns) = self.netns.clone() else { return Ok(work()) };
        std::thread::spawn(move || {
            let handle = std::fs::File::open(Path::new("/run/netns").join(&netns))?;
            nix::sched::setns(handle, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            Ok(work())
        })
        .join()
        .map_err(|_| std::io::Error::other("a thread inside the namespace panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(command: &Command) -> Vec<String> {
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|word| word.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_plain_place_runs_the_program_itself() {
        assert_eq!(words(&Place::default().command(Path::new("/bin/true"))), ["/bin/true"]);
    }

    #[test]
    fn each_wrapper_execs_the_next() {
        let pinned = Place { netns: Some("ns".into()), cpus: Some("0".into()), nice: Some(5), ..Place::default() };
        assert_eq!(
            words(&pinned.command(Path::new("/bin/true"))),
            ["ip", "netns", "exec", "ns", "nice", "-n", "5", "taskset", "-c", "0", "/bin/true"]
        );
    }
}
