//! Unary benchmark: calls/s of `grpc-stress client` against `grpc-stress server`, and
//! in the same run of h2load (Debian package nghttp2-client) sending the same gRPC
//! request bytes to the same server with the same connections and one call in
//! flight per connection. Prints both and the ratio; asserts nothing.
//!
//! `cargo bench -p grpc-stress --bench unary -- [--connections 16] [--calls 200000]`

use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Parser;

#[derive(Parser, Debug)]
struct Options {
    /// Connections, each with one call in flight at a time.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Calls in all, per tool.
    #[arg(long, default_value_t = 200_000)]
    calls: u32,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

const BINARY: &str = env!("CARGO_BIN_EXE_grpc-stress");

/// A gRPC frame (uncompressed flag, big-endian length) holding a Payload of 192 bytes:
/// field 1, wire type 2, varint length 192 (0xC0 0x01).
fn request_frame() -> Vec<u8> {
    let mut message = vec![0x0a, 0xc0, 0x01];
    message.extend(std::iter::repeat_n(0x5a, 192));
    let mut frame = vec![0u8];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(message);
    frame
}

fn main() {
    let options = Options::parse();
    let Some(h2load) = loadlab_supervise::which("h2load") else {
        eprintln!("h2load not found: install it (Debian/Ubuntu: apt-get install nghttp2-client) and run again");
        std::process::exit(2);
    };
    let (listen, metrics) = (loadlab_fixtures::free_address(), loadlab_fixtures::free_address());
    let (spec, ready) = loadlab_fixtures::grpc_stress_server(std::path::Path::new(BINARY), listen, metrics, &[]);
    let mut server = spec.start(&ready, loadlab_fixtures::READY_LIMIT).unwrap_or_else(|error| panic!("{error}"));
    let port = listen.port();

    let per_connection = options.calls / options.connections;
    let total = per_connection * options.connections;
    let started = Instant::now();
    let client = Command::new(BINARY)
        .args(["client", "--target", &format!("http://127.0.0.1:{port}"), "--json", "--concurrent"])
        .args(["--num-connections", &options.connections.to_string(), "--num-calls", &per_connection.to_string()])
        .arg("--non-streaming")
        .stderr(Stdio::inherit())
        .output()
        .expect("client runs");
    let client_seconds = started.elapsed().as_secs_f64();
    let summary: serde_json::Value = serde_json::from_slice(&client.stdout).expect("client JSON summary");
    let client_ok = summary["kinds"]["non-streaming"]["calls_ok"].as_u64().unwrap_or(0);
    let client_rate = client_ok as f64 / client_seconds;

    let body = std::env::temp_dir().join(format!("grpc-stress-bench-{}.bin", std::process::id()));
    std::fs::write(&body, request_frame()).unwrap();
    let h2load_output = Command::new(h2load)
        .args(["-n", &total.to_string(), "-c", &options.connections.to_string(), "-m", "1", "-t", "1"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers", "-d"])
        .arg(&body)
        .arg(format!("http://127.0.0.1:{port}/loadlab.stress.v1.Stress/NonStreaming"))
        .output()
        .expect("h2load runs");
    let _ = std::fs::remove_file(&body);
    server.stop();
    let text = String::from_utf8_lossy(&h2load_output.stdout);
    // "finished in 3.21s, 62305.85 req/s, …" and "requests: N total, N started, N done, N succeeded, …"
    let h2load_rate: f64 = text
        .lines()
        .find(|line| line.starts_with("finished in"))
        .and_then(|line| line.split(", ").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("unexpected h2load output:\n{text}"));
    let succeeded = text.lines().find(|line| line.starts_with("requests:")).unwrap_or("requests: ?");

    println!(
        "grpc-stress unary benchmark: {} connections, 1 call in flight each, {total} calls per tool",
        options.connections
    );
    println!("grpc-stress client   {client_rate:>10.0} calls/s  ({client_ok} OK in {client_seconds:.2} s)");
    println!("h2load               {h2load_rate:>10.0} calls/s  ({succeeded})");
    println!("ratio client/h2load  {:>10.3}   (target ≥ 0.8)", client_rate / h2load_rate);
}
