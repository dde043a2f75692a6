//! The loadgen binary: invalid options get a one-line error naming the option; a
//! target that refuses logins aborts with the aborted code; SIGINT stops the run and
//! still writes the report, marked interrupted.

use std::process::{Command, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_loadgen");

#[test]
fn invalid_options_name_the_option() {
    for (args, named) in [
        (vec!["run", "--target", "http://x", "--rate", "10", "--segment", "3/2"], "--segment"),
        (vec!["run", "--target", "http://x", "--rate", "10", "--threshold", "p99>1s"], "--threshold"),
        (vec!["run", "--target", "http://x", "--stages", "10s:fast"], "--stages"),
        (vec!["run", "--target", "http://x"], "--rate"),
    ] {
        let output = Command::new(BINARY).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The error line names the option (clap lists a missing one on the next line).
        let head: Vec<&str> = stderr.lines().take(2).collect();
        assert!(head[0].starts_with("error:") && head.join(" ").contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_device_api_aborts_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(BINARY)
        .args([
            "run",
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--rate",
            "10",
            "--duration",
            "1s",
            "--listen",
            "none",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(97));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("login") && stderr.contains("connect_refused"), "{stderr}");
}

#[test]
fn sigint_stops_the_run_and_still_writes_the_report() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    // A target that accepts and never answers: requests time out, which is fine here.
    let out = tempfile::tempdir().unwrap();
    let child = Command::new(BINARY)
        .args(["run", "--scenario", "http", "--target", &format!("http://127.0.0.1:{port}/"), "--rate", "20"])
        .args(["--duration", "60s", "--timeout", "1s", "--listen", "none", "--out", out.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    drop(server);
    assert_eq!(output.status.code(), Some(97), "interrupted runs exit with the aborted code");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    let offered = summary["steps"][0]["offered"].as_u64().unwrap();
    assert!((20..1200).contains(&offered), "only what ran is reported: {offered}");
}
