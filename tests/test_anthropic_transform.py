"""Pure unit tests of the Anthropic wire transforms, stream assembly and error mapping."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import httpx
import pytest

from engine.adapter import LLMRequest
from engine.entities import AIModelEntity, ModelType
from engine.errors import (
    InvokeBadRequestError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)
from engine.messages import (
    ContentPart,
    FinishReason,
    PartKind,
    PromptMessage,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
)
from engine.templates import merge_predefined_rule
from providers.protocols.anthropic import chat
from providers.protocols.anthropic.transform import (
    ModelTraits,
    StreamAssembler,
    build_count_tokens_body,
    build_messages_body,
    convert_messages,
    counts_from_usage,
    parse_message,
    tool_choice_to_wire,
)


def text(role: Role, value: str, **kw) -> PromptMessage:
    return PromptMessage(role, [ContentPart(PartKind.TEXT, text=value)], **kw)


def schema(*rules: dict) -> AIModelEntity:
    return AIModelEntity(model="claude-x", model_type=ModelType.LLM,
                         parameter_rules=[merge_predefined_rule(dict(r)) for r in rules])


EXTENDED = schema({"name": "thinking", "type": "boolean"},
                  {"name": "thinking_budget", "type": "int", "default": 2048, "min": 1024},
                  {"name": "temperature", "use_template": "temperature"},
                  {"name": "max_tokens", "use_template": "max_tokens", "required": True, "default": 8192, "max": 64000})
ADAPTIVE = schema({"name": "thinking", "type": "boolean"}, {"name": "effort", "type": "string"},
                  {"name": "thinking_display", "type": "string"},
                  {"name": "max_tokens", "type": "int", "required": True, "max": 128000},  # no default: max
                  {"name": "json_schema", "use_template": "json_schema"})


def body(request: LLMRequest, traits: ModelTraits | None = None, stream: bool = False) -> dict:
    return build_messages_body("claude-x", request, traits or ModelTraits(), stream=stream)


# ---- messages --------------------------------------------------------------------------------


def test_system_and_developer_are_hoisted_and_same_roles_merge():
    system, messages = convert_messages([
        text(Role.SYSTEM, "rule one"), text(Role.USER, "a"), text(Role.DEVELOPER, "rule two"),
        text(Role.USER, "b"), text(Role.ASSISTANT, "c"), text(Role.ASSISTANT, ""),
    ])
    assert system == [{"type": "text", "text": "rule one"}, {"type": "text", "text": "rule two"}]
    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"},  # the empty assistant turn is dropped
    ]
    assert convert_messages([text(Role.SYSTEM, "only"), text(Role.USER, "hi")]) == (
        "only", [{"role": "user", "content": "hi"}])


def test_tool_calls_and_results():
    _, messages = convert_messages([
        text(Role.USER, "go"),
        PromptMessage(Role.ASSISTANT, tool_calls=[ToolCall("toolu_a", "f", '{"x": [1, 2]}'), ToolCall("toolu_b", "g", "")]),
        text(Role.TOOL, "ok", tool_call_id="toolu_a"),
        PromptMessage(Role.TOOL, [ContentPart(PartKind.TEXT, text="see"),
                                  ContentPart(PartKind.IMAGE, data=b"img", mime_type="image/gif")],
                      tool_call_id="toolu_b"),
        text(Role.USER, "and now?"),
    ])
    assert messages[1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {"x": [1, 2]}},
        {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}]}
    assert messages[2]["role"] == "user" and len(messages) == 3
    results = messages[2]["content"]
    assert results[0] == {"type": "tool_result", "tool_use_id": "toolu_a", "content": "ok"}
    assert results[1]["content"][1]["source"] == {"type": "base64", "media_type": "image/gif",
                                                  "data": base64.b64encode(b"img").decode()}
    assert results[2] == {"type": "text", "text": "and now?"}


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_tool_arguments_must_be_a_json_object(arguments):
    with pytest.raises(InvokeBadRequestError) as err:
        convert_messages([text(Role.USER, "x"), PromptMessage(Role.ASSISTANT, tool_calls=[
            ToolCall("t", "f", arguments)])])
    assert err.value.field_violations[0].field == "messages[1].tool_calls[0].arguments"


def test_media_sources():
    png = base64.b64encode(b"png-bytes").decode()
    _, messages = convert_messages([PromptMessage(Role.USER, [
        ContentPart(PartKind.IMAGE, url=f"data:image/png;base64,{png}"),
        ContentPart(PartKind.IMAGE, data=b"j", format="jpg"),
        ContentPart(PartKind.DOCUMENT, data=b"plain words", mime_type="text/plain"),
        ContentPart(PartKind.DOCUMENT, url="https://example.com/a.pdf"),
    ])])
    parts = messages[0]["content"]
    assert parts[0]["source"] == {"type": "base64", "media_type": "image/png", "data": png}
    assert parts[1]["source"]["media_type"] == "image/jpeg"
    assert parts[2]["source"] == {"type": "text", "media_type": "text/plain", "data": "plain words"}
    assert parts[3]["source"] == {"type": "url", "url": "https://example.com/a.pdf"}
    for bad in (ContentPart(PartKind.IMAGE, data=b"x", mime_type="image/bmp"),
                ContentPart(PartKind.AUDIO, data=b"x", mime_type="audio/wav"),
                ContentPart(PartKind.DOCUMENT, data=b"x", mime_type="application/msword")):
        with pytest.raises(InvokeBadRequestError) as err:
            convert_messages([PromptMessage(Role.USER, [bad])])
        assert err.value.field_violations[0].field == "messages[0].content[0]"


def test_tool_choice_modes():
    assert tool_choice_to_wire(ToolChoice("auto")) == {"type": "auto"}
    assert tool_choice_to_wire(ToolChoice("required")) == {"type": "any"}
    assert tool_choice_to_wire(ToolChoice("none")) == {"type": "none"}
    assert tool_choice_to_wire(ToolChoice("function", "f")) == {"type": "tool", "name": "f"}
    assert tool_choice_to_wire(None) is None


# ---- request bodies --------------------------------------------------------------------------


def test_max_tokens_defaults_and_plain_parameters():
    request = LLMRequest([text(Role.USER, "hi")], {"temperature": 0.2, "top_p": 0.9},
                         tools=[Tool("f", "", {})], tool_choice=ToolChoice("none"), stop=["x"], user="u")
    out = body(request, ModelTraits.from_schema(EXTENDED), stream=True)
    assert out["max_tokens"] == 8192 and out["temperature"] == 0.2 and out["top_p"] == 0.9
    assert out["tools"] == [{"name": "f", "description": "", "input_schema": {"type": "object", "properties": {}}}]
    assert out["tool_choice"] == {"type": "none"} and out["stop_sequences"] == ["x"]
    assert out["metadata"] == {"user_id": "u"} and out["stream"] is True
    assert body(LLMRequest([text(Role.USER, "hi")], {}))["max_tokens"] == 4096  # no schema at all
    assert body(LLMRequest([text(Role.USER, "hi")], {}), ModelTraits.from_schema(ADAPTIVE))["max_tokens"] == 128000


def test_extended_thinking_drops_sampling_and_checks_the_budget():
    traits = ModelTraits.from_schema(EXTENDED)
    out = body(LLMRequest([text(Role.USER, "hi")], {"thinking": True, "temperature": 0.5, "top_k": 5}), traits)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "temperature" not in out and "top_k" not in out
    off = body(LLMRequest([text(Role.USER, "hi")], {"thinking": False, "thinking_budget": 4000}), traits)
    assert "thinking" not in off and "thinking_budget" not in off
    with pytest.raises(InvokeBadRequestError) as err:
        body(LLMRequest([text(Role.USER, "hi")], {"thinking": True, "thinking_budget": 9000}), traits)
    assert err.value.field_violations[0].field == "model_parameters.thinking_budget"


def test_adaptive_thinking_effort_and_structured_output():
    traits = ModelTraits.from_schema(ADAPTIVE)
    out = body(LLMRequest([text(Role.USER, "hi")], {
        "thinking": True, "thinking_display": "summarized", "effort": "max", "response_format": "JSON",
        "json_schema": '{"name": "p", "schema": {"type": "object"}, "strict": true}'}), traits)
    assert out["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert out["output_config"] == {"effort": "max", "format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert "response_format" not in out and "json_schema" not in out and "effort" not in out
    assert body(LLMRequest([text(Role.USER, "hi")], {"thinking": False}), traits)["thinking"] == {"type": "disabled"}
    assert "thinking" not in body(LLMRequest([text(Role.USER, "hi")], {}), traits)
    with pytest.raises(InvokeBadRequestError):
        body(LLMRequest([text(Role.USER, "hi")], {"json_schema": "{oops"}), traits)


def test_count_tokens_body_has_no_max_tokens():
    out = build_count_tokens_body("claude-x", [text(Role.SYSTEM, "sys")], [Tool("f", "d", {"type": "object"})])
    assert out == {"model": "claude-x", "messages": [{"role": "user", "content": "Hello"}], "system": "sys",
                   "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]}


# ---- responses -------------------------------------------------------------------------------


def test_parse_unary_message():
    result = parse_message({
        "id": "msg_1", "model": "claude-x-2026", "stop_reason": "tool_use",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "A"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"é": 1}},
                    {"type": "redacted_thinking", "data": "x"}],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 5,
                  "output_tokens": 7},
    }, "claude-x")
    assert result.message.content == "A" and result.message.reasoning_content == "hmm"
    assert [(c.id, c.name, c.arguments) for c in result.message.tool_calls] == [("toolu_1", "f", '{"é":1}')]
    assert result.finish_reason is FinishReason.TOOL_CALLS and result.model == "claude-x-2026"
    assert (result.counts.prompt_tokens, result.counts.cached_prompt_tokens, result.counts.completion_tokens) == (
        105, 90, 7)
    for raw, mapped in [("end_turn", FinishReason.STOP), ("stop_sequence", FinishReason.STOP),
                        ("max_tokens", FinishReason.LENGTH), ("refusal", FinishReason.CONTENT_FILTER),
                        ("pause_turn", FinishReason.OTHER)]:
        assert parse_message({"stop_reason": raw}, "m").finish_reason is mapped
    assert counts_from_usage({}) is None


def test_stream_assembler_maps_blocks_to_tool_indexes_and_accumulates_usage():
    a = StreamAssembler("claude-x")
    events = [
        {"type": "message_start", "message": {"id": "msg_9", "model": "claude-x-1", "usage": {
            "input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 3}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "why"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
        {"type": "content_block_start", "index": 3, "content_block": {
            "type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}},
        {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ":1}"}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
    ]
    chunks = [c for c in (a.feed(e) for e in events) if c is not None]
    assert [c.reasoning_content for c in chunks if c.reasoning_content] == ["why"]
    assert [c.content for c in chunks if c.content] == ["Hi"]
    deltas = [d for c in chunks for d in c.tool_calls]
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, "toolu_a", "f", ""), (0, "", "", '{"a"'), (1, "toolu_b", "g", ""), (1, "", "", "{}"), (0, "", "", ":1}")]
    assert all(c.id == "msg_9" and c.model == "claude-x-1" for c in chunks)
    assert not a.done
    a.feed({"type": "message_stop"})
    final = a.final()
    assert a.done and final.finish_reason is FinishReason.TOOL_CALLS and final.provider_finish_reason == "tool_use"
    assert (final.counts.prompt_tokens, final.counts.completion_tokens, final.counts.cached_prompt_tokens) == (15, 30, 3)


# ---- client helpers and errors ---------------------------------------------------------------


def ctx(credentials: dict, options: dict | None = None):
    return SimpleNamespace(credentials=credentials, options=options or {})


def test_base_url_and_headers():
    assert chat.url(ctx({}), "messages") == "https://api.anthropic.com/v1/messages"
    assert chat.url(ctx({"anthropic_api_url": "https://proxy.example/v1/"}), "messages") == \
        "https://proxy.example/v1/messages"
    assert chat.url(ctx({"anthropic_api_url": "http://h:8/anth"}), "messages/count_tokens") == \
        "http://h:8/anth/v1/messages/count_tokens"
    with pytest.raises(InvokeBadRequestError) as err:
        chat.base_url(ctx({"anthropic_api_url": "ftp://x"}))
    assert err.value.field_violations[0].field == "credentials.anthropic_api_url"
    assert chat.headers(ctx({"anthropic_api_key": "k"})) == {
        "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "k"}


def test_error_bodies_and_stream_error_events():
    def response(status: int, content: bytes) -> httpx.Response:
        return httpx.Response(status, content=content)

    assert chat.error_message(response(400, b'{"type":"error","error":{"type":"invalid_request_error",'
                                            b'"message":"max_tokens: Field required"}}')) == \
        "invalid_request_error: max_tokens: Field required"
    assert "request_too_large" in chat.error_message(response(413, b"<html>413</html>"))
    assert chat.error_message(response(502, b"<html>bad gateway</html>")) == ""

    overloaded = chat._error_event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert isinstance(overloaded, InvokeServerUnavailableError) and overloaded.upstream_status is None
    assert isinstance(chat._error_event({"error": {"type": "rate_limit_error", "message": "slow"}}),
                      InvokeRateLimitError)
    assert isinstance(chat._error_event({"error": {"type": "invalid_request_error", "message": "x"}}),
                      InvokeBadRequestError)
    assert isinstance(chat._error_event({"error": {"type": "billing_error", "message": "pay"}}),
                      InvokeBadRequestError)
    assert isinstance(chat._error_event({"error": {"type": "something_new"}}), InvokeServerUnavailableError)
