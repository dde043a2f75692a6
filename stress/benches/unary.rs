//! Unary benchmark: calls/s of `grpc-stress client` and of loadgen's `grpc` scenario
//! against `grpc-stress server`, and in the same run of h2load (Debian package
//! nghttp2-client) sending the same gRPC request bytes to the same server with the
//! same connections and one call in flight per connection. Rounds alternate the three
//! tools; the best of each is compared. Prints the ratios, and the CPU each tool and
//! the server spent per call (all share the machine's cores, so a tool's own cost
//! per call decides how much is left for the server); asserts nothing.
//!
//! `cargo build --release -p loadgen && cargo bench -p grpc-stress --bench unary --
//! [--connections 16] [--calls 200000] [--rounds 3]`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Parser;

#[derive(Parser, Debug)]
struct Options {
    /// Connections, each with one call in flight at a time.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Calls in all, per tool and round (loadgen runs for as long as the client took).
    #[arg(long, default_value_t = 200_000)]
    calls: u32,
    /// Alternating rounds of the three tools; the best of each is compared.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
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

/// `grpc-stress client`: calls/s and calls OK.
fn client(port: u16, options: &Options, per_connection: u32) -> (f64, u64) {
    let started = Instant::now();
    let client = Command::new(BINARY)
        .args(["client", "--target", &format!("http://127.0.0.1:{port}"), "--json", "--concurrent"])
        .args(["--num-connections", &options.connections.to_string(), "--num-calls", &per_connection.to_string()])
        .arg("--non-streaming")
        .stderr(Stdio::inherit())
        .output()
        .expect("client runs");
    let seconds = started.elapsed().as_secs_f64();
    let summary: serde_json::Value = serde_json::from_slice(&client.stdout).expect("client JSON summary");
    let ok = summary["kinds"]["non-streaming"]["calls_ok"].as_u64().unwrap_or(0);
    (ok as f64 / seconds, ok)
}

/// loadgen's `grpc` scenario, closed model, one user per connection, for `seconds`:
/// achieved calls/s, errors and calls completed.
fn loadgen(loadgen: &Path, port: u16, options: &Options, seconds: f64) -> (f64, u64, u64) {
    let out = tempfile::tempdir().unwrap();
    let connections = options.connections.to_string();
    let status = Command::new(loadgen)
        .args(["run", "--scenario", "grpc", "--grpc-kind", "unary", "--target", &format!("http://127.0.0.1:{port}")])
        .args(["--users", &connections, "--connections", &connections])
        .args(["--duration", &format!("{}ms", (seconds * 1000.0).ceil() as u64)])
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::null())
        .status()
        .expect("loadgen runs");
    assert!(status.success(), "loadgen failed: {status}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).expect("summary.json");
    let step = &summary["steps"][0];
    let completed = step["completed"].as_u64().unwrap_or(0);
    (step["achieved_rate"].as_f64().unwrap_or(0.0), step["errors"].as_u64().unwrap_or(0), completed)
}

/// h2load: calls/s and its `requests:` line.
fn h2load(h2load: &Path, port: u16, options: &Options, total: u32) -> (f64, String) {
    let body = std::env::temp_dir().join(format!("grpc-stress-bench-{}.bin", std::process::id()));
    std::fs::write(&body, request_frame()).unwrap();
    let output = Command::new(h2load)
        .args(["-n", &total.to_string(), "-c", &options.connections.to_string(), "-m", "1", "-t", "1"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers", "-d"])
        .arg(&body)
        .arg(format!("http://127.0.0.1:{port}/loadlab.stress.v1.Stress/NonStreaming"))
        .output()
        .expect("h2load runs");
    let _ = std::fs::remove_file(&body);
    let text = String::from_utf8_lossy(&output.stdout);
    // "finished in 3.21s, 62305.85 req/s, …" and "requests: N total, N started, N done, N succeeded, …"
    let rate: f64 = text
        .lines()
        .find(|line| line.starts_with("finished in"))
        .and_then(|line| line.split(", ").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("unexpected h2load output:\n{text}"));
    let requests = text.lines().find(|line| line.starts_with("requests:")).unwrap_or("requests: ?").to_string();
    (rate, requests)
}

/// CPU seconds spent per call, over all rounds: by the tool, and by the server while
/// the tool ran.
#[derive(Default)]
struct CallCost {
    tool: f64,
    server: f64,
    calls: u64,
}

impl CallCost {
    /// Runs `tool` (which returns its calls completed), adding what it and the server
    /// spent.
    fn measure<T>(&mut self, server: u32, tool: impl FnOnce() -> (T, u64)) -> T {
        let (tool_before, server_before) =
            (loadlab_fixtures::finished_children_cpu_seconds(), loadlab_fixtures::cpu_seconds(server));
        let (result, calls) = tool();
        self.tool += loadlab_fixtures::finished_children_cpu_seconds() - tool_before;
        self.server += loadlab_fixtures::cpu_seconds(server) - server_before;
        self.calls += calls;
        result
    }

    fn per_call(&self) -> String {
        let micros = |seconds: f64| seconds * 1e6 / self.calls.max(1) as f64;
        format!("{:>6.1} µs tool, {:>6.1} µs server", micros(self.tool), micros(self.server))
    }
}

fn main() {
    let options = Options::parse();
    let Some(h2load_path) = loadlab_supervise::which("h2load") else {
        eprintln!("h2load not found: install it (Debian/Ubuntu: apt-get install nghttp2-client) and run again");
        std::process::exit(2);
    };
    let loadgen_path = loadlab_fixtures::binary("loadgen");
    let (listen, metrics) = (loadlab_fixtures::free_address(), loadlab_fixtures::free_address());
    let (spec, ready) = loadlab_fixtures::grpc_stress_server(Path::new(BINARY), listen, metrics, &[]);
    let mut server = spec.start(&ready, loadlab_fixtures::READY_LIMIT).unwrap_or_else(|error| panic!("{error}"));
    let (port, pid) = (listen.port(), server.pid());

    let per_connection = options.calls / options.connections;
    let total = per_connection * options.connections;
    let (mut best_client, mut best_loadgen, mut best_h2load) = (0.0f64, 0.0f64, 0.0f64);
    let (mut client_cost, mut loadgen_cost, mut h2load_cost) =
        (CallCost::default(), CallCost::default(), CallCost::default());
    let mut loadgen_errors = 0;
    for round in 1..=options.rounds {
        let (client_rate, client_ok) = client_cost.measure(pid, || {
            let (rate, ok) = client(port, &options, per_connection);
            ((rate, ok), ok)
        });
        let seconds = total as f64 / client_rate.max(1.0);
        let (loadgen_rate, errors) = loadgen_cost.measure(pid, || {
            let (rate, errors, completed) = loadgen(&loadgen_path, port, &options, seconds);
            ((rate, errors), completed)
        });
        let (h2load_rate, requests) =
            h2load_cost.measure(pid, || (h2load(&h2load_path, port, &options, total), u64::from(total)));
        eprintln!(
            "round {round}: client {client_rate:.0}/s ({client_ok} OK)  loadgen {loadgen_rate:.0}/s ({errors} errors)  \
             h2load {h2load_rate:.0}/s ({requests})"
        );
        best_client = best_client.max(client_rate);
        best_loadgen = best_loadgen.max(loadgen_rate);
        best_h2load = best_h2load.max(h2load_rate);
        loadgen_errors += errors;
    }
    server.stop();

    println!(
        "unary calls against grpc-stress server: {} connections, 1 call in flight each, {total} calls per \
         round, best of {}",
        options.connections, options.rounds
    );
    println!("grpc-stress client   {best_client:>10.0} calls/s");
    println!("loadgen grpc         {best_loadgen:>10.0} calls/s  (errors {loadgen_errors})");
    println!("h2load               {best_h2load:>10.0} calls/s");
    println!("ratio client/h2load  {:>10.3}   (target ≥ 0.8)", best_client / best_h2load);
    println!("ratio loadgen/h2load {:>10.3}   (target ≥ 0.8)", best_loadgen / best_h2load);
    // Where a call's time goes, averaged over the rounds: the tool and the server share
    // the machine's cores.
    println!("CPU per call: client  {}", client_cost.per_call());
    println!("              loadgen {}", loadgen_cost.per_call());
    println!("              h2load  {}", h2load_cost.per_call());
}
