//! Every run stops when asked: the first SIGINT/SIGTERM ends the current step and the
//! report is written, marked interrupted; a second signal, or the grace period
//! passing, exits at once. Nothing a target does (never answering, never accepting)
//! keeps loadgen running past its grace period.

mod common;

use std::process::ExitStatus;
use std::time::Duration;

use loadlab_fixtures::{Nginx, program};
use loadlab_supervise::{Signal, Supervised};

const BINARY: &str = env!("CARGO_BIN_EXE_loadgen");

/// How a run ended: its status and what it said.
struct Output {
    status: ExitStatus,
    stderr: String,
}

/// Waits for `loadgen` at most `limit` (a liveness bound, far above what is expected),
/// failing the test (and killing it) if it is still running.
fn finish(mut loadgen: Supervised, limit: Duration) -> Output {
    let Some(status) = loadgen.wait_timeout(limit) else {
        panic!("loadgen still ran after {limit:?}: {}", loadgen.output());
    };
    Output { status, stderr: loadgen.output() }
}

fn spawn(args: &[&str]) -> Supervised {
    program(BINARY).args(args).args(["--listen", "none"]).spawn().unwrap()
}

fn summary(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json written")).unwrap()
}

#[test]
fn sigint_ends_the_run_writes_the_report_and_rates_cover_the_time_that_ran() {
    let nginx = Nginx::start();
    let out = tempfile::tempdir().unwrap();
    let mut child = spawn(
        &["run", "--scenario", "http", "--target", &nginx.http, "--rate", "20", "--duration", "60s"]
            .iter()
            .copied()
            .chain(["--out", out.path().to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    std::thread::sleep(Duration::from_secs(3));
    child.signal(Signal::SIGINT);
    let output = finish(child, Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(97), "interrupted runs exit with the interrupted code");
    let summary = summary(out.path());
    assert_eq!(summary["interrupted"], true);
    let step = &summary["steps"][0];
    let offered = step["offered"].as_u64().unwrap();
    assert!((20..1200).contains(&offered), "only what ran is reported: {offered}");
    // 20/s offered and served: the achieved rate is over the seconds that ran, not the 60 planned.
    let achieved = step["achieved_rate"].as_f64().unwrap();
    assert!((15.0..=25.0).contains(&achieved), "achieved {achieved}/s for 20/s offered");
}

#[test]
fn sigterm_ends_a_run_whose_requests_never_end() {
    // Accepts connections, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}/", silent.local_addr().unwrap());
    let out = tempfile::tempdir().unwrap();
    let mut child = spawn(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &target,
        "--rate",
        "50",
        "--duration",
        "700h",
        "--timeout",
        "1h",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    child.signal(Signal::SIGTERM);
    let output = finish(child, Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(97), "{}", output.stderr);
    let summary = summary(out.path());
    let requests = summary["steps"][0]["requests"].as_array().unwrap();
    assert!(requests.iter().all(|row| row["outcome"] == "unfinished"), "{requests:?}");
    assert!(requests.iter().map(|row| row["count"].as_u64().unwrap()).sum::<u64>() > 50);
}

#[test]
fn a_second_signal_exits_at_once() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}/", silent.local_addr().unwrap());
    // With a minute of grace the first signal alone would wait half a minute for answers.
    let mut child = spawn(
        &["run", "--scenario", "http", "--target", &target, "--rate", "50", "--duration", "1h"]
            .iter()
            .copied()
            .chain(["--timeout", "1h", "--grace", "60s"])
            .collect::<Vec<_>>(),
    );
    std::thread::sleep(Duration::from_secs(1));
    child.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    child.signal(Signal::SIGTERM);
    let output = finish(child, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(97));
    assert!(output.stderr.contains("second signal"));
}

#[test]
fn the_grace_period_ends_whatever_is_still_running() {
    // The final push goes to a Pushgateway that never answers (it may take 2 s); a
    // grace period of 1 s ends the process first.
    let nginx = Nginx::start();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pushgateway = format!("http://{}", silent.local_addr().unwrap());
    let mut child = spawn(
        &["run", "--scenario", "http", "--target", &nginx.http, "--rate", "20", "--duration", "1h"]
            .iter()
            .copied()
            .chain(["--grace", "1s", "--pushgateway", &pushgateway, "--push-interval", "1h"])
            .collect::<Vec<_>>(),
    );
    std::thread::sleep(Duration::from_secs(1));
    child.signal(Signal::SIGTERM);
    let output = finish(child, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(97));
    let stderr = &output.stderr;
    assert!(stderr.contains("grace period is over"), "{stderr}");
}

#[test]
fn an_unreachable_device_api_aborts_with_a_clear_error() {
    let port = loadlab_supervise::ports::free_loopback_port().unwrap();
    let output = finish(
        spawn(&["run", "--target", &format!("http://127.0.0.1:{port}"), "--rate", "10", "--duration", "1s"]),
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(97));
    let stderr = &output.stderr;
    assert!(stderr.contains("login") && stderr.contains("connect_refused"), "{stderr}");
}
