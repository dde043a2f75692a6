//! Why a driver run failed, in the one line its verdict prints.

use super::leak::Trend;
use crate::units::mib;

/// Why a run failed.
#[derive(Debug)]
pub enum Failure {
    Ceiling { component: String, limit: u64, peak: u64, measure: &'static str },
    StableExit { component: String, status: String },
    Leak { component: String, trend: Trend, threshold: u64 },
    Start { component: String, error: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ceiling { component, limit, peak, measure } => write!(
                f,
                "{component} exceeded its memory ceiling: limit {}, peak {} ({measure})",
                mib(*limit),
                mib(*peak)
            ),
            Self::StableExit { component, status } => write!(f, "stable component {component} exited: {status}"),
            Self::Leak { component, trend, threshold } => write!(
                f,
                "{component} leaks: live heap grows {:.1} KiB/s (threshold {:.1} KiB/s, Mann–Kendall p = {:.1e})",
                trend.slope_bytes_per_second / 1024.0,
                *threshold as f64 / 1024.0,
                trend.p_value
            ),
            Self::Start { component, error } => write!(f, "{component} could not start: {error}"),
        }
    }
}
