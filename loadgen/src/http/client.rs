//! The HTTP client every HTTP scenario uses: requests prepared once as templates,
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

use super::connection::{Body, Connector, SendError, Sender};
use super::h1::{Exchanged, Outgoing, keep_prefix};
use crate::outcome::{ErrorKind, Outcome};

/// `User-Agent: loadgen/<version>`, unless the user sets one.
pub fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("loadgen/", env!("CARGO_PKG_VERSION")))
}

/// A request prepared once: method, origin-form URI and headers (`Host`,
/// `User-Agent`, and any the scenario adds). HTTP/1.1 requests are written from its
/// head, encoded once; HTTP/2 requests are built from its parts.
#[derive(Clone, Debug)]
pub struct Template {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// `METHOD /target HTTP/1.1\r\n` and every header line, without the blank line.
    head: Vec<u8>,
}

impl Template {
    pub fn new(method: Method, uri: Uri, host: &HeaderValue) -> Self {
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(header::HOST, host.clone());
        headers.insert(header::USER_AGENT, user_agent());
        Self { method, uri, headers, head: Vec::new() }.encoded()
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self.encoded()
    }

    fn encoded(mut self) -> Self {
        let target = self.uri.path_and_query().map_or("/", |target| target.as_str());
        let mut head = format!("{} {target} HTTP/1.1\r\n", self.method).into_bytes();
        for (name, value) in &self.headers {
            header_line(&mut head, name, value);
        }
        self.head = head;
        self
    }

    /// Whether the answer carries no body whatever its headers say (RFC 9112 §6.3).
    pub fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// The HTTP/1.1 request with `body` and `extra`, written into `out`.
    /// `Content-Length` goes with every body, and with an empty one for methods that
    /// carry a body (hyper's rule too).
    pub fn encode(&self, body: &[u8], extra: Option<(&HeaderName, &HeaderValue)>, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        if let Some((name, value)) = extra {
            header_line(out, name, value);
        }
        if !body.is_empty() || matches!(self.method, Method::POST | Method::PUT | Method::PATCH) {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// The HTTP/2 request with `body` and `extra` (hyper writes `content-length`).
    pub fn request(&self, body: Bytes, extra: Option<(&HeaderName, &HeaderValue)>) -> Request<Body> {
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

/// `name: value\r\n`.
fn header_line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
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
        request: Outgoing<'_>,
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

    async fn on_own(&self, slot: &mut Option<Sender>, request: Outgoing<'_>, keep_body: bool) -> (Outcome, Bytes) {
        let reused = slot.as_mut().is_some_and(|sender| !sender.is_closed());
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
        let result = match slot.as_mut() {
            Some(Sender::Http1(http1)) => http1.exchange(request, keep_body).await,
            Some(sender) => {
                let http2 = request.template.request(request.body.clone(), request.extra);
                read_answer(sender.send(http2), keep_body).await
            }
            None => Err(SendError { kind: ErrorKind::Transport, retry: false }),
        };
        match result {
            Ok((outcome, body, keep)) => {
                if !keep {
                    *slot = None;
                }
                (outcome, body)
            }
            // A kept-alive connection the server closed while idle: the request goes
            // once more, on a fresh connection.
            Err(failure) if reused && failure.retry => {
                *slot = None;
                Box::pin(self.on_own(slot, request, keep_body)).await
            }
            Err(failure) => {
                *slot = None;
                (Outcome::Error(failure.kind), Bytes::new())
            }
        }
    }

    async fn pooled(&self, request: Outgoing<'_>, keep_body: bool) -> (Outcome, Bytes) {
        match &self.pool {
            Pool::Stack(idle) => {
                let mut slot = lock(idle).pop();
                if slot.as_mut().is_some_and(Sender::is_closed) {
                    slot = None;
                }
                let result = self.on_own(&mut slot, request, keep_body).await;
                if let Some(sender) = slot {
                    lock(idle).push(sender);
                }
                result
            }
            Pool::Shared { slots, next } => {
                let index = next.fetch_add(1, Ordering::Relaxed) % slots.len();
                let mut slot =
                    lock(&slots[index]).as_mut().and_then(|s| if s.is_closed() { None } else { s.clone_shared() });
                let result = self.on_own(&mut slot, request, keep_body).await;
                if let Some(sender) = slot {
                    let mut kept = lock(&slots[index]);
                    if kept.as_mut().is_none_or(Sender::is_closed) {
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

/// Sends on HTTP/2 (by awaiting `send`) and reads the answer to its end.
async fn read_answer(
    send: impl std::future::Future<Output = Result<hyper::Response<hyper::body::Incoming>, SendError>>,
    keep_body: bool,
) -> Result<Exchanged, SendError> {
    let response = send.await?;
    let status = response.status();
    let closing =
        response.headers().get(header::CONNECTION).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"))
            || response.version() == hyper::Version::HTTP_10;
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if keep_body && let Some(data) = frame.data_ref() {
                    keep_prefix(&mut kept, data);
                }
            }
            Err(error) => {
                return Ok((Outcome::Error(super::connection::classify_hyper(&error)), Bytes::new(), false));
            }
        }
    }
    Ok((Outcome::http(status.as_u16()), Bytes::from(kept), !closing))
}
