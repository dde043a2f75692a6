//! One HTTP connection to the target: TCP (no Nagle), TLS when the target is
//! `https://`, then hyper's HTTP/1.1 or HTTP/2 handshake. The sending half is what
//! callers keep ([`Sender`]); the connection itself runs in a task of its own and ends
//! when the sender is dropped or the peer closes.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::target::{Security, Target};
use crate::outcome::ErrorKind;
use loadlab_proto::tls::{TlsError, Trust, client_config, server_name};

pub type Body = Full<Bytes>;

/// A connection's byte stream: TCP, with TLS over it for `https://`.
pub type Stream = tokio_util::either::Either<tokio_rustls::client::TlsStream<TcpStream>, TcpStream>;

/// The sending half of one connection.
pub enum Sender {
    Http1(http1::SendRequest<Body>),
    Http2(http2::SendRequest<Body>),
    /// An idle HTTP/1.1 connection kept as its bare stream: no task, no buffers
    /// between requests (a simulated device's connection is idle most of the time);
    /// each request sets HTTP up on it again, which costs no round trip.
    Parked(Box<Stream>),
}

/// A request that could not be sent, and whether it may be retried on another
/// connection (it never left this one).
pub struct SendError {
    pub kind: ErrorKind,
    pub unsent: Option<Request<Body>>,
}

impl Sender {
    pub fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
            Sender::Parked(stream) => peer_closed(stream),
        }
    }

    /// Whether more than one request may use this connection at once.
    pub fn multiplexes(&self) -> bool {
        matches!(self, Sender::Http2(_))
    }

    pub fn clone_shared(&self) -> Option<Sender> {
        match self {
            Sender::Http2(sender) => Some(Sender::Http2(sender.clone())),
            Sender::Http1(_) | Sender::Parked(_) => None,
        }
    }

    /// Sends `request` and returns the answer's head (its body still to be read).
    /// Not for a parked connection: see [`Connector::exchange_parked`].
    pub async fn send(&mut self, request: Request<Body>) -> Result<Response<Incoming>, SendError> {
        let failed = |error: hyper::Error| SendError { kind: classify_hyper(&error), unsent: None };
        match self {
            Sender::Parked(_) => Err(SendError { kind: ErrorKind::Transport, unsent: Some(request) }),
            Sender::Http1(sender) => {
                sender.ready().await.map_err(|error| SendError { unsent: None, ..failed(error) })?;
                sender.try_send_request(request).await.map_err(|mut error| {
                    let unsent = error.take_message();
                    SendError { kind: classify_hyper(error.error()), unsent }
                })
            }
            Sender::Http2(sender) => {
                sender.ready().await.map_err(failed)?;
                sender.try_send_request(request).await.map_err(|mut error| {
                    let unsent = error.take_message();
                    SendError { kind: classify_hyper(error.error()), unsent }
                })
            }
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
    /// An exact HTTP/1.1 read buffer size, for many mostly idle connections with small
    /// answers (hyper's adaptive buffer starts at 8 KiB and keeps what it grew to).
    read_buffer: Option<usize>,
    /// Keep idle HTTP/1.1 connections parked ([`Sender::Parked`]).
    park: bool,
}

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
            read_buffer: None,
            park: false,
        }))
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// For many mostly idle connections with small answers (simulated devices): HTTP/1.1
    /// connections are parked between requests, and answers read into a small buffer.
    pub fn for_idle_connections(mut self: Arc<Self>) -> Arc<Self> {
        if let Some(connector) = Arc::get_mut(&mut self) {
            connector.read_buffer = Some(SMALL_READ_BUFFER);
            connector.park = !connector.http2;
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
                    if self.park {
                        return Ok(Sender::Parked(Box::new(self.secure(stream).await?)));
                    }
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
        socket.bind(SocketAddr::new(source, 0))?;
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

    /// HTTP/1.1 set up again on a parked stream (no round trip: HTTP/1.1 has no
    /// handshake); the caller drives the connection beside its request.
    pub async fn unpark(
        &self,
        stream: Box<Stream>,
    ) -> Result<(http1::SendRequest<Body>, http1::Connection<TokioIo<Stream>, Body>), ErrorKind> {
        http1::Builder::new()
            .read_buf_exact_size(self.read_buffer)
            .handshake(TokioIo::new(*stream))
            .await
            .map_err(|error| classify_hyper(&error))
    }

    async fn handshake(&self, stream: TcpStream) -> Result<Sender, ErrorKind> {
        match &self.tls {
            None => self.http(TokioIo::new(stream)).await,
            Some(tls) => {
                let name = server_name(&self.target.host).map_err(|_| ErrorKind::Tls)?;
                let stream = tls.connect(name, stream).await.map_err(|_| ErrorKind::Tls)?;
                self.http(TokioIo::new(stream)).await
            }
        }
    }

    async fn http<T>(&self, io: TokioIo<T>) -> Result<Sender, ErrorKind>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        if self.http2 {
            let (sender, connection) =
                http2::handshake(TokioExecutor::new(), io).await.map_err(|error| classify_hyper(&error))?;
            tokio::spawn(connection);
            Ok(Sender::Http2(sender))
        } else {
            let (sender, connection) = http1::Builder::new()
                .read_buf_exact_size(self.read_buffer)
                .handshake(io)
                .await
                .map_err(|error| classify_hyper(&error))?;
            tokio::spawn(connection);
            Ok(Sender::Http1(sender))
        }
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
            use std::io::ErrorKind as Io;
            return match io.kind() {
                Io::ConnectionRefused => ErrorKind::ConnectRefused,
                Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof => {
                    ErrorKind::ConnectionLost
                }
                Io::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Transport,
            };
        }
        source = inner.source();
    }
    ErrorKind::Transport
}

/// Whether the peer has closed a parked stream (or sent something unasked, which
/// leaves it unusable too): a non-blocking look at the socket.
fn peer_closed(stream: &Stream) -> bool {
    let tcp = match stream {
        tokio_util::either::Either::Left(tls) => tls.get_ref().0,
        tokio_util::either::Either::Right(tcp) => tcp,
    };
    let mut byte = [0u8; 1];
    !matches!(tcp.try_read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}
