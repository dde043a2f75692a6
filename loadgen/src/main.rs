//! The `loadgen` binary: parse the command line, run the subcommand, exit with its
//! code (see `loadgen --help` and `loadgen::exit`).

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Command};
use loadgen::{commands, exit};

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command;
    ExitCode::from(match command {
        Command::Chat(args) => commands::chat(args).await,
        Command::Report(args) => commands::report(args),
        Command::Export(args) => commands::export(args).await,
        Command::Target(args) => commands::target(args).await,
        Command::Agent(args) => commands::agent(args).await,
        load => match load.into_plan() {
            Ok(Some(plan)) => commands::load(plan).await,
            Ok(None) => exit::USAGE,
            Err(error) => {
                eprintln!("loadgen: error: {error}");
                exit::USAGE
            }
        },
    })
}
