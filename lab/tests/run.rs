//! `loadlab run`, `up`, `status` and `down` end to end, as a user runs them: the real
//! binary, the real servers, the shipped topology (and one with two loadgen hosts)
//! and its `smoke` plan. Each test checks what the lab promises: a breaking point
//! found, a report and summary that agree, every target seen up, each loadgen host's
//! agent sending its share, and nothing left behind (no process, no namespace, no lab
//! record), including after a forced failure, Ctrl-C and a crashed lab.
//!
//! The labs share the topology's ports, so the tests take turns (one lock).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{finish, loadlab};
use loadlab_fixtures::repository;
use loadlab_supervise::{Ready, Signal, Supervised};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One lab at a time. This test process is also made a child subreaper, so what a
/// lab leaves behind is re-parented to it (not to init) and is found among its
/// descendants, apart from the labs other checkouts' tests run on the same machine.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    nix::sys::prctl::set_child_subreaper(true).expect("becoming a child subreaper");
    ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a lab run may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Fails the test, saying why, unless we are root (network namespaces need it; CI
/// runs as root).
fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "netns isolation needs root (network namespaces): run the tests as root, as CI does, or skip this test"
    );
}

/// The lab's server programs, as /proc/<pid>/comm shows them (15 characters).
const LAB_PROGRAMS: &[&str] = &[
    "postgres",
    "prometheus",
    "prometheus-node",
    "prometheus-push",
    "prometheus-post",
    "device-api",
    "grpc-stress",
    "loadgen",
];

/// Live (not zombie) processes of the lab's programs that descend from this test
/// process: (pid, start time, name).
fn lab_processes() -> HashSet<(u32, u64, String)> {
    let parents: HashMap<u32, u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid …: comm may hold spaces, so read after its last ')'.
            let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent))
        })
        .collect();
    let me = std::process::id();
    let descends = |mut pid: u32| {
        while let Some(&parent) = parents.get(&pid) {
            if parent == me {
                return true;
            }
            pid = parent;
        }
        false
    };
    parents
        .keys()
        .filter(|pid| descends(**pid))
        .filter_map(|&pid| {
            let id = loadlab::state::ProcessId::of(pid)?;
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim().to_string();
            LAB_PROGRAMS.contains(&name.as_str()).then_some((pid, id.start_time, name))
        })
        .collect()
}

/// What a test's labs must not leave behind, as it was before they ran.
struct Before {
    processes: HashSet<(u32, u64, String)>,
    namespaces: HashSet<String>,
    records: HashSet<String>,
}

impl Before {
    fn now() -> Self {
        Self {
            processes: lab_processes(),
            namespaces: loadlab::netns::existing().into_iter().collect(),
            records: loadlab::state::records().into_iter().map(|(record, _)| record.id).collect(),
        }
    }

    /// The lab processes started since.
    fn new_processes(&self) -> Vec<(u32, u64, String)> {
        lab_processes().difference(&self.processes).cloned().collect()
    }
}

/// Nothing the lab started is left: no process (descending from this test) that
/// was not there before, no new lab namespace, no new record of a lab whose owner is
/// gone (others' running labs may come and go meanwhile).
fn assert_nothing_left(before: &Before) {
    // Processes are stopped before loadlab exits; allow the kernel a moment to reap.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = before.new_processes();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left running: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let namespaces: Vec<String> =
        loadlab::netns::existing().into_iter().filter(|name| !before.namespaces.contains(name)).collect();
    assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
    let records: Vec<String> = loadlab::state::records()
        .into_iter()
        .filter(|(record, alive)| !alive && !before.records.contains(&record.id))
        .map(|(record, _)| record.id)
        .collect();
    assert!(records.is_empty(), "lab records left: {records:?}");
}

fn the_run_dir(out: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "one run directory in {}: {runs:?}", out.display());
    runs[0].clone()
}

/// A finished run's directory holds what the README promises, and it agrees;
/// device-api stored measurements in `engine`; the load came from the agents of the
/// `generators` (the loadgen hosts), each with its share.
fn check_results(run_dir: &Path, engine: &str, generators: &[&str]) {
    for file in ["report.html", "summary.json", "seconds.csv", "metrics.csv", "lab.json", "topology.toml"] {
        assert!(run_dir.join(file).is_file(), "{file} missing in {}", run_dir.display());
    }
    let agent_logs = generators.iter().map(|host| format!("loadgen-agent-{host}"));
    for log in
        ["device-api", "grpc-stress", "prometheus", "postgresql"].map(str::to_string).into_iter().chain(agent_logs)
    {
        assert!(run_dir.join(format!("logs/{log}.log")).is_file(), "log of {log} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap();
    let point = &summary["breaking_point"];
    let held = point["rate"].as_f64().expect("a rate that held");
    let broke = point["broken_rate"].as_f64().expect("a rate that broke the SLO");
    assert!(broke > held, "{point}");
    // The report shows the same breaking point and the same verdict.
    let report = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(report.contains(&format!("{held:.0}")), "report.html lacks the held rate {held}");
    let verdict = summary["bottlenecks"]["verdict"].as_str().expect("a bottleneck verdict");
    assert!(
        report.contains(&verdict.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))
            || report.contains(verdict)
    );
    // Prometheus saw every target of the topology up during the run.
    let lab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("lab.json")).unwrap()).unwrap();
    let targets = lab["targets_up"].as_object().expect("targets_up");
    // A node exporter per host (app, db, monitor and the generators), postgres exporter,
    // device-api, grpc-stress, each generator's loadgen (its agent), Pushgateway, Prometheus.
    assert_eq!(targets.len(), 8 + 2 * generators.len(), "{targets:?}");
    assert!(targets.values().all(|up| up == true), "a target was never up: {targets:?}");
    check_agents(&summary, &lab, generators);
    assert_eq!(lab["missing"], serde_json::json!([]));
    assert_eq!(
        lab["storage"]["engine"], engine,
        "lab.json's storage (the test command installs TimescaleDB with scripts/install-deps): {}",
        lab["storage"]
    );
    assert_eq!(lab["storage"]["timescaledb_preloaded"], engine == "timescaledb", "{}", lab["storage"]);
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("time,name,labels,value\n"));
    assert!(csv.lines().count() > 50, "metrics.csv holds only {} lines", csv.lines().count());
    assert!(csv.contains(",host CPU,"), "metrics.csv lacks the host CPU signal");
}

/// The load came from every generator's agent, each at its host's address with its
/// segment of every step, and the shares add up to the merged step; the generators
/// ran on CPUs no other host had.
fn check_agents(summary: &serde_json::Value, lab: &serde_json::Value, generators: &[&str]) {
    let agent_of =
        |host: &str| format!("http://{}", lab["layout"]["addresses"][host]["loadgen-agent"].as_str().unwrap());
    let agents: Vec<String> = generators.iter().map(|host| agent_of(host)).collect();
    assert_eq!(summary["agents"], serde_json::json!(agents), "the report names each loadgen host's agent");
    assert_eq!(lab["agents"], serde_json::json!(agents));
    let steps = summary["steps"].as_array().unwrap();
    assert!(steps.len() >= 2, "{steps:?}");
    for step in steps {
        let shares = step["agents"].as_array().unwrap();
        let label = &step["label"];
        assert_eq!(shares.len(), generators.len(), "step {label}: one share per agent");
        let mut completed = 0;
        for (index, (share, agent)) in shares.iter().zip(&agents).enumerate() {
            assert_eq!(&share["agent"], agent, "step {label}");
            assert_eq!(share["segment"], format!("{index}/{}", generators.len()), "step {label}");
            assert!(share["completed"].as_u64().unwrap() > 0, "step {label}: {share}");
            assert!(share["achieved_rate"].as_f64().unwrap() > 0.0, "step {label}: {share}");
            assert_eq!(share["trouble"], serde_json::Value::Null, "step {label}: {share}");
            completed += share["completed"].as_u64().unwrap();
        }
        assert_eq!(completed, step["completed"].as_u64().unwrap(), "step {label}: the shares add up to the step");
    }
    let cpus = lab["layout"]["cpus"].as_object().unwrap();
    let theirs =
        |host: &str| -> HashSet<String> { cpus[host].as_str().unwrap().split(',').map(str::to_string).collect() };
    let generator_cpus: HashSet<String> = generators.iter().flat_map(|host| theirs(host)).collect();
    if loadlab::placement::available_cpus().len() > 1 {
        for (host, _) in cpus.iter().filter(|(host, _)| !generators.contains(&host.as_str())) {
            assert!(theirs(host).is_disjoint(&generator_cpus), "{host} shares a generator's CPU: {cpus:?}");
        }
    }
}

/// The shipped topology with its loadgen host renamed `loadgen-1` and a second one,
/// `loadgen-2`, beside it. On a two-core machine both generators share one CPU; the
/// `smoke` plan's first step (100/s) is low enough for that (at 400/s it broke the
/// 100 ms p99 in one run in five, at 122 ms).
fn two_generators(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repository().join("topology.toml")).unwrap();
    let second = "[[hosts]]\nname = \"loadgen-2\"\naddress = \"192.168.56.105\"\nvcpus = 1\nmemory_mib = 1536\n\
                  roles = [\"loadgen\"]\n\n[[hosts]]\nname = \"app\"";
    let edited =
        text.replacen("name = \"loadgen\"", "name = \"loadgen-1\"", 1).replacen("[[hosts]]\nname = \"app\"", second, 1);
    for edit in ["name = \"loadgen-1\"", "name = \"loadgen-2\""] {
        assert!(edited.contains(edit), "the shipped topology changed: {edit} not made");
    }
    let path = dir.join("topology.toml");
    std::fs::write(&path, edited).unwrap();
    path
}

/// `loadlab run --plan smoke` in `isolation`. `storage` is loadlab's --storage (`None`:
/// its default, TimescaleDB where installed); `topology` a file of its own, whose
/// loadgen hosts are `generators`.
fn run_smoke(isolation: &str, storage: Option<&str>, topology: Option<&Path>, generators: &[&str]) {
    let _lab = lock();
    let before = Before::now();
    let out = tempfile::tempdir().unwrap();
    let mut spec = loadlab().args(["run", "--plan", "smoke", "--isolation", isolation, "--out"]).arg(out.path());
    if let Some(storage) = storage {
        spec = spec.args(["--storage", storage]);
    }
    if let Some(topology) = topology {
        spec = spec.arg("--topology").arg(topology);
    }
    let run = finish(spec, RUN_LIMIT);
    assert_eq!(run.code(), 0, "loadlab run exited {}", run.status);
    assert!(run.log.contains("breaking point:"), "no breaking point reported");
    assert!(run.log.contains("bottleneck:"), "no bottleneck named");
    let engine = if storage == Some("native") { "native-partitions" } else { "timescaledb" };
    check_results(&the_run_dir(out.path()), engine, generators);
    assert_nothing_left(&before);
}

#[test]
fn run_in_process_isolation_finds_the_breaking_point_and_leaves_nothing() {
    run_smoke("process", None, None, &["loadgen"]);
}

#[test]
fn run_in_netns_isolation_on_plain_postgresql_finds_the_breaking_point_and_leaves_nothing() {
    require_root();
    // On plain PostgreSQL, so the lab's other engine runs end to end too.
    run_smoke("netns", Some("native"), None, &["loadgen"]);
}

#[test]
fn run_with_two_loadgen_hosts_in_process_isolation_splits_every_step_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    run_smoke("process", None, Some(&two_generators(dir.path())), &["loadgen-1", "loadgen-2"]);
}

#[test]
fn run_with_two_loadgen_hosts_in_netns_isolation_splits_every_step_and_leaves_nothing() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    run_smoke("netns", None, Some(&two_generators(dir.path())), &["loadgen-1", "loadgen-2"]);
}

/// A topology whose device-api is given a flag it does not know: it exits at start.
fn broken_topology(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repository().join("topology.toml")).unwrap();
    let text = text.replace("pool-size = 16", "pool-size = 16\nno-such-flag = true");
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A lab whose device-api exits at start: the error says so with device-api's own
/// complaint, lab.json records it, and nothing is left.
fn a_component_that_fails_at_start(isolation: &str) {
    let _lab = lock();
    let before = Before::now();
    let dir = tempfile::tempdir().unwrap();
    let topology = broken_topology(dir.path());
    let spec = loadlab()
        .args(["run", "--isolation", isolation, "--topology"])
        .arg(&topology)
        .arg("--out")
        .arg(dir.path().join("results"));
    let run = finish(spec, RUN_LIMIT);
    assert_eq!(run.code(), 1, "{isolation}: a lab that did not come up exits 1");
    assert!(run.log.contains("device-api exited during start-up"), "{isolation}: {}", run.log);
    assert!(run.log.contains("no-such-flag"), "{isolation}: the error shows device-api's own complaint");
    let run_dir = the_run_dir(&dir.path().join("results"));
    let lab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("lab.json")).unwrap()).unwrap();
    assert!(lab["error"].as_str().unwrap().contains("device-api"), "{lab}");
    assert!(run_dir.join("logs/device-api.log").is_file());
    assert_nothing_left(&before);
}

#[test]
fn a_component_that_fails_at_start_is_reported_and_everything_is_torn_down() {
    a_component_that_fails_at_start("process");
}

#[test]
fn a_component_that_fails_at_start_in_netns_isolation_is_reported_and_everything_is_torn_down() {
    require_root();
    a_component_that_fails_at_start("netns");
}

#[test]
fn a_taken_port_is_refused_naming_its_holder() {
    let _lab = lock();
    let before = Before::now();
    let holder = std::net::TcpListener::bind("127.0.56.102:8080").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = finish(loadlab().args(["run", "--plan", "smoke", "--out"]).arg(dir.path()), RUN_LIMIT);
    assert_eq!(run.code(), 1);
    let stderr = run.log;
    let named = "port 8080 for device-api on 127.0.56.102 is taken";
    assert!(stderr.contains(named), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", std::process::id())), "the holder is named: {stderr}");
    assert!(stderr.contains("--any-port"), "the way out is named: {stderr}");
    drop(holder);
    assert_nothing_left(&before);
}

#[test]
fn bad_topologies_and_plans_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("topology.toml");
    let text = std::fs::read_to_string(repository().join("topology.toml")).unwrap();
    std::fs::write(&bad, text.replace("192.168.56.103", "10.1.1.1")).unwrap();
    let run = finish(loadlab().arg("run").arg("--topology").arg(&bad).arg("--out").arg(dir.path()), RUN_LIMIT);
    assert_eq!(run.code(), 2, "a bad topology is bad input");
    assert!(run.log.contains("host `db`: address 10.1.1.1 is outside the host-only network"), "{}", run.log);

    let run = finish(loadlab().args(["run", "--plan", "nope", "--out"]).arg(dir.path()), RUN_LIMIT);
    assert_eq!(run.code(), 2, "an unknown plan is bad input, as --help says");
    assert!(run.log.contains("no plan `nope`"), "{}", run.log);

    // `loadlab topology` prints what the Nix side must derive too.
    let topology = finish(loadlab().arg("topology"), RUN_LIMIT);
    assert!(topology.status.success());
    let derived: serde_json::Value = serde_json::from_str(&topology.stdout).unwrap();
    assert_eq!(derived["hosts"]["app"]["open_tcp_ports"], serde_json::json!([8080, 9100, 50051, 50052]));
}

/// Starts `loadlab up`; returns it once it has printed its URLs, and what it printed.
fn start_up(dir: &Path) -> (Supervised, String) {
    let stdout = dir.join("up.stdout");
    let up = loadlab()
        .arg("up")
        .stdout_to(&stdout)
        .start(&Ready::Line("Stop with".into()), Duration::from_secs(120))
        .unwrap_or_else(|error| panic!("loadlab up did not come up: {error}"));
    (up, std::fs::read_to_string(&stdout).unwrap())
}

/// `loadlab status`'s report.
fn lab_status() -> String {
    finish(loadlab().arg("status"), RUN_LIMIT).stdout
}

#[test]
fn up_status_down_and_a_crashed_lab_is_cleaned_by_the_next_command() {
    let _lab = lock();
    let before = Before::now();

    // up → status shows every URL answering → down stops it.
    let dir = tempfile::tempdir().unwrap();
    let (mut up, printed) = start_up(dir.path());
    for name in ["device-api", "Prometheus", "Pushgateway", "PostgreSQL", "grafana-server"] {
        assert!(printed.contains(name), "`loadlab up` does not mention {name}:\n{printed}");
    }
    let status = lab_status();
    for name in ["device-api", "Prometheus", "Pushgateway"] {
        let line =
            status.lines().find(|line| line.trim_start().starts_with(name)).unwrap_or_else(|| panic!("{status}"));
        assert!(line.ends_with(" up"), "{name} is not up: {line}");
    }
    let down = finish(loadlab().arg("down"), RUN_LIMIT);
    assert!(down.status.success(), "{}", down.log);
    let stopped = up.wait_timeout(Duration::from_secs(60)).expect("`loadlab up` stops when told to");
    assert!(stopped.success(), "`loadlab up` exits 0 when told to stop");
    assert_nothing_left(&before);

    // A lab whose owner is killed leaves its servers running; the next command cleans up.
    let crashed = tempfile::tempdir().unwrap();
    let (mut up, _) = start_up(crashed.path());
    assert!(before.new_processes().len() >= 5);
    up.signal(Signal::SIGKILL);
    up.wait();
    assert!(before.new_processes().len() >= 5, "the servers outlive their killed owner");
    let status = lab_status();
    assert!(status.contains("cleaned up after a crashed lab"), "{status}");
    assert!(status.contains("no lab is running"), "{status}");
    assert_nothing_left(&before);
}

#[test]
fn ctrl_c_during_a_run_stops_loadgen_and_tears_down() {
    let _lab = lock();
    let before = Before::now();
    let out = tempfile::tempdir().unwrap();
    let mut run = loadlab()
        .args(["run", "--plan", "default", "--out"])
        .arg(out.path())
        // A progress line of the first step: interrupted while it runs, whatever it
        // would have come to.
        .start(&Ready::Line("] step 1 ".into()), Duration::from_secs(120))
        .unwrap_or_else(|error| panic!("loadgen never started its first step: {error}"));
    run.signal(Signal::SIGINT);
    let status = run.wait_timeout(RUN_LIMIT).expect("loadlab stops after Ctrl-C");
    assert_eq!(
        status.code(),
        Some(i32::from(loadgen::exit::INTERRUPTED)),
        "an interrupted run exits with loadgen's interrupted code:\n{}",
        run.output()
    );
    let run_dir = the_run_dir(out.path());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    assert_nothing_left(&before);
}
