"""Pure unit tests of the Gemini wire adapter: schema subset, request/response transforms, errors."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from engine.adapter import CallContext, LLMRequest
from engine.entities import ModelType
from engine.errors import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    NotFoundError,
)
from engine.loader import load_provider
from engine.messages import (
    ContentPart,
    FinishReason,
    PartKind,
    PromptMessage,
    ProviderState,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
)
from providers.protocols.gemini import client
from providers.protocols.gemini.chat import _StreamState
from providers.protocols.gemini.options import GeminiOptions
from providers.protocols.gemini.schema import SchemaError, function_parameters, sanitize
from providers.protocols.gemini.transform import (
    build_body,
    counts_from_usage,
    finish_reason,
    make_call_id,
    parse_response,
    split_call_id,
)

GOOGLE = load_provider(Path(__file__).resolve().parents[1] / "providers" / "definitions" / "google")


def text(role: Role, value: str) -> PromptMessage:
    return PromptMessage(role, [ContentPart(PartKind.TEXT, text=value)])


def ctx(credentials: dict) -> CallContext:
    return CallContext(provider_entity=GOOGLE.entity, model="gemini-2.5-flash", model_type=ModelType.LLM, schema=None,
                       credentials=credentials, http=None,  # type: ignore[arg-type]
                       options=GeminiOptions.model_validate(GOOGLE.entity.runtime))


# ---- schema ---------------------------------------------------------------------------------


def test_sanitize_drops_what_gemini_rejects_and_maps_the_rest():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"], "default": "x", "format": "uri", "minLength": 1},
            "when": {"type": "string", "format": "date-time"},
            "n": {"type": "integer", "exclusiveMinimum": 0, "minimum": 1, "enum": [1, 2], "format": "int64"},
            "kind": {"const": "fixed"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "opt": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "multi": {"type": ["string", "integer"]},
        },
        "required": ["name", "ghost"],
    }
    assert sanitize(schema) == {
        "type": "OBJECT", "required": ["name"], "properties": {
            "name": {"type": "STRING", "minLength": 1, "nullable": True},
            "when": {"type": "STRING", "format": "date-time"},
            "n": {"type": "INTEGER", "minimum": 1, "format": "int64"},
            "kind": {"type": "STRING", "enum": ["fixed"]},
            "tags": {"type": "ARRAY", "maxItems": 3, "items": {"type": "STRING"}},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
            "opt": {"type": "STRING", "nullable": True},
            "multi": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        }}


def test_sanitize_merges_all_of_and_rejects_refs_with_their_path():
    merged = sanitize({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                                 {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]})
    assert merged == {"type": "OBJECT", "required": ["a", "b"],
                      "properties": {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}}}
    with pytest.raises(SchemaError) as err:
        sanitize({"type": "object", "properties": {"x": {"type": "array", "items": {"$ref": "#/$defs/X"}}}})
    assert err.value.path == "properties.x.items.$ref"


def test_function_without_parameters_sends_none():
    assert function_parameters({}) is None
    assert function_parameters({"type": "object", "properties": {}}) is None
    assert function_parameters({"type": "object", "properties": {"a": {"type": "string"}}}) == {
        "type": "OBJECT", "properties": {"a": {"type": "STRING"}}}


# ---- request --------------------------------------------------------------------------------


def test_contents_roles_media_and_system_instruction():
    png = b"\x89PNG\r\n"
    messages = [
        text(Role.SYSTEM, "be brief"), text(Role.DEVELOPER, "and kind"),
        PromptMessage(Role.USER, [
            ContentPart(PartKind.TEXT, text="look"),
            ContentPart(PartKind.IMAGE, data=png, mime_type="image/png"),
            ContentPart(PartKind.IMAGE, url="data:image/jpeg;base64,/9j/AA=="),
            ContentPart(PartKind.DOCUMENT, url="https://example.com/paper.pdf"),
        ]),
        text(Role.USER, "and this"),
        text(Role.ASSISTANT, "<think>hidden</think>\nvisible"),
    ]
    body = build_body(LLMRequest(messages=messages, parameters={}))
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "and kind"}]}
    assert body["contents"] == [
        {"role": "user", "parts": [
            {"text": "look"},
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/AA=="}},
            {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/paper.pdf"}},
            {"text": "and this"}]},
        {"role": "model", "parts": [{"text": "visible"}]},
    ]
    assert "generationConfig" not in body and "tools" not in body


def test_tool_history_and_responses():
    messages = [
        text(Role.USER, "go"),
        PromptMessage(Role.ASSISTANT, tool_calls=[ToolCall("call_0~c2ln", "a", '{"x": 1}'), ToolCall("call_1", "b", "")]),
        PromptMessage(Role.TOOL, [ContentPart(PartKind.TEXT, text="[1, 2]")], tool_call_id="call_0~c2ln"),
        PromptMessage(Role.TOOL, [ContentPart(PartKind.TEXT, text="not json")], tool_call_id="call_1"),
    ]
    contents = build_body(LLMRequest(messages=messages, parameters={}))["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "b", "args": {}}}]
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "a", "response": {"content": [1, 2]}}},
        {"functionResponse": {"name": "b", "response": {"content": "not json"}}}]}


@pytest.mark.parametrize(("messages", "field"), [
    ([text(Role.USER, "go"), PromptMessage(Role.TOOL, [ContentPart(PartKind.TEXT, text="x")], tool_call_id="nope")],
     "messages[1].tool_call_id"),
    ([text(Role.USER, "go"), PromptMessage(Role.ASSISTANT, tool_calls=[ToolCall("c", "a", "[1]")])],
     "messages[1].tool_calls[0].arguments"),
    ([text(Role.USER, "go"), PromptMessage(Role.ASSISTANT, tool_calls=[ToolCall("c", "a", "{oops")])],
     "messages[1].tool_calls[0].arguments"),
    ([text(Role.SYSTEM, "only system")], "messages"),
])
def test_request_errors_name_the_field(messages, field):
    with pytest.raises(InvokeBadRequestError) as err:
        build_body(LLMRequest(messages=messages, parameters={}))
    assert err.value.field_violations[0].field == field


def test_generation_config_tools_and_tool_choice():
    tools = [Tool("get", "gets", {"type": "object", "properties": {"q": {"type": "string"}}}),
             Tool("ping", "", {"type": "object", "properties": {}})]
    request = LLMRequest(
        messages=[text(Role.USER, "hi")], tools=tools, tool_choice=ToolChoice("function", "get"), stop=["X"],
        parameters={"max_tokens": 50, "seed": 3, "response_format": "json_object", "include_thoughts": False,
                    "thinking_budget": 0},
    )
    body = build_body(request)
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get", "description": "gets", "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}},
        {"name": "ping"}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get"]}}
    assert body["generationConfig"] == {
        "seed": 3, "maxOutputTokens": 50, "stopSequences": ["X"], "responseMimeType": "application/json",
        "thinkingConfig": {"includeThoughts": False, "thinkingBudget": 0}}
    for mode, wire in (("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")):
        request.tool_choice = ToolChoice(mode)
        assert build_body(request)["toolConfig"] == {"functionCallingConfig": {"mode": wire}}


def test_json_schema_errors_name_the_parameter():
    for bad in ("{not json", "[1]", '{"type": "object", "properties": {"a": {"$ref": "#/x"}}}'):
        with pytest.raises(InvokeBadRequestError) as err:
            build_body(LLMRequest(messages=[text(Role.USER, "hi")], parameters={"json_schema": bad}))
        assert err.value.field_violations[0].field == "model_parameters.json_schema"


# ---- response -------------------------------------------------------------------------------


def test_parse_response_parts_calls_and_usage():
    body = {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "plan", "thought": True}, {"text": "Hello"}, {"text": " world"},
            {"functionCall": {"name": "a", "args": {"x": [1, "é"]}}, "thoughtSignature": "U0lH"},
            {"functionCall": {"name": "b"}}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
                          "cachedContentTokenCount": 4, "totalTokenCount": 22},
        "modelVersion": "gemini-2.5-flash", "responseId": "r1",
    }
    result = parse_response(body, "gemini-2.5-flash")
    assert result.message.content == "Hello world" and result.message.reasoning_content == "plan"
    calls = result.message.tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_0", "a", '{"x":[1,"é"]}'), ("call_1", "b", "{}")]
    assert calls[0].state == ProviderState("gemini", "U0lH") and calls[1].state is None
    assert result.finish_reason is FinishReason.TOOL_CALLS and result.provider_finish_reason == "STOP"
    counts = result.counts
    assert (counts.prompt_tokens, counts.completion_tokens, counts.cached_prompt_tokens, counts.reasoning_tokens) == (
        10, 12, 4, 7)
    assert result.id == "r1"


@pytest.mark.parametrize(("raw", "expected"), [
    ("STOP", FinishReason.STOP), ("MAX_TOKENS", FinishReason.LENGTH), ("SAFETY", FinishReason.CONTENT_FILTER),
    ("RECITATION", FinishReason.CONTENT_FILTER), ("BLOCKLIST", FinishReason.CONTENT_FILTER),
    ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER), ("SPII", FinishReason.CONTENT_FILTER),
    ("MALFORMED_FUNCTION_CALL", FinishReason.OTHER), ("LANGUAGE", FinishReason.OTHER),
    ("OTHER", FinishReason.OTHER), ("FINISH_REASON_UNSPECIFIED", FinishReason.OTHER),
])
def test_finish_reasons(raw, expected):
    assert finish_reason(raw, False) is expected


def test_blocked_prompt_is_content_filter_with_empty_content():
    result = parse_response({"promptFeedback": {"blockReason": "BLOCKLIST"},
                             "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}, "m")
    assert result.finish_reason is FinishReason.CONTENT_FILTER and result.provider_finish_reason == "BLOCKLIST"
    assert result.message.content == "" and result.counts.prompt_tokens == 3
    assert counts_from_usage({}) is None


def test_stream_state_keeps_last_usage_and_numbers_calls_across_events():
    state = _StreamState("m")
    first = state.feed({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}],
                        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1}})
    assert first.content == "Hi" and state.raw_finish == ""
    second = state.feed({"candidates": [{"content": {"parts": [{"functionCall": {"name": "a", "args": {}}}]}}],
                         "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3}})
    third = state.feed({"candidates": [{"content": {"parts": [{"functionCall": {"name": "b", "args": {"k": 1}}}]},
                                        "finishReason": "STOP"}],
                        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6}})
    assert [(d.index, d.id, d.arguments) for d in [*second.tool_calls, *third.tool_calls]] == [
        (0, "call_0", "{}"), (1, "call_1", '{"k":1}')]
    final = state.finish()
    assert final.finish_reason is FinishReason.TOOL_CALLS and final.counts.completion_tokens == 6


def test_call_ids():
    assert make_call_id(3) == "call_3" and make_call_id(0, "abc=") == "call_0~abc="
    assert split_call_id("call_0~abc=") == ("call_0", "abc=") and split_call_id("x") == ("x", "")


# ---- client ---------------------------------------------------------------------------------


def test_base_url_forms():
    assert client.base_url(ctx({})) == "https://generativelanguage.googleapis.com/v1beta"
    assert client.base_url(ctx({"google_base_url": "https://proxy.example/"})) == "https://proxy.example/v1beta"
    assert client.base_url(ctx({"google_base_url": "http://h:1/v1beta/"})) == "http://h:1/v1beta"
    assert client.base_url(ctx({"google_base_url": "http://h:1/gemini/v1"})) == "http://h:1/gemini/v1"
    with pytest.raises(InvokeBadRequestError) as err:
        client.base_url(ctx({"google_base_url": "ftp://h"}))
    assert err.value.field_violations[0].field == "credentials.google_base_url"
    assert client.url(ctx({}), "gemini-2.5-flash", "countTokens").endswith("/models/gemini-2.5-flash:countTokens")
    assert client.model_path("tunedModels/my-model") == "tunedModels/my-model"
    assert client.headers(ctx({"google_api_key": "k"})) == {"content-type": "application/json", "x-goog-api-key": "k"}


def _err(code: int, status: str, message: str = "m", details: list | None = None) -> dict:
    return {"error": {"code": code, "status": status, "message": message, "details": details or []}}


def test_error_mapping():
    bad_key = _err(400, "INVALID_ARGUMENT", "API key not valid: AIzaSECRET", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}])
    err = client.error_from_body(bad_key, 400)
    assert isinstance(err, InvokeAuthorizationError) and "AIzaSECRET" not in str(err) and err.upstream_status == 400
    assert isinstance(client.error_from_body(_err(403, "PERMISSION_DENIED"), 403), InvokeAuthorizationError)
    other = client.error_from_body(_err(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), 400)
    assert type(other) is InvokeBadRequestError and "invalid argument" in str(other)
    assert isinstance(client.error_from_body(_err(404, "NOT_FOUND"), 404), NotFoundError)
    limited = client.error_from_body(_err(429, "RESOURCE_EXHAUSTED", "quota", [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]), 429)
    assert isinstance(limited, InvokeRateLimitError) and limited.retry_after == 1.5
    from_header = client.error_from_body(_err(429, "RESOURCE_EXHAUSTED"), 429, httpx.Headers({"retry-after": "7"}))
    assert from_header.retry_after == 7.0
    for code, status in ((500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")):
        assert isinstance(client.error_from_body(_err(code, status), code), InvokeServerUnavailableError)
    in_stream = client.error_from_body({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}, 0)
    assert isinstance(in_stream, InvokeServerUnavailableError)


async def test_raise_for_status_reads_google_errors():
    response = httpx.Response(400, json=_err(400, "FAILED_PRECONDITION", "User location is not supported"))
    with pytest.raises(InvokeBadRequestError) as err:
        await client.raise_for_status(response)
    assert "location" in str(err.value)
    html = httpx.Response(502, headers={"content-type": "text/html"}, content=b"<html>bad gateway</html>")
    with pytest.raises(InvokeServerUnavailableError) as err:
        await client.raise_for_status(html)
    assert "<html" not in str(err.value)
    await client.raise_for_status(httpx.Response(200, json={}))
