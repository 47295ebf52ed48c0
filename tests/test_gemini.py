"""The google provider (Gemini API) through the real gRPC server against the faithful Gemini mock."""

from __future__ import annotations

import asyncio
import json
import math
import time
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as pv_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.gemini_mock import (
    GeminiMock,
    blocked_prompt,
    count_tokens,
    expected_args,
    expected_embedding,
    finish,
    hang,
    rate_limit,
    status,
    stream_error_after,
    truncate_after,
)

KEY = "AIzaSy-test-0123456789abcdefSECRET"
MODEL = "gemini-2.5-flash"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"},
                   "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
    "additionalProperties": False,
}
TIME = {"type": "object", "properties": {"tz": {"type": "string", "format": "uri", "default": "UTC"}}}


@pytest.fixture(scope="module")
async def mock():
    async with GeminiMock(api_keys=[KEY]) as m:
        yield m


def creds(mock: GeminiMock, key: str = KEY) -> dict:
    return {"google_api_key": key, "google_base_url": mock.url + "/v1beta"}


def req(mock, model=MODEL, messages=None, cls=llm_pb.GenerateRequest, key=KEY, **kw):
    return cls(target=target("google", model, creds(mock, key)), messages=messages or [user("hello there")], **kw)


def sreq(mock, **kw):
    return req(mock, cls=llm_pb.StreamGenerateRequest, **kw)


def tool(name: str, schema: dict) -> llm_pb.Tool:
    return llm_pb.Tool(name=name, description=f"{name} tool", parameters=struct(schema))


# ---- catalog --------------------------------------------------------------------------------


async def test_provider_and_models_are_listed(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(pv_pb.ListProvidersRequest())).providers}
    google = providers["google"]
    assert google.label.en_us == "Google"
    assert set(google.supported_model_types) == {common_pb2.MODEL_TYPE_LLM, common_pb2.MODEL_TYPE_TEXT_EMBEDDING}
    fields = {f.variable: f for f in google.provider_credential_fields}
    assert fields["google_api_key"].type == pv_pb.FORM_TYPE_SECRET_INPUT and fields["google_api_key"].required
    assert fields["google_base_url"].type == pv_pb.FORM_TYPE_TEXT_INPUT and not fields["google_base_url"].required
    llms = [m.name for m in (await stubs.providers.ListModels(pv_pb.ListModelsRequest(
        provider="google", model_type=common_pb2.MODEL_TYPE_LLM))).models]
    assert {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-3.5-flash"} <= set(llms)
    assert "gemini-2.0-flash" not in llms  # deprecated: hidden unless asked for
    model = (await stubs.providers.GetModel(pv_pb.GetModelRequest(
        provider="google", model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL))).model
    assert model.properties["context_size"] == 1048576
    assert {pv_pb.MODEL_FEATURE_TOOL_CALL, pv_pb.MODEL_FEATURE_VISION, pv_pb.MODEL_FEATURE_AGENT_THOUGHT} <= set(
        model.features)
    rules = {r.name: r for r in model.parameter_rules}
    assert rules["max_output_tokens"].use_template == "max_tokens" and rules["max_output_tokens"].max == 65536
    assert rules["temperature"].max == 2
    embeddings = [m.name for m in (await stubs.providers.ListModels(pv_pb.ListModelsRequest(
        provider="google", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING))).models]
    assert embeddings == ["gemini-embedding-001"]


async def test_validate_provider_credentials_uses_free_count_tokens(stubs, mock):
    response = await stubs.providers.ValidateProviderCredentials(pv_pb.ValidateProviderCredentialsRequest(
        provider="google", credentials=struct(creds(mock))))
    assert response.credentials["google_api_key"] == "[__HIDDEN__]"
    assert mock.requests[-1].path == "/v1beta/models/gemini-2.5-flash:countTokens"
    f = await failure_of(stubs.providers.ValidateProviderCredentials(pv_pb.ValidateProviderCredentialsRequest(
        provider="google", credentials=struct(creds(mock, "AIza-wrong-key-DO-NOT-LEAK")))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert "DO-NOT-LEAK" not in f.message


# ---- generate -------------------------------------------------------------------------------


async def test_generate_with_system_instruction_and_priced_usage(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "top_p": 0.9, "top_k": 40, "max_tokens": 200}),
        stop=["END"]))
    assert response.message.content == mock.expected_reply("hello there")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.provider_finish_reason == "STOP"
    sent = mock.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY and "authorization" not in sent.headers
    body = sent.json
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
    assert body["generationConfig"] == {"temperature": 0.5, "topP": 0.9, "topK": 40, "maxOutputTokens": 200,
                                        "stopSequences": ["END"]}
    reply = mock.replies[-1]
    u = response.usage
    assert u.prompt_tokens == reply.prompt_tokens
    assert u.completion_tokens == reply.candidates_tokens + reply.thoughts_tokens  # thoughts are billed as output
    assert u.reasoning_tokens == reply.thoughts_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # gemini-2.5-flash: 0.30 / 2.50 USD per 1M tokens
    assert Decimal(u.prompt_unit_price) == Decimal("0.3") and Decimal(u.completion_unit_price) == Decimal("2.5")
    expected = (Decimal(u.completion_tokens) * Decimal("2.5") * Decimal("0.000001")).quantize(Decimal("0.0000001"))
    assert Decimal(u.completion_price) == expected and u.currency == "USD"


async def test_stream_text_matches_unary(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock))]
    sent = mock.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:streamGenerateContent" and sent.query_one("alt") == "sse"
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("hello there")
    assert len([c for c in chunks if c.delta.content]) > 1, "the mock streams several events"
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.usage.total_tokens > 0
    reply = mock.replies[-1]
    assert final.usage.completion_tokens == reply.candidates_tokens + reply.thoughts_tokens  # the last usage wins
    assert all(not c.HasField("usage") and not c.finish_reason for c in chunks[:-1])


async def test_stream_two_function_calls_become_tool_call_deltas(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("Paris")], tools=[tool("get_weather", WEATHER), tool("get_time", TIME)]))]
    declarations = mock.requests[-1].json["tools"][0]["functionDeclarations"]
    assert declarations[0]["parameters"] == {
        "type": "OBJECT", "required": ["city"], "properties": {
            "city": {"type": "STRING", "description": "City name"},
            "unit": {"type": "STRING", "enum": ["c", "f"]}}}
    assert declarations[1]["parameters"] == {"type": "OBJECT", "properties": {"tz": {"type": "STRING"}}}
    deltas = [d for c in chunks for d in c.delta.tool_calls]
    assert [(d.index, d.id, d.name) for d in deltas] == [(0, "call_0", "get_weather"), (1, "call_1", "get_time")]
    assert json.loads(deltas[0].arguments) == expected_args(declarations[0]["parameters"], "Paris")
    assert json.loads(deltas[1].arguments) == {"tz": "Paris"}
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and final.provider_finish_reason == "STOP"


async def test_tool_round_trip_sends_function_call_and_response(stubs, mock):
    history = [
        user("weather in Paris?"),
        llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, tool_calls=[
            llm_pb.ToolCall(id="call_0", type="function", name="get_weather", arguments='{"city":"Paris"}'),
            llm_pb.ToolCall(id="call_1", type="function", name="get_time", arguments="{}")]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="call_0", content=[llm_pb.ContentPart(text="21C and sunny")]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="call_1", content=[llm_pb.ContentPart(text='{"now":"12:00"}')]),
    ]
    response = await stubs.llm.Generate(req(mock, messages=history,
                                            tools=[tool("get_weather", WEATHER), tool("get_time", TIME)]))
    contents = mock.requests[-1].json["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}}]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"content": "21C and sunny"}}},
        {"functionResponse": {"name": "get_time", "response": {"now": "12:00"}}}]}
    assert response.message.content.startswith("Tool said: ")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP


async def test_gemini3_thought_signature_round_trips_in_the_call_state(stubs, mock):
    tools = [tool("get_weather", WEATHER)]
    first = await stubs.llm.Generate(req(mock, model="gemini-3.5-flash", messages=[user("Paris")], tools=tools))
    call = first.message.tool_calls[0]
    assert call.id == "call_0" and call.name == "get_weather"
    assert (call.provider_state.origin, call.provider_state.data) == ("gemini", mock.thought_signature)
    history = [user("Paris"), llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, tool_calls=[call]),
               llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id=call.id, content=[llm_pb.ContentPart(text="21C")])]
    second = await stubs.llm.Generate(req(mock, model="gemini-3.5-flash", messages=history, tools=tools))
    assert mock.requests[-1].json["contents"][1]["parts"][0]["thoughtSignature"] == mock.thought_signature
    assert second.message.content.startswith("Tool said: ")


async def test_thought_parts_become_reasoning_content(stubs, mock):
    params = struct({"include_thoughts": True, "thinking_budget": 1024})
    response = await stubs.llm.Generate(req(mock, model_parameters=params))
    assert mock.requests[-1].json["generationConfig"]["thinkingConfig"] == {"includeThoughts": True,
                                                                            "thinkingBudget": 1024}
    assert response.message.reasoning_content == "Thinking about: hello there"
    assert response.message.content == mock.expected_reply("hello there")
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, model_parameters=params))]
    assert "".join(c.delta.reasoning_content for c in chunks) == "Thinking about: hello there"
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("hello there")
    assert chunks[-1].usage.reasoning_tokens == count_tokens("Thinking about: hello there")


async def test_thinking_level_for_gemini3(stubs, mock):
    await stubs.llm.Generate(req(mock, model="gemini-3.5-flash",
                                 model_parameters=struct({"thinking_level": "low", "max_output_tokens": 100})))
    config = mock.requests[-1].json["generationConfig"]
    assert config == {"maxOutputTokens": 100, "thinkingConfig": {"thinkingLevel": "LOW"}}


async def test_json_schema_response_format(stubs, mock):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer",
                                                                                    "exclusiveMinimum": 0}},
              "required": ["name"], "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}
    response = await stubs.llm.Generate(req(mock, model_parameters=struct(
        {"response_format": "json_schema", "json_schema": json.dumps({"name": "person", "schema": schema})})))
    config = mock.requests[-1].json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {"type": "OBJECT", "required": ["name"], "properties": {
        "name": {"type": "STRING"}, "age": {"type": "INTEGER"}}}
    assert json.loads(response.message.content) == {"name": "hello there", "age": 1}


async def test_max_tokens_finish_is_length(stubs, mock):
    response = await stubs.llm.Generate(req(mock, messages=[user("one two three four five six")],
                                            model_parameters=struct({"max_output_tokens": 3})))
    assert response.finish_reason == llm_pb.FINISH_REASON_LENGTH and response.provider_finish_reason == "MAX_TOKENS"


# ---- safety is data, not an error --------------------------------------------------------------


async def test_safety_finish_and_blocked_prompt_are_content_filter(stubs, mock):
    mock.enqueue(finish("SAFETY"), method="generateContent")
    response = await stubs.llm.Generate(req(mock))
    assert response.finish_reason == llm_pb.FINISH_REASON_CONTENT_FILTER and response.provider_finish_reason == "SAFETY"
    assert response.message.content == "" and response.usage.prompt_tokens > 0
    mock.enqueue(blocked_prompt("SAFETY"), method="generateContent")
    response = await stubs.llm.Generate(req(mock))
    assert response.finish_reason == llm_pb.FINISH_REASON_CONTENT_FILTER and response.provider_finish_reason == "SAFETY"
    assert response.message.content == ""
    mock.enqueue(blocked_prompt("PROHIBITED_CONTENT"), method="streamGenerateContent")
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock))]
    assert len(chunks) == 1 and chunks[0].finish_reason == llm_pb.FINISH_REASON_CONTENT_FILTER
    assert chunks[0].provider_finish_reason == "PROHIBITED_CONTENT" and chunks[0].usage.prompt_tokens > 0
    mock.enqueue(finish("SAFETY"), method="streamGenerateContent")
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock))]
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_CONTENT_FILTER


async def test_malformed_function_call_is_finish_other(stubs, mock):
    mock.enqueue(finish("MALFORMED_FUNCTION_CALL"), method="generateContent")
    response = await stubs.llm.Generate(req(mock, tools=[tool("get_weather", WEATHER)]))
    assert response.finish_reason == llm_pb.FINISH_REASON_OTHER
    assert response.provider_finish_reason == "MALFORMED_FUNCTION_CALL" and not response.message.tool_calls


# ---- errors ---------------------------------------------------------------------------------


async def test_invalid_key_400_is_authorization_error(stubs, mock):
    wrong = "AIza-wrong-DO-NOT-LEAK-42"
    f = await failure_of(stubs.llm.Generate(req(mock, key=wrong)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert f.metadata["upstreamStatus"] == "400" and "target.credentials" in f.violations
    assert wrong not in f.message + repr(f.violations)


async def test_missing_key_403_is_authorization_error(stubs, mock):
    mock.enqueue(status(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"),
                 method="generateContent")
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.reason == "InvokeAuthorizationError" and f.metadata["upstreamStatus"] == "403"


async def test_rate_limit_carries_retry_delay(stubs, mock):
    mock.enqueue(rate_limit("2s"), method="generateContent")
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert f.retry_delay == 2.0
    mock.enqueue(rate_limit(None, retry_after_header="3"), method="streamGenerateContent")
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert received == [] and f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.retry_delay == 3.0


async def test_unavailable_and_not_found(stubs, mock):
    mock.enqueue(status(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
                 method="streamGenerateContent")
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert received == [] and f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert "overloaded" in f.message
    mock.enqueue(status(404, "NOT_FOUND", "models/gemini-2.5-flash is not found for API version v1beta"),
                 method="generateContent")
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.NOT_FOUND and f.metadata["upstreamStatus"] == "404"


@pytest.mark.parametrize("mid_event", [False, True])
async def test_truncated_stream_is_connection_error(stubs, mock, mid_event):
    mock.enqueue(truncate_after(2, mid_event=mid_event), method="streamGenerateContent")
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f g h i j")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert received and not any(c.finish_reason for c in received)


async def test_error_event_inside_200_stream(stubs, mock):
    mock.enqueue(stream_error_after(1), method="streamGenerateContent")
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f g")])))
    assert received and f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert "upstreamStatus" not in f.metadata


async def test_ref_in_tool_schema_is_rejected_before_sending(stubs, mock):
    before = len(mock.requests)
    schema = {"type": "object", "properties": {"loc": {"$ref": "#/$defs/Location"}},
              "$defs": {"Location": {"type": "string"}}}
    f = await failure_of(stubs.llm.Generate(req(mock, tools=[tool("ok", WEATHER), tool("bad", schema)])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "tools[1].parameters" in f.violations
    assert "properties.loc.$ref" in f.violations["tools[1].parameters"]
    assert len(mock.requests) == before


async def test_key_never_appears_in_a_url(stubs, mock):
    await stubs.llm.Generate(req(mock))
    await stubs.llm.CountTokens(llm_pb.CountTokensRequest(target=target("google", MODEL, creds(mock)),
                                                          messages=[user("hi")]))
    assert mock.requests
    for sent in mock.requests:
        assert KEY not in sent.target and "key" not in sent.query
        assert sent.headers.get("x-goog-api-key") in (KEY, "AIza-wrong-key-DO-NOT-LEAK", "AIza-wrong-DO-NOT-LEAK-42")


# ---- tokens and embeddings -------------------------------------------------------------------


async def test_count_tokens_uses_count_tokens_endpoint(stubs, mock):
    tools = [tool("get_weather", WEATHER)]
    response = await stubs.llm.CountTokens(llm_pb.CountTokensRequest(
        target=target("google", MODEL, creds(mock)), messages=[system("be brief"), user("hello there")],
        tools=tools))
    sent = mock.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:countTokens"
    inner = sent.json["generateContentRequest"]
    assert inner["model"] == f"models/{MODEL}" and inner["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    from tests.mocks.gemini_replies import prompt_tokens

    assert response.tokens == prompt_tokens(inner) > 0


async def test_embeddings_task_types_and_dimensions(stubs, mock):
    docs = ["first document", "second document", "third"]
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("google", "gemini-embedding-001", creds(mock)), texts=docs,
        input_type=te_pb.EMBEDDING_INPUT_TYPE_DOCUMENT, dimensions=768))
    sent = mock.requests[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.json["requests"][0] == {"model": "models/gemini-embedding-001", "taskType": "RETRIEVAL_DOCUMENT",
                                        "outputDimensionality": 768, "content": {"parts": [{"text": docs[0]}]}}
    assert len(response.embeddings) == 3
    for text, emb in zip(docs, response.embeddings):
        assert len(emb.values) == 768
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(
            emb.values, expected_embedding(text, "RETRIEVAL_DOCUMENT", 768)))
    assert response.usage.tokens > 0 and Decimal(response.usage.unit_price) == Decimal("0.15")
    query = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("google", "gemini-embedding-001", creds(mock)), texts=["a question?"],
        input_type=te_pb.EMBEDDING_INPUT_TYPE_QUERY))
    assert mock.requests[-1].json["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert "outputDimensionality" not in mock.requests[-1].json["requests"][0]
    assert len(query.embeddings[0].values) == 3072
    counted = await stubs.embedding.CountEmbeddingTokens(te_pb.CountEmbeddingTokensRequest(
        target=target("google", "gemini-embedding-001", creds(mock)), texts=["hello world", ""]))
    assert counted.tokens[0] > 0 and counted.tokens[1] == 0


# ---- cancellation -----------------------------------------------------------------------------


async def test_cancel_closes_the_upstream_connection_within_100ms(stubs, mock):
    mock.enqueue(hang(), method="streamGenerateContent")
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
