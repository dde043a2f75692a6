//! The `loadlab` binary: runs the lab's topology on this machine.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

/// loadlab: the lab of topology.toml on one machine. `run` brings it up, steps the
/// load until the plan's SLO breaks, names the bottleneck and leaves the report in
/// results/<run id>/; `up` keeps it running for exploration.
#[derive(Parser, Debug)]
#[command(name = "loadlab", version)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Bring the lab up, run a plan until the system breaks its SLO, name the
    /// bottleneck, tear everything down. Exit code: loadgen's (0 the search ran to
    /// its end, breaking point in the report; 99 a threshold, or even the first step,
    /// broke; 97 interrupted), 1 when the lab itself failed, 2 for a bad topology, plan or
    /// options.
    Run(loadlab::run::RunOptions),
    /// Bring the lab up and keep it running, printing every URL, until Ctrl-C or
    /// `loadlab down`.
    Up(loadlab::session::LabOptions),
    /// Show the running labs and whether each URL answers (also removes what crashed
    /// labs left behind).
    Status,
    /// Stop the labs started by `loadlab up`.
    Down,
    /// Check a topology file and print what it derives (hosts, open ports, scrape
    /// jobs, program flags) as JSON: what the Nix modules derive from the same file.
    Topology {
        /// The topology file (default: ./topology.toml, else the built-in one).
        #[arg(long)]
        topology: Option<std::path::PathBuf>,
    },
    /// The lab as a standing service: an HTTP API (results server, runs, experiments,
    /// comparisons; /openapi.json) and /metrics; plans run one at a time and every run
    /// recorded; experiments on a schedule with regression detection.
    Serve(Box<loadlab::serve::ServeOptions>),
    /// Two recorded runs side by side, and whether latency at the same offered rate
    /// differs beyond noise. Exit code 1 when B is worse than A (lower breaking point,
    /// or slower beyond noise), 0 otherwise, 2 for an unknown run or store.
    Compare(loadlab::serve::CompareOptions),
    /// Import results/<run id>/ directories into the run store.
    Import(loadlab::serve::ImportOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    loadlab_telemetry::init_logging(loadlab_telemetry::LogFormat::Human);
    let stop = Arc::new(AtomicBool::new(false));
    let result = match cli.command {
        Commands::Run(options) => {
            watch_signals(&stop);
            loadlab::run::run(&options, stop).map(ExitCode::from)
        }
        Commands::Up(options) => {
            watch_signals(&stop);
            loadlab::up::up(&options, stop).map(|()| ExitCode::SUCCESS)
        }
        Commands::Status => loadlab::up::status().map(|()| ExitCode::SUCCESS),
        Commands::Down => loadlab::up::down().map(|()| ExitCode::SUCCESS),
        Commands::Topology { topology } => print_topology(topology.as_deref()).map(|()| ExitCode::SUCCESS),
        Commands::Serve(options) => loadlab::serve::serve(*options).map(|()| ExitCode::SUCCESS),
        Commands::Compare(options) => loadlab::serve::compare(options).map(ExitCode::from),
        Commands::Import(options) => loadlab::serve::import(options).map(ExitCode::from),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("loadlab: error: {error:#}");
            ExitCode::from(loadlab::usage::exit_code(&error))
        }
    }
}

/// Sets `stop` on SIGINT or SIGTERM (a second one is not needed: teardown is quick).
/// The handlers are in place when this returns, so a signal that comes while the lab
/// starts is never the default action that would leave its servers behind.
fn watch_signals(stop: &Arc<AtomicBool>) {
    let stop = stop.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let signal = {
        let _inside = runtime.enter();
        loadlab_telemetry::shutdown_signal()
    };
    std::thread::spawn(move || {
        runtime.block_on(signal);
        eprintln!("loadlab: stopping (signal)");
        stop.store(true, Ordering::SeqCst);
    });
}

fn print_topology(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let (topology, _, _) = loadlab::topology::Topology::locate(path)?;
    println!("{}", serde_json::to_string_pretty(&topology.derived())?);
    Ok(())
}
