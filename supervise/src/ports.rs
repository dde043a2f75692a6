//! Free TCP ports, and who holds a taken one.
//!
//! A port is found by binding port 0 and reading what the kernel chose. Another
//! process can take it between our release and the server's bind, so callers that
//! start a server retry with a fresh port when the start fails on an address clash.
//! Within one process no port is handed out twice in a row of [`REMEMBERED`]: the
//! kernel may choose a port again as soon as its probe is closed, and two servers
//! started side by side (tests run in parallel) would then be given the same one; the
//! second fails to bind, and a readiness check that dials the port finds the first
//! one answering.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The latest ports this process handed out, on any address, oldest first. Bounded,
/// so a long-lived process (the lab service) never runs out: a port handed out this
/// many times ago was bound by its server long since, or is free again.
static HANDED_OUT: Mutex<VecDeque<u16>> = Mutex::new(VecDeque::new());
const REMEMBERED: usize = 4096;

/// Probes before giving up on finding a port not yet handed out.
const PROBES: usize = 1000;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_loopback_port() -> std::io::Result<u16> {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A TCP port on `address` that was free a moment ago.
pub fn free_port_on(address: Ipv4Addr) -> std::io::Result<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..PROBES {
        let port = TcpListener::bind((address, 0))?.local_addr()?.port();
        // A scan of a few thousand ports costs nothing next to the bind.
        if !handed_out.contains(&port) {
            if handed_out.len() == REMEMBERED {
                handed_out.pop_front();
            }
            handed_out.push_back(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port on {address} that this process has not handed out already"),
    ))
}

/// Who listens on TCP `port` (any address): "pid 1234 (prometheus)", found through
/// /proc/net/tcp{,6} and the processes' open sockets; `None` when it cannot be told
/// (e.g. another user's process, seen without root).
pub fn holder(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
                continue;
            };
            let listening = *state == "0A";
            let local_port = local.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if listening && local_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.filter_map(Result::ok) {
            let target = std::fs::read_link(fd.path()).ok();
            if target.is_some_and(|target| inodes.iter().any(|inode| target.as_os_str() == inode.as_str())) {
                let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("pid {pid} ({})", name.trim()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_process_is_never_given_the_same_port_twice() {
        // The kernel picks freed ports again soon: two thousand probes repeat
        // hundreds. Handed out, they must all differ.
        let ports: Vec<u16> = (0..2000).map(|_| free_loopback_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn the_holder_of_a_port_is_named() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = holder(port).expect("our own listener is found");
        assert!(holder.starts_with(&format!("pid {} (", std::process::id())), "{holder}");
        drop(listener);
        assert_eq!(super::holder(port), None);
    }
}
