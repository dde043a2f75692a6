//! What runs one step: the local attack loop ([`crate::attack::Attacker`]), or a
//! controller driving agents on other hosts ([`crate::controller::Controller`]). The
//! profiles and the breakpoint search are written against this trait, so a search is
//! the same search whoever generates the load.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::attack::{OnSecond, StepOutcome};
use crate::pacer::Pace;

pub trait StepRunner {
    /// The share of a step's offered rate that this runner's results stand for: 1 for
    /// the whole schedule, 1/n for one segment of n.
    fn share(&self) -> f64;

    /// Simulated devices logged in (for routines), 0 outside the devices scenario.
    fn devices(&self) -> u32;

    /// Makes sure the first `devices` simulated devices are logged in, at most
    /// `login_rate` a second (devices scenario; nothing to do otherwise).
    fn join(
        &mut self,
        devices: u32,
        login_rate: Option<f64>,
        stop: &CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;

    /// Runs the load `pace` describes as step `label`; seconds are numbered from
    /// `run_start`; stops early (marked interrupted) when `stop` fires.
    fn run_step(
        &mut self,
        pace: &Pace,
        label: &str,
        run_start: Instant,
        stop: &CancellationToken,
        on_second: &mut OnSecond<'_>,
    ) -> impl std::future::Future<Output = StepOutcome> + Send;
}
