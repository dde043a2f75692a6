//! Free loopback ports for private server instances.
//!
//! A port is found by binding port 0 and reading what the kernel chose. Another
//! process can take it between our release and the server's bind, so callers that
//! start a server retry with a fresh port when the start fails on an address clash.

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
