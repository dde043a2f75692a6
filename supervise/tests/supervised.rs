//! A supervised process as its users meet it, with `sh` as the program: output in
//! the log, each kind of readiness, a start that fails (with the log's tail), stop
//! policies (a process that ignores SIGTERM is killed after its grace), and nothing
//! left running after a drop.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use loadlab_supervise::{Ready, Signal, Spec, Stop, SuperviseError};

fn sh(script: &str) -> Spec {
    Spec::new("/bin/sh").args(["-c", script])
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn output_goes_to_the_log_and_a_line_makes_it_ready() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sh.log");
    let mut process = sh("echo starting; echo oops >&2; sleep 0.2; echo listening on 1234; sleep 30")
        .log(&log)
        .start(&Ready::Line("listening on".into()), Duration::from_secs(10))
        .unwrap();
    assert_eq!(process.output(), "starting\noops\nlistening on 1234\n");
    assert_eq!(process.log(), log);
    let pid = process.pid();
    let stopped = process.stop();
    assert!(!stopped.killed, "sh ends on SIGTERM");
    assert_eq!(stopped.status.signal(), Some(Signal::SIGTERM as i32));
    assert!(!alive(pid));
}

#[test]
fn stdout_can_have_its_own_file_and_lines_can_be_kept_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, data) = (dir.path().join("log"), dir.path().join("data"));
    let mut process = sh("echo '{\"a\":1}'; echo warning >&2").log(&log).stdout_to(&data).spawn().unwrap();
    assert!(process.wait().success());
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "{\"a\":1}\n");
    assert_eq!(process.output(), "warning\n");

    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reports = seen.clone();
    let mut filtered = sh("echo report 1; echo hello; echo report 2")
        .log(&log)
        .on_stdout(move |line| {
            let report = line.strip_prefix("report ");
            reports.lock().unwrap().extend(report.map(str::to_string));
            report.is_none()
        })
        .spawn()
        .unwrap();
    assert!(filtered.wait().success());
    assert_eq!(*seen.lock().unwrap(), ["1", "2"]);
    assert_eq!(filtered.output(), "warning\nhello\n");
}

#[test]
fn a_process_that_exits_at_start_fails_with_the_tail_of_its_log() {
    let error = sh("echo 'bad option --frobnicate' >&2; exit 3")
        .name("frobnicator")
        .start(&Ready::Tcp("127.0.0.1:9".parse().unwrap()), Duration::from_secs(10))
        .unwrap_err();
    let SuperviseError::Exited { name, status, output } = &error else { panic!("{error}") };
    assert_eq!(name, "frobnicator");
    assert_eq!(status, "exit status: 3");
    assert!(output.ends_with(":\nbad option --frobnicate"), "{output}");
    assert!(error.to_string().starts_with("frobnicator exited during start-up (exit status: 3); log "), "{error}");
}

#[test]
fn a_process_that_never_gets_ready_is_stopped_and_says_so() {
    let port = loadlab_supervise::ports::free_loopback_port().unwrap();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let error = sh("echo still thinking; sleep 30")
        .name("slow")
        .start(&Ready::http(address, "/ready"), Duration::from_millis(300))
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("slow did not become ready (GET http://{address}/ready answering 200) within 300ms")),
        "{text}"
    );
    assert!(text.ends_with(":\nstill thinking"), "{text}");
}

#[test]
fn sigterm_ignored_means_sigkill_after_the_grace() {
    let mut stubborn = sh("trap '' TERM; echo trapped; sleep 30").spawn().unwrap();
    stubborn.wait_ready(&Ready::Line("trapped".into()), Duration::from_secs(10)).unwrap();
    let stopped = stubborn.stop_with(Stop::term(Duration::from_millis(200)));
    assert!(stopped.killed);
    assert_eq!(stopped.status.signal(), Some(Signal::SIGKILL as i32));
    assert!(!stubborn.signal(Signal::SIGTERM), "a reaped process is never signalled again");
}

#[test]
fn dropping_stops_it() {
    let process = sh("sleep 30").stop(Stop::kill()).spawn().unwrap();
    let pid = process.pid();
    assert!(alive(pid));
    drop(process);
    assert!(!alive(pid));
}

#[tokio::test]
async fn the_async_surface_waits_without_blocking_the_runtime() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    // The port opens a while after the process started (a listener of ours: the
    // probe and the waiting are under test here, not a server).
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::net::TcpListener::bind(address).await.unwrap()
    });
    let mut process = sh("sleep 30").spawn().unwrap();
    process.wait_ready_async(&Ready::Tcp(address), Duration::from_secs(10)).await.unwrap();
    let _listener = late.await.unwrap();
    let stopped = process.stop_async(Stop::term(Duration::from_secs(5))).await;
    assert!(!stopped.killed);
    assert!(process.wait_timeout_async(Duration::ZERO).await.is_some());
}
