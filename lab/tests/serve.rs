//! `loadlab serve` end to end, as its users meet it: the real binary on a free port
//! with its store in a temporary directory, driven by clients that are not loadgen
//! (curl), against real servers (`loadgen target` with a capacity option, a counting
//! server, the lab of the shipped topology).
//!
//! - the results-server round trip: a test created, two clients waiting for its start
//!   (a long poll and an event stream), started, data points, finished, read back;
//! - a planted regression: an experiment's runs against a server whose capacity drops
//!   from run N on are flagged at N with the right sign, the runs before are not;
//! - kill -9 during a run: the run is kept, marked incomplete, and the service
//!   restarts cleanly;
//! - a timed-out experiment is cancelled and nothing keeps sending;
//! - a plan of the topology run by the service on the lab, a `loadlab run --store`
//!   recorded beside it, both compared with `loadlab compare`, and imports.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loadlab_fixtures::{binary, repository};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `loadlab serve` child process; stopped (SIGTERM, then waited for) on drop.
struct Serve {
    child: Option<Child>,
    address: SocketAddr,
}

impl Serve {
    fn start(data: &Path, experiments: Option<&Path>, extra: &[&str]) -> Self {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut command = Command::new(binary("loadlab"));
        command
            .current_dir(repository())
            .env("RUST_LOG", "info")
            .args(["serve", "--listen", &address.to_string(), "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(file) = experiments {
            command.arg("--experiments").arg(file);
        }
        let mut child = command.spawn().unwrap();
        // Keep its log flowing into the test's output.
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  serve │ {line}");
            }
        });
        let serve = Self { child: Some(child), address };
        let deadline = Instant::now() + Duration::from_secs(60);
        while request(address, "GET", "/openapi.json", None).0 != 200 {
            assert!(Instant::now() < deadline, "loadlab serve did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn kill_9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = request(self.address, "GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        request(self.address, method, path, Some(body))
    }

    /// Waits until run `id` has ended; returns it.
    fn wait_for_end(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let detail = self.get(&format!("/runs/{id}"));
            let state = detail["run"]["state"].as_str().unwrap().to_string();
            if !["created", "running"].contains(&state.as_str()) {
                return detail;
            }
            assert!(Instant::now() < deadline, "run {id} still {state} after {within:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.0 request; (status, JSON body or the text as a JSON string).
fn request(address: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else { return (0, Value::Null) };
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).is_err() {
        return (0, Value::Null);
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return (0, Value::Null);
    }
    let status = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let text = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

/// `curl` with these arguments; (HTTP status, body as JSON).
fn curl(args: &[&str]) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json"])
        .args(args)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn the_results_server_round_trip_with_curl() {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), None, &[]);
    let base = format!("http://{}", serve.address);

    let (status, test) =
        curl(&["-X", "POST", &format!("{base}/tests/peer-test-1"), "-d", r#"{"description":"two peers"}"#]);
    assert_eq!(status, 201, "{test}");
    assert_eq!(test["state"], "created");
    assert_eq!(test["started"], false);

    // Two clients wait for the start: one with server-sent events, one with a long poll.
    let mut events = Command::new("curl")
        .args(["-sN", "--max-time", "120", &format!("{base}/tests/peer-test-1/events")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut event_lines = BufReader::new(events.stdout.take().unwrap()).lines();
    let first = event_lines.next().unwrap().unwrap();
    assert_eq!(first, "event: state", "the stream opens with the test's state");
    let mut poll = Command::new("curl")
        .args(["-sS", "--max-time", "120", &format!("{base}/tests/peer-test-1/wait?timeout=90s")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(poll.try_wait().unwrap().is_none(), "the long poll waits for the start");

    let (status, started) = curl(&["-X", "PUT", &format!("{base}/tests/peer-test-1/start")]);
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["state"], "running");
    let released = Instant::now();
    let polled = poll.wait_with_output().unwrap();
    let polled: Value = serde_json::from_slice(&polled.stdout).unwrap();
    assert_eq!(polled["state"], "running", "{polled}");
    assert!(released.elapsed() < Duration::from_secs(30), "released by the start, not by its timeout");

    // Data points from a client that is not loadgen, and a bad batch refused.
    let batch = json!({"client": "peer-1", "points": [
        {"name": "sent", "value": 12.0, "labels": {"room": "blue"}},
        {"time": "2026-01-01T00:00:00Z", "name": "received", "value": 11.0},
    ]});
    let (status, accepted) =
        curl(&["-X", "POST", &format!("{base}/tests/peer-test-1/datapoints"), "-d", &batch.to_string()]);
    assert_eq!((status, accepted["accepted"].as_u64()), (201, Some(2)), "{accepted}");
    for (bad, field) in [
        (r#"{"points":[{"name":"sent","value":"x"}]}"#, "points[0].value"),
        (r#"{"points":[{"name":"sent","value":1,"time":"yesterday"}]}"#, "points[0].time"),
        (r#"{"points":[]}"#, "points"),
        (r#"{"points":[{"name":"","value":1}]}"#, "points[0].name"),
        (r#"{"pointz":[]}"#, "pointz"),
    ] {
        let (status, error) = curl(&["-X", "POST", &format!("{base}/tests/peer-test-1/datapoints"), "-d", bad]);
        assert_eq!(status, 400, "{bad}: {error}");
        assert_eq!(error["error"], "invalid");
        assert_eq!(error["field"], field, "{bad}: {error}");
    }
    let (status, error) = curl(&["-X", "POST", &format!("{base}/tests/peer-test-1"), "-d", "{}"]);
    assert_eq!((status, error["error"].as_str()), (409, Some("conflict")), "the id is taken: {error}");
    let (status, error) = curl(&["-X", "POST", &format!("{base}/tests/bad%20id"), "-d", "{}"]);
    assert_eq!((status, error["field"].as_str()), (400, Some("id")), "{error}");
    let (status, error) = curl(&[&format!("{base}/tests/nope")]);
    assert_eq!((status, error["error"].as_str()), (404, Some("not_found")));
    let (status, error) = curl(&[&format!("{base}/tests/peer-test-1/wait?timeout=forever")]);
    assert_eq!((status, error["field"].as_str()), (400, Some("timeout")), "{error}");

    let (status, finished) = curl(&["-X", "PUT", &format!("{base}/tests/peer-test-1/finish")]);
    assert_eq!(status, 200, "{finished}");
    assert_eq!(finished["state"], "finished");
    assert_eq!(finished["data_points"].as_array().unwrap().len(), 2);
    let (status, _) = curl(&["-X", "POST", &format!("{base}/tests/peer-test-1/datapoints"), "-d", &batch.to_string()]);
    assert_eq!(status, 409, "a finished test takes no more data points");

    let (status, read) = curl(&[&format!("{base}/tests/peer-test-1?dataPoints=true")]);
    assert_eq!(status, 200);
    assert_eq!(read["state"], "finished");
    assert_eq!(read["data_point_count"], 2);
    let points = read["data_points"].as_array().unwrap();
    assert_eq!(points[0]["name"], "sent");
    assert_eq!(points[0]["labels"]["room"], "blue");
    assert_eq!(points[0]["client"], "peer-1");
    assert_eq!(points[1]["time"], "2026-01-01T00:00:00.000Z");
    let (_, read) = curl(&[&format!("{base}/tests/peer-test-1")]);
    assert!(read.get("data_points").is_none(), "data points only when asked for");

    // The event stream saw the start, the data points and the finish, then closed.
    let rest: Vec<String> = event_lines.map_while(Result::ok).collect();
    assert!(events.wait().unwrap().success(), "the stream ends when the test does");
    let text = rest.join("\n");
    assert!(text.contains(r#""state":"running""#), "{text}");
    assert!(text.contains("event: datapoints"), "{text}");
    assert!(text.contains(r#""state":"finished""#), "{text}");

    // Catalyst's creation without an id, started at once; and the list of runs.
    let (status, created) = curl(&["-X", "POST", &format!("{base}/tests"), "-d", r#"{"started":true}"#]);
    assert_eq!((status, created["state"].as_str()), (201, Some("running")), "{created}");
    let list = serve.get("/runs?kind=test");
    assert_eq!(list["count"], 2);
    let (status, error) = request(serve.address, "GET", "/runs?limit=abc", None);
    assert_eq!((status, error["field"].as_str()), (400, Some("limit")), "{error}");
    let (status, error) = request(serve.address, "GET", "/runs?state=done", None);
    assert_eq!((status, error["field"].as_str()), (400, Some("state")), "{error}");

    // What the service runs plans on.
    let lab = serve.get("/topology");
    assert_eq!(lab["mode"], "local");
    assert_eq!(lab["plans"]["smoke"]["target"], "device-api");
    assert_eq!(lab["plans"]["smoke"]["options"]["step-duration"], "4s");
    assert!(lab["derived"]["hosts"]["app"].is_object());

    // The OpenAPI document lists the routes.
    let document = serve.get("/openapi.json");
    for path in [
        "/tests/{id}/wait",
        "/tests/{id}/datapoints",
        "/runs",
        "/runs/{id}/events",
        "/compare",
        "/experiments/{name}",
        "/topology",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} missing from /openapi.json");
    }
}

/// `loadgen target` with a capacity of `workers` / `service` requests per second.
struct Target {
    child: Child,
    url: String,
}

impl Target {
    fn start(port: u16, workers: u32, service: &str) -> Self {
        let child = Command::new(binary("loadgen"))
            .args(["target", "--listen", &format!("127.0.0.1:{port}"), "--workers", &workers.to_string()])
            .args(["--service-time", service])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "loadgen target did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, url: format!("http://127.0.0.1:{port}/") }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An experiments file with one experiment against `url`.
fn experiments_file(dir: &Path, name: &str, url: &str, extra: &str, loadgen: &str) -> std::path::PathBuf {
    let path = dir.join("experiments.toml");
    let text =
        format!("[experiments.{name}]\ntarget = \"{url}\"\nloadgen = {{ scenario = \"http\", {loadgen} }}\n{extra}\n");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_planted_capacity_drop_is_flagged_at_its_run_with_the_right_sign() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    // 5 workers × 10 ms: 500 requests/s. Steps 100, 200, 400 hold; 800 breaks, and the
    // refinement at 600 breaks too: the breaking point is 400/s.
    let mut target = Target::start(port, 5, "10ms");
    let loadgen = "start-rate = 100, step-factor = 2, step-duration = \"1s\", max-rate = 1600, refine = 1, \
                   slo-latency = \"100ms\"";
    let file =
        experiments_file(data.path(), "capacity", &target.url, "reference-rate = 200\ntimeout = \"2m\"", loadgen);
    let serve = Serve::start(&data.path().join("store"), Some(&file), &[]);
    let run_once = || {
        let (status, run) = serve.send("POST", "/experiments/capacity/run", Value::Null);
        assert_eq!(status, 202, "{run}");
        let detail = serve.wait_for_end(run["id"].as_str().unwrap(), Duration::from_secs(120));
        assert_eq!(detail["run"]["state"], "finished", "{}", detail["run"]);
        detail["run"]["breaking_point"].as_f64().expect("a breaking point")
    };
    let (before, after) = (6, 5);
    let mut points = Vec::new();
    for _ in 0..before {
        points.push(run_once());
    }
    // Noise only so far: nothing is flagged.
    let experiment = serve.get("/experiments/capacity");
    assert_eq!(experiment["change_points"], json!([]), "flagged before the drop: {points:?}");
    let metrics = serve.get_text("/metrics");
    assert!(
        metrics.contains("loadlab_experiment_regression{experiment=\"capacity\",metric=\"breaking_point\"} 0"),
        "{metrics}"
    );

    // From run N = 6 on: 5 workers × 20 ms, 250 requests/s.
    drop(target);
    target = Target::start(port, 5, "20ms");
    for _ in 0..after {
        points.push(run_once());
    }
    println!("breaking points: {points:?}");
    let experiment = serve.get("/experiments/capacity");
    let changes: Vec<&Value> = experiment["change_points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|point| point["metric"] == "breaking_point")
        .collect();
    assert_eq!(changes.len(), 1, "{experiment}");
    let change = changes[0];
    assert_eq!(change["index"], before, "flagged at the first run of the lower capacity: {change}");
    assert_eq!(change["direction"], "regression");
    assert!(change["change"].as_f64().unwrap() < -0.3, "a drop: {change}");
    assert!(change["p_value"].as_f64().unwrap() <= 0.001, "{change}");
    assert_eq!(change["runs_before"].as_array().unwrap().len(), before);
    assert_eq!(change["runs_after"].as_array().unwrap().len(), after);
    let regressions = experiment["regressions"].as_array().unwrap();
    assert!(regressions.iter().any(|finding| finding["metric"] == "breaking_point"), "{experiment}");
    let metrics = serve.get_text("/metrics");
    assert!(
        metrics.contains("loadlab_experiment_regression{experiment=\"capacity\",metric=\"breaking_point\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("loadlab_experiment_runs_total{experiment=\"capacity\",verdict=\"held\"} 11"),
        "{metrics}"
    );
    assert!(metrics.contains("loadlab_experiment_last_breaking_point_requests_per_second{experiment=\"capacity\"}"));
    assert!(metrics.contains("loadlab_experiment_last_p99_seconds{experiment=\"capacity\",rate=\"200\"}"), "{metrics}");
    drop(target);
}

impl Serve {
    fn get_text(&self, path: &str) -> String {
        let (status, body) = request(self.address, "GET", path, None);
        assert_eq!(status, 200);
        body.as_str().map(str::to_string).unwrap_or_else(|| body.to_string())
    }
}

#[test]
fn kill_9_during_a_run_keeps_it_incomplete_and_the_service_restarts_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let target = Target::start(free_port(), 50, "1ms");
    let mut serve = Serve::start(data.path(), None, &[]);
    let long = json!({"target": target.url, "loadgen": {
        "scenario": "http", "start-rate": 50, "step-factor": 1.5, "step-duration": "3s", "max-rate": 20000}});
    let (status, run) = serve.send("POST", "/runs", long.clone());
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    // Kill it once a few seconds are recorded.
    let deadline = Instant::now() + Duration::from_secs(60);
    while serve.get(&format!("/runs/{id}"))["seconds"].as_array().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "no seconds recorded");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = serve.pid();
    serve.kill_9();
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(), "the service is gone");

    let serve = Serve::start(data.path(), None, &[]);
    let detail = serve.get(&format!("/runs/{id}"));
    assert_eq!(detail["run"]["state"], "incomplete", "{}", detail["run"]);
    assert_eq!(detail["run"]["outcome"], "incomplete");
    assert!(detail["run"]["error"].as_str().unwrap().contains("ended before the run did"));
    assert!(detail["seconds"].as_array().unwrap().len() >= 3, "what it recorded is kept");
    let listed = serve.get("/runs?state=incomplete");
    assert_eq!(listed["count"], 1);
    // It runs again: a short run to its end.
    let short = json!({"target": target.url, "loadgen": {
        "scenario": "http", "start-rate": 50, "step-duration": "1s", "max-rate": 100}});
    let (status, run) = serve.send("POST", "/runs", short);
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap();
    // A watcher of the live run: every second and step as they end, then the end.
    let events = Command::new("curl")
        .args(["-sN", "--max-time", "60", &format!("http://{}/runs/{id}/events", serve.address)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let detail = serve.wait_for_end(id, Duration::from_secs(60));
    assert_eq!(detail["run"]["state"], "finished", "{}", detail["run"]);
    let streamed = String::from_utf8(events.wait_with_output().unwrap().stdout).unwrap();
    let rows = streamed.matches("event: second").count();
    assert_eq!(rows, detail["seconds"].as_array().unwrap().len(), "every second once: {streamed}");
    assert_eq!(streamed.matches("event: step").count(), 2, "{streamed}");
    assert!(
        streamed
            .trim_end()
            .lines()
            .rev()
            .find(|line| line.starts_with("data:"))
            .unwrap()
            .contains(r#""state":"finished""#)
    );
    assert_eq!(detail["steps"].as_array().unwrap().len(), 2);
    assert!(detail["merged"]["corrected_ok"]["count"].as_u64().unwrap() > 100);
}

/// A real HTTP server in this process that counts the requests it answers.
fn counting_server() -> (String, Arc<AtomicU64>, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    runtime.spawn(async move { axum::serve(listener, app).await });
    (url, served, runtime)
}

#[test]
fn a_timed_out_experiment_is_cancelled_and_nothing_keeps_running() {
    let data = tempfile::tempdir().unwrap();
    let (url, served, _runtime) = counting_server();
    // Due at once (it never ran), and far longer than its 4 s timeout.
    let file = experiments_file(
        data.path(),
        "endless",
        &url,
        "interval = \"1h\"\ntimeout = \"4s\"",
        "start-rate = 50, step-factor = 1.1, step-duration = \"5s\", max-rate = 5000",
    );
    let serve = Serve::start(&data.path().join("store"), Some(&file), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let runs = serve.get("/runs?experiment=endless");
        if let Some(id) = runs["runs"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "the experiment was never started");
        std::thread::sleep(Duration::from_millis(100));
    };
    // A plan queued behind it, stopped while it waits: cancelled at once, never run.
    let (status, queued) = serve.send("POST", "/runs", json!({"target": url, "loadgen": {"scenario": "http"}}));
    assert_eq!(status, 202, "{queued}");
    let queued_id = queued["id"].as_str().unwrap();
    let (status, stopped) = serve.send("PUT", &format!("/runs/{queued_id}/stop"), Value::Null);
    assert_eq!(status, 202, "{stopped}");
    assert_eq!(
        (stopped["state"].as_str(), stopped["outcome"].as_str()),
        (Some("cancelled"), Some("cancelled")),
        "{stopped}"
    );
    let detail = serve.wait_for_end(&id, Duration::from_secs(60));
    let run = &detail["run"];
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(run["outcome"], "timeout", "{run}");
    assert!(run["verdict"].as_str().unwrap().contains("timeout"), "{run}");
    assert!(run["duration_seconds"].as_f64().unwrap() < 15.0, "{run}");
    assert!(served.load(Ordering::Relaxed) > 0, "it did run");
    // Nothing keeps sending once it is cancelled.
    std::thread::sleep(Duration::from_secs(1));
    let after_cancel = served.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(served.load(Ordering::Relaxed), after_cancel, "requests after the cancel");
    // Not run again before its interval, and counted as a timeout; the queued run
    // never ran.
    assert_eq!(serve.get("/runs?experiment=endless")["count"], 1);
    assert_eq!(serve.get(&format!("/runs/{queued_id}"))["seconds"], json!([]));
    let metrics = serve.get_text("/metrics");
    assert!(
        metrics.contains("loadlab_experiment_runs_total{experiment=\"endless\",verdict=\"timeout\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("loadlab_experiment_last_verdict{experiment=\"endless\",verdict=\"timeout\"} 1"));
    // A stop on an ended run is a conflict.
    let (status, error) = serve.send("PUT", &format!("/runs/{id}/stop"), Value::Null);
    assert_eq!((status, error["error"].as_str()), (409, Some("conflict")), "{error}");
}

#[test]
fn bad_runs_and_files_are_refused_naming_the_field() {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), None, &[]);
    for (body, field) in [
        (json!({"plan": "nope"}), "plan"),
        (json!({"plan": "smoke", "overrides": {"start-rate": "fast"}}), "overrides"),
        (json!({"plan": "smoke", "overrides": {"target": "http://elsewhere"}}), "overrides.target"),
        (json!({"plan": 3}), "plan"),
        (json!({"plan": "smoke", "colour": "red"}), "colour"),
        (json!({"target": "ftp://x"}), "target"),
    ] {
        let (status, error) = serve.send("POST", "/runs", body.clone());
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    let (status, error) = serve.send("POST", "/experiments/nope/run", Value::Null);
    assert_eq!((status, error["error"].as_str()), (404, Some("not_found")));
    let (status, _) = serve.send("GET", "/no/such/route", Value::Null);
    assert_eq!(status, 404);
    drop(serve);

    // A bad experiments file: exit 2, naming the experiment and field.
    let file = data.path().join("bad.toml");
    std::fs::write(&file, "[experiments.nightly]\nplan = \"smoke\"\ndaily = \"25:99\"\n").unwrap();
    let output = Command::new(binary("loadlab"))
        .current_dir(repository())
        .args(["serve", "--check-config", "--experiments"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[experiments.nightly] daily: `25:99` is not a time of day"), "{stderr}");
    // …and a good one is printed by --check-config.
    std::fs::write(&file, "[experiments.nightly]\nplan = \"smoke\"\ndaily = \"02:30\"\n").unwrap();
    let output = Command::new(binary("loadlab"))
        .current_dir(repository())
        .args(["serve", "--check-config", "--experiments"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration is valid: 1 experiments"));
    // compare on a store that does not exist: exit 2.
    let output = Command::new(binary("loadlab"))
        .args(["compare", "last~1", "last", "--data"])
        .arg(data.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_plan_on_the_lab_and_a_loadlab_run_share_the_store_and_compare() {
    let data = tempfile::tempdir().unwrap();
    let store = data.path().join("store");
    {
        let serve = Serve::start(&store, None, &[]);
        let (status, run) = serve.send("POST", "/runs", json!({"plan": "smoke", "overrides": {"step-duration": "3s"}}));
        assert_eq!(status, 202, "{run}");
        let id = run["id"].as_str().unwrap().to_string();
        let detail = serve.wait_for_end(&id, Duration::from_secs(300));
        let run = &detail["run"];
        assert_eq!(run["state"], "finished", "{run}");
        assert_eq!(run["plan"], "smoke");
        assert!(run["breaking_point"].as_f64().is_some(), "{run}");
        assert!(detail["bottlenecks"]["verdict"].as_str().is_some(), "the lab's Prometheus named a bottleneck");
        assert_eq!(detail["lab"]["mode"], "local");
        let seconds = detail["seconds"].as_array().unwrap();
        assert!(seconds.len() >= 6, "{} seconds", seconds.len());
        assert!(seconds.iter().all(|second| second["p99_uncorrected_ms"].is_number() || second["ok"] == 0));
        let (status, html) = request(serve.address, "GET", &format!("/runs/{id}/report.html"), None);
        assert_eq!(status, 200);
        assert!(html.as_str().unwrap().contains("<svg"), "a report with charts");
        let (status, csv) = request(serve.address, "GET", &format!("/runs/{id}/seconds.csv"), None);
        assert_eq!(status, 200);
        assert!(csv.as_str().unwrap().starts_with("second,step,offered_rate"));
    }
    // `loadlab run --store` records into the same store.
    let out = data.path().join("results");
    let status = Command::new(binary("loadlab"))
        .current_dir(repository())
        .env("RUST_LOG", "warn")
        .args(["run", "--plan", "smoke", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let compare = Command::new(binary("loadlab"))
        .args(["compare", "last~1", "last", "--plan", "smoke", "--data"])
        .arg(&store)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&compare.stdout).into_owned();
    println!("{table}");
    assert!(matches!(compare.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&compare.stderr));
    assert!(table.contains("breaking point"), "{table}");
    assert!(table.contains("method: two-sample Kolmogorov–Smirnov"), "{table}");
    assert!(table.contains("answer: the breaking point is"), "{table}");
    assert!(
        table
            .lines()
            .filter(|line| line.contains("same within noise") || line.contains("B slower") || line.contains("B faster"))
            .count()
            >= 1,
        "{table}"
    );
    // Importing the run directory again changes nothing; the list holds both runs.
    let import = Command::new(binary("loadlab")).arg("import").arg(&out).arg("--data").arg(&store).output().unwrap();
    let printed = String::from_utf8_lossy(&import.stdout).into_owned();
    assert!(import.status.success(), "{printed}");
    assert!(printed.contains("0 imported, 1 already there"), "{printed}");
    let serve = Serve::start(&store, None, &[]);
    let runs = serve.get("/runs?plan=smoke");
    assert_eq!(runs["count"], 2, "{runs}");
    let sources: Vec<&str> =
        runs["runs"].as_array().unwrap().iter().map(|run| run["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["run", "serve"]);
    let comparison = serve.get("/compare?a=last~1&b=last&plan=smoke");
    assert!(comparison["rates"].as_array().is_some_and(|rates| !rates.is_empty()), "{comparison}");
}

#[test]
fn an_old_results_directory_is_imported_with_its_report_and_seconds() {
    // A run directory as `loadgen breakpoint --out` leaves it, against a real server.
    let target = Target::start(free_port(), 4, "5ms");
    let results = tempfile::tempdir().unwrap();
    let run_dir = results.path().join("20260101T000000Z");
    let status = Command::new(binary("loadgen"))
        .args(["breakpoint", "--scenario", "http", "--target", &target.url, "--start-rate", "100"])
        .args(["--step-duration", "1s", "--max-rate", "1600", "--refine", "0", "--listen", "none", "--out"])
        .arg(&run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let store = results.path().join("store");
    let import =
        Command::new(binary("loadlab")).arg("import").arg(results.path()).arg("--data").arg(&store).output().unwrap();
    let printed = String::from_utf8_lossy(&import.stdout).into_owned();
    assert!(import.status.success(), "{printed}{}", String::from_utf8_lossy(&import.stderr));
    assert!(printed.contains("imported 20260101T000000Z"), "{printed}");
    let serve = Serve::start(&store, None, &[]);
    let detail = serve.get("/runs/20260101T000000Z");
    assert_eq!(detail["run"]["state"], "finished");
    assert_eq!(detail["run"]["source"], "import");
    assert_eq!(detail["run"]["outcome"], "held");
    assert!(detail["run"]["breaking_point"].as_f64().is_some());
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(detail["run"]["started_at"].as_str().unwrap()[..19], summary["started_at"].as_str().unwrap()[..19]);
    assert_eq!(
        detail["seconds"].as_array().unwrap().len(),
        std::fs::read_to_string(run_dir.join("seconds.csv")).unwrap().lines().count() - 1
    );
    assert_eq!(detail["files"], json!(["report.html"]));
    let (status, html) = request(serve.address, "GET", "/runs/20260101T000000Z/report.html", None);
    assert_eq!(status, 200);
    assert_eq!(html.as_str().unwrap(), std::fs::read_to_string(run_dir.join("report.html")).unwrap());
}

#[test]
fn the_nixos_module_command_line_is_accepted() {
    // The words nixos/modules/serve.nix gives `loadlab` (nixos/lib/args.nix), with this
    // checkout's files in place of the store paths.
    let output = Command::new("nix-instantiate")
        .current_dir(repository())
        .args(["--eval", "--strict", "--json", "--arg", "topologyFile", "./topology.toml", "-A"])
        .args(["defaults.loadlab-serve", "nixos/lib/args.nix"])
        .output()
        .expect("nix-instantiate (scripts/install-deps installs nix-bin)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let words: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // What `pkgs.formats.toml` makes of the module option's example.
    let experiments = dir.path().join("experiments.toml");
    std::fs::write(
        &experiments,
        "[experiments.nightly]\ndaily = \"02:30\"\nplan = \"default\"\nreference-rate = 1600\ntimeout = \"30m\"\n",
    )
    .unwrap();
    let replaced: Vec<String> = words
        .iter()
        .map(|word| match word.as_str() {
            "experiments.toml" => experiments.display().to_string(),
            "topology.toml" => repository().join("topology.toml").display().to_string(),
            "monitoring" => repository().join("monitoring").display().to_string(),
            "/var/lib/loadlab-serve" => dir.path().join("data").display().to_string(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(replaced[0], "serve");
    let output = Command::new(binary("loadlab")).args(&replaced).arg("--check-config").output().unwrap();
    assert!(output.status.success(), "{replaced:?}: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration is valid: 1 experiments"));
}

#[test]
fn every_experiment_alert_has_for_severity_summary_description_and_a_unit_test() {
    let rules = std::fs::read_to_string(repository().join("monitoring/prometheus/rules/experiments.yaml")).unwrap();
    let tests =
        std::fs::read_to_string(repository().join("monitoring/prometheus/tests/experiments-test.yaml")).unwrap();
    let blocks: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(blocks.len() >= 2);
    for block in blocks {
        let name = block.lines().next().unwrap_or_default();
        for field in ["for:", "severity:", "summary:", "description:"] {
            assert!(block.contains(field), "alert {name} lacks {field}");
        }
        assert!(tests.contains(&format!("alertname: {name}")), "alert {name} has no unit test");
    }
    // The metric the regression alert reads is the one the service exports.
    assert!(rules.contains("loadlab_experiment_regression == 1"));
}
