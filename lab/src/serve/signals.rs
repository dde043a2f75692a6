//! The bottleneck signals of `monitoring/bottlenecks.toml`, read live: while a plan
//! runs, every [`EVERY`] each signal is asked of the lab's Prometheus over the last
//! [`WINDOW`] (the same query and limit loadgen's analysis uses at the end), so the
//! saturation can be watched building up before the verdict. Each sample is recorded
//! in the store and sent to the run's watchers; a finished run shows them again.
//!
//! The query client is the workspace's one ([`loadgen::prometheus::Prometheus`]); the
//! signals are loadgen's ([`loadgen::bottleneck::load`]).

use std::time::{Duration, Instant, SystemTime};

use loadgen::bottleneck::Signal;
use loadgen::prometheus::Prometheus;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::live::{Event, Live};
use super::store::Store;

/// How often the signals are read.
pub const EVERY: Duration = Duration::from_secs(2);
/// The window of each rate (`$window`): a few scrapes at the lab's 1 s interval.
pub const WINDOW: &str = "5s";

/// One signal at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalValue {
    pub resource: String,
    /// The largest value over the query's series (the busiest host, worker, …).
    pub value: Option<f64>,
    /// The value that means fully saturated.
    pub limit: f64,
    /// Why there is no value, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SignalValue {
    /// `value` as a share of the limit.
    pub fn saturation(&self) -> Option<f64> {
        self.value.map(|value| value / self.limit)
    }
}

/// Every signal at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalSample {
    /// Seconds since the load started (the x of the run's seconds).
    pub second: f64,
    /// When it was read (RFC 3339).
    pub at: String,
    pub signals: Vec<SignalValue>,
}

/// Reads every signal now, over the last [`WINDOW`].
pub async fn read(prometheus: &Prometheus, signals: &[Signal], second: f64) -> SignalSample {
    let now = SystemTime::now();
    let mut values = Vec::with_capacity(signals.len());
    for signal in signals {
        let query = signal.query.replace("$window", WINDOW);
        let (value, error) = match prometheus.query(&query, now).await {
            Ok(series) => (
                series
                    .iter()
                    .flat_map(|series| series.samples.iter().map(|(_, value)| *value))
                    .filter(|value| value.is_finite())
                    .reduce(f64::max),
                None,
            ),
            Err(error) => (None, Some(error.to_string())),
        };
        values.push(SignalValue { resource: signal.resource.clone(), value, limit: signal.limit, error });
    }
    SignalSample { second, at: super::store::now(), signals: values }
}

/// Samples the signals into the store and to the run's watchers until `stop`.
pub async fn sample(
    run_id: String,
    prometheus: String,
    signals_file: std::path::PathBuf,
    store: Store,
    live: std::sync::Arc<Live>,
    stop: CancellationToken,
) {
    let signals = match loadgen::bottleneck::load(&signals_file) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!(run = run_id, "no live bottleneck signals: {error}");
            return;
        }
    };
    let prometheus = Prometheus::new(&prometheus);
    let started = Instant::now();
    let mut ticks = tokio::time::interval(EVERY);
    let mut position = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let sample = tokio::select! {
            sample = read(&prometheus, &signals, started.elapsed().as_secs_f64().round()) => sample,
            () = stop.cancelled() => return,
        };
        if let Err(error) = store.add_signal_sample(&run_id, position, &sample).await {
            tracing::warn!(run = run_id, "recording live signals: {error}");
        }
        live.send(&run_id, Event::Signals { position, sample: Box::new(sample) });
        position += 1;
    }
}
