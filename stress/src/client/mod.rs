//! `grpc-stress client`: one or more connection groups against a server. Each group
//! opens `--num-connections` connections (one after another, or all at once with
//! `--concurrent`); each connection makes `--num-calls` calls of every kind the group
//! names. Tolerated faults (the server gone, a connection cut, a failed handshake, a
//! timeout, shed load) are counted and the call is retried on a fresh connection
//! after exponential backoff with jitter; anything else is a failure. `--repeat` runs
//! the groups again until stopped, as the driver's clients do.

mod summary;

use std::time::Duration;

use clap::Parser;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;

use crate::units::{positive_duration, positive_u32};

pub use loadlab_proto::calls::{CallKind, Exchanged, call, stub_on};
pub use loadlab_proto::connect::{ConnectError, Target, TrustOptions};
pub use summary::{Fault, Summary, classify};

/// Options of `grpc-stress client`.
#[derive(Clone, Debug, clap::Args)]
pub struct ClientOptions {
    /// Server to call: http://host:port, or https://host:port for TLS (which needs
    /// --ca, --system-roots or --no-server-validation).
    #[arg(long, env = "GRPC_STRESS_TARGET", default_value = "http://127.0.0.1:50051", value_parser = loadlab_proto::connect::parse_target)]
    pub target: String,

    /// TLS: trust the CA certificate(s) in this PEM file.
    #[arg(long, value_parser = loadlab_proto::connect::parse_ca)]
    pub ca: Option<std::path::PathBuf>,

    /// TLS: trust the system's certificate store.
    #[arg(long)]
    pub system_roots: bool,

    /// TLS: accept any server certificate (testing only).
    #[arg(long)]
    pub no_server_validation: bool,

    /// Compress requests with gzip.
    #[arg(long, group = "compression")]
    pub gzip: bool,

    /// Compress requests with zstd.
    #[arg(long, group = "compression")]
    pub zstd: bool,

    /// Send requests uncompressed (the default).
    #[arg(long, group = "compression")]
    pub identity: bool,

    /// Run the groups again and again until SIGTERM/Ctrl-C (or --duration).
    #[arg(long)]
    pub repeat: bool,

    /// Stop after this long.
    #[arg(long, value_parser = positive_duration)]
    pub duration: Option<Duration>,

    /// Attempts per call before giving up on it as a failure (0 = never give up, as
    /// the driver's clients do).
    #[arg(long, default_value_t = 10)]
    pub max_attempts: u32,

    /// Deadline for one finite call (endless streams have none).
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub call_timeout: Duration,

    /// Print the summary as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,

    /// The first connection group (flags below); add more with --group.
    #[command(flatten)]
    pub group: GroupOptions,

    /// A further connection group, its flags quoted:
    /// --group "--num-connections 10 --num-calls 1 --non-streaming".
    #[arg(long = "group", value_parser = parse_group, value_name = "FLAGS", allow_hyphen_values = true)]
    pub more_groups: Vec<GroupOptions>,

    #[command(flatten)]
    pub process: crate::ProcessOptions,
}

/// One connection group. It names at least one RPC kind (checked by
/// [`ClientOptions::check`] for the first group, by the `--group` parser for others).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GroupOptions {
    /// Open this group's connections all at once instead of one after another.
    #[arg(long)]
    pub concurrent: bool,
    /// Connections in the group.
    #[arg(long, default_value_t = 1, value_parser = positive_u32)]
    pub num_connections: u32,
    /// Calls of each kind per connection.
    #[arg(long, default_value_t = 1, value_parser = positive_u32)]
    pub num_calls: u32,
    /// Unary calls (echo).
    #[arg(long)]
    pub non_streaming: bool,
    /// Client-streaming calls of N messages (0 = one endless stream).
    #[arg(long, value_name = "N")]
    pub client_streaming: Option<u32>,
    /// Server-streaming calls of N messages (0 = endless).
    #[arg(long, value_name = "N")]
    pub server_streaming: Option<u32>,
    /// Bidirectional calls of N rounds (0 = endless).
    #[arg(long, value_name = "N")]
    pub bidi_streaming: Option<u32>,
}

#[derive(Parser)]
struct GroupParser {
    #[command(flatten)]
    group: GroupOptions,
}

/// `--group "FLAGS"`: the group's flags, each valid, naming at least one RPC kind. A
/// bad flag is reported on one line, as clap's own first line says it.
fn parse_group(text: &str) -> Result<GroupOptions, String> {
    let words = std::iter::once("group").chain(text.split_whitespace());
    let group = GroupParser::try_parse_from(words).map(|parsed| parsed.group).map_err(|error| {
        let rendered = error.to_string();
        let first = rendered.lines().next().unwrap_or_default();
        first.strip_prefix("error: ").unwrap_or(first).to_string()
    })?;
    if group.kinds().is_empty() {
        return Err(ClientError::NoKind.to_string());
    }
    Ok(group)
}

impl GroupOptions {
    pub fn kinds(&self) -> Vec<CallKind> {
        let mut kinds = Vec::new();
        if self.non_streaming {
            kinds.push(CallKind::NonStreaming);
        }
        kinds.extend(self.client_streaming.map(CallKind::ClientStreaming));
        kinds.extend(self.server_streaming.map(CallKind::ServerStreaming));
        kinds.extend(self.bidi_streaming.map(CallKind::BidiStreaming));
        kinds
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(
        "a connection group names no RPC kind: give --non-streaming, --client-streaming N, --server-streaming N or --bidi-streaming N"
    )]
    NoKind,
}

impl ClientOptions {
    /// What the parsers cannot see alone: the first group names an RPC kind, and an
    /// https target has a trust source. An error here is a usage error (exit 2).
    pub fn check(&self) -> Result<(), ClientError> {
        if self.group.kinds().is_empty() {
            return Err(ClientError::NoKind);
        }
        if loadlab_proto::connect::is_secure(&self.target)
            && self.ca.is_none()
            && !self.system_roots
            && !self.no_server_validation
        {
            return Err(ClientError::Connect(ConnectError::NoTrust));
        }
        Ok(())
    }
}

/// Backoff between reconnection attempts: 50 ms doubling to 2 s, with full jitter.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 50u64.saturating_mul(1 << attempt.min(6)).min(2000);
    Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
}

/// Runs every group until done (or until `stop`, with `--repeat`), and returns what
/// happened.
pub async fn run(options: &ClientOptions, stop: CancellationToken) -> Result<Summary, ClientError> {
    let trust = TrustOptions {
        ca: options.ca.clone(),
        system_roots: options.system_roots,
        no_server_validation: options.no_server_validation,
    };
    let target = Target::new(&options.target, &trust)?;
    let groups: Vec<GroupOptions> = std::iter::once(options.group.clone()).chain(options.more_groups.clone()).collect();
    if groups.iter().any(|group| group.kinds().is_empty()) {
        return Err(ClientError::NoKind);
    }
    let compression = if options.gzip {
        Some(CompressionEncoding::Gzip)
    } else if options.zstd {
        Some(CompressionEncoding::Zstd)
    } else {
        None
    };
    if let Some(limit) = options.duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            stop.cancel();
        });
    }
    let runner = GroupRunner {
        target,
        compression,
        call_timeout: options.call_timeout,
        max_attempts: options.max_attempts,
        stop: stop.clone(),
    };
    let mut summary = Summary::default();
    let runs = groups.into_iter().map(|group| {
        let runner = runner.clone();
        let repeat = options.repeat;
        tokio::spawn(async move {
            let mut summary = Summary::default();
            loop {
                summary.merge(runner.run_group(&group).await);
                if !repeat || runner.stop.is_cancelled() {
                    return summary;
                }
            }
        })
    });
    for run in runs.collect::<Vec<_>>() {
        if let Ok(group_summary) = run.await {
            summary.merge(group_summary);
        }
    }
    Ok(summary)
}

#[derive(Clone)]
struct GroupRunner {
    target: Target,
    compression: Option<CompressionEncoding>,
    call_timeout: Duration,
    max_attempts: u32,
    stop: CancellationToken,
}

impl GroupRunner {
    async fn run_group(&self, group: &GroupOptions) -> Summary {
        let mut summary = Summary::default();
        if group.concurrent {
            let connections: Vec<_> = (0..group.num_connections)
                .map(|_| {
                    let runner = self.clone();
                    let group = group.clone();
                    tokio::spawn(async move { runner.run_connection(&group).await })
                })
                .collect();
            for connection in connections {
                if let Ok(connection_summary) = connection.await {
                    summary.merge(connection_summary);
                }
            }
        } else {
            for _ in 0..group.num_connections {
                if self.stop.is_cancelled() {
                    break;
                }
                summary.merge(self.run_connection(group).await);
            }
        }
        summary
    }

    /// One connection: `num_calls` calls of each kind, reconnecting after faults.
    async fn run_connection(&self, group: &GroupOptions) -> Summary {
        let mut summary = Summary::default();
        let mut client = None;
        let mut attempt = 0u32;
        'calls: for _ in 0..group.num_calls {
            for kind in group.kinds() {
                loop {
                    if self.stop.is_cancelled() {
                        break 'calls;
                    }
                    if self.max_attempts != 0 && attempt >= self.max_attempts {
                        let failure = format!("{}: gave up after {attempt} attempts (--max-attempts)", kind.name());
                        *summary.failures.entry(failure).or_default() += 1;
                        attempt = 0;
                        break;
                    }
                    let stub = match &mut client {
                        Some(stub) => stub,
                        None => match tokio::select! {
                            connected = self.target.connect() => connected,
                            _ = self.stop.cancelled() => break 'calls,
                        } {
                            Ok(connection) => client.insert(stub_on(connection, self.compression)),
                            Err(error) => {
                                *summary.faults.entry(summary::classify_connect(&error)).or_default() += 1;
                                tracing::debug!(?error, "connect failed");
                                self.pause(attempt).await;
                                attempt += 1;
                                continue;
                            }
                        },
                    };
                    let endless = matches!(
                        kind,
                        CallKind::ClientStreaming(0) | CallKind::ServerStreaming(0) | CallKind::BidiStreaming(0)
                    );
                    let started = std::time::Instant::now();
                    let outcome = tokio::select! {
                        outcome = call(stub, kind) => outcome,
                        _ = tokio::time::sleep(self.call_timeout), if !endless => {
                            Err(tonic::Status::deadline_exceeded("call timed out"))
                        }
                        _ = self.stop.cancelled() => break 'calls,
                    };
                    match outcome {
                        Ok(exchanged) => {
                            let stats = summary.kinds.entry(kind.name()).or_default();
                            stats.calls_ok += 1;
                            stats.messages_sent += exchanged.sent;
                            stats.messages_received += exchanged.received;
                            let micros = started.elapsed().as_micros().clamp(1, 3_600_000_000) as u64;
                            let _ = stats.latency.record(micros);
                            attempt = 0;
                            break;
                        }
                        Err(status) => match classify(&status) {
                            Ok(fault) => {
                                *summary.faults.entry(fault).or_default() += 1;
                                tracing::debug!(?fault, %status, "tolerated fault; reconnecting");
                                client = None;
                                summary.reconnects += 1;
                                self.pause(attempt).await;
                                attempt += 1;
                            }
                            Err(failure) => {
                                tracing::warn!(kind = kind.name(), %failure, "call failed");
                                *summary.failures.entry(format!("{}: {failure}", kind.name())).or_default() += 1;
                                break;
                            }
                        },
                    }
                }
            }
        }
        summary
    }

    async fn pause(&self, attempt: u32) {
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt)) => {}
            _ = self.stop.cancelled() => {}
        }
    }
}
