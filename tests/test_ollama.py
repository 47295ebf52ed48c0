"""Ollama (native API) through the real gRPC server against the faithful Ollama mock."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import time
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.ollama_mock import (
    STRING_SUFFIX,
    OllamaMock,
    expected_embedding,
    expected_tool_args,
    hang,
    prompt_eval_count,
    status,
    stream_error_after,
    truncate_after,
)

MODEL = "llama3.2"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
async def mock():
    async with OllamaMock() as m:
        yield m


def creds(mock: OllamaMock, **extra) -> dict:
    return {"base_url": mock.url, "mode": "chat", "context_size": "8192", "max_tokens": "4096",
            "function_call_support": "true", **extra}


def req(mock, model=MODEL, messages=None, cls=llm_pb.GenerateRequest, credentials=None, **kw):
    return cls(target=target("ollama", model, credentials or creds(mock)), messages=messages or [user("hello there")],
               **kw)


def sreq(mock, **kw):
    return req(mock, cls=llm_pb.StreamGenerateRequest, **kw)


def tool(name="get_weather", schema=None):
    return llm_pb.Tool(name=name, description=f"{name} tool", parameters=struct(schema or WEATHER))


# ---- catalog ---------------------------------------------------------------------------------


async def test_provider_is_customizable_only_with_difys_model_form(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    ollama = providers["ollama"]
    assert list(ollama.configurate_methods) == [prov_pb.CONFIGURATE_METHOD_CUSTOMIZABLE_MODEL]
    assert list(ollama.supported_model_types) == [common_pb2.MODEL_TYPE_LLM, common_pb2.MODEL_TYPE_TEXT_EMBEDDING]
    assert not ollama.provider_credential_fields
    fields = [f.variable for f in ollama.model_credential_fields]
    assert fields == ["base_url", "api_key", "mode", "context_size", "max_tokens", "vision_support",
                      "function_call_support"]
    models = (await stubs.providers.ListModels(prov_pb.ListModelsRequest(provider="ollama"))).models
    assert list(models) == []  # nothing predefined


async def test_list_models_with_credentials_reads_the_servers_tags(stubs, mock):
    llms = (await stubs.providers.ListModels(prov_pb.ListModelsRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_LLM, credentials=struct(creds(mock))))).models
    by_name = {m.name: m for m in llms}
    assert set(by_name) == {"llama3.2:latest", "qwen3:8b", "llava:7b", "mistral:7b"}
    assert all(m.fetch_from == prov_pb.FETCH_FROM_CUSTOMIZABLE_MODEL for m in llms)
    assert prov_pb.MODEL_FEATURE_TOOL_CALL in by_name["qwen3:8b"].features
    assert prov_pb.MODEL_FEATURE_VISION in by_name["llava:7b"].features
    assert prov_pb.MODEL_FEATURE_TOOL_CALL not in by_name["llava:7b"].features
    assert by_name["qwen3:8b"].properties["context_size"] == 40960  # from /api/show model_info
    # an old server's /api/show has no capabilities: the caller's switches decide
    assert prov_pb.MODEL_FEATURE_TOOL_CALL in by_name["mistral:7b"].features
    paths = [r.path for r in mock.requests[-7:]]
    assert paths[0] == "/api/tags" and paths.count("/api/show") == 6
    embeddings = (await stubs.providers.ListModels(prov_pb.ListModelsRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING,
        credentials=struct({"base_url": mock.url, "context_size": "512"})))).models
    assert {m.name for m in embeddings} == {"nomic-embed-text:latest", "all-minilm:latest"}


async def test_get_model_schema_follows_difys_rules(stubs, mock):
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL,
        credentials=struct(creds(mock, vision_support="true", max_tokens="2048"))))).model
    assert model.properties["mode"] == "chat" and model.properties["context_size"] == 8192
    assert prov_pb.MODEL_FEATURE_VISION in model.features and prov_pb.MODEL_FEATURE_STREAM_TOOL_CALL in model.features
    rules = {r.name: r for r in model.parameter_rules}
    assert rules["num_predict"].use_template == "max_tokens" and rules["num_predict"].max == 2048
    assert {"temperature", "top_k", "num_ctx", "keep_alive", "format", "think"} <= set(rules)


# ---- chat ------------------------------------------------------------------------------------


async def test_generate_unary_maps_options_and_reports_server_counts(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "num_predict": 100, "top_k": 20, "keep_alive": "10m",
                                 "num_ctx": 8192}),
        stop=["END"]))
    assert response.message.content == mock.expected_reply("hello there")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.provider_finish_reason == "stop"
    sent = mock.requests[-1]
    assert sent.path == "/api/chat" and "authorization" not in sent.headers
    body = sent.json
    assert body["stream"] is False and body["model"] == MODEL and body["keep_alive"] == "10m"
    assert body["options"] == {"temperature": 0.5, "num_predict": 100, "top_k": 20, "num_ctx": 8192, "stop": ["END"]}
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    assert response.usage.prompt_tokens == prompt_eval_count(body) and response.usage.completion_tokens == 3
    assert response.usage.currency == "USD" and Decimal(response.usage.total_price) == 0  # no pricing


async def test_max_tokens_alias_and_length_finish(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("one two three four five")], model_parameters=struct({"max_tokens": 2})))]
    assert mock.requests[-1].json["options"]["num_predict"] == 2
    assert "".join(c.delta.content for c in chunks) == "Echo: one"
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_LENGTH and chunks[-1].provider_finish_reason == "length"


async def test_stream_ndjson_split_lines_with_counts_on_the_final_chunk(stubs, mock):
    text = "stream me please — ünïcödé ok"
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user(text)]))]
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply(text)
    assert len([c for c in chunks if c.delta.content]) > 3
    final = chunks[-1]
    body = mock.requests[-1].json
    assert body["stream"] is True
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.usage.prompt_tokens == prompt_eval_count(body)
    assert all(not c.HasField("usage") for c in chunks[:-1])


async def test_object_argument_tool_call_becomes_valid_json(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("Paris please")], tools=[tool(), tool("b_tool", {
            "type": "object", "properties": {"n": {"type": "integer"}}})]))]
    body = mock.requests[-1].json
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "get_weather", "description": "get_weather tool", "parameters": WEATHER}}
    calls = [f for c in chunks for f in c.delta.tool_calls]
    assert [f.index for f in calls] == [0, 1] and [f.name for f in calls] == ["get_weather", "b_tool"]
    assert calls[0].id != calls[1].id and all(f.id for f in calls)
    args = json.loads(calls[0].arguments)
    assert args == expected_tool_args(WEATHER, "Paris please") and args["city"].endswith(STRING_SUFFIX)
    assert json.loads(calls[1].arguments) == {"n": 3}
    tool_chunk = next(i for i, c in enumerate(chunks) if c.delta.tool_calls)
    assert tool_chunk < len(chunks) - 1 and not chunks[tool_chunk].finish_reason  # not on the final line
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and final.provider_finish_reason == "stop"
    response = await stubs.llm.Generate(req(mock, tools=[tool()], tool_choice=llm_pb.ToolChoice(
        mode=llm_pb.TOOL_CHOICE_MODE_NONE)))
    assert "tools" not in mock.requests[-1].json and response.message.content == mock.expected_reply("hello there")


async def test_tool_round_trip_sends_object_arguments_and_tool_names(stubs, mock):
    history = [
        user("weather in Paris?"),
        llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, tool_calls=[
            llm_pb.ToolCall(id="call_0_get_weather", type="function", name="get_weather",
                            arguments='{"city": "Paris"}')]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="call_0_get_weather", content=[llm_pb.ContentPart(text="21C")]),
    ]
    response = await stubs.llm.Generate(req(mock, messages=history, tools=[tool()]))
    assert mock.requests[-1].json["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "21C", "tool_name": "get_weather"},
    ]
    assert response.message.content == "Tool results: get_weather=21C"


async def test_thinking_and_content_fragments(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, model="qwen3:8b", messages=[user("think first")], model_parameters=struct({"think": True})))]
    assert mock.requests[-1].json["think"] is True and "think" not in mock.requests[-1].json["options"]
    reasoning = [i for i, c in enumerate(chunks) if c.delta.reasoning_content]
    content = [i for i, c in enumerate(chunks) if c.delta.content]
    assert len(reasoning) > 1 and max(reasoning) < min(content)
    assert "".join(c.delta.reasoning_content for c in chunks) == "The user wrote: think first. Reply."
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("think first")


async def test_images_go_as_base64_and_urls_are_refused(stubs, mock):
    png = b"\x89PNG\r\n\x1a\n0000"
    message = llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(text="what is this?"),
        llm_pb.ContentPart(image=llm_pb.MediaContent(data=png, mime_type="image/png"))])
    vision = creds(mock, vision_support="true")
    response = await stubs.llm.Generate(req(mock, model="llava:7b", messages=[message], credentials=vision))
    assert mock.requests[-1].json["messages"][0] == {
        "role": "user", "content": "what is this?", "images": [base64.b64encode(png).decode()]}
    assert response.message.content == mock.expected_reply("what is this?")
    before = len(mock.requests)
    url_image = llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(image=llm_pb.MediaContent(url="https://example.com/cat.png"))])
    f = await failure_of(stubs.llm.Generate(req(mock, model="llava:7b", messages=[url_image], credentials=vision)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "messages[0].content[0]" in f.violations
    assert len(mock.requests) == before


async def test_completion_mode_uses_api_generate(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[system("sys"), user("complete this")], credentials=creds(mock, mode="completion")))]
    sent = mock.requests[-1]
    assert sent.path == "/api/generate" and sent.json["prompt"] == "complete this" and sent.json["system"] == "sys"
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("complete this")
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP


# ---- upstream failures -----------------------------------------------------------------------


async def test_model_not_pulled_is_not_found(stubs, mock):
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, model="nope:1b")))
    assert received == [] and f.code == grpc.StatusCode.NOT_FOUND
    assert 'model "nope:1b" not found, try pulling it first' in f.message and f.metadata["upstreamStatus"] == "404"


async def test_error_line_mid_stream_raises_after_content(stubs, mock):
    mock.enqueue(stream_error_after(3))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f")])))
    assert any(c.delta.content for c in received) and not any(c.finish_reason for c in received)
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert "unexpected EOF" in f.message


@pytest.mark.parametrize("partial", [False, True])
async def test_truncated_stream_is_a_connection_error(stubs, mock, partial):
    mock.enqueue(truncate_after(4, partial=partial))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert not any(c.finish_reason for c in received)


async def test_rate_limit_and_server_errors(stubs, mock):
    mock.enqueue(status(429, "too many requests"))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    mock.enqueue(status(500, "llama runner process has terminated"))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.UNAVAILABLE and "llama runner" in f.message


async def test_api_key_is_sent_as_bearer_and_a_wrong_one_is_an_auth_error(stubs):
    async with OllamaMock(api_key="ol-secret-key") as guarded:
        response = await stubs.llm.Generate(req(guarded, credentials=creds(guarded, api_key="ol-secret-key")))
        assert response.message.content == guarded.expected_reply("hello there")
        assert guarded.requests[-1].headers["authorization"] == "Bearer ol-secret-key"
        f = await failure_of(stubs.llm.Generate(req(guarded, credentials=creds(guarded, api_key="ol-wrong-key-1"))))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
        assert "ol-wrong-key-1" not in f.message


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


# ---- embeddings ------------------------------------------------------------------------------


async def test_embeddings_single_string_and_batch(stubs, mock):
    embed_creds = {"base_url": mock.url, "context_size": "2048"}
    one = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("ollama", "nomic-embed-text", embed_creds), texts=["a question?"],
        input_type=te_pb.EMBEDDING_INPUT_TYPE_QUERY))
    sent = mock.requests[-1]
    assert sent.path == "/api/embed" and sent.json == {"model": "nomic-embed-text", "input": "a question?",
                                                       "truncate": True}
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(
        one.embeddings[0].values, expected_embedding("nomic-embed-text:latest", "a question?", 768)))
    assert one.usage.tokens > 0
    texts = [f"document {i}" for i in range(40)]
    before = len(mock.requests)
    many = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("ollama", "nomic-embed-text", embed_creds), texts=texts, dimensions=256))
    sizes = sorted(len(r.json["input"]) for r in mock.requests[before:])
    assert sizes == [8, 32] and all(r.json["dimensions"] == 256 for r in mock.requests[before:])
    assert len(many.embeddings) == 40 and len(many.embeddings[39].values) == 256
    assert many.embeddings[39].values[:4] == pytest.approx(
        expected_embedding("nomic-embed-text:latest", texts[39], 256)[:4], abs=1e-6)


# ---- credentials -----------------------------------------------------------------------------


async def test_validate_model_credentials(stubs, mock):
    response = await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL, credentials=struct(creds(mock))))
    assert response.credentials["base_url"] == mock.url
    sent = mock.requests[-1].json
    assert sent["options"] == {"num_predict": 5} and sent["stream"] is False
    await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING, model="nomic-embed-text",
        credentials=struct({"base_url": mock.url, "context_size": "2048"})))
    assert mock.requests[-1].json["input"] == "ping"

    f = await failure_of(stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_LLM, model="missing:7b", credentials=struct(creds(mock)))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert "try pulling it first" in f.message

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    f = await failure_of(stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL,
        credentials=struct(creds(mock, base_url=dead)))))
    assert f.reason == "CredentialsValidateFailedError"
    f = await failure_of(stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="ollama", model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL,
        credentials=struct({"base_url": mock.url}))))
    assert "credentials.context_size" in f.violations
