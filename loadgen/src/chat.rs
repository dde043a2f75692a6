//! `loadgen chat`: the delivery-latency test (N conversations × K members) against
//! grpc-stress's chat service. In each conversation one member sends a message every
//! `--send-interval` and the others hold a subscription. Each message carries its send
//! time in nanoseconds and the sender's sequence number, so every receiver measures
//! delivery latency exactly and counts messages lost, duplicated and out of order
//! (the original measured whole seconds and counted neither). A sender stops after
//! more than 10 errors, as the original did.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use loadlab_proto::connect::Target;
use loadlab_proto::stress::chat_client::ChatClient;
use loadlab_proto::stress::chat_event::Event;
use loadlab_proto::stress::{ChatMessage, SubscribeRequest};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::output::report::{Percentiles, percentiles};

/// Longest wait for one subscribe or send.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub const DELIVERY_LATENCY: &str = "loadgen_chat_delivery_latency_seconds";
pub const CHAT_MESSAGES: &str = "loadgen_chat_messages_total";

#[derive(Clone, Debug)]
pub struct ChatPlan {
    pub conversations: usize,
    pub members: usize,
    pub duration: Duration,
    pub send_interval: Duration,
    pub connections: usize,
}

/// What the run saw, over all conversations.
#[derive(Debug, Default, Serialize)]
pub struct ChatReport {
    pub conversations: usize,
    pub members: usize,
    pub sent: u64,
    pub send_errors: u64,
    /// Deliveries owed: every message sent × the receivers of its conversation.
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub delivery_latency_ms: Percentiles,
    pub interrupted: bool,
}

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos() as i64)
}

/// One receiver's view of its conversation's sequence numbers.
#[derive(Default)]
struct Receiver {
    seen: HashSet<u64>,
    highest: u64,
    duplicated: u64,
    out_of_order: u64,
}

impl Receiver {
    fn receive(&mut self, sequence: u64) -> bool {
        if !self.seen.insert(sequence) {
            self.duplicated += 1;
            metrics::counter!(CHAT_MESSAGES, "event" => "duplicated").increment(1);
            return false;
        }
        if sequence < self.highest {
            self.out_of_order += 1;
            metrics::counter!(CHAT_MESSAGES, "event" => "out_of_order").increment(1);
        }
        self.highest = self.highest.max(sequence);
        true
    }
}

pub async fn run(
    target: &Target,
    plan: &ChatPlan,
    stop: &CancellationToken,
) -> Result<ChatReport, tonic::transport::Error> {
    let channels = (0..plan.connections.max(1)).map(|_| target.connect_lazy()).collect::<Result<Vec<_>, _>>()?;
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")));
    let receivers_per_conversation = plan.members.saturating_sub(1).max(1);
    let finished = CancellationToken::new();
    let mut subscribers = Vec::new();
    // Subscribe everyone first, so no message is sent before its receivers listen.
    for conversation in 0..plan.conversations {
        for member in 1..=receivers_per_conversation {
            let mut client = ChatClient::new(channels[(conversation + member) % channels.len()].clone());
            let request = SubscribeRequest {
                conversation: format!("conversation-{conversation}"),
                member: format!("member-{member}"),
            };
            let subscribed = tokio::select! {
                subscribed = tokio::time::timeout(CALL_TIMEOUT, client.subscribe(request)) => subscribed,
                _ = stop.cancelled() => break,
            };
            let mut stream = match subscribed {
                Ok(Ok(response)) => response.into_inner(),
                Ok(Err(status)) => {
                    tracing::warn!(%status, conversation, member, "subscribe failed");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(conversation, member, "subscribe: no answer within {CALL_TIMEOUT:?}");
                    continue;
                }
            };
            let (latency, finished) = (latency.clone(), finished.clone());
            subscribers.push((
                conversation,
                tokio::spawn(async move {
                    let mut receiver = Receiver::default();
                    loop {
                        let event = tokio::select! {
                            event = stream.message() => event,
                            _ = finished.cancelled() => break,
                        };
                        match event {
                            Ok(Some(event)) => {
                                if let Some(Event::Message(message)) = event.event
                                    && receiver.receive(message.sequence)
                                {
                                    let nanos = (now_nanos() - message.sent_at_unix_nanos).max(1000) as u64;
                                    metrics::histogram!(DELIVERY_LATENCY).record(nanos as f64 / 1e9);
                                    metrics::counter!(CHAT_MESSAGES, "event" => "received").increment(1);
                                    let _ =
                                        latency.lock().unwrap_or_else(|p| p.into_inner()).record((nanos / 1000).max(1));
                                }
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                    receiver
                }),
            ));
        }
    }
    // Let the subscriptions settle on the server before the first message.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let deadline = tokio::time::Instant::now() + plan.duration;
    let senders: Vec<_> = (0..plan.conversations)
        .map(|conversation| {
            let mut client = ChatClient::new(channels[conversation % channels.len()].clone());
            let (interval, stop) = (plan.send_interval, stop.clone());
            tokio::spawn(async move {
                let (mut sent, mut errors) = (0u64, 0u64);
                let mut ticker = tokio::time::interval(interval);
                while tokio::time::Instant::now() < deadline && !stop.is_cancelled() && errors <= 10 {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stop.cancelled() => break,
                    }
                    let message = ChatMessage {
                        conversation: format!("conversation-{conversation}"),
                        sender: "sender".into(),
                        sequence: sent + 1,
                        sent_at_unix_nanos: now_nanos(),
                        body: vec![0u8; 64],
                    };
                    let answer = tokio::select! {
                        answer = tokio::time::timeout(CALL_TIMEOUT, client.send(message)) => answer,
                        _ = stop.cancelled() => break,
                    };
                    match answer {
                        Ok(Ok(_)) => {
                            sent += 1;
                            metrics::counter!(CHAT_MESSAGES, "event" => "sent").increment(1);
                        }
                        Ok(Err(status)) => {
                            errors += 1;
                            tracing::warn!(%status, conversation, "send failed");
                        }
                        Err(_) => {
                            errors += 1;
                            tracing::warn!(conversation, "send: no answer within {CALL_TIMEOUT:?}");
                        }
                    }
                }
                (conversation, sent, errors)
            })
        })
        .collect();
    let mut report = ChatReport { conversations: plan.conversations, members: plan.members, ..ChatReport::default() };
    let mut sent_per_conversation = vec![0u64; plan.conversations];
    for sender in senders {
        if let Ok((conversation, sent, errors)) = sender.await {
            sent_per_conversation[conversation] = sent;
            report.sent += sent;
            report.send_errors += errors;
        }
    }
    // Give the last messages time to arrive, then close the subscriptions.
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        _ = stop.cancelled() => {}
    }
    finished.cancel();
    for (conversation, subscriber) in subscribers {
        let Ok(receiver) = subscriber.await else { continue };
        let owed = sent_per_conversation[conversation];
        report.expected_deliveries += owed;
        let delivered = receiver.seen.iter().filter(|sequence| **sequence <= owed).count() as u64;
        report.delivered += delivered;
        report.lost += owed - delivered;
        report.duplicated += receiver.duplicated;
        report.out_of_order += receiver.out_of_order;
    }
    // Receivers that never subscribed owe their deliveries too.
    let subscribed_expected = report.expected_deliveries;
    let all_expected: u64 = sent_per_conversation.iter().map(|sent| sent * receivers_per_conversation as u64).sum();
    report.lost += all_expected - subscribed_expected;
    report.expected_deliveries = all_expected;
    metrics::counter!(CHAT_MESSAGES, "event" => "lost").increment(report.lost);
    report.delivery_latency_ms = percentiles(&latency.lock().unwrap_or_else(|p| p.into_inner()));
    report.interrupted = stop.is_cancelled();
    Ok(report)
}
