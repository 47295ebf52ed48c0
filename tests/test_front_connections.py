"""Connection hygiene on both front doors: HTTP header deadline, keep-alive idle timeout, header
limits and connection cap (server/http/guard.py); gRPC idle connections; RLIMIT_NOFILE; and an
HTTP flood that must not starve gRPC health. Limits are set low so floods stay small and fast."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import start_server
from server.config import GrpcConfig, HttpConfig
from server.http.app import start_http
from tests.conftest import make_config
from tests.server_process import ServerProcess, grpc_health

SERVING = health_pb2.HealthCheckResponse.SERVING


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bytes, float]:
    """Read until the server closes; (what it sent, seconds it took). Raises TimeoutError."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), seconds)
    return data, time.monotonic() - start


@pytest.fixture(scope="module")
async def http_port():
    config = make_config()
    config.http = HttpConfig(enabled=True, port=0, header_timeout_seconds=0.5, keepalive_timeout_seconds=0.5,
                             max_header_bytes=2048, max_headers=20, max_connections=64)
    running = await start_server(config)
    running.http = await start_http(config, running.runtime)
    yield running.http.port
    await running.stop(0, 0)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_idle_and_slowloris_connections_are_closed_at_the_header_deadline(http_port):
    idle = [await _connect(http_port) for _ in range(5)]
    slow = [await _connect(http_port) for _ in range(5)]

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        for i in range(30):  # one header every 0.1 s: never finishes
            await asyncio.sleep(0.1)
            writer.write(b"X-Slow-%d: 1\r\n" % i)

    trickles = [asyncio.create_task(trickle(w)) for _, w in slow]
    try:
        results = await asyncio.gather(*(_closed_within(r, 3.0) for r, _ in idle + slow))
    finally:
        for task in trickles:
            task.cancel()
        for _, w in idle + slow:
            w.close()
    for data, took in results:
        assert data.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in data
        assert 0.4 < took < 1.5, took


async def test_idle_keep_alive_connection_is_closed(http_port):
    reader, writer = await _connect(http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 200")
    rest, took = await _closed_within(reader, 3.0)  # the body, then EOF at the keep-alive timeout
    assert b"serving" in rest and took < 1.5
    writer.close()


@pytest.mark.parametrize("headers", [
    b"".join(b"X-H%d: v\r\n" % i for i in range(40)),  # too many fields
    b"X-Big: " + b"a" * 4000 + b"\r\n",  # too many bytes
])
async def test_oversized_headers_are_431(http_port, headers):
    reader, writer = await _connect(http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    data, _ = await _closed_within(reader, 2.0)
    assert data.startswith(b"HTTP/1.1 431")
    writer.close()


async def test_grpc_closes_idle_connections():
    config = make_config()
    config.grpc = GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0, drain_seconds=0,
                             max_connection_idle_seconds=0.3)
    running = await start_server(config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        await asyncio.sleep(1.0)
        assert channel.get_state() == grpc.ChannelConnectivity.IDLE  # the server sent GOAWAY
    await running.stop(0, 0)


async def test_soft_fd_limit_is_raised_to_the_hard_limit(tmp_path):
    async with ServerProcess(tmp_path, {"http": {"enabled": False}}, nofile=(200, 1024)) as server:
        limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3:5] == ["1024", "1024"], line


async def test_http_flood_is_capped_and_does_not_starve_grpc(tmp_path):
    """256 descriptors in all, a cap of 64 HTTP connections, then 300 idle connections: beyond
    the cap they are answered 503 and closed at once, gRPC health still answers promptly, the
    held ones are closed at the header deadline, and HTTP serves again afterwards."""
    config = {"grpc": {"grace_seconds": 0.5, "drain_seconds": 0},
              "http": {"max_connections": 64, "header_timeout_seconds": 2}}
    async with ServerProcess(tmp_path, config, nofile=(256, 256)) as server:
        flood = []
        for _ in range(300):
            flood.append(await _connect(server.http_port))
        start = time.monotonic()
        assert await grpc_health(server.grpc_port, timeout=2) == SERVING
        health_latency = time.monotonic() - start
        first = await asyncio.gather(*(asyncio.wait_for(r.read(), 0.8) for r, _ in flood), return_exceptions=True)
        held = sum(isinstance(x, TimeoutError) for x in first)
        shed = [x for x in first if isinstance(x, bytes)]
        assert all(x.startswith(b"HTTP/1.1 503") for x in shed), shed[:1]
        shed = len(shed)
        assert held <= 64 and shed >= 300 - 64, (held, shed)
        assert health_latency < 1.0, health_latency
        # the held connections are closed at the header deadline; then HTTP answers again
        closed = await asyncio.gather(*(_closed_within(r, 3.0) for r, _ in flood), return_exceptions=True)
        assert not [c for c in closed if isinstance(c, BaseException)]
        reader, writer = await _connect(server.http_port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 2)).startswith(b"HTTP/1.1 200")
        for _, w in [*flood, (reader, writer)]:
            w.close()
        code, _ = await server.terminate()
        assert code == 0
