//! `grpc-stress certs`: a throw-away CA and a server certificate for 127.0.0.1 and
//! localhost, written as PEM files. Generated at run time so no private key is ever
//! committed.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// Where [`generate`] wrote the files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir` (created if missing).
pub fn generate(dir: &Path) -> Result<CertFiles, CertError> {
    let write = |name: &str, contents: &str| -> Result<PathBuf, CertError> {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|source| CertError::Write { path: path.clone(), source })?;
        Ok(path)
    };
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write { path: dir.to_path_buf(), source })?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "loadlab grpc-stress test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut server_params = CertificateParams::new(vec!["localhost".to_string()])?;
    server_params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    server_params.distinguished_name.push(DnType::CommonName, "grpc-stress server");
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    Ok(CertFiles {
        ca_cert: write("ca.pem", &ca_cert.pem())?,
        server_cert: write("server.pem", &server_cert.pem())?,
        server_key: write("server.key", &server_key.serialize_pem())?,
    })
}
