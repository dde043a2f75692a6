//! `loadlab run`, `up`, `status` and `down` end to end, as a user runs them: the real
//! binary, the real servers, the shipped topology and its `smoke` plan. Each test
//! checks what the lab promises: a breaking point found, a report and summary that
//! agree, every target seen up, and nothing left behind (no process, no namespace, no
//! lab record), including after a forced failure, Ctrl-C and a crashed lab.
//!
//! The labs share the topology's ports, so the tests take turns (one lock).

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{binary, repository};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn loadlab() -> Command {
    let mut command = Command::new(binary("loadlab"));
    command.current_dir(repository()).env("RUST_LOG", "warn");
    command
}

/// Runs to the end (at most 5 minutes); (exit code, stderr).
fn finish(mut command: Command) -> (i32, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadlab did not finish within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("{stderr}");
    (output.status.code().unwrap_or(-1), stderr)
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

/// Live (not zombie) processes of the lab's programs: (pid, start time, name).
fn lab_processes() -> HashSet<(u32, u64, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let id = loadlab::state::ProcessId::of(pid)?;
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim().to_string();
            LAB_PROGRAMS.contains(&name.as_str()).then_some((pid, id.start_time, name))
        })
        .collect()
}

/// Nothing the lab started is left: no process that was not there `before`, no lab
/// namespace, no lab record.
fn assert_nothing_left(before: &HashSet<(u32, u64, String)>) {
    // Processes are stopped before loadlab exits; allow the kernel a moment to reap.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = lab_processes().difference(before).cloned().collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left running: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let namespaces = loadlab::netns::existing();
    assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
    let records = loadlab::state::records();
    assert!(records.is_empty(), "lab records left: {:?}", records.iter().map(|(r, _)| &r.id).collect::<Vec<_>>());
}

fn the_run_dir(out: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "one run directory in {}: {runs:?}", out.display());
    runs[0].clone()
}

/// A finished run's directory holds what the README promises, and it agrees;
/// device-api stored measurements in `engine`.
fn check_results(run_dir: &Path, engine: &str) {
    for file in ["report.html", "summary.json", "seconds.csv", "metrics.csv", "lab.json", "topology.toml"] {
        assert!(run_dir.join(file).is_file(), "{file} missing in {}", run_dir.display());
    }
    for log in ["device-api", "grpc-stress", "loadgen", "prometheus", "postgresql"] {
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
    // 4 node exporters, postgres exporter, device-api, grpc-stress, loadgen, Pushgateway, Prometheus.
    assert_eq!(targets.len(), 10, "{targets:?}");
    assert!(targets.values().all(|up| up == true), "a target was never up: {targets:?}");
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

/// `storage` is loadlab's --storage (`None`: its default, TimescaleDB where installed).
fn run_smoke(isolation: &str, storage: Option<&str>) {
    let _lab = lock();
    let before = lab_processes();
    let out = tempfile::tempdir().unwrap();
    let mut command = loadlab();
    command.args(["run", "--plan", "smoke", "--isolation", isolation, "--out"]).arg(out.path());
    if let Some(storage) = storage {
        command.args(["--storage", storage]);
    }
    let (code, stderr) = finish(command);
    assert_eq!(code, 0, "loadlab run exited {code}");
    assert!(stderr.contains("breaking point:"), "no breaking point reported");
    assert!(stderr.contains("bottleneck:"), "no bottleneck named");
    let engine = if storage == Some("native") { "native-partitions" } else { "timescaledb" };
    check_results(&the_run_dir(out.path()), engine);
    assert_nothing_left(&before);
}

#[test]
fn run_in_process_isolation_finds_the_breaking_point_and_leaves_nothing() {
    run_smoke("process", None);
}

#[test]
fn run_in_netns_isolation_on_plain_postgresql_finds_the_breaking_point_and_leaves_nothing() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: netns isolation needs root (CI runs as root)");
        return;
    }
    // On plain PostgreSQL, so the lab's other engine runs end to end too.
    run_smoke("netns", Some("native"));
}

/// A topology whose device-api is given a flag it does not know: it exits at start.
fn broken_topology(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repository().join("topology.toml")).unwrap();
    let text = text.replace("pool-size = 16", "pool-size = 16\nno-such-flag = true");
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_component_that_fails_at_start_is_reported_and_everything_is_torn_down() {
    let _lab = lock();
    let isolations: &[&str] =
        if nix::unistd::Uid::effective().is_root() { &["process", "netns"] } else { &["process"] };
    for isolation in isolations {
        let before = lab_processes();
        let dir = tempfile::tempdir().unwrap();
        let topology = broken_topology(dir.path());
        let mut command = loadlab();
        command
            .args(["run", "--isolation", isolation, "--topology"])
            .arg(&topology)
            .arg("--out")
            .arg(dir.path().join("results"));
        let (code, stderr) = finish(command);
        assert_eq!(code, 1, "{isolation}: a lab that did not come up exits 1");
        assert!(stderr.contains("device-api exited during start-up"), "{isolation}: {stderr}");
        assert!(stderr.contains("no-such-flag"), "{isolation}: the error shows device-api's own complaint");
        let run_dir = the_run_dir(&dir.path().join("results"));
        let lab: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("lab.json")).unwrap()).unwrap();
        assert!(lab["error"].as_str().unwrap().contains("device-api"), "{lab}");
        assert!(run_dir.join("logs/device-api.log").is_file());
        assert_nothing_left(&before);
    }
}

#[test]
fn a_taken_port_is_refused_naming_its_holder() {
    let _lab = lock();
    let before = lab_processes();
    let holder = std::net::TcpListener::bind("127.0.56.102:8080").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = loadlab();
    command.args(["run", "--plan", "smoke", "--out"]).arg(dir.path());
    let (code, stderr) = finish(command);
    assert_eq!(code, 1);
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
    let mut command = loadlab();
    command.arg("run").arg("--topology").arg(&bad).arg("--out").arg(dir.path());
    let (code, stderr) = finish(command);
    assert_eq!(code, 2);
    assert!(stderr.contains("host `db`: address 10.1.1.1 is outside the host-only network"), "{stderr}");

    let mut command = loadlab();
    command.args(["run", "--plan", "nope", "--out"]).arg(dir.path());
    let (code, stderr) = finish(command);
    assert_eq!(code, 1);
    assert!(stderr.contains("no plan `nope`"), "{stderr}");

    // `loadlab topology` prints what the Nix side must derive too.
    let output = loadlab().arg("topology").output().unwrap();
    assert!(output.status.success());
    let derived: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(derived["hosts"]["app"]["open_tcp_ports"], serde_json::json!([8080, 9100, 50051, 50052]));
}

/// Starts `loadlab up`; returns it once it has printed its URLs, and what it printed.
fn start_up(extra: &[&str]) -> (Child, String) {
    let mut child = loadlab().arg("up").args(extra).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("Stop with") {
            break;
        }
        assert!(Instant::now() < deadline, "loadlab up did not come up: {printed}");
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, printed)
}

#[test]
fn up_status_down_and_a_crashed_lab_is_cleaned_by_the_next_command() {
    let _lab = lock();
    let before = lab_processes();

    // up → status shows every URL answering → down stops it.
    let (mut up, printed) = start_up(&[]);
    for name in ["device-api", "Prometheus", "Pushgateway", "PostgreSQL", "grafana-server"] {
        assert!(printed.contains(name), "`loadlab up` does not mention {name}:\n{printed}");
    }
    let status = loadlab().arg("status").output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    for name in ["device-api", "Prometheus", "Pushgateway"] {
        let line =
            status.lines().find(|line| line.trim_start().starts_with(name)).unwrap_or_else(|| panic!("{status}"));
        assert!(line.ends_with(" up"), "{name} is not up: {line}");
    }
    let down = loadlab().arg("down").output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(up.wait().unwrap().success(), "`loadlab up` exits 0 when told to stop");
    assert_nothing_left(&before);

    // A lab whose owner is killed leaves its servers running; the next command cleans up.
    let (mut up, _) = start_up(&[]);
    assert!(lab_processes().difference(&before).count() >= 5);
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(lab_processes().difference(&before).count() >= 5, "the servers outlive their killed owner");
    let status = loadlab().arg("status").output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("cleaned up after a crashed lab"), "{status}");
    assert!(status.contains("no lab is running"), "{status}");
    assert_nothing_left(&before);
}

#[test]
fn ctrl_c_during_a_run_stops_loadgen_and_tears_down() {
    let _lab = lock();
    let before = lab_processes();
    let out = tempfile::tempdir().unwrap();
    let mut child = loadlab()
        .args(["run", "--plan", "default", "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("step 1 at") {
            break;
        }
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    std::thread::spawn(move || for _ in lines {});
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(97), "an interrupted run exits with loadgen's aborted code");
    let run_dir = the_run_dir(out.path());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    assert_nothing_left(&before);
}
