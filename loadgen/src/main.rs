//! The `loadgen` binary: parse options, run, print the summary, exit with the
//! verdict's code.

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::Cli;
use loadgen::run::{EXIT_ABORTED, execute};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (common, profile) = cli.command.into_plan();
    loadlab_telemetry::init_logging(common.log_format);
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("loadgen: stopping; the report will be marked interrupted");
        on_signal.cancel();
    });
    match execute(&common, profile, stop, true).await {
        Ok((report, code)) => {
            print!("{}", loadgen::output::terminal::summary(&report));
            ExitCode::from(code)
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(EXIT_ABORTED)
        }
    }
}
