//! loadgen's exit codes, for scripts and for the lab that runs it: one definition,
//! used by the binary and by whoever reads its status.

/// The run held (a breakpoint search: the breaking point was found).
pub const HELD: u8 = 0;
/// The options cannot run: invalid, contradictory, or unusable (an output directory
/// that cannot be written, a Prometheus that does not answer, a port taken).
pub const USAGE: u8 = 2;
/// The run was interrupted, or failed once under way (the target refused the logins).
pub const INTERRUPTED: u8 = 97;
/// A threshold broke, or even the first step of a breakpoint search broke its SLO.
pub const THRESHOLD: u8 = 99;
