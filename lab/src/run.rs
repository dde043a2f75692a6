//! `loadlab run`: bring the whole topology up, run one plan (a breakpoint search with
//! bottleneck analysis against the lab's own Prometheus), export the run's series to
//! CSV, tear everything down and exit with loadgen's verdict code.
//!
//! Everything a run leaves is in `<out>/<run id>/`: loadgen's `report.html`,
//! `summary.json` and `seconds.csv`; `metrics.csv` (the export); `lab.json` (the
//! resolved layout, versions, what was missing, which targets Prometheus saw up);
//! `topology.toml` as used; and `logs/` with one log per component.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::session::{LabOptions, Session};
use crate::stack::Stack;
use crate::topology::{Role, Service};

/// loadlab's own failure (the lab could not be brought up); loadgen's codes are 0, 97
/// and 99.
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

/// Runs the plan; the exit code is loadgen's. `stop` is set on Ctrl-C/SIGTERM.
pub fn run(options: &RunOptions, stop: Arc<AtomicBool>) -> anyhow::Result<u8> {
    let id = crate::session::new_id();
    let run_dir = options.out.join(&id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let run_dir = run_dir.canonicalize()?;
    let log_dir = run_dir.join("logs");
    let mut session = Session::open(&options.lab, "run", &id, Some(log_dir.clone()))?;
    let plan_name = options.plan.clone().unwrap_or_else(|| session.topology.lab.default_plan.clone());
    let Some(plan) = session.topology.plans.get(&plan_name).cloned() else {
        bail!(
            "no plan `{plan_name}` in {}; plans: {:?}",
            session.topology_source,
            session.topology.plans.keys().collect::<Vec<_>>()
        );
    };
    std::fs::write(run_dir.join("topology.toml"), &session.topology_text)?;
    say(&format!("run {id}: plan `{plan_name}`: {}", plan.description));
    say(&format!("results: {}", run_dir.display()));

    let started = Instant::now();
    let stack = Stack::start(&session.topology, &session.stack_options, &mut session.registration, &say);
    let mut stack = match stack {
        Ok(stack) => stack,
        Err(error) => {
            write_lab_json(&run_dir, &session, None, &plan_name, None, &json!({}), &error.to_string())?;
            crate::serve::record_run(options.store.as_deref(), &run_dir);
            return Err(error.context(format!("the lab did not come up; logs in {}", log_dir.display())));
        }
    };
    say(&format!("lab up in {:.1} s", started.elapsed().as_secs_f64()));
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted");
    }

    let topology = &session.topology;
    let layout = stack.layout.clone();
    let monitor = topology.host_with(Role::Monitoring).expect("validated");
    let prometheus_url =
        stack.has("prometheus").then(|| format!("http://{}", layout.address(monitor, Service::Prometheus)));
    let pushgateway_url =
        stack.has("pushgateway").then(|| format!("http://{}", layout.address(monitor, Service::Pushgateway)));
    let target_host = topology.host_with(plan.target).expect("validated");
    let target = match plan.target {
        Role::GrpcStress => format!("http://{}", layout.address(target_host, Service::GrpcStress)),
        _ => format!("http://{}", layout.address(target_host, Service::DeviceApi)),
    };
    let loadgen_host = topology.host_with(Role::Loadgen).expect("validated");
    let bottlenecks = session.stack_options.monitoring_dir.join("bottlenecks.toml");
    let mut args: Vec<String> = vec!["breakpoint".into(), "--target".into(), target];
    args.extend(crate::topology::flags(&plan.loadgen));
    args.extend([
        "--listen".into(),
        layout.address(loadgen_host, Service::Loadgen).to_string(),
        "--out".into(),
        run_dir.display().to_string(),
        "--run-id".into(),
        id.clone(),
        "--bottlenecks".into(),
        bottlenecks.display().to_string(),
    ]);
    if let Some(url) = &prometheus_url {
        args.extend(["--prometheus".into(), url.clone()]);
    } else {
        say("WARNING: no Prometheus, so no bottleneck analysis and no CSV export");
    }
    if let Some(url) = &pushgateway_url {
        args.extend(["--pushgateway".into(), url.clone()]);
    }

    say(&format!("running loadgen on {}: loadgen {}", loadgen_host.name, args.join(" ")));
    let loadgen_started = Instant::now();
    let placement = layout.placement(loadgen_host);
    let mut command =
        placement.command(&session.stack_options.bin_dir.join("loadgen"), &crate::process_user::RunAs::Current);
    command.args(&args).current_dir(&session.stack_options.work_dir);
    let code = run_loadgen(command, &log_dir.join("loadgen.log"), &mut stack, &stop)?;
    let loadgen_seconds = loadgen_started.elapsed().as_secs_f64();

    // Which targets Prometheus saw up during the run (loadgen has exited by now, so
    // look back over the whole run, not at this instant).
    let targets_up = if prometheus_url.is_some() {
        let window = format!("{}s", (loadgen_seconds.ceil() as u64) + 10);
        let address = layout.address(monitor, Service::Prometheus);
        let query = format!("max by (job, instance) (max_over_time(up[{window}]))");
        let answer = layout.placement(monitor).within(move || prometheus_query(address, &query)).ok().flatten();
        answer.unwrap_or_else(|| json!({"error": "Prometheus did not answer"}))
    } else {
        json!({})
    };

    if let Some(url) = &prometheus_url {
        let summary = run_dir.join("summary.json");
        if summary.is_file() {
            say("exporting the run's series to metrics.csv");
            let mut export =
                placement.command(&session.stack_options.bin_dir.join("loadgen"), &crate::process_user::RunAs::Current);
            export
                .args(["export", "--prometheus", url, "--summary"])
                .arg(&summary)
                .arg("--bottlenecks")
                .arg(&bottlenecks)
                .arg("--rules")
                .arg(session.stack_options.monitoring_dir.join("prometheus/rules/red.yaml"))
                .arg("--out")
                .arg(run_dir.join("metrics.csv"))
                .current_dir(&session.stack_options.work_dir);
            match export.status() {
                Ok(status) if status.success() => {}
                Ok(status) => say(&format!("WARNING: loadgen export failed ({status})")),
                Err(error) => say(&format!("WARNING: loadgen export did not start: {error}")),
            }
        }
    }

    write_lab_json(&run_dir, &session, Some(&stack), &plan_name, Some(code), &targets_up, "")?;
    say("stopping the lab");
    stack.stop();
    drop(session);
    let report = run_dir.join("report.html");
    let seconds = started.elapsed().as_secs_f64();
    if report.is_file() {
        say(&format!("done in {seconds:.0} s (loadgen exit code {code}): {}", report.display()));
    } else {
        say(&format!(
            "done in {seconds:.0} s, but loadgen exited {code} without a report: see {}",
            log_dir.join("loadgen.log").display()
        ));
    }
    crate::serve::record_run(options.store.as_deref(), &run_dir);
    Ok(code)
}

/// Runs loadgen, copying its output to the terminal and its log; stops it (SIGINT,
/// so it still writes its report) on Ctrl-C or when a lab component dies.
fn run_loadgen(mut command: Command, log: &Path, stack: &mut Stack, stop: &AtomicBool) -> anyhow::Result<u8> {
    let mut child: Child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .context("starting loadgen")?;
    let log = std::fs::File::create(log)?;
    let copiers: Vec<_> = [
        child.stdout.take().map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let mut log = log.try_clone().expect("log handle");
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                eprintln!("  │ {line}");
            }
        })
    })
    .collect();
    let mut signalled = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !signalled {
            let reason = if stop.load(Ordering::SeqCst) {
                Some("interrupted".to_string())
            } else {
                stack.exited().map(|(name, status)| format!("{name} exited ({status}) during the run"))
            };
            if let Some(reason) = reason {
                say(&format!("{reason}: stopping loadgen"));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGINT,
                );
                signalled = true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for copier in copiers {
        let _ = copier.join();
    }
    // A signal death has no code; count it as aborted.
    Ok(status.code().map_or(97, |code| code as u8))
}

/// One instant query, answered as {"job/instance": value}.
fn prometheus_query(address: std::net::SocketAddr, query: &str) -> Option<serde_json::Value> {
    let body = crate::server_process::http_get_body(
        address,
        &format!("/api/v1/query?query={}", crate::server_process::encode_query(query)),
    )?;
    let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
    let mut seen = serde_json::Map::new();
    for series in answer["data"]["result"].as_array()? {
        let job = series["metric"]["job"].as_str().unwrap_or("?");
        let instance = series["metric"]["instance"].as_str().unwrap_or("?");
        let value: f64 = series["value"][1].as_str()?.parse().ok()?;
        seen.insert(format!("{job}/{instance}"), json!(value == 1.0));
    }
    Some(serde_json::Value::Object(seen))
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
        "loadgen_exit_code": loadgen_exit_code,
        "targets_up": targets_up,
        "versions": versions,
        "error": if error.is_empty() { None } else { Some(error) },
        "reproduce": format!("loadlab run --topology {}/topology.toml --plan {plan} --isolation {} --storage {}", run_dir.display(), match session.stack_options.isolation { crate::stack::Isolation::Process => "process", crate::stack::Isolation::Netns => "netns" }, session.stack_options.storage.as_str()),
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
