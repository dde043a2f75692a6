//! Bottleneck analysis: after a breakpoint search, ask Prometheus which resource
//! saturated. The signals are data (`monitoring/bottlenecks.toml`): each is read over
//! the last step that held and over the first that broke (each over its own step's
//! window) and scored against its limit.
//!
//! Ranking follows cause before symptom. A signal at or over its limit is saturated;
//! saturated signals come first, ordered by their `precedence`: the generator (its
//! figures are void when it cannot keep up), then what slows everything else (CPU,
//! disk, memory: 1), then capacity limits (pools, connections, workers: 2), then the
//! queues and waits those produce (3). A starved CPU makes every wait grow, so a
//! wait must not outrank it. Signals under their limits follow, by saturation at the
//! broken step plus its growth from the held one.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::prometheus::Prometheus;

/// One saturation signal, as listed in the signals file.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Signal {
    pub resource: String,
    pub kind: String,
    pub query: String,
    pub limit: f64,
    pub reading: String,
    #[serde(default)]
    pub generator: bool,
    /// Its figure is the generator's lateness in seconds, judged against the SLO's
    /// latency as well as its limit (see [`lateness_allowed`]).
    #[serde(default)]
    pub lateness: bool,
    /// 1 resources that slow everything, 2 capacity limits, 3 queues and waits.
    #[serde(default = "default_precedence")]
    pub precedence: u8,
}

fn default_precedence() -> u8 {
    2
}

#[derive(Deserialize)]
struct SignalFile {
    signal: Vec<Signal>,
}

#[derive(Debug, thiserror::Error)]
pub enum BottleneckError {
    #[error("reading {path}: {detail}")]
    File { path: String, detail: String },
}

/// Reads and checks a signals file.
pub fn load(path: &Path) -> Result<Vec<Signal>, BottleneckError> {
    let failed = |detail: String| BottleneckError::File { path: path.display().to_string(), detail };
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    let file: SignalFile = toml::from_str(&text).map_err(|error| failed(error.to_string()))?;
    // Also refuses NaN, which a plain `limit <= 0.0` would let through.
    if let Some(bad) = file.signal.iter().find(|signal| !signal.limit.is_finite() || signal.limit <= 0.0) {
        return Err(failed(format!("signal `{}`: limit must be a positive number", bad.resource)));
    }
    Ok(file.signal)
}

/// A signal's figures at the two steps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reading {
    pub resource: String,
    pub kind: String,
    pub reading: String,
    pub query: String,
    pub limit: f64,
    pub generator: bool,
    #[serde(default = "default_precedence")]
    pub precedence: u8,
    /// Over the last step that held.
    pub held: Option<f64>,
    /// Over the first step that broke.
    pub broke: Option<f64>,
    /// `broke` (or `held` when nothing broke) as a share of the limit.
    pub saturation: Option<f64>,
    /// Growth from held to broke, as a share of the limit.
    pub growth: Option<f64>,
    /// Why there is no figure, when there is none.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Analysis {
    pub verdict: String,
    /// Most saturated first.
    pub ranking: Vec<Reading>,
}

/// A step's window: it ended at `end` and lasted `length`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub end: SystemTime,
    pub length: Duration,
}

/// Scores and ranks `readings`, most saturated first; unreadable signals last.
pub fn rank(mut readings: Vec<Reading>) -> Vec<Reading> {
    for reading in &mut readings {
        let at = reading.broke.or(reading.held);
        reading.saturation = at.map(|value| value / reading.limit);
        reading.growth = match (reading.held, reading.broke) {
            (Some(held), Some(broke)) => Some((broke - held) / reading.limit),
            _ => None,
        };
    }
    let key = |reading: &Reading| reading.saturation.map(|s| s + reading.growth.unwrap_or(0.0).max(0.0));
    // Saturated first, by precedence (the generator before everything).
    let tier = |reading: &Reading| match reading.saturation {
        Some(saturation) if saturation >= 1.0 => (0, if reading.generator { 0 } else { reading.precedence }),
        _ => (1, 0),
    };
    readings.sort_by(|a, b| {
        tier(a).cmp(&tier(b)).then_with(|| match (key(a), key(b)) {
            (Some(a), Some(b)) => b.total_cmp(&a),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
    });
    readings
}

/// One sentence naming the bottleneck, from a ranking.
pub fn verdict(ranking: &[Reading]) -> String {
    let Some(top) = ranking.first().filter(|top| top.saturation.is_some_and(|s| s >= 0.5)) else {
        return "no listed signal reached half its limit: the bottleneck is not among the signals".into();
    };
    let figure = |value: Option<f64>| value.map_or("–".to_string(), |value| format!("{value:.3}"));
    let detail = format!(
        "{} went from {} to {} (limit {})",
        top.reading,
        figure(top.held),
        figure(top.broke.or(top.held)),
        top.limit
    );
    if top.generator {
        format!("the load generator saturated first, not the server: {detail}")
    } else {
        format!("{} saturated first: {detail}", top.resource)
    }
}

/// How late the generator may be before its lateness, not the server, is what broke
/// the SLO. Its lateness is inside every corrected latency, so it matters only as a
/// good part of the latency judged: a quarter of the SLO's latency limit, or half the
/// latency the broken step measured, whichever is larger. A generator a little late
/// (another process on its CPU, say) then does not hide a server that saturated.
pub fn lateness_allowed(slo_latency: Duration, broken_latency: Option<Duration>) -> Duration {
    (slo_latency / 4).max(broken_latency.unwrap_or_default() / 2)
}

/// The limit a signal is judged against: the file's, or for a lateness signal at
/// least the lateness `allowed` (see [`lateness_allowed`]).
pub fn effective_limit(signal: &Signal, allowed: Option<Duration>) -> f64 {
    match allowed {
        Some(allowed) if signal.lateness => signal.limit.max(allowed.as_secs_f64()),
        _ => signal.limit,
    }
}

/// Reads every signal over `held` and `broke` from `prometheus`, judging each against
/// its [`effective_limit`] with the generator's lateness `allowed`. A signal that
/// cannot be read keeps its error; when none can, the verdict says so.
pub async fn analyse(
    prometheus: &Prometheus,
    signals: &[Signal],
    held: Option<Window>,
    broke: Option<Window>,
    allowed: Option<Duration>,
) -> Analysis {
    let mut readings = Vec::new();
    for signal in signals {
        let mut error = None;
        let mut at = async |window: Option<Window>| -> Option<f64> {
            let window = window?;
            let seconds = window.length.as_secs().max(1);
            let query = signal.query.replace("$window", &format!("{seconds}s"));
            match prometheus.query(&query, window.end).await {
                // The largest finite value over the series, `None` when there is none.
                Ok(series) => series
                    .iter()
                    .flat_map(|series| series.samples.iter().map(|(_, value)| *value))
                    .filter(|value| value.is_finite())
                    .reduce(f64::max),
                Err(detail) => {
                    error = Some(detail);
                    None
                }
            }
        };
        let (held, broke) = (at(held).await, at(broke).await);
        readings.push(Reading {
            resource: signal.resource.clone(),
            kind: signal.kind.clone(),
            reading: signal.reading.clone(),
            query: signal.query.clone(),
            limit: effective_limit(signal, allowed),
            generator: signal.generator,
            precedence: signal.precedence,
            held,
            broke,
            saturation: None,
            growth: None,
            error,
        });
    }
    let failed = readings.iter().filter(|reading| reading.error.is_some()).count();
    let first_error = readings.iter().find_map(|reading| reading.error.clone());
    let ranking = rank(readings);
    let verdict = match (failed, first_error) {
        (0, _) => verdict(&ranking),
        (failed, Some(error)) if failed == ranking.len() => {
            format!("no verdict: every query to Prometheus failed ({error})")
        }
        (failed, _) => format!("{} ({failed} of {} signals could not be read)", verdict(&ranking), ranking.len()),
    };
    Analysis { verdict, ranking }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(resource: &str, limit: f64, held: Option<f64>, broke: Option<f64>, generator: bool) -> Reading {
        ranked(resource, 2, limit, held, broke, generator)
    }

    fn ranked(
        resource: &str,
        precedence: u8,
        limit: f64,
        held: Option<f64>,
        broke: Option<f64>,
        generator: bool,
    ) -> Reading {
        Reading {
            resource: resource.into(),
            kind: "utilization".into(),
            reading: format!("{resource} figure"),
            query: String::new(),
            limit,
            generator,
            precedence,
            held,
            broke,
            saturation: None,
            growth: None,
            error: None,
        }
    }

    #[test]
    fn the_most_saturated_and_fastest_growing_ranks_first() {
        let ranking = rank(vec![
            reading("host CPU", 1.0, Some(0.5), Some(0.6), false),
            reading("pool", 0.05, Some(0.01), Some(0.05), false),
            reading("disk", 1.0, None, None, false),
            reading("memory", 1.0, Some(0.3), Some(0.3), false),
        ]);
        let order: Vec<&str> = ranking.iter().map(|r| r.resource.as_str()).collect();
        assert_eq!(order, ["pool", "host CPU", "memory", "disk"]);
        assert!(verdict(&ranking).starts_with("pool saturated first"), "{}", verdict(&ranking));
    }

    #[test]
    fn a_saturated_cause_outranks_the_waits_it_inflates() {
        // A starved CPU: the pool wait is far over its limit, but only because the
        // process cannot run; the CPU signal is just over its own.
        let ranking = rank(vec![
            ranked("pool wait", 3, 0.05, Some(0.01), Some(0.2), false),
            ranked("device-api CPU", 1, 0.5, Some(0.3), Some(0.55), false),
            ranked("pool in use", 2, 0.9, Some(0.5), Some(0.95), false),
            ranked("host memory", 1, 1.0, Some(0.2), Some(0.2), false),
        ]);
        let order: Vec<&str> = ranking.iter().map(|r| r.resource.as_str()).collect();
        assert_eq!(order, ["device-api CPU", "pool in use", "pool wait", "host memory"]);
        // Without the CPU saturated, the capacity limit comes before its queue.
        let ranking = rank(vec![
            ranked("pool wait", 3, 0.05, Some(0.01), Some(0.2), false),
            ranked("device-api CPU", 1, 0.5, Some(0.1), Some(0.2), false),
            ranked("pool in use", 2, 0.9, Some(0.5), Some(0.95), false),
        ]);
        assert_eq!(ranking[0].resource, "pool in use");
    }

    #[test]
    fn a_saturated_generator_is_named_as_such() {
        let ranking = rank(vec![
            reading("host CPU", 1.0, Some(0.4), Some(0.5), false),
            reading("load generator", 0.01, Some(0.001), Some(0.03), true),
        ]);
        assert!(verdict(&ranking).starts_with("the load generator saturated first, not the server"));
    }

    #[test]
    fn nothing_near_its_limit_is_said_plainly() {
        let ranking = rank(vec![reading("host CPU", 1.0, Some(0.1), Some(0.2), false)]);
        assert!(verdict(&ranking).starts_with("no listed signal"));
    }

    #[test]
    fn a_generator_a_little_late_does_not_hide_a_saturated_server() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/bottlenecks.toml");
        let generator = load(&path).unwrap().into_iter().find(|signal| signal.lateness).unwrap();
        // p99 lag 19 ms against a 100 ms SLO: late, but not what broke it.
        let slo = Some(lateness_allowed(Duration::from_millis(100), Some(Duration::from_millis(30))));
        assert_eq!(effective_limit(&generator, slo), 0.025);
        assert_eq!(effective_limit(&generator, None), generator.limit);
        let ranking = rank(vec![
            ranked("load generator", 2, effective_limit(&generator, slo), Some(0.009), Some(0.019), true),
            ranked("device-api CPU", 1, 0.5, Some(0.3), Some(0.6), false),
        ]);
        assert_eq!(ranking[0].resource, "device-api CPU");
        // Late by half the SLO: its figures are void, and the verdict says so.
        let ranking = rank(vec![
            ranked("load generator", 2, effective_limit(&generator, slo), Some(0.009), Some(0.05), true),
            ranked("device-api CPU", 1, 0.5, Some(0.3), Some(0.6), false),
        ]);
        assert_eq!(ranking[0].resource, "load generator");
        // 76 ms late where the server answered in 2 s: the server broke the SLO.
        let allowed = Some(lateness_allowed(Duration::from_millis(100), Some(Duration::from_secs(2))));
        assert_eq!(effective_limit(&generator, allowed), 1.0);
        let ranking = rank(vec![
            ranked("load generator", 2, effective_limit(&generator, allowed), Some(0.041), Some(0.076), true),
            ranked("device-api database pool", 2, 0.9, Some(0.5), Some(1.0), false),
        ]);
        assert_eq!(ranking[0].resource, "device-api database pool");
    }

    #[test]
    fn the_shipped_signals_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/bottlenecks.toml");
        let signals = load(&path).unwrap();
        assert!(signals.len() >= 8);
        // The generator's lag (a lateness) and its CPU wait (not one).
        assert_eq!(signals.iter().filter(|signal| signal.generator).count(), 2);
        assert!(signals.iter().filter(|signal| signal.lateness).all(|signal| signal.generator));
        assert_eq!(signals.iter().filter(|signal| signal.lateness).count(), 1);
        assert!(signals.iter().all(|signal| signal.query.contains("$window") || !signal.query.contains("rate(")));
    }
}
