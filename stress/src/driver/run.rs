//! One driver run, as named steps: prepare (working directory, certificates, the
//! matrix), start the servers and wait until each accepts connections, start the
//! clients, supervise (sample, hold to ceilings, stop and restart the unstable ones)
//! until the duration, a failure or a signal, stop everything (clients first), fit
//! the leak trends, and write the report.
//!
//! The loop never blocks the runtime: reading /proc, generating certificates and
//! drawing charts run on the blocking pool, and every wait on a child polls.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use loadlab_supervise::{Ready, Signal};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::component::{Component, rss_bytes};
use super::failure::Failure;
use super::leak::{self, Trend};
use super::matrix::{self, MatrixChoice, Role, SERVERS};
use super::options::DriverOptions;
use super::{ports, report};
use crate::heap::HEAP_OVERFLOW_EXIT;

/// How long a stopped component may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a server may take to accept connections.
const SERVER_READY_LIMIT: Duration = Duration::from_secs(15);
/// How long each component may take to exit at the end.
const END_GRACE: Duration = Duration::from_secs(10);

fn random_in((low, high): (Duration, Duration)) -> Duration {
    if low == high { low } else { rand::rng().random_range(low..=high) }
}

/// Runs the matrix until `--duration` has passed, a failure, or `stop` (SIGINT or
/// SIGTERM), at any stage; then every child is stopped and reaped before it returns
/// (on an early error, such as a child that cannot be spawned, the others are killed
/// as their handles drop).
pub async fn run(options: DriverOptions, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    loadlab_telemetry::init_logging(loadlab_telemetry::LogFormat::Human);
    warn_about_ephemeral_ports(&options);
    let mut run = Run::prepare(options, stop).await?;
    run.start_servers().await?;
    run.start_clients()?;
    run.supervise().await;
    run.stop_all().await;
    let trends = run.fit_trends();
    let verdict = run.verdict(&trends);
    run.write_report(trends, &verdict).await?;
    println!("grpc-stress driver {verdict}");
    Ok(if run.failure.is_none() && !run.interrupted { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn warn_about_ephemeral_ports(options: &DriverOptions) {
    if let Some(range) = ports::ephemeral_overlap(options.base_port, SERVERS.len() as u16) {
        eprintln!(
            "driver: warning: ports {}–{} lie in the ephemeral port range {range} ({}): an outgoing \
             connection may hold one while its server restarts; choose a --base-port outside it",
            options.base_port,
            options.base_port + SERVERS.len() as u16 - 1,
            ports::EPHEMERAL_RANGE_FILE
        );
    }
}

/// A run under way.
struct Run {
    options: DriverOptions,
    stop: CancellationToken,
    working_dir: PathBuf,
    /// This same binary: every component is a process of it.
    binary: PathBuf,
    page_size: u64,
    components: Vec<Component>,
    started: Instant,
    failure: Option<Failure>,
    interrupted: bool,
}

impl Run {
    /// The working directory, its certificates and the components of the matrix.
    async fn prepare(options: DriverOptions, stop: CancellationToken) -> anyhow::Result<Self> {
        let working_dir = options.working_dir.clone().unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            PathBuf::from(format!("grpc-stress-{}", now.as_secs()))
        });
        std::fs::create_dir_all(&working_dir).with_context(|| format!("creating {}", working_dir.display()))?;
        let certs_dir = working_dir.join("certs");
        let generating = certs_dir.clone();
        tokio::task::spawn_blocking(move || crate::certs::generate(&generating)).await??;
        let binary = std::env::current_exe().context("locating the grpc-stress binary")?;
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u64;
        let specs = matrix::components(&MatrixChoice {
            base_port: options.base_port,
            servers: &options.servers,
            patterns: &options.patterns,
            client_stabilities: &options.client_stabilities,
            server_ceiling: options.server_ceiling,
            client_ceiling: options.client_ceiling,
            certs_dir: &certs_dir,
        });
        anyhow::ensure!(!specs.is_empty(), "nothing to run: check --servers, --patterns and --client-stabilities");
        let components: Vec<Component> = specs.into_iter().map(|spec| Component::new(spec, &working_dir)).collect();
        println!(
            "grpc-stress driver: {} servers, {} clients, {:?}, working dir {}",
            components.iter().filter(|c| c.spec.role == Role::Server).count(),
            components.iter().filter(|c| c.spec.role == Role::Client).count(),
            options.duration,
            working_dir.display()
        );
        Ok(Self {
            options,
            stop,
            working_dir,
            binary,
            page_size,
            components,
            started: Instant::now(),
            failure: None,
            interrupted: false,
        })
    }

    /// The hidden `--debug-leak` arguments for `component`.
    fn extra_args(options: &DriverOptions, component: &Component) -> Vec<String> {
        options
            .debug_leak
            .iter()
            .filter(|(name, _)| *name == component.spec.name)
            .flat_map(|(_, rate)| ["--debug-leak-per-second".to_string(), rate.to_string()])
            .collect()
    }

    fn start(&mut self, role: Role) -> anyhow::Result<()> {
        for component in self.components.iter_mut().filter(|c| c.spec.role == role) {
            let extra = Self::extra_args(&self.options, component);
            component
                .start(&self.binary, &extra, self.options.verbose)
                .with_context(|| format!("starting {}", component.spec.name))?;
        }
        Ok(())
    }

    /// Servers first, each waited for until it accepts connections; a server that
    /// exits or stays closed is the run's failure, a signal ends the wait.
    async fn start_servers(&mut self) -> anyhow::Result<()> {
        self.start(Role::Server)?;
        for component in self.components.iter_mut().filter(|c| c.spec.role == Role::Server) {
            let port = component.spec.port.expect("servers have a port");
            let ready = Ready::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
            tokio::select! {
                waited = component.wait_ready(&ready, SERVER_READY_LIMIT) => if let Err(error) = waited {
                    self.failure.get_or_insert(Failure::Start { component: component.spec.name.clone(), error: error.to_string() });
                    return Ok(());
                },
                _ = self.stop.cancelled() => {
                    self.interrupted = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The clients, once every server is up; the unstable ones get their first stop.
    fn start_clients(&mut self) -> anyhow::Result<()> {
        if self.failure.is_none() && !self.interrupted {
            self.start(Role::Client)?;
        }
        for component in self.components.iter_mut().filter(|c| !c.spec.stable) {
            component.next_kill = Some(Instant::now() + random_in(self.options.kill_interval));
        }
        Ok(())
    }

    /// Every `--sample-interval` until the end, a failure or a signal: exits, memory
    /// samples against the ceilings, stops and restarts.
    async fn supervise(&mut self) {
        let mut ticker = tokio::time::interval(self.options.sample_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = self.started + self.options.duration;
        while self.failure.is_none() && !self.interrupted && Instant::now() < deadline {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.stop.cancelled() => { self.interrupted = true; break; }
            }
            let now = Instant::now();
            for index in 0..self.components.len() {
                self.check_exit(index, now);
            }
            self.sample_all(now).await;
            let at = now.duration_since(self.started).as_secs_f64();
            for component in &mut self.components {
                chaos(&self.options, component, (now, at), &self.binary, &mut self.failure);
            }
        }
    }

    /// Files a component's exit: a heap overflow or a stable component's exit fails
    /// the run; an unstable one is restarted after `--restart-delay`.
    fn check_exit(&mut self, index: usize, now: Instant) {
        let component = &mut self.components[index];
        let Some(status) = component.exited() else { return };
        let name = component.spec.name.clone();
        if status.code() == Some(HEAP_OVERFLOW_EXIT) {
            self.failure.get_or_insert(Failure::Ceiling {
                component: name,
                limit: component.spec.ceiling,
                peak: component.peak_heap.max(component.spec.ceiling),
                measure: "live heap, the process stopped itself",
            });
            return;
        }
        if component.stopping_since.take().is_none() {
            component.unexpected_exits.push(status.to_string());
            if component.spec.stable {
                self.failure.get_or_insert(Failure::StableExit { component: name, status: status.to_string() });
                return;
            }
        }
        component.restart_at = Some(now + random_in(self.options.restart_delay));
    }

    /// One memory sample of every running component (RSS read on the blocking
    /// pool); a process over its ceiling is killed and fails the run.
    async fn sample_all(&mut self, now: Instant) {
        let at = now.duration_since(self.started).as_secs_f64();
        let pids: Vec<Option<u32>> = self.components.iter().map(Component::pid).collect();
        let page_size = self.page_size;
        let rss = tokio::task::spawn_blocking(move || {
            pids.into_iter().map(|pid| pid.and_then(|pid| rss_bytes(pid, page_size))).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (component, rss) in self.components.iter_mut().zip(rss) {
            let Some(rss) = rss else { continue };
            let sample = component.record(at, rss);
            let ceiling = component.spec.ceiling;
            let breach = if sample.heap_bytes > ceiling {
                Some((sample.heap_bytes, "live heap"))
            } else if sample.rss_bytes > ceiling {
                Some((sample.rss_bytes, "RSS"))
            } else {
                None
            };
            if let Some((peak, measure)) = breach {
                component.kill().await;
                let component = component.spec.name.clone();
                self.failure.get_or_insert(Failure::Ceiling { component, limit: ceiling, peak, measure });
            }
        }
    }

    /// Stops clients first (a server's graceful shutdown waits for open streams),
    /// each group signalled at once and then awaited. A stable client's exit status
    /// carries its own verdict: it exits non-zero when any call failed. Killed by
    /// our SIGTERM is no verdict: a process that had only just started (a run stopped
    /// early) gets it before its handler is in place.
    async fn stop_all(&mut self) {
        for role in [Role::Client, Role::Server] {
            for component in self.components.iter_mut().filter(|c| c.spec.role == role) {
                component.terminate();
            }
            for component in self.components.iter_mut().filter(|c| c.spec.role == role) {
                let status = component.wait_exit(END_GRACE).await;
                if let Some(status) = status
                    && component.spec.stable
                    && !status.success()
                    && status.signal() != Some(Signal::SIGTERM as i32)
                    && self.failure.is_none()
                {
                    self.failure = Some(Failure::StableExit {
                        component: component.spec.name.clone(),
                        status: format!("{status} at shutdown (see {})", component.log_path.display()),
                    });
                }
            }
        }
    }

    /// Leak detection on the stable components' live heap after the warm-up; the
    /// first leak fails the run.
    fn fit_trends(&mut self) -> Vec<(String, Option<Trend>)> {
        let warmup = self.options.warmup.as_secs_f64();
        let mut trends = Vec::new();
        for component in self.components.iter().filter(|c| c.spec.stable) {
            let series: Vec<(f64, f64)> =
                component.samples.iter().filter(|s| s.at >= warmup).map(|s| (s.at, s.heap_bytes as f64)).collect();
            let fitted = leak::trend(&series);
            if let Some(fitted) = fitted
                && fitted.is_leak(self.options.leak_threshold as f64)
                && self.failure.is_none()
            {
                self.failure = Some(Failure::Leak {
                    component: component.spec.name.clone(),
                    trend: fitted,
                    threshold: self.options.leak_threshold,
                });
            }
            trends.push((component.spec.name.clone(), fitted));
        }
        trends
    }

    /// The one-line verdict: FAILED (why), INTERRUPTED, or PASSED (with the figures).
    fn verdict(&self, trends: &[(String, Option<Trend>)]) -> String {
        match (&self.failure, self.interrupted) {
            (Some(failure), _) => format!("FAILED: {failure}"),
            (None, true) => "INTERRUPTED: stopped by SIGINT or SIGTERM before the end".to_string(),
            (None, false) => {
                let worst = trends
                    .iter()
                    .filter_map(|(name, fitted)| fitted.map(|fitted| (name, fitted.slope_bytes_per_second)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let restarts: u32 = self.components.iter().map(|c| c.restarts).sum();
                format!(
                    "PASSED: {} components for {:.0} s, {restarts} restarts, no ceiling breached, no leak{}",
                    self.components.len(),
                    self.started.elapsed().as_secs_f64(),
                    worst.map_or(String::new(), |(name, slope)| format!(
                        " (steepest stable heap slope {:.2} KiB/s, {name})",
                        slope / 1024.0
                    ))
                )
            }
        }
    }

    /// summary.json, and with `--gen-charts` the SVGs and summary.html, written on
    /// the blocking pool.
    async fn write_report(&mut self, trends: Vec<(String, Option<Trend>)>, verdict: &str) -> anyhow::Result<()> {
        let (dir, verdict, charts) = (self.working_dir.clone(), verdict.to_string(), self.options.gen_charts);
        let (threshold, components) = (self.options.leak_threshold, std::mem::take(&mut self.components));
        let components = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Component>> {
            report::write_summary(&dir, &components, &trends, &verdict, threshold)?;
            if charts {
                report::write_charts(&dir, &components, &trends, &verdict)?;
                println!("charts: {}", dir.join("summary.html").display());
            }
            Ok(components)
        })
        .await??;
        self.components = components;
        Ok(())
    }
}

/// A component's chaos schedule: SIGTERM when its kill time comes, SIGKILL after
/// the grace, a restart once its exit has been seen and its delay has passed. Never
/// blocks the loop.
fn chaos(
    options: &DriverOptions,
    component: &mut Component,
    (now, at): (Instant, f64),
    binary: &std::path::Path,
    failure: &mut Option<Failure>,
) {
    if component.next_kill.is_some_and(|kill_at| now >= kill_at) && component.is_running() {
        if options.verbose {
            eprintln!("driver: {at:.1}s stopping {}", component.spec.name);
        }
        component.terminate();
        component.stopping_since = Some(now);
        component.next_kill = None;
    }
    if component.stopping_since.is_some_and(|since| now.duration_since(since) > STOP_GRACE) {
        component.force_kill();
    }
    if component.restart_at.is_some_and(|restart_at| now >= restart_at) {
        component.restart_at = None;
        let extra = Run::extra_args(options, component);
        match component.start(binary, &extra, options.verbose) {
            Ok(()) => {
                component.restarts += 1;
                component.next_kill = Some(Instant::now() + random_in(options.kill_interval));
                if options.verbose {
                    eprintln!("driver: {at:.1}s restarted {}", component.spec.name);
                }
            }
            Err(error) => {
                failure
                    .get_or_insert(Failure::Start { component: component.spec.name.clone(), error: error.to_string() });
            }
        }
    }
}
