//! A running component: its supervised process, its memory samples and its chaos
//! schedule.
//!
//! Its output goes to `<working-dir>/<name>.log`, except the heap reports on stdout
//! (`grpc-stress-heap LIVE PEAK`), which update the live-heap figure instead. RSS is
//! read from `/proc/<pid>/statm` by the driver, off the async runtime
//! ([`rss_bytes`]).

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loadlab_supervise::{Place, Signal, Spec, Stop, SuperviseError, Supervised};
use serde::Serialize;

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

/// One process of the matrix across its restarts: what the driver knows about it.
pub struct Component {
    pub spec: ComponentSpec,
    pub log_path: PathBuf,
    process: Option<Supervised>,
    /// Latest live heap reported on stdout by the current process (written by its
    /// output thread, read by the driver).
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
            process: None,
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
        self.process.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Supervised::pid)
    }

    /// Starts the process: `binary ARGS --report-heap 100ms --max-heap CEILING`, at a
    /// lower priority than the driver so the driver's sampling stays on time, killed
    /// at once if the driver drops it.
    pub fn start(&mut self, binary: &Path, extra_args: &[String], verbose: bool) -> Result<(), SuperviseError> {
        let live_heap = Arc::new(AtomicU64::new(0));
        self.live_heap = live_heap.clone();
        let process = Spec::new(binary)
            .name(&self.spec.name)
            .args(&self.spec.args)
            .args(["--report-heap", "100ms", "--max-heap", &self.spec.ceiling.to_string()])
            .args(extra_args)
            .env("RUST_LOG", if verbose { "debug" } else { "warn" })
            .place(Place { nice: Some(5), ..Place::default() })
            .log(&self.log_path)
            .on_stdout(move |line| {
                let Some(report) = line.strip_prefix(REPORT_PREFIX) else { return true };
                if let Some(live) = report.split_whitespace().next().and_then(|live| live.parse().ok()) {
                    live_heap.store(live, Ordering::Relaxed);
                }
                false
            })
            .stop(Stop::kill())
            .spawn()?;
        self.process = Some(process);
        Ok(())
    }

    /// Waits until `ready` holds for the current process (see
    /// [`Supervised::wait_ready_async`]).
    pub async fn wait_ready(
        &mut self,
        ready: &loadlab_supervise::Ready,
        limit: Duration,
    ) -> Result<(), SuperviseError> {
        match self.process.as_mut() {
            Some(process) => process.wait_ready_async(ready, limit).await,
            None => Ok(()),
        }
    }

    /// Files a memory sample at `at` seconds (RSS read by the caller), returning it.
    pub fn record(&mut self, at: f64, rss_bytes: u64) -> Sample {
        let sample = Sample { at, heap_bytes: self.live_heap.load(Ordering::Relaxed), rss_bytes };
        self.peak_heap = self.peak_heap.max(sample.heap_bytes);
        self.peak_rss = self.peak_rss.max(sample.rss_bytes);
        self.samples.push(sample);
        sample
    }

    /// The exit status, if the process has exited (and forgets the process).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.process.as_mut()?.try_wait()?;
        self.process = None;
        Some(status)
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.signal(Signal::SIGTERM);
        }
    }

    /// Waits up to `grace` for the process to exit (it was told already), then kills it.
    pub async fn wait_exit(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut process = self.process.take()?;
        Some(process.stop_async(Stop::wait(grace)).await.status)
    }

    /// Sends SIGKILL without waiting; [`exited`](Self::exited) reaps it later.
    pub fn force_kill(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.signal(Signal::SIGKILL);
        }
    }

    /// Kills the process at once (a ceiling breach).
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop_async(Stop::kill()).await;
        }
    }
}

/// The resident set of `pid`, from `/proc/<pid>/statm` (blocking: call it off the
/// runtime).
pub fn rss_bytes(pid: u32, page_size: u64) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size)
}
