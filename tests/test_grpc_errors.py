"""Upstream failures, bad input, deadlines and cancellation, through the real gRPC server."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelruntime.v1 import llm_service_pb2 as llm_pb

from tests.helpers import failure_of, stream_failure, struct, target, user
from tests.mocks.openai_mock import (
    OpenAIMock,
    context_length_exceeded,
    hang,
    html_error,
    rate_limit,
    slow_first_byte,
    status,
)

KEY = "sk-live-SECRET-abcdef0123456789"


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


def gen(mock, key=KEY, model="gpt-4o", **kw):
    return llm_pb.GenerateRequest(
        target=target("openai", model, {"openai_api_key": key, "openai_api_base": mock.url}),
        messages=kw.pop("messages", [user("hi")]), **kw)


def sgen(mock, key=KEY, model="gpt-4o", **kw):
    return llm_pb.StreamGenerateRequest(
        target=target("openai", model, {"openai_api_key": key, "openai_api_base": mock.url}),
        messages=kw.pop("messages", [user("hi")]), **kw)


async def assert_healthy(stubs):
    health = health_pb2_grpc.HealthStub(stubs.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# ---- upstream failures ---------------------------------------------------------------------


async def test_bad_provider_key_is_invalid_argument_and_never_echoed(stubs, mock, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-DO-NOT-LEAK-42"
    f = await failure_of(stubs.llm.Generate(gen(mock, key=wrong)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT  # not UNAUTHENTICATED: the caller is fine
    assert f.reason == "InvokeAuthorizationError"
    assert "target.credentials" in f.violations
    assert f.metadata["upstreamStatus"] == "401"
    everything = f.message + repr(f.violations) + repr(f.metadata) + caplog.text
    assert wrong not in everything and KEY not in everything


async def test_rate_limit_carries_retry_info(stubs, mock):
    mock.enqueue(rate_limit(retry_after=2), path="/chat/completions")
    f = await failure_of(stubs.llm.Generate(gen(mock)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f.reason == "InvokeRateLimitError" and f.retry_delay == 2.0


async def test_rate_limit_before_first_chunk_of_a_stream(stubs, mock):
    mock.enqueue(rate_limit(retry_after=None, retry_after_ms=1500), path="/chat/completions")
    received, f = await stream_failure(stubs.llm.StreamGenerate(sgen(mock)))
    assert received == [] and f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.retry_delay == 1.5


@pytest.mark.parametrize("scenario", [html_error(500), status(503, body=b""), status(500)])
async def test_server_errors_are_unavailable(stubs, mock, scenario):
    mock.enqueue(scenario, path="/chat/completions")
    f = await failure_of(stubs.llm.Generate(gen(mock)))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert "<html" not in f.message.lower()


async def test_context_length_exceeded_is_bad_request(stubs, mock):
    mock.enqueue(context_length_exceeded(), path="/chat/completions")
    f = await failure_of(stubs.llm.Generate(gen(mock)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "context" in f.message.lower()


async def test_upstream_model_not_found(stubs, mock):
    # A fine-tune of a known base model resolves locally but the upstream does not know it.
    f = await failure_of(stubs.llm.Generate(gen(mock, model="ft:gpt-4o:acme::abc123")))
    assert f.code == grpc.StatusCode.NOT_FOUND and f.metadata["upstreamStatus"] == "404"


async def test_deadline_caps_the_upstream_call(stubs, mock):
    mock.enqueue(slow_first_byte(3), path="/chat/completions")
    started = time.monotonic()
    f = await failure_of(stubs.llm.Generate(gen(mock), timeout=0.5))
    assert f.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2
    await assert_healthy(stubs)


async def test_client_cancel_closes_upstream_connection_within_100ms(stubs, mock):
    mock.enqueue(hang(), path="/chat/completions")
    call = stubs.llm.StreamGenerate(sgen(mock))
    await mock.wait_requests(len(mock.requests) + 1)
    await asyncio.sleep(0.05)  # the upstream request is now open and waiting
    # The pool may reuse any idle connection: take the one that carried this request.
    conn = next(c for c in mock.connections if c.id == mock.requests[-1].connection_id)
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer
    assert record.closed_at - cancelled_at < 0.1, f"closed after {record.closed_at - cancelled_at:.3f}s"
    await assert_healthy(stubs)


async def test_unary_cancel_closes_upstream_too(stubs, mock):
    mock.enqueue(hang(send_headers=False), path="/chat/completions")
    call = stubs.llm.Generate(gen(mock))
    await mock.wait_requests(len(mock.requests) + 1)
    await asyncio.sleep(0.05)
    # The pool may reuse any idle connection: take the one that carried this request.
    conn = next(c for c in mock.connections if c.id == mock.requests[-1].connection_id)
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_at - cancelled_at < 0.1


# ---- bad input ------------------------------------------------------------------------------


async def test_unknown_provider(stubs, mock):
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("nope", "m", {}), messages=[user("hi")])))
    assert f.code == grpc.StatusCode.NOT_FOUND and f.reason == "InvokeBadRequestError"
    assert f.resource == "providers/nope/models/m"
    await assert_healthy(stubs)


async def test_unknown_model(stubs, mock):
    f = await failure_of(stubs.llm.Generate(gen(mock, model="gpt-unknown")))
    assert f.code == grpc.StatusCode.NOT_FOUND
    assert "target.model" in f.violations


async def test_parameter_out_of_range_names_the_field(stubs, mock):
    before = len(mock.requests)
    f = await failure_of(stubs.llm.Generate(gen(mock, model_parameters=struct(
        {"temperature": 5, "top_p": "high"}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "model_parameters.temperature" in f.violations
    assert "model_parameters.top_p" in f.violations
    assert len(mock.requests) == before, "nothing was sent upstream"


async def test_missing_credential_names_the_field(stubs, mock):
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("openai", "gpt-4o", {}), messages=[user("hi")])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert "credentials.openai_api_key" in f.violations


async def test_oversized_message_rejected_with_field(stubs, mock, grpc_server):
    limit = grpc_server.runtime.limits.max_message_bytes
    f = await failure_of(stubs.llm.Generate(gen(mock, messages=[user("ok"), user("x" * (limit + 1))])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "messages[1].content" in f.violations
    await assert_healthy(stubs)


async def test_message_over_grpc_limit_is_resource_exhausted(stubs, mock):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.llm.Generate(gen(mock, messages=[user("x" * (9 * 1024 * 1024))]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await assert_healthy(stubs)


@pytest.mark.parametrize(("schema", "field"), [
    ({"type": "string"}, "tools[0].parameters.type"),
    ({"type": "object", "properties": []}, "tools[0].parameters.properties"),
    ({"type": "object", "properties": {"a": {"type": "strng"}}}, "tools[0].parameters.properties.a.type"),
    ({"type": "object", "properties": {}, "required": ["x"]}, "tools[0].parameters.required"),
])
async def test_broken_tool_schema(stubs, mock, schema, field):
    f = await failure_of(stubs.llm.Generate(gen(mock, tools=[llm_pb.Tool(name="t", parameters=struct(schema))])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and field in f.violations


async def test_bad_tool_name(stubs, mock):
    f = await failure_of(stubs.llm.Generate(gen(mock, tools=[llm_pb.Tool(name="has space")])))
    assert "tools[0].name" in f.violations


async def test_image_to_model_without_vision(stubs, mock):
    msg = llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(image=llm_pb.MediaContent(url="https://example.com/a.png"))])
    f = await failure_of(stubs.llm.Generate(gen(mock, model="gpt-3.5-turbo-instruct", messages=[msg])))
    assert "messages[0].content[0]" in f.violations


async def test_missing_role_and_empty_target(stubs, mock):
    f = await failure_of(stubs.llm.Generate(gen(mock, messages=[llm_pb.Message(content=[
        llm_pb.ContentPart(text="x")])])))
    assert "messages[0].role" in f.violations
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(messages=[user("x")])))
    assert "target.provider" in f.violations
    await assert_healthy(stubs)


async def test_egress_refuses_private_addresses(stubs):
    # 10.x is not in the test allowlist (only 127.0.0.1): refused before any connection.
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("openai", "gpt-4o", {"openai_api_key": "k", "openai_api_base": "http://10.11.12.13:9"}),
        messages=[user("hi")])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "not allow" in f.message
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("openai", "gpt-4o", {"openai_api_key": "k",
                                           "openai_api_base": "http://169.254.169.254"}),
        messages=[user("hi")])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
