"""The auth test server shared by the auth test modules (each module gets its own, module-scoped).

One process: gRPC and the HTTP endpoint with authentication on, SQLite under a temporary data
directory, an AES-GCM key from the environment, a first admin key created on the store before the
server starts (as ``python -m server keys create`` does), and the OpenAI mock as the upstream.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from modelruntime.admin import AsyncAdminClient
from modelruntime.v1 import common_pb2, llm_service_pb2_grpc
from modelruntime.v1 import llm_service_pb2 as llm_pb

from server.app import start_server
from server.auth.crypto import generate_key_spec
from server.auth.store import open_store
from server.config import AuthConfig, Config, EgressConfig, GrpcConfig, HttpConfig, StorageConfig
from server.http.app import start_http
from tests.helpers import struct, user
from tests.mocks.openai_mock import OpenAIMock

KEY = "sk-upstream-secret-value-42"
ENV = "MR_TEST_AUTH_KEYS"


def details(err: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(err)
    out: dict[str, object] = {}
    for any_ in status.details if status else []:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo, error_details_pb2.QuotaFailure,
                    error_details_pb2.ResourceInfo, error_details_pb2.PreconditionFailure,
                    error_details_pb2.BadRequest):
            if any_.Is(cls.DESCRIPTOR):
                msg = cls()
                any_.Unpack(msg)
                out[cls.__name__] = msg
    return out


@contextlib.asynccontextmanager
async def auth_server(data: Path, channel_credentials: grpc.ChannelCredentials | None = None,
                      **config_overrides: Any) -> AsyncIterator[dict[str, Any]]:
    """The server with auth on; yields handles (``admin``: the typed admin client of a root key).
    With ``tls`` in the overrides, ``channel_credentials`` make the handles' channel (TLS, mTLS)."""
    os.environ[ENV] = generate_key_spec("k1")
    config = Config(**{
        "grpc": GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.5, drain_seconds=0),
        "http": HttpConfig(enabled=True, host="127.0.0.1", port=0, allow_request_credentials=True),
        "egress": EgressConfig(allowed_cidrs=["127.0.0.1/32"], retries=0, connect_timeout=5, read_timeout=30),
        "auth": AuthConfig(enabled=True, encryption_keys_env=ENV, refresh_seconds=0.2, ledger_flush_seconds=0.2),
        "storage": StorageConfig(data_dir=str(data)),
        **config_overrides,
    })
    store = await open_store(config.storage.url, data)  # the first admin key, as `keys create` does
    _, admin_secret = await store.create_key("root", admin=True)
    await store.close()
    running = await start_server(config)
    running.http = await start_http(config, running.runtime)
    address = f"127.0.0.1:{running.port}"
    channel = (grpc.aio.secure_channel(address, channel_credentials) if channel_credentials
               else grpc.aio.insecure_channel(address))
    admin = AsyncAdminClient(channel=channel, api_key=admin_secret)
    try:
        yield {"running": running, "admin": admin, "channel": channel, "data": data, "secret": admin_secret,
               "http": f"{'https' if config.tls.cert_file else 'http'}://127.0.0.1:{running.http.port}/v1",
               "llm": llm_service_pb2_grpc.LLMServiceStub(channel)}
    finally:
        await channel.close()
        await running.stop(0, 0)


def upstream_fixture():
    """A module-scoped ``mock`` fixture: the OpenAI mock accepting :data:`KEY` (``mock = upstream_fixture()``)."""

    @pytest.fixture(scope="module")
    async def mock():
        async with OpenAIMock(api_keys=[KEY]) as m:
            yield m

    return mock


def server_fixture(folder: str):
    """A module-scoped ``env`` fixture: :func:`auth_server` on a fresh data directory."""

    @pytest.fixture(scope="module")
    async def env(tmp_path_factory, mock):
        async with auth_server(tmp_path_factory.mktemp(folder)) as handles:
            yield handles

    return env


def reachable(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (PostgreSQL, Redis)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def creds(mock) -> dict:
    return {"openai_api_key": KEY, "openai_api_base": mock.url}


def req(mock, secret_creds: dict | None = None, name: str = "", model: str = "gpt-4o-mini"):
    target = common_pb2.ModelTarget(provider="openai", model=model, credentials=struct(secret_creds),
                                    credentials_name=name)
    return llm_pb.GenerateRequest(target=target, messages=[user("hello there")])


def bearer(secret: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {secret}"),)
