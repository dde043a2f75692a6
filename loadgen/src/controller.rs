//! The controller: several agents ([`crate::agent`]) driven as one generator. It
//! connects to each (checking the token and that the agent is free), times a round
//! trip, prepares every agent with its segment of the schedule and waits for all of
//! them (a barrier that names the agent that never came), and then runs steps: each
//! agent starts at the same instant (the lead covers the slowest round trip; clocks
//! are never compared), streams its seconds, and ends with its step's exact
//! HdrHistograms, which the controller merges. The SLO is judged on the merged step,
//! never on an average of verdicts, and the breakpoint search runs here: the
//! controller is a [`StepRunner`] like the local attack loop.
//!
//! Heartbeats go both ways every second. An agent silent for two heartbeats (dead,
//! or cut off) is lost: its step is marked degraded and, by `--on-agent-loss`, the run
//! aborts, or the next steps are split among the agents left.

use std::collections::BTreeMap;
use std::time::Duration;

use loadlab_proto::agent::agent_client::AgentClient;
use loadlab_proto::agent::{self, Command, command, report};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::attack::{AgentShare, OnSecond, StepOutcome};
use crate::collector::{SecondRow, SecondShare};
use crate::pacer::Pace;
use crate::runner::StepRunner;
use crate::schedule::Segment;
use crate::stats::Stats;
use crate::wire::{AUTHORIZATION, bearer, pace_to_wire, stats_from_wire};

/// What to do when an agent is lost mid-run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnAgentLoss {
    /// End the run at once, with a verdict that names the agent.
    Abort,
    /// Run the step again, and the next ones, on the agents left.
    Continue,
}

#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// The agents' URLs (`http://host:port`).
    pub agents: Vec<String>,
    pub token: String,
    /// How often heartbeats go; an agent silent for two is lost.
    pub heartbeat: Duration,
    pub on_loss: OnAgentLoss,
    /// How long preparing (logging devices in) may take.
    pub ready_timeout: Duration,
    /// How long to wait for a stopped step's final reports.
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("agent {agent}: {detail}")]
    Agent { agent: String, detail: String },
    #[error("agent {agent} never reported ready within {waited:?}")]
    NotReady { agent: String, waited: Duration },
    #[error("stopped while preparing the agents")]
    Interrupted,
}

#[derive(Clone)]
struct Token(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for Token {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert(AUTHORIZATION, self.0.clone());
        Ok(request)
    }
}

/// One agent's link.
struct Link {
    url: String,
    /// Bytes of reports received from it, all told.
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
    commands: mpsc::Sender<Command>,
    /// Half the fastest round trip measured, to start everyone at one instant.
    half_round_trip: Duration,
    last_heard: Instant,
    lost: Option<String>,
    segment: Segment,
}

/// What the controller's loop hears: an agent's report, or that its stream ended.
enum Heard {
    Report(usize, report::Report),
    Gone(usize, String),
}

pub struct Controller {
    options: ControllerOptions,
    links: Vec<Link>,
    heard: mpsc::Receiver<Heard>,
    names: &'static [&'static str],
    devices: u32,
    /// Cancels the heartbeat tasks when the controller is dropped.
    stop_heartbeats: CancellationToken,
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop_heartbeats.cancel();
    }
}

fn command(command: command::Command) -> Command {
    Command { command: Some(command) }
}

impl Controller {
    /// Connects to every agent and opens its session; `names` are the request names
    /// of the scenario the agents will run.
    pub async fn connect(options: ControllerOptions, names: &'static [&'static str]) -> Result<Self, ControllerError> {
        let token = tonic::metadata::MetadataValue::try_from(bearer(&options.token)).map_err(|_| {
            ControllerError::Agent { agent: "(all)".into(), detail: "the token is not printable ASCII".into() }
        })?;
        let (heard_tx, heard) = mpsc::channel(1024);
        let stop_heartbeats = CancellationToken::new();
        let mut links = Vec::new();
        for (index, url) in options.agents.iter().enumerate() {
            let failed = |detail: String| ControllerError::Agent { agent: url.clone(), detail };
            let channel: Channel = Endpoint::from_shared(url.clone())
                .map_err(|error| failed(error.to_string()))?
                .connect_timeout(Duration::from_secs(5))
                .http2_keep_alive_interval(options.heartbeat)
                .connect()
                .await
                .map_err(|error| failed(format!("cannot connect: {error}")))?;
            let mut client = AgentClient::with_interceptor(channel, Token(token.clone()));
            let mut fastest = Duration::MAX;
            for _ in 0..3 {
                let sent = Instant::now();
                let hello = client
                    .hello(agent::HelloRequest {})
                    .await
                    .map_err(|status| failed(status.message().to_string()))?;
                fastest = fastest.min(sent.elapsed());
                let hello = hello.into_inner();
                if !hello.busy_with.is_empty() {
                    return Err(failed(format!("busy with {}", hello.busy_with)));
                }
                if hello.version != env!("CARGO_PKG_VERSION") {
                    tracing::warn!(agent = url, version = hello.version, "the agent runs another loadgen version");
                }
            }
            let (commands, outbound) = mpsc::channel(64);
            let inbound = client
                .session(ReceiverStream::new(outbound))
                .await
                .map_err(|status| failed(status.message().to_string()))?
                .into_inner();
            let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            tokio::spawn(listen(index, inbound, heard_tx.clone(), received.clone()));
            tokio::spawn(heartbeats(commands.clone(), options.heartbeat, stop_heartbeats.clone()));
            links.push(Link {
                url: url.clone(),
                received,
                commands,
                half_round_trip: fastest / 2,
                last_heard: Instant::now(),
                lost: None,
                segment: Segment::WHOLE,
            });
        }
        Ok(Self { options, links, heard, names, devices: 0, stop_heartbeats })
    }

    /// The agents' URLs, in segment order.
    pub fn agents(&self) -> Vec<String> {
        self.links.iter().map(|link| link.url.clone()).collect()
    }

    /// Prepares every agent with `args` (loadgen's options for the scenario) and its
    /// segment; waits until all are ready.
    pub async fn prepare(&mut self, args: Vec<String>, stop: &CancellationToken) -> Result<(), ControllerError> {
        let count = self.links.len() as u32;
        let controller = format!("loadgen controller pid {}", std::process::id());
        for (index, link) in self.links.iter_mut().enumerate() {
            link.segment = Segment { index: index as u32, count };
            let prepare = agent::Prepare {
                controller: controller.clone(),
                args: args.clone(),
                segment_index: index as u32,
                segment_count: count,
                heartbeat_timeout_ms: (self.options.heartbeat * 2).as_millis() as u64,
            };
            let _ = link.commands.send(command(command::Command::Prepare(prepare))).await;
        }
        self.devices = self.await_ready(stop).await?;
        Ok(())
    }

    /// Waits until every live agent reports ready (a barrier with a timeout that names
    /// the agent that never came); returns the devices they logged in.
    async fn await_ready(&mut self, stop: &CancellationToken) -> Result<u32, ControllerError> {
        let deadline = Instant::now() + self.options.ready_timeout;
        let mut ready: Vec<bool> = self.links.iter().map(|link| link.lost.is_some()).collect();
        let mut devices = 0;
        while ready.iter().any(|ready| !ready) {
            let heard = tokio::select! {
                heard = self.heard.recv() => heard,
                _ = tokio::time::sleep_until(deadline) => None,
                _ = stop.cancelled() => return Err(ControllerError::Interrupted),
            };
            let Some(heard) = heard else {
                let missing = ready.iter().position(|ready| !ready).unwrap_or(0);
                let agent = self.links[missing].url.clone();
                return Err(ControllerError::NotReady { agent, waited: self.options.ready_timeout });
            };
            match heard {
                Heard::Report(index, report::Report::Ready(agent::Ready { devices: count })) => {
                    ready[index] = true;
                    devices += count;
                }
                Heard::Report(index, report::Report::Failed(agent::Failed { reason })) => {
                    return Err(ControllerError::Agent { agent: self.links[index].url.clone(), detail: reason });
                }
                Heard::Report(index, _) => self.links[index].last_heard = Instant::now(),
                Heard::Gone(index, reason) => {
                    return Err(ControllerError::Agent { agent: self.links[index].url.clone(), detail: reason });
                }
            }
        }
        Ok(devices)
    }

    /// Has every live agent log in its share of the first `devices` devices.
    async fn join_devices(
        &mut self,
        devices: u32,
        login_rate: Option<f64>,
        stop: &CancellationToken,
    ) -> Result<(), ControllerError> {
        let live = self.live().count().max(1) as f64;
        // Each agent logs in its share; together they keep to the rate asked.
        let per_agent = login_rate.map_or(0.0, |rate| rate / live);
        for (_, link) in self.live() {
            let join = agent::Join { devices, login_rate: per_agent };
            let _ = link.commands.send(command(command::Command::Join(join))).await;
        }
        self.devices = self.await_ready(stop).await?;
        Ok(())
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Link)> {
        self.links.iter().enumerate().filter(|(_, link)| link.lost.is_none())
    }

    /// Marks agent `index` lost (once).
    fn lose(&mut self, index: usize, reason: String) {
        let link = &mut self.links[index];
        if link.lost.is_none() {
            tracing::warn!(agent = link.url, reason, "agent lost");
            link.lost = Some(reason);
        }
    }

    async fn run_on_agents(
        &mut self,
        pace: &Pace,
        label: &str,
        run_start: Instant,
        stop: &CancellationToken,
        on_second: &mut OnSecond<'_>,
    ) -> StepOutcome {
        // The schedule's rate per second, for the rows (routines offer what they send).
        let schedule = match pace {
            Pace::Open(schedule) => Some(schedule.clone()),
            Pace::Routines { .. } => None,
            Pace::Users { .. } => {
                // The plan refuses closed-model users with agents; should one get here, it runs nothing.
                tracing::error!("agents run schedules and routines, not closed-model users");
                return StepOutcome {
                    stats: Stats::default(),
                    seconds: Vec::new(),
                    ran: Duration::ZERO,
                    elapsed: Duration::ZERO,
                    interrupted: true,
                    agents: Vec::new(),
                    degraded: false,
                };
            }
        };
        let (pieces, routines) = pace_to_wire(pace);
        // Split the schedule among the agents still here.
        let live: Vec<usize> = self.live().map(|(index, _)| index).collect();
        let count = live.len() as u32;
        let slowest = live.iter().map(|index| self.links[*index].half_round_trip).max().unwrap_or_default();
        let lead = (slowest * 2 + Duration::from_millis(200)).max(Duration::from_millis(250));
        let start = Instant::now() + lead;
        let first_second = start.saturating_duration_since(run_start).as_secs_f64().round() as u64;
        for (position, index) in live.iter().enumerate() {
            let link = &mut self.links[*index];
            link.segment = Segment { index: position as u32, count };
            let step = agent::Step {
                label: label.to_string(),
                pieces: pieces.clone(),
                routines: routines.clone(),
                start_after_us: lead.saturating_sub(link.half_round_trip).as_micros() as u64,
                segment_index: position as u32,
                segment_count: count,
                first_second,
            };
            if link.commands.send(command(command::Command::Step(step))).await.is_err() {
                link.lost = Some("its session closed".into());
            }
        }
        let mut gathering = Gathering::new(label, self.links.iter().map(|link| link.url.clone()).collect());
        let received_before: Vec<u64> =
            self.links.iter().map(|link| link.received.load(std::sync::atomic::Ordering::Relaxed)).collect();
        let mut check = tokio::time::interval(self.options.heartbeat / 2);
        let mut stopping_since: Option<Instant> = None;
        let mut degraded = false;
        loop {
            if live.iter().all(|index| gathering.done.contains_key(index) || self.links[*index].lost.is_some()) {
                break;
            }
            tokio::select! {
                heard = self.heard.recv() => match heard {
                    Some(Heard::Report(index, report)) => {
                        self.links[index].last_heard = Instant::now();
                        match report {
                            report::Report::Second(second) => {
                                if let Some(stats) = second.stats.as_ref().and_then(|s| stats_from_wire(s, self.names).ok()) {
                                    gathering.second(index, second.second, stats);
                                }
                            }
                            report::Report::StepDone(done) => gathering.done(index, done, self.names),
                            report::Report::Failed(agent::Failed { reason }) => self.lose(index, format!("failed: {reason}")),
                            report::Report::Ready(_) | report::Report::Heartbeat(_) => {}
                        }
                    }
                    Some(Heard::Gone(index, reason)) => self.lose(index, reason),
                    None => break,
                },
                _ = check.tick() => {
                    let limit = self.options.heartbeat * 2;
                    for index in live.iter().copied() {
                        if self.links[index].lost.is_none() && self.links[index].last_heard.elapsed() > limit {
                            self.lose(index, format!("silent for more than {limit:?}"));
                        }
                    }
                    if stopping_since.is_some_and(|since| since.elapsed() > self.options.grace) {
                        for index in live.iter().copied().filter(|index| !gathering.done.contains_key(index)) {
                            self.lose(index, "no final report after the stop".into());
                        }
                    }
                }
                _ = stop.cancelled(), if stopping_since.is_none() => {
                    stopping_since = Some(Instant::now());
                    self.stop_all().await;
                }
            }
            if !degraded
                && live.iter().any(|index| self.links[*index].lost.is_some() && !gathering.done.contains_key(index))
            {
                degraded = true;
                if self.options.on_loss == OnAgentLoss::Abort && stopping_since.is_none() {
                    stopping_since = Some(Instant::now());
                    self.stop_all().await;
                }
            }
            gathering.emit_ready_seconds(&live, &self.links, schedule.as_ref(), start, run_start, on_second);
        }
        gathering.emit_all(schedule.as_ref(), start, run_start, on_second);
        let aborted = degraded && self.options.on_loss == OnAgentLoss::Abort;
        let mut outcome = gathering.finish(&live, &self.links, stop.is_cancelled() || aborted, degraded);
        for (share, index) in outcome.agents.iter_mut().zip(&live) {
            let now = self.links[*index].received.load(std::sync::atomic::Ordering::Relaxed);
            share.control_bytes = now.saturating_sub(received_before[*index]);
        }
        outcome
    }

    async fn stop_all(&self) {
        for (_, link) in self.live() {
            let _ = link.commands.send(command(command::Command::Stop(agent::Stop {}))).await;
        }
    }
}

/// A step's reports as they come in.
struct Gathering {
    label: String,
    /// Each agent's name (its URL), by index.
    agent_names: Vec<String>,
    /// second → (merged statistics, each agent that reported it with its part)
    seconds: BTreeMap<u64, (Stats, Vec<(usize, SecondShare)>)>,
    emitted: Vec<SecondRow>,
    next_second: Option<u64>,
    done: BTreeMap<usize, (Stats, agent::StepDone)>,
    trouble: BTreeMap<usize, String>,
}

impl Gathering {
    fn new(label: &str, agent_names: Vec<String>) -> Self {
        Self {
            label: label.to_string(),
            agent_names,
            seconds: BTreeMap::new(),
            emitted: Vec::new(),
            next_second: None,
            done: BTreeMap::new(),
            trouble: BTreeMap::new(),
        }
    }

    fn second(&mut self, agent: usize, second: u64, stats: Stats) {
        if self.next_second.is_some_and(|next| second < next) {
            return; // late: that second was already shown
        }
        let entry = self.seconds.entry(second).or_default();
        if let Err(error) = entry.0.merge(&stats) {
            self.trouble.insert(agent, error);
        }
        entry.1.push((agent, SecondShare::from_stats(&self.agent_names[agent], &stats)));
    }

    fn done(&mut self, agent: usize, done: agent::StepDone, names: &[&'static str]) {
        match done.stats.as_ref().map(|stats| stats_from_wire(stats, names)) {
            Some(Ok(stats)) => {
                self.done.insert(agent, (stats, done));
            }
            Some(Err(error)) => {
                self.trouble.insert(agent, format!("its final report was malformed: {error}"));
                self.done.insert(agent, (Stats::default(), done));
            }
            None => {
                self.done.insert(agent, (Stats::default(), done));
            }
        }
    }

    fn row(
        &self,
        second: u64,
        (stats, shares): &(Stats, Vec<(usize, SecondShare)>),
        schedule: Option<&crate::schedule::Schedule>,
        start: Instant,
        run_start: Instant,
    ) -> SecondRow {
        let step_second = (run_start + Duration::from_secs(second)).saturating_duration_since(start);
        let rate = schedule.map(|schedule| schedule.rate_at(step_second + Duration::from_millis(500)));
        let mut row = SecondRow::from_stats(second, &self.label, rate, stats);
        row.agents = shares.iter().map(|(_, share)| share.clone()).collect();
        row
    }

    /// Shows the seconds every live agent has reported (or that are two seconds old).
    fn emit_ready_seconds(
        &mut self,
        live: &[usize],
        links: &[Link],
        schedule: Option<&crate::schedule::Schedule>,
        start: Instant,
        run_start: Instant,
        on_second: &mut OnSecond<'_>,
    ) {
        let waiting_for: Vec<usize> = live.iter().copied().filter(|index| links[*index].lost.is_none()).collect();
        while let Some((&second, (_, reported))) = self.seconds.iter().next() {
            let complete = waiting_for
                .iter()
                .all(|index| reported.iter().any(|(agent, _)| agent == index) || self.done.contains_key(index));
            let old = self.seconds.keys().next_back().is_some_and(|newest| *newest >= second + 2);
            if !complete && !old {
                break;
            }
            let entry = self.seconds.remove(&second).expect("a first entry");
            let row = self.row(second, &entry, schedule, start, run_start);
            on_second(&row, &entry.0);
            self.emitted.push(row);
            self.next_second = Some(second + 1);
        }
    }

    fn emit_all(
        &mut self,
        schedule: Option<&crate::schedule::Schedule>,
        start: Instant,
        run_start: Instant,
        on_second: &mut OnSecond<'_>,
    ) {
        for (second, entry) in std::mem::take(&mut self.seconds) {
            let row = self.row(second, &entry, schedule, start, run_start);
            on_second(&row, &entry.0);
            self.emitted.push(row);
        }
    }

    fn finish(self, live: &[usize], links: &[Link], interrupted: bool, degraded: bool) -> StepOutcome {
        let mut merged = Stats::default();
        let mut agents = Vec::new();
        let (mut ran, mut elapsed) = (Duration::ZERO, Duration::ZERO);
        for index in live.iter().copied() {
            let link = &links[index];
            let trouble = self.trouble.get(&index).cloned().or_else(|| link.lost.clone());
            let share = match self.done.get(&index) {
                Some((stats, done)) => {
                    if let Err(error) = merged.merge(stats) {
                        tracing::warn!(agent = link.url, error, "an agent's histograms could not be merged");
                    }
                    let agent_ran = Duration::from_micros(done.ran_us);
                    ran = ran.max(agent_ran);
                    elapsed = elapsed.max(Duration::from_micros(done.elapsed_us));
                    AgentShare {
                        agent: link.url.clone(),
                        segment: link.segment.to_string(),
                        offered: stats.offered,
                        completed: stats.completed(),
                        errors: stats.errors(),
                        dropped: stats.dropped,
                        achieved_rate: stats.ok() as f64 / agent_ran.as_secs_f64().max(1e-3),
                        lag_p99_ms: stats
                            .schedule_lag
                            .as_ref()
                            .filter(|lag| !lag.is_empty())
                            .map(|lag| lag.value_at_quantile(0.99) as f64 / 1000.0),
                        corrected_ok: crate::stats::encode(&stats.ok_latency(true)),
                        trouble,
                        control_bytes: 0,
                    }
                }
                None => AgentShare {
                    agent: link.url.clone(),
                    segment: link.segment.to_string(),
                    offered: 0,
                    completed: 0,
                    errors: 0,
                    dropped: 0,
                    achieved_rate: 0.0,
                    lag_p99_ms: None,
                    corrected_ok: String::new(),
                    trouble: trouble.or_else(|| Some("no final report".into())),
                    control_bytes: 0,
                },
            };
            agents.push(share);
        }
        StepOutcome { stats: merged, seconds: self.emitted, ran, elapsed, interrupted, agents, degraded }
    }
}

/// Forwards an agent's reports to the controller's loop; says when the stream ends.
async fn listen(
    index: usize,
    mut inbound: tonic::Streaming<agent::Report>,
    heard: mpsc::Sender<Heard>,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        let message = inbound.message().await;
        if let Ok(Some(report)) = &message {
            received.fetch_add(prost::Message::encoded_len(report) as u64, std::sync::atomic::Ordering::Relaxed);
        }
        match message {
            Ok(Some(agent::Report { report: Some(report) })) => {
                if heard.send(Heard::Report(index, report)).await.is_err() {
                    return;
                }
            }
            Ok(Some(agent::Report { report: None })) => {}
            Ok(None) => {
                let _ = heard.send(Heard::Gone(index, "the agent ended its session".into())).await;
                return;
            }
            Err(status) => {
                let _ = heard.send(Heard::Gone(index, format!("its session broke: {}", status.message()))).await;
                return;
            }
        }
    }
}

async fn heartbeats(commands: mpsc::Sender<Command>, every: Duration, stop: CancellationToken) {
    let mut beat = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = beat.tick() => {
                if commands.send(command(command::Command::Heartbeat(agent::Heartbeat {}))).await.is_err() {
                    return;
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

impl StepRunner for Controller {
    /// The merged results stand for the whole schedule.
    fn share(&self) -> f64 {
        1.0
    }

    fn devices(&self) -> u32 {
        self.devices
    }

    async fn join(&mut self, devices: u32, login_rate: Option<f64>, stop: &CancellationToken) -> Result<(), String> {
        self.join_devices(devices, login_rate, stop).await.map_err(|error| error.to_string())
    }

    fn run_step(
        &mut self,
        pace: &Pace,
        label: &str,
        run_start: Instant,
        stop: &CancellationToken,
        on_second: &mut OnSecond<'_>,
    ) -> impl std::future::Future<Output = StepOutcome> + Send {
        self.run_on_agents(pace, label, run_start, stop, on_second)
    }
}
