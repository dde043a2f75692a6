//! Statistics: what happened to the requests of one step (or one second), kept as
//! HdrHistograms so that steps, seconds and segments from other instances merge
//! exactly (percentiles are never averaged).
//!
//! Each request lands under (request name, outcome). Latency is recorded twice:
//! corrected (from the time the request was due, so a stalled server shows its real
//! cost: no coordinated omission) and uncorrected (from the actual send). Schedule lag
//! (how late the generator itself sent) has its own histogram: when it grows, the
//! generator is the bottleneck, not the server.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Highest latency recorded, microseconds (an hour).
const MAX_MICROS: u64 = 3_600_000_000;

pub use crate::outcome::{ErrorKind, Outcome};

/// An empty histogram with the bounds every loadgen histogram has (1 µs to an hour,
/// three significant digits), so any two merge.
pub fn new_histogram() -> Histogram<u64> {
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

/// A request's name: borrowed from the scenario in process, owned when read from a file.
pub type RequestName = Cow<'static, str>;

/// Everything recorded over some interval.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub by_request: BTreeMap<(RequestName, Outcome), Latencies>,
    pub schedule_lag: Option<Histogram<u64>>,
    /// Requests due but not sent because the concurrency cap was reached.
    pub dropped: u64,
    /// Requests due (sent or dropped).
    pub offered: u64,
}

impl Stats {
    pub fn record(&mut self, request: &'static str, outcome: Outcome, corrected: Duration, uncorrected: Duration) {
        let latencies = self.by_request.entry((Cow::Borrowed(request), outcome)).or_default();
        let _ = latencies.corrected.record(micros(corrected));
        let _ = latencies.uncorrected.record(micros(uncorrected));
    }

    pub fn record_lag(&mut self, lag: Duration) {
        let _ = self.schedule_lag.get_or_insert_with(new_histogram).record(micros(lag));
    }

    /// Adds `other` in. Histograms share bounds ([`new_histogram`]); one that does not
    /// (read from a damaged file) is an error, and nothing of it is added.
    pub fn merge(&mut self, other: &Stats) -> Result<(), String> {
        let fits = |histogram: &Histogram<u64>| histogram.is_empty() || histogram.max() <= MAX_MICROS;
        let all_fit = other.by_request.values().all(|l| fits(&l.corrected) && fits(&l.uncorrected))
            && other.schedule_lag.as_ref().is_none_or(fits);
        if !all_fit {
            return Err(format!("a histogram holds values beyond {MAX_MICROS} µs"));
        }
        let add = |into: &mut Histogram<u64>, from: &Histogram<u64>| into.add(from).map_err(|e| format!("{e:?}"));
        for (key, latencies) in &other.by_request {
            let mine = self.by_request.entry(key.clone()).or_default();
            add(&mut mine.corrected, &latencies.corrected)?;
            add(&mut mine.uncorrected, &latencies.uncorrected)?;
        }
        if let Some(lag) = &other.schedule_lag {
            add(self.schedule_lag.get_or_insert_with(new_histogram), lag)?;
        }
        self.dropped += other.dropped;
        self.offered += other.offered;
        Ok(())
    }

    /// Empties every count, keeping the histograms' memory for the next interval.
    pub fn clear(&mut self) {
        for latencies in self.by_request.values_mut() {
            latencies.corrected.reset();
            latencies.uncorrected.reset();
        }
        if let Some(lag) = &mut self.schedule_lag {
            lag.reset();
        }
        self.dropped = 0;
        self.offered = 0;
    }

    /// Requests that completed (any outcome).
    pub fn completed(&self) -> u64 {
        self.by_request.values().map(|latencies| latencies.corrected.len()).sum()
    }

    pub fn errors(&self) -> u64 {
        self.by_request.iter().filter(|((_, outcome), _)| !outcome.is_ok()).map(|(_, l)| l.corrected.len()).sum()
    }

    /// Errors by their outcome's label (`http_503`, `timeout`, …).
    pub fn errors_by_kind(&self) -> BTreeMap<String, u64> {
        let mut kinds = BTreeMap::new();
        for ((_, outcome), latencies) in &self.by_request {
            // Cleared intervals keep their keys with empty histograms: only counts show.
            if !outcome.is_ok() && !latencies.corrected.is_empty() {
                *kinds.entry(outcome.to_string()).or_insert(0) += latencies.corrected.len();
            }
        }
        kinds
    }

    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.completed() - self.errors()
    }

    /// Corrected latency over every request that succeeded.
    pub fn ok_latency(&self, corrected: bool) -> Histogram<u64> {
        let mut all = new_histogram();
        for ((_, outcome), latencies) in &self.by_request {
            if outcome.is_ok() {
                // Every histogram here was made by `new_histogram` or checked by `merge`.
                let _ = all.add(if corrected { &latencies.corrected } else { &latencies.uncorrected });
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
    decode_bytes(&bytes)
}

/// A histogram from its V2 encoding, re-bounded as ours.
pub fn decode_bytes(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let decoded: Histogram<u64> =
        Deserializer::new().deserialize(&mut &bytes[..]).map_err(|error| format!("{error:?}"))?;
    // Re-bound it as ours, so it merges with everything else; a foreign one fails here.
    if !decoded.is_empty() && decoded.max() > MAX_MICROS {
        return Err(format!("histogram holds {} µs, beyond {MAX_MICROS} µs", decoded.max()));
    }
    let mut ours = new_histogram();
    ours.add(&decoded).map_err(|error| format!("{error:?}"))?;
    Ok(ours)
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
        merged.merge(&slow).unwrap();
        // The p95 of the union is slow, though neither part's p95 averaged says so.
        let p95 = merged.quantile(0.95).unwrap();
        assert!(p95 >= Duration::from_millis(99), "{p95:?}");
        assert!(merged.ok_latency(false).value_at_quantile(0.95) < 3_000, "uncorrected stays low");
    }

    #[test]
    fn errors_and_drops_are_ratios_of_their_own_totals() {
        let mut stats = Stats { offered: 10, dropped: 2, ..Stats::default() };
        for outcome in [Outcome::Ok, Outcome::Ok, Outcome::Status(503), Outcome::Error(ErrorKind::ConnectRefused)] {
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
