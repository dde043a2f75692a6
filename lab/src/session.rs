//! What `loadlab run` and `loadlab up` share: their options, and setting up a lab
//! session (clean up after crashed labs, read the topology, find the programs and the
//! monitoring files, make the working directory and register the lab).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::netns::Netem;
use crate::stack::{Isolation, StackOptions, Storage};
use crate::state::Registration;
use crate::topology::Topology;
use crate::usage::UsageError;

/// Options of every command that starts a lab.
#[derive(Clone, Debug, clap::Args)]
pub struct LabOptions {
    /// The topology file (default: ./topology.toml, else the one built into loadlab).
    #[arg(long, env = "LOADLAB_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    /// process: everything on loopback (host 192.168.56.X as 127.0.56.X). netns: one
    /// network namespace per host with the topology's addresses (needs root and
    /// iproute2). Both pin each host's processes to its share of the CPUs, the load
    /// generator's never shared with another host.
    #[arg(long, env = "LOADLAB_ISOLATION", value_enum, default_value = "process")]
    pub isolation: Isolation,
    /// Where device-api stores measurements (passed on as its --storage). auto:
    /// TimescaleDB where it is installed beside PostgreSQL (the lab preloads it; the
    /// set-up scripts install it), else native partitions. timescaledb: TimescaleDB
    /// or the lab does not start. native: plain PostgreSQL, native partitions.
    #[arg(long, env = "LOADLAB_STORAGE", value_enum, default_value = "auto")]
    pub storage: Storage,
    /// process isolation: take a free port instead of failing when a topology port is
    /// taken.
    #[arg(long, env = "LOADLAB_ANY_PORT")]
    pub any_port: bool,
    /// netns isolation: delay and loss on every host's way out, `DELAY[,LOSS%]` (e.g.
    /// `2ms,0.1%`; a round trip between two hosts sees the delay twice).
    #[arg(long, env = "LOADLAB_NETEM")]
    pub netem: Option<Netem>,
    /// Directory holding device-api, grpc-stress and loadgen (default: beside loadlab).
    #[arg(long, env = "LOADLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The repository's monitoring/ directory (default: ./monitoring, else found above
    /// the loadlab binary).
    #[arg(long, env = "LOADLAB_MONITORING")]
    pub monitoring: Option<PathBuf>,
    /// The loadgen agents' shared token: a file whose first line is the token (16
    /// characters or more). A lab on this machine makes a fresh one in its working
    /// directory (0600) unless given one; `serve --lab network` needs the one the
    /// loadgen hosts' agents were given.
    #[arg(long, env = "LOADLAB_AGENT_TOKEN_FILE")]
    pub agent_token_file: Option<PathBuf>,
}

/// A lab being set up: everything resolved, the working directory made and registered.
pub struct Session {
    pub topology: Topology,
    pub topology_text: String,
    pub topology_source: String,
    pub stack_options: StackOptions,
    pub registration: Registration,
    /// Removed on drop (after the stack is gone).
    _work_dir: tempfile::TempDir,
}

impl Session {
    /// `kind` is "run" or "up"; `log_dir` is where component logs go (None: in the
    /// working directory).
    pub fn open(options: &LabOptions, kind: &str, id: &str, log_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        for line in crate::state::clean_stale() {
            eprintln!("loadlab: cleaned up after a crashed lab: {line}");
        }
        let (topology, topology_text, topology_source) = Topology::locate(options.topology.as_deref())?;
        if options.netem.is_some() && options.isolation != Isolation::Netns {
            return Err(UsageError("--netem needs --isolation netns".into()).into());
        }
        let bin_dir = resolve_bin_dir(options.bin_dir.as_deref())?;
        let monitoring_dir = match &options.monitoring {
            Some(dir) => absolute_dir(dir, "--monitoring")?,
            None => find_monitoring_dir()?,
        };
        let work_dir = tempfile::Builder::new().prefix(&format!("loadlab-{id}-")).tempdir()?;
        // Servers running as another user (PostgreSQL under root) must reach their
        // directories inside it.
        std::fs::set_permissions(work_dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let registration = Registration::new(id, kind, work_dir.path())?;
        let stack_options = StackOptions {
            isolation: options.isolation,
            storage: options.storage,
            any_port: options.any_port,
            netem: options.netem.clone(),
            agent_token_file: options.agent_token_file.clone(),
            bin_dir,
            monitoring_dir,
            work_dir: work_dir.path().to_path_buf(),
            log_dir: log_dir.unwrap_or_else(|| work_dir.path().join("logs")),
        };
        Ok(Self { topology, topology_text, topology_source, stack_options, registration, _work_dir: work_dir })
    }
}

/// `dir` as an absolute path: each server starts in a directory of its own, where a
/// relative path would name something else (or nothing).
fn absolute_dir(dir: &Path, option: &str) -> anyhow::Result<PathBuf> {
    dir.canonicalize().with_context(|| format!("{option} {}", dir.display()))
}

/// The directory of the lab's programs: `--bin-dir`, else loadlab's own; each program
/// must be in it.
fn resolve_bin_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin_dir = match given {
        Some(dir) => absolute_dir(dir, "--bin-dir")?,
        None => std::env::current_exe()?.parent().context("loadlab has no parent directory")?.to_path_buf(),
    };
    for program in ["device-api", "grpc-stress", "loadgen"] {
        if !bin_dir.join(program).is_file() {
            bail!("{program} not found in {} (build the workspace, or set --bin-dir)", bin_dir.display());
        }
    }
    Ok(bin_dir)
}

/// A short id for a lab: its start time, to the second (UTC).
pub fn new_id() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// ./monitoring, or the first `monitoring/` above the loadlab binary (a workspace
/// build lives in <repo>/target/<profile>/).
pub(crate) fn find_monitoring_dir() -> anyhow::Result<PathBuf> {
    let is_it = |dir: &Path| dir.join("prometheus/rules").is_dir() && dir.join("bottlenecks.toml").is_file();
    if is_it(Path::new("monitoring")) {
        return Ok(PathBuf::from("monitoring").canonicalize()?);
    }
    let exe = std::env::current_exe()?;
    // A workspace build is <repo>/target/<profile>/loadlab; an installed package is
    // <prefix>/bin/loadlab with <prefix>/share/loadlab/monitoring.
    for ancestor in exe.ancestors().skip(1) {
        for candidate in [ancestor.join("monitoring"), ancestor.join("share/loadlab/monitoring")] {
            if is_it(&candidate) {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "cannot find the monitoring/ directory (rules, bottlenecks.toml); run from the repository or pass --monitoring"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_bin_dir_is_made_absolute_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for program in ["device-api", "grpc-stress", "loadgen"] {
            std::fs::write(dir.path().join(program), "").unwrap();
        }
        // Relative to the current directory, as a user types it.
        let relative = relative_to_here(dir.path());
        let resolved = resolve_bin_dir(Some(&relative)).unwrap();
        assert!(resolved.is_absolute(), "{}", resolved.display());
        assert_eq!(resolved, dir.path().canonicalize().unwrap());
        let missing = resolve_bin_dir(Some(Path::new("no/such/dir"))).unwrap_err();
        assert!(format!("{missing:#}").starts_with("--bin-dir no/such/dir: "), "{missing:#}");
    }

    /// `path` relative to the current directory (`../..` up to the root, then down).
    fn relative_to_here(path: &Path) -> PathBuf {
        let here = std::env::current_dir().unwrap();
        let mut relative: PathBuf = here.components().skip(1).map(|_| "..").collect();
        relative.push(path.strip_prefix("/").unwrap());
        relative
    }
}
