//! loadgen's command line. Every option is documented here (`--help` shows it), can
//! also come from a `LOADGEN_…` environment variable, and is checked by its parser
//! (`values`), so a bad value exits 2 with one line naming the option, the value
//! and what is allowed. Checks across options live in [`crate::plan`].

pub mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};

use crate::schedule::Segment;
use crate::slo::Threshold;
use values::MAX_LANES;

/// loadlab's load generator: open-model arrivals on a deterministic schedule,
/// latencies measured from the due time, ramp until the SLO breaks.
///
/// Exit codes: 0 the run held (or the breaking point was found); 99 a threshold
/// broke, or even the first step of a breakpoint search broke its SLO; 97 the run was
/// interrupted or could not run (the target refused the logins, the metrics port was
/// taken); 2 invalid options (one line names the option). The first SIGINT/SIGTERM
/// ends the current step and writes the report marked interrupted; a second one, or
/// --grace passing, exits at once.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Offer a constant rate (--rate), stages (--stages), looping users (--users,
    /// closed model) or per-device routines (--command-every), and report.
    Run(RunArgs),
    /// Step the rate up until a step breaks the SLO, refine by bisection, and report
    /// the breaking point (with --prometheus, also the bottleneck).
    Breakpoint(BreakpointArgs),
    /// Chat delivery latency against grpc-stress's chat service: N conversations × K
    /// members, one sender each; counts lost, duplicated and out-of-order messages.
    /// Exit 99 when any message was lost or duplicated.
    Chat(ChatArgs),
    /// Merge the outputs (--out directories) of several segments of one plan into one
    /// report: counts add up, percentiles come from the merged histograms.
    Report(ReportArgs),
    /// Export Prometheus series over a run's window into one CSV (time,name,labels,value),
    /// so runs can be compared offline. Defaults: the window of --summary's run, every
    /// signal of --bottlenecks and every recording rule of --rules.
    Export(ExportArgs),
    /// Serve a trivial HTTP target (every request answered 200 "ok"), for measuring
    /// the generator itself.
    Target(TargetArgs),
    /// Serve as an agent: a load-generator host that a controller (`run` or
    /// `breakpoint` with --agents) drives together with others. One controller at a
    /// time; every call must carry the shared token; stops when its controller goes
    /// quiet.
    Agent(AgentArgs),
}

/// `loadgen agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Address to listen on for a controller: loopback by default; give the lab
    /// network's address for a controller on another host.
    #[arg(long, env = "LOADGEN_AGENT_LISTEN", default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,
    /// The shared token: a file whose first line is the token (at least 16
    /// characters). Never on the command line, where `ps` would show it.
    #[arg(long, env = "LOADGEN_AGENT_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Address for Prometheus `/metrics`, or `none`.
    #[arg(long, env = "LOADGEN_LISTEN", default_value = "127.0.0.1:8089", value_parser = values::listen)]
    pub metrics_listen: std::option::Option<SocketAddr>,
    /// Connect to the target from this host address (repeatable), whatever the
    /// controller asks: each agent host has its own.
    #[arg(long = "source-address", env = "LOADGEN_SOURCE_ADDRESS", value_delimiter = ',')]
    pub source_addresses: Vec<std::net::IpAddr>,
    /// Log format on stderr.
    #[arg(long, env = "LOADGEN_LOG_FORMAT", value_enum, default_value_t = loadlab_telemetry::LogFormat::Human)]
    pub log_format: loadlab_telemetry::LogFormat,
}

/// Driving agents on other hosts instead of sending requests from here.
#[derive(Args, Debug, Clone)]
pub struct AgentsArgs {
    /// Drive these agents (`loadgen agent` on other hosts, http://host:port,
    /// comma-separated) as one generator: each runs its segment of the schedule, all
    /// start together, their histograms are merged exactly and the SLO is judged on
    /// the merged result. Open models only (--rate, --stages, breakpoint). Given
    /// once, with every agent.
    #[arg(long, env = "LOADGEN_AGENTS", value_delimiter = ',', value_parser = values::url, action = clap::ArgAction::Set)]
    pub agents: Vec<String>,
    /// The agents' shared token: a file whose first line is the token.
    #[arg(long, env = "LOADGEN_AGENT_TOKEN_FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// When an agent is lost mid-run: abort the run, or continue on the agents left
    /// (the step that lost it runs again).
    #[arg(long, env = "LOADGEN_ON_AGENT_LOSS", value_enum, default_value = "abort")]
    pub on_agent_loss: crate::controller::OnAgentLoss,
    /// Heartbeats between controller and agents; an agent silent for two is lost.
    #[arg(long, env = "LOADGEN_HEARTBEAT", default_value = "1s", value_parser = values::timeout)]
    pub heartbeat: Duration,
    /// How long the agents may take to get ready (log their devices in).
    #[arg(long, env = "LOADGEN_READY_TIMEOUT", default_value = "120s", value_parser = values::timeout)]
    pub ready_timeout: Duration,
}

/// Options every load run takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Base URL of the system under test: device-api for `devices`, the full URL for
    /// `http`, the grpc-stress server for `grpc` (http:// or https://).
    #[arg(long, env = "LOADGEN_TARGET", value_parser = values::url)]
    pub target: String,

    /// What each request does.
    #[arg(long, env = "LOADGEN_SCENARIO", value_enum, default_value = "devices")]
    pub scenario: ScenarioKind,

    /// devices: simulated devices, each logged in once before the run [1, 1000000].
    #[arg(long, env = "LOADGEN_DEVICES", default_value = "100", value_parser = values::count::<u32>(1, MAX_LANES))]
    pub devices: u32,

    /// http: request method.
    #[arg(long, env = "LOADGEN_METHOD", default_value = "GET", value_parser = values::method)]
    pub method: Method,

    /// http: a request header, `Name: value` (repeatable). Host and User-Agent
    /// (loadgen/VERSION) are set unless given here.
    #[arg(long = "header", value_parser = values::header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// http: request body. Content-Length is always sent; Content-Type, unless given
    /// with --header, is application/json when the body is JSON, else text/plain.
    #[arg(long, env = "LOADGEN_BODY", default_value = "")]
    pub body: String,

    /// grpc: which RPC each request makes.
    #[arg(long, env = "LOADGEN_GRPC_KIND", value_enum, default_value = "unary")]
    pub grpc_kind: GrpcKind,

    /// grpc: messages per streaming call (N of grpc-stress's semantics) [1, 1000000].
    #[arg(long, env = "LOADGEN_GRPC_MESSAGES", default_value = "10", value_parser = values::count::<u32>(1, 1_000_000))]
    pub grpc_messages: u32,

    /// grpc and HTTP/2: connections the requests share [1, 1024].
    #[arg(long, alias = "grpc-connections", env = "LOADGEN_CONNECTIONS", default_value = "4")]
    #[arg(value_parser = values::count::<u32>(1, 1024))]
    pub connections: u32,

    /// grpc: replace a connection after this many calls (default: never).
    #[arg(long, env = "LOADGEN_GRPC_CALLS_PER_CONNECTION", value_parser = values::count::<u64>(1, u64::MAX))]
    pub grpc_calls_per_connection: Option<u64>,

    /// https:// (and grpc over TLS): trust only the CA certificates in this PEM file
    /// instead of the system's.
    #[arg(long, alias = "grpc-ca", env = "LOADGEN_CA", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,

    /// https:// (and grpc over TLS): accept any server certificate (test servers only).
    #[arg(long, alias = "grpc-no-server-validation", env = "LOADGEN_INSECURE")]
    pub insecure: bool,

    /// Connect from this local address (repeatable: connections take them in turn,
    /// e.g. several 127.0.x.y to open more than one address's ~28,000 ports).
    #[arg(long = "source-address", env = "LOADGEN_SOURCE_ADDRESS", value_delimiter = ',')]
    pub source_addresses: Vec<std::net::IpAddr>,

    /// Speak HTTP/2: h2c (prior knowledge) for http://, ALPN h2 for https://.
    #[arg(long, alias = "h2c", env = "LOADGEN_HTTP2")]
    pub http2: bool,

    /// Most requests in flight (open model); a request due while this many are
    /// running is counted as dropped, never queued [1, 1000000].
    #[arg(long, env = "LOADGEN_MAX_IN_FLIGHT", default_value = "1000", value_parser = values::count::<usize>(1, MAX_LANES))]
    pub max_in_flight: usize,

    /// Per-request timeout, connecting included (at most 1h).
    #[arg(long, env = "LOADGEN_TIMEOUT", default_value = "10s", value_parser = values::timeout)]
    pub timeout: Duration,

    /// After the schedule ends (or the first SIGINT/SIGTERM), how long answers are
    /// waited for; a second signal or this passing after the first exits at once.
    #[arg(long, env = "LOADGEN_GRACE", default_value = "5s", value_parser = values::timeout)]
    pub grace: Duration,

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

    /// Stop the whole run (every agent too) within a second when this threshold
    /// breaks over the run so far, e.g. 'errors<50%' (repeatable; exit 99).
    #[arg(long = "abort-on")]
    pub abort_on: Vec<Threshold>,

    /// Directory for summary.json, seconds.csv and report.html; created, and checked
    /// for writing, before the run starts.
    #[arg(long, env = "LOADGEN_OUT")]
    pub out: Option<PathBuf>,

    /// Address for Prometheus `/metrics`, or `none`.
    #[arg(long, env = "LOADGEN_LISTEN", default_value = "127.0.0.1:8089", value_parser = values::listen)]
    pub listen: std::option::Option<SocketAddr>,

    /// Pushgateway base URL: push the metrics every --push-interval and once more at
    /// the end, under job "loadgen", this run's id and the segment.
    #[arg(long, env = "LOADGEN_PUSHGATEWAY", value_parser = values::url)]
    pub pushgateway: Option<String>,

    /// Interval between pushes to the Pushgateway.
    #[arg(long, env = "LOADGEN_PUSH_INTERVAL", default_value = "5s", value_parser = values::timeout)]
    pub push_interval: Duration,

    /// This run's id, for grouping pushed results (default: the start time,
    /// YYYYMMDDTHHMMSSZ). Give all segments of one run the same id.
    #[arg(long, env = "LOADGEN_RUN_ID", value_parser = run_id)]
    pub run_id: Option<String>,

    /// Log format on stderr.
    #[arg(long, env = "LOADGEN_LOG_FORMAT", value_enum, default_value_t = loadlab_telemetry::LogFormat::Human)]
    pub log_format: loadlab_telemetry::LogFormat,
}

/// A run id goes into a URL path and a directory name: letters, digits, `-_.`.
fn run_id(text: &str) -> Result<String, String> {
    let fine = !text.is_empty()
        && text.len() <= 128
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine { Ok(text.to_string()) } else { Err("use 1–128 letters, digits, `-`, `_` or `.`".into()) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioKind {
    /// The IoT model against device-api: login, then GET /command and POST /measurement.
    Devices,
    /// One fixed request (--method, --header, --body) against --target.
    Http,
    /// grpc-stress's RPCs (--grpc-kind, --grpc-messages) against --target
    /// (http://host:port, or https:// with --ca or --insecure).
    Grpc,
}

/// What a breakpoint search steps up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Over {
    /// The request rate (requests/s).
    Rate,
    /// The number of simulated devices.
    Devices,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GrpcKind {
    Unary,
    ClientStreaming,
    ServerStreaming,
    Bidi,
}

impl GrpcKind {
    pub fn call(self, messages: u32) -> loadlab_proto::calls::CallKind {
        use loadlab_proto::calls::CallKind;
        match self {
            Self::Unary => CallKind::NonStreaming,
            Self::ClientStreaming => CallKind::ClientStreaming(messages),
            Self::ServerStreaming => CallKind::ServerStreaming(messages),
            Self::Bidi => CallKind::BidiStreaming(messages),
        }
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub agents: AgentsArgs,

    /// Open model: requests per second (all segments together) (0, 10000000].
    #[arg(long, env = "LOADGEN_RATE", value_parser = values::rate)]
    #[arg(required_unless_present_any = ["stages", "users", "command_every"], conflicts_with_all = ["stages", "users", "command_every"])]
    pub rate: Option<f64>,

    /// Routines (devices scenario): each device polls GET /command this often…
    #[arg(long, requires = "measurement_every", conflicts_with_all = ["stages", "users"], value_parser = values::duration)]
    pub command_every: Option<Duration>,

    /// …and sends POST /measurement this often; the first tick of each falls at a
    /// random point of its first period.
    #[arg(long, requires = "command_every", value_parser = values::duration)]
    pub measurement_every: Option<Duration>,

    /// Routines: each period varies by up to ± this percentage [0, 90].
    #[arg(long, default_value = "10", value_parser = values::jitter_percent)]
    pub jitter_percent: f64,

    /// Closed model: this many users, each sending, waiting for the answer, thinking
    /// (--think-time) and going again, each on its own connection (Locust's model;
    /// wrk's with no think time) [1, 1000000].
    #[arg(long, env = "LOADGEN_USERS", conflicts_with = "stages", value_parser = values::count::<u32>(1, MAX_LANES))]
    pub users: Option<u32>,

    /// Closed model: each user's pause between requests, MIN..MAX (random, uniform).
    #[arg(long, default_value = "0s..0s", value_parser = values::pause_range, requires = "users")]
    pub think_time: (Duration, Duration),

    /// How long to offer --rate, run --users or the routines (at most 30 days).
    #[arg(long, env = "LOADGEN_DURATION", default_value = "30s", value_parser = values::duration, conflicts_with = "stages")]
    pub duration: Duration,

    /// Linear ramps between points, `DURATION:RATE,…` starting from --stages-from:
    /// '10s:100,30s:500,10s:500' ramps to 100/s over 10 s, to 500/s over 30 s, holds 10 s.
    #[arg(long, value_parser = values::stages)]
    pub stages: Option<values::Stages>,

    /// Rate the first stage starts from.
    #[arg(long, default_value = "0", value_parser = values::rate_or_zero)]
    pub stages_from: f64,
}

#[derive(Args, Debug)]
pub struct BreakpointArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub agents: AgentsArgs,

    /// What to step up: the request rate of an open schedule, or the number of
    /// simulated devices (devices scenario), each on its routine.
    #[arg(long, env = "LOADGEN_OVER", value_enum, default_value = "rate")]
    pub over: Over,

    /// Rate of the first step, requests/s (0, 10000000].
    #[arg(long, default_value = "50", value_parser = values::rate)]
    pub start_rate: f64,

    /// --over devices: devices in the first step [1, 1000000].
    #[arg(long, default_value = "100", value_parser = values::count::<u32>(1, MAX_LANES))]
    pub start_devices: u32,

    /// --over devices: never more devices than this [1, 1000000].
    #[arg(long, default_value = "100000", value_parser = values::count::<u32>(1, MAX_LANES))]
    pub max_devices: u32,

    /// --over devices: each device polls GET /command this often…
    #[arg(long, default_value = "30s", value_parser = values::duration)]
    pub command_every: Duration,

    /// …and sends POST /measurement this often.
    #[arg(long, default_value = "30s", value_parser = values::duration)]
    pub measurement_every: Duration,

    /// --over devices: each period varies by up to ± this percentage [0, 90] (17:
    /// the original device's 25–35 s).
    #[arg(long, default_value = "17", value_parser = values::jitter_percent)]
    pub jitter_percent: f64,

    /// --over devices: devices joining a step log in at most this many a second,
    /// before the step starts, so it measures them at work, not a login storm.
    #[arg(long, default_value = "200", value_parser = values::rate)]
    pub login_rate: f64,

    /// Each step offers this many times the last one's rate (1, 100].
    #[arg(long, default_value = "2", value_parser = values::factor, conflicts_with = "step_increment")]
    pub step_factor: f64,

    /// …or this many more requests/s than the last one (0, 10000000].
    #[arg(long, value_parser = values::rate)]
    pub step_increment: Option<f64>,

    /// How long each step runs.
    #[arg(long, default_value = "10s", value_parser = values::duration)]
    pub step_duration: Duration,

    /// Never offer more than this; at least --start-rate, and reached in at most 200
    /// steps.
    #[arg(long, default_value = "1000000", value_parser = values::rate)]
    pub max_rate: f64,

    /// Bisection steps between the last held and the first broken rate [0, 20].
    #[arg(long, default_value = "3", value_parser = values::count::<u32>(0, 20))]
    pub refine: u32,

    /// Stop bisecting when the gap is at most this fraction of the held rate (0, 1].
    #[arg(long, default_value = "0.1", value_parser = values::fraction)]
    pub resolution: f64,

    /// SLO: this latency quantile of successful requests (corrected) (0, 1]…
    #[arg(long, default_value = "0.99", value_parser = values::quantile)]
    pub slo_quantile: f64,

    /// …must stay at or below this.
    #[arg(long, default_value = "250ms", value_parser = values::timeout)]
    pub slo_latency: Duration,

    /// SLO: most failed requests, percent [0, 100].
    #[arg(long, default_value = "1", value_parser = values::percent)]
    pub slo_errors_percent: f64,

    /// SLO: least achieved/offered rate, percent [0, 100].
    #[arg(long, default_value = "95", value_parser = values::percent)]
    pub slo_achieved_percent: f64,

    /// SLO: most dropped requests, percent [0, 100].
    #[arg(long, default_value = "1", value_parser = values::percent)]
    pub slo_dropped_percent: f64,

    /// Prometheus base URL: after the search, name the bottleneck by reading every
    /// signal of --bottlenecks over the last held and the first broken step. Checked
    /// for an answer before the run starts.
    #[arg(long, env = "LOADGEN_PROMETHEUS", value_parser = values::url)]
    pub prometheus: Option<String>,

    /// The saturation signals (TOML; see monitoring/bottlenecks.toml).
    #[arg(long, env = "LOADGEN_BOTTLENECKS", default_value = "monitoring/bottlenecks.toml")]
    pub bottlenecks: PathBuf,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// grpc-stress server: http://host:port (or https:// with --ca / --insecure).
    #[arg(long, env = "LOADGEN_TARGET", value_parser = values::url)]
    pub target: String,
    /// Conversations [1, 100000].
    #[arg(long, default_value = "10", value_parser = values::count::<usize>(1, 100_000))]
    pub conversations: usize,
    /// Members per conversation: one sender, the rest subscribed [2, 10000].
    #[arg(long, default_value = "5", value_parser = values::count::<usize>(2, 10_000))]
    pub members: usize,
    /// Interval between one sender's messages.
    #[arg(long, default_value = "1s", value_parser = values::duration)]
    pub send_interval: Duration,
    /// How long the senders send.
    #[arg(long, default_value = "30s", value_parser = values::duration)]
    pub duration: Duration,
    /// HTTP/2 connections shared by senders and subscribers [1, 1024].
    #[arg(long, default_value = "4", value_parser = values::count::<usize>(1, 1024))]
    pub connections: usize,
    /// TLS: trust this CA (PEM).
    #[arg(long, conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// TLS: accept any server certificate (test servers only).
    #[arg(long, alias = "no-server-validation")]
    pub insecure: bool,
    /// Write chat.json here (created, and checked for writing, first).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// After the senders stop (or the first signal), how long to wait for deliveries.
    #[arg(long, default_value = "5s", value_parser = values::timeout)]
    pub grace: Duration,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The segments' output directories.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged summary.json, seconds.csv and report.html.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// A server of known capacity: at most this many requests are served at once, the
    /// others wait their turn [1, 100000] (default: no limit). With --service-time,
    /// the capacity is workers / service time requests per second.
    #[arg(long, requires = "service_time", value_parser = values::count::<usize>(1, 100_000))]
    pub workers: Option<usize>,
    /// How long each request keeps its worker busy (e.g. `10ms`).
    #[arg(long, requires = "workers", value_parser = values::duration)]
    pub service_time: Option<Duration>,
}

/// `loadgen export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Prometheus base URL.
    #[arg(long, env = "LOADGEN_PROMETHEUS", value_parser = values::url)]
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
    #[arg(long, default_value = "5s", value_parser = values::timeout)]
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

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Devices => "devices",
            Self::Http => "http",
            Self::Grpc => "grpc",
        }
    }

    /// The names of the requests the scenario makes, by request id (what
    /// [`crate::scenario::Scenario::requests`] gives once it is set up).
    pub fn requests(self, grpc_kind: GrpcKind) -> &'static [&'static str] {
        match self {
            Self::Devices => crate::scenario::DevicesScenario::REQUESTS,
            Self::Http => &["http"],
            Self::Grpc => match grpc_kind {
                GrpcKind::Unary => &["non-streaming"],
                GrpcKind::ClientStreaming => &["client-streaming"],
                GrpcKind::ServerStreaming => &["server-streaming"],
                GrpcKind::Bidi => &["bidi-streaming"],
            },
        }
    }
}

fn value_name<T: clap::ValueEnum>(value: &T) -> String {
    value.to_possible_value().map(|value| value.get_name().to_string()).unwrap_or_default()
}

impl CommonArgs {
    /// The options that set the scenario up, as command-line words: what a
    /// controller sends its agents, which parse them with this same parser.
    pub fn scenario_args(&self) -> Vec<String> {
        let duration = |value: Duration| humantime::format_duration(value).to_string();
        let mut words = vec![
            "--target".to_string(),
            self.target.clone(),
            "--scenario".into(),
            value_name(&self.scenario),
            "--devices".into(),
            self.devices.to_string(),
            "--method".into(),
            self.method.to_string(),
            "--body".into(),
            self.body.clone(),
            "--grpc-kind".into(),
            value_name(&self.grpc_kind),
            "--grpc-messages".into(),
            self.grpc_messages.to_string(),
            "--connections".into(),
            self.connections.to_string(),
            "--max-in-flight".into(),
            self.max_in_flight.to_string(),
            "--timeout".into(),
            duration(self.timeout),
            "--grace".into(),
            duration(self.grace),
            "--seed".into(),
            self.seed.to_string(),
            "--listen".into(),
            "none".into(),
        ];
        for (name, value) in &self.headers {
            words.push("--header".into());
            words.push(format!("{name}: {}", value.to_str().unwrap_or_default()));
        }
        if let Some(calls) = self.grpc_calls_per_connection {
            words.extend(["--grpc-calls-per-connection".into(), calls.to_string()]);
        }
        if let Some(ca) = &self.ca {
            words.extend(["--ca".into(), ca.display().to_string()]);
        }
        if self.insecure {
            words.push("--insecure".into());
        }
        if self.http2 {
            words.push("--http2".into());
        }
        for source in &self.source_addresses {
            words.extend(["--source-address".into(), source.to_string()]);
        }
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks over every subcommand and option.
    #[test]
    fn the_command_line_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
        // Each subcommand, parsed into its fields (a field whose type does not match its
        // parser only shows here).
        for words in [
            &["run", "--target", "http://h/", "--rate", "1"][..],
            &["breakpoint", "--target", "http://h/", "--agents", "http://a:1,http://b:2", "--agent-token-file", "t"],
            &["agent", "--token-file", "t", "--metrics-listen", "none"],
            &["chat", "--target", "http://h:1"],
            &["report", "d", "--out", "o"],
            &["export", "--prometheus", "http://p:9090", "--from", "1", "--to", "2", "--out", "o"],
            &["target"],
        ] {
            Cli::try_parse_from(std::iter::once(&"loadgen").chain(words)).unwrap();
        }
    }

    #[test]
    fn scenario_words_parse_back_to_the_same_options() {
        let words = [
            "loadgen",
            "run",
            "--rate",
            "10",
            "--target",
            "https://h:8443/x?y=1",
            "--scenario",
            "http",
            "--method",
            "PUT",
            "--header",
            "X-A: b c",
            "--body",
            "{\"a\":1}",
            "--grpc-kind",
            "bidi",
            "--grpc-messages",
            "7",
            "--connections",
            "3",
            "--grpc-calls-per-connection",
            "9",
            "--insecure",
            "--http2",
            "--max-in-flight",
            "77",
            "--timeout",
            "1m 500ms",
            "--grace",
            "2s",
            "--seed",
            "42",
            "--devices",
            "5",
        ];
        let Command::Run(args) = Cli::try_parse_from(words).unwrap().command else { panic!("a run") };
        let again = args.common.scenario_args();
        let mut parsed =
            Cli::try_parse_from(["loadgen", "run", "--rate", "10"].iter().map(|w| w.to_string()).chain(again)).unwrap();
        let Command::Run(back) = &mut parsed.command else { panic!("a run") };
        assert_eq!(format!("{:?}", back.common), format!("{:?}", CommonArgs { listen: None, ..args.common.clone() }));
    }
}
