//! From the command line to a plan: the options every run shares and the load
//! profile, after the checks that span several options (each option alone was
//! checked by its parser). A plan that passes here can run: its search ends, its
//! routines have devices, its TLS options fit its target.

use crate::breakpoint::{AnalysisSource, BreakpointPlan, Growth, MAX_GROWTH_STEPS};
use crate::cli::{BreakpointArgs, Command, CommonArgs, RunArgs, ScenarioKind};
use crate::http::{Security, Target};
use crate::profile::Profile;
use crate::schedule::RatePiece;
use crate::slo::Slo;

/// A load run, ready to go.
#[derive(Debug)]
pub struct Plan {
    pub common: CommonArgs,
    pub profile: Profile,
}

impl Command {
    /// The plan of `run` or `breakpoint` (`None` for the other commands); the error
    /// is one line naming the options at fault.
    pub fn into_plan(self) -> Result<Option<Plan>, String> {
        let plan = match self {
            Command::Run(args) => run_plan(args)?,
            Command::Breakpoint(args) => breakpoint_plan(args)?,
            Command::Chat(_) | Command::Report(_) | Command::Export(_) | Command::Target(_) => return Ok(None),
        };
        check_common(&plan.common)?;
        Ok(Some(plan))
    }
}

fn check_common(common: &CommonArgs) -> Result<(), String> {
    let target = Target::parse(&common.target).map_err(|error| format!("--target: {error}"))?;
    if target.security == Security::Plain && (common.ca.is_some() || common.insecure) {
        let option = if common.insecure { "--insecure" } else { "--ca" };
        return Err(format!("{option} applies to https:// targets; --target is {}", common.target));
    }
    if common.scenario != ScenarioKind::Http
        && (!common.headers.is_empty() || !common.body.is_empty() || common.method != hyper::Method::GET)
    {
        return Err("--method, --header and --body apply to --scenario http".into());
    }
    Ok(())
}

fn run_plan(args: RunArgs) -> Result<Plan, String> {
    let profile = if let Some(command_every) = args.command_every {
        if args.common.scenario != ScenarioKind::Devices {
            return Err("--command-every/--measurement-every (routines) need --scenario devices".into());
        }
        Profile::Routines {
            command_every,
            measurement_every: args.measurement_every.ok_or("--command-every needs --measurement-every")?,
            jitter: args.jitter_percent / 100.0,
            duration: args.duration,
        }
    } else if let Some(stages) = args.stages {
        let mut from = args.stages_from;
        let pieces = stages
            .0
            .into_iter()
            .map(|(duration, to)| {
                let piece = RatePiece { from, to, duration };
                from = to;
                piece
            })
            .collect();
        Profile::Stages { stages: pieces }
    } else if let Some(users) = args.users {
        Profile::Closed { users, think_min: args.think_time.0, think_max: args.think_time.1, duration: args.duration }
    } else {
        Profile::Constant {
            rate: args.rate.ok_or("give --rate, --stages, --users or --command-every")?,
            duration: args.duration,
        }
    };
    Ok(Plan { common: args.common, profile })
}

fn breakpoint_plan(args: BreakpointArgs) -> Result<Plan, String> {
    if args.max_rate < args.start_rate {
        return Err(format!("--max-rate {} is below --start-rate {}", args.max_rate, args.start_rate));
    }
    let growth = args.step_increment.map_or(Growth::Factor(args.step_factor), Growth::Increment);
    let plan = BreakpointPlan {
        analysis: args.prometheus.map(|prometheus| AnalysisSource { prometheus, signals: args.bottlenecks }),
        start_rate: args.start_rate,
        growth,
        step_duration: args.step_duration,
        max_rate: args.max_rate,
        refinements: args.refine,
        resolution: args.resolution,
        slo: Slo {
            latency_quantile: args.slo_quantile,
            latency_limit: args.slo_latency,
            max_error_ratio: args.slo_errors_percent / 100.0,
            min_achieved_ratio: args.slo_achieved_percent / 100.0,
            max_dropped_ratio: args.slo_dropped_percent / 100.0,
        },
    };
    if plan.growth_steps() > MAX_GROWTH_STEPS {
        let how = match growth {
            Growth::Factor(factor) => format!("--step-factor {factor}"),
            Growth::Increment(increment) => format!("--step-increment {increment}"),
        };
        return Err(format!(
            "{how} from --start-rate {} does not reach --max-rate {} within {MAX_GROWTH_STEPS} steps: \
             grow faster or lower --max-rate",
            args.start_rate, args.max_rate
        ));
    }
    Ok(Plan { common: args.common, profile: Profile::Breakpoint(plan) })
}
