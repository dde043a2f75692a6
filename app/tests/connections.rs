//! Clients that hold connections without finishing requests, against real sockets:
//! sockets that never send, half-sent heads, trickled bodies, idle keep-alives, more
//! connections than the cap. Each must be cut off within a bound derived from its
//! configured timeout (short here; the bounds are generous, and no test asserts how
//! fast anything was, only that it was not for ever and not before its time).

mod common;

use std::time::Duration;

use common::raw::{self, Closed};
use common::{TestApi, measurement};
use tokio::io::AsyncWriteExt;

/// The timeout the tests under test use; everything else is left long.
const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(120);
/// Generous: a close must come within this, which old code (no timeouts) never did.
const BOUND: Duration = Duration::from_secs(12);
/// Shorter than any timeout used: nothing may be cut off this early.
const EARLY: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_finish_a_head_are_closed_after_the_header_timeout() {
    let api = TestApi::start_with(|config| {
        config.header_read_timeout = SHORT;
        config.keep_alive_timeout = LONG;
        config.body_read_timeout = LONG;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(raw::connect(&api.base).await);
    }
    let mut half_sent = Vec::new();
    for _ in 0..5 {
        let (reader, mut writer) = raw::connect(&api.base).await;
        writer.write_all(b"POST /measurement HTTP/1.1\r\nhost: device-api\r\ncontent-ty").await.unwrap();
        half_sent.push((reader, writer));
    }
    // A head sent a byte at a time, never finished: each byte is progress, but the
    // head as a whole is still late.
    let (mut trickled, mut trickle_writer) = raw::connect(&api.base).await;
    let endless_head = [b"GET /health HTTP/1.1\r\n".as_slice(), &b"x".repeat(1000)].concat();
    let trickling =
        tokio::spawn(async move { raw::trickle(&mut trickle_writer, &endless_head, Duration::from_millis(50)).await });

    assert!(silent[0].0.open_and_silent_for(EARLY).await, "closed before its header timeout");
    for (index, (reader, _writer)) in silent.iter_mut().chain(half_sent.iter_mut()).enumerate() {
        let closed = reader.closed_within(BOUND).await;
        assert!(matches!(closed, Closed::After(_)), "connection {index} still open after {BOUND:?}");
    }
    assert!(matches!(trickled.closed_within(BOUND).await, Closed::After(_)), "a trickled head is still being read");
    let sent = trickling.await.unwrap();
    assert!(sent < 1000, "the server took the whole endless head ({sent} bytes)");

    // The server is fine and counts what it did.
    let metrics = api.client.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let header_timeouts = metric(&metrics, "device_api_connection_timeouts_total{phase=\"header_read\"}");
    assert!(header_timeouts >= 26.0, "header timeouts counted: {header_timeouts}\n{metrics}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off_with_a_408_not_waited_for() {
    let api = TestApi::start_with(|config| {
        config.header_read_timeout = LONG;
        config.keep_alive_timeout = LONG;
        config.body_read_timeout = SHORT;
    })
    .await;
    let device = api.login().await;
    // A valid measurement, padded to 150 bytes, sent at 1 byte per 100 ms: 15 s in all.
    let mut body = measurement(30.0, 50, 50);
    body["time"] = serde_json::json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut body = serde_json::to_vec(&body).unwrap();
    assert!(body.len() <= 150, "{} bytes", body.len());
    body.resize(150, b' ');
    let (mut reader, mut writer) = raw::connect(&api.base).await;
    let head = format!(
        "POST /measurement HTTP/1.1\r\nhost: device-api\r\nauthorization: Bearer {device}\r\n\
         content-type: application/json\r\ncontent-length: 150\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickling = tokio::spawn(async move { raw::trickle(&mut writer, &body, Duration::from_millis(100)).await });

    // Well before the 15 s the body takes.
    let response = reader.response(Duration::from_secs(10)).await.expect("an answer before the body ends");
    response.assert_json_error(408, "body_timeout");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(matches!(reader.closed_within(BOUND).await, Closed::After(_)), "the connection stays open");
    assert!(trickling.await.unwrap() < 150, "the whole body was taken");
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 0, "nothing of a cut-off body is stored");

    // A body the route never reads ends its connection after the answer.
    let (mut reader, mut writer) = raw::connect(&api.base).await;
    writer.write_all(b"GET /health HTTP/1.1\r\nhost: device-api\r\ncontent-length: 150\r\n\r\n{").await.unwrap();
    let trickling =
        tokio::spawn(async move { raw::trickle(&mut writer, &[b' '; 149], Duration::from_millis(100)).await });
    assert_eq!(reader.response(BOUND).await.expect("health answers").status, 200);
    assert!(matches!(reader.closed_within(BOUND).await, Closed::After(_)), "an unread body keeps its connection");
    trickling.abort();

    // A whole body in time is still fine.
    assert_eq!(api.post_measurement(device, &measurement(30.0, 50, 50)).await, 204);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_keep_alive_timeout() {
    let api = TestApi::start_with(|config| {
        config.header_read_timeout = LONG;
        config.keep_alive_timeout = SHORT;
        config.body_read_timeout = LONG;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..10 {
        let (mut reader, mut writer) = raw::connect(&api.base).await;
        writer.write_all(&raw::get("/health")).await.unwrap();
        assert_eq!(reader.response(BOUND).await.expect("health answers").status, 200);
        idle.push((reader, writer));
    }
    assert!(idle[0].0.open_and_silent_for(EARLY).await, "closed before its keep-alive timeout");
    for (index, (reader, _writer)) in idle.iter_mut().enumerate() {
        assert!(matches!(reader.closed_within(BOUND).await, Closed::After(_)), "idle connection {index} still open");
    }

    // A connection in use is not idle: requests closer together than the timeout
    // keep it open well past it.
    let (mut reader, mut writer) = raw::connect(&api.base).await;
    for _ in 0..15 {
        writer.write_all(&raw::get("/health")).await.unwrap();
        assert_eq!(reader.response(BOUND).await.expect("a busy keep-alive stays open").status, 200);
        tokio::time::sleep(SHORT / 5).await;
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_idles_by_the_keep_alive_timeout_not_the_header_timeout() {
    let api = TestApi::start_with(|config| {
        config.header_read_timeout = Duration::from_millis(500);
        config.keep_alive_timeout = LONG;
    })
    .await;
    let (mut reader, mut writer) = raw::connect(&api.base).await;
    writer.write_all(&raw::get("/health")).await.unwrap();
    assert_eq!(reader.response(BOUND).await.unwrap().status, 200);
    // Idle for four header timeouts: hyper's own header timer would have closed it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    writer.write_all(&raw::get("/health")).await.unwrap();
    assert_eq!(reader.response(BOUND).await.expect("served after an idle spell").status, 200);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_an_immediate_json_503() {
    const CAP: usize = 3;
    let mut api = TestApi::start_with(|config| {
        config.max_connections = CAP as u32;
        config.keep_alive_timeout = LONG;
        config.header_read_timeout = LONG;
    })
    .await;
    // The harness's pooled connection would hold a place: drop it.
    api.client = reqwest::Client::new();
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    while held.len() < CAP {
        assert!(tokio::time::Instant::now() < deadline, "could not open {CAP} connections");
        let (mut reader, mut writer) = raw::connect(&api.base).await;
        writer.write_all(&raw::get("/health")).await.unwrap();
        match reader.response(BOUND).await.map(|response| response.status) {
            Some(200) => held.push((reader, writer)),
            _ => tokio::time::sleep(Duration::from_millis(50)).await, // a place not yet given back
        }
    }

    let (mut reader, mut writer) = raw::connect(&api.base).await;
    let _ = writer.write_all(&raw::get("/health")).await;
    let refused = reader.response(BOUND).await.expect("an answer, not a hang");
    refused.assert_json_error(503, "too_many_connections");
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(matches!(reader.closed_within(BOUND).await, Closed::After(_)), "a refused connection is closed");

    // The held ones still work, and a place given back is taken again.
    let (reader, writer) = &mut held[0];
    writer.write_all(&raw::get("/health")).await.unwrap();
    assert_eq!(reader.response(BOUND).await.unwrap().status, 200);
    held.pop();
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let (mut reader, mut writer) = raw::connect(&api.base).await;
        writer.write_all(&raw::get("/health")).await.unwrap();
        if reader.response(BOUND).await.map(|response| response.status) == Some(200) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a closed connection's place is never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_json_errors() {
    let api = TestApi::start().await;
    let long_target = format!("/health?{}", "a".repeat(100 * 1024));
    let many_headers: String = (0..10_000).map(|i| format!("x-header-{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("100 KB request target", raw::get(&long_target), 414, "uri_too_long"),
        (
            "10,000 headers",
            format!("GET /health HTTP/1.1\r\nhost: device-api\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
        ("malformed request line", b"GARBAGE\r\n\r\n".to_vec(), 400, "malformed_request"),
        ("bad HTTP version", b"GET /health HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(), 400, "malformed_request"),
        ("header without a colon", b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(), 400, "malformed_request"),
    ];
    for (name, request, status, kind) in cases {
        let (mut reader, mut writer) = raw::connect(&api.base).await;
        // The server may answer and close before it has read everything.
        let _ = writer.write_all(&request).await;
        let response = reader.response(BOUND).await.unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(response.status, status, "{name}: {response:?}");
        response.assert_json_error(status, kind);
        assert_eq!(response.header("connection"), Some("close"), "{name}");
    }
    // The same connection's earlier responses are untouched, and one keep-alive serves on.
    let (mut reader, mut writer) = raw::connect(&api.base).await;
    writer.write_all(&[raw::get("/health"), raw::get("/nope"), b"BROKEN\r\n\r\n".to_vec()].concat()).await.unwrap();
    assert_eq!(reader.response(BOUND).await.unwrap().json()["status"], "up");
    reader.response(BOUND).await.unwrap().assert_json_error(404, "not_found");
    reader.response(BOUND).await.unwrap().assert_json_error(400, "malformed_request");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_idle_connections() {
    let api = TestApi::start_with(|config| {
        config.header_read_timeout = LONG;
        config.keep_alive_timeout = LONG;
    })
    .await;
    let (_fresh_reader, _fresh_writer) = raw::connect(&api.base).await;
    let (mut reader, mut writer) = raw::connect(&api.base).await;
    writer.write_all(&raw::get("/health")).await.unwrap();
    assert_eq!(reader.response(BOUND).await.unwrap().status, 200);
    tokio::time::timeout(BOUND, api.stop()).await.expect("shutdown waited for idle connections");
    assert!(matches!(reader.closed_within(BOUND).await, Closed::After(_)));
}

/// The value of one sample line of Prometheus text (`name{labels} value`).
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}
