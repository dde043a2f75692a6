//! Memory per simulated device: loadgen runs the devices scenario in the closed model
//! (Locust's 25–35 s think time, so devices are idle nearly all the time) against
//! device-api on a private PostgreSQL, once with a few devices and once with many.
//! Prints peak RSS of each and the RSS per device of the difference.
//!
//! `cargo bench -p loadgen --bench memory -- [--devices 20000]`

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{LOADGEN, rss_bytes};

#[derive(Parser)]
struct Options {
    #[arg(long, default_value_t = 20_000)]
    devices: usize,
    /// Seconds the idle phase lasts after the logins.
    #[arg(long, default_value_t = 15)]
    idle_seconds: u64,
    #[arg(long, hide = true)]
    bench: bool,
}

/// Runs loadgen with `devices` devices and users; returns (peak RSS, RSS at the end).
fn measure(target: &str, devices: usize, idle: u64) -> (u64, u64) {
    let mut loadgen = loadlab_fixtures::program(LOADGEN)
        .args(["run", "--target", target, "--devices", &devices.to_string(), "--users", &devices.to_string()])
        .args(["--think-time", "25s..35s", "--duration", &format!("{idle}s"), "--listen", "none"])
        .stop(loadlab_supervise::Stop::kill())
        .spawn()
        .expect("loadgen runs");
    let (mut peak, mut last) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(idle + 300);
    while loadgen.try_wait().is_none() && Instant::now() < deadline {
        if let Some(rss) = rss_bytes(loadgen.pid()) {
            peak = peak.max(rss);
            last = rss;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    (peak, last)
}

fn main() {
    let options = Options::parse();
    let postgres = loadlab_fixtures::database_with(loadlab::postgres::PostgresOptions {
        settings: vec![("fsync".into(), "off".into())],
        ..Default::default()
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let config = device_api::Config::for_database(postgres.url("device_api"));
    runtime.spawn(device_api::run(config, listener, std::future::pending()));
    let ready = loadlab_supervise::Ready::http(target.trim_start_matches("http://").parse().unwrap(), "/ready");
    ready.wait("the in-process device-api", loadlab_fixtures::READY_LIMIT).unwrap_or_else(|error| panic!("{error}"));

    let few = 100;
    let (few_peak, few_last) = measure(&target, few, options.idle_seconds);
    let (many_peak, many_last) = measure(&target, options.devices, options.idle_seconds);
    let per_device = |small: u64, large: u64| (large.saturating_sub(small)) as f64 / (options.devices - few) as f64;
    println!("devices scenario, closed model, think 25–35 s (idle devices)");
    println!(
        "{few:>6} devices: peak RSS {:.1} MiB, at the end {:.1} MiB",
        few_peak as f64 / 1048576.0,
        few_last as f64 / 1048576.0
    );
    println!(
        "{:>6} devices: peak RSS {:.1} MiB, at the end {:.1} MiB",
        options.devices,
        many_peak as f64 / 1048576.0,
        many_last as f64 / 1048576.0
    );
    println!(
        "RSS per idle device: {:.0} bytes (at the end), {:.0} bytes (peaks, logins included)",
        per_device(few_last, many_last),
        per_device(few_peak, many_peak)
    );
}
