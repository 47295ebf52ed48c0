"""Three server processes sharing Redis and PostgreSQL behind Debian's nginx (grpc_pass), as
operators would run them: calls spread over all three; a deployment one replica cooled down is
avoided by the others; a route stored through one replica is served by the others; a replica
killed mid-run costs only the calls it was serving (UNAVAILABLE) while new calls keep succeeding.

Needs PostgreSQL and Redis on 127.0.0.1 and nginx (``apt-get install -y nginx``, which ``make
install`` / ``make test`` do when it is missing); skipped where any is missing, and under CI=true
that skip is a failure (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets

import grpc
import httpx
import pytest
from modelruntime.admin import AsyncAdminClient
from modelruntime.v1 import common_pb2, llm_service_pb2_grpc, provider_service_pb2_grpc
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb

from tests.helpers import struct, user
from tests.mocks.openai_mock import OpenAIMock, slow_first_byte, status
from tests.nginx import Nginx, find_nginx
from tests.server_process import ServerProcess, free_port
from tests.services import fresh_database

pytestmark = pytest.mark.services
KEY = "sk-test"
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def database():
    if find_nginx() is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    async with fresh_database("mr_replicas_") as url:
        yield url


def _deployment(url: str, name: str) -> dict:
    return {"name": name, "provider": "openai", "model": "gpt-4o-mini",
            "credentials": {"openai_api_key": KEY, "openai_api_base": url}}


async def _metric(http_port: int, pattern: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{http_port}/metrics")).text
    return sum(float(m) for m in re.findall(pattern + r"\S* (\S+)\n", text))


async def _generate(stub, request, timeout: float = 20) -> tuple[str, dict]:
    call = stub.Generate(request, timeout=timeout)
    response = await call
    return response.message.content, dict(await call.trailing_metadata())


async def test_three_replicas_behind_nginx(tmp_path, database):
    route = "shared-" + secrets.token_hex(3)
    async with contextlib.AsyncExitStack() as stack:
        failing = await stack.enter_async_context(OpenAIMock(api_keys=[KEY]))
        healthy = await stack.enter_async_context(OpenAIMock(api_keys=[KEY]))
        slow = await stack.enter_async_context(OpenAIMock(api_keys=[KEY]))
        config = {
            "storage": {"url": database, "redis_url": REDIS},
            "egress": {"allowed_cidrs": ["127.0.0.1/32"]},
            "grpc": {"grace_seconds": 1, "drain_seconds": 0},
            "auth": {"refresh_seconds": 0.2},
            # what a stored route's deployment without credentials uses
            "providers": {"openai": {"credentials": {"openai_api_key": KEY, "openai_api_base": healthy.url}}},
            "routing": {"poll_seconds": 0.1, "routes": {route: {
                "deployments": [_deployment(failing.url, "primary"), _deployment(healthy.url, "secondary")],
                "retry": {"attempts": 0}, "cooldown": {"failures": 1, "seconds": 120}}}},
        }
        replicas = []
        for i in range(3):
            (tmp_path / f"r{i}").mkdir()
            replicas.append(await stack.enter_async_context(ServerProcess(tmp_path / f"r{i}", config)))
        lb = await stack.enter_async_context(Nginx(tmp_path / "nginx", free_port(), free_port(),
                                                   [(r.grpc_port, r.http_port) for r in replicas]))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{lb.grpc_port}"))
        llm = llm_service_pb2_grpc.LLMServiceStub(channel)
        plain = llm_pb.GenerateRequest(
            target=common_pb2.ModelTarget(provider="openai", model="gpt-4o-mini", credentials=struct(
                {"openai_api_key": KEY, "openai_api_base": slow.url})), messages=[user("spread")])

        # 1. one client connection, calls spread over all three replicas
        answers = await asyncio.gather(*(_generate(llm, plain) for _ in range(60)))
        assert all(text == "Echo: spread" for text, _ in answers)
        handled = [await _metric(r.http_port, r'grpc_server_handled_total\{[^}]*grpc_method="Generate"')
                   for r in replicas]
        assert all(n >= 10 for n in handled), handled

        # 2. a cooldown set by one replica is honoured by the others
        failing.enqueue(status(500), times=100)
        direct = [llm_service_pb2_grpc.LLMServiceStub(await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{r.grpc_port}"))) for r in replicas]
        _, trailers = await _generate(direct[0], llm_pb.GenerateRequest(route=route, messages=[user("a")]))
        assert trailers["x-modelruntime-deployment"] == "secondary" and trailers["x-modelruntime-fallbacks"] == "1"
        assert len(failing.requests) == 1
        await asyncio.sleep(0.5)  # the others read the shared state every routing.poll_seconds
        for stub in direct[1:]:
            for _ in range(3):
                _, trailers = await _generate(stub, llm_pb.GenerateRequest(route=route, messages=[user("b")]))
                assert trailers["x-modelruntime-deployment"] == "secondary"
                assert trailers["x-modelruntime-attempts"] == "1"
        assert len(failing.requests) == 1  # no other replica tried the cooling deployment
        catalog = provider_service_pb2_grpc.ProviderServiceStub(channel)
        listed = await catalog.ListRoutes(prov_pb.ListRoutesRequest())
        (shown,) = [r for r in listed.routes if r.name == route]
        assert [d.cooling_down for d in shown.deployments] == [True, False]

        # 3. a route stored through one replica's AdminService is served by the others
        admin = AsyncAdminClient(channel=await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{replicas[0].grpc_port}")))
        stored = route + "-stored"
        await admin.put_route(stored, {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]})
        await asyncio.sleep(1.0)  # every replica re-reads the store every auth.refresh_seconds
        for stub in direct[1:]:
            text, trailers = await _generate(stub, llm_pb.GenerateRequest(route=stored, messages=[user("c")]))
            assert text == "Echo: c" and trailers["x-modelruntime-route"] == stored

        # 4. a replica killed mid-run: only its in-flight calls fail, with UNAVAILABLE
        slow.enqueue(slow_first_byte(3), times=30)
        before = len(slow.requests)
        calls = [asyncio.ensure_future(_generate(llm, plain)) for _ in range(30)]
        await slow.server.wait_for(lambda: len(slow.requests) >= before + 30, 15)
        victim = replicas[1]
        in_flight = await _metric(victim.http_port, r'modelruntime_calls_in_flight\{gen_ai_operation_name="chat"')
        assert in_flight >= 1
        assert victim.proc is not None
        victim.proc.kill()
        results = await asyncio.gather(*calls, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(f, grpc.aio.AioRpcError) and f.code() == grpc.StatusCode.UNAVAILABLE
                   for f in failed), failed
        assert len(failed) == in_flight
        assert all(r[0] == "Echo: spread" for r in results if not isinstance(r, BaseException))
        after = await asyncio.gather(*(_generate(llm, plain) for _ in range(30)))
        assert all(text == "Echo: spread" for text, _ in after)
