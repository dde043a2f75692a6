//! The `loadlab` binary: runs the lab's parts on this machine.

use clap::{Parser, Subcommand};

/// loadlab: a reproducible load-testing lab on one machine.
#[derive(Parser, Debug)]
#[command(name = "loadlab", version)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Start a private PostgreSQL and device-api, print their URLs, and keep them
    /// running until Ctrl-C; then stop and remove everything.
    Up(loadlab::up::UpOptions),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    loadlab_telemetry::init_logging(loadlab_telemetry::LogFormat::Human);
    match cli.command {
        Commands::Up(options) => loadlab::up::up(options).await,
    }
}
