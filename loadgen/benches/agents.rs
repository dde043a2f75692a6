//! The cost of coordination: the same total rate driven by 1, 2 and 4 agents through
//! one controller, against `loadgen target`. This machine has two cores, so it shows
//! what the coordination costs, not how far N hosts scale: per agent count, the
//! achieved rate, the control traffic each agent sends (bytes/s of reports), the
//! controller's share of a CPU, and the start skew between the agents as the target
//! saw it (each agent from its own source address).
//!
//! `cargo bench -p loadgen --bench agents -- [--rate 2000] [--seconds 10]`

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{LOADGEN, summary};
use loadlab_supervise::{Ready, Stop, Supervised};

#[derive(Parser)]
struct Options {
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, hide = true)]
    bench: bool,
}

/// A target that answers "ok" and notes when each source address first came.
fn start_target(runtime: &tokio::runtime::Runtime) -> (String, Arc<Mutex<BTreeMap<IpAddr, Instant>>>) {
    let first_seen: Arc<Mutex<BTreeMap<IpAddr, Instant>>> = Arc::default();
    let seen = first_seen.clone();
    let app = axum::Router::new().fallback(
        move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>| {
            seen.lock().unwrap().entry(peer.ip()).or_insert_with(Instant::now);
            async { "ok" }
        },
    );
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    runtime.spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    });
    (url, first_seen)
}

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, first_seen) = start_target(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a-token-for-the-coordination-benchmark\n").unwrap();
    println!(
        "{:>6} {:>12} {:>12} {:>18} {:>16} {:>12}",
        "agents", "offered/s", "achieved/s", "control B/s/agent", "controller CPU", "start skew"
    );
    for count in [1usize, 2, 4] {
        first_seen.lock().unwrap().clear();
        let sources: Vec<String> = (0..count).map(|i| format!("127.0.3.{}", i + 1)).collect();
        let agents: Vec<(Supervised, String)> = sources
            .iter()
            .map(|source| {
                let address = loadlab_fixtures::free_address();
                let agent = loadlab_fixtures::program(LOADGEN)
                    .name("loadgen agent")
                    .args(["agent", "--listen", &address.to_string(), "--metrics-listen", "none"])
                    .args(["--source-address", source, "--token-file", token.to_str().unwrap()])
                    .stop(Stop::kill())
                    .start(&Ready::Tcp(address), loadlab_fixtures::READY_LIMIT)
                    .unwrap_or_else(|error| panic!("{error}"));
                (agent, format!("http://{address}"))
            })
            .collect();
        let out = tempfile::tempdir().unwrap();
        let urls: Vec<&str> = agents.iter().map(|(_, url)| url.as_str()).collect();
        let started = Instant::now();
        let mut controller = loadlab_fixtures::program(LOADGEN)
            .name("loadgen controller")
            .args(["run", "--scenario", "http", "--target", &url, "--rate", &options.rate.to_string()])
            .args(["--duration", &format!("{}s", options.seconds), "--listen", "none"])
            .args(["--agents", &urls.join(","), "--agent-token-file", token.to_str().unwrap()])
            .args(["--out", out.path().to_str().unwrap()])
            .spawn()
            .unwrap_or_else(|error| panic!("{error}"));
        // Sample the controller's CPU time just before it exits.
        let mut cpu = 0.0;
        while controller.try_wait().is_none() {
            cpu = loadlab_fixtures::cpu_seconds(controller.pid());
            std::thread::sleep(Duration::from_millis(100));
        }
        let wall = started.elapsed().as_secs_f64();
        let report = summary(out.path());
        let step = &report["steps"][0];
        let ran = step["ran_seconds"].as_f64().unwrap_or(options.seconds as f64).max(1e-3);
        let control: f64 = step["agents"]
            .as_array()
            .map(|agents| agents.iter().filter_map(|agent| agent["control_bytes"].as_f64()).sum())
            .unwrap_or(0.0);
        let seen = first_seen.lock().unwrap().clone();
        let starts: Vec<Instant> = sources
            .iter()
            .enumerate()
            .filter_map(|(i, source)| {
                let first = seen.get(&source.parse::<IpAddr>().unwrap())?;
                Some(*first - Duration::from_secs_f64(i as f64 / options.rate))
            })
            .collect();
        let skew = starts.iter().max().zip(starts.iter().min()).map(|(max, min)| *max - *min);
        println!(
            "{count:>6} {:>12.0} {:>12.0} {:>18.0} {:>15.1}% {:>12}",
            step["offered_rate"].as_f64().unwrap_or(0.0),
            step["achieved_rate"].as_f64().unwrap_or(0.0),
            control / ran / count as f64,
            cpu / wall * 100.0,
            skew.map_or("–".into(), |skew| format!("{:.2} ms", skew.as_secs_f64() * 1000.0)),
        );
        drop(agents); // each agent is stopped when dropped
    }
}
