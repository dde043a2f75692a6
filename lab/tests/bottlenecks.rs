//! Planted bottlenecks (`loadlab_fixtures::planted`): the real stack with one cause
//! of saturation made real, loadgen's breakpoint search and its bottleneck analysis,
//! which must name what was planted. One case per resource class whose verdict the
//! matrix found stable: a capacity limit (a one-connection pool), a CPU (device-api
//! starved beside busy loops) and the generator itself. (Table locks are named in
//! six runs of seven: not yet a test that fails only for its reason.) The
//! whole matrix, scored, is `cargo bench -p loadlab --bench bottlenecks`.
//!
//! Each prints the whole analysis, so a failure shows the figures behind the ranking.
//! They take turns (one lock): run side by side, each would be the other's CPU
//! shortage, and the generator's too.

use loadlab_fixtures::planted::{self, Found};

/// They take turns: side by side, each would be the other's CPU shortage.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the planted case `name`; its verdict must name one of the case's causes.
fn names_its_cause(name: &str) -> Found {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let case = planted::case(name);
    let found = planted::run(&case).unwrap_or_else(|error| panic!("{name}: {error}"));
    println!("{name}: breaking point {}\nanalysis: {:#}", found.breaking_point, found.analysis);
    assert!(
        case.cause.contains(&found.named().as_str()),
        "{}: named {:?}, planted {:?}: {:#}",
        case.planted,
        found.named(),
        case.cause,
        found.analysis
    );
    found
}

#[test]
fn a_one_connection_pool_ranks_first() {
    let found = names_its_cause("pool");
    assert!(found.analysis["verdict"].as_str().unwrap().starts_with("device-api database pool saturated first"));
}

#[test]
fn a_cpu_starved_device_api_puts_cpu_first() {
    names_its_cause("api-cpu");
}

#[test]
fn a_starved_generator_blames_itself() {
    let found = names_its_cause("generator");
    assert!(found.analysis["verdict"].as_str().unwrap().starts_with("the load generator"), "{:#}", found.analysis);
}
