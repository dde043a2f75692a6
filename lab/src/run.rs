//! `loadlab run`: bring the whole topology up, run one plan (a breakpoint search with
//! bottleneck analysis against the lab's own Prometheus), export the run's series to
//! CSV, tear everything down and exit with loadgen's verdict code.
//!
//! The load comes from the `loadgen agent` on each loadgen host (one or several, see
//! [`crate::stack::Agents`]); this process is their controller, running loadgen's
//! library in-process as `loadgen breakpoint --agents …` would: one code path however
//! many loadgen hosts there are.
//!
//! Everything a run leaves is in `<out>/<run id>/`: loadgen's `report.html`,
//! `summary.json` and `seconds.csv`; `metrics.csv` (the export); `lab.json` (the
//! resolved layout, versions, what was missing, which targets Prometheus saw up);
//! `topology.toml` as used; and `logs/` with one log per component.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Parser;
use loadgen::launch::{Breakpoint, Export};
use loadlab_supervise::prometheus::Prometheus;
use loadlab_supervise::{Place, Spec};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::session::{LabOptions, Session};
use crate::stack::{Isolation, Stack};
use crate::topology::{Plan, Role, Service};
use crate::usage::UsageError;

/// loadlab's own failure (the lab could not be brought up); loadgen's codes are
/// [`loadgen::exit`]'s.
pub const EXIT_LAB_FAILED: u8 = 1;

#[derive(Clone, Debug, clap::Args)]
pub struct RunOptions {
    #[command(flatten)]
    pub lab: LabOptions,
    /// The plan to run (a [plans.NAME] of the topology; default: its [lab] default_plan).
    #[arg(long, env = "LOADLAB_PLAN")]
    pub plan: Option<String>,
    /// Where run directories go: <out>/<run id>/.
    #[arg(long, env = "LOADLAB_OUT", default_value = "results")]
    pub out: PathBuf,
    /// Also record the run in this run store (the directory `loadlab serve --data`
    /// uses), so its history holds runs however they were started.
    #[arg(long, env = "LOADLAB_STORE")]
    pub store: Option<PathBuf>,
}

/// One run's names and places.
struct RunDirs {
    id: String,
    /// `<out>/<id>`, absolute.
    run: PathBuf,
    logs: PathBuf,
}

/// Runs the plan; the exit code is loadgen's. `stop` is set on Ctrl-C/SIGTERM.
pub fn run(options: &RunOptions, stop: Arc<AtomicBool>) -> anyhow::Result<u8> {
    let dirs = make_run_dir(&options.out)?;
    let mut session = Session::open(&options.lab, "run", &dirs.id, Some(dirs.logs.clone()))?;
    let (plan_name, plan) = choose_plan(&session, options.plan.as_deref())?;
    std::fs::write(dirs.run.join("topology.toml"), &session.topology_text)?;
    say(&format!("run {}: plan `{plan_name}`: {}", dirs.id, plan.description));
    say(&format!("results: {}", dirs.run.display()));

    let started = Instant::now();
    let mut stack = match bring_up(&mut session, &dirs, &plan_name) {
        Ok(stack) => stack,
        Err(error) => {
            crate::serve::record_run(options.store.as_deref(), &dirs.run);
            return Err(error);
        }
    };
    say(&format!("lab up in {:.1} s", started.elapsed().as_secs_f64()));
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted");
    }

    let launch = breakpoint_launch(&session, &stack, &plan, &dirs);
    let loadgen_started = Instant::now();
    let code = run_controller(&session, &mut stack, &launch, &stop)?;
    let targets_up = targets_up(&session, &stack, loadgen_started.elapsed());
    export_series(&session, &stack, &launch, &dirs);

    write_lab_json(&dirs.run, &session, Some(&stack), &plan_name, Some(code), &targets_up, "")?;
    say("stopping the lab");
    stack.stop();
    drop(session);
    report_end(&dirs, code, started.elapsed());
    crate::serve::record_run(options.store.as_deref(), &dirs.run);
    Ok(code)
}

/// `<out>/<new id>/` and its `logs/`.
fn make_run_dir(out: &Path) -> anyhow::Result<RunDirs> {
    let id = crate::session::new_id();
    let run = out.join(&id);
    std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
    let run = run.canonicalize()?;
    let logs = run.join("logs");
    Ok(RunDirs { id, run, logs })
}

/// The plan asked for, else the topology's default; an unknown name is a usage error.
fn choose_plan(session: &Session, asked: Option<&str>) -> anyhow::Result<(String, Plan)> {
    let name = asked.unwrap_or(&session.topology.lab.default_plan).to_string();
    let Some(plan) = session.topology.plans.get(&name).cloned() else {
        let plans: Vec<&String> = session.topology.plans.keys().collect();
        return Err(UsageError(format!("no plan `{name}` in {}; plans: {plans:?}", session.topology_source)).into());
    };
    Ok((name, plan))
}

/// Starts the stack; when it does not come up, lab.json says why.
fn bring_up(session: &mut Session, dirs: &RunDirs, plan_name: &str) -> anyhow::Result<Stack> {
    match Stack::start(&session.topology, &session.stack_options, &mut session.registration, &say) {
        Ok(stack) => Ok(stack),
        Err(error) => {
            write_lab_json(&dirs.run, session, None, plan_name, None, &json!({}), &error.to_string())?;
            Err(error.context(format!("the lab did not come up; logs in {}", dirs.logs.display())))
        }
    }
}

/// The monitoring host's URL of `service`, when the lab runs it.
fn monitoring_url(session: &Session, stack: &Stack, service: Service) -> Option<String> {
    let monitor = session.topology.host_with(Role::Monitoring).expect("validated");
    stack.has(service.name()).then(|| format!("http://{}", stack.layout.address(monitor, service)))
}

/// The breakpoint search the plan asks for, aimed at this lab and sent through its
/// agents (which serve the loadgen hosts' `/metrics`, so the controller serves none).
fn breakpoint_launch(session: &Session, stack: &Stack, plan: &Plan, dirs: &RunDirs) -> Breakpoint {
    let topology = &session.topology;
    let target_host = topology.host_with(plan.target).expect("validated");
    let target_service = if plan.target == Role::GrpcStress { Service::GrpcStress } else { Service::DeviceApi };
    let launch = Breakpoint {
        target: format!("http://{}", stack.layout.address(target_host, target_service)),
        listen: None,
        out: Some(dirs.run.clone()),
        run_id: dirs.id.clone(),
        bottlenecks: Some(session.stack_options.monitoring_dir.join("bottlenecks.toml")),
        prometheus: monitoring_url(session, stack, Service::Prometheus),
        pushgateway: monitoring_url(session, stack, Service::Pushgateway),
        agents: stack.agents.urls.clone(),
        agent_token_file: Some(stack.agents.token_file.clone()),
        plan: crate::topology::flags(&plan.loadgen),
    };
    if launch.prometheus.is_none() {
        say("WARNING: no Prometheus, so no bottleneck analysis and no CSV export");
    }
    launch
}

/// Where the controller runs: the first loadgen host's place (its namespace reaches
/// the agents, Prometheus and the Pushgateway; its CPUs are a generator's, never the
/// system under test's).
fn loadgen_place(session: &Session, stack: &Stack) -> Place {
    stack.layout.place(session.topology.host_with(Role::Loadgen).expect("validated"))
}

/// How long the controller may take to end after a cancel (loadgen's grace, the
/// agents' final reports, the report written) before the run is given up on.
const CONTROLLER_STOP_LIMIT: Duration = Duration::from_secs(35);

/// Runs the plan with this process as the agents' controller (loadgen's library, on
/// a thread at the first loadgen host's place) and returns loadgen's exit code. On
/// Ctrl-C, or when a lab component dies, the run is cancelled: loadgen ends the step on
/// every agent and still writes its report. A plan loadgen refuses is its usage code.
fn run_controller(session: &Session, stack: &mut Stack, launch: &Breakpoint, stop: &AtomicBool) -> anyhow::Result<u8> {
    let args = launch.args();
    let hosts = stack.agents.urls.len();
    say(&format!("running the plan on {hosts} loadgen agent(s), controlled from here: loadgen {}", args.join(" ")));
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    let plan = loadgen::cli::Cli::try_parse_from(std::iter::once("loadgen".to_string()).chain(args))
        .map_err(|error| error.render().to_string())
        .and_then(|cli| cli.command.into_plan()?.ok_or_else(|| "not a load command".to_string()));
    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("loadgen: error: {}", error.trim_end());
            return Ok(loadgen::exit::USAGE);
        }
    };
    let place = loadgen_place(session, stack);
    let cancel = CancellationToken::new();
    let (done, outcome) = std::sync::mpsc::channel();
    let token = cancel.clone();
    std::thread::Builder::new().name("controller".into()).spawn(move || {
        let cpus = place.cpus.clone();
        let ran = place.within(move || -> std::io::Result<_> {
            if let Some(cpus) = cpus {
                pin_this_thread(&cpus)?;
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            Ok(runtime.block_on(loadgen::run::execute_watched(&plan, token, true, None)))
        });
        let _ = done.send(ran.and_then(|ran| ran));
    })?;
    let mut cancelled: Option<Instant> = None;
    let ran = loop {
        match outcome.recv_timeout(Duration::from_millis(100)) {
            Ok(ran) => break ran,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                say("the controller failed (see above)");
                return Ok(loadgen::exit::INTERRUPTED);
            }
        }
        match cancelled {
            None => {
                let reason = if stop.load(Ordering::SeqCst) {
                    Some("interrupted".to_string())
                } else {
                    stack.exited().map(|(name, status)| format!("{name} exited ({status}) during the run"))
                };
                if let Some(reason) = reason {
                    say(&format!("{reason}: stopping the run"));
                    cancel.cancel();
                    cancelled = Some(Instant::now());
                }
            }
            Some(since) if since.elapsed() > CONTROLLER_STOP_LIMIT => {
                say(&format!("the run did not end {CONTROLLER_STOP_LIMIT:?} after it was stopped: giving up on it"));
                return Ok(loadgen::exit::INTERRUPTED);
            }
            Some(_) => {}
        }
    };
    match ran.context("running the controller")? {
        Ok((report, code)) => {
            eprint!("{}", loadgen::output::terminal::summary(&report));
            Ok(code)
        }
        Err(error) => {
            eprintln!("loadgen: error: {error}");
            Ok(error.exit_code())
        }
    }
}

/// Pins the calling thread (and the threads it starts) to `cpus` (`0,2`, as the
/// layout writes CPU lists).
fn pin_this_thread(cpus: &str) -> std::io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for cpu in cpus.split(',') {
        let cpu: usize = cpu.trim().parse().map_err(|_| std::io::Error::other(format!("bad CPU list {cpus}")))?;
        set.set(cpu).map_err(std::io::Error::from)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(std::io::Error::from)
}

/// Which targets Prometheus saw up during the run, as {"job/instance": up}. It looks
/// back over the whole run, not at this instant.
fn targets_up(session: &Session, stack: &Stack, loadgen_ran: Duration) -> serde_json::Value {
    let Some(url) = monitoring_url(session, stack, Service::Prometheus) else { return json!({}) };
    let window = format!("{}s", loadgen_ran.as_secs_f64().ceil() as u64 + 10);
    let query = format!("max by (job, instance) (max_over_time(up[{window}]))");
    let monitor = session.topology.host_with(Role::Monitoring).expect("validated");
    // Asked from inside the monitoring host's namespace, on a runtime of that thread.
    let answer = stack.layout.place(monitor).within(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(Prometheus::new(&url).query(&query, SystemTime::now())).map_err(std::io::Error::other)
    });
    let Ok(Ok(series)) = answer else { return json!({"error": "Prometheus did not answer"}) };
    let mut seen = serde_json::Map::new();
    for each in series {
        let label = |name: &str| each.labels.get(name).map_or("?", String::as_str).to_string();
        let up = each.samples.last().is_some_and(|(_, value)| *value == 1.0);
        seen.insert(format!("{}/{}", label("job"), label("instance")), json!(up));
    }
    serde_json::Value::Object(seen)
}

/// `loadgen export` of the run's series into metrics.csv (a warning when it fails).
fn export_series(session: &Session, stack: &Stack, launch: &Breakpoint, dirs: &RunDirs) {
    let summary = dirs.run.join("summary.json");
    let Some(prometheus) = launch.prometheus.clone().filter(|_| summary.is_file()) else { return };
    say("exporting the run's series to metrics.csv");
    let export = Export {
        prometheus,
        summary,
        bottlenecks: session.stack_options.monitoring_dir.join("bottlenecks.toml"),
        rules: session.stack_options.monitoring_dir.join("prometheus/rules/red.yaml"),
        out: dirs.run.join("metrics.csv"),
    };
    let exported = Spec::new(session.stack_options.bin_dir.join("loadgen"))
        .name("loadgen export")
        .args(export.args())
        .place(loadgen_place(session, stack))
        .cwd(&session.stack_options.work_dir)
        .log(dirs.logs.join("loadgen-export.log"))
        .spawn()
        .map(|mut process| process.wait());
    match exported {
        Ok(status) if status.success() => {}
        Ok(status) => say(&format!("WARNING: loadgen export failed ({status}); see logs/loadgen-export.log")),
        Err(error) => say(&format!("WARNING: loadgen export did not start: {error}")),
    }
}

/// The last line: where the report is, or that there is none.
fn report_end(dirs: &RunDirs, code: u8, took: Duration) {
    let report = dirs.run.join("report.html");
    let seconds = took.as_secs_f64();
    if report.is_file() {
        say(&format!("done in {seconds:.0} s (loadgen exit code {code}): {}", report.display()));
    } else {
        say(&format!(
            "done in {seconds:.0} s, but loadgen ended ({code}) without a report: see its lines above and the agents' \
             logs in {}",
            dirs.logs.display()
        ));
    }
}

/// lab.json: how this run was set up, so it can be understood and repeated.
fn write_lab_json(
    run_dir: &Path,
    session: &Session,
    stack: Option<&Stack>,
    plan: &str,
    loadgen_exit_code: Option<u8>,
    targets_up: &serde_json::Value,
    error: &str,
) -> anyhow::Result<()> {
    let bin_dir = &session.stack_options.bin_dir;
    let mut versions = serde_json::Map::new();
    for (name, program) in [
        ("device-api", bin_dir.join("device-api").display().to_string()),
        ("grpc-stress", bin_dir.join("grpc-stress").display().to_string()),
        ("loadgen", bin_dir.join("loadgen").display().to_string()),
        ("loadlab", std::env::current_exe()?.display().to_string()),
        ("prometheus", "prometheus".into()),
        ("prometheus-pushgateway", "prometheus-pushgateway".into()),
        ("prometheus-node-exporter", "prometheus-node-exporter".into()),
        ("prometheus-postgres-exporter", "prometheus-postgres-exporter".into()),
        ("postgres", crate::postgres::server_binary().map(|path| path.display().to_string()).unwrap_or_default()),
    ] {
        versions.insert(name.into(), json!(version_of(&program)));
    }
    let isolation = match session.stack_options.isolation {
        Isolation::Process => "process",
        Isolation::Netns => "netns",
    };
    let lab = json!({
        "run_id": session.registration.record.id,
        "plan": plan,
        "topology": session.topology_source,
        "isolation": session.stack_options.isolation,
        "storage": {
            "requested": session.stack_options.storage,
            "timescaledb_preloaded": stack.map(|stack| stack.timescaledb_preloaded),
            "engine": stack.and_then(|stack| stack.storage_engine.as_deref()),
        },
        "layout": stack.map(|stack| &stack.layout),
        "missing": stack.map(|stack| stack.missing.iter().map(|(name, why)| json!({"component": name, "why": why})).collect::<Vec<_>>()),
        "agents": stack.map(|stack| &stack.agents.urls),
        "loadgen_exit_code": loadgen_exit_code,
        "targets_up": targets_up,
        "versions": versions,
        "error": if error.is_empty() { None } else { Some(error) },
        "reproduce": format!(
            "loadlab run --topology {}/topology.toml --plan {plan} --isolation {isolation} --storage {}",
            run_dir.display(),
            session.stack_options.storage.as_str()
        ),
    });
    std::fs::write(run_dir.join("lab.json"), serde_json::to_vec_pretty(&lab)?)?;
    Ok(())
}

/// The first line of `program --version`, or why there is none.
fn version_of(program: &str) -> String {
    if program.is_empty() {
        return "not installed".into();
    }
    match Command::new(program).arg("--version").stdin(Stdio::null()).output() {
        Ok(output) => {
            let text = if output.stdout.is_empty() { output.stderr } else { output.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
        }
        Err(_) => "not installed".into(),
    }
}

/// A progress line.
pub fn say(line: &str) {
    eprintln!("loadlab: {line}");
}
