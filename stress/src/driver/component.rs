//! A running component: its process, its captured output, and its memory samples.
//!
//! stderr goes straight to `<working-dir>/<name>.log`; stdout is read line by line:
//! heap reports (`grpc-stress-heap LIVE PEAK`) update the live-heap figure, anything
//! else (a client's summary) is appended to the same log. RSS is read from
//! `/proc/<pid>/statm` when the driver samples.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::matrix::ComponentSpec;
use crate::heap::REPORT_PREFIX;

/// One memory sample.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub at: f64,
    pub heap_bytes: u64,
    pub rss_bytes: u64,
}

pub struct Component {
    pub spec: ComponentSpec,
    pub log_path: PathBuf,
    child: Option<Child>,
    /// Latest live heap reported on stdout by the current process.
    live_heap: Arc<AtomicU64>,
    pub samples: Vec<Sample>,
    pub restarts: u32,
    pub peak_heap: u64,
    pub peak_rss: u64,
    /// When an unstable component is next stopped.
    pub next_kill: Option<Instant>,
    /// When a stopped unstable component starts again.
    pub restart_at: Option<Instant>,
    /// When the driver sent SIGTERM to the current process (an exit after this is
    /// expected).
    pub stopping_since: Option<Instant>,
    /// Exits not asked for, with their status.
    pub unexpected_exits: Vec<String>,
}

impl Component {
    pub fn new(spec: ComponentSpec, working_dir: &Path) -> Self {
        let log_path = working_dir.join(format!("{}.log", spec.name));
        Self {
            spec,
            log_path,
            child: None,
            live_heap: Arc::default(),
            samples: Vec::new(),
            restarts: 0,
            peak_heap: 0,
            peak_rss: 0,
            next_kill: None,
            restart_at: None,
            stopping_since: None,
            unexpected_exits: Vec::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the process: `binary ARGS --report-heap 100ms --max-heap CEILING`, at a
    /// lower priority than the driver so the driver's sampling stays on time.
    pub fn start(&mut self, binary: &Path, extra_args: &[String], verbose: bool) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        let mut command = Command::new("nice");
        command
            .args(["-n", "5"])
            .arg(binary)
            .args(&self.spec.args)
            .args(["--report-heap", "100ms", "--max-heap", &self.spec.ceiling.to_string()])
            .args(extra_args)
            .env("RUST_LOG", if verbose { "debug" } else { "warn" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let live_heap = Arc::new(AtomicU64::new(0));
        self.live_heap = live_heap.clone();
        let log_path = self.log_path.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut log = tokio::fs::OpenOptions::new().create(true).append(true).open(&log_path).await.ok();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(report) = line.strip_prefix(REPORT_PREFIX) {
                    if let Some(live) = report.split_whitespace().next().and_then(|live| live.parse().ok()) {
                        live_heap.store(live, Ordering::Relaxed);
                    }
                } else if let Some(log) = log.as_mut() {
                    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
                }
            }
        });
        self.child = Some(child);
        Ok(())
    }

    /// Takes a memory sample at `at` seconds, returning it.
    pub fn sample(&mut self, at: f64, page_size: u64) -> Option<Sample> {
        let pid = self.pid()?;
        let rss_pages: u64 = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse().ok())?;
        let sample =
            Sample { at, heap_bytes: self.live_heap.load(Ordering::Relaxed), rss_bytes: rss_pages * page_size };
        self.peak_heap = self.peak_heap.max(sample.heap_bytes);
        self.peak_rss = self.peak_rss.max(sample.rss_bytes);
        self.samples.push(sample);
        Some(sample)
    }

    /// The exit status, if the process has exited (and forgets the process).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Waits up to `grace` for the process to exit, then kills it.
    pub async fn wait_exit(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = child.kill().await;
                child.wait().await.ok()
            }
        }
    }

    /// Sends SIGKILL without waiting; [`exited`](Self::exited) reaps it later.
    pub fn force_kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }

    /// Kills the process at once (a ceiling breach).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}
