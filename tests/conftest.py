"""Shared fixtures: a real gRPC server on 127.0.0.1:<random>, real channels and stubs.

Provider mocks are real HTTP servers on 127.0.0.1; the server's egress policy allows
loopback only for tests (the production default refuses it).
"""

from __future__ import annotations

import os

import grpc
import pytest
from modelruntime.v1 import (
    llm_service_pb2_grpc,
    moderation_service_pb2_grpc,
    provider_service_pb2_grpc,
    rerank_service_pb2_grpc,
    speech2text_service_pb2_grpc,
    text_embedding_service_pb2_grpc,
    tts_service_pb2_grpc,
)

from server.app import start_server
from server.config import Config, EgressConfig, GrpcConfig, HttpConfig


def make_config(**overrides) -> Config:
    return Config(
        grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.5, drain_seconds=0.0, max_message_bytes=8 * 1024 * 1024),
        http=HttpConfig(enabled=False, port=0),
        egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], retries=1, connect_timeout=5, read_timeout=30),
        **overrides,
    )


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.providers = provider_service_pb2_grpc.ProviderServiceStub(channel)
        self.llm = llm_service_pb2_grpc.LLMServiceStub(channel)
        self.embedding = text_embedding_service_pb2_grpc.TextEmbeddingServiceStub(channel)
        self.rerank = rerank_service_pb2_grpc.RerankServiceStub(channel)
        self.stt = speech2text_service_pb2_grpc.Speech2TextServiceStub(channel)
        self.tts = tts_service_pb2_grpc.TTSServiceStub(channel)
        self.moderation = moderation_service_pb2_grpc.ModerationServiceStub(channel)


@pytest.fixture(scope="session")
async def grpc_server():
    running = await start_server(make_config())
    yield running
    await running.stop(0, 0)


@pytest.fixture(scope="session")
async def stubs(grpc_server):
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{grpc_server.port}",
        options=[("grpc.max_receive_message_length", 32 * 1024 * 1024),
                 ("grpc.max_send_message_length", 32 * 1024 * 1024)],
    )
    yield Stubs(channel)
    await channel.close()


# ---- real PostgreSQL / Redis ------------------------------------------------------------------
# Tests marked ``services`` use the PostgreSQL and Redis on 127.0.0.1 (standard ports) and skip,
# saying so, where they are not reachable. Under CI=true such a skip is a failure: CI's machine has
# both, so a skip there means the tests silently stopped testing.


def pytest_configure(config):
    config.addinivalue_line("markers", "services: needs PostgreSQL and Redis on 127.0.0.1 (a failure when skipped on CI)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("services") is not None and os.environ.get("CI") == "true":
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where PostgreSQL and Redis must be reachable: {report.longrepr}"
