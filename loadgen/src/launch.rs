//! What a controller (loadlab) hands loadgen: the options of `loadgen breakpoint`
//! that the lab sets (where the target, the metrics, the results, the monitoring and
//! the agents are) beside the plan's own, and the `loadgen export` that follows a run. The lab
//! builds its argument lists from these types, never by hand, and refuses a plan
//! that sets one of [`LAB_SET`], so no flag name is repeated outside loadgen; the
//! tests below parse what they build with loadgen's own parser.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The `breakpoint` options a [`Breakpoint`] sets, which a plan may not: one per
/// field, in the order of [`Breakpoint::lab_set`].
pub const LAB_SET: [&str; 9] =
    ["target", "listen", "out", "run-id", "bottlenecks", "prometheus", "pushgateway", "agents", "agent-token-file"];

/// A breakpoint search as the lab launches it.
#[derive(Clone, Debug, PartialEq)]
pub struct Breakpoint {
    /// Base URL of the system under test.
    pub target: String,
    /// Where loadgen serves `/metrics` (the address Prometheus scrapes); none, nowhere.
    pub listen: Option<SocketAddr>,
    /// The run's directory: summary.json, seconds.csv, report.html; none, no files.
    pub out: Option<PathBuf>,
    pub run_id: String,
    /// The saturation signals (`monitoring/bottlenecks.toml`); none, loadgen's default.
    pub bottlenecks: Option<PathBuf>,
    /// Prometheus, for the bottleneck analysis; none, no analysis.
    pub prometheus: Option<String>,
    /// Pushgateway for the results; none, nothing pushed.
    pub pushgateway: Option<String>,
    /// The `loadgen agent`s that send the load (`http://host:port`), driven by this
    /// process as their controller; none, the load comes from this process.
    pub agents: Vec<String>,
    /// The agents' shared token (a file); needed with `agents`.
    pub agent_token_file: Option<PathBuf>,
    /// The plan's own `breakpoint` options (`--start-rate 200 …`), none of [`LAB_SET`].
    pub plan: Vec<String>,
}

impl Breakpoint {
    /// `breakpoint --target … --listen … <the plan's options>`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["breakpoint".to_string()];
        for (name, value) in LAB_SET.iter().zip(self.lab_set()) {
            if let Some(value) = value {
                args.extend([format!("--{name}"), value]);
            }
        }
        args.extend(self.plan.iter().cloned());
        args
    }

    /// The value of each of [`LAB_SET`]; a new field fails to compile here until it
    /// is given its option.
    fn lab_set(&self) -> [Option<String>; LAB_SET.len()] {
        let Self {
            target,
            listen,
            out,
            run_id,
            bottlenecks,
            prometheus,
            pushgateway,
            agents,
            agent_token_file,
            plan: _,
        } = self;
        [
            Some(target.clone()),
            Some(listen.map_or_else(|| "none".to_string(), |listen| listen.to_string())),
            out.as_ref().map(|out| out.display().to_string()),
            Some(run_id.clone()),
            bottlenecks.as_ref().map(|bottlenecks| bottlenecks.display().to_string()),
            prometheus.clone(),
            pushgateway.clone(),
            (!agents.is_empty()).then(|| agents.join(",")),
            agent_token_file.as_ref().map(|file| file.display().to_string()),
        ]
    }
}

/// `loadgen export` of a finished run's window.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub prometheus: String,
    /// The run's summary.json (its window is exported).
    pub summary: PathBuf,
    pub bottlenecks: PathBuf,
    /// A rule file whose recording rules are exported.
    pub rules: PathBuf,
    /// The CSV file to write.
    pub out: PathBuf,
}

impl Export {
    pub fn args(&self) -> Vec<String> {
        let Self { prometheus, summary, bottlenecks, rules, out } = self;
        let path = |path: &PathBuf| path.display().to_string();
        [
            "export",
            "--prometheus",
            prometheus,
            "--summary",
            &path(summary),
            "--bottlenecks",
            &path(bottlenecks),
            "--rules",
            &path(rules),
            "--out",
            &path(out),
        ]
        .map(str::to_string)
        .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::{Cli, Command};

    fn breakpoint() -> Breakpoint {
        Breakpoint {
            target: "http://127.0.56.102:8080".into(),
            listen: Some("127.0.56.101:8089".parse().unwrap()),
            out: Some("/tmp/results/run 1".into()),
            run_id: "20250101T000000Z".into(),
            bottlenecks: Some("/repo/monitoring/bottlenecks.toml".into()),
            prometheus: Some("http://127.0.56.104:9090".into()),
            pushgateway: Some("http://127.0.56.104:9091".into()),
            agents: vec!["http://127.0.56.101:8091".into(), "http://127.0.56.105:8091".into()],
            agent_token_file: Some("/tmp/lab/agent.token".into()),
            plan: ["--start-rate", "200", "--slo-quantile", "0.99"].map(str::to_string).to_vec(),
        }
    }

    fn parse(args: Vec<String>) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadgen".to_string()).chain(args))
    }

    #[test]
    fn loadgen_reads_every_field_of_a_breakpoint_launch() {
        let launch = breakpoint();
        let Command::Breakpoint(parsed) = parse(launch.args()).unwrap().command else { panic!("not breakpoint") };
        assert_eq!(parsed.common.target, launch.target);
        assert_eq!(parsed.common.listen, launch.listen);
        assert_eq!(parsed.common.out, launch.out);
        assert_eq!(parsed.common.run_id, Some(launch.run_id));
        assert_eq!(Some(parsed.bottlenecks), launch.bottlenecks);
        assert_eq!(parsed.prometheus, launch.prometheus);
        assert_eq!(parsed.common.pushgateway, launch.pushgateway);
        assert_eq!(parsed.agents.agents, launch.agents);
        assert_eq!(parsed.agents.agent_token_file, launch.agent_token_file);
        assert_eq!((parsed.start_rate, parsed.slo_quantile), (200.0, 0.99), "the plan's options follow");

        let without = Breakpoint {
            prometheus: None,
            pushgateway: None,
            listen: None,
            out: None,
            agents: Vec::new(),
            agent_token_file: None,
            ..breakpoint()
        };
        let Command::Breakpoint(parsed) = parse(without.args()).unwrap().command else { panic!("not breakpoint") };
        assert_eq!((parsed.prometheus, parsed.common.pushgateway), (None, None));
        assert_eq!((parsed.common.listen, parsed.common.out), (None, None));
        assert_eq!((parsed.agents.agents, parsed.agents.agent_token_file), (Vec::<String>::new(), None));
    }

    #[test]
    fn every_lab_set_option_is_a_breakpoint_option_a_plan_cannot_repeat() {
        let cli = Cli::command();
        let breakpoint_command = cli.find_subcommand("breakpoint").unwrap();
        let options: Vec<&str> = breakpoint_command.get_arguments().filter_map(|arg| arg.get_long()).collect();
        for name in LAB_SET {
            assert!(options.contains(&name), "--{name} is not an option of loadgen breakpoint");
            let mut repeated = breakpoint();
            repeated.plan.extend([format!("--{name}"), "http://127.0.0.1:1".into()]);
            let error = parse(repeated.args()).expect_err(name);
            assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict, "--{name} twice: {error}");
        }
    }

    #[test]
    fn loadgen_reads_every_field_of_an_export() {
        let export = Export {
            prometheus: "http://127.0.56.104:9090".into(),
            summary: "/tmp/run/summary.json".into(),
            bottlenecks: "/repo/monitoring/bottlenecks.toml".into(),
            rules: "/repo/monitoring/prometheus/rules/red.yaml".into(),
            out: "/tmp/run/metrics.csv".into(),
        };
        let Command::Export(parsed) = parse(export.args()).unwrap().command else { panic!("not export") };
        assert_eq!(parsed.prometheus, export.prometheus);
        assert_eq!(parsed.summary, Some(export.summary));
        assert_eq!(parsed.bottlenecks, export.bottlenecks);
        assert_eq!(parsed.rules, vec![export.rules]);
        assert_eq!(parsed.out, export.out);
    }
}
