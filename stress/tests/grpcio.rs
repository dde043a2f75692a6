//! grpc-stress against a gRPC implementation nobody here wrote: Python's grpcio runs
//! `tests/grpcio/test_grpc_stress.py` (pytest) against two real server processes,
//! plain and TLS (certificates from `grpc-stress certs`). The Python packages, pinned
//! in `tests/grpcio/requirements.txt`, go into the workspace's `.venv`, created or
//! brought up to date here; the proto is compiled by grpcio-tools at test time into a
//! temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loadlab_fixtures::{READY_LIMIT, free_address, grpc_stress_server};
use loadlab_supervise::{Spec, Stop, Supervised};
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_grpc-stress");

/// The whole Python suite, set-up included, stops after this.
const SUITE_LIMIT: Duration = Duration::from_secs(240);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("stress/ is inside the workspace").to_path_buf()
}

/// Runs `spec` to completion (at most [`SUITE_LIMIT`]), failing the test with its
/// output if it fails; returns its stdout.
async fn run(spec: Spec, what: &str, dir: &Path) -> String {
    let stdout = dir.join(format!("{}.stdout", what.replace(' ', "-")));
    let mut process =
        spec.stdout_to(&stdout).stop(Stop::kill()).spawn().unwrap_or_else(|error| panic!("{what}: {error}"));
    let status = process.wait_timeout_async(SUITE_LIMIT).await;
    let printed = std::fs::read_to_string(&stdout).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("{what}: still running after {SUITE_LIMIT:?}"));
    assert!(status.success(), "{what}: {status}\n{printed}\n{}", process.output());
    printed
}

/// The workspace's `.venv` with `requirements` installed; returns its python. pip does
/// nothing (and asks no index) when every pinned version is already there.
/// The project's Python (.venv) with `requirements` installed: what
/// `scripts/python-venv` prints, the one place that decides it.
async fn python_venv(requirements: &Path) -> PathBuf {
    let script = workspace().join("scripts/python-venv");
    let output = Command::new(&script)
        .arg(requirements)
        .output()
        .await
        .unwrap_or_else(|error| panic!("{} not runnable: {error}", script.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scripts/python-venv {}:\n{stderr}", requirements.display());
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

struct Server {
    port: u16,
    metrics_port: u16,
    process: Supervised,
}

async fn start_server(dir: &Path, name: &str, tls: Option<(&Path, &Path)>) -> Server {
    let (listen, metrics) = (free_address(), free_address());
    let mut args = vec!["--chat-ping-interval".to_string(), "100ms".into()];
    if let Some((cert, key)) = tls {
        args.extend(["--tls-cert".into(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (spec, ready) = grpc_stress_server(Path::new(BINARY), listen, metrics, &args);
    let process = spec
        .name(&format!("{name} server"))
        .log(dir.join(format!("{name}.log")))
        .start_async(&ready, READY_LIMIT)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    Server { port: listen.port(), metrics_port: metrics.port(), process }
}

/// The sum of a counter's series whose labels contain every one of `labels`.
fn counter(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_suite_over_plain_and_tls() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpcio");
    let python = python_venv(&suite.join("requirements.txt")).await;

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    run(Spec::new(BINARY).arg("certs").arg("--out").arg(&certs), "grpc-stress certs", dir.path()).await;
    let plain = start_server(dir.path(), "plain", None).await;
    let secure = start_server(dir.path(), "tls", Some((&certs.join("server.pem"), &certs.join("server.key")))).await;

    let report = run(
        Spec::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp"])
            .arg(dir.path().join("pytest"))
            .arg(&suite)
            .cwd(workspace())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("GRPC_STRESS_PLAIN", format!("127.0.0.1:{}", plain.port))
            .env("GRPC_STRESS_TLS", format!("127.0.0.1:{}", secure.port))
            .env("GRPC_STRESS_CA", certs.join("ca.pem")),
        "the grpcio suite (pytest)",
        dir.path(),
    )
    .await;
    println!("{report}");
    assert!(report.lines().any(|line| line.contains(" passed")), "pytest reported no passed test:\n{report}");

    // The server counts a call whose deadline expired on it as DEADLINE_EXCEEDED, not as
    // cancelled. (Not all 30 of the suite's: where the client's own timer wins the race
    // the server sees the call end, not its deadline.)
    let metrics =
        reqwest::get(format!("http://127.0.0.1:{}/metrics", plain.metrics_port)).await.unwrap().text().await.unwrap();
    let expired =
        counter(&metrics, "grpc_stress_rpcs_total", &["method=\"ClientStreaming\"", "code=\"DEADLINE_EXCEEDED\""]);
    assert!(
        expired >= 1.0,
        "the plain server recorded no expired deadline (log {}):\n{metrics}",
        plain.process.log().display()
    );
}
