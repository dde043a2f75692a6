//! The `loadgen` binary: parse options, run, print the summary, exit with the
//! verdict's code.

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Command};
use loadgen::run::{EXIT_ABORTED, execute};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Target { listen } => return serve_target(listen).await,
        Command::Report { dirs, out } => return merge_reports(&dirs, &out),
        Command::Chat(args) => return run_chat(args).await,
        Command::Export(args) => return export(args).await,
        _ => {}
    }
    let (common, profile) = cli.command.into_plan().expect("every other command runs load");
    loadlab_telemetry::init_logging(common.log_format);
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        loadlab_telemetry::shutdown_signal().await;
        eprintln!("loadgen: stopping; the report will be marked interrupted");
        on_signal.cancel();
    });
    // On a worker thread, not the main one: the engine loop collects every answer,
    // and keeping it beside the requests avoids a cross-thread wake-up per request.
    let run = tokio::spawn(async move { execute(&common, profile, stop, true).await });
    let outcome = run.await.expect("the run task does not panic");
    match outcome {
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

/// `loadgen export`.
async fn export(args: loadgen::cli::ExportArgs) -> ExitCode {
    use loadgen::export::{ExportPlan, default_queries, export, run_window};
    let window = match &args.summary {
        Some(path) => match run_window(path) {
            Ok(window) => Some(window),
            Err(error) => {
                eprintln!("loadgen: {error}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let (Some(from), Some(to)) = (args.from.or(window.map(|w| w.0)), args.to.or(window.map(|w| w.1))) else {
        eprintln!("loadgen: give --summary, or both --from and --to");
        return ExitCode::from(2);
    };
    let queries = if args.queries.is_empty() {
        match default_queries(&args.bottlenecks, &args.rules, args.step * 4) {
            Ok(queries) => queries,
            Err(error) => {
                eprintln!("loadgen: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        args.queries.iter().map(|query| (query.clone(), query.clone())).collect()
    };
    let plan = ExportPlan { prometheus: args.prometheus.clone(), from, to, step: args.step, queries };
    match export(&plan, &args.out).await {
        Ok(rows) => {
            eprintln!("loadgen: wrote {rows} samples of {} queries to {}", plan.queries.len(), args.out.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(EXIT_ABORTED)
        }
    }
}

/// `loadgen target`: answers every request 200 "ok".
async fn serve_target(listen: std::net::SocketAddr) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("loadgen: cannot listen on {listen}: {error}");
            return ExitCode::from(EXIT_ABORTED);
        }
    };
    let app = axum::Router::new().fallback(|| async { "ok" });
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: target stopped: {error}");
            ExitCode::from(EXIT_ABORTED)
        }
    }
}

/// `loadgen report DIR... --out DIR`.
fn merge_reports(dirs: &[std::path::PathBuf], out: &std::path::Path) -> ExitCode {
    use loadgen::output::merge;
    let parts: Result<Vec<_>, _> = dirs
        .iter()
        .map(|dir| merge::read(dir).map(|(report, seconds)| (dir.display().to_string(), report, seconds)))
        .collect();
    let merged = parts.and_then(merge::merge);
    match merged {
        Ok((report, seconds)) => match loadgen::output::report::write(out, &report, &seconds) {
            Ok(()) => {
                print!("{}", loadgen::output::terminal::summary(&report));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("loadgen: writing {}: {error}", out.display());
                ExitCode::from(EXIT_ABORTED)
            }
        },
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(EXIT_ABORTED)
        }
    }
}

/// `loadgen chat`.
async fn run_chat(args: loadgen::cli::ChatArgs) -> ExitCode {
    use loadgen::chat::{ChatPlan, run};
    loadlab_telemetry::init_logging(loadlab_telemetry::LogFormat::Human);
    let trust = grpc_stress::client::TrustOptions {
        ca: args.ca.clone(),
        system_roots: false,
        no_server_validation: args.no_server_validation,
    };
    let target = match grpc_stress::client::Target::new(&args.target, &trust) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("loadgen: --target: {error}");
            return ExitCode::from(EXIT_ABORTED);
        }
    };
    let plan = ChatPlan {
        conversations: args.conversations,
        members: args.members as usize,
        duration: args.duration,
        send_interval: args.send_interval,
        connections: args.connections,
    };
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        loadlab_telemetry::shutdown_signal().await;
        on_signal.cancel();
    });
    let report = match run(&target, &plan, &stop).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("loadgen: {error}");
            return ExitCode::from(EXIT_ABORTED);
        }
    };
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    println!("{json}");
    if let Some(dir) = &args.out
        && let Err(error) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(dir.join("chat.json"), &json))
    {
        eprintln!("loadgen: writing {}: {error}", dir.display());
    }
    if report.interrupted || report.sent == 0 {
        ExitCode::from(EXIT_ABORTED)
    } else if report.lost > 0 || report.duplicated > 0 {
        ExitCode::from(loadgen::run::EXIT_THRESHOLD)
    } else {
        ExitCode::SUCCESS
    }
}
