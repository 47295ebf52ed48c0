"""Issue 13, the rest: captured content (off by default, on by the operator, secrets scrubbed),
CountTokens and credential checks observed like model calls, bytes in and out (callers and
upstream), one span per upstream attempt including retried connect failures, and the W3C trace
context on the upstream request of every model type's call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import grpc
import httpx
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import provider_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import struct, target, user
from tests.mocks.openai_mock import reply, slow_stream
from tests.test_observability import CHAT, KEY, PARENT, TRACE_ID, _gen, _start, _stop, value


@pytest.fixture
async def mock():
    from tests.mocks.openai_mock import OpenAIMock

    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "modelruntime.calls"]


def _secret_prompt(mock) -> llm_pb.GenerateRequest:
    return _gen(mock, text=f"remember the launch code 7781 and my key {KEY}")


async def test_content_is_absent_by_default(mock, caplog):
    caplog.set_level(logging.INFO, logger="modelruntime.calls")
    env = await _start(mock, InMemorySpanExporter())
    try:
        mock.enqueue(reply(content="the answer is 42"))
        await env.llm.Generate(_secret_prompt(mock))
    finally:
        await _stop(env)
    spans = env.exporter.get_finished_spans()
    dump = json.dumps([dict(s.attributes) for s in spans]) + "\n".join(_lines(caplog))
    assert "launch code" not in dump and "the answer is 42" not in dump and KEY not in dump
    assert not any("gen_ai.input.messages" in s.attributes for s in spans)


async def test_content_captured_when_the_operator_turns_it_on(mock, caplog):
    caplog.set_level(logging.INFO, logger="modelruntime.calls")
    env = await _start(mock, InMemorySpanExporter(), capture_content=True)
    try:
        mock.enqueue(reply(content="the answer is 42"))
        await env.llm.Generate(_secret_prompt(mock), metadata=(("x-request-id", "content-1"),))
        mock.enqueue(slow_stream(0.3))
        call = env.llm.StreamGenerate(_gen(mock, cls=llm_pb.StreamGenerateRequest, text="a streamed question"))
        await call.read()
        call.cancel()
        for _ in range(200):  # the cancelled call's span ends once the runtime saw the cancel
            if len([s for s in env.exporter.get_finished_spans() if s.kind.name == "SERVER"]) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await _stop(env)
    lines = _lines(caplog)
    line = next(x for x in lines if "request_id=content-1" in x)
    assert "launch code 7781" in line and "the answer is 42" in line
    assert KEY not in "\n".join(lines) and "***" in line
    generated, streamed = (s.attributes for s in env.exporter.get_finished_spans() if s.kind.name == "SERVER")
    assert json.loads(generated["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "the answer is 42"}], "finish_reason": "stop"}]
    # The streamed, cancelled call: its prompt and the completion sent so far.
    assert streamed["modelruntime.status"] == "cancelled"
    assert json.loads(streamed["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "a streamed question"}]}]
    output = json.loads(streamed["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant" and output[0]["parts"][0]["type"] == "text"


async def test_content_in_spans_is_scrubbed_and_capped(mock):
    env = await _start(mock, InMemorySpanExporter(), capture_content=True, capture_content_max_chars=200)
    try:
        mock.enqueue(reply(content="x" * 1000))
        await env.llm.Generate(_secret_prompt(mock))
    finally:
        await _stop(env)
    span = next(s for s in env.exporter.get_finished_spans() if s.kind.name == "SERVER")
    sent = json.loads(span.attributes["gen_ai.input.messages"])
    assert sent[0]["parts"][0]["content"] == "remember the launch code 7781 and my key ***"
    assert len(span.attributes["gen_ai.output.messages"]) == 200
    assert span.attributes["gen_ai.output.messages"].endswith("…")
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)


async def test_count_tokens_and_credential_checks_are_observed(mock, caplog):
    caplog.set_level(logging.INFO, logger="modelruntime.calls")
    env = await _start(mock, InMemorySpanExporter())
    try:
        creds = {"openai_api_key": KEY, "openai_api_base": mock.url}
        counted = await env.llm.CountTokens(llm_pb.CountTokensRequest(
            target=target("openai", "gpt-4o-mini", creds), messages=[user("count me")]),
            metadata=(("x-request-id", "count-1"),))
        assert counted.tokens > 0
        providers = provider_service_pb2_grpc.ProviderServiceStub(env.channel)
        await providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
            provider="openai", credentials=struct(creds)), metadata=(("x-request-id", "validate-1"),))
        m = await env.scrape()
    finally:
        await _stop(env)
    count = {"gen_ai_operation_name": "count_tokens", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "gpt-4o-mini", "error_type": ""}
    assert value(m, "gen_ai_client_operation_duration_seconds_count", **count) == 1
    assert value(m, "gen_ai_client_token_usage_count", gen_ai_operation_name="count_tokens") == 0  # none used
    assert value(m, "gen_ai_client_operation_duration_seconds_count", gen_ai_operation_name="validate_credentials",
                 gen_ai_provider_name="openai", error_type="") == 1
    # The check's upstream request is tied to its call: counted for its provider, a child span.
    assert value(m, "modelruntime_upstream_attempts_total", gen_ai_provider_name="openai", status="200") == 1
    spans = env.exporter.get_finished_spans()
    check = next(s for s in spans if s.kind.name == "SERVER" and s.attributes["gen_ai.operation.name"]
                 == "validate_credentials")
    attempt = next(s for s in spans if s.kind.name == "CLIENT")
    assert attempt.parent.span_id == check.context.span_id
    sent = mock.requests[-1].header("traceparent") or ""
    assert sent.startswith(f"00-{attempt.context.trace_id:032x}-{attempt.context.span_id:016x}-")
    lines = _lines(caplog)
    assert any("request_id=count-1" in x and "provider=openai" in x and "model=gpt-4o-mini" in x for x in lines)
    assert any("request_id=validate-1" in x and "provider=openai" in x and "attempts=1" in x for x in lines)


async def test_bytes_in_and_out_at_both_doors_and_upstream(mock):
    env = await _start(mock, InMemorySpanExporter())
    try:
        mock.enqueue(reply(content="hello back", usage={"prompt_tokens": 3, "completion_tokens": 2,
                                                        "total_tokens": 5}))
        request = _gen(mock)
        response = await env.llm.Generate(request)
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        raw = json.dumps(body).encode()
        mock.enqueue(reply(content="ok"))
        async with httpx.AsyncClient() as client:
            r = await client.post(env.base + "/v1/chat/completions", content=raw,
                                  headers={"content-type": "application/json"})
        m = await env.scrape()
    finally:
        await _stop(env)
    assert value(m, "modelruntime_received_bytes_total", front_door="grpc") == request.ByteSize()
    assert value(m, "modelruntime_sent_bytes_total", front_door="grpc") == response.ByteSize()
    assert value(m, "modelruntime_received_bytes_total", front_door="http") == len(raw)
    assert value(m, "modelruntime_sent_bytes_total", front_door="http") == len(r.content)
    upstream_sent = sum(len(req.body) for req in mock.requests)
    assert value(m, "modelruntime_upstream_sent_bytes_total", gen_ai_provider_name="openai") == upstream_sent
    received = value(m, "modelruntime_upstream_received_bytes_total", gen_ai_provider_name="openai")
    attempts = [s for s in env.exporter.get_finished_spans() if s.kind.name == "CLIENT"]
    assert received > 0 and received == sum(s.attributes["http.response.body.size"] for s in attempts)
    assert sum(s.attributes["http.request.body.size"] for s in attempts) == upstream_sent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_one_span_per_upstream_attempt_with_a_retried_connect_failure(mock):
    env = await _start(mock, InMemorySpanExporter())
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    try:
        request = llm_pb.GenerateRequest(
            target=target("openai", "gpt-4o-mini", {"openai_api_key": KEY, "openai_api_base": dead}),
            messages=[user("hello")])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await env.llm.Generate(request, metadata=(("traceparent", PARENT),))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        m = await env.scrape()
    finally:
        await _stop(env)
    spans = env.exporter.get_finished_spans()
    call = next(s for s in spans if s.kind.name == "SERVER")
    attempts = [s for s in spans if s.kind.name == "CLIENT"]
    assert len(attempts) == 2  # egress.retries=1: the never-connected request is tried twice
    assert all(a.parent.span_id == call.context.span_id and format(a.context.trace_id, "032x") == TRACE_ID
               for a in attempts)
    assert all(a.attributes["error.type"] for a in attempts)
    assert call.attributes["modelruntime.upstream_attempts"] == 2
    assert value(m, "modelruntime_upstream_attempts_total", gen_ai_provider_name="openai",
                 status="connect_error") == 2
    assert value(m, "modelruntime_upstream_retries_total", gen_ai_provider_name="openai") == 1
    assert [a.attributes.get("modelruntime.retry", False) for a in attempts] == [False, True]
    assert value(m, "gen_ai_client_operation_duration_seconds_count", **CHAT,
                 error_type="InvokeConnectionError") == 1


async def test_caller_key_labels_only_when_the_config_allows(mock, tmp_path, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    from server.app import start_server
    from server.auth.crypto import generate_key_spec
    from server.auth.store import open_store
    from server.config import AuthConfig, ObservabilityConfig, StorageConfig
    from tests.test_observability import _config

    monkeypatch.setenv("MR_TEST_OBS_KEYS", generate_key_spec("k1"))
    store = await open_store("", tmp_path)
    _, team = await store.create_key("team-a")
    await store.close()
    for allowed in (False, True):
        config = _config(mock).model_copy(update={
            "auth": AuthConfig(enabled=True, encryption_keys_env="MR_TEST_OBS_KEYS"),
            "storage": StorageConfig(data_dir=str(tmp_path)),
            "observability": ObservabilityConfig(caller_key_labels=allowed, metrics_admin=True, metrics_port=0)})
        running = await start_server(config)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                from modelruntime.v1 import llm_service_pb2_grpc

                mock.enqueue(reply(content="ok", usage={"prompt_tokens": 6, "completion_tokens": 4,
                                                        "total_tokens": 10}))
                await llm_service_pb2_grpc.LLMServiceStub(channel).Generate(
                    _gen(mock), metadata=(("authorization", f"Bearer {team}"),))
            async with httpx.AsyncClient() as client:
                page = (await client.get(f"http://127.0.0.1:{running.metrics_port}/metrics")).text
        finally:
            await running.stop(0, 0)
        m = {f.name: f for f in text_string_to_metric_families(page)}
        assert ("modelruntime_caller_calls" in m) is allowed
        assert "caller_key" not in page or allowed
        if allowed:
            assert value(m, "modelruntime_caller_calls_total", caller_key="team-a", gen_ai_operation_name="chat",
                         outcome="ok") == 1
            assert value(m, "modelruntime_caller_tokens_total", caller_key="team-a", gen_ai_token_type="input") == 6
            assert value(m, "modelruntime_caller_cost_usd_total", caller_key="team-a") > 0


async def test_cancelled_http_stream_is_counted_in_metrics_and_traces(mock):
    env = await _start(mock, InMemorySpanExporter())
    try:
        mock.enqueue(slow_stream(0.3))
        body = {"model": "openai/gpt-4o-mini", "stream": True,
                "messages": [{"role": "user", "content": "a long story please"}]}
        async with httpx.AsyncClient() as client, client.stream(
                "POST", env.base + "/v1/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    break  # the first chunk, then leave
        for _ in range(200):
            m = await env.scrape()
            if value(m, "modelruntime_calls_cancelled_total", gen_ai_operation_name="chat") and value(
                    m, "modelruntime_requests_total", front_door="http", code="499"):
                break
            await asyncio.sleep(0.02)
    finally:
        await _stop(env)
    assert value(m, "modelruntime_calls_cancelled_total", gen_ai_operation_name="chat",
                 gen_ai_provider_name="openai") == 1
    assert value(m, "gen_ai_client_token_usage_sum", **CHAT, gen_ai_token_type="input") > 0
    assert value(m, "modelruntime_requests_total", front_door="http", code="499") == 1
    span = next(s for s in env.exporter.get_finished_spans() if s.kind.name == "SERVER")
    assert span.attributes["modelruntime.status"] == "cancelled"
    attempt = next(s for s in env.exporter.get_finished_spans() if s.kind.name == "CLIENT")
    assert attempt.attributes["error.type"] == "cancelled"


def test_families_expose_le_buckets_and_counters_through_prometheus_client():
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from server.observability.families import Families

    families = Families()
    hist = families.add("histogram", "demo_duration", "A demo.", ["op"], unit="seconds", buckets=(0.1, 1.0))
    counter = families.add("counter", "demo_calls", "Calls.", ["op"])
    gauge = families.add("gauge", "demo_open", "Open.", [])
    for v in (0.1, 0.5, 1.0, 7.0):  # a value equal to a bound falls in that bucket (le)
        hist.labels("chat").observe(v)
    counter.labels("chat").inc(2)
    gauge.labels().inc(3)
    gauge.labels().dec()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(families)
    parsed = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    buckets = {s.labels["le"]: s.value for s in parsed["demo_duration_seconds"].samples if s.name.endswith("_bucket")}
    assert buckets == {"0.1": 1, "1.0": 3, "+Inf": 4}
    count = next(s.value for s in parsed["demo_duration_seconds"].samples if s.name.endswith("_count"))
    total = next(s.value for s in parsed["demo_duration_seconds"].samples if s.name.endswith("_sum"))
    assert (count, total) == (4, 8.6)
    assert parsed["demo_calls"].type == "counter" and parsed["demo_calls"].samples[0].name == "demo_calls_total"
    assert parsed["demo_calls"].samples[0].value == 2 and parsed["demo_open"].samples[0].value == 2


def test_tracing_off_imports_no_opentelemetry_sdk():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from server.config import ObservabilityConfig\n"
        "from server.observability import Observability\n"
        "obs = Observability(ObservabilityConfig(), {'openai'})\n"
        "assert obs.tracing is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout
