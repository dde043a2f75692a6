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

use std::net::SocketAddr;
use std::time::Duration;

use loadlab::postgres::PostgresOptions;
use loadlab::topology::Service;
use loadlab_fixtures::{
    PrometheusServer, READY_LIMIT, binary, database_with, device_api, free_address, monitoring_dir, node_exporter,
    postgres_exporter, program,
};
use loadlab_supervise::{Place, Spec, Stop, Supervised};

/// They take turns: side by side, each would be the other's CPU shortage.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Processes on `cpus` (a taskset list), or anywhere.
fn on(cpus: Option<&str>) -> Place {
    Place { cpus: cpus.map(str::to_string), ..Place::default() }
}

/// device-api from the workspace build on `listen` against `database`, with `args`,
/// on `cpus`; ready when it answers.
fn start_api(listen: SocketAddr, database: &str, args: &[&str], cpus: Option<&str>) -> Supervised {
    let (spec, ready) = device_api(&binary("device-api"), listen, database, args);
    spec.place(on(cpus)).start(&ready, READY_LIMIT).unwrap_or_else(|error| panic!("{error}"))
}

/// Runs a breakpoint search against a device-api started by `api` (given its listen
/// address and database URL) and returns the analysis from summary.json. Everything
/// but loadgen runs on `server_cpus` when given (loadgen always on CPU 1), so a
/// planted CPU shortage never reaches the generator.
fn breakpoint_analysis(
    api: impl FnOnce(SocketAddr, String) -> Supervised,
    server_cpus: Option<&str>,
) -> serde_json::Value {
    let postgres = database_with(PostgresOptions { placement: on(server_cpus), ..Default::default() });
    let dsn = format!("postgresql://postgres@127.0.0.1:{}/device_api?sslmode=disable", postgres.port());
    let postgres_exporter = postgres_exporter(&dsn).unwrap();
    let node_exporter = node_exporter().unwrap();
    let (api_at, loadgen_at) = (free_address(), free_address());
    let _api = api(api_at, postgres.url("device_api"));
    let prometheus = PrometheusServer::start(&[
        (Service::DeviceApi, api_at),
        (Service::Loadgen, loadgen_at),
        (Service::NodeExporter, node_exporter.address()),
        (Service::PostgresExporter, postgres_exporter.address()),
    ])
    .unwrap();
    let signals = monitoring_dir().join("bottlenecks.toml");
    let out = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let mut loadgen = program(binary("loadgen")).place(on(Some("1"))).args([
        "breakpoint", "--target", &format!("http://{api_at}"), "--devices", "50", "--start-rate", "100",
        "--step-factor", "2", "--step-duration", "4s", "--max-rate", "6400", "--refine", "0",
        "--slo-latency", "100ms", "--listen", &loadgen_at.to_string(), "--prometheus", &prometheus.url(),
        "--bottlenecks", signals.to_str().unwrap(), "--out", out.path().to_str().unwrap(),
    ]).spawn().unwrap();
    let status = loadgen.wait_timeout(Duration::from_secs(600)).expect("loadgen ends within 10 minutes");
    assert!(status.success(), "loadgen: {status}\n{}", loadgen.output());
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
        // One row per commit, so the one connection, not group commit, sets the pace;
        // the four writers (the default) queue for it.
        |listen, database| start_api(listen, &database, &["--pool-size", "1", "--batch-max-rows", "1"], None),
        None,
    );
    assert_eq!(top(&analysis), "device-api database pool", "{analysis:#}");
    assert!(analysis["verdict"].as_str().unwrap().starts_with("device-api database pool saturated first"));
}

#[test]
fn a_cpu_starved_device_api_puts_cpu_first() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Two busy loops share CPU 0 with device-api; loadgen runs on CPU 1.
    let busy: Vec<Supervised> = (0..2)
        .map(|_| {
            let spin = Spec::new("/bin/sh").args(["-c", "while :; do :; done"]).place(on(Some("0")));
            spin.stop(Stop::kill()).spawn().unwrap()
        })
        .collect();
    let analysis = breakpoint_analysis(|listen, database| start_api(listen, &database, &[], Some("0")), Some("0"));
    drop(busy);
    let cpu = ["device-api CPU", "host CPU", "host CPU run queue"];
    assert!(cpu.contains(&top(&analysis).as_str()), "a CPU signal ranks first: {analysis:#}");
    assert!(!analysis["verdict"].as_str().unwrap().contains("load generator"), "{analysis:#}");
}
