//! Readiness probes: how a supervisor tells that a process it started is ready for
//! work. A probe is a plain value, checked again and again until it holds, the
//! process exits, or a deadline passes; network probes are made from the process's
//! own network namespace.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Place, SuperviseError};

/// How often a probe is checked.
pub(crate) const POLL: Duration = Duration::from_millis(25);

/// What "ready" means for a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ready {
    /// `GET path` at the address answers 200.
    Http { address: SocketAddr, path: String },
    /// The address accepts a TCP connection.
    Tcp(SocketAddr),
    /// The process has written a line holding this text (to its log, or to its own
    /// stdout file).
    Line(String),
    /// The file exists; with `line`, one of its lines reads exactly that (trimmed),
    /// e.g. PostgreSQL's `postmaster.pid` saying `ready`.
    File { path: PathBuf, line: Option<String> },
    /// Every one of these.
    All(Vec<Ready>),
}

impl Ready {
    /// `GET path` at `address` answers 200.
    pub fn http(address: SocketAddr, path: &str) -> Self {
        Self::Http { address, path: path.to_string() }
    }

    /// Whether the probe holds now, seen from `place`; `outputs` are the files the
    /// process writes its output to (for [`Ready::Line`]).
    pub fn check(&self, place: &Place, outputs: &[&Path]) -> bool {
        match self {
            Self::Http { address, path } => {
                let (address, path) = (*address, path.clone());
                place.within(move || crate::http::status(address, &path) == Some(200)).unwrap_or(false)
            }
            Self::Tcp(address) => {
                let address = *address;
                place
                    .within(move || TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok())
                    .unwrap_or(false)
            }
            Self::Line(text) => outputs
                .iter()
                .any(|output| std::fs::read_to_string(output).is_ok_and(|written| written.contains(text.as_str()))),
            Self::File { path, line } => match (std::fs::read_to_string(path), line) {
                (Ok(_), None) => true,
                (Ok(text), Some(wanted)) => text.lines().any(|each| each.trim() == wanted),
                (Err(_), _) => path.exists() && line.is_none(),
            },
            Self::All(probes) => probes.iter().all(|probe| probe.check(place, outputs)),
        }
    }

    /// Waits until the probe holds, for a server with no process of ours behind it
    /// (one started in this process): `NotReady` after `limit`.
    pub fn wait(&self, name: &str, limit: Duration) -> Result<(), SuperviseError> {
        let deadline = Instant::now() + limit;
        while !self.check(&Place::default(), &[]) {
            if Instant::now() >= deadline {
                return Err(self.not_ready(name, limit, String::new()));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// [`Ready::wait`] for async callers: each check runs on the blocking pool.
    pub async fn wait_async(&self, name: &str, limit: Duration) -> Result<(), SuperviseError> {
        let deadline = Instant::now() + limit;
        while !self.check_async(&Place::default(), &[]).await {
            if Instant::now() >= deadline {
                return Err(self.not_ready(name, limit, String::new()));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// [`Ready::check`] on the blocking pool.
    pub(crate) async fn check_async(&self, place: &Place, outputs: &[PathBuf]) -> bool {
        let (probe, place, outputs) = (self.clone(), place.clone(), outputs.to_vec());
        tokio::task::spawn_blocking(move || {
            let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
            probe.check(&place, &outputs)
        })
        .await
        .unwrap_or(false)
    }

    pub(crate) fn not_ready(&self, name: &str, limit: Duration, output: String) -> SuperviseError {
        SuperviseError::NotReady { name: name.to_string(), ready: self.to_string(), limit, output }
    }
}

impl std::fmt::Display for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http { address, path } => write!(f, "GET http://{address}{path} answering 200"),
            Self::Tcp(address) => write!(f, "TCP connections accepted on {address}"),
            Self::Line(text) => write!(f, "a line with `{text}` in its output"),
            Self::File { path, line: None } => write!(f, "{} existing", path.display()),
            Self::File { path, line: Some(line) } => write!(f, "{} saying `{line}`", path.display()),
            Self::All(probes) => {
                let each: Vec<String> = probes.iter().map(Ready::to_string).collect();
                f.write_str(&each.join(" and "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_line_probes_read_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("postmaster.pid");
        let probe = Ready::File { path: pid.clone(), line: Some("ready".into()) };
        assert!(!probe.check(&Place::default(), &[]));
        std::fs::write(&pid, "123\n/data\nstarting\n").unwrap();
        assert!(!probe.check(&Place::default(), &[]), "the file alone is not enough");
        assert!(Ready::File { path: pid.clone(), line: None }.check(&Place::default(), &[]));
        std::fs::write(&pid, "123\n/data\nready   \n").unwrap();
        assert!(probe.check(&Place::default(), &[]));
        let line = Ready::Line("listening on".into());
        assert!(!line.check(&Place::default(), &[&pid]));
        std::fs::write(&pid, "x\nlistening on 127.0.0.1:1\n").unwrap();
        assert!(line.check(&Place::default(), &[&pid]));
    }

    #[test]
    fn a_probe_that_never_holds_says_what_it_waited_for() {
        let port = crate::ports::free_loopback_port().unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let error = Ready::All(vec![Ready::Tcp(address), Ready::http(address, "/ready")])
            .wait("nothing", Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "nothing did not become ready (TCP connections accepted on {address} and GET \
                 http://{address}/ready answering 200) within 100ms"
            )
        );
    }
}
