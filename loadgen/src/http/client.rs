//! The HTTP client every HTTP scenario uses: requests built once from templates,
//! sent on a lane's own keep-alive connection (a closed-model user, a simulated
//! device) or through a shared pool (the open model), each bounded by the request
//! timeout, each answer read to its end so the connection can be reused.
//!
//! The pool is a stack of idle HTTP/1.1 connections behind a std `Mutex`, held only
//! to push or pop (never across an await). With HTTP/2 a few connections are shared
//! round-robin, each carrying many streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};

use super::connection::{Body, Connector, SendError, Sender, Stream};
use crate::outcome::{ErrorKind, Outcome};

/// Most bytes of an answer kept when the caller wants the body (logins).
const KEPT_BODY_LIMIT: usize = 1 << 20;

/// `User-Agent: loadgen/<version>`, unless the user sets one.
pub fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("loadgen/", env!("CARGO_PKG_VERSION")))
}

/// A request prepared once: method, origin-form URI and headers (`Host`,
/// `User-Agent`, and any the scenario adds). Building a request from it clones the
/// prepared parts instead of parsing and formatting them again.
#[derive(Clone, Debug)]
pub struct Template {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

impl Template {
    pub fn new(method: Method, uri: Uri, host: &HeaderValue) -> Self {
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(header::HOST, host.clone());
        headers.insert(header::USER_AGENT, user_agent());
        Self { method, uri, headers }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The request with `body` (hyper writes `Content-Length` from it).
    pub fn build(&self, body: Bytes) -> Request<Body> {
        self.build_with(body, None)
    }

    /// …plus one more header, for what varies per device (its credential).
    pub fn build_with(&self, body: Bytes, extra: Option<(&HeaderName, &HeaderValue)>) -> Request<Body> {
        let mut request = Request::new(Body::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let mut headers = self.headers.clone();
        if let Some((name, value)) = extra {
            headers.insert(name.clone(), value.clone());
        }
        *request.headers_mut() = headers;
        request
    }
}

/// A pooled or per-lane HTTP client for one target.
pub struct HttpClient {
    connector: Arc<Connector>,
    timeout: Duration,
    pool: Pool,
}

enum Pool {
    /// Idle HTTP/1.1 connections, last in first out (the warmest first).
    Stack(Mutex<Vec<Sender>>),
    /// HTTP/2 connections shared round-robin, opened on first use.
    Shared { slots: Vec<Mutex<Option<Sender>>>, next: AtomicUsize },
}

impl HttpClient {
    /// `http2_connections` is how many HTTP/2 connections the pool shares (ignored
    /// for HTTP/1.1, where the pool grows to the number of requests in flight).
    pub fn new(connector: Arc<Connector>, timeout: Duration, http2_connections: usize) -> Self {
        let pool = if connector.http2() {
            Pool::Shared {
                slots: (0..http2_connections.max(1)).map(|_| Mutex::new(None)).collect(),
                next: AtomicUsize::new(0),
            }
        } else {
            Pool::Stack(Mutex::new(Vec::new()))
        };
        Self { connector, timeout, pool }
    }

    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Sends `request` on `own` (a lane's connection, opened when absent) or through
    /// the pool, within the timeout; reads the whole answer. The body is returned only
    /// when `keep_body`.
    pub async fn send(
        &self,
        request: Request<Body>,
        own: Option<&mut Option<Sender>>,
        keep_body: bool,
    ) -> (Outcome, Bytes) {
        match own {
            Some(slot) => {
                let exchanged = tokio::time::timeout(self.timeout, self.on_own(slot, request, keep_body)).await;
                match exchanged {
                    Ok(result) => result,
                    Err(_) => {
                        *slot = None; // its state is unknown: start afresh
                        (Outcome::Error(ErrorKind::Timeout), Bytes::new())
                    }
                }
            }
            None => tokio::time::timeout(self.timeout, self.pooled(request, keep_body))
                .await
                .unwrap_or((Outcome::Error(ErrorKind::Timeout), Bytes::new())),
        }
    }

    async fn on_own(&self, slot: &mut Option<Sender>, request: Request<Body>, keep_body: bool) -> (Outcome, Bytes) {
        let reused = slot.as_ref().is_some_and(|sender| !sender.is_closed());
        if !reused {
            // Boxed: connecting (TLS above all) is most of a request future's size, and
            // it happens once per connection, while the future is moved on every request.
            match Box::pin(self.connector.connect()).await {
                Ok(sender) => *slot = Some(sender),
                Err(kind) => {
                    *slot = None;
                    return (Outcome::Error(kind), Bytes::new());
                }
            }
        }
        let result = match slot.take() {
            Some(Sender::Parked(stream)) => {
                let (result, stream) = Box::pin(self.on_parked(stream, request, keep_body)).await;
                *slot = stream.map(Sender::Parked);
                result
            }
            Some(mut sender) => {
                let result = exchange(&mut sender, request, keep_body).await;
                *slot = Some(sender);
                result
            }
            None => Err(SendError { kind: ErrorKind::Transport, unsent: None }),
        };
        match result {
            Ok((outcome, body, keep)) => {
                if !keep {
                    *slot = None;
                }
                (outcome, body)
            }
            // A kept-alive connection the server closed while idle: the request never
            // left, so it goes once more on a fresh connection.
            Err(failure) if reused && failure.unsent.is_some() => {
                *slot = None;
                let request = failure.unsent.expect("checked");
                Box::pin(self.on_own(slot, request, keep_body)).await
            }
            Err(failure) => {
                *slot = None;
                (Outcome::Error(failure.kind), Bytes::new())
            }
        }
    }

    /// One exchange on a parked connection: HTTP/1.1 set up on its stream, the
    /// connection driven here beside the request (no task of its own), and the stream
    /// parked again once the answer is read, unless either side is closing it.
    async fn on_parked(
        &self,
        stream: Box<Stream>,
        request: Request<Body>,
        keep_body: bool,
    ) -> (Result<(Outcome, Bytes, bool), SendError>, Option<Box<Stream>>) {
        let (sender, connection) = match self.connector.unpark(stream).await {
            Ok(parts) => parts,
            Err(kind) => return (Err(SendError { kind, unsent: Some(request) }), None),
        };
        let mut sender = Sender::Http1(sender);
        let exchanged = async move {
            let result = exchange(&mut sender, request, keep_body).await;
            drop(sender); // so the connection gives its stream back
            result
        };
        let (result, parts) = tokio::join!(exchanged, connection.without_shutdown());
        let keep = matches!(result, Ok((_, _, true)));
        let stream =
            parts.ok().filter(|parts| keep && parts.read_buf.is_empty()).map(|parts| Box::new(parts.io.into_inner()));
        (result, stream)
    }

    async fn pooled(&self, request: Request<Body>, keep_body: bool) -> (Outcome, Bytes) {
        match &self.pool {
            Pool::Stack(idle) => {
                let taken = lock(idle).pop();
                let mut slot = taken.filter(|sender| !sender.is_closed());
                let result = self.on_own(&mut slot, request, keep_body).await;
                if let Some(sender) = slot {
                    lock(idle).push(sender);
                }
                result
            }
            Pool::Shared { slots, next } => {
                let index = next.fetch_add(1, Ordering::Relaxed) % slots.len();
                let shared = lock(&slots[index]).as_ref().filter(|s| !s.is_closed()).and_then(Sender::clone_shared);
                let mut slot = shared;
                let result = self.on_own(&mut slot, request, keep_body).await;
                if let Some(sender) = slot {
                    let mut kept = lock(&slots[index]);
                    if kept.as_ref().is_none_or(Sender::is_closed) {
                        *kept = Some(sender);
                    }
                }
                result
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends and reads the answer to its end. `Ok` carries the outcome, the body (when
/// kept) and whether the connection may carry another request.
async fn exchange(
    sender: &mut Sender,
    request: Request<Body>,
    keep_body: bool,
) -> Result<(Outcome, Bytes, bool), SendError> {
    let response = sender.send(request).await?;
    let status = response.status();
    let closing =
        response.headers().get(header::CONNECTION).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"))
            || response.version() == hyper::Version::HTTP_10;
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if keep_body
                    && let Some(data) = frame.data_ref()
                    && kept.len() + data.len() <= KEPT_BODY_LIMIT
                {
                    kept.extend_from_slice(data);
                }
            }
            Err(error) => {
                return Ok((Outcome::Error(super::connection::classify_hyper(&error)), Bytes::new(), false));
            }
        }
    }
    Ok((Outcome::http(status.as_u16()), Bytes::from(kept), !closing))
}
