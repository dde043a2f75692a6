//! grpc-stress: loadlab's gRPC system under test and its own stress suite.
//!
//! - [`server`]: the tonic service (the four RPC kinds and chat), its limits, metrics;
//! - [`client`]: connection groups that call it, tolerate and count faults, summarise;
//! - [`driver`]: runs many servers and clients as processes, kills and restarts the
//!   unstable ones, holds each to a memory ceiling, detects leaks, draws charts;
//! - [`heap`]: live-heap accounting (the counting allocator);
//! - [`certs`]: throw-away TLS certificates.

pub mod certs;
pub mod heap;

/// The protocol and payloads, shared with loadgen through `loadlab-proto`.
pub use loadlab_proto::{payload, stress as proto};
pub mod client;
pub mod driver;
pub mod server;
pub mod units;

use std::time::Duration;

/// Options every grpc-stress process takes: logging, heap reporting and ceiling (used
/// by the driver), and the hidden deliberate leak that proves leak detection works.
#[derive(Clone, Debug, clap::Args)]
pub struct ProcessOptions {
    /// Log format on stderr.
    #[arg(long, env = "GRPC_STRESS_LOG_FORMAT", value_enum, default_value_t = loadlab_telemetry::LogFormat::Human)]
    pub log_format: loadlab_telemetry::LogFormat,

    /// Print the live heap on stdout at this interval (`grpc-stress-heap LIVE PEAK`),
    /// for the driver.
    #[arg(long, value_parser = units::positive_duration)]
    pub report_heap: Option<Duration>,

    /// Exit with code 251 when the live heap exceeds this size (e.g. 400MiB): the
    /// counterpart of GHC's -M. Checked at the --report-heap interval (default 100ms).
    #[arg(long, value_parser = units::positive_bytes)]
    pub max_heap: Option<u64>,

    /// Debugging leak detection: leak this many bytes per second on purpose.
    #[arg(long, hide = true, value_parser = units::parse_bytes)]
    pub debug_leak_per_second: Option<u64>,
}

impl ProcessOptions {
    /// Starts logging, the heap reporter and the deliberate leak, as asked.
    pub fn apply(&self) {
        loadlab_telemetry::init_logging(self.log_format);
        if self.report_heap.is_some() || self.max_heap.is_some() {
            heap::spawn_reporter(self.report_heap.unwrap_or(Duration::from_millis(100)), self.max_heap);
        }
        if let Some(rate) = self.debug_leak_per_second {
            heap::spawn_debug_leak(rate);
        }
    }
}
