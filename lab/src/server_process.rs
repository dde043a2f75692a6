//! A private instance of an HTTP server program (Prometheus, Pushgateway, node
//! exporter, postgres exporter): its own temporary directory, a free loopback port,
//! its output in a log file there, ready when an HTTP path answers 200, killed and
//! reaped on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::placement::Placement;
use crate::process_user::RunAs;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{program} not found: install it (Debian/Ubuntu: apt-get install {package})")]
    NotInstalled { program: String, package: String },
    #[error("{program} did not become ready on {address} within {limit:?}; log: {log}\n{tail}")]
    NotReady { program: String, address: SocketAddr, limit: Duration, log: String, tail: String },
    #[error("{program} exited during start-up ({status}); log: {log}\n{tail}")]
    Exited { program: String, status: String, log: String, tail: String },
    #[error("i/o error while {doing}: {source}")]
    Io { doing: &'static str, source: std::io::Error },
}

/// What to start.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// Program name, looked up on PATH, or a path.
    pub program: String,
    /// Other names it goes by (nixpkgs installs `pushgateway` where Debian has
    /// `prometheus-pushgateway`).
    pub aliases: Vec<&'static str>,
    /// Debian package that provides it, for the error message.
    pub package: &'static str,
    /// Arguments; `{address}` and `{dir}` are replaced.
    pub args: Vec<String>,
    /// A path that answers 200 once the server is ready.
    pub ready_path: &'static str,
    /// Environment variables for the server.
    pub env: Vec<(String, String)>,
    /// Files written into its directory before it starts (name, contents); `{address}`
    /// in the contents is replaced.
    pub files: Vec<(String, String)>,
}

impl ServerSpec {
    pub fn new(program: &str, package: &'static str, args: &[&str], ready_path: &'static str) -> Self {
        Self {
            program: program.to_string(),
            aliases: Vec::new(),
            package,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            ready_path,
            env: Vec::new(),
            files: Vec::new(),
        }
    }
}

pub struct ServerProcess {
    child: Child,
    address: SocketAddr,
    dir: PathBuf,
    /// The directory, when it is this server's own temporary one.
    _temp: Option<TempDir>,
}

/// Where [`ServerProcess::start_at`] puts a server: the lab chooses address,
/// namespace, CPUs, working directory and log file.
#[derive(Clone, Debug)]
pub struct Site {
    pub address: SocketAddr,
    pub placement: Placement,
    /// An existing directory for its files and data.
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// How long a server may take to answer its ready path.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess").field("address", &self.address).field("dir", &self.dir).finish()
    }
}

impl ServerProcess {
    /// Starts a private instance: its own temporary directory, a free port on
    /// 127.0.0.1, its log in that directory.
    pub fn start(spec: &ServerSpec) -> Result<Self, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("loadlab-{}-", spec.program.rsplit('/').next().unwrap_or(&spec.program)))
            .tempdir()
            .map_err(|source| ServerError::Io { doing: "creating a directory", source })?;
        let port =
            crate::ports::free_loopback_port().map_err(|source| ServerError::Io { doing: "finding a port", source })?;
        let site = Site {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            placement: Placement::default(),
            dir: dir.path().to_path_buf(),
            log: dir.path().join("server.log"),
        };
        let mut server = Self::start_at(spec, &site)?;
        server._temp = Some(dir);
        Ok(server)
    }

    /// Starts `spec` at `site` and waits until its ready path answers 200.
    pub fn start_at(spec: &ServerSpec, site: &Site) -> Result<Self, ServerError> {
        let binary = if spec.program.contains('/') {
            Some(PathBuf::from(&spec.program))
        } else {
            which(&spec.program).or_else(|| spec.aliases.iter().find_map(|alias| which(alias)))
        }
        .filter(|path| path.is_file())
        .ok_or_else(|| ServerError::NotInstalled {
            program: spec.program.to_string(),
            package: spec.package.to_string(),
        })?;
        let address = site.address;
        let dir_text = site.dir.display().to_string();
        let log =
            std::fs::File::create(&site.log).map_err(|source| ServerError::Io { doing: "creating the log", source })?;
        let log_err = log.try_clone().map_err(|source| ServerError::Io { doing: "creating the log", source })?;
        for (name, contents) in &spec.files {
            std::fs::write(site.dir.join(name), contents.replace("{address}", &address.to_string()))
                .map_err(|source| ServerError::Io { doing: "writing a configuration file", source })?;
        }
        let args: Vec<String> = spec
            .args
            .iter()
            .map(|arg| arg.replace("{address}", &address.to_string()).replace("{dir}", &dir_text))
            .collect();
        let child = site
            .placement
            .command(&binary, &RunAs::Current)
            .args(&args)
            .envs(spec.env.iter().map(|(name, value)| (name, value)))
            .current_dir(&site.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| ServerError::Io { doing: "starting the server", source })?;
        let mut server = Self { child, address, dir: site.dir.clone(), _temp: None };
        let deadline = Instant::now() + READY_LIMIT;
        let mut exited = None;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                exited = Some(status);
                break;
            }
            if site.placement.http_status(address, spec.ready_path) == Some(200) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let tail = std::fs::read_to_string(&site.log).unwrap_or_default();
        let tail = tail.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        let _ = server.child.kill();
        let _ = server.child.wait();
        let program = spec.program.to_string();
        let log = site.log.display().to_string();
        Err(match exited {
            Some(status) => ServerError::Exited { program, status: status.to_string(), log, tail },
            None => ServerError::NotReady { program, address, limit: READY_LIMIT, log, tail },
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some` once the server has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        stop_child(&mut self.child, STOP_LIMIT);
    }
}

/// SIGTERM, then SIGKILL after `limit`; always reaped.
pub(crate) fn stop_child(child: &mut Child, limit: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Pushgateway (Debian package prometheus-pushgateway).
pub fn pushgateway_spec() -> ServerSpec {
    let mut spec = ServerSpec::new(
        "prometheus-pushgateway",
        "prometheus-pushgateway",
        &["--web.listen-address={address}"],
        "/-/ready",
    );
    spec.aliases.push("pushgateway");
    spec
}

/// Prometheus with `config` as its prometheus.yml (rule files given by absolute
/// path), data in its directory.
pub fn prometheus_spec(config: &str) -> ServerSpec {
    let args = [
        "--config.file={dir}/prometheus.yml",
        "--storage.tsdb.path={dir}/data",
        "--web.listen-address={address}",
        "--web.enable-lifecycle",
    ];
    let mut spec = ServerSpec::new("prometheus", "prometheus", &args, "/-/ready");
    spec.files.push(("prometheus.yml".into(), config.into()));
    spec
}

/// Node exporter (Debian package prometheus-node-exporter).
pub fn node_exporter_spec() -> ServerSpec {
    let args = ["--web.listen-address={address}", "--collector.processes"];
    let mut spec = ServerSpec::new("prometheus-node-exporter", "prometheus-node-exporter", &args, "/metrics");
    spec.aliases.push("node_exporter");
    spec
}

/// Postgres exporter for the database at `dsn` (Debian package
/// prometheus-postgres-exporter), with extra queries from `queries` (the lab passes
/// `monitoring/postgres-exporter/queries.yaml`: backends by wait event).
pub fn postgres_exporter_spec(dsn: &str, queries: Option<&Path>) -> ServerSpec {
    let mut args = vec!["--web.listen-address={address}".to_string()];
    args.extend(queries.map(|path| format!("--extend.query-path={}", path.display())));
    let mut spec = ServerSpec::new("prometheus-postgres-exporter", "prometheus-postgres-exporter", &[], "/metrics");
    spec.args = args;
    spec.aliases.push("postgres_exporter");
    spec.env.push(("DATA_SOURCE_NAME".into(), dsn.into()));
    spec
}

/// A private Pushgateway.
pub fn pushgateway() -> Result<ServerProcess, ServerError> {
    ServerProcess::start(&pushgateway_spec())
}

/// A private Prometheus (see [`prometheus_spec`]).
pub fn prometheus(config: &str) -> Result<ServerProcess, ServerError> {
    ServerProcess::start(&prometheus_spec(config))
}

/// A private node exporter.
pub fn node_exporter() -> Result<ServerProcess, ServerError> {
    ServerProcess::start(&node_exporter_spec())
}

/// A private postgres exporter for the database at `dsn`, with the repository's
/// extra queries (for tests, which run in the source tree).
pub fn postgres_exporter(dsn: &str) -> Result<ServerProcess, ServerError> {
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/postgres-exporter/queries.yaml");
    ServerProcess::start(&postgres_exporter_spec(dsn, Some(&queries)))
}

/// The status code of `GET path` (HTTP/1.0, blocking, 2 s timeout).
pub fn http_get_status(address: SocketAddr, path: &str) -> Option<u16> {
    use std::io::Read;
    // Only the status line: readiness probes poll, and /metrics bodies are large.
    let mut head = [0u8; 12];
    send_get(address, path, Duration::from_secs(2))?.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The body of `GET path` (HTTP/1.0, blocking, 10 s timeout), when it answers 200.
pub fn http_get_body(address: SocketAddr, path: &str) -> Option<String> {
    use std::io::Read;
    let mut response = String::new();
    send_get(address, path, Duration::from_secs(10))?.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_string())
}

/// Connects (2 s at most) and sends `GET path` as HTTP/1.0, so the server closes
/// the connection after its answer.
fn send_get(address: SocketAddr, path: &str, read_timeout: Duration) -> Option<std::net::TcpStream> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(read_timeout)).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).ok()?;
    Some(stream)
}

/// Percent-encodes a URL query parameter (a PromQL expression).
pub fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `program`'s path on PATH.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}
