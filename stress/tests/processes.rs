//! grpc-stress as real processes: a client that rides out its server being killed
//! and restarted, and short driver runs that pass, catch a deliberate leak, catch a
//! ceiling breach, each with the right message, and stop on SIGTERM leaving no child.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use common::{free_port_block, free_port_block_in};
use loadlab_fixtures::{READY_LIMIT, grpc_stress_server, program};
use loadlab_supervise::{Signal, Stop, Supervised};
use nix::sys::signal::kill;
use nix::unistd::Pid;

const BINARY: &str = env!("CARGO_BIN_EXE_grpc-stress");

async fn start_server(port: u16, metrics_port: u16) -> Supervised {
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (spec, ready) = grpc_stress_server(Path::new(BINARY), at(port), at(metrics_port), &[]);
    spec.start_async(&ready, READY_LIMIT).await.unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_across_a_server_restart() {
    let base = free_port_block();
    let (port, metrics_port) = (base, base + 1);
    let mut server = start_server(port, metrics_port).await;
    let out = tempfile::tempdir().unwrap();
    let summary_file = out.path().join("summary.json");
    let mut client = program(BINARY)
        .args(["client", "--target", &format!("http://127.0.0.1:{port}"), "--repeat", "--max-attempts", "0", "--json"])
        .args(["--num-calls", "20", "--non-streaming", "--bidi-streaming", "3"])
        .stdout_to(&summary_file)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    server.stop_async(Stop::kill()).await; // SIGKILL: connections cut mid-call
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut restarted = start_server(port, metrics_port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The restarted server served the client: it reconnected on its own.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    let served: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("grpc_stress_rpcs_total{") && line.contains("code=\"OK\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(served > 0.0, "the restarted server saw no calls:\n{metrics}");

    client.signal(Signal::SIGTERM);
    let status = client.wait_timeout_async(Duration::from_secs(30)).await.expect("the client stops on SIGTERM");
    restarted.stop_async(Stop::kill()).await;
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_file).unwrap())
        .unwrap_or_else(|error| panic!("{error}: {}", client.output()));
    assert!(status.success(), "tolerated faults are not failures: {summary}");
    assert!(summary["reconnects"].as_u64().unwrap() >= 1, "{summary}");
    let faults: u64 = summary["faults"].as_object().unwrap().values().map(|count| count.as_u64().unwrap()).sum();
    assert!(faults >= 1, "{summary}");
    assert!(summary["failures"].as_object().unwrap().is_empty(), "{summary}");
    assert!(summary["kinds"]["non-streaming"]["calls_ok"].as_u64().unwrap() > 0);
}

/// How a driver run ended: its status, its stdout and its log (stderr).
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the driver in `dir` with `extra` options, to its end (at most `limit`, a
/// liveness bound far above the run's duration).
fn driver(dir: &Path, extra: &[&str]) -> Output {
    let base = free_port_block();
    let stdout = dir.join("driver.stdout");
    let mut driver = program(BINARY)
        .args(["driver", "--working-dir", dir.to_str().unwrap(), "--base-port", &base.to_string()])
        .args(extra)
        .stdout_to(&stdout)
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(180);
    let status = driver.wait_timeout(limit).unwrap_or_else(|| panic!("the driver still ran after {limit:?}"));
    Output { status, stdout: std::fs::read_to_string(&stdout).unwrap_or_default(), stderr: driver.output() }
}

fn last_line(output: &Output) -> String {
    output.stdout.lines().last().unwrap_or_default().to_string()
}

#[test]
fn a_short_driver_run_holds_and_draws_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let output = driver(
        dir.path(),
        &[
            "--duration",
            "12s",
            "--warmup",
            "4s",
            "--kill-interval",
            "2s..3s",
            "--gen-charts",
            "--patterns",
            "unary-many-calls,bidi-endless",
        ],
    );
    let verdict = last_line(&output);
    let stderr = &output.stderr;
    assert!(output.status.success(), "{verdict}\n{stderr}");
    assert!(verdict.contains("PASSED"), "{verdict}");
    assert!(!stderr.contains("ephemeral"), "ports below the ephemeral range draw no warning: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let components = summary["components"].as_array().unwrap();
    assert_eq!(components.len(), 4 + 2 * 4 * 2);
    for component in components {
        let name = component["name"].as_str().unwrap();
        if component["stable"].as_bool().unwrap() {
            assert!(dir.path().join(format!("charts/{name}.svg")).exists(), "chart for {name}");
            assert!(component["heap_trend"].is_object(), "{name} has a fitted trend");
        } else {
            assert!(component["restarts"].as_u64().unwrap() >= 1, "unstable {name} was restarted");
        }
        assert!(component["peak_rss_bytes"].as_u64().unwrap() > 0);
    }
    assert!(dir.path().join("summary.html").exists());
}

#[test]
fn a_deliberate_leak_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let output = driver(
        dir.path(),
        &[
            "--duration",
            "10s",
            "--warmup",
            "3s",
            "--servers",
            "insecure-stable",
            "--patterns",
            "unary-many-calls",
            "--client-stabilities",
            "stable",
            "--debug-leak",
            "server-insecure-stable=1MiB",
        ],
    );
    let verdict = last_line(&output);
    assert!(!output.status.success(), "{verdict}");
    assert!(verdict.contains("FAILED: server-insecure-stable leaks"), "{verdict}");
}

#[test]
fn a_ceiling_breach_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let output = driver(
        dir.path(),
        &[
            "--duration",
            "15s",
            "--servers",
            "insecure-stable",
            "--patterns",
            "unary-many-calls",
            "--client-stabilities",
            "stable",
            "--server-ceiling",
            "48MiB",
            "--debug-leak",
            "server-insecure-stable=40MiB",
        ],
    );
    let verdict = last_line(&output);
    assert!(!output.status.success(), "{verdict}");
    assert!(
        verdict.contains("FAILED: server-insecure-stable exceeded its memory ceiling: limit 48.0 MiB"),
        "{verdict}"
    );
}

/// Children of `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so read after its last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    children
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// Kills what a failed test left running.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

/// The kernel's ephemeral port range.
fn ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut bounds = text.split_whitespace().map(|bound| bound.parse::<u16>().unwrap());
    (bounds.next().unwrap(), bounds.next().unwrap())
}

#[test]
fn sigterm_stops_the_driver_and_every_child() {
    let dir = tempfile::tempdir().unwrap();
    // Inside the ephemeral range on purpose: the driver must say so.
    let (low, high) = ephemeral_range();
    let base = free_port_block_in(low..high - 4);
    let stdout = dir.path().join("driver.stdout");
    let mut driver = program(BINARY)
        .args(["driver", "--working-dir", dir.path().to_str().unwrap(), "--base-port", &base.to_string()])
        .args(["--duration", "120s", "--servers", "insecure-stable,secure-unstable", "--patterns", "bidi-endless"])
        .stdout_to(&stdout)
        .spawn()
        .unwrap();
    // Two servers and four clients (two per server), all running.
    let started = std::time::Instant::now();
    let children = loop {
        let children = children_of(driver.pid());
        if children.len() >= 6 {
            break children;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the driver started {children:?} only");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _cleanup = KillOnDrop(children.clone());

    driver.signal(Signal::SIGTERM);
    let status = driver.wait_timeout(Duration::from_secs(40)).expect("the driver stops within 40 s of SIGTERM");
    let stderr = driver.output();
    let left: Vec<u32> = children.iter().copied().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "children still running after the driver stopped: {left:?}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    let output = Output { status, stdout: std::fs::read_to_string(&stdout).unwrap(), stderr };
    assert!(last_line(&output).contains("INTERRUPTED: stopped by SIGINT or SIGTERM"), "{}", last_line(&output));
    assert!(
        output.stderr.contains("ephemeral port range"),
        "the driver warns about ports in the ephemeral range: {}",
        output.stderr
    );
    assert!(dir.path().join("summary.json").exists(), "the summary is written on SIGTERM too");
}
