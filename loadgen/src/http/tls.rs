//! TLS for `https://` targets, with rustls: the server is verified against the
//! system's roots, or against `--ca FILE` alone; `--insecure` accepts any certificate
//! (for throw-away test servers only). ALPN offers HTTP/1.1, or h2 with `--http2`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where the trust in the server's certificate comes from.
#[derive(Clone, Debug, Default)]
pub enum Trust {
    /// The operating system's roots.
    #[default]
    System,
    /// Only the CA certificates in this PEM file.
    Ca(std::path::PathBuf),
    /// None: any certificate is accepted.
    Insecure,
}

/// Builds the client configuration; the error names the file or what it lacked.
pub fn client_config(trust: &Trust, http2: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?;
    let mut config = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth(),
        Trust::Ca(path) => builder.with_root_certificates(roots_from(path)?).with_no_client_auth(),
        Trust::System => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                let _ = roots.add(certificate);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found: give --ca FILE (or --insecure for a test server)".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = if http2 { vec![b"h2".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Arc::new(config))
}

fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|error| format!("--ca {shown}: {error}"))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&bytes) {
        let certificate = certificate.map_err(|error| format!("--ca {shown}: {error}"))?;
        roots.add(certificate).map_err(|error| format!("--ca {shown}: {error}"))?;
    }
    if roots.is_empty() {
        return Err(format!("--ca {shown}: no PEM certificate in the file"));
    }
    Ok(roots)
}

/// The name the server's certificate must carry (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|_| format!("`{host}` cannot be checked against a certificate"))
}

/// `--insecure`: every certificate is accepted, signatures are still checked so the
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
