//! Shared by the tests that run the real stack: the workspace's binaries as child
//! processes (killed on drop), readiness polling, and Prometheus queries.

#![allow(dead_code)] // each test binary uses part of it

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loadlab::server_process::http_get_status;

pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository's root (topology.toml, monitoring/, nixos/).
pub fn repository() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let path = dir.join(name);
    assert!(path.is_file(), "{} missing: build the workspace first (cargo build --workspace)", path.display());
    path
}

pub fn spawn(name: &str, args: &[&str]) -> Process {
    Process(Command::new(binary(name)).args(args).env("RUST_LOG", "warn").stdout(Stdio::null()).spawn().unwrap())
}

pub fn wait_ready(address: SocketAddr, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get_status(address, path) != Some(200) {
        assert!(Instant::now() < deadline, "{address}{path} never answered 200");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub use loadlab::server_process::encode_query as encode;

/// `GET path` on `address`, the body as JSON.
pub fn get_json(address: SocketAddr, path: &str) -> serde_json::Value {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{path}: {error}: {body}"))
}

pub fn query(prometheus: SocketAddr, promql: &str) -> Vec<serde_json::Value> {
    let answer = get_json(prometheus, &format!("/api/v1/query?query={}", encode(promql)));
    assert_eq!(answer["status"], "success", "{promql}: {answer}");
    answer["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// A child process from an arbitrary command (e.g. under taskset), killed on drop.
pub fn spawn_command(mut command: Command) -> Process {
    Process(command.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
}
