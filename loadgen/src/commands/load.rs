//! `loadgen run` and `loadgen breakpoint`.

use crate::exit;
use crate::plan::Plan;

/// Runs `plan`, prints the summary table, returns the exit code.
pub async fn load(plan: Plan) -> u8 {
    loadlab_telemetry::init_logging(plan.common.log_format);
    let stop = crate::stop::on_signals(plan.common.grace);
    // On a worker thread, not the main one: the attack loop files every answer, and
    // keeping it beside the requests avoids a cross-thread wake-up per request.
    let run = tokio::spawn(async move { crate::run::execute(&plan, stop, true).await });
    match run.await {
        Ok(Ok((report, code))) => {
            print!("{}", crate::output::terminal::summary(&report));
            code
        }
        Ok(Err(error)) => {
            eprintln!("loadgen: error: {error}");
            error.exit_code()
        }
        Err(panic) => {
            eprintln!("loadgen: the run failed: {panic}");
            exit::INTERRUPTED
        }
    }
}
