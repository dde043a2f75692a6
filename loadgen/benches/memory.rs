//! Memory per simulated device, on both sides: loadgen runs the devices scenario with
//! per-device routines (`GET /command` and `POST /measurement` every `--period`, each
//! device on its own kept connection, idle nearly all the time) against device-api
//! (a child process, on a private PostgreSQL), once with 100 devices and once with
//! many. Prints each process's RSS, the RSS per device of the difference, and
//! loadgen's p99 schedule lag (how late its timers fired).
//!
//! One process holds one file descriptor per device, so the open-file limit caps the
//! devices per process: by default the most the hard limit allows (100,000 where it
//! lets). `--processes N` splits the devices over N loadgen processes, all pinned to
//! CPU 0 as every run is, each against a device-api of its own: 100,000 devices from
//! one core where one process may not hold them. The device-apis and PostgreSQL run on
//! CPU 1, as `loadlab run` keeps the server side off the generator's CPU.
//!
//! `cargo build --release -p device-api && cargo bench -p loadgen --bench memory --
//! [--devices N] [--processes 1] [--period 30s]`

mod common;

use std::time::{Duration, Instant};

use loadlab_supervise::{Spec, Supervised};

use clap::Parser;
use common::{LOADGEN, on, rss_bytes, summary};
use loadlab_supervise::ports::free_loopback_port;

#[derive(Parser)]
struct Options {
    /// Devices of the large run (default: 100,000, or what the open-file limit allows).
    #[arg(long)]
    devices: Option<usize>,
    /// loadgen processes (and device-apis) the devices are split over, all loadgen
    /// processes on CPU 0.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    processes: u32,
    /// Each device's period for each of its two requests.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    period: Duration,
    #[arg(long, hide = true)]
    bench: bool,
}

/// The hard open-file limit (what a process may raise its own to).
fn open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(4))
        .and_then(|hard| hard.parse().ok())
        .unwrap_or(1024)
}

/// What one run measured, summed over the processes (the lag: the worst one's).
struct Measured {
    loadgen_rss: u64,
    api_rss: u64,
    lag_p99_ms: f64,
    completed: u64,
}

/// `program` with `args`, its open-file limit raised to the hard limit first.
fn with_all_open_files(program: &std::path::Path, args: &[&str]) -> Spec {
    loadlab_fixtures::program("sh")
        .args(["-c", "ulimit -n \"$(ulimit -Hn)\"; exec \"$@\"", "sh"])
        .arg(program)
        .args(args)
        .stop(loadlab_supervise::Stop::kill())
}

/// Runs `devices` devices, split evenly over one loadgen per device-api in `apis`, for
/// two periods and a bit; samples every RSS at the end.
fn measure(apis: &[(String, Supervised)], devices: usize, period: Duration) -> Measured {
    let length = period * 2 + Duration::from_secs(5);
    let share = devices / apis.len();
    let mut runs: Vec<(tempfile::TempDir, Supervised)> = apis
        .iter()
        .enumerate()
        .map(|(index, (target, _))| {
            let count = if index == 0 { devices - share * (apis.len() - 1) } else { share };
            let out = tempfile::tempdir().unwrap();
            let child = start_loadgen(target, index, count, period, length, out.path());
            (out, child)
        })
        .collect();
    let started = Instant::now();
    let (mut loadgen_rss, mut api_rss) = (0, 0);
    while runs.iter_mut().any(|(_, child)| child.try_wait().is_none()) {
        // Near the end every device has connected and gone idle again.
        if started.elapsed() > length.saturating_sub(Duration::from_secs(2)) && loadgen_rss == 0 {
            loadgen_rss = runs.iter().map(|(_, child)| rss_bytes(child.pid()).unwrap_or(0)).sum();
            api_rss = apis.iter().map(|(_, api)| rss_bytes(api.pid()).unwrap_or(0)).sum();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (mut lag_p99_ms, mut completed) = (0.0f64, 0);
    for (out, child) in &mut runs {
        if !out.path().join("summary.json").is_file() {
            panic!("loadgen ({}) left no report; its output:\n{}", child.wait(), child.output());
        }
        let report = summary(out.path());
        let step = &report["steps"][0];
        lag_p99_ms = lag_p99_ms.max(step["schedule_lag_ms"]["p99"].as_f64().unwrap_or(f64::NAN));
        completed += step["completed"].as_u64().unwrap_or(0);
    }
    Measured { loadgen_rss, api_rss, lag_p99_ms, completed }
}

/// loadgen number `index` with `devices` devices against `target`, on CPU 0.
fn start_loadgen(
    target: &str,
    index: usize,
    devices: usize,
    period: Duration,
    length: Duration,
    out: &std::path::Path,
) -> Supervised {
    // One source address per 20,000 connections (one address has ~28,000 ports), and
    // addresses of its own for each process.
    let sources: Vec<String> =
        (0..devices.div_ceil(20_000)).map(|i| format!("127.0.{}.{}", 9 + index, i + 1)).collect();
    let seconds = |duration: Duration| format!("{}ms", duration.as_millis());
    let devices_text = devices.to_string();
    let (command_every, length_text) = (seconds(period), seconds(length));
    let sources = sources.join(",");
    let args = [
        "run",
        "--target",
        target,
        "--devices",
        &devices_text,
        "--command-every",
        &command_every,
        "--measurement-every",
        &command_every,
        "--duration",
        &length_text,
        "--listen",
        "none",
        "--timeout",
        "30s",
        "--source-address",
        &sources,
        "--out",
        out.to_str().unwrap(),
    ];
    with_all_open_files(std::path::Path::new(LOADGEN), &args).place(on(Some(0))).spawn().expect("loadgen runs")
}

fn main() {
    let options = Options::parse();
    let limit = open_file_limit();
    // Each process holds a descriptor per device, plus a margin.
    let processes = options.processes as usize;
    let allowed = (limit.saturating_sub(200)) as usize * processes;
    let devices = options.devices.unwrap_or(100_000.min(allowed));
    if devices > allowed {
        eprintln!(
            "{devices} devices over {processes} processes need {} open files in each; the hard limit here is \
             {limit} (--processes splits them)",
            devices.div_ceil(processes)
        );
        std::process::exit(2);
    }
    // Beside loadgen's binary, from the same profile.
    let device_api = std::path::Path::new(LOADGEN).with_file_name("device-api");
    if !device_api.is_file() {
        eprintln!("{} is missing: cargo build --release -p device-api first", device_api.display());
        std::process::exit(2);
    }
    // The server side on CPU 1, the generators on CPU 0, as `loadlab run` places them:
    // the lag measures the generator, not its neighbours.
    let postgres = loadlab_fixtures::database_with(loadlab::postgres::PostgresOptions {
        settings: vec![("fsync".into(), "off".into())],
        placement: on(Some(1)),
        ..Default::default()
    });
    let database = postgres.url("device_api");
    let limit_text = (devices.div_ceil(processes) + 100).to_string();
    let mut apis: Vec<(String, Supervised)> = (0..processes)
        .map(|_| {
            let port = free_loopback_port().expect("a free port");
            let address = format!("127.0.0.1:{port}");
            let args = [
                "--listen",
                &address,
                "--database-url",
                &database,
                "--max-connections",
                &limit_text,
                "--keep-alive-timeout",
                "300s",
            ];
            let ready = loadlab_supervise::Ready::http(address.parse().unwrap(), "/ready");
            let mut api =
                with_all_open_files(&device_api, &args).place(on(Some(1))).spawn().expect("device-api starts");
            api.wait_ready(&ready, loadlab_fixtures::READY_LIMIT).unwrap_or_else(|error| panic!("{error}"));
            (format!("http://{address}"), api)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let few = 100;
    let small = measure(&apis, few, options.period);
    let large = measure(&apis, devices, options.period);
    for (_, api) in &mut apis {
        api.stop_with(loadlab_supervise::Stop::kill());
    }
    let per_device = |small: u64, large: u64| large.saturating_sub(small) as f64 / (devices - few) as f64 / 1024.0;
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    println!(
        "devices scenario, routines: each device polls and measures every {}, on its own kept connection",
        humantime::format_duration(options.period)
    );
    println!(
        "open-file limit {limit}; {devices} devices over {processes} loadgen process(es) on CPU 0, each with a \
         device-api of its own (device-apis and PostgreSQL on CPU 1)"
    );
    println!("{:>7} {:>14} {:>16} {:>14} {:>10}", "devices", "loadgen RSS", "device-api RSS", "lag p99", "answers");
    for (count, measured) in [(few, &small), (devices, &large)] {
        println!(
            "{count:>7} {:>10.1} MiB {:>12.1} MiB {:>11.2} ms {:>10}",
            mib(measured.loadgen_rss),
            mib(measured.api_rss),
            measured.lag_p99_ms,
            measured.completed
        );
    }
    println!(
        "per idle device: loadgen {:.1} KiB, device-api {:.1} KiB",
        per_device(small.loadgen_rss, large.loadgen_rss),
        per_device(small.api_rss, large.api_rss)
    );
}
