//! HTTP on hyper directly: a keep-alive connection pool (HTTP/1.1, or h2c with
//! prior knowledge) for the open model, a dedicated keep-alive connection per user
//! for the closed model (each simulated device its own connection, as real devices
//! have), and the `http` scenario, one fixed request for arbitrary targets and
//! benchmarks.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::stats::Outcome;

/// A pooled HTTP client with a per-request timeout. Connections are opened as needed
/// and kept alive; the engine's in-flight cap bounds how many there are.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    pub fn new(timeout: Duration, h2c: bool) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .http2_only(h2c)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Self { client, timeout }
    }

    /// Sends `request` on `connection` when given (a user's own), else through the
    /// pool; reads the whole answer and classifies it. Returns the body too, for
    /// callers that need it (login).
    pub async fn send_on(
        &self,
        connection: Option<&mut UserConnection>,
        request: Request<Full<Bytes>>,
    ) -> (Outcome, Bytes) {
        match connection {
            Some(connection) => {
                let outcome = tokio::time::timeout(self.timeout, connection.send(request)).await;
                match outcome {
                    Err(_) => {
                        connection.sender = None; // its state is unknown: start afresh
                        (Outcome::Error("timeout".into()), Bytes::new())
                    }
                    Ok(Err(error)) => {
                        connection.sender = None;
                        (Outcome::Error(classify(&*error)), Bytes::new())
                    }
                    Ok(Ok((status, body))) if status.is_success() || status.is_redirection() => (Outcome::Ok, body),
                    Ok(Ok((status, body))) => (Outcome::Status(status.as_u16()), body),
                }
            }
            None => self.send(request).await,
        }
    }

    /// Sends `request` through the pool; reads and classifies the answer.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> (Outcome, Bytes) {
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => (Outcome::Error("timeout".into()), Bytes::new()),
            Ok(Err(error)) => (Outcome::Error(classify(&*error)), Bytes::new()),
            Ok(Ok((status, body))) if status.is_success() || status.is_redirection() => (Outcome::Ok, body),
            Ok(Ok((status, body))) => (Outcome::Status(status.as_u16()), body),
        }
    }
}

/// A short, stable label for a transport error.
fn classify(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string().to_ascii_lowercase();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push(' ');
        text.push_str(&inner.to_string().to_ascii_lowercase());
        source = inner.source();
    }
    if text.contains("refused") {
        "connect_refused".into()
    } else if text.contains("connect") || text.contains("dns") {
        "connect_error".into()
    } else if text.contains("reset")
        || text.contains("closed")
        || text.contains("broken pipe")
        || text.contains("incomplete")
    {
        "connection_lost".into()
    } else {
        "transport_error".into()
    }
}

/// The `http` scenario: the same request every time.
pub struct HttpScenario {
    pub client: HttpClient,
    pub method: Method,
    pub uri: Uri,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpScenario {
    pub async fn execute(&self, connection: Option<&mut UserConnection>) -> Outcome {
        let mut builder = Request::builder().method(self.method.clone()).uri(self.uri.clone());
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        match builder.body(Full::new(self.body.clone())) {
            Ok(request) => self.client.send_on(connection, request).await.0,
            Err(_) => Outcome::Error("invalid_request".into()),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One user's own HTTP/1.1 keep-alive connection, opened on first use and again
/// after any failure.
#[derive(Default)]
pub struct UserConnection {
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl UserConnection {
    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<(hyper::StatusCode, Bytes), BoxError> {
        if self.sender.as_ref().is_none_or(|sender| sender.is_closed()) {
            let authority = request.uri().authority().ok_or("request URI has no host")?.to_string();
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
