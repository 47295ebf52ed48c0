"""Oversized upstream replies fail UNAVAILABLE at a byte cap, and big token counts leave the loop free.

Why: a model endpoint is caller-chosen. A 300 MB body used to be read whole (14.8 GB RSS), a
30 MB one without usage stalled the event loop while its tokens were counted (health checks
took seconds), and CountTokens of a 4 MB message froze the loop with no upstream at all.
Health is probed from another thread, so a stalled server loop shows up in its latency.
"""

from __future__ import annotations

import asyncio
import random
import string
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import llm_service_pb2_grpc

from server.app import start_server
from server.config import Config, EgressConfig, GrpcConfig, HttpConfig
from tests.helpers import failure_of, stream_failure, target, user
from tests.mocks.httpserver import MockServer, ServerThread

MiB = 1024 * 1024
BIG = 30_000_000


def _completion(content: bytes) -> bytes:  # an OpenAI chat completion with no "usage"
    return (b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"' + content + b'"},"finish_reason":"stop"}]}')


BIG_BODY = _completion((b"hello world, tokens here. " * (BIG // 26 + 1))[:BIG])
OVER_BODY = _completion(b"x" * (2 * MiB))


async def _handler(req, resp):
    if req.path.endswith("/big/v1/chat/completions"):
        await resp.send(200, {"content-type": "application/json"}, BIG_BODY)
    elif req.path.endswith("/over/v1/chat/completions"):
        await resp.send(200, {"content-type": "application/json"}, OVER_BODY)
    elif req.path.endswith("/stream/v1/chat/completions"):  # events of 64 KiB, for ever
        await resp.start(200, {"content-type": "text/event-stream"})
        piece = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"' \
            + b"y" * 65536 + b'"}}]}\n\n'
        while not resp.disconnected:
            await resp.write(piece)
    elif req.path.endswith("/endless-event/v1/chat/completions"):  # one event that never ends
        await resp.start(200, {"content-type": "text/event-stream"})
        await resp.write(b'data: {"choices":[{"index":0,"delta":{"content":"')
        while not resp.disconnected:
            await resp.write(b"z" * 65536)
    else:
        await resp.send(404, {"content-type": "application/json"}, b'{"error":{"message":"no"}}')


@pytest.fixture(scope="module")
def mock():
    with ServerThread(MockServer(_handler)) as server:  # its own thread: it must not load our loop
        yield server


def _config(reply: int, stream: int) -> Config:
    return Config(
        grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.2, drain_seconds=0, max_message_bytes=64 * MiB),
        http=HttpConfig(enabled=False),
        egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], read_timeout=30, max_reply_bytes=reply,
                            max_stream_bytes=stream),
    )


async def _serve(config: Config):
    running = await start_server(config)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}",
                                        options=[("grpc.max_receive_message_length", 64 * MiB)])
    return running, channel, llm_service_pb2_grpc.LLMServiceStub(channel)


class HealthProbe:
    """Health/Check latencies from a thread with its own blocking channel."""

    def __init__(self, port: int) -> None:
        self.port, self.latencies = port, []
        self._stop = threading.Event()

    def _run(self) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            while not self._stop.is_set():
                started = time.perf_counter()
                stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.005)

    async def during(self, awaitable):
        thread = asyncio.ensure_future(asyncio.to_thread(self._run))
        await asyncio.sleep(0.1)
        try:
            return await awaitable
        finally:
            self._stop.set()
            await thread

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _target(mock, path: str):
    return target("openai", "gpt-4o", {"openai_api_key": "sk-test", "openai_api_base": f"{mock.url}/{path}"})


@pytest.fixture(scope="module")
async def small():
    running, channel, llm = await _serve(_config(reply=1 * MiB, stream=2 * MiB))
    llm.port = running.port
    yield llm
    await channel.close()
    await running.stop(0, 0)


async def test_body_over_the_cap_fails_unavailable(small, mock):
    f = await failure_of(small.Generate(llm_pb.GenerateRequest(target=_target(mock, "over"), messages=[user("hi")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE
    assert f"the provider's reply exceeded {1 * MiB} bytes" in f.message


async def test_stream_over_its_total_cap_fails_unavailable_and_closes(small, mock):
    call = small.StreamGenerate(llm_pb.StreamGenerateRequest(target=_target(mock, "stream"), messages=[user("hi")]))
    received, f = await stream_failure(call)
    assert f.code == grpc.StatusCode.UNAVAILABLE
    assert f"the provider's reply exceeded {2 * MiB} bytes" in f.message
    assert 0 < sum(len(c.delta.content) for c in received if c.HasField("delta")) <= 2 * MiB


async def test_one_endless_stream_event_fails_at_the_event_cap(small, mock):
    call = small.StreamGenerate(llm_pb.StreamGenerateRequest(target=_target(mock, "endless-event"),
                                                             messages=[user("hi")]))
    _, f = await stream_failure(call)
    assert f.code == grpc.StatusCode.UNAVAILABLE and f"exceeded {1 * MiB} bytes" in f.message


async def test_health_stays_fast_while_a_30mb_reply_without_usage_is_counted(mock):
    running, channel, llm = await _serve(_config(reply=64 * MiB, stream=64 * MiB))
    try:
        probe = HealthProbe(running.port)
        reply = await probe.during(llm.Generate(llm_pb.GenerateRequest(target=_target(mock, "big"),
                                                                       messages=[user("hi")]), timeout=60))
        assert reply.usage.completion_tokens > 1_000_000  # counted locally: the mock sent no usage
        print(f"health during a 30 MB reply: n={len(probe.latencies)} p99={probe.p99() * 1e3:.1f} ms "
              f"max={max(probe.latencies) * 1e3:.1f} ms")
        assert probe.p99() < 0.5
    finally:
        await channel.close()
        await running.stop(0, 0)


async def test_health_stays_fast_during_count_tokens_of_a_4mb_message(small):
    rng = random.Random(7)
    words = " ".join("".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(3, 12)))
                     for _ in range(450_000))[:4_000_000]
    probe = HealthProbe(small.port)
    request = llm_pb.CountTokensRequest(target=target("openai", "gpt-4o", {"openai_api_key": "sk-test"}),
                                        messages=[user(words)])
    reply = await probe.during(small.CountTokens(request, timeout=60))
    assert reply.tokens > 1_000_000
    print(f"health during CountTokens 4 MB: n={len(probe.latencies)} max={max(probe.latencies) * 1e3:.1f} ms")
    assert probe.p99() < 0.5
