//! The engine: makes the requests of one step and collects what happened.
//!
//! Open model (the default): the loop walks the schedule, sleeps until each request
//! is due, and starts it, unless `max_in_flight` requests are already running, in
//! which case the request is counted as dropped (never queued: a queue would hide the
//! overload). Latency is measured from the due time (corrected) and from the send
//! (uncorrected); how late the loop itself was is the schedule lag.
//!
//! Closed model: `users` tasks each send a request, wait for its answer, think, and
//! go again until the step ends (Locust's model, and wrk's with no think time). A
//! request is due when its user is ready, so the two latencies coincide.
//!
//! Either way every request reports to the same collector, in the same loop, which
//! files it under its step and its second.

use std::collections::HashMap;
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
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
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

/// What a step offers.
pub enum Load<'a> {
    /// Requests on a schedule.
    Open(&'a Schedule),
    /// `users` looping users, each thinking a random time in `think` between requests.
    Closed { users: usize, think: (Duration, Duration), duration: Duration },
    /// Every device of the devices scenario on its own routine: `GET /command` every
    /// `command_every` and `POST /measurement` every `measurement_every`, each period
    /// varied by ±`jitter` (a fraction), the first of each delayed by a random part of
    /// its period (Catalyst's routine). Latency runs from each tick's due time.
    Routines { command_every: Duration, measurement_every: Duration, jitter: f64, duration: Duration },
}

impl Load<'_> {
    fn rate_at(&self, at: Duration) -> Option<f64> {
        match self {
            Load::Open(schedule) => Some(schedule.rate_at(at)),
            Load::Closed { .. } | Load::Routines { .. } => None,
        }
    }
}

/// What one step produced.
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
    /// Runs `load`, labelled `step`, calling `on_second` once a second with the
    /// second that just ended. Stops early (marked interrupted) when `stop` fires.
    /// `run_start` anchors the second numbers across steps.
    pub async fn run(
        &self,
        load: &Load<'_>,
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
        if let Some(rate) = load.rate_at(Duration::ZERO) {
            metrics::gauge!(names::CURRENT_STEP_RATE, "segment" => segment_label.clone())
                .set(rate * segment_share(self.segment));
        }
        let empty = Schedule::new(Vec::new());
        let schedule = match load {
            Load::Open(schedule) => *schedule,
            Load::Closed { .. } | Load::Routines { .. } => &empty,
        };
        let closed = matches!(load, Load::Closed { .. } | Load::Routines { .. });
        if let Load::Routines { command_every, measurement_every, jitter, duration } = *load {
            self.spawn_routines(
                [command_every, measurement_every],
                jitter,
                start + duration,
                &results,
                &in_flight,
                stop,
            );
        }
        // Closed model: the users run on their own and report like any request; in
        // `in_flight` they count as active users until their last request is done.
        if let Load::Closed { users, think, duration } = *load {
            let deadline = start + duration;
            for user in 0..users {
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (scenario, results, in_flight, seed, stop) =
                    (self.scenario.clone(), results.clone(), in_flight.clone(), self.seed, stop.clone());
                tokio::spawn(async move {
                    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed ^ user as u64);
                    let mut iteration = 0u64;
                    let mut connection = crate::scenario::UserConnection::default();
                    while Instant::now() < deadline && !stop.is_cancelled() {
                        let sent = Instant::now();
                        let k = iteration * users as u64 + user as u64;
                        let (request, outcome) = scenario.execute(k, seed, Some(&mut connection)).await;
                        let _ = results.send(Completed { request, outcome, due: sent, sent, finished: Instant::now() });
                        iteration += 1;
                        let pause = if think.0 == think.1 {
                            think.0
                        } else {
                            rand::Rng::random_range(&mut rng, think.0..=think.1)
                        };
                        // A zero-length sleep still waits for the next 1 ms timer tick.
                        if pause.is_zero() {
                            continue;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))) => {}
                            _ = stop.cancelled() => {}
                        }
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }

        let mut handles: HashMap<(&'static str, Outcome), (metrics::Counter, metrics::Histogram)> = HashMap::new();
        // Registered at zero, so "nothing dropped" is a series, not a gap.
        metrics::counter!(names::DROPPED, "scenario" => scenario_name, "segment" => segment_label.clone()).increment(0);
        let mut arrivals = schedule.arrivals(self.segment).peekable();
        let mut next_second = start + Duration::from_secs(1);
        let mut interrupted = false;
        let close_second = |second: &mut Stats, sent: u64, at: Instant, seconds: &mut Vec<SecondRow>| {
            let row = SecondRow {
                second: at.duration_since(run_start).as_secs(),
                step: step.to_string(),
                offered_rate: load
                    .rate_at(at.duration_since(start).saturating_sub(Duration::from_millis(500)))
                    .map_or(sent as f64, |rate| rate * segment_share(self.segment)),
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
            // Handles cached per (request, outcome): building labels per request
                                // would allocate on the hottest path.
                                let (counter, histogram) = handles.entry((done.request, done.outcome.clone())).or_insert_with(|| {
                                    let labels = [
                                        ("scenario", scenario_name.to_string()),
                                        ("request", done.request.to_string()),
                                        ("outcome", done.outcome.label()),
                                        ("segment", segment_label.clone()),
                                    ];
                                    (metrics::counter!(names::REQUESTS, &labels), metrics::histogram!(names::LATENCY, &labels))
                                });
                                counter.increment(1);
                                histogram.record(corrected.as_secs_f64());
                                if closed {
                                    stats.offered += 1;
                                    second.offered += 1;
                                    second_sent += 1;
                                }
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
                                    let (request, outcome) = scenario.execute(k, seed, None).await;
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

impl Engine {
    /// One task per device (of this segment), each running both routines.
    fn spawn_routines(
        &self,
        periods: [Duration; 2],
        jitter: f64,
        deadline: Instant,
        results: &mpsc::UnboundedSender<Completed>,
        in_flight: &Arc<AtomicUsize>,
        stop: &CancellationToken,
    ) {
        use crate::scenario::DeviceAction;
        use rand::{Rng, SeedableRng};
        let Scenario::Devices(devices) = &*self.scenario else { return };
        for device in (0..devices.count()).filter(|device| self.segment.contains(*device as u64)) {
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (scenario, results, in_flight, seed, stop) =
                (self.scenario.clone(), results.clone(), in_flight.clone(), self.seed, stop.clone());
            tokio::spawn(async move {
                let Scenario::Devices(devices) = &*scenario else { return };
                let mut rng =
                    rand::rngs::StdRng::seed_from_u64(seed ^ (device as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
                let vary = |rng: &mut rand::rngs::StdRng, period: Duration| {
                    period.mul_f64(1.0 + rng.random_range(-jitter..=jitter).clamp(-0.99, 10.0))
                };
                let now = Instant::now();
                let mut next = [now + periods[0].mul_f64(rng.random()), now + periods[1].mul_f64(rng.random())];
                let mut connection = crate::scenario::UserConnection::default();
                loop {
                    let which = usize::from(next[1] < next[0]);
                    let due = next[which];
                    if due >= deadline {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = stop.cancelled() => break,
                    }
                    let action = if which == 0 { DeviceAction::Command } else { DeviceAction::Measurement };
                    let sent = Instant::now();
                    let (request, outcome) = devices.act(device, action, &mut rng, Some(&mut connection)).await;
                    let _ = results.send(Completed { request, outcome, due, sent, finished: Instant::now() });
                    next[which] = due + vary(&mut rng, periods[which]);
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

/// The fraction of the schedule a segment sends.
pub fn segment_share(segment: Segment) -> f64 {
    1.0 / f64::from(segment.count)
}
