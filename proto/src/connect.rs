//! Opening gRPC connections, plain or TLS. TLS is done here with rustls
//! ([`crate::tls`]) rather than by tonic, because `--no-server-validation` needs a
//! verifier tonic does not offer.
//!
//! Two kinds: [`Target::connect`] opens one HTTP/2 [`Connection`] that calls go
//! straight onto (see [`crate::connection`]), for a client that owns its connection
//! and reconnects itself; [`Target::connect_lazy`]
//! makes a tonic `Channel`, which connects on first use and reconnects by itself but
//! queues every call through a buffer task (a hand-over each way per call: a quarter
//! of grpc-stress client's unary rate went there).

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::either::Either;
use tonic::transport::{Channel, Endpoint, Uri};

pub use crate::connection::Connection;
use crate::tls::{TlsError, Trust, client_config, load_ca};

/// The longest a TCP connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("TCP connect: {0}")]
    Tcp(std::io::Error),
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("HTTP/2 handshake: {0}")]
    Http2(h2::Error),
    #[error("the target is not a valid origin")]
    Origin,
}

/// Where to connect and how.
#[derive(Clone)]
pub struct Target {
    /// host:port to dial.
    authority: String,
    /// The name checked against the server certificate (and sent as SNI).
    server_name: ServerName<'static>,
    tls: Option<TlsConnector>,
}

/// How to trust the server, when the target is `https://`.
#[derive(Clone, Debug, Default)]
pub struct TrustOptions {
    pub ca: Option<PathBuf>,
    pub system_roots: bool,
    pub no_server_validation: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid target `{0}`: use http://host:port or https://host:port")]
    Target(String),
    #[error("reading CA file {path}: {detail}")]
    Ca { path: PathBuf, detail: String },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("https target needs a trust source: --ca FILE, --system-roots or --no-server-validation")]
    NoTrust,
}

/// A target's parts: whether it is TLS, host and port, and the name its certificate
/// must carry.
struct Parsed {
    secure: bool,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
}

fn parse(target: &str) -> Result<Parsed, ConnectError> {
    let invalid = || ConnectError::Target(target.into());
    let uri: Uri = target.parse().map_err(|_| invalid())?;
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(_) => return Err(invalid()),
    };
    let host = uri.host().ok_or_else(invalid)?.to_string();
    let port = uri.port_u16().ok_or_else(invalid)?;
    let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_string()).map_err(|_| invalid())?;
    Ok(Parsed { secure, host, port, server_name })
}

/// `--target`: an http:// or https:// URL with a host and a port.
pub fn parse_target(text: &str) -> Result<String, String> {
    parse(text).map(|_| text.to_string()).map_err(|_| "use http://host:port or https://host:port".to_string())
}

/// `--ca`: a readable PEM file with at least one certificate.
pub fn parse_ca(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match load_ca(&path) {
        Ok(_) => Ok(path),
        Err(TlsError::Ca { detail, .. }) => Err(format!("{detail} (a PEM file of CA certificates)")),
        Err(other) => Err(other.to_string()),
    }
}

/// Whether `target` (already valid) is an https:// target.
pub fn is_secure(target: &str) -> bool {
    parse(target).is_ok_and(|parsed| parsed.secure)
}

impl Target {
    pub fn new(target: &str, trust: &TrustOptions) -> Result<Self, ConnectError> {
        let Parsed { secure, host, port, server_name } = parse(target)?;
        let tls = secure.then(|| tls_connector(trust)).transpose()?;
        Ok(Self { authority: format!("{host}:{port}"), server_name, tls })
    }

    /// Opens a new HTTP/2 connection (TCP within [`CONNECT_TIMEOUT`], TLS when the
    /// target is https://, then the HTTP/2 handshake).
    pub async fn connect(&self) -> Result<Connection, OpenError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| OpenError::Tcp(std::io::ErrorKind::TimedOut.into()))?
            .map_err(OpenError::Tcp)?;
        tcp.set_nodelay(true).map_err(OpenError::Tcp)?;
        let stream = match &self.tls {
            Some(tls) => Either::Left(tls.connect(self.server_name.clone(), tcp).await.map_err(OpenError::Tls)?),
            None => Either::Right(tcp),
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let origin = format!("{scheme}://{}", self.authority).parse().map_err(|_| OpenError::Origin)?;
        Connection::handshake(stream, origin).await.map_err(OpenError::Http2)
    }

    /// A channel that connects on first use and reconnects by itself after a failure
    /// (for load generators that keep a few channels for a whole run).
    pub fn connect_lazy(&self) -> Result<Channel, tonic::transport::Error> {
        Ok(self.endpoint()?.connect_with_connector_lazy(self.connector()))
    }

    fn endpoint(&self) -> Result<Endpoint, tonic::transport::Error> {
        Ok(Endpoint::from_shared(format!("http://{}", self.authority))?.connect_timeout(CONNECT_TIMEOUT))
    }

    fn connector(
        &self,
    ) -> impl tower::Service<
        Uri,
        Response = TokioIo<Either<tokio_rustls::client::TlsStream<TcpStream>, TcpStream>>,
        Error = std::io::Error,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let target = self.clone();
        tower::service_fn(move |_: Uri| {
            let target = target.clone();
            async move {
                let tcp = TcpStream::connect(&target.authority).await?;
                tcp.set_nodelay(true)?;
                let stream = match &target.tls {
                    Some(tls) => Either::Left(tls.connect(target.server_name.clone(), tcp).await?),
                    None => Either::Right(tcp),
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        })
    }
}

fn tls_connector(trust: &TrustOptions) -> Result<TlsConnector, ConnectError> {
    let trust = Trust { ca: trust.ca.clone(), system_roots: trust.system_roots, insecure: trust.no_server_validation };
    let config = client_config(&trust, &[b"h2"]).map_err(|error| match error {
        TlsError::Ca { path, detail } => ConnectError::Ca { path, detail },
        TlsError::NoTrust => ConnectError::NoTrust,
        TlsError::Setup(detail) => ConnectError::Tls(detail),
    })?;
    Ok(TlsConnector::from(config))
}
