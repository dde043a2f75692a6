//! loadgen's command line: `run` (constant rate or stages) and `breakpoint`, sharing
//! the target, scenario and output options, mapped into one [`crate::run::Plan`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use grpc_stress::units::parse_duration_range as parse_range;

use crate::schedule::{RatePiece, Segment};
use crate::slo::Threshold;

/// loadlab's load generator: open-model arrivals on a deterministic schedule,
/// latencies measured from the due time, ramp until the SLO breaks.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Offer a constant rate (--rate), stages (--stages), or run looping users
    /// (--users, closed model), and report.
    Run(RunArgs),
    /// Step the rate up until a step breaks the SLO, refine by bisection, and report
    /// the breaking point.
    Breakpoint(BreakpointArgs),
    /// Chat delivery latency against grpc-stress's chat service: N conversations × K
    /// members, one sender each; counts lost, duplicated and out-of-order messages.
    /// Exit 99 when any message was lost or duplicated.
    Chat(ChatArgs),
    /// Merge the outputs (--out directories) of several segments of one plan into one
    /// report: counts add up, percentiles come from the merged histograms.
    Report {
        /// The segments' output directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged summary.json, seconds.csv and report.html.
        #[arg(long)]
        out: PathBuf,
    },
    /// Export Prometheus series over a run's window into one CSV (time,name,labels,value),
    /// so runs can be compared offline. Defaults: the window of --summary's run, every
    /// signal of --bottlenecks and every recording rule of --rules.
    Export(ExportArgs),
    /// Serve a trivial HTTP target (every request answered 200 "ok"), for measuring
    /// the generator itself against wrk or another tool.
    Target {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
}

/// `loadgen export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Prometheus base URL.
    #[arg(long, env = "LOADGEN_PROMETHEUS")]
    pub prometheus: String,
    /// A run's summary.json: its window is the default range.
    #[arg(long, required_unless_present_all = ["from", "to"])]
    pub summary: Option<PathBuf>,
    /// Start of the range: RFC 3339 or unix seconds (default: the run's start).
    #[arg(long, value_parser = crate::export::parse_time)]
    pub from: Option<f64>,
    /// End of the range (default: the end of the run's last step).
    #[arg(long, value_parser = crate::export::parse_time)]
    pub to: Option<f64>,
    /// Resolution of the series.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub step: Duration,
    /// A PromQL query to export instead of the defaults (repeatable).
    #[arg(long = "query")]
    pub queries: Vec<String>,
    /// The saturation signals (default queries).
    #[arg(long, default_value = "monitoring/bottlenecks.toml")]
    pub bottlenecks: PathBuf,
    /// Rule files whose recording rules are exported (default queries; repeatable).
    #[arg(long = "rules", default_value = "monitoring/prometheus/rules/red.yaml")]
    pub rules: Vec<PathBuf>,
    /// The CSV file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options every run takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Base URL of the system under test (device-api for `devices`; the full URL for `http`).
    #[arg(long, env = "LOADGEN_TARGET")]
    pub target: String,

    /// What each request does.
    #[arg(long, env = "LOADGEN_SCENARIO", value_enum, default_value = "devices")]
    pub scenario: ScenarioKind,

    /// devices: simulated devices, each logged in once before the run.
    #[arg(long, env = "LOADGEN_DEVICES", default_value_t = 100)]
    pub devices: usize,

    /// http: request method.
    #[arg(long, default_value = "GET")]
    pub method: String,

    /// http: a request header, `Name: value` (repeatable).
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// http: request body.
    #[arg(long, default_value = "")]
    pub body: String,

    /// grpc: which RPC each request makes.
    #[arg(long, value_enum, default_value = "unary")]
    pub grpc_kind: GrpcKind,

    /// grpc: messages per streaming call (N of grpc-stress's semantics).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub grpc_messages: u32,

    /// grpc: HTTP/2 connections shared by the calls.
    #[arg(long, default_value_t = 4)]
    pub grpc_connections: usize,

    /// grpc: replace a connection after this many calls (default: never).
    #[arg(long)]
    pub grpc_calls_per_connection: Option<u64>,

    /// grpc over TLS: trust this CA (PEM).
    #[arg(long)]
    pub grpc_ca: Option<PathBuf>,

    /// grpc over TLS: accept any server certificate (testing only).
    #[arg(long)]
    pub grpc_no_server_validation: bool,

    /// Speak HTTP/2 without TLS (h2c, prior knowledge) instead of HTTP/1.1.
    #[arg(long)]
    pub h2c: bool,

    /// Most requests in flight; a request due while this many are running is
    /// counted as dropped, never queued.
    #[arg(long, env = "LOADGEN_MAX_IN_FLIGHT", default_value_t = 1000)]
    pub max_in_flight: usize,

    /// Per-request timeout.
    #[arg(long, env = "LOADGEN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Seed for the scenario's random choices (same seed, same requests).
    #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Run only this share of the schedule, i/n: requests k with k mod n = i. n
    /// instances with 0/n … (n−1)/n together send exactly the one-instance schedule.
    #[arg(long, env = "LOADGEN_SEGMENT", default_value = "0/1")]
    pub segment: Segment,

    /// A pass/fail threshold on the run, e.g. 'p99<250ms', 'errors<1%', 'dropped<1%'
    /// (repeatable). A broken threshold makes the exit code 99.
    #[arg(long = "threshold")]
    pub thresholds: Vec<Threshold>,

    /// Directory for summary.json and seconds.csv.
    #[arg(long, env = "LOADGEN_OUT")]
    pub out: Option<PathBuf>,

    /// Address for Prometheus `/metrics`, or `none`.
    #[arg(long, env = "LOADGEN_LISTEN", default_value = "127.0.0.1:8089", value_parser = parse_listen)]
    pub listen: std::option::Option<SocketAddr>,

    /// Pushgateway base URL: push the metrics every --push-interval and once more at
    /// the end, under job "loadgen", this run's id and the segment.
    #[arg(long, env = "LOADGEN_PUSHGATEWAY")]
    pub pushgateway: Option<String>,

    /// Interval between pushes to the Pushgateway.
    #[arg(long, env = "LOADGEN_PUSH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub push_interval: Duration,

    /// This run's id, for grouping pushed results (default: the start time,
    /// YYYYMMDDTHHMMSSZ). Give all segments of one run the same id.
    #[arg(long, env = "LOADGEN_RUN_ID")]
    pub run_id: Option<String>,

    /// Log format on stderr.
    #[arg(long, env = "LOADGEN_LOG_FORMAT", value_enum, default_value_t = loadlab_telemetry::LogFormat::Human)]
    pub log_format: loadlab_telemetry::LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioKind {
    /// The IoT model against device-api: login, then GET /command and POST /measurement.
    Devices,
    /// One fixed request (--method, --header, --body) against --target.
    Http,
    /// grpc-stress's RPCs (--grpc-kind, --grpc-messages) against --target
    /// (http://host:port, or https:// with --grpc-ca or --grpc-no-server-validation).
    Grpc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GrpcKind {
    Unary,
    ClientStreaming,
    ServerStreaming,
    Bidi,
}

impl GrpcKind {
    pub fn call(self, messages: u32) -> grpc_stress::client::CallKind {
        use grpc_stress::client::CallKind;
        match self {
            Self::Unary => CallKind::NonStreaming,
            Self::ClientStreaming => CallKind::ClientStreaming(messages),
            Self::ServerStreaming => CallKind::ServerStreaming(messages),
            Self::Bidi => CallKind::BidiStreaming(messages),
        }
    }
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// grpc-stress server: http://host:port (or https:// with --ca / --no-server-validation).
    #[arg(long, env = "LOADGEN_TARGET")]
    pub target: String,
    /// Conversations.
    #[arg(long, default_value_t = 10)]
    pub conversations: usize,
    /// Members per conversation: one sender, the rest subscribed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..))]
    pub members: u64,
    /// Interval between one sender's messages.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub send_interval: Duration,
    /// How long the senders send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// HTTP/2 connections shared by senders and subscribers.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// TLS: trust this CA (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// TLS: accept any server certificate (testing only).
    #[arg(long)]
    pub no_server_validation: bool,
    /// Write chat.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Open model: requests per second (all segments together).
    #[arg(long, required_unless_present_any = ["stages", "users", "command_every"], conflicts_with_all = ["stages", "users", "command_every"])]
    pub rate: Option<f64>,

    /// Routines (devices scenario): each device polls GET /command this often…
    #[arg(long, requires = "measurement_every", conflicts_with_all = ["stages", "users"])]
    #[arg(value_parser = humantime::parse_duration)]
    pub command_every: Option<Duration>,

    /// …and sends POST /measurement this often; its first tick of each delayed by a
    /// random part of the period.
    #[arg(long, requires = "command_every", value_parser = humantime::parse_duration)]
    pub measurement_every: Option<Duration>,

    /// Routines: each period varies by up to ± this percentage.
    #[arg(long, default_value_t = 10.0)]
    pub jitter_percent: f64,

    /// Closed model: this many users, each sending, waiting for the answer, thinking
    /// (--think-time) and going again (Locust's model; wrk's with no think time).
    #[arg(long, conflicts_with = "stages")]
    pub users: Option<usize>,

    /// Closed model: each user's pause between requests, MIN..MAX (random, uniform).
    #[arg(long, default_value = "0s..0s", value_parser = parse_range, requires = "users")]
    pub think_time: (Duration, Duration),

    /// How long to offer --rate or run --users.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, conflicts_with = "stages")]
    pub duration: Duration,

    /// Linear ramps between points, `DURATION:RATE,…` starting from --stages-from:
    /// '10s:100,30s:500,10s:500' ramps to 100/s over 10 s, to 500/s over 30 s, holds 10 s.
    #[arg(long, value_parser = parse_stages)]
    pub stages: Option<Stages>,

    /// Rate the first stage starts from.
    #[arg(long, default_value_t = 0.0)]
    pub stages_from: f64,
}

#[derive(Args, Debug)]
pub struct BreakpointArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Rate of the first step, requests/s.
    #[arg(long, default_value_t = 50.0)]
    pub start_rate: f64,

    /// Each step offers this many times the last one's rate.
    #[arg(long, default_value_t = 2.0, conflicts_with = "step_increment")]
    pub step_factor: f64,

    /// …or this many more requests/s than the last one.
    #[arg(long)]
    pub step_increment: Option<f64>,

    /// How long each step runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub step_duration: Duration,

    /// Never offer more than this.
    #[arg(long, default_value_t = 1_000_000.0)]
    pub max_rate: f64,

    /// Bisection steps between the last held and the first broken rate.
    #[arg(long, default_value_t = 3)]
    pub refine: u32,

    /// Stop bisecting when the gap is at most this fraction of the held rate.
    #[arg(long, default_value_t = 0.1)]
    pub resolution: f64,

    /// SLO: this latency quantile of successful requests (corrected)…
    #[arg(long, default_value_t = 0.99)]
    pub slo_quantile: f64,

    /// …must stay at or below this.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub slo_latency: Duration,

    /// SLO: most failed requests, percent.
    #[arg(long, default_value_t = 1.0)]
    pub slo_errors_percent: f64,

    /// SLO: least achieved/offered rate, percent.
    #[arg(long, default_value_t = 95.0)]
    pub slo_achieved_percent: f64,

    /// SLO: most dropped requests, percent.
    #[arg(long, default_value_t = 1.0)]
    pub slo_dropped_percent: f64,

    /// Prometheus base URL: after the search, name the bottleneck by reading every
    /// signal of --bottlenecks over the last held and the first broken step.
    #[arg(long, env = "LOADGEN_PROMETHEUS")]
    pub prometheus: Option<String>,

    /// The saturation signals (TOML; see monitoring/bottlenecks.toml).
    #[arg(long, env = "LOADGEN_BOTTLENECKS", default_value = "monitoring/bottlenecks.toml")]
    pub bottlenecks: PathBuf,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once(':').ok_or_else(|| format!("`{text}`: expected `Name: value`"))?;
    Ok((name.trim().to_string(), value.trim().to_string()))
}

fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|error| format!("`{text}`: {error}"))
}

/// The points of `--stages`: (ramp duration, rate reached).
#[derive(Clone, Debug)]
pub struct Stages(pub Vec<(Duration, f64)>);

fn parse_stages(text: &str) -> Result<Stages, String> {
    text.split(',')
        .map(|stage| {
            let (duration, rate) = stage.split_once(':').ok_or_else(|| format!("`{stage}`: expected DURATION:RATE"))?;
            let duration = humantime::parse_duration(duration.trim()).map_err(|error| format!("`{stage}`: {error}"))?;
            let rate: f64 = rate.trim().parse().map_err(|_| format!("`{stage}`: `{rate}` is not a rate"))?;
            if rate < 0.0 {
                return Err(format!("`{stage}`: a rate cannot be negative"));
            }
            Ok((duration, rate))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Stages)
}

impl RunArgs {
    pub fn pieces(&self) -> Option<Vec<RatePiece>> {
        let stages = self.stages.as_ref()?;
        let mut from = self.stages_from;
        Some(
            stages
                .0
                .iter()
                .map(|(duration, to)| {
                    let piece = RatePiece { from, to: *to, duration: *duration };
                    from = *to;
                    piece
                })
                .collect(),
        )
    }
}

impl Command {
    /// The options every run shares, and the load profile this command asks for;
    /// `None` for `target`, `report` and `chat`, which do not run a request profile.
    pub fn into_plan(self) -> Option<(CommonArgs, crate::profile::Profile)> {
        use crate::profile::{BreakpointPlan, Growth, Profile};
        Some(match self {
            Command::Target { .. } | Command::Report { .. } | Command::Chat(_) | Command::Export(_) => return None,
            Command::Run(args) => {
                let profile = match (args.pieces(), args.users) {
                    _ if args.command_every.is_some() => Profile::Routines {
                        command_every: args.command_every.expect("checked"),
                        measurement_every: args.measurement_every.expect("clap requires it with --command-every"),
                        jitter: args.jitter_percent / 100.0,
                        duration: args.duration,
                    },
                    (Some(stages), _) => Profile::Stages { stages },
                    (None, Some(users)) => Profile::Closed {
                        users,
                        think_min: args.think_time.0,
                        think_max: args.think_time.1,
                        duration: args.duration,
                    },
                    (None, None) => Profile::Constant {
                        rate: args.rate.expect("clap requires --rate without --stages"),
                        duration: args.duration,
                    },
                };
                (args.common, profile)
            }
            Command::Breakpoint(args) => {
                let growth = args.step_increment.map_or(Growth::Factor(args.step_factor), Growth::Increment);
                let plan = BreakpointPlan {
                    analysis: args
                        .prometheus
                        .map(|prometheus| crate::profile::AnalysisSource { prometheus, signals: args.bottlenecks }),
                    start_rate: args.start_rate,
                    growth,
                    step_duration: args.step_duration,
                    max_rate: args.max_rate,
                    refinements: args.refine,
                    resolution: args.resolution,
                    slo: crate::slo::Slo {
                        latency_quantile: args.slo_quantile,
                        latency_limit: args.slo_latency,
                        max_error_ratio: args.slo_errors_percent / 100.0,
                        min_achieved_ratio: args.slo_achieved_percent / 100.0,
                        max_dropped_ratio: args.slo_dropped_percent / 100.0,
                    },
                };
                (args.common, Profile::Breakpoint(plan))
            }
        })
    }
}
