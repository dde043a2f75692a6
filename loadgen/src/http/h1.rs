//! HTTP/1.1 on a kept-alive connection, one request at a time, the way wrk speaks it:
//! the request written from prepared bytes in one write, the answer's head parsed by
//! `httparse` (the parser hyper itself uses), and its body read to its end by the
//! framing rules of RFC 9112 §6.3: no body (HEAD, 1xx, 204, 304), `Transfer-Encoding:
//! chunked`, `Content-Length`, or until the server closes.
//!
//! Why not hyper's client for this: hyper hands each request to a connection task
//! through a channel, returns the answer through a oneshot and builds header maps both
//! ways. Callgrind counted about 26,000 instructions per request in that path (wrk
//! spends under 3,000), and it held loadgen to about half of wrk's rate against nginx.
//! A load generator needs less than a general client: it knows its request in
//! advance, and it reads each answer to its end, mostly to throw it away. HTTP/2,
//! with its multiplexing, still goes through hyper ([`super::connection`]).

use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::Template;
use super::connection::{SendError, Stream, classify_io, peer_closed, read_ready, tls_unread};
use crate::outcome::{ErrorKind, Outcome};

/// The largest answer head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most headers an answer may have.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most bytes of an answer's body kept when the caller wants it (logins).
const KEPT_BODY_LIMIT: usize = 1 << 20;

/// Appends what of `data` fits in the first [`KEPT_BODY_LIMIT`] bytes of a body (for
/// either protocol's answers).
pub(super) fn keep_prefix(kept: &mut Vec<u8>, data: &[u8]) {
    let room = KEPT_BODY_LIMIT.saturating_sub(kept.len()).min(data.len());
    kept.extend_from_slice(&data[..room]);
}

/// A request as this module sends it: a template, its body, and a header that varies
/// per request (a device's credential).
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub template: &'a Template,
    pub body: &'a Bytes,
    pub extra: Option<(&'a HeaderName, &'a HeaderValue)>,
}

/// What an exchange produced: the outcome, the body when asked for, and whether the
/// connection may carry another request.
pub type Exchanged = (Outcome, Bytes, bool);

/// One HTTP/1.1 connection.
pub struct Http1 {
    stream: Stream,
    /// Bytes read; `buffer[start..end]` is what is not consumed yet.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// The request being written, kept for the next one.
    out: Vec<u8>,
    /// The read buffer's size when (re)allocated.
    buffer_size: usize,
    /// Release both buffers between requests (many mostly idle connections).
    park: bool,
}

/// How an answer's body is delimited (RFC 9112 §6.3).
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What is taken from an answer's head.
struct Head {
    status: u16,
    framing: Framing,
    /// The server will close the connection after this answer.
    close: bool,
}

impl Http1 {
    /// The buffers are allocated by the first exchange.
    pub fn new(stream: Stream, buffer_size: usize, park: bool) -> Self {
        Self { stream, buffer: Vec::new(), start: 0, end: 0, out: Vec::new(), buffer_size, park }
    }

    /// Whether the peer closed the connection (or sent something unasked) while it sat
    /// idle: the socket's readiness is looked at without a system call unless the
    /// kernel reported something.
    pub fn is_closed(&mut self) -> bool {
        tls_unread(&mut self.stream) || (read_ready(&self.stream) && peer_closed(&self.stream))
    }

    /// Sends `request` and reads the answer to its end. An error that left the
    /// request unsent is marked for a retry on another connection.
    pub async fn exchange(&mut self, request: Outgoing<'_>, keep_body: bool) -> Result<Exchanged, SendError> {
        request.template.encode(request.body, request.extra, &mut self.out);
        if self.buffer.is_empty() {
            self.buffer = vec![0; self.buffer_size];
        }
        let result = self.round_trip(request.template.is_head(), keep_body).await;
        if self.park {
            self.buffer = Vec::new();
            self.out = Vec::new();
        }
        result
    }

    async fn round_trip(&mut self, head_request: bool, keep_body: bool) -> Result<Exchanged, SendError> {
        // Flushed too: over TLS, rustls may hold the tail of the request's records until
        // asked to write them out.
        let written = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        if let Err(error) = written.await {
            // Nothing of an answer came: another connection may take the request.
            return Err(SendError { kind: classify_io(&error), retry: true });
        }
        let failed = |kind| SendError { kind, retry: false };
        let head = self.read_head(head_request).await.map_err(failed)?;
        let mut kept = keep_body.then(Vec::new);
        let delimited = match head.framing {
            Framing::Empty => true,
            Framing::Length(length) => {
                self.read_exactly(length, kept.as_mut()).await.map_err(failed)?;
                true
            }
            Framing::Chunked => {
                self.read_chunked(kept.as_mut()).await.map_err(failed)?;
                true
            }
            Framing::UntilClose => {
                self.read_to_close(kept.as_mut()).await.map_err(failed)?;
                false
            }
        };
        // Bytes past the answer's end were never asked for: the connection is unusable.
        let keep = delimited && !head.close && self.start == self.end;
        self.start = 0;
        self.end = 0;
        Ok((Outcome::http(head.status), kept.map(Bytes::from).unwrap_or_default(), keep))
    }

    /// Reads more bytes after `end`, making room first; 0 at the end of the stream.
    async fn fill(&mut self, limit: usize) -> Result<usize, ErrorKind> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buffer.len() {
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buffer.len() < limit {
                let grown = (self.buffer.len() * 2).clamp(1024, limit);
                self.buffer.resize(grown, 0);
            } else {
                return Err(ErrorKind::Protocol); // a head or chunk line past its limit
            }
        }
        let read = self.stream.read(&mut self.buffer[self.end..]).await.map_err(|error| classify_io(&error))?;
        self.end += read;
        Ok(read)
    }

    /// Reads and parses the answer's head, skipping interim (1xx) answers.
    async fn read_head(&mut self, head_request: bool) -> Result<Head, ErrorKind> {
        loop {
            match parse_head(&self.buffer[self.start..self.end], head_request)? {
                Some((head, length)) => {
                    self.start += length;
                    if !(100..200).contains(&head.status) {
                        return Ok(head);
                    }
                    if head.status == 101 {
                        return Err(ErrorKind::Protocol); // no upgrade was asked for
                    }
                }
                None => {
                    if self.fill(MAX_HEAD).await? == 0 {
                        return Err(ErrorKind::ConnectionLost);
                    }
                }
            }
        }
    }

    /// Consumes up to `wanted` buffered bytes into `kept`; returns how many.
    fn consume(&mut self, wanted: u64, kept: Option<&mut Vec<u8>>) -> u64 {
        let available = (self.end - self.start) as u64;
        let taken = wanted.min(available) as usize;
        if let Some(kept) = kept {
            keep_prefix(kept, &self.buffer[self.start..self.start + taken]);
        }
        self.start += taken;
        taken as u64
    }

    /// Reads `length` bytes of body.
    async fn read_exactly(&mut self, mut length: u64, mut kept: Option<&mut Vec<u8>>) -> Result<(), ErrorKind> {
        loop {
            length -= self.consume(length, kept.as_deref_mut());
            if length == 0 {
                return Ok(());
            }
            if self.fill(self.buffer.len()).await? == 0 {
                return Err(ErrorKind::ConnectionLost);
            }
        }
    }

    /// Reads a chunked body and its trailers.
    async fn read_chunked(&mut self, mut kept: Option<&mut Vec<u8>>) -> Result<(), ErrorKind> {
        loop {
            let size = match httparse::parse_chunk_size(&self.buffer[self.start..self.end]) {
                Ok(httparse::Status::Complete((length, size))) => {
                    self.start += length;
                    size
                }
                Ok(httparse::Status::Partial) => {
                    if self.end - self.start > MAX_CHUNK_LINE {
                        return Err(ErrorKind::Protocol);
                    }
                    if self.fill(MAX_CHUNK_LINE.max(self.buffer.len())).await? == 0 {
                        return Err(ErrorKind::ConnectionLost);
                    }
                    continue;
                }
                Err(_) => return Err(ErrorKind::Protocol),
            };
            if size == 0 {
                return self.read_trailers().await;
            }
            self.read_exactly(size, kept.as_deref_mut()).await?;
            while self.end - self.start < 2 {
                if self.fill(self.buffer.len()).await? == 0 {
                    return Err(ErrorKind::ConnectionLost);
                }
            }
            if &self.buffer[self.start..self.start + 2] != b"\r\n" {
                return Err(ErrorKind::Protocol);
            }
            self.start += 2;
        }
    }

    /// Skips the trailer section after the last chunk, up to its empty line.
    async fn read_trailers(&mut self) -> Result<(), ErrorKind> {
        let mut seen = 0;
        loop {
            match self.buffer[self.start..self.end].windows(2).position(|pair| pair == b"\r\n") {
                Some(0) => {
                    self.start += 2;
                    return Ok(());
                }
                Some(line) => {
                    seen += line + 2;
                    self.start += line + 2;
                }
                None => {
                    if seen + (self.end - self.start) > MAX_CHUNK_LINE {
                        return Err(ErrorKind::Protocol);
                    }
                    if self.fill(MAX_CHUNK_LINE.max(self.buffer.len())).await? == 0 {
                        return Err(ErrorKind::ConnectionLost);
                    }
                }
            }
            if seen > MAX_CHUNK_LINE {
                return Err(ErrorKind::Protocol);
            }
        }
    }

    /// Reads until the server closes the connection. Over TLS, a close without
    /// `close_notify` (common) also ends the body.
    async fn read_to_close(&mut self, mut kept: Option<&mut Vec<u8>>) -> Result<(), ErrorKind> {
        let tls = matches!(self.stream, tokio_util::either::Either::Left(_));
        loop {
            self.consume(u64::MAX, kept.as_deref_mut());
            match self.fill(self.buffer.len()).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(ErrorKind::ConnectionLost) if tls => return Ok(()),
                Err(kind) => return Err(kind),
            }
        }
    }
}

/// The head at the start of `bytes` and its length; `None` when it is not all there.
/// (Not async: httparse's header array stays on this stack, out of the request's
/// future, which is moved and boxed on every request.)
fn parse_head(bytes: &[u8], head_request: bool) -> Result<Option<(Head, usize)>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    match answer.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => Ok(Some((head_of(&answer, head_request)?, length))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(ErrorKind::Protocol),
    }
}

/// The status, framing and persistence an answer's head declares.
fn head_of(answer: &httparse::Response<'_, '_>, head_request: bool) -> Result<Head, ErrorKind> {
    let status = answer.code.ok_or(ErrorKind::Protocol)?;
    // HTTP/1.0 closes unless it says keep-alive; HTTP/1.1 keeps unless it says close.
    let mut close = answer.version != Some(1);
    let mut length: Option<u64> = None;
    let mut encoded = false;
    let mut chunked = false;
    for header in answer.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok().map(str::trim).ok_or(ErrorKind::Protocol)?;
            if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(ErrorKind::Protocol);
            }
            let value: u64 = value.parse().map_err(|_| ErrorKind::Protocol)?;
            if length.is_some_and(|known| known != value) {
                return Err(ErrorKind::Protocol);
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // Chunked counts only as the last coding applied.
            if let Some(last) =
                header.value.split(|byte| *byte == b',').map(<[u8]>::trim_ascii).rfind(|c| !c.is_empty())
            {
                chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|byte| *byte == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && answer.version == Some(0) {
                    close = false;
                }
            }
        }
    }
    // Both framings at once, or chunked on HTTP/1.0: faulty or a proxy's doing
    // (RFC 9112 §6.1, §6.3); read it as Transfer-Encoding says, and keep nothing.
    if encoded && (length.is_some() || answer.version == Some(0)) {
        close = true;
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if encoded {
        if chunked { Framing::Chunked } else { Framing::UntilClose }
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    Ok(Head { status, framing, close })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Method;
    use tokio::net::{TcpListener, TcpStream};

    /// A server that, on its one connection, answers each request head it reads with
    /// the next of `answers`, then closes.
    async fn serve(answers: Vec<Vec<u8>>) -> Http1 {
        serve_then_close_after(answers, std::time::Duration::ZERO).await
    }

    async fn serve_then_close_after(answers: Vec<Vec<u8>>, linger: std::time::Duration) -> Http1 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    request.push(byte[0]);
                }
                socket.write_all(&answer).await.unwrap();
            }
            tokio::time::sleep(linger).await;
        });
        let stream = TcpStream::connect(address).await.unwrap();
        Http1::new(tokio_util::either::Either::Right(stream), 64, false)
    }

    fn get() -> Template {
        Template::new(Method::GET, "/probe".parse().unwrap(), &HeaderValue::from_static("localhost"))
    }

    /// The outcome (2xx and 3xx are `Ok`), the body, and whether the connection is kept.
    async fn exchange(connection: &mut Http1, template: &Template) -> Result<(Outcome, String, bool), ErrorKind> {
        let body = Bytes::new();
        let request = Outgoing { template, body: &body, extra: None };
        match connection.exchange(request, true).await {
            Ok((outcome, body, keep)) => Ok((outcome, String::from_utf8_lossy(&body).into(), keep)),
            Err(failure) => Err(failure.kind),
        }
    }

    const OK: Outcome = Outcome::Ok;

    #[tokio::test]
    async fn length_chunked_and_empty_answers_are_read_to_their_end_on_one_connection() {
        let long = "x".repeat(300); // past the 64-byte buffer
        let mut connection = serve(vec![
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{long}", long.len()).into_bytes(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n".to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone".to_vec(),
        ])
        .await;
        let template = get();
        assert_eq!(exchange(&mut connection, &template).await, Ok((OK, long, true)));
        assert_eq!(exchange(&mut connection, &template).await, Ok((OK, "hello world".into(), true)));
        assert_eq!(exchange(&mut connection, &template).await, Ok((OK, String::new(), true)), "after a 1xx");
        assert_eq!(exchange(&mut connection, &template).await, Ok((OK, String::new(), true)), "304 has no body");
        assert_eq!(exchange(&mut connection, &template).await, Ok((Outcome::Status(404), "gone".into(), true)));
    }

    #[tokio::test]
    async fn close_and_close_delimited_answers_end_the_connection() {
        let mut connection =
            serve(vec![b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok".to_vec()])
                .await;
        assert_eq!(exchange(&mut connection, &get()).await, Ok((OK, "ok".into(), false)));
        let mut connection = serve(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec()]).await;
        assert_eq!(exchange(&mut connection, &get()).await, Ok((OK, "until the end".into(), false)));
        let both = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let mut connection = serve(vec![both.to_vec()]).await;
        assert_eq!(exchange(&mut connection, &get()).await, Ok((OK, "ok".into(), false)), "both framings: not kept");
        let mut connection = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA".to_vec()]).await;
        assert_eq!(exchange(&mut connection, &get()).await, Ok((OK, "ok".into(), false)), "bytes never asked for");
    }

    #[tokio::test]
    async fn malformed_or_cut_answers_are_errors() {
        let cases: Vec<(&[u8], ErrorKind)> = vec![
            (b"HTTP/1.1 abc\r\n\r\n", ErrorKind::Protocol),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", ErrorKind::Protocol),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ErrorKind::Protocol),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ErrorKind::Protocol),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX", ErrorKind::Protocol),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", ErrorKind::Protocol),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ErrorKind::ConnectionLost),
            (b"HTTP/1.1 200 OK\r\nContent-", ErrorKind::ConnectionLost),
        ];
        for (answer, kind) in cases {
            let mut connection = serve(vec![answer.to_vec()]).await;
            assert_eq!(exchange(&mut connection, &get()).await, Err(kind), "{}", String::from_utf8_lossy(answer));
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX-Long: {}\r\n\r\n", "y".repeat(MAX_HEAD));
        let mut connection = serve(vec![huge.into_bytes()]).await;
        assert_eq!(exchange(&mut connection, &get()).await, Err(ErrorKind::Protocol), "a head past its limit");
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_seen_closed_before_use() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        let mut connection = serve_then_close_after(vec![answer], std::time::Duration::from_millis(300)).await;
        assert_eq!(exchange(&mut connection, &get()).await, Ok((OK, String::new(), true)));
        assert!(!connection.is_closed(), "open while the server keeps it");
        // The server closes; its FIN arrives.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !connection.is_closed() {
            assert!(tokio::time::Instant::now() < deadline, "the close was never seen");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn requests_are_written_as_a_browser_would() {
        let mut out = Vec::new();
        get().encode(b"", None, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            format!(
                "GET /probe HTTP/1.1\r\nhost: localhost\r\nuser-agent: loadgen/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let post = Template::new(Method::POST, "/m?x=1".parse().unwrap(), &HeaderValue::from_static("h:8080"));
        let cookie = (&hyper::header::COOKIE, &HeaderValue::from_static("id=7"));
        post.encode(b"{}", Some(cookie), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /m?x=1 HTTP/1.1\r\nhost: h:8080\r\n"), "{text}");
        assert!(text.ends_with("cookie: id=7\r\ncontent-length: 2\r\n\r\n{}"), "{text}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever a server sends, an exchange ends with an outcome or an error.
        #[test]
        fn any_answer_ends_without_a_panic(answer in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
                                           head in proptest::sample::select(vec![
                                               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                               "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
                                               "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
                                               "",
                                           ])) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut bytes = head.as_bytes().to_vec();
                bytes.extend_from_slice(&answer);
                let mut connection = serve(vec![bytes]).await;
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), exchange(&mut connection, &get()))
                    .await
                    .expect("the exchange ends when the server closes");
            });
        }
    }
}
