//! Free TCP ports, and who holds a taken one.
//!
//! A port is found by binding port 0 and reading what the kernel chose. Another
//! process can take it between our release and the server's bind, so callers that
//! start a server retry with a fresh port when the start fails on an address clash.

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_loopback_port() -> std::io::Result<u16> {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A TCP port on `address` that was free a moment ago.
pub fn free_port_on(address: Ipv4Addr) -> std::io::Result<u16> {
    let listener = TcpListener::bind((address, 0))?;
    Ok(listener.local_addr()?.port())
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
    use super::*;

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
