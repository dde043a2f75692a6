//! Load profiles: a constant rate, stages (linear ramps between points), and the
//! breakpoint search.
//!
//! The breakpoint search runs steps of a constant rate, growing by a factor (or an
//! increment), until a step breaks the SLO. Then it bisects between the last step
//! that held and the first that broke, until the two are within the resolution or
//! the refinements run out. The breaking point is the highest rate that held, and
//! the reason is what the lowest broken rate broke.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, Load, SecondRow, StepOutcome, segment_share};
use crate::metrics as names;
use crate::schedule::{RatePiece, Schedule};
use crate::slo::{Slo, check};

/// How a breakpoint search grows the rate between steps.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Growth {
    Factor(f64),
    Increment(f64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BreakpointPlan {
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

/// A Prometheus and the signals file for bottleneck analysis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnalysisSource {
    pub prometheus: String,
    pub signals: std::path::PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Profile {
    Constant {
        rate: f64,
        duration: Duration,
    },
    Stages {
        stages: Vec<RatePiece>,
    },
    /// Every device on its own routine (devices scenario).
    Routines {
        command_every: Duration,
        measurement_every: Duration,
        jitter: f64,
        duration: Duration,
    },
    /// `users` looping users thinking between `think_min` and `think_max`.
    Closed {
        users: usize,
        think_min: Duration,
        think_max: Duration,
        duration: Duration,
    },
    Breakpoint(BreakpointPlan),
}

/// One executed step with its verdict (`held` is `None` outside breakpoint runs).
pub struct Step {
    pub label: String,
    /// The whole schedule's rate (all segments together).
    pub offered_rate: f64,
    pub duration: Duration,
    pub outcome: StepOutcome,
    pub held: Option<bool>,
    pub broken: Vec<String>,
    /// Wall-clock end, for asking Prometheus about this step afterwards.
    pub ended_at: std::time::SystemTime,
}

impl Step {
    /// Successful answers per second for this instance.
    pub fn achieved_rate(&self) -> f64 {
        let ok = self.outcome.stats.completed() - self.outcome.stats.errors();
        ok as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BreakingPoint {
    /// Highest rate that held the SLO (`None` when even the first step broke).
    pub rate: Option<f64>,
    /// Lowest rate that broke it (`None` when nothing broke up to the maximum).
    pub broken_rate: Option<f64>,
    /// What the lowest broken rate broke.
    pub reason: Vec<String>,
}

pub struct ProfileRun {
    pub steps: Vec<Step>,
    pub breaking_point: Option<BreakingPoint>,
    pub interrupted: bool,
}

/// Runs `profile` to the end (or until `stop`).
pub async fn run(
    engine: &Engine,
    profile: &Profile,
    stop: &CancellationToken,
    on_second: &(dyn Fn(&SecondRow) + Sync),
) -> ProfileRun {
    let run_start = Instant::now();
    let mut steps = Vec::new();
    let mut execute = async |label: String, load: Load<'_>, offered_rate: f64, duration: Duration| {
        metrics::gauge!(names::STEP).set(steps.len() as f64);
        let outcome = engine.run(&load, &label, run_start, stop, on_second).await;
        let interrupted = outcome.interrupted;
        let ended_at = std::time::SystemTime::now();
        steps.push(Step { label, offered_rate, duration, outcome, held: None, broken: Vec::new(), ended_at });
        interrupted
    };
    match profile {
        Profile::Constant { rate, duration } => {
            let schedule = Schedule::constant(*rate, *duration);
            let interrupted = execute("constant".into(), Load::Open(&schedule), *rate, *duration).await;
            ProfileRun { steps, breaking_point: None, interrupted }
        }
        Profile::Stages { stages } => {
            let schedule = Schedule::new(stages.clone());
            let duration = schedule.duration();
            let mean = stages.iter().map(|s| (s.from + s.to) / 2.0 * s.duration.as_secs_f64()).sum::<f64>()
                / duration.as_secs_f64().max(1e-9);
            let interrupted = execute("stages".into(), Load::Open(&schedule), mean, duration).await;
            ProfileRun { steps, breaking_point: None, interrupted }
        }
        Profile::Routines { command_every, measurement_every, jitter, duration } => {
            let load = Load::Routines {
                command_every: *command_every,
                measurement_every: *measurement_every,
                jitter: *jitter,
                duration: *duration,
            };
            let interrupted = execute("routines".into(), load, 0.0, *duration).await;
            if let Some(step) = steps.last_mut() {
                step.offered_rate = step.outcome.stats.offered as f64 / duration.as_secs_f64().max(1e-9);
            }
            ProfileRun { steps, breaking_point: None, interrupted }
        }
        Profile::Closed { users, think_min, think_max, duration } => {
            let load = Load::Closed { users: *users, think: (*think_min, *think_max), duration: *duration };
            let interrupted = execute("closed".into(), load, 0.0, *duration).await;
            // A closed model offers what it manages to send.
            if let Some(step) = steps.last_mut() {
                step.offered_rate = step.outcome.stats.offered as f64 / duration.as_secs_f64().max(1e-9);
            }
            ProfileRun { steps, breaking_point: None, interrupted }
        }
        Profile::Breakpoint(plan) => breakpoint(engine, plan, run_start, stop, on_second).await,
    }
}

async fn breakpoint(
    engine: &Engine,
    plan: &BreakpointPlan,
    run_start: Instant,
    stop: &CancellationToken,
    on_second: &(dyn Fn(&SecondRow) + Sync),
) -> ProfileRun {
    let mut steps: Vec<Step> = Vec::new();
    let share = segment_share(engine.segment);
    let mut held_rate: Option<f64> = None;
    let mut broken: Option<(f64, Vec<String>)> = None;
    let mut rate = plan.start_rate;
    let mut refinements = 0u32;
    let mut interrupted: bool;
    loop {
        let label =
            if broken.is_none() { format!("step {}", steps.len() + 1) } else { format!("refine {refinements}") };
        metrics::gauge!(names::STEP).set(steps.len() as f64);
        let schedule = Schedule::constant(rate, plan.step_duration);
        let outcome = engine.run(&Load::Open(&schedule), &label, run_start, stop, on_second).await;
        interrupted = outcome.interrupted;
        let ended_at = std::time::SystemTime::now();
        let mut step = Step {
            label,
            offered_rate: rate,
            duration: plan.step_duration,
            outcome,
            held: None,
            broken: Vec::new(),
            ended_at,
        };
        // This instance's share of the rate is what it can be held to.
        step.broken = check(&plan.slo, &step.outcome.stats, rate * share, step.achieved_rate());
        step.held = Some(step.broken.is_empty());
        if !interrupted {
            crate::output::terminal::step_line(&step);
        }
        if interrupted {
            steps.push(step);
            break;
        }
        if step.broken.is_empty() {
            held_rate = Some(held_rate.map_or(rate, |held| held.max(rate)));
        } else if broken.as_ref().is_none_or(|(lowest, _)| rate < *lowest) {
            broken = Some((rate, step.broken.clone()));
        }
        steps.push(step);

        rate = match &broken {
            None => {
                let next = match plan.growth {
                    Growth::Factor(factor) => rate * factor,
                    Growth::Increment(increment) => rate + increment,
                };
                if next > plan.max_rate {
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
                (held + broken_rate) / 2.0
            }
        };
    }
    let breaking_point = Some(BreakingPoint {
        rate: held_rate,
        broken_rate: broken.as_ref().map(|(rate, _)| *rate),
        reason: broken.map(|(_, reason)| reason).unwrap_or_default(),
    });
    if let Some(BreakingPoint { rate: Some(rate), .. }) = &breaking_point {
        metrics::gauge!(names::BREAKING_POINT).set(*rate);
    }
    ProfileRun { steps, breaking_point, interrupted }
}
