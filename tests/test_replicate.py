"""Replicate (predictions API) through the real gRPC server against the faithful Replicate mock."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.replicate_mock import (
    TOKEN,
    ReplicateMock,
    canceled,
    expected_embedding,
    fail,
    slow,
    status,
    stuck,
    tokens_of,
    truncate_stream,
)

LLAMA3 = "meta/meta-llama-3-8b-instruct"
LLAMA2 = "meta/llama-2-70b-chat"


@pytest.fixture(scope="module")
async def mock():
    async with ReplicateMock() as m:
        yield m


def creds(mock: ReplicateMock, **extra) -> dict:
    return {"replicate_api_token": TOKEN, "replicate_base_url": mock.url, **extra}


def req(mock, model=LLAMA3, messages=None, cls=llm_pb.GenerateRequest, credentials=None, **kw):
    return cls(target=target("replicate", model, credentials or creds(mock)), messages=messages or [user("hello there")],
               **kw)


def sreq(mock, **kw):
    return req(mock, cls=llm_pb.StreamGenerateRequest, **kw)


def creates(mock) -> list:
    return [r for r in mock.requests if r.method == "POST" and r.path.endswith("/predictions")]


def assistant(text: str) -> llm_pb.Message:
    return llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text=text)])


# ---- catalog ---------------------------------------------------------------------------------


async def test_provider_is_customizable_with_difys_model_form(stubs, mock):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    replicate = providers["replicate"]
    assert list(replicate.configurate_methods) == [prov_pb.CONFIGURATE_METHOD_CUSTOMIZABLE_MODEL]
    assert list(replicate.supported_model_types) == [common_pb2.MODEL_TYPE_LLM, common_pb2.MODEL_TYPE_TEXT_EMBEDDING]
    assert [f.variable for f in replicate.model_credential_fields] == [
        "replicate_api_token", "model_version", "replicate_base_url"]
    assert list((await stubs.providers.ListModels(prov_pb.ListModelsRequest(provider="replicate"))).models) == []
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="replicate", model_type=common_pb2.MODEL_TYPE_LLM, model=LLAMA2, credentials=struct(creds(mock))))).model
    assert model.properties["mode"] == "chat"  # Dify: a "-chat" model is a chat model, others completion
    rules = {r.name: r for r in model.parameter_rules}
    assert {"temperature", "top_p", "top_k", "max_tokens", "repetition_penalty", "seed"} <= set(rules)
    assert not model.features  # no tool calls, no vision
    embed = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="replicate", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING, model="nateraw/bge-large-en-v1.5",
        credentials=struct(creds(mock))))).model
    assert embed.properties["context_size"] == 4096 and embed.properties["max_chunks"] == 1


# ---- unary -----------------------------------------------------------------------------------


async def test_generate_waits_with_prefer_and_maps_system_and_parameters(stubs, mock):
    before = len(mock.requests)
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "max_tokens": 100, "top_k": 20, "repetition_penalty": 1.1})))
    sent = creates(mock)[-1]
    assert sent.path == "/v1/predictions" and sent.headers["prefer"] == "wait=10"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    # llama-3 has no repetition_penalty input: left out
    assert sent.json["input"] == {"prompt": "hello there", "system_prompt": "be brief", "temperature": 0.5,
                                  "max_tokens": 100, "top_k": 20}
    assert len(sent.json["version"]) == 64
    assert response.message.content == "(be brief) Echo: hello there"
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.provider_finish_reason == "succeeded"
    # Replicate's metrics: output_token_count (5 tokens) and input_token_count
    assert response.usage.completion_tokens == 5 and response.usage.prompt_tokens == 5 + len("hello therebe brief") // 4
    assert not [r for r in mock.requests[before:] if r.method == "GET" and "/predictions/" in r.path]  # no polling


async def test_prefer_wait_timing_out_then_polling_until_succeeded(stubs, mock):
    mock.enqueue(slow(steps=3))
    response = await stubs.llm.Generate(req(mock, messages=[user("one two three four")]))
    pid = creates(mock)[-1]
    polls = [r for r in mock.requests if r.method == "GET" and r.path.startswith("/v1/predictions/")]
    assert len({r.path for r in polls}) >= 1 and len(polls) >= 2
    assert pid.headers["prefer"] == "wait=10"
    assert response.message.content == "Echo: one two three four"


async def test_pinned_version_and_token_limit_alias(stubs, mock):
    version = mock.models[LLAMA2].version_ids()[0]
    response = await stubs.llm.Generate(req(
        mock, model=LLAMA2, credentials=creds(mock, model_version=version),
        messages=[user("a b c d e f")], model_parameters=struct({"max_tokens": 3})))
    assert any(r.path == f"/v1/models/{LLAMA2}/versions/{version}" for r in mock.requests)
    sent = creates(mock)[-1].json
    assert sent["version"] == version and sent["input"]["max_new_tokens"] == 3 and "max_tokens" not in sent["input"]
    assert response.message.content == "Echo: a b"


async def test_multi_turn_uses_the_human_assistant_template(stubs, mock):
    history = [system("sys"), user("hi"), assistant("hello!"), user("how are you?")]
    await stubs.llm.Generate(req(mock, messages=history))
    sent = creates(mock)[-1].json["input"]
    assert sent["system_prompt"] == "sys"
    assert sent["prompt"] == "Human: hi\n\nAssistant: hello!\n\nHuman: how are you?\n\nAssistant:"
    # a model without system_prompt gets the system text at the head of the prompt
    await stubs.llm.Generate(req(mock, model="acme/plain-lm", messages=[system("sys"), user("hi")],
                                 model_parameters=struct({"max_tokens": 50})))
    sent = creates(mock)[-1].json["input"]
    assert sent == {"prompt": "sys\n\nHuman: hi\n\nAssistant:", "max_length": 50}


async def test_official_model_without_version_uses_the_model_route(stubs, mock):
    response = await stubs.llm.Generate(req(mock, model="meta/llama-official", messages=[system("s"), user("yo")],
                                            model_parameters=struct({"top_p": 0.5})))
    sent = creates(mock)[-1]
    assert sent.path == "/v1/models/meta/llama-official/predictions" and "version" not in sent.json
    assert sent.json["input"] == {"prompt": "s\n\nHuman: yo\n\nAssistant:", "top_p": 0.5}
    assert response.message.content.startswith("Echo: s")


# ---- streaming -------------------------------------------------------------------------------


async def test_stream_over_sse_keeps_raw_text_and_skips_logs(stubs, mock):
    history = [user("hi"), assistant("hello"), user("tell me  more")]
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=history))]
    sent = creates(mock)[-1]
    assert sent.json["stream"] is True and "prefer" not in sent.headers
    stream_get = mock.requests[-1]
    assert stream_get.path.startswith("/stream/") and stream_get.headers["accept"] == "text/event-stream"
    assert stream_get.headers["cache-control"] == "no-store"
    expected = "Echo: " + sent.json["input"]["prompt"]
    contents = [c.delta.content for c in chunks if c.delta.content]
    assert "".join(contents) == expected
    assert contents == tokens_of(expected)  # one chunk per output event, leading spaces and newlines kept
    assert any(t.startswith("\n\n") for t in contents) and "  more" in contents
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.usage.completion_tokens > 0
    assert final.usage.prompt_tokens > 0 and all(not c.HasField("usage") for c in chunks[:-1])


async def test_stream_without_stream_url_polls_the_growing_output(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, model="acme/plain-lm", messages=[user("w1 w2 w3 w4 w5 w6")]))]
    contents = [c.delta.content for c in chunks if c.delta.content]
    assert "".join(contents) == "Echo: w1 w2 w3 w4 w5 w6" and len(contents) >= 2
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP
    assert chunks[-1].usage.completion_tokens == 7  # metrics of the succeeded prediction
    assert mock.requests[-1].method == "GET" and mock.requests[-1].path.startswith("/v1/predictions/")


async def test_stop_words_cut_the_stream_and_cancel_the_prediction(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, model=LLAMA2, messages=[user("alpha beta STOP gamma delta")], stop=["STOP"]))]
    assert "".join(c.delta.content for c in chunks) == "Echo: alpha beta "
    assert chunks[-1].provider_finish_reason == "stop_sequence"
    pid = mock.predictions[list(mock.predictions)[-1]].id
    await mock.wait_cancel(pid)
    # a model with stop_sequences stops by itself: the words go upstream too
    response = await stubs.llm.Generate(req(mock, messages=[user("x STOP y")], stop=["STOP", "a,b"]))
    assert creates(mock)[-1].json["input"]["stop_sequences"] == "STOP"
    assert response.message.content == "Echo: x"


# ---- failures --------------------------------------------------------------------------------


async def test_bad_token_is_an_authorization_error(stubs, mock):
    f = await failure_of(stubs.llm.Generate(req(mock, credentials=creds(mock, replicate_api_token="r8_wrong_1234"))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert "r8_wrong_1234" not in f.message and f.metadata["upstreamStatus"] == "401"


async def test_rfc7807_validation_error_and_unknown_model(stubs, mock):
    f = await failure_of(stubs.llm.Generate(req(mock, model_parameters=struct({"max_tokens": 9000}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "input.max_tokens: Must be less than or equal to 8192" in f.message
    f = await failure_of(stubs.llm.Generate(req(mock, model="nobody/nothing")))
    assert f.code == grpc.StatusCode.NOT_FOUND
    f = await failure_of(stubs.llm.Generate(req(mock, model="no-slash")))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "target.model" in f.violations


async def test_throttled_create_carries_retry_after(stubs, mock):
    mock.enqueue(status(429, "Request was throttled.", "Request was throttled. Expected available in 2 seconds.",
                        retry_after="2"))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert received == [] and f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert f.retry_delay == 2.0 and "throttled" in f.message


async def test_failed_and_canceled_predictions(stubs, mock):
    mock.enqueue(fail("CUDA out of memory"))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "CUDA out of memory" in f.message
    mock.enqueue(fail("model crashed", after_tokens=2))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d")])))
    assert "".join(c.delta.content for c in received) == "Echo: a" and not any(c.finish_reason for c in received)
    assert f.reason == "InvokeBadRequestError" and "model crashed" in f.message
    mock.enqueue(canceled(after_tokens=1))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert f.code == grpc.StatusCode.UNAVAILABLE and "canceled" in f.message
    mock.enqueue(canceled())
    f = await failure_of(stubs.llm.Generate(req(mock, model="acme/plain-lm")))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"


async def test_truncated_stream_is_a_connection_error_and_cancels(stubs, mock):
    mock.enqueue(truncate_stream(after_tokens=2))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert not any(c.finish_reason for c in received)
    await mock.wait_cancel(list(mock.predictions)[-1])


async def test_malformed_prediction_is_an_invoke_error(stubs, mock):
    async def garbage(req, resp):
        await resp.send(201, {"content-type": "text/html"}, b"<html>gateway</html>")

    original = mock.server.handler
    mock.server.handler = lambda r, s: garbage(r, s) if r.method == "POST" else original(r, s)
    try:
        f = await failure_of(stubs.llm.Generate(req(mock)))
    finally:
        mock.server.handler = original
    assert f.reason == "InvokeError" and "not a JSON object" in f.message


async def test_tools_are_refused_before_any_request(stubs, mock):
    before = len(creates(mock))
    tool = llm_pb.Tool(name="get_weather", description="w", parameters=struct({"type": "object"}))
    f = await failure_of(stubs.llm.Generate(req(mock, tools=[tool])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "tools" in f.violations
    assert len(creates(mock)) == before


# ---- cancellation and deadlines --------------------------------------------------------------


async def test_cancelling_a_stream_closes_it_and_cancels_the_prediction(stubs, mock):
    mock.enqueue(stuck(tokens=2))
    call = stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d")]))
    first = await call.read()
    assert first.delta.content
    await mock.server.wait_for(lambda: mock.requests[-1].path.startswith("/stream/"))
    pid = mock.requests[-1].path.split("/")[-1]
    conn = mock.server.connection(mock.requests[-1].connection_id)
    await asyncio.sleep(0.05)
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.server.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer and record.closed_at - cancelled_at < 0.1
    await mock.wait_cancel(pid)
    for _ in range(50):  # the cancel request has arrived; let the mock handle it
        if mock.predictions[pid].status == "canceled":
            break
        await asyncio.sleep(0.01)
    assert mock.predictions[pid].status == "canceled"


async def test_cancelling_a_polled_call_cancels_the_prediction(stubs, mock):
    mock.enqueue(stuck())
    call = stubs.llm.Generate(req(mock, model="acme/plain-lm"))
    await mock.server.wait_for(lambda: any(r.method == "GET" and r.path.startswith("/v1/predictions/")
                                           for r in mock.requests[-2:]))
    pid = list(mock.predictions)[-1]
    call.cancel()
    await mock.wait_cancel(pid)


async def test_polling_respects_the_callers_deadline(stubs, mock):
    mock.enqueue(stuck())
    started = time.monotonic()
    f = await failure_of(stubs.llm.Generate(req(mock, model="acme/plain-lm"), timeout=1.5))
    assert f.code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - started < 2.5
    sent = creates(mock)[-1]
    assert "prefer" not in sent.headers  # under 2 s left: no point in a sync wait
    await mock.wait_cancel(list(mock.predictions)[-1])


# ---- embeddings ------------------------------------------------------------------------------


async def test_embeddings_one_prediction_per_text_for_text_models(stubs, mock):
    before = len(creates(mock))
    texts = ["first text", "second text", "third"]
    result = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("replicate", "replicate/all-mpnet-base-v2", creds(mock)), texts=texts))
    sent = creates(mock)[before:]
    assert sorted(r.json["input"]["text"] for r in sent) == sorted(texts)
    for text, embedding in zip(texts, result.embeddings):
        assert list(embedding.values) == pytest.approx(expected_embedding("replicate/all-mpnet-base-v2", text, 12))
    assert result.usage.tokens > 0


async def test_embeddings_batch_for_texts_models(stubs, mock):
    texts = [f"doc {i}" for i in range(5)]
    result = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("replicate", "nateraw/bge-large-en-v1.5", creds(mock)), texts=texts))
    sent = creates(mock)[-1].json["input"]
    assert json.loads(sent["texts"]) == texts
    assert sent["batch_size"] == 4 and sent["normalize_embeddings"] is True and sent["convert_to_numpy"] is False
    assert [len(e.values) for e in result.embeddings] == [16] * 5
    assert list(result.embeddings[4].values) == pytest.approx(expected_embedding("nateraw/bge-large-en-v1.5",
                                                                                 "doc 4", 16))


# ---- credentials -----------------------------------------------------------------------------


def validate(model_type, model, credentials):
    return prov_pb.ValidateModelCredentialsRequest(provider="replicate", model_type=model_type, model=model,
                                                   credentials=struct(credentials))


async def test_validate_model_credentials(stubs, mock):
    reply = await stubs.providers.ValidateModelCredentials(validate(common_pb2.MODEL_TYPE_LLM, LLAMA3, creds(mock)))
    assert reply.credentials["replicate_api_token"] == "[__HIDDEN__]"
    assert mock.requests[-1].path == f"/v1/models/{LLAMA3}"  # metadata only, no prediction (as Dify)

    for model, extra, text in [
        ("stability-ai/sdxl", {}, "is not a Text Generation model"),
        ("no-slash", {}, "format: {user_name}/{model_name}"),
        (LLAMA3, {"replicate_api_token": "r8_bad_token"}, "Incorrect model credentials"),
        (LLAMA2, {"model_version": "f" * 64}, "does not exist"),
    ]:
        f = await failure_of(stubs.providers.ValidateModelCredentials(
            validate(common_pb2.MODEL_TYPE_LLM, model, creds(mock, **extra))))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError", model
        assert text in f.message, (model, f.message)

    await stubs.providers.ValidateModelCredentials(validate(
        common_pb2.MODEL_TYPE_TEXT_EMBEDDING, "replicate/all-mpnet-base-v2", creds(mock)))
    assert creates(mock)[-1].json["input"] == {"text": "Hello worlds!"}
    f = await failure_of(stubs.providers.ValidateModelCredentials(validate(
        common_pb2.MODEL_TYPE_TEXT_EMBEDDING, LLAMA3, creds(mock))))
    assert f.reason == "CredentialsValidateFailedError" and "cannot embed text" in f.message
