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

/// A Prometheus and the signals file for bottleneck analysis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnalysisSource {
    pub prometheus: String,
    pub signals: std::path::PathBuf,
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
    let mut broken: Option<(f64, Vec<String>)> = None;
    let mut rate = plan.start_rate;
    let mut refinements = 0u32;
    let mut interrupted = false;
    // Bounded twice over: by validation, and here.
    for _ in 0..MAX_GROWTH_STEPS + plan.refinements + 1 {
        let label =
            if broken.is_none() { format!("step {}", steps.len() + 1) } else { format!("refine {refinements}") };
        metrics::gauge!(names::STEP).set(steps.len() as f64);
        let pace = Pace::Open(Schedule::constant(rate, plan.step_duration));
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
        let mut step = Step::new(label, rate, plan.step_duration, outcome);
        // This instance's share of the rate is what it can be held to.
        step.broken = check(&plan.slo, &step.outcome.stats, rate * share, step.achieved_rate());
        step.held = Some(step.broken.is_empty());
        on_step(&step);
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
                (held + broken_rate) / 2.0
            }
        };
    }
    let breaking_point = BreakingPoint {
        rate: held_rate,
        broken_rate: broken.as_ref().map(|(rate, _)| *rate),
        reason: broken.map(|(_, reason)| reason).unwrap_or_default(),
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
