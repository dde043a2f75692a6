//! `loadgen report DIR… --out DIR`: merge segments' outputs.

use crate::cli::ReportArgs;
use crate::exit;
use crate::output::merge;

pub fn report(args: ReportArgs) -> u8 {
    let parts: Result<Vec<_>, _> = args
        .dirs
        .iter()
        .map(|dir| merge::read(dir).map(|(report, seconds)| (dir.display().to_string(), report, seconds)))
        .collect();
    let merged = match parts.and_then(merge::merge) {
        Ok(merged) => merged,
        Err(error) => {
            eprintln!("loadgen: {error}");
            return exit::USAGE;
        }
    };
    if let Err(error) = crate::run::prepare_out(&args.out) {
        eprintln!("loadgen: {error}");
        return exit::USAGE;
    }
    let (report, seconds) = merged;
    match crate::output::report::write(&args.out, &report, &seconds) {
        Ok(()) => {
            print!("{}", crate::output::terminal::summary(&report));
            exit::HELD
        }
        Err(error) => {
            eprintln!("loadgen: writing {}: {error}", args.out.display());
            exit::INTERRUPTED
        }
    }
}
