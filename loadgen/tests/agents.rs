//! Several load generators as one: `loadgen agent` processes driven by a controller
//! (`breakpoint`/`run --agents`). The merged breaking point is the one a single
//! generator finds; merged counts and percentiles are those of the union of what the
//! agents measured; the agents start together; a lost agent aborts the run or is left
//! out of the next steps; an agent serves one controller at a time and stops when its
//! controller dies.

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loadlab_supervise::{Ready, Stop, Supervised};

use base64::Engine as _;
use common::{LimitedServer, run_loadgen};

const BINARY: &str = env!("CARGO_BIN_EXE_loadgen");

/// A `loadgen agent` process on a free port, stopped when dropped.
struct Agent {
    process: Supervised,
    url: String,
}

impl Agent {
    fn start(token: &std::path::Path, source: Option<&str>) -> Self {
        let address = loadlab_fixtures::free_address();
        let mut spec = loadlab_fixtures::program(BINARY)
            .name("loadgen agent")
            .args(["agent", "--listen", &address.to_string(), "--metrics-listen", "none", "--token-file"])
            .arg(token)
            .stop(Stop::kill());
        if let Some(source) = source {
            spec = spec.args(["--source-address", source]);
        }
        let process = spec.start(&Ready::Tcp(address), loadlab_fixtures::READY_LIMIT).unwrap_or_else(|e| panic!("{e}"));
        Self { process, url: format!("http://{address}") }
    }

    fn kill(&mut self) {
        self.process.stop_with(Stop::kill());
    }

    /// SIGSTOP: the agent stays connected and says nothing, as if cut off.
    fn freeze(&mut self) {
        self.process.signal(nix::sys::signal::Signal::SIGSTOP);
    }
}

fn token_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("agent.token");
    std::fs::write(&path, "a-token-for-the-agents-of-this-test\n").unwrap();
    path
}

fn urls(agents: &[Agent]) -> String {
    agents.iter().map(|agent| agent.url.as_str()).collect::<Vec<_>>().join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_agents_find_the_breaking_point_one_finds() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    // 4 workers × 20 ms: 200 requests/s.
    let server = LimitedServer::start(4, Duration::from_millis(20)).await;
    for count in [1, 2, 3] {
        let agents: Vec<Agent> = (0..count).map(|_| Agent::start(&token, None)).collect();
        let (report, code) = run_loadgen(&[
            "breakpoint",
            "--scenario",
            "http",
            "--target",
            &server.url,
            "--start-rate",
            "50",
            "--step-duration",
            "2s",
            "--refine",
            "2",
            "--slo-latency",
            "150ms",
            "--agents",
            &urls(&agents),
            "--agent-token-file",
            token.to_str().unwrap(),
        ])
        .await;
        assert_eq!(code, 0, "{count} agents: {}", report.verdict);
        let point = report.breaking_point.unwrap();
        let (held, broken) = (point.rate.unwrap(), point.broken_rate.unwrap());
        println!("{count} agents: held {held}/s, broke at {broken}/s");
        assert!((100.0..=200.0).contains(&held), "{count} agents held {held}");
        assert!(broken > held && broken <= 400.0, "{count} agents broke at {broken}");
        assert_eq!(report.agents.len(), count);
        assert!(report.steps.iter().all(|step| step.agents.len() == count));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_counts_and_percentiles_are_those_of_the_union() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let server = LimitedServer::start(64, Duration::from_millis(2)).await;
    let agents: Vec<Agent> = (0..2).map(|_| Agent::start(&token, None)).collect();
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--rate",
        "300",
        "--duration",
        "2s",
        "--agents",
        &urls(&agents),
        "--agent-token-file",
        token.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{}", report.verdict);
    let step = &report.steps[0];
    assert_eq!(step.offered, 600);
    assert_eq!(step.completed, step.agents.iter().map(|agent| agent.completed).sum::<u64>());
    assert_eq!(step.completed, server.served.load(Ordering::Relaxed));
    // The union of the agents' own histograms, made here without loadgen's merge.
    let mut union = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for agent in &step.agents {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&agent.corrected_ok).unwrap();
        let histogram: hdrhistogram::Histogram<u64> =
            hdrhistogram::serialization::Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
        assert_eq!(histogram.len(), agent.completed - agent.errors);
        union.add(histogram).unwrap();
    }
    assert_eq!(union.len(), step.completed - step.errors);
    assert_eq!(step.corrected_ms.p99, Some(union.value_at_quantile(0.99) as f64 / 1000.0));
    assert_eq!(step.corrected_ms.p50, Some(union.value_at_quantile(0.5) as f64 / 1000.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_start_together() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let server = LimitedServer::start(64, Duration::from_millis(1)).await;
    // Each agent from its own address, so the target can tell them apart.
    let sources = ["127.0.2.1", "127.0.2.2", "127.0.2.3"];
    let agents: Vec<Agent> = sources.iter().map(|source| Agent::start(&token, Some(source))).collect();
    let rate = 300.0;
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--rate",
        "300",
        "--duration",
        "1s",
        "--agents",
        &urls(&agents),
        "--agent-token-file",
        token.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{}", report.verdict);
    let seen = server.first_seen.lock().unwrap().clone();
    let firsts: Vec<Instant> = sources.iter().map(|source| seen[&source.parse().unwrap()]).collect();
    // Agent i's first request is due i/rate after the start: take that out.
    let starts: Vec<Instant> =
        firsts.iter().enumerate().map(|(i, first)| *first - Duration::from_secs_f64(i as f64 / rate)).collect();
    let skew = *starts.iter().max().unwrap() - *starts.iter().min().unwrap();
    println!("start skew between 3 agents, as the target saw it: {skew:?}");
    assert!(skew < Duration::from_millis(50), "the agents started {skew:?} apart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agent_aborts_the_run_with_a_verdict_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let server = LimitedServer::start(64, Duration::from_millis(1)).await;
    let mut agents: Vec<Agent> = (0..2).map(|_| Agent::start(&token, None)).collect();
    let lost = agents[1].url.clone();
    let victim = agents.pop().unwrap();
    let killer = std::thread::spawn(move || {
        let mut victim = victim;
        std::thread::sleep(Duration::from_millis(2500));
        victim.kill(); // SIGKILL
    });
    let started = Instant::now();
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--rate",
        "100",
        "--duration",
        "20s",
        "--heartbeat",
        "500ms",
        "--agents",
        &format!("{},{lost}", agents[0].url),
        "--agent-token-file",
        token.to_str().unwrap(),
    ])
    .await;
    killer.join().unwrap();
    assert_eq!(code, loadgen::exit::INTERRUPTED);
    assert!(report.verdict.starts_with(&format!("aborted: agent {lost} was lost")), "{}", report.verdict);
    assert!(started.elapsed() < Duration::from_secs(15), "the run went on for {:?}", started.elapsed());
    let step = &report.steps[0];
    assert!(step.degraded);
    assert!(step.agents.iter().any(|agent| agent.agent == lost && agent.trouble.is_some()), "{:?}", step.agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_continue_the_agents_left_deliver_the_whole_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let server = LimitedServer::start(64, Duration::from_millis(1)).await;
    let mut agents: Vec<Agent> = (0..3).map(|_| Agent::start(&token, None)).collect();
    let all = urls(&agents);
    // Cut off rather than killed: its connection stays open, only the heartbeats tell.
    let mut victim = agents.pop().unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2000));
        victim.freeze();
        victim
    });
    let (report, code) = run_loadgen(&[
        "breakpoint",
        "--scenario",
        "http",
        "--target",
        &server.url,
        "--start-rate",
        "100",
        "--max-rate",
        "200",
        "--step-duration",
        "3s",
        "--heartbeat",
        "500ms",
        "--on-agent-loss",
        "continue",
        "--agents",
        &all,
        "--agent-token-file",
        token.to_str().unwrap(),
    ])
    .await;
    drop(killer.join().unwrap());
    assert_eq!(code, 0, "{}", report.verdict);
    // Each step as reported ran on the two agents left and sent its whole schedule.
    let offered: Vec<u64> = report.steps.iter().map(|step| step.offered).collect();
    assert_eq!(offered, [300, 600], "{:?}", report.steps.iter().map(|s| &s.agents).collect::<Vec<_>>());
    assert!(report.steps.iter().all(|step| step.agents.len() == 2 && !step.degraded));
    assert!(report.steps.iter().all(|step| step.completed == step.offered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_serves_one_controller_and_stops_when_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let server = LimitedServer::start(64, Duration::from_millis(1)).await;
    let agent = Agent::start(&token, None);
    let controller = |duration: &str| {
        loadlab_fixtures::program(BINARY)
            .name("loadgen controller")
            .args(["run", "--scenario", "http", "--target", &server.url, "--rate", "50", "--duration", duration])
            .args(["--listen", "none", "--agents", &agent.url, "--agent-token-file", token.to_str().unwrap()])
            .stop(Stop::kill())
            .spawn()
            .unwrap_or_else(|error| panic!("{error}"))
    };
    let ended = |mut process: Supervised| {
        let status = process.wait_timeout(Duration::from_secs(30)).expect("the controller ends");
        (status.code(), process.output())
    };
    let mut first = controller("60s");
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.served.load(Ordering::Relaxed) > 0, "the first controller's load arrives");
    // A second controller is refused while the agent is busy.
    let (code, said) = ended(controller("1s"));
    assert_eq!(code, Some(97));
    assert!(said.contains("busy with"), "{said}");
    // The first controller goes silent (frozen: its connection stays open, so only the
    // missing heartbeats tell): within the heartbeat timeout (2 s) the agent stops.
    first.signal(nix::sys::signal::Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(4));
    let after = server.served.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(server.served.load(Ordering::Relaxed), after, "the agent still sends with no controller");
    first.stop_with(Stop::kill());
    // …and it is free for the next one.
    let (code, said) = ended(controller("1s"));
    assert_eq!(code, Some(0), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let agent = Agent::start(&token, None);
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token-of-these-agents").unwrap();
    let output = Command::new(BINARY)
        .args(["run", "--scenario", "http", "--target", "http://127.0.0.1:9/", "--rate", "10", "--duration", "1s"])
        .args(["--listen", "none", "--agents", &agent.url, "--agent-token-file", wrong.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(97));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wrong or missing token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_threshold_stops_every_agent_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let agents: Vec<Agent> = (0..2).map(|_| Agent::start(&token, None)).collect();
    // Nothing listens there: every request fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (report, code) = run_loadgen(&[
        "run",
        "--scenario",
        "http",
        "--target",
        &format!("http://127.0.0.1:{port}/"),
        "--rate",
        "50",
        "--duration",
        "30s",
        "--abort-on",
        "errors<50%",
        "--agents",
        &urls(&agents),
        "--agent-token-file",
        token.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, loadgen::exit::THRESHOLD);
    assert!(report.verdict.starts_with("aborted: --abort-on errors<50%"), "{}", report.verdict);
    let step = &report.steps[0];
    assert!(step.ran_seconds < 5.0, "the agents went on for {} s", step.ran_seconds);
    assert!(step.agents.iter().all(|agent| agent.offered < 250), "{:?}", step.agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_split_a_search_over_devices_without_logging_any_in_twice() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    // About 100 devices at 2 requests a second fill it.
    let server = LimitedServer::start(4, Duration::from_millis(20)).await;
    let agents: Vec<Agent> = (0..2).map(|_| Agent::start(&token, None)).collect();
    let (report, code) = run_loadgen(&[
        "breakpoint",
        "--target",
        server.url.trim_end_matches('/'),
        "--over",
        "devices",
        "--start-devices",
        "25",
        "--max-devices",
        "400",
        "--command-every",
        "1s",
        "--measurement-every",
        "1s",
        "--step-duration",
        "3s",
        "--refine",
        "1",
        "--slo-latency",
        "150ms",
        "--agents",
        &urls(&agents),
        "--agent-token-file",
        token.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{}", report.verdict);
    let point = report.breaking_point.unwrap();
    println!("2 agents: {}", point.sentence());
    let held = point.rate.unwrap();
    assert!((50.0..=100.0).contains(&held), "held {held} devices");
    let most = report.steps.iter().filter_map(|step| step.devices).max().unwrap();
    assert_eq!(server.logins.load(Ordering::Relaxed), u64::from(most), "each device logged in once, on one agent");
    // Both agents had devices at work in every step.
    assert!(report.steps.iter().all(|step| step.agents.iter().all(|agent| agent.completed > 0)));
}
