//! The grpc and chat scenarios against a real grpc-stress server.

mod common;

use std::time::Duration;

use clap::Parser;
use common::run_loadgen;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct ServerCli {
    #[command(flatten)]
    options: grpc_stress::server::ServerOptions,
}

async fn grpc_server() -> (String, CancellationToken) {
    let options =
        ServerCli::parse_from(["server", "--metrics-listen", "none", "--chat-ping-interval", "200ms"]).options;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(grpc_stress::server::run(options, listener, async move { signal.cancelled().await }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_kind_as_a_scenario() {
    let (url, stop) = grpc_server().await;
    for (kind, name) in [
        ("unary", "non-streaming"),
        ("client-streaming", "client-streaming"),
        ("server-streaming", "server-streaming"),
        ("bidi", "bidi-streaming"),
    ] {
        let (report, code) = run_loadgen(&[
            "run",
            "--scenario",
            "grpc",
            "--target",
            &url,
            "--grpc-kind",
            kind,
            "--grpc-messages",
            "5",
            "--grpc-calls-per-connection",
            "7",
            "--rate",
            "40",
            "--duration",
            "1s",
        ])
        .await;
        assert_eq!(code, 0, "{kind}");
        let step = &report.steps[0];
        assert_eq!((step.completed, step.errors), (40, 0), "{kind}: {:?}", step.requests);
        assert_eq!(step.requests[0].request, name);
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_counts_every_delivery() {
    let (url, stop) = grpc_server().await;
    let target = loadlab_proto::connect::Target::new(&url, &Default::default()).unwrap();
    let plan = loadgen::chat::ChatPlan {
        conversations: 3,
        members: 4,
        duration: Duration::from_secs(1),
        send_interval: Duration::from_millis(100),
        connections: 2,
    };
    let report = loadgen::chat::run(&target, &plan, &CancellationToken::new()).await.unwrap();
    assert!(report.sent >= 3 * 5, "{report:?}");
    assert_eq!(report.expected_deliveries, report.sent * 3, "three receivers per conversation");
    assert_eq!(report.delivered, report.expected_deliveries, "{report:?}");
    assert_eq!((report.lost, report.duplicated, report.out_of_order), (0, 0, 0));
    assert!(report.delivery_latency_ms.p99.is_some());
    stop.cancel();
}

#[test]
fn chat_with_no_server_is_an_aborted_run() {
    let port = loadlab_supervise::ports::free_loopback_port().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["chat", "--target", &format!("http://127.0.0.1:{port}"), "--duration", "1s", "--send-interval", "100ms"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(97), "{}", String::from_utf8_lossy(&output.stdout));
}
