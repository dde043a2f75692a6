//! `grpc-stress driver`: grapesy's stress test, plus leak detection.
//!
//! It starts every component as a process of this same binary, then samples each
//! one's live heap (reported by the child) and RSS (read from /proc) every
//! `--sample-interval`. Unstable components are stopped with SIGTERM every
//! `--kill-interval` and started again after `--restart-delay`. The run fails, with
//! one line saying why, when a process breaks its memory ceiling, when a stable one
//! exits with failure, or when a stable one's live heap grows by more than
//! `--leak-threshold` with a statistically real trend after `--warmup`.

mod component;
mod failure;
mod leak;
mod matrix;
mod options;
mod ports;
mod report;
mod run;

pub use failure::Failure;
pub use leak::{Trend, trend};
pub use options::{DEFAULT_BASE_PORT, DriverOptions};
pub use run::run;
