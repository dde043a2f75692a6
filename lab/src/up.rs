//! `loadlab up`, `status` and `down`: the lab kept running for exploration.
//!
//! `up` starts every component of the topology (as `loadlab run` does, the loadgen
//! hosts' agents waiting for a controller), prints every URL, how to drive the agents
//! and how to point a Grafana at it, and keeps the lab
//! until Ctrl-C, SIGTERM or `loadlab down`, or until a component dies. `status` reads
//! the lab records (see [`crate::state`]) and probes each URL from where it lives;
//! `down` asks each `up` to stop and waits until it has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use loadlab_supervise::Place;

use crate::run::say;
use crate::session::{LabOptions, Session};
use crate::stack::Stack;
use crate::state::{Registration, records};
use crate::topology::Role;

/// Starts the lab and keeps it until `stop` is set or a component exits.
pub fn up(options: &LabOptions, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let id = crate::session::new_id();
    let mut session = Session::open(options, "up", &id, None)?;
    let mut stack = Stack::start(&session.topology, &session.stack_options, &mut session.registration, &say)?;
    let topology = &session.topology;
    let loadgen_host = topology.host_with(Role::Loadgen).expect("validated");
    let loadgen_namespace = stack.layout.namespaces.get(&loadgen_host.name).cloned();
    let urls = stack.urls.clone();
    session.registration.record.urls = urls.clone();
    session.registration.save()?;
    print_urls(&session.registration, &urls);
    if !stack.missing.is_empty() {
        for (name, why) in &stack.missing {
            println!("missing: {name}: {why}");
        }
    }
    let url_of = |wanted: &str| urls.iter().find(|(name, ..)| name == wanted).map(|(_, url, _)| url.clone());
    let api = url_of("device-api").unwrap_or_default();
    let prometheus = url_of("Prometheus");
    let in_loadgen = loadgen_namespace.map(|ns| format!("ip netns exec {ns} ")).unwrap_or_default();
    println!();
    println!("Drive it through the loadgen hosts' agents (Prometheus scrapes their metrics):");
    println!(
        "  {in_loadgen}loadgen breakpoint --target {api} --listen none --agents {} --agent-token-file {}{}",
        stack.agents.urls.join(","),
        stack.agents.token_file.display(),
        prometheus.as_ref().map(|url| format!(" --prometheus {url}")).unwrap_or_default()
    );
    if let Some(url) = &prometheus {
        println!("Grafana: with the provisioning files of monitoring/grafana (see README, \"Grafana dashboards\"):");
        println!(
            "  PROMETHEUS_URL={url} LOADLAB_DASHBOARDS=$PWD/monitoring/grafana/dashboards \\\n  \
             grafana-server --homepath /usr/share/grafana cfg:paths.provisioning=$PWD/monitoring/grafana/provisioning"
        );
    }
    println!("Stop with Ctrl-C or `loadlab down`.");

    let outcome = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        if let Some((name, status)) = stack.exited() {
            break Err(anyhow::anyhow!(
                "{name} exited ({status}); its log: {}",
                session.stack_options.log_dir.join(format!("{name}.log")).display()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    say("stopping the lab");
    stack.stop();
    outcome
}

fn print_urls(registration: &Registration, urls: &[(String, String, Option<String>)]) {
    println!();
    println!("lab {} ({}), started {}", registration.record.id, registration.record.kind, registration.record.started);
    for (name, url, namespace) in urls {
        let place = namespace.as_ref().map(|ns| format!("   (inside network namespace {ns})")).unwrap_or_default();
        println!("  {name:<38} {url}{place}");
    }
    println!("  {:<38} {}", "working directory and logs", registration.record.work_dir.display());
}

/// `loadlab status`: every lab of this user, each URL probed.
pub fn status() -> anyhow::Result<()> {
    for line in crate::state::clean_stale() {
        println!("cleaned up after a crashed lab: {line}");
    }
    let labs = records();
    if labs.is_empty() {
        println!("no lab is running (start one with `loadlab up`)");
        return Ok(());
    }
    for (record, _) in labs {
        println!("lab {} ({}, pid {}), started {}", record.id, record.kind, record.owner.pid, record.started);
        for (name, url, namespace) in &record.urls {
            let answer = probe(url, namespace.clone());
            println!("  {name:<38} {url:<40} {answer}");
        }
    }
    Ok(())
}

/// Probes an http:// URL's root (or a known health path) from its namespace.
fn probe(url: &str, namespace: Option<String>) -> String {
    let Some(address) = url.strip_prefix("http://").and_then(|rest| rest.parse().ok()) else {
        return String::new();
    };
    let place = Place { netns: namespace, ..Place::default() };
    let path = if url.contains(":9090") || url.contains(":9091") { "/-/ready" } else { "/metrics" };
    let status = place.within(move || loadlab_supervise::http::status(address, path)).ok().flatten();
    match status {
        Some(200) => "up".into(),
        Some(code) => format!("answers {code}"),
        None => "not answering".into(),
    }
}

/// `loadlab down`: stops every lab started by `loadlab up` (SIGTERM to its owner) and
/// waits until each has torn itself down.
pub fn down() -> anyhow::Result<()> {
    let labs: Vec<_> = records().into_iter().filter(|(record, alive)| *alive && record.kind == "up").collect();
    if labs.is_empty() {
        println!("no `loadlab up` lab is running");
        return Ok(());
    }
    for (record, _) in &labs {
        println!("stopping lab {} (pid {})", record.id, record.owner.pid);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(record.owner.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while labs.iter().any(|(record, _)| record.owner.alive()) {
        if Instant::now() > deadline {
            bail!("a lab did not stop within 60 s; `loadlab status` shows which");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for line in crate::state::clean_stale() {
        println!("cleaned up: {line}");
    }
    println!("stopped");
    Ok(())
}
