//! Opening a gRPC channel: one HTTP/2 connection per channel, plain or TLS. TLS is
//! done here with rustls rather than by tonic, because `--no-server-validation` needs
//! a verifier tonic does not offer.

use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::either::Either;
use tonic::transport::{Channel, Endpoint, Uri};

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
        Err(ConnectError::Ca { detail, .. }) => Err(format!("{detail} (a PEM file of CA certificates)")),
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| ConnectError::Tls(error.to_string()))?;
    let mut config = if trust.no_server_validation {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &trust.ca {
            for certificate in load_ca(path)? {
                roots
                    .add(certificate)
                    .map_err(|error| ConnectError::Ca { path: path.clone(), detail: error.to_string() })?;
            }
        }
        if trust.system_roots {
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
        }
        if roots.is_empty() {
            return Err(ConnectError::NoTrust);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file; at least one.
fn load_ca(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let failed = |detail: String| ConnectError::Ca { path: path.to_path_buf(), detail };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| failed(error.to_string()))?;
    if certificates.is_empty() {
        return Err(failed("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// `--no-server-validation`: any certificate is accepted (signatures are still
/// checked, so the handshake itself is real).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
