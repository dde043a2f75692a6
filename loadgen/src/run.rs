//! One loadgen invocation end to end: set up the scenario (log devices in), serve
//! `/metrics`, run the profile, judge thresholds, write the outputs, and choose the
//! exit code: 0 when everything held, [`EXIT_THRESHOLD`] when a threshold broke,
//! [`EXIT_ABORTED`] when the run could not start or was interrupted.

use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use tokio_util::sync::CancellationToken;

use crate::cli::{CommonArgs, ScenarioKind};
use crate::engine::{Engine, SecondRow};
use crate::output::report::{Report, ThresholdReport, step_reports};
use crate::output::terminal;
use crate::profile::{self, Profile};
use crate::scenario::{DevicesScenario, GrpcScenario, HttpClient, HttpScenario, Scenario};
use crate::stats::Stats;

pub const EXIT_HELD: u8 = 0;
pub const EXIT_THRESHOLD: u8 = 99;
pub const EXIT_ABORTED: u8 = 97;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--target `{0}` is not a URL")]
    Target(String),
    #[error("--method `{0}` is not an HTTP method")]
    Method(String),
    #[error(transparent)]
    Devices(#[from] crate::scenario::DevicesError),
    #[error(transparent)]
    Bottlenecks(#[from] crate::bottleneck::BottleneckError),
    #[error("--command-every/--measurement-every (routines) need --scenario devices")]
    RoutinesNeedDevices,
    #[error("grpc target: {0}")]
    Grpc(#[from] crate::scenario::GrpcSetupError),
    #[error("--listen {address}: {source}")]
    Listen { address: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Recorder(#[from] loadlab_telemetry::RecorderError),
    #[error("writing results to {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Runs `profile` with `common`'s options; `live` prints a line per second.
pub async fn execute(
    common: &CommonArgs,
    profile: Profile,
    stop: CancellationToken,
    live: bool,
) -> Result<(Report, u8), RunError> {
    let recorder = loadlab_telemetry::MetricsRecorder::install("loadgen", &crate::metrics::histograms())?;
    crate::metrics::describe();
    let run_id = common.run_id.clone().unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    let pusher = common
        .pushgateway
        .as_deref()
        .map(|base| crate::push::Pusher::new(base, &run_id, common.segment, recorder.clone()));
    let pushing = CancellationToken::new();
    let periodic = pusher.as_ref().map(|pusher| pusher.spawn_periodic(common.push_interval, pushing.clone()));
    if let Some(address) = common.listen {
        let listener =
            tokio::net::TcpListener::bind(address).await.map_err(|source| RunError::Listen { address, source })?;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let recorder = recorder.clone();
                async move { recorder.render() }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    if matches!(profile, Profile::Routines { .. }) && common.scenario != ScenarioKind::Devices {
        return Err(RunError::RoutinesNeedDevices);
    }
    // Read the signals now, so a bad file fails before the run, not after it.
    let analysis_source = match &profile {
        Profile::Breakpoint(plan) => plan.analysis.clone(),
        _ => None,
    };
    let signals = analysis_source.as_ref().map(|source| crate::bottleneck::load(&source.signals)).transpose()?;
    let client = HttpClient::new(common.timeout, common.h2c);
    let scenario = match common.scenario {
        ScenarioKind::Http => Scenario::Http(HttpScenario {
            client,
            method: common.method.parse().map_err(|_| RunError::Method(common.method.clone()))?,
            uri: common.target.parse().map_err(|_| RunError::Target(common.target.clone()))?,
            headers: common.headers.clone(),
            body: Bytes::from(common.body.clone()),
        }),
        ScenarioKind::Grpc => {
            let trust = grpc_stress::client::TrustOptions {
                ca: common.grpc_ca.clone(),
                system_roots: false,
                no_server_validation: common.grpc_no_server_validation,
            };
            let target = grpc_stress::client::Target::new(&common.target, &trust)
                .map_err(crate::scenario::GrpcSetupError::from)?;
            Scenario::Grpc(GrpcScenario::new(
                target,
                common.grpc_kind.call(common.grpc_messages),
                common.grpc_connections,
                common.grpc_calls_per_connection,
            )?)
        }
        ScenarioKind::Devices => {
            eprintln!("loadgen: logging {} devices in at {}", common.devices, common.target);
            Scenario::Devices(DevicesScenario::prepare(client, &common.target, common.devices).await?)
        }
    };
    let engine = Engine {
        scenario: Arc::new(scenario),
        max_in_flight: common.max_in_flight,
        seed: common.seed,
        segment: common.segment,
    };
    let seconds: Mutex<Vec<SecondRow>> = Mutex::default();
    let on_second = |row: &SecondRow| {
        if live {
            terminal::live_line(row);
        }
        seconds.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(row.clone());
    };
    let started_at = chrono::Utc::now().to_rfc3339();
    let outcome = profile::run(&engine, &profile, &stop, &on_second).await;
    let bottlenecks = match (&analysis_source, &signals, &outcome.breaking_point) {
        (Some(source), Some(signals), Some(point)) => {
            let window_of = |rate: Option<f64>| {
                let step = outcome.steps.iter().find(|step| Some(step.offered_rate) == rate)?;
                Some(crate::bottleneck::Window { end: step.ended_at, length: step.duration })
            };
            // Let Prometheus scrape the last seconds before asking.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let analysis = crate::bottleneck::analyse(
                &source.prometheus,
                signals,
                window_of(point.rate),
                window_of(point.broken_rate),
            )
            .await;
            eprintln!("loadgen: bottleneck: {}", analysis.verdict);
            Some(analysis)
        }
        _ => None,
    };
    pushing.cancel();
    if let Some(periodic) = periodic {
        let _ = periodic.await;
    }
    // The final push, after the breaking point gauge is set.
    let pushed = match &pusher {
        Some(pusher) => match pusher.push().await {
            Ok(()) => Some(pusher.url().to_string()),
            Err(error) => {
                eprintln!("loadgen: warning: final push to {} failed: {error}", pusher.url());
                None
            }
        },
        None => None,
    };

    // Thresholds judge the whole run; in a breakpoint search, the steps that held.
    let mut judged = Stats::default();
    for step in &outcome.steps {
        if step.held != Some(false) {
            judged.merge(&step.outcome.stats);
        }
    }
    let thresholds: Vec<ThresholdReport> = common
        .thresholds
        .iter()
        .map(|threshold| ThresholdReport { threshold: threshold.text().to_string(), broken: threshold.check(&judged) })
        .collect();
    let any_broken = thresholds.iter().any(|threshold| threshold.broken.is_some());
    let (verdict, code) = if outcome.interrupted {
        ("interrupted: stopped before the end; figures cover what ran".to_string(), EXIT_ABORTED)
    } else if any_broken {
        ("a threshold broke".to_string(), EXIT_THRESHOLD)
    } else {
        ("held".to_string(), EXIT_HELD)
    };
    let report = Report {
        loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        scenario: engine.scenario.name().to_string(),
        target: common.target.clone(),
        segment: common.segment.to_string(),
        seed: common.seed,
        max_in_flight: common.max_in_flight,
        profile,
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
