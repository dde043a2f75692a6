//! Test targets: a real HTTP server in-process whose capacity is limited on purpose
//! (a fixed number of workers, each taking a fixed time per request), so the
//! breaking point is known in advance; and helpers to run loadgen.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use loadgen::cli::Cli;
use loadgen::output::report::Report;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A server with `workers` parallel slots, each busy `service` per request: its
/// capacity is workers / service requests per second. Counts the requests it served,
/// and those that came over HTTP/2.
pub struct LimitedServer {
    pub url: String,
    pub served: Arc<AtomicU64>,
    pub served_http2: Arc<AtomicU64>,
    /// Logins answered (`POST /login`).
    pub logins: Arc<AtomicU64>,
    /// When the first request from each client address arrived.
    pub first_seen: Arc<std::sync::Mutex<std::collections::BTreeMap<std::net::IpAddr, std::time::Instant>>>,
    stop: CancellationToken,
}

impl LimitedServer {
    pub async fn start(workers: usize, service: Duration) -> Self {
        let slots = Arc::new(Semaphore::new(workers));
        let served = Arc::new(AtomicU64::new(0));
        let served_http2 = Arc::new(AtomicU64::new(0));
        let first_seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let (counter, http2, seen) = (served.clone(), served_http2.clone(), first_seen.clone());
        let logins = Arc::new(AtomicU64::new(0));
        let logged = logins.clone();
        // A device-api-shaped login, so the devices scenario can run here too.
        let login = axum::routing::post(move || {
            let number = logged.fetch_add(1, Ordering::Relaxed);
            async move { format!(r#"{{"username":"00000000-0000-4000-8000-{number:012}"}}"#) }
        });
        let app = axum::Router::new().route("/login", login).fallback(
            move |version: axum::http::Version,
                  axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>| {
                let (slots, counter, http2) = (slots.clone(), counter.clone(), http2.clone());
                seen.lock().unwrap().entry(peer.ip()).or_insert_with(std::time::Instant::now);
                async move {
                    let _slot = slots.acquire().await.expect("semaphore open");
                    tokio::time::sleep(service).await;
                    counter.fetch_add(1, Ordering::Relaxed);
                    if version == axum::http::Version::HTTP_2 {
                        http2.fetch_add(1, Ordering::Relaxed);
                    }
                    "ok"
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { signal.cancelled().await }).await
        });
        Self { url, served, served_http2, logins, first_seen, stop }
    }
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs loadgen in-process with command-line words (`--listen none` added).
pub async fn run_loadgen(words: &[&str]) -> (Report, u8) {
    let args = ["loadgen"].iter().chain(words).chain(["--listen", "none"].iter());
    let cli = Cli::try_parse_from(args).expect("valid loadgen options");
    let plan = cli.command.into_plan().expect("a consistent plan").expect("a load command");
    loadgen::run::execute(&plan, CancellationToken::new(), false).await.expect("loadgen ran")
}

/// A step's outcomes in a line: `ok×120, http_400×3`.
pub fn outcomes(step: &loadgen::output::report::StepReport) -> String {
    step.requests
        .iter()
        .map(|row| format!("{}:{}×{}", row.request, row.outcome, row.count))
        .collect::<Vec<_>>()
        .join(", ")
}
