//! The engine: sends each arrival of a schedule when it is due and collects what
//! happened.
//!
//! Two tasks. The dispatcher walks the schedule, sleeps until each request is due,
//! and starts it, unless `max_in_flight` requests are already running, in which case
//! the request is counted as dropped (never queued: a queue would hide the overload).
//! Each request reports to the collector, which files it under its step and its
//! second. Latency is measured from the due time (corrected) and from the send
//! (uncorrected); how late the dispatcher itself was is the schedule lag.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics as names;
use crate::scenario::Scenario;
use crate::schedule::{Schedule, Segment};
use crate::stats::{Outcome, Stats};

/// How a run is carried out, whatever its schedule.
#[derive(Clone)]
pub struct Engine {
    pub scenario: Arc<Scenario>,
    pub max_in_flight: usize,
    pub seed: u64,
    pub segment: Segment,
}

/// One second of a run, for the live line and the CSV.
#[derive(Clone, Debug, Serialize)]
pub struct SecondRow {
    /// Seconds since the run started.
    pub second: u64,
    pub step: String,
    pub offered_rate: f64,
    pub sent: u64,
    pub completed: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What one schedule (a step) produced.
pub struct StepOutcome {
    pub stats: Stats,
    pub seconds: Vec<SecondRow>,
    /// Wall time from the first due request to the last answer.
    pub elapsed: Duration,
    pub interrupted: bool,
}

struct Completed {
    request: &'static str,
    outcome: Outcome,
    due: Instant,
    sent: Instant,
    finished: Instant,
}

impl Engine {
    /// Runs `schedule`, labelled `step`, calling `on_second` once a second with the
    /// second that just ended. Stops early (marked interrupted) when `stop` fires.
    /// `run_start` anchors the second numbers across steps.
    pub async fn run(
        &self,
        schedule: &Schedule,
        step: &str,
        run_start: Instant,
        stop: &CancellationToken,
        on_second: &(dyn Fn(&SecondRow) + Sync),
    ) -> StepOutcome {
        let (results, mut completed) = mpsc::unbounded_channel::<Completed>();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut stats = Stats::default();
        let mut second = Stats::default();
        let mut second_sent = 0u64;
        let mut seconds = Vec::new();
        let start = Instant::now();
        let scenario_name = self.scenario.name();
        let segment_label = self.segment.to_string();
        metrics::gauge!(names::CURRENT_STEP_RATE, "segment" => segment_label.clone())
            .set(schedule.rate_at(Duration::ZERO) * segment_share(self.segment));

        let mut arrivals = schedule.arrivals(self.segment).peekable();
        let mut next_second = start + Duration::from_secs(1);
        let mut interrupted = false;
        let close_second = |second: &mut Stats, sent: u64, at: Instant, seconds: &mut Vec<SecondRow>| {
            let row = SecondRow {
                second: at.duration_since(run_start).as_secs(),
                step: step.to_string(),
                offered_rate: schedule.rate_at(at.duration_since(start).saturating_sub(Duration::from_millis(500)))
                    * segment_share(self.segment),
                sent,
                completed: second.completed(),
                ok: second.completed() - second.errors(),
                errors: second.errors(),
                dropped: second.dropped,
                p50_ms: second.quantile(0.5).map(|d| d.as_secs_f64() * 1000.0),
                p99_ms: second.quantile(0.99).map(|d| d.as_secs_f64() * 1000.0),
            };
            on_second(&row);
            seconds.push(row);
            *second = Stats::default();
        };

        loop {
            let due = arrivals.peek().map(|(_, offset)| start + *offset);
            let dispatching = due.is_some();
            if !dispatching && in_flight.load(Ordering::Relaxed) == 0 && completed.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = stop.cancelled(), if !interrupted => {
                    interrupted = true;
                    // Stop sending; what is in flight may still finish.
                    while arrivals.next().is_some() {}
                }
                Some(done) = completed.recv() => {
                    let corrected = done.finished.duration_since(done.due);
                    let uncorrected = done.finished.duration_since(done.sent);
                    let outcome_label = done.outcome.label();
                    metrics::counter!(names::REQUESTS, "scenario" => scenario_name, "request" => done.request,
                        "outcome" => outcome_label.clone(), "segment" => segment_label.clone()).increment(1);
                    metrics::histogram!(names::LATENCY, "scenario" => scenario_name, "request" => done.request,
                        "outcome" => outcome_label, "segment" => segment_label.clone()).record(corrected.as_secs_f64());
                    stats.record(done.request, done.outcome.clone(), corrected, uncorrected);
                    second.record(done.request, done.outcome, corrected, uncorrected);
                }
                _ = tokio::time::sleep_until(next_second) => {
                    close_second(&mut second, second_sent, next_second, &mut seconds);
                    second_sent = 0;
                    next_second += Duration::from_secs(1);
                }
                _ = tokio::time::sleep_until(due.unwrap_or(next_second)), if dispatching => {
                    let (k, _) = arrivals.next().expect("peeked");
                    let due = due.expect("dispatching");
                    let now = Instant::now();
                    let lag = now.duration_since(due);
                    stats.record_lag(lag);
                    metrics::histogram!(names::SCHEDULE_LAG, "segment" => segment_label.clone()).record(lag.as_secs_f64());
                    stats.offered += 1;
                    second.offered += 1;
                    if in_flight.load(Ordering::Relaxed) >= self.max_in_flight {
                        stats.dropped += 1;
                        second.dropped += 1;
                        metrics::counter!(names::DROPPED, "scenario" => scenario_name, "segment" => segment_label.clone()).increment(1);
                        continue;
                    }
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    metrics::gauge!(names::IN_FLIGHT, "segment" => segment_label.clone()).increment(1.0);
                    second_sent += 1;
                    let (scenario, results, in_flight, seed) = (self.scenario.clone(), results.clone(), in_flight.clone(), self.seed);
                    let segment_label = segment_label.clone();
                    tokio::spawn(async move {
                        let (request, outcome) = scenario.execute(k, seed).await;
                        let _ = results.send(Completed { request, outcome, due, sent: now, finished: Instant::now() });
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        metrics::gauge!(names::IN_FLIGHT, "segment" => segment_label).decrement(1.0);
                    });
                }
            }
        }
        let end = Instant::now();
        if second.offered > 0 || second.completed() > 0 {
            close_second(&mut second, second_sent, end, &mut seconds);
        }
        StepOutcome { stats, seconds, elapsed: end.duration_since(start), interrupted }
    }
}

/// The fraction of the schedule a segment sends.
pub fn segment_share(segment: Segment) -> f64 {
    1.0 / f64::from(segment.count)
}
