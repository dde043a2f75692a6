//! `loadgen agent`: serve a controller until SIGINT/SIGTERM.

use crate::cli::AgentArgs;
use crate::exit;

pub async fn agent(args: AgentArgs) -> u8 {
    loadlab_telemetry::init_logging(args.log_format);
    let token = match crate::wire::read_token(&args.token_file) {
        Ok(token) => token,
        Err(error) => {
            eprintln!("loadgen: error: --token-file {error}");
            return exit::USAGE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("loadgen: error: --listen {}: {error}", args.listen);
            return exit::USAGE;
        }
    };
    if let Err(error) = crate::run::serve_metrics(args.metrics_listen, tokio_util::sync::CancellationToken::new()).await
    {
        eprintln!("loadgen: error: {error}");
        return exit::USAGE;
    }
    eprintln!("loadgen: agent listening on {} for a controller", args.listen);
    let config = crate::agent::AgentConfig { token, source_addresses: args.source_addresses };
    match crate::agent::serve(listener, config, loadlab_telemetry::shutdown_signal()).await {
        Ok(()) => exit::HELD,
        Err(error) => {
            eprintln!("loadgen: agent stopped: {error}");
            exit::INTERRUPTED
        }
    }
}
