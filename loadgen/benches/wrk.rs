//! Closed-loop throughput, loadgen vs wrk: the same trivial target (`loadgen target`,
//! pinned to CPU 0), the same number of keep-alive connections, each tool pinned to
//! CPU 1 and run for the same time. Prints both requests/s and the ratio.
//!
//! `cargo bench -p loadgen --bench wrk -- [--connections 32] [--seconds 10]`

mod common;

use std::process::Command;

use clap::Parser;
use common::{LOADGEN, pinned, require, start_target, summary};

#[derive(Parser)]
struct Options {
    #[arg(long, default_value_t = 32)]
    connections: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let options = Options::parse();
    require("wrk", "wrk");
    require("taskset", "util-linux");
    let (mut target, url) = start_target(Some(0));

    let wrk = pinned(Some(1), "wrk")
        .args(["-t1", "-c", &options.connections.to_string(), "-d", &format!("{}s", options.seconds), &url])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&wrk.stdout);
    let wrk_rate: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected wrk output:\n{text}"));

    let out = tempfile::tempdir().unwrap();
    let status = pinned(Some(1), LOADGEN)
        .args(["run", "--scenario", "http", "--target", &url, "--users", &options.connections.to_string()])
        .args([
            "--duration",
            &format!("{}s", options.seconds),
            "--listen",
            "none",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("loadgen runs");
    assert!(status.success(), "loadgen failed: {status}");
    let report = summary(out.path());
    let step = &report["steps"][0];
    let loadgen_rate = step["completed"].as_f64().unwrap() / options.seconds as f64;
    let _ = target.kill();
    let _ = target.wait();
    let _ = Command::new("true").status();

    println!("closed loop, {} connections, {} s, target on CPU 0, tool on CPU 1", options.connections, options.seconds);
    println!("wrk        {wrk_rate:>10.0} requests/s");
    println!("loadgen    {loadgen_rate:>10.0} requests/s  (errors {})", step["errors"]);
    println!("ratio      {:>10.3}   (target ≥ 0.9)", loadgen_rate / wrk_rate);
}
