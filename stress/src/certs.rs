//! `grpc-stress certs`: a throw-away CA and a server certificate for 127.0.0.1 and
//! localhost, written as PEM files. Generated at run time so no private key is ever
//! committed. The private key is readable by its owner only (0600), and a directory
//! created here is the owner's only (0700), whatever the umask.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
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

/// Mode of `server.key`.
pub const KEY_MODE: u32 = 0o600;
/// Mode of each directory [`generate`] creates (an existing one is left as it is).
pub const DIR_MODE: u32 = 0o700;

/// Writes `ca.pem`, `server.pem` (both 0644) and `server.key` (0600) into `dir`,
/// created 0700 if missing.
pub fn generate(dir: &Path) -> Result<CertFiles, CertError> {
    let write = |name: &str, contents: &str, mode: u32| -> Result<PathBuf, CertError> {
        let path = dir.join(name);
        let error = |source| CertError::Write { path: path.clone(), source };
        // `mode` applies only when the file is created; an existing file (a key written
        // 0644 by an older version) is truncated and narrowed before the key goes in.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(error)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(error)?;
        file.write_all(contents.as_bytes()).map_err(error)?;
        Ok(path)
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| CertError::Write { path: dir.to_path_buf(), source })?;

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
        ca_cert: write("ca.pem", &ca_cert.pem(), 0o644)?,
        server_cert: write("server.pem", &server_cert.pem(), 0o644)?,
        server_key: write("server.key", &server_key.serialize_pem(), KEY_MODE)?,
    })
}
