//! From the command line to a plan: the options every run shares and the load
//! profile, after the checks that span several options (each option alone was
//! checked by its parser). A plan that passes here can run: its search ends, its
//! routines have devices, its TLS options fit its target.

use crate::breakpoint::{AnalysisSource, BreakpointPlan, Growth, MAX_GROWTH_STEPS, Over};
use crate::cli::{AgentsArgs, BreakpointArgs, Command, CommonArgs, RunArgs, ScenarioKind};
use crate::controller::ControllerOptions;
use crate::http::{Security, Target};
use crate::profile::Profile;
use crate::schedule::RatePiece;
use crate::schedule::Segment;
use crate::slo::Slo;

/// A load run, ready to go.
#[derive(Debug)]
pub struct Plan {
    pub common: CommonArgs,
    pub profile: Profile,
    /// Agents to drive instead of sending requests from here.
    pub agents: Option<AgentsPlan>,
}

/// A run through agents: who, how, and the scenario's options for them.
#[derive(Debug)]
pub struct AgentsPlan {
    pub controller: ControllerOptions,
    /// The scenario's options, as the agents' own parser reads them.
    pub args: Vec<String>,
}

impl Command {
    /// The plan of `run` or `breakpoint` (`None` for the other commands); the error
    /// is one line naming the options at fault.
    pub fn into_plan(self) -> Result<Option<Plan>, String> {
        let (mut plan, agents) = match self {
            Command::Run(args) => {
                let agents = args.agents.clone();
                (run_plan(args)?, agents)
            }
            Command::Breakpoint(args) => {
                let agents = args.agents.clone();
                (breakpoint_plan(args)?, agents)
            }
            Command::Chat(_) | Command::Report(_) | Command::Export(_) | Command::Target(_) | Command::Agent(_) => {
                return Ok(None);
            }
        };
        check_common(&plan.common)?;
        plan.agents = agents_plan(agents, &plan)?;
        Ok(Some(plan))
    }
}

/// The checks across the common options (each alone was checked by its parser).
pub fn check_common(common: &CommonArgs) -> Result<(), String> {
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
    Ok(Plan { common: args.common, profile, agents: None })
}

fn breakpoint_plan(mut args: BreakpointArgs) -> Result<Plan, String> {
    let over = match args.over {
        crate::cli::Over::Rate => {
            if args.max_rate < args.start_rate {
                return Err(format!("--max-rate {} is below --start-rate {}", args.max_rate, args.start_rate));
            }
            Over::Rate
        }
        crate::cli::Over::Devices => {
            if args.common.scenario != ScenarioKind::Devices {
                return Err("--over devices needs --scenario devices".into());
            }
            if args.max_devices < args.start_devices {
                return Err(format!(
                    "--max-devices {} is below --start-devices {}",
                    args.max_devices, args.start_devices
                ));
            }
            let longest = args.command_every.max(args.measurement_every);
            if args.step_duration < longest {
                return Err(format!(
                    "--step-duration {} is shorter than the devices' longest period ({}): every device must act \
                     at least once in a step",
                    humantime::format_duration(args.step_duration),
                    humantime::format_duration(longest)
                ));
            }
            // The search counts devices; the first ones log in before the first step.
            args.start_rate = f64::from(args.start_devices);
            args.max_rate = f64::from(args.max_devices);
            args.common.devices = args.start_devices;
            Over::Devices {
                command_every: args.command_every,
                measurement_every: args.measurement_every,
                jitter: args.jitter_percent / 100.0,
                login_rate: Some(args.login_rate),
            }
        }
    };
    let growth = args.step_increment.map_or(Growth::Factor(args.step_factor), Growth::Increment);
    let plan = BreakpointPlan {
        over,
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
    Ok(Plan { common: args.common, profile: Profile::Breakpoint(plan), agents: None })
}

/// With --agents: the token read, the load model an open one, the scenario's words.
fn agents_plan(args: AgentsArgs, plan: &Plan) -> Result<Option<AgentsPlan>, String> {
    if args.agents.is_empty() {
        return Ok(None);
    }
    let path = args.agent_token_file.ok_or("--agents needs --agent-token-file (the agents' shared token)")?;
    let token = crate::wire::read_token(&path).map_err(|error| format!("--agent-token-file {error}"))?;
    if matches!(plan.profile, Profile::Closed { .. } | Profile::Routines { .. }) {
        return Err("--agents drives --rate, --stages and breakpoint searches (not --users or run's routines)".into());
    }
    if plan.common.segment != Segment::WHOLE {
        return Err("--agents splits the schedule itself: leave --segment out".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = args.agents.iter().find(|agent| !seen.insert(agent.as_str())) {
        return Err(format!("--agents names {twice} twice"));
    }
    let controller = ControllerOptions {
        agents: args.agents,
        token,
        heartbeat: args.heartbeat,
        on_loss: args.on_agent_loss,
        ready_timeout: args.ready_timeout,
        grace: plan.common.grace,
    };
    Ok(Some(AgentsPlan { controller, args: plan.common.scenario_args() }))
}
