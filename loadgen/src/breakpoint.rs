//! The breakpoint search: steps of a constant rate, growing by a factor (or an
//! increment), until a step breaks the SLO; then bisection between the last step that
//! held and the first that broke, until the two are within the resolution or the
//! refinements run out. The breaking point is the highest rate that held, and the
//! reason is what the lowest broken rate broke.
//!
//! The options are validated before the search starts (a factor above 1, a start
//! rate above 0, a maximum reached in at most [`MAX_GROWTH_STEPS`] steps), so the
//! search always ends; a stop ends the current step and the search with it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::attack::{OnSecond, OnStep};
use crate::metrics as names;
use crate::pacer::Pace;
use crate::profile::{ProfileRun, Step};
use crate::runner::StepRunner;
use crate::schedule::Schedule;
use crate::slo::{Slo, check};

/// Most growth steps a search may plan before it reaches its maximum rate.
pub const MAX_GROWTH_STEPS: u32 = 200;
/// Most times one step runs again after losing an agent.
const MAX_RERUNS: u32 = 3;

/// How a breakpoint search grows the rate between steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Growth {
    Factor(f64),
    Increment(f64),
}

impl Growth {
    pub fn next(self, rate: f64) -> f64 {
        match self {
            Growth::Factor(factor) => rate * factor,
            Growth::Increment(increment) => rate + increment,
        }
    }
}

/// What a breakpoint search steps up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "over", rename_all = "snake_case")]
pub enum Over {
    /// The request rate of an open schedule (requests/s).
    Rate,
    /// The number of simulated devices, each on its routine: `GET /command` every
    /// `command_every` and `POST /measurement` every `measurement_every`, each varied
    /// by ±`jitter`. Devices joining a step log in at `login_rate` a second at most,
    /// before the step, so it measures them at work rather than a login storm.
    Devices { command_every: Duration, measurement_every: Duration, jitter: f64, login_rate: Option<f64> },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BreakpointPlan {
    /// What is stepped; `start_rate`, `growth` and `max_rate` count it (requests/s,
    /// or devices).
    #[serde(default = "rate")]
    pub over: Over,
    pub start_rate: f64,
    pub growth: Growth,
    pub step_duration: Duration,
    /// Stop growing here even if nothing broke.
    pub max_rate: f64,
    /// Bisection steps after the first broken step.
    pub refinements: u32,
    /// Stop bisecting when (broken − held) / held is at most this.
    pub resolution: f64,
    pub slo: Slo,
    /// Where to ask which resource saturated, afterwards.
    #[serde(default)]
    pub analysis: Option<AnalysisSource>,
}

impl BreakpointPlan {
    /// Growth steps from the start rate to the maximum (the first step included).
    pub fn growth_steps(&self) -> u32 {
        let mut rate = self.start_rate;
        let mut steps = 1;
        while steps <= MAX_GROWTH_STEPS {
            rate = self.growth.next(rate);
            if rate.is_nan() || rate > self.max_rate {
                break;
            }
            steps += 1;
        }
        steps
    }
}

fn rate() -> Over {
    Over::Rate
}

/// A Prometheus and the signals file for bottleneck analysis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnalysisSource {
    pub prometheus: String,
    pub signals: std::path::PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BreakingPoint {
    /// Highest level (rate, or devices) that held the SLO (`None` when even the first
    /// step broke).
    pub rate: Option<f64>,
    /// Lowest level that broke it (`None` when nothing broke up to the maximum).
    pub broken_rate: Option<f64>,
    /// What the lowest broken level broke.
    pub reason: Vec<String>,
    /// What `rate` and `broken_rate` count: `requests/s` or `devices`.
    #[serde(default = "requests_per_second")]
    pub unit: String,
    /// The requests/s achieved at the highest level that held (devices searches).
    #[serde(default)]
    pub request_rate: Option<f64>,
}

fn requests_per_second() -> String {
    "requests/s".into()
}

impl BreakingPoint {
    /// The breaking point in a sentence: `6400 requests/s held the SLO; 8000 broke it:
    /// p99 …`, or for devices `12000 devices held the SLO (at 800 requests/s); …`.
    pub fn sentence(&self) -> String {
        let at = self.request_rate.map_or(String::new(), |rate| format!(" (at {rate:.0} requests/s)"));
        match (self.rate, self.broken_rate) {
            (Some(held), Some(broken)) => {
                format!("{held:.0} {} held the SLO{at}; {broken:.0} broke it: {}", self.unit, self.reason.join("; "))
            }
            (Some(held), None) => format!("no breaking point up to {held:.0} {} (the maximum){at}", self.unit),
            (None, _) => format!("even the first step broke the SLO: {}", self.reason.join("; ")),
        }
    }
}

/// Runs the search; see the module documentation.
pub async fn search(
    runner: &mut impl StepRunner,
    plan: &BreakpointPlan,
    run_start: Instant,
    stop: &CancellationToken,
    on_second: &mut OnSecond<'_>,
    on_step: &mut OnStep<'_>,
) -> ProfileRun {
    let mut steps: Vec<Step> = Vec::new();
    let share = runner.share();
    let mut held_rate: Option<f64> = None;
    let mut held_request_rate: Option<f64> = None;
    let mut broken: Option<(f64, Vec<String>)> = None;
    let mut rate = plan.start_rate;
    let mut refinements = 0u32;
    let mut interrupted = false;
    // Bounded twice over: by validation, and here.
    for _ in 0..MAX_GROWTH_STEPS + plan.refinements + 1 {
        let label =
            if broken.is_none() { format!("step {}", steps.len() + 1) } else { format!("refine {refinements}") };
        metrics::gauge!(names::STEP).set(steps.len() as f64);
        let pace = match &plan.over {
            Over::Rate => Pace::Open(Schedule::constant(rate, plan.step_duration)),
            Over::Devices { command_every, measurement_every, jitter, login_rate } => {
                let devices = rate.round() as u32;
                if let Err(error) = runner.join(devices, *login_rate, stop).await {
                    eprintln!("loadgen: {label}: {devices} devices could not join: {error}");
                    interrupted = true;
                    break;
                }
                Pace::Routines {
                    devices,
                    periods: vec![*command_every, *measurement_every],
                    jitter: *jitter,
                    length: plan.step_duration,
                }
            }
        };
        let mut outcome = runner.run_step(&pace, &label, run_start, stop, on_second).await;
        // An agent lost mid-step (and the run goes on without it): the step's figures
        // lack its share, so the step runs again on the agents left.
        let mut again = 0;
        while outcome.degraded && !outcome.interrupted && again < MAX_RERUNS {
            again += 1;
            eprintln!("loadgen: {label} lost an agent; running it again on the agents left");
            outcome = runner.run_step(&pace, &label, run_start, stop, on_second).await;
        }
        interrupted = outcome.interrupted;
        let mut step = match plan.over {
            Over::Rate => Step::new(label, rate, plan.step_duration, outcome),
            Over::Devices { .. } => {
                // Devices offer what their timers make due.
                let offered = outcome.stats.offered as f64 / outcome.ran.as_secs_f64().max(1e-3);
                let mut step = Step::new(label, offered, plan.step_duration, outcome);
                step.devices = Some(rate.round() as u32);
                step
            }
        };
        // This instance's share of the rate is what it can be held to.
        let offered = if step.devices.is_some() { step.offered_rate } else { rate * share };
        step.broken = check(&plan.slo, &step.outcome.stats, offered, step.achieved_rate());
        step.held = Some(step.broken.is_empty());
        on_step(&step);
        if interrupted {
            steps.push(step);
            break;
        }
        if step.broken.is_empty() {
            if held_rate.is_none_or(|held| rate > held) {
                held_request_rate = Some(step.achieved_rate());
            }
            held_rate = Some(held_rate.map_or(rate, |held| held.max(rate)));
        } else if broken.as_ref().is_none_or(|(lowest, _)| rate < *lowest) {
            broken = Some((rate, step.broken.clone()));
        }
        steps.push(step);

        rate = match &broken {
            None => {
                let next = plan.growth.next(rate);
                if next.is_nan() || next > plan.max_rate {
                    break;
                }
                next
            }
            Some((broken_rate, _)) => {
                let Some(held) = held_rate else { break };
                if refinements >= plan.refinements || (broken_rate - held) / held <= plan.resolution {
                    break;
                }
                refinements += 1;
                let middle = (held + broken_rate) / 2.0;
                match plan.over {
                    Over::Rate => middle,
                    // Whole devices: stop when no whole number lies between.
                    Over::Devices { .. } if middle.round() <= held || middle.round() >= *broken_rate => break,
                    Over::Devices { .. } => middle.round(),
                }
            }
        };
    }
    let (unit, request_rate) = match plan.over {
        Over::Rate => ("requests/s", None),
        Over::Devices { .. } => ("devices", held_request_rate),
    };
    let breaking_point = BreakingPoint {
        rate: held_rate,
        broken_rate: broken.as_ref().map(|(rate, _)| *rate),
        reason: broken.map(|(_, reason)| reason).unwrap_or_default(),
        unit: unit.into(),
        request_rate,
    };
    if let Some(rate) = breaking_point.rate {
        metrics::gauge!(names::BREAKING_POINT).set(rate);
    }
    ProfileRun { steps, breaking_point: Some(breaking_point), interrupted }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(start_rate: f64, growth: Growth, max_rate: f64) -> BreakpointPlan {
        BreakpointPlan {
            over: Over::Rate,
            start_rate,
            growth,
            step_duration: Duration::from_secs(1),
            max_rate,
            refinements: 3,
            resolution: 0.1,
            slo: Slo {
                latency_quantile: 0.99,
                latency_limit: Duration::from_millis(250),
                max_error_ratio: 0.01,
                min_achieved_ratio: 0.95,
                max_dropped_ratio: 0.01,
            },
            analysis: None,
        }
    }

    #[test]
    fn growth_steps_are_counted_and_capped() {
        assert_eq!(plan(50.0, Growth::Factor(2.0), 1_000_000.0).growth_steps(), 15);
        assert_eq!(plan(100.0, Growth::Increment(100.0), 1000.0).growth_steps(), 10);
        assert_eq!(plan(50.0, Growth::Factor(1.0001), 1_000_000.0).growth_steps(), MAX_GROWTH_STEPS + 1);
    }
}
