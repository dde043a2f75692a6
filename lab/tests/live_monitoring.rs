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

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{get_json, query, spawn, wait_ready};
use loadlab::ports::free_loopback_port;
use loadlab::server_process;

fn rule_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/prometheus/rules").canonicalize().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn every_rule_evaluates_against_real_data() {
    let postgres = loadlab::PostgresInstance::start_with(loadlab::postgres::PostgresOptions {
        settings: vec![("fsync".into(), "off".into())],
        port: None,
        ..Default::default()
    })
    .unwrap();
    postgres.create_database("device_api").unwrap();
    let dsn = format!("postgresql://postgres@127.0.0.1:{}/device_api?sslmode=disable", postgres.port());
    let postgres_exporter = server_process::postgres_exporter(&dsn).unwrap();
    let node_exporter = server_process::node_exporter().unwrap();
    let pushgateway = server_process::pushgateway().unwrap();

    let [api, grpc, grpc_metrics, loadgen_metrics] = [(); 4].map(|()| free_loopback_port().unwrap());
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let _api = spawn("device-api", &["--listen", &at(api).to_string(), "--database-url", &postgres.url("device_api")]);
    let _grpc = spawn(
        "grpc-stress",
        &[
            "server",
            "--listen",
            &at(grpc).to_string(),
            "--metrics-listen",
            &at(grpc_metrics).to_string(),
            "--max-heap",
            "400MiB",
        ],
    );
    wait_ready(at(api), "/ready");
    wait_ready(at(grpc_metrics), "/metrics");

    let rules: Vec<String> = rule_files().iter().map(|path| format!("  - {}", path.display())).collect();
    let target = |job: &str, address: String, extra: &str| {
        format!("  - job_name: {job}\n    {extra}static_configs:\n      - targets: ['{address}']\n")
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}\nscrape_configs:\n{}{}{}{}{}{}{}",
        rules.join("\n"),
        target("prometheus", "{address}".into(), ""),
        target("device-api", at(api).to_string(), ""),
        target("grpc-stress", at(grpc_metrics).to_string(), ""),
        target("loadgen", at(loadgen_metrics).to_string(), ""),
        target("node", node_exporter.address().to_string(), ""),
        target("postgres", postgres_exporter.address().to_string(), ""),
        target("pushgateway", pushgateway.address().to_string(), "honor_labels: true\n    "),
    );
    let prometheus = server_process::prometheus(&config).unwrap();
    let prometheus_at = prometheus.address();

    // A short real load on both services: a breakpoint search (50 → 400 requests/s in 4 s steps), so the breaking point
    // gauge exists and reaches the Pushgateway.
    let target_url = format!("http://{}", at(api));
    let listen = at(loadgen_metrics).to_string();
    let pushgateway_url = pushgateway.url();
    let prometheus_url = prometheus.url();
    let signals = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/bottlenecks.toml");
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap().to_string();
    let signals_path = signals.to_str().unwrap().to_string();
    #[rustfmt::skip]
    let loadgen_args = [
        "breakpoint", "--target", &target_url, "--devices", "20", "--start-rate", "50", "--step-duration", "4s",
        "--max-rate", "400", "--listen", &listen, "--pushgateway", &pushgateway_url, "--push-interval", "2s",
        "--prometheus", &prometheus_url, "--bottlenecks", &signals_path, "--out", &out_dir,
    ];
    let mut loadgen = spawn("loadgen", &loadgen_args);
    let _client = spawn(
        "grpc-stress",
        &[
            "client",
            "--target",
            &format!("http://{}", at(grpc)),
            "--repeat",
            "--duration",
            "25s",
            "--num-calls",
            "20",
            "--non-streaming",
            "--bidi-streaming",
            "3",
        ],
    );

    // Every target up, while the load runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = query(prometheus_at, "up");
        let down: Vec<_> = up
            .iter()
            .filter(|series| series["value"][1] != "1")
            .map(|series| series["metric"]["job"].clone())
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
            if query(prometheus_at, record).is_empty() {
                empty.push(record.to_string());
            }
        }
    }
    assert!(empty.is_empty(), "recording rules without data: {empty:?}");

    // Every rule evaluates without error.
    let rules = get_json(prometheus_at, "/api/v1/rules");
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
        assert!(!query(prometheus_at, metric).is_empty(), "{metric} is not exported");
    }
    let status = loadgen.0.wait().unwrap();
    assert!(status.success(), "loadgen: {status}");

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
    let dashboards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/grafana/dashboards");
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(dashboards).unwrap() {
        let path = entry.unwrap().path();
        let board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", "1m");
                if query(prometheus_at, &expr).is_empty() {
                    failures.push(format!("{} / {}: {expr}", board["title"], panel["title"]));
                }
            }
        }
    }
    assert!(failures.is_empty(), "panel queries without data:\n{}", failures.join("\n"));
}
