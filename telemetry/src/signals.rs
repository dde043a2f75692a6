//! Stopping on a signal: every program stops the same way on SIGINT (Ctrl-C) and
//! SIGTERM (what systemd and the lab send), so each `main` waits on this.

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
