//! How a client trusts a server: the system's roots, the CA certificates of a PEM
//! file, both, or nothing at all (`insecure`: any certificate is accepted, for
//! throw-away test servers). One rustls client configuration for every TLS client of
//! the workspace: loadgen's HTTP, loadgen's and grpc-stress's gRPC.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where the trust in the server's certificate comes from.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// The CA certificates in this PEM file.
    pub ca: Option<PathBuf>,
    /// The operating system's roots.
    pub system_roots: bool,
    /// None: any certificate is accepted (signatures are still checked).
    pub insecure: bool,
}

impl Trust {
    /// What a command line with `--ca` and `--insecure` (and the system's roots
    /// otherwise) asks for.
    pub fn from_options(ca: Option<PathBuf>, insecure: bool) -> Self {
        Self { system_roots: ca.is_none() && !insecure, ca, insecure }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading CA file {path}: {detail}")]
    Ca { path: PathBuf, detail: String },
    #[error("TLS set-up: {0}")]
    Setup(String),
    #[error("no certificate to trust: give a CA file, the system's roots, or no validation")]
    NoTrust,
}

/// The client configuration for `trust`, offering `alpn` (e.g. `h2`, `http/1.1`).
pub fn client_config(trust: &Trust, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Setup(error.to_string()))?;
    let mut config = if trust.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnything(provider))).with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &trust.ca {
            for certificate in load_ca(path)? {
                roots
                    .add(certificate)
                    .map_err(|error| TlsError::Ca { path: path.clone(), detail: error.to_string() })?;
            }
        }
        if trust.system_roots {
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoTrust);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file; at least one.
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |detail: String| TlsError::Ca { path: path.to_path_buf(), detail };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| failed(error.to_string()))?;
    if certificates.is_empty() {
        return Err(failed("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// The name a server's certificate must carry (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|_| format!("`{host}` cannot be checked against a certificate"))
}

/// `insecure`: every certificate is accepted; signatures are still checked, so the
/// handshake itself is real.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
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
