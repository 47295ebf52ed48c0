"""Amazon Bedrock through the real gRPC server against the Bedrock mock, which verifies every
SigV4 signature and streams binary event-stream frames split at arbitrary byte offsets."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import rerank_service_pb2 as rr_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.bedrock_mock import (
    STRING_SUFFIX,
    BedrockMock,
    corrupt_crc,
    count_input_tokens,
    expected_embedding,
    expected_tool_input,
    hang,
    model_error,
    no_metadata,
    rerank_score,
    status,
    stream_exception,
    throttle_in_stream,
    truncate_after,
)

KEY_ID = "AKIDFAKETESTKEY00001"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TEMP_KEY_ID = "ASIDFAKETESTKEY00001"
TEMP_SECRET = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
SESSION_TOKEN = "FQoGZXIvYXdzEBYaDEXAMPLETOKEN/+=="
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl"
MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "amazon.nova-lite-v1:0"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
async def mock():
    async with BedrockMock(keys={KEY_ID: SECRET, TEMP_KEY_ID: (TEMP_SECRET, SESSION_TOKEN)},
                           api_keys=[API_KEY]) as m:
        yield m


def creds(mock: BedrockMock, **over) -> dict:
    out = {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "aws_region": "us-west-2",
           "bedrock_endpoint_url": mock.url, "bedrock_agent_endpoint_url": mock.url}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def req(mock, model=MODEL, messages=None, cls=llm_pb.GenerateRequest, credentials=None, **kw):
    return cls(target=target("bedrock", model, credentials or creds(mock)),
               messages=messages or [user("hello there")], **kw)


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


def last_signature(mock):
    check = mock.signatures[-1]
    assert check is not None, "the request was not SigV4-signed"
    return check


# ---- catalog ---------------------------------------------------------------------------------


async def test_catalog_lists_bedrock_models_of_three_types(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    bedrock = providers["bedrock"]
    assert bedrock.label.en_us == "Amazon Bedrock"
    assert list(bedrock.supported_model_types) == [
        common_pb2.MODEL_TYPE_LLM, common_pb2.MODEL_TYPE_TEXT_EMBEDDING, common_pb2.MODEL_TYPE_RERANK]
    fields = {f.variable: f for f in bedrock.provider_credential_fields}
    assert fields["aws_secret_access_key"].type == prov_pb.FORM_TYPE_SECRET_INPUT
    assert fields["aws_region"].type == prov_pb.FORM_TYPE_SELECT and fields["aws_region"].required
    assert not fields["bedrock_endpoint_url"].required and "model_for_validation" in fields
    llms = [m.name for m in (await stubs.providers.ListModels(prov_pb.ListModelsRequest(
        provider="bedrock", model_type=common_pb2.MODEL_TYPE_LLM))).models]
    assert llms[0] == "us.anthropic.claude-sonnet-4-6" and {MODEL, NOVA, "amazon.nova-micro-v1:0"} <= set(llms)
    assert "anthropic.claude-3-5-haiku-20241022-v1:0" not in llms  # deprecated: hidden
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="bedrock", model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL))).model
    assert Decimal(model.pricing.input) == Decimal(1) and Decimal(model.pricing.output) == Decimal(5)
    rerank = [m.name for m in (await stubs.providers.ListModels(prov_pb.ListModelsRequest(
        provider="bedrock", model_type=common_pb2.MODEL_TYPE_RERANK))).models]
    assert rerank == ["cohere.rerank-v3-5:0", "amazon.rerank-v1:0"]


# ---- Converse ---------------------------------------------------------------------------------


async def test_converse_unary_signed_request_and_priced_usage(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "top_k": 40, "max_tokens": 100}), stop=["END"]))
    assert response.message.content == mock.expected_reply("hello there")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.provider_finish_reason == "end_turn"
    assert len(response.id) == 36  # the x-amzn-requestid
    sent = mock.requests[-1]
    # The path is signed as it went on the wire, encoded once more (the mock recomputed it).
    assert sent.target == "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/converse"
    check = last_signature(mock)
    assert check.key_id == KEY_ID
    assert "\n/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse\n" in check.canonical_request
    assert check.signed_headers == ["content-type", "host", "x-amz-content-sha256", "x-amz-date"]
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "/us-west-2/bedrock/aws4_request" in sent.headers["authorization"]
    body = sent.json
    assert body["system"] == [{"text": "be brief"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hello there"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["END"]}
    assert body["additionalModelRequestFields"] == {"top_k": 40}
    u = response.usage
    assert u.prompt_tokens == count_input_tokens(body) and u.completion_tokens == 3
    assert Decimal(u.prompt_unit_price) == Decimal(1) and Decimal(u.completion_unit_price) == Decimal(5)
    assert Decimal(u.total_price) == Decimal(u.prompt_price) + Decimal(u.completion_price) > 0


async def test_max_tokens_default_and_nova_top_k_shape(stubs, mock):
    await stubs.llm.Generate(req(mock))
    assert mock.requests[-1].json["inferenceConfig"] == {"maxTokens": 32000}
    await stubs.llm.Generate(req(mock, model=NOVA, model_parameters=struct({"top_k": 20})))
    body = mock.requests[-1].json
    assert body["inferenceConfig"] == {"maxTokens": 5000}
    assert body["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 20}}


async def test_stream_frames_split_everywhere_with_usage_on_the_final_chunk(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user("stream me please now")]))]
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("stream me please now")
    assert len([c for c in chunks if c.delta.content]) > 1
    assert mock.requests[-1].target.endswith("/converse-stream")
    assert mock.requests[-1].headers["accept"] == "application/vnd.amazon.eventstream"
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.provider_finish_reason == "end_turn"
    body = mock.requests[-1].json
    assert final.usage.prompt_tokens == count_input_tokens(body) and final.usage.completion_tokens == 5
    assert final.usage.total_price and all(not c.HasField("usage") for c in chunks[:-1])


async def test_stream_tool_use_input_split_across_deltas(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("Paris please")], tools=[tool()],
        tool_choice=llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_AUTO)))]
    body = mock.requests[-1].json
    assert body["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "get_weather", "description": "get_weather tool", "inputSchema": {"json": WEATHER}}}],
        "toolChoice": {"auto": {}}}
    assert "".join(c.delta.content for c in chunks) == "Let me check that."
    calls = collect_calls(chunks)
    assert list(calls) == [0]
    call = calls[0]
    assert call["fragments"] > 5 and call["id"].startswith("tooluse_") and call["name"] == "get_weather"
    parsed = json.loads(call["args"])
    assert parsed == expected_tool_input(WEATHER, "Paris please") and parsed["city"].endswith(STRING_SUFFIX)
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS
    assert chunks[-1].provider_finish_reason == "tool_use"


async def test_tool_round_trip_and_required_choice(stubs, mock):
    history = [
        user("weather in Paris and Rome?"),
        llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text="Checking.")], tool_calls=[
            llm_pb.ToolCall(id="tooluse_1", type="function", name="get_weather", arguments='{"city":"Paris"}'),
            llm_pb.ToolCall(id="tooluse_2", type="function", name="get_weather", arguments='{"city":"Rome"}')]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="tooluse_1", content=[llm_pb.ContentPart(text="21C")]),
        llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id="tooluse_2", content=[llm_pb.ContentPart(text="25C")]),
    ]
    response = await stubs.llm.Generate(req(mock, messages=history, tools=[tool()]))
    assert mock.requests[-1].json["messages"][1:] == [
        {"role": "assistant", "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Rome"}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "21C"}], "status": "success"}},
            {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "25C"}], "status": "success"}}]},
    ]
    assert response.message.content == "Tool results: 21C; 25C"
    tools = [tool("a_tool"), tool("b_tool", {"type": "object", "properties": {"n": {"type": "integer"}}})]
    response = await stubs.llm.Generate(req(mock, tools=tools, tool_choice=llm_pb.ToolChoice(
        mode=llm_pb.TOOL_CHOICE_MODE_REQUIRED)))
    assert mock.requests[-1].json["toolConfig"]["toolChoice"] == {"any": {}}
    assert [c.name for c in response.message.tool_calls] == ["a_tool", "b_tool"]
    assert json.loads(response.message.tool_calls[1].arguments) == {"n": 3}
    assert response.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS


async def test_extended_thinking_streams_reasoning_first(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user("think first")],
        model_parameters=struct({"thinking": True, "thinking_budget": 2048, "max_tokens": 4096, "temperature": 0.3})))]
    body = mock.requests[-1].json
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert body["inferenceConfig"] == {"maxTokens": 4096}
    reasoning = [i for i, c in enumerate(chunks) if c.delta.reasoning_content]
    content = [i for i, c in enumerate(chunks) if c.delta.content]
    assert len(reasoning) > 1 and max(reasoning) < min(content)
    assert "".join(c.delta.reasoning_content for c in chunks) == "The user wrote: think first. Reply."


async def test_image_and_document_blocks(stubs, mock):
    png, pdf = b"\x89PNG\r\n\x1a\n0000", b"%PDF-1.7 mock"
    message = llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(text="what is this?"),
        llm_pb.ContentPart(image=llm_pb.MediaContent(data=png, mime_type="image/png")),
        llm_pb.ContentPart(document=llm_pb.MediaContent(data=pdf, mime_type="application/pdf", filename="a.b.pdf")),
    ])
    response = await stubs.llm.Generate(req(mock, model=NOVA, messages=[message]))
    assert response.message.content == mock.expected_reply("what is this?")
    parts = mock.requests[-1].json["messages"][0]["content"]
    assert parts[1] == {"image": {"format": "png", "source": {"bytes": base64.b64encode(png).decode()}}}
    assert parts[2] == {"document": {"format": "pdf", "name": "a-b", "source": {"bytes": base64.b64encode(pdf).decode()}}}
    f = await failure_of(stubs.llm.Generate(req(mock, messages=[llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(image=llm_pb.MediaContent(url="https://example.com/cat.png"))])])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "messages[0].content[0]" in f.violations


# ---- authentication ---------------------------------------------------------------------------


async def test_session_token_is_sent_and_signed(stubs, mock):
    credentials = creds(mock, aws_access_key_id=TEMP_KEY_ID, aws_secret_access_key=TEMP_SECRET,
                        aws_session_token=SESSION_TOKEN)
    response = await stubs.llm.Generate(req(mock, credentials=credentials))
    assert response.message.content == mock.expected_reply("hello there")
    check = last_signature(mock)
    assert check.key_id == TEMP_KEY_ID and "x-amz-security-token" in check.signed_headers
    assert mock.requests[-1].headers["x-amz-security-token"] == SESSION_TOKEN


async def test_bedrock_api_key_is_sent_as_bearer(stubs, mock):
    credentials = creds(mock, aws_access_key_id=None, aws_secret_access_key=None, bedrock_api_key=API_KEY)
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, credentials=credentials))]
    assert "".join(c.delta.content for c in chunks) == mock.expected_reply("hello there")
    sent = mock.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}" and mock.signatures[-1] is None
    assert "x-amz-date" not in sent.headers


async def test_wrong_secret_is_a_403_invalid_signature_and_never_echoed(stubs, mock):
    wrong = "wrongSECRETwrongSECRETwrongSECRET1234567"
    f = await failure_of(stubs.llm.Generate(req(mock, credentials=creds(mock, aws_secret_access_key=wrong))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert f.metadata["upstreamStatus"] == "403" and "InvalidSignatureException" in f.message
    everything = f.message + repr(f.violations) + repr(f.metadata)
    assert wrong not in everything and SECRET not in everything
    f = await failure_of(stubs.llm.Generate(req(mock, credentials=creds(mock, aws_access_key_id="AKIDFAKEUNKNOWN0000"))))
    assert f.reason == "InvokeAuthorizationError" and "UnrecognizedClientException" in f.message
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, credentials=creds(
        mock, aws_access_key_id=TEMP_KEY_ID, aws_secret_access_key=TEMP_SECRET))))  # no session token
    assert received == [] and f.reason == "InvokeAuthorizationError"


async def test_missing_access_keys_name_the_fields(stubs, mock):
    before = len(mock.requests)
    f = await failure_of(stubs.llm.Generate(req(mock, credentials=creds(mock, aws_secret_access_key=None))))
    assert f.reason == "InvokeAuthorizationError" and "credentials.aws_secret_access_key" in f.violations
    assert len(mock.requests) == before


# ---- failures ---------------------------------------------------------------------------------


async def test_throttling_exception_frame_after_content(stubs, mock):
    mock.enqueue(throttle_in_stream(after_events=4))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("one two three four")])))
    assert any(c.delta.content for c in received), "content before the exception reaches the caller"
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert "Too many tokens" in f.message and f.metadata["provider"] == "bedrock" and f.metadata["model"] == MODEL
    assert not any(c.finish_reason for c in received)


@pytest.mark.parametrize(("exception_type", "body", "code", "reason"), [
    ("modelStreamErrorException", {"originalStatusCode": 500, "originalMessage": "boom"},
     grpc.StatusCode.UNAVAILABLE, "InvokeServerUnavailableError"),
    ("serviceUnavailableException", {}, grpc.StatusCode.UNAVAILABLE, "InvokeServerUnavailableError"),
    ("internalServerException", {}, grpc.StatusCode.UNAVAILABLE, "InvokeServerUnavailableError"),
    ("validationException", {}, grpc.StatusCode.INVALID_ARGUMENT, "InvokeBadRequestError"),
])
async def test_other_exception_frames_map(stubs, mock, exception_type, body, code, reason):
    mock.enqueue(stream_exception(2, exception_type, "mock failure", body))
    _, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert f.code == code and f.reason == reason and "mock failure" in f.message


@pytest.mark.parametrize("where", ["message", "prelude"])
async def test_crc_corrupted_frame_is_a_connection_error(stubs, mock, where):
    mock.enqueue(corrupt_crc(after_events=3, where=where))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert "checksum" in f.message
    assert not any(c.finish_reason for c in received)


@pytest.mark.parametrize(("mid_frame", "abort"), [(False, False), (True, False), (True, True)])
async def test_truncated_stream_is_an_error_not_a_short_answer(stubs, mock, mid_frame, abort):
    mock.enqueue(truncate_after(4, mid_frame=mid_frame, abort=abort))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert not any(c.finish_reason for c in received)


async def test_stream_ending_after_message_stop_without_metadata_is_counted_locally(stubs, mock):
    mock.enqueue(no_metadata())
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user("short one")]))]
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP
    assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0


async def test_429_throttling_before_the_stream(stubs, mock):
    mock.enqueue(status(429, "ThrottlingException", "Too many requests, please wait before trying again.",
                        headers={"retry-after": "2"}))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert received == [] and f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert f.metadata["upstreamStatus"] == "429" and f.retry_delay == 2.0


async def test_424_model_error_carries_the_original_status(stubs, mock):
    mock.enqueue(model_error(500))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert f.metadata["upstreamStatus"] == "424" and "HTTP 500" in f.message
    mock.enqueue(model_error(400))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"


async def test_400_validation_exception_from_the_provider(stubs, mock):
    history = [llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text="hi")]), user("x")]
    f = await failure_of(stubs.llm.Generate(req(mock, messages=history)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "ValidationException" in f.message and "must start with a user message" in f.message
    assert f.metadata["upstreamStatus"] == "400"
    mock.enqueue(status(503, "ServiceUnavailableException", "Bedrock is unable to process your request."))
    _, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"


async def test_client_cancel_closes_upstream_connection_within_100ms(stubs, mock):
    mock.enqueue(hang())
    call = stubs.llm.StreamGenerate(sreq(mock))
    await mock.wait_requests(len(mock.requests) + 1)
    await asyncio.sleep(0.05)
    conn = mock.connections[-1]
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer
    assert record.closed_at - cancelled_at < 0.1, f"closed after {record.closed_at - cancelled_at:.3f}s"


# ---- embeddings and rerank --------------------------------------------------------------------


async def test_titan_embeddings_one_signed_invoke_per_text(stubs, mock):
    before = len(mock.requests)
    docs = ["first document", "second one here", "third"]
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("bedrock", "amazon.titan-embed-text-v2:0", creds(mock)), texts=docs, dimensions=256))
    sent = mock.requests[before:]
    assert len(sent) == 3
    assert {r.target for r in sent} == {"/model/amazon.titan-embed-text-v2:0/invoke"}
    assert sorted(r.json["inputText"] for r in sent) == sorted(docs)
    assert all(r.json["dimensions"] == 256 and r.json["normalize"] is True for r in sent)
    for text, emb in zip(docs, response.embeddings):
        assert len(emb.values) == 256
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(
            emb.values, expected_embedding(text, 256, "amazon.titan-embed-text-v2:0")))
    assert response.usage.tokens == 2 + 3 + 1  # inputTextTokenCount summed
    assert Decimal(response.usage.unit_price) == Decimal("0.02")
    f = await failure_of(stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("bedrock", "amazon.titan-embed-text-v2:0", creds(mock)), texts=["x"], dimensions=300)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "dimensions" in f.violations


async def test_cohere_embeddings_batch_input_type_and_header_usage(stubs, mock):
    docs = ["paris is in france", "bananas"]
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("bedrock", "cohere.embed-multilingual-v3", creds(mock)), texts=docs,
        input_type=te_pb.EMBEDDING_INPUT_TYPE_QUERY))
    sent = mock.requests[-1]
    assert sent.target == "/model/cohere.embed-multilingual-v3/invoke"
    assert sent.json == {"texts": docs, "input_type": "search_query", "truncate": "END", "embedding_types": ["float"]}
    assert [len(e.values) for e in response.embeddings] == [1024, 1024]
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(
        response.embeddings[1].values, expected_embedding("bananas", 1024, "cohere.embed-multilingual-v3search_query")))
    assert response.usage.tokens == 5  # from X-Amzn-Bedrock-Input-Token-Count
    counted = await stubs.embedding.CountEmbeddingTokens(te_pb.CountEmbeddingTokensRequest(
        target=target("bedrock", "cohere.embed-multilingual-v3", creds(mock)), texts=["hello world", ""]))
    assert counted.tokens[0] > 0 and counted.tokens[1] == 0


async def test_rerank_through_the_agent_runtime(stubs, mock):
    docs = ["paris is the capital of france", "bananas are yellow", "france borders spain"]
    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=target("bedrock", "cohere.rerank-v3-5:0", creds(mock)), query="capital of france",
        documents=docs, top_n=2))
    sent = mock.requests[-1]
    assert sent.target == "/rerank" and last_signature(mock).key_id == KEY_ID
    config = sent.json["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert config == {"numberOfResults": 2, "modelConfiguration": {
        "modelArn": "arn:aws:bedrock:us-west-2::foundation-model/cohere.rerank-v3-5:0"}}
    assert sent.json["queries"] == [{"type": "TEXT", "textQuery": {"text": "capital of france"}}]
    assert sent.json["sources"][1] == {"type": "INLINE", "inlineDocumentSource": {
        "type": "TEXT", "textDocument": {"text": "bananas are yellow"}}}
    assert [d.index for d in response.documents] == [0, 2]
    assert [d.text for d in response.documents] == [docs[0], docs[2]]
    assert response.documents[0].score == pytest.approx(rerank_score("capital of france", docs[0]))
    filtered = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=target("bedrock", "amazon.rerank-v1:0", creds(mock)), query="capital of france",
        documents=docs, score_threshold=0.5))
    assert [d.index for d in filtered.documents] == [0]


# ---- credentials and token counting -----------------------------------------------------------


async def test_validate_provider_credentials_pings_a_cheap_model(stubs, mock):
    response = await stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="bedrock", credentials=struct(creds(mock))))
    assert response.credentials["aws_secret_access_key"] == "[__HIDDEN__]"
    assert response.credentials["aws_region"] == "us-west-2"
    sent = mock.requests[-1]
    assert sent.target == "/model/amazon.nova-micro-v1:0/converse"
    assert sent.json["inferenceConfig"] == {"maxTokens": 5}
    await stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="bedrock", credentials=struct(creds(mock, model_for_validation=NOVA))))
    assert mock.requests[-1].target == "/model/amazon.nova-lite-v1:0/converse"
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="bedrock", credentials=struct(creds(mock, aws_secret_access_key="not-the-secret-0000")))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert "not-the-secret-0000" not in f.message
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="bedrock", credentials=struct(creds(mock, aws_region="mars-north-1")))))
    assert "credentials.aws_region" in f.violations


async def test_count_tokens_is_local(stubs, mock):
    before = len(mock.requests)
    response = await stubs.llm.CountTokens(llm_pb.CountTokensRequest(
        target=target("bedrock", MODEL, creds(mock)), messages=[system("be brief"), user("hello world")],
        tools=[tool()]))
    assert response.tokens > 10 and len(mock.requests) == before


# ---- transports -------------------------------------------------------------------------------


@pytest.mark.parametrize("http2", [False, True])
async def test_signature_holds_on_both_egress_transports(mock, http2):
    """aiohttp (yarl) and httpx treat percent-encoding differently; the signed path must be the
    one each actually sends, for plain ids and for ARNs (whose "/" travels as %2F)."""
    from engine._http.egress import Egress, EgressPolicy
    from engine.adapter import CallContext, LLMRequest
    from engine.entities import ModelType
    from engine.loader import load_provider
    from engine.messages import ContentPart, PartKind, PromptMessage, Role
    from providers import DEFINITIONS
    from providers.protocols.bedrock.adapter import BedrockAdapter

    schema = load_provider(DEFINITIONS / "bedrock")
    adapter = BedrockAdapter(schema.entity)
    adapter.predefined = schema.index
    egress = Egress(EgressPolicy.from_config(allowed_cidrs=["127.0.0.1/32"]), http2=http2)
    arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.amazon.nova-lite-v1:0"
    try:
        for model in (MODEL, arn):
            ctx = CallContext(provider_entity=adapter.entity, model=model, model_type=ModelType.LLM,
                              schema=adapter.predefined.get((ModelType.LLM, model)), credentials=creds(mock),
                              http=egress, options=adapter.options)
            request = LLMRequest([PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="hi there")])], {})
            result = await adapter.llm.generate(ctx, request)
            assert result.message.content == mock.expected_reply("hi there")
            assert last_signature(mock).key_id == KEY_ID
            chunks = [c async for c in adapter.llm.stream(ctx, request)]
            assert "".join(c.content for c in chunks) == mock.expected_reply("hi there")
        assert mock.requests[-1].target == (
            "/model/arn:aws:bedrock:us-west-2:123456789012:inference-profile%2Fus.amazon.nova-lite-v1:0"
            "/converse-stream")
    finally:
        await egress.aclose()
