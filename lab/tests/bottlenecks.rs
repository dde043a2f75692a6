//! Planted bottlenecks: the real stack (private PostgreSQL and postgres exporter, node
//! exporter, device-api, a private Prometheus), loadgen's breakpoint search against
//! device-api, and the bottleneck analysis must name what was planted:
//! - a device-api with a one-connection pool (and one row per commit, so the pool, not
//!   group commit, sets the pace): the pool ranks first;
//! - a device-api pinned to one CPU beside two busy loops: a CPU signal ranks first.
//!
//! Each prints the whole analysis, so a failure shows the figures behind the ranking.
//! They take turns (one lock): run side by side, each would be the other's CPU
//! shortage, and the generator's too.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use common::{Process, binary, spawn_command, wait_ready};
use loadlab::ports::free_loopback_port;
use loadlab::server_process;

/// Runs a breakpoint search against a device-api started by `api` (given its listen
/// address and database URL) and returns the analysis from summary.json.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Everything but loadgen runs on `server_cpus` when given (loadgen always on CPU 1),
/// so a planted CPU shortage never reaches the generator.
fn breakpoint_analysis(
    api: impl FnOnce(SocketAddr, String) -> Process,
    server_cpus: Option<&str>,
) -> serde_json::Value {
    let placement = loadlab::placement::Placement { netns: None, cpus: server_cpus.map(str::to_string) };
    let postgres =
        loadlab::PostgresInstance::start_with(loadlab::postgres::PostgresOptions { placement, ..Default::default() })
            .unwrap();
    postgres.create_database("device_api").unwrap();
    let dsn = format!("postgresql://postgres@127.0.0.1:{}/device_api?sslmode=disable", postgres.port());
    let postgres_exporter = server_process::postgres_exporter(&dsn).unwrap();
    let node_exporter = server_process::node_exporter().unwrap();
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (api_at, loadgen_at) = (at(free_loopback_port().unwrap()), at(free_loopback_port().unwrap()));
    let _api = api(api_at, postgres.url("device_api"));
    wait_ready(api_at, "/ready");

    let target = |job: &str, address: String| {
        format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{address}']\n")
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}{}{}",
        target("device-api", api_at.to_string()),
        target("loadgen", loadgen_at.to_string()),
        target("node", node_exporter.address().to_string()),
        target("postgres", postgres_exporter.address().to_string()),
    );
    let prometheus = server_process::prometheus(&config).unwrap();
    let signals = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/bottlenecks.toml");
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new("taskset");
    command.args(["-c", "1"]).arg(binary("loadgen"));
    #[rustfmt::skip]
    command.args([
        "breakpoint", "--target", &format!("http://{api_at}"), "--devices", "50", "--start-rate", "100",
        "--step-factor", "2", "--step-duration", "4s", "--max-rate", "6400", "--refine", "0",
        "--slo-latency", "100ms", "--listen", &loadgen_at.to_string(), "--prometheus", &prometheus.url(),
        "--bottlenecks", signals.to_str().unwrap(), "--out", out.path().to_str().unwrap(),
    ]);
    let mut loadgen = spawn_command(command);
    let status = loadgen.0.wait().unwrap();
    assert!(status.success(), "loadgen: {status}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap()).unwrap();
    println!("breaking point: {}\nanalysis: {:#}", summary["breaking_point"], summary["bottlenecks"]);
    assert!(
        summary["breaking_point"]["broken_rate"].is_number(),
        "the planted limit broke the SLO: {}",
        summary["breaking_point"]
    );
    summary["bottlenecks"].clone()
}

fn top(analysis: &serde_json::Value) -> String {
    analysis["ranking"][0]["resource"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_one_connection_pool_ranks_first() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let analysis = breakpoint_analysis(
        |listen, database| {
            let mut command = Command::new(binary("device-api"));
            command.args([
                "--listen",
                &listen.to_string(),
                "--database-url",
                &database,
                "--pool-size",
                "1",
                // One row per commit, so the one connection, not group commit,
                // sets the pace; the four writers (the default) queue for it.
                "--batch-max-rows",
                "1",
            ]);
            spawn_command(command)
        },
        None,
    );
    assert_eq!(top(&analysis), "device-api database pool", "{analysis:#}");
    assert!(analysis["verdict"].as_str().unwrap().starts_with("device-api database pool saturated first"));
}

#[test]
fn a_cpu_starved_device_api_puts_cpu_first() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Two busy loops share CPU 0 with device-api; loadgen runs on CPU 1.
    let busy: Vec<Process> = (0..2)
        .map(|_| {
            let mut command = Command::new("taskset");
            command.args(["-c", "0", "sh", "-c", "while :; do :; done"]);
            spawn_command(command)
        })
        .collect();
    let analysis = breakpoint_analysis(
        |listen, database| {
            let mut command = Command::new("taskset");
            command.args(["-c", "0"]).arg(binary("device-api"));
            command.args(["--listen", &listen.to_string(), "--database-url", &database]);
            spawn_command(command)
        },
        Some("0"),
    );
    drop(busy);
    let cpu = ["device-api CPU", "host CPU", "host CPU run queue"];
    assert!(cpu.contains(&top(&analysis).as_str()), "a CPU signal ranks first: {analysis:#}");
    assert!(!analysis["verdict"].as_str().unwrap().contains("load generator"), "{analysis:#}");
}
