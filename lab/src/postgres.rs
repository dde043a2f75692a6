//! A private PostgreSQL instance: `initdb` into a temporary directory, then `postgres`
//! as our own child process on a free loopback port with its unix socket in the same
//! directory, stopped and deleted on drop. Owning the server process (rather than
//! letting `pg_ctl` daemonize it) means we stop it with a signal and reap it, so
//! nothing outlives the instance, not even a zombie.
//!
//! Every test that needs a database starts one of these, and so does the lab. It runs
//! as root (as the `postgres` user, since PostgreSQL refuses root) and as a normal
//! user. The server log stays in the data directory; when the instance is dropped
//! during a panic, the directory is kept and its path printed so the failure can be
//! read afterwards.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use loadlab_supervise::ports::free_loopback_port;
use loadlab_supervise::{Place, Ready, RunAs, Signal, Spec, Stop, Supervised, which};
use tempfile::TempDir;

/// The Debian/Ubuntu package that provides the server binaries.
const INSTALL_HINT: &str = "install PostgreSQL's server package (Debian/Ubuntu: `apt-get install postgresql`), \
     or point LOADLAB_PG_BIN at the directory holding initdb and postgres";

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("PostgreSQL server binaries (initdb, postgres) not found: {INSTALL_HINT}")]
    NotInstalled,
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as \
         (PostgreSQL refuses to run as root): {INSTALL_HINT}, which creates that user"
    )]
    NoServerUser,
    #[error(
        "TimescaleDB was asked for, but it is not installed beside the PostgreSQL server in {0} (no \
         timescaledb.so in its library directory); scripts/install-deps builds and installs it"
    )]
    TimescaledbNotInstalled(PathBuf),
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
    /// The address to listen on (default 127.0.0.1).
    pub listen: Option<Ipv4Addr>,
    /// Where the server runs (network namespace, CPUs; the user is chosen here).
    pub placement: Place,
    /// Networks (CIDR) allowed to connect over TCP besides loopback.
    pub allow_from: Vec<String>,
    /// Make the instance's directory in here instead of the system's temp directory.
    pub parent: Option<PathBuf>,
    /// Preload TimescaleDB (`shared_preload_libraries = 'timescaledb'`, telemetry
    /// off), so a database can `CREATE EXTENSION timescaledb`. Starting fails with
    /// [`PostgresError::TimescaledbNotInstalled`] where it is not installed.
    pub timescaledb: bool,
}

/// A running private PostgreSQL server. Superuser `postgres`, trust authentication,
/// listening on 127.0.0.1 only.
pub struct PostgresInstance {
    /// Data directory, socket directory and `postgres.log`. `None` once kept for
    /// inspection.
    dir: Option<TempDir>,
    port: u16,
    listen: Ipv4Addr,
    placement: Place,
    bin_dir: PathBuf,
    run_as: RunAs,
    /// The running `postgres` process; `None` while stopped. A std `Mutex`: only
    /// held for signal-and-wait, never across an await.
    server: Mutex<Option<Supervised>>,
}

/// How long a start or a stop may take.
const START_LIMIT: Duration = Duration::from_secs(60);
const STOP_LIMIT: Duration = Duration::from_secs(30);

impl std::fmt::Debug for PostgresInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresInstance").field("port", &self.port).field("dir", &self.dir_path()).finish()
    }
}

impl PostgresInstance {
    /// Starts a private instance with default settings on a free port.
    pub fn start() -> Result<Self, PostgresError> {
        Self::start_with(PostgresOptions::default())
    }

    /// Starts a private instance that preloads TimescaleDB, on a free port.
    pub fn start_timescaledb() -> Result<Self, PostgresError> {
        Self::start_with(PostgresOptions { timescaledb: true, ..PostgresOptions::default() })
    }

    /// Starts a private instance. Retries on a fresh port when the chosen one was
    /// taken in the meantime.
    pub fn start_with(mut options: PostgresOptions) -> Result<Self, PostgresError> {
        let bin_dir = find_bin_dir().ok_or(PostgresError::NotInstalled)?;
        if options.timescaledb {
            if !timescaledb_beside(&bin_dir) {
                return Err(PostgresError::TimescaledbNotInstalled(bin_dir));
            }
            preload(&mut options.settings, "timescaledb");
            options.settings.push(("timescaledb.telemetry_level".into(), "off".into()));
        }
        let run_as = RunAs::for_server("postgres").ok_or(PostgresError::NoServerUser)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("loadlab-pg-");
        let dir = match &options.parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(|source| PostgresError::Io { doing: "creating the data directory", source })?;
        run_as
            .give(dir.path())
            .map_err(|source| PostgresError::Io { doing: "handing the data directory to the postgres user", source })?;

        let mut instance = Self {
            dir: Some(dir),
            port: 0,
            listen: options.listen.unwrap_or(Ipv4Addr::LOCALHOST),
            placement: options.placement.clone(),
            bin_dir,
            run_as,
            server: Mutex::new(None),
        };
        instance.initdb(&options.settings, &options.allow_from)?;
        let attempts = if options.port.is_some() { 1 } else { 3 };
        let mut last_error = None;
        for _ in 0..attempts {
            instance.port = match options.port {
                Some(port) => port,
                None => {
                    free_loopback_port().map_err(|source| PostgresError::Io { doing: "finding a free port", source })?
                }
            };
            match instance.start_server() {
                Ok(()) => return Ok(instance),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("at least one start attempt"))
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser, over TCP.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}:{}/{database}", self.listen, self.port)
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref().map(Supervised::pid)
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
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        let output = Command::new(self.psql_path()?)
            .args(self.psql_args("postgres", &sql))
            .output()
            .map_err(|source| PostgresError::Io { doing: "running psql", source })?;
        check("CREATE DATABASE", &output)
    }

    /// A psql session on `database` that runs `sql` and ends, to be supervised:
    /// tests use it to hold locks or load the server beside the system under test.
    pub fn session(&self, database: &str, sql: &str) -> Result<Spec, PostgresError> {
        Ok(Spec::new(self.psql_path()?).name("psql session").args(self.psql_args(database, sql)))
    }

    /// psql's arguments to run `sql` on `database` as the superuser, stopping at the
    /// first error, over the Unix socket (which every network namespace can reach).
    fn psql_args(&self, database: &str, sql: &str) -> Vec<std::ffi::OsString> {
        let port = self.port.to_string();
        let mut args: Vec<std::ffi::OsString> =
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", database, "-p", &port].map(Into::into).into();
        args.extend(["-h".into(), self.dir().as_os_str().to_owned(), "-c".into(), sql.into()]);
        args
    }

    /// Stops the server (fast shutdown: open sessions are disconnected), keeping the
    /// data. Used by tests that take the database away under load.
    pub fn stop(&self) -> Result<(), PostgresError> {
        self.signal_and_wait(Signal::SIGINT)
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

    fn psql_path(&self) -> Result<PathBuf, PostgresError> {
        let beside = self.bin_dir.join("psql");
        if beside.exists() {
            return Ok(beside);
        }
        which("psql").ok_or(PostgresError::NotInstalled)
    }

    fn initdb(&self, settings: &[(String, String)], allow_from: &[String]) -> Result<(), PostgresError> {
        let output = self
            .run_as
            .command(&self.bin_dir.join("initdb"))
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "-D"])
            .arg(self.data_dir())
            .output()
            .map_err(|source| PostgresError::Io { doing: "running initdb", source })?;
        check("initdb", &output)?;

        let mut conf = format!(
            "\n# loadlab private instance\nlisten_addresses = '{}'\nunix_socket_directories = '{}'\n\
             logging_collector = off\nlog_min_messages = warning\n",
            self.listen,
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
            .map_err(|source| PostgresError::Io { doing: "writing postgresql.conf", source })?;
        if allow_from.is_empty() {
            return Ok(());
        }
        let hba_path = self.data_dir().join("pg_hba.conf");
        let mut hba = std::fs::read_to_string(&hba_path)
            .map_err(|source| PostgresError::Io { doing: "reading pg_hba.conf", source })?;
        for network in allow_from {
            hba.push_str(&format!("host all all {network} trust\n"));
        }
        std::fs::write(&hba_path, hba).map_err(|source| PostgresError::Io { doing: "writing pg_hba.conf", source })
    }

    fn start_server(&self) -> Result<(), PostgresError> {
        let place = Place { user: self.run_as.clone(), ..self.placement.clone() };
        // postmaster.pid's eighth line says "ready" once connections are accepted.
        let ready = Ready::File { path: self.data_dir().join("postmaster.pid"), line: Some("ready".into()) };
        let server = Spec::new(self.bin_dir.join("postgres"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .place(place)
            .log(self.dir().join("postgres.log"))
            .stop(Stop::signal(Signal::SIGQUIT, STOP_LIMIT))
            .start(&ready, START_LIMIT)
            .map_err(|error| PostgresError::Command { step: "postgres start", detail: error.to_string() })?;
        *self.server.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(server);
        Ok(())
    }

    /// Sends `signal` to the server and reaps it; SIGKILL if it outlasts
    /// [`STOP_LIMIT`]. A no-op when it is not running.
    fn signal_and_wait(&self, signal: Signal) -> Result<(), PostgresError> {
        let mut server = self.server.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(mut process) = server.take() else { return Ok(()) };
        if process.stop_with(Stop::signal(signal, STOP_LIMIT)).killed {
            return Err(PostgresError::Command {
                step: "postgres stop",
                detail: format!("did not stop within {STOP_LIMIT:?} after {signal}; killed"),
            });
        }
        Ok(())
    }

    fn shut_down(&self) {
        // Immediate: the data is thrown away anyway, so skip the checkpoint.
        let _ = self.signal_and_wait(Signal::SIGQUIT);
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

/// Whether the TimescaleDB extension is installed beside the server (then the lab
/// preloads it, and device-api makes a hypertable).
pub fn has_timescaledb() -> bool {
    find_bin_dir().is_some_and(|dir| timescaledb_beside(&dir))
}

/// TimescaleDB's loader in the library directory of the server in `bin_dir`
/// (`/usr/lib/postgresql/15/lib` for Debian's `/usr/lib/postgresql/15/bin`; the
/// same layout in a Nix `postgresql.withPackages`).
fn timescaledb_beside(bin_dir: &Path) -> bool {
    bin_dir.parent().is_some_and(|parent| parent.join("lib/timescaledb.so").is_file())
}

/// Adds `library` to `shared_preload_libraries` in `settings`, keeping any others.
fn preload(settings: &mut Vec<(String, String)>, library: &str) {
    match settings.iter_mut().find(|(name, _)| name == "shared_preload_libraries") {
        Some((_, value)) if value.split(',').any(|each| each.trim() == library) => {}
        Some((_, value)) if value.trim().is_empty() => *value = library.to_string(),
        Some((_, value)) => *value = format!("{value},{library}"),
        None => settings.push(("shared_preload_libraries".into(), library.into())),
    }
}

/// The `postgres` server binary this machine has, if any.
pub fn server_binary() -> Option<PathBuf> {
    find_bin_dir().map(|dir| dir.join("postgres"))
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

/// Where initdb and postgres live: `LOADLAB_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian), else the `PATH` (Nix, Homebrew).
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
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
    which("initdb").and_then(|initdb| initdb.parent().map(Path::to_path_buf)).filter(|dir| has_tools(dir))
}
