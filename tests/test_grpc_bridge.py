"""The threaded gRPC bridge (server/bridge.py, ``grpc.mode: threads``, the default): what it
adds over the suites every gRPC test already runs through it — health Watch written with
``context.write``, reflection's client stream, bounded buffering of streamed messages, and calls
cancelled in numbers leaving no call behind on either side."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server import bridge
from server.app import SERVICE_NAMES
from server.bridge import ThreadedServer
from tests.mocks.openai_mock import OpenAIMock, hang
from tests.test_grpc_errors import KEY, gen, sgen


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


def test_threads_are_the_default(grpc_server):
    assert isinstance(grpc_server.server, ThreadedServer)


async def test_health_watch_streams_through_the_bridge(stubs):
    call = health_pb2_grpc.HealthStub(stubs.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    first = await asyncio.wait_for(call.read(), 2)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    call.cancel()


async def test_reflection_client_stream_through_the_bridge(stubs):
    stub = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAMES[1])

    replies = [r async for r in stub.ServerReflectionInfo(requests())]
    names = {s.name for s in replies[0].list_services_response.service}
    assert set(SERVICE_NAMES) <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto


async def test_cancelled_streams_leave_nothing_running(grpc_server, stubs, mock):
    for _ in range(20):
        mock.enqueue(hang(), path="/chat/completions")
    before = len(mock.requests)
    calls = [stubs.llm.StreamGenerate(sgen(mock)) for _ in range(20)]
    await mock.wait_requests(before + 20)
    assert len(grpc_server.in_flight.rpcs) == 20
    for call in calls:
        call.cancel()
    deadline = time.monotonic() + 3
    while grpc_server.in_flight.rpcs and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not grpc_server.in_flight.rpcs  # every handler task ended on the loop
    pool = grpc_server.server.pool
    while pool._work_queue.qsize() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    health = health_pb2_grpc.HealthStub(stubs.channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING


async def test_streamed_messages_wait_for_a_slow_reader():
    """The producer on the loop pauses once _HIGH messages wait for the pool thread, so an
    upstream is read no faster than the caller takes its messages."""
    loop = asyncio.get_running_loop()
    channel = bridge._Channel(loop)
    seen: list[int] = []

    async def produce():
        for i in range(200):
            await channel.put(i)
            seen.append(channel.items.qsize())

    def consume(out: list) -> None:
        while True:
            item = channel.items.get()
            if type(item) is bridge._End:
                return
            out.append(item)
            time.sleep(0.0005)
            channel.taken()

    got: list[int] = []
    reader = threading.Thread(target=consume, args=(got,))
    reader.start()
    await asyncio.wait_for(channel.pump(produce()), 10)
    await asyncio.to_thread(reader.join, 10)
    assert got == list(range(200))
    assert max(seen) <= bridge._HIGH


@pytest.mark.parametrize("registered", [True, False], ids=["callback-fires-at-once", "call-already-over"])
async def test_a_cancel_before_the_handler_started_releases_the_thread(registered):
    """A call that ends before its task ran must not leave the pool thread waiting forever,
    whether grpc runs the end callback at once or refuses it (the call already terminated)."""
    loop = asyncio.get_running_loop()
    br = bridge.Bridge(loop)

    async def never(request, context):
        yield b"x"

    class Ctx:
        def add_callback(self, fn):
            if registered:
                fn()  # the call is already over
            return registered

        def abort(self, code, details):
            raise grpc.RpcError(code)

    handler = br.handler(grpc.unary_stream_rpc_method_handler(never))

    def run() -> list:
        try:
            return list(handler.unary_stream(b"", Ctx()))
        except grpc.RpcError as exc:
            return [exc.args[0]]

    got = await asyncio.wait_for(asyncio.to_thread(run), 5)
    assert got in ([], [grpc.StatusCode.CANCELLED])


def test_initial_metadata_is_fused_with_the_pinned_grpcio():
    # The bridge wraps grpc's private _get_initial_metadata (see _fuse_initial_metadata); with the
    # grpcio pyproject.toml pins, the wrap must be in place, or every call pays a separate batch.
    assert bridge._FUSED is True


@pytest.mark.parametrize("fused", [True, False], ids=["in-the-response-batch", "separate-batch"])
async def test_request_id_reaches_the_caller_in_initial_metadata(stubs, mock, monkeypatch, fused):
    """x-request-id goes out as initial metadata either way; fused, without a batch of its own."""
    monkeypatch.setattr(bridge, "_FUSED", fused)
    separate: list[tuple] = []
    original = grpc._server._Context.send_initial_metadata

    def counting(self, metadata):
        separate.append(tuple(metadata))
        return original(self, metadata)

    monkeypatch.setattr(grpc._server._Context, "send_initial_metadata", counting)
    call = stubs.llm.Generate(gen(mock))
    assert (await call).message.content
    unary_id = dict(await call.initial_metadata())["x-request-id"]
    stream = stubs.llm.StreamGenerate(sgen(mock))
    chunks = [c async for c in stream]
    stream_id = dict(await stream.initial_metadata())["x-request-id"]
    assert chunks and unary_id and stream_id and unary_id != stream_id
    assert len(separate) == (0 if fused else 2)
