//! `loadlab up`: a private PostgreSQL and device-api on this machine, kept running
//! until Ctrl-C, with every URL printed. Components run as child processes of the
//! same binaries a deployment uses; everything is stopped and removed on the way out,
//! including when a component fails to start.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::postgres::PostgresInstance;
use crate::server_process::http_get_status;

/// Options of `loadlab up`.
#[derive(Clone, Debug, clap::Args)]
pub struct UpOptions {
    /// Port for device-api on 127.0.0.1.
    #[arg(long, env = "LOADLAB_API_PORT", default_value_t = 8080)]
    pub api_port: u16,
    /// Use free ports instead of failing when a default port is taken.
    #[arg(long, env = "LOADLAB_ANY_PORT")]
    pub any_port: bool,
    /// Directory holding the device-api binary (default: beside loadlab).
    #[arg(long, env = "LOADLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct Component {
    name: &'static str,
    child: Child,
}

impl Drop for Component {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("loadlab: {} did not stop within 10 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn up(options: UpOptions) -> anyhow::Result<()> {
    let bin_dir = match options.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?.parent().context("loadlab has no parent directory")?.to_path_buf(),
    };
    let device_api = bin_dir.join("device-api");
    if !device_api.is_file() {
        bail!("device-api not found at {} (build the workspace, or set --bin-dir)", device_api.display());
    }
    let api_port = choose_port(options.api_port, options.any_port, "device-api", "--api-port")?;

    eprintln!("loadlab: starting a private PostgreSQL");
    let postgres = PostgresInstance::start().context("starting the private PostgreSQL")?;
    postgres.create_database("device_api")?;
    eprintln!("loadlab: PostgreSQL ready on 127.0.0.1:{}", postgres.port());

    let api_address = SocketAddr::from((Ipv4Addr::LOCALHOST, api_port));
    let log_path = postgres.dir_path().context("PostgreSQL directory")?.join("device-api.log");
    let log = std::fs::File::create(&log_path)?;
    eprintln!("loadlab: starting device-api on {api_address}");
    let mut api = Component {
        name: "device-api",
        child: Command::new(&device_api)
            .args(["--listen", &api_address.to_string(), "--database-url", &postgres.url("device_api")])
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", device_api.display()))?,
    };
    wait_until_ready(&mut api, api_address, "/ready", Duration::from_secs(90))
        .await
        .with_context(|| format!("device-api did not become ready (log: {})", log_path.display()))?;

    println!();
    println!("device-api   http://{api_address}   (OpenAPI: /openapi.json, metrics: /metrics)");
    println!("PostgreSQL   {}", postgres.url("device_api"));
    println!("logs         {}", log_path.display());
    println!();
    println!(
        "Try:  curl -s -XPOST -H 'content-type: application/json' -d '{{\"username\":\"me\"}}' http://{api_address}/login"
    );
    println!("Press Ctrl-C to stop and remove everything.");

    let mut check = tokio::time::interval(Duration::from_secs(1));
    let signal = loadlab_telemetry::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = check.tick() => {
                if let Some(status) = api.child.try_wait()? {
                    bail!("device-api exited unexpectedly ({status}); log: {}", log_path.display());
                }
            }
        }
    }
    eprintln!("loadlab: stopping");
    drop(api);
    drop(postgres);
    Ok(())
}

/// `wanted`, when free; else a free port with `any_port`, or an error that says so.
fn choose_port(wanted: u16, any_port: bool, component: &str, flag: &str) -> anyhow::Result<u16> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, wanted)) {
        Ok(_) => Ok(wanted),
        Err(_) if any_port => Ok(crate::ports::free_loopback_port()?),
        Err(error) => bail!(
            "port {wanted} for {component} is taken ({error}); stop what holds it (`ss -ltnp 'sport = :{wanted}'`), \
             choose another with {flag}, or pass --any-port"
        ),
    }
}

/// Polls `GET path` until it answers 200, the child exits, or `limit` passes.
async fn wait_until_ready(
    component: &mut Component,
    address: SocketAddr,
    path: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = component.child.try_wait()? {
            bail!("{} exited during start-up ({status})", component.name);
        }
        let (probe_path, probe_address) = (path.to_string(), address);
        let status = tokio::task::spawn_blocking(move || http_get_status(probe_address, &probe_path)).await?;
        if status == Some(200) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{} not ready after {limit:?}", component.name)
}
