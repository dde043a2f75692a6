//! What a connection is doing, and so how long it may go on doing it: waiting for a
//! request head, serving requests, or idle between them. The connection task sleeps
//! until [`Activity::deadline`] and closes the connection when [`Activity::expired`]
//! says so.
//!
//! hyper's own `header_read_timeout` starts when hyper begins waiting for a head, so on
//! a kept-alive connection it would count the idle time too; Go's `net/http` keeps the
//! two apart (`IdleTimeout` until the first byte, then `ReadHeaderTimeout`), and so do we.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The timeouts of the phases; the body's own is kept by `TimedBody`.
#[derive(Clone, Copy, Debug)]
pub struct PhaseTimeouts {
    pub header_read: Duration,
    pub keep_alive: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A request head is on its way: since the connection was accepted (its first
    /// request), or since the first byte after an idle spell.
    Head { since: Instant },
    /// Requests handed to the router whose responses are not finished.
    Busy { requests: usize },
    /// Every response finished; nothing of the next request has arrived.
    Idle { since: Instant },
}

/// Why a connection was closed by its watchdog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    HeaderRead,
    KeepAlive,
}

impl Expired {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderRead => "header_read",
            Self::KeepAlive => "keep_alive",
        }
    }
}

/// One connection's phase, shared by its socket wrapper (bytes read), its service
/// (requests dispatched, responses finished) and its task (the watchdog).
///
/// A std `Mutex`: it is held for a few instructions and never across an await.
#[derive(Debug)]
pub struct Activity {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when a deadline appears (the last response finished): from
    /// `Busy` there is no deadline to sleep until.
    idle: Notify,
}

impl Activity {
    pub fn new(accepted: Instant) -> Self {
        Self { phase: Mutex::new(Phase::Head { since: accepted }), idle: Notify::new() }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        // The phase is plain data, valid whatever a panicking holder was doing.
        self.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes arrived: an idle connection starts its next request head.
    pub fn read(&self, now: Instant) {
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head { since: now };
        }
    }

    /// A request head was parsed and handed to the router; the phase stays busy until
    /// the returned guard is dropped (its response finished or abandoned).
    pub fn dispatch(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy { requests } => Phase::Busy { requests: requests + 1 },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        };
        InFlight(self.clone())
    }

    fn finish(&self, now: Instant) {
        let mut phase = self.phase();
        if let Phase::Busy { requests } = *phase {
            *phase = if requests > 1 { Phase::Busy { requests: requests - 1 } } else { Phase::Idle { since: now } };
        }
        if let Phase::Idle { .. } = *phase {
            self.idle.notify_one();
        }
    }

    /// Whether a response is being produced (hyper's writes belong to it).
    pub fn responding(&self) -> bool {
        matches!(*self.phase(), Phase::Busy { .. })
    }

    /// When the current phase runs out, if it can (a timeout too long to add to a
    /// clock never runs out).
    pub fn deadline(&self, timeouts: PhaseTimeouts) -> Option<Instant> {
        match *self.phase() {
            Phase::Head { since } => since.checked_add(timeouts.header_read),
            Phase::Idle { since } => since.checked_add(timeouts.keep_alive),
            Phase::Busy { .. } => None,
        }
    }

    /// Whether the current phase has run out at `now`, and which.
    pub fn expired(&self, now: Instant, timeouts: PhaseTimeouts) -> Option<Expired> {
        let deadline = self.deadline(timeouts)?;
        if now < deadline {
            return None;
        }
        match *self.phase() {
            Phase::Head { .. } => Some(Expired::HeaderRead),
            Phase::Idle { .. } => Some(Expired::KeepAlive),
            Phase::Busy { .. } => None,
        }
    }

    /// Resolves once after the last response of a busy spell finished.
    pub async fn became_idle(&self) {
        self.idle.notified().await;
    }
}

/// A request being served; dropping it finishes it.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finish(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: PhaseTimeouts =
        PhaseTimeouts { header_read: Duration::from_secs(2), keep_alive: Duration::from_secs(10) };

    #[test]
    fn a_new_connection_has_the_header_timeout_from_its_accept() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(activity.deadline(TIMEOUTS), Some(start + TIMEOUTS.header_read));
        // Bytes of a first head do not extend it: half-sent headers still time out.
        activity.read(start + Duration::from_secs(1));
        assert_eq!(activity.expired(start + Duration::from_secs(2), TIMEOUTS), Some(Expired::HeaderRead));
    }

    #[test]
    fn busy_has_no_deadline_and_idle_starts_when_the_last_response_ends() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let first = activity.dispatch();
        let second = activity.dispatch();
        assert!(activity.responding());
        assert_eq!(activity.deadline(TIMEOUTS), None);
        drop(first);
        assert!(activity.responding(), "one response still going");
        drop(second);
        assert!(!activity.responding());
        let idle_from = Instant::now();
        let deadline = activity.deadline(TIMEOUTS).unwrap();
        assert!(deadline >= idle_from + TIMEOUTS.keep_alive - Duration::from_millis(100));
        assert_eq!(activity.expired(deadline, TIMEOUTS), Some(Expired::KeepAlive));
    }

    #[test]
    fn an_absurd_timeout_never_runs_out_instead_of_overflowing() {
        let activity = Activity::new(Instant::now());
        let forever = PhaseTimeouts { header_read: Duration::MAX, keep_alive: Duration::MAX };
        assert_eq!(activity.deadline(forever), None);
        assert_eq!(activity.expired(Instant::now(), forever), None);
    }

    #[test]
    fn the_first_byte_after_idle_starts_a_header_deadline() {
        let activity = Arc::new(Activity::new(Instant::now()));
        drop(activity.dispatch());
        let byte = Instant::now() + Duration::from_secs(5);
        activity.read(byte);
        assert_eq!(activity.deadline(TIMEOUTS), Some(byte + TIMEOUTS.header_read));
        assert_eq!(activity.expired(byte + TIMEOUTS.header_read, TIMEOUTS), Some(Expired::HeaderRead));
    }
}
