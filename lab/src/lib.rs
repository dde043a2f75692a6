//! loadlab: runs the lab's parts on one machine. It reads the topology, decides
//! where everything listens and runs ([`layout`]), starts the servers as supervised
//! processes ([`server`], [`postgres`], through `loadlab-supervise`), runs a plan with
//! loadgen ([`run`]) or keeps the lab up ([`up`]), and removes what a crashed lab
//! left behind ([`state`]). Test fixtures (`loadlab-fixtures`) start the same
//! servers with the same configuration.

pub mod layout;
pub mod netns;
pub mod placement;
pub mod postgres;
pub mod run;
pub mod scrape;
pub mod serve;
pub mod server;
pub mod session;
pub mod stack;
pub mod state;
pub mod topology;
pub mod up;
pub mod usage;

pub use postgres::{PostgresError, PostgresInstance};
