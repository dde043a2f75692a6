//! Shared by the benchmarks: starting loadgen's trivial target, finding tools.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Command;

use loadlab_fixtures::{READY_LIMIT, free_address, program};
use loadlab_supervise::{Place, Ready, Supervised};

pub const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// Placed on `cpu` when given (taskset, util-linux).
pub fn on(cpu: Option<u32>) -> Place {
    Place { cpus: cpu.map(|cpu| cpu.to_string()), ..Place::default() }
}

/// `loadgen target` on a free port, optionally pinned to `cpu`, once it accepts.
pub fn start_target(cpu: Option<u32>) -> (Supervised, String) {
    let address: SocketAddr = free_address();
    let target = program(LOADGEN)
        .args(["target", "--listen", &address.to_string()])
        .place(on(cpu))
        .start(&Ready::Tcp(address), READY_LIMIT)
        .unwrap_or_else(|error| panic!("{error}"));
    (target, format!("http://{address}/"))
}

/// `program`, pinned to `cpu` when given (needs taskset, util-linux), run to its end.
pub fn pinned(cpu: Option<u32>, program: &str) -> Command {
    on(cpu).command(std::path::Path::new(program))
}

pub fn require(tool: &str, package: &str) {
    if loadlab_supervise::which(tool).is_none() {
        eprintln!("{tool} not found: install it (Debian/Ubuntu: apt-get install {package}) and run again");
        std::process::exit(2);
    }
}

/// RSS of `pid` in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn summary(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json written")).expect("JSON")
}
