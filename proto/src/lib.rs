//! What loadgen and grpc-stress share on the wire, so neither depends on the other:
//!
//! - [`stress`]: the code generated from `proto/stress.proto` (the four RPC kinds and
//!   chat), with its descriptors for server reflection;
//! - [`calls`]: one call of each RPC kind, checked against grapesy's semantics;
//! - [`connect`]: gRPC targets and their channels, plain or TLS;
//! - [`connection`]: one HTTP/2 connection that calls go straight onto (the `h2`
//!   crate, no task per call);
//! - [`tls`]: how a client trusts a server (system roots, a CA file, or nothing), for
//!   gRPC and for loadgen's HTTP alike;
//! - [`payload`]: the random 128–256-byte payloads;
//! - [`agent`]: loadgen's agent protocol (a controller driving load generators on
//!   several hosts as one).

pub mod calls;
pub mod connect;
pub mod connection;
pub mod payload;
pub mod tls;

pub mod stress {
    //! Code generated from `proto/stress.proto`.
    tonic::include_proto!("loadlab.stress.v1");

    /// The encoded descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("stress_descriptor");
}

pub mod agent {
    //! Code generated from `proto/agent.proto`.
    tonic::include_proto!("loadlab.agent.v1");

    /// The encoded descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("agent_descriptor");
}
