//! The run store: one SQLite database (`<data>/loadlab.sqlite`, through sqlx) that
//! every process of the lab writes to — `loadlab serve`, `loadlab run --store`, an
//! import — so history does not depend on how a run was started.
//!
//! Why SQLite: a run's acknowledgement is a committed transaction (WAL, `synchronous
//! = FULL`), so a crash loses nothing acknowledged and never leaves half a write;
//! several processes may write at once (SQLite's file locks, a busy timeout, and
//! transactions that read before they write begin `IMMEDIATE`); indexes list 10,000
//! runs by time, experiment, plan or state without reading their bodies; and it is one
//! file that needs no server (the library is compiled in).

mod database;
pub mod import;
mod model;
mod runs;
#[cfg(test)]
mod tests;

pub use database::{Store, StoreError};
pub use model::{
    DataPoint, Filter, Finish, NewDataPoint, NewRun, Outcome, Run, RunState, now, parse_instant, timestamp,
};
pub use runs::{FilterError, MAX_LIST, p99_at};
