//! Scenarios: what one request of the schedule does. Each arrival k gets a
//! deterministic random source seeded from (seed, k), so a run's choices and values
//! are the same whichever segment of the schedule an instance replays.

mod devices;
mod grpc;
mod http;

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

pub use devices::{DeviceAction, DevicesError, DevicesScenario};
pub use grpc::{GrpcScenario, GrpcSetupError};
pub use http::{HttpClient, HttpScenario, UserConnection};

use crate::stats::Outcome;

/// The scenarios loadgen can run.
pub enum Scenario {
    Http(HttpScenario),
    Devices(DevicesScenario),
    Grpc(GrpcScenario),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            Self::Devices(_) => "devices",
            Self::Grpc(_) => "grpc",
        }
    }

    /// Performs arrival `k` (on `connection` when the caller owns one, else through
    /// the pool); returns the request's name and outcome.
    pub async fn execute(&self, k: u64, seed: u64, connection: Option<&mut UserConnection>) -> (&'static str, Outcome) {
        let mut rng = StdRng::seed_from_u64(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        match self {
            Self::Http(scenario) => ("http", scenario.execute(connection).await),
            Self::Devices(scenario) => scenario.execute(k, &mut rng, connection).await,
            Self::Grpc(scenario) => (scenario.request_name(), scenario.execute().await),
        }
    }
}

/// Per-request timeout default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
