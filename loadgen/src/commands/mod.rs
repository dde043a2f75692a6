//! One function per subcommand: each takes its parsed options, does the work through
//! the library, prints what a person reads, and returns the exit code. `main` only
//! parses and dispatches.

mod agent;
mod chat;
mod export;
mod load;
mod report;
mod target;

pub use agent::agent;
pub use chat::chat;
pub use export::export;
pub use load::load;
pub use report::report;
pub use target::target;
