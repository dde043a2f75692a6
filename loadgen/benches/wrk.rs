//! Closed-loop throughput, loadgen vs wrk, against nginx (wrk's own habitat): nginx
//! with one worker pinned to CPU 0, each tool pinned to CPU 1 with the same number of
//! keep-alive connections for the same time. Prints both requests/s and the ratio
//! (target ≥ 0.9). Measured in one run, so the machine's noise hits both alike.
//!
//! `cargo bench -p loadgen --bench wrk -- [--connections 32] [--seconds 10] [--rounds 3]`

mod common;

use clap::Parser;
use common::{LOADGEN, pinned, require, summary};

#[derive(Parser)]
struct Options {
    #[arg(long, default_value_t = 32)]
    connections: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Alternating rounds of each tool; the best of each is compared.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    #[arg(long, hide = true)]
    bench: bool,
}

fn wrk(url: &str, options: &Options) -> f64 {
    let output = pinned(Some(1), "wrk")
        .args(["-t1", "-c", &options.connections.to_string(), "-d", &format!("{}s", options.seconds), url])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected wrk output:\n{text}"))
}

fn loadgen(url: &str, options: &Options) -> (f64, u64) {
    let out = tempfile::tempdir().unwrap();
    let status = pinned(Some(1), LOADGEN)
        .args(["run", "--scenario", "http", "--target", url, "--users", &options.connections.to_string()])
        .args(["--duration", &format!("{}s", options.seconds), "--listen", "none"])
        .args(["--out", out.path().to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("loadgen runs");
    assert!(status.success(), "loadgen failed: {status}");
    let report = summary(out.path());
    let step = &report["steps"][0];
    (step["achieved_rate"].as_f64().unwrap(), step["errors"].as_u64().unwrap())
}

fn main() {
    let options = Options::parse();
    require("wrk", "wrk");
    require("taskset", "util-linux");
    let nginx = loadlab_fixtures::Nginx::start_on(Some(0));
    let url = format!("{}/", nginx.http);
    let (mut best_wrk, mut best_loadgen, mut errors) = (0.0f64, 0.0f64, 0);
    for round in 1..=options.rounds {
        let wrk_rate = wrk(&url, &options);
        let (loadgen_rate, loadgen_errors) = loadgen(&url, &options);
        println!("round {round}: wrk {wrk_rate:>9.0}/s  loadgen {loadgen_rate:>9.0}/s  ({loadgen_errors} errors)");
        best_wrk = best_wrk.max(wrk_rate);
        best_loadgen = best_loadgen.max(loadgen_rate);
        errors += loadgen_errors;
    }
    println!(
        "closed loop against nginx (1 worker, CPU 0), {} connections, {} s, tool on CPU 1, best of {}",
        options.connections, options.seconds, options.rounds
    );
    println!("wrk        {best_wrk:>10.0} requests/s");
    println!("loadgen    {best_loadgen:>10.0} requests/s  (errors {errors})");
    println!("ratio      {:>10.3}   (target ≥ 0.9)", best_loadgen / best_wrk);
}
