"""Fixtures for the grpcio suite: the proto compiled at test time, and channels to the
servers stress/tests/grpcio.rs started (GRPC_STRESS_PLAIN, GRPC_STRESS_TLS host:port,
GRPC_STRESS_CA the CA that signed the TLS server's certificate)."""

import importlib
import importlib.resources
import os
import pathlib
import sys

import grpc
import pytest
from grpc_tools import protoc

PROTO_DIR = pathlib.Path(__file__).resolve().parents[3] / "proto" / "proto"


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """stress_pb2 and stress_pb2_grpc, generated into a temporary directory (never
    committed) from proto/proto/stress.proto with grpcio-tools' bundled protoc."""
    out = tmp_path_factory.mktemp("generated")
    include = importlib.resources.files("grpc_tools") / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / "stress.proto"),
        ]
    )
    assert code == 0, f"protoc failed on {PROTO_DIR / 'stress.proto'}"
    sys.path.insert(0, str(out))
    messages = importlib.import_module("stress_pb2")
    services = importlib.import_module("stress_pb2_grpc")
    return messages, services


def _address(variable):
    address = os.environ.get(variable)
    if not address:
        pytest.fail(f"{variable} is not set: run this suite through `cargo test -p grpc-stress --test grpcio`")
    return address


@pytest.fixture(scope="session")
def ca_certificate():
    return pathlib.Path(_address("GRPC_STRESS_CA")).read_bytes()


@pytest.fixture(scope="module", params=["plain", "tls"])
def channel(request, ca_certificate):
    """A channel to the plain server, then one to the TLS server, each test running
    over both."""
    if request.param == "plain":
        opened = grpc.insecure_channel(_address("GRPC_STRESS_PLAIN"))
    else:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_certificate)
        opened = grpc.secure_channel(_address("GRPC_STRESS_TLS"), credentials)
    grpc.channel_ready_future(opened).result(timeout=10)
    yield opened
    opened.close()
