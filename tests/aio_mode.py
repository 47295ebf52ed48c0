"""Fixtures that serve with ``grpc.mode: aio`` (grpc.aio on the event loop) instead of the
default threaded bridge (server/bridge.py). A test module that star-imports a suite and then
these fixtures runs that suite's test functions again against the aio server."""

from __future__ import annotations

import grpc
import pytest

from server.app import start_server
from tests.conftest import Stubs, make_config


@pytest.fixture(scope="module")
async def grpc_server():
    config = make_config()
    config.grpc = config.grpc.model_copy(update={"mode": "aio"})
    running = await start_server(config)
    assert isinstance(running.server, grpc.aio.Server)
    yield running
    await running.stop(0, 0)


@pytest.fixture(scope="module")
async def stubs(grpc_server):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}")
    yield Stubs(channel)
    await channel.close()
