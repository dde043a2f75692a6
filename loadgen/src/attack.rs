//! The attack loop: the one place requests are issued, whatever the load model.
//!
//! It asks the [`Pacer`] what is due, issues each due request, and collects every
//! answer into the [`Collector`]. A request due while `--max-in-flight` are running is
//! dropped, never queued (a queue would hide the overload). Latency runs from the due
//! time (corrected for coordinated omission) and from the send; how late the loop
//! itself was is the schedule lag.
//!
//! Requests run inside the loop's own task, as a set of futures it polls
//! ([`FuturesUnordered`]), not as a task each: a request's answer reaches the loop
//! with no hand-over between tasks, and the loop files every answer that is in when
//! it wakes. (A task per request, with a channel back, cost about 1 µs a request, a
//! third of the generator's own time against nginx.) One loop thus uses one core;
//! more cores take more instances, each with its segment of the schedule (agents). A
//! request that panics is caught and answers `panic`, so the count of requests in
//! flight cannot drift.
//!
//! Every step ends within its schedule plus the grace period: arrivals not issued a
//! second after the schedule's end are dropped (the generator fell behind), and
//! requests still running when the grace period is over are counted `unfinished`. A
//! stop (SIGINT/SIGTERM) ends issuing at once and waits half the grace period.

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collector::{Collector, SecondRow};
use crate::http::Sender;
use crate::meter::Meter;
use crate::outcome::{ErrorKind, Outcome};
use crate::pacer::{Next, Pace, Pacer};
use crate::scenario::{Scenario, Work};
use crate::schedule::Segment;
use crate::stats::Stats;

/// How long after the schedule's end late arrivals may still be issued.
const LATE_ISSUE: Duration = Duration::from_secs(1);
/// Most requests issued (or answers filed) in one turn of the loop before it looks at
/// its other duties again (the stop, the second's end).
const BATCH: usize = 256;

/// Called once a second with the row and the second's statistics.
pub type OnSecond<'a> = dyn FnMut(&SecondRow, &Stats) + Send + 'a;

/// Called as each step ends, with its verdict.
pub type OnStep<'a> = dyn FnMut(&crate::profile::Step) + Send + 'a;

/// What one step produced.
pub struct StepOutcome {
    pub stats: Stats,
    pub seconds: Vec<SecondRow>,
    /// How long the step issued requests: its planned length, or less when stopped.
    pub ran: Duration,
    /// From the first due request to the last answer.
    pub elapsed: Duration,
    pub interrupted: bool,
    /// With agents: each agent's share of the step (empty when run locally).
    pub agents: Vec<AgentShare>,
    /// An agent was lost during the step: its figures are partial.
    pub degraded: bool,
}

/// One agent's part of a step, so a generator that fell behind is visible.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AgentShare {
    pub agent: String,
    /// Its segment of the schedule, i/n.
    pub segment: String,
    pub offered: u64,
    pub completed: u64,
    pub errors: u64,
    pub dropped: u64,
    pub achieved_rate: f64,
    /// p99 of its schedule lag, ms.
    pub lag_p99_ms: Option<f64>,
    /// Its corrected latency of successful requests, as it measured it (base64
    /// HdrHistogram V2, microseconds): the raw material of the merged figures.
    #[serde(default)]
    pub corrected_ok: String,
    /// Why its figures are missing or partial (lost mid-step, failed).
    #[serde(default)]
    pub trouble: Option<String>,
    /// Bytes of reports it sent the controller during the step (protobuf, before
    /// HTTP/2 framing): the cost of coordination.
    #[serde(default)]
    pub control_bytes: u64,
}

/// The generator: a scenario, the in-flight cap, and the connections lanes own
/// (kept between steps, as a real user or device keeps its connection).
pub struct Attacker {
    pub scenario: Arc<Scenario>,
    pub max_in_flight: usize,
    pub seed: u64,
    pub segment: Segment,
    pub grace: Duration,
    lanes: Vec<Option<Sender>>,
    meter: Meter,
}

/// A request's answer, with the slot it was issued under.
struct Answer {
    slot: u32,
    request: u8,
    outcome: Outcome,
    sent: Instant,
    finished: Instant,
    connection: Option<Sender>,
}

/// Requests in flight, polled by the loop.
type Running = FuturesUnordered<Pin<Box<dyn Future<Output = Answer> + Send>>>;

/// `request`'s outcome, or `panic` when it panicked (the caller then drops whatever
/// state the request left half-used).
async fn caught(request: impl Future<Output = Outcome>) -> (Outcome, bool) {
    match AssertUnwindSafe(request).catch_unwind().await {
        Ok(outcome) => (outcome, false),
        Err(_) => (Outcome::Error(ErrorKind::Panic), true),
    }
}

/// A request in flight.
#[derive(Clone, Copy)]
struct Taken {
    due: Instant,
    lane: Option<u32>,
    request: u8,
}

/// Requests in flight, by slot (the slot travels with the answer, so the loop knows
/// each request's due time without the task carrying it).
struct Slots {
    entries: Vec<Option<Taken>>,
    free: Vec<u32>,
    used: usize,
}

impl Slots {
    fn new() -> Self {
        Self { entries: Vec::new(), free: Vec::new(), used: 0 }
    }

    fn take(&mut self, due: Instant, lane: Option<u32>, request: u8) -> u32 {
        self.used += 1;
        let taken = Some(Taken { due, lane, request });
        match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = taken;
                slot
            }
            None => {
                self.entries.push(taken);
                (self.entries.len() - 1) as u32
            }
        }
    }

    fn give_back(&mut self, slot: u32) -> Option<Taken> {
        let entry = self.entries.get_mut(slot as usize)?.take()?;
        self.used -= 1;
        self.free.push(slot);
        Some(entry)
    }

    fn drain(&mut self) -> impl Iterator<Item = Taken> + '_ {
        self.used = 0;
        self.free.clear();
        self.entries.drain(..).flatten()
    }
}

enum Phase {
    Issuing,
    /// Waiting for what is in flight until the deadline.
    Draining(Instant),
}

impl crate::runner::StepRunner for Attacker {
    fn share(&self) -> f64 {
        1.0 / f64::from(self.segment.count)
    }

    fn devices(&self) -> u32 {
        match &*self.scenario {
            Scenario::Devices(devices) => devices.count() as u32,
            _ => 0,
        }
    }

    fn run_step(
        &mut self,
        pace: &Pace,
        label: &str,
        run_start: Instant,
        stop: &CancellationToken,
        on_second: &mut OnSecond<'_>,
    ) -> impl std::future::Future<Output = StepOutcome> + Send {
        self.run(pace, label, run_start, stop, on_second)
    }

    async fn join(&mut self, devices: u32, login_rate: Option<f64>, stop: &CancellationToken) -> Result<(), String> {
        match &*self.scenario {
            Scenario::Devices(scenario) => {
                scenario.join(devices as usize, self.segment, login_rate, stop).await.map_err(|error| error.to_string())
            }
            _ => Ok(()),
        }
    }
}

impl Attacker {
    pub fn new(scenario: Arc<Scenario>, max_in_flight: usize, seed: u64, segment: Segment, grace: Duration) -> Self {
        let meter = Meter::new(scenario.name(), scenario.requests(), segment);
        Self { scenario, max_in_flight, seed, segment, grace, lanes: Vec::new(), meter }
    }

    /// Runs the load `pace` describes, as step `label`, until the schedule ends and
    /// its answers are in (or `stop`). Seconds are numbered from `run_start`.
    pub async fn run(
        &mut self,
        pace: &Pace,
        label: &str,
        run_start: Instant,
        stop: &CancellationToken,
        on_second: &mut OnSecond<'_>,
    ) -> StepOutcome {
        let start = Instant::now();
        let mut pacer: Pacer = pace.start(start, self.segment, self.seed);
        let end = pacer.end();
        let lanes = pacer.lanes();
        if let Some(lanes) = lanes
            && self.lanes.len() < lanes as usize
        {
            self.lanes.resize_with(lanes as usize, || None);
        }
        // Lanes each have one request at most; the open model is capped.
        let capacity = lanes.map_or(self.max_in_flight, |lanes| lanes as usize).max(1);
        let mut running = Running::new();
        let mut slots = Slots::new();
        let mut collector = Collector::new(label);
        let share = 1.0 / f64::from(self.segment.count);
        self.meter.step_started(pacer.rate_at(Duration::ZERO).map(|rate| rate * share));

        let mut phase = Phase::Issuing;
        let mut interrupted = false;
        let mut ran = end.saturating_duration_since(start);
        let mut next_second = start + Duration::from_secs(1);
        let second_of = |at: Instant| at.saturating_duration_since(run_start).as_secs().saturating_sub(1);
        // Two timers for the whole step, moved rather than made anew on every turn of
        // the loop (a timer made and dropped per turn costs a registration each time).
        let second_timer = tokio::time::sleep_until(next_second);
        let wake_timer = tokio::time::sleep_until(end);
        tokio::pin!(second_timer, wake_timer);
        loop {
            // Issue what is due, a batch at a time.
            let mut wake = None;
            if matches!(phase, Phase::Issuing) {
                let now = Instant::now();
                if now >= end + LATE_ISSUE {
                    collector.dropped(pacer.abandon());
                    phase = Phase::Draining(end + self.grace);
                } else {
                    let mut issued = 0;
                    while issued < BATCH {
                        match pacer.next(now) {
                            Next::Due(arrival) => {
                                issued += 1;
                                let work = Work { k: arrival.k, lane: arrival.lane, action: arrival.action };
                                let sent =
                                    self.issue(work, arrival, now, capacity, &mut running, &mut slots, &mut collector);
                                if let (false, Some(lane)) = (sent, arrival.lane) {
                                    pacer.finished(lane, now); // dropped: the lane is free again
                                }
                            }
                            Next::At(at) => {
                                wake = Some(at);
                                break;
                            }
                            Next::AwaitCompletion => break,
                            Next::Done => {
                                phase = Phase::Draining(end.max(now) + self.grace);
                                break;
                            }
                        }
                    }
                    if issued == BATCH {
                        wake = Some(now); // more may be due: come straight back
                    }
                    collector.dropped(pacer.take_skipped());
                }
            }
            if let Phase::Draining(_) = phase
                && slots.used == 0
            {
                break;
            }
            let deadline = match phase {
                Phase::Draining(deadline) => Some(deadline),
                Phase::Issuing => Some(end + LATE_ISSUE),
            };
            let wake_at = match (wake, deadline) {
                (Some(wake), Some(deadline)) => wake.min(deadline),
                (None, deadline) => deadline.unwrap_or(next_second),
                (wake, None) => wake.unwrap_or(next_second),
            };
            if wake_timer.deadline() != wake_at {
                wake_timer.as_mut().reset(wake_at);
            }
            tokio::select! {
                biased;
                _ = stop.cancelled(), if !interrupted => {
                    interrupted = true;
                    let now = Instant::now();
                    ran = now.saturating_duration_since(start).min(ran);
                    phase = Phase::Draining(now + self.grace / 2);
                }
                _ = &mut second_timer => {
                    let rate = pacer.rate_at(next_second.saturating_duration_since(start) - Duration::from_millis(500));
                    self.meter.in_flight(slots.used);
                    collector.close_second(second_of(next_second), rate.map(|rate| rate * share), on_second);
                    next_second += Duration::from_secs(1);
                    second_timer.as_mut().reset(next_second);
                }
                Some(answer) = running.next(), if !running.is_empty() => {
                    self.file(answer, &mut slots, &mut collector, &mut pacer);
                    // File what else is in, in this turn (polled with this task's own
                    // waker, so nothing is missed when the batch is cut short).
                    std::future::poll_fn(|context| {
                        for _ in 1..BATCH {
                            match running.poll_next_unpin(context) {
                                Poll::Ready(Some(answer)) => self.file(answer, &mut slots, &mut collector, &mut pacer),
                                Poll::Ready(None) | Poll::Pending => break,
                            }
                        }
                        Poll::Ready(())
                    })
                    .await;
                }
                _ = &mut wake_timer => {
                    if let Phase::Draining(deadline) = phase
                        && Instant::now() >= deadline
                    {
                        break;
                    }
                }
            }
        }
        // Whatever still runs is past its time: count it, and forget its lane's connection.
        drop(running);
        let now = Instant::now();
        for Taken { due, lane, request } in slots.drain() {
            let waited = now.saturating_duration_since(due);
            let name = self.request_name(request);
            collector.completed(name, Outcome::Error(ErrorKind::Unfinished), waited, waited);
            if let Some(lane) = lane {
                self.lanes[lane as usize] = None;
            }
        }
        if !collector.second_is_empty() {
            let rate = pacer.rate_at(now.saturating_duration_since(start)).map(|rate| rate * share);
            collector.close_second(second_of(next_second), rate, on_second);
        }
        self.meter.in_flight(0);
        let (stats, seconds) = collector.finish();
        StepOutcome {
            stats,
            seconds,
            ran,
            elapsed: now.saturating_duration_since(start),
            interrupted,
            agents: Vec::new(),
            degraded: false,
        }
    }

    /// Issues `work` (due at `due`, issued `now`); `false` when `capacity` requests
    /// were running and it was counted dropped instead.
    #[allow(clippy::too_many_arguments)]
    fn issue(
        &mut self,
        work: Work,
        arrival: crate::pacer::Arrival,
        now: Instant,
        capacity: usize,
        running: &mut Running,
        slots: &mut Slots,
        collector: &mut Collector,
    ) -> bool {
        let due = arrival.due;
        let lag = now.saturating_duration_since(arrival.ready);
        self.meter.lag(lag);
        if running.len() >= capacity {
            collector.dropped(1);
            self.meter.dropped();
            return false;
        }
        collector.issued(lag);
        let request = self.scenario.pick(&work, self.seed);
        let slot = slots.take(due, work.lane, request);
        let connection = work.lane.and_then(|lane| self.lanes[lane as usize].take());
        let (scenario, seed) = (self.scenario.clone(), self.seed);
        running.push(Box::pin(async move {
            let mut connection = connection;
            let sent = Instant::now();
            let own = work.lane.map(|_| &mut connection);
            let (outcome, panicked) = caught(scenario.execute(work, request, seed, own)).await;
            if panicked {
                connection = None;
            }
            Answer { slot, request, outcome, sent, finished: Instant::now(), connection }
        }));
        true
    }

    fn request_name(&self, request: u8) -> &'static str {
        self.scenario.requests().get(usize::from(request)).copied().unwrap_or("unknown")
    }

    /// Files an answer: statistics, metrics, the lane's connection back, the lane free.
    fn file(&mut self, answer: Answer, slots: &mut Slots, collector: &mut Collector, pacer: &mut Pacer) {
        let Some(Taken { due, lane, .. }) = slots.give_back(answer.slot) else { return };
        let name = self.request_name(answer.request);
        let corrected = answer.finished.saturating_duration_since(due);
        let uncorrected = answer.finished.saturating_duration_since(answer.sent);
        collector.completed(name, answer.outcome, corrected, uncorrected);
        self.meter.answered(answer.request, answer.outcome, corrected);
        if let Some(lane) = lane {
            self.lanes[lane as usize] = answer.connection;
            pacer.finished(lane, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_that_panics_answers_panic() {
        let (outcome, panicked) = caught(async { panic!("a bug in a scenario") }).await;
        assert_eq!((outcome, panicked), (Outcome::Error(ErrorKind::Panic), true));
        let (outcome, panicked) = caught(async { Outcome::Ok }).await;
        assert_eq!((outcome, panicked), (Outcome::Ok, false));
    }
}
