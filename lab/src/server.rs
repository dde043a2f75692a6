//! The lab's server programs (Prometheus, Pushgateway, node exporter, postgres
//! exporter, and the workspace's own device-api and grpc-stress): what each is
//! called, which Debian package has it, its arguments and ready path, and starting
//! one at a [`Site`] as a supervised process. Test fixtures start the same specs
//! (`loadlab-fixtures`), so tests run the programs as the lab configures them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loadlab_supervise::{Place, Ready, Spec, Stop, SuperviseError, Supervised, which_any};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{program} not found: install it (Debian/Ubuntu: apt-get install {package})")]
    NotInstalled { program: String, package: String },
    #[error(transparent)]
    Start(#[from] SuperviseError),
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

/// Where [`start_at`] puts a server: the lab chooses address, place, working
/// directory and log file.
#[derive(Clone, Debug)]
pub struct Site {
    pub address: SocketAddr,
    pub place: Place,
    /// An existing directory for its files and data.
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// How long a server may take to answer its ready path.
pub const READY_LIMIT: Duration = Duration::from_secs(60);
/// SIGTERM, and 5 s to exit before SIGKILL.
pub const STOP: Stop = Stop::term(Duration::from_secs(5));

/// Starts `spec` as `name` at `site` and waits until its ready path answers 200
/// there; a start that fails names the server and shows the tail of its log.
pub fn start_at(name: &str, spec: &ServerSpec, site: &Site) -> Result<Supervised, ServerError> {
    let names: Vec<&str> = std::iter::once(spec.program.as_str()).chain(spec.aliases.iter().copied()).collect();
    let binary = which_any(&names).ok_or_else(|| ServerError::NotInstalled {
        program: spec.program.clone(),
        package: spec.package.to_string(),
    })?;
    let address = site.address.to_string();
    for (file, contents) in &spec.files {
        std::fs::write(site.dir.join(file), contents.replace("{address}", &address))
            .map_err(|source| ServerError::Io { doing: "writing a configuration file", source })?;
    }
    let dir = site.dir.display().to_string();
    let args = spec.args.iter().map(|arg| arg.replace("{address}", &address).replace("{dir}", &dir));
    let process = Spec::new(binary)
        .name(name)
        .args(args)
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .cwd(&site.dir)
        .place(site.place.clone())
        .log(&site.log)
        .stop(STOP)
        .start(&Ready::http(site.address, spec.ready_path), READY_LIMIT)?;
    Ok(process)
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

/// Prometheus with `config` as its prometheus.yml (see [`crate::scrape`]), data in
/// its directory.
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
/// prometheus-postgres-exporter), with the extra queries of `monitoring_dir`
/// (`postgres-exporter/queries.yaml`: backends by wait event).
pub fn postgres_exporter_spec(dsn: &str, monitoring_dir: &Path) -> ServerSpec {
    let queries = monitoring_dir.join("postgres-exporter/queries.yaml");
    let args = ["--web.listen-address={address}".to_string(), format!("--extend.query-path={}", queries.display())];
    let mut spec = ServerSpec::new("prometheus-postgres-exporter", "prometheus-postgres-exporter", &[], "/metrics");
    spec.args = args.to_vec();
    spec.aliases.push("postgres_exporter");
    spec.env.push(("DATA_SOURCE_NAME".into(), dsn.into()));
    spec
}
