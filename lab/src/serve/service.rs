//! The `serve`, `compare` and `import` commands: options, and wiring the parts
//! together (store, runner, scheduler, HTTP API) until a signal stops them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::experiments::{self, Experiment};
use super::http::{self, AppState};
use super::lab::{self, LabConfig, LabMode};
use super::runner::Core;
use super::store::Store;
use crate::session::LabOptions;

pub use crate::usage::UsageError;

/// Where the store lives when `--data` is not given: `$XDG_DATA_HOME/loadlab`, else
/// `~/.local/share/loadlab`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir).join("loadlab");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".local/share/loadlab")
}

#[derive(Clone, Debug, clap::Args)]
pub struct ServeOptions {
    /// Address of the HTTP API and /metrics (localhost by default: starting runs is
    /// not for the whole network).
    #[arg(long, env = "LOADLAB_LISTEN", default_value = "127.0.0.1:8095")]
    pub listen: SocketAddr,
    /// The run store's directory (default: $XDG_DATA_HOME/loadlab or ~/.local/share/loadlab).
    #[arg(long, env = "LOADLAB_DATA")]
    pub data: Option<PathBuf>,
    /// Experiments to run on a schedule (TOML; see the README).
    #[arg(long, env = "LOADLAB_EXPERIMENTS")]
    pub experiments: Option<PathBuf>,
    /// local: bring the topology up on this machine for each plan run; network: the
    /// topology's hosts are running (the NixOS network), use their addresses.
    #[arg(long = "lab", env = "LOADLAB_LAB", value_enum, default_value = "local")]
    pub lab_mode: LabMode,
    /// Check the topology and the experiments file, print the experiments, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Grafana's URL (e.g. http://192.168.56.104:3000): the web UI links each run to
    /// the lab's dashboards over the run's time range.
    #[arg(long, env = "LOADLAB_GRAFANA")]
    pub grafana: Option<String>,
    #[command(flatten)]
    pub lab: LabOptions,
}

/// A topology and its text.
type TopologyText = (crate::topology::Topology, String);

/// Everything `serve` checks before it starts: the topology and the experiments.
fn configuration(options: &ServeOptions) -> Result<(Option<TopologyText>, Vec<Experiment>), UsageError> {
    let topology = lab::service_topology(&options.lab).map_err(|error| UsageError(error.to_string()))?;
    let experiments = match &options.experiments {
        Some(path) => experiments::load(path, Some(&topology)).map_err(|error| UsageError(error.to_string()))?,
        None => Vec::new(),
    };
    Ok((Some(topology), experiments))
}

/// `loadlab serve`: until SIGINT/SIGTERM.
pub fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let (topology, experiments) = configuration(&options)?;
    if options.check_config {
        for experiment in &experiments {
            println!("{}", serde_json::to_string(experiment)?);
        }
        println!("configuration is valid: {} experiments", experiments.len());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(options, topology, experiments))
}

async fn run(
    options: ServeOptions,
    topology: Option<TopologyText>,
    experiments: Vec<Experiment>,
) -> anyhow::Result<()> {
    for line in crate::state::clean_stale() {
        tracing::warn!("cleaned up after a crashed lab: {line}");
    }
    let data = options.data.clone().unwrap_or_else(default_data_dir);
    let store = Store::open(&data).await?;
    for id in store.mark_orphans().await? {
        tracing::warn!(run = id, "marked incomplete: its process ended before it finished");
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|error| UsageError(format!("--listen {}: {error}", options.listen)))?;
    let recorder = loadlab_telemetry::MetricsRecorder::install("loadlab", &loadgen::metrics::histograms()).ok();
    let stop = CancellationToken::new();
    let lab = LabConfig { mode: options.lab_mode, options: options.lab.clone(), logs: data.join("logs") };
    let (core, worker) = Core::new(store.clone(), lab, topology, stop.clone());
    let worker = tokio::spawn(worker);
    let experiments = Arc::new(experiments);
    let scheduler = tokio::spawn(super::scheduler::schedule(core.clone(), experiments.clone(), stop.clone()));
    let signals = stop.clone();
    tokio::spawn(async move {
        loadlab_telemetry::shutdown_signal().await;
        tracing::info!("stopping (signal)");
        signals.cancel();
    });
    let address = listener.local_addr()?;
    println!(
        "loadlab serve: listening on http://{address} (web UI at http://{address}/ui/, API at /openapi.json), store in {}",
        data.display()
    );
    println!("loadlab serve: {} experiments", experiments.len());
    let monitoring = options.lab.monitoring.clone().or_else(|| crate::session::find_monitoring_dir().ok());
    let ui = Arc::new(http::UiConfig::new(options.grafana.clone(), monitoring.as_deref()));
    let state = AppState { core, experiments, recorder, shutdown: stop.clone(), ui };
    let served = http::serve(listener, state).await;
    stop.cancel();
    let _ = scheduler.await;
    // The run in progress is cancelled and recorded; give it loadgen's grace and the
    // lab's teardown.
    if tokio::time::timeout(Duration::from_secs(90), worker).await.is_err() {
        tracing::error!("the run in progress did not end within 90 s of the stop");
    }
    store.close().await;
    served?;
    Ok(())
}

/// `loadlab compare`.
#[derive(Clone, Debug, clap::Args)]
pub struct CompareOptions {
    /// The first run (A): a run id, `last` (the newest finished plan run) or `last~N`.
    pub a: String,
    /// The second run (B), compared against A.
    pub b: String,
    /// With `last`: only runs of this plan.
    #[arg(long)]
    pub plan: Option<String>,
    /// With `last`: only runs of this experiment.
    #[arg(long)]
    pub experiment: Option<String>,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The run store's directory (default: $XDG_DATA_HOME/loadlab or ~/.local/share/loadlab).
    #[arg(long, env = "LOADLAB_DATA")]
    pub data: Option<PathBuf>,
}

/// Opens an existing store (a missing one is a usage error, not a new empty store).
async fn open_existing(data: Option<&Path>) -> anyhow::Result<Store> {
    let dir = data.map(Path::to_path_buf).unwrap_or_else(default_data_dir);
    if !dir.join("loadlab.sqlite").is_file() {
        return Err(UsageError(format!("no run store in {} (give --data, or record runs first)", dir.display())).into());
    }
    Ok(Store::open(&dir).await?)
}

/// Prints the comparison; the exit code says whether B is worse than A: 0 no, 1 the
/// breaking point is lower or latency is higher beyond noise at a common rate.
pub fn compare(options: CompareOptions) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = open_existing(options.data.as_deref()).await?;
        let (plan, experiment) = (options.plan.as_deref(), options.experiment.as_deref());
        let resolve = async |name: &str| {
            super::compare::resolve(&store, name, plan, experiment).await.map_err(|error| UsageError(error.to_string()))
        };
        let a = resolve(&options.a).await?;
        let b = resolve(&options.b).await?;
        let (report_a, report_b) = (store.report(&a.id).await?, store.report(&b.id).await?);
        let comparison = super::compare::compare((a, report_a), (b, report_b));
        if options.json {
            println!("{}", serde_json::to_string_pretty(&comparison)?);
        } else {
            print!("{}", super::compare::table(&comparison));
        }
        store.close().await;
        let lower = comparison.breaking_point_change.is_some_and(|change| change < 0.0);
        let slower = comparison.rates.iter().any(|rate| rate.latency == "slower");
        Ok(u8::from(lower || slower))
    })
}

/// `loadlab import`.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportOptions {
    /// Run directories (results/<run id>/) or directories holding them (results/).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The run store's directory (default: $XDG_DATA_HOME/loadlab or ~/.local/share/loadlab).
    #[arg(long, env = "LOADLAB_DATA")]
    pub data: Option<PathBuf>,
}

/// Imports every run directory given; an unreadable one is reported and the rest go on.
pub fn import(options: ImportOptions) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = options.data.clone().unwrap_or_else(default_data_dir);
        let store = Store::open(&dir).await?;
        let (mut added, mut kept, mut failed) = (0, 0, 0);
        for path in &options.paths {
            let outcomes =
                super::store::import::import_tree(&store, path).await.map_err(|error| UsageError(error.to_string()))?;
            for outcome in outcomes {
                match outcome {
                    Ok(super::store::import::Imported::Added(id)) => {
                        println!("imported {id}");
                        added += 1;
                    }
                    Ok(super::store::import::Imported::AlreadyThere(id)) => {
                        println!("already in the store: {id}");
                        kept += 1;
                    }
                    Err(error) => {
                        eprintln!("loadlab: not imported: {error}");
                        failed += 1;
                    }
                }
            }
        }
        store.close().await;
        println!("{added} imported, {kept} already there, {failed} failed, into {}", dir.display());
        Ok(u8::from(failed > 0))
    })
}
