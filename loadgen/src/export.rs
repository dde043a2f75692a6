//! `loadgen export`: Prometheus series over a time range into one CSV, so runs can be
//! compared offline without the Prometheus that watched them.
//!
//! By default the range is a run's (from its `summary.json`: start to the end of its
//! last step) and the queries are every bottleneck signal plus every RED recording
//! rule, so the CSV holds what the analysis looked at and what the dashboards show.
//! The CSV is long-form, one row per sample: `time,name,labels,value`, where `name`
//! is the signal's resource or the rule's name and `labels` the series' label set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::prometheus::Prometheus;

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportPlan {
    pub prometheus: String,
    /// Unix seconds.
    pub from: f64,
    pub to: f64,
    pub step: Duration,
    /// (name, PromQL).
    pub queries: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Input(String),
    #[error("Prometheus: query `{name}` failed: {detail}")]
    Query { name: String, detail: String },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// The window of the run whose `summary.json` is at `path`: (start, end) in unix seconds.
pub fn run_window(path: &Path) -> Result<(f64, f64), ExportError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| ExportError::Input(format!("{}: {error}", path.display())))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).map_err(|error| ExportError::Input(format!("{}: {error}", path.display())))?;
    let started = summary["started_at"]
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .ok_or_else(|| ExportError::Input(format!("{}: no started_at", path.display())))?;
    let seconds: f64 = summary["steps"]
        .as_array()
        .map(|steps| steps.iter().filter_map(|step| step["duration_seconds"].as_f64()).sum())
        .unwrap_or(0.0);
    let from = started.timestamp_millis() as f64 / 1000.0;
    Ok((from, from + seconds))
}

/// The default queries: every signal of `bottlenecks` (its `$window` set to `window`)
/// and every `- record:` of the rule files.
pub fn default_queries(
    bottlenecks: &Path,
    rule_files: &[PathBuf],
    window: Duration,
) -> Result<Vec<(String, String)>, ExportError> {
    let signals = crate::bottleneck::load(bottlenecks).map_err(|error| ExportError::Input(error.to_string()))?;
    let window = format!("{}s", window.as_secs().max(1));
    let mut queries: Vec<(String, String)> =
        signals.iter().map(|signal| (signal.resource.clone(), signal.query.replace("$window", &window))).collect();
    for file in rule_files {
        let text = std::fs::read_to_string(file)
            .map_err(|error| ExportError::Input(format!("{}: {error}", file.display())))?;
        for record in text.lines().filter_map(|line| line.trim().strip_prefix("- record: ")) {
            queries.push((record.trim().to_string(), record.trim().to_string()));
        }
    }
    Ok(queries)
}

/// Runs every query over the range and writes the CSV; returns the number of rows.
pub async fn export(plan: &ExportPlan, out: &Path) -> Result<usize, ExportError> {
    if plan.to <= plan.from {
        return Err(ExportError::Input(format!("--to ({}) must be after --from ({})", plan.to, plan.from)));
    }
    let prometheus = Prometheus::new(&plan.prometheus);
    let mut csv = String::from("time,name,labels,value\n");
    let mut rows = 0;
    for (name, query) in &plan.queries {
        let failed = |detail: String| ExportError::Query { name: name.clone(), detail };
        let series = prometheus.query_range(query, plan.from, plan.to, plan.step).await.map_err(failed)?;
        for one in series {
            let labels = labels(&one.labels);
            for (time, value) in one.samples {
                csv.push_str(&format!("{time:.3},{},{},{value}\n", quote(name), quote(&labels)));
                rows += 1;
            }
        }
    }
    std::fs::write(out, csv).map_err(|source| ExportError::Write { path: out.display().to_string(), source })?;
    Ok(rows)
}

/// `{a="1",b="2"}`, keys sorted.
fn labels(metric: &std::collections::BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = metric.iter().map(|(key, value)| format!("{key}={value:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// A CSV field, quoted when it holds a comma or a quote.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_string() }
}

/// A time given as RFC 3339 or unix seconds.
pub fn parse_time(text: &str) -> Result<f64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return if seconds.is_finite() && seconds >= 0.0 {
            Ok(seconds)
        } else {
            Err(format!("`{text}`: unix seconds must be a finite number ≥ 0"))
        };
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis() as f64 / 1000.0)
        .map_err(|_| format!("`{text}`: expected RFC 3339 (2026-11-23T10:00:00Z) or unix seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_are_quoted_and_labels_sorted() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("{a=\"1\",b=\"2\"}"), "\"{a=\"\"1\"\",b=\"\"2\"\"}\"");
        let metric = [("job", "x"), ("instance", "y")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        assert_eq!(labels(&metric), "{instance=\"y\",job=\"x\"}");
        assert!(parse_time("NaN").is_err());
        assert_eq!(parse_time("1700000000.5").unwrap(), 1_700_000_000.5);
        assert_eq!(parse_time("2026-11-23T00:00:00Z").unwrap(), 1_795_392_000.0);
        assert!(parse_time("yesterday").is_err());
    }
}
