//! Judging results: change points in an experiment's series (E-divisive means with a
//! t-test, [`changepoint`]), regressions named from them ([`regression`]), and the
//! tests they rest on ([`stats`]).

pub mod changepoint;
pub mod regression;
pub mod stats;

pub use changepoint::{ChangePoint, Options};
pub use regression::{Finding, Metric, SeriesPoint, findings};
