//! Load profiles: what a run offers, as a plan (`summary.json` records it), and how
//! each is carried out: one step of the attack loop, or the breakpoint search's many.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::attack::{OnSecond, OnStep, StepOutcome};
use crate::breakpoint::{BreakingPoint, BreakpointPlan};

impl Step {
    /// The level this step ran at: its device count in a search over devices, else
    /// its offered rate (what a breaking point is in).
    pub fn level(&self) -> f64 {
        self.devices.map_or(self.offered_rate, f64::from)
    }
}
use crate::pacer::Pace;
use crate::runner::StepRunner;
use crate::schedule::{RatePiece, Schedule};

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
    /// Every device on its own routine (devices scenario): one period per action.
    Routines {
        command_every: Duration,
        measurement_every: Duration,
        jitter: f64,
        duration: Duration,
    },
    /// `users` looping users thinking between `think_min` and `think_max`.
    Closed {
        users: u32,
        think_min: Duration,
        think_max: Duration,
        duration: Duration,
    },
    Breakpoint(BreakpointPlan),
}

/// One executed step with its verdict (`held` is `None` outside breakpoint runs).
pub struct Step {
    pub label: String,
    /// The whole schedule's rate (all segments together); the closed models: what
    /// was sent per second.
    pub offered_rate: f64,
    /// The planned length.
    pub duration: Duration,
    pub outcome: StepOutcome,
    pub held: Option<bool>,
    pub broken: Vec<String>,
    /// Wall-clock end, for asking Prometheus about this step afterwards.
    pub ended_at: std::time::SystemTime,
    /// Simulated devices at work in the step (breakpoint searches over devices).
    pub devices: Option<u32>,
}

impl Step {
    pub fn new(label: String, offered_rate: f64, duration: Duration, outcome: StepOutcome) -> Self {
        Self {
            label,
            offered_rate,
            duration,
            outcome,
            held: None,
            broken: Vec::new(),
            ended_at: std::time::SystemTime::now(),
            devices: None,
        }
    }

    /// Successful answers per second for this instance, over the time the step
    /// actually ran (less than planned when it was stopped).
    pub fn achieved_rate(&self) -> f64 {
        self.outcome.stats.ok() as f64 / self.outcome.ran.as_secs_f64().max(1e-3)
    }
}

pub struct ProfileRun {
    pub steps: Vec<Step>,
    pub breaking_point: Option<BreakingPoint>,
    pub interrupted: bool,
}

/// Runs `profile` to the end (or until `stop`).
pub async fn run(
    runner: &mut impl StepRunner,
    profile: &Profile,
    stop: &CancellationToken,
    on_second: &mut OnSecond<'_>,
    on_step: &mut OnStep<'_>,
) -> ProfileRun {
    let run_start = Instant::now();
    let devices = runner.devices();
    let (label, pace) = match profile {
        Profile::Breakpoint(plan) => {
            return crate::breakpoint::search(runner, plan, run_start, stop, on_second, on_step).await;
        }
        Profile::Constant { rate, duration } => ("constant", Pace::Open(Schedule::constant(*rate, *duration))),
        Profile::Stages { stages } => ("stages", Pace::Open(Schedule::new(stages.clone()))),
        Profile::Routines { command_every, measurement_every, jitter, duration } => (
            "routines",
            Pace::Routines {
                devices,
                periods: vec![*command_every, *measurement_every],
                jitter: *jitter,
                length: *duration,
            },
        ),
        Profile::Closed { users, think_min, think_max, duration } => {
            ("closed", Pace::Users { users: *users, think: (*think_min, *think_max), length: *duration })
        }
    };
    let outcome = runner.run_step(&pace, label, run_start, stop, on_second).await;
    let (offered_rate, duration) = match &pace {
        Pace::Open(schedule) => (schedule.mean_rate(), schedule.duration()),
        // A closed model offers what it manages to send.
        Pace::Users { length, .. } | Pace::Routines { length, .. } => {
            (outcome.stats.offered as f64 / outcome.ran.as_secs_f64().max(1e-3), *length)
        }
    };
    let interrupted = outcome.interrupted;
    let step = Step::new(label.into(), offered_rate, duration, outcome);
    on_step(&step);
    ProfileRun { steps: vec![step], breaking_point: None, interrupted }
}
