//! The `device-api` binary: parse options, set up logs, bind, serve until SIGINT or
//! SIGTERM, drain, exit.

use anyhow::Context;
use clap::Parser;
use device_api::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    loadlab_telemetry::init_logging(config.log_format);
    if config.check_config {
        println!("{config:#?}");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen / DEVICE_API_LISTEN)", config.listen))?;
    device_api::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; the handlers are in place once this
/// returns, before the server starts.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let signal = loadlab_telemetry::shutdown_signal();
    async move {
        signal.await;
        tracing::info!("shutdown requested; draining");
    }
}
