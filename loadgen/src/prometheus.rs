//! The Prometheus HTTP API client loadgen's bottleneck analysis and export use: the
//! workspace's one client, in `loadlab-supervise` (readiness, instant and range
//! queries, each bounded by a timeout, each failure a sentence).

pub use loadlab_supervise::prometheus::{Prometheus, QUERY_TIMEOUT, Series};
