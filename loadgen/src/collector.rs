//! The collector: files what happened to each request under its step and its second.
//! Pure (no clocks, no I/O, no metrics): the attack loop hands it durations and
//! outcomes, and it hands back statistics, so it can be tested on its own and its
//! results merged exactly with other instances'.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;
use crate::stats::Stats;

/// One second of a run, for the live line, the CSV and the live view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecondRow {
    /// Seconds since the run started.
    pub second: u64,
    pub step: String,
    /// The schedule's rate in that second (the closed models: what was sent).
    pub offered_rate: f64,
    pub sent: u64,
    pub completed: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    /// Latency of successful requests from their due time, ms.
    pub p50_ms: Option<f64>,
    #[serde(default)]
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// p99 from the actual send instead (what a tool with coordinated omission shows).
    #[serde(default)]
    pub p99_uncorrected_ms: Option<f64>,
    /// p99 of how late the generator sent (its own saturation).
    #[serde(default)]
    pub lag_p99_ms: Option<f64>,
    /// The errors by kind (`http_503`, `timeout`, …; their sum is `errors`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    /// With agents: each agent's part of the second (empty when run locally).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<SecondShare>,
}

/// One agent's part of a second.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecondShare {
    pub agent: String,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    /// p99 of its schedule lag, ms.
    pub lag_p99_ms: Option<f64>,
}

impl SecondShare {
    /// `agent`'s part, from the statistics it reported for the second.
    pub fn from_stats(agent: &str, stats: &Stats) -> Self {
        Self {
            agent: agent.to_string(),
            sent: stats.offered.saturating_sub(stats.dropped),
            ok: stats.ok(),
            errors: stats.errors(),
            dropped: stats.dropped,
            lag_p99_ms: lag_p99(stats),
        }
    }
}

fn lag_p99(stats: &Stats) -> Option<f64> {
    ms(stats
        .schedule_lag
        .as_ref()
        .filter(|lag| !lag.is_empty())
        .map(|lag| Duration::from_micros(lag.value_at_quantile(0.99))))
}

impl SecondRow {
    /// The row of second `second` of step `step`, from that second's statistics.
    /// `offered_rate` is the schedule's rate then (`None`: what was sent).
    pub fn from_stats(second: u64, step: &str, offered_rate: Option<f64>, stats: &Stats) -> Self {
        let corrected = stats.ok_latency(true);
        let uncorrected = stats.ok_latency(false);
        let at = |histogram: &hdrhistogram::Histogram<u64>, quantile: f64| {
            (!histogram.is_empty()).then(|| histogram.value_at_quantile(quantile) as f64 / 1000.0)
        };
        let sent = stats.offered.saturating_sub(stats.dropped);
        SecondRow {
            second,
            step: step.to_string(),
            offered_rate: offered_rate.unwrap_or(sent as f64),
            sent,
            completed: stats.completed(),
            ok: stats.ok(),
            errors: stats.errors(),
            dropped: stats.dropped,
            p50_ms: at(&corrected, 0.5),
            p90_ms: at(&corrected, 0.9),
            p99_ms: at(&corrected, 0.99),
            p99_uncorrected_ms: at(&uncorrected, 0.99),
            lag_p99_ms: lag_p99(stats),
            errors_by_kind: stats.errors_by_kind(),
            agents: Vec::new(),
        }
    }
}

/// One step's statistics and its seconds.
pub struct Collector {
    label: String,
    step: Stats,
    second: Stats,
    rows: Vec<SecondRow>,
}

fn ms(duration: Option<Duration>) -> Option<f64> {
    duration.map(|duration| duration.as_secs_f64() * 1000.0)
}

impl Collector {
    pub fn new(label: &str) -> Self {
        Self { label: label.to_string(), step: Stats::default(), second: Stats::default(), rows: Vec::new() }
    }

    /// A request was sent, `lag` after it was due.
    pub fn issued(&mut self, lag: Duration) {
        for stats in [&mut self.step, &mut self.second] {
            stats.offered += 1;
            stats.record_lag(lag);
        }
    }

    /// `count` requests were due and not sent.
    pub fn dropped(&mut self, count: u64) {
        for stats in [&mut self.step, &mut self.second] {
            stats.offered += count;
            stats.dropped += count;
        }
    }

    /// A request ended: `corrected` is from its due time, `uncorrected` from its send.
    pub fn completed(&mut self, request: &'static str, outcome: Outcome, corrected: Duration, uncorrected: Duration) {
        self.step.record(request, outcome, corrected, uncorrected);
        self.second.record(request, outcome, corrected, uncorrected);
    }

    /// Ends the current second (numbered from the run's start): the row goes to
    /// `on_second` with the second's statistics, then the second starts afresh.
    /// `offered_rate` is the schedule's rate then (`None`: what was sent).
    pub fn close_second(
        &mut self,
        second: u64,
        offered_rate: Option<f64>,
        on_second: &mut dyn FnMut(&SecondRow, &Stats),
    ) {
        let row = SecondRow::from_stats(second, &self.label, offered_rate, &self.second);
        on_second(&row, &self.second);
        self.rows.push(row);
        self.second.clear();
    }

    /// Whether anything happened in the current second.
    pub fn second_is_empty(&self) -> bool {
        self.second.offered == 0 && self.second.completed() == 0
    }

    pub fn step(&self) -> &Stats {
        &self.step
    }

    pub fn finish(self) -> (Stats, Vec<SecondRow>) {
        (self.step, self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ErrorKind;

    #[test]
    fn seconds_and_the_step_count_the_same_requests() {
        let mut collector = Collector::new("step 1");
        let mut rows = Vec::new();
        for _ in 0..3 {
            collector.issued(Duration::from_millis(1));
        }
        collector.dropped(2);
        collector.completed("get", Outcome::Ok, Duration::from_millis(10), Duration::from_millis(2));
        collector.completed("get", Outcome::Error(ErrorKind::Timeout), Duration::from_secs(1), Duration::from_secs(1));
        collector.close_second(0, Some(5.0), &mut |row, stats| rows.push((row.clone(), stats.completed())));
        collector.completed("get", Outcome::Ok, Duration::from_millis(30), Duration::from_millis(30));
        collector.close_second(1, None, &mut |row, stats| rows.push((row.clone(), stats.completed())));
        assert_eq!(rows[0].0.sent, 3);
        assert_eq!(rows[0].0.dropped, 2);
        assert_eq!((rows[0].0.ok, rows[0].0.errors), (1, 1));
        assert_eq!(rows[0].1, 2, "the second's own statistics go with its row");
        assert!((rows[0].0.p99_ms.unwrap() - 10.0).abs() < 0.1);
        assert!((rows[0].0.p99_uncorrected_ms.unwrap() - 2.0).abs() < 0.1);
        assert_eq!(rows[0].0.errors_by_kind, BTreeMap::from([("timeout".to_string(), 1)]), "errors by kind");
        assert_eq!(rows[1].0.errors_by_kind, BTreeMap::new());
        let share = SecondShare::from_stats("http://agent-1", collector.step());
        assert_eq!((share.sent, share.ok, share.errors, share.dropped), (3, 2, 1, 2), "an agent's part");
        assert_eq!(rows[1].0.offered_rate, 0.0, "nothing sent in the second second");
        assert_eq!(rows[1].0.completed, 1);
        let (step, seconds) = collector.finish();
        assert_eq!((step.offered, step.dropped, step.completed(), step.ok()), (5, 2, 3, 2));
        assert_eq!(seconds.len(), 2);
    }
}
