//! loadgen: loadlab's load generator.
pub mod bottleneck;
pub mod chat;
pub mod cli;
pub mod engine;
pub mod export;
pub mod metrics;
pub mod output;
pub mod profile;
pub mod push;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod slo;
pub mod stats;
