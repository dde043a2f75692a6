//! The four RPC kinds with grapesy's semantics. Streaming responses are produced by a
//! task feeding a small channel, so a slow client applies backpressure instead of
//! letting the server buffer without bound.

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::limits::InFlightLimit;
use super::metrics::{RpcTimer, count_message};
use crate::payload::random_payload;
use crate::proto::stream_message::Kind;
use crate::proto::stress_server::Stress;
use crate::proto::{Count, Payload, StreamMessage};

type PayloadStream = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

/// Messages buffered per streaming response before the sender waits.
const STREAM_BUFFER: usize = 8;

pub struct StressService {
    pub limit: InFlightLimit,
}

/// Reads the first message of a streaming call, which must announce N.
async fn announced_count(inbound: &mut Streaming<StreamMessage>) -> Result<u32, Status> {
    match inbound.message().await? {
        Some(StreamMessage { kind: Some(Kind::Count(count)) }) => Ok(count),
        Some(_) => Err(Status::invalid_argument("the first message must carry the count N")),
        None => Err(Status::invalid_argument("the stream ended before announcing N")),
    }
}

fn data_of(message: StreamMessage, method: &'static str) -> Result<Vec<u8>, Status> {
    match message.kind {
        Some(Kind::Data(data)) => {
            count_message(method, true, data.len());
            Ok(data)
        }
        _ => Err(Status::invalid_argument("expected a payload after the count")),
    }
}

#[tonic::async_trait]
impl Stress for StressService {
    async fn non_streaming(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        const METHOD: &str = "NonStreaming";
        let _admitted = self.limit.admit()?;
        let timer = RpcTimer::start(METHOD);
        let payload = request.into_inner();
        count_message(METHOD, true, payload.data.len());
        count_message(METHOD, false, payload.data.len());
        timer.finish(Code::Ok);
        Ok(Response::new(payload))
    }

    async fn client_streaming(&self, request: Request<Streaming<StreamMessage>>) -> Result<Response<Payload>, Status> {
        const METHOD: &str = "ClientStreaming";
        let _admitted = self.limit.admit()?;
        let timer = RpcTimer::start(METHOD);
        let mut inbound = request.into_inner();
        let outcome = async {
            let announced = announced_count(&mut inbound).await?;
            let mut received = 0u32;
            let mut last = Vec::new();
            while let Some(message) = inbound.message().await? {
                last = data_of(message, METHOD)?;
                received += 1;
                if announced != 0 && received > announced {
                    return Err(Status::invalid_argument(format!("announced {announced} messages, got more")));
                }
            }
            if announced != 0 && received != announced {
                return Err(Status::invalid_argument(format!("announced {announced} messages, got {received}")));
            }
            count_message(METHOD, false, last.len());
            Ok(Payload { data: last })
        }
        .await;
        timer.finish(outcome.as_ref().map_or_else(Status::code, |_| Code::Ok));
        outcome.map(Response::new)
    }

    type ServerStreamingStream = PayloadStream;

    async fn server_streaming(&self, request: Request<Count>) -> Result<Response<PayloadStream>, Status> {
        const METHOD: &str = "ServerStreaming";
        let admitted = self.limit.admit()?;
        let timer = RpcTimer::start(METHOD);
        let count = request.into_inner().count;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let _admitted = admitted;
            let mut sent = 0u32;
            while count == 0 || sent < count {
                let data = random_payload();
                let length = data.len();
                if sender.send(Ok(Payload { data })).await.is_err() {
                    return; // the client went away: the timer records CANCELLED
                }
                count_message(METHOD, false, length);
                sent += 1;
            }
            timer.finish(Code::Ok);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    type BidiStreamingStream = PayloadStream;

    async fn bidi_streaming(
        &self,
        request: Request<Streaming<StreamMessage>>,
    ) -> Result<Response<PayloadStream>, Status> {
        const METHOD: &str = "BidiStreaming";
        let admitted = self.limit.admit()?;
        let timer = RpcTimer::start(METHOD);
        let mut inbound = request.into_inner();
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let _admitted = admitted;
            let rounds = async {
                let announced = announced_count(&mut inbound).await?;
                let mut rounds = 0u32;
                while announced == 0 || rounds < announced {
                    let Some(message) = inbound.message().await? else {
                        if announced == 0 {
                            return Ok(());
                        }
                        return Err(Status::invalid_argument(format!(
                            "announced {announced} rounds, the client stopped after {rounds}"
                        )));
                    };
                    data_of(message, METHOD)?;
                    let data = random_payload();
                    let length = data.len();
                    if sender.send(Ok(Payload { data })).await.is_err() {
                        return Err(Status::cancelled("client went away"));
                    }
                    count_message(METHOD, false, length);
                    rounds += 1;
                }
                Ok(())
            }
            .await;
            match rounds {
                Ok(()) => timer.finish(Code::Ok),
                Err(status) => {
                    timer.finish(status.code());
                    let _ = sender.send(Err(status)).await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
