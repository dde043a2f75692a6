//! Each RPC kind and the chat service against a real server, over plain and TLS
//! connections; grapesy's semantics enforced; load shedding; health and reflection.

mod common;

use std::time::Duration;

use common::{TestServer, server_options};
use grpc_stress::client::{CallKind, call, stub_on};
use grpc_stress::proto::chat_client::ChatClient;
use grpc_stress::proto::chat_event::Event;
use grpc_stress::proto::stream_message::Kind;
use grpc_stress::proto::stress_client::StressClient;
use grpc_stress::proto::{ChatMessage, Payload, StreamMessage, SubscribeRequest};
use tonic::Code;

#[tokio::test]
async fn every_kind_over_plain_and_tls() {
    let certs = tempfile::tempdir().unwrap();
    let files = grpc_stress::certs::generate(certs.path()).unwrap();
    let plain = TestServer::start(server_options(&[])).await;
    let cert = files.server_cert.to_str().unwrap();
    let key = files.server_key.to_str().unwrap();
    let secure = TestServer::start(server_options(&["--tls-cert", cert, "--tls-key", key])).await;

    for (server, ca) in [(&plain, None), (&secure, Some(files.ca_cert.as_path()))] {
        let channel = server.target(ca).connect().await.expect("connects");
        let mut client = stub_on(channel, None);
        let cases = [
            (CallKind::NonStreaming, 1, 1),
            (CallKind::ClientStreaming(5), 5, 1),
            (CallKind::ServerStreaming(7), 1, 7),
            (CallKind::BidiStreaming(4), 5, 4),
        ];
        for (kind, sent, received) in cases {
            let exchanged =
                call(&mut client, kind).await.unwrap_or_else(|status| panic!("{kind:?} over {ca:?}: {status}"));
            assert_eq!((exchanged.sent, exchanged.received), (sent, received), "{kind:?}");
        }
    }

    // A plain client cannot talk to the TLS server, nor trust an unknown CA.
    let other = tempfile::tempdir().unwrap();
    let stranger = grpc_stress::certs::generate(other.path()).unwrap();
    assert!(secure.target(Some(&stranger.ca_cert)).connect().await.is_err(), "an unknown CA is refused");
}

#[tokio::test]
async fn streams_must_keep_their_announced_count() {
    let server = TestServer::start(server_options(&[])).await;
    let channel = server.target(None).connect().await.unwrap();
    let mut client = StressClient::new(channel);
    let messages = |count: u32, payloads: usize| {
        let mut all = vec![StreamMessage { kind: Some(Kind::Count(count)) }];
        all.extend((0..payloads).map(|_| StreamMessage { kind: Some(Kind::Data(vec![7; 200])) }));
        tokio_stream::iter(all)
    };
    let short = client.client_streaming(messages(3, 2)).await.unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument, "{short}");
    let long = client.client_streaming(messages(1, 2)).await.unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument, "{long}");
    let no_count =
        client.client_streaming(tokio_stream::iter(vec![StreamMessage { kind: Some(Kind::Data(vec![1])) }])).await;
    assert_eq!(no_count.unwrap_err().code(), Code::InvalidArgument);
    let answer = client.client_streaming(messages(2, 2)).await.unwrap().into_inner();
    assert_eq!(answer.data, vec![7; 200], "the answer is the last message");
}

/// A request stream larger than HTTP/2's flow-control windows (2 MiB per stream, 5 MiB
/// per connection) and always ready: the connection sends what fits at once, then
/// pipes the rest as the server's window updates allow. Twice on one connection, so
/// the connection's window must have been given back in between.
#[tokio::test]
async fn a_request_stream_larger_than_the_windows_arrives_whole() {
    let server = TestServer::start(server_options(&[])).await;
    let connection = server.target(None).connect().await.unwrap();
    let mut client = StressClient::new(connection);
    const PAYLOADS: u32 = 30_000; // of 200 bytes: 6 MB
    for round in 0..2u8 {
        let mut all = vec![StreamMessage { kind: Some(Kind::Count(PAYLOADS)) }];
        all.extend((0..PAYLOADS).map(|i| StreamMessage { kind: Some(Kind::Data(vec![(i % 251) as u8; 200])) }));
        let call = client.client_streaming(tokio_stream::iter(all));
        let answer = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the stream stalled"))
            .unwrap_or_else(|status| panic!("round {round}: {status}"))
            .into_inner();
        assert_eq!(answer.data, vec![((PAYLOADS - 1) % 251) as u8; 200], "round {round}: the last message answers");
    }
}

/// A request body that fails in the client (tonic's encoder refuses a message larger
/// than `max_encoding_message_size`): the caller gets the encoder's own status, not a
/// cancelled stream, and the connection goes on serving calls.
#[tokio::test]
async fn a_request_the_client_cannot_encode_fails_with_its_own_status() {
    let server = TestServer::start(server_options(&[])).await;
    let connection = server.target(None).connect().await.unwrap();
    let mut client = StressClient::new(connection.clone()).max_encoding_message_size(64);
    let refused = client.non_streaming(Payload { data: vec![7; 200] }).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused}");
    assert!(refused.message().contains("message length too large"), "{refused}");
    let answer = StressClient::new(connection).non_streaming(Payload { data: vec![7; 200] }).await.unwrap();
    assert_eq!(answer.into_inner().data, vec![7; 200], "the connection still serves calls");
}

/// An endless client stream given up by dropping its call (how loadgen ends calls at
/// the end of a run): the stream is reset, and no more is sent on it. A raw HTTP/2
/// server that never answers, so the call is still sending when it is dropped.
#[tokio::test]
async fn a_dropped_streaming_call_resets_its_stream() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(socket).await.unwrap();
        let (request, respond) = connection.accept().await.unwrap().unwrap();
        tokio::spawn(async move { while connection.accept().await.is_some() {} });
        let mut body = request.into_body();
        let mut received = 0;
        let ended = loop {
            match body.data().await {
                Some(Ok(data)) => {
                    received += data.len();
                    let _ = body.flow_control().release_capacity(data.len());
                }
                Some(Err(error)) => break error.reason(),
                None => break None,
            }
        };
        drop(respond);
        (received, ended)
    });
    let target = loadlab_proto::connect::Target::new(&format!("http://{address}"), &Default::default()).unwrap();
    let mut client = stub_on(target.connect().await.unwrap(), None);
    let endless = call(&mut client, CallKind::ClientStreaming(0));
    assert!(tokio::time::timeout(Duration::from_millis(500), endless).await.is_err(), "the call never ends");
    let (received, ended) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server saw the stream end after the call was dropped")
        .unwrap();
    assert!(received > 0, "the call was sending");
    assert_eq!(ended, Some(h2::Reason::CANCEL), "the stream was reset");
}

/// A server going away (GOAWAY) while a call is still open: the next call fails, and
/// from then on the connection says it is closed, so its owner reconnects; h2 keeps the
/// connection itself running until the open call ends.
#[tokio::test]
async fn a_connection_the_server_sent_goaway_on_is_closed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (open, opened) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(socket).await.unwrap();
        let first = connection.accept().await.unwrap().unwrap();
        let _ = open.send(());
        connection.graceful_shutdown();
        while connection.accept().await.is_some() {}
        drop(first);
    });
    let target = loadlab_proto::connect::Target::new(&format!("http://{address}"), &Default::default()).unwrap();
    let connection = target.connect().await.unwrap();
    let mut client = stub_on(connection.clone(), None);
    let mut second = stub_on(connection.clone(), None);
    let endless = tokio::spawn(async move { call(&mut client, CallKind::ClientStreaming(0)).await });
    opened.await.unwrap();
    let mut closed = false;
    for _ in 0..50 {
        let _ = call(&mut second, CallKind::NonStreaming).await;
        if connection.is_closed() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the connection still says it is open after GOAWAY");
    endless.abort();
    server.abort();
}

/// The grpc-status a server answers to a client-streaming call that announces three
/// messages, sends none and keeps the stream open past a `grpc-timeout` of 150 ms.
/// Spoken over raw HTTP/2: tonic's client enforces the deadline itself (and reports its
/// own expiry as CANCELLED), so it would show the client's verdict, not the server's.
async fn status_after_deadline(address: std::net::SocketAddr) -> String {
    use prost::Message as _;
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request =
        tonic::codegen::http::Request::post(format!("http://{address}/loadlab.stress.v1.Stress/ClientStreaming"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "150m")
            .body(())
            .unwrap();
    let (response, mut outbound) = client.send_request(request, false).unwrap();
    let count = StreamMessage { kind: Some(Kind::Count(3)) }.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((count.len() as u32).to_be_bytes());
    frame.extend(count);
    outbound.send_data(frame.into(), false).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response).await.expect("the server answers").unwrap();
    let status = |headers: &tonic::codegen::http::HeaderMap| {
        headers.get("grpc-status").map(|code| code.to_str().unwrap().to_string())
    };
    if let Some(code) = status(response.headers()) {
        return code; // trailers-only
    }
    let mut body = response.into_body();
    while body.data().await.is_some() {}
    let trailers = body.trailers().await.unwrap().expect("trailers");
    status(&trailers).expect("grpc-status in the trailers")
}

#[tokio::test]
async fn an_expired_deadline_is_answered_deadline_exceeded() {
    let server = TestServer::start(server_options(&[])).await;
    for attempt in 0..5 {
        let code = status_after_deadline(server.address).await;
        assert_eq!(code, (Code::DeadlineExceeded as i32).to_string(), "attempt {attempt}: grpc-status {code}");
    }
}

#[tokio::test]
async fn overload_is_refused_with_resource_exhausted() {
    let server = TestServer::start(server_options(&["--max-in-flight", "1"])).await;
    let channel = server.target(None).connect().await.unwrap();
    let mut endless = stub_on(channel.clone(), None);
    let holder = tokio::spawn(async move { call(&mut endless, CallKind::ServerStreaming(0)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut client = stub_on(channel, None);
    let refused = call(&mut client, CallKind::NonStreaming).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    assert_eq!(grpc_stress::client::classify(&refused), Ok(grpc_stress::client::Fault::Shed));
    holder.abort();
    // Once the stream is gone, calls are admitted again.
    let mut admitted = false;
    for _ in 0..50 {
        if call(&mut client, CallKind::NonStreaming).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "the permit is released when the stream ends");
}

#[tokio::test]
async fn chat_delivers_every_message_in_order_with_its_latency() {
    let server = TestServer::start(server_options(&["--chat-ping-interval", "100ms"])).await;
    let channel = server.target(None).connect().await.unwrap();
    let mut chat = ChatClient::new(channel);
    let subscribe = |member: &str| {
        let mut chat = chat.clone();
        let request = SubscribeRequest { conversation: "c1".into(), member: member.into() };
        async move { chat.subscribe(request).await.unwrap().into_inner() }
    };
    let mut first = subscribe("alice").await;
    let mut second = subscribe("bob").await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    for sequence in 1..=20u64 {
        let reply = chat
            .send(ChatMessage {
                conversation: "c1".into(),
                sender: "carol".into(),
                sequence,
                sent_at_unix_nanos: now(),
                body: vec![0; 64],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.delivered_to, 2);
    }
    let nobody = chat
        .send(ChatMessage {
            conversation: "empty".into(),
            sender: "x".into(),
            sequence: 1,
            sent_at_unix_nanos: now(),
            body: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(nobody.delivered_to, 0);

    for subscription in [&mut first, &mut second] {
        let mut sequences = Vec::new();
        let mut pings = 0;
        while sequences.len() < 20 {
            let event =
                tokio::time::timeout(Duration::from_secs(5), subscription.message()).await.unwrap().unwrap().unwrap();
            match event.event.unwrap() {
                Event::Message(message) => {
                    let latency = now() - message.sent_at_unix_nanos;
                    assert!((0..5_000_000_000).contains(&latency), "latency {latency} ns");
                    sequences.push(message.sequence);
                }
                Event::Ping(_) => pings += 1,
            }
        }
        assert_eq!(sequences, (1..=20).collect::<Vec<_>>(), "no loss, no duplicates, in order");
        assert!(pings >= 1, "pings arrive on the subscription");
    }
}

/// Every service served, as reflection must list it (both versions).
const SERVICES: [&str; 5] = [
    "loadlab.stress.v1.Stress",
    "loadlab.stress.v1.Chat",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let server = TestServer::start(server_options(&[])).await;
    let channel = server.target(None).connect().await.unwrap();
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest { service: "loadlab.stress.v1.Stress".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    let v1 = {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("v1 reflection is served")
            .into_inner();
        let response = responses.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list")
        };
        list.service.into_iter().map(|service| service.name).collect::<Vec<_>>()
    };
    let v1alpha = {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("v1alpha reflection is served")
            .into_inner();
        let response = responses.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list")
        };
        list.service.into_iter().map(|service| service.name).collect::<Vec<_>>()
    };
    for (version, names) in [("v1", v1), ("v1alpha", v1alpha)] {
        for expected in SERVICES {
            assert!(names.iter().any(|name| name == expected), "{version}: {expected} missing from {names:?}");
        }
    }
}
