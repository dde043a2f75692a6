//! `loadgen target`: answers every request 200 "ok"; with `--workers` and
//! `--service-time`, a server of known capacity (each request holds one of the workers
//! for the service time; the others queue), for breaking points known in advance.

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
    let app = match (args.workers, args.service_time) {
        (Some(workers), Some(service_time)) => {
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(workers));
            axum::Router::new().fallback(move || {
                let slots = slots.clone();
                async move {
                    let _slot = slots.acquire().await.expect("the semaphore is never closed");
                    tokio::time::sleep(service_time).await;
                    "ok"
                }
            })
        }
        _ => axum::Router::new().fallback(|| async { "ok" }),
    };
    let shutdown = loadlab_telemetry::shutdown_signal();
    match axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        Ok(()) => exit::HELD,
        Err(error) => {
            eprintln!("loadgen: target stopped: {error}");
            exit::INTERRUPTED
        }
    }
}
