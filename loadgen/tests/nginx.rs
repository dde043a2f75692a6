//! loadgen against nginx, a server it was not written with: every scenario's
//! requests must be what a browser would send (origin-form request line, `Host` with
//! the port, loadgen's User-Agent, Content-Length and Content-Type with a body), on
//! reused keep-alive connections, over HTTP/1.1, h2c, HTTPS and h2. nginx's access log
//! is the witness: it records what nginx received.

mod common;

use common::{outcomes, run_loadgen};
use loadlab_fixtures::{DEVICE_ID, Nginx};

fn port(url: &str) -> &str {
    url.rsplit(':').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_users_send_origin_form_requests_with_host_on_kept_connections() {
    let nginx = Nginx::start();
    let target = format!("{}/probe?x=1", nginx.http);
    let (report, code) =
        run_loadgen(&["run", "--scenario", "http", "--target", &target, "--users", "8", "--duration", "2s"]).await;
    let step = &report.steps[0];
    assert_eq!((code, step.errors), (0, 0), "{}", outcomes(step));
    assert!(step.completed > 100, "nginx answered {} requests", step.completed);
    let log = nginx.access_log();
    assert_eq!(log.len() as u64, step.completed, "nginx saw every request loadgen counted");
    for line in &log {
        assert_eq!(line.request, "GET /probe?x=1 HTTP/1.1");
        assert_eq!(line.host, format!("127.0.0.1:{}", port(&nginx.http)));
        assert_eq!(line.user_agent, concat!("loadgen/", env!("CARGO_PKG_VERSION")));
        assert_eq!(line.status, 200);
    }
    // Each user keeps its connection: at most 8 connections, each carrying many requests.
    let connections: std::collections::BTreeSet<u64> = log.iter().map(|line| line.connection).collect();
    assert!(connections.len() <= 8, "{} connections for 8 users", connections.len());
    assert!(log.iter().any(|line| line.connection_requests > 10), "connections were reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_and_bodies_reach_nginx_as_sent() {
    let nginx = Nginx::start();
    let target = format!("{}/measurement", nginx.http);
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &target,
        "--method",
        "POST",
        "--body",
        r#"{"a":1}"#,
        "--rate",
        "100",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!((code, report.steps[0].completed, report.steps[0].errors), (0, 100, 0));
    let log = nginx.access_log();
    assert_eq!(log.len(), 100);
    for line in &log {
        assert_eq!(line.request, "POST /measurement HTTP/1.1");
        assert_eq!((line.content_length.as_str(), line.content_type.as_str()), ("7", "application/json"));
        assert_eq!(line.host, format!("127.0.0.1:{}", port(&nginx.http)));
        assert_eq!(line.status, 204);
    }
    nginx.clear_log();
    let (_, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &target,
        "--method",
        "PUT",
        "--body",
        "a,b",
        "--header",
        "Content-Type: text/csv",
        "--rate",
        "20",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(code, 0);
    let log = nginx.access_log();
    assert!(log.iter().all(|line| line.content_type == "text/csv" && line.content_length == "3"), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_verified_against_the_given_ca_or_refused() {
    let nginx = Nginx::start();
    let ca = nginx.ca.display().to_string();
    let base = ["run", "--scenario", "http", "--target", &nginx.https, "--rate", "50", "--duration", "1s"];
    let (trusted, code) = run_loadgen(&[&base[..], &["--ca", &ca]].concat()).await;
    assert_eq!(
        (code, trusted.steps[0].completed, trusted.steps[0].errors),
        (0, 50, 0),
        "{}",
        outcomes(&trusted.steps[0])
    );
    let log = nginx.access_log();
    assert!(log.iter().all(|line| line.tls.starts_with("TLSv1.") && line.request == "GET / HTTP/1.1"), "{log:?}");
    assert!(log.iter().all(|line| line.host == format!("localhost:{}", port(&nginx.https))), "{log:?}");

    // The system's roots do not know this CA: every request fails its handshake.
    let (untrusted, _) = run_loadgen(&base).await;
    let step = &untrusted.steps[0];
    assert_eq!(step.errors, step.completed);
    assert!(step.requests.iter().all(|row| row.outcome.to_string() == "tls_error"), "{}", outcomes(step));

    let (insecure, code) = run_loadgen(&[&base[..], &["--insecure"]].concat()).await;
    assert_eq!((code, insecure.steps[0].errors), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_goes_as_h2_over_tls_and_h2c_in_clear() {
    let nginx = Nginx::start();
    let ca = nginx.ca.display().to_string();
    let (tls, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &nginx.https,
        "--ca",
        &ca,
        "--http2",
        "--rate",
        "50",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!((code, tls.steps[0].errors), (0, 0), "{}", outcomes(&tls.steps[0]));
    let (clear, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &nginx.h2c,
        "--http2",
        "--users",
        "4",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!((code, clear.steps[0].errors), (0, 0), "{}", outcomes(&clear.steps[0]));
    let log = nginx.access_log();
    assert_eq!(log.len() as u64, tls.steps[0].completed + clear.steps[0].completed);
    assert!(log.iter().all(|line| line.protocol == "HTTP/2.0" && line.request == "GET / HTTP/2.0"), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_log_in_and_send_as_the_original_devices_did() {
    let nginx = Nginx::start();
    let (report, code) =
        run_loadgen(&["run", "--target", &nginx.http, "--devices", "5", "--rate", "40", "--duration", "1s"]).await;
    assert_eq!((code, report.steps[0].errors), (0, 0), "{}", outcomes(&report.steps[0]));
    let open_model = nginx.access_log();
    nginx.clear_log();
    // Routines: each device on its own connection, kept (parked) between its requests.
    let (routines, code) = run_loadgen(&[
        "run",
        "--target",
        &nginx.http,
        "--devices",
        "5",
        "--command-every",
        "200ms",
        "--measurement-every",
        "100ms",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!((code, routines.steps[0].errors), (0, 0), "{}", outcomes(&routines.steps[0]));
    let routines_log = nginx.access_log();
    let work: Vec<_> = routines_log.iter().filter(|line| line.request != "POST /login HTTP/1.1").collect();
    let connections: std::collections::BTreeSet<u64> = work.iter().map(|line| line.connection).collect();
    assert!(work.len() > 20, "{} requests", work.len());
    assert!(connections.len() <= 5, "5 devices used {} connections", connections.len());
    let log: Vec<_> = open_model.into_iter().chain(routines_log).collect();
    let host = format!("127.0.0.1:{}", port(&nginx.http));
    assert_eq!(log.iter().filter(|line| line.request == "POST /login HTTP/1.1").count(), 10);
    for line in log.iter().filter(|line| line.request != "POST /login HTTP/1.1") {
        assert_eq!(line.host, host);
        assert_eq!(line.cookie, DEVICE_ID, "{line:?}");
        match line.request.as_str() {
            "GET /command HTTP/1.1" => assert_eq!(line.status, 200),
            "POST /measurement HTTP/1.1" => {
                assert_eq!(line.content_type, "application/json");
                assert!(line.content_length.parse::<u32>().unwrap() > 100, "{line:?}");
            }
            other => panic!("unexpected request {other}"),
        }
    }
}
