//! The `grpc-stress` binary: `server`, `client`, `driver` and `certs`, one binary so
//! the driver can start every component as a process of itself.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use grpc_stress::{certs, client, driver, heap, server};
use tokio_util::sync::CancellationToken;

/// Counts live heap bytes for `--report-heap` / `--max-heap` (see `heap.rs`).
#[global_allocator]
static ALLOCATOR: heap::CountingAllocator = heap::CountingAllocator;

/// gRPC stress service: a server, a client, and a driver that runs many of both,
/// kills and restarts the unstable ones, and fails if memory runs away.
#[derive(Parser, Debug)]
#[command(
    name = "grpc-stress",
    version,
    after_help = "Exit codes: 0 success; 1 the run failed (a client call failed, the driver's verdict is \
                  FAILED or INTERRUPTED, the server could not serve); 2 invalid options."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Stress and Chat services (plus health and reflection).
    Server(server::ServerOptions),
    /// Call a server with one or more connection groups; print a summary.
    Client(client::ClientOptions),
    /// Run the full stress matrix: servers and clients as processes, chaos, memory
    /// ceilings, leak detection, charts. Exit 0 only when the run held.
    Driver(driver::DriverOptions),
    /// Write a throw-away CA and a server certificate for 127.0.0.1/localhost.
    Certs {
        /// Directory for ca.pem, server.pem and server.key (the key 0600; the
        /// directory created 0700 when missing).
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        // Clients are many and small: one thread each keeps their memory low.
        Command::Client(options) => match options.check() {
            Ok(()) => runtime(false).block_on(run_client(options)),
            Err(error) => return usage_error(&error),
        },
        Command::Server(options) => runtime(true).block_on(run_server(options)),
        Command::Driver(options) => runtime(true).block_on(async { driver::run(options, stop_on_signal()).await }),
        Command::Certs { out } => certs::generate(&out)
            .map(|files| {
                println!(
                    "{}\n{}\n{}",
                    files.ca_cert.display(),
                    files.server_cert.display(),
                    files.server_key.display()
                );
                ExitCode::SUCCESS
            })
            .map_err(anyhow::Error::from),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("grpc-stress: {error:#}");
        ExitCode::FAILURE
    })
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// An invalid combination of options clap cannot express: said like clap's own
/// errors, with its exit code.
fn usage_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}

/// Cancelled on SIGINT or SIGTERM (handlers installed before this returns: see
/// [`loadlab_telemetry::shutdown_signal`]).
fn stop_on_signal() -> CancellationToken {
    let signal = loadlab_telemetry::shutdown_signal();
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        signal.await;
        on_signal.cancel();
    });
    stop
}

async fn run_server(options: server::ServerOptions) -> anyhow::Result<ExitCode> {
    options.process.apply();
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", options.listen))?;
    let stop = stop_on_signal();
    server::run(options, listener, async move { stop.cancelled().await }).await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_client(options: client::ClientOptions) -> anyhow::Result<ExitCode> {
    options.process.apply();
    let summary = client::run(&options, stop_on_signal()).await?;
    if options.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(if summary.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
