//! Scenarios: what one request does. The pacer says when and on which lane; the
//! scenario says what: [`Scenario::pick`] names the request (an index into
//! [`Scenario::requests`], so outcomes are filed without allocating), and
//! [`Scenario::execute`] performs it. Each arrival k gets a random source seeded from
//! (seed, k), so a run's choices and values are the same whichever segment of the
//! schedule an instance replays.

mod devices;
mod grpc;
mod http;

use rand::SeedableRng;
use rand::rngs::SmallRng;

pub use devices::{DeviceAction, DevicesError, DevicesScenario};
pub use grpc::{GrpcScenario, GrpcSetupError};
pub use http::HttpScenario;

use crate::http::Sender;
use crate::outcome::Outcome;

/// One unit of work, as the pacer issued it.
#[derive(Clone, Copy, Debug)]
pub struct Work {
    pub k: u64,
    /// The lane (user or device) whose connection it uses, if lanes own connections.
    pub lane: Option<u32>,
    /// The action, when the pacer chose it (routines: then `lane` is the device).
    pub action: Option<u8>,
}

impl Work {
    /// Arrival k's own random source.
    pub fn rng(&self, seed: u64) -> SmallRng {
        SmallRng::seed_from_u64(seed ^ self.k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// The scenarios loadgen can run.
/// (The HTTP scenarios are boxed: their templates make them large, and a scenario is
/// made once.)
pub enum Scenario {
    Http(Box<HttpScenario>),
    Devices(Box<DevicesScenario>),
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

    /// The names of the requests this scenario makes, indexed by request id.
    pub fn requests(&self) -> &'static [&'static str] {
        match self {
            Self::Http(_) => &["http"],
            Self::Devices(_) => DevicesScenario::REQUESTS,
            Self::Grpc(scenario) => scenario.requests(),
        }
    }

    /// Which request `work` makes.
    pub fn pick(&self, work: &Work, seed: u64) -> u8 {
        match self {
            Self::Devices(scenario) => scenario.pick(work, seed),
            Self::Http(_) | Self::Grpc(_) => 0,
        }
    }

    /// Performs `work` as request `request`, on `own` (the lane's connection) when
    /// lanes own connections, else through the shared pool.
    pub async fn execute(&self, work: Work, request: u8, seed: u64, own: Option<&mut Option<Sender>>) -> Outcome {
        match self {
            Self::Http(scenario) => scenario.execute(own).await,
            Self::Devices(scenario) => scenario.execute(work, request, seed, own).await,
            Self::Grpc(scenario) => scenario.execute().await,
        }
    }
}
