//! Test harness: a real grpc-stress server in-process (plain or TLS) on a free port,
//! and helpers to run the binary as a process.

#![allow(dead_code)] // each test binary uses part of the harness

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;
use grpc_stress::client::{Target, TrustOptions};
use grpc_stress::server::{self, ServerOptions};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct ServerCli {
    #[command(flatten)]
    options: ServerOptions,
}

/// Server options from command-line words (defaults for the rest).
pub fn server_options(words: &[&str]) -> ServerOptions {
    let args = ["server", "--metrics-listen", "none"].iter().chain(words);
    ServerCli::parse_from(args).options
}

pub struct TestServer {
    pub address: SocketAddr,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
}

impl TestServer {
    pub async fn start(options: ServerOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let task = tokio::spawn(server::run(options, listener, async move { signal.cancelled().await }));
        loadlab_supervise::Ready::Tcp(address)
            .wait_async("the in-process grpc-stress server", loadlab_fixtures::READY_LIMIT)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        Self { address, stop, task }
    }

    /// A plain target, or a TLS one trusting `ca`.
    pub fn target(&self, ca: Option<&Path>) -> Target {
        match ca {
            None => Target::new(&format!("http://{}", self.address), &TrustOptions::default()).unwrap(),
            Some(ca) => Target::new(
                &format!("https://{}", self.address),
                &TrustOptions { ca: Some(ca.to_path_buf()), ..TrustOptions::default() },
            )
            .unwrap(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Four consecutive free loopback ports for a driver run's servers, below Linux's
/// default ephemeral range (32768–60999) so no outgoing connection takes one.
pub fn free_port_block() -> u16 {
    free_port_block_in(20_000..32_000)
}

/// Four consecutive free loopback ports starting in `range`.
pub fn free_port_block_in(range: std::ops::Range<u16>) -> u16 {
    use rand::Rng;
    for _ in 0..200 {
        let base = rand::rng().random_range(range.clone());
        let free = (base..base + 4).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no block of four free ports in {range:?}");
}
