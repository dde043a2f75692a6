//! Constant and stage profiles against real servers (device-api on a private
//! PostgreSQL for the devices scenario), segments, outputs and thresholds.

mod common;

use std::time::Duration;

use common::{LimitedServer, run_loadgen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_scenario_against_device_api() {
    let postgres = loadlab_fixtures::database();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener_address = listener.local_addr().unwrap();
    let target = format!("http://{listener_address}");
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = stop.clone();
    let config = device_api::Config::for_database(postgres.url("device_api"));
    let server = tokio::spawn(device_api::run(config, listener, async move { signal.cancelled().await }));
    let ready = loadlab_supervise::Ready::http(listener_address, "/ready");
    ready
        .wait_async("the in-process device-api", loadlab_fixtures::READY_LIMIT)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let out = tempfile::tempdir().unwrap();
    let (report, code) = run_loadgen(&[
        "run",
        "--target",
        &target,
        "--devices",
        "20",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--out",
        out.path().to_str().unwrap(),
        "--threshold",
        "errors<1%",
    ])
    .await;
    assert_eq!(code, 0, "{:?}", report.thresholds);
    let step = &report.steps[0];
    assert_eq!(step.offered, 200);
    assert_eq!(step.completed, 200);
    assert_eq!(step.errors, 0, "{:?}", step.requests);
    let names: Vec<&str> = step.requests.iter().map(|row| row.request.as_str()).collect();
    assert!(names.contains(&"command") && names.contains(&"measurement"), "{names:?}");

    // What loadgen says it stored is what device-api stored.
    let measurements =
        step.requests.iter().filter(|row| row.request == "measurement").map(|row| row.count).sum::<u64>();
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(&postgres.url("device_api")).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM measurement").fetch_one(&mut connection).await.unwrap();
    assert_eq!(stored as u64, measurements);
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM device").fetch_one(&mut connection).await.unwrap();
    assert_eq!(devices, 20);

    // Periodic routines: every device polls every 200 ms and measures every 100 ms.
    let (routines, code) = run_loadgen(&[
        "run",
        "--target",
        &target,
        "--devices",
        "10",
        "--command-every",
        "200ms",
        "--measurement-every",
        "100ms",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(code, 0);
    let step = &routines.steps[0];
    assert_eq!(step.errors, 0, "{:?}", step.requests);
    let count = |name: &str| step.requests.iter().filter(|row| row.request == name).map(|row| row.count).sum::<u64>();
    // At most one tick per period (−10 % jitter) per device, plus the first.
    assert!((1..=10 * 7).contains(&count("command")), "commands {}", count("command"));
    assert!((1..=10 * 13).contains(&count("measurement")), "measurements {}", count("measurement"));
    assert!(count("measurement") > count("command"), "measurements come twice as often");

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"][0]["completed"], 200);
    let csv = std::fs::read_to_string(out.path().join("seconds.csv")).unwrap();
    assert!(csv.starts_with("second,step,offered_rate"));
    assert!(csv.lines().count() >= 3, "{csv}");
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_half_segments_replay_the_whole_schedule() {
    let server = LimitedServer::start(64, Duration::from_millis(1)).await;
    let words = |segment: &'static str| {
        vec!["run", "--scenario", "http", "--target", &server.url, "--stages", "1s:200,1s:100", "--segment", segment]
    };
    let (whole, _) = run_loadgen(&words("0/1")).await;
    let served_whole = server.served.swap(0, std::sync::atomic::Ordering::Relaxed);
    let (first, _) = run_loadgen(&words("0/2")).await;
    let (second, _) = run_loadgen(&words("1/2")).await;
    let served_halves = server.served.load(std::sync::atomic::Ordering::Relaxed);
    // 0→200/s over 1 s is 100 requests, then 200→100/s over 1 s is 150.
    assert_eq!(whole.steps[0].offered, 250);
    assert_eq!(first.steps[0].offered + second.steps[0].offered, 250);
    assert_eq!(first.steps[0].offered, 125);
    assert_eq!(served_whole, 250);
    assert_eq!(served_halves, 250, "the two halves sent exactly the whole");
    assert_eq!(first.segment, "0/2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_decide_the_exit_code() {
    let server = LimitedServer::start(8, Duration::from_millis(5)).await;
    let base = ["run", "--scenario", "http", "--target", server.url.as_str(), "--rate", "50", "--duration", "1s"];
    let (held, code) = run_loadgen(&[&base[..], &["--threshold", "p99<2s", "--threshold", "errors<1%"]].concat()).await;
    assert_eq!(code, 0, "{:?}", held.thresholds);
    let (broken, code) = run_loadgen(&[&base[..], &["--threshold", "p50<1ms"]].concat()).await;
    assert_eq!(code, loadgen::exit::THRESHOLD);
    assert!(broken.thresholds[0].broken.as_deref().unwrap().contains("was"), "{:?}", broken.thresholds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_users_wait_for_answers_and_think() {
    let server = LimitedServer::start(8, Duration::from_millis(5)).await;
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--users",
        "4",
        "--think-time",
        "100ms..100ms",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(code, 0);
    let step = &report.steps[0];
    assert_eq!(step.offered, step.completed, "a closed model sends only when a user is free");
    assert_eq!(step.errors, 0);
    assert_eq!(step.dropped, 0);
    // Each user sends at most once per 100 ms of thinking: at most 4 × 11 in 1 s.
    assert!(step.completed >= 4 && step.completed <= 44, "{}", step.completed);
    assert_eq!(server.served.load(std::sync::atomic::Ordering::Relaxed), step.completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_reports_merge_exactly() {
    use loadgen::output::merge;
    let server = LimitedServer::start(16, Duration::from_millis(2)).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (segment, dir) in ["0/2", "1/2"].iter().zip(&dirs) {
        let (_, code) = run_loadgen(&[
            "run",
            "--scenario",
            "http",
            "--target",
            &server.url,
            "--rate",
            "200",
            "--duration",
            "1s",
            "--segment",
            segment,
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .await;
        assert_eq!(code, 0);
    }
    let parts: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let (report, seconds) = merge::read(dir.path()).unwrap();
            (dir.path().display().to_string(), report, seconds)
        })
        .collect();
    // What the merge must give: the union of both halves' histograms.
    let mut union = loadgen::stats::decode(&parts[0].1.steps[0].histograms.corrected_ok).unwrap();
    union.add(loadgen::stats::decode(&parts[1].1.steps[0].histograms.corrected_ok).unwrap()).unwrap();
    let (merged, seconds) = merge::merge(parts).unwrap();
    let step = &merged.steps[0];
    assert_eq!(step.offered, 200);
    assert_eq!(step.completed, 200);
    assert_eq!(merged.segment, "0/2+1/2");
    assert_eq!(step.corrected_ms.p99, Some(union.value_at_quantile(0.99) as f64 / 1000.0));
    assert_eq!(step.requests.iter().map(|row| row.count).sum::<u64>(), 200);
    assert_eq!(seconds.iter().map(|row| row.sent).sum::<u64>(), 200);
    let out = tempfile::tempdir().unwrap();
    loadgen::output::report::write(out.path(), &merged, &seconds).unwrap();
    assert!(out.path().join("report.html").exists());

    // Outputs of different plans are refused.
    let other = tempfile::tempdir().unwrap();
    let (_, _) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--stages",
        "1s:100",
        "--out",
        other.path().to_str().unwrap(),
    ])
    .await;
    let (report_a, seconds_a) = merge::read(dirs[0].path()).unwrap();
    let (report_b, seconds_b) = merge::read(other.path()).unwrap();
    let refused = merge::merge(vec![("a".into(), report_a, seconds_a), ("b".into(), report_b, seconds_b)]);
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_speaks_http2_without_tls() {
    let server = LimitedServer::start(8, Duration::from_millis(1)).await;
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--h2c",
        "--rate",
        "50",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!((report.steps[0].completed, report.steps[0].errors), (50, 0), "{:?}", report.steps[0].requests);
    assert_eq!(server.served.load(std::sync::atomic::Ordering::Relaxed), 50);
    assert_eq!(server.served_http2.load(std::sync::atomic::Ordering::Relaxed), 50, "the server saw HTTP/2");
}
