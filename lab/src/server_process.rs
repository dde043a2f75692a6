//! A private instance of an HTTP server program (Prometheus, Pushgateway, node
//! exporter, postgres exporter): its own temporary directory, a free loopback port,
//! its output in a log file there, ready when an HTTP path answers 200, killed and
//! reaped on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{program} not found: install it (Debian/Ubuntu: apt-get install {package})")]
    NotInstalled { program: String, package: String },
    #[error("{program} did not become ready on {address} within {limit:?}; log: {log}\n{tail}")]
    NotReady { program: String, address: SocketAddr, limit: Duration, log: String, tail: String },
    #[error("i/o error while {doing}: {source}")]
    Io { doing: &'static str, source: std::io::Error },
}

/// What to start.
pub struct ServerSpec<'a> {
    /// Program name, looked up on PATH.
    pub program: &'a str,
    /// Debian package that provides it, for the error message.
    pub package: &'a str,
    /// Arguments; `{address}` and `{dir}` are replaced.
    pub args: &'a [&'a str],
    /// A path that answers 200 once the server is ready.
    pub ready_path: &'a str,
    /// Environment variables for the server.
    pub env: &'a [(&'a str, &'a str)],
    /// Files written into its directory before it starts (name, contents); `{address}`
    /// in the contents is replaced.
    pub files: &'a [(&'a str, &'a str)],
}

pub struct ServerProcess {
    child: Child,
    address: SocketAddr,
    dir: TempDir,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess").field("address", &self.address).field("dir", &self.dir.path()).finish()
    }
}

impl ServerProcess {
    pub fn start(spec: &ServerSpec<'_>) -> Result<Self, ServerError> {
        let binary = which(spec.program).ok_or_else(|| ServerError::NotInstalled {
            program: spec.program.to_string(),
            package: spec.package.to_string(),
        })?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("loadlab-{}-", spec.program))
            .tempdir()
            .map_err(|source| ServerError::Io { doing: "creating a directory", source })?;
        let port =
            crate::ports::free_loopback_port().map_err(|source| ServerError::Io { doing: "finding a port", source })?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log_path = dir.path().join("server.log");
        let log =
            std::fs::File::create(&log_path).map_err(|source| ServerError::Io { doing: "creating the log", source })?;
        let log_err = log.try_clone().map_err(|source| ServerError::Io { doing: "creating the log", source })?;
        for (name, contents) in spec.files {
            std::fs::write(dir.path().join(name), contents.replace("{address}", &address.to_string()))
                .map_err(|source| ServerError::Io { doing: "writing a configuration file", source })?;
        }
        let args: Vec<String> = spec
            .args
            .iter()
            .map(|arg| {
                arg.replace("{address}", &address.to_string()).replace("{dir}", &dir.path().display().to_string())
            })
            .collect();
        let child = Command::new(&binary)
            .args(&args)
            .envs(spec.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| ServerError::Io { doing: "starting the server", source })?;
        let mut server = Self { child, address, dir };
        let limit = Duration::from_secs(30);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(server.child.try_wait(), Ok(Some(_))) {
                break;
            }
            if http_get_status(address, spec.ready_path) == Some(200) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail = tail.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        let _ = server.child.kill();
        Err(ServerError::NotReady {
            program: spec.program.to_string(),
            address,
            limit,
            log: log_path.display().to_string(),
            tail,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Pushgateway (Debian package prometheus-pushgateway).
pub fn pushgateway() -> Result<ServerProcess, ServerError> {
    ServerProcess::start(&ServerSpec {
        program: "prometheus-pushgateway",
        package: "prometheus-pushgateway",
        args: &["--web.listen-address={address}"],
        ready_path: "/-/ready",
        env: &[],
        files: &[],
    })
}

/// A private Prometheus with `config` as its prometheus.yml (rule files given by
/// absolute path), data in its own directory.
pub fn prometheus(config: &str) -> Result<ServerProcess, ServerError> {
    ServerProcess::start(&ServerSpec {
        program: "prometheus",
        package: "prometheus",
        args: &[
            "--config.file={dir}/prometheus.yml",
            "--storage.tsdb.path={dir}/data",
            "--web.listen-address={address}",
            "--web.enable-lifecycle",
        ],
        ready_path: "/-/ready",
        env: &[],
        files: &[("prometheus.yml", config)],
    })
}

/// A private node exporter (Debian package prometheus-node-exporter).
pub fn node_exporter() -> Result<ServerProcess, ServerError> {
    ServerProcess::start(&ServerSpec {
        program: "prometheus-node-exporter",
        package: "prometheus-node-exporter",
        args: &["--web.listen-address={address}", "--collector.processes"],
        ready_path: "/metrics",
        env: &[],
        files: &[],
    })
}

/// A private postgres exporter for the database at `dsn` (Debian package
/// prometheus-postgres-exporter).
pub fn postgres_exporter(dsn: &str) -> Result<ServerProcess, ServerError> {
    ServerProcess::start(&ServerSpec {
        program: "prometheus-postgres-exporter",
        package: "prometheus-postgres-exporter",
        args: &["--web.listen-address={address}"],
        ready_path: "/metrics",
        env: &[("DATA_SOURCE_NAME", dsn)],
        files: &[],
    })
}

/// The status code of `GET path` (HTTP/1.0, blocking, 2 s timeout).
pub fn http_get_status(address: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}
