//! A running process we own: it is reaped by us and only by us, so its pid is never
//! signalled after the kernel could have given it to another process, and it never
//! outlives its owner's interest — dropping it stops it with its policy.
//!
//! Everything here polls (`waitpid(WNOHANG)`) instead of blocking in `wait`, so the
//! same type serves blocking callers (the lab, tests) and async ones (the stress
//! driver: the `_async` methods sleep on the runtime and probe on its blocking pool).

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::error::log_excerpt;
use crate::ready::POLL;
use crate::{Place, Ready, Stop, Stopped, SuperviseError};

/// How long a SIGKILLed process may take to be reaped before we give up waiting.
const KILL_LIMIT: Duration = Duration::from_secs(10);

/// A process started from a [`crate::Spec`].
pub struct Supervised {
    name: String,
    child: Child,
    /// Set once reaped: from then on the pid is not ours and is never signalled.
    status: Option<ExitStatus>,
    place: Place,
    log: PathBuf,
    stdout: Option<PathBuf>,
    /// Threads copying piped output into the log; joined once the process is gone.
    copiers: Vec<JoinHandle<()>>,
    stop: Stop,
    /// The temporary directory of a log nobody asked to keep.
    _log_dir: Option<TempDir>,
}

impl std::fmt::Debug for Supervised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("status", &self.status)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Supervised {
    #[allow(clippy::too_many_arguments)] // the parts of a Spec, handed over once
    pub(crate) fn new(
        name: String,
        child: Child,
        place: Place,
        log: PathBuf,
        stdout: Option<PathBuf>,
        copiers: Vec<JoinHandle<()>>,
        stop: Stop,
        log_dir: Option<TempDir>,
    ) -> Self {
        Self { name, child, status: None, place, log, stdout, copiers, stop, _log_dir: log_dir }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log (stdout too, unless it has its own file).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Everything it has written to its log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` without waiting; false once it has exited.
    pub fn signal(&mut self, signal: Signal) -> bool {
        if self.try_wait().is_some() {
            return false;
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).is_ok()
    }

    /// Its exit status once it has exited (and is then reaped); never blocks.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
            // Its end of the pipes is closed: the copiers finish the last lines.
            for copier in self.copiers.drain(..) {
                let _ = copier.join();
            }
        }
        self.status
    }

    /// Waits for it to exit, however long that takes.
    pub fn wait(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// [`Supervised::wait_timeout`] for async callers.
    pub async fn wait_timeout_async(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `ready` holds (probed from its place). Fails, with the tail of its
    /// log, when it exits first or `limit` passes.
    pub fn wait_ready(&mut self, ready: &Ready, limit: Duration) -> Result<(), SuperviseError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(failure) = self.start_failure(ready, limit, deadline) {
                return Err(failure);
            }
            let outputs = self.outputs();
            let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
            if ready.check(&self.place, &outputs) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }

    /// [`Supervised::wait_ready`] for async callers: the probes run on the blocking
    /// pool, the waiting on the runtime. Dropping the future abandons the wait.
    pub async fn wait_ready_async(&mut self, ready: &Ready, limit: Duration) -> Result<(), SuperviseError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(failure) = self.start_failure(ready, limit, deadline) {
                return Err(failure);
            }
            if ready.check_async(&self.place, &self.outputs()).await {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Why a start has failed already, if it has: exited, or out of time (then it is
    /// stopped with its policy).
    fn start_failure(&mut self, ready: &Ready, limit: Duration, deadline: Instant) -> Option<SuperviseError> {
        if let Some(status) = self.try_wait() {
            let output = log_excerpt(&self.log);
            return Some(SuperviseError::Exited { name: self.name.clone(), status: status.to_string(), output });
        }
        if Instant::now() < deadline {
            return None;
        }
        self.stop();
        Some(ready.not_ready(&self.name, limit, log_excerpt(&self.log)))
    }

    fn outputs(&self) -> Vec<PathBuf> {
        std::iter::once(self.log.clone()).chain(self.stdout.clone()).collect()
    }

    /// Stops it with its own policy.
    pub fn stop(&mut self) -> Stopped {
        self.stop_with(self.stop)
    }

    /// Stops it: `stop`'s signal, its grace period, then SIGKILL; always reaped.
    pub fn stop_with(&mut self, stop: Stop) -> Stopped {
        if let Some(signal) = stop.signal {
            self.signal(signal);
        }
        if let Some(status) = self.wait_timeout(stop.grace) {
            return Stopped { status, killed: false };
        }
        self.signal(Signal::SIGKILL);
        let status = self.wait_timeout(KILL_LIMIT).unwrap_or_else(|| self.wait());
        Stopped { status, killed: true }
    }

    /// [`Supervised::stop_with`] for async callers.
    pub async fn stop_async(&mut self, stop: Stop) -> Stopped {
        if let Some(signal) = stop.signal {
            self.signal(signal);
        }
        if let Some(status) = self.wait_timeout_async(stop.grace).await {
            return Stopped { status, killed: false };
        }
        self.signal(Signal::SIGKILL);
        loop {
            if let Some(status) = self.wait_timeout_async(KILL_LIMIT).await {
                return Stopped { status, killed: true };
            }
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.stop();
        }
    }
}
