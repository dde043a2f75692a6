//! Bad input is refused before anything starts: exit code 2 and one line that names
//! the option and what it may be. Each case below was accepted (or crashed, or ran
//! forever) before the options were checked by their parsers.

use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_loadgen");

fn loadgen<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(BINARY).args(args).args(["--listen", "none"]).output().unwrap()
}

/// `head` followed by `extra`, as owned words.
fn words(head: &[&str], extra: &[&str]) -> Vec<String> {
    head.iter().chain(extra).map(|word| word.to_string()).collect()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    loadlab_supervise::ports::free_loopback_port().unwrap()
}

fn assert_refused<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], named: &str) {
    let output = loadgen(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?} was not refused: {stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains("error"), "{args:?}: {stderr}");
    let said: String = stderr.lines().take(2).collect::<Vec<_>>().join(" ");
    assert!(said.contains(named), "{args:?}: the error does not name {named}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn rates_must_be_finite_positive_and_bounded() {
    let target = format!("http://127.0.0.1:{}/", closed_port());
    let run = |extra: &[&str]| words(&["run", "--scenario", "http", "--target", &target], extra);
    for rate in ["inf", "-inf", "NaN", "0", "-5", "1e12"] {
        assert_refused(&run(&[&format!("--rate={rate}")]), "--rate");
    }
    assert_refused(&run(&["--stages", "10s:inf"]), "--stages");
    assert_refused(&run(&["--stages", "1s:1000000000000"]), "--stages");
    let breakpoint = |extra: &[&str]| words(&["breakpoint", "--scenario", "http", "--target", &target], extra);
    for rate in ["inf", "0", "-1"] {
        assert_refused(&breakpoint(&[&format!("--start-rate={rate}")]), "--start-rate");
    }
    for factor in ["1", "0.5", "NaN"] {
        assert_refused(&breakpoint(&["--step-factor", factor]), "--step-factor");
    }
    assert_refused(&breakpoint(&["--step-increment=-10"]), "--step-increment");
    for max in ["0", "-1", "NaN"] {
        assert_refused(&breakpoint(&[&format!("--max-rate={max}")]), "--max-rate");
    }
    assert_refused(&breakpoint(&["--start-rate", "100", "--max-rate", "10"]), "--max-rate");
    assert_refused(&breakpoint(&["--step-factor", "1.0001"]), "--step-factor");
}

#[test]
fn counts_durations_and_the_slo_must_be_in_range() {
    let target = format!("http://127.0.0.1:{}/", closed_port());
    let run = |extra: &[&str]| words(&["run", "--target", &target], extra);
    assert_refused(&run(&["--devices", "0", "--rate", "10"]), "--devices");
    assert_refused(&run(&["--users", "0"]), "--users");
    assert_refused(&run(&["--users", "100000000"]), "--users");
    assert_refused(&run(&["--rate", "10", "--duration", "99999999999h"]), "--duration");
    assert_refused(&run(&["--rate", "10", "--timeout", "0s"]), "--timeout");
    assert_refused(&run(&["--rate", "10", "--max-in-flight", "0"]), "--max-in-flight");
    // --grpc-connections is the old name of --connections.
    assert_refused(&run(&["--rate", "10", "--grpc-connections", "0"]), "--connections");
    assert_refused(&run(&["--rate", "10", "--grpc-calls-per-connection", "0"]), "--grpc-calls-per-connection");
    assert_refused(&run(&["--command-every", "0s", "--measurement-every", "1s"]), "--command-every");
    assert_refused(&run(&["--command-every", "1s", "--measurement-every", "0s"]), "--measurement-every");
    assert_refused(
        &run(&["--command-every", "1s", "--measurement-every", "1s", "--jitter-percent=-5"]),
        "--jitter-percent",
    );
    assert_refused(&run(&["--rate", "10", "--threshold", "errors<NaN%"]), "--threshold");
    let breakpoint = |extra: &[&str]| words(&["breakpoint", "--target", &target], extra);
    for (option, value) in [
        ("--slo-quantile", "2"),
        ("--slo-quantile", "NaN"),
        ("--slo-errors-percent", "-1"),
        ("--slo-achieved-percent", "1000"),
        ("--resolution", "-1"),
        ("--resolution", "NaN"),
        ("--step-duration", "0s"),
        ("--refine", "1000"),
    ] {
        assert_refused(&breakpoint(&[&format!("{option}={value}")]), option);
    }
}

#[test]
fn targets_methods_and_headers_must_be_valid() {
    assert_refused(&["run", "--scenario", "http", "--target", "", "--rate", "1"], "--target");
    assert_refused(&["run", "--scenario", "http", "--target", "127.0.0.1:8080", "--rate", "1"], "--target");
    assert_refused(
        &["run", "--scenario", "http", "--target", "http://x/", "--method", "BAD METHOD", "--rate", "1"],
        "--method",
    );
    assert_refused(
        &["run", "--scenario", "http", "--target", "http://x/", "--header", "nocolon", "--rate", "1"],
        "--header",
    );
    for framing in ["Content-Length: 5", "transfer-encoding: chunked"] {
        let args = ["run", "--scenario", "http", "--target", "http://x/", "--header", framing, "--rate", "1"];
        assert_refused(&args, "--header");
    }
    assert_refused(&["run", "--scenario", "http", "--target", "http://x/", "--insecure", "--rate", "1"], "--insecure");
    assert_refused(&["run", "--target", "http://x/", "--body", "{}", "--rate", "1"], "--body");
}

#[test]
fn outputs_and_prometheus_are_checked_before_the_run() {
    let target = format!("http://127.0.0.1:{}/", closed_port());
    let file = tempfile::NamedTempFile::new().unwrap();
    for out in ["/proc/nope", file.path().to_str().unwrap()] {
        let args = ["run", "--scenario", "http", "--target", &target, "--rate", "10", "--duration", "1s", "--out", out];
        assert_refused(&args, "--out");
    }
    let breakpoint = |prometheus: &str| {
        vec![
            "breakpoint".to_string(),
            "--scenario".into(),
            "http".into(),
            "--target".into(),
            target.clone(),
            "--prometheus".into(),
            prometheus.into(),
            "--bottlenecks".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../monitoring/bottlenecks.toml").into(),
        ]
    };
    let refused = format!("http://127.0.0.1:{}", closed_port());
    assert_refused(&breakpoint(&refused), "--prometheus");
    assert_refused(&breakpoint("not a url"), "--prometheus");
    // A Prometheus that accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    assert_refused(&breakpoint(&silent_url), "--prometheus");
}

#[test]
fn clap_errors_name_the_option() {
    assert_refused(&["run", "--target", "http://x", "--rate", "10", "--segment", "3/2"], "--segment");
    assert_refused(&["run", "--target", "http://x", "--rate", "10", "--threshold", "p99>1s"], "--threshold");
    assert_refused(&["run", "--target", "http://x", "--stages", "10s:fast"], "--stages");
    assert_refused(&["run", "--target", "http://x"], "--rate");
}
