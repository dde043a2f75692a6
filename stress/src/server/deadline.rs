//! The client's deadline (`grpc-timeout`), answered with `DEADLINE_EXCEEDED`.
//!
//! tonic enforces `grpc-timeout` itself, outside every layer a server can add, and
//! answers an expired deadline with `CANCELLED "Timeout expired"`. A client whose own
//! timer fires first reports `DEADLINE_EXCEEDED`; one whose server answer arrives
//! first reports `CANCELLED`, so the same event got either code at random. This layer
//! sits inside tonic's and enforces the same deadline a millisecond earlier, so the
//! server's answer is always the standard `DEADLINE_EXCEEDED`.
//!
//! Like tonic's, it bounds the time until the response starts: a unary or
//! client-streaming call that has not answered, or a streaming call whose handler has
//! not returned its stream. A response stream already flowing is ended by the client
//! when its deadline passes (it cancels the HTTP/2 stream, and the server's handler
//! sees the receiver gone).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tonic::body::Body;
use tonic::codegen::http;

/// How much earlier than tonic's own timer this layer's fires. tonic's timer starts
/// after this layer is called and rounds to the same millisecond tick, so any margin
/// at or above the timer resolution makes this layer's answer the one sent.
const MARGIN: Duration = Duration::from_millis(1);

/// Adds [`Deadline`] to every service.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.to_str().ok()?))
            .map(|timeout| Instant::now() + timeout.saturating_sub(MARGIN));
        let response = self.inner.call(request);
        Box::pin(async move {
            let Some(deadline) = deadline else {
                return response.await;
            };
            let expired = Arc::new(AtomicBool::new(false));
            let mut response = Box::pin(EXPIRED.scope(expired.clone(), response));
            tokio::select! {
                biased;
                answered = &mut response => answered,
                _ = tokio::time::sleep_until(deadline) => {
                    // Set before the handler is dropped, so its timer records why.
                    expired.store(true, Ordering::Relaxed);
                    drop(response);
                    Ok(tonic::Status::deadline_exceeded("deadline expired before the server answered").into_http())
                }
            }
        })
    }
}

tokio::task_local! {
    /// Set when the call's deadline expired and its handler is being dropped.
    static EXPIRED: Arc<AtomicBool>;
}

/// Inside a handler with a deadline: the flag that says its deadline expired, for
/// [`RpcTimer`](super::metrics::RpcTimer) to record `DEADLINE_EXCEEDED` rather than
/// `CANCELLED` when the handler is dropped.
pub fn expired_flag() -> Option<Arc<AtomicBool>> {
    EXPIRED.try_with(Arc::clone).ok()
}

/// Parses a `grpc-timeout` value (gRPC over HTTP/2: at most 8 digits, then one of
/// `H M S m u n`); `None` when it is malformed, as tonic treats it.
pub fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_grpc_timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeout_values() {
        assert_eq!(parse_grpc_timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for malformed in ["", "m", "300", "300x", "-3m", "123456789m", "3.5S"] {
            assert_eq!(parse_grpc_timeout(malformed), None, "{malformed}");
        }
    }
}
