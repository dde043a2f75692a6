//! Unary benchmark: calls/s of `grpc-stress client` and of loadgen's `grpc` scenario
//! against `grpc-stress server`, and in the same run of h2load (Debian package
//! nghttp2-client) sending the same gRPC request bytes to the same server with the
//! same connections and one call in flight per connection. Rounds alternate the three
//! tools; the best of each is compared. Two layouts, each with a server of its own:
//! *own core*, the server on CPU 0 and each tool on CPU 1, as `loadlab run` places a
//! load generator and the wrk benchmark places its tools (can the tool drive the
//! server?); and *shared*, everything on both cores, where a tool's own cost per call
//! is taken from the server (how cheap is a call?). Prints the ratios, and the CPU each
//! tool and the server spent per call; asserts nothing.
//!
//! `cargo build --release -p loadgen && cargo bench -p grpc-stress --bench unary --
//! [--connections 16] [--calls 200000] [--rounds 3] [--layout own-core,shared]`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use loadlab_supervise::Place;

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
    /// Where the server and the tools run; both layouts, one after the other, unless
    /// one is named.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Layout::OwnCore, Layout::Shared])]
    layout: Vec<Layout>,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Where the server and the tools run.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Layout {
    /// The server on CPU 0, each tool on CPU 1 (needs taskset, util-linux).
    OwnCore,
    /// Server and tools on all CPUs.
    Shared,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OwnCore => "own core: server on CPU 0, each tool on CPU 1",
            Layout::Shared => "shared: server and tools on both CPUs",
        }
    }

    fn place(self, cpu: &str) -> Place {
        match self {
            Layout::OwnCore => Place { cpus: Some(cpu.into()), ..Place::default() },
            Layout::Shared => Place::default(),
        }
    }

    fn server(self) -> Place {
        self.place("0")
    }

    /// `program` placed as this layout places a tool.
    fn tool(self, program: &Path) -> Command {
        self.place("1").command(program)
    }
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
fn client(layout: Layout, port: u16, options: &Options, per_connection: u32) -> (f64, u64) {
    let started = Instant::now();
    let client = layout
        .tool(Path::new(BINARY))
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
fn loadgen(layout: Layout, loadgen: &Path, port: u16, options: &Options, seconds: f64) -> (f64, u64, u64) {
    let out = tempfile::tempdir().unwrap();
    let connections = options.connections.to_string();
    let status = layout
        .tool(loadgen)
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
fn h2load(layout: Layout, h2load: &Path, port: u16, options: &Options, total: u32) -> (f64, String) {
    let body = std::env::temp_dir().join(format!("grpc-stress-bench-{}.bin", std::process::id()));
    std::fs::write(&body, request_frame()).unwrap();
    let output = layout
        .tool(h2load)
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

/// One layout's figures: best calls/s of each tool, and what a call cost.
struct Figures {
    client: (f64, CallCost),
    loadgen: (f64, CallCost),
    loadgen_errors: u64,
    h2load: (f64, CallCost),
}

/// Alternating rounds of the three tools against a server of this layout's own.
fn measure(layout: Layout, options: &Options, loadgen_path: &Path, h2load_path: &Path) -> Figures {
    let (listen, metrics) = (loadlab_fixtures::free_address(), loadlab_fixtures::free_address());
    let (spec, ready) = loadlab_fixtures::grpc_stress_server(Path::new(BINARY), listen, metrics, &[]);
    let mut server = spec
        .place(layout.server())
        .start(&ready, loadlab_fixtures::READY_LIMIT)
        .unwrap_or_else(|error| panic!("{error}"));
    let (port, pid) = (listen.port(), server.pid());
    let per_connection = options.calls / options.connections;
    let total = per_connection * options.connections;
    let mut figures = Figures {
        client: (0.0, CallCost::default()),
        loadgen: (0.0, CallCost::default()),
        loadgen_errors: 0,
        h2load: (0.0, CallCost::default()),
    };
    for round in 1..=options.rounds {
        let (client_rate, client_ok) = figures.client.1.measure(pid, || {
            let (rate, ok) = client(layout, port, options, per_connection);
            ((rate, ok), ok)
        });
        let seconds = total as f64 / client_rate.max(1.0);
        let (loadgen_rate, errors) = figures.loadgen.1.measure(pid, || {
            let (rate, errors, completed) = loadgen(layout, loadgen_path, port, options, seconds);
            ((rate, errors), completed)
        });
        let (h2load_rate, requests) =
            figures.h2load.1.measure(pid, || (h2load(layout, h2load_path, port, options, total), u64::from(total)));
        eprintln!(
            "{}, round {round}: client {client_rate:.0}/s ({client_ok} OK)  loadgen {loadgen_rate:.0}/s \
             ({errors} errors)  h2load {h2load_rate:.0}/s ({requests})",
            layout.name()
        );
        figures.client.0 = figures.client.0.max(client_rate);
        figures.loadgen.0 = figures.loadgen.0.max(loadgen_rate);
        figures.h2load.0 = figures.h2load.0.max(h2load_rate);
        figures.loadgen_errors += errors;
    }
    server.stop();
    figures
}

fn main() {
    let options = Options::parse();
    let Some(h2load_path) = loadlab_supervise::which("h2load") else {
        eprintln!("h2load not found: install it (Debian/Ubuntu: apt-get install nghttp2-client) and run again");
        std::process::exit(2);
    };
    if options.layout.contains(&Layout::OwnCore) && loadlab_supervise::which("taskset").is_none() {
        eprintln!("taskset not found: install it (Debian/Ubuntu: apt-get install util-linux) or pass --layout shared");
        std::process::exit(2);
    }
    let loadgen_path = loadlab_fixtures::binary("loadgen");
    let measured: Vec<(Layout, Figures)> =
        options.layout.iter().map(|&layout| (layout, measure(layout, &options, &loadgen_path, &h2load_path))).collect();

    let total = options.calls / options.connections * options.connections;
    println!(
        "unary calls against grpc-stress server: {} connections, 1 call in flight each, {total} calls per \
         round, best of {}",
        options.connections, options.rounds
    );
    for (layout, figures) in &measured {
        let (client, loadgen, h2load) = (&figures.client, &figures.loadgen, &figures.h2load);
        println!("{}", layout.name());
        println!("  grpc-stress client   {:>10.0} calls/s", client.0);
        println!("  loadgen grpc         {:>10.0} calls/s  (errors {})", loadgen.0, figures.loadgen_errors);
        println!("  h2load               {:>10.0} calls/s", h2load.0);
        println!("  ratio client/h2load  {:>10.3}   (target ≥ 0.8)", client.0 / h2load.0);
        println!("  ratio loadgen/h2load {:>10.3}   (target ≥ 0.8)", loadgen.0 / h2load.0);
        // Where a call's time goes, averaged over the rounds.
        println!("  CPU per call: client  {}", client.1.per_call());
        println!("                loadgen {}", loadgen.1.per_call());
        println!("                h2load  {}", h2load.1.per_call());
    }
}
