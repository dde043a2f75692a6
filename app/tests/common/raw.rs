//! A raw HTTP/1.1 client over a plain `TcpStream`, for tests that must misbehave as
//! no HTTP library will: send nothing, half a head, a body a byte at a time, or sit
//! idle, and then watch what the server does with the socket.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// One parsed response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts a JSON error body (`error`, `message`) of `kind` with `status`.
    pub fn assert_json_error(&self, status: u16, kind: &str) {
        let body = self.json();
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        assert_eq!(body["error"], kind, "{}", String::from_utf8_lossy(&self.body));
        assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
    }
}

/// A connection's reading side, with what it has read but not yet consumed.
pub struct RawReader {
    half: OwnedReadHalf,
    buffered: Vec<u8>,
}

/// How a wait for the server to close ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// EOF or reset, after this long.
    After(Duration),
    /// Still open when the wait ran out.
    StillOpen,
}

impl RawReader {
    /// Reads one response (head, then a `content-length` body), giving up after `limit`.
    pub async fn response(&mut self, limit: Duration) -> Option<RawResponse> {
        tokio::time::timeout(limit, self.read_response()).await.ok().flatten()
    }

    async fn read_response(&mut self) -> Option<RawResponse> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = parsed.parse(&self.buffered) {
                let status = parsed.code?;
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|header| (header.name.to_string(), String::from_utf8_lossy(header.value).into_owned()))
                    .collect();
                let length = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.parse::<usize>().ok())
                    .unwrap_or(0);
                while self.buffered.len() < head + length {
                    self.fill().await?;
                }
                let body = self.buffered[head..head + length].to_vec();
                self.buffered.drain(..head + length);
                return Some(RawResponse { status, headers, body });
            }
            self.fill().await?;
        }
    }

    /// Reads more; `None` at EOF or on an error.
    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 8192];
        match self.half.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }

    /// Waits up to `limit` for the server to close the connection (EOF or reset),
    /// discarding anything it sends first.
    pub async fn closed_within(&mut self, limit: Duration) -> Closed {
        let started = Instant::now();
        match tokio::time::timeout(limit, async { while self.fill().await.is_some() {} }).await {
            Ok(()) => Closed::After(started.elapsed()),
            Err(_) => Closed::StillOpen,
        }
    }

    /// Whether the connection is still open, and silent, after `wait`.
    pub async fn open_and_silent_for(&mut self, wait: Duration) -> bool {
        let before = self.buffered.len();
        self.closed_within(wait).await == Closed::StillOpen && self.buffered.len() == before
    }
}

/// A raw connection to `base` (`http://host:port`), split so one task may write while
/// another reads.
pub async fn connect(base: &str) -> (RawReader, OwnedWriteHalf) {
    let address = base.trim_start_matches("http://");
    let stream = TcpStream::connect(address).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (half, writer) = stream.into_split();
    (RawReader { half, buffered: Vec::new() }, writer)
}

/// Sends `bytes` one at a time, `interval` apart, until done or the server stops
/// taking them; returns how many were sent.
pub async fn trickle(writer: &mut OwnedWriteHalf, bytes: &[u8], interval: Duration) -> usize {
    for (sent, byte) in bytes.iter().enumerate() {
        if writer.write_all(std::slice::from_ref(byte)).await.is_err() {
            return sent;
        }
        tokio::time::sleep(interval).await;
    }
    bytes.len()
}

/// `GET path` with keep-alive.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: device-api\r\n\r\n").into_bytes()
}
