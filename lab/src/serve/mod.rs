//! `loadlab serve`: the lab as a standing service. It owns the lab's runs — starts
//! plans in this process through loadgen's library, on the lab it brings up (or the
//! VM network's), one at a time — records every run in the store (with `loadlab run
//! --store` and imports of old `results/` directories), runs experiments on a
//! schedule, finds regressions in their series, and serves an HTTP API (a superset of
//! the Catalyst results server's) and `/metrics`.
//!
//! From the outside in: `service` (commands) → `http` (API) → `runner` (the queue)
//! and `scheduler` (experiments) → `launch` (loadgen's words, executed) and `lab`
//! (where the load goes) → `store`; `live` fans events out to watchers; `detect` and
//! `compare` judge results.

pub mod compare;
pub mod detect;
pub mod experiments;
pub mod http;
pub mod lab;
pub mod launch;
pub mod live;
pub mod runner;
pub mod scheduler;
pub mod service;
pub mod signals;
pub mod store;

pub use service::{CompareOptions, ImportOptions, ServeOptions, UsageError, compare, import, serve};
pub use store::import::record_run;
