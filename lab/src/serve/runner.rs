//! The service's plan runs: queued, then run one at a time (the lab has one set of
//! servers), each recorded as it goes — its state at once, every second and step as
//! they end, its report and verdict at the end — so a service killed half-way
//! leaves a run that is kept and marked incomplete at the next start.
//!
//! A stop request or an experiment's timeout cancels the run's token: loadgen ends
//! the current step (every agent with it) and reports what ran; the lab brought up
//! for the run is torn down; if loadgen has not returned within its grace and half a
//! minute more, its task is aborted, which drops every connection it held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadgen::run::LiveEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lab::{self, LabConfig};
use super::launch::{self, Resolved, RunSpec, SpecError};
use super::live::{Event, Live};
use super::store::{Finish, NewRun, Outcome, Run, RunState, Store, StoreError};
use crate::topology::Topology;

/// Why a run was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Stopped,
    Timeout,
}

/// Runs queued or running: their token, and why they were cancelled (when they were).
type Active = HashMap<String, (CancellationToken, Option<Reason>)>;

/// A queued run.
struct Job {
    run_id: String,
    spec: RunSpec,
    resolved: Resolved,
    timeout: Option<Duration>,
    cancel: CancellationToken,
}

/// Everything the API and the scheduler share. Cheap to clone.
#[derive(Clone)]
pub struct Core {
    pub store: Store,
    pub live: Arc<Live>,
    pub lab: Arc<LabConfig>,
    /// The service's topology (plans are resolved against it).
    pub topology: Option<Arc<(Topology, String)>>,
    queue: mpsc::UnboundedSender<Job>,
    active: Arc<Mutex<Active>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("store", &self.store).finish()
    }
}

/// Why a run could not be submitted or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new run id: the time to the millisecond and four random hex digits, so ids
/// sort by time and two runs in one millisecond still differ.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%S%.3fZ").to_string().replace('.', ""), rand::random::<u16>())
}

impl Core {
    /// The core and its worker (run it until the service stops; it ends when `stop`
    /// is cancelled, after cancelling the run in progress).
    pub fn new(
        store: Store,
        lab: LabConfig,
        topology: Option<(Topology, String)>,
        stop: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let (queue, jobs) = mpsc::unbounded_channel();
        let core = Self {
            store,
            live: Arc::new(Live::default()),
            lab: Arc::new(lab),
            topology: topology.map(Arc::new),
            queue,
            active: Arc::default(),
        };
        let worker = core.clone().work(jobs, stop);
        (core, worker)
    }

    /// Checks `spec`, records the run (created) and queues it.
    pub async fn submit(
        &self,
        spec: RunSpec,
        experiment: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Run, SubmitError> {
        let resolved = spec.resolve(self.topology.as_deref())?;
        let run_id = new_run_id();
        let new = NewRun {
            id: run_id.clone(),
            kind: "plan",
            source: "serve",
            state: Some(RunState::Created),
            plan: resolved.plan.clone(),
            experiment: experiment.map(str::to_string),
            description: resolved
                .plan
                .as_ref()
                .and_then(|plan| resolved.topology.as_ref()?.0.plans.get(plan).map(|plan| plan.description.clone())),
            target: spec.target.clone(),
            scenario: None,
            reference_rate: spec.reference_rate,
            request: Some(serde_json::json!({
                "spec": &spec,
                "options": launch::flags_json(&resolved.flags),
                "timeout_seconds": timeout.map(|timeout| timeout.as_secs_f64()),
            })),
            topology: resolved.topology.as_ref().map(|(_, text)| text.clone()),
        };
        let run = self.store.create(new).await?;
        let cancel = CancellationToken::new();
        self.lock().insert(run_id.clone(), (cancel.clone(), None));
        let job = Job { run_id, spec, resolved, timeout, cancel };
        if self.queue.send(job).is_err() {
            // The worker has stopped: the service is shutting down.
            self.lock().remove(&run.id);
            let finish = Finish {
                state: Some(RunState::Cancelled),
                outcome: Some(Outcome::Cancelled),
                verdict: Some("cancelled: the service is stopping".into()),
                ..Finish::default()
            };
            return Ok(self.store.finish(&run.id, finish).await?);
        }
        self.live.state(&run);
        Ok(run)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cancels a queued or running plan. A run that has ended is a conflict.
    pub async fn stop(&self, id: &str, reason: Reason) -> Result<Run, StoreError> {
        let run = self.store.get(id).await?;
        if run.state.is_final() {
            return Err(StoreError::Conflict(format!("run `{id}` has ended ({})", run.state.name())));
        }
        let found = {
            let mut active = self.lock();
            active.get_mut(id).map(|(token, why)| {
                why.get_or_insert(reason);
                token.clone()
            })
        };
        match found {
            // Queued: cancelled at once (the worker skips it when it comes to it).
            Some(token) if run.state == RunState::Created => {
                token.cancel();
                self.end(id, cancelled(Some(reason), "before it started")).await
            }
            Some(token) => {
                token.cancel();
                Ok(run)
            }
            None if run.kind == "plan" => Err(StoreError::Conflict(format!(
                "run `{id}` is {} but not run by this service (a `loadlab run`, or a service that died)",
                run.state.name()
            ))),
            None => Err(StoreError::Conflict(format!("`{id}` is a test: finish it with PUT /tests/{id}/finish"))),
        }
    }

    /// Whether a run is queued or running here.
    pub fn is_active(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    async fn work(self, mut jobs: mpsc::UnboundedReceiver<Job>, stop: CancellationToken) {
        loop {
            let job = tokio::select! {
                job = jobs.recv() => job,
                () = stop.cancelled() => None,
            };
            let Some(job) = job else { break };
            // A service stopping cancels the run in progress (recorded as cancelled).
            let cancel = job.cancel.clone();
            let id = job.run_id.clone();
            let forward = stop.clone();
            let watcher = tokio::spawn(async move {
                forward.cancelled().await;
                cancel.cancel();
            });
            self.run_job(job).await;
            watcher.abort();
            self.lock().remove(&id);
        }
        // Runs still queued: cancelled, not left waiting forever.
        jobs.close();
        while let Ok(job) = jobs.try_recv() {
            let _ = self.end(&job.run_id, cancelled(Some(Reason::Stopped), "the service stopped")).await;
            self.lock().remove(&job.run_id);
        }
    }

    fn reason(&self, id: &str) -> Option<Reason> {
        self.lock().get(id).and_then(|(_, reason)| *reason)
    }

    async fn end(&self, id: &str, finish: Finish) -> Result<Run, StoreError> {
        let run = self.store.finish(id, finish).await?;
        self.live.state(&run);
        Ok(run)
    }

    async fn run_job(&self, job: Job) {
        let Job { run_id, spec, resolved, timeout, cancel } = job;
        if cancel.is_cancelled() {
            if self.store.get(&run_id).await.is_ok_and(|run| !run.state.is_final()) {
                let _ = self.end(&run_id, cancelled(self.reason(&run_id), "before it started")).await;
            }
            return;
        }
        match self.store.transition(&run_id, &[RunState::Created], RunState::Running).await {
            Ok(run) => self.live.state(&run),
            Err(error) => {
                tracing::error!(run = run_id, "cannot start: {error}");
                return;
            }
        }
        // The timeout counts from the start: bringing the lab up is part of the run.
        let timer = timeout.map(|timeout| {
            let (cancel, active, id) = (cancel.clone(), self.active.clone(), run_id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Some((_, why)) = active.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get_mut(&id) {
                    why.get_or_insert(Reason::Timeout);
                }
                tracing::warn!(run = id, "timed out after {timeout:?}: cancelling");
                cancel.cancel();
            })
        });
        let finish = self.execute(&run_id, &spec, &resolved, &cancel).await;
        if let Some(timer) = timer {
            timer.abort();
        }
        if let Err(error) = self.end(&run_id, finish).await {
            tracing::error!(run = run_id, "recording the end: {error}");
        }
    }

    /// Brings the lab up, runs loadgen, tears the lab down; how it ended.
    async fn execute(&self, run_id: &str, spec: &RunSpec, resolved: &Resolved, cancel: &CancellationToken) -> Finish {
        let lab = self.lab.clone();
        let (resolved_copy, id) = (resolved.clone(), run_id.to_string());
        let (target, prometheus) = (spec.target.clone(), spec.prometheus.clone());
        let prepared = tokio::task::spawn_blocking(move || {
            lab::prepare(&lab, &resolved_copy, target.as_deref(), prometheus.as_deref(), &id)
        })
        .await;
        let mut prepared = match prepared {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(error)) => return failed(format!("{error:#}")),
            Err(panic) => return failed(format!("preparing the lab panicked: {panic}")),
        };
        let lab_json = prepared.lab.clone();
        let outcome = if cancel.is_cancelled() {
            Err("cancelled while the lab came up".to_string())
        } else {
            let words = launch::words(&resolved.flags, &prepared.where_, run_id);
            tracing::info!(run = run_id, "running {}", words.join(" "));
            self.run_loadgen(run_id, words, cancel, &mut prepared).await
        };
        let _ = tokio::task::spawn_blocking(move || prepared.stop()).await;
        let reason = self.reason(run_id).filter(|_| cancel.is_cancelled());
        let mut finish = match outcome {
            Ok((report, code)) => {
                let mut finish = Finish {
                    state: Some(RunState::Finished),
                    outcome: Some(Outcome::of_exit_code(code)),
                    verdict: Some(report.verdict.clone()),
                    exit_code: Some(code),
                    report: Some(report),
                    ..Finish::default()
                };
                if let Some(reason) = reason {
                    let cancelled = cancelled(Some(reason), "");
                    finish.state = cancelled.state;
                    finish.outcome = cancelled.outcome;
                    finish.verdict = Some(format!(
                        "{}: {}",
                        cancelled.verdict.unwrap_or_default(),
                        finish.verdict.unwrap_or_default()
                    ));
                }
                finish
            }
            Err(error) if reason.is_some() => Finish { error: Some(error), ..cancelled(reason, "") },
            Err(error) => failed(error),
        };
        finish.lab = Some(lab_json);
        finish
    }

    /// Runs loadgen in its own task, recording what it sends; cancels it when a
    /// component of the lab dies; aborts it if it outlives a cancel by far.
    async fn run_loadgen(
        &self,
        run_id: &str,
        words: Vec<String>,
        cancel: &CancellationToken,
        prepared: &mut lab::Prepared,
    ) -> Result<(loadgen::output::report::Report, u8), String> {
        let (events, mut received) = mpsc::unbounded_channel::<LiveEvent>();
        let stop = cancel.child_token();
        let mut task = tokio::spawn({
            let stop = stop.clone();
            async move { launch::execute(&words, stop, events).await }
        });
        let (store, live, id) = (self.store.clone(), self.live.clone(), run_id.to_string());
        let recorder = tokio::spawn(async move {
            let (mut position, mut steps) = (0, 0);
            while let Some(event) = received.recv().await {
                match event {
                    LiveEvent::Second { row, .. } => {
                        if let Err(error) = store.add_second(&id, position, &row).await {
                            tracing::error!(run = id, "recording a second: {error}");
                        }
                        live.send(&id, Event::Second { position, row });
                        position += 1;
                    }
                    LiveEvent::Step(step) => {
                        if let Err(error) = store.add_step(&id, &step).await {
                            tracing::error!(run = id, "recording a step: {error}");
                        }
                        live.send(&id, Event::Step { position: steps, step: Box::new(step) });
                        steps += 1;
                    }
                }
            }
        });
        // The bottleneck signals, read live while loadgen runs (when the lab has a
        // Prometheus and a signal list).
        let sampling = stop.child_token();
        let sampler = match (&prepared.where_.prometheus, &prepared.where_.bottlenecks) {
            (Some(prometheus), Some(file)) => Some(tokio::spawn(super::signals::sample(
                run_id.to_string(),
                prometheus.clone(),
                file.clone(),
                self.store.clone(),
                self.live.clone(),
                sampling.clone(),
            ))),
            _ => None,
        };
        let mut check = tokio::time::interval(Duration::from_millis(500));
        let mut deadline: Option<tokio::time::Instant> = None;
        let outcome = loop {
            tokio::select! {
                joined = &mut task => break joined.map_err(|error| format!("loadgen's task failed: {error}")).and_then(|outcome| outcome),
                _ = check.tick() => {
                    if let Some((name, status)) = prepared.exited() && !stop.is_cancelled() {
                        tracing::error!(run = run_id, "{name} exited ({status}) during the run: stopping it");
                        stop.cancel();
                    }
                    if stop.is_cancelled() && deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + Duration::from_secs(35));
                    }
                    if deadline.is_some_and(|deadline| tokio::time::Instant::now() > deadline) {
                        task.abort();
                        break Err("loadgen did not stop within 35 s of the cancel: aborted".into());
                    }
                }
            }
        };
        sampling.cancel();
        if let Some(sampler) = sampler {
            let _ = sampler.await;
        }
        // The sender went with the task: the recorder drains what is left and ends.
        let _ = recorder.await;
        outcome
    }
}

fn failed(error: String) -> Finish {
    Finish {
        state: Some(RunState::Failed),
        outcome: Some(Outcome::Failed),
        verdict: Some("failed: the run could not start".into()),
        error: Some(error),
        ..Finish::default()
    }
}

fn cancelled(reason: Option<Reason>, detail: &str) -> Finish {
    let (outcome, words) = match reason {
        Some(Reason::Timeout) => (Outcome::Timeout, "cancelled: its experiment's timeout passed"),
        _ => (Outcome::Cancelled, "cancelled on request"),
    };
    Finish {
        state: Some(RunState::Cancelled),
        outcome: Some(outcome),
        verdict: Some(if detail.is_empty() { words.to_string() } else { format!("{words} ({detail})") }),
        ..Finish::default()
    }
}
