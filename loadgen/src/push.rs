//! Pushes to a Prometheus Pushgateway: run results must outlive the process, and a
//! scrape can miss a short run entirely. Every `--push-interval` and once more after
//! the run (never relying on an exporter flushing at exit), loadgen PUTs its whole
//! metrics page to `/metrics/job/loadgen/run_id/<run id>/instance/<segment>`, so
//! segments of one run sit side by side and a later push replaces an earlier one.
//! The breaking point is its own gauge, `loadgen_breaking_point_rate`. A Pushgateway
//! that cannot be reached is a warning, never a failed run.

use std::time::Duration;

use loadlab_telemetry::MetricsRecorder;
use tokio_util::sync::CancellationToken;

use crate::schedule::Segment;

/// How long one push may take (the final one must fit in the grace period).
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Pusher {
    client: reqwest::Client,
    url: String,
    recorder: MetricsRecorder,
}

impl Pusher {
    pub fn new(base: &str, run_id: &str, segment: Segment, recorder: MetricsRecorder) -> Self {
        let url = format!(
            "{}/metrics/job/loadgen/run_id/{run_id}/instance/segment-{}-of-{}",
            base.trim_end_matches('/'),
            segment.index,
            segment.count
        );
        let client = reqwest::Client::builder().timeout(PUSH_TIMEOUT).build().expect("a client with a timeout only");
        Self { client, url, recorder }
    }

    /// Pushes the current metrics; the error says what went wrong.
    pub async fn push(&self) -> Result<(), String> {
        let response = self
            .client
            .put(&self.url)
            .header("content-type", "text/plain; version=0.0.4")
            .body(self.recorder.render_async().await)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(format!("{status} {}", body.trim()))
    }

    /// Pushes every `interval` until `stop`; warns once per streak of failures.
    pub fn spawn_periodic(&self, interval: Duration, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let pusher = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.cancelled() => return,
                }
                match pusher.push().await {
                    Ok(()) => failing = false,
                    Err(error) if !failing => {
                        eprintln!("loadgen: warning: push to {} failed: {error}", pusher.url);
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}
