//! The HTTP/1.1 transport under the router: accepting connections, capping them, and
//! closing the ones a client leaves hanging.
//!
//! `axum::serve` has no timeouts and no cap, so a socket that never sends, a head sent
//! a byte at a time, a body that trickles or an idle keep-alive would hold a file
//! descriptor for ever. Here each connection is served by hyper's HTTP/1 connection
//! inside a task that also watches it ([`activity`]):
//!
//! - `--header-read-timeout`: a request head must be complete this long after the
//!   connection was accepted (first request) or after its first byte (later ones);
//! - `--keep-alive-timeout`: an idle connection is closed this long after its last
//!   response;
//! - `--body-read-timeout`: a body must be complete this long after its head
//!   ([`body::TimedBody`]); a route reading it then answers 408;
//! - `--max-connections`: each connection holds a semaphore permit; with none left a
//!   new connection is answered 503 at once and closed.
//!
//! A connection that misses a head or keep-alive deadline is dropped: the socket is
//! closed without an answer, as HTTP allows for a request that never arrived.
//! Graceful shutdown stops accepting, lets every connection finish the request it is
//! serving, and returns when the last one has closed (all permits are back).

mod activity;
mod body;
mod io;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use body::BodyReadTimeout;

use crate::http::ApiError;
use crate::metrics as names;
use activity::{Activity, PhaseTimeouts};

/// The limits on client connections, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: u32,
}

/// How long a refused connection is kept to let the client read its 503 (closing a
/// socket with unread input resets it, and the client could lose the answer).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Refused connections lingering at once; past that a refusal is written and closed
/// at once, so a flood of connections cannot hold descriptors through refusals.
const REFUSALS_LINGERING: usize = 64;
/// Pause after an accept error that is not the client's (out of descriptors, say),
/// so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let lingering = Arc::new(Semaphore::new(REFUSALS_LINGERING));
    let draining = CancellationToken::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // Our own watchdog keeps the head deadline (see `activity`): hyper's would also
    // count the idle time of a kept-alive connection.
    http.timer(TokioTimer::new()).header_read_timeout(None);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if !is_connection_error(&error) {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!(names::CONNECTIONS_REFUSED).increment(1);
            tokio::spawn(refuse(stream, limits.max_connections, lingering.clone().try_acquire_owned().ok()));
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, router.clone(), http.clone(), limits, draining.clone(), permit));
    }
    drop(listener);
    draining.cancel();
    // Every connection holds one permit until it has closed.
    let _all_closed = permits.acquire_many(limits.max_connections).await;
}

/// Errors of one incoming connection (it went away before we took it), not of the
/// listener.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// One connection, from accept to close.
async fn connection(
    stream: TcpStream,
    router: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    limits: ConnectionLimits,
    draining: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let _open = OpenConnection::count();
    let timeouts = PhaseTimeouts { header_read: limits.header_read_timeout, keep_alive: limits.keep_alive_timeout };
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(io::Watched::new(stream, activity.clone()));
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = activity.dispatch();
            let request =
                request.map(|body| axum::body::Body::new(body::TimedBody::new(body, limits.body_read_timeout)));
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| axum::body::Body::new(body::Finished::new(body, in_flight))),
                )
            }
        })
    };
    let served = http.serve_connection(io, service);
    tokio::pin!(served);
    let mut shutting_down = false;
    loop {
        let deadline = activity.deadline(timeouts);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = draining.cancelled(), if !shutting_down => {
                served.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            () = activity.became_idle() => {}
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                if let Some(expired) = activity.expired(Instant::now(), timeouts) {
                    tracing::debug!(phase = expired.as_str(), "closing a connection that ran out of time");
                    metrics::counter!(names::CONNECTION_TIMEOUTS, "phase" => expired.as_str()).increment(1);
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// Answers a connection over the cap with a JSON 503 and closes it.
async fn refuse(mut stream: TcpStream, limit: u32, linger: Option<OwnedSemaphorePermit>) {
    let answer = ApiError::TooManyConnections { limit }.to_http1();
    if linger.is_none() {
        let _ = stream.try_write(&answer);
        return;
    }
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        // Read what the client sends until it closes, so that closing does not reset
        // the connection before the client has read the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Counts an open connection until dropped.
struct OpenConnection;

impl OpenConnection {
    fn count() -> Self {
        metrics::gauge!(names::CONNECTIONS_OPEN).increment(1.0);
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(names::CONNECTIONS_OPEN).decrement(1.0);
    }
}
