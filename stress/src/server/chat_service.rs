//! Chat: one broadcast channel per conversation. Subscribers get every message sent
//! to the conversation after they joined, plus a ping every `--chat-ping-interval`.
//! A subscriber too slow to keep up misses messages (counted here, and visible to it
//! as gaps in the senders' sequence numbers) rather than growing the server's memory.
//! A conversation is forgotten when its last subscriber leaves.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::limits::InFlightLimit;
use super::metrics::{self as names, RpcTimer};
use crate::proto::chat_event::Event;
use crate::proto::chat_server::Chat;
use crate::proto::{ChatEvent, ChatMessage, Ping, SendReply, SubscribeRequest};

/// Messages a subscriber may fall behind before it starts missing some.
const SUBSCRIBER_BACKLOG: usize = 1024;

pub struct ChatService {
    pub limit: InFlightLimit,
    pub ping_interval: Duration,
    /// A std `Mutex`: held for a map lookup, never across an await.
    conversations: Arc<Mutex<HashMap<String, broadcast::Sender<ChatMessage>>>>,
}

impl ChatService {
    pub fn new(limit: InFlightLimit, ping_interval: Duration) -> Self {
        Self { limit, ping_interval, conversations: Arc::default() }
    }
}

fn now_unix_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos() as i64)
}

/// Counts a subscription while it lasts and forgets an empty conversation at the end.
struct Subscription {
    conversation: String,
    conversations: Arc<Mutex<HashMap<String, broadcast::Sender<ChatMessage>>>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!(names::CHAT_SUBSCRIBERS).decrement(1.0);
        let mut conversations = self.conversations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Our receiver is already dropped, so zero means nobody is left.
        if conversations.get(&self.conversation).is_some_and(|sender| sender.receiver_count() == 0) {
            conversations.remove(&self.conversation);
        }
    }
}

#[tonic::async_trait]
impl Chat for ChatService {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, Status>> + Send>>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let admitted = self.limit.admit()?;
        let timer = RpcTimer::start("Subscribe");
        let conversation = request.into_inner().conversation;
        if conversation.is_empty() {
            return Err(Status::invalid_argument("conversation must not be empty"));
        }
        let mut messages = {
            let mut conversations = self.conversations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            conversations
                .entry(conversation.clone())
                .or_insert_with(|| broadcast::channel(SUBSCRIBER_BACKLOG).0)
                .subscribe()
        };
        metrics::gauge!(names::CHAT_SUBSCRIBERS).increment(1.0);
        let subscription = Subscription { conversation, conversations: self.conversations.clone() };
        let (sender, receiver) = mpsc::channel(16);
        let mut pings = tokio::time::interval(self.ping_interval);
        tokio::spawn(async move {
            let _admitted = admitted;
            let _subscription = subscription;
            loop {
                let event = tokio::select! {
                    received = messages.recv() => match received {
                        Ok(message) => Event::Message(message),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            metrics::counter!(names::CHAT_LAGGED).increment(missed);
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = pings.tick() => Event::Ping(Ping { server_time_unix_nanos: now_unix_nanos() }),
                };
                if sender.send(Ok(ChatEvent { event: Some(event) })).await.is_err() {
                    break;
                }
            }
            drop(messages);
            timer.finish(Code::Cancelled);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn send(&self, request: Request<ChatMessage>) -> Result<Response<SendReply>, Status> {
        let _admitted = self.limit.admit()?;
        let timer = RpcTimer::start("Send");
        let message = request.into_inner();
        metrics::counter!(names::CHAT_MESSAGES).increment(1);
        let sender = {
            let conversations = self.conversations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            conversations.get(&message.conversation).cloned()
        };
        let delivered_to = sender.and_then(|sender| sender.send(message).ok()).unwrap_or(0);
        metrics::counter!(names::CHAT_DELIVERIES).increment(delivered_to as u64);
        timer.finish(Code::Ok);
        Ok(Response::new(SendReply { delivered_to: delivered_to as u32 }))
    }
}
