//! Stopping: the first SIGINT or SIGTERM cancels the run's token (the current step
//! ends, the report is written and marked interrupted); a second signal, or the grace
//! period passing after the first, exits the process at once with the interrupted
//! code. The grace timer runs on a plain thread, so a busy or stuck runtime cannot
//! hold it up.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::exit;

/// Installs the signal handling; the token fires on the first signal.
pub fn on_signals(grace: Duration) -> CancellationToken {
    let stop = CancellationToken::new();
    let first = stop.clone();
    // Installed here, not in the task: a signal before its first poll is caught too.
    let first_signal = loadlab_telemetry::shutdown_signal();
    tokio::spawn(async move {
        first_signal.await;
        eprintln!(
            "loadgen: stopping: the current step ends and the report is marked interrupted \
             (a second signal, or {} s, exits at once)",
            grace.as_secs_f64()
        );
        first.cancel();
        std::thread::spawn(move || {
            std::thread::sleep(grace);
            eprintln!("loadgen: the grace period is over; exiting without waiting");
            std::process::exit(i32::from(exit::INTERRUPTED));
        });
        loadlab_telemetry::shutdown_signal().await;
        eprintln!("loadgen: second signal; exiting at once");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    stop
}
