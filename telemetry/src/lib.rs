//! Telemetry shared by every loadlab program: `tracing` logs (human or JSON), a
//! Prometheus recorder for the `metrics` facade that also exports process metrics
//! (RSS, CPU, open fds) and tokio runtime metrics on every scrape, and the one way
//! every program waits for SIGINT/SIGTERM.
//!
//! Each program keeps its own metric names and buckets; this crate only owns the
//! plumbing, so the three programs expose the same process and runtime series.

mod logging;
mod recorder;
mod signals;

pub use logging::{LogFormat, init_logging};
pub use recorder::{MetricsRecorder, RecorderError};
pub use signals::shutdown_signal;
