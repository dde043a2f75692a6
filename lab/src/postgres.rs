//! A private PostgreSQL instance: `initdb` into a temporary directory, `pg_ctl start`
//! on a free loopback port with its unix socket in the same directory, stopped and
//! deleted on drop.
//!
//! Every test that needs a database starts one of these, and so does the lab. It runs
//! as root (as the `postgres` user, since PostgreSQL refuses root) and as a normal
//! user. The server log stays in the data directory; when the instance is dropped
//! during a panic, the directory is kept and its path printed so the failure can be
//! read afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::ports::free_loopback_port;
use crate::process_user::RunAs;

/// The Debian/Ubuntu package that provides the server binaries.
const INSTALL_HINT: &str = "install PostgreSQL's server package (Debian/Ubuntu: `apt-get install postgresql`), \
     or point LOADLAB_PG_BIN at the directory holding initdb, pg_ctl and postgres";

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}")]
    NotInstalled,
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as \
         (PostgreSQL refuses to run as root): {INSTALL_HINT}, which creates that user"
    )]
    NoServerUser,
    #[error("{step} failed: {detail}")]
    Command { step: &'static str, detail: String },
    #[error("i/o error while {doing}: {source}")]
    Io { doing: &'static str, source: std::io::Error },
}

/// Options for [`PostgresInstance::start_with`].
#[derive(Clone, Debug, Default)]
pub struct PostgresOptions {
    /// Extra `postgresql.conf` settings, e.g. `("max_connections", "200")`.
    pub settings: Vec<(String, String)>,
    /// A fixed port instead of a free one (the lab uses the topology's port).
    pub port: Option<u16>,
}

/// A running private PostgreSQL server. Superuser `postgres`, trust authentication,
/// listening on 127.0.0.1 only.
pub struct PostgresInstance {
    /// Data directory, socket directory and `postgres.log`. `None` once kept for
    /// inspection.
    dir: Option<TempDir>,
    port: u16,
    bin_dir: PathBuf,
    run_as: RunAs,
}

impl std::fmt::Debug for PostgresInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresInstance")
            .field("port", &self.port)
            .field("dir", &self.dir_path())
            .finish()
    }
}

impl PostgresInstance {
    /// Starts a private instance with default settings on a free port.
    pub fn start() -> Result<Self, PostgresError> {
        Self::start_with(PostgresOptions::default())
    }

    /// Starts a private instance. Retries on a fresh port when the chosen one was
    /// taken in the meantime.
    pub fn start_with(options: PostgresOptions) -> Result<Self, PostgresError> {
        let bin_dir = find_bin_dir().ok_or(PostgresError::NotInstalled)?;
        let run_as = RunAs::for_server("postgres").ok_or(PostgresError::NoServerUser)?;
        let dir = tempfile::Builder::new()
            .prefix("loadlab-pg-")
            .tempdir()
            .map_err(|source| PostgresError::Io { doing: "creating the data directory", source })?;
        run_as
            .give(dir.path())
            .map_err(|source| PostgresError::Io { doing: "handing the data directory to the postgres user", source })?;

        let mut instance = Self { dir: Some(dir), port: 0, bin_dir, run_as };
        instance.initdb(&options.settings)?;
        let attempts = if options.port.is_some() { 1 } else { 3 };
        let mut last_error = None;
        for _ in 0..attempts {
            instance.port = match options.port {
                Some(port) => port,
                None => free_loopback_port()
                    .map_err(|source| PostgresError::Io { doing: "finding a free port", source })?,
            };
            match instance.start_server() {
                Ok(()) => return Ok(instance),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("at least one start attempt"))
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser, over TCP on loopback.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The directory that holds the data, the socket and `postgres.log`.
    pub fn dir_path(&self) -> Option<&Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    /// The server log.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.dir_path().map(|dir| dir.join("postgres.log"))
    }

    /// Creates a database (owned by the superuser).
    pub fn create_database(&self, name: &str) -> Result<(), PostgresError> {
        let psql = self.psql_path()?;
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        let output = Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url("postgres"))
            .args(["-c", &sql])
            .output()
            .map_err(|source| PostgresError::Io { doing: "running psql", source })?;
        check("CREATE DATABASE", &output)
    }

    /// Stops the server (fast shutdown: open sessions are disconnected), keeping the
    /// data. Used by tests that take the database away under load.
    pub fn stop(&self) -> Result<(), PostgresError> {
        let output = self
            .pg_ctl()
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.data_dir())
            .output()
            .map_err(|source| PostgresError::Io { doing: "running pg_ctl stop", source })?;
        check("pg_ctl stop", &output)
    }

    /// Starts the server again on the same port after [`stop`](Self::stop).
    pub fn restart(&self) -> Result<(), PostgresError> {
        self.start_server()
    }

    fn dir(&self) -> &Path {
        self.dir_path().expect("instance directory present while running")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    fn pg_ctl(&self) -> Command {
        self.run_as.command(&self.bin_dir.join("pg_ctl"))
    }

    fn psql_path(&self) -> Result<PathBuf, PostgresError> {
        let beside = self.bin_dir.join("psql");
        if beside.exists() {
            return Ok(beside);
        }
        which("psql").ok_or(PostgresError::NotInstalled)
    }

    fn initdb(&self, settings: &[(String, String)]) -> Result<(), PostgresError> {
        let output = self
            .run_as
            .command(&self.bin_dir.join("initdb"))
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "-D"])
            .arg(self.data_dir())
            .output()
            .map_err(|source| PostgresError::Io { doing: "running initdb", source })?;
        check("initdb", &output)?;

        let mut conf = format!(
            "\n# loadlab private instance\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             logging_collector = off\nlog_min_messages = warning\n",
            self.dir().display()
        );
        for (name, value) in settings {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        let conf_path = self.data_dir().join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path)
            .map_err(|source| PostgresError::Io { doing: "reading postgresql.conf", source })?;
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing)
            .map_err(|source| PostgresError::Io { doing: "writing postgresql.conf", source })
    }

    fn start_server(&self) -> Result<(), PostgresError> {
        let log = self.dir().join("postgres.log");
        let output = self
            .pg_ctl()
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .output()
            .map_err(|source| PostgresError::Io { doing: "running pg_ctl start", source })?;
        check("pg_ctl start", &output).map_err(|error| match error {
            PostgresError::Command { step, detail } => PostgresError::Command {
                step,
                detail: format!("{detail}\n--- {} ---\n{}", log.display(), tail(&log, 20)),
            },
            other => other,
        })
    }

    fn shut_down(&self) {
        // Immediate: the data is thrown away anyway, so skip the checkpoint.
        let _ = self
            .pg_ctl()
            .args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.data_dir())
            .output();
    }
}

impl Drop for PostgresInstance {
    fn drop(&mut self) {
        if self.dir.is_none() {
            return;
        }
        self.shut_down();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "loadlab: private PostgreSQL kept for inspection at {} (log: {}/postgres.log)",
                kept.display(),
                kept.display()
            );
        }
    }
}

fn check(step: &'static str, output: &std::process::Output) -> Result<(), PostgresError> {
    if output.status.success() {
        return Ok(());
    }
    Err(PostgresError::Command {
        step,
        detail: format!(
            "{}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ),
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Where initdb and pg_ctl live: `LOADLAB_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian), else the `PATH` (Nix, Homebrew).
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("LOADLAB_PG_BIN") {
        let dir = PathBuf::from(dir);
        return has_tools(&dir).then_some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Some(dir);
    }
    which("initdb")
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .filter(|dir| has_tools(dir))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// How long to wait for a server to accept connections, for callers that poll.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
