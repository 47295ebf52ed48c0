"""Anthropic (native Messages API) through the real gRPC server against the faithful Anthropic mock."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb

from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.anthropic_mock import (
    STRING_SUFFIX,
    AnthropicMock,
    count_input_tokens,
    expected_tool_input,
    hang,
    overloaded_in_stream,
    rate_limit,
    request_too_large,
    status,
    truncate_after,
)

KEY = "sk-ant-api03-test-0123456789abcdef"
MODEL = "claude-sonnet-4-6"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
async def mock():
    async with AnthropicMock(api_keys=[KEY]) as m:
        yield m


def creds(mock: AnthropicMock, key: str = KEY) -> dict:
    return {"anthropic_api_key": key, "anthropic_api_url": mock.url}


def req(mock, model=MODEL, messages=None, cls=llm_pb.GenerateRequest, key=KEY, **kw):
    return cls(target=target("anthropic", model, creds(mock, key)), messages=messages or [user("hello there")], **kw)


def sreq(mock, **kw):
    return req(mock, cls=llm_pb.StreamGenerateRequest, **kw)


def tool(name="get_weather", schema=None):
    return llm_pb.Tool(name=name, description=f"{name} tool", parameters=struct(schema or WEATHER))


def collect_calls(chunks) -> dict[int, dict]:
    calls: dict[int, dict] = {}
    for c in chunks:
        for f in c.delta.tool_calls:
            entry = calls.setdefault(f.index, {"id": "", "name": "", "args": "", "fragments": 0})
            entry["id"] = entry["id"] or f.id
            entry["name"] = entry["name"] or f.name
            entry["args"] += f.arguments
            entry["fragments"] += 1
    return calls


# ---- catalog ---------------------------------------------------------------------------------


async def test_catalog_lists_anthropic_and_its_models(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    anthropic = providers["anthropic"]
    assert anthropic.label.en_us == "Anthropic"
    assert list(anthropic.supported_model_types) == [common_pb2.MODEL_TYPE_LLM]
    assert list(anthropic.configurate_methods) == [prov_pb.CONFIGURATE_METHOD_PREDEFINED_MODEL]
    fields = {f.variable: f for f in anthropic.provider_credential_fields}
    assert fields["anthropic_api_key"].type == prov_pb.FORM_TYPE_SECRET_INPUT and fields["anthropic_api_key"].required
    assert fields["anthropic_api_url"].type == prov_pb.FORM_TYPE_TEXT_INPUT and not fields["anthropic_api_url"].required

    models = (await stubs.providers.ListModels(prov_pb.ListModelsRequest(
        provider="anthropic", model_type=common_pb2.MODEL_TYPE_LLM))).models
    names = [m.name for m in models]
    assert names[0] == "claude-opus-5-5" and {"claude-sonnet-4-6", "claude-haiku-4-5-20251001"} <= set(names)
    assert "claude-3-7-sonnet-20250219" not in names  # retired: deprecated, hidden by default
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="anthropic", model_type=common_pb2.MODEL_TYPE_LLM, model="claude-haiku-4-5-20251001"))).model
    assert model.properties["context_size"] == 200000
    assert prov_pb.MODEL_FEATURE_VISION in model.features and prov_pb.MODEL_FEATURE_DOCUMENT in model.features
    rules = {r.name: r for r in model.parameter_rules}
    assert rules["max_tokens"].required and rules["max_tokens"].max == 64000
    assert rules["thinking_budget"].min == 1024
    assert Decimal(model.pricing.input) == Decimal(1) and Decimal(model.pricing.output) == Decimal(5)


# ---- generation ------------------------------------------------------------------------------


async def test_generate_unary_with_system_prompt_and_priced_usage(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "top_k": 40, "max_tokens": 100}), stop=["END"], user="u-1",
    ))
    assert response.message.content == mock.expected_reply("hello there")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.provider_finish_reason == "end_turn"
    assert response.id.startswith("msg_")
    sent = mock.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.json
    assert body["model"] == MODEL and body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert body["max_tokens"] == 100 and body["temperature"] == 0.5 and body["top_k"] == 40
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u-1"}
    assert "stream" not in body and "thinking" not in body
    u = response.usage
    assert u.prompt_tokens == count_input_tokens(body) and u.completion_tokens == 3  # "Echo: hello there"
    # claude-sonnet-4-6: 3 / 15 USD per 1M tokens
    assert Decimal(u.prompt_unit_price) == Decimal(3) and Decimal(u.completion_unit_price) == Decimal(15)
    expected = (Decimal(u.prompt_tokens) * Decimal(3) * Decimal("0.000001")).quantize(Decimal("0.0000001"))
    assert Decimal(u.prompt_price) == expected
    assert Decimal(u.total_price) == Decimal(u.prompt_price) + Decimal(u.completion_price)
    assert u.currency == "USD" and u.latency > 0


async def test_max_tokens_is_always_sent_from_the_rule_default(stubs, mock):
    await stubs.llm.Generate(req(mock))
    assert mock.requests[-1].json["max_tokens"] == 32000  # claude-sonnet-4-6 rule default
    await stubs.llm.Generate(req(mock, model="claude-opus-4-8"))
    assert mock.requests[-1].json["max_tokens"] == 64000


async def test_stream_text_with_usage_only_on_the_final_chunk(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user("stream me please")]))]
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("stream me please")
    assert len([c for c in chunks if c.delta.content]) > 1
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.provider_finish_reason == "end_turn"
    body = mock.requests[-1].json
    assert body["stream"] is True
    assert final.usage.prompt_tokens == count_input_tokens(body) and final.usage.completion_tokens == 4
    assert final.usage.total_price and all(not c.HasField("usage") for c in chunks[:-1])


async def test_stream_tool_call_split_over_many_events_reassembles(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("Paris please")], tools=[tool()],
        tool_choice=llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_AUTO)))]
    body = mock.requests[-1].json
    assert body["tools"] == [{"name": "get_weather", "description": "get_weather tool", "input_schema": WEATHER}]
    assert body["tool_choice"] == {"type": "auto"}
    assert "".join(c.delta.content for c in chunks) == "Let me check that."
    calls = collect_calls(chunks)
    assert list(calls) == [0]  # content block 1 is tool call 0
    call = calls[0]
    assert call["fragments"] > 5 and call["id"].startswith("toolu_") and call["name"] == "get_weather"
    parsed = json.loads(call["args"])
    assert parsed == expected_tool_input(WEATHER, "Paris please")
    assert parsed["city"].endswith(STRING_SUFFIX)  # the non-ASCII survived pieces split mid-character
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and final.provider_finish_reason == "tool_use"


async def test_two_tool_calls_stream_and_unary(stubs, mock):
    tools = [tool("a_tool"), tool("b_tool", {"type": "object", "properties": {"n": {"type": "integer"}}})]
    required = llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_REQUIRED)
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, tools=tools, tool_choice=required))]
    assert mock.requests[-1].json["tool_choice"] == {"type": "any"}
    calls = collect_calls(chunks)
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["a_tool", "b_tool"]
    assert calls[0]["id"] != calls[1]["id"]
    assert json.loads(calls[1]["args"]) == {"n": 3}
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS

    response = await stubs.llm.Generate(req(mock, tools=tools, tool_choice=llm_pb.ToolChoice(
        mode=llm_pb.TOOL_CHOICE_MODE_FUNCTION, function_name="b_tool")))
    assert mock.requests[-1].json["tool_choice"] == {"type": "tool", "name": "b_tool"}
    assert [c.name for c in response.message.tool_calls] == ["b_tool"]
    assert json.loads(response.message.tool_calls[0].arguments) == {"n": 3}
    assert response.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS


async def test_extended_thinking_streams_reasoning_before_content(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user("think first")],
        model_parameters=struct({"thinking": True, "thinking_budget": 2048, "max_tokens": 4096, "temperature": 0.3})))]
    body = mock.requests[-1].json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "temperature" not in body  # the API rejects it while thinking
    reasoning = [i for i, c in enumerate(chunks) if c.delta.reasoning_content]
    content = [i for i, c in enumerate(chunks) if c.delta.content]
    assert len(reasoning) > 1 and max(reasoning) < min(content)
    assert "".join(c.delta.reasoning_content for c in chunks) == "The user wrote: think first. Reply."
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("think first")
    response = await stubs.llm.Generate(req(mock, model_parameters=struct({"thinking": True})))
    assert mock.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert response.message.reasoning_content.startswith("The user wrote")


async def test_adaptive_thinking_effort_and_display(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, model="claude-opus-4-8", model_parameters=struct(
        {"thinking": True, "thinking_display": "summarized", "effort": "low"})))]
    body = mock.requests[-1].json
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": "low"}
    assert "".join(c.delta.reasoning_content for c in chunks)
    # Sonnet 5 thinks by default (required rule); the API's default display omits the text.
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, model="claude-sonnet-5"))]
    assert mock.requests[-1].json["thinking"] == {"type": "adaptive"}
    assert not any(c.delta.reasoning_content for c in chunks)
    await stubs.llm.Generate(req(mock, model="claude-sonnet-5", model_parameters=struct({"thinking": False})))
    assert mock.requests[-1].json["thinking"] == {"type": "disabled"}


async def test_thinking_budget_must_stay_below_max_tokens(stubs, mock):
    before = len(mock.requests)
    f = await failure_of(stubs.llm.Generate(req(mock, model_parameters=struct(
        {"thinking": True, "thinking_budget": 4096, "max_tokens": 2048}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "model_parameters.thinking_budget" in f.violations
    assert len(mock.requests) == before


# ---- history and content parts ---------------------------------------------------------------


async def test_tool_round_trip_history_is_serialised(stubs, mock):
    history = [
        user("weather in Paris and Rome?"),
        llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text="Checking.")], tool_calls=[
            llm_pb.ToolCall(id="toolu_1", type="function", name="get_weather", arguments='{"city":"Paris"}'),
            llm_pb.ToolCall(id="toolu_2", type="function", name="get_weather", arguments='{"city": "Rome"}')]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="toolu_1", content=[llm_pb.ContentPart(text="21C")]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="toolu_2", content=[llm_pb.ContentPart(text="25C")]),
    ]
    response = await stubs.llm.Generate(req(mock, messages=history, tools=[tool()]))
    assert mock.requests[-1].json["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "25C"}]},
    ]
    assert response.message.content == "Tool results: 21C; 25C"


async def test_image_and_pdf_parts(stubs, mock):
    png, pdf = b"\x89PNG\r\n\x1a\n0000", b"%PDF-1.7 mock"
    message = llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(text="what is this?"),
        llm_pb.ContentPart(image=llm_pb.MediaContent(data=png, mime_type="image/png")),
        llm_pb.ContentPart(image=llm_pb.MediaContent(url="https://example.com/cat.webp")),
        llm_pb.ContentPart(document=llm_pb.MediaContent(data=pdf, mime_type="application/pdf", filename="a.pdf")),
    ])
    response = await stubs.llm.Generate(req(mock, messages=[message]))
    assert response.message.content == mock.expected_reply("what is this?")
    parts = mock.requests[-1].json["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "what is this?"}
    assert parts[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                    "data": base64.b64encode(png).decode()}}
    assert parts[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}}
    assert parts[3] == {"type": "document", "title": "a.pdf", "source": {
        "type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()}}


# ---- upstream failures -----------------------------------------------------------------------


@pytest.mark.parametrize(("error_type", "code", "reason"), [
    ("overloaded_error", grpc.StatusCode.UNAVAILABLE, "InvokeServerUnavailableError"),
    ("rate_limit_error", grpc.StatusCode.RESOURCE_EXHAUSTED, "InvokeRateLimitError"),
])
async def test_error_event_inside_200_stream(stubs, mock, error_type, code, reason):
    mock.enqueue(overloaded_in_stream(after_events=5, error_type=error_type))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("one two three four")])))
    assert any(c.delta.content for c in received), "content before the error reaches the caller"
    assert f.code == code and f.reason == reason
    assert f.metadata == {"provider": "anthropic", "model": MODEL}
    assert not any(c.finish_reason for c in received)


async def test_529_overloaded_before_the_stream(stubs, mock):
    mock.enqueue(status(529))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert received == [] and f.code == grpc.StatusCode.UNAVAILABLE
    assert f.reason == "InvokeServerUnavailableError" and f.metadata["upstreamStatus"] == "529"
    assert "Overloaded" in f.message
    mock.enqueue(status(529))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.UNAVAILABLE


async def test_429_is_resource_exhausted_with_retry_info(stubs, mock):
    mock.enqueue(rate_limit(retry_after=2))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert f.retry_delay == 2.0 and "rate limit" in f.message


async def test_401_is_invalid_argument_and_the_key_is_never_echoed(stubs, mock):
    wrong = "sk-ant-wrong-DO-NOT-LEAK-42"
    f = await failure_of(stubs.llm.Generate(req(mock, key=wrong)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert f.metadata["upstreamStatus"] == "401"
    everything = f.message + repr(f.violations) + repr(f.metadata)
    assert wrong not in everything and KEY not in everything


async def test_413_with_a_non_json_body_maps_cleanly(stubs, mock):
    mock.enqueue(request_too_large())
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "request_too_large" in f.message and "<html" not in f.message.lower()
    assert f.metadata["upstreamStatus"] == "413"


async def test_provider_validation_error_is_bad_request(stubs, mock):
    history = [llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text="hi")]), user("x")]
    f = await failure_of(stubs.llm.Generate(req(mock, messages=history)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "first message" in f.message


@pytest.mark.parametrize("abort", [False, True])
async def test_truncated_stream_is_an_error_not_a_short_answer(stubs, mock, abort):
    mock.enqueue(truncate_after(5, abort=abort))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert not any(c.finish_reason for c in received)


async def test_client_cancel_closes_upstream_connection_within_100ms(stubs, mock):
    mock.enqueue(hang())
    call = stubs.llm.StreamGenerate(sreq(mock))
    await mock.wait_requests(len(mock.requests) + 1)
    await asyncio.sleep(0.05)
    # The pool may reuse any idle connection: take the one that carried this request.
    conn = next(c for c in mock.connections if c.id == mock.requests[-1].connection_id)
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer
    assert record.closed_at - cancelled_at < 0.1, f"closed after {record.closed_at - cancelled_at:.3f}s"


# ---- token counting and credentials ----------------------------------------------------------


async def test_count_tokens_calls_the_count_tokens_endpoint(stubs, mock):
    response = await stubs.llm.CountTokens(llm_pb.CountTokensRequest(
        target=target("anthropic", MODEL, creds(mock)), messages=[system("be brief"), user("hello world")],
        tools=[tool()]))
    sent = mock.requests[-1]
    assert sent.path == "/v1/messages/count_tokens" and sent.headers["x-api-key"] == KEY
    assert sent.json["system"] == "be brief" and sent.json["tools"][0]["name"] == "get_weather"
    assert "max_tokens" not in sent.json and "stream" not in sent.json
    assert response.tokens == count_input_tokens(sent.json)


async def test_validate_provider_credentials(stubs, mock):
    response = await stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="anthropic", credentials=struct(creds(mock))))
    assert response.credentials["anthropic_api_key"] == "[__HIDDEN__]"
    sent = mock.requests[-1].json
    assert sent["model"] == "claude-haiku-4-5-20251001" and sent["max_tokens"] == 5
    wrong = "sk-ant-bad-key-77"
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="anthropic", credentials=struct(creds(mock, wrong)))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert wrong not in f.message
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="anthropic", credentials=struct({}))))
    assert "credentials.anthropic_api_key" in f.violations
