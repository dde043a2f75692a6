//! loadgen's Prometheus metrics, with every handle the attack loop touches per
//! request made once: a label set is built the first time a (request, outcome) pair
//! is seen, never again, so recording an answer costs an atomic add or two.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use crate::metrics as names;
use crate::outcome::Outcome;
use crate::schedule::Segment;

pub struct Meter {
    scenario: &'static str,
    requests: &'static [&'static str],
    segment: String,
    /// (request, outcome) → its counter and latency histogram; a handful of entries,
    /// so a linear search beats hashing.
    answered: Vec<((u8, Outcome), Counter, Histogram)>,
    lag: Histogram,
    dropped: Counter,
    in_flight: Gauge,
    offered_rate: Gauge,
}

impl Meter {
    pub fn new(scenario: &'static str, requests: &'static [&'static str], segment: Segment) -> Self {
        let segment = segment.to_string();
        let dropped = metrics::counter!(names::DROPPED, "scenario" => scenario, "segment" => segment.clone());
        // Registered at zero, so "nothing dropped" is a series, not a gap.
        dropped.increment(0);
        Self {
            scenario,
            requests,
            lag: metrics::histogram!(names::SCHEDULE_LAG, "segment" => segment.clone()),
            in_flight: metrics::gauge!(names::IN_FLIGHT, "segment" => segment.clone()),
            offered_rate: metrics::gauge!(names::CURRENT_STEP_RATE, "segment" => segment.clone()),
            dropped,
            segment,
            answered: Vec::new(),
        }
    }

    pub fn step_started(&self, rate: Option<f64>) {
        if let Some(rate) = rate {
            self.offered_rate.set(rate);
        }
    }

    pub fn lag(&self, lag: Duration) {
        self.lag.record(lag.as_secs_f64());
    }

    pub fn dropped(&self) {
        self.dropped.increment(1);
    }

    pub fn in_flight(&self, count: usize) {
        self.in_flight.set(count as f64);
    }

    pub fn answered(&mut self, request: u8, outcome: Outcome, latency: Duration) {
        let key = (request, outcome);
        let index = match self.answered.iter().position(|(known, _, _)| *known == key) {
            Some(index) => index,
            None => {
                let name = self.requests.get(usize::from(request)).copied().unwrap_or("unknown");
                let labels = [
                    ("scenario", self.scenario.to_string()),
                    ("request", name.to_string()),
                    ("outcome", outcome.to_string()),
                    ("segment", self.segment.clone()),
                ];
                let handles =
                    (metrics::counter!(names::REQUESTS, &labels), metrics::histogram!(names::LATENCY, &labels));
                self.answered.push((key, handles.0, handles.1));
                self.answered.len() - 1
            }
        };
        let (_, counter, histogram) = &self.answered[index];
        counter.increment(1);
        histogram.record(latency.as_secs_f64());
    }
}
