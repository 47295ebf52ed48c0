"""SIGTERM on a process serving both front doors: both report NOT_SERVING first, share one grace
period, cut streams with a proper final message (an SSE error event; a gRPC status with ErrorInfo),
log no traceback, and exit within grace_seconds + 1 s."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import httpx
from grpc_health.v1 import health_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import llm_service_pb2_grpc

from tests.helpers import decode, target, user
from tests.mocks.openai_mock import OpenAIMock, slow_stream
from tests.server_process import ServerProcess, grpc_health

KEY = "sk-shutdown"
GRACE, DRAIN = 2.0, 0.6
WORDS = " ".join(f"w{i}" for i in range(60))  # 60 events, 0.5 s apart: far longer than the grace


async def test_sigterm_drains_both_front_doors_and_cuts_streams_cleanly(tmp_path):
    async with OpenAIMock(api_keys=[KEY]) as mock:
        mock.enqueue(slow_stream(0.5), path="/chat/completions")
        mock.enqueue(slow_stream(0.5), path="/chat/completions")
        config = {"grpc": {"grace_seconds": GRACE, "drain_seconds": DRAIN},
                  "egress": {"allowed_cidrs": ["127.0.0.1/32"]},
                  "providers": {"openai": {"credentials": {"openai_api_key": KEY, "openai_api_base": mock.url}}}}
        async with ServerProcess(tmp_path, config) as server:
            base = f"http://127.0.0.1:{server.http_port}"
            async with (httpx.AsyncClient(base_url=base, timeout=10) as http,
                        grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel):
                assert (await http.get("/healthz")).status_code == 200
                rpc = llm_service_pb2_grpc.LLMServiceStub(channel).StreamGenerate(llm_pb.StreamGenerateRequest(
                    target=target("openai", "gpt-4o-mini", {"openai_api_key": KEY, "openai_api_base": mock.url}),
                    messages=[user(WORDS)]))
                assert (await rpc.read()).delta.content
                events: list[str] = []
                body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": WORDS}]}

                async def read_sse() -> None:
                    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                        assert response.status_code == 200
                        async for line in response.aiter_lines():  # raises if the body is cut short
                            if line.startswith("data: "):
                                events.append(line[6:])

                reading = asyncio.create_task(read_sse())
                while not events:
                    await asyncio.sleep(0.05)

                code_task = asyncio.create_task(server.terminate())
                await asyncio.sleep(DRAIN / 3)  # draining: both say so, both still serve
                assert await grpc_health(server.grpc_port) == health_pb2.HealthCheckResponse.NOT_SERVING
                assert (await http.get("/healthz")).status_code == 503
                await asyncio.sleep(DRAIN)  # both stopped accepting
                start = time.monotonic()
                try:
                    await httpx.AsyncClient(timeout=1).get(f"{base}/healthz")
                    raise AssertionError("HTTP still accepts after the drain")
                except httpx.ConnectError:
                    assert time.monotonic() - start < 1

                try:
                    while await rpc.read() is not grpc.aio.EOF:
                        pass
                    raise AssertionError("the gRPC stream ended normally")
                except grpc.aio.AioRpcError as err:
                    failure = decode(err)
                assert failure.code == grpc.StatusCode.UNAVAILABLE
                assert failure.reason == "InvokeServerUnavailableError"
                assert failure.metadata == {"provider": "", "model": ""}
                await reading
                code, took = await code_task
            assert json.loads(events[-1])["error"]["code"] == "server_shutting_down"
            assert "[DONE]" not in events and len(events) > 2
            assert code == 0 and took < GRACE + 1, took
            assert "Traceback" not in server.stderr, server.stderr
