//! One controller's session on an agent: prepare (set the scenario up from the
//! controller's words), run steps (start at the instant asked, report each second and
//! the end), stop when told — and stop anyway when the controller goes quiet.

use std::time::Duration;

use clap::Parser;
use loadlab_proto::agent::{self, Command, Report, command, report};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::Claim;
use crate::attack::Attacker;
use crate::cli::CommonArgs;
use crate::schedule::Segment;
use crate::wire::{pace_from_wire, stats_to_wire};

type Reports = mpsc::Sender<Result<Report, Status>>;

/// The options a controller may set: `loadgen run`'s common ones.
#[derive(Parser)]
#[command(name = "loadgen agent (from the controller)", no_binary_name = true)]
struct Scenario {
    #[command(flatten)]
    common: CommonArgs,
}

/// What the agent is busy with between commands.
enum Work {
    Idle,
    Preparing(JoinHandle<Result<Attacker, String>>),
    /// Devices logging in; the result is how many are logged in here.
    Joining(JoinHandle<Result<u32, String>>),
    Stepping(CancellationToken, JoinHandle<Attacker>),
}

fn send(reports: &Reports, report: report::Report) {
    // A full queue means the controller stopped reading; its heartbeat check ends us.
    let _ = reports.try_send(Ok(Report { report: Some(report) }));
}

/// Runs the session until the controller ends it, goes quiet, or breaks the stream.
pub(crate) async fn run(
    mut inbound: Streaming<Command>,
    reports: Reports,
    claim: Claim,
    sources: Vec<std::net::IpAddr>,
) {
    let mut silence_limit = Duration::from_secs(3);
    let mut last_heard = Instant::now();
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    let mut attacker: Option<Attacker> = None;
    let mut work = Work::Idle;
    let reason = loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(Command { command: Some(command) })) => {
                    last_heard = Instant::now();
                    match command {
                        command::Command::Prepare(prepare) => {
                            claim.name(&prepare.controller);
                            if prepare.heartbeat_timeout_ms > 0 {
                                silence_limit = Duration::from_millis(prepare.heartbeat_timeout_ms);
                            }
                            work = start_preparing(prepare, work, &mut attacker, &reports, &sources);
                        }
                        command::Command::Step(step) => work = start_step(step, work, &mut attacker, &reports),
                        command::Command::Join(join) => work = start_joining(join, work, &attacker, &reports),
                        command::Command::Stop(_) => {
                            if let Work::Stepping(stop, _) = &work {
                                stop.cancel();
                            }
                        }
                        command::Command::Heartbeat(_) => {}
                    }
                }
                Ok(Some(Command { command: None })) => last_heard = Instant::now(),
                Ok(None) => break "the controller ended the session",
                Err(_) => break "the session broke",
            },
            _ = beat.tick() => {
                if last_heard.elapsed() > silence_limit {
                    break "the controller went quiet";
                }
                send(&reports, report::Report::Heartbeat(agent::Heartbeat {}));
            }
            done = finished(&mut work) => {
                work = Work::Idle;
                match done {
                    Finished::Prepared(Ok(prepared)) => {
                        let devices = crate::runner::StepRunner::devices(&prepared);
                        attacker = Some(prepared);
                        send(&reports, report::Report::Ready(agent::Ready { devices }));
                    }
                    Finished::Prepared(Err(reason)) | Finished::Joined(Err(reason)) => {
                        send(&reports, report::Report::Failed(agent::Failed { reason }));
                    }
                    Finished::Joined(Ok(devices)) => send(&reports, report::Report::Ready(agent::Ready { devices })),
                    Finished::Stepped(Some(stepped)) => attacker = Some(stepped),
                    Finished::Stepped(None) => {
                        send(&reports, report::Report::Failed(agent::Failed { reason: "the step's task failed".into() }));
                    }
                }
            }
        }
    };
    tracing::info!(reason, "agent session over");
    // Nothing runs on after its controller: stop the step, give up preparing.
    match work {
        Work::Stepping(stop, task) => {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        Work::Preparing(task) => task.abort(),
        Work::Joining(task) => task.abort(),
        Work::Idle => {}
    }
    drop(claim);
}

enum Finished {
    Prepared(Result<Attacker, String>),
    Joined(Result<u32, String>),
    Stepped(Option<Attacker>),
}

/// Completes when the current work does; never while idle.
async fn finished(work: &mut Work) -> Finished {
    match work {
        Work::Idle => std::future::pending().await,
        Work::Preparing(task) => Finished::Prepared(task.await.unwrap_or_else(|error| Err(error.to_string()))),
        Work::Joining(task) => Finished::Joined(task.await.unwrap_or_else(|error| Err(error.to_string()))),
        Work::Stepping(_, task) => Finished::Stepped(task.await.ok()),
    }
}

fn start_preparing(
    prepare: agent::Prepare,
    work: Work,
    attacker: &mut Option<Attacker>,
    reports: &Reports,
    sources: &[std::net::IpAddr],
) -> Work {
    if !matches!(work, Work::Idle) {
        send(reports, report::Report::Failed(agent::Failed { reason: "busy: prepare while working".into() }));
        return work;
    }
    *attacker = None;
    let segment = match Segment::new(prepare.segment_index, prepare.segment_count) {
        Ok(segment) => segment,
        Err(reason) => {
            send(reports, report::Report::Failed(agent::Failed { reason }));
            return Work::Idle;
        }
    };
    let sources = sources.to_vec();
    Work::Preparing(tokio::spawn(async move {
        let parsed = Scenario::try_parse_from(&prepare.args).map_err(|error| error.render().to_string())?;
        let mut common = parsed.common;
        common.segment = segment;
        if !sources.is_empty() {
            common.source_addresses = sources;
        }
        crate::plan::check_common(&common)?;
        let never = CancellationToken::new();
        let scenario = crate::run::scenario(&common, &never).await.map_err(|error| error.to_string())?;
        Ok(Attacker::new(std::sync::Arc::new(scenario), common.max_in_flight, common.seed, segment, common.grace))
    }))
}

fn start_joining(join: agent::Join, work: Work, attacker: &Option<Attacker>, reports: &Reports) -> Work {
    let failed = |reason: &str| send(reports, report::Report::Failed(agent::Failed { reason: reason.into() }));
    if !matches!(work, Work::Idle) {
        failed("busy: devices joining while working");
        return work;
    }
    let Some(attacker) = attacker else {
        failed("devices joining before the agent was prepared");
        return work;
    };
    let (scenario, segment) = (attacker.scenario.clone(), attacker.segment);
    let rate = (join.login_rate > 0.0 && join.login_rate.is_finite()).then_some(join.login_rate);
    Work::Joining(tokio::spawn(async move {
        let crate::scenario::Scenario::Devices(devices) = &*scenario else {
            return Err("devices joining, but the scenario is not `devices`".into());
        };
        let never = CancellationToken::new();
        devices.join(join.devices as usize, segment, rate, &never).await.map_err(|error| error.to_string())?;
        Ok(devices.count() as u32)
    }))
}

fn start_step(step: agent::Step, work: Work, attacker: &mut Option<Attacker>, reports: &Reports) -> Work {
    let failed = |reason: String| {
        send(reports, report::Report::Failed(agent::Failed { reason }));
    };
    if !matches!(work, Work::Idle) {
        failed("busy: a step while working".into());
        return work;
    }
    let Some(mut stepping) = attacker.take() else {
        failed("a step before the agent was prepared".into());
        return work;
    };
    let (pace, segment) = match (pace_from_wire(&step), Segment::new(step.segment_index, step.segment_count)) {
        (Ok(pace), Ok(segment)) => (pace, segment),
        (Err(reason), _) | (_, Err(reason)) => {
            *attacker = Some(stepping);
            failed(reason);
            return Work::Idle;
        }
    };
    stepping.segment = segment;
    let stop = CancellationToken::new();
    let (token, reports) = (stop.clone(), reports.clone());
    let start = Instant::now() + Duration::from_micros(step.start_after_us.min(60_000_000));
    Work::Stepping(
        stop,
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(start) => {}
                _ = token.cancelled() => {}
            }
            let run_start = Instant::now() - Duration::from_secs(step.first_second);
            let label = step.label.clone();
            let mut on_second = |row: &crate::collector::SecondRow, stats: &crate::stats::Stats| {
                let second =
                    agent::Second { step: label.clone(), second: row.second, stats: Some(stats_to_wire(stats)) };
                send(&reports, report::Report::Second(second));
            };
            let outcome = stepping.run(&pace, &step.label, run_start, &token, &mut on_second).await;
            let done = agent::StepDone {
                step: step.label,
                stats: Some(stats_to_wire(&outcome.stats)),
                ran_us: outcome.ran.as_micros() as u64,
                elapsed_us: outcome.elapsed.as_micros() as u64,
                interrupted: outcome.interrupted,
            };
            send(&reports, report::Report::StepDone(done));
            stepping
        }),
    )
}
