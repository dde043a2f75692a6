//! Statistics: what happened to the requests of one step (or one second), kept as
//! HdrHistograms so that steps, seconds and segments from other instances merge
//! exactly (percentiles are never averaged).
//!
//! Each request lands under (request name, outcome). Latency is recorded twice:
//! corrected (from the time the request was due, so a stalled server shows its real
//! cost: no coordinated omission) and uncorrected (from the actual send). Schedule lag
//! (how late the generator itself sent) has its own histogram: when it grows, the
//! generator is the bottleneck, not the server.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// Highest latency recorded, microseconds (an hour).
const MAX_MICROS: u64 = 3_600_000_000;

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// A 2xx/3xx answer.
    Ok,
    /// An HTTP status outside 2xx/3xx.
    Status(u16),
    /// No answer: connect failure, reset, timeout; the label says which.
    Error(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Status(code) => format!("http_{code}"),
            Outcome::Error(kind) => kind.clone(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

fn micros(duration: Duration) -> u64 {
    (duration.as_micros() as u64).clamp(1, MAX_MICROS)
}

/// Latencies of one (request, outcome).
#[derive(Clone, Debug)]
pub struct Latencies {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self { corrected: new_histogram(), uncorrected: new_histogram() }
    }
}

/// Everything recorded over some interval.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub by_request: BTreeMap<(String, Outcome), Latencies>,
    pub schedule_lag: Option<Histogram<u64>>,
    /// Requests due but not sent because the concurrency cap was reached.
    pub dropped: u64,
    /// Requests due (sent or dropped).
    pub offered: u64,
}

impl Stats {
    pub fn record(&mut self, request: &str, outcome: Outcome, corrected: Duration, uncorrected: Duration) {
        let latencies = self.by_request.entry((request.to_string(), outcome)).or_default();
        let _ = latencies.corrected.record(micros(corrected));
        let _ = latencies.uncorrected.record(micros(uncorrected));
    }

    pub fn record_lag(&mut self, lag: Duration) {
        let _ = self.schedule_lag.get_or_insert_with(new_histogram).record(micros(lag));
    }

    pub fn merge(&mut self, other: &Stats) {
        for (key, latencies) in &other.by_request {
            let mine = self.by_request.entry(key.clone()).or_default();
            mine.corrected.add(&latencies.corrected).expect("same bounds");
            mine.uncorrected.add(&latencies.uncorrected).expect("same bounds");
        }
        if let Some(lag) = &other.schedule_lag {
            self.schedule_lag.get_or_insert_with(new_histogram).add(lag).expect("same bounds");
        }
        self.dropped += other.dropped;
        self.offered += other.offered;
    }

    /// Requests that completed (any outcome).
    pub fn completed(&self) -> u64 {
        self.by_request.values().map(|latencies| latencies.corrected.len()).sum()
    }

    pub fn errors(&self) -> u64 {
        self.by_request.iter().filter(|((_, outcome), _)| !outcome.is_ok()).map(|(_, l)| l.corrected.len()).sum()
    }

    /// Corrected latency over every request that succeeded.
    pub fn ok_latency(&self, corrected: bool) -> Histogram<u64> {
        let mut all = new_histogram();
        for ((_, outcome), latencies) in &self.by_request {
            if outcome.is_ok() {
                all.add(if corrected { &latencies.corrected } else { &latencies.uncorrected }).expect("same bounds");
            }
        }
        all
    }

    pub fn error_ratio(&self) -> f64 {
        ratio(self.errors(), self.completed())
    }

    pub fn dropped_ratio(&self) -> f64 {
        ratio(self.dropped, self.offered)
    }

    /// Corrected latency quantile (0..=1) of successful requests, or `None` if none.
    pub fn quantile(&self, quantile: f64) -> Option<Duration> {
        let latency = self.ok_latency(true);
        (!latency.is_empty()).then(|| Duration::from_micros(latency.value_at_quantile(quantile)))
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// A histogram as text: HdrHistogram's V2 encoding in base64, so another process can
/// decode and merge it exactly.
pub fn encode(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new().serialize(histogram, &mut bytes).expect("serialising to memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(|error| error.to_string())?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|error| format!("{error:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_percentiles_come_from_the_merged_histogram() {
        let mut fast = Stats::default();
        let mut slow = Stats::default();
        for _ in 0..900 {
            fast.record("get", Outcome::Ok, Duration::from_millis(1), Duration::from_millis(1));
        }
        for _ in 0..100 {
            slow.record("get", Outcome::Ok, Duration::from_millis(100), Duration::from_millis(2));
        }
        let mut merged = fast.clone();
        merged.merge(&slow);
        // The p95 of the union is slow, though neither part's p95 averaged says so.
        let p95 = merged.quantile(0.95).unwrap();
        assert!(p95 >= Duration::from_millis(99), "{p95:?}");
        assert!(merged.ok_latency(false).value_at_quantile(0.95) < 3_000, "uncorrected stays low");
    }

    #[test]
    fn errors_and_drops_are_ratios_of_their_own_totals() {
        let mut stats = Stats { offered: 10, dropped: 2, ..Stats::default() };
        for outcome in [Outcome::Ok, Outcome::Ok, Outcome::Status(503), Outcome::Error("connect".into())] {
            stats.record("post", outcome, Duration::from_millis(5), Duration::from_millis(5));
        }
        assert_eq!(stats.completed(), 4);
        assert!((stats.error_ratio() - 0.5).abs() < 1e-12);
        assert!((stats.dropped_ratio() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn histograms_survive_encoding() {
        let mut stats = Stats::default();
        for millis in 1..=100 {
            stats.record("x", Outcome::Ok, Duration::from_millis(millis), Duration::from_millis(millis));
        }
        let histogram = stats.ok_latency(true);
        let decoded = decode(&encode(&histogram)).unwrap();
        assert_eq!(decoded.len(), 100);
        assert_eq!(decoded.value_at_quantile(0.99), histogram.value_at_quantile(0.99));
    }
}
