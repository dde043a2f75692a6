//! Bad input that is not the topology file's: options that contradict each other, a
//! plan the topology does not have. Like a [`crate::topology::TopologyError`], it
//! makes `loadlab` exit 2 (what `--help` promises for bad options), not 1 (the lab
//! itself failed).

/// A refused option, in one sentence.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for `error`: 2 for bad input (a topology or options), 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let bad_input = error.downcast_ref::<crate::topology::TopologyError>().is_some()
        || error.downcast_ref::<UsageError>().is_some();
    if bad_input { 2 } else { crate::run::EXIT_LAB_FAILED }
}
