"""grpc-stress as Python's grpcio sees it, over plain and TLS channels: the four RPC
kinds and their count errors, the server's answer to an expired deadline, chat with
send times and sequence numbers, health checking, and server reflection v1 and v1alpha.
"""

import os
import threading
import time
import uuid

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

# Every call has a deadline, so a server that stops answering fails the suite instead
# of hanging it.
TIMEOUT = 10

SERVICES = {
    "loadlab.stress.v1.Stress",
    "loadlab.stress.v1.Chat",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.fixture
def stress(pb, channel):
    return pb[1].StressStub(channel)


@pytest.fixture
def chat(pb, channel):
    return pb[1].ChatStub(channel)


def payload():
    return os.urandom(200)


def announced(pb, count, payloads):
    """A request stream: first the count N, then the payloads."""
    yield pb[0].StreamMessage(count=count)
    for data in payloads:
        yield pb[0].StreamMessage(data=data)


def test_non_streaming_echoes(pb, stress):
    data = payload()
    assert stress.NonStreaming(pb[0].Payload(data=data), timeout=TIMEOUT).data == data


def test_client_streaming_answers_with_the_last_payload(pb, stress):
    payloads = [payload() for _ in range(5)]
    assert stress.ClientStreaming(announced(pb, 5, payloads), timeout=TIMEOUT).data == payloads[-1]


@pytest.mark.parametrize("count, sent", [(3, 2), (1, 2)], ids=["fewer", "more"])
def test_client_streaming_that_breaks_its_count_is_invalid_argument(pb, stress, count, sent):
    with pytest.raises(grpc.RpcError) as refused:
        stress.ClientStreaming(announced(pb, count, [payload() for _ in range(sent)]), timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert f"announced {count}" in refused.value.details()


def test_client_streaming_without_a_count_is_invalid_argument(pb, stress):
    with pytest.raises(grpc.RpcError) as refused:
        stress.ClientStreaming(iter([pb[0].StreamMessage(data=payload())]), timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()


def test_server_streaming_sends_n_payloads(pb, stress):
    answers = list(stress.ServerStreaming(pb[0].Count(count=7), timeout=TIMEOUT))
    assert len(answers) == 7
    assert all(128 <= len(answer.data) <= 256 for answer in answers)


def test_bidi_streaming_answers_each_round(pb, stress):
    answers = list(stress.BidiStreaming(announced(pb, 4, [payload() for _ in range(4)]), timeout=TIMEOUT))
    assert len(answers) == 4
    assert all(128 <= len(answer.data) <= 256 for answer in answers)


def test_bidi_streaming_that_stops_early_is_invalid_argument(pb, stress):
    call = stress.BidiStreaming(announced(pb, 3, [payload()]), timeout=TIMEOUT)
    answers = []
    with pytest.raises(grpc.RpcError) as refused:
        for answer in call:
            answers.append(answer)
    assert len(answers) == 1, "the round played is answered"
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert "stopped after 1" in refused.value.details()


def test_an_expired_deadline_is_deadline_exceeded(pb, stress):
    """The server's answer and the client's own timer race; both must say
    DEADLINE_EXCEEDED (tonic alone answers CANCELLED 'Timeout expired', and some calls
    here saw that)."""
    codes = []
    for _ in range(30):
        release = threading.Event()

        def stalled():
            # Announces three payloads and sends none until the call is over.
            yield pb[0].StreamMessage(count=3)
            release.wait(TIMEOUT)

        try:
            with pytest.raises(grpc.RpcError) as expired:
                stress.ClientStreaming(stalled(), timeout=0.1)
            codes.append((expired.value.code(), expired.value.details()))
        finally:
            release.set()
    wrong = [code for code in codes if code[0] != grpc.StatusCode.DEADLINE_EXCEEDED]
    assert not wrong, f"{len(wrong)} of {len(codes)} calls ended otherwise: {wrong}"


def test_chat_delivers_every_message_in_order_with_its_send_time(pb, chat):
    messages = pb[0]
    conversation = f"grpcio-{uuid.uuid4()}"
    subscriptions = [
        chat.Subscribe(messages.SubscribeRequest(conversation=conversation, member=member), timeout=TIMEOUT)
        for member in ("alice", "bob")
    ]
    # The first event of a subscription is a ping, sent once it is registered.
    for subscription in subscriptions:
        assert next(subscription).WhichOneof("event") == "ping"

    for sequence in range(1, 21):
        sent = messages.ChatMessage(
            conversation=conversation,
            sender="carol",
            sequence=sequence,
            sent_at_unix_nanos=time.time_ns(),
            body=b"x" * 64,
        )
        assert chat.Send(sent, timeout=TIMEOUT).delivered_to == 2
    nobody = messages.ChatMessage(conversation=f"{conversation}-empty", sender="carol", sequence=1)
    assert chat.Send(nobody, timeout=TIMEOUT).delivered_to == 0

    for subscription in subscriptions:
        sequences = []
        for event in subscription:
            if event.WhichOneof("event") == "message":
                latency = time.time_ns() - event.message.sent_at_unix_nanos
                assert 0 <= latency < 5_000_000_000, f"latency {latency} ns"
                assert event.message.sender == "carol" and event.message.body == b"x" * 64
                sequences.append(event.message.sequence)
                if len(sequences) == 20:
                    break
        subscription.cancel()
        assert sequences == list(range(1, 21)), "no loss, no duplicates, in order"


def test_chat_refuses_an_empty_conversation(pb, chat):
    subscription = chat.Subscribe(pb[0].SubscribeRequest(conversation="", member="x"), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as refused:
        next(subscription)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_checking(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "loadlab.stress.v1.Stress", "loadlab.stress.v1.Chat"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as unknown:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_v1alpha_with_grpcio_reflection(channel):
    """grpcio-reflection's own client (it speaks v1alpha only): list, then resolve a
    service to its methods through a descriptor pool."""
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert SERVICES <= services, f"missing: {SERVICES - services}"
    pool = descriptor_pool.DescriptorPool(database)
    stress = pool.FindServiceByName("loadlab.stress.v1.Stress")
    assert [method.name for method in stress.methods] == [
        "NonStreaming",
        "ClientStreaming",
        "ServerStreaming",
        "BidiStreaming",
    ]
    assert pool.FindMessageTypeByName("loadlab.stress.v1.ChatMessage").fields_by_name["sent_at_unix_nanos"]


def test_reflection_v1_with_a_raw_stub(channel):
    """v1 through a raw stub: grpcio-reflection ships no v1 client, and v1's messages
    are field for field v1alpha's, so v1alpha's classes encode them."""
    reflect = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="loadlab.stress.v1.Chat"),
    ]
    listed, described = list(reflect(iter(requests), timeout=TIMEOUT))
    services = {service.name for service in listed.list_services_response.service}
    assert SERVICES <= services, f"missing: {SERVICES - services}"
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(encoded)
        for encoded in described.file_descriptor_response.file_descriptor_proto
    ]
    chat = [service for file in files for service in file.service if service.name == "Chat"]
    assert [method.name for method in chat[0].method] == ["Subscribe", "Send"]


def test_the_tls_server_refuses_a_plain_channel(pb):
    with grpc.insecure_channel(os.environ["GRPC_STRESS_TLS"]) as plain:
        with pytest.raises(grpc.RpcError) as refused:
            pb[1].StressStub(plain).NonStreaming(pb[0].Payload(data=payload()), timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
