//! The server's metrics: names, buckets, and the RPC timer that records every call's
//! outcome once, even when the client goes away mid-call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tonic::Code;

pub const RPCS: &str = "grpc_stress_rpcs_total";
pub const RPC_DURATION: &str = "grpc_stress_rpc_duration_seconds";
pub const MESSAGES_RECEIVED: &str = "grpc_stress_messages_received_total";
pub const MESSAGES_SENT: &str = "grpc_stress_messages_sent_total";
pub const BYTES_RECEIVED: &str = "grpc_stress_received_bytes_total";
pub const BYTES_SENT: &str = "grpc_stress_sent_bytes_total";
pub const RPCS_SHED: &str = "grpc_stress_rpcs_shed_total";
pub const RPCS_IN_FLIGHT: &str = "grpc_stress_rpcs_in_flight";
pub const CONNECTIONS_OPEN: &str = "grpc_stress_connections_open";
pub const CONNECTIONS: &str = "grpc_stress_connections_total";
pub const CHAT_SUBSCRIBERS: &str = "grpc_stress_chat_subscribers";
pub const CHAT_MESSAGES: &str = "grpc_stress_chat_messages_total";
pub const CHAT_DELIVERIES: &str = "grpc_stress_chat_deliveries_total";
pub const CHAT_LAGGED: &str = "grpc_stress_chat_lagged_messages_total";
pub const LIVE_HEAP: &str = "grpc_stress_live_heap_bytes";
pub const HEAP_CEILING: &str = "grpc_stress_heap_ceiling_bytes";

const LATENCY: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub fn histograms() -> [(&'static str, &'static [f64]); 1] {
    [(RPC_DURATION, LATENCY)]
}

pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(RPCS, "RPCs finished, by method and gRPC status code");
    describe_histogram!(RPC_DURATION, Unit::Seconds, "RPC duration, by method");
    describe_counter!(MESSAGES_RECEIVED, "Messages received, by method");
    describe_counter!(MESSAGES_SENT, "Messages sent, by method");
    describe_counter!(BYTES_RECEIVED, Unit::Bytes, "Payload bytes received, by method");
    describe_counter!(BYTES_SENT, Unit::Bytes, "Payload bytes sent, by method");
    describe_counter!(RPCS_SHED, "RPCs refused with RESOURCE_EXHAUSTED by the in-flight limit");
    describe_gauge!(RPCS_IN_FLIGHT, "RPCs being served");
    describe_gauge!(CONNECTIONS_OPEN, "Open client connections");
    describe_counter!(CONNECTIONS, "Client connections accepted");
    describe_gauge!(CHAT_SUBSCRIBERS, "Open chat subscriptions");
    describe_counter!(CHAT_MESSAGES, "Chat messages sent to the server");
    describe_counter!(CHAT_DELIVERIES, "Chat messages handed to subscribers");
    describe_counter!(CHAT_LAGGED, "Chat messages a slow subscriber missed");
    describe_gauge!(LIVE_HEAP, Unit::Bytes, "Bytes allocated and not freed (counting allocator)");
    describe_gauge!(HEAP_CEILING, Unit::Bytes, "The --max-heap this process stops at (absent without one)");
}

/// Times one RPC and records its outcome when finished, or, when dropped unfinished,
/// `DEADLINE_EXCEEDED` if its deadline expired and `CANCELLED` otherwise (the client
/// went away).
pub struct RpcTimer {
    method: &'static str,
    started: Instant,
    done: bool,
    deadline_expired: Option<Arc<AtomicBool>>,
}

impl RpcTimer {
    pub fn start(method: &'static str) -> Self {
        Self { method, started: Instant::now(), done: false, deadline_expired: super::deadline::expired_flag() }
    }

    pub fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        self.done = true;
        metrics::counter!(RPCS, "method" => self.method, "code" => code_name(code)).increment(1);
        metrics::histogram!(RPC_DURATION, "method" => self.method).record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for RpcTimer {
    fn drop(&mut self) {
        if !self.done {
            let expired = self.deadline_expired.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed));
            self.record(if expired { Code::DeadlineExceeded } else { Code::Cancelled });
        }
    }
}

/// Counts one message in either direction.
pub fn count_message(method: &'static str, received: bool, bytes: usize) {
    let (messages, byte_counter) =
        if received { (MESSAGES_RECEIVED, BYTES_RECEIVED) } else { (MESSAGES_SENT, BYTES_SENT) };
    metrics::counter!(messages, "method" => method).increment(1);
    metrics::counter!(byte_counter, "method" => method).increment(bytes as u64);
}

/// The canonical upper-case name of a gRPC status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
