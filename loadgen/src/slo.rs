//! The service-level objective a step must hold, and k6-style thresholds on the whole
//! run. Both read a [`Stats`] and say, in words, what failed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::Stats;

/// Limits a load step must stay within to count as held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Corrected latency quantile (e.g. 0.99) of successful requests…
    pub latency_quantile: f64,
    /// …must stay at or below this.
    pub latency_limit: Duration,
    /// Failed requests / completed requests must stay at or below this.
    pub max_error_ratio: f64,
    /// Achieved rate / offered rate must stay at or above this.
    pub min_achieved_ratio: f64,
    /// Dropped requests / offered requests must stay at or below this.
    pub max_dropped_ratio: f64,
}

/// A step's verdict: `None` when held, else every limit it broke.
pub fn check(slo: &Slo, stats: &Stats, offered_rate: f64, achieved_rate: f64) -> Vec<String> {
    let mut broken = Vec::new();
    match stats.quantile(slo.latency_quantile) {
        Some(latency) if latency > slo.latency_limit => broken.push(format!(
            "p{} latency {:.1} ms > {:.1} ms",
            slo.latency_quantile * 100.0,
            latency.as_secs_f64() * 1000.0,
            slo.latency_limit.as_secs_f64() * 1000.0
        )),
        None if stats.offered > 0 => broken.push("no request succeeded".into()),
        _ => {}
    }
    if stats.error_ratio() > slo.max_error_ratio {
        broken.push(format!("errors {:.2}% > {:.2}%", stats.error_ratio() * 100.0, slo.max_error_ratio * 100.0));
    }
    if offered_rate > 0.0 && achieved_rate / offered_rate < slo.min_achieved_ratio {
        broken.push(format!(
            "achieved {achieved_rate:.0}/s is {:.1}% of offered {offered_rate:.0}/s (< {:.0}%)",
            achieved_rate / offered_rate * 100.0,
            slo.min_achieved_ratio * 100.0
        ));
    }
    if stats.dropped_ratio() > slo.max_dropped_ratio {
        broken.push(format!("dropped {:.2}% > {:.2}%", stats.dropped_ratio() * 100.0, slo.max_dropped_ratio * 100.0));
    }
    broken
}

/// `p99<250ms`, `p50<=10ms`, `errors<1%`, `dropped<0.5%`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Threshold {
    Latency { quantile: f64, limit: Duration, text: String },
    Errors { max_ratio: f64, text: String },
    Dropped { max_ratio: f64, text: String },
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (name, limit) = compact
            .split_once("<=")
            .or_else(|| compact.split_once('<'))
            .ok_or_else(|| format!("`{text}`: expected e.g. p99<250ms or errors<1%"))?;
        let percent = |limit: &str| -> Result<f64, String> {
            let number = limit.strip_suffix('%').ok_or_else(|| format!("`{text}`: give the limit in %, e.g. 1%"))?;
            crate::cli::values::percent(number).map(|value| value / 100.0).map_err(|error| format!("`{text}`: {error}"))
        };
        match name {
            "errors" => Ok(Self::Errors { max_ratio: percent(limit)?, text: text.to_string() }),
            "dropped" => Ok(Self::Dropped { max_ratio: percent(limit)?, text: text.to_string() }),
            _ => {
                let quantile: f64 = name
                    .strip_prefix('p')
                    .and_then(|digits| digits.parse().ok())
                    .filter(|q: &f64| *q > 0.0 && *q <= 100.0)
                    .ok_or_else(|| format!("`{text}`: `{name}` is not p50, p99, p99.9, errors or dropped"))?;
                let limit = crate::cli::values::timeout(limit).map_err(|error| format!("`{text}`: {error}"))?;
                Ok(Self::Latency { quantile: quantile / 100.0, limit, text: text.to_string() })
            }
        }
    }
}

impl Threshold {
    /// As the user wrote it.
    pub fn text(&self) -> &str {
        match self {
            Self::Latency { text, .. } | Self::Errors { text, .. } | Self::Dropped { text, .. } => text,
        }
    }

    /// `None` when held, else what broke it.
    pub fn check(&self, stats: &Stats) -> Option<String> {
        match self {
            Self::Latency { quantile, limit, text } => {
                let latency = stats.quantile(*quantile)?;
                (latency > *limit).then(|| format!("{text}: was {:.1} ms", latency.as_secs_f64() * 1000.0))
            }
            Self::Errors { max_ratio, text } => {
                (stats.error_ratio() > *max_ratio).then(|| format!("{text}: was {:.2}%", stats.error_ratio() * 100.0))
            }
            Self::Dropped { max_ratio, text } => (stats.dropped_ratio() > *max_ratio)
                .then(|| format!("{text}: was {:.2}%", stats.dropped_ratio() * 100.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Outcome;

    #[test]
    fn thresholds_parse_and_check() {
        let mut stats = Stats { offered: 100, ..Stats::default() };
        for millis in 1..=100 {
            stats.record("r", Outcome::Ok, Duration::from_millis(millis), Duration::from_millis(1));
        }
        let p99: Threshold = "p99<250ms".parse().unwrap();
        assert_eq!(p99.check(&stats), None);
        let p50: Threshold = "p50 < 10ms".parse().unwrap();
        assert!(p50.check(&stats).unwrap().contains("was"));
        let errors: Threshold = "errors<1%".parse().unwrap();
        assert_eq!(errors.check(&stats), None);
        assert!("p999x<1ms".parse::<Threshold>().is_err());
        assert!("errors<1".parse::<Threshold>().is_err());
        assert!("latency>3".parse::<Threshold>().is_err());
        assert!("errors<NaN%".parse::<Threshold>().is_err());
        assert!("p0<1ms".parse::<Threshold>().is_err());
        assert!("pNaN<1ms".parse::<Threshold>().is_err());
    }

    #[test]
    fn slo_names_each_broken_limit() {
        let slo = Slo {
            latency_quantile: 0.99,
            latency_limit: Duration::from_millis(50),
            max_error_ratio: 0.01,
            min_achieved_ratio: 0.95,
            max_dropped_ratio: 0.01,
        };
        let mut stats = Stats { offered: 100, dropped: 5, ..Stats::default() };
        for _ in 0..95 {
            stats.record("r", Outcome::Ok, Duration::from_millis(100), Duration::from_millis(1));
        }
        let broken = check(&slo, &stats, 100.0, 80.0);
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken[0].starts_with("p99 latency"));
        assert!(
            check(&slo, &Stats { offered: 100, ..Stats::default() }, 100.0, 100.0)
                .contains(&"no request succeeded".to_string())
        );
    }
}
