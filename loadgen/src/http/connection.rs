//! One HTTP connection to the target: TCP (no Nagle), TLS when the target is
//! `https://`, then HTTP/1.1 ([`super::h1`], driven by the request using it) or
//! hyper's HTTP/2 handshake (the connection runs in a task of its own, shared by many
//! requests). Callers keep a [`Sender`].

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http2;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::h1::Http1;
use super::target::{Security, Target};
use crate::outcome::ErrorKind;
use loadlab_proto::tls::{TlsError, Trust, client_config, server_name};

pub type Body = Full<Bytes>;

/// A connection's byte stream: TCP, with TLS over it for `https://`.
pub type Stream = tokio_util::either::Either<tokio_rustls::client::TlsStream<TcpStream>, TcpStream>;

/// One connection, as its user keeps it.
pub enum Sender {
    /// Boxed: a lane keeps its sender inline, and most lanes are idle.
    Http1(Box<Http1>),
    Http2(http2::SendRequest<Body>),
}

/// A request that failed, and whether it may be retried on another connection (no
/// part of an answer came, so the server did not act on it).
pub struct SendError {
    pub kind: ErrorKind,
    pub retry: bool,
}

impl Sender {
    /// Whether the connection can carry no more requests.
    pub fn is_closed(&mut self) -> bool {
        match self {
            Sender::Http1(http1) => http1.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    pub fn clone_shared(&self) -> Option<Sender> {
        match self {
            Sender::Http2(sender) => Some(Sender::Http2(sender.clone())),
            Sender::Http1(_) => None,
        }
    }

    /// Sends `request` on an HTTP/2 connection and returns the answer's head (its
    /// body still to be read); HTTP/1.1 exchanges go through [`Http1::exchange`].
    pub async fn send(&mut self, request: Request<Body>) -> Result<Response<Incoming>, SendError> {
        match self {
            Sender::Http2(sender) => {
                sender.ready().await.map_err(|error| SendError { kind: classify_hyper(&error), retry: false })?;
                sender.try_send_request(request).await.map_err(|mut error| SendError {
                    kind: classify_hyper(error.error()),
                    retry: error.take_message().is_some(),
                })
            }
            Sender::Http1(_) => Err(SendError { kind: ErrorKind::Transport, retry: false }),
        }
    }
}

/// Opens connections to one target.
pub struct Connector {
    target: Target,
    addresses: Vec<SocketAddr>,
    tls: Option<TlsConnector>,
    http2: bool,
    /// Local addresses to connect from, in turn (one address has ~28,000 ephemeral
    /// ports per destination); empty: the system's choice.
    sources: Vec<std::net::IpAddr>,
    next_source: std::sync::atomic::AtomicUsize,
    /// The next local port to try for a source address (see [`SOURCE_PORTS`]).
    next_port: std::sync::atomic::AtomicUsize,
    /// The HTTP/1.1 read buffer's size (it grows for a long answer head).
    read_buffer: usize,
    /// Release an HTTP/1.1 connection's buffers between requests.
    park: bool,
}

/// The local ports connections from a `--source-address` are bound to.
const SOURCE_PORTS: std::ops::Range<u16> = 20_000..65_000;

/// The read buffer of a connection that carries requests back to back.
pub const READ_BUFFER: usize = 8192;
/// The read buffer of a simulated device's connection: device-api's answers are a
/// few hundred bytes, and a device's connection is idle most of the time.
pub const SMALL_READ_BUFFER: usize = 2048;

impl Connector {
    /// Resolves the target's host once, and prepares TLS for `https://`.
    pub async fn new(
        target: &Target,
        trust: &Trust,
        http2: bool,
        sources: Vec<std::net::IpAddr>,
    ) -> Result<Arc<Self>, String> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|error| format!("cannot resolve `{}`: {error}", target.host))?
            .collect();
        if addresses.is_empty() {
            return Err(format!("`{}` resolves to no address", target.host));
        }
        let tls = match target.security {
            Security::Plain => None,
            Security::Tls => {
                server_name(&target.host)?;
                let alpn: &[&[u8]] = if http2 { &[b"h2"] } else { &[b"http/1.1"] };
                let config = client_config(trust, alpn).map_err(|error| match error {
                    TlsError::NoTrust => {
                        "no system CA certificates found: give --ca FILE (or --insecure for a test server)".into()
                    }
                    other => other.to_string(),
                })?;
                Some(TlsConnector::from(config))
            }
        };
        Ok(Arc::new(Self {
            target: target.clone(),
            addresses,
            tls,
            http2,
            sources,
            next_source: std::sync::atomic::AtomicUsize::new(0),
            next_port: std::sync::atomic::AtomicUsize::new(rand::random_range(0..usize::from(u16::MAX))),
            read_buffer: READ_BUFFER,
            park: false,
        }))
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// For many mostly idle connections with small answers (simulated devices): an
    /// HTTP/1.1 connection holds no buffers between requests, and reads answers into a
    /// small one.
    pub fn for_idle_connections(mut self: Arc<Self>) -> Arc<Self> {
        if let Some(connector) = Arc::get_mut(&mut self) {
            connector.read_buffer = SMALL_READ_BUFFER;
            connector.park = true;
        }
        self
    }

    /// Whether connections speak HTTP/2 (`--http2`).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// A new connection, tried on each resolved address in turn.
    pub async fn connect(&self) -> Result<Sender, ErrorKind> {
        let mut failure = ErrorKind::ConnectError;
        for address in &self.addresses {
            match self.open(*address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return self.handshake(stream).await;
                }
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                    failure = ErrorKind::ConnectRefused;
                }
                Err(_) => failure = ErrorKind::ConnectError,
            }
        }
        Err(failure)
    }

    /// A TCP connection to `address`, from the next source address when there are some.
    async fn open(&self, address: SocketAddr) -> std::io::Result<TcpStream> {
        if self.sources.is_empty() {
            return TcpStream::connect(address).await;
        }
        let turn = self.next_source.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let source = self.sources[turn % self.sources.len()];
        let socket =
            if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        // Each source address's ports in turn, a busy one skipped: bind() to port 0
        // searches the address's whole range for a free port, milliseconds each with
        // 20,000 connections open, and it ran in the attack loop's task (a run of 19,000
        // devices had a p99 schedule lag of 25 s); naming the port is one lookup.
        // Each process starts at a random port, so instances sharing an address rarely
        // collide, and probes that found a port busy are skipped by the next connect.
        let range = usize::from(SOURCE_PORTS.end - SOURCE_PORTS.start);
        let first = self.next_port.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bound = (0..64).any(|attempt| {
            let port = SOURCE_PORTS.start + ((first + attempt) % range) as u16;
            let bound = socket.bind(SocketAddr::new(source, port)).is_ok();
            if !bound {
                self.next_port.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            bound
        });
        if !bound {
            socket.bind(SocketAddr::new(source, 0))?; // the kernel's search, as a last resort
        }
        socket.connect(address).await
    }

    /// The stream, with TLS over it when the target is `https://`.
    async fn secure(&self, stream: TcpStream) -> Result<Stream, ErrorKind> {
        match &self.tls {
            None => Ok(tokio_util::either::Either::Right(stream)),
            Some(tls) => {
                let name = server_name(&self.target.host).map_err(|_| ErrorKind::Tls)?;
                Ok(tokio_util::either::Either::Left(tls.connect(name, stream).await.map_err(|_| ErrorKind::Tls)?))
            }
        }
    }

    async fn handshake(&self, stream: TcpStream) -> Result<Sender, ErrorKind> {
        let stream = self.secure(stream).await?;
        if !self.http2 {
            return Ok(Sender::Http1(Box::new(Http1::new(stream, self.read_buffer, self.park))));
        }
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|error| classify_hyper(&error))?;
        tokio::spawn(connection);
        Ok(Sender::Http2(sender))
    }
}

/// Names a hyper error by its kind, and by the I/O error beneath it.
pub fn classify_hyper(error: &hyper::Error) -> ErrorKind {
    if error.is_timeout() {
        return ErrorKind::Timeout;
    }
    if error.is_parse() || error.is_parse_status() || error.is_parse_too_large() {
        return ErrorKind::Protocol;
    }
    if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        return ErrorKind::ConnectionLost;
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return classify_io(io);
        }
        source = inner.source();
    }
    ErrorKind::Transport
}

/// Names an I/O error on a connection.
pub fn classify_io(error: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match error.kind() {
        Io::ConnectionRefused => ErrorKind::ConnectRefused,
        Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof => ErrorKind::ConnectionLost,
        Io::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Transport,
    }
}

/// Whether the kernel reported the socket readable since its last read came up
/// short: looked at without a system call.
pub(super) fn read_ready(stream: &Stream) -> bool {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    tcp_of(stream).poll_read_ready(&mut context).is_ready()
}

/// Whether rustls holds bytes of a TLS stream not yet read (sent after the last
/// answer's end, in its last record), or the peer's close: the TCP socket shows
/// neither. Always `false` in clear.
pub(super) fn tls_unread(stream: &mut Stream) -> bool {
    match stream {
        tokio_util::either::Either::Left(tls) => match tls.get_mut().1.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        },
        tokio_util::either::Either::Right(_) => false,
    }
}

fn tcp_of(stream: &Stream) -> &TcpStream {
    match stream {
        tokio_util::either::Either::Left(tls) => tls.get_ref().0,
        tokio_util::either::Either::Right(tcp) => tcp,
    }
}

/// Whether the peer has closed an idle connection (or sent something unasked, which
/// leaves it unusable too): a non-blocking look at the socket.
pub(super) fn peer_closed(stream: &Stream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(tcp_of(stream).try_read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}
