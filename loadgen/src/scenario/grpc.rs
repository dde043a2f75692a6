//! The `grpc` scenario: one of grpc-stress's four RPC kinds per request, over a few
//! long-lived HTTP/2 connections shared round-robin (gRPC multiplexes calls on a
//! connection). A connection is opened on first use and again when it has ended, and
//! replaced after `--grpc-calls-per-connection` calls when that is set, to exercise
//! connection set-up too. Calls go straight onto the connection
//! ([`loadlab_proto::connect::Connection`], no buffer task in between).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use loadlab_proto::calls::{CallKind, call, stub_on};
use loadlab_proto::connect::{Connection, Target};

use crate::outcome::{ErrorKind, Outcome};

pub struct GrpcScenario {
    target: Target,
    kind: CallKind,
    calls_per_connection: Option<u64>,
    /// One slot per connection: the connection (once open) and the calls made on it.
    /// A std `Mutex`: held to clone a handle, never across a call or a connect.
    connections: Vec<Mutex<Option<(Connection, u64)>>>,
    next: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcSetupError {
    #[error(transparent)]
    Target(#[from] loadlab_proto::connect::ConnectError),
}

impl GrpcScenario {
    pub fn new(
        target: Target,
        kind: CallKind,
        connections: usize,
        calls_per_connection: Option<u64>,
    ) -> Result<Self, GrpcSetupError> {
        let connections = (0..connections.max(1)).map(|_| Mutex::new(None)).collect();
        Ok(Self { target, kind, calls_per_connection, connections, next: AtomicU64::new(0) })
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
        let slot =
            &self.connections[(self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len() as u64) as usize];
        let kept = {
            let mut slot = lock(slot);
            let usable = slot.as_ref().is_some_and(|(connection, calls)| {
                !connection.is_closed() && self.calls_per_connection.is_none_or(|limit| *calls < limit)
            });
            if !usable {
                *slot = None;
            }
            slot.as_mut().map(|(connection, calls)| {
                *calls += 1;
                connection.clone()
            })
        };
        let connection = match kept {
            Some(connection) => connection,
            None => match self.target.connect().await {
                Ok(fresh) => {
                    let mut slot = lock(slot);
                    if slot.is_none() {
                        *slot = Some((fresh.clone(), 1));
                    }
                    fresh
                }
                Err(error) => return Outcome::Error(connect_failure(&error)),
            },
        };
        match call(&mut stub_on(connection, None), self.kind).await {
            Ok(_) => Outcome::Ok,
            Err(status) => Outcome::grpc(status.code() as i32),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a failed connect is counted, as the HTTP scenarios count theirs.
fn connect_failure(error: &loadlab_proto::connect::OpenError) -> ErrorKind {
    use loadlab_proto::connect::OpenError;
    match error {
        OpenError::Tcp(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        OpenError::Tcp(error) if error.kind() == std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        OpenError::Tcp(_) | OpenError::Origin => ErrorKind::ConnectError,
        OpenError::Tls(_) => ErrorKind::Tls,
        OpenError::Http2(_) => ErrorKind::Protocol,
    }
}
