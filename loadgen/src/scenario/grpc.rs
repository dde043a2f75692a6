//! The `grpc` scenario: one of grpc-stress's four RPC kinds per request, over a few
//! long-lived HTTP/2 connections shared round-robin (gRPC multiplexes calls on a
//! connection). Each connection is replaced after `--grpc-calls-per-connection` calls
//! when that is set, to exercise connection set-up too.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use loadlab_proto::calls::{CallKind, call, stub};
use loadlab_proto::connect::Target;
use tonic::transport::Channel;

use crate::outcome::Outcome;

pub struct GrpcScenario {
    target: Target,
    kind: CallKind,
    calls_per_connection: Option<u64>,
    /// One slot per connection: the channel and the calls made on it. A std `Mutex`:
    /// held to clone a channel handle, never across a call.
    channels: Vec<Mutex<(Channel, u64)>>,
    next: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcSetupError {
    #[error(transparent)]
    Target(#[from] loadlab_proto::connect::ConnectError),
    #[error("channel set-up: {0}")]
    Channel(#[from] tonic::transport::Error),
}

impl GrpcScenario {
    pub fn new(
        target: Target,
        kind: CallKind,
        connections: usize,
        calls_per_connection: Option<u64>,
    ) -> Result<Self, GrpcSetupError> {
        let channels = (0..connections.max(1))
            .map(|_| Ok(Mutex::new((target.connect_lazy()?, 0))))
            .collect::<Result<Vec<_>, GrpcSetupError>>()?;
        Ok(Self { target, kind, calls_per_connection, channels, next: AtomicU64::new(0) })
    }

    pub fn requests(&self) -> &'static [&'static str] {
        match self.kind {
            CallKind::NonStreaming => &["non-streaming"],
            CallKind::ClientStreaming(_) => &["client-streaming"],
            CallKind::ServerStreaming(_) => &["server-streaming"],
            CallKind::BidiStreaming(_) => &["bidi-streaming"],
        }
    }

    pub async fn execute(&self) -> Outcome {
        let slot = &self.channels[(self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len() as u64) as usize];
        let channel = {
            let mut slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if self.calls_per_connection.is_some_and(|limit| slot.1 >= limit)
                && let Ok(fresh) = self.target.connect_lazy()
            {
                *slot = (fresh, 0);
            }
            slot.1 += 1;
            slot.0.clone()
        };
        match call(&mut stub(channel, None), self.kind).await {
            Ok(_) => Outcome::Ok,
            Err(status) => Outcome::grpc(status.code() as i32),
        }
    }
}
