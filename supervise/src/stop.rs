//! How a process is stopped: a signal, a grace period to exit in, then SIGKILL.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A stop policy. The default is SIGTERM and five seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Sent first; `None` when the process was already told (it only gets the grace).
    pub signal: Option<Signal>,
    /// How long it may take to exit before it is killed.
    pub grace: Duration,
}

impl Stop {
    /// SIGTERM, then SIGKILL after `grace`.
    pub const fn term(grace: Duration) -> Self {
        Self { signal: Some(Signal::SIGTERM), grace }
    }

    /// `signal`, then SIGKILL after `grace`.
    pub const fn signal(signal: Signal, grace: Duration) -> Self {
        Self { signal: Some(signal), grace }
    }

    /// No signal (it was sent already): `grace` to exit, then SIGKILL.
    pub const fn wait(grace: Duration) -> Self {
        Self { signal: None, grace }
    }

    /// SIGKILL at once.
    pub const fn kill() -> Self {
        Self { signal: None, grace: Duration::ZERO }
    }
}

impl Default for Stop {
    fn default() -> Self {
        Self::term(Duration::from_secs(5))
    }
}

/// How a stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    pub status: ExitStatus,
    /// It outlasted the grace period and was killed.
    pub killed: bool,
}
