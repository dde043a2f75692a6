//! The two bodies the transport wraps: a request body that must arrive by a deadline
//! ([`TimedBody`]), and a response body that tells the connection when it is done
//! ([`Finished`]).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::activity::InFlight;
use crate::metrics as names;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body did not arrive within `--body-read-timeout`.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("the request body did not arrive within {limit:?}")]
pub struct BodyReadTimeout {
    pub limit: Duration,
}

/// A request body with a deadline for its last byte. The timer is only armed when
/// the body makes a reader wait, so a body that has already arrived costs nothing.
pub struct TimedBody {
    inner: Incoming,
    /// `None` when the limit is too long to add to the clock: no deadline then.
    deadline: Option<Instant>,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    pub fn new(inner: Incoming, limit: Duration) -> Self {
        Self { inner, deadline: Instant::now().checked_add(limit), limit, timer: None }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(BoxError::from)));
        }
        let Some(deadline) = this.deadline else { return Poll::Pending };
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            metrics::counter!(names::CONNECTION_TIMEOUTS, "phase" => "body_read").increment(1);
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout { limit: this.limit }))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`InFlight`] guard: when hyper drops it
/// (sent, or the client gone) the connection may go idle.
pub struct Finished {
    body: axum::body::Body,
    _request: InFlight,
}

impl Finished {
    pub fn new(body: axum::body::Body, request: InFlight) -> Self {
        Self { body, _request: request }
    }
}

impl Body for Finished {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
