//! `loadgen agent`: one load-generator host, driven by a controller
//! ([`crate::controller`]) over gRPC. It serves one controller at a time (a second
//! one is refused while it is busy), checks the shared token on every call, and never
//! runs unsupervised: when its controller goes quiet for the heartbeat timeout, or
//! its session breaks, it stops what it is doing.

mod session;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use loadlab_proto::agent::agent_server::{Agent, AgentServer};
use loadlab_proto::agent::{Command, HelloReply, HelloRequest, Report};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::wire::{AUTHORIZATION, bearer};

/// Reports queued for the controller; a second's report a second, so the queue is
/// full only when the controller stopped reading.
const REPORT_QUEUE: usize = 256;

/// What an agent is told at start, by its own host.
#[derive(Clone, Debug, Default)]
pub struct AgentConfig {
    pub token: String,
    /// This host's addresses to connect from, whatever the controller asks.
    pub source_addresses: Vec<std::net::IpAddr>,
}

/// The gRPC service.
pub struct AgentService {
    /// `Bearer <token>`, as every call must carry it.
    expected: String,
    config: AgentConfig,
    /// The controller being served, if any.
    busy: Arc<Mutex<Option<String>>>,
}

impl AgentService {
    pub fn new(config: AgentConfig) -> Self {
        Self { expected: bearer(&config.token), config, busy: Arc::default() }
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let given = request.metadata().get(AUTHORIZATION).and_then(|value| value.to_str().ok());
        // Compared in full: a token is short, and a timing side channel on loopback or a
        // lab network is not the threat here.
        if given == Some(self.expected.as_str()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("wrong or missing token"))
        }
    }
}

/// The claim on the agent: released when the session ends, however it ends.
pub(crate) struct Claim(Arc<Mutex<Option<String>>>);

impl Claim {
    fn name(&self, controller: &str) {
        *lock(&self.0) = Some(controller.to_string());
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        self.check(&request)?;
        let busy_with = lock(&self.busy).clone().unwrap_or_default();
        Ok(Response::new(HelloReply { version: env!("CARGO_PKG_VERSION").into(), busy_with }))
    }

    type SessionStream = ReceiverStream<Result<Report, Status>>;

    async fn session(&self, request: Request<Streaming<Command>>) -> Result<Response<Self::SessionStream>, Status> {
        self.check(&request)?;
        let peer = request
            .remote_addr()
            .map_or_else(|| "a controller".to_string(), |addr| format!("the controller at {addr}"));
        let claim = {
            let mut busy = lock(&self.busy);
            if let Some(other) = busy.as_ref() {
                return Err(Status::failed_precondition(format!("busy with {other}")));
            }
            *busy = Some(peer.clone());
            Claim(self.busy.clone())
        };
        let (reports, outbound) = mpsc::channel(REPORT_QUEUE);
        tokio::spawn(session::run(request.into_inner(), reports, claim, self.config.source_addresses.clone()));
        Ok(Response::new(ReceiverStream::new(outbound)))
    }
}

/// Serves the agent on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(5)))
        .add_service(AgentServer::new(AgentService::new(config)))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await
}

/// Where an agent listens by default: loopback (give the lab network's address to
/// serve a controller on another host).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 8091));
