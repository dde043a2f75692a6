//! The rule files and the dashboards against real data. A private PostgreSQL with postgres exporter, a
//! node exporter, device-api, a grpc-stress server, a Pushgateway and loadgen, all
//! real processes, are scraped every second by a private Prometheus that loads
//! `monitoring/prometheus/rules/` as the deployments do. Under a short real load,
//! every recording rule must return series, every rule must evaluate without error,
//! every exporter metric an alert names must exist (so the alerts watch metrics that
//! are really there), and every panel query of every dashboard must return series.
//!
//! The programs come from the workspace build (`cargo test --workspace` builds every
//! binary before running any test).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use loadlab::postgres::PostgresOptions;
use loadlab::topology::Service;
use loadlab_fixtures::{
    PrometheusServer, READY_LIMIT, binary, database_with, device_api, free_address, grpc_stress_server, monitoring_dir,
    node_exporter, postgres_exporter, program, pushgateway,
};

fn rule_files() -> Vec<PathBuf> {
    loadlab::scrape::rule_files(&monitoring_dir()).unwrap()
}

#[test]
fn every_rule_evaluates_against_real_data() {
    let postgres =
        database_with(PostgresOptions { settings: vec![("fsync".into(), "off".into())], ..Default::default() });
    let dsn = format!("postgresql://postgres@127.0.0.1:{}/device_api?sslmode=disable", postgres.port());
    let postgres_exporter = postgres_exporter(&dsn).unwrap();
    let node_exporter = node_exporter().unwrap();
    let pushgateway = pushgateway().unwrap();

    let [api, grpc, grpc_metrics, loadgen_metrics] = [(); 4].map(|()| free_address());
    let (spec, ready) = device_api(&binary("device-api"), api, &postgres.url("device_api"), &[]);
    let _api = spec.start(&ready, READY_LIMIT).unwrap_or_else(|error| panic!("{error}"));
    let (spec, ready) = grpc_stress_server(&binary("grpc-stress"), grpc, grpc_metrics, &["--max-heap", "400MiB"]);
    let _grpc = spec.start(&ready, READY_LIMIT).unwrap_or_else(|error| panic!("{error}"));

    // Scraped and evaluated as the lab's Prometheus does (loadlab::scrape).
    let prometheus = PrometheusServer::start(&[
        (Service::DeviceApi, api),
        (Service::GrpcStressMetrics, grpc_metrics),
        (Service::Loadgen, loadgen_metrics),
        (Service::NodeExporter, node_exporter.address()),
        (Service::PostgresExporter, postgres_exporter.address()),
        (Service::Pushgateway, pushgateway.address()),
    ])
    .unwrap();

    // A short real load on both services: a breakpoint search (50 → 400 requests/s in 4 s steps), so the breaking point
    // gauge exists and reaches the Pushgateway.
    let target_url = format!("http://{api}");
    let listen = loadgen_metrics.to_string();
    let pushgateway_url = pushgateway.url();
    let prometheus_url = prometheus.url();
    let signals = monitoring_dir().join("bottlenecks.toml");
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap().to_string();
    let signals_path = signals.to_str().unwrap().to_string();
    #[rustfmt::skip]
    let loadgen_args = [
        "breakpoint", "--target", &target_url, "--devices", "20", "--start-rate", "50", "--step-duration", "4s",
        "--max-rate", "400", "--listen", &listen, "--pushgateway", &pushgateway_url, "--push-interval", "2s",
        "--prometheus", &prometheus_url, "--bottlenecks", &signals_path, "--out", &out_dir,
    ];
    let mut loadgen = program(binary("loadgen")).args(loadgen_args).spawn().unwrap();
    #[rustfmt::skip]
    let _client = program(binary("grpc-stress")).args([
        "client", "--target", &format!("http://{grpc}"), "--repeat", "--duration", "25s", "--num-calls", "20",
        "--non-streaming", "--bidi-streaming", "3",
    ]).spawn().unwrap();

    // Every target up, while the load runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = prometheus.query("up");
        let down: Vec<_> = up
            .iter()
            .filter(|series| series.samples.last().is_none_or(|(_, value)| *value != 1.0))
            .map(|series| series.labels.get("job").cloned().unwrap_or_default())
            .collect();
        if up.len() == 7 && down.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "targets not all up: {} of 7 scraped, down {down:?}", up.len());
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(12));

    // Every recording rule returns series.
    let mut empty = Vec::new();
    for file in rule_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for record in text.lines().filter_map(|line| line.trim().strip_prefix("- record: ")) {
            if prometheus.query(record).is_empty() {
                empty.push(record.to_string());
            }
        }
    }
    assert!(empty.is_empty(), "recording rules without data: {empty:?}");

    // Every rule evaluates without error.
    let rules = loadlab_supervise::http::get(prometheus.address(), "/api/v1/rules").unwrap();
    let rules: serde_json::Value = serde_json::from_str(&rules.body).unwrap();
    let mut unhealthy = Vec::new();
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if rule["health"] != "ok" {
                unhealthy.push(format!("{}: {} {}", rule["name"], rule["health"], rule["lastError"]));
            }
        }
    }
    assert!(unhealthy.is_empty(), "{unhealthy:?}");

    // The exporter metrics the alerts read are really there.
    for metric in [
        "pg_stat_bgwriter_checkpoints_req_total",
        "pg_stat_bgwriter_checkpoints_timed_total",
        "pg_settings_max_connections",
        "pg_stat_activity_count",
        "push_time_seconds{job=\"loadgen\"}",
        "grpc_stress_heap_ceiling_bytes",
        "grpc_stress_live_heap_bytes",
        "node_pressure_cpu_waiting_seconds_total",
        "node_filefd_allocated",
    ] {
        assert!(!prometheus.query(metric).is_empty(), "{metric} is not exported");
    }
    let status = loadgen.wait_timeout(Duration::from_secs(300)).expect("loadgen ends within 5 minutes");
    assert!(status.success(), "loadgen: {status}\n{}", loadgen.output());

    // Bottleneck analysis read every signal from this Prometheus.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap()).unwrap();
    let analysis = &summary["bottlenecks"];
    assert!(analysis["verdict"].as_str().is_some_and(|verdict| !verdict.is_empty()), "{analysis}");
    let ranking = analysis["ranking"].as_array().unwrap();
    let listed = std::fs::read_to_string(&signals).unwrap().matches("[[signal]]").count();
    assert_eq!(ranking.len(), listed);
    let unread: Vec<_> = ranking
        .iter()
        .filter(|reading| reading["saturation"].is_null())
        .map(|reading| reading["resource"].clone())
        .collect();
    assert!(unread.is_empty(), "signals without a figure: {unread:?}\n{analysis}");
    std::thread::sleep(Duration::from_secs(3)); // the final push, scraped

    // Every panel query of every dashboard returns series ($__rate_interval as 1m).
    let dashboards = monitoring_dir().join("grafana/dashboards");
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(dashboards).unwrap() {
        let path = entry.unwrap().path();
        let board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", "1m");
                if prometheus.query(&expr).is_empty() {
                    failures.push(format!("{} / {}: {expr}", board["title"], panel["title"]));
                }
            }
        }
    }
    assert!(failures.is_empty(), "panel queries without data:\n{}", failures.join("\n"));
}
