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
    scheduler: Arc<Mutex<SchedulerTotals>>,
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
        Ok(Self {
            handle,
            process: Arc::new(process),
            runtime_prefix: program.replace('-', "_").into(),
            scheduler: Arc::default(),
        })
    }

    /// Refreshes process and runtime gauges, then renders the Prometheus text format.
    /// Blocking: it reads /proc (a file per thread) under a std mutex. Async code
    /// calls [`MetricsRecorder::render_async`].
    pub fn render(&self) -> String {
        self.process.collect();
        self.record_runtime();
        self.record_scheduler();
        self.handle.render()
    }

    /// [`MetricsRecorder::render`] on the runtime's blocking pool, for a `/metrics`
    /// handler: a scrape never holds up a worker thread, however slow /proc is.
    pub async fn render_async(&self) -> String {
        let recorder = self.clone();
        match tokio::task::spawn_blocking(move || recorder.render()).await {
            Ok(page) => page,
            // The runtime is shutting down: answer anyway.
            Err(_) => self.render(),
        }
    }

    /// CPU time and run-queue wait of all the process's threads (Linux schedstat):
    /// how long they ran, and how long they were runnable but waited for a CPU. The
    /// second is the direct sign of a CPU-starved process, which host-wide CPU figures
    /// only hint at.
    fn record_scheduler(&self) {
        let mut totals = self.scheduler.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !totals.refresh() {
            return;
        }
        let prefix = &self.runtime_prefix;
        metrics::gauge!(format!("{prefix}_cpu_run_seconds")).set(totals.run_seconds());
        metrics::gauge!(format!("{prefix}_cpu_run_queue_wait_seconds")).set(totals.wait_seconds());
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

/// Per-thread schedstat figures, kept for threads that have exited so the totals
/// never go down (a blocking-pool thread that ends must not look like a counter reset).
#[derive(Debug, Default)]
struct SchedulerTotals {
    /// Thread id → (nanoseconds on a CPU, nanoseconds waiting for one).
    threads: std::collections::HashMap<u32, (u64, u64)>,
}

impl SchedulerTotals {
    /// Reads /proc/self/task/*/schedstat; false where there is no such file.
    fn refresh(&mut self) -> bool {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return false };
        for task in tasks.filter_map(Result::ok) {
            let Some(tid) = task.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
            let mut fields = text.split_whitespace().map(|field| field.parse::<u64>().unwrap_or(0));
            if let (Some(run), Some(wait)) = (fields.next(), fields.next()) {
                self.threads.insert(tid, (run, wait));
            }
        }
        !self.threads.is_empty()
    }

    fn run_seconds(&self) -> f64 {
        self.threads.values().map(|(run, _)| *run).sum::<u64>() as f64 / 1e9
    }

    fn wait_seconds(&self) -> f64 {
        self.threads.values().map(|(_, wait)| *wait).sum::<u64>() as f64 / 1e9
    }
}

#[cfg(test)]
mod scheduler_tests {
    use super::SchedulerTotals;

    #[test]
    fn a_busy_thread_shows_cpu_time_and_keeps_it_after_it_exits() {
        let mut totals = SchedulerTotals::default();
        assert!(totals.refresh(), "Linux has /proc/self/task/*/schedstat");
        let before = totals.run_seconds();
        let (started, ready) = std::sync::mpsc::channel();
        let spinner = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut spin = 0u64;
            while start.elapsed() < std::time::Duration::from_millis(300) {
                spin = std::hint::black_box(spin.wrapping_add(1));
                if start.elapsed() > std::time::Duration::from_millis(250) {
                    let _ = started.send(());
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        });
        // Seen while it runs (it has spun ~250 ms by now)…
        ready.recv().unwrap();
        totals.refresh();
        let while_running = totals.run_seconds();
        assert!(while_running - before >= 0.1, "{before} → {while_running}");
        spinner.join().unwrap();
        // …and still counted once it is gone.
        totals.refresh();
        assert!(totals.run_seconds() >= while_running);
    }
}
