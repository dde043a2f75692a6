//! The breakpoint search against servers whose capacity is known: it must find the
//! limit within the step resolution and say why the next step failed.

mod common;

use std::time::Duration;

use common::{LimitedServer, run_loadgen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_a_known_capacity_within_the_step_resolution() {
    // 4 workers × 20 ms: 200 requests/s. Above it the queue, and the corrected
    // latency, grow without bound.
    let server = LimitedServer::start(4, Duration::from_millis(20)).await;
    let (report, code) = run_loadgen(&[
        "breakpoint",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--start-rate",
        "50",
        "--step-factor",
        "2",
        "--step-duration",
        "2s",
        "--refine",
        "3",
        "--resolution",
        "0.1",
        "--slo-latency",
        "150ms",
    ])
    .await;
    assert_eq!(code, 0);
    let point = report.breaking_point.expect("a breakpoint run reports its breaking point");
    let held = point.rate.expect("the first steps held");
    let broken = point.broken_rate.expect("the capacity was exceeded");
    println!("held {held}/s, broke at {broken}/s: {:?}", point.reason);
    // Capacity is 200/s: the highest held rate lies below it and within the
    // resolution of the steps, and the lowest broken one is not far above it.
    assert!((100.0..=200.0).contains(&held), "held {held}");
    assert!(broken > held && broken <= 400.0, "broke at {broken}");
    assert!(!point.reason.is_empty());
    let steps: Vec<_> = report.steps.iter().map(|step| (step.offered_rate, step.held)).collect();
    assert!(steps.iter().any(|(_, held)| *held == Some(false)), "{steps:?}");
    assert!(report.steps.iter().any(|step| step.label.starts_with("refine")), "it refined: {steps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_target_is_counted_errors_not_a_crash() {
    // Nothing listens on this port.
    let port = loadlab_supervise::ports::free_loopback_port().unwrap();
    let target = format!("http://127.0.0.1:{port}/");
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &target,
        "--rate",
        "50",
        "--duration",
        "1s",
        "--threshold",
        "errors<1%",
    ])
    .await;
    assert_eq!(code, loadgen::exit::THRESHOLD, "the error threshold broke");
    let step = &report.steps[0];
    assert_eq!(step.errors, step.completed);
    assert_eq!(step.completed, 50);
    assert!(step.requests.iter().all(|row| row.outcome.to_string() == "connect_refused"), "{:?}", step.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_even_the_first_step_breaks_the_verdict_says_so() {
    // 2 workers × 50 ms: 40 requests/s; the search starts at 200/s.
    let server = LimitedServer::start(2, Duration::from_millis(50)).await;
    let (report, code) = run_loadgen(&[
        "breakpoint",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--start-rate",
        "200",
        "--step-duration",
        "1s",
        "--slo-latency",
        "50ms",
        "--timeout",
        "2s",
    ])
    .await;
    assert_eq!(code, loadgen::exit::THRESHOLD);
    assert!(report.verdict.starts_with("no rate held"), "{}", report.verdict);
    let point = report.breaking_point.unwrap();
    assert_eq!((point.rate, point.broken_rate), (None, Some(200.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_whose_queries_fail_gives_no_verdict_and_says_why() {
    // Ready at start (so the run goes ahead), then every query is refused.
    let app = axum::Router::new()
        .route("/-/ready", axum::routing::get(|| async { "Prometheus Server is Ready." }))
        .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prometheus = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = LimitedServer::start(2, Duration::from_millis(20)).await;
    let signals = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitoring/bottlenecks.toml");
    let (report, _) = run_loadgen(&[
        "breakpoint",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--start-rate",
        "50",
        "--step-duration",
        "1s",
        "--refine",
        "0",
        "--slo-latency",
        "50ms",
        "--prometheus",
        &prometheus,
        "--bottlenecks",
        signals,
    ])
    .await;
    let analysis = report.bottlenecks.expect("the analysis ran");
    assert!(analysis.verdict.starts_with("no verdict: every query to Prometheus failed"), "{}", analysis.verdict);
    assert!(analysis.ranking.iter().all(|reading| reading.error.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_over_devices_finds_how_many_devices_a_server_holds() {
    // 4 workers × 20 ms: 200 requests/s; each device sends 2 a second, so about 100
    // devices fill it.
    let server = LimitedServer::start(4, Duration::from_millis(20)).await;
    let (report, code) = run_loadgen(&[
        "breakpoint",
        "--target",
        server.url.trim_end_matches('/'),
        "--over",
        "devices",
        "--start-devices",
        "25",
        "--max-devices",
        "400",
        "--command-every",
        "1s",
        "--measurement-every",
        "1s",
        "--step-duration",
        "3s",
        "--refine",
        "2",
        "--slo-latency",
        "150ms",
        "--login-rate",
        "500",
    ])
    .await;
    assert_eq!(code, 0, "{}", report.verdict);
    let point = report.breaking_point.unwrap();
    assert_eq!(point.unit, "devices");
    let (held, broken) = (point.rate.unwrap(), point.broken_rate.unwrap());
    println!("{}", point.sentence());
    assert!((50.0..=100.0).contains(&held), "held {held} devices");
    assert!(broken > held && broken <= 200.0, "broke at {broken} devices");
    // Each device sends about 2 requests a second.
    let request_rate = point.request_rate.unwrap();
    assert!((1.5 * held..=2.5 * held).contains(&request_rate), "{request_rate}/s for {held} devices");
    // Every device logged in once, however many steps it took part in.
    let most = report.steps.iter().filter_map(|step| step.devices).max().unwrap();
    assert_eq!(server.logins.load(std::sync::atomic::Ordering::Relaxed), u64::from(most));
}
