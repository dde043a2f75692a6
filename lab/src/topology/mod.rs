//! `topology.toml`: the lab's hosts, addresses, roles, ports, per-program settings and
//! test plans ([`model`]), read and validated ([`validation`]), and the facts derived
//! from it ([`derived`]: which ports each host serves, what Prometheus scrapes, which
//! flags each program gets).
//!
//! The Nix flake derives the same facts from the same file with `builtins.fromTOML`
//! (`nixos/lib/topology.nix`); a test compares the two.

mod derived;
mod model;
mod validation;

pub(crate) use derived::scalar;
pub use derived::{Derived, DerivedHost, flags};
pub use model::{Flags, Host, LabSettings, NETWORK, PREFIX_LENGTH, Plan, Ports, Role, Service, Topology};
pub use validation::TopologyError;

/// The topology shipped at the top of the repository, for when no file is given and
/// none is in the current directory.
pub const BUILT_IN: &str = include_str!("../../../topology.toml");
