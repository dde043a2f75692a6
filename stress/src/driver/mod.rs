//! `grpc-stress driver`: grapesy's stress test, plus leak detection.
//!
//! It starts every component as a process of this same binary, then samples each
//! one's live heap (reported by the child) and RSS (read from /proc) every
//! `--sample-interval`. Unstable components are stopped with SIGTERM every
//! `--kill-interval` and started again after `--restart-delay`. The run fails, with
//! one line saying why, when a process breaks its memory ceiling, when a stable one
//! exits with failure, or when a stable one's live heap grows by more than
//! `--leak-threshold` with a statistically real trend after `--warmup`.

mod component;
mod leak;
mod matrix;
mod ports;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::heap::HEAP_OVERFLOW_EXIT;
use crate::units::{mib, parse_bytes, parse_duration_range as parse_range, positive_bytes, positive_duration};
use component::Component;
pub use leak::{Trend, trend};
use matrix::{MatrixChoice, PATTERNS, Role, SERVERS};

/// Options of `grpc-stress driver`.
#[derive(Clone, Debug, clap::Args)]
pub struct DriverOptions {
    /// How long to run.
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    pub duration: Duration,

    /// Where logs, certificates, charts and summary.json go (default:
    /// ./grpc-stress-<unix time>).
    #[arg(long)]
    pub working_dir: Option<PathBuf>,

    /// Draw one SVG per stable component (live heap and RSS over time) and an HTML
    /// summary linking them.
    #[arg(long)]
    pub gen_charts: bool,

    /// Verbose: the driver logs each stop and restart; children log at debug level.
    #[arg(short, long)]
    pub verbose: bool,

    /// Memory ceiling of each server process (live heap and RSS).
    #[arg(long, default_value = "400MiB", value_parser = positive_bytes)]
    pub server_ceiling: u64,

    /// Memory ceiling of each client process (live heap and RSS).
    #[arg(long, default_value = "60MiB", value_parser = positive_bytes)]
    pub client_ceiling: u64,

    /// A stable component leaks when its live heap grows faster than this per second
    /// (with a significant trend) after the warm-up.
    #[arg(long, default_value = "64KiB", value_parser = parse_bytes)]
    pub leak_threshold: u64,

    /// Samples before this are left out of leak detection (start-up allocation).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,

    /// Interval between memory samples.
    #[arg(long, default_value = "250ms", value_parser = positive_duration)]
    pub sample_interval: Duration,

    /// First server port; the four servers use it and the next three. The default
    /// lies below Linux's ephemeral range (32768–60999), so no outgoing connection can
    /// hold a server's port while it restarts; a block inside the range in force
    /// (/proc/sys/net/ipv4/ip_local_port_range) is warned about at start.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT, value_parser = parse_base_port)]
    pub base_port: u16,

    /// Servers to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = SERVERS.map(|(name, _, _)| name), value_parser = parse_server)]
    pub servers: Vec<String>,

    /// Client patterns to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = PATTERNS.map(|(name, _)| name), value_parser = parse_pattern)]
    pub patterns: Vec<String>,

    /// Client stabilities to run (comma-separated: stable, unstable).
    #[arg(long, value_delimiter = ',', default_values = STABILITIES, value_parser = parse_stability)]
    pub client_stabilities: Vec<String>,

    /// Unstable components are stopped after a random time in this range (MIN..MAX,
    /// MIN above 0).
    #[arg(long, default_value = "16s..20s", value_parser = parse_kill_interval)]
    pub kill_interval: (Duration, Duration),

    /// …and started again after a random delay in this range.
    #[arg(long, default_value = "200ms..500ms", value_parser = parse_range)]
    pub restart_delay: (Duration, Duration),

    /// Debugging leak detection: make a component leak, NAME=BYTES_PER_SECOND.
    #[arg(long, hide = true, value_parser = parse_debug_leak)]
    pub debug_leak: Vec<(String, u64)>,
}

/// The first port of the default block, 25000–25003.
pub const DEFAULT_BASE_PORT: u16 = 25000;

/// `--client-stabilities` values.
const STABILITIES: [&str; 2] = ["stable", "unstable"];

fn parse_base_port(text: &str) -> Result<u16, String> {
    let highest = u16::MAX - (SERVERS.len() as u16 - 1);
    match text.parse::<u16>() {
        Ok(port) if (1..=highest).contains(&port) => Ok(port),
        _ => Err(format!(
            "must be a port from 1 to {highest} (the {} servers use it and the ports after it)",
            SERVERS.len()
        )),
    }
}

fn one_of(text: &str, what: &str, names: &[&str]) -> Result<String, String> {
    if names.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!("not a {what}; one of: {}", names.join(", ")))
    }
}

fn parse_server(text: &str) -> Result<String, String> {
    one_of(text, "server", &SERVERS.map(|(name, _, _)| name))
}

fn parse_pattern(text: &str) -> Result<String, String> {
    one_of(text, "client pattern", &PATTERNS.map(|(name, _)| name))
}

fn parse_stability(text: &str) -> Result<String, String> {
    one_of(text, "stability", &STABILITIES)
}

fn parse_kill_interval(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = parse_range(text)?;
    if low.is_zero() {
        return Err("MIN must be more than 0 (a range such as 16s..20s)".into());
    }
    Ok((low, high))
}

fn parse_debug_leak(text: &str) -> Result<(String, u64), String> {
    let (name, rate) = text.split_once('=').ok_or("expected NAME=BYTES_PER_SECOND")?;
    Ok((name.to_string(), parse_bytes(rate)?))
}

/// How long a stopped component may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn random_in((low, high): (Duration, Duration)) -> Duration {
    if low == high { low } else { rand::rng().random_range(low..=high) }
}

/// Why a run failed.
#[derive(Debug)]
pub enum Failure {
    Ceiling { component: String, limit: u64, peak: u64, measure: &'static str },
    StableExit { component: String, status: String },
    Leak { component: String, trend: Trend, threshold: u64 },
    Start { component: String, error: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ceiling { component, limit, peak, measure } => write!(
                f,
                "{component} exceeded its memory ceiling: limit {}, peak {} ({measure})",
                mib(*limit),
                mib(*peak)
            ),
            Self::StableExit { component, status } => write!(f, "stable component {component} exited: {status}"),
            Self::Leak { component, trend, threshold } => write!(
                f,
                "{component} leaks: live heap grows {:.1} KiB/s (threshold {:.1} KiB/s, Mann–Kendall p = {:.1e})",
                trend.slope_bytes_per_second / 1024.0,
                *threshold as f64 / 1024.0,
                trend.p_value
            ),
            Self::Start { component, error } => write!(f, "{component} could not start: {error}"),
        }
    }
}

/// Runs the matrix until `--duration` has passed, a failure, or `stop` (SIGINT or
/// SIGTERM), at any stage; then every child is stopped and reaped before it returns
/// (on an early error, such as a child that cannot be spawned, the others are killed
/// as their handles drop).
pub async fn run(options: DriverOptions, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    loadlab_telemetry::init_logging(loadlab_telemetry::LogFormat::Human);
    if let Some(range) = ports::ephemeral_overlap(options.base_port, SERVERS.len() as u16) {
        eprintln!(
            "driver: warning: ports {}–{} lie in the ephemeral port range {range} ({}): an outgoing \
             connection may hold one while its server restarts; choose a --base-port outside it",
            options.base_port,
            options.base_port + SERVERS.len() as u16 - 1,
            ports::EPHEMERAL_RANGE_FILE
        );
    }
    let working_dir = options.working_dir.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        PathBuf::from(format!("grpc-stress-{}", now.as_secs()))
    });
    std::fs::create_dir_all(&working_dir).with_context(|| format!("creating {}", working_dir.display()))?;
    let certs_dir = working_dir.join("certs");
    crate::certs::generate(&certs_dir)?;
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
    let mut components: Vec<Component> = specs.into_iter().map(|spec| Component::new(spec, &working_dir)).collect();
    let extra_args = |component: &Component| -> Vec<String> {
        options
            .debug_leak
            .iter()
            .filter(|(name, _)| *name == component.spec.name)
            .flat_map(|(_, rate)| ["--debug-leak-per-second".to_string(), rate.to_string()])
            .collect()
    };

    println!(
        "grpc-stress driver: {} servers, {} clients, {:?}, working dir {}",
        components.iter().filter(|c| c.spec.role == Role::Server).count(),
        components.iter().filter(|c| c.spec.role == Role::Client).count(),
        options.duration,
        working_dir.display()
    );
    let started = Instant::now();
    let mut failure: Option<Failure> = None;
    let mut interrupted = false;

    // Servers first, and wait until each accepts connections.
    for component in components.iter_mut().filter(|c| c.spec.role == Role::Server) {
        let extra = extra_args(component);
        component
            .start(&binary, &extra, options.verbose)
            .with_context(|| format!("starting {}", component.spec.name))?;
    }
    for component in components.iter_mut().filter(|c| c.spec.role == Role::Server) {
        let port = component.spec.port.expect("servers have a port");
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if stop.is_cancelled() {
                interrupted = true;
                break;
            }
            if let Some(status) = component.exited() {
                failure.get_or_insert(Failure::Start {
                    component: component.spec.name.clone(),
                    error: status.to_string(),
                });
                break;
            }
            if Instant::now() > deadline {
                failure.get_or_insert(Failure::Start {
                    component: component.spec.name.clone(),
                    error: format!("port {port} not open after 15 s (see {})", component.log_path.display()),
                });
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if failure.is_none() && !interrupted {
        for component in components.iter_mut().filter(|c| c.spec.role == Role::Client) {
            let extra = extra_args(component);
            component
                .start(&binary, &extra, options.verbose)
                .with_context(|| format!("starting {}", component.spec.name))?;
        }
    }
    for component in components.iter_mut().filter(|c| !c.spec.stable) {
        component.next_kill = Some(Instant::now() + random_in(options.kill_interval));
    }

    let mut ticker = tokio::time::interval(options.sample_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = started + options.duration;
    while failure.is_none() && !interrupted && Instant::now() < deadline {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => { interrupted = true; break; }
        }
        let now = Instant::now();
        let at = now.duration_since(started).as_secs_f64();
        for component in &mut components {
            if let Some(status) = component.exited() {
                let name = component.spec.name.clone();
                if status.code() == Some(HEAP_OVERFLOW_EXIT) {
                    failure.get_or_insert(Failure::Ceiling {
                        component: name,
                        limit: component.spec.ceiling,
                        peak: component.peak_heap.max(component.spec.ceiling),
                        measure: "live heap, the process stopped itself",
                    });
                    continue;
                }
                if component.stopping_since.take().is_none() {
                    component.unexpected_exits.push(status.to_string());
                    if component.spec.stable {
                        failure.get_or_insert(Failure::StableExit { component: name, status: status.to_string() });
                        continue;
                    }
                }
                component.restart_at = Some(now + random_in(options.restart_delay));
            }
            if let Some(sample) = component.sample(at, page_size) {
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
                    failure.get_or_insert(Failure::Ceiling {
                        component: component.spec.name.clone(),
                        limit: ceiling,
                        peak,
                        measure,
                    });
                    continue;
                }
            }
            // Stopping never blocks the loop: SIGTERM now, SIGKILL after a grace
            // period, restart once the exit has been seen.
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
                let extra = extra_args(component);
                match component.start(&binary, &extra, options.verbose) {
                    Ok(()) => {
                        component.restarts += 1;
                        component.next_kill = Some(Instant::now() + random_in(options.kill_interval));
                        if options.verbose {
                            eprintln!("driver: {:.1}s restarted {}", at, component.spec.name);
                        }
                    }
                    Err(error) => {
                        failure.get_or_insert(Failure::Start {
                            component: component.spec.name.clone(),
                            error: error.to_string(),
                        });
                    }
                }
            }
        }
    }

    // Stop clients first (a server's graceful shutdown waits for open streams), each
    // group signalled at once and then awaited. A stable client's exit status carries
    // its own verdict: it exits non-zero when any call failed.
    for role in [Role::Client, Role::Server] {
        for component in components.iter_mut().filter(|c| c.spec.role == role) {
            component.terminate();
        }
        for component in components.iter_mut().filter(|c| c.spec.role == role) {
            let status = component.wait_exit(Duration::from_secs(10)).await;
            if let Some(status) = status
                && component.spec.stable
                && !status.success()
                && failure.is_none()
            {
                failure = Some(Failure::StableExit {
                    component: component.spec.name.clone(),
                    status: format!("{status} at shutdown (see {})", component.log_path.display()),
                });
            }
        }
    }

    // Leak detection on stable components.
    let warmup = options.warmup.as_secs_f64();
    let mut trends = Vec::new();
    for component in components.iter().filter(|c| c.spec.stable) {
        let series: Vec<(f64, f64)> =
            component.samples.iter().filter(|s| s.at >= warmup).map(|s| (s.at, s.heap_bytes as f64)).collect();
        let fitted = leak::trend(&series);
        if let Some(fitted) = fitted
            && fitted.is_leak(options.leak_threshold as f64)
            && failure.is_none()
        {
            failure = Some(Failure::Leak {
                component: component.spec.name.clone(),
                trend: fitted,
                threshold: options.leak_threshold,
            });
        }
        trends.push((component.spec.name.clone(), fitted));
    }

    let verdict = match (&failure, interrupted) {
        (Some(failure), _) => format!("FAILED: {failure}"),
        (None, true) => "INTERRUPTED: stopped by SIGINT or SIGTERM before the end".to_string(),
        (None, false) => {
            let worst = trends
                .iter()
                .filter_map(|(name, fitted)| fitted.map(|fitted| (name, fitted.slope_bytes_per_second)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let restarts: u32 = components.iter().map(|c| c.restarts).sum();
            format!(
                "PASSED: {} components for {:.0} s, {restarts} restarts, no ceiling breached, no leak{}",
                components.len(),
                started.elapsed().as_secs_f64(),
                worst.map_or(String::new(), |(name, slope)| format!(
                    " (steepest stable heap slope {:.2} KiB/s, {name})",
                    slope / 1024.0
                ))
            )
        }
    };
    report::write_summary(&working_dir, &components, &trends, &verdict, options.leak_threshold)?;
    if options.gen_charts {
        report::write_charts(&working_dir, &components, &trends, &verdict)?;
        println!("charts: {}", working_dir.join("summary.html").display());
    }
    println!("grpc-stress driver {verdict}");
    Ok(if failure.is_none() && !interrupted { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
