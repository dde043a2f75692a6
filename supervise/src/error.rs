//! What can go wrong while starting or watching a process. Every message names the
//! component and, when there is one, ends with the tail of its log: the reason it
//! failed is usually there.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("{name} did not become ready ({ready}) within {limit:?}{output}")]
    NotReady { name: String, ready: String, limit: Duration, output: String },
    #[error("{name} exited during start-up ({status}){output}")]
    Exited { name: String, status: String, output: String },
    #[error("{name}: {doing}: {source}")]
    Io { name: String, doing: &'static str, source: std::io::Error },
}

/// How many lines of a log an error shows.
pub(crate) const TAIL_LINES: usize = 20;

/// "; log PATH:\nLAST LINES", for an error message.
pub(crate) fn log_excerpt(log: &std::path::Path) -> String {
    format!("; log {}:\n{}", log.display(), tail(log, TAIL_LINES))
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
