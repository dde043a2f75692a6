//! loadlab-supervise: the one way loadlab's programs and tests start, watch and stop
//! another process.
//!
//! A [`Spec`] says what to start and where ([`Place`]: network namespace, CPUs,
//! user, priority); spawning it gives a [`Supervised`] process whose output goes to a
//! log, which can be waited on until a [`Ready`] probe holds (an HTTP path, a TCP
//! port, a line of output, a file), and which is stopped with a [`Stop`] policy
//! (a signal, a grace period, SIGKILL), reaped, and stopped when dropped. Failures
//! name the component and end with the tail of its log.
//!
//! Beside it, the small pieces every supervisor needs: free ports ([`ports`]),
//! [`which`], the HTTP probe ([`http`]) and, with the `prometheus` feature, the one
//! Prometheus query client ([`prometheus`]).

mod error;
pub mod http;
mod output;
mod place;
pub mod ports;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod ready;
mod spec;
mod stop;
mod supervised;
mod user;
mod which;

pub use error::{SuperviseError, tail};
pub use nix::sys::signal::Signal;
pub use place::Place;
pub use ready::Ready;
pub use spec::Spec;
pub use stop::{Stop, Stopped};
pub use supervised::Supervised;
pub use user::RunAs;
pub use which::{which, which_any};
