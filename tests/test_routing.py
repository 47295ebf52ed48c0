"""Routes through the gRPC front door against scripted OpenAI mocks: retries, waits, deadlines,
fallbacks, weights, cooldown and probe, streams, the retry budget, parameters fitted to the
fallback model, context-window fallback, and the routing trailers and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb

from server.app import start_server
from server.config import ConfigError, RoutingConfig
from tests.conftest import Stubs, make_config
from tests.helpers import decode, struct, user
from tests.mocks.openai_mock import (
    OpenAIMock,
    context_length_exceeded,
    rate_limit,
    status,
    stream_error_after,
)
from tests.server_process import free_port

KEY = "sk-test"
FAST = {"backoff_seconds": 0.01, "backoff_max_seconds": 0.05}


def deployment(url: str, model: str = "gpt-4o-mini", **extra) -> dict:
    return {"provider": "openai", "model": model,
            "credentials": {"openai_api_key": KEY, "openai_api_base": url}, **extra}


@contextlib.asynccontextmanager
async def routed(routes: dict, **config):
    running = await start_server(make_config(routing=RoutingConfig(routes=routes), **config))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Stubs(channel), running
    finally:
        await channel.close()
        await running.stop(0, 0)


def ask(route: str, text: str = "hi", **params) -> llm_pb.GenerateRequest:
    return llm_pb.GenerateRequest(route=route, messages=[user(text)], model_parameters=struct(params))


async def generate(stubs: Stubs, request, timeout: float | None = None) -> tuple[llm_pb.GenerateResponse, dict]:
    call = stubs.llm.Generate(request, timeout=timeout)
    response = await call
    return response, dict(await call.trailing_metadata())


@pytest.fixture
async def mocks():
    async with OpenAIMock(api_keys=[KEY]) as a, OpenAIMock(api_keys=[KEY]) as b:
        yield a, b


async def test_503_then_success_is_served_by_the_retry(mocks):
    a, _ = mocks
    a.enqueue(status(503))
    async with routed({"main": {"deployments": [deployment(a.url)], "retry": FAST}}) as (stubs, _):
        response, trailers = await generate(stubs, ask("main", "hello"))
    assert response.message.content == "Echo: hello"
    assert len(a.requests) == 2
    assert trailers["x-modelruntime-attempts"] == "2"
    assert trailers["x-modelruntime-deployment"] == "openai/gpt-4o-mini"
    assert trailers["x-modelruntime-route"] == "main"


async def test_429_retry_after_is_waited_then_served(mocks):
    a, _ = mocks
    a.enqueue(rate_limit(retry_after=1))
    async with routed({"main": {"deployments": [deployment(a.url)], "retry": FAST}}) as (stubs, _):
        response, trailers = await generate(stubs, ask("main"))
    assert response.message.content == "Echo: hi"
    assert trailers["x-modelruntime-attempts"] == "2"
    first, second = a.requests
    assert second.received_at - first.received_at >= 1.0  # the provider's wait was honoured


async def test_429_longer_than_the_deadline_fails_fast_without_retry(mocks):
    a, _ = mocks
    a.enqueue(rate_limit(retry_after=1))
    async with routed({"main": {"deployments": [deployment(a.url)], "retry": FAST}}) as (stubs, _):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.llm.Generate(ask("main"), timeout=0.5)
    failure = decode(err.value)
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED  # not DEADLINE_EXCEEDED: it did not wait
    assert failure.retry_delay == pytest.approx(1.0)
    assert failure.reason == "InvokeRateLimitError"
    assert len(a.requests) == 1


async def test_first_deployment_down_the_second_serves(mocks):
    _, b = mocks
    down = f"http://127.0.0.1:{free_port()}"
    routes = {"main": {"deployments": [deployment(down, name="down"), deployment(b.url, name="up")],
                       "retry": {**FAST, "attempts": 1}}}
    async with routed(routes) as (stubs, _):
        response, trailers = await generate(stubs, ask("main", "one clean answer"))
        chunks = [c async for c in stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
            route="main", messages=[user("streamed")]))]
    assert response.message.content == "Echo: one clean answer"
    assert trailers["x-modelruntime-deployment"] == "up"
    assert trailers["x-modelruntime-fallbacks"] == "1"
    assert "".join(c.delta.content for c in chunks) == "Echo: streamed"
    assert len(b.requests) == 2


async def test_weights_3_to_1_over_1000_calls(mocks):
    a, b = mocks
    routes = {"main": {"strategy": "weighted",
                       "deployments": [deployment(a.url, weight=3), deployment(b.url, weight=1)]}}
    async with routed(routes) as (stubs, _):
        for _ in range(20):
            await asyncio.gather(*(stubs.llm.Generate(ask("main")) for _ in range(50)))
    assert len(a.requests) + len(b.requests) == 1000
    assert abs(len(a.requests) - 750) <= 50  # ±5 % of 1,000


async def test_cooldown_opens_after_failures_and_closes_after_the_probe(mocks):
    a, b = mocks
    a.enqueue(status(500), times=2)
    routes = {"main": {"deployments": [deployment(a.url, name="a"), deployment(b.url, name="b")],
                       "retry": {**FAST, "attempts": 0},
                       "cooldown": {"failures": 2, "window_seconds": 60, "seconds": 0.5}}}
    async with routed(routes) as (stubs, running):
        for _ in range(2):  # two failures of a, each answered by b
            _, trailers = await generate(stubs, ask("main"))
            assert trailers["x-modelruntime-deployment"] == "b"
        listed = await stubs.providers.ListRoutes(prov_pb.ListRoutesRequest())
        assert [d.cooling_down for d in listed.routes[0].deployments] == [True, False]
        _, trailers = await generate(stubs, ask("main"))
        assert trailers["x-modelruntime-deployment"] == "b" and trailers["x-modelruntime-attempts"] == "1"
        assert len(a.requests) == 2  # cooling down: not even tried
        await asyncio.sleep(0.6)
        _, trailers = await generate(stubs, ask("main"))  # the probe, which succeeds
        assert trailers["x-modelruntime-deployment"] == "a"
        listed = await stubs.providers.ListRoutes(prov_pb.ListRoutesRequest())
        assert not any(d.cooling_down for d in listed.routes[0].deployments)
        _, trailers = await generate(stubs, ask("main"))
        assert trailers["x-modelruntime-deployment"] == "a"
        text = running.observability.exposition()[0].decode()
    assert 'modelruntime_route_cooldowns_total{deployment="a",route="main"} 1.0' in text
    assert 'modelruntime_route_fallbacks_total{deployment="b",reason="500",route="main"} 2.0' in text


async def test_no_second_upstream_request_once_a_chunk_streamed(mocks):
    a, b = mocks
    a.enqueue(stream_error_after(2))
    routes = {"main": {"deployments": [deployment(a.url), deployment(b.url, name="b")], "retry": FAST}}
    async with routed(routes) as (stubs, _):
        call = stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(route="main", messages=[user("x y z w")]))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for chunk in call:
                received.append(chunk)
    assert received and err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(a.requests) == 1 and not b.requests
    trailers = dict(err.value.trailing_metadata())
    assert trailers["x-modelruntime-attempts"] == "1"


async def test_retry_budget_stops_a_retry_storm(mocks):
    a, _ = mocks
    a.enqueue(status(503), times=500)
    routes = {"main": {"deployments": [deployment(a.url)],
                       "retry": {"attempts": 3, "backoff_seconds": 0, "budget_ratio": 0.1, "budget_burst": 2},
                       "cooldown": {"failures": 10_000}}}
    async with routed(routes) as (stubs, running):
        for _ in range(40):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stubs.llm.Generate(ask("main"))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        text = running.observability.exposition()[0].decode()
    # without the budget 40 calls make 160 requests; with it at most 40 + 2 + 40 × 0.1
    assert 40 < len(a.requests) <= 46
    assert "modelruntime_route_retries_total" in text


async def test_fallback_parameters_fit_the_serving_model(mocks):
    _, b = mocks
    down = f"http://127.0.0.1:{free_port()}"
    routes = {"main": {"deployments": [deployment(down), deployment(b.url, model="gpt-3.5-turbo")],
                       "retry": {**FAST, "attempts": 0}}}
    async with routed(routes) as (stubs, _):
        await generate(stubs, ask("main", max_tokens=10000, temperature=0.5, reasoning_effort="high"))
    sent = b.requests[-1].json
    assert sent["model"] == "gpt-3.5-turbo"
    assert sent["max_tokens"] == 4096  # gpt-3.5-turbo's own maximum, not the caller's 10000
    assert sent["temperature"] == 0.5 and "reasoning_effort" not in sent


async def test_deployment_overrides_and_context_window_fallback(mocks):
    a, b = mocks
    a.enqueue(context_length_exceeded())
    routes = {"small": {"deployments": [deployment(a.url)], "context_window_fallback": "large"},
              "large": {"deployments": [deployment(b.url, model="gpt-4o", name="big", parameters={"seed": 7})]}}
    async with routed(routes) as (stubs, _):
        response, trailers = await generate(stubs, ask("small", "long prompt"))
    assert response.message.content == "Echo: long prompt"
    assert trailers["x-modelruntime-deployment"] == "big" and trailers["x-modelruntime-route"] == "small"
    assert b.requests[-1].json["seed"] == 7 and len(a.requests) == 1


async def test_other_4xx_is_never_retried_nor_sent_elsewhere(mocks):
    a, b = mocks
    a.enqueue(status(400))
    routes = {"main": {"deployments": [deployment(a.url), deployment(b.url, name="b")], "retry": FAST}}
    async with routed(routes) as (stubs, _):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.llm.Generate(ask("main"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(a.requests) == 1 and not b.requests


async def test_route_errors_and_listing(mocks):
    a, _ = mocks
    routes = {"main": {"deployments": [deployment(a.url, max_in_flight=4)], "description": "chat"}}
    async with routed(routes) as (stubs, _):
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stubs.llm.Generate(ask("nope"))
        both = ask("main")
        both.target.provider = "openai"
        with pytest.raises(grpc.aio.AioRpcError) as ambiguous:
            await stubs.llm.Generate(both)
        listed = await stubs.providers.ListRoutes(prov_pb.ListRoutesRequest())
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "route" in decode(unknown.value).violations
    assert ambiguous.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    route = listed.routes[0]
    assert (route.name, route.strategy, route.description) == ("main", "ordered", "chat")
    assert route.deployments[0].max_in_flight == 4 and route.deployments[0].provider == "openai"
    assert KEY not in str(listed)


async def test_config_mistakes_in_routes_stop_start_up():
    with pytest.raises(ConfigError, match="unknown provider"):
        await start_server(make_config(routing=RoutingConfig(
            routes={"r": {"deployments": [{"provider": "nosuch", "model": "m"}]}})))
    with pytest.raises(ValueError, match="max_in_fligt"):
        RoutingConfig(routes={"r": {"deployments": [{"provider": "openai", "model": "gpt-4o", "max_in_fligt": 1}]}})
    with pytest.raises(ValueError, match="unknown route"):
        RoutingConfig(routes={"r": {"deployments": [{"provider": "openai", "model": "gpt-4o"}],
                                    "context_window_fallback": "missing"}})


async def test_http_model_may_name_a_route(mocks):
    import httpx

    from server.config import HttpConfig
    from server.http.app import start_http

    a, b = mocks
    a.enqueue(status(502))
    routes = {"main": {"deployments": [deployment(a.url, name="a"), deployment(b.url, name="b")],
                       "retry": {**FAST, "attempts": 0}}}
    config = make_config(routing=RoutingConfig(routes=routes))
    config.http = HttpConfig(enabled=True, port=0)
    running = await start_server(config)
    running.http = await start_http(config, running.runtime)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http.port}/v1") as client:
            body = {"model": "main", "messages": [{"role": "user", "content": "via http"}]}
            reply = await client.post("/chat/completions", json=body)
            streamed = await client.post("/chat/completions", json={**body, "stream": True})
            unknown = await client.post("/chat/completions", json={**body, "model": "nosuch"})
            models = (await client.get("/models")).json()["data"]
    finally:
        await running.stop(0, 0)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "Echo: via http"
    assert reply.headers["x-modelruntime-deployment"] == "b" and reply.headers["x-modelruntime-fallbacks"] == "1"
    assert streamed.status_code == 200 and streamed.headers["x-modelruntime-route"] == "main"
    assert "via http" in streamed.text and "data: [DONE]" in streamed.text
    assert unknown.status_code == 400
    assert {"id": "main", "object": "model", "owned_by": "route"}.items() <= next(
        m for m in models if m["id"] == "main").items()


def test_shipped_replica_config_and_its_routes_are_valid():
    from pathlib import Path

    from engine.routing import parse_routes
    from engine.runtime import ModelRuntime
    from providers import builtin_registry
    from server.config import load_config
    from server.routing import check_routes

    config = load_config(Path(__file__).parents[1] / "deploy" / "replica.yaml")
    routes = parse_routes(config.routing.routes)
    assert routes["chat"].strategy == "weighted"
    check_routes(ModelRuntime(builtin_registry([], config.load_options()), None), routes)


async def test_retry_after_ms_and_gemini_retry_info_are_waited():
    from tests.mocks.gemini_mock import GeminiMock
    from tests.mocks.gemini_mock import rate_limit as gemini_rate_limit

    gkey = "AIzaSy-routing-test-0123456789"
    async with OpenAIMock(api_keys=[KEY]) as a, GeminiMock(api_keys=[gkey]) as g:
        a.enqueue(rate_limit(retry_after=None, retry_after_ms=300))
        g.enqueue(gemini_rate_limit(retry_delay="0.4s"))
        gemini = {"provider": "google", "model": "gemini-2.5-flash",
                  "credentials": {"google_api_key": gkey, "google_base_url": g.url + "/v1beta"}}
        routes = {"ms": {"deployments": [deployment(a.url)], "retry": FAST},
                  "gemini": {"deployments": [gemini], "retry": FAST}}
        async with routed(routes) as (stubs, _):
            _, openai_trailers = await generate(stubs, ask("ms"))
            _, gemini_trailers = await generate(stubs, ask("gemini"))
        assert openai_trailers["x-modelruntime-attempts"] == gemini_trailers["x-modelruntime-attempts"] == "2"
        assert a.requests[1].received_at - a.requests[0].received_at >= 0.3
        assert g.requests[1].received_at - g.requests[0].received_at >= 0.4


async def test_long_429_cools_down_and_falls_back_at_once(mocks):
    a, b = mocks
    a.enqueue(rate_limit(retry_after=30))
    routes = {"main": {"deployments": [deployment(a.url, name="a"), deployment(b.url, name="b")], "retry": FAST}}
    async with routed(routes) as (stubs, _):
        _, trailers = await generate(stubs, ask("main"))
        listed = await stubs.providers.ListRoutes(prov_pb.ListRoutesRequest())
    assert trailers["x-modelruntime-deployment"] == "b" and len(a.requests) == 1
    cooling = listed.routes[0].deployments[0]
    assert cooling.cooling_down and 25 < cooling.cooldown_seconds <= 30


async def test_least_in_flight_and_the_concurrency_cap(mocks):
    from tests.mocks.openai_mock import slow_first_byte

    a, b = mocks
    a.enqueue(slow_first_byte(0.5), times=20)
    b.enqueue(slow_first_byte(0.5), times=20)
    routes = {"spread": {"strategy": "least_in_flight",
                         "deployments": [deployment(a.url, name="a"), deployment(b.url, name="b")]},
              "capped": {"deployments": [deployment(a.url, name="a", max_in_flight=2), deployment(b.url, name="b")]},
              "full": {"deployments": [deployment(a.url, max_in_flight=1)]}}
    async with routed(routes) as (stubs, _):
        served = await asyncio.gather(*(generate(stubs, ask("spread")) for _ in range(10)))
        assert sorted(t["x-modelruntime-deployment"] for _, t in served) == ["a"] * 5 + ["b"] * 5
        served = await asyncio.gather(*(generate(stubs, ask("capped")) for _ in range(5)))
        assert sorted(t["x-modelruntime-deployment"] for _, t in served) == ["a", "a", "b", "b", "b"]
        results = await asyncio.gather(*(generate(stubs, ask("full")) for _ in range(2)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 1 and refused[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_python_client_names_a_route(mocks):
    import modelruntime

    a, _ = mocks
    async with routed({"main": {"deployments": [deployment(a.url)]}}) as (_, running):  # noqa: SIM117
        async with modelruntime.AsyncModelRuntimeClient(f"127.0.0.1:{running.port}") as client:
            reply = await client.llm.generate(route="main", messages=[{"role": "user", "content": "client"}])
            pieces = [c.delta.content async for c in client.llm.stream(
                route="main", messages=[{"role": "user", "content": "streamed"}])]
    assert reply.message.content == "Echo: client" and "".join(pieces) == "Echo: streamed"
