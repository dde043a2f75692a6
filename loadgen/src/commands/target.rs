//! `loadgen target`: answers every request 200 "ok".

use crate::cli::TargetArgs;
use crate::exit;

pub async fn target(args: TargetArgs) -> u8 {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("loadgen: --listen {}: {error}", args.listen);
            return exit::USAGE;
        }
    };
    let app = axum::Router::new().fallback(|| async { "ok" });
    let shutdown = loadlab_telemetry::shutdown_signal();
    match axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        Ok(()) => exit::HELD,
        Err(error) => {
            eprintln!("loadgen: target stopped: {error}");
            exit::INTERRUPTED
        }
    }
}
