//! loadgen: loadlab's load generator.
//!
//! From the outside in: `cli` (options) → `plan` (checked across options) →
//! `run` (one invocation: outputs checked, scenario set up, profile run, report
//! written) → `profile`/`breakpoint` (steps) → `attack` (the one request loop),
//! fed by a `pacer` (when, on which lane) and a `scenario` (what, over `http` or
//! gRPC), filing answers in the pure `collector` (`stats`, `slo`) and in `meter`
//! (Prometheus). `output` renders; `bottleneck` asks `prometheus` why it broke.
pub mod agent;
pub mod attack;
pub mod bottleneck;
pub mod breakpoint;
pub mod chat;
pub mod cli;
pub mod collector;
pub mod commands;
pub mod controller;
pub mod exit;
pub mod export;
pub mod http;
pub mod launch;
pub mod meter;
pub mod metrics;
pub mod outcome;
pub mod output;
pub mod pacer;
pub mod plan;
pub mod profile;
pub mod prometheus;
pub mod push;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod slo;
pub mod stats;
pub mod stop;
pub mod wire;
