//! loadlab: runs the lab's parts on one machine. This crate owns starting private
//! instances of real servers (own temporary data directory, own free port, stopped on
//! drop) for the lab and for every integration test in the workspace, so no test ever
//! touches a machine's shared instance.

pub mod netns;
pub mod placement;
pub mod ports;
pub mod postgres;
mod process_user;
pub mod run;
pub mod serve;
pub mod server_process;
pub mod session;
pub mod stack;
pub mod state;
pub mod topology;
pub mod up;

pub use postgres::{PostgresError, PostgresInstance};
pub use server_process::{ServerError, ServerProcess};
