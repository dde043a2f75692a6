//! What a service that runs plans one after another in its own process (`loadlab
//! serve`) relies on: a run's `/metrics` listener is gone when the run returns, so the
//! next run can serve on the same address; and `loadgen target`'s capacity options, the
//! real server its tests give a known breaking point.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use common::LimitedServer;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_closes_when_the_run_returns() {
    let server = LimitedServer::start(8, Duration::from_millis(1)).await;
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for _ in 0..2 {
        let address = listen.to_string();
        let words = ["loadgen", "run", "--scenario", "http", "--target", &server.url, "--rate", "50"]
            .into_iter()
            .chain(["--duration", "1s", "--listen", &address]);
        let plan = loadgen::cli::Cli::try_parse_from(words).unwrap().command.into_plan().unwrap().unwrap();
        let (report, code) = loadgen::run::execute(&plan, CancellationToken::new(), false).await.expect("it ran");
        assert_eq!(code, 0, "{}", report.verdict);
        // The address is free again (the listener went with the run).
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpListener::bind(listen).is_err() {
            assert!(Instant::now() < deadline, "{listen} is still held after the run returned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[test]
fn target_capacity_options_go_together() {
    let binary = env!("CARGO_BIN_EXE_loadgen");
    for args in [&["--workers", "4"][..], &["--service-time", "10ms"], &["--workers", "0", "--service-time", "1ms"]] {
        let output = Command::new(binary).arg("target").args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--workers") || stderr.contains("--service-time"), "{args:?}: {stderr}");
    }
}
