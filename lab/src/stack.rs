//! The running lab: every role's components of a topology, started in dependency
//! order (network, PostgreSQL, exporters, device-api, grpc-stress, a `loadgen agent`
//! on each loadgen host, Pushgateway, Prometheus), each waited for until ready, and all stopped in reverse order when
//! the stack is dropped, including after a failure half-way through. Where each
//! listens and runs is decided first, by [`Layout`].

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use loadlab_supervise::Supervised;

pub use crate::layout::{Isolation, Layout};
use crate::netns::{Netem, Network};
use crate::postgres::{PostgresInstance, PostgresOptions};
use crate::server::{self, ServerError, ServerSpec, Site};
use crate::state::Registration;
use crate::topology::{Host, Role, Service, Topology};

/// Which engine device-api stores measurements in (its `--storage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// TimescaleDB where it is installed beside PostgreSQL (the lab preloads it),
    /// else native partitions.
    Auto,
    /// TimescaleDB, or the lab does not start.
    Timescaledb,
    /// Plain PostgreSQL (TimescaleDB not preloaded), native partitions.
    Native,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Timescaledb => "timescaledb",
            Self::Native => "native",
        }
    }

    /// Whether PostgreSQL preloads TimescaleDB for this choice.
    pub fn preloads_timescaledb(self) -> bool {
        match self {
            Self::Native => false,
            Self::Timescaledb => true,
            Self::Auto => crate::postgres::has_timescaledb(),
        }
    }
}

/// What the stack needs besides the topology.
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub isolation: Isolation,
    pub storage: Storage,
    /// Take a free port instead of failing when a topology port is taken.
    pub any_port: bool,
    pub netem: Option<Netem>,
    /// The agents' token file to use (none: a fresh one in `work_dir`).
    pub agent_token_file: Option<PathBuf>,
    /// Where device-api, grpc-stress and loadgen are.
    pub bin_dir: PathBuf,
    /// The repository's `monitoring/` directory (rule files).
    pub monitoring_dir: PathBuf,
    /// Working directory: data of PostgreSQL and Prometheus, cwd of every component.
    pub work_dir: PathBuf,
    /// One `<component>.log` per component.
    pub log_dir: PathBuf,
}

/// The lab's load generators: a `loadgen agent` on each loadgen host, which a
/// controller (`loadlab run`, `loadlab serve`, or `loadgen breakpoint --agents`)
/// drives as one generator with the lab's token.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Agents {
    /// Each agent's `http://address:port`, in the topology's order.
    pub urls: Vec<String>,
    /// The shared token: a file in the lab's working directory only its user reads.
    pub token_file: PathBuf,
}

/// The running components. Dropping it stops them, newest first.
pub struct Stack {
    pub layout: Layout,
    /// (component, process), in start order.
    servers: Vec<(String, Supervised)>,
    postgres: Option<PostgresInstance>,
    network: Option<Network>,
    /// Optional components that are not installed: (component, why).
    pub missing: Vec<(String, String)>,
    /// URLs worth showing: (name, URL, the namespace it is reachable in).
    pub urls: Vec<(String, String, Option<String>)>,
    /// Whether PostgreSQL preloads TimescaleDB.
    pub timescaledb_preloaded: bool,
    /// The engine device-api's `/ready` reported (`timescaledb`, `native-partitions`).
    pub storage_engine: Option<String>,
    /// The load generators, ready for a controller.
    pub agents: Agents,
    options: StackOptions,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("layout", &self.layout).field("missing", &self.missing).finish()
    }
}

impl Stack {
    /// Starts every component of `topology`. `say` is told what happens, for the
    /// progress display; `registration` learns the namespaces before they exist.
    pub fn start(
        topology: &Topology,
        options: &StackOptions,
        registration: &mut Registration,
        say: &dyn Fn(&str),
    ) -> anyhow::Result<Self> {
        let lab_id = registration.record.id.clone();
        let layout = Layout::resolve(topology, options, &lab_id)?;
        std::fs::create_dir_all(&options.log_dir)?;
        let mut stack = Stack {
            layout,
            servers: Vec::new(),
            postgres: None,
            network: None,
            missing: Vec::new(),
            urls: Vec::new(),
            timescaledb_preloaded: false,
            storage_engine: None,
            agents: Agents::default(),
            options: options.clone(),
        };
        if options.isolation == Isolation::Netns {
            stack.create_network(topology, registration, say)?;
        }
        for host in &topology.hosts {
            say(&format!("  {:<10} {} on CPUs {}", host.name, stack.layout.ip(host), stack.layout.cpus[&host.name]));
        }
        let database_url = stack.start_database(topology, say)?;
        stack.start_exporters(topology, say)?;
        stack.start_services(topology, database_url, say)?;
        stack.start_agents(topology, say)?;
        stack.start_monitoring(topology, say)?;
        Ok(stack)
    }

    /// One namespace per host on a bridge (recorded first, so a crash leaves nothing
    /// the next command cannot find).
    fn create_network(
        &mut self,
        topology: &Topology,
        registration: &mut Registration,
        say: &dyn Fn(&str),
    ) -> anyhow::Result<()> {
        let lab_id = registration.record.id.clone();
        registration.record.namespaces = self.layout.namespaces.values().cloned().collect();
        registration.record.namespaces.push(format!("{}{lab_id}-switch", crate::netns::PREFIX));
        registration.save()?;
        let hosts: Vec<(&str, Ipv4Addr)> =
            topology.hosts.iter().map(|host| (host.name.as_str(), host.address)).collect();
        say(&format!("creating {} network namespaces on a bridge", hosts.len() + 1));
        self.network = Some(Network::create(&lab_id, &hosts, self.options.netem.as_ref())?);
        Ok(())
    }

    /// PostgreSQL on the database host with an empty `device_api` database; its URL.
    fn start_database(&mut self, topology: &Topology, say: &dyn Fn(&str)) -> anyhow::Result<String> {
        let db = topology.host_with(Role::Database).context("no database host")?;
        let db_address = self.layout.address(db, Service::Postgresql);
        say(&format!("starting PostgreSQL on {} ({db_address})", db.name));
        let allow_from = match self.options.isolation {
            Isolation::Process => vec!["127.0.0.0/8".to_string()],
            Isolation::Netns => {
                let mut allowed = vec![format!("{}/32", db.address)];
                allowed.extend(topology.host_with(Role::DeviceApi).map(|app| format!("{}/32", app.address)));
                allowed
            }
        };
        let storage = self.options.storage;
        let timescaledb = storage.preloads_timescaledb();
        match (storage, timescaledb) {
            (Storage::Native, _) => say("  plain PostgreSQL (--storage native)"),
            (_, true) => say("  preloading TimescaleDB"),
            (_, false) => say("  TimescaleDB is not installed (scripts/install-deps builds it): native partitions"),
        }
        let postgres = PostgresInstance::start_with(PostgresOptions {
            settings: Vec::new(),
            port: Some(db_address.port()),
            listen: Some(self.layout.ip(db)),
            placement: self.layout.place(db),
            allow_from,
            parent: Some(self.options.work_dir.clone()),
            timescaledb,
        })
        .context("starting PostgreSQL")?;
        self.timescaledb_preloaded = timescaledb;
        postgres.create_database("device_api")?;
        let database_url = postgres.url("device_api");
        self.show("PostgreSQL", database_url.clone(), db);
        self.postgres = Some(postgres);
        Ok(database_url)
    }

    /// The postgres exporter beside the database, a node exporter on every host.
    fn start_exporters(&mut self, topology: &Topology, say: &dyn Fn(&str)) -> anyhow::Result<()> {
        let db = topology.host_with(Role::Database).context("no database host")?;
        let db_address = self.layout.address(db, Service::Postgresql);
        let dsn = format!("postgresql://postgres@{db_address}/device_api?sslmode=disable");
        let spec = server::postgres_exporter_spec(&dsn, &self.options.monitoring_dir);
        self.start_optional("postgres-exporter", &spec, db, Service::PostgresExporter, say)?;
        for host in &topology.hosts {
            let name = format!("node-exporter-{}", host.name);
            self.start_optional(&name, &server::node_exporter_spec(), host, Service::NodeExporter, say)?;
        }
        Ok(())
    }

    /// The services under test: device-api, and grpc-stress where it has a host.
    fn start_services(&mut self, topology: &Topology, database_url: String, say: &dyn Fn(&str)) -> anyhow::Result<()> {
        let app = topology.host_with(Role::DeviceApi).context("no device-api host")?;
        let api_address = self.layout.address(app, Service::DeviceApi);
        let mut args = vec!["--listen".to_string(), api_address.to_string(), "--database-url".into(), database_url];
        let settings = topology.settings_flags("device-api");
        let storage = self.options.storage;
        if storage != Storage::Auto {
            if settings.iter().any(|flag| flag == "--storage") {
                anyhow::bail!("--storage {} given, but [settings.device-api] sets storage too", storage.as_str());
            }
            args.extend(["--storage".to_string(), storage.as_str().to_string()]);
        }
        args.extend(settings);
        let spec = self.our_program("device-api", args, "/ready");
        self.start_server("device-api", &spec, app, Service::DeviceApi, say)?;
        self.show("device-api", format!("http://{api_address}"), app);
        self.storage_engine = self.storage_engine(app, api_address);
        say(&format!("  device-api stores measurements in {}", self.storage_engine.as_deref().unwrap_or("?")));

        if let Some(grpc) = topology.host_with(Role::GrpcStress) {
            let listen = self.layout.address(grpc, Service::GrpcStress);
            let metrics = self.layout.address(grpc, Service::GrpcStressMetrics);
            let mut args = ["server", "--listen", &listen.to_string(), "--metrics-listen", &metrics.to_string()]
                .map(str::to_string)
                .to_vec();
            args.extend(topology.settings_flags("grpc-stress"));
            let spec = self.our_program("grpc-stress", args, "/metrics");
            self.start_server("grpc-stress", &spec, grpc, Service::GrpcStressMetrics, say)?;
            self.show("grpc-stress", format!("http://{listen}"), grpc);
        }
        Ok(())
    }

    /// A `loadgen agent` on each loadgen host, at its host's address and CPUs,
    /// connecting to the targets from that address, serving its `/metrics` where
    /// Prometheus scrapes the host's loadgen; and the lab's token for them.
    fn start_agents(&mut self, topology: &Topology, say: &dyn Fn(&str)) -> anyhow::Result<()> {
        let token_file = match &self.options.agent_token_file {
            Some(given) => given.clone(),
            None => {
                let made = self.options.work_dir.join("agent.token");
                write_token(&made).with_context(|| format!("writing the agents' token to {}", made.display()))?;
                made
            }
        };
        let mut urls = Vec::new();
        for host in topology.hosts_with(Role::Loadgen) {
            let listen = self.layout.address(host, Service::LoadgenAgent);
            let args = [
                "agent",
                "--listen",
                &listen.to_string(),
                "--token-file",
                &token_file.display().to_string(),
                "--metrics-listen",
                "{address}",
                "--source-address",
                &self.layout.ip(host).to_string(),
            ]
            .map(str::to_string)
            .to_vec();
            let spec = self.our_program("loadgen", args, "/metrics");
            let name = format!("loadgen-agent-{}", host.name);
            self.start_server(&name, &spec, host, Service::Loadgen, say)?;
            let metrics = self.layout.address(host, Service::Loadgen);
            self.show(&format!("loadgen agent on {} (metrics)", host.name), format!("http://{metrics}"), host);
            urls.push(format!("http://{listen}"));
        }
        self.agents = Agents { urls, token_file };
        Ok(())
    }

    /// Pushgateway and Prometheus (scraping every job of the topology, with the rule
    /// files of `monitoring/`) on the monitoring host.
    fn start_monitoring(&mut self, topology: &Topology, say: &dyn Fn(&str)) -> anyhow::Result<()> {
        let monitor = topology.host_with(Role::Monitoring).context("no monitoring host")?;
        let pushgateway = server::pushgateway_spec();
        if self.start_optional("pushgateway", &pushgateway, monitor, Service::Pushgateway, say)? {
            let url = format!("http://{}", self.layout.address(monitor, Service::Pushgateway));
            self.show("Pushgateway", url, monitor);
        }
        let jobs = topology.scrape_jobs(|host, service| self.layout.address(host, service));
        let rules = crate::scrape::rule_files(&self.options.monitoring_dir)?;
        let config = crate::scrape::prometheus_yml(topology.scrape_interval(), &rules, &jobs);
        if self.start_optional("prometheus", &server::prometheus_spec(&config), monitor, Service::Prometheus, say)? {
            let url = format!("http://{}", self.layout.address(monitor, Service::Prometheus));
            self.show("Prometheus", url, monitor);
        }
        Ok(())
    }

    /// Lists a URL of `host`'s for the user.
    fn show(&mut self, name: &str, url: String, host: &Host) {
        self.urls.push((name.to_string(), url, self.layout.namespaces.get(&host.name).cloned()));
    }

    /// Starts a component the lab can do without: not installed is a warning and a
    /// note in `missing`; any other failure is an error. Says whether it started.
    fn start_optional(
        &mut self,
        name: &str,
        spec: &ServerSpec,
        host: &Host,
        service: Service,
        say: &dyn Fn(&str),
    ) -> anyhow::Result<bool> {
        match self.start_server(name, spec, host, service, say) {
            Ok(()) => Ok(true),
            Err(ServerError::NotInstalled { program, package }) => {
                let why = format!("{program} is not installed (apt-get install {package})");
                say(&format!("WARNING: skipping {name}: {why}"));
                self.missing.push((name.to_string(), why));
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Starts a component and waits until it answers; any failure is an error.
    fn start_server(
        &mut self,
        name: &str,
        spec: &ServerSpec,
        host: &Host,
        service: Service,
        say: &dyn Fn(&str),
    ) -> Result<(), ServerError> {
        let address = self.layout.address(host, service);
        say(&format!("starting {name} on {} ({address})", host.name));
        let dir = self.options.work_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|source| ServerError::Io { doing: "creating a directory", source })?;
        let log = self.options.log_dir.join(format!("{name}.log"));
        let site = Site { address, place: self.layout.place(host), dir, log };
        let started = std::time::Instant::now();
        let process = server::start_at(name, spec, &site)?;
        say(&format!("  {name} ready ({:.1} s)", started.elapsed().as_secs_f64()));
        self.servers.push((name.to_string(), process));
        Ok(())
    }

    /// One of the workspace's programs, from `--bin-dir`.
    /// The storage engine device-api's `/ready` reports, asked from its host.
    fn storage_engine(&self, app: &Host, address: std::net::SocketAddr) -> Option<String> {
        let body =
            self.layout.place(app).within(move || loadlab_supervise::http::get(address, "/ready")).ok()?.ok()?.body;
        let ready: serde_json::Value = serde_json::from_str(&body).ok()?;
        ready["engine"].as_str().map(str::to_string)
    }

    fn our_program(&self, program: &str, args: Vec<String>, ready_path: &'static str) -> ServerSpec {
        let path = self.options.bin_dir.join(program);
        let mut spec = ServerSpec::new(
            &path.display().to_string(),
            "(build the workspace: cargo build --release)",
            &[],
            ready_path,
        );
        spec.args = args;
        spec
    }

    /// Whether a component is running.
    pub fn has(&self, name: &str) -> bool {
        self.servers.iter().any(|(each, _)| each == name)
    }

    /// The first component found to have exited on its own: (name, status).
    pub fn exited(&mut self) -> Option<(String, String)> {
        self.servers
            .iter_mut()
            .find_map(|(name, server)| server.try_wait().map(|status| (name.clone(), status.to_string())))
    }

    /// Stops everything (newest first), copying PostgreSQL's log beside the others.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        while let Some((_, mut server)) = self.servers.pop() {
            server.stop();
        }
        if let Some(postgres) = self.postgres.take() {
            if let Some(log) = postgres.log_path() {
                let _ = std::fs::copy(log, self.options.log_dir.join("postgresql.log"));
            }
            drop(postgres);
        }
        self.network.take();
    }
}

/// A fresh random token (32 hex digits) in a new file that only this user may read.
fn write_token(path: &Path) -> std::io::Result<()> {
    let token: String = rand::random::<[u8; 16]>().iter().map(|byte| format!("{byte:02x}")).collect();
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(file, "{token}")
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}
