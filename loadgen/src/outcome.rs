//! How a request ended, as a small `Copy` value: the attack loop files millions of
//! them, so an outcome never allocates. Each has a stable label (`ok`, `http_503`,
//! `timeout`, `grpc_unavailable`, …) used in metrics, reports and files, and parsed
//! back when a report is read.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a request got no answer (or no usable one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The per-request timeout passed.
    Timeout,
    /// The connection was refused.
    ConnectRefused,
    /// Any other failure to connect (unreachable, no route, …).
    ConnectError,
    /// The TLS handshake failed.
    Tls,
    /// The connection broke (reset, closed, answer cut short).
    ConnectionLost,
    /// The answer was not valid HTTP.
    Protocol,
    /// Any other transport error.
    Transport,
    /// Still running when its step ended and the drain time was over.
    Unfinished,
    /// The request's task panicked (a bug in loadgen; counted, the run goes on).
    Panic,
    /// A gRPC status other than OK (its code, 1–16).
    Grpc(u8),
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A 2xx or 3xx answer (or a gRPC OK).
    Ok,
    /// An HTTP status outside 2xx/3xx.
    Status(u16),
    Error(ErrorKind),
}

const GRPC_CODES: [&str; 17] = [
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
];

const ERROR_LABELS: [(ErrorKind, &str); 9] = [
    (ErrorKind::Timeout, "timeout"),
    (ErrorKind::ConnectRefused, "connect_refused"),
    (ErrorKind::ConnectError, "connect_error"),
    (ErrorKind::Tls, "tls_error"),
    (ErrorKind::ConnectionLost, "connection_lost"),
    (ErrorKind::Protocol, "protocol_error"),
    (ErrorKind::Transport, "transport_error"),
    (ErrorKind::Unfinished, "unfinished"),
    (ErrorKind::Panic, "panic"),
];

impl Outcome {
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }

    /// A gRPC status code (0 is OK).
    pub fn grpc(code: i32) -> Self {
        match code {
            0 => Outcome::Ok,
            1..=16 => Outcome::Error(ErrorKind::Grpc(code as u8)),
            _ => Outcome::Error(ErrorKind::Grpc(2)), // UNKNOWN, as gRPC maps unknown codes
        }
    }

    /// An HTTP status: 2xx and 3xx are answers, the rest errors.
    pub fn http(status: u16) -> Self {
        if (200..400).contains(&status) { Outcome::Ok } else { Outcome::Status(status) }
    }

    /// Parses a label written by [`Outcome::fmt`].
    pub fn from_label(label: &str) -> Result<Self, String> {
        if label == "ok" {
            return Ok(Outcome::Ok);
        }
        if let Some(code) = label.strip_prefix("http_") {
            return code
                .parse::<u16>()
                .ok()
                .filter(|code| (100..=999).contains(code))
                .map(Outcome::Status)
                .ok_or_else(|| format!("`{label}` is not an HTTP status label"));
        }
        if let Some(name) = label.strip_prefix("grpc_") {
            return GRPC_CODES[1..]
                .iter()
                .position(|known| *known == name)
                .map(|index| Outcome::Error(ErrorKind::Grpc(index as u8 + 1)))
                .ok_or_else(|| format!("`{label}` is not a gRPC status label"));
        }
        ERROR_LABELS
            .iter()
            .find(|(_, known)| *known == label)
            .map(|(kind, _)| Outcome::Error(*kind))
            .ok_or_else(|| format!("`{label}` is not an outcome loadgen writes"))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Status(code) => write!(f, "http_{code}"),
            Outcome::Error(ErrorKind::Grpc(code)) => {
                write!(f, "grpc_{}", GRPC_CODES.get(usize::from(*code)).copied().unwrap_or("unknown"))
            }
            Outcome::Error(kind) => {
                let label = ERROR_LABELS.iter().find(|(known, _)| known == kind).map_or("transport_error", |(_, l)| l);
                f.write_str(label)
            }
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let label = String::deserialize(deserializer)?;
        Outcome::from_label(&label).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_parses_back_to_its_outcome() {
        let mut all = vec![Outcome::Ok, Outcome::Status(400), Outcome::Status(503)];
        all.extend(ERROR_LABELS.iter().map(|(kind, _)| Outcome::Error(*kind)));
        all.extend((1..=16).map(|code| Outcome::Error(ErrorKind::Grpc(code))));
        for outcome in all {
            assert_eq!(Outcome::from_label(&outcome.to_string()), Ok(outcome), "{outcome}");
        }
        assert_eq!(Outcome::grpc(14).to_string(), "grpc_unavailable");
        assert_eq!(Outcome::http(302), Outcome::Ok);
        for bad in ["", "http_", "http_99999", "grpc_ok", "grpc_nope", "Ok", "panic "] {
            assert!(Outcome::from_label(bad).is_err(), "{bad}");
        }
    }
}
