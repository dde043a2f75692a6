//! Opening a gRPC channel: one HTTP/2 connection per channel, plain or TLS. TLS is
//! done here with rustls ([`crate::tls`]) rather than by tonic, because
//! `--no-server-validation` needs a verifier tonic does not offer.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::either::Either;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::tls::{TlsError, Trust, client_config, load_ca};

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

    /// Opens a new connection (a fresh channel, never a pooled one).
    pub async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        self.endpoint()?.connect_with_connector(self.connector()).await
    }

    /// A channel that connects on first use and reconnects by itself after a failure
    /// (for load generators that keep a few channels for a whole run).
    pub fn connect_lazy(&self) -> Result<Channel, tonic::transport::Error> {
        Ok(self.endpoint()?.connect_with_connector_lazy(self.connector()))
    }

    fn endpoint(&self) -> Result<Endpoint, tonic::transport::Error> {
        Ok(Endpoint::from_shared(format!("http://{}", self.authority))?
            .connect_timeout(std::time::Duration::from_secs(5)))
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
