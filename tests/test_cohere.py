"""Cohere (native v2 API) through the real gRPC server against the faithful Cohere mock."""

from __future__ import annotations

import asyncio
import json
import math
import time
from decimal import Decimal

import grpc
import httpx
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import rerank_service_pb2 as rr_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.cohere_mock import (
    TRIAL_MESSAGE,
    CohereMock,
    finish_error,
    hang,
    status,
    trial_rate_limit,
    truncate_after,
)
from tests.mocks.cohere_replies import (
    STRING_SUFFIX,
    expected_embedding,
    expected_tool_input,
    prompt_tokens,
    relevance,
)

KEY = "co-test-0123456789abcdef"
REVOKED = "co-revoked-DO-NOT-LEAK-1"
MODEL = "command-a-03-2025"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
async def mock():
    async with CohereMock(api_keys=[KEY], revoked_keys=[REVOKED]) as m:
        yield m


def creds(mock: CohereMock, key: str = KEY) -> dict:
    return {"api_key": key, "base_url": mock.url}


def req(mock, model=MODEL, messages=None, cls=llm_pb.GenerateRequest, key=KEY, **kw):
    return cls(target=target("cohere", model, creds(mock, key)), messages=messages or [user("hello there")], **kw)


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


async def test_catalog_lists_cohere_models_forms_and_prices(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    cohere = providers["cohere"]
    assert list(cohere.supported_model_types) == [
        common_pb2.MODEL_TYPE_LLM, common_pb2.MODEL_TYPE_TEXT_EMBEDDING, common_pb2.MODEL_TYPE_RERANK]
    assert list(cohere.configurate_methods) == [prov_pb.CONFIGURATE_METHOD_PREDEFINED_MODEL,
                                                prov_pb.CONFIGURATE_METHOD_CUSTOMIZABLE_MODEL]
    fields = {f.variable: f for f in cohere.provider_credential_fields}
    assert fields["api_key"].type == prov_pb.FORM_TYPE_SECRET_INPUT and fields["api_key"].required
    assert not fields["base_url"].required
    assert [f.variable for f in cohere.model_credential_fields] == ["mode", "api_key", "base_url"]

    async def names(model_type):
        return [m.name for m in (await stubs.providers.ListModels(prov_pb.ListModelsRequest(
            provider="cohere", model_type=model_type))).models]

    llms = await names(common_pb2.MODEL_TYPE_LLM)
    assert llms[0] == "command-a-03-2025" and "command-r-08-2024" in llms
    assert "command-r-plus" not in llms  # the retired alias is deprecated, hidden by default
    assert {"embed-v4.0", "embed-english-v3.0", "embed-multilingual-v3.0"} <= set(
        await names(common_pb2.MODEL_TYPE_TEXT_EMBEDDING))
    assert "rerank-v3.5" in await names(common_pb2.MODEL_TYPE_RERANK)
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="cohere", model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL))).model
    assert model.properties["context_size"] == 256000
    assert prov_pb.MODEL_FEATURE_TOOL_CALL in model.features
    rules = {r.name: r for r in model.parameter_rules}
    assert rules["p"].max == 0.99 and rules["k"].max == 500 and rules["max_tokens"].max == 8000
    assert Decimal(model.pricing.input) == Decimal("2.5") and Decimal(model.pricing.output) == Decimal(10)
    embed = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="cohere", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING, model="embed-v4.0"))).model
    assert Decimal(embed.pricing.input) == Decimal("0.12")


async def test_fine_tuned_model_takes_its_base_schema(stubs):
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="cohere", model_type=common_pb2.MODEL_TYPE_LLM, model="my-ft-model",
        credentials=struct({"api_key": KEY, "mode": "chat"})))).model
    assert model.fetch_from == prov_pb.FETCH_FROM_CUSTOMIZABLE_MODEL
    assert {r.name for r in model.parameter_rules} >= {"p", "k", "max_tokens"}


# ---- chat ------------------------------------------------------------------------------------


async def test_generate_unary_maps_parameters_and_prices_billed_usage(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "p": 0.5, "k": 40, "max_tokens": 100, "seed": 7}),
        stop=["END"], user="u-1"))
    assert response.message.content == mock.expected_reply("hello there")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.provider_finish_reason == "COMPLETE"
    sent = mock.requests[-1]
    assert sent.path == "/v2/chat" and sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    assert body["p"] == 0.5 and body["k"] == 40 and body["max_tokens"] == 100 and body["seed"] == 7
    assert body["stop_sequences"] == ["END"] and body["stream"] is False and "user" not in body
    u = response.usage
    assert u.prompt_tokens == prompt_tokens(body) and u.completion_tokens == 3  # billed units, not raw tokens
    expected = (Decimal(u.prompt_tokens) * Decimal("2.5") * Decimal("0.000001")).quantize(Decimal("0.0000001"))
    assert Decimal(u.prompt_price) == expected and u.currency == "USD"


async def test_stream_text_with_usage_on_the_final_chunk(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user("stream me please")]))]
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("stream me please")
    assert len([c for c in chunks if c.delta.content]) > 1
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.provider_finish_reason == "COMPLETE"
    body = mock.requests[-1].json
    assert body["stream"] is True
    assert final.usage.prompt_tokens == prompt_tokens(body) and final.usage.completion_tokens == 4
    assert all(not c.HasField("usage") for c in chunks[:-1])


async def test_max_tokens_finish_is_length(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("one two three four five")], model_parameters=struct({"max_tokens": 2})))]
    assert "".join(c.delta.content for c in chunks) == "Echo: one"
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_LENGTH and chunks[-1].provider_finish_reason == "MAX_TOKENS"


async def test_stream_tool_plan_then_split_tool_call_reassembles(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user("Paris please")], tools=[tool()]))]
    body = mock.requests[-1].json
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "get_weather tool", "parameters": WEATHER}}]
    assert "tool_choice" not in body  # auto is Cohere's default
    plan = [i for i, c in enumerate(chunks) if c.delta.content]
    first_call = min(i for i, c in enumerate(chunks) if c.delta.tool_calls)
    assert plan and max(plan) < first_call  # tool-plan-delta comes before tool-call-start
    assert "".join(c.delta.content for c in chunks) == "I will call get_weather."
    calls = collect_calls(chunks)
    assert list(calls) == [0]
    call = calls[0]
    assert call["fragments"] > 3 and call["id"].startswith("get_weather_") and call["name"] == "get_weather"
    parsed = json.loads(call["args"])
    assert parsed == expected_tool_input(WEATHER, "Paris please") and parsed["city"].endswith(STRING_SUFFIX)
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and final.provider_finish_reason == "TOOL_CALL"
    assert final.usage.completion_tokens > 0


async def test_tool_choice_and_unary_tool_calls(stubs, mock):
    tools = [tool("a_tool"), tool("b_tool", {"type": "object", "properties": {"n": {"type": "integer"}}})]
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, tools=tools, tool_choice=llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_REQUIRED)))]
    assert mock.requests[-1].json["tool_choice"] == "REQUIRED"
    calls = collect_calls(chunks)
    assert [calls[i]["name"] for i in (0, 1)] == ["a_tool", "b_tool"] and json.loads(calls[1]["args"]) == {"n": 3}
    response = await stubs.llm.Generate(req(mock, tools=tools, tool_choice=llm_pb.ToolChoice(
        mode=llm_pb.TOOL_CHOICE_MODE_FUNCTION, function_name="b_tool")))
    body = mock.requests[-1].json
    assert body["tool_choice"] == "REQUIRED" and [t["function"]["name"] for t in body["tools"]] == ["b_tool"]
    assert [c.name for c in response.message.tool_calls] == ["b_tool"]
    assert json.loads(response.message.tool_calls[0].arguments) == {"n": 3}
    assert response.message.content == "I will call b_tool."
    assert response.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS
    await stubs.llm.Generate(req(mock, tools=tools, tool_choice=llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_NONE)))
    assert mock.requests[-1].json["tool_choice"] == "NONE"


async def test_tool_round_trip_history_is_serialised(stubs, mock):
    history = [
        user("weather in Paris and Rome?"),
        llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text="I will check.")], tool_calls=[
            llm_pb.ToolCall(id="call_1", type="function", name="get_weather", arguments='{"city":"Paris"}'),
            llm_pb.ToolCall(id="call_2", type="function", name="get_weather", arguments='{"city": "Rome"}')]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="call_1", content=[llm_pb.ContentPart(text="21C")]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="call_2", content=[llm_pb.ContentPart(text="25C")]),
    ]
    response = await stubs.llm.Generate(req(mock, messages=history, tools=[tool()]))
    assert mock.requests[-1].json["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "tool_plan": "I will check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "25C"},
    ]
    assert response.message.content == "Tool results: 21C; 25C"


async def test_reasoning_model_streams_thinking_before_content(stubs, mock):
    model = "command-a-reasoning-08-2025"
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, model=model, messages=[user("think first")], model_parameters=struct({"thinking_budget": 2048})))]
    assert mock.requests[-1].json["thinking"] == {"type": "enabled", "token_budget": 2048}
    reasoning = [i for i, c in enumerate(chunks) if c.delta.reasoning_content]
    content = [i for i, c in enumerate(chunks) if c.delta.content]
    assert len(reasoning) > 1 and max(reasoning) < min(content)
    assert "".join(c.delta.reasoning_content for c in chunks) == "The user wrote: think first. Reply."
    response = await stubs.llm.Generate(req(mock, model=model, model_parameters=struct({"thinking": False})))
    assert mock.requests[-1].json["thinking"] == {"type": "disabled"}
    assert response.message.reasoning_content == "" and response.message.content == mock.expected_reply("hello there")


async def test_json_schema_becomes_a_json_object_response_format(stubs, mock):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    response = await stubs.llm.Generate(req(mock, model_parameters=struct({"json_schema": json.dumps(schema)})))
    assert mock.requests[-1].json["response_format"] == {"type": "json_object", "json_schema": schema}
    assert json.loads(response.message.content) == {"answer": mock.expected_reply("hello there")}


# ---- upstream failures -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["co-wrong-DO-NOT-LEAK-9", REVOKED])
async def test_401_and_498_are_authorization_errors(stubs, mock, key):
    f = await failure_of(stubs.llm.Generate(req(mock, key=key)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert f.metadata["upstreamStatus"] == ("498" if key == REVOKED else "401")
    assert key not in f.message + repr(f.violations) + repr(f.metadata)


async def test_trial_key_429_is_resource_exhausted(stubs, mock):
    mock.enqueue(trial_rate_limit())
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert received == [] and f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert "Trial key" in f.message and TRIAL_MESSAGE[:40] in f.message


async def test_server_errors_and_unknown_model(stubs, mock):
    mock.enqueue(status(503, "service unavailable"))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    # Not predefined: a customizable model on its base schema, which Cohere does not know.
    f = await failure_of(stubs.llm.Generate(req(mock, model="unknown-model", messages=[user("x")])))
    assert f.code == grpc.StatusCode.NOT_FOUND and "not found" in f.message


@pytest.mark.parametrize(("mid_event", "abort"), [(False, False), (True, False), (False, True)])
async def test_truncated_or_malformed_stream_is_a_connection_error(stubs, mock, mid_event, abort):
    mock.enqueue(truncate_after(5, mid_event=mid_event, abort=abort))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f g")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert any(c.delta.content for c in received) and not any(c.finish_reason for c in received)


async def test_finish_reason_error_under_200_raises(stubs, mock):
    mock.enqueue(finish_error(after=4))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f g")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert "internal model error" in f.message and not any(c.finish_reason for c in received)


async def test_cancel_closes_the_upstream_connection_within_100ms(stubs, mock):
    mock.enqueue(hang())
    call = stubs.llm.StreamGenerate(sreq(mock))
    await mock.wait_requests(len(mock.requests) + 1)
    await asyncio.sleep(0.05)
    conn = mock.server.connection(mock.requests[-1].connection_id)  # the pool may reuse any idle one
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer
    assert record.closed_at - cancelled_at < 0.1, f"closed after {record.closed_at - cancelled_at:.3f}s"


# ---- embeddings and rerank -------------------------------------------------------------------


async def test_embeddings_send_input_type_and_read_vectors_keyed_by_type(stubs, mock):
    docs = ["first document", "second document", "third"]
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("cohere", "embed-v4.0", creds(mock)), texts=docs,
        input_type=te_pb.EMBEDDING_INPUT_TYPE_DOCUMENT, dimensions=512))
    sent = mock.requests[-1]
    assert sent.path == "/v2/embed"
    assert sent.json == {"model": "embed-v4.0", "input_type": "search_document", "embedding_types": ["float"],
                         "output_dimension": 512, "texts": docs}
    assert len(response.embeddings) == 3
    for text, emb in zip(docs, response.embeddings):
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(
            emb.values, expected_embedding("embed-v4.0", "search_document", text, 512)))
        assert len(emb.values) == 512
    assert response.usage.tokens > 0 and Decimal(response.usage.unit_price) == Decimal("0.12")
    query = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("cohere", "embed-english-v3.0", creds(mock)), texts=["a question?"],
        input_type=te_pb.EMBEDDING_INPUT_TYPE_QUERY))
    assert mock.requests[-1].json["input_type"] == "search_query" and "output_dimension" not in mock.requests[-1].json
    assert len(query.embeddings[0].values) == 1024


async def test_embedding_batches_respect_the_96_text_limit(stubs, mock):
    texts = [f"text number {i}" for i in range(150)]
    before = len(mock.requests)
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("cohere", "embed-multilingual-v3.0", creds(mock)), texts=texts))
    sizes = sorted(len(r.json["texts"]) for r in mock.requests[before:])
    assert sizes == [54, 96] and len(response.embeddings) == 150
    assert response.embeddings[149].values[:3] == pytest.approx(
        expected_embedding("embed-multilingual-v3.0", "search_document", texts[149])[:3], abs=1e-6)


async def test_mock_rejects_embed_without_input_type_and_can_return_other_types(mock):
    async with httpx.AsyncClient() as http:
        answer = await http.post(mock.url + "/v2/embed", headers={"authorization": f"Bearer {KEY}"},
                                 json={"model": "embed-english-v3.0", "texts": ["x"]})
        assert answer.status_code == 400 and "input_type" in answer.json()["message"]
        answer = await http.post(mock.url + "/v2/embed", headers={"authorization": f"Bearer {KEY}"}, json={
            "model": "embed-english-v3.0", "texts": ["x"], "input_type": "search_query",
            "embedding_types": ["float", "int8"]})
        assert set(answer.json()["embeddings"]) == {"float", "int8"}


async def test_rerank_maps_out_of_order_results_back_to_the_documents(stubs, mock):
    docs = ["bananas are yellow", "the capital of France is Paris", "Paris has the Eiffel tower", "cars"]
    query = "what is the capital of France"
    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=target("cohere", "rerank-v3.5", creds(mock)), query=query, documents=docs, top_n=3))
    sent = mock.requests[-1]
    assert sent.path == "/v2/rerank"
    assert sent.json == {"model": "rerank-v3.5", "query": query, "documents": docs, "top_n": 3,
                         "max_tokens_per_doc": 4096}
    expected = sorted(range(len(docs)), key=lambda i: -relevance(query, docs[i]))[:3]
    assert [d.index for d in response.documents] == expected and expected[0] == 1 and expected != [0, 1, 2]
    for d in response.documents:
        assert d.text == docs[d.index] and d.score == pytest.approx(relevance(query, docs[d.index]))
    assert len(response.documents) == 3
    high = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=target("cohere", "rerank-v3.5", creds(mock)), query=query, documents=docs, score_threshold=0.5))
    assert [d.index for d in high.documents] == [1]


# ---- credentials -----------------------------------------------------------------------------


async def test_validate_provider_credentials_with_a_one_document_rerank(stubs, mock):
    response = await stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="cohere", credentials=struct(creds(mock))))
    assert response.credentials["api_key"] == "[__HIDDEN__]"
    sent = mock.requests[-1]
    assert sent.path == "/v2/rerank" and sent.json["model"] == "rerank-v3.5" and sent.json["documents"] == ["pong"]
    for key in ("co-bad-key-77", REVOKED):
        f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
            provider="cohere", credentials=struct(creds(mock, key)))))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
        assert key not in f.message


async def test_validate_model_credentials_for_a_fine_tune(stubs, mock):
    await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="cohere", model_type=common_pb2.MODEL_TYPE_LLM, model="command-ft-1234",
        credentials=struct({**creds(mock), "mode": "chat"})))
    sent = mock.requests[-1].json
    assert sent["model"] == "command-ft-1234" and sent["max_tokens"] == 5
    f = await failure_of(stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="cohere", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING, model="embed-unknown",
        credentials=struct(creds(mock)))))
    assert f.reason == "CredentialsValidateFailedError"
