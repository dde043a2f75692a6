//! One call of each RPC kind, checked against grapesy's semantics. A call returns the
//! messages it sent and received, or the status it ended with. Endless calls (N = 0)
//! run until their future is dropped.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{Body, Bytes, StdError};
use tonic::transport::Channel;

use crate::payload::random_payload;
use crate::stress::stream_message::Kind;
use crate::stress::stress_client::StressClient;
use crate::stress::{Count, Payload, StreamMessage};

/// Which RPC, with its N where it has one (0 = endless).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    NonStreaming,
    ClientStreaming(u32),
    ServerStreaming(u32),
    BidiStreaming(u32),
}

impl CallKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::NonStreaming => "non-streaming",
            Self::ClientStreaming(_) => "client-streaming",
            Self::ServerStreaming(_) => "server-streaming",
            Self::BidiStreaming(_) => "bidi-streaming",
        }
    }
}

/// Messages a call exchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exchanged {
    pub sent: u64,
    pub received: u64,
}

/// A stub that compresses requests with `compression` and accepts responses in the
/// same encoding. Without it, nothing is compressed either way: accepting gzip
/// unasked would make the server compress every response.
pub fn stub(channel: Channel, compression: Option<CompressionEncoding>) -> StressClient<Channel> {
    compressed(StressClient::new(channel), compression)
}

/// A stub on one [`Connection`](crate::connect::Connection), as [`stub`] sets it up.
pub fn stub_on(
    connection: crate::connect::Connection,
    compression: Option<CompressionEncoding>,
) -> StressClient<crate::connect::Connection> {
    let origin = connection.origin();
    compressed(StressClient::with_origin(connection, origin), compression)
}

fn compressed<T>(client: StressClient<T>, compression: Option<CompressionEncoding>) -> StressClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    match compression {
        Some(encoding) => client.send_compressed(encoding).accept_compressed(encoding),
        None => client,
    }
}

fn mismatch(detail: String) -> Status {
    // DATA_LOSS: the server broke the protocol's promise; never tolerated.
    Status::data_loss(detail)
}

/// A request stream that starts with the count; the caller sends the payloads.
fn outbound(count: u32) -> (ReceiverStream<StreamMessage>, mpsc::Sender<StreamMessage>) {
    let (sender, receiver) = mpsc::channel(8);
    // The count goes first: a fresh channel always has room for it.
    sender.try_send(StreamMessage { kind: Some(Kind::Count(count)) }).expect("a fresh channel has room");
    (ReceiverStream::new(receiver), sender)
}

fn data_message() -> StreamMessage {
    StreamMessage { kind: Some(Kind::Data(random_payload())) }
}

/// Makes one call of `kind` on `client` (a `Channel` or a [`crate::connect::Connection`]).
pub async fn call<T>(client: &mut StressClient<T>, kind: CallKind) -> Result<Exchanged, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    match kind {
        CallKind::NonStreaming => {
            let data = random_payload();
            let answer = client.non_streaming(Payload { data: data.clone() }).await?.into_inner();
            if answer.data != data {
                return Err(mismatch("the echo differs from what was sent".into()));
            }
            Ok(Exchanged { sent: 1, received: 1 })
        }
        CallKind::ClientStreaming(count) => {
            let (requests, sender) = outbound(count);
            let feeder = tokio::spawn(async move {
                let mut sent = 0u64;
                while count == 0 || sent < u64::from(count) {
                    if sender.send(data_message()).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            });
            let answer = client.client_streaming(requests).await;
            let sent = feeder.await.unwrap_or(0);
            let answer = answer?.into_inner();
            if answer.data.is_empty() && count != 0 {
                return Err(mismatch("client streaming answered an empty payload".into()));
            }
            Ok(Exchanged { sent, received: 1 })
        }
        CallKind::ServerStreaming(count) => {
            let mut stream = client.server_streaming(Count { count }).await?.into_inner();
            let mut received = 0u64;
            while let Some(payload) = stream.message().await? {
                if payload.data.len() < crate::payload::MIN_PAYLOAD {
                    return Err(mismatch(format!("payload of {} bytes", payload.data.len())));
                }
                received += 1;
            }
            if count != 0 && received != u64::from(count) {
                return Err(mismatch(format!("asked for {count} messages, got {received}")));
            }
            Ok(Exchanged { sent: 1, received })
        }
        CallKind::BidiStreaming(count) => {
            let (requests, sender) = outbound(count);
            let mut responses = client.bidi_streaming(requests).await?.into_inner();
            let mut rounds = 0u64;
            while count == 0 || rounds < u64::from(count) {
                if sender.send(data_message()).await.is_err() {
                    return Err(Status::cancelled("request stream closed"));
                }
                match responses.message().await? {
                    Some(_) => rounds += 1,
                    None => return Err(mismatch(format!("the server ended the stream after {rounds} rounds"))),
                }
            }
            drop(sender);
            if responses.message().await?.is_some() {
                return Err(mismatch("the server sent more than one answer per round".into()));
            }
            Ok(Exchanged { sent: rounds + 1, received: rounds })
        }
    }
}
