//! The socket as hyper sees it: every read marks the connection active, and the one
//! answer hyper writes on its own is replaced by the API's JSON.
//!
//! When hyper cannot parse a request head it answers by itself, before any service
//! runs, with a bodiless `400` (bad request line or header), `414` (a request target
//! over 65,534 bytes) or `431` (over 100 header fields, or a head over ~408 KiB), and
//! closes. hyper offers no hook for that answer, and the URI limit is fixed (`http`'s
//! `Uri` cannot hold more), so raising limits cannot route those requests to a JSON
//! layer. Instead, a write that is exactly such an answer — a complete response head
//! with one of those statuses, `content-length: 0` and nothing after it — made while no
//! request is being served, is swapped for the same status with the JSON body of
//! [`ApiError`]. The router never makes such a response (every error it makes has a
//! JSON body), so nothing else can match; anything that does not match passes through
//! untouched.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::activity::Activity;
use crate::http::ApiError;

/// A connection's socket, watched.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    /// The JSON answer standing in for hyper's own, and how much of it is written.
    /// Once set, hyper's remaining writes are swallowed: it closes after such an answer.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity, replacement: None }
    }
}

impl<S: AsyncWrite + Unpin> Watched<S> {
    /// Writes what is left of the replacement.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((bytes, written)) = &mut self.replacement else { return Poll::Ready(Ok(())) };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// The status of `bytes` if they are exactly one of hyper's own bodiless error
/// answers to an unparsable request head.
pub fn hyper_error_status(bytes: &[u8]) -> Option<u16> {
    // Most writes are ordinary responses: skip them without parsing
    // (`HTTP/1.1 400 …`: the status is bytes 9 to 11).
    if !matches!(bytes.get(9..12), Some(b"400" | b"414" | b"431")) {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) if length == bytes.len() => {}
        _ => return None,
    }
    let status = response.code.filter(|code| ApiError::for_hyper_status(*code).is_some())?;
    let bodiless = response
        .headers
        .iter()
        .any(|header| header.name.eq_ignore_ascii_case("content-length") && header.value == b"0");
    bodiless.then_some(status)
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.read(Instant::now());
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.replacement.is_none() && !self.activity.responding() {
            let error = hyper_error_status(buf).and_then(ApiError::for_hyper_status);
            if let Some(error) = error {
                tracing::debug!(
                    status = error.status_code().as_u16(),
                    "answering an unparsable request head with JSON"
                );
                self.replacement = Some((error.to_http1(), 0));
            }
        }
        if self.replacement.is_some() {
            ready!(self.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_bodiless_answers_are_recognised() {
        let date = "date: Thu, 01 Jan 2026 00:00:00 GMT\r\n";
        for status in [400, 414, 431] {
            let own = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{date}\r\n");
            assert_eq!(hyper_error_status(own.as_bytes()), Some(status));
        }
        for other in [
            // An answer of the router: it has a body.
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".to_string(),
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n{date}\r\n"),
            // Other statuses, and anything incomplete or with bytes after the head.
            format!("HTTP/1.1 204 No Content\r\n{date}\r\n"),
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{date}\r\n"),
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n".to_string(),
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{date}\r\nHTTP/1.1"),
            "{\"error\":\"x\"}".to_string(),
            String::new(),
        ] {
            assert_eq!(hyper_error_status(other.as_bytes()), None, "{other:?}");
        }
    }
}
