//! The running lab: every role's components of a topology, started in dependency
//! order (network, PostgreSQL, exporters, device-api, grpc-stress, Pushgateway,
//! Prometheus), each waited for until ready, and all stopped in reverse order when
//! the stack is dropped, including after a failure half-way through.
//!
//! Where things listen depends on the isolation:
//! - `process`: every host's services on loopback, host 192.168.56.X as 127.0.56.X
//!   (all of 127/8 is loopback on Linux), on the topology's ports;
//! - `netns`: each host in its own network namespace with its topology address.
//!
//! In both, each host's processes are pinned to its share of the CPUs, the load
//! generator's never shared (see [`assign_cpus`]).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::netns::{Netem, Network};
use crate::placement::{Placement, assign_cpus, available_cpus};
use crate::postgres::{PostgresInstance, PostgresOptions};
use crate::server_process::{self, ServerError, ServerProcess, ServerSpec, Site};
use crate::state::Registration;
use crate::topology::{Host, Role, Service, Topology};

/// How the hosts of the topology are separated on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Processes on loopback (127.0.56.X for host 192.168.56.X).
    Process,
    /// One network namespace per host, on a bridge, with the topology's addresses
    /// (needs root).
    Netns,
}

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
}

/// What the stack needs besides the topology.
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub isolation: Isolation,
    pub storage: Storage,
    /// Take a free port instead of failing when a topology port is taken.
    pub any_port: bool,
    pub netem: Option<Netem>,
    /// Where device-api, grpc-stress and loadgen are.
    pub bin_dir: PathBuf,
    /// The repository's `monitoring/` directory (rule files).
    pub monitoring_dir: PathBuf,
    /// Working directory: data of PostgreSQL and Prometheus, cwd of every component.
    pub work_dir: PathBuf,
    /// One `<component>.log` per component.
    pub log_dir: PathBuf,
}

/// Where each service of each host is reachable, and how to run things there.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Layout {
    pub isolation: Isolation,
    /// host → service name → address.
    pub addresses: BTreeMap<String, BTreeMap<String, SocketAddr>>,
    /// host → namespace (netns only).
    pub namespaces: BTreeMap<String, String>,
    /// host → CPU list (netns only).
    pub cpus: BTreeMap<String, String>,
}

impl Layout {
    /// Resolves every host's services; in `process` isolation a taken port is an
    /// error naming its holder, unless `any_port`.
    pub fn resolve(topology: &Topology, options: &StackOptions, lab_id: &str) -> anyhow::Result<Self> {
        let mut layout = Layout {
            isolation: options.isolation,
            addresses: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            cpus: BTreeMap::new(),
        };
        // Both isolations pin each host to its share of the CPUs, so the generator
        // never shares a CPU with the system under test.
        let vcpus: Vec<u32> = topology.hosts.iter().map(|host| host.vcpus).collect();
        let generator = topology.hosts.iter().position(|host| host.has(Role::Loadgen));
        let cpus = assign_cpus(&vcpus, &available_cpus(), generator);
        for (host, cpus) in topology.hosts.iter().zip(cpus) {
            layout.cpus.insert(host.name.clone(), cpus);
        }
        if options.isolation == Isolation::Netns {
            let names: Vec<&str> = topology.hosts.iter().map(|host| host.name.as_str()).collect();
            for (host, namespace) in topology.hosts.iter().zip(Network::names(lab_id, &names)) {
                layout.namespaces.insert(host.name.clone(), namespace);
            }
        }
        for host in &topology.hosts {
            let ip = layout.ip(host);
            let mut services = BTreeMap::new();
            for service in host.services() {
                let wanted = topology.ports.get(service);
                let port = match options.isolation {
                    Isolation::Netns => wanted,
                    Isolation::Process => choose_port(ip, wanted, service, options.any_port)?,
                };
                services.insert(service.name().to_string(), SocketAddr::from((ip, port)));
            }
            layout.addresses.insert(host.name.clone(), services);
        }
        Ok(layout)
    }

    /// The address a host has in this isolation.
    pub fn ip(&self, host: &Host) -> Ipv4Addr {
        match self.isolation {
            Isolation::Netns => host.address,
            Isolation::Process => {
                let [_, _, _, last] = host.address.octets();
                Ipv4Addr::new(127, 0, 56, last)
            }
        }
    }

    pub fn address(&self, host: &Host, service: Service) -> SocketAddr {
        self.addresses[&host.name][service.name()]
    }

    pub fn placement(&self, host: &Host) -> Placement {
        Placement { netns: self.namespaces.get(&host.name).cloned(), cpus: self.cpus.get(&host.name).cloned() }
    }
}

/// `wanted` on `ip` when free; otherwise a free port with `any_port`, or an error
/// that names who holds it.
fn choose_port(ip: Ipv4Addr, wanted: u16, service: Service, any_port: bool) -> anyhow::Result<u16> {
    match TcpListener::bind((ip, wanted)) {
        Ok(_) => Ok(wanted),
        Err(_) if any_port => Ok(crate::ports::free_port_on(ip)?),
        Err(error) => {
            let holder = crate::ports::holder(wanted).unwrap_or_else(|| "a process loadlab cannot see".to_string());
            bail!(
                "port {wanted} for {} on {ip} is taken ({error}) by {holder}; stop it, change [ports] in the \
                 topology, or pass --any-port",
                service.name()
            )
        }
    }
}

/// The running components. Dropping it stops them, newest first.
pub struct Stack {
    pub layout: Layout,
    /// (component, process), in start order.
    servers: Vec<(String, ServerProcess)>,
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
    log_dir: PathBuf,
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
            layout: layout.clone(),
            servers: Vec::new(),
            postgres: None,
            network: None,
            missing: Vec::new(),
            urls: Vec::new(),
            timescaledb_preloaded: false,
            storage_engine: None,
            log_dir: options.log_dir.clone(),
        };
        let host = |role: Role| topology.host_with(role);

        if options.isolation == Isolation::Netns {
            registration.record.namespaces = layout.namespaces.values().cloned().collect();
            registration.record.namespaces.push(format!("{}{lab_id}-switch", crate::netns::PREFIX));
            registration.save()?;
            let hosts: Vec<(&str, Ipv4Addr)> =
                topology.hosts.iter().map(|host| (host.name.as_str(), host.address)).collect();
            say(&format!("creating {} network namespaces on a bridge", hosts.len() + 1));
            stack.network = Some(Network::create(&lab_id, &hosts, options.netem.as_ref())?);
        }
        for host in &topology.hosts {
            say(&format!("  {:<10} {} on CPUs {}", host.name, layout.ip(host), layout.cpus[&host.name]));
        }

        // The database.
        let db = host(Role::Database).context("no database host")?;
        let db_address = layout.address(db, Service::Postgresql);
        say(&format!("starting PostgreSQL on {} ({db_address})", db.name));
        let allow_from = match options.isolation {
            Isolation::Process => vec!["127.0.0.0/8".to_string()],
            Isolation::Netns => {
                let mut allowed = vec![format!("{}/32", db.address)];
                allowed.extend(host(Role::DeviceApi).map(|app| format!("{}/32", app.address)));
                allowed
            }
        };
        let timescaledb = match options.storage {
            Storage::Native => false,
            Storage::Timescaledb => true,
            Storage::Auto => crate::postgres::has_timescaledb(),
        };
        match (options.storage, timescaledb) {
            (Storage::Native, _) => say("  plain PostgreSQL (--storage native)"),
            (_, true) => say("  preloading TimescaleDB"),
            (_, false) => say("  TimescaleDB is not installed (scripts/install-deps builds it): native partitions"),
        }
        let postgres = PostgresInstance::start_with(PostgresOptions {
            settings: Vec::new(),
            port: Some(db_address.port()),
            listen: Some(layout.ip(db)),
            placement: layout.placement(db),
            allow_from,
            parent: Some(options.work_dir.clone()),
            timescaledb,
        })
        .context("starting PostgreSQL")?;
        stack.timescaledb_preloaded = timescaledb;
        postgres.create_database("device_api")?;
        let database_url = postgres.url("device_api");
        stack.show("PostgreSQL", database_url.clone(), db);
        stack.postgres = Some(postgres);

        let dsn = format!("postgresql://postgres@{db_address}/device_api?sslmode=disable");
        stack.start_optional(
            "postgres-exporter",
            &server_process::postgres_exporter_spec(
                &dsn,
                Some(&options.monitoring_dir.join("postgres-exporter/queries.yaml")),
            ),
            db,
            Service::PostgresExporter,
            options,
            say,
        )?;
        for each in &topology.hosts {
            let name = format!("node-exporter-{}", each.name);
            stack.start_optional(
                &name,
                &server_process::node_exporter_spec(),
                each,
                Service::NodeExporter,
                options,
                say,
            )?;
        }

        // The services under test.
        let app = host(Role::DeviceApi).context("no device-api host")?;
        let api_address = layout.address(app, Service::DeviceApi);
        let mut args = vec!["--listen".to_string(), api_address.to_string(), "--database-url".into(), database_url];
        let settings = topology.settings_flags("device-api");
        if options.storage != Storage::Auto {
            if settings.iter().any(|flag| flag == "--storage") {
                bail!("--storage {} given, but [settings.device-api] sets storage too", options.storage.as_str());
            }
            args.extend(["--storage".to_string(), options.storage.as_str().to_string()]);
        }
        args.extend(settings);
        let spec = our_program(options, "device-api", args, "/ready");
        stack.start_server("device-api", &spec, app, Service::DeviceApi, options, say)?;
        stack.show("device-api", format!("http://{api_address}"), app);
        stack.storage_engine = layout.placement(app).within(move || storage_engine(api_address)).ok().flatten();
        say(&format!("  device-api stores measurements in {}", stack.storage_engine.as_deref().unwrap_or("?")));

        if let Some(grpc) = host(Role::GrpcStress) {
            let listen = layout.address(grpc, Service::GrpcStress);
            let metrics = layout.address(grpc, Service::GrpcStressMetrics);
            let mut args = vec![
                "server".into(),
                "--listen".into(),
                listen.to_string(),
                "--metrics-listen".into(),
                metrics.to_string(),
            ];
            args.extend(topology.settings_flags("grpc-stress"));
            let spec = our_program(options, "grpc-stress", args, "/metrics");
            stack.start_server("grpc-stress", &spec, grpc, Service::GrpcStressMetrics, options, say)?;
            stack.show("grpc-stress", format!("http://{listen}"), grpc);
        }

        // Monitoring.
        let monitor = host(Role::Monitoring).context("no monitoring host")?;
        if stack.start_optional(
            "pushgateway",
            &server_process::pushgateway_spec(),
            monitor,
            Service::Pushgateway,
            options,
            say,
        )? {
            stack.show("Pushgateway", format!("http://{}", layout.address(monitor, Service::Pushgateway)), monitor);
        }
        let config = prometheus_config(topology, &layout, &options.monitoring_dir)?;
        if stack.start_optional(
            "prometheus",
            &server_process::prometheus_spec(&config),
            monitor,
            Service::Prometheus,
            options,
            say,
        )? {
            stack.show("Prometheus", format!("http://{}", layout.address(monitor, Service::Prometheus)), monitor);
        }
        Ok(stack)
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
        options: &StackOptions,
        say: &dyn Fn(&str),
    ) -> anyhow::Result<bool> {
        match self.start_server(name, spec, host, service, options, say) {
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
        options: &StackOptions,
        say: &dyn Fn(&str),
    ) -> Result<(), ServerError> {
        let address = self.layout.address(host, service);
        say(&format!("starting {name} on {} ({address})", host.name));
        let dir = options.work_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|source| ServerError::Io { doing: "creating a directory", source })?;
        let site = Site {
            address,
            placement: self.layout.placement(host),
            dir,
            log: options.log_dir.join(format!("{name}.log")),
        };
        let started = std::time::Instant::now();
        let server = ServerProcess::start_at(spec, &site)?;
        say(&format!("  {name} ready ({:.1} s)", started.elapsed().as_secs_f64()));
        self.servers.push((name.to_string(), server));
        Ok(())
    }

    /// Whether a component is running.
    pub fn has(&self, name: &str) -> bool {
        self.servers.iter().any(|(each, _)| each == name)
    }

    /// The first component found to have exited on its own: (name, status).
    pub fn exited(&mut self) -> Option<(String, String)> {
        self.servers
            .iter_mut()
            .find_map(|(name, server)| server.exited().map(|status| (name.clone(), status.to_string())))
    }

    /// Stops everything (newest first), copying PostgreSQL's log beside the others.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        while let Some((_, server)) = self.servers.pop() {
            drop(server);
        }
        if let Some(postgres) = self.postgres.take() {
            if let Some(log) = postgres.log_path() {
                let _ = std::fs::copy(log, self.log_dir.join("postgresql.log"));
            }
            drop(postgres);
        }
        self.network.take();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The storage engine device-api's `/ready` reports.
fn storage_engine(address: SocketAddr) -> Option<String> {
    let body = server_process::http_get_body(address, "/ready")?;
    let ready: serde_json::Value = serde_json::from_str(&body).ok()?;
    ready["engine"].as_str().map(str::to_string)
}

/// One of the workspace's programs, from `--bin-dir`.
fn our_program(options: &StackOptions, program: &str, args: Vec<String>, ready_path: &'static str) -> ServerSpec {
    let path = options.bin_dir.join(program);
    let mut spec =
        ServerSpec::new(&path.display().to_string(), "(build the workspace: cargo build --release)", &[], ready_path);
    spec.args = args;
    spec
}

/// prometheus.yml: every scrape job of the topology at the layout's addresses, the
/// rule files of `monitoring/prometheus/rules`.
pub fn prometheus_config(topology: &Topology, layout: &Layout, monitoring_dir: &Path) -> anyhow::Result<String> {
    let rules_dir = monitoring_dir.join("prometheus/rules");
    let mut rule_files: Vec<PathBuf> = std::fs::read_dir(&rules_dir)
        .with_context(|| format!("reading the rule files in {}", rules_dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    rule_files.sort();
    let interval = humantime::format_duration(topology.scrape_interval());
    let mut config =
        format!("global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nrule_files:\n");
    for file in rule_files {
        let file = file.canonicalize().unwrap_or(file);
        config.push_str(&format!("  - {}\n", file.display()));
    }
    config.push_str("scrape_configs:\n");
    for (job, targets) in topology.scrape_jobs(|host, service| layout.address(host, service)) {
        // The Pushgateway's metrics carry the pushing job's labels; keep them.
        let honor = if job == "pushgateway" { "    honor_labels: true\n" } else { "" };
        let targets: Vec<String> = targets.iter().map(|target| format!("'{target}'")).collect();
        config.push_str(&format!(
            "  - job_name: {job}\n{honor}    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ));
    }
    Ok(config)
}
