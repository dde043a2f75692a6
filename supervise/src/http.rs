//! The one small HTTP client for probes and little JSON APIs on loopback or inside a
//! network namespace: `GET` as HTTP/1.0, so the server closes the connection after
//! its answer (no keep-alive, no chunked bodies), blocking, every step bounded by a
//! timeout. Not for load (loadgen has its own) and not for Prometheus queries
//! ([`crate::prometheus`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe waits for the status line.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a whole answer may take to read.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// The status code of `GET path`, reading only the status line (readiness probes
/// poll, and `/metrics` bodies are large); `None` when nothing answers.
pub fn status(address: SocketAddr, path: &str) -> Option<u16> {
    let mut head = [0u8; 12];
    send_get(address, path, STATUS_TIMEOUT).ok()?.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// `GET path`: its status and body.
pub fn get(address: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut response = String::new();
    send_get(address, path, BODY_TIMEOUT)?.read_to_string(&mut response)?;
    let malformed = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not HTTP from {address}"));
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).ok_or_else(malformed)?;
    Ok(Response { status, body: body.to_string() })
}

fn send_get(address: SocketAddr, path: &str, read_timeout: Duration) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(read_timeout))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body_of_a_real_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 256];
                let read = stream.read(&mut request).unwrap();
                assert!(request[..read].starts_with(b"GET /ready HTTP/1.0\r\n"));
                stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nwait").unwrap();
            }
        });
        assert_eq!(status(address, "/ready"), Some(503));
        assert_eq!(get(address, "/ready").unwrap(), Response { status: 503, body: "wait".into() });
        server.join().unwrap();
        assert_eq!(status(address, "/ready"), None, "nothing listens any more");
    }
}
