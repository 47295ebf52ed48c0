"""OpenAI chat through the real gRPC server against the faithful OpenAI mock."""

from __future__ import annotations

import json
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb

from tests.helpers import stream_failure, struct, system, target, user
from tests.mocks.openai_mock import (
    TOOL_ARG_SUFFIX,
    OpenAIMock,
    content_filter,
    expected_tool_arguments,
    finish_length,
    first_chunk_empty_choices,
    stream_error_after,
    truncate_after,
)

KEY = "sk-test-0123456789abcdef"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


def creds(mock: OpenAIMock) -> dict:
    # Dify's OpenAI form takes the host without /v1; the adapter appends it.
    return {"openai_api_key": KEY, "openai_api_base": mock.url}


def req(mock, model="gpt-4o", messages=None, cls=llm_pb.GenerateRequest, **kw):
    return cls(target=target("openai", model, creds(mock)), messages=messages or [user("hello there")], **kw)


async def test_generate_unary_prices_usage_and_sends_openai_wire(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "max_tokens": 100, "seed": 7}),
        stop=["END"], user="u-1",
    ))
    assert response.message.content == mock.expected_reply("hello there")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP
    sent = mock.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json
    assert body["model"] == "gpt-4o" and body["temperature"] == 0.5 and body["max_tokens"] == 100
    assert body["seed"] == 7 and isinstance(body["seed"], int)  # Struct floats become ints for int rules
    assert body["stop"] == ["END"] and body["user"] == "u-1"
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    u = response.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # gpt-4o: 2.50 / 10.00 USD per 1M tokens
    assert Decimal(u.prompt_unit_price) == Decimal("2.5") and Decimal(u.prompt_price_unit) == Decimal("0.000001")
    expected = (Decimal(u.prompt_tokens) * Decimal("2.5") * Decimal("0.000001")).quantize(Decimal("0.0000001"))
    assert Decimal(u.prompt_price) == expected
    assert Decimal(u.total_price) == Decimal(u.prompt_price) + Decimal(u.completion_price)
    assert u.currency == "USD" and u.latency > 0


async def test_stream_tool_calls_split_fragments_reassemble(stubs, mock):
    tool = llm_pb.Tool(name="get_weather", description="weather", parameters=struct(WEATHER))
    chunks = [c async for c in stubs.llm.StreamGenerate(req(
        mock, cls=llm_pb.StreamGenerateRequest, messages=[user("Paris please")], tools=[tool],
    ))]
    sent = mock.requests[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["tools"][0]["function"]["parameters"] == WEATHER
    fragments = [t for c in chunks for t in c.delta.tool_calls]
    # Fragments that arrive in one network read are merged into one delta; whatever the
    # grouping, the concatenation per index must be the exact arguments.
    assert fragments
    assert fragments[0].id and fragments[0].name == "get_weather"
    args = "".join(f.arguments for f in fragments if f.index == 0)
    parsed = json.loads(args)
    assert parsed == expected_tool_arguments(WEATHER, "Paris please")
    assert any(TOOL_ARG_SUFFIX.strip() in str(v) for v in parsed.values())  # the \u00e9 escape survived
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and final.provider_finish_reason == "tool_calls"
    assert final.usage.total_tokens > 0 and final.usage.total_price
    assert all(not c.HasField("usage") for c in chunks[:-1])


async def test_stream_parallel_tool_calls_interleaved(stubs, mock):
    tools = [llm_pb.Tool(name=n, parameters=struct(WEATHER)) for n in ("a_tool", "b_tool")]
    chunks = [c async for c in stubs.llm.StreamGenerate(req(
        mock, cls=llm_pb.StreamGenerateRequest, tools=tools,
        model_parameters=struct({}),
    ))]
    calls: dict[int, dict] = {}
    for c in chunks:
        for f in c.delta.tool_calls:
            entry = calls.setdefault(f.index, {"id": "", "name": "", "args": ""})
            entry["id"] = entry["id"] or f.id
            entry["name"] = entry["name"] or f.name
            entry["args"] += f.arguments
    assert len(calls) >= 1
    for entry in calls.values():
        assert entry["id"] and entry["name"] in ("a_tool", "b_tool")
        json.loads(entry["args"])


async def test_stream_text_matches_unary_and_first_empty_choices_tolerated(stubs, mock):
    mock.enqueue(first_chunk_empty_choices(), path="/chat/completions")
    chunks = [c async for c in stubs.llm.StreamGenerate(req(mock, cls=llm_pb.StreamGenerateRequest))]
    text = "".join(c.delta.content for c in chunks)
    assert text == mock.expected_reply("hello there")
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP


async def test_finish_length_and_content_filter_are_data(stubs, mock):
    mock.enqueue(finish_length(), path="/chat/completions")
    response = await stubs.llm.Generate(req(mock))
    assert response.finish_reason == llm_pb.FINISH_REASON_LENGTH
    mock.enqueue(content_filter(), path="/chat/completions")
    chunks = [c async for c in stubs.llm.StreamGenerate(req(mock, cls=llm_pb.StreamGenerateRequest))]
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_CONTENT_FILTER


async def test_error_inside_200_stream_ends_rpc_with_status(stubs, mock):
    mock.enqueue(stream_error_after(2), path="/chat/completions")
    received, failure = await stream_failure(stubs.llm.StreamGenerate(req(mock, cls=llm_pb.StreamGenerateRequest)))
    assert received, "content before the error reaches the caller"
    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert failure.reason == "InvokeServerUnavailableError"
    assert failure.metadata == {"provider": "openai", "model": "gpt-4o"}


@pytest.mark.parametrize("mid_line", [False, True])
async def test_truncated_stream_is_an_error_not_a_short_answer(stubs, mock, mid_line):
    mock.enqueue(truncate_after(2, mid_line=mid_line), path="/chat/completions")
    received, failure = await stream_failure(stubs.llm.StreamGenerate(req(mock, cls=llm_pb.StreamGenerateRequest)))
    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert failure.reason == "InvokeConnectionError"
    assert not any(c.finish_reason for c in received)


async def test_json_schema_response_format(stubs, mock):
    schema = {"name": "person", "schema": {"type": "object", "properties": {"name": {"type": "string"}},
                                            "required": ["name"]}, "strict": True}
    response = await stubs.llm.Generate(req(mock, model_parameters=struct(
        {"response_format": "json_schema", "json_schema": json.dumps(schema)})))
    body = mock.requests[-1].json
    assert body["response_format"] == {"type": "json_schema", "json_schema": schema}
    assert "json_schema" not in body
    assert isinstance(json.loads(response.message.content), dict)


async def test_vision_parts_go_out_as_image_url(stubs, mock):
    message = llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(text="what is this?"),
        llm_pb.ContentPart(image=llm_pb.MediaContent(data=b"\x89PNG\r\n", mime_type="image/png",
                                                     detail=llm_pb.IMAGE_DETAIL_HIGH)),
    ])
    await stubs.llm.Generate(req(mock, messages=[message]))
    parts = mock.requests[-1].json["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "what is this?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1]["image_url"]["detail"] == "high"


async def test_tool_round_trip_history_is_sent(stubs, mock):
    history = [
        user("weather in Paris?"),
        llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, tool_calls=[
            llm_pb.ToolCall(id="call_1", type="function", name="get_weather", arguments='{"city":"Paris"}')]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="call_1", content=[llm_pb.ContentPart(text="21C")]),
    ]
    await stubs.llm.Generate(req(mock, messages=history,
                                 tools=[llm_pb.Tool(name="get_weather", parameters=struct(WEATHER))]))
    sent = mock.requests[-1].json["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "21C"}


async def test_count_tokens_uses_o200k_for_gpt4o(stubs, mock):
    from engine.tokenizers import get_encoding

    response = await stubs.llm.CountTokens(llm_pb.CountTokensRequest(
        target=target("openai", "gpt-4o", creds(mock)), messages=[user("hello world")]))
    enc = get_encoding("o200k_base")
    # 3 priming + per message: 3 + role + content
    assert response.tokens == 3 + 3 + len(enc.encode("user")) + len(enc.encode("hello world"))


async def test_completion_mode_model_uses_completions_endpoint(stubs, mock):
    response = await stubs.llm.Generate(req(mock, model="gpt-3.5-turbo-instruct"))
    assert mock.requests[-1].path == "/v1/completions"
    assert mock.requests[-1].json["prompt"] == "hello there"
    assert response.message.content
