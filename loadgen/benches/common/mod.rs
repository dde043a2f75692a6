//! Shared by the benchmarks: starting loadgen's trivial target, finding tools.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

pub const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `loadgen target` on a free port, optionally pinned to `cpu` with taskset.
pub fn start_target(cpu: Option<u32>) -> (Child, String) {
    let port = free_port();
    let mut command = pinned(cpu, LOADGEN);
    let child = command
        .args(["target", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("loadgen target starts");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    (child, format!("http://127.0.0.1:{port}/"))
}

/// `program`, pinned to `cpu` when given (needs taskset, util-linux).
pub fn pinned(cpu: Option<u32>, program: &str) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.args(["-c", &cpu.to_string(), program]);
            command
        }
        None => Command::new(program),
    }
}

pub fn require(tool: &str, package: &str) {
    let found =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|dir| dir.join(tool).is_file());
    if !found {
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
