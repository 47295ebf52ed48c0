"""Issue 13: /metrics (parsed with prometheus_client's own parser) after calls through both front
doors, traces (in-memory exporter, and once through a real OTLP/gRPC receiver), a cancelled
stream in both, request ids both ways, the call log line, and the Grafana dashboard's queries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import grpc
import httpx
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import llm_service_pb2_grpc, text_embedding_service_pb2_grpc
from modelruntime.v1 import text_embedding_service_pb2 as te_pb
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from server.app import start_server
from server.config import (
    Config,
    EgressConfig,
    GrpcConfig,
    HttpConfig,
    ObservabilityConfig,
    ProviderCredentials,
)
from server.http.app import start_http
from server.observability import Observability
from tests.helpers import target, user
from tests.mocks.openai_mock import OpenAIMock, reply, slow_stream, status

KEY = "sk-obs-0123456789abcdef"
ROOT = Path(__file__).parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "model-runtime.json"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _config(mock: OpenAIMock, **observability) -> Config:
    return Config(
        grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.5, drain_seconds=0),
        http=HttpConfig(enabled=True, host="127.0.0.1", port=0),
        egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], retries=1, connect_timeout=5, read_timeout=30),
        providers={"openai": ProviderCredentials(credentials={"openai_api_key": KEY, "openai_api_base": mock.url})},
        observability=ObservabilityConfig(**observability),
    )


class Env:
    def __init__(self, running, http, exporter, mock) -> None:
        self.running, self.http, self.exporter, self.mock = running, http, exporter, mock
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        self.llm = llm_service_pb2_grpc.LLMServiceStub(self.channel)
        self.embedding = text_embedding_service_pb2_grpc.TextEmbeddingServiceStub(self.channel)
        self.base = f"http://127.0.0.1:{http.port}"

    async def scrape_text(self) -> str:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.base + "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    async def scrape(self) -> dict:
        return {f.name: f for f in text_string_to_metric_families(await self.scrape_text())}


async def _start(mock: OpenAIMock, exporter=None, **observability):
    config = _config(mock, **observability)
    running = await start_server(config, observability=Observability(
        config.observability, {"openai"}, span_exporter=exporter))
    http = await start_http(config, running.runtime)
    return Env(running, http, exporter, mock)


async def _stop(env: Env) -> None:
    await env.channel.close()
    await env.http.stop(0)
    await env.running.stop(0, 0)


@pytest.fixture
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


@pytest.fixture
async def env(mock):
    e = await _start(mock, InMemorySpanExporter())
    yield e
    await _stop(e)


def _gen(mock, model="gpt-4o-mini", cls=llm_pb.GenerateRequest, text="hello there"):
    return cls(target=target("openai", model, {"openai_api_key": KEY, "openai_api_base": mock.url}),
               messages=[user(text)])


def samples(families: dict, name: str, **labels) -> list:
    family_name = re.sub(r"(_total|_count|_sum|_bucket)$", "", name)
    out = []
    for s in families[family_name].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            out.append(s)
    return out


def value(families: dict, name: str, **labels) -> float:
    return sum(s.value for s in samples(families, name, **labels))


CHAT = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}


async def test_metrics_through_both_front_doors(env):
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    for _ in range(2):
        env.mock.enqueue(reply(content="hi there", usage=usage))
        await env.llm.Generate(_gen(env.mock))
    env.mock.enqueue(reply(content="from http", usage={"prompt_tokens": 5, "completion_tokens": 3,
                                                       "total_tokens": 8}))
    async with httpx.AsyncClient() as client:
        r = await client.post(env.base + "/v1/chat/completions", json={
            "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    embedded = await env.embedding.Embed(te_pb.EmbedRequest(
        target=target("openai", "text-embedding-3-small", {"openai_api_key": KEY, "openai_api_base": env.mock.url}),
        texts=["a", "bb"]))
    env.mock.enqueue(status(429))
    with pytest.raises(grpc.aio.AioRpcError):
        await env.llm.Generate(_gen(env.mock))

    m = await env.scrape()
    # The GenAI conventions: names and units by their Prometheus mapping, counts = calls made.
    ok = {**CHAT, "error_type": ""}
    assert value(m, "gen_ai_client_operation_duration_seconds_count", **ok) == 3
    assert value(m, "gen_ai_client_operation_duration_seconds_count", **CHAT, error_type="InvokeRateLimitError") == 1
    assert value(m, "gen_ai_client_token_usage_sum", **CHAT, gen_ai_token_type="input") == 11 + 11 + 5
    assert value(m, "gen_ai_client_token_usage_sum", **CHAT, gen_ai_token_type="output") == 7 + 7 + 3
    assert value(m, "gen_ai_client_token_usage_count", **CHAT, gen_ai_token_type="input") == 3
    assert all(s.labels["gen_ai_response_model"].startswith("gpt-4o-mini")  # the mock answers a dated name
               for s in samples(m, "gen_ai_client_token_usage_count", **CHAT))
    emb = {"gen_ai_operation_name": "embeddings", "gen_ai_request_model": "text-embedding-3-small"}
    assert value(m, "gen_ai_client_token_usage_sum", **emb, gen_ai_token_type="input") == embedded.usage.tokens
    # The runtime's own.
    assert value(m, "modelruntime_cost_usd_total", gen_ai_provider_name="openai",
                 gen_ai_request_model="gpt-4o-mini") > 0
    assert value(m, "modelruntime_requests_total", front_door="grpc",
                 method="/modelruntime.v1.LLMService/Generate", code="OK", error_class="") == 2
    assert value(m, "modelruntime_requests_total", front_door="grpc", code="RESOURCE_EXHAUSTED",
                 error_class="InvokeRateLimitError") == 1
    assert value(m, "modelruntime_requests_total", front_door="http", method="/chat/completions", code="200") == 1
    assert value(m, "modelruntime_upstream_attempts_total", gen_ai_provider_name="openai", status="200") == 4
    assert value(m, "modelruntime_upstream_attempts_total", status="429") == 1
    assert value(m, "modelruntime_calls_in_flight", gen_ai_operation_name="chat") == 0
    assert value(m, "modelruntime_received_bytes_total", front_door="grpc") > 0
    assert value(m, "modelruntime_sent_bytes_total", front_door="http") > 0
    # gRPC server metrics by method and code.
    assert value(m, "grpc_server_handled_total", grpc_service="modelruntime.v1.LLMService",
                 grpc_method="Generate", grpc_code="OK", grpc_type="unary") == 2
    assert value(m, "grpc_server_handling_seconds_count", grpc_method="Generate") == 3


async def test_cancelled_stream_is_counted_in_metrics_and_traces(env):
    env.mock.enqueue(slow_stream(0.3))
    call = env.llm.StreamGenerate(_gen(env.mock, cls=llm_pb.StreamGenerateRequest,
                                       text="tell me a long story please"))
    first = await call.read()
    assert first.delta.content or first.model
    call.cancel()
    for _ in range(100):
        m = await env.scrape()
        if value(m, "modelruntime_calls_cancelled_total", gen_ai_operation_name="chat"):
            break
        await asyncio.sleep(0.02)
    assert value(m, "modelruntime_calls_cancelled_total", gen_ai_operation_name="chat",
                 gen_ai_provider_name="openai") == 1
    assert value(m, "gen_ai_client_operation_duration_seconds_count", **CHAT, error_type="") == 1
    assert value(m, "gen_ai_client_token_usage_count", **CHAT, gen_ai_token_type="input") == 1
    assert value(m, "gen_ai_client_token_usage_sum", **CHAT, gen_ai_token_type="input") > 0
    assert value(m, "gen_ai_server_time_to_first_token_seconds_count", **CHAT) == 1
    assert value(m, "modelruntime_streams_open", gen_ai_operation_name="chat") == 0
    assert value(m, "grpc_server_handled_total", grpc_method="StreamGenerate", grpc_code="CANCELLED") == 1
    span = next(s for s in env.exporter.get_finished_spans() if s.kind.name == "SERVER")
    assert span.attributes["modelruntime.status"] == "cancelled"
    assert span.attributes["error.type"] == "cancelled"
    assert span.attributes["gen_ai.usage.input_tokens"] > 0
    assert "gen_ai.usage.output_tokens" in span.attributes


async def test_spans_continue_the_callers_trace_and_reach_the_upstream(env):
    env.mock.enqueue(reply(content="ok", usage={"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}))
    await env.llm.Generate(_gen(env.mock), metadata=(("traceparent", PARENT),))
    spans = env.exporter.get_finished_spans()
    call = next(s for s in spans if s.kind.name == "SERVER")
    attempt = next(s for s in spans if s.kind.name == "CLIENT")
    assert call.name == "chat gpt-4o-mini"
    assert format(call.context.trace_id, "032x") == TRACE_ID
    assert call.parent is not None and format(call.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert attempt.parent.span_id == call.context.span_id
    a = call.attributes
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == (
        "chat", "openai", "gpt-4o-mini")
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (4, 2)
    assert a["gen_ai.response.model"] and a["modelruntime.upstream_attempts"] == 1
    assert attempt.attributes["http.response.status_code"] == 200
    sent = env.mock.requests[-1].header("traceparent")
    assert sent == f"00-{TRACE_ID}-{attempt.context.span_id:016x}-01"
    # no prompt or completion text, no key, in any span
    dump = json.dumps([dict(s.attributes) for s in spans])
    assert "hello there" not in dump and KEY not in dump

    # HTTP: the traceparent header is continued the same way
    env.exporter.clear()
    env.mock.enqueue(reply(content="ok"))
    async with httpx.AsyncClient() as client:
        await client.post(env.base + "/v1/chat/completions", headers={"traceparent": PARENT},
                          json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    call = next(s for s in env.exporter.get_finished_spans() if s.kind.name == "SERVER")
    assert format(call.context.trace_id, "032x") == TRACE_ID


async def test_request_id_round_trips_and_the_call_log_line(env, caplog):
    caplog.set_level(logging.INFO, logger="modelruntime.calls")
    env.mock.enqueue(reply(content="ok", usage={"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}))
    call = env.llm.Generate(_gen(env.mock), metadata=(("x-request-id", "req-abc.123"),))
    await call
    assert dict(await call.initial_metadata())["x-request-id"] == "req-abc.123"
    call = env.llm.Generate(_gen(env.mock), metadata=(("x-request-id", "bad id with spaces"),))
    await call
    generated = dict(await call.initial_metadata())["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    async with httpx.AsyncClient() as client:
        r = await client.post(env.base + "/v1/chat/completions", headers={"x-request-id": "http-77"},
                              json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert r.headers["x-request-id"] == "http-77"
        r = await client.post(env.base + "/v1/chat/completions", json={"model": "openai/nope", "messages": []})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    lines = [r.getMessage() for r in caplog.records if r.name == "modelruntime.calls"]
    first = next(line for line in lines if "request_id=req-abc.123" in line)
    for part in ("front_door=grpc", "status=OK", "provider=openai", "model=gpt-4o-mini", "model_type=llm",
                 "input_tokens=4", "output_tokens=2", "cost_usd=", "latency_ms=", "attempts=1"):
        assert part in first, (part, first)
    assert any("request_id=http-77" in line and "status=200" in line for line in lines)
    assert not any(KEY in line or "hello there" in line for line in lines)


async def test_json_call_log_metrics_off_and_admin_port(mock, capsys):
    calls_log = logging.getLogger("modelruntime.calls")
    calls_log.setLevel(logging.INFO)
    env = await _start(mock, metrics=False, log_format="json")
    try:
        mock.enqueue(reply(content="ok"))
        await env.llm.Generate(_gen(mock), metadata=(("x-request-id", "json-1"),))
        async with httpx.AsyncClient() as client:
            assert (await client.get(env.base + "/metrics")).status_code == 404
    finally:
        await _stop(env)
        calls_log.handlers.clear()
        calls_log.propagate = True
        calls_log.setLevel(logging.NOTSET)
    line = next(x for x in capsys.readouterr().err.splitlines() if "json-1" in x)
    record = json.loads(line)
    assert record["request_id"] == "json-1" and record["status"] == "OK" and record["model"] == "gpt-4o-mini"

    env = await _start(mock, metrics_admin=True, metrics_port=0)
    try:
        mock.enqueue(reply(content="ok"))
        await env.llm.Generate(_gen(mock))
        async with httpx.AsyncClient() as client:
            assert (await client.get(env.base + "/metrics")).status_code == 404  # not on the HTTP port
            r = await client.get(f"http://127.0.0.1:{env.running.metrics_port}/metrics")
        m = {f.name: f for f in text_string_to_metric_families(r.text)}
        assert value(m, "gen_ai_client_operation_duration_seconds_count", **CHAT) == 1
    finally:
        await _stop(env)


async def test_spans_reach_a_real_otlp_grpc_receiver(mock):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received: list = []

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(self, request, context):
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    collector = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    await collector.start()
    config = _config(mock, tracing=True, otlp_endpoint=f"http://127.0.0.1:{port}")
    running = await start_server(config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            mock.enqueue(reply(content="ok"))
            await llm_service_pb2_grpc.LLMServiceStub(channel).Generate(_gen(mock), metadata=(("traceparent", PARENT),))
    finally:
        await running.stop(0, 0)  # flushes the batch processor
        await collector.stop(0)
    spans = [s for r in received for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    names = {s.name for s in spans}
    assert "chat gpt-4o-mini" in names
    assert all(s.trace_id.hex() == TRACE_ID for s in spans)
    service = {a.key: a.value.string_value for r in received for rs in r.resource_spans
               for a in rs.resource.attributes}
    assert service["service.name"] == "model-runtime"


def _exported_names(families) -> set[str]:
    names = set()
    for f in families:
        if f.type == "histogram":
            names |= {f.name + "_bucket", f.name + "_count", f.name + "_sum"}
        elif f.type == "counter":
            names |= {f.name + "_total", f.name + "_created"}
        else:
            names.add(f.name)
    return names


async def test_dashboard_queries_only_name_exported_metrics(env):
    families = list(text_string_to_metric_families(await env.scrape_text()))
    exported = _exported_names(families)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    named = set()
    for expr in exprs:
        for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'\b(by|without)\s*\([^)]*\)|\{[^}]*\}|\[[^\]]*\]', "", expr)):
            if token.startswith(("gen_ai_", "modelruntime_", "grpc_server_")):
                named.add(token)
    assert named, "the dashboard names no metric"
    assert named <= exported, named - exported
