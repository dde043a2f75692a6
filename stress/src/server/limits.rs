//! Load shedding: a server-wide cap on RPCs in flight. An RPC over the cap is refused
//! at once with `RESOURCE_EXHAUSTED`, so overload shows up as an explicit status the
//! client counts, not as queues and memory growth. Streaming RPCs hold their permit
//! until the stream ends.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::metrics as names;

#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    limit: usize,
}

/// Held for the life of an RPC.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        metrics::gauge!(names::RPCS_IN_FLIGHT).decrement(1.0);
    }
}

impl InFlightLimit {
    pub fn new(limit: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(limit)), limit }
    }

    /// Admits an RPC, or refuses it when `limit` RPCs are already in flight.
    pub fn admit(&self) -> Result<Admitted, Status> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                metrics::gauge!(names::RPCS_IN_FLIGHT).increment(1.0);
                Ok(Admitted { _permit: permit })
            }
            Err(_) => {
                metrics::counter!(names::RPCS_SHED).increment(1);
                Err(Status::resource_exhausted(format!(
                    "server overloaded: {} RPCs in flight (--max-in-flight); retry later",
                    self.limit
                )))
            }
        }
    }
}
