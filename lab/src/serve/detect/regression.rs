//! From change points to regressions: which way is worse for each tracked figure,
//! and which runs lie on each side, so the API, `/metrics` and the command line all
//! say the same thing about an experiment.

use serde::{Deserialize, Serialize};

use super::changepoint::{ChangePoint, Options, detect};

/// A figure tracked per experiment run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The highest rate that held the SLO (higher is better).
    BreakingPoint,
    /// Corrected p99 latency at the experiment's reference rate (lower is better).
    P99AtReference,
}

impl Metric {
    pub const ALL: [Metric; 2] = [Metric::BreakingPoint, Metric::P99AtReference];

    pub fn name(self) -> &'static str {
        match self {
            Metric::BreakingPoint => "breaking_point",
            Metric::P99AtReference => "p99_at_reference",
        }
    }

    /// Whether a change of this sign (after − before) is a regression.
    pub fn worse(self, change: f64) -> bool {
        match self {
            Metric::BreakingPoint => change < 0.0,
            Metric::P99AtReference => change > 0.0,
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::BreakingPoint => "requests/s",
            Metric::P99AtReference => "ms",
        }
    }
}

/// One run's figure.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    pub run_id: String,
    pub started_at: String,
    pub value: f64,
}

/// A change point of one figure of one experiment, with its sides named.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    pub metric: Metric,
    /// `regression` (worse after), or `improvement`.
    pub direction: String,
    /// The first run of the new level.
    pub run_id: String,
    pub started_at: String,
    /// The runs the test compared: before the change (oldest first) and from it on.
    pub runs_before: Vec<String>,
    pub runs_after: Vec<String>,
    /// The larger relative change of the two directions, as Otava reports it.
    pub magnitude: f64,
    #[serde(flatten)]
    pub point: ChangePoint,
}

impl Finding {
    pub fn is_regression(&self) -> bool {
        self.direction == "regression"
    }
}

/// The change points of `points` (oldest first) as findings.
pub fn findings(metric: Metric, points: &[SeriesPoint], options: &Options) -> Vec<Finding> {
    let values: Vec<f64> = points.iter().map(|point| point.value).collect();
    detect(&values, options)
        .into_iter()
        .map(|point| {
            let ids = |range: std::ops::Range<usize>| points[range].iter().map(|p| p.run_id.clone()).collect();
            let start = point.index - point.points_before;
            let end = point.index + point.points_after;
            Finding {
                metric,
                direction: if metric.worse(point.change) { "regression" } else { "improvement" }.to_string(),
                run_id: points[point.index].run_id.clone(),
                started_at: points[point.index].started_at.clone(),
                runs_before: ids(start..point.index),
                runs_after: ids(point.index..end),
                magnitude: point.magnitude(),
                point,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<SeriesPoint> {
        values
            .iter()
            .enumerate()
            .map(|(i, value)| SeriesPoint { run_id: format!("r{i}"), started_at: format!("t{i}"), value: *value })
            .collect()
    }

    #[test]
    fn a_lower_breaking_point_is_a_regression_and_a_lower_p99_an_improvement() {
        let values = [800.0, 800.0, 800.0, 800.0, 400.0, 400.0, 400.0, 400.0];
        let found = findings(Metric::BreakingPoint, &series(&values), &Options::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].direction, "regression");
        assert_eq!(found[0].run_id, "r4");
        assert_eq!(found[0].runs_before, vec!["r0", "r1", "r2", "r3"]);
        assert_eq!(found[0].runs_after, vec!["r4", "r5", "r6", "r7"]);
        assert_eq!(found[0].magnitude, 1.0, "800 → 400: 400/800 − 1 = −0.5, 800/400 − 1 = 1");
        let found = findings(Metric::P99AtReference, &series(&values), &Options::default());
        assert_eq!(found[0].direction, "improvement");
    }
}
