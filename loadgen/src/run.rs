//! One `run` or `breakpoint` end to end, in order: check everything that can be
//! checked before load starts (the output directory, the signals file, Prometheus),
//! serve `/metrics`, set the scenario up (resolve the target, log devices in), run
//! the profile, name the bottleneck, push, judge thresholds, write the outputs, and
//! choose the exit code ([`crate::exit`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use tokio_util::sync::CancellationToken;

use loadlab_telemetry::MetricsRecorder;

use crate::attack::Attacker;
use crate::breakpoint::BreakpointPlan;
use crate::cli::{CommonArgs, ScenarioKind};
use crate::collector::SecondRow;
use crate::controller::Controller;
use crate::exit;
use crate::http::{Connector, HttpClient, Target, Template, Trust};
use crate::output::report::{Report, StepReport, ThresholdReport, step_reports};
use crate::output::terminal;
use crate::plan::Plan;
use crate::profile::{self, Profile};
use crate::prometheus::Prometheus;
use crate::scenario::{DevicesScenario, GrpcScenario, HttpScenario, Scenario};
use crate::stats::Stats;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--target: {0}")]
    Target(String),
    #[error(transparent)]
    Devices(#[from] crate::scenario::DevicesError),
    #[error(transparent)]
    Bottlenecks(#[from] crate::bottleneck::BottleneckError),
    #[error("--prometheus: {0} (the bottleneck analysis needs it; leave --prometheus out to run without)")]
    Prometheus(String),
    #[error("grpc target: {0}")]
    Grpc(#[from] crate::scenario::GrpcSetupError),
    #[error("--listen {address}: {source}")]
    Listen { address: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Recorder(#[from] loadlab_telemetry::RecorderError),
    #[error("--out {path}: {detail}")]
    Out { path: String, detail: String },
    #[error("writing results to {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(transparent)]
    Controller(#[from] crate::controller::ControllerError),
}

impl RunError {
    /// [`exit::USAGE`] for what was wrong before load started, else
    /// [`exit::INTERRUPTED`].
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Devices(_) | RunError::Write { .. } | RunError::Controller(_) => exit::INTERRUPTED,
            _ => exit::USAGE,
        }
    }
}

/// Creates `dir` and proves it can be written, so a run's results cannot be lost
/// to a bad path after the run.
pub fn prepare_out(dir: &Path) -> Result<(), RunError> {
    let failed = |detail: String| RunError::Out { path: dir.display().to_string(), detail };
    if dir.exists() && !dir.is_dir() {
        return Err(failed("exists and is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|error| failed(error.to_string()))?;
    let probe = dir.join(".loadgen-write-check");
    std::fs::write(&probe, b"").map_err(|error| failed(format!("cannot write there: {error}")))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// What a caller sees while a run goes on, besides the report at the end.
#[derive(Clone, Debug)]
pub enum LiveEvent {
    /// A second ended (with agents: merged over them).
    Second { row: SecondRow, stats: Stats },
    /// A step ended, with its verdict (`held` is `None` outside breakpoint searches).
    Step(StepReport),
}

/// Runs `plan`; `live` prints a line per second. Returns the report and exit code.
pub async fn execute(plan: &Plan, stop: CancellationToken, live: bool) -> Result<(Report, u8), RunError> {
    execute_watched(plan, stop, live, None).await
}

/// [`execute`], also sending every second and every step to `events` as they end.
pub async fn execute_watched(
    plan: &Plan,
    stop: CancellationToken,
    live: bool,
    events: Option<tokio::sync::mpsc::UnboundedSender<LiveEvent>>,
) -> Result<(Report, u8), RunError> {
    let Plan { common, profile, agents } = plan;
    let analysis = preflight(common, profile).await?;
    // `/metrics` is served while the run goes on and stops with it (when this returns),
    // so a service running plans one after another can serve the next on the same port.
    let metrics_stop = CancellationToken::new();
    let _metrics_served_until_return = metrics_stop.clone().drop_guard();
    let recorder = serve_metrics(common.listen, metrics_stop).await?;
    let run_id = common.run_id.clone().unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    let pushing = Pushing::start(common, &run_id, recorder);

    let seconds: Mutex<Vec<SecondRow>> = Mutex::default();
    // --abort-on: checked every second over the run so far; a broken one stops the run
    // (and every agent) within that second.
    let run_stop = stop.child_token();
    let mut so_far = Stats::default();
    let mut aborted: Option<String> = None;
    let mut on_second = |row: &SecondRow, stats: &Stats| {
        if live {
            terminal::live_line(row);
        }
        seconds.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(row.clone());
        if let Some(events) = &events {
            let _ = events.send(LiveEvent::Second { row: row.clone(), stats: stats.clone() });
        }
        if common.abort_on.is_empty() || aborted.is_some() {
            return;
        }
        let _ = so_far.merge(stats);
        if let Some(broken) = common.abort_on.iter().find_map(|threshold| threshold.check(&so_far)) {
            eprintln!("loadgen: --abort-on {broken}: stopping the run");
            aborted = Some(broken);
            run_stop.cancel();
        }
    };
    let step_events = events.clone();
    let mut on_step = |step: &profile::Step| {
        if live && step.held.is_some() && !step.outcome.interrupted {
            terminal::step_line(step);
        }
        if let Some(events) = &step_events {
            let _ = events.send(LiveEvent::Step(crate::output::report::step_report(step)));
        }
    };
    let (outcome, started_at, agent_urls) = match agents {
        None => {
            let scenario = Arc::new(scenario(common, &stop).await?);
            let (max_in_flight, seed, segment, grace) =
                (common.max_in_flight, common.seed, common.segment, common.grace);
            let mut attacker = Attacker::new(scenario, max_in_flight, seed, segment, grace);
            let started_at = chrono::Utc::now().to_rfc3339();
            let outcome = profile::run(&mut attacker, profile, &run_stop, &mut on_second, &mut on_step).await;
            (outcome, started_at, Vec::new())
        }
        Some(agents) => {
            let names = common.scenario.requests(common.grpc_kind);
            let mut controller = Controller::connect(agents.controller.clone(), names).await?;
            eprintln!("loadgen: preparing {} agents", controller.agents().len());
            controller.prepare(agents.args.clone(), &stop).await?;
            let started_at = chrono::Utc::now().to_rfc3339();
            let outcome = profile::run(&mut controller, profile, &run_stop, &mut on_second, &mut on_step).await;
            (outcome, started_at, controller.agents())
        }
    };

    let bottlenecks = match analysis {
        Some(analysis) if !outcome.interrupted => analysis.run(&outcome, &stop).await,
        _ => None,
    };
    let pushed = pushing.finish().await;
    let (thresholds, verdict, code) = match aborted {
        Some(broken) => {
            let (thresholds, _, _) = judge(common, &outcome);
            (thresholds, format!("aborted: --abort-on {broken}; figures cover what ran"), exit::THRESHOLD)
        }
        None => judge(common, &outcome),
    };
    let report = Report {
        loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        scenario: common.scenario.name().to_string(),
        agents: agent_urls,
        target: common.target.clone(),
        segment: common.segment.to_string(),
        seed: common.seed,
        max_in_flight: common.max_in_flight,
        profile: profile.clone(),
        steps: step_reports(&outcome),
        breaking_point: outcome.breaking_point,
        thresholds,
        interrupted: outcome.interrupted,
        verdict,
        run_id,
        pushed_to: pushed,
        bottlenecks,
    };
    if let Some(dir) = &common.out {
        let seconds = seconds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        crate::output::report::write(dir, &report, &seconds)
            .map_err(|source| RunError::Write { path: dir.display().to_string(), source })?;
    }
    Ok((report, code))
}

/// What can be checked before load starts: the output directory, the signals file,
/// Prometheus. Returns the bottleneck analysis to run afterwards, if asked for.
async fn preflight(common: &CommonArgs, profile: &Profile) -> Result<Option<Analysis>, RunError> {
    if let Some(dir) = &common.out {
        prepare_out(dir)?;
    }
    let Profile::Breakpoint(BreakpointPlan { analysis: Some(source), slo, .. }) = profile else { return Ok(None) };
    let signals = crate::bottleneck::load(&source.signals)?;
    let prometheus = Prometheus::new(&source.prometheus);
    prometheus.ready().await.map_err(RunError::Prometheus)?;
    Ok(Some(Analysis { prometheus, signals, slo_latency: slo.latency_limit, slo_quantile: slo.latency_quantile }))
}

/// Serves `/metrics` on `listen` (when given) until `stop`; returns the recorder.
pub(crate) async fn serve_metrics(
    listen: Option<std::net::SocketAddr>,
    stop: CancellationToken,
) -> Result<MetricsRecorder, RunError> {
    let recorder = MetricsRecorder::install("loadgen", &crate::metrics::histograms())?;
    crate::metrics::describe();
    if let Some(address) = listen {
        let listener =
            tokio::net::TcpListener::bind(address).await.map_err(|source| RunError::Listen { address, source })?;
        let served = recorder.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let recorder = served.clone();
                async move { recorder.render_async().await }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    }
    Ok(recorder)
}

/// Pushes to the Pushgateway while the run goes on, and once more at the end.
struct Pushing {
    pusher: Option<crate::push::Pusher>,
    stop: CancellationToken,
    periodic: Option<tokio::task::JoinHandle<()>>,
}

impl Pushing {
    fn start(common: &CommonArgs, run_id: &str, recorder: MetricsRecorder) -> Self {
        let pusher =
            common.pushgateway.as_deref().map(|base| crate::push::Pusher::new(base, run_id, common.segment, recorder));
        let stop = CancellationToken::new();
        let periodic = pusher.as_ref().map(|pusher| pusher.spawn_periodic(common.push_interval, stop.clone()));
        Self { pusher, stop, periodic }
    }

    /// The final push, after the breaking point gauge is set; where it went.
    async fn finish(self) -> Option<String> {
        self.stop.cancel();
        if let Some(periodic) = self.periodic {
            let _ = periodic.await;
        }
        let pusher = self.pusher?;
        match pusher.push().await {
            Ok(()) => Some(pusher.url().to_string()),
            Err(error) => {
                eprintln!("loadgen: warning: final push to {} failed: {error}", pusher.url());
                None
            }
        }
    }
}

/// The bottleneck analysis a breakpoint search asked for.
struct Analysis {
    prometheus: Prometheus,
    signals: Vec<crate::bottleneck::Signal>,
    /// The SLO's latency limit and quantile (the generator's lateness is judged
    /// against them).
    slo_latency: std::time::Duration,
    slo_quantile: f64,
}

impl Analysis {
    /// Reads the signals over the last held and the first broken step.
    async fn run(self, outcome: &profile::ProfileRun, stop: &CancellationToken) -> Option<crate::bottleneck::Analysis> {
        let point = outcome.breaking_point.as_ref()?;
        let window_of = |rate: Option<f64>| {
            let step = outcome.steps.iter().find(|step| Some(step.level()) == rate)?;
            Some(crate::bottleneck::Window { end: step.ended_at, length: step.duration })
        };
        // Let Prometheus scrape the last seconds before asking.
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = stop.cancelled() => return None,
        }
        let (held, broke) = (window_of(point.rate), window_of(point.broken_rate));
        let broken_step = outcome.steps.iter().find(|step| Some(step.level()) == point.broken_rate);
        let broken_latency = broken_step.and_then(|step| step.outcome.stats.quantile(self.slo_quantile));
        let allowed = Some(crate::bottleneck::lateness_allowed(self.slo_latency, broken_latency));
        let analysis = tokio::select! {
            analysis = crate::bottleneck::analyse(&self.prometheus, &self.signals, held, broke, allowed) => analysis,
            _ = stop.cancelled() => return None,
        };
        eprintln!("loadgen: bottleneck: {}", analysis.verdict);
        Some(analysis)
    }
}

/// Thresholds (over the whole run; in a breakpoint search, the steps that held), the
/// verdict in words, and the exit code.
fn judge(common: &CommonArgs, outcome: &profile::ProfileRun) -> (Vec<ThresholdReport>, String, u8) {
    let mut judged = Stats::default();
    for step in outcome.steps.iter().filter(|step| step.held != Some(false)) {
        // Every step's statistics come from this process: same bounds.
        let _ = judged.merge(&step.outcome.stats);
    }
    let thresholds: Vec<ThresholdReport> = common
        .thresholds
        .iter()
        .map(|threshold| ThresholdReport { threshold: threshold.text().to_string(), broken: threshold.check(&judged) })
        .collect();
    let any_broken = thresholds.iter().any(|threshold| threshold.broken.is_some());
    let first_step_broke = outcome.breaking_point.as_ref().is_some_and(|point| point.rate.is_none());
    let lost = outcome.steps.last().filter(|step| step.outcome.interrupted && step.outcome.degraded).and_then(|step| {
        step.outcome.agents.iter().find_map(|agent| Some((agent.agent.clone(), agent.trouble.clone()?)))
    });
    let (verdict, code) = if let Some((agent, trouble)) = lost {
        (format!("aborted: agent {agent} was lost ({trouble}); figures cover what ran"), exit::INTERRUPTED)
    } else if outcome.interrupted {
        ("interrupted: stopped before the end; figures cover what ran".to_string(), exit::INTERRUPTED)
    } else if first_step_broke {
        let start = outcome.steps.first().map_or(String::new(), |step| {
            step.devices.map_or(format!("{:.0}/s", step.offered_rate), |devices| format!("{devices} devices"))
        });
        (format!("no rate held: even the first step ({start}) broke the SLO; start lower"), exit::THRESHOLD)
    } else if any_broken {
        ("a threshold broke".to_string(), exit::THRESHOLD)
    } else {
        ("held".to_string(), exit::HELD)
    };
    (thresholds, verdict, code)
}

/// The scenario `common` asks for, set up: for `devices`, every device logged in.
pub(crate) async fn scenario(common: &CommonArgs, stop: &CancellationToken) -> Result<Scenario, RunError> {
    let trust = Trust::from_options(common.ca.clone(), common.insecure);
    let http_client = async || -> Result<(Target, HttpClient), RunError> {
        let target = Target::parse(&common.target).map_err(RunError::Target)?;
        let sources = common.source_addresses.clone();
        let mut connector = Connector::new(&target, &trust, common.http2, sources).await.map_err(RunError::Target)?;
        if common.scenario == ScenarioKind::Devices {
            // Many connections, mostly idle, with small answers.
            connector = connector.for_idle_connections();
        }
        Ok((target, HttpClient::new(connector, common.timeout, common.connections as usize)))
    };
    match common.scenario {
        ScenarioKind::Grpc => {
            let trust = loadlab_proto::connect::TrustOptions {
                ca: common.ca.clone(),
                system_roots: common.ca.is_none() && !common.insecure,
                no_server_validation: common.insecure,
            };
            let target = loadlab_proto::connect::Target::new(&common.target, &trust)
                .map_err(crate::scenario::GrpcSetupError::from)?;
            let scenario = GrpcScenario::new(
                target,
                common.grpc_kind.call(common.grpc_messages),
                common.connections as usize,
                common.grpc_calls_per_connection,
            )?;
            Ok(Scenario::Grpc(scenario))
        }
        ScenarioKind::Http => {
            let (target, client) = http_client().await?;
            let mut template = Template::new(common.method.clone(), target.own_origin(), &target.host_header);
            for (name, value) in &common.headers {
                template = template.with_header(name.clone(), value.clone());
            }
            if !common.body.is_empty() && !template.headers.contains_key(CONTENT_TYPE) {
                let json = serde_json::from_str::<serde::de::IgnoredAny>(&common.body).is_ok();
                let kind = if json { "application/json" } else { "text/plain; charset=utf-8" };
                template = template.with_header(CONTENT_TYPE, HeaderValue::from_static(kind));
            }
            Ok(Scenario::Http(Box::new(HttpScenario { client, template, body: Bytes::from(common.body.clone()) })))
        }
        ScenarioKind::Devices => {
            let (target, client) = http_client().await?;
            eprintln!("loadgen: logging {} devices in at {}", common.devices, common.target);
            let scenario = DevicesScenario::new(client, &target)?;
            // Only this segment's devices: other instances log in their own.
            scenario.join(common.devices as usize, common.segment, None, stop).await?;
            Ok(Scenario::Devices(Box::new(scenario)))
        }
    }
}
