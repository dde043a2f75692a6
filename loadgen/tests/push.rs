//! Pushes to a real Pushgateway (a private instance the lab starts): the breaking
//! point arrives as its own metric, grouped by job, run id and segment; a Pushgateway
//! that cannot be reached is only a warning.

mod common;

use std::time::Duration;

use common::{LimitedServer, run_loadgen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_the_pushgateway() {
    let pushgateway =
        loadlab_fixtures::pushgateway().expect("a private Pushgateway (scripts/install-deps installs it)");
    let server = LimitedServer::start(4, Duration::from_millis(20)).await;
    let (report, code) = run_loadgen(&[
        "breakpoint",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--start-rate",
        "100",
        "--step-factor",
        "4",
        "--step-duration",
        "1s",
        "--refine",
        "0",
        "--slo-latency",
        "150ms",
        "--pushgateway",
        &pushgateway.url(),
        "--push-interval",
        "500ms",
        "--run-id",
        "push-test",
    ])
    .await;
    assert_eq!(code, 0);
    assert!(report.pushed_to.is_some(), "the final push succeeded");
    let rate = report.breaking_point.as_ref().and_then(|point| point.rate).expect("a breaking point");
    let page = reqwest::get(format!("{}/metrics", pushgateway.url())).await.unwrap().text().await.unwrap();
    let grouped = |line: &&str| {
        line.contains("job=\"loadgen\"")
            && line.contains("run_id=\"push-test\"")
            && line.contains("instance=\"segment-0-of-1\"")
    };
    let breaking_point = page
        .lines()
        .filter(grouped)
        .find(|line| line.starts_with("loadgen_breaking_point_rate"))
        .unwrap_or_else(|| panic!("no breaking point pushed:\n{page}"));
    let pushed: f64 = breaking_point.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(pushed, rate);
    assert!(page.lines().filter(grouped).any(|line| line.starts_with("loadgen_requests_total")), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_pushgateway_is_only_a_warning() {
    let server = LimitedServer::start(4, Duration::from_millis(1)).await;
    let port = loadlab_supervise::ports::free_loopback_port().unwrap();
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--rate",
        "20",
        "--duration",
        "1s",
        "--pushgateway",
        &format!("http://127.0.0.1:{port}"),
        "--push-interval",
        "200ms",
    ])
    .await;
    assert_eq!(code, 0, "the run held");
    assert_eq!(report.pushed_to, None);
    assert_eq!(report.steps[0].completed, 20);
}
