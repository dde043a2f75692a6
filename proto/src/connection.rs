//! One HTTP/2 connection that gRPC calls go straight onto, driven by the `h2` crate.
//!
//! A call's headers, and whatever its body has ready at once, are handed to h2 in the
//! calling task; the connection's reads and writes run in one task of their own. A
//! body with more to come (a streaming call) gets a task that pipes the rest within
//! HTTP/2 flow control. Unary calls, the common case under load, so cost no task and
//! no hand-over: hyper's client, which this replaces, sent every call through a
//! channel to its connection task and spawned a task per call to pipe the body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::codegen::{Bytes, StdError, http};

/// What a request body may put in h2's buffer without waiting for the peer's flow
/// control window: enough for any unary message this project sends whole, small
/// enough that an always-ready stream cannot fill memory.
const SEND_AT_ONCE: usize = 64 * 1024;

/// Windows as hyper's client sets them (h2's default is 64 KiB, which would stall
/// large messages on a round trip per window).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const SEND_BUFFER: usize = 1024 * 1024;

/// One HTTP/2 connection; clones share it. A `tower::Service`, so tonic's generated
/// clients take it as they take a `Channel`.
#[derive(Clone)]
pub struct Connection {
    sender: SendRequest<Bytes>,
    /// `scheme://host:port`, which tonic puts before each call's path.
    origin: http::Uri,
    /// Set when the connection's task ends: closed by the peer, or failed.
    closed: Arc<AtomicBool>,
}

impl Connection {
    /// The HTTP/2 handshake on `io`; the connection then runs in a task of its own.
    pub async fn handshake<T>(io: T, origin: http::Uri) -> Result<Self, h2::Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(SEND_BUFFER)
            .handshake(io)
            .await?;
        let closed = Arc::new(AtomicBool::new(false));
        let marker = closed.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            marker.store(true, Ordering::Release);
        });
        Ok(Self { sender, origin, closed })
    }

    pub fn origin(&self) -> http::Uri {
        self.origin.clone()
    }

    /// Whether the connection has ended (closed by the peer, or failed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Connection {
    /// Marks the connection closed when h2 says it is done (the peer's GOAWAY, a broken
    /// socket), so its owner reconnects rather than waiting for the task to end, which
    /// h2 delays until the last stream has.
    fn note(&self, error: &h2::Error) {
        if error.is_go_away() || error.is_io() {
            self.closed.store(true, Ordering::Release);
        }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Connection {
    type Response = http::Response<ResponseBody>;
    type Error = StdError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// Fails once the connection has; a fresh clone of h2's handle is otherwise ready at
    /// once, and calls past the peer's limit on concurrent streams wait in h2's queue
    /// (as they did in hyper's).
    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(context).map_err(|error| {
            self.closed.store(true, Ordering::Release);
            error.into()
        })
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (mut head, mut body) = request.into_parts();
        // A client made with `new` (not `with_origin`) sends the path alone; HTTP/2
        // needs the scheme and authority too.
        if head.uri.scheme().is_none() {
            let mut parts = head.uri.clone().into_parts();
            parts.scheme = self.origin.scheme().cloned();
            parts.authority = self.origin.authority().cloned();
            if let Ok(uri) = http::Uri::from_parts(parts) {
                head.uri = uri;
            }
        }
        let end_of_stream = body.is_end_stream();
        let opened = self.sender.send_request(http::Request::from_parts(head, ()), end_of_stream);
        if let Err(error) = &opened {
            self.note(error);
        }
        Box::pin(async move {
            let (response, mut stream) = opened?;
            let mut pipe_task = PipeGuard(None);
            if !end_of_stream {
                let sent = std::future::poll_fn(|context| Poll::Ready(send_ready(&mut body, &mut stream, context)));
                match sent.await {
                    Sent::All => {}
                    Sent::Part => pipe_task.0 = Some(tokio::spawn(pipe(body, stream)).abort_handle()),
                    Sent::Failed(error) => {
                        stream.send_reset(Reason::CANCEL);
                        return Err(error);
                    }
                }
            }
            let response = response.await?;
            Ok(response.map(|stream| ResponseBody::new(stream, pipe_task)))
        })
    }
}

/// Aborts a call's pipe task when dropped, by the call's future or, once the answer
/// has come, by its body: a call given up (an endless stream ended by dropping it)
/// must stop sending. The aborted task drops its half of the stream, and h2 resets a
/// stream once no handle to it is left.
struct PipeGuard(Option<tokio::task::AbortHandle>);

impl Drop for PipeGuard {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// How far [`send_ready`] got.
enum Sent {
    /// The whole body, end of stream included.
    All,
    /// What was ready, up to [`SEND_AT_ONCE`]; the rest is still to come.
    Part,
    /// The body failed (tonic's encoder reports a `Status`), or h2 refused a frame.
    Failed(StdError),
}

/// Hands h2 the frames `body` has ready now, up to [`SEND_AT_ONCE`] bytes.
fn send_ready(body: &mut tonic::body::Body, stream: &mut SendStream<Bytes>, context: &mut Context<'_>) -> Sent {
    let mut sent = 0;
    while sent < SEND_AT_ONCE {
        match Pin::new(&mut *body).poll_frame(context) {
            Poll::Pending => return Sent::Part,
            Poll::Ready(None) => return finish(stream),
            Poll::Ready(Some(Err(status))) => return Sent::Failed(status.into()),
            Poll::Ready(Some(Ok(frame))) => match send_frame(frame, body.is_end_stream(), stream) {
                Ok(Some(size)) => sent += size,
                Ok(None) => return Sent::All,
                Err(error) => return Sent::Failed(error.into()),
            },
        }
    }
    Sent::Part
}

/// Sends one frame; the data's size, or `None` once the stream has ended.
fn send_frame(frame: Frame<Bytes>, last: bool, stream: &mut SendStream<Bytes>) -> Result<Option<usize>, h2::Error> {
    match frame.into_data() {
        Ok(data) => {
            let size = data.len();
            stream.send_data(data, last)?;
            Ok((!last).then_some(size))
        }
        Err(frame) => {
            if let Ok(trailers) = frame.into_trailers() {
                stream.send_trailers(trailers)?;
                return Ok(None);
            }
            Ok(Some(0))
        }
    }
}

/// Ends the stream after a body that said nothing of its end before it.
fn finish(stream: &mut SendStream<Bytes>) -> Sent {
    match stream.send_data(Bytes::new(), true) {
        Ok(()) => Sent::All,
        Err(error) => Sent::Failed(error.into()),
    }
}

/// Pipes the rest of a streaming body, each data frame sent only as the peer's flow
/// control window allows, and stops when the peer resets the stream. A body that fails
/// here resets the stream: the caller, already holding the answer, sees it cancelled.
async fn pipe(mut body: tonic::body::Body, mut stream: SendStream<Bytes>) {
    loop {
        let next = std::future::poll_fn(|context| {
            if stream.poll_reset(context).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut body).poll_frame(context).map(Some)
        })
        .await;
        let frame = match next {
            // The peer reset the stream: nothing more can be sent.
            None => return,
            Some(None) => {
                let _ = finish(&mut stream);
                return;
            }
            Some(Some(Err(_))) => return stream.send_reset(Reason::CANCEL),
            Some(Some(Ok(frame))) => frame,
        };
        let last = body.is_end_stream();
        let sent = match frame.into_data() {
            Ok(data) => send_within_window(&mut stream, data, last).await.map(|()| !last),
            Err(frame) => send_frame(frame, last, &mut stream).map(|more| more.is_some()),
        };
        match sent {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => return stream.send_reset(Reason::CANCEL),
        }
    }
}

/// Sends `data` in pieces no larger than the capacity h2 assigns the stream.
async fn send_within_window(stream: &mut SendStream<Bytes>, mut data: Bytes, last: bool) -> Result<(), h2::Error> {
    if data.is_empty() {
        return stream.send_data(data, last);
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|context| stream.poll_capacity(context))
            .await
            .ok_or_else(|| h2::Error::from(Reason::CANCEL))??;
        let piece = data.split_to(granted.min(data.len()));
        stream.send_data(piece, last && data.is_empty())?;
    }
    Ok(())
}

/// A response's body: its data frames as they arrive (each returned to the flow
/// control window once read), then its trailers, which carry a gRPC call's status.
pub struct ResponseBody {
    stream: RecvStream,
    data_done: bool,
    trailers_done: bool,
    /// The task still sending the request's stream, if any: stopped with the body.
    _pipe_task: PipeGuard,
}

impl ResponseBody {
    fn new(stream: RecvStream, pipe_task: PipeGuard) -> Self {
        Self { stream, data_done: false, trailers_done: false, _pipe_task: pipe_task }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(context)) {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => self.data_done = true,
            }
        }
        if self.trailers_done {
            return Poll::Ready(None);
        }
        let trailers = ready!(self.stream.poll_trailers(context));
        self.trailers_done = true;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    /// Only once the trailers were handed out: they carry the call's status.
    fn is_end_stream(&self) -> bool {
        self.trailers_done
    }
}
