//! The one Prometheus HTTP API client of the workspace: readiness, instant queries and
//! range queries, each bounded by a timeout, each failure a sentence that says what
//! went wrong (refused, timed out, an error answer), never a hang. Query parameters are
//! URL-encoded by reqwest (the only encoder the workspace uses). Async; a blocking
//! caller runs it on a current-thread runtime (the lab does, inside a namespace).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A Prometheus server's query API at `base` (`http://host:port`).
#[derive(Clone)]
pub struct Prometheus {
    base: String,
    client: reqwest::Client,
}

/// One series of a query's answer: its labels and its samples (unix seconds, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: std::collections::BTreeMap<String, String>,
    pub samples: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    result: Vec<RawSeries>,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

impl Prometheus {
    pub fn new(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .user_agent(concat!("loadlab/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with timeouts only");
        Self { base: base.trim_end_matches('/').to_string(), client }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether Prometheus answers: `/-/ready` must say 200.
    pub async fn ready(&self) -> Result<(), String> {
        let url = format!("{}/-/ready", self.base);
        let response = self.client.get(&url).send().await.map_err(|error| describe(&url, &error))?;
        if response.status().is_success() { Ok(()) } else { Err(format!("{url} answered {}", response.status())) }
    }

    /// The value of every series of `query` at `at`.
    pub async fn query(&self, query: &str, at: SystemTime) -> Result<Vec<Series>, String> {
        let time = unix(at)?;
        let url = format!("{}/api/v1/query", self.base);
        self.get(&url, &[("query", query.to_string()), ("time", format!("{time:.3}"))]).await
    }

    /// Every series of `query` from `from` to `to` (unix seconds) at `step`.
    pub async fn query_range(&self, query: &str, from: f64, to: f64, step: Duration) -> Result<Vec<Series>, String> {
        let url = format!("{}/api/v1/query_range", self.base);
        let parameters = [
            ("query", query.to_string()),
            ("start", format!("{from:.3}")),
            ("end", format!("{to:.3}")),
            ("step", format!("{}", step.as_secs_f64().max(0.001))),
        ];
        self.get(&url, &parameters).await
    }

    async fn get(&self, url: &str, parameters: &[(&str, String)]) -> Result<Vec<Series>, String> {
        let response = self.client.get(url).query(parameters).send().await.map_err(|error| describe(url, &error))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| describe(url, &error))?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| format!("{url} answered {status} with something other than Prometheus JSON"))?;
        if answer.status != "success" {
            return Err(format!("Prometheus: {}", answer.error.unwrap_or_else(|| format!("status {status}"))));
        }
        Ok(answer
            .data
            .map(|data| data.result)
            .unwrap_or_default()
            .into_iter()
            .map(|raw| {
                let samples = raw
                    .value
                    .into_iter()
                    .chain(raw.values)
                    .filter_map(|(time, value)| value.parse::<f64>().ok().map(|value| (time, value)))
                    .collect();
                Series { labels: raw.metric, samples }
            })
            .collect())
    }
}

fn unix(at: SystemTime) -> Result<f64, String> {
    at.duration_since(UNIX_EPOCH).map(|since| since.as_secs_f64()).map_err(|error| error.to_string())
}

fn describe(url: &str, error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("{url}: no answer within {} s", QUERY_TIMEOUT.as_secs())
    } else if error.is_connect() {
        format!("{url}: cannot connect")
    } else {
        format!("{url}: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_prometheus_that_is_not_there_is_a_sentence() {
        let port = crate::ports::free_loopback_port().unwrap();
        let prometheus = Prometheus::new(&format!("http://127.0.0.1:{port}/"));
        assert_eq!(prometheus.base(), format!("http://127.0.0.1:{port}"));
        let refused = prometheus.query("up", SystemTime::now()).await.unwrap_err();
        assert_eq!(refused, format!("http://127.0.0.1:{port}/api/v1/query: cannot connect"));
    }
}
