//! Stopping on a signal: every program stops the same way on SIGINT (Ctrl-C) and
//! SIGTERM (what systemd and the lab send), so each waits on this.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed by this call,
/// not when the future is first polled: a signal that arrives in between (while a
/// program is still starting its children, say) is caught instead of taking the
/// default action, which would kill the process and orphan them.
///
/// Call it inside a tokio runtime (it registers with the runtime's signal driver).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_before_the_first_poll_is_not_lost() {
        let stopped = shutdown_signal();
        // Raised before anything awaits the future: with handlers installed on the
        // first poll, this SIGTERM would end the test process instead.
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), stopped).await.expect("the signal was seen");
    }
}
