//! `loadgen export`: Prometheus series over a run's window into one CSV.

use crate::cli::ExportArgs;
use crate::exit;
use crate::export::{ExportPlan, default_queries, export as write_csv, run_window};

pub async fn export(args: ExportArgs) -> u8 {
    let window = match args.summary.as_deref().map(run_window).transpose() {
        Ok(window) => window,
        Err(error) => {
            eprintln!("loadgen: {error}");
            return exit::USAGE;
        }
    };
    let (Some(from), Some(to)) = (args.from.or(window.map(|w| w.0)), args.to.or(window.map(|w| w.1))) else {
        eprintln!("loadgen: give --summary, or both --from and --to");
        return exit::USAGE;
    };
    let queries = if args.queries.is_empty() {
        match default_queries(&args.bottlenecks, &args.rules, args.step * 4) {
            Ok(queries) => queries,
            Err(error) => {
                eprintln!("loadgen: {error}");
                return exit::USAGE;
            }
        }
    } else {
        args.queries.iter().map(|query| (query.clone(), query.clone())).collect()
    };
    let plan = ExportPlan { prometheus: args.prometheus.clone(), from, to, step: args.step, queries };
    match write_csv(&plan, &args.out).await {
        Ok(rows) => {
            eprintln!("loadgen: wrote {rows} samples of {} queries to {}", plan.queries.len(), args.out.display());
            exit::HELD
        }
        Err(error @ crate::export::ExportError::Input(_)) => {
            eprintln!("loadgen: {error}");
            exit::USAGE
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            exit::INTERRUPTED
        }
    }
}
