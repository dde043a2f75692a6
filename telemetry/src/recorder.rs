//! The Prometheus recorder. Histograms get explicit buckets (never the summary
//! default, so they can be summed across instances), and every render first refreshes
//! the process and tokio runtime gauges so a scrape always sees current values.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("invalid histogram buckets for {metric}: {reason}")]
    Buckets { metric: String, reason: String },
    #[error("could not install the metrics recorder: {0}")]
    Install(String),
}

/// A handle to the installed recorder; cheap to clone, render it for `/metrics`.
#[derive(Clone)]
pub struct MetricsRecorder {
    handle: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
    runtime_prefix: Arc<str>,
}

impl MetricsRecorder {
    /// Installs the global recorder. `program` prefixes the runtime metrics
    /// (`<program>_tokio_workers`, …); `histograms` maps a metric-name suffix to its
    /// bucket bounds. The global recorder exists once per process: tests that start
    /// several servers in one process get the first installation back.
    pub fn install(program: &str, histograms: &[(&str, &[f64])]) -> Result<Self, RecorderError> {
        static INSTALLED: Mutex<Option<MetricsRecorder>> = Mutex::new(None);
        let mut installed = INSTALLED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = installed.as_ref() {
            return Ok(existing.clone());
        }
        let recorder = Self::build(program, histograms)?;
        *installed = Some(recorder.clone());
        Ok(recorder)
    }

    fn build(program: &str, histograms: &[(&str, &[f64])]) -> Result<Self, RecorderError> {
        let mut builder = PrometheusBuilder::new();
        for (suffix, buckets) in histograms {
            builder = builder
                .set_buckets_for_metric(Matcher::Suffix((*suffix).to_string()), buckets)
                .map_err(|e| RecorderError::Buckets { metric: (*suffix).to_string(), reason: e.to_string() })?;
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| RecorderError::Install(e.to_string()))?;
        let process = metrics_process::Collector::default();
        process.describe();
        let upkeep = handle.clone();
        // The exporter keeps histogram samples until upkeep drains them into buckets.
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .map_err(|e| RecorderError::Install(e.to_string()))?;
        Ok(Self { handle, process: Arc::new(process), runtime_prefix: program.replace('-', "_").into() })
    }

    /// Refreshes process and runtime gauges, then renders the Prometheus text format.
    pub fn render(&self) -> String {
        self.process.collect();
        self.record_runtime();
        self.handle.render()
    }

    fn record_runtime(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stats = runtime.metrics();
        let prefix = &self.runtime_prefix;
        metrics::gauge!(format!("{prefix}_tokio_workers")).set(stats.num_workers() as f64);
        metrics::gauge!(format!("{prefix}_tokio_alive_tasks")).set(stats.num_alive_tasks() as f64);
        metrics::gauge!(format!("{prefix}_tokio_global_queue_depth")).set(stats.global_queue_depth() as f64);
        // Cumulative and monotonic, but fractional: exported as a gauge of seconds so
        // `rate()` works without rounding to whole-second counter increments.
        for worker in 0..stats.num_workers() {
            metrics::gauge!(format!("{prefix}_tokio_worker_busy_seconds"), "worker" => worker.to_string())
                .set(stats.worker_total_busy_duration(worker).as_secs_f64());
        }
    }
}
